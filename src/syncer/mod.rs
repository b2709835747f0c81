//! The syncer: copies the objects placed on one physical cluster down, their
//! status up, and heartbeats its Cluster.
//!
//! Everything placed on cluster `C` is in one namespace of the control
//! plane, [`crate::mailbox::cluster_namespace`]`(C)`; the syncer reads and
//! writes nothing else there but its own Cluster (read by name, with
//! `fieldSelector=metadata.name=C`, so that RBAC `resourceNames` allows it,
//! and its status) and Events.
//!
//! Imports run one way, from the wiring down to the pure core:
//!
//! - wiring: this module (pull mode: one cluster, on `runtime::start_component`)
//!   and [`push`] (one syncer per Cluster with a kubeconfig Secret);
//! - [`cluster`]: one cluster's syncer — its Cluster object ([`presence`]),
//!   its downstream client ([`source`]), the heartbeat ([`cluster_status`]),
//!   a session while both are there; once the Cluster is gone, its copies
//!   deleted ([`teardown`], as [`departure`] decides) and its finalizers
//!   released;
//! - [`session`]: one downstream client — discovery, the watches that feed
//!   the caches and the work queue, the workers, the [`probe`];
//! - [`reconcile`]: one object, level-based;
//! - what they share: [`state`] (the session's types, caches, keys and
//!   queue; [`cached`]: how a cache keeps an object; [`copy_record`]: what
//!   it keeps of a copy downstream; [`shared`]: in push
//!   mode, the controller's cache of the leaves, read instead of a watch),
//!   [`upstream`] and [`downstream`] (writes to either side),
//!   [`context`] and [`health`] (one cluster's syncer), [`tracked`] (one
//!   object followed by name), [`queue`], [`discovery`], [`settings`],
//!   [`error`];
//! - pure core: [`status_sent`] (leaf status writes the upstream cache
//!   does not show yet), [`layout`] (which object in the cluster namespace is which
//!   downstream one), [`naming`] (resource types, ownership), [`spec`]
//!   (upstream object → downstream object), [`status`] (leaf status up),
//!   [`heartbeat`] (Cluster conditions).

pub mod cached;
pub mod cluster;
pub mod cluster_status;
pub mod context;
pub mod copied;
pub mod copy_record;
pub mod departure;
pub mod discovery;
pub mod downstream;
pub mod error;
pub mod health;
pub mod heartbeat;
pub mod layout;
pub mod naming;
pub mod presence;
pub mod probe;
pub mod push;
pub mod queue;
pub mod reconcile;
pub mod session;
pub mod settings;
pub mod shared;
pub mod source;
pub mod spec;
pub mod state;
pub mod status;
pub mod status_sent;
pub mod teardown;
pub mod upstream;

pub use self::error::SyncerError;

use tracing::info;

use self::naming::ResourceSpec;
use self::settings::{Settings, check_cluster_name, check_interval};
use self::shared::SharedCaches;
use self::source::DownstreamSource;
use crate::apis::Cluster;
use crate::cli::SyncerArgs;
use crate::labels;
use crate::runtime::{self, CancellationToken, Readiness};

/// Fails early, with a clear message, unless the syncer may list its own
/// Cluster: by name (a field selector), as RBAC `resourceNames` allows.
async fn require_own_cluster(upstream: &kube::Client, cluster: &str) -> Result<(), SyncerError> {
    let params = kube::api::ListParams::default()
        .fields(&format!("metadata.name={cluster}"))
        .limit(1);
    kube::Api::<Cluster>::all(upstream.clone())
        .list_metadata(&params)
        .await
        .map(|_| ())
        .map_err(|source| SyncerError::OwnCluster {
            cluster: cluster.to_string(),
            source,
        })
}

/// Runs the syncer (pull mode) until `shutdown` is cancelled.
pub async fn run(args: SyncerArgs, shutdown: CancellationToken) -> Result<(), SyncerError> {
    let specs = ResourceSpec::parse_all(&args.resources)?;
    check_cluster_name(&args.cluster)?;
    check_interval(args.heartbeat_interval)?;
    let upstream = runtime::client(
        args.upstream_kubeconfig.as_deref(),
        args.upstream_context.as_deref(),
    )
    .await?;
    require_own_cluster(&upstream, &args.cluster).await?;
    let source = match args.downstream_kubeconfig {
        Some(path) => DownstreamSource::File {
            path,
            context: args.downstream_context,
        },
        None => DownstreamSource::InCluster,
    };
    info!(
        cluster = args.cluster,
        resources = %specs.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
        heartbeat_interval = %humantime::format_duration(args.heartbeat_interval),
        "syncer starting (pull mode)"
    );
    let component = runtime::start_component(
        &labels::syncer_manager(&args.cluster),
        &upstream,
        &args.admin,
        None,
        &shutdown,
    )
    .await?;
    // The syncer's caches are per session, so none is waited for: it is
    // ready once it runs, and without election it leads at once.
    let Some(work) = component
        .ready_then_lead(&Readiness::default(), &shutdown)
        .await
    else {
        let _ = component.stopped(None).await;
        return Ok(());
    };
    let settings = Settings {
        specs,
        heartbeat_interval: args.heartbeat_interval,
        namespace_grace: args.namespace_grace,
        metrics: Some(component.metrics.clone()),
        shared: SharedCaches::default(),
    };
    cluster::run(
        upstream,
        args.cluster,
        source,
        settings,
        component.recorder.clone(),
        work.token.clone(),
    )
    .await;
    // Without election the work cannot be lost.
    let _ = component.stopped(Some(work)).await;
    Ok(())
}
