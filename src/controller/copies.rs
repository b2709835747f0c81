//! Copies in the cluster namespaces (pure): which clusters a user's
//! Service, Secret or ConfigMap is placed on (the roots that need it, and
//! its own `state.kcp-ingress.dev/<cluster>=Sync` labels), where its copy
//! for a cluster lives, what the copy holds, and how a copy names its origin.
//!
//! | user's object | copy in `cluster_namespace(C)`                                  |
//! |---------------|------------------------------------------------------------------|
//! | Secret, ConfigMap `ns/x` | the same kind, `<ns>.<x>`, with its data                 |
//! | Service `ns/x` | `PlacedObject` `<ns>.<x>.services` embedding it, cluster-independent |
//!
//! A copy carries the user's labels (less placement labels) and
//! annotations (less kcp-ingress's own, kubectl's last-applied record and
//! kcp's cluster), the origin annotation `ns/name/uid`, and a hash of the
//! body ([`labels::COPY_HASH_ANNOTATION`]): a copy whose hash is current is
//! not written again.

use std::collections::BTreeSet;

use kube::core::ObjectMeta;
use serde_json::{Map, Value, json};

use super::dependencies::{DepKey, DepKind};
use super::naming;
use crate::cluster_independent;
use crate::labels;
use crate::mailbox::{self, NameTooLong};

/// The plural and group of a dependency kind.
pub fn resource(kind: DepKind) -> (&'static str, &'static str) {
    match kind {
        DepKind::Service => ("services", ""),
        DepKind::Secret => ("secrets", ""),
        DepKind::ConfigMap => ("configmaps", ""),
        DepKind::ReferenceGrant => ("referencegrants", labels::gateway_api::GROUP),
    }
}

/// Whether the copies of `kind` are `PlacedObject`s (rather than objects of
/// the kind itself).
pub fn is_placed(kind: DepKind) -> bool {
    matches!(kind, DepKind::Service | DepKind::ReferenceGrant)
}

/// The clusters a user's object is placed on by hand: its
/// `state.kcp-ingress.dev/<cluster>=Sync` labels.
pub fn hand_placed_clusters(meta: &ObjectMeta) -> BTreeSet<String> {
    meta.labels
        .iter()
        .flatten()
        .filter(|(_, v)| v.as_str() == labels::STATE_SYNC)
        .filter_map(|(k, _)| k.strip_prefix(labels::STATE_LABEL_PREFIX))
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect()
}

/// The clusters `dep` must be copied to: those its roots are placed on
/// and those its labels name, among the `known` clusters (a cluster with
/// no Cluster object has no namespace to copy into). Nothing for an object
/// that does not exist or lives where nothing is placed from.
pub fn desired_clusters(
    dep: &DepKey,
    exists: bool,
    by_roots: &BTreeSet<String>,
    by_hand: &BTreeSet<String>,
    known: &BTreeSet<String>,
) -> BTreeSet<String> {
    if !exists || !naming::is_placeable_namespace(&dep.1) {
        return BTreeSet::new();
    }
    by_roots
        .union(by_hand)
        .filter(|c| known.contains(*c))
        .cloned()
        .collect()
}

/// The name, in a cluster namespace, of the copy of `dep`.
pub fn copy_name(dep: &DepKey) -> Result<String, NameTooLong> {
    let (kind, ns, name) = dep;
    if is_placed(*kind) {
        let (plural, group) = resource(*kind);
        mailbox::placed_object_name(ns, name, plural, group)
    } else {
        mailbox::copy_name(ns, name)
    }
}

/// The user's object a copy of `kind` named `name` in a cluster namespace
/// comes from (`None` when the name does not map back to one).
pub fn origin_of_copy(kind: DepKind, name: &str) -> Option<DepKey> {
    let (plural, group) = resource(kind);
    let (ns, origin) = if is_placed(kind) {
        mailbox::downstream_of_placed(name, plural, group)?
    } else {
        mailbox::downstream_of_copy(name)?
    };
    Some((kind, ns.to_string(), origin.to_string()))
}

/// The labels and annotations of `user`'s metadata that its copies carry.
fn copied_metadata(metadata: Option<&Value>) -> (Map<String, Value>, Map<String, Value>) {
    let field = |name: &str| {
        metadata
            .and_then(|m| m.get(name))
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    };
    let labels_out = field("labels")
        .into_iter()
        .filter(|(k, _)| !k.starts_with(labels::STATE_LABEL_PREFIX))
        .collect();
    let annotations_out = field("annotations")
        .into_iter()
        .filter(|(k, _)| !labels::is_control_plane_only_annotation(k))
        .collect();
    (labels_out, annotations_out)
}

/// The body the controller applies for the copy of `user` (the user's
/// whole object, as read with a `get`) in `cluster_namespace`, its hash
/// annotation included.
pub fn copy_body(
    dep: &DepKey,
    user: &Value,
    cluster_namespace: &str,
) -> Result<Value, NameTooLong> {
    let (kind, ns, name) = dep;
    let metadata = user.get("metadata");
    let uid = metadata
        .and_then(|m| m.get("uid"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let origin = format!("{ns}/{name}/{uid}");
    let (user_labels, user_annotations) = copied_metadata(metadata);
    let copy_name = copy_name(dep)?;
    let mut body = match kind {
        DepKind::Secret | DepKind::ConfigMap => {
            let mut annotations = user_annotations;
            annotations.insert(labels::ORIGIN_ANNOTATION.into(), origin.into());
            let mut body = json!({
                "apiVersion": "v1",
                "kind": if *kind == DepKind::Secret { "Secret" } else { "ConfigMap" },
                "metadata": {
                    "name": copy_name, "namespace": cluster_namespace,
                    "labels": user_labels, "annotations": annotations,
                },
            });
            let fields: &[&str] = if *kind == DepKind::Secret {
                &["type", "data"]
            } else {
                &["data", "binaryData"]
            };
            for field in fields {
                if let Some(v) = user.get(*field).filter(|v| !v.is_null()) {
                    body[*field] = v.clone();
                }
            }
            body
        }
        DepKind::ReferenceGrant | DepKind::Service => {
            // What the syncer applies: the object with the user's labels
            // and annotations; a Service without its cluster-assigned fields.
            let (api_version, object_kind, spec) = if *kind == DepKind::Service {
                let mut spec = user
                    .get("spec")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                let managed_fields = metadata.and_then(|m| m.get("managedFields"));
                cluster_independent::strip_service_spec(&mut spec, managed_fields);
                (Value::from("v1"), "Service", Value::Object(spec))
            } else {
                (
                    user.get("apiVersion").cloned().unwrap_or(Value::Null),
                    labels::gateway_api::REFERENCE_GRANT,
                    user.get("spec").cloned().unwrap_or(Value::Null),
                )
            };
            let (plural, group) = resource(*kind);
            json!({
                "apiVersion": format!("{}/{}", labels::GROUP, labels::VERSION),
                "kind": "PlacedObject",
                "metadata": {
                    "name": copy_name, "namespace": cluster_namespace,
                    "labels": {
                        labels::PLACED_RESOURCE_LABEL: mailbox::placed_resource_label_value(plural, group),
                    },
                    "annotations": {labels::ORIGIN_ANNOTATION: origin},
                },
                "spec": {"object": {
                    "apiVersion": api_version,
                    "kind": object_kind,
                    "metadata": {
                        "namespace": ns, "name": name,
                        "labels": user_labels, "annotations": user_annotations,
                    },
                    "spec": spec,
                }},
            })
        }
    };
    // The same for every cluster: the namespace is left out.
    let mut hashed = body.clone();
    if let Some(meta) = hashed.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("namespace");
    }
    let hash = content_hash(&hashed);
    body["metadata"]["annotations"][labels::COPY_HASH_ANNOTATION] = Value::String(hash);
    Ok(body)
}

/// The hash a copy carries ([`labels::COPY_HASH_ANNOTATION`]).
pub fn copy_hash(meta: &ObjectMeta) -> Option<&str> {
    meta.annotations
        .as_ref()?
        .get(labels::COPY_HASH_ANNOTATION)
        .map(String::as_str)
}

/// Whether a copy was written by the controller (it carries a copy hash):
/// only those does the controller delete when they are no longer needed.
pub fn is_controllers_copy(meta: &ObjectMeta) -> bool {
    copy_hash(meta).is_some()
}

/// A hash of `value` that does not depend on the order of its keys.
pub fn content_hash(value: &Value) -> String {
    fn canonical(value: &Value, out: &mut String) {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push('{');
                for key in keys {
                    out.push_str(&Value::String(key.clone()).to_string());
                    out.push(':');
                    canonical(&map[key], out);
                    out.push(',');
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for item in items {
                    canonical(item, out);
                    out.push(',');
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut text = String::new();
    canonical(value, &mut text);
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    digest.as_ref()[..10]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(kind: DepKind, name: &str) -> DepKey {
        (kind, "shop".to_string(), name.to_string())
    }

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn copies_go_where_roots_or_hand_labels_place_them() {
        let tls = key(DepKind::Secret, "tls");
        let known = set(&["east", "west", "north"]);
        assert_eq!(
            desired_clusters(&tls, true, &set(&["east"]), &set(&["west", "gone"]), &known),
            set(&["east", "west"])
        );
        // Shared by two roots on the same cluster: one copy.
        assert_eq!(
            desired_clusters(&tls, true, &set(&["east", "east"]), &set(&[]), &known),
            set(&["east"])
        );
        // A deleted object, or one where nothing is placed from, goes nowhere.
        assert!(desired_clusters(&tls, false, &set(&["east"]), &set(&[]), &known).is_empty());
        let system = (DepKind::Secret, "kube-system".to_string(), "x".to_string());
        assert!(desired_clusters(&system, true, &set(&["east"]), &set(&[]), &known).is_empty());
        let meta: ObjectMeta = serde_json::from_value(json!({"labels": {
            "state.kcp-ingress.dev/east": "Sync",
            "state.kcp-ingress.dev/west": "Pending",
            "app": "web"
        }}))
        .unwrap();
        assert_eq!(hand_placed_clusters(&meta), set(&["east"]));
    }

    #[test]
    fn copy_names_map_back_to_their_origin() {
        for dep in [
            key(DepKind::Secret, "tls"),
            key(DepKind::ConfigMap, "conf.v2"),
            key(DepKind::Service, "web"),
            key(DepKind::ReferenceGrant, "from-apps"),
        ] {
            let name = copy_name(&dep).unwrap();
            assert_eq!(origin_of_copy(dep.0, &name), Some(dep.clone()));
        }
        assert_eq!(
            copy_name(&key(DepKind::ReferenceGrant, "g")).unwrap(),
            "shop.g.referencegrants.gateway.networking.k8s.io"
        );
        let grant = json!({
            "apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "ReferenceGrant",
            "metadata": {"name": "g", "namespace": "shop", "uid": "u-9"},
            "spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": "apps"}],
                     "to": [{"group": "", "kind": "Service"}]}
        });
        let body = copy_body(
            &key(DepKind::ReferenceGrant, "g"),
            &grant,
            "kcp-ingress-cluster-east",
        )
        .unwrap();
        assert_eq!(body["kind"], "PlacedObject");
        assert_eq!(body["spec"]["object"]["kind"], "ReferenceGrant");
        assert_eq!(body["spec"]["object"]["spec"], grant["spec"]);
        assert_eq!(
            body["metadata"]["labels"][labels::PLACED_RESOURCE_LABEL],
            "referencegrants.gateway.networking.k8s.io"
        );
        assert_eq!(
            copy_name(&key(DepKind::Service, "web")).unwrap(),
            "shop.web.services"
        );
        assert_eq!(origin_of_copy(DepKind::Service, "shop.web"), None);
    }

    #[test]
    fn a_secret_copy_keeps_data_and_drops_what_is_ours() {
        let user = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {
                "name": "tls", "namespace": "shop", "uid": "u-7", "resourceVersion": "9",
                "labels": {"app": "web", "state.kcp-ingress.dev/east": "Sync"},
                "annotations": {
                    "note": "x",
                    "conflict.kcp-ingress.dev/east": "in the way",
                    "kubectl.kubernetes.io/last-applied-configuration": "{}",
                    "kcp.io/cluster": "root"
                },
                "finalizers": ["kcp-ingress.dev/syncer-east"],
                "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "u"}]
            },
            "type": "kubernetes.io/tls",
            "data": {"tls.crt": "Y2VydA==", "tls.key": "a2V5"}
        });
        let dep = key(DepKind::Secret, "tls");
        let body = copy_body(&dep, &user, "kcp-ingress-cluster-east").unwrap();
        let hash = body["metadata"]["annotations"][labels::COPY_HASH_ANNOTATION].clone();
        assert_eq!(
            body,
            json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {
                    "name": "shop.tls", "namespace": "kcp-ingress-cluster-east",
                    "labels": {"app": "web"},
                    "annotations": {
                        "note": "x", "kcp-ingress.dev/origin": "shop/tls/u-7",
                        "kcp-ingress.dev/copy-hash": hash,
                    }
                },
                "type": "kubernetes.io/tls",
                "data": {"tls.crt": "Y2VydA==", "tls.key": "a2V5"}
            })
        );
        // Same content, same hash; new data (a renewed certificate), new hash.
        let again = copy_body(&dep, &user, "kcp-ingress-cluster-east").unwrap();
        assert_eq!(again, body);
        let west = copy_body(&dep, &user, "kcp-ingress-cluster-west").unwrap();
        assert_eq!(
            west["metadata"]["annotations"][labels::COPY_HASH_ANNOTATION],
            hash
        );
        let mut renewed = user.clone();
        renewed["data"]["tls.crt"] = json!("bmV3");
        let renewed = copy_body(&dep, &renewed, "kcp-ingress-cluster-east").unwrap();
        assert_ne!(
            renewed["metadata"]["annotations"][labels::COPY_HASH_ANNOTATION],
            hash
        );
        let meta: ObjectMeta = serde_json::from_value(body["metadata"].clone()).unwrap();
        assert!(is_controllers_copy(&meta));
        assert!(!is_controllers_copy(&ObjectMeta::default()));
    }

    #[test]
    fn a_service_travels_cluster_independent_in_a_placed_object() {
        let user = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {
                "name": "web", "namespace": "shop", "uid": "u-8",
                "labels": {"app": "web"},
                "managedFields": [{"manager": "kubectl", "operation": "Apply", "fieldsV1": {"f:spec": {"f:ports": {
                    "k:{\"port\":80,\"protocol\":\"TCP\"}": {"f:port": {}}
                }}}}]
            },
            "spec": {
                "type": "NodePort", "clusterIP": "10.0.0.9", "clusterIPs": ["10.0.0.9"],
                "selector": {"app": "web"},
                "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}]
            },
            "status": {"loadBalancer": {}}
        });
        let dep = key(DepKind::Service, "web");
        let body = copy_body(&dep, &user, "kcp-ingress-cluster-east").unwrap();
        assert_eq!(body["kind"], "PlacedObject");
        assert_eq!(body["metadata"]["name"], "shop.web.services");
        assert_eq!(
            body["metadata"]["labels"][labels::PLACED_RESOURCE_LABEL],
            "services"
        );
        assert_eq!(
            body["metadata"]["annotations"][labels::ORIGIN_ANNOTATION],
            "shop/web/u-8"
        );
        assert_eq!(
            body["spec"]["object"],
            json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"namespace": "shop", "name": "web", "labels": {"app": "web"}, "annotations": {}},
                "spec": {
                    "type": "NodePort", "selector": {"app": "web"},
                    "ports": [{"port": 80, "protocol": "TCP"}]
                }
            })
        );
    }
}
