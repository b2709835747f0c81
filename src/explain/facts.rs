//! What `explain` reads, as plain values: gathered by [`gather`](super::gather)
//! and [`dns`](super::dns) (I/O), judged by [`judge`](super::judge) (pure).
//! Generic over the root kind, so that a Gateway root reuses all of it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use crate::apis::{Cluster, GlobalIngress};
use crate::controller::dependencies::DepKey;
use crate::controller::kind::RootKind;

/// Everything known about one root.
pub struct Facts<K: RootKind> {
    pub namespace: String,
    pub name: String,
    /// The root, when it exists.
    pub root: Option<K>,
    pub clusters: Vec<Arc<Cluster>>,
    /// Objects of kind `K` at `(namespace, name)` in the cluster
    /// namespaces: the root's leaves, labelled or where they belong.
    pub objects: BTreeMap<(String, String), Arc<K>>,
    /// `(namespace, name)` of the objects labelled as the root's leaves.
    pub labelled_leaves: BTreeSet<(String, String)>,
    /// What the root references, in its order.
    pub dependencies: Vec<Dependency>,
    pub global: Option<GlobalIngress>,
    /// Per placed cluster: what its API server shows.
    pub downstream: BTreeMap<String, Downstream>,
    /// What the DNS server holds and answers; `None` without `--dns-server`.
    pub dns: Option<DnsFacts>,
    pub now: Timestamp,
    pub health_threshold: Duration,
    /// The other objects the kind reads (Gateway API roots: the Gateways,
    /// routes, ReferenceGrants and GatewayClasses), listed once.
    pub world: K::World,
    /// A route's parent Gateways of ours and their GlobalIngresses (a
    /// route has none of its own: its names are published through them).
    pub parents: Vec<ParentGlobal>,
}

/// One DNS name a root publishes, and the GlobalIngress that publishes it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Published {
    pub host: String,
    /// `(namespace, name)` of the GlobalIngress.
    pub global: (String, String),
}

/// A parent Gateway of a route and the GlobalIngress that publishes its names.
#[derive(Debug, Clone)]
pub struct ParentGlobal {
    /// `(namespace, name)` of the Gateway.
    pub gateway: (String, String),
    /// The name of its GlobalIngress (in the Gateway's namespace).
    pub global_name: String,
    pub global: Option<GlobalIngress>,
}

/// A dependency in the control plane and its copies in the cluster namespaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    pub key: DepKey,
    pub exists: bool,
    /// Per cluster looked at: its copy in that cluster's namespace.
    pub copies: BTreeMap<String, PlacedCopy>,
}

/// An object in a cluster namespace of the control plane, as far as
/// `explain` judges it (never its content).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlacedCopy {
    /// `namespace/name` of the copy in the control plane.
    pub at: String,
    pub present: bool,
    /// What that cluster's syncer reports on it: the conflict and
    /// sync-error annotations for that cluster.
    pub conflict: Option<String>,
    pub sync_error: Option<String>,
}

/// What the API server of one placed cluster shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Downstream {
    /// Pull mode (no kubeconfig Secret): `explain` cannot look.
    PullMode,
    /// The kubeconfig Secret cannot be used (refused, missing, invalid).
    NoClient(String),
    /// The API server did not answer.
    Unreachable(String),
    /// The copies it holds, by `Kind namespace/name`.
    Reached(Vec<DownstreamCopy>),
}

/// One object a placed cluster should hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownstreamCopy {
    /// `Kind namespace/name` downstream.
    pub subject: String,
    pub state: CopyState,
}

/// How a downstream copy stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyState {
    Missing,
    /// An object of that name kcp-ingress does not manage (or another cluster's syncer does).
    NotOurs,
    /// Ours, but not what the syncer would apply now.
    Stale,
    /// Ours and current (or, for a Secret, whose content is never read: ours).
    Current,
    /// The request failed.
    Error(String),
}

/// What the DNS server shows for a root's hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsFacts {
    pub server: SocketAddr,
    /// The owner id `explain` expects in the ownership records.
    pub owner: String,
    /// Zones the glbc writes to (empty: not given).
    pub zones: Vec<String>,
    /// Whether the server accepts the TSIG key (a signed zone transfer),
    /// when one was given: `Ok(())` or why not.
    pub key_check: Option<Result<(), String>>,
    /// Per host (as the root spells it).
    pub hosts: BTreeMap<String, HostFacts>,
}

/// The DNS server's view of one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFacts {
    /// The TXT strings at its ownership name, or why the query failed.
    pub ownership: Result<Vec<String>, String>,
    /// The addresses (A, AAAA) or CNAME target it answers, sorted; or why
    /// the query failed. Empty: no answer (NXDOMAIN or no records).
    pub answers: Result<BTreeSet<String>, String>,
}
