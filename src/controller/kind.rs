//! What a kind of root contributes to the controller. The pipeline
//! (placement, leaves, dependencies, status merge, GlobalIngress, memory) is
//! written against [`RootKind`]; each kind (Ingress today, Gateway API roots
//! next) implements it in `kinds/`.
//!
//! Roots and their leaves are objects of the same kind: a leaf is the root's
//! copy for one cluster, in that cluster's namespace of the control plane,
//! named and labelled for its root by shared code (`decide::leaf_for`,
//! `naming::leaf_key`): a kind only says what a leaf holds. What a future
//! kind needs beyond this trait:
//! - a Gateway: leaves per cluster like an Ingress; `hosts` are its
//!   listeners' hostnames; `addresses` its `status.addresses`;
//! - an HTTPRoute: its placement follows its parent Gateways rather than an
//!   annotation, so placement would become a method with today's
//!   annotation selector as the default; its leaves' parentRefs point at the
//!   leaf Gateways; its hosts are its hostnames ∩ its parents' listeners'.

use std::fmt::Debug;

use kube::Resource;
use kube::core::NamespaceResourceScope;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::dependencies::DepKey;
use super::merge::ClusterView;
use crate::apis::LoadBalancerAddress;

/// Something wrong with a root that stops it from being placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// CamelCase reason, for the condition and the Event.
    pub reason: &'static str,
    pub message: String,
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
    /// One address a leaf reports in its status (and the root shows merged).
    type Address: Clone + PartialEq + Debug + Send + Sync + 'static;

    /// Whether `object` is a root (a user's object, in a namespace whose
    /// objects are placed: `naming::is_placeable_namespace`) rather than a
    /// leaf or an object that is never placed.
    fn is_root(object: &Self) -> bool;

    /// What is wrong with `root`, if anything (nothing is placed then).
    fn validate(root: &Self) -> Vec<Problem>;

    /// What the leaf of `root` for `cluster` holds (spec, the labels and
    /// annotations that travel); its name, namespace and root labels are
    /// the pipeline's.
    fn leaf(root: &Self, cluster: &str) -> Self;

    /// Whether `current` already is `desired` as far as the controller owns it.
    fn leaf_is_current(current: &Self, desired: &Self) -> bool;

    /// The objects `root` needs on every cluster it is placed on, in the
    /// order they are reported.
    fn dependencies(root: &Self) -> Vec<DepKey>;

    /// The hosts `root` publishes (the GlobalIngress's `spec.hosts`), sorted, unique.
    fn hosts(root: &Self) -> Vec<String>;

    /// The addresses `object` reports in its status.
    fn addresses(object: &Self) -> Vec<Self::Address>;

    /// The root's addresses from its clusters' views.
    fn merge(views: &[ClusterView<Self::Address>]) -> Vec<Self::Address>;

    /// An address as the GlobalIngress shows it (none when it is empty).
    fn global_address(address: &Self::Address) -> Option<LoadBalancerAddress>;

    /// The `status` of a server-side apply that sets the root's addresses.
    fn status_patch(addresses: &[Self::Address]) -> serde_json::Value;
}
