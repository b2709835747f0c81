//! `GlobalIngress`: the global view of one root Ingress across clusters.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The global view of the root Ingress of the same name and namespace, which
/// owns it. The ingress-controller writes its spec and per-cluster status;
/// the glbc writes what it published to DNS.
#[derive(CustomResource, Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[kube(
    group = "kcp-ingress.dev",
    version = "v1alpha1",
    kind = "GlobalIngress",
    doc = "The global view of a root Ingress: per-cluster addresses and health, and its DNS records.",
    namespaced,
    status = "GlobalIngressStatus",
    shortname = "gingress",
    printcolumn = r#"{"name":"Hosts","type":"string","jsonPath":".spec.hosts"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"DNS","type":"string","jsonPath":".status.conditions[?(@.type==\"DNSPublished\")].status"}"#,
    printcolumn = r#"{"name":"Degraded","type":"string","jsonPath":".status.conditions[?(@.type==\"Degraded\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct GlobalIngressSpec {
    /// The hosts of the root Ingress's rules and TLS entries, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// The root this is the global view of, in the GlobalIngress's
    /// namespace; absent: the Ingress of the same name (objects written
    /// before roots of other kinds existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<RootRef>,
}

/// A root object in the GlobalIngress's namespace.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RootRef {
    /// API group (`networking.k8s.io`, `gateway.networking.k8s.io`).
    pub group: String,
    /// Kind (`Ingress`, `Gateway`).
    pub kind: String,
    /// Name.
    pub name: String,
}

/// Per-cluster attribution and DNS state of a root Ingress.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GlobalIngressStatus {
    /// The generation of this GlobalIngress (its hosts) the status was
    /// computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// One entry per cluster the root is placed on, sorted by cluster name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clusters: Vec<ClusterIngressStatus>,
    /// The DNS records the glbc published for the root's hosts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_records: Vec<DnsRecordStatus>,
    /// When the glbc last applied the root's records successfully.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_published_time: Option<Time>,
    /// The glbc's application health checks (annotation
    /// `kcp-ingress.dev/health-check` on the root): one entry per probed
    /// cluster address, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub probes: Vec<ProbeStatus>,
    /// `Ready`, `DNSPublished` and `Degraded`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// The root's load-balancer addresses in one cluster.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ClusterIngressStatus {
    /// Name of the Cluster.
    pub cluster: String,
    /// The addresses the cluster's load balancer reports for the leaf, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<LoadBalancerAddress>,
    /// Whether the cluster counts as healthy (Ready, with a fresh heartbeat).
    pub healthy: bool,
    /// When the addresses or the health of this cluster last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_change_time: Option<Time>,
}

impl GlobalIngressStatus {
    /// Whether `cluster` fails the root's health check: it has probed
    /// addresses and none passes. It then counts as not healthy for
    /// `Degraded` (one rule for the controller and the glbc).
    pub fn probes_fail(&self, cluster: &str) -> bool {
        probes_fail(&self.probes, cluster)
    }

    /// Whether the clusters listed have not reported yet: one of them is
    /// healthy and none reports an address. The glbc's first `DNSPublished`
    /// verdict on a new root waits while this holds (one rule for the glbc
    /// and `explain`).
    pub fn awaits_first_address(&self) -> bool {
        self.clusters.iter().any(|c| c.healthy)
            && self.clusters.iter().all(|c| c.addresses.is_empty())
    }
}

/// See [`GlobalIngressStatus::probes_fail`].
pub fn probes_fail(probes: &[ProbeStatus], cluster: &str) -> bool {
    let mut of = probes.iter().filter(|p| p.cluster == cluster).peekable();
    of.peek().is_some() && of.all(|p| !p.passing)
}

/// The verdict of the health check of one cluster address.
#[derive(
    Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
#[serde(rename_all = "camelCase")]
pub struct ProbeStatus {
    /// Name of the Cluster.
    pub cluster: String,
    /// The probed address.
    pub address: String,
    /// Whether the address passes (withdrawn from DNS while it does not).
    pub passing: bool,
    /// While failing: the result that withdrew it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// One load-balancer endpoint: an IP address or a hostname.
#[derive(
    Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancerAddress {
    /// An IPv4 or IPv6 address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// A DNS name (some cloud load balancers give only this).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
}

/// One RRset the glbc manages.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DnsRecordStatus {
    /// Fully qualified owner name.
    pub name: String,
    /// `A`, `AAAA`, `CNAME` or `TXT`.
    pub record_type: String,
    /// Time to live in seconds.
    pub ttl: u32,
    /// The record data, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
    /// `Published`, `Pending`, `Retained` (kept while no cluster is healthy)
    /// or `Conflict` (the name belongs to another owner).
    pub state: String,
}
