//! `GET /v1/stream` (issue 10, live updates for the queue): server-sent events, one
//! `investigation` event each time an investigation is saved in a new state or version, from the
//! moment the client connects. Read from the case store every [`POLL`], so it works the same on one
//! machine and across API replicas over PostgreSQL; the caller's tenant scope applies. A `lagged`
//! event tells the client more changed in one poll than the stream carries, so it should reload.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::time::Duration;

use aluskort_config::Permission;
use aluskort_store::InvestigationFilter;
use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;

/// How often the store is read for changes.
pub const POLL: Duration = Duration::from_secs(1);
/// Most changes read per poll.
const PAGE: u32 = 1000;

#[derive(Debug, Deserialize)]
pub struct StreamQuery {
    tenant: Option<String>,
}

struct Cursor {
    since: DateTime<Utc>,
    /// (investigation, version) already sent, with their update time (kept while at `since`).
    sent: HashMap<(String, u64), DateTime<Utc>>,
    pending: VecDeque<Event>,
    polled: bool,
}

pub async fn stream(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<StreamQuery>,
) -> Result<Sse<impl futures::Stream<Item = Result<Event, Infallible>>>, ApiError> {
    caller.require(Permission::Read)?;
    let tenant = caller.tenant_filter(query.tenant.as_deref())?;
    let cursor = Cursor { since: Utc::now(), sent: HashMap::new(), pending: VecDeque::new(), polled: false };
    let store = state.store;
    let events = futures::stream::unfold(cursor, move |mut cursor| {
        let (store, tenant) = (store.clone(), tenant.clone());
        async move {
            loop {
                if let Some(event) = cursor.pending.pop_front() {
                    return Some((Ok(event), cursor));
                }
                if cursor.polled {
                    tokio::time::sleep(POLL).await;
                }
                cursor.polled = true;
                let filter = InvestigationFilter {
                    tenant: tenant.clone(),
                    since: Some(cursor.since),
                    limit: Some(PAGE),
                    ..InvestigationFilter::default()
                };
                let mut changed = match store.list_investigations(&filter).await {
                    Ok(changed) => changed,
                    Err(error) => {
                        tracing::warn!(%error, "live updates: the store could not be read; retrying");
                        cursor.pending.push_back(Event::default().event("error").data("the state store could not be read; retrying"));
                        continue;
                    }
                };
                if changed.len() >= PAGE as usize {
                    cursor.pending.push_back(
                        Event::default().event("lagged").data(format!("more than {PAGE} changes in {} s; reload", POLL.as_secs())),
                    );
                }
                changed.reverse();
                for graph in changed {
                    let key = (graph.investigation_id.to_string(), graph.version);
                    if cursor.sent.contains_key(&key) {
                        continue;
                    }
                    cursor.since = cursor.since.max(graph.updated_at);
                    cursor.sent.insert(key, graph.updated_at);
                    let summary = json!({
                        "investigation_id": graph.investigation_id.to_string(),
                        "alert_id": graph.alert_id.as_str(),
                        "tenant_id": graph.tenant_id.as_str(),
                        "state": graph.state.as_str(),
                        "version": graph.version,
                        "incident_id": graph.incident_id,
                        "classification": graph.classification.map(|classification| classification.as_str()),
                        "confidence": graph.confidence,
                        "updated_at": graph.updated_at,
                    });
                    cursor.pending.push_back(Event::default().event("investigation").data(summary.to_string()));
                }
                // Only changes at the cursor's instant can come back (the read is inclusive).
                let since = cursor.since;
                cursor.sent.retain(|_, at| *at >= since);
            }
        }
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}
