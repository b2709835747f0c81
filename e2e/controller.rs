//! The ingress-controller against the real control plane. The tests write
//! Cluster health, leaf status and conflict reports themselves, the way
//! syncers would (on the leaves and copies in the cluster namespaces). Each
//! test runs its own controller (the group is serial), its own namespace,
//! and its own Clusters, selected by a label only its roots ask for.
//! Leaves and copies live in the clusters' namespaces of the control plane;
//! the users' Services and Secrets are never modified.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::jiff::Timestamp;
use kcp_ingress::apis::{Cluster, ClusterSpec, GlobalIngress, PlacedObject};
use kcp_ingress::labels;
use kcp_ingress::mailbox;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::env::{Process, TestEnv};
use crate::support::eventually;

/// How long a converging step may take in these tests.
const CONVERGE: Duration = Duration::from_secs(30);

/// One test's world: a namespace, Clusters labelled for this test, a controller.
struct World {
    client: Client,
    ns: String,
    /// The value of the `e2e-test` label on this test's Clusters.
    tag: String,
    controller: Process,
}

impl World {
    async fn new(env: &TestEnv, tag: &str) -> anyhow::Result<Self> {
        let client = env.client("control-plane").await?;
        let ns = format!("ctl-{tag}");
        let namespaces: Api<Namespace> = Api::all(client.clone());
        namespaces
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": ns}}))?,
            )
            .await
            .with_context(|| format!("creating namespace {ns}"))?;
        let kubeconfig = env.kubeconfig("control-plane");
        let controller = env.spawn_kcp_ingress(
            &format!("controller-{tag}"),
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
            controller,
        })
    }

    fn ingresses(&self) -> Api<Ingress> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    fn globals(&self) -> Api<GlobalIngress> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    fn services(&self) -> Api<Service> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    fn clusters(&self) -> Api<Cluster> {
        Api::all(self.client.clone())
    }

    /// The name of this test's cluster number `i`.
    fn cluster_name(&self, i: usize) -> String {
        format!("{}-c{i}", self.tag)
    }

    /// Creates a Cluster labelled for this test, healthy as a syncer would report.
    async fn add_cluster(&self, i: usize, extra: &[(&str, &str)]) -> anyhow::Result<String> {
        let name = self.cluster_name(i);
        let mut cluster = Cluster::new(&name, ClusterSpec::default());
        let mut cluster_labels = BTreeMap::from([("e2e-test".to_string(), self.tag.clone())]);
        cluster_labels.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        cluster.metadata.labels = Some(cluster_labels);
        self.clusters()
            .create(&PostParams::default(), &cluster)
            .await
            .with_context(|| format!("creating Cluster {name}"))?;
        self.set_health(&name, true).await?;
        Ok(name)
    }

    /// Writes a Cluster's Ready condition and a fresh heartbeat.
    async fn set_health(&self, cluster: &str, ready: bool) -> anyhow::Result<()> {
        let now = Timestamp::now().to_string();
        let status = json!({
            "apiVersion": "kcp-ingress.dev/v1alpha1",
            "kind": "Cluster",
            "status": {
                "lastHeartbeatTime": now,
                "conditions": [{
                    "type": "Ready", "status": if ready { "True" } else { "False" },
                    "reason": "E2E", "message": "", "lastTransitionTime": now,
                }],
            },
        });
        self.clusters()
            .patch_status(
                cluster,
                &PatchParams::apply("e2e-syncer").force(),
                &Patch::Apply(&status),
            )
            .await
            .with_context(|| format!("writing the health of Cluster {cluster}"))?;
        Ok(())
    }

    /// Three healthy Clusters for this test, the Service "web" and the TLS
    /// Secret "tls" that [`World::root`] references; the Clusters' names.
    async fn three_clusters_with_dependencies(&self) -> anyhow::Result<Vec<String>> {
        let mut clusters = Vec::new();
        for i in 1..=3 {
            clusters.push(self.add_cluster(i, &[]).await?);
        }
        self.create_service("web").await?;
        self.create_secret("tls").await?;
        Ok(clusters)
    }

    async fn create_service(&self, name: &str) -> anyhow::Result<()> {
        let service: Service = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"ports": [{"port": 80}], "selector": {"app": name}},
        }))?;
        self.services()
            .create(&PostParams::default(), &service)
            .await?;
        Ok(())
    }

    async fn create_secret(&self, name: &str) -> anyhow::Result<()> {
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": name},
            "type": "kubernetes.io/tls",
            "stringData": {"tls.crt": "not-a-real-cert", "tls.key": "not-a-real-key"},
        }))?;
        self.secrets()
            .create(&PostParams::default(), &secret)
            .await?;
        Ok(())
    }

    /// A root for this test's clusters (or `selector`), with a TLS host and a backend.
    fn root(&self, name: &str, selector: Option<&str>) -> anyhow::Result<Ingress> {
        let selector = selector.map_or_else(|| format!("e2e-test={}", self.tag), str::to_string);
        Ok(serde_json::from_value(json!({
            "metadata": {
                "name": name,
                "annotations": {labels::PLACEMENT_ANNOTATION: selector},
            },
            "spec": {
                "tls": [{"hosts": [format!("{name}.kcp-ingress.test")], "secretName": "tls"}],
                "rules": [{
                    "host": format!("{name}.kcp-ingress.test"),
                    "http": {"paths": [{
                        "path": "/", "pathType": "Prefix",
                        "backend": {"service": {"name": "web", "port": {"number": 80}}},
                    }]},
                }],
            },
        }))?)
    }

    async fn create_root(&self, name: &str, selector: Option<&str>) -> anyhow::Result<Ingress> {
        Ok(self
            .ingresses()
            .create(&PostParams::default(), &self.root(name, selector)?)
            .await?)
    }

    /// The name of the leaf of `root` for `cluster` (in the cluster's namespace).
    fn leaf_name(&self, root: &str, cluster: &str) -> String {
        mailbox::copy_name(&self.ns, &format!("{root}--{cluster}")).expect("a short leaf name")
    }

    /// The leaves of `root` (in every cluster namespace), by name.
    async fn leaves(&self, root: &str) -> anyhow::Result<BTreeMap<String, Ingress>> {
        let selector = format!(
            "{}={root},{}={}",
            labels::ROOT_LABEL,
            labels::ROOT_NAMESPACE_LABEL,
            self.ns
        );
        Ok(Api::<Ingress>::all(self.client.clone())
            .list(&ListParams::default().labels(&selector))
            .await?
            .items
            .into_iter()
            .map(|l| (l.name_any(), l))
            .collect())
    }

    /// Waits until `root` has exactly one leaf for each of `clusters`, each
    /// with the root's current spec, and returns them.
    async fn leaves_converge(
        &self,
        root: &str,
        clusters: &[String],
    ) -> anyhow::Result<BTreeMap<String, Ingress>> {
        let want: BTreeSet<String> = clusters.iter().map(|c| self.leaf_name(root, c)).collect();
        eventually(
            &format!("leaves of {root} on {clusters:?}"),
            CONVERGE,
            || async {
                let spec = self.ingresses().get(root).await?.spec;
                let leaves = self.leaves(root).await?;
                let names: BTreeSet<String> = leaves.keys().cloned().collect();
                if names != want {
                    bail!("leaves are {names:?}");
                }
                if leaves.values().any(|l| l.spec != spec) {
                    bail!("a leaf's spec differs from the root's");
                }
                for cluster in clusters {
                    let leaf = &leaves[&self.leaf_name(root, cluster)];
                    let ns = leaf.namespace().unwrap_or_default();
                    ensure!(
                        ns == mailbox::cluster_namespace(cluster),
                        "the leaf for {cluster} is in namespace {ns}"
                    );
                }
                Ok(Some(leaves))
            },
        )
        .await
    }

    /// The cluster namespaces holding a copy of the user's `kind` `name`
    /// (a `PlacedObject` for a Service), and the copies.
    async fn copies(
        &self,
        kind: &str,
        name: &str,
    ) -> anyhow::Result<BTreeMap<String, serde_json::Value>> {
        let fields = |copy: &str| ListParams::default().fields(&format!("metadata.name={copy}"));
        let copy = mailbox::copy_name(&self.ns, name)?;
        let found: Vec<serde_json::Value> = match kind {
            "Service" => {
                let placed = mailbox::placed_object_name(&self.ns, name, "services", "")?;
                let list = Api::<PlacedObject>::all(self.client.clone())
                    .list(&fields(&placed))
                    .await?;
                list.items
                    .into_iter()
                    .map(serde_json::to_value)
                    .collect::<Result<_, _>>()?
            }
            "Secret" => {
                let list = Api::<Secret>::all(self.client.clone())
                    .list(&fields(&copy))
                    .await?;
                list.items
                    .into_iter()
                    .map(serde_json::to_value)
                    .collect::<Result<_, _>>()?
            }
            _ => {
                let list = Api::<ConfigMap>::all(self.client.clone())
                    .list(&fields(&copy))
                    .await?;
                list.items
                    .into_iter()
                    .map(serde_json::to_value)
                    .collect::<Result<_, _>>()?
            }
        };
        Ok(found
            .into_iter()
            .filter(|c| c["metadata"]["deletionTimestamp"].is_null())
            .map(|c| {
                (
                    c["metadata"]["namespace"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    c,
                )
            })
            .collect())
    }

    /// Waits until the user's `kind` `name` has a copy in the namespaces of
    /// exactly `clusters`; the copies by cluster namespace.
    async fn copies_converge(
        &self,
        kind: &str,
        name: &str,
        clusters: &[String],
    ) -> anyhow::Result<BTreeMap<String, serde_json::Value>> {
        let want: BTreeSet<String> = clusters
            .iter()
            .map(|c| mailbox::cluster_namespace(c))
            .collect();
        eventually(&format!("copies of {kind} {name}"), CONVERGE, || async {
            let copies = self.copies(kind, name).await?;
            let have: BTreeSet<String> = copies.keys().cloned().collect();
            if have != want {
                bail!("copies in {have:?}");
            }
            Ok(Some(copies))
        })
        .await
    }

    /// Fails unless the user's Service or Secret `name` is as the user made
    /// it: no placement labels, no finalizers, no kcp-ingress annotations,
    /// no field of the controller's.
    async fn untouched(&self, kind: &str, name: &str) -> anyhow::Result<()> {
        let meta = match kind {
            "Service" => self.services().get(name).await?.metadata,
            "Secret" => self.secrets().get(name).await?.metadata,
            _ => {
                Api::<ConfigMap>::namespaced(self.client.clone(), &self.ns)
                    .get(name)
                    .await?
                    .metadata
            }
        };
        let ours = |k: &String| {
            k.starts_with(labels::CONFLICT_ANNOTATION_PREFIX)
                || k.starts_with(labels::SYNC_ERROR_ANNOTATION_PREFIX)
                || k.starts_with("kcp-ingress.dev/")
        };
        ensure!(
            meta.finalizers.unwrap_or_default().is_empty(),
            "{kind} {name} got finalizers"
        );
        ensure!(
            !meta.annotations.unwrap_or_default().keys().any(ours),
            "{kind} {name} got kcp-ingress annotations"
        );
        let by_controller = meta
            .managed_fields
            .unwrap_or_default()
            .iter()
            .any(|m| m.manager.as_deref() == Some(labels::CONTROLLER_MANAGER));
        ensure!(!by_controller, "the controller wrote to {kind} {name}");
        let placement = meta
            .labels
            .unwrap_or_default()
            .into_keys()
            .filter(|k| k.starts_with(labels::STATE_LABEL_PREFIX))
            .count();
        ensure!(
            placement == 0 || kind == "ConfigMap",
            "{kind} {name} got placement labels"
        );
        Ok(())
    }

    /// Writes a leaf's load-balancer status, as its cluster's syncer would
    /// (on the leaf in the cluster's namespace).
    async fn set_leaf_address(&self, root: &str, cluster: &str, ip: &str) -> anyhow::Result<()> {
        let leaf = self.leaf_name(root, cluster);
        let status = json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "status": {"loadBalancer": {"ingress": [{"ip": ip}]}},
        });
        Api::<Ingress>::namespaced(self.client.clone(), &mailbox::cluster_namespace(cluster))
            .patch_status(
                &leaf,
                &PatchParams::apply(&labels::syncer_manager(cluster)).force(),
                &Patch::Apply(&status),
            )
            .await
            .with_context(|| format!("writing the status of leaf {leaf}"))?;
        Ok(())
    }

    /// The IPs in the root's merged status.
    async fn root_ips(&self, root: &str) -> anyhow::Result<Vec<String>> {
        Ok(self
            .ingresses()
            .get(root)
            .await?
            .status
            .and_then(|s| s.load_balancer)
            .and_then(|lb| lb.ingress)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|e| e.ip)
            .collect())
    }

    /// The Events about the root `root`: `(reason, note, times sent)` (a
    /// repeat of an Event of the same reason within six minutes is counted
    /// in its series, its note not kept).
    async fn events_about(&self, root: &str) -> anyhow::Result<Vec<(String, String, i32)>> {
        let events: Api<k8s_openapi::api::events::v1::Event> =
            Api::namespaced(self.client.clone(), &self.ns);
        Ok(events
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(root))
            .map(|e| {
                (
                    e.reason.unwrap_or_default(),
                    e.note.unwrap_or_default(),
                    e.series.map_or(1, |s| s.count),
                )
            })
            .collect())
    }

    /// Waits until the GlobalIngress `root` shows `Ready` with `status`
    /// and `message`.
    async fn ready_shown(&self, root: &str, status: &str, message: &str) -> anyhow::Result<()> {
        eventually(
            &format!("Ready={status} {message:?} on the GlobalIngress {root}"),
            CONVERGE,
            || async {
                let global = self.globals().get_opt(root).await?;
                let ready = global
                    .and_then(|g| g.status)
                    .unwrap_or_default()
                    .conditions
                    .into_iter()
                    .find(|c| c.type_ == labels::conditions::READY);
                match ready {
                    Some(c) if c.status == status && c.message == message => Ok(Some(())),
                    other => bail!("Ready is {other:?}"),
                }
            },
        )
        .await
    }

    /// Deletes this test's Clusters (so later tests do not see them).
    async fn remove_clusters(&self) -> anyhow::Result<()> {
        let selector = format!("e2e-test={}", self.tag);
        for cluster in self
            .clusters()
            .list(&ListParams::default().labels(&selector))
            .await?
        {
            self.clusters()
                .delete(&cluster.name_any(), &DeleteParams::default())
                .await?;
        }
        Ok(())
    }
}

fn ips(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// A root lands as 3 leaves in its clusters' namespaces (labelled for their
/// Cluster) with the right names, labels and spec, no owner reference and
/// no placement label; its Service and TLS Secret are copied there and
/// themselves left untouched; its GlobalIngress exists with its hosts.
pub async fn root_lands_as_leaves_with_its_dependencies_copied(
    env: &TestEnv,
) -> anyhow::Result<()> {
    let world = World::new(env, "lands").await?;
    let clusters = world.three_clusters_with_dependencies().await?;
    let root = world.create_root("shop", None).await?;

    let leaves = world.leaves_converge("shop", &clusters).await?;
    let namespaces: Api<Namespace> = Api::all(world.client.clone());
    for cluster in &clusters {
        let leaf = &leaves[&world.leaf_name("shop", cluster)];
        let leaf_labels = leaf.metadata.labels.clone().unwrap_or_default();
        ensure!(
            leaf_labels.get(labels::ROOT_LABEL).map(String::as_str) == Some("shop")
                && leaf_labels.get(labels::ROOT_NAMESPACE_LABEL) == Some(&world.ns),
            "root labels: {leaf_labels:?}"
        );
        ensure!(
            !leaf_labels
                .keys()
                .any(|k| k.starts_with(labels::STATE_LABEL_PREFIX)),
            "a leaf carries no placement label: {leaf_labels:?}"
        );
        ensure!(
            leaf.owner_references().is_empty(),
            "owner references: {:?}",
            leaf.owner_references()
        );
        let ns = namespaces.get(&mailbox::cluster_namespace(cluster)).await?;
        ensure!(
            ns.labels().get(labels::CLUSTER_LABEL) == Some(cluster),
            "namespace labels: {:?}",
            ns.labels()
        );
    }
    world.copies_converge("Service", "web", &clusters).await?;
    world.copies_converge("Secret", "tls", &clusters).await?;
    world.untouched("Service", "web").await?;
    world.untouched("Secret", "tls").await?;

    let global = eventually("GlobalIngress shop", CONVERGE, || async {
        Ok(world.globals().get_opt("shop").await?)
    })
    .await?;
    ensure!(
        global.spec.hosts == ["shop.kcp-ingress.test"],
        "hosts: {:?}",
        global.spec.hosts
    );
    ensure!(
        global
            .owner_references()
            .iter()
            .any(|o| o.uid == root.uid().unwrap_or_default()),
        "the GlobalIngress is not owned by the root"
    );
    let root = world.ingresses().get("shop").await?;
    ensure!(
        root.finalizers()
            .iter()
            .any(|f| f == labels::CLEANUP_FINALIZER),
        "the root has no cleanup finalizer: {:?}",
        root.finalizers()
    );
    world.remove_clusters().await
}

/// Editing the root's spec updates all leaves; a selector matching one
/// cluster deletes two leaves and the copies of the Service and Secret
/// follow; a new matching Cluster adds a leaf. The root's first `Ready`
/// (placed) gets no Event, only its condition and a log line naming the
/// leaves created; each later change of `Ready` gets a `Placed` Event.
pub async fn edits_and_placement_changes_follow(env: &TestEnv) -> anyhow::Result<()> {
    let world = World::new(env, "edits").await?;
    let mut clusters = Vec::new();
    for (i, region) in [(1, "eu"), (2, "us"), (3, "us")] {
        clusters.push(world.add_cluster(i, &[("region", region)]).await?);
    }
    world.create_service("web").await?;
    world.create_secret("tls").await?;
    world.create_root("shop", None).await?;
    world.leaves_converge("shop", &clusters).await?;

    // The first verdict: shown on the GlobalIngress (after the report
    // window: no cluster reports here), logged with the leaves created,
    // not announced. Events are sent before the status that carries the
    // verdict, so none is coming.
    world
        .ready_shown("shop", "True", "placed on 3 cluster(s)")
        .await?;
    let first = world.events_about("shop").await?;
    ensure!(
        !first
            .iter()
            .any(|(reason, _, _)| reason == labels::reasons::PLACED
                || reason == labels::reasons::LEAF_CREATED),
        "the first Ready verdict was announced: {first:?}"
    );
    let log = world.controller.log();
    let quiet = log
        .lines()
        .find(|l| l.contains("the first verdict: no Event") && l.contains("shop"))
        .context("no log line of the first Ready verdict")?;
    for cluster in &clusters {
        let leaf = world.leaf_name("shop", cluster);
        ensure!(
            quiet.contains(&leaf),
            "the log line does not name {leaf}: {quiet}"
        );
    }

    // Narrow the placement to the one cluster in eu.
    let narrow = json!({"metadata": {"annotations": {labels::PLACEMENT_ANNOTATION: format!("e2e-test={},region=eu", world.tag)}}});
    world
        .ingresses()
        .patch("shop", &PatchParams::default(), &Patch::Merge(&narrow))
        .await?;
    let eu = vec![clusters[0].clone()];
    world.leaves_converge("shop", &eu).await?;
    world.copies_converge("Service", "web", &eu).await?;
    world.copies_converge("Secret", "tls", &eu).await?;
    // Each later change of Ready is announced: a Placed Event, then its
    // repeat (a series on the first: its note is the first's).
    let placed_sent = |times: i32| {
        let world = &world;
        async move {
            eventually(
                &format!("Placed announced {times} time(s)"),
                CONVERGE,
                || async {
                    let events = world.events_about("shop").await?;
                    let placed: Vec<_> = events
                        .iter()
                        .filter(|(reason, _, _)| reason == labels::reasons::PLACED)
                        .collect();
                    let sent: i32 = placed.iter().map(|(_, _, n)| n).sum();
                    ensure!(sent <= times, "Placed sent {sent} times: {placed:?}");
                    if sent < times {
                        bail!("Placed sent {sent} times: {placed:?}");
                    }
                    Ok(Some(placed.into_iter().cloned().collect::<Vec<_>>()))
                },
            )
            .await
        }
    };
    let placed = placed_sent(1).await?;
    ensure!(
        placed
            .iter()
            .all(|(_, note, _)| note.starts_with("placed on 1 cluster(s)")),
        "the Placed Event: {placed:?}"
    );

    // A new cluster in eu gets a leaf, and the dependencies follow it.
    let fourth = world.add_cluster(4, &[("region", "eu")]).await?;
    let eu = vec![clusters[0].clone(), fourth];
    world.leaves_converge("shop", &eu).await?;
    world.copies_converge("Service", "web", &eu).await?;
    // Announced (the first verdict never was: 2 in all).
    placed_sent(2).await?;

    // An unschedulable cluster loses its leaf once its drain is complete
    // (the glbc says when; here the test says it, in the past).
    let drain = json!({"spec": {"unschedulable": true}});
    world
        .clusters()
        .patch(&eu[1], &PatchParams::default(), &Patch::Merge(&drain))
        .await?;
    world.leaves_converge("shop", &eu).await?;
    drain_complete(&world, &eu[1]).await?;
    world.leaves_converge("shop", &eu[..1]).await?;
    world.remove_clusters().await
}

/// Leaf statuses appear merged in the root and attributed per cluster in the
/// GlobalIngress; an unhealthy cluster drops out of the root's addresses.
pub async fn leaf_status_merges_into_root_and_global_ingress(env: &TestEnv) -> anyhow::Result<()> {
    let world = World::new(env, "merge").await?;
    let clusters = world.three_clusters_with_dependencies().await?;
    world.create_root("shop", None).await?;
    world.leaves_converge("shop", &clusters).await?;
    // Written out of order, and two clusters share an address.
    for (cluster, ip) in [
        (&clusters[2], "127.0.1.3"),
        (&clusters[0], "127.0.1.1"),
        (&clusters[1], "127.0.1.1"),
    ] {
        world.set_leaf_address("shop", cluster, ip).await?;
    }
    world
        .set_leaf_address("shop", &clusters[1], "127.0.1.2")
        .await?;

    let want = ips(&["127.0.1.1", "127.0.1.2", "127.0.1.3"]);
    eventually("merged root status", CONVERGE, || async {
        let have = world.root_ips("shop").await?;
        Ok((have == want).then_some(()))
    })
    .await?;
    eventually("per-cluster GlobalIngress status", CONVERGE, || async {
        let global = world.globals().get("shop").await?;
        let view: Vec<(String, Vec<String>, bool)> = global
            .status
            .unwrap_or_default()
            .clusters
            .into_iter()
            .map(|c| {
                (
                    c.cluster,
                    c.addresses.into_iter().filter_map(|a| a.ip).collect(),
                    c.healthy,
                )
            })
            .collect();
        let expected: Vec<(String, Vec<String>, bool)> = clusters
            .iter()
            .zip(["127.0.1.1", "127.0.1.2", "127.0.1.3"])
            .map(|(c, ip)| (c.clone(), vec![ip.to_string()], true))
            .collect();
        if view != expected {
            bail!("clusters: {view:?}");
        }
        Ok(Some(()))
    })
    .await?;

    // Cluster 2 turns unhealthy: its address leaves the root; the
    // GlobalIngress still attributes it, as unhealthy.
    world.set_health(&clusters[1], false).await?;
    let want = ips(&["127.0.1.1", "127.0.1.3"]);
    eventually(
        "root status without the unhealthy cluster",
        CONVERGE,
        || async {
            let have = world.root_ips("shop").await?;
            Ok((have == want).then_some(()))
        },
    )
    .await?;
    // The GlobalIngress is written after the root's status: wait for it too.
    eventually(
        "cluster 2 attributed as unhealthy with its address",
        CONVERGE,
        || async {
            let global = world.globals().get("shop").await?;
            let status = global.status.unwrap_or_default();
            let second = status
                .clusters
                .iter()
                .find(|c| c.cluster == clusters[1])
                .context("cluster 2 missing")?;
            if second.healthy || second.addresses.is_empty() {
                bail!("cluster 2 view: {second:?}");
            }
            Ok(Some(()))
        },
    )
    .await?;

    // All unhealthy: the root keeps every address (fail open) and says Degraded.
    world.set_health(&clusters[0], false).await?;
    world.set_health(&clusters[2], false).await?;
    let want = ips(&["127.0.1.1", "127.0.1.2", "127.0.1.3"]);
    eventually(
        "root status while no cluster is healthy",
        CONVERGE,
        || async {
            let have = world.root_ips("shop").await?;
            let global = world.globals().get("shop").await?;
            let degraded = global
                .status
                .unwrap_or_default()
                .conditions
                .iter()
                .any(|c| c.type_ == labels::conditions::DEGRADED && c.status == "True");
            Ok((have == want && degraded).then_some(()))
        },
    )
    .await?;
    world.remove_clusters().await
}

/// Deleting the root removes its leaves and GlobalIngress, releases the
/// finalizer, and removes the copies of its dependencies.
pub async fn deleting_the_root_cleans_everything_up(env: &TestEnv) -> anyhow::Result<()> {
    let world = World::new(env, "delete").await?;
    let clusters = world.three_clusters_with_dependencies().await?;
    world.create_root("shop", None).await?;
    world.leaves_converge("shop", &clusters).await?;
    world.copies_converge("Service", "web", &clusters).await?;
    eventually("GlobalIngress shop", CONVERGE, || async {
        Ok(world.globals().get_opt("shop").await?)
    })
    .await?;

    world
        .ingresses()
        .delete("shop", &DeleteParams::default())
        .await?;
    eventually("root, leaves and GlobalIngress gone", CONVERGE, || async {
        let root = world.ingresses().get_opt("shop").await?;
        let leaves = world.leaves("shop").await?;
        let global = world.globals().get_opt("shop").await?;
        if root.is_some() || !leaves.is_empty() || global.is_some() {
            bail!(
                "root present: {}, leaves: {:?}, GlobalIngress present: {}",
                root.is_some(),
                leaves.keys().collect::<Vec<_>>(),
                global.is_some()
            );
        }
        Ok(Some(()))
    })
    .await?;
    world.copies_converge("Service", "web", &[]).await?;
    world.copies_converge("Secret", "tls", &[]).await?;
    world.untouched("Service", "web").await?;
    world.untouched("Secret", "tls").await?;
    world.remove_clusters().await
}

/// After convergence, a resync (a restarted controller reconciles every
/// object again) changes no resourceVersion: not of the roots, leaves,
/// GlobalIngresses, copies, cluster namespaces or the users' objects; and
/// the restarted controller logs no write of a leaf or a copy.
pub async fn steady_state_writes_nothing(env: &TestEnv) -> anyhow::Result<()> {
    let mut world = World::new(env, "steady").await?;
    let clusters = world.three_clusters_with_dependencies().await?;
    world.create_root("shop", None).await?;
    world.leaves_converge("shop", &clusters).await?;
    for (i, cluster) in clusters.iter().enumerate() {
        world
            .set_leaf_address("shop", cluster, &format!("127.0.1.{}", i + 1))
            .await?;
    }
    world.copies_converge("Service", "web", &clusters).await?;
    world.copies_converge("Secret", "tls", &clusters).await?;
    let want = ips(&["127.0.1.1", "127.0.1.2", "127.0.1.3"]);
    eventually(
        "merged status and a settled GlobalIngress",
        CONVERGE,
        || async {
            let global = world.globals().get("shop").await?;
            let settled = global
                .status
                .unwrap_or_default()
                .clusters
                .iter()
                .all(|c| c.addresses.len() == 1);
            Ok((world.root_ips("shop").await? == want && settled).then_some(()))
        },
    )
    .await?;

    let before = versions(&world, &clusters).await?;

    // Resync: a fresh controller lists and reconciles everything again.
    ensure!(
        world.controller.terminate(Duration::from_secs(10)),
        "the controller did not stop cleanly on SIGTERM"
    );
    let kubeconfig = env.kubeconfig("control-plane");
    world.controller = env.spawn_kcp_ingress(
        "controller-steady-2",
        &[
            "controller",
            "--kubeconfig",
            kubeconfig.to_str().context("kubeconfig path")?,
        ],
    )?;
    // A canary created after the restart converges only once the controller
    // works through its queue, where the resync of "shop" came first.
    world.create_root("canary", None).await?;
    world.leaves_converge("canary", &clusters).await?;
    eventually("canary GlobalIngress", CONVERGE, || async {
        Ok(world.globals().get_opt("canary").await?)
    })
    .await?;

    let after = versions(&world, &clusters).await?;
    let changed: Vec<&String> = before
        .iter()
        .filter(|(k, v)| after.get(*k) != Some(v))
        .map(|(k, _)| k)
        .collect();
    ensure!(
        changed.is_empty(),
        "a resync wrote to objects that had converged: {changed:?}"
    );
    ensure!(
        before.len() == 3 + 6 + 3 + 4,
        "versions compared: {before:?}"
    );
    let log = world.controller.log();
    let shop_leaf = format!("leaf={}.shop--", world.ns);
    ensure!(
        !log.contains(&shop_leaf)
            && !log.contains("wrote copy")
            && !log.contains("deleted copy")
            && !log.contains("ensured the cluster namespace"),
        "the restarted controller wrote leaves of shop, copies or namespaces:\n{log}"
    );
    world.remove_clusters().await
}

/// The resourceVersion of everything `steady_state_writes_nothing` watches
/// for writes, by a name for it.
async fn versions(w: &World, clusters: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let namespaces: Api<Namespace> = Api::all(w.client.clone());
    let mut all = BTreeMap::new();
    for (name, leaf) in w.leaves("shop").await? {
        all.insert(
            format!("leaf {name}"),
            leaf.resource_version().unwrap_or_default(),
        );
    }
    for (kind, name) in [("Service", "web"), ("Secret", "tls")] {
        for (ns, copy) in w.copies(kind, name).await? {
            let rv = copy["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or_default();
            all.insert(format!("copy of {kind} {name} in {ns}"), rv.to_string());
        }
    }
    for cluster in clusters {
        let ns = namespaces.get(&mailbox::cluster_namespace(cluster)).await?;
        all.insert(
            format!("Namespace {}", ns.name_any()),
            ns.resource_version().unwrap_or_default(),
        );
    }
    for i in w.ingresses().list(&ListParams::default()).await? {
        all.insert(
            format!("Ingress {}", i.name_any()),
            i.resource_version().unwrap_or_default(),
        );
    }
    for g in w.globals().list(&ListParams::default()).await? {
        all.insert(
            format!("GlobalIngress {}", g.name_any()),
            g.resource_version().unwrap_or_default(),
        );
    }
    let web = w.services().get("web").await?;
    all.insert(
        "Service web".into(),
        web.resource_version().unwrap_or_default(),
    );
    let tls = w.secrets().get("tls").await?;
    all.insert(
        "Secret tls".into(),
        tls.resource_version().unwrap_or_default(),
    );
    Ok(all)
}

/// Killing the controller in the middle of converging 100 roots and
/// starting it again converges with no duplicates and nothing left behind.
pub async fn killed_mid_convergence_converges_without_duplicates(
    env: &TestEnv,
) -> anyhow::Result<()> {
    const ROOTS: usize = 100;
    let mut world = World::new(env, "crash").await?;
    let clusters = world.three_clusters_with_dependencies().await?;
    // Stop the controller so that all roots are there before it starts.
    world.controller.kill();
    for i in 0..ROOTS {
        world.create_root(&format!("r{i:03}"), None).await?;
    }
    let kubeconfig = env.kubeconfig("control-plane");
    let kubeconfig = kubeconfig.to_str().context("kubeconfig path")?;
    world.controller = env.spawn_kcp_ingress(
        "controller-crash-1",
        &["controller", "--kubeconfig", kubeconfig],
    )?;
    let ingresses: Api<Ingress> = Api::all(world.client.clone());
    let all_leaves = || {
        let ingresses = ingresses.clone();
        let selector = format!("{}={}", labels::ROOT_NAMESPACE_LABEL, world.ns);
        async move {
            anyhow::Ok(
                ingresses
                    .list(&ListParams::default().labels(&selector))
                    .await?
                    .items,
            )
        }
    };
    eventually("some leaves", CONVERGE, || async {
        let n = all_leaves().await?.len();
        Ok((n >= 10).then_some(n))
    })
    .await?;
    world.controller.kill();
    let at_kill = all_leaves().await?.len();
    ensure!(
        at_kill < ROOTS * 3,
        "the controller finished ({at_kill} leaves) before it could be killed"
    );

    world.controller = env.spawn_kcp_ingress(
        "controller-crash-2",
        &["controller", "--kubeconfig", kubeconfig],
    )?;
    let expected: BTreeSet<String> = (0..ROOTS)
        .flat_map(|i| {
            let world = &world;
            clusters
                .iter()
                .map(move |c| world.leaf_name(&format!("r{i:03}"), c))
        })
        .collect();
    eventually(
        "all leaves after the restart",
        Duration::from_secs(90),
        || async {
            let leaves = all_leaves().await?;
            let names: Vec<String> = leaves.iter().map(|l| l.name_any()).collect();
            let unique: BTreeSet<String> = names.iter().cloned().collect();
            ensure!(unique.len() == names.len(), "duplicate leaves");
            Ok((unique == expected).then_some(()))
        },
    )
    .await?;
    eventually("a GlobalIngress per root", CONVERGE, || async {
        let n = world
            .globals()
            .list(&ListParams::default())
            .await?
            .items
            .len();
        Ok((n == ROOTS).then_some(()))
    })
    .await?;

    // Nothing left behind: deleting every root removes every leaf and GlobalIngress.
    world
        .ingresses()
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await?;
    eventually("everything deleted", Duration::from_secs(90), || async {
        let ingresses = world
            .ingresses()
            .list(&ListParams::default())
            .await?
            .items
            .len();
        let globals = world
            .globals()
            .list(&ListParams::default())
            .await?
            .items
            .len();
        let leaves = all_leaves().await?.len();
        Ok((ingresses == 0 && globals == 0 && leaves == 0).then_some(()))
    })
    .await?;
    world.copies_converge("Service", "web", &[]).await?;
    world.copies_converge("Secret", "tls", &[]).await?;
    world.remove_clusters().await
}

/// Bad input gets an Event and a condition; the other roots keep working.
pub async fn bad_input_is_reported_not_fatal(env: &TestEnv) -> anyhow::Result<()> {
    let world = World::new(env, "bad").await?;
    let cluster = world.add_cluster(1, &[]).await?;
    // A Cluster whose name cannot form a label key: skipped, reported.
    let long = format!("{}-{}", world.tag, "x".repeat(60));
    let mut bad_cluster = Cluster::new(&long, ClusterSpec::default());
    bad_cluster.metadata.labels = Some(BTreeMap::from([(
        "e2e-test".to_string(),
        world.tag.clone(),
    )]));
    world
        .clusters()
        .create(&PostParams::default(), &bad_cluster)
        .await?;
    world.set_health(&long, true).await?;

    world.create_service("web").await?;
    // No Secret "tls": reported as a missing dependency, the root still proceeds.
    world.create_root("good", None).await?;
    world.create_root("badsel", Some("region in (eu")).await?;
    let mut placed: Ingress = world.root("placed", None)?;
    placed.metadata.labels = Some(BTreeMap::from([(
        labels::state_label(&cluster),
        "Sync".to_string(),
    )]));
    world
        .ingresses()
        .create(&PostParams::default(), &placed)
        .await?;
    // (An Ingress without rules or backends, or with a malformed host, is
    // refused by the kube-apiserver itself; the controller's own check of
    // those matters where Ingress is served from a CRD, and is unit-tested.)

    world
        .leaves_converge("good", std::slice::from_ref(&cluster))
        .await?;
    let condition_of = |root: &'static str, type_: &'static str| {
        let globals = world.globals();
        async move {
            let global = globals.get_opt(root).await?;
            anyhow::Ok(global.and_then(|g| {
                g.status?
                    .conditions
                    .into_iter()
                    .find(|c| c.type_ == type_)
                    .map(|c| (c.status, c.reason, c.message))
            }))
        }
    };
    for (root, type_, status, reason) in [
        ("good", "DependenciesReady", "False", "DependencyMissing"),
        ("good", "Ready", "True", "Placed"),
        ("badsel", "Ready", "False", "InvalidPlacement"),
        ("placed", "Ready", "False", "RootHasPlacementLabel"),
    ] {
        eventually(&format!("{type_} of {root}"), CONVERGE, || async {
            match condition_of(root, type_).await? {
                Some((s, r, m)) if s == status && r == reason => Ok(Some(m)),
                other => bail!("{type_} is {other:?}"),
            }
        })
        .await?;
    }
    let (_, _, message) = condition_of("good", "Ready")
        .await?
        .context("Ready of good")?;
    ensure!(
        message.contains(&long),
        "the unusable cluster is not reported: {message}"
    );
    for bad in ["badsel", "placed"] {
        ensure!(world.leaves(bad).await?.is_empty(), "{bad} got leaves");
    }
    // Events name the problems.
    let events: Api<k8s_openapi::api::core::v1::Event> =
        Api::namespaced(world.client.clone(), &world.ns);
    eventually("Warning events for the bad roots", CONVERGE, || async {
        let reasons: BTreeSet<String> = events
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter(|e| e.type_.as_deref() == Some("Warning"))
            .filter_map(|e| e.reason)
            .collect();
        let want = [
            "DependencyMissing",
            "InvalidPlacement",
            "RootHasPlacementLabel",
        ];
        if !want.iter().all(|r| reasons.contains(*r)) {
            bail!("Warning reasons so far: {reasons:?}");
        }
        Ok(Some(()))
    })
    .await?;
    // The controller is still alive and working: the Secret appears, the condition follows.
    world.create_secret("tls").await?;
    eventually("DependenciesReady of good", CONVERGE, || async {
        Ok(condition_of("good", "DependenciesReady")
            .await?
            .filter(|(s, _, _)| s == "True"))
    })
    .await?;
    world.remove_clusters().await
}

/// A root whose name is near the 253-character limit still gets its Events
/// (kube's Event names, `<object>.<16 hex digits>`, would be too long).
pub async fn long_root_names_get_their_events(env: &TestEnv) -> anyhow::Result<()> {
    let world = World::new(env, "long").await?;
    world.add_cluster(1, &[]).await?;
    let name = format!("long-{}", "n".repeat(245));
    ensure!(name.len() == 250);
    let mut root = world.root(&name, Some("region in (eu"))?;
    // The name is too long for a host: the host is a short one.
    let spec = root.spec.as_mut().context("root spec")?;
    spec.tls = None;
    if let Some(rule) = spec.rules.as_mut().and_then(|r| r.first_mut()) {
        rule.host = Some("long.kcp-ingress.test".into());
    }
    world
        .ingresses()
        .create(&PostParams::default(), &root)
        .await?;
    let events: Api<k8s_openapi::api::core::v1::Event> =
        Api::namespaced(world.client.clone(), &world.ns);
    eventually(
        "the InvalidPlacement Event of the long root",
        CONVERGE,
        || async {
            let found = events
                .list(&ListParams::default())
                .await?
                .items
                .into_iter()
                .find(|e| {
                    e.involved_object.name.as_deref() == Some(name.as_str())
                        && e.reason.as_deref() == Some("InvalidPlacement")
                });
            match found {
                Some(event) => Ok(Some(event)),
                None => bail!("no InvalidPlacement Event about the 250-character root yet"),
            }
        },
    )
    .await?;
    world.remove_clusters().await
}

/// A plain HTTP GET on loopback: status code and body.
async fn http_get(port: u16, path: &str) -> anyhow::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no HTTP status")?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// The value of a metric sample line that starts with `prefix`.
fn metric(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Two controllers with leader election: only the Lease holder writes; when
/// it is killed the other takes over within the lease duration; a graceful
/// stop releases the Lease at once. /metrics and /readyz tell the truth.
pub async fn leader_election_fails_over(env: &TestEnv) -> anyhow::Result<()> {
    const LEASE: &str = "3s";
    let mut world = World::new(env, "lead").await?;
    world.controller.kill();
    let namespaces: Api<Namespace> = Api::all(world.client.clone());
    if namespaces.get_opt("kcp-ingress-system").await?.is_none() {
        namespaces
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": "kcp-ingress-system"}}))?,
            )
            .await?;
    }
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(world.client.clone(), "kcp-ingress-system");
    let holder = || {
        let leases = leases.clone();
        async move {
            anyhow::Ok(
                leases
                    .get_opt(labels::CONTROLLER_MANAGER)
                    .await?
                    .and_then(|l| l.spec?.holder_identity)
                    .unwrap_or_default(),
            )
        }
    };
    let kubeconfig = env.kubeconfig("control-plane");
    let kubeconfig = kubeconfig.to_str().context("kubeconfig path")?.to_string();
    let start = |name: &str| {
        env.spawn_kcp_ingress(
            &format!("controller-lead-{name}"),
            &[
                "controller",
                "--kubeconfig",
                &kubeconfig,
                "--leader-elect",
                "--lease-duration",
                LEASE,
                "--identity",
                name,
                "--admin-address",
                "127.0.0.1:0",
            ],
        )
    };
    let mut a = start("a")?;
    let port_a = a.admin_port().await?;
    eventually("a holds the Lease", CONVERGE, || async {
        Ok((holder().await? == "a").then_some(()))
    })
    .await?;
    let b = start("b")?;
    let port_b = b.admin_port().await?;
    // b becomes ready (caches synced) but stays a standby.
    eventually("b is ready", CONVERGE, || async {
        Ok(matches!(http_get(port_b, "/readyz").await, Ok((200, _))).then_some(()))
    })
    .await?;

    let cluster = world.add_cluster(1, &[]).await?;
    world.create_service("web").await?;
    world.create_secret("tls").await?;
    let before = metric(
        &http_get(port_a, "/metrics").await?.1,
        "kcp_ingress_reconciles_total{controller=\"roots\"}",
    )
    .unwrap_or(0.0);
    world.create_root("one", None).await?;
    world
        .leaves_converge("one", std::slice::from_ref(&cluster))
        .await?;
    let metrics_a = http_get(port_a, "/metrics").await?.1;
    let after = metric(
        &metrics_a,
        "kcp_ingress_reconciles_total{controller=\"roots\"}",
    )
    .unwrap_or(0.0);
    ensure!(
        after > before,
        "the leader's reconcile counter did not move ({before} -> {after})"
    );
    ensure!(
        metric(&metrics_a, "kcp_ingress_leader").is_some_and(|v| v == 1.0),
        "a does not report leading:\n{metrics_a}"
    );
    let metrics_b = http_get(port_b, "/metrics").await?.1;
    ensure!(
        metric(&metrics_b, "kcp_ingress_leader").is_some_and(|v| v == 0.0),
        "b reports leading:\n{metrics_b}"
    );
    ensure!(
        !b.log().contains("created leaf"),
        "the standby wrote:\n{}",
        b.log()
    );

    // The leader dies without releasing the Lease: b takes over within the lease duration.
    a.kill();
    let killed = std::time::Instant::now();
    eventually("b holds the Lease", Duration::from_secs(10), || async {
        Ok((holder().await? == "b").then_some(()))
    })
    .await?;
    let takeover = killed.elapsed();
    ensure!(
        takeover <= Duration::from_secs(3) + Duration::from_secs(2),
        "takeover took {takeover:?}"
    );
    world.create_root("two", None).await?;
    world
        .leaves_converge("two", std::slice::from_ref(&cluster))
        .await?;
    // Nothing written twice: every leaf of "one" and "two" exists once, with one controller entry.
    for root in ["one", "two"] {
        for leaf in world.leaves(root).await?.values() {
            let managers = leaf
                .managed_fields()
                .iter()
                .filter(|m| m.manager.as_deref() == Some(labels::CONTROLLER_MANAGER))
                .count();
            ensure!(
                managers == 1,
                "{} has {managers} controller field-manager entries",
                leaf.name_any()
            );
        }
    }

    // A graceful stop releases the Lease at once.
    let mut b = b;
    ensure!(
        b.terminate(Duration::from_secs(10)),
        "b did not stop cleanly on SIGTERM"
    );
    ensure!(
        holder().await?.is_empty(),
        "b did not release the Lease on SIGTERM"
    );
    world.remove_clusters().await
}

/// Waits until the GlobalIngress `name` has the condition `type_` with
/// `status` and `reason`; its message.
async fn wait_global_condition(
    world: &World,
    name: &str,
    type_: &str,
    status: &str,
    reason: &str,
) -> anyhow::Result<String> {
    eventually(
        &format!("GlobalIngress {name}: {type_}={status} ({reason})"),
        CONVERGE,
        || async {
            let global = world.globals().get_opt(name).await?;
            let found = global
                .and_then(|g| g.status)
                .and_then(|s| s.conditions.into_iter().find(|c| c.type_ == type_));
            match found {
                Some(c) if c.status == status && c.reason == reason => Ok(Some(c.message)),
                other => bail!("{type_} is {other:?}"),
            }
        },
    )
    .await
}

/// A GlobalIngress that no live root controls is deleted by the
/// controller (a bare kube-apiserver has no garbage collector): one made by
/// hand without an owner, one owned by an Ingress that does not exist, and
/// one whose deletion the glbc's finalizer then holds. The GlobalIngress
/// of a live root stays, the same object throughout, also when it loses
/// its owner reference (the root adopts it again).
pub async fn orphan_global_ingresses_are_removed(env: &TestEnv) -> anyhow::Result<()> {
    let world = World::new(env, "orphan").await?;
    let clusters = world.three_clusters_with_dependencies().await?;
    world.create_root("shop", None).await?;
    world.leaves_converge("shop", &clusters).await?;
    let live = eventually("the GlobalIngress of shop", CONVERGE, || async {
        Ok(world.globals().get_opt("shop").await?)
    })
    .await?;

    let orphan =
        |name: &str, owner: Option<&str>, finalizer: bool| -> anyhow::Result<GlobalIngress> {
            let owners: Vec<serde_json::Value> = owner
                .map(|uid| {
                    json!({
                        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                        "name": name, "uid": uid, "controller": true,
                    })
                })
                .into_iter()
                .collect();
            let finalizers: Vec<&str> = if finalizer {
                vec![labels::DNS_FINALIZER]
            } else {
                Vec::new()
            };
            Ok(serde_json::from_value(json!({
                "apiVersion": "kcp-ingress.dev/v1alpha1", "kind": "GlobalIngress",
                "metadata": {"name": name, "ownerReferences": owners, "finalizers": finalizers},
                "spec": {"hosts": [format!("{name}.kcp-ingress.test")]},
            }))?)
        };
    for global in [
        orphan("by-hand", None, false)?,
        orphan(
            "owner-gone",
            Some("00000000-0000-0000-0000-00000000dead"),
            false,
        )?,
        orphan("held", None, true)?,
    ] {
        world
            .globals()
            .create(&PostParams::default(), &global)
            .await
            .with_context(|| format!("creating GlobalIngress {}", global.name_any()))?;
    }
    for name in ["by-hand", "owner-gone"] {
        eventually(&format!("orphan {name} deleted"), CONVERGE, || async {
            Ok(world.globals().get_opt(name).await?.is_none().then_some(()))
        })
        .await?;
    }
    // With the glbc's finalizer, deleting it requests the deletion; the
    // glbc (not running here) would release its records and the finalizer.
    eventually("orphan held: deletion requested", CONVERGE, || async {
        let g = world.globals().get("held").await?;
        Ok(g.metadata.deletion_timestamp.is_some().then_some(()))
    })
    .await?;
    world
        .globals()
        .patch(
            "held",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await?;
    eventually("orphan held gone", CONVERGE, || async {
        Ok(world
            .globals()
            .get_opt("held")
            .await?
            .is_none()
            .then_some(()))
    })
    .await?;
    let log = world.controller.log();
    ensure!(
        log.contains("deleted an orphan GlobalIngress"),
        "no log line for the deleted orphans"
    );
    // The live root's GlobalIngress loses its owner reference (written
    // before owners were set, say): the root adopts it again, not deleted.
    world
        .globals()
        .patch(
            "shop",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"ownerReferences": null}})),
        )
        .await?;
    eventually("shop's GlobalIngress adopted again", CONVERGE, || async {
        let g = world.globals().get("shop").await?;
        Ok((!g.owner_references().is_empty()).then_some(()))
    })
    .await?;
    let now = world.globals().get("shop").await?;
    ensure!(
        now.uid() == live.uid() && now.metadata.deletion_timestamp.is_none(),
        "the GlobalIngress of the live root was deleted or replaced"
    );
    world.remove_clusters().await
}

/// A root placed on no cluster (its selector matches none, or only
/// unschedulable ones) says `Degraded=True` (`NoClusterPlaced`), not
/// "healthy cluster available"; placed on a healthy one, it is not Degraded.
pub async fn a_root_placed_nowhere_is_degraded(env: &TestEnv) -> anyhow::Result<()> {
    let world = World::new(env, "nowhere").await?;
    world.create_service("web").await?;
    world.create_secret("tls").await?;
    let selector = format!("e2e-test={},zone=z1", world.tag);
    world.create_root("shop", Some(&selector)).await?;
    let message = wait_global_condition(
        &world,
        "shop",
        labels::conditions::DEGRADED,
        "True",
        labels::reasons::NO_CLUSTER_PLACED,
    )
    .await?;
    ensure!(
        message.contains("no schedulable Cluster"),
        "message: {message}"
    );

    // The one match is unschedulable: still placed nowhere.
    let cluster = world.add_cluster(1, &[("zone", "z1")]).await?;
    world
        .clusters()
        .patch(
            &cluster,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"unschedulable": true}})),
        )
        .await?;
    drain_complete(&world, &cluster).await?;
    wait_global_condition(
        &world,
        "shop",
        labels::conditions::READY,
        "False",
        "NoMatchingCluster",
    )
    .await?;
    wait_global_condition(
        &world,
        "shop",
        labels::conditions::DEGRADED,
        "True",
        labels::reasons::NO_CLUSTER_PLACED,
    )
    .await?;

    // Schedulable and healthy: placed, not Degraded.
    world
        .clusters()
        .patch(
            &cluster,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"unschedulable": false}})),
        )
        .await?;
    world
        .leaves_converge("shop", std::slice::from_ref(&cluster))
        .await?;
    wait_global_condition(
        &world,
        "shop",
        labels::conditions::DEGRADED,
        "False",
        labels::reasons::HEALTHY_CLUSTER_AVAILABLE,
    )
    .await?;
    world.remove_clusters().await
}

/// A syncer's conflict report on the copy of a Service a root depends on
/// (the `conflict.kcp-ingress.dev/<cluster>` annotation on the
/// `PlacedObject` in the cluster's namespace, written here the way a syncer
/// writes it) shows on the root's GlobalIngress as `DependenciesReady=False`
/// (`DependencyConflict`), naming the object and the cluster; it clears
/// when the report does. A report claiming another cluster does not count.
pub async fn a_dependency_conflict_shows_on_the_root(env: &TestEnv) -> anyhow::Result<()> {
    let world = World::new(env, "depconflict").await?;
    let clusters = world.three_clusters_with_dependencies().await?;
    world.create_root("shop", None).await?;
    world.leaves_converge("shop", &clusters).await?;
    wait_global_condition(
        &world,
        "shop",
        labels::conditions::DEPENDENCIES_READY,
        "True",
        labels::reasons::ALL_FOUND,
    )
    .await?;

    world.copies_converge("Service", "web", &clusters).await?;
    let placed = mailbox::placed_object_name(&world.ns, "web", "services", "")?;
    let copy_in = |cluster: &str| {
        Api::<PlacedObject>::namespaced(world.client.clone(), &mailbox::cluster_namespace(cluster))
    };
    let key = labels::conflict_annotation(&clusters[1]);
    let report = json!({"metadata": {"annotations": {&key:
        "Service web already exists in the cluster and is not managed by kcp-ingress"}}});
    // Claimed in another cluster's namespace: not that cluster's syncer.
    copy_in(&clusters[0])
        .patch(&placed, &PatchParams::default(), &Patch::Merge(&report))
        .await?;
    copy_in(&clusters[1])
        .patch(&placed, &PatchParams::default(), &Patch::Merge(&report))
        .await?;
    let message = wait_global_condition(
        &world,
        "shop",
        labels::conditions::DEPENDENCIES_READY,
        "False",
        labels::reasons::DEPENDENCY_CONFLICT,
    )
    .await?;
    let named = format!("Service {}/web in cluster(s) {}", world.ns, clusters[1]);
    ensure!(message.ends_with(&named), "message: {message}");

    let clear = json!({"metadata": {"annotations": {&key: null}}});
    copy_in(&clusters[1])
        .patch(&placed, &PatchParams::default(), &Patch::Merge(&clear))
        .await?;
    wait_global_condition(
        &world,
        "shop",
        labels::conditions::DEPENDENCIES_READY,
        "True",
        labels::reasons::ALL_FOUND,
    )
    .await?;
    world.remove_clusters().await
}

/// The TLS Secret and backend Service of a root placed on two clusters are
/// copied into both cluster namespaces (the Secret with its data and
/// origin, the Service as a cluster-independent `PlacedObject`), the users'
/// objects stay as they are; a renewed certificate reaches the copies; a
/// ConfigMap labelled `state.kcp-ingress.dev/<cluster>=Sync` by hand is
/// copied to that cluster only, and its copy goes with the label; a deleted
/// Cluster's namespace is emptied; deleting the root removes the copies.
pub async fn copies_follow_roots_content_and_hand_labels(env: &TestEnv) -> anyhow::Result<()> {
    let world = World::new(env, "copies").await?;
    let mut clusters = Vec::new();
    for i in 1..=2 {
        clusters.push(world.add_cluster(i, &[]).await?);
    }
    world.create_service("web").await?;
    world.create_secret("tls").await?;
    world.create_root("shop", None).await?;
    world.leaves_converge("shop", &clusters).await?;

    let user_secret = world.secrets().get("tls").await?;
    let copies = world.copies_converge("Secret", "tls", &clusters).await?;
    for copy in copies.values() {
        let copy: Secret = serde_json::from_value(copy.clone())?;
        ensure!(copy.data == user_secret.data, "the copy's data differs");
        ensure!(copy.type_ == user_secret.type_, "the copy's type differs");
        let origin = format!("{}/tls/{}", world.ns, user_secret.uid().unwrap_or_default());
        ensure!(
            copy.annotations().get(labels::ORIGIN_ANNOTATION) == Some(&origin),
            "origin: {:?}",
            copy.annotations()
        );
    }
    let placed = world.copies_converge("Service", "web", &clusters).await?;
    for copy in placed.values() {
        let object = &copy["spec"]["object"];
        ensure!(
            object["kind"] == "Service"
                && object["metadata"]["namespace"] == world.ns.as_str()
                && object["metadata"]["name"] == "web",
            "embedded object: {object}"
        );
        ensure!(
            object["spec"].get("clusterIP").is_none() && object["spec"].get("clusterIPs").is_none(),
            "the embedded Service keeps its control-plane address: {object}"
        );
        ensure!(object["spec"]["ports"][0]["port"] == 80, "ports: {object}");
        ensure!(
            copy["metadata"]["labels"][labels::PLACED_RESOURCE_LABEL] == "services",
            "labels: {}",
            copy["metadata"]
        );
    }
    world.untouched("Service", "web").await?;
    world.untouched("Secret", "tls").await?;

    // A renewed certificate reaches every copy.
    let renew = json!({"stringData": {"tls.crt": "renewed-cert"}});
    world
        .secrets()
        .patch("tls", &PatchParams::default(), &Patch::Merge(&renew))
        .await?;
    eventually(
        "the renewed certificate in every copy",
        CONVERGE,
        || async {
            let copies = world.copies("Secret", "tls").await?;
            let renewed = copies
                .values()
                .all(|c| c["data"]["tls.crt"].as_str() == Some("cmVuZXdlZC1jZXJ0"));
            Ok((copies.len() == 2 && renewed).then_some(()))
        },
    )
    .await?;
    world.untouched("Secret", "tls").await?;

    // A ConfigMap placed by hand on the first cluster only.
    let configmaps: Api<ConfigMap> = Api::namespaced(world.client.clone(), &world.ns);
    let conf: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "conf", "labels": {labels::state_label(&clusters[0]): labels::STATE_SYNC}},
        "data": {"mode": "fast"},
    }))?;
    configmaps.create(&PostParams::default(), &conf).await?;
    let copies = world
        .copies_converge("ConfigMap", "conf", &clusters[..1])
        .await?;
    let copy = &copies[&mailbox::cluster_namespace(&clusters[0])];
    ensure!(copy["data"]["mode"] == "fast", "ConfigMap copy: {copy}");
    ensure!(
        copy["metadata"]["labels"]
            .as_object()
            .is_none_or(|l| !l.keys().any(|k| k.starts_with(labels::STATE_LABEL_PREFIX))),
        "the copy carries placement labels: {copy}"
    );
    world.untouched("ConfigMap", "conf").await?;
    let unlabel = json!({"metadata": {"labels": {labels::state_label(&clusters[0]): null}}});
    configmaps
        .patch("conf", &PatchParams::default(), &Patch::Merge(&unlabel))
        .await?;
    world.copies_converge("ConfigMap", "conf", &[]).await?;

    // The second Cluster goes: its namespace is emptied.
    world
        .clusters()
        .delete(&clusters[1], &DeleteParams::default())
        .await?;
    let gone_ns = mailbox::cluster_namespace(&clusters[1]);
    eventually("the gone Cluster's namespace emptied", CONVERGE, || async {
        let leaves = Api::<Ingress>::namespaced(world.client.clone(), &gone_ns)
            .list(&ListParams::default())
            .await?
            .items
            .len();
        let secrets = world.copies("Secret", "tls").await?;
        let placed = world.copies("Service", "web").await?;
        let left = leaves
            + usize::from(secrets.contains_key(&gone_ns))
            + usize::from(placed.contains_key(&gone_ns));
        Ok((left == 0).then_some(()))
    })
    .await?;

    // The root goes: so do its leaves and the copies of what it needed.
    world
        .ingresses()
        .delete("shop", &DeleteParams::default())
        .await?;
    eventually("the root and its leaves gone", CONVERGE, || async {
        let root = world.ingresses().get_opt("shop").await?;
        Ok((root.is_none() && world.leaves("shop").await?.is_empty()).then_some(()))
    })
    .await?;
    world.copies_converge("Secret", "tls", &[]).await?;
    world.copies_converge("Service", "web", &[]).await?;
    world.untouched("Service", "web").await?;
    world.untouched("Secret", "tls").await?;
    world.remove_clusters().await
}

/// A leaf whose root is gone (made here by hand in a cluster namespace) is
/// deleted, as is a leaf of the old layout (in its root's namespace, owned
/// by it); an Ingress in a cluster namespace that names no root stays. A
/// Secret labelled for a Cluster before that Cluster exists is copied once
/// it does. A Cluster whose kubeconfigSecretRef points into a cluster
/// namespace gets a Warning Event.
pub async fn orphans_go_and_bad_references_are_refused(env: &TestEnv) -> anyhow::Result<()> {
    let world = World::new(env, "orphans").await?;
    // Labelled by hand for a Cluster that comes later.
    let early: Secret = serde_json::from_value(json!({
        "metadata": {"name": "early", "labels": {labels::state_label(&world.cluster_name(1)): labels::STATE_SYNC}},
        "stringData": {"k": "v"},
    }))?;
    world
        .secrets()
        .create(&PostParams::default(), &early)
        .await?;
    let cluster = world.add_cluster(1, &[]).await?;
    world
        .copies_converge("Secret", "early", std::slice::from_ref(&cluster))
        .await?;
    let cluster_ns = mailbox::cluster_namespace(&cluster);
    eventually("the cluster namespace", CONVERGE, || async {
        Ok(Api::<Namespace>::all(world.client.clone())
            .get_opt(&cluster_ns)
            .await?)
    })
    .await?;

    world.create_service("web").await?;
    world.create_secret("tls").await?;
    let root = world.create_root("shop", Some("no-cluster=at-all")).await?;
    let in_cluster_ns: Api<Ingress> = Api::namespaced(world.client.clone(), &cluster_ns);
    let leaf_like = |name: &str, labels_: serde_json::Value| -> anyhow::Result<Ingress> {
        let mut ingress = world.root(name, None)?;
        ingress.metadata.annotations = None;
        ingress.metadata.labels = Some(serde_json::from_value(labels_)?);
        Ok(ingress)
    };
    let orphan = leaf_like(
        &format!("{}.ghost--{cluster}", world.ns),
        json!({labels::ROOT_LABEL: "ghost", labels::ROOT_NAMESPACE_LABEL: world.ns}),
    )?;
    in_cluster_ns
        .create(&PostParams::default(), &orphan)
        .await?;
    let bystander = leaf_like("not-a-leaf", json!({"app": "x"}))?;
    in_cluster_ns
        .create(&PostParams::default(), &bystander)
        .await?;
    let mut old = leaf_like(
        &format!("shop--{cluster}"),
        json!({labels::ROOT_LABEL: "shop", labels::state_label(&cluster): "Sync"}),
    )?;
    old.metadata.owner_references = Some(vec![
        kube::Resource::controller_owner_ref(&root, &()).context("owner")?,
    ]);
    world
        .ingresses()
        .create(&PostParams::default(), &old)
        .await?;
    let orphan_name = orphan.name_any();
    let old_name = old.name_any();
    eventually(
        "the orphan and the old-layout leaf deleted",
        CONVERGE,
        || async {
            let orphan = in_cluster_ns.get_opt(&orphan_name).await?;
            let old = world.ingresses().get_opt(&old_name).await?;
            Ok((orphan.is_none() && old.is_none()).then_some(()))
        },
    )
    .await?;
    ensure!(
        in_cluster_ns.get_opt("not-a-leaf").await?.is_some(),
        "an Ingress that names no root was deleted"
    );
    ensure!(
        world.ingresses().get_opt("shop").await?.is_some(),
        "the root was deleted"
    );

    // A kubeconfig Secret in a cluster namespace is refused.
    let mut bad = Cluster::new(&world.cluster_name(2), ClusterSpec::default());
    bad.metadata.labels = Some(BTreeMap::from([(
        "e2e-test".to_string(),
        world.tag.clone(),
    )]));
    bad.spec.kubeconfig_secret_ref = Some(kcp_ingress::apis::KubeconfigSecretRef {
        namespace: cluster_ns.clone(),
        name: "kubeconfig".into(),
        key: None,
    });
    world
        .clusters()
        .create(&PostParams::default(), &bad)
        .await?;
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::all(world.client.clone());
    let bad_name = bad.name_any();
    eventually("the KubeconfigSecretRefused Event", CONVERGE, || async {
        let found = events
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .any(|e| {
                e.involved_object.name.as_deref() == Some(bad_name.as_str())
                    && e.reason.as_deref() == Some(labels::reasons::KUBECONFIG_SECRET_REFUSED)
            });
        Ok(found.then_some(()))
    })
    .await?;
    in_cluster_ns
        .delete("not-a-leaf", &DeleteParams::default())
        .await?;
    world.remove_clusters().await
}

/// When a Cluster goes, what is placed in its namespace is deleted; the
/// finalizer its syncer put there (written here the way a syncer would)
/// holds the objects while the syncer may still tear down, and is removed
/// by the controller after the grace period, so nothing is stuck forever.
/// The same holds for a leaf of the old layout (in its root's namespace).
pub async fn a_gone_cluster_s_finalizers_do_not_hold_forever(env: &TestEnv) -> anyhow::Result<()> {
    let world = World::new(env, "gone").await?;
    let cluster = world.add_cluster(1, &[]).await?;
    world.create_service("web").await?;
    world.create_secret("tls").await?;
    let root = world.create_root("shop", None).await?;
    world
        .leaves_converge("shop", std::slice::from_ref(&cluster))
        .await?;
    world
        .copies_converge("Secret", "tls", std::slice::from_ref(&cluster))
        .await?;
    let cluster_ns = mailbox::cluster_namespace(&cluster);
    // A leaf of the layout before cluster namespaces, held by the old
    // syncer's finalizer: deleted, and released after the grace period too.
    let mut old = world.root(&format!("shop--{cluster}"), None)?;
    old.metadata.annotations = None;
    old.metadata.labels = Some(BTreeMap::from([(
        labels::ROOT_LABEL.to_string(),
        "shop".to_string(),
    )]));
    old.metadata.finalizers = Some(vec![labels::syncer_finalizer(&cluster)]);
    old.metadata.owner_references = Some(vec![
        kube::Resource::controller_owner_ref(&root, &()).context("owner")?,
    ]);
    let old_name = old.name_any();
    world
        .ingresses()
        .create(&PostParams::default(), &old)
        .await?;
    let finalize = json!({"metadata": {"finalizers": [labels::syncer_finalizer(&cluster)]}});
    let leaf = world.leaf_name("shop", &cluster);
    let leaves: Api<Ingress> = Api::namespaced(world.client.clone(), &cluster_ns);
    leaves
        .patch(&leaf, &PatchParams::default(), &Patch::Merge(&finalize))
        .await?;
    let copy = mailbox::copy_name(&world.ns, "tls")?;
    let secrets: Api<Secret> = Api::namespaced(world.client.clone(), &cluster_ns);
    secrets
        .patch(&copy, &PatchParams::default(), &Patch::Merge(&finalize))
        .await?;

    world
        .clusters()
        .delete(&cluster, &DeleteParams::default())
        .await?;
    eventually("the leaf and the copy being deleted", CONVERGE, || async {
        let leaf = leaves.get_opt(&leaf).await?;
        let copy = secrets.get_opt(&copy).await?;
        let held = leaf.is_some_and(|l| l.metadata.deletion_timestamp.is_some())
            && copy.is_some_and(|c| c.metadata.deletion_timestamp.is_some());
        Ok(held.then_some(()))
    })
    .await?;
    eventually(
        "the finalizers removed and the objects gone",
        Duration::from_secs(150),
        || async {
            let leaf = leaves.get_opt(&leaf).await?;
            let copy = secrets.get_opt(&copy).await?;
            let old = world.ingresses().get_opt(&old_name).await?;
            Ok((leaf.is_none() && copy.is_none() && old.is_none()).then_some(()))
        },
    )
    .await?;
    let log = world.controller.log();
    ensure!(
        log.contains("removed the finalizers of a gone Cluster's syncer")
            && log.contains("released the syncer finalizers of an old-layout leaf"),
        "no log of the removed finalizers:\n{log}"
    );
    world.remove_clusters().await
}

/// Says on `cluster`'s status what the glbc says once a drain's TTL has
/// passed: its leaves may go (no glbc runs in this group).
async fn drain_complete(world: &World, cluster: &str) -> anyhow::Result<()> {
    world
        .clusters()
        .patch_status(
            cluster,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"drainCompleteTime": "2020-01-01T00:00:00Z"}})),
        )
        .await?;
    Ok(())
}
