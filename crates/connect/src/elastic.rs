//! Elastic Security alerts through `_search` with a point in time and `search_after`.
//!
//! - Auth: `Authorization: ApiKey <base64 id:key>` (the encoded key Kibana shows).
//! - `POST /{index}/_pit?keep_alive=2m` → `{"id"}`; each `POST /_search` carries
//!   `{"pit": {"id", "keep_alive"}}` and no index, and may return a new `pit_id` to use next;
//!   `DELETE /_pit {"id"}` at the end
//!   (<https://www.elastic.co/docs/api/doc/elasticsearch/operation/operation-open-point-in-time>).
//! - Order: `@timestamp` ascending; with a PIT Elasticsearch adds the `_shard_doc` tiebreaker, so
//!   each hit's `sort` array is a unique position for `search_after`.
//! - Between polls the checkpoint is `(@timestamp, ids at it)`: `range @timestamp gte` and
//!   `must_not ids`. Alert documents mix dotted and nested keys; both are read.

use aluskort_config::ElasticSource;
use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::checkpoint::Checkpoint;
use crate::http::{Http, json_body};
use crate::retry::VendorError;
use crate::source::{Fetched, Malformed, Page, Source};

const KEEP_ALIVE: &str = "2m";

pub struct ElasticConnector {
    config: ElasticSource,
    http: Http,
    pit: Option<String>,
    query: Value,
    search_after: Option<Value>,
}

impl ElasticConnector {
    pub fn new(config: ElasticSource, http: Http) -> Self {
        ElasticConnector { config, http, pit: None, query: Value::Null, search_after: None }
    }

    fn auth(&self) -> String {
        format!("ApiKey {}", self.config.api_key.expose())
    }
}

/// The query for one poll: alerts at or after the checkpoint time, before `until`, minus the ids
/// already published at the checkpoint time.
pub fn poll_query(from: &Checkpoint, until: DateTime<Utc>) -> Value {
    let range = json!({"range": {"@timestamp": {
        "gte": from.time.to_rfc3339_opts(SecondsFormat::Nanos, true),
        "lt": until.to_rfc3339_opts(SecondsFormat::Nanos, true),
        "format": "strict_date_optional_time_nanos"
    }}});
    let mut query = json!({"bool": {"filter": [range]}});
    if !from.ids.is_empty() {
        query["bool"]["must_not"] = json!([{"ids": {"values": from.ids.iter().collect::<Vec<_>>()}}]);
    }
    query
}

/// Reads the hits of a `_search` response into records; the position each hit carries is its
/// `sort` array. A hit without `_source` or a parseable `@timestamp` is malformed.
pub fn page_of(response: &Value, limit: u32) -> Result<(Page, Option<Value>), VendorError> {
    let hits = response
        .get("hits")
        .and_then(|h| h.get("hits"))
        .and_then(Value::as_array)
        .ok_or_else(|| VendorError::Malformed("_search response has no hits.hits".to_owned()))?;
    let mut page = Page { more: hits.len() >= limit as usize, ..Page::default() };
    let mut last_sort = None;
    for (index, hit) in hits.iter().enumerate() {
        last_sort = hit.get("sort").cloned().or(last_sort);
        let location = format!("hits[{index}]");
        let id = hit.get("_id").and_then(Value::as_str).map(str::to_owned);
        let time = hit.get("_source").and_then(timestamp_of);
        match (id, time, hit.get("_source")) {
            (Some(id), Some(time), Some(_)) => {
                page.records.push(Fetched { time, id, payload: aluskort_ingest::reader::unwrap_envelope(hit.clone()) });
            }
            _ => page.malformed.push(Malformed {
                location,
                reason: "hit has no _id, _source or parseable @timestamp".to_owned(),
                original: hit.clone(),
            }),
        }
    }
    Ok((page, last_sort))
}

/// `@timestamp`, written either as a top-level dotted key or nested (it is never nested in
/// practice, but `kibana.alert.original_time`-style mixing is, so read both ways).
fn timestamp_of(source: &Value) -> Option<DateTime<Utc>> {
    source.get("@timestamp").and_then(aluskort_ingest::time::parse_timestamp)
}

#[async_trait]
impl Source for ElasticConnector {
    async fn begin(&mut self, from: &Checkpoint, until: DateTime<Utc>) -> Result<(), VendorError> {
        let url = format!("{}/{}/_pit", self.config.url, self.config.index);
        let auth = self.auth();
        let response = self
            .http
            .send("open point in time", |client| client.post(&url).query(&[("keep_alive", KEEP_ALIVE)]).header("Authorization", &auth))
            .await?;
        let body = json_body("open point in time", response).await?;
        let id = body.get("id").and_then(Value::as_str).ok_or_else(|| VendorError::Malformed("_pit response has no id".to_owned()))?;
        self.pit = Some(id.to_owned());
        self.query = poll_query(from, until);
        self.search_after = None;
        Ok(())
    }

    async fn next_page(&mut self, _position: &Checkpoint, limit: u32) -> Result<Page, VendorError> {
        let pit = self.pit.clone().ok_or_else(|| VendorError::Malformed("next_page before begin".to_owned()))?;
        let mut body = json!({
            "size": limit,
            "query": self.query,
            "pit": {"id": pit, "keep_alive": KEEP_ALIVE},
            "sort": [{"@timestamp": {"order": "asc", "format": "strict_date_optional_time_nanos"}}],
            "track_total_hits": false,
        });
        if let Some(after) = &self.search_after {
            body["search_after"] = after.clone();
        }
        let url = format!("{}/_search", self.config.url);
        let auth = self.auth();
        let response = self.http.send("search", |client| client.post(&url).header("Authorization", &auth).json(&body)).await?;
        let response = json_body("search", response).await?;
        if let Some(new_pit) = response.get("pit_id").and_then(Value::as_str) {
            self.pit = Some(new_pit.to_owned());
        }
        let (page, last_sort) = page_of(&response, limit)?;
        if last_sort.is_some() {
            self.search_after = last_sort;
        }
        Ok(page)
    }

    async fn end(&mut self) {
        let Some(pit) = self.pit.take() else { return };
        let url = format!("{}/_pit", self.config.url);
        let auth = self.auth();
        // Best effort: an unclosed PIT expires after keep_alive anyway.
        let closed = self.http.client.delete(&url).header("Authorization", &auth).json(&json!({"id": pit})).send().await;
        if let Err(error) = closed {
            tracing::debug!(%error, "closing the point in time failed; it expires on its own");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_poll_query_excludes_ids_at_the_checkpoint() {
        let mut from = Checkpoint::starting_at(DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z").expect("valid").with_timezone(&Utc));
        assert!(poll_query(&from, from.time).get("bool").and_then(|b| b.get("must_not")).is_none());
        from.ids.insert("x".to_owned());
        let query = poll_query(&from, from.time);
        assert_eq!(query["bool"]["must_not"][0]["ids"]["values"], json!(["x"]));
        assert_eq!(query["bool"]["filter"][0]["range"]["@timestamp"]["gte"], json!("2024-01-01T00:00:00.000000000Z"));
    }

    #[test]
    fn hits_become_records_and_bad_hits_dead_letters() {
        let response = json!({"pit_id": "p2", "hits": {"hits": [
            {"_id": "a", "_source": {"@timestamp": "2024-01-01T00:00:01Z", "kibana.alert.uuid": "a"}, "sort": ["2024-01-01T00:00:01Z", 5]},
            {"_id": "b", "_source": {"message": "no time"}, "sort": ["2024-01-01T00:00:02Z", 6]}
        ]}});
        let (page, last) = page_of(&response, 2).expect("page");
        assert_eq!(page.records.len(), 1);
        assert_eq!(page.records[0].payload["kibana.alert.uuid"], json!("a"));
        assert_eq!(page.malformed.len(), 1);
        assert_eq!(last, Some(json!(["2024-01-01T00:00:02Z", 6])));
        assert!(page.more);
        assert!(page_of(&json!({"error": "x"}), 2).is_err());
    }
}
