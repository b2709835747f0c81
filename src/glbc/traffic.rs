//! How traffic is shared between a root's clusters. Pure.
//!
//! - `Cluster.spec.weight` (0–1000, absent: [`DEFAULT_WEIGHT`]): a cluster
//!   of weight 0 never receives traffic (with every provider); the
//!   embedded DNS server picks the first answer of a host in proportion to
//!   the weights of the clusters behind its addresses. An RFC 2136 server
//!   cannot express other weights (an RRset has none): there, every
//!   cluster of weight > 0 counts the same;
//! - the label [`labels::PRIORITY_LABEL`] (an integer, absent: 0, lower is
//!   preferred): a host is answered only from the best priority group of
//!   its root that has a healthy cluster of weight > 0, with every
//!   provider. When that group has none left, the next group takes over;
//!   when it comes back, traffic goes back to it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use kube::ResourceExt;

use crate::apis::{Cluster, ClusterIngressStatus};
use crate::labels;

/// The weight of a Cluster without `spec.weight`.
pub const DEFAULT_WEIGHT: u32 = 1;

/// A cluster's share of traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Traffic {
    pub weight: u32,
    pub priority: i64,
}

impl Default for Traffic {
    fn default() -> Self {
        Self {
            weight: DEFAULT_WEIGHT,
            priority: 0,
        }
    }
}

/// The reason of the Warning Event on a Cluster whose priority label does
/// not parse.
pub const INVALID_PRIORITY: &str = "InvalidPriority";

/// Each Cluster's traffic settings, and the clusters whose priority label
/// does not parse (they count as priority 0): `(cluster, message)`.
pub fn traffic_of(clusters: &[Arc<Cluster>]) -> (BTreeMap<String, Traffic>, Vec<(String, String)>) {
    let mut out = BTreeMap::new();
    let mut problems = Vec::new();
    for cluster in clusters {
        let name = cluster.name_any();
        let priority = match cluster.labels().get(labels::PRIORITY_LABEL) {
            None => 0,
            Some(text) => text.trim().parse::<i64>().unwrap_or_else(|_| {
                problems.push((
                    name.clone(),
                    format!(
                        "label {}={text:?} is not an integer; priority 0 is used",
                        labels::PRIORITY_LABEL
                    ),
                ));
                0
            }),
        };
        let weight = cluster.spec.weight.unwrap_or(DEFAULT_WEIGHT);
        out.insert(name, Traffic { weight, priority });
    }
    (out, problems)
}

fn of(traffic: &BTreeMap<String, Traffic>, cluster: &str) -> Traffic {
    traffic.get(cluster).copied().unwrap_or_default()
}

/// The clusters of a root that receive traffic: healthy (`healthy` says
/// which), of weight > 0, and in the best (lowest) priority group that has
/// such a cluster.
pub fn serving<'a>(
    clusters: &'a [ClusterIngressStatus],
    healthy: impl Fn(&str) -> bool,
    traffic: &BTreeMap<String, Traffic>,
) -> BTreeSet<&'a str> {
    let usable: Vec<(&str, Traffic)> = clusters
        .iter()
        .map(|c| (c.cluster.as_str(), of(traffic, &c.cluster)))
        .filter(|(name, t)| t.weight > 0 && healthy(name))
        .collect();
    let Some(best) = usable.iter().map(|(_, t)| t.priority).min() else {
        return BTreeSet::new();
    };
    usable
        .into_iter()
        .filter(|(_, t)| t.priority == best)
        .map(|(name, _)| name)
        .collect()
}

/// The weight of every IP address a cluster reports, over every root:
/// what the embedded server draws a host's first answer with. An address
/// that two clusters report gets the larger weight.
pub fn address_weights<'a>(
    roots: impl IntoIterator<Item = &'a [ClusterIngressStatus]>,
    traffic: &BTreeMap<String, Traffic>,
) -> BTreeMap<IpAddr, u32> {
    let mut out: BTreeMap<IpAddr, u32> = BTreeMap::new();
    for clusters in roots {
        for cluster in clusters {
            let weight = of(traffic, &cluster.cluster).weight;
            for ip in cluster
                .addresses
                .iter()
                .filter_map(|a| a.ip.as_deref()?.trim().parse::<IpAddr>().ok())
            {
                let entry = out.entry(ip).or_insert(weight);
                *entry = (*entry).max(weight);
            }
        }
    }
    out
}

/// Orders `items` for an answer: the first is drawn in proportion to the
/// weights with `draw` (any u64, uniformly random); the others follow in
/// their given order. Items of weight 0 are left out, unless every item
/// has weight 0 (then they come in their given order: what is published
/// is answered).
pub fn weighted_order<T: Clone>(items: &[(T, u32)], draw: u64) -> Vec<T> {
    let total: u64 = items.iter().map(|(_, w)| u64::from(*w)).sum();
    if total == 0 {
        return items.iter().map(|(t, _)| t.clone()).collect();
    }
    // Multiply-shift maps the draw onto 0..total without modulo bias worth
    // speaking of (total ≤ 1000 × the addresses of one host).
    let point = ((u128::from(draw) * u128::from(total)) >> 64) as u64;
    let mut acc = 0u64;
    let mut first = 0;
    for (i, (_, w)) in items.iter().enumerate() {
        acc += u64::from(*w);
        if point < acc {
            first = i;
            break;
        }
    }
    let mut out = vec![items[first].0.clone()];
    out.extend(
        items
            .iter()
            .enumerate()
            .filter(|(i, (_, w))| *i != first && *w > 0)
            .map(|(_, (t, _))| t.clone()),
    );
    out
}

/// A small, fast pseudo-random sequence (SplitMix64): one draw per query.
pub fn splitmix64(state: u64) -> u64 {
    let mut z = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apis::{ClusterSpec, LoadBalancerAddress};

    fn status(cluster: &str, ip: &str) -> ClusterIngressStatus {
        ClusterIngressStatus {
            cluster: cluster.into(),
            addresses: vec![LoadBalancerAddress {
                ip: Some(ip.into()),
                ..Default::default()
            }],
            healthy: true,
            last_change_time: None,
        }
    }

    fn t(weight: u32, priority: i64) -> Traffic {
        Traffic { weight, priority }
    }

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn settings_come_from_the_weight_and_the_priority_label() {
        let mut a = Cluster::new(
            "a",
            ClusterSpec {
                weight: Some(3),
                ..Default::default()
            },
        );
        a.labels_mut()
            .insert(labels::PRIORITY_LABEL.into(), " -2 ".into());
        let b = Cluster::new("b", ClusterSpec::default());
        let mut c = Cluster::new("c", ClusterSpec::default());
        c.labels_mut()
            .insert(labels::PRIORITY_LABEL.into(), "high".into());
        let (traffic, problems) = traffic_of(&[Arc::new(a), Arc::new(b), Arc::new(c)]);
        assert_eq!(traffic["a"], t(3, -2));
        assert_eq!(traffic["b"], t(DEFAULT_WEIGHT, 0));
        assert_eq!(traffic["c"], t(DEFAULT_WEIGHT, 0));
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].0, "c");
        assert!(problems[0].1.contains("\"high\""), "{problems:?}");
    }

    #[test]
    fn only_the_best_healthy_priority_group_serves_and_weight_zero_never() {
        let clusters = [
            status("east", "127.0.1.1"),
            status("west", "127.0.1.2"),
            status("backup", "127.0.1.3"),
            status("off", "127.0.1.4"),
        ];
        let traffic = BTreeMap::from([
            ("east".to_string(), t(3, 0)),
            ("west".to_string(), t(1, 0)),
            ("backup".to_string(), t(1, 10)),
            ("off".to_string(), t(0, -5)),
        ]);
        let all = set(&["east", "west", "backup", "off"]);
        let names = |s: BTreeSet<&str>| s.into_iter().map(String::from).collect::<Vec<_>>();
        let in_set = |s: &BTreeSet<String>| {
            let s = s.clone();
            move |c: &str| s.contains(c)
        };
        assert_eq!(
            names(serving(&clusters, in_set(&all), &traffic)),
            ["east", "west"],
            "weight 0 never serves, even in a better group"
        );
        assert_eq!(
            names(serving(
                &clusters,
                in_set(&set(&["west", "backup"])),
                &traffic
            )),
            ["west"]
        );
        // The preferred group has no healthy cluster left: fail over.
        assert_eq!(
            names(serving(
                &clusters,
                in_set(&set(&["backup", "off"])),
                &traffic
            )),
            ["backup"]
        );
        assert!(serving(&clusters, in_set(&set(&["off"])), &traffic).is_empty());
        // No settings at all: every healthy cluster, weight 1.
        assert_eq!(
            names(serving(&clusters, in_set(&all), &BTreeMap::new())).len(),
            4
        );
    }

    #[test]
    fn address_weights_take_the_clusters_weights() {
        let a = [status("east", "127.0.1.1"), status("west", "127.0.1.2")];
        let b = [status("other", "127.0.1.2"), status("bare", "not-an-ip")];
        let traffic = BTreeMap::from([
            ("east".to_string(), t(3, 0)),
            ("west".to_string(), t(1, 0)),
            ("other".to_string(), t(7, 0)),
        ]);
        let w = address_weights([&a[..], &b[..]], &traffic);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(w.len(), 2);
        assert_eq!(w[&ip("127.0.1.1")], 3);
        assert_eq!(w[&ip("127.0.1.2")], 7);
    }

    #[test]
    fn the_first_answer_follows_the_weights() {
        let items = [("a", 3), ("b", 1), ("zero", 0)];
        let mut firsts = BTreeMap::new();
        let n = 40_000u64;
        let mut state = 42;
        for _ in 0..n {
            state = splitmix64(state);
            let order = weighted_order(&items, state);
            assert_eq!(order.len(), 2, "weight 0 is never answered: {order:?}");
            *firsts.entry(order[0]).or_insert(0u64) += 1;
        }
        let share = firsts["a"] as f64 / n as f64;
        assert!((share - 0.75).abs() < 0.01, "{share}");
        assert!(!firsts.contains_key("zero"));
        // The draw maps onto the weights in order, edges included.
        assert_eq!(weighted_order(&items, 0), ["a", "b"]);
        assert_eq!(weighted_order(&items, (3 << 62) - 1), ["a", "b"]);
        assert_eq!(weighted_order(&items, 3 << 62), ["b", "a"]);
        assert_eq!(weighted_order(&items, u64::MAX), ["b", "a"]);
        // Every weight 0: what is published is answered, in order.
        assert_eq!(weighted_order(&[("x", 0), ("y", 0)], 7), ["x", "y"]);
        assert!(weighted_order::<&str>(&[], 7).is_empty());
    }
}
