//! Microsoft Sentinel through the Log Analytics query API.
//!
//! - Token: OAuth 2.0 client credentials against the Entra ID v2.0 token endpoint
//!   (`POST {token_url}` form `grant_type=client_credentials&client_id&client_secret&scope`,
//!   answer `{"token_type":"Bearer","expires_in":3599,"access_token":...}`,
//!   <https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow>),
//!   cached until a minute before it expires and refreshed once on a 401.
//! - Query: `POST {api_url}/v1/workspaces/{workspace_id}/query` with `{"query": KQL}`, answer
//!   `{"tables":[{"name","columns":[{"name","type"}],"rows":[[...]]}]}`
//!   (<https://learn.microsoft.com/rest/api/loganalytics/dataaccess/query/execute>).
//!
//! The API has no cursor, so pages are keyset queries on `ingestion_time()` (not `TimeGenerated`:
//! an alert can arrive hours after the time it carries, and a poll keyed on `TimeGenerated` would
//! skip it), ordered by `(ingestion time, SystemAlertId)`, `take`-limited, excluding the ids
//! already published at the checkpoint time. The query's parameters are `let` statements at its
//! top, written by [`page_query`] only from validated values.

use std::time::{Duration, Instant};

use aluskort_config::SentinelSource;
use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::checkpoint::Checkpoint;
use crate::http::{Http, json_body};
use crate::retry::VendorError;
use crate::source::{Fetched, Malformed, Page, Source};

/// How far before the checkpoint the query scans by `TimeGenerated` (the table's partition key,
/// so the service can skip older data): an alert's `TimeGenerated` precedes its ingestion by
/// minutes, and Azure Monitor does not keep `TimeGenerated` values more than 2 days older than
/// ingestion, so a week is a wide margin.
pub const SCAN_MARGIN_DAYS: u32 = 7;

/// Column our query adds with each row's ingestion time; removed before the row is published.
pub const INGESTED_COLUMN: &str = "AluskortIngestedAt";

pub struct SentinelConnector {
    config: SentinelSource,
    http: Http,
    token: Option<(String, Instant)>,
    until: Option<DateTime<Utc>>,
}

impl SentinelConnector {
    pub fn new(config: SentinelSource, http: Http) -> Self {
        SentinelConnector { config, http, token: None, until: None }
    }

    async fn token(&mut self) -> Result<String, VendorError> {
        if let Some((token, expires)) = &self.token
            && Instant::now() < *expires
        {
            return Ok(token.clone());
        }
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.config.client_id.as_str()),
            ("client_secret", self.config.client_secret.expose()),
            ("scope", self.config.scope.as_str()),
        ];
        let url = self.config.token_url.clone();
        let response = self.http.send("token", |client| client.post(&url).form(&form)).await.map_err(|error| match error {
            // Entra answers a bad secret with 400/401 `invalid_client`: an auth failure either way.
            VendorError::Rejected { status, detail } => VendorError::Auth { status, detail },
            other => other,
        })?;
        let body = json_body("token", response).await?;
        let token = body
            .get("access_token")
            .and_then(Value::as_str)
            .ok_or_else(|| VendorError::Malformed("token response has no access_token".to_owned()))?
            .to_owned();
        let lifetime = body.get("expires_in").and_then(|v| v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok()))).unwrap_or(300);
        let expires = Instant::now() + Duration::from_secs(lifetime.saturating_sub(60).max(1));
        self.token = Some((token.clone(), expires));
        Ok(token)
    }

    async fn query(&mut self, kql: &str) -> Result<Value, VendorError> {
        let url = format!("{}/v1/workspaces/{}/query", self.config.api_url, self.config.workspace_id);
        let body = json!({ "query": kql });
        for refreshed in [false, true] {
            let token = self.token().await?;
            let result = self.http.send("query", |client| client.post(&url).bearer_auth(&token).json(&body)).await;
            match result {
                Ok(response) => return json_body("query", response).await,
                // A token revoked or expired early: fetch a new one once.
                Err(VendorError::Auth { status: 401, .. }) if !refreshed => self.token = None,
                Err(error) => return Err(error),
            }
        }
        Err(VendorError::Auth { status: 401, detail: "query refused with a fresh token".to_owned() })
    }
}

/// A KQL string literal: double-quoted with `\` and `"` escaped (KQL string literal rules).
fn kql_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn kql_datetime(time: DateTime<Utc>) -> String {
    format!("datetime({})", time.to_rfc3339_opts(SecondsFormat::Nanos, true))
}

/// The page query: rows ingested in `[from.time, until)`, minus those already published at
/// `from.time`, oldest first, at most `limit`.
pub fn page_query(from: &Checkpoint, until: DateTime<Utc>, limit: u32) -> String {
    let seen = from.ids.iter().map(|id| kql_string(id)).collect::<Vec<_>>().join(", ");
    format!(
        "let aluskort_from = {from};\nlet aluskort_until = {until};\nlet aluskort_seen = dynamic([{seen}]);\nlet aluskort_limit = {limit};\n\
         SecurityAlert\n\
         | where TimeGenerated >= aluskort_from - {SCAN_MARGIN_DAYS}d\n\
         | extend {INGESTED_COLUMN} = ingestion_time()\n\
         | where {INGESTED_COLUMN} >= aluskort_from and {INGESTED_COLUMN} < aluskort_until\n\
         | where not({INGESTED_COLUMN} == aluskort_from and SystemAlertId in (aluskort_seen))\n\
         | order by {INGESTED_COLUMN} asc, SystemAlertId asc\n\
         | take aluskort_limit",
        from = kql_datetime(from.time),
        until = kql_datetime(until),
    )
}

/// Turns a query response into records; a row without its ingestion time or id is malformed.
pub fn page_of(response: Value, limit: u32) -> Result<Page, VendorError> {
    if response.get("tables").and_then(Value::as_array).is_none() {
        return Err(VendorError::Malformed("query response has no tables".to_owned()));
    }
    let mut page = Page::default();
    let rows = aluskort_ingest::reader::from_document("query", response);
    page.more = rows.len() >= limit as usize;
    for row in rows {
        let mut record = match row.record {
            Ok(record) => record,
            Err(reason) => {
                page.malformed.push(Malformed { location: row.location, reason, original: Value::Null });
                continue;
            }
        };
        let ingested = record.as_object_mut().and_then(|map| map.remove(INGESTED_COLUMN));
        let time = ingested.as_ref().and_then(aluskort_ingest::time::parse_timestamp);
        let id = record.get("SystemAlertId").and_then(Value::as_str).filter(|id| !id.trim().is_empty()).map(str::to_owned);
        match (time, id) {
            (Some(time), Some(id)) => page.records.push(Fetched { time, id, payload: record }),
            (None, _) => page.malformed.push(Malformed {
                location: row.location,
                reason: format!("row has no parseable {INGESTED_COLUMN}"),
                original: record,
            }),
            (_, None) => {
                page.malformed.push(Malformed { location: row.location, reason: "row has no SystemAlertId".to_owned(), original: record })
            }
        }
    }
    Ok(page)
}

#[async_trait]
impl Source for SentinelConnector {
    async fn begin(&mut self, _from: &Checkpoint, until: DateTime<Utc>) -> Result<(), VendorError> {
        self.until = Some(until);
        self.token().await.map(drop)
    }

    async fn next_page(&mut self, position: &Checkpoint, limit: u32) -> Result<Page, VendorError> {
        let until = self.until.unwrap_or_else(Utc::now);
        let response = self.query(&page_query(position, until, limit)).await?;
        page_of(response, limit)
    }

    async fn end(&mut self) {
        self.until = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_query_escapes_ids_and_keys_on_ingestion_time() {
        let mut from = Checkpoint::starting_at(DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z").expect("valid").with_timezone(&Utc));
        from.ids.insert("a\"b\\c".to_owned());
        let query = page_query(&from, from.time + chrono::Duration::hours(1), 500);
        assert!(query.contains("let aluskort_from = datetime(2024-01-01T00:00:00.000000000Z);"), "{query}");
        assert!(query.contains(r#"dynamic(["a\"b\\c"])"#), "{query}");
        assert!(query.contains("ingestion_time()") && query.contains("take aluskort_limit"));
    }

    #[test]
    fn rows_without_time_or_id_are_malformed_not_fatal() {
        let body = json!({"tables": [{"name": "PrimaryResult",
            "columns": [{"name": "SystemAlertId", "type": "string"}, {"name": INGESTED_COLUMN, "type": "datetime"}],
            "rows": [["a-1", "2024-01-01T00:00:01Z"], ["", "2024-01-01T00:00:02Z"], ["a-3", null], ["a-4"]]}]});
        let page = page_of(body, 4).expect("a query response");
        assert_eq!(page.records.len(), 1);
        assert_eq!(page.records[0].payload, json!({"SystemAlertId": "a-1"}), "the helper column is removed");
        assert_eq!(page.malformed.len(), 3);
        assert!(page.more);
        assert!(page_of(json!({"error": {"code": "BadArgumentError"}}), 4).is_err());
    }
}
