//! The lifecycle of a false-positive pattern (FR-RAG-005, NFR-CMP-003, REQUIREMENTS "FP
//! governance"): `pending_review` → (distinct approvers) → `active` for [`FpPolicy::lifetime`],
//! extended by a reaffirmation, `expired` by the sweep once its time has passed, `revoked` for
//! good. Only approved or active, unexpired patterns ever close an alert (the store's
//! [`ContextStore::matchable_fp_patterns`]).
//!
//! # Audit events
//! Each approval is `fp_pattern.approved`; the approval that completes the quorum also records
//! `fp_pattern.activated`. A reaffirmation is a person approving the pattern again, so it is
//! `fp_pattern.approved` with `decision_type = "fp_pattern_reaffirmed"`. Revocation is
//! `fp_pattern.revoked`; expiry has no event of its own in the taxonomy and is the scheduler
//! withdrawing the pattern, so it is `fp_pattern.revoked` by actor type `scheduler` with
//! `decision_type = "fp_pattern_expired"`.

use std::collections::BTreeSet;
use std::sync::Arc;

use aluskort_audit::{AuditEvent, AuditLog};
use aluskort_store::{ContextStore, FpPattern, FpStatus};
use chrono::{DateTime, Utc};
use serde_json::json;

use super::{FeedbackError, FpPolicy, GLOBAL_AUDIT_TENANT};

/// Longest actor name accepted.
const MAX_ACTOR_CHARS: usize = 200;
/// Longest revocation reason kept.
const MAX_REASON_CHARS: usize = 2000;

/// A named actor: trimmed, not empty, no control characters.
pub(crate) fn actor_name(actor: &str) -> Result<String, FeedbackError> {
    let actor = actor.trim();
    if actor.is_empty() {
        return Err(FeedbackError::Invalid("an actor must be named".to_owned()));
    }
    if actor.chars().count() > MAX_ACTOR_CHARS || actor.chars().any(char::is_control) {
        return Err(FeedbackError::Invalid(format!("actor name {actor:?} is too long or has control characters")));
    }
    Ok(actor.to_owned())
}

/// Approvers are the same person when their names match ignoring case and surrounding space.
fn same_person(a: &str, b: &str) -> bool {
    a.trim().to_lowercase() == b.trim().to_lowercase()
}

fn distinct(approvers: &[String]) -> usize {
    approvers.iter().map(|name| name.trim().to_lowercase()).collect::<BTreeSet<_>>().len()
}

/// Approves, reaffirms, revokes and expires FP patterns, auditing each change.
pub struct FpGovernance {
    context: Arc<dyn ContextStore>,
    audit: Arc<AuditLog>,
    policy: FpPolicy,
}

impl FpGovernance {
    pub fn new(context: Arc<dyn ContextStore>, audit: Arc<AuditLog>, policy: FpPolicy) -> Self {
        FpGovernance { context, audit, policy }
    }

    async fn load(&self, pattern_id: &str) -> Result<FpPattern, FeedbackError> {
        self.context.fp_pattern(pattern_id).await?.ok_or_else(|| FeedbackError::NotFound(format!("fp pattern {pattern_id:?}")))
    }

    fn event(&self, pattern: &FpPattern, event_type: &'static str, actor: &str, now: DateTime<Utc>) -> AuditEvent {
        let tenant = pattern.tenant.as_deref().unwrap_or(GLOBAL_AUDIT_TENANT);
        let mut event = AuditEvent::agent(tenant, event_type, actor, now);
        event.actor_type = "human";
        event.context = json!({"fp_pattern_id": pattern.pattern_id, "fp_pattern_tenant": pattern.tenant});
        event.outcome = json!({
            "outcome_status": "success",
            "status": pattern.status.as_str(),
            "approved_by": pattern.approved_by,
            "approval_date": pattern.approval_date,
            "expires_at": pattern.expires_at,
        });
        event
    }

    /// Records `actor`'s approval of a pending (or expired: a new round) pattern. When
    /// [`FpPolicy::required_approvers`] distinct people have approved, the pattern becomes active
    /// from `now` until `now + lifetime`. The same person approving twice is refused.
    pub async fn approve(&self, pattern_id: &str, actor: &str, now: DateTime<Utc>) -> Result<FpPattern, FeedbackError> {
        let actor = actor_name(actor)?;
        let mut pattern = self.load(pattern_id).await?;
        let previous = pattern.clone();
        match pattern.status {
            FpStatus::PendingReview => {}
            FpStatus::Expired => {
                // An expired pattern goes through review again, from no approvals.
                pattern.status = FpStatus::PendingReview;
                pattern.approved_by.clear();
                pattern.approval_date = None;
                pattern.expires_at = None;
            }
            FpStatus::Approved | FpStatus::Active => {
                return Err(FeedbackError::Refused(format!(
                    "fp pattern {pattern_id:?} is already {}; reaffirm it to extend it",
                    pattern.status.as_str()
                )));
            }
            FpStatus::Revoked => {
                return Err(FeedbackError::Refused(format!("fp pattern {pattern_id:?} is revoked and cannot be approved")));
            }
            FpStatus::Shadow | FpStatus::Deprecated => {
                return Err(FeedbackError::Refused(format!(
                    "fp pattern {pattern_id:?} is {}; only pending_review or expired patterns are approved",
                    pattern.status.as_str()
                )));
            }
        }
        if pattern.approved_by.iter().any(|approver| same_person(approver, &actor)) {
            return Err(FeedbackError::Refused(format!(
                "{actor} has already approved fp pattern {pattern_id:?}: the next approval must come from someone else"
            )));
        }
        pattern.approved_by.push(actor.clone());
        let approvals = distinct(&pattern.approved_by);
        let required = self.policy.required_approvers.max(1);
        let activated = approvals >= required;
        if activated {
            pattern.status = FpStatus::Active;
            pattern.approval_date = Some(now);
            pattern.expires_at = Some(now + self.policy.lifetime);
        }
        self.context.replace_fp_pattern(&previous, &pattern).await?;
        let mut approved = self.event(&pattern, "fp_pattern.approved", &actor, now);
        approved.decision = json!({"decision_type": "fp_pattern_approval", "approvals": approvals, "required_approvers": required});
        if !activated {
            approved.outcome["outcome_status"] = json!("pending_approval");
        }
        self.audit.append(approved).await?;
        if activated {
            let mut event = self.event(&pattern, "fp_pattern.activated", &actor, now);
            event.decision = json!({"decision_type": "fp_pattern_activated", "approvals": approvals, "required_approvers": required});
            self.audit.append(event).await?;
        }
        Ok(pattern)
    }

    /// Extends an approved or active pattern that has not yet expired to `now + lifetime`.
    pub async fn reaffirm(&self, pattern_id: &str, actor: &str, now: DateTime<Utc>) -> Result<FpPattern, FeedbackError> {
        let actor = actor_name(actor)?;
        let mut pattern = self.load(pattern_id).await?;
        let previous = pattern.clone();
        if !pattern.status.is_matchable() {
            return Err(FeedbackError::Refused(format!(
                "fp pattern {pattern_id:?} is {}; only approved or active patterns are reaffirmed",
                pattern.status.as_str()
            )));
        }
        if let Some(expires) = pattern.expires_at
            && expires <= now
        {
            return Err(FeedbackError::Refused(format!(
                "fp pattern {pattern_id:?} expired at {}; it must be approved again",
                expires.to_rfc3339()
            )));
        }
        pattern.expires_at = Some(now + self.policy.lifetime);
        self.context.replace_fp_pattern(&previous, &pattern).await?;
        let mut event = self.event(&pattern, "fp_pattern.approved", &actor, now);
        event.decision = json!({"decision_type": "fp_pattern_reaffirmed", "previous_expires_at": previous.expires_at});
        self.audit.append(event).await?;
        Ok(pattern)
    }

    /// Revokes a pattern in any status but revoked; it never matches again.
    pub async fn revoke(&self, pattern_id: &str, actor: &str, reason: &str, now: DateTime<Utc>) -> Result<FpPattern, FeedbackError> {
        let actor = actor_name(actor)?;
        let reason = reason.trim();
        if reason.chars().count() > MAX_REASON_CHARS {
            return Err(FeedbackError::Invalid(format!("reason is longer than {MAX_REASON_CHARS} characters")));
        }
        let mut pattern = self.load(pattern_id).await?;
        let previous = pattern.clone();
        if pattern.status == FpStatus::Revoked {
            return Err(FeedbackError::Refused(format!("fp pattern {pattern_id:?} is already revoked")));
        }
        pattern.status = FpStatus::Revoked;
        pattern.reason = if reason.is_empty() {
            format!("{}; revoked by {actor}", pattern.reason)
        } else {
            format!("{}; revoked by {actor}: {reason}", pattern.reason)
        };
        self.context.replace_fp_pattern(&previous, &pattern).await?;
        let mut event = self.event(&pattern, "fp_pattern.revoked", &actor, now);
        event.decision =
            json!({"decision_type": "fp_pattern_revoked", "previous_status": previous.status.as_str(), "reasoning_summary": reason});
        self.audit.append(event).await?;
        Ok(pattern)
    }

    /// Marks every approved or active pattern whose `expires_at` is at or before `now` expired;
    /// returns them.
    pub async fn expire_due(&self, now: DateTime<Utc>) -> Result<Vec<FpPattern>, FeedbackError> {
        let mut expired = Vec::new();
        for status in [FpStatus::Approved, FpStatus::Active] {
            for mut pattern in self.context.fp_patterns(None, Some(status)).await? {
                let previous = pattern.clone();
                if pattern.expires_at.is_none_or(|expires| expires > now) {
                    continue;
                }
                pattern.status = FpStatus::Expired;
                match self.context.replace_fp_pattern(&previous, &pattern).await {
                    Ok(()) => {}
                    // Reaffirmed or revoked meanwhile: that decision stands.
                    Err(error) if error.kind == aluskort_store::StoreErrorKind::Conflict => continue,
                    Err(error) => return Err(error.into()),
                }
                let mut event = self.event(&pattern, "fp_pattern.revoked", "fp_expiry", now);
                event.actor_type = "scheduler";
                event.decision = json!({"decision_type": "fp_pattern_expired", "previous_status": status.as_str()});
                self.audit.append(event).await?;
                expired.push(pattern);
            }
        }
        Ok(expired)
    }
}
