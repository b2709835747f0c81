//! Merging (pure): the leaves' addresses → the per-cluster view of the
//! GlobalIngress (any kind), and an Ingress root's load-balancer status.

use k8s_openapi::api::networking::v1::{IngressLoadBalancerIngress, IngressPortStatus};
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

/// A total order on load-balancer entries (the type has none of its own):
/// ip, hostname, then ports as (port, protocol, error).
type SortKey<'a> = (
    Option<&'a str>,
    Option<&'a str>,
    Vec<(i32, &'a str, Option<&'a str>)>,
);

fn sort_key(e: &IngressLoadBalancerIngress) -> SortKey<'_> {
    let ports = e
        .ports
        .iter()
        .flatten()
        .map(|p: &IngressPortStatus| (p.port, p.protocol.as_str(), p.error.as_deref()))
        .collect();
    (e.ip.as_deref(), e.hostname.as_deref(), ports)
}

/// A load-balancer entry as a GlobalIngress address: its non-empty ip and
/// hostname, none when both are empty.
pub fn lb_address(e: &IngressLoadBalancerIngress) -> Option<LoadBalancerAddress> {
    let address = LoadBalancerAddress {
        ip: e.ip.clone().filter(|s| !s.is_empty()),
        hostname: e.hostname.clone().filter(|s| !s.is_empty()),
    };
    (address.ip.is_some() || address.hostname.is_some()).then_some(address)
}

fn sorted_unique(mut entries: Vec<IngressLoadBalancerIngress>) -> Vec<IngressLoadBalancerIngress> {
    entries.sort_by(|a, b| sort_key(a).cmp(&sort_key(b)));
    entries.dedup();
    entries
}

/// The root's `status.loadBalancer.ingress`: the sorted, deduplicated union
/// of the entries of the healthy clusters, or of every cluster while none is
/// healthy (so a lost health signal never empties the status).
pub fn root_entries(
    views: &[ClusterView<IngressLoadBalancerIngress>],
) -> Vec<IngressLoadBalancerIngress> {
    let any_healthy = views.iter().any(|v| v.healthy);
    sorted_unique(
        views
            .iter()
            .filter(|v| v.healthy || !any_healthy)
            .flat_map(|v| v.entries.iter().cloned())
            .collect(),
    )
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
    use proptest::prelude::*;

    use super::*;

    fn ip(a: &str) -> IngressLoadBalancerIngress {
        IngressLoadBalancerIngress {
            ip: Some(a.into()),
            ..Default::default()
        }
    }

    fn host(h: &str) -> IngressLoadBalancerIngress {
        IngressLoadBalancerIngress {
            hostname: Some(h.into()),
            ..Default::default()
        }
    }

    fn view(
        cluster: &str,
        healthy: bool,
        entries: Vec<IngressLoadBalancerIngress>,
    ) -> ClusterView<IngressLoadBalancerIngress> {
        ClusterView {
            cluster: cluster.into(),
            healthy,
            entries,
        }
    }

    fn at(s: i64) -> Time {
        Time(Timestamp::from_second(s).unwrap())
    }

    #[test]
    fn union_of_healthy_clusters() {
        let views = [
            view("c", true, vec![ip("127.0.1.3"), ip("127.0.1.1")]),
            view("a", true, vec![ip("127.0.1.1"), host("lb.example.test")]),
            view("b", false, vec![ip("127.0.1.2")]),
        ];
        assert_eq!(
            root_entries(&views),
            vec![host("lb.example.test"), ip("127.0.1.1"), ip("127.0.1.3")]
        );
    }

    #[test]
    fn all_clusters_while_none_is_healthy() {
        let views = [
            view("a", false, vec![ip("127.0.1.1")]),
            view("b", false, vec![ip("127.0.1.2")]),
        ];
        assert_eq!(root_entries(&views), vec![ip("127.0.1.1"), ip("127.0.1.2")]);
    }

    #[test]
    fn change_time_moves_only_on_change() {
        let first = cluster_statuses(
            &[view("a", true, vec![ip("127.0.1.1")])],
            &[],
            &at(10),
            lb_address,
        );
        assert_eq!(first[0].last_change_time, Some(at(10)));
        let same = cluster_statuses(
            &[view("a", true, vec![ip("127.0.1.1")])],
            &first,
            &at(20),
            lb_address,
        );
        assert_eq!(same, first);
        let unhealthy = cluster_statuses(
            &[view("a", false, vec![ip("127.0.1.1")])],
            &first,
            &at(30),
            lb_address,
        );
        assert_eq!(unhealthy[0].last_change_time, Some(at(30)));
    }

    fn entry() -> impl Strategy<Value = IngressLoadBalancerIngress> {
        prop_oneof![
            (1u8..5).prop_map(|n| ip(&format!("127.0.1.{n}"))),
            (1u8..3).prop_map(|n| host(&format!("lb{n}.example.test"))),
        ]
    }

    proptest! {
        #[test]
        fn merge_is_order_independent_sorted_and_unique(
            specs in proptest::collection::vec(("[a-d]", any::<bool>(), proptest::collection::vec(entry(), 0..4)), 0..6)
        ) {
            let views: Vec<ClusterView<IngressLoadBalancerIngress>> = specs.into_iter().map(|(c, h, e)| view(&c, h, e)).collect();
            let mut reversed = views.clone();
            reversed.reverse();
            let merged = root_entries(&views);
            prop_assert_eq!(&merged, &root_entries(&reversed));
            prop_assert!(merged.windows(2).all(|w| sort_key(&w[0]) < sort_key(&w[1])));
            let any_healthy = views.iter().any(|v| v.healthy);
            for e in views.iter().flat_map(|v| &v.entries) {
                let eligible = views.iter().any(|o| (o.healthy || !any_healthy) && o.entries.contains(e));
                prop_assert_eq!(merged.contains(e), eligible);
            }
        }
    }
}
