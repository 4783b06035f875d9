//! The playbook file format: what a playbook author writes, field by field.
//!
//! ```toml
//! [playbook]
//! id = "phishing"
//! name = "Phishing email"
//! description = "Contain a phishing email and the accounts it may have reached."
//! version = 1
//!
//! [match]
//! techniques = ["T1566", "T1534"]
//! min_severity = "low"
//!
//! [[steps]]
//! id = "purge_message"
//! description = "Soft-delete message {{ target }} from {{ target.recipient }}"
//! action = "webhook.mail"
//! for_each = "mail_message"
//! tier = 2
//! destructive = true
//! reversible = true
//! [steps.params]
//! operation = "soft_delete"
//! network_message_id = "{{ target }}"
//! ```
//!
//! Parsing only checks shape (unknown fields are refused); every rule about meaning lives in
//! [`super::lint`], so one run reports all of a file's problems.

use std::fmt;

use aluskort_core::{Classification, Severity};
use serde::{Deserialize, Serialize};

/// One playbook file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Playbook {
    /// `[playbook]`: identity and documentation.
    pub playbook: Meta,
    /// `[match]`: which investigations the playbook applies to.
    #[serde(rename = "match")]
    pub criteria: MatchCriteria,
    /// `[[steps]]`: the actions it proposes, in the order they are planned.
    #[serde(default)]
    pub steps: Vec<Step>,
}

/// `[playbook]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Meta {
    /// Stable identifier (letters, digits, `-`, `_`): the first part of every step key, and what a
    /// file in the playbook directory overrides a built-in playbook by.
    pub id: String,
    /// Short human name, shown to approvers.
    pub name: String,
    /// What the playbook is for and when it should not be used.
    #[serde(default)]
    pub description: String,
    /// Revision of this playbook, at least 1; increment it on every change so that audit records
    /// say which revision planned an action.
    pub version: u32,
    /// `false` keeps the playbook out of every plan (an override file can switch a built-in off).
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
}

const fn enabled_by_default() -> bool {
    true
}

/// `[match]`. Every criterion given must hold; within a list any one item is enough. Tactics and
/// techniques together are one criterion (the alert shows any listed tactic or any listed
/// technique), because requiring both would only repeat what a technique already implies.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchCriteria {
    /// ATT&CK tactic ids (`TA0006`) or ATLAS tactic ids (`AML.TA0004`). Alerts that name tactics
    /// (`CredentialAccess`, `Credential Access`) match the tactic's id.
    #[serde(default)]
    pub tactics: Vec<String>,
    /// ATT&CK (`T1566`, `T1566.001`) or ATLAS (`AML.T0051`) technique ids. A technique matches its
    /// sub-techniques: `T1566` matches an alert showing `T1566.002`, not the other way round.
    #[serde(default)]
    pub techniques: Vec<String>,
    /// Product names as the SIEM reports them (`Microsoft 365 Defender`), compared whole and
    /// without regard to case.
    #[serde(default)]
    pub products: Vec<String>,
    /// Severities that match (`informational`, `low`, `medium`, `high`, `critical`); the severity
    /// is the investigation's once reasoning has set one, the alert's before.
    #[serde(default)]
    pub severities: Vec<Severity>,
    /// Lowest severity that matches.
    #[serde(default)]
    pub min_severity: Option<Severity>,
    /// Entity kinds the investigation must have at least one of each of.
    #[serde(default)]
    pub entity_kinds: Vec<EntityKind>,
    /// Verdicts that match; default `true_positive` and `needs_investigation`. Benign verdicts
    /// (`false_positive`, `benign_true_positive`) are refused by lint: playbooks never fire on them.
    #[serde(default)]
    pub classifications: Option<Vec<Classification>>,
}

/// Verdicts a playbook matches when its `[match]` names none.
pub const DEFAULT_CLASSIFICATIONS: [Classification; 2] = [Classification::TruePositive, Classification::NeedsInvestigation];

impl MatchCriteria {
    /// The verdicts this playbook matches.
    pub fn classifications(&self) -> &[Classification] {
        self.classifications.as_deref().unwrap_or(&DEFAULT_CLASSIFICATIONS)
    }

    /// One line for listings: `techniques T1566, T1534; severity >= low`.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if !self.tactics.is_empty() {
            parts.push(format!("tactics {}", self.tactics.join(", ")));
        }
        if !self.techniques.is_empty() {
            parts.push(format!("techniques {}", self.techniques.join(", ")));
        }
        if !self.products.is_empty() {
            parts.push(format!("products {}", self.products.join(", ")));
        }
        if !self.severities.is_empty() {
            let names: Vec<&str> = self.severities.iter().map(|severity| severity.as_str()).collect();
            parts.push(format!("severity {}", names.join("|")));
        }
        if let Some(min) = self.min_severity {
            parts.push(format!("severity >= {min}"));
        }
        if !self.entity_kinds.is_empty() {
            let kinds: Vec<&str> = self.entity_kinds.iter().map(|kind| kind.as_str()).collect();
            parts.push(format!("entities {}", kinds.join(", ")));
        }
        if self.classifications.is_some() {
            let names: Vec<&str> = self.classifications().iter().map(|c| c.as_str()).collect();
            parts.push(format!("verdict {}", names.join("|")));
        }
        parts.join("; ")
    }
}

/// `[[steps]]`: one action, applied once or once per entity of a kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Identifier within the playbook (letters, digits, `-`, `_`): the second part of the step key.
    pub id: String,
    /// What the step does and why, for the approver; may hold `{{ variables }}`.
    #[serde(default)]
    pub description: String,
    /// A built-in action of [`crate::action::CATALOGUE`] (`defender.isolate_machine`, ...) or
    /// `webhook.<name>`.
    pub action: String,
    /// Run once per entity of this kind, with the entity as `{{ target }}`; absent for one
    /// investigation-wide step with an empty target.
    #[serde(default)]
    pub for_each: Option<EntityKind>,
    /// 0 runs automatically, 1 runs automatically when the verdict is confident enough
    /// (FR-RSP-006), 2 and above wait for approval (FR-RSP-001); at most 3.
    pub tier: u8,
    /// Changes the environment (isolates, disables, blocks, deletes). Destructive steps need
    /// tier 2 or above (FR-RSP-002). Required: a playbook must say so for every step.
    pub destructive: bool,
    /// Whether the change can be undone. Required, shown to the approver.
    pub reversible: bool,
    /// Parameters sent to the executor; string values (at any depth) may hold `{{ variables }}`.
    #[serde(default)]
    pub params: toml::Table,
}

/// What a step can be applied to: a kind of entity an investigation holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntityKind {
    /// A device; the target is its FQDN (or host name, or Defender device id).
    Host,
    /// A user; the target is the UPN (or Entra object id, or `DOMAIN\name`, or SID).
    Account,
    /// An IP address.
    Ip,
    /// A URL.
    Url,
    /// A domain name (DNS entities).
    Domain,
    /// A file, by its strongest hash (SHA-256, else SHA-1, else MD5).
    Filehash,
    /// A mailbox, by primary SMTP address.
    Mailbox,
    /// An email message (Sentinel `mailMessage`), by `NetworkMessageId`.
    MailMessage,
    /// An OAuth application (Sentinel `oauth-application`), by its application (client) id.
    OauthApp,
}

impl EntityKind {
    pub const ALL: [EntityKind; 9] = [
        EntityKind::Host,
        EntityKind::Account,
        EntityKind::Ip,
        EntityKind::Url,
        EntityKind::Domain,
        EntityKind::Filehash,
        EntityKind::Mailbox,
        EntityKind::MailMessage,
        EntityKind::OauthApp,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            EntityKind::Host => "host",
            EntityKind::Account => "account",
            EntityKind::Ip => "ip",
            EntityKind::Url => "url",
            EntityKind::Domain => "domain",
            EntityKind::Filehash => "filehash",
            EntityKind::Mailbox => "mailbox",
            EntityKind::MailMessage => "mail_message",
            EntityKind::OauthApp => "oauth_app",
        }
    }

    pub fn parse(text: &str) -> Option<EntityKind> {
        EntityKind::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

impl fmt::Display for EntityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses one playbook file; the error is one line: `line L, column C: message`.
pub fn parse(text: &str) -> Result<Playbook, String> {
    toml::from_str::<Playbook>(text).map_err(|error| {
        let message = error.message().trim().replace('\n', " ");
        match error.span() {
            Some(span) => {
                let (line, column) = line_column(text, span.start);
                format!("line {line}, column {column}: {message}")
            }
            None => message,
        }
    })
}

/// 1-based line and column (in characters) of byte `offset`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |last| last.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[playbook]
id = "p"
name = "P"
version = 1

[match]
techniques = ["T1566"]

[[steps]]
id = "ticket"
action = "webhook.ticket"
tier = 0
destructive = false
reversible = true
"#;

    #[test]
    fn parses_a_minimal_playbook_with_defaults() {
        let playbook = parse(MINIMAL).expect("parses");
        assert!(playbook.playbook.enabled);
        assert_eq!(playbook.criteria.classifications(), &DEFAULT_CLASSIFICATIONS);
        assert_eq!(playbook.steps[0].for_each, None);
        assert!(playbook.steps[0].params.is_empty());
        assert_eq!(playbook.criteria.summary(), "techniques T1566");
    }

    #[test]
    fn unknown_fields_and_missing_required_fields_are_refused_with_a_location() {
        let unknown = MINIMAL.replace("tier = 0", "tier = 0\nrequires_approval = true");
        let error = parse(&unknown).expect_err("unknown field");
        assert!(error.starts_with("line 14, column 1: unknown field `requires_approval`"), "{error}");
        let missing = MINIMAL.replace("destructive = false\n", "");
        let error = parse(&missing).expect_err("destructive is required");
        assert!(error.contains("missing field `destructive`"), "{error}");
        let bad_kind = MINIMAL.replace("tier = 0", "tier = 0\nfor_each = \"printer\"");
        assert!(parse(&bad_kind).expect_err("unknown kind").contains("unknown variant `printer`"));
    }

    #[test]
    fn entity_kind_names_round_trip() {
        for kind in EntityKind::ALL {
            assert_eq!(EntityKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(EntityKind::parse("any"), None);
    }
}
