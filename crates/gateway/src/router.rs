//! Which provider and model serve a tier, in what order, given the breakers (REQUIREMENTS §3.5).
//!
//! Each tier has a primary route and fallbacks (Anthropic first, an OpenAI-compatible server as
//! fallback by default). A route whose provider's breaker is open is skipped; a fallback that
//! cannot hold the prompt (context window) is skipped. When the task has a deterministic answer,
//! the deterministic provider is always the last candidate, so a model outage degrades the answer
//! instead of failing it; the response then says `degradation: deterministic`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use aluskort_core::DegradationLevel;
use aluskort_llm::deterministic::DeterministicProvider;
use aluskort_llm::{BatchProvider, Provider, ProviderKind};
use serde::Serialize;

use crate::breaker::{BreakerState, CircuitBreaker, FAILURE_THRESHOLD, OPEN_FOR};
use crate::spend::Price;
use crate::tier::Tier;

/// One way to serve a tier.
#[derive(Clone)]
pub struct Route {
    pub provider: Arc<dyn Provider>,
    pub model: String,
    pub price: Price,
    /// Largest prompt in tokens the model accepts.
    pub context_window: u64,
    /// Whether the model supports extended thinking.
    pub thinking: bool,
    /// The batch API, for tier 2 routes that have one.
    pub batch: Option<Arc<dyn BatchProvider>>,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("provider", &self.provider.name())
            .field("model", &self.model)
            .field("context_window", &self.context_window)
            .field("thinking", &self.thinking)
            .field("batch", &self.batch.is_some())
            .finish()
    }
}

/// Primary then fallbacks, per tier.
#[derive(Debug, Clone)]
pub struct TierRoutes {
    pub primary: Route,
    pub fallbacks: Vec<Route>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ProviderHealth {
    pub provider: String,
    pub kind: ProviderKind,
    pub breaker: BreakerState,
}

pub struct Router {
    tiers: HashMap<Tier, TierRoutes>,
    breakers: BTreeMap<String, Arc<CircuitBreaker>>,
    kinds: BTreeMap<String, ProviderKind>,
    deterministic: Option<Arc<DeterministicProvider>>,
}

impl Router {
    /// `tiers` may leave tiers out (no model configured for them); `deterministic` answers what it
    /// can when no model route is available.
    pub fn new(tiers: HashMap<Tier, TierRoutes>, deterministic: Option<Arc<DeterministicProvider>>) -> Self {
        Router::with_breakers(tiers, deterministic, FAILURE_THRESHOLD, OPEN_FOR)
    }

    /// As [`Router::new`], with breakers that open after `threshold` failures for `open_for`.
    pub fn with_breakers(
        tiers: HashMap<Tier, TierRoutes>,
        deterministic: Option<Arc<DeterministicProvider>>,
        threshold: u32,
        open_for: std::time::Duration,
    ) -> Self {
        let mut breakers = BTreeMap::new();
        let mut kinds = BTreeMap::new();
        for routes in tiers.values() {
            for route in std::iter::once(&routes.primary).chain(&routes.fallbacks) {
                let name = route.provider.name().to_owned();
                breakers.entry(name.clone()).or_insert_with(|| Arc::new(CircuitBreaker::new(threshold, open_for)));
                kinds.insert(name, route.provider.kind());
            }
        }
        Router { tiers, breakers, kinds, deterministic }
    }

    pub fn breaker(&self, provider: &str) -> Option<&Arc<CircuitBreaker>> {
        self.breakers.get(provider)
    }

    /// Whether any tier has a model route (false: deterministic by configuration).
    pub fn has_model_routes(&self) -> bool {
        !self.tiers.is_empty()
    }

    pub fn routes(&self, tier: Tier) -> Option<&TierRoutes> {
        self.tiers.get(&tier)
    }

    pub fn deterministic(&self) -> Option<&Arc<DeterministicProvider>> {
        self.deterministic.as_ref()
    }

    fn available(&self, route: &Route) -> bool {
        self.breakers.get(route.provider.name()).is_none_or(|breaker| breaker.state() != BreakerState::Open)
    }

    /// Model routes to try for `tier`, in order: the primary unless its breaker is open, then the
    /// fallbacks that are available and can hold `context_tokens`. Empty when none is usable.
    pub fn candidates(&self, tier: Tier, context_tokens: u64) -> Vec<Route> {
        let Some(routes) = self.tiers.get(&tier) else { return Vec::new() };
        let mut candidates = Vec::new();
        if self.available(&routes.primary) {
            candidates.push(routes.primary.clone());
        }
        for fallback in &routes.fallbacks {
            if self.available(fallback) && fallback.context_window >= context_tokens {
                candidates.push(fallback.clone());
            }
        }
        candidates
    }

    /// `full` while some model route of any tier is available; `deterministic` when every model
    /// provider's breaker is open or none is configured.
    pub fn degradation(&self) -> DegradationLevel {
        let any_model = self.tiers.values().any(|routes| {
            std::iter::once(&routes.primary)
                .chain(&routes.fallbacks)
                .any(|route| route.provider.kind() != ProviderKind::Deterministic && self.available(route))
        });
        if any_model { DegradationLevel::Full } else { DegradationLevel::Deterministic }
    }

    pub fn health(&self) -> Vec<ProviderHealth> {
        self.breakers
            .iter()
            .map(|(name, breaker)| ProviderHealth {
                provider: name.clone(),
                kind: self.kinds.get(name).copied().unwrap_or(ProviderKind::Deterministic),
                breaker: breaker.state(),
            })
            .collect()
    }
}
