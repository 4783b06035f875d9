//! Alert severity (FR-ING-002) and its LLM queue priority (FR-ING-005).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Severity of an alert or incident, ordered from least to most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Informational,
    Low,
    Medium,
    High,
    Critical,
}

/// The priority queue an alert's LLM work goes to (FR-ING-005).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueuePriority {
    Critical,
    High,
    Normal,
    Low,
}

impl Severity {
    pub const ALL: [Severity; 5] = [Severity::Informational, Severity::Low, Severity::Medium, Severity::High, Severity::Critical];

    pub const fn as_str(self) -> &'static str {
        match self {
            Severity::Informational => "informational",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// FR-ING-005: critical→critical, high→high, medium→normal, low/informational→low.
    pub const fn queue_priority(self) -> QueuePriority {
        match self {
            Severity::Critical => QueuePriority::Critical,
            Severity::High => QueuePriority::High,
            Severity::Medium => QueuePriority::Normal,
            Severity::Low | Severity::Informational => QueuePriority::Low,
        }
    }

    /// One step more severe, saturating at critical.
    pub const fn raised(self) -> Severity {
        match self {
            Severity::Informational => Severity::Low,
            Severity::Low => Severity::Medium,
            Severity::Medium => Severity::High,
            Severity::High | Severity::Critical => Severity::Critical,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The value was not one of the severities any supported SIEM emits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown severity {0:?} (expected critical, high, medium, low or informational)")]
pub struct UnknownSeverity(pub String);

impl FromStr for Severity {
    type Err = UnknownSeverity;

    /// Accepts the spellings the supported SIEMs use: Sentinel `High`, Elastic `high`/`critical`,
    /// Splunk `urgency` values (`critical`, `high`, `medium`, `low`, `informational`), and `info`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "critical" | "crit" | "sev1" => Ok(Severity::Critical),
            "high" | "sev2" => Ok(Severity::High),
            "medium" | "moderate" | "med" | "sev3" => Ok(Severity::Medium),
            "low" | "sev4" => Ok(Severity::Low),
            "informational" | "information" | "info" | "sev5" => Ok(Severity::Informational),
            _ => Err(UnknownSeverity(s.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_severity_to_queue_priority_per_fr_ing_005() {
        assert_eq!(Severity::Critical.queue_priority(), QueuePriority::Critical);
        assert_eq!(Severity::High.queue_priority(), QueuePriority::High);
        assert_eq!(Severity::Medium.queue_priority(), QueuePriority::Normal);
        assert_eq!(Severity::Low.queue_priority(), QueuePriority::Low);
        assert_eq!(Severity::Informational.queue_priority(), QueuePriority::Low);
    }

    #[test]
    fn parses_vendor_spellings_and_rejects_unknown() {
        assert_eq!("High".parse::<Severity>(), Ok(Severity::High));
        assert_eq!(" info ".parse::<Severity>(), Ok(Severity::Informational));
        assert!("urgent-ish".parse::<Severity>().is_err());
    }

    #[test]
    fn orders_from_informational_to_critical() {
        assert!(Severity::Critical > Severity::High);
        assert!(Severity::Low > Severity::Informational);
        assert_eq!(Severity::High.raised(), Severity::Critical);
        assert_eq!(Severity::Critical.raised(), Severity::Critical);
    }
}
