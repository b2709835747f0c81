//! What a cluster's syncer knows of its physical cluster, for the heartbeat:
//! the last reachability seen (with a way to ask for a probe now) and what
//! discovery found of each `--resources` type.

use std::sync::Mutex;

use kube::runtime::reflector::Store;
use tokio::sync::{Notify, watch};
use tracing::{info, warn};

use super::copy_record::CopyRecord;
use super::heartbeat::Reachability;
use crate::apis::SyncedResource;

/// Shared by the sessions, the prober and the heartbeat of one cluster.
pub struct Health {
    reach: watch::Sender<Reachability>,
    probe: Notify,
    types: Mutex<Vec<TypeReport>>,
    cluster: String,
}

/// One `--resources` type as reported in `status.syncedResources`.
pub struct TypeReport {
    pub resource: String,
    pub served: bool,
    pub message: Option<String>,
    /// The downstream copies, while a session runs.
    pub copies: Option<Store<CopyRecord>>,
}

impl Health {
    pub fn new(cluster: &str) -> Self {
        Self {
            reach: watch::channel(Reachability::Unknown).0,
            probe: Notify::new(),
            types: Mutex::new(Vec::new()),
            cluster: cluster.to_string(),
        }
    }

    /// Records what was seen of the cluster's API; a change wakes the heartbeat.
    pub fn set(&self, seen: Reachability) {
        let cluster = &self.cluster;
        self.reach.send_if_modified(|current| {
            if *current == seen {
                return false;
            }
            match &seen {
                Reachability::Reachable => info!(cluster, "the cluster's API server is reachable"),
                Reachability::Unreachable { reason, message } => {
                    warn!(cluster, reason, "the cluster is not reachable: {message}");
                }
                Reachability::Unknown => {}
            }
            *current = seen;
            true
        });
    }

    /// The last reachability seen, and its changes.
    pub fn subscribe(&self) -> watch::Receiver<Reachability> {
        self.reach.subscribe()
    }

    /// Asks the prober to look at the cluster now (a request or watch failed).
    pub fn probe_now(&self) {
        self.probe.notify_one();
    }

    /// Resolves when someone asked for a probe.
    pub async fn probe_requested(&self) {
        self.probe.notified().await;
    }

    /// Sets what discovery found, with the stores of the copies.
    pub fn set_types(&self, reports: Vec<TypeReport>) {
        *self.types.lock().unwrap_or_else(|p| p.into_inner()) = reports;
    }

    /// Forgets the stores of an ended session (the counts are no longer known).
    pub fn session_ended(&self) {
        for report in self
            .types
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter_mut()
        {
            report.copies = None;
        }
    }

    /// The types as `status.syncedResources` reports them.
    pub fn synced_resources(&self) -> Vec<SyncedResource> {
        self.types
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|r| SyncedResource {
                resource: r.resource.clone(),
                served: r.served,
                objects: r
                    .copies
                    .as_ref()
                    .map(|s| u32::try_from(s.len()).unwrap_or(u32::MAX)),
                message: r.message.clone(),
            })
            .collect()
    }
}
