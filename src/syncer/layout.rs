//! Where a synced type's placed objects are in the cluster namespace of the
//! control plane, and which downstream object each one is (pure).
//!
//! A type stored natively ([`mailbox::stored_natively`]: leaves, Secrets,
//! ConfigMaps) is there as itself, named `<namespace>.<name>`; every other
//! type travels inside a `PlacedObject` named
//! `<namespace>.<name>.<resource>` and labelled with its resource
//! ([`labels::PLACED_RESOURCE_LABEL`]). Both names map to the downstream
//! `(namespace, name)` and back ([`Place`]); a name that does not map, or a
//! `PlacedObject` whose embedded object is not what its name says, is
//! reported by the syncer and skipped.

use std::fmt;

use serde_json::{Map, Value};

use super::naming::ResourceSpec;
use crate::{labels, mailbox};

/// How objects of one synced type are carried in the cluster namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Carrier {
    /// As themselves: the upstream object is the one to copy down.
    Native,
    /// Inside `PlacedObject`s with this value of the resource label.
    Wrapped { label_value: String },
}

impl Carrier {
    /// The carrier of `spec`'s objects.
    pub fn of(spec: &ResourceSpec) -> Self {
        if mailbox::stored_natively(&spec.resource, &spec.group) {
            Carrier::Native
        } else {
            Carrier::Wrapped {
                label_value: mailbox::placed_resource_label_value(&spec.resource, &spec.group),
            }
        }
    }

    /// The label selector of the upstream watch (`None`: everything in the
    /// namespace).
    pub fn selector(&self) -> Option<String> {
        match self {
            Carrier::Native => None,
            Carrier::Wrapped { label_value } => {
                Some(format!("{}={label_value}", labels::PLACED_RESOURCE_LABEL))
            }
        }
    }

    /// Whether an upstream object with these labels carries this type (a
    /// `PlacedObject` relabelled by hand no longer does).
    pub fn carries(&self, object_labels: &std::collections::BTreeMap<String, String>) -> bool {
        match self {
            Carrier::Native => true,
            Carrier::Wrapped { label_value } => {
                object_labels.get(labels::PLACED_RESOURCE_LABEL) == Some(label_value)
            }
        }
    }
}

/// A downstream object's namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Target {
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// One object of a synced type, as both sides name it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Place {
    /// The upstream object `upstream` (a name in the cluster namespace) and
    /// the downstream object it maps to; each name is a function of the other.
    Mapped { upstream: String, target: Target },
    /// An upstream object whose name maps to no downstream object.
    Unmapped { upstream: String },
    /// A downstream object no upstream name can map to (its copy name would
    /// be too long): it has nothing to be a copy of.
    Orphan(Target),
}

impl Place {
    /// The place of the upstream object named `upstream`.
    pub fn of_upstream(spec: &ResourceSpec, upstream: &str) -> Self {
        let mapped = if mailbox::stored_natively(&spec.resource, &spec.group) {
            mailbox::downstream_of_copy(upstream)
        } else {
            mailbox::downstream_of_placed(upstream, &spec.resource, &spec.group)
        };
        match mapped {
            Some((namespace, name)) => Place::Mapped {
                upstream: upstream.to_string(),
                target: Target {
                    namespace: namespace.to_string(),
                    name: name.to_string(),
                },
            },
            None => Place::Unmapped {
                upstream: upstream.to_string(),
            },
        }
    }

    /// The place of the downstream object `namespace/name`.
    pub fn of_downstream(spec: &ResourceSpec, namespace: &str, name: &str) -> Self {
        let upstream = if mailbox::stored_natively(&spec.resource, &spec.group) {
            mailbox::copy_name(namespace, name)
        } else {
            mailbox::placed_object_name(namespace, name, &spec.resource, &spec.group)
        };
        let target = Target {
            namespace: namespace.to_string(),
            name: name.to_string(),
        };
        match upstream {
            // A downstream name with a dot in its namespace cannot be one
            // (namespaces hold none); checked both ways for good measure.
            Ok(upstream)
                if Self::of_upstream(spec, &upstream) == Self::mapped(&upstream, &target) =>
            {
                Self::mapped(&upstream, &target)
            }
            _ => Place::Orphan(target),
        }
    }

    fn mapped(upstream: &str, target: &Target) -> Self {
        Place::Mapped {
            upstream: upstream.to_string(),
            target: target.clone(),
        }
    }

    /// The upstream name, when there is one.
    pub fn upstream(&self) -> Option<&str> {
        match self {
            Place::Mapped { upstream, .. } | Place::Unmapped { upstream } => Some(upstream),
            Place::Orphan(_) => None,
        }
    }

    /// The downstream object, when there is one.
    pub fn target(&self) -> Option<&Target> {
        match self {
            Place::Mapped { target, .. } | Place::Orphan(target) => Some(target),
            Place::Unmapped { .. } => None,
        }
    }
}

/// Why the upstream object `upstream` of `spec`'s type maps to nothing
/// downstream: what the report on it says.
pub fn unmapped_message(spec: &ResourceSpec, cluster_namespace: &str, upstream: &str) -> String {
    let expected = if mailbox::stored_natively(&spec.resource, &spec.group) {
        "<namespace>.<name>".to_string()
    } else {
        format!(
            "a PlacedObject named <namespace>.<name>.{}",
            mailbox::resource_suffix(&spec.resource, &spec.group)
        )
    };
    format!(
        "{spec} {cluster_namespace}/{upstream} is not synced: in a cluster namespace, its name \
         must be {expected} (the downstream namespace and name)"
    )
}

/// The object a `PlacedObject` (whole, as JSON) embeds, checked against
/// what its name says (`target`) and the synced type (`api_version`,
/// `kind`), with metadata trimmed to what may travel and the uid of the
/// `PlacedObject` (the origin of the copy). Its node ports are the user's:
/// it records no field ownership.
pub fn embedded(
    placed: &Value,
    api_version: &str,
    kind: &str,
    target: &Target,
) -> Result<Value, String> {
    let Some(object) = placed.pointer("/spec/object").and_then(Value::as_object) else {
        return Err("its spec.object is missing or not an object".into());
    };
    let text = |pointer: &str| object_text(object, pointer);
    let found_kind = text("/kind");
    let found_version = text("/apiVersion");
    if found_kind != Some(kind) || found_version != Some(api_version) {
        return Err(format!(
            "it embeds {} {}, but its name says {api_version} {kind}",
            found_version.unwrap_or("(no apiVersion)"),
            found_kind.unwrap_or("(no kind)"),
        ));
    }
    let (namespace, name) = (text("/metadata/namespace"), text("/metadata/name"));
    if namespace != Some(target.namespace.as_str()) || name != Some(target.name.as_str()) {
        return Err(format!(
            "it embeds {}/{}, but its name says {target}",
            namespace.unwrap_or("(no namespace)"),
            name.unwrap_or("(no name)"),
        ));
    }
    let mut out = object.clone();
    let mut meta = Map::new();
    if let Some(Value::Object(m)) = object.get("metadata") {
        for field in ["namespace", "name", "labels", "annotations"] {
            if let Some(v) = m.get(field) {
                meta.insert(field.into(), v.clone());
            }
        }
    }
    if let Some(uid) = placed.pointer("/metadata/uid") {
        meta.insert("uid".into(), uid.clone());
    }
    out.insert("metadata".into(), Value::Object(meta));
    Ok(Value::Object(out))
}

fn object_text<'a>(object: &'a Map<String, Value>, pointer: &str) -> Option<&'a str> {
    let mut parts = pointer.trim_start_matches('/').split('/');
    let first = object.get(parts.next()?)?;
    parts
        .try_fold(first, |v, p| v.get(p))
        .and_then(Value::as_str)
}

/// The object a natively stored upstream object (whole, as JSON) stands
/// for downstream: itself, named `target`.
pub fn native(upstream: &Value, target: &Target) -> Value {
    let mut out = upstream.clone();
    if let Some(meta) = out.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("namespace".into(), Value::String(target.namespace.clone()));
        meta.insert("name".into(), Value::String(target.name.clone()));
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec(text: &str) -> ResourceSpec {
        ResourceSpec::parse(text).unwrap()
    }

    fn target(namespace: &str, name: &str) -> Target {
        Target {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    #[test]
    fn carriers_follow_the_mailbox() {
        assert_eq!(Carrier::of(&spec("secrets")), Carrier::Native);
        assert_eq!(
            Carrier::of(&spec("ingresses.networking.k8s.io")),
            Carrier::Native
        );
        let deployments = Carrier::of(&spec("deployments.apps"));
        assert_eq!(
            deployments.selector().as_deref(),
            Some("kcp-ingress.dev/resource=deployments.apps")
        );
        assert_eq!(Carrier::Native.selector(), None);
        let labelled = [(
            labels::PLACED_RESOURCE_LABEL.to_string(),
            "deployments.apps".to_string(),
        )]
        .into_iter()
        .collect();
        assert!(deployments.carries(&labelled));
        assert!(!deployments.carries(&Default::default()));
        assert!(Carrier::Native.carries(&Default::default()));
    }

    #[test]
    fn names_map_both_ways() {
        let secrets = spec("secrets");
        let place = Place::of_upstream(&secrets, "shop.tls");
        assert_eq!(
            place,
            Place::Mapped {
                upstream: "shop.tls".into(),
                target: target("shop", "tls")
            }
        );
        assert_eq!(Place::of_downstream(&secrets, "shop", "tls"), place);
        let services = spec("services");
        let place = Place::of_upstream(&services, "shop.web.services");
        assert_eq!(place.target(), Some(&target("shop", "web")));
        assert_eq!(Place::of_downstream(&services, "shop", "web"), place);
        assert_eq!(place.upstream(), Some("shop.web.services"));
    }

    #[test]
    fn names_that_do_not_map_are_told_apart() {
        let secrets = spec("secrets");
        assert_eq!(
            Place::of_upstream(&secrets, "no-dot"),
            Place::Unmapped {
                upstream: "no-dot".into()
            }
        );
        // A Service's PlacedObject named for another resource.
        let services = spec("services");
        let wrong = Place::of_upstream(&services, "shop.web.deployments.apps");
        assert!(matches!(wrong, Place::Unmapped { .. }), "{wrong:?}");
        assert!(matches!(
            Place::of_upstream(&spec("deployments.apps"), "shop.web.services"),
            Place::Unmapped { .. }
        ));
        // Downstream names whose copy name would be too long.
        let long = "x".repeat(250);
        assert_eq!(
            Place::of_downstream(&secrets, "shop", &long),
            Place::Orphan(target("shop", &long))
        );
        assert_eq!(Place::Orphan(target("a", "b")).upstream(), None);
        let message = unmapped_message(&services, "kcp-ingress-cluster-east", "web");
        assert!(message.contains("<namespace>.<name>.services"), "{message}");
    }

    fn placed(object: Value) -> Value {
        json!({
            "apiVersion": "kcp-ingress.dev/v1alpha1", "kind": "PlacedObject",
            "metadata": {"name": "shop.web.deployments.apps", "namespace": "kcp-ingress-cluster-east",
                         "uid": "p-1", "labels": {"kcp-ingress.dev/resource": "deployments.apps"}},
            "spec": {"object": object}
        })
    }

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"namespace": "shop", "name": "web", "labels": {"app": "web"},
                         "annotations": {"a": "b"}, "uid": "u-9",
                         "managedFields": [{"manager": "x"}]},
            "spec": {"replicas": 1},
            "status": {"replicas": 1}
        })
    }

    #[test]
    fn embedded_objects_are_checked_against_their_name() {
        let t = target("shop", "web");
        let out = embedded(&placed(deployment()), "apps/v1", "Deployment", &t).unwrap();
        assert_eq!(
            out["metadata"],
            json!({"namespace": "shop", "name": "web", "labels": {"app": "web"},
                   "annotations": {"a": "b"}, "uid": "p-1"})
        );
        assert_eq!(out["spec"], json!({"replicas": 1}));

        let err = embedded(&placed(deployment()), "v1", "Service", &t).unwrap_err();
        assert!(err.contains("apps/v1 Deployment"), "{err}");
        let err = embedded(
            &placed(deployment()),
            "apps/v1",
            "Deployment",
            &target("shop", "api"),
        )
        .unwrap_err();
        assert!(
            err.contains("shop/web") && err.contains("shop/api"),
            "{err}"
        );
        let mut no_ns = deployment();
        no_ns["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("namespace");
        let err = embedded(&placed(no_ns), "apps/v1", "Deployment", &t).unwrap_err();
        assert!(err.contains("(no namespace)"), "{err}");
        let err = embedded(&placed(json!("text")), "apps/v1", "Deployment", &t).unwrap_err();
        assert!(err.contains("spec.object"), "{err}");
        assert!(embedded(&json!({}), "apps/v1", "Deployment", &t).is_err());
    }

    #[test]
    fn native_objects_take_their_downstream_name() {
        let up = json!({"metadata": {"namespace": "kcp-ingress-cluster-east", "name": "shop.tls",
                                     "uid": "u-1"}, "data": {}});
        let out = native(&up, &target("shop", "tls"));
        assert_eq!(
            out["metadata"],
            json!({"namespace": "shop", "name": "tls", "uid": "u-1"})
        );
    }
}
