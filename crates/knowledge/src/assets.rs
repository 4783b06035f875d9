//! The asset/zone graph (ARCHITECTURE "Backends"; issue 9): `(:Asset {tenant, name})-[:RESIDES_IN]->
//! (:Zone {tenant, name, consequence})`. Enrichment asks it where an alert's hosts and addresses reside
//! and what a compromise there costs (the consequence class), before the static
//! `[[pipeline.zones]]` table.
//!
//! - [`MemoryGraph`]: in-process, kept as an append-only JSONL log under the data directory (the
//!   embedded default; durable before visible, like the vector index).
//! - [`Neo4jGraph`]: a Neo4j server through its Query API (`POST /db/{database}/query/v2`, Basic
//!   auth, parameterised Cypher; <https://neo4j.com/docs/query-api/current/query/>). Results come
//!   back as `{"data": {"fields": [...], "values": [[...], ...]}}`; failures as
//!   `{"errors": [{"code", "message"}]}`.
//!
//! Asset names are host names (any case; compared lower-case) or IP addresses. Assets and zones
//! belong to a tenant. An asset resides in one zone: placing it again moves it.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use aluskort_config::Consequence;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::RwLock;

/// Where one asset of a tenant resides, and what a compromise there costs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    pub tenant: String,
    /// Host name (lower-case) or IP address.
    pub asset: String,
    pub zone: String,
    pub consequence: String,
}

impl Placement {
    /// A validated placement: names trimmed and lower-cased, zone and consequence required.
    pub fn new(tenant: &str, asset: &str, zone: &str, consequence: &str) -> Result<Self, GraphError> {
        let asset = asset.trim().to_ascii_lowercase();
        let zone = zone.trim().to_owned();
        let tenant = tenant.trim().to_owned();
        let invalid = |reason: String| GraphError::Invalid { asset: asset.clone(), reason };
        if asset.is_empty() || asset.len() > 255 || asset.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid("asset must be a host name or an address (1-255 characters, no spaces)".to_owned()));
        }
        if tenant.is_empty() || zone.is_empty() || zone.len() > 128 {
            return Err(invalid("tenant and zone (at most 128 characters) are required".to_owned()));
        }
        let consequence = Consequence::parse(consequence)
            .ok_or_else(|| invalid(format!("consequence {consequence:?} is not one of low, medium, high, critical")))?;
        Ok(Placement { tenant, asset, zone, consequence: consequence.as_str().to_owned() })
    }

    pub fn consequence(&self) -> Option<Consequence> {
        Consequence::parse(&self.consequence)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error("asset {asset:?}: {reason}")]
    Invalid { asset: String, reason: String },
    #[error("asset graph storage: {0}")]
    Io(#[from] std::io::Error),
    #[error("neo4j: {0}")]
    Remote(String),
}

#[async_trait]
pub trait AssetGraph: Send + Sync {
    /// Puts each asset in its zone (out of any other), creating zones as needed and setting each
    /// zone's consequence to the placement's (zones are the tenant's: the latest placement into a
    /// zone sets the consequence of every asset in it). Returns how many placements were applied.
    async fn place(&self, placements: &[Placement]) -> Result<usize, GraphError>;
    /// Where `tenant`'s named assets reside (names compared lower-case); unknown ones are absent.
    /// Sorted by asset.
    async fn placements(&self, tenant: &str, assets: &[String]) -> Result<Vec<Placement>, GraphError>;
}

/// The in-process graph, logged to `<dir>/assets.jsonl` before it is visible.
pub struct MemoryGraph {
    path: PathBuf,
    placed: RwLock<Nodes>,
    /// Log lines that could not be read when the graph was opened.
    pub skipped_lines: usize,
}

/// A tenant's zones and where its assets reside: the two node kinds and the one relationship.
#[derive(Default)]
struct Nodes {
    /// (tenant, asset) → zone (`RESIDES_IN`).
    residence: BTreeMap<(String, String), String>,
    /// (tenant, zone) → consequence.
    zones: BTreeMap<(String, String), String>,
}

impl Nodes {
    fn apply(&mut self, placement: &Placement) {
        self.zones.insert((placement.tenant.clone(), placement.zone.clone()), placement.consequence.clone());
        self.residence.insert((placement.tenant.clone(), placement.asset.clone()), placement.zone.clone());
    }
}

impl MemoryGraph {
    pub async fn open(dir: &Path) -> Result<Self, GraphError> {
        tokio::fs::create_dir_all(dir).await?;
        let path = dir.join("assets.jsonl");
        let mut placed = Nodes::default();
        let mut skipped_lines = 0;
        match tokio::fs::read_to_string(&path).await {
            Ok(text) => {
                for line in text.lines().filter(|line| !line.trim().is_empty()) {
                    match serde_json::from_str::<Placement>(line) {
                        Ok(placement) => placed.apply(&placement),
                        Err(_) => skipped_lines += 1,
                    }
                }
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(error.into()),
        }
        Ok(MemoryGraph { path, placed: RwLock::new(placed), skipped_lines })
    }
}

#[async_trait]
impl AssetGraph for MemoryGraph {
    async fn place(&self, placements: &[Placement]) -> Result<usize, GraphError> {
        let mut placed = self.placed.write().await;
        let mut buffer = Vec::new();
        for placement in placements {
            serde_json::to_writer(&mut buffer, placement).map_err(std::io::Error::other)?;
            buffer.push(b'\n');
        }
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&self.path)?;
        file.write_all(&buffer)?;
        file.sync_data()?;
        for placement in placements {
            placed.apply(placement);
        }
        Ok(placements.len())
    }

    async fn placements(&self, tenant: &str, assets: &[String]) -> Result<Vec<Placement>, GraphError> {
        let placed = self.placed.read().await;
        let mut found: Vec<Placement> = assets
            .iter()
            .filter_map(|asset| {
                let asset = asset.trim().to_ascii_lowercase();
                let zone = placed.residence.get(&(tenant.to_owned(), asset.clone()))?;
                let consequence = placed.zones.get(&(tenant.to_owned(), zone.clone())).cloned().unwrap_or_default();
                Some(Placement { tenant: tenant.to_owned(), asset, zone: zone.clone(), consequence })
            })
            .collect();
        found.sort_by(|a, b| a.asset.cmp(&b.asset));
        found.dedup();
        Ok(found)
    }
}

/// Moves each asset into its zone: merges zone and asset, drops a residence elsewhere, merges
/// the residence.
pub const PLACE_CYPHER: &str = "UNWIND $placements AS p \
MERGE (z:Zone {tenant: p.tenant, name: p.zone}) SET z.consequence = p.consequence \
MERGE (a:Asset {tenant: p.tenant, name: p.asset}) \
WITH a, z \
OPTIONAL MATCH (a)-[old:RESIDES_IN]->(other:Zone) WHERE other <> z \
DELETE old \
WITH DISTINCT a, z \
MERGE (a)-[:RESIDES_IN]->(z) \
RETURN count(a) AS placed";

/// The consequence query: where a tenant's named assets reside.
pub const PLACEMENTS_CYPHER: &str = "MATCH (a:Asset {tenant: $tenant})-[:RESIDES_IN]->(z:Zone) \
WHERE a.name IN $assets \
RETURN a.name AS asset, z.name AS zone, z.consequence AS consequence ORDER BY asset";

/// A Neo4j server through its Query API.
pub struct Neo4jGraph {
    client: reqwest::Client,
    endpoint: String,
    user: String,
    password: String,
}

impl Neo4jGraph {
    /// `url` is the server's HTTP address (`http(s)://host:7474`), `database` its database name.
    pub fn new(url: &str, database: &str, user: &str, password: &str, timeout: std::time::Duration) -> Result<Self, GraphError> {
        let client = reqwest::Client::builder().timeout(timeout).build().map_err(|error| GraphError::Remote(error.to_string()))?;
        Ok(Neo4jGraph {
            client,
            endpoint: format!("{}/db/{database}/query/v2", url.trim_end_matches('/')),
            user: user.to_owned(),
            password: password.to_owned(),
        })
    }

    /// Runs `statement` with `parameters`; the rows as (field → value) maps.
    async fn query(&self, statement: &str, parameters: Value) -> Result<Vec<BTreeMap<String, Value>>, GraphError> {
        let response = self
            .client
            .post(&self.endpoint)
            .basic_auth(&self.user, Some(&self.password))
            .json(&json!({"statement": statement, "parameters": parameters}))
            .send()
            .await
            .map_err(|error| GraphError::Remote(error.without_url().to_string()))?;
        let status = response.status();
        let body: Value = response.json().await.map_err(|error| GraphError::Remote(format!("{status}: not JSON: {error}")))?;
        if let Some(error) = body.get("errors").and_then(Value::as_array).and_then(|errors| errors.first()) {
            let code = error.get("code").and_then(Value::as_str).unwrap_or("unknown");
            let message = error.get("message").and_then(Value::as_str).unwrap_or("");
            return Err(GraphError::Remote(format!("{status}: {code}: {message}")));
        }
        if !status.is_success() {
            return Err(GraphError::Remote(format!("{status}")));
        }
        let fields: Vec<String> = body
            .pointer("/data/fields")
            .and_then(Value::as_array)
            .map(|fields| fields.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .ok_or_else(|| GraphError::Remote("the answer has no data.fields".to_owned()))?;
        let values = body.pointer("/data/values").and_then(Value::as_array).cloned().unwrap_or_default();
        Ok(values
            .into_iter()
            .map(|row| match row {
                Value::Array(cells) => fields.iter().cloned().zip(cells).collect(),
                _ => BTreeMap::new(),
            })
            .collect())
    }
}

#[async_trait]
impl AssetGraph for Neo4jGraph {
    async fn place(&self, placements: &[Placement]) -> Result<usize, GraphError> {
        if placements.is_empty() {
            return Ok(0);
        }
        let rows = self.query(PLACE_CYPHER, json!({ "placements": placements })).await?;
        let placed = rows.first().and_then(|row| row.get("placed")).and_then(Value::as_u64).unwrap_or(0);
        Ok(usize::try_from(placed).unwrap_or(usize::MAX))
    }

    async fn placements(&self, tenant: &str, assets: &[String]) -> Result<Vec<Placement>, GraphError> {
        if assets.is_empty() {
            return Ok(Vec::new());
        }
        let names: Vec<String> = assets.iter().map(|asset| asset.trim().to_ascii_lowercase()).collect();
        let rows = self.query(PLACEMENTS_CYPHER, json!({ "tenant": tenant, "assets": names })).await?;
        let text = |row: &BTreeMap<String, Value>, field: &str| row.get(field).and_then(Value::as_str).map(str::to_owned);
        let mut found = Vec::with_capacity(rows.len());
        for row in &rows {
            let (Some(asset), Some(zone)) = (text(row, "asset"), text(row, "zone")) else {
                return Err(GraphError::Remote(format!("a placement row without asset or zone: {row:?}")));
            };
            // A zone written by someone else without a consequence counts as unknown, not low.
            let consequence = text(row, "consequence").unwrap_or_default();
            found.push(Placement { tenant: tenant.to_owned(), asset, zone, consequence });
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests;
