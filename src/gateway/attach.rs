//! Which listeners of a Gateway a route attaches to, and the DNS names it
//! then serves (pure), as the Gateway API specifies attachment:
//!
//! - a parentRef's `sectionName` and `port`, when set, select the
//!   listeners of that name and port; none selected: `NoMatchingParent`;
//! - a listener admits the route's kind when its protocol is compatible
//!   (HTTP and HTTPS take HTTPRoute and GRPCRoute, TLS takes TLSRoute, TCP
//!   TCPRoute, UDP UDPRoute; an HTTPS listener terminates TLS, so it takes
//!   no TLSRoute, passthrough being the TLS protocol's) and
//!   `allowedRoutes.kinds`, when set, lists it (a listed kind the protocol
//!   cannot carry is what the spec calls `InvalidRouteKinds`: it admits
//!   nothing); and the route's
//!   namespace (`allowedRoutes.namespaces.from`: `Same`, the default, `All`,
//!   or `Selector` over the route namespace's labels); none admits it:
//!   `NotAllowedByListeners`;
//! - the route's hostnames must intersect the listener's (see
//!   [`super::hostnames`]); none does: `NoMatchingListenerHostname`.
//!
//! A route attached through at least one listener is attached to the
//! Gateway; the names it serves there are the union over those listeners.

use std::collections::{BTreeMap, BTreeSet};

use crate::gateway::hostnames::{self, Served};
use crate::gateway::route::ParentRef;
use crate::gateway_api::gateway::{
    Gateway, GatewayListeners, GatewayListenersAllowedRoutesNamespacesFrom as From,
    GatewayListenersAllowedRoutesNamespacesSelector as Selector,
};
use crate::labels::gateway_api as gw;

/// Why a route does not attach to a Gateway through a parentRef: the
/// `Accepted=False` reasons of the spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotAttached {
    NoMatchingParent,
    NotAllowedByListeners,
    NoMatchingListenerHostname,
}

impl NotAttached {
    /// The condition reason.
    pub fn reason(self) -> &'static str {
        match self {
            NotAttached::NoMatchingParent => gw::NO_MATCHING_PARENT,
            NotAttached::NotAllowedByListeners => gw::NOT_ALLOWED_BY_LISTENERS,
            NotAttached::NoMatchingListenerHostname => "NoMatchingListenerHostname",
        }
    }
}

/// The route, as attachment sees it.
#[derive(Debug, Clone, Copy)]
pub struct RouteView<'a> {
    /// `HTTPRoute`, `GRPCRoute`.
    pub kind: &'a str,
    pub namespace: &'a str,
    /// The labels of the route's namespace (for `from: Selector`).
    pub namespace_labels: &'a BTreeMap<String, String>,
    pub hostnames: &'a [String],
}

/// The listeners of `gateway` (in `gateway_namespace`) that `route`
/// attaches to through `parent`, each with the hostnames it serves there.
pub fn attach(
    gateway: &Gateway,
    gateway_namespace: &str,
    parent: &ParentRef,
    route: &RouteView,
) -> Result<Vec<(String, Served)>, NotAttached> {
    let selected: Vec<&GatewayListeners> = gateway
        .spec
        .listeners
        .iter()
        .filter(|l| parent.section_name.as_ref().is_none_or(|s| *s == l.name))
        .filter(|l| parent.port.is_none_or(|p| p == l.port))
        .collect();
    if selected.is_empty() {
        return Err(NotAttached::NoMatchingParent);
    }
    let allowed: Vec<&GatewayListeners> = selected
        .into_iter()
        .filter(|l| admits_kind(l, route.kind) && admits_namespace(l, gateway_namespace, route))
        .collect();
    if allowed.is_empty() {
        return Err(NotAttached::NotAllowedByListeners);
    }
    let served: Vec<(String, Served)> = allowed
        .into_iter()
        .filter_map(|l| {
            let hostname = uses_hostname(&l.protocol)
                .then_some(l.hostname.as_deref())
                .flatten();
            hostnames::served(route.hostnames, hostname).map(|s| (l.name.clone(), s))
        })
        .collect();
    if served.is_empty() {
        return Err(NotAttached::NoMatchingListenerHostname);
    }
    Ok(served)
}

/// Whether the listeners `parent` selects on `gateway` exist but none can
/// take a route of `kind` (its protocol, or `allowedRoutes.kinds`): the
/// route is `NotAllowedByListeners` there whatever its namespace and
/// hostnames. What a control plane can tell without the namespaces' labels.
pub fn kind_refused(gateway: &Gateway, parent: &ParentRef, kind: &str) -> bool {
    let mut selected = gateway
        .spec
        .listeners
        .iter()
        .filter(|l| parent.section_name.as_ref().is_none_or(|s| *s == l.name))
        .filter(|l| parent.port.is_none_or(|p| p == l.port))
        .peekable();
    selected.peek().is_some() && selected.all(|l| !admits_kind(l, kind))
}

/// The DNS names to publish for `route` on `gateway`: the names it serves
/// through every listener it attaches to by any of `parents` that refers
/// to this Gateway (sorted, unique). Listeners that serve any host
/// contribute no name.
pub fn dns_names(
    gateway: &Gateway,
    gateway_namespace: &str,
    gateway_name: &str,
    parents: &[ParentRef],
    route: &RouteView,
) -> BTreeSet<String> {
    parents
        .iter()
        .filter(|p| {
            p.gateway(route.namespace)
                .as_ref()
                .is_some_and(|(ns, name)| ns == gateway_namespace && name == gateway_name)
        })
        .filter_map(|p| attach(gateway, gateway_namespace, p, route).ok())
        .flatten()
        .flat_map(|(_, served)| match served {
            Served::Any => BTreeSet::new(),
            Served::Names(names) => names,
        })
        .collect()
}

/// Whether a listener of `protocol` matches on hostnames (TCP and UDP
/// listeners have none; TCPRoute and UDPRoute have none either, so they
/// attach as a route "for any host" and add no DNS name).
fn uses_hostname(protocol: &str) -> bool {
    matches!(protocol, "HTTP" | "HTTPS" | "TLS")
}

/// The route kinds a listener of `protocol` can carry (and takes when
/// `allowedRoutes.kinds` is unset).
pub fn compatible_kinds(protocol: &str) -> &'static [&'static str] {
    match protocol {
        "HTTP" | "HTTPS" => &[gw::HTTP_ROUTE, gw::GRPC_ROUTE],
        "TLS" => &[gw::TLS_ROUTE],
        "TCP" => &[gw::TCP_ROUTE],
        "UDP" => &[gw::UDP_ROUTE],
        _ => &[],
    }
}

fn admits_kind(listener: &GatewayListeners, kind: &str) -> bool {
    compatible_kinds(&listener.protocol).contains(&kind)
        && listener
            .allowed_routes
            .as_ref()
            .and_then(|a| a.kinds.as_ref())
            .filter(|k| !k.is_empty())
            .is_none_or(|kinds| {
                kinds
                    .iter()
                    .any(|k| k.group.as_deref().unwrap_or(gw::GROUP) == gw::GROUP && k.kind == kind)
            })
}

fn admits_namespace(
    listener: &GatewayListeners,
    gateway_namespace: &str,
    route: &RouteView,
) -> bool {
    let namespaces = listener
        .allowed_routes
        .as_ref()
        .and_then(|a| a.namespaces.as_ref());
    match namespaces
        .and_then(|n| n.from.as_ref())
        .unwrap_or(&From::Same)
    {
        From::Same => route.namespace == gateway_namespace,
        From::All => true,
        From::Selector => namespaces
            .and_then(|n| n.selector.as_ref())
            .is_some_and(|s| selects(s, route.namespace_labels)),
    }
}

/// Whether a label selector selects `labels` (an invalid operator selects
/// nothing).
fn selects(selector: &Selector, labels: &BTreeMap<String, String>) -> bool {
    let by_labels = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let by_expressions = selector.match_expressions.iter().flatten().all(|e| {
        let values = e.values.as_deref().unwrap_or_default();
        let value = labels.get(&e.key);
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    by_labels && by_expressions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gateway(listeners: serde_json::Value) -> Gateway {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": "gw", "namespace": "infra"},
            "spec": {"gatewayClassName": "c", "listeners": listeners}
        }))
        .unwrap()
    }

    fn parent(section: Option<&str>, port: Option<i32>) -> ParentRef {
        ParentRef {
            namespace: Some("infra".into()),
            name: "gw".into(),
            section_name: section.map(Into::into),
            port,
            ..Default::default()
        }
    }

    fn names(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn listeners() -> serde_json::Value {
        serde_json::json!([
            {"name": "specific", "port": 80, "protocol": "HTTP", "hostname": "very.specific.com",
             "allowedRoutes": {"namespaces": {"from": "All"}}},
            {"name": "wild", "port": 80, "protocol": "HTTP", "hostname": "*.wildcard.io",
             "allowedRoutes": {"namespaces": {"from": "All"}}},
            {"name": "tls", "port": 443, "protocol": "HTTPS", "hostname": "*.wildcard.io",
             "allowedRoutes": {"namespaces": {"from": "Selector",
                "selector": {"matchLabels": {"team": "a"},
                             "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod"]}]}}}},
            {"name": "same", "port": 8080, "protocol": "HTTP"},
            {"name": "tcp", "port": 9000, "protocol": "TCP", "allowedRoutes": {"namespaces": {"from": "All"}}}
        ])
    }

    #[test]
    fn names_are_the_union_over_the_listeners_attached_to() {
        let gw = gateway(listeners());
        let hosts = vec![
            "non.matching.com".to_string(),
            "foo.wildcard.io".into(),
            "*.specific.com".into(),
        ];
        let no_labels = BTreeMap::new();
        let route = RouteView {
            kind: "HTTPRoute",
            namespace: "shop",
            namespace_labels: &no_labels,
            hostnames: &hosts,
        };
        assert_eq!(
            dns_names(&gw, "infra", "gw", &[parent(None, None)], &route),
            names(&["foo.wildcard.io", "very.specific.com"])
        );
        // Through one listener only.
        assert_eq!(
            dns_names(&gw, "infra", "gw", &[parent(Some("wild"), None)], &route),
            names(&["foo.wildcard.io"])
        );
        // parentRefs to other Gateways do not count.
        let other = ParentRef {
            name: "other".into(),
            ..parent(None, None)
        };
        assert!(dns_names(&gw, "infra", "gw", &[other], &route).is_empty());
        // The selector listener admits a namespace with the right labels.
        let labels: BTreeMap<String, String> = [("team", "a"), ("env", "prod")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let labelled = RouteView {
            namespace_labels: &labels,
            ..route
        };
        assert_eq!(
            attach(&gw, "infra", &parent(None, Some(443)), &labelled).map(|v| v.len()),
            Ok(1)
        );
        assert_eq!(
            attach(&gw, "infra", &parent(None, Some(443)), &route),
            Err(NotAttached::NotAllowedByListeners)
        );
    }

    #[test]
    fn each_reason_of_not_attaching() {
        let gw = gateway(listeners());
        let no_labels = BTreeMap::new();
        let hosts = vec!["x.example.com".to_string()];
        let route = RouteView {
            kind: "HTTPRoute",
            namespace: "shop",
            namespace_labels: &no_labels,
            hostnames: &hosts,
        };
        assert_eq!(
            attach(&gw, "infra", &parent(Some("nope"), None), &route),
            Err(NotAttached::NoMatchingParent)
        );
        assert_eq!(
            attach(&gw, "infra", &parent(Some("wild"), Some(443)), &route),
            Err(NotAttached::NoMatchingParent)
        );
        // "same" admits only routes of its own namespace.
        assert_eq!(
            attach(&gw, "infra", &parent(Some("same"), None), &route),
            Err(NotAttached::NotAllowedByListeners)
        );
        let in_infra = RouteView {
            namespace: "infra",
            ..route
        };
        assert_eq!(
            attach(&gw, "infra", &parent(Some("same"), None), &in_infra),
            Ok(vec![(
                "same".to_string(),
                Served::Names(names(&["x.example.com"]))
            )])
        );
        // A TCP listener takes no HTTPRoute.
        assert_eq!(
            attach(&gw, "infra", &parent(Some("tcp"), None), &route),
            Err(NotAttached::NotAllowedByListeners)
        );
        assert_eq!(
            attach(&gw, "infra", &parent(Some("wild"), None), &route),
            Err(NotAttached::NoMatchingListenerHostname)
        );
        assert_eq!(
            NotAttached::NoMatchingListenerHostname.reason(),
            "NoMatchingListenerHostname"
        );
    }

    #[test]
    fn allowed_kinds_override_the_protocols() {
        let gw = gateway(serde_json::json!([
            {"name": "web", "port": 80, "protocol": "HTTP",
             "allowedRoutes": {"kinds": [{"kind": "GRPCRoute"}], "namespaces": {"from": "All"}}}
        ]));
        let no_labels = BTreeMap::new();
        let route = |kind| RouteView {
            kind,
            namespace: "shop",
            namespace_labels: &no_labels,
            hostnames: &[],
        };
        assert_eq!(
            attach(&gw, "infra", &parent(None, None), &route("HTTPRoute")),
            Err(NotAttached::NotAllowedByListeners)
        );
        assert_eq!(
            attach(&gw, "infra", &parent(None, None), &route("GRPCRoute")),
            Ok(vec![("web".to_string(), Served::Any)])
        );
        // Served::Any gives no name to publish.
        assert!(
            dns_names(
                &gw,
                "infra",
                "gw",
                &[parent(None, None)],
                &route("GRPCRoute")
            )
            .is_empty()
        );
    }

    /// A Gateway with a listener of each protocol, every one open to all
    /// namespaces.
    fn by_protocol() -> Gateway {
        let open = serde_json::json!({"namespaces": {"from": "All"}});
        gateway(serde_json::json!([
            {"name": "http", "port": 80, "protocol": "HTTP", "allowedRoutes": open},
            {"name": "https", "port": 443, "protocol": "HTTPS", "hostname": "*.example.com",
             "allowedRoutes": open},
            {"name": "tls", "port": 8443, "protocol": "TLS", "hostname": "*.example.com",
             "tls": {"mode": "Passthrough"}, "allowedRoutes": open},
            {"name": "tcp", "port": 9000, "protocol": "TCP", "allowedRoutes": open},
            {"name": "udp", "port": 5353, "protocol": "UDP", "allowedRoutes": open},
            {"name": "tls-any", "port": 9443, "protocol": "TLS",
             "tls": {"mode": "Passthrough"}, "allowedRoutes": open}
        ]))
    }

    #[test]
    fn each_route_kind_attaches_to_the_listeners_of_its_protocol() {
        let gw = by_protocol();
        let no_labels = BTreeMap::new();
        let hosts = vec!["db.example.com".to_string()];
        let route = |kind| RouteView {
            kind,
            namespace: "shop",
            namespace_labels: &no_labels,
            hostnames: if kind == "TLSRoute" || kind == "HTTPRoute" {
                &hosts
            } else {
                &[]
            },
        };
        let listeners_of = |kind| -> Vec<String> {
            attach(&gw, "infra", &parent(None, None), &route(kind))
                .unwrap_or_default()
                .into_iter()
                .map(|(l, _)| l)
                .collect()
        };
        assert_eq!(listeners_of("HTTPRoute"), ["http", "https"]);
        // HTTPS terminates TLS: a TLSRoute needs a TLS listener.
        assert_eq!(listeners_of("TLSRoute"), ["tls", "tls-any"]);
        assert_eq!(listeners_of("TCPRoute"), ["tcp"]);
        assert_eq!(listeners_of("UDPRoute"), ["udp"]);
        // Through a listener of another protocol: NotAllowedByListeners.
        for (kind, section) in [
            ("TLSRoute", "http"),
            ("TLSRoute", "https"),
            ("TCPRoute", "tls"),
            ("TCPRoute", "udp"),
            ("UDPRoute", "tcp"),
            ("HTTPRoute", "tls"),
        ] {
            assert_eq!(
                attach(&gw, "infra", &parent(Some(section), None), &route(kind)),
                Err(NotAttached::NotAllowedByListeners),
                "{kind} on {section}"
            );
        }
        assert!(kind_refused(&gw, &parent(Some("http"), None), "TLSRoute"));
        assert!(!kind_refused(&gw, &parent(None, None), "TLSRoute"));
        assert!(!kind_refused(&gw, &parent(Some("nope"), None), "TLSRoute"));
        assert!(kind_refused(&gw, &parent(None, Some(9000)), "UDPRoute"));
        // Listing a kind its protocol cannot carry does not make it so.
        let listed = gateway(serde_json::json!([
            {"name": "web", "port": 443, "protocol": "HTTPS",
             "allowedRoutes": {"kinds": [{"kind": "TLSRoute"}], "namespaces": {"from": "All"}}}
        ]));
        assert_eq!(
            attach(&listed, "infra", &parent(None, None), &route("TLSRoute")),
            Err(NotAttached::NotAllowedByListeners)
        );
    }

    #[test]
    fn a_tls_route_serves_its_hostnames_within_the_listeners() {
        let gw = by_protocol();
        let no_labels = BTreeMap::new();
        let hosts = vec![
            "db.example.com".to_string(),
            "*.example.com".into(),
            "db.other.org".into(),
        ];
        let tls = RouteView {
            kind: "TLSRoute",
            namespace: "shop",
            namespace_labels: &no_labels,
            hostnames: &hosts,
        };
        // `tls` (*.example.com) narrows to the names within it; `tls-any`
        // (no hostname) serves the route's own, wildcard included.
        assert_eq!(
            dns_names(&gw, "infra", "gw", &[parent(Some("tls"), None)], &tls),
            names(&["*.example.com", "db.example.com"])
        );
        assert_eq!(
            dns_names(&gw, "infra", "gw", &[parent(None, None)], &tls),
            names(&["*.example.com", "db.example.com", "db.other.org"])
        );
        // A hostname outside the listener's: NoMatchingListenerHostname.
        let other = vec!["db.other.org".to_string()];
        assert_eq!(
            attach(
                &gw,
                "infra",
                &parent(Some("tls"), None),
                &RouteView {
                    hostnames: &other,
                    ..tls
                }
            ),
            Err(NotAttached::NoMatchingListenerHostname)
        );
        // TCP and UDP routes have no hostnames and add no name.
        for kind in ["TCPRoute", "UDPRoute"] {
            let route = RouteView {
                kind,
                hostnames: &[],
                ..tls
            };
            assert!(dns_names(&gw, "infra", "gw", &[parent(None, None)], &route).is_empty());
        }
    }
}
