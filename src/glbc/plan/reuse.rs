//! What a pass keeps of its plan for the next one, so that the next plans
//! only the roots that changed: a root whose names held what the plan
//! wanted ("settled") and whose inputs stay the same gets the same plan,
//! as long as nothing else the plan reads changed (the clusters' health
//! and traffic, the resolved hostnames, the zones read from the server).
//! Pure; [`super::plan_reusing`] uses it.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};

use super::{HostOutcome, PlanInput, Planned, RootInput, RootKey, RootPlan};
use crate::glbc::records::DnsName;
use crate::hash::Map;

/// The plans of the last pass, by root, with what they were made from.
#[derive(Debug, Default)]
pub struct Reuse {
    /// The inputs shared by every root when the plans were made (`None`:
    /// nothing to reuse).
    epoch: Option<u64>,
    /// Per root: its plan, what it was made of and whether it settled.
    roots: Map<RootKey, Kept>,
    /// Names the last plan released (no live root wanted them): looked at
    /// again, in case their UPDATE did not go through.
    released: Vec<(DnsName, DnsName)>,
}

#[derive(Debug)]
struct Kept {
    plan: RootPlan,
    planned: Planned,
}

/// What one plan takes from a [`Reuse`].
#[derive(Debug, Default)]
pub(super) struct Taken {
    /// The settled roots' plans that still hold, with their digests
    /// ([`Planned::digest`]), in the order of the live roots given to
    /// [`Reuse::take`] (`None`: planned again; empty: nothing reused).
    pub plans: Vec<Option<(RootPlan, u64)>>,
    /// Names to look at for release: those of the roots planned again or
    /// gone, and those released last time. `None`: every name of the zones.
    pub names: Option<BTreeSet<(DnsName, DnsName)>>,
}

impl Reuse {
    /// Takes what `input` can reuse: nothing when the shared inputs
    /// changed (`epoch`), else the plans of the settled roots whose inputs
    /// are the same, except those with a name that a root planned again
    /// claims (`claimed`, computed from the roots not reused).
    pub(super) fn take(
        &mut self,
        epoch: Option<u64>,
        live: &[&RootInput<'_>],
        fingerprints: &[u64],
        claimed: impl Fn(&[&RootInput<'_>]) -> BTreeSet<(DnsName, DnsName)>,
    ) -> Taken {
        let mut kept = std::mem::take(&mut self.roots);
        let released = std::mem::take(&mut self.released);
        if epoch.is_none() || epoch != self.epoch {
            return Taken::default();
        }
        let mut plans: Vec<Option<(RootPlan, u64)>> = Vec::with_capacity(live.len());
        let mut again: Vec<&RootInput<'_>> = Vec::new();
        for (root, fingerprint) in live.iter().zip(fingerprints) {
            match kept.remove(&root.key) {
                Some(k) if k.planned.settled && k.planned.input == *fingerprint => {
                    plans.push(Some((k.plan, k.planned.digest)));
                }
                Some(k) => {
                    kept.insert(root.key.clone(), k);
                    again.push(root);
                    plans.push(None);
                }
                None => {
                    again.push(root);
                    plans.push(None);
                }
            }
        }
        // A settled root whose name another root now claims is planned
        // again (which of them wins is decided with every claim; its names
        // are claimed, so none of them is released).
        let claimed = claimed(&again);
        if !claimed.is_empty() {
            plans
                .iter_mut()
                .filter(|slot| {
                    slot.as_ref()
                        .is_some_and(|(plan, _)| names_of(plan).any(|n| claimed.contains(&n)))
                })
                .for_each(|slot| *slot = None);
        }
        // What the roots planned again, or gone, held may be released.
        let mut names: BTreeSet<(DnsName, DnsName)> = released.into_iter().collect();
        for k in kept.values() {
            names.extend(names_of(&k.plan));
        }
        Taken {
            plans,
            names: Some(names),
        }
    }

    /// Keeps `plans` (moved out of the plan made with `epoch`) for the next
    /// pass, with what each was made of (`planned`).
    pub fn keep(
        &mut self,
        epoch: Option<u64>,
        plans: BTreeMap<RootKey, RootPlan>,
        planned: &BTreeMap<RootKey, Planned>,
        released: Vec<(DnsName, DnsName)>,
    ) {
        self.epoch = epoch;
        self.released = released;
        if epoch.is_none() {
            // Never reused (a sharing glbc): nothing kept.
            self.roots.clear();
            return;
        }
        // Both are in key order: walked side by side, not looked up.
        let mut planned = planned.iter().peekable();
        self.roots = plans
            .into_iter()
            .filter_map(|(key, plan)| {
                while planned.next_if(|(k, _)| **k < key).is_some() {}
                let (_, &planned) = planned.next_if(|(k, _)| **k == key)?;
                Some((key, Kept { plan, planned }))
            })
            .collect();
    }
}

/// The names a root's plan holds (zone, host): those it publishes or
/// would publish.
fn names_of(plan: &RootPlan) -> impl Iterator<Item = (DnsName, DnsName)> + '_ {
    plan.hosts.iter().filter_map(|h| match &h.outcome {
        HostOutcome::Publish { zone, name, .. } | HostOutcome::NoTargets { zone, name } => {
            Some((zone.clone(), name.clone()))
        }
        _ => None,
    })
}

/// The inputs every root's plan reads besides its own: when they change,
/// nothing is reused. `reads` counts the reads of the zones from the
/// server (what they hold changes otherwise only by the plan's own
/// updates).
pub(super) fn epoch(input: &PlanInput<'_>, reads: u64) -> u64 {
    let mut h = crate::hash::hasher();
    input.healthy.hash(&mut h);
    for (cluster, t) in input.traffic {
        (cluster, t.weight, t.priority).hash(&mut h);
    }
    input.resolved.hash(&mut h);
    input.known.keys().for_each(|z| z.hash(&mut h));
    reads.hash(&mut h);
    h.finish()
}

/// What the plan reads of one root.
pub(super) fn fingerprint(root: &RootInput<'_>) -> u64 {
    let mut h = crate::hash::hasher();
    root.key.hash(&mut h);
    root.created.hash(&mut h);
    (root.deleting, root.orphan).hash(&mut h);
    root.hosts.hash(&mut h);
    for c in root.clusters.iter() {
        (&c.cluster, &c.addresses, c.healthy).hash(&mut h);
    }
    root.withdrawn.hash(&mut h);
    root.failing.hash(&mut h);
    root.withdrawn_addresses.hash(&mut h);
    root.probe_problem.hash(&mut h);
    root.probes.hash(&mut h);
    h.finish()
}
