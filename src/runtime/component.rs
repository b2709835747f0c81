//! Component start-up and leadership, the same for every component:
//! admin server and metrics → caches filled → ready → (with election) the
//! Lease → work, until shutdown or until the Lease is lost, which ends the
//! work and makes the component exit with [`LostLeadership`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::watch;
use tracing::{info, warn};

use super::events::{self, Recorder};
use super::readiness::Readiness;
use tokio_util::sync::CancellationToken;

use super::{admin, lease, metrics};
use crate::cli::{AdminArgs, ElectionArgs};

/// Errors of setting up a component.
#[derive(Debug, thiserror::Error)]
pub enum ComponentError {
    #[error(transparent)]
    Admin(#[from] admin::AdminError),
}

/// The component's Lease was lost while it worked: it stops so that the new
/// leader alone writes.
#[derive(Debug, thiserror::Error)]
#[error("lost the leader Lease; stopping so that the new leader alone writes")]
pub struct LostLeadership;

/// What a running component holds: metrics, the admin server's state, its
/// Event recorder and its leadership (always held when election is off).
pub struct Component {
    pub metrics: Arc<metrics::Metrics>,
    pub admin: Arc<admin::AdminState>,
    pub recorder: Recorder,
    leading: watch::Receiver<bool>,
    campaign: Option<tokio::task::JoinHandle<()>>,
}

/// Work done while leading: `token` is cancelled at shutdown or when the
/// Lease is lost.
pub struct Work {
    pub token: CancellationToken,
    lost: Arc<AtomicBool>,
}

/// Starts the admin server and (with `--leader-elect`) the campaign for the
/// component's Lease, named `manager` unless `--lease-name` says otherwise.
pub async fn start_component(
    manager: &str,
    client: &kube::Client,
    admin_args: &AdminArgs,
    election: Option<&ElectionArgs>,
    shutdown: &CancellationToken,
) -> Result<Component, ComponentError> {
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = Arc::new(metrics::Metrics::new(&mut registry));
    let admin = admin::AdminState::new(registry);
    if let Some(address) = admin_args.admin_address {
        admin::serve(address, admin.clone(), shutdown.clone()).await?;
    }
    let (leading, campaign) = if let Some(election) = election.filter(|e| e.leader_elect) {
        let identity = election.identity.clone().unwrap_or_else(default_identity);
        let name = election.lease_name.as_deref().unwrap_or(manager);
        info!(lease = %format!("{}/{name}", election.lease_namespace), %identity, "campaigning for leadership");
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
        (watch::channel(true).1, None)
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
        recorder: events::recorder(client, manager),
        leading,
        campaign,
    })
}

impl Component {
    /// Waits for every watch of `readiness` to list, reports ready (leader
    /// or standby alike: a standby keeps its caches warm and must not hold
    /// up a rolling update), then waits for leadership. `None` when
    /// shutdown comes first.
    pub async fn ready_then_lead(
        &self,
        readiness: &Readiness,
        shutdown: &CancellationToken,
    ) -> Option<Work> {
        if !readiness.wait(shutdown).await {
            return None;
        }
        self.admin.set_ready(true);
        let mut leading = self.leading.clone();
        let leads = tokio::select! {
            result = leading.wait_for(|l| *l) => result.is_ok(),
            () = shutdown.cancelled() => false,
        };
        if !leads {
            return None;
        }
        let token = shutdown.child_token();
        let lost = Arc::new(AtomicBool::new(false));
        let (cancel, flag, mut leading) = (token.clone(), lost.clone(), self.leading.clone());
        tokio::spawn(async move {
            if leading.wait_for(|l| !*l).await.is_ok() && !cancel.is_cancelled() {
                flag.store(true, Ordering::SeqCst);
                warn!("lost leadership; stopping work");
                cancel.cancel();
            }
        });
        Some(Work { token, lost })
    }

    /// Ends the component after its work: waits for the campaign (a held
    /// Lease has then been released) and says whether the work ended
    /// because the Lease was lost.
    pub async fn stopped(self, work: Option<Work>) -> Result<(), LostLeadership> {
        if let Some(campaign) = self.campaign {
            let _ = campaign.await;
        }
        match work {
            Some(work) if work.lost.load(Ordering::SeqCst) => Err(LostLeadership),
            _ => Ok(()),
        }
    }
}

/// `hostname-pid`: unique per replica and readable in the Lease.
pub fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "kcp-ingress".into());
    format!("{host}-{}", std::process::id())
}
