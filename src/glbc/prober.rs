//! The glbc's vantage point of the application health checks: one task per
//! probed address (root, cluster, IP), each probing every interval with a
//! minimal HTTP/1.1 client on tokio (a GET with `Connection: close`; only
//! the status line is read) and keeping a [`ProbeState`]. A verdict that
//! flips wakes the apply loop. The pass says which addresses it wants
//! probed ([`Prober::sync`]); tasks no longer wanted stop.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::task::AbortHandle;

use super::plan::RootKey;
use super::probe::{ProbeSpec, ProbeState};

/// One address to probe: a cluster's address of a root.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProbeKey {
    pub root: RootKey,
    pub cluster: String,
    pub ip: IpAddr,
}

/// What to probe there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeTarget {
    pub spec: ProbeSpec,
    /// The Host header.
    pub host: String,
}

struct Running {
    target: ProbeTarget,
    state: Arc<Mutex<ProbeState>>,
    task: AbortHandle,
}

/// The running probes.
pub struct Prober {
    running: HashMap<ProbeKey, Running>,
    notify: Arc<Notify>,
}

impl Prober {
    /// `notify` is signalled when a verdict flips.
    pub fn new(notify: Arc<Notify>) -> Self {
        Self {
            running: HashMap::new(),
            notify,
        }
    }

    /// Probes exactly `wanted` from now on (new targets start with a probe
    /// at once; a changed spec starts over); returns every wanted address's
    /// state.
    pub fn sync(
        &mut self,
        wanted: &BTreeMap<ProbeKey, ProbeTarget>,
    ) -> BTreeMap<ProbeKey, ProbeState> {
        self.running.retain(|key, running| {
            let keep = wanted.get(key) == Some(&running.target);
            if !keep {
                running.task.abort();
            }
            keep
        });
        let mut out = BTreeMap::new();
        for (key, target) in wanted {
            let running = self.running.entry(key.clone()).or_insert_with(|| {
                let state = Arc::new(Mutex::new(ProbeState::default()));
                let task = tokio::spawn(probe_loop(
                    key.ip,
                    target.clone(),
                    state.clone(),
                    self.notify.clone(),
                ))
                .abort_handle();
                Running {
                    target: target.clone(),
                    state,
                    task,
                }
            });
            let state = running
                .state
                .lock()
                .map(|s| s.clone())
                .unwrap_or_else(|p| p.into_inner().clone());
            out.insert(key.clone(), state);
        }
        out
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        for running in self.running.values() {
            running.task.abort();
        }
    }
}

async fn probe_loop(
    ip: IpAddr,
    target: ProbeTarget,
    state: Arc<Mutex<ProbeState>>,
    notify: Arc<Notify>,
) {
    let interval = Duration::from_secs(u64::from(target.spec.interval_seconds));
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let (ok, what) = check(ip, &target.spec, &target.host).await;
        let flipped = match state.lock() {
            Ok(mut s) => s.observe(ok, what, &target.spec),
            Err(_) => false,
        };
        if flipped {
            notify.notify_one();
        }
    }
}

/// One probe: whether it passed, and what happened.
pub async fn check(ip: IpAddr, spec: &ProbeSpec, host: &str) -> (bool, String) {
    let timeout = Duration::from_secs(u64::from(spec.timeout_seconds));
    match tokio::time::timeout(timeout, get(ip, spec, host)).await {
        Err(_) => (false, format!("no answer within {}s", spec.timeout_seconds)),
        Ok(Err(err)) => (false, err.to_string()),
        Ok(Ok(code)) => (spec.expects(code), format!("HTTP {code}")),
    }
}

async fn get(ip: IpAddr, spec: &ProbeSpec, host: &str) -> std::io::Result<u16> {
    let mut stream = TcpStream::connect((ip, spec.port)).await?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: kcp-ingress-glbc\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        spec.path
    );
    stream.write_all(request.as_bytes()).await?;
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 256];
    loop {
        if let Some(code) = status_code(&buf) {
            return Ok(code);
        }
        if buf.len() > 1024 || buf.windows(2).any(|w| w == b"\r\n") {
            break;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        "not an HTTP answer",
    ))
}

/// The status code of an HTTP/1.x status line (`HTTP/1.1 200 OK\r\n`),
/// once the whole line is in `bytes`.
pub fn status_code(bytes: &[u8]) -> Option<u16> {
    let end = bytes.windows(2).position(|w| w == b"\r\n")?;
    let line = std::str::from_utf8(&bytes[..end]).ok()?;
    let mut parts = line.split(' ');
    let version = parts.next()?;
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    let code = parts.next()?;
    if code.len() != 3 {
        return None;
    }
    code.parse().ok().filter(|c| (100..=599).contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(status_code(b"HTTP/1.1 200 OK\r\nx"), Some(200));
        assert_eq!(status_code(b"HTTP/1.0 500 Internal\r\n"), Some(500));
        assert_eq!(status_code(b"HTTP/1.1 204\r\n"), Some(204));
        assert_eq!(status_code(b"HTTP/1.1 200 OK"), None, "line not complete");
        assert_eq!(status_code(b"SSH-2.0-x\r\n"), None);
        assert_eq!(status_code(b"HTTP/1.1 2000 OK\r\n"), None);
        assert_eq!(status_code(b"HTTP/1.1 999 OK\r\n"), None);
    }

    #[tokio::test]
    async fn a_probe_reads_the_status_and_reports_refusals() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            for code in [200, 500] {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 512];
                let n = s.read(&mut buf).await.unwrap();
                let request = String::from_utf8_lossy(&buf[..n]).to_string();
                assert!(request.starts_with("GET /healthz HTTP/1.1\r\nHost: web.test\r\n"));
                let answer = format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n");
                s.write_all(answer.as_bytes()).await.unwrap();
            }
        });
        let spec = ProbeSpec::parse(&format!(r#"{{"path":"/healthz","port":{port}}}"#)).unwrap();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(
            check(ip, &spec, "web.test").await,
            (true, "HTTP 200".into())
        );
        assert_eq!(
            check(ip, &spec, "web.test").await,
            (false, "HTTP 500".into())
        );
        // Nobody listens any more.
        let (ok, what) = check(ip, &spec, "web.test").await;
        assert!(!ok, "{what}");
    }
}
