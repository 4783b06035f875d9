//! Indicator newtypes. Each can only be built through `parse`, which validates and canonicalises, so a
//! value of type `Sha256` is always 64 lowercase hex characters, an `Ipv6` is always RFC 5952 text, and so
//! on. Deserialisation goes through the same `parse` (`serde(try_from = "String")`).
//!
//! Public-suffix checks for domains live in the extraction crate, which owns the suffix list; here a
//! domain is only checked for DNS syntax (FR-ENR-003 domain pattern, relaxed for IDNA `xn--` TLDs).

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

/// Why a string is not a valid indicator of the requested type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind}: {reason}")]
pub struct IocError {
    pub kind: IocType,
    pub reason: &'static str,
}

impl IocError {
    const fn new(kind: IocType, reason: &'static str) -> Self {
        IocError { kind, reason }
    }
}

/// The indicator types ALUSKORT extracts, with their wire names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IocType {
    Ipv4,
    Ipv6,
    Domain,
    Url,
    Email,
    Md5,
    Sha1,
    Sha256,
    Sha512,
    Cve,
    AttackTechnique,
    RegistryKey,
    FilePath,
    Mac,
    Asn,
}

impl IocType {
    pub const ALL: [IocType; 15] = [
        IocType::Ipv4,
        IocType::Ipv6,
        IocType::Domain,
        IocType::Url,
        IocType::Email,
        IocType::Md5,
        IocType::Sha1,
        IocType::Sha256,
        IocType::Sha512,
        IocType::Cve,
        IocType::AttackTechnique,
        IocType::RegistryKey,
        IocType::FilePath,
        IocType::Mac,
        IocType::Asn,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            IocType::Ipv4 => "ipv4",
            IocType::Ipv6 => "ipv6",
            IocType::Domain => "domain",
            IocType::Url => "url",
            IocType::Email => "email",
            IocType::Md5 => "md5",
            IocType::Sha1 => "sha1",
            IocType::Sha256 => "sha256",
            IocType::Sha512 => "sha512",
            IocType::Cve => "cve",
            IocType::AttackTechnique => "attack_technique",
            IocType::RegistryKey => "registry_key",
            IocType::FilePath => "file_path",
            IocType::Mac => "mac",
            IocType::Asn => "asn",
        }
    }
}

impl fmt::Display for IocType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

macro_rules! ioc_newtype {
    ($(#[$meta:meta])* $name:ident, $kind:expr, $parse:path) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates and canonicalises `raw`; the only way to build this type.
            pub fn parse(raw: &str) -> Result<Self, IocError> {
                $parse(raw.trim()).map($name)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub const KIND: IocType = $kind;
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = IocError;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                $name::parse(&value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }
    };
}

ioc_newtype!(
    /// IPv4 address in dotted-quad form without leading zeros.
    Ipv4, IocType::Ipv4, parse_ipv4);
ioc_newtype!(
    /// IPv6 address in RFC 5952 canonical (compressed, lowercase) form.
    Ipv6, IocType::Ipv6, parse_ipv6);
ioc_newtype!(
    /// DNS name, lowercase, without trailing dot.
    Domain, IocType::Domain, parse_domain);
ioc_newtype!(
    /// Absolute URL with a scheme and a host; scheme and host lowercased.
    Url, IocType::Url, parse_url);
ioc_newtype!(
    /// E-mail address; the domain part is lowercased.
    Email, IocType::Email, parse_email);
ioc_newtype!(
    /// MD5 digest, 32 lowercase hex characters.
    Md5, IocType::Md5, parse_md5);
ioc_newtype!(
    /// SHA-1 digest, 40 lowercase hex characters.
    Sha1, IocType::Sha1, parse_sha1);
ioc_newtype!(
    /// SHA-256 digest, 64 lowercase hex characters.
    Sha256, IocType::Sha256, parse_sha256);
ioc_newtype!(
    /// SHA-512 digest, 128 lowercase hex characters.
    Sha512, IocType::Sha512, parse_sha512);
ioc_newtype!(
    /// CVE identifier, `CVE-YYYY-NNNN…` uppercase.
    Cve, IocType::Cve, parse_cve);
ioc_newtype!(
    /// MITRE ATT&CK (`T1059`, `T1059.001`) or ATLAS (`AML.T0051`, `AML.T0044.001`) technique identifier.
    TechniqueId, IocType::AttackTechnique, parse_technique);
ioc_newtype!(
    /// Windows registry key rooted at a hive (`HKLM\…`, `HKEY_CURRENT_USER\…`).
    RegistryKey, IocType::RegistryKey, parse_registry_key);
ioc_newtype!(
    /// Absolute Windows (drive or UNC) or POSIX file path.
    FilePath, IocType::FilePath, parse_file_path);
ioc_newtype!(
    /// MAC address, lowercase, colon separated.
    Mac, IocType::Mac, parse_mac);
ioc_newtype!(
    /// Autonomous system number, `AS` followed by the decimal number.
    Asn, IocType::Asn, parse_asn);

impl TechniqueId {
    /// True for ATLAS (`AML.`) identifiers.
    pub fn is_atlas(&self) -> bool {
        self.0.starts_with("AML.")
    }

    /// The parent technique of a sub-technique (`T1059.001` → `T1059`), or itself.
    pub fn parent(&self) -> &str {
        let dots = if self.is_atlas() { 2 } else { 1 };
        match self.0.match_indices('.').nth(dots - 1) {
            Some((index, _)) => &self.0[..index],
            None => &self.0,
        }
    }
}

fn parse_ipv4(raw: &str) -> Result<String, IocError> {
    let kind = IocType::Ipv4;
    if raw.split('.').any(|octet| octet.len() > 1 && octet.starts_with('0')) {
        return Err(IocError::new(kind, "octet with a leading zero is ambiguous"));
    }
    raw.parse::<Ipv4Addr>().map(|ip| ip.to_string()).map_err(|_| IocError::new(kind, "not four decimal octets of at most 255"))
}

fn parse_ipv6(raw: &str) -> Result<String, IocError> {
    let kind = IocType::Ipv6;
    let without_brackets = raw.strip_prefix('[').and_then(|s| s.strip_suffix(']')).unwrap_or(raw);
    // A zone index (`fe80::1%eth0`) names a local interface, not an indicator: keep the address only.
    let address = without_brackets.split('%').next().unwrap_or(without_brackets);
    if !address.contains(':') {
        return Err(IocError::new(kind, "an IPv6 address contains ':'"));
    }
    address.parse::<Ipv6Addr>().map(|ip| ip.to_string()).map_err(|_| IocError::new(kind, "not a valid IPv6 address"))
}

/// DNS syntax: 2..=127 labels of 1..=63 letters, digits, hyphens (not at the ends) or underscores,
/// at most 253 characters, ending in an alphabetic (or `xn--`) top-level label of at least 2 characters.
fn parse_domain(raw: &str) -> Result<String, IocError> {
    let kind = IocType::Domain;
    let name = raw.strip_suffix('.').unwrap_or(raw).to_ascii_lowercase();
    if name.is_empty() || name.len() > 253 {
        return Err(IocError::new(kind, "length must be 1..=253"));
    }
    let labels: Vec<&str> = name.split('.').collect();
    if labels.len() < 2 {
        return Err(IocError::new(kind, "needs at least two labels"));
    }
    for label in &labels {
        if label.is_empty() || label.len() > 63 {
            return Err(IocError::new(kind, "label length must be 1..=63"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(IocError::new(kind, "label starts or ends with '-'"));
        }
        if !label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(IocError::new(kind, "label has a character outside [a-z0-9_-]"));
        }
    }
    let tld = labels[labels.len() - 1];
    let tld_ok = tld.len() >= 2 && (tld.bytes().all(|b| b.is_ascii_alphabetic()) || (tld.starts_with("xn--") && tld.len() > 4));
    if !tld_ok {
        return Err(IocError::new(kind, "top-level label must be alphabetic, at least 2 characters"));
    }
    Ok(name)
}

const URL_SCHEMES: [&str; 8] = ["http", "https", "ftp", "ftps", "sftp", "ws", "wss", "smb"];

fn parse_url(raw: &str) -> Result<String, IocError> {
    let kind = IocType::Url;
    let Some((scheme, rest)) = raw.split_once("://") else {
        return Err(IocError::new(kind, "missing '://'"));
    };
    let scheme = scheme.to_ascii_lowercase();
    if !URL_SCHEMES.contains(&scheme.as_str()) {
        return Err(IocError::new(kind, "unsupported scheme"));
    }
    if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(IocError::new(kind, "contains whitespace or control characters"));
    }
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let (host, port) = split_host_port(host_port);
    if let Some(port) = port
        && (port.is_empty() || port.parse::<u16>().is_err())
    {
        return Err(IocError::new(kind, "invalid port"));
    }
    let host_canonical = if host.starts_with('[') {
        format!("[{}]", parse_ipv6(host).map_err(|_| IocError::new(kind, "invalid IPv6 host"))?)
    } else if let Ok(ip) = parse_ipv4(host) {
        ip
    } else {
        parse_domain(host).or_else(|_| parse_single_label_host(host)).map_err(|_| IocError::new(kind, "invalid host"))?
    };
    let userinfo = authority.rsplit_once('@').map(|(user, _)| format!("{user}@")).unwrap_or_default();
    let port_text = port.map(|p| format!(":{p}")).unwrap_or_default();
    Ok(format!("{scheme}://{userinfo}{host_canonical}{port_text}{tail}"))
}

/// Intranet URLs (`http://fileserver/share`) carry a single-label host.
fn parse_single_label_host(host: &str) -> Result<String, IocError> {
    let valid = !host.is_empty()
        && host.len() <= 63
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && !host.starts_with('-');
    if valid { Ok(host.to_ascii_lowercase()) } else { Err(IocError::new(IocType::Url, "invalid host")) }
}

fn split_host_port(host_port: &str) -> (&str, Option<&str>) {
    if host_port.starts_with('[') {
        return match host_port.find(']') {
            Some(end) => {
                let (host, rest) = host_port.split_at(end + 1);
                (host, rest.strip_prefix(':'))
            }
            None => (host_port, None),
        };
    }
    match host_port.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (host_port, None),
    }
}

fn parse_email(raw: &str) -> Result<String, IocError> {
    let kind = IocType::Email;
    let Some((local, domain)) = raw.rsplit_once('@') else {
        return Err(IocError::new(kind, "missing '@'"));
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local.bytes().all(|b| b.is_ascii_alphanumeric() || b"._%+-'".contains(&b));
    if !local_ok {
        return Err(IocError::new(kind, "invalid local part"));
    }
    let domain = parse_domain(domain).map_err(|_| IocError::new(kind, "invalid domain part"))?;
    Ok(format!("{local}@{domain}"))
}

fn parse_hex(raw: &str, len: usize, kind: IocType) -> Result<String, IocError> {
    if raw.len() != len {
        return Err(IocError::new(kind, "wrong number of hex digits"));
    }
    if !raw.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(IocError::new(kind, "non-hex character"));
    }
    Ok(raw.to_ascii_lowercase())
}

fn parse_md5(raw: &str) -> Result<String, IocError> {
    parse_hex(raw, 32, IocType::Md5)
}
fn parse_sha1(raw: &str) -> Result<String, IocError> {
    parse_hex(raw, 40, IocType::Sha1)
}
fn parse_sha256(raw: &str) -> Result<String, IocError> {
    parse_hex(raw, 64, IocType::Sha256)
}
fn parse_sha512(raw: &str) -> Result<String, IocError> {
    parse_hex(raw, 128, IocType::Sha512)
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn parse_cve(raw: &str) -> Result<String, IocError> {
    let kind = IocType::Cve;
    let upper = raw.to_ascii_uppercase();
    let mut parts = upper.splitn(3, '-');
    let (Some("CVE"), Some(year), Some(number)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(IocError::new(kind, "expected CVE-YYYY-NNNN"));
    };
    if year.len() != 4 || !all_digits(year) || !(1999..=2100).contains(&year.parse::<u32>().unwrap_or(0)) {
        return Err(IocError::new(kind, "year must be 1999..=2100"));
    }
    if number.len() < 4 || number.len() > 7 || !all_digits(number) {
        return Err(IocError::new(kind, "sequence number must be 4..=7 digits"));
    }
    Ok(upper)
}

fn parse_technique(raw: &str) -> Result<String, IocError> {
    let kind = IocType::AttackTechnique;
    let upper = raw.to_ascii_uppercase();
    let (prefix, body) = match upper.strip_prefix("AML.") {
        Some(body) => ("AML.", body),
        None => ("", upper.as_str()),
    };
    let Some(digits) = body.strip_prefix('T') else {
        return Err(IocError::new(kind, "expected T followed by four digits"));
    };
    let (technique, sub) = match digits.split_once('.') {
        Some((technique, sub)) => (technique, Some(sub)),
        None => (digits, None),
    };
    if technique.len() != 4 || !all_digits(technique) {
        return Err(IocError::new(kind, "technique number must be four digits"));
    }
    if let Some(sub) = sub
        && (sub.len() != 3 || !all_digits(sub))
    {
        return Err(IocError::new(kind, "sub-technique number must be three digits"));
    }
    Ok(format!("{prefix}{body}"))
}

/// Hive names accepted at the start of a registry key, long and short forms.
pub const REGISTRY_HIVES: [&str; 12] = [
    "HKEY_LOCAL_MACHINE",
    "HKEY_CURRENT_USER",
    "HKEY_CLASSES_ROOT",
    "HKEY_USERS",
    "HKEY_CURRENT_CONFIG",
    "HKEY_PERFORMANCE_DATA",
    "HKLM",
    "HKCU",
    "HKCR",
    "HKU",
    "HKCC",
    "HKPD",
];

fn parse_registry_key(raw: &str) -> Result<String, IocError> {
    let kind = IocType::RegistryKey;
    let hive_end = raw.find('\\').unwrap_or(raw.len());
    let hive = raw[..hive_end].to_ascii_uppercase();
    if !REGISTRY_HIVES.contains(&hive.as_str()) {
        return Err(IocError::new(kind, "must start with a registry hive"));
    }
    if raw.chars().any(char::is_control) {
        return Err(IocError::new(kind, "contains control characters"));
    }
    let rest = raw[hive_end..].trim_end_matches('\\');
    Ok(format!("{hive}{rest}"))
}

fn parse_file_path(raw: &str) -> Result<String, IocError> {
    let kind = IocType::FilePath;
    if raw.chars().any(char::is_control) || raw.len() < 3 {
        return Err(IocError::new(kind, "too short or contains control characters"));
    }
    let bytes = raw.as_bytes();
    let windows_drive = bytes.len() >= 3 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':' && (bytes[2] == b'\\' || bytes[2] == b'/');
    let unc = raw.starts_with("\\\\") && raw.len() > 2 && !raw[2..].starts_with('\\');
    let posix = raw.starts_with('/') && !raw.starts_with("//") && raw.len() > 1;
    let env_var = raw.starts_with('%') && raw[1..].find('%').is_some_and(|end| end > 0);
    if !(windows_drive || unc || posix || env_var) {
        return Err(IocError::new(kind, "not an absolute Windows, UNC, %VAR% or POSIX path"));
    }
    if windows_drive {
        let mut canonical = raw.to_owned();
        canonical[..1].make_ascii_uppercase();
        return Ok(canonical);
    }
    Ok(raw.to_owned())
}

fn parse_mac(raw: &str) -> Result<String, IocError> {
    let kind = IocType::Mac;
    let separator = if raw.contains(':') { ':' } else { '-' };
    let groups: Vec<&str> = raw.split(separator).collect();
    if groups.len() != 6 || !groups.iter().all(|g| g.len() == 2 && g.bytes().all(|b| b.is_ascii_hexdigit())) {
        return Err(IocError::new(kind, "expected six two-digit hex groups"));
    }
    Ok(groups.join(":").to_ascii_lowercase())
}

fn parse_asn(raw: &str) -> Result<String, IocError> {
    let kind = IocType::Asn;
    let upper = raw.to_ascii_uppercase();
    let digits = upper.strip_prefix("AS").map(str::trim_start).unwrap_or(upper.as_str());
    if !all_digits(digits) || digits.len() > 10 {
        return Err(IocError::new(kind, "expected AS followed by a number"));
    }
    let number: u64 = digits.parse().map_err(|_| IocError::new(kind, "number out of range"))?;
    if number == 0 || number > u64::from(u32::MAX) {
        return Err(IocError::new(kind, "number must be 1..=4294967295"));
    }
    Ok(format!("AS{number}"))
}

/// One indicator of compromise, serialised as `{"type": "...", "value": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum Ioc {
    Ipv4(Ipv4),
    Ipv6(Ipv6),
    Domain(Domain),
    Url(Url),
    Email(Email),
    Md5(Md5),
    Sha1(Sha1),
    Sha256(Sha256),
    Sha512(Sha512),
    Cve(Cve),
    AttackTechnique(TechniqueId),
    RegistryKey(RegistryKey),
    FilePath(FilePath),
    Mac(Mac),
    Asn(Asn),
}

impl Ioc {
    /// Parses `raw` as an indicator of the given type.
    pub fn parse(kind: IocType, raw: &str) -> Result<Ioc, IocError> {
        Ok(match kind {
            IocType::Ipv4 => Ioc::Ipv4(Ipv4::parse(raw)?),
            IocType::Ipv6 => Ioc::Ipv6(Ipv6::parse(raw)?),
            IocType::Domain => Ioc::Domain(Domain::parse(raw)?),
            IocType::Url => Ioc::Url(Url::parse(raw)?),
            IocType::Email => Ioc::Email(Email::parse(raw)?),
            IocType::Md5 => Ioc::Md5(Md5::parse(raw)?),
            IocType::Sha1 => Ioc::Sha1(Sha1::parse(raw)?),
            IocType::Sha256 => Ioc::Sha256(Sha256::parse(raw)?),
            IocType::Sha512 => Ioc::Sha512(Sha512::parse(raw)?),
            IocType::Cve => Ioc::Cve(Cve::parse(raw)?),
            IocType::AttackTechnique => Ioc::AttackTechnique(TechniqueId::parse(raw)?),
            IocType::RegistryKey => Ioc::RegistryKey(RegistryKey::parse(raw)?),
            IocType::FilePath => Ioc::FilePath(FilePath::parse(raw)?),
            IocType::Mac => Ioc::Mac(Mac::parse(raw)?),
            IocType::Asn => Ioc::Asn(Asn::parse(raw)?),
        })
    }

    pub fn kind(&self) -> IocType {
        match self {
            Ioc::Ipv4(_) => IocType::Ipv4,
            Ioc::Ipv6(_) => IocType::Ipv6,
            Ioc::Domain(_) => IocType::Domain,
            Ioc::Url(_) => IocType::Url,
            Ioc::Email(_) => IocType::Email,
            Ioc::Md5(_) => IocType::Md5,
            Ioc::Sha1(_) => IocType::Sha1,
            Ioc::Sha256(_) => IocType::Sha256,
            Ioc::Sha512(_) => IocType::Sha512,
            Ioc::Cve(_) => IocType::Cve,
            Ioc::AttackTechnique(_) => IocType::AttackTechnique,
            Ioc::RegistryKey(_) => IocType::RegistryKey,
            Ioc::FilePath(_) => IocType::FilePath,
            Ioc::Mac(_) => IocType::Mac,
            Ioc::Asn(_) => IocType::Asn,
        }
    }

    pub fn value(&self) -> &str {
        match self {
            Ioc::Ipv4(v) => v.as_str(),
            Ioc::Ipv6(v) => v.as_str(),
            Ioc::Domain(v) => v.as_str(),
            Ioc::Url(v) => v.as_str(),
            Ioc::Email(v) => v.as_str(),
            Ioc::Md5(v) => v.as_str(),
            Ioc::Sha1(v) => v.as_str(),
            Ioc::Sha256(v) => v.as_str(),
            Ioc::Sha512(v) => v.as_str(),
            Ioc::Cve(v) => v.as_str(),
            Ioc::AttackTechnique(v) => v.as_str(),
            Ioc::RegistryKey(v) => v.as_str(),
            Ioc::FilePath(v) => v.as_str(),
            Ioc::Mac(v) => v.as_str(),
            Ioc::Asn(v) => v.as_str(),
        }
    }
}

impl fmt::Display for Ioc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind(), self.value())
    }
}

#[cfg(test)]
mod tests;
