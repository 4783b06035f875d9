use aluskort_audit::verify_store;
use aluskort_bus::MemoryBus;
use aluskort_store::{InvestigationFilter, SqliteStore};

use super::*;
use crate::report::TriageRecord;

pub(super) struct Harness {
    pub(super) pipeline: Arc<Pipeline>,
    pub(super) store: Arc<SqliteStore>,
    shutdown: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

async fn harness() -> Harness {
    harness_with(|_| PipelineSettings::default()).await
}

/// A harness whose settings may use its store (for context lookups).
pub(super) async fn harness_with(settings: impl FnOnce(&Arc<SqliteStore>) -> PipelineSettings) -> Harness {
    let store = Arc::new(SqliteStore::in_memory().await.expect("store"));
    let bus: Arc<dyn Bus> = Arc::new(MemoryBus::new());
    let audit = Arc::new(AuditLog::new(store.clone()));
    let pipeline = Pipeline::new(bus, store.clone(), audit, settings(&store));
    let shutdown = CancellationToken::new();
    let tasks = vec![
        tokio::spawn(Arc::clone(&pipeline).run_parse_stage(shutdown.clone())),
        tokio::spawn(Arc::clone(&pipeline).run_investigate_stage(shutdown.clone())),
    ];
    Harness { pipeline, store, shutdown, tasks }
}

impl Harness {
    pub(super) async fn run(&self, records: Vec<Value>) -> Vec<StageOutcome> {
        let mut expected = HashSet::new();
        for (index, record) in records.into_iter().enumerate() {
            expected.insert(self.pipeline.submit(&format!("test:{}", index + 1), record).await.expect("submit"));
        }
        let group = format!("test-{}", uuid::Uuid::now_v7());
        tokio::time::timeout(StdDuration::from_secs(60), self.pipeline.await_outcomes(expected, &group, |_| {}))
            .await
            .expect("pipeline finishes in time")
            .expect("outcomes")
    }

    pub(super) async fn stop(self) {
        self.shutdown.cancel();
        for task in self.tasks {
            task.await.expect("stage task").expect("stage result");
        }
    }
}

fn sentinel_records() -> Vec<Value> {
    let path = aluskort_testkit::sentinel_alerts_path();
    let text = std::fs::read_to_string(path).expect("shared sentinel alerts");
    text.lines().map(|line| serde_json::from_str(line).expect("JSON line")).collect()
}

#[tokio::test]
async fn real_sentinel_alerts_flow_end_to_end_with_a_valid_audit_chain() {
    let harness = harness().await;
    let mut records = sentinel_records();
    records.push(json!({"not": "an alert"}));
    let outcomes = harness.run(records).await;
    assert_eq!(outcomes.len(), 27);
    let dead: Vec<&StageOutcome> = outcomes.iter().filter(|o| o.error.is_some()).collect();
    assert_eq!(dead.len(), 1, "the unrecognised record is dead-lettered");
    assert_eq!(dead[0].origin, "test:27");
    assert_eq!(harness.store.dead_letters(10).await.expect("dlq").len(), 1);

    let states = harness.store.list_investigations(&InvestigationFilter { limit: Some(100), ..Default::default() }).await.expect("list");
    assert_eq!(states.len(), 26);
    // NFR-REL-003: deterministic mode queues every alert for a human, nothing is auto-closed.
    assert!(
        states.iter().all(|s| s.state == InvestigationState::AwaitingHuman),
        "{:?}",
        states.iter().map(|s| s.state).collect::<Vec<_>>()
    );
    let mut incidents = HashSet::new();
    for state in &states {
        let record = TriageRecord::load(harness.store.as_ref(), state).await.expect("load").expect("record");
        assert!((0.0..=1.0).contains(&record.confidence));
        assert!(record.classification.is_some());
        incidents.insert(record.incident_id.expect("grouped"));
        let history = harness.store.investigation_history(state.investigation_id).await.expect("history");
        let mut path: Vec<&str> = history.iter().map(|s| s.state.as_str()).collect();
        // Reassessment when the incident grows saves further awaiting_human versions.
        path.dedup();
        assert_eq!(path, vec!["received", "parsing", "enriching", "reasoning", "awaiting_human"], "every transition persisted");
        let versions: Vec<u64> = history.iter().map(|s| s.version).collect();
        assert_eq!(versions, (1..=versions.len() as u64).collect::<Vec<_>>(), "versions are gap-free");
    }
    assert_eq!(incidents.len(), 3, "the three Sentinel incidents");
    // An incident is judged as a whole: every member of a multi-alert incident saw its context.
    for state in &states {
        assert!(state.case_facts.contains_key("incident_context"), "{} was (re)assessed with its incident", state.alert_id);
    }

    let report = verify_store(harness.store.as_ref()).await.expect("verify");
    assert_eq!(report.first_break, None);
    assert!(report.records > 26 * 6, "every decision audited: {} records", report.records);
    harness.stop().await;
}

#[tokio::test]
async fn resubmitting_an_alert_does_not_investigate_it_twice() {
    let harness = harness().await;
    let record = sentinel_records().remove(0);
    let first = harness.run(vec![record.clone()]).await;
    let second = harness.run(vec![record]).await;
    assert!(!first[0].duplicate);
    assert!(second[0].duplicate);
    assert_eq!(first[0].investigation_id, second[0].investigation_id);
    let all = harness.store.list_investigations(&InvestigationFilter::default()).await.expect("list");
    assert_eq!(all.len(), 1);
    harness.stop().await;
}

#[tokio::test]
async fn a_crash_mid_investigation_resumes_from_the_saved_state() {
    let harness = harness().await;
    let record = sentinel_records().remove(3);
    let raw = RawAlert { ingest_id: "i-1".into(), origin: "test:1".into(), received_at: Utc::now(), payload: record, tenant: None };
    let normalized = normalize(&raw).expect("normalises");
    // Simulate a crash after the investigation was created and moved to PARSING.
    let mut state =
        GraphState::new(normalized.alert.alert_id.clone(), normalized.alert.tenant_id.clone(), DegradationLevel::Deterministic, Utc::now());
    state.version = 1;
    harness.store.insert_alert(&normalized.alert).await.expect("alert");
    harness.store.create_investigation(&state).await.expect("create");
    state.transition(InvestigationState::Parsing, "pre-crash", Utc::now()).expect("legal");
    harness.store.save_investigation(&state, 1).await.expect("saved before the crash");
    // Redelivery.
    harness.pipeline.investigate(&normalized, 2).await.expect("resume");
    let resumed = harness.store.investigation(state.investigation_id).await.expect("load").expect("exists");
    assert_eq!(resumed.state, InvestigationState::AwaitingHuman);
    let history = harness.store.investigation_history(state.investigation_id).await.expect("history");
    assert_eq!(history.iter().filter(|s| s.state == InvestigationState::Parsing).count(), 1, "no step repeated");
    harness.stop().await;
}

/// A record parsed but not yet investigated when the process stops (its normalised message lived
/// only in the in-process bus) stays pending in the raw inbox, and a restart's replay
/// investigates it: nothing is lost between stages.
#[tokio::test]
async fn a_stop_between_parse_and_investigate_is_replayed() {
    let store = Arc::new(SqliteStore::in_memory().await.expect("store"));
    let first_bus = Arc::new(MemoryBus::new());
    let audit = Arc::new(AuditLog::new(store.clone()));
    let first = Pipeline::new(first_bus.clone(), store.clone(), audit.clone(), PipelineSettings::default());
    let shutdown = CancellationToken::new();
    let parse = tokio::spawn(Arc::clone(&first).run_parse_stage(shutdown.clone()));
    let record = sentinel_records().remove(0);
    first.submit("test:1", record).await.expect("submit");
    for _ in 0..200 {
        if first_bus.len(Topic::AlertsNormalized) == 1 {
            break;
        }
        tokio::time::sleep(StdDuration::from_millis(10)).await;
    }
    assert_eq!(first_bus.len(Topic::AlertsNormalized), 1, "parsed");
    shutdown.cancel();
    parse.await.expect("joined").expect("parse stage");
    assert_eq!(store.pending_raw(10).await.expect("pending").len(), 1, "not investigated yet: still pending");

    let second = Pipeline::new(Arc::new(MemoryBus::new()), store.clone(), audit, PipelineSettings::default());
    let shutdown = CancellationToken::new();
    tokio::spawn(Arc::clone(&second).run_parse_stage(shutdown.clone()));
    tokio::spawn(Arc::clone(&second).run_investigate_stage(shutdown.clone()));
    let pending: HashSet<String> = store.pending_raw(10).await.expect("pending").into_iter().map(|r| r.ingest_id).collect();
    assert_eq!(second.replay_pending().await.expect("replay"), 1);
    let outcomes = tokio::time::timeout(StdDuration::from_secs(30), second.await_outcomes(pending, "test-replay", |_| {}))
        .await
        .expect("in time")
        .expect("outcomes");
    assert!(outcomes[0].investigation_id.is_some(), "{outcomes:?}");
    assert!(store.pending_raw(10).await.expect("pending").is_empty(), "done once investigated");
    shutdown.cancel();
}

/// A two-technique STIX bundle, enough for the suggester to tell them apart.
fn tiny_bundle() -> Value {
    let pattern = |stix: &str, id: &str, name: &str, description: &str| {
        json!({"type": "attack-pattern", "id": stix, "name": name, "description": description,
               "external_references": [{"source_name": "mitre-attack", "external_id": id}],
               "kill_chain_phases": [{"kill_chain_name": "mitre-attack", "phase_name": "credential-access"}]})
    };
    json!({"type": "bundle", "objects": [
        {"type": "x-mitre-tactic", "id": "x-mitre-tactic--1", "name": "Credential Access", "x_mitre_shortname": "credential-access",
         "external_references": [{"source_name": "mitre-attack", "external_id": "TA0006"}]},
        pattern("attack-pattern--1", "T1003.001", "LSASS Memory", "Adversaries may access credential material stored in the memory of LSASS, for example with Mimikatz."),
        pattern("attack-pattern--2", "T1110.003", "Password Spraying", "Adversaries may use a single common password against many accounts."),
    ]})
}

/// FR-RSN-004: an alert that names no technique gets suggestions from its text, kept apart from
/// the source's techniques; an alert that names some gets none.
#[tokio::test]
async fn alerts_without_techniques_get_suggestions() {
    let store = Arc::new(SqliteStore::in_memory().await.expect("store"));
    let bus: Arc<dyn Bus> = Arc::new(MemoryBus::new());
    let audit = Arc::new(AuditLog::new(store.clone()));
    let corpus = aluskort_knowledge::suggest::Corpus::from_stix(&tiny_bundle(), false).expect("corpus");
    let settings = PipelineSettings { technique_suggester: Some(Arc::new(corpus)), ..PipelineSettings::default() };
    let pipeline = Pipeline::new(bus, store.clone(), audit, settings);
    let shutdown = CancellationToken::new();
    tokio::spawn(Arc::clone(&pipeline).run_parse_stage(shutdown.clone()));
    tokio::spawn(Arc::clone(&pipeline).run_investigate_stage(shutdown.clone()));
    let bare = json!({"SystemAlertId": "s-1", "AlertName": "Mimikatz read LSASS memory on ws-01", "AlertSeverity": "High",
                      "TimeGenerated": "2026-11-01T00:00:00Z"});
    let named = json!({"SystemAlertId": "s-2", "AlertName": "Mimikatz read LSASS memory on ws-02", "AlertSeverity": "High",
                       "TimeGenerated": "2026-11-01T00:00:00Z", "Techniques": "[\"T1003\"]"});
    let mut expected = HashSet::new();
    expected.insert(pipeline.submit("t:1", bare).await.expect("submit"));
    expected.insert(pipeline.submit("t:2", named).await.expect("submit"));
    let outcomes = tokio::time::timeout(StdDuration::from_secs(30), pipeline.await_outcomes(expected, "suggest", |_| {}))
        .await
        .expect("in time")
        .expect("outcomes");
    for outcome in outcomes {
        let id = aluskort_core::InvestigationId::parse(outcome.investigation_id.as_deref().expect("investigated")).expect("uuid");
        let state = store.investigation(id).await.expect("load").expect("exists");
        let record = TriageRecord::load(store.as_ref(), &state).await.expect("load").expect("record");
        if record.alert_id == "s-1" {
            assert!(record.techniques.is_empty(), "the source named none");
            assert_eq!(record.suggested_techniques.first().and_then(|s| s["id"].as_str()), Some("T1003.001"), "{record:?}");
        } else {
            assert_eq!(record.techniques, vec!["T1003"]);
            assert!(record.suggested_techniques.is_empty());
        }
    }
    shutdown.cancel();
}

/// FR-RSN-004: enrichment recalls similar closed incidents of the same tenant from incident memory.
#[tokio::test]
async fn enrichment_recalls_similar_closed_incidents() {
    use aluskort_knowledge::embed::HashingEmbedder;
    use aluskort_knowledge::memory::{IncidentMemory, PastIncident};
    use aluskort_knowledge::vector::FlatIndex;

    let dir = tempfile::tempdir().expect("tempdir");
    let memory =
        Arc::new(IncidentMemory::new(Arc::new(HashingEmbedder::default()), Arc::new(FlatIndex::open(dir.path()).await.expect("index"))));
    let past = |id: &str, tenant: &str, summary: &str| PastIncident {
        id: id.to_owned(),
        tenant: tenant.to_owned(),
        incident_id: Some(format!("inc-old-{id}")),
        summary: summary.to_owned(),
        techniques: vec!["T1003.001".to_owned()],
        classification: "true_positive".to_owned(),
        closed_at: Utc::now() - Duration::days(3),
        rare_important: true,
    };
    memory.remember(past("old-1", "default", "Mimikatz read LSASS memory on ws-09")).await.expect("remember");
    memory.remember(past("old-2", "someone-else", "Mimikatz read LSASS memory on ws-09")).await.expect("remember");

    let store = Arc::new(SqliteStore::in_memory().await.expect("store"));
    let settings = PipelineSettings { incident_memory: Some(memory), ..PipelineSettings::default() };
    let pipeline = Pipeline::new(Arc::new(MemoryBus::new()), store.clone(), Arc::new(AuditLog::new(store.clone())), settings);
    let shutdown = CancellationToken::new();
    tokio::spawn(Arc::clone(&pipeline).run_parse_stage(shutdown.clone()));
    tokio::spawn(Arc::clone(&pipeline).run_investigate_stage(shutdown.clone()));
    let alert = json!({"SystemAlertId": "m-1", "AlertName": "Mimikatz read LSASS memory on ws-01", "AlertSeverity": "High",
                       "TimeGenerated": "2026-11-01T00:00:00Z"});
    let expected = HashSet::from([pipeline.submit("t:1", alert).await.expect("submit")]);
    let outcomes = tokio::time::timeout(StdDuration::from_secs(30), pipeline.await_outcomes(expected, "memory", |_| {}))
        .await
        .expect("in time")
        .expect("outcomes");
    let id = aluskort_core::InvestigationId::parse(outcomes[0].investigation_id.as_deref().expect("investigated")).expect("uuid");
    let state = store.investigation(id).await.expect("load").expect("exists");
    let record = TriageRecord::load(store.as_ref(), &state).await.expect("load").expect("record");
    let recalled: Vec<&str> = record.similar_incidents.iter().filter_map(|s| s["investigation_id"].as_str()).collect();
    assert_eq!(recalled, vec!["old-1"], "same tenant only: {:?}", record.similar_incidents);
    assert!(state.decision_chain.iter().any(|d| d.agent == "context_enricher" && d.action == "recalled"), "{:?}", state.decision_chain);
    shutdown.cancel();
}

/// The stage investigates the next batch while the previous one commits: the next batch reads
/// the committing batch's changes (its incidents, states and alerts) through the overlay, so the
/// result is the same as investigating one batch after the other, and both commits land in order.
#[tokio::test]
async fn a_batch_prepared_while_the_previous_one_commits_reads_its_changes() {
    let harness = harness().await;
    let normalized: Vec<NormalizedAlert> = sentinel_records()
        .into_iter()
        .enumerate()
        .map(|(index, payload)| {
            let raw = RawAlert { ingest_id: format!("i-{index}"), origin: "test".into(), received_at: Utc::now(), payload, tenant: None };
            normalize(&raw).expect("normalises")
        })
        .collect();
    let (first, second) = normalized.split_at(normalized.len() / 2);
    let pipeline = &harness.pipeline;
    let prepared_first = pipeline.prepare_batch(&items(first), None).await.expect("first prepared");
    let overlay = Arc::clone(&prepared_first.work);
    let prepared_second = pipeline.prepare_batch(&items(second), Some(overlay)).await.expect("second prepared over the first");
    pipeline.commit_prepared(prepared_first).await.expect("first commits");
    pipeline.commit_prepared(prepared_second).await.expect("second commits on top of it");

    let states = harness.store.list_investigations(&InvestigationFilter::default()).await.expect("list");
    assert_eq!(states.len(), normalized.len());
    let mut incidents = HashSet::new();
    for state in &states {
        assert_eq!(state.state, InvestigationState::AwaitingHuman);
        let record = TriageRecord::load(harness.store.as_ref(), state).await.expect("load").expect("record");
        incidents.insert(record.incident_id.expect("grouped"));
    }
    assert_eq!(incidents.len(), 3, "the three Sentinel incidents, across both batches: {incidents:?}");
    let report = verify_store(harness.store.as_ref()).await.expect("verify");
    assert_eq!(report.first_break, None);
    harness.stop().await;
}

fn items(alerts: &[NormalizedAlert]) -> Vec<(&NormalizedAlert, u32)> {
    alerts.iter().map(|alert| (alert, 1)).collect()
}

/// Crash-restart of the batch path: a process killed at an arbitrary point while batches are
/// being investigated and committed (the next one prepared over the one committing) loses
/// nothing and duplicates nothing. The restarted process replays the raw inbox; afterwards every
/// alert has exactly one settled investigation with gap-free versions, sits in exactly one live
/// incident, nothing is pending, and the audit chain verifies.
#[test]
fn a_process_killed_mid_batch_restarts_without_loss_or_duplicates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let total = 600;
    let page = sentinel_page("crash", total);

    // First process: killed (runtime shut down without waiting) once some batches are committed.
    let first = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let committed_before_kill = first.block_on(async {
        let store = Arc::new(SqliteStore::open(dir.path()).await.expect("store"));
        let audit = Arc::new(AuditLog::new(store.clone()));
        let pipeline = Pipeline::new(Arc::new(MemoryBus::new()), store.clone(), audit, PipelineSettings::default());
        let shutdown = CancellationToken::new();
        tokio::spawn(Arc::clone(&pipeline).run_parse_stage(shutdown.clone()));
        tokio::spawn(Arc::clone(&pipeline).run_investigate_stage(shutdown.clone()));
        pipeline.submit_many(page).await.expect("submitted durably");
        loop {
            let all = InvestigationFilter { limit: Some(1000), ..InvestigationFilter::default() };
            let done = store.list_investigations(&all).await.expect("list").len();
            if done >= 100 {
                return done;
            }
            tokio::time::sleep(StdDuration::from_millis(5)).await;
        }
    });
    first.shutdown_background();
    assert!(committed_before_kill < total, "the kill came mid-run ({committed_before_kill} of {total} investigated)");

    // Second process: same data directory, replays what was pending.
    let second = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    second.block_on(async {
        let store = Arc::new(SqliteStore::open(dir.path()).await.expect("reopen"));
        let audit = Arc::new(AuditLog::new(store.clone()));
        let pipeline = Pipeline::new(Arc::new(MemoryBus::new()), store.clone(), audit, PipelineSettings::default());
        let shutdown = CancellationToken::new();
        tokio::spawn(Arc::clone(&pipeline).run_parse_stage(shutdown.clone()));
        tokio::spawn(Arc::clone(&pipeline).run_investigate_stage(shutdown.clone()));
        let pending: HashSet<String> = store.pending_raw(10_000).await.expect("pending").into_iter().map(|r| r.ingest_id).collect();
        assert!(!pending.is_empty(), "the killed process left work pending");
        assert_eq!(pipeline.replay_pending().await.expect("replay"), pending.len());
        tokio::time::timeout(StdDuration::from_secs(120), pipeline.await_outcomes(pending, "restart", |_| {}))
            .await
            .expect("finishes in time")
            .expect("outcomes");

        assert!(store.pending_raw(10).await.expect("pending").is_empty(), "nothing left pending");
        let states =
            store.list_investigations(&InvestigationFilter { limit: Some(1000), ..InvestigationFilter::default() }).await.expect("list");
        let alerts: HashSet<String> = states.iter().map(|state| state.alert_id.to_string()).collect();
        assert_eq!(states.len(), total, "one investigation per alert");
        assert_eq!(alerts.len(), total, "no alert investigated twice");
        for state in &states {
            assert_eq!(state.state, InvestigationState::AwaitingHuman, "{} settled", state.alert_id);
            let history = store.investigation_history(state.investigation_id).await.expect("history");
            let versions: Vec<u64> = history.iter().map(|s| s.version).collect();
            assert_eq!(versions, (1..=versions.len() as u64).collect::<Vec<_>>(), "gap-free versions for {}", state.alert_id);
            let incident_id = state.incident_id.as_deref().expect("grouped");
            let incident = crate::resolve_incident(store.as_ref(), incident_id).await.expect("read").expect("incident exists");
            assert!(incident.merged_into.is_none());
            assert!(incident.alert_ids.contains(&state.alert_id), "{} is in its incident {}", state.alert_id, incident.incident_id);
        }
        let report = verify_store(store.as_ref()).await.expect("verify");
        assert_eq!(report.first_break, None, "audit chain intact across the kill");
        shutdown.cancel();
    });
}

/// A case store whose `fail_on`-th commit fails as unavailable (a lost connection mid-commit);
/// everything else goes to the real store.
struct FlakyCommits {
    inner: Arc<SqliteStore>,
    commits: std::sync::atomic::AtomicU32,
    fail_on: u32,
}

#[async_trait::async_trait]
impl CaseStore for FlakyCommits {
    async fn insert_raw(&self, record: &RawRecord) -> aluskort_store::StoreResult<InsertOutcome> {
        self.inner.insert_raw(record).await
    }
    async fn insert_raw_many(&self, records: &[RawRecord]) -> aluskort_store::StoreResult<Vec<InsertOutcome>> {
        self.inner.insert_raw_many(records).await
    }
    async fn load_checkpoint(&self, source_name: &str) -> aluskort_store::StoreResult<Option<Value>> {
        self.inner.load_checkpoint(source_name).await
    }
    async fn save_checkpoint(&self, source_name: &str, checkpoint: &Value) -> aluskort_store::StoreResult<()> {
        self.inner.save_checkpoint(source_name, checkpoint).await
    }
    async fn mark_raw(&self, ingest_id: &str, status: RawStatus, error: Option<&str>) -> aluskort_store::StoreResult<()> {
        self.inner.mark_raw(ingest_id, status, error).await
    }
    async fn pending_raw(&self, limit: u32) -> aluskort_store::StoreResult<Vec<RawRecord>> {
        self.inner.pending_raw(limit).await
    }
    async fn insert_alert(&self, alert: &aluskort_core::CanonicalAlert) -> aluskort_store::StoreResult<InsertOutcome> {
        self.inner.insert_alert(alert).await
    }
    async fn alert(&self, tenant: &TenantId, alert_id: &AlertId) -> aluskort_store::StoreResult<Option<aluskort_core::CanonicalAlert>> {
        self.inner.alert(tenant, alert_id).await
    }
    async fn alerts_between(
        &self,
        tenant: &TenantId,
        from: chrono::DateTime<Utc>,
        to: chrono::DateTime<Utc>,
    ) -> aluskort_store::StoreResult<Vec<aluskort_core::CanonicalAlert>> {
        self.inner.alerts_between(tenant, from, to).await
    }
    async fn create_investigation(&self, state: &GraphState) -> aluskort_store::StoreResult<InsertOutcome> {
        self.inner.create_investigation(state).await
    }
    async fn save_investigation(&self, state: &GraphState, expected_version: u64) -> aluskort_store::StoreResult<u64> {
        self.inner.save_investigation(state, expected_version).await
    }
    async fn investigation(&self, id: aluskort_core::InvestigationId) -> aluskort_store::StoreResult<Option<GraphState>> {
        self.inner.investigation(id).await
    }
    async fn investigation_for_alert(&self, tenant: &TenantId, alert_id: &AlertId) -> aluskort_store::StoreResult<Option<GraphState>> {
        self.inner.investigation_for_alert(tenant, alert_id).await
    }
    async fn investigations_for_alerts(&self, tenant: &TenantId, alert_ids: &[AlertId]) -> aluskort_store::StoreResult<Vec<GraphState>> {
        self.inner.investigations_for_alerts(tenant, alert_ids).await
    }
    async fn investigation_history(&self, id: aluskort_core::InvestigationId) -> aluskort_store::StoreResult<Vec<GraphState>> {
        self.inner.investigation_history(id).await
    }
    async fn list_investigations(&self, filter: &InvestigationFilter) -> aluskort_store::StoreResult<Vec<GraphState>> {
        self.inner.list_investigations(filter).await
    }
    async fn list_incidents(&self, filter: &aluskort_store::IncidentFilter) -> aluskort_store::StoreResult<Vec<aluskort_core::Incident>> {
        self.inner.list_incidents(filter).await
    }
    async fn list_alerts(&self, filter: &aluskort_store::AlertFilter) -> aluskort_store::StoreResult<Vec<aluskort_core::CanonicalAlert>> {
        self.inner.list_alerts(filter).await
    }
    async fn upsert_incident(&self, incident: &aluskort_core::Incident) -> aluskort_store::StoreResult<()> {
        self.inner.upsert_incident(incident).await
    }
    async fn incident(&self, incident_id: &str) -> aluskort_store::StoreResult<Option<aluskort_core::Incident>> {
        self.inner.incident(incident_id).await
    }
    async fn incidents_overlapping(
        &self,
        tenant: &TenantId,
        from: chrono::DateTime<Utc>,
        to: chrono::DateTime<Utc>,
    ) -> aluskort_store::StoreResult<Vec<aluskort_core::Incident>> {
        self.inner.incidents_overlapping(tenant, from, to).await
    }
    async fn incidents_with_keys(
        &self,
        tenant: &TenantId,
        keys: &[String],
        from: chrono::DateTime<Utc>,
        to: chrono::DateTime<Utc>,
    ) -> aluskort_store::StoreResult<Vec<Arc<aluskort_core::Incident>>> {
        self.inner.incidents_with_keys(tenant, keys, from, to).await
    }
    async fn grouping_epochs(&self, tenant: &TenantId, keys: &[String]) -> aluskort_store::StoreResult<HashMap<String, u64>> {
        self.inner.grouping_epochs(tenant, keys).await
    }
    async fn commit_work(
        &self,
        work: &aluskort_store::WorkBatch,
        audit: &[aluskort_core::audit::AuditRecord],
    ) -> aluskort_store::StoreResult<aluskort_store::WorkReport> {
        let call = self.commits.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        if call == self.fail_on {
            return Err(aluskort_store::StoreError::new(
                aluskort_store::StoreErrorKind::Unavailable,
                anyhow::anyhow!("connection reset during commit"),
            ));
        }
        self.inner.commit_work(work, audit).await
    }
    async fn record_dead_letter(&self, letter: &DeadLetter) -> aluskort_store::StoreResult<()> {
        self.inner.record_dead_letter(letter).await
    }
    async fn dead_letters(&self, limit: u32) -> aluskort_store::StoreResult<Vec<DeadLetter>> {
        self.inner.dead_letters(limit).await
    }
    async fn check_connectivity(&self) -> anyhow::Result<()> {
        self.inner.check_connectivity().await
    }
}

/// A commit that fails while the next batch is already prepared over it: the failed batch is
/// retried, the next one is not committed on top of it but investigated again, and in the end
/// every alert has exactly one settled investigation, every alert is in one live incident, and
/// the audit chain verifies.
#[tokio::test]
async fn a_failed_commit_retries_its_batch_and_the_one_prepared_over_it() {
    let inner = Arc::new(SqliteStore::in_memory().await.expect("store"));
    let store = Arc::new(FlakyCommits { inner: inner.clone(), commits: std::sync::atomic::AtomicU32::new(0), fail_on: 2 });
    let audit = Arc::new(AuditLog::new(inner.clone()));
    let settings = PipelineSettings { retry_backoff: StdDuration::from_millis(5), ..PipelineSettings::default() };
    let pipeline = Pipeline::new(Arc::new(MemoryBus::new()), store.clone(), audit, settings);
    let shutdown = CancellationToken::new();
    tokio::spawn(Arc::clone(&pipeline).run_parse_stage(shutdown.clone()));
    tokio::spawn(Arc::clone(&pipeline).run_investigate_stage(shutdown.clone()));
    let total = 700;
    let page = sentinel_page("flaky", total);
    let expected: HashSet<String> = page.iter().map(|(id, _, _)| id.clone()).collect();
    pipeline.submit_many(page).await.expect("submitted");
    let outcomes = tokio::time::timeout(StdDuration::from_secs(60), pipeline.await_outcomes(expected, "flaky", |_| {}))
        .await
        .expect("in time")
        .expect("outcomes");
    assert!(store.commits.load(std::sync::atomic::Ordering::SeqCst) > 2, "the failing commit was retried");
    assert!(outcomes.iter().all(|outcome| outcome.error.is_none()), "nothing dead-lettered");

    let states =
        inner.list_investigations(&InvestigationFilter { limit: Some(1000), ..InvestigationFilter::default() }).await.expect("list");
    assert_eq!(states.len(), total, "one investigation per alert");
    for state in &states {
        assert_eq!(state.state, InvestigationState::AwaitingHuman);
        let incident =
            crate::resolve_incident(inner.as_ref(), state.incident_id.as_deref().expect("grouped")).await.expect("read").expect("incident");
        assert!(incident.alert_ids.contains(&state.alert_id), "{} in {}", state.alert_id, incident.incident_id);
    }
    assert!(inner.pending_raw(10).await.expect("pending").is_empty());
    let report = verify_store(inner.as_ref()).await.expect("verify");
    assert_eq!(report.first_break, None);
    shutdown.cancel();
}

/// Shutdown under a backlog stops after the batch in hand (its commit finishes), not after the
/// backlog: the rest stays pending in the raw inbox for the next start.
#[tokio::test]
async fn shutdown_under_a_backlog_stops_after_the_batch_in_hand() {
    let store = Arc::new(SqliteStore::in_memory().await.expect("store"));
    let audit = Arc::new(AuditLog::new(store.clone()));
    let pipeline = Pipeline::new(Arc::new(MemoryBus::new()), store.clone(), audit, PipelineSettings::default());
    let shutdown = CancellationToken::new();
    let parse = tokio::spawn(Arc::clone(&pipeline).run_parse_stage(shutdown.clone()));
    let investigate = tokio::spawn(Arc::clone(&pipeline).run_investigate_stage(shutdown.clone()));
    let total = 3000;
    let page = sentinel_page("backlog", total);
    pipeline.submit_many(page).await.expect("submitted");
    let all = InvestigationFilter { limit: Some(1000), ..InvestigationFilter::default() };
    while store.list_investigations(&all).await.expect("list").is_empty() {
        tokio::time::sleep(StdDuration::from_millis(5)).await;
    }
    shutdown.cancel();
    tokio::time::timeout(StdDuration::from_secs(30), investigate).await.expect("stops promptly").expect("joined").expect("stage");
    parse.await.expect("joined").expect("parse stage");
    let pending = store.pending_raw(10_000).await.expect("pending").len();
    assert!(pending > 0, "the backlog was not worked off before stopping");
    // Counted page by page: a page holds at most 1,000, and several batches of 256 may have
    // landed before the stop (a batch is prepared while the one before it commits).
    let mut done = 0;
    let mut page_filter = all.clone();
    loop {
        let page = store.list_investigations(&page_filter).await.expect("list");
        done += page.len();
        match page.last() {
            Some(last) if page.len() == 1000 => {
                page_filter.after =
                    Some(aluskort_store::PageKey { time: last.updated_at, tenant: String::new(), id: last.investigation_id.to_string() })
            }
            _ => break,
        }
    }
    assert_eq!(done + pending, total, "every record is either investigated or still pending");
    let report = verify_store(store.as_ref()).await.expect("verify");
    assert_eq!(report.first_break, None);
}

/// `total` submissions (ingest id `{tag}-{i}`) cycling through the real Sentinel alerts, each with
/// its own alert id.
fn sentinel_page(tag: &str, total: usize) -> Vec<(String, String, Value)> {
    let templates = sentinel_records();
    (0..total)
        .map(|index| {
            let mut record = templates[index % templates.len()].clone();
            let id = record["SystemAlertId"].as_str().unwrap_or("alert").to_owned();
            record["SystemAlertId"] = json!(format!("{id}-{tag}-{index}"));
            (format!("{tag}-{index}"), "test".to_owned(), record)
        })
        .collect()
}

/// A Sentinel alert of `severity` and `tactic` whose only entities are the hosts `hosts`.
fn host_alert(id: &str, severity: &str, tactic: &str, hosts: &[&str]) -> Value {
    let entities: Vec<Value> =
        hosts.iter().enumerate().map(|(index, host)| json!({"$id": (index + 2).to_string(), "HostName": host, "Type": "host"})).collect();
    json!({
        "TenantId": "3f1c2a9e-0d4b-4e8a-9b77-5d2c1e0a6f10",
        "TimeGenerated": "2026-11-20T09:14:03Z",
        "DisplayName": format!("test alert {id}"),
        "AlertName": format!("test alert {id}"),
        "AlertSeverity": severity,
        "Description": "activity on the named hosts",
        "ProviderName": "MDATP",
        "VendorName": "Microsoft",
        "SystemAlertId": id,
        "ProductName": "Microsoft Defender for Endpoint",
        "StartTime": "2026-11-20T09:11:40Z",
        "EndTime": "2026-11-20T09:13:58Z",
        "Tactics": tactic,
        "Techniques": "[]",
        "Status": "New",
        "Type": "SecurityAlert",
        "ExtendedProperties": "{}",
        "Entities": Value::Array(entities).to_string(),
    })
}

/// FR-GRP (an incident is judged as a whole): when an alert merges two incidents, the members the
/// absorbed incident brought are reassessed with the merged incident's context; the surviving
/// incident's own members, whose context the merge did not change, are left as they were (not
/// read, not saved again).
#[tokio::test]
async fn a_merge_reassesses_the_absorbed_members_and_leaves_the_survivors_alone() {
    use crate::reasoner::IncidentContext;
    let harness = harness().await;
    // Incident A: three medium Execution alerts on host alpha (multi-stage, medium, 1 tactic).
    harness.run((1..=3).map(|n| host_alert(&format!("merge-a{n}"), "Medium", "Execution", &["alpha"])).collect()).await;
    // Incident B: one low Execution alert on host bravo (single alert: not multi-stage, low).
    harness.run(vec![host_alert("merge-b1", "Low", "Execution", &["bravo"])]).await;
    let states = harness.store.list_investigations(&InvestigationFilter { limit: Some(100), ..Default::default() }).await.expect("list");
    let versions_before: HashMap<String, usize> = {
        let mut versions = HashMap::new();
        for state in &states {
            versions.insert(
                state.alert_id.to_string(),
                harness.store.investigation_history(state.investigation_id).await.expect("history").len(),
            );
        }
        versions
    };
    let incident_of =
        |alert: &str| states.iter().find(|s| s.alert_id.as_str() == alert).and_then(|s| s.incident_id.clone()).expect("grouped");
    assert_ne!(incident_of("merge-a1"), incident_of("merge-b1"), "two incidents before the link");

    // A low Execution alert seen on both hosts merges them; A's context stays (multi-stage, medium, 1 tactic).
    harness.run(vec![host_alert("merge-link", "Low", "Execution", &["alpha", "bravo"])]).await;
    let states = harness.store.list_investigations(&InvestigationFilter { limit: Some(100), ..Default::default() }).await.expect("list");
    assert_eq!(states.len(), 5);
    let survivor_id = states.iter().find(|s| s.alert_id.as_str() == "merge-link").and_then(|s| s.incident_id.clone()).expect("grouped");
    let survivor = harness.store.incident(&survivor_id).await.expect("read").expect("incident");
    assert!(survivor.merged_into.is_none());
    assert_eq!(survivor.alert_ids.len(), 5, "the link merged both incidents: {:?}", survivor.alert_ids);
    let context = serde_json::to_value(IncidentContext::of(&survivor)).expect("context");
    for state in &states {
        let alert = state.alert_id.to_string();
        assert_eq!(state.case_facts.get("incident_context"), Some(&context), "{alert} carries the merged incident's context");
        let versions = harness.store.investigation_history(state.investigation_id).await.expect("history").len();
        match alert.as_str() {
            "merge-b1" => assert_eq!(versions, versions_before[&alert] + 1, "the absorbed member was reassessed once"),
            "merge-link" => {}
            _ => assert_eq!(versions, versions_before[&alert], "{alert}: the survivor's own members were not saved again"),
        }
    }
    harness.stop().await;
}

/// Several investigate replicas (NFR-SCL-001) grouping at once: two batches whose alerts share a
/// key, or that grow the same incident through different keys, cannot both land. The later
/// commit conflicts (a retry, nothing written), and grouped again it joins the other's incident:
/// one incident holding every alert, none lost from it.
#[tokio::test]
async fn two_replicas_grouping_at_once_neither_split_nor_lose_an_incident() {
    let harness = harness().await;
    let store: Arc<dyn CaseStore> = harness.store.clone();
    // A second replica: its own process-local grouping lock, audit head cache and bus.
    let other = Pipeline::new(
        Arc::new(MemoryBus::new()),
        Arc::clone(&store),
        Arc::new(AuditLog::new(harness.store.clone())),
        PipelineSettings::default(),
    );
    let normalized = |id: &str, hosts: &[&str]| {
        let raw = RawAlert {
            ingest_id: format!("i-{id}"),
            origin: "test".into(),
            received_at: Utc::now(),
            payload: host_alert(id, "Medium", "Execution", hosts),
            tenant: None,
        };
        normalize(&raw).expect("normalises")
    };
    let members_of = |alert: &str| {
        let store = Arc::clone(&store);
        let alert = alert.to_owned();
        async move {
            let states = store.list_investigations(&InvestigationFilter { limit: Some(100), ..Default::default() }).await.expect("list");
            let incident_id = states.iter().find(|s| s.alert_id.as_str() == alert).and_then(|s| s.incident_id.clone()).expect("grouped");
            let incident = store.incident(&incident_id).await.expect("read").expect("incident");
            assert!(incident.merged_into.is_none(), "{alert}'s incident is live");
            let mut members: Vec<String> = incident.alert_ids.iter().map(ToString::to_string).collect();
            members.sort();
            members
        }
    };

    // Both replicas prepare one alert each; the other's commit lands first, this one's must then
    // conflict and write nothing, and lands when grouped again. Returns the conflict's reason.
    let race = |mine: NormalizedAlert, theirs: NormalizedAlert| {
        let (pipeline, other, store) = (Arc::clone(&harness.pipeline), Arc::clone(&other), Arc::clone(&store));
        async move {
            let prepared = pipeline.prepare_batch(&items(std::slice::from_ref(&mine)), None).await.expect("prepared");
            let theirs = other.prepare_batch(&items(std::slice::from_ref(&theirs)), None).await.expect("prepared");
            other.commit_prepared(theirs).await.expect("the first commit lands");
            let Err(BatchError::Retry(reason)) = pipeline.commit_prepared(prepared).await else { panic!("the later commit must conflict") };
            let landed = store.investigation_for_alert(&mine.alert.tenant_id, &mine.alert.alert_id).await.expect("read");
            assert!(landed.is_none(), "nothing of the conflicting commit landed");
            let again = pipeline.prepare_batch(&items(std::slice::from_ref(&mine)), None).await.expect("prepared again");
            pipeline.commit_prepared(again).await.expect("lands when grouped again");
            reason
        }
    };

    // The same key (host alpha), no incident yet: both would open one.
    let reason = race(normalized("race-a", &["alpha"]), normalized("race-b", &["alpha"])).await;
    assert!(reason.contains("grouped meanwhile by another writer"), "{reason}");
    assert_eq!(members_of("race-a").await, vec!["race-a", "race-b"], "one incident, not two");

    // One incident reached through different keys: a link alert puts bravo in it, then one
    // replica adds an alpha alert while the other adds a bravo alert.
    let link = normalized("race-link", &["alpha", "bravo"]);
    let prepared = harness.pipeline.prepare_batch(&items(std::slice::from_ref(&link)), None).await.expect("prepared");
    harness.pipeline.commit_prepared(prepared).await.expect("link lands");
    let reason = race(normalized("race-c", &["alpha"]), normalized("race-d", &["bravo"])).await;
    assert!(reason.contains("no longer at version"), "a lost update is refused: {reason}");
    assert_eq!(members_of("race-c").await, vec!["race-a", "race-b", "race-c", "race-d", "race-link"], "no member lost");
    harness.stop().await;
}

/// The share of version encoding the stage keeps moves towards the side with time to spare: down
/// while the commit is done before the next batch is ready, up while the stage waits for it,
/// never outside 0..=100 %.
#[test]
fn the_encoding_share_follows_the_side_that_waits() {
    let mut share = EncodeAhead::default();
    assert_eq!(share.percent, 100, "a stage starts by encoding everything ahead");
    share.adjust(false);
    assert_eq!(share.percent, 100);
    share.adjust(true);
    share.adjust(true);
    assert_eq!(share.percent, 100 - 2 * EncodeAhead::STEP);
    for _ in 0..20 {
        share.adjust(true);
    }
    assert_eq!(share.percent, 0, "the commit waits every time: it encodes everything");
    share.adjust(false);
    assert_eq!(share.percent, EncodeAhead::STEP);
}
