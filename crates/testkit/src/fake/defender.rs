//! Microsoft Defender for Endpoint API subset, with its Entra ID client-credentials token endpoint.
//!
//! - `POST /{tenant}/oauth2/v2.0/token`: form `grant_type=client_credentials`, `client_id`,
//!   `client_secret`, `scope` ([`SCOPE`]); answers `{"token_type","expires_in","access_token"}`.
//! - `GET /api/machines?$filter=computerDnsName eq '<name>'` (List machines API).
//! - `POST /api/machines/{id}/isolate` `{"Comment","IsolationType"}`, `.../unisolate` `{"Comment"}`,
//!   `.../runAntiVirusScan` `{"Comment","ScanType"}`, `.../collectInvestigationPackage`
//!   `{"Comment"}`: each creates a MachineAction (`status` `Pending`) and answers it with `201`.
//! - `GET /api/machineactions?$filter=machineId eq '<id>' and type eq '<type>'` (List
//!   MachineActions API; `$filter` clauses on `id`, `status`, `machineId`, `type`, `requestor`
//!   joined by `and`).
//!
//! API calls need a bearer token the fake issued. Every request is recorded; [`Handle::fail_next`]
//! answers the next API request (not a token request) with a fault instead, before any effect;
//! [`FakeDefender::lose_next_result`] applies the next machine action and then answers `503`, as a
//! result lost on the way back would look. The fake counts every machine action it creates and
//! does not refuse a second isolation of the same device, so a doubled execution shows.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{SecondsFormat, Utc};
use regex::Regex;
use serde_json::{Value, json};

use super::{Fault, Handle, serve};

pub const CLIENT_ID: &str = "00000000-aaaa-bbbb-cccc-0000000000d1";
pub const CLIENT_SECRET: &str = "fake-defender-secret";
/// The scope a Defender for Endpoint app token is asked for.
pub const SCOPE: &str = "https://api.securitycenter.microsoft.com/.default";
pub const TENANT: &str = "contoso.onmicrosoft.com";

/// An onboarded device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    pub id: String,
    pub computer_dns_name: String,
}

/// A response action the fake created (the MachineAction entity).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineAction {
    pub id: String,
    /// `Isolate`, `Unisolate`, `RunAntiVirusScan` or `CollectInvestigationPackage`.
    pub action_type: String,
    /// `Full`/`Selective` for isolation, `Quick`/`Full` for a scan.
    pub scope: Option<String>,
    pub requestor_comment: String,
    /// `Pending` when created; tests move it on with [`FakeDefender::set_status`].
    pub status: String,
    pub machine_id: String,
    pub computer_dns_name: String,
    pub created: String,
}

impl MachineAction {
    fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "type": self.action_type,
            "scope": self.scope,
            "requestor": CLIENT_ID,
            "requestorComment": self.requestor_comment,
            "status": self.status,
            "machineId": self.machine_id,
            "computerDnsName": self.computer_dns_name,
            "creationDateTimeUtc": self.created,
            "lastUpdateDateTimeUtc": self.created,
        })
    }
}

/// The Entra ID v2.0 client-credentials token endpoint the Microsoft fakes share: checks the
/// client, issues numbered tokens and recognises them on API calls.
#[derive(Clone)]
pub(crate) struct TokenIssuer {
    client_id: &'static str,
    client_secret: &'static str,
    scope: &'static str,
    state: Arc<Mutex<Issued>>,
}

#[derive(Default)]
struct Issued {
    requests: usize,
    valid: Vec<String>,
}

impl TokenIssuer {
    pub(crate) fn new(client_id: &'static str, client_secret: &'static str, scope: &'static str) -> Self {
        TokenIssuer { client_id, client_secret, scope, state: Arc::default() }
    }

    fn lock(&self) -> MutexGuard<'_, Issued> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn issue(&self, form: &HashMap<String, String>) -> Response {
        let field = |name: &str| form.get(name).map(String::as_str);
        let mut issued = self.lock();
        issued.requests += 1;
        if field("grant_type") != Some("client_credentials") {
            return (StatusCode::BAD_REQUEST, Json(json!({"error": "unsupported_grant_type"}))).into_response();
        }
        if field("client_id") != Some(self.client_id) || field("client_secret") != Some(self.client_secret) {
            let body = json!({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."});
            return (StatusCode::UNAUTHORIZED, Json(body)).into_response();
        }
        if field("scope") != Some(self.scope) {
            return (StatusCode::BAD_REQUEST, Json(json!({"error": "invalid_scope"}))).into_response();
        }
        let token = format!("token-{}", issued.requests);
        issued.valid.push(token.clone());
        Json(json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token})).into_response()
    }

    /// Whether the request carries a token this issuer gave out and has not revoked.
    pub(crate) fn accepts(&self, headers: &HeaderMap) -> bool {
        let bearer = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        bearer.is_some_and(|token| self.lock().valid.iter().any(|valid| valid == token))
    }

    pub(crate) fn requests(&self) -> usize {
        self.lock().requests
    }

    pub(crate) fn revoke_all(&self) {
        self.lock().valid.clear();
    }
}

#[derive(Default)]
struct World {
    machines: Vec<Machine>,
    actions: Vec<MachineAction>,
    lose_next: bool,
}

#[derive(Clone)]
struct AppState {
    handle: Handle,
    tokens: TokenIssuer,
    world: Arc<Mutex<World>>,
}

impl AppState {
    fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

pub struct FakeDefender {
    pub addr: SocketAddr,
    pub handle: Handle,
    state: AppState,
}

impl FakeDefender {
    pub async fn start() -> Self {
        let handle = Handle::default();
        let state = AppState { handle: handle.clone(), tokens: TokenIssuer::new(CLIENT_ID, CLIENT_SECRET, SCOPE), world: Arc::default() };
        let router = Router::new()
            .route("/{tenant}/oauth2/v2.0/token", post(token))
            .route("/api/machines", get(list_machines))
            .route("/api/machines/{id}/{verb}", post(machine_action))
            .route("/api/machineactions", get(list_actions))
            .with_state(state.clone());
        FakeDefender { addr: serve(router).await, handle, state }
    }

    pub fn token_url(&self) -> String {
        format!("http://{}/{TENANT}/oauth2/v2.0/token", self.addr)
    }

    pub fn api_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Onboards a device; `computer_dns_name` matches case-insensitively, as DNS names do.
    pub fn add_machine(&self, id: &str, computer_dns_name: &str) {
        self.state.world().machines.push(Machine { id: id.to_owned(), computer_dns_name: computer_dns_name.to_owned() });
    }

    /// Every machine action created, oldest first.
    pub fn actions(&self) -> Vec<MachineAction> {
        self.state.world().actions.clone()
    }

    /// Machine actions of `action_type` created on `machine` (its id or DNS name).
    pub fn count(&self, action_type: &str, machine: &str) -> usize {
        let world = self.state.world();
        world
            .actions
            .iter()
            .filter(|a| a.action_type == action_type && (a.machine_id == machine || a.computer_dns_name.eq_ignore_ascii_case(machine)))
            .count()
    }

    pub fn isolations(&self, machine: &str) -> usize {
        self.count("Isolate", machine)
    }

    pub fn releases(&self, machine: &str) -> usize {
        self.count("Unisolate", machine)
    }

    pub fn scans(&self, machine: &str) -> usize {
        self.count("RunAntiVirusScan", machine)
    }

    pub fn package_collections(&self, machine: &str) -> usize {
        self.count("CollectInvestigationPackage", machine)
    }

    /// Moves a machine action to `status` (`InProgress`, `Succeeded`, `Failed`, `TimeOut`, `Cancelled`).
    pub fn set_status(&self, action_id: &str, status: &str) {
        for action in self.state.world().actions.iter_mut().filter(|a| a.id == action_id) {
            status.clone_into(&mut action.status);
        }
    }

    /// The next machine action is created, then answered `503`: the effect happened, the caller
    /// never learns it.
    pub fn lose_next_result(&self) {
        self.state.world().lose_next = true;
    }

    /// Token requests served (granted or refused).
    pub fn token_requests(&self) -> usize {
        self.state.tokens.requests()
    }

    /// Every token issued so far stops working (as an expired or revoked token would).
    pub fn revoke_tokens(&self) {
        self.state.tokens.revoke_all();
    }
}

async fn token(State(state): State<AppState>, Form(form): Form<HashMap<String, String>>) -> Response {
    state.handle.log("POST token".to_owned());
    state.tokens.issue(&form)
}

/// Defender's error body: `{"error":{"code","message","target"}}`.
fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({"error": {"code": code, "message": message, "target": "fake"}}))).into_response()
}

/// Refuses an unauthenticated call, or serves the next scripted fault.
fn gate(state: &AppState, headers: &HeaderMap) -> Option<Response> {
    if !state.tokens.accepts(headers) {
        return Some(error(StatusCode::UNAUTHORIZED, "Unauthorized", "Authorization has been denied for this request."));
    }
    state.handle.next_fault().as_ref().and_then(Fault::response)
}

/// Parses `<field> eq '<value>' [and ...]` with OData quote escaping (`''`), allowing only `fields`.
pub(crate) fn parse_filter(filter: &str, fields: &[&str]) -> Option<Vec<(String, String)>> {
    let clause = Regex::new(r"^(\w+) eq '((?:[^']|'')*)'( and |$)").ok()?;
    let mut rest = filter.trim();
    let mut clauses = Vec::new();
    while !rest.is_empty() {
        let captures = clause.captures(rest)?;
        let field = captures.get(1)?.as_str();
        if !fields.contains(&field) {
            return None;
        }
        clauses.push((field.to_owned(), captures.get(2)?.as_str().replace("''", "'")));
        let consumed = captures.get(0)?.as_str().len();
        rest = &rest[consumed..];
        if rest.is_empty() && !captures.get(3)?.as_str().is_empty() {
            return None; // a dangling `and`
        }
    }
    Some(clauses)
}

fn collection(context: &str, items: Vec<Value>) -> Response {
    Json(json!({"@odata.context": format!("https://api.security.microsoft.com/api/$metadata#{context}"), "value": items})).into_response()
}

async fn list_machines(State(state): State<AppState>, headers: HeaderMap, Query(query): Query<HashMap<String, String>>) -> Response {
    let filter = query.get("$filter").cloned().unwrap_or_default();
    state.handle.log(format!("GET machines $filter={filter}"));
    if let Some(refused) = gate(&state, &headers) {
        return refused;
    }
    let Some(clauses) = parse_filter(&filter, &["computerDnsName", "id"]) else {
        return error(StatusCode::BAD_REQUEST, "InvalidRequest", "Invalid filter clause");
    };
    let world = state.world();
    let machines = world
        .machines
        .iter()
        .filter(|m| {
            clauses.iter().all(|(field, value)| match field.as_str() {
                "computerDnsName" => m.computer_dns_name.eq_ignore_ascii_case(value),
                _ => &m.id == value,
            })
        })
        .map(|m| {
            json!({
                "id": m.id,
                "computerDnsName": m.computer_dns_name,
                "lastSeen": "2024-01-01T00:00:00Z",
                "healthStatus": "Active",
                "osPlatform": "Windows11",
            })
        })
        .collect();
    collection("Machines", machines)
}

async fn list_actions(State(state): State<AppState>, headers: HeaderMap, Query(query): Query<HashMap<String, String>>) -> Response {
    let filter = query.get("$filter").cloned().unwrap_or_default();
    state.handle.log(format!("GET machineactions $filter={filter}"));
    if let Some(refused) = gate(&state, &headers) {
        return refused;
    }
    let Some(clauses) = parse_filter(&filter, &["id", "status", "machineId", "type", "requestor"]) else {
        return error(StatusCode::BAD_REQUEST, "InvalidRequest", "Invalid filter clause");
    };
    let world = state.world();
    let actions = world
        .actions
        .iter()
        .filter(|a| {
            clauses.iter().all(|(field, value)| match field.as_str() {
                "id" => &a.id == value,
                "status" => &a.status == value,
                "machineId" => &a.machine_id == value,
                "type" => &a.action_type == value,
                _ => value == CLIENT_ID,
            })
        })
        .map(MachineAction::to_json)
        .collect();
    collection("MachineActions", actions)
}

async fn machine_action(
    State(state): State<AppState>,
    Path((id, verb)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state.handle.log(format!("POST machines/{id}/{verb}"));
    if let Some(refused) = gate(&state, &headers) {
        return refused;
    }
    let action_type = match verb.as_str() {
        "isolate" => "Isolate",
        "unisolate" => "Unisolate",
        "runAntiVirusScan" => "RunAntiVirusScan",
        "collectInvestigationPackage" => "CollectInvestigationPackage",
        _ => return error(StatusCode::NOT_FOUND, "NotFound", "No such action"),
    };
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "InvalidRequestBody", "Request body is not a JSON object");
    };
    let Some(comment) = body.get("Comment").and_then(Value::as_str).filter(|c| !c.is_empty()) else {
        return error(StatusCode::BAD_REQUEST, "InvalidRequestBody", "Comment is required");
    };
    let scope = match action_type {
        "Isolate" => match body.get("IsolationType").and_then(Value::as_str).unwrap_or("Full") {
            kind @ ("Full" | "Selective") => Some(kind.to_owned()),
            _ => return error(StatusCode::BAD_REQUEST, "InvalidRequestBody", "IsolationType must be Full or Selective"),
        },
        "RunAntiVirusScan" => match body.get("ScanType").and_then(Value::as_str) {
            Some(kind @ ("Quick" | "Full")) => Some(kind.to_owned()),
            _ => return error(StatusCode::BAD_REQUEST, "InvalidRequestBody", "ScanType must be Quick or Full"),
        },
        _ => None,
    };
    let mut world = state.world();
    let Some(machine) = world.machines.iter().find(|m| m.id == id).cloned() else {
        return error(StatusCode::NOT_FOUND, "ResourceNotFound", &format!("Machine {id} was not found"));
    };
    let action = MachineAction {
        id: format!("00000000-0000-4000-8000-{:012}", world.actions.len() + 1),
        action_type: action_type.to_owned(),
        scope,
        requestor_comment: comment.to_owned(),
        status: "Pending".to_owned(),
        machine_id: machine.id,
        computer_dns_name: machine.computer_dns_name,
        created: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
    };
    let answer = action.to_json();
    world.actions.push(action);
    if std::mem::take(&mut world.lose_next) {
        return Fault::unavailable().response().unwrap_or_else(|| StatusCode::SERVICE_UNAVAILABLE.into_response());
    }
    (StatusCode::CREATED, Json(answer)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_parsed_with_odata_quote_escaping() {
        assert_eq!(
            parse_filter("machineId eq 'abc' and type eq 'Isolate'", &["machineId", "type"]),
            Some(vec![("machineId".to_owned(), "abc".to_owned()), ("type".to_owned(), "Isolate".to_owned())])
        );
        assert_eq!(
            parse_filter("computerDnsName eq 'o''brien'", &["computerDnsName"]),
            Some(vec![("computerDnsName".to_owned(), "o'brien".to_owned())])
        );
        assert_eq!(parse_filter("computerDnsName eq 'x' and ", &["computerDnsName"]), None);
        assert_eq!(parse_filter("lastSeen gt '2024'", &["computerDnsName"]), None);
        assert_eq!(parse_filter("osPlatform eq 'x'", &["computerDnsName"]), None);
    }
}
