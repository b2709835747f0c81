//! What `explain` judges differently per root kind (pure): how a leaf
//! shows that its cluster serves it (an Ingress: an address; a Gateway:
//! Programmed and an address; a route: its parents Accepted and its
//! references resolved), where a root's names are published (a route's:
//! through its parent Gateways' GlobalIngresses), and, for routes, the
//! hops that read their parents instead of a selector and an address.

use super::common::{addresses_of, condition_text, find};
use super::control_plane;
use super::route;
use crate::apis::GlobalIngress;
use crate::controller::decide::Plan;
use crate::controller::kind::RootKind;
use crate::controller::kinds::gateway::GatewayWorld;
use crate::explain::facts::{Facts, Published};
use crate::explain::report::Hop;
use crate::gateway_api::gateway::Gateway;
use crate::gateway_api::grpc_route::GrpcRoute;
use crate::gateway_api::http_route::HttpRoute;
use crate::labels::gateway_api as gw;
use k8s_openapi::api::networking::v1::Ingress;

/// A root kind as `explain` judges it; the defaults are an Ingress's.
pub trait Explained: RootKind {
    /// How the leaf shows that its cluster serves it: `Ok` what it shows,
    /// `Err` why not (the default: the addresses its load balancer gave).
    fn leaf_report(leaf: &Self) -> Result<String, String> {
        let addresses = addresses_of::<Self>(&Self::addresses(leaf));
        if addresses.is_empty() {
            Err("its load balancer gave the leaf no address (yet)".to_string())
        } else {
            Ok(format!("address {}", addresses.join(", ")))
        }
    }

    /// The Gateways whose GlobalIngresses publish the root's names besides
    /// its own (a route's parent Gateways of ours, that exist).
    fn parent_gateways(_root: &Self, _world: &Self::World) -> Vec<(String, String)> {
        Vec::new()
    }

    /// The names the root publishes, sorted, each with its GlobalIngress
    /// (the default: [`RootKind::hosts`] in the root's own GlobalIngress).
    fn published(root: &Self, facts: &Facts<Self>) -> Vec<Published> {
        let Some(global) = Self::global_name(&facts.name) else {
            return Vec::new();
        };
        Self::hosts(root, &facts.world)
            .into_iter()
            .map(|host| Published {
                host,
                global: (facts.namespace.clone(), global.clone()),
            })
            .collect()
    }

    /// The `placement` hop (the default: the placement annotation).
    fn placement_hop(root: &Self, facts: &Facts<Self>, _plan: &Plan<Self>) -> Hop {
        control_plane::placement_hop(root, facts)
    }

    /// The `root-status` hop (the default: the merged addresses).
    fn root_status_hop(root: &Self, plan: &Plan<Self>) -> Hop {
        control_plane::root_status_hop(root, &Self::kind(&()), plan)
    }

    /// The `global-ingress` hop (the default: the root's own GlobalIngress).
    fn global_hop(root: &Self, facts: &Facts<Self>) -> Hop {
        control_plane::global_hop(root, facts)
    }
}

/// The GlobalIngress `(namespace, name)` among those `facts` read.
pub(super) fn global_of<'a, K: Explained>(
    facts: &'a Facts<K>,
    (ns, name): &(String, String),
) -> Option<&'a GlobalIngress> {
    if *ns == facts.namespace && K::global_name(&facts.name).as_ref() == Some(name) {
        return facts.global.as_ref();
    }
    facts
        .parents
        .iter()
        .find(|p| p.gateway.0 == *ns && p.global_name == *name)
        .and_then(|p| p.global.as_ref())
}

/// The GlobalIngresses that publish the root's names, as `(namespace, name)`.
pub(super) fn globals<K: Explained>(facts: &Facts<K>) -> Vec<(String, String)> {
    if !facts.parents.is_empty() {
        return facts
            .parents
            .iter()
            .map(|p| (p.gateway.0.clone(), p.global_name.clone()))
            .collect();
    }
    K::global_name(&facts.name)
        .map(|g| vec![(facts.namespace.clone(), g)])
        .unwrap_or_default()
}

impl Explained for Ingress {}

impl Explained for Gateway {
    /// Programmed (as the cluster's implementation reports it), with an address.
    fn leaf_report(leaf: &Self) -> Result<String, String> {
        let conditions = leaf
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        match find(&conditions, gw::PROGRAMMED) {
            None => {
                return Err(
                    "the leaf Gateway is not Programmed: the implementation reported no \
                     Programmed condition (yet)"
                        .to_string(),
                );
            }
            Some(c) if c.status != "True" => {
                return Err(format!(
                    "the leaf Gateway is not Programmed: {}",
                    condition_text(c)
                ));
            }
            Some(_) => {}
        }
        let addresses = addresses_of::<Self>(&Self::addresses(leaf));
        if addresses.is_empty() {
            Err("the leaf Gateway is Programmed but has no address".to_string())
        } else {
            Ok(format!("Programmed; address {}", addresses.join(", ")))
        }
    }
}

/// [`Explained`] for a route kind, through [`route`].
macro_rules! explained_route {
    ($route:ty) => {
        impl Explained for $route {
            fn leaf_report(leaf: &Self) -> Result<String, String> {
                route::leaf_report(leaf)
            }

            fn parent_gateways(root: &Self, world: &GatewayWorld) -> Vec<(String, String)> {
                route::parent_gateways(root, world)
            }

            fn published(root: &Self, facts: &Facts<Self>) -> Vec<Published> {
                route::published(root, facts)
            }

            fn placement_hop(root: &Self, facts: &Facts<Self>, plan: &Plan<Self>) -> Hop {
                route::placement_hop(root, facts, plan)
            }

            fn root_status_hop(root: &Self, plan: &Plan<Self>) -> Hop {
                route::root_status_hop(root, plan)
            }

            fn global_hop(root: &Self, facts: &Facts<Self>) -> Hop {
                route::global_hop(root, facts)
            }
        }
    };
}

explained_route!(HttpRoute);
explained_route!(GrpcRoute);
