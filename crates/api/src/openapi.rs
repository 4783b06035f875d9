//! The API's route table and the OpenAPI 3.1 document generated from it (issue 10).
//!
//! [`routes`] is the one list of endpoints: [`crate::router`] mounts exactly these handlers, and
//! [`document`] describes exactly these routes, so the document cannot drift from what is served
//! (a test also calls every protected route without credentials and expects the 401 the document
//! promises). Served at `GET /v1/openapi.json`.

use aluskort_config::Permission;
use axum::routing::{MethodRouter, get, post};
use serde_json::{Map, Value, json};

use crate::{AppState, approvals, audit, feedback, incidents, listings, routes as handlers, stream};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No credentials (probes, metrics, this document).
    Public,
    /// An authenticated caller whose role allows the permission.
    Needs(Permission),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
}

impl Method {
    pub const fn as_str(self) -> &'static str {
        match self {
            Method::Get => "get",
            Method::Post => "post",
        }
    }
}

/// A query parameter: name, JSON type, description.
pub type Param = (&'static str, &'static str, &'static str);

/// One endpoint as documented.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub method: Method,
    pub path: &'static str,
    pub tag: &'static str,
    pub summary: &'static str,
    pub access: Access,
    pub query: &'static [Param],
    /// The request body, if any: its description.
    pub body: Option<&'static str>,
    /// The success status and what it returns.
    pub ok: (u16, &'static str),
}

/// An endpoint and its handler.
pub struct Route {
    pub spec: Spec,
    pub handler: MethodRouter<AppState>,
}

const TENANT: Param = ("tenant", "string", "Tenant to limit to (required for a key of several tenants).");
const SINCE: Param = ("since", "string", "RFC 3339 time: at or after.");
const UNTIL: Param = ("until", "string", "RFC 3339 time: before.");
const LIMIT: Param = ("limit", "integer", "Page size, 1..=1000 (default 100).");
const CURSOR: Param = ("cursor", "string", "`next_cursor` of the previous page.");

const fn spec(method: Method, path: &'static str, tag: &'static str, summary: &'static str, access: Access) -> Spec {
    Spec { method, path, tag, summary, access, query: &[], body: None, ok: (200, "OK") }
}

impl Spec {
    const fn query(mut self, query: &'static [Param]) -> Spec {
        self.query = query;
        self
    }
    const fn body(mut self, body: &'static str) -> Spec {
        self.body = Some(body);
        self
    }
    const fn ok(mut self, status: u16, what: &'static str) -> Spec {
        self.ok = (status, what);
        self
    }
}

/// Every API endpoint with its handler.
pub fn routes() -> Vec<Route> {
    use Access::{Needs, Public};
    use Method::{Get, Post};
    use Permission::{Audit, Decide, Feedback, Ingest, Read};
    let route = |spec: Spec, handler: MethodRouter<AppState>| Route { spec, handler };
    const INGEST_BODY: &str = "One alert, a JSON array, JSON Lines, a Log Analytics query response, an Elasticsearch _search \
        response, Splunk results/HEC, an Event Hubs {records:[...]} body or canonical JSON; each record's format is detected. \
        With api.webhook_secret set, signed by x-aluskort-signature: sha256=<hex HMAC-SHA256 of the body> instead of a key.";
    const DECISION_BODY: &str = "{\"comment\": \"...\"}; `actor` only with authentication disabled.";
    vec![
        route(spec(Get, "/health", "operations", "Liveness", Public), get(handlers::health)),
        route(
            spec(Get, "/ready", "operations", "Readiness: store and bus reachable, degradation level and model providers", Public)
                .ok(200, "Ready (503 with the same body when not)"),
            get(handlers::ready),
        ),
        route(spec(Get, "/metrics", "operations", "Prometheus metrics (text exposition format)", Public), get(handlers::metrics)),
        route(spec(Get, "/v1/openapi.json", "operations", "This document", Public), get(document_handler)),
        route(
            spec(Post, "/v1/alerts", "alerts", "Submit alerts (webhook)", Needs(Ingest))
                .body(INGEST_BODY)
                .ok(202, "Every accepted record is durable; duplicates, dropped and rejected records are listed"),
            post(handlers::post_alerts),
        ),
        route(
            spec(Post, "/v1/webhooks/splunk", "alerts", "Submit alerts from a Splunk alert action", Needs(Ingest))
                .body(INGEST_BODY)
                .ok(202, "As POST /v1/alerts"),
            post(handlers::post_alerts),
        ),
        route(
            spec(Get, "/v1/alerts", "alerts", "Alerts, newest first, each with its investigation", Needs(Read)).query(&[
                TENANT,
                SINCE,
                UNTIL,
                ("severity", "string", "informational, low, medium, high or critical."),
                ("source", "string", "sentinel, elastic, splunk, webhook, atlas or canonical."),
                LIMIT,
                CURSOR,
            ]),
            get(listings::list_alerts),
        ),
        route(
            spec(Get, "/v1/alerts/{id}", "alerts", "One alert as stored, with its investigation", Needs(Read)).query(&[TENANT]),
            get(listings::get_alert),
        ),
        route(
            spec(Get, "/v1/investigations", "investigations", "Investigations, most recently updated first", Needs(Read)).query(&[
                TENANT,
                ("state", "string", "An investigation state (received, parsing, ..., awaiting_human, closed, failed)."),
                SINCE,
                UNTIL,
                LIMIT,
                CURSOR,
            ]),
            get(handlers::list_investigations),
        ),
        route(
            spec(
                Get,
                "/v1/investigations/{id}",
                "investigations",
                "One investigation: verdict, decision chain, evidence, entities, techniques, actions",
                Needs(Read),
            ),
            get(handlers::get_investigation),
        ),
        route(
            spec(Post, "/v1/investigations/{id}/feedback", "investigations", "Analyst feedback on a verdict", Needs(Feedback))
                .body("{\"correct\": bool, \"rating\": 1-5, \"comment\": \"...\", \"classification\": \"...\" when not correct}"),
            post(feedback::post),
        ),
        route(
            spec(Get, "/v1/stream", "investigations", "Server-sent events: every investigation saved", Needs(Read))
                .query(&[TENANT])
                .ok(200, "text/event-stream of `investigation` events"),
            get(stream::stream),
        ),
        route(
            spec(Get, "/v1/incidents", "incidents", "Incidents, most recently active first, with members and links", Needs(Read))
                .query(&[TENANT, SINCE, UNTIL, LIMIT, CURSOR]),
            get(incidents::list),
        ),
        route(
            spec(Get, "/v1/incidents/{id}", "incidents", "One incident: members and why each alert joined", Needs(Read)),
            get(incidents::get),
        ),
        route(
            spec(Get, "/v1/fp-patterns", "feedback", "False-positive patterns", Needs(Read))
                .query(&[TENANT, ("status", "string", "Pattern status (proposed, approved, active, revoked, expired).")]),
            get(incidents::fp_patterns),
        ),
        route(spec(Get, "/v1/playbooks", "response", "Playbooks in effect", Needs(Read)), get(listings::playbooks)),
        route(
            spec(Get, "/v1/tenants", "operations", "Tenants the caller sees that have an audit trail", Needs(Read)),
            get(listings::tenants),
        ),
        route(
            spec(Get, "/v1/approvals", "response", "Approval gates, earliest deadline first", Needs(Read)).query(&[
                ("status", "string", "pending (default), approved, rejected, timed_out or all."),
                TENANT,
                ("investigation_id", "string", "Only this investigation's."),
                LIMIT,
                CURSOR,
            ]),
            get(approvals::list),
        ),
        route(spec(Get, "/v1/approvals/{id}", "response", "One approval gate", Needs(Read)), get(approvals::get)),
        route(
            spec(Post, "/v1/approvals/{id}/approve", "response", "Approve (senior analysts and admins)", Needs(Decide)).body(DECISION_BODY),
            post(approvals::approve),
        ),
        route(
            spec(Post, "/v1/approvals/{id}/reject", "response", "Reject (senior analysts and admins)", Needs(Decide)).body(DECISION_BODY),
            post(approvals::reject),
        ),
        route(
            spec(Get, "/v1/audit/events", "audit", "One tenant's audit records in chain order, with the chain head", Needs(Audit))
                .query(&[TENANT, ("investigation_id", "string", "Only records naming this investigation."), SINCE, UNTIL, LIMIT, CURSOR]),
            get(listings::audit_events),
        ),
        route(spec(Get, "/v1/audit/verify", "audit", "Verify every tenant's hash chain", Needs(Audit)), get(audit::verify)),
        route(
            spec(
                Get,
                "/v1/audit/evidence-package/{id}",
                "audit",
                "Evidence package of one investigation: its states, audit records and chain proof",
                Needs(Audit),
            ),
            get(audit::evidence_package),
        ),
        route(
            spec(Get, "/v1/llm/usage", "operations", "Model calls, tokens, cost and latency by day, tier and task", Needs(Read))
                .query(&[SINCE, UNTIL]),
            get(listings::llm_usage),
        ),
        route(spec(Get, "/v1/degradation", "operations", "Degradation level in force and why", Needs(Read)), get(listings::degradation)),
    ]
}

async fn document_handler() -> axum::Json<Value> {
    axum::Json(document())
}

fn error_response(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

/// The path parameters of an axum path template (`/v1/x/{id}` -> `id`).
fn path_params(path: &str) -> Vec<&str> {
    path.split('/').filter_map(|part| part.strip_prefix('{').and_then(|rest| rest.strip_suffix('}'))).collect()
}

fn operation(spec: &Spec) -> Value {
    let mut parameters: Vec<Value> = path_params(spec.path)
        .into_iter()
        .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
        .collect();
    parameters.extend(spec.query.iter().map(|(name, kind, description)| {
        json!({"name": name, "in": "query", "required": false, "description": description, "schema": {"type": kind}})
    }));
    let mut responses = Map::new();
    let (status, what) = spec.ok;
    let content = if spec.path == "/metrics" {
        json!({"text/plain": {"schema": {"type": "string"}}})
    } else if spec.path == "/v1/stream" {
        json!({"text/event-stream": {"schema": {"type": "string"}}})
    } else {
        json!({"application/json": {"schema": {"type": "object"}}})
    };
    responses.insert(status.to_string(), json!({"description": what, "content": content}));
    if !parameters.is_empty() || spec.body.is_some() {
        responses.insert("400".to_owned(), error_response("Bad request: `field` names what to fix"));
    }
    if let Access::Needs(permission) = spec.access {
        responses.insert("401".to_owned(), error_response("Missing or unknown credentials"));
        responses.insert("403".to_owned(), error_response(&format!("The caller's role lacks the {permission:?} permission")));
    }
    if spec.path.contains('{') {
        responses.insert("404".to_owned(), error_response("Not found, or another tenant's"));
    }
    let mut operation = json!({
        "operationId": format!("{}{}", spec.method.as_str(), spec.path.replace(['/', '{', '}', '.', '-'], "_")),
        "summary": spec.summary,
        "tags": [spec.tag],
        "parameters": parameters,
        "responses": responses,
    });
    match spec.access {
        Access::Public => operation["security"] = json!([]),
        Access::Needs(permission) => operation["x-aluskort-permission"] = json!(format!("{permission:?}").to_lowercase()),
    }
    if let Some(body) = spec.body {
        operation["requestBody"] =
            json!({"required": true, "description": body, "content": {"application/json": {"schema": {"type": "object"}}}});
    }
    operation
}

/// The OpenAPI 3.1 document of [`routes`].
pub fn document() -> Value {
    let mut paths = Map::new();
    for route in routes() {
        let entry = paths.entry(route.spec.path.to_owned()).or_insert_with(|| json!({}));
        entry[route.spec.method.as_str()] = operation(&route.spec);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "ALUSKORT API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Alerts, investigations, incidents, approvals, audit trail and evidence. Listings are cursor-paged: \
                each answers {count, <items>, next_cursor}; pass next_cursor as ?cursor= for the next page (null: no more). \
                Roles: analyst (read, feedback, ingest), senior_analyst (+ approve/reject, audit), admin (all), audit_reader \
                (read, audit).",
        },
        "servers": [{"url": "/"}],
        "security": [{"apiKey": []}, {"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "Also accepted as Authorization: Bearer <key>."},
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT", "description": "OIDC access token (RS256) of the configured issuer."},
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error", "reason"],
                    "properties": {
                        "error": {"type": "string", "description": "bad_request, unauthorized, forbidden, not_found, conflict, ..."},
                        "field": {"type": "string", "description": "What to fix (bad requests, authentication)."},
                        "reason": {"type": "string"},
                    },
                },
            },
        },
    })
}
