//! The Gateway API flow end to end, on the real servers: the controller
//! with its push-mode syncers, `standin-lb` as each physical cluster's
//! Gateway API implementation (GatewayClass `standin`, created in every
//! cluster by `hack/test-env.sh`), the glbc and BIND. A root Gateway with an
//! HTTPRoute and a GRPCRoute is split into leaves per placed cluster, the
//! leaves land downstream with their dependencies, the implementation's
//! status comes back and merges into the roots, and the route hostnames (as
//! the listener admits them, wildcards included) answer in DNS with the
//! addresses of the clusters whose leaf Gateway is Programmed.
//!
//! Each test has its own namespace `gwf-<tag>`, Clusters `<tag>-K` (→
//! apiserver cluster-K, push mode) labelled `kcp-ingress.e2e/flow=<tag>`
//! and the class label, and its own processes. The group is serial: one
//! controller at a time, one stand-in per physical cluster.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};
use k8s_openapi::api::core::v1::{Namespace, Secret, Service};
use kcp_ingress::apis::{Cluster, ClusterSpec, GlobalIngress, KubeconfigSecretRef};
use kcp_ingress::gateway_api::gateway::Gateway;
use kcp_ingress::gateway_api::grpc_route::GrpcRoute;
use kcp_ingress::gateway_api::http_route::HttpRoute;
use kcp_ingress::gateway_api::reference_grant::ReferenceGrant;
use kcp_ingress::gateway_api::tls_route::TlsRoute;
use kcp_ingress::glbc::dns::rfc2136::{fqdn, query};
use kcp_ingress::labels;
use kcp_ingress::mailbox::{cluster_namespace, copy_name};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::core::NamespaceResourceScope;
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::env::{Process, TestEnv};
use crate::support::eventually;

/// How long a converging step may take (a push syncer starts, the stand-in
/// writes, the status travels up, the glbc publishes).
const CONVERGE: Duration = Duration::from_secs(60);
const DNS_TIMEOUT: Duration = Duration::from_secs(3);
/// The label that puts a test's Clusters in its placements.
const FLOW_LABEL: &str = "kcp-ingress.e2e/flow";
/// The root GatewayClass (ours).
const ROOT_CLASS: &str = "kcp-ingress";
/// Namespace of the push-mode kubeconfig Secrets.
const SYSTEM: &str = "gwf-system";
/// Field manager of the test's applies.
const MANAGER: &str = "e2e-gateway-flow";

/// The stand-ins' addresses: cluster-1, cluster-2, cluster-3.
fn lb(k: usize) -> String {
    format!("127.0.7.{k}")
}

/// One test's world.
struct World {
    cp: Client,
    ns: String,
    tag: String,
    /// `<tag>.<zone>`, no trailing dot.
    domain: String,
    dns: SocketAddr,
    clusters: usize,
    downs: Vec<Client>,
    _processes: Vec<Process>,
}

impl World {
    /// The namespace, the GatewayClass `kcp-ingress`, Clusters `<tag>-1..N`
    /// in push mode with the class label (`classes[k-1]`, `None`: no
    /// label), a stand-in per physical cluster (those in `not_programmed`
    /// report Programmed=False), the controller and the glbc.
    async fn new(
        env: &TestEnv,
        tag: &str,
        classes: &[Option<&str>],
        not_programmed: &[usize],
    ) -> anyhow::Result<Self> {
        let cp = env.client("control-plane").await?;
        let ns = format!("gwf-{tag}");
        for name in [ns.as_str(), SYSTEM] {
            let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
            Api::<Namespace>::all(cp.clone())
                .patch(
                    name,
                    &apply(),
                    &Patch::Apply(&with_type::<Namespace>(namespace)?),
                )
                .await
                .with_context(|| format!("creating namespace {name}"))?;
        }
        let class = json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
            "metadata": {"name": ROOT_CLASS},
            "spec": {"controllerName": labels::gateway_api::CONTROLLER_NAME},
        });
        Api::<kcp_ingress::gateway_api::gateway_class::GatewayClass>::all(cp.clone())
            .patch(ROOT_CLASS, &apply(), &Patch::Apply(&class))
            .await
            .context("creating GatewayClass kcp-ingress")?;

        let mut downs = Vec::new();
        let mut processes = Vec::new();
        for (i, class) in classes.iter().enumerate() {
            let k = i + 1;
            let server = format!("cluster-{k}");
            downs.push(env.client(&server).await?);
            let name = format!("{tag}-{k}");
            let yaml = std::fs::read_to_string(env.kubeconfig(&server))?;
            let secret: Secret = serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": SYSTEM},
                "stringData": {"kubeconfig": yaml},
            }))?;
            Api::<Secret>::namespaced(cp.clone(), SYSTEM)
                .create(&PostParams::default(), &secret)
                .await
                .with_context(|| format!("creating Secret {name}"))?;
            let mut cluster = Cluster::new(&name, ClusterSpec::default());
            cluster.spec.kubeconfig_secret_ref = Some(KubeconfigSecretRef {
                namespace: SYSTEM.into(),
                name: name.clone(),
                key: None,
            });
            let mut cluster_labels =
                std::collections::BTreeMap::from([(FLOW_LABEL.to_string(), tag.to_string())]);
            if let Some(class) = class {
                cluster_labels.insert(
                    labels::gateway_api::CLASS_LABEL.to_string(),
                    class.to_string(),
                );
            }
            cluster.metadata.labels = Some(cluster_labels);
            Api::<Cluster>::all(cp.clone())
                .create(&PostParams::default(), &cluster)
                .await
                .with_context(|| format!("creating Cluster {name}"))?;
            let address = lb(k);
            let mut args = vec![
                "--cluster",
                server.as_str(),
                "--address",
                &address,
                "--port",
                "0",
            ];
            if not_programmed.contains(&k) {
                args.push("--gateways-not-programmed");
            }
            processes.push(env.spawn_standin_lb(
                &format!("standin-lb-{server}-{tag}"),
                &server,
                &args,
            )?);
        }

        let kubeconfig = env.kubeconfig("control-plane");
        let kubeconfig = kubeconfig.to_str().context("kubeconfig path")?;
        processes.push(env.spawn_kcp_ingress(
            &format!("controller-{tag}"),
            &[
                "controller",
                "--kubeconfig",
                kubeconfig,
                "--push-syncers",
                "--heartbeat-interval",
                "2s",
            ],
        )?);
        let secret_file = env.dir().join(format!("gwf-{tag}.tsig"));
        std::fs::write(&secret_file, env.dns("DNS_TSIG_SECRET"))?;
        let owner = format!("e2e-{tag}");
        processes.push(env.spawn_kcp_ingress(
            &format!("glbc-{tag}"),
            &[
                "glbc",
                "--kubeconfig",
                kubeconfig,
                "--dns-server",
                env.dns("DNS_SERVER"),
                "--dns-port",
                env.dns("DNS_PORT"),
                "--zone",
                env.dns("DNS_ZONE"),
                "--tsig-key-name",
                env.dns("DNS_TSIG_KEY_NAME"),
                "--tsig-algorithm",
                env.dns("DNS_TSIG_ALGORITHM"),
                "--tsig-secret-file",
                secret_file.to_str().context("secret path")?,
                "--owner-id",
                &owner,
                "--namespace",
                &ns,
                "--ttl",
                "30",
            ],
        )?);
        let zone = env.dns("DNS_ZONE").trim_end_matches('.');
        Ok(Self {
            cp,
            domain: format!("{tag}.{zone}"),
            dns: format!("{}:{}", env.dns("DNS_SERVER"), env.dns("DNS_PORT")).parse()?,
            ns,
            tag: tag.to_string(),
            clusters: classes.len(),
            downs,
            _processes: processes,
        })
    }

    fn cluster(&self, k: usize) -> String {
        format!("{}-{k}", self.tag)
    }

    fn host(&self, label: &str) -> String {
        format!("{label}.{}", self.domain)
    }

    fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.cp.clone(), &self.ns)
    }

    /// In the cluster namespace of cluster `k`.
    fn placed<K>(&self, k: usize) -> Api<K>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.cp.clone(), &cluster_namespace(&self.cluster(k)))
    }

    /// In physical cluster `k`, the test's namespace.
    fn down<K>(&self, k: usize) -> Api<K>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.downs[k - 1].clone(), &self.ns)
    }

    /// The leaf name of `root` on cluster `k`: `<root>--<cluster>`.
    fn leaf(&self, root: &str, k: usize) -> String {
        format!("{root}--{}", self.cluster(k))
    }

    /// The leaf's name in its cluster namespace: `<ns>.<root>--<cluster>`.
    fn leaf_copy(&self, root: &str, k: usize) -> String {
        copy_name(&self.ns, &self.leaf(root, k)).unwrap_or_default()
    }

    /// Applies `object` (whole, with apiVersion and kind) in the namespace.
    async fn apply<K>(&self, object: Value) -> anyhow::Result<K>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
    {
        let name = object["metadata"]["name"]
            .as_str()
            .context("the object has no name")?
            .to_string();
        self.api::<K>()
            .patch(&name, &apply(), &Patch::Apply(&object))
            .await
            .with_context(|| format!("applying {} {name}", object["kind"]))
    }

    /// The root Gateway `web`: one HTTP listener on port 80 for
    /// `*.<domain>`, placed by `placement` (a Cluster selector).
    async fn gateway(&self, placement: &str) -> anyhow::Result<Gateway> {
        self.apply(json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": "web", "namespace": self.ns,
                         "annotations": {labels::PLACEMENT_ANNOTATION: placement}},
            "spec": {"gatewayClassName": ROOT_CLASS, "listeners": [
                {"name": "http", "port": 80, "protocol": "HTTP",
                 "hostname": format!("*.{}", self.domain)}
            ]},
        }))
        .await
    }

    /// The HTTPRoute `shop` on Gateway `web` with `hostnames`, to Service `web`.
    async fn http_route(&self, hostnames: &[String]) -> anyhow::Result<HttpRoute> {
        self.apply(json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "shop", "namespace": self.ns},
            "spec": {"parentRefs": [{"name": "web"}], "hostnames": hostnames,
                     "rules": [{"backendRefs": [{"name": "web", "port": 80}]}]},
        }))
        .await
    }

    async fn ask(
        &self,
        name: &str,
        record_type: RecordType,
    ) -> anyhow::Result<(ResponseCode, BTreeSet<String>)> {
        let (rcode, records) = query(self.dns, &fqdn(name)?, record_type, DNS_TIMEOUT).await?;
        Ok((
            rcode,
            records
                .iter()
                .filter(|r| r.record_type() == record_type)
                .filter_map(|r| match &r.data {
                    RData::A(a) => Some(a.0.to_string()),
                    _ => None,
                })
                .collect(),
        ))
    }

    /// Waits until `name` answers exactly the A records `expected`.
    async fn wait_answer(&self, name: &str, expected: &[String]) -> anyhow::Result<()> {
        let expected: BTreeSet<String> = expected.iter().cloned().collect();
        eventually(
            &format!("{name} A answers {expected:?}"),
            CONVERGE,
            || async {
                let (rcode, got) = self.ask(name, RecordType::A).await?;
                if got == expected {
                    Ok(Some(()))
                } else {
                    bail!("{rcode} {got:?}")
                }
            },
        )
        .await
    }

    async fn wait_nxdomain(&self, name: &str) -> anyhow::Result<()> {
        eventually(&format!("{name} is gone"), CONVERGE, || async {
            let (rcode, got) = self.ask(name, RecordType::A).await?;
            if rcode == ResponseCode::NXDomain {
                Ok(Some(()))
            } else {
                bail!("{rcode} {got:?}")
            }
        })
        .await
    }

    /// Waits until Clusters `<tag>-1..N` are Ready (their push syncers run).
    async fn wait_ready(&self) -> anyhow::Result<()> {
        for k in 1..=self.clusters {
            let name = self.cluster(k);
            eventually(&format!("Cluster {name} Ready"), CONVERGE, || async {
                let c = Api::<Cluster>::all(self.cp.clone()).get(&name).await?;
                Ok((c.condition_status(labels::conditions::READY) == Some("True")).then_some(()))
            })
            .await?;
        }
        Ok(())
    }
}

fn apply() -> PatchParams {
    PatchParams::apply(MANAGER).force()
}

/// `object` with its apiVersion and kind, for a server-side apply.
fn with_type<K: Resource<DynamicType = ()> + serde::Serialize>(object: K) -> anyhow::Result<Value> {
    let mut v = serde_json::to_value(object)?;
    v["apiVersion"] = json!(K::api_version(&()));
    v["kind"] = json!(K::kind(&()));
    Ok(v)
}

/// Waits until `api` has `name` and `check` holds on it.
async fn wait_for<K>(
    what: &str,
    api: &Api<K>,
    name: &str,
    check: impl Fn(&K) -> bool,
) -> anyhow::Result<K>
where
    K: Clone + DeserializeOwned + std::fmt::Debug,
{
    eventually(what, CONVERGE, || async {
        Ok(api.get_opt(name).await?.filter(|o| check(o)))
    })
    .await
}

async fn wait_gone<K>(what: &str, api: &Api<K>, name: &str) -> anyhow::Result<()>
where
    K: Clone + DeserializeOwned + std::fmt::Debug,
{
    eventually(what, CONVERGE, || async {
        Ok(api.get_opt(name).await?.is_none().then_some(()))
    })
    .await
}

/// The status condition `type_` of a Gateway.
fn gateway_condition(g: &Gateway, type_: &str) -> Option<String> {
    g.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status.clone())
}

/// The addresses (values) of a Gateway's status, sorted.
fn gateway_addresses(g: &Gateway) -> Vec<String> {
    let mut out: Vec<String> = g
        .status
        .iter()
        .flat_map(|s| s.addresses.iter().flatten())
        .map(|a| a.value.clone())
        .collect();
    out.sort();
    out
}

/// A root Gateway and its routes, placed on three clusters of which the
/// third reports its leaf Gateway not Programmed: leaves in each cluster
/// namespace and downstream with translated parentRefs and the backend
/// Services (one in another namespace, allowed by a ReferenceGrant); the
/// root Gateway's status with the two programmed clusters' addresses and the route's parents under our controllerName; the global
/// object `web.gateway` with the route hostnames as the listener admits
/// them; DNS answers for a plain name, a wildcard and a GRPCRoute's name
/// (cluster 3 kept out), nothing for a name outside the listener; an edit
/// of the route's hostnames and a placement change followed; deletion
/// removes leaves, copies, the global object and the records.
pub async fn gateway_and_routes_flow_to_dns(env: &TestEnv) -> anyhow::Result<()> {
    let w = World::new(
        env,
        "flow",
        &[Some("standin"), Some("standin"), Some("standin")],
        &[3],
    )
    .await?;
    w.wait_ready().await?;
    let start = Instant::now();
    let (www, wild, grpc) = (w.host("www"), format!("*.w.{}", w.domain), w.host("grpc"));
    let outside = "shop.elsewhere.example".to_string();
    w.apply::<Service>(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": w.ns},
        "spec": {"ports": [{"port": 80, "targetPort": 8080}]},
    }))
    .await?;
    w.gateway(&format!("{FLOW_LABEL}={}", w.tag)).await?;
    w.http_route(&[www.clone(), wild.clone(), outside.clone()])
        .await?;
    // The GRPCRoute's backend is in another namespace, allowed there by a
    // ReferenceGrant: the Service follows the route to its clusters.
    let backends = format!("{}-backends", w.ns);
    Api::<Namespace>::all(w.cp.clone())
        .patch(
            &backends,
            &apply(),
            &Patch::Apply(&json!({"apiVersion": "v1", "kind": "Namespace",
                                  "metadata": {"name": backends}})),
        )
        .await?;
    Api::<Service>::namespaced(w.cp.clone(), &backends)
        .patch(
            "rpc",
            &apply(),
            &Patch::Apply(&json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "rpc"}, "spec": {"ports": [{"port": 80}]}})),
        )
        .await?;
    Api::<ReferenceGrant>::namespaced(w.cp.clone(), &backends)
        .patch(
            "from-flow",
            &apply(),
            &Patch::Apply(&json!({
                "apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "ReferenceGrant",
                "metadata": {"name": "from-flow"},
                "spec": {"from": [{"group": labels::gateway_api::GROUP, "kind": "GRPCRoute",
                                   "namespace": w.ns}],
                         "to": [{"group": "", "kind": "Service", "name": "rpc"}]},
            })),
        )
        .await?;
    w.apply::<GrpcRoute>(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GRPCRoute",
        "metadata": {"name": "rpc", "namespace": w.ns},
        "spec": {"parentRefs": [{"name": "web"}], "hostnames": [grpc],
                 "rules": [{"backendRefs": [{"name": "rpc", "namespace": backends, "port": 80}]}]},
    }))
    .await?;

    // Leaves in every cluster namespace, and downstream.
    for k in 1..=3 {
        let leaf_gw = w.leaf("web", k);
        let up = wait_for(
            &format!("leaf Gateway in cluster {k}'s namespace"),
            &w.placed::<Gateway>(k),
            &w.leaf_copy("web", k),
            |_| true,
        )
        .await?;
        ensure!(
            up.spec.gateway_class_name == "standin",
            "leaf Gateway class on cluster {k}: {}",
            up.spec.gateway_class_name
        );
        let down = wait_for(
            &format!("Gateway copy in cluster-{k}"),
            &w.down::<Gateway>(k),
            &leaf_gw,
            |_| true,
        )
        .await?;
        ensure!(down.spec.gateway_class_name == "standin");
        let route = wait_for(
            &format!("HTTPRoute copy in cluster-{k}"),
            &w.down::<HttpRoute>(k),
            &w.leaf("shop", k),
            |_| true,
        )
        .await?;
        let parents: Vec<String> = route
            .spec
            .parent_refs
            .iter()
            .flatten()
            .map(|p| p.name.clone())
            .collect();
        ensure!(
            parents == vec![leaf_gw.clone()],
            "the HTTPRoute copy in cluster-{k} has parentRefs {parents:?}"
        );
        wait_for(
            &format!("GRPCRoute copy in cluster-{k}"),
            &w.down::<GrpcRoute>(k),
            &w.leaf("rpc", k),
            |_| true,
        )
        .await?;
        wait_for(
            &format!("Service copy in cluster-{k}"),
            &w.down::<Service>(k),
            "web",
            |_| true,
        )
        .await?;
        let services: Api<Service> = Api::namespaced(w.downs[k - 1].clone(), &backends);
        wait_for(
            &format!("the cross-namespace Service copy in cluster-{k}"),
            &services,
            "rpc",
            |_| true,
        )
        .await?;
        let grants: Api<ReferenceGrant> = Api::namespaced(w.downs[k - 1].clone(), &backends);
        wait_for(
            &format!("the ReferenceGrant copy in cluster-{k}"),
            &grants,
            "from-flow",
            |_| true,
        )
        .await?;
        // The implementation's status came up to the leaf.
        let programmed = if k == 3 { "False" } else { "True" };
        wait_for(
            &format!("leaf Gateway status from cluster-{k}"),
            &w.placed::<Gateway>(k),
            &w.leaf_copy("web", k),
            |g| {
                gateway_condition(g, labels::gateway_api::PROGRAMMED).as_deref() == Some(programmed)
                    && gateway_addresses(g) == vec![lb(k)]
            },
        )
        .await?;
    }

    // The merged status: the programmed clusters' addresses.
    let root = wait_for(
        "the root Gateway's merged status",
        &w.api::<Gateway>(),
        "web",
        |g| {
            gateway_addresses(g) == vec![lb(1), lb(2)]
                && gateway_condition(g, labels::gateway_api::PROGRAMMED).as_deref() == Some("True")
        },
    )
    .await?;
    ensure!(
        gateway_condition(&root, labels::gateway_api::ACCEPTED).as_deref() == Some("True"),
        "root Gateway: {:?}",
        root.status
    );
    wait_for(
        "the root HTTPRoute's parents",
        &w.api::<HttpRoute>(),
        "shop",
        |r| {
            r.status.iter().flat_map(|s| s.parents.iter()).any(|p| {
                p.controller_name == labels::gateway_api::CONTROLLER_NAME
                    && p.parent_ref.name == "web"
                    && p.conditions
                        .iter()
                        .any(|c| c.type_ == labels::gateway_api::ACCEPTED && c.status == "True")
            })
        },
    )
    .await?;

    // The global object: hosts as the listener admits them (they fill in
    // as each route is accepted).
    let mut expected_hosts = vec![grpc.clone(), wild.clone(), www.clone()];
    expected_hosts.sort();
    let global = wait_for(
        &format!("GlobalIngress web.gateway with hosts {expected_hosts:?}"),
        &w.api::<GlobalIngress>(),
        "web.gateway",
        |g| g.spec.hosts == expected_hosts,
    )
    .await?;
    ensure!(
        global
            .owner_references()
            .iter()
            .any(|o| o.kind == "Gateway" && o.name == "web" && o.controller == Some(true)),
        "GlobalIngress owners: {:?}",
        global.owner_references()
    );

    // DNS: the programmed clusters only.
    let two = [lb(1), lb(2)];
    w.wait_answer(&www, &two).await?;
    println!(
        "gateway flow: root applied → DNS answers in {:?}",
        start.elapsed()
    );
    w.wait_answer(&w.host("x.w"), &two).await?;
    w.wait_answer(&grpc, &two).await?;
    let (_, got) = w.ask(&outside, RecordType::A).await.unwrap_or_default();
    ensure!(got.is_empty(), "{outside} answered {got:?}");

    // An edit: the route gains a hostname.
    let api_host = w.host("api");
    w.http_route(&[www.clone(), wild.clone(), outside.clone(), api_host.clone()])
        .await?;
    w.wait_answer(&api_host, &two).await?;

    // A placement change: cluster 2 leaves (only clusters 1 and 3 stay).
    let selector = format!(
        "{FLOW_LABEL}={},kcp-ingress.e2e/name notin ({})",
        w.tag,
        w.cluster(2)
    );
    label_clusters(&w).await?;
    w.gateway(&selector).await?;
    wait_gone(
        "the leaf Gateway on cluster 2",
        &w.placed::<Gateway>(2),
        &w.leaf_copy("web", 2),
    )
    .await?;
    wait_gone(
        "the Gateway copy in cluster-2",
        &w.down::<Gateway>(2),
        &w.leaf("web", 2),
    )
    .await?;
    wait_gone(
        "the HTTPRoute copy in cluster-2",
        &w.down::<HttpRoute>(2),
        &w.leaf("shop", 2),
    )
    .await?;
    w.wait_answer(&www, &[lb(1)]).await?;
    wait_for(
        "the root Gateway without cluster 2",
        &w.api::<Gateway>(),
        "web",
        |g| gateway_addresses(g) == vec![lb(1)],
    )
    .await?;

    // Deletion cleans everything up.
    w.api::<HttpRoute>()
        .delete("shop", &DeleteParams::default())
        .await?;
    w.api::<GrpcRoute>()
        .delete("rpc", &DeleteParams::default())
        .await?;
    w.api::<Gateway>()
        .delete("web", &DeleteParams::default())
        .await?;
    for k in 1..=3 {
        wait_gone(
            "a leaf Gateway",
            &w.placed::<Gateway>(k),
            &w.leaf_copy("web", k),
        )
        .await?;
        wait_gone(
            "a leaf HTTPRoute",
            &w.placed::<HttpRoute>(k),
            &w.leaf_copy("shop", k),
        )
        .await?;
        wait_gone("a Gateway copy", &w.down::<Gateway>(k), &w.leaf("web", k)).await?;
        wait_gone(
            "an HTTPRoute copy",
            &w.down::<HttpRoute>(k),
            &w.leaf("shop", k),
        )
        .await?;
        wait_gone(
            "a GRPCRoute copy",
            &w.down::<GrpcRoute>(k),
            &w.leaf("rpc", k),
        )
        .await?;
    }
    wait_gone(
        "GlobalIngress web.gateway",
        &w.api::<GlobalIngress>(),
        "web.gateway",
    )
    .await?;
    w.wait_nxdomain(&www).await?;
    w.wait_nxdomain(&w.host("x.w")).await?;
    w.wait_nxdomain(&api_host).await?;
    Ok(())
}

/// Labels each Cluster of the test with its own name
/// (`kcp-ingress.e2e/name`), so that a placement can leave one out.
async fn label_clusters(w: &World) -> anyhow::Result<()> {
    let clusters: Api<Cluster> = Api::all(w.cp.clone());
    for k in 1..=w.clusters {
        let name = w.cluster(k);
        clusters
            .patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": {"kcp-ingress.e2e/name": name}}})),
            )
            .await?;
    }
    Ok(())
}

/// A placed cluster without the class label gets no leaf Gateway; a
/// Gateway whose placement offers no class at all is not Accepted, with
/// no leaves and no global object published.
pub async fn clusters_without_a_class_get_no_leaves(env: &TestEnv) -> anyhow::Result<()> {
    let w = World::new(env, "noclass", &[Some("standin"), None], &[]).await?;
    w.wait_ready().await?;
    w.apply::<Service>(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": w.ns},
        "spec": {"ports": [{"port": 80, "targetPort": 8080}]},
    }))
    .await?;
    w.gateway(&format!("{FLOW_LABEL}={}", w.tag)).await?;
    let www = w.host("www");
    w.http_route(std::slice::from_ref(&www)).await?;
    w.wait_answer(&www, &[lb(1)]).await?;
    let placed2: Api<Gateway> = w.placed(2);
    ensure!(
        placed2.get_opt(&w.leaf_copy("web", 2)).await?.is_none(),
        "cluster 2 has no class but got a leaf Gateway"
    );
    let root = w.api::<Gateway>().get("web").await?;
    let messages: Vec<String> = root
        .status
        .iter()
        .flat_map(|s| s.conditions.iter().flatten())
        .map(|c| c.message.clone())
        .collect();
    ensure!(
        messages.iter().any(|m| m.contains(&w.cluster(2))),
        "the root Gateway's conditions do not name cluster 2: {messages:?}"
    );

    // Only the class-less cluster: nothing offers a class.
    label_clusters(&w).await?;
    w.gateway(&format!("kcp-ingress.e2e/name={}", w.cluster(2)))
        .await?;
    wait_for(
        "the root Gateway not Accepted",
        &w.api::<Gateway>(),
        "web",
        |g| gateway_condition(g, labels::gateway_api::ACCEPTED).as_deref() == Some("False"),
    )
    .await?;
    wait_gone(
        "the leaf Gateway on cluster 1",
        &w.placed::<Gateway>(1),
        &w.leaf_copy("web", 1),
    )
    .await?;
    w.wait_nxdomain(&www).await?;
    w.api::<Gateway>()
        .delete("web", &DeleteParams::default())
        .await?;
    w.api::<HttpRoute>()
        .delete("shop", &DeleteParams::default())
        .await?;
    Ok(())
}

/// A TLSRoute (experimental channel) through the whole flow: its leaf goes
/// down with the Gateway's, the stand-in accepts it on the TLS listener,
/// the status comes up and merges, and its hostname answers in DNS with
/// the cluster's address.
pub async fn a_tls_route_hostname_answers_in_dns(env: &TestEnv) -> anyhow::Result<()> {
    let w = World::new(env, "tls", &[Some("standin")], &[]).await?;
    w.wait_ready().await?;
    w.apply::<Service>(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "db", "namespace": w.ns},
        "spec": {"ports": [{"port": 5432}]},
    }))
    .await?;
    w.apply::<Gateway>(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": {"name": "edge", "namespace": w.ns,
                     "annotations": {labels::PLACEMENT_ANNOTATION: format!("{FLOW_LABEL}={}", w.tag)}},
        "spec": {"gatewayClassName": ROOT_CLASS, "listeners": [
            {"name": "tls", "port": 8443, "protocol": "TLS",
             "hostname": format!("*.{}", w.domain), "tls": {"mode": "Passthrough"}}
        ]},
    }))
    .await?;
    let db = w.host("db");
    w.apply::<TlsRoute>(json!({
        "apiVersion": "gateway.networking.k8s.io/v1alpha2", "kind": "TLSRoute",
        "metadata": {"name": "db", "namespace": w.ns},
        "spec": {"parentRefs": [{"name": "edge"}], "hostnames": [db],
                 "rules": [{"backendRefs": [{"name": "db", "port": 5432}]}]},
    }))
    .await?;
    let down = wait_for(
        "the TLSRoute copy in cluster-1",
        &w.down::<TlsRoute>(1),
        &w.leaf("db", 1),
        |r| {
            r.status.iter().flat_map(|s| &s.parents).any(|p| {
                p.conditions
                    .iter()
                    .any(|c| c.type_ == "Accepted" && c.status == "True")
            })
        },
    )
    .await?;
    let parent = &down.spec.parent_refs.as_ref().context("parentRefs")?[0];
    ensure!(
        parent.name == w.leaf("edge", 1),
        "parentRef downstream: {parent:?}"
    );
    wait_for(
        "the root TLSRoute accepted under kcp-ingress's controllerName",
        &w.api::<TlsRoute>(),
        "db",
        |r| {
            r.status.iter().flat_map(|s| &s.parents).any(|p| {
                p.controller_name == labels::gateway_api::CONTROLLER_NAME
                    && p.conditions
                        .iter()
                        .any(|c| c.type_ == "Accepted" && c.status == "True")
            })
        },
    )
    .await?;
    w.wait_answer(&db, &[lb(1)]).await?;
    w.api::<TlsRoute>()
        .delete("db", &DeleteParams::default())
        .await?;
    w.wait_nxdomain(&db).await?;
    w.api::<Gateway>()
        .delete("edge", &DeleteParams::default())
        .await?;
    Ok(())
}
