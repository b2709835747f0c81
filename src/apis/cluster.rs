//! `Cluster`: one physical Kubernetes cluster that Ingresses can be placed on.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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
    /// No new placements go to an unschedulable cluster.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unschedulable: bool,
    /// Relative share of traffic the cluster should receive (DNS weighting).
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
    pub conditions: Vec<Condition>,
    /// When the cluster's syncer last reported in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_heartbeat_time: Option<Time>,
    /// The resource types the syncer copies to this cluster, and whether the
    /// cluster serves them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub synced_resources: Vec<SyncedResource>,
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
