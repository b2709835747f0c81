//! What a watch's store keeps of each object of `K`: the object itself,
//! or its [`Compact`] form (issue #16, memory). Code over a store reads
//! through [`Stored`]: the name, namespace, labels and annotations that
//! whole-store loops read without a parse (and, for a compact form,
//! without building its `ObjectMeta`: `Resource::meta` would, for every
//! object the loop reads), and the typed object where one object is read
//! (parsed from a compact form then).

use std::fmt::Debug;
use std::sync::Arc;

use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::warn;

use super::compact::{Compact, Kept};

/// A form a store keeps an object of `K` in.
pub trait Stored<K>:
    Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static
{
    /// `object` as the store keeps it.
    fn store(object: &K) -> Self;

    /// The object's name ("" without one: the API gives every object
    /// one).
    fn stored_name(&self) -> &str;

    /// The object's namespace, if it has one.
    fn stored_namespace(&self) -> Option<&str>;

    /// Whether the object is being deleted (has a deletion timestamp).
    fn stored_deleting(&self) -> bool;

    /// The value of the label `key`; a compact form has only the kept
    /// ones ([`super::compact::KEPT`]).
    fn label(&self, key: &'static str) -> Option<&str>;

    /// The value of the annotation `key` (see [`Stored::label`]).
    fn annotation(&self, key: &'static str) -> Option<&str>;

    /// The object, typed: a compact form is parsed (one allocation tree
    /// per call: read one object with it, not a whole store); a text that
    /// does not parse (it cannot happen: the text was written from the
    /// type) is logged and reads as absent.
    fn typed(object: &Arc<Self>) -> Option<Arc<K>>;
}

impl<K> Stored<K> for K
where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
{
    fn store(object: &K) -> Self {
        object.clone()
    }

    fn stored_name(&self) -> &str {
        self.meta().name.as_deref().unwrap_or_default()
    }

    fn stored_namespace(&self) -> Option<&str> {
        self.meta().namespace.as_deref()
    }

    fn stored_deleting(&self) -> bool {
        self.meta().deletion_timestamp.is_some()
    }

    fn label(&self, key: &'static str) -> Option<&str> {
        self.labels().get(key).map(String::as_str)
    }

    fn annotation(&self, key: &'static str) -> Option<&str> {
        self.annotations().get(key).map(String::as_str)
    }

    fn typed(object: &Arc<Self>) -> Option<Arc<K>> {
        Some(object.clone())
    }
}

impl<K> Stored<K> for Compact<K>
where
    K: Resource<DynamicType = ()>
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    fn store(object: &K) -> Self {
        Compact::keeping(object, &super::compact::KEPT)
    }

    fn stored_name(&self) -> &str {
        self.name().unwrap_or_default()
    }

    fn stored_namespace(&self) -> Option<&str> {
        self.namespace()
    }

    fn stored_deleting(&self) -> bool {
        self.deletion_timestamp().is_some()
    }

    fn label(&self, key: &'static str) -> Option<&str> {
        self.kept(Kept::Label(key))
    }

    fn annotation(&self, key: &'static str) -> Option<&str> {
        self.kept(Kept::Annotation(key))
    }

    fn typed(object: &Arc<Self>) -> Option<Arc<K>> {
        match Compact::typed(object) {
            Ok(typed) => Some(Arc::new(typed)),
            Err(err) => {
                warn!(
                    kind = %K::kind(&()),
                    namespace = object.namespace().unwrap_or_default(),
                    name = object.name().unwrap_or_default(),
                    %err,
                    "a cached object does not parse; treated as absent"
                );
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::networking::v1::Ingress;
    use serde_json::json;

    use super::*;
    use crate::labels;

    /// Ingresses as the controller stores them.
    type Form = Compact<Ingress>;

    fn store(object: &Ingress) -> Arc<Form> {
        Arc::new(<Form as Stored<Ingress>>::store(object))
    }

    fn label<'a>(stored: &'a Form, key: &'static str) -> Option<&'a str> {
        <Form as Stored<Ingress>>::label(stored, key)
    }

    fn annotation<'a>(stored: &'a Form, key: &'static str) -> Option<&'a str> {
        <Form as Stored<Ingress>>::annotation(stored, key)
    }

    fn typed(stored: Form) -> Option<Arc<Ingress>> {
        <Form as Stored<Ingress>>::typed(&Arc::new(stored))
    }

    fn leaf() -> Ingress {
        serde_json::from_value(json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "web--shop", "namespace": "kcp-ingress-cluster-east",
                         "uid": "u-1", "resourceVersion": "7",
                         "labels": {"kcp-ingress.dev/root": "web",
                                    "kcp-ingress.dev/root-namespace": "shop", "app": "web"},
                         "annotations": {"kcp-ingress.dev/placement": "region=eu", "x": "y"},
                         "finalizers": ["f"]},
            "spec": {"rules": [{"host": "a.example.test"}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "127.0.0.1"}]}}
        }))
        .unwrap()
    }

    #[test]
    fn a_compact_form_keeps_what_routing_reads_and_reads_back_whole() {
        let leaf = leaf();
        let stored = store(&leaf);
        assert_eq!(label(&stored, labels::ROOT_LABEL), Some("web"));
        assert_eq!(label(&stored, labels::ROOT_NAMESPACE_LABEL), Some("shop"));
        assert_eq!(
            annotation(&stored, labels::PLACEMENT_ANNOTATION),
            Some("region=eu")
        );
        // Only the kept keys are typed; the rest is in the text.
        assert_eq!(label(&stored, "app"), None);
        assert_eq!(annotation(&stored, "x"), None);
        assert!(stored.labels().is_empty() && stored.annotations().is_empty());
        assert_eq!(*typed((*stored).clone()).unwrap(), leaf);
    }

    #[test]
    fn an_object_without_the_kept_keys_keeps_none() {
        let mut bare = leaf();
        bare.metadata.labels = None;
        bare.metadata.annotations = None;
        let stored = store(&bare);
        assert_eq!(label(&stored, labels::ROOT_LABEL), None);
        assert_eq!(annotation(&stored, labels::PLACEMENT_ANNOTATION), None);
        assert_eq!(*typed((*stored).clone()).unwrap(), bare);
    }

    #[test]
    fn a_typed_form_reads_its_own_maps_and_hands_itself_over() {
        let leaf = Arc::new(leaf());
        assert_eq!(
            <Ingress as Stored<Ingress>>::label(&leaf, "app"),
            Some("web")
        );
        assert_eq!(
            <Ingress as Stored<Ingress>>::annotation(&leaf, "x"),
            Some("y")
        );
        let typed = <Ingress as Stored<Ingress>>::typed(&leaf).unwrap();
        assert!(Arc::ptr_eq(&typed, &leaf));
    }

    #[test]
    fn a_compact_text_that_does_not_parse_reads_as_absent() {
        let stored = (*store(&leaf())).clone().with_body("{\"spec\":7}");
        assert!(typed(stored).is_none());
    }
}
