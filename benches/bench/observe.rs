//! How the benchmark sees convergence: watches (first time a name, or a
//! name with a given path, shows up; first time a root's status holds every
//! cluster's address), real DNS queries and signed zone transfers, and the
//! servers' own counters (kube-apiserver /metrics, BIND's statistics).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use hickory_proto::rr::{Name, RData, RecordType};
use k8s_openapi::api::networking::v1::Ingress;
use kcp_ingress::glbc::dns::rfc2136::{self, Rfc2136Client};
use kcp_ingress::glbc::dns::{TsigAlgorithm, TsigKey};
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, watcher};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

use crate::env::{Env, NS};

/// What one watch saw, with the instant it saw it.
#[derive(Default)]
pub struct Seen {
    /// name → first seen.
    pub first: HashMap<String, Instant>,
    /// (name, first rule's first path) → first seen with that path.
    pub path: HashMap<(String, String), Instant>,
    /// name → first seen with a load-balancer entry per cluster.
    pub merged: HashMap<String, Instant>,
}

pub type SeenRef = Arc<Mutex<Seen>>;

fn first_path(i: &Ingress) -> Option<String> {
    i.spec
        .as_ref()?
        .rules
        .as_ref()?
        .first()?
        .http
        .as_ref()?
        .paths
        .first()?
        .path
        .clone()
}

/// Watches the Ingresses of the benchmark namespace through `client` into
/// a [`Seen`]; an Ingress is merged once its status holds `addresses`
/// load-balancer entries. The task ends when aborted.
pub fn observe(client: kube::Client, addresses: usize) -> (SeenRef, JoinHandle<()>) {
    let seen: SeenRef = Arc::default();
    let sink = seen.clone();
    let task = tokio::spawn(async move {
        let api: Api<Ingress> = Api::namespaced(client, NS);
        let mut events = pin!(
            watcher(api, watcher::Config::default().any_semantic())
                .default_backoff()
                .touched_objects()
        );
        while let Some(event) = events.next().await {
            let Ok(ingress) = event else { continue };
            let now = Instant::now();
            let Some(name) = ingress.metadata.name.clone() else {
                continue;
            };
            let merged = ingress
                .status
                .as_ref()
                .and_then(|s| s.load_balancer.as_ref())
                .and_then(|lb| lb.ingress.as_ref())
                .is_some_and(|e| e.len() >= addresses);
            let path = first_path(&ingress);
            let mut seen = sink.lock().unwrap_or_else(|p| p.into_inner());
            seen.first.entry(name.clone()).or_insert(now);
            if merged {
                seen.merged.entry(name.clone()).or_insert(now);
            }
            if let Some(path) = path {
                seen.path.entry((name, path)).or_insert(now);
            }
        }
    });
    (seen, task)
}

/// The name of `root`'s copy in cluster `k` (1-based), in the namespace
/// [`NS`] of that cluster, where the watches look for it: the name of the
/// root's leaf for that cluster, which the syncer keeps downstream. The one
/// place that knows how leaves are named.
pub fn copy_name(root: &str, k: usize) -> String {
    format!("{root}--cluster-{k}")
}

/// The name of `root`'s copy in a cluster under Karmada: the root's own name.
pub fn karmada_copy_name(root: &str, _k: usize) -> String {
    root.to_string()
}

/// One watch per physical cluster, and one of the control plane.
pub struct Observers {
    /// How copies are named in the clusters.
    copy: fn(&str, usize) -> String,
    pub clusters: Vec<SeenRef>,
    pub control: SeenRef,
    tasks: Vec<JoinHandle<()>>,
}

impl Observers {
    pub fn start(env: &Env) -> Self {
        Self::start_placed(env, env.n_clusters)
    }

    /// As [`Observers::start`], for roots placed on `per_root` clusters
    /// each (a root is merged once its status holds that many addresses).
    pub fn start_placed(env: &Env, per_root: usize) -> Self {
        let mut tasks = Vec::new();
        let clusters = env
            .clusters
            .iter()
            .map(|c| {
                let (seen, task) = observe(c.clone(), 1);
                tasks.push(task);
                seen
            })
            .collect();
        let (control, task) = observe(env.cp.clone(), per_root);
        tasks.push(task);
        let copy = match env.stack {
            crate::env::Stack::Karmada { .. } => karmada_copy_name,
            crate::env::Stack::KcpIngress | crate::env::Stack::ControllerOnly => copy_name,
        };
        Self {
            copy,
            clusters,
            control,
            tasks,
        }
    }

    /// When the copies of `root` were first seen in every cluster, if they were.
    pub fn downstream(&self, root: &str) -> Option<Instant> {
        let all: Vec<usize> = (1..=self.clusters.len()).collect();
        self.downstream_on(root, &all)
    }

    /// When the copies of `root` were first seen in each of the clusters
    /// `on` (1-based), if they were.
    pub fn downstream_on(&self, root: &str, on: &[usize]) -> Option<Instant> {
        let mut last: Option<Instant> = None;
        for &k in on {
            let seen = self.clusters.get(k.checked_sub(1)?)?;
            let seen = seen.lock().unwrap_or_else(|p| p.into_inner());
            let at = *seen.first.get(&(self.copy)(root, k))?;
            last = Some(last.map_or(at, |l| l.max(at)));
        }
        last
    }

    /// When the copies of `root` with `path` were first seen in every cluster.
    pub fn downstream_path(&self, root: &str, path: &str) -> Option<Instant> {
        let mut last: Option<Instant> = None;
        for (k, seen) in self.clusters.iter().enumerate() {
            let seen = seen.lock().unwrap_or_else(|p| p.into_inner());
            let key = ((self.copy)(root, k + 1), path.to_string());
            let at = *seen.path.get(&key)?;
            last = Some(last.map_or(at, |l| l.max(at)));
        }
        last
    }

    /// When `root`'s status first held every cluster's address.
    pub fn merged(&self, root: &str) -> Option<Instant> {
        let seen = self.control.lock().unwrap_or_else(|p| p.into_inner());
        seen.merged.get(root).copied()
    }

    /// How many of `roots` are complete downstream / merged, and when the
    /// last of them became so.
    pub fn progress(&self, roots: &[String]) -> (usize, Option<Instant>, usize, Option<Instant>) {
        let all: Vec<usize> = (1..=self.clusters.len()).collect();
        self.progress_on(roots, |_| all.clone())
    }

    /// As [`Observers::progress`], with the copies of the `i`th root
    /// looked for in the clusters `on(i)` only.
    pub fn progress_on(
        &self,
        roots: &[String],
        on: impl Fn(usize) -> Vec<usize>,
    ) -> (usize, Option<Instant>, usize, Option<Instant>) {
        let (mut down, mut down_at, mut merged, mut merged_at) = (0, None, 0, None);
        for (i, r) in roots.iter().enumerate() {
            if let Some(at) = self.downstream_on(r, &on(i)) {
                down += 1;
                down_at = Some(down_at.map_or(at, |l: Instant| l.max(at)));
            }
            if let Some(at) = self.merged(r) {
                merged += 1;
                merged_at = Some(merged_at.map_or(at, |l: Instant| l.max(at)));
            }
        }
        (down, down_at, merged, merged_at)
    }
}

impl Drop for Observers {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

// ---------------------------------------------------------------- DNS

/// The DNS server of an environment.
#[derive(Clone)]
pub struct Dns {
    pub server: SocketAddr,
    pub zone: String,
    key: TsigKey,
    pub stats_url: String,
}

impl Dns {
    pub fn of(env: &Env) -> anyhow::Result<Self> {
        let port: u16 = env.var("DNS_PORT").parse().context("DNS_PORT")?;
        let algorithm: TsigAlgorithm = env.var("DNS_TSIG_ALGORITHM").parse()?;
        Ok(Self {
            server: SocketAddr::from(([127, 0, 0, 1], port)),
            zone: env.var("DNS_ZONE").trim_end_matches('.').to_string(),
            key: TsigKey::from_base64(
                env.var("DNS_TSIG_KEY_NAME"),
                algorithm,
                env.var("DNS_TSIG_SECRET"),
            )?,
            stats_url: env.var("DNS_STATS_URL").to_string(),
        })
    }

    pub fn client(&self) -> anyhow::Result<Rfc2136Client> {
        Ok(Rfc2136Client::new(
            self.server,
            &self.zone,
            &self.key,
            Duration::from_secs(30),
        )?)
    }

    /// The A addresses the server answers for `host` (a plain UDP query).
    pub async fn addresses(&self, host: &str) -> anyhow::Result<Vec<IpAddr>> {
        let name = Name::from_ascii(format!("{host}."))?;
        let (_, records) =
            rfc2136::query(self.server, &name, RecordType::A, Duration::from_secs(1)).await?;
        let mut out: Vec<IpAddr> = records
            .iter()
            .filter_map(|r| match &r.data {
                RData::A(a) => Some(IpAddr::V4(a.0)),
                _ => None,
            })
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// By a signed zone transfer: host → number of A addresses, for the
    /// hosts under `suffix`, and the number of names there (ownership
    /// records included).
    pub async fn published(&self, suffix: &str) -> anyhow::Result<(HashMap<String, usize>, usize)> {
        let records = self.client()?.transfer_zone().await?;
        let suffix = format!(".{suffix}.");
        let mut hosts: HashMap<String, usize> = HashMap::new();
        let mut names = HashSet::new();
        for r in &records {
            let name = r.name.to_ascii().to_ascii_lowercase();
            if !name.ends_with(&suffix) {
                continue;
            }
            names.insert(name.clone());
            if matches!(r.data, RData::A(_)) {
                *hosts
                    .entry(name.trim_end_matches('.').to_string())
                    .or_default() += 1;
            }
        }
        Ok((hosts, names.len()))
    }

    /// BIND's nsstats counter `key` (e.g. UpdateDone).
    pub async fn stat(&self, key: &str) -> anyhow::Result<u64> {
        let body = http_get(&self.stats_url).await?;
        let json: serde_json::Value = serde_json::from_str(&body)?;
        Ok(json["nsstats"][key].as_u64().unwrap_or(0))
    }

    /// BIND's version string.
    pub async fn version(&self) -> String {
        async {
            let body = http_get(&self.stats_url).await?;
            let json: serde_json::Value = serde_json::from_str(&body)?;
            anyhow::Ok(json["version"].as_str().unwrap_or("?").to_string())
        }
        .await
        .unwrap_or_else(|_| "?".into())
    }
}

/// A plain HTTP/1.0 GET of an `http://host:port/path` URL on loopback.
async fn http_get(url: &str) -> anyhow::Result<String> {
    let rest = url.strip_prefix("http://").context("not an http URL")?;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (_, body) = http_request(
        authority,
        authority,
        &format!("/{path}"),
        Duration::from_secs(10),
    )
    .await
    .with_context(|| format!("GET {url}"))?;
    Ok(body)
}

/// `GET path` with `Host: host` to `authority` over HTTP/1.0: the status
/// line and the body.
async fn http_request(
    authority: &str,
    host: &str,
    path: &str,
    timeout: Duration,
) -> anyhow::Result<(String, String)> {
    let fetch = async {
        let mut stream = tokio::net::TcpStream::connect(authority).await?;
        stream
            .write_all(format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())
            .await?;
        let mut out = Vec::new();
        stream.read_to_end(&mut out).await?;
        anyhow::Ok(out)
    };
    let out = tokio::time::timeout(timeout, fetch)
        .await
        .context("timed out")??;
    let text = String::from_utf8_lossy(&out);
    match text.split_once("\r\n\r\n") {
        Some((head, body)) => Ok((
            head.lines().next().unwrap_or_default().to_string(),
            body.to_string(),
        )),
        None => bail!("no HTTP body"),
    }
}

/// What a client that followed a DNS answer for `host` to `address:port`
/// gets: the body of a 200 answer to `GET /` (the backend, or the
/// stand-in, names its cluster), or an error.
pub async fn served_by(address: SocketAddr, host: &str) -> anyhow::Result<String> {
    let (status, body) =
        http_request(&address.to_string(), host, "/", Duration::from_secs(1)).await?;
    if status.split_whitespace().nth(1) != Some("200") {
        bail!("{address} answered {status:?} for {host}");
    }
    Ok(body)
}

// ---------------------------------------------------------------- apiserver counters

/// Write (and read) requests an apiserver has served, by "VERB resource[/subresource]".
pub type Writes = BTreeMap<String, u64>;

/// Reads are counted too (under their verb), apart from the writes.
pub const READ_VERBS: [&str; 2] = ["GET", "LIST"];

const WRITE_VERBS: [&str; 6] = [
    "POST",
    "PUT",
    "PATCH",
    "APPLY",
    "DELETE",
    "DELETECOLLECTION",
];

/// Scrapes `apiserver_request_total` of one apiserver: the write and read requests.
pub async fn writes(client: &kube::Client) -> anyhow::Result<Writes> {
    let request = http::Request::get("/metrics").body(Vec::new())?;
    let text = client.request_text(request).await?;
    let mut out = Writes::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("apiserver_request_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let label = |key: &str| {
            labels
                .split("\",")
                .find_map(|kv| kv.strip_prefix(&format!("{key}=\"")))
                .map(|v| v.trim_end_matches('"').to_string())
                .unwrap_or_default()
        };
        let verb = label("verb");
        if !WRITE_VERBS.contains(&verb.as_str()) && !READ_VERBS.contains(&verb.as_str()) {
            continue;
        }
        let (resource, sub) = (label("resource"), label("subresource"));
        let key = if sub.is_empty() {
            format!("{verb} {resource}")
        } else {
            format!("{verb} {resource}/{sub}")
        };
        let n: f64 = value.trim().parse().unwrap_or(0.0);
        *out.entry(key).or_default() += n as u64;
    }
    Ok(out)
}

/// `after - before`, per key.
pub fn delta(before: &Writes, after: &Writes) -> Writes {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v.saturating_sub(*before.get(k).unwrap_or(&0))))
        .filter(|(_, v)| *v > 0)
        .collect()
}

/// Write counters of every apiserver: control plane first, then the clusters.
pub async fn all_writes(env: &Env) -> anyhow::Result<Vec<Writes>> {
    let mut out = vec![writes_retried(&env.cp).await?];
    for c in &env.clusters {
        out.push(writes_retried(c).await?);
    }
    Ok(out)
}

/// [`writes`], asked up to 5 times: a starved apiserver (twenty of them on
/// two busy cores) may cut its /metrics answer short.
async fn writes_retried(client: &kube::Client) -> anyhow::Result<Writes> {
    let mut attempt = 1;
    loop {
        match writes(client).await {
            Ok(w) => return Ok(w),
            Err(err) if attempt < 5 => {
                eprintln!("bench: reading /metrics (attempt {attempt}): {err:#}");
                attempt += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(err) => return Err(err.context("reading an apiserver's /metrics")),
        }
    }
}

// ---------------------------------------------------------------- statistics

/// Nearest-rank percentile of `samples` (any order), `p` in 0..=100.
pub fn percentile(samples: &[f64], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn median(samples: &[f64]) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}
