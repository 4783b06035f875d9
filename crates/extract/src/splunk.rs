//! Splunk ES notable events → [`AlertEntities`].
//!
//! Notables carry the correlation search's output fields, named after the Common Information Model
//! (<https://docs.splunk.com/Documentation/CIM/latest/User/Overview>): `src`, `dest`, `user`,
//! `src_user`, `dest_user`, `src_ip`, `dest_ip`, `src_dns`, `dest_dns`, `file_hash`, `file_name`,
//! `file_path`, `url`, `process`, `process_name`, `parent_process`, ... Fields copied from the
//! original event are prefixed `orig_` (`orig_host`, `orig_src`). Any field may be multi-valued
//! (a JSON array in search results).

use aluskort_core::AlertEntities;
use aluskort_core::entity::{DnsEntity, FileEntity, IpEntity, Mailbox, OtherEntity, ProcessEntity, UrlEntity};
use aluskort_core::ioc::{Domain, Email, Url};
use serde_json::Value;

use crate::build::{self, HostOrIp};
use crate::flat::Flat;
use crate::sanitize::{FieldKind, SanitizeReport};

const HOST_OR_IP_FIELDS: &[&str] = &["dest", "src", "dvc", "host", "dest_host", "src_host", "dest_nt_host", "src_nt_host", "orig_host"];
const IP_FIELDS: &[&str] = &["src_ip", "dest_ip", "dvc_ip", "ip", "src_translated_ip", "dest_translated_ip"];
const DNS_FIELDS: &[&str] = &["dest_dns", "src_dns", "query", "domain", "url_domain"];
const USER_FIELDS: &[&str] = &["user", "src_user", "dest_user", "user_name", "src_user_name", "dest_user_name"];
const HASH_FIELDS: &[(&str, Option<&str>)] = &[
    ("file_hash", None),
    ("hash", None),
    ("md5", Some("md5")),
    ("sha1", Some("sha1")),
    ("sha256", Some("sha256")),
    ("process_hash", None),
];
const MAIL_FIELDS: &[&str] = &["sender", "recipient", "src_user_email", "user_email", "orig_recipient"];

/// A CIM field and its `orig_` copy from the original event.
fn with_orig(field: &str) -> [String; 2] {
    [field.to_owned(), format!("orig_{field}")]
}

pub fn parse_entities(document: &Value, report: &mut SanitizeReport) -> AlertEntities {
    let flat = Flat::new(document);
    let mut out = AlertEntities::default();
    let values = |field: &str| -> Vec<(String, String)> {
        with_orig(field).into_iter().flat_map(|name| flat.strings(&name).into_iter().map(move |value| (name.clone(), value))).collect()
    };

    for field in HOST_OR_IP_FIELDS {
        for (name, value) in values(field) {
            match build::host_or_ip(&name, &value, report) {
                Some(HostOrIp::Host(host)) => out.hosts.push(host),
                Some(HostOrIp::Ip(ip)) => out.ips.push(ip),
                None => {}
            }
        }
    }
    for field in IP_FIELDS {
        for (name, value) in values(field) {
            match build::ip(&value) {
                Some(address) => out.ips.push(IpEntity { address, ..IpEntity::default() }),
                None => report.reject(&name, "not a valid IP address"),
            }
        }
    }
    for field in DNS_FIELDS {
        for (_, value) in values(field) {
            if let Ok(domain) = Domain::parse(&value) {
                out.dns.push(DnsEntity { domain: domain.into(), resolved_ips: Vec::new() });
            }
        }
    }
    for field in USER_FIELDS {
        for (name, value) in values(field) {
            if let Some(account) = build::account(&name, &value, None, report) {
                out.accounts.push(account);
            }
        }
    }
    for field in MAIL_FIELDS {
        for (_, value) in values(field) {
            if let Ok(address) = Email::parse(&value) {
                out.mailboxes.push(Mailbox { address: Some(address.as_str().to_ascii_lowercase()), ..Mailbox::default() });
            }
        }
    }
    let hashes: Vec<_> = HASH_FIELDS
        .iter()
        .flat_map(|(field, algorithm)| values(field).into_iter().map(move |(name, value)| (name, *algorithm, value)))
        .filter_map(|(name, algorithm, value)| build::hash(&name, algorithm, &value, report))
        .collect();
    let paths: Vec<String> = values("file_path").into_iter().map(|(_, v)| v).collect();
    let names: Vec<String> = values("file_name").into_iter().map(|(_, v)| v).collect();
    if paths.is_empty() && names.is_empty() {
        out.file_hashes.extend(hashes);
    } else {
        let count = paths.len().max(names.len());
        for index in 0..count {
            let (directory, name) = match paths.get(index) {
                Some(path) if path.contains(['\\', '/']) => {
                    let cut = path.rfind(['\\', '/']).unwrap_or(0);
                    let file_name = names.get(index).cloned().or_else(|| Some(path[cut + 1..].to_owned()));
                    let directory = if names.get(index).is_some_and(|n| path.ends_with(n.as_str())) || names.get(index).is_none() {
                        path[..cut].to_owned()
                    } else {
                        path.clone()
                    };
                    (Some(directory), file_name)
                }
                Some(path) => (None, Some(path.clone())),
                None => (None, names.get(index).cloned()),
            };
            // With one file, its hashes belong to it; with several, they cannot be attributed.
            let file_hashes = if count == 1 { hashes.clone() } else { Vec::new() };
            out.files.push(FileEntity { name, directory, hashes: file_hashes });
        }
        if count > 1 {
            out.file_hashes.extend(hashes);
        }
    }
    for (name, value) in values("url").into_iter().chain(values("uri")) {
        match Url::parse(&value) {
            Ok(url) => out.urls.push(UrlEntity { url: url.into() }),
            Err(_) => {
                if let Some(url) = report.clean(&name, &value, FieldKind::Verbatim) {
                    out.urls.push(UrlEntity { url });
                }
            }
        }
    }
    let commands: Vec<String> = values("process").into_iter().chain(values("cmdline")).chain(values("command")).map(|(_, v)| v).collect();
    let images: Vec<String> = values("process_path").into_iter().chain(values("process_name")).map(|(_, v)| v).collect();
    let parents: Vec<String> = values("parent_process_path").into_iter().chain(values("parent_process_name")).map(|(_, v)| v).collect();
    let parent_commands: Vec<String> = values("parent_process").into_iter().map(|(_, v)| v).collect();
    let process_ids: Vec<String> = values("process_id").into_iter().map(|(_, v)| v).collect();
    for index in 0..commands.len().max(images.len()) {
        out.processes.push(ProcessEntity {
            process_id: process_ids.get(index).cloned(),
            command_line: commands.get(index).and_then(|c| report.clean("process", c, FieldKind::Verbatim)),
            image_file: images.get(index).cloned(),
            parent_image_file: parents.first().cloned(),
            parent_command_line: parent_commands.first().cloned(),
            account: out.accounts.first().and_then(|a| a.name.clone()),
        });
    }
    for (name, value) in values("registry_path").into_iter().chain(values("registry_key_name")) {
        let mut attributes = serde_json::Map::new();
        attributes.insert("Path".to_owned(), Value::String(value));
        attributes.insert("Field".to_owned(), Value::String(name));
        out.other.push(OtherEntity { entity_type: "registry-key".to_owned(), attributes });
    }
    crate::build::dedup_entities(&mut out);
    out
}

/// ATT&CK techniques and tactics of a notable: `annotations.mitre_attack` (technique ids) and
/// `annotations.mitre_attack.mitre_tactic` (or `mitre_tactic`), as Splunk ES annotates them.
pub fn attack_mapping(document: &Value) -> (Vec<String>, Vec<String>) {
    let flat = Flat::new(document);
    let techniques = ["annotations.mitre_attack", "annotations.mitre_attack.mitre_technique_id", "mitre_technique_id", "mitre_attack"]
        .iter()
        .flat_map(|path| flat.strings(path))
        .collect();
    let tactics = ["annotations.mitre_attack.mitre_tactic", "mitre_tactic", "annotations.mitre_attack.mitre_tactic_id"]
        .iter()
        .flat_map(|path| flat.strings(path))
        .collect();
    (crate::elastic::unique(tactics), crate::elastic::unique(techniques))
}
