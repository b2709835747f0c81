//! The syncer: copies the objects placed on one physical cluster down, their
//! status up, and heartbeats its Cluster.
//!
//! Pure core: [`naming`] (resource types, placement, ownership), [`spec`]
//! (upstream object → downstream object), [`status`] (leaf status up),
//! [`heartbeat`] (Cluster conditions). I/O: [`cluster`] (one cluster's
//! syncer: Cluster presence, heartbeat, downstream client, finalizer
//! release), [`session`] (watches, caches, work queue, prober),
//! [`reconcile`] (one object), [`source`] (downstream kubeconfig) and
//! [`push`] (one syncer per Cluster with a kubeconfig Secret).

pub mod cluster;
pub mod discovery;
pub mod heartbeat;
pub mod naming;
pub mod push;
pub mod queue;
pub mod reconcile;
pub mod session;
pub mod source;
pub mod spec;
pub mod status;

use std::time::Duration;

use tracing::info;

use self::naming::{ResourceSpec, ResourceSpecError};
use self::source::DownstreamSource;
use crate::apis::Cluster;
use crate::cli::SyncerArgs;
use crate::labels;
use crate::runtime::{self, CancellationToken, ClientError};

/// Errors that stop the syncer.
#[derive(Debug, thiserror::Error)]
pub enum SyncerError {
    #[error("--resources")]
    Resources(#[from] ResourceSpecError),
    #[error("--cluster {0:?}: {1}")]
    ClusterName(String, &'static str),
    #[error("--heartbeat-interval must be at least 100ms")]
    HeartbeatInterval,
    #[error("control plane")]
    Upstream(#[from] ClientError),
    #[error(transparent)]
    NotServed(#[from] runtime::NotServed),
    #[error(transparent)]
    Component(#[from] runtime::ComponentError),
}

/// Runs the syncer until `shutdown` is cancelled.
pub async fn run(args: SyncerArgs, shutdown: CancellationToken) -> Result<(), SyncerError> {
    let specs = ResourceSpec::parse_all(&args.resources)?;
    check_cluster_name(&args.cluster)?;
    check_interval(args.heartbeat_interval)?;
    let upstream = runtime::client(
        args.upstream_kubeconfig.as_deref(),
        args.upstream_context.as_deref(),
    )
    .await?;
    runtime::require_served::<Cluster>(&upstream).await?;
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
    // The syncer's caches are per session; it is ready once it runs.
    component.admin.set_ready(true);
    let settings = cluster::Settings {
        specs,
        heartbeat_interval: args.heartbeat_interval,
        metrics: Some(component.metrics.clone()),
    };
    cluster::run(upstream, args.cluster, source, settings, shutdown).await;
    // Without election the work cannot be lost.
    let _ = component.stopped(None).await;
    Ok(())
}

/// A Cluster name must fit in a label value and a label key's name part.
fn check_cluster_name(name: &str) -> Result<(), SyncerError> {
    let err = |why| Err(SyncerError::ClusterName(name.to_string(), why));
    if name.is_empty() || name.len() > 63 {
        return err("must be 1 to 63 characters (it becomes part of label keys)");
    }
    let ok = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
    let ends = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if !ok || !ends(name.chars().next()) || !ends(name.chars().last()) {
        return err("must be letters, digits, '-', '.' or '_', starting and ending alphanumeric");
    }
    Ok(())
}

fn check_interval(interval: Duration) -> Result<(), SyncerError> {
    if interval < Duration::from_millis(100) {
        return Err(SyncerError::HeartbeatInterval);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_names_fit_in_labels() {
        assert!(check_cluster_name("cluster-1").is_ok());
        assert!(check_cluster_name("eu.west_1").is_ok());
        for bad in ["", "-a", "a-", "a/b", "A B", &"x".repeat(64)] {
            assert!(check_cluster_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn heartbeat_interval_must_be_usable() {
        assert!(check_interval(Duration::ZERO).is_err());
        assert!(check_interval(Duration::from_secs(10)).is_ok());
    }
}
