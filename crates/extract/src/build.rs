//! Helpers that turn loosely typed SIEM field values into entities, shared by the Elastic and
//! Splunk mappings: account spellings (`DOMAIN\user`, `user@domain`), host-or-IP values, hashes
//! recognised by length.

use aluskort_core::entity::{Account, FileHash, Host, IpEntity};
use aluskort_core::ioc::{Ipv4, Ipv6};

use crate::sanitize::{FieldKind, SanitizeReport};

/// Canonical text of an IP address, or `None`.
pub fn ip(value: &str) -> Option<String> {
    let value = value.trim();
    Ipv4::parse(value).map(String::from).or_else(|_| Ipv6::parse(value).map(String::from)).ok()
}

/// An account from a user field: `CORP\alice`, `alice@corp.com`, or `alice` (with `domain`).
pub fn account(field: &str, value: &str, domain: Option<&str>, report: &mut SanitizeReport) -> Option<Account> {
    let value = report.clean(field, value, FieldKind::Identifier)?;
    let generic = matches!(value.to_ascii_lowercase().as_str(), "unknown" | "-" | "n/a" | "null" | "none");
    if generic {
        return None;
    }
    if let Some((domain_part, name)) = value.split_once('\\') {
        return Some(Account { name: Some(name.to_owned()), domain: Some(domain_part.to_owned()), ..Account::default() });
    }
    if let Some((name, upn_domain)) = value.rsplit_once('@')
        && upn_domain.contains('.')
    {
        return Some(Account {
            name: Some(name.to_owned()),
            upn: Some(value.clone()),
            domain: Some(upn_domain.to_owned()),
            ..Account::default()
        });
    }
    Some(Account { name: Some(value), domain: domain.map(str::to_owned), ..Account::default() })
}

/// A host by name; FQDNs keep their full spelling in `fqdn`.
pub fn host(field: &str, value: &str, report: &mut SanitizeReport) -> Option<Host> {
    let value = report.clean(field, value, FieldKind::Identifier)?;
    let hostname = value.split('.').next().unwrap_or(&value).to_owned();
    let fqdn = value.contains('.').then(|| value.to_ascii_lowercase());
    Some(Host { hostname: Some(hostname), fqdn, ..Host::default() })
}

/// A value that may name a host or an address (Splunk `src`, `dest`).
pub enum HostOrIp {
    Host(Host),
    Ip(IpEntity),
}

pub fn host_or_ip(field: &str, value: &str, report: &mut SanitizeReport) -> Option<HostOrIp> {
    match ip(value) {
        Some(address) => Some(HostOrIp::Ip(IpEntity { address, ..IpEntity::default() })),
        None => host(field, value, report).map(HostOrIp::Host),
    }
}

/// A hash whose algorithm is known from the field name or, failing that, from its length.
pub fn hash(field: &str, algorithm: Option<&str>, value: &str, report: &mut SanitizeReport) -> Option<FileHash> {
    let value = value.trim();
    let by_length = match value.len() {
        32 => "md5",
        40 => "sha1",
        64 => "sha256",
        128 => "sha512",
        _ => "",
    };
    let algorithm = algorithm.unwrap_or(by_length).to_ascii_lowercase();
    let valid = !by_length.is_empty() && algorithm == by_length && value.bytes().all(|b| b.is_ascii_hexdigit());
    if !valid {
        if algorithm.is_empty() || matches!(algorithm.as_str(), "md5" | "sha1" | "sha256" | "sha512") {
            report.reject(field, "not a hex digest of the expected length");
            return None;
        }
        // Other algorithms (ssdeep, tlsh, imphash...) are kept as reported.
        return report.clean(field, value, FieldKind::Verbatim).map(|value| FileHash { algorithm, value });
    }
    Some(FileHash { algorithm, value: value.to_ascii_lowercase() })
}

/// Removes repeated entities from every bucket (first occurrence kept), merging hosts that name
/// the same machine. Buckets are small, so a linear `contains` beats hashing here.
pub fn dedup_entities(entities: &mut aluskort_core::AlertEntities) {
    fn retain_unique<T: PartialEq>(items: &mut Vec<T>) {
        let mut unique: Vec<T> = Vec::with_capacity(items.len());
        for item in items.drain(..) {
            if !unique.contains(&item) {
                unique.push(item);
            }
        }
        *items = unique;
    }
    merge_hosts(&mut entities.hosts);
    merge_accounts(&mut entities.accounts);
    retain_unique(&mut entities.accounts);
    retain_unique(&mut entities.ips);
    retain_unique(&mut entities.files);
    retain_unique(&mut entities.file_hashes);
    retain_unique(&mut entities.processes);
    retain_unique(&mut entities.urls);
    retain_unique(&mut entities.dns);
    retain_unique(&mut entities.mailboxes);
    retain_unique(&mut entities.other);
}

/// Merges accounts with the same SID (one user read from two fields), keeping every attribute
/// either had; accounts without a SID are left as they are.
fn merge_accounts(accounts: &mut Vec<aluskort_core::entity::Account>) {
    let mut merged: Vec<aluskort_core::entity::Account> = Vec::with_capacity(accounts.len());
    for account in accounts.drain(..) {
        let same = merged.iter_mut().find(|existing| {
            existing.sid.is_some()
                && existing.sid.as_deref().map(str::to_ascii_uppercase) == account.sid.as_deref().map(str::to_ascii_uppercase)
        });
        match same {
            Some(existing) => {
                existing.name = existing.name.take().or(account.name);
                existing.upn = existing.upn.take().or(account.upn);
                existing.domain = existing.domain.take().or(account.domain);
                existing.aad_user_id = existing.aad_user_id.take().or(account.aad_user_id);
                existing.display_name = existing.display_name.take().or(account.display_name);
            }
            None => merged.push(account),
        }
    }
    *accounts = merged;
}

/// Merges hosts that name the same machine (same short name), keeping every attribute either had.
pub fn merge_hosts(hosts: &mut Vec<Host>) {
    let mut merged: Vec<Host> = Vec::with_capacity(hosts.len());
    for host in hosts.drain(..) {
        match merged.iter_mut().find(|existing| existing.short_name().is_some() && existing.short_name() == host.short_name()) {
            Some(existing) => {
                existing.fqdn = existing.fqdn.take().or(host.fqdn);
                existing.domain = existing.domain.take().or(host.domain);
                existing.os = existing.os.take().or(host.os);
                existing.device_id = existing.device_id.take().or(host.device_id);
                existing.azure_id = existing.azure_id.take().or(host.azure_id);
            }
            None => merged.push(host),
        }
    }
    *hosts = merged;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_in_every_spelling() {
        let mut report = SanitizeReport::default();
        let down_level = account("user", "CORP\\alice", None, &mut report).expect("account");
        assert_eq!((down_level.name.as_deref(), down_level.domain.as_deref()), (Some("alice"), Some("CORP")));
        let upn = account("user", "bob@corp.example", None, &mut report).expect("account");
        assert_eq!(upn.upn.as_deref(), Some("bob@corp.example"));
        let bare = account("user", "carol", Some("CORP"), &mut report).expect("account");
        assert_eq!(bare.domain.as_deref(), Some("CORP"));
        assert!(account("user", "unknown", None, &mut report).is_none());
    }

    #[test]
    fn hosts_naming_the_same_machine_merge() {
        let mut report = SanitizeReport::default();
        let mut hosts = vec![
            host("dest", "FIN-LT-107", &mut report).expect("host"),
            host("orig_host", "FIN-LT-107.corp.example.org", &mut report).expect("host"),
            host("src", "other", &mut report).expect("host"),
        ];
        merge_hosts(&mut hosts);
        assert_eq!(hosts.len(), 2);
        assert_eq!(hosts[0].fqdn.as_deref(), Some("fin-lt-107.corp.example.org"));
    }

    #[test]
    fn hashes_by_name_or_length() {
        let mut report = SanitizeReport::default();
        let md5 = hash("file_hash", None, "9D8E30DAF21108092D5980C931876B7E", &mut report).expect("md5");
        assert_eq!((md5.algorithm.as_str(), md5.value.as_str()), ("md5", "9d8e30daf21108092d5980c931876b7e"));
        assert!(hash("file_hash", Some("sha256"), "9d8e30daf21108092d5980c931876b7e", &mut report).is_none());
        assert_eq!(report.rejected, 1);
        let imphash = hash("pe.imphash", Some("imphash"), "abc", &mut report).expect("kept");
        assert_eq!(imphash.algorithm, "imphash");
    }
}
