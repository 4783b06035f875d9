//! A generic HTTP endpoint: takes any method, on any path or on one path, records every request
//! (method, path, query, headers, body) and answers a configurable status and JSON body.
//!
//! It stands in for webhook action receivers (SOAR, firewall APIs) and notification endpoints.
//! Effects are deduplicated by the `Idempotency-Key` header, as a receiver honouring it would:
//! [`FakeReceiver::effects`] counts distinct keys (plus every 2xx-answered request without a key),
//! while [`FakeReceiver::received`] still holds every request. A request answered with a fault
//! ([`Handle::fail_next`]) or a non-2xx status has no effect. [`verify_signature`] checks an
//! `X-Aluskort-Signature: sha256=<hex HMAC-SHA256 of the body>` header.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::{Fault, Handle, serve};

/// One request as the receiver saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedRequest {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// Header names lowercased, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl ReceivedRequest {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }

    pub fn idempotency_key(&self) -> Option<&str> {
        self.header("idempotency-key")
    }

    /// The body as JSON, when it is.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

struct Inbox {
    /// Only this path is served (others get `404`); `None` serves every path.
    path: Option<String>,
    received: Vec<ReceivedRequest>,
    keys: BTreeSet<String>,
    keyless_effects: usize,
    status: StatusCode,
    answer: Value,
}

#[derive(Clone)]
struct AppState {
    handle: Handle,
    inbox: Arc<Mutex<Inbox>>,
}

impl AppState {
    fn inbox(&self) -> MutexGuard<'_, Inbox> {
        self.inbox.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

pub struct FakeReceiver {
    pub addr: SocketAddr,
    pub handle: Handle,
    state: AppState,
}

impl FakeReceiver {
    /// Serves every method on every path.
    pub async fn start() -> Self {
        Self::serve(None).await
    }

    /// Serves every method on `path` only (e.g. `/hooks/firewall`); other paths get `404`.
    pub async fn start_at(path: &str) -> Self {
        Self::serve(Some(path.to_owned())).await
    }

    async fn serve(path: Option<String>) -> Self {
        let handle = Handle::default();
        let inbox = Inbox {
            path,
            received: Vec::new(),
            keys: BTreeSet::new(),
            keyless_effects: 0,
            status: StatusCode::OK,
            answer: json!({"ok": true}),
        };
        let state = AppState { handle: handle.clone(), inbox: Arc::new(Mutex::new(inbox)) };
        let router = Router::new().fallback(receive).with_state(state.clone());
        FakeReceiver { addr: serve(router).await, handle, state }
    }

    /// `http://<addr><path>` (the served path, or `/` when any path is served).
    pub fn url(&self) -> String {
        let path = self.state.inbox().path.clone().unwrap_or_else(|| "/".to_owned());
        format!("http://{}{path}", self.addr)
    }

    /// What every later request is answered (default `200 {"ok": true}`).
    pub fn respond_with(&self, status: u16, answer: Value) {
        let mut inbox = self.state.inbox();
        inbox.status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        inbox.answer = answer;
    }

    /// The next request is answered with `fault` and has no effect.
    pub fn fail_next(&self, fault: Fault) {
        self.handle.fail_next(fault);
    }

    /// Every request, in arrival order (faulted and duplicate ones too).
    pub fn received(&self) -> Vec<ReceivedRequest> {
        self.state.inbox().received.clone()
    }

    /// Distinct effects: distinct `Idempotency-Key`s plus keyless requests, of 2xx-answered requests.
    pub fn effects(&self) -> usize {
        let inbox = self.state.inbox();
        inbox.keys.len() + inbox.keyless_effects
    }
}

async fn receive(State(state): State<AppState>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let request = ReceivedRequest {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        headers: headers
            .iter()
            .map(|(name, value)| (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
            .collect(),
        body,
    };
    state.handle.log(format!("{} {}", request.method, request.path));
    let key = request.idempotency_key().map(str::to_owned);
    let mut inbox = state.inbox();
    let served = inbox.path.as_ref().is_none_or(|path| path == &request.path);
    inbox.received.push(request);
    if !served {
        return (StatusCode::NOT_FOUND, axum::Json(json!({"error": "not found"}))).into_response();
    }
    if let Some(response) = state.handle.next_fault().as_ref().and_then(Fault::response) {
        return response;
    }
    if inbox.status.is_success() {
        match key {
            Some(key) => {
                inbox.keys.insert(key);
            }
            None => inbox.keyless_effects += 1,
        }
    }
    (inbox.status, axum::Json(inbox.answer.clone())).into_response()
}

/// `sha256=<hex HMAC-SHA256 of body under secret>`: the signature header value for `body`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length; the error arm is unreachable.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else { return String::new() };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Whether `header` (`sha256=<hex>`) is the HMAC-SHA256 of `body` under `secret`, compared in
/// constant time.
pub fn verify_signature(secret: &[u8], body: &[u8], header: &str) -> bool {
    let Some(hex_digest) = header.strip_prefix("sha256=") else { return false };
    let Ok(digest) = hex::decode(hex_digest) else { return false };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else { return false };
    mac.update(body);
    mac.verify_slice(&digest).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_only_for_the_same_secret_and_body() {
        let header = sign(b"s3cr3t", b"{\"a\":1}");
        assert!(verify_signature(b"s3cr3t", b"{\"a\":1}", &header));
        assert!(!verify_signature(b"other", b"{\"a\":1}", &header));
        assert!(!verify_signature(b"s3cr3t", b"{\"a\":2}", &header));
        assert!(!verify_signature(b"s3cr3t", b"{\"a\":1}", "sha1=00"));
    }
}
