//! What every reconcile of the controller shares: the caches it reads,
//! the memory it keeps, where it sends follow-up work, its errors, and how
//! a failed one is retried (the one backoff schedule).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::runtime::events::Recorder;
use futures::channel::mpsc::UnboundedSender;
use k8s_openapi::api::core::v1::{Secret, Service};
use kube::ResourceExt;
use kube::api::{PartialObjectMeta, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use tracing::warn;

use super::dependencies::{self, DepKey, DepKind};
use super::index::Index;
use super::kind::RootKind;
use super::memory::Memory;
use crate::apis::{Cluster, GlobalIngress};
use crate::labels;
use crate::runtime::{self, metrics::Metrics};

/// Errors of one reconcile; the object is retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("Kubernetes API request failed: {0}")]
    Kube(#[from] kube::Error),
    #[error("waiting for {0} leaf object(s) to be deleted")]
    LeavesRemain(usize),
    #[error("cannot encode an object: {0}")]
    Encode(#[from] serde_json::Error),
}

/// The longest wait between retries of a failing reconcile.
const MAX_RETRY: Duration = Duration::from_secs(300);

/// Where reconciles and watches send follow-up work.
#[derive(Clone)]
pub struct Triggers<K: RootKind> {
    pub roots: UnboundedSender<ObjectRef<K>>,
    pub services: UnboundedSender<ObjectRef<PartialObjectMeta<Service>>>,
    pub secrets: UnboundedSender<ObjectRef<PartialObjectMeta<Secret>>>,
    /// GlobalIngresses to check for being orphans.
    pub globals: UnboundedSender<ObjectRef<GlobalIngress>>,
}

impl<K: RootKind> Triggers<K> {
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

    pub fn dependency(&self, (kind, namespace, name): &DepKey) {
        match kind {
            DepKind::Service => {
                let _ = self
                    .services
                    .unbounded_send(ObjectRef::new(name).within(namespace));
            }
            DepKind::Secret => {
                let _ = self
                    .secrets
                    .unbounded_send(ObjectRef::new(name).within(namespace));
            }
        }
    }
}

/// The caches a reconcile reads.
#[derive(Clone)]
pub struct Caches<K: RootKind> {
    /// Roots and leaves.
    pub roots: Store<K>,
    pub clusters: Store<Cluster>,
    pub services: Store<PartialObjectMeta<Service>>,
    pub secrets: Store<PartialObjectMeta<Secret>>,
    pub globals: Store<GlobalIngress>,
}

impl<K: RootKind> Caches<K> {
    /// `read` applied to the metadata of a dependency, if it exists.
    pub fn dependency<T>(
        &self,
        (kind, ns, name): &DepKey,
        read: impl FnOnce(&kube::core::ObjectMeta) -> T,
    ) -> Option<T> {
        match kind {
            DepKind::Service => self
                .services
                .get(&ObjectRef::new(name).within(ns))
                .map(|o| read(&o.metadata)),
            DepKind::Secret => self
                .secrets
                .get(&ObjectRef::new(name).within(ns))
                .map(|o| read(&o.metadata)),
        }
    }

    pub fn exists(&self, dep: &DepKey) -> bool {
        self.dependency(dep, |_| ()).is_some()
    }

    /// The clusters whose syncer reports a conflict on a dependency.
    pub fn conflicts(&self, dep: &DepKey) -> Vec<String> {
        self.dependency(dep, dependencies::conflicted_clusters)
            .unwrap_or_default()
    }
}

/// Everything a reconcile reads from, remembers, and writes through.
pub struct Context<K: RootKind> {
    pub client: kube::Client,
    pub caches: Caches<K>,
    pub index: Arc<Index>,
    pub memory: Arc<Memory>,
    pub triggers: Triggers<K>,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub health_threshold: Duration,
}

impl<K: RootKind> Context<K> {
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

/// Retries `key` after its `failures`-th consecutive failure, on the one
/// backoff schedule.
pub fn retry(key: &str, failures: u32, error: &dyn std::fmt::Display) -> Action {
    let delay = runtime::backoff(failures, MAX_RETRY);
    warn!(object = %key, attempt = failures, retry_in = ?delay, "reconcile failed: {error}");
    Action::requeue(delay)
}
