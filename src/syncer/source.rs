//! Where a syncer gets its client for the physical cluster: a kubeconfig
//! file (pull mode), the in-cluster service account (pull mode, no file), or
//! a kubeconfig Secret in the control plane (push mode). Each is followed
//! while the syncer runs: a file or config that cannot be used is retried, a
//! changed file or Secret gives a new client.

use std::path::{Path, PathBuf};
use std::pin::pin;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::runtime::watcher;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{info, warn};

use super::heartbeat::reasons;
use crate::apis::KubeconfigSecretRef;
use crate::runtime::tracked::{Tracked, track};
use crate::runtime::{self, CancellationToken, Readiness, Watch};

/// Default key of the kubeconfig in a kubeconfig Secret.
pub const DEFAULT_SECRET_KEY: &str = "kubeconfig";

/// Where the downstream client comes from.
#[derive(Clone, Debug)]
pub enum DownstreamSource {
    /// A kubeconfig file, optionally a context of it.
    File {
        path: PathBuf,
        context: Option<String>,
    },
    /// The service account of the pod the syncer runs in.
    InCluster,
    /// A kubeconfig Secret in the control plane.
    Secret(KubeconfigSecretRef),
}

/// The current downstream client, or why there is none.
#[derive(Clone)]
pub enum ClientState {
    /// Not looked at yet.
    Pending,
    /// A client; `generation` changes whenever the configuration does.
    Ready {
        client: kube::Client,
        generation: u64,
    },
    /// No usable configuration.
    Failed {
        reason: &'static str,
        message: String,
    },
}

/// Follows `source` on a task in `tasks` until `cancel`; the receiver holds
/// the current client state. A failing file or in-cluster configuration is
/// retried with backoff up to `retry`, a working file is re-read every `retry` and a new
/// client made when its content changed.
pub fn follow(
    source: DownstreamSource,
    upstream: kube::Client,
    cluster: String,
    retry: Duration,
    cancel: CancellationToken,
    tasks: &mut JoinSet<()>,
) -> watch::Receiver<ClientState> {
    let (tx, rx) = watch::channel(ClientState::Pending);
    tasks.spawn(async move {
        match source {
            DownstreamSource::File { path, context } => {
                follow_file(&path, context.as_deref(), &cluster, retry, &tx, &cancel).await;
            }
            DownstreamSource::InCluster => follow_in_cluster(&cluster, retry, &tx, &cancel).await,
            DownstreamSource::Secret(secret) => {
                follow_secret(upstream, &secret, &cluster, &tx, &cancel).await;
            }
        }
    });
    rx
}

async fn follow_file(
    path: &Path,
    context: Option<&str>,
    cluster: &str,
    retry: Duration,
    tx: &watch::Sender<ClientState>,
    cancel: &CancellationToken,
) {
    let mut generation = 0;
    let mut failures = 0u32;
    let mut loaded: Option<Vec<u8>> = None;
    loop {
        let content = tokio::fs::read(path).await;
        let changed = match &content {
            Ok(bytes) => loaded.as_ref() != Some(bytes),
            Err(_) => loaded.is_some() || matches!(*tx.borrow(), ClientState::Pending),
        };
        if changed {
            let state = match runtime::client(Some(path), context).await {
                Ok(client) => {
                    generation += 1;
                    info!(cluster, kubeconfig = %path.display(), "downstream client ready");
                    loaded = content.ok();
                    ClientState::Ready { client, generation }
                }
                Err(err) => {
                    warn!(cluster, %err, "cannot use the downstream kubeconfig; retrying with backoff up to {}",
                        humantime::format_duration(retry));
                    loaded = None;
                    ClientState::Failed {
                        reason: reasons::KUBECONFIG_INVALID,
                        message: err.to_string(),
                    }
                }
            };
            tx.send_replace(state);
        }
        // A working file is re-read every `retry`; a failing one sooner,
        // backing off up to `retry`.
        let delay = if matches!(*tx.borrow(), ClientState::Failed { .. }) {
            failures += 1;
            runtime::backoff(failures, retry)
        } else {
            failures = 0;
            retry
        };
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = cancel.cancelled() => return,
        }
    }
}

async fn follow_in_cluster(
    cluster: &str,
    retry: Duration,
    tx: &watch::Sender<ClientState>,
    cancel: &CancellationToken,
) {
    let mut failures = 0u32;
    loop {
        let made = kube::Config::incluster()
            .map_err(|e| {
                format!("no downstream kubeconfig given and no in-cluster configuration: {e}")
            })
            .and_then(|config| {
                kube::Client::try_from(config)
                    .map_err(|e| format!("cannot build the in-cluster client: {e}"))
            });
        match made {
            Ok(client) => {
                info!(
                    cluster,
                    "downstream client ready (in-cluster service account)"
                );
                tx.send_replace(ClientState::Ready {
                    client,
                    generation: 1,
                });
                return;
            }
            Err(message) => {
                failures += 1;
                if failures == 1 || failures.is_multiple_of(10) {
                    warn!(cluster, %message, "retrying with backoff up to {}", humantime::format_duration(retry));
                }
                tx.send_replace(ClientState::Failed {
                    reason: reasons::KUBECONFIG_INVALID,
                    message,
                });
            }
        }
        tokio::select! {
            () = tokio::time::sleep(runtime::backoff(failures, retry)) => {}
            () = cancel.cancelled() => return,
        }
    }
}

async fn follow_secret(
    upstream: kube::Client,
    secret_ref: &KubeconfigSecretRef,
    cluster: &str,
    tx: &watch::Sender<ClientState>,
    cancel: &CancellationToken,
) {
    if let Some(message) =
        crate::mailbox::refused_kubeconfig_ref(&secret_ref.namespace, &secret_ref.name)
    {
        // Never read: a Cluster's condition says why, until its spec changes
        // (which restarts this syncer) or it goes.
        warn!(cluster, "{message}");
        tx.send_replace(ClientState::Failed {
            reason: crate::labels::reasons::KUBECONFIG_SECRET_REFUSED,
            message,
        });
        cancel.cancelled().await;
        return;
    }
    let key = secret_ref.key.as_deref().unwrap_or(DEFAULT_SECRET_KEY);
    let what = format!(
        "Secret {}/{} (key {key})",
        secret_ref.namespace, secret_ref.name
    );
    let api: Api<Secret> = Api::namespaced(upstream, &secret_ref.namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={}", secret_ref.name));
    let watch = Watch::new(format!("kubeconfig {what}"), api).config(config);
    let mut seen = pin!(track(watch, &Readiness::default(), cancel));
    let mut generation = 0;
    let mut loaded: Option<Vec<u8>> = None;
    while let Some(tracked) = seen.next().await {
        let current = match tracked {
            Tracked::Failed(err) => {
                if matches!(*tx.borrow(), ClientState::Pending) {
                    tx.send_replace(ClientState::Failed {
                        reason: reasons::KUBECONFIG_SECRET_NOT_FOUND,
                        message: format!("cannot read the kubeconfig {what}: {err}"),
                    });
                }
                continue;
            }
            Tracked::Present(secret) => Some(secret),
            Tracked::Absent => None,
        };
        let bytes = current
            .as_ref()
            .and_then(|s| s.data.as_ref())
            .and_then(|d| d.get(key))
            .map(|b| b.0.clone());
        let Some(bytes) = bytes else {
            let message = if current.is_some() {
                format!("the kubeconfig {what} has no key {key}")
            } else {
                format!("the kubeconfig {what} does not exist")
            };
            if loaded.is_some() || !matches!(*tx.borrow(), ClientState::Failed { .. }) {
                warn!(cluster, "{message}");
            }
            loaded = None;
            tx.send_replace(ClientState::Failed {
                reason: reasons::KUBECONFIG_SECRET_NOT_FOUND,
                message,
            });
            continue;
        };
        if loaded.as_ref() == Some(&bytes) {
            continue;
        }
        let origin = PathBuf::from(&what);
        let state = match std::str::from_utf8(&bytes) {
            Err(_) => Err(format!("the kubeconfig in {what} is not UTF-8 text")),
            Ok(yaml) => runtime::client_from_yaml(yaml, None, &origin)
                .await
                .map_err(|e| e.to_string()),
        };
        loaded = Some(bytes);
        match state {
            Ok(client) => {
                generation += 1;
                info!(
                    cluster,
                    "downstream client ready from the kubeconfig {what}"
                );
                tx.send_replace(ClientState::Ready { client, generation });
            }
            Err(message) => {
                warn!(cluster, %message, "cannot use the kubeconfig");
                tx.send_replace(ClientState::Failed {
                    reason: reasons::KUBECONFIG_INVALID,
                    message,
                });
            }
        }
    }
}
