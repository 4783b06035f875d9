//! Splunk ES notable events through the REST search API in export mode.
//!
//! `POST {url}/services/search/v2/jobs/export` with form fields `search`, `earliest_time`,
//! `latest_time` (epoch seconds) and `output_mode=json` streams one JSON object a line:
//! `{"preview":false,"offset":N,"result":{...}}`, plus `{"messages":[...]}` and `lastrow` markers
//! (<https://docs.splunk.com/Documentation/Splunk/latest/RESTREF/RESTsearch#search.2Fv2.2Fjobs.2Fexport>).
//! Auth is a Splunk authentication token: `Authorization: Bearer <token>`.
//!
//! Pages are keyset searches: from the checkpoint's `_time` (inclusive), excluding the ids already
//! published at that time, sorted by `(_time, id)`, `head`-limited. The id is `event_id` when the
//! search yields it (the ES `notable` macro computes it) and the index position `_cd` otherwise
//! (plain `index=notable`), computed in the search as [`ID_FIELD`] so that the exclusion and the
//! checkpoint always use the same value.

use aluskort_config::SplunkSource;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::checkpoint::Checkpoint;
use crate::http::Http;
use crate::retry::VendorError;
use crate::source::{Fetched, Malformed, Page, Source};

/// Field our search adds with each result's id; removed before the result is published.
pub const ID_FIELD: &str = "aluskort_id";

pub struct SplunkConnector {
    config: SplunkSource,
    http: Http,
    until: Option<DateTime<Utc>>,
}

impl SplunkConnector {
    pub fn new(config: SplunkSource, http: Http) -> Self {
        SplunkConnector { config, http, until: None }
    }
}

/// An SPL quoted string: `\` and `"` escaped.
fn spl_string(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Epoch seconds with microseconds, the form `earliest_time`/`latest_time` accept.
pub fn epoch(time: DateTime<Utc>) -> String {
    format!("{}.{:06}", time.timestamp(), time.timestamp_subsec_micros())
}

/// The SPL of one page.
pub fn page_search(base: &str, from: &Checkpoint, limit: u32) -> String {
    let mut search = format!("{} | eval {ID_FIELD}=coalesce(event_id, _cd)", base.trim());
    if !from.ids.is_empty() {
        let seen = from.ids.iter().map(|id| spl_string(id)).collect::<Vec<_>>().join(", ");
        search.push_str(&format!(" | search NOT {ID_FIELD} IN ({seen})"));
    }
    search.push_str(&format!(" | sort 0 +_time, +{ID_FIELD} | head {limit}"));
    search
}

/// Reads an export stream: results become records; lines that are not JSON, and results without
/// `_time` or an id, are malformed. `messages` of type ERROR/FATAL fail the page.
pub fn page_of(body: &[u8], limit: u32) -> Result<Page, VendorError> {
    let mut page = Page::default();
    let mut results = 0_usize;
    for (index, line) in body.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let location = format!("export:{}", index + 1);
        let value: Value = match serde_json::from_slice(line) {
            Ok(value) => value,
            Err(error) => {
                page.malformed.push(Malformed { location, reason: format!("invalid JSON: {error}"), original: Value::Null });
                continue;
            }
        };
        if let Some(messages) = value.get("messages").and_then(Value::as_array) {
            let fatal: Vec<&str> = messages
                .iter()
                .filter(|m| matches!(m.get("type").and_then(Value::as_str), Some("ERROR" | "FATAL")))
                .filter_map(|m| m.get("text").and_then(Value::as_str))
                .collect();
            if !fatal.is_empty() {
                return Err(VendorError::Rejected { status: 200, detail: fatal.join("; ") });
            }
        }
        if value.get("preview").and_then(Value::as_bool) == Some(true) {
            continue;
        }
        let Some(Value::Object(mut result)) = value.get("result").cloned() else { continue };
        results += 1;
        let added = result.remove(ID_FIELD);
        let time = result.get("_time").and_then(aluskort_ingest::time::parse_timestamp);
        let id = added
            .as_ref()
            .and_then(Value::as_str)
            .or_else(|| ["event_id", "_cd"].iter().find_map(|field| result.get(*field).and_then(Value::as_str)))
            .map(str::to_owned);
        match (time, id) {
            // A stash notable's fields are lifted from `_raw` as for any other input.
            (Some(time), Some(id)) => {
                page.records.push(Fetched { time, id, payload: aluskort_ingest::reader::unwrap_envelope(Value::Object(result)) });
            }
            _ => page.malformed.push(Malformed {
                location,
                reason: "result has no parseable _time or no event_id/_cd".to_owned(),
                original: Value::Object(result),
            }),
        }
    }
    page.more = results >= limit as usize;
    Ok(page)
}

#[async_trait]
impl Source for SplunkConnector {
    async fn begin(&mut self, _from: &Checkpoint, until: DateTime<Utc>) -> Result<(), VendorError> {
        self.until = Some(until);
        Ok(())
    }

    async fn next_page(&mut self, position: &Checkpoint, limit: u32) -> Result<Page, VendorError> {
        let until = self.until.unwrap_or_else(Utc::now);
        let form = [
            ("search", page_search(&self.config.search, position, limit)),
            ("earliest_time", epoch(position.time)),
            ("latest_time", epoch(until)),
            ("output_mode", "json".to_owned()),
        ];
        let url = format!("{}/services/search/v2/jobs/export", self.config.url);
        let token = self.config.token.expose().to_owned();
        let mut response = self.http.send("export", |client| client.post(&url).bearer_auth(&token).form(&form)).await?;
        // Streamed: read chunk by chunk; a cut stream is a network error and the page is retried.
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            body.extend_from_slice(&chunk);
        }
        page_of(&body, limit)
    }

    async fn end(&mut self) {
        self.until = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_search_excludes_published_ids_and_sorts_ascending() {
        let mut from = Checkpoint::starting_at(Utc::now());
        assert_eq!(
            page_search("search index=notable", &from, 10),
            "search index=notable | eval aluskort_id=coalesce(event_id, _cd) | sort 0 +_time, +aluskort_id | head 10"
        );
        from.ids.insert("E\"1".to_owned());
        assert!(page_search("search index=notable", &from, 10).contains(r#"| search NOT aluskort_id IN ("E\"1") |"#));
    }

    #[test]
    fn export_lines_are_read_and_errors_surface() {
        let body = b"{\"preview\":false,\"offset\":0,\"result\":{\"event_id\":\"E1\",\"aluskort_id\":\"E1\",\"_time\":\"2024-01-01T00:00:01.000+00:00\"}}\n\
not json\n{\"preview\":false,\"offset\":1,\"result\":{\"rule_name\":\"x\"}}\n{\"lastrow\":true,\"preview\":false}\n";
        let page = page_of(body, 5).expect("page");
        assert_eq!(page.records.len(), 1);
        assert_eq!(page.records[0].id, "E1");
        assert!(page.records[0].payload.get(ID_FIELD).is_none(), "the helper field is removed");
        assert_eq!(page.malformed.len(), 2);
        assert!(!page.more);
        let failed = page_of(br#"{"messages":[{"type":"FATAL","text":"Error in 'search' command"}]}"#, 5);
        assert!(matches!(failed, Err(VendorError::Rejected { .. })));
        assert_eq!(epoch(DateTime::from_timestamp(1_700_000_000, 5_000).expect("valid")), "1700000000.000005");
    }
}
