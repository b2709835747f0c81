//! What every reconcile of the controller shares: the caches it reads,
//! the memory it keeps, where it sends follow-up work, its errors, and how
//! a failed one is retried (the one backoff schedule).

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::runtime::events::Recorder;
use futures::channel::mpsc::UnboundedSender;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, PartialObjectMeta, PatchParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use tracing::warn;

use super::copies;
use super::decide;
use super::dependencies::{self, DepKey, DepKind};
use super::finalizing::FinalizersSent;
use super::index::Index;
use super::kind::RootKind;
use super::memory::Memory;
use crate::apis::{Cluster, GlobalIngress, PlacedObject};
use crate::gateway_api::reference_grant::ReferenceGrant;
use crate::labels;
use crate::mailbox;
use crate::runtime::compact::Compact;
use crate::runtime::stored::Stored;
use crate::runtime::{self, metrics::Metrics};
use crate::syncer::copied::Copies;
use crate::syncer::queue::WorkQueue;

/// Errors of one reconcile; the object is retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("Kubernetes API request failed: {0}")]
    Kube(#[from] kube::Error),
    #[error("waiting for {0} leaf object(s) to be deleted")]
    LeavesRemain(usize),
    #[error("waiting for {0} object(s) of a gone Cluster's namespace to be deleted")]
    ClusterObjectsRemain(usize),
    #[error("cannot copy an object: {0}")]
    Copy(String),
    #[error("cannot encode or decode an object: {0}")]
    Encode(#[from] serde_json::Error),
}

/// The longest wait between retries of a failing reconcile.
const MAX_RETRY: Duration = Duration::from_secs(300);

/// Where reconciles and watches send follow-up work.
#[derive(Clone)]
pub struct Triggers<K: RootKind> {
    pub roots: UnboundedSender<ObjectRef<K::Stored>>,
    /// Users' Services, Secrets and ConfigMaps whose copies may need to
    /// change (a queue, not a kube-runtime controller: a deleted object's
    /// copies must go too).
    pub dependencies: Arc<WorkQueue<DepKey>>,
    /// Cluster namespaces to ensure (a Cluster is there) or to empty (it is gone).
    pub cluster_namespaces: Arc<WorkQueue<String>>,
    /// GlobalIngresses to check for being orphans.
    pub globals: UnboundedSender<ObjectRef<Compact<GlobalIngress>>>,
}

impl<K: RootKind> Triggers<K> {
    /// The triggers of a kind of root; `dependencies` is the queue every
    /// kind shares (one set of workers places dependencies for all).
    pub fn new(
        roots: UnboundedSender<ObjectRef<K::Stored>>,
        globals: UnboundedSender<ObjectRef<Compact<GlobalIngress>>>,
        dependencies: Arc<WorkQueue<DepKey>>,
    ) -> Self {
        Self {
            roots,
            dependencies,
            cluster_namespaces: Arc::new(WorkQueue::default()),
            globals,
        }
    }

    pub fn root(&self, namespace: &str, name: &str) {
        let _ = self
            .roots
            .unbounded_send(ObjectRef::new(name).within(namespace));
    }

    pub fn global(&self, namespace: &str, name: &str) {
        let _ = self
            .globals
            .unbounded_send(ObjectRef::new(name).within(namespace));
    }

    pub fn dependency(&self, dep: &DepKey) {
        self.dependencies.add(dep.clone());
    }

    pub fn cluster_namespace(&self, namespace: &str) {
        self.cluster_namespaces.add(namespace.to_string());
    }
}

/// The caches every root kind reads besides its own objects: one watch
/// each, whatever the number of kinds. Services, Secrets and ConfigMaps
/// are metadata only (users' objects and the copies in cluster
/// namespaces); a copy's content is read with a `get` when it is written.
#[derive(Clone)]
pub struct Shared {
    pub clusters: Store<Cluster>,
    pub services: Store<PartialObjectMeta<Service>>,
    pub secrets: Store<PartialObjectMeta<Secret>>,
    pub configmaps: Store<PartialObjectMeta<ConfigMap>>,
    pub placed: Store<PlacedObject>,
    /// Compact (parsed where a reconcile reads one): the controller reads
    /// a GlobalIngress only when it reconciles its root or judges it.
    pub globals: Store<Compact<GlobalIngress>>,
    /// ReferenceGrants (metadata), where the Gateway API is served.
    pub grants: Option<Store<PartialObjectMeta<ReferenceGrant>>>,
    /// The glbcs' presence Leases (`runtime::presence`), by name.
    pub presence: Store<Lease>,
}

impl Shared {
    /// A kind's caches: the shared ones and its `roots`.
    pub fn with_roots<K: RootKind>(&self, roots: Store<K::Stored>) -> Caches<K> {
        Caches {
            roots,
            shared: self.clone(),
        }
    }
}

/// The caches a reconcile reads: its kind's roots and leaves, and the
/// shared ones (reached through `Deref`, as `caches.clusters`).
#[derive(Clone)]
pub struct Caches<K: RootKind> {
    /// Roots and leaves, as the kind stores them (`RootKind::Stored`):
    /// read one with [`Caches::root`].
    pub roots: Store<K::Stored>,
    pub shared: Shared,
}

impl<K: RootKind> std::ops::Deref for Caches<K> {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.shared
    }
}

impl<K: RootKind> Caches<K> {
    /// The root or leaf `ns`/`name`, typed (parsed from a compact store).
    pub fn root(&self, ns: &str, name: &str) -> Option<Arc<K>> {
        let stored = self.roots.get(&ObjectRef::new(name).within(ns))?;
        K::Stored::typed(&stored)
    }

    /// `read` applied to the metadata of a user's object, if it exists.
    pub fn dependency<T>(
        &self,
        (kind, ns, name): &DepKey,
        read: impl FnOnce(&kube::core::ObjectMeta) -> T,
    ) -> Option<T> {
        self.metadata(*kind, ns, name, false).map(|m| read(&m))
    }

    pub fn exists(&self, dep: &DepKey) -> bool {
        self.dependency(dep, |_| ()).is_some()
    }

    /// The metadata of the object of `kind` at `ns/name`: the user's
    /// object, or (`copy`) the copy of that kind in a cluster namespace
    /// (a `PlacedObject` for a Service).
    pub fn metadata(
        &self,
        kind: DepKind,
        ns: &str,
        name: &str,
        copy: bool,
    ) -> Option<kube::core::ObjectMeta> {
        match (kind, copy) {
            (DepKind::Service, false) => self
                .services
                .get(&ObjectRef::new(name).within(ns))
                .map(|o| o.metadata.clone()),
            (DepKind::Service, true) => self
                .placed
                .get(&ObjectRef::new(name).within(ns))
                .map(|o| o.metadata.clone()),
            (DepKind::Secret, _) => self
                .secrets
                .get(&ObjectRef::new(name).within(ns))
                .map(|o| o.metadata.clone()),
            (DepKind::ConfigMap, _) => self
                .configmaps
                .get(&ObjectRef::new(name).within(ns))
                .map(|o| o.metadata.clone()),
            (DepKind::ReferenceGrant, false) => self
                .grants
                .as_ref()?
                .get(&ObjectRef::new(name).within(ns))
                .map(|o| o.metadata.clone()),
            (DepKind::ReferenceGrant, true) => self
                .placed
                .get(&ObjectRef::new(name).within(ns))
                .map(|o| o.metadata.clone()),
        }
    }
}

/// What a kind of root tells the placement of dependencies, which is
/// shared by every kind: a Secret may be needed by an Ingress and a
/// Gateway, on different clusters.
pub trait Dependents: Send + Sync {
    /// The clusters the live roots of this kind that reference `dep` are
    /// placed on.
    fn clusters_needing(&self, dep: &DepKey, clusters: &[Arc<Cluster>]) -> BTreeSet<String>;
}

/// Every kind's [`Dependents`], set once all kinds are wired.
pub type Peers = Arc<OnceLock<Vec<Arc<dyn Dependents>>>>;

/// Everything a reconcile reads from, remembers, and writes through.
pub struct Context<K: RootKind> {
    pub client: kube::Client,
    pub caches: Caches<K>,
    /// The other cached objects the kind reads.
    pub world: Arc<K::World>,
    /// Every kind's dependents (this one's included).
    pub peers: Peers,
    pub index: Arc<Index>,
    pub memory: Arc<Memory>,
    pub triggers: Triggers<K>,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub health_threshold: Duration,
    /// What the push-mode syncers in this process did with the leaves
    /// (`None`: no push-mode syncers): the report windows start from it.
    pub copies: Option<Arc<Copies>>,
    /// The roots whose cleanup finalizer was added moments ago
    /// ([`FinalizersSent`]).
    pub finalizers_sent: FinalizersSent,
}

impl<K: RootKind> Dependents for Context<K> {
    fn clusters_needing(&self, dep: &DepKey, clusters: &[Arc<Cluster>]) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        if clusters.is_empty() {
            return out;
        }
        for (root_ns, root_name) in self.index.dependents(dep) {
            let Some(root) = self.caches.root(&root_ns, &root_name) else {
                continue;
            };
            if root.meta().deletion_timestamp.is_some() || !K::is_ours(&root, &self.world) {
                continue;
            }
            if !K::permits(&root, dep, &self.world) {
                continue;
            }
            if let Some(p) = decide::targets_of(&*root, clusters, &self.world) {
                out.extend(p.targets);
            }
            // No root can add a cluster then: the rest are not read (each
            // read is a parse of a compact root; a Service shared by every
            // root of a bulk is placed often).
            if clusters.iter().all(|c| out.contains(&c.name_any())) {
                break;
            }
        }
        out
    }
}

impl<K: RootKind> Context<K> {
    /// The clusters the roots of every kind that reference `dep` are placed on.
    pub fn all_clusters_needing(
        &self,
        dep: &DepKey,
        clusters: &[Arc<Cluster>],
    ) -> BTreeSet<String> {
        match self.peers.get() {
            Some(peers) => peers
                .iter()
                .flat_map(|p| p.clusters_needing(dep, clusters))
                .collect(),
            None => self.clusters_needing(dep, clusters),
        }
    }

    /// The clusters whose syncer reports a conflict on a copy of `dep`: a
    /// `conflict.kcp-ingress.dev/<cluster>` annotation on the copy in
    /// `<cluster>`'s own namespace (what another cluster's annotation
    /// claims there does not count).
    pub fn conflicts(&self, dep: &DepKey) -> Vec<String> {
        let Ok(name) = copies::copy_name(dep) else {
            return Vec::new();
        };
        let mut out: Vec<String> = self
            .index
            .copies(dep)
            .iter()
            .filter_map(|ns| {
                self.caches
                    .metadata(dep.0, ns, &name, true)
                    .map(|m| (ns, m))
            })
            .flat_map(|(ns, meta)| {
                dependencies::conflicted_clusters(&meta)
                    .into_iter()
                    .filter(|c| mailbox::cluster_namespace(c) == *ns)
                    .collect::<Vec<_>>()
            })
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Accounts for one finished reconcile of a root in metrics; a success
    /// resets its backoff.
    pub fn root_finished(&self, root: &K, started: Instant, ok: bool, failed: bool) {
        self.metrics
            .reconciled("roots", started.elapsed().as_secs_f64(), failed);
        if let (true, Some(uid)) = (ok, root.uid()) {
            self.memory.root_succeeded(&uid);
        }
    }

    /// Accounts for one finished reconcile of a dependency.
    pub fn dependency_finished(&self, dep: &DepKey, started: Instant, ok: bool) {
        self.metrics
            .reconciled(dep.0.metric_name(), started.elapsed().as_secs_f64(), !ok);
        if ok {
            self.memory.dependency_succeeded(dep);
        }
    }
}

/// `Kind namespace/name`, for logs.
pub fn object_key(kind: &str, meta: &kube::core::ObjectMeta) -> String {
    format!(
        "{kind} {}/{}",
        meta.namespace.as_deref().unwrap_or(""),
        meta.name.as_deref().unwrap_or("")
    )
}

/// Server-side apply as the controller's field manager.
pub fn apply_params() -> PatchParams {
    PatchParams::apply(labels::CONTROLLER_MANAGER).force()
}

/// Deletes `ns/name` of type `D` if it is still the object of `uid`; gone,
/// or replaced by another object of its name, is fine.
pub async fn delete_with_uid<D>(
    client: &kube::Client,
    ns: &str,
    name: &str,
    uid: Option<String>,
) -> Result<(), ReconcileError>
where
    D: kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let params = DeleteParams {
        preconditions: uid.map(|uid| Preconditions {
            uid: Some(uid),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match Api::<D>::namespaced(client.clone(), ns)
        .delete(name, &params)
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Retries `key` after its `failures`-th consecutive failure, on the one
/// backoff schedule.
pub fn retry(key: &str, failures: u32, error: &dyn std::fmt::Display) -> Action {
    Action::requeue(retry_delay(key, failures, error))
}

/// How long `key` waits after its `failures`-th consecutive failure (logged).
pub fn retry_delay(key: &str, failures: u32, error: &dyn std::fmt::Display) -> Duration {
    let delay = runtime::backoff(failures, MAX_RETRY);
    warn!(object = %key, attempt = failures, retry_in = ?delay, "reconcile failed: {error}");
    delay
}
