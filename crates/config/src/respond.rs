//! `[respond]`: how proposed response actions are gated and run (FR-RSP-001..006).
//!
//! - `mode`: `dry_run` (the default: every action is recorded with the request it would have sent,
//!   nothing leaves the machine) or `live`.
//! - `[respond.approval_timeouts_minutes]`: how long a human has before an approval times out, by
//!   severity (decisions table: critical 60, high 120, medium 240, low 480, unknown 240; at least
//!   60). On timeout critical/high escalate, medium/low close as `timed_out`.
//! - `four_eyes_tier`: steps of this tier or above need two distinct approvers (default 3).
//! - `[respond.defender]`, `[respond.entra]`: Microsoft Defender for Endpoint and Microsoft Graph,
//!   each with an Entra ID client-credentials token.
//! - `[respond.webhooks.<name>]`: generic HTTP actions (SOAR, EDR, firewall APIs).
//! - `[[respond.notify]]`: Slack, Microsoft Teams, PagerDuty Events v2 or a generic webhook,
//!   told about approvals and escalations.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::Deserialize;

use crate::{SecretString, interpolate};

/// Whether actions really run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResponseMode {
    /// Record what would have run (the request each action would send); send nothing.
    #[default]
    DryRun,
    Live,
}

impl ResponseMode {
    pub const fn as_str(self) -> &'static str {
        match self {
            ResponseMode::DryRun => "dry_run",
            ResponseMode::Live => "live",
        }
    }
}

/// Approval deadlines by severity (FR-RSP-003, decisions table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApprovalTimeouts {
    pub critical: Duration,
    pub high: Duration,
    pub medium: Duration,
    pub low: Duration,
    /// Informational and unknown severities.
    pub unknown: Duration,
}

/// The shortest approval deadline the spec allows.
pub const MIN_APPROVAL_TIMEOUT: Duration = Duration::from_secs(3600);

impl Default for ApprovalTimeouts {
    fn default() -> Self {
        let hours = |h: u64| Duration::from_secs(h * 3600);
        ApprovalTimeouts { critical: hours(1), high: hours(2), medium: hours(4), low: hours(8), unknown: hours(4) }
    }
}

impl ApprovalTimeouts {
    /// The deadline for an investigation of this severity (`critical`, `high`, ...).
    pub fn for_severity(&self, severity: &str) -> Duration {
        match severity {
            "critical" => self.critical,
            "high" => self.high,
            "medium" => self.medium,
            "low" => self.low,
            _ => self.unknown,
        }
    }
}

/// An API reached with an Entra ID (Azure AD) OAuth 2.0 client-credentials token.
#[derive(Debug, Clone, PartialEq)]
pub struct OAuthApi {
    /// Base URL of the API (`https://api.securitycenter.microsoft.com`, `https://graph.microsoft.com`).
    pub api_url: String,
    /// `https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token`.
    pub token_url: String,
    pub client_id: String,
    pub client_secret: SecretString,
    /// `<api>/.default`.
    pub scope: String,
    pub timeout: Duration,
}

/// A generic HTTP action endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookTarget {
    pub name: String,
    pub url: String,
    /// `POST` (default), `PUT`, `PATCH` or `DELETE`.
    pub method: String,
    /// Extra headers; values may come from `${VAR}` and are treated as secrets.
    pub headers: BTreeMap<String, SecretString>,
    /// When set, the body is signed: `X-Aluskort-Signature: sha256=<hex HMAC-SHA256>`.
    pub secret: Option<SecretString>,
    pub timeout: Duration,
}

/// Where notifications go.
#[derive(Debug, Clone, PartialEq)]
pub enum NotifyKind {
    /// Slack incoming webhook.
    Slack { url: SecretString },
    /// Microsoft Teams incoming webhook (or Workflows webhook).
    Teams { url: SecretString },
    /// PagerDuty Events API v2.
    PagerDuty { url: String, routing_key: SecretString },
    /// Any HTTP endpoint taking the event as JSON.
    Webhook { url: SecretString, secret: Option<SecretString> },
}

#[derive(Debug, Clone, PartialEq)]
pub struct NotifyTarget {
    pub kind: NotifyKind,
    /// Audit event types that are sent (`approval.requested`, `approval.escalated`, ...).
    pub events: Vec<String>,
    pub timeout: Duration,
    pub max_retries: u32,
}

impl NotifyKind {
    pub const fn as_str(&self) -> &'static str {
        match self {
            NotifyKind::Slack { .. } => "slack",
            NotifyKind::Teams { .. } => "teams",
            NotifyKind::PagerDuty { .. } => "pagerduty",
            NotifyKind::Webhook { .. } => "webhook",
        }
    }
}

/// Notification events sent when `events` is not given.
pub const DEFAULT_NOTIFY_EVENTS: [&str; 4] = ["approval.requested", "approval.escalated", "approval.timed_out", "response.executed"];

/// PagerDuty Events API v2 enqueue endpoint.
pub const PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// Validated `[respond]`.
#[derive(Debug, Clone, PartialEq)]
pub struct RespondConfig {
    pub mode: ResponseMode,
    /// Extra playbooks (`*.toml`) that add to or override the built-in set by id; default
    /// `<data_dir>/playbooks` when that directory exists.
    pub playbook_dir: Option<std::path::PathBuf>,
    pub approval_timeouts: ApprovalTimeouts,
    /// Per-tenant overrides of `approval_timeouts`.
    pub tenant_timeouts: BTreeMap<String, ApprovalTimeouts>,
    pub four_eyes_tier: u8,
    /// How long an execution may be in flight before another worker treats it as in doubt and
    /// checks (then, if not applied, repeats) it.
    pub lease: Duration,
    pub defender: Option<OAuthApi>,
    pub entra: Option<OAuthApi>,
    pub webhooks: BTreeMap<String, WebhookTarget>,
    pub notify: Vec<NotifyTarget>,
}

impl Default for RespondConfig {
    fn default() -> Self {
        RespondConfig {
            mode: ResponseMode::DryRun,
            playbook_dir: None,
            approval_timeouts: ApprovalTimeouts::default(),
            tenant_timeouts: BTreeMap::new(),
            four_eyes_tier: 3,
            lease: Duration::from_secs(300),
            defender: None,
            entra: None,
            webhooks: BTreeMap::new(),
            notify: Vec::new(),
        }
    }
}

impl RespondConfig {
    /// The deadlines that apply to `tenant`.
    pub fn timeouts_for(&self, tenant: &str) -> &ApprovalTimeouts {
        self.tenant_timeouts.get(tenant).unwrap_or(&self.approval_timeouts)
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRespond {
    /// `dry_run` (default) or `live`.
    pub mode: Option<String>,
    pub playbook_dir: Option<String>,
    #[serde(default)]
    pub approval_timeouts_minutes: RawTimeouts,
    /// `[respond.tenants.<tenant>.approval_timeouts_minutes]`.
    #[serde(default)]
    pub tenants: BTreeMap<String, RawTenantRespond>,
    pub four_eyes_tier: Option<u8>,
    pub lease_secs: Option<u64>,
    pub defender: Option<RawOAuthApi>,
    pub entra: Option<RawOAuthApi>,
    #[serde(default)]
    pub webhooks: BTreeMap<String, RawWebhook>,
    #[serde(default)]
    pub notify: Vec<RawNotify>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimeouts {
    pub critical: Option<u64>,
    pub high: Option<u64>,
    pub medium: Option<u64>,
    pub low: Option<u64>,
    pub unknown: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTenantRespond {
    #[serde(default)]
    pub approval_timeouts_minutes: RawTimeouts,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOAuthApi {
    pub api_url: Option<String>,
    pub token_url: Option<String>,
    /// Entra tenant id, used to build the default `token_url`.
    pub azure_tenant_id: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub scope: Option<String>,
    pub timeout_secs: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebhook {
    pub url: Option<String>,
    pub method: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub secret: Option<String>,
    pub timeout_secs: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNotify {
    /// `slack`, `teams`, `pagerduty` or `webhook`.
    pub kind: Option<String>,
    pub url: Option<String>,
    pub routing_key: Option<String>,
    pub secret: Option<String>,
    pub events: Option<Vec<String>>,
    pub timeout_secs: Option<u64>,
    pub max_retries: Option<u32>,
}

fn timeouts(field: &str, raw: &RawTimeouts, base: &ApprovalTimeouts, errors: &mut Vec<String>) -> ApprovalTimeouts {
    let one = |key: &str, minutes: Option<u64>, default: Duration, errors: &mut Vec<String>| match minutes {
        None => default,
        Some(minutes) => {
            let value = Duration::from_secs(minutes.saturating_mul(60));
            if value < MIN_APPROVAL_TIMEOUT {
                errors.push(format!("`{field}.{key}`: {minutes} minutes is below the minimum of 60 (FR-RSP-003)"));
            }
            value
        }
    };
    ApprovalTimeouts {
        critical: one("critical", raw.critical, base.critical, errors),
        high: one("high", raw.high, base.high, errors),
        medium: one("medium", raw.medium, base.medium, errors),
        low: one("low", raw.low, base.low, errors),
        unknown: one("unknown", raw.unknown, base.unknown, errors),
    }
}

fn http_url(field: &str, url: &str, errors: &mut Vec<String>) {
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        errors.push(format!("`{field}`: {url:?} must be an http(s) URL"));
    }
}

fn timeout_of(field: &str, secs: Option<u64>, default: u64, errors: &mut Vec<String>) -> Duration {
    let secs = secs.unwrap_or(default);
    if !(1..=300).contains(&secs) {
        errors.push(format!("`{field}`: {secs} must be 1..=300 (seconds)"));
    }
    Duration::from_secs(secs)
}

fn oauth_api(
    field: &str,
    raw: &RawOAuthApi,
    default_api: &str,
    env: &HashMap<String, String>,
    errors: &mut Vec<String>,
) -> Option<OAuthApi> {
    let before = errors.len();
    let text = |key: &str, value: Option<&String>, errors: &mut Vec<String>| {
        value.map(|value| interpolate(&format!("{field}.{key}"), value, env, errors)).filter(|value| !value.trim().is_empty())
    };
    let api_url = text("api_url", raw.api_url.as_ref(), errors).unwrap_or_else(|| default_api.to_owned());
    http_url(&format!("{field}.api_url"), &api_url, errors);
    let token_url = match (text("token_url", raw.token_url.as_ref(), errors), text("azure_tenant_id", raw.azure_tenant_id.as_ref(), errors))
    {
        (Some(url), _) => Some(url),
        (None, Some(tenant)) => Some(format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token")),
        (None, None) => {
            errors.push(format!("`{field}`: `token_url` or `azure_tenant_id` is required"));
            None
        }
    };
    if let Some(url) = &token_url {
        http_url(&format!("{field}.token_url"), url, errors);
    }
    let client_id = text("client_id", raw.client_id.as_ref(), errors);
    if client_id.is_none() {
        errors.push(format!("`{field}.client_id` is required"));
    }
    let client_secret = text("client_secret", raw.client_secret.as_ref(), errors);
    if client_secret.is_none() {
        errors.push(format!("`{field}.client_secret` is required (use \"${{VAR}}\" to read it from the environment)"));
    }
    // The token audience is the API's resource id, also for regional or test endpoints.
    let scope = text("scope", raw.scope.as_ref(), errors).unwrap_or_else(|| format!("{default_api}/.default"));
    let timeout = timeout_of(&format!("{field}.timeout_secs"), raw.timeout_secs, 30, errors);
    if errors.len() != before {
        return None;
    }
    Some(OAuthApi {
        api_url: api_url.trim_end_matches('/').to_owned(),
        token_url: token_url?,
        client_id: client_id?,
        client_secret: SecretString::new(client_secret?),
        scope,
        timeout,
    })
}

fn webhook(name: &str, raw: &RawWebhook, env: &HashMap<String, String>, errors: &mut Vec<String>) -> Option<WebhookTarget> {
    let before = errors.len();
    let field = format!("respond.webhooks.{name}");
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        errors.push(format!("`{field}`: a webhook name is letters, digits, '-' or '_'"));
    }
    let url = raw.url.as_deref().map(|url| interpolate(&format!("{field}.url"), url, env, errors));
    match &url {
        Some(url) => http_url(&format!("{field}.url"), url, errors),
        None => errors.push(format!("`{field}.url` is required")),
    }
    let method = raw.method.clone().unwrap_or_else(|| "POST".to_owned()).to_ascii_uppercase();
    if !matches!(method.as_str(), "POST" | "PUT" | "PATCH" | "DELETE") {
        errors.push(format!("`{field}.method`: {method:?} must be POST, PUT, PATCH or DELETE"));
    }
    let headers = raw
        .headers
        .iter()
        .map(|(key, value)| (key.clone(), SecretString::new(interpolate(&format!("{field}.headers.{key}"), value, env, errors))))
        .collect();
    let secret = raw.secret.as_deref().map(|secret| SecretString::new(interpolate(&format!("{field}.secret"), secret, env, errors)));
    let timeout = timeout_of(&format!("{field}.timeout_secs"), raw.timeout_secs, 30, errors);
    if errors.len() != before {
        return None;
    }
    Some(WebhookTarget { name: name.to_owned(), url: url?, method, headers, secret, timeout })
}

fn notify(index: usize, raw: &RawNotify, env: &HashMap<String, String>, errors: &mut Vec<String>) -> Option<NotifyTarget> {
    let before = errors.len();
    let field = format!("respond.notify[{index}]");
    let url = raw.url.as_deref().map(|url| interpolate(&format!("{field}.url"), url, env, errors));
    if let Some(url) = &url {
        http_url(&format!("{field}.url"), url, errors);
    }
    let need_url = |errors: &mut Vec<String>| {
        if url.is_none() {
            errors.push(format!("`{field}.url` is required"));
        }
        url.clone().map(SecretString::new)
    };
    let kind = match raw.kind.as_deref() {
        Some("slack") => need_url(errors).map(|url| NotifyKind::Slack { url }),
        Some("teams") => need_url(errors).map(|url| NotifyKind::Teams { url }),
        Some("webhook") => need_url(errors).map(|url| NotifyKind::Webhook {
            url,
            secret: raw.secret.as_deref().map(|s| SecretString::new(interpolate(&format!("{field}.secret"), s, env, errors))),
        }),
        Some("pagerduty") => {
            let key = raw.routing_key.as_deref().map(|key| interpolate(&format!("{field}.routing_key"), key, env, errors));
            match key {
                Some(key) if key.len() == 32 => Some(NotifyKind::PagerDuty {
                    url: url.clone().unwrap_or_else(|| PAGERDUTY_EVENTS_URL.to_owned()),
                    routing_key: SecretString::new(key),
                }),
                Some(_) => {
                    errors.push(format!("`{field}.routing_key` must be the 32-character integration key"));
                    None
                }
                None => {
                    errors.push(format!("`{field}.routing_key` is required for kind = \"pagerduty\""));
                    None
                }
            }
        }
        Some(other) => {
            errors.push(format!("`{field}.kind`: unknown kind {other:?} (expected slack, teams, pagerduty or webhook)"));
            None
        }
        None => {
            errors.push(format!("`{field}.kind` is required (slack, teams, pagerduty or webhook)"));
            None
        }
    };
    let events = raw.events.clone().unwrap_or_else(|| DEFAULT_NOTIFY_EVENTS.iter().map(|e| (*e).to_owned()).collect());
    if events.is_empty() {
        errors.push(format!("`{field}.events` must name at least one event"));
    }
    let timeout = timeout_of(&format!("{field}.timeout_secs"), raw.timeout_secs, 10, errors);
    let max_retries = raw.max_retries.unwrap_or(3);
    if max_retries > 10 {
        errors.push(format!("`{field}.max_retries`: {max_retries} must be at most 10"));
    }
    if errors.len() != before {
        return None;
    }
    Some(NotifyTarget { kind: kind?, events, timeout, max_retries })
}

pub(crate) fn validate_respond(raw: RawRespond, env: &HashMap<String, String>, errors: &mut Vec<String>) -> RespondConfig {
    let mode = match raw.mode.as_deref() {
        None | Some("dry_run") => ResponseMode::DryRun,
        Some("live") => ResponseMode::Live,
        Some(other) => {
            errors.push(format!("`respond.mode`: unknown mode {other:?} (expected \"dry_run\" or \"live\")"));
            ResponseMode::DryRun
        }
    };
    let approval_timeouts =
        timeouts("respond.approval_timeouts_minutes", &raw.approval_timeouts_minutes, &ApprovalTimeouts::default(), errors);
    let tenant_timeouts = raw
        .tenants
        .iter()
        .map(|(tenant, table)| {
            let field = format!("respond.tenants.{tenant}.approval_timeouts_minutes");
            (tenant.clone(), timeouts(&field, &table.approval_timeouts_minutes, &approval_timeouts, errors))
        })
        .collect();
    let four_eyes_tier = raw.four_eyes_tier.unwrap_or(3);
    if !(2..=9).contains(&four_eyes_tier) {
        errors.push(format!("`respond.four_eyes_tier`: {four_eyes_tier} must be 2..=9"));
    }
    let lease_secs = raw.lease_secs.unwrap_or(300);
    if !(10..=86_400).contains(&lease_secs) {
        errors.push(format!("`respond.lease_secs`: {lease_secs} must be 10..=86400"));
    }
    let defender =
        raw.defender.as_ref().and_then(|api| oauth_api("respond.defender", api, "https://api.securitycenter.microsoft.com", env, errors));
    let entra = raw.entra.as_ref().and_then(|api| oauth_api("respond.entra", api, "https://graph.microsoft.com", env, errors));
    let webhooks =
        raw.webhooks.iter().filter_map(|(name, hook)| webhook(name, hook, env, errors).map(|hook| (name.clone(), hook))).collect();
    let notify = raw.notify.iter().enumerate().filter_map(|(index, target)| notify(index, target, env, errors)).collect();
    RespondConfig {
        mode,
        playbook_dir: raw.playbook_dir.map(|dir| std::path::PathBuf::from(interpolate("respond.playbook_dir", &dir, env, errors))),
        approval_timeouts,
        tenant_timeouts,
        four_eyes_tier,
        lease: Duration::from_secs(lease_secs),
        defender,
        entra,
        webhooks,
        notify,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<RespondConfig, Vec<String>> {
        let raw: RawRespond = toml::from_str(text).map_err(|e| vec![e.to_string()])?;
        let env = HashMap::from([("SECRET".to_owned(), "s3cr3t".to_owned())]);
        let mut errors = Vec::new();
        let config = validate_respond(raw, &env, &mut errors);
        if errors.is_empty() { Ok(config) } else { Err(errors) }
    }

    #[test]
    fn defaults_are_dry_run_with_the_decision_table_timeouts_fr_rsp_003() {
        let config = parse("").expect("empty is valid");
        assert_eq!(config.mode, ResponseMode::DryRun);
        assert_eq!(config.approval_timeouts.for_severity("critical"), Duration::from_secs(3600));
        assert_eq!(config.approval_timeouts.for_severity("high"), Duration::from_secs(7200));
        assert_eq!(config.approval_timeouts.for_severity("medium"), Duration::from_secs(4 * 3600));
        assert_eq!(config.approval_timeouts.for_severity("low"), Duration::from_secs(8 * 3600));
        assert_eq!(config.approval_timeouts.for_severity("informational"), Duration::from_secs(4 * 3600));
        assert_eq!(config.four_eyes_tier, 3);
    }

    #[test]
    fn timeouts_below_one_hour_and_bad_targets_are_each_named() {
        let errors = parse(
            r#"
            mode = "yolo"
            [approval_timeouts_minutes]
            critical = 30
            [tenants.acme.approval_timeouts_minutes]
            low = 10
            [defender]
            client_id = "x"
            [webhooks."bad name"]
            method = "GET"
            [[notify]]
            kind = "pagerduty"
            routing_key = "short"
            [[notify]]
            kind = "carrier-pigeon"
            "#,
        )
        .expect_err("invalid");
        let all = errors.join("\n");
        for needle in [
            "respond.mode",
            "respond.approval_timeouts_minutes.critical",
            "respond.tenants.acme.approval_timeouts_minutes.low",
            "respond.defender",
            "respond.defender.client_secret",
            "respond.webhooks.bad name",
            "respond.webhooks.bad name.url",
            "respond.webhooks.bad name.method",
            "respond.notify[0].routing_key",
            "respond.notify[1].kind",
        ] {
            assert!(all.contains(needle), "no error names {needle}: {all}");
        }
    }

    #[test]
    fn tenant_overrides_inherit_the_global_values_and_secrets_are_interpolated() {
        let config = parse(
            r#"
            mode = "live"
            [approval_timeouts_minutes]
            high = 180
            [tenants.acme.approval_timeouts_minutes]
            critical = 90
            [entra]
            azure_tenant_id = "contoso"
            client_id = "app"
            client_secret = "${SECRET}"
            "#,
        )
        .expect("valid");
        assert_eq!(config.mode, ResponseMode::Live);
        let acme = config.timeouts_for("acme");
        assert_eq!(acme.critical, Duration::from_secs(90 * 60));
        assert_eq!(acme.high, Duration::from_secs(180 * 60));
        assert_eq!(config.timeouts_for("other").critical, Duration::from_secs(3600));
        let entra = config.entra.expect("entra");
        assert_eq!(entra.token_url, "https://login.microsoftonline.com/contoso/oauth2/v2.0/token");
        assert_eq!(entra.client_secret.expose(), "s3cr3t");
        assert_eq!(entra.scope, "https://graph.microsoft.com/.default");
    }
}
