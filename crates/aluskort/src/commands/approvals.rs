//! `aluskort approvals list|approve|reject|sweep` (FR-RSP-002/003): the human side of the approval
//! gates, over the same store the server uses. A decision is stored with its audit records in one
//! transaction; approved actions then run once (their executions are keyed, so a server running at
//! the same time never runs them again).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use aluskort_audit::AuditLog;
use aluskort_core::response::{Approval, ApprovalStatus};
use aluskort_respond::gate::Decision;
use aluskort_respond::service::{Responder, ResponseError, RunReport};
use aluskort_store::ApprovalFilter;
use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::wiring::{Backends, build_responder, load_config};

/// Opens the backends and the response service of the configuration.
async fn open(
    path: Option<&Path>,
    data_dir: Option<PathBuf>,
    env: &HashMap<String, String>,
) -> anyhow::Result<(Backends, Arc<Responder>, CancellationToken)> {
    let config = load_config(path, data_dir, env)?;
    let backends = Backends::open(&config).await?;
    let shutdown = CancellationToken::new();
    let audit = Arc::new(AuditLog::new(Arc::clone(&backends.audit_store)));
    let responder = build_responder(&config, &backends, audit, &shutdown)?;
    Ok((backends, responder, shutdown))
}

pub async fn list(
    path: Option<&Path>,
    data_dir: Option<PathBuf>,
    env: &HashMap<String, String>,
    status: &str,
    tenant: Option<String>,
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    let status = match status {
        "all" => None,
        other => Some(
            ApprovalStatus::parse(other)
                .ok_or_else(|| anyhow::anyhow!("--status {other:?}: expected pending, approved, rejected, timed_out or all"))?,
        ),
    };
    let (backends, _, _) = open(path, data_dir, env).await?;
    let filter = ApprovalFilter { status, tenant, limit: 10_000, ..ApprovalFilter::default() };
    let approvals = backends.responses.approvals(&filter).await;
    backends.close().await;
    let approvals = approvals?;
    let mut out = std::io::stdout().lock();
    if as_json {
        for approval in &approvals {
            writeln!(out, "{}", serde_json::to_string(approval)?)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    if approvals.is_empty() {
        writeln!(out, "no approvals match")?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "{:<36}  {:<9} {:<8} {:<20} {:>7}  {:<9} reason",
        "approval_id", "status", "severity", "deadline", "actions", "approvers"
    )?;
    for approval in &approvals {
        writeln!(
            out,
            "{:<36}  {:<9} {:<8} {:<20} {:>7}  {:<9} {}",
            approval.approval_id,
            approval.status.as_str(),
            approval.severity,
            approval.deadline.format("%Y-%m-%d %H:%M UTC"),
            approval.actions.len(),
            format!("{}/{}", approval.approvers().len(), approval.required_approvers),
            approval.reason
        )?;
        for action in &approval.actions {
            let gate = if action.destructive { "destructive" } else { "" };
            writeln!(out, "    tier {} {:<36} {:<30} {gate}", action.tier, action.action, action.target)?;
        }
    }
    writeln!(out, "{} approval(s)", approvals.len())?;
    Ok(ExitCode::SUCCESS)
}

/// Records the decision, then runs what it released until nothing is left in the queue.
pub async fn decide(
    path: Option<&Path>,
    data_dir: Option<PathBuf>,
    env: &HashMap<String, String>,
    approval_id: &str,
    actor: &str,
    decision: Decision,
    comment: &str,
) -> anyhow::Result<ExitCode> {
    let (backends, responder, shutdown) = open(path, data_dir, env).await?;
    let result = decide_and_run(&responder, approval_id, actor, decision, comment).await;
    let executions = match &result {
        Ok((approval, _)) => backends.responses.executions_for_investigation(&approval.investigation_id).await,
        Err(_) => Ok(Vec::new()),
    };
    responder.notifier.flush().await;
    shutdown.cancel();
    backends.close().await;
    match result {
        Ok((approval, report)) => {
            print_decision(&approval, report.as_ref())?;
            let mut out = std::io::stdout().lock();
            for execution in executions?.iter().filter(|e| e.approval_id.as_deref() == Some(approval.approval_id.as_str())) {
                let detail = execution.error.as_deref().map(|e| format!(": {e}")).unwrap_or_default();
                writeln!(out, "  {} {} -> {}{detail}", execution.action.action, execution.action.target, execution.status.as_str())?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(error @ (ResponseError::NotFound(_) | ResponseError::Decide(_) | ResponseError::NotAwaiting { .. })) => {
            eprintln!("error: {error}");
            Ok(ExitCode::from(1))
        }
        Err(error) => Err(error.into()),
    }
}

async fn decide_and_run(
    responder: &Responder,
    approval_id: &str,
    actor: &str,
    decision: Decision,
    comment: &str,
) -> Result<(Approval, Option<RunReport>), ResponseError> {
    let approval = responder.decide(approval_id, actor, decision, comment).await?;
    if approval.status != ApprovalStatus::Approved || approval.actions.is_empty() {
        return Ok((approval, None));
    }
    let mut total = RunReport::default();
    loop {
        let report = responder.run_executions(Utc::now()).await?;
        total.add(&report);
        if report.executions() == 0 {
            return Ok((approval, Some(total)));
        }
    }
}

fn print_decision(approval: &Approval, report: Option<&RunReport>) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match approval.status {
        ApprovalStatus::Pending => writeln!(
            out,
            "approval {} recorded ({} of {} approvers); waiting for a second, different approver",
            approval.approval_id,
            approval.approvers().len(),
            approval.required_approvers
        )?,
        ApprovalStatus::Rejected => writeln!(out, "approval {} rejected: investigation closed, nothing was run", approval.approval_id)?,
        ApprovalStatus::Approved if approval.actions.is_empty() => {
            writeln!(out, "approval {} approved: verdict confirmed, investigation closed", approval.approval_id)?
        }
        ApprovalStatus::Approved => {
            writeln!(out, "approval {} approved: {} action(s) released", approval.approval_id, approval.actions.len())?
        }
        ApprovalStatus::TimedOut => writeln!(out, "approval {} timed out", approval.approval_id)?,
    }
    if let Some(report) = report {
        writeln!(
            out,
            "execution queue (this approval and any automatic steps waiting): {} succeeded, {} already applied, {} dry-run, {} failed, {} to retry; {} investigation(s) closed",
            report.succeeded, report.already_applied, report.dry_run, report.failed, report.retrying, report.closed
        )?;
    }
    Ok(())
}

/// One pass of the deadline sweep: reminders, escalations and timeouts (FR-RSP-003).
pub async fn sweep(path: Option<&Path>, data_dir: Option<PathBuf>, env: &HashMap<String, String>) -> anyhow::Result<ExitCode> {
    let (backends, responder, shutdown) = open(path, data_dir, env).await?;
    let result = responder.sweep_approvals(Utc::now()).await;
    responder.notifier.flush().await;
    shutdown.cancel();
    backends.close().await;
    let report = result?;
    println!(
        "approvals: {} notified, {} reminded, {} escalated, {} timed out",
        report.notified, report.reminded, report.escalated, report.timed_out
    );
    Ok(ExitCode::SUCCESS)
}
