//! Configuration: one TOML file (optional), `${VAR}` interpolation, `ALUSKORT_*` environment
//! overrides, and a pure `validate` that reports every problem at once (STYLE ex. 3/4). The
//! environment is passed in as a map; this crate never reads it.
//!
//! Without a file everything is embedded under `./aluskort-data`, the HTTP server binds
//! 127.0.0.1, and reasoning is deterministic unless a model key is in the environment ([`llm`]).

pub mod auth;
pub mod blobs;
pub mod bus;
pub mod graph;
pub mod knowledge;
pub mod llm;
mod raw;
pub mod redis;
pub mod respond;
mod secret;
pub mod sources;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;

pub use auth::{ApiKey, AuthConfig, OidcConfig, Permission, Role};
pub use blobs::{BlobsConfig, S3Config};
pub use bus::BusConfig;
pub use graph::GraphConfig;
pub use knowledge::{EmbedderConfig, KnowledgeConfig, VectorIndexConfig};
pub use llm::{LlmConfig, LlmProviderConfig, OpenAiFlavorConfig};
pub use raw::{RawCaseStore, RawConfig};
pub use redis::RedisConfig;
pub use respond::{ApprovalTimeouts, NotifyKind, NotifyTarget, OAuthApi, RespondConfig, ResponseMode, WebhookTarget};
pub use secret::SecretString;
pub use sources::{ElasticSource, SentinelSource, SourceConfig, SourceKind, SplunkSource};

/// Default of `pipeline.enricher_timeout_ms` (the pipeline's own default, 500 ms).
pub const DEFAULT_ENRICHER_TIMEOUT_MS: u64 = 500;

/// Every problem found, one line each.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.join("\n"))]
pub struct ConfigErrors(pub Vec<String>);

/// Where cases, investigations and the audit chain live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaseStoreConfig {
    /// `<data_dir>/aluskort.db`.
    Sqlite,
    Postgres {
        url: SecretString,
        schema: Option<String>,
        max_connections: u32,
    },
}

/// Scopes in which automation is switched off (FR-RSN-006 kill switches): alerts of these
/// tenants or sources, or naming these techniques (or their sub-techniques), always wait for a
/// human; a switched-off FP pattern closes nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KillSwitches {
    pub tenants: Vec<String>,
    pub sources: Vec<String>,
    pub techniques: Vec<String>,
    /// FP pattern ids whose matches may not close alerts.
    pub patterns: Vec<String>,
}

impl KillSwitches {
    pub fn is_empty(&self) -> bool {
        self.tenants.is_empty() && self.sources.is_empty() && self.techniques.is_empty() && self.patterns.is_empty()
    }

    /// Why automation is off for an alert of `tenant` from `source` naming `techniques`, if it is:
    /// a listed tenant or source, or a listed technique or a sub-technique of one.
    pub fn applies<'a>(&self, tenant: &str, source: &str, techniques: impl IntoIterator<Item = &'a str>) -> Option<String> {
        if self.tenants.iter().any(|switched| switched == tenant) {
            return Some(format!("kill switch on tenant {tenant}"));
        }
        if self.sources.iter().any(|switched| switched == source) {
            return Some(format!("kill switch on source {source}"));
        }
        techniques.into_iter().find_map(|id| {
            self.techniques
                .iter()
                .find(|switched| id == switched.as_str() || id.strip_prefix(switched.as_str()).is_some_and(|rest| rest.starts_with('.')))
                .map(|switched| format!("kill switch on technique {switched} ({id})"))
        })
    }

    /// Why `pattern_id` may not close alerts, if it may not.
    pub fn blocks_pattern(&self, pattern_id: &str) -> Option<String> {
        self.patterns.iter().any(|switched| switched == pattern_id).then(|| format!("kill switch on FP pattern {pattern_id}"))
    }

    /// Both sets' switches, each once, `self`'s first.
    pub fn union(&self, other: &KillSwitches) -> KillSwitches {
        let mut out = self.clone();
        for dimension in KillDimension::ALL {
            for value in other.values(dimension) {
                out.insert(dimension, value.clone());
            }
        }
        out
    }
}

/// What a kill switch is on (REQUIREMENTS §1.9: tenant, pattern, technique, datasource).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KillDimension {
    Tenant,
    Source,
    Technique,
    Pattern,
}

impl KillDimension {
    pub const ALL: [KillDimension; 4] = [KillDimension::Tenant, KillDimension::Source, KillDimension::Technique, KillDimension::Pattern];

    pub const fn as_str(self) -> &'static str {
        match self {
            KillDimension::Tenant => "tenant",
            KillDimension::Source => "source",
            KillDimension::Technique => "technique",
            KillDimension::Pattern => "pattern",
        }
    }

    const fn plural(self) -> &'static str {
        match self {
            KillDimension::Tenant => "tenants",
            KillDimension::Source => "sources",
            KillDimension::Technique => "techniques",
            KillDimension::Pattern => "patterns",
        }
    }

    /// `tenant`, `source` (or `datasource`), `technique` or `pattern`.
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "tenant" => Some(KillDimension::Tenant),
            "source" | "datasource" => Some(KillDimension::Source),
            "technique" => Some(KillDimension::Technique),
            "pattern" => Some(KillDimension::Pattern),
            _ => None,
        }
    }

    /// `value` as switches of this dimension hold it (technique ids canonical, so matching is
    /// exact), or why it cannot be one.
    pub fn canonical(self, value: &str) -> Result<String, String> {
        match self {
            KillDimension::Tenant | KillDimension::Pattern if value.trim().is_empty() => Err(format!("{value:?} is empty")),
            KillDimension::Tenant | KillDimension::Pattern => Ok(value.to_owned()),
            KillDimension::Source if raw::SOURCES.contains(&value) => Ok(value.to_owned()),
            KillDimension::Source => Err(format!("unknown source {value:?} (expected one of {})", raw::SOURCES.join(", "))),
            KillDimension::Technique => aluskort_core::Ioc::parse(aluskort_core::IocType::AttackTechnique, value)
                .map(|id| id.value().to_owned())
                .map_err(|error| format!("{value:?} is not a technique id (T1078, T1078.004, AML.T0051): {error}")),
        }
    }
}

impl std::fmt::Display for KillDimension {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl KillSwitches {
    /// The values switched off in `dimension`.
    pub fn values(&self, dimension: KillDimension) -> &[String] {
        match dimension {
            KillDimension::Tenant => &self.tenants,
            KillDimension::Source => &self.sources,
            KillDimension::Technique => &self.techniques,
            KillDimension::Pattern => &self.patterns,
        }
    }

    /// Switches `value` off in `dimension` (once).
    pub fn insert(&mut self, dimension: KillDimension, value: String) {
        let list = match dimension {
            KillDimension::Tenant => &mut self.tenants,
            KillDimension::Source => &mut self.sources,
            KillDimension::Technique => &mut self.techniques,
            KillDimension::Pattern => &mut self.patterns,
        };
        if !list.contains(&value) {
            list.push(value);
        }
    }
}

/// The kill switches in force, shared by the pipeline and the responder: the configuration file's,
/// joined by those switched on at run time (in Redis, `[redis]`) once a refresher has read them.
/// Cloning shares the same state.
#[derive(Debug, Clone, Default)]
pub struct SharedKillSwitches {
    current: std::sync::Arc<std::sync::RwLock<std::sync::Arc<KillSwitches>>>,
}

impl SharedKillSwitches {
    pub fn new(switches: KillSwitches) -> Self {
        SharedKillSwitches { current: std::sync::Arc::new(std::sync::RwLock::new(std::sync::Arc::new(switches))) }
    }

    /// The switches in force now.
    pub fn snapshot(&self) -> std::sync::Arc<KillSwitches> {
        std::sync::Arc::clone(&self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// Puts `switches` in force.
    pub fn replace(&self, switches: KillSwitches) {
        *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = std::sync::Arc::new(switches);
    }
}

impl From<KillSwitches> for SharedKillSwitches {
    fn from(switches: KillSwitches) -> Self {
        SharedKillSwitches::new(switches)
    }
}

/// What a compromise of an asset in a zone costs (the static zone→consequence table, used for
/// asset consequence in enrichment and reasoning).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Consequence {
    Low,
    Medium,
    High,
    Critical,
}

impl Consequence {
    pub const fn as_str(self) -> &'static str {
        match self {
            Consequence::Low => "low",
            Consequence::Medium => "medium",
            Consequence::High => "high",
            Consequence::Critical => "critical",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "low" => Some(Consequence::Low),
            "medium" => Some(Consequence::Medium),
            "high" => Some(Consequence::High),
            "critical" => Some(Consequence::Critical),
            _ => None,
        }
    }
}

/// `[[pipeline.zones]]`: which assets live in a zone (CTEM exposures are correlated by asset and
/// zone, FR-ENR-006) and what a compromise there costs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetZone {
    /// The zone name as CTEM findings spell it (`asset_zone`), e.g. `Zone3_Enterprise`.
    pub name: String,
    pub consequence: Consequence,
    /// Lower-case host patterns: an exact name, `*.suffix` or `prefix*`.
    pub hosts: Vec<String>,
    pub cidrs: Vec<ipnet::IpNet>,
}

impl AssetZone {
    /// Whether `host` (any case) matches one of the zone's host patterns.
    pub fn has_host(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        self.hosts.iter().any(|pattern| {
            if let Some(suffix) = pattern.strip_prefix('*') {
                host.ends_with(suffix)
            } else if let Some(prefix) = pattern.strip_suffix('*') {
                host.starts_with(prefix)
            } else {
                host == *pattern
            }
        })
    }

    pub fn has_ip(&self, ip: std::net::IpAddr) -> bool {
        self.cidrs.iter().any(|cidr| cidr.contains(&ip))
    }
}

/// The first zone (in configuration order) holding `host`, else the first holding one of `ips`.
pub fn zone_of<'a>(zones: &'a [AssetZone], host: Option<&str>, ips: &[std::net::IpAddr]) -> Option<&'a AssetZone> {
    host.and_then(|host| zones.iter().find(|zone| zone.has_host(host)))
        .or_else(|| zones.iter().find(|zone| ips.iter().any(|ip| zone.has_ip(*ip))))
}

/// Validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub data_dir: PathBuf,
    pub listen_addr: SocketAddr,
    pub case_store: CaseStoreConfig,
    pub grouping_window_hours: u32,
    /// `[pipeline.kill_switches]`: scopes where nothing is closed or acted on automatically.
    pub kill_switches: KillSwitches,
    pub max_attempts: u32,
    /// `pipeline.enricher_timeout_ms`: longest wait for each enricher before the investigation goes
    /// on without it (default [`DEFAULT_ENRICHER_TIMEOUT_MS`]).
    pub enricher_timeout: std::time::Duration,
    /// `[[pipeline.zones]]`: asset zones and their consequence, in order (first match wins).
    pub zones: Vec<AssetZone>,
    /// Largest request body `POST /v1/alerts` accepts, in bytes.
    pub max_body_bytes: usize,
    /// HMAC-SHA256 key for webhook signatures; `None` accepts unsigned requests.
    pub webhook_secret: Option<SecretString>,
    /// Configured SIEM connectors, by name.
    pub sources: Vec<SourceConfig>,
    pub knowledge: KnowledgeConfig,
    pub llm: LlmConfig,
    /// `[respond]`: playbooks, approvals and action executors.
    pub respond: RespondConfig,
    /// `[redis]`: shared IOC cache, FP hot patterns, kill switches and quotas; `None` keeps them
    /// in the case store and this file.
    pub redis: Option<RedisConfig>,
    /// `[bus]`: in-process (default) or Kafka.
    pub bus: BusConfig,
    /// `[blobs]`: raw payloads and evidence packages, in local files (default) or an S3 bucket.
    pub blobs: BlobsConfig,
    /// `[graph]`: the asset/zone graph, in-process (default) or Neo4j.
    pub graph: GraphConfig,
    /// `[api.auth]`: API keys and roles; authentication is off only when explicitly disabled.
    pub auth: AuthConfig,
}

impl Config {
    pub fn source(&self, name: &str) -> Option<&SourceConfig> {
        self.sources.iter().find(|source| source.name == name)
    }
}

/// Parses `text` (TOML) and validates it; `None` means "no file": embedded defaults.
pub fn load(text: Option<&str>, env: &HashMap<String, String>) -> Result<Config, ConfigErrors> {
    let raw = match text {
        Some(text) => {
            toml::from_str::<RawConfig>(text).map_err(|error| ConfigErrors(vec![format!("config file: {}", error.to_string().trim())]))?
        }
        None => RawConfig::default(),
    };
    raw.validate(env)
}

/// Replaces `${NAME}` with the value of `NAME` from `env`; an unset variable or a value with a
/// newline is an error naming `field`.
pub fn interpolate(field: &str, value: &str, env: &HashMap<String, String>, errors: &mut Vec<String>) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('}') else {
            errors.push(format!("`{field}`: unterminated `${{` in value"));
            return out;
        };
        let name = &rest[start + 2..start + end];
        match env.get(name) {
            Some(found) if found.contains('\n') => errors.push(format!("`{field}`: environment variable {name} contains a newline")),
            Some(found) => out.push_str(found),
            None => errors.push(format!("`{field}`: environment variable {name} is not set")),
        }
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests;
