//! Neo4j Query API subset (<https://neo4j.com/docs/query-api/current/query/>): `POST
//! /db/{database}/query/v2` with Basic auth and `{"statement", "parameters"}`, answered `202` with
//! `{"data": {"fields", "values"}, "bookmarks"}`, or with `{"errors": [{"code", "message"}]}`.
//!
//! A stand-in, not a Cypher engine: it keeps an asset/zone graph
//! (`(:Asset {tenant, name})-[:RESIDES_IN]->(:Zone {tenant, name, consequence})`) and understands the two
//! statement shapes the asset graph sends: an `UNWIND $placements AS p ... MERGE` placing assets
//! (one zone each, moved when placed again), and a `MATCH (a:Asset {tenant: $tenant})-[:RESIDES_IN]->
//! (z:Zone) WHERE a.name IN $assets RETURN a.name AS asset, z.name AS zone, z.consequence AS
//! consequence` lookup. Anything else is a `Neo.ClientError.Statement.SyntaxError`, and every
//! statement is recorded so tests can check that values travel as parameters.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::serve;

pub const USER: &str = "neo4j";
pub const PASSWORD: &str = "fake-neo4j-password";
pub const DATABASE: &str = "neo4j";

#[derive(Default)]
struct Graph {
    /// (tenant, asset) → zone.
    residence: BTreeMap<(String, String), String>,
    /// (tenant, zone) → consequence.
    zones: BTreeMap<(String, String), Value>,
    statements: Vec<String>,
}

type Shared = Arc<Mutex<Graph>>;

pub struct FakeNeo4j {
    pub addr: SocketAddr,
    graph: Shared,
}

impl FakeNeo4j {
    pub async fn start() -> Self {
        let graph: Shared = Arc::default();
        let router = Router::new().route("/db/{database}/query/v2", post(query)).with_state(Arc::clone(&graph));
        FakeNeo4j { addr: serve(router).await, graph }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every statement received, in order.
    pub fn statements(&self) -> Vec<String> {
        lock(&self.graph).statements.clone()
    }

    /// Where `(tenant, asset)` resides now.
    pub fn zone_of(&self, tenant: &str, asset: &str) -> Option<String> {
        lock(&self.graph).residence.get(&(tenant.to_owned(), asset.to_owned())).cloned()
    }
}

fn lock(graph: &Shared) -> std::sync::MutexGuard<'_, Graph> {
    graph.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({"errors": [{"code": code, "message": message}]}))).into_response()
}

fn rows(fields: &[&str], values: Vec<Value>) -> Response {
    (StatusCode::ACCEPTED, Json(json!({"data": {"fields": fields, "values": values}, "bookmarks": ["FB:fake"]}))).into_response()
}

fn authorised(headers: &HeaderMap) -> bool {
    use base64::Engine as _;
    let expected = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}")));
    headers.get("authorization").and_then(|value| value.to_str().ok()) == Some(expected.as_str())
}

/// Whitespace collapsed, so statements compare by their clauses.
fn normalised(statement: &str) -> String {
    statement.split_whitespace().collect::<Vec<_>>().join(" ")
}

async fn query(State(graph): State<Shared>, Path(database): Path<String>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    if !authorised(&headers) {
        return error(StatusCode::UNAUTHORIZED, "Neo.ClientError.Security.Unauthorized", "Invalid credential.");
    }
    if database != DATABASE {
        return error(StatusCode::NOT_FOUND, "Neo.ClientError.Database.DatabaseNotFound", &format!("Database {database} not found"));
    }
    let Some(statement) = body.get("statement").and_then(Value::as_str) else {
        return error(StatusCode::BAD_REQUEST, "Neo.ClientError.Request.Invalid", "statement is required");
    };
    let statement = normalised(statement);
    let parameters = body.get("parameters").cloned().unwrap_or_else(|| json!({}));
    let mut graph = lock(&graph);
    graph.statements.push(statement.clone());
    let missing = |name: &str| {
        error(StatusCode::BAD_REQUEST, "Neo.ClientError.Statement.ParameterMissing", &format!("Expected parameter(s): {name}"))
    };
    if statement.starts_with("UNWIND $placements AS p ")
        && statement.contains("MERGE (z:Zone {tenant: p.tenant, name: p.zone}) SET z.consequence = p.consequence")
        && statement.contains("MERGE (a:Asset {tenant: p.tenant, name: p.asset})")
        && statement.contains("MERGE (a)-[:RESIDES_IN]->(z)")
    {
        let Some(placements) = parameters.get("placements").and_then(Value::as_array) else { return missing("placements") };
        let mut placed = 0;
        for placement in placements {
            let field = |name: &str| placement.get(name).and_then(Value::as_str).map(str::to_owned);
            let (Some(tenant), Some(asset), Some(zone)) = (field("tenant"), field("asset"), field("zone")) else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "Neo.ClientError.Statement.SemanticError",
                    "Cannot merge node using null property value",
                );
            };
            graph.zones.insert((tenant.clone(), zone.clone()), placement.get("consequence").cloned().unwrap_or(Value::Null));
            graph.residence.insert((tenant, asset), zone);
            placed += 1;
        }
        return rows(&["placed"], vec![json!([placed])]);
    }
    if statement.starts_with("MATCH (a:Asset {tenant: $tenant})-[:RESIDES_IN]->(z:Zone) WHERE a.name IN $assets RETURN a.name AS asset, z.name AS zone, z.consequence AS consequence")
    {
        let Some(tenant) = parameters.get("tenant").and_then(Value::as_str) else { return missing("tenant") };
        let Some(assets) = parameters.get("assets").and_then(Value::as_array) else { return missing("assets") };
        let mut found: Vec<(String, String)> = assets
            .iter()
            .filter_map(Value::as_str)
            .filter_map(|asset| graph.residence.get(&(tenant.to_owned(), asset.to_owned())).map(|zone| (asset.to_owned(), zone.clone())))
            .collect();
        found.sort();
        found.dedup();
        let values = found
            .into_iter()
            .map(|(asset, zone)| {
                let consequence = graph.zones.get(&(tenant.to_owned(), zone.clone())).cloned().unwrap_or(Value::Null);
                json!([asset, zone, consequence])
            })
            .collect();
        return rows(&["asset", "zone", "consequence"], values);
    }
    error(StatusCode::BAD_REQUEST, "Neo.ClientError.Statement.SyntaxError", "the fake understands only the asset graph's two statements")
}
