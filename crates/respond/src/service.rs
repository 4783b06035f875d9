//! The response service: human decisions on approvals, the deadline sweep, and the execution of
//! queued actions, each stored in one transaction with its investigation versions and audit
//! records (FR-RSP-002..004). In dry-run mode the automatic steps an investigation plans are not
//! queued: the investigate stage records them as dry runs in its own commit ([`DryRunner`]).
//!
//! Exactly once: an execution is a row keyed by (investigation, step, approval). A worker claims it
//! under a lease; a worker that dies mid-call leaves it `running` until the lease runs out, after
//! which the next claimer first asks the executor whether the earlier attempt took effect
//! ([`crate::action::Executor::already_applied`]) and only then repeats it, with the same idempotency key.

use std::sync::Arc;
use std::time::Duration;

use aluskort_audit::chain::AuditError;
use aluskort_audit::{AuditEvent, AuditLog};
use aluskort_config::{RespondConfig, ResponseMode};
use aluskort_core::response::{Approval, ApprovalStatus, Execution, ExecutionStatus};
use aluskort_core::{GraphState, InvestigationId, InvestigationState};
use aluskort_store::{ApprovalFilter, ApprovalWrite, CaseStore, InvestigationWrite, ResponseStore, StoreError, StoreErrorKind, WorkBatch};
use chrono::{DateTime, Utc};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::action::{ActionError, ActionOutcome, ActionRequest};
use crate::executors::Executors;
use crate::gate::{self, Decision, Due};
use crate::notify::{Notification, Notifier};

/// Attempts before a retryable failure becomes a final one.
pub const MAX_EXECUTION_ATTEMPTS: u32 = 5;
/// Every this many ticks the run loop sweeps pending approvals (10 s at the server's 1 s tick).
const SWEEP_TICKS: u64 = 10;
/// Pending approvals read per page of a sweep.
const SWEEP_PAGE: u32 = 1000;
/// Every this many ticks the run loop looks for finished responses left open.
const CLOSE_SWEEP_TICKS: u64 = 30;
/// Time before a lease ends in which an execution is no longer started.
const LEASE_MARGIN: chrono::Duration = chrono::Duration::seconds(5);
/// Executions claimed per pass.
const CLAIM_BATCH: u32 = 64;
/// Tries of one decision or close when a concurrent writer moved the investigation on.
const MAX_CONFLICT_RETRIES: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum ResponseError {
    #[error("approval {0} not found")]
    NotFound(String),
    #[error(transparent)]
    Decide(#[from] gate::DecideError),
    #[error("investigation {id} is {state}, not awaiting a human decision")]
    NotAwaiting { id: String, state: &'static str },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Audit(#[from] AuditError),
}

impl ResponseError {
    fn is_conflict(&self) -> bool {
        match self {
            ResponseError::Store(error) => error.kind == StoreErrorKind::Conflict,
            ResponseError::Audit(AuditError::Store(error)) => error.kind == StoreErrorKind::Conflict,
            _ => false,
        }
    }
}

/// Everything the service works with.
pub struct Responder {
    pub cases: Arc<dyn CaseStore>,
    pub responses: Arc<dyn ResponseStore>,
    pub audit: Arc<AuditLog>,
    pub executors: Arc<Executors>,
    pub notifier: Notifier,
    pub config: RespondConfig,
    /// What "now" is for deadlines, leases and records.
    pub clock: Clock,
    /// The kill switches in force (`[pipeline.kill_switches]` and, with `[redis]`, those switched
    /// on at run time), checked again when an automatic step is about to run: a switch turned on
    /// after planning holds what is still queued.
    pub kill_switches: aluskort_config::SharedKillSwitches,
}

/// The time source of the response service: the system clock, or (tests) a manual clock that
/// moves only when told, so hours of deadlines pass in milliseconds.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>);

/// The hand of a [`Clock::manual`]: advances it.
#[derive(Debug, Clone)]
pub struct ManualTime(Arc<std::sync::atomic::AtomicI64>);

impl ManualTime {
    pub fn advance(&self, by: chrono::Duration) {
        self.0.fetch_add(by.num_milliseconds(), std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock {
    pub fn system() -> Self {
        Clock(Arc::new(Utc::now))
    }

    /// A clock standing at `start` until its [`ManualTime`] advances it.
    pub fn manual(start: DateTime<Utc>) -> (Self, ManualTime) {
        let offset = Arc::new(std::sync::atomic::AtomicI64::new(0));
        let hand = ManualTime(Arc::clone(&offset));
        let clock = Clock(Arc::new(move || start + chrono::Duration::milliseconds(offset.load(std::sync::atomic::Ordering::SeqCst))));
        (clock, hand)
    }

    pub fn now(&self) -> DateTime<Utc> {
        (self.0)()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}

/// What one execution pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunReport {
    pub succeeded: usize,
    pub already_applied: usize,
    pub dry_run: usize,
    pub failed: usize,
    /// Put back for a later attempt.
    pub retrying: usize,
    /// Investigations closed because their last action finished.
    pub closed: usize,
}

impl RunReport {
    /// Executions the pass handled, whatever became of them.
    pub fn executions(&self) -> usize {
        self.succeeded + self.already_applied + self.dry_run + self.failed + self.retrying
    }

    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &RunReport) {
        self.succeeded += other.succeeded;
        self.already_applied += other.already_applied;
        self.dry_run += other.dry_run;
        self.failed += other.failed;
        self.retrying += other.retrying;
        self.closed += other.closed;
    }
}

/// What one sweep of pending approvals did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Approvals the sweep could not process (logged; retried on the next sweep).
    pub failed: usize,
    pub notified: usize,
    pub reminded: usize,
    pub escalated: usize,
    pub timed_out: usize,
}

fn human_event(approval: &Approval, event_type: &'static str, actor: &str, now: DateTime<Utc>) -> AuditEvent {
    let mut event = AuditEvent::agent(&approval.tenant_id, event_type, actor, now);
    event.actor_type = "human";
    event.investigation_id = Some(approval.investigation_id.clone());
    event.alert_id = Some(approval.alert_id.clone());
    event
}

fn system_event(tenant: &str, investigation: &str, alert: &str, event_type: &'static str, now: DateTime<Utc>) -> AuditEvent {
    let mut event = AuditEvent::agent(tenant, event_type, "response_agent", now);
    event.investigation_id = Some(investigation.to_owned());
    event.alert_id = Some(alert.to_owned());
    event
}

/// Transitions of one investigation in one commit: its new versions and their audit events.
struct Moves {
    versions: Vec<GraphState>,
    events: Vec<AuditEvent>,
    now: DateTime<Utc>,
}

impl Moves {
    fn new(now: DateTime<Utc>) -> Self {
        Moves { versions: Vec::new(), events: Vec::new(), now }
    }

    /// Moves `state` on one version, recording the transition and its audit event.
    fn step(
        &mut self,
        state: &mut GraphState,
        next: InvestigationState,
        actor: (&'static str, &str),
        reason: &str,
    ) -> Result<(), ResponseError> {
        let from = state.state;
        state
            .transition(next, reason, self.now)
            .map_err(|_| ResponseError::NotAwaiting { id: state.investigation_id.to_string(), state: from.as_str() })?;
        state.version += 1;
        self.versions.push(state.clone());
        let mut event = AuditEvent::agent(state.tenant_id.as_str(), "investigation.state_changed", actor.1, self.now);
        event.actor_type = actor.0;
        event.investigation_id = Some(state.investigation_id.to_string());
        event.alert_id = Some(state.alert_id.to_string());
        event.decision = json!({"decision_type": "transition", "reasoning_summary": reason});
        event.outcome = json!({"state_before": from.as_str(), "state_after": next.as_str(), "outcome_status": "success"});
        self.events.push(event);
        Ok(())
    }

    /// The investigation write of these versions, if any.
    fn write(self, expected_version: u64, batch: &mut WorkBatch) -> Vec<AuditEvent> {
        if !self.versions.is_empty() {
            batch.investigations.push(InvestigationWrite { expected_version, versions: self.versions, skip_on_conflict: false });
        }
        self.events
    }
}

impl Responder {
    /// Commits `batch` with `events` sealed into the audit chain, in one transaction.
    async fn commit(&self, batch: &WorkBatch, events: Vec<AuditEvent>) -> Result<(), ResponseError> {
        let cases = Arc::clone(&self.cases);
        let records = aluskort_audit::PreparedRecords::prepare(events)?;
        self.audit
            .append_with(records, move |records| {
                let cases = Arc::clone(&cases);
                async move { cases.commit_work_encoded(batch, &records.records, &records.texts).await.map(|_| ()) }
            })
            .await?;
        Ok(())
    }

    async fn investigation(&self, id: &str) -> Result<GraphState, ResponseError> {
        let parsed = InvestigationId::parse(id).ok_or_else(|| StoreError::invalid(format!("investigation id {id:?} is not a UUID")))?;
        self.cases.investigation(parsed).await?.ok_or_else(|| StoreError::invalid(format!("investigation {id} not found")).into())
    }

    /// Records one person's decision on approval `approval_id` (FR-RSP-002). Approved: the
    /// investigation goes to RESPONDING and its gated actions are queued (or, with none, it closes
    /// as confirmed). Rejected: it closes as `response_rejected` and nothing runs. With four-eyes
    /// steps the first approval only records itself. Retried when a concurrent writer moved the
    /// approval or the investigation on.
    pub async fn decide(&self, approval_id: &str, actor: &str, decision: Decision, comment: &str) -> Result<Approval, ResponseError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.try_decide(approval_id, actor, decision, comment, self.clock.now()).await {
                Err(error) if error.is_conflict() && attempt < MAX_CONFLICT_RETRIES => continue,
                result => return result,
            }
        }
    }

    async fn try_decide(
        &self,
        approval_id: &str,
        actor: &str,
        decision: Decision,
        comment: &str,
        now: DateTime<Utc>,
    ) -> Result<Approval, ResponseError> {
        let approval = self.responses.approval(approval_id).await?.ok_or_else(|| ResponseError::NotFound(approval_id.to_owned()))?;
        let next = gate::decide(&approval, actor, decision, comment, now)?;
        let actor = actor.trim();
        let mut state = self.investigation(&approval.investigation_id).await?;
        if state.state != InvestigationState::AwaitingHuman {
            return Err(ResponseError::NotAwaiting { id: approval.investigation_id.clone(), state: state.state.as_str() });
        }
        if state.case_facts.get("approval_id").and_then(|id| id.as_str()) != Some(approval.approval_id.as_str()) {
            return Err(ResponseError::NotAwaiting { id: approval.investigation_id.clone(), state: "awaiting a different approval" });
        }
        let expected_version = state.version;
        let mut moves = Moves::new(now);
        let mut batch = WorkBatch::default();
        let mut event =
            human_event(&approval, if decision == Decision::Approve { "approval.granted" } else { "approval.denied" }, actor, now);
        event.decision = json!({
            "decision_type": "approval",
            "approval_id": approval.approval_id,
            "decision": decision.as_str(),
            "reasoning_summary": comment,
            "recommended_actions": approval.actions.iter().map(|a| json!({"step": a.step_key, "action": a.action, "target": a.target, "tier": a.tier})).collect::<Vec<_>>(),
        });
        event.outcome = json!({
            "outcome_status": match next.status { ApprovalStatus::Pending => "pending_approval", _ => "success" },
            "approval_status": next.status.as_str(),
            "approvers": next.approvers(),
            "required_approvers": next.required_approvers,
        });
        moves.events.push(event);
        let by = ("human", actor);
        match next.status {
            ApprovalStatus::Approved => {
                let reason = format!("approved by {}", next.approvers().join(" and "));
                state.record_decision("human", "approved", format!("{reason}: {comment}"), None, now);
                moves.step(&mut state, InvestigationState::Responding, by, &reason)?;
                if next.actions.is_empty() {
                    state.close_reason = Some(state.classification.map_or("confirmed", |c| c.as_str()).to_owned());
                    moves.step(&mut state, InvestigationState::Closed, by, "verdict confirmed; no actions to run")?;
                } else {
                    for action in &next.actions {
                        batch.executions.push(Execution::queued(
                            &next.tenant_id,
                            &next.investigation_id,
                            Some(&next.approval_id),
                            action.clone(),
                            now,
                        ));
                    }
                }
            }
            ApprovalStatus::Rejected => {
                state.record_decision("human", "rejected", format!("rejected by {actor}: {comment}"), None, now);
                state.close_reason = Some("response_rejected".to_owned());
                moves.step(&mut state, InvestigationState::Responding, by, "response rejected")?;
                moves.step(&mut state, InvestigationState::Closed, by, "response rejected: none of the actions awaiting approval ran")?;
            }
            ApprovalStatus::Pending | ApprovalStatus::TimedOut => {}
        }
        let events = moves.write(expected_version, &mut batch);
        batch.approvals.push(ApprovalWrite { expected_version: approval.version, approval: next.clone() });
        self.commit(&batch, events).await?;
        if next.status != ApprovalStatus::Pending {
            // Lets PagerDuty resolve the page an escalation opened.
            let kind = if next.status == ApprovalStatus::Approved { "approval.granted" } else { "approval.denied" };
            self.notifier.notify(notification_of(&next, kind));
        }
        Ok(next)
    }

    /// One pass over pending approvals: sends the request to notification targets once, reminds at
    /// 50 % of the time, escalates critical/high at the deadline (they stay pending) and times out
    /// the rest, closing their investigations as `timed_out` (FR-RSP-003).
    pub async fn sweep_approvals(&self, now: DateTime<Utc>) -> Result<SweepReport, ResponseError> {
        self.sweep_approvals_by(now, SWEEP_PAGE).await
    }

    /// [`Responder::sweep_approvals`] reading `page` approvals at a time (tests use small pages).
    ///
    /// Every pending approval is visited, page after page, soonest deadline first: reading only
    /// the first page, the requests and reminders of approvals beyond it (a backlog of more than a
    /// page) were never sent. With no notification target taking requests or reminders, only the
    /// approvals past their deadline have anything due, and only those are read (`deadline_before`,
    /// through the status and deadline index): a backlog costs nothing to sweep.
    pub async fn sweep_approvals_by(&self, now: DateTime<Utc>, page: u32) -> Result<SweepReport, ResponseError> {
        let mut report = SweepReport::default();
        let notifying = self.notifier.wants("approval.requested") || self.notifier.wants("approval.reminder");
        let mut filter = ApprovalFilter {
            status: Some(ApprovalStatus::Pending),
            deadline_before: (!notifying).then_some(now),
            limit: page.max(1),
            ..ApprovalFilter::default()
        };
        loop {
            let approvals = self.responses.approvals(&filter).await?;
            let full = approvals.len() >= filter.limit as usize;
            filter.after = approvals.last().map(|approval| aluskort_store::PageKey {
                time: approval.deadline,
                tenant: approval.tenant_id.clone(),
                id: approval.approval_id.clone(),
            });
            self.sweep_page(&approvals, now, &mut report).await;
            if !full {
                return Ok(report);
            }
        }
    }

    /// Sweeps one page of pending approvals into `report`.
    async fn sweep_page(&self, approvals: &[Approval], now: DateTime<Utc>, report: &mut SweepReport) {
        for approval in approvals {
            match self.sweep_one(approval, now).await {
                Ok(Some((kind, notification))) => {
                    match kind {
                        "approval.requested" => report.notified += 1,
                        "approval.reminder" => report.reminded += 1,
                        "approval.escalated" => report.escalated += 1,
                        _ => report.timed_out += 1,
                    }
                    if let Some(notification) = notification {
                        self.notifier.notify(notification);
                    }
                }
                Ok(None) => {}
                // Someone decided meanwhile; the next sweep sees the new state.
                Err(error) if error.is_conflict() => {}
                // One bad approval must not hold up every other one's deadline.
                Err(error) => {
                    tracing::warn!(approval_id = %approval.approval_id, error = %error, "approval sweep skipped an approval");
                    report.failed += 1;
                }
            }
        }
    }

    async fn sweep_one(
        &self,
        approval: &Approval,
        now: DateTime<Utc>,
    ) -> Result<Option<(&'static str, Option<Notification>)>, ResponseError> {
        let (kind, mut next) = match gate::due(approval, now) {
            Due::TimeOut(next) => ("approval.timed_out", next),
            Due::Escalate(next) => ("approval.escalated", next),
            // Requests and reminders are only notifications: with no target taking them there is
            // nothing to send and nothing to record.
            Due::Remind(_) | Due::Nothing if !self.notifier.wants("approval.requested") && !self.notifier.wants("approval.reminder") => {
                return Ok(None);
            }
            Due::Remind(next) if approval.notified_at.is_some() => ("approval.reminder", next),
            // The request itself goes out before any reminder.
            Due::Remind(_) | Due::Nothing if approval.notified_at.is_none() => {
                let mut next = approval.clone();
                next.version += 1;
                ("approval.requested", next)
            }
            Due::Remind(_) | Due::Nothing => return Ok(None),
        };
        if next.notified_at.is_none() {
            next.notified_at = Some(now);
        }
        let mut batch = WorkBatch::default();
        let mut moves = Moves::new(now);
        let mut expected_version = 0;
        match kind {
            "approval.escalated" => {
                let mut event =
                    system_event(&approval.tenant_id, &approval.investigation_id, &approval.alert_id, "approval.escalated", now);
                event.actor_type = "scheduler";
                event.severity = "warning";
                event.decision = json!({"decision_type": "escalation", "approval_id": approval.approval_id, "reasoning_summary": format!("no decision within the {} deadline; escalated, still awaiting a human", approval.severity)});
                event.outcome = json!({"outcome_status": "pending_approval"});
                moves.events.push(event);
            }
            "approval.timed_out" => {
                let mut state = self.investigation(&approval.investigation_id).await?;
                expected_version = state.version;
                let mut event =
                    system_event(&approval.tenant_id, &approval.investigation_id, &approval.alert_id, "approval.timed_out", now);
                event.actor_type = "scheduler";
                event.decision = json!({"decision_type": "timeout", "approval_id": approval.approval_id, "reasoning_summary": format!("no decision within the {} deadline: closed; none of the actions awaiting approval ran", approval.severity)});
                event.outcome = json!({"outcome_status": "timed_out"});
                moves.events.push(event);
                if state.state == InvestigationState::AwaitingHuman {
                    state.close_reason = Some("timed_out".to_owned());
                    state.record_decision("response_agent", "timed_out", "approval deadline passed without a decision", None, now);
                    moves.step(&mut state, InvestigationState::Closed, ("scheduler", "response_agent"), "approval timed out")?;
                }
            }
            _ => {}
        }
        let events = moves.write(expected_version, &mut batch);
        batch.approvals.push(ApprovalWrite { expected_version: approval.version, approval: next.clone() });
        self.commit(&batch, events).await?;
        Ok(Some((kind, Some(notification_of(&next, kind)))))
    }

    /// One pass of the execution queue: claims due executions and runs each once (FR-RSP-004);
    /// closes investigations whose approved actions have all finished.
    pub async fn run_executions(&self, now: DateTime<Utc>) -> Result<RunReport, ResponseError> {
        let lease = chrono::Duration::from_std(self.config.lease).unwrap_or(chrono::Duration::minutes(5));
        let claimed = self.responses.claim_executions(now, lease, CLAIM_BATCH).await?;
        let mut report = RunReport::default();
        let live = self.config.mode == ResponseMode::Live;
        let mut recorded = Vec::with_capacity(claimed.len());
        let mut unsent = Vec::new();
        for execution in claimed {
            let Some((updated, event)) = self.run_one(execution).await else { continue };
            match updated.status {
                ExecutionStatus::Succeeded if updated.result.as_ref().is_some_and(|r| r["already_applied"] == json!(true)) => {
                    report.already_applied += 1
                }
                ExecutionStatus::Succeeded => report.succeeded += 1,
                ExecutionStatus::DryRun => report.dry_run += 1,
                ExecutionStatus::Failed => report.failed += 1,
                ExecutionStatus::Pending | ExecutionStatus::Running => report.retrying += 1,
            }
            if !live {
                unsent.push((updated, event));
                continue;
            }
            // Live: recorded right after its call, so a crash leaves at most this one in doubt.
            let batch = WorkBatch { execution_updates: vec![updated.clone()], ..WorkBatch::default() };
            match self.commit(&batch, event.clone().into_iter().collect()).await {
                Ok(()) => recorded.push(updated),
                Err(error) if error.is_conflict() => self.record_superseded(&updated, event).await?,
                Err(error) => return Err(error),
            }
        }
        // Dry-run: nothing was sent, so the pass is recorded in one transaction; if another worker
        // took one over meanwhile (theirs counts), the rest are recorded one by one.
        let (executions, events): (Vec<Execution>, Vec<Option<AuditEvent>>) = unsent.into_iter().unzip();
        let batch = WorkBatch { execution_updates: executions, ..WorkBatch::default() };
        match self.commit(&batch, events.iter().flatten().cloned().collect()).await {
            Ok(()) => recorded.extend(batch.execution_updates),
            Err(error) if error.is_conflict() => {
                for (execution, event) in batch.execution_updates.into_iter().zip(events) {
                    let batch = WorkBatch { execution_updates: vec![execution], ..WorkBatch::default() };
                    match self.commit(&batch, event.into_iter().collect()).await {
                        Ok(()) => recorded.extend(batch.execution_updates),
                        Err(error) if error.is_conflict() => {}
                        Err(error) => return Err(error),
                    }
                }
            }
            Err(error) => return Err(error),
        }
        let mut finished = Vec::new();
        for execution in recorded.iter().filter(|e| e.status.is_terminal()) {
            self.notifier.notify(executed_notification(execution));
            // Only approved actions move an investigation on (automatic ones run beside a human).
            if execution.approval_id.is_some() && !finished.contains(&execution.investigation_id) {
                finished.push(execution.investigation_id.clone());
            }
        }
        for investigation in finished {
            if self.close_if_done(&investigation).await? {
                report.closed += 1;
            }
        }
        Ok(report)
    }

    /// Runs one claimed execution; returns it updated, with the audit event of its outcome.
    async fn run_one(&self, mut execution: Execution) -> Option<(Execution, Option<AuditEvent>)> {
        let now = self.clock.now();
        // A claim covers a whole pass; an execution whose lease ran out meanwhile may already be
        // another worker's (who checks `already_applied` first): leave it to them.
        if execution.lease_until.is_some_and(|until| until - LEASE_MARGIN <= now) {
            return None;
        }
        execution.updated_at = now;
        if execution.approval_id.is_none()
            && let Some(why) = self.kill_switched(&execution).await
        {
            execution.status = ExecutionStatus::Failed;
            execution.lease_until = None;
            execution.error = Some(format!("held: {why}; automatic steps do not run under a kill switch"));
            let event = self.execution_event(&execution, "response.executed", "blocked_by_guardrail", &why);
            return Some((execution, Some(event)));
        }
        if execution.attempts > MAX_EXECUTION_ATTEMPTS {
            // Its workers kept dying (or its lease kept running out) mid-call: stop trying.
            execution.status = ExecutionStatus::Failed;
            execution.lease_until = None;
            let error = format!("gave up after {} attempts that never finished", execution.attempts - 1);
            execution.error = Some(error.clone());
            let event = self.execution_event(&execution, "response.executed", "failed", &error);
            return Some((execution, Some(event)));
        }
        if self.config.mode == ResponseMode::DryRun {
            let event = record_dry_run(&self.executors, &mut execution, now);
            return Some((execution, Some(event)));
        }
        let request = action_request(&execution);
        let Some(executor) = self.executors.get(&execution.action.action) else {
            let error = format!("no executor is configured for {} (see [respond] in the config)", execution.action.action);
            execution.status = ExecutionStatus::Failed;
            execution.error = Some(error.clone());
            execution.lease_until = None;
            let event = self.execution_event(&execution, "response.executed", "failed", &error);
            return Some((execution, Some(event)));
        };
        let described = executor.describe(&request);
        execution.request = described.as_ref().ok().cloned();
        let outcome = match described {
            Err(error) => Err(error),
            Ok(_) if execution.attempts > 1 => match executor.already_applied(&request).await {
                Ok(true) => Ok(ActionOutcome::AlreadyApplied { detail: json!({"found_by": "execution key"}) }),
                Ok(false) => executor.execute(&request).await,
                Err(error) => Err(error),
            },
            Ok(_) => executor.execute(&request).await,
        };
        execution.lease_until = None;
        match outcome {
            Ok(ActionOutcome::Applied { detail }) => {
                execution.status = ExecutionStatus::Succeeded;
                execution.result = Some(detail);
                execution.error = None;
                let event = self.execution_event(&execution, "response.executed", "success", "applied");
                Some((execution, Some(event)))
            }
            Ok(ActionOutcome::AlreadyApplied { detail }) => {
                execution.status = ExecutionStatus::Succeeded;
                execution.result = Some(json!({"already_applied": true, "detail": detail}));
                execution.error = None;
                let event = self.execution_event(
                    &execution,
                    "response.executed",
                    "success",
                    "already applied by an earlier attempt: not sent again",
                );
                Some((execution, Some(event)))
            }
            Err(ActionError::Retryable(error)) if execution.attempts < MAX_EXECUTION_ATTEMPTS => {
                // Back in the queue after a pause: the lease doubles as the not-before time, and a
                // later claim checks `already_applied` first, as for any in-doubt attempt.
                execution.status = ExecutionStatus::Running;
                execution.lease_until = Some(now + backoff(execution.attempts));
                execution.error = Some(error);
                Some((execution, None))
            }
            Err(error) => {
                execution.status = ExecutionStatus::Failed;
                execution.error = Some(error.to_string());
                let event = self.execution_event(&execution, "response.executed", "failed", &error.to_string());
                Some((execution, Some(event)))
            }
        }
    }

    /// The kill switch covering an automatic execution's alert, if any (read only when switches
    /// are configured). An investigation or alert that cannot be read holds the step too.
    async fn kill_switched(&self, execution: &Execution) -> Option<String> {
        let switches = self.kill_switches.snapshot();
        if switches.is_empty() {
            return None;
        }
        let state = match self.investigation(&execution.investigation_id).await {
            Ok(state) => state,
            Err(error) => return Some(format!("investigation unreadable, kill switches not checked: {error}")),
        };
        let alert = match self.cases.alert(&state.tenant_id, &state.alert_id).await {
            Ok(Some(alert)) => alert,
            Ok(None) => return Some("alert not found, kill switches not checked".to_owned()),
            Err(error) => return Some(format!("alert unreadable, kill switches not checked: {error}")),
        };
        let named = alert.techniques.iter().chain(&state.techniques).map(String::as_str);
        switches.applies(alert.tenant_id.as_str(), alert.source.as_str(), named)
    }

    /// An execution this worker ran but could no longer record (its lease ran out and another
    /// worker took it over): the call itself is still audited, marked superseded, and logged.
    async fn record_superseded(&self, execution: &Execution, event: Option<AuditEvent>) -> Result<(), ResponseError> {
        tracing::warn!(
            execution_key = %execution.execution_key,
            action = %execution.action.action,
            attempts = execution.attempts,
            "an execution finished after its lease ran out; its result is audited as superseded"
        );
        let Some(mut event) = event else { return Ok(()) };
        event.outcome["superseded"] = json!(true);
        event.outcome["reasoning_summary"] =
            json!("finished after its lease ran out: another worker had taken the execution over; this attempt is recorded here only");
        self.commit(&WorkBatch::default(), vec![event]).await
    }

    fn execution_event(&self, execution: &Execution, event_type: &'static str, status: &str, summary: &str) -> AuditEvent {
        execution_event(execution, event_type, status, summary, self.config.mode, self.clock.now())
    }

    /// Closes every RESPONDING investigation whose approved actions have all finished: the pass
    /// that finished the last one normally does, but a crash or conflicts between its commit and
    /// the close would otherwise leave it responding for good.
    pub async fn close_finished(&self) -> Result<usize, ResponseError> {
        let filter = aluskort_store::InvestigationFilter {
            state: Some(InvestigationState::Responding),
            limit: Some(500),
            ..aluskort_store::InvestigationFilter::default()
        };
        let mut closed = 0;
        for state in self.cases.list_investigations(&filter).await? {
            if self.close_if_done(&state.investigation_id.to_string()).await? {
                closed += 1;
            }
        }
        Ok(closed)
    }

    /// Closes a RESPONDING investigation once every execution of its approval has finished.
    async fn close_if_done(&self, investigation_id: &str) -> Result<bool, ResponseError> {
        for _ in 0..MAX_CONFLICT_RETRIES {
            let executions = self.responses.executions_for_investigation(investigation_id).await?;
            let approved: Vec<&Execution> = executions.iter().filter(|e| e.approval_id.is_some()).collect();
            if approved.is_empty() || approved.iter().any(|e| !e.status.is_terminal()) {
                return Ok(false);
            }
            let mut state = self.investigation(investigation_id).await?;
            if state.state != InvestigationState::Responding {
                return Ok(false);
            }
            let count = |status: ExecutionStatus| approved.iter().filter(|e| e.status == status).count();
            let summary = json!({
                "succeeded": count(ExecutionStatus::Succeeded),
                "failed": count(ExecutionStatus::Failed),
                "dry_run": count(ExecutionStatus::DryRun),
            });
            let now = self.clock.now();
            let reason = format!("approved actions finished: {summary}");
            state.case_facts.insert("response_summary".to_owned(), summary);
            state.close_reason = Some(state.classification.map_or("responded", |c| c.as_str()).to_owned());
            state.record_decision("response_agent", "responded", reason.clone(), None, now);
            let expected_version = state.version;
            let mut moves = Moves::new(now);
            moves.step(&mut state, InvestigationState::Closed, ("agent", "response_agent"), &reason)?;
            let mut batch = WorkBatch::default();
            let events = moves.write(expected_version, &mut batch);
            match self.commit(&batch, events).await {
                Ok(()) => return Ok(true),
                Err(error) if error.is_conflict() => continue,
                Err(error) => return Err(error),
            }
        }
        Ok(false)
    }

    /// Runs the execution queue and the approval sweep every `poll` until shutdown. A failed pass
    /// is logged and retried on the next tick; nothing is lost because the queue is in the store.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken, poll: Duration) -> anyhow::Result<()> {
        let mut ticker = tokio::time::interval(poll);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut ticks: u64 = 0;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = ticker.tick() => {}
            }
            loop {
                match self.run_executions(self.clock.now()).await {
                    // A full batch: there may be more waiting.
                    Ok(report) if report.executions() >= CLAIM_BATCH as usize && !shutdown.is_cancelled() => continue,
                    Ok(_) => break,
                    Err(error) => {
                        tracing::warn!(error = %error, "response execution pass failed; retrying on the next tick");
                        break;
                    }
                }
            }
            // Deadlines are hours long; sweeping every few ticks keeps reading every pending
            // approval off the hot path of a busy store.
            if ticks.is_multiple_of(SWEEP_TICKS)
                && let Err(error) = self.sweep_approvals(self.clock.now()).await
            {
                tracing::warn!(error = %error, "approval sweep failed; retrying on the next tick");
            }
            ticks += 1;
            if ticks.is_multiple_of(CLOSE_SWEEP_TICKS)
                && let Err(error) = self.close_finished().await
            {
                tracing::warn!(error = %error, "closing finished responses failed; retrying on the next tick");
            }
        }
        self.notifier.flush().await;
        Ok(())
    }
}

/// The audit event of one execution's outcome.
fn execution_event(
    execution: &Execution,
    event_type: &'static str,
    status: &str,
    summary: &str,
    mode: ResponseMode,
    now: DateTime<Utc>,
) -> AuditEvent {
    let mut event = AuditEvent::agent(&execution.tenant_id, event_type, "response_agent", now);
    event.investigation_id = Some(execution.investigation_id.clone());
    event.actor_permissions = vec!["execute_playbook".to_owned()];
    event.entity_ids = if execution.action.target.is_empty() { Vec::new() } else { vec![execution.action.target.clone()] };
    if status == "failed" {
        event.severity = "warning";
    }
    event.decision = json!({
        "decision_type": "response",
        "execution_key": execution.execution_key,
        "approval_id": execution.approval_id,
        "playbook_id": execution.action.playbook_id,
        "step": execution.action.step_key,
        "action": execution.action.action,
        "target": execution.action.target,
        "tier": execution.action.tier,
        "destructive": execution.action.destructive,
        "mode": mode.as_str(),
    });
    event.outcome = json!({
        "outcome_status": status,
        "attempts": execution.attempts,
        "request": execution.request,
        "result": execution.result,
        "reasoning_summary": summary,
    });
    event
}

/// What an executor is asked to do for `execution`.
fn action_request(execution: &Execution) -> ActionRequest {
    ActionRequest {
        execution_key: execution.execution_key.clone(),
        tenant_id: execution.tenant_id.clone(),
        investigation_id: execution.investigation_id.clone(),
        step_key: execution.action.step_key.clone(),
        action: execution.action.action.clone(),
        target: execution.action.target.clone(),
        params: execution.action.params.clone(),
    }
}

/// Records `execution` as a dry run at `now` (nothing is sent, one attempt): what its executor
/// would have sent, or the planned action when no executor is configured for it (in live mode
/// that would fail), and the `response.prepared` audit event of it. The response service records
/// queued executions this way in dry-run mode, and the investigate stage the automatic steps it
/// plans ([`DryRunner`]).
pub fn record_dry_run(executors: &Executors, execution: &mut Execution, now: DateTime<Utc>) -> AuditEvent {
    execution.attempts = execution.attempts.max(1);
    execution.updated_at = now;
    execution.status = ExecutionStatus::DryRun;
    execution.lease_until = None;
    execution.result = Some(json!({"dry_run": true}));
    let summary = match executors.get(&execution.action.action) {
        Some(executor) => {
            execution.request = executor.describe(&action_request(execution)).ok();
            "dry run: recorded what would have been sent"
        }
        None => {
            execution.request = Some(json!({
                "action": execution.action.action,
                "target": execution.action.target,
                "params": execution.action.params,
                "note": "no executor is configured for this action; in live mode it would fail",
            }));
            "dry run: recorded the planned action"
        }
    };
    execution_event(execution, "response.prepared", "success", summary, ResponseMode::DryRun, now)
}

/// Automatic steps recorded as dry runs where they are planned (`respond.mode = "dry_run"`): in
/// the investigation's own commit, instead of queued for the response service to claim, run and
/// record in two more transactions each. Nothing is sent either way; what is stored (the
/// execution, its `response.prepared` audit event, the `response.executed` notification once the
/// commit has landed) is what the response service would have stored.
#[derive(Clone)]
pub struct DryRunner {
    pub executors: Arc<Executors>,
    pub notifier: Notifier,
}

impl DryRunner {
    /// See [`record_dry_run`].
    pub fn record(&self, execution: &mut Execution, now: DateTime<Utc>) -> AuditEvent {
        record_dry_run(&self.executors, execution, now)
    }

    /// Announces executions recorded (and committed) as dry runs.
    pub fn announce<'a>(&self, executions: impl IntoIterator<Item = &'a Execution>) {
        for execution in executions.into_iter().filter(|execution| execution.status == ExecutionStatus::DryRun) {
            self.notifier.notify(executed_notification(execution));
        }
    }
}

/// Pause before retry `attempt` (1-based): 30 s doubling, at most 15 min.
fn backoff(attempt: u32) -> chrono::Duration {
    chrono::Duration::seconds(30_i64.saturating_mul(1_i64 << attempt.saturating_sub(1).min(5)).min(900))
}

fn notification_of(approval: &Approval, kind: &str) -> Notification {
    let summary = match kind {
        "approval.requested" => format!("{} — approval needed: {}", approval.severity, approval.reason),
        "approval.reminder" => format!("reminder: half the time to decide has passed ({})", approval.reason),
        "approval.escalated" => "deadline passed without a decision: escalated".to_owned(),
        "approval.granted" => format!("approved by {}", approval.approvers().join(" and ")),
        "approval.denied" => "rejected: none of the actions awaiting approval will run".to_owned(),
        _ => "deadline passed without a decision: closed, nothing was run".to_owned(),
    };
    Notification {
        event_type: kind.to_owned(),
        tenant_id: approval.tenant_id.clone(),
        investigation_id: approval.investigation_id.clone(),
        approval_id: Some(approval.approval_id.clone()),
        alert_title: approval.alert_id.clone(),
        severity: approval.severity.clone(),
        summary,
        deadline: Some(approval.deadline),
        actions: approval.actions.iter().map(|a| format!("{} {} (tier {})", a.action, a.target, a.tier)).collect(),
        link: None,
    }
}

fn executed_notification(execution: &Execution) -> Notification {
    Notification {
        event_type: "response.executed".to_owned(),
        tenant_id: execution.tenant_id.clone(),
        investigation_id: execution.investigation_id.clone(),
        approval_id: execution.approval_id.clone(),
        alert_title: execution.action.description.clone(),
        severity: "info".to_owned(),
        summary: format!("{} {}: {}", execution.action.action, execution.action.target, execution.status.as_str()),
        deadline: None,
        actions: vec![execution.action.step_key.clone()],
        link: None,
    }
}
