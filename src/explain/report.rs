//! What `explain` reports (pure): a root's chain as a list of hops, each
//! with a verdict and the items it judged, the first hop that does not hold,
//! and the exit code. The serialized form (`-o json`, `-o yaml`) is a stable
//! schema: [`API_VERSION`] and [`KIND`] name it, fields are only ever added.

use serde::Serialize;

/// `apiVersion` of the serialized report.
pub const API_VERSION: &str = "kcp-ingress.dev/v1alpha1";
/// `kind` of the serialized report.
pub const KIND: &str = "Explanation";

/// Exit code when every hop holds.
pub const EXIT_HOLDS: u8 = 0;
/// Exit code when a hop does not hold.
pub const EXIT_FAILS: u8 = 1;
/// Exit code when `explain` itself could not run (bad flags, no control plane).
pub const EXIT_ERROR: u8 = 2;

/// How one hop, or one item of it, stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// As expected.
    Pass,
    /// Not as expected: the chain stops here.
    Fail,
    /// Not judged (nothing to judge, or no way to look from here).
    Skip,
}

/// One thing a hop looked at: a cluster, a copy, a condition, a DNS name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Item {
    pub subject: String,
    pub verdict: Verdict,
    pub message: String,
}

impl Item {
    pub fn new(subject: impl Into<String>, verdict: Verdict, message: impl Into<String>) -> Self {
        Self {
            subject: subject.into(),
            verdict,
            message: message.into(),
        }
    }

    pub fn pass(subject: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(subject, Verdict::Pass, message)
    }

    pub fn fail(subject: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(subject, Verdict::Fail, message)
    }

    pub fn skip(subject: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(subject, Verdict::Skip, message)
    }
}

/// The hops of a root's chain, in order, the same for every kind of root
/// (a route's `global-ingress` is its parent Gateways').
pub mod hop {
    /// The root exists, is a root, and is valid.
    pub const ROOT: &str = "root";
    /// Its selector, and the Clusters matched and skipped.
    pub const PLACEMENT: &str = "placement";
    /// One current leaf per placed cluster, none elsewhere.
    pub const LEAVES: &str = "leaves";
    /// What it references exists, and is copied into every placed cluster's namespace.
    pub const DEPENDENCIES: &str = "dependencies";
    /// The copies in each physical cluster: present, the syncer's, up to date.
    pub const DOWNSTREAM: &str = "downstream";
    /// Each placed cluster is healthy and its load balancer gave the leaf an address.
    pub const CLUSTERS: &str = "clusters";
    /// The root's status is the merge of its healthy leaves'.
    pub const ROOT_STATUS: &str = "root-status";
    /// The GlobalIngress: hosts, and the controller's conditions.
    pub const GLOBAL: &str = "global-ingress";
    /// The glbc published the records, and the DNS names are ours.
    pub const DNS_RECORDS: &str = "dns-records";
    /// What the DNS server answers now.
    pub const DNS_ANSWERS: &str = "dns-answers";
}

/// One hop of the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hop {
    /// One of [`hop`].
    pub name: String,
    pub verdict: Verdict,
    /// One line: what holds, or why not.
    pub summary: String,
    /// A command to look further (printed with the first failing hop).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    pub items: Vec<Item>,
}

impl Hop {
    /// A hop judged by its items: it fails when one fails, holds when one
    /// holds (and none fails), and is skipped otherwise. The summary is
    /// `pass` when it holds, else the first failing (or skipped) item's.
    pub fn of_items(name: &str, pass: impl Into<String>, items: Vec<Item>) -> Self {
        let first = |v: Verdict| items.iter().find(|i| i.verdict == v);
        let (verdict, summary) = if let Some(failed) = first(Verdict::Fail) {
            (
                Verdict::Fail,
                format!("{}: {}", failed.subject, failed.message),
            )
        } else if first(Verdict::Pass).is_some() {
            (Verdict::Pass, pass.into())
        } else if let Some(skipped) = first(Verdict::Skip) {
            (
                Verdict::Skip,
                format!("{}: {}", skipped.subject, skipped.message),
            )
        } else {
            (Verdict::Skip, "nothing to check".to_string())
        };
        Self {
            name: name.to_string(),
            verdict,
            summary,
            hint: None,
            items,
        }
    }

    /// A hop with one verdict and no items.
    pub fn single(name: &str, verdict: Verdict, summary: impl Into<String>) -> Self {
        Self {
            name: name.to_string(),
            verdict,
            summary: summary.into(),
            hint: None,
            items: Vec::new(),
        }
    }

    /// The same hop with a hint.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// The root a report is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RootRef {
    /// `Ingress`, `Gateway`, `HTTPRoute` or `GRPCRoute`.
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

/// The first hop that does not hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FirstFailure {
    pub hop: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub root: RootRef,
    /// Whether every hop holds (none fails).
    pub holds: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_failure: Option<FirstFailure>,
    pub hops: Vec<Hop>,
}

impl Report {
    pub fn new(root: RootRef, hops: Vec<Hop>) -> Self {
        let first_failure =
            hops.iter()
                .find(|h| h.verdict == Verdict::Fail)
                .map(|h| FirstFailure {
                    hop: h.name.clone(),
                    message: h.summary.clone(),
                    hint: h.hint.clone(),
                });
        Self {
            api_version: API_VERSION,
            kind: KIND,
            root,
            holds: first_failure.is_none(),
            first_failure,
            hops,
        }
    }

    /// [`EXIT_HOLDS`] when every hop holds, [`EXIT_FAILS`] otherwise.
    pub fn exit_code(&self) -> u8 {
        if self.holds { EXIT_HOLDS } else { EXIT_FAILS }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> RootRef {
        RootRef {
            kind: "Ingress".into(),
            namespace: "shop".into(),
            name: "web".into(),
        }
    }

    #[test]
    fn a_hop_fails_with_its_first_failing_item() {
        let hop = Hop::of_items(
            hop::DEPENDENCIES,
            "all there",
            vec![
                Item::pass("Service shop/web", "exists"),
                Item::fail("Service shop/api", "does not exist"),
                Item::fail("Secret shop/tls", "does not exist"),
            ],
        );
        assert_eq!(hop.verdict, Verdict::Fail);
        assert_eq!(hop.summary, "Service shop/api: does not exist");
        let held = Hop::of_items(
            "x",
            "all there",
            vec![Item::pass("a", "ok"), Item::skip("b", "?")],
        );
        assert_eq!(
            (held.verdict, held.summary.as_str()),
            (Verdict::Pass, "all there")
        );
        assert_eq!(Hop::of_items("x", "p", vec![]).verdict, Verdict::Skip);
        let skipped = Hop::of_items("x", "p", vec![Item::skip("b", "pull mode")]);
        assert_eq!(
            (skipped.verdict, skipped.summary.as_str()),
            (Verdict::Skip, "b: pull mode")
        );
    }

    #[test]
    fn the_first_failing_hop_decides_the_exit_code() {
        let hops = vec![
            Hop::single(hop::ROOT, Verdict::Pass, "ok"),
            Hop::single(hop::PLACEMENT, Verdict::Skip, "?"),
            Hop::single(hop::LEAVES, Verdict::Fail, "no leaf").hint("kubectl get ingress"),
            Hop::single(hop::DNS_RECORDS, Verdict::Fail, "later"),
        ];
        let report = Report::new(root(), hops);
        assert!(!report.holds);
        assert_eq!(report.exit_code(), EXIT_FAILS);
        let first = report.first_failure.as_ref().unwrap();
        assert_eq!(
            (
                first.hop.as_str(),
                first.message.as_str(),
                first.hint.as_deref()
            ),
            (hop::LEAVES, "no leaf", Some("kubectl get ingress"))
        );
        let fine = Report::new(root(), vec![Hop::single(hop::ROOT, Verdict::Pass, "ok")]);
        assert!(fine.holds && fine.first_failure.is_none());
        assert_eq!(fine.exit_code(), EXIT_HOLDS);
    }

    #[test]
    fn the_schema_is_stable() {
        let report = Report::new(
            root(),
            vec![
                Hop::of_items(
                    hop::ROOT,
                    "fine",
                    vec![Item::fail("Ingress shop/web", "not found")],
                )
                .hint("kubectl get ingress -n shop"),
            ],
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "apiVersion": "kcp-ingress.dev/v1alpha1",
                "kind": "Explanation",
                "root": {"kind": "Ingress", "namespace": "shop", "name": "web"},
                "holds": false,
                "firstFailure": {
                    "hop": "root",
                    "message": "Ingress shop/web: not found",
                    "hint": "kubectl get ingress -n shop"
                },
                "hops": [{
                    "name": "root",
                    "verdict": "fail",
                    "summary": "Ingress shop/web: not found",
                    "hint": "kubectl get ingress -n shop",
                    "items": [{"subject": "Ingress shop/web", "verdict": "fail", "message": "not found"}]
                }]
            })
        );
    }
}
