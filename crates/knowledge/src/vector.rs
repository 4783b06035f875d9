//! Vector index behind a trait, with payload filters (tenant, kind, time).
//!
//! [`FlatIndex`] is the embedded implementation: exact cosine search over every stored vector (at
//! the design's hot-set size, under 100K vectors, a scan is milliseconds and never approximate),
//! persisted under the data directory as an append-only JSON Lines log of upserts and deletes,
//! replayed on open. A torn last line (a crash mid-write) is skipped and counted; [`FlatIndex::compact`]
//! rewrites the log to the live records through a temporary file and a rename.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::RwLock;

use crate::embed::cosine;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payload {
    pub tenant: String,
    /// What the vector stands for: `incident`, `report_chunk`, ...
    pub kind: String,
    pub time: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub extra: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VectorRecord {
    pub id: String,
    /// The embedding model id; searches only compare vectors of one model.
    pub model: String,
    pub vector: Vec<f32>,
    pub payload: Payload,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    pub tenant: Option<String>,
    pub kind: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

impl Filter {
    fn accepts(&self, payload: &Payload) -> bool {
        self.tenant.as_ref().is_none_or(|t| *t == payload.tenant)
            && self.kind.as_ref().is_none_or(|k| *k == payload.kind)
            && self.since.is_none_or(|since| payload.time >= since)
            && self.until.is_none_or(|until| payload.time < until)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub id: String,
    pub score: f32,
    pub payload: Payload,
}

#[derive(Debug, thiserror::Error)]
pub enum VectorError {
    #[error("vector index storage: {0}")]
    Io(#[from] std::io::Error),
    #[error("vector {id}: {reason}")]
    Invalid { id: String, reason: String },
}

#[async_trait]
pub trait VectorIndex: Send + Sync {
    /// Inserts or replaces records by id.
    async fn upsert(&self, records: Vec<VectorRecord>) -> Result<(), VectorError>;
    async fn delete(&self, ids: &[String]) -> Result<(), VectorError>;
    /// The `limit` records of `model` most similar to `vector` that pass `filter`, best first.
    async fn search(&self, model: &str, vector: &[f32], filter: &Filter, limit: usize) -> Result<Vec<Hit>, VectorError>;
    /// Records stored.
    async fn count(&self) -> usize;
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum LogEntry {
    Upsert { record: VectorRecord },
    Delete { id: String },
}

pub struct FlatIndex {
    path: PathBuf,
    records: RwLock<HashMap<String, VectorRecord>>,
    /// Log lines that could not be read when the index was opened.
    pub skipped_lines: usize,
}

impl FlatIndex {
    /// Opens (or creates) the index stored at `<dir>/vectors.jsonl`.
    pub async fn open(dir: &Path) -> Result<Self, VectorError> {
        tokio::fs::create_dir_all(dir).await?;
        let path = dir.join("vectors.jsonl");
        let mut records = HashMap::new();
        let mut skipped_lines = 0;
        match tokio::fs::read_to_string(&path).await {
            Ok(text) => {
                for line in text.lines().filter(|l| !l.trim().is_empty()) {
                    match serde_json::from_str::<LogEntry>(line) {
                        Ok(LogEntry::Upsert { record }) => {
                            records.insert(record.id.clone(), record);
                        }
                        Ok(LogEntry::Delete { id }) => {
                            records.remove(&id);
                        }
                        Err(_) => skipped_lines += 1,
                    }
                }
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(error.into()),
        }
        Ok(FlatIndex { path, records: RwLock::new(records), skipped_lines })
    }

    fn append(&self, entries: &[LogEntry]) -> Result<(), VectorError> {
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&self.path)?;
        let mut buffer = Vec::new();
        for entry in entries {
            serde_json::to_writer(&mut buffer, entry).map_err(std::io::Error::other)?;
            buffer.push(b'\n');
        }
        file.write_all(&buffer)?;
        file.sync_data()?;
        Ok(())
    }

    /// Rewrites the log to the live records (write beside, fsync, rename).
    pub async fn compact(&self) -> Result<(), VectorError> {
        let records = self.records.read().await;
        let partial = self.path.with_extension("jsonl.partial");
        {
            let mut file = std::fs::File::create(&partial)?;
            let mut ids: Vec<&String> = records.keys().collect();
            ids.sort();
            for id in ids {
                let entry = LogEntry::Upsert { record: records[id].clone() };
                serde_json::to_writer(&mut file, &entry).map_err(std::io::Error::other)?;
                file.write_all(b"\n")?;
            }
            file.sync_all()?;
        }
        std::fs::rename(&partial, &self.path)?;
        Ok(())
    }
}

#[async_trait]
impl VectorIndex for FlatIndex {
    async fn upsert(&self, records: Vec<VectorRecord>) -> Result<(), VectorError> {
        for record in &records {
            if record.vector.is_empty() || record.vector.iter().any(|v| !v.is_finite()) {
                return Err(VectorError::Invalid { id: record.id.clone(), reason: "empty or non-finite vector".to_owned() });
            }
        }
        let mut live = self.records.write().await;
        // Durable first, then visible: a crash never leaves a visible record that is not on disk.
        let entries: Vec<LogEntry> = records.into_iter().map(|record| LogEntry::Upsert { record }).collect();
        self.append(&entries)?;
        for entry in entries {
            if let LogEntry::Upsert { record } = entry {
                live.insert(record.id.clone(), record);
            }
        }
        Ok(())
    }

    async fn delete(&self, ids: &[String]) -> Result<(), VectorError> {
        let mut live = self.records.write().await;
        self.append(&ids.iter().map(|id| LogEntry::Delete { id: id.clone() }).collect::<Vec<_>>())?;
        for id in ids {
            live.remove(id);
        }
        Ok(())
    }

    async fn search(&self, model: &str, vector: &[f32], filter: &Filter, limit: usize) -> Result<Vec<Hit>, VectorError> {
        let live = self.records.read().await;
        let mut hits: Vec<Hit> = live
            .values()
            .filter(|r| r.model == model && r.vector.len() == vector.len() && filter.accepts(&r.payload))
            .map(|r| Hit { id: r.id.clone(), score: cosine(&r.vector, vector), payload: r.payload.clone() })
            .collect();
        hits.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.id.cmp(&b.id)));
        hits.truncate(limit);
        Ok(hits)
    }

    async fn count(&self) -> usize {
        self.records.read().await.len()
    }
}

/// The behaviour every [`VectorIndex`] must have; each implementation's tests call it.
#[cfg(test)]
pub(crate) mod conformance {
    use super::*;

    fn record(id: &str, tenant: &str, kind: &str, day: u32, vector: Vec<f32>) -> VectorRecord {
        let time = DateTime::parse_from_rfc3339(&format!("2026-11-{day:02}T00:00:00Z")).map(|t| t.with_timezone(&Utc)).unwrap_or_default();
        VectorRecord {
            id: id.to_owned(),
            model: "m1".to_owned(),
            vector,
            payload: Payload { tenant: tenant.to_owned(), kind: kind.to_owned(), time, extra: Value::Null },
        }
    }

    pub async fn filters_ranks_replaces_and_deletes(index: &dyn VectorIndex) {
        index
            .upsert(vec![
                record("a", "t1", "incident", 1, vec![1.0, 0.0, 0.0]),
                record("b", "t1", "incident", 2, vec![0.8, 0.6, 0.0]),
                record("c", "t2", "incident", 3, vec![1.0, 0.0, 0.0]),
                record("d", "t1", "report_chunk", 4, vec![1.0, 0.1, 0.0]),
            ])
            .await
            .expect("upsert");
        let tenant = Filter { tenant: Some("t1".to_owned()), kind: Some("incident".to_owned()), ..Filter::default() };
        let hits = index.search("m1", &[1.0, 0.0, 0.0], &tenant, 10).await.expect("search");
        assert_eq!(hits.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(), vec!["a", "b"], "tenant and kind filters, best first");
        assert!((hits[0].score - 1.0).abs() < 1e-6);
        let recent =
            Filter { since: DateTime::parse_from_rfc3339("2026-11-02T00:00:00Z").ok().map(|t| t.with_timezone(&Utc)), ..Filter::default() };
        let hits = index.search("m1", &[1.0, 0.0, 0.0], &recent, 2).await.expect("search");
        assert_eq!(hits.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(), vec!["c", "d"], "time filter and limit");
        assert!(
            index.search("other-model", &[1.0, 0.0, 0.0], &Filter::default(), 10).await.expect("search").is_empty(),
            "models never mix"
        );

        index.upsert(vec![record("a", "t1", "incident", 1, vec![0.0, 1.0, 0.0])]).await.expect("replace");
        index.delete(&["b".to_owned()]).await.expect("delete");
        let hits = index.search("m1", &[1.0, 0.0, 0.0], &tenant, 10).await.expect("search");
        assert_eq!(hits.len(), 1);
        assert!(hits[0].score.abs() < 1e-6, "a was replaced");
        assert_eq!(index.count().await, 3);
        let bad = index.upsert(vec![record("x", "t1", "incident", 1, vec![f32::NAN])]).await;
        assert!(matches!(bad, Err(VectorError::Invalid { .. })));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn flat_index_conforms_and_survives_a_reopen_and_a_torn_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let index = FlatIndex::open(dir.path()).await.expect("open");
        conformance::filters_ranks_replaces_and_deletes(&index).await;
        drop(index);
        // A crash mid-append leaves a torn last line: skipped, the rest replayed.
        let log = dir.path().join("vectors.jsonl");
        let mut file = std::fs::OpenOptions::new().append(true).open(&log).expect("log");
        file.write_all(b"{\"op\":\"upsert\",\"record\":{\"id\":\"torn").expect("write");
        drop(file);
        let reopened = FlatIndex::open(dir.path()).await.expect("reopen");
        assert_eq!(reopened.skipped_lines, 1);
        assert_eq!(reopened.count().await, 3);
        reopened.compact().await.expect("compact");
        let compacted = FlatIndex::open(dir.path()).await.expect("reopen");
        assert_eq!((compacted.count().await, compacted.skipped_lines), (3, 0));
        assert_eq!(std::fs::read_to_string(&log).expect("log").lines().count(), 3, "one line per live record");
    }
}
