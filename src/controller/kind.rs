//! What a kind of root contributes to the controller. The pipeline
//! (placement, leaves, dependencies, status merge, GlobalIngress, memory) is
//! written against [`RootKind`]; each kind implements it in `kinds/`:
//! Ingress, and the Gateway API roots (Gateway, HTTPRoute, GRPCRoute).
//!
//! Roots and their leaves are objects of the same kind: a leaf is the root's
//! copy for one cluster, in that cluster's namespace of the control plane,
//! named and labelled for its root by shared code (`decide::leaf_for`,
//! `naming::leaf_key`): a kind only says what a leaf holds. A kind may read
//! other cached objects ([`RootKind::World`]): a route is placed where its
//! parent Gateways are, a Gateway's hosts are its attached routes'
//! hostnames ∩ its listeners', a leaf Gateway's class is its Cluster's.

use std::fmt::Debug;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::core::NamespaceResourceScope;
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::dependencies::DepKey;
use super::merge::ClusterView;
use super::naming;
use super::placement::{self, Placement};
use crate::apis::{Cluster, LoadBalancerAddress};
use crate::labels::{self, reasons};
use crate::runtime::stored::Stored;

/// Something wrong with a root: it stops it from being placed when
/// [`RootKind::validate`] says so; it is reported (an Event, and the
/// kind's own conditions) when [`RootKind::problems`] does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// CamelCase reason, for the condition and the Event.
    pub reason: &'static str,
    pub message: String,
}

/// What the merge of a root's status can read besides its leaves.
pub struct Lookups<'a, K: RootKind> {
    pub world: &'a K::World,
    pub clusters: &'a [Arc<Cluster>],
    /// Whether a dependency exists.
    pub exists: &'a dyn Fn(&DepKey) -> bool,
    /// Where the root goes (`None`: it is invalid).
    pub placement: Option<&'a Placement>,
    /// Why the GlobalIngress of the root's name is not its own (another
    /// root controls it), if that is so.
    pub global_taken: Option<&'a str>,
    pub now: &'a Time,
}

/// One target cluster's leaf, for the merge of the root's status.
pub struct LeafView<K: RootKind> {
    pub view: ClusterView<K::Address>,
    /// The leaf as the cache shows it (none yet, or none for that cluster).
    pub leaf: Option<Arc<K>>,
}

/// A kind of root object: its Kubernetes type (`Self`), what its leaves
/// are, what it depends on, which hosts it publishes and how its leaves'
/// statuses merge into its own.
pub trait RootKind:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + Serialize
    + DeserializeOwned
    + Debug
    + Send
    + Sync
    + 'static
{
    /// One address a leaf reports in its status (and the GlobalIngress shows).
    type Address: Clone + PartialEq + Debug + Send + Sync + 'static;

    /// The other cached objects the kind reads (`()`: none).
    type World: Send + Sync + 'static;

    /// What the kind's store keeps of each root and leaf: the object, or
    /// its compact form (Ingress: issue #16, memory). Whole-store loops
    /// read it with [`is_root`], [`root_of_leaf`] and [`stored_selector`]; one
    /// object is read typed ([`Stored::typed`]).
    type Stored: Stored<Self>;

    /// Whether the kind adopts a GlobalIngress of a root's name that has no
    /// controller at all (GlobalIngresses written before owner references
    /// and `spec.root`: Ingress only).
    const ADOPTS_UNCONTROLLED: bool = false;

    /// Whether `object` is a root (a user's object, in a namespace whose
    /// objects are placed: `naming::is_placeable_namespace`) rather than a
    /// leaf or an object that is never placed.
    fn is_root(object: &Self) -> bool;

    /// Whether kcp-ingress handles the root at all (a Gateway of another
    /// implementation's class is not ours); one that is not is left alone.
    fn is_ours(_root: &Self, _world: &Self::World) -> bool {
        true
    }

    /// What is wrong with `root`, if anything (nothing is placed then).
    fn validate(root: &Self) -> Vec<Problem>;

    /// The clusters `root` goes to: by default its placement annotation, a
    /// label selector over the Clusters (empty: every schedulable cluster).
    fn targets(
        root: &Self,
        clusters: &[Arc<Cluster>],
        _world: &Self::World,
    ) -> Result<Placement, Problem> {
        placed_by_annotation(root, clusters)
    }

    /// Whether `root` may have `dep` (one of its dependencies) placed with
    /// it: a cross-namespace reference needs a grant (default: yes).
    fn permits(_root: &Self, _dep: &DepKey, _world: &Self::World) -> bool {
        true
    }

    /// What the leaf of `root` for `cluster` holds (spec, the labels and
    /// annotations that travel); its name, namespace and root labels are
    /// the pipeline's. `None`: no leaf there.
    fn leaf(root: &Self, cluster: &Arc<Cluster>, world: &Self::World) -> Option<Self>;

    /// Whether `current` already is `desired` as far as the controller owns it.
    fn leaf_is_current(current: &Self, desired: &Self) -> bool;

    /// The objects `root` needs on every cluster it is placed on, in the
    /// order they are reported.
    fn dependencies(root: &Self, world: &Self::World) -> Vec<DepKey>;

    /// The name of the GlobalIngress of the root named `root` (in its
    /// namespace); `None`: roots of this kind have none.
    fn global_name(root: &str) -> Option<String> {
        Some(root.to_string())
    }

    /// The hosts `root` publishes (the GlobalIngress's `spec.hosts`), sorted, unique.
    fn hosts(root: &Self, world: &Self::World) -> Vec<String>;

    /// The addresses a leaf reports in its status, as they count for the
    /// GlobalIngress (a leaf that does not serve counts none).
    fn addresses(object: &Self) -> Vec<Self::Address>;

    /// An address as the GlobalIngress shows it (none when it has no DNS form).
    fn global_address(address: &Self::Address) -> Option<LoadBalancerAddress>;

    /// Whether a leaf's cluster reported on it (the merged statuses wait
    /// for that a moment: `decide::REPORT_WINDOW`); by default, an address.
    fn has_reported(leaf: &Self) -> bool {
        !Self::addresses(leaf).is_empty()
    }

    /// The `status` of a server-side apply of the root's merged status,
    /// when it differs from the root's.
    fn root_status(
        root: &Self,
        leaves: &[LeafView<Self>],
        seen: &Lookups<'_, Self>,
    ) -> Option<serde_json::Value>;

    /// Bad input that does not stop the root from being placed, reported
    /// with an Event (and, by [`RootKind::root_status`], on the root).
    fn problems(_root: &Self, _seen: &Lookups<'_, Self>) -> Vec<Problem> {
        Vec::new()
    }
}

/// Whether the stored `object` is a root: [`RootKind::is_root`]'s rule
/// (every kind's: a placeable namespace, no root label), read from what
/// the store keeps typed.
pub fn is_root<K: RootKind>(object: &K::Stored) -> bool {
    naming::is_placeable_namespace(object.stored_namespace().unwrap_or_default())
        && object.label(labels::ROOT_LABEL).is_none()
}

/// The root of the stored leaf `object`, from its labels:
/// `naming::root_of_leaf` of what the store keeps typed.
pub fn root_of_leaf<K: RootKind>(object: &K::Stored) -> Option<(String, String)> {
    Some((
        object.label(labels::ROOT_NAMESPACE_LABEL)?.to_string(),
        object.label(labels::ROOT_LABEL)?.to_string(),
    ))
}

/// The placement selector of the stored root `object` ([`selector_text`]).
pub fn stored_selector<K: RootKind>(object: &K::Stored) -> &str {
    object
        .annotation(labels::PLACEMENT_ANNOTATION)
        .unwrap_or("")
}

/// The clusters the placement annotation of `root` selects.
pub fn placed_by_annotation<K: Resource>(
    root: &K,
    clusters: &[Arc<Cluster>],
) -> Result<Placement, Problem> {
    let selector = placement::parse_selector(selector_text(root)).map_err(|e| Problem {
        reason: reasons::INVALID_PLACEMENT,
        message: e.to_string(),
    })?;
    Ok(placement::place(
        &selector,
        clusters.iter().map(|c| c.as_ref()),
    ))
}

/// The placement selector of a root: its annotation (empty: every cluster).
pub fn selector_text<K: Resource>(root: &K) -> &str {
    root.annotations()
        .get(labels::PLACEMENT_ANNOTATION)
        .map_or("", String::as_str)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::networking::v1::Ingress;
    use serde_json::json;

    use super::*;

    fn ingress(ns: &str, labels: serde_json::Value) -> Ingress {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": ns, "labels": labels,
                         "annotations": {"kcp-ingress.dev/placement": "region=eu"}},
            "spec": {"rules": [{"host": "a.example.test"}]}
        }))
        .unwrap()
    }

    /// The whole-store loops read the stored form; a reconcile reads the
    /// typed object: both must tell roots, leaves and their roots alike.
    #[test]
    fn the_stored_form_is_read_as_the_typed_object() {
        let cases = [
            ingress("shop", json!({"app": "web"})),
            ingress(
                "kcp-ingress-cluster-east",
                json!({"kcp-ingress.dev/root": "web", "kcp-ingress.dev/root-namespace": "shop"}),
            ),
            ingress("kube-system", json!({})),
        ];
        for object in cases {
            let stored = <Ingress as RootKind>::Stored::store(&object);
            assert_eq!(is_root::<Ingress>(&stored), Ingress::is_root(&object));
            assert_eq!(
                root_of_leaf::<Ingress>(&stored),
                naming::root_of_leaf(&object.metadata)
            );
            assert_eq!(stored_selector::<Ingress>(&stored), selector_text(&object));
        }
    }
}
