//! Elastic Security alert documents (ECS) → [`AlertEntities`] and ATT&CK mapping.
//!
//! Alert documents from the `.alerts-security.alerts-*` indices carry the source event's ECS fields
//! (`host.*`, `user.*`, `source.*`, `destination.*`, `process.*` with `process.parent.*`, `file.*`,
//! `url.*`, `dns.*`, `email.*`, `registry.*`) next to `kibana.alert.*` fields, in dotted or nested
//! spelling (<https://www.elastic.co/guide/en/ecs/current/ecs-field-reference.html>,
//! <https://www.elastic.co/guide/en/security/current/alert-schema.html>). Older (7.x) documents use
//! `signal.*` instead of `kibana.alert.*`.

use aluskort_core::AlertEntities;
use aluskort_core::entity::{DnsEntity, FileEntity, IpEntity, Mailbox, OtherEntity, ProcessEntity, UrlEntity};
use aluskort_core::ioc::{Domain, Email, Url};
use serde_json::Value;

use crate::build;
use crate::flat::{Flat, strings_of};
use crate::sanitize::{FieldKind, SanitizeReport};

const HASH_ALGORITHMS: [&str; 4] = ["md5", "sha1", "sha256", "sha512"];

pub fn parse_entities(document: &Value, report: &mut SanitizeReport) -> AlertEntities {
    let flat = Flat::new(document);
    let mut out = AlertEntities::default();

    if let Some(name) = flat.first(&["host.name", "host.hostname"]) {
        let mut host = build::host("host.name", &name, report).unwrap_or_default();
        host.domain = flat.first(&["host.domain"]);
        host.os = flat.first(&["host.os.full", "host.os.name"]);
        host.device_id = flat.first(&["host.id", "agent.id"]);
        if let Some(hostname) = flat.first(&["host.hostname"]) {
            host.hostname = Some(hostname.split('.').next().unwrap_or(&hostname).to_owned());
        }
        out.hosts.push(host);
    }
    for address in flat.strings("host.ip") {
        if let Some(address) = build::ip(&address) {
            out.ips.push(IpEntity { address, ..IpEntity::default() });
        }
    }
    for prefix in ["user", "user.target", "user.effective", "source.user", "destination.user"] {
        let domain = flat.first(&[&format!("{prefix}.domain")]);
        for name in flat.strings(&format!("{prefix}.name")) {
            if let Some(mut account) = build::account(&format!("{prefix}.name"), &name, domain.as_deref(), report) {
                // `user.id` is whatever the source calls an id: a Windows SID, an Entra object id
                // (a GUID), a POSIX uid. Only the first two identify the account across alerts.
                match flat.first(&[&format!("{prefix}.id")]) {
                    Some(id) if id.to_ascii_uppercase().starts_with("S-1-") => account.sid = account.sid.or(Some(id)),
                    Some(id) if is_guid(&id) => account.aad_user_id = Some(id),
                    _ => {}
                }
                account.upn = account.upn.or_else(|| flat.first(&[&format!("{prefix}.email")]));
                account.display_name = flat.first(&[&format!("{prefix}.full_name")]);
                out.accounts.push(account);
            }
        }
    }
    // Windows Security events (`winlog.event_data`): who acted (Subject*) and on whom (Target*).
    for role in ["Subject", "Target"] {
        let field = |name: &str| format!("winlog.event_data.{role}{name}");
        let Some(name) = flat.first(&[&field("UserName")]) else { continue };
        let domain = flat.first(&[&field("DomainName")]);
        if let Some(mut account) = build::account(&field("UserName"), &name, domain.as_deref(), report) {
            account.sid = flat.first(&[&field("UserSid")]).filter(|sid| sid.to_ascii_uppercase().starts_with("S-1-"));
            out.accounts.push(account);
        }
    }
    if let Some(object) = flat.first(&["winlog.event_data.ObjectDN"]) {
        let mut attributes = serde_json::Map::new();
        attributes.insert("DistinguishedName".to_owned(), Value::String(object));
        for (field, key) in [("winlog.event_data.AttributeLDAPDisplayName", "Attribute"), ("winlog.event_data.AttributeValue", "Value")] {
            if let Some(value) = flat.first(&[field]) {
                attributes.insert(key.to_owned(), Value::String(value));
            }
        }
        out.other.push(OtherEntity { entity_type: "directory-object".to_owned(), attributes });
    }
    for side in ["source", "destination", "client", "server"] {
        for address in flat.strings(&format!("{side}.ip")) {
            match build::ip(&address) {
                Some(address) => out.ips.push(IpEntity {
                    address,
                    country: flat.first(&[&format!("{side}.geo.country_iso_code")]),
                    asn: flat.first(&[&format!("{side}.as.number")]).and_then(|n| n.parse().ok()),
                }),
                None => report.reject(&format!("{side}.ip"), "not a valid IP address"),
            }
        }
        for domain in flat.strings(&format!("{side}.domain")) {
            match Domain::parse(&domain) {
                Ok(domain) => out.dns.push(DnsEntity { domain: domain.into(), resolved_ips: Vec::new() }),
                // A single label ("WORKSTATION", a NetBIOS name in Windows logon events) is a host.
                Err(_) if !domain.contains(['.', ' ']) && domain != "-" => {
                    if let Some(host) = build::host(&format!("{side}.domain"), &domain, report) {
                        out.hosts.push(host);
                    }
                }
                Err(_) => {}
            }
        }
    }
    for prefix in ["process", "process.parent"] {
        if let Some(process) = process(&flat, prefix, report) {
            out.processes.push(process);
        }
        let hashes = hashes(&flat, &format!("{prefix}.hash"), report);
        if let Some(executable) = flat.first(&[&format!("{prefix}.executable")]) {
            let (directory, name) = split_path(&executable);
            out.files.push(FileEntity { name, directory, hashes });
        }
    }
    if let Some(file) = file(&flat, report) {
        out.files.push(file);
    }
    for url in flat.strings("url.full").into_iter().chain(flat.strings("url.original")) {
        match Url::parse(&url) {
            Ok(url) => out.urls.push(UrlEntity { url: url.into() }),
            Err(_) => {
                if let Some(url) = report.clean("url.original", &url, FieldKind::Verbatim) {
                    out.urls.push(UrlEntity { url });
                }
            }
        }
    }
    if out.urls.is_empty()
        && let Some(domain) = flat.first(&["url.domain"]).and_then(|d| Domain::parse(&d).ok())
    {
        out.dns.push(DnsEntity { domain: domain.into(), resolved_ips: Vec::new() });
    }
    for name in flat.strings("dns.question.name") {
        if let Ok(domain) = Domain::parse(&name) {
            let resolved_ips = flat.strings("dns.resolved_ip").iter().filter_map(|ip| build::ip(ip)).collect();
            out.dns.push(DnsEntity { domain: domain.into(), resolved_ips });
        }
    }
    for path in ["email.from.address", "email.to.address", "email.cc.address", "email.sender.address", "email.reply_to.address"] {
        for address in flat.strings(path) {
            if let Ok(address) = Email::parse(&address) {
                out.mailboxes.push(Mailbox { address: Some(address.as_str().to_ascii_lowercase()), ..Mailbox::default() });
            }
        }
    }
    if let Some(message_id) = flat.first(&["email.message_id"]) {
        let mut attributes = serde_json::Map::new();
        attributes.insert("InternetMessageId".to_owned(), Value::String(message_id));
        if let Some(subject) = flat.first(&["email.subject"]) {
            attributes.insert("Subject".to_owned(), Value::String(subject));
        }
        out.other.push(OtherEntity { entity_type: "mailMessage".to_owned(), attributes });
    }
    if let Some(path) = flat.first(&["registry.path", "registry.key"]) {
        let mut attributes = serde_json::Map::new();
        attributes.insert("Path".to_owned(), Value::String(path));
        for (field, key) in
            [("registry.hive", "Hive"), ("registry.key", "Key"), ("registry.value", "Value"), ("registry.data.strings", "Data")]
        {
            if let Some(value) = flat.first(&[field]) {
                attributes.insert(key.to_owned(), Value::String(value));
            }
        }
        out.other.push(OtherEntity { entity_type: "registry-key".to_owned(), attributes });
    }
    threat_indicators(&flat, &mut out, report);
    for address in flat.strings("related.ip") {
        if let Some(address) = build::ip(&address)
            && !out.ips.iter().any(|ip| ip.address == address)
        {
            out.ips.push(IpEntity { address, ..IpEntity::default() });
        }
    }
    for name in flat.strings("related.hosts") {
        let known = out
            .hosts
            .iter()
            .any(|h| h.hostname.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(name.split('.').next().unwrap_or(&name))));
        if !known && let Some(host) = build::host("related.hosts", &name, report) {
            out.hosts.push(host);
        }
    }
    for value in flat.strings("related.hash") {
        if let Some(hash) = build::hash("related.hash", None, &value, report)
            && !out.files.iter().any(|f| f.hashes.contains(&hash))
        {
            out.file_hashes.push(hash);
        }
    }
    build::dedup_entities(&mut out);
    out
}

fn is_guid(text: &str) -> bool {
    let text = text.trim_matches(['{', '}']);
    text.len() == 36 && text.chars().enumerate().all(|(i, c)| if [8, 13, 18, 23].contains(&i) { c == '-' } else { c.is_ascii_hexdigit() })
}

/// Indicator-match alerts: what matched, from `threat.enrichments[].indicator.*` (8.x) or
/// `threat.indicator.*` (ECS threat fields).
fn threat_indicators(flat: &Flat<'_>, out: &mut AlertEntities, report: &mut SanitizeReport) {
    let enrichments: Vec<Flat<'_>> = match flat.get("threat.enrichments") {
        Some(Value::Array(items)) => items.iter().map(Flat::new).collect(),
        _ => Vec::new(),
    };
    let sources = enrichments.iter().map(|enrichment| (enrichment, "indicator")).chain(std::iter::once((flat, "threat.indicator")));
    for (source, prefix) in sources {
        let field = |name: &str| format!("{prefix}.{name}");
        for url in source.strings(&field("url.full")).into_iter().chain(source.strings(&field("url.original"))) {
            if let Ok(url) = Url::parse(&url) {
                out.urls.push(UrlEntity { url: url.into() });
            }
        }
        for domain in source.strings(&field("url.domain")).into_iter().chain(source.strings(&field("domain"))) {
            if let Ok(domain) = Domain::parse(&domain) {
                out.dns.push(DnsEntity { domain: domain.into(), resolved_ips: Vec::new() });
            }
        }
        for address in source.strings(&field("ip")) {
            if let Some(address) = build::ip(&address)
                && !out.ips.iter().any(|ip| ip.address == address)
            {
                out.ips.push(IpEntity { address, ..IpEntity::default() });
            }
        }
        out.file_hashes.extend(hashes(source, &field("file.hash"), report));
        for address in source.strings(&field("email.address")) {
            if let Ok(address) = Email::parse(&address) {
                out.mailboxes.push(Mailbox { address: Some(address.as_str().to_ascii_lowercase()), ..Mailbox::default() });
            }
        }
    }
}

fn process(flat: &Flat<'_>, prefix: &str, report: &mut SanitizeReport) -> Option<ProcessEntity> {
    let field = |name: &str| format!("{prefix}.{name}");
    let command_line = flat.first(&[&field("command_line")]).and_then(|c| report.clean(&field("command_line"), &c, FieldKind::Verbatim));
    let image_file = flat.first(&[&field("executable"), &field("name")]);
    if command_line.is_none() && image_file.is_none() {
        return None;
    }
    let (parent_image_file, parent_command_line) = if prefix == "process" {
        (flat.first(&["process.parent.executable", "process.parent.name"]), flat.first(&["process.parent.command_line"]))
    } else {
        (None, None)
    };
    Some(ProcessEntity {
        process_id: flat.first(&[&field("pid"), &field("entity_id")]),
        command_line,
        image_file,
        parent_image_file,
        parent_command_line,
        account: if prefix == "process" { flat.first(&["user.name"]) } else { None },
    })
}

fn hashes(flat: &Flat<'_>, prefix: &str, report: &mut SanitizeReport) -> Vec<aluskort_core::entity::FileHash> {
    let mut out = Vec::new();
    for algorithm in HASH_ALGORITHMS {
        let field = format!("{prefix}.{algorithm}");
        for value in flat.strings(&field) {
            if let Some(hash) = build::hash(&field, Some(algorithm), &value, report) {
                out.push(hash);
            }
        }
    }
    out
}

fn file(flat: &Flat<'_>, report: &mut SanitizeReport) -> Option<FileEntity> {
    let hashes = hashes(flat, "file.hash", report);
    let (directory, name) = match flat.first(&["file.path"]) {
        Some(path) => split_path(&path),
        None => (flat.first(&["file.directory"]), flat.first(&["file.name"])),
    };
    let file = FileEntity { name, directory, hashes };
    (file != FileEntity::default()).then_some(file)
}

/// `C:\dir\x.exe` → (`C:\dir`, `x.exe`); `/usr/bin/curl` → (`/usr/bin`, `curl`).
fn split_path(path: &str) -> (Option<String>, Option<String>) {
    match path.rfind(['\\', '/']) {
        Some(index) if index > 0 => (Some(path[..index].to_owned()), Some(path[index + 1..].to_owned()).filter(|n| !n.is_empty())),
        _ => (None, Some(path.to_owned())),
    }
}

/// ATT&CK tactics and techniques of an alert: `kibana.alert.rule.threat` (or `signal.rule.threat`)
/// entries, and ECS `threat.*` fields.
pub fn attack_mapping(document: &Value) -> (Vec<String>, Vec<String>) {
    let flat = Flat::new(document);
    let mut tactics = Vec::new();
    let mut techniques = Vec::new();
    for path in ["kibana.alert.rule.threat", "signal.rule.threat", "threat"] {
        let entries: Vec<&Value> = match flat.get(path) {
            Some(Value::Array(items)) => items.iter().collect(),
            Some(value @ Value::Object(_)) => vec![value],
            _ => continue,
        };
        for entry in entries {
            for tactic in listed(entry.get("tactic")) {
                tactics.extend(tactic.get("name").map(strings_of).unwrap_or_default());
            }
            for technique in listed(entry.get("technique")) {
                techniques.extend(technique.get("id").map(strings_of).unwrap_or_default());
                for sub in listed(technique.get("subtechnique")) {
                    techniques.extend(sub.get("id").map(strings_of).unwrap_or_default());
                }
            }
        }
    }
    // The same, flattened to dotted keys of arrays (a hit read with the fields API).
    for prefix in ["threat", "kibana.alert.rule.threat", "signal.rule.threat"] {
        tactics.extend(flat.strings(&format!("{prefix}.tactic.name")));
        tactics.extend(flat.strings(&format!("{prefix}.tactic.id")));
        techniques.extend(flat.strings(&format!("{prefix}.technique.id")));
        techniques.extend(flat.strings(&format!("{prefix}.technique.subtechnique.id")));
    }
    (crate::attack::normalise_tactics(tactics), unique(techniques))
}

/// `items` without repeats, first occurrence kept.
pub fn unique(items: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

fn listed(value: Option<&Value>) -> Vec<&Value> {
    match value {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(value @ Value::Object(_)) => vec![value],
        _ => Vec::new(),
    }
}
