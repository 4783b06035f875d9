//! Approval deadlines driven through the running response loop with a manual clock (FR-RSP-003,
//! decisions table). The clock stands still until the test moves it, as paused time would; tokio's
//! paused time itself cannot be used here, because it also fires the store pool's acquire
//! timeout. A high-severity approval escalates at 2 h and stays pending, escalating again each
//! period; a medium one times out at 4 h and closes its investigation as `timed_out`; every step
//! is audited and the chain verifies.

use std::sync::Arc;
use std::time::Duration;

use aluskort_audit::{AuditLog, verify_store};
use aluskort_config::{NotifyKind, NotifyTarget, RespondConfig, SecretString};
use aluskort_core::response::ApprovalStatus;
use aluskort_core::{AlertId, DegradationLevel, GraphState, InvestigationState, TenantId};
use aluskort_respond::executors::Executors;
use aluskort_respond::gate;
use aluskort_respond::notify::Notifier;
use aluskort_respond::service::{Clock, Responder};
use aluskort_store::{ApprovalWrite, AuditStore, CaseStore, InvestigationWrite, ResponseStore, SqliteStore, WorkBatch};
use aluskort_testkit::fake::chat::FakeSlack;
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// A file store in a new directory (removed when the returned `TempDir` drops): its writer and readers
/// are separate connections, so a running loop's writes and a test's reads never wait for each
/// other's connection.
async fn file_store() -> (tempfile::TempDir, Arc<SqliteStore>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(SqliteStore::open(dir.path()).await.expect("store"));
    (dir, store)
}

/// An investigation awaiting a human, with its approval, stored as the pipeline leaves them.
async fn awaiting(store: &SqliteStore, alert: &str, severity: &str, clock: &Clock) -> (String, String) {
    let tenant = TenantId::parse("acme").expect("tenant");
    let mut state = GraphState::new(AlertId::parse(alert).expect("alert id"), tenant, DegradationLevel::Deterministic, clock.now());
    state.state = InvestigationState::AwaitingHuman;
    state.severity = severity.to_owned();
    state.version = 1;
    let approval = gate::open(&state, Vec::new(), "verdict needs a human decision", &RespondConfig::default(), clock.now());
    state.case_facts.insert("approval_id".to_owned(), json!(approval.approval_id));
    let ids = (state.investigation_id.to_string(), approval.approval_id.clone());
    let batch = WorkBatch {
        investigations: vec![InvestigationWrite { expected_version: 0, versions: vec![state], skip_on_conflict: false }],
        approvals: vec![ApprovalWrite { expected_version: 0, approval }],
        ..WorkBatch::default()
    };
    store.commit_work(&batch, &[]).await.expect("store");
    ids
}

#[tokio::test]
async fn high_escalates_and_stays_pending_medium_times_out_as_the_clock_moves() {
    let (_dir, store) = file_store().await;
    let (clock, hand) = Clock::manual(chrono::Utc::now());
    let slack = FakeSlack::start().await;
    let shutdown = CancellationToken::new();
    let (high_investigation, high) = awaiting(&store, "high-1", "high", &clock).await;
    let (medium_investigation, medium) = awaiting(&store, "medium-1", "medium", &clock).await;
    let events = ["approval.requested", "approval.reminder", "approval.escalated", "approval.timed_out"];
    let responder = Arc::new(responder(&store, &clock, vec![slack_target(&slack, &events)]));
    let task = tokio::spawn(Arc::clone(&responder).run(shutdown.clone(), Duration::from_millis(5)));
    let status = |id: String| {
        let store = Arc::clone(&store);
        async move { store.approval(&id).await.expect("read").expect("present") }
    };
    let state_of = |id: String| {
        let store = Arc::clone(&store);
        async move {
            let id = aluskort_core::InvestigationId::parse(&id).expect("uuid");
            store.investigation(id).await.expect("read").expect("present")
        }
    };

    // The loop passes every 5 ms; 300 ms of real time is many passes at the new time.
    let settle = || tokio::time::sleep(Duration::from_millis(300));
    hand.advance(chrono::Duration::minutes(90));
    settle().await;
    let early = status(high.clone()).await;
    assert!(early.reminded_at.is_some(), "reminded at 50 % (1 h of 2 h)");
    assert!(early.escalated_at.is_none(), "not escalated before the deadline");

    hand.advance(chrono::Duration::minutes(40)); // 2 h 10 min
    settle().await;
    let escalated = status(high.clone()).await;
    assert_eq!(escalated.status, ApprovalStatus::Pending, "a high approval stays pending after escalation");
    assert!(escalated.escalated_at.is_some());
    assert_eq!(status(medium.clone()).await.status, ApprovalStatus::Pending, "medium has 4 h");

    hand.advance(chrono::Duration::hours(2)); // 4 h 10 min
    settle().await;
    let timed_out = status(medium.clone()).await;
    assert_eq!(timed_out.status, ApprovalStatus::TimedOut);
    let closed = state_of(medium_investigation).await;
    assert_eq!((closed.state, closed.close_reason.as_deref()), (InvestigationState::Closed, Some("timed_out")));
    assert_eq!(state_of(high_investigation).await.state, InvestigationState::AwaitingHuman, "a high investigation never times out");

    shutdown.cancel();
    task.await.expect("loop task").expect("loop result");
    // Two requests, two reminders (high at 1 h, medium at 2 h), two escalations, one timeout.
    let texts: Vec<String> = slack.messages().iter().map(|m| m["text"].as_str().unwrap_or_default().to_owned()).collect();
    assert_eq!(texts.len(), 7, "{texts:?}");
    let records = store.audit_records("acme", 0, 1000).await.expect("audit");
    let count = |kind: &str| records.iter().filter(|r| r.event_type == kind).count();
    assert_eq!(count("approval.escalated"), 2, "at 2 h and again one period later (4 h)");
    assert_eq!(count("approval.timed_out"), 1);
    assert_eq!(verify_store(store.as_ref()).await.expect("verify").first_break, None);
}

/// A responder over `store` sending to `targets` (none: nothing wants requests or reminders).
fn responder(store: &Arc<SqliteStore>, clock: &Clock, targets: Vec<NotifyTarget>) -> Responder {
    Responder {
        cases: store.clone(),
        responses: store.clone(),
        audit: Arc::new(AuditLog::new(store.clone())),
        executors: Arc::new(Executors::empty()),
        // Its own token: the run loop flushes it after shutdown.
        notifier: Notifier::start(targets, CancellationToken::new()),
        config: RespondConfig::default(),
        clock: clock.clone(),
        kill_switches: aluskort_config::SharedKillSwitches::default(),
    }
}

/// The fake Slack as a notification target for `events`.
fn slack_target(slack: &FakeSlack, events: &[&str]) -> NotifyTarget {
    NotifyTarget {
        kind: NotifyKind::Slack { url: SecretString::new(slack.url()) },
        events: events.iter().map(|event| (*event).to_owned()).collect(),
        timeout: Duration::from_secs(5),
        max_retries: 1,
    }
}

/// FR-RSP-003 under a backlog: a sweep visits every pending approval, page after page, so the
/// requests of approvals beyond the first page go out too (when a sweep read one page of the
/// soonest deadlines, a backlog larger than a page kept the later approvals' requests back until
/// the earlier ones were decided).
#[tokio::test]
async fn a_sweep_requests_every_approval_of_a_backlog_larger_than_a_page() {
    let (_dir, store) = file_store().await;
    let (clock, _hand) = Clock::manual(chrono::Utc::now());
    let slack = FakeSlack::start().await;
    let mut approvals = Vec::new();
    for index in 0..5 {
        approvals.push(awaiting(&store, &format!("backlog-{index}"), "medium", &clock).await.1);
    }
    let responder = responder(&store, &clock, vec![slack_target(&slack, &["approval.requested"])]);
    let report = responder.sweep_approvals_by(clock.now(), 2).await.expect("sweep");
    assert_eq!((report.notified, report.failed), (5, 0), "every approval of three pages: {report:?}");
    for id in &approvals {
        let approval = store.approval(id).await.expect("read").expect("present");
        assert_eq!(approval.notified_at, Some(clock.now()), "{id} requested");
    }
    let again = responder.sweep_approvals_by(clock.now(), 2).await.expect("sweep");
    assert_eq!(again, Default::default(), "each request goes out once");
}

/// With no notification target, a sweep has only deadlines to act on: it reads the approvals past
/// theirs (across pages) and leaves the others alone.
#[tokio::test]
async fn without_targets_a_sweep_acts_only_on_deadlines_passed() {
    let (_dir, store) = file_store().await;
    let (clock, hand) = Clock::manual(chrono::Utc::now());
    let mut medium = Vec::new();
    for index in 0..3 {
        medium.push(awaiting(&store, &format!("medium-{index}"), "medium", &clock).await.1);
    }
    let responder = responder(&store, &clock, Vec::new());
    assert_eq!(responder.sweep_approvals_by(clock.now(), 2).await.expect("sweep"), Default::default(), "nothing due yet");
    hand.advance(chrono::Duration::minutes(210));
    let (_, critical) = awaiting(&store, "critical-1", "critical", &clock).await;
    // 4 h 10 min: the medium approvals' deadline (4 h) has passed, the critical one's (1 h from
    // its request at 3 h 30 min) has not.
    hand.advance(chrono::Duration::minutes(40));
    let report = responder.sweep_approvals_by(clock.now(), 2).await.expect("sweep");
    assert_eq!((report.timed_out, report.notified, report.reminded, report.escalated), (3, 0, 0, 0), "{report:?}");
    for id in &medium {
        assert_eq!(store.approval(id).await.expect("read").expect("present").status, ApprovalStatus::TimedOut);
    }
    let pending = store.approval(&critical).await.expect("read").expect("present");
    assert_eq!((pending.status, pending.notified_at), (ApprovalStatus::Pending, None), "not due, not touched");
}
