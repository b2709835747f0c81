//! `networking.k8s.io/v1` Ingress as a root kind: leaves are Ingresses with
//! the root's spec, dependencies are its backend Services and TLS Secrets,
//! its hosts are its rules' and TLS entries' hosts, and its status is the
//! union of its healthy leaves' `status.loadBalancer.ingress`.

pub mod split;
pub mod status;

use std::sync::Arc;

use k8s_openapi::api::networking::v1::{Ingress, IngressLoadBalancerIngress};
use kube::ResourceExt;
use serde_json::json;

use crate::apis::{Cluster, LoadBalancerAddress};
use crate::controller::dependencies::{DepKey, DepKind};
use crate::controller::kind::{LeafView, Lookups, Problem, RootKind};
use crate::controller::merge::ClusterView;
use crate::runtime::compact::Compact;

impl RootKind for Ingress {
    type Address = IngressLoadBalancerIngress;
    type World = ();
    /// Compact: about 1,200 bytes an Ingress instead of 2,400 (a root has
    /// itself and a leaf per cluster in the store).
    type Stored = Compact<Ingress>;
    const ADOPTS_UNCONTROLLED: bool = true;

    fn is_root(object: &Self) -> bool {
        split::is_root(object)
    }

    fn validate(root: &Self) -> Vec<Problem> {
        split::validate(root)
    }

    fn leaf(root: &Self, cluster: &Arc<Cluster>, _world: &()) -> Option<Self> {
        Some(split::leaf(root, &cluster.name_any()))
    }

    fn leaf_is_current(current: &Self, desired: &Self) -> bool {
        split::leaf_is_current(current, desired)
    }

    /// Services first, then Secrets, each sorted.
    fn dependencies(root: &Self, _world: &()) -> Vec<DepKey> {
        let ns = root.namespace().unwrap_or_default();
        let deps = split::dependencies(root);
        deps.services
            .into_iter()
            .map(|s| (DepKind::Service, ns.clone(), s))
            .chain(
                deps.secrets
                    .into_iter()
                    .map(|s| (DepKind::Secret, ns.clone(), s)),
            )
            .collect()
    }

    fn hosts(root: &Self, _world: &()) -> Vec<String> {
        split::hosts(root)
    }

    fn addresses(object: &Self) -> Vec<IngressLoadBalancerIngress> {
        object
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.clone())
            .unwrap_or_default()
    }

    fn global_address(address: &IngressLoadBalancerIngress) -> Option<LoadBalancerAddress> {
        status::lb_address(address)
    }

    /// The sorted, deduplicated union of the healthy leaves' entries.
    fn root_status(
        root: &Self,
        leaves: &[LeafView<Self>],
        _seen: &Lookups<'_, Self>,
    ) -> Option<serde_json::Value> {
        let views: Vec<ClusterView<IngressLoadBalancerIngress>> =
            leaves.iter().map(|l| l.view.clone()).collect();
        let merged = status::root_entries(&views);
        (Self::addresses(root) != merged).then(|| json!({"loadBalancer": {"ingress": merged}}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leaf_names_its_root_and_dependencies_come_services_first() {
        let root: Ingress = serde_json::from_value(json!({
            "metadata": {"name": "shop", "namespace": "apps", "uid": "u-1"},
            "spec": {
                "tls": [{"hosts": ["shop.example.test"], "secretName": "tls"}],
                "rules": [{"host": "shop.example.test", "http": {"paths": [
                    {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}
                ]}}]
            }
        }))
        .unwrap();
        let leaf = crate::controller::decide::test_leaf(&root, "east");
        assert!(Ingress::is_root(&root) && !Ingress::is_root(&leaf));
        assert_eq!(
            Ingress::dependencies(&root, &()),
            [
                (DepKind::Service, "apps".to_string(), "web".to_string()),
                (DepKind::Secret, "apps".to_string(), "tls".to_string()),
            ]
        );
        assert_eq!(Ingress::hosts(&root, &()), ["shop.example.test"]);
    }
}
