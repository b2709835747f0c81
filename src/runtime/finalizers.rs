//! Adding a finalizer without a read: a JSON patch that tests what the
//! cached object shows (its uid and its finalizers) and appends. A cache
//! behind the server makes the test fail (422) instead of overwriting a
//! finalizer someone else added meanwhile; the caller looks again.

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, Patch, PatchOperation, TestOperation};
use serde_json::{Value, json};

/// The JSON patch that adds `finalizer` to the object with `uid` whose
/// finalizers are `current`: it tests the uid (not another object of the
/// name) and the list, then appends.
pub fn add_patch(uid: Option<&str>, current: &[String], finalizer: &str) -> Patch {
    let path = |tokens: &[&str]| PointerBuf::from_tokens(tokens.iter().copied());
    let test = |tokens: &[&str], value: Value| {
        PatchOperation::Test(TestOperation {
            path: path(tokens),
            value,
        })
    };
    let add = |tokens: &[&str], value: Value| {
        PatchOperation::Add(AddOperation {
            path: path(tokens),
            value,
        })
    };
    let mut ops = Vec::new();
    if let Some(uid) = uid {
        ops.push(test(&["metadata", "uid"], json!(uid)));
    }
    if current.is_empty() {
        ops.push(test(&["metadata", "finalizers"], Value::Null));
        ops.push(add(&["metadata", "finalizers"], json!([finalizer])));
    } else {
        ops.push(test(&["metadata", "finalizers"], json!(current)));
        ops.push(add(&["metadata", "finalizers", "-"], json!(finalizer)));
    }
    Patch(ops)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finalizer_add_tests_the_uid_and_the_list_it_extends() {
        let as_json = |p: Patch| serde_json::to_value(p).unwrap();
        assert_eq!(
            as_json(add_patch(Some("u-1"), &[], "f")),
            json!([
                {"op": "test", "path": "/metadata/uid", "value": "u-1"},
                {"op": "test", "path": "/metadata/finalizers", "value": null},
                {"op": "add", "path": "/metadata/finalizers", "value": ["f"]},
            ])
        );
        assert_eq!(
            as_json(add_patch(None, &["a".to_string()], "f")),
            json!([
                {"op": "test", "path": "/metadata/finalizers", "value": ["a"]},
                {"op": "add", "path": "/metadata/finalizers/-", "value": "f"},
            ])
        );
    }
}
