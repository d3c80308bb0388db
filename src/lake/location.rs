//! Where the lake lives: a local folder, or a prefix of an object store (`s3://bucket/prefix`,
//! `gs://`, `az://`), and the object store that reaches it.
//!
//! Credentials come from the usual environment variables of each cloud (`AWS_ACCESS_KEY_ID`,
//! `AWS_REGION`, `AWS_ENDPOINT_URL`, `GOOGLE_SERVICE_ACCOUNT`, `AZURE_STORAGE_ACCOUNT_NAME`,
//! ...); `[storage]` in `lake.toml` can set the endpoint, the region and plain HTTP (for a
//! server on loopback) on top of them. Anything else that looks like a URL is refused: a typo
//! must not become a local folder named `s3:`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::{ObjectStore, ObjectStoreScheme};
use url::Url;

use crate::error::{Error, Result};

/// `[storage]` of `lake.toml`: what the environment variables do not say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StorageOptions {
    /// The S3 (or Azure) endpoint, e.g. `http://127.0.0.1:8333` for a local server.
    pub endpoint: Option<String>,
    /// The S3 region.
    pub region: Option<String>,
    /// Plain HTTP to the endpoint; off by default (credentials would travel in clear text).
    pub allow_http: Option<bool>,
}

/// The lake root, parsed from `--lake`, `LAKE_DIR` or `lake_dir`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Location {
    /// A folder on this machine (a path, or a `file://` URL).
    Local(PathBuf),
    /// A prefix of an object store; the URL ends with `/`.
    Remote(Url),
}

/// The URL schemes of object stores: S3 (`s3a` as Hadoop writes it), Google Cloud Storage,
/// Azure (each of its spellings).
pub(crate) const REMOTE: &[&str] = &["s3", "s3a", "gs", "az", "adl", "azure", "abfs", "abfss"];

impl Location {
    pub(crate) fn parse(text: &str) -> Result<Self> {
        if text.trim().is_empty() {
            return Err(Error::Config("the lake location is empty".into()));
        }
        // `name:` at the start (two characters or more, so `C:\lake` stays a path) is a URL.
        let scheme = text.split_once(':').map(|(scheme, _)| scheme).filter(|s| {
            s.len() >= 2
                && s.starts_with(|c: char| c.is_ascii_alphabetic())
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
        });
        let Some(scheme) = scheme else {
            return Ok(Self::Local(PathBuf::from(text)));
        };
        let url = Url::parse(text)
            .map_err(|e| Error::Config(format!("the lake location {text:?} is not a URL: {e}")))?;
        if url.scheme() == "file" {
            let path = url.to_file_path().map_err(|()| {
                Error::Config(format!("the lake location {text:?} is not a local path"))
            })?;
            return Ok(Self::Local(path));
        }
        if !REMOTE.contains(&url.scheme()) {
            return Err(Error::Config(format!(
                "the lake location {text:?} has the scheme {scheme}:, which lake does not \
                 support: use a local folder (./{text} if its name has a colon), \
                 s3://bucket/prefix, gs://bucket/prefix or az://container/prefix"
            )));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(Error::Config(format!(
                "the lake location {text:?} names no bucket"
            )));
        }
        let mut url = url;
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        url.set_query(None);
        url.set_fragment(None);
        Ok(Self::Remote(url))
    }

    /// The local folder `path`, created if missing, made absolute.
    pub(crate) fn local(path: &Path) -> Result<PathBuf> {
        std::fs::create_dir_all(path).map_err(|e| Error::io(path.display(), e))?;
        path.canonicalize()
            .map_err(|e| Error::io(path.display(), e))
    }
}

/// The store at the root of `url`'s bucket (what delta-rs wants: tables are prefixes of it),
/// configured from the environment and `options`.
pub(crate) fn remote_store(url: &Url, options: &StorageOptions) -> Result<Arc<dyn ObjectStore>> {
    super::log_store::register();
    let built: object_store::Result<Arc<dyn ObjectStore>> =
        match ObjectStoreScheme::parse(url).map(|(kind, _)| kind) {
            Ok(ObjectStoreScheme::AmazonS3) => {
                let mut b = AmazonS3Builder::from_env().with_url(url.as_str());
                if let Some(endpoint) = &options.endpoint {
                    b = b.with_endpoint(endpoint);
                }
                if let Some(region) = &options.region {
                    b = b.with_region(region);
                }
                if let Some(allow) = options.allow_http {
                    b = b.with_allow_http(allow);
                }
                check_endpoint(b.get_config_value(&AmazonS3ConfigKey::Endpoint))?;
                for (key, name) in [
                    (AmazonS3ConfigKey::AccessKeyId, "AWS_ACCESS_KEY_ID"),
                    (AmazonS3ConfigKey::Token, "AWS_SESSION_TOKEN"),
                    (AmazonS3ConfigKey::Region, "AWS_REGION / [storage] region"),
                ] {
                    check_header_text(b.get_config_value(&key), name)?;
                }
                b.build().map(|s| Arc::new(s) as _)
            }
            Ok(ObjectStoreScheme::GoogleCloudStorage) => GoogleCloudStorageBuilder::from_env()
                .with_url(url.as_str())
                .build()
                .map(|s| Arc::new(s) as _),
            Ok(ObjectStoreScheme::MicrosoftAzure) => {
                let mut b = MicrosoftAzureBuilder::from_env().with_url(url.as_str());
                if let Some(endpoint) = &options.endpoint {
                    b = b.with_endpoint(endpoint.clone());
                }
                if let Some(allow) = options.allow_http {
                    b = b.with_allow_http(allow);
                }
                check_endpoint(b.get_config_value(&AzureConfigKey::Endpoint))?;
                b.build().map(|s| Arc::new(s) as _)
            }
            _ => {
                return Err(Error::Config(format!(
                    "no object store for the lake location {url}"
                )))
            }
        };
    built.map_err(|e| Error::Config(format!("the lake location {url}: {e}")))
}

/// An endpoint, from `[storage]` or the environment, must be an http(s) URL with a host:
/// object_store takes any text and panics on the first request if it is not one.
fn check_endpoint(endpoint: Option<String>) -> Result<()> {
    let Some(text) = endpoint else {
        return Ok(());
    };
    match Url::parse(&text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => Ok(()),
        _ => Err(Error::Config(format!(
            "the object store endpoint {text:?} ([storage] endpoint or AWS_ENDPOINT_URL / \
             AZURE_STORAGE_ENDPOINT) is not an http(s) URL such as http://127.0.0.1:8333"
        ))),
    }
}

/// Values object_store puts into request headers (the key id and region sign every request, the
/// token travels as one): it panics on the first request if one holds characters a header
/// cannot. The value may be a secret, so the error names only the setting.
fn check_header_text(value: Option<String>, name: &str) -> Result<()> {
    match value {
        Some(v) if http::HeaderValue::from_str(&v).is_err() => Err(Error::Config(format!(
            "{name} holds characters an HTTP header cannot carry (control characters?)"
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_paths_and_store_urls_are_recognized() {
        for path in ["data", "./a:b", "/srv/lake", "C:\\lake", "lake-2025"] {
            assert_eq!(
                Location::parse(path).unwrap(),
                Location::Local(PathBuf::from(path)),
                "{path}"
            );
        }
        assert_eq!(
            Location::parse("file:///srv/lake").unwrap(),
            Location::Local(PathBuf::from("/srv/lake"))
        );
        for (text, url) in [
            ("s3://bucket", "s3://bucket/"),
            ("s3://bucket/lake", "s3://bucket/lake/"),
            ("s3a://bucket/a/b/", "s3a://bucket/a/b/"),
            ("gs://bucket/lake", "gs://bucket/lake/"),
            ("az://container/lake", "az://container/lake/"),
            ("s3://bucket/lake?versionId=1#x", "s3://bucket/lake/"),
        ] {
            assert_eq!(
                Location::parse(text).unwrap(),
                Location::Remote(Url::parse(url).unwrap()),
                "{text}"
            );
        }
    }

    #[test]
    fn endpoints_and_header_values_that_would_panic_the_store_are_config_errors() {
        let url = Url::parse("s3://bucket/lake").unwrap();
        let az = Url::parse("az://container/lake").unwrap();
        for endpoint in [
            "",
            " ",
            "127.0.0.1:8333",
            "ftp://host",
            "http://",
            "not a url",
        ] {
            let options = StorageOptions {
                endpoint: Some(endpoint.to_string()),
                ..StorageOptions::default()
            };
            for u in [&url, &az] {
                let e = remote_store(u, &options).err().map(|e| e.to_string());
                assert!(
                    e.as_deref().is_some_and(|e| e.contains("endpoint")),
                    "{u} {endpoint:?}: {e:?}"
                );
            }
        }
        let good = StorageOptions {
            endpoint: Some("http://127.0.0.1:8333".to_string()),
            allow_http: Some(true),
            ..StorageOptions::default()
        };
        assert!(remote_store(&url, &good).is_ok());
        let bad_region = StorageOptions {
            region: Some("us-east-1\nx".to_string()),
            ..good
        };
        let e = remote_store(&url, &bad_region).err().map(|e| e.to_string());
        assert!(
            e.as_deref()
                .is_some_and(|e| e.contains("AWS_REGION") && !e.contains("us-east-1")),
            "{e:?}"
        );
    }

    #[test]
    fn unknown_schemes_and_empty_locations_are_errors() {
        for text in [
            "",
            "  ",
            "ftp://host/lake",
            "hdfs://namenode/lake",
            "http://example.com/lake",
            "s3://",
            "s3:///lake",
            "s3:/bucket/lake",
            "s3:bucket",
            "https://",
            "my:lake",
        ] {
            let e = Location::parse(text).unwrap_err().to_string();
            assert!(
                e.contains("lake location") && !e.is_empty(),
                "{text:?}: {e}"
            );
        }
        let e = Location::parse("ftp://host/lake").unwrap_err().to_string();
        assert!(
            e.contains("ftp:") && e.contains("s3://bucket/prefix"),
            "{e}"
        );
    }
}
