//! `Cluster`: one physical Kubernetes cluster that Ingresses can be placed on.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::labels::conditions;

/// A physical cluster. Its labels (region, tier, ...) are what a root
/// Ingress's placement selector matches.
#[derive(CustomResource, Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[kube(
    group = "kcp-ingress.dev",
    version = "v1alpha1",
    kind = "Cluster",
    doc = "A physical Kubernetes cluster that root Ingresses can be placed on.",
    status = "ClusterStatus",
    shortname = "kcpcluster",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Unschedulable","type":"boolean","jsonPath":".spec.unschedulable"}"#,
    printcolumn = r#"{"name":"Heartbeat","type":"date","jsonPath":".status.lastHeartbeatTime"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSpec {
    /// A Secret holding a kubeconfig for the cluster. Present in push mode,
    /// where the controller runs the cluster's syncer; absent in pull mode,
    /// where the syncer runs inside or beside the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig_secret_ref: Option<KubeconfigSecretRef>,
    /// Drain the cluster: no new placements go to it, the glbc withdraws its
    /// addresses from DNS at once, and its leaves go once the published TTL
    /// (plus a margin) has passed (`status.drainCompleteTime`, condition
    /// `Drained`). Setting it back to false brings the leaves back, then
    /// the addresses.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unschedulable: bool,
    /// Relative share of traffic the cluster receives (default 1). With the glbc's
    /// embedded DNS server, the first address of an answer is drawn by weight; with
    /// RFC 2136 only 0 has an effect (the cluster is left out of DNS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub weight: Option<u32>,
}

/// Where a cluster's kubeconfig is stored in the control plane.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct KubeconfigSecretRef {
    /// Namespace of the Secret.
    pub namespace: String,
    /// Name of the Secret.
    pub name: String,
    /// Key inside the Secret's data that holds the kubeconfig (default `kubeconfig`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// What the syncer of a cluster reports.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    /// `Ready`, `SyncerHeartbeat` and `DownstreamReachable`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// When the cluster's syncer last reported in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_heartbeat_time: Option<Time>,
    /// The resource types the syncer copies to this cluster, and whether the
    /// cluster serves them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub synced_resources: Vec<SyncedResource>,
    /// While the cluster is unschedulable (written by the glbc): when its
    /// addresses' last published TTL has passed, i.e. when its leaves may
    /// be removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_complete_time: Option<Time>,
}

/// One resource type the syncer is asked to copy.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SyncedResource {
    /// Resource and group, as in `ingresses.networking.k8s.io` (core types have no group).
    pub resource: String,
    /// Whether both the control plane and the cluster serve the type.
    pub served: bool,
    /// Number of objects of this type synced to the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objects: Option<u32>,
    /// Why the type is not synced, when it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Cluster {
    /// The status of the condition `type_` ("True", "False", "Unknown"), if set.
    pub fn condition_status(&self, type_: &str) -> Option<&str> {
        self.status
            .as_ref()?
            .conditions
            .iter()
            .find(|c| c.type_ == type_)
            .map(|c| c.status.as_str())
    }

    /// Whether the cluster counts as healthy at `now`: `Ready=True` and a
    /// heartbeat younger than `threshold`. One rule for the controller's
    /// merge and the glbc.
    pub fn is_healthy(&self, now: Timestamp, threshold: Duration) -> bool {
        let ready = self.condition_status(conditions::READY) == Some("True");
        let fresh = self
            .status
            .as_ref()
            .and_then(|s| s.last_heartbeat_time.as_ref())
            .is_some_and(|Time(beat)| {
                let age_ms = now.as_millisecond().saturating_sub(beat.as_millisecond());
                age_ms < i64::try_from(threshold.as_millis()).unwrap_or(i64::MAX)
            });
        ready && fresh
    }

    /// Whether the cluster's leaves may be removed at `now`: it is
    /// unschedulable and the glbc's drain is complete (its TTL has passed).
    /// `Err(at)`: not yet, wait until `at`; `Ok(false)`: not draining.
    pub fn drain_complete(&self, now: Timestamp) -> Result<bool, Option<Timestamp>> {
        if !self.spec.unschedulable {
            return Ok(false);
        }
        let at = self
            .status
            .as_ref()
            .and_then(|s| s.drain_complete_time.as_ref())
            .map(|t| t.0);
        match at {
            Some(at) if at <= now => Ok(true),
            other => Err(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(ready: &str, beat_secs_ago: Option<i64>, now: Timestamp) -> Cluster {
        let mut c = Cluster::new("east", ClusterSpec::default());
        c.status = Some(ClusterStatus {
            conditions: vec![Condition {
                type_: conditions::READY.into(),
                status: ready.into(),
                reason: "Test".into(),
                message: String::new(),
                last_transition_time: Time(now),
                observed_generation: None,
            }],
            last_heartbeat_time: beat_secs_ago
                .map(|s| Time(now - k8s_openapi::jiff::SignedDuration::from_secs(s))),
            synced_resources: vec![],
            drain_complete_time: None,
        });
        c
    }

    #[test]
    fn healthy_needs_ready_and_a_fresh_heartbeat() {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let threshold = Duration::from_secs(30);
        assert!(cluster("True", Some(5), now).is_healthy(now, threshold));
        assert!(!cluster("True", Some(30), now).is_healthy(now, threshold));
        assert!(!cluster("True", None, now).is_healthy(now, threshold));
        assert!(!cluster("False", Some(1), now).is_healthy(now, threshold));
        assert!(!cluster("Unknown", Some(1), now).is_healthy(now, threshold));
        assert!(!Cluster::new("bare", ClusterSpec::default()).is_healthy(now, threshold));
    }

    #[test]
    fn leaves_go_only_once_the_drain_is_complete() {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let mut c = cluster("True", Some(1), now);
        assert_eq!(c.drain_complete(now), Ok(false), "schedulable");
        c.spec.unschedulable = true;
        assert_eq!(
            c.drain_complete(now),
            Err(None),
            "the glbc has not said yet"
        );
        let later = now + k8s_openapi::jiff::SignedDuration::from_secs(5);
        c.status.as_mut().unwrap().drain_complete_time = Some(Time(later));
        assert_eq!(c.drain_complete(now), Err(Some(later)));
        assert_eq!(c.drain_complete(later), Ok(true));
    }
}
