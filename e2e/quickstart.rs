//! The README's quickstart, followed literally with the process provider:
//! `make local-setup`, `kubectl apply -f samples/ingress.yaml` with the
//! KUBECONFIG it prints, the merged status, DNS answers, HTTP through them,
//! deletion, `make local-teardown`. With the default data plane (Traefik)
//! also HTTPS through the same answers, Traefik's access log, the status its
//! field manager wrote into each cluster's Ingress, and a Gateway + HTTPRoute
//! in cluster-1 served by its Gateway API provider. Then the README's
//! "Quickstart with a Gateway": samples/gateway.yaml split across both
//! clusters, the merged address, DNS and HTTP through it.
//!
//! With `DNS=embedded` the glbc answers DNS itself: the walkthrough's dig
//! lines (taken from what local-setup printed) ask the glbc's socket, and
//! BIND, which still runs, has nothing for the hosts.
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
        } else if std::thread::panicking() {
            // A failed test: its logs stay for whoever reads the failure.
            eprintln!("the quickstart's logs are kept in {}", self.0.display());
        } else {
            // Each run's set-up holds some 70 MB (logs, the servers' data).
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// The field manager of the status that Traefik writes.
const TRAEFIK_MANAGER: &str = "traefik";

/// `kubectl` against physical cluster K of the quickstart's test environment.
fn kc(k: usize) -> String {
    format!("kubectl --kubeconfig \"$KCP_INGRESS_LOCAL_DIR/env/cluster-{k}.kubeconfig\"")
}

/// Lines of Traefik's access log of cluster K that name the router `router`
/// (Traefik names it after the Ingress or HTTPRoute) and the backend of
/// cluster K.
fn access_log_lines(shell: &Shell, k: usize, router: &str) -> usize {
    let backend = format!("\"http://198.18.{k}.2:8080\"");
    let log = shell
        .dir
        .join(format!("traefik/logs/traefik-{k}.access.log"));
    std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(router) && l.contains(&backend))
        .count()
}

/// Each cluster's copy of the Ingress (its only Ingress) carries status
/// written by Traefik.
fn ingress_status_by_traefik(shell: &Shell) {
    for k in [1, 2] {
        let managers = until(
            shell,
            &format!(
                "{} get ingress -A -o jsonpath='{{range .items[*].metadata.managedFields[?(@.subresource==\"status\")]}}{{.manager}} {{end}}'",
                kc(k)
            ),
            Duration::from_secs(30),
            |out| words(out).contains(TRAEFIK_MANAGER),
        );
        let ip = ok(
            shell,
            &format!(
                "{} get ingress -A -o jsonpath='{{.items[*].metadata.name}}: {{.items[*].status.loadBalancer.ingress[*].ip}}'",
                kc(k)
            ),
        );
        // one copy of the sample's Ingress, with the address Traefik wrote
        let (name, ip) = ip.split_once(": ").unwrap_or_default();
        assert!(
            name.starts_with("shop") && !name.contains(' '),
            "cluster-{k}: Ingresses {name:?}"
        );
        assert_eq!(
            ip.trim(),
            format!("127.0.1.{k}"),
            "cluster-{k}: status managers {managers}"
        );
    }
}

/// A Gateway and an HTTPRoute in cluster-1, served by Traefik's Gateway API
/// provider: it writes their status, and a request reaches the backend.
fn gateway_in_cluster_1(shell: &Shell) {
    let manifest = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: shop-gw, namespace: default}
spec:
  gatewayClassName: traefik
  listeners:
    - {name: web, protocol: HTTP, port: 80, hostname: gw.kcp-ingress.test}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: shop-route, namespace: default}
spec:
  parentRefs: [{name: shop-gw}]
  hostnames: [gw.kcp-ingress.test]
  rules:
    - backendRefs: [{name: shop, port: 80}]
"#;
    ok(
        shell,
        &format!("{} apply -f - <<'EOF'\n{manifest}\nEOF", kc(1)),
    );
    until(
        shell,
        &format!(
            "{} -n default get gateway shop-gw -o jsonpath='{{.status.addresses[*].value}} {{.status.conditions[?(@.type==\"Programmed\")].status}}'",
            kc(1)
        ),
        Duration::from_secs(60),
        |out| words(out) == words("127.0.1.1 True"),
    );
    until(
        shell,
        &format!(
            "{} -n default get httproute shop-route -o jsonpath='{{.status.parents[*].controllerName}} {{.status.parents[*].conditions[?(@.type==\"Accepted\")].status}}'",
            kc(1)
        ),
        Duration::from_secs(60),
        |out| words(out) == words("traefik.io/gateway-controller True"),
    );
    for kind in ["gateway shop-gw", "httproute shop-route"] {
        let managers = ok(
            shell,
            &format!(
                "{} -n default get {kind} -o jsonpath='{{range .metadata.managedFields[?(@.subresource==\"status\")]}}{{.manager}} {{end}}'",
                kc(1)
            ),
        );
        assert!(
            words(&managers).contains(TRAEFIK_MANAGER),
            "{kind}: status written by {managers:?}, not by Traefik"
        );
    }
    let before = access_log_lines(shell, 1, "httproute-default-shop-route-");
    let body = until(
        shell,
        "curl -sf --resolve gw.kcp-ingress.test:80:127.0.1.1 http://gw.kcp-ingress.test/",
        Duration::from_secs(30),
        |out| out.starts_with("cluster-1"),
    );
    assert!(body.starts_with("cluster-1"));
    assert!(
        access_log_lines(shell, 1, "httproute-default-shop-route-") > before,
        "Traefik's access log of cluster-1 does not show the Gateway request"
    );
    ok(
        shell,
        &format!(
            "{} -n default delete httproute shop-route && {} -n default delete gateway shop-gw",
            kc(1),
            kc(1)
        ),
    );
}

/// The README's "Quickstart with a Gateway": samples/gateway.yaml on the
/// control plane; `kubectl get gateway shop` shows the merged address of
/// both clusters (their leaf Gateways Programmed by the data plane: Traefik's
/// Gateway API provider, or standin-lb), dig answers the route's hostname
/// (as the listener's wildcard admits it) with both, a request through each
/// answer reaches that cluster; deleting the sample removes the records,
/// the Gateway and its global object.
fn gateway_walkthrough(shell: &Shell, walkthrough: &Walkthrough) {
    ok(shell, "kubectl apply -f samples/gateway.yaml");
    let both = words("127.0.1.1 127.0.1.2");
    until(
        shell,
        "kubectl get gateway shop -o jsonpath='{.status.addresses[*].value}'",
        Duration::from_secs(90),
        |out| words(out) == both,
    );
    let table = ok(shell, "kubectl get gateway shop");
    assert!(
        table.contains("127.0.1.1") && table.contains("True"),
        "kubectl get gateway shop:\n{table}"
    );
    let dig = &walkthrough.dig("shop.gw.kcp-ingress.test");
    let answers = until(shell, dig, Duration::from_secs(60), |out| {
        words(out) == both
    });
    for ip in answers.split_whitespace() {
        let expected = if ip.ends_with(".1") {
            "cluster-1"
        } else {
            "cluster-2"
        };
        let request = format!(
            "curl -sf --resolve shop.gw.kcp-ingress.test:80:{ip} http://shop.gw.kcp-ingress.test/"
        );
        let body = until(shell, &request, Duration::from_secs(30), |out| {
            out.starts_with(expected)
        });
        assert!(body.starts_with(expected), "{ip} answered {body:?}");
    }
    ok(shell, "kubectl delete -f samples/gateway.yaml --wait=false");
    until(shell, dig, Duration::from_secs(60), |out| {
        out.trim().is_empty()
    });
    until(
        shell,
        "kubectl get gateway -o name",
        Duration::from_secs(60),
        |out| out.trim().is_empty(),
    );
    until(
        shell,
        "kubectl get globalingress -o name",
        Duration::from_secs(60),
        |out| out.trim().is_empty(),
    );
}

/// The DNS lines of the walkthrough `make local-setup` printed: the
/// `source .../dns.env` line (BIND only) and the `dig` command for the
/// sample's host, as a person would copy them.
struct Walkthrough {
    source: Option<String>,
    /// `dig @IP -p PORT` (PORT a number, or `$DNS_PORT` after `source`).
    dig: String,
}

impl Walkthrough {
    fn parse(setup: &str) -> Self {
        let lines: Vec<&str> = setup.lines().map(str::trim).collect();
        let source = lines
            .iter()
            .find(|l| l.starts_with("source ") && l.ends_with("/dns.env"))
            .map(|l| l.to_string());
        let dig = lines
            .iter()
            .find_map(|l| l.strip_suffix(" shop.kcp-ingress.test +short"))
            .filter(|l| l.starts_with("dig @"))
            .unwrap_or_else(|| panic!("local-setup printed no dig line for the sample:\n{setup}"))
            .to_string();
        let gateway = format!("{dig} shop.gw.kcp-ingress.test +short");
        assert!(
            lines.contains(&gateway.as_str()),
            "the Gateway walkthrough does not ask the same server ({gateway}):\n{setup}"
        );
        Self { source, dig }
    }

    /// The shell line that asks the walkthrough's DNS server for `host`.
    fn dig(&self, host: &str) -> String {
        match &self.source {
            Some(source) => format!("{source} && {} {host} +short", self.dig),
            None => format!("{} {host} +short", self.dig),
        }
    }

    /// The port the walkthrough's dig asks (after `source`, if any).
    fn port(&self, shell: &Shell) -> u16 {
        let line = match &self.source {
            Some(source) => format!("{source} && echo {}", self.dig),
            None => format!("echo {}", self.dig),
        };
        let echoed = ok(shell, &line);
        let port = echoed
            .split_whitespace()
            .skip_while(|w| *w != "-p")
            .nth(1)
            .unwrap_or_default();
        port.parse()
            .unwrap_or_else(|_| panic!("no port in the dig line {echoed:?}"))
    }
}

/// `DNS=embedded`: the walkthrough's DNS server is the glbc's own socket
/// (UDP and TCP), and BIND of the test environment has no record of the
/// sample (nothing publishes to it).
fn answered_by_the_glbc(shell: &Shell, walkthrough: &Walkthrough, host: &str) {
    let port = walkthrough.port(shell);
    for (proto, flag) in [("UDP", "-u"), ("TCP", "-t")] {
        let sockets = ok(shell, &format!("ss -Hlnp {flag} 'sport = :{port}'"));
        assert!(
            sockets.contains("127.0.0.1:") && sockets.contains("\"kcp-ingress\""),
            "{proto} port {port} is not the glbc's:\n{sockets}"
        );
    }
    let tcp = ok(shell, &format!("{} +tcp", walkthrough.dig(host)));
    assert!(!tcp.trim().is_empty(), "no answer over TCP for {host}");
    let flags = ok(
        shell,
        &format!("{} {host} +norec | grep 'flags:'", walkthrough.dig),
    );
    assert!(
        flags.contains(" aa"),
        "the embedded server's answer is not authoritative: {flags}"
    );
    let bind = ok(
        shell,
        &format!(
            "source \"$KCP_INGRESS_LOCAL_DIR/env/dns.env\" && dig @127.0.0.1 -p \"$DNS_PORT\" {host} +short"
        ),
    );
    assert!(
        bind.trim().is_empty(),
        "BIND answers {host} with {bind:?}: something published to it"
    );
}

/// The README's embedded walkthrough: weight 3 on cluster-1 and its address
/// comes first in about 3 of 4 answers (400 digs: 260..340, where equal
/// weights give 200 ± 10).
fn weights_order_the_first_answer(shell: &Shell, walkthrough: &Walkthrough) {
    ok(
        shell,
        r#"kubectl patch cluster cluster-1 --type merge -p '{"spec":{"weight":3}}'"#,
    );
    let count = format!(
        "for i in $(seq 400); do {} | head -1; done | grep -cx 127.0.1.1",
        walkthrough.dig("shop.kcp-ingress.test")
    );
    until(shell, &count, Duration::from_secs(90), |out| {
        out.trim()
            .parse::<u32>()
            .is_ok_and(|n| (260..=340).contains(&n))
    });
    ok(
        shell,
        r#"kubectl patch cluster cluster-1 --type merge -p '{"spec":{"weight":1}}'"#,
    );
}

/// The README's quickstart with `make local-setup ARGS`.
fn quickstart(name: &str, setup_args: &str) {
    let traefik = !setup_args.contains("DATA_PLANE=standin");
    let embedded = setup_args.contains("DNS=embedded");
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
    let walkthrough = Walkthrough::parse(&setup);
    assert_eq!(
        walkthrough.source.is_none(),
        embedded,
        "`source dns.env` is for BIND's port only:\n{setup}"
    );
    // Running it twice is safe.
    ok(&shell, &format!("make local-setup {setup_args}"));
    if embedded {
        // Asking for BIND while the glbc answers itself is an error that
        // says what to do; nothing is started or changed.
        let bind_args = setup_args.replace("DNS=embedded", "DNS=bind");
        let out = sh(&shell, &format!("make local-setup {bind_args}"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains("make local-teardown"),
            "local-setup with DNS=bind over DNS=embedded: {}\n{stderr}",
            out.status
        );
    }
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

    let dig = &walkthrough.dig("shop.kcp-ingress.test");
    let answers = until(&shell, dig, Duration::from_secs(60), |out| {
        words(out) == both
    });
    if embedded {
        answered_by_the_glbc(&shell, &walkthrough, "shop.kcp-ingress.test");
    }
    if traefik {
        ingress_status_by_traefik(&shell);
    }
    for ip in answers.split_whitespace() {
        let k: usize = if ip.ends_with(".1") { 1 } else { 2 };
        let expected = format!("cluster-{k}");
        let mut requests = vec![format!(
            "curl -sf --resolve shop.kcp-ingress.test:80:{ip} http://shop.kcp-ingress.test/"
        )];
        if traefik {
            // The sample's certificate is self-signed: it is its own CA.
            requests.push(format!(
                "curl -sf --cacert <(kubectl get secret shop-tls -o jsonpath='{{.data.tls\\.crt}}' | base64 -d) \
                 --resolve shop.kcp-ingress.test:443:{ip} https://shop.kcp-ingress.test/"
            ));
        }
        for request in requests {
            let before = if traefik {
                access_log_lines(&shell, k, "-shop-kcp-ingress-test@kubernetes")
            } else {
                0
            };
            // The cluster's copies of the Service and Secret may reach
            // Traefik a moment after the Ingress whose status it wrote.
            let body = until(&shell, &request, Duration::from_secs(30), |out| {
                out.starts_with(&expected)
            });
            assert!(
                body.starts_with(&expected),
                "{ip} answered {body:?}, not {expected} (`{request}`)"
            );
            if traefik {
                assert!(
                    access_log_lines(&shell, k, "-shop-kcp-ingress-test@kubernetes") > before,
                    "Traefik's access log of {expected} does not show `{request}`"
                );
            }
        }
    }
    if traefik {
        gateway_in_cluster_1(&shell);
    }
    if embedded {
        weights_order_the_first_answer(&shell, &walkthrough);
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
    gateway_walkthrough(&shell, &walkthrough);

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

/// The process provider with the stand-in load balancers instead of Traefik.
#[test]
fn readme_quickstart_with_the_standin_data_plane() {
    quickstart("quickstart-standin", "PROVIDER=process DATA_PLANE=standin");
}

/// `DNS=embedded`: the glbc answers DNS itself instead of BIND (the
/// stand-in data plane: DNS is what this variant is about).
#[test]
fn readme_quickstart_with_the_embedded_dns_server() {
    quickstart(
        "quickstart-embedded",
        "PROVIDER=process DATA_PLANE=standin DNS=embedded",
    );
}

/// The same walkthrough with a kcp workspace as the control plane.
#[test]
fn readme_quickstart_with_kcp_as_the_control_plane() {
    quickstart("quickstart-kcp", "PROVIDER=process CONTROL_PLANE=kcp");
}

/// `hack/local-setup.sh up --provider kind --dry-run --dir DIR EXTRA...`:
/// what it printed. It must succeed and create nothing.
fn kind_dry_run(extra: &[&str]) -> String {
    let dir = std::env::temp_dir().join(format!("kcp-ingress-kind-dry-{}", std::process::id()));
    let out = Command::new("hack/local-setup.sh")
        .args(["up", "--provider", "kind", "--dry-run", "--dir"])
        .arg(&dir)
        .args(extra)
        .current_dir(repo())
        .output()
        .expect("local-setup runs");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "dry run failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!dir.exists(), "a dry run created {}", dir.display());
    stdout
}

/// With `--dns embedded` the kind provider's glbc answers DNS itself on
/// loopback, as with the process provider: the glbc runs on the host.
#[test]
fn kind_provider_dry_run_with_the_embedded_dns_server() {
    let stdout = kind_dry_run(&["--dns", "embedded"]);
    for step in [
        "kind create cluster --name kcp-ingress-1",
        "kcp-ingress glbc --kubeconfig",
        "--dns-provider embedded --dns-listen 127.0.0.1:",
        "--tsig-secret-file",
        "DNS: the glbc's embedded DNS server on 127.0.0.1:",
    ] {
        assert!(
            stdout.contains(step),
            "the dry run does not mention {step:?}:\n{stdout}"
        );
    }
    assert!(
        !stdout.contains("--dns-server"),
        "the embedded server needs no RFC 2136 server:\n{stdout}"
    );
}

/// No Docker engine runs here: the kind provider is kept honest by its
/// dry run, which must name every step and start nothing.
#[test]
fn kind_provider_dry_run_prints_its_commands() {
    let stdout = kind_dry_run(&[]);
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
        "--dns-server 127.0.0.1",
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
}
