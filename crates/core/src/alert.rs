//! `CanonicalAlert`: the one alert shape every SIEM adapter maps to (FR-ING-002).

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::severity::Severity;

/// Longest identifier accepted for alert and tenant ids; longer ones are rejected, not truncated,
/// because truncation could make two different alerts collide on the idempotency key.
pub const MAX_ID_LEN: usize = 256;

/// Why an identifier was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("must not be empty")]
    Empty,
    #[error("longer than {MAX_ID_LEN} characters")]
    TooLong,
    #[error("contains control characters")]
    ControlCharacters,
}

fn validate_id(raw: &str) -> Result<String, IdError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(IdError::Empty);
    }
    if trimmed.chars().count() > MAX_ID_LEN {
        return Err(IdError::TooLong);
    }
    if trimmed.chars().any(char::is_control) {
        return Err(IdError::ControlCharacters);
    }
    Ok(trimmed.to_owned())
}

macro_rules! id_newtype {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(raw: &str) -> Result<Self, IdError> {
                validate_id(raw).map($name)
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                $name::parse(&value)
            }
        }
        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }
        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

id_newtype!(
    /// The SIEM's identifier of an alert (Sentinel `SystemAlertId`, Elastic `kibana.alert.uuid`, ...).
    AlertId
);
id_newtype!(
    /// Tenant (customer / workspace) identifier; the audit chain and quotas are per tenant.
    TenantId
);

impl TenantId {
    /// Tenant used when the source carries none.
    pub fn default_tenant() -> TenantId {
        TenantId("default".to_owned())
    }
}

/// Where an alert came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertSource {
    Sentinel,
    Elastic,
    Splunk,
    Webhook,
    Atlas,
    /// Already canonical (ALUSKORT's own format, e.g. replayed from a file).
    Canonical,
}

impl AlertSource {
    pub const fn as_str(self) -> &'static str {
        match self {
            AlertSource::Sentinel => "sentinel",
            AlertSource::Elastic => "elastic",
            AlertSource::Splunk => "splunk",
            AlertSource::Webhook => "webhook",
            AlertSource::Atlas => "atlas",
            AlertSource::Canonical => "canonical",
        }
    }
}

impl fmt::Display for AlertSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An alert normalised from any source (FR-ING-002).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CanonicalAlert {
    pub alert_id: AlertId,
    pub source: AlertSource,
    /// When the detection fired (UTC).
    pub timestamp: DateTime<Utc>,
    pub title: String,
    #[serde(default)]
    pub description: String,
    pub severity: Severity,
    #[serde(default)]
    pub tactics: Vec<String>,
    #[serde(default)]
    pub techniques: Vec<String>,
    /// The source's entity payload as a JSON string (Sentinel `Entities`), or "" when it has none.
    #[serde(default)]
    pub entities_raw: String,
    #[serde(default)]
    pub product: String,
    pub tenant_id: TenantId,
    /// The alert exactly as the source delivered it.
    #[serde(default)]
    pub raw_payload: serde_json::Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_id_rejects_empty_overlong_and_control_characters() {
        assert_eq!(AlertId::parse("  "), Err(IdError::Empty));
        assert_eq!(AlertId::parse(&"x".repeat(MAX_ID_LEN + 1)), Err(IdError::TooLong));
        assert_eq!(AlertId::parse("a\u{0}b"), Err(IdError::ControlCharacters));
        assert_eq!(AlertId::parse(" abc ").map(String::from), Ok("abc".to_owned()));
    }
}
