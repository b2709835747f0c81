//! `kcp-ingress explain` against the real servers: a controller with
//! push-mode syncers for the three clusters (kubeconfig Secrets), a
//! stand-in load balancer per cluster and a glbc publishing to the group's
//! BIND. Each test makes one root the way a user does and runs `explain -o
//! json` (the binary, as a user runs it) until it names the expected first
//! failing hop, with the expected exit code:
//!
//! - a converged root: every hop holds, exit 0 (and the tree and YAML outputs);
//! - an invalid placement selector: `placement`;
//! - a missing backend Service: `dependencies`;
//! - a DNS name owned by someone else (a foreign ownership TXT record): `dns-records`;
//! - a placed cluster whose API server is stopped: `downstream`;
//! - Gateway API roots (the stand-ins are each cluster's implementation,
//!   GatewayClass `standin`; the Clusters carry the class label): a
//!   converged Gateway and HTTPRoute (exit 0); a Gateway whose leaf in one
//!   cluster is not Programmed: `clusters`; an HTTPRoute whose parentRef
//!   names no Gateway: `placement` (the controller's `NoMatchingParent`).
//!
//! The group is serial: each test runs its own processes against the same
//! Clusters, and one stops a cluster's API server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use hickory_proto::rr::rdata::{A, TXT};
use hickory_proto::rr::{RData, RecordType};
use k8s_openapi::api::core::v1::{Namespace, Secret, Service};
use k8s_openapi::api::networking::v1::Ingress;
use kcp_ingress::apis::Cluster;
use kcp_ingress::gateway_api::gateway::Gateway;
use kcp_ingress::gateway_api::gateway_class::GatewayClass;
use kcp_ingress::gateway_api::http_route::HttpRoute;
use kcp_ingress::glbc::dns::TsigKey;
use kcp_ingress::glbc::dns::rfc2136::{Rfc2136Client, RrsetChange, fqdn};
use kcp_ingress::labels;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::env::{Process, TestEnv};
use crate::support::eventually;

/// Where the push-mode kubeconfig Secrets live.
const SYSTEM: &str = "kcp-ingress-system";
/// The physical clusters, and their stand-in load balancers' addresses.
const CLUSTERS: [&str; 3] = ["cluster-1", "cluster-2", "cluster-3"];
const LB: [&str; 3] = ["127.0.10.1", "127.0.10.2", "127.0.10.3"];
/// Label on every Cluster, with its name, for placement annotations.
const NAME_LABEL: &str = "kcp-ingress.e2e/name";
/// The glbc's owner id.
const OWNER: &str = "e2e-explain";
/// The root GatewayClass (kcp-ingress's).
const ROOT_CLASS: &str = "kcp-ingress";
/// Health threshold of the controller, the glbc and explain; the push
/// syncers heartbeat every second.
const THRESHOLD: &str = "10s";
/// How long a root takes to converge, or explain to see a change.
const CONVERGE: Duration = Duration::from_secs(60);
const MANAGER: &str = "e2e-explain";

/// A stand-in load balancer, killed on drop.
struct Standin(Child);

impl Drop for Standin {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One test's processes and names.
struct Fleet {
    cp: Client,
    ns: String,
    host: String,
    /// The TSIG secret file (removed on drop).
    secret_file: PathBuf,
    _controller: Process,
    _glbc: Process,
    _lbs: Vec<Standin>,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.secret_file);
    }
}

fn path(p: &std::path::Path) -> anyhow::Result<String> {
    Ok(p.to_str().context("a non-UTF-8 path")?.to_string())
}

impl Fleet {
    async fn start(env: &TestEnv, tag: &str) -> anyhow::Result<Self> {
        Self::start_with(env, tag, &[]).await
    }

    /// Registers the three Clusters with kubeconfig Secrets (again: the
    /// same content each time) and the Gateway class label, the root
    /// GatewayClass `kcp-ingress`, makes the test's namespace
    /// `explain-<tag>` and starts the controller, the stand-ins (those of
    /// `not_programmed` report their Gateways not Programmed) and a glbc
    /// for that namespace.
    async fn start_with(env: &TestEnv, tag: &str, not_programmed: &[&str]) -> anyhow::Result<Self> {
        let cp = env.client("control-plane").await?;
        let params = PatchParams::apply(MANAGER).force();
        let ns = format!("explain-{tag}");
        for namespace in [SYSTEM, ns.as_str()] {
            Api::<Namespace>::all(cp.clone())
                .patch(
                    namespace,
                    &params,
                    &Patch::Apply(json!({
                        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace},
                    })),
                )
                .await
                .with_context(|| format!("creating namespace {namespace}"))?;
        }
        for cluster in CLUSTERS {
            let secret = format!("{cluster}-kubeconfig");
            let yaml = std::fs::read_to_string(env.kubeconfig(cluster))?;
            Api::<Secret>::namespaced(cp.clone(), SYSTEM)
                .patch(
                    &secret,
                    &params,
                    &Patch::Apply(json!({
                        "apiVersion": "v1", "kind": "Secret",
                        "metadata": {"name": secret},
                        "stringData": {"kubeconfig": yaml},
                    })),
                )
                .await?;
            Api::<Cluster>::all(cp.clone())
                .patch(
                    cluster,
                    &params,
                    &Patch::Apply(json!({
                        "apiVersion": format!("{}/{}", labels::GROUP, labels::VERSION),
                        "kind": "Cluster",
                        "metadata": {"name": cluster, "labels": {
                            NAME_LABEL: cluster,
                            labels::gateway_api::CLASS_LABEL: "standin",
                        }},
                        "spec": {"kubeconfigSecretRef": {"namespace": SYSTEM, "name": secret}},
                    })),
                )
                .await
                .with_context(|| format!("registering Cluster {cluster}"))?;
        }
        Api::<GatewayClass>::all(cp.clone())
            .patch(
                ROOT_CLASS,
                &params,
                &Patch::Apply(json!({
                    "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
                    "metadata": {"name": ROOT_CLASS},
                    "spec": {"controllerName": labels::gateway_api::CONTROLLER_NAME},
                })),
            )
            .await
            .context("creating GatewayClass kcp-ingress")?;
        let kubeconfig = path(&env.kubeconfig("control-plane"))?;
        let controller = env.spawn_kcp_ingress(
            &format!("explain-controller-{tag}"),
            &[
                "controller",
                "--kubeconfig",
                &kubeconfig,
                "--push-syncers",
                "--heartbeat-interval",
                "1s",
                "--health-threshold",
                THRESHOLD,
            ],
        )?;
        let secret_file = std::env::temp_dir().join(format!(
            "kcp-ingress-e2e-{}-explain.tsig",
            std::process::id()
        ));
        std::fs::write(&secret_file, env.dns("DNS_TSIG_SECRET"))?;
        let glbc = env.spawn_kcp_ingress(
            &format!("explain-glbc-{tag}"),
            &[
                "glbc",
                "--kubeconfig",
                &kubeconfig,
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
                &path(&secret_file)?,
                "--owner-id",
                OWNER,
                "--namespace",
                &ns,
                "--health-threshold",
                THRESHOLD,
            ],
        )?;
        let logs = env
            .kubeconfig("control-plane")
            .parent()
            .context("the environment's directory")?
            .join("logs");
        let mut lbs = Vec::new();
        for (cluster, address) in CLUSTERS.iter().zip(LB) {
            let log = std::fs::File::create(
                logs.join(format!("explain-standin-lb-{cluster}-{tag}.log")),
            )?;
            let child = Command::new(env!("CARGO_BIN_EXE_standin-lb"))
                .arg("--kubeconfig")
                .arg(env.kubeconfig(cluster))
                .args(["--cluster", cluster, "--address", address, "--port", "0"])
                .args(
                    not_programmed
                        .contains(cluster)
                        .then_some("--gateways-not-programmed"),
                )
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .context("starting standin-lb")?;
            lbs.push(Standin(child));
        }
        let zone = env.dns("DNS_ZONE").trim_end_matches('.');
        Ok(Self {
            cp,
            host: format!("{tag}.explain.{zone}"),
            ns,
            secret_file,
            _controller: controller,
            _glbc: glbc,
            _lbs: lbs,
        })
    }

    /// A root Ingress `web` for the test's host with a TLS Secret and a
    /// backend Service `backend` (created unless `missing`), placed by
    /// `placement` (none: every cluster).
    async fn root(
        &self,
        backend: &str,
        missing: bool,
        placement: Option<&str>,
    ) -> anyhow::Result<()> {
        let params = PostParams::default();
        if !missing {
            Api::<Service>::namespaced(self.cp.clone(), &self.ns)
                .create(
                    &params,
                    &serde_json::from_value(json!({
                        "metadata": {"name": backend},
                        "spec": {"ports": [{"port": 80, "targetPort": 8080}]},
                    }))?,
                )
                .await?;
        }
        Api::<Secret>::namespaced(self.cp.clone(), &self.ns)
            .create(
                &params,
                &serde_json::from_value(json!({
                    "metadata": {"name": "web-tls"},
                    "stringData": {"tls.crt": "not a certificate", "tls.key": "not a key"},
                }))?,
            )
            .await?;
        Api::<Ingress>::namespaced(self.cp.clone(), &self.ns)
            .create(
                &params,
                &serde_json::from_value(json!({
                    "metadata": {
                        "name": "web",
                        "annotations": placement
                            .map(|p| json!({labels::PLACEMENT_ANNOTATION: p}))
                            .unwrap_or_else(|| json!({})),
                    },
                    "spec": {
                        "tls": [{"hosts": [self.host], "secretName": "web-tls"}],
                        "rules": [{"host": self.host, "http": {"paths": [{
                            "path": "/", "pathType": "Prefix",
                            "backend": {"service": {"name": backend, "port": {"number": 80}}},
                        }]}}],
                    },
                }))?,
            )
            .await
            .with_context(|| format!("creating root {}/web", self.ns))?;
        Ok(())
    }

    /// Runs `explain ROOT -o FORMAT` with the glbc's DNS flags; its exit
    /// code and standard output.
    async fn explain(
        &self,
        env: &TestEnv,
        root: &str,
        format: &str,
    ) -> anyhow::Result<(i32, String)> {
        let kubeconfig = path(&env.kubeconfig("control-plane"))?;
        let secret_file = path(&self.secret_file)?;
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_kcp-ingress"))
            .args([
                "explain",
                "--kubeconfig",
                &kubeconfig,
                "-n",
                &self.ns,
                root,
                "-o",
                format,
                "--health-threshold",
                THRESHOLD,
                "--dns-server",
                env.dns("DNS_SERVER"),
                "--dns-port",
                env.dns("DNS_PORT"),
                "--zone",
                env.dns("DNS_ZONE"),
                "--owner-id",
                OWNER,
                "--tsig-key-name",
                env.dns("DNS_TSIG_KEY_NAME"),
                "--tsig-algorithm",
                env.dns("DNS_TSIG_ALGORITHM"),
                "--tsig-secret-file",
                &secret_file,
            ])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .await
            .context("running kcp-ingress explain")?;
        let stdout = String::from_utf8(output.stdout).context("explain's output is not UTF-8")?;
        // The last answer of each kind stays with the logs (printed when the group fails).
        let logs = env
            .kubeconfig("control-plane")
            .parent()
            .context("the environment's directory")?
            .join("logs");
        let _ = std::fs::write(
            logs.join(format!("explain-{}-{root}.{format}.log", self.ns).replace('/', "_")),
            &stdout,
        );
        ensure!(
            !stdout.contains(env.dns("DNS_TSIG_SECRET")),
            "explain printed the TSIG secret"
        );
        let code = output.status.code().context("explain was killed")?;
        if code == 2 {
            bail!(
                "explain could not run: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok((code, stdout))
    }

    /// Runs `explain web -o json` until its first failing hop is `hop`
    /// (`None`: until every hop holds); returns the report.
    async fn explain_until(&self, env: &TestEnv, hop: Option<&str>) -> anyhow::Result<Value> {
        self.explain_root_until(env, "web", hop).await
    }

    /// [`Fleet::explain_until`], until the first failure's message also
    /// contains `says`: a hop can fail for a passing reason first (a cluster
    /// that has not reported yet), and the test asserts the lasting one.
    async fn explain_until_says(
        &self,
        env: &TestEnv,
        hop: &str,
        says: &str,
    ) -> anyhow::Result<Value> {
        self.explain_root_until_says(env, "web", Some(hop), says)
            .await
    }

    /// [`Fleet::explain_until`] for `root` (`KIND/NAME`).
    async fn explain_root_until(
        &self,
        env: &TestEnv,
        root: &str,
        hop: Option<&str>,
    ) -> anyhow::Result<Value> {
        self.explain_root_until_says(env, root, hop, "").await
    }

    /// `explain -o json` of `root`: its exit code and its report.
    async fn explain_json(&self, env: &TestEnv, root: &str) -> anyhow::Result<(i32, Value)> {
        let (code, stdout) = self.explain(env, root, "json").await?;
        let report = serde_json::from_str(&stdout)
            .with_context(|| format!("explain -o json printed {stdout}"))?;
        Ok((code, report))
    }

    /// Explains `root` until it holds with every hop passing: a hop with
    /// nothing to check yet (a Gateway whose route's hostnames have not
    /// reached its GlobalIngress: no host to query) is skipped, and the
    /// explanation holds before the whole path does.
    async fn explain_root_until_every_hop_passes(
        &self,
        env: &TestEnv,
        root: &str,
    ) -> anyhow::Result<Value> {
        eventually(
            &format!("explain {}/{root}: every hop passes", self.ns),
            CONVERGE,
            || async {
                let (code, report) = self.explain_json(env, root).await?;
                let not_passing: Vec<&str> = HOPS
                    .into_iter()
                    .filter(|name| hop(&report, name).map_or(true, |h| h["verdict"] != "pass"))
                    .collect();
                if code == 0 && report["holds"] == json!(true) && not_passing.is_empty() {
                    return Ok(Some(report));
                }
                bail!("exit {code}, hops not passing: {not_passing:?}")
            },
        )
        .await
    }

    /// [`Fleet::explain_root_until`], until the first failure's message
    /// also contains `says` (another hop may fail there for a moment first).
    async fn explain_root_until_says(
        &self,
        env: &TestEnv,
        root: &str,
        hop: Option<&str>,
        says: &str,
    ) -> anyhow::Result<Value> {
        eventually(
            &format!("explain {}/{root} names {hop:?} first ({says:?})", self.ns),
            CONVERGE,
            || async {
                let (code, report) = self.explain_json(env, root).await?;
                let first = report.pointer("/firstFailure/hop").and_then(Value::as_str);
                let want_code = if hop.is_some() { 1 } else { 0 };
                if first == hop
                    && code == want_code
                    && report["holds"] == json!(hop.is_none())
                    && first_message(&report).contains(says)
                {
                    return Ok(Some(report));
                }
                bail!(
                    "exit {code}, first failure {}",
                    report.get("firstFailure").unwrap_or(&Value::Null)
                )
            },
        )
        .await
    }
}

/// Applies `object` (whole, with apiVersion and kind) in the test's namespace.
async fn apply<K>(fleet: &Fleet, object: Value) -> anyhow::Result<()>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let name = object["metadata"]["name"]
        .as_str()
        .context("the object has no name")?
        .to_string();
    Api::<K>::namespaced(fleet.cp.clone(), &fleet.ns)
        .patch(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&object),
        )
        .await
        .with_context(|| format!("applying {} {name}", object["kind"]))?;
    Ok(())
}

impl Fleet {
    /// The Service `web`, the root Gateway `web` (class kcp-ingress, every
    /// Cluster with a class; one HTTP listener for `*.<host>`) and the
    /// HTTPRoute `shop` on the Gateway named `parent`, for `www.<host>`.
    async fn gateway_and_route(&self, parent: &str) -> anyhow::Result<()> {
        apply::<Service>(
            self,
            json!({
                "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                "spec": {"ports": [{"port": 80, "targetPort": 8080}]},
            }),
        )
        .await?;
        apply::<Gateway>(
            self,
            json!({
                "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
                "metadata": {"name": "web"},
                "spec": {"gatewayClassName": ROOT_CLASS, "listeners": [
                    {"name": "http", "port": 80, "protocol": "HTTP",
                     "hostname": format!("*.{}", self.host)}
                ]},
            }),
        )
        .await?;
        apply::<HttpRoute>(
            self,
            json!({
                "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
                "metadata": {"name": "shop"},
                "spec": {"parentRefs": [{"name": parent}],
                         "hostnames": [format!("www.{}", self.host)],
                         "rules": [{"backendRefs": [{"name": "web", "port": 80}]}]},
            }),
        )
        .await
    }
}

/// The hop `name` of a report.
fn hop<'a>(report: &'a Value, name: &str) -> anyhow::Result<&'a Value> {
    report["hops"]
        .as_array()
        .and_then(|hops| hops.iter().find(|h| h["name"] == name))
        .with_context(|| format!("no hop {name} in {report}"))
}

/// The summary of the first failing hop.
fn first_message(report: &Value) -> String {
    report
        .pointer("/firstFailure/message")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

const HOPS: [&str; 10] = [
    "root",
    "placement",
    "leaves",
    "dependencies",
    "downstream",
    "clusters",
    "root-status",
    "global-ingress",
    "dns-records",
    "dns-answers",
];

pub async fn a_converged_root_holds_at_every_hop(env: &TestEnv) -> anyhow::Result<()> {
    let fleet = Fleet::start(env, "converged").await?;
    fleet.root("backend", false, None).await?;
    let report = fleet.explain_until(env, None).await?;
    ensure!(report["kind"] == "Explanation", "{report}");
    ensure!(
        report["root"] == json!({"kind": "Ingress", "namespace": fleet.ns, "name": "web"}),
        "{report}"
    );
    for name in HOPS {
        let h = hop(&report, name)?;
        ensure!(h["verdict"] == "pass", "hop {name} does not pass: {h}");
    }
    // Every placed cluster's copies were seen in the cluster, current.
    let downstream = hop(&report, "downstream")?["items"].to_string();
    for cluster in CLUSTERS {
        ensure!(
            downstream.contains(&format!("{cluster}: Ingress {}/web--{cluster}", fleet.ns))
                && downstream.contains(&format!("{cluster}: Service {}/backend", fleet.ns)),
            "the copies in {cluster}: {downstream}"
        );
    }
    let answers = hop(&report, "dns-answers")?["items"].to_string();
    for address in LB {
        ensure!(answers.contains(address), "the DNS answers: {answers}");
    }

    let (code, tree) = fleet.explain(env, "web", "tree").await?;
    ensure!(code == 0, "explain (tree) exited {code}: {tree}");
    ensure!(
        tree.contains("every hop holds") && !tree.contains('\x1b'),
        "the tree: {tree}"
    );
    let (code, yaml) = fleet.explain(env, "ingress/web", "yaml").await?;
    let parsed: Value = serde_yaml::from_str(&yaml).context("explain -o yaml")?;
    ensure!(code == 0 && parsed["holds"] == json!(true), "yaml: {yaml}");
    ensure!(
        parsed["hops"].as_array().map(Vec::len) == Some(HOPS.len()),
        "yaml: {yaml}"
    );

    // A root that does not exist: the first hop fails.
    let (code, stdout) = fleet.explain(env, "nothing", "json").await?;
    let report: Value = serde_json::from_str(&stdout)?;
    ensure!(
        code == 1 && report.pointer("/firstFailure/hop") == Some(&json!("root")),
        "explain of a missing root: exit {code}, {stdout}"
    );
    Ok(())
}

pub async fn an_invalid_placement_selector_stops_at_placement(env: &TestEnv) -> anyhow::Result<()> {
    let fleet = Fleet::start(env, "selector").await?;
    fleet.root("backend", false, Some("region in eu")).await?;
    let report = fleet
        .explain_until_says(env, "placement", "invalid placement selector")
        .await?;
    let message = first_message(&report);
    ensure!(
        message.contains("invalid placement selector") && message.contains("region in eu"),
        "the placement hop says: {message}"
    );
    ensure!(hop(&report, "root")?["verdict"] == "pass", "{report}");
    Ok(())
}

pub async fn a_missing_backend_service_stops_at_dependencies(env: &TestEnv) -> anyhow::Result<()> {
    let fleet = Fleet::start(env, "service").await?;
    fleet.root("missing", true, None).await?;
    let report = fleet
        .explain_until_says(env, "dependencies", "does not exist")
        .await?;
    let message = first_message(&report);
    ensure!(
        message.contains(&format!("Service {}/missing", fleet.ns))
            && message.contains("does not exist"),
        "the dependencies hop says: {message}"
    );
    for name in ["root", "placement", "leaves"] {
        ensure!(
            hop(&report, name)?["verdict"] == "pass",
            "hop {name}: {report}"
        );
    }
    Ok(())
}

pub async fn a_name_owned_by_someone_else_stops_at_dns_records(
    env: &TestEnv,
) -> anyhow::Result<()> {
    let fleet = Fleet::start(env, "owned").await?;
    let server: SocketAddr =
        format!("{}:{}", env.dns("DNS_SERVER"), env.dns("DNS_PORT")).parse()?;
    let key = TsigKey::from_base64(
        env.dns("DNS_TSIG_KEY_NAME"),
        env.dns("DNS_TSIG_ALGORITHM").parse()?,
        env.dns("DNS_TSIG_SECRET"),
    )?;
    Rfc2136Client::new(server, env.dns("DNS_ZONE"), &key, Duration::from_secs(3))?
        .replace_rrsets(&[
            RrsetChange {
                name: fqdn(&fleet.host)?,
                record_type: RecordType::A,
                ttl: 60,
                data: vec![RData::A(A("127.0.10.99".parse()?))],
            },
            RrsetChange {
                name: fqdn(&format!("_kcp-ingress.{}", fleet.host))?,
                record_type: RecordType::TXT,
                ttl: 60,
                data: vec![RData::TXT(TXT::new(vec![
                    "heritage=kcp-ingress,owner=someone-else,root=x/y".into(),
                ]))],
            },
        ])
        .await
        .context("writing someone else's records")?;
    fleet.root("backend", false, None).await?;
    let report = fleet
        .explain_until_says(env, "dns-records", "someone-else")
        .await?;
    let message = first_message(&report);
    ensure!(
        message.contains(&fleet.host) && message.contains("someone-else"),
        "the dns-records hop says: {message}"
    );
    ensure!(
        hop(&report, "global-ingress")?["verdict"] == "pass",
        "{report}"
    );
    Ok(())
}

pub async fn a_stopped_cluster_stops_at_downstream(env: &TestEnv) -> anyhow::Result<()> {
    let fleet = Fleet::start(env, "down").await?;
    fleet
        .root("backend", false, Some(&format!("{NAME_LABEL}=cluster-3")))
        .await?;
    fleet.explain_until(env, None).await?;
    env.server("stop", "cluster-3")?;
    let result = async {
        let report = fleet
            .explain_until_says(env, "downstream", "does not answer")
            .await?;
        let message = first_message(&report);
        ensure!(
            message.contains("cluster-3") && message.contains("does not answer"),
            "the downstream hop says: {message}"
        );
        ensure!(
            report.pointer("/firstFailure/hint").is_some(),
            "no command to look further: {report}"
        );
        Ok(())
    }
    .await;
    env.server("start", "cluster-3")?;
    result?;
    // Back: every hop holds again.
    fleet.explain_until(env, None).await?;
    Ok(())
}

pub async fn a_converged_gateway_and_route_hold_at_every_hop(env: &TestEnv) -> anyhow::Result<()> {
    let fleet = Fleet::start(env, "gateway").await?;
    fleet.gateway_and_route("web").await?;
    let www = format!("www.{}", fleet.host);
    let report = fleet
        .explain_root_until_every_hop_passes(env, "gateway/web")
        .await?;
    ensure!(
        report["root"] == json!({"kind": "Gateway", "namespace": fleet.ns, "name": "web"}),
        "{report}"
    );
    let downstream = hop(&report, "downstream")?["items"].to_string();
    let clusters = hop(&report, "clusters")?["items"].to_string();
    for cluster in CLUSTERS {
        ensure!(
            downstream.contains(&format!("{cluster}: Gateway {}/web--{cluster}", fleet.ns)),
            "the copies in {cluster}: {downstream}"
        );
        ensure!(clusters.contains("Programmed"), "clusters: {clusters}");
    }
    let global = hop(&report, "global-ingress")?.to_string();
    ensure!(global.contains("web.gateway"), "global-ingress: {global}");
    let answers = hop(&report, "dns-answers")?["items"].to_string();
    ensure!(answers.contains(&www), "the DNS answers: {answers}");
    for address in LB {
        ensure!(answers.contains(address), "the DNS answers: {answers}");
    }

    let report = fleet
        .explain_root_until_every_hop_passes(env, "httproute/shop")
        .await?;
    ensure!(
        report["root"] == json!({"kind": "HTTPRoute", "namespace": fleet.ns, "name": "shop"}),
        "{report}"
    );
    let downstream = hop(&report, "downstream")?["items"].to_string();
    ensure!(
        downstream.contains(&format!("HTTPRoute {}/shop--cluster-1", fleet.ns))
            && downstream.contains(&format!("Service {}/web", fleet.ns)),
        "the route's copies: {downstream}"
    );
    let global = hop(&report, "global-ingress")?.to_string();
    ensure!(
        global.contains("not applicable") && global.contains("web.gateway"),
        "global-ingress: {global}"
    );
    let answers = hop(&report, "dns-answers")?["items"].to_string();
    ensure!(answers.contains(&www), "the route's DNS answers: {answers}");
    let (code, tree) = fleet
        .explain(env, "httproutes.gateway.networking.k8s.io/shop", "tree")
        .await?;
    ensure!(
        code == 0 && tree.contains("every hop holds"),
        "the tree: {tree}"
    );
    Ok(())
}

pub async fn a_gateway_not_programmed_in_one_cluster_stops_at_clusters(
    env: &TestEnv,
) -> anyhow::Result<()> {
    let fleet = Fleet::start_with(env, "notprogrammed", &["cluster-2"]).await?;
    fleet.gateway_and_route("web").await?;
    // The stand-ins of cluster-1 and cluster-3 program their leaves;
    // cluster-2's reports Programmed=False. Every leaf starts at the CRD's
    // default, Programmed=Unknown (Pending), which fails the same hop with
    // another message until the stand-in reports: wait for the lasting one.
    let report = fleet
        .explain_root_until_says(
            env,
            "gateway/web",
            Some("clusters"),
            "Cluster cluster-2: healthy, but the leaf Gateway is not Programmed: Programmed=False",
        )
        .await?;
    let message = first_message(&report);
    ensure!(
        message.contains("cluster-2") && message.contains("not Programmed: Programmed=False"),
        "the clusters hop says: {message}"
    );
    for name in ["root", "placement", "leaves", "dependencies", "downstream"] {
        ensure!(
            hop(&report, name)?["verdict"] == "pass",
            "hop {name}: {report}"
        );
    }
    ensure!(
        report.pointer("/firstFailure/hint").is_some(),
        "no command to look further: {report}"
    );
    Ok(())
}

pub async fn an_httproute_to_no_gateway_stops_at_placement(env: &TestEnv) -> anyhow::Result<()> {
    let fleet = Fleet::start(env, "noparent").await?;
    fleet.gateway_and_route("nothing").await?;
    let report = fleet
        .explain_root_until_says(env, "httproute/shop", Some("placement"), "NoMatchingParent")
        .await?;
    let message = first_message(&report);
    ensure!(
        message.contains("NoMatchingParent") && message.contains(&format!("{}/nothing", fleet.ns)),
        "the placement hop says: {message}"
    );
    ensure!(hop(&report, "root")?["verdict"] == "pass", "{report}");
    Ok(())
}
