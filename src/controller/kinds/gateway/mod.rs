//! Gateway API roots (`gateway.networking.k8s.io/v1` Gateway, HTTPRoute,
//! GRPCRoute; and `v1alpha2` TLSRoute, TCPRoute, UDPRoute of the
//! experimental channel, where their CRDs are served: [`ServedRoutes`]) as
//! root kinds, on the pure core of [`crate::gateway`]:
//!
//! - a root Gateway is one of a GatewayClass whose `controllerName` is
//!   kcp-ingress's; it is placed by its placement annotation on the
//!   clusters that offer a class (the Cluster label
//!   `gateway.kcp-ingress.dev/class` names the leaf's `gatewayClassName`);
//!   its GlobalIngress is `<gateway>.gateway`, its hosts its attached,
//!   accepted routes' hostnames ∩ its listeners';
//! - a route is placed where its parent Gateways are; its leaves'
//!   parentRefs name the leaf Gateways; it has no GlobalIngress; a
//!   parentRef whose listeners take no route of its kind is reported
//!   `NotAllowedByListeners`.
//!
//! [`GatewayWorld`] is what these kinds read besides their own objects,
//! and [`watch`] keeps it, routing changes across kinds (a Gateway change
//! requeues its routes, a route change its Gateways, a GatewayClass change
//! its Gateways). [`class`] accepts kcp-ingress's GatewayClasses.

pub mod checks;
pub mod class;
pub mod root_gateway;
pub mod root_route;
pub mod watch;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::apis::Cluster;
use crate::controller::kind::RootKind;
use crate::gateway::route::{ParentRef, Route};
use crate::gateway::translate::GatewayPlacement;
use crate::gateway_api::gateway::Gateway;
use crate::gateway_api::gateway_class::GatewayClass;
use crate::gateway_api::grpc_route::GrpcRoute;
use crate::gateway_api::http_route::HttpRoute;
use crate::gateway_api::reference_grant::ReferenceGrant;
use crate::gateway_api::tcp_route::TcpRoute;
use crate::gateway_api::tls_route::TlsRoute;
use crate::gateway_api::udp_route::UdpRoute;
use crate::labels::gateway_api as gw;

/// Which route kinds of the experimental channel the control plane serves,
/// as discovery found them at start-up (CRDs installed later are not
/// noticed: restart the controller).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServedRoutes {
    pub tls: bool,
    pub tcp: bool,
    pub udp: bool,
}

impl ServedRoutes {
    /// Every route kind handled, standard ones first.
    pub fn kinds(&self) -> Vec<&'static str> {
        let mut out = vec![gw::HTTP_ROUTE, gw::GRPC_ROUTE];
        for (served, kind) in [
            (self.tls, gw::TLS_ROUTE),
            (self.tcp, gw::TCP_ROUTE),
            (self.udp, gw::UDP_ROUTE),
        ] {
            if served {
                out.push(kind);
            }
        }
        out
    }
}

/// The Gateway API objects the Gateway API root kinds read (all namespaces).
/// The stores of route kinds that are not served stay empty.
#[derive(Clone)]
pub struct GatewayWorld {
    pub gateways: Store<Gateway>,
    pub http_routes: Store<HttpRoute>,
    pub grpc_routes: Store<GrpcRoute>,
    pub tls_routes: Store<TlsRoute>,
    pub tcp_routes: Store<TcpRoute>,
    pub udp_routes: Store<UdpRoute>,
    pub grants: Store<ReferenceGrant>,
    pub classes: Store<GatewayClass>,
}

impl GatewayWorld {
    /// Whether the GatewayClass `name` is kcp-ingress's.
    pub fn class_is_ours(&self, name: &str) -> bool {
        self.classes
            .get(&ObjectRef::new(name))
            .is_some_and(|c| c.spec.controller_name == gw::CONTROLLER_NAME)
    }

    /// The Gateway at `(namespace, name)`.
    pub fn gateway(&self, (ns, name): &(String, String)) -> Option<Arc<Gateway>> {
        self.gateways.get(&ObjectRef::new(name).within(ns))
    }

    /// Whether `parent` (of a route in `namespace`) is kcp-ingress's to
    /// report on: a Gateway that is a root of ours, or no Gateway at all
    /// (a parentRef naming no Gateway is reported as `NoMatchingParent`).
    pub fn parent_is_ours(&self, parent: &ParentRef, namespace: &str) -> bool {
        let Some(key) = parent.gateway(namespace) else {
            return false;
        };
        self.gateway(&key).is_none_or(|g| {
            <Gateway as RootKind>::is_root(&g) && self.class_is_ours(&g.spec.gateway_class_name)
        })
    }

    /// Where the root Gateways that `route`'s parentRefs name are placed,
    /// among `clusters` (only those of ours, live, valid).
    pub fn placement_of_parents<R: Route>(
        &self,
        route: &R,
        clusters: &[Arc<Cluster>],
    ) -> GatewayPlacement {
        let ns = route.meta().namespace.clone().unwrap_or_default();
        let mut out: GatewayPlacement = BTreeMap::new();
        for key in route.parent_refs().iter().filter_map(|p| p.gateway(&ns)) {
            let Some(gateway) = self.gateway(&key) else {
                continue;
            };
            if !<Gateway as RootKind>::is_root(&gateway)
                || !<Gateway as RootKind>::is_ours(&gateway, self)
                || gateway.metadata.deletion_timestamp.is_some()
            {
                continue;
            }
            let Some(placement) =
                crate::controller::decide::targets_of(gateway.as_ref(), clusters, self)
            else {
                continue;
            };
            let targets: BTreeSet<String> = placement.targets.into_iter().collect();
            out.insert(key, targets);
        }
        out
    }

    /// The parentRefs of `route` to Gateways of ours whose selected
    /// listeners take no route of its kind (`NotAllowedByListeners`).
    pub fn refused_parents<R: Route>(&self, route: &R) -> Vec<ParentRef> {
        let ns = route.meta().namespace.clone().unwrap_or_default();
        route
            .parent_refs()
            .into_iter()
            .filter(|p| {
                p.gateway(&ns)
                    .and_then(|key| self.gateway(&key))
                    .is_some_and(|g| {
                        <Gateway as RootKind>::is_root(&g)
                            && self.class_is_ours(&g.spec.gateway_class_name)
                            && crate::gateway::attach::kind_refused(&g, p, R::KIND)
                    })
            })
            .collect()
    }

    /// The root routes (every kind) with a parentRef naming the Gateway
    /// `(namespace, name)`, as `(kind, namespace, name)`.
    pub fn routes_of(&self, key: &(String, String)) -> Vec<(&'static str, String, String)> {
        fn names<R: Route + kube::Resource<DynamicType = ()> + Clone>(
            store: &Store<R>,
            key: &(String, String),
        ) -> Vec<(&'static str, String, String)> {
            store
                .state()
                .iter()
                .filter(|r| {
                    let ns = Route::meta(r.as_ref())
                        .namespace
                        .clone()
                        .unwrap_or_default();
                    r.parent_refs()
                        .iter()
                        .any(|p| p.gateway(&ns).as_ref() == Some(key))
                })
                .map(|r| {
                    (
                        R::KIND,
                        Route::meta(r.as_ref())
                            .namespace
                            .clone()
                            .unwrap_or_default(),
                        Route::meta(r.as_ref()).name.clone().unwrap_or_default(),
                    )
                })
                .collect()
        }
        let mut out = names(&self.http_routes, key);
        out.extend(names(&self.grpc_routes, key));
        out.extend(names(&self.tls_routes, key));
        out.extend(names(&self.tcp_routes, key));
        out.extend(names(&self.udp_routes, key));
        out
    }

    /// The ReferenceGrants in `to_namespace` that let objects of
    /// `from_kind` in `from_namespace` refer to the core object of
    /// `to_kind` named `to_name` there (none needed in its own namespace).
    pub fn grants_for(
        &self,
        from_kind: &str,
        from_namespace: &str,
        to_kind: &str,
        to_namespace: &str,
        to_name: &str,
    ) -> Vec<String> {
        if from_namespace == to_namespace {
            return Vec::new();
        }
        let mut names: Vec<String> = self
            .grants
            .state()
            .iter()
            .filter(|g| g.namespace().as_deref() == Some(to_namespace))
            .filter(|g| grant_allows(g, from_kind, from_namespace, to_kind, to_name))
            .map(|g| g.name_any())
            .collect();
        names.sort();
        names
    }

    /// Whether a ReferenceGrant in `to_namespace` lets objects of
    /// `from_kind` (group `gateway.networking.k8s.io`) in `from_namespace`
    /// refer to the core object of `to_kind` named `to_name` there.
    pub fn granted(
        &self,
        from_kind: &str,
        from_namespace: &str,
        to_kind: &str,
        to_namespace: &str,
        to_name: &str,
    ) -> bool {
        from_namespace == to_namespace
            || !self
                .grants_for(from_kind, from_namespace, to_kind, to_namespace, to_name)
                .is_empty()
    }
}

/// Whether `grant` lets `from_kind` objects of `from_namespace` refer to
/// the core `to_kind` object `to_name` of its namespace.
fn grant_allows(
    grant: &ReferenceGrant,
    from_kind: &str,
    from_namespace: &str,
    to_kind: &str,
    to_name: &str,
) -> bool {
    grant
        .spec
        .from
        .iter()
        .any(|f| f.group == gw::GROUP && f.kind == from_kind && f.namespace == from_namespace)
        && grant.spec.to.iter().any(|t| {
            t.group.is_empty()
                && t.kind == to_kind
                && t.name.as_deref().is_none_or(|n| n == to_name)
        })
}
