//! Structured entities of an alert, bucketed as FR-ENR-001 lists them.
//!
//! Fields are optional because sources fill them unevenly; every entity keeps the attributes that
//! identify it (UPN/SID/AAD id for accounts, FQDN for hosts, hashes for files) so that incident
//! grouping and enrichment can match on them.

use serde::{Deserialize, Serialize};

use crate::ioc::Ioc;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aad_user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

impl Account {
    /// Stable identity keys, strongest first, lowercased, for matching across alerts.
    pub fn identity_keys(&self) -> Vec<String> {
        let mut keys = Vec::new();
        if let Some(sid) = &self.sid {
            keys.push(format!("sid:{}", sid.to_ascii_lowercase()));
        }
        if let Some(id) = &self.aad_user_id {
            keys.push(format!("aad:{}", id.to_ascii_lowercase()));
        }
        if let Some(upn) = &self.upn {
            keys.push(format!("upn:{}", upn.to_ascii_lowercase()));
        }
        if let (Some(name), Some(domain)) = (&self.name, &self.domain) {
            let short_domain = domain.split('.').next().unwrap_or(domain);
            keys.push(format!("name:{}\\{}", short_domain.to_ascii_lowercase(), name.to_ascii_lowercase()));
        }
        keys
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Host {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fqdn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure_id: Option<String>,
}

impl Host {
    /// The short, lowercased host name (`WS01.corp.local` → `ws01`), the key hosts are matched on.
    pub fn short_name(&self) -> Option<String> {
        self.hostname
            .as_deref()
            .or(self.fqdn.as_deref())
            .and_then(|name| name.split('.').next())
            .filter(|name| !name.is_empty())
            .map(str::to_ascii_lowercase)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpEntity {
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asn: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileHash {
    pub algorithm: String,
    pub value: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntity {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hashes: Vec<FileHash>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessEntity {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_line: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_image_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_command_line: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UrlEntity {
    pub url: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsEntity {
    pub domain: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resolved_ips: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mailbox {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aad_id: Option<String>,
}

/// An entity of a type without its own bucket (mail message, registry value, cloud application...),
/// kept with its type and its scalar attributes rather than dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OtherEntity {
    pub entity_type: String,
    #[serde(default)]
    pub attributes: serde_json::Map<String, serde_json::Value>,
}

/// Every entity of an alert, by bucket (FR-ENR-001).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertEntities {
    #[serde(default)]
    pub accounts: Vec<Account>,
    #[serde(default)]
    pub hosts: Vec<Host>,
    #[serde(default)]
    pub ips: Vec<IpEntity>,
    #[serde(default)]
    pub files: Vec<FileEntity>,
    #[serde(default)]
    pub file_hashes: Vec<FileHash>,
    #[serde(default)]
    pub processes: Vec<ProcessEntity>,
    #[serde(default)]
    pub urls: Vec<UrlEntity>,
    #[serde(default)]
    pub dns: Vec<DnsEntity>,
    #[serde(default)]
    pub mailboxes: Vec<Mailbox>,
    #[serde(default)]
    pub other: Vec<OtherEntity>,
    /// Indicators found in free text (descriptions, command lines) rather than typed entities.
    #[serde(default)]
    pub raw_iocs: Vec<Ioc>,
    /// Problems met while parsing entities; parsing goes on past them.
    #[serde(default)]
    pub parse_errors: Vec<String>,
}

impl AlertEntities {
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
            && self.hosts.is_empty()
            && self.ips.is_empty()
            && self.files.is_empty()
            && self.file_hashes.is_empty()
            && self.processes.is_empty()
            && self.urls.is_empty()
            && self.dns.is_empty()
            && self.mailboxes.is_empty()
            && self.other.is_empty()
    }

    /// Total number of typed entities (excluding raw IOCs).
    pub fn len(&self) -> usize {
        self.accounts.len()
            + self.hosts.len()
            + self.ips.len()
            + self.files.len()
            + self.file_hashes.len()
            + self.processes.len()
            + self.urls.len()
            + self.dns.len()
            + self.mailboxes.len()
            + self.other.len()
    }
}
