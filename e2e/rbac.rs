//! The RBAC of `config/` against the real servers: rendered with
//! `kubectl kustomize`, applied with the admin credential (everything but
//! the Deployments: there is no kubelet), and kcp-ingress run as the real
//! binary with the command lines of those Deployments and kubeconfigs that
//! carry ServiceAccount tokens (TokenRequest) bound to that RBAC, in place
//! of the in-cluster configuration:
//!
//! - the controller (`config/default` → `config/controller`) with its
//!   push-mode syncer for `cluster-1`, whose kubeconfig Secret holds a token
//!   of `config/syncer/downstream/rbac` in cluster-1;
//! - a pull-mode syncer each for `cluster-2` and `cluster-3`:
//!   `config/syncer/upstream` (as the per-cluster overlay its kustomization
//!   describes: the cluster's namespace, its ServiceAccount and bindings) in
//!   the control plane, `config/syncer/downstream` in the cluster, reading
//!   its upstream kubeconfig from that base's Secret;
//! - the glbc (`config/glbc`, DNS flags and TSIG Secret set by an overlay).
//!
//! `standin-lb` plays each cluster's load balancer (admin credential: it is
//! not part of kcp-ingress). The whole flow must work, and a revoked
//! permission must show up as a warning naming the denied verb and resource
//! (or an Event), then recover once the permission is back; and a pull-mode
//! syncer's token must be refused (403) everything outside its cluster's
//! namespace and its own Cluster.
//!
//! The group is serial: each test runs its own processes against the same
//! Clusters and the tests revoke permissions.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service, ServiceAccount};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
use kcp_ingress::apis::{Cluster, GlobalIngress};
use kcp_ingress::glbc::dns::rfc2136::{fqdn, query};
use kcp_ingress::labels::{self, conditions};
use kcp_ingress::mailbox::{cluster_namespace, copy_name};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, ResourceExt};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::env::{Process, TestEnv};
use crate::support::{eventually, kubectl};

/// The namespace of kcp-ingress in every apiserver (config/).
const SYSTEM: &str = "kcp-ingress-system";
/// Cluster in push mode: the controller syncs it from a kubeconfig Secret.
const PUSH: &str = "cluster-1";
/// Clusters in pull mode: a `kcp-ingress syncer` runs for each, with its
/// own ServiceAccount of `config/syncer/upstream`.
const PULLS: [&str; 2] = ["cluster-2", "cluster-3"];
/// The pull-mode cluster whose permissions the tests revoke.
const PULL: &str = PULLS[0];
/// The stand-in load balancers' addresses: cluster-1, cluster-2, cluster-3.
const LB: [&str; 3] = ["127.0.9.1", "127.0.9.2", "127.0.9.3"];
/// Label the tests put on every Cluster, with its name: a placement
/// annotation `kcp-ingress.e2e/name=<cluster>` selects one cluster.
const CLUSTER_NAME_LABEL: &str = "kcp-ingress.e2e/name";
/// How long a converging step may take.
const CONVERGE: Duration = Duration::from_secs(30);
/// The longest a revoked permission takes to be hit and reported: the push
/// syncers heartbeat every 10s (their default).
const REPORTED: Duration = Duration::from_secs(25);
const DNS_TIMEOUT: Duration = Duration::from_secs(3);
/// Field manager of the test's applies (the admin's).
const ADMIN_MANAGER: &str = "e2e-rbac-admin";

// ---------------------------------------------------------------- config/

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Blocking work (kubectl, files) off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(f).await?
}

/// The objects `kubectl kustomize DIR` renders.
fn render(dir: &Path) -> anyhow::Result<Vec<Value>> {
    let text = kubectl(&["kustomize", &dir.to_string_lossy()], "")
        .with_context(|| format!("rendering {}", dir.display()))?;
    let mut objects = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let value = serde_json::to_value(serde_yaml::Value::deserialize(doc)?)?;
        if !value.is_null() {
            objects.push(value);
        }
    }
    Ok(objects)
}

fn kind(o: &Value) -> &str {
    o["kind"].as_str().unwrap_or_default()
}

fn name(o: &Value) -> &str {
    o["metadata"]["name"].as_str().unwrap_or_default()
}

/// The one object of `kind` named `name`.
fn find<'a>(objects: &'a [Value], k: &str, n: &str) -> anyhow::Result<&'a Value> {
    objects
        .iter()
        .find(|o| kind(o) == k && name(o) == n)
        .with_context(|| format!("no {k} {n} rendered"))
}

/// The args of a Deployment's first container.
fn args_of(deployment: &Value) -> anyhow::Result<Vec<String>> {
    deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .context("a Deployment without args")?
        .iter()
        .map(|a| a.as_str().map(str::to_string).context("a non-string arg"))
        .collect()
}

/// Replaces the value of `flag` in `args`.
fn set_flag(args: &mut [String], flag: &str, value: &str) -> anyhow::Result<()> {
    let at = args
        .iter()
        .position(|a| a == flag)
        .with_context(|| format!("no {flag} in {args:?}"))?;
    *args.get_mut(at + 1).context("a flag without value")? = value.to_string();
    Ok(())
}

/// Applies everything but Deployments to the apiserver `server`, as the
/// admin, by server-side apply.
async fn apply(env: &TestEnv, server: &str, objects: &[Value]) -> anyhow::Result<()> {
    let mut yaml = String::new();
    for o in objects.iter().filter(|o| kind(o) != "Deployment") {
        yaml.push_str("---\n");
        yaml.push_str(&serde_yaml::to_string(o)?);
    }
    let kubeconfig = path_text(&env.kubeconfig(server))?;
    let server = server.to_string();
    blocking(move || {
        kubectl(
            &[
                "--kubeconfig",
                &kubeconfig,
                "apply",
                "--server-side",
                "--force-conflicts",
                "--field-manager",
                ADMIN_MANAGER,
                "-f",
                "-",
            ],
            &yaml,
        )
        .with_context(|| format!("applying to {server}"))?;
        Ok(())
    })
    .await
}

/// `to` as a path relative to the directory `from` (kustomize takes only
/// relative paths to bases).
fn relative(from: &Path, to: &Path) -> anyhow::Result<PathBuf> {
    let (from, to) = (std::fs::canonicalize(from)?, std::fs::canonicalize(to)?);
    let mut path = PathBuf::new();
    for _ in from
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
    {
        path.push("..");
    }
    for c in to
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
    {
        path.push(c);
    }
    Ok(path)
}

/// Writes an overlay `dir/kustomization.yaml` whose resources are the
/// `config/` bases `bases`, plus `body` (further kustomization fields).
fn overlay(dir: &Path, bases: &[&str], body: &str) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let config = repo().join("config");
    let mut text = String::from(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n",
    );
    for base in bases {
        let path = relative(dir, &config.join(base))?;
        text.push_str(&format!("  - {}\n", path.display()));
    }
    text.push_str(body);
    std::fs::write(dir.join("kustomization.yaml"), text)?;
    Ok(())
}

// ---------------------------------------------------------------- identities

/// A kubeconfig for the apiserver of `admin` (same server and CA) that
/// authenticates with `token`.
fn token_kubeconfig(admin: &Path, user: &str, token: &str) -> anyhow::Result<String> {
    let admin: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(admin)?)?;
    let cluster = admin["clusters"][0]["cluster"].clone();
    ensure!(!cluster.is_null(), "no cluster in the admin kubeconfig");
    Ok(serde_yaml::to_string(&json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "server", "cluster": cluster}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": user, "context": {"cluster": "server", "user": user}}],
        "current-context": user,
    }))?)
}

/// A token of ServiceAccount `SYSTEM/sa`, minted by the TokenRequest API.
async fn mint_token(admin: &Client, sa: &str) -> anyhow::Result<String> {
    let request = TokenRequest {
        spec: TokenRequestSpec {
            expiration_seconds: Some(3600),
            ..TokenRequestSpec::default()
        },
        ..TokenRequest::default()
    };
    let answer: TokenRequest = Api::<ServiceAccount>::namespaced(admin.clone(), SYSTEM)
        .create_subresource("token", sa, &PostParams::default(), &request)
        .await
        .with_context(|| format!("requesting a token of ServiceAccount {SYSTEM}/{sa}"))?;
    Ok(answer
        .status
        .context("a TokenRequest without status")?
        .token)
}

async fn client_from(path: &Path) -> anyhow::Result<Client> {
    let kubeconfig = Kubeconfig::read_from(path)?;
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(config)?)
}

/// A permission, as `"VERB RESOURCE[/SUBRESOURCE][.GROUP]"`, e.g.
/// `"patch ingresses/status.networking.k8s.io"`: verb, group, resource.
fn permission(perm: &str) -> (&str, &str, &str) {
    let (verb, what) = perm.split_once(' ').unwrap_or((perm, ""));
    let (resource, group) = what.split_once('.').unwrap_or((what, ""));
    (verb, group, resource)
}

/// Whether `client`'s identity has the permission `perm`, the apiserver's
/// own answer: in every namespace (`None`), or for one object
/// `(namespace, name)` (an empty name: any object of the namespace).
async fn allowed_at(
    client: &Client,
    perm: &str,
    object: Option<(&str, &str)>,
) -> anyhow::Result<bool> {
    let (verb, group, resource) = permission(perm);
    let (resource, subresource) = match resource.split_once('/') {
        Some((r, s)) => (r, Some(s.to_string())),
        None => (resource, None),
    };
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                group: Some(group.into()),
                resource: Some(resource.into()),
                subresource,
                namespace: object.map(|(ns, _)| ns.to_string()),
                name: object.map(|(_, name)| name.to_string()),
                ..ResourceAttributes::default()
            }),
            ..SelfSubjectAccessReviewSpec::default()
        },
        ..SelfSubjectAccessReview::default()
    };
    let answer = Api::<SelfSubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await?;
    Ok(answer.status.is_some_and(|s| s.allowed))
}

// ---------------------------------------------------------------- the fleet

/// A stand-in load balancer, killed on drop.
struct Standin(Child);

impl Drop for Standin {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An object an access review asks about: `(namespace, name)`.
type Object = (String, String);

/// A pull-mode syncer: its process and its identities.
struct PullSyncer {
    cluster: &'static str,
    process: Process,
    /// Its control-plane ServiceAccount (the token it runs with).
    upstream: Client,
    /// Its ServiceAccount in its physical cluster.
    downstream: Client,
}

/// Who acts in a test, and how to reach them.
struct Fleet {
    cp: Client,
    /// cluster-1, cluster-2, cluster-3 (admin).
    downs: [Client; 3],
    controller: Process,
    /// The controller's command line (its Deployment's, run locally).
    controller_args: Vec<String>,
    /// The syncers of [`PULLS`], in that order.
    pulls: Vec<PullSyncer>,
    glbc: Process,
    _lbs: Vec<Standin>,
    /// What was applied where: re-applied to restore a revoked permission.
    applied: Vec<(String, Vec<Value>)>,
    /// Clients acting as the ServiceAccounts, for access reviews.
    as_controller: Client,
    as_glbc: Client,
    dns: SocketAddr,
}

impl Fleet {
    /// Applies config/ to the control plane and both clusters, mints the
    /// tokens, registers the Clusters and starts every component; `tag`
    /// names the processes' logs.
    async fn start(env: &TestEnv, tag: &str) -> anyhow::Result<Self> {
        let cp = env.client("control-plane").await?;
        let downs = [
            env.client("cluster-1").await?,
            env.client("cluster-2").await?,
            env.client("cluster-3").await?,
        ];
        let dir = env
            .kubeconfig("control-plane")
            .parent()
            .context("the environment's directory")?
            .join("rbac");
        let overlays = dir.join("overlays");
        let files = dir.join(tag);
        std::fs::create_dir_all(&files)?;

        // The control plane: config/default (CRDs, controller, glbc) with the
        // glbc's DNS flags and TSIG Secret set as its kustomization says, and
        // the upstream side of each pull-mode syncer.
        let (dns_port, key_name, algorithm) = (
            env.dns("DNS_PORT").to_string(),
            env.dns("DNS_TSIG_KEY_NAME").to_string(),
            env.dns("DNS_TSIG_ALGORITHM").to_string(),
        );
        let control_plane = overlays.join("control-plane");
        std::fs::create_dir_all(&control_plane)?;
        std::fs::write(
            control_plane.join("tsig.secret"),
            env.dns("DNS_TSIG_SECRET"),
        )?;
        overlay(
            &control_plane,
            &["default"],
            &format!(
                r#"patches:
  - target: {{kind: Deployment, name: kcp-ingress-glbc}}
    patch: |-
      - {{op: replace, path: /spec/template/spec/containers/0/args/7, value: 127.0.0.1}}
      - {{op: replace, path: /spec/template/spec/containers/0/args/9, value: "{dns_port}"}}
      - {{op: replace, path: /spec/template/spec/containers/0/args/11, value: kcp-ingress.test}}
      - {{op: replace, path: /spec/template/spec/containers/0/args/13, value: {key_name}}}
      - {{op: replace, path: /spec/template/spec/containers/0/args/15, value: {algorithm}}}
secretGenerator:
  - name: kcp-ingress-glbc-tsig
    namespace: kcp-ingress-system
    behavior: replace
    files: [secret=tsig.secret]
    options: {{disableNameSuffixHash: true}}
"#
            ),
        )?;
        let cp_objects = {
            let dir = control_plane.clone();
            blocking(move || render(&dir)).await?
        };
        let mut applied = vec![("control-plane".to_string(), cp_objects.clone())];
        // One overlay of config/syncer/upstream per pull-mode cluster, as its
        // kustomization describes.
        for cluster in PULLS {
            let upstream = overlays.join(format!("upstream-{cluster}"));
            overlay(&upstream, &["syncer/upstream"], &upstream_overlay(cluster))?;
            let objects = blocking(move || render(&upstream)).await?;
            applied.push(("control-plane".to_string(), objects));
        }

        // cluster-1 (push mode): the downstream RBAC only.
        let push_rbac = repo().join("config/syncer/downstream/rbac");
        applied.push((
            PUSH.to_string(),
            blocking(move || render(&push_rbac)).await?,
        ));
        for (server, objects) in &applied {
            apply(env, server, objects).await?;
        }

        // The pull-mode clusters: config/syncer/downstream with the upstream
        // kubeconfig (a token of the syncer's control-plane ServiceAccount).
        let mut pull_objects = Vec::new();
        for cluster in PULLS {
            let upstream_sa = format!("kcp-ingress-syncer-{cluster}");
            let token = mint_token(&cp, &upstream_sa).await?;
            let pull = overlays.join(cluster);
            std::fs::create_dir_all(&pull)?;
            std::fs::write(
                pull.join("upstream.kubeconfig"),
                token_kubeconfig(&env.kubeconfig("control-plane"), &upstream_sa, &token)?,
            )?;
            overlay(
                &pull,
                &["syncer/downstream"],
                &format!(
                    r#"patches:
  - target: {{kind: Deployment, name: kcp-ingress-syncer}}
    patch: |-
      - op: replace
        path: /spec/template/spec/containers/0/args/2
        value: {cluster}
secretGenerator:
  - name: kcp-ingress-syncer-upstream
    namespace: kcp-ingress-system
    behavior: replace
    files: [kubeconfig=upstream.kubeconfig]
"#
                ),
            )?;
            let objects = blocking(move || render(&pull)).await?;
            apply(env, cluster, &objects).await?;
            applied.push((cluster.to_string(), objects.clone()));
            pull_objects.push(objects);
        }

        // The kubeconfigs: tokens of the ServiceAccounts config/ created.
        let write =
            |file: &str, server: &str, user: &str, token: &str| -> anyhow::Result<PathBuf> {
                let path = files.join(file);
                std::fs::write(
                    &path,
                    token_kubeconfig(&env.kubeconfig(server), user, token)?,
                )?;
                Ok(path)
            };
        let controller_kc = write(
            "controller.kubeconfig",
            "control-plane",
            "kcp-ingress-controller",
            &mint_token(&cp, "kcp-ingress-controller").await?,
        )?;
        let glbc_kc = write(
            "glbc.kubeconfig",
            "control-plane",
            "kcp-ingress-glbc",
            &mint_token(&cp, "kcp-ingress-glbc").await?,
        )?;
        let push_down = token_kubeconfig(
            &env.kubeconfig(PUSH),
            "kcp-ingress-syncer",
            &mint_token(&downs[0], "kcp-ingress-syncer").await?,
        )?;

        // The Clusters: cluster-1 with its kubeconfig Secret (push mode), the
        // others without (pull mode).
        let params = PatchParams::apply(ADMIN_MANAGER).force();
        let secret_name = push_kubeconfig_secret();
        Api::<Secret>::namespaced(cp.clone(), SYSTEM)
            .patch(
                &secret_name,
                &params,
                &Patch::Apply(json!({
                    "apiVersion": "v1", "kind": "Secret",
                    "metadata": {"name": secret_name},
                    "stringData": {"kubeconfig": push_down},
                })),
            )
            .await?;
        let clusters: Api<Cluster> = Api::all(cp.clone());
        let registrations = std::iter::once((
            PUSH,
            json!({"kubeconfigSecretRef": {"namespace": SYSTEM, "name": secret_name}}),
        ))
        .chain(PULLS.map(|c| (c, json!({}))));
        for (cluster, spec) in registrations {
            clusters
                .patch(
                    cluster,
                    &params,
                    &Patch::Apply(json!({
                        "apiVersion": format!("{}/{}", labels::GROUP, labels::VERSION),
                        "kind": "Cluster",
                        "metadata": {"name": cluster, "labels": {CLUSTER_NAME_LABEL: cluster}},
                        "spec": spec,
                    })),
                )
                .await
                .with_context(|| format!("registering Cluster {cluster}"))?;
        }

        let as_controller = client_from(&controller_kc).await?;
        let as_glbc = client_from(&glbc_kc).await?;
        let as_push_downstream = {
            let path = files.join("push-downstream.kubeconfig");
            std::fs::write(&path, &push_down)?;
            client_from(&path).await?
        };
        // Each pull-mode syncer's upstream kubeconfig, as its pod would mount
        // it from the Secret config/syncer/downstream made, and its
        // downstream identity.
        let mut pull_identities = Vec::new();
        for (i, cluster) in PULLS.iter().enumerate() {
            let down = &downs[i + 1];
            let mounted = Api::<Secret>::namespaced(down.clone(), SYSTEM)
                .get("kcp-ingress-syncer-upstream")
                .await?
                .data
                .and_then(|d| d.get("kubeconfig").cloned())
                .context("the upstream kubeconfig Secret has no key kubeconfig")?;
            let mounted_kc = files.join(format!("mounted-upstream-{cluster}.kubeconfig"));
            std::fs::write(&mounted_kc, &mounted.0)?;
            let down_kc = write(
                &format!("syncer-downstream-{cluster}.kubeconfig"),
                cluster,
                "kcp-ingress-syncer",
                &mint_token(down, "kcp-ingress-syncer").await?,
            )?;
            pull_identities.push((mounted_kc, down_kc));
        }

        // Every identity has its permissions before anything runs (the
        // apiserver's authorizer follows RBAC objects through a watch).
        let at = |ns: &str, name: &str| Some((ns.to_string(), name.to_string()));
        let lease = at(SYSTEM, labels::CONTROLLER_MANAGER);
        let glbc_lease = at(SYSTEM, labels::GLBC_MANAGER);
        let glbc_presence = at(SYSTEM, labels::GLBC_PRESENCE_LEASE);
        let mut checks: Vec<(Client, &str, Option<Object>)> = vec![
            (
                as_controller.clone(),
                "delete globalingresses.kcp-ingress.dev",
                None,
            ),
            (
                as_controller.clone(),
                "patch clusters/status.kcp-ingress.dev",
                None,
            ),
            (
                as_controller.clone(),
                "update leases.coordination.k8s.io",
                lease,
            ),
            (
                as_glbc.clone(),
                "update leases.coordination.k8s.io",
                glbc_lease,
            ),
            (
                as_glbc.clone(),
                "update leases.coordination.k8s.io",
                glbc_presence,
            ),
            (
                as_glbc.clone(),
                "patch globalingresses/status.kcp-ingress.dev",
                None,
            ),
            (as_push_downstream.clone(), "create namespaces", None),
        ];
        let mut pull_clients = Vec::new();
        for (cluster, (upstream_kc, down_kc)) in PULLS.iter().zip(&pull_identities) {
            let upstream = client_from(upstream_kc).await?;
            let downstream = client_from(down_kc).await?;
            checks.push((
                upstream.clone(),
                "patch clusters/status.kcp-ingress.dev",
                at("", cluster),
            ));
            checks.push((
                upstream.clone(),
                "patch ingresses/status.networking.k8s.io",
                at(&cluster_namespace(cluster), ""),
            ));
            checks.push((downstream.clone(), "create namespaces", None));
            pull_clients.push((upstream, downstream));
        }
        for (client, perm, object) in &checks {
            let object = object
                .as_ref()
                .map(|(ns, name)| (ns.as_str(), name.as_str()));
            eventually(&format!("{perm} allowed"), CONVERGE, || async {
                Ok(allowed_at(client, perm, object).await?.then_some(()))
            })
            .await?;
        }

        // The processes, with the Deployments' command lines; each admin
        // server on a loopback port of its own choosing (read from its log).
        let admin = "127.0.0.1:0";
        let spawn = |name: &str, args: &[String]| {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            env.spawn_kcp_ingress(&format!("{name}-{tag}"), &args)
        };
        let mut ports = Vec::new();
        let mut controller_args =
            args_of(find(&cp_objects, "Deployment", "kcp-ingress-controller")?)?;
        set_flag(&mut controller_args, "--admin-address", admin)?;
        controller_args.extend(["--kubeconfig".into(), path_text(&controller_kc)?]);
        let controller = spawn("rbac-controller", &controller_args)?;
        ports.push(("controller".to_string(), controller.admin_port().await?));
        let mut glbc_args = args_of(find(&cp_objects, "Deployment", "kcp-ingress-glbc")?)?;
        set_flag(&mut glbc_args, "--admin-address", admin)?;
        glbc_args.extend(["--kubeconfig".into(), path_text(&glbc_kc)?]);
        let glbc = spawn("rbac-glbc", &glbc_args)?;
        ports.push(("glbc".to_string(), glbc.admin_port().await?));
        let mut pulls = Vec::new();
        for ((cluster, objects), ((upstream_kc, down_kc), (upstream, downstream))) in PULLS
            .iter()
            .zip(&pull_objects)
            .zip(pull_identities.iter().zip(pull_clients))
        {
            let mut args = args_of(find(objects, "Deployment", "kcp-ingress-syncer")?)?;
            set_flag(&mut args, "--admin-address", admin)?;
            set_flag(&mut args, "--upstream-kubeconfig", &path_text(upstream_kc)?)?;
            args.extend(["--downstream-kubeconfig".into(), path_text(down_kc)?]);
            let process = spawn(&format!("rbac-syncer-{cluster}"), &args)?;
            ports.push((format!("syncer of {cluster}"), process.admin_port().await?));
            pulls.push(PullSyncer {
                cluster,
                process,
                upstream,
                downstream,
            });
        }
        let mut lbs = Vec::new();
        for (i, address) in LB.iter().enumerate() {
            let server = format!("cluster-{}", i + 1);
            let log_path = dir
                .parent()
                .context("the environment's directory")?
                .join("logs")
                .join(format!("rbac-standin-lb-{server}-{tag}.log"));
            let log = std::fs::File::create(&log_path)?;
            let child = Command::new(env!("CARGO_BIN_EXE_standin-lb"))
                .arg("--kubeconfig")
                .arg(env.kubeconfig(&server))
                .args(["--cluster", &server, "--address", address, "--port", "0"])
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .context("starting standin-lb")?;
            lbs.push(Standin(child));
        }

        let fleet = Fleet {
            controller_args: controller_args.clone(),
            as_controller,
            as_glbc,
            pulls,
            cp,
            downs,
            controller,
            glbc,
            _lbs: lbs,
            applied,
            dns: format!("127.0.0.1:{dns_port}").parse()?,
        };
        // The Deployments' probes: ready once the caches are filled, with
        // the ServiceAccounts' permissions.
        for (who, port) in ports {
            eventually(&format!("the {who} answers /readyz"), CONVERGE, || async {
                Ok((http_get(port, "/readyz").await? == 200).then_some(()))
            })
            .await?;
            ensure!(
                http_get(port, "/livez").await? == 200,
                "the {who}'s /livez does not answer 200"
            );
        }
        Ok(fleet)
    }

    /// The pull-mode syncer of `cluster`.
    fn pull(&self, cluster: &str) -> &PullSyncer {
        self.pulls
            .iter()
            .find(|p| p.cluster == cluster)
            .expect("a pull-mode cluster")
    }

    /// Re-applies config/ everywhere (restores what a test revoked).
    async fn restore(&self, env: &TestEnv) -> anyhow::Result<()> {
        for (server, objects) in &self.applied {
            apply(env, server, objects).await?;
        }
        Ok(())
    }

    /// Every process's log.
    fn logs(&self) -> Vec<(String, String)> {
        let mut logs = vec![
            ("controller".to_string(), self.controller.log()),
            ("glbc".to_string(), self.glbc.log()),
        ];
        for p in &self.pulls {
            logs.push((format!("syncer of {}", p.cluster), p.process.log()));
        }
        logs
    }
}

/// The body of the overlay of `config/syncer/upstream` for the pull-mode
/// `cluster`, as that base's kustomization describes it.
fn upstream_overlay(cluster: &str) -> String {
    let namespace = cluster_namespace(cluster);
    format!(
        r#"nameSuffix: -{cluster}
patches:
  - target: {{kind: Namespace}}
    patch: |-
      - {{op: replace, path: /metadata/name, value: {namespace}}}
      - {{op: replace, path: /metadata/labels/kcp-ingress.dev~1cluster, value: {cluster}}}
  - target: {{kind: RoleBinding, name: kcp-ingress-syncer}}
    patch: |-
      - {{op: replace, path: /metadata/namespace, value: {namespace}}}
  - target: {{kind: ClusterRole, name: kcp-ingress-syncer-cluster}}
    patch: |-
      - {{op: replace, path: /rules/0/resourceNames, value: [{cluster}]}}
      - {{op: replace, path: /rules/1/resourceNames, value: [{cluster}]}}
"#
    )
}

/// The Secret in [`SYSTEM`] holding the push-mode cluster's kubeconfig.
fn push_kubeconfig_secret() -> String {
    format!("{PUSH}-kubeconfig")
}

fn path_text(path: &Path) -> anyhow::Result<String> {
    Ok(path.to_str().context("a non-UTF-8 path")?.to_string())
}

/// The HTTP status of `GET path` on the loopback `port`.
async fn http_get(port: u16, path: &str) -> anyhow::Result<u16> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .await?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await?;
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("not an HTTP answer: {answer:?}"))
}

// ---------------------------------------------------------------- the world

async fn create_namespace(client: &Client, ns: &str) -> anyhow::Result<()> {
    Api::<Namespace>::all(client.clone())
        .patch(
            ns,
            &PatchParams::apply(ADMIN_MANAGER),
            &Patch::Apply(
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
            ),
        )
        .await
        .with_context(|| format!("creating namespace {ns}"))?;
    Ok(())
}

/// A root Ingress `name` for `host` with its backend Service `web` and TLS
/// Secret `<name>-tls`, as a user creates them.
async fn create_root(cp: &Client, ns: &str, name: &str, host: &str) -> anyhow::Result<()> {
    create_root_on(cp, ns, name, host, None).await
}

/// [`create_root`] with a placement annotation (a selector over Clusters).
async fn create_root_on(
    cp: &Client,
    ns: &str,
    name: &str,
    host: &str,
    placement: Option<&str>,
) -> anyhow::Result<()> {
    let params = PostParams::default();
    let services: Api<Service> = Api::namespaced(cp.clone(), ns);
    if services.get_opt("web").await?.is_none() {
        services
            .create(
                &params,
                &serde_json::from_value(json!({
                    "metadata": {"name": "web"},
                    "spec": {"ports": [{"port": 80, "targetPort": 8080}]},
                }))?,
            )
            .await?;
    }
    Api::<Secret>::namespaced(cp.clone(), ns)
        .create(
            &params,
            &serde_json::from_value(json!({
                "metadata": {"name": format!("{name}-tls")},
                "stringData": {"tls.crt": "not a certificate", "tls.key": "not a key"},
            }))?,
        )
        .await?;
    Api::<Ingress>::namespaced(cp.clone(), ns)
        .create(
            &params,
            &serde_json::from_value(json!({
                "metadata": {
                    "name": name,
                    "annotations": placement
                        .map(|p| json!({labels::PLACEMENT_ANNOTATION: p}))
                        .unwrap_or_else(|| json!({})),
                },
                "spec": {
                    "tls": [{"hosts": [host], "secretName": format!("{name}-tls")}],
                    "rules": [{"host": host, "http": {"paths": [{
                        "path": "/", "pathType": "Prefix",
                        "backend": {"service": {"name": "web", "port": {"number": 80}}},
                    }]}}],
                },
            }))?,
        )
        .await
        .with_context(|| format!("creating root {ns}/{name}"))?;
    Ok(())
}

/// The addresses of an Ingress's status.
fn addresses(ingress: &Ingress) -> BTreeSet<String> {
    ingress
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|e| e.ip.clone())
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Waits until the root `ns/name` shows exactly `expected` addresses.
async fn wait_addresses(
    cp: &Client,
    ns: &str,
    name: &str,
    expected: &[&str],
) -> anyhow::Result<()> {
    let expected = set(expected);
    let api: Api<Ingress> = Api::namespaced(cp.clone(), ns);
    eventually(
        &format!("root {ns}/{name} shows {expected:?}"),
        CONVERGE,
        || async {
            let got = api.get_opt(name).await?.map(|i| addresses(&i));
            if got.as_ref() == Some(&expected) {
                Ok(Some(()))
            } else {
                bail!("addresses {got:?}")
            }
        },
    )
    .await
}

/// The A records DNS answers for `host`, or `None` for NXDOMAIN.
async fn answers(server: SocketAddr, host: &str) -> anyhow::Result<Option<BTreeSet<String>>> {
    let (rcode, records) = query(server, &fqdn(host)?, RecordType::A, DNS_TIMEOUT).await?;
    if rcode == ResponseCode::NXDomain {
        return Ok(None);
    }
    Ok(Some(
        records
            .iter()
            .filter_map(|r| match &r.data {
                RData::A(a) => Some(a.0.to_string()),
                _ => None,
            })
            .collect(),
    ))
}

/// The status of condition `type_` of the GlobalIngress `ns/name`.
async fn global_condition(
    cp: &Client,
    ns: &str,
    name: &str,
    type_: &str,
) -> anyhow::Result<Option<String>> {
    Ok(Api::<GlobalIngress>::namespaced(cp.clone(), ns)
        .get_opt(name)
        .await?
        .and_then(|g| g.status)
        .and_then(|s| s.conditions.into_iter().find(|c| c.type_ == type_))
        .map(|c| c.status))
}

/// Waits until `process` logs, after byte `from` of its log, a line
/// containing every one of `needles`, and returns that line; it must be a
/// warning or an error.
async fn wait_logged(process: &Process, from: usize, needles: &[&str]) -> anyhow::Result<String> {
    let line = eventually(
        &format!("a log line with {needles:?}"),
        REPORTED,
        || async {
            let log = process.log();
            Ok(log
                .get(from..)
                .unwrap_or_default()
                .lines()
                .find(|l| needles.iter().all(|n| l.contains(n)))
                .map(str::to_string))
        },
    )
    .await?;
    ensure!(
        line.contains(" WARN ") || line.contains(" ERROR "),
        "the denial is logged below warning level: {line}"
    );
    Ok(line)
}

/// What the apiserver says when it denies the permission `perm`: the log
/// must carry it.
fn denial(perm: &str) -> String {
    let (verb, _, resource) = permission(perm);
    format!("cannot {verb} resource \"{resource}\"")
}

/// Removes the permission `perm` from the ClusterRole `role` (other
/// resources of a shared rule keep it), then waits until `subject` is
/// denied it.
async fn revoke(admin: &Client, role: &str, perm: &str, subject: &Client) -> anyhow::Result<()> {
    revoke_in(admin, &[role], perm, subject, None).await
}

/// [`revoke`] from several ClusterRoles that all grant `perm` to
/// `subject`, in `namespace` (a role bound there by a RoleBinding) or
/// everywhere.
async fn revoke_in(
    admin: &Client,
    roles: &[&str],
    perm: &str,
    subject: &Client,
    namespace: Option<&str>,
) -> anyhow::Result<()> {
    for role in roles {
        strip(admin, role, perm).await?;
    }
    let at = namespace.map(|ns| (ns, ""));
    eventually(
        &format!("{perm} denied after editing {}", roles.join(", ")),
        CONVERGE,
        || async { Ok((!allowed_at(subject, perm, at).await?).then_some(())) },
    )
    .await
}

/// Removes the permission `perm` from the ClusterRole `role`.
async fn strip(admin: &Client, role: &str, perm: &str) -> anyhow::Result<()> {
    let (verb, group, resource) = permission(perm);
    let api: Api<ClusterRole> = Api::all(admin.clone());
    let mut cluster_role = api.get(role).await?;
    let mut rules: Vec<PolicyRule> = Vec::new();
    let mut revoked = false;
    for rule in cluster_role.rules.take().unwrap_or_default() {
        let matches = rule.api_groups.iter().flatten().any(|g| g == group)
            && rule.resources.iter().flatten().any(|r| r == resource)
            && rule.verbs.iter().any(|v| v == verb);
        if !matches {
            rules.push(rule);
            continue;
        }
        revoked = true;
        let mut rest = rule.clone();
        rest.resources = Some(
            rule.resources
                .iter()
                .flatten()
                .filter(|r| *r != resource)
                .cloned()
                .collect(),
        );
        if rest.resources.as_ref().is_some_and(|r| !r.is_empty()) {
            rules.push(rest);
        }
        let mut narrowed = rule;
        narrowed.resources = Some(vec![resource.to_string()]);
        narrowed.verbs.retain(|v| v != verb);
        if !narrowed.verbs.is_empty() {
            rules.push(narrowed);
        }
    }
    ensure!(revoked, "ClusterRole {role} does not grant {perm}");
    cluster_role.rules = Some(rules);
    api.replace(role, &PostParams::default(), &cluster_role)
        .await?;
    Ok(())
}

/// Re-applies config/ and waits until `subject` has the permission `perm` again.
async fn restore(env: &TestEnv, fleet: &Fleet, perm: &str, subject: &Client) -> anyhow::Result<()> {
    restore_in(env, fleet, perm, subject, None).await
}

/// [`restore`] of a permission granted in `namespace` only.
async fn restore_in(
    env: &TestEnv,
    fleet: &Fleet,
    perm: &str,
    subject: &Client,
    namespace: Option<&str>,
) -> anyhow::Result<()> {
    fleet.restore(env).await?;
    let at = namespace.map(|ns| (ns, ""));
    eventually(&format!("{perm} allowed again"), CONVERGE, || async {
        Ok(allowed_at(subject, perm, at).await?.then_some(()))
    })
    .await
}

// ---------------------------------------------------------------- tests

/// Every base renders; no rule has a wildcard or a non-resource URL; every
/// binding binds a rendered role to a rendered ServiceAccount; the
/// Deployments run as non-root with requests, the controller with probes on
/// its admin port.
pub async fn config_renders_least_privilege_rbac(_env: &TestEnv) -> anyhow::Result<()> {
    let config = repo().join("config");
    let bases = [
        "default",
        "crd",
        "controller",
        "glbc",
        "syncer/upstream",
        "syncer/downstream",
        "syncer/downstream/rbac",
    ];
    for base in bases {
        let objects = {
            let dir = config.join(base);
            blocking(move || render(&dir)).await?
        };
        ensure!(!objects.is_empty(), "{base} renders nothing");
        let ok_verbs = [
            "get", "list", "watch", "create", "patch", "update", "delete",
        ];
        for role in objects
            .iter()
            .filter(|o| matches!(kind(o), "ClusterRole" | "Role"))
        {
            let rules = role["rules"].as_array().context("a role without rules")?;
            for rule in rules {
                ensure!(
                    rule.get("nonResourceURLs").is_none(),
                    "{base}: {} {} grants non-resource URLs",
                    kind(role),
                    name(role)
                );
                for field in ["apiGroups", "resources", "verbs", "resourceNames"] {
                    for item in rule[field].as_array().into_iter().flatten() {
                        ensure!(
                            item.as_str().is_some_and(|s| !s.contains('*')),
                            "{base}: {} {} has a wildcard in {field}: {rule}",
                            kind(role),
                            name(role)
                        );
                    }
                }
                for verb in rule["verbs"].as_array().into_iter().flatten() {
                    ensure!(
                        verb.as_str().is_some_and(|v| ok_verbs.contains(&v)),
                        "{base}: {} {} grants {verb}",
                        kind(role),
                        name(role)
                    );
                }
            }
        }
        for binding in objects
            .iter()
            .filter(|o| matches!(kind(o), "ClusterRoleBinding" | "RoleBinding"))
        {
            let role_kind = binding["roleRef"]["kind"].as_str().unwrap_or_default();
            let role_name = binding["roleRef"]["name"].as_str().unwrap_or_default();
            find(&objects, role_kind, role_name)
                .with_context(|| format!("{base}: binding {}", name(binding)))?;
            for subject in binding["subjects"].as_array().into_iter().flatten() {
                let sa = subject["name"].as_str().unwrap_or_default();
                find(&objects, "ServiceAccount", sa)
                    .with_context(|| format!("{base}: binding {}", name(binding)))?;
            }
        }
        for deployment in objects.iter().filter(|o| kind(o) == "Deployment") {
            let pod = &deployment["spec"]["template"]["spec"];
            let what = format!("{base}: Deployment {}", name(deployment));
            let sa = pod["serviceAccountName"].as_str().unwrap_or_default();
            find(&objects, "ServiceAccount", sa).with_context(|| what.clone())?;
            ensure!(
                pod["securityContext"]["runAsNonRoot"] == json!(true),
                "{what}: not runAsNonRoot"
            );
            let container = &pod["containers"][0];
            ensure!(
                container["securityContext"]["allowPrivilegeEscalation"] == json!(false)
                    && container["securityContext"]["readOnlyRootFilesystem"] == json!(true)
                    && container["securityContext"]["capabilities"]["drop"] == json!(["ALL"]),
                "{what}: container securityContext too open"
            );
            ensure!(
                container["resources"]["requests"]["cpu"].is_string()
                    && container["resources"]["requests"]["memory"].is_string(),
                "{what}: no resource requests"
            );
            // Every component serves /livez and /readyz on --admin-address.
            let args = args_of(deployment)?;
            let address = args
                .iter()
                .skip_while(|a| *a != "--admin-address")
                .nth(1)
                .with_context(|| format!("{what}: no --admin-address"))?;
            let port = container["ports"][0]["containerPort"].to_string();
            ensure!(
                address.ends_with(&format!(":{port}")),
                "{what}: the admin port {port} is not where --admin-address {address} listens"
            );
            for (probe, path) in [("livenessProbe", "/livez"), ("readinessProbe", "/readyz")] {
                ensure!(
                    container[probe]["httpGet"]["path"] == json!(path)
                        && container[probe]["httpGet"]["port"] == container["ports"][0]["name"],
                    "{what}: {probe} is not GET {path} on the admin port"
                );
            }
            let wanted: &[&str] = match name(deployment) {
                "kcp-ingress-controller" => &["controller", "--push-syncers", "--leader-elect"],
                "kcp-ingress-glbc" => &["glbc", "--leader-elect", "--tsig-secret-ref"],
                _ => &["syncer", "--cluster", "--upstream-kubeconfig"],
            };
            for flag in wanted {
                ensure!(args.iter().any(|a| a == flag), "{what}: no {flag}");
            }
        }
    }
    // The CRDs in config/default are the generated ones.
    let default = {
        let dir = config.join("default");
        blocking(move || render(&dir)).await?
    };
    for crd in [
        "clusters.kcp-ingress.dev",
        "globalingresses.kcp-ingress.dev",
        "placedobjects.kcp-ingress.dev",
    ] {
        find(&default, "CustomResourceDefinition", crd)?;
    }
    Ok(())
}

/// With nothing but the RBAC of config/ and ServiceAccount tokens: a root
/// with a Service and a TLS Secret lands in both clusters (push and pull
/// mode), the load balancers' addresses reach the root, DNS answers them;
/// deleting the root removes everything again. No request was denied.
pub async fn the_whole_flow_works_with_service_account_tokens(env: &TestEnv) -> anyhow::Result<()> {
    let fleet = Fleet::start(env, "flow").await?;
    let cp = &fleet.cp;
    let (ns, root, host) = ("rbac-flow", "web", "web.flow.kcp-ingress.test");
    let clusters: Api<Cluster> = Api::all(cp.clone());

    // Leader election through the Leases of config/controller and config/glbc;
    // the glbc's presence Lease.
    for lease in [
        labels::CONTROLLER_MANAGER,
        labels::GLBC_MANAGER,
        labels::GLBC_PRESENCE_LEASE,
    ] {
        eventually(&format!("Lease {lease} held"), CONVERGE, || async {
            let held = Api::<Lease>::namespaced(cp.clone(), SYSTEM)
                .get_opt(lease)
                .await?
                .and_then(|l| l.spec)
                .and_then(|s| s.holder_identity)
                .is_some_and(|h| !h.is_empty());
            Ok(held.then_some(()))
        })
        .await?;
    }
    // Every syncer heartbeats its Cluster.
    for cluster in std::iter::once(PUSH).chain(PULLS) {
        eventually(&format!("Cluster {cluster} Ready"), CONVERGE, || async {
            let c = clusters.get(cluster).await?;
            Ok((c.condition_status(conditions::READY) == Some("True")).then_some(()))
        })
        .await?;
    }

    create_namespace(cp, ns).await?;
    create_root(cp, ns, root, host).await?;
    for (i, cluster) in std::iter::once(PUSH).chain(PULLS).enumerate() {
        let down = &fleet.downs[i];
        let leaf = format!("{root}--{cluster}");
        eventually(
            &format!("{cluster} has the leaf, the Service and the Secret"),
            CONVERGE,
            || async {
                let ingress = Api::<Ingress>::namespaced(down.clone(), ns)
                    .get_opt(&leaf)
                    .await?;
                let service = Api::<Service>::namespaced(down.clone(), ns)
                    .get_opt("web")
                    .await?;
                let secret = Api::<Secret>::namespaced(down.clone(), ns)
                    .get_opt(&format!("{root}-tls"))
                    .await?;
                let ours = |labels: &std::collections::BTreeMap<String, String>| {
                    labels.get(labels::MANAGED_BY_LABEL).map(String::as_str)
                        == Some(labels::MANAGED_BY_VALUE)
                };
                Ok(match (ingress, service, secret) {
                    (Some(i), Some(s), Some(t))
                        if ours(i.labels()) && ours(s.labels()) && ours(t.labels()) =>
                    {
                        Some(())
                    }
                    _ => None,
                })
            },
        )
        .await?;
    }
    wait_addresses(cp, ns, root, &LB).await?;
    eventually("the glbc publishes the root", CONVERGE, || async {
        let published = global_condition(cp, ns, root, conditions::DNS_PUBLISHED).await?;
        let got = answers(fleet.dns, host).await?;
        if published.as_deref() == Some("True") && got == Some(set(&LB)) {
            Ok(Some(()))
        } else {
            bail!("DNSPublished {published:?}, DNS answers {got:?}")
        }
    })
    .await?;
    // The glbc was live when the root came: the controller created the
    // GlobalIngress with the glbc's DNS finalizer (its apply owns it), and
    // the glbc did not add it (no other write touched the finalizers).
    let global = Api::<GlobalIngress>::namespaced(cp.clone(), ns)
        .get(root)
        .await?;
    let finalizer_writers: Vec<(String, String)> = global
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|m| {
            m.fields_v1
                .as_ref()
                .is_some_and(|f| f.0.to_string().contains(labels::DNS_FINALIZER))
        })
        .map(|m| {
            (
                m.manager.clone().unwrap_or_default(),
                m.operation.clone().unwrap_or_default(),
            )
        })
        .collect();
    ensure!(
        finalizer_writers == [(labels::CONTROLLER_MANAGER.to_string(), "Apply".to_string())],
        "the DNS finalizer was written by {finalizer_writers:?}, not created with the GlobalIngress"
    );
    // Events from the controller and the glbc (events.k8s.io create). A
    // root's first verdicts on the happy path have none, so two roots with
    // something to report: a placement that does not parse (the
    // controller's Warning) and a host outside the glbc's zones (the
    // glbc's Warning).
    create_root_on(
        cp,
        ns,
        "misplaced",
        "misplaced.flow.kcp-ingress.test",
        Some("region in ((("),
    )
    .await?;
    create_root(cp, ns, "elsewhere", "elsewhere.outside-every-zone.test").await?;
    eventually(
        "Events of the controller and the glbc",
        CONVERGE,
        || async {
            let events = Api::<Event>::namespaced(cp.clone(), ns)
                .list(&ListParams::default())
                .await?;
            let from = |who: &str| {
                events
                    .items
                    .iter()
                    .any(|e| e.reporting_controller.as_deref() == Some(who))
            };
            Ok((from(labels::CONTROLLER_MANAGER) && from(labels::GLBC_MANAGER)).then_some(()))
        },
    )
    .await?;

    // Deleting the roots: leaves, copies, GlobalIngress and records go.
    for name in ["misplaced", "elsewhere", root] {
        Api::<Ingress>::namespaced(cp.clone(), ns)
            .delete(name, &DeleteParams::default())
            .await?;
    }
    eventually("everything of the root is gone", CONVERGE, || async {
        let ingresses = Api::<Ingress>::namespaced(cp.clone(), ns)
            .list(&ListParams::default())
            .await?;
        // Nothing of the namespace is left placed on any cluster.
        let mut placed = 0;
        for cluster in std::iter::once(PUSH).chain(PULLS) {
            let in_cluster_ns = |kind: &str| format!("{kind} in {}", cluster_namespace(cluster));
            placed += Api::<Ingress>::namespaced(cp.clone(), &cluster_namespace(cluster))
                .list(&ListParams::default().labels(&format!("{}={ns}", labels::ROOT_NAMESPACE_LABEL)))
                .await
                .with_context(|| in_cluster_ns("leaves"))?
                .items
                .len();
            placed += Api::<Secret>::namespaced(cp.clone(), &cluster_namespace(cluster))
                .list(&ListParams::default())
                .await
                .with_context(|| in_cluster_ns("Secrets"))?
                .items
                .iter()
                .filter(|s| s.name_any().starts_with(&format!("{ns}.")))
                .count();
        }
        let global = Api::<GlobalIngress>::namespaced(cp.clone(), ns)
            .get_opt(root)
            .await?;
        let mut copies = 0;
        for down in &fleet.downs {
            copies += Api::<Ingress>::namespaced(down.clone(), ns)
                .list(&ListParams::default())
                .await?
                .items
                .len();
            copies += Api::<Service>::namespaced(down.clone(), ns)
                .list(&ListParams::default())
                .await?
                .items
                .len();
        }
        let dns = answers(fleet.dns, host).await?;
        if ingresses.items.is_empty()
            && placed == 0
            && global.is_none()
            && copies == 0
            && dns.is_none()
        {
            Ok(Some(()))
        } else {
            bail!(
                "{} Ingress(es) upstream, {placed} leaves or Secrets placed, GlobalIngress {}, {copies} copies downstream, DNS {dns:?}",
                ingresses.items.len(),
                if global.is_some() { "present" } else { "gone" }
            )
        }
    })
    .await?;

    for (who, log) in fleet.logs() {
        if let Some(line) = log
            .lines()
            .find(|l| l.to_ascii_lowercase().contains("forbidden"))
        {
            bail!("the {who} was denied a request: {line}");
        }
    }
    Ok(())
}

/// The syncers' identities lose one permission at a time; each denial is a
/// warning (or an Event) naming the verb and the resource, and the work
/// resumes once the permission is back:
/// - pull-mode syncer, control plane: `patch ingresses/status` (leaf status);
/// - pull-mode syncer, cluster-2: `create configmaps` (a copy) — also an
///   Event and an annotation on the upstream object;
/// - push-mode syncer (the controller's identity): `patch clusters/status`
///   (the heartbeat).
pub async fn denied_syncer_requests_are_reported(env: &TestEnv) -> anyhow::Result<()> {
    let fleet = Fleet::start(env, "deny-syncers").await?;
    let cp = &fleet.cp;
    let ns = "rbac-deny-syncers";
    create_namespace(cp, ns).await?;
    let pull = fleet.pull(PULL);
    // The syncer's rules on its namespace: a ClusterRole bound there only.
    let pull_role = format!("kcp-ingress-syncer-{PULL}");
    let pull_ns = cluster_namespace(PULL);

    // 1. The leaf status of cluster-2 cannot be written.
    revoke_in(
        cp,
        &[&pull_role],
        "patch ingresses/status.networking.k8s.io",
        &pull.upstream,
        Some(&pull_ns),
    )
    .await?;
    let from = pull.process.log().len();
    create_root(cp, ns, "late", "late.syncers.kcp-ingress.test").await?;
    wait_logged(
        &pull.process,
        from,
        &[&denial("patch ingresses/status"), "late--cluster-2"],
    )
    .await?;
    // Meanwhile the root has the other clusters' addresses only.
    wait_addresses(cp, ns, "late", &[LB[0], LB[2]]).await?;
    restore_in(
        env,
        &fleet,
        "patch ingresses/status.networking.k8s.io",
        &pull.upstream,
        Some(&pull_ns),
    )
    .await?;
    wait_addresses(cp, ns, "late", &LB).await?;

    // 2. cluster-2 refuses a copy: a warning, and an Event and an
    // annotation on the object in its namespace (the user's ConfigMap is
    // never written by kcp-ingress).
    revoke(
        &fleet.downs[1],
        "kcp-ingress-syncer",
        "create configmaps",
        &pull.downstream,
    )
    .await?;
    let from = pull.process.log().len();
    let configmaps: Api<ConfigMap> = Api::namespaced(cp.clone(), ns);
    configmaps
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "settings", "labels": {labels::state_label(PULL): labels::STATE_SYNC}},
                "data": {"mode": "one"},
            }))?,
        )
        .await?;
    wait_logged(
        &pull.process,
        from,
        &[&denial("create configmaps"), "settings"],
    )
    .await?;
    let placed: Api<ConfigMap> = Api::namespaced(cp.clone(), &pull_ns);
    let placed_name = copy_name(ns, "settings")?;
    let annotation = labels::sync_error_annotation(PULL);
    let reported = eventually("the sync error annotation", CONVERGE, || async {
        Ok(placed
            .get_opt(&placed_name)
            .await?
            .and_then(|c| c.annotations().get(&annotation).cloned()))
    })
    .await?;
    ensure!(
        reported.contains("cannot create resource \"configmaps\""),
        "annotation {annotation}: {reported}"
    );
    ensure!(
        !configmaps
            .get("settings")
            .await?
            .annotations()
            .contains_key(&annotation),
        "the user's ConfigMap was annotated"
    );
    let note = eventually(
        "a SyncFailed Event on the placed ConfigMap",
        CONVERGE,
        || async {
            let events = Api::<Event>::namespaced(cp.clone(), &pull_ns)
                .list(&ListParams::default())
                .await?;
            Ok(events
                .items
                .into_iter()
                .find(|e| {
                    e.reason.as_deref() == Some("SyncFailed")
                        && e.regarding.as_ref().and_then(|r| r.name.as_deref())
                            == Some(placed_name.as_str())
                })
                .and_then(|e| e.note))
        },
    )
    .await?;
    ensure!(
        note.contains("cannot create resource \"configmaps\""),
        "Event note: {note}"
    );
    restore(env, &fleet, "create configmaps", &pull.downstream).await?;
    // A refused object is re-checked after minutes, or at its next change.
    configmaps
        .patch(
            "settings",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"mode": "two"}})),
        )
        .await?;
    let copies: Api<ConfigMap> = Api::namespaced(fleet.downs[1].clone(), ns);
    eventually(
        "the copy exists and the report is gone",
        CONVERGE,
        || async {
            let copy = copies.get_opt("settings").await?;
            let up = placed.get_opt(&placed_name).await?;
            Ok((copy.is_some_and(|c| {
                c.data
                    .as_ref()
                    .and_then(|d| d.get("mode"))
                    .is_some_and(|m| m == "two")
            }) && up.is_some_and(|u| !u.annotations().contains_key(&annotation)))
            .then_some(()))
        },
    )
    .await?;

    // 3. The push-mode syncer of cluster-1 cannot heartbeat.
    revoke(
        cp,
        "kcp-ingress-push-syncers",
        "patch clusters/status.kcp-ingress.dev",
        &fleet.as_controller,
    )
    .await?;
    let from = fleet.controller.log().len();
    wait_logged(
        &fleet.controller,
        from,
        &[&denial("patch clusters/status"), "heartbeat"],
    )
    .await?;
    let clusters: Api<Cluster> = Api::all(cp.clone());
    let before = clusters
        .get(PUSH)
        .await?
        .status
        .and_then(|s| s.last_heartbeat_time);
    restore(
        env,
        &fleet,
        "patch clusters/status.kcp-ingress.dev",
        &fleet.as_controller,
    )
    .await?;
    eventually("cluster-1 heartbeats again", CONVERGE, || async {
        let now = clusters
            .get(PUSH)
            .await?
            .status
            .and_then(|s| s.last_heartbeat_time);
        Ok((now.is_some() && now != before).then_some(()))
    })
    .await?;

    Api::<Ingress>::namespaced(cp.clone(), ns)
        .delete("late", &DeleteParams::default())
        .await?;
    Ok(())
}

/// The controller's and the glbc's identities lose one permission at a
/// time; each denial is a warning naming the verb and the resource, and the
/// work resumes once the permission is back:
/// - controller: `delete ingresses` (a deleted root's leaves);
/// - glbc: `patch globalingresses/status`;
/// - glbc: `create events` (events.k8s.io).
pub async fn denied_controller_and_glbc_requests_are_reported(env: &TestEnv) -> anyhow::Result<()> {
    let fleet = Fleet::start(env, "deny-control").await?;
    let cp = &fleet.cp;
    let ns = "rbac-deny-control";
    create_namespace(cp, ns).await?;
    let roots: Api<Ingress> = Api::namespaced(cp.clone(), ns);

    // 1. The controller cannot delete the leaves of a deleted root: the
    // root stays (its finalizer) and the controller says why.
    create_root(cp, ns, "gone", "gone.control.kcp-ingress.test").await?;
    wait_addresses(cp, ns, "gone", &LB).await?;
    revoke(
        cp,
        "kcp-ingress-controller",
        "delete ingresses.networking.k8s.io",
        &fleet.as_controller,
    )
    .await?;
    let from = fleet.controller.log().len();
    roots.delete("gone", &DeleteParams::default()).await?;
    wait_logged(
        &fleet.controller,
        from,
        &[&denial("delete ingresses"), "gone--cluster-"],
    )
    .await?;
    ensure!(
        roots.get_opt("gone").await?.is_some(),
        "the root went although its leaves could not be deleted"
    );
    restore(
        env,
        &fleet,
        "delete ingresses.networking.k8s.io",
        &fleet.as_controller,
    )
    .await?;
    eventually("the root and its leaves are gone", CONVERGE, || async {
        Ok(roots
            .list(&ListParams::default())
            .await?
            .items
            .is_empty()
            .then_some(()))
    })
    .await?;

    // 2. The glbc publishes, but cannot write the GlobalIngress status.
    revoke(
        cp,
        "kcp-ingress-glbc",
        "patch globalingresses/status.kcp-ingress.dev",
        &fleet.as_glbc,
    )
    .await?;
    let from = fleet.glbc.log().len();
    let host = "status.control.kcp-ingress.test";
    create_root(cp, ns, "status", host).await?;
    wait_logged(
        &fleet.glbc,
        from,
        &[&denial("patch globalingresses/status"), "status"],
    )
    .await?;
    restore(
        env,
        &fleet,
        "patch globalingresses/status.kcp-ingress.dev",
        &fleet.as_glbc,
    )
    .await?;
    eventually(
        "DNSPublished once the status can be written",
        CONVERGE,
        || async {
            let published = global_condition(cp, ns, "status", conditions::DNS_PUBLISHED).await?;
            let got = answers(fleet.dns, host).await?;
            if published.as_deref() == Some("True") && got == Some(set(&LB)) {
                Ok(Some(()))
            } else {
                let global = Api::<GlobalIngress>::namespaced(cp.clone(), ns)
                    .get_opt("status")
                    .await?
                    .and_then(|g| g.status)
                    .map(|s| s.conditions);
                bail!("DNSPublished {published:?}, DNS answers {got:?}; conditions {global:?}")
            }
        },
    )
    .await?;

    // 3. The glbc cannot record Events.
    revoke(
        cp,
        "kcp-ingress-glbc",
        "create events.events.k8s.io",
        &fleet.as_glbc,
    )
    .await?;
    // Hosts outside the glbc's zones: a Warning is due at once (a first
    // verdict on the happy path has no Event).
    let from = fleet.glbc.log().len();
    create_root(cp, ns, "quiet", "quiet.outside-every-zone.test").await?;
    wait_logged(
        &fleet.glbc,
        from,
        &[&denial("create events"), "events.k8s.io"],
    )
    .await?;
    restore(env, &fleet, "create events.events.k8s.io", &fleet.as_glbc).await?;
    create_root(cp, ns, "loud", "loud.outside-every-zone.test").await?;
    eventually("the glbc records Events again", CONVERGE, || async {
        let events = Api::<Event>::namespaced(cp.clone(), ns)
            .list(&ListParams::default())
            .await?;
        Ok(events
            .items
            .iter()
            .any(|e| {
                e.reporting_controller.as_deref() == Some(labels::GLBC_MANAGER)
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("loud")
            })
            .then_some(()))
    })
    .await?;

    for root in ["status", "quiet", "loud"] {
        roots.delete(root, &DeleteParams::default()).await?;
    }
    Ok(())
}

/// `result` is a refusal by the authorizer: 403, nothing else.
fn refused<T>(what: &str, result: Result<T, kube::Error>) -> anyhow::Result<()> {
    match result {
        Err(kube::Error::Api(e)) if e.code == 403 => Ok(()),
        Err(e) => bail!("{what}: failed, but not with 403 Forbidden: {e}"),
        Ok(_) => bail!("{what}: allowed"),
    }
}

/// A pull-mode syncer's credentials reach its own cluster's namespace and
/// Cluster, nothing else. With cluster-2's syncer token, each of these is
/// refused with 403 — and each has a control showing that the object is
/// there and the request itself is sound (the admin, or cluster-3's
/// syncer, or the same request on cluster-2's own objects, is allowed):
/// reading a Secret placed only on cluster-3 (its copy, and the user's
/// original); listing Secrets across the control plane and in
/// kcp-ingress-system; reading the push-mode kubeconfig Secret and the
/// glbc's TSIG Secret; patching the status of a leaf placed on cluster-3
/// and of a root; reading or heartbeating cluster-3's Cluster. Status
/// patches are dry runs: authorization is decided before anything is
/// stored.
pub async fn a_pull_syncer_reaches_only_its_own_cluster(env: &TestEnv) -> anyhow::Result<()> {
    let fleet = Fleet::start(env, "fence").await?;
    let cp = &fleet.cp;
    let ns = "rbac-fence";
    let (mine, other) = (PULLS[0], PULLS[1]);
    let (my_ns, other_ns) = (cluster_namespace(mine), cluster_namespace(other));
    create_namespace(cp, ns).await?;
    create_root(cp, ns, "shop", "shop.fence.kcp-ingress.test").await?;
    create_root_on(
        cp,
        ns,
        "only3",
        "only3.fence.kcp-ingress.test",
        Some(&format!("{CLUSTER_NAME_LABEL}={other}")),
    )
    .await?;
    // The flow works in both pull-mode clusters first.
    wait_addresses(cp, ns, "shop", &LB).await?;
    wait_addresses(cp, ns, "only3", &[LB[2]]).await?;

    let me = &fleet.pull(mine).upstream;
    let them = &fleet.pull(other).upstream;
    let secrets_in = |client: &Client, namespace: &str| -> Api<Secret> {
        Api::namespaced(client.clone(), namespace)
    };
    let only3_tls = copy_name(ns, "only3-tls")?;
    let shop_tls = copy_name(ns, "shop-tls")?;

    // 1. A Secret placed only on cluster-3: its copy there, and the user's.
    ensure!(
        secrets_in(cp, &other_ns)
            .get_opt(&only3_tls)
            .await?
            .is_some(),
        "no copy {other_ns}/{only3_tls}"
    );
    secrets_in(them, &other_ns)
        .get(&only3_tls)
        .await
        .context("cluster-3's syncer reading its own copy")?;
    refused(
        "cluster-2's syncer reading cluster-3's Secret copy",
        secrets_in(me, &other_ns).get(&only3_tls).await,
    )?;
    refused(
        "cluster-2's syncer reading the user's Secret",
        secrets_in(me, ns).get("only3-tls").await,
    )?;

    // 2. Listing Secrets: everywhere and in kcp-ingress-system refused; in
    // its own namespace allowed, and only what is placed on cluster-2.
    refused(
        "cluster-2's syncer listing Secrets of every namespace",
        Api::<Secret>::all(me.clone())
            .list(&ListParams::default())
            .await,
    )?;
    refused(
        "cluster-2's syncer listing Secrets in kcp-ingress-system",
        secrets_in(me, SYSTEM).list(&ListParams::default()).await,
    )?;
    let own: BTreeSet<String> = secrets_in(me, &my_ns)
        .list(&ListParams::default())
        .await
        .context("cluster-2's syncer listing its own namespace")?
        .items
        .iter()
        .map(|s| s.name_any())
        .collect();
    ensure!(
        own.contains(&shop_tls) && !own.contains(&only3_tls),
        "cluster-2's namespace holds {own:?}"
    );

    // 3. The push-mode kubeconfig and the glbc's TSIG key.
    for secret in [
        push_kubeconfig_secret(),
        "kcp-ingress-glbc-tsig".to_string(),
    ] {
        secrets_in(cp, SYSTEM)
            .get(&secret)
            .await
            .with_context(|| format!("the admin reading {SYSTEM}/{secret}"))?;
        refused(
            &format!("cluster-2's syncer reading {SYSTEM}/{secret}"),
            secrets_in(me, SYSTEM).get(&secret).await,
        )?;
    }

    // 4. Status writes, as the syncer writes them (its field manager, a
    // server-side apply of status), dry run.
    let status = json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.66"}]}},
    });
    let params = PatchParams {
        dry_run: true,
        ..PatchParams::apply(&labels::syncer_manager(mine)).force()
    };
    let body = |name: &str| {
        let mut b = status.clone();
        b["metadata"] = json!({"name": name});
        Patch::Apply(b)
    };
    let other_leaf = copy_name(ns, &format!("only3--{other}"))?;
    let my_leaf = copy_name(ns, &format!("shop--{mine}"))?;
    Api::<Ingress>::namespaced(me.clone(), &my_ns)
        .patch_status(&my_leaf, &params, &body(&my_leaf))
        .await
        .context("cluster-2's syncer patching its own leaf's status")?;
    Api::<Ingress>::namespaced(them.clone(), &other_ns)
        .patch_status(&other_leaf, &params, &body(&other_leaf))
        .await
        .context("cluster-3's syncer patching its own leaf's status")?;
    refused(
        "cluster-2's syncer patching the status of cluster-3's leaf",
        Api::<Ingress>::namespaced(me.clone(), &other_ns)
            .patch_status(&other_leaf, &params, &body(&other_leaf))
            .await,
    )?;
    refused(
        "cluster-2's syncer patching the status of a root",
        Api::<Ingress>::namespaced(me.clone(), ns)
            .patch_status("shop", &params, &body("shop"))
            .await,
    )?;

    // 5. Clusters: its own by name, never another.
    let by_name = |c: &str| ListParams::default().fields(&format!("metadata.name={c}"));
    let clusters: Api<Cluster> = Api::all(me.clone());
    clusters
        .list(&by_name(mine))
        .await
        .context("cluster-2's syncer listing its own Cluster")?;
    refused(
        "cluster-2's syncer listing cluster-3's Cluster",
        clusters.list(&by_name(other)).await,
    )?;
    refused(
        "cluster-2's syncer listing every Cluster",
        clusters.list(&ListParams::default()).await,
    )?;
    let heartbeat = Patch::Apply(json!({
        "apiVersion": format!("{}/{}", labels::GROUP, labels::VERSION),
        "kind": "Cluster",
        "metadata": {"name": other},
        "status": {"lastHeartbeatTime": "2026-01-01T00:00:00Z"},
    }));
    refused(
        "cluster-2's syncer heartbeating cluster-3",
        clusters.patch_status(other, &params, &heartbeat).await,
    )?;

    let roots: Api<Ingress> = Api::namespaced(cp.clone(), ns);
    for root in ["shop", "only3"] {
        roots.delete(root, &DeleteParams::default()).await?;
    }
    eventually("the roots are gone", CONVERGE, || async {
        Ok(roots
            .list(&ListParams::default())
            .await?
            .items
            .is_empty()
            .then_some(()))
    })
    .await?;
    for (who, log) in fleet.logs() {
        if let Some(line) = log
            .lines()
            .find(|l| l.to_ascii_lowercase().contains("forbidden"))
        {
            bail!("the {who} was denied a request: {line}");
        }
    }
    Ok(())
}

/// /readyz says "not ready" until the caches have synced: a second
/// controller (a standby) whose Secret list is denied is live but never
/// ready; once the permission is back it becomes ready.
pub async fn readyz_waits_for_the_caches(env: &TestEnv) -> anyhow::Result<()> {
    let fleet = Fleet::start(env, "ready").await?;
    // Its push-mode syncers read Secrets too, under their own ClusterRole.
    revoke_in(
        &fleet.cp,
        &["kcp-ingress-controller", "kcp-ingress-push-syncers"],
        "list secrets",
        &fleet.as_controller,
        None,
    )
    .await?;
    let mut args = fleet.controller_args.clone();
    set_flag(&mut args, "--admin-address", "127.0.0.1:0")?;
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let standby = env.spawn_kcp_ingress("rbac-controller-unready", &args)?;
    let port = standby.admin_port().await?;
    // Its Secret cache cannot fill: the watch says why, and the probes say
    // live but not ready (both read after that line was logged).
    wait_logged(&standby, 0, &[&denial("list secrets")]).await?;
    ensure!(http_get(port, "/livez").await? == 200, "/livez is not 200");
    ensure!(
        http_get(port, "/readyz").await? == 503,
        "/readyz is not 503 while the Secret cache cannot sync"
    );
    restore(env, &fleet, "list secrets", &fleet.as_controller).await?;
    eventually("ready once the caches sync", CONVERGE, || async {
        Ok((http_get(port, "/readyz").await? == 200).then_some(()))
    })
    .await
}
