//! The syncer against the real servers: the control plane and two physical
//! clusters (bare kube-apiservers). Each test creates its own Clusters
//! (`<tag>-1` → apiserver cluster-1, `<tag>-2` → cluster-2) with their
//! cluster namespaces, places objects there the way the controller does
//! (leaves and copies named `<ns>.<name>`, `PlacedObject`s
//! `<ns>.<name>.<resource>`, for the downstream namespace `sync-<tag>`), and
//! runs its own syncer processes. The group is serial: one test stops
//! cluster-1's apiserver.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::networking::v1::Ingress;
use kcp_ingress::apis::{Cluster, ClusterSpec, KubeconfigSecretRef, PlacedObject};
use kcp_ingress::gateway_api::gateway::Gateway;
use kcp_ingress::gateway_api::http_route::HttpRoute;
use kcp_ingress::labels::{self, conditions};
use kcp_ingress::mailbox;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::ObjectMeta;
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::env::{Process, TestEnv};
use crate::support::eventually;

/// How long a converging step may take.
const CONVERGE: Duration = Duration::from_secs(30);
/// The syncer's default heartbeat interval (the outage test uses the default).
const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(10);

/// One test's world: a downstream namespace name, Clusters for the
/// physical clusters with their cluster namespaces in the control plane,
/// and the syncers this test started.
struct World {
    cp: Client,
    /// The namespace of the placed objects downstream.
    ns: String,
    tag: String,
    /// Clients of the physical clusters, index 0 = cluster-1.
    downs: Vec<Client>,
    syncers: BTreeMap<usize, Process>,
    /// Syncer processes started so far (names their logs).
    started: usize,
}

impl World {
    /// Clusters `<tag>-1` .. `<tag>-<clusters>` and their cluster
    /// namespaces; objects are placed for the downstream namespace `sync-<tag>`.
    async fn new(env: &TestEnv, tag: &str, clusters: usize) -> anyhow::Result<Self> {
        let cp = env.client("control-plane").await?;
        let ns = format!("sync-{tag}");
        let mut downs = Vec::new();
        for i in 1..=clusters {
            downs.push(env.client(&format!("cluster-{i}")).await?);
            let name = format!("{tag}-{i}");
            let mut cluster = Cluster::new(&name, ClusterSpec::default());
            cluster.metadata.labels = Some(BTreeMap::from([("e2e-test".into(), tag.into())]));
            Api::<Cluster>::all(cp.clone())
                .create(&PostParams::default(), &cluster)
                .await
                .with_context(|| format!("creating Cluster {name}"))?;
            create_namespace(&cp, &mailbox::cluster_namespace(&name)).await?;
        }
        Ok(Self {
            cp,
            ns,
            tag: tag.to_string(),
            downs,
            syncers: BTreeMap::new(),
            started: 0,
        })
    }

    /// The name of the Cluster for physical cluster `i` (1-based).
    fn cluster(&self, i: usize) -> String {
        format!("{}-{i}", self.tag)
    }

    /// The cluster namespace of cluster `i` in the control plane.
    fn cns(&self, i: usize) -> String {
        mailbox::cluster_namespace(&self.cluster(i))
    }

    /// The name, in a cluster namespace, of the leaf or copy of `name`.
    fn copy(&self, name: &str) -> String {
        mailbox::copy_name(&self.ns, name).unwrap_or_default()
    }

    /// The name of the `PlacedObject` carrying `name` of `plural`/`group`.
    fn placed_name(&self, name: &str, plural: &str, group: &str) -> String {
        mailbox::placed_object_name(&self.ns, name, plural, group).unwrap_or_default()
    }

    /// The downstream name of the leaf of `root` on cluster `i`.
    fn leaf(&self, root: &str, i: usize) -> String {
        format!("{root}--{}", self.cluster(i))
    }

    /// Starts the pull-mode syncer of cluster `i` (default flags plus `extra`).
    fn start_syncer(&mut self, env: &TestEnv, i: usize, extra: &[&str]) -> anyhow::Result<()> {
        let cluster = self.cluster(i);
        let upstream = path_arg(&env.kubeconfig("control-plane"))?;
        let downstream = path_arg(&env.kubeconfig(&format!("cluster-{i}")))?;
        let mut args = vec![
            "syncer",
            "--cluster",
            &cluster,
            "--upstream-kubeconfig",
            &upstream,
            "--downstream-kubeconfig",
            &downstream,
        ];
        args.extend_from_slice(extra);
        self.started += 1;
        let name = format!("syncer-{cluster}-{}", self.started);
        let process = env.spawn_kcp_ingress(&name, &args)?;
        self.syncers.insert(i, process);
        Ok(())
    }

    /// Objects in cluster `i`'s namespace of the control plane.
    fn up<K>(&self, i: usize) -> Api<K>
    where
        K: Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.cp.clone(), &self.cns(i))
    }

    fn down<K>(&self, i: usize) -> Api<K>
    where
        K: Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.downs[i - 1].clone(), &self.ns)
    }

    fn clusters(&self) -> Api<Cluster> {
        Api::all(self.cp.clone())
    }

    /// Creates `object` (named `name` downstream) in the namespace of each
    /// cluster of `is`, as the copy the controller makes.
    async fn place<K>(&self, is: &[usize], name: &str, object: Value) -> anyhow::Result<()>
    where
        K: Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + serde::Serialize
            + std::fmt::Debug,
    {
        let mut object: K = serde_json::from_value(object)?;
        object.meta_mut().name = Some(self.copy(name));
        for &i in is {
            self.up::<K>(i)
                .create(&PostParams::default(), &object)
                .await
                .with_context(|| format!("placing {name} on {}", self.cluster(i)))?;
        }
        Ok(())
    }

    /// Creates a `PlacedObject` carrying `object` (`plural`/`group`, named
    /// `name` downstream) in the namespace of each cluster of `is`.
    async fn place_wrapped(
        &self,
        is: &[usize],
        plural: &str,
        group: &str,
        object: Value,
    ) -> anyhow::Result<()> {
        let name = object["metadata"]["name"]
            .as_str()
            .context("the embedded object has no name")?
            .to_string();
        let placed: PlacedObject = serde_json::from_value(json!({
            "metadata": {
                "name": self.placed_name(&name, plural, group),
                "labels": {
                    labels::PLACED_RESOURCE_LABEL:
                        mailbox::placed_resource_label_value(plural, group),
                },
            },
            "spec": {"object": object},
        }))?;
        for &i in is {
            self.up::<PlacedObject>(i)
                .create(&PostParams::default(), &placed)
                .await
                .with_context(|| format!("placing {plural} {name} on {}", self.cluster(i)))?;
        }
        Ok(())
    }

    /// Patches the leaf or copy of `name` on each cluster of `is`.
    async fn patch_up<K>(&self, is: &[usize], name: &str, patch: Value) -> anyhow::Result<()>
    where
        K: Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
    {
        for &i in is {
            self.up::<K>(i)
                .patch(
                    &self.copy(name),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
                .with_context(|| format!("patching {name} on {}", self.cluster(i)))?;
        }
        Ok(())
    }

    /// Deletes the leaf or copy of `name` on cluster `i` (the controller unplaces it).
    async fn unplace<K>(&self, i: usize, name: &str) -> anyhow::Result<()>
    where
        K: Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
    {
        self.up::<K>(i)
            .delete(&self.copy(name), &DeleteParams::default())
            .await
            .with_context(|| format!("deleting {name} on {}", self.cluster(i)))?;
        Ok(())
    }

    /// A leaf Ingress of `root` for cluster `i`, as the controller makes
    /// it; downstream it is `<root>--<cluster i>` ([`World::leaf`]).
    async fn create_leaf(&self, root: &str, i: usize, host: &str) -> anyhow::Result<Ingress> {
        let leaf = self.leaf(root, i);
        let object: Ingress = serde_json::from_value(json!({
            "metadata": {
                "name": self.copy(&leaf),
                "labels": {labels::ROOT_LABEL: root, labels::ROOT_NAMESPACE_LABEL: &self.ns},
            },
            "spec": {"rules": rules(host)},
        }))?;
        self.up::<Ingress>(i)
            .create(&PostParams::default(), &object)
            .await
            .with_context(|| format!("creating leaf {leaf}"))
    }

    /// A NodePort Service carried by `PlacedObject`s, made
    /// cluster-independent by the controller: port 80 without a node port,
    /// port 81 with the user's `node_port`. A clusterIP left in it does not
    /// travel.
    async fn create_service(&self, name: &str, is: &[usize], node_port: i32) -> anyhow::Result<()> {
        self.place_wrapped(
            is,
            "services",
            "",
            json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"namespace": &self.ns, "name": name},
                "spec": {
                    "type": "NodePort",
                    "clusterIP": "10.0.0.7", "clusterIPs": ["10.0.0.7"],
                    "selector": {"app": name},
                    "ports": [
                        {"name": "http", "port": 80},
                        {"name": "alt", "port": 81, "nodePort": node_port},
                    ],
                },
            }),
        )
        .await
    }

    async fn create_secret(&self, name: &str, is: &[usize], value: &str) -> anyhow::Result<()> {
        self.place::<Secret>(
            is,
            name,
            json!({"metadata": {}, "type": "Opaque", "stringData": {"value": value}}),
        )
        .await
    }

    async fn create_configmap(&self, name: &str, is: &[usize], value: &str) -> anyhow::Result<()> {
        self.place::<ConfigMap>(is, name, json!({"metadata": {}, "data": {"value": value}}))
            .await
    }

    /// Waits until cluster `i`'s Cluster has the condition `type_` = `status`.
    async fn wait_condition(
        &self,
        i: usize,
        type_: &str,
        status: &str,
        within: Duration,
    ) -> anyhow::Result<Cluster> {
        let name = self.cluster(i);
        eventually(
            &format!("Cluster {name}: {type_}={status}"),
            within,
            || async {
                let c = self.clusters().get(&name).await?;
                Ok((c.condition_status(type_) == Some(status)).then_some(c))
            },
        )
        .await
    }
}

/// Whether some Event in `api`'s namespace has `reason` and is about `name`.
async fn has_event(api: &Api<Event>, reason: &str, name: &str) -> anyhow::Result<bool> {
    let list = api.list(&ListParams::default()).await?;
    Ok(list.items.iter().any(|e| {
        e.reason.as_deref() == Some(reason)
            && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
            && e.type_.as_deref() == Some("Warning")
    }))
}

/// The rules of a leaf for `host`, one path to the Service `web`.
fn rules(host: &str) -> Value {
    json!([{"host": host, "http": {"paths": [{
        "path": "/", "pathType": "Prefix",
        "backend": {"service": {"name": "web", "port": {"number": 80}}},
    }]}}])
}

fn path_arg(path: &Path) -> anyhow::Result<String> {
    Ok(path.to_str().context("a non-UTF-8 path")?.to_string())
}

async fn create_namespace(client: &Client, name: &str) -> anyhow::Result<()> {
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .with_context(|| format!("creating namespace {name}"))?;
    Ok(())
}

/// Waits until `api` has `name` and `check` accepts it; returns it.
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

/// Waits until `api` no longer has `name`.
async fn wait_gone<K>(what: &str, api: &Api<K>, name: &str) -> anyhow::Result<()>
where
    K: Clone + DeserializeOwned + std::fmt::Debug,
{
    eventually(what, CONVERGE, || async {
        Ok(api.get_opt(name).await?.is_none().then_some(()))
    })
    .await
}

fn has_finalizer<K: Resource>(o: &K, cluster: &str) -> bool {
    o.meta()
        .finalizers
        .as_ref()
        .is_some_and(|f| f.contains(&labels::syncer_finalizer(cluster)))
}

fn is_copy_of<K: Resource>(copy: &K, cluster: &str) -> bool {
    let l = copy.meta().labels.clone().unwrap_or_default();
    l.get(labels::MANAGED_BY_LABEL).map(String::as_str) == Some(labels::MANAGED_BY_VALUE)
        && l.get(labels::SYNCER_LABEL).map(String::as_str) == Some(cluster)
}

fn host(i: &Ingress) -> Option<String> {
    i.spec.as_ref()?.rules.as_ref()?.first()?.host.clone()
}

fn secret_value(s: &Secret) -> Option<String> {
    let bytes = s.data.as_ref()?.get("value")?;
    String::from_utf8(bytes.0.clone()).ok()
}

fn lb(i: &Ingress) -> Value {
    serde_json::to_value(
        i.status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|l| l.ingress.clone())
            .unwrap_or_default(),
    )
    .unwrap_or(Value::Null)
}

/// The fields `manager` owns in an object's managedFields (merged).
fn owned_fields<K: Resource>(o: &K, manager: &str) -> Value {
    let entries: Vec<Value> = o
        .meta()
        .managed_fields
        .iter()
        .flatten()
        .filter(|m| m.manager.as_deref() == Some(manager))
        .filter_map(|m| m.fields_v1.as_ref().map(|f| f.0.clone()))
        .collect();
    Value::Array(entries)
}

/// A leaf, a Service and a Secret placed on both clusters appear downstream,
/// stripped and marked; upstream edits follow.
pub async fn placed_objects_appear_downstream_stripped_and_follow_edits(
    env: &TestEnv,
) -> anyhow::Result<()> {
    let mut w = World::new(env, "copy", 2).await?;
    w.start_syncer(env, 1, &[])?;
    w.start_syncer(env, 2, &[])?;
    let mut leaves = BTreeMap::new();
    for i in [1, 2] {
        leaves.insert(
            i,
            w.create_leaf("web", i, "web.copy.kcp-ingress.test").await?,
        );
    }
    w.create_service("web", &[1, 2], 30101).await?;
    w.create_secret("tls", &[1, 2], "v1").await?;

    for i in [1, 2] {
        let c = w.cluster(i);
        let leaf = &leaves[&i];
        let copy = wait_for(
            &format!("leaf copy in {c}"),
            &w.down::<Ingress>(i),
            &w.leaf("web", i),
            |_| true,
        )
        .await?;
        let l = copy.labels();
        ensure!(
            is_copy_of(&copy, &c),
            "{c}: copy lacks the managed-by/syncer labels: {l:?}"
        );
        ensure!(
            l.get(labels::ROOT_LABEL).map(String::as_str) == Some("web"),
            "{c}: root label lost"
        );
        // The origin is the object in the cluster namespace it comes from.
        let origin = copy.annotations().get(labels::ORIGIN_ANNOTATION).cloned();
        let want = format!(
            "{}/{}/{}",
            w.ns,
            w.leaf("web", i),
            leaf.uid().unwrap_or_default()
        );
        ensure!(
            origin.as_deref() == Some(want.as_str()),
            "{c}: origin {origin:?}, want {want}"
        );
        ensure!(
            copy.finalizers().is_empty(),
            "{c}: finalizers travelled: {:?}",
            copy.finalizers()
        );
        ensure!(copy.uid() != leaf.uid(), "{c}: uid travelled");
        ensure!(host(&copy) == host(leaf), "{c}: spec differs");

        let svc_copy = wait_for(
            &format!("Service copy in {c}"),
            &w.down::<Service>(i),
            "web",
            |_| true,
        )
        .await?;
        ensure!(is_copy_of(&svc_copy, &c), "{c}: Service copy not marked");
        let ours = owned_fields(&svc_copy, &labels::syncer_manager(&c));
        let text = ours.to_string();
        ensure!(
            !text.contains("f:clusterIP"),
            "{c}: the syncer applied a clusterIP: {text}"
        );
        let port80 = &ours[0]["f:spec"]["f:ports"]["k:{\"port\":80,\"protocol\":\"TCP\"}"];
        let port81 = &ours[0]["f:spec"]["f:ports"]["k:{\"port\":81,\"protocol\":\"TCP\"}"];
        ensure!(
            port80.is_object() && port80.get("f:nodePort").is_none(),
            "{c}: a node port applied where the user set none: {text}"
        );
        ensure!(
            port81.get("f:nodePort").is_some(),
            "{c}: the user's node port was dropped: {text}"
        );
        let ports = svc_copy
            .spec
            .as_ref()
            .and_then(|s| s.ports.clone())
            .unwrap_or_default();
        ensure!(
            ports
                .iter()
                .any(|p| p.port == 81 && p.node_port == Some(30101)),
            "{c}: user node port not kept: {ports:?}"
        );
        let down_ip = svc_copy.spec.as_ref().and_then(|s| s.cluster_ip.clone());
        ensure!(
            down_ip.is_some() && down_ip.as_deref() != Some("10.0.0.7"),
            "{c}: clusterIP {down_ip:?}: not the cluster's own"
        );

        let secret_copy = wait_for(
            &format!("Secret copy in {c}"),
            &w.down::<Secret>(i),
            "tls",
            |_| true,
        )
        .await?;
        ensure!(is_copy_of(&secret_copy, &c), "{c}: Secret copy not marked");
        ensure!(
            secret_value(&secret_copy).as_deref() == Some("v1"),
            "{c}: Secret data differs"
        );
        // The objects in the cluster namespace carry its syncer's finalizer
        // (once), and no other cluster's.
        let other = w.cluster(3 - i);
        let placed = w
            .up::<PlacedObject>(i)
            .get(&w.placed_name("web", "services", ""))
            .await?;
        let secret = w.up::<Secret>(i).get(&w.copy("tls")).await?;
        let leaf_now = w.up::<Ingress>(i).get(&w.copy(&w.leaf("web", i))).await?;
        for (what, meta) in [
            ("PlacedObject", placed.meta()),
            ("Secret", secret.meta()),
            ("leaf", leaf_now.meta()),
        ] {
            let f = meta.finalizers.clone().unwrap_or_default();
            let n = f
                .iter()
                .filter(|x| **x == labels::syncer_finalizer(&c))
                .count();
            ensure!(
                n == 1 && !f.contains(&labels::syncer_finalizer(&other)),
                "{c}: {what} finalizers {f:?}"
            );
        }
    }

    // Steady state: upstream changes that do not travel (kubectl's
    // last-applied record, the controller's origin annotation) write
    // nothing downstream. A later change that does travel, to another
    // object, shows that the syncer has seen them.
    let mut secret_versions = Vec::new();
    for i in [1, 2] {
        secret_versions.push(w.down::<Secret>(i).get("tls").await?.resource_version());
    }
    let untravelled = json!({"metadata": {"annotations": {
        labels::KUBECTL_LAST_APPLIED_ANNOTATION: "{}",
        labels::ORIGIN_ANNOTATION: "sync-copy/tls/u-1",
    }}});
    w.patch_up::<Secret>(&[1, 2], "tls", untravelled).await?;
    for i in [1, 2] {
        w.patch_up::<Ingress>(
            &[i],
            &w.leaf("web", i),
            json!({"metadata": {"labels": {"tier": "front"}}}),
        )
        .await?;
    }
    for i in [1, 2] {
        wait_for(
            "the leaf label downstream",
            &w.down::<Ingress>(i),
            &w.leaf("web", i),
            |s| s.labels().get("tier").map(String::as_str) == Some("front"),
        )
        .await?;
        let copy = w.down::<Secret>(i).get("tls").await?;
        ensure!(
            copy.resource_version() == secret_versions[i - 1],
            "cluster {i}: a change that does not travel rewrote the Secret copy"
        );
        ensure!(
            !copy
                .annotations()
                .contains_key(labels::KUBECTL_LAST_APPLIED_ANNOTATION),
            "cluster {i}: upstream-only metadata travelled"
        );
    }
    for (i, syncer) in &w.syncers {
        let log = syncer.log();
        ensure!(
            !log.contains("updated the copy of secrets"),
            "syncer {i} re-applied the unchanged Secret:\n{log}"
        );
    }

    // Edits upstream follow downstream.
    w.patch_up::<Secret>(&[1, 2], "tls", json!({"stringData": {"value": "v2"}}))
        .await?;
    w.patch_up::<Ingress>(
        &[1],
        &w.leaf("web", 1),
        json!({"spec": {"rules": rules("edited.copy.kcp-ingress.test")}}),
    )
    .await?;
    let placed = w.placed_name("web", "services", "");
    for i in [1, 2] {
        w.up::<PlacedObject>(i)
            .patch(
                &placed,
                &PatchParams::default(),
                &Patch::Merge(
                    json!({"spec": {"object": {"metadata": {"labels": {"tier": "back"}}}}}),
                ),
            )
            .await?;
    }
    for i in [1, 2] {
        wait_for(
            "the Secret edit downstream",
            &w.down::<Secret>(i),
            "tls",
            |s| secret_value(s).as_deref() == Some("v2"),
        )
        .await?;
        wait_for(
            "the Service label downstream",
            &w.down::<Service>(i),
            "web",
            |s| s.labels().get("tier").map(String::as_str) == Some("back"),
        )
        .await?;
    }
    wait_for(
        "the leaf edit downstream",
        &w.down::<Ingress>(1),
        &w.leaf("web", 1),
        |i| host(i).as_deref() == Some("edited.copy.kcp-ingress.test"),
    )
    .await?;
    let other = w.down::<Ingress>(2).get(&w.leaf("web", 2)).await?;
    ensure!(
        host(&other).as_deref() == Some("web.copy.kcp-ingress.test"),
        "the other leaf changed too"
    );
    Ok(())
}

/// A downstream copy edited or deleted by hand is restored.
pub async fn downstream_edits_and_deletes_are_undone(env: &TestEnv) -> anyhow::Result<()> {
    let mut w = World::new(env, "drift", 1).await?;
    w.start_syncer(env, 1, &[])?;
    w.create_leaf("web", 1, "web.drift.kcp-ingress.test")
        .await?;
    w.create_secret("tls", &[1], "keep").await?;
    w.create_configmap("cfg", &[1], "keep").await?;
    let leaf_name = w.leaf("web", 1);
    wait_for("leaf copy", &w.down::<Ingress>(1), &leaf_name, |_| true).await?;
    wait_for("Secret copy", &w.down::<Secret>(1), "tls", |_| true).await?;
    wait_for("ConfigMap copy", &w.down::<ConfigMap>(1), "cfg", |_| true).await?;

    // Someone edits the copies by hand.
    let hand = PatchParams {
        field_manager: Some("someone-by-hand".into()),
        ..PatchParams::default()
    };
    w.down::<Ingress>(1)
        .patch(
            &leaf_name,
            &hand,
            &Patch::Merge(json!({"spec": {"rules": rules("hijacked.kcp-ingress.test")}})),
        )
        .await?;
    w.down::<ConfigMap>(1)
        .patch(
            "cfg",
            &hand,
            &Patch::Merge(json!({"data": {"value": "changed"}})),
        )
        .await?;
    w.down::<Secret>(1)
        .delete("tls", &DeleteParams::default())
        .await?;

    wait_for(
        "the leaf copy restored",
        &w.down::<Ingress>(1),
        &leaf_name,
        |i| host(i).as_deref() == Some("web.drift.kcp-ingress.test"),
    )
    .await?;
    wait_for(
        "the ConfigMap copy restored",
        &w.down::<ConfigMap>(1),
        "cfg",
        |c| {
            c.data
                .as_ref()
                .and_then(|d| d.get("value"))
                .map(String::as_str)
                == Some("keep")
        },
    )
    .await?;
    wait_for(
        "the deleted Secret copy re-created",
        &w.down::<Secret>(1),
        "tls",
        |s| secret_value(s).as_deref() == Some("keep") && is_copy_of(s, &w.cluster(1)),
    )
    .await?;
    Ok(())
}

/// Status written downstream (as a load balancer would) reaches the
/// upstream leaf in the cluster namespace, and follows changes; the other
/// cluster's leaf is untouched.
pub async fn downstream_status_reaches_the_leaf(env: &TestEnv) -> anyhow::Result<()> {
    let mut w = World::new(env, "status", 2).await?;
    w.start_syncer(env, 1, &[])?;
    w.start_syncer(env, 2, &[])?;
    for i in [1, 2] {
        w.create_leaf("web", i, "web.status.kcp-ingress.test")
            .await?;
    }
    let (leaf1, leaf2) = (w.leaf("web", 1), w.leaf("web", 2));
    wait_for("leaf copy 1", &w.down::<Ingress>(1), &leaf1, |_| true).await?;
    wait_for("leaf copy 2", &w.down::<Ingress>(2), &leaf2, |_| true).await?;
    let (up1, up2) = (w.copy(&leaf1), w.copy(&leaf2));

    let lb_params = PatchParams::apply("e2e-load-balancer").force();
    let write_lb = |entry: Value| {
        let api = w.down::<Ingress>(1);
        let name = leaf1.clone();
        let params = lb_params.clone();
        async move {
            let body = json!({
                "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                "status": {"loadBalancer": {"ingress": [entry]}},
            });
            api.patch_status(&name, &params, &Patch::Apply(&body)).await
        }
    };
    write_lb(json!({"ip": "127.0.1.1"})).await?;
    wait_for(
        "the address on the upstream leaf",
        &w.up::<Ingress>(1),
        &up1,
        |i| lb(i) == json!([{"ip": "127.0.1.1"}]),
    )
    .await?;
    write_lb(json!({"hostname": "lb-1.kcp-ingress.test"})).await?;
    wait_for(
        "the new address on the upstream leaf",
        &w.up::<Ingress>(1),
        &up1,
        |i| lb(i) == json!([{"hostname": "lb-1.kcp-ingress.test"}]),
    )
    .await?;
    let other = w.up::<Ingress>(2).get(&up2).await?;
    ensure!(
        lb(&other) == json!([]),
        "leaf 2 got a status: {}",
        lb(&other)
    );
    // The status is the syncer's: its field manager wrote it.
    let up = w.up::<Ingress>(1).get(&up1).await?;
    let writers: Vec<_> = up
        .managed_fields()
        .iter()
        .filter(|m| m.subresource.as_deref() == Some("status"))
        .filter_map(|m| m.manager.clone())
        .collect();
    ensure!(
        writers == vec![labels::syncer_manager(&w.cluster(1))],
        "status writers: {writers:?}"
    );
    Ok(())
}

/// Unplacing (the controller deletes the copy in one cluster namespace) or
/// deleting deletes downstream and releases the finalizer; a deleted
/// Cluster's finalizers are released by its syncer.
pub async fn unplacing_or_deleting_upstream_deletes_downstream(
    env: &TestEnv,
) -> anyhow::Result<()> {
    let mut w = World::new(env, "delete", 2).await?;
    w.start_syncer(env, 1, &[])?;
    w.start_syncer(env, 2, &[])?;
    w.create_leaf("web", 1, "web.delete.kcp-ingress.test")
        .await?;
    let leaf = w.leaf("web", 1);
    w.create_secret("tls", &[1, 2], "s").await?;
    w.create_configmap("cfg", &[1], "c").await?;
    w.create_service("web", &[1], 30102).await?;
    wait_for("leaf copy", &w.down::<Ingress>(1), &leaf, |_| true).await?;
    for i in [1, 2] {
        wait_for("Secret copy", &w.down::<Secret>(i), "tls", |_| true).await?;
    }
    wait_for("ConfigMap copy", &w.down::<ConfigMap>(1), "cfg", |_| true).await?;
    wait_for("Service copy", &w.down::<Service>(1), "web", |_| true).await?;
    let c2 = w.cluster(2);

    // The Secret leaves cluster 1 only: its copy there goes once the syncer
    // released it.
    w.unplace::<Secret>(1, "tls").await?;
    wait_gone("the Secret copy in cluster 1", &w.down::<Secret>(1), "tls").await?;
    wait_gone(
        "the Secret in cluster 1's namespace (finalizer released)",
        &w.up::<Secret>(1),
        &w.copy("tls"),
    )
    .await?;
    let secret = w.up::<Secret>(2).get(&w.copy("tls")).await?;
    ensure!(
        has_finalizer(&secret, &c2),
        "cluster 2's finalizer went too"
    );
    let copy2 = w.down::<Secret>(2).get("tls").await?;
    ensure!(
        is_copy_of(&copy2, &c2),
        "cluster 2's copy is gone or changed"
    );

    // Deleting upstream: the copy goes, then the object itself.
    w.unplace::<Ingress>(1, &leaf).await?;
    w.unplace::<ConfigMap>(1, "cfg").await?;
    let placed = w.placed_name("web", "services", "");
    w.up::<PlacedObject>(1)
        .delete(&placed, &DeleteParams::default())
        .await?;
    wait_gone("the leaf copy", &w.down::<Ingress>(1), &leaf).await?;
    wait_gone("the ConfigMap copy", &w.down::<ConfigMap>(1), "cfg").await?;
    wait_gone("the Service copy", &w.down::<Service>(1), "web").await?;
    wait_gone(
        "the upstream leaf (finalizer released)",
        &w.up::<Ingress>(1),
        &w.copy(&leaf),
    )
    .await?;
    wait_gone(
        "the upstream ConfigMap (finalizer released)",
        &w.up::<ConfigMap>(1),
        &w.copy("cfg"),
    )
    .await?;
    wait_gone(
        "the PlacedObject (finalizer released)",
        &w.up::<PlacedObject>(1),
        &placed,
    )
    .await?;

    // Deleting Cluster 2 releases its finalizers (its syncer still runs).
    w.clusters().delete(&c2, &DeleteParams::default()).await?;
    wait_for(
        "cluster 2's finalizer released",
        &w.up::<Secret>(2),
        &w.copy("tls"),
        |s| !has_finalizer(s, &c2),
    )
    .await?;
    Ok(())
}

/// A downstream object of the same name without the managed-by label stays
/// untouched, whether it was there before the syncer started or appeared
/// after; the conflict is visible on the copy in the cluster namespace
/// (annotation and Event); the copy can still be deleted, and the foreign
/// object survives it.
pub async fn foreign_downstream_object_is_left_alone_and_reported(
    env: &TestEnv,
) -> anyhow::Result<()> {
    let mut w = World::new(env, "conflict", 1).await?;
    let c1 = w.cluster(1);
    create_namespace(&w.downs[0], &w.ns).await?;
    // Someone else's ConfigMap in the cluster.
    let down = w.down::<ConfigMap>(1);
    let foreign = |name: &str| {
        let api = down.clone();
        let body = json!({
            "metadata": {"name": name, "labels": {"owner": "someone-else"}},
            "data": {"value": "theirs"},
        });
        async move {
            let object: ConfigMap = serde_json::from_value(body)?;
            anyhow::Ok(api.create(&PostParams::default(), &object).await?)
        }
    };
    let theirs = foreign("cfg").await?;
    w.start_syncer(env, 1, &[])?;
    w.create_configmap("cfg", &[1], "ours").await?;
    w.create_configmap("fine", &[1], "ours").await?;

    let key = labels::conflict_annotation(&c1);
    let up = wait_for(
        "the conflict annotation upstream",
        &w.up::<ConfigMap>(1),
        &w.copy("cfg"),
        |c| c.annotations().contains_key(&key),
    )
    .await?;
    let note = &up.annotations()[&key];
    ensure!(
        note.contains("not managed by kcp-ingress"),
        "annotation says {note:?}"
    );
    let events: Api<Event> = w.up(1);
    eventually(
        "a SyncConflict Event on the ConfigMap",
        CONVERGE,
        || async {
            Ok(has_event(&events, "SyncConflict", &w.copy("cfg"))
                .await?
                .then_some(()))
        },
    )
    .await?;
    // Other objects sync regardless.
    wait_for(
        "the other ConfigMap's copy",
        &w.down::<ConfigMap>(1),
        "fine",
        |_| true,
    )
    .await?;
    let now = w.down::<ConfigMap>(1).get("cfg").await?;
    ensure!(
        now.resource_version() == theirs.resource_version(),
        "the foreign object was modified: {now:?}"
    );
    // One made once the syncer has listed its copies (so it creates
    // without reading first): its create is refused, it is not modified.
    let late = foreign("late").await?;
    w.create_configmap("late", &[1], "ours").await?;
    wait_for(
        "the conflict annotation upstream on the late one",
        &w.up::<ConfigMap>(1),
        &w.copy("late"),
        |c| c.annotations().contains_key(&key),
    )
    .await?;
    let now = down.get("late").await?;
    ensure!(
        now.resource_version() == late.resource_version() && now.data == late.data,
        "the late foreign object was modified: {now:?}"
    );
    // Deleting the upstream object releases it and leaves theirs alone.
    w.unplace::<ConfigMap>(1, "cfg").await?;
    wait_gone(
        "the upstream ConfigMap",
        &w.up::<ConfigMap>(1),
        &w.copy("cfg"),
    )
    .await?;
    let after = w.down::<ConfigMap>(1).get("cfg").await?;
    ensure!(
        after.resource_version() == theirs.resource_version(),
        "the foreign object was touched"
    );
    Ok(())
}

/// Objects in a cluster namespace that name nothing downstream — a
/// ConfigMap whose name has no `<namespace>.` prefix, a PlacedObject
/// whose embedded Service is not the one its name says — are reported
/// (sync-error annotation and SyncFailed Event on them) and skipped; the
/// other objects sync.
pub async fn unmappable_objects_are_reported_and_skipped(env: &TestEnv) -> anyhow::Result<()> {
    let mut w = World::new(env, "unmapped", 1).await?;
    let c1 = w.cluster(1);
    w.start_syncer(env, 1, &[])?;
    let stray: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "stray"},
        "data": {"value": "x"},
    }))?;
    w.up::<ConfigMap>(1)
        .create(&PostParams::default(), &stray)
        .await?;
    let liar: PlacedObject = serde_json::from_value(json!({
        "metadata": {
            "name": w.placed_name("web", "services", ""),
            "labels": {labels::PLACED_RESOURCE_LABEL: "services"},
        },
        "spec": {"object": {
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"namespace": &w.ns, "name": "other"},
            "spec": {"ports": [{"port": 80}]},
        }},
    }))?;
    w.up::<PlacedObject>(1)
        .create(&PostParams::default(), &liar)
        .await?;
    w.create_configmap("fine", &[1], "ok").await?;
    wait_for(
        "the mappable ConfigMap's copy",
        &w.down::<ConfigMap>(1),
        "fine",
        |_| true,
    )
    .await?;
    let key = labels::sync_error_annotation(&c1);
    let stray = wait_for(
        "the stray ConfigMap reported",
        &w.up::<ConfigMap>(1),
        "stray",
        |c| c.annotations().contains_key(&key),
    )
    .await?;
    ensure!(
        stray.annotations()[&key].contains("<namespace>.<name>"),
        "{:?}",
        stray.annotations()[&key]
    );
    ensure!(
        !has_finalizer(&stray, &c1),
        "an unmappable object got the finalizer"
    );
    let liar = wait_for(
        "the PlacedObject reported",
        &w.up::<PlacedObject>(1),
        &w.placed_name("web", "services", ""),
        |c| c.annotations().contains_key(&key),
    )
    .await?;
    ensure!(
        liar.annotations()[&key].contains("/other"),
        "{:?}",
        liar.annotations()[&key]
    );
    let events: Api<Event> = w.up(1);
    for name in ["stray".to_string(), w.placed_name("web", "services", "")] {
        eventually(
            &format!("a SyncFailed Event on {name}"),
            CONVERGE,
            || async { Ok(has_event(&events, "SyncFailed", &name).await?.then_some(())) },
        )
        .await?;
    }
    for name in ["web", "other"] {
        ensure!(
            w.down::<Service>(1).get_opt(name).await?.is_none(),
            "a Service {name} was created downstream"
        );
    }
    // Deleting the reported PlacedObject is not held by the syncer.
    w.up::<PlacedObject>(1)
        .delete(
            &w.placed_name("web", "services", ""),
            &DeleteParams::default(),
        )
        .await?;
    wait_gone(
        "the reported PlacedObject",
        &w.up::<PlacedObject>(1),
        &w.placed_name("web", "services", ""),
    )
    .await?;
    let syncer = w.syncers.get(&1).context("syncer 1")?;
    ensure!(!syncer.log().contains("panicked"), "the syncer panicked");
    Ok(())
}

/// A Deployment placed by hand (a PlacedObject in the cluster namespace) is
/// created downstream, follows edits, and goes when the PlacedObject stops
/// carrying it (its resource label removed).
pub async fn hand_placed_deployment_is_created_downstream(env: &TestEnv) -> anyhow::Result<()> {
    let mut w = World::new(env, "hand", 1).await?;
    let c1 = w.cluster(1);
    w.start_syncer(env, 1, &[])?;
    w.place_wrapped(
        &[1],
        "deployments",
        "apps",
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"namespace": &w.ns, "name": "api", "labels": {"app": "api"}},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "api"}},
                "template": {
                    "metadata": {"labels": {"app": "api"}},
                    "spec": {"containers": [{"name": "api", "image": "example.test/api:1"}]},
                },
            },
        }),
    )
    .await?;
    let copy = wait_for(
        "the Deployment downstream",
        &w.down::<Deployment>(1),
        "api",
        |_| true,
    )
    .await?;
    ensure!(is_copy_of(&copy, &c1), "the Deployment is not marked");
    ensure!(
        copy.labels().get("app").map(String::as_str) == Some("api"),
        "labels lost: {:?}",
        copy.labels()
    );
    let placed = w.placed_name("api", "deployments", "apps");
    let up = wait_for(
        "the finalizer on the PlacedObject",
        &w.up::<PlacedObject>(1),
        &placed,
        |p| has_finalizer(p, &c1),
    )
    .await?;
    ensure!(
        !up.annotations()
            .contains_key(&labels::sync_error_annotation(&c1)),
        "reported: {:?}",
        up.annotations()
    );
    w.up::<PlacedObject>(1)
        .patch(
            &placed,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"object": {"spec": {"replicas": 2}}}})),
        )
        .await?;
    wait_for(
        "the edit downstream",
        &w.down::<Deployment>(1),
        "api",
        |d| d.spec.as_ref().and_then(|s| s.replicas) == Some(2),
    )
    .await?;
    // Without its resource label it carries nothing: the copy goes and the
    // finalizer is released.
    let unlabel = json!({"metadata": {"labels": {labels::PLACED_RESOURCE_LABEL: null}}});
    w.up::<PlacedObject>(1)
        .patch(&placed, &PatchParams::default(), &Patch::Merge(&unlabel))
        .await?;
    wait_gone("the Deployment downstream", &w.down::<Deployment>(1), "api").await?;
    wait_for(
        "the unlabelled PlacedObject released",
        &w.up::<PlacedObject>(1),
        &placed,
        |p| !has_finalizer(p, &c1),
    )
    .await?;
    w.up::<PlacedObject>(1)
        .delete(&placed, &DeleteParams::default())
        .await?;
    wait_gone("the PlacedObject", &w.up::<PlacedObject>(1), &placed).await?;
    Ok(())
}

/// The group's environment directory.
fn env_dir(env: &TestEnv) -> anyhow::Result<PathBuf> {
    Ok(env
        .kubeconfig("control-plane")
        .parent()
        .context("the environment directory")?
        .to_path_buf())
}

/// `hack/test-env.sh stop|start --dir DIR --server NAME`.
fn test_env_server(dir: &Path, verb: &str, server: &str) -> anyhow::Result<()> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("hack/test-env.sh");
    let out = Command::new(script)
        .args([verb, "--dir"])
        .arg(dir)
        .args(["--server", server])
        .output()
        .with_context(|| format!("running hack/test-env.sh {verb}"))?;
    if !out.status.success() {
        bail!(
            "hack/test-env.sh {verb} --server {server} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Killing a physical kube-apiserver turns its Cluster's DownstreamReachable
/// (and Ready) False within one heartbeat interval; starting it again
/// recovers without a syncer restart, including an edit made meanwhile.
pub async fn apiserver_outage_is_seen_within_a_heartbeat_and_recovers(
    env: &TestEnv,
) -> anyhow::Result<()> {
    let mut w = World::new(env, "outage", 2).await?;
    w.start_syncer(env, 1, &[])?;
    w.start_syncer(env, 2, &[])?;
    w.create_configmap("cfg", &[1, 2], "before").await?;
    for i in [1, 2] {
        w.wait_condition(i, conditions::READY, "True", CONVERGE)
            .await?;
        wait_for("copy", &w.down::<ConfigMap>(i), "cfg", |_| true).await?;
    }

    // Stop cluster-1's apiserver (test-env.sh sends SIGTERM, SIGKILL after
    // 10 s) and measure from the moment it stops answering to the moment
    // its Cluster says so.
    let dir = env_dir(env)?;
    let stopper = {
        let dir = dir.clone();
        std::thread::spawn(move || test_env_server(&dir, "stop", "cluster-1"))
    };
    let stop_began = Instant::now();
    let probe = env.client("cluster-1").await?;
    let dead_at: std::sync::Mutex<Option<Instant>> = std::sync::Mutex::new(None);
    let result = async {
        let (dead, seen) = eventually("cluster-1 dead and its Cluster DownstreamReachable=False", CONVERGE, || {
            let probe = probe.clone();
            let dead_at = &dead_at;
            let clusters = w.clusters();
            let name = w.cluster(1);
            async move {
                let known_dead = dead_at.lock().map(|d| d.is_some()).unwrap_or(true);
                if !known_dead {
                    let answer = tokio::time::timeout(Duration::from_millis(500), probe.apiserver_version()).await;
                    if !matches!(answer, Ok(Ok(_)))
                        && let Ok(mut d) = dead_at.lock()
                    {
                        *d = Some(Instant::now());
                    }
                }
                let c = clusters.get(&name).await?;
                if c.condition_status(conditions::DOWNSTREAM_REACHABLE) != Some("False") {
                    return Ok(None);
                }
                ensure!(c.condition_status(conditions::READY) == Some("False"), "Ready did not follow");
                let dead = dead_at.lock().ok().and_then(|d| *d);
                Ok(Some((dead, Instant::now())))
            }
        })
        .await?;
        let dead = dead.unwrap_or(seen);
        eprintln!(
            "syncer: cluster-1 stopped answering {} ms after the stop began; \
             DownstreamReachable=False {} ms after that",
            (dead - stop_began).as_millis(),
            (seen - dead).as_millis()
        );
        ensure!(
            seen - dead < DEFAULT_HEARTBEAT,
            "DownstreamReachable turned False {:?} after the apiserver died (more than one heartbeat)",
            seen - dead
        );
        match stopper.join() {
            Ok(stopped) => stopped?,
            Err(_) => bail!("the stop thread panicked"),
        }
        ensure!(
            w.clusters().get(&w.cluster(2)).await?.condition_status(conditions::READY) == Some("True"),
            "the other cluster lost Ready"
        );
        // An edit made while the cluster is down.
        w.patch_up::<ConfigMap>(&[1, 2], "cfg", json!({"data": {"value": "during"}})).await?;
        wait_for("the edit in cluster 2", &w.down::<ConfigMap>(2), "cfg", |c| {
            c.data.as_ref().and_then(|d| d.get("value")).map(String::as_str) == Some("during")
        })
        .await?;
        // The Cluster stays not Ready while down, heartbeat after heartbeat.
        let before = w.clusters().get(&w.cluster(1)).await?;
        let beat = |c: &Cluster| c.status.as_ref().and_then(|s| s.last_heartbeat_time.clone());
        let later = eventually("a newer heartbeat while down", DEFAULT_HEARTBEAT * 2, || async {
            let c = w.clusters().get(&w.cluster(1)).await?;
            Ok((beat(&c) != beat(&before)).then_some(c))
        })
        .await?;
        ensure!(later.condition_status(conditions::READY) == Some("False"), "Ready while down");
        anyhow::Ok(())
    }
    .await;
    let restart_began = Instant::now();
    test_env_server(&dir, "start", "cluster-1")?;
    result?;
    let started = Instant::now();
    w.wait_condition(1, conditions::READY, "True", CONVERGE)
        .await?;
    eprintln!(
        "syncer: cluster-1 restarted in {} ms; Ready=True {} ms after it was ready",
        (started - restart_began).as_millis(),
        started.elapsed().as_millis()
    );
    let c = w.clusters().get(&w.cluster(1)).await?;
    ensure!(c.condition_status(conditions::DOWNSTREAM_REACHABLE) == Some("True"));
    wait_for(
        "the edit made during the outage in cluster 1",
        &w.down::<ConfigMap>(1),
        "cfg",
        |c| {
            c.data
                .as_ref()
                .and_then(|d| d.get("value"))
                .map(String::as_str)
                == Some("during")
        },
    )
    .await?;
    let syncer = w.syncers.get(&1).context("syncer 1")?;
    ensure!(
        syncer.log().matches("syncer starting").count() == 1,
        "the syncer restarted"
    );
    Ok(())
}

/// A syncer restarted after changes made while it was down converges, with
/// no duplicate objects or finalizers.
pub async fn restarted_syncer_converges_without_duplicates(env: &TestEnv) -> anyhow::Result<()> {
    let mut w = World::new(env, "restart", 1).await?;
    let c1 = w.cluster(1);
    w.start_syncer(env, 1, &[])?;
    for name in ["edit", "unplace", "delete", "keep"] {
        w.create_configmap(name, &[1], "v1").await?;
    }
    for name in ["edit", "unplace", "delete", "keep"] {
        wait_for("copy", &w.down::<ConfigMap>(1), name, |_| true).await?;
    }
    let kept = w.down::<ConfigMap>(1).get("keep").await?;
    if let Some(mut syncer) = w.syncers.remove(&1) {
        syncer.kill();
    }

    // Changes while no syncer runs.
    w.patch_up::<ConfigMap>(&[1], "edit", json!({"data": {"value": "v2"}}))
        .await?;
    // Unplaced: the controller deletes the copy in the cluster namespace.
    w.unplace::<ConfigMap>(1, "unplace").await?;
    w.unplace::<ConfigMap>(1, "delete").await?;
    w.create_configmap("new", &[1], "v1").await?;
    w.create_leaf("web", 1, "web.restart.kcp-ingress.test")
        .await?;
    for name in ["unplace", "delete"] {
        let deleting = w.up::<ConfigMap>(1).get(&w.copy(name)).await?;
        ensure!(
            deleting.metadata.deletion_timestamp.is_some(),
            "the finalizer did not hold {name}"
        );
    }

    w.start_syncer(env, 1, &[])?;
    wait_for("the edit", &w.down::<ConfigMap>(1), "edit", |c| {
        c.data
            .as_ref()
            .and_then(|d| d.get("value"))
            .map(String::as_str)
            == Some("v2")
    })
    .await?;
    wait_gone("the unplaced copy", &w.down::<ConfigMap>(1), "unplace").await?;
    wait_gone("the deleted copy", &w.down::<ConfigMap>(1), "delete").await?;
    for name in ["unplace", "delete"] {
        wait_gone(
            "the deleted object upstream",
            &w.up::<ConfigMap>(1),
            &w.copy(name),
        )
        .await?;
    }
    wait_for("the new copy", &w.down::<ConfigMap>(1), "new", |_| true).await?;
    wait_for(
        "the leaf copy",
        &w.down::<Ingress>(1),
        &format!("web--{c1}"),
        |_| true,
    )
    .await?;

    let selector = format!("{}={c1}", labels::SYNCER_LABEL);
    let copies: BTreeSet<String> = w
        .down::<ConfigMap>(1)
        .list(&ListParams::default().labels(&selector))
        .await?
        .items
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    let want: BTreeSet<String> = ["edit", "keep", "new"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    // The unchanged object was not written again: same resourceVersion, and
    // the new syncer did not even send an apply for it.
    let kept_now = w.down::<ConfigMap>(1).get("keep").await?;
    ensure!(
        kept_now.resource_version() == kept.resource_version(),
        "the unchanged copy was rewritten"
    );
    let log = w.syncers.get(&1).map(Process::log).unwrap_or_default();
    ensure!(
        !["created", "updated"]
            .iter()
            .any(|verb| log.contains(&format!("{verb} the copy of configmaps sync-restart/keep"))),
        "the restarted syncer applied the unchanged copy:\n{log}"
    );
    ensure!(
        copies == want,
        "downstream copies {copies:?}, want {want:?}"
    );
    for cm in w
        .up::<ConfigMap>(1)
        .list(&ListParams::default())
        .await?
        .items
    {
        let f = cm.finalizers();
        let n = f
            .iter()
            .filter(|x| **x == labels::syncer_finalizer(&c1))
            .count();
        ensure!(n <= 1, "{}: finalizers {f:?}", cm.name_any());
    }
    Ok(())
}

/// Push mode: a Cluster created with a kubeconfig Secret is synced by the
/// controller's push-mode syncers with no further action; a Cluster whose
/// Secret does not exist is reported, and syncs once the Secret appears; one
/// whose Secret is in a cluster namespace is refused and reported;
/// deleting a Cluster removes its copies and releases its finalizers in its
/// cluster namespace.
pub async fn push_mode_syncs_a_cluster_created_with_a_kubeconfig_secret(
    env: &TestEnv,
) -> anyhow::Result<()> {
    let cp = env.client("control-plane").await?;
    let ns = "sync-push";
    let system = "push-system";
    create_namespace(&cp, system).await?;
    for cluster in ["push-1", "push-2"] {
        create_namespace(&cp, &mailbox::cluster_namespace(cluster)).await?;
    }
    let kubeconfig = path_arg(&env.kubeconfig("control-plane"))?;
    let controller = env.spawn_kcp_ingress(
        "controller-push",
        &["controller", "--kubeconfig", &kubeconfig, "--push-syncers"],
    )?;
    let secrets: Api<Secret> = Api::namespaced(cp.clone(), system);
    let clusters: Api<Cluster> = Api::all(cp.clone());
    let placed_on = |cluster: &str| -> Api<ConfigMap> {
        Api::namespaced(cp.clone(), &mailbox::cluster_namespace(cluster))
    };
    let down2: Api<ConfigMap> = Api::namespaced(env.client("cluster-2").await?, ns);
    let down1: Api<ConfigMap> = Api::namespaced(env.client("cluster-1").await?, ns);
    let copy = |name: &str| mailbox::copy_name(ns, name).unwrap_or_default();

    let make_secret = |name: &str, server: &str| -> anyhow::Result<Secret> {
        let yaml = std::fs::read_to_string(env.kubeconfig(server))?;
        Ok(serde_json::from_value(json!({
            "metadata": {"name": name},
            "stringData": {"kubeconfig": yaml},
        }))?)
    };
    let make_cluster = |name: &str, secret: &str| {
        let mut c = Cluster::new(name, ClusterSpec::default());
        c.spec.kubeconfig_secret_ref = Some(KubeconfigSecretRef {
            namespace: system.into(),
            name: secret.into(),
            key: None,
        });
        c
    };
    let placed = |name: &str| -> anyhow::Result<ConfigMap> {
        Ok(serde_json::from_value(json!({
            "metadata": {"name": copy(name)},
            "data": {"value": "pushed"},
        }))?)
    };

    // A Secret, then its Cluster: syncing starts by itself.
    secrets
        .create(&PostParams::default(), &make_secret("push-2", "cluster-2")?)
        .await?;
    placed_on("push-2")
        .create(&PostParams::default(), &placed("cfg")?)
        .await?;
    clusters
        .create(&PostParams::default(), &make_cluster("push-2", "push-2"))
        .await?;
    wait_for("the copy in cluster-2", &down2, "cfg", |c| {
        is_copy_of(c, "push-2")
    })
    .await?;
    eventually("Cluster push-2 Ready", CONVERGE, || async {
        let c = clusters.get("push-2").await?;
        Ok((c.condition_status(conditions::READY) == Some("True")).then_some(()))
    })
    .await?;

    // A Cluster whose Secret does not exist yet: reported, then synced.
    placed_on("push-1")
        .create(&PostParams::default(), &placed("cfg1")?)
        .await?;
    clusters
        .create(&PostParams::default(), &make_cluster("push-1", "push-1"))
        .await?;
    let reported = eventually("push-1 reports the missing Secret", CONVERGE, || async {
        let c = clusters.get("push-1").await?;
        let reach = c
            .status
            .as_ref()
            .and_then(|s| {
                s.conditions
                    .iter()
                    .find(|x| x.type_ == conditions::DOWNSTREAM_REACHABLE)
            })
            .cloned();
        Ok(reach.filter(|r| r.status == "False" && r.reason == "KubeconfigSecretNotFound"))
    })
    .await?;
    ensure!(
        reported.message.contains("does not exist"),
        "message: {}",
        reported.message
    );
    secrets
        .create(&PostParams::default(), &make_secret("push-1", "cluster-1")?)
        .await?;
    wait_for("the copy in cluster-1", &down1, "cfg1", |c| {
        is_copy_of(c, "push-1")
    })
    .await?;

    // A Cluster whose kubeconfig Secret is in a cluster namespace (which
    // that cluster's syncer can read): refused, never read, and said so.
    let refused_ns = mailbox::cluster_namespace("push-1");
    let mut bad = make_cluster("push-bad", "push-2");
    bad.spec.kubeconfig_secret_ref = Some(KubeconfigSecretRef {
        namespace: refused_ns.clone(),
        name: "kubeconfig".into(),
        key: None,
    });
    clusters.create(&PostParams::default(), &bad).await?;
    let refused = eventually("push-bad reports the refusal", CONVERGE, || async {
        let c = clusters.get("push-bad").await?;
        Ok(c.status
            .as_ref()
            .and_then(|s| {
                s.conditions
                    .iter()
                    .find(|x| x.type_ == conditions::DOWNSTREAM_REACHABLE)
            })
            .filter(|r| {
                r.status == "False" && r.reason == labels::reasons::KUBECONFIG_SECRET_REFUSED
            })
            .cloned())
    })
    .await?;
    ensure!(
        refused.message.contains(&refused_ns),
        "message: {}",
        refused.message
    );
    clusters
        .delete("push-bad", &DeleteParams::default())
        .await?;

    // Deleting a Cluster releases its finalizers.
    let before = placed_on("push-2").get(&copy("cfg")).await?;
    ensure!(
        has_finalizer(&before, "push-2"),
        "no finalizer on the pushed object"
    );
    clusters.delete("push-2", &DeleteParams::default()).await?;
    // (The controller deletes what was placed in a gone Cluster's
    // namespace: released, the object may be gone too.)
    let cluster_ns = placed_on("push-2");
    eventually("push-2's finalizer released", CONVERGE, || async {
        let cfg = cluster_ns.get_opt(&copy("cfg")).await?;
        Ok(cfg
            .is_none_or(|c| !has_finalizer(&c, "push-2"))
            .then_some(()))
    })
    .await?;
    eventually("push-2's syncer stopped", CONVERGE, || async {
        Ok(controller
            .log()
            .contains("syncer stopped cluster=\"push-2\"")
            .then_some(()))
    })
    .await?;
    // Its syncer still had a client for the cluster: the copy went first.
    wait_gone("the copy of the deleted Cluster", &down2, "cfg").await?;
    ensure!(
        down1.get_opt("cfg1").await?.is_some(),
        "push-1's copy went with push-2"
    );
    Ok(())
}

/// Bad input is reported, not fatal: an unreadable kubeconfig (then fixed),
/// a type the cluster does not serve, an object the cluster refuses.
pub async fn bad_input_is_reported_and_the_syncer_keeps_running(
    env: &TestEnv,
) -> anyhow::Result<()> {
    let w = World::new(env, "bad", 1).await?;
    let c1 = w.cluster(1);
    let dir = env_dir(env)?.join("syncer-bad-input");
    std::fs::create_dir_all(&dir)?;
    let broken = dir.join("downstream.kubeconfig");
    std::fs::write(&broken, "this: is: not a kubeconfig")?;
    let upstream = path_arg(&env.kubeconfig("control-plane"))?;
    let downstream = path_arg(&broken)?;
    let syncer = env.spawn_kcp_ingress(
        &format!("syncer-{c1}"),
        &[
            "syncer",
            "--cluster",
            &c1,
            "--upstream-kubeconfig",
            &upstream,
            "--downstream-kubeconfig",
            &downstream,
            "--heartbeat-interval",
            "2s",
            "--resources",
            "configmaps,services,globalingresses.kcp-ingress.dev",
        ],
    )?;
    let c = w
        .wait_condition(1, conditions::DOWNSTREAM_REACHABLE, "False", CONVERGE)
        .await?;
    let reach = c
        .status
        .as_ref()
        .and_then(|s| {
            s.conditions
                .iter()
                .find(|x| x.type_ == conditions::DOWNSTREAM_REACHABLE)
        })
        .context("no condition")?;
    ensure!(
        reach.reason == "KubeconfigInvalid",
        "reason {}",
        reach.reason
    );
    ensure!(c.condition_status(conditions::READY) == Some("False"));
    // And a Warning Event on the Cluster (cluster-scoped: namespace default).
    let cluster_events: Api<Event> = Api::namespaced(w.cp.clone(), "default");
    eventually(
        "a KubeconfigInvalid Event on the Cluster",
        CONVERGE,
        || async {
            let list = cluster_events.list(&ListParams::default()).await?;
            Ok(list
                .items
                .iter()
                .any(|e| {
                    e.reason.as_deref() == Some("KubeconfigInvalid")
                        && e.type_.as_deref() == Some("Warning")
                        && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(c1.as_str())
                })
                .then_some(()))
        },
    )
    .await?;

    // Fixing the file is enough.
    std::fs::copy(env.kubeconfig("cluster-1"), &broken)?;
    let c = w
        .wait_condition(1, conditions::READY, "True", CONVERGE)
        .await?;
    let _ = c;
    let c = eventually("syncedResources reported", CONVERGE, || async {
        let c = w.clusters().get(&c1).await?;
        Ok(c.status.filter(|s| s.synced_resources.len() == 3))
    })
    .await?;
    let by_name: BTreeMap<_, _> = c
        .synced_resources
        .iter()
        .map(|r| (r.resource.as_str(), r))
        .collect();
    ensure!(
        by_name["configmaps"].served && by_name["services"].served,
        "{by_name:?}"
    );
    let gi = by_name["globalingresses.kcp-ingress.dev"];
    ensure!(
        !gi.served && gi.message.as_deref().is_some_and(|m| m.contains("cluster")),
        "{gi:?}"
    );

    // The cluster refuses a Service whose node port is taken there.
    create_namespace(&w.downs[0], "bad-taken").await?;
    let taken: Service = serde_json::from_value(json!({
        "metadata": {"name": "taken"},
        "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30199}]},
    }))?;
    Api::<Service>::namespaced(w.downs[0].clone(), "bad-taken")
        .create(&PostParams::default(), &taken)
        .await?;
    w.place_wrapped(
        &[1],
        "services",
        "",
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"namespace": &w.ns, "name": "web"},
            "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30199}]},
        }),
    )
    .await?;
    w.create_configmap("fine", &[1], "ok").await?;
    let key = labels::sync_error_annotation(&c1);
    let placed = w.placed_name("web", "services", "");
    let up = wait_for(
        "the refusal reported upstream",
        &w.up::<PlacedObject>(1),
        &placed,
        |s| s.annotations().contains_key(&key),
    )
    .await?;
    ensure!(
        up.annotations()[&key].contains("refused"),
        "{:?}",
        up.annotations()[&key]
    );
    let events: Api<Event> = w.up(1);
    eventually(
        "a SyncFailed Event on the PlacedObject",
        CONVERGE,
        || async {
            Ok(has_event(&events, "SyncFailed", &placed)
                .await?
                .then_some(()))
        },
    )
    .await?;
    wait_for(
        "the other object's copy",
        &w.down::<ConfigMap>(1),
        "fine",
        |_| true,
    )
    .await?;
    ensure!(!syncer.log().contains("panicked"), "the syncer panicked");
    Ok(())
}

/// The syncer creates a missing downstream namespace (labelled as its own)
/// and deletes it once no placed object has mapped into it for the
/// namespace grace (not at once: a root deleted and created again keeps its
/// namespace); a namespace it did not create is never deleted.
pub async fn namespaces_the_syncer_created_go_with_their_last_copy(
    env: &TestEnv,
) -> anyhow::Result<()> {
    let mut w = World::new(env, "ns", 1).await?;
    let c1 = w.cluster(1);
    let (created, existing) = ("ns-created", "ns-existing");
    create_namespace(&w.downs[0], existing).await?;
    let up: Api<ConfigMap> = w.up(1);
    let copy = |ns: &str, name: &str| mailbox::copy_name(ns, name).unwrap_or_default();
    for (ns, name) in [(created, "cfg"), (created, "cfg2"), (existing, "cfg")] {
        let cm: ConfigMap = serde_json::from_value(json!({
            "metadata": {"name": copy(ns, name)},
            "data": {"value": ns},
        }))?;
        up.create(&PostParams::default(), &cm).await?;
    }
    let grace = Duration::from_secs(5);
    w.start_syncer(env, 1, &["--namespace-grace", "5s"])?;
    let down_ns: Api<Namespace> = Api::all(w.downs[0].clone());
    for (ns, name) in [(created, "cfg"), (created, "cfg2"), (existing, "cfg")] {
        let copies: Api<ConfigMap> = Api::namespaced(w.downs[0].clone(), ns);
        wait_for("the copy", &copies, name, |_| true).await?;
    }
    let made = down_ns.get(created).await?;
    ensure!(
        is_copy_of(&made, &c1),
        "the created namespace is not labelled as the syncer's"
    );
    ensure!(
        !is_copy_of(&down_ns.get(existing).await?, &c1),
        "an existing namespace was relabelled"
    );

    // One of two objects in the created namespace goes: the namespace stays.
    up.delete(&copy(created, "cfg"), &DeleteParams::default())
        .await?;
    let created_copies: Api<ConfigMap> = Api::namespaced(w.downs[0].clone(), created);
    wait_gone("the first copy", &created_copies, "cfg").await?;
    wait_gone("the first object upstream", &up, &copy(created, "cfg")).await?;
    let still = down_ns.get(created).await?;
    ensure!(
        still.metadata.deletion_timestamp.is_none(),
        "the namespace went while a copy still maps into it"
    );

    // The last ones go: the created namespace goes, the other one stays.
    for (ns, name) in [(created, "cfg2"), (existing, "cfg")] {
        up.delete(&copy(ns, name), &DeleteParams::default()).await?;
    }
    for (ns, name) in [(created, "cfg2"), (existing, "cfg")] {
        wait_gone("the upstream object", &up, &copy(ns, name)).await?;
        let copies: Api<ConfigMap> = Api::namespaced(w.downs[0].clone(), ns);
        wait_gone("the copy", &copies, name).await?;
    }
    let emptied = Instant::now();
    let kept = down_ns.get(created).await?;
    // (Only a check well within the grace can tell.)
    if emptied.elapsed() < grace / 2 {
        ensure!(
            kept.metadata.deletion_timestamp.is_none(),
            "the namespace went at once, not after the grace"
        );
    }
    eventually(
        "the created namespace deleted downstream",
        CONVERGE,
        || async {
            Ok(down_ns
                .get_opt(created)
                .await?
                .is_none_or(|n| n.metadata.deletion_timestamp.is_some())
                .then_some(()))
        },
    )
    .await?;
    let kept = down_ns.get(existing).await?;
    ensure!(
        kept.metadata.deletion_timestamp.is_none(),
        "the syncer deleted a namespace it did not create"
    );
    Ok(())
}

/// Events about the Cluster `cluster` (cluster-scoped: in namespace default).
async fn cluster_event_reasons(cp: &Client, cluster: &str) -> anyhow::Result<BTreeSet<String>> {
    let events: Api<Event> = Api::namespaced(cp.clone(), "default");
    Ok(events
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|e| {
            e.regarding.as_ref().is_some_and(|r| {
                r.kind.as_deref() == Some("Cluster") && r.name.as_deref() == Some(cluster)
            })
        })
        .filter_map(|e| e.reason)
        .collect())
}

/// Deleting a Cluster whose apiserver answers: its syncer deletes the
/// copies it manages there (and nothing else), then releases its
/// finalizers. Deleting one whose apiserver is down: the finalizers are
/// released and the copies kept, as a log line and an Event say.
pub async fn deleting_a_cluster_removes_its_copies_unless_its_apiserver_is_down(
    env: &TestEnv,
) -> anyhow::Result<()> {
    let mut w = World::new(env, "depart", 2).await?;
    let (c1, c2) = (w.cluster(1), w.cluster(2));
    // Not ours (no managed-by label), though it names the syncer: it stays.
    create_namespace(&w.downs[1], &w.ns).await?;
    let theirs: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "theirs", "labels": {labels::SYNCER_LABEL: &c2}},
        "data": {"value": "theirs"},
    }))?;
    w.down::<ConfigMap>(2)
        .create(&PostParams::default(), &theirs)
        .await?;
    w.start_syncer(env, 1, &[])?;
    w.start_syncer(env, 2, &[])?;
    w.create_configmap("cfg", &[1, 2], "v").await?;
    w.create_secret("tls", &[2], "s").await?;
    for i in [1, 2] {
        wait_for("the ConfigMap copy", &w.down::<ConfigMap>(i), "cfg", |_| {
            true
        })
        .await?;
    }
    wait_for("the Secret copy", &w.down::<Secret>(2), "tls", |_| true).await?;

    // Cluster 2's apiserver is up: its copies go, then its finalizers.
    w.clusters().delete(&c2, &DeleteParams::default()).await?;
    wait_gone(
        "the ConfigMap copy in cluster 2",
        &w.down::<ConfigMap>(2),
        "cfg",
    )
    .await?;
    wait_gone("the Secret copy in cluster 2", &w.down::<Secret>(2), "tls").await?;
    wait_for(
        "cluster 2's finalizer released",
        &w.up::<Secret>(2),
        &w.copy("tls"),
        |s| !has_finalizer(s, &c2),
    )
    .await?;
    ensure!(
        w.down::<ConfigMap>(2).get_opt("theirs").await?.is_some(),
        "an object the syncer does not manage was deleted"
    );
    ensure!(
        w.down::<ConfigMap>(1).get_opt("cfg").await?.is_some(),
        "cluster 1's copy went with cluster 2"
    );
    eventually("a CopiesDeleted Event on Cluster 2", CONVERGE, || async {
        let reasons = cluster_event_reasons(&w.cp, &c2).await?;
        Ok(reasons
            .contains(labels::reasons::COPIES_DELETED)
            .then_some(()))
    })
    .await?;

    // Cluster 1's apiserver is down: its finalizers are released, its
    // copies kept.
    let dir = env_dir(env)?;
    test_env_server(&dir, "stop", "cluster-1")?;
    let result = async {
        w.clusters().delete(&c1, &DeleteParams::default()).await?;
        wait_for(
            "cluster 1's finalizer released",
            &w.up::<ConfigMap>(1),
            &w.copy("cfg"),
            |c| !has_finalizer(c, &c1),
        )
        .await?;
        let syncer = w.syncers.get(&1).context("syncer 1")?;
        eventually("syncer 1 says the copies are kept", CONVERGE, || async {
            Ok(syncer
                .log()
                .contains("copies in the physical cluster are kept")
                .then_some(()))
        })
        .await?;
        eventually("a CopiesKept Event on Cluster 1", CONVERGE, || async {
            let reasons = cluster_event_reasons(&w.cp, &c1).await?;
            Ok(reasons.contains(labels::reasons::COPIES_KEPT).then_some(()))
        })
        .await?;
        anyhow::Ok(())
    }
    .await;
    test_env_server(&dir, "start", "cluster-1")?;
    result?;
    let copy = wait_for(
        "cluster 1's copy, kept",
        &w.down::<ConfigMap>(1),
        "cfg",
        |_| true,
    )
    .await?;
    ensure!(is_copy_of(&copy, &c1), "the kept copy changed: {copy:?}");
    Ok(())
}

/// The Gateway API leaves (Gateway, HTTPRoute) are stored natively in the
/// cluster namespace and synced by default: their copies appear downstream,
/// the status the cluster's implementation writes there comes up whole and
/// unchanged (the downstream observedGeneration included), written by the
/// syncer's field manager; the Cluster reports the types as served; an
/// upstream delete removes the copies.
pub async fn gateway_api_leaves_go_down_and_their_status_comes_up(
    env: &TestEnv,
) -> anyhow::Result<()> {
    let mut w = World::new(env, "gwleaf", 1).await?;
    w.start_syncer(env, 1, &[])?;
    let (gw, route) = (w.leaf("web", 1), w.leaf("web-route", 1));
    let root_labels = json!({labels::ROOT_LABEL: "web", labels::ROOT_NAMESPACE_LABEL: &w.ns});
    let gateway: Gateway = serde_json::from_value(json!({
        "metadata": {"name": w.copy(&gw), "labels": root_labels},
        "spec": {"gatewayClassName": "standin", "listeners": [
            {"name": "http", "port": 80, "protocol": "HTTP", "hostname": "*.gwleaf.kcp-ingress.test"}
        ]},
    }))?;
    w.up::<Gateway>(1)
        .create(&PostParams::default(), &gateway)
        .await
        .context("creating the leaf Gateway")?;
    let http_route: HttpRoute = serde_json::from_value(json!({
        "metadata": {"name": w.copy(&route), "labels": root_labels},
        "spec": {"parentRefs": [{"name": gw}], "hostnames": ["www.gwleaf.kcp-ingress.test"],
                 "rules": [{"backendRefs": [{"name": "web", "port": 80}]}]},
    }))?;
    w.up::<HttpRoute>(1)
        .create(&PostParams::default(), &http_route)
        .await
        .context("creating the leaf HTTPRoute")?;

    let down_gw = wait_for("the Gateway copy", &w.down::<Gateway>(1), &gw, |_| true).await?;
    ensure!(
        is_copy_of(&down_gw, &w.cluster(1)) && down_gw.spec.gateway_class_name == "standin",
        "the Gateway copy: {down_gw:?}"
    );
    let down_route = wait_for(
        "the HTTPRoute copy",
        &w.down::<HttpRoute>(1),
        &route,
        |_| true,
    )
    .await?;
    ensure!(
        down_route
            .spec
            .parent_refs
            .as_ref()
            .map(|p| p[0].name.as_str())
            == Some(gw.as_str()),
        "the HTTPRoute copy's parentRefs: {:?}",
        down_route.spec.parent_refs
    );

    // The implementation's status, with a generation the upstream leaf does
    // not have.
    let implementation = PatchParams::apply("e2e-gateway-implementation").force();
    let gw_status = json!({
        "addresses": [{"type": "IPAddress", "value": "127.0.8.1"}],
        "conditions": [
            {"type": "Accepted", "status": "True", "reason": "Accepted", "message": "ok",
             "observedGeneration": 41, "lastTransitionTime": "2026-01-01T00:00:00Z"},
            {"type": "Programmed", "status": "True", "reason": "Programmed", "message": "ok",
             "observedGeneration": 41, "lastTransitionTime": "2026-01-01T00:00:00Z"}
        ],
        "listeners": [{"name": "http", "attachedRoutes": 1, "supportedKinds": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"}],
            "conditions": [{"type": "Programmed", "status": "True", "reason": "Programmed",
                "message": "ok", "observedGeneration": 41,
                "lastTransitionTime": "2026-01-01T00:00:00Z"}]}]
    });
    w.down::<Gateway>(1)
        .patch_status(
            &gw,
            &implementation,
            &Patch::Apply(&json!({
                "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
                "status": gw_status,
            })),
        )
        .await?;
    let up_gw = wait_for(
        "the leaf Gateway's status",
        &w.up::<Gateway>(1),
        &w.copy(&gw),
        |g| status_json(g.status.as_ref()) == gw_status,
    )
    .await?;
    let writers: Vec<_> = up_gw
        .managed_fields()
        .iter()
        .filter(|m| m.subresource.as_deref() == Some("status"))
        .filter_map(|m| m.manager.clone())
        .collect();
    ensure!(
        writers == vec![labels::syncer_manager(&w.cluster(1))],
        "status writers: {writers:?}"
    );

    let route_status = json!({"parents": [{
        "controllerName": "kcp-ingress.dev/standin",
        "parentRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": gw},
        "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted",
            "message": "ok", "observedGeneration": 5, "lastTransitionTime": "2026-01-01T00:00:00Z"}]
    }]});
    w.down::<HttpRoute>(1)
        .patch_status(
            &route,
            &implementation,
            &Patch::Apply(&json!({
                "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
                "status": route_status,
            })),
        )
        .await?;
    wait_for(
        "the leaf HTTPRoute's status",
        &w.up::<HttpRoute>(1),
        &w.copy(&route),
        |r| status_json(r.status.as_ref()) == route_status,
    )
    .await?;

    let cluster = eventually(
        "the Gateway API types reported served",
        CONVERGE,
        || async {
            let c = w.clusters().get(&w.cluster(1)).await?;
            let served: BTreeSet<String> = c
                .status
                .iter()
                .flat_map(|s| s.synced_resources.iter())
                .filter(|r| r.served)
                .map(|r| r.resource.clone())
                .collect();
            Ok([
                "gateways.gateway.networking.k8s.io",
                "httproutes.gateway.networking.k8s.io",
                "grpcroutes.gateway.networking.k8s.io",
            ]
            .iter()
            .all(|t| served.contains(*t))
            .then_some(c))
        },
    )
    .await?;
    ensure!(cluster.status.is_some());

    w.up::<HttpRoute>(1)
        .delete(&w.copy(&route), &DeleteParams::default())
        .await?;
    w.up::<Gateway>(1)
        .delete(&w.copy(&gw), &DeleteParams::default())
        .await?;
    wait_gone("the HTTPRoute copy", &w.down::<HttpRoute>(1), &route).await?;
    wait_gone("the Gateway copy", &w.down::<Gateway>(1), &gw).await?;
    Ok(())
}

/// A status as JSON (`null` when absent).
fn status_json<T: serde::Serialize>(status: Option<&T>) -> Value {
    serde_json::to_value(status).unwrap_or(Value::Null)
}
