//! Classification labels, verdicts and recommended response actions (FR-RSN-001, FR-RSP-001/002).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::severity::Severity;

/// Classification labels (REQUIREMENTS decisions table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Classification {
    TruePositive,
    BenignTruePositive,
    FalsePositive,
    NeedsInvestigation,
}

impl Classification {
    pub const fn as_str(self) -> &'static str {
        match self {
            Classification::TruePositive => "true_positive",
            Classification::BenignTruePositive => "benign_true_positive",
            Classification::FalsePositive => "false_positive",
            Classification::NeedsInvestigation => "needs_investigation",
        }
    }
}

impl fmt::Display for Classification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a response action does. Destructive kinds always wait for a human (FR-RSP-002).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// Gather the device's investigation package / triage collection (read-only).
    CollectEvidence,
    /// Look for the same indicators across the estate (read-only).
    HuntIndicators,
    /// Run an antivirus scan on a device (non-disruptive).
    RunAvScan,
    /// Page or notify the on-call analyst.
    NotifyAnalyst,
    /// Isolate a device from the network.
    IsolateHost,
    /// Disable a user account.
    DisableAccount,
    /// Force a password reset.
    ResetPassword,
    /// Revoke a user's sessions and refresh tokens.
    RevokeSessions,
    /// Block an IP, domain or URL at the firewall / proxy.
    BlockIndicator,
    /// Quarantine or delete a file.
    QuarantineFile,
    /// Remove a malicious inbox rule or mail message.
    RemoveMailArtifact,
}

impl ActionKind {
    /// FR-RSP-002: these change the environment and need human approval at any confidence.
    pub const fn is_destructive(self) -> bool {
        matches!(
            self,
            ActionKind::IsolateHost
                | ActionKind::DisableAccount
                | ActionKind::ResetPassword
                | ActionKind::RevokeSessions
                | ActionKind::BlockIndicator
                | ActionKind::QuarantineFile
                | ActionKind::RemoveMailArtifact
        )
    }

    /// Remediation tier (FR-RSP-001): 0 automatic and read-only, 1 automatic when confident,
    /// 2 needs approval.
    pub const fn tier(self) -> u8 {
        match self {
            ActionKind::CollectEvidence | ActionKind::HuntIndicators | ActionKind::NotifyAnalyst => 0,
            ActionKind::RunAvScan => 1,
            _ => 2,
        }
    }
}

/// One proposed response step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecommendedAction {
    pub action: ActionKind,
    /// What the action applies to (host name, UPN, IP, hash...).
    pub target: String,
    pub tier: u8,
    pub requires_approval: bool,
    pub rationale: String,
}

impl RecommendedAction {
    pub fn new(action: ActionKind, target: impl Into<String>, rationale: impl Into<String>) -> Self {
        RecommendedAction {
            action,
            target: target.into(),
            tier: action.tier(),
            requires_approval: action.is_destructive(),
            rationale: rationale.into(),
        }
    }
}

/// The outcome of reasoning about one alert (FR-RSN-001).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub classification: Classification,
    /// 0.0..=1.0.
    pub confidence: f64,
    pub severity: Severity,
    pub techniques: Vec<String>,
    pub tactics: Vec<String>,
    /// The reasoning chain, one step a line, each naming the evidence it rests on.
    pub reasoning: Vec<String>,
    pub recommended_actions: Vec<RecommendedAction>,
}

impl Verdict {
    /// True when any recommended action needs a human (FR-RSP-002).
    pub fn has_destructive_action(&self) -> bool {
        self.recommended_actions.iter().any(|action| action.requires_approval)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destructive_actions_always_require_approval_fr_rsp_002() {
        let all = [
            ActionKind::CollectEvidence,
            ActionKind::HuntIndicators,
            ActionKind::RunAvScan,
            ActionKind::NotifyAnalyst,
            ActionKind::IsolateHost,
            ActionKind::DisableAccount,
            ActionKind::ResetPassword,
            ActionKind::RevokeSessions,
            ActionKind::BlockIndicator,
            ActionKind::QuarantineFile,
            ActionKind::RemoveMailArtifact,
        ];
        for kind in all {
            let action = RecommendedAction::new(kind, "x", "y");
            assert_eq!(action.requires_approval, kind.is_destructive());
            if kind.is_destructive() {
                assert_eq!(action.tier, 2, "{kind:?}");
            }
        }
        assert!(ActionKind::IsolateHost.is_destructive());
        assert!(!ActionKind::CollectEvidence.is_destructive());
    }
}
