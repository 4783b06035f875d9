//! Domain model of ALUSKORT. No I/O, no async, no environment: every other crate speaks these types.
//!
//! # Layout
//! - [`alert`]: `CanonicalAlert` (FR-ING-002) and the identifiers it carries.
//! - [`audit`]: the audit record format (REQUIREMENTS §3.8).
//! - [`entity`]: `AlertEntities`, the structured entities of an alert (FR-ENR-001 buckets).
//! - [`ioc`]: indicator newtypes that can only hold valid, canonical values, and the `Ioc` sum type.
//! - [`severity`]: `Severity` and its queue-priority mapping (FR-ING-005).
//! - [`state`]: investigation states and the legal transitions of the state machine.
//! - [`graph_state`]: `GraphState`, the persisted per-alert investigation record (REQUIREMENTS §3.11).
//! - [`verdict`]: classification labels, `Verdict`, recommended actions.
//! - [`incident`]: `Incident`, a group of related alerts with the reason for each link.
//! - [`response`]: response plans, approvals and action executions (FR-RSP-001..004).
//! - [`degradation`]: the five degradation levels (REQUIREMENTS §3.12).
//! - [`shared`]: `Shared`, a value versions share until one changes it.

pub mod alert;
pub mod audit;
pub mod degradation;
pub mod entity;
pub mod graph_state;
pub mod incident;
pub mod ioc;
pub mod response;
pub mod severity;
pub mod shared;
pub mod state;
pub mod verdict;

pub use alert::{AlertId, AlertSource, CanonicalAlert, TenantId};
pub use degradation::DegradationLevel;
pub use entity::AlertEntities;
pub use graph_state::{DecisionEntry, FieldChange, GraphState, InvestigationId};
pub use incident::{Incident, IncidentLink, IncidentMember};
pub use ioc::{Ioc, IocError, IocType};
pub use severity::{QueuePriority, Severity};
pub use shared::Shared;
pub use state::InvestigationState;
pub use verdict::{ActionKind, Classification, RecommendedAction, Verdict};
