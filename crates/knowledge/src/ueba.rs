//! UEBA risk state (FR-ENR-005, NFR-OBS-005): a user's priority becomes low, medium or high only
//! when a fresh score exists. No UEBA row is `no_baseline` and a stale (or unreadable) one is
//! `unknown`: absent data is never `low`.

use aluskort_store::UserRisk;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A UEBA score older than this many hours is stale (NFR-OBS-005).
pub const MAX_STALE_HOURS: f64 = 24.0;
/// Priorities below this are low.
pub const LOW_BELOW: f64 = 3.0;
/// Priorities below this (and not low) are medium; the rest are high.
pub const MEDIUM_BELOW: f64 = 6.0;

/// What is known about a user's risk. The spelling of [`RiskState::as_str`] is what
/// `GraphState::risk_state` holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskState {
    /// No UEBA data for the user.
    NoBaseline,
    /// UEBA data exists but is stale, or the source failed.
    Unknown,
    Low,
    Medium,
    High,
}

impl RiskState {
    pub const fn as_str(self) -> &'static str {
        match self {
            RiskState::NoBaseline => "no_baseline",
            RiskState::Unknown => "unknown",
            RiskState::Low => "low",
            RiskState::Medium => "medium",
            RiskState::High => "high",
        }
    }
}

/// FR-ENR-005: `None` → no baseline; older than `max_stale_hours` → unknown; then by priority
/// (0..=10): below 3 low, below 6 medium, else high. A NaN age or priority is unknown.
pub fn classify_risk(priority: Option<f64>, fresh_hours: f64, max_stale_hours: f64) -> RiskState {
    let Some(priority) = priority else {
        return RiskState::NoBaseline;
    };
    if fresh_hours.is_nan() || fresh_hours > max_stale_hours || priority.is_nan() {
        return RiskState::Unknown;
    }
    if priority < LOW_BELOW {
        RiskState::Low
    } else if priority < MEDIUM_BELOW {
        RiskState::Medium
    } else {
        RiskState::High
    }
}

/// [`classify_risk`] of a stored UEBA row (or its absence) at `now`, stale after [`MAX_STALE_HOURS`].
/// A row observed in the future (clock skew) counts as fresh.
pub fn classify_user_risk(row: Option<&UserRisk>, now: DateTime<Utc>) -> RiskState {
    let Some(row) = row else {
        return RiskState::NoBaseline;
    };
    let age_hours = (now - row.observed_at).num_milliseconds().max(0) as f64 / 3_600_000.0;
    classify_risk(Some(row.priority), age_hours, MAX_STALE_HOURS)
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;

    #[test]
    fn absent_data_is_never_low() {
        assert_eq!(classify_risk(None, 0.0, MAX_STALE_HOURS), RiskState::NoBaseline);
        assert_eq!(classify_risk(Some(1.0), 24.5, MAX_STALE_HOURS), RiskState::Unknown, "stale");
        assert_eq!(classify_risk(Some(1.0), f64::NAN, MAX_STALE_HOURS), RiskState::Unknown);
        assert_eq!(classify_risk(Some(f64::NAN), 1.0, MAX_STALE_HOURS), RiskState::Unknown);
    }

    #[test]
    fn fresh_priorities_are_banded_at_three_and_six() {
        let band = |priority: f64| classify_risk(Some(priority), 24.0, MAX_STALE_HOURS);
        assert_eq!(band(0.0), RiskState::Low);
        assert_eq!(band(2.99), RiskState::Low);
        assert_eq!(band(3.0), RiskState::Medium);
        assert_eq!(band(5.99), RiskState::Medium);
        assert_eq!(band(6.0), RiskState::High);
        assert_eq!(band(10.0), RiskState::High);
        assert_eq!(band(6.0).as_str(), "high");
        assert_eq!(RiskState::NoBaseline.as_str(), "no_baseline");
    }

    #[test]
    fn stored_rows_are_judged_by_their_age() {
        let now = Utc.with_ymd_and_hms(2024, 7, 4, 12, 0, 0).single().unwrap_or_default();
        let row = |hours: i64, priority: f64| UserRisk {
            tenant: "acme".to_owned(),
            user: "alice@contoso.com".to_owned(),
            priority,
            observed_at: now - Duration::hours(hours),
            detail: serde_json::json!({}),
        };
        assert_eq!(classify_user_risk(None, now), RiskState::NoBaseline);
        assert_eq!(classify_user_risk(Some(&row(2, 4.0)), now), RiskState::Medium);
        assert_eq!(classify_user_risk(Some(&row(24, 8.0)), now), RiskState::High, "24 h is not yet stale");
        assert_eq!(classify_user_risk(Some(&row(25, 8.0)), now), RiskState::Unknown);
        assert_eq!(classify_user_risk(Some(&row(-3, 1.0)), now), RiskState::Low, "a future observation counts as fresh");
    }
}
