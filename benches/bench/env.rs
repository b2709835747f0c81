//! The benchmark's environment: the real servers of `hack/test-env.sh`
//! (etcd, a control plane, physical clusters, BIND 9), a data plane per
//! cluster (Traefik from `hack/traefik-env.sh`, or the stand-in load
//! balancer), and the kcp-ingress processes from the release build, started
//! the way `hack/local-setup.sh` starts them. Everything is stopped when the
//! [`Env`] is dropped, and by watchers if this process dies.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::{Namespace, Secret, Service};
use kcp_ingress::apis::Cluster;
use kcp_ingress::labels;
use kube::api::{Api, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::json;

/// The namespace the benchmark's roots live in.
pub const NS: &str = "bench";
/// The one Service every benchmark root references.
pub const BACKEND: &str = "backend";
/// Physical clusters of every scenario but the many-clusters one
/// (`Env::n_clusters` is an environment's own count).
pub const CLUSTERS: usize = 3;

/// The roles of [`Env::cpu`] that serve the API: every kube-apiserver and
/// their etcd (what a floor's writes cost the servers).
pub const API_SERVERS: [&str; 3] = ["control-plane apiserver", "cluster apiservers", "etcd"];

/// The CPU seconds of the [`API_SERVERS`] in `cpu` (from [`Env::cpu`]).
pub fn api_servers_cpu(cpu: &[(String, f64)]) -> f64 {
    cpu.iter()
        .filter(|(role, _)| API_SERVERS.contains(&role.as_str()))
        .map(|(_, s)| s)
        .sum()
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// What plays each physical cluster's ingress controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataPlane {
    /// Traefik per cluster (`hack/traefik-env.sh`), in front of a backend
    /// per cluster in the network namespace kcpi-K; as `make local-setup`.
    Traefik,
    /// `standin-lb` per cluster: writes the Ingress status and answers HTTP
    /// itself with the cluster's name.
    Standin,
}

impl DataPlane {
    /// `traefik` or `standin`, as `make local-setup DATA_PLANE=...` takes them.
    pub fn parse(value: &str) -> anyhow::Result<Self> {
        match value {
            "traefik" => Ok(Self::Traefik),
            "standin" => Ok(Self::Standin),
            other => bail!("the data plane must be traefik or standin, not {other:?}"),
        }
    }

    /// What the table says about it.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Traefik => {
                "Traefik (hack/traefik-env.sh) on 127.0.1.K:80 per cluster, \
                 in front of a backend per cluster in network namespace kcpi-K"
            }
            Self::Standin => {
                "standin-lb (the stand-in load balancer) on 127.0.1.K per cluster; not Traefik"
            }
        }
    }

    /// Its short name in the table's rows.
    /// The GatewayClass the data plane implements in every cluster: what the
    /// Clusters' class label names.
    pub fn gateway_class(self) -> &'static str {
        match self {
            DataPlane::Traefik => "traefik",
            DataPlane::Standin => labels::standin::GATEWAY_CLASS,
        }
    }

    pub fn short(self) -> &'static str {
        match self {
            Self::Traefik => "Traefik",
            Self::Standin => "stand-in",
        }
    }
}

fn script(name: &str) -> PathBuf {
    repo().join("hack").join(name)
}

/// The address of cluster `k`'s data plane (1-based).
pub fn lb_address(k: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 1, u8::try_from(k).unwrap_or(255))
}

/// A process this benchmark started; stopped (SIGTERM, then SIGKILL) on
/// drop. A watcher process stops it too if the benchmark dies first.
pub struct Proc {
    pub name: String,
    child: Child,
    watcher: Option<Child>,
}

impl Proc {
    /// Starts `program ARGS` with its output in `log`.
    pub fn spawn(
        name: &str,
        program: &Path,
        args: &[String],
        log: &Path,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        let child = Command::new(program)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        let (owner, pid) = (std::process::id(), child.id());
        // Stops the child if the benchmark is killed; exits with the child.
        let watcher = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "while kill -0 {owner} 2>/dev/null && kill -0 {pid} 2>/dev/null; do sleep 1; done; \
                 if ! kill -0 {owner} 2>/dev/null; then kill -TERM {pid} 2>/dev/null; sleep 5; kill -KILL {pid} 2>/dev/null; fi; true"
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok();
        Ok(Self {
            name: name.to_string(),
            child,
            watcher,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then SIGKILL after `grace`.
    pub fn terminate(&mut self, grace: Duration) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline {
                if !matches!(self.child.try_wait(), Ok(None)) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if matches!(self.child.try_wait(), Ok(None)) {
                eprintln!("bench: {} did not stop in {grace:?}; killing it", self.name);
                let _ = self.child.kill();
            }
        }
        let _ = self.child.wait();
        if let Some(mut w) = self.watcher.take() {
            // It notices the child is gone within a second.
            let deadline = Instant::now() + Duration::from_secs(3);
            while matches!(w.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = w.kill();
            let _ = w.wait();
        }
    }

    /// Sends SIGKILL and returns at once (drop or [`Proc::terminate`] reaps it).
    pub fn signal_kill(&mut self) {
        let _ = self.child.kill();
    }

    /// Peak and current resident set size (VmHWM, VmRSS), in KiB.
    pub fn memory_kib(&self) -> Option<(u64, u64)> {
        memory_kib(self.pid())
    }

    /// CPU time used so far (user + system).
    pub fn cpu_seconds(&self) -> Option<f64> {
        cpu_seconds(self.pid())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.terminate(Duration::from_secs(10));
    }
}

/// Peak and current resident set size (VmHWM, VmRSS) of a process, in KiB.
pub fn memory_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    };
    Some((field("VmHWM:")?, field("VmRSS:")?))
}

/// CPU time a process used so far (user + system), from /proc/PID/stat.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// Reads a `KEY=value` file.
fn read_env_file(path: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text
        .lines()
        .filter_map(|l| l.trim().split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches(['"', '\'']).to_string()))
        .collect())
}

/// Runs `hack/test-env.sh ARGS`, giving up after `deadline`.
fn test_env(args: &[&str], deadline: Duration) -> anyhow::Result<()> {
    hack("test-env.sh", args, deadline)
}

/// Runs `hack/traefik-env.sh ARGS`, giving up after `deadline`.
fn traefik_env(args: &[&str], deadline: Duration) -> anyhow::Result<()> {
    hack("traefik-env.sh", args, deadline)
}

/// Runs `hack/NAME ARGS`, giving up after `deadline`.
pub fn hack(name: &str, args: &[&str], deadline: Duration) -> anyhow::Result<()> {
    let mut child = Command::new(script(name))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("running hack/{name}"))?;
    let until = Instant::now() + deadline;
    loop {
        if let Some(status) = child.try_wait()? {
            if status.success() {
                return Ok(());
            }
            bail!("hack/{name} {} failed ({status})", args.join(" "));
        }
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "hack/{name} {} did not finish within {deadline:?}",
                args.join(" ")
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The pid recorded (by hack/lib/procs.sh) as `name` in `run_dir`, if that
/// process still runs with `mark` on its command line.
fn recorded_pid(run_dir: &Path, name: &str, mark: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(run_dir.join(format!("{name}.pid"))).ok()?;
    let pid: u32 = text.split_whitespace().next()?.parse().ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    String::from_utf8_lossy(&cmdline)
        .contains(&*mark.to_string_lossy())
        .then_some(pid)
}

/// A kube client from a kubeconfig file.
pub async fn client_from(path: &Path) -> anyhow::Result<kube::Client> {
    let kubeconfig =
        Kubeconfig::read_from(path).with_context(|| format!("reading {}", path.display()))?;
    let mut config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    // The benchmark's own requests must not be the bottleneck.
    config.read_timeout = Some(Duration::from_secs(60));
    Ok(kube::Client::try_from(config)?)
}

/// A free TCP port on `ip`.
pub fn free_port(ips: &[IpAddr]) -> anyhow::Result<u16> {
    for _ in 0..50 {
        let probe = std::net::TcpListener::bind(SocketAddr::new(ips[0], 0))?;
        let port = probe.local_addr()?.port();
        drop(probe);
        if ips[1..]
            .iter()
            .all(|ip| std::net::TcpListener::bind(SocketAddr::new(*ip, port)).is_ok())
        {
            return Ok(port);
        }
    }
    bail!("no free port on {ips:?}")
}

/// What runs on the servers: kcp-ingress, or a peer (`make bench PEERS=1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stack {
    /// `kcp-ingress controller --push-syncers` and `kcp-ingress glbc`.
    KcpIngress,
    /// Karmada (webhook, controller-manager, scheduler) with external-dns
    /// publishing the roots; `tuned`: raised rate limits and concurrency.
    Karmada { tuned: bool },
    /// `kcp-ingress controller --push-syncers` alone: the DNS leg starts
    /// the publisher (the glbc, external-dns) itself.
    ControllerOnly,
}

impl Stack {
    /// Its name in the tables.
    pub fn name(self) -> &'static str {
        match self {
            Self::KcpIngress => "kcp-ingress",
            Self::Karmada { tuned: false } => "Karmada + external-dns, defaults",
            Self::Karmada { tuned: true } => "Karmada + external-dns, tuned",
            Self::ControllerOnly => "kcp-ingress controller",
        }
    }
}

/// One running environment with kcp-ingress (or a peer).
pub struct Env {
    pub dir: PathBuf,
    pub vars: BTreeMap<String, String>,
    pub cp: kube::Client,
    pub clusters: Vec<kube::Client>,
    /// Physical clusters (`cluster-1` ..): [`CLUSTERS`] but in the
    /// many-clusters scenario.
    pub n_clusters: usize,
    pub data_plane: DataPlane,
    /// DataPlane::Standin: the stand-ins, per cluster.
    pub standins: Vec<Option<Proc>>,
    /// DataPlane::Traefik: `hack/traefik-env.sh up` ran (and `down` has not).
    traefik_running: bool,
    /// DataPlane::Traefik: runs `hack/traefik-env.sh down` if the benchmark dies.
    traefik_watcher: Option<Child>,
    pub controller: Option<Proc>,
    pub glbc: Option<Proc>,
    /// What runs on the servers.
    pub stack: Stack,
    /// The peer's processes (Karmada's, external-dns), by name.
    pub peers: Vec<Proc>,
    pub admin: SocketAddr,
    lb_port: u16,
    stopped: bool,
}

impl Env {
    /// Starts the servers and kcp-ingress; returns once every Cluster is Ready.
    pub async fn up(tag: &str, data_plane: DataPlane) -> anyhow::Result<Self> {
        Self::up_with(tag, data_plane, Stack::KcpIngress).await
    }

    /// As [`Env::up`], with `stack` running on the servers instead of kcp-ingress.
    pub async fn up_with(tag: &str, data_plane: DataPlane, stack: Stack) -> anyhow::Result<Self> {
        Self::up_sized(tag, data_plane, stack, CLUSTERS).await
    }

    /// As [`Env::up_with`], with `clusters` physical clusters.
    pub async fn up_sized(
        tag: &str,
        data_plane: DataPlane,
        stack: Stack,
        clusters: usize,
    ) -> anyhow::Result<Self> {
        let n_clusters = clusters;
        // Twenty kube-apiservers (each taking the Gateway API CRDs) take
        // minutes to start on two busy cores.
        let start_timeout = (n_clusters as u64 * 60).max(120);
        let dir =
            std::env::temp_dir().join(format!("kcp-ingress-bench-{}-{tag}", std::process::id()));
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        let dir_s = dir.to_string_lossy().to_string();
        let owner = std::process::id().to_string();
        let clusters = n_clusters.to_string();
        let timeout = start_timeout.to_string();
        let up = tokio::task::spawn_blocking({
            let dir_s = dir_s.clone();
            move || {
                test_env(
                    &[
                        "up",
                        "--dir",
                        &dir_s,
                        "--clusters",
                        &clusters,
                        "--owner-pid",
                        &owner,
                        "--timeout",
                        &timeout,
                    ],
                    Duration::from_secs(start_timeout + 60),
                )
            }
        })
        .await?;
        let cp = match up {
            Ok(()) => client_from(&dir.join("control-plane.kubeconfig")).await,
            Err(err) => Err(err),
        };
        let cp = match cp {
            Ok(cp) => cp,
            Err(err) => {
                let _ = test_env(&["down", "--dir", &dir_s], Duration::from_secs(120));
                return Err(err);
            }
        };
        // From here on, dropping the Env stops the servers.
        let mut env = Env {
            dir: dir.clone(),
            vars: BTreeMap::new(),
            cp,
            clusters: Vec::new(),
            n_clusters,
            data_plane,
            standins: Vec::new(),
            traefik_running: false,
            traefik_watcher: None,
            controller: None,
            glbc: None,
            stack,
            peers: Vec::new(),
            admin: SocketAddr::from(([127, 0, 0, 1], 0)),
            lb_port: 0,
            stopped: false,
        };
        env.vars = read_env_file(&dir.join("env"))?;
        for k in 1..=n_clusters {
            env.clusters
                .push(client_from(&dir.join(format!("cluster-{k}.kubeconfig"))).await?);
        }
        env.start_data_plane().await?;
        match stack {
            Stack::KcpIngress | Stack::ControllerOnly => {
                env.prepare().await?;
                env.start_kcp_ingress()?;
                env.wait_ready(Duration::from_secs(start_timeout)).await?;
            }
            Stack::Karmada { tuned } => {
                env.prepare_namespace().await?;
                crate::peers::start_karmada(&mut env, tuned).await?;
            }
        }
        Ok(env)
    }

    pub fn var(&self, key: &str) -> &str {
        self.vars.get(key).map_or("", String::as_str)
    }

    pub fn log(&self, name: &str) -> PathBuf {
        self.dir.join("logs").join(format!("{name}.log"))
    }

    /// The kcp-ingress binary under test.
    pub fn kcp_ingress_bin() -> PathBuf {
        Self::bin("kcp-ingress")
    }

    fn bin(name: &str) -> PathBuf {
        match name {
            "standin-lb" => PathBuf::from(env!("CARGO_BIN_EXE_standin-lb")),
            _ => PathBuf::from(env!("CARGO_BIN_EXE_kcp-ingress")),
        }
    }

    /// Where `hack/traefik-env.sh` keeps its state, logs and pid files.
    pub fn traefik_dir(&self) -> PathBuf {
        self.dir.join("traefik")
    }

    /// The port the data plane serves HTTP on, at [`lb_address`].
    pub fn http_port(&self) -> u16 {
        match self.data_plane {
            DataPlane::Traefik => 80,
            DataPlane::Standin => self.lb_port,
        }
    }

    /// Starts every cluster's data plane. Traefik as `make local-setup`
    /// starts it (`hack/traefik-env.sh up`), with the EndpointSlice of the
    /// benchmark's one backend Service.
    async fn start_data_plane(&mut self) -> anyhow::Result<()> {
        match self.data_plane {
            DataPlane::Standin => {
                let addrs: Vec<IpAddr> = (1..=self.n_clusters)
                    .map(|k| lb_address(k).into())
                    .collect();
                self.lb_port = free_port(&addrs)?;
                for k in 1..=self.n_clusters {
                    let p = self.spawn_standin(k)?;
                    self.standins.push(Some(p));
                }
            }
            DataPlane::Traefik => {
                let traefik = self.traefik_dir().to_string_lossy().to_string();
                // Stops Traefik, the backends and the network namespaces if
                // the benchmark dies without stopping them.
                let owner = std::process::id();
                self.traefik_watcher = Command::new("bash")
                    .arg("-c")
                    .arg(format!(
                        "while kill -0 {owner} 2>/dev/null; do sleep 1; done; exec \"$0\" down --dir \"$1\""
                    ))
                    .arg(script("traefik-env.sh"))
                    .arg(&traefik)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .ok();
                self.traefik_running = true;
                let env_dir = self.dir.to_string_lossy().to_string();
                let service = format!("{NS}/{BACKEND}");
                let clusters = self.n_clusters.to_string();
                tokio::task::spawn_blocking(move || {
                    traefik_env(
                        &[
                            "up",
                            "--dir",
                            &traefik,
                            "--env-dir",
                            &env_dir,
                            "--clusters",
                            &clusters,
                            "--service",
                            &service,
                            "--timeout",
                            "60",
                        ],
                        Duration::from_secs(180),
                    )
                })
                .await??;
            }
        }
        Ok(())
    }

    /// Kills cluster `k`'s data plane (SIGKILL) and returns at once; a
    /// stand-in comes back to be reaped by dropping it.
    pub fn kill_data_plane(&mut self, k: usize) -> anyhow::Result<Option<Proc>> {
        match self.data_plane {
            DataPlane::Standin => {
                let mut lb = self.standins[k - 1].take();
                if let Some(lb) = lb.as_mut() {
                    lb.signal_kill();
                }
                Ok(lb)
            }
            DataPlane::Traefik => {
                let dir = self.traefik_dir();
                let pid = recorded_pid(&dir.join("run"), &format!("traefik-{k}"), &dir)
                    .with_context(|| format!("no running Traefik of cluster-{k}"))?;
                let killed = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status()?;
                if !killed.success() {
                    bail!("cannot kill the Traefik of cluster-{k} (pid {pid})");
                }
                Ok(None)
            }
        }
    }

    /// Starts cluster `k`'s data plane again after [`Env::kill_data_plane`]
    /// (Traefik: `hack/traefik-env.sh start`, which waits for its /ping).
    pub async fn restart_data_plane(&mut self, k: usize) -> anyhow::Result<()> {
        match self.data_plane {
            DataPlane::Standin => {
                self.standins[k - 1] = Some(self.spawn_standin(k)?);
            }
            DataPlane::Traefik => {
                let traefik = self.traefik_dir().to_string_lossy().to_string();
                let env_dir = self.dir.to_string_lossy().to_string();
                tokio::task::spawn_blocking(move || {
                    traefik_env(
                        &[
                            "start",
                            "--dir",
                            &traefik,
                            "--env-dir",
                            &env_dir,
                            "--cluster",
                            &k.to_string(),
                            "--timeout",
                            "60",
                        ],
                        Duration::from_secs(90),
                    )
                })
                .await??;
            }
        }
        Ok(())
    }

    /// Stops every cluster's data plane (Traefik: `hack/traefik-env.sh
    /// down`, which also removes the network namespaces).
    fn stop_data_plane(&mut self) {
        for s in &mut self.standins {
            drop(s.take());
        }
        if std::mem::take(&mut self.traefik_running) {
            let traefik = self.traefik_dir().to_string_lossy().to_string();
            if let Err(err) = traefik_env(&["down", "--dir", &traefik], Duration::from_secs(60)) {
                eprintln!("bench: stopping Traefik in {traefik}: {err:#}");
            }
        }
        if let Some(mut watcher) = self.traefik_watcher.take() {
            let _ = watcher.kill();
            let _ = watcher.wait();
        }
    }

    /// The pids of the data plane's own processes (Traefik; the stand-ins).
    fn data_plane_pids(&self) -> Vec<u32> {
        match self.data_plane {
            DataPlane::Standin => self.standins.iter().flatten().map(Proc::pid).collect(),
            DataPlane::Traefik => {
                let dir = self.traefik_dir();
                (1..=self.n_clusters)
                    .filter_map(|k| recorded_pid(&dir.join("run"), &format!("traefik-{k}"), &dir))
                    .collect()
            }
        }
    }

    /// Starts the stand-in load balancer of cluster `k`.
    pub fn spawn_standin(&self, k: usize) -> anyhow::Result<Proc> {
        let args = vec![
            "--kubeconfig".into(),
            self.dir
                .join(format!("cluster-{k}.kubeconfig"))
                .to_string_lossy()
                .to_string(),
            "--cluster".into(),
            format!("cluster-{k}"),
            "--address".into(),
            lb_address(k).to_string(),
            "--port".into(),
            self.lb_port.to_string(),
        ];
        Proc::spawn(
            &format!("standin-lb-{k}"),
            &Self::bin("standin-lb"),
            &args,
            &self.log(&format!("standin-lb-{k}")),
            &[("RUST_LOG", "warn")],
        )
    }

    /// The namespace, the shared backend Service, and the Clusters with
    /// their kubeconfig Secrets (push mode), as local-setup registers them.
    async fn prepare(&self) -> anyhow::Result<()> {
        self.prepare_namespace().await?;
        self.prepare_clusters().await
    }

    /// The namespaces and the shared backend Service on the control plane.
    pub async fn prepare_namespace(&self) -> anyhow::Result<()> {
        let pp = PatchParams::apply("kcp-ingress-bench").force();
        let namespaces: Api<Namespace> = Api::all(self.cp.clone());
        for ns in [NS, "kcp-ingress-system"] {
            namespaces
                .patch(
                    ns,
                    &pp,
                    &Patch::Apply(
                        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
                    ),
                )
                .await?;
        }
        Api::<Service>::namespaced(self.cp.clone(), NS)
            .patch(
                BACKEND,
                &pp,
                &Patch::Apply(json!({
                    "apiVersion": "v1", "kind": "Service",
                    "metadata": {"name": BACKEND, "namespace": NS},
                    "spec": {"ports": [{"port": 80, "targetPort": 8080}]},
                })),
            )
            .await?;
        Ok(())
    }

    async fn prepare_clusters(&self) -> anyhow::Result<()> {
        let pp = PatchParams::apply("kcp-ingress-bench").force();
        let secrets: Api<Secret> = Api::namespaced(self.cp.clone(), "kcp-ingress-system");
        let clusters: Api<Cluster> = Api::all(self.cp.clone());
        for k in 1..=self.n_clusters {
            let kubeconfig =
                std::fs::read_to_string(self.dir.join(format!("cluster-{k}.kubeconfig")))?;
            secrets
                .patch(
                    &format!("cluster-{k}-kubeconfig"),
                    &pp,
                    &Patch::Apply(json!({
                        "apiVersion": "v1", "kind": "Secret",
                        "metadata": {"name": format!("cluster-{k}-kubeconfig"), "namespace": "kcp-ingress-system"},
                        "stringData": {"kubeconfig": kubeconfig},
                    })),
                )
                .await?;
            clusters
                .patch(
                    &format!("cluster-{k}"),
                    &pp,
                    &Patch::Apply(json!({
                        "apiVersion": "kcp-ingress.dev/v1alpha1", "kind": "Cluster",
                        "metadata": {"name": format!("cluster-{k}"), "labels": {
                            "region": format!("local-{k}"),
                            (labels::gateway_api::CLASS_LABEL): self.data_plane.gateway_class(),
                        }},
                        "spec": {"kubeconfigSecretRef": {
                            "namespace": "kcp-ingress-system",
                            "name": format!("cluster-{k}-kubeconfig"),
                            "key": "kubeconfig",
                        }},
                    })),
                )
                .await?;
        }
        Ok(())
    }

    /// `kcp-ingress controller --push-syncers` and `kcp-ingress glbc`, with
    /// default settings (as hack/local-setup.sh, without its short TTL).
    fn start_kcp_ingress(&mut self) -> anyhow::Result<()> {
        let cp = self
            .dir
            .join("control-plane.kubeconfig")
            .to_string_lossy()
            .to_string();
        let admin_port = free_port(&[IpAddr::V4(Ipv4Addr::LOCALHOST)])?;
        self.admin = SocketAddr::from(([127, 0, 0, 1], admin_port));
        let secret_file = self.dir.join("tsig.secret");
        std::fs::write(&secret_file, format!("{}\n", self.var("DNS_TSIG_SECRET")))?;
        let log_level = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
        let env = [("RUST_LOG", log_level.as_str())];
        self.controller = Some(Proc::spawn(
            "controller",
            &Self::bin("kcp-ingress"),
            &[
                "controller".into(),
                "--kubeconfig".into(),
                cp.clone(),
                "--push-syncers".into(),
                "--admin-address".into(),
                self.admin.to_string(),
            ],
            &self.log("controller"),
            &env,
        )?);
        if self.stack != Stack::ControllerOnly {
            self.glbc = Some(self.spawn_glbc()?);
        }
        Ok(())
    }

    /// `kcp-ingress glbc` at its defaults, against the environment's BIND.
    pub fn spawn_glbc(&self) -> anyhow::Result<Proc> {
        let cp = self
            .dir
            .join("control-plane.kubeconfig")
            .to_string_lossy()
            .to_string();
        let secret_file = self.dir.join("tsig.secret");
        let log_level = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
        let env = [("RUST_LOG", log_level.as_str())];
        Proc::spawn(
            "glbc",
            &Self::bin("kcp-ingress"),
            &[
                "glbc".into(),
                "--kubeconfig".into(),
                cp,
                "--dns-server".into(),
                "127.0.0.1".into(),
                "--dns-port".into(),
                self.var("DNS_PORT").to_string(),
                "--zone".into(),
                "kcp-ingress.test".into(),
                "--tsig-key-name".into(),
                self.var("DNS_TSIG_KEY_NAME").to_string(),
                "--tsig-algorithm".into(),
                self.var("DNS_TSIG_ALGORITHM").to_string(),
                "--tsig-secret-file".into(),
                secret_file.to_string_lossy().to_string(),
            ],
            &self.log("glbc"),
            &env,
        )
    }

    /// Waits until every Cluster is Ready and reports that Ingresses are synced.
    async fn wait_ready(&self, deadline: Duration) -> anyhow::Result<()> {
        let clusters: Api<Cluster> = Api::all(self.cp.clone());
        let until = Instant::now() + deadline;
        loop {
            let list = clusters.list(&Default::default()).await?;
            let ready = list
                .items
                .iter()
                .filter(|c| {
                    // Ready, and its syncer reports the Ingresses it
                    // syncs: as in a fleet whose clusters joined before
                    // the roots came.
                    c.status.as_ref().is_some_and(|s| {
                        s.conditions
                            .iter()
                            .any(|c| c.type_ == "Ready" && c.status == "True")
                            && s.synced_resources
                                .iter()
                                .any(|r| r.served && r.resource == "ingresses.networking.k8s.io")
                    })
                })
                .count();
            if ready == self.n_clusters {
                return Ok(());
            }
            if Instant::now() > until {
                bail!(
                    "only {ready} of {} Clusters Ready after {deadline:?}; see {}",
                    self.n_clusters,
                    self.log("controller").display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The pid of a server of the test environment (`cluster-K`, ...).
    pub fn server_pid(&self, server: &str) -> Option<u32> {
        // Only a process of this environment.
        recorded_pid(&self.dir.join("run"), server, &self.dir)
    }

    /// CPU seconds used so far by every process of the environment, by role.
    pub fn cpu(&self) -> Vec<(String, f64)> {
        let var = |k: &str| {
            self.var(k)
                .parse::<u32>()
                .ok()
                .and_then(cpu_seconds)
                .unwrap_or(0.0)
        };
        let clusters: f64 = (1..=self.n_clusters)
            .map(|k| var(&format!("CLUSTER_{k}_PID")))
            .sum();
        let data_plane: f64 = self
            .data_plane_pids()
            .into_iter()
            .filter_map(cpu_seconds)
            .sum();
        let [cp, cl, etcd] = API_SERVERS;
        let mut out = vec![
            (cp.to_string(), var("CONTROL_PLANE_PID")),
            (cl.to_string(), clusters),
            (etcd.to_string(), var("ETCD_PID")),
            ("BIND".to_string(), var("NAMED_PID")),
        ];
        for p in self.components() {
            out.push((p.name.clone(), p.cpu_seconds().unwrap_or(0.0)));
        }
        out.push((
            match self.data_plane {
                DataPlane::Traefik => "Traefik",
                DataPlane::Standin => "stand-ins",
            }
            .to_string(),
            data_plane,
        ));
        out.push((
            "benchmark".to_string(),
            cpu_seconds(std::process::id()).unwrap_or(0.0),
        ));
        out
    }

    /// Every process of the environment, by name, with its pid: the
    /// control-plane apiserver, each cluster's apiserver, etcd, BIND,
    /// kcp-ingress's (or the peer's) and the data plane's.
    pub fn processes(&self) -> Vec<(String, u32)> {
        let var = |k: &str| self.var(k).parse::<u32>().ok();
        let mut out = Vec::new();
        let mut server = |name: String, key: &str| {
            if let Some(pid) = var(key) {
                out.push((name, pid));
            }
        };
        server("control-plane apiserver".into(), "CONTROL_PLANE_PID");
        for k in 1..=self.n_clusters {
            server(
                format!("cluster-{k} apiserver"),
                &format!("CLUSTER_{k}_PID"),
            );
        }
        server("etcd".into(), "ETCD_PID");
        server("BIND".into(), "NAMED_PID");
        for p in self.components() {
            out.push((p.name.clone(), p.pid()));
        }
        match self.data_plane {
            DataPlane::Standin => {
                for p in self.standins.iter().flatten() {
                    out.push((p.name.clone(), p.pid()));
                }
            }
            DataPlane::Traefik => {
                for (i, pid) in self.data_plane_pids().into_iter().enumerate() {
                    out.push((format!("traefik-{}", i + 1), pid));
                }
            }
        }
        out
    }

    /// The processes of what runs on the servers: kcp-ingress's, or the peer's.
    pub fn components(&self) -> Vec<&Proc> {
        self.controller
            .iter()
            .chain(self.glbc.iter())
            .chain(self.peers.iter())
            .collect()
    }

    /// `hack/test-env.sh stop|start --server NAME`.
    pub async fn server(&self, action: &str, server: &str) -> anyhow::Result<()> {
        let dir = self.dir.to_string_lossy().to_string();
        let (action, server) = (action.to_string(), server.to_string());
        tokio::task::spawn_blocking(move || {
            let mut args = vec![action.as_str(), "--dir", &dir, "--server", &server];
            if action == "start" {
                args.extend(["--timeout", "60"]);
            }
            test_env(&args, Duration::from_secs(90))
        })
        .await?
    }

    /// Stops the kcp-ingress processes and the data plane (the servers keep running).
    pub fn stop_components(&mut self) {
        for p in [self.controller.take(), self.glbc.take()]
            .into_iter()
            .flatten()
        {
            drop(p);
        }
        // The peers in reverse order of start (external-dns and the
        // controllers before the webhook).
        while let Some(p) = self.peers.pop() {
            drop(p);
        }
        self.stop_data_plane();
    }

    /// Stops everything (once).
    pub fn down(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        self.stop_components();
        let dir = self.dir.to_string_lossy().to_string();
        if let Err(err) = test_env(&["down", "--dir", &dir], Duration::from_secs(120)) {
            eprintln!("bench: stopping the environment in {dir}: {err:#}");
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        self.down();
    }
}
