//! What an executor is asked to do, what it answers, and the catalogue of built-in actions.

use serde_json::{Map, Value};

/// One execution request: a planned action of one investigation, its parameters rendered.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionRequest {
    /// [`aluskort_core::response::execution_key`]: sent to the remote side as the idempotency key
    /// (header `Idempotency-Key`, or embedded in the action's comment where the API has no header).
    pub execution_key: String,
    pub tenant_id: String,
    pub investigation_id: String,
    /// `<playbook>/<step>/<target>`.
    pub step_key: String,
    /// Executor name (`defender.isolate_machine`, `webhook.firewall`, ...).
    pub action: String,
    pub target: String,
    pub params: Map<String, Value>,
}

/// What an execution did.
#[derive(Debug, Clone, PartialEq)]
pub enum ActionOutcome {
    /// The remote side applied it now; `detail` is what it answered (ids, status).
    Applied { detail: Value },
    /// It was already in effect from an earlier attempt with the same key (found by
    /// [`Executor::already_applied`]); nothing was sent again.
    AlreadyApplied { detail: Value },
}

/// Why an execution failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    /// Worth retrying later (network, 429, 5xx).
    #[error("retryable: {0}")]
    Retryable(String),
    /// Retrying cannot help (4xx, bad parameters, target not found).
    #[error("{0}")]
    Permanent(String),
}

/// Runs one kind of action against one API.
#[async_trait::async_trait]
pub trait Executor: Send + Sync {
    /// The action name playbooks use.
    fn name(&self) -> &str;

    /// The request this execution would send (method, URL, body), without secrets: what dry-run
    /// records and what the audit record of a real run shows.
    fn describe(&self, request: &ActionRequest) -> Result<Value, ActionError>;

    /// Whether an earlier attempt with `request.execution_key` already took effect (an attempt
    /// whose worker died before recording the result). Executors whose API cannot tell answer
    /// `Ok(false)` and rely on the idempotency key the remote side is sent.
    async fn already_applied(&self, request: &ActionRequest) -> Result<bool, ActionError>;

    async fn execute(&self, request: &ActionRequest) -> Result<ActionOutcome, ActionError>;
}

/// What a playbook step may be: a built-in action or `webhook.<name>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActionSpec {
    pub name: &'static str,
    /// Changes the environment: needs an approval gate at any confidence (FR-RSP-002).
    pub destructive: bool,
    pub reversible: bool,
    /// Entity kind the target must be (`host`, `account`, `ip`, `url`, `domain`, `filehash`,
    /// `mailbox`), or `any`.
    pub target: &'static str,
    pub description: &'static str,
}

/// Built-in actions. `webhook.<name>` steps are generic and declare their own nature.
pub const CATALOGUE: &[ActionSpec] = &[
    ActionSpec {
        name: "defender.isolate_machine",
        destructive: true,
        reversible: true,
        target: "host",
        description: "Microsoft Defender for Endpoint: isolate the device from the network",
    },
    ActionSpec {
        name: "defender.release_machine",
        destructive: true,
        reversible: true,
        target: "host",
        description: "Microsoft Defender for Endpoint: release the device from isolation",
    },
    ActionSpec {
        name: "defender.run_av_scan",
        destructive: false,
        reversible: true,
        target: "host",
        description: "Microsoft Defender for Endpoint: run an antivirus scan on the device",
    },
    ActionSpec {
        name: "defender.collect_investigation_package",
        destructive: false,
        reversible: true,
        target: "host",
        description: "Microsoft Defender for Endpoint: collect the device's investigation package",
    },
    ActionSpec {
        name: "entra.disable_user",
        destructive: true,
        reversible: true,
        target: "account",
        description: "Entra ID (Microsoft Graph): disable the user account (accountEnabled = false)",
    },
    ActionSpec {
        name: "entra.revoke_sessions",
        destructive: true,
        reversible: false,
        target: "account",
        description: "Entra ID (Microsoft Graph): revoke the user's sign-in sessions and refresh tokens",
    },
];

/// The catalogue entry of a built-in action; `None` for `webhook.*` and unknown names.
pub fn spec(name: &str) -> Option<&'static ActionSpec> {
    CATALOGUE.iter().find(|spec| spec.name == name)
}

/// Whether `name` is a generic webhook action, and which webhook.
pub fn webhook_name(name: &str) -> Option<&str> {
    name.strip_prefix("webhook.").filter(|rest| !rest.is_empty())
}
