//! Gateway API roots through the controller against the real control plane
//! (issue #15). The tests play the syncers: they write Cluster health and
//! the leaves' status themselves, as a conformant implementation in each
//! cluster would report it (controllerName `kcp-ingress.dev/standin`).
//! Each test runs its own controller (the group is serial), its own
//! namespace, GatewayClass and Clusters (selected by a label only its
//! roots ask for).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use k8s_openapi::api::core::v1::{Namespace, Secret, Service};
use k8s_openapi::jiff::Timestamp;
use kcp_ingress::apis::{Cluster, ClusterSpec, GlobalIngress, PlacedObject};
use kcp_ingress::gateway_api::gateway::Gateway;
use kcp_ingress::gateway_api::gateway_class::GatewayClass;
use kcp_ingress::gateway_api::grpc_route::GrpcRoute;
use kcp_ingress::gateway_api::http_route::HttpRoute;
use kcp_ingress::gateway_api::reference_grant::ReferenceGrant;
use kcp_ingress::gateway_api::tcp_route::TcpRoute;
use kcp_ingress::gateway_api::tls_route::TlsRoute;
use kcp_ingress::labels::{self, gateway_api as gw};
use kcp_ingress::mailbox;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, Resource, ResourceExt};
use serde_json::{Value, json};

use crate::env::{Process, TestEnv};
use crate::support::eventually;

/// How long a converging step may take in these tests.
const CONVERGE: Duration = Duration::from_secs(30);
/// The implementation the tests play in each cluster.
const STANDIN: &str = "kcp-ingress.dev/standin";

struct World {
    client: Client,
    ns: String,
    tag: String,
    /// kcp-ingress's GatewayClass of this test.
    class: String,
    _controller: Process,
}

impl World {
    async fn new(env: &TestEnv, tag: &str) -> anyhow::Result<Self> {
        let client = env.client("control-plane").await?;
        let ns = format!("gw-{tag}");
        Api::<Namespace>::all(client.clone())
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": ns}}))?,
            )
            .await
            .with_context(|| format!("creating namespace {ns}"))?;
        let class = format!("kcp-ingress-{tag}");
        Api::<GatewayClass>::all(client.clone())
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({
                    "metadata": {"name": class},
                    "spec": {"controllerName": gw::CONTROLLER_NAME},
                }))?,
            )
            .await
            .with_context(|| format!("creating GatewayClass {class}"))?;
        let kubeconfig = env.kubeconfig("control-plane");
        let controller = env.spawn_kcp_ingress(
            &format!("gateway-controller-{tag}"),
            &[
                "controller",
                "--kubeconfig",
                kubeconfig.to_str().context("kubeconfig path")?,
            ],
        )?;
        Ok(Self {
            client,
            ns,
            tag: tag.to_string(),
            class,
            _controller: controller,
        })
    }

    fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    fn in_cluster_ns<K>(&self, cluster: &str) -> Api<K>
    where
        K: Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        Api::namespaced(self.client.clone(), &mailbox::cluster_namespace(cluster))
    }

    fn cluster_name(&self, i: usize) -> String {
        format!("{}-c{i}", self.tag)
    }

    /// A healthy Cluster for this test, offering the class `class` (or none).
    async fn add_cluster(&self, i: usize, class: Option<&str>) -> anyhow::Result<String> {
        let name = self.cluster_name(i);
        let mut cluster = Cluster::new(&name, ClusterSpec::default());
        let mut l = BTreeMap::from([("e2e-test".to_string(), self.tag.clone())]);
        if let Some(class) = class {
            l.insert(gw::CLASS_LABEL.to_string(), class.to_string());
        }
        cluster.metadata.labels = Some(l);
        Api::<Cluster>::all(self.client.clone())
            .create(&PostParams::default(), &cluster)
            .await
            .with_context(|| format!("creating Cluster {name}"))?;
        let now = Timestamp::now().to_string();
        let status = json!({
            "apiVersion": "kcp-ingress.dev/v1alpha1", "kind": "Cluster",
            "status": {
                "lastHeartbeatTime": now,
                "conditions": [{"type": "Ready", "status": "True", "reason": "E2E", "message": "", "lastTransitionTime": now}],
            },
        });
        Api::<Cluster>::all(self.client.clone())
            .patch_status(
                &name,
                &PatchParams::apply("e2e-syncer").force(),
                &Patch::Apply(&status),
            )
            .await?;
        Ok(name)
    }

    async fn apply<K>(&self, body: Value) -> anyhow::Result<()>
    where
        K: Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let name = body["metadata"]["name"]
            .as_str()
            .context("name")?
            .to_string();
        self.api::<K>()
            .patch(
                &name,
                &PatchParams::apply("e2e-user").force(),
                &Patch::Apply(&body),
            )
            .await
            .with_context(|| format!("applying {} {name}", K::kind(&())))?;
        Ok(())
    }

    async fn service(&self, name: &str) -> anyhow::Result<()> {
        self.apply::<Service>(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name},
            "spec": {"ports": [{"port": 80}], "selector": {"app": name}},
        }))
        .await
    }

    async fn secret(&self, name: &str) -> anyhow::Result<()> {
        self.apply::<Secret>(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name}, "type": "kubernetes.io/tls",
            "stringData": {"tls.crt": "not-a-real-cert", "tls.key": "not-a-real-key"},
        }))
        .await
    }

    async fn gateway(&self, name: &str, listeners: Value) -> anyhow::Result<()> {
        self.apply::<Gateway>(json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": name, "annotations": {labels::PLACEMENT_ANNOTATION: format!("e2e-test={}", self.tag)}},
            "spec": {"gatewayClassName": self.class, "listeners": listeners},
        }))
        .await
    }

    async fn http_route(
        &self,
        name: &str,
        parents: Value,
        hostnames: &[&str],
        backend: Value,
    ) -> anyhow::Result<()> {
        self.apply::<HttpRoute>(json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": name},
            "spec": {"parentRefs": parents, "hostnames": hostnames, "rules": [{"backendRefs": [backend]}]},
        }))
        .await
    }

    /// `<ns>.<root>--<cluster>`, where the leaf of `root` lives.
    fn leaf_name(&self, root: &str, cluster: &str) -> String {
        mailbox::copy_name(&self.ns, &format!("{root}--{cluster}")).expect("short")
    }

    /// The clusters (of `clusters`) whose namespace holds the leaf of `root` of kind `K`.
    async fn leaves<K>(&self, root: &str, clusters: &[String]) -> anyhow::Result<Vec<String>>
    where
        K: Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let mut out = Vec::new();
        for c in clusters {
            if self
                .in_cluster_ns::<K>(c)
                .get_opt(&self.leaf_name(root, c))
                .await?
                .is_some()
            {
                out.push(c.clone());
            }
        }
        Ok(out)
    }

    /// Writes a leaf Gateway's status as the implementation in `cluster` would.
    async fn set_leaf_gateway(
        &self,
        root: &str,
        cluster: &str,
        ip: &str,
        programmed: bool,
    ) -> anyhow::Result<()> {
        let now = Timestamp::now().to_string();
        let cond = |t: &str, ok: bool| json!({"type": t, "status": if ok {"True"} else {"False"}, "reason": if ok {t} else {"Pending"}, "message": "", "lastTransitionTime": now});
        let body = json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "status": {
                "addresses": [{"type": "IPAddress", "value": ip}],
                "conditions": [cond(gw::ACCEPTED, true), cond(gw::PROGRAMMED, programmed)],
            },
        });
        self.in_cluster_ns::<Gateway>(cluster)
            .patch_status(
                &self.leaf_name(root, cluster),
                &PatchParams::apply("e2e-syncer").force(),
                &Patch::Apply(&body),
            )
            .await
            .with_context(|| format!("status of the leaf Gateway {root} in {cluster}"))?;
        Ok(())
    }

    /// Writes a leaf route's `status.parents` as the implementation in
    /// `cluster` would: accepted on each of its (leaf) parentRefs.
    async fn set_leaf_route<K>(&self, root: &str, cluster: &str) -> anyhow::Result<()>
    where
        K: Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + serde::Serialize
            + std::fmt::Debug,
    {
        let api = self.in_cluster_ns::<K>(cluster);
        let name = self.leaf_name(root, cluster);
        let leaf = serde_json::to_value(api.get(&name).await?)?;
        let now = Timestamp::now().to_string();
        let parents: Vec<Value> = leaf["spec"]["parentRefs"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| json!({
                "parentRef": p, "controllerName": STANDIN,
                "conditions": [
                    {"type": "Accepted", "status": "True", "reason": "Accepted", "message": "", "lastTransitionTime": now},
                    {"type": "ResolvedRefs", "status": "True", "reason": "ResolvedRefs", "message": "", "lastTransitionTime": now},
                ],
            }))
            .collect();
        let body = json!({"apiVersion": K::api_version(&()), "kind": K::kind(&()), "status": {"parents": parents}});
        api.patch_status(
            &name,
            &PatchParams::apply("e2e-syncer").force(),
            &Patch::Apply(&body),
        )
        .await
        .with_context(|| format!("status of the leaf {} {root} in {cluster}", K::kind(&())))?;
        Ok(())
    }

    async fn root_gateway(&self, name: &str) -> anyhow::Result<Value> {
        Ok(serde_json::to_value(
            self.api::<Gateway>().get(name).await?,
        )?)
    }

    async fn warning_reasons(&self) -> anyhow::Result<BTreeSet<String>> {
        let events: Api<k8s_openapi::api::core::v1::Event> = self.api();
        Ok(events
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter(|e| e.type_.as_deref() == Some("Warning"))
            .filter_map(|e| e.reason)
            .collect())
    }
}

/// The condition of `type_` in a JSON list of conditions: (status, reason, message).
fn condition(conditions: &Value, type_: &str) -> Option<(String, String, String)> {
    conditions
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
            (s("status"), s("reason"), s("message"))
        })
}

/// A Gateway, an HTTPRoute and a GRPCRoute split into leaves on the
/// clusters that offer a class (names, class mapping, translated
/// parentRefs, dependencies, the GlobalIngress `<gw>.gateway`); merged
/// status (a leaf not Programmed kept out of the addresses); hosts; a
/// placement change; deletion cleans leaves, copies and the GlobalIngress.
pub async fn gateway_and_routes_split_merge_and_clean_up(env: &TestEnv) -> anyhow::Result<()> {
    let world = World::new(env, "split").await?;
    let c1 = world.add_cluster(1, Some("standin")).await?;
    let c2 = world.add_cluster(2, Some("other")).await?;
    let c3 = world.add_cluster(3, None).await?;
    let all = vec![c1.clone(), c2.clone(), c3.clone()];
    world.service("web").await?;
    world.secret("tls").await?;
    // A backend in another namespace, allowed by a ReferenceGrant there.
    let backends = format!("{}-backends", world.ns);
    Api::<Namespace>::all(world.client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": backends}}))?,
        )
        .await?;
    let manager = PatchParams::apply("e2e-user").force();
    Api::<Service>::namespaced(world.client.clone(), &backends)
        .patch(
            "api",
            &manager,
            &Patch::Apply(
                &json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api"},
            "spec": {"ports": [{"port": 80}], "selector": {"app": "api"}}}),
            ),
        )
        .await?;
    Api::<ReferenceGrant>::namespaced(world.client.clone(), &backends)
        .patch(
            "from-split",
            &manager,
            &Patch::Apply(
                &json!({"apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "ReferenceGrant",
            "metadata": {"name": "from-split"},
            "spec": {"from": [{"group": gw::GROUP, "kind": "HTTPRoute", "namespace": world.ns}],
                     "to": [{"group": "", "kind": "Service", "name": "api"}]}}),
            ),
        )
        .await?;
    world
        .gateway(
            "gw",
            json!([
                {"name": "http", "port": 80, "protocol": "HTTP", "hostname": "*.gw.kcp-ingress.test"},
                {"name": "https", "port": 443, "protocol": "HTTPS", "hostname": "secure.gw.kcp-ingress.test",
                 "tls": {"mode": "Terminate", "certificateRefs": [{"name": "tls"}]}},
            ]),
        )
        .await?;
    world
        .apply::<HttpRoute>(json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "shop"},
            "spec": {"parentRefs": [{"name": "gw"}], "hostnames": ["shop.gw.kcp-ingress.test", "shop.elsewhere.test"],
                     "rules": [{"backendRefs": [{"name": "web", "port": 80}]},
                               {"matches": [{"path": {"type": "PathPrefix", "value": "/api"}}],
                                "backendRefs": [{"name": "api", "namespace": backends, "port": 80}]}]},
        }))
        .await?;
    world
        .apply::<GrpcRoute>(json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GRPCRoute",
            "metadata": {"name": "rpc"},
            "spec": {"parentRefs": [{"name": "gw", "sectionName": "http"}], "hostnames": ["rpc.gw.kcp-ingress.test"],
                     "rules": [{"backendRefs": [{"name": "web", "port": 80}]}]},
        }))
        .await?;

    eventually("the GatewayClass accepted", CONVERGE, || async {
        let class = Api::<GatewayClass>::all(world.client.clone())
            .get(&world.class)
            .await?;
        let status = serde_json::to_value(&class.status)?;
        Ok(condition(&status["conditions"], "Accepted").filter(|c| c.0 == "True"))
    })
    .await?;
    let both = vec![c1.clone(), c2.clone()];
    eventually(
        "leaves on the clusters that offer a class",
        CONVERGE,
        || async {
            let gws = world.leaves::<Gateway>("gw", &all).await?;
            let https = world.leaves::<HttpRoute>("shop", &all).await?;
            let grpcs = world.leaves::<GrpcRoute>("rpc", &all).await?;
            Ok((gws == both && https == both && grpcs == both).then_some(()))
        },
    )
    .await?;
    for (cluster, class) in [(&c1, "standin"), (&c2, "other")] {
        let leaf = world
            .in_cluster_ns::<Gateway>(cluster)
            .get(&world.leaf_name("gw", cluster))
            .await?;
        ensure!(
            leaf.spec.gateway_class_name == class,
            "class in {cluster}: {}",
            leaf.spec.gateway_class_name
        );
        ensure!(
            leaf.labels().get(labels::ROOT_LABEL).map(String::as_str) == Some("gw"),
            "root label"
        );
        let route = world
            .in_cluster_ns::<HttpRoute>(cluster)
            .get(&world.leaf_name("shop", cluster))
            .await?;
        let parents: Vec<String> = route
            .spec
            .parent_refs
            .iter()
            .flatten()
            .map(|p| p.name.clone())
            .collect();
        ensure!(
            parents == [format!("gw--{cluster}")],
            "parentRefs in {cluster}: {parents:?}"
        );
        let grpc = world
            .in_cluster_ns::<GrpcRoute>(cluster)
            .get(&world.leaf_name("rpc", cluster))
            .await?;
        let p = &grpc.spec.parent_refs.as_ref().context("grpc parents")?[0];
        ensure!(
            p.name == format!("gw--{cluster}") && p.section_name.as_deref() == Some("http"),
            "grpc parentRef {p:?}"
        );
    }
    eventually(
        "dependencies copied to the placed clusters only",
        CONVERGE,
        || async {
            let mut have = Vec::new();
            for c in &all {
                let placed = world.in_cluster_ns::<PlacedObject>(c);
                let svc = placed
                    .get_opt(&format!("{}.web.services", world.ns))
                    .await?
                    .is_some();
                let sec = world
                    .in_cluster_ns::<Secret>(c)
                    .get_opt(&format!("{}.tls", world.ns))
                    .await?
                    .is_some();
                let api = placed
                    .get_opt(&format!("{backends}.api.services"))
                    .await?
                    .is_some();
                let grant = placed
                    .get_opt(&format!(
                        "{backends}.from-split.referencegrants.gateway.networking.k8s.io"
                    ))
                    .await?
                    .is_some();
                have.push((svc, sec, api, grant));
            }
            let placed = (true, true, true, true);
            Ok((have == [placed, placed, (false, false, false, false)]).then_some(()))
        },
    )
    .await?;
    let global = eventually("the GlobalIngress gw.gateway", CONVERGE, || async {
        Ok(world.api::<GlobalIngress>().get_opt("gw.gateway").await?)
    })
    .await?;
    let root = global.spec.root.clone().context("spec.root")?;
    ensure!(
        (root.group.as_str(), root.kind.as_str(), root.name.as_str())
            == (gw::GROUP, "Gateway", "gw"),
        "spec.root {root:?}"
    );
    let owner = &global.owner_references()[0];
    ensure!(
        owner.kind == "Gateway" && owner.controller == Some(true),
        "owner {owner:?}"
    );
    eventually(
        "the root Gateway names the cluster without a class",
        CONVERGE,
        || async {
            let g = world.root_gateway("gw").await?;
            Ok(condition(&g["status"]["conditions"], "Programmed").filter(|c| c.2.contains(&c3)))
        },
    )
    .await?;

    // The implementations report: c1 programmed, c2 not.
    world.set_leaf_gateway("gw", &c1, "127.0.1.1", true).await?;
    world
        .set_leaf_gateway("gw", &c2, "127.0.1.2", false)
        .await?;
    for c in [&c1, &c2] {
        world.set_leaf_route::<HttpRoute>("shop", c).await?;
        world.set_leaf_route::<GrpcRoute>("rpc", c).await?;
    }
    eventually(
        "merged Gateway status: c2 (not programmed) kept out",
        CONVERGE,
        || async {
            let g = world.root_gateway("gw").await?;
            let addresses: Vec<&str> = g["status"]["addresses"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| a["value"].as_str())
                .collect();
            let programmed = condition(&g["status"]["conditions"], "Programmed");
            if addresses != ["127.0.1.1"]
                || programmed.as_ref().map(|c| c.0.as_str()) != Some("True")
            {
                bail!("addresses {addresses:?}, Programmed {programmed:?}");
            }
            Ok(Some(()))
        },
    )
    .await?;
    eventually(
        "merged route status under kcp-ingress's controllerName",
        CONVERGE,
        || async {
            let r = serde_json::to_value(world.api::<HttpRoute>().get("shop").await?)?;
            let ours = r["status"]["parents"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|p| p["controllerName"] == gw::CONTROLLER_NAME)
                .cloned();
            Ok(ours
                .and_then(|p| condition(&p["conditions"], "Accepted"))
                .filter(|c| c.0 == "True"))
        },
    )
    .await?;
    eventually("GlobalIngress hosts and clusters", CONVERGE, || async {
        let g = world.api::<GlobalIngress>().get("gw.gateway").await?;
        let clusters: Vec<(String, Vec<String>)> = g
            .status
            .unwrap_or_default()
            .clusters
            .into_iter()
            .map(|c| {
                (
                    c.cluster,
                    c.addresses.into_iter().filter_map(|a| a.ip).collect(),
                )
            })
            .collect();
        let want_hosts = ["rpc.gw.kcp-ingress.test", "shop.gw.kcp-ingress.test"];
        let want_clusters = vec![
            (c1.clone(), vec!["127.0.1.1".to_string()]),
            (c2.clone(), vec![]),
        ];
        if g.spec.hosts != want_hosts || clusters != want_clusters {
            bail!("hosts {:?}, clusters {clusters:?}", g.spec.hosts);
        }
        Ok(Some(()))
    })
    .await?;

    // An edit: the route's hostnames change; its leaves and the Gateway's hosts follow.
    world
        .apply::<HttpRoute>(json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "shop"},
            "spec": {"parentRefs": [{"name": "gw"}], "hostnames": ["shop2.gw.kcp-ingress.test"],
                     "rules": [{"backendRefs": [{"name": "web", "port": 80}]},
                               {"matches": [{"path": {"type": "PathPrefix", "value": "/api"}}],
                                "backendRefs": [{"name": "api", "namespace": backends, "port": 80}]}]},
        }))
        .await?;
    eventually(
        "the edit reaches the leaves and the hosts",
        CONVERGE,
        || async {
            let leaf = world
                .in_cluster_ns::<HttpRoute>(&c1)
                .get(&world.leaf_name("shop", &c1))
                .await?;
            let g = world.api::<GlobalIngress>().get("gw.gateway").await?;
            let want = ["rpc.gw.kcp-ingress.test", "shop2.gw.kcp-ingress.test"];
            let leaf_hosts = leaf.spec.hostnames.clone().unwrap_or_default();
            if leaf_hosts != ["shop2.gw.kcp-ingress.test"] || g.spec.hosts != want {
                bail!("leaf hostnames {leaf_hosts:?}, hosts {:?}", g.spec.hosts);
            }
            Ok(Some(()))
        },
    )
    .await?;

    // Placement change: c2 stops offering a class.
    let unlabel = json!({"metadata": {"labels": {gw::CLASS_LABEL: null}}});
    Api::<Cluster>::all(world.client.clone())
        .patch(&c2, &PatchParams::default(), &Patch::Merge(&unlabel))
        .await?;
    let only = vec![c1.clone()];
    eventually("c2's leaves and copies go", CONVERGE, || async {
        let gws = world.leaves::<Gateway>("gw", &all).await?;
        let https = world.leaves::<HttpRoute>("shop", &all).await?;
        let sec = world
            .in_cluster_ns::<Secret>(&c2)
            .get_opt(&format!("{}.tls", world.ns))
            .await?;
        Ok((gws == only && https == only && sec.is_none()).then_some(()))
    })
    .await?;

    // Deletion: leaves, copies and the GlobalIngress go.
    world
        .api::<HttpRoute>()
        .delete("shop", &DeleteParams::default())
        .await?;
    world
        .api::<GrpcRoute>()
        .delete("rpc", &DeleteParams::default())
        .await?;
    world
        .api::<Gateway>()
        .delete("gw", &DeleteParams::default())
        .await?;
    eventually("everything cleaned up", CONVERGE, || async {
        let gws = world.leaves::<Gateway>("gw", &all).await?;
        let https = world.leaves::<HttpRoute>("shop", &all).await?;
        let grpcs = world.leaves::<GrpcRoute>("rpc", &all).await?;
        let global = world.api::<GlobalIngress>().get_opt("gw.gateway").await?;
        let copy = world
            .in_cluster_ns::<PlacedObject>(&c1)
            .get_opt(&format!("{}.web.services", world.ns))
            .await?;
        let root = world.api::<Gateway>().get_opt("gw").await?;
        let grant = world
            .in_cluster_ns::<PlacedObject>(&c1)
            .get_opt(&format!(
                "{backends}.from-split.referencegrants.gateway.networking.k8s.io"
            ))
            .await?;
        Ok((gws.is_empty()
            && https.is_empty()
            && grpcs.is_empty()
            && global.is_none()
            && copy.is_none()
            && grant.is_none()
            && root.is_none())
        .then_some(()))
    })
    .await?;
    Ok(())
}

/// Our entry (kcp-ingress's controllerName) of a root route's
/// `status.parents` for the parentRef named `section`: its `type_` condition.
async fn our_parent_condition<K>(
    world: &World,
    route: &str,
    section: &str,
    type_: &str,
) -> anyhow::Result<Option<(String, String, String)>>
where
    K: Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
{
    let r = serde_json::to_value(world.api::<K>().get(route).await?)?;
    Ok(r["status"]["parents"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| {
            p["controllerName"] == gw::CONTROLLER_NAME && p["parentRef"]["sectionName"] == section
        })
        .and_then(|p| condition(&p["conditions"], type_)))
}

/// The experimental route kinds through the same path: a TLSRoute and a
/// TCPRoute on a Gateway with TLS and TCP listeners split into leaves per
/// cluster with translated parentRefs, their status.parents merged, the
/// TLSRoute's hostname (∩ the listener's) in the GlobalIngress hosts and
/// the TCPRoute adding none; a TLSRoute on an HTTP listener is reported
/// `NotAllowedByListeners` with an Event.
pub async fn tls_and_tcp_routes_split_and_merge(env: &TestEnv) -> anyhow::Result<()> {
    let world = World::new(env, "xr").await?;
    let c1 = world.add_cluster(1, Some("standin")).await?;
    let c2 = world.add_cluster(2, Some("other")).await?;
    let both = vec![c1.clone(), c2.clone()];
    world.service("db").await?;
    world
        .gateway(
            "edge",
            json!([
                {"name": "http", "port": 80, "protocol": "HTTP", "hostname": "*.edge.kcp-ingress.test"},
                {"name": "tls", "port": 8443, "protocol": "TLS", "hostname": "*.edge.kcp-ingress.test",
                 "tls": {"mode": "Passthrough"}},
                {"name": "tcp", "port": 9000, "protocol": "TCP"},
            ]),
        )
        .await?;
    let v1alpha2 = "gateway.networking.k8s.io/v1alpha2";
    world
        .apply::<TlsRoute>(json!({
            "apiVersion": v1alpha2, "kind": "TLSRoute",
            "metadata": {"name": "secure"},
            "spec": {"parentRefs": [{"name": "edge", "sectionName": "tls"}],
                     "hostnames": ["db.edge.kcp-ingress.test", "db.elsewhere.test"],
                     "rules": [{"backendRefs": [{"name": "db", "port": 5432}]}]},
        }))
        .await?;
    world
        .apply::<TcpRoute>(json!({
            "apiVersion": v1alpha2, "kind": "TCPRoute",
            "metadata": {"name": "raw"},
            "spec": {"parentRefs": [{"name": "edge", "sectionName": "tcp"}],
                     "rules": [{"backendRefs": [{"name": "db", "port": 5432}]}]},
        }))
        .await?;
    world
        .apply::<TlsRoute>(json!({
            "apiVersion": v1alpha2, "kind": "TLSRoute",
            "metadata": {"name": "misplaced"},
            "spec": {"parentRefs": [{"name": "edge", "sectionName": "http"}],
                     "hostnames": ["wrong.edge.kcp-ingress.test"],
                     "rules": [{"backendRefs": [{"name": "db", "port": 5432}]}]},
        }))
        .await?;

    eventually("TLSRoute and TCPRoute leaves", CONVERGE, || async {
        let gws = world.leaves::<Gateway>("edge", &both).await?;
        let tls = world.leaves::<TlsRoute>("secure", &both).await?;
        let tcp = world.leaves::<TcpRoute>("raw", &both).await?;
        Ok((gws == both && tls == both && tcp == both).then_some(()))
    })
    .await?;
    for cluster in &both {
        let tls = world
            .in_cluster_ns::<TlsRoute>(cluster)
            .get(&world.leaf_name("secure", cluster))
            .await?;
        let p = &tls.spec.parent_refs.as_ref().context("tls parents")?[0];
        ensure!(
            p.name == format!("edge--{cluster}") && p.section_name.as_deref() == Some("tls"),
            "TLSRoute parentRef in {cluster}: {p:?}"
        );
        ensure!(
            tls.labels().get(labels::ROOT_LABEL).map(String::as_str) == Some("secure"),
            "root label"
        );
        let tcp = world
            .in_cluster_ns::<TcpRoute>(cluster)
            .get(&world.leaf_name("raw", cluster))
            .await?;
        let p = &tcp.spec.parent_refs.as_ref().context("tcp parents")?[0];
        ensure!(
            p.name == format!("edge--{cluster}") && p.section_name.as_deref() == Some("tcp"),
            "TCPRoute parentRef in {cluster}: {p:?}"
        );
    }

    // The implementations report.
    world
        .set_leaf_gateway("edge", &c1, "127.0.1.1", true)
        .await?;
    world
        .set_leaf_gateway("edge", &c2, "127.0.1.2", true)
        .await?;
    for c in &both {
        world.set_leaf_route::<TlsRoute>("secure", c).await?;
        world.set_leaf_route::<TcpRoute>("raw", c).await?;
    }
    eventually("merged TLSRoute and TCPRoute parents", CONVERGE, || async {
        let mut got = Vec::new();
        for (route, section) in [("secure", "tls"), ("raw", "tcp")] {
            for t in ["Accepted", "ResolvedRefs"] {
                let c = if route == "secure" {
                    our_parent_condition::<TlsRoute>(&world, route, section, t).await?
                } else {
                    our_parent_condition::<TcpRoute>(&world, route, section, t).await?
                };
                got.push(c.map(|c| c.0));
            }
        }
        let yes = Some("True".to_string());
        if got != [yes.clone(), yes.clone(), yes.clone(), yes] {
            bail!("Accepted/ResolvedRefs of secure, raw: {got:?}");
        }
        Ok(Some(()))
    })
    .await?;
    eventually("the TLSRoute's hostname in the hosts", CONVERGE, || async {
        let g = world.api::<GlobalIngress>().get_opt("edge.gateway").await?;
        let hosts = g.map(|g| g.spec.hosts).unwrap_or_default();
        if hosts != ["db.edge.kcp-ingress.test"] {
            bail!("hosts {hosts:?}");
        }
        Ok(Some(()))
    })
    .await?;
    eventually(
        "a TLSRoute on an HTTP listener: NotAllowedByListeners",
        CONVERGE,
        || async {
            let c =
                our_parent_condition::<TlsRoute>(&world, "misplaced", "http", "Accepted").await?;
            let events = world.warning_reasons().await?;
            Ok(c.filter(|c| {
                c.0 == "False"
                    && c.1 == gw::NOT_ALLOWED_BY_LISTENERS
                    && events.contains(gw::NOT_ALLOWED_BY_LISTENERS)
            }))
        },
    )
    .await?;

    // Deletion cleans the leaves.
    for name in ["secure", "misplaced"] {
        world
            .api::<TlsRoute>()
            .delete(name, &DeleteParams::default())
            .await?;
    }
    world
        .api::<TcpRoute>()
        .delete("raw", &DeleteParams::default())
        .await?;
    eventually("TLSRoute and TCPRoute leaves gone", CONVERGE, || async {
        let tls = world.leaves::<TlsRoute>("secure", &both).await?;
        let tcp = world.leaves::<TcpRoute>("raw", &both).await?;
        let misplaced = world.leaves::<TlsRoute>("misplaced", &both).await?;
        let root = world.api::<TlsRoute>().get_opt("secure").await?;
        Ok(
            (tls.is_empty() && tcp.is_empty() && misplaced.is_empty() && root.is_none())
                .then_some(()),
        )
    })
    .await?;
    Ok(())
}

/// Each bad input of the contract is reported on its root with the spec's
/// reason and an Event; a good Gateway keeps converging.
pub async fn bad_gateway_api_input_is_reported(env: &TestEnv) -> anyhow::Result<()> {
    let world = World::new(env, "bad").await?;
    let c1 = world.add_cluster(1, Some("standin")).await?;
    world.service("web").await?;
    // Two listeners that select by one hostname on one port (HTTPS and
    // TLS, both by SNI); the HTTPS one's Secret is missing.
    world
        .gateway(
            "conflicts",
            json!([
                {"name": "a", "port": 443, "protocol": "HTTPS", "hostname": "x.bad.kcp-ingress.test",
                 "tls": {"mode": "Terminate", "certificateRefs": [{"name": "missing"}]}},
                {"name": "b", "port": 443, "protocol": "TLS", "hostname": "x.bad.kcp-ingress.test",
                 "tls": {"mode": "Passthrough"}},
            ]),
        )
        .await?;
    // A Gateway placed only where no class is offered.
    world.add_cluster(2, None).await?;
    world
        .apply::<Gateway>(json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": "classless", "annotations": {labels::PLACEMENT_ANNOTATION: format!("e2e-test={},!{}", world.tag, gw::CLASS_LABEL)}},
            "spec": {"gatewayClassName": world.class, "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]},
        }))
        .await?;
    world
        .gateway(
            "good",
            json!([{"name": "http", "port": 80, "protocol": "HTTP"}]),
        )
        .await?;
    // A route to no Gateway; a route to a Service of another namespace.
    world
        .http_route(
            "orphan",
            json!([{"name": "missing"}]),
            &["o.bad.kcp-ingress.test"],
            json!({"name": "web", "port": 80}),
        )
        .await?;
    world
        .http_route(
            "crossns",
            json!([{"name": "good"}]),
            &["c.bad.kcp-ingress.test"],
            json!({"name": "web", "namespace": "default", "port": 80}),
        )
        .await?;

    eventually(
        "listener conflicts and the missing Secret on the Gateway",
        CONVERGE,
        || async {
            let g = world.root_gateway("conflicts").await?;
            let accepted = condition(&g["status"]["conditions"], "Accepted");
            let listener = |n: &str| {
                g["status"]["listeners"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|l| l["name"] == n)
                    .map(|l| l["conditions"].clone())
                    .unwrap_or(Value::Null)
            };
            let a = condition(&listener("a"), gw::CONFLICTED);
            let tls = condition(&listener("a"), gw::RESOLVED_REFS);
            let ok = accepted
                .as_ref()
                .is_some_and(|c| c.0 == "False" && c.1 == gw::LISTENERS_NOT_VALID)
                && a.as_ref()
                    .is_some_and(|c| c.0 == "True" && c.1 == gw::HOSTNAME_CONFLICT)
                && tls
                    .as_ref()
                    .is_some_and(|c| c.0 == "False" && c.1 == gw::INVALID_CERTIFICATE_REF);
            if !ok {
                bail!("Accepted {accepted:?}, a {a:?}, tls {tls:?}");
            }
            Ok(Some(()))
        },
    )
    .await?;
    eventually(
        "NoResources on the Gateway no cluster offers a class for",
        CONVERGE,
        || async {
            let g = world.root_gateway("classless").await?;
            Ok(condition(&g["status"]["conditions"], "Accepted")
                .filter(|c| c.0 == "False" && c.1 == gw::NO_RESOURCES))
        },
    )
    .await?;
    let route_condition = |name: &'static str, type_: &'static str| {
        let world = &world;
        async move {
            let r = serde_json::to_value(world.api::<HttpRoute>().get(name).await?)?;
            let ours = r["status"]["parents"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|p| p["controllerName"] == gw::CONTROLLER_NAME)
                .cloned();
            anyhow::Ok(ours.and_then(|p| condition(&p["conditions"], type_)))
        }
    };
    eventually(
        "NoMatchingParent on the route to no Gateway",
        CONVERGE,
        || async {
            Ok(route_condition("orphan", "Accepted")
                .await?
                .filter(|c| c.0 == "False" && c.1 == gw::NO_MATCHING_PARENT))
        },
    )
    .await?;
    eventually(
        "RefNotPermitted on the route to another namespace",
        CONVERGE,
        || async {
            Ok(route_condition("crossns", "ResolvedRefs")
                .await?
                .filter(|c| c.0 == "False" && c.1 == gw::REF_NOT_PERMITTED))
        },
    )
    .await?;
    eventually("Warning Events name each problem", CONVERGE, || async {
        let reasons = world.warning_reasons().await?;
        let want = [
            gw::HOSTNAME_CONFLICT,
            gw::INVALID_CERTIFICATE_REF,
            gw::NO_RESOURCES,
            gw::NO_MATCHING_PARENT,
            gw::REF_NOT_PERMITTED,
        ];
        if !want.iter().all(|r| reasons.contains(*r)) {
            bail!("Warning reasons so far: {reasons:?}");
        }
        Ok(Some(()))
    })
    .await?;
    // An Ingress named like a Gateway's GlobalIngress holds that name: the
    // Gateway reports it and leaves the Ingress's GlobalIngress alone.
    world
        .apply::<k8s_openapi::api::networking::v1::Ingress>(json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "col.gateway", "annotations": {labels::PLACEMENT_ANNOTATION: format!("e2e-test={}", world.tag)}},
            "spec": {"rules": [{"host": "col.bad.kcp-ingress.test", "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]},
        }))
        .await?;
    eventually(
        "the Ingress's GlobalIngress col.gateway",
        CONVERGE,
        || async {
            let g = world.api::<GlobalIngress>().get_opt("col.gateway").await?;
            Ok(g.filter(|g| g.spec.root.as_ref().is_some_and(|r| r.kind == "Ingress")))
        },
    )
    .await?;
    world
        .gateway(
            "col",
            json!([{"name": "http", "port": 80, "protocol": "HTTP"}]),
        )
        .await?;
    eventually(
        "GlobalIngressNameTaken on the Gateway",
        CONVERGE,
        || async {
            let g = world.root_gateway("col").await?;
            Ok(condition(&g["status"]["conditions"], gw::GLOBAL_INGRESS)
                .filter(|c| c.0 == "False" && c.1 == labels::reasons::GLOBAL_INGRESS_NAME_TAKEN))
        },
    )
    .await?;
    eventually("the GlobalIngressNameTaken Event", CONVERGE, || async {
        Ok(world
            .warning_reasons()
            .await?
            .contains(labels::reasons::GLOBAL_INGRESS_NAME_TAKEN)
            .then_some(()))
    })
    .await?;
    let global = world.api::<GlobalIngress>().get("col.gateway").await?;
    ensure!(
        global
            .spec
            .root
            .as_ref()
            .is_some_and(|r| r.kind == "Ingress")
            && global.spec.hosts == ["col.bad.kcp-ingress.test"]
            && global
                .owner_references()
                .iter()
                .all(|o| o.kind == "Ingress"),
        "the Ingress's GlobalIngress was touched: {:?}",
        global.spec
    );

    // The good Gateway converged all the same; the cross-namespace Service is not copied.
    eventually("the good Gateway's leaf", CONVERGE, || async {
        Ok((world
            .leaves::<Gateway>("good", std::slice::from_ref(&c1))
            .await?
            == [c1.clone()])
        .then_some(()))
    })
    .await?;
    ensure!(
        world
            .in_cluster_ns::<PlacedObject>(&c1)
            .get_opt("default.web.services")
            .await?
            .is_none(),
        "a Service of another namespace was copied without a ReferenceGrant"
    );
    Ok(())
}
