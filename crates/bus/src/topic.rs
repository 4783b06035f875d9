//! Topics are a closed enum, never free strings (REQUIREMENTS §3.9 names).

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Topic {
    AlertsRaw,
    AlertsRawDlq,
    AlertsNormalized,
    IncidentsEnriched,
    JobsLlmPriorityCritical,
    JobsLlmPriorityHigh,
    JobsLlmPriorityNormal,
    JobsLlmPriorityLow,
    JobsLlmPriorityCriticalDlq,
    JobsLlmPriorityHighDlq,
    JobsLlmPriorityNormalDlq,
    JobsLlmPriorityLowDlq,
    ActionsPending,
    AuditEvents,
}

impl Topic {
    pub const ALL: [Topic; 14] = [
        Topic::AlertsRaw,
        Topic::AlertsRawDlq,
        Topic::AlertsNormalized,
        Topic::IncidentsEnriched,
        Topic::JobsLlmPriorityCritical,
        Topic::JobsLlmPriorityHigh,
        Topic::JobsLlmPriorityNormal,
        Topic::JobsLlmPriorityLow,
        Topic::JobsLlmPriorityCriticalDlq,
        Topic::JobsLlmPriorityHighDlq,
        Topic::JobsLlmPriorityNormalDlq,
        Topic::JobsLlmPriorityLowDlq,
        Topic::ActionsPending,
        Topic::AuditEvents,
    ];

    /// Position in [`Topic::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }

    pub const fn name(self) -> &'static str {
        match self {
            Topic::AlertsRaw => "alerts.raw",
            Topic::AlertsRawDlq => "alerts.raw.dlq",
            Topic::AlertsNormalized => "alerts.normalized",
            Topic::IncidentsEnriched => "incidents.enriched",
            Topic::JobsLlmPriorityCritical => "jobs.llm.priority.critical",
            Topic::JobsLlmPriorityHigh => "jobs.llm.priority.high",
            Topic::JobsLlmPriorityNormal => "jobs.llm.priority.normal",
            Topic::JobsLlmPriorityLow => "jobs.llm.priority.low",
            Topic::JobsLlmPriorityCriticalDlq => "jobs.llm.priority.critical.dlq",
            Topic::JobsLlmPriorityHighDlq => "jobs.llm.priority.high.dlq",
            Topic::JobsLlmPriorityNormalDlq => "jobs.llm.priority.normal.dlq",
            Topic::JobsLlmPriorityLowDlq => "jobs.llm.priority.low.dlq",
            Topic::ActionsPending => "actions.pending",
            Topic::AuditEvents => "audit.events",
        }
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Consumer group names (REQUIREMENTS §3.9).
pub mod group {
    pub const ENTITY_PARSER: &str = "aluskort.entity-parser";
    pub const ORCHESTRATOR: &str = "aluskort.orchestrator";
    pub const AUDIT_SERVICE: &str = "aluskort.audit-service";
    pub const RESPONSE_AGENT: &str = "aluskort.response-agent";
    /// Workers draining the LLM priority queues (`priority-router` in the design).
    pub const PRIORITY_ROUTER: &str = "aluskort.priority-router";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_canonical_kafka_topic_names() {
        let names: Vec<&str> = Topic::ALL.iter().map(|t| t.name()).collect();
        assert!(names.contains(&"alerts.raw") && names.contains(&"alerts.raw.dlq") && names.contains(&"incidents.enriched"));
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len());
    }

    #[test]
    fn each_topic_has_its_place_in_all() {
        for (position, topic) in Topic::ALL.iter().enumerate() {
            assert_eq!(topic.index(), position, "{topic}");
        }
    }
}
