//! [`Shared`]: a value that versions of a record share until one of them changes it.

use std::ops::Deref;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A value behind a reference count, cloned in O(1) and copied only when changed
/// ([`Shared::make_mut`]). An investigation saves a version of its `GraphState` at every
/// transition; fields set once (the entities and indicators of the alert, set when it is parsed)
/// are shared by every later version instead of deep-copied into each, and two versions sharing
/// one compare equal without walking it. Serialised as the value itself.
#[derive(Default)]
pub struct Shared<T>(Arc<T>);

impl<T> Shared<T> {
    pub fn new(value: T) -> Self {
        Shared(Arc::new(value))
    }

    /// Whether both hold the very same value (not a copy).
    pub fn same(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl<T: Clone> Shared<T> {
    /// The value to change: copied first if another version still shares it.
    pub fn make_mut(&mut self) -> &mut T {
        Arc::make_mut(&mut self.0)
    }
}

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Shared(Arc::clone(&self.0))
    }
}

impl<T> Deref for Shared<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> From<T> for Shared<T> {
    fn from(value: T) -> Self {
        Shared::new(value)
    }
}

impl<T: PartialEq> PartialEq for Shared<T> {
    fn eq(&self, other: &Self) -> bool {
        self.same(other) || *self.0 == *other.0
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl<T: Serialize> Serialize for Shared<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Shared<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize(deserializer).map(Shared::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_until_one_changes_and_serialise_as_the_value() {
        let mut first = Shared::new(vec!["a".to_owned()]);
        let second = first.clone();
        assert!(first.same(&second));
        first.make_mut().push("b".to_owned());
        assert!(!first.same(&second), "changed: copied first");
        assert_eq!((first.len(), second.len()), (2, 1));
        assert_eq!(first, Shared::new(vec!["a".to_owned(), "b".to_owned()]), "equal values compare equal unshared");
        assert_ne!(first, second);
        let text = serde_json::to_string(&first).expect("serialise");
        assert_eq!(text, r#"["a","b"]"#);
        assert_eq!(serde_json::from_str::<Shared<Vec<String>>>(&text).expect("deserialise"), first);
    }
}
