//! A circuit breaker per provider (REQUIREMENTS §3.5): 5 consecutive failures open it; after 30 s
//! one probe call is let through (half-open); its success closes the breaker, its failure opens it
//! again for another 30 s. While open, the router sends the tier's calls to its fallback.
//!
//! Time is `tokio::time::Instant`, so tests drive the transitions with paused time.

use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

pub const FAILURE_THRESHOLD: u32 = 5;
pub const OPEN_FOR: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub const fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

/// A state change worth an audit record (`circuit_breaker.opened` / `.closed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Opened,
    Closed,
}

#[derive(Debug)]
enum Inner {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// A probe is out; nothing else passes until it reports.
    HalfOpen,
}

#[derive(Debug)]
pub struct CircuitBreaker {
    threshold: u32,
    open_for: Duration,
    inner: Mutex<Inner>,
}

impl Default for CircuitBreaker {
    fn default() -> Self {
        CircuitBreaker::new(FAILURE_THRESHOLD, OPEN_FOR)
    }
}

impl CircuitBreaker {
    pub fn new(threshold: u32, open_for: Duration) -> Self {
        CircuitBreaker { threshold: threshold.max(1), open_for, inner: Mutex::new(Inner::Closed { failures: 0 }) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The state is a plain value; a panic elsewhere cannot leave it half-written.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The state as the router and `/ready` see it (an expired open period reads as half-open).
    pub fn state(&self) -> BreakerState {
        match &*self.lock() {
            Inner::Closed { .. } => BreakerState::Closed,
            Inner::Open { until } if Instant::now() >= *until => BreakerState::HalfOpen,
            Inner::Open { .. } => BreakerState::Open,
            Inner::HalfOpen => BreakerState::HalfOpen,
        }
    }

    /// Whether a call may go out now. When the open period has passed this admits exactly one
    /// probe and returns `true`; callers that get `true` must report the outcome.
    pub fn try_acquire(&self) -> bool {
        let mut inner = self.lock();
        match &*inner {
            Inner::Closed { .. } => true,
            Inner::Open { until } if Instant::now() >= *until => {
                *inner = Inner::HalfOpen;
                true
            }
            Inner::Open { .. } | Inner::HalfOpen => false,
        }
    }

    pub fn record_success(&self) -> Option<Transition> {
        let mut inner = self.lock();
        let was_closed = matches!(*inner, Inner::Closed { .. });
        *inner = Inner::Closed { failures: 0 };
        (!was_closed).then_some(Transition::Closed)
    }

    pub fn record_failure(&self) -> Option<Transition> {
        let mut inner = self.lock();
        let open = Inner::Open { until: Instant::now() + self.open_for };
        match &mut *inner {
            Inner::Closed { failures } => {
                *failures += 1;
                if *failures >= self.threshold {
                    *inner = open;
                    return Some(Transition::Opened);
                }
                None
            }
            Inner::HalfOpen | Inner::Open { .. } => {
                *inner = open;
                Some(Transition::Opened)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn opens_after_five_failures_probes_after_thirty_seconds_and_closes_on_success() {
        let breaker = CircuitBreaker::default();
        for _ in 0..4 {
            assert!(breaker.try_acquire());
            assert_eq!(breaker.record_failure(), None);
        }
        assert_eq!(breaker.state(), BreakerState::Closed, "4 failures are not enough");
        assert_eq!(breaker.record_failure(), Some(Transition::Opened));
        assert_eq!(breaker.state(), BreakerState::Open);
        assert!(!breaker.try_acquire(), "open: nothing passes");

        tokio::time::advance(Duration::from_secs(29)).await;
        assert!(!breaker.try_acquire(), "still open at 29 s");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        assert!(breaker.try_acquire(), "one probe after 30 s");
        assert!(!breaker.try_acquire(), "only one probe at a time");
        assert_eq!(breaker.record_success(), Some(Transition::Closed));
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert!(breaker.try_acquire());
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_reopens_for_another_period_and_success_resets_the_count() {
        let breaker = CircuitBreaker::new(2, Duration::from_secs(10));
        breaker.record_failure();
        breaker.record_success();
        assert_eq!(breaker.record_failure(), None, "the count restarted after a success");
        assert_eq!(breaker.record_failure(), Some(Transition::Opened));
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(breaker.try_acquire());
        assert_eq!(breaker.record_failure(), Some(Transition::Opened));
        tokio::time::advance(Duration::from_secs(9)).await;
        assert_eq!(breaker.state(), BreakerState::Open, "a failed probe opens for a full period again");
        assert_eq!(breaker.record_success(), Some(Transition::Closed));
        assert_eq!(breaker.record_success(), None, "closed → closed is no transition");
    }
}
