//! `[redis]`: the shared hot paths of a multi-worker deployment (issue 9, REQUIREMENTS §3.9 "Other
//! stores"): the IOC exact-match cache (FR-ENR-004), FP hot patterns (FR-RAG-005), kill switches
//! shared by every worker and tenant model-call quotas (FR-ING-007). Absent: everything stays in
//! the case store and the configuration file, as on one machine.

use std::collections::HashMap;

use serde::Deserialize;

use crate::{SecretString, interpolate};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRedis {
    /// `redis://[user:password@]host:port[/db]`; `${VAR}` is interpolated.
    pub url: Option<String>,
    /// Put before every key (several deployments on one server); default none.
    pub key_prefix: Option<String>,
    /// Longest wait for one command before the caller falls back (default 5000).
    pub timeout_ms: Option<u64>,
    /// How long "no indicator" answers are cached, in seconds (default 3600); writes through the
    /// cache replace them at once.
    pub negative_ttl_secs: Option<u64>,
    /// How often each worker re-reads the shared kill switches, in seconds (default 10, at most 60).
    pub kill_switch_refresh_secs: Option<u64>,
}

/// A validated `[redis]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisConfig {
    pub url: SecretString,
    pub key_prefix: String,
    pub timeout: std::time::Duration,
    pub negative_ttl_secs: u64,
    pub kill_switch_refresh: std::time::Duration,
}

pub(crate) fn validate_redis(raw: RawRedis, env: &HashMap<String, String>, errors: &mut Vec<String>) -> Option<RedisConfig> {
    let url = raw.url.as_deref().map(|url| interpolate("redis.url", url, env, errors));
    let Some(url) = url else {
        let stray =
            [raw.key_prefix.is_some(), raw.timeout_ms.is_some(), raw.negative_ttl_secs.is_some(), raw.kill_switch_refresh_secs.is_some()];
        if stray.iter().any(|set| *set) {
            errors.push("`redis`: settings given without `redis.url`".to_owned());
        }
        return None;
    };
    if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
        errors.push("`redis.url`: must start with redis:// or rediss://".to_owned());
    }
    let key_prefix = raw.key_prefix.unwrap_or_default();
    if key_prefix.chars().any(|c| c.is_whitespace() || c.is_control()) {
        errors.push(format!("`redis.key_prefix`: {key_prefix:?} holds whitespace"));
    }
    let timeout_ms = raw.timeout_ms.unwrap_or(5_000);
    if !(1..=60_000).contains(&timeout_ms) {
        errors.push(format!("`redis.timeout_ms`: {timeout_ms} must be 1..=60000"));
    }
    let negative_ttl_secs = raw.negative_ttl_secs.unwrap_or(3_600);
    if !(1..=86_400).contains(&negative_ttl_secs) {
        errors.push(format!("`redis.negative_ttl_secs`: {negative_ttl_secs} must be 1..=86400"));
    }
    let refresh = raw.kill_switch_refresh_secs.unwrap_or(10);
    if !(1..=60).contains(&refresh) {
        errors.push(format!("`redis.kill_switch_refresh_secs`: {refresh} must be 1..=60 (a kill switch takes effect within a minute)"));
    }
    Some(RedisConfig {
        url: SecretString::new(url),
        key_prefix,
        timeout: std::time::Duration::from_millis(timeout_ms),
        negative_ttl_secs,
        kill_switch_refresh: std::time::Duration::from_secs(refresh),
    })
}
