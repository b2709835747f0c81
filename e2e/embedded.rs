//! The glbc with its embedded DNS server (`--dns-provider embedded`)
//! against the real control plane, and a real BIND 9 as its secondary
//! (named-secondary of the test environment, a secondary of
//! DNS_EMBEDDED_ZONE whose primary is 127.0.0.1:DNS_EMBEDDED_PORT). The
//! tests write what the ingress-controller and the syncers would: Clusters
//! with weights, priority labels and heartbeats, GlobalIngresses with
//! per-cluster addresses. Every answer is a real DNS query over loopback.
//!
//! The group is serial: its glbcs listen on the environment's fixed
//! embedded ports. Each test has its own namespace, subdomain, Clusters and
//! owner id.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use hickory_proto::op::{Message, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, RData, Record, RecordType};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::jiff::Timestamp;
use kcp_ingress::apis::{Cluster, ClusterSpec, GlobalIngress};
use kcp_ingress::glbc::dns::TsigKey;
use kcp_ingress::glbc::dns::rfc2136::{Rfc2136Client, fqdn, query};
use kcp_ingress::labels;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::env::{Process, TestEnv};
use crate::support::{eventually, kubectl};

/// Heartbeat threshold the tests' glbc uses.
const THRESHOLD: Duration = Duration::from_secs(3);
/// How often the tests' "syncers" heartbeat.
const BEAT: Duration = Duration::from_millis(500);
/// How long a converging step may take.
const CONVERGE: Duration = Duration::from_secs(20);
const DNS_TIMEOUT: Duration = Duration::from_secs(3);
/// Queries of the weighted-answer count.
const QUERIES: usize = 10_000;

/// One test's world: namespace, subdomain of the embedded zone, Clusters
/// with heartbeats.
struct World {
    client: Client,
    ns: String,
    tag: String,
    /// `<tag>.<embedded zone>` without the trailing dot.
    domain: String,
    beating: Arc<Mutex<BTreeMap<String, bool>>>,
    heart: tokio::task::JoinHandle<()>,
    secret_file: std::path::PathBuf,
}

impl Drop for World {
    fn drop(&mut self) {
        self.heart.abort();
        let _ = std::fs::remove_file(&self.secret_file);
    }
}

impl World {
    async fn new(env: &TestEnv, tag: &str) -> anyhow::Result<Self> {
        let client = env.client("control-plane").await?;
        let ns = format!("embedded-{tag}");
        Api::<Namespace>::all(client.clone())
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": ns}}))?,
            )
            .await
            .with_context(|| format!("creating namespace {ns}"))?;
        let zone = env.dns("DNS_EMBEDDED_ZONE").trim_end_matches('.');
        let beating: Arc<Mutex<BTreeMap<String, bool>>> = Arc::default();
        let heart = tokio::spawn(heartbeats(client.clone(), beating.clone()));
        let secret_file = std::env::temp_dir().join(format!(
            "kcp-ingress-e2e-{}-embedded-{tag}.tsig",
            std::process::id()
        ));
        std::fs::write(&secret_file, env.dns("DNS_TSIG_SECRET"))?;
        Ok(Self {
            client,
            ns,
            tag: tag.to_string(),
            domain: format!("{tag}.{zone}"),
            beating,
            heart,
            secret_file,
        })
    }

    fn host(&self, label: &str) -> String {
        format!("{label}.{}", self.domain)
    }

    fn cluster_name(&self, n: usize) -> String {
        format!("{}-c{n}", self.tag)
    }

    fn globals(&self) -> Api<GlobalIngress> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// Creates Clusters `<tag>-c1` … with `(weight, priority label)`, all
    /// heartbeating and Ready.
    async fn clusters(&self, settings: &[(Option<u32>, Option<&str>)]) -> anyhow::Result<()> {
        let api: Api<Cluster> = Api::all(self.client.clone());
        for (i, (weight, priority)) in settings.iter().enumerate() {
            let name = self.cluster_name(i + 1);
            let mut cluster = Cluster::new(
                &name,
                ClusterSpec {
                    weight: *weight,
                    ..Default::default()
                },
            );
            if let Some(priority) = priority {
                cluster
                    .labels_mut()
                    .insert(labels::PRIORITY_LABEL.into(), priority.to_string());
            }
            api.create(&PostParams::default(), &cluster)
                .await
                .with_context(|| format!("creating Cluster {name}"))?;
            self.beat(i + 1, Some(true));
        }
        Ok(())
    }

    /// Cluster `i` heartbeats, Ready or not (`Some`), or stops (`None`).
    fn beat(&self, i: usize, ready: Option<bool>) {
        let name = self.cluster_name(i);
        let mut beating = self.beating.lock().unwrap_or_else(|e| e.into_inner());
        match ready {
            Some(ready) => beating.insert(name, ready),
            None => beating.remove(&name),
        };
    }

    /// A glbc with the embedded server on `127.0.0.1:port`, for this
    /// test's namespace.
    fn glbc(
        &self,
        env: &TestEnv,
        name: &str,
        port: &str,
        extra: &[&str],
    ) -> anyhow::Result<Process> {
        let kubeconfig = env.kubeconfig("control-plane");
        let listen = format!("127.0.0.1:{port}");
        let owner = format!("e2e-{}", self.tag);
        let threshold = format!("{}s", THRESHOLD.as_secs());
        let mut args = vec![
            "glbc",
            "--kubeconfig",
            kubeconfig.to_str().context("kubeconfig path")?,
            "--dns-provider",
            "embedded",
            "--dns-listen",
            &listen,
            "--zone",
            env.dns("DNS_EMBEDDED_ZONE"),
            "--tsig-key-name",
            env.dns("DNS_TSIG_KEY_NAME"),
            "--tsig-algorithm",
            env.dns("DNS_TSIG_ALGORITHM"),
            "--tsig-secret-file",
            self.secret_file.to_str().context("secret path")?,
            "--owner-id",
            &owner,
            "--namespace",
            &self.ns,
            "--ttl",
            "30",
            "--health-threshold",
            &threshold,
        ];
        args.extend_from_slice(extra);
        env.spawn_kcp_ingress(&format!("glbc-embedded-{}-{name}", self.tag), &args)
    }

    /// A root Ingress `name`, the GlobalIngress it controls with `hosts`,
    /// and its per-cluster addresses `(cluster index, IPs)`.
    async fn root(
        &self,
        name: &str,
        hosts: &[String],
        clusters: &[(usize, &[&str])],
    ) -> anyhow::Result<()> {
        let ingress: Ingress = Api::namespaced(self.client.clone(), &self.ns)
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({
                    "metadata": {"name": name, "namespace": self.ns},
                    "spec": {"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}},
                }))?,
            )
            .await
            .with_context(|| format!("creating root Ingress {name}"))?;
        self.globals()
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({
                    "apiVersion": "kcp-ingress.dev/v1alpha1",
                    "kind": "GlobalIngress",
                    "metadata": {
                        "name": name,
                        "namespace": self.ns,
                        "ownerReferences": [{
                            "apiVersion": "networking.k8s.io/v1",
                            "kind": "Ingress",
                            "name": name,
                            "uid": ingress.uid(),
                            "controller": true,
                        }],
                    },
                    "spec": {"hosts": hosts},
                }))?,
            )
            .await
            .with_context(|| format!("creating GlobalIngress {name}"))?;
        self.place(name, clusters).await
    }

    /// Writes the per-cluster status of GlobalIngress `name`.
    async fn place(&self, name: &str, clusters: &[(usize, &[&str])]) -> anyhow::Result<()> {
        let entries: Vec<serde_json::Value> = clusters
            .iter()
            .map(|(i, ips)| {
                let addresses: Vec<serde_json::Value> =
                    ips.iter().map(|ip| json!({"ip": ip})).collect();
                json!({"cluster": self.cluster_name(*i), "addresses": addresses, "healthy": true})
            })
            .collect();
        self.globals()
            .patch_status(
                name,
                &PatchParams::apply("e2e-controller").force(),
                &Patch::Apply(json!({
                    "apiVersion": "kcp-ingress.dev/v1alpha1",
                    "kind": "GlobalIngress",
                    "status": {"clusters": entries},
                })),
            )
            .await
            .with_context(|| format!("writing the status of GlobalIngress {name}"))?;
        Ok(())
    }

    /// Waits until GlobalIngress `name` has condition `type_`=`status`.
    async fn wait_condition(&self, name: &str, type_: &str, status: &str) -> anyhow::Result<()> {
        eventually(&format!("{name}: {type_}={status}"), CONVERGE, || async {
            let g = self.globals().get(name).await?;
            let c = g
                .status
                .iter()
                .flat_map(|s| s.conditions.iter())
                .find(|c| c.type_ == type_)
                .cloned();
            match c {
                Some(c) if c.status == status => Ok(Some(())),
                other => bail!("{type_} is {other:?}"),
            }
        })
        .await
    }
}

/// The "syncers": every [`BEAT`], the status of every beating Cluster.
async fn heartbeats(client: Client, beating: Arc<Mutex<BTreeMap<String, bool>>>) {
    let api: Api<Cluster> = Api::all(client);
    let since = Timestamp::now().to_string();
    loop {
        let now = Timestamp::now();
        let clusters = beating.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for (name, ready) in clusters {
            let status = json!({
                "apiVersion": "kcp-ingress.dev/v1alpha1",
                "kind": "Cluster",
                "status": {
                    "conditions": [{
                        "type": "Ready",
                        "status": if ready { "True" } else { "False" },
                        "reason": "E2E",
                        "message": "",
                        "lastTransitionTime": since,
                    }],
                    "lastHeartbeatTime": now.to_string(),
                },
            });
            if let Err(err) = api
                .patch_status(
                    &name,
                    &PatchParams::apply("e2e-syncer").force(),
                    &Patch::Apply(&status),
                )
                .await
            {
                eprintln!("e2e: heartbeat of {name} failed: {err}");
            }
        }
        tokio::time::sleep(BEAT).await;
    }
}

fn server(port: &str) -> anyhow::Result<SocketAddr> {
    Ok(format!("127.0.0.1:{port}").parse()?)
}

fn data_text(record: &Record) -> String {
    match &record.data {
        RData::TXT(txt) => txt
            .txt_data
            .iter()
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect(),
        other => other.to_string(),
    }
}

/// The answer of `server` for `name`: response code and the data of the
/// records of `record_type`.
async fn ask(
    server: SocketAddr,
    name: &str,
    record_type: RecordType,
) -> anyhow::Result<(ResponseCode, BTreeSet<String>)> {
    let (rcode, records) = query(server, &fqdn(name)?, record_type, DNS_TIMEOUT).await?;
    Ok((
        rcode,
        records
            .iter()
            .filter(|r| r.record_type() == record_type)
            .map(data_text)
            .collect(),
    ))
}

/// Waits until `server` answers exactly `expected` for `name`.
async fn wait_answer(
    server: SocketAddr,
    name: &str,
    record_type: RecordType,
    expected: &[&str],
) -> anyhow::Result<()> {
    let expected: BTreeSet<String> = expected.iter().map(|s| s.to_string()).collect();
    eventually(
        &format!("{server} answers {name} {record_type} {expected:?}"),
        CONVERGE,
        || async {
            let (rcode, got) = ask(server, name, record_type).await?;
            if rcode == ResponseCode::NoError && got == expected {
                Ok(Some(()))
            } else {
                bail!("{rcode} {got:?}")
            }
        },
    )
    .await
}

/// Sends `count` A queries for `name` over one UDP socket, one at a time;
/// returns how often each address came first, and every address seen.
async fn first_answers(
    server: SocketAddr,
    name: &str,
    count: usize,
) -> anyhow::Result<(BTreeMap<String, usize>, BTreeSet<String>)> {
    let socket = UdpSocket::bind("127.0.0.1:0").await?;
    socket.connect(server).await?;
    let name = fqdn(name)?;
    let mut firsts: BTreeMap<String, usize> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    let mut buf = vec![0u8; 4096];
    for i in 0..count {
        let id = (i % 65_536) as u16;
        let mut message = Message::query();
        message.metadata.id = id;
        message.metadata.recursion_desired = false;
        let mut q = Query::new();
        q.set_name(name.clone())
            .set_query_class(DNSClass::IN)
            .set_query_type(RecordType::A);
        message.add_query(q);
        let bytes = message.to_vec()?;
        let mut answer = None;
        for _try in 0..3 {
            socket.send(&bytes).await?;
            match tokio::time::timeout(DNS_TIMEOUT, socket.recv(&mut buf)).await {
                Ok(Ok(n)) => {
                    let reply = Message::from_vec(&buf[..n])?;
                    if reply.metadata.id == id {
                        answer = Some(reply);
                        break;
                    }
                }
                Ok(Err(err)) => return Err(err.into()),
                Err(_) => continue,
            }
        }
        let reply = answer.with_context(|| format!("no answer to query {i}"))?;
        ensure!(
            reply.metadata.response_code == ResponseCode::NoError,
            "query {i}: {}",
            reply.metadata.response_code
        );
        let ips: Vec<String> = reply
            .answers
            .iter()
            .filter(|r| r.record_type() == RecordType::A)
            .map(data_text)
            .collect();
        let first = ips
            .first()
            .with_context(|| format!("query {i}: no A record"))?;
        *firsts.entry(first.clone()).or_default() += 1;
        seen.extend(ips);
    }
    Ok((firsts, seen))
}

/// An AXFR of `zone` over TCP without TSIG: the response code.
async fn unsigned_axfr(server: SocketAddr, zone: &str) -> anyhow::Result<ResponseCode> {
    let mut message = Message::query();
    message.metadata.id = 4242;
    message.metadata.op_code = OpCode::Query;
    let mut q = Query::new();
    q.set_name(fqdn(zone)?)
        .set_query_class(DNSClass::IN)
        .set_query_type(RecordType::AXFR);
    message.add_query(q);
    let bytes = message.to_vec()?;
    let mut stream = tokio::time::timeout(DNS_TIMEOUT, TcpStream::connect(server)).await??;
    let len = u16::try_from(bytes.len())?;
    stream.write_all(&len.to_be_bytes()).await?;
    stream.write_all(&bytes).await?;
    let mut len = [0u8; 2];
    tokio::time::timeout(DNS_TIMEOUT, stream.read_exact(&mut len)).await??;
    let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len))];
    tokio::time::timeout(DNS_TIMEOUT, stream.read_exact(&mut reply)).await??;
    let reply = Message::from_vec(&reply)?;
    ensure!(
        reply.answers.is_empty(),
        "an unsigned AXFR got {} records",
        reply.answers.len()
    );
    Ok(reply.metadata.response_code)
}

fn key(env: &TestEnv, secret: &str) -> anyhow::Result<TsigKey> {
    Ok(TsigKey::from_base64(
        env.dns("DNS_TSIG_KEY_NAME"),
        env.dns("DNS_TSIG_ALGORITHM").parse()?,
        secret,
    )?)
}

/// A zone transfer from `server` signed with the environment's key holds
/// an A record of `ip`.
async fn signed_transfer_has(
    env: &TestEnv,
    server: SocketAddr,
    zone: &str,
    ip: &str,
) -> anyhow::Result<()> {
    let client = Rfc2136Client::new(
        server,
        zone,
        &key(env, env.dns("DNS_TSIG_SECRET"))?,
        DNS_TIMEOUT,
    )?;
    let records = client.transfer_zone().await?;
    ensure!(
        records
            .iter()
            .any(|r| r.record_type() == RecordType::A && data_text(r) == ip),
        "the signed AXFR lacks A {ip}: {records:?}"
    );
    Ok(())
}

/// Weights 3 and 1: over 10,000 queries the first answer is the weight-3
/// cluster's within ±3 % of 75 %; a cluster of weight 0 is never answered.
pub async fn weights_share_the_first_answer(env: &TestEnv) -> anyhow::Result<()> {
    let world = World::new(env, "weights").await?;
    world
        .clusters(&[(Some(3), None), (Some(1), None), (Some(0), None)])
        .await?;
    let port = env.dns("DNS_EMBEDDED_PORT");
    let _glbc = world.glbc(env, "a", port, &[])?;
    let www = world.host("www");
    world
        .root(
            "web",
            std::slice::from_ref(&www),
            &[
                (1, &["127.0.3.1"]),
                (2, &["127.0.3.2"]),
                (3, &["127.0.3.3"]),
            ],
        )
        .await?;
    let dns = server(port)?;
    wait_answer(dns, &www, RecordType::A, &["127.0.3.1", "127.0.3.2"]).await?;

    let (firsts, seen) = first_answers(dns, &www, QUERIES).await?;
    ensure!(
        !seen.contains("127.0.3.3"),
        "the weight-0 cluster was answered: {firsts:?}"
    );
    let heavy = firsts.get("127.0.3.1").copied().unwrap_or(0);
    let light = firsts.get("127.0.3.2").copied().unwrap_or(0);
    ensure!(heavy + light == QUERIES, "first answers: {firsts:?}");
    let share = heavy as f64 / QUERIES as f64;
    eprintln!("e2e: weights 3:1 → first answers {heavy}:{light} ({share:.4})");
    ensure!(
        (0.72..=0.78).contains(&share),
        "weight-3 share of first answers {share:.4}, not within 75 % ± 3 % ({firsts:?})"
    );

    // Weight 0 on the heavy cluster too: it is withdrawn, live.
    Api::<Cluster>::all(world.client.clone())
        .patch(
            &world.cluster_name(1),
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"weight": 0}})),
        )
        .await?;
    wait_answer(dns, &www, RecordType::A, &["127.0.3.2"]).await?;
    world
        .wait_condition("web", labels::conditions::DNS_PUBLISHED, "True")
        .await
}

/// Priority groups: only the best group with a healthy cluster is
/// answered; when it loses its heartbeat the next group takes over, and
/// traffic goes back when it returns.
pub async fn a_priority_group_fails_over_and_back(env: &TestEnv) -> anyhow::Result<()> {
    let world = World::new(env, "prio").await?;
    world
        .clusters(&[(None, Some("0")), (None, Some("0")), (None, Some("10"))])
        .await?;
    let port = env.dns("DNS_EMBEDDED_PORT");
    let _glbc = world.glbc(env, "a", port, &[])?;
    let app = world.host("app");
    world
        .root(
            "app",
            std::slice::from_ref(&app),
            &[
                (1, &["127.0.4.1"]),
                (2, &["127.0.4.2"]),
                (3, &["127.0.4.3"]),
            ],
        )
        .await?;
    let dns = server(port)?;
    wait_answer(dns, &app, RecordType::A, &["127.0.4.1", "127.0.4.2"]).await?;
    // One of the preferred group goes: the other one still serves.
    world.beat(1, None);
    wait_answer(dns, &app, RecordType::A, &["127.0.4.2"]).await?;
    // The whole preferred group goes: fail over to the backup group.
    world.beat(2, Some(false));
    wait_answer(dns, &app, RecordType::A, &["127.0.4.3"]).await?;
    // It comes back: traffic goes back.
    world.beat(1, Some(true));
    world.beat(2, Some(true));
    wait_answer(dns, &app, RecordType::A, &["127.0.4.1", "127.0.4.2"]).await?;
    world
        .wait_condition("app", labels::conditions::DNS_PUBLISHED, "True")
        .await?;

    // A priority label that is not an integer: a Warning Event on the
    // Cluster, and it counts as priority 0 (the backup joins the best group).
    let backup = world.cluster_name(3);
    Api::<Cluster>::all(world.client.clone())
        .patch(
            &backup,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {labels::PRIORITY_LABEL: "backup"}}})),
        )
        .await?;
    wait_answer(
        dns,
        &app,
        RecordType::A,
        &["127.0.4.1", "127.0.4.2", "127.0.4.3"],
    )
    .await?;
    let events: Api<Event> = Api::namespaced(world.client.clone(), "default");
    eventually(
        "an InvalidPriority Event on the Cluster",
        CONVERGE,
        || async {
            let list = events.list(&ListParams::default()).await?;
            Ok(list
                .items
                .iter()
                .any(|e| {
                    e.reason.as_deref() == Some("InvalidPriority")
                        && e.regarding.as_ref().and_then(|r| r.name.as_deref())
                            == Some(backup.as_str())
                })
                .then_some(()))
        },
    )
    .await
}

/// Two replicas with leader election: both answer, the standby too, and a
/// change reaches both; with the leader gone the other keeps answering and
/// follows changes.
pub async fn two_replicas_both_answer(env: &TestEnv) -> anyhow::Result<()> {
    let world = World::new(env, "replicas").await?;
    world.clusters(&[(None, None), (None, None)]).await?;
    let namespaces: Api<Namespace> = Api::all(world.client.clone());
    if namespaces.get_opt("kcp-ingress-system").await?.is_none() {
        namespaces
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": "kcp-ingress-system"}}))?,
            )
            .await?;
    }
    let lease = format!("glbc-{}", world.tag);
    let (port_a, port_b) = (env.dns("DNS_EMBEDDED_PORT"), env.dns("DNS_EMBEDDED_PORT_2"));
    let election = |id: &'static str| {
        [
            "--leader-elect",
            "--lease-name",
            lease.as_str(),
            "--lease-duration",
            "3s",
            "--identity",
            id,
        ]
    };
    let mut a = world.glbc(env, "a", port_a, &election("a"))?;
    let leases: Api<Lease> = Api::namespaced(world.client.clone(), "kcp-ingress-system");
    eventually("a holds the Lease", CONVERGE, || async {
        let holder = leases
            .get_opt(&lease)
            .await?
            .and_then(|l| l.spec?.holder_identity);
        Ok((holder.as_deref() == Some("a")).then_some(()))
    })
    .await?;
    let _b = world.glbc(env, "b", port_b, &election("b"))?;

    let www = world.host("www");
    world
        .root("web", std::slice::from_ref(&www), &[(1, &["127.0.5.1"])])
        .await?;
    let (dns_a, dns_b) = (server(port_a)?, server(port_b)?);
    wait_answer(dns_a, &www, RecordType::A, &["127.0.5.1"]).await?;
    wait_answer(dns_b, &www, RecordType::A, &["127.0.5.1"]).await?;
    world
        .wait_condition("web", labels::conditions::DNS_PUBLISHED, "True")
        .await?;
    world
        .place("web", &[(1, &["127.0.5.1"]), (2, &["127.0.5.2"])])
        .await?;
    wait_answer(dns_a, &www, RecordType::A, &["127.0.5.1", "127.0.5.2"]).await?;
    wait_answer(dns_b, &www, RecordType::A, &["127.0.5.1", "127.0.5.2"]).await?;
    let holder = leases
        .get_opt(&lease)
        .await?
        .and_then(|l| l.spec?.holder_identity);
    ensure!(
        holder.as_deref() == Some("a"),
        "b took the Lease while a ran: {holder:?}"
    );

    // The leader goes; the other keeps answering and follows changes.
    a.kill();
    world.place("web", &[(2, &["127.0.5.2"])]).await?;
    wait_answer(dns_b, &www, RecordType::A, &["127.0.5.2"]).await
}

/// BIND as a secondary: it transfers the zone (AXFR signed with the key,
/// on NOTIFY) and answers the same records; a transfer without the key,
/// or with a wrong one, is refused; a name outside the zone is REFUSED.
pub async fn a_bind_secondary_serves_the_zone(env: &TestEnv) -> anyhow::Result<()> {
    let world = World::new(env, "secondary").await?;
    world.clusters(&[(None, None), (None, None)]).await?;
    let port = env.dns("DNS_EMBEDDED_PORT");
    let notify = format!("127.0.0.1:{}", env.dns("DNS_SECONDARY_PORT"));
    let _glbc = world.glbc(env, "a", port, &["--dns-notify", &notify])?;
    let (primary, secondary) = (server(port)?, server(env.dns("DNS_SECONDARY_PORT"))?);
    let www = world.host("www");
    world
        .root(
            "web",
            std::slice::from_ref(&www),
            &[(1, &["127.0.6.1"]), (2, &["127.0.6.2"])],
        )
        .await?;
    let both = ["127.0.6.1", "127.0.6.2"];
    wait_answer(primary, &www, RecordType::A, &both).await?;
    wait_answer(secondary, &www, RecordType::A, &both).await?;
    // The same records: the ownership TXT record and the SOA too.
    let ownership = format!("_kcp-ingress.{www}");
    let zone = env.dns("DNS_EMBEDDED_ZONE");
    for (name, record_type) in [
        (ownership.as_str(), RecordType::TXT),
        (zone, RecordType::SOA),
    ] {
        let want = ask(primary, name, record_type).await?;
        ensure!(
            !want.1.is_empty(),
            "the primary has no {name} {record_type}"
        );
        eventually(
            &format!("the secondary answers {name} {record_type} as the primary"),
            CONVERGE,
            || async {
                let got = ask(secondary, name, record_type).await?;
                Ok((got == want).then_some(()))
            },
        )
        .await?;
    }
    // A change reaches the secondary (NOTIFY, then a transfer).
    world.place("web", &[(2, &["127.0.6.2"])]).await?;
    wait_answer(primary, &www, RecordType::A, &["127.0.6.2"]).await?;
    wait_answer(secondary, &www, RecordType::A, &["127.0.6.2"]).await?;

    // Transfers: without the key refused, with a wrong key refused, with
    // the key the zone.
    ensure!(
        unsigned_axfr(primary, zone).await? == ResponseCode::Refused,
        "an unsigned AXFR was not REFUSED"
    );
    let wrong = Rfc2136Client::new(
        primary,
        zone,
        &key(env, "d3Jvbmcgc2VjcmV0IGZvciB0aGUgZTJlIHRlc3Q=")?,
        DNS_TIMEOUT,
    )?;
    ensure!(
        wrong.transfer_zone().await.is_err(),
        "an AXFR signed with a wrong key went through"
    );
    signed_transfer_has(env, primary, zone, "127.0.6.2")
        .await
        .with_context(|| www.clone())?;

    // Outside the zone: REFUSED, the parent zone included.
    for outside in ["www.example.org", env.dns("DNS_ZONE")] {
        let (rcode, _) = ask(primary, outside, RecordType::A).await?;
        ensure!(
            rcode == ResponseCode::Refused,
            "{outside}: {rcode}, not REFUSED"
        );
    }
    // Inside the zone, a name that does not exist: NXDOMAIN.
    let (rcode, _) = ask(primary, &world.host("nothing"), RecordType::A).await?;
    ensure!(rcode == ResponseCode::NXDomain, "{rcode}, not NXDOMAIN");
    Ok(())
}

/// The objects of config/glbc with the component config/glbc/embedded,
/// the zone and the TSIG key set as config/glbc/kustomization.yaml says.
fn render_embedded_config(env: &TestEnv, dir: &std::path::Path) -> anyhow::Result<String> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("tsig.secret"), env.dns("DNS_TSIG_SECRET"))?;
    let config =
        std::fs::canonicalize(std::path::Path::new(env!("CARGO_MANIFEST_DIR")))?.join("config");
    // kustomize takes only relative paths to bases and components
    let up = "../".repeat(std::fs::canonicalize(dir)?.components().count() - 1);
    let config = format!(
        "{up}{}",
        config.display().to_string().trim_start_matches('/')
    );
    let zone = env.dns("DNS_EMBEDDED_ZONE").trim_end_matches('.');
    let kustomization = format!(
        r#"apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [{config}/glbc]
components: [{config}/glbc/embedded]
patches:
  - target: {{kind: Deployment, name: kcp-ingress-glbc}}
    patch: |-
      - {{op: replace, path: /spec/template/spec/containers/0/args/11, value: {zone}}}
      - {{op: replace, path: /spec/template/spec/containers/0/args/13, value: {key}}}
      - {{op: replace, path: /spec/template/spec/containers/0/args/15, value: {algorithm}}}
secretGenerator:
  - name: kcp-ingress-glbc-tsig
    namespace: kcp-ingress-system
    behavior: replace
    files: [secret=tsig.secret]
    options: {{disableNameSuffixHash: true}}
"#,
        key = env.dns("DNS_TSIG_KEY_NAME"),
        algorithm = env.dns("DNS_TSIG_ALGORITHM"),
    );
    std::fs::write(dir.join("kustomization.yaml"), kustomization)?;
    kubectl(&["kustomize", &dir.to_string_lossy()], "")
}

/// config/glbc with the component config/glbc/embedded, as its comments
/// say to use it: the Deployment's container listens for DNS where its
/// ports dns-udp and dns-tcp say, the Service kcp-ingress-glbc-dns serves
/// port 53 (UDP and TCP) from those ports of the glbc's pods, the control
/// plane accepts the objects, and the glbc run with the Deployment's very
/// args (only the listen and admin addresses moved to loopback ports, plus
/// a kubeconfig: there is no kubelet) answers for the zone, with the TSIG
/// key from the rendered Secret and the Lease of config/glbc.
pub async fn the_embedded_component_serves_as_rendered(env: &TestEnv) -> anyhow::Result<()> {
    let world = World::new(env, "config").await?;
    world.clusters(&[(None, None)]).await?;
    let rendered = render_embedded_config(env, &env.dir().join("embedded-config"))?;
    let mut objects = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&rendered) {
        let value =
            serde_json::to_value(<serde_yaml::Value as serde::Deserialize>::deserialize(doc)?)?;
        if !value.is_null() {
            objects.push(value);
        }
    }
    let find = |kind: &str, name: &str| {
        objects
            .iter()
            .find(|o| o["kind"] == json!(kind) && o["metadata"]["name"] == json!(name))
            .with_context(|| format!("no {kind} {name} rendered"))
    };
    let deployment = find("Deployment", "kcp-ingress-glbc")?;
    let service = find("Service", "kcp-ingress-glbc-dns")?;
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let mut args: Vec<String> = container["args"]
        .as_array()
        .context("no args")?
        .iter()
        .map(|a| a.as_str().map(str::to_string).context("a non-string arg"))
        .collect::<anyhow::Result<_>>()?;
    ensure!(
        !args.iter().any(|a| a == "--dns-server"),
        "the embedded glbc keeps --dns-server: {args:?}"
    );
    let flag = |args: &[String], name: &str| -> anyhow::Result<usize> {
        args.iter()
            .position(|a| a == name)
            .map(|i| i + 1)
            .filter(|i| *i < args.len())
            .with_context(|| format!("no {name} in {args:?}"))
    };
    ensure!(
        args[flag(&args, "--dns-provider")?] == "embedded",
        "not the embedded provider: {args:?}"
    );
    let listen: SocketAddr = args[flag(&args, "--dns-listen")?].parse()?;
    // The container's DNS ports are where it listens; the Service maps 53
    // to them, for the glbc's pods.
    let ports = container["ports"]
        .as_array()
        .context("no container ports")?;
    for (port_name, protocol) in [("dns-udp", "UDP"), ("dns-tcp", "TCP")] {
        let port = ports
            .iter()
            .find(|p| p["name"] == json!(port_name))
            .with_context(|| format!("no container port {port_name}"))?;
        ensure!(
            port["containerPort"] == json!(listen.port()) && port["protocol"] == json!(protocol),
            "container port {port_name} is {port}, the glbc listens on {listen}"
        );
        let served = service["spec"]["ports"]
            .as_array()
            .context("a Service without ports")?
            .iter()
            .any(|p| {
                p["port"] == json!(53)
                    && p["protocol"] == json!(protocol)
                    && p["targetPort"] == json!(port_name)
            });
        ensure!(
            served,
            "the Service does not serve 53/{protocol} from {port_name}: {service}"
        );
    }
    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    let selector = service["spec"]["selector"]
        .as_object()
        .context("a Service without selector")?;
    ensure!(
        !selector.is_empty() && selector.iter().all(|(k, v)| &pod_labels[k] == v),
        "the Service's selector {selector:?} does not select the glbc's pods {pod_labels}"
    );

    // Everything but the Deployment in the control plane (the namespace
    // comes from config/controller, not created here by config/glbc).
    let namespaces: Api<Namespace> = Api::all(world.client.clone());
    if namespaces.get_opt("kcp-ingress-system").await?.is_none() {
        namespaces
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": "kcp-ingress-system"}}))?,
            )
            .await?;
    }
    let mut yaml = String::new();
    for o in objects.iter().filter(|o| o["kind"] != json!("Deployment")) {
        yaml.push_str("---\n");
        yaml.push_str(&serde_yaml::to_string(o)?);
    }
    let kubeconfig = env.kubeconfig("control-plane");
    let kubeconfig = kubeconfig.to_str().context("kubeconfig path")?;
    kubectl(
        &[
            "--kubeconfig",
            kubeconfig,
            "apply",
            "--server-side",
            "-f",
            "-",
        ],
        &yaml,
    )?;

    // The Deployment's args, with loopback addresses and this test's scope.
    let port = env.dns("DNS_EMBEDDED_PORT");
    let at = flag(&args, "--dns-listen")?;
    args[at] = format!("127.0.0.1:{port}");
    // Any free port, chosen by the process (one chosen here could be taken
    // before it binds).
    let at = flag(&args, "--admin-address")?;
    args[at] = "127.0.0.1:0".to_string();
    let owner = format!("e2e-{}", world.tag);
    let threshold = format!("{}s", THRESHOLD.as_secs());
    args.extend(
        [
            "--kubeconfig",
            kubeconfig,
            "--namespace",
            &world.ns,
            "--owner-id",
            &owner,
            "--health-threshold",
            &threshold,
        ]
        .map(str::to_string),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let _glbc = env.spawn_kcp_ingress("glbc-embedded-config", &args)?;

    let www = world.host("www");
    world
        .root("web", std::slice::from_ref(&www), &[(1, &["127.0.7.1"])])
        .await?;
    let dns = server(port)?;
    wait_answer(dns, &www, RecordType::A, &["127.0.7.1"]).await?;
    world
        .wait_condition("web", labels::conditions::DNS_PUBLISHED, "True")
        .await?;
    // The key of the rendered Secret signs transfers.
    let zone = env.dns("DNS_EMBEDDED_ZONE");
    signed_transfer_has(env, dns, zone, "127.0.7.1")
        .await
        .with_context(|| www.clone())?;
    Ok(())
}
