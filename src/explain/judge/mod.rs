//! Facts → hops (pure): each hop of a root's chain judged from what was
//! read, with the components' own functions (validation, placement, the
//! controller's `decide`, leaf names, the ownership registry), so that
//! `explain` expects exactly what they do. Generic over the root kind.

mod clusters;
mod common;
mod control_plane;
mod dns;
#[cfg(test)]
mod gateway_tests;
pub mod kinds;
mod route;
#[cfg(test)]
mod tests;

use self::clusters::{clusters_hop, downstream_hop};
use self::control_plane::{dependencies_hop, leaves_hop, root_hop};
use self::dns::{dns_answers_hop, dns_records_hop};
use self::kinds::Explained;
use super::facts::Facts;
use super::report::{Hop, Item, hop};
use crate::controller::decide::{self, Observed, Plan};
use crate::controller::dependencies::DepKey;
use crate::controller::kind::RootKind;

/// The hops of `facts`' root, in order. A root that does not exist has
/// only the first.
pub fn hops<K: Explained>(facts: &Facts<K>) -> Vec<Hop> {
    let kind = K::kind(&()).to_string();
    let (ns, name) = (&facts.namespace, &facts.name);
    let Some(root) = facts.root.as_ref() else {
        return vec![
            Hop::of_items(
                hop::ROOT,
                "",
                vec![Item::fail(
                    format!("{kind} {ns}/{name}"),
                    "not found in the control plane",
                )],
            )
            .hint(format!("kubectl get {} -n {ns}", K::plural(&()))),
        ];
    };
    let plan = plan(root, facts);
    vec![
        root_hop(root, &kind, &facts.world),
        K::placement_hop(root, facts, &plan),
        leaves_hop(facts, &plan),
        dependencies_hop(facts, &plan),
        downstream_hop(facts, &plan),
        clusters_hop(facts, &plan),
        K::root_status_hop(root, &plan),
        K::global_hop(root, facts),
        dns_records_hop(root, facts),
        dns_answers_hop(root, facts),
    ]
}

/// What the controller would decide now, from the same facts.
pub(crate) fn plan<K: RootKind>(root: &K, facts: &Facts<K>) -> Plan<K> {
    let object = |ns: &str, name: &str| {
        facts
            .objects
            .get(&(ns.to_string(), name.to_string()))
            .cloned()
    };
    let exists = |dep: &DepKey| facts.dependencies.iter().any(|d| &d.key == dep && d.exists);
    let conflicts = |dep: &DepKey| -> Vec<String> {
        facts
            .dependencies
            .iter()
            .filter(|d| &d.key == dep)
            .flat_map(|d| d.copies.iter())
            .filter(|(_, c)| c.conflict.is_some())
            .map(|(cluster, _)| cluster.clone())
            .collect()
    };
    decide::decide(&Observed {
        root,
        clusters: &facts.clusters,
        world: &facts.world,
        object: &object,
        leaves: &facts.labelled_leaves,
        exists: &exists,
        conflicts: &conflicts,
        global: facts.global.as_ref(),
        now: facts.now,
        health_threshold: facts.health_threshold,
        partial_since: None,
        // Only how a GlobalIngress is created depends on it: explain
        // judges existing objects.
        glbc_live: false,
        windows: decide::ReportWindows::default(),
        // Explain runs beside no syncer.
        copies: &|_, _| crate::syncer::copied::CopyEvidence::Unknown,
    })
}
