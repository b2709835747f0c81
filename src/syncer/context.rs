//! What every part of one cluster's syncer shares: its Cluster's name and
//! namespace in the control plane, the control-plane client, the settings, the Event recorder and its health.

use std::sync::Arc;
use std::time::Duration;

use crate::runtime::events::Recorder;

use super::health::Health;
use super::naming::ResourceSpec;
use super::shared::SharedCaches;
use crate::runtime::metrics::Metrics;

/// What every part of one cluster's syncer shares.
pub struct ClusterCtx {
    /// Name of the Cluster object.
    pub cluster: String,
    /// The cluster namespace of the control plane
    /// ([`crate::mailbox::cluster_namespace`]): everything placed on the
    /// cluster is there, and the syncer reads and writes nothing outside it
    /// but its Cluster and that Cluster's Events.
    pub namespace: String,
    pub upstream: kube::Client,
    pub specs: Vec<ResourceSpec>,
    pub heartbeat_interval: Duration,
    /// How long an unused namespace the syncer created stays downstream.
    pub namespace_grace: Duration,
    /// Events on upstream objects.
    pub recorder: Recorder,
    pub health: Health,
    /// The syncer's field manager.
    pub manager: String,
    /// Where the count of synced objects goes, when the process serves metrics.
    pub metrics: Option<Arc<Metrics>>,
    /// The controller's caches read instead of watching (push mode).
    pub shared: SharedCaches,
}
