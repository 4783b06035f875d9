//! Local HTTP servers that speak the vendors' documented wire formats, for connector tests:
//! [`sentinel::FakeSentinel`] (Entra ID token endpoint + Log Analytics query API),
//! [`elastic::FakeElastic`] (point in time + `_search` with `search_after`) and
//! [`splunk::FakeSplunk`] (`search/v2/jobs/export`). Each holds alerts with the time the vendor
//! orders them by, checks credentials, records the requests it served, and can be told to fail
//! the next data requests (`429` with `Retry-After`, `5xx`, a cut stream).

pub mod anthropic;
pub mod chat;
pub mod defender;
pub mod elastic;
pub mod graph;
pub mod neo4j;
pub mod oidc;
pub mod openai;
pub mod openai_chat;
pub mod qdrant;
pub mod receiver;
pub mod sentinel;
pub mod splunk;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::Value;

/// A failure the fake serves instead of the next data response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// This status with this body, and `Retry-After: <secs>` when given.
    Status { status: u16, retry_after: Option<u64>, body: String },
    /// The first `bytes` of the real answer, then the connection is cut (streamed answers only).
    CutAfter { bytes: usize },
}

impl Fault {
    pub fn throttled(retry_after: u64) -> Self {
        Fault::Status { status: 429, retry_after: Some(retry_after), body: r#"{"error":"too many requests"}"#.to_owned() }
    }

    pub fn unavailable() -> Self {
        Fault::Status { status: 503, retry_after: None, body: r#"{"error":"service unavailable"}"#.to_owned() }
    }

    pub(crate) fn response(&self) -> Option<Response> {
        let Fault::Status { status, retry_after, body } = self else { return None };
        let mut headers = HeaderMap::new();
        if let Some(secs) = retry_after {
            headers.insert("retry-after", HeaderValue::from(*secs));
        }
        let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Some((status, headers, body.clone()).into_response())
    }
}

/// One alert the fake holds: the time the vendor orders by, its id, and the document.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAlert {
    pub time: DateTime<Utc>,
    pub id: String,
    pub document: Value,
}

/// State every fake shares.
#[derive(Debug, Default)]
pub struct Shared {
    pub alerts: Vec<StoredAlert>,
    pub faults: VecDeque<Fault>,
    /// `(method path, short detail)` of every request served, in order.
    pub requests: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Handle(pub Arc<Mutex<Shared>>);

impl Handle {
    pub fn lock(&self) -> MutexGuard<'_, Shared> {
        // A test thread that panicked while holding the lock already failed the test.
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds an alert, keeping the list sorted by `(time, id)`.
    pub fn add(&self, time: DateTime<Utc>, id: &str, document: Value) {
        let mut shared = self.lock();
        let at = shared.alerts.partition_point(|a| (a.time, a.id.as_str()) <= (time, id));
        shared.alerts.insert(at, StoredAlert { time, id: id.to_owned(), document });
    }

    pub fn fail_next(&self, fault: Fault) {
        self.lock().faults.push_back(fault);
    }

    pub fn requests(&self) -> Vec<String> {
        self.lock().requests.clone()
    }

    pub(crate) fn log(&self, line: String) {
        self.lock().requests.push(line);
    }

    pub(crate) fn next_fault(&self) -> Option<Fault> {
        self.lock().faults.pop_front()
    }

    /// Alerts sorted by `(time, id)`.
    pub(crate) fn sorted(&self) -> Vec<StoredAlert> {
        self.lock().alerts.clone()
    }

    /// The first `limit` alerts, in `(time, id)` order, that `keep` accepts; only those are cloned.
    pub(crate) fn select(&self, keep: impl Fn(&StoredAlert) -> bool, limit: usize) -> Vec<StoredAlert> {
        self.lock().alerts.iter().filter(|a| keep(a)).take(limit).cloned().collect()
    }
}

/// Serves `router` on 127.0.0.1 (an ephemeral port) for the rest of the test.
pub(crate) async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
    let addr = listener.local_addr().expect("bound address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    addr
}
