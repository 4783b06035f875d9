//! Task → tier, and the override chain that moves a call up or down (REQUIREMENTS §3.5 and the
//! decisions table).
//!
//! Base tier from the task table (unknown task → tier 1, decisions table). Then, in order:
//! 1. time budget under 3 s → tier 0 (a fast answer beats a deep one) — **else** critical severity
//!    → at least tier 1;
//! 2. retrieved context over 100,000 tokens on tier 0 → tier 1 (tier 0's window is small);
//! 3. previous confidence under 0.6 on a critical or high alert → tier 1+ (last, so it beats the
//!    time budget: a low-confidence verdict on a critical alert must not stay cheap).
//!
//! Every step that changed the tier is named in [`Selection::reasons`].

use std::time::Duration;

use aluskort_core::Severity;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Tier {
    #[serde(rename = "tier_0")]
    T0,
    #[serde(rename = "tier_1")]
    T1,
    #[serde(rename = "tier_1_plus")]
    T1Plus,
    #[serde(rename = "tier_2")]
    T2,
}

impl Tier {
    pub const ALL: [Tier; 4] = [Tier::T0, Tier::T1, Tier::T1Plus, Tier::T2];

    pub const fn as_str(self) -> &'static str {
        match self {
            Tier::T0 => "tier_0",
            Tier::T1 => "tier_1",
            Tier::T1Plus => "tier_1_plus",
            Tier::T2 => "tier_2",
        }
    }

    pub fn parse(text: &str) -> Option<Tier> {
        Tier::ALL.into_iter().find(|tier| tier.as_str() == text)
    }

    /// Capability rank for "at least": tier 0 and tier 2 (batch) 0, tier 1 1, tier 1+ 2.
    pub const fn rank(self) -> u8 {
        match self {
            Tier::T0 | Tier::T2 => 0,
            Tier::T1 => 1,
            Tier::T1Plus => 2,
        }
    }

    /// Retrieved-context budget in tokens (decisions table, FR-RAG-008).
    pub const fn context_budget(self) -> usize {
        match self {
            Tier::T0 => 4_096,
            Tier::T1 => 8_192,
            Tier::T1Plus | Tier::T2 => 16_384,
        }
    }

    /// Default (max_tokens, temperature) of §3.5.
    pub const fn defaults(self) -> (u32, f32) {
        match self {
            Tier::T0 => (2_048, 0.1),
            Tier::T1 => (8_192, 0.2),
            Tier::T1Plus => (16_384, 0.2),
            Tier::T2 => (16_384, 0.3),
        }
    }
}

impl std::fmt::Display for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// §3.5 task table.
pub const TASK_TIERS: &[(&str, Tier)] = &[
    ("ioc_extraction", Tier::T0),
    ("log_summarisation", Tier::T0),
    ("entity_normalisation", Tier::T0),
    ("fp_suggestion", Tier::T0),
    ("alert_classification", Tier::T0),
    ("severity_assessment", Tier::T0),
    ("investigation", Tier::T1),
    ("ctem_correlation", Tier::T1),
    ("atlas_reasoning", Tier::T1),
    ("attack_path_analysis", Tier::T1),
    ("incident_report", Tier::T1),
    ("playbook_selection", Tier::T1),
    ("fp_pattern_training", Tier::T2),
    ("playbook_generation", Tier::T2),
    ("agent_red_team", Tier::T2),
    ("detection_rule_generation", Tier::T2),
    ("retrospective_analysis", Tier::T2),
    ("threat_landscape_summary", Tier::T2),
];

/// Extended-thinking budgets per task (inference-optimisation; only used on tier 1+).
pub const THINKING_BUDGETS: &[(&str, u32)] = &[
    ("investigation", 4_096),
    ("attack_path_analysis", 6_144),
    ("ctem_correlation", 4_096),
    ("atlas_reasoning", 4_096),
    ("escalation", 8_192),
];

pub const FAST_BUDGET: Duration = Duration::from_secs(3);
pub const LARGE_CONTEXT_TOKENS: u64 = 100_000;
pub const LOW_CONFIDENCE: f64 = 0.6;

pub fn base_tier(task: &str) -> Option<Tier> {
    TASK_TIERS.iter().find(|(name, _)| *name == task).map(|(_, tier)| *tier)
}

pub fn thinking_budget(task: &str) -> Option<u32> {
    THINKING_BUDGETS.iter().find(|(name, _)| *name == task).map(|(_, budget)| *budget)
}

/// What the router looks at.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteInput<'a> {
    pub task: &'a str,
    pub severity: Severity,
    pub time_budget: Option<Duration>,
    /// Estimated prompt size in tokens.
    pub context_tokens: u64,
    /// Confidence of the previous attempt at this task, when this is an escalation.
    pub previous_confidence: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Selection {
    pub tier: Tier,
    pub reasons: Vec<String>,
}

pub fn select(input: &RouteInput<'_>) -> Selection {
    let mut reasons = Vec::new();
    let mut tier = match base_tier(input.task) {
        Some(tier) => tier,
        None => {
            reasons.push(format!("unknown task `{}`: tier_1", input.task));
            Tier::T1
        }
    };
    match input.time_budget {
        Some(budget) if budget < FAST_BUDGET && tier != Tier::T0 => {
            reasons.push(format!("time budget {} ms < 3 s: tier_0", budget.as_millis()));
            tier = Tier::T0;
        }
        Some(budget) if budget < FAST_BUDGET => {}
        _ if input.severity == Severity::Critical && tier.rank() < Tier::T1.rank() => {
            reasons.push("critical severity: at least tier_1".to_owned());
            tier = Tier::T1;
        }
        _ => {}
    }
    if input.context_tokens > LARGE_CONTEXT_TOKENS && tier == Tier::T0 {
        reasons.push(format!("context {} tokens > 100,000: tier_1", input.context_tokens));
        tier = Tier::T1;
    }
    if let Some(confidence) = input.previous_confidence
        && confidence < LOW_CONFIDENCE
        && matches!(input.severity, Severity::Critical | Severity::High)
        && tier != Tier::T1Plus
    {
        reasons.push(format!("previous confidence {confidence:.2} < 0.6 on a {} alert: tier_1_plus", input.severity.as_str()));
        tier = Tier::T1Plus;
    }
    Selection { tier, reasons }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(task: &str, severity: Severity) -> RouteInput<'_> {
        RouteInput { task, severity, time_budget: None, context_tokens: 1_000, previous_confidence: None }
    }

    #[test]
    fn tasks_map_to_their_tier_and_unknown_tasks_to_tier_1() {
        assert_eq!(select(&input("ioc_extraction", Severity::Low)).tier, Tier::T0);
        assert_eq!(select(&input("investigation", Severity::Low)).tier, Tier::T1);
        assert_eq!(select(&input("fp_pattern_training", Severity::Low)).tier, Tier::T2);
        let unknown = select(&input("write_poem", Severity::Low));
        assert_eq!(unknown.tier, Tier::T1, "decisions table: unknown task → tier 1");
        assert_eq!(unknown.reasons, ["unknown task `write_poem`: tier_1"]);
    }

    #[test]
    fn override_chain_applies_in_order() {
        // Critical lifts tier 0 work to tier 1 ...
        assert_eq!(select(&input("alert_classification", Severity::Critical)).tier, Tier::T1);
        // ... unless the time budget is under 3 s, which wins over severity.
        let fast = RouteInput { time_budget: Some(Duration::from_millis(2_500)), ..input("investigation", Severity::Critical) };
        assert_eq!(select(&fast).tier, Tier::T0);
        let relaxed = RouteInput { time_budget: Some(Duration::from_secs(3)), ..input("alert_classification", Severity::Medium) };
        assert_eq!(select(&relaxed).tier, Tier::T0, "exactly 3 s is not under 3 s; medium stays tier 0");
        // A large context cannot stay on tier 0, even with a tight budget.
        let large = RouteInput { context_tokens: 100_001, ..fast.clone() };
        assert_eq!(select(&large).tier, Tier::T1);
        let at_limit = RouteInput { context_tokens: 100_000, ..input("ioc_extraction", Severity::Low) };
        assert_eq!(select(&at_limit).tier, Tier::T0);
        // Low confidence on critical/high escalates to tier 1+, beating the time budget.
        let escalate = RouteInput { previous_confidence: Some(0.55), ..fast };
        let selection = select(&escalate);
        assert_eq!(selection.tier, Tier::T1Plus);
        assert_eq!(selection.reasons.len(), 2, "{:?}", selection.reasons);
        let medium = RouteInput { previous_confidence: Some(0.3), ..input("investigation", Severity::Medium) };
        assert_eq!(select(&medium).tier, Tier::T1, "medium alerts are not escalated");
        let confident = RouteInput { previous_confidence: Some(0.6), ..input("investigation", Severity::High) };
        assert_eq!(select(&confident).tier, Tier::T1, "0.6 is not under 0.6");
    }

    #[test]
    fn tiers_carry_their_budgets() {
        assert_eq!(Tier::T0.context_budget(), 4_096);
        assert_eq!(Tier::T1Plus.defaults(), (16_384, 0.2));
        assert_eq!(thinking_budget("attack_path_analysis"), Some(6_144));
        assert_eq!(Tier::parse("tier_1_plus"), Some(Tier::T1Plus));
        assert_eq!(serde_json::to_string(&Tier::T2).ok().as_deref(), Some("\"tier_2\""));
    }
}
