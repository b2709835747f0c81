//! How the syncer's caches keep an object of a type known only at run
//! time: what routing reads typed (name, namespace, deletion timestamp),
//! everything else as one compact JSON text, parsed back into a
//! [`DynamicObject`] only when a worker syncs the object.
//!
//! A `DynamicObject` keeps its content as a `serde_json::Value` tree, in
//! which every JSON object is a map with nodes of its own: about fifteen
//! times the object's JSON size for an Ingress; the text is about its JSON
//! size. The syncer's own upstream watches keep objects so; its copies
//! downstream keep less ([`super::copy_record`]).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DynamicObject, TypeMeta};
use serde::{Deserialize, Deserializer};

/// `Resource` for a type of the syncer's caches that stands for a
/// `DynamicObject` of the API resource its store is for, with its
/// `ObjectMeta` in a field `metadata` (or handed out by the methods
/// `meta = ..., meta_mut = ...` name): group, version, kind and plural
/// come from the resource (the type is shared: every key of a store holds
/// a copy of it).
macro_rules! dynamic_resource {
    ($t:ty) => {
        $crate::syncer::cached::dynamic_resource!($t, |s| &s.metadata, |s| &mut s.metadata);
    };
    ($t:ty, meta = $meta:ident, meta_mut = $meta_mut:ident) => {
        $crate::syncer::cached::dynamic_resource!($t, |s| s.$meta(), |s| s.$meta_mut());
    };
    ($t:ty, |$s:ident| $meta:expr, |$m:ident| $meta_mut:expr) => {
        impl kube::Resource for $t {
            type DynamicType = std::sync::Arc<kube::api::ApiResource>;
            type Scope = kube::core::DynamicResourceScope;

            fn group(dt: &Self::DynamicType) -> std::borrow::Cow<'_, str> {
                kube::api::DynamicObject::group(dt)
            }

            fn version(dt: &Self::DynamicType) -> std::borrow::Cow<'_, str> {
                kube::api::DynamicObject::version(dt)
            }

            fn kind(dt: &Self::DynamicType) -> std::borrow::Cow<'_, str> {
                kube::api::DynamicObject::kind(dt)
            }

            fn api_version(dt: &Self::DynamicType) -> std::borrow::Cow<'_, str> {
                kube::api::DynamicObject::api_version(dt)
            }

            fn plural(dt: &Self::DynamicType) -> std::borrow::Cow<'_, str> {
                kube::api::DynamicObject::plural(dt)
            }

            fn meta(&self) -> &kube::api::ObjectMeta {
                let $s = self;
                $meta
            }

            fn meta_mut(&mut self) -> &mut kube::api::ObjectMeta {
                let $m = self;
                $meta_mut
            }
        }
    };
}
pub(crate) use dynamic_resource;

/// An object as the syncer caches it (see the module docs).
#[derive(Clone, Debug, PartialEq)]
pub struct Cached {
    pub types: Option<TypeMeta>,
    /// All of the metadata as read; after [`Cached::slim`], only the name,
    /// namespace and deletion timestamp (the rest is in `body`).
    pub metadata: ObjectMeta,
    /// Every top-level field but `apiVersion`, `kind` and (until
    /// [`Cached::slim`]) `metadata`, as compact JSON (an object).
    body: Box<str>,
}

impl Cached {
    /// The object as the API server sent it (less what the watch dropped).
    pub fn to_dynamic(&self) -> DynamicObject {
        // The text is serde_json's own output of a value it parsed: it
        // parses back (an empty object is the fallback that cannot happen).
        let mut data = serde_json::from_str(&self.body)
            .unwrap_or_else(|_| serde_json::Value::Object(serde_json::Map::new()));
        let metadata = match data.as_object_mut().and_then(|o| o.remove("metadata")) {
            Some(folded) => {
                serde_json::from_value(folded).unwrap_or_else(|_| self.metadata.clone())
            }
            None => self.metadata.clone(),
        };
        DynamicObject {
            types: self.types.clone(),
            metadata,
            data,
        }
    }

    /// Folds the metadata into the text, but for what routing reads: for
    /// a watch to apply once it has read the object's resourceVersion.
    pub fn slim(&mut self) {
        if self.body.starts_with("{\"metadata\"") {
            return;
        }
        let kept = ObjectMeta {
            name: self.metadata.name.clone(),
            namespace: self.metadata.namespace.clone(),
            deletion_timestamp: self.metadata.deletion_timestamp.clone(),
            ..ObjectMeta::default()
        };
        let metadata = std::mem::replace(&mut self.metadata, kept);
        // `metadata` first, so that a folded body is known by its start.
        let Ok(metadata) = serde_json::to_string(&metadata) else {
            return;
        };
        let rest = self.body.strip_prefix('{').unwrap_or("}");
        let separator = if rest == "}" { "" } else { "," };
        self.body = format!("{{\"metadata\":{metadata}{separator}{rest}").into_boxed_str();
    }
}

impl From<DynamicObject> for Cached {
    fn from(object: DynamicObject) -> Self {
        let DynamicObject {
            types,
            metadata,
            data,
        } = object;
        Self {
            types,
            metadata,
            body: data.to_string().into_boxed_str(),
        }
    }
}

impl<'de> Deserialize<'de> for Cached {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        DynamicObject::deserialize(deserializer).map(Self::from)
    }
}

dynamic_resource!(Cached);

#[cfg(test)]
mod tests {
    use serde_json::json;

    use kube::Resource;

    use super::*;

    fn ingress() -> serde_json::Value {
        json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {
                "name": "web--east",
                "namespace": "kcp-ingress-cluster-east",
                "labels": {"kcp-ingress.dev/root": "web"},
                "finalizers": ["syncer.kcp-ingress.dev/east"],
                "resourceVersion": "42"
            },
            "spec": {"rules": [{"host": "web.example.com", "http": {"paths": [
                {"path": "/", "pathType": "Prefix",
                 "backend": {"service": {"name": "web", "port": {"number": 80}}}}
            ]}}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}]}}
        })
    }

    #[test]
    fn an_object_comes_back_as_it_was_read() {
        let cached: Cached = serde_json::from_value(ingress()).unwrap();
        assert_eq!(cached.metadata.name.as_deref(), Some("web--east"));
        assert_eq!(
            cached.meta().finalizers.as_deref(),
            Some(&["syncer.kcp-ingress.dev/east".to_string()][..])
        );
        let back = serde_json::to_value(cached.to_dynamic()).unwrap();
        assert_eq!(back, ingress());
    }

    #[test]
    fn an_object_of_a_list_has_no_type_and_keeps_its_content() {
        let mut item = ingress();
        let fields = item.as_object_mut().unwrap();
        fields.remove("apiVersion");
        fields.remove("kind");
        let cached: Cached = serde_json::from_value(item.clone()).unwrap();
        assert_eq!(cached.types, None);
        assert_eq!(serde_json::to_value(cached.to_dynamic()).unwrap(), item);
    }

    #[test]
    fn a_slim_object_keeps_what_routing_reads_and_comes_back_whole() {
        let mut deleting = ingress();
        deleting["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        for object in [ingress(), deleting] {
            let mut cached: Cached = serde_json::from_value(object.clone()).unwrap();
            cached.slim();
            cached.slim();
            assert_eq!(cached.metadata.name.as_deref(), Some("web--east"));
            assert_eq!(
                cached.metadata.namespace.as_deref(),
                Some("kcp-ingress-cluster-east")
            );
            assert_eq!(
                cached.metadata.deletion_timestamp.is_some(),
                object["metadata"].get("deletionTimestamp").is_some()
            );
            assert_eq!(cached.metadata.labels, None);
            assert_eq!(cached.metadata.resource_version, None);
            assert_eq!(serde_json::to_value(cached.to_dynamic()).unwrap(), object);
        }
    }

    #[test]
    fn an_object_with_metadata_only_slims_too() {
        let object = json!({"metadata": {"name": "a", "namespace": "b", "uid": "u"}});
        let mut cached: Cached = serde_json::from_value(object.clone()).unwrap();
        cached.slim();
        assert_eq!(cached.metadata.uid, None);
        assert_eq!(serde_json::to_value(cached.to_dynamic()).unwrap(), object);
    }

    #[test]
    fn the_body_is_the_compact_text_of_the_rest() {
        let cached: Cached = serde_json::from_value(ingress()).unwrap();
        let spec_and_status = json!({"spec": ingress()["spec"], "status": ingress()["status"]});
        assert_eq!(cached.body.len(), spec_and_status.to_string().len());
    }
}
