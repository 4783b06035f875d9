//! The file format, as written, before validation. Every field is documented in
//! `config/aluskort.example.toml`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use crate::{CaseStoreConfig, Config, ConfigErrors, SecretString, interpolate};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Format version; only 1 exists.
    pub version: Option<u32>,
    pub data_dir: Option<String>,
    pub listen_addr: Option<String>,
    #[serde(default)]
    pub case_store: RawCaseStore,
    #[serde(default)]
    pub pipeline: RawPipeline,
    #[serde(default)]
    pub llm: crate::llm::RawLlm,
    #[serde(default)]
    pub api: RawApi,
    #[serde(default)]
    pub sources: std::collections::BTreeMap<String, crate::sources::RawSource>,
    #[serde(default)]
    pub knowledge: crate::knowledge::RawKnowledge,
    #[serde(default)]
    pub respond: crate::respond::RawRespond,
    #[serde(default)]
    pub redis: crate::redis::RawRedis,
    #[serde(default)]
    pub bus: crate::bus::RawBus,
    #[serde(default)]
    pub blobs: crate::blobs::RawBlobs,
    #[serde(default)]
    pub graph: crate::graph::RawGraph,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCaseStore {
    /// `sqlite` (default) or `postgres`.
    pub backend: Option<String>,
    pub url: Option<String>,
    pub schema: Option<String>,
    pub max_connections: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPipeline {
    pub grouping_window_hours: Option<u32>,
    pub max_attempts: Option<u32>,
    /// Longest wait for each enricher before the investigation goes on without it, in milliseconds.
    pub enricher_timeout_ms: Option<u64>,
    #[serde(default)]
    pub kill_switches: RawKillSwitches,
    /// `[[pipeline.zones]]`, in order: the first zone holding an asset is its zone.
    #[serde(default)]
    pub zones: Vec<RawZone>,
}

/// One asset zone: its name as CTEM findings spell it, what a compromise there costs, and which
/// assets it holds (host name patterns and/or address ranges).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawZone {
    pub name: Option<String>,
    /// `low`, `medium`, `high` or `critical`.
    pub consequence: Option<String>,
    /// Exact names, `*.suffix` or `prefix*`; matched without regard to case.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// CIDRs; a bare address is one host (/32 or /128).
    #[serde(default)]
    pub cidrs: Vec<String>,
}

/// Scopes in which nothing is closed or acted on automatically: every alert waits for a human.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKillSwitches {
    #[serde(default)]
    pub tenants: Vec<String>,
    /// `sentinel`, `elastic`, `splunk`, `webhook`, `atlas`, `canonical`.
    #[serde(default)]
    pub sources: Vec<String>,
    /// ATT&CK/ATLAS ids; a technique also covers its sub-techniques.
    #[serde(default)]
    pub techniques: Vec<String>,
    /// FP pattern ids that may not close alerts.
    #[serde(default)]
    pub patterns: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApi {
    pub max_body_bytes: Option<usize>,
    /// When set, `POST /v1/alerts` requires `X-Aluskort-Signature: sha256=<hex HMAC-SHA256 of the body>`.
    pub webhook_secret: Option<String>,
    /// `[api.auth]`: API keys and roles.
    #[serde(default)]
    pub auth: crate::auth::RawAuth,
}

/// Environment variables that override file values.
pub const ENV_DATA_DIR: &str = "ALUSKORT_DATA_DIR";
pub const ENV_LISTEN_ADDR: &str = "ALUSKORT_LISTEN_ADDR";
pub const ENV_CASE_STORE_URL: &str = "ALUSKORT_CASE_STORE_URL";

impl RawConfig {
    /// Pure: no file system, no network. Collects every problem before returning.
    pub fn validate(self, env: &HashMap<String, String>) -> Result<Config, ConfigErrors> {
        let mut errors = Vec::new();
        if let Some(version) = self.version
            && version != 1
        {
            errors.push(format!("`version`: {version} is not supported (expected 1)"));
        }
        let data_dir = env
            .get(ENV_DATA_DIR)
            .cloned()
            .or(self.data_dir.map(|dir| interpolate("data_dir", &dir, env, &mut errors)))
            .unwrap_or_else(|| "./aluskort-data".to_owned());
        if data_dir.trim().is_empty() {
            errors.push("`data_dir` must not be empty".to_owned());
        }
        let listen_text = env.get(ENV_LISTEN_ADDR).cloned().or(self.listen_addr).unwrap_or_else(|| "127.0.0.1:8080".to_owned());
        let listen_addr = match listen_text.parse::<SocketAddr>() {
            Ok(addr) => Some(addr),
            Err(error) => {
                errors.push(format!("`listen_addr`: {listen_text:?} is not an address:port ({error})"));
                None
            }
        };
        let case_store = match self.case_store.backend.as_deref().unwrap_or("sqlite") {
            "sqlite" => {
                if self.case_store.url.is_some() {
                    errors.push("`case_store.url` is only used with backend = \"postgres\"".to_owned());
                }
                Some(CaseStoreConfig::Sqlite)
            }
            "postgres" => {
                let url = env
                    .get(ENV_CASE_STORE_URL)
                    .cloned()
                    .or_else(|| self.case_store.url.as_deref().map(|url| interpolate("case_store.url", url, env, &mut errors)));
                let max_connections = self.case_store.max_connections.unwrap_or(10);
                if max_connections == 0 {
                    errors.push("`case_store.max_connections` must be > 0".to_owned());
                }
                if let Some(schema) = &self.case_store.schema
                    && (schema.is_empty() || !schema.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
                {
                    errors.push(format!("`case_store.schema`: {schema:?} must be letters, digits and underscores"));
                }
                match url {
                    Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => Some(CaseStoreConfig::Postgres {
                        url: SecretString::new(url),
                        schema: self.case_store.schema.clone(),
                        max_connections,
                    }),
                    Some(_) => {
                        errors.push("`case_store.url` must start with postgres:// or postgresql://".to_owned());
                        None
                    }
                    None => {
                        errors.push(format!("`case_store.url` is required for backend = \"postgres\" (or set {ENV_CASE_STORE_URL})"));
                        None
                    }
                }
            }
            other => {
                errors.push(format!("`case_store.backend`: unknown backend {other:?} (expected \"sqlite\" or \"postgres\")"));
                None
            }
        };
        let kill_switches = validate_kill_switches(&self.pipeline.kill_switches, &mut errors);
        let zones = validate_zones(&self.pipeline.zones, &mut errors);
        let grouping_window_hours = self.pipeline.grouping_window_hours.unwrap_or(24);
        if !(1..=720).contains(&grouping_window_hours) {
            errors.push(format!("`pipeline.grouping_window_hours`: {grouping_window_hours} must be 1..=720"));
        }
        let max_attempts = self.pipeline.max_attempts.unwrap_or(5);
        if max_attempts == 0 {
            errors.push("`pipeline.max_attempts` must be > 0".to_owned());
        }
        let enricher_timeout_ms = self.pipeline.enricher_timeout_ms.unwrap_or(crate::DEFAULT_ENRICHER_TIMEOUT_MS);
        if !(1..=60_000).contains(&enricher_timeout_ms) {
            errors.push(format!("`pipeline.enricher_timeout_ms`: {enricher_timeout_ms} must be 1..=60000 (milliseconds)"));
        }
        let max_body_bytes = self.api.max_body_bytes.unwrap_or(10 * 1024 * 1024);
        if max_body_bytes < 1024 {
            errors.push("`api.max_body_bytes` must be at least 1024".to_owned());
        }
        let webhook_secret = self.api.webhook_secret.as_deref().map(|secret| interpolate("api.webhook_secret", secret, env, &mut errors));
        if webhook_secret.as_ref().is_some_and(|secret| secret.len() < 16) {
            errors.push("`api.webhook_secret` must be at least 16 characters".to_owned());
        }
        let sources = crate::sources::validate_sources(self.sources, env, &mut errors);
        let knowledge = crate::knowledge::validate_knowledge(self.knowledge, env, &mut errors);
        let llm = crate::llm::validate_llm(self.llm, env, &mut errors);
        let respond = crate::respond::validate_respond(self.respond, env, &mut errors);
        let redis = crate::redis::validate_redis(self.redis, env, &mut errors);
        let bus = crate::bus::validate_bus(self.bus, env, &mut errors);
        let blobs = crate::blobs::validate_blobs(self.blobs, env, &mut errors);
        let graph = crate::graph::validate_graph(self.graph, env, &mut errors);
        let auth = crate::auth::validate_auth(self.api.auth, env, &mut errors);
        if auth.disabled && listen_addr.is_some_and(|addr: SocketAddr| !addr.ip().is_loopback()) {
            errors.push("`api.auth.disabled`: only for local use; `listen_addr` must then be a loopback address".to_owned());
        }
        match (errors.is_empty(), listen_addr, case_store) {
            (true, Some(listen_addr), Some(case_store)) => Ok(Config {
                data_dir: PathBuf::from(data_dir),
                listen_addr,
                case_store,
                grouping_window_hours,
                kill_switches,
                max_attempts,
                enricher_timeout: std::time::Duration::from_millis(enricher_timeout_ms),
                zones,
                max_body_bytes,
                webhook_secret: webhook_secret.map(SecretString::new),
                sources,
                knowledge,
                llm,
                respond,
                redis,
                bus,
                blobs,
                graph,
                auth,
            }),
            _ => Err(ConfigErrors(errors)),
        }
    }
}

pub(crate) const SOURCES: &[&str] = &["sentinel", "elastic", "splunk", "webhook", "atlas", "canonical"];

fn validate_kill_switches(raw: &RawKillSwitches, errors: &mut Vec<String>) -> crate::KillSwitches {
    use crate::KillDimension;
    let mut check = |dimension: KillDimension, values: &[String]| -> Vec<String> {
        values
            .iter()
            .filter_map(|value| {
                dimension
                    .canonical(value)
                    .map_err(|error| errors.push(format!("`pipeline.kill_switches.{}`: {error}", dimension.plural())))
                    .ok()
            })
            .collect()
    };
    crate::KillSwitches {
        tenants: check(KillDimension::Tenant, &raw.tenants),
        sources: check(KillDimension::Source, &raw.sources),
        techniques: check(KillDimension::Technique, &raw.techniques),
        patterns: check(KillDimension::Pattern, &raw.patterns),
    }
}

fn validate_zones(raw: &[RawZone], errors: &mut Vec<String>) -> Vec<crate::AssetZone> {
    let mut zones = Vec::with_capacity(raw.len());
    for (i, zone) in raw.iter().enumerate() {
        let field = format!("pipeline.zones[{i}]");
        let name = match zone.name.as_deref() {
            None => {
                errors.push(format!("`{field}.name` is required"));
                None
            }
            Some(name) if name.trim().is_empty() => {
                errors.push(format!("`{field}.name` must not be empty"));
                None
            }
            // Matched exactly against the zone CTEM findings name, so no silent trimming.
            Some(name) if name.trim() != name => {
                errors.push(format!("`{field}.name`: {name:?} has leading or trailing whitespace"));
                None
            }
            Some(name) => {
                if let Some(first) = raw.iter().take(i).position(|earlier| earlier.name.as_deref() == Some(name)) {
                    errors.push(format!("`{field}.name`: {name:?} is already the name of `pipeline.zones[{first}]`"));
                }
                Some(name.to_owned())
            }
        };
        let consequence = match zone.consequence.as_deref() {
            None => {
                errors.push(format!("`{field}.consequence` is required (low, medium, high or critical)"));
                None
            }
            Some(text) => {
                let consequence = crate::Consequence::parse(text);
                if consequence.is_none() {
                    errors.push(format!("`{field}.consequence`: unknown consequence {text:?} (expected low, medium, high or critical)"));
                }
                consequence
            }
        };
        let mut hosts = Vec::with_capacity(zone.hosts.len());
        for (j, pattern) in zone.hosts.iter().enumerate() {
            match host_pattern_problem(pattern) {
                Some(problem) => errors.push(format!("`{field}.hosts[{j}]`: {pattern:?} {problem}")),
                None => hosts.push(pattern.to_ascii_lowercase()),
            }
        }
        let mut cidrs = Vec::with_capacity(zone.cidrs.len());
        for (j, text) in zone.cidrs.iter().enumerate() {
            let parsed = text.parse::<ipnet::IpNet>().or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
            match parsed {
                Ok(cidr) => cidrs.push(cidr),
                Err(_) => errors.push(format!("`{field}.cidrs[{j}]`: {text:?} is not a CIDR (10.0.0.0/8, fd00::/8) or an IP address")),
            }
        }
        if zone.hosts.is_empty() && zone.cidrs.is_empty() {
            errors.push(format!("`{field}` has neither `hosts` nor `cidrs`, so no asset could ever be in it"));
        }
        if let (Some(name), Some(consequence)) = (name, consequence) {
            zones.push(crate::AssetZone { name, consequence, hosts, cidrs });
        }
    }
    zones
}

/// Why a `hosts` pattern is refused: empty, whitespace (never in a host name), or a `*` anywhere
/// but alone at the start or the end.
fn host_pattern_problem(pattern: &str) -> Option<&'static str> {
    if pattern.trim().is_empty() {
        Some("is empty")
    } else if pattern.chars().any(char::is_whitespace) {
        Some("contains whitespace")
    } else if pattern == "*" {
        Some("matches every host (a catch-all zone would hide every other zone's addresses)")
    } else if pattern.matches('*').count() > 1 {
        Some("has more than one `*` (expected an exact name, `*.suffix` or `prefix*`)")
    } else if pattern.contains('*') && !pattern.starts_with('*') && !pattern.ends_with('*') {
        Some("has a `*` in the middle (expected an exact name, `*.suffix` or `prefix*`)")
    } else {
        None
    }
}
