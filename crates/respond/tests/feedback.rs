//! Analyst feedback → incident memory and FP proposals; the FP pattern lifecycle (FR-CSM-004,
//! FR-RAG-005, NFR-CMP-003), over the embedded store.

use std::sync::Arc;

use aluskort_audit::{AuditLog, verify_store};
use aluskort_core::entity::Host;
use aluskort_core::{
    AlertId, AlertSource, CanonicalAlert, Classification, DegradationLevel, GraphState, InvestigationId, InvestigationState, Severity,
    TenantId,
};
use aluskort_knowledge::embed::HashingEmbedder;
use aluskort_knowledge::fp::FpMatcher;
use aluskort_knowledge::memory::IncidentMemory;
use aluskort_knowledge::vector::FlatIndex;
use aluskort_respond::feedback::{
    FeedbackError, FeedbackInput, FeedbackStores, FpGovernance, FpPolicy, FpProposal, MemoryUpdate, proposal_id, record_feedback,
};
use aluskort_store::{AuditStore, CaseStore, ContextStore, FpStatus, ResponseStore, SqliteStore};
use chrono::{DateTime, Duration, TimeZone, Utc};

const TITLE: &str = "Backup job nightly failed";

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).single().unwrap_or_default()
}

struct Harness {
    store: SqliteStore,
    stores: FeedbackStores,
    governance: FpGovernance,
}

async fn harness(memory: Option<Arc<IncidentMemory>>) -> Harness {
    let store = SqliteStore::in_memory().await.expect("in-memory store");
    let audit = Arc::new(AuditLog::new(Arc::new(store.clone())));
    let context: Arc<dyn ContextStore> = Arc::new(store.clone());
    let stores = FeedbackStores {
        cases: Arc::new(store.clone()),
        responses: Arc::new(store.clone()),
        context: context.clone(),
        audit: audit.clone(),
        memory,
        policy: FpPolicy::default(),
    };
    let governance = FpGovernance::new(context, audit, FpPolicy::default());
    Harness { store, stores, governance }
}

/// A closed investigation of an alert titled `title` on `host`, with `verdict`.
async fn investigation(store: &SqliteStore, id: &str, title: &str, host: &str, verdict: Classification) -> InvestigationId {
    let tenant = TenantId::parse("acme").expect("tenant");
    let alert = CanonicalAlert {
        alert_id: AlertId::parse(id).expect("alert id"),
        source: AlertSource::Sentinel,
        timestamp: start(),
        title: title.to_owned(),
        description: String::new(),
        severity: Severity::Medium,
        tactics: Vec::new(),
        techniques: Vec::new(),
        entities_raw: String::new(),
        product: "test".to_owned(),
        tenant_id: tenant.clone(),
        raw_payload: serde_json::json!({}),
    };
    store.insert_alert(&alert).await.expect("alert");
    let mut state = GraphState::new(alert.alert_id.clone(), tenant, DegradationLevel::Full, start());
    state.version = 1;
    state.state = InvestigationState::Closed;
    state.classification = Some(verdict);
    state.severity = "medium".to_owned();
    state.entities.make_mut().hosts.push(Host { hostname: Some(host.to_owned()), ..Host::default() });
    state.case_facts.insert("memory_summary".to_owned(), serde_json::json!(format!("{title} on {host}")));
    store.create_investigation(&state).await.expect("investigation");
    state.investigation_id
}

fn input(investigation_id: InvestigationId, correct: bool, rating: u8) -> FeedbackInput {
    FeedbackInput {
        investigation_id,
        actor: "analyst-1".to_owned(),
        correct,
        rating,
        comment: "checked with the backup team".to_owned(),
        corrected_classification: None,
    }
}

async fn assert_chain_verifies(store: &SqliteStore) {
    let report = verify_store(store).await.expect("verify");
    assert!(report.first_break.is_none() && report.records > 0, "{report:?}");
    assert!(!store.audit_tenants().await.expect("tenants").is_empty());
}

/// Three confirmed false positives of one title propose one pending pattern.
async fn proposed(h: &Harness) -> String {
    for (index, host) in ["bkp-01", "bkp-01", "BKP-01.corp.local"].into_iter().enumerate() {
        let id = investigation(&h.store, &format!("a-{index}"), TITLE, host, Classification::FalsePositive).await;
        record_feedback(&h.stores, input(id, true, 5), start()).await.expect("feedback");
    }
    proposal_id("acme", TITLE)
}

#[tokio::test]
async fn ratings_outside_one_to_five_unnamed_actors_and_unknown_investigations_are_refused() {
    let h = harness(None).await;
    let id = investigation(&h.store, "r-1", TITLE, "bkp-01", Classification::FalsePositive).await;
    for rating in [0, 6] {
        let refused = record_feedback(&h.stores, input(id, true, rating), start()).await;
        assert!(matches!(&refused, Err(FeedbackError::Invalid(why)) if why.contains("rating")), "{refused:?}");
    }
    let unnamed = record_feedback(&h.stores, FeedbackInput { actor: "  ".to_owned(), ..input(id, true, 3) }, start()).await;
    assert!(matches!(unnamed, Err(FeedbackError::Invalid(_))), "{unnamed:?}");
    let unknown = record_feedback(&h.stores, input(InvestigationId::new(), true, 3), start()).await;
    assert!(matches!(unknown, Err(FeedbackError::NotFound(_))), "{unknown:?}");
    assert!(h.store.feedback_for(&id.to_string()).await.expect("feedback").is_empty(), "nothing refused was stored");

    let stored = record_feedback(&h.stores, input(id, true, 1), start()).await.expect("rating 1");
    assert_eq!(stored.memory, MemoryUpdate::NotConfigured);
    assert_eq!(h.store.feedback_for(&id.to_string()).await.expect("feedback"), vec![stored.feedback]);
    assert_chain_verifies(&h.store).await;
}

#[tokio::test]
async fn the_third_confirmed_false_positive_proposes_one_pending_pattern_that_never_matches() {
    let h = harness(None).await;
    // Not confirmations: a true positive judged correct, a false positive of another title, and a
    // false positive the analyst disputes without a correction.
    let tp = investigation(&h.store, "n-1", TITLE, "bkp-01", Classification::TruePositive).await;
    record_feedback(&h.stores, input(tp, true, 4), start()).await.expect("tp");
    let other = investigation(&h.store, "n-2", "Other alert", "bkp-01", Classification::FalsePositive).await;
    record_feedback(&h.stores, input(other, true, 4), start()).await.expect("other title");
    let disputed = investigation(&h.store, "n-3", TITLE, "bkp-01", Classification::FalsePositive).await;
    record_feedback(&h.stores, input(disputed, false, 2), start()).await.expect("disputed");

    let mut outcomes = Vec::new();
    for (index, host) in ["bkp-01", "bkp-01", "BKP-01.corp.local", "bkp-01"].into_iter().enumerate() {
        let id = investigation(&h.store, &format!("fp-{index}"), TITLE, host, Classification::FalsePositive).await;
        outcomes.push(record_feedback(&h.stores, input(id, true, 5), start()).await.expect("feedback"));
    }
    // A true positive the analyst corrects to a false positive counts as well.
    let corrected = investigation(&h.store, "c-1", TITLE, "bkp-01", Classification::TruePositive).await;
    let correction = FeedbackInput { corrected_classification: Some(Classification::FalsePositive), ..input(corrected, false, 2) };
    outcomes.push(record_feedback(&h.stores, correction, start()).await.expect("correction"));

    assert_eq!(outcomes.iter().map(|o| o.confirmed_false_positives).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
    assert_eq!(outcomes[0].proposal, None);
    assert_eq!(outcomes[1].proposal, None, "two confirmations propose nothing");
    let Some(FpProposal::Created(pattern)) = &outcomes[2].proposal else { panic!("the third proposes: {:?}", outcomes[2].proposal) };
    assert_eq!(pattern.pattern_id, proposal_id("acme", TITLE));
    assert_eq!(pattern.status, FpStatus::PendingReview);
    assert_eq!(pattern.tenant.as_deref(), Some("acme"));
    assert_eq!(pattern.entity_patterns.len(), 1, "the host every confirmation shares: {:?}", pattern.entity_patterns);
    for later in &outcomes[3..] {
        assert_eq!(later.proposal, Some(FpProposal::Exists { pattern_id: pattern.pattern_id.clone(), status: FpStatus::PendingReview }));
    }
    let listed = h.store.fp_patterns(Some("acme"), None).await.expect("list");
    assert_eq!(listed, vec![pattern.clone()], "exactly one pattern");
    assert!(h.store.matchable_fp_patterns("acme", start()).await.expect("matchable").is_empty(), "pending never matches");
    assert_chain_verifies(&h.store).await;
}

#[tokio::test]
async fn feedback_outside_the_window_does_not_count() {
    let h = harness(None).await;
    for index in 0..2 {
        let id = investigation(&h.store, &format!("old-{index}"), TITLE, "bkp-01", Classification::FalsePositive).await;
        record_feedback(&h.stores, input(id, true, 5), start() - Duration::days(31)).await.expect("old");
    }
    let id = investigation(&h.store, "new-1", TITLE, "bkp-01", Classification::FalsePositive).await;
    let outcome = record_feedback(&h.stores, input(id, true, 5), start()).await.expect("new");
    assert_eq!((outcome.confirmed_false_positives, outcome.proposal), (1, None));
}

#[tokio::test]
async fn two_distinct_approvers_activate_a_pattern_and_the_same_one_twice_is_refused() {
    let h = harness(None).await;
    let id = proposed(&h).await;
    let first = h.governance.approve(&id, "alice", start()).await.expect("first approval");
    assert_eq!((first.status, first.approved_by.clone()), (FpStatus::PendingReview, vec!["alice".to_owned()]));
    assert!(h.store.matchable_fp_patterns("acme", start()).await.expect("matchable").is_empty(), "one approver is not enough");

    let again = h.governance.approve(&id, " Alice ", start()).await;
    assert!(matches!(&again, Err(FeedbackError::Refused(why)) if why.contains("already approved")), "{again:?}");

    let later = start() + Duration::hours(2);
    let active = h.governance.approve(&id, "bob", later).await.expect("second approval");
    assert_eq!(active.status, FpStatus::Active);
    assert_eq!(active.approved_by, ["alice", "bob"]);
    assert_eq!((active.approval_date, active.expires_at), (Some(later), Some(later + Duration::days(90))));
    let matchable = h.store.matchable_fp_patterns("acme", later).await.expect("matchable");
    assert_eq!(matchable.iter().map(|p| p.pattern_id.as_str()).collect::<Vec<_>>(), [id.as_str()]);
    // The proposed conditions close the alert they were learnt from, and only on that host.
    let (matcher, skipped) = FpMatcher::compile(&matchable);
    assert!(skipped.is_empty(), "{skipped:?}");
    let on = |host: &str| matcher.best(TITLE, &[("host".to_owned(), host.to_owned())]).is_some_and(|found| found.short_circuits());
    assert!(on("BKP-01.corp.local") && on("bkp-01"), "same host, any case or domain suffix");
    assert!(!on("bkp-010") && !on("ws-01"), "another host is not covered");

    let third = h.governance.approve(&id, "carol", later).await;
    assert!(matches!(third, Err(FeedbackError::Refused(_))), "an active pattern is reaffirmed, not approved");
    assert!(matches!(h.governance.approve("fp-none", "carol", later).await, Err(FeedbackError::NotFound(_))));
    assert_chain_verifies(&h.store).await;
}

#[tokio::test]
async fn patterns_expire_after_ninety_days_unless_reaffirmed() {
    let h = harness(None).await;
    let id = proposed(&h).await;
    h.governance.approve(&id, "alice", start()).await.expect("approve");
    h.governance.approve(&id, "bob", start()).await.expect("approve");

    assert!(h.governance.expire_due(start() + Duration::days(89)).await.expect("sweep").is_empty(), "not due yet");
    let reaffirmed = h.governance.reaffirm(&id, "carol", start() + Duration::days(80)).await.expect("reaffirm");
    assert_eq!(reaffirmed.expires_at, Some(start() + Duration::days(170)));
    assert!(h.governance.expire_due(start() + Duration::days(91)).await.expect("sweep").is_empty(), "reaffirmation extended it");
    assert_eq!(h.store.matchable_fp_patterns("acme", start() + Duration::days(91)).await.expect("matchable").len(), 1);

    let due = start() + Duration::days(171);
    let late = h.governance.reaffirm(&id, "carol", due).await;
    assert!(matches!(late, Err(FeedbackError::Refused(_))), "a lapsed pattern is approved again, not reaffirmed: {late:?}");
    let expired = h.governance.expire_due(due).await.expect("sweep");
    assert_eq!(expired.iter().map(|p| (p.pattern_id.as_str(), p.status)).collect::<Vec<_>>(), [(id.as_str(), FpStatus::Expired)]);
    assert!(h.store.matchable_fp_patterns("acme", start()).await.expect("matchable").is_empty(), "expired never matches");
    assert!(h.governance.expire_due(due).await.expect("sweep again").is_empty());

    // An expired pattern goes through a fresh approval round.
    let renewed = h.governance.approve(&id, "alice", due).await.expect("new round");
    assert_eq!((renewed.status, renewed.approved_by.len()), (FpStatus::PendingReview, 1));
    assert_chain_verifies(&h.store).await;
}

#[tokio::test]
async fn revoked_patterns_never_match_again() {
    let h = harness(None).await;
    let id = proposed(&h).await;
    h.governance.approve(&id, "alice", start()).await.expect("approve");
    h.governance.approve(&id, "bob", start()).await.expect("approve");
    let revoked = h.governance.revoke(&id, "carol", "missed a real intrusion", start()).await.expect("revoke");
    assert_eq!(revoked.status, FpStatus::Revoked);
    assert!(revoked.reason.ends_with("revoked by carol: missed a real intrusion"), "{}", revoked.reason);
    assert!(h.store.matchable_fp_patterns("acme", start()).await.expect("matchable").is_empty());
    assert!(matches!(h.governance.approve(&id, "dave", start()).await, Err(FeedbackError::Refused(_))));
    assert!(matches!(h.governance.reaffirm(&id, "dave", start()).await, Err(FeedbackError::Refused(_))));
    assert!(matches!(h.governance.revoke(&id, "dave", "", start()).await, Err(FeedbackError::Refused(_))));

    // More confirmations do not bring it back.
    let id4 = investigation(&h.store, "a-9", TITLE, "bkp-01", Classification::FalsePositive).await;
    let outcome = record_feedback(&h.stores, input(id4, true, 5), start()).await.expect("feedback");
    assert_eq!(outcome.proposal, Some(FpProposal::Exists { pattern_id: id.clone(), status: FpStatus::Revoked }));
    assert!(h.store.matchable_fp_patterns("acme", start()).await.expect("matchable").is_empty());
    assert_chain_verifies(&h.store).await;
}

#[tokio::test]
async fn a_correction_is_written_back_to_incident_memory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let index = Arc::new(FlatIndex::open(dir.path()).await.expect("index"));
    let memory = Arc::new(IncidentMemory::new(Arc::new(HashingEmbedder::default()), index));
    let h = harness(Some(memory.clone())).await;
    let id = investigation(&h.store, "m-1", "Mimikatz read LSASS memory", "ws-09", Classification::TruePositive).await;
    let correction = FeedbackInput { corrected_classification: Some(Classification::BenignTruePositive), ..input(id, false, 2) };
    let outcome = record_feedback(&h.stores, correction, start()).await.expect("feedback");
    assert_eq!(outcome.memory, MemoryUpdate::Updated { classification: Classification::BenignTruePositive });
    let recall = memory.recall("acme", "Mimikatz read LSASS memory on ws-09", &[], None, start()).await;
    let found = recall.similar.iter().find(|s| s.incident.id == id.to_string()).expect("remembered");
    assert_eq!(found.incident.classification, "benign_true_positive");

    let disputed = record_feedback(&h.stores, input(id, false, 1), start()).await.expect("disputed");
    assert!(matches!(disputed.memory, MemoryUpdate::Skipped(_)), "{:?}", disputed.memory);
    assert_chain_verifies(&h.store).await;
}
