//! [`VectorIndex`] on a Qdrant server through its REST API (the server-scale backend; the
//! embedded [`crate::vector::FlatIndex`] is the default).
//!
//! Endpoints (<https://api.qdrant.tech/api-reference>): `PUT /collections/{c}` (create, `vectors:
//! {size, distance: "Cosine"}`), `PUT /collections/{c}/points?wait=true` (upsert), `POST
//! /collections/{c}/points/delete?wait=true`, `POST /collections/{c}/points/search` (`vector`,
//! `limit`, `filter.must` of `match`/`range` conditions, `with_payload`), `POST
//! /collections/{c}/points/count`. One collection per embedding model (`{prefix}__{model}`), since
//! a collection has one vector size. Qdrant point ids are UUIDs or integers, so our string id is
//! hashed into a UUID and kept in the payload as `aluskort_id`; times are kept as epoch seconds
//! for range filters. Auth: the `api-key` header.

use std::collections::HashSet;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::vector::{Filter, Hit, Payload, VectorError, VectorIndex, VectorRecord};

pub struct QdrantIndex {
    client: reqwest::Client,
    url: String,
    api_key: Option<String>,
    prefix: String,
    /// Collections known to exist.
    created: Mutex<HashSet<String>>,
}

fn remote(error: impl std::fmt::Display) -> VectorError {
    VectorError::Io(std::io::Error::other(format!("qdrant: {error}")))
}

/// A stable UUID (RFC 4122 layout, version 8 "custom") from our string id.
pub fn point_id(id: &str) -> String {
    let a = crate::stix::fnv1a(id.as_bytes(), crate::stix::FNV_OFFSET);
    let b = crate::stix::fnv1a(id.as_bytes(), 0x8422_2325_cbf2_9ce4);
    let hex = format!("{a:016x}{b:016x}");
    format!("{}-{}-8{}-a{}-{}", &hex[0..8], &hex[8..12], &hex[13..16], &hex[17..20], &hex[20..32])
}

impl QdrantIndex {
    pub fn new(url: &str, api_key: Option<String>, prefix: &str, timeout: std::time::Duration) -> Result<Self, VectorError> {
        let client = reqwest::Client::builder().timeout(timeout).build().map_err(remote)?;
        Ok(QdrantIndex {
            client,
            url: url.trim_end_matches('/').to_owned(),
            api_key,
            prefix: prefix.to_owned(),
            created: Mutex::new(HashSet::new()),
        })
    }

    fn collection(&self, model: &str) -> String {
        let model: String = model.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
        format!("{}__{model}", self.prefix)
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Result<Value, VectorError> {
        let mut request = self.client.request(method, format!("{}{path}", self.url)).json(&body);
        if let Some(key) = &self.api_key {
            request = request.header("api-key", key);
        }
        let response = request.send().await.map_err(remote)?;
        let status = response.status();
        let text = response.text().await.map_err(remote)?;
        if !status.is_success() {
            return Err(remote(format!("{path}: {status}: {}", text.chars().take(300).collect::<String>())));
        }
        serde_json::from_str(&text).map_err(|error| remote(format!("{path}: not JSON: {error}")))
    }

    async fn ensure_collection(&self, model: &str, size: usize) -> Result<String, VectorError> {
        let name = self.collection(model);
        let mut created = self.created.lock().await;
        if created.contains(&name) {
            return Ok(name);
        }
        let exists = self.call(reqwest::Method::GET, &format!("/collections/{name}/exists"), Value::Null).await?;
        if exists.pointer("/result/exists").and_then(Value::as_bool) != Some(true) {
            self.call(reqwest::Method::PUT, &format!("/collections/{name}"), json!({"vectors": {"size": size, "distance": "Cosine"}}))
                .await?;
        }
        created.insert(name.clone());
        Ok(name)
    }

    async fn collections(&self) -> Result<Vec<String>, VectorError> {
        let listed = self.call(reqwest::Method::GET, "/collections", Value::Null).await?;
        let prefix = format!("{}__", self.prefix);
        Ok(listed
            .pointer("/result/collections")
            .and_then(Value::as_array)
            .map(|c| {
                c.iter()
                    .filter_map(|c| c.get("name").and_then(Value::as_str))
                    .filter(|n| n.starts_with(&prefix))
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default())
    }
}

fn payload_json(record: &VectorRecord) -> Value {
    json!({
        "aluskort_id": record.id,
        "model": record.model,
        "tenant": record.payload.tenant,
        "kind": record.payload.kind,
        "time": record.payload.time.to_rfc3339(),
        "time_epoch": record.payload.time.timestamp(),
        "extra": record.payload.extra,
    })
}

fn filter_json(filter: &Filter) -> Value {
    let mut must = Vec::new();
    if let Some(tenant) = &filter.tenant {
        must.push(json!({"key": "tenant", "match": {"value": tenant}}));
    }
    if let Some(kind) = &filter.kind {
        must.push(json!({"key": "kind", "match": {"value": kind}}));
    }
    let mut range = serde_json::Map::new();
    if let Some(since) = filter.since {
        range.insert("gte".to_owned(), json!(since.timestamp()));
    }
    if let Some(until) = filter.until {
        range.insert("lt".to_owned(), json!(until.timestamp()));
    }
    if !range.is_empty() {
        must.push(json!({"key": "time_epoch", "range": range}));
    }
    json!({"must": must})
}

#[async_trait]
impl VectorIndex for QdrantIndex {
    async fn upsert(&self, records: Vec<VectorRecord>) -> Result<(), VectorError> {
        for record in &records {
            if record.vector.is_empty() || record.vector.iter().any(|v| !v.is_finite()) {
                return Err(VectorError::Invalid { id: record.id.clone(), reason: "empty or non-finite vector".to_owned() });
            }
        }
        let mut by_model: std::collections::BTreeMap<(String, usize), Vec<&VectorRecord>> = Default::default();
        for record in &records {
            by_model.entry((record.model.clone(), record.vector.len())).or_default().push(record);
        }
        for ((model, size), group) in by_model {
            let name = self.ensure_collection(&model, size).await?;
            let points: Vec<Value> =
                group.iter().map(|r| json!({"id": point_id(&r.id), "vector": r.vector, "payload": payload_json(r)})).collect();
            self.call(reqwest::Method::PUT, &format!("/collections/{name}/points?wait=true"), json!({"points": points})).await?;
            // An id moved to another model must not stay behind in the old collection.
            for other in self.collections().await?.into_iter().filter(|c| *c != name) {
                let ids: Vec<String> = group.iter().map(|r| point_id(&r.id)).collect();
                self.call(reqwest::Method::POST, &format!("/collections/{other}/points/delete?wait=true"), json!({"points": ids})).await?;
            }
        }
        Ok(())
    }

    async fn delete(&self, ids: &[String]) -> Result<(), VectorError> {
        let points: Vec<String> = ids.iter().map(|id| point_id(id)).collect();
        for name in self.collections().await? {
            self.call(reqwest::Method::POST, &format!("/collections/{name}/points/delete?wait=true"), json!({"points": points})).await?;
        }
        Ok(())
    }

    async fn search(&self, model: &str, vector: &[f32], filter: &Filter, limit: usize) -> Result<Vec<Hit>, VectorError> {
        let name = self.collection(model);
        if !self.collections().await?.contains(&name) {
            return Ok(Vec::new());
        }
        let body = json!({"vector": vector, "limit": limit, "filter": filter_json(filter), "with_payload": true});
        let answer = self.call(reqwest::Method::POST, &format!("/collections/{name}/points/search"), body).await?;
        let results = answer.get("result").and_then(Value::as_array).ok_or_else(|| remote("search: no result array"))?;
        results
            .iter()
            .map(|point| {
                let payload = point.get("payload").ok_or_else(|| remote("search: a point without payload"))?;
                let text = |key: &str| payload.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
                let time = DateTime::parse_from_rfc3339(&text("time")).map(|t| t.with_timezone(&Utc)).map_err(remote)?;
                Ok(Hit {
                    id: text("aluskort_id"),
                    score: point.get("score").and_then(Value::as_f64).unwrap_or_default() as f32,
                    payload: Payload {
                        tenant: text("tenant"),
                        kind: text("kind"),
                        time,
                        extra: payload.get("extra").cloned().unwrap_or(Value::Null),
                    },
                })
            })
            .collect()
    }

    async fn count(&self) -> usize {
        let Ok(names) = self.collections().await else { return 0 };
        let mut total = 0;
        for name in names {
            if let Ok(answer) = self.call(reqwest::Method::POST, &format!("/collections/{name}/points/count"), json!({"exact": true})).await
            {
                total += answer.pointer("/result/count").and_then(Value::as_u64).unwrap_or(0) as usize;
            }
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use aluskort_testkit::fake::qdrant::{API_KEY, FakeQdrant};

    use super::*;

    #[tokio::test]
    async fn qdrant_index_conforms_against_the_rest_api() {
        let fake = FakeQdrant::start().await;
        let index = QdrantIndex::new(&fake.url(), Some(API_KEY.to_owned()), "aluskort", std::time::Duration::from_secs(5)).expect("client");
        crate::vector::conformance::filters_ranks_replaces_and_deletes(&index).await;
        let unauthorised = QdrantIndex::new(&fake.url(), None, "aluskort", std::time::Duration::from_secs(5)).expect("client");
        let error = unauthorised.search("m1", &[1.0, 0.0, 0.0], &Filter::default(), 1).await.expect_err("no key");
        assert!(error.to_string().contains("401"), "{error}");
        assert_eq!(point_id("a"), point_id("a"));
        assert_ne!(point_id("a"), point_id("b"));
    }
}
