//! Response plans, approvals and action executions (FR-RSP-001..004): the data the respond crate
//! and the stores share.
//!
//! A plan is a list of [`PlannedAction`]s instantiated from playbooks for one investigation. Each
//! action runs at most once, keyed by [`execution_key`] of (investigation, step key, approval).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One concrete step of a response plan: a playbook step applied to one target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedAction {
    /// Stable within the investigation: `<playbook>/<step>/<target>`.
    pub step_key: String,
    pub playbook_id: String,
    pub step_id: String,
    /// Executor name: `defender.isolate_machine`, `entra.disable_user`, `webhook.<name>`, ...
    pub action: String,
    /// What it applies to (host, UPN, IP, hash, ...); empty for investigation-wide steps.
    pub target: String,
    /// Parameters with every template rendered.
    #[serde(default)]
    pub params: serde_json::Map<String, serde_json::Value>,
    /// 0 automatic, 1 automatic when confident (FR-RSP-006), 2+ needs approval (FR-RSP-001).
    pub tier: u8,
    pub destructive: bool,
    pub reversible: bool,
    /// What the step does and why, for the approver.
    pub description: String,
}

impl PlannedAction {
    /// FR-RSP-002: destructive actions always need approval; tier 2+ always does.
    pub fn needs_approval(&self) -> bool {
        self.destructive || self.tier >= 2
    }
}

/// The idempotency key of one execution: hex SHA-256 of the length-prefixed investigation id, step key
/// and approval id
/// (`auto` for steps that run without approval). Retries and redeliveries of the same execution
/// produce the same key; the store holds at most one execution per key.
pub fn execution_key(investigation_id: &str, step_key: &str, approval_id: Option<&str>) -> String {
    let mut hasher = Sha256::new();
    for part in [investigation_id, step_key, approval_id.unwrap_or("auto")] {
        // Length-prefixed, so no choice of parts can collide with another by shifting a boundary.
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// Where an approval stands (FR-RSP-003).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalStatus {
    /// Waiting for a human; may have been escalated.
    Pending,
    Approved,
    Rejected,
    /// Closed without a decision (medium/low severity past the deadline).
    TimedOut,
}

impl ApprovalStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            ApprovalStatus::Pending => "pending",
            ApprovalStatus::Approved => "approved",
            ApprovalStatus::Rejected => "rejected",
            ApprovalStatus::TimedOut => "timed_out",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(ApprovalStatus::Pending),
            "approved" => Some(ApprovalStatus::Approved),
            "rejected" => Some(ApprovalStatus::Rejected),
            "timed_out" => Some(ApprovalStatus::TimedOut),
            _ => None,
        }
    }
}

/// One person's decision on an approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalDecision {
    pub actor: String,
    /// `approve` or `reject`.
    pub decision: String,
    #[serde(default)]
    pub comment: String,
    pub at: DateTime<Utc>,
}

/// A request for a human decision on an investigation awaiting one: its gated actions (may be
/// none, when only the verdict needs confirming) and the decisions taken so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Approval {
    pub approval_id: String,
    pub tenant_id: String,
    pub investigation_id: String,
    pub alert_id: String,
    #[serde(default)]
    pub incident_id: Option<String>,
    /// Severity the deadline was set from.
    pub severity: String,
    pub status: ApprovalStatus,
    /// Why a human is asked.
    pub reason: String,
    pub actions: Vec<PlannedAction>,
    /// Distinct approvers needed (2 for four-eyes steps).
    pub required_approvers: u8,
    pub decisions: Vec<ApprovalDecision>,
    pub requested_at: DateTime<Utc>,
    pub deadline: DateTime<Utc>,
    /// When the request was sent to the notification targets.
    #[serde(default)]
    pub notified_at: Option<DateTime<Utc>>,
    /// When the 50 % reminder went out.
    #[serde(default)]
    pub reminded_at: Option<DateTime<Utc>>,
    /// When the deadline passed on a critical/high approval, which then stays pending.
    #[serde(default)]
    pub escalated_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub decided_at: Option<DateTime<Utc>>,
    /// Optimistic version: incremented on every write.
    pub version: u64,
}

impl Approval {
    /// Distinct actors who approved.
    pub fn approvers(&self) -> Vec<&str> {
        let mut actors: Vec<&str> = self.decisions.iter().filter(|d| d.decision == "approve").map(|d| d.actor.as_str()).collect();
        actors.sort_unstable();
        actors.dedup();
        actors
    }
}

/// Where one execution stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionStatus {
    /// Queued; no worker has it.
    Pending,
    /// A worker holds it until `lease_until`; past that it is in doubt and may be checked and retried.
    Running,
    Succeeded,
    /// Gave up (permanent error or retries exhausted).
    Failed,
    /// Dry-run: recorded what would have been sent.
    DryRun,
}

impl ExecutionStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            ExecutionStatus::Pending => "pending",
            ExecutionStatus::Running => "running",
            ExecutionStatus::Succeeded => "succeeded",
            ExecutionStatus::Failed => "failed",
            ExecutionStatus::DryRun => "dry_run",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(ExecutionStatus::Pending),
            "running" => Some(ExecutionStatus::Running),
            "succeeded" => Some(ExecutionStatus::Succeeded),
            "failed" => Some(ExecutionStatus::Failed),
            "dry_run" => Some(ExecutionStatus::DryRun),
            _ => None,
        }
    }

    pub const fn is_terminal(self) -> bool {
        matches!(self, ExecutionStatus::Succeeded | ExecutionStatus::Failed | ExecutionStatus::DryRun)
    }
}

/// One execution of one planned action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Execution {
    /// [`execution_key`].
    pub execution_key: String,
    pub tenant_id: String,
    pub investigation_id: String,
    #[serde(default)]
    pub approval_id: Option<String>,
    pub action: PlannedAction,
    pub status: ExecutionStatus,
    pub attempts: u32,
    #[serde(default)]
    pub lease_until: Option<DateTime<Utc>>,
    /// What was (or, in dry-run, would have been) sent, without secrets.
    #[serde(default)]
    pub request: Option<serde_json::Value>,
    #[serde(default)]
    pub result: Option<serde_json::Value>,
    #[serde(default)]
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Execution {
    pub fn queued(tenant_id: &str, investigation_id: &str, approval_id: Option<&str>, action: PlannedAction, now: DateTime<Utc>) -> Self {
        Execution {
            execution_key: execution_key(investigation_id, &action.step_key, approval_id),
            tenant_id: tenant_id.to_owned(),
            investigation_id: investigation_id.to_owned(),
            approval_id: approval_id.map(str::to_owned),
            action,
            status: ExecutionStatus::Pending,
            attempts: 0,
            lease_until: None,
            request: None,
            result: None,
            error: None,
            created_at: now,
            updated_at: now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_execution_key_depends_on_every_part_and_nothing_else() {
        let base = execution_key("inv-1", "pb/isolate/host1", Some("appr-1"));
        assert_eq!(base, execution_key("inv-1", "pb/isolate/host1", Some("appr-1")));
        assert_eq!(base.len(), 64);
        assert_ne!(base, execution_key("inv-2", "pb/isolate/host1", Some("appr-1")));
        assert_ne!(base, execution_key("inv-1", "pb/isolate/host2", Some("appr-1")));
        assert_ne!(base, execution_key("inv-1", "pb/isolate/host1", Some("appr-2")));
        assert_ne!(base, execution_key("inv-1", "pb/isolate/host1", None));
        // Shifting a boundary between parts changes the key.
        assert_ne!(execution_key("a", "b\nc", None), execution_key("a\nb", "c", None));
    }

    #[test]
    fn destructive_or_tier_two_actions_need_approval_fr_rsp_002() {
        let action = |tier, destructive| PlannedAction {
            step_key: "p/s/t".into(),
            playbook_id: "p".into(),
            step_id: "s".into(),
            action: "webhook.x".into(),
            target: "t".into(),
            params: Default::default(),
            tier,
            destructive,
            reversible: true,
            description: String::new(),
        };
        assert!(!action(0, false).needs_approval());
        assert!(!action(1, false).needs_approval());
        assert!(action(2, false).needs_approval());
        assert!(action(0, true).needs_approval());
    }
}
