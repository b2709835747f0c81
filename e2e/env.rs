//! The real test environment, started through `hack/test-env.sh` (the same
//! command a person uses) and stopped when the [`TestEnv`] is dropped, even
//! when a test fails or panics.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, bail};
use kube::config::{KubeConfigOptions, Kubeconfig};

/// A running environment: etcd, the control plane and `clusters` physical
/// kube-apiservers, and BIND 9.
pub struct TestEnv {
    dir: PathBuf,
    clusters: usize,
    dns: BTreeMap<String, String>,
    stopped: AtomicBool,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("hack/test-env.sh")
}

impl TestEnv {
    /// Starts an environment for the test group `group` with `clusters`
    /// physical clusters, in a fresh directory.
    pub fn up(group: &str, clusters: usize) -> anyhow::Result<Self> {
        let dir =
            std::env::temp_dir().join(format!("kcp-ingress-e2e-{}-{group}", std::process::id()));
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        let status = Command::new(script())
            .args(["up", "--dir"])
            .arg(&dir)
            .args(["--clusters", &clusters.to_string()])
            // Stops the servers even if this process is killed before Drop runs.
            .args(["--owner-pid", &std::process::id().to_string()])
            .status()
            .context("running hack/test-env.sh up")?;
        // From here on the directory may hold running processes: make sure
        // they are stopped whatever happens next.
        let mut env = TestEnv {
            dir,
            clusters,
            dns: BTreeMap::new(),
            stopped: AtomicBool::new(false),
        };
        if !status.success() {
            bail!(
                "hack/test-env.sh up failed ({status}); logs are in {}",
                env.dir.display()
            );
        }
        env.dns = read_env_file(&env.dir.join("dns.env"))?;
        Ok(env)
    }

    /// Names of every apiserver: `control-plane`, `cluster-1`, … `cluster-N`.
    pub fn apiservers(&self) -> Vec<String> {
        std::iter::once("control-plane".to_string())
            .chain((1..=self.clusters).map(|i| format!("cluster-{i}")))
            .collect()
    }

    /// A client for the apiserver `name` (see [`TestEnv::apiservers`]).
    pub async fn client(&self, name: &str) -> anyhow::Result<kube::Client> {
        let path = self.kubeconfig(name);
        let kubeconfig =
            Kubeconfig::read_from(&path).with_context(|| format!("reading {}", path.display()))?;
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .with_context(|| format!("loading {}", path.display()))?;
        Ok(kube::Client::try_from(config)?)
    }

    /// A value of `dns.env` (DNS_SERVER, DNS_PORT, DNS_ZONE, DNS_TSIG_KEY_NAME,
    /// DNS_TSIG_ALGORITHM, DNS_TSIG_SECRET, ...).
    pub fn dns(&self, key: &str) -> &str {
        self.dns
            .get(key)
            .unwrap_or_else(|| panic!("{key} missing from dns.env"))
    }

    /// Starts `kcp-ingress ARGS` (the binary under test), its output going to
    /// `logs/NAME.log`; it is stopped when the returned handle is dropped.
    #[allow(dead_code, reason = "used by the component test groups")]
    pub fn spawn_kcp_ingress(&self, name: &str, args: &[&str]) -> anyhow::Result<Process> {
        let log_path = self.dir.join("logs").join(format!("{name}.log"));
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("creating {}", log_path.display()))?;
        let child = Command::new(env!("CARGO_BIN_EXE_kcp-ingress"))
            .args(args)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info,kcp_ingress=debug".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting kcp-ingress {}", args.join(" ")))?;
        Ok(Process {
            name: name.to_string(),
            child,
            log: log_path,
        })
    }

    /// Starts `standin-lb --kubeconfig <server's> ARGS` (a physical
    /// cluster's load balancer and Gateway API implementation), its output
    /// going to `logs/NAME.log`; stopped when the handle is dropped.
    #[allow(dead_code, reason = "used by the component test groups")]
    pub fn spawn_standin_lb(
        &self,
        name: &str,
        server: &str,
        args: &[&str],
    ) -> anyhow::Result<Process> {
        let log_path = self.dir.join("logs").join(format!("{name}.log"));
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("creating {}", log_path.display()))?;
        let child = Command::new(env!("CARGO_BIN_EXE_standin-lb"))
            .arg("--kubeconfig")
            .arg(self.kubeconfig(server))
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting standin-lb {}", args.join(" ")))?;
        Ok(Process {
            name: name.to_string(),
            child,
            log: log_path,
        })
    }

    /// The environment's directory.
    #[allow(dead_code, reason = "used by the component test groups")]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stops (`"stop"`) or starts again (`"start"`) one server of the
    /// environment (`named`, `etcd`, `control-plane`, `cluster-K`) through
    /// `hack/test-env.sh`; its data and port stay the same.
    #[allow(dead_code, reason = "used by the component test groups")]
    pub fn server(&self, action: &str, server: &str) -> anyhow::Result<()> {
        let status = Command::new(script())
            .args([action, "--dir"])
            .arg(&self.dir)
            .args(["--server", server])
            .status()
            .with_context(|| format!("running hack/test-env.sh {action} --server {server}"))?;
        if !status.success() {
            bail!("hack/test-env.sh {action} --server {server} failed ({status})");
        }
        Ok(())
    }

    /// Path of a kubeconfig: `control-plane` or `cluster-K`.
    pub fn kubeconfig(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.kubeconfig"))
    }

    /// Prints the end of every server log, for a failing run.
    pub fn print_logs(&self) {
        let Ok(entries) = std::fs::read_dir(self.dir.join("logs")) else {
            return;
        };
        let mut logs: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        logs.sort();
        // Certificate generation output says nothing about a failure.
        logs.retain(|l| l.file_name().is_none_or(|n| n != "pki.log"));
        for log in logs {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(40)..];
            eprintln!("===== last {} lines of {} =====", tail.len(), log.display());
            for line in tail {
                eprintln!("{line}");
            }
        }
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        self.down();
    }
}

impl TestEnv {
    /// Stops every server of the environment (once; later calls do nothing).
    pub fn down(&self) {
        if self.stopped.swap(true, Ordering::SeqCst) {
            return;
        }
        let result = Command::new(script())
            .args(["down", "--dir"])
            .arg(&self.dir)
            .status();
        match result {
            Ok(s) if s.success() => {}
            other => eprintln!(
                "e2e: stopping the test environment in {} failed: {other:?}",
                self.dir.display()
            ),
        }
    }

    /// Stops the environment and removes its directory (its servers' data
    /// and logs, tens of megabytes): after a group passed, nothing in it is
    /// read again. A failed group's directory stays for its logs.
    pub fn down_and_remove(&self) {
        self.down();
        if let Err(err) = std::fs::remove_dir_all(&self.dir) {
            eprintln!("e2e: removing {} failed: {err}", self.dir.display());
        }
    }
}

/// Reads a shell `KEY=value` file (values may be single- or double-quoted).
fn read_env_file(path: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.strip_prefix("export ").unwrap_or(l).split_once('='))
        .map(|(k, v)| {
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            (k.trim().to_string(), v.to_string())
        })
        .collect())
}

/// A running `kcp-ingress` process, stopped (SIGTERM, then SIGKILL) on drop.
#[allow(dead_code, reason = "used by the component test groups")]
pub struct Process {
    name: String,
    child: Child,
    log: PathBuf,
}

#[allow(dead_code, reason = "used by the component test groups")]
impl Process {
    /// Sends SIGTERM and waits up to `grace` for the process to exit; kills
    /// it after that. Returns whether it exited by itself, successfully.
    pub fn terminate(&mut self, grace: std::time::Duration) -> bool {
        if let Ok(Some(status)) = self.child.try_wait() {
            return status.success();
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + grace;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        eprintln!(
            "e2e: {} did not stop within {grace:?}; killing it",
            self.name
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Kills the process at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Everything the process logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The port of the admin server of a process started with
    /// `--admin-address 127.0.0.1:0`, read from its log. A port chosen
    /// free beforehand can be taken (by any connection's ephemeral port)
    /// before the process binds it; one the process chose cannot.
    #[allow(dead_code, reason = "used by the component test groups")]
    pub async fn admin_port(&self) -> anyhow::Result<u16> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let log = self.log();
            if let Some(port) = log
                .lines()
                .filter(|l| l.contains("admin server listening"))
                .find_map(|l| {
                    l.split_whitespace()
                        .find_map(|w| w.strip_prefix("address="))
                })
                .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
                .map(|a| a.port())
            {
                return Ok(port);
            }
            anyhow::ensure!(
                std::time::Instant::now() < deadline && !log.contains("cannot listen"),
                "{}: no admin server listening in its log:\n{log}",
                self.name
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.terminate(std::time::Duration::from_secs(10));
    }
}
