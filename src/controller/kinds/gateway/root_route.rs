//! HTTPRoute and GRPCRoute, and where served TLSRoute, TCPRoute and
//! UDPRoute, as root kinds, through one generic
//! implementation over `gateway::route::Route`: a route is placed where
//! its parent Gateways (root Gateways of ours) are; its leaf for a cluster
//! is `gateway::translate::leaf_route` (parentRefs renamed to the leaf
//! Gateways placed there); its dependencies are its backend Services (any
//! namespace; another namespace's only with a ReferenceGrant); its status
//! is `gateway::merge::route_parents` with refused references and
//! parentRefs whose listeners take no route of its kind
//! (`NotAllowedByListeners`, [`GatewayWorld::refused_parents`]) reported;
//! it has no GlobalIngress (its hostnames are its Gateways').

use std::collections::BTreeSet;
use std::sync::Arc;

use kube::ResourceExt;

use super::GatewayWorld;
use super::checks;
use super::root_gateway::contains;
use crate::apis::{Cluster, LoadBalancerAddress};
use crate::controller::dependencies::{DepKey, DepKind};
use crate::controller::kind::{LeafView, Lookups, Problem, RootKind};
use crate::controller::naming;
use crate::controller::placement::Placement;
use crate::gateway::merge::{LeafRoute, route_parents};
use crate::gateway::route::{ParentRef, ParentStatus, Route};
use crate::gateway::translate::leaf_route;
use crate::gateway_api::grpc_route::GrpcRoute;
use crate::gateway_api::http_route::HttpRoute;
use crate::gateway_api::tcp_route::TcpRoute;
use crate::gateway_api::tls_route::TlsRoute;
use crate::gateway_api::udp_route::UdpRoute;
use crate::labels::{self, gateway_api as gw};

/// Whether `route` is a root (not a leaf, in a placeable namespace).
fn is_root<R: Route>(route: &R) -> bool {
    let meta = Route::meta(route);
    naming::is_placeable_namespace(meta.namespace.as_deref().unwrap_or_default())
        && !meta
            .labels
            .as_ref()
            .is_some_and(|l| l.contains_key(labels::ROOT_LABEL))
}

/// Its parentRefs kcp-ingress reports on (to Gateways of ours, or to none).
fn our_parents<R: Route>(route: &R, world: &GatewayWorld) -> Vec<ParentRef> {
    let ns = Route::meta(route).namespace.clone().unwrap_or_default();
    route
        .parent_refs()
        .into_iter()
        .filter(|p| world.parent_is_ours(p, &ns))
        .collect()
}

/// Its backend Services, then the ReferenceGrants that allow those of
/// other namespaces; each sorted, unique.
fn dependencies<R: Route>(route: &R, world: &GatewayWorld) -> Vec<DepKey> {
    let from = Route::meta(route).namespace.clone().unwrap_or_default();
    let services = services(route);
    let grants: BTreeSet<DepKey> = services
        .iter()
        .flat_map(|(_, ns, name)| {
            world
                .grants_for(R::KIND, &from, "Service", ns, name)
                .into_iter()
                .map(|g| (DepKind::ReferenceGrant, ns.clone(), g))
        })
        .collect();
    services.into_iter().chain(grants).collect()
}

/// Its backend Services, sorted, unique.
fn services<R: Route>(route: &R) -> Vec<DepKey> {
    let ns = Route::meta(route).namespace.clone().unwrap_or_default();
    let set: BTreeSet<DepKey> = route
        .backend_refs()
        .iter()
        .filter_map(|b| b.service(&ns))
        .map(|(ns, name)| (DepKind::Service, ns, name))
        .collect();
    set.into_iter().collect()
}

/// Its backend Services in other namespaces that no ReferenceGrant allows.
fn not_permitted<R: Route>(route: &R, world: &GatewayWorld) -> Vec<(String, String)> {
    let ns = Route::meta(route).namespace.clone().unwrap_or_default();
    services(route)
        .into_iter()
        .filter(|(_, to_ns, name)| !world.granted(R::KIND, &ns, "Service", to_ns, name))
        .map(|(_, to_ns, name)| (to_ns, name))
        .collect()
}

fn targets<R: Route>(
    route: &R,
    clusters: &[Arc<Cluster>],
    world: &GatewayWorld,
) -> Result<Placement, Problem> {
    let gateways = world.placement_of_parents(route, clusters);
    let targets: BTreeSet<String> = gateways.into_values().flatten().collect();
    Ok(Placement {
        targets: targets.into_iter().collect(),
        ..Placement::default()
    })
}

fn leaf<R: Route>(route: &R, cluster: &Arc<Cluster>, world: &GatewayWorld) -> Option<R> {
    let gateways = world.placement_of_parents(route, std::slice::from_ref(cluster));
    leaf_route(route, &cluster.name_any(), &gateways)
}

/// The merged `status.parents`, when it differs from the route's.
fn merged_parents<R>(
    route: &R,
    leaves: &[LeafView<R>],
    seen: &Lookups<'_, R>,
) -> Option<Vec<ParentStatus>>
where
    R: Route + RootKind<World = GatewayWorld>,
{
    let ns = Route::meta(route).namespace.clone().unwrap_or_default();
    let gateways = seen.world.placement_of_parents(route, seen.clusters);
    let leaf_parents: Vec<(String, Vec<ParentStatus>)> = leaves
        .iter()
        .map(|l| {
            let parents = l.leaf.as_deref().map(Route::parents).unwrap_or_default();
            (l.view.cluster.clone(), parents)
        })
        .collect();
    let leaf_routes: Vec<LeafRoute> = leaf_parents
        .iter()
        .map(|(cluster, parents)| LeafRoute { cluster, parents })
        .collect();
    let existing = route.parents();
    let generation = Route::meta(route).generation;
    let mut parents = route_parents(
        &ns,
        &our_parents(route, seen.world),
        &gateways,
        &leaf_routes,
        &existing,
        generation,
        seen.now,
    );
    checks::overlay_route(
        &mut parents,
        &not_permitted(route, seen.world),
        &existing,
        generation,
        seen.now,
    );
    checks::overlay_not_allowed(
        &mut parents,
        &seen.world.refused_parents(route),
        R::KIND,
        &existing,
        generation,
        seen.now,
    );
    (parents != existing).then_some(parents)
}

fn problems<R>(route: &R, seen: &Lookups<'_, R>) -> Vec<Problem>
where
    R: Route + RootKind<World = GatewayWorld>,
{
    let ns = Route::meta(route).namespace.clone().unwrap_or_default();
    let gateways = seen.world.placement_of_parents(route, seen.clusters);
    let mut out: Vec<Problem> = our_parents(route, seen.world)
        .iter()
        .filter_map(|p| p.gateway(&ns))
        .filter(|key| gateways.get(key).is_none_or(BTreeSet::is_empty))
        .map(|(gw_ns, name)| Problem {
            reason: gw::NO_MATCHING_PARENT,
            message: format!("parentRef: no Gateway {gw_ns}/{name} is placed on any cluster"),
        })
        .collect();
    for p in seen.world.refused_parents(route) {
        let (gw_ns, name) = p.gateway(&ns).unwrap_or_default();
        let through = p
            .section_name
            .as_ref()
            .map(|s| format!(" (sectionName {s})"))
            .unwrap_or_default();
        out.push(Problem {
            reason: gw::NOT_ALLOWED_BY_LISTENERS,
            message: format!(
                "parentRef: no listener of Gateway {gw_ns}/{name}{through} takes a {}",
                R::KIND
            ),
        });
    }
    let refused = not_permitted(route, seen.world);
    if !refused.is_empty() {
        let names: Vec<String> = refused
            .iter()
            .map(|(ns, n)| format!("Service {ns}/{n}"))
            .collect();
        out.push(Problem {
            reason: gw::REF_NOT_PERMITTED,
            message: format!(
                "backendRefs {} are in another namespace and no ReferenceGrant allows them",
                names.join(", ")
            ),
        });
    }
    out
}

/// [`RootKind`] for a generated route kind, through the functions above.
macro_rules! route_kind {
    ($route:ty) => {
        impl RootKind for $route {
            type Address = LoadBalancerAddress;
            type World = GatewayWorld;
            type Stored = Self;

            fn is_root(object: &Self) -> bool {
                is_root(object)
            }

            /// A route is ours when one of its parents is.
            fn is_ours(root: &Self, world: &GatewayWorld) -> bool {
                !our_parents(root, world).is_empty()
            }

            fn validate(_root: &Self) -> Vec<Problem> {
                Vec::new()
            }

            fn targets(
                root: &Self,
                clusters: &[Arc<Cluster>],
                world: &GatewayWorld,
            ) -> Result<Placement, Problem> {
                targets(root, clusters, world)
            }

            fn leaf(root: &Self, cluster: &Arc<Cluster>, world: &GatewayWorld) -> Option<Self> {
                leaf(root, cluster, world)
            }

            fn leaf_is_current(current: &Self, desired: &Self) -> bool {
                current.spec == desired.spec
                    && contains(&current.metadata.labels, &desired.metadata.labels)
                    && contains(&current.metadata.annotations, &desired.metadata.annotations)
            }

            fn dependencies(root: &Self, world: &GatewayWorld) -> Vec<DepKey> {
                dependencies(root, world)
            }

            fn permits(root: &Self, (kind, ns, name): &DepKey, world: &GatewayWorld) -> bool {
                let from = root.namespace().unwrap_or_default();
                *kind == DepKind::ReferenceGrant
                    || world.granted(<$route as Route>::KIND, &from, "Service", ns, name)
            }

            fn global_name(_root: &str) -> Option<String> {
                None
            }

            fn hosts(_root: &Self, _world: &GatewayWorld) -> Vec<String> {
                Vec::new()
            }

            /// A route has no addresses of its own.
            fn addresses(_object: &Self) -> Vec<LoadBalancerAddress> {
                Vec::new()
            }

            fn global_address(address: &LoadBalancerAddress) -> Option<LoadBalancerAddress> {
                Some(address.clone())
            }

            /// A route's cluster reports its parents' verdicts.
            fn has_reported(leaf: &Self) -> bool {
                !Route::parents(leaf).is_empty()
            }

            fn root_status(
                root: &Self,
                leaves: &[LeafView<Self>],
                seen: &Lookups<'_, Self>,
            ) -> Option<serde_json::Value> {
                let parents = merged_parents(root, leaves, seen)?;
                let mut merged = root.clone();
                merged.set_parents(parents);
                serde_json::to_value(&merged.status).ok()
            }

            fn problems(root: &Self, seen: &Lookups<'_, Self>) -> Vec<Problem> {
                problems(root, seen)
            }
        }
    };
}

route_kind!(HttpRoute);
route_kind!(GrpcRoute);
route_kind!(TlsRoute);
route_kind!(TcpRoute);
route_kind!(UdpRoute);

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::apis::ClusterSpec;
    use crate::controller::kinds::gateway::watch::stores_from;
    use crate::gateway_api::gateway::Gateway;
    use crate::gateway_api::gateway_class::GatewayClass;

    fn cluster(name: &str, class: Option<&str>) -> Arc<Cluster> {
        let mut c = Cluster::new(name, ClusterSpec::default());
        c.metadata.labels = class.map(|k| [(gw::CLASS_LABEL.to_string(), k.to_string())].into());
        Arc::new(c)
    }

    fn world() -> GatewayWorld {
        let gateway = |name: &str, class: &str| -> Gateway {
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "shop"},
                "spec": {"gatewayClassName": class, "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}
            }))
            .unwrap()
        };
        let class = |name: &str, controller: &str| -> GatewayClass {
            serde_json::from_value(
                json!({"metadata": {"name": name}, "spec": {"controllerName": controller}}),
            )
            .unwrap()
        };
        stores_from(
            vec![gateway("gw", "global"), gateway("theirs", "nginx")],
            Vec::new(),
            vec![
                class("global", gw::CONTROLLER_NAME),
                class("nginx", "example.com/nginx"),
            ],
        )
    }

    fn route(parents: serde_json::Value, backend_ns: Option<&str>) -> HttpRoute {
        serde_json::from_value(json!({
            "metadata": {"name": "r", "namespace": "shop"},
            "spec": {"parentRefs": parents, "rules": [{"backendRefs": [{"name": "web", "namespace": backend_ns, "port": 80}]}]}
        }))
        .unwrap()
    }

    #[test]
    fn a_route_goes_where_its_gateways_of_ours_offer_a_class() {
        let world = world();
        let clusters = [cluster("east", Some("standin")), cluster("west", None)];
        let r = route(json!([{"name": "gw"}, {"name": "theirs"}]), None);
        assert!(<HttpRoute as RootKind>::is_ours(&r, &world));
        let placed = targets(&r, &clusters, &world).unwrap();
        assert_eq!(placed.targets, ["east"]);
        let leaf = leaf(&r, &clusters[0], &world).unwrap();
        let names: Vec<String> = leaf.parent_refs().into_iter().map(|p| p.name).collect();
        assert_eq!(names, ["gw--east"]);
        assert!(super::leaf(&r, &clusters[1], &world).is_none());
        // Only another implementation's Gateway: not ours.
        let theirs = route(json!([{"name": "theirs"}]), None);
        assert!(!<HttpRoute as RootKind>::is_ours(&theirs, &world));
        // A parentRef to no Gateway is ours to report.
        let lost = route(json!([{"name": "missing"}]), None);
        assert!(<HttpRoute as RootKind>::is_ours(&lost, &world));
        assert!(
            targets(&lost, &clusters, &world)
                .unwrap()
                .targets
                .is_empty()
        );
    }

    #[test]
    fn a_backend_in_another_namespace_needs_a_grant() {
        let world = world();
        let here = route(json!([{"name": "gw"}]), None);
        assert_eq!(
            <HttpRoute as RootKind>::dependencies(&here, &world),
            [(DepKind::Service, "shop".to_string(), "web".to_string())]
        );
        assert!(not_permitted(&here, &world).is_empty());
        let there = route(json!([{"name": "gw"}]), Some("other"));
        assert_eq!(
            not_permitted(&there, &world),
            [("other".to_string(), "web".to_string())]
        );
        let dep = (DepKind::Service, "other".to_string(), "web".to_string());
        assert!(!<HttpRoute as RootKind>::permits(&there, &dep, &world));
    }

    #[test]
    fn a_tls_route_on_an_http_listener_is_refused_and_placed_alike() {
        let world = world();
        let clusters = [cluster("east", Some("standin"))];
        let tls: TlsRoute = serde_json::from_value(json!({
            "metadata": {"name": "t", "namespace": "shop"},
            "spec": {"parentRefs": [{"name": "gw"}, {"name": "theirs"}],
                     "hostnames": ["db.example.com"],
                     "rules": [{"backendRefs": [{"name": "db", "port": 5432}]}]}
        }))
        .unwrap();
        // gw has only an HTTP listener: no TLSRoute there. "theirs" is
        // another implementation's, not ours to judge.
        let refused: Vec<String> = world
            .refused_parents(&tls)
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(refused, ["gw"]);
        let http = route(json!([{"name": "gw"}]), None);
        assert!(world.refused_parents(&http).is_empty());
        // It is still ours, placed with its Gateway, its backend followed.
        assert!(<TlsRoute as RootKind>::is_ours(&tls, &world));
        assert_eq!(targets(&tls, &clusters, &world).unwrap().targets, ["east"]);
        assert_eq!(
            <TlsRoute as RootKind>::dependencies(&tls, &world),
            [(DepKind::Service, "shop".to_string(), "db".to_string())]
        );
        let tcp: TcpRoute = serde_json::from_value(json!({
            "metadata": {"name": "t", "namespace": "shop"},
            "spec": {"parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": [{"name": "db", "port": 5432}]}]}
        }))
        .unwrap();
        assert!(tcp.hostnames().is_empty());
        assert_eq!(world.refused_parents(&tcp).len(), 1);
    }
}
