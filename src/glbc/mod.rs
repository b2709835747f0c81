//! The global load-balancer controller: turns GlobalIngresses and cluster
//! health into DNS records.

pub mod dns;

use crate::cli::GlbcArgs;
use crate::runtime::CancellationToken;

/// Errors that stop the glbc.
#[derive(Debug, thiserror::Error)]
pub enum GlbcError {
    #[error("the glbc is not implemented yet")]
    NotImplemented,
}

/// Runs the glbc until `shutdown` is cancelled.
pub async fn run(_args: GlbcArgs, _shutdown: CancellationToken) -> Result<(), GlbcError> {
    Err(GlbcError::NotImplemented)
}
