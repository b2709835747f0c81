use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use k8s_openapi::jiff::Timestamp;
use proptest::prelude::*;

use super::*;
use crate::apis::LoadBalancerAddress;
use crate::glbc::diff::{apply, diff};
use crate::glbc::records::NameRecords;

const OWNER: &str = "glbc-a";

fn name(s: &str) -> DnsName {
    DnsName::new_unchecked(s)
}

fn config() -> PlanConfig {
    PlanConfig {
        zones: vec![name("z.test")],
        owner: OWNER.into(),
        shared: false,
        ttl: 42,
        namespace: None,
    }
}

fn ip(s: &str) -> LoadBalancerAddress {
    LoadBalancerAddress {
        ip: Some(s.into()),
        hostname: None,
    }
}

fn hostname(s: &str) -> LoadBalancerAddress {
    LoadBalancerAddress {
        ip: None,
        hostname: Some(s.into()),
    }
}

fn placed(cluster: &str, addresses: Vec<LoadBalancerAddress>) -> ClusterIngressStatus {
    ClusterIngressStatus {
        cluster: cluster.into(),
        addresses,
        healthy: true,
        last_change_time: None,
    }
}

fn root(
    ns: &str,
    n: &str,
    hosts: &[&str],
    clusters: Vec<ClusterIngressStatus>,
) -> RootInput<'static> {
    RootInput {
        key: RootKey::new(ns, n),
        created: None,
        deleting: false,
        orphan: false,
        hosts: hosts.iter().map(|h| h.to_string()).collect(),
        clusters: clusters.into(),
        withdrawn: Default::default(),
        failing: Default::default(),
        withdrawn_addresses: Default::default(),
        probe_problem: None,
        probes: Vec::new(),
    }
}

fn healthy(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| n.to_string()).collect()
}

fn empty_zone() -> BTreeMap<DnsName, ZoneRecords> {
    BTreeMap::from([(name("z.test"), ZoneRecords::new(name("z.test")))])
}

fn rrset(ttl: u32, data: &[&str]) -> Rrset {
    Rrset::new(ttl, data.iter().map(|d| d.to_string()))
}

fn run(
    roots: &[RootInput<'_>],
    healthy: &BTreeSet<String>,
    known: &BTreeMap<DnsName, ZoneRecords>,
) -> Plan {
    plan(
        &config(),
        PlanInput {
            roots,
            healthy,
            traffic: &BTreeMap::new(),
            resolved: &BTreeMap::new(),
            known,
        },
    )
}

fn outcome<'p>(plan: &'p Plan, ns: &str, n: &str, host: &str) -> &'p HostOutcome {
    &plan.roots[&RootKey::new(ns, n)]
        .hosts
        .iter()
        .find(|h| h.host == host)
        .unwrap_or_else(|| panic!("no host {host}"))
        .outcome
}

/// What the plan wants changed in z.test (nothing: the plan leaves the
/// zone out).
fn desired(plan: &Plan) -> BTreeMap<DnsName, DesiredName> {
    plan.zones.get(&name("z.test")).cloned().unwrap_or_default()
}

fn zone_after(plan: &Plan, known: &BTreeMap<DnsName, ZoneRecords>) -> ZoneRecords {
    let mut zone = known[&name("z.test")].clone();
    let changes = diff(&desired(plan), &zone);
    apply(&mut zone, &changes);
    zone
}

/// A zone where `host` is published (A) and owned by `owner` for `root`.
fn published(host: &str, a: &[&str], owner: &str, root: &str) -> BTreeMap<DnsName, ZoneRecords> {
    let mut known = empty_zone();
    let zone = known.get_mut(&name("z.test")).unwrap();
    let host = name(host);
    zone.names.insert(
        host.clone(),
        NameRecords {
            rrsets: BTreeMap::from([(RecordKind::A, rrset(42, a))]),
            others: BTreeSet::new(),
        },
    );
    zone.names.insert(
        ownership::name_of(&host).unwrap(),
        NameRecords {
            rrsets: BTreeMap::from([(
                RecordKind::Txt,
                Rrset::new(42, [ownership::content(owner, root)]),
            )]),
            others: BTreeSet::new(),
        },
    );
    known
}

#[test]
fn healthy_clusters_addresses_become_a_and_aaaa_with_ownership() {
    let roots = [root(
        "ns",
        "web",
        &["b.z.test", "a.z.test"],
        vec![
            placed("c1", vec![ip("127.0.1.1")]),
            placed("c2", vec![ip("127.0.1.2"), ip("fd00::2")]),
            placed("c3", vec![ip("127.0.1.3")]),
        ],
    )];
    let known = empty_zone();
    let plan = run(&roots, &healthy(&["c1", "c2"]), &known);
    let zone = zone_after(&plan, &known);
    for host in ["a.z.test", "b.z.test"] {
        let n = name(host);
        assert_eq!(
            zone.rrset(&n, RecordKind::A),
            Some(&rrset(42, &["127.0.1.1", "127.0.1.2"]))
        );
        assert_eq!(
            zone.rrset(&n, RecordKind::Aaaa),
            Some(&rrset(42, &["fd00::2"]))
        );
        assert_eq!(zone.rrset(&n, RecordKind::Cname), None);
        let txt = zone
            .rrset(&ownership::name_of(&n).unwrap(), RecordKind::Txt)
            .unwrap();
        assert_eq!(txt, &Rrset::new(42, [ownership::content(OWNER, "ns/web")]));
        assert!(matches!(
            outcome(&plan, "ns", "web", host),
            HostOutcome::Publish {
                retained: false,
                ..
            }
        ));
    }
    let root_plan = &plan.roots[&RootKey::new("ns", "web")];
    assert_eq!((root_plan.placed, root_plan.healthy), (3, 2));
    assert_eq!(
        plan.publishers[&name("z.test")][&name("a.z.test")],
        RootKey::new("ns", "web")
    );
}

#[test]
fn a_lone_hostname_is_a_cname_and_mixed_hostnames_are_resolved() {
    let roots = [
        root(
            "ns",
            "alone",
            &["c.z.test"],
            vec![placed("c1", vec![hostname("LB-1.example.net")])],
        ),
        root(
            "ns",
            "mixed",
            &["m.z.test"],
            vec![
                placed("c1", vec![hostname("lb-1.example.net")]),
                placed("c2", vec![ip("127.0.1.2")]),
                placed("c3", vec![hostname("lb-3.example.net")]),
            ],
        ),
    ];
    let health = healthy(&["c1", "c2", "c3"]);
    assert_eq!(
        hostnames_to_resolve(&roots, &health, &BTreeMap::new(), &config()),
        BTreeSet::from([name("lb-1.example.net"), name("lb-3.example.net")])
    );
    let resolved = BTreeMap::from([(
        name("lb-1.example.net"),
        vec![
            "127.0.0.1".parse::<IpAddr>().unwrap(),
            "::1".parse().unwrap(),
        ],
    )]);
    let known = empty_zone();
    let planned = plan(
        &config(),
        PlanInput {
            roots: &roots,
            healthy: &health,
            traffic: &BTreeMap::new(),
            resolved: &resolved,
            known: &known,
        },
    );
    let zone = zone_after(&planned, &known);
    assert_eq!(
        zone.rrset(&name("c.z.test"), RecordKind::Cname),
        Some(&rrset(42, &["lb-1.example.net."]))
    );
    assert_eq!(
        zone.rrset(&name("m.z.test"), RecordKind::A),
        Some(&rrset(42, &["127.0.0.1", "127.0.1.2"]))
    );
    assert_eq!(
        zone.rrset(&name("m.z.test"), RecordKind::Aaaa),
        Some(&rrset(42, &["::1"]))
    );
    let problems = &planned.roots[&RootKey::new("ns", "mixed")].problems;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("lb-3.example.net"), "{problems:?}");
}

#[test]
fn wildcards_get_wildcard_records_and_bad_hosts_are_reported() {
    let roots = [root(
        "ns",
        "w",
        &["*.apps.z.test", "www.other.test", "bad_host.z.test"],
        vec![placed("c1", vec![ip("127.0.1.1"), ip("not-an-ip")])],
    )];
    let known = empty_zone();
    let plan = run(&roots, &healthy(&["c1"]), &known);
    let zone = zone_after(&plan, &known);
    assert!(zone.rrset(&name("*.apps.z.test"), RecordKind::A).is_some());
    assert!(
        zone.rrset(&name("_kcp-ingress-wildcard.apps.z.test"), RecordKind::Txt)
            .is_some()
    );
    assert_eq!(
        outcome(&plan, "ns", "w", "www.other.test"),
        &HostOutcome::OutsideZones
    );
    assert!(matches!(
        outcome(&plan, "ns", "w", "bad_host.z.test"),
        HostOutcome::Invalid(_)
    ));
    assert!(plan.roots[&RootKey::new("ns", "w")].problems[0].contains("not-an-ip"));
    // Nothing outside the zone is ever planned.
    assert!(plan.zones.keys().all(|z| z == &name("z.test")));
}

#[test]
fn a_zone_not_read_yet_decides_nothing() {
    let roots = [root(
        "ns",
        "r",
        &["a.z.test"],
        vec![placed("c1", vec![ip("127.0.1.1")])],
    )];
    let plan = run(&roots, &healthy(&["c1"]), &BTreeMap::new());
    assert!(plan.zones.is_empty());
    assert_eq!(
        outcome(&plan, "ns", "r", "a.z.test"),
        &HostOutcome::ZoneUnknown {
            zone: name("z.test")
        }
    );
}

#[test]
fn no_healthy_cluster_keeps_what_is_published() {
    let known = published("a.z.test", &["127.0.1.1", "127.0.1.2"], OWNER, "ns/r");
    let roots = [root(
        "ns",
        "r",
        &["a.z.test"],
        vec![
            placed("c1", vec![ip("127.0.1.1")]),
            placed("c2", vec![ip("127.0.1.9")]),
        ],
    )];
    let plan = run(&roots, &healthy(&[]), &known);
    assert!(
        diff(&desired(&plan), &known[&name("z.test")]).is_empty(),
        "{plan:?}"
    );
    match outcome(&plan, "ns", "r", "a.z.test") {
        HostOutcome::Publish {
            retained, rrsets, ..
        } => {
            assert!(retained);
            assert_eq!(
                rrsets[&RecordKind::A],
                rrset(42, &["127.0.1.1", "127.0.1.2"])
            );
        }
        other => panic!("{other:?}"),
    }
    let r = &plan.roots[&RootKey::new("ns", "r")];
    assert_eq!((r.placed, r.healthy), (2, 0));

    // Nothing published before: nothing to keep, nothing written.
    let plan = run(&roots, &healthy(&[]), &empty_zone());
    assert!(plan.zones.is_empty());
    assert!(matches!(
        outcome(&plan, "ns", "r", "a.z.test"),
        HostOutcome::NoTargets { .. }
    ));
}

#[test]
fn withdrawn_clusters_and_addresses_leave_dns_and_all_withdrawn_keeps_the_last_answers() {
    let known = published("a.z.test", &["127.0.1.1", "127.0.1.2"], OWNER, "ns/r");
    let base = root(
        "ns",
        "r",
        &["a.z.test"],
        vec![
            placed("c1", vec![ip("127.0.1.1")]),
            placed("c2", vec![ip("127.0.1.2"), ip("127.0.1.3")]),
        ],
    );
    let a_records = |plan: &Plan| match outcome(plan, "ns", "r", "a.z.test") {
        HostOutcome::Publish {
            retained, rrsets, ..
        } => (*retained, rrsets[&RecordKind::A].clone()),
        other => panic!("{other:?}"),
    };
    let both = healthy(&["c1", "c2"]);
    // c1 drains: withdrawn, but it still counts as healthy.
    let mut r = base.clone();
    r.withdrawn.insert("c1".into());
    let plan = run(std::slice::from_ref(&r), &both, &known);
    assert_eq!(
        a_records(&plan),
        (false, rrset(42, &["127.0.1.2", "127.0.1.3"]))
    );
    let rp = &plan.roots[&RootKey::new("ns", "r")];
    assert_eq!((rp.placed, rp.healthy), (2, 2));
    // c1 fails its probes, and one address of c2 too.
    r.failing.insert("c1".into());
    r.withdrawn_addresses.insert("127.0.1.3".into());
    r.probe_problem = Some("bad probe".into());
    let plan = run(std::slice::from_ref(&r), &both, &known);
    assert_eq!(a_records(&plan), (false, rrset(42, &["127.0.1.2"])));
    let rp = &plan.roots[&RootKey::new("ns", "r")];
    assert_eq!((rp.placed, rp.healthy), (2, 1));
    assert!(rp.problems.contains(&"bad probe".to_string()));
    // Every cluster fails: fail open, the last answers stay.
    r.withdrawn.insert("c2".into());
    r.failing.insert("c2".into());
    let plan = run(std::slice::from_ref(&r), &both, &known);
    assert_eq!(
        a_records(&plan),
        (true, rrset(42, &["127.0.1.1", "127.0.1.2"]))
    );
    let rp = &plan.roots[&RootKey::new("ns", "r")];
    assert_eq!((rp.placed, rp.healthy), (2, 0));
}

#[test]
fn a_root_placed_nowhere_keeps_its_names_until_it_drops_them() {
    let known = published("a.z.test", &["127.0.1.1"], OWNER, "ns/r");
    let roots = [root("ns", "r", &["a.z.test"], vec![])];
    let plan = run(&roots, &healthy(&[]), &known);
    assert!(diff(&desired(&plan), &known[&name("z.test")]).is_empty());
    assert!(matches!(
        outcome(&plan, "ns", "r", "a.z.test"),
        HostOutcome::Publish { retained: true, .. }
    ));
    // The root drops the host: released.
    let roots = [root("ns", "r", &["b.z.test"], vec![])];
    let plan = run(&roots, &healthy(&[]), &known);
    let zone = zone_after(&plan, &known);
    assert!(zone.names.is_empty(), "{zone:?}");
}

#[test]
fn a_name_that_holds_what_it_should_is_left_out_of_the_plan() {
    let known = published("a.z.test", &["127.0.1.1"], OWNER, "ns/r");
    let roots = [root(
        "ns",
        "r",
        &["a.z.test", "b.z.test"],
        vec![placed("c1", vec![ip("127.0.1.1")])],
    )];
    let plan = run(&roots, &healthy(&["c1"]), &known);
    // The root's verdict is the same; only b.z.test (new) is to change.
    assert!(matches!(
        outcome(&plan, "ns", "r", "a.z.test"),
        HostOutcome::Publish {
            retained: false,
            ..
        }
    ));
    assert_eq!(
        desired(&plan).keys().collect::<Vec<_>>(),
        vec![&name("_kcp-ingress.b.z.test"), &name("b.z.test")]
    );
    assert_eq!(
        plan.publishers[&name("z.test")].keys().collect::<Vec<_>>(),
        vec![&name("b.z.test")]
    );
    // Once b.z.test is published too, the plan changes nothing.
    let mut after = known.clone();
    after.insert(name("z.test"), zone_after(&plan, &known));
    let plan = run(&roots, &healthy(&["c1"]), &after);
    assert!(
        plan.zones.is_empty() && plan.publishers.is_empty(),
        "{plan:?}"
    );
}

#[test]
fn an_orphan_publishes_nothing_and_its_names_are_released() {
    let known = published("a.z.test", &["127.0.1.1"], OWNER, "ns/r");
    let mut orphan = root(
        "ns",
        "r",
        &["a.z.test", "b.z.test"],
        vec![placed("c1", vec![ip("127.0.1.1")])],
    );
    orphan.orphan = true;
    let plan = run(&[orphan], &healthy(&["c1"]), &known);
    let root_plan = &plan.roots[&RootKey::new("ns", "r")];
    assert!(root_plan.orphan && root_plan.hosts.is_empty());
    assert!(plan.publishers.is_empty());
    // What it had published is released, ownership record included; the
    // free host is not claimed.
    let zone = zone_after(&plan, &known);
    assert!(zone.names.is_empty(), "{zone:?}");
}

#[test]
fn names_of_others_are_never_touched() {
    let mut known = published("foreign.z.test", &["127.0.9.9"], "someone-else", "x/y");
    let zone = known.get_mut(&name("z.test")).unwrap();
    zone.names.insert(
        name("taken.z.test"),
        NameRecords {
            rrsets: BTreeMap::from([(RecordKind::A, rrset(99, &["127.0.9.8"]))]),
            others: BTreeSet::new(),
        },
    );
    zone.names.insert(
        name("mail.z.test"),
        NameRecords {
            rrsets: BTreeMap::new(),
            others: BTreeSet::from(["MX".to_string()]),
        },
    );
    let roots = [root(
        "ns",
        "r",
        &[
            "foreign.z.test",
            "taken.z.test",
            "mail.z.test",
            "free.z.test",
        ],
        vec![placed("c1", vec![ip("127.0.1.1")])],
    )];
    let plan = run(&roots, &healthy(&["c1"]), &known);
    let desired = &plan.zones[&name("z.test")];
    assert_eq!(
        desired.keys().collect::<Vec<_>>(),
        vec![&name("_kcp-ingress.free.z.test"), &name("free.z.test")]
    );
    for host in ["foreign.z.test", "taken.z.test", "mail.z.test"] {
        match outcome(&plan, "ns", "r", host) {
            HostOutcome::Conflict { reason, wanted, .. } => {
                assert!(reason.contains(host), "{reason}");
                assert_eq!(wanted[&RecordKind::A], rrset(42, &["127.0.1.1"]));
            }
            other => panic!("{host}: {other:?}"),
        }
    }
    let HostOutcome::Conflict { reason, .. } = outcome(&plan, "ns", "r", "foreign.z.test") else {
        unreachable!()
    };
    assert!(reason.contains("someone-else"), "{reason}");
}

#[test]
fn the_current_publisher_keeps_a_shared_host_else_the_oldest_wins() {
    let older = |mut r: RootInput<'static>, second: i64| {
        r.created = Some(Timestamp::from_second(second).unwrap());
        r
    };
    let a = older(
        root(
            "ns",
            "a",
            &["h.z.test"],
            vec![placed("c1", vec![ip("127.0.1.1")])],
        ),
        100,
    );
    let b = older(
        root(
            "ns",
            "b",
            &["h.z.test"],
            vec![placed("c1", vec![ip("127.0.1.2")])],
        ),
        200,
    );
    let roots = [b.clone(), a.clone()];
    let plan = run(&roots, &healthy(&["c1"]), &empty_zone());
    assert!(matches!(
        outcome(&plan, "ns", "a", "h.z.test"),
        HostOutcome::Publish { .. }
    ));
    let HostOutcome::Conflict { reason, .. } = outcome(&plan, "ns", "b", "h.z.test") else {
        panic!("b should conflict")
    };
    assert!(reason.contains("ns/a"), "{reason}");

    // b published it first: b keeps it.
    let known = published("h.z.test", &["127.0.1.2"], OWNER, "ns/b");
    let plan = run(&roots, &healthy(&["c1"]), &known);
    assert!(matches!(
        outcome(&plan, "ns", "b", "h.z.test"),
        HostOutcome::Publish { .. }
    ));
    assert!(diff(&desired(&plan), &known[&name("z.test")]).is_empty());
}

#[test]
fn names_no_live_root_wants_are_released() {
    let mut known = published("gone.z.test", &["127.0.1.1"], OWNER, "ns/gone");
    let other = published("kept.z.test", &["127.0.1.1"], "someone-else", "ns/gone");
    known
        .get_mut(&name("z.test"))
        .unwrap()
        .names
        .extend(other[&name("z.test")].names.clone());
    let mut deleting = root(
        "ns",
        "d",
        &["d.z.test"],
        vec![placed("c1", vec![ip("127.0.1.1")])],
    );
    deleting.deleting = true;
    let planned = run(&[deleting], &healthy(&["c1"]), &known);
    let zone = zone_after(&planned, &known);
    assert!(!zone.names.contains_key(&name("gone.z.test")));
    assert!(!zone.names.contains_key(&name("_kcp-ingress.gone.z.test")));
    assert!(!zone.names.contains_key(&name("d.z.test")));
    assert!(zone.names.contains_key(&name("kept.z.test")));
    assert!(planned.roots.is_empty());
    assert!(!still_owns(&zone, OWNER, &RootKey::new("ns", "gone")));
    assert!(still_owns(
        &known[&name("z.test")],
        OWNER,
        &RootKey::new("ns", "gone")
    ));

    // A glbc limited to another namespace leaves them alone.
    let scoped = PlanConfig {
        namespace: Some("elsewhere".into()),
        ..config()
    };
    let planned = plan(
        &scoped,
        PlanInput {
            roots: &[],
            healthy: &healthy(&[]),
            traffic: &BTreeMap::new(),
            resolved: &BTreeMap::new(),
            known: &known,
        },
    );
    assert!(planned.zones.is_empty(), "{planned:?}");
}

#[test]
fn switching_between_cname_and_addresses_replaces_the_other_kind() {
    let roots = [root(
        "ns",
        "r",
        &["s.z.test"],
        vec![placed("c1", vec![hostname("lb.example.net")])],
    )];
    let known = empty_zone();
    let first = run(&roots, &healthy(&["c1"]), &known);
    let zone = zone_after(&first, &known);
    let known = BTreeMap::from([(name("z.test"), zone)]);
    let roots = [root(
        "ns",
        "r",
        &["s.z.test"],
        vec![placed("c1", vec![ip("127.0.1.1")])],
    )];
    let second = run(&roots, &healthy(&["c1"]), &known);
    let zone = zone_after(&second, &known);
    assert_eq!(zone.rrset(&name("s.z.test"), RecordKind::Cname), None);
    assert_eq!(
        zone.rrset(&name("s.z.test"), RecordKind::A),
        Some(&rrset(42, &["127.0.1.1"]))
    );
}

// ---------------------------------------------------------------- properties

const HOSTS: [&str; 5] = [
    "a.z.test",
    "b.z.test",
    "*.w.z.test",
    "x.other.test",
    "c.z.test",
];
const CLUSTERS: [&str; 3] = ["c1", "c2", "c3"];

fn arb_address() -> impl Strategy<Value = LoadBalancerAddress> {
    prop_oneof![
        (1u8..4).prop_map(|i| ip(&format!("127.0.1.{i}"))),
        (1u8..3).prop_map(|i| ip(&format!("fd00::{i}"))),
        (1u8..3).prop_map(|i| hostname(&format!("lb{i}.example.net"))),
    ]
}

fn arb_root(index: usize) -> impl Strategy<Value = RootInput<'static>> {
    (
        prop::sample::subsequence(HOSTS.to_vec(), 0..3),
        prop::sample::subsequence(CLUSTERS.to_vec(), 0..4),
        prop::collection::vec(prop::collection::vec(arb_address(), 0..3), 3),
        0i64..3,
        prop::bool::weighted(0.15),
    )
        .prop_map(move |(hosts, clusters, addresses, created, deleting)| {
            let mut r = root(
                "ns",
                &format!("r{index}"),
                &hosts,
                clusters
                    .iter()
                    .zip(addresses)
                    .map(|(c, a)| placed(c, a))
                    .collect(),
            );
            r.created = Some(Timestamp::from_second(created).unwrap());
            r.deleting = deleting;
            r
        })
}

fn arb_roots() -> impl Strategy<Value = Vec<RootInput<'static>>> {
    (0usize..4).prop_flat_map(|n| (0..n).map(arb_root).collect::<Vec<_>>())
}

/// A zone with a little of everything: our records for live or gone roots,
/// another owner's, unexplained records.
fn arb_known() -> impl Strategy<Value = BTreeMap<DnsName, ZoneRecords>> {
    let entry = (
        prop::sample::select(vec![
            "a.z.test",
            "b.z.test",
            "*.w.z.test",
            "c.z.test",
            "d.z.test",
        ]),
        prop_oneof![
            (0usize..5).prop_map(|i| Some((OWNER, format!("ns/r{i}")))),
            Just(Some(("other", "ns/r0".to_string()))),
            Just(None),
        ],
        prop::sample::subsequence(vec!["127.0.1.1", "127.0.1.7"], 1..3),
    );
    prop::collection::vec(entry, 0..4).prop_map(|entries| {
        let mut known = empty_zone();
        let zone = known.get_mut(&name("z.test")).unwrap();
        for (host, owner, a) in entries {
            let host = name(host);
            zone.names.insert(
                host.clone(),
                NameRecords {
                    rrsets: BTreeMap::from([(RecordKind::A, rrset(60, &a))]),
                    others: BTreeSet::new(),
                },
            );
            let txt_name = ownership::name_of(&host).unwrap();
            match owner {
                Some((owner, root)) => {
                    zone.names.insert(
                        txt_name,
                        NameRecords {
                            rrsets: BTreeMap::from([(
                                RecordKind::Txt,
                                Rrset::new(42, [ownership::content(owner, &root)]),
                            )]),
                            others: BTreeSet::new(),
                        },
                    );
                }
                None => {
                    zone.names.remove(&txt_name);
                }
            }
        }
        known
    })
}

fn arb_healthy() -> impl Strategy<Value = BTreeSet<String>> {
    prop::sample::subsequence(CLUSTERS.to_vec(), 0..4)
        .prop_map(|c| c.into_iter().map(String::from).collect())
}

fn resolved() -> BTreeMap<DnsName, Vec<IpAddr>> {
    BTreeMap::from([(name("lb1.example.net"), vec!["127.0.2.1".parse().unwrap()])])
}

fn plan_of(
    roots: &[RootInput<'_>],
    healthy: &BTreeSet<String>,
    known: &BTreeMap<DnsName, ZoneRecords>,
) -> Plan {
    plan(
        &config(),
        PlanInput {
            roots,
            healthy,
            traffic: &BTreeMap::new(),
            resolved: &resolved(),
            known,
        },
    )
}

/// Whether our ownership record stands at the ownership name of `host`.
fn ours(zone: &ZoneRecords, host: &DnsName) -> bool {
    ownership::name_of(host)
        .and_then(|n| zone.rrset(&n, RecordKind::Txt))
        .is_some_and(|t| {
            t.data
                .iter()
                .filter_map(|d| ownership::parse(d))
                .any(|o| o.owner == OWNER)
        })
}

/// `first`'s roots where `same` says so, else `next`'s (by index): some
/// roots unchanged, some changed, added or gone.
fn mix(
    first: &[RootInput<'static>],
    next: &[RootInput<'static>],
    same: &[bool],
) -> Vec<RootInput<'static>> {
    // One root per key, as the caches give them: a mixed list is no longer
    // aligned by index, so a key could come twice.
    let mut keys = BTreeSet::new();
    (0..first.len().max(next.len()))
        .filter_map(|i| {
            if same.get(i).copied().unwrap_or(false) {
                first.get(i).or(next.get(i))
            } else {
                next.get(i)
            }
            .cloned()
        })
        .filter(|r| keys.insert(r.key.clone()))
        .collect()
}

proptest! {
    #[test]
    fn a_plan_reusing_the_last_ones_is_the_whole_plan(
        first in arb_roots(),
        second in arb_roots(),
        third in arb_roots(),
        same in prop::collection::vec(any::<bool>(), 4),
        applied in prop::collection::vec(any::<bool>(), 3),
        healthy in arb_healthy(),
        known in arb_known(),
    ) {
        let config = config();
        let resolved = resolved();
        let traffic = BTreeMap::new();
        let second = mix(&first, &second, &same);
        let third = mix(&second, &third, &same);
        let mut reuse = Reuse::default();
        let mut known = known;
        for (pass, roots) in [first, second, third].iter().enumerate() {
            let input = PlanInput {
                roots,
                healthy: &healthy,
                traffic: &traffic,
                resolved: &resolved,
                known: &known,
            };
            let mut reusing = plan_reusing(&config, input, &mut reuse, 0);
            prop_assert_eq!(&reusing, &plan(&config, input), "pass {}", pass);
            // The server takes the plan's updates, or not (a refusal, an
            // outage): the zones change only by them between reads.
            if applied[pass] {
                for (zone, desired) in &reusing.zones {
                    let state = known.get_mut(zone).unwrap();
                    let changes = diff(desired, state);
                    apply(state, &changes);
                }
            }
            reuse.keep(
                reusing.epoch,
                std::mem::take(&mut reusing.roots),
                &reusing.planned,
                std::mem::take(&mut reusing.released),
            );
        }
    }

    #[test]
    fn the_plan_does_not_depend_on_the_order_of_roots(
        roots in arb_roots(), healthy in arb_healthy(), known in arb_known()
    ) {
        let forward = plan_of(&roots, &healthy, &known);
        let mut reversed = roots.clone();
        reversed.reverse();
        prop_assert_eq!(forward, plan_of(&reversed, &healthy, &known));
    }

    #[test]
    fn one_application_converges(
        roots in arb_roots(), healthy in arb_healthy(), known in arb_known()
    ) {
        let first = plan_of(&roots, &healthy, &known);
        let mut after = known.clone();
        for (zone, desired) in &first.zones {
            let state = after.get_mut(zone).unwrap();
            let changes = diff(desired, state);
            apply(state, &changes);
        }
        let second = plan_of(&roots, &healthy, &after);
        for (zone, desired) in &second.zones {
            prop_assert!(diff(desired, &after[zone]).is_empty(), "{:?}", desired);
        }
        // The plan holds only what differs: nothing, once applied.
        prop_assert!(second.zones.is_empty(), "{:?}", second.zones);
    }

    #[test]
    fn names_of_others_are_never_written(
        roots in arb_roots(), healthy in arb_healthy(), known in arb_known()
    ) {
        let plan = plan_of(&roots, &healthy, &known);
        let zone = &known[&name("z.test")];
        for n in plan.zones.get(&name("z.test")).into_iter().flat_map(|d| d.keys()) {
            let host = ownership::unit_of(n);
            let free = !zone.names.contains_key(&host)
                && ownership::name_of(&host).is_none_or(|o| !zone.names.contains_key(&o));
            prop_assert!(free || ours(zone, &host), "{} is not ours: {:?}", n, zone);
        }
    }

    #[test]
    fn lost_health_never_empties_a_published_name(
        roots in arb_roots(), known in arb_known()
    ) {
        let plan = plan_of(&roots, &BTreeSet::new(), &known);
        let zone = &known[&name("z.test")];
        let mut after = zone.clone();
        if let Some(desired) = plan.zones.get(&name("z.test")) {
            let changes = diff(desired, &after);
            apply(&mut after, &changes);
        }
        // Every name that a live root published and still wants keeps its
        // records, whatever the placement says.
        for root in roots.iter().filter(|r| !r.deleting) {
            for host in root.hosts.iter() {
                let Ok(host) = DnsName::parse_host(host) else { continue };
                let Some(txt) = ownership::name_of(&host).and_then(|n| zone.rrset(&n, RecordKind::Txt)) else { continue };
                let published_by_root = txt.data.len() == 1 && txt.data.iter()
                    .filter_map(|d| ownership::parse(d))
                    .any(|o| o.owner == OWNER && o.root == root.key.to_string());
                if !published_by_root {
                    continue;
                }
                let before: Vec<_> = RecordKind::HOST.iter().map(|k| zone.rrset(&host, *k)).collect();
                let now: Vec<_> = RecordKind::HOST.iter().map(|k| after.rrset(&host, *k)).collect();
                prop_assert_eq!(before, now);
            }
        }
    }
}

/// `config()` sharing names, as owner `owner`.
fn sharing(owner: &str) -> PlanConfig {
    PlanConfig {
        owner: owner.into(),
        shared: true,
        ..config()
    }
}

fn run_with(
    config: &PlanConfig,
    roots: &[RootInput<'_>],
    healthy: &BTreeSet<String>,
    known: &BTreeMap<DnsName, ZoneRecords>,
) -> Plan {
    plan(
        config,
        PlanInput {
            roots,
            healthy,
            traffic: &BTreeMap::new(),
            resolved: &BTreeMap::new(),
            known,
        },
    )
}

/// The zone after the plan's changes and edits.
fn zone_after_all(plan: &Plan, known: &BTreeMap<DnsName, ZoneRecords>) -> ZoneRecords {
    let mut zone = known[&name("z.test")].clone();
    let mut changes = plan
        .zones
        .get(&name("z.test"))
        .map(|d| diff(d, &zone))
        .unwrap_or_default();
    changes.extend(
        plan.edits
            .get(&name("z.test"))
            .into_iter()
            .flatten()
            .cloned(),
    );
    for change in &changes {
        assert!(
            change.guard.iter().all(|g| g.holds(&zone)),
            "a guard does not hold on the state it was computed from: {change:?}"
        );
    }
    apply(&mut zone, &changes);
    zone
}

fn txt_owners(zone: &ZoneRecords, host: &str) -> BTreeSet<String> {
    zone.rrset(&ownership::name_of(&name(host)).unwrap(), RecordKind::Txt)
        .map(|t| {
            t.data
                .iter()
                .filter_map(|d| ownership::parse(d))
                .map(|o| o.owner)
                .collect()
        })
        .unwrap_or_default()
}

fn a_data(zone: &ZoneRecords, host: &str) -> BTreeSet<String> {
    zone.rrset(&name(host), RecordKind::A)
        .map(|r| r.data.clone())
        .unwrap_or_default()
}

#[test]
fn sharing_owners_publish_the_union_and_withdraw_only_their_own() {
    let (one, two) = (sharing("one"), sharing("two"));
    let healthy = healthy(&["c1", "c2"]);
    let r1 = [root(
        "ns1",
        "web",
        &["s.z.test"],
        vec![placed("c1", vec![ip("127.0.1.1")])],
    )];
    let r2 = [root(
        "ns2",
        "web",
        &["s.z.test"],
        vec![placed("c2", vec![ip("127.0.1.2"), ip("127.0.1.1")])],
    )];
    // One claims the free name.
    let mut known = empty_zone();
    let zone = zone_after_all(&run_with(&one, &r1, &healthy, &known), &known);
    known.insert(name("z.test"), zone);
    // Two joins: the union, one TXT record each.
    let plan = run_with(&two, &r2, &healthy, &known);
    assert!(plan.zones.get(&name("z.test")).is_none_or(|z| z.is_empty()));
    let zone = zone_after_all(&plan, &known);
    assert_eq!(
        a_data(&zone, "s.z.test"),
        BTreeSet::from(["127.0.1.1".into(), "127.0.1.2".into()])
    );
    assert_eq!(
        txt_owners(&zone, "s.z.test"),
        BTreeSet::from(["one".into(), "two".into()])
    );
    known.insert(name("z.test"), zone);
    // Each plans nothing more.
    assert!(run_with(&one, &r1, &healthy, &known).edits.is_empty());
    assert!(run_with(&two, &r2, &healthy, &known).edits.is_empty());
    // One's clusters are all unhealthy: it keeps its addresses (fail open).
    let plan = run_with(&one, &r1, &BTreeSet::new(), &known);
    assert!(plan.edits.is_empty());
    assert!(matches!(
        outcome(&plan, "ns1", "web", "s.z.test"),
        HostOutcome::Publish { retained: true, .. }
    ));
    // Two leaves (its root is gone): 127.0.1.1 stays, One lists it.
    let zone = zone_after_all(&run_with(&two, &[], &healthy, &known), &known);
    assert_eq!(
        a_data(&zone, "s.z.test"),
        BTreeSet::from(["127.0.1.1".into()])
    );
    assert_eq!(
        txt_owners(&zone, "s.z.test"),
        BTreeSet::from(["one".into()])
    );
    known.insert(name("z.test"), zone);
    // The last owner out removes the name.
    let zone = zone_after_all(&run_with(&one, &[], &healthy, &known), &known);
    assert!(zone.names.is_empty(), "{zone:?}");
}

#[test]
fn a_sharing_owner_moves_only_its_own_addresses() {
    let (one, two) = (sharing("one"), sharing("two"));
    let healthy = healthy(&["c1", "c2"]);
    let at = |ips: &[&str], ns: &str, c: &str| {
        [root(
            ns,
            "web",
            &["s.z.test"],
            vec![placed(c, ips.iter().map(|i| ip(i)).collect())],
        )]
    };
    let mut known = empty_zone();
    for (config, roots) in [
        (&one, at(&["127.0.1.1", "127.0.1.3"], "ns1", "c1")),
        (&two, at(&["127.0.1.2", "127.0.1.3"], "ns2", "c2")),
    ] {
        let zone = zone_after_all(&run_with(config, &roots, &healthy, &known), &known);
        known.insert(name("z.test"), zone);
    }
    // One moves from .1/.3 to .4: .1 goes, .3 stays (Two lists it).
    let plan = run_with(&one, &at(&["127.0.1.4"], "ns1", "c1"), &healthy, &known);
    let edits = &plan.edits[&name("z.test")];
    assert!(
        edits.iter().all(|c| c.rrsets.is_empty()),
        "record-level only: {edits:?}"
    );
    assert!(edits.iter().all(|c| matches!(c.guard.as_slice(), [crate::glbc::diff::Guard::Exactly { data, .. }] if data.len() == 2)));
    let zone = zone_after_all(&plan, &known);
    assert_eq!(
        a_data(&zone, "s.z.test"),
        BTreeSet::from(["127.0.1.2".into(), "127.0.1.3".into(), "127.0.1.4".into()])
    );
}

#[test]
fn sharing_and_exclusive_owners_conflict_both_ways() {
    let healthy = healthy(&["c1"]);
    let roots = [root(
        "ns",
        "r",
        &["a.z.test"],
        vec![placed("c1", vec![ip("127.0.1.1")])],
    )];
    // An exclusive owner's name is a conflict for a sharing glbc ...
    let exclusive = published("a.z.test", &["127.0.9.9"], "other", "x/y");
    let plan = run_with(&sharing(OWNER), &roots, &healthy, &exclusive);
    assert!(matches!(
        outcome(&plan, "ns", "r", "a.z.test"),
        HostOutcome::Conflict { .. }
    ));
    assert!(plan.edits.is_empty());
    // ... and a shared name is one for a glbc that does not share.
    let mut known = empty_zone();
    let other = [root(
        "ns2",
        "web",
        &["a.z.test"],
        vec![placed("c1", vec![ip("127.0.1.2")])],
    )];
    let zone = zone_after_all(
        &run_with(&sharing("other"), &other, &healthy, &known),
        &known,
    );
    known.insert(name("z.test"), zone);
    let plan = run(&roots, &healthy, &known);
    match outcome(&plan, "ns", "r", "a.z.test") {
        HostOutcome::Conflict { reason, .. } => {
            assert!(reason.contains("--shared-names"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(zone_after_all(&plan, &known), known[&name("z.test")]);
}

#[test]
fn a_sharing_owner_resolves_a_lone_hostname_instead_of_a_cname() {
    let roots = [root(
        "ns",
        "r",
        &["a.z.test"],
        vec![placed("c1", vec![hostname("lb.example.test")])],
    )];
    let names = hostnames_to_resolve(&roots, &healthy(&["c1"]), &BTreeMap::new(), &sharing(OWNER));
    assert_eq!(names, BTreeSet::from([name("lb.example.test")]));
    let resolved = BTreeMap::from([(name("lb.example.test"), vec!["127.0.1.7".parse().unwrap()])]);
    let known = empty_zone();
    let plan = plan(
        &sharing(OWNER),
        PlanInput {
            roots: &roots,
            healthy: &healthy(&["c1"]),
            traffic: &BTreeMap::new(),
            resolved: &resolved,
            known: &known,
        },
    );
    let zone = zone_after_all(&plan, &known);
    assert_eq!(
        a_data(&zone, "a.z.test"),
        BTreeSet::from(["127.0.1.7".into()])
    );
    assert!(zone.rrset(&name("a.z.test"), RecordKind::Cname).is_none());
}

/// One owner's move in a sequence: publish these addresses (a subset of
/// four), lose every healthy cluster, or leave the name.
#[derive(Clone, Debug)]
enum Move {
    Publish(Vec<bool>),
    Unhealthy,
    Leave,
}

fn arb_moves() -> impl proptest::strategy::Strategy<Value = Vec<(usize, Move)>> {
    use proptest::prelude::*;
    let step = prop_oneof![
        4 => prop::collection::vec(any::<bool>(), 4).prop_map(Move::Publish),
        1 => Just(Move::Unhealthy),
        1 => Just(Move::Leave),
    ];
    prop::collection::vec((0usize..3, step), 1..12)
}

proptest::proptest! {
    /// Whatever three sharing owners do, one at a time from what the zone
    /// holds: every guard holds, the name answers exactly the union of the
    /// addresses the owners' TXT records list, each owner's record lists
    /// what it last published (kept while unhealthy), and once all have
    /// left the name is gone.
    #[test]
    fn sharing_owners_keep_the_union_whatever_they_do(moves in arb_moves()) {
        let ips = ["127.0.1.1", "127.0.1.2", "127.0.1.3", "::1"];
        let owners = ["one", "two", "three"];
        let mut known = empty_zone();
        let mut expected: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        for (who, step) in moves {
            let owner = owners[who];
            let ns = format!("ns-{owner}");
            let roots = match &step {
                Move::Leave => vec![],
                Move::Unhealthy => vec![root(&ns, "web", &["s.z.test"], vec![placed("gone", vec![ip("127.0.1.9")])])],
                Move::Publish(pick) => {
                    let chosen: Vec<_> = ips.iter().zip(pick).filter(|(_, p)| **p).map(|(i, _)| ip(i)).collect();
                    vec![root(&ns, "web", &["s.z.test"], vec![placed("c1", chosen)])]
                }
            };
            let plan = run_with(&sharing(owner), &roots, &healthy(&["c1"]), &known);
            let zone = zone_after_all(&plan, &known);
            known.insert(name("z.test"), zone);
            match step {
                Move::Leave => {
                    expected.remove(owner);
                }
                Move::Publish(pick) => {
                    let chosen: BTreeSet<String> = ips.iter().zip(&pick).filter(|(_, p)| **p).map(|(i, _)| i.to_string()).collect();
                    if !chosen.is_empty() {
                        expected.insert(owner, chosen);
                    }
                }
                Move::Unhealthy => {}
            }
            let zone = &known[&name("z.test")];
            let records: BTreeMap<String, BTreeSet<String>> = zone
                .rrset(&ownership::name_of(&name("s.z.test")).unwrap(), RecordKind::Txt)
                .map(|t| t.data.iter().filter_map(|d| ownership::parse(d)).map(|o| (o.owner, o.targets.iter().map(ToString::to_string).collect())).collect())
                .unwrap_or_default();
            let want: BTreeMap<String, BTreeSet<String>> = expected.iter().map(|(o, t)| (o.to_string(), t.clone())).collect();
            proptest::prop_assert_eq!(&records, &want);
            let union: BTreeSet<String> = want.values().flatten().cloned().collect();
            let answered: BTreeSet<String> = [RecordKind::A, RecordKind::Aaaa]
                .into_iter()
                .flat_map(|k| zone.rrset(&name("s.z.test"), k).map(|r| r.data.clone()).unwrap_or_default())
                .collect();
            proptest::prop_assert_eq!(answered, union);
            if want.is_empty() {
                proptest::prop_assert!(zone.names.is_empty(), "{:?}", zone);
            }
        }
    }
}

/// What joining a shared name costs on the wire: one UPDATE with the
/// other owner's TXT record as the guard, one added address and our TXT
/// record (unsigned).
#[test]
fn joining_a_shared_name_is_one_small_update() {
    use hickory_proto::serialize::binary::BinEncodable;
    let healthy = healthy(&["c1", "c2"]);
    let mut known = empty_zone();
    let r1 = [root(
        "ns1",
        "web",
        &["s.z.test"],
        vec![placed("c1", vec![ip("127.0.1.1")])],
    )];
    let zone = zone_after_all(&run_with(&sharing("one"), &r1, &healthy, &known), &known);
    known.insert(name("z.test"), zone);
    let r2 = [root(
        "ns2",
        "web",
        &["s.z.test"],
        vec![placed("c2", vec![ip("127.0.1.2")])],
    )];
    let plan = run_with(&sharing("two"), &r2, &healthy, &known);
    let changes = &plan.edits[&name("z.test")];
    let update = crate::glbc::diff::update_of(changes).unwrap();
    assert_eq!(update.prerequisites.len(), 1);
    assert_eq!(update.records.len(), 2);
    let octets =
        crate::glbc::dns::rfc2136::update_message(&name("z.test").to_name().unwrap(), &update)
            .unwrap()
            .to_bytes()
            .unwrap()
            .len();
    eprintln!("joining a shared name: {octets} octets");
    assert!(octets < 400, "{octets}");
}

/// Weight 0 and priority groups decide the targets with every provider:
/// the best group with a healthy cluster of weight > 0 is published; when
/// no cluster may serve, what was published is kept (fail open).
#[test]
fn weight_zero_and_priority_groups_choose_the_targets() {
    use crate::glbc::traffic::Traffic;
    let roots = [root(
        "ns",
        "web",
        &["www.z.test"],
        vec![
            placed("east", vec![ip("10.0.0.1")]),
            placed("west", vec![ip("10.0.0.2")]),
            placed("backup", vec![ip("10.0.0.3")]),
            placed("off", vec![ip("10.0.0.4")]),
        ],
    )];
    let traffic = BTreeMap::from([
        (
            "east".to_string(),
            Traffic {
                weight: 3,
                priority: 0,
            },
        ),
        (
            "west".to_string(),
            Traffic {
                weight: 1,
                priority: 0,
            },
        ),
        (
            "backup".to_string(),
            Traffic {
                weight: 1,
                priority: 5,
            },
        ),
        (
            "off".to_string(),
            Traffic {
                weight: 0,
                priority: -1,
            },
        ),
    ]);
    let a_of = |healthy_names: &[&str], known: &BTreeMap<DnsName, ZoneRecords>| {
        let planned = plan(
            &config(),
            PlanInput {
                roots: &roots,
                healthy: &healthy(healthy_names),
                traffic: &traffic,
                resolved: &BTreeMap::new(),
                known,
            },
        );
        zone_after(&planned, known)
            .rrset(&name("www.z.test"), RecordKind::A)
            .map(|r| r.data.iter().cloned().collect::<Vec<_>>())
            .unwrap_or_default()
    };
    let all = ["east", "west", "backup", "off"];
    assert_eq!(a_of(&all, &empty_zone()), ["10.0.0.1", "10.0.0.2"]);
    assert_eq!(
        a_of(&["west", "backup", "off"], &empty_zone()),
        ["10.0.0.2"]
    );
    assert_eq!(a_of(&["backup", "off"], &empty_zone()), ["10.0.0.3"]);
    // Only the weight-0 cluster is healthy: the published answers stay.
    let known = published("www.z.test", &["10.0.0.3"], OWNER, "ns/web");
    assert_eq!(a_of(&["off"], &known), ["10.0.0.3"]);
    // Names to resolve follow the same choice.
    let hostnames = [root(
        "ns",
        "lb",
        &["lb.z.test"],
        vec![
            placed("east", vec![hostname("a.lb.test"), hostname("b.lb.test")]),
            placed("off", vec![hostname("c.lb.test")]),
        ],
    )];
    let wanted = hostnames_to_resolve(&hostnames, &healthy(&all), &traffic, &config());
    assert_eq!(
        wanted,
        BTreeSet::from([name("a.lb.test"), name("b.lb.test")])
    );
}
