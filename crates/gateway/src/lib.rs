//! The LLM context gateway (NFR-SEC-001..004). This crate starts with the injection screen every
//! piece of untrusted text passes before it may reach a model.
//!
//! # Layout
//! - [`prompt`]: the safety prefix, the escaped evidence block, reversible pseudonymisation.
//! - [`screen`]: injection screening with a verdict (benign, suspicious, malicious) and reasons.

pub mod prompt;
pub mod screen;

pub use screen::{Screening, Verdict, screen};
