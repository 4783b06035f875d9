//! Microsoft Graph v1.0 users subset, with its Entra ID client-credentials token endpoint.
//!
//! - `POST /{tenant}/oauth2/v2.0/token` (scope [`SCOPE`]).
//! - `PATCH /v1.0/users/{id | userPrincipalName}` `{"accountEnabled": bool}`: `204 No Content`.
//! - `GET /v1.0/users/{id | userPrincipalName}[?$select=a,b]`: the user, or the selected properties.
//! - `POST /v1.0/users/{id | userPrincipalName}/revokeSignInSessions`: `200 {"value": true}`.
//!
//! Unknown users get `404` with Graph's error body (`Request_ResourceNotFound`). API calls need a
//! bearer token the fake issued; every request is recorded, and [`Handle::fail_next`] answers the
//! next API request with a fault before any effect. Effects are counted per user: every accepted
//! `accountEnabled: false` PATCH is a disable (even of a disabled account) and every revoke call a
//! revocation, so a doubled execution shows.

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
use serde_json::{Map, Value, json};

use super::defender::TokenIssuer;
use super::{Fault, Handle, serve};

pub const CLIENT_ID: &str = "00000000-aaaa-bbbb-cccc-0000000000e1";
pub const CLIENT_SECRET: &str = "fake-graph-secret";
/// The scope a Microsoft Graph app token is asked for.
pub const SCOPE: &str = "https://graph.microsoft.com/.default";
pub const TENANT: &str = "contoso.onmicrosoft.com";

/// A directory user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub user_principal_name: String,
    pub account_enabled: bool,
    pub disables: usize,
    pub revocations: usize,
}

impl User {
    fn is(&self, key: &str) -> bool {
        self.id == key || self.user_principal_name.eq_ignore_ascii_case(key)
    }
}

#[derive(Clone)]
struct AppState {
    handle: Handle,
    tokens: TokenIssuer,
    users: Arc<Mutex<Vec<User>>>,
}

impl AppState {
    fn users(&self) -> MutexGuard<'_, Vec<User>> {
        self.users.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

pub struct FakeGraph {
    pub addr: SocketAddr,
    pub handle: Handle,
    state: AppState,
}

impl FakeGraph {
    pub async fn start() -> Self {
        let handle = Handle::default();
        let state = AppState { handle: handle.clone(), tokens: TokenIssuer::new(CLIENT_ID, CLIENT_SECRET, SCOPE), users: Arc::default() };
        let router = Router::new()
            .route("/{tenant}/oauth2/v2.0/token", post(token))
            .route("/v1.0/users/{id}", get(get_user).patch(update_user))
            .route("/v1.0/users/{id}/revokeSignInSessions", post(revoke))
            .with_state(state.clone());
        FakeGraph { addr: serve(router).await, handle, state }
    }

    pub fn token_url(&self) -> String {
        format!("http://{}/{TENANT}/oauth2/v2.0/token", self.addr)
    }

    pub fn api_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Adds an enabled user, addressable by `id` or (case-insensitively) `upn`.
    pub fn add_user(&self, id: &str, upn: &str) {
        self.state.users().push(User {
            id: id.to_owned(),
            user_principal_name: upn.to_owned(),
            account_enabled: true,
            disables: 0,
            revocations: 0,
        });
    }

    pub fn user(&self, key: &str) -> Option<User> {
        self.state.users().iter().find(|u| u.is(key)).cloned()
    }

    pub fn account_enabled(&self, key: &str) -> Option<bool> {
        self.user(key).map(|u| u.account_enabled)
    }

    /// Accepted `accountEnabled: false` updates of this user.
    pub fn disables(&self, key: &str) -> usize {
        self.user(key).map_or(0, |u| u.disables)
    }

    /// `revokeSignInSessions` calls on this user.
    pub fn revocations(&self, key: &str) -> usize {
        self.user(key).map_or(0, |u| u.revocations)
    }

    /// Token requests served (granted or refused).
    pub fn token_requests(&self) -> usize {
        self.state.tokens.requests()
    }

    /// Every token issued so far stops working.
    pub fn revoke_tokens(&self) {
        self.state.tokens.revoke_all();
    }
}

async fn token(State(state): State<AppState>, Form(form): Form<HashMap<String, String>>) -> Response {
    state.handle.log("POST token".to_owned());
    state.tokens.issue(&form)
}

/// Graph's error body: `{"error":{"code","message","innerError":{...}}}`.
fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let inner = json!({"date": Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true), "request-id": "fake", "client-request-id": "fake"});
    (status, Json(json!({"error": {"code": code, "message": message, "innerError": inner}}))).into_response()
}

fn not_found(key: &str) -> Response {
    let message = format!("Resource '{key}' does not exist or one of its queried reference-property objects are not present.");
    error(StatusCode::NOT_FOUND, "Request_ResourceNotFound", &message)
}

fn gate(state: &AppState, headers: &HeaderMap) -> Option<Response> {
    if !state.tokens.accepts(headers) {
        return Some(error(StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken", "Access token is empty or invalid."));
    }
    state.handle.next_fault().as_ref().and_then(Fault::response)
}

async fn get_user(
    State(state): State<AppState>,
    Path(key): Path<String>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let select = query.get("$select").cloned().unwrap_or_default();
    state.handle.log(format!("GET users/{key} $select={select}"));
    if let Some(refused) = gate(&state, &headers) {
        return refused;
    }
    let users = state.users();
    let Some(user) = users.iter().find(|u| u.is(&key)) else { return not_found(&key) };
    let all = json!({"id": user.id, "userPrincipalName": user.user_principal_name, "accountEnabled": user.account_enabled});
    let mut body = Map::new();
    body.insert("@odata.context".to_owned(), json!("https://graph.microsoft.com/v1.0/$metadata#users/$entity"));
    let wanted: Vec<&str> = if select.is_empty() { vec!["id", "userPrincipalName", "accountEnabled"] } else { select.split(',').collect() };
    for property in wanted {
        match all.get(property.trim()) {
            Some(value) => body.insert(property.trim().to_owned(), value.clone()),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    &format!("Could not find a property named '{property}' on type 'microsoft.graph.user'."),
                );
            }
        };
    }
    Json(Value::Object(body)).into_response()
}

async fn update_user(State(state): State<AppState>, Path(key): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    state.handle.log(format!("PATCH users/{key}"));
    if let Some(refused) = gate(&state, &headers) {
        return refused;
    }
    let Ok(Value::Object(update)) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "BadRequest", "Unable to read JSON request payload.");
    };
    let enabled = match update.get("accountEnabled") {
        None => None,
        Some(Value::Bool(enabled)) => Some(*enabled),
        Some(_) => return error(StatusCode::BAD_REQUEST, "BadRequest", "Invalid value for property 'accountEnabled'."),
    };
    let mut users = state.users();
    let Some(user) = users.iter_mut().find(|u| u.is(&key)) else { return not_found(&key) };
    if let Some(enabled) = enabled {
        user.account_enabled = enabled;
        if !enabled {
            user.disables += 1;
        }
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn revoke(State(state): State<AppState>, Path(key): Path<String>, headers: HeaderMap) -> Response {
    state.handle.log(format!("POST users/{key}/revokeSignInSessions"));
    if let Some(refused) = gate(&state, &headers) {
        return refused;
    }
    let mut users = state.users();
    let Some(user) = users.iter_mut().find(|u| u.is(&key)) else { return not_found(&key) };
    user.revocations += 1;
    Json(json!({"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Edm.Boolean", "value": true})).into_response()
}
