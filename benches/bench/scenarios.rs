//! The scenarios. Each returns raw samples; `main` turns them into the table.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use hickory_proto::rr::rdata::{A, TXT};
use hickory_proto::rr::{Name, RData, RecordType};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::networking::v1::Ingress;
use kcp_ingress::apis::GlobalIngress;
use kcp_ingress::glbc::dns::rfc2136::RrsetChange;
use kcp_ingress::glbc::records::ownership;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::env::{BACKEND, Env, NS, lb_address};
use crate::observe::{self, Dns, Observers, Writes};
use kcp_ingress::labels;

/// The label every root carries (external-dns publishes only what has it).
pub const ROOT_LABEL: &str = "bench.kcp-ingress.dev/root";

/// A root Ingress: one host, one path, the shared backend Service.
pub fn root(name: &str, host: &str, path: &str) -> Ingress {
    placed_root(name, host, path, None)
}

/// As [`root`], with a `kcp-ingress.dev/placement` selector if given.
pub fn placed_root(name: &str, host: &str, path: &str, placement: Option<&str>) -> Ingress {
    let mut metadata = json!({"name": name, "namespace": NS, "labels": {ROOT_LABEL: "true"}});
    if let Some(selector) = placement {
        metadata["annotations"] = json!({ (labels::PLACEMENT_ANNOTATION): selector });
    }
    serde_json::from_value(json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": metadata,
        "spec": {"rules": [rule(host, path)]},
    }))
    .expect("a valid Ingress")
}

/// Where the roots of a bulk run go: `per_root` of the `clusters` clusters
/// each, consecutive ones (root `i` on clusters `i+1`, `i+2`, ... modulo
/// `clusters`), so that every cluster gets the same share. Each Cluster
/// carries `region=local-K`, so a root's placement is what a user would
/// write to pick regions: `region in (local-4,local-5,local-6)`. With
/// `per_root == clusters`, no placement annotation (every cluster).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spread {
    pub clusters: usize,
    pub per_root: usize,
}

impl Spread {
    /// Every root on every cluster (the bulk scenario).
    pub fn everywhere(clusters: usize) -> Self {
        Self {
            clusters,
            per_root: clusters,
        }
    }

    /// The clusters (1-based) root `i` is placed on.
    pub fn clusters_of(&self, i: usize) -> Vec<usize> {
        if self.per_root >= self.clusters {
            return (1..=self.clusters).collect();
        }
        let mut on: Vec<usize> = (0..self.per_root)
            .map(|j| (i + j) % self.clusters + 1)
            .collect();
        on.sort_unstable();
        on
    }

    /// Root `i`'s placement selector (none: every cluster).
    pub fn selector(&self, i: usize) -> Option<String> {
        (self.per_root < self.clusters).then(|| {
            let regions: Vec<String> = self
                .clusters_of(i)
                .iter()
                .map(|k| format!("local-{k}"))
                .collect();
            format!("region in ({})", regions.join(","))
        })
    }

    /// The DNS answer root `i` should get: its clusters' addresses, sorted.
    pub fn addresses_of(&self, i: usize) -> Vec<IpAddr> {
        let mut out: Vec<IpAddr> = self
            .clusters_of(i)
            .into_iter()
            .map(|k| IpAddr::V4(lb_address(k)))
            .collect();
        out.sort();
        out
    }
}

/// The roots of a bulk run: `n` roots named `<prefix><i>`, with hosts
/// `<prefix><i>.<subdomain>.<zone>`, placed by `spread`.
#[derive(Debug, Clone)]
pub struct Batch {
    pub n: usize,
    pub prefix: String,
    pub subdomain: String,
    pub spread: Spread,
}

impl Batch {
    /// The bulk scenario's: `b<i>.bulk.<zone>` on every cluster of `env`.
    pub fn bulk(env: &Env, n: usize) -> Self {
        Self {
            n,
            prefix: "b".into(),
            subdomain: "bulk".into(),
            spread: Spread::everywhere(env.n_clusters),
        }
    }
}

/// What one process of the environment used during a run.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    pub name: String,
    /// CPU seconds during the run.
    pub cpu: f64,
    /// Peak RSS (VmHWM) since the process started, and RSS at the end (KiB).
    pub hwm_kib: u64,
    pub rss_kib: u64,
}

fn rule(host: &str, path: &str) -> serde_json::Value {
    json!({
        "host": host,
        "http": {"paths": [{
            "path": path,
            "pathType": "Prefix",
            "backend": {"service": {"name": BACKEND, "port": {"number": 80}}},
        }]},
    })
}

fn all_addresses(env: &Env) -> Vec<IpAddr> {
    (1..=env.n_clusters)
        .map(|k| IpAddr::V4(lb_address(k)))
        .collect()
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

// ---------------------------------------------------------------- 1. single

/// One root's convergence: (leaves downstream, root status merged, DNS), seconds.
pub type Single = (f64, f64, f64);

/// Applies `n` roots one at a time; for each, the time from its create to
/// the three milestones. A root that misses its deadline is an error.
pub async fn single(env: &Env, n: usize, deadline: Duration) -> anyhow::Result<Vec<Single>> {
    let obs = Observers::start(env);
    let dns = Dns::of(env)?;
    let api: Api<Ingress> = Api::namespaced(env.cp.clone(), NS);
    let want = all_addresses(env);
    let mut out = Vec::new();
    for i in 0..n {
        let name = format!("s{i}");
        let host = format!("s{i}.single.{}", dns.zone);
        let t0 = Instant::now();
        api.create(&PostParams::default(), &root(&name, &host, "/"))
            .await
            .with_context(|| format!("creating root {name}"))?;
        let (mut down, mut merged, mut dns_at) = (None, None, None);
        while down.is_none() || merged.is_none() || dns_at.is_none() {
            if t0.elapsed() > deadline {
                bail!(
                    "root {name} not converged within {deadline:?} (downstream {down:?}, merged {merged:?}, DNS {dns_at:?})"
                );
            }
            if down.is_none() {
                down = obs.downstream(&name);
            }
            if merged.is_none() {
                merged = obs.merged(&name);
            }
            if dns_at.is_none() && dns.addresses(&host).await.is_ok_and(|a| a == want) {
                dns_at = Some(Instant::now());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let since = |at: Option<Instant>| secs(at.unwrap_or(t0).saturating_duration_since(t0));
        out.push((since(down), since(merged), since(dns_at)));
        // A user applies the next one a moment later; let follow-up writes settle.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(out)
}

// ---------------------------------------------------------------- 5. failover

/// One failover, in seconds: until the dead cluster's address left every
/// watched host's answer; from the restart until all answers held it again;
/// from the restart until its data plane served a host again; from the
/// restart until every GlobalIngress of the namespace showed it again
/// (settled, [`settled`]).
pub type Failover = (f64, f64, f64, f64);

/// Kills cluster K's apiserver and its data plane (Traefik or the stand-in)
/// at once (SIGKILL), measures until its address leaves the DNS answers of
/// `hosts`, restarts both and measures until the address is back in DNS and
/// until a request that follows it is answered by cluster K's backend again;
/// `runs` times, K rotating. Before each run every cluster serves the first
/// host through its address, and the system has settled from the run before
/// ([`settled`]): a cluster dies in a system at rest, not while every status
/// is still being rewritten for the previous restart (which, with 200 roots,
/// takes longer than DNS does to hold the address again, and which the
/// cluster's verdict then queues behind in the control plane).
///
/// What takes the address out of DNS is the apiserver's death (the syncer
/// loses its watches, marks the Cluster not Ready, the glbc drops it): the
/// data plane's death alone is not noticed by kcp-ingress, which does not
/// probe it.
pub async fn failover(
    env: &mut Env,
    hosts: &[String],
    runs: usize,
    deadline: Duration,
) -> anyhow::Result<Vec<Failover>> {
    let dns = Dns::of(env)?;
    let want = all_addresses(env);
    let probe = hosts.first().context("failover needs a host")?;
    let mut out = Vec::new();
    for run in 0..runs {
        let k = run % env.n_clusters + 1;
        let server = format!("cluster-{k}");
        let dead = IpAddr::V4(lb_address(k));
        wait_answers(&dns, hosts, |a| a == want.as_slice(), deadline)
            .await
            .context("DNS before the failover")?;
        wait_settled(env, deadline)
            .await
            .context("settled before the failover")?;
        for j in 1..=env.n_clusters {
            wait_served(env, j, probe, deadline)
                .await
                .context("the data plane before the failover")?;
        }
        let pid = env
            .server_pid(&server)
            .with_context(|| format!("no pid for {server}"))?;
        // Both die at once (SIGKILL); the clock starts then. Reaping a
        // stand-in (and its watcher) waits until the measurement is done.
        let lb = env.kill_data_plane(k)?;
        let killed = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()?;
        let t0 = Instant::now();
        if !killed.success() {
            bail!("cannot kill {server} (pid {pid})");
        }
        wait_answers(
            &dns,
            hosts,
            |a| !a.contains(&dead) && !a.is_empty(),
            deadline,
        )
        .await
        .with_context(|| format!("{server}'s address leaving DNS"))?;
        let gone = secs(t0.elapsed());
        drop(lb);
        // Bookkeeping (the process is dead already), then back up.
        env.server("stop", &server).await?;
        let t1 = Instant::now();
        env.server("start", &server).await?;
        // The data plane is started again once its apiserver is back (as
        // Traefik reads its token and routes from there); DNS is watched
        // meanwhile, as it does not wait for the data plane.
        let (back, served) = tokio::join!(
            async {
                wait_answers(&dns, hosts, |a| a == want.as_slice(), deadline)
                    .await
                    .with_context(|| format!("{server}'s address coming back"))?;
                anyhow::Ok(secs(t1.elapsed()))
            },
            async {
                env.restart_data_plane(k).await?;
                wait_served(env, k, probe, deadline)
                    .await
                    .with_context(|| format!("{server}'s data plane serving again"))?;
                anyhow::Ok(secs(t1.elapsed()))
            }
        );
        let (back, served) = (back?, served?);
        wait_settled(env, deadline)
            .await
            .with_context(|| format!("settling after {server}'s restart"))?;
        let settled = secs(t1.elapsed());
        eprintln!(
            "bench: failover run {run}: {server} gone from DNS in {gone:.3}s; after restart back in DNS in {back:.1}s, served again in {served:.1}s, settled in {settled:.1}s"
        );
        out.push((gone, back, served, settled));
    }
    Ok(out)
}

/// Whether every GlobalIngress shows each of `clusters` clusters healthy
/// with an address, and each of its A records published with `clusters`
/// targets: the controller and the glbc have both written what a system
/// at rest with every cluster up shows.
pub fn is_settled(globals: &[GlobalIngress], clusters: usize) -> bool {
    globals.iter().all(|g| {
        g.status.as_ref().is_some_and(|s| {
            s.clusters.len() == clusters
                && s.clusters
                    .iter()
                    .all(|c| c.healthy && !c.addresses.is_empty())
                && s.dns_records.iter().any(|r| r.record_type == "A")
                && s.dns_records
                    .iter()
                    .filter(|r| r.record_type == "A")
                    .all(|r| r.state == "Published" && r.targets.len() == clusters)
        })
    })
}

/// Polls (every 200 ms, a list of the namespace's GlobalIngresses) until
/// [`is_settled`].
async fn wait_settled(env: &Env, deadline: Duration) -> anyhow::Result<()> {
    let api: Api<GlobalIngress> = Api::namespaced(env.cp.clone(), NS);
    let t0 = Instant::now();
    loop {
        let globals = api.list(&Default::default()).await?.items;
        if is_settled(&globals, env.n_clusters) {
            return Ok(());
        }
        if t0.elapsed() > deadline {
            let open = globals
                .iter()
                .filter(|g| !is_settled(std::slice::from_ref(g), env.n_clusters))
                .count();
            bail!("{open} GlobalIngresses not settled within {deadline:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Polls until a request for `host` to cluster `k`'s data plane is answered
/// by cluster `k` (every 20 ms).
async fn wait_served(env: &Env, k: usize, host: &str, deadline: Duration) -> anyhow::Result<()> {
    let address = std::net::SocketAddr::new(IpAddr::V4(lb_address(k)), env.http_port());
    let expected = format!("cluster-{k}");
    let t0 = Instant::now();
    loop {
        let answer = observe::served_by(address, host).await;
        if answer
            .as_ref()
            .is_ok_and(|body| body.lines().next().map(str::trim) == Some(expected.as_str()))
        {
            return Ok(());
        }
        if t0.elapsed() > deadline {
            bail!("{address} did not answer {expected} for {host} within {deadline:?}: {answer:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Queries every host every 20 ms until each answer satisfies `ok`.
async fn wait_answers(
    dns: &Dns,
    hosts: &[String],
    ok: impl Fn(&[IpAddr]) -> bool,
    deadline: Duration,
) -> anyhow::Result<()> {
    let t0 = Instant::now();
    loop {
        let answers = futures::future::join_all(hosts.iter().map(|h| dns.addresses(h))).await;
        if answers
            .iter()
            .all(|a| a.as_ref().is_ok_and(|a| ok(a.as_slice())))
        {
            return Ok(());
        }
        if t0.elapsed() > deadline {
            bail!("DNS answers not as wanted within {deadline:?}: {answers:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------- 2. bulk

/// One bulk run.
#[derive(Debug, Clone, Default)]
pub struct Bulk {
    /// Seconds from the first create until: all created, all leaves
    /// downstream, all root statuses merged, all hosts answered by DNS.
    pub created: f64,
    pub downstream: f64,
    pub merged: f64,
    pub dns: f64,
    /// Write requests each apiserver served meanwhile (control plane first).
    pub writes: Vec<Writes>,
    /// UPDATE messages BIND applied meanwhile.
    pub updates: u64,
    /// Peak and current RSS (KiB) of the controller and the glbc, and their CPU seconds.
    pub controller_kib: (u64, u64),
    pub glbc_kib: (u64, u64),
    /// CPU seconds each part of the system used meanwhile.
    pub cpu: Vec<(String, f64)>,
    /// Peak RSS (KiB) of every process of what ran on the servers, by name.
    pub rss: Vec<(String, u64)>,
    /// Every process of the environment (servers included): CPU during the
    /// run, peak and final RSS.
    pub usage: Vec<Usage>,
    /// What was checked once DNS was complete (or the deadline passed):
    /// roots with a copy in every cluster, roots whose status holds every
    /// cluster's address, hosts published with every address (zone
    /// transfer) and hosts BIND answered with every address (queries).
    pub copies: usize,
    pub merged_count: usize,
    pub published: usize,
    pub answered: usize,
    /// Whether all of them are complete; why not.
    pub invalid: Option<String>,
}

/// Creates `n` roots at once (32 requests in flight) and waits until every
/// host is published with every cluster's address (zone transfers).
pub async fn bulk(env: &Env, n: usize, deadline: Duration) -> anyhow::Result<(Bulk, Observers)> {
    bulk_of(env, &Batch::bulk(env, n), deadline).await
}

/// As [`bulk`], for the roots of `batch` (each placed as its spread says;
/// complete once on its own clusters and answered with their addresses).
pub async fn bulk_of(
    env: &Env,
    batch: &Batch,
    deadline: Duration,
) -> anyhow::Result<(Bulk, Observers)> {
    let n = batch.n;
    let spread = batch.spread;
    let obs = Observers::start_placed(env, spread.per_root);
    let dns = Dns::of(env)?;
    let suffix = format!("{}.{}", batch.subdomain, dns.zone);
    let names: Vec<String> = (0..n).map(|i| format!("{}{i}", batch.prefix)).collect();
    let before = observe::all_writes(env).await?;
    let updates_before = dns.stat("UpdateDone").await?;
    let cpu_before = env.cpu();
    let processes = env.processes();
    let usage_before: Vec<f64> = processes
        .iter()
        .map(|(_, pid)| crate::env::cpu_seconds(*pid).unwrap_or(0.0))
        .collect();
    let api: Api<Ingress> = Api::namespaced(env.cp.clone(), NS);
    let t0 = Instant::now();
    let results: Vec<anyhow::Result<()>> = futures::stream::iter(names.iter().cloned().enumerate())
        .map(|(i, name)| {
            let api = api.clone();
            let host = format!("{name}.{suffix}");
            let placement = spread.selector(i);
            async move {
                let object = placed_root(&name, &host, "/", placement.as_deref());
                api.create(&PostParams::default(), &object)
                    .await
                    .with_context(|| format!("creating {name}"))?;
                Ok(())
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    results.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    let created = secs(t0.elapsed());
    eprintln!("bench: bulk {n}: created in {created:.1}s");
    // A transfer of a large zone costs the server and us: look less often.
    let every = Duration::from_micros((n as u64 * 100).clamp(100_000, 1_000_000));
    let mut last_report = Instant::now();
    let mut timed_out = false;
    let (dns_done, published) = loop {
        let (hosts, _) = dns.published(&suffix).await?;
        let complete = hosts.values().filter(|c| **c == spread.per_root).count();
        if complete == n {
            break (t0.elapsed(), complete);
        }
        if t0.elapsed() > deadline {
            let (down, _, merged, _) = obs.progress_on(&names, |i| spread.clusters_of(i));
            eprintln!(
                "bench: bulk {n}: not converged within {deadline:?} ({down} downstream, {merged} merged, {complete} in DNS)"
            );
            timed_out = true;
            break (t0.elapsed(), complete);
        }
        if last_report.elapsed() > Duration::from_secs(15) {
            let (down, _, merged, _) = obs.progress_on(&names, |i| spread.clusters_of(i));
            eprintln!(
                "bench: bulk {n}: {:.0}s: {down} downstream, {merged} merged, {complete} in DNS",
                t0.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
        }
        tokio::time::sleep(every).await;
    };
    let after = observe::all_writes(env).await?;
    let updates = dns.stat("UpdateDone").await?.saturating_sub(updates_before);
    // The watches saw everything before DNS did (or within a moment).
    let mut waited = Duration::ZERO;
    let (copies, down_at, merged_count, merged_at) = loop {
        let (down, down_at, merged, merged_at) = obs.progress_on(&names, |i| spread.clusters_of(i));
        if (down == n && merged == n) || waited > Duration::from_secs(30) || timed_out {
            break (down, down_at, merged, merged_at);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += Duration::from_millis(100);
    };
    // Every host asked of BIND (plain queries, as a resolver would).
    let answered = futures::stream::iter(names.iter().enumerate())
        .map(|(i, name)| {
            let dns = dns.clone();
            let host = format!("{name}.{suffix}");
            let want = spread.addresses_of(i);
            async move { dns.addresses(&host).await.is_ok_and(|a| a == want) }
        })
        .buffer_unordered(32)
        .filter(|ok| std::future::ready(*ok))
        .count()
        .await;
    let invalid = (copies < n || merged_count < n || published < n || answered < n).then(|| {
        format!(
            "{copies} of {n} roots with a copy in every cluster, {merged_count} merged, \
             {published} published, {answered} answered by BIND{}",
            if timed_out { " (deadline passed)" } else { "" }
        )
    });
    let since =
        |at: Option<Instant>| at.map_or(f64::NAN, |at| secs(at.saturating_duration_since(t0)));
    let dns_seconds = if timed_out { f64::NAN } else { secs(dns_done) };
    let mem =
        |p: &Option<crate::env::Proc>| p.as_ref().and_then(|p| p.memory_kib()).unwrap_or((0, 0));
    let result = Bulk {
        created,
        downstream: since(down_at),
        merged: since(merged_at),
        dns: dns_seconds,
        writes: before
            .iter()
            .zip(&after)
            .map(|(b, a)| observe::delta(b, a))
            .collect(),
        updates,
        controller_kib: mem(&env.controller),
        glbc_kib: mem(&env.glbc),
        cpu: env
            .cpu()
            .into_iter()
            .zip(cpu_before)
            .map(|((role, after), (_, before))| (role, after - before))
            .collect(),
        rss: env
            .components()
            .into_iter()
            .map(|p| (p.name.clone(), p.memory_kib().map_or(0, |m| m.0)))
            .collect(),
        usage: processes
            .iter()
            .zip(usage_before)
            .map(|((name, pid), before)| {
                let (hwm_kib, rss_kib) = crate::env::memory_kib(*pid).unwrap_or((0, 0));
                Usage {
                    name: name.clone(),
                    cpu: crate::env::cpu_seconds(*pid).map_or(0.0, |after| after - before),
                    hwm_kib,
                    rss_kib,
                }
            })
            .collect(),
        copies,
        merged_count,
        published,
        answered,
        invalid,
    };
    Ok((result, obs))
}

// ---------------------------------------------------------------- 6. churn

/// Edits the path of the `roots` (round robin) at `rate` edits per second
/// for `duration`; returns each edit's lag until every cluster's copy had
/// the new path, and how many edits never arrived within `deadline` after
/// the last one.
pub async fn churn(
    env: &Env,
    obs: &Observers,
    roots: &[String],
    rate: u32,
    duration: Duration,
    deadline: Duration,
) -> anyhow::Result<(Vec<f64>, usize)> {
    let dns = Dns::of(env)?;
    let suffix = format!("bulk.{}", dns.zone);
    let api: Api<Ingress> = Api::namespaced(env.cp.clone(), NS);
    let edits = (f64::from(rate) * duration.as_secs_f64()) as usize;
    let mut tick = tokio::time::interval(Duration::from_secs(1) / rate);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut sent: Vec<(String, String, Instant)> = Vec::with_capacity(edits);
    let mut tasks = tokio::task::JoinSet::new();
    for j in 0..edits {
        tick.tick().await;
        let name = roots[j % roots.len()].clone();
        let path = format!("/v{}", j / roots.len() + 1);
        let host = format!("{name}.{suffix}");
        let patch = json!({"spec": {"rules": [rule(&host, &path)]}});
        sent.push((name.clone(), path, Instant::now()));
        let api = api.clone();
        tasks.spawn(async move {
            api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map(|_| ())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    let end = Instant::now();
    // Level-based: a copy may go straight from an edit to a later one of
    // the same root. An edit has arrived once its version, or a later one,
    // is in every cluster.
    let last_version = (edits.saturating_sub(1) / roots.len() + 1) as u64;
    let mut lags = Vec::new();
    let mut missing = 0;
    for (name, path, at) in &sent {
        let version: u64 = path.trim_start_matches("/v").parse().unwrap_or(1);
        let seen = loop {
            let arrived = (version..=last_version)
                .filter_map(|v| obs.downstream_path(name, &format!("/v{v}")))
                .min();
            if arrived.is_some() {
                break arrived;
            }
            if end.elapsed() > deadline {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        match seen {
            Some(seen) => lags.push(secs(seen.saturating_duration_since(*at))),
            None => missing += 1,
        }
    }
    Ok((lags, missing))
}

// ---------------------------------------------------------------- 3. floor

/// The floor: seconds for the API writes alone, the DNS changes alone, and
/// both at once (the figure the bulk time is compared with).
#[derive(Debug, Clone, Default)]
pub struct Floor {
    pub api: f64,
    pub dns: f64,
    pub total: f64,
    pub writes: u64,
    pub updates: u64,
    /// CPU seconds of the kube-apiservers and etcd during the floor.
    pub servers_cpu: f64,
    /// The minimal floor: the same, with the minimal write set instead of
    /// the writes the run made ([`minimal_writes`]).
    pub minimal: Option<Box<Floor>>,
}

/// What a floor writes to one apiserver, as `(creates, other writes)` of
/// each kind it replays.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Replay {
    /// Ingress creates, and every other write as an Ingress status apply.
    pub ingresses: (u64, u64),
    /// GlobalIngress creates, and the GlobalIngress status writes and
    /// patches as GlobalIngress status applies (a custom resource costs
    /// the server more per write than an Ingress).
    pub globals: (u64, u64),
}

impl Replay {
    pub fn total(&self) -> u64 {
        self.ingresses.0 + self.ingresses.1 + self.globals.0 + self.globals.1
    }
}

/// Per apiserver (control plane first, then each cluster), the creates and
/// the other writes of the same floor: what the run made. Creates are the
/// `POST`s and the server-side applies of whole objects (leaves, copies,
/// GlobalIngresses are created by apply; a repeat apply counts as a create
/// too, a few per thousand): the replay spreads the other writes over that
/// many objects, as the run spread them over its objects. (Counting only
/// `POST`s, as sessions 3 to 10 did, left a cluster's floor one object to
/// apply every status to, one at a time: a floor slower than the run.)
/// The GlobalIngress writes are replayed as GlobalIngress writes (since
/// session 15; before, as Ingress writes), every other one as an Ingress
/// write.
pub fn replayed_writes(writes: &[Writes]) -> Vec<Replay> {
    writes
        .iter()
        .map(|w| {
            let (mut replay, mut all) = (Replay::default(), 0);
            for (key, &n) in w.iter().filter(|(k, _)| !is_read(k)) {
                all += n;
                let global = resource(key) == Some("globalingresses");
                match (global, is_create(key)) {
                    (true, true) => replay.globals.0 += n,
                    (true, false) => replay.globals.1 += n,
                    (false, true) => replay.ingresses.0 += n,
                    (false, false) => {}
                }
            }
            replay.ingresses.1 = all - replay.ingresses.0 - replay.globals.0 - replay.globals.1;
            replay
        })
        .collect()
}

/// Whether a request key (`VERB resource[/subresource]`) makes an object.
fn is_create(key: &str) -> bool {
    key.starts_with("POST ") || (key.starts_with("APPLY ") && !key.contains('/'))
}

/// The resource of a request key (`VERB resource[/subresource]`).
fn resource(key: &str) -> Option<&str> {
    let (_, path) = key.split_once(' ')?;
    path.split('/').next()
}

/// The minimal write set of `roots` roots on `clusters` clusters, per
/// apiserver: in the control plane 2N + 3 per root (N leaf creates and the
/// GlobalIngress create; N leaf statuses, the root's status and the
/// GlobalIngress status, the GlobalIngress's as GlobalIngress writes), in
/// each cluster the copy's create and its status.
pub fn minimal_writes(roots: u64, clusters: u64) -> Vec<Replay> {
    let mut out = vec![Replay {
        ingresses: (roots * clusters, roots * (clusters + 1)),
        globals: (roots, roots),
    }];
    out.extend((0..clusters).map(|_| Replay {
        ingresses: (roots, roots),
        globals: (0, 0),
    }));
    out
}

/// With kcp-ingress and the data plane stopped: as many write requests per
/// apiserver as `writes` says (Ingress and GlobalIngress creates, every
/// other write as a server-side apply of an Ingress or GlobalIngress
/// status), 16 in flight per server and kind, and `names` DNS names
/// changed in UPDATEs of about 30 KiB, all at once against the same
/// servers.
pub async fn floor(env: &Env, tag: &str, writes: &[Replay], hosts: usize) -> anyhow::Result<Floor> {
    let dns = Dns::of(env)?;
    let mut servers = vec![env.cp.clone()];
    servers.extend(env.clusters.iter().cloned());
    let floor_ns = format!("floor-{tag}");
    for c in &servers {
        let ns: Api<Namespace> = Api::all(c.clone());
        ns.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": floor_ns}}))?,
        )
        .await?;
    }
    let mut total_writes = 0;
    let clusters = env.n_clusters;
    let api_work =
        futures::future::try_join_all(servers.iter().zip(writes).map(|(client, replayed)| {
            total_writes += replayed.total();
            let (creates, others) = replayed.ingresses;
            let (global_creates, global_others) = replayed.globals;
            futures::future::try_join(
                replay(client.clone(), floor_ns.clone(), creates.max(1), others),
                replay_globals(
                    client.clone(),
                    floor_ns.clone(),
                    (global_creates, global_others),
                    clusters,
                ),
            )
        }));
    let zone = dns.zone.clone();
    let dns_work = async {
        let t0 = Instant::now();
        let client = dns.client()?;
        let changes: Vec<RrsetChange> = (0..hosts)
            .flat_map(|i| {
                let host = format!("f{i}.{tag}.floor.{zone}.");
                let owner = format!("_kcp-ingress.{host}");
                [
                    RrsetChange {
                        name: Name::from_ascii(&host).expect("a valid name"),
                        record_type: RecordType::A,
                        ttl: 60,
                        data: (1..=env.n_clusters)
                            .map(|k| RData::A(A(lb_address(k))))
                            .collect(),
                    },
                    RrsetChange {
                        name: Name::from_ascii(&owner).expect("a valid name"),
                        record_type: RecordType::TXT,
                        ttl: 60,
                        data: vec![RData::TXT(TXT::new(vec![format!(
                            "heritage=kcp-ingress,owner=kcp-ingress,root={NS}/b{i}"
                        )]))],
                    },
                ]
            })
            .collect();
        let mut updates = 0;
        // About 30 KiB per message, as the glbc's budget allows.
        for batch in changes.chunks(300) {
            client.replace_rrsets(batch).await?;
            updates += 1;
        }
        anyhow::Ok((secs(t0.elapsed()), updates))
    };
    let cpu_before = crate::env::api_servers_cpu(&env.cpu());
    let t0 = Instant::now();
    let (api, dns_result) = tokio::join!(
        async {
            let t = Instant::now();
            api_work.await.map(|_| secs(t.elapsed()))
        },
        dns_work
    );
    let total = secs(t0.elapsed());
    let servers_cpu = crate::env::api_servers_cpu(&env.cpu()) - cpu_before;
    let (dns_time, updates) = dns_result?;
    Ok(Floor {
        api: api?,
        dns: dns_time,
        total,
        writes: total_writes,
        updates,
        servers_cpu,
        minimal: None,
    })
}

/// Runs `request(i)` for every `i` in `0..n`, 16 in flight; the first
/// error ends it.
async fn in_flight<F, Fut>(n: u64, request: F) -> anyhow::Result<()>
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    futures::stream::iter(0..n)
        .map(request)
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<()>>>()?;
    Ok(())
}

/// The object the `j`-th of the other writes over `creates` objects goes
/// to, and the address it writes: round r over the objects writes
/// 127.0.(2 + r).x, so that every write changes its object.
fn replayed(j: u64, creates: u64) -> (String, String) {
    let round = j / creates;
    (
        format!("f{}", j % creates),
        format!("127.0.{}.{}", 2 + round % 250, j % 250 + 1),
    )
}

/// `creates` Ingress creates, then `others` status applies over them, each
/// one a change (its address differs from the object's last one), as
/// every status write of a run is.
async fn replay(client: kube::Client, ns: String, creates: u64, others: u64) -> anyhow::Result<()> {
    let api: Api<Ingress> = Api::namespaced(client, &ns);
    in_flight(creates, |i| {
        let api = api.clone();
        async move {
            let name = format!("f{i}");
            let mut object = root(&name, &format!("{name}.floor.test"), "/");
            object.metadata.namespace = None;
            api.create(&PostParams::default(), &object).await?;
            anyhow::Ok(())
        }
    })
    .await?;
    let pp = PatchParams::apply("floor").force();
    in_flight(others, |j| {
        let (api, pp) = (api.clone(), pp.clone());
        async move {
            let (name, address) = replayed(j, creates);
            let body = json!({
                "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                "status": {"loadBalancer": {"ingress": [{"ip": address}]}},
            });
            api.patch_status(&name, &pp, &Patch::Apply(&body)).await?;
            anyhow::Ok(())
        }
    })
    .await
}

/// `creates` GlobalIngress creates (one host each), then `others` status
/// applies over them, each a change, alternately the controller's part
/// (clusters, `Ready`) and the glbc's (`DNSPublished`, records), each by
/// its own field manager as in a run.
async fn replay_globals(
    client: kube::Client,
    ns: String,
    (creates, others): (u64, u64),
    clusters: usize,
) -> anyhow::Result<()> {
    if creates + others == 0 {
        return Ok(());
    }
    let creates = creates.max(1);
    let api: Api<GlobalIngress> = Api::namespaced(client, &ns);
    in_flight(creates, |i| {
        let api = api.clone();
        async move {
            let name = format!("f{i}");
            let global: GlobalIngress = serde_json::from_value(json!({
                "apiVersion": "kcp-ingress.dev/v1alpha1", "kind": "GlobalIngress",
                "metadata": {"name": name},
                "spec": {
                    "hosts": [format!("{name}.floor.test")],
                    "root": {"group": "networking.k8s.io", "kind": "Ingress", "name": name},
                },
            }))?;
            api.create(&PostParams::default(), &global).await?;
            anyhow::Ok(())
        }
    })
    .await?;
    let now = k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    in_flight(others, |j| {
        let (api, now, ns) = (api.clone(), now.clone(), ns.clone());
        async move {
            let (name, first) = replayed(j, creates);
            let addresses: Vec<String> = std::iter::once(first)
                .chain((2..=clusters).map(|k| lb_address(k).to_string()))
                .collect();
            let condition = |kind: &str, reason: &str| {
                json!({"type": kind, "status": "True", "reason": reason,
                       "message": format!("{reason} on {clusters} cluster(s)"),
                       "lastTransitionTime": now, "observedGeneration": 1})
            };
            let host = format!("{name}.floor.test");
            let (manager, status) = if j % 2 == 0 {
                let per_cluster: Vec<_> = addresses
                    .iter()
                    .enumerate()
                    .map(|(k, ip)| {
                        json!({"cluster": format!("cluster-{}", k + 1), "healthy": true,
                               "addresses": [{"ip": ip}], "lastChangeTime": now})
                    })
                    .collect();
                let conditions = [
                    condition(labels::conditions::READY, "Placed"),
                    condition(labels::conditions::DEPENDENCIES_READY, "Found"),
                ];
                (
                    labels::CONTROLLER_MANAGER,
                    json!({"observedGeneration": 1, "clusters": per_cluster,
                           "conditions": conditions}),
                )
            } else {
                let owner = ownership::content("kcp-ingress", &format!("{ns}/{name}"));
                let records = [
                    json!({"name": host, "recordType": "A", "ttl": 60,
                           "state": "Published", "targets": addresses}),
                    json!({"name": format!("{}.{host}", labels::OWNERSHIP_LABEL), "recordType": "TXT",
                           "ttl": 60, "state": "Published", "targets": [owner]}),
                ];
                (
                    labels::GLBC_MANAGER,
                    json!({"conditions": [condition(labels::conditions::DNS_PUBLISHED, "Published")],
                           "dnsRecords": records, "lastPublishedTime": now}),
                )
            };
            let body = json!({
                "apiVersion": "kcp-ingress.dev/v1alpha1", "kind": "GlobalIngress",
                "status": status,
            });
            api.patch_status(
                &name,
                &PatchParams::apply(manager).force(),
                &Patch::Apply(&body),
            )
            .await?;
            anyhow::Ok(())
        }
    })
    .await
}

/// Writes per root, per apiserver, summed over the verbs.
pub fn writes_total(w: &Writes) -> u64 {
    w.iter().filter(|(k, _)| !is_read(k)).map(|(_, v)| *v).sum()
}

/// Reads (GET, LIST) per apiserver.
pub fn reads_total(w: &Writes) -> u64 {
    w.iter().filter(|(k, _)| is_read(k)).map(|(_, v)| *v).sum()
}

fn is_read(key: &str) -> bool {
    observe::READ_VERBS
        .iter()
        .any(|v| key.strip_prefix(v).is_some_and(|r| r.starts_with(' ')))
}

/// A compact breakdown: the largest entries of every apiserver's writes.
pub fn breakdown(writes: &[Writes]) -> String {
    let mut lines = Vec::new();
    for (i, w) in writes.iter().enumerate() {
        let server = if i == 0 {
            "control-plane".to_string()
        } else {
            format!("cluster-{i}")
        };
        let mut entries: Vec<(&String, &u64)> = w.iter().collect();
        entries.sort_by(|a, b| b.1.cmp(a.1));
        let text: Vec<String> = entries.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        lines.push(format!("{server}: {}", text.join(", ")));
    }
    lines.join("\n")
}

/// The writes per root, by request, of every apiserver (reads apart): the
/// itemisation of the writes per root in docs/BENCHMARKS.md.
pub fn per_root(writes: &[Writes], roots: usize) -> String {
    let mut lines = Vec::new();
    for (i, w) in writes.iter().enumerate() {
        let server = if i == 0 {
            "control-plane".to_string()
        } else {
            format!("cluster-{i}")
        };
        let mut entries: Vec<(&String, &u64)> = w.iter().filter(|(k, _)| !is_read(k)).collect();
        entries.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let per = |v: u64| v as f64 / roots.max(1) as f64;
        let text: Vec<String> = entries
            .iter()
            .map(|(k, v)| format!("{k} {:.2}", per(**v)))
            .collect();
        lines.push(format!(
            "{server}: {:.2} = {}",
            per(writes_total(w)),
            text.join(" + ")
        ));
    }
    lines.join("\n")
}

pub mod tests {
    use super::*;

    /// Settled: every cluster healthy with an address, every A record
    /// published with every cluster's target.
    pub fn settled_means_every_cluster_everywhere() -> Result<(), String> {
        let global = |healthy: [bool; 2], targets: usize| -> GlobalIngress {
            let targets = ["127.0.1.1", "127.0.1.2"][..targets].to_vec();
            serde_json::from_value(json!({
                "apiVersion": "kcp-ingress.dev/v1alpha1", "kind": "GlobalIngress",
                "metadata": {"name": "g", "namespace": "n"},
                "spec": {"hosts": ["a.test"]},
                "status": {
                    "clusters": [
                        {"cluster": "c1", "healthy": healthy[0], "addresses": [{"ip": "127.0.1.1"}]},
                        {"cluster": "c2", "healthy": healthy[1], "addresses": [{"ip": "127.0.1.2"}]},
                    ],
                    "dnsRecords": [
                        {"name": "a.test", "recordType": "A", "ttl": 60, "state": "Published",
                         "targets": targets},
                        {"name": "_kcp-ingress.a.test", "recordType": "TXT", "ttl": 60,
                         "state": "Published", "targets": ["x"]},
                    ],
                },
            }))
            .expect("a valid GlobalIngress")
        };
        let cases = [
            (global([true, true], 2), true),
            (global([true, false], 2), false),
            (global([true, true], 1), false),
        ];
        for (i, (g, want)) in cases.iter().enumerate() {
            if is_settled(std::slice::from_ref(g), 2) != *want {
                return Err(format!("case {i}: want settled={want}"));
            }
        }
        if is_settled(&[cases[0].0.clone(), cases[2].0.clone()], 2) {
            return Err("one unsettled GlobalIngress of two: settled".into());
        }
        Ok(())
    }

    /// A floor replays a run's writes over as many objects as the run made.
    pub fn a_replay_creates_what_the_run_created() -> Result<(), String> {
        let w = |entries: &[(&str, u64)]| -> Writes {
            entries.iter().map(|(k, v)| (k.to_string(), *v)).collect()
        };
        let control_plane = w(&[
            ("POST ingresses", 10),
            ("APPLY ingresses", 30),
            ("APPLY ingresses/status", 40),
            ("APPLY globalingresses", 10),
            ("PATCH ingresses", 10),
            ("GET ingresses", 30),
        ]);
        let cluster = w(&[
            ("APPLY ingresses", 10),
            ("APPLY ingresses/status", 10),
            ("PUT leases", 1),
        ]);
        let got = replayed_writes(&[control_plane, cluster]);
        let want = vec![
            Replay {
                ingresses: (40, 50),
                globals: (10, 0),
            },
            Replay {
                ingresses: (10, 11),
                globals: (0, 0),
            },
        ];
        if got != want {
            return Err(format!("replayed {got:?}"));
        }
        let with_status = w(&[
            ("APPLY globalingresses", 4),
            ("APPLY globalingresses/status", 8),
            ("PATCH globalingresses", 1),
            ("POST events", 2),
        ]);
        let got = replayed_writes(&[with_status]);
        let want = Replay {
            ingresses: (2, 0),
            globals: (4, 9),
        };
        if got != vec![want] {
            return Err(format!("replayed {got:?}"));
        }
        Ok(())
    }
}
