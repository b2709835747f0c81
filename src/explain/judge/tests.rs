use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use super::{hops, plan};
use crate::apis::Cluster;
use crate::controller::decide;
use crate::controller::dependencies::DepKind;
use crate::controller::naming;
use crate::explain::facts::{CopyState, Downstream, Facts};
use crate::explain::report::hop;
use crate::glbc::records::ownership;
use crate::glbc::status::state;
use crate::labels::{self, conditions};
use std::net::SocketAddr;
use std::time::Duration;

use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::jiff::Timestamp;
use serde_json::json;

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
        drain_complete_time: None,
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
        world: (),
        parents: Vec::new(),
    };
    let root = facts.root.clone().unwrap();
    for (cluster, ip) in [("east", "127.0.1.1"), ("west", "127.0.1.2")] {
        let placed = facts
            .clusters
            .iter()
            .find(|c| c.name_any() == cluster)
            .unwrap()
            .clone();
        let mut leaf = decide::leaf_for(&root, &placed, &()).unwrap();
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
    root.status = serde_json::from_value(plan.root_status.clone().unwrap()).unwrap();
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

#[test]
fn a_dns_verdict_not_written_yet_says_whether_the_glbc_waits_for_an_address() {
    let dns_published = |facts: &Facts<Ingress>| {
        let report = report(facts);
        let hop = report
            .hops
            .iter()
            .find(|h| h.name == hop::DNS_RECORDS)
            .expect("the DNS records hop");
        hop.items
            .iter()
            .find(|i| i.subject == conditions::DNS_PUBLISHED)
            .map(|i| (i.verdict, i.message.clone()))
            .expect("the DNSPublished item")
    };
    let mut facts = converged();
    let status = facts.global.as_mut().unwrap().status.as_mut().unwrap();
    status
        .conditions
        .retain(|c| c.type_ != conditions::DNS_PUBLISHED);
    // The clusters report addresses and no verdict: the glbc is missing.
    let (verdict, message) = dns_published(&facts);
    assert_eq!(verdict, Verdict::Fail);
    assert!(message.contains("is the glbc running"), "{message}");
    // No cluster reports an address yet: the glbc waits for one.
    let status = facts.global.as_mut().unwrap().status.as_mut().unwrap();
    for cluster in &mut status.clusters {
        cluster.addresses.clear();
    }
    let (verdict, message) = dns_published(&facts);
    assert_eq!(verdict, Verdict::Fail);
    assert!(message.contains("waits for one"), "{message}");
}
