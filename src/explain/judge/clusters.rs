//! The hops read in and about the placed clusters (pure): the copies
//! downstream, and each cluster's health and load-balancer address.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use super::common::{condition_text, targets};
use super::kinds::Explained;
use crate::apis::Cluster;
use crate::controller::decide::Plan;
use crate::controller::kind::RootKind;
use crate::controller::naming;
use crate::explain::facts::{CopyState, Downstream, Facts};
use crate::explain::report::{Hop, Item, Verdict, hop};
use crate::labels::{self, conditions};

pub(super) fn downstream_hop<K: RootKind>(facts: &Facts<K>, plan: &Plan<K>) -> Hop {
    let (ns, name) = (&facts.namespace, &facts.name);
    let mut items = Vec::new();
    let mut hint = None;
    for cluster in targets(plan) {
        let cluster_hint = || {
            format!("kubectl get cluster {cluster} -o yaml (conditions DownstreamReachable, Ready)")
        };
        // What the syncer reports on the leaf, in either mode.
        let leaf = facts
            .objects
            .get(&naming::leaf_key(ns, name, cluster))
            .map(|l| l.annotations().clone())
            .unwrap_or_default();
        for (key, what) in [
            (labels::conflict_annotation(cluster), "conflict"),
            (
                labels::sync_error_annotation(cluster),
                "cannot sync the leaf",
            ),
        ] {
            if let Some(value) = leaf.get(&key) {
                items.push(Item::fail(
                    format!("{cluster}: leaf"),
                    format!("{what}: {value}"),
                ));
                hint.get_or_insert_with(cluster_hint);
            }
        }
        match facts.downstream.get(cluster) {
            None => items.push(Item::skip(cluster.as_str(), "not looked at")),
            Some(Downstream::PullMode) => items.push(Item::skip(
                cluster.as_str(),
                format!(
                    "pull mode (no kubeconfig Secret): its syncer reports in the Cluster's \
                     status; `kubectl get cluster {cluster} -o yaml`"
                ),
            )),
            Some(Downstream::NoClient(why)) => {
                items.push(Item::fail(
                    cluster.as_str(),
                    format!("its kubeconfig cannot be used: {why}"),
                ));
                hint.get_or_insert_with(cluster_hint);
            }
            Some(Downstream::Unreachable(why)) => {
                items.push(Item::fail(
                    cluster.as_str(),
                    format!("its API server does not answer: {why}"),
                ));
                hint.get_or_insert_with(cluster_hint);
            }
            Some(Downstream::Reached(copies)) => {
                for copy in copies {
                    let subject = format!("{cluster}: {}", copy.subject);
                    let item = match &copy.state {
                        CopyState::Current => {
                            Item::pass(subject, "present, the syncer's, up to date")
                        }
                        CopyState::Missing => {
                            Item::fail(subject, "missing (the syncer creates it)")
                        }
                        CopyState::NotOurs => Item::fail(
                            subject,
                            format!(
                                "an object kcp-ingress does not manage is in the way (no {}={},{}={cluster} labels); the syncer leaves it alone",
                                labels::MANAGED_BY_LABEL,
                                labels::MANAGED_BY_VALUE,
                                labels::SYNCER_LABEL
                            ),
                        ),
                        CopyState::Stale => Item::fail(
                            subject,
                            "not what the syncer applies now (an edit upstream not copied yet, or one made downstream)",
                        ),
                        CopyState::Error(e) => Item::fail(subject, format!("cannot read it: {e}")),
                    };
                    if item.verdict == Verdict::Fail {
                        hint.get_or_insert_with(cluster_hint);
                    }
                    items.push(item);
                }
            }
        }
    }
    let hop = Hop::of_items(
        hop::DOWNSTREAM,
        "every copy present and up to date where it can be seen",
        items,
    );
    match hint {
        Some(hint) => hop.hint(hint),
        None => hop,
    }
}

fn health_text(cluster: &Cluster, facts_now: k8s_openapi::jiff::Timestamp) -> String {
    let ready = cluster
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == conditions::READY))
        .map_or_else(|| "Ready not reported".to_string(), condition_text);
    let beat = cluster
        .status
        .as_ref()
        .and_then(|s| s.last_heartbeat_time.as_ref())
        .map_or_else(
            || "no heartbeat".to_string(),
            |Time(t)| {
                let secs = (facts_now.as_second() - t.as_second()).max(0);
                format!("last heartbeat {secs}s ago")
            },
        );
    format!("{ready}; {beat}")
}

pub(super) fn clusters_hop<K: Explained>(facts: &Facts<K>, plan: &Plan<K>) -> Hop {
    let (ns, name) = (&facts.namespace, &facts.name);
    let mut items = Vec::new();
    let mut hint = None;
    for cluster in targets(plan) {
        let Some(c) = facts.clusters.iter().find(|c| c.name_any() == *cluster) else {
            continue;
        };
        let leaf = facts.objects.get(&naming::leaf_key(ns, name, cluster));
        let subject = format!("Cluster {cluster}");
        if !c.is_healthy(facts.now, facts.health_threshold) {
            items.push(Item::fail(
                subject,
                format!("not healthy: {}", health_text(c, facts.now)),
            ));
            hint.get_or_insert_with(|| format!("kubectl get cluster {cluster} -o yaml"));
        } else if let Some(why) = match leaf {
            None => Some("there is no leaf (yet)".to_string()),
            Some(leaf) => K::leaf_report(leaf).err(),
        } {
            items.push(Item::fail(subject, format!("healthy, but {why}")));
            hint.get_or_insert_with(|| {
                let (leaf_ns, leaf_name) = naming::leaf_key(ns, name, cluster);
                format!(
                    "kubectl get {} -n {leaf_ns} {leaf_name} -o yaml",
                    K::plural(&())
                )
            });
        } else {
            let shown = leaf.map(|l| K::leaf_report(l)).and_then(Result::ok);
            items.push(Item::pass(
                subject,
                format!("healthy; {}", shown.unwrap_or_default()),
            ));
        }
    }
    let hop = Hop::of_items(
        hop::CLUSTERS,
        "every placed cluster is healthy and has an address",
        items,
    );
    match hint {
        Some(hint) => hop.hint(hint),
        None => hop,
    }
}
