//! ATT&CK and ATLAS identifiers as playbooks and alerts write them.
//!
//! Playbooks name tactics by id (`TA0006`); SIEMs mostly name them (`CredentialAccess`,
//! `Credential Access`, `credential-access`), so an alert's tactic is resolved to an id before it
//! is compared, with the tactic table and spellings of [`aluskort_extract::attack`].

use aluskort_extract::attack::{TACTICS, tactic_name};

fn digits(text: &str, count: usize) -> bool {
    text.len() == count && text.bytes().all(|b| b.is_ascii_digit())
}

/// `T1234`, `T1234.123`, `AML.T1234` or `AML.T1234.123`.
pub fn is_technique_id(text: &str) -> bool {
    let rest = text.strip_prefix("AML.").unwrap_or(text);
    let Some(number) = rest.strip_prefix('T') else {
        return false;
    };
    match number.split_once('.') {
        Some((technique, sub)) => digits(technique, 4) && digits(sub, 3),
        None => digits(number, 4),
    }
}

/// `TA1234` or `AML.TA1234`.
pub fn is_tactic_id(text: &str) -> bool {
    let rest = text.strip_prefix("AML.").unwrap_or(text);
    rest.strip_prefix("TA").is_some_and(|number| digits(number, 4))
}

/// Whether `id` is one of the Enterprise tactics (ATLAS ids are not checked).
pub fn is_known_enterprise_tactic(id: &str) -> bool {
    id.starts_with("AML.") || TACTICS.iter().any(|(known, _)| *known == id)
}

/// The id of a tactic written as an id (any case) or as a name in any of the usual spellings;
/// `None` when it is neither.
pub fn tactic_id(raw: &str) -> Option<String> {
    let trimmed = raw.trim();
    let upper = trimmed.to_ascii_uppercase();
    if is_tactic_id(&upper) {
        return Some(upper);
    }
    let name = tactic_name(trimmed)?;
    TACTICS.iter().find(|(_, known)| *known == name).map(|(id, _)| (*id).to_owned())
}

/// Whether the alert's technique `seen` is `listed` or one of its sub-techniques (case-insensitive).
pub fn technique_matches(listed: &str, seen: &str) -> bool {
    let seen = seen.trim();
    match seen.as_bytes().get(..listed.len()) {
        Some(head) if head.eq_ignore_ascii_case(listed.as_bytes()) => matches!(seen.as_bytes().get(listed.len()), None | Some(b'.')),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_attack_and_atlas_ids() {
        for good in ["T1566", "T1566.001", "AML.T0051", "AML.T0051.000"] {
            assert!(is_technique_id(good), "{good}");
        }
        for bad in ["T156", "T1566.01", "t1566", "TA0001", "T1566.", "AML.TA0001", "1566"] {
            assert!(!is_technique_id(bad), "{bad}");
        }
        assert!(is_tactic_id("TA0001") && is_tactic_id("AML.TA0004"));
        assert!(!is_tactic_id("TA001") && !is_tactic_id("ta0001") && !is_tactic_id("Initial Access"));
    }

    #[test]
    fn resolves_tactic_names_in_any_spelling() {
        for raw in ["TA0006", "ta0006", "CredentialAccess", "Credential Access", "credential-access"] {
            assert_eq!(tactic_id(raw).as_deref(), Some("TA0006"), "{raw}");
        }
        assert_eq!(tactic_id("Unknown"), None);
    }

    #[test]
    fn a_technique_matches_its_sub_techniques_only_downwards() {
        assert!(technique_matches("T1566", "T1566"));
        assert!(technique_matches("T1566", "t1566.002"));
        assert!(!technique_matches("T1566.002", "T1566"));
        assert!(!technique_matches("T156", "T1566"));
        assert!(!technique_matches("T1566", "T15660"));
    }
}
