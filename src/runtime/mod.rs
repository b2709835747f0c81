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

/// What every long-running component sets up first: its metrics, the admin
/// server, and leadership (always held when election is off).
pub struct Component {
    pub metrics: std::sync::Arc<metrics::Metrics>,
    pub admin: std::sync::Arc<admin::AdminState>,
    pub leading: tokio::sync::watch::Receiver<bool>,
    campaign: Option<tokio::task::JoinHandle<()>>,
}

impl Component {
    /// Waits for the end of the campaign (after shutdown: a held Lease has
    /// then been released). Call it last, before the process exits.
    pub async fn stopped(self) {
        if let Some(campaign) = self.campaign {
            let _ = campaign.await;
        }
    }
}

/// Errors of setting up a component.
#[derive(Debug, thiserror::Error)]
pub enum ComponentError {
    #[error(transparent)]
    Admin(#[from] admin::AdminError),
}

/// Starts the admin server and (with `--leader-elect`) the campaign for the
/// component's Lease, named `manager` unless `--lease-name` says otherwise.
pub async fn start_component(
    manager: &str,
    client: &kube::Client,
    admin_args: &crate::cli::AdminArgs,
    election: Option<&crate::cli::ElectionArgs>,
    shutdown: &CancellationToken,
) -> Result<Component, ComponentError> {
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = std::sync::Arc::new(metrics::Metrics::new(&mut registry));
    let admin = admin::AdminState::new(registry);
    if let Some(address) = admin_args.admin_address {
        admin::serve(address, admin.clone(), shutdown.clone()).await?;
    }
    let (leading, campaign) = if let Some(election) = election.filter(|e| e.leader_elect) {
        let identity = election.identity.clone().unwrap_or_else(default_identity);
        let name = election.lease_name.as_deref().unwrap_or(manager);
        tracing::info!(lease = %format!("{}/{name}", election.lease_namespace), %identity, "campaigning for leadership");
        let (leading, task) = lease::Elector::new(
            client.clone(),
            &election.lease_namespace,
            name,
            &identity,
            election.lease_duration,
        )
        .run(shutdown.clone());
        (leading, Some(task))
    } else {
        (tokio::sync::watch::channel(true).1, None)
    };
    let gauge = metrics.clone();
    let mut watch_leading = leading.clone();
    tokio::spawn(async move {
        loop {
            gauge
                .leader
                .set(i64::from(*watch_leading.borrow_and_update()));
            if watch_leading.changed().await.is_err() {
                return;
            }
        }
    });
    Ok(Component {
        metrics,
        admin,
        leading,
        campaign,
    })
}

/// `hostname-pid`: unique per replica and readable in the Lease.
fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "kcp-ingress".into());
    format!("{host}-{}", std::process::id())
}

/// Waits until `leading` is true; false if `shutdown` comes first.
pub async fn wait_for_leadership(
    leading: &mut tokio::sync::watch::Receiver<bool>,
    shutdown: &CancellationToken,
) -> bool {
    tokio::select! {
        result = leading.wait_for(|l| *l) => result.is_ok(),
        _ = shutdown.cancelled() => false,
    }
}

/// A token cancelled when `shutdown` is, or when leadership, once held, is
/// lost; the returned flag tells the two apart afterwards.
pub fn work_token(
    mut leading: tokio::sync::watch::Receiver<bool>,
    shutdown: &CancellationToken,
) -> (
    CancellationToken,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    let work = shutdown.child_token();
    let lost = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (cancel, flag) = (work.clone(), lost.clone());
    tokio::spawn(async move {
        if leading.wait_for(|l| !*l).await.is_ok() && !cancel.is_cancelled() {
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
            tracing::warn!("lost leadership; stopping work");
            cancel.cancel();
        }
    });
    (work, lost)
}
