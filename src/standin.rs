//! What `standin-lb` writes as a cluster's Gateway API implementation
//! (pure): the status a conformant implementation with one address would
//! report for its GatewayClasses, Gateways and routes. The binary
//! (`src/bin/standin-lb.rs`) watches, calls these and writes what differs.
//!
//! - GatewayClass of controllerName [`labels::standin::CONTROLLER_NAME`]:
//!   `Accepted=True`.
//! - Gateway of such a class: `status.addresses` = the one address,
//!   `Accepted=True`, `Programmed=True` (or `False`, reason `Pending`, when
//!   the stand-in is told not to program: the address is still reported, as
//!   an implementation may, so that consumers must look at `Programmed`);
//!   one listener status per listener: supported kinds, attached routes
//!   (attachment as [`crate::gateway::attach`] decides), `Accepted`,
//!   `Programmed`, `ResolvedRefs`, `Conflicted=False`.
//! - HTTPRoute, GRPCRoute, and TLSRoute, TCPRoute, UDPRoute where the
//!   cluster serves them: one `status.parents` entry under the stand-in's
//!   controllerName per parentRef to a Gateway of such a class:
//!   `Accepted` (or `False` with the attachment's reason) and
//!   `ResolvedRefs` (`False`, `BackendNotFound`, when a backend Service is
//!   missing); other controllers' entries are kept.
//!
//! Every condition keeps its `lastTransitionTime` while its status holds.
//! Namespace selectors of `allowedRoutes` see no namespace labels (the
//! stand-in does not watch namespaces): `from: Selector` admits only what a
//! selector with no requirement admits.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use crate::gateway::attach::{self, RouteView};
use crate::gateway::route::ParentRef;
use crate::gateway_api::gateway::Gateway;
use crate::labels::{gateway_api as gw, standin};

/// The stand-in's one address, as Gateway status reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Address {
    Ip(String),
    Hostname(String),
}

impl Address {
    fn status(&self) -> Value {
        match self {
            Address::Ip(ip) => json!({"type": "IPAddress", "value": ip}),
            Address::Hostname(name) => json!({"type": "Hostname", "value": name}),
        }
    }
}

/// A condition (as JSON) of `type_`, keeping the `lastTransitionTime` of
/// the same type in `previous` while the status is unchanged.
pub fn condition(
    type_: &str,
    ok: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    previous: Option<&Value>,
    now: &str,
) -> Value {
    let status = if ok { "True" } else { "False" };
    let since = previous
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|c| c["type"] == type_ && c["status"] == status)
        .and_then(|c| c["lastTransitionTime"].as_str())
        .unwrap_or(now);
    let mut c = json!({
        "type": type_, "status": status, "reason": reason, "message": message,
        "lastTransitionTime": since,
    });
    if let Some(generation) = generation {
        c["observedGeneration"] = json!(generation);
    }
    c
}

/// Whether a GatewayClass (whole, as JSON) is the stand-in's.
pub fn is_standin_class(class: &Value) -> bool {
    class
        .pointer("/spec/controllerName")
        .and_then(Value::as_str)
        == Some(standin::CONTROLLER_NAME)
}

/// The status of one of the stand-in's GatewayClasses.
pub fn class_status(class: &Value, now: &str) -> Value {
    let generation = class
        .pointer("/metadata/generation")
        .and_then(Value::as_i64);
    let previous = class.pointer("/status/conditions");
    json!({"conditions": [condition(gw::ACCEPTED, true, gw::ACCEPTED,
        "accepted by standin-lb", generation, previous, now)]})
}

/// The route kinds a listener of `protocol` supports (and takes by default).
fn protocol_kinds(protocol: &str) -> &'static [&'static str] {
    attach::compatible_kinds(protocol)
}

/// The status of one of the stand-in's Gateways. `attached` counts, per
/// listener name, the routes attached through it; `programmed` is what the
/// stand-in was told to report.
pub fn gateway_status(
    gateway: &Gateway,
    previous: Option<&Value>,
    address: &Address,
    programmed: bool,
    attached: &BTreeMap<String, i32>,
    now: &str,
) -> Value {
    let generation = gateway.metadata.generation;
    let previous_conditions = previous.and_then(|p| p.get("conditions"));
    let (prog_reason, prog_message) = if programmed {
        (gw::PROGRAMMED, "programmed by standin-lb")
    } else {
        (
            gw::PENDING,
            "standin-lb was told not to program Gateways (--gateways-not-programmed)",
        )
    };
    let listeners: Vec<Value> = gateway
        .spec
        .listeners
        .iter()
        .map(|l| {
            let prev = previous
                .and_then(|p| p.get("listeners"))
                .and_then(Value::as_array)
                .and_then(|ls| ls.iter().find(|p| p["name"] == l.name.as_str()))
                .and_then(|p| p.get("conditions"));
            let kinds: Vec<Value> = match l.allowed_routes.as_ref().and_then(|a| a.kinds.as_ref()) {
                Some(kinds) => kinds
                    .iter()
                    .filter(|k| {
                        k.group.as_deref().unwrap_or(gw::GROUP) == gw::GROUP
                            && protocol_kinds(&l.protocol).contains(&k.kind.as_str())
                    })
                    .map(|k| json!({"group": gw::GROUP, "kind": k.kind}))
                    .collect(),
                None => protocol_kinds(&l.protocol)
                    .iter()
                    .map(|k| json!({"group": gw::GROUP, "kind": k}))
                    .collect(),
            };
            let cond = |t: &str, ok: bool, reason: &str, message: &str| {
                condition(t, ok, reason, message, generation, prev, now)
            };
            json!({
                "name": l.name,
                "attachedRoutes": attached.get(&l.name).copied().unwrap_or(0),
                "supportedKinds": kinds,
                "conditions": [
                    cond(gw::ACCEPTED, true, gw::ACCEPTED, "listener accepted"),
                    cond("Conflicted", false, "NoConflicts", "no conflicts"),
                    cond(gw::PROGRAMMED, programmed, prog_reason, prog_message),
                    cond(gw::RESOLVED_REFS, true, gw::RESOLVED_REFS, "references resolved"),
                ],
            })
        })
        .collect();
    json!({
        "addresses": [address.status()],
        "conditions": [
            condition(gw::ACCEPTED, true, gw::ACCEPTED, "accepted by standin-lb", generation,
                previous_conditions, now),
            condition(gw::PROGRAMMED, programmed, prog_reason, prog_message, generation,
                previous_conditions, now),
        ],
        "listeners": listeners,
    })
}

/// A route, as the stand-in sees it (from the generated types or JSON).
#[derive(Clone, Debug)]
pub struct RouteInput<'a> {
    /// `HTTPRoute`, `GRPCRoute`, `TLSRoute`, `TCPRoute` or `UDPRoute`.
    pub kind: &'a str,
    /// The whole route, as JSON.
    pub object: &'a Value,
    pub parent_refs: Vec<ParentRef>,
    pub hostnames: Vec<String>,
}

impl RouteInput<'_> {
    /// The route's namespace.
    pub fn namespace(&self) -> &str {
        self.object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// The `(namespace, name)` of every Gateway its parentRefs name.
    pub fn parent_gateways(&self) -> BTreeSet<(String, String)> {
        self.parent_refs
            .iter()
            .filter_map(|p| p.gateway(self.namespace()))
            .collect()
    }

    /// The `(namespace, name)` of every backendRef to a Service.
    pub fn backend_services(&self) -> BTreeSet<(String, String)> {
        let ns = self.namespace();
        let rules = self
            .object
            .pointer("/spec/rules")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        rules
            .iter()
            .filter_map(|r| r.get("backendRefs").and_then(Value::as_array))
            .flatten()
            .filter(|b| {
                b.get("group")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .is_empty()
                    && b.get("kind").and_then(Value::as_str).unwrap_or("Service") == "Service"
            })
            .filter_map(|b| {
                let name = b.get("name")?.as_str()?;
                let namespace = b.get("namespace").and_then(Value::as_str).unwrap_or(ns);
                Some((namespace.to_string(), name.to_string()))
            })
            .collect()
    }
}

/// The listeners of the stand-in's Gateway `gateway_ns/gateway_name` that
/// `route` attaches to through any of its parentRefs.
pub fn attached_listeners(
    route: &RouteInput,
    gateway: &Gateway,
    gateway_ns: &str,
    gateway_name: &str,
) -> BTreeSet<String> {
    let no_labels = BTreeMap::new();
    let view = RouteView {
        kind: route.kind,
        namespace: route.namespace(),
        namespace_labels: &no_labels,
        hostnames: &route.hostnames,
    };
    route
        .parent_refs
        .iter()
        .filter(|p| {
            p.gateway(route.namespace())
                .is_some_and(|(ns, name)| ns == gateway_ns && name == gateway_name)
        })
        .filter_map(|p| attach::attach(gateway, gateway_ns, p, &view).ok())
        .flatten()
        .map(|(listener, _)| listener)
        .collect()
}

/// The route's `status.parents`: other controllers' entries as they are,
/// then one entry per parentRef to a Gateway `standin_gateway` finds (the
/// stand-in's Gateways, by namespace and name).
pub fn route_parents<'g>(
    route: &RouteInput,
    standin_gateway: impl Fn(&str, &str) -> Option<&'g Gateway>,
    service_exists: impl Fn(&str, &str) -> bool,
    now: &str,
) -> Value {
    let ns = route.namespace();
    let generation = route
        .object
        .pointer("/metadata/generation")
        .and_then(Value::as_i64);
    let previous: Vec<Value> = route
        .object
        .pointer("/status/parents")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut out: Vec<Value> = previous
        .iter()
        .filter(|p| p["controllerName"] != standin::CONTROLLER_NAME)
        .cloned()
        .collect();
    let no_labels = BTreeMap::new();
    let view = RouteView {
        kind: route.kind,
        namespace: ns,
        namespace_labels: &no_labels,
        hostnames: &route.hostnames,
    };
    let missing: Vec<String> = route
        .backend_services()
        .into_iter()
        .filter(|(sns, name)| !service_exists(sns, name))
        .map(|(sns, name)| format!("{sns}/{name}"))
        .collect();
    let mut seen = BTreeSet::new();
    for parent in &route.parent_refs {
        let Some((gns, gname)) = parent.gateway(ns) else {
            continue;
        };
        let Some(gateway) = standin_gateway(&gns, &gname) else {
            continue;
        };
        if !seen.insert(parent.clone()) {
            continue;
        }
        let parent_ref = parent_ref_json(parent);
        let prev = previous
            .iter()
            .find(|p| {
                p["controllerName"] == standin::CONTROLLER_NAME && p["parentRef"] == parent_ref
            })
            .and_then(|p| p.get("conditions"));
        let accepted = match attach::attach(gateway, &gns, parent, &view) {
            Ok(_) => condition(
                gw::ACCEPTED,
                true,
                gw::ACCEPTED,
                "accepted by standin-lb",
                generation,
                prev,
                now,
            ),
            Err(why) => condition(
                gw::ACCEPTED,
                false,
                why.reason(),
                "the route does not attach to this parent",
                generation,
                prev,
                now,
            ),
        };
        let resolved = if missing.is_empty() {
            condition(
                gw::RESOLVED_REFS,
                true,
                gw::RESOLVED_REFS,
                "references resolved",
                generation,
                prev,
                now,
            )
        } else {
            condition(
                gw::RESOLVED_REFS,
                false,
                "BackendNotFound",
                &format!("backend Service(s) not found: {}", missing.join(", ")),
                generation,
                prev,
                now,
            )
        };
        out.push(json!({
            "parentRef": parent_ref,
            "controllerName": standin::CONTROLLER_NAME,
            "conditions": [accepted, resolved],
        }));
    }
    json!({"parents": out})
}

/// A parentRef as `status.parents[].parentRef` writes it: what the route
/// wrote, with the defaults the API server fills in (group, kind).
fn parent_ref_json(p: &ParentRef) -> Value {
    let mut out = json!({
        "group": p.group.clone().unwrap_or_else(|| gw::GROUP.to_string()),
        "kind": p.kind.clone().unwrap_or_else(|| gw::GATEWAY.to_string()),
        "name": p.name,
    });
    if let Some(ns) = &p.namespace {
        out["namespace"] = json!(ns);
    }
    if let Some(s) = &p.section_name {
        out["sectionName"] = json!(s);
    }
    if let Some(port) = p.port {
        out["port"] = json!(port);
    }
    out
}

/// Whether applying `wanted` would change `current` (a status; `None`:
/// none): the stand-in writes only what differs.
pub fn differs(current: Option<&Value>, wanted: &Value) -> bool {
    let Some(fields) = wanted.as_object() else {
        return true;
    };
    fields
        .iter()
        .any(|(k, v)| current.and_then(|c| c.get(k)) != Some(v))
}

/// Whether the stand-in writes `wanted` (from [`route_parents`]) over a
/// route's `current` status: as [`differs`], but a route none of whose
/// parents is (yet) a Gateway of the stand-in's, and on which no
/// implementation reported, gets no status. An implementation writes route
/// status for the parents it implements only; an empty `parents` list
/// written before the route's Gateway reached the stand-in's cache was a
/// status that the next pass replaced, one more write on each side of the
/// syncer (issue #16).
pub fn route_status_differs(current: Option<&Value>, wanted: &Value) -> bool {
    let no_parents = |status: Option<&Value>| {
        status
            .and_then(|s| s.get("parents"))
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty)
    };
    if no_parents(Some(wanted)) && no_parents(current) {
        return false;
    }
    differs(current, wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: &str = "2026-01-01T00:00:00Z";
    const LATER: &str = "2026-01-01T00:01:00Z";

    fn gateway(listeners: Value) -> Gateway {
        serde_json::from_value(json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": "web--east", "namespace": "shop", "generation": 2},
            "spec": {"gatewayClassName": "standin", "listeners": listeners}
        }))
        .unwrap()
    }

    fn listeners() -> Value {
        json!([
            {"name": "http", "port": 80, "protocol": "HTTP", "hostname": "*.example.test"},
            {"name": "other", "port": 80, "protocol": "HTTP", "hostname": "api.other.test"}
        ])
    }

    fn route(hostnames: &[&str], backend: &str) -> Value {
        json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "web--east", "namespace": "shop", "generation": 3},
            "spec": {"hostnames": hostnames,
                     "parentRefs": [{"name": "web--east"}, {"name": "elsewhere"}],
                     "rules": [{"backendRefs": [{"name": backend, "port": 80}]}]},
            "status": {"parents": [{"controllerName": "other.example/x",
                                    "parentRef": {"name": "elsewhere"}, "conditions": []}]}
        })
    }

    fn input<'a>(object: &'a Value, hostnames: &[&str]) -> RouteInput<'a> {
        RouteInput {
            kind: "HTTPRoute",
            object,
            parent_refs: vec![
                ParentRef {
                    name: "web--east".into(),
                    ..Default::default()
                },
                ParentRef {
                    name: "elsewhere".into(),
                    ..Default::default()
                },
            ],
            hostnames: hostnames.iter().map(|h| h.to_string()).collect(),
        }
    }

    #[test]
    fn classes_are_accepted_and_keep_their_transition_time() {
        let class = json!({"metadata": {"generation": 1},
                           "spec": {"controllerName": "kcp-ingress.dev/standin"}});
        assert!(is_standin_class(&class));
        assert!(!is_standin_class(
            &json!({"spec": {"controllerName": "traefik.io/gateway-controller"}})
        ));
        let status = class_status(&class, NOW);
        assert_eq!(status["conditions"][0]["status"], "True");
        assert_eq!(status["conditions"][0]["observedGeneration"], 1);
        let mut class = class;
        class["status"] = status.clone();
        assert_eq!(class_status(&class, LATER), status);
        assert!(!differs(class.get("status"), &status));
    }

    #[test]
    fn gateways_are_programmed_with_the_address_and_count_routes() {
        let gw = gateway(listeners());
        let attached = BTreeMap::from([("http".to_string(), 2)]);
        let ip = Address::Ip("127.0.1.1".into());
        let status = gateway_status(&gw, None, &ip, true, &attached, NOW);
        assert_eq!(
            status["addresses"],
            json!([{"type": "IPAddress", "value": "127.0.1.1"}])
        );
        assert_eq!(status["conditions"][1]["type"], "Programmed");
        assert_eq!(status["conditions"][1]["status"], "True");
        assert_eq!(status["conditions"][1]["observedGeneration"], 2);
        assert_eq!(status["listeners"][0]["attachedRoutes"], 2);
        assert_eq!(status["listeners"][1]["attachedRoutes"], 0);
        assert_eq!(
            status["listeners"][0]["supportedKinds"],
            json!([{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"},
                   {"group": "gateway.networking.k8s.io", "kind": "GRPCRoute"}])
        );
        // Unchanged: the transition times hold, nothing to write.
        let again = gateway_status(&gw, Some(&status), &ip, true, &attached, LATER);
        assert_eq!(again, status);
        assert!(!differs(Some(&status), &again));
        // Not programmed: the address is still reported, Programmed is False.
        let not = gateway_status(&gw, Some(&status), &ip, false, &attached, LATER);
        assert_eq!(not["addresses"], status["addresses"]);
        assert_eq!(not["conditions"][1]["status"], "False");
        assert_eq!(not["conditions"][1]["reason"], "Pending");
        assert_eq!(not["conditions"][1]["lastTransitionTime"], LATER);
        assert_eq!(not["conditions"][0]["lastTransitionTime"], NOW);
        assert!(differs(Some(&status), &not));
        let name = Address::Hostname("lb.example.test".into());
        let status = gateway_status(&gw, None, &name, true, &attached, NOW);
        assert_eq!(status["addresses"][0]["type"], "Hostname");
    }

    #[test]
    fn routes_get_one_entry_per_standin_parent() {
        let gw = gateway(listeners());
        let object = route(&["www.example.test"], "web");
        let r = input(&object, &["www.example.test"]);
        assert_eq!(
            attached_listeners(&r, &gw, "shop", "web--east"),
            BTreeSet::from(["http".to_string()])
        );
        let find = |ns: &str, name: &str| (ns == "shop" && name == "web--east").then_some(&gw);
        let status = route_parents(&r, find, |_, _| true, NOW);
        let parents = status["parents"].as_array().unwrap();
        // The other controller's entry is kept; "elsewhere" is not ours.
        assert_eq!(parents.len(), 2);
        assert_eq!(parents[0]["controllerName"], "other.example/x");
        let ours = &parents[1];
        assert_eq!(ours["controllerName"], "kcp-ingress.dev/standin");
        assert_eq!(
            ours["parentRef"],
            json!({"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "web--east"})
        );
        assert_eq!(ours["conditions"][0]["status"], "True");
        assert_eq!(ours["conditions"][1]["status"], "True");
        assert_eq!(ours["conditions"][0]["observedGeneration"], 3);

        // A missing backend, and a hostname no listener serves.
        let object = route(&["www.nowhere.test"], "gone");
        let r = input(&object, &["www.nowhere.test"]);
        assert!(attached_listeners(&r, &gw, "shop", "web--east").is_empty());
        let status = route_parents(&r, find, |_, name| name != "gone", NOW);
        let ours = &status["parents"][1];
        assert_eq!(
            ours["conditions"][0]["reason"],
            "NoMatchingListenerHostname"
        );
        assert_eq!(ours["conditions"][1]["reason"], "BackendNotFound");
        assert!(
            ours["conditions"][1]["message"]
                .as_str()
                .unwrap()
                .contains("shop/gone")
        );

        // Written back, it is what the next pass computes.
        let mut object = object;
        object["status"] = status.clone();
        let r = input(&object, &["www.nowhere.test"]);
        let again = route_parents(&r, find, |_, name| name != "gone", LATER);
        assert_eq!(again, status);
    }

    #[test]
    fn backend_services_default_to_the_routes_namespace() {
        let object = json!({"metadata": {"namespace": "shop"}, "spec": {"rules": [
            {"backendRefs": [{"name": "a"}, {"name": "b", "namespace": "other"},
                             {"name": "c", "group": "example.com", "kind": "Bucket"}]},
            {}
        ]}});
        let r = RouteInput {
            kind: "HTTPRoute",
            object: &object,
            parent_refs: vec![],
            hostnames: vec![],
        };
        assert_eq!(
            r.backend_services(),
            BTreeSet::from([
                ("other".to_string(), "b".to_string()),
                ("shop".to_string(), "a".to_string())
            ])
        );
    }

    #[test]
    fn a_route_with_no_parent_of_ours_gets_no_status() {
        let none = json!({"parents": []});
        assert!(!route_status_differs(None, &none));
        assert!(!route_status_differs(Some(&json!({})), &none));
        assert!(!route_status_differs(Some(&none), &none));
        // Entries of ours that must go are removed.
        let ours = json!({"parents": [{"controllerName": standin::CONTROLLER_NAME}]});
        assert!(route_status_differs(Some(&ours), &none));
        // A parent to report is written.
        assert!(route_status_differs(None, &ours));
        assert!(!route_status_differs(Some(&ours), &ours));
    }
}
