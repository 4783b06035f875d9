//! FR-ENR-003 / NFR-SEC-008 validation and sanitisation of entity fields.
//!
//! Every string taken from an alert is capped at [`MAX_FIELD_LENGTH`] characters. Identifier fields
//! (names, hosts, accounts, domains) also lose the characters FR-ENR-003 lists as dangerous. Paths,
//! URLs and command lines keep them: stripping `(`/`)` from `C:\Program Files (x86)\...` would destroy
//! evidence, and the protection FR-ENR-003 aims at is given structurally instead (parameterised SQL
//! only, and untrusted text reaches a model only inside the gateway's escaped evidence block).
//! Every change is counted, with the field and the reason.

use serde::{Deserialize, Serialize};

/// FR-ENR-003: longest field kept, in characters; longer values are truncated.
pub const MAX_FIELD_LENGTH: usize = 2048;

/// FR-ENR-003 dangerous characters, stripped from identifier fields.
pub const DANGEROUS_CHARACTERS: &[char] = &[';', '|', '&', '`', '$', '(', ')', '{', '}', '[', ']', '<', '>', '\'', '"'];

const PLAIN: u8 = 0;
const DANGEROUS: u8 = 1;
/// Control characters (other than tab) and non-ASCII bytes: take the careful path.
const SPECIAL: u8 = 2;

static BYTE_CLASS: [u8; 256] = {
    let mut table = [PLAIN; 256];
    let mut byte = 0;
    while byte < 256 {
        #[expect(clippy::cast_possible_truncation, reason = "byte < 256")]
        let b = byte as u8;
        if (b < 0x20 && b != b'\t') || b == 0x7f || b >= 0x80 {
            table[byte] = SPECIAL;
        }
        byte += 1;
    }
    let dangerous = b";|&`$(){}[]<>'\"";
    let mut index = 0;
    while index < dangerous.len() {
        table[dangerous[index] as usize] = DANGEROUS;
        index += 1;
    }
    table
};

/// How a field is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// Names and identifiers: capped and stripped of dangerous characters.
    Identifier,
    /// Command lines, paths, URLs, free text: capped only.
    Verbatim,
}

/// One change made to, or rejection of, a field value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldIssue {
    pub field: String,
    pub reason: String,
}

/// What sanitisation changed or rejected while parsing one alert.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SanitizeReport {
    pub truncated: usize,
    pub stripped: usize,
    pub rejected: usize,
    pub issues: Vec<FieldIssue>,
}

impl SanitizeReport {
    /// Sanitises one field value; returns `None` (and counts a rejection) for values that are empty
    /// after sanitisation.
    pub fn clean(&mut self, field: &str, value: &str, kind: FieldKind) -> Option<String> {
        let trimmed = value.trim();
        // Cap first, so the checks below read at most MAX_FIELD_LENGTH characters.
        let mut kept = trimmed;
        if trimmed.len() > MAX_FIELD_LENGTH {
            let end = if trimmed.is_ascii() {
                MAX_FIELD_LENGTH
            } else {
                trimmed.char_indices().nth(MAX_FIELD_LENGTH).map_or(trimmed.len(), |(index, _)| index)
            };
            if end < trimmed.len() {
                kept = &trimmed[..end];
                self.truncated += 1;
                self.issues.push(FieldIssue { field: field.to_owned(), reason: format!("truncated to {MAX_FIELD_LENGTH} characters") });
            }
        }
        // Fast path (almost every value): plain ASCII with nothing to strip, checked in one pass
        // over the bytes with a lookup table.
        let strip_dangerous = kind == FieldKind::Identifier;
        let needs_work = kept.bytes().any(|b| {
            let class = BYTE_CLASS[usize::from(b)];
            class == SPECIAL || (strip_dangerous && class == DANGEROUS)
        });
        if !needs_work {
            return (!kept.is_empty()).then(|| kept.to_owned());
        }
        let mut out = kept.to_owned();
        if out.chars().any(|c| c.is_control() && c != '\t') {
            out.retain(|c| !c.is_control() || c == '\t');
            self.stripped += 1;
            self.issues.push(FieldIssue { field: field.to_owned(), reason: "control characters removed".to_owned() });
        }
        if strip_dangerous && out.contains(DANGEROUS_CHARACTERS) {
            out.retain(|c| !DANGEROUS_CHARACTERS.contains(&c));
            self.stripped += 1;
            self.issues.push(FieldIssue { field: field.to_owned(), reason: "dangerous characters removed (FR-ENR-003)".to_owned() });
        }
        let out = out.trim().to_owned();
        if out.is_empty() {
            if !trimmed.is_empty() {
                self.reject(field, "empty after sanitisation");
            }
            return None;
        }
        Some(out)
    }

    /// Counts a value that failed its format check.
    pub fn reject(&mut self, field: &str, reason: &str) {
        self.rejected += 1;
        self.issues.push(FieldIssue { field: field.to_owned(), reason: reason.to_owned() });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_fields_at_2048_characters() {
        let mut report = SanitizeReport::default();
        let long = "é".repeat(MAX_FIELD_LENGTH + 10);
        let cleaned = report.clean("Description", &long, FieldKind::Verbatim).expect("non-empty");
        assert_eq!(cleaned.chars().count(), MAX_FIELD_LENGTH);
        assert_eq!(report.truncated, 1);
    }

    #[test]
    fn strips_dangerous_characters_from_identifiers_but_not_command_lines() {
        let mut report = SanitizeReport::default();
        let name = report.clean("HostName", "ws01'; DROP TABLE alerts; --", FieldKind::Identifier);
        assert_eq!(name.as_deref(), Some("ws01 DROP TABLE alerts --"));
        let command = report.clean("CommandLine", "cmd.exe /c \"whoami & net user\"", FieldKind::Verbatim);
        assert_eq!(command.as_deref(), Some("cmd.exe /c \"whoami & net user\""));
        assert_eq!(report.stripped, 1);
        assert_eq!(report.issues[0].field, "HostName");
    }

    #[test]
    fn counts_values_emptied_by_sanitisation_as_rejected() {
        let mut report = SanitizeReport::default();
        assert_eq!(report.clean("Name", "$(){}", FieldKind::Identifier), None);
        assert_eq!(report.rejected, 1);
        assert_eq!(report.clean("Name", "   ", FieldKind::Identifier), None);
        assert_eq!(report.rejected, 1, "a blank value is absent, not rejected");
    }
}
