//! Hand-written scanners for the indicator families whose regexes had no literal to anchor on
//! (domains, IPv4, IPv6, hashes). Each finds maximal tokens of the family's alphabet around a
//! cheap anchor (`.`, `:` via memchr; hex runs in one byte loop) and hands them to the validating
//! newtypes; the boundary rules are the ones the table-driven tests pin.

/// `[A-Za-z0-9_.-]`: the alphabet of host names and dotted quads.
fn is_dotted(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'-' | b'_')
}

/// `[0-9A-Fa-f:.]`: the alphabet of IPv6 text (with an embedded dotted quad).
fn is_ipv6_byte(byte: u8) -> bool {
    byte.is_ascii_hexdigit() || matches!(byte, b':' | b'.')
}

/// Maximal runs of `class` bytes that contain `anchor`, as byte ranges, left to right.
fn tokens_around(text: &[u8], anchor: u8, class: fn(u8) -> bool) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut from = 0;
    std::iter::from_fn(move || {
        let found = from + memchr::memchr(anchor, text.get(from..)?)?;
        let mut start = found;
        while start > 0 && class(text[start - 1]) {
            start -= 1;
        }
        let mut end = found + 1;
        while end < text.len() && class(text[end]) {
            end += 1;
        }
        from = end;
        Some((start, end))
    })
}

/// Dotted tokens (`evil.example.com`, `10.0.0.1`, `1.2.3.4-1.2.3.9`), trimmed of sentence punctuation.
pub fn dotted_tokens(text: &str) -> impl Iterator<Item = (usize, &str)> + '_ {
    tokens_around(text.as_bytes(), b'.', is_dotted).filter_map(move |(start, end)| {
        let token = &text[start..end];
        let trimmed_start = token.len() - token.trim_start_matches(['.', '-']).len();
        let token = token.trim_start_matches(['.', '-']).trim_end_matches(['.', '-']);
        (token.contains('.')).then_some((start + trimmed_start, token))
    })
}

/// Tokens with at least two colons in the IPv6 alphabet, trimmed of a sentence-ending dot.
pub fn colon_tokens(text: &str) -> impl Iterator<Item = (usize, &str)> + '_ {
    let bytes = text.as_bytes();
    tokens_around(bytes, b':', is_ipv6_byte).filter_map(move |(start, end)| {
        let boundary_before = start == 0 || !bytes[start - 1].is_ascii_alphanumeric();
        let boundary_after = end == bytes.len() || !bytes[end].is_ascii_alphanumeric();
        let token = text[start..end].trim_end_matches('.');
        (boundary_before && boundary_after && token.bytes().filter(|b| *b == b':').count() >= 2).then_some((start, token))
    })
}

/// Local part of an address: `[A-Za-z0-9._%+'-]`.
fn is_local_part(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'%' | b'+' | b'-' | b'\'')
}

/// `local@domain` tokens around each `@`: the local part without leading quotes or dots, the domain
/// without trailing dots or hyphens (sentence punctuation). Validation is the caller's.
pub fn email_tokens(text: &str) -> impl Iterator<Item = (usize, &str)> + '_ {
    let bytes = text.as_bytes();
    let mut from = 0;
    std::iter::from_fn(move || {
        loop {
            let at = from + memchr::memchr(b'@', bytes.get(from..)?)?;
            from = at + 1;
            let mut start = at;
            while start > 0 && is_local_part(bytes[start - 1]) {
                start -= 1;
            }
            while start < at && matches!(bytes[start], b'\'' | b'.') {
                start += 1;
            }
            let mut end = at + 1;
            while end < bytes.len() && is_dotted(bytes[end]) {
                end += 1;
            }
            while end > at + 1 && matches!(bytes[end - 1], b'.' | b'-') {
                end -= 1;
            }
            if start < at && end > at + 1 {
                from = end;
                return Some((start, &text[start..end]));
            }
        }
    })
}

/// `[0-9A-Fa-f:-]`: the alphabet of MAC addresses.
fn is_mac_byte(byte: u8) -> bool {
    byte.is_ascii_hexdigit() || matches!(byte, b':' | b'-')
}

/// Six two-digit hex groups separated by one kind of separator (`00:1a:2b:3c:4d:5e`,
/// `00-1A-2B-3C-4D-5E`), as whole tokens.
pub fn mac_tokens(text: &str) -> impl Iterator<Item = (usize, &str)> + '_ {
    let bytes = text.as_bytes();
    let mut from = 0;
    std::iter::from_fn(move || {
        loop {
            let found = from + memchr::memchr2(b':', b'-', bytes.get(from..)?)?;
            let mut start = found;
            while start > 0 && is_mac_byte(bytes[start - 1]) {
                start -= 1;
            }
            let mut end = found + 1;
            while end < bytes.len() && is_mac_byte(bytes[end]) {
                end += 1;
            }
            from = end;
            let bounded =
                (start == 0 || !bytes[start - 1].is_ascii_alphanumeric()) && (end == bytes.len() || !bytes[end].is_ascii_alphanumeric());
            let token = &text[start..end];
            let shaped = token.len() == 17 && {
                let separator = bytes[start + 2];
                (0..17).all(|i| if i % 3 == 2 { bytes[start + i] == separator } else { bytes[start + i].is_ascii_hexdigit() })
            };
            if bounded && shaped {
                return Some((start, token));
            }
        }
    })
}

/// Shortest digest (MD5) in hex digits.
const MIN_DIGEST_HEX: usize = 32;

/// Whole runs of hex digits of exactly 32, 40, 64 or 128 characters, not touching other letters
/// or digits (so never a substring of a longer run or of a word).
///
/// Skips ahead by probing: a run of at least 32 hex digits that starts at or after `i` must
/// include byte `i + 31`, so when that byte is not hex the whole window is skipped. In prose this
/// looks at a fraction of the bytes.
pub fn hex_runs(text: &str) -> impl Iterator<Item = (usize, &str)> + '_ {
    let bytes = text.as_bytes();
    let mut index = 0;
    std::iter::from_fn(move || {
        while index + MIN_DIGEST_HEX <= bytes.len() {
            let probe = index + MIN_DIGEST_HEX - 1;
            if !bytes[probe].is_ascii_hexdigit() {
                index = probe + 1;
                continue;
            }
            // Invariant: `bytes[index - 1]` is not hex (or index is 0), so the run starts at or after `index`.
            let mut start = probe;
            while start > index && bytes[start - 1].is_ascii_hexdigit() {
                start -= 1;
            }
            let mut end = probe + 1;
            while end < bytes.len() && bytes[end].is_ascii_hexdigit() {
                end += 1;
            }
            index = end + 1;
            let bounded =
                (start == 0 || !bytes[start - 1].is_ascii_alphanumeric()) && (end == bytes.len() || !bytes[end].is_ascii_alphanumeric());
            if bounded && matches!(end - start, 32 | 40 | 64 | 128) {
                return Some((start, &text[start..end]));
            }
        }
        None
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_tokens_are_maximal_and_trimmed() {
        let found: Vec<&str> = dotted_tokens("see evil.example.com. Then 1.2.3.4-1.2.3.9, e.g. -x.y-").map(|(_, t)| t).collect();
        assert_eq!(found, vec!["evil.example.com", "1.2.3.4-1.2.3.9", "e.g", "x.y"]);
    }

    #[test]
    fn colon_tokens_need_two_colons_and_clean_edges() {
        let found: Vec<&str> = colon_tokens("a 2001:db8::1. b fe80::1%eth0 c x2001:db8::1 10:30").map(|(_, t)| t).collect();
        assert_eq!(found, vec!["2001:db8::1", "fe80::1"]);
    }

    proptest::proptest! {
        /// The skipping scanner finds exactly the runs a naive scan finds.
        #[test]
        fn hex_runs_match_a_naive_scan(text in "[0-9a-fA-F xg_]{0,300}") {
            let naive: Vec<(usize, &str)> = {
                let bytes = text.as_bytes();
                let mut out = Vec::new();
                let mut i = 0;
                while i < bytes.len() {
                    if !bytes[i].is_ascii_hexdigit() { i += 1; continue; }
                    let start = i;
                    while i < bytes.len() && bytes[i].is_ascii_hexdigit() { i += 1; }
                    let bounded = (start == 0 || !bytes[start - 1].is_ascii_alphanumeric()) && (i == bytes.len() || !bytes[i].is_ascii_alphanumeric());
                    if bounded && matches!(i - start, 32 | 40 | 64 | 128) { out.push((start, &text[start..i])); }
                }
                out
            };
            proptest::prop_assert_eq!(hex_runs(&text).collect::<Vec<_>>(), naive);
        }
    }

    #[test]
    fn email_tokens_trim_quotes_and_sentence_punctuation() {
        let found: Vec<&str> = email_tokens("to 'a.b@x.example.org'. and o'neil@y.example.com, @handle x@ @y").map(|(_, t)| t).collect();
        assert_eq!(found, vec!["a.b@x.example.org", "o'neil@y.example.com"]);
    }

    #[test]
    fn mac_tokens_are_exact() {
        let found: Vec<&str> = mac_tokens("a 00:1a:2b:3c:4d:5e b 00-1A-2B-3C-4D-5E c 00:1a-2b:3c:4d:5e d 00:1a:2b:3c:4d:5e:6f well-known")
            .map(|(_, t)| t)
            .collect();
        assert_eq!(found, vec!["00:1a:2b:3c:4d:5e", "00-1A-2B-3C-4D-5E"]);
    }

    #[test]
    fn hex_runs_are_whole_and_of_digest_length() {
        let md5 = "9d8e30daf21108092d5980c931876b7e";
        let text = format!("{md5} x{md5} {md5}a {md5}_ {}", &md5[..31]);
        let found: Vec<usize> = hex_runs(&text).map(|(start, _)| start).collect();
        let underscore_case = text.find(&format!(" {md5}_")).expect("present") + 1;
        assert_eq!(found, vec![0, underscore_case]);
    }
}
