//! ATT&CK tactic names as sources write them: ids (`TA0006`), display names in any case, kebab or
//! snake case (`command-and-control`), or squashed (`CommandAndControl`). Splunk and Elastic alerts
//! mix these, and one tactic written two ways must count once.

/// The 14 Enterprise ATT&CK tactics (v18): id and display name.
pub const TACTICS: [(&str, &str); 14] = [
    ("TA0043", "Reconnaissance"),
    ("TA0042", "Resource Development"),
    ("TA0001", "Initial Access"),
    ("TA0002", "Execution"),
    ("TA0003", "Persistence"),
    ("TA0004", "Privilege Escalation"),
    ("TA0005", "Defense Evasion"),
    ("TA0006", "Credential Access"),
    ("TA0007", "Discovery"),
    ("TA0008", "Lateral Movement"),
    ("TA0009", "Collection"),
    ("TA0011", "Command and Control"),
    ("TA0010", "Exfiltration"),
    ("TA0040", "Impact"),
];

/// Lower-case letters and digits only: `Command and Control`, `command-and-control` and
/// `CommandAndControl` share one key.
fn key(text: &str) -> String {
    text.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_lowercase()).collect()
}

/// The display name of a tactic written in any of the usual ways, or `None` when `raw` is not one.
pub fn tactic_name(raw: &str) -> Option<&'static str> {
    let raw = raw.trim();
    let wanted = key(raw);
    TACTICS.iter().find(|(id, name)| raw.eq_ignore_ascii_case(id) || key(name) == wanted).map(|(_, name)| *name)
}

/// Tactics in display form, each once (first occurrence kept); unknown strings kept as written.
pub fn normalise_tactics(items: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        let name = tactic_name(&item).map_or(item, str::to_owned);
        if !out.iter().any(|seen| key(seen) == key(&name)) {
            out.push(name);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_a_tactic_is_one_tactic() {
        for raw in ["TA0011", "ta0011", "Command and Control", "command-and-control", "command_and_control", "CommandAndControl"] {
            assert_eq!(tactic_name(raw), Some("Command and Control"), "{raw}");
        }
        assert_eq!(tactic_name("T1059"), None);
        let tactics = vec!["Credential Access".to_owned(), "TA0006".to_owned(), "lateral-movement".to_owned(), "Weird".to_owned()];
        assert_eq!(normalise_tactics(tactics), vec!["Credential Access", "Lateral Movement", "Weird"]);
    }
}
