//! Incidents: related alerts grouped together, each link with its reason (decisions table,
//! "Alert→incident grouping").

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::alert::{AlertId, TenantId};
use crate::severity::Severity;

/// Why an alert joined an incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentLink {
    pub alert_id: AlertId,
    /// The alert already in the incident that it matched, or `None` for the alert that opened it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linked_to: Option<AlertId>,
    /// Human-readable reason, e.g. `shared host ws01 within 24h`.
    pub reason: String,
}

/// What grouping needs to know about each member alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentMember {
    pub alert_id: AlertId,
    pub severity: Severity,
    /// Activity window of the alert (Sentinel `StartTime`..`EndTime`, else its timestamp).
    pub activity_start: DateTime<Utc>,
    pub activity_end: DateTime<Utc>,
    /// Identity keys of its entities (`host:ws01`, `aad:<id>`, ...), the values links are made on.
    pub keys: Vec<String>,
    #[serde(default)]
    pub tactics: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub incident_id: String,
    pub tenant_id: TenantId,
    pub title: String,
    pub severity: Severity,
    pub alert_ids: Vec<AlertId>,
    pub links: Vec<IncidentLink>,
    #[serde(default)]
    pub members: Vec<IncidentMember>,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// Set when this incident was merged into another; the other one is authoritative.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_into: Option<String>,
    /// How many times it has been stored (0: never). A write stores `version` and lands only
    /// while the stored incident is still at `version - 1` (optimistic versioning): two writers
    /// growing the same incident at once cannot both land, so neither loses the other's members.
    #[serde(default)]
    pub version: u64,
}
