//! Splunk REST `search/v2/jobs/export` over `index=notable`, with token auth.
//!
//! Evaluates what the Splunk connector sends: `earliest_time`/`latest_time` (epoch seconds),
//! `output_mode=json`, and a search of the form
//! `search index=notable | eval aluskort_id=coalesce(event_id, _cd) [| search NOT aluskort_id IN ("a", ...)]
//! | sort 0 +_time, +aluskort_id | head N`; each result carries `aluskort_id` (its stored id).
//! Answers JSON lines `{"preview":false,"offset":i,"result":{...}}`; a [`Fault::CutAfter`] cuts
//! the stream mid-answer.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use regex::Regex;
use serde_json::json;

use super::{Fault, Handle, serve};

pub const TOKEN: &str = "fake-splunk-token";

pub struct FakeSplunk {
    pub addr: SocketAddr,
    pub handle: Handle,
}

impl FakeSplunk {
    pub async fn start() -> Self {
        let handle = Handle::default();
        let router = Router::new().route("/services/search/v2/jobs/export", post(export)).with_state(handle.clone());
        FakeSplunk { addr: serve(router).await, handle }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

fn epoch(text: Option<&String>) -> Option<DateTime<Utc>> {
    let seconds: f64 = text?.parse().ok()?;
    DateTime::from_timestamp_micros((seconds * 1_000_000.0).round() as i64)
}

async fn export(State(handle): State<Handle>, headers: HeaderMap, Form(form): Form<HashMap<String, String>>) -> Response {
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&format!("Bearer {TOKEN}")) {
        let body = json!({"messages": [{"type": "WARN", "text": "call not properly authenticated"}]});
        return (StatusCode::UNAUTHORIZED, Json(body)).into_response();
    }
    let search = form.get("search").cloned().unwrap_or_default();
    let (Some(earliest), Some(latest)) = (epoch(form.get("earliest_time")), epoch(form.get("latest_time"))) else {
        return (StatusCode::BAD_REQUEST, Json(json!({"messages": [{"type": "FATAL", "text": "bad earliest_time/latest_time"}]})))
            .into_response();
    };
    if form.get("output_mode").map(String::as_str) != Some("json") || !search.starts_with("search index=notable") {
        return (StatusCode::BAD_REQUEST, Json(json!({"messages": [{"type": "FATAL", "text": "unsupported search"}]}))).into_response();
    }
    let limit: usize = Regex::new(r"\| head (\d+)$")
        .ok()
        .and_then(|re| re.captures(&search))
        .and_then(|c| c.get(1))
        .and_then(|m| m.as_str().parse().ok())
        .unwrap_or(usize::MAX);
    if !search.contains("| eval aluskort_id=coalesce(event_id, _cd)") {
        return (StatusCode::BAD_REQUEST, Json(json!({"messages": [{"type": "FATAL", "text": "unsupported search"}]}))).into_response();
    }
    let excluded: Vec<String> = Regex::new(r"NOT aluskort_id IN \((.*?)\) \|")
        .ok()
        .and_then(|re| re.captures(&search))
        .and_then(|c| c.get(1))
        .and_then(|m| serde_json::from_str(&format!("[{}]", m.as_str())).ok())
        .unwrap_or_default();
    handle.log(format!("POST export earliest={} excluded={} head={limit}", earliest.to_rfc3339(), excluded.len()));
    let mut body = String::new();
    let selected = handle.select(|a| a.time >= earliest && a.time < latest && !excluded.contains(&a.id), limit);
    for (offset, alert) in selected.into_iter().enumerate() {
        let mut result = alert.document.clone();
        if let Some(map) = result.as_object_mut() {
            map.insert("aluskort_id".to_owned(), json!(alert.id));
        }
        body.push_str(&json!({"preview": false, "offset": offset, "result": result}).to_string());
        body.push('\n');
    }
    match handle.next_fault() {
        Some(fault @ Fault::Status { .. }) => fault.response().unwrap_or_else(|| StatusCode::INTERNAL_SERVER_ERROR.into_response()),
        Some(Fault::CutAfter { bytes }) => {
            let data = bytes::Bytes::from(body.into_bytes());
            let head = data.slice(..bytes.min(data.len()));
            let stream = futures::stream::iter(vec![
                Ok::<bytes::Bytes, std::io::Error>(head),
                Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "cut by the fake")),
            ]);
            Response::new(Body::from_stream(stream))
        }
        None => ([("content-type", "application/json")], body).into_response(),
    }
}
