//! The hops read in the control plane (pure): root, placement, leaves,
//! dependencies, the root's merged status and its GlobalIngress.

use kube::ResourceExt;

use super::common::{addresses_of, condition_text, list, targets};
use crate::controller::decide::Plan;
use crate::controller::dependencies::{DepKey, DepKind};
use crate::controller::kind::{self, RootKind};
use crate::controller::kinds::gateway::checks::NO_CLASS;
use crate::controller::naming;
use crate::explain::facts::Facts;
use crate::explain::report::{Hop, Item, Verdict, hop};
use crate::labels::{self, conditions};
use crate::mailbox;

pub(super) fn root_hop<K: RootKind>(root: &K, kind: &str, world: &K::World) -> Hop {
    let (ns, name) = (root.namespace().unwrap_or_default(), root.name_any());
    let subject = format!("{kind} {ns}/{name}");
    let mut items = Vec::new();
    if !K::is_root(root) {
        items.push(Item::fail(
            &subject,
            format!(
                "not a root: a leaf (it has the {} label) or in a namespace whose objects are \
                 never placed",
                labels::ROOT_LABEL
            ),
        ));
    }
    if K::is_root(root) && !K::is_ours(root, world) {
        items.push(Item::fail(
            &subject,
            format!(
                "not kcp-ingress's: a Gateway of a GatewayClass whose controllerName is not {}, \
                 or a route none of whose parentRefs names a Gateway of kcp-ingress's (or none)",
                labels::gateway_api::CONTROLLER_NAME
            ),
        ));
    }
    for problem in K::validate(root) {
        items.push(Item::fail(
            &subject,
            format!("{}: {}", problem.reason, problem.message),
        ));
    }
    let hosts = K::hosts(root, world);
    if items.is_empty() {
        items.push(Item::pass(
            &subject,
            format!("a valid root; hosts: {}", list(&hosts)),
        ));
    }
    Hop::of_items(hop::ROOT, format!("hosts: {}", list(&hosts)), items).hint(format!(
        "kubectl describe {} -n {ns} {name}",
        K::plural(&())
    ))
}

pub(super) fn placement_hop<K: RootKind>(root: &K, facts: &Facts<K>) -> Hop {
    let text = kind::selector_text(root);
    let shown = if text.is_empty() {
        "(none: every schedulable Cluster)".to_string()
    } else {
        format!("{text:?}")
    };
    let hint = "kubectl get clusters --show-labels".to_string();
    let mut placed = match K::targets(root, &facts.clusters, &facts.world) {
        Ok(placed) => placed,
        Err(problem) => {
            return Hop::of_items(
                hop::PLACEMENT,
                "",
                vec![Item::fail(
                    format!("annotation {}", labels::PLACEMENT_ANNOTATION),
                    problem.message,
                )],
            )
            .hint(format!(
                "kubectl annotate {} -n {} {} {}=<selector> --overwrite",
                K::plural(&()),
                facts.namespace,
                facts.name,
                labels::PLACEMENT_ANNOTATION
            ));
        }
    };
    // A draining cluster keeps its leaves until its drain completes.
    placed.keep_draining(facts.now);
    let mut items: Vec<Item> = facts
        .clusters
        .iter()
        .map(|c| {
            let cluster = c.name_any();
            let subject = format!("Cluster {cluster}");
            if placed.targets.contains(&cluster) {
                return Item::pass(subject, "matched");
            }
            if let Some((_, why)) = placed.unusable.iter().find(|(n, _)| *n == cluster) {
                if why.contains(NO_CLASS) {
                    return Item::skip(
                        subject,
                        format!(
                            "matched, but skipped: no class (no {} label)",
                            labels::gateway_api::CLASS_LABEL
                        ),
                    );
                }
                return Item::skip(subject, format!("matched, but skipped: {why}"));
            }
            let why = if c.spec.unschedulable {
                "skipped: unschedulable"
            } else if c.metadata.deletion_timestamp.is_some() {
                "skipped: being deleted"
            } else {
                "skipped: its labels do not match"
            };
            Item::skip(subject, why)
        })
        .collect();
    if placed.targets.is_empty() {
        items.insert(
            0,
            Item::fail(
                format!("selector {shown}"),
                if placed.unusable.is_empty() {
                    format!(
                        "matches no schedulable Cluster ({} Clusters exist)",
                        facts.clusters.len()
                    )
                } else {
                    format!(
                        "matches no usable Cluster: those it matches are skipped ({} Clusters \
                         exist)",
                        facts.clusters.len()
                    )
                },
            ),
        );
    }
    Hop::of_items(
        hop::PLACEMENT,
        format!("selector {shown} places it on {}", list(&placed.targets)),
        items,
    )
    .hint(hint)
}

pub(super) fn leaves_hop<K: RootKind>(facts: &Facts<K>, plan: &Plan<K>) -> Hop {
    let (ns, name) = (&facts.namespace, &facts.name);
    let hint = format!(
        "kubectl get {} -A -l {}={},{}={ns}",
        K::plural(&()),
        labels::ROOT_LABEL,
        naming::root_label_value(name),
        labels::ROOT_NAMESPACE_LABEL
    );
    if plan.placement.is_none() {
        return Hop::single(hop::LEAVES, Verdict::Skip, "not placed (see above)").hint(hint);
    }
    let mut items = Vec::new();
    for cluster in targets(plan) {
        let (leaf_ns, leaf_name) = naming::leaf_key(ns, name, cluster);
        let subject = format!("{cluster}: {leaf_ns}/{leaf_name}");
        let write = plan.leaf_writes.iter().find(|w| &w.cluster == cluster);
        items.push(match write {
            None => Item::pass(subject, "present, current"),
            Some(w) if w.create => Item::fail(subject, "missing (the controller creates it)"),
            Some(_) => Item::fail(
                subject,
                "not current: its spec, labels or annotations differ from the root's",
            ),
        });
    }
    for (leaf_ns, leaf_name) in &plan.stale_leaves {
        items.push(Item::fail(
            format!("{leaf_ns}/{leaf_name}"),
            "a leaf of a cluster the root is not placed on (the controller deletes it)",
        ));
    }
    Hop::of_items(
        hop::LEAVES,
        format!("{} leaves, all current", targets(plan).len()),
        items,
    )
    .hint(hint)
}

pub(super) fn dep_subject(dep: &DepKey) -> String {
    let (kind, ns, name) = dep;
    format!("{kind:?} {ns}/{name}")
}

pub(super) fn dep_plural(kind: DepKind) -> &'static str {
    crate::controller::copies::resource(kind).0
}

pub(super) fn dependencies_hop<K: RootKind>(facts: &Facts<K>, plan: &Plan<K>) -> Hop {
    let mut items = Vec::new();
    let mut hint = None;
    for dep in &facts.dependencies {
        let subject = dep_subject(&dep.key);
        let (kind, ns, name) = &dep.key;
        if !dep.exists {
            items.push(Item::fail(
                &subject,
                "does not exist in the control plane: the root references it",
            ));
            hint.get_or_insert_with(|| format!("kubectl get {} -n {ns} {name}", dep_plural(*kind)));
            continue;
        }
        let mut copied = Vec::new();
        for cluster in targets(plan) {
            let Some(copy) = dep.copies.get(cluster) else {
                continue;
            };
            let at = format!("{subject} → {cluster}");
            if !copy.present {
                items.push(Item::fail(
                    at,
                    format!("no copy {} yet (the controller makes it)", copy.at),
                ));
            } else if let Some(conflict) = &copy.conflict {
                items.push(Item::fail(at, format!("conflict: {conflict}")));
            } else if let Some(error) = &copy.sync_error {
                items.push(Item::fail(
                    at,
                    format!("the syncer cannot sync it: {error}"),
                ));
            } else {
                copied.push(cluster.as_str());
                continue;
            }
            hint.get_or_insert_with(|| {
                format!(
                    "kubectl get {} -n {} -o yaml",
                    if *kind == DepKind::Service {
                        "placedobjects"
                    } else {
                        dep_plural(*kind)
                    },
                    mailbox::cluster_namespace(cluster)
                )
            });
        }
        items.push(Item::pass(
            &subject,
            if copied.is_empty() {
                "exists".to_string()
            } else {
                format!("exists; copied for {}", copied.join(", "))
            },
        ));
    }
    if facts.dependencies.is_empty() {
        items.push(Item::pass("references", "none (no Service, no Secret)"));
    }
    let hop = Hop::of_items(
        hop::DEPENDENCIES,
        format!(
            "{} referenced, all present and copied",
            facts.dependencies.len()
        ),
        items,
    );
    match hint {
        Some(hint) => hop.hint(hint),
        None => hop,
    }
}

pub(super) fn root_status_hop<K: RootKind>(root: &K, kind: &str, plan: &Plan<K>) -> Hop {
    let (ns, name) = (root.namespace().unwrap_or_default(), root.name_any());
    let subject = format!("{kind} {ns}/{name} status");
    let hint = format!("kubectl get {} -n {ns} {name} -o yaml", K::plural(&()));
    if plan.placement.is_none() {
        return Hop::single(hop::ROOT_STATUS, Verdict::Skip, "not placed (see above)").hint(hint);
    }
    let shown = addresses_of::<K>(&K::addresses(root));
    let item = match &plan.root_status {
        Some(merged) => Item::fail(
            subject,
            format!(
                "shows {}; its healthy leaves merge to {} (the controller writes it)",
                list(&shown),
                list(&addresses_of::<K>(&merged_addresses(root, merged)))
            ),
        ),
        None if shown.is_empty() => Item::fail(
            subject,
            "no address: no placed cluster is healthy with an address",
        ),
        None => Item::pass(subject, format!("addresses {}", list(&shown))),
    };
    Hop::of_items(
        hop::ROOT_STATUS,
        format!("addresses {}", list(&shown)),
        vec![item],
    )
    .hint(hint)
}

pub(super) fn global_hop<K: RootKind>(root: &K, facts: &Facts<K>) -> Hop {
    let ns = &facts.namespace;
    let name = K::global_name(&facts.name).unwrap_or_else(|| facts.name.clone());
    let subject = format!("GlobalIngress {ns}/{name}");
    let hint = format!("kubectl get globalingress -n {ns} {name} -o yaml");
    let Some(global) = &facts.global else {
        return Hop::of_items(
            hop::GLOBAL,
            "",
            vec![Item::fail(
                subject,
                "does not exist (the controller makes it with the root)",
            )],
        )
        .hint(hint);
    };
    let mut items = Vec::new();
    let hosts = K::hosts(root, &facts.world);
    if global.spec.hosts == hosts {
        items.push(Item::pass("spec.hosts", list(&hosts)));
    } else {
        items.push(Item::fail(
            "spec.hosts",
            format!(
                "{}, but the root's hosts are {}",
                list(&global.spec.hosts),
                list(&hosts)
            ),
        ));
    }
    let status = global.status.clone().unwrap_or_default();
    for (type_, want) in [
        (conditions::READY, "True"),
        (conditions::DEPENDENCIES_READY, "True"),
        (conditions::DEGRADED, "False"),
    ] {
        items.push(match status.conditions.iter().find(|c| c.type_ == type_) {
            None => Item::fail(type_, "not reported (is the controller running?)"),
            Some(c) if c.status == want => Item::pass(type_, condition_text(c)),
            Some(c) => Item::fail(type_, condition_text(c)),
        });
    }
    Hop::of_items(hop::GLOBAL, "hosts and conditions as expected", items).hint(hint)
}

/// The addresses of `root` with the `status` the controller would apply.
fn merged_addresses<K: RootKind>(root: &K, status: &serde_json::Value) -> Vec<K::Address> {
    let mut object = serde_json::to_value(root).unwrap_or_default();
    object["status"] = status.clone();
    serde_json::from_value::<K>(object)
        .map(|merged| K::addresses(&merged))
        .unwrap_or_default()
}
