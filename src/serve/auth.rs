//! Where auth is checked. With credentials configured, a client logs in with HTTP Basic (the
//! Flight handshake, or Basic on any call) and gets a random 256-bit bearer token, valid for
//! [`TOKEN_TTL`]; every other call must carry `authorization: Bearer <token>` or valid Basic.
//! [`AuthLayer`] runs in front of every gRPC service on the port (Flight SQL and control API),
//! so no handler can forget to check.
//!
//! Only a login mints a token, and at most [`MAX_TOKENS`] live at once (the ones closest to
//! expiry make room). Wrong passwords are throttled per client address: after
//! [`MAX_FAILURES`] within [`FAILURE_WINDOW`], that address is refused until the window ends.

use std::collections::HashMap;
use std::net::IpAddr;
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

/// Live bearer tokens kept at most.
pub(crate) const MAX_TOKENS: usize = 10_000;
/// Failed logins one client address may make within [`FAILURE_WINDOW`].
pub(crate) const MAX_FAILURES: u32 = 10;
pub(crate) const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Client addresses whose failures are remembered at most.
const MAX_TRACKED_CLIENTS: usize = 10_000;

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

/// The server's login state: credentials (None: no auth), the tokens handed out and the
/// recent failed logins per client address.
#[derive(Debug, Default)]
pub(crate) struct Auth {
    credentials: Option<Credentials>,
    tokens: Mutex<HashMap<String, Instant>>,
    failures: Mutex<HashMap<IpAddr, Failures>>,
}

/// Failed logins of one client address in its current window.
#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    since: Instant,
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
            ..Self::default()
        }
    }

    /// Checks `Basic base64(user:password)` from `peer`; Ok with a fresh bearer token.
    pub(crate) fn login(
        &self,
        authorization: Option<&str>,
        peer: Option<IpAddr>,
    ) -> Result<String, Status> {
        if self.credentials.is_none() {
            return Ok(String::new());
        }
        self.verify_basic(authorization, peer)?;
        self.mint()
    }

    /// Checks Basic credentials without minting a token (Basic on an ordinary call).
    fn verify_basic(
        &self,
        authorization: Option<&str>,
        peer: Option<IpAddr>,
    ) -> Result<(), Status> {
        let Some(creds) = &self.credentials else {
            return Ok(());
        };
        self.throttle(peer)?;
        let encoded = authorization
            .and_then(|h| h.strip_prefix("Basic "))
            .ok_or_else(|| Status::unauthenticated("log in with Basic user:password"))?;
        let decoded = BASE64_ANY_PADDING
            .decode(encoded.trim())
            .map_err(|_| Status::unauthenticated("malformed Basic credentials"))?;
        let expected = format!("{}:{}", creds.user, creds.password);
        if !same(&decoded, expected.as_bytes()) {
            self.failed(peer);
            return Err(Status::unauthenticated("wrong user name or password"));
        }
        Ok(())
    }

    /// Refuses `peer` while it has used up its failed logins for the current window.
    fn throttle(&self, peer: Option<IpAddr>) -> Result<(), Status> {
        let Some(peer) = peer else { return Ok(()) };
        let failures = self
            .failures
            .lock()
            .map_err(|_| Status::internal("failure table poisoned"))?;
        match failures.get(&peer) {
            Some(f) if f.count >= MAX_FAILURES && f.since.elapsed() < FAILURE_WINDOW => {
                let left = FAILURE_WINDOW.saturating_sub(f.since.elapsed());
                Err(Status::resource_exhausted(format!(
                    "too many failed logins from {peer}: retry in {} s",
                    left.as_secs() + 1
                )))
            }
            _ => Ok(()),
        }
    }

    fn failed(&self, peer: Option<IpAddr>) {
        let Some(peer) = peer else { return };
        let Ok(mut failures) = self.failures.lock() else {
            return;
        };
        let now = Instant::now();
        if failures.len() >= MAX_TRACKED_CLIENTS {
            failures.retain(|_, f| f.since.elapsed() < FAILURE_WINDOW);
        }
        if failures.len() >= MAX_TRACKED_CLIENTS {
            failures.clear(); // a flood of addresses: forget them rather than grow
        }
        let f = failures.entry(peer).or_insert(Failures {
            count: 0,
            since: now,
        });
        if f.since.elapsed() >= FAILURE_WINDOW {
            *f = Failures {
                count: 0,
                since: now,
            };
        }
        f.count += 1;
    }

    /// A new random token, kept until it expires or [`MAX_TOKENS`] newer ones need its place.
    fn mint(&self) -> Result<String, Status> {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let mut tokens = self
            .tokens
            .lock()
            .map_err(|_| Status::internal("token table poisoned"))?;
        let now = Instant::now();
        tokens.retain(|_, expires| *expires > now);
        if tokens.len() >= MAX_TOKENS {
            let soonest = tokens
                .iter()
                .min_by_key(|(_, expires)| **expires)
                .map(|(t, _)| t.clone());
            if let Some(t) = soonest {
                tokens.remove(&t);
            }
        }
        tokens.insert(token.clone(), now + TOKEN_TTL);
        Ok(token)
    }

    /// Live tokens (tests).
    #[cfg(test)]
    fn token_count(&self) -> usize {
        self.tokens.lock().map(|t| t.len()).unwrap_or(0)
    }

    /// Checks a call's `authorization` header: a live bearer token or valid Basic credentials
    /// (which do not mint a token: only a login does).
    pub(crate) fn check(&self, headers: &HeaderMap, peer: Option<IpAddr>) -> Result<(), Status> {
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
        self.verify_basic(Some(header), peer)
    }
}

/// The client's address, with or without TLS.
fn peer_ip(extensions: &http::Extensions) -> Option<IpAddr> {
    use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
    let tcp = extensions.get::<TcpConnectInfo>().or_else(|| {
        extensions
            .get::<TlsConnectInfo<TcpConnectInfo>>()
            .map(|tls| tls.get_ref())
    });
    tcp.and_then(|i| i.remote_addr()).map(|a| a.ip())
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
            let peer = peer_ip(req.extensions());
            if let Err(status) = self.auth.check(req.headers(), peer) {
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
        assert!(auth.login(Some(&basic("ann", "wrong")), None).is_err());
        assert!(auth.login(None, None).is_err());
        let token = auth.login(Some(&basic("ann", "s3cret")), None).unwrap();
        assert_eq!(token.len(), 64);
        assert!(auth
            .check(&headers(&format!("Bearer {token}")), None)
            .is_ok());
        assert!(auth.check(&headers(&basic("ann", "s3cret")), None).is_ok());
        // ADBC sends "ann:s3cret" (10 bytes) as base64 without the `==` padding.
        assert!(auth.check(&headers("Basic YW5uOnMzY3JldA"), None).is_ok());
        let e = auth.check(&headers("Bearer forged"), None).unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unauthenticated);
        assert!(auth.check(&HeaderMap::new(), None).is_err());
        assert!(Auth::new(None).check(&HeaderMap::new(), None).is_ok());
    }

    fn ann() -> Auth {
        Auth::new(Some(Credentials {
            user: "ann".into(),
            password: "s3cret".into(),
        }))
    }

    #[test]
    fn basic_on_calls_mints_no_tokens_and_logins_keep_a_bounded_table() {
        let auth = ann();
        for _ in 0..100 {
            assert!(auth.check(&headers(&basic("ann", "s3cret")), None).is_ok());
        }
        assert_eq!(auth.token_count(), 0, "only a login mints a token");
        let first = auth.login(Some(&basic("ann", "s3cret")), None).unwrap();
        for _ in 0..MAX_TOKENS + 5 {
            auth.login(Some(&basic("ann", "s3cret")), None).unwrap();
        }
        assert_eq!(auth.token_count(), MAX_TOKENS);
        let e = auth
            .check(&headers(&format!("Bearer {first}")), None)
            .unwrap_err();
        assert_eq!(
            e.code(),
            tonic::Code::Unauthenticated,
            "the oldest made room"
        );
    }

    #[test]
    fn wrong_passwords_are_throttled_per_client_address() {
        let auth = ann();
        let (mallory, ann_ip): (IpAddr, IpAddr) =
            ("10.0.0.66".parse().unwrap(), "10.0.0.1".parse().unwrap());
        for _ in 0..MAX_FAILURES {
            let e = auth.login(Some(&basic("ann", "guess")), Some(mallory));
            assert_eq!(e.unwrap_err().code(), tonic::Code::Unauthenticated);
        }
        // Refused now, even with the right password, and over Basic on a call too.
        let e = auth
            .login(Some(&basic("ann", "s3cret")), Some(mallory))
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e}");
        assert!(e.message().contains("too many failed logins"), "{e}");
        let e = auth
            .check(&headers(&basic("ann", "s3cret")), Some(mallory))
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::ResourceExhausted);
        // Another address is not affected.
        assert!(auth
            .login(Some(&basic("ann", "s3cret")), Some(ann_ip))
            .is_ok());
    }
}
