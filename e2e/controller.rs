//! The ingress-controller against the real control plane. The tests write
//! Cluster health and leaf status themselves, the way syncers would. Each
//! test runs its own controller (the group is serial), its own namespace,
//! and its own Clusters, selected by a label only its roots ask for.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use k8s_openapi::api::core::v1::{Namespace, Secret, Service};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::jiff::Timestamp;
use kcp_ingress::apis::{Cluster, ClusterSpec, GlobalIngress};
use kcp_ingress::labels;
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

    /// The leaves of `root` in the namespace, by name.
    async fn leaves(&self, root: &str) -> anyhow::Result<BTreeMap<String, Ingress>> {
        let selector = format!("{}={root}", labels::ROOT_LABEL);
        Ok(self
            .ingresses()
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
        let want: BTreeSet<String> = clusters.iter().map(|c| format!("{root}--{c}")).collect();
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
                Ok(Some(leaves))
            },
        )
        .await
    }

    /// Waits until the dependency's placement labels are exactly `clusters`.
    async fn dependency_labels_converge(
        &self,
        kind: &str,
        name: &str,
        clusters: &[String],
    ) -> anyhow::Result<()> {
        let want: BTreeSet<String> = clusters.iter().map(|c| labels::state_label(c)).collect();
        eventually(
            &format!("placement labels of {kind} {name}"),
            CONVERGE,
            || async {
                let object_labels = match kind {
                    "Service" => self.services().get(name).await?.metadata.labels,
                    _ => self.secrets().get(name).await?.metadata.labels,
                };
                let have: BTreeSet<String> = object_labels
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|(k, v)| {
                        k.starts_with(labels::STATE_LABEL_PREFIX) && v == labels::STATE_SYNC
                    })
                    .map(|(k, _)| k)
                    .collect();
                if have != want {
                    bail!("labels are {have:?}");
                }
                Ok(Some(()))
            },
        )
        .await
    }

    /// Writes a leaf's load-balancer status, as its cluster's syncer would.
    async fn set_leaf_address(&self, leaf: &str, ip: &str) -> anyhow::Result<()> {
        let status = json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "status": {"loadBalancer": {"ingress": [{"ip": ip}]}},
        });
        self.ingresses()
            .patch_status(
                leaf,
                &PatchParams::apply("e2e-syncer").force(),
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

/// A root lands as 3 leaves with the right names, labels, owner references
/// and spec; its Service and TLS Secret carry the 3 cluster labels; its
/// GlobalIngress exists with its hosts.
pub async fn root_lands_as_leaves_with_its_dependencies_labelled(
    env: &TestEnv,
) -> anyhow::Result<()> {
    let world = World::new(env, "lands").await?;
    let clusters = world.three_clusters_with_dependencies().await?;
    let root = world.create_root("shop", None).await?;

    let leaves = world.leaves_converge("shop", &clusters).await?;
    for cluster in &clusters {
        let leaf = &leaves[&format!("shop--{cluster}")];
        let leaf_labels = leaf.metadata.labels.clone().unwrap_or_default();
        ensure!(
            leaf_labels.get(labels::ROOT_LABEL).map(String::as_str) == Some("shop"),
            "root label: {leaf_labels:?}"
        );
        ensure!(
            leaf_labels
                .get(&labels::state_label(cluster))
                .map(String::as_str)
                == Some("Sync"),
            "placement label: {leaf_labels:?}"
        );
        let placement_labels = leaf_labels
            .keys()
            .filter(|k| k.starts_with(labels::STATE_LABEL_PREFIX))
            .count();
        ensure!(
            placement_labels == 1,
            "a leaf must carry exactly one placement label: {leaf_labels:?}"
        );
        let owners = leaf.owner_references();
        ensure!(
            owners.len() == 1
                && owners[0].uid == root.uid().unwrap_or_default()
                && owners[0].controller == Some(true),
            "owner references: {owners:?}"
        );
    }
    world
        .dependency_labels_converge("Service", "web", &clusters)
        .await?;
    world
        .dependency_labels_converge("Secret", "tls", &clusters)
        .await?;

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
/// cluster deletes two leaves and the Service labels follow; a new matching
/// Cluster adds a leaf.
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

    // A spec edit reaches every leaf (leaves_converge compares specs).
    let edit = json!({"spec": {"rules": [{"host": "shop.kcp-ingress.test", "http": {"paths": [{
        "path": "/v2", "pathType": "Prefix",
        "backend": {"service": {"name": "web", "port": {"number": 8080}}},
    }]}}]}});
    world
        .ingresses()
        .patch("shop", &PatchParams::default(), &Patch::Merge(&edit))
        .await?;
    world.leaves_converge("shop", &clusters).await?;

    // Narrow the placement to the one cluster in eu.
    let narrow = json!({"metadata": {"annotations": {labels::PLACEMENT_ANNOTATION: format!("e2e-test={},region=eu", world.tag)}}});
    world
        .ingresses()
        .patch("shop", &PatchParams::default(), &Patch::Merge(&narrow))
        .await?;
    let eu = vec![clusters[0].clone()];
    world.leaves_converge("shop", &eu).await?;
    world
        .dependency_labels_converge("Service", "web", &eu)
        .await?;
    world
        .dependency_labels_converge("Secret", "tls", &eu)
        .await?;

    // A new cluster in eu gets a leaf, and the dependencies follow it.
    let fourth = world.add_cluster(4, &[("region", "eu")]).await?;
    let eu = vec![clusters[0].clone(), fourth];
    world.leaves_converge("shop", &eu).await?;
    world
        .dependency_labels_converge("Service", "web", &eu)
        .await?;

    // An unschedulable cluster loses its leaf.
    let drain = json!({"spec": {"unschedulable": true}});
    world
        .clusters()
        .patch(&eu[1], &PatchParams::default(), &Patch::Merge(&drain))
        .await?;
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
        world
            .set_leaf_address(&format!("shop--{cluster}"), ip)
            .await?;
    }
    world
        .set_leaf_address(&format!("shop--{}", clusters[1]), "127.0.1.2")
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
/// finalizer, and cleans the dependencies' labels.
pub async fn deleting_the_root_cleans_everything_up(env: &TestEnv) -> anyhow::Result<()> {
    let world = World::new(env, "delete").await?;
    let clusters = world.three_clusters_with_dependencies().await?;
    world.create_root("shop", None).await?;
    world.leaves_converge("shop", &clusters).await?;
    world
        .dependency_labels_converge("Service", "web", &clusters)
        .await?;
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
    world
        .dependency_labels_converge("Service", "web", &[])
        .await?;
    world
        .dependency_labels_converge("Secret", "tls", &[])
        .await?;
    world.remove_clusters().await
}

/// After convergence, a resync (a restarted controller reconciles every
/// object again) changes no resourceVersion.
pub async fn steady_state_writes_nothing(env: &TestEnv) -> anyhow::Result<()> {
    let mut world = World::new(env, "steady").await?;
    let clusters = world.three_clusters_with_dependencies().await?;
    world.create_root("shop", None).await?;
    world.leaves_converge("shop", &clusters).await?;
    for (i, cluster) in clusters.iter().enumerate() {
        world
            .set_leaf_address(&format!("shop--{cluster}"), &format!("127.0.1.{}", i + 1))
            .await?;
    }
    world
        .dependency_labels_converge("Service", "web", &clusters)
        .await?;
    world
        .dependency_labels_converge("Secret", "tls", &clusters)
        .await?;
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

    let versions = |w: &World| {
        let (ingresses, globals, services, secrets) =
            (w.ingresses(), w.globals(), w.services(), w.secrets());
        async move {
            let mut all = BTreeMap::new();
            for i in ingresses.list(&ListParams::default()).await? {
                all.insert(
                    format!("Ingress {}", i.name_any()),
                    i.resource_version().unwrap_or_default(),
                );
            }
            for g in globals.list(&ListParams::default()).await? {
                all.insert(
                    format!("GlobalIngress {}", g.name_any()),
                    g.resource_version().unwrap_or_default(),
                );
            }
            let web = services.get("web").await?;
            all.insert(
                "Service web".into(),
                web.resource_version().unwrap_or_default(),
            );
            let tls = secrets.get("tls").await?;
            all.insert(
                "Secret tls".into(),
                tls.resource_version().unwrap_or_default(),
            );
            anyhow::Ok(all)
        }
    };
    let before = versions(&world).await?;

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

    let after = versions(&world).await?;
    let changed: Vec<&String> = before
        .iter()
        .filter(|(k, v)| after.get(*k) != Some(v))
        .map(|(k, _)| k)
        .collect();
    ensure!(
        changed.is_empty(),
        "a resync wrote to objects that had converged: {changed:?}"
    );
    let log = world.controller.log();
    ensure!(
        !log.contains("leaf=shop--"),
        "the restarted controller touched the leaves of shop:\n{log}"
    );
    world.remove_clusters().await
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
    let ingresses = world.ingresses();
    let all_leaves = || {
        let ingresses = ingresses.clone();
        async move {
            let selector = labels::ROOT_LABEL.to_string();
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
        .flat_map(|i| clusters.iter().map(move |c| format!("r{i:03}--{c}")))
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
        Ok((ingresses == 0 && globals == 0).then_some(()))
    })
    .await?;
    world
        .dependency_labels_converge("Service", "web", &[])
        .await?;
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

/// A free loopback port (the listener is closed before the port is used).
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
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
    let (port_a, port_b) = (free_port()?, free_port()?);
    let start = |name: &str, port: u16| {
        let admin = format!("127.0.0.1:{port}");
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
                &admin,
            ],
        )
    };
    let mut a = start("a", port_a)?;
    eventually("a holds the Lease", CONVERGE, || async {
        Ok((holder().await? == "a").then_some(()))
    })
    .await?;
    let b = start("b", port_b)?;
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

/// A syncer's conflict report on a Service a root depends on (the
/// `conflict.kcp-ingress.dev/<cluster>` annotation, written here the way a
/// syncer writes it) shows on the root's GlobalIngress as
/// `DependenciesReady=False` (`DependencyConflict`), naming the object and
/// the cluster; it clears when the report does.
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

    let key = labels::conflict_annotation(&clusters[1]);
    let report = json!({"metadata": {"annotations": {&key:
        "Service web already exists in the cluster and is not managed by kcp-ingress"}}});
    world
        .services()
        .patch("web", &PatchParams::default(), &Patch::Merge(&report))
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
    ensure!(message.contains(&named), "message: {message}");

    let clear = json!({"metadata": {"annotations": {&key: null}}});
    world
        .services()
        .patch("web", &PatchParams::default(), &Patch::Merge(&clear))
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
