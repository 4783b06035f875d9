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

use std::borrow::Cow;
use std::rc::Rc;

use aluskort_core::FieldChange;
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

/// A version's fields as JSON text, in order; a field's text is shared with the version before
/// when the field did not change.
type FieldTexts = Vec<(Cow<'static, str>, Rc<str>)>;

/// The fields of a version that differ from the version before, by their serialised names, each
/// list that only grew with its new items (`GraphState::changes_since`); `None` compares every
/// field as text.
pub(crate) type ChangedFields<'f, T> = Option<&'f dyn Fn(&T, &T) -> Vec<FieldChange>>;

/// Stored bodies for consecutive versions `states` (structs, such as `GraphState`): the first
/// whole, each later one as a patch against the one before when that patch reproduces it exactly,
/// else whole. Also returns the last version whole (the investigation's current body).
///
/// Versions are serialised field by field ([`Fields`]), and with `changed` only the fields that
/// changed since the version before (the others keep its text); fields are compared as their
/// JSON text, and only a changed object field is decoded to be diffed member by member. Building
/// a `Value` tree of every version to diff them was 9 % of a burst's CPU.
pub(crate) fn encode<T: serde::Serialize>(states: &[T], changed: ChangedFields<'_, T>) -> StoreResult<(Vec<String>, String)> {
    let mut bodies = Vec::with_capacity(states.len());
    let mut previous: Option<(&T, FieldTexts)> = None;
    for state in states {
        let fields = match (&previous, changed) {
            (Some((before, texts)), Some(changed)) => {
                let changes = changed(state, before);
                // Grown lists keep the text they had, their new items added; the rest of the
                // changed fields are serialised.
                let grown: Vec<(&'static str, Rc<str>)> = changes
                    .iter()
                    .filter_map(|change| {
                        let before = texts.iter().find(|(key, _)| key == change.name)?;
                        Some((change.name, Rc::from(append_items(&before.1, change.appended.as_deref()?)?)))
                    })
                    .collect();
                let serialised: Vec<&'static str> =
                    changes.iter().map(|change| change.name).filter(|name| !grown.iter().any(|(key, _)| key == name)).collect();
                serialize_fields(state, Some(&serialised))?.map(|fresh| carry_over(texts, &serialised, fresh, grown))
            }
            _ => serialize_fields(state, None)?,
        };
        let patch = match (&previous, &fields) {
            (Some((_, old)), Some(new)) => field_patch(old, new)?,
            _ => None,
        };
        bodies.push(match patch {
            Some(patch) => patch,
            None => whole(state, fields.as_ref())?,
        });
        previous = fields.map(|fields| (state, fields));
    }
    let last = match (states.last(), &previous) {
        (Some(state), Some((_, fields))) => whole(state, Some(fields))?,
        (Some(state), None) => serde_json::to_string(state)?,
        (None, _) => String::new(),
    };
    Ok((bodies, last))
}

/// [`encode`] for an investigation's versions, serialising only the fields each version changed,
/// and of a list that grew only its new items ([`aluskort_core::GraphState::changes_since`]).
pub(crate) fn encode_states(states: &[aluskort_core::GraphState]) -> StoreResult<(Vec<String>, String)> {
    encode(states, Some(&aluskort_core::GraphState::changes_since))
}

/// `state`'s fields as text (only those in `only`, if given); `None` when it is neither a struct
/// nor a map (stored whole, never patched).
fn serialize_fields<T: serde::Serialize>(state: &T, only: Option<&[&'static str]>) -> StoreResult<Option<FieldTexts>> {
    match state.serialize(Fields { only }) {
        Ok(fields) => Ok(Some(fields)),
        Err(FieldsError::NotAStruct) => Ok(None),
        Err(FieldsError::Json(error)) => Err(error.into()),
    }
}

/// The JSON array `before` with the items of the JSON array `items` added at its end; `None`
/// unless both are arrays.
fn append_items(before: &str, items: &str) -> Option<String> {
    let added = items.strip_prefix('[')?.strip_suffix(']')?;
    let kept = before.strip_suffix(']')?;
    if !kept.starts_with('[') {
        return None;
    }
    Some(match (kept.len(), added.is_empty()) {
        (_, true) => before.to_owned(),
        (1, false) => format!("[{added}]"),
        _ => format!("{kept},{added}]"),
    })
}

/// The fields of a version: those of the version before (`texts`), with the `changed` ones
/// replaced by their `fresh` text (or dropped where the new version leaves them out) and the
/// `grown` ones by theirs.
fn carry_over(texts: &FieldTexts, changed: &[&'static str], fresh: FieldTexts, grown: Vec<(&'static str, Rc<str>)>) -> FieldTexts {
    let mut fields: FieldTexts = texts
        .iter()
        .filter_map(|(key, text)| {
            if let Some((_, text)) = grown.iter().find(|(name, _)| *name == key.as_ref()) {
                Some((key.clone(), Rc::clone(text)))
            } else if changed.contains(&key.as_ref()) {
                fresh.iter().find(|(fresh_key, _)| fresh_key == key).map(|(_, text)| (key.clone(), Rc::clone(text)))
            } else {
                Some((key.clone(), Rc::clone(text)))
            }
        })
        .collect();
    for (key, text) in fresh {
        if !texts.iter().any(|(known, _)| *known == key) {
            fields.push((key, text));
        }
    }
    fields
}

/// `state` as one JSON object, from its field texts when it has them.
fn whole<T: serde::Serialize>(state: &T, fields: Option<&FieldTexts>) -> StoreResult<String> {
    Ok(match fields {
        Some(fields) => join(fields.iter().map(|(key, text)| (key.as_ref(), text.as_ref()))),
        None => serde_json::to_string(state)?,
    })
}

/// `{"key":<text>,...}` of fields already serialised.
fn join<'a>(fields: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = String::from("{");
    for (index, (key, text)) in fields.enumerate() {
        if index > 0 {
            out.push(',');
        }
        push_key(&mut out, key);
        out.push_str(text);
    }
    out.push('}');
    out
}

fn push_key(out: &mut String, key: &str) {
    if key.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'$') {
        // A field name: nothing to escape.
        out.push('"');
        out.push_str(key);
        out.push_str("\":");
    } else {
        // A key always serialises.
        out.push_str(&serde_json::to_string(key).unwrap_or_default());
        out.push(':');
    }
}

/// The stored patch (`{"$patch": ...}`) turning the version with fields `old` into the one with
/// `new`, or `None` when no patch reproduces it exactly (it is stored whole).
fn field_patch(old: &FieldTexts, new: &FieldTexts) -> StoreResult<Option<String>> {
    let mut entries: Vec<(&str, Cow<'_, str>)> = Vec::new();
    let mut lossy = false;
    // Whether every field is where it was in the version before (then none went).
    let mut aligned = old.len() == new.len();
    for (index, (key, shared)) in new.iter().enumerate() {
        // Versions list their fields in the same order: the field at the same place is the
        // one, unless a field came or went.
        let found = match old.get(index) {
            Some(same) if same.0 == *key => Some(same),
            _ => {
                aligned = false;
                old.iter().find(|(old_key, _)| old_key == key)
            }
        };
        let (key, text): (&str, &str) = (key, shared);
        match found {
            // A field carried over from the version before shares its text: no need to compare
            // kilobytes of it.
            Some((_, before)) if Rc::ptr_eq(before, shared) || before.as_ref() == text => {}
            Some((_, before)) => match (before.as_bytes().first(), text.as_bytes().first()) {
                (Some(b'{'), Some(b'{')) if let Some(members) = grown_members(before, text) => {
                    // Members added after the kept ones (a map growing, as case facts do): the
                    // patch is the new members, unless one holds a null (RFC 7396 would drop it).
                    entries.push((key, Cow::Owned(format!("{{{members}}}"))));
                }
                (Some(b'{'), Some(b'{')) => {
                    let (before, after): (Value, Value) = (serde_json::from_str(before)?, serde_json::from_str(text)?);
                    if let Some(change) = diff(&before, &after, &mut lossy) {
                        entries.push((key, Cow::Owned(serde_json::to_string(&change)?)));
                    }
                }
                (Some(b'['), Some(b'[')) => {
                    entries.push((key, appended(before, text).map_or(Cow::Borrowed(text), Cow::Owned)));
                }
                (Some(b'['), Some(b'{')) | (_, Some(b'n')) => {
                    // An object replacing an array could read back as an append; a null cannot
                    // be patched in (RFC 7396).
                    lossy = true;
                }
                (_, Some(b'{')) => {
                    lossy |= drops_nulls(&serde_json::from_str(text)?);
                    entries.push((key, Cow::Borrowed(text)));
                }
                _ => entries.push((key, Cow::Borrowed(text))),
            },
            None => {
                lossy |= text == "null" || (text.starts_with('{') && drops_nulls(&serde_json::from_str(text)?));
                entries.push((key, Cow::Borrowed(text)));
            }
        }
        if lossy {
            return Ok(None);
        }
    }
    if !aligned {
        for (key, _) in old.iter().filter(|(key, _)| !new.iter().any(|(new_key, _)| new_key == key)) {
            entries.push((key, Cow::Borrowed("null")));
        }
    }
    let mut out = String::from("{");
    push_key(&mut out, PATCH_KEY);
    out.push_str(&join(entries.iter().map(|(key, text)| (*key, text.as_ref()))));
    out.push('}');
    Ok(Some(out))
}

/// The members the JSON object `after` adds at the end of the object `before`, keeping every
/// member of `before` as it was, when none of them holds a null anywhere (a merge patch cannot
/// set one). Compared as text: JSON values delimit themselves, so `before` less its closing brace
/// followed by `,` in `after` is every member of `before` unchanged.
fn grown_members<'t>(before: &str, after: &'t str) -> Option<&'t str> {
    let open = before.strip_suffix('}')?;
    let rest = after.strip_prefix(open)?;
    let members = if open == "{" { rest } else { rest.strip_prefix(',')? };
    let members = members.strip_suffix('}')?;
    (!members.is_empty() && !members.contains("null")).then_some(members)
}

/// `{"$append":[<new items>]}` when the JSON array `after` is the array `before` with items added
/// at its end. Items are compared as text: JSON values delimit themselves, so equal leading text
/// up to a `,` is equal leading items.
fn appended(before: &str, after: &str) -> Option<String> {
    let items = if before == "[]" {
        (after != "[]").then(|| &after[1..])?
    } else {
        let open = before.strip_suffix(']')?;
        after.strip_prefix(open)?.strip_prefix(',')?
    };
    let mut out = String::from("{");
    push_key(&mut out, APPEND_KEY);
    out.push('[');
    out.push_str(items);
    out.push('}');
    Some(out)
}

/// A struct's fields (or a map's entries, string keys only), each serialised to JSON text, in
/// order: what [`encode`] compares.
struct Fields<'o> {
    /// Only these struct fields (the rest are left out); every field when `None`.
    only: Option<&'o [&'static str]>,
}

#[derive(Debug)]
enum FieldsError {
    NotAStruct,
    Json(serde_json::Error),
}

impl std::fmt::Display for FieldsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FieldsError::NotAStruct => f.write_str("not a struct"),
            FieldsError::Json(error) => write!(f, "{error}"),
        }
    }
}

impl std::error::Error for FieldsError {}

impl serde::ser::Error for FieldsError {
    fn custom<M: std::fmt::Display>(message: M) -> Self {
        FieldsError::Json(<serde_json::Error as serde::ser::Error>::custom(message))
    }
}

struct FieldList<'o> {
    fields: FieldTexts,
    key: Option<String>,
    only: Option<&'o [&'static str]>,
}

impl serde::ser::SerializeStruct for FieldList<'_> {
    type Ok = FieldTexts;
    type Error = FieldsError;

    fn serialize_field<V: serde::Serialize + ?Sized>(&mut self, key: &'static str, value: &V) -> Result<(), FieldsError> {
        if self.only.is_none_or(|only| only.contains(&key)) {
            self.fields.push((Cow::Borrowed(key), Rc::from(serde_json::to_string(value).map_err(FieldsError::Json)?)));
        }
        Ok(())
    }

    fn end(self) -> Result<Self::Ok, FieldsError> {
        Ok(self.fields)
    }
}

impl serde::ser::SerializeMap for FieldList<'_> {
    type Ok = FieldTexts;
    type Error = FieldsError;

    fn serialize_key<K: serde::Serialize + ?Sized>(&mut self, key: &K) -> Result<(), FieldsError> {
        // Only string keys: anything else is not a JSON object's member name.
        let text = serde_json::to_string(key).map_err(FieldsError::Json)?;
        self.key = Some(serde_json::from_str::<String>(&text).map_err(|_| FieldsError::NotAStruct)?);
        Ok(())
    }

    fn serialize_value<V: serde::Serialize + ?Sized>(&mut self, value: &V) -> Result<(), FieldsError> {
        let key = self.key.take().ok_or(FieldsError::NotAStruct)?;
        self.fields.push((Cow::Owned(key), Rc::from(serde_json::to_string(value).map_err(FieldsError::Json)?)));
        Ok(())
    }

    fn end(self) -> Result<Self::Ok, FieldsError> {
        Ok(self.fields)
    }
}

/// Everything but a struct is refused ([`FieldsError::NotAStruct`]).
macro_rules! not_a_struct {
    ($($method:ident($($arg:ty),*);)*) => {
        $(fn $method(self, $(_: $arg),*) -> Result<Self::Ok, FieldsError> { Err(FieldsError::NotAStruct) })*
    };
}

impl<'o> serde::Serializer for Fields<'o> {
    type Ok = FieldTexts;
    type Error = FieldsError;
    type SerializeSeq = serde::ser::Impossible<Self::Ok, FieldsError>;
    type SerializeTuple = serde::ser::Impossible<Self::Ok, FieldsError>;
    type SerializeTupleStruct = serde::ser::Impossible<Self::Ok, FieldsError>;
    type SerializeTupleVariant = serde::ser::Impossible<Self::Ok, FieldsError>;
    type SerializeMap = FieldList<'o>;
    type SerializeStruct = FieldList<'o>;
    type SerializeStructVariant = serde::ser::Impossible<Self::Ok, FieldsError>;

    not_a_struct! {
        serialize_bool(bool); serialize_i8(i8); serialize_i16(i16); serialize_i32(i32); serialize_i64(i64);
        serialize_u8(u8); serialize_u16(u16); serialize_u32(u32); serialize_u64(u64); serialize_f32(f32); serialize_f64(f64);
        serialize_char(char); serialize_str(&str); serialize_bytes(&[u8]); serialize_none(); serialize_unit();
        serialize_unit_struct(&'static str); serialize_unit_variant(&'static str, u32, &'static str);
    }

    fn serialize_some<V: serde::Serialize + ?Sized>(self, _: &V) -> Result<Self::Ok, FieldsError> {
        Err(FieldsError::NotAStruct)
    }

    fn serialize_newtype_struct<V: serde::Serialize + ?Sized>(self, _: &'static str, _: &V) -> Result<Self::Ok, FieldsError> {
        Err(FieldsError::NotAStruct)
    }

    fn serialize_newtype_variant<V: serde::Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &V,
    ) -> Result<Self::Ok, FieldsError> {
        Err(FieldsError::NotAStruct)
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, FieldsError> {
        Err(FieldsError::NotAStruct)
    }

    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, FieldsError> {
        Err(FieldsError::NotAStruct)
    }

    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeTupleStruct, FieldsError> {
        Err(FieldsError::NotAStruct)
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, FieldsError> {
        Err(FieldsError::NotAStruct)
    }

    fn serialize_map(self, _: Option<usize>) -> Result<FieldList<'o>, FieldsError> {
        Ok(FieldList { fields: Vec::new(), key: None, only: None })
    }

    fn serialize_struct(self, _: &'static str, fields: usize) -> Result<FieldList<'o>, FieldsError> {
        Ok(FieldList { fields: Vec::with_capacity(fields), key: None, only: self.only })
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, FieldsError> {
        Err(FieldsError::NotAStruct)
    }
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
        let (bodies, _) = encode(&versions, None).expect("encode");
        assert!(!bodies[0].contains(PATCH_KEY), "the first version is whole");
        assert!(bodies[1].starts_with(r#"{"$patch""#), "{}", bodies[1]);
        assert!(!bodies[2].contains(PATCH_KEY), "a version holding a JSON null is stored whole: {}", bodies[2]);
        assert!(bodies[3].contains(PATCH_KEY));
        assert_eq!(replay(&bodies), versions);
    }

    #[test]
    fn a_null_inside_a_new_object_is_kept_by_storing_the_version_whole() {
        let versions = [json!({"facts": {}}), json!({"facts": {"added": {"inner": null, "n": 1}}})];
        let (bodies, _) = encode(&versions, None).expect("encode");
        assert!(!bodies[1].contains(PATCH_KEY), "{}", bodies[1]);
        let arrays = [json!({"list": [1]}), json!({"list": [1, null]})];
        let (bodies, _) = encode(&arrays, None).expect("encode");
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
        let (bodies, _) = encode(&versions, None).expect("encode");
        assert!(bodies[1].contains(APPEND_KEY) && !bodies[1].contains(r#""step":0"#), "only the new item: {}", bodies[1]);
        assert!(bodies[1].contains(r#""tags":["b"]"#), "a changed array is replaced whole: {}", bodies[1]);
        assert!(bodies[2].contains(PATCH_KEY), "an object with a $append key, where an object was absent, patches: {}", bodies[2]);
        assert!(!bodies[3].contains(PATCH_KEY), "an array replaced by a $append object would read as an append: {}", bodies[3]);
        assert!(bodies[4].contains(PATCH_KEY), "a shrunk array is replaced whole, nulls in it kept: {}", bodies[4]);
        assert_eq!(replay(&bodies), versions);
    }

    /// Structs (what the store encodes: `GraphState`) are compared field by field as JSON text;
    /// the result replays to the same versions as their JSON would, and the last is returned whole.
    #[test]
    fn struct_versions_are_patched_field_by_field() {
        #[derive(serde::Serialize)]
        struct Version {
            state: &'static str,
            chain: Vec<u32>,
            facts: Map<String, Value>,
            note: Option<&'static str>,
        }
        let facts = |pairs: &[(&str, Value)]| pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect::<Map<_, _>>();
        let versions = [
            Version { state: "received", chain: vec![], facts: facts(&[]), note: Some("n") },
            Version { state: "parsing", chain: vec![1], facts: facts(&[("a", json!(1))]), note: Some("n") },
            Version { state: "parsing", chain: vec![1, 12], facts: facts(&[("a", json!(2)), ("b", json!({"c": 1}))]), note: Some("n") },
            Version { state: "closed", chain: vec![2], facts: facts(&[("b", json!({}))]), note: Some("n") },
            Version { state: "closed", chain: vec![2], facts: facts(&[]), note: None },
        ];
        let (bodies, last) = encode(&versions, None).expect("encode");
        let values: Vec<Value> = versions.iter().map(|v| serde_json::to_value(v).expect("value")).collect();
        assert_eq!(bodies[0], serde_json::to_string(&versions[0]).expect("json"), "the first version whole");
        assert!(bodies[1].contains(r#""chain":{"$append":[1]}"#), "{}", bodies[1]);
        assert!(bodies[2].contains(r#""chain":{"$append":[12]}"#) && !bodies[2].contains("note"), "{}", bodies[2]);
        assert!(bodies[3].contains(r#""chain":[2]"#) && bodies[3].contains(r#""a":null"#), "a removed member is deleted: {}", bodies[3]);
        assert!(!bodies[4].contains(PATCH_KEY), "a field turned null cannot be patched: {}", bodies[4]);
        assert_eq!(last, serde_json::to_string(&versions[4]).expect("json"));
        assert_eq!(replay(&bodies), values);
    }

    /// With the fields a version changed given (`GraphState::changed_fields`), only those are
    /// serialised again, and the history stored is the same: the same versions decode, the
    /// same current body.
    #[test]
    fn states_patched_from_their_changed_fields_decode_to_the_same_history() {
        let mut state = aluskort_core::GraphState::new(
            aluskort_core::AlertId::parse("a-1").expect("id"),
            aluskort_core::TenantId::default_tenant(),
            aluskort_core::DegradationLevel::Deterministic,
            chrono::Utc::now(),
        );
        let mut versions = vec![state.clone()];
        for step in ["parsed", "grouped", "classified"] {
            state.version += 1;
            state.record_decision("agent", step, "why", Some(0.5), chrono::Utc::now());
            state.case_facts.insert(step.to_owned(), json!({"n": state.version}));
            match step {
                // A list growing from empty, then growing, then replaced.
                "parsed" => state.techniques.push("T1059".to_owned()),
                "grouped" => {
                    state.incident_id = Some("inc-1".to_owned());
                    state.techniques.push("T1003".to_owned());
                }
                _ => state.techniques = vec!["T1003".to_owned()],
            }
            versions.push(state.clone());
        }
        state.version += 1;
        state.case_facts.remove("parsed");
        versions.push(state.clone());
        let changed: &dyn Fn(&aluskort_core::GraphState, &aluskort_core::GraphState) -> Vec<FieldChange> =
            &aluskort_core::GraphState::changes_since;
        let (bodies, last) = encode(&versions, Some(changed)).expect("encode");
        let (plain, plain_last) = encode(&versions, None).expect("encode");
        assert!(bodies[1..].iter().all(|body| body.starts_with(r#"{"$patch""#)), "{bodies:?}");
        assert_eq!(decode(&bodies).expect("decode"), versions);
        assert_eq!(replay(&bodies), replay(&plain));
        let value = |text: &str| serde_json::from_str::<Value>(text).expect("json");
        assert_eq!(value(&last), value(&plain_last));
        assert_eq!(value(&last), serde_json::to_value(&versions[4]).expect("value"));
    }

    #[test]
    fn members_added_at_the_end_of_an_object_are_found_by_text() {
        assert_eq!(grown_members("{}", r#"{"a":1}"#), Some(r#""a":1"#));
        assert_eq!(grown_members(r#"{"a":{"x":1}}"#, r#"{"a":{"x":1},"b":[2]}"#), Some(r#""b":[2]"#));
        assert_eq!(grown_members(r#"{"a":{"x":1}}"#, r#"{"a":{"x":1,"y":2}}"#), None, "a member changed inside");
        assert_eq!(grown_members(r#"{"a":1}"#, r#"{"a":12}"#), None, "a value changed");
        assert_eq!(grown_members(r#"{"a":1}"#, r#"{"a":1,"b":null}"#), None, "a null cannot be patched in");
        assert_eq!(grown_members(r#"{"a":1}"#, r#"{"a":1}"#), None);
        let mut key = String::new();
        push_key(&mut key, "case_facts");
        push_key(&mut key, "odd \"key\"");
        assert_eq!(key, r#""case_facts":"odd \"key\"":"#);
    }

    #[test]
    fn new_items_are_added_to_an_array_text() {
        assert_eq!(append_items("[]", r#"[1,{"a":"]"}]"#).as_deref(), Some(r#"[1,{"a":"]"}]"#));
        assert_eq!(append_items(r#"["x"]"#, r#"["y","z"]"#).as_deref(), Some(r#"["x","y","z"]"#));
        assert_eq!(append_items(r#"["x"]"#, "[]").as_deref(), Some(r#"["x"]"#));
        assert_eq!(append_items(r#"{"a":1}"#, "[1]"), None, "not an array");
        assert_eq!(append_items("[1]", "2"), None, "items not an array");
    }

    #[test]
    fn a_history_cannot_start_with_a_patch() {
        let error = decode(&[r#"{"$patch": {"state": "closed"}}"#.to_owned()]).expect_err("no base");
        assert_eq!(error.kind, crate::StoreErrorKind::Invalid);
    }
}
