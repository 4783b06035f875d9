//! `[sources.<name>]`: the SIEM connectors `aluskort serve` polls (FR-ING-003). Each table names
//! its `kind` and that kind's endpoint and credentials; secrets come from `${VAR}` and are held as
//! [`SecretString`]. Defaults follow REQUIREMENTS.md FR-ING-003 (Sentinel and Elastic polled every
//! 30 s, Splunk every 60 s, 3 retries from a 1 s base).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use aluskort_core::TenantId;
use serde::Deserialize;

use crate::{SecretString, interpolate};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    /// `sentinel`, `elastic` or `splunk`.
    pub kind: Option<String>,
    pub enabled: Option<bool>,
    /// ALUSKORT tenant for every alert of this source (else the tenant the alert names).
    pub tenant: Option<String>,
    pub poll_interval_secs: Option<u64>,
    pub page_size: Option<u32>,
    /// Records younger than this are left for the next poll (the SIEM may still be indexing them).
    pub settle_secs: Option<u64>,
    /// How far back the very first poll starts.
    pub initial_lookback_hours: Option<u32>,
    pub max_retries: Option<u32>,
    pub retry_base_ms: Option<u64>,
    pub request_timeout_secs: Option<u64>,
    // Sentinel
    pub workspace_id: Option<String>,
    pub azure_tenant_id: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub token_url: Option<String>,
    pub api_url: Option<String>,
    pub scope: Option<String>,
    // Elastic and Splunk
    pub url: Option<String>,
    pub api_key: Option<String>,
    pub index: Option<String>,
    pub token: Option<String>,
    pub search: Option<String>,
}

/// A validated connector.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceConfig {
    pub name: String,
    pub enabled: bool,
    pub tenant: Option<TenantId>,
    pub poll_interval: Duration,
    pub page_size: u32,
    pub settle: Duration,
    pub initial_lookback: chrono::Duration,
    pub max_retries: u32,
    pub retry_base: Duration,
    pub request_timeout: Duration,
    pub kind: SourceKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SourceKind {
    Sentinel(SentinelSource),
    Elastic(ElasticSource),
    Splunk(SplunkSource),
}

impl SourceKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            SourceKind::Sentinel(_) => "sentinel",
            SourceKind::Elastic(_) => "elastic",
            SourceKind::Splunk(_) => "splunk",
        }
    }
}

/// Log Analytics query API with an Entra ID client-credentials token.
#[derive(Debug, Clone, PartialEq)]
pub struct SentinelSource {
    pub workspace_id: String,
    pub token_url: String,
    pub client_id: String,
    pub client_secret: SecretString,
    pub scope: String,
    pub api_url: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ElasticSource {
    pub url: String,
    pub api_key: SecretString,
    pub index: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SplunkSource {
    pub url: String,
    pub token: SecretString,
    pub search: String,
}

/// Validates every `[sources.*]` table, appending each problem to `errors` with its field path.
pub(crate) fn validate_sources(
    raw: BTreeMap<String, RawSource>,
    env: &HashMap<String, String>,
    errors: &mut Vec<String>,
) -> Vec<SourceConfig> {
    raw.into_iter().filter_map(|(name, source)| validate_source(&name, source, env, errors)).collect()
}

fn validate_source(name: &str, raw: RawSource, env: &HashMap<String, String>, errors: &mut Vec<String>) -> Option<SourceConfig> {
    let before = errors.len();
    let field = |key: &str| format!("sources.{name}.{key}");
    if name.is_empty() || name.len() > 64 || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        errors.push(format!("`sources.{name}`: a source name is 1-64 letters, digits, '-' or '_'"));
    }
    let text = |key: &str, value: Option<&String>, errors: &mut Vec<String>| -> Option<String> {
        value.map(|value| interpolate(&field(key), value, env, errors)).filter(|value| !value.trim().is_empty())
    };
    let required = |key: &str, value: Option<&String>, errors: &mut Vec<String>| -> Option<String> {
        let found = text(key, value, errors);
        if found.is_none() {
            errors.push(format!("`{}` is required for kind = {:?}", field(key), raw.kind.as_deref().unwrap_or_default()));
        }
        found
    };
    let (default_poll, kind) = match raw.kind.as_deref() {
        Some("sentinel") => {
            let workspace_id = required("workspace_id", raw.workspace_id.as_ref(), errors);
            let client_id = required("client_id", raw.client_id.as_ref(), errors);
            let client_secret = required("client_secret", raw.client_secret.as_ref(), errors);
            let token_url =
                match (text("token_url", raw.token_url.as_ref(), errors), text("azure_tenant_id", raw.azure_tenant_id.as_ref(), errors)) {
                    (Some(url), _) => Some(url),
                    (None, Some(tenant)) => Some(format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token")),
                    (None, None) => {
                        errors.push(format!(
                            "`{}` or `{}` is required for kind = \"sentinel\"",
                            field("azure_tenant_id"),
                            field("token_url")
                        ));
                        None
                    }
                };
            let api_url = text("api_url", raw.api_url.as_ref(), errors).unwrap_or_else(|| "https://api.loganalytics.io".to_owned());
            let scope = text("scope", raw.scope.as_ref(), errors).unwrap_or_else(|| "https://api.loganalytics.io/.default".to_owned());
            check_url(&field("token_url"), token_url.as_deref(), errors);
            check_url(&field("api_url"), Some(&api_url), errors);
            (
                30,
                match (workspace_id, client_id, client_secret, token_url) {
                    (Some(workspace_id), Some(client_id), Some(secret), Some(token_url)) => Some(SourceKind::Sentinel(SentinelSource {
                        workspace_id,
                        token_url,
                        client_id,
                        client_secret: SecretString::new(secret),
                        scope,
                        api_url: api_url.trim_end_matches('/').to_owned(),
                    })),
                    _ => None,
                },
            )
        }
        Some("elastic") => {
            let url = required("url", raw.url.as_ref(), errors);
            let api_key = required("api_key", raw.api_key.as_ref(), errors);
            check_url(&field("url"), url.as_deref(), errors);
            let index = text("index", raw.index.as_ref(), errors).unwrap_or_else(|| ".alerts-security.alerts-*".to_owned());
            (
                30,
                url.zip(api_key).map(|(url, key)| {
                    SourceKind::Elastic(ElasticSource { url: url.trim_end_matches('/').to_owned(), api_key: SecretString::new(key), index })
                }),
            )
        }
        Some("splunk") => {
            let url = required("url", raw.url.as_ref(), errors);
            let token = required("token", raw.token.as_ref(), errors);
            check_url(&field("url"), url.as_deref(), errors);
            let search = text("search", raw.search.as_ref(), errors).unwrap_or_else(|| "search index=notable".to_owned());
            if !search.trim_start().starts_with("search ") {
                errors.push(format!("`{}`: must start with \"search \" (a Splunk search command), got {search:?}", field("search")));
            }
            (
                60,
                url.zip(token).map(|(url, token)| {
                    SourceKind::Splunk(SplunkSource { url: url.trim_end_matches('/').to_owned(), token: SecretString::new(token), search })
                }),
            )
        }
        Some(other) => {
            errors.push(format!("`{}`: unknown kind {other:?} (expected \"sentinel\", \"elastic\" or \"splunk\")", field("kind")));
            (30, None)
        }
        None => {
            errors.push(format!("`{}` is required (\"sentinel\", \"elastic\" or \"splunk\")", field("kind")));
            (30, None)
        }
    };
    let tenant = raw
        .tenant
        .as_deref()
        .and_then(|tenant| TenantId::parse(tenant).map_err(|error| errors.push(format!("`{}`: {error}", field("tenant")))).ok());
    let poll_interval_secs = raw.poll_interval_secs.unwrap_or(default_poll);
    if !(1..=86_400).contains(&poll_interval_secs) {
        errors.push(format!("`{}`: {poll_interval_secs} must be 1..=86400", field("poll_interval_secs")));
    }
    let page_size = raw.page_size.unwrap_or(500);
    if !(1..=10_000).contains(&page_size) {
        errors.push(format!("`{}`: {page_size} must be 1..=10000", field("page_size")));
    }
    let settle_secs = raw.settle_secs.unwrap_or(60);
    if settle_secs > 3_600 {
        errors.push(format!("`{}`: {settle_secs} must be at most 3600", field("settle_secs")));
    }
    let lookback = raw.initial_lookback_hours.unwrap_or(24);
    if !(1..=24 * 90).contains(&lookback) {
        errors.push(format!("`{}`: {lookback} must be 1..=2160", field("initial_lookback_hours")));
    }
    let max_retries = raw.max_retries.unwrap_or(3);
    if max_retries > 20 {
        errors.push(format!("`{}`: {max_retries} must be at most 20", field("max_retries")));
    }
    let retry_base_ms = raw.retry_base_ms.unwrap_or(1_000);
    if !(1..=60_000).contains(&retry_base_ms) {
        errors.push(format!("`{}`: {retry_base_ms} must be 1..=60000", field("retry_base_ms")));
    }
    let timeout_secs = raw.request_timeout_secs.unwrap_or(60);
    if !(1..=600).contains(&timeout_secs) {
        errors.push(format!("`{}`: {timeout_secs} must be 1..=600", field("request_timeout_secs")));
    }
    if errors.len() > before {
        return None;
    }
    Some(SourceConfig {
        name: name.to_owned(),
        enabled: raw.enabled.unwrap_or(true),
        tenant,
        poll_interval: Duration::from_secs(poll_interval_secs),
        page_size,
        settle: Duration::from_secs(settle_secs),
        initial_lookback: chrono::Duration::hours(i64::from(lookback)),
        max_retries,
        retry_base: Duration::from_millis(retry_base_ms),
        request_timeout: Duration::from_secs(timeout_secs),
        kind: kind?,
    })
}

/// Vendor URLs are https; plain http only to this machine (a local proxy or a test server), so a
/// credential never crosses a network in clear text.
pub(crate) fn check_url(field: &str, url: Option<&str>, errors: &mut Vec<String>) {
    let Some(url) = url else { return };
    if url.starts_with("https://") {
        return;
    }
    let Some(rest) = url.strip_prefix("http://") else {
        errors.push(format!("`{field}`: {url:?} must start with https://"));
        return;
    };
    let host = rest.split(['/', '?']).next().unwrap_or_default();
    let host = host.rsplit_once(':').filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit())).map_or(host, |(host, _)| host);
    if !matches!(host, "127.0.0.1" | "localhost" | "[::1]") {
        errors.push(format!("`{field}`: {url:?} is plain http to another machine; use https:// (credentials would travel in clear text)"));
    }
}
