//! What every component needs around its controllers: Kubernetes clients
//! and one shutdown signal for every task of the process.

pub mod admin;
pub mod lease;
pub mod metrics;

use std::path::{Path, PathBuf};

use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};
pub use tokio_util::sync::CancellationToken;

/// Errors of building a client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot read kubeconfig {path}: {source}")]
    Read {
        path: PathBuf,
        source: KubeconfigError,
    },
    #[error("kubeconfig {path} is not usable: {source}")]
    Load {
        path: PathBuf,
        source: KubeconfigError,
    },
    #[error("no kubeconfig given and none found (KUBECONFIG, ~/.kube/config, in-cluster): {0}")]
    Infer(#[from] kube::config::InferConfigError),
    #[error("cannot build a Kubernetes client: {0}")]
    Build(#[from] kube::Error),
}

/// A client for the cluster in the kubeconfig at `path` (its current context,
/// or `context`), or, without a path, the inferred one: `KUBECONFIG`,
/// `~/.kube/config`, then the in-cluster service account.
pub async fn client(
    path: Option<&Path>,
    context: Option<&str>,
) -> Result<kube::Client, ClientError> {
    let config = match path {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path).map_err(|source| ClientError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            config_from(kubeconfig, context, path).await?
        }
        None => kube::Config::infer().await?,
    };
    Ok(kube::Client::try_from(config)?)
}

/// A client from kubeconfig content held in memory (a Secret's data, say);
/// `origin` names it in errors.
pub async fn client_from_yaml(
    yaml: &str,
    context: Option<&str>,
    origin: &Path,
) -> Result<kube::Client, ClientError> {
    let kubeconfig = Kubeconfig::from_yaml(yaml).map_err(|source| ClientError::Read {
        path: origin.to_path_buf(),
        source,
    })?;
    let config = config_from(kubeconfig, context, origin).await?;
    Ok(kube::Client::try_from(config)?)
}

async fn config_from(
    kubeconfig: Kubeconfig,
    context: Option<&str>,
    origin: &Path,
) -> Result<kube::Config, ClientError> {
    let options = KubeConfigOptions {
        context: context.map(str::to_string),
        ..Default::default()
    };
    kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|source| ClientError::Load {
            path: origin.to_path_buf(),
            source,
        })
}

/// A token cancelled on the first SIGINT or SIGTERM: the one shutdown
/// signal every task of the process watches.
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let mut term = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        ) {
            Ok(term) => term,
            Err(err) => {
                tracing::error!(%err, "cannot listen for SIGTERM; only SIGINT stops the process");
                let _ = tokio::signal::ctrl_c().await;
                cancel.cancel();
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received, shutting down"),
            _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
        }
        cancel.cancel();
    });
    token
}
