//! Free-text indicator extraction (FR-ENR-002 regex path, issue "extraction engine").
//!
//! The text is refanged first, then each indicator family is found by its own regex and every
//! candidate is validated through the `aluskort-core` newtypes, so the output only holds valid,
//! canonical values. Boundary rules keep near-misses out: a hash is a whole hex run of exactly
//! 32/40/64/128 digits (never part of a longer run), an IPv4 is not part of a dotted version
//! string, and a domain must end in a public suffix (so `report.pdf` is not a domain).

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use aluskort_core::ioc::{Domain, Email, REGISTRY_HIVES};
use aluskort_core::{Ioc, IocType};
use regex::Regex;

use crate::refang::refang;

fn regex(pattern: &str) -> Regex {
    Regex::new(pattern).unwrap_or_else(|error| unreachable!("static pattern {pattern:?} is valid: {error}"))
}

static URL: LazyLock<Regex> =
    LazyLock::new(|| regex(r#"(?i)(?-u:\b)(?:https?|ftps?|sftp|wss?)://(?:\[[0-9A-Fa-f:.]+\]|[^\s<>"'`{}|\\^\[\]])[^\s<>"'`{}|\\^\[\]]*"#));
static CVE: LazyLock<Regex> = LazyLock::new(|| regex(r"(?i)(?-u:\b)CVE-\d{4}-\d{4,7}(?-u:\b)"));
static TECHNIQUE: LazyLock<Regex> = LazyLock::new(|| regex(r"(?-u:\b)(?:AML\.)?T\d{4}(?:\.\d{3})?(?-u:\b)"));
static ASN: LazyLock<Regex> = LazyLock::new(|| regex(r"(?-u:\b)ASN?[ ]?\d{1,10}(?-u:\b)"));
static REGISTRY: LazyLock<Regex> = LazyLock::new(|| {
    let hives = REGISTRY_HIVES.join("|");
    // A hive, then at least one key name; key names stop at quotes, pipes, backticks and brackets
    // (Markdown code spans and `[placeholder]`s in reports).
    regex(&format!(r#"(?i)(?-u:\b)(?:{hives})\\[^\\\r\n\t"'<>|`\[\]]+(?:\\[^\\\r\n\t"'<>|`\[\]]*)*"#))
});
static WINDOWS_PATH: LazyLock<Regex> =
    LazyLock::new(|| regex(r#"(?i)(?:(?-u:\b)[a-z]:\\|\\\\[a-z0-9_.$-]+\\|%[a-z_]+%\\)[^\r\n\t"'<>|*?`\[\]]+"#));
static POSIX_PATH: LazyLock<Regex> = LazyLock::new(|| regex(r#"(?-u)(?:^|[\s'"`(=<\[,])(/(?:[A-Za-z0-9_.-]+/)+[A-Za-z0-9_.-]+)"#));

/// Characters that end an indicator in prose but are never its last character.
const TRAILING_PUNCTUATION: &[char] = &['.', ',', ';', ':', '!', '?', ')', ']', '}', '\'', '"', '>'];

/// Extracts every indicator in `text`, refanged and canonical, in order of first appearance,
/// without duplicates.
pub fn extract_iocs(text: &str) -> Vec<Ioc> {
    let text = refang(text);
    let mut sink = Sink::default();
    extract_into(&text, &mut sink);
    sink.found
}

/// Collects indicators without duplicates. Candidates already tried (same type, same text) are not
/// parsed again: reports repeat their indicators, and parsing is the expensive part.
#[derive(Default)]
struct Sink<'t> {
    found: Vec<Ioc>,
    seen: HashSet<Ioc>,
    tried: HashMap<(IocType, &'t str), bool>,
}

/// What became of a candidate.
enum Pushed {
    Invalid,
    /// Valid and new.
    New(Ioc),
    /// Valid, already reported.
    Seen,
}

impl Pushed {
    fn is_invalid(&self) -> bool {
        matches!(self, Pushed::Invalid)
    }
}

impl<'t> Sink<'t> {
    fn push(&mut self, kind: IocType, raw: &'t str) -> Pushed {
        if let Some(valid) = self.tried.get(&(kind, raw)) {
            return if *valid { Pushed::Seen } else { Pushed::Invalid };
        }
        let parsed = Ioc::parse(kind, raw);
        self.tried.insert((kind, raw), parsed.is_ok());
        match parsed {
            Ok(ioc) => self.record(ioc),
            Err(_) => Pushed::Invalid,
        }
    }

    /// For candidates that are not slices of the text (a URL's host).
    fn push_owned(&mut self, kind: IocType, raw: &str) -> Pushed {
        match Ioc::parse(kind, raw) {
            Ok(ioc) => self.record(ioc),
            Err(_) => Pushed::Invalid,
        }
    }

    fn record(&mut self, ioc: Ioc) -> Pushed {
        if self.seen.insert(ioc.clone()) {
            self.found.push(ioc.clone());
            Pushed::New(ioc)
        } else {
            Pushed::Seen
        }
    }
}

fn before(text: &str, start: usize) -> Option<char> {
    text[..start].chars().next_back()
}

fn after(text: &str, end: usize) -> Option<char> {
    text[end..].chars().next()
}

fn extract_into<'t>(text: &'t str, sink: &mut Sink<'t>) {
    // URLs first: their hosts are reported as domains/IPs too, and their spans are remembered so
    // that path fragments inside them are not reported as POSIX paths.
    let mut url_spans = Vec::new();
    for found in URL.find_iter(text) {
        let candidate = trim_url(found.as_str());
        match sink.push(IocType::Url, candidate) {
            Pushed::New(Ioc::Url(url)) => {
                url_spans.push(found.start()..found.start() + candidate.len());
                if let Some(host) = url_host(url.as_str()) {
                    push_host(sink, host);
                }
            }
            Pushed::Seen | Pushed::New(_) => url_spans.push(found.start()..found.start() + candidate.len()),
            Pushed::Invalid => {}
        }
    }
    for (_, candidate) in crate::scan::email_tokens(text) {
        if let Some((_, domain)) = candidate.rsplit_once('@')
            && is_public_domain(domain)
            && Email::parse(candidate).is_ok()
        {
            sink.push(IocType::Email, candidate);
            sink.push(IocType::Domain, domain);
        }
    }
    for (start, token) in crate::scan::dotted_tokens(text) {
        let end = start + token.len();
        // An e-mail's domain (handled above), a path component (`C:\dir\a.dll`, `/tmp/x.sh`),
        // or the local part of an address (`first.last@`) is not a domain on its own.
        let preceded_by_path = match before(text, start) {
            Some('@' | '\\') => true,
            Some('/') => !text[..start].ends_with("//"),
            _ => false,
        };
        if preceded_by_path || matches!(after(text, end), Some('@' | '\\')) {
            continue;
        }
        if token.bytes().all(|b| b.is_ascii_digit() || b == b'.' || b == b'-') {
            // Dotted quads, alone or as the ends of a range (`10.0.0.1-10.0.0.255`).
            for part in token.split('-') {
                if part.bytes().filter(|b| *b == b'.').count() == 3 {
                    sink.push(IocType::Ipv4, part);
                }
            }
            continue;
        }
        if is_public_domain(token) && !looks_like_file_name(token) {
            sink.push(IocType::Domain, token);
        }
    }
    for (_, token) in crate::scan::colon_tokens(text) {
        // `00:1a:2b:3c:4d:5e` is a MAC address, not IPv6; `mac_tokens` reports it.
        if token.len() != 17 && sink.push(IocType::Ipv6, token).is_invalid() && token.ends_with(':') && !token.ends_with("::") {
            // A colon after the address is punctuation (`at 2001:db8::1: the ...`).
            sink.push(IocType::Ipv6, &token[..token.len() - 1]);
        }
    }
    for (_, run) in crate::scan::hex_runs(text) {
        let kind = match run.len() {
            32 => IocType::Md5,
            40 => IocType::Sha1,
            64 => IocType::Sha256,
            _ => IocType::Sha512,
        };
        sink.push(kind, run);
    }
    for found in CVE.find_iter(text) {
        sink.push(IocType::Cve, found.as_str());
    }
    for found in TECHNIQUE.find_iter(text) {
        // `T1059.01` is a malformed sub-technique, not T1059 followed by prose.
        let rest = &text[found.end()..];
        if rest.starts_with('.') && rest[1..].starts_with(|c: char| c.is_ascii_digit()) {
            continue;
        }
        sink.push(IocType::AttackTechnique, found.as_str());
    }
    for (_, token) in crate::scan::mac_tokens(text) {
        sink.push(IocType::Mac, token);
    }
    for found in ASN.find_iter(text) {
        sink.push(IocType::Asn, found.as_str().trim_start_matches(|c: char| !c.is_ascii_digit()));
    }
    for_each_spaced_path(text, &REGISTRY, |path| {
        sink.push(IocType::RegistryKey, path);
    });
    for_each_spaced_path(text, &WINDOWS_PATH, |path| {
        // `C:\Windows\` and `C:\Windows` name the same directory; a drive root keeps its separator.
        let trimmed = path.trim_end_matches('\\');
        let path = if trimmed.len() <= 2 { path } else { trimmed };
        sink.push(IocType::FilePath, path);
    });
    for captures in POSIX_PATH.captures_iter(text) {
        if let Some(path) = captures.get(1)
            && !url_spans.iter().any(|span| span.contains(&path.start()))
        {
            sink.push(IocType::FilePath, path.as_str().trim_end_matches(TRAILING_PUNCTUATION));
        }
    }
}

/// A domain whose suffix is on the public suffix list and which has a registrable label in front of it.
pub fn is_public_domain(candidate: &str) -> bool {
    let Ok(domain) = Domain::parse(candidate) else {
        return false;
    };
    let name = domain.as_str();
    match psl::suffix(name.as_bytes()) {
        Some(suffix) => suffix.is_known() && suffix.as_bytes().len() < name.len(),
        None => false,
    }
}

/// Country-code and generic TLDs that are also common file extensions (`main.py`, `lib.rs`,
/// `run.sh`, `notes.md`, `a.zip`). A bare two-label name ending in one is read as a file name; the
/// same name with a subdomain, or inside a URL or an e-mail address, is still a domain.
const FILE_EXTENSION_TLDS: &[&str] = &["py", "rs", "sh", "pl", "pm", "md", "ps", "so", "zip", "mov", "mk"];

fn looks_like_file_name(domain: &str) -> bool {
    let mut labels = domain.rsplit('.');
    let tld = labels.next().unwrap_or_default().to_ascii_lowercase();
    labels.count() == 1 && FILE_EXTENSION_TLDS.contains(&tld.as_str())
}

fn push_host(sink: &mut Sink<'_>, host: &str) {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if sink.push_owned(IocType::Ipv4, host).is_invalid() && sink.push_owned(IocType::Ipv6, host).is_invalid() && is_public_domain(host) {
        sink.push_owned(IocType::Domain, host);
    }
}

/// The host part of a canonical URL.
fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    if host_port.starts_with('[') {
        return host_port.split_inclusive(']').next();
    }
    Some(host_port.rsplit_once(':').map_or(host_port, |(host, _)| host))
}

/// Trims prose punctuation from the end of a URL, keeping a closing parenthesis that has an opening one
/// (`https://en.wikipedia.org/wiki/Foo_(bar)`).
fn trim_url(candidate: &str) -> &str {
    // An unbalanced `)` ends the URL: `[APT28](https://x/G0007).(Citation: ...)` in Markdown.
    let mut depth = 0_i32;
    let mut end = candidate.len();
    for (index, c) in candidate.char_indices() {
        match c {
            '(' => depth += 1,
            ')' if depth == 0 => {
                end = index;
                break;
            }
            ')' => depth -= 1,
            _ => {}
        }
    }
    let candidate = &candidate[..end];
    candidate.trim_end_matches(|c: char| TRAILING_PUNCTUATION.contains(&c) && c != ')')
}

/// Finds paths that may contain spaces; after trimming a match to the path proper, the search resumes
/// right after it, so a second path later on the same command line is found too.
fn for_each_spaced_path<'t>(text: &'t str, pattern: &Regex, mut on_path: impl FnMut(&'t str)) {
    let mut from = 0;
    while let Some(found) = pattern.find_at(text, from) {
        // A quoted path (`"C:\Users\a b\x - y.exe" /c`) ends at its closing quote, spaces and all.
        let quoted = match before(text, found.start()) {
            Some(quote @ ('"' | '\'')) => text[found.start()..]
                .find(quote)
                .map(|close| &text[found.start()..found.start() + close])
                .filter(|path| !path.contains(['\r', '\n'])),
            _ => None,
        };
        let path = quoted.unwrap_or_else(|| trim_spaced_path(found.as_str()));
        from = if path.is_empty() { found.end() } else { found.start() + path.len() };
        if matches!(before(text, found.start()), Some(c) if c.is_ascii_alphanumeric()) {
            continue;
        }
        on_path(path);
    }
}

/// Registry keys and Windows paths may hold spaces (`Program Files (x86)`, `Windows NT`), but prose or
/// command-line arguments follow them. A space stays inside the path only when another `\` follows and
/// nothing between looks like an argument (`/c`, `-x`), a drive (`C:`), or a file name (`a.exe`), and the
/// component before the space is not itself a file name.
fn trim_spaced_path(candidate: &str) -> &str {
    let mut cut = candidate.len();
    for (index, ch) in candidate.char_indices() {
        if !ch.is_whitespace() {
            continue;
        }
        let component_start = candidate[..index].rfind('\\').map_or(0, |separator| separator + 1);
        let component = &candidate[component_start..index];
        let rest = &candidate[index..];
        let continues = match rest.find('\\') {
            None => false,
            Some(next_separator) => {
                let between = &rest[..next_separator];
                let words = between.split_whitespace().count();
                // Names with spaces are short (`Windows NT`, `Program Files (x86)`); prose is not.
                words <= 3
                    && !between.split_whitespace().any(|token| {
                        token.starts_with(['/', '-', '%'])
                            || token.contains([':', '.', ','])
                            || (token.contains(['(', ')']) && !token.eq_ignore_ascii_case("(x86)"))
                            || REGISTRY_HIVES.iter().any(|hive| token.len() >= hive.len() && token[..hive.len()].eq_ignore_ascii_case(hive))
                    })
            }
        };
        if !continues || component.contains('.') || component.ends_with([',', ';', ')']) {
            cut = index;
            break;
        }
    }
    candidate[..cut].trim_end_matches(TRAILING_PUNCTUATION).trim_end()
}

#[cfg(test)]
mod tests;
