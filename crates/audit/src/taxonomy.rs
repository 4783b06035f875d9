//! Audit event taxonomy (REQUIREMENTS §3.8: 48 types in five categories).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventCategory {
    Decision,
    Action,
    Approval,
    Security,
    System,
}

impl EventCategory {
    pub const fn as_str(self) -> &'static str {
        match self {
            EventCategory::Decision => "decision",
            EventCategory::Action => "action",
            EventCategory::Approval => "approval",
            EventCategory::Security => "security",
            EventCategory::System => "system",
        }
    }
}

use EventCategory::{Action, Approval, Decision, Security, System};

/// Every accepted event type with its category.
pub const TAXONOMY: &[(&str, EventCategory)] = &[
    ("alert.classified", Decision),
    ("alert.auto_closed", Decision),
    ("alert.escalated", Decision),
    ("alert.short_circuited", Decision),
    ("investigation.state_changed", Decision),
    ("investigation.enriched", Decision),
    ("playbook.selected", Decision),
    ("playbook.generated", Decision),
    ("ctem.exposure_scored", Decision),
    ("atlas.detection_fired", Decision),
    ("routing.tier_selected", Decision),
    ("routing.provider_failover", Decision),
    ("canary.promoted", Decision),
    ("canary.rolled_back", Decision),
    ("shadow.decision_logged", Decision),
    ("incident.grouped", Decision),
    ("response.prepared", Action),
    ("response.executed", Action),
    ("response.rolled_back", Action),
    ("response.generated", Action),
    ("ioc.enriched", Action),
    ("fp_pattern.created", Action),
    ("fp_pattern.activated", Action),
    ("ctem.remediation_assigned", Action),
    ("ctem.remediation_verified", Action),
    ("knowledge.indexed", Action),
    ("embedding.reindexed", Action),
    ("approval.requested", Approval),
    ("approval.granted", Approval),
    ("approval.denied", Approval),
    ("approval.timed_out", Approval),
    ("approval.escalated", Approval),
    ("fp_pattern.approved", Approval),
    ("fp_pattern.revoked", Approval),
    ("shadow.go_live_approved", Approval),
    ("injection.detected", Security),
    ("injection.quarantined", Security),
    ("technique.quarantined", Security),
    ("accumulation.threshold_breached", Security),
    ("spend.soft_limit", Security),
    ("spend.hard_limit", Security),
    ("alert.dead_lettered", Security),
    ("degradation.entered", System),
    ("degradation.exited", System),
    ("kill_switch.activated", System),
    ("kill_switch.deactivated", System),
    ("config.changed", System),
    ("circuit_breaker.opened", System),
    ("circuit_breaker.closed", System),
    ("system.genesis", System),
];

/// The category of a known event type; `None` for types outside the taxonomy.
pub fn event_category(event_type: &str) -> Option<EventCategory> {
    TAXONOMY.iter().find(|(name, _)| *name == event_type).map(|(_, category)| *category)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taxonomy_has_the_48_specified_types_plus_ours_without_duplicates() {
        let mut names: Vec<&str> = TAXONOMY.iter().map(|(name, _)| *name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), TAXONOMY.len());
        // §3.8 lists 48; ALUSKORT adds incident.grouped and alert.dead_lettered.
        assert_eq!(TAXONOMY.len(), 50);
        assert_eq!(event_category("system.genesis"), Some(EventCategory::System));
        assert_eq!(event_category("approval.escalated"), Some(EventCategory::Approval));
        assert_eq!(event_category("made.up"), None);
    }
}
