//! The DNS plan: GlobalIngresses + cluster health + what is published →
//! the records every name should hold, and what each root gets. Pure.
//!
//! Rules, for every host of every root:
//! - the targets are the addresses of the root's clusters that are healthy;
//!   IPv4 addresses become A records, IPv6 addresses AAAA;
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

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use k8s_openapi::jiff::Timestamp;

use super::diff::DesiredName;
use super::records::{DnsName, RecordKind, Rrset, ZoneRecords, address_kind, ownership};
use crate::apis::ClusterIngressStatus;

/// A root Ingress (and its GlobalIngress): `namespace/name`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RootKey {
    pub namespace: String,
    pub name: String,
}

impl RootKey {
    pub fn new(namespace: &str, name: &str) -> Self {
        Self {
            namespace: namespace.to_string(),
            name: name.to_string(),
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

/// One GlobalIngress, as the plan needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct RootInput {
    pub key: RootKey,
    /// When it was created: the older root wins a host two roots want.
    pub created: Option<Timestamp>,
    /// Being deleted: its names are released.
    pub deleting: bool,
    /// No live root Ingress controls it: nothing is published for it and
    /// its names are released.
    pub orphan: bool,
    /// spec.hosts.
    pub hosts: Vec<String>,
    /// status.clusters: where the root is placed and the addresses there.
    pub clusters: Vec<ClusterIngressStatus>,
}

/// The glbc's settings that the plan depends on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanConfig {
    pub zones: Vec<DnsName>,
    pub owner: String,
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
    pub roots: &'a [RootInput],
    /// Names of the Clusters that are healthy now.
    pub healthy: &'a BTreeSet<String>,
    /// Load-balancer hostnames resolved to addresses (only those that need it).
    pub resolved: &'a BTreeMap<DnsName, Vec<IpAddr>>,
    /// What each zone holds; a zone missing here has not been read yet.
    pub known: &'a BTreeMap<DnsName, ZoneRecords>,
}

/// The outcome of the plan.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// Per zone: every name the glbc may write, and what it should hold.
    pub zones: BTreeMap<DnsName, BTreeMap<DnsName, DesiredName>>,
    /// Per zone: the root that publishes each host (unit) the plan writes.
    pub publishers: BTreeMap<DnsName, BTreeMap<DnsName, RootKey>>,
    /// Per root (live and in scope): what happens to each of its hosts.
    pub roots: BTreeMap<RootKey, RootPlan>,
}

/// What the plan decided for one root.
#[derive(Clone, Debug, Default, PartialEq)]
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
}

/// One host of a root.
#[derive(Clone, Debug, PartialEq)]
pub struct HostPlan {
    /// As written in spec.hosts.
    pub host: String,
    pub outcome: HostOutcome,
}

#[derive(Clone, Debug, PartialEq)]
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
}

fn holder(zone: &ZoneRecords, host: &DnsName, owner_name: &DnsName, config: &PlanConfig) -> Holder {
    if let Some(txt) = zone.rrset(owner_name, RecordKind::Txt) {
        let parsed: Vec<_> = txt.data.iter().map(|t| ownership::parse(t)).collect();
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

fn targets(root: &RootInput, healthy: &BTreeSet<String>) -> Targets {
    let mut t = Targets::default();
    for cluster in root
        .clusters
        .iter()
        .filter(|c| healthy.contains(&c.cluster))
    {
        for address in &cluster.addresses {
            if let Some(ip) = &address.ip {
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
    roots: &[RootInput],
    healthy: &BTreeSet<String>,
    config: &PlanConfig,
) -> BTreeSet<DnsName> {
    roots
        .iter()
        .filter(|r| !r.deleting && !r.orphan && config.in_scope(&r.key.namespace))
        .flat_map(|r| {
            let t = targets(r, healthy);
            if t.ips.is_empty() && t.hostnames.len() == 1 {
                BTreeSet::new()
            } else {
                t.hostnames
            }
        })
        .collect()
}

/// The RRsets for a root's targets, and the hostnames that had no address.
fn rrsets_for(
    t: &Targets,
    resolved: &BTreeMap<DnsName, Vec<IpAddr>>,
    ttl: u32,
) -> (BTreeMap<RecordKind, Rrset>, Vec<String>) {
    let mut out: BTreeMap<RecordKind, Rrset> = BTreeMap::new();
    if t.ips.is_empty()
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

fn by_age(a: &RootInput, b: &RootInput) -> Ordering {
    (a.created, &a.key).cmp(&(b.created, &b.key))
}

/// A claim of a root on a host name.
struct Claim<'a> {
    root: &'a RootInput,
    /// Index of the host in the root's plan.
    index: usize,
}

/// Computes the plan.
pub fn plan(config: &PlanConfig, input: PlanInput<'_>) -> Plan {
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
    let mut live: Vec<&RootInput> = input
        .roots
        .iter()
        .filter(|r| !r.deleting && !r.orphan && config.in_scope(&r.key.namespace))
        .collect();
    live.sort_by(|a, b| by_age(a, b));

    // Every host of every live root: classified, and claims on valid names.
    let mut claims: BTreeMap<(DnsName, DnsName), Vec<Claim<'_>>> = BTreeMap::new();
    let mut root_targets: BTreeMap<&RootKey, BTreeMap<RecordKind, Rrset>> = BTreeMap::new();
    for root in &live {
        let t = targets(root, input.healthy);
        let (rrsets, unresolved) = rrsets_for(&t, input.resolved, config.ttl);
        let healthy = root
            .clusters
            .iter()
            .filter(|c| input.healthy.contains(&c.cluster))
            .count();
        let mut plan = RootPlan {
            orphan: false,
            placed: root.clusters.len(),
            healthy,
            hosts: Vec::new(),
            problems: t.problems.into_iter().chain(unresolved).collect(),
        };
        let mut seen = BTreeSet::new();
        for host in &root.hosts {
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
    let mut decided: BTreeSet<(DnsName, DnsName)> = BTreeSet::new();
    for ((zone_name, host), claimants) in &claims {
        let Some(zone) = input.known.get(zone_name) else {
            continue;
        };
        let Some(owner_name) = ownership::name_of(host) else {
            continue;
        };
        decided.insert((zone_name.clone(), host.clone()));
        let held = holder(zone, host, &owner_name, config);
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
            Holder::Foreign(_) | Holder::Unowned(_) => None,
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
                    out.publishers
                        .entry(zone_name.clone())
                        .or_default()
                        .insert(host.clone(), claim.root.key.clone());
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
            let zone_out = out.zones.entry(zone_name.clone()).or_default();
            zone_out.insert(host.clone(), host_kinds);
            zone_out.insert(owner_name, DesiredName::from([(RecordKind::Txt, txt)]));
        }
    }

    // Names our ownership records claim that no live root wants: released.
    for (zone_name, zone) in input.known {
        for (name, records) in &zone.names {
            let Some(host) = ownership::host_of(name) else {
                continue;
            };
            if decided.contains(&(zone_name.clone(), host.clone())) {
                continue;
            }
            let Some(txt) = records.rrsets.get(&RecordKind::Txt) else {
                continue;
            };
            let ours = txt.data.len() == 1
                && txt
                    .data
                    .iter()
                    .filter_map(|t| ownership::parse(t))
                    .any(|o| o.owner == config.owner && config.owns_root(&o.root));
            if !ours {
                continue;
            }
            let zone_out = out.zones.entry(zone_name.clone()).or_default();
            zone_out.insert(
                host.clone(),
                RecordKind::HOST.into_iter().map(|k| (k, None)).collect(),
            );
            zone_out.insert(name.clone(), DesiredName::from([(RecordKind::Txt, None)]));
        }
    }
    out
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
