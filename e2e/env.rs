//! The real test environment, started through `hack/test-env.sh` (the same
//! command a person uses) and stopped when the [`TestEnv`] is dropped, even
//! when a test fails or panics.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
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
    /// Starts an environment with `clusters` physical clusters in a fresh directory.
    pub fn up(clusters: usize) -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("kcp-ingress-e2e-{}", std::process::id()));
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
        let path = self.dir.join(format!("{name}.kubeconfig"));
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

    /// Prints the end of every server log, for a failing run.
    pub fn print_logs(&self) {
        let Ok(entries) = std::fs::read_dir(self.dir.join("logs")) else {
            return;
        };
        let mut logs: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        logs.sort();
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
