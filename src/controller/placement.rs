//! Placement (pure): which Clusters a root Ingress goes to.
//!
//! The root's `kcp-ingress.dev/placement` annotation is a label selector in
//! the Kubernetes string syntax (`region=eu,tier in (gold,silver),!legacy`);
//! without it every schedulable Cluster is a target.

use std::collections::BTreeSet;

use k8s_openapi::jiff::Timestamp;
use kube::core::{Expression, Selector, SelectorExt};

use crate::apis::Cluster;
use crate::labels;

/// Why a placement selector was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid placement selector {selector:?}: {reason}")]
pub struct SelectorError {
    pub selector: String,
    pub reason: String,
}

/// Parses a label selector in the Kubernetes string syntax. An empty string
/// selects everything.
pub fn parse_selector(text: &str) -> Result<Selector, SelectorError> {
    let fail = |reason: String| SelectorError {
        selector: text.to_string(),
        reason,
    };
    let mut expressions = Vec::new();
    for term in split_terms(text).map_err(&fail)? {
        expressions.push(parse_term(term).map_err(&fail)?);
    }
    Ok(Selector::from_iter(expressions))
}

/// Splits on the commas that are not inside a `( … )` value list.
fn split_terms(text: &str) -> Result<Vec<&str>, String> {
    let mut terms = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in text.char_indices() {
        match c {
            '(' if depth == 0 => depth = 1,
            '(' => return Err("nested parentheses".into()),
            ')' if depth == 1 => depth = 0,
            ')' => return Err("unbalanced ')'".into()),
            ',' if depth == 0 => {
                terms.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("unbalanced '('".into());
    }
    terms.push(&text[start..]);
    if terms.len() == 1 && terms[0].trim().is_empty() {
        return Ok(Vec::new());
    }
    if terms.iter().any(|t| t.trim().is_empty()) {
        return Err("empty requirement".into());
    }
    Ok(terms)
}

fn parse_term(term: &str) -> Result<Expression, String> {
    let term = term.trim();
    if let Some(key) = term.strip_prefix('!') {
        return Ok(Expression::DoesNotExist(key_of(key)?));
    }
    for (op, make) in [
        (
            "!=",
            Expression::NotEqual as fn(String, String) -> Expression,
        ),
        ("==", Expression::Equal),
        ("=", Expression::Equal),
    ] {
        if let Some((key, value)) = term.split_once(op) {
            return Ok(make(key_of(key)?, value_of(value)?));
        }
    }
    let mut words = term.splitn(2, char::is_whitespace);
    let key = key_of(words.next().unwrap_or_default())?;
    let Some(rest) = words.next().map(str::trim_start) else {
        return Ok(Expression::Exists(key));
    };
    let (negated, list) = if let Some(list) = rest.strip_prefix("notin") {
        (true, list)
    } else if let Some(list) = rest.strip_prefix("in") {
        (false, list)
    } else {
        return Err(format!("unknown operator in {term:?}"));
    };
    let list = list
        .trim()
        .strip_prefix('(')
        .and_then(|l| l.strip_suffix(')'))
        .ok_or_else(|| format!("expected a (value, ...) list in {term:?}"))?;
    let values = list
        .split(',')
        .map(value_of)
        .collect::<Result<BTreeSet<String>, String>>()?;
    Ok(if negated {
        Expression::NotIn(key, values)
    } else {
        Expression::In(key, values)
    })
}

fn key_of(key: &str) -> Result<String, String> {
    let key = key.trim();
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix
        && (prefix.is_empty() || prefix.len() > 253 || !is_dns_subdomain(prefix))
    {
        return Err(format!("invalid label key prefix in {key:?}"));
    }
    if !is_label_name(name) {
        return Err(format!("invalid label key {key:?}"));
    }
    Ok(key.to_string())
}

fn value_of(value: &str) -> Result<String, String> {
    let value = value.trim();
    if value.is_empty() || is_label_name(value) {
        Ok(value.to_string())
    } else {
        Err(format!("invalid label value {value:?}"))
    }
}

/// A label name (or value): at most 63 characters, alphanumerics with `-`,
/// `_` and `.` inside.
pub fn is_label_name(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn is_dns_subdomain(s: &str) -> bool {
    s.split('.').all(|label| {
        let b = label.as_bytes();
        !b.is_empty()
            && b.len() <= 63
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
    })
}

/// The outcome of placing one root.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    /// Names of the target Clusters, sorted.
    pub targets: Vec<String>,
    /// Clusters that match but cannot be targeted, with the reason.
    pub unusable: Vec<(String, String)>,
    /// Unschedulable clusters that match, with the time the glbc said
    /// their drain completes (none yet: not said). See [`Placement::keep_draining`].
    pub draining: Vec<(String, Option<Timestamp>)>,
    /// When the next draining cluster's leaves may go (a requeue is due then).
    pub drain_wake: Option<Timestamp>,
}

impl Placement {
    /// A drained cluster loses its leaves only once its addresses have left
    /// DNS and the TTL has passed: until the drain completes at `now`, a
    /// matching unschedulable cluster stays a target. Sets `drain_wake`.
    pub fn keep_draining(&mut self, now: Timestamp) {
        for (name, complete) in &self.draining {
            match complete {
                Some(at) if *at <= now => {}
                _ => self.targets.push(name.clone()),
            }
            if let Some(at) = complete.filter(|at| *at > now) {
                self.drain_wake = Some(self.drain_wake.map_or(at, |w| w.min(at)));
            }
        }
        self.targets.sort();
        self.targets.dedup();
    }
}

/// Places a root with the (already parsed) `selector` on `clusters`: every
/// schedulable, not deleted Cluster whose labels match and whose name can
/// form the placement label key.
pub fn place<'a>(
    selector: &Selector,
    clusters: impl IntoIterator<Item = &'a Cluster>,
) -> Placement {
    let mut placement = Placement::default();
    for cluster in clusters {
        let Some(name) = cluster.metadata.name.as_deref() else {
            continue;
        };
        if cluster.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let empty = Default::default();
        if !selector.matches(cluster.metadata.labels.as_ref().unwrap_or(&empty)) {
            continue;
        }
        match usable_cluster_name(name) {
            Ok(()) if cluster.spec.unschedulable => {
                let complete = cluster
                    .status
                    .as_ref()
                    .and_then(|s| s.drain_complete_time.as_ref());
                placement
                    .draining
                    .push((name.to_string(), complete.map(|t| t.0)));
            }
            Ok(()) => placement.targets.push(name.to_string()),
            Err(reason) => placement.unusable.push((name.to_string(), reason)),
        }
    }
    placement.targets.sort();
    placement.unusable.sort();
    placement.draining.sort();
    placement
}

/// Whether `name` can be the name part of the label key
/// `state.kcp-ingress.dev/<name>`.
pub fn usable_cluster_name(name: &str) -> Result<(), String> {
    if is_label_name(name) {
        Ok(())
    } else {
        Err(format!(
            "cluster name {name:?} cannot form the label key {}{name} \
             (at most 63 characters: letters, digits, '-', '_', '.')",
            labels::STATE_LABEL_PREFIX
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use proptest::prelude::*;

    use super::*;
    use crate::apis::ClusterSpec;

    fn cluster(name: &str, labels: &[(&str, &str)], unschedulable: bool) -> Cluster {
        let mut c = Cluster::new(
            name,
            ClusterSpec {
                unschedulable,
                ..Default::default()
            },
        );
        c.metadata.labels = Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        c
    }

    fn matches(selector: &str, labels: &[(&str, &str)]) -> bool {
        let labels: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        parse_selector(selector).unwrap().matches(&labels)
    }

    #[test]
    fn selector_syntax() {
        let eu = [("region", "eu"), ("tier", "gold")];
        assert!(matches("", &eu));
        assert!(matches("region=eu", &eu));
        assert!(matches("region==eu", &eu));
        assert!(!matches("region!=eu", &eu));
        assert!(matches("region in (eu, us),tier", &eu));
        assert!(!matches("region notin (eu)", &eu));
        assert!(matches("!legacy", &eu));
        assert!(!matches("!tier", &eu));
        assert!(matches("kcp-ingress.dev/zone notin (a,b)", &eu));
        assert!(matches(" region = eu , tier in (gold) ", &eu));
    }

    #[test]
    fn bad_selectors_are_refused() {
        for bad in [
            "region in eu",
            "region in (eu",
            "region=eu,,tier",
            "region=e u",
            "region ~ eu",
            "-bad=key",
            "a/b/c=d",
            "(x)",
            ",",
        ] {
            assert!(parse_selector(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn places_on_matching_schedulable_clusters_sorted() {
        let clusters = [
            cluster("west", &[("region", "us")], false),
            cluster("east", &[("region", "us")], false),
            cluster("paris", &[("region", "eu")], false),
            cluster("drain", &[("region", "us")], true),
            cluster(&"x".repeat(64), &[("region", "us")], false),
        ];
        let p = place(&parse_selector("region=us").unwrap(), &clusters);
        assert_eq!(p.targets, ["east", "west"]);
        assert_eq!(p.unusable.len(), 1);
        let all = place(&parse_selector("").unwrap(), &clusters);
        assert_eq!(all.targets, ["east", "paris", "west"]);
        assert_eq!(all.draining, [("drain".to_string(), None)]);
    }

    #[test]
    fn a_draining_cluster_keeps_its_leaves_until_its_drain_completes() {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let later = Timestamp::from_second(1_800_000_030).unwrap();
        let mut drained = cluster("drained", &[], true);
        drained.status = Some(crate::apis::ClusterStatus {
            drain_complete_time: Some(Time(now)),
            ..Default::default()
        });
        let mut draining = cluster("draining", &[], true);
        draining.status = Some(crate::apis::ClusterStatus {
            drain_complete_time: Some(Time(later)),
            ..Default::default()
        });
        let clusters = [
            cluster("b", &[], false),
            drained,
            draining,
            cluster("unsaid", &[], true),
        ];
        let mut p = place(&parse_selector("").unwrap(), &clusters);
        p.keep_draining(now);
        assert_eq!(p.targets, ["b", "draining", "unsaid"]);
        assert_eq!(p.drain_wake, Some(later));
        let mut p = place(&parse_selector("").unwrap(), &clusters);
        p.keep_draining(later);
        assert_eq!(p.targets, ["b", "unsaid"]);
        assert_eq!(p.drain_wake, None);
    }

    proptest! {
        #[test]
        fn placement_does_not_depend_on_cluster_order(
            specs in proptest::collection::vec(("[a-e]{1,3}", "(eu|us)", any::<bool>()), 0..12),
            selector in "(|region=eu|region in \\(eu,us\\)|!region|region!=us)",
        ) {
            let clusters: Vec<Cluster> = specs.iter()
                .map(|(n, r, u)| cluster(n, &[("region", r.as_str())], *u))
                .collect();
            let selector = parse_selector(&selector).unwrap();
            let forward = place(&selector, &clusters);
            let backward = place(&selector, clusters.iter().rev());
            prop_assert_eq!(&forward, &backward);
            prop_assert!(forward.targets.windows(2).all(|w| w[0] <= w[1]));
        }
    }
}
