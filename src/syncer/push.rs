//! Push mode: the controller runs one syncer task for every Cluster that has
//! `spec.kubeconfigSecretRef`.

use std::time::Duration;

use super::SyncerError;
use crate::runtime::CancellationToken;

/// Runs a syncer for every Cluster with a kubeconfig Secret, starting and
/// stopping them as such Clusters come and go, until `shutdown`.
pub async fn run(
    _upstream: kube::Client,
    _resources: Vec<String>,
    _heartbeat_interval: Duration,
    _shutdown: CancellationToken,
) -> Result<(), SyncerError> {
    Err(SyncerError::NotImplemented)
}
