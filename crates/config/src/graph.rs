//! `[graph]`: the asset/zone graph enrichment asks where an alert's assets reside and at what
//! consequence (ARCHITECTURE "Backends"): in-process under the data directory (default), or a
//! Neo4j server through its Query API. Both come before the static `[[pipeline.zones]]` table.

use std::collections::HashMap;

use serde::Deserialize;

use crate::{SecretString, interpolate};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGraph {
    /// `memory` (default) or `neo4j`.
    pub backend: Option<String>,
    /// neo4j: the server's HTTP address, e.g. `https://neo4j.internal:7473`.
    pub url: Option<String>,
    /// neo4j: the database (default `neo4j`).
    pub database: Option<String>,
    /// neo4j: Basic-auth user (default `neo4j`) and password (`${VAR}` interpolated).
    pub user: Option<String>,
    pub password: Option<String>,
    /// neo4j: longest wait for one query, in milliseconds (default 2000).
    pub timeout_ms: Option<u64>,
    /// neo4j: plain-HTTP addresses other than loopback are refused unless this is true.
    pub allow_http: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum GraphConfig {
    /// In-process, under `<data_dir>/graph`.
    #[default]
    Memory,
    Neo4j {
        url: String,
        database: String,
        user: String,
        password: SecretString,
        timeout: std::time::Duration,
    },
}

pub(crate) fn validate_graph(raw: RawGraph, env: &HashMap<String, String>, errors: &mut Vec<String>) -> GraphConfig {
    match raw.backend.as_deref().unwrap_or("memory") {
        "memory" => {
            let stray =
                [("url", raw.url.is_some()), ("database", raw.database.is_some()), ("user", raw.user.is_some())].into_iter().chain([
                    ("password", raw.password.is_some()),
                    ("timeout_ms", raw.timeout_ms.is_some()),
                    ("allow_http", raw.allow_http.is_some()),
                ]);
            for (field, _) in stray.filter(|(_, set)| *set) {
                errors.push(format!("`graph.{field}`: only for backend = \"neo4j\""));
            }
            GraphConfig::Memory
        }
        "neo4j" => {
            let url = match raw.url.as_deref() {
                Some(url) => interpolate("graph.url", url, env, errors),
                None => {
                    errors.push("`graph.url`: required for backend = \"neo4j\" (the server's HTTP address)".to_owned());
                    String::new()
                }
            };
            if !url.is_empty() {
                crate::blobs::check_server_url("graph.url", &url, Some(raw.allow_http.unwrap_or(false)), errors);
            }
            let database = raw.database.unwrap_or_else(|| "neo4j".to_owned());
            if database.is_empty() || !database.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_') {
                errors.push(format!("`graph.database`: {database:?} is not a database name"));
            }
            let password = match raw.password.as_deref() {
                Some(password) => interpolate("graph.password", password, env, errors),
                None => {
                    errors.push("`graph.password`: required for backend = \"neo4j\" (e.g. \"${NEO4J_PASSWORD}\")".to_owned());
                    String::new()
                }
            };
            let timeout_ms = raw.timeout_ms.unwrap_or(2_000);
            if !(1..=60_000).contains(&timeout_ms) {
                errors.push(format!("`graph.timeout_ms`: {timeout_ms} must be 1..=60000"));
            }
            GraphConfig::Neo4j {
                url,
                database,
                user: raw.user.unwrap_or_else(|| "neo4j".to_owned()),
                password: SecretString::new(password),
                timeout: std::time::Duration::from_millis(timeout_ms),
            }
        }
        other => {
            errors.push(format!("`graph.backend`: {other:?} is not one of memory, neo4j"));
            GraphConfig::Memory
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate(raw: RawGraph) -> (GraphConfig, Vec<String>) {
        let env = HashMap::from([("NEO4J_PASSWORD".to_owned(), "s3cret".to_owned())]);
        let mut errors = Vec::new();
        (validate_graph(raw, &env, &mut errors), errors)
    }

    #[test]
    fn memory_is_the_default_and_neo4j_needs_an_address_and_a_password() {
        assert_eq!(validate(RawGraph::default()), (GraphConfig::Memory, Vec::new()));
        let (_, errors) = validate(RawGraph { backend: Some("neo4j".to_owned()), ..RawGraph::default() });
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].contains("graph.url") && errors[1].contains("graph.password"), "{errors:?}");
        let (config, errors) = validate(RawGraph {
            backend: Some("neo4j".to_owned()),
            url: Some("http://127.0.0.1:7474".to_owned()),
            password: Some("${NEO4J_PASSWORD}".to_owned()),
            ..RawGraph::default()
        });
        assert!(errors.is_empty(), "{errors:?}");
        let GraphConfig::Neo4j { database, user, password, .. } = config else { panic!("neo4j expected") };
        assert_eq!((database.as_str(), user.as_str(), password.expose()), ("neo4j", "neo4j", "s3cret"));
    }

    #[test]
    fn plain_http_to_a_remote_server_and_stray_settings_are_refused() {
        let raw = RawGraph {
            backend: Some("neo4j".to_owned()),
            url: Some("http://neo4j.internal:7474".to_owned()),
            password: Some("p".to_owned()),
            ..RawGraph::default()
        };
        let (_, errors) = validate(raw.clone());
        assert!(errors.iter().any(|error| error.contains("plain HTTP to a non-loopback host")), "{errors:?}");
        assert!(validate(RawGraph { allow_http: Some(true), ..raw }).1.is_empty());
        let (_, errors) = validate(RawGraph { url: Some("http://x".to_owned()), ..RawGraph::default() });
        assert_eq!(errors, vec!["`graph.url`: only for backend = \"neo4j\"".to_owned()]);
    }
}
