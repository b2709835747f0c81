//! Every well-known name of kcp-ingress: API group, labels, annotations,
//! finalizers and field managers. Nothing else in the crate spells them out.

/// API group of the kcp-ingress CRDs.
pub const GROUP: &str = "kcp-ingress.dev";
/// API version of the kcp-ingress CRDs.
pub const VERSION: &str = "v1alpha1";

/// Label on a leaf Ingress naming its root Ingress. A root never carries it.
pub const ROOT_LABEL: &str = "kcp-ingress.dev/root";
/// Prefix of the per-cluster placement label: `state.kcp-ingress.dev/<cluster>=Sync`.
pub const STATE_LABEL_PREFIX: &str = "state.kcp-ingress.dev/";
/// Value of a placement label that asks for the object to be synced.
pub const STATE_SYNC: &str = "Sync";
/// Annotation on a root Ingress: a label selector over Clusters.
pub const PLACEMENT_ANNOTATION: &str = "kcp-ingress.dev/placement";
/// Finalizer the ingress-controller puts on a root Ingress.
pub const CLEANUP_FINALIZER: &str = "kcp-ingress.dev/cleanup";
/// Prefix of the finalizer a syncer puts on every object it syncs: `kcp-ingress.dev/syncer-<cluster>`.
pub const SYNCER_FINALIZER_PREFIX: &str = "kcp-ingress.dev/syncer-";
/// Prefix of the per-cluster namespace of the control plane:
/// `kcp-ingress-cluster-<cluster>` (see `mailbox::cluster_namespace`). It
/// holds everything placed on that cluster, and nothing else.
pub const CLUSTER_NAMESPACE_PREFIX: &str = "kcp-ingress-cluster-";
/// Label on a cluster namespace naming its Cluster.
pub const CLUSTER_LABEL: &str = "kcp-ingress.dev/cluster";
/// Label on a leaf naming the namespace of its root (the leaf lives in its
/// cluster's namespace; [`ROOT_LABEL`] names the root).
pub const ROOT_NAMESPACE_LABEL: &str = "kcp-ingress.dev/root-namespace";
/// Label on a `PlacedObject` naming the resource it embeds
/// (`<plural>[.<group>]`, see `mailbox::placed_resource_label_value`).
pub const PLACED_RESOURCE_LABEL: &str = "kcp-ingress.dev/resource";
/// Annotation on a copy the ingress-controller wrote in a cluster namespace
/// (Secret, ConfigMap, `PlacedObject`): a hash of the body it applied, so
/// that a copy that is already current is not written again.
pub const COPY_HASH_ANNOTATION: &str = "kcp-ingress.dev/copy-hash";
/// Namespaces whose objects are never placed: kcp-ingress' own and
/// Kubernetes' (cluster namespaces, [`CLUSTER_NAMESPACE_PREFIX`], neither).
pub const UNPLACED_NAMESPACES: [&str; 2] = ["kcp-ingress-system", "kube-system"];
/// Label on a downstream copy saying which syncer manages it.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`] on objects kcp-ingress manages.
pub const MANAGED_BY_VALUE: &str = "kcp-ingress";
/// Annotation on a downstream copy naming its upstream origin (`namespace/name/uid`).
pub const ORIGIN_ANNOTATION: &str = "kcp-ingress.dev/origin";

/// Label on a downstream copy, and on a downstream namespace a syncer
/// created, naming the Cluster whose syncer manages it (together with
/// [`MANAGED_BY_LABEL`]). A syncer modifies or deletes only objects that
/// carry both, with its own cluster's name.
pub const SYNCER_LABEL: &str = "kcp-ingress.dev/syncer";
/// Annotation on a downstream copy: a hash of what the syncer last applied,
/// so that an upstream change is told apart from a no-op.
pub const APPLIED_HASH_ANNOTATION: &str = "kcp-ingress.dev/applied-hash";
/// Prefix of the annotation a syncer puts on an upstream object whose name is
/// taken downstream by an object kcp-ingress does not manage:
/// `conflict.kcp-ingress.dev/<cluster>`; its value says what is in the way.
pub const CONFLICT_ANNOTATION_PREFIX: &str = "conflict.kcp-ingress.dev/";
/// Prefix of the annotation a syncer puts on an upstream object that could
/// not be synced (the cluster refused it, or it is malformed):
/// `sync-error.kcp-ingress.dev/<cluster>`; its value is the error.
pub const SYNC_ERROR_ANNOTATION_PREFIX: &str = "sync-error.kcp-ingress.dev/";
/// kcp's annotation naming the logical cluster (workspace) an object lives
/// in; meaningless in a physical cluster, so not copied downstream.
pub const KCP_CLUSTER_ANNOTATION: &str = "kcp.io/cluster";
/// kubectl's client-side apply record; not copied downstream.
pub const KUBECTL_LAST_APPLIED_ANNOTATION: &str =
    "kubectl.kubernetes.io/last-applied-configuration";

/// Finalizer the glbc puts on a GlobalIngress: held until the DNS server
/// confirms that the root's records and ownership records are gone.
pub const DNS_FINALIZER: &str = "kcp-ingress.dev/dns";
/// The Lease a working glbc holds to say it is there
/// (`runtime::presence`): in the namespace it publishes, or in its Lease
/// namespace labelled [`GLBC_SCOPE_LABEL`]`=`[`GLBC_SCOPE_ALL`] when it
/// publishes every namespace. The controller watches it by name and puts
/// [`DNS_FINALIZER`] on the GlobalIngresses it creates while it is live.
pub const GLBC_PRESENCE_LEASE: &str = "kcp-ingress-glbc-presence";
/// Label on a glbc presence Lease: which namespaces that glbc publishes.
pub const GLBC_SCOPE_LABEL: &str = "kcp-ingress.dev/glbc-scope";
/// [`GLBC_SCOPE_LABEL`]: every namespace.
pub const GLBC_SCOPE_ALL: &str = "all";
/// Label on a Cluster: its DNS priority group, an integer (lower is
/// preferred; absent: 0). A host is answered only from the best group that
/// has a healthy cluster; the others take over when it has none.
pub const PRIORITY_LABEL: &str = "kcp-ingress.dev/priority";
/// First label of the glbc's ownership TXT record of a host:
/// `_kcp-ingress.<host>`. Its content is
/// `heritage=kcp-ingress,owner=<owner id>,root=<namespace>/<name>`.
pub const OWNERSHIP_LABEL: &str = "_kcp-ingress";
/// First label of the ownership TXT record of a wildcard host `*.<parent>`:
/// `_kcp-ingress-wildcard.<parent>`.
pub const OWNERSHIP_WILDCARD_LABEL: &str = "_kcp-ingress-wildcard";
/// The `heritage=` value of an ownership TXT record.
pub const OWNERSHIP_HERITAGE: &str = "kcp-ingress";

/// Annotation on a root: its application health check, JSON (`path`,
/// `port`, `scheme`, `host`, `intervalSeconds`, `timeoutSeconds`,
/// `failureThreshold`, `successThreshold`, `expectedCodes`; see
/// `glbc::probe::ProbeSpec`). The glbc probes every cluster's address of
/// the root with it and withdraws the addresses that fail.
pub const HEALTH_CHECK_ANNOTATION: &str = "kcp-ingress.dev/health-check";
/// Seconds the glbc waits past the published TTL before a drained
/// cluster's leaves may go (resolvers and clients that cached the last
/// answer a little late).
pub const DRAIN_MARGIN_SECONDS: u32 = 2;

/// Field manager of the ingress-controller.
pub const CONTROLLER_MANAGER: &str = "kcp-ingress-controller";
/// Field manager of the glbc.
pub const GLBC_MANAGER: &str = "kcp-ingress-glbc";
/// Prefix of a syncer's field manager: `kcp-ingress-syncer-<cluster>`.
pub const SYNCER_MANAGER_PREFIX: &str = "kcp-ingress-syncer-";

/// Condition types of a Cluster and a GlobalIngress.
pub mod conditions {
    /// Cluster: the syncer is running and the cluster can take traffic.
    /// GlobalIngress: the root is placed and its status merged.
    pub const READY: &str = "Ready";
    /// Cluster: the syncer reported in within its heartbeat interval.
    pub const SYNCER_HEARTBEAT: &str = "SyncerHeartbeat";
    /// Cluster: the syncer can reach the physical cluster's API.
    pub const DOWNSTREAM_REACHABLE: &str = "DownstreamReachable";
    /// GlobalIngress: the glbc published the root's records.
    pub const DNS_PUBLISHED: &str = "DNSPublished";
    /// GlobalIngress: no cluster of the root is healthy (DNS keeps the last answers).
    pub const DEGRADED: &str = "Degraded";
    /// GlobalIngress: every Service and Secret the root references exists.
    pub const DEPENDENCIES_READY: &str = "DependenciesReady";
    /// Cluster (written by the glbc): the cluster is unschedulable and its
    /// addresses are withdrawn from DNS; `False` (`Draining`) until the
    /// published TTL has passed, then `True` (`Drained`): its leaves may go.
    pub const DRAINED: &str = "Drained";
}

/// Condition and Event reasons shared by, or specific to, the controller
/// and the syncers (the glbc's `DNSPublished` reasons are in
/// `glbc::status::reason`, the Cluster conditions' in
/// `syncer::heartbeat::reasons`).
pub mod reasons {
    /// GlobalIngress `Ready=False`: the placement selector does not parse.
    pub const INVALID_PLACEMENT: &str = "InvalidPlacement";
    /// GlobalIngress `Ready=False`: the selector matches no schedulable Cluster.
    pub const NO_MATCHING_CLUSTER: &str = "NoMatchingCluster";
    /// GlobalIngress `Ready=True`: the root has its leaves.
    pub const PLACED: &str = "Placed";
    /// GlobalIngress `Ready=False`: the root carries a placement label
    /// itself (only leaves do).
    pub const ROOT_HAS_PLACEMENT_LABEL: &str = "RootHasPlacementLabel";
    /// GlobalIngress `Ready=False`: an Ingress root with no rules and no
    /// default backend.
    pub const NO_BACKENDS: &str = "NoBackends";
    /// GlobalIngress `Ready=False`: a host is not a valid DNS name.
    pub const INVALID_HOST: &str = "InvalidHost";
    /// Event on a root: a leaf was created for a cluster.
    pub const LEAF_CREATED: &str = "LeafCreated";
    /// Event on a root: a leaf was deleted (its cluster left the placement).
    pub const LEAF_DELETED: &str = "LeafDeleted";
    /// Event on an upstream object: its downstream copy is in the way of an
    /// object kcp-ingress does not manage.
    pub const SYNC_CONFLICT: &str = "SyncConflict";
    /// Event on an upstream object: copying it down failed.
    pub const SYNC_FAILED: &str = "SyncFailed";
    /// GlobalIngress `Degraded=True`: the root is placed on clusters and
    /// none of them is healthy.
    pub const NO_HEALTHY_CLUSTER: &str = "NoHealthyCluster";
    /// GlobalIngress `Degraded=True`: the root is placed on no cluster (its
    /// selector matches no schedulable Cluster, or it is invalid).
    pub const NO_CLUSTER_PLACED: &str = "NoClusterPlaced";
    /// GlobalIngress `Degraded=False`.
    pub const HEALTHY_CLUSTER_AVAILABLE: &str = "HealthyClusterAvailable";
    /// GlobalIngress `DependenciesReady=True`.
    pub const ALL_FOUND: &str = "AllFound";
    /// GlobalIngress `DependenciesReady=False`: a Service or Secret the root
    /// references does not exist.
    pub const DEPENDENCY_MISSING: &str = "DependencyMissing";
    /// GlobalIngress `DependenciesReady=False`: a syncer could not place a
    /// Service or Secret the root references, because an object of its name
    /// that kcp-ingress does not manage is in the way in a cluster.
    pub const DEPENDENCY_CONFLICT: &str = "DependencyConflict";
    /// Event on a deleted Cluster: its syncer deleted its copies in the
    /// physical cluster.
    pub const COPIES_DELETED: &str = "CopiesDeleted";
    /// Event on a deleted Cluster: its copies in the physical cluster were
    /// kept (the cluster did not answer, or there was no client for it).
    pub const COPIES_KEPT: &str = "CopiesKept";
    /// GlobalIngress `DNSPublished=True`: records are served, but as last
    /// published (no healthy cluster, or its load-balancer hostnames stopped
    /// resolving), not freshly computed.
    pub const RETAINED: &str = "Retained";
    /// Event on a Cluster: its `kubeconfigSecretRef` points into a cluster
    /// namespace (readable by a syncer), so it is not used.
    pub const KUBECONFIG_SECRET_REFUSED: &str = "KubeconfigSecretRefused";
    /// Cluster `Drained=False`: withdrawn from DNS, waiting out the TTL.
    pub const DRAINING: &str = "Draining";
    /// Cluster `Drained=True`: the TTL has passed; its leaves may go.
    pub const DRAINED: &str = "Drained";
    /// Event on a Cluster: it is drained but some root has no other cluster
    /// serving it, so DNS keeps its last answers (fail open) for that root.
    pub const DRAINING_LAST_CLUSTER: &str = "DrainingLastCluster";
    /// Event on a root: a cluster's address fails (or passes again) the
    /// root's health check.
    pub const PROBE_FAILING: &str = "ProbeFailing";
    pub const PROBE_PASSING: &str = "ProbePassing";
    /// GlobalIngress `DNSPublished=False`: no live root Ingress controls it,
    /// so nothing is published for it.
    pub const NO_LIVE_ROOT: &str = "NoLiveRoot";
    /// Event on a root: the GlobalIngress of the name its own would have
    /// is controlled by another root (an Ingress named `<gw>.gateway`).
    pub const GLOBAL_INGRESS_NAME_TAKEN: &str = "GlobalIngressNameTaken";
}

/// Gateway API names: the group, kcp-ingress's controllerName, and the
/// condition types and reasons (from the spec) of the merged root status.
pub mod gateway_api {
    /// API group of the Gateway API kinds.
    pub const GROUP: &str = "gateway.networking.k8s.io";
    /// `controllerName` of kcp-ingress in root route `status.parents`.
    pub const CONTROLLER_NAME: &str = "kcp-ingress.dev/gateway-controller";
    /// Kinds of the Gateway API kcp-ingress handles.
    pub const GATEWAY: &str = "Gateway";
    pub const HTTP_ROUTE: &str = "HTTPRoute";
    pub const GRPC_ROUTE: &str = "GRPCRoute";
    /// The route kinds of the experimental channel, handled where their
    /// CRDs are served.
    pub const TLS_ROUTE: &str = "TLSRoute";
    pub const TCP_ROUTE: &str = "TCPRoute";
    pub const UDP_ROUTE: &str = "UDPRoute";
    /// Condition types (Gateway, listener, route parent).
    pub const ACCEPTED: &str = "Accepted";
    pub const PROGRAMMED: &str = "Programmed";
    pub const RESOLVED_REFS: &str = "ResolvedRefs";
    /// Reasons: the positive one of each condition is its type; these others.
    pub const PENDING: &str = "Pending";
    pub const NO_MATCHING_PARENT: &str = "NoMatchingParent";
    /// Cluster label: the GatewayClass the leaf Gateways in that cluster
    /// get (a placed cluster without it gets no leaf Gateway).
    pub const CLASS_LABEL: &str = "gateway.kcp-ingress.dev/class";
    /// The suffix of the name of a root Gateway's GlobalIngress (`<gw>.gateway`).
    pub const GLOBAL_SUFFIX: &str = ".gateway";
    /// More kinds: the class, and the grant of cross-namespace references.
    pub const GATEWAY_CLASS: &str = "GatewayClass";
    pub const REFERENCE_GRANT: &str = "ReferenceGrant";
    /// Listener condition type: its hostname conflicts with another's.
    pub const CONFLICTED: &str = "Conflicted";
    /// Spec reasons of the bad inputs kcp-ingress reports on roots.
    pub const HOSTNAME_CONFLICT: &str = "HostnameConflict";
    pub const LISTENERS_NOT_VALID: &str = "ListenersNotValid";
    pub const INVALID_CERTIFICATE_REF: &str = "InvalidCertificateRef";
    pub const REF_NOT_PERMITTED: &str = "RefNotPermitted";
    /// Route parent `Accepted=False`: no listener it selects takes its kind.
    pub const NOT_ALLOWED_BY_LISTENERS: &str = "NotAllowedByListeners";
    /// Root Gateway `Accepted=False`/`Programmed=False`: no placed cluster
    /// offers a GatewayClass (the `gateway.kcp-ingress.dev/class` label).
    pub const NO_RESOURCES: &str = "NoResources";
    /// Condition on a root Gateway (and reason of its Event): the
    /// GlobalIngress `<gw>.gateway` is controlled by another root.
    pub const GLOBAL_INGRESS: &str = "kcp-ingress.dev/GlobalIngress";
}

/// Whether an annotation stays in the control plane, never copied into a
/// cluster namespace or a physical cluster: kcp-ingress's per-cluster
/// reports and bookkeeping, kubectl's last-applied record, kcp's workspace.
pub fn is_control_plane_only_annotation(key: &str) -> bool {
    key.starts_with(CONFLICT_ANNOTATION_PREFIX)
        || key.starts_with(SYNC_ERROR_ANNOTATION_PREFIX)
        || key == KUBECTL_LAST_APPLIED_ANNOTATION
        || key == KCP_CLUSTER_ANNOTATION
        || key == ORIGIN_ANNOTATION
        || key == APPLIED_HASH_ANNOTATION
        || key == COPY_HASH_ANNOTATION
}

/// The placement label key for `cluster`.
pub fn state_label(cluster: &str) -> String {
    format!("{STATE_LABEL_PREFIX}{cluster}")
}

/// The finalizer a syncer for `cluster` puts on what it syncs.
pub fn syncer_finalizer(cluster: &str) -> String {
    format!("{SYNCER_FINALIZER_PREFIX}{cluster}")
}

/// The field manager of the syncer for `cluster`.
pub fn syncer_manager(cluster: &str) -> String {
    format!("{SYNCER_MANAGER_PREFIX}{cluster}")
}

/// The conflict annotation of the syncer for `cluster`.
pub fn conflict_annotation(cluster: &str) -> String {
    format!("{CONFLICT_ANNOTATION_PREFIX}{cluster}")
}

/// The sync-error annotation of the syncer for `cluster`.
pub fn sync_error_annotation(cluster: &str) -> String {
    format!("{SYNC_ERROR_ANNOTATION_PREFIX}{cluster}")
}

/// The stand-in Gateway API implementation of the test clusters
/// (`standin-lb`, `src/standin.rs`).
pub mod standin {
    /// `spec.controllerName` of the GatewayClasses `standin-lb` implements.
    pub const CONTROLLER_NAME: &str = "kcp-ingress.dev/standin";
    /// The GatewayClass the test environments create in every cluster.
    pub const GATEWAY_CLASS: &str = "standin";
    /// Field manager of `standin-lb`'s status writes.
    pub const MANAGER: &str = "standin-lb";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_plane_only_annotations() {
        for key in [
            "conflict.kcp-ingress.dev/east",
            "sync-error.kcp-ingress.dev/east",
            "kubectl.kubernetes.io/last-applied-configuration",
            "kcp.io/cluster",
            "kcp-ingress.dev/origin",
            "kcp-ingress.dev/applied-hash",
            "kcp-ingress.dev/copy-hash",
        ] {
            assert!(is_control_plane_only_annotation(key), "{key}");
        }
        assert!(!is_control_plane_only_annotation("example.com/keep"));
    }

    #[test]
    fn per_cluster_names() {
        assert_eq!(state_label("east"), "state.kcp-ingress.dev/east");
        assert_eq!(syncer_finalizer("east"), "kcp-ingress.dev/syncer-east");
        assert_eq!(syncer_manager("east"), "kcp-ingress-syncer-east");
    }
}
