//! Where auth is checked. With credentials configured, a client logs in with HTTP Basic (the
//! Flight handshake, or Basic on any call) and gets a random 256-bit bearer token, valid for
//! [`TOKEN_TTL`]; every other call must carry `authorization: Bearer <token>` or valid Basic.
//! [`AuthLayer`] runs in front of every gRPC service on the port (Flight SQL and control API),
//! so no handler can forget to check.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::{alphabet, Engine};
use futures::future::BoxFuture;
use http::HeaderMap;
use rand::RngCore;
use tonic::Status;

/// How long a bearer token stays valid after login.
pub(crate) const TOKEN_TTL: Duration = Duration::from_secs(12 * 3600);

/// User name and password clients must present.
#[derive(Clone)]
pub(crate) struct Credentials {
    pub(crate) user: String,
    pub(crate) password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, ***)", self.user)
    }
}

/// The server's login state: credentials (None: no auth) and the tokens handed out.
#[derive(Debug, Default)]
pub(crate) struct Auth {
    credentials: Option<Credentials>,
    tokens: Mutex<HashMap<String, Instant>>,
}

/// Standard base64 with or without `=` padding: ADBC's Go driver sends Basic unpadded.
const BASE64_ANY_PADDING: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Byte-wise comparison whose time does not depend on where the inputs differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Auth {
    pub(crate) fn new(credentials: Option<Credentials>) -> Self {
        Self {
            credentials,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// Checks `Basic base64(user:password)`; Ok with a fresh bearer token.
    pub(crate) fn login(&self, authorization: Option<&str>) -> Result<String, Status> {
        let Some(creds) = &self.credentials else {
            return Ok(String::new());
        };
        let encoded = authorization
            .and_then(|h| h.strip_prefix("Basic "))
            .ok_or_else(|| Status::unauthenticated("log in with Basic user:password"))?;
        let decoded = BASE64_ANY_PADDING
            .decode(encoded.trim())
            .map_err(|_| Status::unauthenticated("malformed Basic credentials"))?;
        let expected = format!("{}:{}", creds.user, creds.password);
        if !same(&decoded, expected.as_bytes()) {
            return Err(Status::unauthenticated("wrong user name or password"));
        }
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let mut tokens = self
            .tokens
            .lock()
            .map_err(|_| Status::internal("token table poisoned"))?;
        let now = Instant::now();
        tokens.retain(|_, expires| *expires > now);
        tokens.insert(token.clone(), now + TOKEN_TTL);
        Ok(token)
    }

    /// Checks a call's `authorization` header: a live bearer token or valid Basic credentials.
    pub(crate) fn check(&self, headers: &HeaderMap) -> Result<(), Status> {
        if self.credentials.is_none() {
            return Ok(());
        }
        let header = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| Status::unauthenticated("no authorization header: log in first"))?;
        if let Some(token) = header.strip_prefix("Bearer ") {
            let tokens = self
                .tokens
                .lock()
                .map_err(|_| Status::internal("token table poisoned"))?;
            return match tokens.get(token.trim()) {
                Some(expires) if *expires > Instant::now() => Ok(()),
                Some(_) => Err(Status::unauthenticated("token expired: log in again")),
                None => Err(Status::unauthenticated("unknown token: log in again")),
            };
        }
        self.login(Some(header)).map(|_| ())
    }
}

/// Tower layer checking [`Auth`] on every call except the Flight handshake (which logs in).
#[derive(Clone)]
pub(crate) struct AuthLayer {
    pub(crate) auth: Arc<Auth>,
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            auth: self.auth.clone(),
        }
    }
}

#[derive(Clone)]
pub(crate) struct AuthService<S> {
    inner: S,
    auth: Arc<Auth>,
}

impl<S, B, R> tower::Service<http::Request<B>> for AuthService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    R: Default + Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let is_handshake = req.uri().path() == "/arrow.flight.protocol.FlightService/Handshake";
        if !is_handshake {
            if let Err(status) = self.auth.check(req.headers()) {
                return Box::pin(async move { Ok(status.into_http()) });
            }
        }
        // The clone is the ready one's twin; keep the ready service for this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(inner.call(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::prelude::BASE64_STANDARD;

    fn basic(user: &str, password: &str) -> String {
        format!(
            "Basic {}",
            BASE64_STANDARD.encode(format!("{user}:{password}"))
        )
    }

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("authorization", value.parse().unwrap());
        h
    }

    #[test]
    fn tokens_come_from_the_right_password_only() {
        let auth = Auth::new(Some(Credentials {
            user: "ann".into(),
            password: "s3cret".into(),
        }));
        assert!(auth.login(Some(&basic("ann", "wrong"))).is_err());
        assert!(auth.login(None).is_err());
        let token = auth.login(Some(&basic("ann", "s3cret"))).unwrap();
        assert_eq!(token.len(), 64);
        assert!(auth.check(&headers(&format!("Bearer {token}"))).is_ok());
        assert!(auth.check(&headers(&basic("ann", "s3cret"))).is_ok());
        // ADBC sends "ann:s3cret" (10 bytes) as base64 without the `==` padding.
        assert!(auth.check(&headers("Basic YW5uOnMzY3JldA")).is_ok());
        let e = auth.check(&headers("Bearer forged")).unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unauthenticated);
        assert!(auth.check(&HeaderMap::new()).is_err());
        assert!(Auth::new(None).check(&HeaderMap::new()).is_ok());
    }
}
