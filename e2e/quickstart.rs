//! The README's quickstart, followed literally with the process provider:
//! `make local-setup`, `kubectl apply -f samples/ingress.yaml` with the
//! KUBECONFIG it prints, the merged status, DNS answers, HTTP through them,
//! deletion, `make local-teardown`.
//!
//! The only departures from the README: the set-up lives in its own
//! directory (KCP_INGRESS_LOCAL_DIR) and reuses the binaries this test run
//! built (KCP_INGRESS_BIN_DIR) instead of a release build.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_kcp-ingress"))
        .parent()
        .expect("the binary has a directory")
        .to_path_buf()
}

/// Where the quickstart runs and the KUBECONFIG that `make local-setup` printed.
struct Shell {
    dir: PathBuf,
    kubeconfig: Option<String>,
}

/// Runs a shell command line in the repository (as a person would type it),
/// with the quickstart's environment.
fn sh(shell: &Shell, line: &str) -> Output {
    let mut command = Command::new("bash");
    command
        .args(["-c", line])
        .current_dir(repo())
        .env("KCP_INGRESS_LOCAL_DIR", &shell.dir)
        .env("KCP_INGRESS_BIN_DIR", bin_dir());
    if let Some(kubeconfig) = &shell.kubeconfig {
        command.env("KUBECONFIG", kubeconfig);
    }
    command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {line}: {e}"))
}

fn ok(dir: &Shell, line: &str) -> String {
    let out = sh(dir, line);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "`{line}` failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Polls `line` until `accept` takes its output, for at most `deadline`.
fn until(dir: &Shell, line: &str, deadline: Duration, accept: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        let out = sh(dir, line);
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        if out.status.success() && accept(&stdout) {
            return stdout;
        }
        assert!(
            start.elapsed() < deadline,
            "`{line}` did not give the expected output within {deadline:?}; last:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn words(text: &str) -> BTreeSet<String> {
    text.split_whitespace().map(str::to_string).collect()
}

/// Stops everything even when an assertion fails.
struct Teardown(PathBuf);

impl Drop for Teardown {
    fn drop(&mut self) {
        let shell = Shell {
            dir: self.0.clone(),
            kubeconfig: None,
        };
        let out = sh(&shell, "make local-teardown");
        if !out.status.success() {
            eprintln!(
                "make local-teardown failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// The README's quickstart with `make local-setup ARGS`.
fn quickstart(name: &str, setup_args: &str) {
    let dir = std::env::temp_dir().join(format!("kcp-ingress-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let teardown = Teardown(dir.clone());
    let mut shell = Shell {
        dir: dir.clone(),
        kubeconfig: None,
    };

    let setup = ok(&shell, &format!("make local-setup {setup_args}"));
    let kubeconfig = setup
        .lines()
        .find_map(|l| l.trim().strip_prefix("export KUBECONFIG="))
        .unwrap_or_else(|| panic!("local-setup printed no KUBECONFIG:\n{setup}"))
        .to_string();
    // Running it twice is safe.
    ok(&shell, &format!("make local-setup {setup_args}"));
    shell.kubeconfig = Some(kubeconfig);

    ok(&shell, "kubectl apply -f samples/ingress.yaml");
    let both = words("127.0.1.1 127.0.1.2");
    until(
        &shell,
        "kubectl get ingress shop -o jsonpath='{.status.loadBalancer.ingress[*].ip}'",
        Duration::from_secs(90),
        |out| words(out) == both,
    );
    let global = ok(
        &shell,
        "kubectl get globalingress shop -o jsonpath='{.status.clusters[*].cluster}'",
    );
    assert_eq!(words(&global), words("cluster-1 cluster-2"));

    let dig = "source \"$KCP_INGRESS_LOCAL_DIR/env/dns.env\" && dig @127.0.0.1 -p \"$DNS_PORT\" shop.kcp-ingress.test +short";
    let answers = until(&shell, dig, Duration::from_secs(60), |out| {
        words(out) == both
    });
    for ip in answers.split_whitespace() {
        let body = ok(
            &shell,
            &format!(
                "curl -sf --resolve shop.kcp-ingress.test:80:{ip} http://shop.kcp-ingress.test/"
            ),
        );
        let expected = if ip.ends_with(".1") {
            "cluster-1"
        } else {
            "cluster-2"
        };
        assert!(
            body.starts_with(expected),
            "{ip} answered {body:?}, not {expected}"
        );
    }

    ok(
        &shell,
        "kubectl delete -f samples/ingress.yaml --wait=false",
    );
    until(&shell, dig, Duration::from_secs(60), |out| {
        out.trim().is_empty()
    });
    until(
        &shell,
        "kubectl get ingress -o name",
        Duration::from_secs(60),
        |out| out.trim().is_empty(),
    );
    until(
        &shell,
        "kubectl get globalingress -o name",
        Duration::from_secs(60),
        |out| out.trim().is_empty(),
    );

    drop(teardown);
    let left = Command::new("pgrep")
        .args(["-af", &format!("{}/", dir.display())])
        .output()
        .expect("pgrep runs");
    let left = String::from_utf8_lossy(&left.stdout);
    assert!(
        left.trim().is_empty(),
        "processes left after make local-teardown:\n{left}"
    );
}

#[test]
fn readme_quickstart_with_the_process_provider() {
    quickstart("quickstart", "PROVIDER=process");
}

/// The same walkthrough with a kcp workspace as the control plane.
#[test]
fn readme_quickstart_with_kcp_as_the_control_plane() {
    quickstart("quickstart-kcp", "PROVIDER=process CONTROL_PLANE=kcp");
}

/// No Docker engine runs here: the kind provider is kept honest by its
/// dry run, which must name every step and start nothing.
#[test]
fn kind_provider_dry_run_prints_its_commands() {
    let dir = std::env::temp_dir().join(format!("kcp-ingress-kind-dry-{}", std::process::id()));
    let out = Command::new("hack/local-setup.sh")
        .args(["up", "--provider", "kind", "--dry-run", "--dir"])
        .arg(&dir)
        .current_dir(repo())
        .output()
        .expect("local-setup runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "dry run failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for step in [
        "cargo build --release --bins",
        "hack/test-env.sh up --dir",
        "kind create cluster --name kcp-ingress-1",
        "kind create cluster --name kcp-ingress-2",
        "kubectl --context kind-kcp-ingress-1 apply -f",
        "deployment/ingress-nginx-controller",
        "kind get kubeconfig --name kcp-ingress-2",
        "Secret cluster-2-kubeconfig",
        "kcp-ingress controller --kubeconfig",
        "--push-syncers",
        "kcp-ingress glbc --kubeconfig",
        "--tsig-secret-file",
    ] {
        assert!(
            stdout.contains(step),
            "the dry run does not mention {step:?}:\n{stdout}"
        );
    }
    assert!(
        !stdout.contains("standin-lb"),
        "the kind provider needs no stand-in:\n{stdout}"
    );
    assert!(!dir.exists(), "a dry run created {}", dir.display());
}
