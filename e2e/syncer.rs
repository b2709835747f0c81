//! The syncer against the real servers: the control plane and two physical
//! clusters (bare kube-apiservers). Each test creates its own Clusters
//! (`<tag>-1` → apiserver cluster-1, `<tag>-2` → cluster-2), its own
//! namespace, and runs its own syncer processes. The group is serial: one
//! test stops cluster-1's apiserver.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::networking::v1::Ingress;
use kcp_ingress::apis::{Cluster, ClusterSpec, KubeconfigSecretRef};
use kcp_ingress::labels::{self, conditions};
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

/// One test's world: a namespace in the control plane, Clusters for the
/// physical clusters, and the syncers this test started.
struct World {
    cp: Client,
    ns: String,
    tag: String,
    /// Clients of the physical clusters, index 0 = cluster-1.
    downs: Vec<Client>,
    syncers: BTreeMap<usize, Process>,
    /// Syncer processes started so far (names their logs).
    started: usize,
}

impl World {
    /// A namespace `sync-<tag>` and Clusters `<tag>-1` .. `<tag>-<clusters>`.
    async fn new(env: &TestEnv, tag: &str, clusters: usize) -> anyhow::Result<Self> {
        let cp = env.client("control-plane").await?;
        let ns = format!("sync-{tag}");
        create_namespace(&cp, &ns).await?;
        let mut downs = Vec::new();
        for i in 1..=clusters {
            downs.push(env.client(&format!("cluster-{i}")).await?);
            let mut cluster = Cluster::new(&format!("{tag}-{i}"), ClusterSpec::default());
            cluster.metadata.labels = Some(BTreeMap::from([("e2e-test".into(), tag.into())]));
            Api::<Cluster>::all(cp.clone())
                .create(&PostParams::default(), &cluster)
                .await
                .with_context(|| format!("creating Cluster {tag}-{i}"))?;
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

    fn up<K>(&self) -> Api<K>
    where
        K: Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.cp.clone(), &self.ns)
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

    /// The placement labels for clusters `is`.
    fn placed(&self, is: &[usize]) -> BTreeMap<String, String> {
        is.iter()
            .map(|i| {
                (
                    labels::state_label(&self.cluster(*i)),
                    labels::STATE_SYNC.into(),
                )
            })
            .collect()
    }

    /// A leaf Ingress `<root>--<cluster i>`, as the controller makes it.
    async fn create_leaf(&self, root: &str, i: usize, host: &str) -> anyhow::Result<Ingress> {
        let name = format!("{root}--{}", self.cluster(i));
        let mut object_labels = self.placed(&[i]);
        object_labels.insert(labels::ROOT_LABEL.into(), root.into());
        let leaf: Ingress = serde_json::from_value(json!({
            "metadata": {
                "name": name,
                "labels": object_labels,
                "ownerReferences": [{
                    "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                    "name": root, "uid": "00000000-0000-0000-0000-000000000001",
                }],
            },
            "spec": {"rules": rules(host)},
        }))?;
        self.up::<Ingress>()
            .create(&PostParams::default(), &leaf)
            .await
            .with_context(|| format!("creating leaf {name}"))
    }

    /// A NodePort Service: port 80 gets an allocated node port, port 81 the
    /// user's `node_port`.
    async fn create_service(
        &self,
        name: &str,
        is: &[usize],
        node_port: i32,
    ) -> anyhow::Result<Service> {
        let service: Service = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": self.placed(is)},
            "spec": {
                "type": "NodePort",
                "selector": {"app": name},
                "ports": [
                    {"name": "http", "port": 80},
                    {"name": "alt", "port": 81, "nodePort": node_port},
                ],
            },
        }))?;
        self.up::<Service>()
            .create(&PostParams::default(), &service)
            .await
            .with_context(|| format!("creating Service {name}"))
    }

    async fn create_secret(&self, name: &str, is: &[usize], value: &str) -> anyhow::Result<Secret> {
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": self.placed(is)},
            "type": "Opaque",
            "stringData": {"value": value},
        }))?;
        self.up::<Secret>()
            .create(&PostParams::default(), &secret)
            .await
            .with_context(|| format!("creating Secret {name}"))
    }

    async fn create_configmap(
        &self,
        name: &str,
        is: &[usize],
        value: &str,
    ) -> anyhow::Result<ConfigMap> {
        let cm: ConfigMap = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": self.placed(is)},
            "data": {"value": value},
        }))?;
        self.up::<ConfigMap>()
            .create(&PostParams::default(), &cm)
            .await
            .with_context(|| format!("creating ConfigMap {name}"))
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
    let svc = w.create_service("web", &[1, 2], 30101).await?;
    let secret = w.create_secret("tls", &[1, 2], "v1").await?;

    for i in [1, 2] {
        let c = w.cluster(i);
        let leaf = &leaves[&i];
        let copy = wait_for(
            &format!("leaf copy in {c}"),
            &w.down::<Ingress>(i),
            &leaf.name_any(),
            |_| true,
        )
        .await?;
        let l = copy.labels();
        ensure!(
            is_copy_of(&copy, &c),
            "{c}: copy lacks the managed-by/syncer labels: {l:?}"
        );
        ensure!(
            !l.keys().any(|k| k.starts_with(labels::STATE_LABEL_PREFIX)),
            "{c}: placement labels travelled: {l:?}"
        );
        ensure!(
            l.get(labels::ROOT_LABEL).map(String::as_str) == Some("web"),
            "{c}: root label lost"
        );
        let origin = copy.annotations().get(labels::ORIGIN_ANNOTATION).cloned();
        let want = format!(
            "{}/{}/{}",
            w.ns,
            leaf.name_any(),
            leaf.uid().unwrap_or_default()
        );
        ensure!(
            origin.as_deref() == Some(want.as_str()),
            "{c}: origin {origin:?}, want {want}"
        );
        ensure!(
            copy.owner_references().is_empty(),
            "{c}: owner references travelled"
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
        ensure!(
            !text.contains("f:healthCheckNodePort"),
            "{c}: healthCheckNodePort applied"
        );
        let port80 = &ours[0]["f:spec"]["f:ports"]["k:{\"port\":80,\"protocol\":\"TCP\"}"];
        let port81 = &ours[0]["f:spec"]["f:ports"]["k:{\"port\":81,\"protocol\":\"TCP\"}"];
        ensure!(
            port80.is_object() && port80.get("f:nodePort").is_none(),
            "{c}: allocated node port applied: {text}"
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
        ensure!(down_ip.is_some(), "{c}: the cluster assigned no clusterIP");

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
    }
    // The upstream objects carry one finalizer per cluster they are placed on.
    for (what, object) in [
        (
            "Service",
            w.up::<Service>().get("web").await?.meta().clone(),
        ),
        ("Secret", w.up::<Secret>().get("tls").await?.meta().clone()),
    ] {
        let f = object.finalizers.unwrap_or_default();
        for i in [1, 2] {
            let want = labels::syncer_finalizer(&w.cluster(i));
            ensure!(
                f.iter().filter(|x| **x == want).count() == 1,
                "{what}: finalizers {f:?}"
            );
        }
    }
    let leaf1 = w.up::<Ingress>().get(&leaves[&1].name_any()).await?;
    ensure!(has_finalizer(&leaf1, &w.cluster(1)) && !has_finalizer(&leaf1, &w.cluster(2)));
    drop((svc, secret));

    let params = PatchParams::default();
    // Steady state: upstream changes that do not travel (another cluster's
    // placement label, kubectl's last-applied record) write nothing
    // downstream. A later change that does travel, to another
    // object, shows that the syncer has seen them.
    let mut secret_versions = Vec::new();
    for i in [1, 2] {
        secret_versions.push(w.down::<Secret>(i).get("tls").await?.resource_version());
    }
    let untravelled = json!({"metadata": {
        "labels": {labels::state_label("elsewhere"): labels::STATE_SYNC},
        "annotations": {labels::KUBECTL_LAST_APPLIED_ANNOTATION: "{}"},
    }});
    w.up::<Secret>()
        .patch("tls", &params, &Patch::Merge(&untravelled))
        .await?;
    w.up::<Service>()
        .patch(
            "web",
            &params,
            &Patch::Merge(json!({"metadata": {"labels": {"tier": "front"}}})),
        )
        .await?;
    for i in [1, 2] {
        wait_for(
            "the Service label downstream",
            &w.down::<Service>(i),
            "web",
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
                .labels()
                .contains_key(&labels::state_label("elsewhere"))
                && !copy
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
    w.up::<Secret>()
        .patch(
            "tls",
            &params,
            &Patch::Merge(json!({"stringData": {"value": "v2"}})),
        )
        .await?;
    let leaf1_name = leaves[&1].name_any();
    w.up::<Ingress>()
        .patch(
            &leaf1_name,
            &params,
            &Patch::Merge(json!({"spec": {"rules": rules("edited.copy.kcp-ingress.test")}})),
        )
        .await?;
    w.up::<Service>()
        .patch(
            "web",
            &params,
            &Patch::Merge(json!({"metadata": {"labels": {"tier": "front"}}})),
        )
        .await?;
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
            |s| s.labels().get("tier").map(String::as_str) == Some("front"),
        )
        .await?;
    }
    wait_for(
        "the leaf edit downstream",
        &w.down::<Ingress>(1),
        &leaf1_name,
        |i| host(i).as_deref() == Some("edited.copy.kcp-ingress.test"),
    )
    .await?;
    let other = w.down::<Ingress>(2).get(&leaves[&2].name_any()).await?;
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
    let leaf = w
        .create_leaf("web", 1, "web.drift.kcp-ingress.test")
        .await?;
    w.create_secret("tls", &[1], "keep").await?;
    w.create_configmap("cfg", &[1], "keep").await?;
    let leaf_name = leaf.name_any();
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
/// upstream leaf, and follows changes; the other cluster's leaf is untouched.
pub async fn downstream_status_reaches_the_leaf(env: &TestEnv) -> anyhow::Result<()> {
    let mut w = World::new(env, "status", 2).await?;
    w.start_syncer(env, 1, &[])?;
    w.start_syncer(env, 2, &[])?;
    let leaf1 = w
        .create_leaf("web", 1, "web.status.kcp-ingress.test")
        .await?
        .name_any();
    let leaf2 = w
        .create_leaf("web", 2, "web.status.kcp-ingress.test")
        .await?
        .name_any();
    wait_for("leaf copy 1", &w.down::<Ingress>(1), &leaf1, |_| true).await?;
    wait_for("leaf copy 2", &w.down::<Ingress>(2), &leaf2, |_| true).await?;

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
        &w.up::<Ingress>(),
        &leaf1,
        |i| lb(i) == json!([{"ip": "127.0.1.1"}]),
    )
    .await?;
    write_lb(json!({"hostname": "lb-1.kcp-ingress.test"})).await?;
    wait_for(
        "the new address on the upstream leaf",
        &w.up::<Ingress>(),
        &leaf1,
        |i| lb(i) == json!([{"hostname": "lb-1.kcp-ingress.test"}]),
    )
    .await?;
    let other = w.up::<Ingress>().get(&leaf2).await?;
    ensure!(
        lb(&other) == json!([]),
        "leaf 2 got a status: {}",
        lb(&other)
    );
    // The status is the syncer's: its field manager wrote it.
    let up = w.up::<Ingress>().get(&leaf1).await?;
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

/// Removing the placement label or deleting upstream deletes downstream and
/// releases the finalizer.
pub async fn unplacing_or_deleting_upstream_deletes_downstream(
    env: &TestEnv,
) -> anyhow::Result<()> {
    let mut w = World::new(env, "delete", 2).await?;
    w.start_syncer(env, 1, &[])?;
    w.start_syncer(env, 2, &[])?;
    let leaf = w
        .create_leaf("web", 1, "web.delete.kcp-ingress.test")
        .await?
        .name_any();
    w.create_secret("tls", &[1, 2], "s").await?;
    w.create_configmap("cfg", &[1], "c").await?;
    wait_for("leaf copy", &w.down::<Ingress>(1), &leaf, |_| true).await?;
    for i in [1, 2] {
        wait_for("Secret copy", &w.down::<Secret>(i), "tls", |_| true).await?;
    }
    wait_for("ConfigMap copy", &w.down::<ConfigMap>(1), "cfg", |_| true).await?;
    let (c1, c2) = (w.cluster(1), w.cluster(2));

    // The Secret leaves cluster 1 only.
    let unplace = json!({"metadata": {"labels": {labels::state_label(&c1): null}}});
    w.up::<Secret>()
        .patch("tls", &PatchParams::default(), &Patch::Merge(&unplace))
        .await?;
    wait_gone("the Secret copy in cluster 1", &w.down::<Secret>(1), "tls").await?;
    let secret = wait_for("finalizer 1 released", &w.up::<Secret>(), "tls", |s| {
        !has_finalizer(s, &c1)
    })
    .await?;
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
    w.up::<Ingress>()
        .delete(&leaf, &DeleteParams::default())
        .await?;
    w.up::<ConfigMap>()
        .delete("cfg", &DeleteParams::default())
        .await?;
    wait_gone("the leaf copy", &w.down::<Ingress>(1), &leaf).await?;
    wait_gone("the ConfigMap copy", &w.down::<ConfigMap>(1), "cfg").await?;
    wait_gone(
        "the upstream leaf (finalizer released)",
        &w.up::<Ingress>(),
        &leaf,
    )
    .await?;
    wait_gone(
        "the upstream ConfigMap (finalizer released)",
        &w.up::<ConfigMap>(),
        "cfg",
    )
    .await?;
    // The upstream namespace still exists: the downstream one (the syncer
    // created it) stays.
    ensure!(
        Api::<Namespace>::all(w.downs[0].clone())
            .get_opt(&w.ns)
            .await?
            .is_some(),
        "the downstream namespace went away while the upstream one exists"
    );

    // Deleting Cluster 2 releases its finalizers (its syncer still runs).
    w.clusters().delete(&c2, &DeleteParams::default()).await?;
    wait_for(
        "cluster 2's finalizer released",
        &w.up::<Secret>(),
        "tls",
        |s| !has_finalizer(s, &c2),
    )
    .await?;
    Ok(())
}

/// A downstream object of the same name without the managed-by label stays
/// untouched; the conflict is visible upstream (annotation and Event); the
/// upstream object can still be deleted, and the foreign object survives it.
pub async fn foreign_downstream_object_is_left_alone_and_reported(
    env: &TestEnv,
) -> anyhow::Result<()> {
    let mut w = World::new(env, "conflict", 1).await?;
    let c1 = w.cluster(1);
    create_namespace(&w.downs[0], &w.ns).await?;
    let theirs: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "cfg", "labels": {"owner": "someone-else"}},
        "data": {"value": "theirs"},
    }))?;
    let theirs = w
        .down::<ConfigMap>(1)
        .create(&PostParams::default(), &theirs)
        .await?;
    w.start_syncer(env, 1, &[])?;
    w.create_configmap("cfg", &[1], "ours").await?;
    w.create_configmap("fine", &[1], "ours").await?;

    let key = labels::conflict_annotation(&c1);
    let up = wait_for(
        "the conflict annotation upstream",
        &w.up::<ConfigMap>(),
        "cfg",
        |c| c.annotations().contains_key(&key),
    )
    .await?;
    let note = &up.annotations()[&key];
    ensure!(
        note.contains("not managed by kcp-ingress"),
        "annotation says {note:?}"
    );
    let events: Api<Event> = w.up();
    eventually(
        "a SyncConflict Event on the ConfigMap",
        CONVERGE,
        || async {
            let list = events.list(&ListParams::default()).await?;
            Ok(list
                .items
                .iter()
                .any(|e| {
                    e.reason.as_deref() == Some("SyncConflict")
                        && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("cfg")
                        && e.type_.as_deref() == Some("Warning")
                })
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
    // Deleting the upstream object releases it and leaves theirs alone.
    w.up::<ConfigMap>()
        .delete("cfg", &DeleteParams::default())
        .await?;
    wait_gone("the upstream ConfigMap", &w.up::<ConfigMap>(), "cfg").await?;
    let after = w.down::<ConfigMap>(1).get("cfg").await?;
    ensure!(
        after.resource_version() == theirs.resource_version(),
        "the foreign object was touched"
    );
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
        w.up::<ConfigMap>()
            .patch("cfg", &PatchParams::default(), &Patch::Merge(json!({"data": {"value": "during"}})))
            .await?;
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
    let params = PatchParams::default();
    w.up::<ConfigMap>()
        .patch(
            "edit",
            &params,
            &Patch::Merge(json!({"data": {"value": "v2"}})),
        )
        .await?;
    let unplace = json!({"metadata": {"labels": {labels::state_label(&c1): null}}});
    w.up::<ConfigMap>()
        .patch("unplace", &params, &Patch::Merge(&unplace))
        .await?;
    w.up::<ConfigMap>()
        .delete("delete", &DeleteParams::default())
        .await?;
    w.create_configmap("new", &[1], "v1").await?;
    w.create_leaf("web", 1, "web.restart.kcp-ingress.test")
        .await?;
    let deleting = w.up::<ConfigMap>().get("delete").await?;
    ensure!(
        deleting.metadata.deletion_timestamp.is_some(),
        "the finalizer did not hold the object"
    );

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
    wait_gone(
        "the deleted object upstream",
        &w.up::<ConfigMap>(),
        "delete",
    )
    .await?;
    wait_for("the new copy", &w.down::<ConfigMap>(1), "new", |_| true).await?;
    wait_for(
        "the unplaced object released",
        &w.up::<ConfigMap>(),
        "unplace",
        |c| !has_finalizer(c, &c1),
    )
    .await?;
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
        !log.contains("copy of configmaps sync-restart/keep"),
        "the restarted syncer applied the unchanged copy:\n{log}"
    );
    ensure!(
        copies == want,
        "downstream copies {copies:?}, want {want:?}"
    );
    for cm in w
        .up::<ConfigMap>()
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
/// Secret does not exist is reported, and syncs once the Secret appears;
/// deleting a Cluster removes its copies and releases its finalizers; the
/// finalizers of a Cluster that no longer exists are released at start-up.
pub async fn push_mode_syncs_a_cluster_created_with_a_kubeconfig_secret(
    env: &TestEnv,
) -> anyhow::Result<()> {
    let cp = env.client("control-plane").await?;
    let ns = "sync-push";
    create_namespace(&cp, ns).await?;
    let system = "push-system";
    create_namespace(&cp, system).await?;
    // An object held by the finalizer of a Cluster deleted while no
    // controller ran: released when the controller starts.
    let ghost = labels::syncer_finalizer("push-ghost");
    let held: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "held", "finalizers": [&ghost]},
        "data": {"value": "held"},
    }))?;
    Api::<ConfigMap>::namespaced(cp.clone(), ns)
        .create(&PostParams::default(), &held)
        .await?;
    let kubeconfig = path_arg(&env.kubeconfig("control-plane"))?;
    let controller = env.spawn_kcp_ingress(
        "controller-push",
        &["controller", "--kubeconfig", &kubeconfig, "--push-syncers"],
    )?;
    let secrets: Api<Secret> = Api::namespaced(cp.clone(), system);
    let clusters: Api<Cluster> = Api::all(cp.clone());
    let configmaps: Api<ConfigMap> = Api::namespaced(cp.clone(), ns);
    let down2: Api<ConfigMap> = Api::namespaced(env.client("cluster-2").await?, ns);
    let down1: Api<ConfigMap> = Api::namespaced(env.client("cluster-1").await?, ns);

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
    let placed = |name: &str, cluster: &str| -> anyhow::Result<ConfigMap> {
        Ok(serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {labels::state_label(cluster): labels::STATE_SYNC}},
            "data": {"value": "pushed"},
        }))?)
    };

    wait_for(
        "the finalizer of the Cluster that does not exist released",
        &configmaps,
        "held",
        |c| !has_finalizer(c, "push-ghost"),
    )
    .await?;

    // A Secret, then its Cluster: syncing starts by itself.
    secrets
        .create(&PostParams::default(), &make_secret("push-2", "cluster-2")?)
        .await?;
    configmaps
        .create(&PostParams::default(), &placed("cfg", "push-2")?)
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
    configmaps
        .create(&PostParams::default(), &placed("cfg1", "push-1")?)
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

    // Deleting a Cluster releases its finalizers.
    let before = configmaps.get("cfg").await?;
    ensure!(
        has_finalizer(&before, "push-2"),
        "no finalizer on the pushed object"
    );
    clusters.delete("push-2", &DeleteParams::default()).await?;
    wait_for("push-2's finalizer released", &configmaps, "cfg", |c| {
        !has_finalizer(c, "push-2")
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
    configmaps.delete("cfg", &DeleteParams::default()).await?;
    wait_gone("the object of the deleted Cluster", &configmaps, "cfg").await?;
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
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "web", "labels": w.placed(&[1])},
        "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30199}]},
    }))?;
    w.up::<Service>()
        .create(&PostParams::default(), &svc)
        .await?;
    w.create_configmap("fine", &[1], "ok").await?;
    let key = labels::sync_error_annotation(&c1);
    let up = wait_for(
        "the refusal reported upstream",
        &w.up::<Service>(),
        "web",
        |s| s.annotations().contains_key(&key),
    )
    .await?;
    ensure!(
        up.annotations()[&key].contains("refused"),
        "{:?}",
        up.annotations()[&key]
    );
    let events: Api<Event> = w.up();
    eventually("a SyncFailed Event", CONVERGE, || async {
        let list = events.list(&ListParams::default()).await?;
        Ok(list
            .items
            .iter()
            .any(|e| e.reason.as_deref() == Some("SyncFailed"))
            .then_some(()))
    })
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
/// and deletes it once the upstream namespace is gone and no copy is left;
/// a namespace it did not create is never deleted.
pub async fn namespaces_the_syncer_created_go_with_their_upstream(
    env: &TestEnv,
) -> anyhow::Result<()> {
    let mut w = World::new(env, "ns", 1).await?;
    let c1 = w.cluster(1);
    let (created, existing) = ("ns-created", "ns-existing");
    create_namespace(&w.downs[0], existing).await?;
    let mut apis = Vec::new();
    for ns in [created, existing] {
        create_namespace(&w.cp, ns).await?;
        let api: Api<ConfigMap> = Api::namespaced(w.cp.clone(), ns);
        let cm: ConfigMap = serde_json::from_value(json!({
            "metadata": {"name": "cfg", "labels": w.placed(&[1])},
            "data": {"value": ns},
        }))?;
        api.create(&PostParams::default(), &cm).await?;
        apis.push((ns, api));
    }
    w.start_syncer(env, 1, &[])?;
    let down_ns: Api<Namespace> = Api::all(w.downs[0].clone());
    for ns in [created, existing] {
        let copies: Api<ConfigMap> = Api::namespaced(w.downs[0].clone(), ns);
        wait_for("the copy", &copies, "cfg", |_| true).await?;
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

    // Upstream, both namespaces go (they stay Terminating: no namespace
    // controller runs) and their objects are deleted.
    let namespaces: Api<Namespace> = Api::all(w.cp.clone());
    for (ns, api) in &apis {
        namespaces.delete(ns, &DeleteParams::default()).await?;
        api.delete("cfg", &DeleteParams::default()).await?;
    }
    for (ns, api) in &apis {
        wait_gone("the upstream object", api, "cfg").await?;
        let copies: Api<ConfigMap> = Api::namespaced(w.downs[0].clone(), ns);
        wait_gone("the copy", &copies, "cfg").await?;
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
        &w.up::<Secret>(),
        "tls",
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
            &w.up::<ConfigMap>(),
            "cfg",
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
