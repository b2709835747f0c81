//! An Ingress root's status (pure): the sorted, deduplicated union of its
//! leaves' `status.loadBalancer.ingress`, and how an entry reads as a
//! GlobalIngress address.

use k8s_openapi::api::networking::v1::{IngressLoadBalancerIngress, IngressPortStatus};

use crate::apis::LoadBalancerAddress;
use crate::controller::merge::ClusterView;

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

#[cfg(test)]
mod tests {
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
