//! The hops of Gateway API roots, judged from facts as the controller and
//! the glbc leave them: a converged Gateway, a leaf Gateway that is not
//! Programmed, a route whose parentRef names no Gateway.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use serde_json::json;

use super::{hops, plan};
use crate::apis::condition::condition;
use crate::apis::{Cluster, ClusterSpec, ClusterStatus, DnsRecordStatus, GlobalIngress};
use crate::controller::decide;
use crate::controller::dependencies::DepKind;
use crate::controller::kind::RootKind;
use crate::controller::kinds::gateway::GatewayWorld;
use crate::controller::kinds::gateway::watch::stores_from;
use crate::controller::naming;
use crate::explain::facts::{
    CopyState, Dependency, DnsFacts, Downstream, DownstreamCopy, Facts, HostFacts, ParentGlobal,
};
use crate::explain::report::{Report, RootRef, Verdict, hop};
use crate::gateway_api::gateway::Gateway;
use crate::gateway_api::gateway_class::GatewayClass;
use crate::gateway_api::http_route::HttpRoute;
use crate::glbc::records::ownership;
use crate::labels::{conditions, gateway_api as gw};

const HOST: &str = "www.example.test";

fn now() -> Timestamp {
    Timestamp::from_second(1_800_000_000).unwrap()
}

/// A Ready Cluster, offering the class `standin` unless `class` is false.
fn cluster(name: &str, class: bool) -> Arc<Cluster> {
    let mut c = Cluster::new(name, ClusterSpec::default());
    let mut labels = BTreeMap::from([("region".to_string(), "eu".to_string())]);
    if class {
        labels.insert(gw::CLASS_LABEL.into(), "standin".into());
    }
    c.metadata.labels = Some(labels);
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

fn gateway() -> Gateway {
    serde_json::from_value(json!({
        "metadata": {"name": "gw", "namespace": "shop", "uid": "g-1", "generation": 1},
        "spec": {"gatewayClassName": "kcp-ingress", "listeners": [
            {"name": "http", "port": 80, "protocol": "HTTP", "hostname": "*.example.test"}
        ]}
    }))
    .unwrap()
}

/// The route `shop` on `parent`, accepted there by kcp-ingress.
fn route(parent: &str) -> HttpRoute {
    let accepted = |type_: &str| {
        json!({"type": type_, "status": "True", "reason": type_, "message": "",
               "lastTransitionTime": "2027-01-15T08:00:00Z", "observedGeneration": 1})
    };
    serde_json::from_value(json!({
        "metadata": {"name": "shop", "namespace": "shop", "uid": "r-1", "generation": 1},
        "spec": {"parentRefs": [{"name": parent}], "hostnames": [HOST],
                 "rules": [{"backendRefs": [{"name": "web", "port": 80}]}]},
        "status": {"parents": [{
            "parentRef": {"name": parent}, "controllerName": gw::CONTROLLER_NAME,
            "conditions": [accepted(gw::ACCEPTED), accepted(gw::RESOLVED_REFS)],
        }]},
    }))
    .unwrap()
}

fn world(route: HttpRoute) -> GatewayWorld {
    let class: GatewayClass = serde_json::from_value(json!({
        "metadata": {"name": "kcp-ingress"}, "spec": {"controllerName": gw::CONTROLLER_NAME}
    }))
    .unwrap();
    stores_from(vec![gateway()], vec![route], vec![class])
}

fn facts<K: RootKind<World = GatewayWorld>>(name: &str, root: K, world: GatewayWorld) -> Facts<K> {
    Facts {
        namespace: "shop".into(),
        name: name.into(),
        root: Some(root),
        // `north` offers no class: a Gateway skips it.
        clusters: vec![
            cluster("east", true),
            cluster("west", true),
            cluster("north", false),
        ],
        objects: BTreeMap::new(),
        labelled_leaves: BTreeSet::new(),
        dependencies: Vec::new(),
        global: None,
        downstream: BTreeMap::new(),
        dns: None,
        now: now(),
        health_threshold: Duration::from_secs(30),
        world,
        parents: Vec::new(),
    }
}

/// The leaf Gateway of cluster `c`, as its implementation reports it.
fn leaf_status(leaf: &mut Gateway, ip: &str, programmed: bool) {
    leaf.status = serde_json::from_value(json!({
        "addresses": [{"type": "IPAddress", "value": ip}],
        "conditions": [
            {"type": "Accepted", "status": "True", "reason": "Accepted", "message": "",
             "lastTransitionTime": "2027-01-15T08:00:00Z"},
            {"type": "Programmed", "status": if programmed {"True"} else {"False"},
             "reason": if programmed {"Programmed"} else {"Pending"},
             "message": if programmed {""} else {"no address assigned yet"},
             "lastTransitionTime": "2027-01-15T08:00:00Z"}
        ]
    }))
    .unwrap();
}

/// A root Gateway whose every hop holds, on east and west.
fn converged_gateway() -> Facts<Gateway> {
    let mut facts = facts("gw", gateway(), world(route("gw")));
    let root = facts.root.clone().unwrap();
    for (name, ip) in [("east", "127.0.1.1"), ("west", "127.0.1.2")] {
        let placed = facts
            .clusters
            .iter()
            .find(|c| c.metadata.name.as_deref() == Some(name));
        let mut leaf = decide::leaf_for(&root, placed.unwrap(), &facts.world).unwrap();
        leaf_status(&mut leaf, ip, true);
        let key = naming::leaf_key("shop", "gw", name);
        facts.labelled_leaves.insert(key.clone());
        facts.objects.insert(key, Arc::new(leaf));
        facts.downstream.insert(
            name.to_string(),
            Downstream::Reached(vec![DownstreamCopy {
                subject: format!("Gateway shop/gw--{name}"),
                state: CopyState::Current,
            }]),
        );
    }
    let plan = plan(&root, &facts);
    let mut root = root;
    root.status = serde_json::from_value(plan.root_status.clone().unwrap()).unwrap();
    let spec = plan.global_spec.clone().unwrap();
    assert_eq!(spec.hosts, [HOST]);
    let mut global = GlobalIngress::new("gw.gateway", Default::default());
    global.metadata.namespace = Some("shop".into());
    global.metadata.owner_references = spec.owner.map(|o| vec![o]);
    global.spec.hosts = spec.hosts;
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
        key_check: None,
        hosts: BTreeMap::from([(
            HOST.to_string(),
            HostFacts {
                ownership: Ok(vec![ownership::content("kcp-ingress", "shop/gw.gateway")]),
                answers: Ok(["127.0.1.1".to_string(), "127.0.1.2".to_string()].into()),
            },
        )]),
    });
    facts
}

fn report<K: super::kinds::Explained>(facts: &Facts<K>) -> Report {
    Report::new(
        RootRef {
            kind: K::kind(&()).to_string(),
            namespace: facts.namespace.clone(),
            name: facts.name.clone(),
        },
        hops(facts),
    )
}

#[test]
fn a_converged_gateway_holds_at_every_hop() {
    let facts = converged_gateway();
    let report = report(&facts);
    for h in &report.hops {
        assert_eq!(h.verdict, Verdict::Pass, "{h:?}");
    }
    assert_eq!(report.exit_code(), 0);
    // A cluster without the class label is skipped, and said why.
    let placement = &report.hops[1];
    assert!(
        placement
            .items
            .iter()
            .any(|i| i.subject == "Cluster north" && i.message.contains("no class")),
        "{placement:?}"
    );
    let clusters = &report.hops[5];
    assert_eq!(clusters.name, hop::CLUSTERS);
    assert!(
        clusters.items[0]
            .message
            .contains("Programmed; address 127.0.1.1"),
        "{clusters:?}"
    );
    let global = &report.hops[7];
    assert_eq!(global.items[0].verdict, Verdict::Pass);
    assert!(format!("{global:?}").contains("gw.gateway"), "{global:?}");
}

#[test]
fn a_leaf_gateway_not_programmed_stops_at_clusters() {
    let mut facts = converged_gateway();
    let key = naming::leaf_key("shop", "gw", "west");
    let mut leaf = (*facts.objects[&key]).clone();
    leaf_status(&mut leaf, "127.0.1.2", false);
    facts.objects.insert(key, Arc::new(leaf));
    let report = report(&facts);
    let first = report.first_failure.clone().expect("a failing hop");
    assert_eq!(first.hop, hop::CLUSTERS);
    assert!(
        first.message.contains("Cluster west")
            && first.message.contains("not Programmed")
            && first.message.contains("Pending: no address assigned yet"),
        "{}",
        first.message
    );
    assert_eq!(report.exit_code(), 1);
}

#[test]
fn a_route_to_no_gateway_stops_at_placement() {
    let lost = route("missing");
    let mut lost_facts = facts("shop", lost.clone(), world(lost));
    lost_facts.dependencies = vec![Dependency {
        key: (DepKind::Service, "shop".into(), "web".into()),
        exists: true,
        copies: BTreeMap::new(),
    }];
    let lost_report = report(&lost_facts);
    assert_eq!(
        lost_report.hops[0].verdict,
        Verdict::Pass,
        "{:?}",
        lost_report.hops[0]
    );
    let first = lost_report.first_failure.clone().expect("a failing hop");
    assert_eq!(first.hop, hop::PLACEMENT);
    assert!(
        first.message.contains(gw::NO_MATCHING_PARENT) && first.message.contains("shop/missing"),
        "{}",
        first.message
    );
    assert_eq!(lost_report.exit_code(), 1);

    // The same route on the Gateway: placed where it is, published through
    // its GlobalIngress.
    let on = route("gw");
    let mut on_facts = facts("shop", on.clone(), world(on));
    on_facts.parents = vec![ParentGlobal {
        gateway: ("shop".into(), "gw".into()),
        global_name: "gw.gateway".into(),
        global: None,
    }];
    let on_report = report(&on_facts);
    let placement = &on_report.hops[1];
    assert_eq!(placement.verdict, Verdict::Pass, "{placement:?}");
    assert!(placement.summary.contains("east, west"), "{placement:?}");
    let global = &on_report.hops[7];
    assert_eq!(global.verdict, Verdict::Fail);
    assert!(
        global.items[0].message.contains("does not exist"),
        "{global:?}"
    );
}
