//! `make bench`: convergence latency, bulk throughput, the floor, memory,
//! failover and churn of kcp-ingress against the real servers of
//! `hack/test-env.sh` (etcd, kube-apiservers, BIND 9), with a data plane
//! per physical cluster (Traefik from `hack/traefik-env.sh` by default, as
//! `make local-setup`; `--data-plane standin` for the stand-in load
//! balancer) and the kcp-ingress processes of the release build, started as
//! `hack/local-setup.sh` starts them (controller with push-mode syncers,
//! glbc), at their default settings.
//!
//! Prints a markdown table and writes it into docs/BENCHMARKS.md (the
//! section of a full run, or of a quick run). `--quick` (`make bench
//! QUICK=1`) is a smoke run of a few minutes.

mod dns_qps;
mod env;
mod gateway;
mod many;
mod model;
mod observe;
mod peers;
mod scenarios;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::env::{DataPlane, Env, Stack};
use crate::observe::{median, percentile};
use crate::scenarios::{Bulk, Floor};

/// What to run.
#[derive(Debug, Clone)]
struct Plan {
    quick: bool,
    single: usize,
    failover_runs: usize,
    failover_hosts: usize,
    bulk: Vec<usize>,
    bulk_runs: usize,
    big_runs: usize,
    churn_seconds: u64,
    churn_rate: u32,
    /// Queries per server of the DNS comparison.
    dns_queries: usize,
    write_doc: bool,
    data_plane: DataPlane,
    /// `--peers` (`make bench PEERS=1`): kcp-ingress's bulk side by side
    /// with Karmada + external-dns (tuned, and at defaults once).
    peers: bool,
    /// `--peer-defaults-runs N`: bulk runs of Karmada at its defaults.
    peer_default_runs: usize,
    /// `--many-clusters` (`make bench MANY=1`): the many-clusters scenario
    /// alone (with the stand-in data plane).
    many: Option<many::ManyPlan>,
    /// Give up (and stop everything) after this long.
    deadline: Duration,
}

impl Plan {
    fn from_args() -> anyhow::Result<Self> {
        let mut args = std::env::args().skip(1).peekable();
        let quick_env = std::env::var("QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        let mut plan = Self::full();
        let mut quick = quick_env;
        let mut overrides: Vec<(String, String)> = Vec::new();
        let mut write_doc = true;
        let mut peers = std::env::var("PEERS").is_ok_and(|v| !v.is_empty() && v != "0");
        let mut many = std::env::var("MANY").is_ok_and(|v| !v.is_empty() && v != "0");
        let mut many_plan = many::ManyPlan {
            roots: 2_000,
            clusters: 20,
            per_root: 3,
            small_clusters: env::CLUSTERS,
            slopes: true,
        };
        let mut data_plane = match std::env::var("DATA_PLANE") {
            Ok(v) if !v.is_empty() => DataPlane::parse(&v).context("DATA_PLANE")?,
            _ => DataPlane::Traefik,
        };
        while let Some(arg) = args.next() {
            match arg.as_str() {
                // cargo bench passes --bench to every bench target.
                "--bench" => {}
                "--quick" => quick = true,
                "--no-doc" => write_doc = false,
                "--peers" => peers = true,
                "--many-clusters" => many = true,
                "--many-clusters-one-run" => many_plan.slopes = false,
                "--many-clusters-roots" | "--many-clusters-count" | "--many-clusters-per-root" => {
                    let value = args
                        .next()
                        .with_context(|| format!("{arg} needs a value"))?;
                    let n: usize = value.parse().with_context(|| format!("{arg} {value}"))?;
                    if n == 0 {
                        anyhow::bail!("{arg} must be at least 1");
                    }
                    match arg.as_str() {
                        "--many-clusters-roots" => many_plan.roots = n,
                        "--many-clusters-count" => many_plan.clusters = n,
                        _ => many_plan.per_root = n,
                    }
                }
                "--data-plane" => {
                    let value = args.next().context("--data-plane needs a value")?;
                    data_plane = DataPlane::parse(&value)?;
                }
                "--single"
                | "--failover-runs"
                | "--bulk"
                | "--bulk-runs"
                | "--big-runs"
                | "--churn-seconds"
                | "--deadline-seconds"
                | "--peer-default-runs" => {
                    let value = args
                        .next()
                        .with_context(|| format!("{arg} needs a value"))?;
                    overrides.push((arg, value));
                }
                "-h" | "--help" => {
                    println!(
                        "usage: cargo bench --bench bench -- [--quick] [--no-doc] [--peers [--peer-default-runs N]] [--data-plane traefik|standin] \
                         [--single N] [--failover-runs N] [--bulk N,N] [--bulk-runs N] [--big-runs N] [--churn-seconds S] [--deadline-seconds S]\n\
                         \x20      cargo bench --bench bench -- --many-clusters [--many-clusters-roots N] [--many-clusters-count C] [--many-clusters-per-root P] [--many-clusters-one-run]\n\
                         \x20      cargo test --bench bench -- --unit-tests [FILTER]   (the bench's own unit tests)\n\
                         \n\
                         --many-clusters  (make bench MANY=1) alone: N roots (2000) on C clusters (20), each on P (3) by a\n\
                         \x20             `region in (...)` selector, stand-in data plane; then N more, then N on 3 clusters (the\n\
                         \x20             model's slopes; --many-clusters-one-run: the first run only); a model of 100 x 10,000\n\
                         --data-plane  what plays each cluster's ingress controller: traefik (default, or $DATA_PLANE;\n\
                         \x20             hack/traefik-env.sh, needs root and `make tools-traefik`) or standin (standin-lb)"
                    );
                    std::process::exit(0);
                }
                other if other.starts_with('-') => anyhow::bail!("unknown flag {other}"),
                // A name filter, as libtest takes: ignored.
                _ => {}
            }
        }
        if quick {
            plan = Self::quick();
        }
        if peers {
            // kcp-ingress and tuned Karmada: 3 runs each at 1,000; Karmada
            // at its defaults once.
            plan.peers = true;
            plan.bulk = vec![if quick { 200 } else { 1_000 }];
            plan.bulk_runs = if quick { 1 } else { 3 };
            plan.peer_default_runs = 1;
            plan.deadline = Duration::from_secs(if quick { 20 * 60 } else { 120 * 60 });
        }
        plan.write_doc = write_doc;
        plan.data_plane = data_plane;
        if many {
            if peers {
                anyhow::bail!("--many-clusters and --peers are separate runs");
            }
            if many_plan.clusters < many_plan.per_root || many_plan.clusters > 200 {
                anyhow::bail!(
                    "--many-clusters-count must be from the clusters per root ({}) to 200",
                    many_plan.per_root
                );
            }
            // 20 Traefiks are not the point: the stand-in plays every data plane.
            plan.data_plane = DataPlane::Standin;
            plan.deadline = Duration::from_secs(180 * 60);
            plan.many = Some(many_plan);
        }
        for (flag, value) in overrides {
            let n = || {
                value
                    .parse::<usize>()
                    .with_context(|| format!("{flag} {value}"))
            };
            match flag.as_str() {
                "--single" => plan.single = n()?,
                "--failover-runs" => plan.failover_runs = n()?,
                "--bulk-runs" => plan.bulk_runs = n()?,
                "--big-runs" => plan.big_runs = n()?,
                "--churn-seconds" => plan.churn_seconds = n()? as u64,
                "--deadline-seconds" => plan.deadline = Duration::from_secs(n()? as u64),
                "--peer-default-runs" => plan.peer_default_runs = n()?,
                "--bulk" => {
                    plan.bulk = value
                        .split(',')
                        .map(|v| v.parse().context("--bulk"))
                        .collect::<anyhow::Result<_>>()?
                }
                _ => unreachable!(),
            }
        }
        Ok(plan)
    }

    fn full() -> Self {
        Self {
            quick: false,
            single: 100,
            failover_runs: 10,
            failover_hosts: 10,
            bulk: vec![1_000, 10_000],
            bulk_runs: 2,
            big_runs: 1,
            churn_seconds: 60,
            churn_rate: 50,
            dns_queries: 50_000,
            write_doc: true,
            data_plane: DataPlane::Traefik,
            peers: false,
            peer_default_runs: 0,
            many: None,
            deadline: Duration::from_secs(150 * 60),
        }
    }

    fn quick() -> Self {
        Self {
            quick: true,
            single: 20,
            failover_runs: 3,
            failover_hosts: 5,
            bulk: vec![200],
            bulk_runs: 1,
            big_runs: 1,
            churn_seconds: 10,
            churn_rate: 50,
            dns_queries: 10_000,
            write_doc: true,
            data_plane: DataPlane::Traefik,
            peers: false,
            peer_default_runs: 0,
            many: None,
            // Traefik's set-up (RBAC, Gateway API CRDs, network namespaces)
            // adds about 15 s per environment.
            deadline: Duration::from_secs(230),
        }
    }

    fn command(&self) -> String {
        let quick = if self.quick { " QUICK=1" } else { "" };
        let data_plane = match self.data_plane {
            DataPlane::Traefik => "",
            DataPlane::Standin => " DATA_PLANE=standin",
        };
        if let Some(m) = &self.many {
            // `make bench MANY=1` at the defaults, with the release profile.
            return format!(
                "cargo bench{} --bench bench -- --many-clusters --many-clusters-roots {} --many-clusters-count {} --many-clusters-per-root {}{}",
                if cfg!(debug_assertions) {
                    " --profile dev"
                } else {
                    ""
                },
                m.roots,
                m.clusters,
                m.per_root,
                if m.slopes {
                    ""
                } else {
                    " --many-clusters-one-run"
                }
            );
        }
        let peers = if self.peers { " PEERS=1" } else { "" };
        format!("make bench{peers}{quick}{data_plane}")
    }
}

/// Everything measured.
#[derive(Default)]
struct Results {
    single: Vec<scenarios::Single>,
    gateway_single: Vec<gateway::GatewaySingle>,
    failover: Vec<scenarios::Failover>,
    /// Per size: the runs, with their floors.
    bulk: Vec<(usize, Vec<(Bulk, Floor)>)>,
    churn: Option<(Vec<f64>, usize, usize)>,
    dns_qps: Option<dns_qps::Qps>,
    versions: Vec<(String, String)>,
    peers: peers::PeerResults,
    many: many::ManyResults,
}

/// `cargo test --bench bench -- --unit-tests [FILTER]`: the bench's unit
/// tests (the scale model's arithmetic, the floor's replay), through
/// libtest-mimic.
fn unit_tests() -> std::process::ExitCode {
    let args = libtest_mimic::Arguments::from_iter(
        std::env::args().filter(|a| a != "--unit-tests" && a != "--bench"),
    );
    let mut tests = model::tests::all();
    tests.push((
        "many::render_fits_the_three_runs",
        many::tests::render_fits_the_three_runs,
    ));
    tests.push((
        "scenarios::a_replay_creates_what_the_run_created",
        scenarios::tests::a_replay_creates_what_the_run_created,
    ));
    tests.push((
        "scenarios::settled_means_every_cluster_everywhere",
        scenarios::tests::settled_means_every_cluster_everywhere,
    ));
    let trials = tests
        .into_iter()
        .map(|(name, test)| libtest_mimic::Trial::test(name, move || Ok(test()?)))
        .collect();
    libtest_mimic::run(&args, trials).exit_code()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::process::ExitCode {
    if std::env::args().any(|a| a == "--unit-tests") {
        return unit_tests();
    }
    let plan = match Plan::from_args() {
        Ok(plan) => plan,
        Err(err) => {
            eprintln!("bench: {err:#}");
            return std::process::ExitCode::from(2);
        }
    };
    eprintln!("bench: {plan:?}");
    let started = Instant::now();
    let mut results = Results::default();
    // A signal ends the run like the deadline does: what runs is stopped
    // (dropping the environments), what was measured is still reported.
    let interrupted = async {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => "SIGINT",
            _ = async {
                match term.as_mut() {
                    Some(t) => { t.recv().await; }
                    None => std::future::pending::<()>().await,
                }
            } => "SIGTERM",
        }
    };
    let failure = tokio::select! {
        outcome = tokio::time::timeout(plan.deadline, async {
            if let Some(many) = &plan.many {
                many::run(many, plan.data_plane, &mut results.many, &mut results.versions).await
            } else if plan.peers { run_peers(&plan, &mut results).await } else { run(&plan, &mut results).await }
        }) => match outcome {
            Ok(Ok(())) => None,
            Ok(Err(err)) => Some(format!("{err:#}")),
            Err(_) => Some(format!("gave up after {:?}", plan.deadline)),
        },
        signal = interrupted => Some(format!("interrupted by {signal}")),
    };
    let table = render(&plan, &results, started.elapsed(), failure.as_deref());
    println!("{table}");
    // An incomplete run is written too (it says so): partial figures beat none.
    if plan.write_doc {
        if let Err(err) = write_doc(&plan, &table) {
            eprintln!("bench: cannot write docs/BENCHMARKS.md: {err:#}");
            return std::process::ExitCode::FAILURE;
        }
        eprintln!("bench: wrote docs/BENCHMARKS.md");
    }
    match failure {
        Some(err) => {
            eprintln!("bench: FAILED: {err}");
            std::process::ExitCode::FAILURE
        }
        None => std::process::ExitCode::SUCCESS,
    }
}

/// `make bench PEERS=1`: per round a kcp-ingress bulk run and a tuned
/// Karmada one (fresh environments, the same servers and data plane), then
/// Karmada at its defaults.
async fn run_peers(plan: &Plan, results: &mut Results) -> anyhow::Result<()> {
    let n = plan.bulk.first().copied().unwrap_or(1_000);
    // PEER_PARTS=kcp,tuned,dnsleg,defaults (the default: all) picks parts.
    let parts = std::env::var("PEER_PARTS").unwrap_or_default();
    let part = |p: &str| parts.is_empty() || parts.split(',').any(|x| x == p);
    let mut first = true;
    results.versions.push((
        "Karmada".into(),
        peer_version("karmada", "karmada-controller-manager"),
    ));
    results.versions.push((
        "external-dns".into(),
        peer_version("external-dns", "external-dns"),
    ));
    // One deadline for both systems: a run that passes it is invalid, and
    // the time allowed must not favour either side.
    let deadline = Duration::from_secs((n as u64 * 6 / 10).max(600));
    for run in 0..plan.bulk_runs {
        for stack in [Stack::KcpIngress, Stack::Karmada { tuned: true }] {
            if !part(if stack == Stack::KcpIngress {
                "kcp"
            } else {
                "tuned"
            }) {
                continue;
            }
            let tag = format!(
                "peers-{}-{run}",
                if stack == Stack::KcpIngress {
                    "kcp"
                } else {
                    "tuned"
                }
            );
            let bulk = peers::bulk_run(
                plan.data_plane,
                stack,
                n,
                &tag,
                deadline,
                std::mem::take(&mut first).then_some(&mut results.versions),
            )
            .await;
            results.peers.push(stack, peers::or_failed(bulk));
        }
    }
    if part("dnsleg") {
        let singles = if plan.quick { 3 } else { 10 };
        match peers::dns_leg(plan.data_plane, n, singles, Duration::from_secs(300)).await {
            Ok((glbc, edns)) => {
                eprintln!("bench: DNS leg: glbc {glbc:?}; external-dns {edns:?}");
                results.peers.dns_leg = Some((n, glbc, edns));
            }
            Err(err) => eprintln!("bench: DNS leg failed: {err:#}"),
        }
    }
    for run in 0..if part("defaults") {
        plan.peer_default_runs
    } else {
        0
    } {
        let stack = Stack::Karmada { tuned: false };
        let deadline = Duration::from_secs((n as u64 * 9 / 10).max(300));
        let bulk = peers::bulk_run(
            plan.data_plane,
            stack,
            n,
            &format!("peers-defaults-{run}"),
            deadline,
            None,
        )
        .await;
        results.peers.push(stack, peers::or_failed(bulk));
    }
    Ok(())
}

/// The version a peer's wrapper module pins (hack/tools/NAME/go.mod).
fn peer_version(tool: &str, _binary: &str) -> String {
    let module = match tool {
        "karmada" => "github.com/karmada-io/karmada",
        _ => "sigs.k8s.io/external-dns",
    };
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("hack/tools/{tool}/go.mod"));
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("require {module} ")))
        .map_or_else(|| "?".into(), |v| v.trim().to_string())
}

async fn run(plan: &Plan, results: &mut Results) -> anyhow::Result<()> {
    // 1 and 5: one environment.
    {
        eprintln!("bench: starting the environment for single-ingress convergence and failover");
        let mut env = Env::up("single", plan.data_plane).await?;
        versions(&env, results).await;
        results.single = scenarios::single(&env, plan.single, Duration::from_secs(60)).await?;
        eprintln!("bench: single Gateway + HTTPRoute roots");
        results.gateway_single =
            gateway::single(&env, plan.single, Duration::from_secs(60)).await?;
        let dns = observe::Dns::of(&env)?;
        let hosts: Vec<String> = (0..plan.failover_hosts.min(plan.single))
            .map(|i| format!("s{i}.single.{}", dns.zone))
            .collect();
        results.failover = scenarios::failover(
            &mut env,
            &hosts,
            plan.failover_runs,
            Duration::from_secs(120),
        )
        .await?;
        if let Some(host) = hosts.first() {
            eprintln!("bench: DNS queries per second, the embedded server against BIND");
            results.dns_qps = Some(
                dns_qps::dns_qps(&env, host, plan.dns_queries, Duration::from_secs(120)).await?,
            );
        }
    }
    // 2, 3, 4 and 6: a fresh environment per bulk run.
    let last_size = plan.bulk.iter().copied().max().unwrap_or(0);
    for &n in &plan.bulk {
        let runs = if n >= 10_000 {
            plan.big_runs
        } else {
            plan.bulk_runs
        };
        // Each run is recorded as soon as it is done (an interrupted
        // benchmark still reports it).
        results.bulk.push((n, Vec::new()));
        for run in 0..runs {
            eprintln!("bench: bulk {n} roots, run {} of {runs}", run + 1);
            let mut env = Env::up(&format!("bulk{n}-{run}"), plan.data_plane).await?;
            let deadline = Duration::from_secs((n as u64 / 8).max(300));
            let (bulk, obs) = scenarios::bulk(&env, n, deadline).await?;
            eprintln!(
                "bench: writes by request:\n{}",
                scenarios::breakdown(&bulk.writes)
            );
            eprintln!(
                "bench: writes per root:\n{}",
                scenarios::per_root(&bulk.writes, n)
            );
            if let Some(why) = &bulk.invalid {
                anyhow::bail!("bulk {n}: {why}");
            }
            eprintln!(
                "bench: bulk {n}: DNS complete at {:.1}s; writes per apiserver {:?}; {} updates",
                bulk.dns,
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
            // Churn on the roots of the last run of the smallest size.
            let churn_here = results.churn.is_none() && run + 1 == runs && n == plan.bulk[0];
            if churn_here {
                let roots: Vec<String> = (0..n).map(|i| format!("b{i}")).collect();
                eprintln!(
                    "bench: churn: {} edits/s over {n} roots for {}s",
                    plan.churn_rate, plan.churn_seconds
                );
                let (lags, missing) = scenarios::churn(
                    &env,
                    &obs,
                    &roots,
                    plan.churn_rate,
                    Duration::from_secs(plan.churn_seconds),
                    Duration::from_secs(60),
                )
                .await?;
                results.churn = Some((lags, missing, n));
            }
            drop(obs);
            env.stop_components();
            let replayed = scenarios::replayed_writes(&bulk.writes);
            let mut floor = scenarios::floor(&env, &format!("r{run}"), &replayed, n).await?;
            eprintln!(
                "bench: floor {n}: {:.1}s (API {:.1}s, DNS {:.1}s); bulk/floor {:.2}",
                floor.total,
                floor.api,
                floor.dns,
                bulk.dns / floor.total
            );
            let minimal = scenarios::minimal_writes(n as u64, env.n_clusters as u64);
            let min = scenarios::floor(&env, &format!("m{run}"), &minimal, n).await?;
            eprintln!(
                "bench: minimal floor {n}: {} writes, {:.1}s (API {:.1}s, DNS {:.1}s); bulk/minimal floor {:.2}",
                min.writes,
                min.total,
                min.api,
                min.dns,
                bulk.dns / min.total
            );
            eprintln!(
                "bench: CPU seconds of the kube-apiservers and etcd: bulk {:.0}, floor {:.0}, minimal floor {:.0}",
                crate::env::api_servers_cpu(&bulk.cpu),
                floor.servers_cpu,
                min.servers_cpu
            );
            floor.minimal = Some(Box::new(min));
            if let Some((_, done)) = results.bulk.last_mut() {
                done.push((bulk, floor));
            }
            env.down();
            let _ = last_size;
        }
    }
    Ok(())
}

async fn versions(env: &Env, results: &mut Results) {
    results.versions = versions_of(env).await;
}

/// The versions of the servers of `env`, kcp-ingress's revision and rustc's.
pub async fn versions_of(env: &Env) -> Vec<(String, String)> {
    let mut v = Vec::new();
    let kube = env
        .cp
        .apiserver_version()
        .await
        .map(|i| i.git_version)
        .unwrap_or_else(|_| "?".into());
    v.push(("kube-apiserver".into(), kube));
    let etcd = std::process::Command::new(env.var("ETCD"))
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(|l| l.trim_start_matches("etcd Version: ").to_string())
        })
        .unwrap_or_else(|| "?".into());
    v.push(("etcd".into(), etcd));
    if let Ok(dns) = observe::Dns::of(env) {
        v.push(("BIND".into(), dns.version().await));
    }
    v.push(("kcp-ingress".into(), git_rev()));
    let rustc = std::process::Command::new("rustc")
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "?".into());
    v.push(("rustc".into(), rustc));
    v
}

fn git_rev() -> String {
    let repo = env!("CARGO_MANIFEST_DIR");
    let out = |args: &[&str]| {
        std::process::Command::new("git")
            .current_dir(repo)
            .args(args)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    let rev = out(&["rev-parse", "--short=12", "HEAD"]);
    let dirty = !out(&[
        "status",
        "--porcelain",
        "--untracked-files=no",
        "--",
        "src",
        "Cargo.toml",
        "Cargo.lock",
    ])
    .is_empty();
    format!(
        "{rev}{}",
        if dirty {
            " (with uncommitted changes)"
        } else {
            ""
        }
    )
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "?".into());
    format!(
        "{cores} cores ({cpu}), {:.1} GiB memory",
        mem_kib as f64 / 1024.0 / 1024.0
    )
}

fn ms(s: f64) -> String {
    if s.is_nan() {
        "–".into()
    } else if s < 10.0 {
        format!("{:.0} ms", s * 1000.0)
    } else {
        format!("{s:.1} s")
    }
}

fn mib(kib: u64) -> String {
    format!("{:.0} MiB", kib as f64 / 1024.0)
}

fn render(plan: &Plan, r: &Results, took: Duration, failure: Option<&str>) -> String {
    let mut t = String::new();
    if plan.many.is_some() {
        t.push_str(&many::render(
            &r.many,
            &model::Target {
                roots: 10_000.0,
                clusters: 100.0,
                placements: 3.0,
            },
        ));
    } else if plan.peers {
        t.push_str(&peers::render(
            plan.bulk.first().copied().unwrap_or(0),
            &r.peers,
        ));
    } else {
        let _ = writeln!(t, "| scenario | figure | result | goal |");
        let _ = writeln!(t, "| --- | --- | --- | --- |");
    }
    let three = |v: &[f64]| {
        format!(
            "{} / {} / {}",
            ms(percentile(v, 50.0)),
            ms(percentile(v, 95.0)),
            ms(percentile(v, 99.0))
        )
    };
    if !r.single.is_empty() {
        let col =
            |f: fn(&scenarios::Single) -> f64| -> Vec<f64> { r.single.iter().map(f).collect() };
        let n = r.single.len();
        let _ = writeln!(
            t,
            "| 1. single ingress ({n} roots, one at a time) | leaves in all 3 clusters, p50 / p95 / p99 | {} | |",
            three(&col(|s| s.0))
        );
        let _ = writeln!(
            t,
            "| | root status merged, p50 / p95 / p99 | {} | |",
            three(&col(|s| s.1))
        );
        let dns = col(|s| s.2);
        let _ = writeln!(
            t,
            "| | DNS answers all 3 addresses, p50 / p95 / p99 | {} | p99 < 1 s: {} |",
            three(&dns),
            verdict(percentile(&dns, 99.0) < 1.0)
        );
    }
    if !r.gateway_single.is_empty() {
        let col = |f: fn(&gateway::GatewaySingle) -> f64| -> Vec<f64> {
            r.gateway_single.iter().map(f).collect()
        };
        let n = r.gateway_single.len();
        let _ = writeln!(
            t,
            "| 1b. single Gateway + HTTPRoute ({n} pairs, one at a time) | root Gateway addresses merged, p50 / p95 / p99 | {} | |",
            three(&col(|s| s.0))
        );
        let dns = col(|s| s.1);
        let _ = writeln!(
            t,
            "| | DNS answers the route's hostname with all 3 addresses, p50 / p95 / p99 | {} | p99 < 1 s: {} |",
            three(&dns),
            verdict(percentile(&dns, 99.0) < 1.0)
        );
    }
    for (n, runs) in &r.bulk {
        if runs.is_empty() {
            continue;
        }
        let k = runs.len();
        let m = |f: &dyn Fn(&(Bulk, Floor)) -> f64| median(&runs.iter().map(f).collect::<Vec<_>>());
        let dns = m(&|(b, _)| b.dns);
        let _ = writeln!(
            t,
            "| 2. bulk {n} roots at once (median of {k}) | created / leaves downstream / merged / in DNS | {} / {} / {} / {} | |",
            ms(m(&|(b, _)| b.created)),
            ms(m(&|(b, _)| b.downstream)),
            ms(m(&|(b, _)| b.merged)),
            ms(dns)
        );
        let _ = writeln!(
            t,
            "| | roots per second (to DNS) | {:.0} | |",
            *n as f64 / dns
        );
        let per_root = |i: usize| {
            m(&|(b, _)| b.writes.get(i).map_or(0, scenarios::writes_total) as f64 / *n as f64)
        };
        let _ = writeln!(
            t,
            "| | API writes per root: control plane / each cluster; DNS UPDATEs | {:.1} / {:.1}, {:.1}, {:.1}; {:.0} | |",
            per_root(0),
            per_root(1),
            per_root(2),
            per_root(3),
            m(&|(b, _)| b.updates as f64)
        );
        let reads = |i: usize| {
            m(&|(b, _)| b.writes.get(i).map_or(0, scenarios::reads_total) as f64 / *n as f64)
        };
        let _ = writeln!(
            t,
            "| | API reads (GET, LIST) per root: control plane / each cluster | {:.1} / {:.1}, {:.1}, {:.1} | |",
            reads(0),
            reads(1),
            reads(2),
            reads(3)
        );
        let ratio = m(&|(b, f)| b.dns / f.total);
        let _ = writeln!(
            t,
            "| 3. floor: the same {:.0} API writes, {:.0} UPDATEs (median of {k}) | raw API writes / DNS in ideal batches / both at once | {} / {} / {} | |",
            m(&|(_, f)| f.writes as f64),
            m(&|(_, f)| f.updates as f64),
            ms(m(&|(_, f)| f.api)),
            ms(m(&|(_, f)| f.dns)),
            ms(m(&|(_, f)| f.total))
        );
        let _ = writeln!(
            t,
            "| | bulk / floor | {ratio:.2}× | ≤ 2×{} |",
            if *n >= 10_000 {
                format!(": {}", verdict(ratio <= 2.0))
            } else {
                String::new()
            }
        );
        let minimal = |f: &dyn Fn(&Floor) -> f64| {
            m(&|(_, floor)| floor.minimal.as_deref().map_or(f64::NAN, f))
        };
        let min_ratio = m(&|(b, floor)| {
            floor
                .minimal
                .as_deref()
                .map_or(f64::NAN, |min| b.dns / min.total)
        });
        let _ = writeln!(
            t,
            "| 3b. minimal floor: {:.0} API writes (2N + 3 per root in the control plane, the GlobalIngress and its status as GlobalIngress writes; copy and status per cluster), {:.0} UPDATEs (median of {k}) | raw API writes / DNS in ideal batches / both at once | {} / {} / {} | |",
            minimal(&|f| f.writes as f64),
            minimal(&|f| f.updates as f64),
            ms(minimal(&|f| f.api)),
            ms(minimal(&|f| f.dns)),
            ms(minimal(&|f| f.total))
        );
        let _ = writeln!(
            t,
            "| | bulk / minimal floor | {min_ratio:.2}× | ≤ 1.5×{} |",
            if *n >= 10_000 {
                format!(": {}", verdict(min_ratio <= 1.5))
            } else {
                String::new()
            }
        );
        let _ = writeln!(
            t,
            "| | CPU seconds of the kube-apiservers and etcd: bulk / floor / minimal floor | {:.0} / {:.0} / {:.0} | |",
            m(&|(b, _)| crate::env::api_servers_cpu(&b.cpu)),
            m(&|(_, f)| f.servers_cpu),
            minimal(&|f| f.servers_cpu)
        );
        let hwm_c = m(&|(b, _)| b.controller_kib.0 as f64) as u64;
        let hwm_g = m(&|(b, _)| b.glbc_kib.0 as f64) as u64;
        let _ = writeln!(
            t,
            "| 4. memory at {n} roots × 3 clusters | peak RSS: controller (with 3 push syncers) / glbc | {} / {} | < 150 MB each{} |",
            mib(hwm_c),
            mib(hwm_g),
            if *n >= 10_000 {
                format!(": {}", verdict(hwm_c.max(hwm_g) * 1024 < 150_000_000))
            } else {
                String::new()
            }
        );
        let roles: Vec<&str> = runs[0].0.cpu.iter().map(|(r, _)| r.as_str()).collect();
        let cpu: Vec<String> = roles
            .iter()
            .enumerate()
            .map(|(i, role)| {
                format!(
                    "{role} {:.0}",
                    m(&|(b, _)| b.cpu.get(i).map_or(0.0, |c| c.1))
                )
            })
            .collect();
        let _ = writeln!(
            t,
            "| | CPU seconds until converged (2 cores: at most {:.0}) | {} | |",
            2.0 * dns,
            cpu.join(", ")
        );
    }
    if !r.failover.is_empty() {
        let gone: Vec<f64> = r.failover.iter().map(|f| f.0).collect();
        let back: Vec<f64> = r.failover.iter().map(|f| f.1).collect();
        let served: Vec<f64> = r.failover.iter().map(|f| f.2).collect();
        let settled: Vec<f64> = r.failover.iter().map(|f| f.3).collect();
        let max = gone.iter().copied().fold(0.0, f64::max);
        let _ = writeln!(
            t,
            "| 5. failover ({} runs, apiserver + {} killed) | address gone from DNS: p50 / max | {} / {} | < 5 s: {} |",
            gone.len(),
            plan.data_plane.short(),
            ms(median(&gone)),
            ms(max),
            verdict(max < 5.0)
        );
        let _ = writeln!(
            t,
            "| | after restart: back in DNS / served by the cluster's {} again / every GlobalIngress settled, p50 | {} / {} / {} | |",
            match plan.data_plane {
                DataPlane::Traefik => "backend through Traefik",
                DataPlane::Standin => "stand-in",
            },
            ms(median(&back)),
            ms(median(&served)),
            ms(median(&settled))
        );
    }
    if let Some(q) = &r.dns_qps {
        let _ = writeln!(
            t,
            "| 7. DNS answers ({} A queries per server, 4 UDP sockets, loopback) | queries/s: embedded (`--dns-provider embedded`) / BIND 9 | {:.0} / {:.0}; {} lost | |",
            q.queries, q.embedded, q.bind, q.lost
        );
    }
    if let Some((lags, missing, n)) = &r.churn {
        let _ = writeln!(
            t,
            "| 6. churn ({} edits/s over {n} roots for {} s) | edit → all 3 copies: p50 / p99 / max; lost | {} / {} / {}; {missing} of {} | |",
            plan.churn_rate,
            plan.churn_seconds,
            ms(percentile(lags, 50.0)),
            ms(percentile(lags, 99.0)),
            ms(lags.iter().copied().fold(0.0, f64::max)),
            lags.len() + missing
        );
    }
    let mut out = String::new();
    let _ = writeln!(out, "Machine: {}", machine());
    let versions: Vec<String> = r.versions.iter().map(|(k, v)| format!("{k} {v}")).collect();
    let _ = writeln!(out, "Versions: {}", versions.join(", "));
    let _ = writeln!(out, "Data plane: {}", plan.data_plane.describe());
    let _ = writeln!(
        out,
        "Command: `{}` (took {:.0} s)\n",
        plan.command(),
        took.as_secs_f64()
    );
    out.push_str(&t);
    if let Some(f) = failure {
        let _ = writeln!(out, "\n**Incomplete: {f}**");
    }
    out
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "not met" }
}

/// Replaces the full or quick section of docs/BENCHMARKS.md.
fn write_doc(plan: &Plan, table: &str) -> anyhow::Result<()> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/BENCHMARKS.md");
    let which = match (plan.peers, plan.quick) {
        _ if plan.many.is_some() => "many",
        (true, true) => "peers-quick",
        (true, false) => "peers",
        (false, true) => "quick",
        (false, false) => "full",
    };
    let (begin, end) = (
        format!("<!-- bench:{which}:begin -->"),
        format!("<!-- bench:{which}:end -->"),
    );
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let section = format!("{begin}\n{table}\n{end}");
    let new = match (text.find(&begin), text.find(&end)) {
        (Some(b), Some(e)) if b < e => format!("{}{section}{}", &text[..b], &text[e + end.len()..]),
        _ => format!("{text}\n{section}\n"),
    };
    std::fs::write(&path, new)?;
    Ok(())
}
