//! Refanging: threat reports write indicators in "defanged" form so nobody clicks them
//! (`hxxp://evil[.]com`, `user[at]example(dot)org`). We rewrite them to their live form before matching.
//! Only bracketed or clearly marked forms are rewritten; a bare word `dot` is left alone, since it
//! occurs in ordinary prose.

use std::borrow::Cow;
use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

/// (defanged form, live form), matched ASCII-case-insensitively, longest first.
const REPLACEMENTS: &[(&str, &str)] = &[
    ("[://]", "://"),
    ("[:]//", "://"),
    ("[:/]/", "://"),
    ("(://)", "://"),
    ("{://}", "://"),
    ("[.]", "."),
    ("(.)", "."),
    ("{.}", "."),
    ("[dot]", "."),
    ("(dot)", "."),
    ("{dot}", "."),
    (" [dot] ", "."),
    (" (dot) ", "."),
    ("[d]", "."),
    ("\\.", "."),
    ("[@]", "@"),
    ("(@)", "@"),
    ("{@}", "@"),
    ("[at]", "@"),
    ("(at)", "@"),
    ("{at}", "@"),
    (" [at] ", "@"),
    (" (at) ", "@"),
    ("[:]", ":"),
    ("hxxps", "https"),
    ("hxxp", "http"),
    ("hxtps", "https"),
    ("hxtp", "http"),
    ("hpps", "https"),
    ("fxp", "ftp"),
];

static MATCHER: LazyLock<AhoCorasick> = LazyLock::new(|| {
    AhoCorasickBuilder::new()
        .ascii_case_insensitive(true)
        .match_kind(MatchKind::LeftmostLongest)
        .build(REPLACEMENTS.iter().map(|(from, _)| from))
        .unwrap_or_else(|error| unreachable!("static refang patterns are valid: {error}"))
});

/// Returns `text` with every defanged marker rewritten; borrows when there is nothing to rewrite.
pub fn refang(text: &str) -> Cow<'_, str> {
    // One pass: the output is only allocated at the first marker actually rewritten.
    let mut out: Option<String> = None;
    let mut last = 0;
    for found in MATCHER.find_iter(text) {
        let (from, to) = REPLACEMENTS[found.pattern().as_usize()];
        // A defanged scheme starts a word and is followed by its separator (`hxxp://`, `hxxp[:]//`),
        // so `ahxxpb` and a registry key named `fxpin7` are left alone.
        let is_scheme = from.starts_with(['h', 'f']);
        let starts_word = !text[..found.start()].chars().next_back().is_some_and(|c| c.is_ascii_alphanumeric());
        let separator_follows = text[found.end()..].starts_with([':', '[', '(', '{']);
        if is_scheme && !(starts_word && separator_follows) {
            continue;
        }
        // `\.` is an escaped dot only between word characters (`evil\.com`), not a regex in prose.
        if from == "\\." && starts_word {
            continue;
        }
        let buffer = out.get_or_insert_with(|| String::with_capacity(text.len()));
        buffer.push_str(&text[last..found.start()]);
        buffer.push_str(to);
        last = found.end();
    }
    match out {
        Some(mut buffer) => {
            buffer.push_str(&text[last..]);
            Cow::Owned(buffer)
        }
        None => Cow::Borrowed(text),
    }
}

/// Defangs a live indicator the canonical way (`http`→`hxxp`, `.`→`[.]`, `@`→`[@]`); used in
/// reports and tests (refang ∘ defang is the identity on canonical values).
pub fn defang(value: &str) -> String {
    let mut out = value.replace('.', "[.]").replace('@', "[@]");
    if let Some(rest) = out.strip_prefix("https") {
        out = format!("hxxps{rest}");
    } else if let Some(rest) = out.strip_prefix("http") {
        out = format!("hxxp{rest}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refangs_every_documented_style() {
        let cases = [
            ("hxxp://evil[.]com/a", "http://evil.com/a"),
            ("hXXps[://]bad(.)example{.}org", "https://bad.example.org"),
            ("http[:]//203.0.113[.]7", "http://203.0.113.7"),
            ("evil[dot]com", "evil.com"),
            ("evil(dot)com", "evil.com"),
            ("user[at]example[.]com", "user@example.com"),
            ("user(at)example(dot)com", "user@example.com"),
            ("user[@]example[.]com", "user@example.com"),
            ("2001[:]db8::1", "2001:db8::1"),
            ("evil\\.com", "evil.com"),
        ];
        for (defanged, live) in cases {
            assert_eq!(refang(defanged), live, "{defanged}");
        }
    }

    #[test]
    fn leaves_ordinary_prose_alone() {
        for text in
            ["the dot product", "meet at noon", "ahxxpb", "plain text. New sentence", "a \\. b", "HKCU\\fxpin7\\Run", "hxxp is slang"]
        {
            assert_eq!(refang(text), text);
        }
        assert!(matches!(refang("nothing here"), Cow::Borrowed(_)));
    }
}
