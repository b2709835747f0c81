//! Application health checks, pure: the root's annotation
//! ([`labels::HEALTH_CHECK_ANNOTATION`]) parsed into a [`ProbeSpec`], and
//! the per-address state machine that turns probe results into a verdict
//! with the failure and success thresholds. The probing itself is in
//! [`super::prober`].

use std::collections::BTreeSet;

use serde::Deserialize;

use crate::apis::ProbeStatus;
use crate::apis::global_ingress::probes_fail;
use crate::labels;

/// What a root asks to be probed, after defaults.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProbeSpec {
    /// Request path, starting with `/`.
    pub path: String,
    pub port: u16,
    /// Only `http` is probed today.
    pub scheme: String,
    /// Host header; default: the root's first host.
    pub host: Option<String>,
    pub interval_seconds: u32,
    pub timeout_seconds: u32,
    /// Consecutive failures that withdraw an address.
    pub failure_threshold: u32,
    /// Consecutive successes that bring a withdrawn address back.
    pub success_threshold: u32,
    /// Status codes that count as a success; empty: 200 to 399.
    pub expected_codes: Vec<u16>,
}

/// The annotation as written (camelCase JSON).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    port: Option<u16>,
    #[serde(default)]
    scheme: Option<String>,
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    interval_seconds: Option<u32>,
    #[serde(default)]
    timeout_seconds: Option<u32>,
    #[serde(default)]
    failure_threshold: Option<u32>,
    #[serde(default)]
    success_threshold: Option<u32>,
    #[serde(default)]
    expected_codes: Vec<u16>,
}

impl ProbeSpec {
    /// Parses the annotation; the error says what is wrong, for the root's
    /// status.
    pub fn parse(text: &str) -> Result<Self, String> {
        let raw: Raw = serde_json::from_str(text).map_err(|e| {
            format!(
                "annotation {} is not a valid health check: {e}",
                labels::HEALTH_CHECK_ANNOTATION
            )
        })?;
        let bad = |why: String| {
            Err(format!(
                "annotation {}: {why}; not probed",
                labels::HEALTH_CHECK_ANNOTATION
            ))
        };
        let scheme = raw.scheme.unwrap_or_else(|| "http".into()).to_lowercase();
        if scheme != "http" {
            return bad(format!(
                "scheme {scheme:?} is not supported (only \"http\")"
            ));
        }
        let path = raw.path.unwrap_or_else(|| "/".into());
        if !path.starts_with('/') || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return bad(format!(
                "path {path:?} must start with '/' and have no spaces"
            ));
        }
        if let Some(host) = &raw.host
            && (host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            return bad(format!("host {host:?} is not a host name"));
        }
        let interval_seconds = raw.interval_seconds.unwrap_or(10);
        if !(1..=3600).contains(&interval_seconds) {
            return bad(format!(
                "intervalSeconds {interval_seconds} is not between 1 and 3600"
            ));
        }
        let timeout_seconds = raw
            .timeout_seconds
            .unwrap_or(interval_seconds.min(5))
            .clamp(1, interval_seconds);
        let failure_threshold = raw.failure_threshold.unwrap_or(3);
        let success_threshold = raw.success_threshold.unwrap_or(1);
        if !(1..=100).contains(&failure_threshold) || !(1..=100).contains(&success_threshold) {
            return bad("failureThreshold and successThreshold must be between 1 and 100".into());
        }
        if let Some(code) = raw
            .expected_codes
            .iter()
            .find(|c| !(100..=599).contains(*c))
        {
            return bad(format!("expected code {code} is not an HTTP status code"));
        }
        let mut expected_codes = raw.expected_codes;
        expected_codes.sort_unstable();
        expected_codes.dedup();
        Ok(Self {
            path,
            port: raw.port.filter(|p| *p != 0).unwrap_or(80),
            scheme,
            host: raw.host,
            interval_seconds,
            timeout_seconds,
            failure_threshold,
            success_threshold,
            expected_codes,
        })
    }

    /// Whether an HTTP status code counts as a success.
    pub fn expects(&self, code: u16) -> bool {
        if self.expected_codes.is_empty() {
            (200..400).contains(&code)
        } else {
            self.expected_codes.contains(&code)
        }
    }
}

/// The Host header a root's probes send: the spec's, else the root's first
/// host that is not a wildcard.
pub fn probe_host(spec: &ProbeSpec, hosts: &[String]) -> Result<String, String> {
    spec.host
        .clone()
        .or_else(|| hosts.iter().find(|h| !h.starts_with('*')).cloned())
        .ok_or_else(|| {
            format!(
                "annotation {}: the root has no host that is not a wildcard: set \"host\"; not probed",
                labels::HEALTH_CHECK_ANNOTATION
            )
        })
}

/// From a root's verdicts: the clusters that fail (no address passes) and
/// the single addresses that fail.
pub fn withdrawals(probes: &[ProbeStatus]) -> (BTreeSet<String>, BTreeSet<String>) {
    let failing = probes
        .iter()
        .filter(|p| probes_fail(probes, &p.cluster))
        .map(|p| p.cluster.clone())
        .collect();
    let addresses = probes
        .iter()
        .filter(|p| !p.passing)
        .map(|p| p.address.clone())
        .collect();
    (failing, addresses)
}

/// One address's verdict, from consecutive results.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeState {
    /// Whether the address serves. It starts serving: an address is
    /// withdrawn only after `failure_threshold` failures in a row.
    pub passing: bool,
    pub consecutive_failures: u32,
    pub consecutive_successes: u32,
    /// The last result, as people read it (`HTTP 200`, `connection refused`).
    pub last: String,
    /// How many probes were made.
    pub probes: u64,
    /// While failing: the result that withdrew the address (stable, so that
    /// the status does not change on every probe).
    pub failed_with: Option<String>,
}

impl Default for ProbeState {
    fn default() -> Self {
        Self {
            passing: true,
            consecutive_failures: 0,
            consecutive_successes: 0,
            last: "not probed yet".into(),
            probes: 0,
            failed_with: None,
        }
    }
}

impl ProbeState {
    /// Records one result; returns whether the verdict flipped.
    pub fn observe(&mut self, ok: bool, what: String, spec: &ProbeSpec) -> bool {
        self.probes += 1;
        self.last = what;
        if ok {
            self.consecutive_failures = 0;
            self.consecutive_successes = self.consecutive_successes.saturating_add(1);
            if !self.passing && self.consecutive_successes >= spec.success_threshold {
                self.passing = true;
                self.failed_with = None;
                return true;
            }
        } else {
            self.consecutive_successes = 0;
            self.consecutive_failures = self.consecutive_failures.saturating_add(1);
            if self.passing && self.consecutive_failures >= spec.failure_threshold {
                self.passing = false;
                self.failed_with = Some(format!(
                    "{} ({} failures in a row)",
                    self.last, self.consecutive_failures
                ));
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_bad_annotations() {
        let s = ProbeSpec::parse("{}").unwrap();
        assert_eq!(
            (
                s.path.as_str(),
                s.port,
                s.interval_seconds,
                s.timeout_seconds
            ),
            ("/", 80, 10, 5)
        );
        assert_eq!((s.failure_threshold, s.success_threshold), (3, 1));
        assert!(s.expects(200) && s.expects(302) && !s.expects(404) && !s.expects(500));
        let s = ProbeSpec::parse(
            r#"{"path":"/healthz","port":8080,"host":"web.example.test","intervalSeconds":1,
                "failureThreshold":2,"successThreshold":2,"expectedCodes":[204,200]}"#,
        )
        .unwrap();
        assert_eq!(s.expected_codes, [200, 204]);
        assert_eq!(s.timeout_seconds, 1);
        assert!(s.expects(204) && !s.expects(301));
        for bad in [
            "not json",
            r#"{"scheme":"https"}"#,
            r#"{"path":"healthz"}"#,
            r#"{"path":"/a b"}"#,
            r#"{"intervalSeconds":0}"#,
            r#"{"failureThreshold":0}"#,
            r#"{"expectedCodes":[42]}"#,
            r#"{"pathh":"/"}"#,
            r#"{"host":""}"#,
        ] {
            let err = ProbeSpec::parse(bad).unwrap_err();
            assert!(
                err.contains(labels::HEALTH_CHECK_ANNOTATION),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn a_cluster_fails_when_none_of_its_addresses_passes() {
        let p = |cluster: &str, address: &str, passing: bool| ProbeStatus {
            cluster: cluster.into(),
            address: address.into(),
            passing,
            message: None,
        };
        let (failing, addresses) = withdrawals(&[
            p("a", "10.0.0.1", false),
            p("a", "10.0.0.2", false),
            p("b", "10.0.0.3", false),
            p("b", "10.0.0.4", true),
        ]);
        assert_eq!(failing, BTreeSet::from(["a".to_string()]));
        assert_eq!(addresses.len(), 3);
        let spec = ProbeSpec::parse("{}").unwrap();
        let hosts = ["*.x.test".to_string(), "web.x.test".to_string()];
        assert_eq!(probe_host(&spec, &hosts).unwrap(), "web.x.test");
        assert!(probe_host(&spec, &hosts[..1]).is_err());
    }

    #[test]
    fn thresholds_flip_the_verdict() {
        let spec = ProbeSpec::parse(r#"{"failureThreshold":3,"successThreshold":2}"#).unwrap();
        let mut s = ProbeState::default();
        assert!(s.passing);
        assert!(!s.observe(false, "HTTP 500".into(), &spec));
        assert!(!s.observe(false, "HTTP 500".into(), &spec));
        // A success in between starts the count again.
        assert!(!s.observe(true, "HTTP 200".into(), &spec));
        assert!(!s.observe(false, "HTTP 500".into(), &spec));
        assert!(!s.observe(false, "HTTP 500".into(), &spec));
        assert!(s.passing);
        assert!(
            s.observe(false, "HTTP 500".into(), &spec),
            "third failure in a row"
        );
        assert!(!s.passing);
        assert_eq!(
            s.failed_with.as_deref(),
            Some("HTTP 500 (3 failures in a row)")
        );
        assert!(
            !s.observe(false, "refused".into(), &spec),
            "no flip while failing"
        );
        assert!(!s.observe(true, "HTTP 200".into(), &spec));
        assert!(!s.passing, "one success is not enough");
        assert!(s.observe(true, "HTTP 200".into(), &spec));
        assert!(s.passing && s.failed_with.is_none());
        assert_eq!((s.probes, s.last.as_str()), (9, "HTTP 200"));
    }
}
