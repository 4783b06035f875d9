//! Response: playbooks as data, approval gates, action executors that run each action exactly
//! once, and notifications (FR-RSP-001..006).
//!
//! # Layout
//! - [`action`]: the [`action::Executor`] trait, what an execution request and outcome are, and the
//!   catalogue of built-in actions (which are destructive, which reversible).
//! - [`executors`]: Microsoft Defender for Endpoint, Entra ID (Microsoft Graph) and generic
//!   webhook executors, built from `[respond]` config.
//! - [`playbook`]: playbook files, matching an investigation, templated parameters, lint.
//! - [`gate`]: approval gates: who decides, four-eyes, deadlines, escalation (FR-RSP-002/003).
//! - [`service`]: decisions, the deadline sweep and exactly-once execution over the stores.
//! - [`notify`]: Slack, Teams, PagerDuty Events v2 and webhook notifications, retried off the
//!   pipeline's path.

pub mod action;
pub mod executors;
pub mod feedback;
pub mod gate;
pub mod notify;
pub mod playbook;
pub mod service;
