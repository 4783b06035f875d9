//! `aluskort feedback` (FR-CSM-004) and `aluskort context approve-fp|reaffirm-fp|revoke-fp`
//! (FR-RAG-005, NFR-CMP-003): analyst feedback on an investigation, and the FP pattern lifecycle,
//! over the same store the server uses. Every change is audited. The lifecycle commands first
//! expire patterns whose time has passed, so what they report is current.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use aluskort_audit::AuditLog;
use aluskort_core::{Classification, InvestigationId};
use aluskort_respond::feedback::{FeedbackInput, FeedbackStores, FpGovernance, FpPolicy, FpProposal, MemoryUpdate, record_feedback};
use aluskort_store::FpPattern;
use chrono::Utc;

use crate::commands::context::{FP_MIN_APPROVERS, fp_default_lifetime};
use crate::wiring::{Backends, load_config};

/// The policy `context add-fp` enforces too.
fn policy() -> FpPolicy {
    FpPolicy { required_approvers: FP_MIN_APPROVERS, lifetime: fp_default_lifetime(), ..FpPolicy::default() }
}

fn stores(backends: &Backends) -> FeedbackStores {
    FeedbackStores {
        cases: Arc::clone(&backends.case_store),
        responses: Arc::clone(&backends.responses),
        context: Arc::clone(&backends.context),
        audit: Arc::new(AuditLog::new(Arc::clone(&backends.audit_store))),
        memory: backends.incident_memory.clone(),
        policy: policy(),
    }
}

/// `--classification` spelled as the verdicts are.
pub fn parse_classification(text: &str) -> anyhow::Result<Classification> {
    let all = [
        Classification::TruePositive,
        Classification::BenignTruePositive,
        Classification::FalsePositive,
        Classification::NeedsInvestigation,
    ];
    all.into_iter().find(|classification| classification.as_str() == text.trim()).ok_or_else(|| {
        let names: Vec<&str> = all.iter().map(|classification| classification.as_str()).collect();
        anyhow::anyhow!("--classification {text:?}: expected one of {}", names.join(", "))
    })
}

/// What an analyst gives on the command line.
pub struct FeedbackArgs {
    pub investigation_id: String,
    pub actor: String,
    pub correct: bool,
    pub rating: u8,
    pub comment: String,
    pub classification: Option<String>,
}

pub async fn run(
    path: Option<&Path>,
    data_dir: Option<PathBuf>,
    env: &HashMap<String, String>,
    args: FeedbackArgs,
) -> anyhow::Result<ExitCode> {
    let investigation_id = InvestigationId::parse(args.investigation_id.trim())
        .ok_or_else(|| anyhow::anyhow!("{:?} is not an investigation id (a UUID)", args.investigation_id))?;
    let corrected_classification = args.classification.as_deref().map(parse_classification).transpose()?;
    let input = FeedbackInput {
        investigation_id,
        actor: args.actor,
        correct: args.correct,
        rating: args.rating,
        comment: args.comment,
        corrected_classification,
    };
    let config = load_config(path, data_dir, env)?;
    let backends = Backends::open(&config).await?;
    let outcome = record_feedback(&stores(&backends), input, Utc::now()).await;
    backends.close().await;
    let outcome = outcome?;
    let feedback = &outcome.feedback;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "feedback {} stored for investigation {} (correct: {}, rating: {})",
        feedback.feedback_id, feedback.investigation_id, feedback.correct, feedback.rating
    )?;
    match &outcome.memory {
        MemoryUpdate::NotConfigured => writeln!(out, "incident memory: not configured")?,
        MemoryUpdate::Updated { classification } => writeln!(out, "incident memory: updated (classification {classification})")?,
        MemoryUpdate::Skipped(why) => writeln!(out, "incident memory: not updated ({why})")?,
        MemoryUpdate::Failed(why) => writeln!(out, "incident memory: update failed ({why})")?,
    }
    if outcome.confirmed_false_positives > 0 {
        writeln!(out, "confirmed false positives of this alert title in the last 30 days: {}", outcome.confirmed_false_positives)?;
    }
    match &outcome.proposal {
        None => {}
        Some(FpProposal::Created(pattern)) => {
            writeln!(out, "fp pattern proposed: {} (pending_review; needs {FP_MIN_APPROVERS} distinct approvers)", pattern.pattern_id)?;
        }
        Some(FpProposal::Exists { pattern_id, status }) => writeln!(out, "fp pattern {pattern_id} already exists ({})", status.as_str())?,
    }
    Ok(ExitCode::SUCCESS)
}

/// A lifecycle step on one pattern.
pub enum FpStep {
    Approve,
    Reaffirm,
    Revoke { reason: String },
}

pub async fn fp_step(
    path: Option<&Path>,
    data_dir: Option<PathBuf>,
    env: &HashMap<String, String>,
    pattern_id: &str,
    actor: &str,
    step: FpStep,
) -> anyhow::Result<ExitCode> {
    let config = load_config(path, data_dir, env)?;
    let backends = Backends::open(&config).await?;
    let stores = stores(&backends);
    let governance = FpGovernance::new(stores.context, stores.audit, stores.policy);
    let result = async {
        let now = Utc::now();
        let expired = governance.expire_due(now).await?;
        let pattern = match &step {
            FpStep::Approve => governance.approve(pattern_id, actor, now).await?,
            FpStep::Reaffirm => governance.reaffirm(pattern_id, actor, now).await?,
            FpStep::Revoke { reason } => governance.revoke(pattern_id, actor, reason, now).await?,
        };
        anyhow::Ok((expired, pattern))
    }
    .await;
    backends.close().await;
    let (expired, pattern) = result?;
    let mut out = std::io::stdout().lock();
    for lapsed in &expired {
        eprintln!("context: fp pattern {} expired (not reaffirmed within 90 days)", lapsed.pattern_id);
    }
    writeln!(out, "{}", describe(&pattern))?;
    Ok(ExitCode::SUCCESS)
}

fn describe(pattern: &FpPattern) -> String {
    let expires = pattern.expires_at.map_or_else(|| "never".to_owned(), |expires| expires.format("%Y-%m-%d %H:%M UTC").to_string());
    match pattern.status {
        aluskort_store::FpStatus::PendingReview => format!(
            "fp pattern {}: pending_review, approved by {} of {FP_MIN_APPROVERS} ({})",
            pattern.pattern_id,
            pattern.approved_by.len(),
            pattern.approved_by.join(", ")
        ),
        aluskort_store::FpStatus::Active | aluskort_store::FpStatus::Approved => format!(
            "fp pattern {}: {}, approved by {}; expires {expires}",
            pattern.pattern_id,
            pattern.status.as_str(),
            pattern.approved_by.join(", ")
        ),
        status => format!("fp pattern {}: {}", pattern.pattern_id, status.as_str()),
    }
}
