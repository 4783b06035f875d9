//! What a call costs, and whether we may make it (inference-optimisation spend control).
//!
//! Prices are US dollars per million tokens, which is exactly micro-dollars per token, so costs
//! are summed as integers. Cache reads cost 0.1× and cache writes 1.25× the input price, batch
//! calls half (decisions table). Limits: daily soft $30 / hard $50, monthly soft $500 / hard
//! $1,000; critical work is exempt from the daily cap but never from the monthly one. Crossing a
//! soft limit is audited once per period (`spend.soft_limit`); a hard limit refuses the call
//! (`spend.hard_limit`, once per period, and counted every time).

use std::collections::HashSet;
use std::sync::Mutex;

use aluskort_llm::Usage;
use chrono::{DateTime, Datelike, TimeZone, Utc};
use serde::{Deserialize, Serialize};

/// Dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Price {
    pub input: f64,
    pub output: f64,
}

/// Micro-dollars as dollars.
pub fn usd(micros: u64) -> f64 {
    micros as f64 / 1_000_000.0
}

pub const CACHE_READ_FACTOR: f64 = 0.1;
pub const CACHE_WRITE_FACTOR: f64 = 1.25;
pub const BATCH_FACTOR: f64 = 0.5;

impl Price {
    /// Cost of `usage` in micro-dollars.
    pub fn cost_micros(&self, usage: &Usage, batch: bool) -> u64 {
        let tokens = |n: u64| n as f64;
        let dollars_micro = tokens(usage.input_tokens) * self.input
            + tokens(usage.output_tokens) * self.output
            + tokens(usage.cache_read_tokens) * self.input * CACHE_READ_FACTOR
            + tokens(usage.cache_write_tokens) * self.input * CACHE_WRITE_FACTOR;
        let scaled = if batch { dollars_micro * BATCH_FACTOR } else { dollars_micro };
        // Non-negative and far below u64::MAX for any real token count.
        scaled.round().max(0.0) as u64
    }
}

/// Default price of a model id (decisions table; OpenAI fallbacks per §3.5). Unknown models cost
/// what Sonnet costs, so an unpriced model is never free in the books.
pub fn default_price(model: &str) -> Price {
    let model = model.to_ascii_lowercase();
    let (input, output) = if model.contains("haiku") {
        (1.0, 5.0)
    } else if model.contains("opus") {
        (15.0, 75.0)
    } else if model.contains("gpt-4o-mini") {
        (0.15, 0.60)
    } else if model.contains("gpt-4o") {
        (2.50, 10.0)
    } else if model == "deterministic" {
        (0.0, 0.0)
    } else {
        (3.0, 15.0)
    };
    Price { input, output }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SpendLimits {
    pub daily_soft_usd: f64,
    pub daily_hard_usd: f64,
    pub monthly_soft_usd: f64,
    pub monthly_hard_usd: f64,
}

impl Default for SpendLimits {
    fn default() -> Self {
        SpendLimits { daily_soft_usd: 30.0, daily_hard_usd: 50.0, monthly_soft_usd: 500.0, monthly_hard_usd: 1_000.0 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    Daily,
    Monthly,
}

impl Period {
    pub const fn as_str(self) -> &'static str {
        match self {
            Period::Daily => "daily",
            Period::Monthly => "monthly",
        }
    }
}

/// The outcome of a spend check.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum SpendDecision {
    Allow,
    /// Allowed, but over a soft limit; `first` is true the first time in this period (audit it).
    OverSoft {
        period: Period,
        spent_usd: f64,
        limit_usd: f64,
        first: bool,
    },
    /// Refused; `first` as above.
    Refuse {
        period: Period,
        spent_usd: f64,
        limit_usd: f64,
        first: bool,
    },
}

pub fn day_start(now: DateTime<Utc>) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(now.year(), now.month(), now.day(), 0, 0, 0).single().unwrap_or(now)
}

pub fn month_start(now: DateTime<Utc>) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0).single().unwrap_or(now)
}

/// Decides from the period totals; remembers which period keys it already reported.
#[derive(Debug, Default)]
pub struct SpendGuard {
    pub limits: SpendLimits,
    reported: Mutex<HashSet<String>>,
}

impl SpendGuard {
    pub fn new(limits: SpendLimits) -> Self {
        SpendGuard { limits, reported: Mutex::new(HashSet::new()) }
    }

    fn first(&self, key: String) -> bool {
        self.reported.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(key)
    }

    /// `spent_today_micros` / `spent_month_micros` come from the call ledger.
    pub fn decide(&self, now: DateTime<Utc>, spent_today_micros: u64, spent_month_micros: u64, critical: bool) -> SpendDecision {
        let (today, month) = (usd(spent_today_micros), usd(spent_month_micros));
        let day_key = now.format("%Y-%m-%d").to_string();
        let month_key = now.format("%Y-%m").to_string();
        if month >= self.limits.monthly_hard_usd {
            let first = self.first(format!("hard:{month_key}"));
            return SpendDecision::Refuse { period: Period::Monthly, spent_usd: month, limit_usd: self.limits.monthly_hard_usd, first };
        }
        if today >= self.limits.daily_hard_usd && !critical {
            let first = self.first(format!("hard:{day_key}"));
            return SpendDecision::Refuse { period: Period::Daily, spent_usd: today, limit_usd: self.limits.daily_hard_usd, first };
        }
        if month >= self.limits.monthly_soft_usd {
            let first = self.first(format!("soft:{month_key}"));
            return SpendDecision::OverSoft { period: Period::Monthly, spent_usd: month, limit_usd: self.limits.monthly_soft_usd, first };
        }
        if today >= self.limits.daily_soft_usd {
            let first = self.first(format!("soft:{day_key}"));
            return SpendDecision::OverSoft { period: Period::Daily, spent_usd: today, limit_usd: self.limits.daily_soft_usd, first };
        }
        SpendDecision::Allow
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const USD: u64 = 1_000_000;

    #[test]
    fn costs_follow_the_price_table_with_cache_and_batch_factors() {
        let sonnet = default_price("claude-sonnet-4-5-20250929");
        let usage = Usage { input_tokens: 1_000_000, output_tokens: 100_000, cache_read_tokens: 1_000_000, cache_write_tokens: 400_000 };
        // 3.00 + 1.50 + 0.30 + 1.50 = 6.30 dollars.
        assert_eq!(sonnet.cost_micros(&usage, false), 6_300_000);
        assert_eq!(sonnet.cost_micros(&usage, true), 3_150_000, "batch is half price");
        let haiku = default_price("claude-haiku-4-5-20251001");
        assert_eq!(haiku.cost_micros(&Usage { input_tokens: 1_000, output_tokens: 1_000, ..Usage::default() }, false), 6_000);
        assert_eq!(default_price("gpt-4o-mini").output, 0.60);
        assert_eq!(default_price("claude-opus-4-6").input, 15.0);
        assert_eq!(default_price("deterministic").cost_micros(&usage, false), 0);
        assert_eq!(default_price("some-local-llama").input, 3.0, "unpriced models are not free");
    }

    #[test]
    fn limits_refuse_and_warn_once_per_period_and_critical_skips_the_daily_cap() {
        let guard = SpendGuard::new(SpendLimits::default());
        let now = Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).single().unwrap_or_default();
        assert_eq!(guard.decide(now, 29 * USD, 29 * USD, false), SpendDecision::Allow);
        assert!(matches!(guard.decide(now, 30 * USD, 30 * USD, false), SpendDecision::OverSoft { period: Period::Daily, first: true, .. }));
        assert!(matches!(guard.decide(now, 31 * USD, 31 * USD, false), SpendDecision::OverSoft { first: false, .. }));
        assert!(matches!(guard.decide(now, 50 * USD, 50 * USD, false), SpendDecision::Refuse { period: Period::Daily, first: true, .. }));
        assert!(matches!(guard.decide(now, 50 * USD, 50 * USD, false), SpendDecision::Refuse { first: false, .. }));
        assert!(
            matches!(guard.decide(now, 50 * USD, 50 * USD, true), SpendDecision::OverSoft { period: Period::Daily, .. }),
            "critical work is exempt from the daily cap"
        );
        let tomorrow = now + chrono::Duration::days(1);
        assert!(
            matches!(guard.decide(tomorrow, 30 * USD, 80 * USD, false), SpendDecision::OverSoft { first: true, .. }),
            "a new day warns again"
        );
        assert!(matches!(guard.decide(now, 0, 600 * USD, false), SpendDecision::OverSoft { period: Period::Monthly, .. }));
        assert!(
            matches!(guard.decide(now, 0, 1_000 * USD, true), SpendDecision::Refuse { period: Period::Monthly, .. }),
            "the monthly cap binds critical work too"
        );
    }

    #[test]
    fn periods_start_at_utc_midnight_and_the_first_of_the_month() {
        let now = Utc.with_ymd_and_hms(2026, 11, 22, 23, 59, 59).single().unwrap_or_default();
        assert_eq!(day_start(now).to_rfc3339(), "2026-11-22T00:00:00+00:00");
        assert_eq!(month_start(now).to_rfc3339(), "2026-11-01T00:00:00+00:00");
    }
}
