//! Whether the syncer's Cluster object is there (I/O): the Cluster
//! followed by name, as a value that changes.

use std::pin::pin;
use std::sync::Arc;

use futures::StreamExt;
use kube::api::Api;
use kube::runtime::watcher;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::apis::Cluster;
use crate::runtime::tracked::{Tracked, track};
use crate::runtime::{CancellationToken, Readiness, Watch};

/// Whether the Cluster object is there.
#[derive(Clone, Debug)]
pub enum Presence {
    /// Not listed yet.
    Unknown,
    Absent,
    Present(Arc<Cluster>),
}

impl Presence {
    /// Present and not being deleted.
    pub fn active(&self) -> Option<&Cluster> {
        match self {
            Presence::Present(c) if c.metadata.deletion_timestamp.is_none() => Some(c),
            _ => None,
        }
    }

    pub fn gone(&self) -> bool {
        match self {
            Presence::Unknown => false,
            Presence::Absent => true,
            Presence::Present(c) => c.metadata.deletion_timestamp.is_some(),
        }
    }
}

/// Follows the Cluster object `cluster` on a task in `tasks` until `shutdown`.
pub fn follow(
    upstream: &kube::Client,
    cluster: &str,
    shutdown: CancellationToken,
    tasks: &mut JoinSet<()>,
) -> watch::Receiver<Presence> {
    let (tx, rx) = watch::channel(Presence::Unknown);
    let watch = Watch::new(
        format!("Cluster {cluster}"),
        Api::<Cluster>::all(upstream.clone()),
    )
    .config(watcher::Config::default().fields(&format!("metadata.name={cluster}")))
    .without_managed_fields();
    let seen = track(watch, &Readiness::default(), &shutdown);
    tasks.spawn(async move {
        let mut seen = pin!(seen);
        while let Some(tracked) = seen.next().await {
            match tracked {
                Tracked::Present(c) => tx.send_replace(Presence::Present(c)),
                Tracked::Absent => tx.send_replace(Presence::Absent),
                // The runtime logs the failure and retries; what was seen holds.
                Tracked::Failed(_) => continue,
            };
        }
    });
    rx
}
