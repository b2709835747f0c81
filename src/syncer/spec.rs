//! Upstream object → the object the syncer applies downstream (pure), and
//! whether a downstream copy already is what would be applied.
//!
//! What travels: the object's top-level content except `status`, its name
//! and namespace, its labels without the placement labels, its annotations
//! without kcp-ingress's upstream-only ones. What does not: every other
//! metadata field (owner references, finalizers, managedFields, uid,
//! resourceVersion, generation, timestamps), and for a Service the fields
//! its cluster assigns (clusterIP(s) unless headless, healthCheckNodePort,
//! node ports the user did not set). Added: the managed-by and syncer
//! labels, the origin annotation and the applied-hash annotation.

use serde_json::{Map, Value};

use super::naming;
use crate::cluster_independent::strip_service_spec;
use crate::labels;

/// An upstream object that cannot be turned into a downstream one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("the object is not a JSON object")]
    NotAnObject,
    #[error("the object has no metadata.{0}")]
    Missing(&'static str),
}

/// The object to apply downstream for `upstream` (a whole object as JSON),
/// typed `api_version`/`kind`, on behalf of `cluster`'s syncer.
pub fn downstream_object(
    upstream: &Value,
    api_version: &str,
    kind: &str,
    cluster: &str,
) -> Result<Value, SpecError> {
    let object = upstream.as_object().ok_or(SpecError::NotAnObject)?;
    let metadata = object.get("metadata").and_then(Value::as_object);
    let text = |field: &'static str| {
        metadata
            .and_then(|m| m.get(field))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or(SpecError::Missing(field))
    };
    let name = text("name")?;
    let namespace = text("namespace")?;
    let uid = text("uid").unwrap_or_default();

    let mut labels_out = Map::new();
    if let Some(labels_in) = metadata
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
    {
        for (k, v) in labels_in {
            if !naming::is_placement_label(k) {
                labels_out.insert(k.clone(), v.clone());
            }
        }
    }
    for (k, v) in naming::ours_labels(cluster) {
        labels_out.insert(k.to_string(), Value::String(v));
    }
    let mut annotations_out = Map::new();
    if let Some(annotations_in) = metadata
        .and_then(|m| m.get("annotations"))
        .and_then(Value::as_object)
    {
        for (k, v) in annotations_in {
            if !labels::is_control_plane_only_annotation(k) {
                annotations_out.insert(k.clone(), v.clone());
            }
        }
    }
    annotations_out.insert(
        labels::ORIGIN_ANNOTATION.to_string(),
        Value::String(naming::origin(namespace, name, uid)),
    );

    let mut out = Map::new();
    out.insert("apiVersion".into(), Value::String(api_version.into()));
    out.insert("kind".into(), Value::String(kind.into()));
    let mut meta_out = Map::new();
    meta_out.insert("name".into(), Value::String(name.into()));
    meta_out.insert("namespace".into(), Value::String(namespace.into()));
    meta_out.insert("labels".into(), Value::Object(labels_out));
    meta_out.insert("annotations".into(), Value::Object(annotations_out));
    out.insert("metadata".into(), Value::Object(meta_out));
    for (k, v) in object {
        if !matches!(k.as_str(), "apiVersion" | "kind" | "metadata" | "status") {
            out.insert(k.clone(), v.clone());
        }
    }
    if api_version == "v1" && kind == "Service" {
        let managed_fields = metadata.and_then(|m| m.get("managedFields"));
        if let Some(spec) = out.get_mut("spec").and_then(Value::as_object_mut) {
            strip_service_spec(spec, managed_fields);
        }
    }

    let mut out = Value::Object(out);
    let hash = content_hash(&out);
    if let Some(annotations) = out
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        annotations.insert(
            labels::APPLIED_HASH_ANNOTATION.to_string(),
            Value::String(hash),
        );
    }
    Ok(out)
}

/// Whether the downstream object `actual` already is what applying
/// `desired` would make it: it carries the same applied hash (so nothing
/// changed upstream) and holds every field of `desired` unchanged (so
/// nobody edited or removed them downstream). Fields only `actual` has
/// (defaults, fields of other managers) do not matter.
pub fn is_up_to_date(desired: &Value, actual: &Value) -> bool {
    let Some(fields) = desired.as_object() else {
        return false;
    };
    // Objects from a list carry no apiVersion and kind; the type is known.
    let content_matches = fields
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "apiVersion" | "kind"))
        .all(|(k, dv)| match actual.get(k) {
            Some(av) => contains(dv, av),
            None => is_empty(dv),
        });
    applied_hash(desired).is_some()
        && applied_hash(desired) == applied_hash(actual)
        && content_matches
}

/// A resourceVersion no stored object has: an etcd-backed server's
/// first write is at revision 2. Sent as a precondition, it makes an
/// apply create the object or fail with 409 Conflict, whatever is there.
const NO_OBJECT_VERSION: &str = "1";

/// `desired` (an object as JSON) as an apply that only creates: the
/// server refuses it with 409 Conflict when any object is there already,
/// ours or not, atomically (no read first, and none of another's fields
/// touched). The resourceVersion is not a field any manager owns.
pub fn create_only(desired: &Value) -> Value {
    let mut body = desired.clone();
    if let Some(meta) = body.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert(
            "resourceVersion".into(),
            Value::String(NO_OBJECT_VERSION.into()),
        );
    }
    body
}

/// The applied-hash annotation of `object` (an object as JSON), if any.
pub fn applied_hash(object: &Value) -> Option<&str> {
    object
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(labels::APPLIED_HASH_ANNOTATION))
        .and_then(Value::as_str)
}

/// Whether `actual` holds every field of `desired` with the same value
/// (recursively; list elements pairwise, lists of equal length).
fn contains(desired: &Value, actual: &Value) -> bool {
    match (desired, actual) {
        (Value::Object(d), Value::Object(a)) => d.iter().all(|(k, dv)| match a.get(k) {
            Some(av) => contains(dv, av),
            None => is_empty(dv),
        }),
        (Value::Array(d), Value::Array(a)) => {
            d.len() == a.len() && d.iter().zip(a).all(|(dv, av)| contains(dv, av))
        }
        (Value::Null, _) => true,
        (d, a) => d == a,
    }
}

/// Values the API server drops on the way in (null, {}, []).
fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// A short, stable hash of a JSON value (object keys sorted).
pub fn content_hash(value: &Value) -> String {
    let mut bytes = Vec::new();
    write_canonical(value, &mut bytes);
    let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
    data_encoding::HEXLOWER.encode(&digest.as_ref()[..10])
}

fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(Value::String(k.clone()).to_string().as_bytes());
                out.push(b':');
                write_canonical(&map[k], out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => out.extend_from_slice(scalar.to_string().as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn leaf() -> Value {
        json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {
                "name": "web--east",
                "namespace": "shop",
                "uid": "u-1",
                "resourceVersion": "42",
                "generation": 3,
                "creationTimestamp": "2026-01-01T00:00:00Z",
                "finalizers": ["kcp-ingress.dev/syncer-east"],
                "ownerReferences": [{"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                                     "name": "web", "uid": "u-0"}],
                "managedFields": [{"manager": "kcp-ingress-controller"}],
                "labels": {
                    "kcp-ingress.dev/root": "web",
                    "state.kcp-ingress.dev/east": "Sync",
                    "state.kcp-ingress.dev/west": "Sync",
                    "app": "web"
                },
                "annotations": {
                    "conflict.kcp-ingress.dev/east": "in the way",
                    "sync-error.kcp-ingress.dev/west": "refused",
                    "kubectl.kubernetes.io/last-applied-configuration": "{}",
                    "example.com/keep": "yes"
                }
            },
            "spec": {"rules": [{"host": "web.example.test"}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "127.0.1.1"}]}}
        })
    }

    fn down(v: &Value) -> Value {
        downstream_object(v, "networking.k8s.io/v1", "Ingress", "east").unwrap()
    }

    #[test]
    fn strips_what_must_not_travel_and_marks_the_copy() {
        let out = down(&leaf());
        let meta = out["metadata"].as_object().unwrap();
        let keys: Vec<&str> = meta.keys().map(String::as_str).collect();
        assert_eq!(keys, ["annotations", "labels", "name", "namespace"]);
        assert_eq!(
            out["metadata"]["labels"],
            json!({
                "kcp-ingress.dev/root": "web",
                "app": "web",
                "app.kubernetes.io/managed-by": "kcp-ingress",
                "kcp-ingress.dev/syncer": "east"
            })
        );
        let annotations = out["metadata"]["annotations"].as_object().unwrap();
        assert_eq!(annotations["example.com/keep"], "yes");
        assert_eq!(annotations["kcp-ingress.dev/origin"], "shop/web--east/u-1");
        assert_eq!(
            annotations["kcp-ingress.dev/applied-hash"]
                .as_str()
                .unwrap()
                .len(),
            20
        );
        assert_eq!(annotations.len(), 3, "{annotations:?}");
        assert!(out.get("status").is_none());
        assert_eq!(out["spec"], leaf()["spec"]);
        assert_eq!(out["apiVersion"], "networking.k8s.io/v1");
        assert_eq!(out["kind"], "Ingress");
    }

    #[test]
    fn needs_a_name_and_namespace() {
        let mut v = leaf();
        v["metadata"].as_object_mut().unwrap().remove("namespace");
        assert_eq!(
            downstream_object(&v, "v1", "ConfigMap", "east"),
            Err(SpecError::Missing("namespace"))
        );
        assert_eq!(
            downstream_object(&json!([]), "v1", "ConfigMap", "east"),
            Err(SpecError::NotAnObject)
        );
    }

    #[test]
    fn the_hash_follows_content_not_bookkeeping() {
        let base = down(&leaf());
        let mut bookkeeping = leaf();
        bookkeeping["metadata"]["resourceVersion"] = json!("43");
        bookkeeping["metadata"]["finalizers"] = json!([]);
        bookkeeping["status"] = json!({});
        bookkeeping["metadata"]["annotations"]["conflict.kcp-ingress.dev/east"] = json!("x");
        assert_eq!(down(&bookkeeping), base);
        let mut edited = leaf();
        edited["spec"]["rules"][0]["host"] = json!("other.example.test");
        assert_ne!(
            down(&edited)["metadata"]["annotations"]["kcp-ingress.dev/applied-hash"],
            base["metadata"]["annotations"]["kcp-ingress.dev/applied-hash"]
        );
    }

    fn service(extra_managed: Value) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {
                "name": "web", "namespace": "shop", "uid": "u-2",
                "managedFields": [{
                    "manager": "kubectl", "operation": "Apply",
                    "fieldsV1": {"f:spec": {"f:ports": extra_managed, "f:type": {}}}
                }]
            },
            "spec": {
                "type": "NodePort",
                "clusterIP": "10.0.0.7", "clusterIPs": ["10.0.0.7"],
                "healthCheckNodePort": 32000,
                "ipFamilies": ["IPv4"],
                "ports": [
                    {"name": "http", "port": 80, "protocol": "TCP", "nodePort": 31114},
                    {"name": "b", "port": 81, "protocol": "TCP", "nodePort": 30081},
                    {"name": "dns", "port": 81, "protocol": "UDP", "nodePort": 30082}
                ]
            }
        })
    }

    #[test]
    fn services_lose_what_their_cluster_assigns() {
        let managed = json!({
            "k:{\"port\":80,\"protocol\":\"TCP\"}": {".": {}, "f:port": {}},
            "k:{\"port\":81,\"protocol\":\"TCP\"}": {".": {}, "f:port": {}, "f:nodePort": {}}
        });
        let out = downstream_object(&service(managed), "v1", "Service", "east").unwrap();
        let spec = out["spec"].as_object().unwrap();
        assert!(!spec.contains_key("clusterIP"));
        assert!(!spec.contains_key("clusterIPs"));
        assert!(!spec.contains_key("healthCheckNodePort"));
        assert_eq!(spec["ipFamilies"], json!(["IPv4"]));
        let ports = spec["ports"].as_array().unwrap();
        assert!(ports[0].get("nodePort").is_none(), "allocated upstream");
        assert_eq!(ports[1]["nodePort"], 30081, "set by the user");
        assert!(
            ports[2].get("nodePort").is_none(),
            "same port, other protocol"
        );
    }

    #[test]
    fn services_without_field_ownership_keep_their_node_ports() {
        let mut svc = service(json!({}));
        svc["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("managedFields");
        let out = downstream_object(&svc, "v1", "Service", "east").unwrap();
        assert_eq!(out["spec"]["ports"][0]["nodePort"], 31114);
        assert!(out["spec"].get("clusterIP").is_none());
    }

    #[test]
    fn headless_services_stay_headless() {
        let mut svc = service(json!({}));
        svc["spec"]["clusterIP"] = json!("None");
        svc["spec"]["clusterIPs"] = json!(["None"]);
        let out = downstream_object(&svc, "v1", "Service", "east").unwrap();
        assert_eq!(out["spec"]["clusterIP"], "None");
        assert_eq!(out["spec"]["clusterIPs"], json!(["None"]));
    }

    #[test]
    fn other_kinds_keep_their_cluster_ip_field() {
        let cm = json!({"metadata": {"name": "c", "namespace": "n"},
                        "spec": {"clusterIP": "1.2.3.4"}, "data": {"a": "b"}});
        let out = downstream_object(&cm, "example.com/v1", "Thing", "east").unwrap();
        assert_eq!(out["spec"]["clusterIP"], "1.2.3.4");
        assert_eq!(out["data"], json!({"a": "b"}));
    }

    #[test]
    fn up_to_date_ignores_server_additions_but_not_edits() {
        let desired = down(&leaf());
        let mut actual = desired.clone();
        actual["metadata"]["uid"] = json!("d-1");
        actual["metadata"]["labels"]["extra"] = json!("x");
        actual["spec"]["rules"][0]["http"] = json!({"paths": []});
        actual["status"] = json!({"loadBalancer": {}});
        assert!(is_up_to_date(&desired, &actual));

        let mut edited = actual.clone();
        edited["spec"]["rules"][0]["host"] = json!("hijacked.example.test");
        assert!(!is_up_to_date(&desired, &edited));

        let mut label_gone = actual.clone();
        label_gone["metadata"]["labels"]
            .as_object_mut()
            .unwrap()
            .remove("app");
        assert!(!is_up_to_date(&desired, &label_gone));

        let mut longer = actual.clone();
        longer["spec"]["rules"]
            .as_array_mut()
            .unwrap()
            .push(json!({"host": "more"}));
        assert!(!is_up_to_date(&desired, &longer));
    }

    #[test]
    fn listed_objects_without_type_fields_can_be_up_to_date() {
        let desired = down(&leaf());
        let mut listed = desired.clone();
        let fields = listed.as_object_mut().unwrap();
        fields.remove("apiVersion");
        fields.remove("kind");
        assert!(is_up_to_date(&desired, &listed));
    }

    #[test]
    fn up_to_date_needs_the_same_applied_hash() {
        let desired = down(&leaf());
        let mut actual = desired.clone();
        actual["metadata"]["annotations"]["kcp-ingress.dev/applied-hash"] = json!("old");
        assert!(!is_up_to_date(&desired, &actual));
        // A field removed upstream: the rest still matches, the hash does not.
        let mut fewer = leaf();
        fewer["metadata"]["annotations"]
            .as_object_mut()
            .unwrap()
            .remove("example.com/keep");
        assert!(!is_up_to_date(&down(&fewer), &desired));
    }

    #[test]
    fn empty_values_match_absent_ones() {
        let desired = json!({"metadata": {"annotations": {"kcp-ingress.dev/applied-hash": "h"}},
                             "spec": {"a": null, "b": {}, "c": []}});
        let actual = json!({"metadata": {"annotations": {"kcp-ingress.dev/applied-hash": "h"}},
                            "spec": {}});
        assert!(is_up_to_date(&desired, &actual));
    }

    #[test]
    fn a_create_only_apply_carries_a_version_no_object_has_and_nothing_else() {
        let desired = down(&leaf());
        let body = create_only(&desired);
        assert_eq!(
            body["metadata"]["resourceVersion"],
            json!(NO_OBJECT_VERSION)
        );
        let mut back = body.clone();
        back["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("resourceVersion");
        assert_eq!(back, desired);
    }

    #[test]
    fn hashes_do_not_depend_on_key_order() {
        let a: Value = serde_json::from_str(r#"{"b": 1, "a": {"y": [1, 2], "x": "s"}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a": {"x": "s", "y": [1, 2]}, "b": 1}"#).unwrap();
        assert_eq!(content_hash(&a), content_hash(&b));
        assert_ne!(content_hash(&a), content_hash(&json!({"b": 2})));
    }
}
