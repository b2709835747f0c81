//! Leaf statuses → the root's status (pure), as a Gateway API
//! implementation reports it, and naming the clusters that are not there:
//!
//! - root Gateway `status.addresses`: the union of the addresses of the
//!   leaves that are programmed in healthy clusters, sorted, unique (an
//!   address of a cluster that is down, or whose Gateway is not programmed,
//!   would send traffic nowhere);
//! - `Accepted` (Gateway, listener) and `ResolvedRefs` (listener): true
//!   when every placed cluster's leaf says so (the configuration is the same
//!   everywhere, so one cluster refusing it is a fault to show); false with
//!   the reason of the first cluster that says false; else unknown
//!   (`Pending`) while a cluster has not reported;
//! - `Programmed` (Gateway, listener): true when the leaf is programmed in
//!   at least one healthy cluster (traffic is served), its message naming
//!   the clusters that are not; else false;
//! - root route `status.parents`: one entry per parentRef with
//!   kcp-ingress's controllerName, `Accepted` and `ResolvedRefs` summarised
//!   over the leaf routes of the clusters that Gateway is placed on, by the
//!   every-cluster rule above; a parentRef that names no placed Gateway gets
//!   `Accepted=False` (`NoMatchingParent`). Entries of other controllers are
//!   kept as they are.
//!
//! Conditions carry the root's generation; `lastTransitionTime` moves only
//! when a condition's status changes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::gateway::route::{ParentRef, ParentStatus};
use crate::gateway::translate::{GatewayPlacement, leaf_parent_ref};
use crate::gateway_api::gateway::{
    Gateway, GatewayStatus, GatewayStatusAddresses, GatewayStatusListeners,
};
use crate::labels::gateway_api as gw;

/// One placed cluster's leaf Gateway, as the merge sees it.
#[derive(Debug, Clone, Copy)]
pub struct LeafGateway<'a> {
    pub cluster: &'a str,
    /// The cluster is healthy (its syncer reports in, it takes traffic).
    pub healthy: bool,
    /// The leaf's status (`None`: no leaf, or no status yet).
    pub status: Option<&'a GatewayStatus>,
}

/// One placed cluster's leaf route: its `status.parents`, all controllers'.
#[derive(Debug, Clone)]
pub struct LeafRoute<'a> {
    pub cluster: &'a str,
    pub parents: &'a [ParentStatus],
}

/// What one cluster says about a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Said<'a> {
    True,
    False { reason: &'a str, message: &'a str },
    Unknown { reason: &'a str },
    Nothing,
}

fn said<'a>(conditions: &'a [Condition], type_: &str) -> Said<'a> {
    match conditions.iter().find(|c| c.type_ == type_) {
        None => Said::Nothing,
        Some(c) if c.status == "True" => Said::True,
        Some(c) if c.status == "False" => Said::False {
            reason: &c.reason,
            message: &c.message,
        },
        Some(c) => Said::Unknown { reason: &c.reason },
    }
}

/// `cluster (reason: message)`, what a summary's message lists.
fn describe(cluster: &str, said: Said, healthy: bool) -> String {
    let why = match said {
        Said::True if !healthy => "unhealthy".to_string(),
        Said::True => "ok".to_string(),
        Said::False {
            reason,
            message: "",
        } => reason.to_string(),
        Said::False { reason, message } => format!("{reason}: {message}"),
        Said::Unknown { reason } => format!("{reason}, unknown"),
        Said::Nothing => "no status yet".to_string(),
    };
    let why = if healthy || matches!(said, Said::True) {
        why
    } else {
        format!("{why}, unhealthy")
    };
    format!("{cluster} ({why})")
}

/// A condition's status, reason and message.
type Summary = (&'static str, String, String);

/// True when every cluster says true; false (the first false reason) when
/// one says false; else unknown, `Pending`.
fn every(type_: &str, verb: &str, says: &[(&str, Said, bool)]) -> Summary {
    if says.is_empty() {
        return ("Unknown", gw::PENDING.into(), "placed on no cluster".into());
    }
    let not: Vec<String> = says
        .iter()
        .filter(|(_, s, _)| *s != Said::True)
        .map(|(c, s, h)| describe(c, *s, *h))
        .collect();
    if not.is_empty() {
        let clusters: Vec<&str> = says.iter().map(|(c, _, _)| *c).collect();
        return (
            "True",
            type_.into(),
            format!("{verb} in {}", clusters.join(", ")),
        );
    }
    let first_false = says.iter().find_map(|(_, s, _)| match s {
        Said::False { reason, .. } => Some(*reason),
        _ => None,
    });
    let message = format!("not {verb} in {}", not.join(", "));
    match first_false {
        Some(reason) => ("False", reason.to_string(), message),
        None => ("Unknown", gw::PENDING.into(), message),
    }
}

/// True when at least one healthy cluster says true; else false.
fn any_healthy(type_: &str, verb: &str, says: &[(&str, Said, bool)]) -> Summary {
    let yes: Vec<&str> = says
        .iter()
        .filter(|(_, s, h)| *h && *s == Said::True)
        .map(|(c, _, _)| *c)
        .collect();
    let not: Vec<String> = says
        .iter()
        .filter(|(_, s, h)| !(*h && *s == Said::True))
        .map(|(c, s, h)| describe(c, *s, *h))
        .collect();
    if !yes.is_empty() {
        let mut message = format!("{verb} in {}", yes.join(", "));
        if !not.is_empty() {
            message.push_str(&format!("; not in {}", not.join(", ")));
        }
        return ("True", type_.into(), message);
    }
    if says.is_empty() {
        return ("False", "NoResources".into(), "placed on no cluster".into());
    }
    let reason = says
        .iter()
        .find_map(|(_, s, _)| match s {
            Said::False { reason, .. } => Some(reason.to_string()),
            _ => None,
        })
        .unwrap_or_else(|| gw::PENDING.into());
    ("False", reason, format!("not {verb} in {}", not.join(", ")))
}

/// A condition from a summary, its transition time kept from `previous`
/// while its status stays.
fn condition(
    previous: &[Condition],
    type_: &str,
    (status, reason, message): Summary,
    generation: Option<i64>,
    now: &Time,
) -> Condition {
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map_or_else(|| now.clone(), |c| c.last_transition_time.clone());
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason,
        message,
        last_transition_time,
        observed_generation: generation,
    }
}

/// The status of the root Gateway `root` from its leaves (one per cluster
/// it is placed on).
pub fn gateway_status(root: &Gateway, leaves: &[LeafGateway], now: &Time) -> GatewayStatus {
    let generation = root.metadata.generation;
    let previous = root.status.as_ref();
    let no_conditions = Vec::new();
    let leaf_conditions = |l: &LeafGateway<'_>| -> Vec<Condition> {
        l.status
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default()
    };
    let conditions: Vec<Vec<Condition>> = leaves.iter().map(leaf_conditions).collect();
    let says = |type_: &str| -> Vec<(&str, Said, bool)> {
        leaves
            .iter()
            .zip(&conditions)
            .map(|(l, c)| (l.cluster, said(c, type_), l.healthy))
            .collect()
    };

    let mut addresses: Vec<GatewayStatusAddresses> = leaves
        .iter()
        .zip(&conditions)
        .filter(|(l, c)| l.healthy && said(c, gw::PROGRAMMED) == Said::True)
        .flat_map(|(l, _)| {
            l.status
                .and_then(|s| s.addresses.clone())
                .unwrap_or_default()
        })
        .collect();
    addresses.sort_by(|a, b| (&a.value, &a.r#type).cmp(&(&b.value, &b.r#type)));
    addresses.dedup();

    let prev_conditions = previous
        .and_then(|s| s.conditions.as_ref())
        .unwrap_or(&no_conditions);
    let root_conditions = vec![
        condition(
            prev_conditions,
            gw::ACCEPTED,
            every(gw::ACCEPTED, "accepted", &says(gw::ACCEPTED)),
            generation,
            now,
        ),
        condition(
            prev_conditions,
            gw::PROGRAMMED,
            any_healthy(gw::PROGRAMMED, "programmed", &says(gw::PROGRAMMED)),
            generation,
            now,
        ),
    ];

    let listeners = root
        .spec
        .listeners
        .iter()
        .map(|listener| {
            let of_leaves: Vec<Option<&GatewayStatusListeners>> = leaves
                .iter()
                .map(|l| {
                    l.status
                        .and_then(|s| s.listeners.as_ref())
                        .and_then(|ls| ls.iter().find(|s| s.name == listener.name))
                })
                .collect();
            let says = |type_: &str| -> Vec<(&str, Said, bool)> {
                leaves
                    .iter()
                    .zip(&of_leaves)
                    .map(|(l, s)| {
                        let said = s.map_or(Said::Nothing, |s| said(&s.conditions, type_));
                        (l.cluster, said, l.healthy)
                    })
                    .collect()
            };
            let prev = previous
                .and_then(|s| s.listeners.as_ref())
                .and_then(|ls| ls.iter().find(|s| s.name == listener.name))
                .map_or(&no_conditions, |s| &s.conditions);
            let reporting: Vec<&GatewayStatusListeners> =
                of_leaves.iter().flatten().copied().collect();
            let supported_kinds = reporting.first().map_or_else(Vec::new, |first| {
                first
                    .supported_kinds
                    .iter()
                    .filter(|k| reporting.iter().all(|r| r.supported_kinds.contains(k)))
                    .cloned()
                    .collect()
            });
            GatewayStatusListeners {
                name: listener.name.clone(),
                attached_routes: reporting
                    .iter()
                    .map(|r| r.attached_routes)
                    .max()
                    .unwrap_or(0),
                supported_kinds,
                conditions: vec![
                    condition(
                        prev,
                        gw::ACCEPTED,
                        every(gw::ACCEPTED, "accepted", &says(gw::ACCEPTED)),
                        generation,
                        now,
                    ),
                    condition(
                        prev,
                        gw::PROGRAMMED,
                        any_healthy(gw::PROGRAMMED, "programmed", &says(gw::PROGRAMMED)),
                        generation,
                        now,
                    ),
                    condition(
                        prev,
                        gw::RESOLVED_REFS,
                        every(gw::RESOLVED_REFS, "resolved", &says(gw::RESOLVED_REFS)),
                        generation,
                        now,
                    ),
                ],
            }
        })
        .collect();

    GatewayStatus {
        addresses: Some(addresses),
        conditions: Some(root_conditions),
        listeners: Some(listeners),
    }
}

/// Whether a leaf's status entry is about `leaf_ref` (implementations echo
/// the parentRef, defaults filled in or not).
fn same_parent(a: &ParentRef, b: &ParentRef, route_namespace: &str) -> bool {
    a.gateway(route_namespace) == b.gateway(route_namespace)
        && a.section_name == b.section_name
        && a.port == b.port
}

/// The `status.parents` of a root route in `namespace` with `parents`
/// (its spec's parentRefs), from its leaves; `existing` is the root's
/// current `status.parents`: other controllers' entries are kept, ours
/// replaced.
pub fn route_parents(
    namespace: &str,
    parents: &[ParentRef],
    gateways: &GatewayPlacement,
    leaves: &[LeafRoute],
    existing: &[ParentStatus],
    generation: Option<i64>,
    now: &Time,
) -> Vec<ParentStatus> {
    let mut ours: Vec<ParentStatus> = Vec::new();
    for parent in parents {
        if ours.iter().any(|p| p.parent_ref == *parent) {
            continue;
        }
        // A parent that is no Gateway is not ours to report (a mesh's).
        let Some(key) = parent.gateway(namespace) else {
            continue;
        };
        let previous = existing
            .iter()
            .find(|p| p.controller_name == gw::CONTROLLER_NAME && p.parent_ref == *parent)
            .map_or(&[][..], |p| &p.conditions[..]);
        let clusters = gateways.get(&key).filter(|c| !c.is_empty());
        let conditions = match clusters {
            None => vec![condition(
                previous,
                gw::ACCEPTED,
                (
                    "False",
                    gw::NO_MATCHING_PARENT.into(),
                    format!("no Gateway {}/{} is placed on any cluster", key.0, key.1),
                ),
                generation,
                now,
            )],
            Some(clusters) => {
                let entries: Vec<(&str, Option<&ParentStatus>)> = clusters
                    .iter()
                    .map(|c| {
                        let leaf_ref = leaf_parent_ref(parent, c);
                        let entry = leaves
                            .iter()
                            .filter(|l| l.cluster == c)
                            .flat_map(|l| l.parents)
                            .find(|p| {
                                p.controller_name != gw::CONTROLLER_NAME
                                    && same_parent(&p.parent_ref, &leaf_ref, namespace)
                            });
                        (c.as_str(), entry)
                    })
                    .collect();
                let says = |type_: &str| -> Vec<(&str, Said, bool)> {
                    entries
                        .iter()
                        .map(|(c, e)| {
                            (
                                *c,
                                e.map_or(Said::Nothing, |e| said(&e.conditions, type_)),
                                true,
                            )
                        })
                        .collect()
                };
                vec![
                    condition(
                        previous,
                        gw::ACCEPTED,
                        every(gw::ACCEPTED, "accepted", &says(gw::ACCEPTED)),
                        generation,
                        now,
                    ),
                    condition(
                        previous,
                        gw::RESOLVED_REFS,
                        every(gw::RESOLVED_REFS, "resolved", &says(gw::RESOLVED_REFS)),
                        generation,
                        now,
                    ),
                ]
            }
        };
        ours.push(ParentStatus {
            parent_ref: parent.clone(),
            controller_name: gw::CONTROLLER_NAME.into(),
            conditions,
        });
    }
    existing
        .iter()
        .filter(|p| p.controller_name != gw::CONTROLLER_NAME)
        .cloned()
        .chain(ours)
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use k8s_openapi::jiff::Timestamp;
    use proptest::prelude::*;

    use super::*;

    fn at(seconds: i64) -> Time {
        Time(Timestamp::from_second(seconds).unwrap())
    }

    fn cond(type_: &str, status: &str, reason: &str) -> Condition {
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message: String::new(),
            last_transition_time: at(1),
            observed_generation: Some(1),
        }
    }

    fn leaf_status(addresses: &[&str], programmed: Option<&str>) -> GatewayStatus {
        let mut conditions = vec![cond(gw::ACCEPTED, "True", "Accepted")];
        if let Some(p) = programmed {
            let reason = if p == "True" {
                "Programmed"
            } else {
                "AddressNotAssigned"
            };
            conditions.push(cond(gw::PROGRAMMED, p, reason));
        }
        GatewayStatus {
            addresses: Some(
                addresses
                    .iter()
                    .map(|a| GatewayStatusAddresses {
                        r#type: Some("IPAddress".into()),
                        value: a.to_string(),
                    })
                    .collect(),
            ),
            conditions: Some(conditions),
            listeners: None,
        }
    }

    fn root() -> Gateway {
        let mut g: Gateway = serde_json::from_value(serde_json::json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": "gw", "namespace": "shop", "generation": 4},
            "spec": {"gatewayClassName": "c", "listeners": [
                {"name": "web", "port": 80, "protocol": "HTTP"}
            ]}
        }))
        .unwrap();
        g.status = None;
        g
    }

    fn find<'a>(conditions: &'a [Condition], type_: &str) -> &'a Condition {
        conditions.iter().find(|c| c.type_ == type_).unwrap()
    }

    #[test]
    fn addresses_of_programmed_healthy_clusters_and_conditions_naming_the_others() {
        let east = leaf_status(&["10.0.0.2", "10.0.0.1"], Some("True"));
        let west = leaf_status(&["10.0.0.1"], Some("True"));
        let north = leaf_status(&["10.0.0.9"], Some("True"));
        let south = leaf_status(&["10.0.0.7"], Some("False"));
        let leaves = [
            LeafGateway {
                cluster: "east",
                healthy: true,
                status: Some(&east),
            },
            LeafGateway {
                cluster: "west",
                healthy: true,
                status: Some(&west),
            },
            LeafGateway {
                cluster: "north",
                healthy: false,
                status: Some(&north),
            },
            LeafGateway {
                cluster: "south",
                healthy: true,
                status: Some(&south),
            },
            LeafGateway {
                cluster: "up",
                healthy: true,
                status: None,
            },
        ];
        let status = gateway_status(&root(), &leaves, &at(100));
        let values: Vec<_> = status
            .addresses
            .iter()
            .flatten()
            .map(|a| a.value.as_str())
            .collect();
        assert_eq!(values, ["10.0.0.1", "10.0.0.2"]);
        let conditions = status.conditions.unwrap();
        let programmed = find(&conditions, gw::PROGRAMMED);
        assert_eq!(programmed.status, "True");
        assert_eq!(
            programmed.message,
            "programmed in east, west; not in north (unhealthy), south (AddressNotAssigned), up (no status yet)"
        );
        assert_eq!(programmed.observed_generation, Some(4));
        let accepted = find(&conditions, gw::ACCEPTED);
        assert_eq!(
            (accepted.status.as_str(), accepted.reason.as_str()),
            ("Unknown", gw::PENDING)
        );
        assert_eq!(accepted.message, "not accepted in up (no status yet)");
    }

    #[test]
    fn nothing_programmed_or_placed() {
        let south = leaf_status(&["10.0.0.7"], Some("False"));
        let leaves = [LeafGateway {
            cluster: "south",
            healthy: true,
            status: Some(&south),
        }];
        let status = gateway_status(&root(), &leaves, &at(100));
        let conditions = status.conditions.clone().unwrap();
        let programmed = find(&conditions, gw::PROGRAMMED);
        assert_eq!(
            (programmed.status.as_str(), programmed.reason.as_str()),
            ("False", "AddressNotAssigned")
        );
        assert_eq!(status.addresses, Some(vec![]));
        assert_eq!(find(&conditions, gw::ACCEPTED).status, "True");

        let status = gateway_status(&root(), &[], &at(100));
        let conditions = status.conditions.unwrap();
        assert_eq!(find(&conditions, gw::PROGRAMMED).reason, "NoResources");
        assert_eq!(find(&conditions, gw::ACCEPTED).status, "Unknown");
    }

    #[test]
    fn transition_times_move_only_with_the_status() {
        let east = leaf_status(&["10.0.0.1"], Some("True"));
        let leaves = [LeafGateway {
            cluster: "east",
            healthy: true,
            status: Some(&east),
        }];
        let mut root = root();
        root.status = Some(gateway_status(&root, &leaves, &at(100)));
        let again = gateway_status(&root, &leaves, &at(200));
        let conditions = again.conditions.unwrap();
        assert_eq!(
            find(&conditions, gw::PROGRAMMED).last_transition_time,
            at(100)
        );
        let down = [LeafGateway {
            healthy: false,
            ..leaves[0]
        }];
        let later = gateway_status(&root, &down, &at(300));
        let conditions = later.conditions.unwrap();
        assert_eq!(find(&conditions, gw::PROGRAMMED).status, "False");
        assert_eq!(
            find(&conditions, gw::PROGRAMMED).last_transition_time,
            at(300)
        );
        assert_eq!(
            find(&conditions, gw::ACCEPTED).last_transition_time,
            at(100)
        );
    }

    #[test]
    fn listeners_are_summarised_by_name() {
        let listener = |attached: i32, kinds: &[&str], programmed: &str| {
            serde_json::from_value::<GatewayStatusListeners>(serde_json::json!({
                "name": "web", "attachedRoutes": attached,
                "supportedKinds": kinds.iter().map(|k| serde_json::json!({"kind": k})).collect::<Vec<_>>(),
                "conditions": [
                    {"type": "Accepted", "status": "True", "reason": "Accepted", "message": "",
                     "lastTransitionTime": "2026-01-01T00:00:00Z"},
                    {"type": "Programmed", "status": programmed, "reason": "Programmed", "message": "",
                     "lastTransitionTime": "2026-01-01T00:00:00Z"},
                    {"type": "ResolvedRefs", "status": "True", "reason": "ResolvedRefs", "message": "",
                     "lastTransitionTime": "2026-01-01T00:00:00Z"}
                ]
            }))
            .unwrap()
        };
        let mut east = leaf_status(&[], Some("True"));
        east.listeners = Some(vec![listener(2, &["HTTPRoute", "GRPCRoute"], "True")]);
        let mut west = leaf_status(&[], Some("True"));
        west.listeners = Some(vec![listener(3, &["HTTPRoute"], "False")]);
        let leaves = [
            LeafGateway {
                cluster: "east",
                healthy: true,
                status: Some(&east),
            },
            LeafGateway {
                cluster: "west",
                healthy: true,
                status: Some(&west),
            },
        ];
        let status = gateway_status(&root(), &leaves, &at(100));
        let listeners = status.listeners.unwrap();
        assert_eq!(listeners.len(), 1);
        let web = &listeners[0];
        assert_eq!(web.attached_routes, 3);
        let kinds: Vec<_> = web
            .supported_kinds
            .iter()
            .map(|k| k.kind.as_str())
            .collect();
        assert_eq!(kinds, ["HTTPRoute"]);
        assert_eq!(find(&web.conditions, gw::ACCEPTED).status, "True");
        assert_eq!(find(&web.conditions, gw::RESOLVED_REFS).status, "True");
        let programmed = find(&web.conditions, gw::PROGRAMMED);
        assert_eq!(programmed.status, "True");
        assert_eq!(
            programmed.message,
            "programmed in east; not in west (Programmed)"
        );
    }

    fn parent(name: &str) -> ParentRef {
        ParentRef {
            group: Some(gw::GROUP.into()),
            kind: Some(gw::GATEWAY.into()),
            name: name.into(),
            ..Default::default()
        }
    }

    fn entry(parent: ParentRef, controller: &str, conditions: Vec<Condition>) -> ParentStatus {
        ParentStatus {
            parent_ref: parent,
            controller_name: controller.into(),
            conditions,
        }
    }

    #[test]
    fn route_parents_per_parent_ref() {
        let gateways: GatewayPlacement = [(
            ("shop".to_string(), "gw".to_string()),
            BTreeSet::from(["east".to_string(), "west".to_string()]),
        )]
        .into_iter()
        .collect();
        let service = ParentRef {
            group: Some(String::new()),
            kind: Some("Service".into()),
            name: "svc".into(),
            ..Default::default()
        };
        let parents = [parent("gw"), parent("missing"), service, parent("gw")];
        // Implementations echo the parentRef without the defaults, too.
        let east = [entry(
            ParentRef {
                name: "gw--east".into(),
                ..Default::default()
            },
            "traefik.io/gateway-controller",
            vec![
                cond(gw::ACCEPTED, "True", "Accepted"),
                cond(gw::RESOLVED_REFS, "True", "ResolvedRefs"),
            ],
        )];
        let west = [entry(
            leaf_parent_ref(&parent("gw"), "west"),
            "traefik.io/gateway-controller",
            vec![cond(gw::ACCEPTED, "False", "NoMatchingListenerHostname")],
        )];
        let leaves = [
            LeafRoute {
                cluster: "east",
                parents: &east,
            },
            LeafRoute {
                cluster: "west",
                parents: &west,
            },
        ];
        let existing = [
            entry(parent("gw"), "mesh.example/controller", vec![]),
            entry(parent("old"), gw::CONTROLLER_NAME, vec![]),
        ];
        let merged = route_parents(
            "shop",
            &parents,
            &gateways,
            &leaves,
            &existing,
            Some(2),
            &at(5),
        );
        let names: Vec<_> = merged
            .iter()
            .map(|p| (p.controller_name.as_str(), p.parent_ref.name.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("mesh.example/controller", "gw"),
                (gw::CONTROLLER_NAME, "gw"),
                (gw::CONTROLLER_NAME, "missing"),
            ]
        );
        let gw_entry = &merged[1];
        let accepted = find(&gw_entry.conditions, gw::ACCEPTED);
        assert_eq!(
            (accepted.status.as_str(), accepted.reason.as_str()),
            ("False", "NoMatchingListenerHostname")
        );
        assert_eq!(
            accepted.message,
            "not accepted in west (NoMatchingListenerHostname)"
        );
        let resolved = find(&gw_entry.conditions, gw::RESOLVED_REFS);
        assert_eq!(
            (resolved.status.as_str(), resolved.message.as_str()),
            ("Unknown", "not resolved in west (no status yet)")
        );
        let missing = find(&merged[2].conditions, gw::ACCEPTED);
        assert_eq!(
            (missing.status.as_str(), missing.reason.as_str()),
            ("False", gw::NO_MATCHING_PARENT)
        );
        assert_eq!(missing.observed_generation, Some(2));
    }

    proptest! {
        /// Addresses are sorted and unique, and exactly those of the
        /// programmed leaves of healthy clusters; Programmed is true exactly
        /// when there is such a leaf.
        #[test]
        fn addresses_are_the_sorted_union_of_programmed_healthy_leaves(
            leaves in prop::collection::vec(
                (any::<bool>(), any::<bool>(), prop::collection::vec(0u8..6, 0..3)),
                0..5,
            ),
        ) {
            let statuses: Vec<GatewayStatus> = leaves
                .iter()
                .map(|(_, programmed, addrs)| {
                    let a: Vec<String> = addrs.iter().map(|i| format!("10.0.0.{i}")).collect();
                    let a: Vec<&str> = a.iter().map(String::as_str).collect();
                    leaf_status(&a, Some(if *programmed { "True" } else { "False" }))
                })
                .collect();
            let names: Vec<String> = (0..leaves.len()).map(|i| format!("c{i}")).collect();
            let views: Vec<LeafGateway> = leaves
                .iter()
                .zip(&statuses)
                .zip(&names)
                .map(|(((healthy, _, _), s), n)| LeafGateway { cluster: n, healthy: *healthy, status: Some(s) })
                .collect();
            let status = gateway_status(&root(), &views, &at(1));
            let got: Vec<String> = status.addresses.unwrap().into_iter().map(|a| a.value).collect();
            let want: BTreeSet<String> = leaves
                .iter()
                .filter(|(h, p, _)| *h && *p)
                .flat_map(|(_, _, a)| a.iter().map(|i| format!("10.0.0.{i}")))
                .collect();
            prop_assert_eq!(got, want.into_iter().collect::<Vec<_>>());
            let programmed = leaves.iter().any(|(h, p, _)| *h && *p);
            let conditions = status.conditions.unwrap();
            prop_assert_eq!(find(&conditions, gw::PROGRAMMED).status == "True", programmed);
        }
    }
}
