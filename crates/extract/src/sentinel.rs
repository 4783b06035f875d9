//! Microsoft Sentinel `SecurityAlert.Entities` → [`AlertEntities`] (FR-ENR-001, FR-ENR-002).
//!
//! Log Analytics returns `Entities` as a JSON *string* holding an array of entity objects. Objects
//! carry `$id`, and later occurrences of the same object are written as `{"$ref": "<id>"}`, both at
//! the top level and nested (a process's `ImageFile`, a file's `FileHashes`, a session's `Account`).
//! We index every `$id` in the document, resolve references when reading fields, and visit each
//! entity once, including entities only present nested inside another.
//!
//! Entity types follow the Sentinel entity reference; both spellings are accepted where Sentinel
//! uses two (`registry-key`/`registrykey`, `cloud-application`/`cloudapplication`, ...). Types without
//! a bucket of their own, and unknown types, go to `other` with their scalar attributes.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use aluskort_core::AlertEntities;
use aluskort_core::entity::{Account, DnsEntity, FileEntity, FileHash, Host, IpEntity, Mailbox, OtherEntity, ProcessEntity, UrlEntity};
use aluskort_core::ioc::{Ipv4, Ipv6, Md5, Sha1, Sha256, Sha512, Url};
use serde_json::Value;

use crate::json::Json;
use crate::sanitize::{FieldKind, SanitizeReport};

/// Deepest nesting followed while indexing; deeper structures are reported, not followed.
const MAX_DEPTH: usize = 32;

/// Parses `Entities` given as the JSON string Log Analytics returns, or as an already-parsed array.
pub fn parse_entities(entities: &Value, report: &mut SanitizeReport) -> AlertEntities {
    match entities {
        Value::String(text) => parse_entities_str(text, report),
        Value::Null => AlertEntities::default(),
        other => parse_entities_str(&other.to_string(), report),
    }
}

/// Parses the `Entities` JSON text.
pub fn parse_entities_str(text: &str, report: &mut SanitizeReport) -> AlertEntities {
    let mut out = AlertEntities::default();
    if text.trim().is_empty() {
        return out;
    }
    let root = match Json::parse(text) {
        Ok(root) => root,
        Err(error) => {
            out.parse_errors.push(format!("Entities is not valid JSON: {error}"));
            return out;
        }
    };
    let items: Vec<&Json<'_>> = match &root {
        Json::Array(items) => items.iter().collect(),
        Json::Object(_) => vec![&root],
        Json::Null => return out,
        _ => {
            out.parse_errors.push("Entities is neither an array nor an object".to_owned());
            return out;
        }
    };

    let mut graph = Graph { small: Vec::new(), large: HashMap::new() };
    for item in &items {
        graph.index(item, 0, &mut out.parse_errors);
    }

    let mut visited = Visited::default();
    let mut pending: Vec<&Json<'_>> = items.iter().rev().map(|item| graph.resolve(item)).collect();
    while let Some(entity) = pending.pop() {
        let Json::Object(pairs) = entity else { continue };
        if !visited.insert(std::ptr::from_ref(entity)) {
            continue;
        }
        if let Some(reference) = entity.get("$ref") {
            out.parse_errors.push(format!("dangling $ref {}", reference.to_value()));
            continue;
        }
        // Nested entities are entities too: queue them after their parent.
        let mut nested: Vec<&Json<'_>> = Vec::new();
        for (_, value) in pairs {
            match value {
                Json::Object(_) => nested.push(graph.resolve(value)),
                Json::Array(values) => nested.extend(values.iter().map(|v| graph.resolve(v))),
                _ => {}
            }
        }
        for child in nested.into_iter().rev() {
            if child.get("Type").is_some() {
                pending.push(child);
            }
        }
        if entity.get("Type").is_some() {
            map_entity(&graph, entity, &mut out, report);
        }
    }
    crate::build::dedup_entities(&mut out);
    out
}

/// Objects already mapped, by address: linear for the usual few dozen, hashed beyond.
#[derive(Default)]
struct Visited {
    small: Vec<*const Json<'static>>,
    large: HashSet<*const Json<'static>>,
}

impl Visited {
    /// True when `entity` was not seen before.
    fn insert(&mut self, entity: *const Json<'_>) -> bool {
        let entity = entity.cast::<Json<'static>>();
        if self.large.is_empty() {
            if self.small.contains(&entity) {
                return false;
            }
            if self.small.len() < SMALL_INDEX {
                self.small.push(entity);
                return true;
            }
            self.large.extend(self.small.drain(..));
        }
        self.large.insert(entity)
    }
}

/// `$id` → object. Alerts hold a few dozen ids: a vector scanned linearly beats hashing there; a
/// hash map takes over for large documents so lookups stay O(1).
struct Graph<'j, 'a> {
    small: Vec<(Cow<'j, str>, &'j Json<'a>)>,
    large: HashMap<Cow<'j, str>, &'j Json<'a>>,
}

/// Ids kept in the vector before switching to the map.
const SMALL_INDEX: usize = 64;

/// An `$id`/`$ref` value as a key: borrowed for strings (always, in Sentinel output).
fn id_key<'j>(value: &'j Json<'_>) -> Option<Cow<'j, str>> {
    match value {
        Json::String(text) => Some(Cow::Borrowed(text.as_ref())),
        other => other.scalar_text().map(Cow::Owned),
    }
}

impl<'j, 'a> Graph<'j, 'a> {
    fn index(&mut self, value: &'j Json<'a>, depth: usize, errors: &mut Vec<String>) {
        if depth > MAX_DEPTH {
            errors.push(format!("entity nesting deeper than {MAX_DEPTH}; rest ignored"));
            return;
        }
        match value {
            Json::Object(pairs) => {
                if let Some(id) = value.get("$id").and_then(id_key) {
                    self.insert(id, value);
                }
                for (_, child) in pairs {
                    self.index(child, depth + 1, errors);
                }
            }
            Json::Array(values) => {
                for child in values {
                    self.index(child, depth + 1, errors);
                }
            }
            _ => {}
        }
    }

    /// First definition of an id wins.
    fn insert(&mut self, id: Cow<'j, str>, value: &'j Json<'a>) {
        if self.lookup(&id).is_some() {
            return;
        }
        if self.small.len() < SMALL_INDEX {
            self.small.push((id, value));
        } else {
            if self.large.is_empty() {
                self.large.extend(self.small.iter().map(|(k, v)| (k.clone(), *v)));
            }
            self.large.insert(id, value);
        }
    }

    fn lookup(&self, id: &str) -> Option<&'j Json<'a>> {
        if self.large.is_empty() {
            self.small.iter().find(|(key, _)| key == id).map(|(_, value)| *value)
        } else {
            self.large.get(id).copied()
        }
    }

    /// Follows `{"$ref": id}` to the object it names (once; Sentinel never chains references).
    fn resolve(&self, value: &'j Json<'a>) -> &'j Json<'a> {
        match value.get("$ref").and_then(id_key) {
            Some(id) => self.lookup(&id).unwrap_or(value),
            None => value,
        }
    }

    fn field(&self, entity: &'j Json<'a>, name: &str) -> Option<&'j Json<'a>> {
        entity.get(name).map(|value| self.resolve(value))
    }
}

fn text<'j>(entity: &'j Json<'_>, names: &[&str]) -> Option<&'j str> {
    names.iter().filter_map(|name| entity.get(name).and_then(Json::as_str)).map(str::trim).find(|text| !text.is_empty())
}

/// The canonical (lowercase, dash-free) spelling of a Sentinel entity type.
pub fn normalise_type(raw: &str) -> String {
    raw.chars().filter(|c| *c != '-' && *c != '_').flat_map(char::to_lowercase).collect()
}

/// Entity types with a bucket of their own, in canonical spelling.
const BUCKETED_TYPES: [&str; 10] = ["account", "host", "ip", "file", "filehash", "process", "url", "dns", "dnsresolution", "mailbox"];

/// `raw` equals `canonical` ignoring ASCII case, `-` and `_` (no allocation: this runs per entity).
fn same_type(raw: &str, canonical: &str) -> bool {
    let mut letters = raw.bytes().filter(|b| *b != b'-' && *b != b'_').map(|b| b.to_ascii_lowercase());
    canonical.bytes().all(|expected| letters.next() == Some(expected)) && letters.next().is_none()
}

fn bucket_of(raw: &str) -> &'static str {
    BUCKETED_TYPES.iter().find(|canonical| same_type(raw, canonical)).copied().unwrap_or("other")
}

fn map_entity(graph: &Graph<'_, '_>, entity: &Json<'_>, out: &mut AlertEntities, report: &mut SanitizeReport) {
    let raw_type = entity.get("Type").and_then(Json::as_str).unwrap_or("unknown");
    let id = |field: &str, names: &[&str], report: &mut SanitizeReport| {
        text(entity, names).and_then(|value| report.clean(field, value, FieldKind::Identifier))
    };
    let verbatim = |field: &str, names: &[&str], report: &mut SanitizeReport| {
        text(entity, names).and_then(|value| report.clean(field, value, FieldKind::Verbatim))
    };
    match bucket_of(raw_type) {
        "account" => {
            let name = id("Account.Name", &["Name", "AccountName"], report);
            let upn_suffix = id("Account.UPNSuffix", &["UPNSuffix"], report);
            let upn = id("Account.UserPrincipalName", &["UserPrincipalName", "Upn"], report).or_else(|| match (&name, &upn_suffix) {
                (Some(name), Some(suffix)) => Some(format!("{name}@{suffix}")),
                _ => None,
            });
            let account = Account {
                domain: id("Account.NTDomain", &["NTDomain", "DnsDomain", "UPNSuffix"], report),
                sid: id("Account.Sid", &["Sid"], report),
                aad_user_id: id("Account.AadUserId", &["AadUserId", "ObjectGuid"], report),
                display_name: id("Account.DisplayName", &["DisplayName", "FullName"], report),
                name,
                upn,
            };
            if account != Account::default() {
                out.accounts.push(account);
            }
        }
        "host" => {
            let hostname = id("Host.HostName", &["HostName", "NetBiosName"], report);
            let domain = id("Host.DnsDomain", &["DnsDomain", "NTDomain"], report);
            let fqdn = id("Host.FQDN", &["FQDN", "Fqdn"], report).or_else(|| match (&hostname, &domain) {
                (Some(host), Some(domain)) if !host.contains('.') => Some(format!("{host}.{domain}")),
                _ => None,
            });
            let host = Host {
                os: id("Host.OSFamily", &["OSFamily", "OsFamily"], report).map(|family| match text(entity, &["OSVersion", "OsVersion"]) {
                    Some(version) => format!("{family} {version}"),
                    None => family,
                }),
                device_id: id("Host.MdatpDeviceId", &["MdatpDeviceId", "DeviceId"], report),
                azure_id: verbatim("Host.AzureID", &["AzureID", "AzureId"], report),
                hostname,
                domain,
                fqdn,
            };
            if host.hostname.is_some() || host.fqdn.is_some() || host.device_id.is_some() {
                out.hosts.push(host);
            }
        }
        "ip" => match text(entity, &["Address"]) {
            Some(address) => match Ipv4::parse(address).map(String::from).or_else(|_| Ipv6::parse(address).map(String::from)) {
                Ok(address) => {
                    let location = graph.field(entity, "Location");
                    out.ips.push(IpEntity {
                        address,
                        country: location.and_then(|l| text(l, &["CountryCode", "CountryName"])).map(str::to_owned),
                        asn: location.and_then(|l| l.get("Asn")).and_then(Json::as_u64).and_then(|asn| u32::try_from(asn).ok()),
                    });
                }
                Err(_) => report.reject("Ip.Address", "not a valid IPv4 or IPv6 address"),
            },
            None => report.reject("Ip.Address", "ip entity without an address"),
        },
        "file" => {
            let hashes = graph
                .field(entity, "FileHashes")
                .and_then(Json::as_array)
                .map(|values| values.iter().filter_map(|value| file_hash(graph.resolve(value), report)).collect())
                .unwrap_or_default();
            let file = FileEntity {
                name: verbatim("File.Name", &["Name", "FileName"], report),
                directory: verbatim("File.Directory", &["Directory", "FilePath"], report),
                hashes,
            };
            if file != FileEntity::default() {
                out.files.push(file);
            }
        }
        "filehash" => {
            if let Some(hash) = file_hash(entity, report) {
                out.file_hashes.push(hash);
            }
        }
        "process" => {
            let parent = graph.field(entity, "ParentProcess");
            let process = ProcessEntity {
                process_id: id("Process.ProcessId", &["ProcessId"], report),
                command_line: verbatim("Process.CommandLine", &["CommandLine"], report),
                image_file: graph.field(entity, "ImageFile").and_then(file_path),
                parent_image_file: parent.and_then(|p| graph.field(p, "ImageFile")).and_then(file_path),
                parent_command_line: parent.and_then(|p| text(p, &["CommandLine"])).map(str::to_owned),
                account: graph.field(entity, "Account").and_then(|a| text(a, &["UserPrincipalName", "Name"])).map(str::to_owned),
            };
            out.processes.push(process);
        }
        "url" => match text(entity, &["Url"]) {
            Some(raw) => match Url::parse(raw) {
                Ok(url) => out.urls.push(UrlEntity { url: url.into() }),
                Err(_) => match report.clean("Url.Url", raw, FieldKind::Verbatim) {
                    // Keep what the SIEM reported even when it is not an absolute URL; it is evidence.
                    Some(url) => out.urls.push(UrlEntity { url }),
                    None => report.reject("Url.Url", "empty url"),
                },
            },
            None => report.reject("Url.Url", "url entity without a Url"),
        },
        "dns" | "dnsresolution" => match id("Dns.DomainName", &["DomainName"], report) {
            Some(domain) => out.dns.push(DnsEntity {
                domain: domain.to_ascii_lowercase(),
                resolved_ips: entity
                    .get("IpAddresses")
                    .and_then(Json::as_array)
                    .map(|ips| ips.iter().filter_map(|ip| text(graph.resolve(ip), &["Address"])).map(str::to_owned).collect())
                    .unwrap_or_default(),
            }),
            None => report.reject("Dns.DomainName", "dns entity without a DomainName"),
        },
        "mailbox" => {
            let mailbox = Mailbox {
                address: id("Mailbox.MailboxPrimaryAddress", &["MailboxPrimaryAddress", "Upn"], report).map(|a| a.to_ascii_lowercase()),
                display_name: id("Mailbox.DisplayName", &["DisplayName"], report),
                aad_id: id("Mailbox.AadId", &["AadId", "ExternalDirectoryObjectId"], report),
            };
            if mailbox != Mailbox::default() {
                out.mailboxes.push(mailbox);
            }
        }
        _ => out.other.push(OtherEntity { entity_type: raw_type.to_owned(), attributes: scalar_attributes(graph, entity, report) }),
    }
}

/// `Directory\Name` of a file entity.
fn file_path(file: &Json<'_>) -> Option<String> {
    match (text(file, &["Directory"]), text(file, &["Name"])) {
        (Some(directory), Some(name)) => {
            let directory = directory.trim_end_matches('\\');
            let mut path = String::with_capacity(directory.len() + 1 + name.len());
            path.push_str(directory);
            path.push('\\');
            path.push_str(name);
            Some(path)
        }
        (None, Some(name)) => Some(name.to_owned()),
        (Some(directory), None) => Some(directory.to_owned()),
        (None, None) => None,
    }
}

fn file_hash(entity: &Json<'_>, report: &mut SanitizeReport) -> Option<FileHash> {
    let algorithm = text(entity, &["Algorithm"])?.to_ascii_lowercase();
    let value = text(entity, &["Value"])?;
    let canonical = match algorithm.as_str() {
        "md5" => Md5::parse(value).map(String::from),
        "sha1" => Sha1::parse(value).map(String::from),
        "sha256" => Sha256::parse(value).map(String::from),
        "sha512" => Sha512::parse(value).map(String::from),
        // Other algorithms (SHA256AC, authenticode...) are kept lowercased as reported.
        _ => Ok(value.to_ascii_lowercase()),
    };
    match canonical {
        Ok(value) => Some(FileHash { algorithm, value }),
        Err(error) => {
            report.reject("FileHash.Value", &error.to_string());
            None
        }
    }
}

/// Scalar attributes of an entity without a bucket; references to other entities become
/// `"<Type>:<$id>"` strings so the link is kept without duplicating the entity.
fn scalar_attributes(graph: &Graph<'_, '_>, entity: &Json<'_>, report: &mut SanitizeReport) -> serde_json::Map<String, Value> {
    let mut attributes = serde_json::Map::new();
    let Some(pairs) = entity.as_object() else { return attributes };
    for (key, value) in pairs {
        if key == "$id" || key == "Type" {
            continue;
        }
        let value = graph.resolve(value);
        let kept = match value {
            Json::String(text) => report.clean(key, text, FieldKind::Verbatim).map(Value::String),
            Json::Number(_) | Json::Bool(_) => Some(value.to_value()),
            Json::Object(_) => value
                .get("Type")
                .and_then(Json::as_str)
                .map(|kind| Value::String(format!("{kind}:{}", value.get("$id").and_then(Json::scalar_text).unwrap_or_default()))),
            Json::Array(_) | Json::Null => None,
        };
        if let Some(kept) = kept {
            attributes.insert(key.to_string(), kept);
        }
    }
    attributes
}

#[cfg(test)]
mod tests;
