//! The syncer's errors: what stops it ([`SyncerError`]) and what fails one
//! object's sync ([`ReconcileError`], retried with backoff).

use super::naming::ResourceSpecError;
use crate::runtime::{self, ClientError};

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
    #[error(
        "cannot list Cluster {cluster} (clusters.kcp-ingress.dev, fieldSelector \
         metadata.name={cluster}) in the control plane: is the CRD installed, and may this \
         syncer list its Cluster? {source}"
    )]
    OwnCluster {
        cluster: String,
        #[source]
        source: kube::Error,
    },
    #[error(transparent)]
    NotServed(#[from] runtime::NotServed),
    #[error(transparent)]
    Component(#[from] runtime::ComponentError),
}

/// A failed step of one object's sync; the key is retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("control plane: {what}: {source}")]
    Upstream {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("cluster: {what}: {source}")]
    Downstream {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot serialize the object: {0}")]
    Serialize(#[from] serde_json::Error),
}

impl ReconcileError {
    /// Whether the failure says the cluster may be unreachable (no answer,
    /// as opposed to an answer with an error status).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, ReconcileError::Downstream { source, .. }
            if !matches!(source, kube::Error::Api(_)))
    }
}

/// Wraps a control-plane failure while doing `what`.
pub fn up_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> ReconcileError {
    let what = what.into();
    move |source| ReconcileError::Upstream { what, source }
}

/// Wraps a physical-cluster failure while doing `what`.
pub fn down_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> ReconcileError {
    let what = what.into();
    move |source| ReconcileError::Downstream { what, source }
}

/// The HTTP status of an API error, if the server answered with one.
pub fn api_code(err: &kube::Error) -> Option<u16> {
    match err {
        kube::Error::Api(e) => Some(e.code),
        _ => None,
    }
}
