//! What ALUSKORT knows without being told: the MITRE ATT&CK Enterprise and ATLAS taxonomies
//! (FR-RSN-004), embedded as compact tables derived from MITRE's data by
//! `scripts/gen_attack_table.py` (ids, names, tactics, parents, status; no descriptions), so
//! technique ids are validated offline, with no import step.
//!
//! # Layout
//! - [`assets`]: the asset/zone graph (in-process or Neo4j): where assets reside, at what consequence.
//! - [`taxonomy`]: the tables, lookups and validation.
//! - [`vector`]: the vector index trait, the embedded exact index (persisted), the conformance suite.
//! - [`context`]: token-budgeted, de-duplicated, attributed context assembly per tier.
//! - [`embed`]: embedders (built-in hashing, OpenAI-compatible `/v1/embeddings`).
//! - [`fp`]: false-positive pattern matching and its score (FR-RSN-006).
//! - [`import`]: full ATT&CK (STIX) and ATLAS (YAML) imports: descriptions, mitigations, groups,
//!   software, `uses` relationships with procedure text, retired flags.
//! - [`memory`]: incident-memory scoring (§3.3 dual decay, rare-important floor).
//! - [`qdrant`]: the vector index on a Qdrant server (REST API).
//! - [`reports`]: threat-intel report chunking and the IOC → report reverse index.
//! - [`stix`]: STIX readers and the stable hash shared by the modules above.
//! - [`suggest`]: techniques from text (BM25 over ATT&CK's own text and procedure examples).
//! - [`ueba`]: user risk state from UEBA scores; absent data is never low (FR-ENR-005).

pub mod assets;
pub mod context;
pub mod embed;
pub mod fp;
pub mod import;
pub mod memory;
pub mod qdrant;
pub mod reports;
pub mod stix;
pub mod suggest;
pub mod taxonomy;
pub mod ueba;
pub mod vector;

pub use taxonomy::{Framework, Taxonomy, Technique, TechniqueError, TechniqueStatus};
