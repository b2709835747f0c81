//! The ingress-controller: root Ingresses → per-cluster leaves; leaf status
//! → root status and GlobalIngress.

use crate::cli::ControllerArgs;
use crate::runtime::CancellationToken;

/// Errors that stop the controller.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("the controller is not implemented yet")]
    NotImplemented,
}

/// Runs the controller until `shutdown` is cancelled.
pub async fn run(
    _args: ControllerArgs,
    _shutdown: CancellationToken,
) -> Result<(), ControllerError> {
    Err(ControllerError::NotImplemented)
}
