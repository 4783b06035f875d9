//! Investigation versions stored as JSON merge patches (RFC 7396) against the version before them.
//!
//! Every transition is still its own stored version, but most of a `GraphState` does not change
//! from one step to the next: storing the whole state each time made the version table the bulk
//! of what the pipeline writes (~42 KB of ~65 KB per real Sentinel alert). The first version of
//! each write is stored whole; each later one as `{"$patch": <merge patch>}` against the one
//! before. A patch is used only when applying it reproduces the version exactly: RFC 7396 cannot
//! express a JSON `null` value, so a version whose changes hold one is stored whole, and history
//! reads back exactly as written.
//!
//! One extension of RFC 7396: an array that only grew (the decision chain, the list of
//! enrichments) is patched as `{"$append": [<new items>]}` rather than repeated whole, since
//! appending is what most steps do to it. A patch object with that single key means "append"
//! only where the value it patches is an array; a version that would make that ambiguous (an
//! array replaced by an object with a `$append` key) is stored whole.

use serde_json::{Map, Value};

use crate::StoreResult;

/// Top-level key of a stored patch; never a `GraphState` field.
const PATCH_KEY: &str = "$patch";
const APPEND_KEY: &str = "$append";

/// The merge patch turning `old` into `new`; `None` when they are equal. Sets `lossy` when the
/// patch would not reproduce `new` exactly: a JSON `null` in `new` that applying would drop.
fn diff(old: &Value, new: &Value, lossy: &mut bool) -> Option<Value> {
    match (old, new) {
        (Value::Object(old), Value::Object(new)) => {
            let mut patch = Map::new();
            for (key, new_value) in new {
                match old.get(key) {
                    Some(old_value) => {
                        if let Some(change) = diff(old_value, new_value, lossy) {
                            patch.insert(key.clone(), change);
                        }
                    }
                    None => {
                        *lossy |= drops_nulls(new_value);
                        patch.insert(key.clone(), new_value.clone());
                    }
                }
            }
            for key in old.keys().filter(|key| !new.contains_key(*key)) {
                patch.insert(key.clone(), Value::Null);
            }
            (!patch.is_empty()).then_some(Value::Object(patch))
        }
        (Value::Array(old), Value::Array(new)) if new.len() > old.len() && new[..old.len()] == old[..] => {
            let mut append = Map::new();
            append.insert(APPEND_KEY.to_owned(), Value::Array(new[old.len()..].to_vec()));
            Some(Value::Object(append))
        }
        (Value::Array(_), Value::Object(map)) if map.contains_key(APPEND_KEY) => {
            // Would read back as an append: store the version whole.
            *lossy = true;
            Some(Value::Object(map.clone()))
        }
        _ if old == new => None,
        // Arrays and scalars are replaced whole (RFC 7396 has no finer edit for them).
        _ => {
            *lossy |= drops_nulls(new);
            Some(new.clone())
        }
    }
}

/// Whether applying `value` as a patch loses something: a `null`, itself or as an object member
/// at any depth (arrays are copied whole, nulls in them survive).
fn drops_nulls(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Object(map) => map.values().any(drops_nulls),
        _ => false,
    }
}

/// Applies merge patch `patch` to `target` (RFC 7396 §2).
fn apply(target: &mut Value, patch: &Value) {
    if let (Value::Array(items), Value::Object(patch)) = (&mut *target, patch)
        && patch.len() == 1
        && let Some(Value::Array(appended)) = patch.get(APPEND_KEY)
    {
        items.extend(appended.iter().cloned());
        return;
    }
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(map) = target {
        for (key, value) in patch {
            if value.is_null() {
                map.remove(key);
            } else {
                apply(map.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

/// Stored bodies for consecutive versions `values`: the first whole, each later one as a patch
/// against the one before when that patch reproduces it exactly, else whole.
pub(crate) fn encode(values: &[Value]) -> StoreResult<Vec<String>> {
    let mut bodies = Vec::with_capacity(values.len());
    for (index, value) in values.iter().enumerate() {
        let previous = index.checked_sub(1).and_then(|before| values.get(before));
        let patched = previous.filter(|previous| previous.is_object() && value.is_object()).and_then(|previous| {
            let mut lossy = false;
            let patch = diff(previous, value, &mut lossy).unwrap_or_else(|| Value::Object(Map::new()));
            (!lossy).then_some(patch)
        });
        bodies.push(match patched {
            Some(patch) => serde_json::to_string(&serde_json::json!({ PATCH_KEY: patch }))?,
            None => serde_json::to_string(value)?,
        });
    }
    Ok(bodies)
}

/// The versions `bodies` (oldest first, as [`encode`] wrote them, or whole from before patches
/// existed) reconstructed.
pub(crate) fn decode(bodies: &[String]) -> StoreResult<Vec<aluskort_core::GraphState>> {
    let mut states = Vec::with_capacity(bodies.len());
    let mut previous: Option<Value> = None;
    for body in bodies {
        let mut value: Value = serde_json::from_str(body)?;
        let patch = match &mut value {
            Value::Object(map) if map.len() == 1 && map.contains_key(PATCH_KEY) => map.remove(PATCH_KEY),
            _ => None,
        };
        if let Some(patch) = patch {
            let Some(mut base) = previous.take() else {
                return Err(crate::StoreError::invalid("investigation history starts with a patch, not a whole version"));
            };
            apply(&mut base, &patch);
            value = base;
        }
        states.push(serde_json::from_value(value.clone())?);
        previous = Some(value);
    }
    Ok(states)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Every version `bodies` hold, each patch applied to the version before it.
    fn replay(bodies: &[String]) -> Vec<Value> {
        let mut versions: Vec<Value> = Vec::new();
        for body in bodies {
            let mut value: Value = serde_json::from_str(body).expect("json");
            if let Some(patch) = value.get(PATCH_KEY).cloned() {
                let mut base = versions.last().cloned().expect("a patch follows a version");
                apply(&mut base, &patch);
                value = base;
            }
            versions.push(value);
        }
        versions
    }

    #[test]
    fn patches_reproduce_every_version_exactly() {
        let versions = [
            json!({"state": "received", "version": 1, "facts": {"a": 1}, "chain": [1], "gone": "x"}),
            json!({"state": "parsing", "version": 2, "facts": {"a": 1, "b": {"c": 2}}, "chain": [1, 2]}),
            json!({"state": "parsing", "version": 3, "facts": {"b": {"c": 3}}, "chain": [1, 2], "n": null}),
            json!({"state": "closed", "version": 4, "facts": {"b": {"c": 3}}, "chain": [1, 2, 3]}),
        ];
        let bodies = encode(&versions).expect("encode");
        assert!(!bodies[0].contains(PATCH_KEY), "the first version is whole");
        assert!(bodies[1].starts_with(r#"{"$patch""#), "{}", bodies[1]);
        assert!(!bodies[2].contains(PATCH_KEY), "a version holding a JSON null is stored whole: {}", bodies[2]);
        assert!(bodies[3].contains(PATCH_KEY));
        assert_eq!(replay(&bodies), versions);
    }

    #[test]
    fn a_null_inside_a_new_object_is_kept_by_storing_the_version_whole() {
        let versions = [json!({"facts": {}}), json!({"facts": {"added": {"inner": null, "n": 1}}})];
        let bodies = encode(&versions).expect("encode");
        assert!(!bodies[1].contains(PATCH_KEY), "{}", bodies[1]);
        let arrays = [json!({"list": [1]}), json!({"list": [1, null]})];
        let bodies = encode(&arrays).expect("encode");
        assert!(bodies[1].contains(PATCH_KEY), "a null inside an array survives a whole-array replacement");
    }

    #[test]
    fn a_grown_array_is_stored_as_its_new_items() {
        let chain = |n: usize| (0..n).map(|i| json!({"step": i, "reasoning": "x".repeat(40)})).collect::<Vec<_>>();
        let versions = [
            json!({"chain": chain(2), "tags": ["a"]}),
            json!({"chain": chain(3), "tags": ["b"]}),
            json!({"chain": chain(3), "tags": ["b", "c"], "obj": {"$append": [1]}}),
            json!({"chain": {"$append": [9]}, "tags": ["b", "c"]}),
            json!({"chain": [], "tags": ["b", "c", null]}),
        ];
        let bodies = encode(&versions).expect("encode");
        assert!(bodies[1].contains(APPEND_KEY) && !bodies[1].contains(r#""step":0"#), "only the new item: {}", bodies[1]);
        assert!(bodies[1].contains(r#""tags":["b"]"#), "a changed array is replaced whole: {}", bodies[1]);
        assert!(bodies[2].contains(PATCH_KEY), "an object with a $append key, where an object was absent, patches: {}", bodies[2]);
        assert!(!bodies[3].contains(PATCH_KEY), "an array replaced by a $append object would read as an append: {}", bodies[3]);
        assert!(bodies[4].contains(PATCH_KEY), "a shrunk array is replaced whole, nulls in it kept: {}", bodies[4]);
        assert_eq!(replay(&bodies), versions);
    }

    #[test]
    fn a_history_cannot_start_with_a_patch() {
        let error = decode(&[r#"{"$patch": {"state": "closed"}}"#.to_owned()]).expect_err("no base");
        assert_eq!(error.kind, crate::StoreErrorKind::Invalid);
    }
}
