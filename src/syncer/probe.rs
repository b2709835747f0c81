//! Probing the physical cluster's API (I/O): a look at `/version` every
//! probe interval, and at once when a request or watch failed, keeps the
//! cluster's reachability current for the heartbeat.

use std::sync::Arc;
use std::time::Duration;

use super::context::ClusterCtx;
use super::heartbeat::{self, Reachability, reasons};
use crate::runtime::{self, CancellationToken};

/// How long a probe of the cluster's API may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// At most one probe per this long, however many failures ask for one.
const PROBE_MIN_GAP: Duration = Duration::from_millis(200);
/// The longest wait before a failed connection is tried again within one look.
const RECONNECT_CAP: Duration = Duration::from_millis(100);

/// Looks at the cluster's API every probe interval, and at once when a
/// request or watch failed.
pub async fn probe(ctx: Arc<ClusterCtx>, client: kube::Client, cancel: CancellationToken) {
    let interval = heartbeat::probe_interval(ctx.heartbeat_interval);
    loop {
        let seen = check(&client).await;
        let wait = if seen == Reachability::Reachable {
            interval
        } else {
            interval.min(Duration::from_secs(1))
        };
        ctx.health.set(seen);
        tokio::select! {
            () = tokio::time::sleep(PROBE_MIN_GAP) => {}
            () = cancel.cancelled() => return,
        }
        tokio::select! {
            () = tokio::time::sleep(wait.saturating_sub(PROBE_MIN_GAP)) => {}
            () = ctx.health.probe_requested() => {}
            () = cancel.cancelled() => return,
        }
    }
}

/// One look at the API server (`/version`). A failure to connect is tried
/// once more after 100 ms before it counts; no answer within the timeout
/// counts at once (waiting twice would delay failover).
async fn check(client: &kube::Client) -> Reachability {
    let mut last = Reachability::Unknown;
    for attempt in 0..2 {
        last = match tokio::time::timeout(PROBE_TIMEOUT, client.apiserver_version()).await {
            Ok(Ok(_)) => return Reachability::Reachable,
            Ok(Err(kube::Error::Api(e))) if e.code == 401 || e.code == 403 => {
                return Reachability::unreachable(
                    reasons::KUBECONFIG_INVALID,
                    format!(
                        "the API server refuses the syncer's credentials: {}",
                        e.message
                    ),
                );
            }
            Ok(Err(err)) => {
                Reachability::unreachable(reasons::API_SERVER_UNREACHABLE, err.to_string())
            }
            Err(_) => {
                return Reachability::unreachable(
                    reasons::API_SERVER_UNREACHABLE,
                    format!(
                        "no answer within {}",
                        humantime::format_duration(PROBE_TIMEOUT)
                    ),
                );
            }
        };
        if attempt == 0 {
            tokio::time::sleep(runtime::backoff(1, RECONNECT_CAP)).await;
        }
    }
    last
}
