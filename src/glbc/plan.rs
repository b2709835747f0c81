//! The DNS plan: GlobalIngresses + cluster health + what is published →
//! the records every name should hold, and what each root gets. Pure.
//!
//! Rules, for every host of every root:
//! - the targets are the addresses of the root's clusters that serve
//!   ([`traffic::serving`]: healthy, of weight > 0, in the best priority
//!   group that has such a cluster); IPv4 addresses become A records, IPv6
//!   addresses AAAA;
//! - a load balancer that gives a hostname: a CNAME when that hostname is
//!   the host's only target, else its resolved addresses;
//! - no target (all its clusters unhealthy, none with an address yet, or
//!   none at all): the records published so far are kept (fail open; a
//!   root that is invalid for a moment, or whose placement is being
//!   rewritten, does not empty its names). Its names are released when the
//!   root goes or drops the host;
//! - a host outside every zone, or not a valid host name, is reported and
//!   skipped;
//! - a name is published only if it is free or ours: a name with records but
//!   without our ownership record, or whose ownership record names another
//!   owner, is left alone and reported. Two roots of ours that want the same
//!   host: the one the ownership record names keeps it, else the oldest;
//! - a name our ownership record claims but no live root wants (the root was
//!   deleted, or dropped the host) is emptied, ownership record included.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::jiff::Timestamp;

use super::diff::{self, DesiredName, NameChange, RecordEdit};
use super::records::{
    DnsName, NameRecords, RecordKind, Rrset, ZoneRecords, address_kind, ownership,
};
use super::traffic::{self, Traffic};
use crate::apis::{ClusterIngressStatus, ProbeStatus};
use ownership::Owner;
pub use reuse::Reuse;

mod reuse;

/// A root Ingress (and its GlobalIngress): `namespace/name`. A pass keeps
/// each root's key in several maps (plan, reuse, ledger): shared text, so
/// that a copy is a count, not an allocation.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RootKey {
    pub namespace: Arc<str>,
    pub name: Arc<str>,
}

impl RootKey {
    pub fn new(namespace: &str, name: &str) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    fn parse(text: &str) -> Option<Self> {
        let (namespace, name) = text.split_once('/')?;
        Some(Self::new(namespace, name))
    }
}

impl fmt::Display for RootKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// One GlobalIngress, as the plan needs it. Its hosts and clusters are
/// borrowed from the cached object in a pass (not copied for every root
/// on every pass).
#[derive(Clone, Debug, PartialEq)]
pub struct RootInput<'a> {
    pub key: RootKey,
    /// When it was created: the older root wins a host two roots want.
    pub created: Option<Timestamp>,
    /// Being deleted: its names are released.
    pub deleting: bool,
    /// No live root Ingress controls it: nothing is published for it and
    /// its names are released.
    pub orphan: bool,
    /// spec.hosts.
    pub hosts: Cow<'a, [String]>,
    /// status.clusters: where the root is placed and the addresses there.
    pub clusters: Cow<'a, [ClusterIngressStatus]>,
    /// Clusters whose addresses are withdrawn for this root although they
    /// may be healthy: draining, or failing the root's health check.
    pub withdrawn: BTreeSet<String>,
    /// Of those, the ones that fail the health check (they count as not
    /// healthy for `Degraded`; a draining cluster does not).
    pub failing: BTreeSet<String>,
    /// Single addresses that fail the health check.
    pub withdrawn_addresses: BTreeSet<String>,
    /// A problem with the root's health check (its annotation).
    pub probe_problem: Option<String>,
    /// The health check's verdicts, for the status.
    pub probes: Vec<ProbeStatus>,
}

/// The glbc's settings that the plan depends on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanConfig {
    pub zones: Vec<DnsName>,
    pub owner: String,
    /// Share names with other owners that share too (`--shared-names`).
    pub shared: bool,
    pub ttl: u32,
    /// Only roots of this namespace are ours to publish (and to clean up).
    pub namespace: Option<String>,
}

impl PlanConfig {
    fn in_scope(&self, namespace: &str) -> bool {
        self.namespace.as_deref().is_none_or(|ns| ns == namespace)
    }

    /// Whether a root named in an ownership record is one this glbc manages.
    fn owns_root(&self, root: &str) -> bool {
        RootKey::parse(root).is_some_and(|r| self.in_scope(&r.namespace))
    }
}

/// Everything the plan reads.
#[derive(Clone, Copy, Debug)]
pub struct PlanInput<'a> {
    pub roots: &'a [RootInput<'a>],
    /// Names of the Clusters that are healthy now.
    pub healthy: &'a BTreeSet<String>,
    /// Each Cluster's weight and priority (absent: the defaults).
    pub traffic: &'a BTreeMap<String, Traffic>,
    /// Load-balancer hostnames resolved to addresses (only those that need it).
    pub resolved: &'a BTreeMap<DnsName, Vec<IpAddr>>,
    /// What each zone holds; a zone missing here has not been read yet.
    pub known: &'a BTreeMap<DnsName, ZoneRecords>,
}

/// The outcome of the plan.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// Per zone: the names the glbc may write whose records differ from
    /// what the zone holds, and what they should hold (a name that holds
    /// what it should is left out: no UPDATE needs it).
    pub zones: BTreeMap<DnsName, BTreeMap<DnsName, DesiredName>>,
    /// Per zone: the root that publishes each host (unit) the plan changes.
    pub publishers: BTreeMap<DnsName, BTreeMap<DnsName, RootKey>>,
    /// Per zone: record-level changes of shared names, computed against
    /// the known zone and guarded by exactly its ownership TXT RRset (or,
    /// for a free name, by its absence).
    pub edits: BTreeMap<DnsName, Vec<NameChange>>,
    /// Per root (live and in scope): what happens to each of its hosts.
    pub roots: BTreeMap<RootKey, RootPlan>,
    /// For [`Reuse::keep`]: the inputs every root's plan read (`None`: not
    /// to be reused), what each live root's plan was made of
    /// ([`Planned`]), and the names released.
    pub epoch: Option<u64>,
    pub planned: BTreeMap<RootKey, Planned>,
    pub released: Vec<(DnsName, DnsName)>,
}

/// What a live root's plan was made of and what became of it.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Planned {
    /// The fingerprint of its inputs ([`reuse::fingerprint`]).
    pub input: u64,
    /// Its names held what it wanted (or a reused plan's did): the next
    /// pass may reuse the plan while its inputs stay the same.
    pub settled: bool,
    /// The hash of its [`RootPlan`], made once when it is planned and kept
    /// with it while it is reused: what a status depends on of the plan.
    pub digest: u64,
}

/// What the plan decided for one root.
#[derive(Clone, Debug, Default, PartialEq, Hash)]
pub struct RootPlan {
    /// No live root Ingress controls the GlobalIngress: nothing is
    /// published for it (and `hosts` is empty).
    pub orphan: bool,
    /// Clusters the root is placed on.
    pub placed: usize,
    /// Of those, the healthy ones.
    pub healthy: usize,
    pub hosts: Vec<HostPlan>,
    /// Addresses that could not be used (malformed, or unresolved hostnames).
    pub problems: Vec<String>,
    /// The health check's verdicts (from the input).
    pub probes: Vec<ProbeStatus>,
}

/// One host of a root.
#[derive(Clone, Debug, PartialEq, Hash)]
pub struct HostPlan {
    /// As written in spec.hosts.
    pub host: String,
    pub outcome: HostOutcome,
}

#[derive(Clone, Debug, PartialEq, Hash)]
pub enum HostOutcome {
    /// Not a valid host name.
    Invalid(String),
    /// In no configured zone.
    OutsideZones,
    /// Its zone has not been read yet: nothing can be decided.
    ZoneUnknown { zone: DnsName },
    /// The name is not ours; `wanted` is what would have been published.
    Conflict {
        name: DnsName,
        reason: String,
        wanted: BTreeMap<RecordKind, Rrset>,
    },
    /// Published: the host's RRsets and its ownership record.
    Publish {
        zone: DnsName,
        name: DnsName,
        rrsets: BTreeMap<RecordKind, Rrset>,
        ownership: DnsName,
        txt: Rrset,
        /// The RRsets are what was published before, kept while no target is healthy.
        retained: bool,
    },
    /// Nothing to publish (no healthy target yet and nothing published before).
    NoTargets { zone: DnsName, name: DnsName },
}

/// Who holds a name now, according to the zone.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Holder {
    /// No record at the host, no ownership record.
    Free,
    /// Our ownership record, naming this root (`namespace/name`).
    Ours(String),
    /// Another glbc's ownership record.
    Foreign(String),
    /// Records that no ownership record explains.
    Unowned(String),
    /// Ownership records of owners that share the name (any owner, us
    /// included), one each.
    Shared(Vec<Owner>),
}

fn holder(zone: &ZoneRecords, host: &DnsName, owner_name: &DnsName, config: &PlanConfig) -> Holder {
    if let Some(txt) = zone.rrset(owner_name, RecordKind::Txt) {
        let parsed: Vec<_> = txt.data.iter().map(|t| ownership::parse(t)).collect();
        if parsed.iter().all(|o| o.as_ref().is_some_and(|o| o.shared)) {
            return Holder::Shared(parsed.into_iter().flatten().collect());
        }
        return match parsed.as_slice() {
            [Some(o)] if o.owner == config.owner && config.owns_root(&o.root) => {
                Holder::Ours(o.root.clone())
            }
            [Some(o)] if o.owner == config.owner => Holder::Foreign(format!(
                "{} (root {}, outside this glbc's namespace)",
                o.owner, o.root
            )),
            [Some(o)] => Holder::Foreign(o.owner.clone()),
            _ => Holder::Unowned(format!(
                "{owner_name} holds TXT records that are not a kcp-ingress ownership record"
            )),
        };
    }
    match zone.names.get(host) {
        Some(records) if !records.is_empty() => {
            // What is there, so that a person can tell whose it is.
            let mut what: Vec<String> = records
                .rrsets
                .iter()
                .map(|(kind, rrset)| {
                    let data: Vec<&str> = rrset.data.iter().map(String::as_str).collect();
                    format!("{kind} {}", data.join(" "))
                })
                .collect();
            what.extend(records.others.iter().cloned());
            Holder::Unowned(format!(
                "{host} already has records that kcp-ingress did not create: {}",
                what.join("; ")
            ))
        }
        _ => Holder::Free,
    }
}

/// A root's usable targets in its healthy clusters.
#[derive(Default)]
struct Targets {
    ips: BTreeSet<IpAddr>,
    hostnames: BTreeSet<DnsName>,
    problems: Vec<String>,
}

fn targets(
    root: &RootInput<'_>,
    healthy: &BTreeSet<String>,
    traffic: &BTreeMap<String, Traffic>,
) -> Targets {
    let mut t = Targets::default();
    let serving = traffic::serving(
        &root.clusters,
        |c| healthy.contains(c) && !root.withdrawn.contains(c),
        traffic,
    );
    for cluster in root
        .clusters
        .iter()
        .filter(|c| serving.contains(c.cluster.as_str()))
    {
        for address in &cluster.addresses {
            if let Some(ip) = &address.ip {
                if root.withdrawn_addresses.contains(ip.trim()) {
                    continue;
                }
                match ip.trim().parse::<IpAddr>() {
                    Ok(ip) => {
                        t.ips.insert(ip);
                    }
                    Err(_) => t.problems.push(format!(
                        "cluster {}: {ip:?} is not an IP address",
                        cluster.cluster
                    )),
                }
            } else if let Some(hostname) = &address.hostname {
                match DnsName::parse_host(hostname.trim()) {
                    Ok(name) if !name.as_str().starts_with('*') => {
                        t.hostnames.insert(name);
                    }
                    _ => t.problems.push(format!(
                        "cluster {}: {hostname:?} is not a valid hostname",
                        cluster.cluster
                    )),
                }
            }
        }
    }
    t
}

/// The load-balancer hostnames that must be resolved to addresses: those of
/// roots whose healthy targets are more than one hostname, or a hostname
/// beside addresses.
pub fn hostnames_to_resolve(
    roots: &[RootInput<'_>],
    healthy: &BTreeSet<String>,
    traffic: &BTreeMap<String, Traffic>,
    config: &PlanConfig,
) -> BTreeSet<DnsName> {
    roots
        .iter()
        .filter(|r| !r.deleting && !r.orphan && config.in_scope(&r.key.namespace))
        // Most roots' clusters report addresses only: nothing to resolve.
        .filter(|r| {
            r.clusters.iter().any(|c| {
                c.addresses
                    .iter()
                    .any(|a| a.ip.is_none() && a.hostname.is_some())
            })
        })
        .flat_map(|r| {
            let t = targets(r, healthy, traffic);
            if !config.shared && t.ips.is_empty() && t.hostnames.len() == 1 {
                BTreeSet::new()
            } else {
                t.hostnames
            }
        })
        .collect()
}

/// The RRsets for a root's targets, and the hostnames that had no address.
/// A lone hostname becomes a CNAME, unless `shared` (a CNAME cannot be
/// shared: it is resolved).
fn rrsets_for(
    t: &Targets,
    resolved: &BTreeMap<DnsName, Vec<IpAddr>>,
    ttl: u32,
    shared: bool,
) -> (BTreeMap<RecordKind, Rrset>, Vec<String>) {
    let mut out: BTreeMap<RecordKind, Rrset> = BTreeMap::new();
    if !shared
        && t.ips.is_empty()
        && t.hostnames.len() == 1
        && let Some(only) = t.hostnames.first()
    {
        out.insert(RecordKind::Cname, Rrset::new(ttl, [only.to_string()]));
        return (out, vec![]);
    }
    let mut unresolved = Vec::new();
    let mut ips = t.ips.clone();
    for hostname in &t.hostnames {
        match resolved.get(hostname) {
            Some(addrs) if !addrs.is_empty() => ips.extend(addrs.iter().copied()),
            _ => unresolved.push(format!(
                "load-balancer hostname {} does not resolve (yet)",
                hostname.without_dot()
            )),
        }
    }
    for ip in ips {
        out.entry(address_kind(&ip))
            .or_insert_with(|| Rrset::new(ttl, []))
            .data
            .insert(ip.to_string());
    }
    (out, unresolved)
}

fn by_age(a: &RootInput<'_>, b: &RootInput<'_>) -> Ordering {
    (a.created, &a.key).cmp(&(b.created, &b.key))
}

/// A claim of a root on a host name.
struct Claim<'a> {
    root: &'a RootInput<'a>,
    /// Index of the host in the root's plan.
    index: usize,
}

/// Computes the plan.
pub fn plan(config: &PlanConfig, input: PlanInput<'_>) -> Plan {
    plan_reusing(config, input, &mut Reuse::default(), 0)
}

/// The names the hosts of `roots` would claim (zone, host).
fn claimed_names(config: &PlanConfig, roots: &[&RootInput<'_>]) -> BTreeSet<(DnsName, DnsName)> {
    roots
        .iter()
        .flat_map(|r| r.hosts.iter())
        .filter_map(|host| {
            let name = DnsName::parse_host(host).ok()?;
            Some((name.zone_in(&config.zones)?.clone(), name))
        })
        .collect()
}

/// Computes the plan, reusing the plans of the last one ([`Reuse`]) for
/// the roots that settled and did not change; `reads` counts the reads of
/// the zones from the server. The same plan as [`plan`] as long as the
/// zones change only by the plan's own updates between two reads.
pub fn plan_reusing(
    config: &PlanConfig,
    input: PlanInput<'_>,
    reuse: &mut Reuse,
    reads: u64,
) -> Plan {
    let mut out = Plan::default();
    for orphan in input
        .roots
        .iter()
        .filter(|r| !r.deleting && r.orphan && config.in_scope(&r.key.namespace))
    {
        out.roots.insert(
            orphan.key.clone(),
            RootPlan {
                orphan: true,
                ..RootPlan::default()
            },
        );
    }
    let live: Vec<&RootInput<'_>> = input
        .roots
        .iter()
        .filter(|r| !r.deleting && !r.orphan && config.in_scope(&r.key.namespace))
        .collect();
    // One input per root, as the caches hold one object per key: a key
    // twice would index the claims of one copy into the other's hosts.
    debug_assert!(
        {
            let mut keys: Vec<&RootKey> = input.roots.iter().map(|r| &r.key).collect();
            keys.sort();
            keys.windows(2).all(|w| w[0] != w[1])
        },
        "a root key twice in the plan's input"
    );
    let fingerprints: Vec<u64> = live.iter().map(|r| reuse::fingerprint(r)).collect();
    out.epoch = (!config.shared).then(|| reuse::epoch(&input, reads));
    let mut taken = reuse.take(out.epoch, &live, &fingerprints, |again| {
        claimed_names(config, again)
    });

    // The roots planned again, oldest first: a reused root claims no
    // name (none of its names is claimed by a root planned again), so the
    // claims on a name are theirs, in the order of age that decides them.
    let mut again: Vec<(&RootInput<'_>, u64)> = Vec::new();
    for (i, (root, fingerprint)) in live.iter().zip(&fingerprints).enumerate() {
        if let Some((kept, digest)) = taken.plans.get_mut(i).and_then(Option::take) {
            // Settled, and nothing it reads changed: the same plan.
            let planned = Planned {
                input: *fingerprint,
                settled: true,
                digest,
            };
            out.planned.insert(root.key.clone(), planned);
            out.roots.insert(root.key.clone(), kept);
        } else {
            again.push((root, *fingerprint));
        }
    }
    again.sort_by(|(a, _), (b, _)| by_age(a, b));

    // Every host of every root planned again: classified, and claims on
    // valid names.
    let mut claims: BTreeMap<(DnsName, DnsName), Vec<Claim<'_>>> = BTreeMap::new();
    let mut root_targets: BTreeMap<&RootKey, BTreeMap<RecordKind, Rrset>> = BTreeMap::new();
    for (root, fingerprint) in again {
        let planned = Planned {
            input: fingerprint,
            ..Planned::default()
        };
        out.planned.insert(root.key.clone(), planned);
        let t = targets(root, input.healthy, input.traffic);
        let (rrsets, unresolved) = rrsets_for(&t, input.resolved, config.ttl, config.shared);
        let healthy = root
            .clusters
            .iter()
            .filter(|c| input.healthy.contains(&c.cluster) && !root.failing.contains(&c.cluster))
            .count();
        let mut plan = RootPlan {
            orphan: false,
            placed: root.clusters.len(),
            healthy,
            hosts: Vec::new(),
            problems: t
                .problems
                .into_iter()
                .chain(unresolved)
                .chain(root.probe_problem.clone())
                .collect(),
            probes: root.probes.clone(),
        };
        let mut seen = BTreeSet::new();
        for host in root.hosts.iter() {
            let outcome = match DnsName::parse_host(host) {
                Err(reason) => HostOutcome::Invalid(reason),
                Ok(name) if !seen.insert(name.clone()) => continue,
                Ok(name) => match name.zone_in(&config.zones) {
                    None => HostOutcome::OutsideZones,
                    Some(zone) if !input.known.contains_key(zone) => {
                        HostOutcome::ZoneUnknown { zone: zone.clone() }
                    }
                    Some(_) if ownership::name_of(&name).is_none() => HostOutcome::Invalid(
                        "too long to carry an ownership record beside it".into(),
                    ),
                    Some(zone) => {
                        claims
                            .entry((zone.clone(), name.clone()))
                            .or_default()
                            .push(Claim {
                                root,
                                index: plan.hosts.len(),
                            });
                        // Decided below, once every claim on the name is known.
                        HostOutcome::NoTargets {
                            zone: zone.clone(),
                            name,
                        }
                    }
                },
            };
            plan.hosts.push(HostPlan {
                host: host.clone(),
                outcome,
            });
        }
        root_targets.insert(&root.key, rrsets);
        out.roots.insert(root.key.clone(), plan);
    }

    // Each claimed name: who holds it, who wins it, what it holds next.
    let mut decided: BTreeSet<(&DnsName, &DnsName)> = BTreeSet::new();
    // Roots whose names are to change.
    let mut changed: BTreeSet<RootKey> = BTreeSet::new();
    for ((zone_name, host), claimants) in &claims {
        let Some(zone) = input.known.get(zone_name) else {
            continue;
        };
        let Some(owner_name) = ownership::name_of(host) else {
            continue;
        };
        decided.insert((zone_name, host));
        let held = holder(zone, host, &owner_name, config);
        if config.shared {
            let owners = match &held {
                Holder::Free => Some(&[][..]),
                Holder::Shared(owners) => Some(owners.as_slice()),
                _ => None,
            };
            if let Some(owners) = owners {
                let name = SharedName {
                    zone_name,
                    zone,
                    host,
                    owner_name: &owner_name,
                    owners,
                };
                share(config, &name, claimants, &root_targets, &mut out);
                continue;
            }
        }
        let winner = match &held {
            Holder::Free => claimants.first().map(|c| &c.root.key),
            Holder::Ours(root) => {
                let current = RootKey::parse(root);
                claimants
                    .iter()
                    .find(|c| Some(&c.root.key) == current.as_ref())
                    .or(claimants.first())
                    .map(|c| &c.root.key)
            }
            Holder::Foreign(_) | Holder::Unowned(_) | Holder::Shared(_) => None,
        };
        let mut desired: DesiredName = RecordKind::HOST.into_iter().map(|k| (k, None)).collect();
        desired.insert(RecordKind::Txt, None);
        for claim in claimants {
            let wanted = root_targets
                .get(&claim.root.key)
                .cloned()
                .unwrap_or_default();
            let outcome = if Some(&claim.root.key) == winner {
                let mut rrsets = wanted;
                let mut retained = false;
                if rrsets.is_empty() && matches!(held, Holder::Ours(_)) {
                    // Fail open: keep what is published.
                    rrsets = RecordKind::HOST
                        .into_iter()
                        .filter_map(|k| zone.rrset(host, k).map(|r| (k, r.clone())))
                        .collect();
                    retained = !rrsets.is_empty();
                }
                if rrsets.is_empty() {
                    HostOutcome::NoTargets {
                        zone: zone_name.clone(),
                        name: host.clone(),
                    }
                } else {
                    let txt = Rrset::new(
                        config.ttl,
                        [ownership::content(
                            &config.owner,
                            &claim.root.key.to_string(),
                        )],
                    );
                    for (kind, rrset) in &rrsets {
                        desired.insert(*kind, Some(rrset.clone()));
                    }
                    HostOutcome::Publish {
                        zone: zone_name.clone(),
                        name: host.clone(),
                        rrsets,
                        ownership: owner_name.clone(),
                        txt,
                        retained,
                    }
                }
            } else {
                let reason = match (&held, winner) {
                    (Holder::Foreign(other), _) => {
                        format!("{host} is owned by another kcp-ingress glbc (owner {other:?})")
                    }
                    (Holder::Unowned(why), _) => why.clone(),
                    (Holder::Shared(owners), _) => {
                        let owners: Vec<&str> = owners.iter().map(|o| o.owner.as_str()).collect();
                        format!(
                            "{host} is shared by kcp-ingress owners {owners:?}; this glbc does \
                             not share names (--shared-names)"
                        )
                    }
                    (_, Some(w)) => format!("{host} is published for root {w}"),
                    (_, None) => format!("{host} is not available"),
                };
                HostOutcome::Conflict {
                    name: host.clone(),
                    reason,
                    wanted,
                }
            };
            if let Some(plan) = out.roots.get_mut(&claim.root.key) {
                plan.hosts[claim.index].outcome = outcome;
            }
        }
        let Some(winner) = winner else {
            // Not ours: never touched.
            continue;
        };
        let txt = out.roots.get(winner).and_then(|p| {
            p.hosts.iter().find_map(|h| match &h.outcome {
                HostOutcome::Publish { name, txt, .. } if name == host => Some(txt.clone()),
                _ => None,
            })
        });
        let host_kinds: DesiredName = desired
            .iter()
            .filter(|(k, _)| **k != RecordKind::Txt)
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        let publishes = txt.is_some();
        if publishes || matches!(held, Holder::Ours(_)) {
            let owner_kinds = DesiredName::from([(RecordKind::Txt, txt)]);
            let changes = desire(
                &mut out,
                zone_name,
                zone,
                [(host.clone(), host_kinds), (owner_name, owner_kinds)],
            );
            if changes {
                changed.insert(winner.clone());
            }
            // Only the hosts with changes: the publisher of a host is read
            // when an UPDATE of it is accepted.
            if publishes && changes {
                out.publishers
                    .entry(zone_name.clone())
                    .or_default()
                    .insert(host.clone(), winner.clone());
            }
        }
    }

    // Which roots settled: every host published with the records it
    // should have, or not publishable at all (a reused plan did); the
    // digests of the plans made anew.
    for (key, planned) in &mut out.planned {
        if !planned.settled {
            let plan = out.roots.get(key);
            planned.digest = plan.map(crate::hash::of).unwrap_or_default();
            planned.settled = !changed.contains(key)
                && plan.is_some_and(|p| {
                    p.hosts.iter().all(|h| {
                        matches!(
                            h.outcome,
                            HostOutcome::Publish { .. }
                                | HostOutcome::Invalid(_)
                                | HostOutcome::OutsideZones
                        )
                    })
                });
        }
    }

    // Names our ownership records claim that no live root wants: released.
    // Reusing, only the names that can have lost their root are looked at.
    let mut released = Vec::new();
    match taken.names {
        None => {
            for (zone_name, zone) in input.known {
                for (name, records) in &zone.names {
                    let Some(host) = ownership::host_of(name) else {
                        continue;
                    };
                    if !decided.contains(&(zone_name, &host))
                        && release(config, &mut out, zone_name, zone, (name, records), &host)
                    {
                        released.push((zone_name.clone(), host));
                    }
                }
            }
        }
        Some(names) => {
            for (zone_name, host) in names {
                if decided.contains(&(&zone_name, &host)) {
                    continue;
                }
                let Some(zone) = input.known.get(&zone_name) else {
                    continue;
                };
                let Some((name, records)) =
                    ownership::name_of(&host).and_then(|n| zone.names.get_key_value(&n))
                else {
                    continue;
                };
                if release(config, &mut out, &zone_name, zone, (name, records), &host) {
                    released.push((zone_name, host));
                }
            }
        }
    }
    out.released = released;
    out
}

/// Releases `host` of `zone_name` if the ownership record at `name` is ours
/// (or leaves it, shared with others); whether anything is to change.
fn release(
    config: &PlanConfig,
    out: &mut Plan,
    zone_name: &DnsName,
    zone: &ZoneRecords,
    (name, records): (&DnsName, &NameRecords),
    host: &DnsName,
) -> bool {
    let Some(txt) = records.rrsets.get(&RecordKind::Txt) else {
        return false;
    };
    if let Holder::Shared(owners) = holder(zone, host, name, config)
        && owners.len() > 1
        && let Some(change) = leave_shared(config, zone, host, name, &owners)
    {
        out.edits
            .entry(zone_name.clone())
            .or_default()
            .extend(change);
        return true;
    }
    let ours = txt.data.len() == 1
        && txt
            .data
            .iter()
            .filter_map(|t| ownership::parse(t))
            .any(|o| o.owner == config.owner && config.owns_root(&o.root));
    ours && desire(
        out,
        zone_name,
        zone,
        [
            (
                host.clone(),
                RecordKind::HOST.into_iter().map(|k| (k, None)).collect(),
            ),
            (name.clone(), DesiredName::from([(RecordKind::Txt, None)])),
        ],
    )
}

/// Puts the names of one unit (a host and its ownership name) in the plan
/// of `zone_name`, each only if the zone holds something else there: what
/// already holds what it should needs no UPDATE, and the plan (and the
/// diff made from it) stays the size of what changed, not of the zone.
/// Whether any went in.
fn desire(
    out: &mut Plan,
    zone_name: &DnsName,
    zone: &ZoneRecords,
    names: [(DnsName, DesiredName); 2],
) -> bool {
    let mut changes = false;
    for (name, kinds) in names {
        if diff::differs(&name, &kinds, zone) {
            changes = true;
            out.zones
                .entry(zone_name.clone())
                .or_default()
                .insert(name, kinds);
        }
    }
    changes
}

/// A name that is free or shared, as a sharing glbc claims it.
struct SharedName<'a> {
    zone_name: &'a DnsName,
    zone: &'a ZoneRecords,
    host: &'a DnsName,
    owner_name: &'a DnsName,
    /// The sharing owners now (none: the name is free).
    owners: &'a [Owner],
}

/// The addresses of `rrsets` (A and AAAA).
fn addresses(rrsets: &BTreeMap<RecordKind, Rrset>) -> BTreeSet<IpAddr> {
    rrsets
        .values()
        .flat_map(|r| r.data.iter())
        .filter_map(|d| d.parse().ok())
        .collect()
}

/// A and AAAA RRsets holding `ips`.
fn address_rrsets(ips: &BTreeSet<IpAddr>, ttl: u32) -> BTreeMap<RecordKind, Rrset> {
    let mut out: BTreeMap<RecordKind, Rrset> = BTreeMap::new();
    for ip in ips {
        out.entry(address_kind(ip))
            .or_insert_with(|| Rrset::new(ttl, []))
            .data
            .insert(ip.to_string());
    }
    out
}

/// The record-level changes that take this owner's addresses at `host`
/// from `old` to `new`: add what is new and not published, remove what it
/// no longer wants and no other owner lists (and is published); its TXT
/// record `old_txt` becomes `new_txt` (`None`: removed). Guarded by what
/// the unit is known to hold. `None` if nothing changes.
fn edits(
    zone: &ZoneRecords,
    host: &DnsName,
    owner_name: &DnsName,
    (old, new, others): (&BTreeSet<IpAddr>, &BTreeSet<IpAddr>, &BTreeSet<IpAddr>),
    (old_txt, new_txt): (Option<&String>, Option<String>),
    ttl: u32,
) -> Option<Vec<NameChange>> {
    let guard = diff::guard_of(host, zone);
    let mut host_edits: BTreeMap<RecordKind, RecordEdit> = BTreeMap::new();
    for kind in [RecordKind::A, RecordKind::Aaaa] {
        let published: BTreeSet<String> = zone
            .rrset(host, kind)
            .map(|r| r.data.clone())
            .unwrap_or_default();
        let of_kind = |set: &BTreeSet<IpAddr>| -> BTreeSet<String> {
            set.iter()
                .filter(|ip| address_kind(ip) == kind)
                .map(ToString::to_string)
                .collect()
        };
        let (old, new, others) = (of_kind(old), of_kind(new), of_kind(others));
        let add: BTreeSet<String> = new.difference(&published).cloned().collect();
        let remove: BTreeSet<String> = old
            .iter()
            .filter(|d| !new.contains(*d) && !others.contains(*d) && published.contains(*d))
            .cloned()
            .collect();
        if !add.is_empty() || !remove.is_empty() {
            host_edits.insert(kind, RecordEdit { ttl, add, remove });
        }
    }
    let mut txt_edit = RecordEdit {
        ttl,
        ..RecordEdit::default()
    };
    if old_txt != new_txt.as_ref() {
        txt_edit.remove.extend(old_txt.cloned());
        txt_edit.add.extend(new_txt);
    }
    let mut out = Vec::new();
    if !host_edits.is_empty() {
        out.push(NameChange {
            name: host.clone(),
            rrsets: BTreeMap::new(),
            edits: host_edits,
            guard: guard.clone(),
        });
    }
    if !txt_edit.add.is_empty() || !txt_edit.remove.is_empty() {
        out.push(NameChange {
            name: owner_name.clone(),
            rrsets: BTreeMap::new(),
            edits: BTreeMap::from([(RecordKind::Txt, txt_edit)]),
            guard,
        });
    }
    (!out.is_empty()).then_some(out)
}

/// A sharing glbc's decision for a free or shared name: the winner among
/// our roots (the one our TXT record names, else the oldest) adds its
/// addresses and its TXT record, removes those of its old addresses no
/// other owner lists; with no healthy target it keeps its last ones.
fn share(
    config: &PlanConfig,
    name: &SharedName<'_>,
    claimants: &[Claim<'_>],
    root_targets: &BTreeMap<&RootKey, BTreeMap<RecordKind, Rrset>>,
    out: &mut Plan,
) {
    let SharedName {
        zone_name,
        zone,
        host,
        owner_name,
        owners,
    } = *name;
    let mine = owners.iter().find(|o| o.owner == config.owner);
    let others: BTreeSet<IpAddr> = owners
        .iter()
        .filter(|o| o.owner != config.owner)
        .flat_map(|o| o.targets.iter().copied())
        .collect();
    let current = mine.and_then(|m| RootKey::parse(&m.root));
    let Some(winner) = claimants
        .iter()
        .find(|c| Some(&c.root.key) == current.as_ref())
        .or(claimants.first())
    else {
        return;
    };
    let old: BTreeSet<IpAddr> = mine.map(|m| m.targets.clone()).unwrap_or_default();
    let wanted = root_targets
        .get(&winner.root.key)
        .map(addresses)
        .unwrap_or_default();
    let (new, retained) = if wanted.is_empty() {
        (old.clone(), !old.is_empty())
    } else {
        (wanted, false)
    };
    let outcome = if new.is_empty() {
        HostOutcome::NoTargets {
            zone: zone_name.clone(),
            name: host.clone(),
        }
    } else {
        let new_txt = ownership::content_shared(&config.owner, &winner.root.key.to_string(), &new);
        let known_txt = zone.rrset(owner_name, RecordKind::Txt);
        let old_txt = known_txt.and_then(|t| {
            t.data
                .iter()
                .find(|d| ownership::parse(d).is_some_and(|o| o.owner == config.owner))
        });
        let mut txt = known_txt
            .cloned()
            .unwrap_or_else(|| Rrset::new(config.ttl, []));
        txt.ttl = config.ttl;
        if let Some(old_txt) = old_txt {
            txt.data.remove(old_txt);
        }
        txt.data.insert(new_txt.clone());
        if let Some(changes) = edits(
            zone,
            host,
            owner_name,
            (&old, &new, &others),
            (old_txt, Some(new_txt)),
            config.ttl,
        ) {
            out.edits
                .entry(zone_name.clone())
                .or_default()
                .extend(changes);
            // Only the hosts with changes (the publisher of a host is read
            // when an UPDATE of it is accepted).
            out.publishers
                .entry(zone_name.clone())
                .or_default()
                .insert(host.clone(), winner.root.key.clone());
        }
        HostOutcome::Publish {
            zone: zone_name.clone(),
            name: host.clone(),
            rrsets: address_rrsets(&new.union(&others).copied().collect(), config.ttl),
            ownership: owner_name.clone(),
            txt,
            retained,
        }
    };
    for claim in claimants {
        let outcome = if claim.root.key == winner.root.key {
            outcome.clone()
        } else {
            HostOutcome::Conflict {
                name: host.clone(),
                reason: format!("{host} is published for root {}", winner.root.key),
                wanted: root_targets
                    .get(&claim.root.key)
                    .cloned()
                    .unwrap_or_default(),
            }
        };
        if let Some(plan) = out.roots.get_mut(&claim.root.key) {
            plan.hosts[claim.index].outcome = outcome;
        }
    }
}

/// A sharing owner leaving a name that others still share: its addresses
/// that no other owner lists, and its TXT record, go.
fn leave_shared(
    config: &PlanConfig,
    zone: &ZoneRecords,
    host: &DnsName,
    owner_name: &DnsName,
    owners: &[Owner],
) -> Option<Vec<NameChange>> {
    let mine = owners
        .iter()
        .find(|o| o.owner == config.owner && config.owns_root(&o.root))?;
    let others: BTreeSet<IpAddr> = owners
        .iter()
        .filter(|o| o.owner != config.owner)
        .flat_map(|o| o.targets.iter().copied())
        .collect();
    let old_txt = zone.rrset(owner_name, RecordKind::Txt).and_then(|t| {
        t.data
            .iter()
            .find(|d| ownership::parse(d).is_some_and(|o| o.owner == config.owner))
    });
    edits(
        zone,
        host,
        owner_name,
        (&mine.targets, &BTreeSet::new(), &others),
        (old_txt, None),
        config.ttl,
    )
}

/// Whether a zone still holds an ownership record of `owner` naming `root`.
pub fn still_owns(zone: &ZoneRecords, owner: &str, root: &RootKey) -> bool {
    let root = root.to_string();
    zone.names.iter().any(|(name, records)| {
        ownership::host_of(name).is_some()
            && records.rrsets.get(&RecordKind::Txt).is_some_and(|txt| {
                txt.data
                    .iter()
                    .filter_map(|t| ownership::parse(t))
                    .any(|o| o.owner == owner && o.root == root)
            })
    })
}

#[cfg(test)]
mod tests;
