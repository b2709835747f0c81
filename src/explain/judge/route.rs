//! The hops of a route root that differ from an Ingress's (pure): a route
//! is placed where its parent Gateways are (a parentRef naming no Gateway
//! is the controller's `NoMatchingParent`), its status is `status.parents`,
//! its leaves are served when the clusters' implementation accepts them,
//! and its names are published through its parent Gateways' GlobalIngresses.

use std::collections::BTreeSet;

use kube::ResourceExt;

use super::common::{condition_text, find, list, targets};
use crate::controller::decide::Plan;
use crate::controller::kind::RootKind;
use crate::controller::kinds::gateway::GatewayWorld;
use crate::controller::kinds::gateway::root_gateway::route_names;
use crate::explain::facts::{Facts, Published};
use crate::explain::report::{Hop, Item, Verdict, hop};
use crate::gateway::route::{ParentRef, ParentStatus, Route};
use crate::gateway_api::gateway::Gateway;
use crate::labels::{conditions, gateway_api as gw};

/// `parentRef <Kind> namespace/name`, as a subject.
fn parent_subject(parent: &ParentRef, route_namespace: &str) -> String {
    let ns = parent.namespace.as_deref().unwrap_or(route_namespace);
    let kind = parent.kind.as_deref().unwrap_or(gw::GATEWAY);
    let section = parent
        .section_name
        .as_ref()
        .map(|s| format!(" (section {s})"))
        .unwrap_or_default();
    format!("parentRef {kind} {ns}/{}{section}", parent.name)
}

/// Its parent Gateways that are roots of kcp-ingress's class, in order, unique.
pub(super) fn parent_gateways<R>(route: &R, world: &GatewayWorld) -> Vec<(String, String)>
where
    R: Route + RootKind<World = GatewayWorld>,
{
    let ns = Route::meta(route).namespace.clone().unwrap_or_default();
    let mut out: Vec<(String, String)> = Vec::new();
    for key in route.parent_refs().iter().filter_map(|p| p.gateway(&ns)) {
        let ours = world.gateway(&key).is_some_and(|g| {
            <Gateway as RootKind>::is_root(&g) && <Gateway as RootKind>::is_ours(&g, world)
        });
        if ours && !out.contains(&key) {
            out.push(key);
        }
    }
    out
}

/// Its names as its parent Gateways publish them (the controller's
/// `route_names`: accepted parentRefs, hostnames ∩ listeners).
pub(super) fn published<R>(route: &R, facts: &Facts<R>) -> Vec<Published>
where
    R: Route + RootKind<World = GatewayWorld>,
{
    let mut out = BTreeSet::new();
    for parent in &facts.parents {
        let Some(gateway) = facts.world.gateway(&parent.gateway) else {
            continue;
        };
        for host in route_names(route, &gateway, &parent.gateway) {
            out.insert(Published {
                host,
                global: (parent.gateway.0.clone(), parent.global_name.clone()),
            });
        }
    }
    out.into_iter().collect()
}

/// Each parent's Accepted and ResolvedRefs, as `parents` reports them.
fn parents_report(parents: &[ParentStatus]) -> Result<String, String> {
    let mut accepted = Vec::new();
    for p in parents {
        for type_ in [gw::ACCEPTED, gw::RESOLVED_REFS] {
            match find(&p.conditions, type_) {
                None => {
                    return Err(format!(
                        "parent {}: {type_} not reported (by {})",
                        p.parent_ref.name, p.controller_name
                    ));
                }
                Some(c) if c.status != "True" => {
                    return Err(format!(
                        "parent {}: {} (by {})",
                        p.parent_ref.name,
                        condition_text(c),
                        p.controller_name
                    ));
                }
                Some(_) => {}
            }
        }
        accepted.push(p.parent_ref.name.clone());
    }
    Ok(format!(
        "Accepted and ResolvedRefs by {}",
        accepted.join(", ")
    ))
}

/// A leaf route is served when the cluster's implementation accepted it
/// on its parents and resolved its references (its `status.parents`).
pub(super) fn leaf_report<R: Route>(leaf: &R) -> Result<String, String> {
    let parents = leaf.parents();
    if parents.is_empty() {
        return Err(
            "the cluster's Gateway API implementation reported no status.parents on the leaf \
             route (yet)"
                .to_string(),
        );
    }
    parents_report(&parents)
}

/// Where its parent Gateways are placed; each parentRef judged.
pub(super) fn placement_hop<R>(route: &R, facts: &Facts<R>, plan: &Plan<R>) -> Hop
where
    R: Route + RootKind<World = GatewayWorld>,
{
    let ns = &facts.namespace;
    let world = &facts.world;
    let placed = world.placement_of_parents(route, &facts.clusters);
    let mut items = Vec::new();
    for parent in route.parent_refs() {
        let subject = parent_subject(&parent, ns);
        let Some(key) = parent.gateway(ns) else {
            items.push(Item::skip(
                subject,
                "not a Gateway: kcp-ingress leaves it to its implementation",
            ));
            continue;
        };
        // The controller's own report of this parentRef, if it has one.
        let problem = plan.problems.iter().find(|p| {
            p.reason == gw::NO_MATCHING_PARENT
                && p.message.contains(&format!("{}/{}", key.0, key.1))
        });
        let item = match world.gateway(&key) {
            None => Item::fail(
                subject,
                match problem {
                    Some(p) => format!("{}: {} (no such Gateway exists)", p.reason, p.message),
                    None => format!(
                        "{}: no Gateway {}/{} exists",
                        gw::NO_MATCHING_PARENT,
                        key.0,
                        key.1
                    ),
                },
            ),
            Some(g) if !<Gateway as RootKind>::is_root(&g) => Item::skip(
                subject,
                "a leaf Gateway, not a root: kcp-ingress does not place routes on it",
            ),
            Some(g) if !world.class_is_ours(&g.spec.gateway_class_name) => Item::skip(
                subject,
                format!(
                    "of GatewayClass {:?}, not kcp-ingress's ({}): left to its implementation",
                    g.spec.gateway_class_name,
                    gw::CONTROLLER_NAME
                ),
            ),
            Some(_) => match placed.get(&key).filter(|t| !t.is_empty()) {
                Some(clusters) => Item::pass(
                    subject,
                    format!(
                        "placed on {}",
                        clusters.iter().cloned().collect::<Vec<_>>().join(", ")
                    ),
                ),
                None => Item::fail(
                    subject,
                    match problem {
                        Some(p) => format!("{}: {}", p.reason, p.message),
                        None => format!(
                            "{}: the Gateway is placed on no cluster",
                            gw::NO_MATCHING_PARENT
                        ),
                    },
                ),
            },
        };
        items.push(item);
    }
    let on = targets(plan);
    if on.is_empty() && !items.iter().any(|i| i.verdict == Verdict::Fail) {
        items.insert(
            0,
            Item::fail(
                "parentRefs",
                "name no Gateway of kcp-ingress's that is placed: the route goes nowhere",
            ),
        );
    }
    Hop::of_items(
        hop::PLACEMENT,
        format!("where its parent Gateways are: {}", list(on)),
        items,
    )
    .hint(format!("kubectl get gateways -n {ns} -o wide"))
}

/// Its `status.parents`: kcp-ingress's entries, as the controller merges them.
pub(super) fn root_status_hop<R>(route: &R, plan: &Plan<R>) -> Hop
where
    R: Route + RootKind<World = GatewayWorld>,
{
    let (ns, name) = (route.namespace().unwrap_or_default(), route.name_any());
    let subject = format!("{} {ns}/{name} status.parents", R::KIND);
    let hint = format!("kubectl get {} -n {ns} {name} -o yaml", R::plural(&()));
    let ours: Vec<ParentStatus> = route
        .parents()
        .into_iter()
        .filter(|p| p.controller_name == gw::CONTROLLER_NAME)
        .collect();
    let item = if plan.root_status.is_some() {
        Item::fail(
            &subject,
            "not what its leaves merge to yet (the controller writes it)",
        )
    } else if ours.is_empty() {
        Item::fail(
            &subject,
            format!(
                "no entry of {} (the controller writes them)",
                gw::CONTROLLER_NAME
            ),
        )
    } else {
        match parents_report(&ours) {
            Ok(text) => Item::pass(&subject, text),
            Err(why) => Item::fail(&subject, why),
        }
    };
    Hop::of_items(
        hop::ROOT_STATUS,
        format!("{} parents accepted", ours.len()),
        vec![item],
    )
    .hint(hint)
}

/// A route has no GlobalIngress: its names are in its parent Gateways'.
pub(super) fn global_hop<R>(route: &R, facts: &Facts<R>) -> Hop
where
    R: Route + RootKind<World = GatewayWorld>,
{
    let published = published(route, facts);
    let mut items = Vec::new();
    let mut hint = None;
    for parent in &facts.parents {
        let (gw_ns, gw_name) = &parent.gateway;
        let subject = format!("GlobalIngress {gw_ns}/{}", parent.global_name);
        let look = format!(
            "kubectl get globalingress -n {gw_ns} {} -o yaml",
            parent.global_name
        );
        let Some(global) = &parent.global else {
            items.push(Item::fail(
                subject,
                format!("does not exist (the controller makes it with Gateway {gw_ns}/{gw_name})"),
            ));
            hint.get_or_insert(look);
            continue;
        };
        let names: Vec<String> = published
            .iter()
            .filter(|p| p.global == (gw_ns.clone(), parent.global_name.clone()))
            .map(|p| p.host.clone())
            .collect();
        let missing: Vec<String> = names
            .iter()
            .filter(|h| !global.spec.hosts.contains(h))
            .cloned()
            .collect();
        items.push(if names.is_empty() {
            Item::fail(
                &subject,
                format!(
                    "not applicable: a route's records belong to its Gateway's GlobalIngress \
                     {gw_ns}/{}; but none of the route's hostnames is published through it (not \
                     Accepted on Gateway {gw_ns}/{gw_name}, or no hostname its listeners admit)",
                    parent.global_name
                ),
            )
        } else if missing.is_empty() {
            Item::pass(
                &subject,
                format!(
                    "not applicable: a route's records belong to its Gateway's GlobalIngress \
                     {gw_ns}/{}; its names {} are in its spec.hosts",
                    parent.global_name,
                    list(&names)
                ),
            )
        } else {
            Item::fail(
                &subject,
                format!(
                    "spec.hosts lacks the route's names {} (it has {})",
                    list(&missing),
                    list(&global.spec.hosts)
                ),
            )
        });
        let status = global.status.clone().unwrap_or_default();
        for (type_, want) in [
            (conditions::READY, "True"),
            (conditions::DEPENDENCIES_READY, "True"),
            (conditions::DEGRADED, "False"),
        ] {
            let at = format!("{subject} {type_}");
            items.push(match find(&status.conditions, type_) {
                None => Item::fail(at, "not reported (is the controller running?)"),
                Some(c) if c.status == want => Item::pass(at, condition_text(c)),
                Some(c) => Item::fail(at, condition_text(c)),
            });
        }
        if items.iter().any(|i| i.verdict == Verdict::Fail) {
            hint.get_or_insert(look);
        }
    }
    if facts.parents.is_empty() {
        items.push(Item::fail(
            "parent Gateways",
            "none of kcp-ingress's: no GlobalIngress publishes the route's names",
        ));
    }
    let hop = Hop::of_items(
        hop::GLOBAL,
        "its names are in its parent Gateways' GlobalIngresses",
        items,
    );
    match hint {
        Some(hint) => hop.hint(hint),
        None => hop,
    }
}
