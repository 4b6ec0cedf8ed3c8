//! Helpers of the CEL rule tests, shared by every kind's.

use serde_json::Value;

/// `spec` with the field at `pointer` set (its parent must exist).
pub fn with(mut spec: Value, pointer: &str, value: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    spec.pointer_mut(parent)
        .unwrap()
        .as_object_mut()
        .unwrap()
        .insert(key.to_string(), value);
    spec
}

/// Asserts that one of the messages of the broken rules names `field`.
pub fn assert_names(broken: &[String], field: &str) {
    assert!(
        broken.iter().any(|m| m.contains(field)),
        "expected a message naming {field}, got {broken:?}"
    );
}
