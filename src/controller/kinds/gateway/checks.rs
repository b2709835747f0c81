//! Bad input of Gateway API roots (pure), reported on the root the way a
//! Gateway API implementation reports it, with the spec's reasons:
//!
//! | input | on the root |
//! |---|---|
//! | no placed cluster offers a GatewayClass | Gateway `Accepted=False` `NoResources` (and `Programmed=False`) |
//! | two listeners that select by the same hostname on one port (HTTPS and TLS both by SNI) | listener `Conflicted=True` `HostnameConflict`; Gateway `Accepted=False` `ListenersNotValid` |
//! | a listener's certificate Secret is missing | listener `ResolvedRefs=False` `InvalidCertificateRef` |
//! | a certificate Secret or backend Service in another namespace, no ReferenceGrant | listener / route parent `ResolvedRefs=False` `RefNotPermitted` |
//! | a route parentRef naming no placed Gateway | route parent `Accepted=False` `NoMatchingParent` (by `gateway::merge`) |
//!
//! Each is also a [`Problem`], for the root's Event.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::controller::dependencies::{DepKey, DepKind};
use crate::controller::kind::Problem;
use crate::controller::placement::Placement;
use crate::gateway::hostnames::normalize;
use crate::gateway::route::{ParentRef, ParentStatus};
use crate::gateway_api::gateway::{Gateway, GatewayStatus};
use crate::labels::gateway_api as gw;

/// The start of the reason a placed cluster is skipped for a Gateway:
/// it offers no GatewayClass.
pub const NO_CLASS: &str = "offers no GatewayClass";

/// The Secrets the listeners of `gateway` (in `namespace`) refer to, as
/// `(listener, (namespace, name))`.
pub fn certificate_refs(gateway: &Gateway, namespace: &str) -> Vec<(String, (String, String))> {
    gateway
        .spec
        .listeners
        .iter()
        .flat_map(|l| {
            l.tls
                .iter()
                .flat_map(|t| t.certificate_refs.iter().flatten())
                .filter(|r| {
                    r.group.as_deref().unwrap_or("").is_empty()
                        && r.kind.as_deref().unwrap_or("Secret") == "Secret"
                })
                .map(|r| {
                    let ns = r.namespace.clone().unwrap_or_else(|| namespace.to_string());
                    (l.name.clone(), (ns, r.name.clone()))
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// What is wrong with a root Gateway.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GatewayFindings {
    /// No placed cluster offers a class: the message.
    pub no_class: Option<String>,
    /// Placed clusters that offer no class (others do).
    pub unclassed: Vec<String>,
    /// Listeners whose hostname conflicts with another's.
    pub conflicted: BTreeSet<String>,
    /// Listener → (reason, message) of a certificate reference that does
    /// not resolve.
    pub bad_certificates: BTreeMap<String, (&'static str, String)>,
}

/// The findings of the root Gateway `gateway` in `namespace`.
pub fn gateway_findings(
    gateway: &Gateway,
    namespace: &str,
    placement: Option<&Placement>,
    exists: &dyn Fn(&DepKey) -> bool,
    granted: &dyn Fn(&str, &str) -> bool,
) -> GatewayFindings {
    let mut findings = GatewayFindings::default();
    if let Some(p) = placement {
        let unclassed: Vec<String> = p
            .unusable
            .iter()
            .filter(|(_, why)| why.contains(NO_CLASS))
            .map(|(c, _)| c.clone())
            .collect();
        if p.targets.is_empty() {
            findings.no_class = Some(if unclassed.is_empty() {
                "no cluster is selected, so no cluster offers a GatewayClass".to_string()
            } else {
                format!(
                    "no placed cluster offers a GatewayClass (Cluster label {}): {}",
                    gw::CLASS_LABEL,
                    unclassed.join(", ")
                )
            });
        } else {
            findings.unclassed = unclassed;
        }
    }
    // Listeners that match requests on the same port by the same hostname
    // (the API server refuses equal port, protocol and hostname, but
    // HTTPS and TLS both select by SNI).
    let family = |protocol: &str| match protocol {
        "HTTPS" | "TLS" => "SNI".to_string(),
        other => other.to_string(),
    };
    let mut by_key: BTreeMap<(i32, String, String), Vec<String>> = BTreeMap::new();
    for l in &gateway.spec.listeners {
        let host = l.hostname.as_deref().map(normalize).unwrap_or_default();
        by_key
            .entry((l.port, family(&l.protocol), host))
            .or_default()
            .push(l.name.clone());
    }
    findings.conflicted = by_key
        .into_values()
        .filter(|names| names.len() > 1)
        .flatten()
        .collect();
    for (listener, (ns, name)) in certificate_refs(gateway, namespace) {
        if findings.bad_certificates.contains_key(&listener) {
            continue;
        }
        if !granted(&ns, &name) {
            findings.bad_certificates.insert(
                listener,
                (
                    gw::REF_NOT_PERMITTED,
                    format!("Secret {ns}/{name} is in another namespace and no ReferenceGrant there allows it"),
                ),
            );
        } else if !exists(&(DepKind::Secret, ns.clone(), name.clone())) {
            findings.bad_certificates.insert(
                listener,
                (
                    gw::INVALID_CERTIFICATE_REF,
                    format!("Secret {ns}/{name} does not exist"),
                ),
            );
        }
    }
    findings
}

/// The findings as problems, for Events.
pub fn gateway_problems(findings: &GatewayFindings) -> Vec<Problem> {
    let mut out = Vec::new();
    if let Some(message) = &findings.no_class {
        out.push(Problem {
            reason: gw::NO_RESOURCES,
            message: message.clone(),
        });
    }
    if !findings.conflicted.is_empty() {
        let names: Vec<&str> = findings.conflicted.iter().map(String::as_str).collect();
        out.push(Problem {
            reason: gw::HOSTNAME_CONFLICT,
            message: format!(
                "listeners {} select by the same hostname on the same port",
                names.join(", ")
            ),
        });
    }
    for (listener, (reason, message)) in &findings.bad_certificates {
        out.push(Problem {
            reason,
            message: format!("listener {listener}: {message}"),
        });
    }
    out
}

/// Sets the condition of `type_` in `conditions`, its transition time kept
/// from `previous` while its status stays.
#[allow(clippy::too_many_arguments)]
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    previous: &[Condition],
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: &Time,
) {
    let status = if status { "True" } else { "False" };
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map_or_else(|| now.clone(), |c| c.last_transition_time.clone());
    let condition = Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message,
        last_transition_time,
        observed_generation: generation,
    };
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => *c = condition,
        None => conditions.push(condition),
    }
}

/// `status` (merged from the leaves) with the findings of its Gateway
/// reported; `previous` is the root's current status.
pub fn overlay_gateway(
    status: &mut GatewayStatus,
    findings: &GatewayFindings,
    previous: Option<&GatewayStatus>,
    generation: Option<i64>,
    now: &Time,
) {
    let empty = Vec::new();
    let prev = previous
        .and_then(|s| s.conditions.as_ref())
        .unwrap_or(&empty);
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    if let Some(message) = &findings.no_class {
        for type_ in [gw::ACCEPTED, gw::PROGRAMMED] {
            let (m, r) = (message.clone(), gw::NO_RESOURCES);
            set_condition(conditions, prev, type_, false, r, m, generation, now);
        }
    } else if !findings.conflicted.is_empty() {
        let names: Vec<&str> = findings.conflicted.iter().map(String::as_str).collect();
        let message = format!("listeners {} conflict", names.join(", "));
        let r = gw::LISTENERS_NOT_VALID;
        set_condition(
            conditions,
            prev,
            gw::ACCEPTED,
            false,
            r,
            message,
            generation,
            now,
        );
    }
    if !findings.unclassed.is_empty()
        && let Some(c) = conditions.iter_mut().find(|c| c.type_ == gw::PROGRAMMED)
    {
        c.message = format!(
            "{}; no leaf in cluster(s) {} (no Cluster label {})",
            c.message,
            findings.unclassed.join(", "),
            gw::CLASS_LABEL
        );
    }
    for listener in status.listeners.iter_mut().flatten() {
        let prev = previous
            .and_then(|s| s.listeners.as_ref())
            .and_then(|ls| ls.iter().find(|l| l.name == listener.name))
            .map_or(&empty, |l| &l.conditions);
        if findings.conflicted.contains(&listener.name) {
            let (r, m) = (
                gw::HOSTNAME_CONFLICT,
                "another listener selects by the same hostname on this port".to_string(),
            );
            set_condition(
                &mut listener.conditions,
                prev,
                gw::CONFLICTED,
                true,
                r,
                m,
                generation,
                now,
            );
        }
        if let Some((reason, message)) = findings.bad_certificates.get(&listener.name) {
            let m = message.clone();
            set_condition(
                &mut listener.conditions,
                prev,
                gw::RESOLVED_REFS,
                false,
                reason,
                m,
                generation,
                now,
            );
        }
    }
}

/// Our entries of a route's merged `status.parents` for the parentRefs in
/// `refused` (whose listeners take no route of its kind) reported
/// `Accepted=False`, `NotAllowedByListeners`, whatever the clusters say.
pub fn overlay_not_allowed(
    parents: &mut [ParentStatus],
    refused: &[ParentRef],
    kind: &str,
    previous: &[ParentStatus],
    generation: Option<i64>,
    now: &Time,
) {
    for entry in parents
        .iter_mut()
        .filter(|p| p.controller_name == gw::CONTROLLER_NAME && refused.contains(&p.parent_ref))
    {
        let empty = Vec::new();
        let prev = previous
            .iter()
            .find(|p| p.controller_name == gw::CONTROLLER_NAME && p.parent_ref == entry.parent_ref)
            .map_or(&empty, |p| &p.conditions);
        let message = format!("no listener selected by this parentRef takes a {kind}");
        set_condition(
            &mut entry.conditions,
            prev,
            gw::ACCEPTED,
            false,
            gw::NOT_ALLOWED_BY_LISTENERS,
            message,
            generation,
            now,
        );
    }
}

/// Our entries of a route's merged `status.parents` with a backend that
/// may not be referred to reported (`ResolvedRefs=False`, `RefNotPermitted`).
pub fn overlay_route(
    parents: &mut [ParentStatus],
    not_permitted: &[(String, String)],
    previous: &[ParentStatus],
    generation: Option<i64>,
    now: &Time,
) {
    if not_permitted.is_empty() {
        return;
    }
    let names: Vec<String> = not_permitted
        .iter()
        .map(|(ns, n)| format!("Service {ns}/{n}"))
        .collect();
    let message = format!(
        "{} in another namespace, and no ReferenceGrant there allows it",
        names.join(", ")
    );
    for entry in parents
        .iter_mut()
        .filter(|p| p.controller_name == gw::CONTROLLER_NAME)
    {
        let empty = Vec::new();
        let prev = previous
            .iter()
            .find(|p| p.controller_name == gw::CONTROLLER_NAME && p.parent_ref == entry.parent_ref)
            .map_or(&empty, |p| &p.conditions);
        let (r, m) = (gw::REF_NOT_PERMITTED, message.clone());
        set_condition(
            &mut entry.conditions,
            prev,
            gw::RESOLVED_REFS,
            false,
            r,
            m,
            generation,
            now,
        );
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::jiff::Timestamp;
    use serde_json::json;

    use super::*;

    fn gateway(listeners: serde_json::Value) -> Gateway {
        serde_json::from_value(json!({
            "metadata": {"name": "gw", "namespace": "shop", "generation": 3},
            "spec": {"gatewayClassName": "global", "listeners": listeners}
        }))
        .unwrap()
    }

    fn placement(targets: &[&str], unusable: &[&str]) -> Placement {
        Placement {
            targets: targets.iter().map(|s| s.to_string()).collect(),
            unusable: unusable
                .iter()
                .map(|c| (c.to_string(), format!("cluster {c} {NO_CLASS}")))
                .collect(),
            ..Placement::default()
        }
    }

    #[test]
    fn each_bad_listener_is_found_and_reported_with_the_spec_reasons() {
        let g = gateway(json!([
            {"name": "a", "port": 443, "protocol": "HTTPS", "hostname": "x.example.test",
             "tls": {"certificateRefs": [{"name": "missing"}]}},
            {"name": "b", "port": 443, "protocol": "TLS", "hostname": "X.example.test."},
            {"name": "c", "port": 443, "protocol": "HTTPS", "hostname": "y.example.test",
             "tls": {"certificateRefs": [{"name": "there"}, {"name": "far", "namespace": "other"}]}},
            {"name": "d", "port": 80, "protocol": "HTTP", "hostname": "x.example.test"}
        ]));
        let exists = |d: &DepKey| d.2 != "missing";
        let granted = |ns: &str, _: &str| ns == "shop";
        let p = placement(&["east"], &["west"]);
        let f = gateway_findings(&g, "shop", Some(&p), &exists, &granted);
        assert_eq!(f.no_class, None);
        assert_eq!(f.unclassed, ["west"]);
        assert_eq!(
            f.conflicted,
            BTreeSet::from(["a".to_string(), "b".to_string()])
        );
        assert_eq!(f.bad_certificates["a"].0, gw::INVALID_CERTIFICATE_REF);
        assert_eq!(f.bad_certificates["c"].0, gw::REF_NOT_PERMITTED);
        let reasons: Vec<&str> = gateway_problems(&f).iter().map(|p| p.reason).collect();
        assert_eq!(
            reasons,
            [
                gw::HOSTNAME_CONFLICT,
                gw::INVALID_CERTIFICATE_REF,
                gw::REF_NOT_PERMITTED
            ]
        );

        let now = Time(Timestamp::from_second(100).unwrap());
        let mut status: GatewayStatus = serde_json::from_value(json!({
            "conditions": [
                {"type": "Accepted", "status": "True", "reason": "Accepted", "message": "", "lastTransitionTime": "1970-01-01T00:00:10Z"},
                {"type": "Programmed", "status": "True", "reason": "Programmed", "message": "programmed in east", "lastTransitionTime": "1970-01-01T00:00:10Z"}
            ],
            "listeners": [
                {"name": "a", "attachedRoutes": 0, "supportedKinds": [], "conditions": []},
                {"name": "c", "attachedRoutes": 0, "supportedKinds": [], "conditions": []}
            ]
        }))
        .unwrap();
        overlay_gateway(&mut status, &f, None, Some(3), &now);
        let conditions = status.conditions.clone().unwrap();
        let accepted = conditions.iter().find(|c| c.type_ == gw::ACCEPTED).unwrap();
        assert_eq!(
            (accepted.status.as_str(), accepted.reason.as_str()),
            ("False", gw::LISTENERS_NOT_VALID)
        );
        assert_eq!(accepted.last_transition_time, now);
        let programmed = conditions
            .iter()
            .find(|c| c.type_ == gw::PROGRAMMED)
            .unwrap();
        assert!(programmed.message.ends_with(
            "no leaf in cluster(s) west (no Cluster label gateway.kcp-ingress.dev/class)"
        ));
        let listeners = status.listeners.clone().unwrap();
        let of = |n: &str, t: &str| {
            listeners
                .iter()
                .find(|l| l.name == n)
                .and_then(|l| l.conditions.iter().find(|c| c.type_ == t))
                .map(|c| (c.status.clone(), c.reason.clone()))
        };
        assert_eq!(
            of("a", gw::CONFLICTED),
            Some(("True".into(), gw::HOSTNAME_CONFLICT.into()))
        );
        assert_eq!(
            of("a", gw::RESOLVED_REFS),
            Some(("False".into(), gw::INVALID_CERTIFICATE_REF.into()))
        );
        assert_eq!(
            of("c", gw::RESOLVED_REFS),
            Some(("False".into(), gw::REF_NOT_PERMITTED.into()))
        );
        assert_eq!(of("c", gw::CONFLICTED), None);
    }

    #[test]
    fn no_class_anywhere_is_no_resources() {
        let g = gateway(json!([{"name": "a", "port": 80, "protocol": "HTTP"}]));
        let p = placement(&[], &["west"]);
        let f = gateway_findings(&g, "shop", Some(&p), &|_| true, &|_, _| true);
        assert!(f.no_class.as_deref().unwrap().ends_with(": west"));
        let now = Time(Timestamp::from_second(100).unwrap());
        let mut status = GatewayStatus::default();
        overlay_gateway(&mut status, &f, None, Some(3), &now);
        let reasons: Vec<(&str, &str, &str)> = status
            .conditions
            .iter()
            .flatten()
            .map(|c| (c.type_.as_str(), c.status.as_str(), c.reason.as_str()))
            .collect();
        assert_eq!(
            reasons,
            [
                (gw::ACCEPTED, "False", gw::NO_RESOURCES),
                (gw::PROGRAMMED, "False", gw::NO_RESOURCES)
            ]
        );
        assert_eq!(gateway_problems(&f)[0].reason, gw::NO_RESOURCES);
    }

    #[test]
    fn a_refused_backend_marks_our_parent_entries_only() {
        let now = Time(Timestamp::from_second(100).unwrap());
        let entry = |controller: &str| ParentStatus {
            parent_ref: crate::gateway::route::ParentRef {
                name: "gw".into(),
                ..Default::default()
            },
            controller_name: controller.into(),
            conditions: Vec::new(),
        };
        let mut parents = vec![entry(gw::CONTROLLER_NAME), entry("example.com/other")];
        overlay_route(
            &mut parents,
            &[("other".into(), "web".into())],
            &[],
            Some(1),
            &now,
        );
        assert_eq!(parents[0].conditions[0].reason, gw::REF_NOT_PERMITTED);
        assert!(parents[1].conditions.is_empty());
        let before = parents.clone();
        overlay_route(&mut parents, &[], &[], Some(1), &now);
        assert_eq!(parents, before);
    }
}
