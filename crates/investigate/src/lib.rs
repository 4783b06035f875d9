//! Investigation: the per-alert state machine, incident grouping, the deterministic reasoner, and
//! the pipeline stages that run them off the bus.
//!
//! # Layout
//! - [`grouping`]: alert → incident grouping with recorded reasons.
//! - [`reasoner`]: the deterministic reasoner (verdict without a model).
//! - [`model`]: the reasoning agent's request to the model gateway and the reading of its answer.
//! - [`machine`]: one alert's investigation, advanced state by state, each transition a saved and
//!   audited version (resumable after a crash from whatever state was committed last).
//! - `enrich`: the batch's context lookups (threat intel, UEBA, CTEM, FP patterns), concurrent
//!   and each under a timeout.
//! - `work`: the unit of work a batch of investigations commits in one transaction.
//! - [`pipeline`]: the parse and investigate stages (bus consumers) and submission of raw records.
//! - [`report`]: the per-alert result record printed by `triage` and served by the API.

mod enrich;
pub mod grouping;
pub mod machine;
pub mod model;
pub mod pipeline;
pub mod reasoner;
pub mod report;
mod work;

pub use pipeline::{Accepted, Pipeline, PipelineSettings, StageOutcome};
pub use report::{TriageRecord, resolve_incident};
