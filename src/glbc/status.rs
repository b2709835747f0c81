//! The glbc's part of a GlobalIngress status: `dnsRecords`,
//! `lastPublishedTime` and the conditions `DNSPublished` and `Degraded`.
//! Pure: computed from the plan, what the zones hold and how the last
//! exchanges with the DNS server went.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use serde::Serialize;

use super::plan::{HostOutcome, RootPlan};
use super::records::{DnsName, RecordKind, Rrset, ZoneRecords};
use crate::apis::condition::{condition, degraded};
use crate::apis::{DnsRecordStatus, GlobalIngressStatus, ProbeStatus};
use crate::labels::conditions::{DEGRADED, DNS_PUBLISHED};

/// `DnsRecordStatus.state` values.
pub mod state {
    /// The DNS server holds the record set.
    pub const PUBLISHED: &str = "Published";
    /// Not (yet) on the DNS server.
    pub const PENDING: &str = "Pending";
    /// Kept as last published while no cluster of the root is healthy.
    pub const RETAINED: &str = "Retained";
    /// The name belongs to someone else; nothing is written.
    pub const CONFLICT: &str = "Conflict";
}

/// `DNSPublished` reasons.
pub mod reason {
    /// Every host is published as planned.
    pub const PUBLISHED: &str = "Published";
    /// No live root controls the GlobalIngress.
    pub const NO_LIVE_ROOT: &str = crate::labels::reasons::NO_LIVE_ROOT;
    /// Every host is served, some as last published (fail open).
    pub const RETAINED: &str = crate::labels::reasons::RETAINED;
    /// The root has no host to publish.
    pub const NO_HOSTS: &str = "NoHosts";
    /// No healthy cluster reports an address yet.
    pub const NO_ADDRESSES: &str = "NoAddresses";
    /// Changes are on their way to the DNS server.
    pub const PENDING: &str = "Pending";
    /// A host is not a valid DNS name or is outside every configured zone.
    pub const HOST_NOT_PUBLISHABLE: &str = "HostNotPublishable";
    /// A host's name belongs to someone else.
    pub const CONFLICT: &str = "Conflict";
    /// The DNS server refused the records of a host.
    pub const UPDATE_REFUSED: &str = "UpdateRefused";
    /// The DNS server cannot be reached or refuses the glbc; retrying.
    pub const DNS_UNAVAILABLE: &str = "DNSServerUnavailable";
    /// The DNS server rejected the TSIG key.
    pub const TSIG_REJECTED: &str = "TSIGRejected";
}

/// How the exchanges with a zone's server stand.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ZoneProblem {
    /// The server rejected our TSIG signature.
    Tsig(String),
    /// Unreachable, timing out, or refusing the zone.
    Unavailable(String),
}

/// What the status computation reads besides the plan.
#[derive(Clone, Copy, Debug)]
pub struct StatusInput<'a> {
    /// What each zone holds (after this pass's updates).
    pub known: &'a BTreeMap<DnsName, ZoneRecords>,
    /// Zones whose last exchange failed.
    pub zone_problems: &'a BTreeMap<DnsName, ZoneProblem>,
    /// Hosts whose last update the server refused, with its answer.
    pub refused: &'a BTreeMap<DnsName, String>,
    /// The status as it is now.
    pub previous: &'a GlobalIngressStatus,
    /// When an update with this root's records last succeeded, if this
    /// process sent one.
    pub last_sent: Option<&'a Time>,
    pub now: &'a Time,
}

/// The fields the glbc owns, as it applies them.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GlbcStatus {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns_records: Vec<DnsRecordStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_published_time: Option<Time>,
    pub conditions: Vec<Condition>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub probes: Vec<ProbeStatus>,
}

impl GlbcStatus {
    /// Whether `current` already shows exactly this.
    pub fn is_shown_in(&self, current: &GlobalIngressStatus) -> bool {
        current.dns_records == self.dns_records
            && current.probes == self.probes
            && current.last_published_time == self.last_published_time
            && self
                .conditions
                .iter()
                .all(|c| current.conditions.contains(c))
    }

    /// The `DNSPublished` condition.
    pub fn dns_published(&self) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == DNS_PUBLISHED)
    }
}

fn record(name: &DnsName, kind: RecordKind, rrset: &Rrset, state: &str) -> DnsRecordStatus {
    DnsRecordStatus {
        name: name.without_dot().to_string(),
        record_type: kind.as_str().to_string(),
        ttl: rrset.ttl,
        targets: rrset
            .data
            .iter()
            .map(|d| {
                if kind == RecordKind::Cname {
                    d.strip_suffix('.').unwrap_or(d).to_string()
                } else {
                    d.clone()
                }
            })
            .collect(),
        state: state.to_string(),
    }
}

/// Problems of a root, worst first: the first one's reason is the condition's.
#[derive(Default)]
struct Problems {
    by_rank: BTreeMap<u8, (&'static str, Vec<String>)>,
}

impl Problems {
    fn add(&mut self, rank: u8, reason: &'static str, message: String) {
        let entry = self.by_rank.entry(rank).or_insert((reason, Vec::new()));
        if !entry.1.contains(&message) {
            entry.1.push(message);
        }
    }

    fn worst(&self) -> Option<(&'static str, String)> {
        let (_, (reason, _)) = self.by_rank.iter().next()?;
        let all: Vec<&str> = self
            .by_rank
            .values()
            .flat_map(|(_, m)| m.iter().map(String::as_str))
            .collect();
        Some((reason, truncate(&all.join("; "), 1024)))
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

/// The glbc's status of one root.
pub fn root_status(plan: &RootPlan, input: StatusInput<'_>) -> GlbcStatus {
    if plan.orphan {
        let previous = &input.previous.conditions;
        return GlbcStatus {
            dns_records: vec![],
            last_published_time: input.previous.last_published_time.clone(),
            conditions: vec![
                condition(
                    previous,
                    DNS_PUBLISHED,
                    false,
                    reason::NO_LIVE_ROOT,
                    "no root Ingress or Gateway controls this GlobalIngress (no controller owner \
                     reference to an existing Ingress or Gateway of the same uid): nothing is \
                     published for it, and records published for it before are removed",
                    input.now.clone(),
                ),
                degraded(previous, 0, 0, input.now.clone()),
            ],
            probes: vec![],
        };
    }
    let mut records = Vec::new();
    let mut problems = Problems::default();
    let mut published = 0usize;
    let mut all_in_sync = true;
    for host in &plan.hosts {
        match &host.outcome {
            HostOutcome::Invalid(why) => problems.add(
                4,
                reason::HOST_NOT_PUBLISHABLE,
                format!("host {:?} is not published: {why}", host.host),
            ),
            HostOutcome::OutsideZones => problems.add(
                4,
                reason::HOST_NOT_PUBLISHABLE,
                format!("host {} is outside every zone this glbc manages", host.host),
            ),
            HostOutcome::ZoneUnknown { zone } => {
                all_in_sync = false;
                match input.zone_problems.get(zone) {
                    Some(p) => add_zone_problem(&mut problems, p),
                    None => problems.add(
                        6,
                        reason::PENDING,
                        format!("reading zone {} from the DNS server", zone.without_dot()),
                    ),
                }
            }
            HostOutcome::Conflict {
                name,
                reason: why,
                wanted,
            } => {
                problems.add(3, reason::CONFLICT, format!("{why}; not published"));
                for (kind, rrset) in wanted {
                    records.push(record(name, *kind, rrset, state::CONFLICT));
                }
            }
            HostOutcome::NoTargets { .. } => {}
            HostOutcome::Publish {
                zone,
                name,
                rrsets,
                ownership,
                txt,
                retained,
            } => {
                let known = input.known.get(zone);
                let holds = |n: &DnsName, kind: RecordKind, rrset: &Rrset| {
                    known.and_then(|z| z.rrset(n, kind)) == Some(rrset)
                };
                let mut host_in_sync = true;
                for (kind, rrset) in rrsets {
                    let on_server = holds(name, *kind, rrset);
                    host_in_sync &= on_server;
                    let s = match (on_server, retained) {
                        (false, _) => state::PENDING,
                        (true, true) => state::RETAINED,
                        (true, false) => state::PUBLISHED,
                    };
                    records.push(record(name, *kind, rrset, s));
                }
                // The records of other kinds must be gone too.
                host_in_sync &= RecordKind::HOST
                    .into_iter()
                    .filter(|k| !rrsets.contains_key(k))
                    .all(|k| known.and_then(|z| z.rrset(name, k)).is_none());
                let txt_on_server = holds(ownership, RecordKind::Txt, txt);
                host_in_sync &= txt_on_server;
                records.push(record(
                    ownership,
                    RecordKind::Txt,
                    txt,
                    if txt_on_server {
                        state::PUBLISHED
                    } else {
                        state::PENDING
                    },
                ));
                if host_in_sync {
                    published += 1;
                    continue;
                }
                all_in_sync = false;
                if let Some(why) = input.refused.get(name) {
                    problems.add(
                        2,
                        reason::UPDATE_REFUSED,
                        format!("the DNS server refused the records of {}: {why}", host.host),
                    );
                } else if let Some(p) = input.zone_problems.get(zone) {
                    add_zone_problem(&mut problems, p);
                } else {
                    problems.add(
                        6,
                        reason::PENDING,
                        format!("records of {} are being published", host.host),
                    );
                }
            }
        }
    }
    records.sort_by(|a, b| (&a.name, &a.record_type).cmp(&(&b.name, &b.record_type)));
    let no_targets: Vec<&str> = plan
        .hosts
        .iter()
        .filter(|h| matches!(h.outcome, HostOutcome::NoTargets { .. }))
        .map(|h| h.host.as_str())
        .collect();
    let why = if plan.placed == 0 {
        "the Ingress is placed on no cluster"
    } else if plan.healthy == 0 {
        "no cluster of the Ingress is healthy"
    } else {
        "no healthy cluster reports a usable load-balancer address"
    };
    if !no_targets.is_empty() {
        problems.add(
            5,
            reason::NO_ADDRESSES,
            format!("{} not published: {why}", no_targets.join(", ")),
        );
    }
    for problem in &plan.problems {
        // Not worth a False condition of their own: mentioned with the others.
        if let Some((_, messages)) = problems.by_rank.values_mut().next() {
            messages.push(problem.clone());
        }
    }

    let previous = &input.previous.conditions;
    let now = input.now.clone();
    let dns_published = match problems.worst() {
        Some((reason, message)) => condition(
            previous,
            DNS_PUBLISHED,
            false,
            reason,
            &message,
            now.clone(),
        ),
        None if plan.hosts.is_empty() => condition(
            previous,
            DNS_PUBLISHED,
            true,
            reason::NO_HOSTS,
            "the root has no hosts to publish",
            now.clone(),
        ),
        None => {
            let mut message = format!("{published} host(s) published");
            let retained = records.iter().any(|r| r.state == state::RETAINED);
            if retained {
                message = format!(
                    "{published} host(s) served as last published, not refreshed; {why}: the last published records are kept"
                );
            }
            if !plan.problems.is_empty() {
                message.push_str("; ");
                message.push_str(&plan.problems.join("; "));
            }
            condition(
                previous,
                DNS_PUBLISHED,
                true,
                if retained {
                    reason::RETAINED
                } else {
                    reason::PUBLISHED
                },
                &truncate(&message, 1024),
                now.clone(),
            )
        }
    };
    let last_published_time = input
        .last_sent
        .cloned()
        .or_else(|| input.previous.last_published_time.clone())
        .or_else(|| (all_in_sync && published > 0).then(|| now.clone()));
    GlbcStatus {
        dns_records: records,
        last_published_time,
        conditions: vec![
            dns_published,
            degraded(previous, plan.placed, plan.healthy, now),
        ],
        probes: plan.probes.clone(),
    }
}

fn add_zone_problem(problems: &mut Problems, problem: &ZoneProblem) {
    match problem {
        ZoneProblem::Tsig(message) => problems.add(0, reason::TSIG_REJECTED, message.clone()),
        ZoneProblem::Unavailable(message) => {
            problems.add(1, reason::DNS_UNAVAILABLE, format!("{message}; retrying"))
        }
    }
}

/// Whether a condition type is one the glbc writes.
pub fn is_glbc_condition(type_: &str) -> bool {
    type_ == DNS_PUBLISHED || type_ == DEGRADED
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use k8s_openapi::jiff::Timestamp;

    use super::*;
    use crate::glbc::plan::HostPlan;
    use crate::glbc::records::{NameRecords, ownership};

    fn at(second: i64) -> Time {
        Time(Timestamp::from_second(second).unwrap())
    }

    fn name(s: &str) -> DnsName {
        DnsName::new_unchecked(s)
    }

    fn publish(host: &str, retained: bool) -> HostPlan {
        let n = name(host);
        HostPlan {
            host: host.into(),
            outcome: HostOutcome::Publish {
                zone: name("z.test"),
                name: n.clone(),
                rrsets: BTreeMap::from([(
                    RecordKind::A,
                    Rrset::new(60, ["127.0.1.1".to_string()]),
                )]),
                ownership: ownership::name_of(&n).unwrap(),
                txt: Rrset::new(60, ["owner".to_string()]),
                retained,
            },
        }
    }

    fn zone_holding(host: &str) -> BTreeMap<DnsName, ZoneRecords> {
        let mut zone = ZoneRecords::new(name("z.test"));
        let n = name(host);
        zone.names.insert(
            n.clone(),
            NameRecords {
                rrsets: BTreeMap::from([(
                    RecordKind::A,
                    Rrset::new(60, ["127.0.1.1".to_string()]),
                )]),
                others: BTreeSet::new(),
            },
        );
        zone.names.insert(
            ownership::name_of(&n).unwrap(),
            NameRecords {
                rrsets: BTreeMap::from([(RecordKind::Txt, Rrset::new(60, ["owner".to_string()]))]),
                others: BTreeSet::new(),
            },
        );
        BTreeMap::from([(name("z.test"), zone)])
    }

    fn status(
        plan: &RootPlan,
        known: &BTreeMap<DnsName, ZoneRecords>,
        problems: &BTreeMap<DnsName, ZoneProblem>,
        previous: &GlobalIngressStatus,
    ) -> GlbcStatus {
        root_status(
            plan,
            StatusInput {
                known,
                zone_problems: problems,
                refused: &BTreeMap::new(),
                previous,
                last_sent: None,
                now: &at(100),
            },
        )
    }

    #[test]
    fn published_records_are_listed_and_the_condition_is_true() {
        let plan = RootPlan {
            probes: vec![],
            orphan: false,
            placed: 1,
            healthy: 1,
            hosts: vec![publish("a.z.test", false)],
            problems: vec![],
        };
        let s = status(
            &plan,
            &zone_holding("a.z.test"),
            &BTreeMap::new(),
            &Default::default(),
        );
        let c = s.dns_published().unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("True", reason::PUBLISHED)
        );
        let listed: Vec<(&str, &str, &str)> = s
            .dns_records
            .iter()
            .map(|r| (r.name.as_str(), r.record_type.as_str(), r.state.as_str()))
            .collect();
        assert_eq!(
            listed,
            [
                ("_kcp-ingress.a.z.test", "TXT", state::PUBLISHED),
                ("a.z.test", "A", state::PUBLISHED)
            ]
        );
        assert_eq!(s.last_published_time, Some(at(100)));
        let degraded = &s.conditions[1];
        assert_eq!(
            (degraded.type_.as_str(), degraded.status.as_str()),
            (DEGRADED, "False")
        );
        // The same status computed later, from what was written, is identical.
        let written = GlobalIngressStatus {
            dns_records: s.dns_records.clone(),
            last_published_time: s.last_published_time.clone(),
            conditions: s.conditions.clone(),
            ..Default::default()
        };
        let later = root_status(
            &plan,
            StatusInput {
                known: &zone_holding("a.z.test"),
                zone_problems: &BTreeMap::new(),
                refused: &BTreeMap::new(),
                previous: &written,
                last_sent: None,
                now: &at(500),
            },
        );
        assert!(later.is_shown_in(&written), "{later:?}");
    }

    #[test]
    fn a_rejected_key_is_the_reason_of_pending_records() {
        let plan = RootPlan {
            probes: vec![],
            orphan: false,
            placed: 1,
            healthy: 1,
            hosts: vec![publish("a.z.test", false)],
            problems: vec![],
        };
        let problems = BTreeMap::from([(
            name("z.test"),
            ZoneProblem::Tsig("the server rejected the TSIG key".into()),
        )]);
        let empty = BTreeMap::from([(name("z.test"), ZoneRecords::new(name("z.test")))]);
        let s = status(&plan, &empty, &problems, &Default::default());
        let c = s.dns_published().unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", reason::TSIG_REJECTED)
        );
        assert!(c.message.contains("TSIG"), "{}", c.message);
        assert!(s.dns_records.iter().all(|r| r.state == state::PENDING));
        assert_eq!(s.last_published_time, None);
    }

    #[test]
    fn an_orphan_says_why_nothing_is_published() {
        let plan = RootPlan {
            probes: vec![],
            orphan: true,
            ..RootPlan::default()
        };
        let s = status(
            &plan,
            &BTreeMap::new(),
            &BTreeMap::new(),
            &Default::default(),
        );
        let c = s.dns_published().unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", reason::NO_LIVE_ROOT)
        );
        assert!(s.dns_records.is_empty());
    }

    #[test]
    fn records_kept_after_hostnames_stopped_resolving_are_not_shown_as_fresh() {
        let plan = RootPlan {
            probes: vec![],
            orphan: false,
            placed: 2,
            healthy: 2,
            hosts: vec![publish("a.z.test", true)],
            problems: vec![
                "load-balancer hostname lb1.example does not resolve (yet)".into(),
                "load-balancer hostname lb2.example does not resolve (yet)".into(),
            ],
        };
        let s = status(
            &plan,
            &zone_holding("a.z.test"),
            &BTreeMap::new(),
            &Default::default(),
        );
        assert!(
            s.dns_records
                .iter()
                .all(|r| r.state != state::PUBLISHED || r.record_type == "TXT")
        );
        let c = s.dns_published().unwrap();
        assert_eq!(c.reason, reason::RETAINED);
        assert!(
            c.message.contains("lb1.example") && c.message.contains("lb2.example"),
            "{}",
            c.message
        );
    }

    #[test]
    fn retained_records_say_so_and_degraded_is_set() {
        let plan = RootPlan {
            probes: vec![],
            orphan: false,
            placed: 2,
            healthy: 0,
            hosts: vec![publish("a.z.test", true)],
            problems: vec![],
        };
        let s = status(
            &plan,
            &zone_holding("a.z.test"),
            &BTreeMap::new(),
            &Default::default(),
        );
        assert!(s.dns_records.iter().any(|r| r.state == state::RETAINED));
        assert_eq!(s.conditions[1].status, "True");
        let published = s.dns_published().unwrap();
        assert_eq!(
            (published.status.as_str(), published.reason.as_str()),
            ("True", reason::RETAINED)
        );
        assert!(
            published.message.contains("not refreshed"),
            "{}",
            published.message
        );
    }

    #[test]
    fn conflicts_and_bad_hosts_are_reported_worst_first() {
        let plan = RootPlan {
            probes: vec![],
            orphan: false,
            placed: 1,
            healthy: 1,
            hosts: vec![
                HostPlan {
                    host: "www.elsewhere.test".into(),
                    outcome: HostOutcome::OutsideZones,
                },
                HostPlan {
                    host: "taken.z.test".into(),
                    outcome: HostOutcome::Conflict {
                        name: name("taken.z.test"),
                        reason: "taken.z.test. already has A records".into(),
                        wanted: BTreeMap::from([(
                            RecordKind::A,
                            Rrset::new(60, ["127.0.1.1".to_string()]),
                        )]),
                    },
                },
            ],
            problems: vec![],
        };
        let s = status(
            &plan,
            &BTreeMap::new(),
            &BTreeMap::new(),
            &Default::default(),
        );
        let c = s.dns_published().unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", reason::CONFLICT)
        );
        assert!(c.message.contains("taken.z.test") && c.message.contains("www.elsewhere.test"));
        assert_eq!(s.dns_records.len(), 1);
        assert_eq!(s.dns_records[0].state, state::CONFLICT);
    }
}
