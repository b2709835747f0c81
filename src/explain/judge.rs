//! Facts → hops (pure): each hop of a root's chain judged from what was
//! read, with the components' own functions (validation, placement, the
//! controller's `decide`, leaf names, the ownership registry), so that
//! `explain` expects exactly what they do. Generic over the root kind.

use std::collections::BTreeSet;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::ResourceExt;

use super::facts::{CopyState, Downstream, Facts};
use super::report::{Hop, Item, hop};
use crate::apis::{Cluster, LoadBalancerAddress};
use crate::controller::decide::{self, Observed, Plan};
use crate::controller::dependencies::{DepKey, DepKind};
use crate::controller::kind::RootKind;
use crate::controller::naming;
use crate::controller::placement;
use crate::glbc::records::{DnsName, ownership};
use crate::glbc::status::state;
use crate::labels::{self, conditions};
use crate::mailbox;

/// The hops of `facts`' root, in order. A root that does not exist has
/// only the first.
pub fn hops<K: RootKind>(facts: &Facts<K>) -> Vec<Hop> {
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
        root_hop(root, &kind),
        placement_hop(root, facts),
        leaves_hop(facts, &plan),
        dependencies_hop(facts, &plan),
        downstream_hop(facts, &plan),
        clusters_hop(facts, &plan),
        root_status_hop(root, &kind, &plan),
        global_hop(root, facts),
        dns_records_hop(root, facts),
        dns_answers_hop(root, facts),
    ]
}

/// What the controller would decide now, from the same facts.
fn plan<K: RootKind>(root: &K, facts: &Facts<K>) -> Plan<K> {
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
        object: &object,
        leaves: &facts.labelled_leaves,
        exists: &exists,
        conflicts: &conflicts,
        global: facts.global.as_ref(),
        now: facts.now,
        health_threshold: facts.health_threshold,
    })
}

fn targets<K: RootKind>(plan: &Plan<K>) -> &[String] {
    plan.placement
        .as_ref()
        .map_or(&[], |p| p.targets.as_slice())
}

fn root_hop<K: RootKind>(root: &K, kind: &str) -> Hop {
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
    for problem in K::validate(root) {
        items.push(Item::fail(
            &subject,
            format!("{}: {}", problem.reason, problem.message),
        ));
    }
    let hosts = K::hosts(root);
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

fn placement_hop<K: RootKind>(root: &K, facts: &Facts<K>) -> Hop {
    let text = decide::selector_text(root);
    let shown = if text.is_empty() {
        "(none: every schedulable Cluster)".to_string()
    } else {
        format!("{text:?}")
    };
    let hint = "kubectl get clusters --show-labels".to_string();
    let selector = match placement::parse_selector(text) {
        Ok(selector) => selector,
        Err(err) => {
            return Hop::of_items(
                hop::PLACEMENT,
                "",
                vec![Item::fail(
                    format!("annotation {}", labels::PLACEMENT_ANNOTATION),
                    err.to_string(),
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
    let placed = placement::place(&selector, facts.clusters.iter().map(Arc::as_ref));
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
                format!(
                    "matches no schedulable Cluster ({} Clusters exist)",
                    facts.clusters.len()
                ),
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

fn leaves_hop<K: RootKind>(facts: &Facts<K>, plan: &Plan<K>) -> Hop {
    let (ns, name) = (&facts.namespace, &facts.name);
    let hint = format!(
        "kubectl get {} -A -l {}={},{}={ns}",
        K::plural(&()),
        labels::ROOT_LABEL,
        naming::root_label_value(name),
        labels::ROOT_NAMESPACE_LABEL
    );
    if plan.placement.is_none() {
        return Hop::single(
            hop::LEAVES,
            super::report::Verdict::Skip,
            "not placed (see above)",
        )
        .hint(hint);
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

fn dep_subject(dep: &DepKey) -> String {
    let (kind, ns, name) = dep;
    format!("{kind:?} {ns}/{name}")
}

fn dep_plural(kind: DepKind) -> &'static str {
    crate::controller::copies::resource(kind).0
}

fn dependencies_hop<K: RootKind>(facts: &Facts<K>, plan: &Plan<K>) -> Hop {
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

fn downstream_hop<K: RootKind>(facts: &Facts<K>, plan: &Plan<K>) -> Hop {
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
                    if item.verdict == super::report::Verdict::Fail {
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

fn condition_text(c: &Condition) -> String {
    if c.message.is_empty() {
        format!("{}={} ({})", c.type_, c.status, c.reason)
    } else {
        format!("{}={} ({}: {})", c.type_, c.status, c.reason, c.message)
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

fn address_text(a: &LoadBalancerAddress) -> String {
    a.ip.clone()
        .or_else(|| a.hostname.clone())
        .unwrap_or_default()
}

fn clusters_hop<K: RootKind>(facts: &Facts<K>, plan: &Plan<K>) -> Hop {
    let (ns, name) = (&facts.namespace, &facts.name);
    let mut items = Vec::new();
    let mut hint = None;
    for cluster in targets(plan) {
        let Some(c) = facts.clusters.iter().find(|c| c.name_any() == *cluster) else {
            continue;
        };
        let addresses: Vec<String> = facts
            .objects
            .get(&naming::leaf_key(ns, name, cluster))
            .map(|leaf| K::addresses(leaf))
            .unwrap_or_default()
            .iter()
            .filter_map(K::global_address)
            .map(|a| address_text(&a))
            .collect();
        let subject = format!("Cluster {cluster}");
        if !c.is_healthy(facts.now, facts.health_threshold) {
            items.push(Item::fail(
                subject,
                format!("not healthy: {}", health_text(c, facts.now)),
            ));
            hint.get_or_insert_with(|| format!("kubectl get cluster {cluster} -o yaml"));
        } else if addresses.is_empty() {
            items.push(Item::fail(
                subject,
                "healthy, but its load balancer gave the leaf no address (yet)",
            ));
            hint.get_or_insert_with(|| {
                let (leaf_ns, leaf_name) = naming::leaf_key(ns, name, cluster);
                format!(
                    "kubectl get {} -n {leaf_ns} {leaf_name} -o yaml",
                    K::plural(&())
                )
            });
        } else {
            items.push(Item::pass(
                subject,
                format!("healthy; address {}", addresses.join(", ")),
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

fn addresses_of<K: RootKind>(addresses: &[K::Address]) -> Vec<String> {
    addresses
        .iter()
        .filter_map(K::global_address)
        .map(|a| address_text(&a))
        .collect()
}

fn root_status_hop<K: RootKind>(root: &K, kind: &str, plan: &Plan<K>) -> Hop {
    let (ns, name) = (root.namespace().unwrap_or_default(), root.name_any());
    let subject = format!("{kind} {ns}/{name} status");
    let hint = format!("kubectl get {} -n {ns} {name} -o yaml", K::plural(&()));
    if plan.placement.is_none() {
        return Hop::single(
            hop::ROOT_STATUS,
            super::report::Verdict::Skip,
            "not placed (see above)",
        )
        .hint(hint);
    }
    let shown = addresses_of::<K>(&K::addresses(root));
    let item = match &plan.root_status {
        Some(merged) => Item::fail(
            subject,
            format!(
                "shows {}; its healthy leaves merge to {} (the controller writes it)",
                list(&shown),
                list(&addresses_of::<K>(merged))
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

fn global_hop<K: RootKind>(root: &K, facts: &Facts<K>) -> Hop {
    let (ns, name) = (&facts.namespace, &facts.name);
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
    let hosts = K::hosts(root);
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

/// A host as the DNS holds it: lower-case, no trailing dot.
fn dns_host(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

fn dns_records_hop<K: RootKind>(root: &K, facts: &Facts<K>) -> Hop {
    let (ns, name) = (&facts.namespace, &facts.name);
    let root_ref = format!("{ns}/{name}");
    let mut items = Vec::new();
    let mut hint = Some(format!("kubectl get globalingress -n {ns} {name} -o yaml"));
    match &facts.dns {
        None => items.push(Item::skip(
            "DNS server",
            "not queried: give --dns-server (and --dns-port, --owner-id) to check the records",
        )),
        Some(dns) => {
            if let Some(check) = &dns.key_check {
                items.push(match check {
                    Ok(()) => Item::pass("TSIG key", "accepted (signed zone transfer)"),
                    Err(e) => Item::fail("TSIG key", e.clone()),
                });
            }
            let zones: Vec<DnsName> = dns
                .zones
                .iter()
                .filter_map(|z| DnsName::parse_host(z).ok())
                .collect();
            for host in K::hosts(root) {
                let Ok(parsed) = DnsName::parse_host(&host) else {
                    items.push(Item::fail(host.as_str(), "not a valid DNS name"));
                    continue;
                };
                if !zones.is_empty() && parsed.zone_in(&zones).is_none() {
                    items.push(Item::fail(
                        host.as_str(),
                        format!("outside the zones given ({})", dns.zones.join(", ")),
                    ));
                    continue;
                }
                let owner_name = ownership::name_of(&parsed)
                    .map_or_else(String::new, |n| n.without_dot().to_string());
                let Some(found) = dns.hosts.get(&host) else {
                    continue;
                };
                let item = match &found.ownership {
                    Err(e) => Item::fail(
                        host.as_str(),
                        format!("cannot query its ownership record {owner_name}: {e}"),
                    ),
                    Ok(texts) => {
                        let owners: Vec<ownership::Owner> =
                            texts.iter().filter_map(|t| ownership::parse(t)).collect();
                        let ours = owners
                            .iter()
                            .any(|o| o.owner == dns.owner && o.root == root_ref);
                        let foreign: Vec<&ownership::Owner> = owners
                            .iter()
                            .filter(|o| !(o.owner == dns.owner && o.root == root_ref))
                            .collect();
                        let all_shared = owners.iter().all(|o| o.shared);
                        let shared_with_us = ours && all_shared;
                        if !foreign.is_empty() && !shared_with_us {
                            let who: Vec<String> = foreign
                                .iter()
                                .map(|o| format!("owner={} root={}", o.owner, o.root))
                                .collect();
                            Item::fail(
                                host.as_str(),
                                format!(
                                    "owned by someone else ({}, TXT {owner_name}); the glbc \
                                     never touches it",
                                    who.join("; ")
                                ),
                            )
                        } else if ours {
                            Item::pass(
                                host.as_str(),
                                format!("owned by {} for {root_ref}", dns.owner),
                            )
                        } else if !texts.is_empty() {
                            Item::fail(
                                host.as_str(),
                                format!("TXT {owner_name} holds no kcp-ingress ownership record"),
                            )
                        } else {
                            Item::fail(
                                host.as_str(),
                                format!(
                                    "not published: no ownership record {owner_name} (owner {})",
                                    dns.owner
                                ),
                            )
                        }
                    }
                };
                if item.verdict == super::report::Verdict::Fail {
                    hint = Some(format!(
                        "dig @{} -p {} {owner_name} TXT",
                        dns.server.ip(),
                        dns.server.port()
                    ));
                }
                items.push(item);
            }
        }
    }
    let published = facts
        .global
        .as_ref()
        .and_then(|g| g.status.as_ref())
        .and_then(|s| {
            s.conditions
                .iter()
                .find(|c| c.type_ == conditions::DNS_PUBLISHED)
        });
    items.push(match published {
        None => Item::fail(
            conditions::DNS_PUBLISHED,
            "not reported (is the glbc running, and for this namespace?)",
        ),
        Some(c) if c.status == "True" => Item::pass(conditions::DNS_PUBLISHED, condition_text(c)),
        Some(c) => Item::fail(conditions::DNS_PUBLISHED, condition_text(c)),
    });
    let hop = Hop::of_items(hop::DNS_RECORDS, "published, every name ours", items);
    match hint {
        Some(hint) => hop.hint(hint),
        None => hop,
    }
}

fn dns_answers_hop<K: RootKind>(root: &K, facts: &Facts<K>) -> Hop {
    let Some(dns) = &facts.dns else {
        return Hop::single(
            hop::DNS_ANSWERS,
            super::report::Verdict::Skip,
            "not queried: give --dns-server",
        );
    };
    let records = facts
        .global
        .as_ref()
        .and_then(|g| g.status.as_ref())
        .map(|s| s.dns_records.clone())
        .unwrap_or_default();
    let mut items = Vec::new();
    let mut hint = None;
    for host in K::hosts(root) {
        if host.starts_with("*.") {
            items.push(Item::skip(
                host.as_str(),
                "a wildcard: query a name under it",
            ));
            continue;
        }
        let Some(found) = dns.hosts.get(&host) else {
            continue;
        };
        let wanted: BTreeSet<String> = records
            .iter()
            .filter(|r| dns_host(&r.name) == dns_host(&host))
            .filter(|r| matches!(r.record_type.as_str(), "A" | "AAAA" | "CNAME"))
            .filter(|r| [state::PUBLISHED, state::RETAINED].contains(&r.state.as_str()))
            .flat_map(|r| r.targets.iter().map(|t| dns_host(t)))
            .collect();
        let item = match &found.answers {
            Err(e) => Item::fail(host.as_str(), format!("the query failed: {e}")),
            Ok(answers) if answers.is_empty() => Item::fail(
                host.as_str(),
                "no answer (NXDOMAIN, or no A, AAAA or CNAME record)",
            ),
            Ok(answers) => {
                let got: BTreeSet<String> = answers.iter().map(|a| dns_host(a)).collect();
                if wanted.is_empty() {
                    Item::skip(
                        host.as_str(),
                        format!(
                            "answers {}; the GlobalIngress lists no record of it as published",
                            join(&got)
                        ),
                    )
                } else if got == wanted {
                    Item::pass(host.as_str(), format!("answers {}", join(&got)))
                } else {
                    Item::fail(
                        host.as_str(),
                        format!(
                            "answers {}, but the GlobalIngress lists {} as published",
                            join(&got),
                            join(&wanted)
                        ),
                    )
                }
            }
        };
        if item.verdict == super::report::Verdict::Fail {
            hint.get_or_insert_with(|| {
                format!("dig @{} -p {} {host}", dns.server.ip(), dns.server.port())
            });
        }
        items.push(item);
    }
    let hop = Hop::of_items(hop::DNS_ANSWERS, "every host answers as published", items);
    match hint {
        Some(hint) => hop.hint(hint),
        None => hop,
    }
}

fn join(items: &BTreeSet<String>) -> String {
    items.iter().cloned().collect::<Vec<_>>().join(", ")
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "(none)".to_string()
    } else {
        items.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::net::SocketAddr;
    use std::time::Duration;

    use k8s_openapi::api::networking::v1::Ingress;
    use k8s_openapi::jiff::Timestamp;
    use serde_json::json;

    use super::*;
    use crate::apis::condition::condition;
    use crate::apis::{ClusterSpec, ClusterStatus, DnsRecordStatus, GlobalIngress};
    use crate::explain::facts::{Dependency, DnsFacts, DownstreamCopy, HostFacts, PlacedCopy};
    use crate::explain::report::{Report, RootRef, Verdict};

    const HOST: &str = "web.example.test";

    fn now() -> Timestamp {
        Timestamp::from_second(1_800_000_000).unwrap()
    }

    fn cluster(name: &str) -> Arc<Cluster> {
        let mut c = Cluster::new(name, ClusterSpec::default());
        c.metadata.labels = Some(BTreeMap::from([("region".into(), "eu".into())]));
        c.status = Some(ClusterStatus {
            conditions: vec![condition(
                &[],
                conditions::READY,
                true,
                "Up",
                "",
                Time(now()),
            )],
            last_heartbeat_time: Some(Time(now())),
            synced_resources: vec![],
        });
        Arc::new(c)
    }

    fn root(selector: Option<&str>) -> Ingress {
        serde_json::from_value(json!({
            "metadata": {
                "name": "web", "namespace": "shop", "uid": "u-1",
                "annotations": selector.map(|s| json!({labels::PLACEMENT_ANNOTATION: s})).unwrap_or(json!({})),
            },
            "spec": {"rules": [{"host": HOST, "http": {"paths": [{
                "path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": "backend", "port": {"number": 80}}},
            }]}}]},
        }))
        .unwrap()
    }

    /// A root whose every hop holds, on clusters east and west.
    fn converged() -> Facts<Ingress> {
        let clusters = vec![cluster("east"), cluster("west")];
        let mut facts = Facts {
            namespace: "shop".into(),
            name: "web".into(),
            root: Some(root(None)),
            clusters,
            objects: BTreeMap::new(),
            labelled_leaves: BTreeSet::new(),
            dependencies: vec![Dependency {
                key: (DepKind::Service, "shop".into(), "backend".into()),
                exists: true,
                copies: ["east", "west"]
                    .into_iter()
                    .map(|c| {
                        (
                            c.to_string(),
                            PlacedCopy {
                                at: format!("kcp-ingress-cluster-{c}/shop.backend.services"),
                                present: true,
                                ..Default::default()
                            },
                        )
                    })
                    .collect(),
            }],
            global: None,
            downstream: BTreeMap::new(),
            dns: None,
            now: now(),
            health_threshold: Duration::from_secs(30),
        };
        let root = facts.root.clone().unwrap();
        for (cluster, ip) in [("east", "127.0.1.1"), ("west", "127.0.1.2")] {
            let mut leaf = decide::leaf_for(&root, cluster);
            leaf.status =
                serde_json::from_value(json!({"loadBalancer": {"ingress": [{"ip": ip}]}})).unwrap();
            let key = naming::leaf_key("shop", "web", cluster);
            facts.labelled_leaves.insert(key.clone());
            facts.objects.insert(key, Arc::new(leaf));
            facts.downstream.insert(
                cluster.to_string(),
                Downstream::Reached(vec![DownstreamCopy {
                    subject: format!("Ingress shop/web--{cluster}"),
                    state: CopyState::Current,
                }]),
            );
        }
        // The root's status and GlobalIngress as the controller and the glbc write them.
        let plan = plan(&root, &facts);
        let mut root = root;
        root.status = serde_json::from_value(
            json!({"loadBalancer": {"ingress": plan.root_status.clone().unwrap()}}),
        )
        .unwrap();
        let mut global = GlobalIngress::new("web", Default::default());
        global.spec.hosts = vec![HOST.into()];
        let mut status = plan.global_status.clone().unwrap();
        status.conditions.push(condition(
            &[],
            conditions::DNS_PUBLISHED,
            true,
            "Published",
            "",
            Time(now()),
        ));
        status.dns_records = vec![DnsRecordStatus {
            name: HOST.into(),
            record_type: "A".into(),
            ttl: 60,
            targets: vec!["127.0.1.1".into(), "127.0.1.2".into()],
            state: "Published".into(),
        }];
        global.status = Some(status);
        facts.root = Some(root);
        facts.global = Some(global);
        facts.dns = Some(DnsFacts {
            server: SocketAddr::from(([127, 0, 0, 1], 53)),
            owner: "kcp-ingress".into(),
            zones: vec!["example.test".into()],
            key_check: Some(Ok(())),
            hosts: BTreeMap::from([(
                HOST.to_string(),
                HostFacts {
                    ownership: Ok(vec![ownership::content("kcp-ingress", "shop/web")]),
                    answers: Ok(["127.0.1.1".to_string(), "127.0.1.2".to_string()].into()),
                },
            )]),
        });
        facts
    }

    fn report(facts: &Facts<Ingress>) -> Report {
        Report::new(
            RootRef {
                kind: "Ingress".into(),
                namespace: "shop".into(),
                name: "web".into(),
            },
            hops(facts),
        )
    }

    fn first(facts: &Facts<Ingress>) -> (String, String) {
        let report = report(facts);
        let first = report.first_failure.expect("a failing hop");
        (first.hop, first.message)
    }

    #[test]
    fn a_converged_root_holds_at_every_hop() {
        let report = report(&converged());
        for hop in &report.hops {
            assert_eq!(hop.verdict, Verdict::Pass, "{hop:?}");
        }
        assert_eq!(report.hops.len(), 10);
        assert_eq!(report.exit_code(), 0);
    }

    #[test]
    fn a_missing_root_has_only_the_first_hop() {
        let mut facts = converged();
        facts.root = None;
        let report = report(&facts);
        assert_eq!(report.hops.len(), 1);
        assert_eq!(first(&facts).0, hop::ROOT);
    }

    #[test]
    fn an_invalid_selector_stops_at_placement() {
        let mut facts = converged();
        facts.root = Some(root(Some("region in eu")));
        let (hop, message) = first(&facts);
        assert_eq!(hop, hop::PLACEMENT);
        assert!(message.contains("invalid placement selector"), "{message}");
        // A selector that matches nothing fails there too, naming the clusters skipped.
        facts.root = Some(root(Some("region=us")));
        let report = report(&facts);
        let placement = &report.hops[1];
        assert_eq!(placement.verdict, Verdict::Fail);
        assert!(
            placement
                .items
                .iter()
                .any(|i| i.subject == "Cluster east" && i.message.contains("labels do not match"))
        );
    }

    #[test]
    fn a_missing_dependency_stops_at_dependencies() {
        let mut facts = converged();
        facts.dependencies[0].exists = false;
        facts.dependencies[0].copies.clear();
        let (hop, message) = first(&facts);
        assert_eq!(hop, hop::DEPENDENCIES);
        assert!(
            message.starts_with("Service shop/backend: does not exist"),
            "{message}"
        );
        // A conflict on one copy is named with its cluster.
        let mut facts = converged();
        facts.dependencies[0]
            .copies
            .get_mut("west")
            .unwrap()
            .conflict = Some("in the way".into());
        let (hop, message) = first(&facts);
        assert_eq!(hop, hop::DEPENDENCIES);
        assert!(
            message.contains("west") && message.contains("in the way"),
            "{message}"
        );
    }

    #[test]
    fn a_missing_or_stale_leaf_stops_at_leaves() {
        let mut facts = converged();
        let key = naming::leaf_key("shop", "web", "west");
        facts.objects.remove(&key);
        facts.labelled_leaves.remove(&key);
        let (hop, message) = first(&facts);
        assert_eq!(hop, hop::LEAVES);
        assert!(
            message.contains("west") && message.contains("missing"),
            "{message}"
        );
    }

    #[test]
    fn an_unreachable_cluster_stops_at_downstream() {
        let mut facts = converged();
        facts.downstream.insert(
            "west".into(),
            Downstream::Unreachable("connection refused".into()),
        );
        let (hop, message) = first(&facts);
        assert_eq!(hop, hop::DOWNSTREAM);
        assert_eq!(
            message,
            "west: its API server does not answer: connection refused"
        );
        // Pull mode is not judged from here.
        let mut facts = converged();
        facts.downstream.insert("west".into(), Downstream::PullMode);
        assert!(report(&facts).holds);
    }

    #[test]
    fn an_unhealthy_cluster_stops_at_clusters() {
        let mut facts = converged();
        let mut west = (*facts.clusters[1]).clone();
        west.status.as_mut().unwrap().last_heartbeat_time = Some(Time(
            now() - k8s_openapi::jiff::SignedDuration::from_secs(60),
        ));
        facts.clusters[1] = Arc::new(west);
        let (hop, message) = first(&facts);
        assert_eq!(hop, hop::CLUSTERS);
        assert!(message.contains("last heartbeat 60s ago"), "{message}");
    }

    #[test]
    fn a_name_owned_by_someone_else_stops_at_dns_records() {
        let mut facts = converged();
        let dns = facts.dns.as_mut().unwrap();
        dns.hosts.get_mut(HOST).unwrap().ownership =
            Ok(vec![ownership::content("someone-else", "x/y")]);
        let (hop, message) = first(&facts);
        assert_eq!(hop, hop::DNS_RECORDS);
        assert!(message.contains("owner=someone-else root=x/y"), "{message}");
        // Ours, but for another root, is someone else's too.
        let dns = facts.dns.as_mut().unwrap();
        dns.hosts.get_mut(HOST).unwrap().ownership =
            Ok(vec![ownership::content("kcp-ingress", "other/web")]);
        assert_eq!(first(&facts).0, hop::DNS_RECORDS);
    }

    #[test]
    fn answers_that_differ_from_the_published_records_stop_at_dns_answers() {
        let mut facts = converged();
        facts
            .dns
            .as_mut()
            .unwrap()
            .hosts
            .get_mut(HOST)
            .unwrap()
            .answers = Ok(["127.0.1.1".to_string()].into());
        let (hop, message) = first(&facts);
        assert_eq!(hop, hop::DNS_ANSWERS);
        assert!(message.contains("answers 127.0.1.1, but"), "{message}");
        // Records the glbc did not publish (a conflict) are not compared.
        let mut conflict = converged();
        let status = conflict.global.as_mut().unwrap().status.as_mut().unwrap();
        status.dns_records[0].state = state::CONFLICT.into();
        conflict
            .dns
            .as_mut()
            .unwrap()
            .hosts
            .get_mut(HOST)
            .unwrap()
            .answers = Ok(["127.0.9.9".to_string()].into());
        assert_eq!(report(&conflict).hops[9].verdict, Verdict::Skip);
        // Without a DNS server the DNS hops are skipped, not failed.
        let mut facts = converged();
        facts.dns = None;
        let report = report(&facts);
        assert!(report.holds);
        assert_eq!(report.hops[9].verdict, Verdict::Skip);
    }
}
