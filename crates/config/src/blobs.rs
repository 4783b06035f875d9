//! `[blobs]`: where raw payloads and evidence packages are kept (ARCHITECTURE "Backends"): files
//! under `<data_dir>/blobs` on one machine (the default), or an S3-compatible bucket (AWS S3,
//! MinIO, Ceph) shared by every worker. REQUIREMENTS §3.8 names the evidence bucket
//! `aluskort-audit-evidence`.

use std::collections::HashMap;
use std::path::PathBuf;

use serde::Deserialize;

use crate::{SecretString, interpolate};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBlobs {
    /// `local` (default) or `s3`.
    pub backend: Option<String>,
    /// local: the directory (default `<data_dir>/blobs`).
    pub path: Option<String>,
    /// s3: the bucket (default `aluskort-audit-evidence`).
    pub bucket: Option<String>,
    /// s3: region (default `us-east-1`).
    pub region: Option<String>,
    /// s3: endpoint of an S3-compatible server (MinIO, Ceph); omitted for AWS itself.
    pub endpoint: Option<String>,
    /// s3: credentials; `${VAR}` is interpolated. Omitted: the standard AWS environment and
    /// instance credentials are used.
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// s3: plain-HTTP endpoints other than loopback are refused unless this is true.
    pub allow_http: Option<bool>,
    /// Put before every key (several deployments in one bucket); default none.
    pub key_prefix: Option<String>,
}

/// A validated `[blobs]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobsConfig {
    /// Files under `path` (`None`: `<data_dir>/blobs`).
    Local {
        path: Option<PathBuf>,
        key_prefix: String,
    },
    S3(S3Config),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Config {
    pub bucket: String,
    pub region: String,
    pub endpoint: Option<String>,
    pub access_key_id: Option<SecretString>,
    pub secret_access_key: Option<SecretString>,
    pub allow_http: bool,
    pub key_prefix: String,
}

impl Default for BlobsConfig {
    fn default() -> Self {
        BlobsConfig::Local { path: None, key_prefix: String::new() }
    }
}

pub(crate) fn validate_blobs(raw: RawBlobs, env: &HashMap<String, String>, errors: &mut Vec<String>) -> BlobsConfig {
    let key_prefix = raw.key_prefix.clone().unwrap_or_default();
    if key_prefix.starts_with('/') || key_prefix.split('/').any(|part| part == "..") || key_prefix.chars().any(char::is_control) {
        errors.push(format!("`blobs.key_prefix`: {key_prefix:?} must be a relative path without `..`"));
    }
    match raw.backend.as_deref().unwrap_or("local") {
        "local" => {
            let stray = [("bucket", raw.bucket.is_some()), ("region", raw.region.is_some()), ("endpoint", raw.endpoint.is_some())]
                .into_iter()
                .chain([("access_key_id", raw.access_key_id.is_some()), ("secret_access_key", raw.secret_access_key.is_some())])
                .chain([("allow_http", raw.allow_http.is_some())]);
            for (field, _) in stray.filter(|(_, set)| *set) {
                errors.push(format!("`blobs.{field}`: only for backend = \"s3\""));
            }
            BlobsConfig::Local { path: raw.path.map(PathBuf::from), key_prefix }
        }
        "s3" => {
            if raw.path.is_some() {
                errors.push("`blobs.path`: only for backend = \"local\"".to_owned());
            }
            let bucket = raw.bucket.unwrap_or_else(|| "aluskort-audit-evidence".to_owned());
            // S3 bucket naming rules: 3-63 characters of lowercase letters, digits, dots and hyphens.
            let valid_bucket = (3..=63).contains(&bucket.len())
                && bucket.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
                && bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
                && bucket.ends_with(|c: char| c.is_ascii_alphanumeric());
            if !valid_bucket {
                errors.push(format!("`blobs.bucket`: {bucket:?} is not a valid S3 bucket name (3-63 of a-z 0-9 . -)"));
            }
            let endpoint = raw.endpoint.as_deref().map(|endpoint| interpolate("blobs.endpoint", endpoint, env, errors));
            let allow_http = raw.allow_http.unwrap_or(false);
            if let Some(endpoint) = &endpoint {
                check_server_url("blobs.endpoint", endpoint, Some(allow_http), errors);
            }
            let secret = |field: &str, value: Option<String>, errors: &mut Vec<String>| {
                value.map(|value| SecretString::new(interpolate(&format!("blobs.{field}"), &value, env, errors)))
            };
            let access_key_id = secret("access_key_id", raw.access_key_id, errors);
            let secret_access_key = secret("secret_access_key", raw.secret_access_key, errors);
            if access_key_id.is_some() != secret_access_key.is_some() {
                errors.push("`blobs`: access_key_id and secret_access_key go together".to_owned());
            }
            let loopback_http = endpoint.as_deref().and_then(|endpoint| endpoint.strip_prefix("http://")).is_some_and(loopback);
            BlobsConfig::S3(S3Config {
                bucket,
                region: raw.region.unwrap_or_else(|| "us-east-1".to_owned()),
                endpoint,
                access_key_id,
                secret_access_key,
                allow_http: allow_http || loopback_http,
                key_prefix,
            })
        }
        other => {
            errors.push(format!("`blobs.backend`: {other:?} is not one of local, s3"));
            BlobsConfig::default()
        }
    }
}

/// Checks the address of a server that credentials are sent to: https, or plain http to a
/// loopback host, or to any host with `allow_http` (`None` where the section has no such switch).
pub(crate) fn check_server_url(field: &str, url: &str, allow_http: Option<bool>, errors: &mut Vec<String>) {
    match url.strip_prefix("http://") {
        Some(rest) if !allow_http.unwrap_or(false) && !loopback(rest) => {
            let hint = if allow_http.is_some() { "use https or set allow_http = true" } else { "use https" };
            errors.push(format!("`{field}`: {url} is plain HTTP to a non-loopback host; {hint}"));
        }
        Some(_) => {}
        None if url.starts_with("https://") => {}
        None => {
            let schemes = if allow_http.is_some() { "http:// or https://" } else { "https://" };
            errors.push(format!("`{field}`: {url:?} must start with {schemes}"));
        }
    }
}

/// Whether the authority at the start of `rest` (after `http://`) is a loopback host.
pub(crate) fn loopback(rest: &str) -> bool {
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(host, _)| host),
    };
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate(raw: RawBlobs) -> (BlobsConfig, Vec<String>) {
        let env = HashMap::from([("S3_KEY".to_owned(), "AKIA123".to_owned()), ("S3_SECRET".to_owned(), "shh".to_owned())]);
        let mut errors = Vec::new();
        let config = validate_blobs(raw, &env, &mut errors);
        (config, errors)
    }

    #[test]
    fn local_is_the_default_and_s3_settings_need_the_s3_backend() {
        assert_eq!(validate(RawBlobs::default()), (BlobsConfig::default(), Vec::new()));
        let (_, errors) = validate(RawBlobs { bucket: Some("b".to_owned()), ..RawBlobs::default() });
        assert_eq!(errors, vec!["`blobs.bucket`: only for backend = \"s3\"".to_owned()]);
    }

    #[test]
    fn s3_interpolates_credentials_and_allows_plain_http_only_to_loopback() {
        let raw = RawBlobs {
            backend: Some("s3".to_owned()),
            endpoint: Some("http://127.0.0.1:9000".to_owned()),
            access_key_id: Some("${S3_KEY}".to_owned()),
            secret_access_key: Some("${S3_SECRET}".to_owned()),
            ..RawBlobs::default()
        };
        let (config, errors) = validate(raw.clone());
        assert!(errors.is_empty(), "{errors:?}");
        let BlobsConfig::S3(s3) = config else { panic!("s3 expected") };
        assert_eq!((s3.bucket.as_str(), s3.region.as_str(), s3.allow_http), ("aluskort-audit-evidence", "us-east-1", true));
        assert_eq!(s3.access_key_id.as_ref().map(SecretString::expose), Some("AKIA123"));

        let remote = RawBlobs { endpoint: Some("http://minio.internal:9000".to_owned()), ..raw.clone() };
        let (_, errors) = validate(remote.clone());
        assert!(errors.iter().any(|e| e.contains("plain HTTP to a non-loopback host")), "{errors:?}");
        let (_, errors) = validate(RawBlobs { allow_http: Some(true), ..remote });
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn bad_buckets_half_credentials_and_unknown_backends_are_named() {
        let raw = RawBlobs {
            backend: Some("s3".to_owned()),
            bucket: Some("Bad_Bucket".to_owned()),
            access_key_id: Some("k".to_owned()),
            key_prefix: Some("../up".to_owned()),
            ..RawBlobs::default()
        };
        let (_, errors) = validate(raw);
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors[0].contains("key_prefix") && errors[1].contains("bucket") && errors[2].contains("go together"), "{errors:?}");
        let (_, errors) = validate(RawBlobs { backend: Some("gcs".to_owned()), ..RawBlobs::default() });
        assert_eq!(errors, vec!["`blobs.backend`: \"gcs\" is not one of local, s3".to_owned()]);
    }
}
