//! Validation of a model's structured answer against the tool's JSON Schema (NFR-SEC-004).
//!
//! A deliberately small subset of JSON Schema, enough for tool outputs: `type` (one or a list),
//! `properties`, `required`, `additionalProperties` (boolean), `items`, `enum`, `minimum`,
//! `maximum`, `minLength`, `maxLength`, `minItems`, `maxItems`; `description`, `title`, `default`,
//! `examples` and `$schema` are annotations. A schema using any other keyword is refused when it is
//! compiled, so no part of a schema is silently unchecked.

use serde_json::{Map, Value};

const CHECKED: &[&str] = &[
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "enum",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
];
const ANNOTATIONS: &[&str] = &["description", "title", "default", "examples", "$schema"];

/// A schema that has been checked to use only supported keywords.
#[derive(Debug, Clone, PartialEq)]
pub struct Schema(Value);

impl Schema {
    /// Checks every keyword at every depth; `Err` names each unsupported one with its path.
    pub fn compile(schema: &Value) -> Result<Schema, Vec<String>> {
        let mut problems = Vec::new();
        check_keywords(schema, "#", &mut problems);
        if problems.is_empty() { Ok(Schema(schema.clone())) } else { Err(problems) }
    }

    pub fn as_value(&self) -> &Value {
        &self.0
    }

    /// Every violation, each as `path: what is wrong`; empty means valid.
    pub fn validate(&self, value: &Value) -> Vec<String> {
        let mut errors = Vec::new();
        validate(&self.0, value, "$", &mut errors);
        errors
    }
}

fn check_keywords(schema: &Value, path: &str, problems: &mut Vec<String>) {
    let Some(object) = schema.as_object() else {
        problems.push(format!("{path}: a schema must be an object"));
        return;
    };
    for (key, value) in object {
        if ANNOTATIONS.contains(&key.as_str()) {
            continue;
        }
        if !CHECKED.contains(&key.as_str()) {
            problems.push(format!("{path}: keyword `{key}` is not supported"));
            continue;
        }
        match key.as_str() {
            "properties" => match value.as_object() {
                Some(properties) => {
                    for (name, sub) in properties {
                        check_keywords(sub, &format!("{path}/properties/{name}"), problems);
                    }
                }
                None => problems.push(format!("{path}/properties: must be an object")),
            },
            "items" => check_keywords(value, &format!("{path}/items"), problems),
            "additionalProperties" if !value.is_boolean() => {
                problems.push(format!("{path}/additionalProperties: only true/false is supported"));
            }
            _ => {}
        }
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_matches(expected: &str, value: &Value) -> bool {
    let actual = type_name(value);
    actual == expected
        || (expected == "number" && actual == "integer")
        || (expected == "integer" && value.as_f64().is_some_and(|n| n.fract() == 0.0) && actual == "number")
}

fn validate(schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    let Some(schema) = schema.as_object() else { return };
    if let Some(expected) = schema.get("type") {
        let names: Vec<&str> = match expected {
            Value::String(name) => vec![name.as_str()],
            Value::Array(names) => names.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !names.is_empty() && !names.iter().any(|name| type_matches(name, value)) {
            errors.push(format!("{path}: expected {}, got {}", names.join(" or "), type_name(value)));
            return;
        }
    }
    if let Some(Value::Array(allowed)) = schema.get("enum")
        && !allowed.contains(value)
    {
        errors.push(format!("{path}: {value} is not one of {}", Value::Array(allowed.clone())));
    }
    let number = |key: &str| schema.get(key).and_then(Value::as_f64);
    let count = |key: &str| schema.get(key).and_then(Value::as_u64);
    match value {
        Value::Number(n) => {
            let n = n.as_f64().unwrap_or(f64::NAN);
            if let Some(min) = number("minimum").filter(|min| n < *min) {
                errors.push(format!("{path}: {n} is below the minimum {min}"));
            }
            if let Some(max) = number("maximum").filter(|max| n > *max) {
                errors.push(format!("{path}: {n} is above the maximum {max}"));
            }
        }
        Value::String(text) => {
            let length = text.chars().count() as u64;
            if let Some(min) = count("minLength").filter(|min| length < *min) {
                errors.push(format!("{path}: {length} characters, fewer than {min}"));
            }
            if let Some(max) = count("maxLength").filter(|max| length > *max) {
                errors.push(format!("{path}: {length} characters, more than {max}"));
            }
        }
        Value::Array(items) => {
            let length = items.len() as u64;
            if let Some(min) = count("minItems").filter(|min| length < *min) {
                errors.push(format!("{path}: {length} items, fewer than {min}"));
            }
            if let Some(max) = count("maxItems").filter(|max| length > *max) {
                errors.push(format!("{path}: {length} items, more than {max}"));
            }
            if let Some(item_schema) = schema.get("items") {
                for (index, item) in items.iter().enumerate() {
                    validate(item_schema, item, &format!("{path}[{index}]"), errors);
                }
            }
        }
        Value::Object(object) => validate_object(schema, object, path, errors),
        Value::Null | Value::Bool(_) => {}
    }
}

fn validate_object(schema: &Map<String, Value>, object: &Map<String, Value>, path: &str, errors: &mut Vec<String>) {
    if let Some(Value::Array(required)) = schema.get("required") {
        for name in required.iter().filter_map(Value::as_str) {
            if !object.contains_key(name) {
                errors.push(format!("{path}.{name}: required property is missing"));
            }
        }
    }
    let properties = schema.get("properties").and_then(Value::as_object);
    for (name, item) in object {
        match properties.and_then(|properties| properties.get(name)) {
            Some(sub) => validate(sub, item, &format!("{path}.{name}"), errors),
            None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                errors.push(format!("{path}.{name}: property is not allowed"));
            }
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn classification_schema() -> Value {
        json!({
            "type": "object",
            "required": ["classification", "confidence", "techniques"],
            "additionalProperties": false,
            "properties": {
                "classification": {"type": "string", "enum": ["true_positive", "false_positive"]},
                "confidence": {"type": "number", "minimum": 0, "maximum": 1},
                "techniques": {"type": "array", "items": {"type": "string", "maxLength": 12}, "maxItems": 3},
                "summary": {"type": ["string", "null"], "description": "free text"}
            }
        })
    }

    #[test]
    fn valid_answers_pass_and_every_violation_is_named_with_its_path() {
        let schema = Schema::compile(&classification_schema()).expect("supported keywords");
        let good = json!({"classification": "true_positive", "confidence": 1, "techniques": ["T1059.001"], "summary": null});
        assert!(schema.validate(&good).is_empty(), "{:?}", schema.validate(&good));

        let bad = json!({"classification": "maybe", "confidence": 1.5, "techniques": ["T1059.001", 7, "x", "y"], "extra": true});
        let errors = schema.validate(&bad);
        assert!(errors.iter().any(|e| e.starts_with("$.classification: \"maybe\" is not one of")), "{errors:?}");
        assert!(errors.contains(&"$.confidence: 1.5 is above the maximum 1".to_owned()), "{errors:?}");
        assert!(errors.contains(&"$.techniques: 4 items, more than 3".to_owned()), "{errors:?}");
        assert!(errors.contains(&"$.techniques[1]: expected string, got integer".to_owned()), "{errors:?}");
        assert!(errors.contains(&"$.extra: property is not allowed".to_owned()), "{errors:?}");
        let missing = schema.validate(&json!({"classification": "false_positive"}));
        assert_eq!(missing, ["$.confidence: required property is missing", "$.techniques: required property is missing"]);
        assert_eq!(schema.validate(&json!("text")), ["$: expected object, got string"]);
    }

    #[test]
    fn unsupported_keywords_are_refused_at_compile_time() {
        let schema = json!({"type": "object", "properties": {"ip": {"type": "string", "format": "ipv4"}}, "oneOf": []});
        let problems = Schema::compile(&schema).expect_err("format and oneOf are not checked");
        assert_eq!(problems, ["#/properties/ip: keyword `format` is not supported", "#: keyword `oneOf` is not supported"]);
    }
}
