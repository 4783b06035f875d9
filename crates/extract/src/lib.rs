//! Entity and IOC extraction: pure, synchronous, no I/O (FR-ENR-001..003, NFR-SEC-008).
//!
//! # Layout
//! - [`refang`]: undo defanging (`hxxp`, `[.]`, `(dot)`, `[@]`, ...) before matching.
//! - [`scan`]: anchor-and-expand scanners for domains, IP addresses and hashes.
//! - [`text`]: free-text indicator extraction into validated, canonical [`Ioc`]s.
//! - [`sentinel`]: Microsoft Sentinel `Entities` (JSON string or array, `$id`/`$ref` graphs) into
//!   [`AlertEntities`].
//! - [`elastic`], [`splunk`]: ECS alert documents and CIM notable events into [`AlertEntities`].
//! - [`flat`], [`build`]: dotted-path access to mixed dotted/nested documents; entity builders.
//! - [`sanitize`]: FR-ENR-003 field caps and character stripping, with counted rejections.
//! - [`attack`]: ATT&CK tactic spellings (ids, names, kebab case) normalised.
//! - [`indicators`]: the indicators implied by structured entities (IPs, hashes, URLs, mailboxes...).

pub mod attack;
pub mod build;
pub mod elastic;
pub mod flat;
pub mod indicators;
pub mod json;
pub mod refang;
pub mod sanitize;
pub mod scan;
pub mod sentinel;
pub mod splunk;
pub mod text;

pub use aluskort_core::{AlertEntities, Ioc, IocType};
pub use indicators::entity_iocs;
pub use sanitize::{MAX_FIELD_LENGTH, SanitizeReport};
pub use text::extract_iocs;
