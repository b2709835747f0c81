//! `make bench PEERS=1`: kcp-ingress side by side with Karmada (v1.18.2,
//! webhook + controller-manager + scheduler, push mode) and external-dns
//! (v0.22.0, ingress source, rfc2136 provider, TXT registry) on the same
//! test environment: the same servers (etcd, kube-apiservers, BIND 9), the
//! same data plane (Traefik per cluster), the same roots and backend
//! Service, the same counters. The control plane's kube-apiserver plays
//! karmada-apiserver (see hack/karmada-env.sh).

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};

use crate::env::{CLUSTERS, Env, Proc, Stack, free_port, hack};
use crate::observe::median;
use crate::scenarios::{self, Bulk, ROOT_LABEL};

/// The tool cache directory of a peer (as hack/lib/tools.sh names it).
fn tool(name: &str, binary: &str) -> anyhow::Result<PathBuf> {
    let out = std::process::Command::new(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("hack/build-peers.sh"),
    )
    .arg("--print-dir")
    .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let dir = text
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}=")))
        .with_context(|| format!("hack/build-peers.sh --print-dir names no {name}"))?;
    let path = PathBuf::from(dir).join(binary);
    if !path.exists() {
        bail!(
            "{} is missing: build the peers with hack/build-peers.sh (make tools-peers)",
            path.display()
        );
    }
    Ok(path)
}

/// The flags that raise Karmada's client rate limits and concurrency
/// ("tuned"): the controller-manager's.
pub const TUNED_CONTROLLER_MANAGER: &[&str] = &[
    "--kube-api-qps=1000",
    "--kube-api-burst=2000",
    "--cluster-api-qps=1000",
    "--cluster-api-burst=2000",
    "--rate-limiter-qps=1000",
    "--rate-limiter-bucket-size=2000",
    "--concurrent-work-syncs=20",
    "--concurrent-resourcebinding-syncs=20",
    "--concurrent-resource-template-syncs=20",
];

/// The scheduler's.
pub const TUNED_SCHEDULER: &[&str] = &[
    "--kube-api-qps=1000",
    "--kube-api-burst=2000",
    "--rate-limiter-qps=1000",
    "--rate-limiter-bucket-size=2000",
];

/// external-dns's flags besides the kubeconfig, the DNS port and the key.
pub const EXTERNAL_DNS: &[&str] = &[
    "--source=ingress",
    "--provider=rfc2136",
    "--rfc2136-host=127.0.0.1",
    "--rfc2136-zone=kcp-ingress.test",
    "--rfc2136-axfr",
    "--domain-filter=kcp-ingress.test",
    "--registry=txt",
    "--txt-owner-id=bench",
    "--policy=sync",
    "--events",
    "--min-event-sync-interval=5s",
    "--rfc2136-batch-change-size=50",
    // the glbc's default TTL (60 s)
    "--rfc2136-min-ttl=60s",
];

fn local(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

fn port() -> anyhow::Result<u16> {
    free_port(&[IpAddr::V4(Ipv4Addr::LOCALHOST)])
}

/// Karmada's objects (hack/karmada-env.sh), its webhook, controller-manager
/// and scheduler, and external-dns; returns once every member Cluster is Ready.
pub async fn start_karmada(env: &mut Env, tuned: bool) -> anyhow::Result<()> {
    let kdir = env.dir.join("karmada");
    let (env_dir, kdir_s) = (
        env.dir.to_string_lossy().to_string(),
        kdir.to_string_lossy().to_string(),
    );
    tokio::task::spawn_blocking({
        let (env_dir, kdir_s) = (env_dir.clone(), kdir_s.clone());
        move || {
            hack(
                "karmada-env.sh",
                &["prepare", "--env-dir", &env_dir, "--dir", &kdir_s],
                Duration::from_secs(180),
            )
        }
    })
    .await??;
    let kubeconfig = env
        .dir
        .join("control-plane.kubeconfig")
        .to_string_lossy()
        .to_string();
    let webhook_port = port()?;
    let webhook = vec![
        format!("--kubeconfig={kubeconfig}"),
        "--bind-address=127.0.0.1".into(),
        format!("--secure-port={webhook_port}"),
        format!("--cert-dir={kdir_s}/certs"),
        format!("--metrics-bind-address={}", local(port()?)),
        format!("--health-probe-bind-address={}", local(port()?)),
    ];
    env.peers.push(Proc::spawn(
        "karmada-webhook",
        &tool("karmada", "karmada-webhook")?,
        &webhook,
        &env.log("karmada-webhook"),
        &[],
    )?);
    let t0 = Instant::now();
    while tokio::net::TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], webhook_port)))
        .await
        .is_err()
    {
        if t0.elapsed() > Duration::from_secs(60) {
            bail!(
                "karmada-webhook did not listen on {webhook_port} within 60 s; see {}",
                env.log("karmada-webhook").display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::task::spawn_blocking({
        let (env_dir, kdir_s) = (env_dir.clone(), kdir_s.clone());
        move || {
            hack(
                "karmada-env.sh",
                &[
                    "policies",
                    "--env-dir",
                    &env_dir,
                    "--dir",
                    &kdir_s,
                    "--webhook-port",
                    &webhook_port.to_string(),
                ],
                Duration::from_secs(120),
            )
        }
    })
    .await??;
    let mut cm = vec![
        format!("--kubeconfig={kubeconfig}"),
        "--leader-elect=false".into(),
        "--enable-cluster-resource-modeling=false".into(),
        "--cluster-status-update-frequency=10s".into(),
        format!("--metrics-bind-address={}", local(port()?)),
        format!("--health-probe-bind-address={}", local(port()?)),
    ];
    let mut scheduler = vec![
        format!("--kubeconfig={kubeconfig}"),
        "--leader-elect=false".into(),
        "--enable-scheduler-estimator=false".into(),
        format!("--metrics-bind-address={}", local(port()?)),
        format!("--health-probe-bind-address={}", local(port()?)),
    ];
    if tuned {
        cm.extend(TUNED_CONTROLLER_MANAGER.iter().map(|f| f.to_string()));
        scheduler.extend(TUNED_SCHEDULER.iter().map(|f| f.to_string()));
    }
    env.peers.push(Proc::spawn(
        "karmada-controller-manager",
        &tool("karmada", "karmada-controller-manager")?,
        &cm,
        &env.log("karmada-controller-manager"),
        &[],
    )?);
    env.peers.push(Proc::spawn(
        "karmada-scheduler",
        &tool("karmada", "karmada-scheduler")?,
        &scheduler,
        &env.log("karmada-scheduler"),
        &[],
    )?);
    env.peers.push(spawn_external_dns(env, "true")?);
    wait_members_ready(env, Duration::from_secs(120)).await
}

/// external-dns publishing the Ingresses of the control plane labelled
/// [`ROOT_LABEL`]=`label`.
pub fn spawn_external_dns(env: &Env, label: &str) -> anyhow::Result<Proc> {
    let kubeconfig = env
        .dir
        .join("control-plane.kubeconfig")
        .to_string_lossy()
        .to_string();
    let mut edns: Vec<String> = EXTERNAL_DNS.iter().map(|f| f.to_string()).collect();
    edns.extend([
        format!("--kubeconfig={kubeconfig}"),
        format!("--rfc2136-port={}", env.var("DNS_PORT")),
        format!("--rfc2136-tsig-keyname={}", env.var("DNS_TSIG_KEY_NAME")),
        format!("--rfc2136-tsig-secret={}", env.var("DNS_TSIG_SECRET")),
        format!(
            "--rfc2136-tsig-secret-alg={}",
            env.var("DNS_TSIG_ALGORITHM").trim_end_matches('.')
        ),
        format!("--label-filter={ROOT_LABEL}={label}"),
        format!("--metrics-address={}", local(port()?)),
    ]);
    Proc::spawn(
        "external-dns",
        &tool("external-dns", "external-dns")?,
        &edns,
        &env.log("external-dns"),
        &[],
    )
}

/// Until every Karmada Cluster has the condition Ready=True.
async fn wait_members_ready(env: &Env, deadline: Duration) -> anyhow::Result<()> {
    let gvk = GroupVersionKind::gvk("cluster.karmada.io", "v1alpha1", "Cluster");
    let api: Api<DynamicObject> = Api::all_with(env.cp.clone(), &ApiResource::from_gvk(&gvk));
    let t0 = Instant::now();
    loop {
        let list = api.list(&Default::default()).await?;
        let ready = list
            .items
            .iter()
            .filter(|c| {
                c.data["status"]["conditions"].as_array().is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
            })
            .count();
        if ready == CLUSTERS {
            return Ok(());
        }
        if t0.elapsed() > deadline {
            bail!(
                "{ready} of {CLUSTERS} Karmada Clusters Ready after {deadline:?}; see {}",
                env.log("karmada-controller-manager").display()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The side-by-side runs, by system.
#[derive(Default)]
pub struct PeerResults {
    pub rows: Vec<(Stack, Vec<Bulk>)>,
    /// The DNS leg: roots, the glbc's, external-dns's.
    pub dns_leg: Option<(usize, Leg, Leg)>,
}

impl PeerResults {
    pub fn push(&mut self, stack: Stack, bulk: Bulk) {
        match self.rows.iter_mut().find(|(s, _)| *s == stack) {
            Some((_, runs)) => runs.push(bulk),
            None => self.rows.push((stack, vec![bulk])),
        }
    }
}

/// One bulk run of `n` roots on a fresh environment running `stack`.
pub async fn bulk_run(
    data_plane: crate::env::DataPlane,
    stack: Stack,
    n: usize,
    tag: &str,
    deadline: Duration,
    versions: Option<&mut Vec<(String, String)>>,
) -> anyhow::Result<Bulk> {
    eprintln!("bench: peers: {} bulk {n} ({tag})", stack.name());
    let mut env = Env::up_with(tag, data_plane, stack).await?;
    if let Some(v) = versions {
        // Before the peers' (pushed already).
        let mut all = crate::versions_of(&env).await;
        all.append(v);
        *v = all;
    }
    let (bulk, obs) = scenarios::bulk(&env, n, deadline).await?;
    eprintln!(
        "bench: peers: {}: DNS {:.1}s, copies {:.1}s, merged {:.1}s; {}; writes per apiserver {:?}; {} updates",
        stack.name(),
        bulk.dns,
        bulk.downstream,
        bulk.merged,
        bulk.invalid.as_deref().unwrap_or("valid"),
        bulk.writes
            .iter()
            .map(scenarios::writes_total)
            .collect::<Vec<_>>(),
        bulk.updates
    );
    std::fs::write(
        env.dir.join("writes.txt"),
        scenarios::breakdown(&bulk.writes),
    )?;
    drop(obs);
    env.down();
    Ok(bulk)
}

/// A failed run (the environment did not come up, ...) as an invalid row.
pub fn or_failed(run: anyhow::Result<Bulk>) -> Bulk {
    run.unwrap_or_else(|err| {
        eprintln!("bench: peers: run failed: {err:#}");
        Bulk {
            created: f64::NAN,
            downstream: f64::NAN,
            merged: f64::NAN,
            dns: f64::NAN,
            invalid: Some(format!("failed: {err:#}")),
            ..Bulk::default()
        }
    })
}

fn s(v: f64) -> String {
    if v.is_nan() {
        "–".into()
    } else if v < 10.0 {
        format!("{v:.2} s")
    } else {
        format!("{v:.1} s")
    }
}

/// The side-by-side table.
pub fn render(n: usize, r: &PeerResults) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "| system ({n} roots × {CLUSTERS} clusters) | runs: valid / all | created / copies in all clusters / merged / in DNS (median of valid runs) | roots/s to DNS | API writes per root: control plane / clusters 1, 2, 3 | API reads per root: control plane / clusters | DNS UPDATEs | CPU s (until in DNS) | peak RSS |"
    );
    let _ = writeln!(t, "| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    let mut dns_of = Vec::new();
    for (stack, runs) in &r.rows {
        let valid: Vec<&Bulk> = runs.iter().filter(|b| b.invalid.is_none()).collect();
        let m = |f: &dyn Fn(&Bulk) -> f64| median(&valid.iter().map(|b| f(b)).collect::<Vec<_>>());
        let per_root = |i: usize, f: fn(&crate::observe::Writes) -> u64| {
            m(&|b| b.writes.get(i).map_or(0, f) as f64 / n as f64)
        };
        let dns = m(&|b| b.dns);
        dns_of.push((*stack, dns));
        let cpu: Vec<String> = valid
            .first()
            .map(|b| {
                b.cpu
                    .iter()
                    .enumerate()
                    .filter(|(_, (role, _))| role != "benchmark")
                    .map(|(i, (role, _))| {
                        format!("{role} {:.0}", m(&|b| b.cpu.get(i).map_or(0.0, |c| c.1)))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let rss: Vec<String> = valid
            .first()
            .map(|b| {
                b.rss
                    .iter()
                    .enumerate()
                    .map(|(i, (name, _))| {
                        format!(
                            "{name} {:.0} MiB",
                            m(&|b| b.rss.get(i).map_or(0, |x| x.1) as f64) / 1024.0
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let _ = writeln!(
            t,
            "| {} | {} / {} | {} / {} / {} / {} | {:.0} | {:.1} / {:.1}, {:.1}, {:.1} | {:.1} / {:.1}, {:.1}, {:.1} | {:.0} | {} | {} |",
            stack.name(),
            valid.len(),
            runs.len(),
            s(m(&|b| b.created)),
            s(m(&|b| b.downstream)),
            s(m(&|b| b.merged)),
            s(dns),
            n as f64 / dns,
            per_root(0, scenarios::writes_total),
            per_root(1, scenarios::writes_total),
            per_root(2, scenarios::writes_total),
            per_root(3, scenarios::writes_total),
            per_root(0, scenarios::reads_total),
            per_root(1, scenarios::reads_total),
            per_root(2, scenarios::reads_total),
            per_root(3, scenarios::reads_total),
            m(&|b| b.updates as f64),
            cpu.join(", "),
            rss.join(", "),
        );
    }
    let kcp = dns_of
        .iter()
        .find(|(s, _)| *s == Stack::KcpIngress)
        .map(|(_, d)| *d);
    if let Some(kcp) = kcp {
        for (stack, dns) in &dns_of {
            if *stack != Stack::KcpIngress && !dns.is_nan() {
                let _ = writeln!(
                    t,
                    "\nTo DNS, {} / kcp-ingress: {:.1}×",
                    stack.name(),
                    dns / kcp
                );
            }
        }
    }
    let _ = writeln!(
        t,
        "\nChecks per run (after DNS was complete, or the deadline):"
    );
    for (stack, runs) in &r.rows {
        for (i, b) in runs.iter().enumerate() {
            let _ = writeln!(
                t,
                "- {} run {}: {} of {n} roots with a copy in every cluster, {} with every cluster's address in their status, {} published with every address (zone transfer), {} answered by BIND with every address{}",
                stack.name(),
                i + 1,
                b.copies,
                b.merged_count,
                b.published,
                b.answered,
                match &b.invalid {
                    Some(why) if why.starts_with("failed") => format!(" — **invalid: {why}**"),
                    Some(_) => " — **invalid**".to_string(),
                    None => String::new(),
                }
            );
        }
    }
    if let Some((n, glbc, edns)) = &r.dns_leg {
        let _ = writeln!(t, "\nDNS leg alone:\n");
        t.push_str(&render_dns_leg(*n, glbc, edns));
    }
    let _ = writeln!(
        t,
        "\nKarmada tuned: karmada-controller-manager {}; karmada-scheduler {}.",
        TUNED_CONTROLLER_MANAGER.join(" "),
        TUNED_SCHEDULER.join(" ")
    );
    let _ = writeln!(
        t,
        "external-dns: {} --label-filter={ROOT_LABEL}=true (and the port, key and kubeconfig).",
        EXTERNAL_DNS.join(" ")
    );
    t
}

// ---------------------------------------------------------------- the DNS leg

/// One publisher's DNS leg.
#[derive(Debug, Clone, Default)]
pub struct Leg {
    /// Seconds from the publisher's start until every host was published
    /// with every address (NaN: not within the deadline).
    pub all: f64,
    pub published: usize,
    /// UPDATE messages BIND applied meanwhile.
    pub updates: u64,
    /// Seconds from a root's merged status to BIND answering its host with
    /// every address, one root at a time.
    pub single: Vec<f64>,
    pub cpu: f64,
    pub rss_kib: u64,
}

/// The DNS leg: the glbc, then external-dns, each publishing `n` roots
/// whose status is merged already, on one environment (kcp-ingress's
/// controller, no glbc). The glbc's roots are merged by the controller (its
/// input, the GlobalIngress, is kept by it); external-dns's roots get their
/// merged status written by the benchmark, with the controller stopped.
pub async fn dns_leg(
    data_plane: crate::env::DataPlane,
    n: usize,
    singles: usize,
    deadline: Duration,
) -> anyhow::Result<(Leg, Leg)> {
    use k8s_openapi::api::networking::v1::Ingress;
    use kube::api::{Patch, PatchParams, PostParams};

    let mut env = Env::up_with("peers-dnsleg", data_plane, Stack::ControllerOnly).await?;
    let obs = crate::observe::Observers::start(&env);
    let dns = crate::observe::Dns::of(&env)?;
    let api: Api<Ingress> = Api::namespaced(env.cp.clone(), crate::env::NS);
    let create = |name: String, host: String, label: &'static str| {
        let api = api.clone();
        async move {
            let mut root = scenarios::root(&name, &host, "/");
            root.metadata
                .labels
                .get_or_insert_with(Default::default)
                .insert(ROOT_LABEL.into(), label.into());
            api.create(&PostParams::default(), &root)
                .await
                .with_context(|| format!("creating {name}"))?;
            anyhow::Ok(())
        }
    };
    let suffix_g = format!("glbc.dnsleg.{}", dns.zone);
    let names: Vec<String> = (0..n).map(|i| format!("g{i}")).collect();
    in_flight(
        names
            .iter()
            .map(|name| create(name.clone(), format!("{name}.{suffix_g}"), "true")),
    )
    .await?;
    let t0 = Instant::now();
    loop {
        let (_, _, merged, _) = obs.progress(&names);
        if merged == n {
            break;
        }
        if t0.elapsed() > deadline {
            bail!("DNS leg: only {merged} of {n} roots merged within {deadline:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("bench: DNS leg: {n} roots merged by the controller; starting the glbc");
    // The glbc.
    let mut glbc = Leg::default();
    let before = dns.stat("UpdateDone").await?;
    let t0 = Instant::now();
    let proc = env.spawn_glbc()?;
    (glbc.all, glbc.published) = until_published(&dns, &suffix_g, n, deadline).await?;
    glbc.updates = dns.stat("UpdateDone").await?.saturating_sub(before);
    let _ = t0;
    let want: Vec<IpAddr> = (1..=CLUSTERS)
        .map(|k| IpAddr::V4(crate::env::lb_address(k)))
        .collect();
    for i in 0..singles {
        let name = format!("gs{i}");
        let host = format!("{name}.{suffix_g}");
        create(name.clone(), host.clone(), "true").await?;
        let t = Instant::now();
        let merged_at = loop {
            if let Some(at) = obs.merged(&name) {
                break at;
            }
            if t.elapsed() > Duration::from_secs(60) {
                bail!("DNS leg: {name} not merged within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        loop {
            if dns.addresses(&host).await.is_ok_and(|a| a == want) {
                glbc.single.push(
                    Instant::now()
                        .saturating_duration_since(merged_at)
                        .as_secs_f64(),
                );
                break;
            }
            if t.elapsed() > Duration::from_secs(60) {
                bail!("DNS leg: {host} not in DNS within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    glbc.cpu = proc.cpu_seconds().unwrap_or(0.0);
    glbc.rss_kib = proc.memory_kib().map_or(0, |m| m.0);
    drop(proc);
    // external-dns, with the controller stopped: the benchmark writes the
    // merged status (every cluster's address) itself.
    drop(env.controller.take());
    let suffix_e = format!("edns.dnsleg.{}", dns.zone);
    let status = serde_json::json!({"status": {"loadBalancer": {"ingress":
        (1..=CLUSTERS).map(|k| serde_json::json!({"ip": crate::env::lb_address(k).to_string()})).collect::<Vec<_>>()
    }}});
    let merge = |name: String| {
        let api = api.clone();
        let status = status.clone();
        async move {
            api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                .await
                .with_context(|| format!("writing the status of {name}"))?;
            anyhow::Ok(())
        }
    };
    let names: Vec<String> = (0..n).map(|i| format!("e{i}")).collect();
    in_flight(
        names
            .iter()
            .map(|name| create(name.clone(), format!("{name}.{suffix_e}"), "dnsleg")),
    )
    .await?;
    in_flight(names.iter().map(|name| merge(name.clone()))).await?;
    let mut edns = Leg::default();
    let before = dns.stat("UpdateDone").await?;
    let proc = spawn_external_dns(&env, "dnsleg")?;
    (edns.all, edns.published) = until_published(&dns, &suffix_e, n, deadline).await?;
    edns.updates = dns.stat("UpdateDone").await?.saturating_sub(before);
    for i in 0..singles {
        let name = format!("es{i}");
        let host = format!("{name}.{suffix_e}");
        create(name.clone(), host.clone(), "dnsleg").await?;
        merge(name.clone()).await?;
        let t = Instant::now();
        loop {
            if dns.addresses(&host).await.is_ok_and(|a| a == want) {
                edns.single.push(t.elapsed().as_secs_f64());
                break;
            }
            if t.elapsed() > Duration::from_secs(90) {
                bail!("DNS leg: {host} not in DNS within 90 s");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    edns.cpu = proc.cpu_seconds().unwrap_or(0.0);
    edns.rss_kib = proc.memory_kib().map_or(0, |m| m.0);
    drop(proc);
    drop(obs);
    env.down();
    Ok((glbc, edns))
}

/// Runs `requests`, 32 at a time (as the bulk scenario creates its roots).
async fn in_flight(
    requests: impl Iterator<Item = impl std::future::Future<Output = anyhow::Result<()>>>,
) -> anyhow::Result<()> {
    use futures::StreamExt;
    futures::stream::iter(requests)
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

/// Seconds until every one of `n` hosts under `suffix` is published with
/// every address (zone transfers), and how many are; NaN after `deadline`.
async fn until_published(
    dns: &crate::observe::Dns,
    suffix: &str,
    n: usize,
    deadline: Duration,
) -> anyhow::Result<(f64, usize)> {
    let t0 = Instant::now();
    loop {
        let (hosts, _) = dns.published(suffix).await?;
        let complete = hosts.values().filter(|c| **c == CLUSTERS).count();
        if complete >= n {
            return Ok((t0.elapsed().as_secs_f64(), complete));
        }
        if t0.elapsed() > deadline {
            return Ok((f64::NAN, complete));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The DNS leg's table.
pub fn render_dns_leg(n: usize, glbc: &Leg, edns: &Leg) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "| publisher ({n} roots, status merged already) | all in DNS | published | UPDATEs | single root, merged → DNS: p50 / max ({} roots) | CPU s | peak RSS |",
        glbc.single.len()
    );
    let _ = writeln!(t, "| --- | --- | --- | --- | --- | --- | --- |");
    for (name, l) in [("kcp-ingress glbc", glbc), ("external-dns", edns)] {
        let max = l.single.iter().copied().fold(f64::NAN, f64::max);
        let _ = writeln!(
            t,
            "| {name} | {} | {} of {n} | {} | {} / {} | {:.1} | {:.0} MiB |",
            s(l.all),
            l.published,
            l.updates,
            s(median(&l.single)),
            s(max),
            l.cpu,
            l.rss_kib as f64 / 1024.0
        );
    }
    t
}
