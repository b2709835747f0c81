//! The Cluster status a syncer reports (pure): `SyncerHeartbeat`,
//! `DownstreamReachable` and `Ready` from what the syncer last saw of the
//! physical cluster, plus `lastHeartbeatTime` and `syncedResources`.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::apis::condition::condition;
use crate::apis::{ClusterStatus, SyncedResource};
use crate::labels::conditions::{DOWNSTREAM_REACHABLE, READY, SYNCER_HEARTBEAT};

/// Reasons of the Cluster conditions a syncer writes.
pub mod reasons {
    /// SyncerHeartbeat=True.
    pub const SYNCER_RUNNING: &str = "SyncerRunning";
    /// DownstreamReachable=True.
    pub const API_SERVER_REACHABLE: &str = "APIServerReachable";
    /// DownstreamReachable=False: the API server did not answer.
    pub const API_SERVER_UNREACHABLE: &str = "APIServerUnreachable";
    /// DownstreamReachable=False: the kubeconfig cannot be read or used.
    pub const KUBECONFIG_INVALID: &str = "KubeconfigInvalid";
    /// DownstreamReachable=False: the kubeconfig Secret (or its key) is missing.
    pub const KUBECONFIG_SECRET_NOT_FOUND: &str = "KubeconfigSecretNotFound";
    /// Ready=True.
    pub const READY: &str = "SyncerRunningAndClusterReachable";
}

/// What the syncer last saw of the physical cluster's API.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Reachability {
    /// Nothing seen yet (nothing is reported until something is).
    #[default]
    Unknown,
    /// The API server answered.
    Reachable,
    /// The API server did not answer, or there is no usable client for it.
    Unreachable { reason: String, message: String },
}

impl Reachability {
    /// Unreachable for `reason`, explained by `message`.
    pub fn unreachable(reason: &str, message: impl Into<String>) -> Self {
        Self::Unreachable {
            reason: reason.to_string(),
            message: message.into(),
        }
    }
}

/// The status to report at `now`, given the previous conditions (their
/// transition times carry over), or `None` while reachability is unknown.
pub fn cluster_status(
    previous: &[Condition],
    reachability: &Reachability,
    synced_resources: Vec<SyncedResource>,
    heartbeat_interval: Duration,
    now: Time,
) -> Option<ClusterStatus> {
    let heartbeat = condition(
        previous,
        SYNCER_HEARTBEAT,
        true,
        reasons::SYNCER_RUNNING,
        &format!(
            "the syncer reports every {}",
            humantime::format_duration(heartbeat_interval)
        ),
        now.clone(),
    );
    let (reachable, ready) = match reachability {
        Reachability::Unknown => return None,
        Reachability::Reachable => (
            condition(
                previous,
                DOWNSTREAM_REACHABLE,
                true,
                reasons::API_SERVER_REACHABLE,
                "the cluster's API server answers",
                now.clone(),
            ),
            condition(
                previous,
                READY,
                true,
                reasons::READY,
                "the syncer runs and reaches the cluster",
                now.clone(),
            ),
        ),
        Reachability::Unreachable { reason, message } => (
            condition(
                previous,
                DOWNSTREAM_REACHABLE,
                false,
                reason,
                message,
                now.clone(),
            ),
            condition(
                previous,
                READY,
                false,
                reason,
                &format!("the syncer cannot reach the cluster: {message}"),
                now.clone(),
            ),
        ),
    };
    Some(ClusterStatus {
        conditions: vec![ready, heartbeat, reachable],
        last_heartbeat_time: Some(now),
        synced_resources,
        drain_complete_time: None,
    })
}

/// How often the syncer checks that the cluster's API answers: five times
/// per heartbeat interval, between 500 ms and 2 s, so that a dead cluster
/// turns `Ready` False long before its heartbeat grows old.
pub fn probe_interval(heartbeat_interval: Duration) -> Duration {
    (heartbeat_interval / 5).clamp(Duration::from_millis(500), Duration::from_secs(2))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::jiff::Timestamp;

    use super::*;

    fn at(second: i64) -> Time {
        Time(Timestamp::from_second(second).unwrap())
    }

    fn get<'a>(status: &'a ClusterStatus, type_: &str) -> &'a Condition {
        status.conditions.iter().find(|c| c.type_ == type_).unwrap()
    }

    const TEN: Duration = Duration::from_secs(10);

    #[test]
    fn reachable_means_ready() {
        let s = cluster_status(&[], &Reachability::Reachable, vec![], TEN, at(100)).unwrap();
        assert_eq!(get(&s, READY).status, "True");
        assert_eq!(get(&s, SYNCER_HEARTBEAT).status, "True");
        assert_eq!(get(&s, DOWNSTREAM_REACHABLE).status, "True");
        assert_eq!(s.last_heartbeat_time, Some(at(100)));
        assert!(get(&s, SYNCER_HEARTBEAT).message.contains("10s"));
    }

    #[test]
    fn unreachable_means_not_ready_with_the_reason() {
        let r = Reachability::unreachable(reasons::KUBECONFIG_INVALID, "bad file");
        let s = cluster_status(&[], &r, vec![], TEN, at(100)).unwrap();
        let ready = get(&s, READY);
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "KubeconfigInvalid")
        );
        assert!(ready.message.contains("bad file"));
        let reach = get(&s, DOWNSTREAM_REACHABLE);
        assert_eq!(
            (reach.status.as_str(), reach.message.as_str()),
            ("False", "bad file")
        );
        assert_eq!(get(&s, SYNCER_HEARTBEAT).status, "True");
    }

    #[test]
    fn transitions_keep_their_time() {
        let first = cluster_status(&[], &Reachability::Reachable, vec![], TEN, at(100)).unwrap();
        let again = cluster_status(
            &first.conditions,
            &Reachability::Reachable,
            vec![],
            TEN,
            at(110),
        )
        .unwrap();
        assert_eq!(get(&again, READY).last_transition_time, at(100));
        assert_eq!(again.last_heartbeat_time, Some(at(110)));
        let down = Reachability::unreachable(reasons::API_SERVER_UNREACHABLE, "refused");
        let lost = cluster_status(&again.conditions, &down, vec![], TEN, at(115)).unwrap();
        assert_eq!(get(&lost, READY).last_transition_time, at(115));
        assert_eq!(get(&lost, SYNCER_HEARTBEAT).last_transition_time, at(100));
    }

    #[test]
    fn nothing_is_reported_before_the_first_look() {
        assert!(cluster_status(&[], &Reachability::Unknown, vec![], TEN, at(1)).is_none());
    }

    #[test]
    fn probes_run_several_times_per_heartbeat() {
        assert_eq!(probe_interval(TEN), Duration::from_secs(2));
        assert_eq!(
            probe_interval(Duration::from_secs(5)),
            Duration::from_secs(1)
        );
        assert_eq!(
            probe_interval(Duration::from_secs(1)),
            Duration::from_millis(500)
        );
        assert_eq!(
            probe_interval(Duration::from_secs(600)),
            Duration::from_secs(2)
        );
    }
}
