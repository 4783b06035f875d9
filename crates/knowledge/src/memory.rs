//! Incident-memory scoring (FR-RSN-004, REQUIREMENTS §3.3 and the decisions table): how relevant a
//! past incident is to the one under investigation.
//!
//! `composite = 0.4·similarity + 0.3·recency + 0.15·tenant_match + 0.15·technique_jaccard`, with the
//! dual-decay recency `0.7·e^(−0.023·d) + 0.3 / (1 + ln(1 + d/365))` (a fast decay for the usual case,
//! a slow one so that old incidents never vanish entirely), floored at 0.1 for incidents marked rare
//! and important. A missing age counts as 30 days (the enricher's default).
//!
//! [`IncidentMemory`] stores closed investigations (vector + lexical copy) and recalls the most
//! similar ones of a tenant, falling back to word overlap when vectors are unavailable (NFR-REL-004).

use std::collections::HashMap;

/// Weights of the composite score.
pub const WEIGHT_SIMILARITY: f64 = 0.4;
pub const WEIGHT_RECENCY: f64 = 0.3;
pub const WEIGHT_TENANT: f64 = 0.15;
pub const WEIGHT_TECHNIQUES: f64 = 0.15;
/// Per-day rate of the fast decay.
pub const DECAY_RATE: f64 = 0.023;
/// Recency never falls below this for rare, important incidents.
pub const RARE_IMPORTANT_FLOOR: f64 = 0.1;
/// Age assumed when a past incident's age is unknown.
pub const DEFAULT_AGE_DAYS: f64 = 30.0;
/// Similar incidents kept for the investigation's context.
pub const TOP_K: usize = 5;

/// Recency of an incident `age_days` old (negative ages count as 0).
pub fn recency(age_days: Option<f64>, rare_important: bool) -> f64 {
    let days = age_days.unwrap_or(DEFAULT_AGE_DAYS).max(0.0);
    let value = 0.7 * (-DECAY_RATE * days).exp() + 0.3 / (1.0 + (1.0 + days / 365.0).ln());
    if rare_important { value.max(RARE_IMPORTANT_FLOOR) } else { value }
}

/// Jaccard overlap of two technique sets (0 when both are empty).
pub fn technique_jaccard(a: &[String], b: &[String]) -> f64 {
    let a: std::collections::BTreeSet<&str> = a.iter().map(String::as_str).collect();
    let b: std::collections::BTreeSet<&str> = b.iter().map(String::as_str).collect();
    let union = a.union(&b).count();
    if union == 0 { 0.0 } else { a.intersection(&b).count() as f64 / union as f64 }
}

/// What is known about one candidate past incident.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Vector (or lexical) similarity to the current incident, 0..=1.
    pub similarity: f64,
    pub age_days: Option<f64>,
    pub same_tenant: bool,
    /// Technique overlap with the current incident, 0..=1.
    pub technique_overlap: f64,
    pub rare_important: bool,
}

pub fn composite(candidate: &Candidate) -> f64 {
    WEIGHT_SIMILARITY * candidate.similarity.clamp(0.0, 1.0)
        + WEIGHT_RECENCY * recency(candidate.age_days, candidate.rare_important)
        + WEIGHT_TENANT * f64::from(u8::from(candidate.same_tenant))
        + WEIGHT_TECHNIQUES * candidate.technique_overlap.clamp(0.0, 1.0)
}

/// Candidates ranked best first (ties keep input order), at most [`TOP_K`]. Candidates from other
/// tenants are never returned: memory is tenant-isolated, the tenant term only orders shared ones.
pub fn rank<T>(candidates: Vec<(T, Candidate)>) -> Vec<(T, f64)> {
    let mut scored: Vec<(usize, T, f64)> = candidates
        .into_iter()
        .enumerate()
        .filter(|(_, (_, candidate))| candidate.same_tenant)
        .map(|(index, (item, candidate))| (index, item, composite(&candidate)))
        .collect();
    scored.sort_by(|a, b| b.2.total_cmp(&a.2).then(a.0.cmp(&b.0)));
    scored.into_iter().take(TOP_K).map(|(_, item, score)| (item, score)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pinned(days: f64) -> Candidate {
        Candidate { similarity: 0.95, age_days: Some(days), same_tenant: true, technique_overlap: 0.8, rare_important: false }
    }

    fn close(actual: f64, expected: f64) -> bool {
        (actual - expected).abs() < 5e-5
    }

    /// REQUIREMENTS §3.3 (REM-M02) pinned values: recency / composite for similarity 0.95, same
    /// tenant, overlap 0.8.
    #[test]
    fn dual_decay_matches_the_pinned_values() {
        for (days, expected_recency, expected_composite) in
            [(0.0, 1.0, 0.95), (1.0, 0.98327, 0.94498), (30.0, 0.62914, 0.83874), (180.0, 0.22530, 0.71759), (365.0, 0.17734, 0.70320)]
        {
            let r = recency(Some(days), false);
            let c = composite(&pinned(days));
            assert!(close(r, expected_recency), "d={days}: recency {r} != {expected_recency}");
            assert!(close(c, expected_composite), "d={days}: composite {c} != {expected_composite}");
        }
    }

    #[test]
    fn a_recent_match_outranks_an_old_one_and_the_floor_holds() {
        let recent = Candidate { similarity: 0.85, age_days: Some(2.0), technique_overlap: 0.0, ..pinned(0.0) };
        let old = Candidate { similarity: 0.85, age_days: Some(180.0), technique_overlap: 0.0, ..pinned(0.0) };
        assert!(close(composite(&recent), 0.78007), "{}", composite(&recent));
        assert!(close(composite(&old), 0.55759), "{}", composite(&old));
        assert!(recency(Some(100_000.0), true) >= RARE_IMPORTANT_FLOOR);
        assert!(recency(Some(100_000.0), false) < RARE_IMPORTANT_FLOOR);
        assert!(close(recency(None, false), recency(Some(30.0), false)), "a missing age counts as 30 days");
    }

    #[test]
    fn ranking_is_tenant_isolated_and_keeps_five() {
        let mut candidates: Vec<(u32, Candidate)> = (0..8).map(|i| (i, pinned(f64::from(i) * 10.0))).collect();
        candidates.push((99, Candidate { same_tenant: false, ..pinned(0.0) }));
        let ranked = rank(candidates);
        assert_eq!(ranked.iter().map(|(id, _)| *id).collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
        assert!((technique_jaccard(&["T1".into(), "T2".into()], &["T2".into(), "T3".into()]) - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(technique_jaccard(&[], &[]), 0.0);
    }
}

/// A closed investigation as incident memory keeps it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PastIncident {
    pub id: String,
    pub tenant: String,
    /// The incident the investigation belonged to: recall skips the current incident's own members.
    #[serde(default)]
    pub incident_id: Option<String>,
    /// What happened, as text (title, verdict, key entities): what similarity is measured on.
    pub summary: String,
    pub techniques: Vec<String>,
    pub classification: String,
    pub closed_at: chrono::DateTime<chrono::Utc>,
    /// Rare but important (a confirmed intrusion): recency never drops below the floor.
    pub rare_important: bool,
}

/// One ranked match.
#[derive(Debug, Clone, PartialEq)]
pub struct Similar {
    pub incident: PastIncident,
    pub similarity: f64,
    pub score: f64,
}

/// The answer, and whether it came from the lexical fallback (NFR-REL-004: the vector index or the
/// embedder was unavailable).
#[derive(Debug, Clone, PartialEq)]
pub struct Recall {
    pub similar: Vec<Similar>,
    pub fallback: Option<String>,
}

/// How far back recall looks, and the age past which `aluskort memory archive` moves a month of
/// incident memory to object storage (NFR-CMP-002: archive after 12 months).
pub const HOT_MONTHS: u32 = 12;

/// The most vectors the hot index should hold (NFR-CMP-002: hot vectors under 100K); above it
/// `aluskort memory status` says so and archiving older months is due.
pub const HOT_VECTORS_MAX: usize = 100_000;

/// The start of the hot window before `now`: recall never reaches past it.
pub fn hot_since(now: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
    now.checked_sub_months(chrono::Months::new(HOT_MONTHS)).unwrap_or(now)
}

/// Most incidents the word-overlap fallback ranks.
const FALLBACK_LIMIT: u32 = 2_000;

/// Incident memory over an embedder and a vector index, with a lexical fallback. With a store
/// ([`IncidentMemory::with_store`]) every remembered incident is also kept durably by month, and
/// the fallback reads it from there (every replica, across restarts); without one, from the
/// incidents this process remembered.
pub struct IncidentMemory {
    embedder: std::sync::Arc<dyn crate::embed::Embedder>,
    index: std::sync::Arc<dyn crate::vector::VectorIndex>,
    store: Option<std::sync::Arc<dyn aluskort_store::MemoryStore>>,
    incidents: tokio::sync::RwLock<HashMap<String, PastIncident>>,
    /// Why the last recall fell back to word overlap; cleared by the next vector search that works.
    degraded: std::sync::Mutex<Option<String>>,
}

impl IncidentMemory {
    pub fn new(embedder: std::sync::Arc<dyn crate::embed::Embedder>, index: std::sync::Arc<dyn crate::vector::VectorIndex>) -> Self {
        IncidentMemory {
            embedder,
            index,
            store: None,
            incidents: tokio::sync::RwLock::new(HashMap::new()),
            degraded: std::sync::Mutex::new(None),
        }
    }

    /// Keeps every remembered incident in `store` too (by month, NFR-CMP-002).
    #[must_use]
    pub fn with_store(mut self, store: std::sync::Arc<dyn aluskort_store::MemoryStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Vectors in the index (NFR-CMP-002 wants under [`HOT_VECTORS_MAX`]).
    pub async fn hot_vectors(&self) -> usize {
        self.index.count().await
    }

    /// Removes incidents from the vector index and this process's copy (after their month was
    /// archived).
    pub async fn forget(&self, ids: &[String]) -> anyhow::Result<()> {
        {
            let mut incidents = self.incidents.write().await;
            for id in ids {
                incidents.remove(id);
            }
        }
        for chunk in ids.chunks(500) {
            self.index.delete(chunk).await?;
        }
        Ok(())
    }

    /// Why recall is running on the full-text fallback (degradation level `structured_search`,
    /// NFR-REL-004), if the last recall had to.
    pub fn degraded(&self) -> Option<String> {
        self.degraded.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Stores a closed investigation. The lexical copy is kept even when the vector write fails
    /// (the error is returned so the caller can retry the vector part).
    pub async fn remember(&self, incident: PastIncident) -> anyhow::Result<()> {
        if let Some(store) = &self.store {
            let row = aluskort_store::PastIncidentRow {
                tenant: incident.tenant.clone(),
                id: incident.id.clone(),
                closed_at: incident.closed_at,
                incident_id: incident.incident_id.clone(),
                body: serde_json::to_value(&incident)?,
            };
            store.put_past_incident(&row).await?;
        }
        {
            let mut incidents = self.incidents.write().await;
            incidents.insert(incident.id.clone(), incident.clone());
            // Incidents closed before the hot window are never recalled (NFR-CMP-002): this
            // process's copy lets them go, whenever it has doubled (amortised O(1) a remember; at
            // most twice the hot incidents held), instead of keeping all it ever saw.
            if incidents.len().is_power_of_two() {
                let since = hot_since(chrono::Utc::now());
                incidents.retain(|_, kept| kept.closed_at >= since);
            }
        }
        let vectors = self.embedder.embed(std::slice::from_ref(&incident.summary)).await?;
        let vector = vectors.into_iter().next().ok_or_else(|| anyhow::anyhow!("the embedder returned no vector"))?;
        let record = crate::vector::VectorRecord {
            id: incident.id.clone(),
            model: self.embedder.model().id.clone(),
            vector,
            payload: crate::vector::Payload {
                tenant: incident.tenant.clone(),
                kind: "incident".to_owned(),
                time: incident.closed_at,
                // The whole record rides along, so recall works after a restart.
                extra: serde_json::to_value(&incident)?,
            },
        };
        self.index.upsert(vec![record]).await?;
        Ok(())
    }

    /// Past incidents of `tenant` most like `summary`, ranked by the composite score, at most
    /// [`TOP_K`]. Falls back to word overlap when vectors cannot be used, and says so.
    pub async fn recall(
        &self,
        tenant: &str,
        summary: &str,
        techniques: &[String],
        exclude_incident: Option<&str>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Recall {
        let since = hot_since(now);
        let searched = self.vector_candidates(tenant, summary, since).await;
        *self.degraded.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
            searched.as_ref().err().map(|error| format!("vector search unavailable ({error:#})"));
        let (found, fallback): (Vec<(PastIncident, f64)>, Option<String>) = match searched {
            Ok(found) => (found, None),
            Err(error) => {
                let query: std::collections::BTreeSet<String> = crate::suggest::tokens(summary).into_iter().collect();
                let lexical = self
                    .fallback_candidates(tenant, since, now)
                    .await
                    .into_iter()
                    .map(|incident| {
                        let words: std::collections::BTreeSet<String> = crate::suggest::tokens(&incident.summary).into_iter().collect();
                        let union = query.union(&words).count();
                        let overlap = if union == 0 { 0.0 } else { query.intersection(&words).count() as f64 / union as f64 };
                        (incident, overlap)
                    })
                    .filter(|(_, overlap)| *overlap > 0.0)
                    .collect();
                (lexical, Some(format!("vector search unavailable ({error:#}); ranked by word overlap")))
            }
        };
        let candidates: Vec<(PastIncident, Candidate)> = found
            .into_iter()
            .filter(|(incident, _)| exclude_incident.is_none_or(|current| incident.incident_id.as_deref() != Some(current)))
            .map(|(incident, similarity)| {
                let age = (now - incident.closed_at).num_seconds() as f64 / 86_400.0;
                let candidate = Candidate {
                    similarity,
                    age_days: Some(age),
                    same_tenant: incident.tenant == tenant,
                    technique_overlap: technique_jaccard(techniques, &incident.techniques),
                    rare_important: incident.rare_important,
                };
                (incident, candidate)
            })
            .collect();
        let with_similarity: Vec<((PastIncident, f64), Candidate)> =
            candidates.into_iter().map(|(incident, candidate)| ((incident, candidate.similarity), candidate)).collect();
        let similar =
            rank(with_similarity).into_iter().map(|((incident, similarity), score)| Similar { incident, similarity, score }).collect();
        Recall { similar, fallback }
    }

    /// The tenant's hot incidents for the word-overlap fallback: from the store when there is one
    /// (the newest [`FALLBACK_LIMIT`]), else this process's copy.
    async fn fallback_candidates(
        &self,
        tenant: &str,
        since: chrono::DateTime<chrono::Utc>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Vec<PastIncident> {
        if let Some(store) = &self.store {
            match store.past_incidents(tenant, since, now + chrono::Duration::days(1), FALLBACK_LIMIT).await {
                Ok(rows) => return rows.into_iter().filter_map(|row| serde_json::from_value(row.body).ok()).collect(),
                Err(error) => tracing::warn!(%error, "incident memory store unreadable; falling back to this process's incidents"),
            }
        }
        let incidents = self.incidents.read().await;
        incidents.values().filter(|incident| incident.tenant == tenant && incident.closed_at >= since).cloned().collect()
    }

    async fn vector_candidates(
        &self,
        tenant: &str,
        summary: &str,
        since: chrono::DateTime<chrono::Utc>,
    ) -> anyhow::Result<Vec<(PastIncident, f64)>> {
        let vectors = self.embedder.embed(&[summary.to_owned()]).await?;
        let vector = vectors.into_iter().next().ok_or_else(|| anyhow::anyhow!("the embedder returned no vector"))?;
        let filter = crate::vector::Filter {
            tenant: Some(tenant.to_owned()),
            kind: Some("incident".to_owned()),
            since: Some(since),
            ..Default::default()
        };
        let hits = self.index.search(&self.embedder.model().id, &vector, &filter, 50).await?;
        Ok(hits
            .into_iter()
            .filter_map(|hit| {
                let incident = serde_json::from_value::<PastIncident>(hit.payload.extra).ok()?;
                Some((incident, f64::from(hit.score.max(0.0))))
            })
            .collect())
    }
}

#[cfg(test)]
mod recall_tests {
    use std::sync::Arc;

    use async_trait::async_trait;
    use chrono::{Duration, Utc};

    use super::*;
    use crate::embed::HashingEmbedder;
    use crate::vector::{Filter, FlatIndex, Hit, VectorError, VectorIndex, VectorRecord};

    struct DownIndex;

    #[async_trait]
    impl VectorIndex for DownIndex {
        async fn upsert(&self, _: Vec<VectorRecord>) -> Result<(), VectorError> {
            Err(VectorError::Io(std::io::Error::other("connection refused")))
        }
        async fn delete(&self, _: &[String]) -> Result<(), VectorError> {
            Err(VectorError::Io(std::io::Error::other("connection refused")))
        }
        async fn search(&self, _: &str, _: &[f32], _: &Filter, _: usize) -> Result<Vec<Hit>, VectorError> {
            Err(VectorError::Io(std::io::Error::other("connection refused")))
        }
        async fn count(&self) -> usize {
            0
        }
    }

    fn past(id: &str, tenant: &str, summary: &str, days_ago: i64) -> PastIncident {
        PastIncident {
            id: id.to_owned(),
            tenant: tenant.to_owned(),
            incident_id: Some(format!("inc-{id}")),
            summary: summary.to_owned(),
            techniques: vec!["T1003.001".to_owned()],
            classification: "true_positive".to_owned(),
            closed_at: Utc::now() - Duration::days(days_ago),
            rare_important: false,
        }
    }

    /// Memory over the hashing embedder and a flat index in `dir`.
    async fn flat_memory(dir: &std::path::Path) -> IncidentMemory {
        let index = Arc::new(FlatIndex::open(dir).await.expect("index"));
        IncidentMemory::new(Arc::new(HashingEmbedder::default()), index)
    }

    /// The same incident closed 300 days ago ("recent", inside the hot months) and 400 ("stale").
    async fn remember_recent_and_stale(memory: &IncidentMemory) {
        memory.remember(past("recent", "acme", "mimikatz dumped lsass credentials on ws-01", 300)).await.expect("remember");
        memory.remember(past("stale", "acme", "mimikatz dumped lsass credentials on ws-01", 400)).await.expect("remember");
    }

    async fn seed(memory: &IncidentMemory) {
        for incident in [
            past("i-1", "acme", "mimikatz dumped lsass credentials on ws-01", 3),
            past("i-2", "acme", "phishing email with invoice attachment to finance", 1),
            past("i-3", "other", "mimikatz dumped lsass credentials on dc-02", 1),
        ] {
            let _ = memory.remember(incident).await;
        }
    }

    #[tokio::test]
    async fn recall_ranks_similar_incidents_of_the_tenant_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let memory = flat_memory(dir.path()).await;
        seed(&memory).await;
        let recall =
            memory.recall("acme", "lsass credential dumping with mimikatz on ws-07", &["T1003.001".to_owned()], None, Utc::now()).await;
        assert_eq!(recall.fallback, None);
        assert_eq!(memory.degraded(), None);
        assert_eq!(recall.similar.first().map(|s| s.incident.id.as_str()), Some("i-1"), "{recall:?}");
        assert!(recall.similar.iter().all(|s| s.incident.tenant == "acme"), "tenant-isolated");
        let without_own = memory.recall("acme", "lsass credential dumping with mimikatz", &[], Some("inc-i-1"), Utc::now()).await;
        assert!(without_own.similar.iter().all(|s| s.incident.id != "i-1"), "the current incident's own members are skipped");

        // After a restart (new memory over the same index) the vector path still resolves incidents.
        let reopened = Arc::new(FlatIndex::open(dir.path()).await.expect("reopen"));
        let restarted = IncidentMemory::new(Arc::new(HashingEmbedder::default()), reopened);
        let recall = restarted.recall("acme", "lsass credential dumping with mimikatz", &[], None, Utc::now()).await;
        assert_eq!(recall.similar.first().map(|s| s.incident.id.as_str()), Some("i-1"), "{recall:?}");
    }

    #[tokio::test]
    async fn recall_falls_back_to_word_overlap_when_the_index_is_down() {
        let memory = IncidentMemory::new(Arc::new(HashingEmbedder::default()), Arc::new(DownIndex));
        seed(&memory).await;
        let recall = memory.recall("acme", "mimikatz lsass credentials", &[], None, Utc::now()).await;
        assert!(recall.fallback.as_deref().is_some_and(|f| f.contains("connection refused")), "{recall:?}");
        assert!(memory.degraded().is_some_and(|why| why.contains("connection refused")), "structured_search shows until vectors work");
        assert_eq!(recall.similar.iter().map(|s| s.incident.id.as_str()).collect::<Vec<_>>(), vec!["i-1"]);
    }

    /// NFR-CMP-002: recall looks back [`HOT_MONTHS`] only; older incidents wait for the archive.
    #[tokio::test]
    async fn recall_stays_within_the_hot_months() {
        let dir = tempfile::tempdir().expect("tempdir");
        let memory = flat_memory(dir.path()).await;
        remember_recent_and_stale(&memory).await;
        let recall = memory.recall("acme", "mimikatz dumped lsass credentials on ws-01", &[], None, Utc::now()).await;
        assert_eq!(recall.similar.iter().map(|s| s.incident.id.as_str()).collect::<Vec<_>>(), vec!["recent"]);
        memory.forget(&["recent".to_owned()]).await.expect("forget");
        assert_eq!(memory.hot_vectors().await, 1, "only the stale one's vector is left");
        let recall = memory.recall("acme", "mimikatz dumped lsass credentials on ws-01", &[], None, Utc::now()).await;
        assert!(recall.similar.is_empty(), "{recall:?}");
    }

    /// A long-running process does not keep every incident it ever remembered: those closed before
    /// the hot window leave its own copy (they are never recalled; the store and the index keep
    /// them for the archive).
    #[tokio::test]
    async fn this_process_lets_go_of_incidents_older_than_the_hot_months() {
        let dir = tempfile::tempdir().expect("tempdir");
        let memory = flat_memory(dir.path()).await;
        remember_recent_and_stale(&memory).await;
        for n in 0..5 {
            memory.remember(past(&format!("new-{n}"), "acme", "encoded powershell download cradle", 1)).await.expect("remember");
        }
        let mut kept: Vec<String> = memory.incidents.read().await.keys().cloned().collect();
        kept.sort();
        assert_eq!(kept, ["new-0", "new-1", "new-2", "new-3", "new-4", "recent"]);
        assert_eq!(memory.hot_vectors().await, 7, "the index keeps every vector until its month is archived");
    }

    /// With a store, what one process remembered is kept durably: another process (or a restart)
    /// whose vector index is down still finds it through the word-overlap fallback.
    #[tokio::test]
    async fn remembered_incidents_are_durable_in_the_store() {
        let store = Arc::new(aluskort_store::SqliteStore::in_memory().await.expect("store"));
        let dir = tempfile::tempdir().expect("tempdir");
        let writer = flat_memory(dir.path()).await.with_store(store.clone());
        seed(&writer).await;
        let month = (Utc::now() - Duration::days(1)).format("%Y-%m").to_string();
        let months = aluskort_store::MemoryStore::past_incident_months(store.as_ref()).await.expect("months");
        assert_eq!(months.iter().map(|(_, n)| n).sum::<u64>(), 3, "{months:?}");
        assert!(months.iter().any(|(m, _)| *m == month), "{months:?}");

        let reader = IncidentMemory::new(Arc::new(HashingEmbedder::default()), Arc::new(DownIndex)).with_store(store);
        let recall = reader.recall("acme", "mimikatz lsass dump on ws-07", &[], None, Utc::now()).await;
        assert!(recall.fallback.is_some());
        assert_eq!(recall.similar.iter().map(|s| s.incident.id.as_str()).collect::<Vec<_>>(), vec!["i-1"], "{recall:?}");
    }
}
