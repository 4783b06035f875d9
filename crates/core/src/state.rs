//! Investigation states and the legal transitions between them (ARCHITECTURE.md state machine).

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvestigationState {
    Received,
    Parsing,
    Enriching,
    Reasoning,
    AwaitingHuman,
    Responding,
    Closed,
    Failed,
}

impl InvestigationState {
    pub const ALL: [InvestigationState; 8] = [
        InvestigationState::Received,
        InvestigationState::Parsing,
        InvestigationState::Enriching,
        InvestigationState::Reasoning,
        InvestigationState::AwaitingHuman,
        InvestigationState::Responding,
        InvestigationState::Closed,
        InvestigationState::Failed,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            InvestigationState::Received => "received",
            InvestigationState::Parsing => "parsing",
            InvestigationState::Enriching => "enriching",
            InvestigationState::Reasoning => "reasoning",
            InvestigationState::AwaitingHuman => "awaiting_human",
            InvestigationState::Responding => "responding",
            InvestigationState::Closed => "closed",
            InvestigationState::Failed => "failed",
        }
    }

    pub fn parse(raw: &str) -> Option<InvestigationState> {
        InvestigationState::ALL.into_iter().find(|state| state.as_str() == raw)
    }

    /// Closed is final; failed is kept and may be retried from the start.
    pub const fn is_terminal(self) -> bool {
        matches!(self, InvestigationState::Closed | InvestigationState::Failed)
    }

    /// Whether `self → next` is an edge of the state machine. Any non-closed state may fail;
    /// a failed investigation may be retried (back to received).
    pub const fn can_transition_to(self, next: InvestigationState) -> bool {
        use InvestigationState::*;
        match (self, next) {
            (Closed, _) => false,
            (_, Failed) => !matches!(self, Failed),
            (Failed, Received) => true,
            (Received, Parsing) => true,
            (Parsing, Enriching) | (Parsing, Closed) => true,
            (Enriching, Reasoning) => true,
            (Reasoning, Responding) | (Reasoning, AwaitingHuman) => true,
            (AwaitingHuman, Responding) | (AwaitingHuman, Closed) => true,
            (Responding, Closed) => true,
            _ => false,
        }
    }
}

impl fmt::Display for InvestigationState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::InvestigationState::*;
    use super::*;

    #[test]
    fn responding_is_reachable_only_from_reasoning_or_a_human_decision() {
        for from in InvestigationState::ALL {
            let allowed = from.can_transition_to(Responding);
            assert_eq!(allowed, matches!(from, Reasoning | AwaitingHuman), "{from} → responding");
        }
    }

    #[test]
    fn closed_is_final_and_failed_only_retries() {
        for next in InvestigationState::ALL {
            assert!(!Closed.can_transition_to(next));
            assert_eq!(Failed.can_transition_to(next), next == Received);
        }
    }

    #[test]
    fn names_round_trip() {
        for state in InvestigationState::ALL {
            assert_eq!(InvestigationState::parse(state.as_str()), Some(state));
        }
    }
}
