//! Queries per second of the embedded DNS server against BIND serving the
//! same zone, in the same run: a second glbc with `--dns-provider
//! embedded` (on the environment's DNS_EMBEDDED_PORT) publishes the same
//! plan as the glbc that updates BIND; once both answer the same records
//! for a host, a bounded loop of A queries over loopback (a few UDP
//! sockets, one query in flight each) is timed against each server. The
//! second glbc is a standby (a Lease held by nobody else, renewed by
//! nobody, made to last the run): it answers, and writes nothing.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RecordType};
use tokio::net::UdpSocket;

use crate::env::{Env, Proc};

/// The Lease that keeps the second glbc a standby.
const LEASE: &str = "bench-embedded-standby";

/// Creates [`LEASE`], held for an hour by an identity no process has.
async fn hold_lease(env: &Env) -> anyhow::Result<()> {
    use k8s_openapi::api::coordination::v1::Lease;
    use k8s_openapi::api::core::v1::Namespace;
    use kube::api::{Api, PostParams};
    let namespaces: Api<Namespace> = Api::all(env.cp.clone());
    if namespaces.get_opt("kcp-ingress-system").await?.is_none() {
        namespaces
            .create(
                &PostParams::default(),
                &serde_json::from_value(
                    serde_json::json!({"metadata": {"name": "kcp-ingress-system"}}),
                )?,
            )
            .await?;
    }
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let lease: Lease = serde_json::from_value(serde_json::json!({
        "metadata": {"name": LEASE, "namespace": "kcp-ingress-system"},
        "spec": {
            "holderIdentity": "bench-nobody",
            "leaseDurationSeconds": 3600,
            "acquireTime": now,
            "renewTime": now,
        },
    }))?;
    let leases: Api<Lease> = Api::namespaced(env.cp.clone(), "kcp-ingress-system");
    if leases.get_opt(LEASE).await?.is_none() {
        leases.create(&PostParams::default(), &lease).await?;
    }
    Ok(())
}

/// Sockets querying at once.
const SOCKETS: usize = 4;
/// How long one answer may take before the query counts as lost.
const QUERY_TIMEOUT: Duration = Duration::from_secs(1);

/// The outcome.
#[derive(Debug, Clone)]
pub struct Qps {
    pub queries: usize,
    pub bind: f64,
    pub embedded: f64,
    /// Queries without an answer (both servers together).
    pub lost: usize,
}

/// Measures both servers with `queries` queries each for `host` (a name
/// the glbc publishes), giving up after `deadline`.
pub async fn dns_qps(
    env: &Env,
    host: &str,
    queries: usize,
    deadline: Duration,
) -> anyhow::Result<Qps> {
    let bind: SocketAddr = format!("127.0.0.1:{}", env.var("DNS_PORT")).parse()?;
    let port = env.var("DNS_EMBEDDED_PORT");
    let embedded: SocketAddr = format!("127.0.0.1:{port}")
        .parse()
        .context("DNS_EMBEDDED_PORT")?;
    let secret_file = env.dir.join("tsig.secret");
    let cp = env
        .dir
        .join("control-plane.kubeconfig")
        .to_string_lossy()
        .to_string();
    let args: Vec<String> = [
        "glbc",
        "--kubeconfig",
        &cp,
        "--dns-provider",
        "embedded",
        "--dns-listen",
        &embedded.to_string(),
        "--zone",
        "kcp-ingress.test",
        "--tsig-key-name",
        env.var("DNS_TSIG_KEY_NAME"),
        "--tsig-algorithm",
        env.var("DNS_TSIG_ALGORITHM"),
        "--tsig-secret-file",
        &secret_file.to_string_lossy(),
        "--leader-elect",
        "--lease-name",
        LEASE,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    hold_lease(env).await?;
    let mut glbc = Proc::spawn(
        "glbc-embedded",
        &Env::kcp_ingress_bin(),
        &args,
        &env.log("glbc-embedded"),
        &[("RUST_LOG", "info")],
    )?;
    let name = Name::from_ascii(format!("{}.", host.trim_end_matches('.')))?;
    let outcome = async {
        let until = Instant::now() + deadline;
        loop {
            let (a, b) = (answers(bind, &name).await, answers(embedded, &name).await);
            if let (Ok(a), Ok(b)) = (&a, &b)
                && !a.is_empty()
                && a == b
            {
                break;
            }
            if Instant::now() > until {
                bail!("the embedded server does not answer {host} as BIND does: {a:?} / {b:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (bind_qps, lost_bind) = measure(bind, &name, queries).await?;
        let (embedded_qps, lost_embedded) = measure(embedded, &name, queries).await?;
        Ok(Qps {
            queries,
            bind: bind_qps,
            embedded: embedded_qps,
            lost: lost_bind + lost_embedded,
        })
    }
    .await;
    glbc.terminate(Duration::from_secs(10));
    outcome
}

fn message(id: u16, name: &Name) -> anyhow::Result<Vec<u8>> {
    let mut message = Message::query();
    message.metadata.id = id;
    message.metadata.recursion_desired = false;
    let mut q = Query::new();
    q.set_name(name.clone())
        .set_query_class(DNSClass::IN)
        .set_query_type(RecordType::A);
    message.add_query(q);
    Ok(message.to_vec()?)
}

/// The A records `server` answers for `name`, as a set.
async fn answers(server: SocketAddr, name: &Name) -> anyhow::Result<BTreeSet<String>> {
    let socket = UdpSocket::bind("127.0.0.1:0").await?;
    socket.connect(server).await?;
    socket.send(&message(1, name)?).await?;
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(QUERY_TIMEOUT, socket.recv(&mut buf)).await??;
    let reply = Message::from_vec(&buf[..n])?;
    if reply.metadata.response_code != ResponseCode::NoError {
        bail!("{}", reply.metadata.response_code);
    }
    Ok(reply
        .answers
        .iter()
        .filter(|r| r.record_type() == RecordType::A)
        .map(|r| r.data.to_string())
        .collect())
}

/// `queries` queries spread over [`SOCKETS`] sockets: answers per second
/// of wall time, and the queries that got no answer.
async fn measure(server: SocketAddr, name: &Name, queries: usize) -> anyhow::Result<(f64, usize)> {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for s in 0..SOCKETS {
        let share = queries / SOCKETS + usize::from(s < queries % SOCKETS);
        let name = name.clone();
        tasks.push(tokio::spawn(async move {
            let socket = UdpSocket::bind("127.0.0.1:0").await?;
            socket.connect(server).await?;
            let mut buf = vec![0u8; 4096];
            let (mut answered, mut lost) = (0usize, 0usize);
            for i in 0..share {
                let id = (i % 65_536) as u16;
                socket.send(&message(id, &name)?).await?;
                loop {
                    match tokio::time::timeout(QUERY_TIMEOUT, socket.recv(&mut buf)).await {
                        Ok(Ok(n)) => {
                            // A late answer to an earlier query: read on.
                            if n >= 2 && u16::from_be_bytes([buf[0], buf[1]]) != id {
                                continue;
                            }
                            answered += 1;
                        }
                        Ok(Err(err)) => return Err(anyhow::Error::from(err)),
                        Err(_) => lost += 1,
                    }
                    break;
                }
            }
            anyhow::Ok((answered, lost))
        }));
    }
    let (mut answered, mut lost) = (0, 0);
    for task in tasks {
        let (a, l) = task.await??;
        answered += a;
        lost += l;
    }
    Ok((answered as f64 / start.elapsed().as_secs_f64(), lost))
}
