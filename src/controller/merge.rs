//! Merging (pure, any kind of root): the leaves' addresses → the
//! per-cluster view of the GlobalIngress. How they merge into the root's own
//! status is the kind's ([`RootKind::merge`](super::kind::RootKind::merge)).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::apis::{ClusterIngressStatus, LoadBalancerAddress};

/// What the controller knows of one target cluster of a root.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterView<A> {
    pub cluster: String,
    pub healthy: bool,
    /// The addresses the leaf reports (empty when none yet).
    pub entries: Vec<A>,
}

/// The GlobalIngress's per-cluster view, sorted by cluster. An entry keeps
/// its `lastChangeTime` from `previous` while its addresses and health stay
/// the same. `address` says how an entry reads as a GlobalIngress address.
pub fn cluster_statuses<A>(
    views: &[ClusterView<A>],
    previous: &[ClusterIngressStatus],
    now: &Time,
    address: impl Fn(&A) -> Option<LoadBalancerAddress>,
) -> Vec<ClusterIngressStatus> {
    let mut statuses: Vec<ClusterIngressStatus> = views
        .iter()
        .map(|v| {
            let mut addresses: Vec<LoadBalancerAddress> =
                v.entries.iter().filter_map(&address).collect();
            addresses.sort();
            addresses.dedup();
            let unchanged = previous.iter().find(|p| {
                p.cluster == v.cluster && p.addresses == addresses && p.healthy == v.healthy
            });
            ClusterIngressStatus {
                cluster: v.cluster.clone(),
                addresses,
                healthy: v.healthy,
                last_change_time: Some(
                    unchanged
                        .and_then(|p| p.last_change_time.clone())
                        .unwrap_or_else(|| now.clone()),
                ),
            }
        })
        .collect();
    statuses.sort_by(|a, b| a.cluster.cmp(&b.cluster));
    statuses
}

#[cfg(test)]
mod tests {
    use k8s_openapi::jiff::Timestamp;

    use super::*;

    fn ip(a: &str) -> LoadBalancerAddress {
        LoadBalancerAddress {
            ip: Some(a.into()),
            hostname: None,
        }
    }

    fn view(
        cluster: &str,
        healthy: bool,
        entries: Vec<LoadBalancerAddress>,
    ) -> ClusterView<LoadBalancerAddress> {
        ClusterView {
            cluster: cluster.into(),
            healthy,
            entries,
        }
    }

    fn at(s: i64) -> Time {
        Time(Timestamp::from_second(s).unwrap())
    }

    fn same(a: &LoadBalancerAddress) -> Option<LoadBalancerAddress> {
        Some(a.clone())
    }

    #[test]
    fn sorted_by_cluster_with_sorted_unique_addresses() {
        let statuses = cluster_statuses(
            &[
                view(
                    "b",
                    false,
                    vec![ip("127.0.1.3"), ip("127.0.1.2"), ip("127.0.1.3")],
                ),
                view("a", true, vec![]),
            ],
            &[],
            &at(10),
            same,
        );
        let clusters: Vec<&str> = statuses.iter().map(|s| s.cluster.as_str()).collect();
        assert_eq!(clusters, ["a", "b"]);
        assert_eq!(statuses[1].addresses, [ip("127.0.1.2"), ip("127.0.1.3")]);
        assert!(!statuses[1].healthy);
    }

    #[test]
    fn change_time_moves_only_on_change() {
        let first = cluster_statuses(
            &[view("a", true, vec![ip("127.0.1.1")])],
            &[],
            &at(10),
            same,
        );
        assert_eq!(first[0].last_change_time, Some(at(10)));
        let again = cluster_statuses(
            &[view("a", true, vec![ip("127.0.1.1")])],
            &first,
            &at(20),
            same,
        );
        assert_eq!(again, first);
        let unhealthy = cluster_statuses(
            &[view("a", false, vec![ip("127.0.1.1")])],
            &first,
            &at(30),
            same,
        );
        assert_eq!(unhealthy[0].last_change_time, Some(at(30)));
    }
}
