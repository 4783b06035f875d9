use std::sync::Arc;

use aluskort_core::{DegradationLevel, GraphState, InvestigationState};
use aluskort_store::{CaseStore, SqliteStore};
use chrono::Utc;
use serde_json::json;

use super::*;
use crate::chain::{AuditEvent, AuditLog};

/// An investigation of one alert, its records interleaved with another investigation's, and the
/// chain going on after it: what a package is made from.
async fn investigated() -> (Arc<SqliteStore>, GraphState) {
    let store = Arc::new(SqliteStore::in_memory().await.expect("store"));
    let alert = aluskort_store::conformance::sample_alert("evidence-1", 0);
    store.insert_alert(&alert).await.expect("alert");
    let mut state = GraphState::new(alert.alert_id.clone(), alert.tenant_id.clone(), DegradationLevel::Deterministic, Utc::now());
    state.version = 1;
    store.create_investigation(&state).await.expect("create");
    state.transition(InvestigationState::Parsing, "step", Utc::now()).expect("legal");
    state.version = store.save_investigation(&state, 1).await.expect("save");
    let log = AuditLog::new(store.clone());
    let tenant = alert.tenant_id.as_str();
    let id = state.investigation_id.to_string();
    for (n, investigation) in [&id, &"someone-else".to_owned(), &id, &"someone-else".to_owned()].into_iter().enumerate() {
        let mut event = AuditEvent::agent(tenant, "alert.classified", "reasoning_agent", Utc::now());
        event.investigation_id = Some(investigation.clone());
        event.decision = json!({"n": n, "confidence": 0.85});
        log.append(event).await.expect("append");
    }
    (store, state)
}

#[tokio::test]
async fn a_package_holds_the_investigation_its_records_and_their_successors() {
    let (store, state) = investigated().await;
    let package = build_package(store.as_ref(), store.as_ref(), state.investigation_id, Utc::now()).await.expect("package");
    assert_eq!(package.format, FORMAT);
    assert_eq!(package.history.len(), 2, "every saved version");
    assert!(package.alert.is_some());
    let sequences: Vec<u64> = package.audit_records.iter().map(|record| record.sequence_number).collect();
    assert_eq!(sequences, vec![1, 3], "only this investigation's records, in chain order");
    let successors: Vec<Option<u64>> = package.chain_proof.successors.iter().map(|link| link.as_ref().map(|l| l.sequence_number)).collect();
    assert_eq!(successors, vec![Some(2), Some(4)]);
    assert_eq!((package.chain_proof.head_sequence, package.chain_proof.chain_records_verified), (4, 5));
    assert_eq!(verify_package(&package), Ok(PackageReport { records: 2, linked: 2, head_sequence: 4 }));

    let key = package_key(&package).expect("key");
    let last = &package.audit_records[1];
    let day = last.timestamp[..10].replace('-', "/");
    let generated: String = package.generated_at.chars().filter(char::is_ascii_alphanumeric).collect();
    assert_eq!(key, format!("default/{day}/{}/evidence_package-{generated}.json", last.audit_id));

    // Through JSON and back, as an auditor receives it.
    let text = serde_json::to_string(&package).expect("encode");
    let read: EvidencePackage = serde_json::from_str(&text).expect("decode");
    assert_eq!(verify_package(&read), verify_package(&package));
}

#[tokio::test]
async fn any_edit_to_a_package_is_named() {
    let (store, state) = investigated().await;
    let package = build_package(store.as_ref(), store.as_ref(), state.investigation_id, Utc::now()).await.expect("package");

    let mut edited = package.clone();
    edited.audit_records[0].decision = json!({"n": 0, "confidence": 0.99});
    assert!(verify_package(&edited).expect_err("content").contains("does not match its content"));

    let mut rehashed = edited.clone();
    rehashed.audit_records[0].record_hash = record_hash(&rehashed.audit_records[0]);
    assert!(verify_package(&rehashed).expect_err("rehashed").contains("does not name its hash"), "the successor still names the old hash");

    let mut dropped = package.clone();
    dropped.chain_proof.successors[1] = None;
    assert!(verify_package(&dropped).expect_err("dropped").contains("not the chain head"));

    let mut foreign = package.clone();
    foreign.audit_records[1].investigation_id = Some("someone-else".to_owned());
    assert!(verify_package(&foreign).expect_err("foreign").contains("is not a record of investigation"));

    let mut broken = package;
    broken.chain_proof.chain_break = Some("tenant default record 2: gap".to_owned());
    assert!(verify_package(&broken).expect_err("chain").contains("did not verify"));
}

#[tokio::test]
async fn unknown_investigations_and_ones_without_records_are_refused() {
    let (store, state) = investigated().await;
    let unknown = aluskort_core::InvestigationId(uuid::Uuid::now_v7());
    assert!(matches!(build_package(store.as_ref(), store.as_ref(), unknown, Utc::now()).await, Err(EvidenceError::NotFound(_))));
    let fresh = Arc::new(SqliteStore::in_memory().await.expect("store"));
    let alert = aluskort_store::conformance::sample_alert("evidence-1", 0);
    fresh.insert_alert(&alert).await.expect("alert");
    let mut lone = state.clone();
    lone.version = 1;
    fresh.create_investigation(&lone).await.expect("create");
    assert!(matches!(
        build_package(fresh.as_ref(), fresh.as_ref(), lone.investigation_id, Utc::now()).await,
        Err(EvidenceError::NoRecords(_))
    ));
}
