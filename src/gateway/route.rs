//! What the route kinds (HTTPRoute, GRPCRoute; TLSRoute, TCPRoute and
//! UDPRoute of the experimental channel) have in common (pure): hostnames,
//! parentRefs, backendRefs and `status.parents`, in one form. The generated types give
//! every CRD its own structs; the conversions here are the only place that
//! knows them.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::core::ObjectMeta;

use crate::gateway_api::grpc_route::{
    GrpcRoute, GrpcRouteParentRefs, GrpcRouteSpec, GrpcRouteStatus, GrpcRouteStatusParents,
    GrpcRouteStatusParentsParentRef,
};
use crate::gateway_api::http_route::{
    HttpRoute, HttpRouteParentRefs, HttpRouteSpec, HttpRouteStatus, HttpRouteStatusParents,
    HttpRouteStatusParentsParentRef,
};
use crate::gateway_api::tcp_route::{
    TcpRoute, TcpRouteParentRefs, TcpRouteSpec, TcpRouteStatus, TcpRouteStatusParents,
    TcpRouteStatusParentsParentRef,
};
use crate::gateway_api::tls_route::{
    TlsRoute, TlsRouteParentRefs, TlsRouteSpec, TlsRouteStatus, TlsRouteStatusParents,
    TlsRouteStatusParentsParentRef,
};
use crate::gateway_api::udp_route::{
    UdpRoute, UdpRouteParentRefs, UdpRouteSpec, UdpRouteStatus, UdpRouteStatusParents,
    UdpRouteStatusParentsParentRef,
};
use crate::labels::gateway_api as gw;

/// A route's reference to a parent, as the spec writes it (`group` and
/// `kind` as given: `None` means the defaults, a Gateway).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct ParentRef {
    pub group: Option<String>,
    pub kind: Option<String>,
    pub namespace: Option<String>,
    pub name: String,
    pub section_name: Option<String>,
    pub port: Option<i32>,
}

impl ParentRef {
    /// The `(namespace, name)` of the Gateway this refers to, for a route in
    /// `route_namespace`; `None` when it refers to something else (a
    /// Service, for a mesh).
    pub fn gateway(&self, route_namespace: &str) -> Option<(String, String)> {
        let group = self.group.as_deref().unwrap_or(gw::GROUP);
        let kind = self.kind.as_deref().unwrap_or(gw::GATEWAY);
        (group == gw::GROUP && kind == gw::GATEWAY).then(|| {
            (
                self.namespace
                    .clone()
                    .unwrap_or_else(|| route_namespace.to_string()),
                self.name.clone(),
            )
        })
    }
}

/// A route rule's reference to a backend (`group` and `kind` as given:
/// `None` and `""`/`Service` mean a core Service).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct BackendRef {
    pub group: Option<String>,
    pub kind: Option<String>,
    pub namespace: Option<String>,
    pub name: String,
}

impl BackendRef {
    /// The `(namespace, name)` of the Service this refers to, for a route
    /// in `route_namespace`; `None` when it refers to something else.
    pub fn service(&self, route_namespace: &str) -> Option<(String, String)> {
        let group = self.group.as_deref().unwrap_or("");
        let kind = self.kind.as_deref().unwrap_or("Service");
        (group.is_empty() && kind == "Service").then(|| {
            (
                self.namespace
                    .clone()
                    .unwrap_or_else(|| route_namespace.to_string()),
                self.name.clone(),
            )
        })
    }
}

/// One entry of a route's `status.parents`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParentStatus {
    pub parent_ref: ParentRef,
    pub controller_name: String,
    pub conditions: Vec<Condition>,
}

/// A Gateway API route kind.
pub trait Route: Clone {
    /// Its `kind`.
    const KIND: &'static str;
    fn meta(&self) -> &ObjectMeta;
    fn meta_mut(&mut self) -> &mut ObjectMeta;
    /// `spec.hostnames` (empty when unset).
    fn hostnames(&self) -> Vec<String>;
    /// `spec.parentRefs`, in order.
    fn parent_refs(&self) -> Vec<ParentRef>;
    /// The backendRefs of every rule, in order.
    fn backend_refs(&self) -> Vec<BackendRef>;
    fn set_parent_refs(&mut self, refs: Vec<ParentRef>);
    /// `status.parents`, in order.
    fn parents(&self) -> Vec<ParentStatus>;
    fn set_parents(&mut self, parents: Vec<ParentStatus>);
    /// Drops the status.
    fn clear_status(&mut self);
}

/// Conversions between [`ParentRef`] and a generated parentRef struct
/// (every one has the same six fields).
macro_rules! parent_ref_conversions {
    ($($generated:ty),*) => {$(
        impl From<&$generated> for ParentRef {
            fn from(r: &$generated) -> Self {
                ParentRef {
                    group: r.group.clone(),
                    kind: r.kind.clone(),
                    namespace: r.namespace.clone(),
                    name: r.name.clone(),
                    section_name: r.section_name.clone(),
                    port: r.port,
                }
            }
        }

        impl From<&ParentRef> for $generated {
            fn from(r: &ParentRef) -> Self {
                Self {
                    group: r.group.clone(),
                    kind: r.kind.clone(),
                    namespace: r.namespace.clone(),
                    name: r.name.clone(),
                    section_name: r.section_name.clone(),
                    port: r.port,
                }
            }
        }
    )*};
}

parent_ref_conversions!(
    HttpRouteParentRefs,
    HttpRouteStatusParentsParentRef,
    GrpcRouteParentRefs,
    GrpcRouteStatusParentsParentRef,
    TlsRouteParentRefs,
    TlsRouteStatusParentsParentRef,
    TcpRouteParentRefs,
    TcpRouteStatusParentsParentRef,
    UdpRouteParentRefs,
    UdpRouteStatusParentsParentRef
);

/// A generated backendRef (every one has these four fields) in the common
/// form.
macro_rules! backend_ref {
    ($b:expr) => {
        BackendRef {
            group: $b.group.clone(),
            kind: $b.kind.clone(),
            namespace: $b.namespace.clone(),
            name: $b.name.clone(),
        }
    };
}

/// [`Route`] for a generated route kind; `$hostnames` and `$backends`
/// read them from its spec (the kinds differ in which are optional, and
/// TCPRoute and UDPRoute have no hostnames).
macro_rules! route_impl {
    ($route:ty, $kind:expr, $status:ident, $parents:ident, $parent_ref:ident,
     hostnames: $hostnames:expr, backends: $backends:expr) => {
        impl Route for $route {
            const KIND: &'static str = $kind;

            fn meta(&self) -> &ObjectMeta {
                &self.metadata
            }

            fn meta_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }

            fn hostnames(&self) -> Vec<String> {
                ($hostnames)(&self.spec)
            }

            fn parent_refs(&self) -> Vec<ParentRef> {
                self.spec
                    .parent_refs
                    .iter()
                    .flatten()
                    .map(ParentRef::from)
                    .collect()
            }

            fn backend_refs(&self) -> Vec<BackendRef> {
                ($backends)(&self.spec)
            }

            fn set_parent_refs(&mut self, refs: Vec<ParentRef>) {
                self.spec.parent_refs = Some(refs.iter().map(Into::into).collect());
            }

            fn parents(&self) -> Vec<ParentStatus> {
                self.status
                    .iter()
                    .flat_map(|s| &s.parents)
                    .map(|p| ParentStatus {
                        parent_ref: ParentRef::from(&p.parent_ref),
                        controller_name: p.controller_name.clone(),
                        conditions: p.conditions.clone(),
                    })
                    .collect()
            }

            fn set_parents(&mut self, parents: Vec<ParentStatus>) {
                self.status = Some($status {
                    parents: parents
                        .iter()
                        .map(|p| $parents {
                            parent_ref: $parent_ref::from(&p.parent_ref),
                            controller_name: p.controller_name.clone(),
                            conditions: p.conditions.clone(),
                        })
                        .collect(),
                });
            }

            fn clear_status(&mut self) {
                self.status = None;
            }
        }
    };
}

route_impl!(
    HttpRoute,
    gw::HTTP_ROUTE,
    HttpRouteStatus,
    HttpRouteStatusParents,
    HttpRouteStatusParentsParentRef,
    hostnames: |s: &HttpRouteSpec| s.hostnames.clone().unwrap_or_default(),
    backends: |s: &HttpRouteSpec| s
        .rules
        .iter()
        .flatten()
        .flat_map(|r| r.backend_refs.iter().flatten())
        .map(|b| backend_ref!(b))
        .collect()
);
route_impl!(
    GrpcRoute,
    gw::GRPC_ROUTE,
    GrpcRouteStatus,
    GrpcRouteStatusParents,
    GrpcRouteStatusParentsParentRef,
    hostnames: |s: &GrpcRouteSpec| s.hostnames.clone().unwrap_or_default(),
    backends: |s: &GrpcRouteSpec| s
        .rules
        .iter()
        .flatten()
        .flat_map(|r| r.backend_refs.iter().flatten())
        .map(|b| backend_ref!(b))
        .collect()
);
route_impl!(
    TlsRoute,
    gw::TLS_ROUTE,
    TlsRouteStatus,
    TlsRouteStatusParents,
    TlsRouteStatusParentsParentRef,
    hostnames: |s: &TlsRouteSpec| s.hostnames.clone().unwrap_or_default(),
    backends: |s: &TlsRouteSpec| s
        .rules
        .iter()
        .flat_map(|r| &r.backend_refs)
        .map(|b| backend_ref!(b))
        .collect()
);
route_impl!(
    TcpRoute,
    gw::TCP_ROUTE,
    TcpRouteStatus,
    TcpRouteStatusParents,
    TcpRouteStatusParentsParentRef,
    hostnames: |_: &TcpRouteSpec| Vec::new(),
    backends: |s: &TcpRouteSpec| s
        .rules
        .iter()
        .flat_map(|r| &r.backend_refs)
        .map(|b| backend_ref!(b))
        .collect()
);
route_impl!(
    UdpRoute,
    gw::UDP_ROUTE,
    UdpRouteStatus,
    UdpRouteStatusParents,
    UdpRouteStatusParentsParentRef,
    hostnames: |_: &UdpRouteSpec| Vec::new(),
    backends: |s: &UdpRouteSpec| s
        .rules
        .iter()
        .flat_map(|r| &r.backend_refs)
        .map(|b| backend_ref!(b))
        .collect()
);

#[cfg(test)]
mod tests {
    use super::*;

    fn parent(group: Option<&str>, kind: Option<&str>, ns: Option<&str>) -> ParentRef {
        ParentRef {
            group: group.map(Into::into),
            kind: kind.map(Into::into),
            namespace: ns.map(Into::into),
            name: "gw".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_parent_is_a_gateway_by_default_and_in_the_routes_namespace() {
        let here = Some(("shop".to_string(), "gw".to_string()));
        assert_eq!(parent(None, None, None).gateway("shop"), here);
        assert_eq!(
            parent(Some(gw::GROUP), Some("Gateway"), None).gateway("shop"),
            here
        );
        assert_eq!(
            parent(None, None, Some("infra")).gateway("shop"),
            Some(("infra".to_string(), "gw".to_string()))
        );
        assert_eq!(
            parent(Some(""), Some("Service"), None).gateway("shop"),
            None
        );
        assert_eq!(
            parent(Some("example.com"), None, None).gateway("shop"),
            None
        );
    }

    #[test]
    fn routes_round_trip_parents_through_the_common_form() {
        let mut route: HttpRoute = serde_json::from_value(serde_json::json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "r", "namespace": "shop"},
            "spec": {
                "hostnames": ["a.example.com"],
                "parentRefs": [{"name": "gw", "sectionName": "web", "port": 80}]
            }
        }))
        .unwrap();
        let refs = route.parent_refs();
        assert_eq!(refs.len(), 1);
        assert_eq!(refs[0].section_name.as_deref(), Some("web"));
        assert_eq!(refs[0].port, Some(80));
        assert_eq!(route.hostnames(), ["a.example.com"]);
        route.set_parents(vec![ParentStatus {
            parent_ref: refs[0].clone(),
            controller_name: gw::CONTROLLER_NAME.into(),
            conditions: vec![],
        }]);
        assert_eq!(route.parents()[0].parent_ref, refs[0]);
        let json = serde_json::to_value(&route).unwrap();
        assert_eq!(
            json["status"]["parents"][0]["parentRef"]["sectionName"],
            "web"
        );

        let mut grpc = GrpcRoute::new("g", Default::default());
        grpc.set_parent_refs(refs.clone());
        assert_eq!(grpc.parent_refs(), refs);
        assert_eq!(<GrpcRoute as Route>::KIND, "GRPCRoute");
    }
}
