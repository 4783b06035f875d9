use aluskort_store::SqliteStore;

use super::*;

async fn log_with_store() -> (AuditLog, Arc<SqliteStore>) {
    let store = Arc::new(SqliteStore::in_memory().await.expect("store"));
    (AuditLog::new(store.clone()), store)
}

fn event(tenant: &str, n: i64) -> AuditEvent {
    let mut event = AuditEvent::agent(tenant, "alert.classified", "reasoning_agent", Utc::now());
    event.decision = json!({"classification": "true_positive", "confidence": 0.85, "n": n});
    event
}

#[tokio::test]
async fn appends_genesis_then_a_gap_free_chain_per_tenant() {
    let (log, store) = log_with_store().await;
    for n in 0..3 {
        log.append(event("a", n)).await.expect("append");
    }
    log.append(event("b", 0)).await.expect("append");
    let records = store.audit_records("a", 0, 100).await.expect("records");
    let sequences: Vec<u64> = records.iter().map(|r| r.sequence_number).collect();
    assert_eq!(sequences, vec![0, 1, 2, 3]);
    assert_eq!(records[0].event_type, "system.genesis");
    assert_eq!(records[0].previous_hash, GENESIS_PREVIOUS_HASH);
    let report = verify_store(store.as_ref()).await.expect("verify");
    assert_eq!(report, VerifyReport { tenants: 2, records: 6, first_break: None });
}

#[tokio::test]
async fn refuses_event_types_outside_the_taxonomy() {
    let (log, _) = log_with_store().await;
    let mut bad = event("a", 0);
    bad.event_type = "made.up";
    assert!(matches!(log.append(bad).await, Err(AuditError::UnknownEventType(_))));
}

#[tokio::test]
async fn verification_names_the_first_edited_record() {
    let (log, store) = log_with_store().await;
    for n in 0..4 {
        log.append(event("a", n)).await.expect("append");
    }
    let mut records = store.audit_records("a", 0, 100).await.expect("records");
    let expected = (0, GENESIS_PREVIOUS_HASH.to_owned());
    assert!(verify_records(&records, expected.clone()).is_ok());

    records[2].decision = json!({"classification": "false_positive"});
    let broken = verify_records(&records, expected.clone()).expect_err("edited content");
    assert_eq!(broken.sequence_number, 2);
    assert!(broken.reason.contains("does not match its content"), "{}", broken.reason);

    // Recomputing the edited record's hash does not help: the next link breaks.
    records[2].record_hash = record_hash(&records[2]);
    let broken = verify_records(&records, expected.clone()).expect_err("relinked");
    assert_eq!(broken.sequence_number, 3);
    assert!(broken.reason.contains("previous_hash"), "{}", broken.reason);

    let mut gapped = store.audit_records("a", 0, 100).await.expect("records");
    gapped.remove(1);
    assert!(verify_records(&gapped, expected).expect_err("gap").reason.contains("sequence gap"));
}

#[tokio::test]
async fn concurrent_appends_never_fork_the_chain() {
    let (log, store) = log_with_store().await;
    let log = Arc::new(log);
    let mut handles = Vec::new();
    for n in 0..20 {
        let log = Arc::clone(&log);
        handles.push(tokio::spawn(async move { log.append(event("a", n)).await }));
    }
    for handle in handles {
        handle.await.expect("task").expect("append");
    }
    let report = verify_store(store.as_ref()).await.expect("verify");
    assert_eq!(report.records, 21);
    assert_eq!(report.first_break, None);
}

#[tokio::test]
async fn a_second_writer_advancing_the_chain_is_detected_and_followed() {
    let store = Arc::new(SqliteStore::in_memory().await.expect("store"));
    let first = AuditLog::new(store.clone());
    let second = AuditLog::new(store.clone());
    first.append(event("a", 0)).await.expect("append");
    second.append(event("a", 1)).await.expect("append");
    // `first` still believes the head is record 1; its next append conflicts, reloads and lands at 3.
    let record = first.append(event("a", 2)).await.expect("append after conflict");
    assert_eq!(record.sequence_number, 3);
    let report = verify_store(store.as_ref()).await.expect("verify");
    assert_eq!((report.records, report.first_break), (4, None));
}

fn prepared(events: &[AuditEvent]) -> crate::PreparedRecords {
    crate::PreparedRecords::prepare(events.to_vec()).expect("known event types")
}

/// Records sealed for a unit of work land with it: genesis first for a new tenant, chains
/// continued across `append` and `append_with`, and a failed write leaves no trace in the heads.
#[tokio::test]
async fn batched_appends_chain_with_the_unit_they_commit_with() {
    use aluskort_store::{CaseStore, WorkBatch};
    let (log, store) = log_with_store().await;
    log.append(event("a", 0)).await.expect("append");
    let events = vec![event("a", 1), event("b", 0), event("a", 2)];
    let written = log
        .append_with(prepared(&events), |records| {
            let store = store.clone();
            async move {
                store.commit_work_encoded(&WorkBatch::default(), &records.records, &records.texts).await?;
                Ok(records.len())
            }
        })
        .await
        .expect("commit");
    assert_eq!(written, 4, "b's genesis plus three records");
    // A write that fails (not a conflict) advances nothing.
    let failed =
        log.append_with(prepared(&[event("a", 3)]), |_| async { Err::<(), _>(aluskort_store::StoreError::invalid("disk full")) }).await;
    assert!(matches!(failed, Err(AuditError::Store(_))));
    log.append(event("a", 4)).await.expect("append after a failed unit");
    let sequences: Vec<u64> = store.audit_records("a", 0, 100).await.expect("records").iter().map(|r| r.sequence_number).collect();
    assert_eq!(sequences, vec![0, 1, 2, 3, 4]);
    let report = verify_store(store.as_ref()).await.expect("verify");
    assert_eq!(report, VerifyReport { tenants: 2, records: 7, first_break: None });
}

/// Another writer advancing the chain between sealing and writing makes the unit reseal and
/// retry; a conflict that is not the chain's (a stale investigation version) is returned as is.
#[tokio::test]
async fn batched_appends_reseal_after_another_writer() {
    use aluskort_store::{CaseStore, WorkBatch};
    let (log, store) = log_with_store().await;
    let other = AuditLog::new(store.clone());
    log.append(event("a", 0)).await.expect("append");
    other.append(event("a", 1)).await.expect("the other writer moves the head");
    let attempts = std::sync::atomic::AtomicUsize::new(0);
    log.append_with(prepared(&[event("a", 2)]), |records| {
        attempts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let store = store.clone();
        async move { store.commit_work(&WorkBatch::default(), &records.records).await }
    })
    .await
    .expect("resealed");
    assert_eq!(attempts.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert_eq!(verify_store(store.as_ref()).await.expect("verify").first_break, None);

    let conflict = log
        .append_with(prepared(&[event("a", 3)]), |_| async {
            Err::<(), _>(aluskort_store::StoreError::new(aluskort_store::StoreErrorKind::Conflict, anyhow::anyhow!("stale version")))
        })
        .await;
    assert!(
        matches!(conflict, Err(AuditError::Store(ref error)) if error.kind == aluskort_store::StoreErrorKind::Conflict),
        "{conflict:?}"
    );
}

/// A store that has lost its newest records (as a truncating edit of the table would leave it):
/// reads stop at `keep`, the head stays where the writers left it.
struct Truncated {
    inner: Arc<SqliteStore>,
    keep: u64,
}

#[async_trait::async_trait]
impl AuditStore for Truncated {
    async fn audit_head(&self, tenant: &str) -> Result<Option<(u64, String)>, StoreError> {
        self.inner.audit_head(tenant).await
    }
    async fn append_audit(&self, record: &AuditRecord) -> Result<(), StoreError> {
        self.inner.append_audit(record).await
    }
    async fn audit_records(&self, tenant: &str, from_sequence: u64, limit: u32) -> Result<Vec<AuditRecord>, StoreError> {
        let records = self.inner.audit_records(tenant, from_sequence, limit).await?;
        Ok(records.into_iter().filter(|record| record.sequence_number < self.keep).collect())
    }
    async fn audit_tenants(&self) -> Result<Vec<String>, StoreError> {
        self.inner.audit_tenants().await
    }
    async fn audit_records_for_investigation(&self, tenant: &str, investigation_id: &str) -> Result<Vec<AuditRecord>, StoreError> {
        self.inner.audit_records_for_investigation(tenant, investigation_id).await
    }
    async fn audit_events(&self, filter: &aluskort_store::AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        let records = self.inner.audit_events(filter).await?;
        Ok(records.into_iter().filter(|record| record.sequence_number < self.keep).collect())
    }
}

/// Removing the newest records breaks no link; the chain head (moved with every append) shows it.
#[tokio::test]
async fn a_truncated_tail_is_detected_through_the_chain_head() {
    let (log, store) = log_with_store().await;
    for n in 0..4 {
        log.append(event("a", n)).await.expect("append");
    }
    assert_eq!(verify_store(&Truncated { inner: store.clone(), keep: 5 }).await.expect("verify").first_break, None);
    let report = verify_store(&Truncated { inner: store, keep: 3 }).await.expect("verify");
    let chain_break = report.first_break.expect("truncation found");
    assert_eq!((report.records, chain_break.sequence_number), (3, 3));
    assert!(chain_break.reason.contains("the chain head is at 4"), "{}", chain_break.reason);
}
