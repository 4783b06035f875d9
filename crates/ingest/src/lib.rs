//! Ingestion: reading alert records, recognising their format, and normalising them into
//! `CanonicalAlert` plus extracted entities and indicators (FR-ING-001/002, FR-ENR-001/002).
//!
//! # Layout
//! - [`reader`]: split an input (JSONL, a JSON array, a single object, or a Log Analytics query
//!   response) into records, each with its location for error messages.
//! - [`detect`]: which source format a record is in.
//! - [`sentinel`], [`elastic`], [`splunk`]: pure mappings of a Sentinel `SecurityAlert` row, an
//!   Elastic Security alert document, and a Splunk ES notable event.
//! - [`identify`]: the de-duplication key and heartbeat/test detection receivers apply before a
//!   record is made durable.
//! - [`canonical`]: records already in ALUSKORT's canonical form.
//! - [`normalize`]: the parse stage's pure function: record → [`NormalizedAlert`] or a reason.
//! - [`time`]: the timestamp spellings SIEMs use.

pub mod canonical;
pub mod detect;
pub mod elastic;
pub mod identify;
pub mod normalize;
pub mod reader;
pub mod sentinel;
pub mod splunk;
pub mod time;

pub use detect::{RecordFormat, detect_format};
pub use identify::{Identity, identify};
pub use normalize::{IngestError, NormalizedAlert, RawAlert, normalize};
pub use reader::{InputRecord, read_records};
