//! The Cluster's status as the syncer writes it (I/O): every heartbeat
//! interval, and at once when the cluster's reachability changes; an Event
//! on the Cluster when reachability changes class.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::runtime::events::{Event, EventType};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::context::ClusterCtx;
use super::heartbeat::{self, Reachability};
use super::presence::Presence;
use crate::apis::Cluster;
use crate::labels;
use crate::runtime::metrics::ClusterLabel;
use crate::runtime::{self, CancellationToken};

/// The longest a failed heartbeat write waits before it is tried again.
const HEARTBEAT_RETRY_CAP: Duration = Duration::from_secs(1);

/// Writes the Cluster's status every heartbeat interval, and at once when
/// the cluster's reachability changes.
pub async fn heartbeats(
    ctx: Arc<ClusterCtx>,
    presence: watch::Receiver<Presence>,
    shutdown: CancellationToken,
) {
    let api: Api<Cluster> = Api::all(ctx.upstream.clone());
    let params = PatchParams::apply(&ctx.manager).force();
    let mut reach = ctx.health.subscribe();
    let mut tick = tokio::time::interval(ctx.heartbeat_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let cluster = &ctx.cluster;
    let mut announced = None;
    let mut failures = 0u32;
    // The reachability the Cluster shows (as far as this loop wrote it):
    // a write that changes it is logged when sent and when acknowledged,
    // as it is what takes a dead cluster out of DNS.
    let mut written: Option<Reachability> = None;
    // A change of reachability came while a routine heartbeat was in
    // flight: it is written at once.
    let mut due_now = false;
    loop {
        if !std::mem::take(&mut due_now) {
            tokio::select! {
                _ = tick.tick() => {}
                changed = reach.changed() => if changed.is_err() { return },
                () = shutdown.cancelled() => return,
            }
        }
        let seen = reach.borrow_and_update().clone();
        let previous = match presence.borrow().active() {
            Some(c) => c.status.clone().unwrap_or_default().conditions,
            None => continue,
        };
        let synced = ctx.health.synced_resources();
        if let Some(metrics) = &ctx.metrics {
            let objects: u32 = synced.iter().filter_map(|r| r.objects).sum();
            metrics
                .synced_objects
                .get_or_create(&ClusterLabel {
                    cluster: ctx.cluster.clone(),
                })
                .set(i64::from(objects));
        }
        let Some(status) = heartbeat::cluster_status(
            &previous,
            &seen,
            synced,
            ctx.heartbeat_interval,
            Time(Timestamp::now()),
        ) else {
            continue;
        };
        let body = json!({
            "apiVersion": format!("{}/{}", labels::GROUP, labels::VERSION),
            "kind": "Cluster",
            "status": status,
        });
        let verdict = written.as_ref() != Some(&seen);
        let sent = Instant::now();
        if verdict {
            info!(cluster, reachable = ?seen, "writing the cluster's reachability to its status");
        }
        let patch = Patch::Apply(&body);
        let write = api.patch_status(cluster, &params, &patch);
        let result = if verdict {
            write.await
        } else {
            // A routine heartbeat gives way to a verdict: on a busy control
            // plane it may take a second to come back, and the verdict
            // (the next write, with a fresh heartbeat time) is what takes
            // a dead cluster out of DNS.
            tokio::select! {
                result = write => result,
                changed = reach.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    debug!(cluster, "a heartbeat in flight gave way to a change of reachability");
                    due_now = true;
                    continue;
                }
            }
        };
        match result {
            Ok(object) => {
                failures = 0;
                if verdict {
                    info!(cluster, took = ?sent.elapsed(), "the cluster's reachability is written");
                } else {
                    debug!(cluster, reachable = ?seen, "heartbeat written");
                }
                written = Some(seen.clone());
                announce(&ctx, &object, &seen, &mut announced).await;
            }
            Err(kube::Error::Api(e)) if e.code == 404 => {
                failures = 0;
                debug!(cluster, "no heartbeat: the Cluster is gone");
            }
            Err(err) => {
                failures += 1;
                let delay = runtime::backoff(failures, HEARTBEAT_RETRY_CAP);
                warn!(cluster, %err, "cannot write the Cluster's heartbeat; retrying in {}",
                    humantime::format_duration(delay));
                tick.reset_after(delay);
            }
        }
    }
}

/// Publishes an Event on the Cluster when its reachability changes class
/// (reachable, or unreachable for a given reason); `announced` is the last
/// class announced (`None`: nothing yet, so a first "reachable" is quiet).
async fn announce(
    ctx: &ClusterCtx,
    cluster: &Cluster,
    seen: &Reachability,
    announced: &mut Option<Option<String>>,
) {
    let class = match seen {
        Reachability::Unknown => return,
        Reachability::Reachable => None,
        Reachability::Unreachable { reason, .. } => Some(reason.clone()),
    };
    if announced.as_ref() == Some(&class) {
        return;
    }
    let first = announced.is_none();
    *announced = Some(class);
    let (type_, reason, note) = match seen {
        Reachability::Unreachable { reason, message } => {
            (EventType::Warning, reason.clone(), message.clone())
        }
        _ if first => return,
        _ => (
            EventType::Normal,
            heartbeat::reasons::API_SERVER_REACHABLE.to_string(),
            "the cluster's API server answers again".to_string(),
        ),
    };
    let reference = ObjectReference {
        api_version: Some(format!("{}/{}", labels::GROUP, labels::VERSION)),
        kind: Some("Cluster".into()),
        name: cluster.metadata.name.clone(),
        uid: cluster.metadata.uid.clone(),
        ..ObjectReference::default()
    };
    let event = Event {
        type_,
        reason,
        note: Some(note.chars().take(1000).collect()),
        action: "Heartbeat".into(),
        secondary: None,
    };
    if let Err(err) = ctx.recorder.publish(&event, &reference).await {
        warn!(cluster = ctx.cluster, %err, "cannot publish an Event on the Cluster");
    }
}
