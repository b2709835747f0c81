//! What every component stands on: Kubernetes clients, the one shutdown
//! signal of the process, watching ([`watch`]), readiness, one backoff
//! schedule, start-up and leadership ([`component`]), Events, metrics and
//! the admin server. Components are wiring plus their own logic.

pub mod admin;
pub mod backoff;
pub mod compact;
pub mod component;
pub mod events;
pub mod finalizers;
pub mod lazy_meta;
pub mod lease;
pub mod list;
pub mod malloc;
pub mod metrics;
pub mod names;
pub mod presence;
pub mod readiness;
pub mod stored;
pub mod tracked;
pub mod watch;

pub use backoff::backoff;
pub use component::{Component, ComponentError, LostLeadership, Work, start_component};
pub use readiness::Readiness;
pub use watch::{Change, Watch};

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

/// The control plane does not serve a type a component needs, or its
/// credentials may not list it.
#[derive(Debug, thiserror::Error)]
#[error(
    "the control plane does not serve {what}, or these credentials may not list it \
     (apply config/crd/ with kubectl apply -k config/crd, check the kubeconfig's \
     permissions): {source}"
)]
pub struct NotServed {
    what: String,
    source: kube::Error,
}

/// Fails early, with a clear message, unless `K` can be listed (one object,
/// metadata only).
pub async fn require_served<K>(client: &kube::Client) -> Result<(), NotServed>
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    kube::Api::<K>::all(client.clone())
        .list_metadata(&kube::api::ListParams::default().limit(1))
        .await
        .map(|_| ())
        .map_err(|source| NotServed {
            what: format!("{}.{}", K::plural(&()), K::group(&()))
                .trim_end_matches('.')
                .to_string(),
            source,
        })
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
