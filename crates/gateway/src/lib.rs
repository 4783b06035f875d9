//! The LLM context gateway (NFR-SEC-001..004): the only path from ALUSKORT to a model.
//!
//! # Layout
//! - [`gateway`]: the pipeline: quota, spend, screening, pseudonymisation, prompt, provider call
//!   with breaker and fallback, schema validation, technique quarantine, accounting.
//! - [`screen`]: injection screening with a verdict (benign, suspicious, malicious) and reasons.
//! - [`prompt`]: the safety prefix, the escaped evidence block, reversible pseudonymisation.
//! - [`tier`]: task → tier and the override chain; [`router`]: routes, fallbacks, degradation.
//! - [`breaker`]: a circuit breaker per provider.
//! - [`spend`]: prices, costs, daily and monthly limits.
//! - [`schema`]: JSON Schema (subset) validation of answers; [`quarantine`]: unknown technique IDs.
//! - [`queue`]: priority queues with per-class concurrency and dead letters.
//! - [`setup`]: the gateway a `[llm]` configuration describes.

pub mod breaker;
pub mod gateway;
pub mod prompt;
pub mod quarantine;
pub mod queue;
pub mod router;
pub mod schema;
pub mod screen;
pub mod setup;
pub mod spend;
pub mod tier;

pub use gateway::{Gateway, GatewayError, GatewayRequest, GatewayResponse, QuotaGate, TenantTier};
pub use router::{Route, Router, TierRoutes};
pub use screen::{Screening, Verdict, screen};
pub use tier::Tier;
