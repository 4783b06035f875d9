//! Technique IDs in a model's answer are checked against the ATT&CK/ATLAS taxonomy; an ID the
//! taxonomy does not hold (invented, mistyped, revoked) is removed from the answer and reported so
//! the gateway can audit it as `technique.quarantined` (NFR-SEC-004). An array element that is
//! only the ID is dropped; an ID inside longer text is replaced by `[unverified technique]`.

use std::sync::LazyLock;

use aluskort_knowledge::Taxonomy;
use aluskort_knowledge::taxonomy::TechniqueError;
use regex::Regex;
use serde_json::Value;

static TECHNIQUE: LazyLock<Regex> = LazyLock::new(|| {
    #[allow(clippy::expect_used)]
    Regex::new(r"\b(?:AML\.)?T\d{4}(?:\.\d{3})?\b").expect("technique pattern compiles")
});

pub const REPLACEMENT: &str = "[unverified technique]";

/// Which technique IDs exist.
pub trait TechniqueCatalog: Send + Sync {
    fn is_known(&self, id: &str) -> bool;
}

/// Known means current or deprecated; a revoked or absent ID is quarantined.
impl TechniqueCatalog for Taxonomy {
    fn is_known(&self, id: &str) -> bool {
        matches!(self.validate(id), Ok(_) | Err(TechniqueError::Deprecated { .. }))
    }
}

impl<T: TechniqueCatalog + ?Sized> TechniqueCatalog for &T {
    fn is_known(&self, id: &str) -> bool {
        (**self).is_known(id)
    }
}

/// Strips unknown technique IDs from `value` in place; returns them, each once, in order found.
pub fn quarantine(value: &mut Value, catalog: &dyn TechniqueCatalog) -> Vec<String> {
    let mut removed = Vec::new();
    walk(value, catalog, &mut removed);
    removed
}

fn unknown_in(text: &str, catalog: &dyn TechniqueCatalog) -> Vec<String> {
    TECHNIQUE.find_iter(text).map(|m| m.as_str().to_owned()).filter(|id| !catalog.is_known(id)).collect()
}

fn note(removed: &mut Vec<String>, ids: Vec<String>) {
    for id in ids {
        if !removed.contains(&id) {
            removed.push(id);
        }
    }
}

fn walk(value: &mut Value, catalog: &dyn TechniqueCatalog, removed: &mut Vec<String>) {
    match value {
        Value::String(text) => {
            let unknown = unknown_in(text, catalog);
            if !unknown.is_empty() {
                let cleaned = TECHNIQUE
                    .replace_all(text, |captures: &regex::Captures<'_>| {
                        let id = &captures[0];
                        if catalog.is_known(id) { id.to_owned() } else { REPLACEMENT.to_owned() }
                    })
                    .into_owned();
                *text = cleaned;
                note(removed, unknown);
            }
        }
        Value::Array(items) => {
            items.retain(|item| {
                let Some(text) = item.as_str() else { return true };
                let bare = TECHNIQUE.find(text).is_some_and(|m| m.start() == 0 && m.end() == text.len());
                if bare && !catalog.is_known(text) {
                    note(removed, vec![text.to_owned()]);
                    return false;
                }
                true
            });
            for item in items {
                walk(item, catalog, removed);
            }
        }
        Value::Object(object) => {
            for item in object.values_mut() {
                walk(item, catalog, removed);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn invented_ids_are_removed_and_real_ones_kept() {
        let taxonomy = Taxonomy::embedded();
        let mut answer = json!({
            "techniques": ["T1059.001", "T1059.999", "AML.T0051", "AML.T9999", "T9876"],
            "reasoning": "Encoded PowerShell (T1059.001) then T1234.567 persistence.",
            "nested": {"also": ["T0000"]}
        });
        let removed = quarantine(&mut answer, taxonomy);
        assert_eq!(removed, ["T1059.999", "AML.T9999", "T9876", "T1234.567", "T0000"]);
        assert_eq!(answer["techniques"], json!(["T1059.001", "AML.T0051"]));
        assert_eq!(answer["reasoning"], "Encoded PowerShell (T1059.001) then [unverified technique] persistence.");
        assert_eq!(answer["nested"]["also"], json!([]));

        let mut clean = json!({"techniques": ["T1566.001"], "n": 3});
        assert!(quarantine(&mut clean, taxonomy).is_empty());
        assert_eq!(clean, json!({"techniques": ["T1566.001"], "n": 3}));
    }
}
