//! Degradation levels (REQUIREMENTS §3.12, NFR-REL-001), visible on every verdict.

use serde::{Deserialize, Serialize};

/// How much of the system is available; lower levels do less, never unsafe things.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DegradationLevel {
    /// Everything up.
    Full,
    /// No model reachable: deterministic reasoning only, no auto-close, every alert queued for a human.
    Deterministic,
    /// Vector index down: incident memory falls back to full-text search in the state store.
    StructuredSearch,
    /// Graph down: zone→consequence table; `GRAPH_UNAVAILABLE` recorded.
    StaticConsequence,
    /// State store down: alerts stay on the bus, nothing acknowledged.
    Passthrough,
}

impl DegradationLevel {
    pub const fn as_str(self) -> &'static str {
        match self {
            DegradationLevel::Full => "full",
            DegradationLevel::Deterministic => "deterministic",
            DegradationLevel::StructuredSearch => "structured_search",
            DegradationLevel::StaticConsequence => "static_consequence",
            DegradationLevel::Passthrough => "passthrough",
        }
    }

    /// NFR-REL-003: only the full level may close an alert without a human.
    pub const fn allows_auto_close(self) -> bool {
        matches!(self, DegradationLevel::Full | DegradationLevel::StructuredSearch | DegradationLevel::StaticConsequence)
    }
}

impl std::fmt::Display for DegradationLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
