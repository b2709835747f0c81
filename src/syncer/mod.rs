//! The syncer: copies the objects placed on one physical cluster down, their
//! status up, and heartbeats its Cluster.

pub mod push;

use crate::cli::SyncerArgs;
use crate::runtime::CancellationToken;

/// Errors that stop the syncer.
#[derive(Debug, thiserror::Error)]
pub enum SyncerError {
    #[error("the syncer is not implemented yet")]
    NotImplemented,
}

/// Runs the syncer until `shutdown` is cancelled.
pub async fn run(_args: SyncerArgs, _shutdown: CancellationToken) -> Result<(), SyncerError> {
    Err(SyncerError::NotImplemented)
}
