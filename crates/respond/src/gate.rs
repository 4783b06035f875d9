//! Approval gates (FR-RSP-002/003): who may decide, when enough people have, and what a passing
//! deadline does. Pure: the [`crate::service`] stores what these functions decide.

use aluskort_config::RespondConfig;
use aluskort_core::GraphState;
use aluskort_core::response::{Approval, ApprovalDecision, ApprovalStatus, PlannedAction};
use chrono::{DateTime, Utc};

/// Opens the approval for an investigation that waits for a human: its gated actions (may be
/// none when only the verdict needs confirming), two approvers when any action's tier reaches
/// `four_eyes_tier`, and the deadline of its severity (tenant override first).
pub fn open(state: &GraphState, actions: Vec<PlannedAction>, reason: &str, config: &RespondConfig, now: DateTime<Utc>) -> Approval {
    let severity = if state.severity.is_empty() { "unknown".to_owned() } else { state.severity.clone() };
    let timeout = config.timeouts_for(state.tenant_id.as_str()).for_severity(&severity);
    let four_eyes = actions.iter().any(|action| action.tier >= config.four_eyes_tier);
    Approval {
        approval_id: uuid::Uuid::now_v7().to_string(),
        tenant_id: state.tenant_id.to_string(),
        investigation_id: state.investigation_id.to_string(),
        alert_id: state.alert_id.to_string(),
        incident_id: state.incident_id.clone(),
        severity,
        status: ApprovalStatus::Pending,
        reason: reason.to_owned(),
        actions,
        required_approvers: if four_eyes { 2 } else { 1 },
        decisions: Vec::new(),
        requested_at: now,
        deadline: now + chrono::Duration::from_std(timeout).unwrap_or(chrono::Duration::hours(4)),
        notified_at: None,
        reminded_at: None,
        escalated_at: None,
        decided_at: None,
        version: 1,
    }
}

/// Longest actor name accepted.
pub const MAX_ACTOR_CHARS: usize = 256;
/// Longest comment accepted (it is copied into the audit trail).
pub const MAX_COMMENT_CHARS: usize = 4096;

/// What a person decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Reject,
}

impl Decision {
    pub const fn as_str(self) -> &'static str {
        match self {
            Decision::Approve => "approve",
            Decision::Reject => "reject",
        }
    }
}

/// Why a decision was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecideError {
    #[error("approval {id} is {status}, not pending: it was already decided")]
    NotPending { id: String, status: &'static str },
    #[error("the actor must be named")]
    NoActor,
    #[error("the actor must be at most {MAX_ACTOR_CHARS} characters without control characters")]
    BadActor,
    #[error("the comment must be at most {MAX_COMMENT_CHARS} characters")]
    LongComment,
    #[error("{actor} already approved {id}; four-eyes approval needs a second, different person")]
    SameApprover { actor: String, id: String },
}

/// Applies one person's decision. A rejection by anyone decides; approvals decide once the
/// required number of distinct people approved, else the approval stays pending for the next.
pub fn decide(approval: &Approval, actor: &str, decision: Decision, comment: &str, now: DateTime<Utc>) -> Result<Approval, DecideError> {
    if approval.status != ApprovalStatus::Pending {
        return Err(DecideError::NotPending { id: approval.approval_id.clone(), status: approval.status.as_str() });
    }
    let actor = actor.trim();
    if actor.is_empty() {
        return Err(DecideError::NoActor);
    }
    if actor.len() > MAX_ACTOR_CHARS || actor.chars().any(char::is_control) {
        return Err(DecideError::BadActor);
    }
    if comment.chars().count() > MAX_COMMENT_CHARS {
        return Err(DecideError::LongComment);
    }
    // The same person however they spell their name: four-eyes means two people.
    if decision == Decision::Approve && approval.approvers().iter().any(|known| known.eq_ignore_ascii_case(actor)) {
        return Err(DecideError::SameApprover { actor: actor.to_owned(), id: approval.approval_id.clone() });
    }
    let mut next = approval.clone();
    next.decisions.push(ApprovalDecision {
        actor: actor.to_owned(),
        decision: decision.as_str().to_owned(),
        comment: comment.to_owned(),
        at: now,
    });
    next.version += 1;
    match decision {
        Decision::Reject => {
            next.status = ApprovalStatus::Rejected;
            next.decided_at = Some(now);
        }
        Decision::Approve if next.approvers().len() >= usize::from(next.required_approvers) => {
            next.status = ApprovalStatus::Approved;
            next.decided_at = Some(now);
        }
        Decision::Approve => {}
    }
    Ok(next)
}

/// What the clock does to a pending approval.
#[derive(Debug, Clone, PartialEq)]
pub enum Due {
    /// Nothing yet.
    Nothing,
    /// Half the time has passed: remind the approvers once.
    Remind(Approval),
    /// Critical/high past the deadline: stays pending and escalates (`approval.escalated`), due again
    /// one period later.
    Escalate(Approval),
    /// Medium/low/unknown past the deadline: closed without a decision (`approval.timed_out`).
    TimeOut(Approval),
}

/// FR-RSP-003 (decisions table): at 50 % of the time a reminder; at the deadline critical and
/// high escalate and stay pending, everything else times out.
pub fn due(approval: &Approval, now: DateTime<Utc>) -> Due {
    if approval.status != ApprovalStatus::Pending {
        return Due::Nothing;
    }
    let mut next = approval.clone();
    next.version += 1;
    if now >= approval.deadline {
        if matches!(approval.severity.as_str(), "critical" | "high") {
            // Escalated, still pending, and due again one period later: an undecided critical
            // approval escalates every period until someone decides.
            let period = approval.deadline - approval.escalated_at.unwrap_or(approval.requested_at);
            next.escalated_at = Some(now);
            next.deadline = now + period.max(chrono::Duration::hours(1));
            return Due::Escalate(next);
        }
        next.status = ApprovalStatus::TimedOut;
        next.decided_at = Some(now);
        return Due::TimeOut(next);
    }
    let half = approval.requested_at + (approval.deadline - approval.requested_at) / 2;
    if now >= half && approval.reminded_at.is_none() {
        next.reminded_at = Some(now);
        return Due::Remind(next);
    }
    Due::Nothing
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use aluskort_core::{AlertId, DegradationLevel, TenantId};

    use super::*;

    fn action(tier: u8) -> PlannedAction {
        PlannedAction {
            step_key: format!("pb/s{tier}/h"),
            playbook_id: "pb".into(),
            step_id: format!("s{tier}"),
            action: "defender.isolate_machine".into(),
            target: "h".into(),
            params: Default::default(),
            tier,
            destructive: true,
            reversible: true,
            description: String::new(),
        }
    }

    fn state(severity: &str, tenant: &str) -> GraphState {
        let tenant = TenantId::parse(tenant).expect("tenant");
        let mut state = GraphState::new(AlertId::parse("a-1").expect("id"), tenant, DegradationLevel::Full, Utc::now());
        state.severity = severity.to_owned();
        state
    }

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-06T10:00:00Z").expect("time").with_timezone(&Utc)
    }

    #[test]
    fn deadlines_follow_severity_and_tenant_overrides_fr_rsp_003() {
        let mut config = RespondConfig::default();
        let mut acme = config.approval_timeouts;
        acme.critical = Duration::from_secs(3 * 3600);
        config.tenant_timeouts.insert("acme".into(), acme);
        for (severity, hours) in [("critical", 1), ("high", 2), ("medium", 4), ("low", 8), ("", 4), ("informational", 4)] {
            let approval = open(&state(severity, "default"), vec![], "r", &config, t0());
            assert_eq!(approval.deadline - t0(), chrono::Duration::hours(hours), "{severity:?}");
        }
        let approval = open(&state("critical", "acme"), vec![], "r", &config, t0());
        assert_eq!(approval.deadline - t0(), chrono::Duration::hours(3));
    }

    #[test]
    fn four_eyes_needs_two_distinct_approvers_for_tier_three() {
        let config = RespondConfig::default();
        let single = open(&state("high", "default"), vec![action(2)], "r", &config, t0());
        assert_eq!(single.required_approvers, 1);
        let approved = decide(&single, "alice", Decision::Approve, "", t0()).expect("decide");
        assert_eq!(approved.status, ApprovalStatus::Approved);

        let gated = open(&state("high", "default"), vec![action(2), action(3)], "r", &config, t0());
        assert_eq!(gated.required_approvers, 2);
        let first = decide(&gated, "alice", Decision::Approve, "ok", t0()).expect("first");
        assert_eq!(first.status, ApprovalStatus::Pending, "one approver is not enough");
        assert_eq!(
            decide(&first, " Alice ", Decision::Approve, "again", t0()),
            Err(DecideError::SameApprover { actor: "Alice".into(), id: gated.approval_id.clone() })
        );
        assert_eq!(decide(&first, "bob\u{7}", Decision::Approve, "", t0()), Err(DecideError::BadActor));
        assert_eq!(decide(&first, "bob", Decision::Approve, &"x".repeat(4097), t0()), Err(DecideError::LongComment));
        let second = decide(&first, "bob", Decision::Approve, "ok", t0()).expect("second");
        assert_eq!(second.status, ApprovalStatus::Approved);
        assert_eq!(second.version, gated.version + 2);
        assert!(matches!(decide(&second, "carol", Decision::Reject, "", t0()), Err(DecideError::NotPending { .. })));
        assert_eq!(decide(&gated, "  ", Decision::Approve, "", t0()), Err(DecideError::NoActor));
    }

    #[test]
    fn one_rejection_decides() {
        let gated = open(&state("high", "default"), vec![action(3)], "r", &RespondConfig::default(), t0());
        let first = decide(&gated, "alice", Decision::Approve, "", t0()).expect("first");
        let rejected = decide(&first, "bob", Decision::Reject, "wrong host", t0()).expect("reject");
        assert_eq!(rejected.status, ApprovalStatus::Rejected);
        assert_eq!(rejected.decisions.last().map(|d| d.comment.as_str()), Some("wrong host"));
    }

    #[test]
    fn reminder_at_half_then_escalation_or_timeout_by_severity() {
        let config = RespondConfig::default();
        let high = open(&state("high", "default"), vec![action(2)], "r", &config, t0());
        assert_eq!(due(&high, t0() + chrono::Duration::minutes(59)), Due::Nothing);
        let Due::Remind(reminded) = due(&high, t0() + chrono::Duration::minutes(60)) else { panic!("reminder at 50 %") };
        assert_eq!(due(&reminded, t0() + chrono::Duration::minutes(90)), Due::Nothing, "one reminder");
        let Due::Escalate(escalated) = due(&reminded, t0() + chrono::Duration::hours(2)) else { panic!("high escalates") };
        assert_eq!(escalated.status, ApprovalStatus::Pending, "an escalated approval stays pending");
        assert_eq!(escalated.deadline, t0() + chrono::Duration::hours(4), "due again one period (2 h) later");
        assert_eq!(due(&escalated, t0() + chrono::Duration::hours(3)), Due::Nothing, "not again within the period");
        let Due::Escalate(again) = due(&escalated, t0() + chrono::Duration::hours(4)) else { panic!("escalates again") };
        assert_eq!(again.deadline, t0() + chrono::Duration::hours(6));

        let medium = open(&state("medium", "default"), vec![], "r", &config, t0());
        let Due::TimeOut(timed_out) = due(&medium, t0() + chrono::Duration::hours(4)) else { panic!("medium times out") };
        assert_eq!(timed_out.status, ApprovalStatus::TimedOut);
        assert_eq!(due(&timed_out, t0() + chrono::Duration::hours(9)), Due::Nothing);
    }
}
