//! Response end to end (FR-RSP-001..004): alerts through the pipeline open approvals holding the
//! matching playbooks' gated steps; approved actions hit the fake Defender exactly once, rejected
//! and timed-out ones never do, redeliveries and a worker dying mid-call run nothing twice, and the
//! audit chain verifies afterwards.

use aluskort_audit::verify_store;
use aluskort_config::{OAuthApi, RespondConfig, ResponseMode, SecretString};
use aluskort_core::response::{ApprovalStatus, Execution, ExecutionStatus};
use aluskort_core::{GraphState, InvestigationState};
use aluskort_respond::executors::Executors;
use aluskort_respond::gate::Decision;
use aluskort_respond::notify::Notifier;
use aluskort_respond::playbook::PlaybookSet;
use aluskort_respond::service::Responder;
use aluskort_store::{ApprovalFilter, AuditStore, InvestigationFilter, ResponseStore, WorkBatch};
use aluskort_testkit::fake::defender::{self, FakeDefender};
use chrono::{Duration, Utc};
use serde_json::{Value, json};

use super::tests::{Harness, harness_with};
use super::*;

fn malware_alert(id: &str, severity: &str, host: &str) -> Value {
    let entities = json!([{"$id": "1", "Type": "host", "HostName": host, "DnsDomain": "contoso.com"}]);
    json!({"SystemAlertId": id, "AlertName": format!("Suspicious PowerShell download on {host}"), "AlertSeverity": severity,
           "TimeGenerated": Utc::now().to_rfc3339(), "ProductName": "Microsoft Defender Advanced Threat Protection",
           "Tactics": "Execution", "Techniques": "[\"T1059.001\",\"T1105\"]", "Entities": entities.to_string()})
}

fn live_config(fake: &FakeDefender) -> RespondConfig {
    RespondConfig {
        mode: ResponseMode::Live,
        defender: Some(OAuthApi {
            api_url: fake.api_url(),
            token_url: fake.token_url(),
            client_id: defender::CLIENT_ID.to_owned(),
            client_secret: SecretString::new(defender::CLIENT_SECRET.to_owned()),
            scope: defender::SCOPE.to_owned(),
            timeout: std::time::Duration::from_secs(10),
        }),
        ..RespondConfig::default()
    }
}

struct World {
    harness: Harness,
    responder: Responder,
    fake: FakeDefender,
}

async fn world() -> World {
    let fake = FakeDefender::start().await;
    for (id, host) in [("m-1", "ws-alpha.contoso.com"), ("m-2", "ws-bravo.contoso.com"), ("m-3", "ws-charlie.contoso.com")] {
        fake.add_machine(id, host);
    }
    let config = live_config(&fake);
    let respond = config.clone();
    let harness = harness_with(move |_| PipelineSettings {
        playbooks: Some(Arc::new(PlaybookSet::builtin())),
        respond,
        ..PipelineSettings::default()
    })
    .await;
    let cancel = CancellationToken::new();
    let responder = Responder {
        cases: harness.store.clone(),
        responses: harness.store.clone(),
        audit: Arc::new(AuditLog::new(harness.store.clone())),
        executors: Arc::new(Executors::from_config(&config, cancel.clone()).expect("executors")),
        notifier: Notifier::disabled(),
        config,
        clock: aluskort_respond::service::Clock::system(),
        kill_switches: aluskort_config::SharedKillSwitches::default(),
    };
    World { harness, responder, fake }
}

async fn state_of(harness: &Harness, alert: &str) -> GraphState {
    let states = harness.store.list_investigations(&InvestigationFilter { limit: Some(100), ..Default::default() }).await.expect("list");
    states.into_iter().find(|s| s.alert_id.as_str() == alert).expect("investigated")
}

async fn pending_approvals(harness: &Harness) -> Vec<aluskort_core::response::Approval> {
    harness.store.approvals(&ApprovalFilter { status: Some(ApprovalStatus::Pending), ..Default::default() }).await.expect("approvals")
}

/// Runs the execution queue until a pass finds nothing.
async fn drain(responder: &Responder) {
    for _ in 0..20 {
        let report = responder.run_executions(Utc::now()).await.expect("run");
        if report.executions() == 0 {
            return;
        }
    }
    panic!("the execution queue did not drain");
}

#[tokio::test]
async fn approved_actions_run_exactly_once_rejected_and_timed_out_never_fr_rsp_002_003_004() {
    let World { harness, responder, fake } = world().await;
    harness
        .run(vec![
            malware_alert("approve-me", "High", "ws-alpha"),
            malware_alert("reject-me", "High", "ws-bravo"),
            malware_alert("time-me-out", "Medium", "ws-charlie"),
        ])
        .await;
    let pending = pending_approvals(&harness).await;
    assert_eq!(pending.len(), 3, "one approval per investigation awaiting a human");
    let approval_of = |alert: &str| pending.iter().find(|a| a.alert_id == alert).cloned().expect("approval");
    let approve = approval_of("approve-me");
    assert!(
        approve.actions.iter().any(|a| a.action == "defender.isolate_machine" && a.destructive && a.tier >= 2),
        "the malware playbook's isolation waits for approval: {:?}",
        approve.actions
    );
    // Tier 0 runs by itself; tier 1 waits too here, as the deterministic verdict is not a
    // confident true positive (FR-RSP-006).
    assert!(approve.actions.iter().all(|a| a.tier >= 1), "tier-0 steps never wait for a person: {:?}", approve.actions);
    let state = state_of(&harness, "approve-me").await;
    assert_eq!(state.state, InvestigationState::AwaitingHuman);
    assert!(state.playbook_matches.iter().any(|m| m["playbook_id"] == "malware-endpoint"), "{:?}", state.playbook_matches);
    // Tier-0/1 steps were queued without approval; run them, then nothing has been isolated yet.
    drain(&responder).await;
    assert_eq!(fake.isolations("ws-alpha.contoso.com") + fake.isolations("ws-bravo.contoso.com"), 0, "no isolation before approval");

    let decided = responder.decide(&approve.approval_id, "alice", Decision::Approve, "confirmed with the user").await.expect("approve");
    assert_eq!(decided.status, ApprovalStatus::Approved);
    let state = state_of(&harness, "approve-me").await;
    assert_eq!(state.state, InvestigationState::Responding);
    // The SIEM sends the alert again while its response runs: a duplicate, never auto-closed.
    let again = harness.run(vec![malware_alert("approve-me", "High", "ws-alpha")]).await;
    assert!(again[0].duplicate);
    assert_eq!(state_of(&harness, "approve-me").await.state, InvestigationState::Responding);
    drain(&responder).await;
    assert_eq!(fake.isolations("m-1"), 1, "approved isolation ran once");
    let state = state_of(&harness, "approve-me").await;
    assert_eq!(state.state, InvestigationState::Closed, "closed once its approved actions finished");
    assert!(state.case_facts.contains_key("response_summary"));

    let rejected = approval_of("reject-me");
    responder.decide(&rejected.approval_id, "bob", Decision::Reject, "the download is our installer").await.expect("reject");
    drain(&responder).await;
    assert_eq!(fake.isolations("m-2"), 0, "a rejected isolation never runs");
    let state = state_of(&harness, "reject-me").await;
    assert_eq!((state.state, state.close_reason.as_deref()), (InvestigationState::Closed, Some("response_rejected")));
    let again = responder.decide(&rejected.approval_id, "carol", Decision::Approve, "").await;
    assert!(again.is_err(), "a decided approval cannot be approved afterwards");

    // Medium: past its 4 h deadline it times out; the high one already decided is untouched.
    let timed_out = approval_of("time-me-out");
    let report = responder.sweep_approvals(timed_out.deadline + Duration::seconds(1)).await.expect("sweep");
    assert_eq!(report.timed_out, 1);
    drain(&responder).await;
    assert_eq!(fake.isolations("m-3"), 0, "a timed-out isolation never runs");
    let state = state_of(&harness, "time-me-out").await;
    assert_eq!((state.state, state.close_reason.as_deref()), (InvestigationState::Closed, Some("timed_out")));

    // Redelivery: queueing the approved executions again adds nothing and runs nothing.
    let executions = harness.store.executions_for_investigation(&decided.investigation_id).await.expect("executions");
    let requeue: Vec<Execution> = executions
        .iter()
        .filter(|e| e.approval_id.is_some())
        .map(|e| Execution::queued(&e.tenant_id, &e.investigation_id, e.approval_id.as_deref(), e.action.clone(), Utc::now()))
        .collect();
    assert!(!requeue.is_empty());
    harness.store.commit_work(&WorkBatch { executions: requeue, ..WorkBatch::default() }, &[]).await.expect("requeue");
    drain(&responder).await;
    assert_eq!(fake.isolations("m-1"), 1, "a redelivered execution does not run again");
    assert!(
        harness
            .store
            .executions_for_investigation(&decided.investigation_id)
            .await
            .expect("executions")
            .iter()
            .all(|e| e.status.is_terminal())
    );

    let audit = verify_store(harness.store.as_ref()).await.expect("verify");
    assert_eq!(audit.first_break, None);
    harness.stop().await;
}

#[tokio::test]
async fn a_worker_dying_after_the_call_does_not_isolate_twice() {
    let World { harness, responder, fake } = world().await;
    harness.run(vec![malware_alert("crash-me", "High", "ws-alpha")]).await;
    drain(&responder).await;
    let approval = pending_approvals(&harness).await.remove(0);
    // Approve, then a worker claims the isolation, makes the call, and dies before recording it.
    responder.decide(&approval.approval_id, "alice", Decision::Approve, "").await.expect("approve");
    let claimed = harness.store.claim_executions(Utc::now(), Duration::minutes(5), 100).await.expect("claim");
    let isolation = claimed.iter().find(|e| e.action.action == "defender.isolate_machine").expect("isolation claimed").clone();
    let executor = responder.executors.get("defender.isolate_machine").expect("executor");
    let request = aluskort_respond::action::ActionRequest {
        execution_key: isolation.execution_key.clone(),
        tenant_id: isolation.tenant_id.clone(),
        investigation_id: isolation.investigation_id.clone(),
        step_key: isolation.action.step_key.clone(),
        action: isolation.action.action.clone(),
        target: isolation.action.target.clone(),
        params: isolation.action.params.clone(),
    };
    executor.execute(&request).await.expect("the call went through");
    assert_eq!(fake.isolations("m-1"), 1);
    // Nothing else happens until the dead worker's lease runs out.
    let report = responder.run_executions(Utc::now()).await.expect("run");
    assert_eq!(report.succeeded + report.already_applied, 0, "claimed executions are held by their lease");

    let after_lease = Utc::now() + Duration::minutes(6);
    let report = responder.run_executions(after_lease).await.expect("run in doubt");
    assert!(report.already_applied >= 1, "{report:?}");
    assert_eq!(fake.isolations("m-1"), 1, "the in-doubt isolation was found, not repeated");
    let stored = harness.store.execution(&isolation.execution_key).await.expect("read").expect("present");
    assert_eq!(stored.status, ExecutionStatus::Succeeded);
    assert_eq!(stored.attempts, 2);
    assert_eq!(stored.result.as_ref().map(|r| r["already_applied"].clone()), Some(json!(true)));

    let audit = verify_store(harness.store.as_ref()).await.expect("verify");
    assert_eq!(audit.first_break, None);
    harness.stop().await;
}

#[tokio::test]
async fn dry_run_records_the_request_and_sends_nothing() {
    let World { harness, mut responder, fake } = world().await;
    responder.config.mode = ResponseMode::DryRun;
    harness.run(vec![malware_alert("dry", "High", "ws-alpha")]).await;
    let approval = pending_approvals(&harness).await.remove(0);
    responder.decide(&approval.approval_id, "alice", Decision::Approve, "").await.expect("approve");
    drain(&responder).await;
    assert!(fake.actions().is_empty(), "dry-run sends nothing");
    let executions = harness.store.executions_for_investigation(&approval.investigation_id).await.expect("executions");
    let isolation = executions.iter().find(|e| e.action.action == "defender.isolate_machine").expect("isolation");
    assert_eq!(isolation.status, ExecutionStatus::DryRun);
    let request = isolation.request.as_ref().expect("what would have been sent");
    assert!(request.to_string().contains("isolate"), "{request}");
    assert!(!request.to_string().contains(defender::CLIENT_SECRET), "no secret in the record");
    harness.stop().await;
}

/// FR-RSP-003: the approval request reaches Slack once; at 50 % a reminder; a high-severity
/// approval past its deadline escalates (audited `approval.escalated`, still pending) and pages
/// PagerDuty; nothing runs.
#[tokio::test]
async fn approvals_notify_remind_and_escalate_without_running_anything() {
    use aluskort_config::{NotifyKind, NotifyTarget};
    use aluskort_testkit::fake::chat::{FakePagerDuty, FakeSlack, PAGERDUTY_ROUTING_KEY};

    let World { harness, mut responder, fake } = world().await;
    let slack = FakeSlack::start().await;
    let pagerduty = FakePagerDuty::start().await;
    let target = |kind, events: &[&str]| NotifyTarget {
        kind,
        events: events.iter().map(|e| (*e).to_owned()).collect(),
        timeout: std::time::Duration::from_secs(5),
        max_retries: 2,
    };
    responder.notifier = Notifier::start(
        vec![
            target(
                NotifyKind::Slack { url: SecretString::new(slack.url()) },
                &["approval.requested", "approval.reminder", "approval.escalated"],
            ),
            target(
                NotifyKind::PagerDuty { url: pagerduty.url(), routing_key: SecretString::new(PAGERDUTY_ROUTING_KEY.to_owned()) },
                &["approval.escalated"],
            ),
        ],
        CancellationToken::new(),
    );
    harness.run(vec![malware_alert("escalate-me", "High", "ws-alpha")]).await;
    let approval = pending_approvals(&harness).await.remove(0);

    let now = approval.requested_at + Duration::minutes(1);
    assert_eq!(responder.sweep_approvals(now).await.expect("sweep").notified, 1);
    assert_eq!(responder.sweep_approvals(now).await.expect("sweep"), Default::default(), "requested once");
    let half = approval.requested_at + (approval.deadline - approval.requested_at) / 2;
    assert_eq!(responder.sweep_approvals(half).await.expect("sweep").reminded, 1);
    let late = approval.deadline + Duration::seconds(1);
    assert_eq!(responder.sweep_approvals(late).await.expect("sweep").escalated, 1);
    assert_eq!(
        responder.sweep_approvals(late + Duration::hours(1)).await.expect("sweep"),
        Default::default(),
        "not again within the period"
    );
    responder.notifier.flush().await;

    let stored = harness.store.approval(&approval.approval_id).await.expect("read").expect("present");
    assert_eq!(stored.status, ApprovalStatus::Pending, "a high-severity approval stays pending after escalation");
    assert!(stored.escalated_at.is_some());
    let state = state_of(&harness, "escalate-me").await;
    assert_eq!(state.state, InvestigationState::AwaitingHuman);
    assert_eq!(slack.messages().len(), 3, "request, reminder, escalation: {:?}", slack.messages());
    assert_eq!(pagerduty.messages().len(), 1, "only the escalation pages");
    assert_eq!(pagerduty.messages()[0]["event_action"], "trigger");
    drain(&responder).await;
    assert_eq!(fake.isolations("m-1"), 0, "an undecided isolation never runs");

    let records = harness.store.audit_records("default", 0, 10_000).await.expect("audit");
    assert_eq!(records.iter().filter(|r| r.event_type == "approval.escalated").count(), 1);
    assert_eq!(verify_store(harness.store.as_ref()).await.expect("verify").first_break, None);
    harness.stop().await;
}

/// A pass whose lease ran out before it reached an execution leaves it alone (another worker may
/// hold it now); the next claim treats it as in doubt and still runs it exactly once.
#[tokio::test]
async fn an_execution_whose_lease_ran_out_before_its_call_is_left_to_the_next_claim() {
    let World { harness, responder, fake } = world().await;
    harness.run(vec![malware_alert("late", "High", "ws-alpha")]).await;
    drain(&responder).await;
    let approval = pending_approvals(&harness).await.remove(0);
    responder.decide(&approval.approval_id, "alice", Decision::Approve, "").await.expect("approve");
    // Claimed "an hour ago" with a 5-minute lease: every claim is stale by the time it would run.
    let report = responder.run_executions(Utc::now() - Duration::hours(1)).await.expect("stale pass");
    assert_eq!(report.succeeded + report.already_applied + report.failed, 0, "{report:?}");
    assert_eq!(fake.isolations("m-1"), 0, "nothing started after its lease");
    drain(&responder).await;
    assert_eq!(fake.isolations("m-1"), 1);
    let executions = harness.store.executions_for_investigation(&approval.investigation_id).await.expect("executions");
    let isolation = executions.iter().find(|e| e.action.action == "defender.isolate_machine").expect("isolation");
    assert_eq!((isolation.status, isolation.attempts), (ExecutionStatus::Succeeded, 2));
    assert_eq!(state_of(&harness, "late").await.state, InvestigationState::Closed);
    harness.stop().await;
}

/// A kill switch turned on after planning holds the automatic steps still queued: they are
/// recorded as blocked, never run.
#[tokio::test]
async fn a_kill_switch_holds_queued_automatic_steps() {
    let World { harness, responder, fake } = world().await;
    harness.run(vec![malware_alert("switched", "High", "ws-alpha")]).await;
    responder.kill_switches.replace(aluskort_config::KillSwitches { techniques: vec!["T1059".to_owned()], ..Default::default() });
    drain(&responder).await;
    let state = state_of(&harness, "switched").await;
    let executions = harness.store.executions_for_investigation(&state.investigation_id.to_string()).await.expect("executions");
    let automatic: Vec<&Execution> = executions.iter().filter(|e| e.approval_id.is_none()).collect();
    assert!(!automatic.is_empty(), "the malware playbook queues automatic steps");
    for execution in &automatic {
        assert_eq!(execution.status, ExecutionStatus::Failed);
        let error = execution.error.as_deref().unwrap_or_default();
        assert!(error.contains("kill switch on technique T1059 (T1059.001)"), "{error}");
    }
    assert!(fake.actions().is_empty());
    let records = harness.store.audit_records("default", 0, 10_000).await.expect("audit");
    let blocked = records.iter().filter(|r| r.outcome["outcome_status"] == "blocked_by_guardrail").count();
    assert_eq!(blocked, automatic.len());
    harness.stop().await;
}

/// Dry-run mode: the automatic steps an investigation plans are recorded as dry runs in the
/// investigation's own commit (what their executor would have sent, one attempt, a
/// `response.prepared` audit record each, a `response.executed` notification once committed),
/// and the response service finds nothing of them to claim. Without a dry runner (or in live
/// mode) they are queued for it as before.
#[tokio::test]
async fn dry_run_automatic_steps_are_recorded_with_their_investigation() {
    use aluskort_config::{NotifyKind, NotifyTarget};
    use aluskort_testkit::fake::chat::FakeSlack;

    let fake = FakeDefender::start().await;
    fake.add_machine("m-1", "ws-alpha.contoso.com");
    let config = RespondConfig { mode: ResponseMode::DryRun, ..live_config(&fake) };
    let cancel = CancellationToken::new();
    let executors = Arc::new(Executors::from_config(&config, cancel.clone()).expect("executors"));
    let slack = FakeSlack::start().await;
    let notifier = Notifier::start(
        vec![NotifyTarget {
            kind: NotifyKind::Slack { url: SecretString::new(slack.url()) },
            events: vec!["response.executed".to_owned()],
            timeout: std::time::Duration::from_secs(5),
            max_retries: 2,
        }],
        cancel.clone(),
    );
    let runner = aluskort_respond::service::DryRunner { executors: Arc::clone(&executors), notifier: notifier.clone() };
    let respond = config.clone();
    let harness = harness_with(move |_| PipelineSettings {
        playbooks: Some(Arc::new(PlaybookSet::builtin())),
        respond,
        dry_run: Some(runner),
        ..PipelineSettings::default()
    })
    .await;
    harness.run(vec![malware_alert("dry-auto", "High", "ws-alpha")]).await;
    let state = state_of(&harness, "dry-auto").await;
    let executions = harness.store.executions_for_investigation(&state.investigation_id.to_string()).await.expect("executions");
    let automatic: Vec<&Execution> = executions.iter().filter(|e| e.approval_id.is_none()).collect();
    assert!(!automatic.is_empty(), "the malware playbook plans automatic steps");
    for execution in &automatic {
        assert_eq!(execution.status, ExecutionStatus::DryRun, "{}", execution.action.step_key);
        assert_eq!(execution.attempts, 1);
        assert_eq!(execution.lease_until, None);
        assert_eq!(execution.result, Some(json!({"dry_run": true})));
        assert!(execution.request.is_some(), "what would have been sent: {}", execution.action.step_key);
    }
    let records = harness.store.audit_records("default", 0, 10_000).await.expect("audit");
    let mut prepared: Vec<&str> =
        records.iter().filter(|r| r.event_type == "response.prepared").filter_map(|r| r.decision["execution_key"].as_str()).collect();
    prepared.sort_unstable();
    let mut keys: Vec<&str> = automatic.iter().map(|e| e.execution_key.as_str()).collect();
    keys.sort_unstable();
    assert_eq!(prepared, keys, "one response.prepared record per automatic step");
    notifier.flush().await;
    assert_eq!(slack.messages().len(), automatic.len(), "one response.executed notification each: {:?}", slack.messages());
    // Nothing is left for the response service; nothing was sent.
    let responder = Responder {
        cases: harness.store.clone(),
        responses: harness.store.clone(),
        audit: Arc::new(AuditLog::new(harness.store.clone())),
        executors,
        notifier: Notifier::disabled(),
        config,
        clock: aluskort_respond::service::Clock::system(),
        kill_switches: aluskort_config::SharedKillSwitches::default(),
    };
    let report = responder.run_executions(Utc::now()).await.expect("run");
    assert_eq!(report.executions(), 0, "{report:?}");
    assert!(fake.actions().is_empty(), "dry-run sends nothing");
    assert_eq!(verify_store(harness.store.as_ref()).await.expect("verify").first_break, None);
    harness.stop().await;
}
