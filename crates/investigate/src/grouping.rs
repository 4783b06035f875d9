//! Alert → incident grouping (decisions table: "related alerts (shared entities within a time
//! window, same kill chain) are grouped into one incident, with the reason for each link recorded").
//!
//! Two alerts are related when they share an identity key (host, account, mailbox, mail message,
//! URL, domain, non-system file hash, or an attacker-side IP) and their activity windows are at most
//! [`DEFAULT_WINDOW`] apart. Relatedness is transitive: an alert related to members of two incidents
//! merges them (the older survives; the other records `merged_into`). The result does not depend on
//! the order alerts arrive in.
//!
//! Shared infrastructure is weighted out: a host or client IP seen with more than
//! [`HUB_ACCOUNTS`] distinct accounts in the window (a domain controller, a proxy) is not a link
//! key, and the decision says so. Hub status is judged from the alerts seen so far, so alerts
//! linked through a host before it became a hub stay linked.
//!
//! IP addresses on endpoint alerts (alerts with a host) are the device's own (often a shared NAT
//! egress address, as in the Sentinel sample data where two unrelated endpoints report the same
//! public IP), so they are not link keys there; on identity and mail alerts they are the client's.
//!
//! Several investigate replicas group into one store. Each batch claims every entity key it looked
//! up at the epoch after the one it read before its candidates, and stores each incident it wrote
//! at the version after the one it read; a claim or an incident that moved meanwhile fails the
//! commit (`Conflict`) and the batch is grouped again over the other replica's incidents
//! (`aluskort_store::GroupingClaim`). Neither a split incident nor a lost member results.

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use aluskort_core::entity::AlertEntities;
use aluskort_core::{AlertId, Incident, IncidentLink, IncidentMember, TenantId};
use chrono::{DateTime, Duration, Utc};

/// How far apart two alerts' activity may be and still be linked.
pub const DEFAULT_WINDOW: Duration = Duration::hours(24);

/// Most alerts one incident holds (Microsoft Sentinel's limit too). A full incident takes no new
/// members: a related alert opens a new incident, whose opening link names the full one. This keeps
/// grouping and storage linear on a noisy host.
pub const MAX_INCIDENT_ALERTS: usize = 150;

/// Well-known local service accounts: shared by every machine, never evidence of a relation.
const GENERIC_ACCOUNT_SIDS: &[&str] = &["s-1-5-18", "s-1-5-19", "s-1-5-20"];
const GENERIC_ACCOUNT_NAMES: &[&str] = &["system", "local service", "network service", "anonymous logon", "-"];

/// Identity keys of an alert's entities, sorted and unique.
pub fn entity_keys(entities: &AlertEntities) -> Vec<String> {
    let mut keys = Vec::new();
    for host in &entities.hosts {
        if let Some(name) = host.short_name() {
            keys.push(format!("host:{name}"));
        }
        if let Some(device) = &host.device_id {
            keys.push(format!("device:{}", device.to_ascii_lowercase()));
        }
    }
    for account in &entities.accounts {
        let generic_sid = account.sid.as_deref().is_some_and(|sid| GENERIC_ACCOUNT_SIDS.contains(&sid.to_ascii_lowercase().as_str()));
        let generic_name = account.name.as_deref().is_some_and(|name| GENERIC_ACCOUNT_NAMES.contains(&name.to_ascii_lowercase().as_str()));
        if generic_sid || generic_name {
            continue;
        }
        keys.extend(account.identity_keys());
    }
    for mailbox in &entities.mailboxes {
        if let Some(address) = &mailbox.address {
            keys.push(format!("mailbox:{address}"));
        }
    }
    for other in &entities.other {
        if aluskort_extract::sentinel::normalise_type(&other.entity_type) == "mailmessage"
            && let Some(id) = other.attributes.get("NetworkMessageId").and_then(|v| v.as_str())
        {
            keys.push(format!("mail:{}", id.to_ascii_lowercase()));
        }
    }
    for url in &entities.urls {
        keys.push(format!("url:{}", url.url));
    }
    for dns in &entities.dns {
        keys.push(format!("domain:{}", dns.domain));
    }
    for file in &entities.files {
        let system = file.directory.as_deref().is_some_and(is_system_directory);
        if !system {
            keys.extend(
                file.hashes.iter().filter(|h| h.algorithm == "sha256" || h.algorithm == "sha1").map(|h| format!("hash:{}", h.value)),
            );
        }
    }
    if entities.hosts.is_empty() {
        for ip in &entities.ips {
            if ip.address.parse::<IpAddr>().is_ok_and(is_global) {
                keys.push(format!("ip:{}", ip.address));
            }
        }
    }
    keys.sort();
    keys.dedup();
    keys
}

fn is_system_directory(directory: &str) -> bool {
    let lower = directory.to_ascii_lowercase();
    lower.contains("\\windows\\") || lower.ends_with("\\windows") || lower.contains("\\program files")
}

fn is_global(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.octets()[0] >= 240)
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            !(v6.is_loopback() || v6.is_unspecified() || (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80)
        }
    }
}

/// Gap between two closed intervals (zero when they overlap).
fn gap(a: (DateTime<Utc>, DateTime<Utc>), b: (DateTime<Utc>, DateTime<Utc>)) -> Duration {
    if a.1 < b.0 {
        b.0 - a.1
    } else if b.1 < a.0 {
        a.0 - b.1
    } else {
        Duration::zero()
    }
}

/// A host, or an identity alert's client IP, seen in the window with more distinct accounts than
/// this is shared infrastructure (a domain controller, a file server, a proxy or VPN egress): it
/// links nothing by itself, so it cannot glue unrelated alerts into one incident.
pub const HUB_ACCOUNTS: usize = 8;

fn is_account_key(key: &str) -> bool {
    ["sid:", "aad:", "upn:", "name:"].iter().any(|prefix| key.starts_with(prefix))
}

fn is_infrastructure_key(key: &str) -> bool {
    ["host:", "device:", "ip:"].iter().any(|prefix| key.starts_with(prefix))
}

/// The infrastructure keys of `member` that are hubs: seen with more than [`HUB_ACCOUNTS`] distinct
/// accounts (an account counted by its first identity key in each alert) among `member` and the
/// members of the candidate incidents `holding(key)` gives for each key, which must be every
/// candidate holding that key (a member without the key adds nothing, so the pipeline asks its key
/// index instead of scanning every candidate). Counting stops at the first account beyond the
/// limit: a hub shared across the window (a domain controller) is not scanned whole for every alert.
pub fn hub_keys<'a, S, It>(member: &IncidentMember, holding: S) -> BTreeSet<String>
where
    S: Fn(&str) -> It,
    It: Iterator<Item = &'a Incident>,
{
    let mut hubs = BTreeSet::new();
    for key in member.keys.iter().filter(|key| is_infrastructure_key(key)) {
        let mut accounts: BTreeSet<&str> = BTreeSet::new();
        let members = holding(key).flat_map(|incident| incident.members.iter()).filter(|m| m.keys.binary_search(key).is_ok());
        for account in std::iter::once(member).chain(members).filter_map(|m| m.keys.iter().find(|k| is_account_key(k))) {
            accounts.insert(account);
            if accounts.len() > HUB_ACCOUNTS {
                hubs.insert(key.clone());
                break;
            }
        }
    }
    hubs
}

/// The first member of `incident` related to `member`, with the shared key (hub keys excluded).
fn related_member<'a>(
    incident: &'a Incident,
    member: &IncidentMember,
    window: Duration,
    hubs: &BTreeSet<String>,
) -> Option<(&'a IncidentMember, &'a str)> {
    incident.members.iter().find_map(|existing| {
        if gap((existing.activity_start, existing.activity_end), (member.activity_start, member.activity_end)) > window {
            return None;
        }
        existing
            .keys
            .iter()
            .find(|key| !hubs.contains(key.as_str()) && member.keys.binary_search(key).is_ok())
            .map(|key| (existing, key.as_str()))
    })
}

/// Changes to persist after grouping one alert.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupingDecision {
    /// The incident the alert now belongs to (new or updated).
    pub incident: Incident,
    /// Incidents absorbed into it (with `merged_into` set).
    pub merged: Vec<Incident>,
    /// Why the alert joined, for the audit trail.
    pub reason: String,
}

/// Places `member` into one of `candidates` (incidents of the same tenant overlapping its window),
/// merging candidates it connects, or opens a new incident with id `new_id`. `hubs` are the
/// member's keys that link nothing ([`hub_keys`] over these candidates).
///
/// `candidates` may be owned or borrowed: only the incidents the alert joins or merges are copied.
pub fn group<I: Borrow<Incident>>(
    tenant: &TenantId,
    title: &str,
    member: IncidentMember,
    candidates: Vec<I>,
    hubs: &BTreeSet<String>,
    window: Duration,
    new_id: String,
) -> GroupingDecision {
    let mut candidates: Vec<&Incident> = candidates.iter().map(Borrow::borrow).collect();
    // Re-delivery of an alert already grouped: nothing changes.
    if let Some(existing) = candidates.iter().find(|incident| incident.alert_ids.contains(&member.alert_id)) {
        return GroupingDecision { incident: (*existing).clone(), merged: Vec::new(), reason: "already grouped".to_owned() };
    }
    let mut related: Vec<(Incident, AlertId, String)> = Vec::new();
    candidates.sort_by(|a, b| (a.first_seen, &a.incident_id).cmp(&(b.first_seen, &b.incident_id)));
    let mut full: Option<String> = None;
    for incident in candidates {
        if incident.alert_ids.len() >= MAX_INCIDENT_ALERTS {
            if full.is_none() && related_member(incident, &member, window, hubs).is_some() {
                full = Some(incident.incident_id.clone());
            }
            continue;
        }
        if let Some((existing, key)) = related_member(incident, &member, window, hubs) {
            let (existing_id, key) = (existing.alert_id.clone(), key.to_owned());
            related.push((incident.clone(), existing_id, key));
        }
    }
    let Some((mut survivor, linked_to, key)) = (!related.is_empty()).then(|| related.remove(0)) else {
        let incident = Incident {
            incident_id: new_id,
            tenant_id: tenant.clone(),
            title: title.to_owned(),
            severity: member.severity,
            alert_ids: vec![member.alert_id.clone()],
            links: vec![IncidentLink {
                alert_id: member.alert_id.clone(),
                linked_to: None,
                reason: match &full {
                    Some(full) => format!("opened: related incident {full} is full ({MAX_INCIDENT_ALERTS} alerts)"),
                    None => "opened: no related alert within the window".to_owned(),
                },
            }],
            first_seen: member.activity_start,
            last_seen: member.activity_end,
            members: vec![member],
            merged_into: None,
            version: 0,
        };
        let reason =
            if hubs.is_empty() { "opened a new incident".to_owned() } else { format!("opened a new incident; {}", describe_hubs(hubs)) };
        return GroupingDecision { incident, merged: Vec::new(), reason };
    };
    let mut reason = format!("shared {key} with {linked_to} within {}h", window.num_hours());
    if !hubs.is_empty() {
        reason.push_str(&format!("; {}", describe_hubs(hubs)));
    }
    survivor.links.push(IncidentLink { alert_id: member.alert_id.clone(), linked_to: Some(linked_to), reason: reason.clone() });
    add_member(&mut survivor, member.clone());
    let mut merged = Vec::new();
    for (mut absorbed, linked_to, key) in related {
        survivor.links.push(IncidentLink {
            alert_id: member.alert_id.clone(),
            linked_to: Some(linked_to),
            reason: format!("merged {} via shared {key}", absorbed.incident_id),
        });
        for absorbed_member in std::mem::take(&mut absorbed.members) {
            add_member(&mut survivor, absorbed_member);
        }
        survivor.links.append(&mut absorbed.links);
        absorbed.merged_into = Some(survivor.incident_id.clone());
        merged.push(absorbed);
    }
    survivor.title = incident_title(&survivor, title);
    GroupingDecision { incident: survivor, merged, reason }
}

fn describe_hubs(hubs: &BTreeSet<String>) -> String {
    let names: Vec<&str> = hubs.iter().map(String::as_str).collect();
    format!("shared infrastructure not used as a link (seen with more than {HUB_ACCOUNTS} accounts): {}", names.join(", "))
}

fn add_member(incident: &mut Incident, member: IncidentMember) {
    if incident.alert_ids.contains(&member.alert_id) {
        return;
    }
    incident.alert_ids.push(member.alert_id.clone());
    incident.severity = incident.severity.max(member.severity);
    incident.first_seen = incident.first_seen.min(member.activity_start);
    incident.last_seen = incident.last_seen.max(member.activity_end);
    incident.members.push(member);
}

/// `"<n> related alerts involving <most shared entity>"`, or the single alert's title.
fn incident_title(incident: &Incident, fallback: &str) -> String {
    if incident.members.len() < 2 {
        return fallback.to_owned();
    }
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for key in incident.members.iter().flat_map(|m| m.keys.iter()) {
        *counts.entry(key.as_str()).or_default() += 1;
    }
    let top =
        counts.iter().max_by_key(|(key, count)| (**count, std::cmp::Reverse(**key))).map(|(key, _)| *key).unwrap_or("shared entities");
    format!("{} related alerts involving {}", incident.members.len(), top.replacen(':', " ", 1))
}

#[cfg(test)]
mod tests;
