//! A read-only view of a JSON document by dotted path, for sources that mix dotted keys
//! (`"kibana.alert.rule.name": ...`) and nested objects (`{"host": {"name": ...}}`) in one document,
//! as Elastic alert documents do. `get("host.os.name")` finds the value whichever way it is spelled.

use std::collections::HashMap;

use serde_json::Value;

/// Deepest nesting flattened; deeper values are not reachable by path (and reported by the caller).
const MAX_DEPTH: usize = 16;

pub struct Flat<'a> {
    values: HashMap<String, &'a Value>,
}

impl<'a> Flat<'a> {
    pub fn new(document: &'a Value) -> Self {
        let mut values = HashMap::new();
        if let Value::Object(map) = document {
            for (key, value) in map {
                insert(&mut values, key.clone(), value, 0);
            }
        }
        Flat { values }
    }

    /// The value at `path`, if present and not null.
    pub fn get(&self, path: &str) -> Option<&'a Value> {
        self.values.get(path).copied().filter(|value| !value.is_null())
    }

    /// Non-empty trimmed strings at `path`: a string, each string of an array, or a number's text.
    pub fn strings(&self, path: &str) -> Vec<String> {
        match self.get(path) {
            Some(value) => strings_of(value),
            None => Vec::new(),
        }
    }

    /// The first non-empty string among `paths`.
    pub fn first(&self, paths: &[&str]) -> Option<String> {
        paths.iter().find_map(|path| self.strings(path).into_iter().next())
    }
}

fn insert<'a>(values: &mut HashMap<String, &'a Value>, path: String, value: &'a Value, depth: usize) {
    if let Value::Object(map) = value
        && depth < MAX_DEPTH
    {
        for (key, child) in map {
            insert(values, format!("{path}.{key}"), child, depth + 1);
        }
    }
    // Objects are kept too (`threat`, `process.parent`), so callers can read structured sub-trees.
    values.entry(path).or_insert(value);
}

/// Strings of a scalar or an array of scalars.
pub fn strings_of(value: &Value) -> Vec<String> {
    let one = |value: &Value| match value {
        Value::String(text) => Some(text.trim().to_owned()).filter(|t| !t.is_empty()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    };
    match value {
        Value::Array(items) => items.iter().filter_map(one).collect(),
        other => one(other).into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn dotted_and_nested_spellings_read_alike() {
        let document = json!({
            "kibana.alert.rule.name": "Encoded PowerShell",
            "kibana": {"alert": {"severity": "high"}},
            "host": {"name": "ws01", "ip": ["10.0.0.5", "fe80::1"]},
            "process.pid": 4242
        });
        let flat = Flat::new(&document);
        assert_eq!(flat.first(&["kibana.alert.rule.name"]).as_deref(), Some("Encoded PowerShell"));
        assert_eq!(flat.first(&["kibana.alert.severity"]).as_deref(), Some("high"));
        assert_eq!(flat.strings("host.ip"), vec!["10.0.0.5", "fe80::1"]);
        assert_eq!(flat.first(&["process.pid"]).as_deref(), Some("4242"));
        assert!(flat.get("host").is_some_and(Value::is_object));
        assert_eq!(flat.get("missing"), None);
    }
}
