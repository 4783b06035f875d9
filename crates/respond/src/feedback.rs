//! Analyst feedback and the false-positive patterns it leads to (FR-CSM-004, FR-RAG-005,
//! NFR-CMP-003, REQUIREMENTS "FP governance").
//!
//! [`record_feedback`] validates `{correct, rating 1..=5, comment}` on an investigation, stores it,
//! audits it, corrects incident memory, and — when at least [`FpPolicy::proposal_threshold`]
//! investigations of the tenant with the same alert title were confirmed false positives within
//! [`FpPolicy::proposal_window`] — proposes one FP pattern in `pending_review`. A pending pattern
//! never closes an alert: [`governance::FpGovernance`] approves it (distinct approvers), reaffirms,
//! revokes and expires it.
//!
//! # Audit events
//! The taxonomy (REQUIREMENTS §3.8) has no feedback event, and its record format puts
//! `analyst_feedback_*` fields in `outcome{}`. Feedback is therefore audited as `alert.classified`
//! by the human analyst with `decision.decision_type = "analyst_feedback"`: it is a (re)classification
//! of the alert by a person. Proposals are `fp_pattern.created`.

pub mod governance;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use aluskort_audit::chain::AuditError;
use aluskort_audit::{AuditEvent, AuditLog};
use aluskort_core::{Classification, GraphState, InvestigationId, InvestigationState};
use aluskort_knowledge::memory::{IncidentMemory, PastIncident};
use aluskort_store::model::DEFAULT_FP_CONFIDENCE_THRESHOLD;
use aluskort_store::{CaseStore, ContextStore, EntityPattern, Feedback, FpPattern, FpStatus, ResponseStore, StoreError};
use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use sha2::{Digest, Sha256};

pub use governance::FpGovernance;

/// Longest comment kept (characters).
pub const MAX_COMMENT_CHARS: usize = 4000;
/// Investigations looked at per proposal check, newest feedback first: bounds the reads.
const MAX_PROPOSAL_SCAN: usize = 1000;
/// Host entity patterns a proposal carries at most.
const MAX_PROPOSED_HOSTS: usize = 3;
/// The audit chain of patterns that apply to every tenant.
pub const GLOBAL_AUDIT_TENANT: &str = "default";

/// FP governance settings (REQUIREMENTS "FP governance").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FpPolicy {
    /// Distinct approvers before a pattern becomes active (2: `approved_by_1 ≠ approved_by_2`).
    pub required_approvers: usize,
    /// How long an approval or reaffirmation lasts (90 days).
    pub lifetime: Duration,
    /// Confirmed false positives with one alert title that propose a pattern (3).
    pub proposal_threshold: usize,
    /// How far back confirmations count (30 days).
    pub proposal_window: Duration,
}

impl Default for FpPolicy {
    fn default() -> Self {
        FpPolicy { required_approvers: 2, lifetime: Duration::days(90), proposal_threshold: 3, proposal_window: Duration::days(30) }
    }
}

/// What feedback, proposals and the pattern lifecycle read and write.
#[derive(Clone)]
pub struct FeedbackStores {
    pub cases: Arc<dyn CaseStore>,
    pub responses: Arc<dyn ResponseStore>,
    pub context: Arc<dyn ContextStore>,
    pub audit: Arc<AuditLog>,
    /// Incident memory, when configured: corrected classifications are written back to it.
    pub memory: Option<Arc<IncidentMemory>>,
    pub policy: FpPolicy,
}

/// Feedback as an analyst gives it.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedbackInput {
    pub investigation_id: InvestigationId,
    pub actor: String,
    /// Whether the investigation's verdict was right.
    pub correct: bool,
    /// 1..=5.
    pub rating: u8,
    pub comment: String,
    /// The right classification, when `correct` is false.
    pub corrected_classification: Option<Classification>,
}

#[derive(Debug, thiserror::Error)]
pub enum FeedbackError {
    /// The request itself is wrong (rating, actor, classification).
    #[error("invalid feedback: {0}")]
    Invalid(String),
    #[error("{0} not found")]
    NotFound(String),
    /// Refused by the FP governance rules (same approver twice, revoked pattern, ...).
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("stored, but the audit record failed: {0}")]
    Audit(#[from] AuditError),
}

/// What became of incident memory.
#[derive(Debug, Clone, PartialEq)]
pub enum MemoryUpdate {
    /// No incident memory is configured.
    NotConfigured,
    /// The incident was stored again with this classification (memory has no in-place update, so
    /// the investigation is re-remembered under its id, replacing the earlier entry).
    Updated { classification: Classification },
    /// Nothing to write, and why.
    Skipped(String),
    /// The write failed (the feedback itself is stored).
    Failed(String),
}

/// The FP pattern feedback led to.
#[derive(Debug, Clone, PartialEq)]
pub enum FpProposal {
    /// A new pattern in `pending_review`.
    Created(FpPattern),
    /// The pattern for this tenant and title exists already (in this status) and was left as it is.
    Exists { pattern_id: String, status: FpStatus },
}

/// What [`record_feedback`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedbackOutcome {
    pub feedback: Feedback,
    pub memory: MemoryUpdate,
    /// Confirmed false positives of this alert title in the window, this one included (0 when this
    /// feedback does not confirm a false positive).
    pub confirmed_false_positives: usize,
    pub proposal: Option<FpProposal>,
}

/// The classification feedback says is right: the verdict when it was correct, else the correction.
pub fn effective_classification(feedback: &Feedback, verdict: Option<Classification>) -> Option<Classification> {
    if feedback.correct { verdict } else { feedback.corrected_classification }
}

/// The id of the pattern proposed for alerts titled `title` of `tenant`: the same for every
/// proposal, so repeated feedback never creates a second one.
pub fn proposal_id(tenant: &str, title: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(tenant.as_bytes());
    hasher.update([0]);
    hasher.update(title.trim().as_bytes());
    let digest = hex::encode(hasher.finalize());
    format!("fp-auto-{}", &digest[..16])
}

/// Stores analyst feedback on an investigation, audits it, corrects incident memory and proposes an
/// FP pattern when enough false positives of the same alert title were confirmed.
pub async fn record_feedback(stores: &FeedbackStores, input: FeedbackInput, now: DateTime<Utc>) -> Result<FeedbackOutcome, FeedbackError> {
    if !(1..=5).contains(&input.rating) {
        return Err(FeedbackError::Invalid(format!("rating {} is not in 1..=5", input.rating)));
    }
    let actor = governance::actor_name(&input.actor)?;
    if input.comment.chars().count() > MAX_COMMENT_CHARS {
        return Err(FeedbackError::Invalid(format!("comment is longer than {MAX_COMMENT_CHARS} characters")));
    }
    if input.correct && input.corrected_classification.is_some() {
        return Err(FeedbackError::Invalid("a corrected classification goes with correct = false".to_owned()));
    }
    let state = stores
        .cases
        .investigation(input.investigation_id)
        .await?
        .ok_or_else(|| FeedbackError::NotFound(format!("investigation {}", input.investigation_id)))?;
    let feedback = Feedback {
        feedback_id: uuid::Uuid::new_v4().to_string(),
        tenant_id: state.tenant_id.to_string(),
        investigation_id: state.investigation_id.to_string(),
        actor,
        correct: input.correct,
        rating: input.rating,
        comment: input.comment.trim().to_owned(),
        corrected_classification: input.corrected_classification,
        created_at: now,
    };
    stores.responses.insert_feedback(&feedback).await?;
    stores.audit.append(feedback_event(&feedback, &state)).await?;

    let memory = update_memory(stores.memory.as_deref(), &feedback, &state).await;
    let confirms = effective_classification(&feedback, state.classification) == Some(Classification::FalsePositive);
    let (confirmed_false_positives, proposal) = if confirms { propose(stores, &state, now).await? } else { (0, None) };
    Ok(FeedbackOutcome { feedback, memory, confirmed_false_positives, proposal })
}

fn feedback_event(feedback: &Feedback, state: &GraphState) -> AuditEvent {
    let mut event = AuditEvent::agent(&feedback.tenant_id, "alert.classified", &feedback.actor, feedback.created_at);
    event.actor_type = "human";
    event.investigation_id = Some(feedback.investigation_id.clone());
    event.alert_id = Some(state.alert_id.to_string());
    event.context = json!({"feedback_id": feedback.feedback_id});
    event.decision = json!({
        "decision_type": "analyst_feedback",
        "classification": effective_classification(feedback, state.classification).map(Classification::as_str),
        "original_classification": state.classification.map(Classification::as_str),
    });
    event.outcome = json!({
        "outcome_status": "success",
        "analyst_feedback_correct": feedback.correct,
        "analyst_feedback_rating": feedback.rating,
        "analyst_feedback_comment": feedback.comment,
        "analyst_feedback_classification": feedback.corrected_classification.map(Classification::as_str),
    });
    event
}

async fn update_memory(memory: Option<&IncidentMemory>, feedback: &Feedback, state: &GraphState) -> MemoryUpdate {
    let Some(memory) = memory else { return MemoryUpdate::NotConfigured };
    if state.state != InvestigationState::Closed {
        return MemoryUpdate::Skipped(format!("the investigation is {}, memory takes it when it closes", state.state));
    }
    let Some(classification) = effective_classification(feedback, state.classification) else {
        return MemoryUpdate::Skipped("the verdict is disputed without a corrected classification".to_owned());
    };
    // The same record the pipeline remembers on closing, with the analyst's classification.
    let incident = PastIncident {
        id: state.investigation_id.to_string(),
        tenant: state.tenant_id.to_string(),
        incident_id: state.incident_id.clone(),
        summary: state.case_facts.get("memory_summary").and_then(|value| value.as_str()).unwrap_or_default().to_owned(),
        techniques: state.techniques.clone(),
        classification: classification.as_str().to_owned(),
        closed_at: state.updated_at,
        rare_important: classification == Classification::TruePositive && matches!(state.severity.as_str(), "critical" | "high"),
    };
    match memory.remember(incident).await {
        Ok(()) => MemoryUpdate::Updated { classification },
        Err(error) => MemoryUpdate::Failed(format!("{error:#}")),
    }
}

/// Counts the tenant's investigations titled like `state`'s alert that feedback in the window
/// confirmed as false positives (each judged by its latest feedback) and proposes a pattern at the
/// threshold.
async fn propose(stores: &FeedbackStores, state: &GraphState, now: DateTime<Utc>) -> Result<(usize, Option<FpProposal>), FeedbackError> {
    let tenant = state.tenant_id.as_str();
    let Some(alert) = stores.cases.alert(&state.tenant_id, &state.alert_id).await? else { return Ok((0, None)) };
    let title = alert.title.trim().to_owned();
    if title.is_empty() {
        return Ok((0, None));
    }
    let mut latest: BTreeMap<String, Feedback> = BTreeMap::new();
    for feedback in stores.responses.feedback_since(tenant, now - stores.policy.proposal_window).await? {
        latest.insert(feedback.investigation_id.clone(), feedback);
    }
    let mut newest_first: Vec<Feedback> = latest.into_values().collect();
    newest_first.sort_by_key(|feedback| std::cmp::Reverse(feedback.created_at));
    let mut confirmed: Vec<(String, BTreeSet<String>)> = Vec::new();
    for feedback in newest_first.into_iter().take(MAX_PROPOSAL_SCAN) {
        let Some(id) = InvestigationId::parse(&feedback.investigation_id) else { continue };
        let Some(investigation) = stores.cases.investigation(id).await? else { continue };
        if effective_classification(&feedback, investigation.classification) != Some(Classification::FalsePositive) {
            continue;
        }
        let same_title = if investigation.alert_id == state.alert_id {
            true
        } else {
            let other = stores.cases.alert(&investigation.tenant_id, &investigation.alert_id).await?;
            other.is_some_and(|other| other.title.trim() == title)
        };
        if same_title {
            let hosts = investigation.entities.hosts.iter().filter_map(aluskort_core::entity::Host::short_name).collect();
            confirmed.push((feedback.investigation_id, hosts));
        }
    }
    let count = confirmed.len();
    if count < stores.policy.proposal_threshold {
        return Ok((count, None));
    }
    let pattern_id = proposal_id(tenant, &title);
    if let Some(existing) = stores.context.fp_pattern(&pattern_id).await? {
        return Ok((count, Some(FpProposal::Exists { pattern_id, status: existing.status })));
    }
    let pattern = proposed_pattern(pattern_id, tenant, &title, &confirmed, now);
    stores.context.upsert_fp_pattern(&pattern).await?;
    let mut event = AuditEvent::agent(tenant, "fp_pattern.created", "fp_proposer", now);
    event.actor_type = "system";
    event.investigation_id = Some(state.investigation_id.to_string());
    event.alert_id = Some(state.alert_id.to_string());
    event.entity_ids = confirmed.iter().map(|(id, _)| id.clone()).collect();
    event.decision = json!({
        "decision_type": "fp_pattern_proposed",
        "fp_pattern_id": pattern.pattern_id,
        "reasoning_summary": pattern.reason,
        "alert_name_regex": pattern.alert_name_regex,
        "entity_patterns": pattern.entity_patterns,
    });
    event.outcome = json!({"outcome_status": "pending_approval", "status": pattern.status.as_str()});
    stores.audit.append(event).await?;
    Ok((count, Some(FpProposal::Created(pattern))))
}

/// A pending pattern for `title`, with a host condition for each host every confirmed
/// investigation shares (none when they have no host in common).
fn proposed_pattern(
    pattern_id: String,
    tenant: &str,
    title: &str,
    confirmed: &[(String, BTreeSet<String>)],
    now: DateTime<Utc>,
) -> FpPattern {
    let mut common: Option<BTreeSet<String>> = None;
    for (_, hosts) in confirmed {
        common = Some(match common {
            None => hosts.clone(),
            Some(so_far) => so_far.intersection(hosts).cloned().collect(),
        });
    }
    let entity_patterns = common
        .unwrap_or_default()
        .into_iter()
        .take(MAX_PROPOSED_HOSTS)
        // Short name, or the same host under any domain suffix (values are matched ignoring case).
        .map(|host| EntityPattern { entity_type: "host".to_owned(), pattern: format!("^{}(\\.|$)", regex::escape(&host)) })
        .collect();
    let mut ids: Vec<&str> = confirmed.iter().map(|(id, _)| id.as_str()).collect();
    ids.sort_unstable();
    FpPattern {
        pattern_id,
        tenant: Some(tenant.to_owned()),
        name: format!("proposed: {title}"),
        alert_name_regex: Some(format!("^{}$", regex::escape(title))),
        entity_patterns,
        confidence_threshold: DEFAULT_FP_CONFIDENCE_THRESHOLD,
        status: FpStatus::PendingReview,
        approved_by: Vec::new(),
        approval_date: None,
        expires_at: None,
        created_at: now,
        reason: format!(
            "proposed after {} investigations of {title:?} were confirmed false positives by analyst feedback: {}",
            confirmed.len(),
            ids.join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_proposal_id_depends_on_tenant_and_title_only() {
        assert_eq!(proposal_id("acme", "Backup failed"), proposal_id("acme", " Backup failed "));
        assert_ne!(proposal_id("acme", "Backup failed"), proposal_id("globex", "Backup failed"));
        assert_ne!(proposal_id("acme", "Backup failed"), proposal_id("acme", "Backup failed!"));
        assert!(proposal_id("acme", "x").starts_with("fp-auto-") && proposal_id("acme", "x").len() == 24);
    }

    #[test]
    fn proposals_keep_only_the_hosts_every_confirmation_shares() {
        let hosts = |names: &[&str]| names.iter().map(|name| (*name).to_owned()).collect::<BTreeSet<_>>();
        let confirmed = vec![
            ("i-1".to_owned(), hosts(&["bkp-01", "ws-01"])),
            ("i-2".to_owned(), hosts(&["bkp-01"])),
            ("i-3".to_owned(), hosts(&["bkp-01", "ws-02"])),
        ];
        let pattern = proposed_pattern("fp-x".to_owned(), "acme", "Backup (nightly) failed", &confirmed, Utc::now());
        assert_eq!(pattern.alert_name_regex.as_deref(), Some("^Backup \\(nightly\\) failed$"));
        assert_eq!(pattern.entity_patterns, vec![EntityPattern { entity_type: "host".to_owned(), pattern: "^bkp\\-01(\\.|$)".to_owned() }]);
        assert_eq!(pattern.status, FpStatus::PendingReview);
        let disjoint = vec![("i-1".to_owned(), hosts(&["a"])), ("i-2".to_owned(), hosts(&["b"]))];
        assert!(proposed_pattern("fp-y".to_owned(), "acme", "t", &disjoint, Utc::now()).entity_patterns.is_empty());
    }
}
