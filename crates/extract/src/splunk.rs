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

/// `host` itself is left out: in a notable it names the search head that wrote it (Splunk
/// infrastructure, not an affected asset); the original event's host is `orig_host`.
const HOST_OR_IP_FIELDS: &[&str] =
    &["dest", "src", "dvc", "dest_host", "src_host", "dest_nt_host", "src_nt_host", "orig_host", "dest_dns", "src_dns"];
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
            // CIM puts application names in `dest`/`dvc` for SaaS sources ("Microsoft Office 365
            // AzureActiveDirectory"): a value with spaces is not a host name.
            if value.trim().contains(char::is_whitespace) {
                let mut attributes = serde_json::Map::new();
                attributes.insert("Name".to_owned(), Value::String(value));
                attributes.insert("Field".to_owned(), Value::String(name));
                out.other.push(OtherEntity { entity_type: "cloud-application".to_owned(), attributes });
                continue;
            }
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
        .flat_map(|(name, algorithm, value)| {
            labelled_hashes(&value).map_or_else(
                || vec![(name.clone(), algorithm.map(str::to_owned), value)],
                |pairs| pairs.into_iter().map(|(label, hash)| (name.clone(), Some(label), hash)).collect(),
            )
        })
        .filter_map(|(name, algorithm, value)| build::hash(&name, algorithm.as_deref(), &value, report))
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
    for (name, value) in values("url").into_iter().chain(values("uri")).chain(values("http_referrer")) {
        match Url::parse(&value) {
            Ok(url) => out.urls.push(UrlEntity { url: url.into() }),
            Err(_) => {
                if let Some(url) = report.clean(&name, &value, FieldKind::Verbatim) {
                    out.urls.push(UrlEntity { url });
                }
            }
        }
    }
    // CIM `command` is a command line for endpoint data but an operation name ("UserLoginFailed")
    // for authentication data: only a value with an argument or a path counts.
    let command_lines = values("command").into_iter().map(|(_, v)| v).filter(|v| v.trim().contains([' ', '\\', '/']));
    let commands: Vec<String> =
        values("process").into_iter().chain(values("cmdline")).chain(values("process_exec")).map(|(_, v)| v).chain(command_lines).collect();
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
    let message_ids = values("message_id").into_iter().chain(values("internet_message_id")).map(|(_, v)| v);
    let subject = values("subject").into_iter().next().map(|(_, v)| v);
    for message_id in message_ids {
        let mut attributes = serde_json::Map::new();
        attributes.insert("InternetMessageId".to_owned(), Value::String(message_id));
        if let Some(subject) = &subject {
            attributes.insert("Subject".to_owned(), Value::String(subject.clone()));
        }
        out.other.push(OtherEntity { entity_type: "mailMessage".to_owned(), attributes });
    }
    for (entity_type, attribute, fields) in [
        ("signature", "Name", &["signature"][..]),
        ("malware", "Name", &["malware_name"][..]),
        ("vulnerability", "Cve", &["cve"][..]),
        ("mac-address", "Address", &["dest_mac", "src_mac", "mac"][..]),
        ("service", "Name", &["service_name", "service"][..]),
        ("user-agent", "Value", &["http_user_agent"][..]),
    ] {
        for (name, value) in fields.iter().flat_map(|field| values(field)) {
            let mut attributes = serde_json::Map::new();
            attributes.insert(attribute.to_owned(), Value::String(value));
            attributes.insert("Field".to_owned(), Value::String(name));
            out.other.push(OtherEntity { entity_type: entity_type.to_owned(), attributes });
        }
    }
    crate::build::dedup_entities(&mut out);
    out
}

/// Sysmon-style `MD5=…,SHA256=…,IMPHASH=…` lists: `(algorithm, value)` pairs of the hash kinds we
/// know, or `None` when `value` is a bare hash.
fn labelled_hashes(value: &str) -> Option<Vec<(String, String)>> {
    if !value.contains('=') {
        return None;
    }
    let pairs = value
        .split([',', ';', ' '])
        .filter_map(|pair| pair.split_once('='))
        .map(|(label, hash)| (label.trim().to_ascii_lowercase(), hash.trim().to_owned()))
        .filter(|(label, _)| matches!(label.as_str(), "md5" | "sha1" | "sha256" | "sha512"))
        .collect();
    Some(pairs)
}

/// ATT&CK techniques and tactics of a notable: `annotations.mitre_attack` (technique ids, as
/// Splunk ES annotates correlation searches), `annotations.mitre_attack.mitre_tactic[_id]`, the
/// same inside an `annotations` JSON string, and bare `mitre_*` fields. A tactic written where a
/// technique is expected (`annotations.mitre_attack: "Credential Access"`) is taken as the tactic.
pub fn attack_mapping(document: &Value) -> (Vec<String>, Vec<String>) {
    const TECHNIQUE_PATHS: [&str; 5] = [
        "annotations.mitre_attack",
        "annotations.mitre_attack.mitre_technique_id",
        "mitre_technique_id",
        "mitre_attack",
        "annotations._all",
    ];
    const TACTIC_PATHS: [&str; 4] =
        ["annotations.mitre_attack.mitre_tactic", "mitre_tactic", "annotations.mitre_attack.mitre_tactic_id", "mitre_tactic_id"];
    let flat = Flat::new(document);
    let mut candidates: Vec<String> = TECHNIQUE_PATHS.iter().flat_map(|path| flat.strings(path)).collect();
    let mut tactics: Vec<String> = TACTIC_PATHS.iter().flat_map(|path| flat.strings(path)).collect();
    // `annotations` as search results often carry it: one JSON string.
    if let Some(embedded) = flat.first(&["annotations"]).and_then(|text| serde_json::from_str::<Value>(&text).ok()) {
        let inner = Flat::new(&embedded);
        let inner_paths = ["mitre_attack", "mitre_attack.mitre_technique_id", "_all"];
        candidates.extend(inner_paths.iter().flat_map(|path| inner.strings(path)));
        tactics.extend(["mitre_attack.mitre_tactic", "mitre_attack.mitre_tactic_id"].iter().flat_map(|path| inner.strings(path)));
    }
    let mut techniques = Vec::new();
    for candidate in candidates {
        if crate::attack::tactic_name(&candidate).is_some() {
            tactics.push(candidate);
        } else if !candidate.trim_start().starts_with('{') {
            techniques.push(candidate);
        }
    }
    (crate::attack::normalise_tactics(tactics), crate::elastic::unique(techniques))
}
