//! Desired records against published records: the changes to send, grouped
//! into UPDATE messages, each guarded by RFC 2136 prerequisites. Pure.
//!
//! The guard of a unit (a host and its ownership name) comes from what the
//! zone is known to hold there when the changes are computed:
//! - no ownership record (a free name being claimed): no A, AAAA or CNAME
//!   at the host and no TXT at the ownership name;
//! - an ownership record (ours): exactly that TXT RRset.
//!
//! So an UPDATE built from a stale view of the zone fails as a whole on the
//! server instead of overwriting what someone else wrote meanwhile.

use std::collections::{BTreeMap, BTreeSet};

use super::dns::DnsError;
use super::dns::rfc2136::{Prerequisite, RecordChange, RrsetChange, Update};
use super::records::{DnsName, RecordKind, Rrset, ZoneRecords, ownership, rdata};

/// What one name should hold, for the kinds the glbc manages there: `None`
/// means "no RRset of this kind". Kinds not listed are left alone.
pub type DesiredName = BTreeMap<RecordKind, Option<Rrset>>;

/// A condition on the zone that an UPDATE requires (RFC 2136 §2.4).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Guard {
    /// No RRset of this kind at the name (§2.4.3).
    Absent { name: DnsName, kind: RecordKind },
    /// The RRset of this kind at the name holds exactly these data (§2.4.2).
    Exactly {
        name: DnsName,
        kind: RecordKind,
        data: BTreeSet<String>,
    },
}

impl Guard {
    /// Whether `zone` satisfies it (what the server checks).
    pub fn holds(&self, zone: &ZoneRecords) -> bool {
        match self {
            Self::Absent { name, kind } => zone.rrset(name, *kind).is_none(),
            Self::Exactly { name, kind, data } => {
                zone.rrset(name, *kind).is_some_and(|r| &r.data == data)
            }
        }
    }

    fn prerequisite(&self) -> Result<Prerequisite, DnsError> {
        Ok(match self {
            Self::Absent { name, kind } => Prerequisite::Absent {
                name: name.to_name()?,
                record_type: kind.record_type(),
            },
            Self::Exactly { name, kind, data } => Prerequisite::Exactly {
                name: name.to_name()?,
                record_type: kind.record_type(),
                data: data
                    .iter()
                    .map(|d| rdata(*kind, d))
                    .collect::<Result<_, _>>()?,
            },
        })
    }
}

/// The guard of the unit `unit` (a host) given what the zone is known to
/// hold: see the module documentation.
pub fn guard_of(unit: &DnsName, known: &ZoneRecords) -> Vec<Guard> {
    let owner_name = ownership::name_of(unit);
    if let Some(owner_name) = &owner_name
        && let Some(txt) = known.rrset(owner_name, RecordKind::Txt)
    {
        return vec![Guard::Exactly {
            name: owner_name.clone(),
            kind: RecordKind::Txt,
            data: txt.data.clone(),
        }];
    }
    let mut guard: Vec<Guard> = RecordKind::HOST
        .into_iter()
        .map(|kind| Guard::Absent {
            name: unit.clone(),
            kind,
        })
        .collect();
    if let Some(owner_name) = owner_name {
        guard.push(Guard::Absent {
            name: owner_name,
            kind: RecordKind::Txt,
        });
    }
    guard
}

/// Records added to, or removed from, one RRset, leaving its other records
/// alone (how owners sharing a name change only their own).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordEdit {
    pub ttl: u32,
    pub add: BTreeSet<String>,
    pub remove: BTreeSet<String>,
}

/// The RRsets of one name to replace (`None`: delete), the records to add
/// or remove, and the guard of its unit (the same for the host and its
/// ownership name).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameChange {
    pub name: DnsName,
    pub rrsets: BTreeMap<RecordKind, Option<Rrset>>,
    pub edits: BTreeMap<RecordKind, RecordEdit>,
    pub guard: Vec<Guard>,
}

impl NameChange {
    /// Approximate size on the wire of its changes (not of its guard).
    fn wire_len(&self) -> usize {
        let rrsets: usize = self
            .rrsets
            .values()
            .map(|r| self.name.wire_len() + 10 + r.as_ref().map_or(0, |r| r.wire_len(&self.name)))
            .sum();
        let edits: usize = self
            .edits
            .values()
            .flat_map(|e| e.add.iter().chain(&e.remove))
            .map(|d| self.name.wire_len() + 10 + d.len() + 1 + d.len() / 255)
            .sum();
        rrsets + edits
    }
}

/// Approximate size on the wire of a unit's guard: its names also travel in
/// the unit's changes, so each is a 2-octet compression pointer.
fn guard_wire_len(guard: &[Guard]) -> usize {
    guard
        .iter()
        .map(|g| match g {
            Guard::Absent { .. } => 2 + 10,
            Guard::Exactly { data, .. } => data
                .iter()
                .map(|d| 2 + 10 + d.len() + 1 + d.len() / 255)
                .sum(),
        })
        .sum()
}

/// Whether `known` holds something else at `name` than `want` (of that
/// kind; `None` or no data: no RRset).
fn kind_differs(
    known: &ZoneRecords,
    name: &DnsName,
    kind: RecordKind,
    want: Option<&Rrset>,
) -> bool {
    let want = want.filter(|r| !r.data.is_empty());
    want != known.rrset(name, kind)
}

/// Whether [`diff`] would change `name` to make it hold `kinds`.
pub fn differs(name: &DnsName, kinds: &DesiredName, known: &ZoneRecords) -> bool {
    kinds
        .iter()
        .any(|(kind, want)| kind_differs(known, name, *kind, want.as_ref()))
}

/// The changes that turn `known` into `desired`: one entry per name that
/// differs, holding only the kinds that differ (content or TTL).
pub fn diff(desired: &BTreeMap<DnsName, DesiredName>, known: &ZoneRecords) -> Vec<NameChange> {
    desired
        .iter()
        .filter_map(|(name, kinds)| {
            let rrsets: BTreeMap<RecordKind, Option<Rrset>> = kinds
                .iter()
                .filter(|(kind, want)| kind_differs(known, name, **kind, want.as_ref()))
                .map(|(kind, want)| (*kind, want.clone().filter(|r| !r.data.is_empty())))
                .collect();
            (!rrsets.is_empty()).then(|| NameChange {
                name: name.clone(),
                rrsets,
                edits: BTreeMap::new(),
                guard: guard_of(&ownership::unit_of(name), known),
            })
        })
        .collect()
}

/// What the zone holds once `changes` are applied (what the server does
/// with an UPDATE built from them).
pub fn apply(known: &mut ZoneRecords, changes: &[NameChange]) {
    for change in changes {
        let entry = known.names.entry(change.name.clone()).or_default();
        for (kind, rrset) in &change.rrsets {
            match rrset {
                Some(rrset) if !rrset.data.is_empty() => {
                    entry.rrsets.insert(*kind, rrset.clone());
                }
                _ => {
                    entry.rrsets.remove(kind);
                }
            }
        }
        for (kind, edit) in &change.edits {
            let rrset = entry
                .rrsets
                .entry(*kind)
                .or_insert_with(|| Rrset::new(edit.ttl, []));
            for datum in &edit.remove {
                rrset.data.remove(datum);
            }
            if !edit.add.is_empty() {
                rrset.ttl = edit.ttl;
                rrset.data.extend(edit.add.iter().cloned());
            }
            if rrset.data.is_empty() {
                entry.rrsets.remove(kind);
            }
        }
        if entry.is_empty() {
            known.names.remove(&change.name);
        }
    }
}

/// The changes grouped into messages of at most about `budget` octets.
/// A host and its ownership name always travel in the same message, so
/// claiming or releasing a name is atomic; a group larger than the budget
/// gets a message of its own.
pub fn batches(changes: Vec<NameChange>, budget: usize) -> Vec<Vec<NameChange>> {
    let mut units: BTreeMap<DnsName, Vec<NameChange>> = BTreeMap::new();
    for change in changes {
        units
            .entry(ownership::unit_of(&change.name))
            .or_default()
            .push(change);
    }
    let mut out: Vec<Vec<NameChange>> = Vec::new();
    let mut size = 0;
    for (_, unit) in units {
        let unit_size: usize = unit.iter().map(NameChange::wire_len).sum::<usize>()
            + unit.first().map_or(0, |c| guard_wire_len(&c.guard));
        if out.is_empty() || size + unit_size > budget {
            out.push(Vec::new());
            size = 0;
        }
        size += unit_size;
        if let Some(last) = out.last_mut() {
            last.extend(unit);
        }
    }
    out
}

/// The hosts (units) a batch touches.
pub fn units(batch: &[NameChange]) -> Vec<DnsName> {
    let mut units: Vec<DnsName> = batch.iter().map(|c| ownership::unit_of(&c.name)).collect();
    units.dedup();
    units
}

/// The UPDATE of a batch: the guards of its units as prerequisites (each
/// once), and its RRset replacements.
pub fn update_of(batch: &[NameChange]) -> Result<Update, DnsError> {
    let guards: BTreeSet<&Guard> = batch.iter().flat_map(|c| &c.guard).collect();
    Ok(Update {
        prerequisites: guards
            .into_iter()
            .map(Guard::prerequisite)
            .collect::<Result<_, _>>()?,
        rrsets: rrset_changes(batch)?,
        records: record_changes(batch)?,
    })
}

/// The record additions and removals of a batch, removals first.
fn record_changes(batch: &[NameChange]) -> Result<Vec<RecordChange>, DnsError> {
    let mut removals = Vec::new();
    let mut additions = Vec::new();
    for change in batch {
        let name = change.name.to_name()?;
        for (kind, edit) in &change.edits {
            let data = |set: &BTreeSet<String>| -> Result<Vec<_>, DnsError> {
                set.iter().map(|d| rdata(*kind, d)).collect()
            };
            if !edit.remove.is_empty() {
                removals.push(RecordChange::Remove {
                    name: name.clone(),
                    data: data(&edit.remove)?,
                });
            }
            if !edit.add.is_empty() {
                additions.push(RecordChange::Add {
                    name: name.clone(),
                    ttl: edit.ttl,
                    data: data(&edit.add)?,
                });
            }
        }
    }
    removals.extend(additions);
    Ok(removals)
}

/// The RRset replacements of a batch, deletions first: a name going from
/// CNAME to A (or back) must lose the old RRset before it can take the new
/// one, since a CNAME cannot share its name with other data.
fn rrset_changes(batch: &[NameChange]) -> Result<Vec<RrsetChange>, DnsError> {
    let mut deletions = Vec::new();
    let mut replacements = Vec::new();
    for change in batch {
        let name = change.name.to_name()?;
        for (kind, rrset) in &change.rrsets {
            match rrset {
                Some(rrset) => replacements.push(RrsetChange {
                    name: name.clone(),
                    record_type: kind.record_type(),
                    ttl: rrset.ttl,
                    data: rrset
                        .data
                        .iter()
                        .map(|d| rdata(*kind, d))
                        .collect::<Result<_, _>>()?,
                }),
                None => deletions.push(RrsetChange {
                    name: name.clone(),
                    record_type: kind.record_type(),
                    ttl: 0,
                    data: vec![],
                }),
            }
        }
    }
    deletions.extend(replacements);
    Ok(deletions)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;
    use crate::glbc::records::NameRecords;

    fn name(s: &str) -> DnsName {
        DnsName::new_unchecked(s)
    }

    fn rrset(ttl: u32, data: &[&str]) -> Rrset {
        Rrset::new(ttl, data.iter().map(|d| d.to_string()))
    }

    #[test]
    fn only_differing_kinds_are_sent() {
        let mut known = ZoneRecords::new(name("z.test"));
        let www = name("www.z.test");
        known.names.insert(
            www.clone(),
            NameRecords {
                rrsets: BTreeMap::from([
                    (RecordKind::A, rrset(60, &["127.0.1.1"])),
                    (RecordKind::Aaaa, rrset(60, &["::1"])),
                ]),
                others: BTreeSet::from(["MX".to_string()]),
            },
        );
        let desired = BTreeMap::from([(
            www.clone(),
            DesiredName::from([
                (RecordKind::A, Some(rrset(60, &["127.0.1.1"]))),
                (RecordKind::Aaaa, Some(rrset(30, &["::1"]))),
                (RecordKind::Cname, None),
            ]),
        )]);
        let changes = diff(&desired, &known);
        assert_eq!(
            changes,
            vec![NameChange {
                name: www.clone(),
                rrsets: BTreeMap::from([(RecordKind::Aaaa, Some(rrset(30, &["::1"])))]),
                edits: BTreeMap::new(),
                guard: guard_of(&www, &known),
            }]
        );
        apply(&mut known, &changes);
        assert!(diff(&desired, &known).is_empty());
        assert_eq!(known.names[&www].others, BTreeSet::from(["MX".to_string()]));
    }

    #[test]
    fn deleting_everything_removes_the_name() {
        let mut known = ZoneRecords::new(name("z.test"));
        let www = name("www.z.test");
        known.names.insert(
            www.clone(),
            NameRecords {
                rrsets: BTreeMap::from([(RecordKind::Cname, rrset(60, &["lb.example."]))]),
                others: BTreeSet::new(),
            },
        );
        let desired = BTreeMap::from([(
            www.clone(),
            RecordKind::HOST.into_iter().map(|k| (k, None)).collect(),
        )]);
        let changes = diff(&desired, &known);
        assert_eq!(changes.len(), 1);
        apply(&mut known, &changes);
        assert!(known.names.is_empty());
    }

    /// `z.test` where `host` holds `a` and its ownership name holds `txt`.
    fn zone_with(host: &DnsName, a: Option<&str>, txt: Option<&str>) -> ZoneRecords {
        let mut zone = ZoneRecords::new(name("z.test"));
        if let Some(a) = a {
            zone.names
                .entry(host.clone())
                .or_default()
                .rrsets
                .insert(RecordKind::A, rrset(60, &[a]));
        }
        if let Some(txt) = txt {
            zone.names
                .entry(ownership::name_of(host).unwrap())
                .or_default()
                .rrsets
                .insert(RecordKind::Txt, rrset(60, &[txt]));
        }
        zone
    }

    #[test]
    fn claiming_a_free_name_requires_it_to_be_free() {
        let www = name("www.z.test");
        let owner = ownership::name_of(&www).unwrap();
        let known = zone_with(&www, None, None);
        let desired = BTreeMap::from([
            (
                www.clone(),
                DesiredName::from([(RecordKind::A, Some(rrset(60, &["127.0.1.1"])))]),
            ),
            (
                owner.clone(),
                DesiredName::from([(RecordKind::Txt, Some(rrset(60, &["ours"])))]),
            ),
        ]);
        let changes = diff(&desired, &known);
        assert_eq!(changes.len(), 2);
        let expected = vec![
            Guard::Absent {
                name: www.clone(),
                kind: RecordKind::A,
            },
            Guard::Absent {
                name: www.clone(),
                kind: RecordKind::Aaaa,
            },
            Guard::Absent {
                name: www.clone(),
                kind: RecordKind::Cname,
            },
            Guard::Absent {
                name: owner.clone(),
                kind: RecordKind::Txt,
            },
        ];
        for change in &changes {
            assert_eq!(change.guard, expected, "{change:?}");
        }
        // One message: each prerequisite once, before the changes.
        let update = update_of(&changes).unwrap();
        assert_eq!(update.prerequisites.len(), 4);
        assert!(
            update
                .prerequisites
                .iter()
                .all(|p| matches!(p, Prerequisite::Absent { .. }))
        );
        assert_eq!(update.rrsets.len(), 2);
    }

    #[test]
    fn changing_an_owned_name_requires_exactly_its_ownership_record() {
        let www = name("www.z.test");
        let owner = ownership::name_of(&www).unwrap();
        let known = zone_with(&www, Some("127.0.1.1"), Some("ours"));
        let desired = BTreeMap::from([(
            www.clone(),
            DesiredName::from([(RecordKind::A, Some(rrset(60, &["127.0.1.2"])))]),
        )]);
        let changes = diff(&desired, &known);
        assert_eq!(changes.len(), 1);
        assert_eq!(
            changes[0].guard,
            vec![Guard::Exactly {
                name: owner.clone(),
                kind: RecordKind::Txt,
                data: BTreeSet::from(["ours".to_string()]),
            }]
        );
        let update = update_of(&changes).unwrap();
        assert!(matches!(
            update.prerequisites.as_slice(),
            [Prerequisite::Exactly { data, .. }] if data.len() == 1
        ));
        // Releasing it is guarded the same way.
        let release = BTreeMap::from([
            (
                www.clone(),
                RecordKind::HOST.into_iter().map(|k| (k, None)).collect(),
            ),
            (owner.clone(), DesiredName::from([(RecordKind::Txt, None)])),
        ]);
        for change in diff(&release, &known) {
            assert!(matches!(change.guard.as_slice(), [Guard::Exactly { .. }]));
        }
    }

    #[test]
    fn a_batch_of_several_units_carries_each_units_guard() {
        let (a, b) = (name("a.z.test"), name("b.z.test"));
        let mut known = zone_with(&a, Some("127.0.1.1"), Some("ours-a"));
        known.names.extend(zone_with(&b, None, None).names);
        let desired = BTreeMap::from([
            (
                a.clone(),
                DesiredName::from([(RecordKind::A, Some(rrset(60, &["127.0.1.9"])))]),
            ),
            (
                b.clone(),
                DesiredName::from([(RecordKind::A, Some(rrset(60, &["127.0.1.9"])))]),
            ),
        ]);
        let batches = batches(diff(&desired, &known), UPDATE_TEST_BUDGET);
        assert_eq!(batches.len(), 1);
        let update = update_of(&batches[0]).unwrap();
        let exactly = update
            .prerequisites
            .iter()
            .filter(|p| matches!(p, Prerequisite::Exactly { .. }))
            .count();
        let absent = update
            .prerequisites
            .iter()
            .filter(|p| matches!(p, Prerequisite::Absent { .. }))
            .count();
        assert_eq!((exactly, absent), (1, 4));
    }

    const UPDATE_TEST_BUDGET: usize = 32 * 1024;

    /// What the guard costs on the wire: one host with two A records and
    /// its ownership record, claimed (4 "RRset does not exist") and changed
    /// (the ownership record, value-dependent). Before/after, unsigned.
    #[test]
    fn the_guard_costs_a_few_dozen_octets() {
        use hickory_proto::serialize::binary::BinEncodable;
        let www = name("www.example.test");
        let owner = ownership::name_of(&www).unwrap();
        let txt = ownership::content("kcp-ingress-glbc", "default/web");
        let desired = BTreeMap::from([
            (
                www.clone(),
                DesiredName::from([(RecordKind::A, Some(rrset(60, &["127.0.1.1", "127.0.1.2"])))]),
            ),
            (
                owner.clone(),
                DesiredName::from([(RecordKind::Txt, Some(rrset(60, &[&txt])))]),
            ),
        ]);
        let zone = name("example.test").to_name().unwrap();
        let size = |update: &Update| {
            crate::glbc::dns::rfc2136::update_message(&zone, update)
                .unwrap()
                .to_bytes()
                .unwrap()
                .len()
        };
        let mut sizes = Vec::new();
        for known in [
            ZoneRecords::new(name("example.test")),
            zone_with(&www, Some("127.0.1.1"), Some(&txt)),
        ] {
            let changes = diff(&desired, &known);
            let guarded = update_of(&changes).unwrap();
            let bare = Update {
                prerequisites: vec![],
                ..guarded.clone()
            };
            sizes.push((size(&bare), size(&guarded)));
        }
        eprintln!(
            "UPDATE octets (unguarded, guarded): claim {:?}, change {:?}",
            sizes[0], sizes[1]
        );
        for (bare, guarded) in &sizes {
            assert!(guarded > bare && guarded - bare < 200, "{sizes:?}");
        }
    }

    #[test]
    fn deletions_come_first_in_a_message() {
        let www = name("www.z.test");
        let batch = vec![NameChange {
            name: www,
            rrsets: BTreeMap::from([
                (RecordKind::A, Some(rrset(60, &["127.0.1.1"]))),
                (RecordKind::Cname, None),
            ]),
            edits: BTreeMap::new(),
            guard: vec![],
        }];
        let changes = rrset_changes(&batch).unwrap();
        let order: Vec<(String, usize)> = changes
            .iter()
            .map(|c| (c.record_type.to_string(), c.data.len()))
            .collect();
        assert_eq!(order, [("CNAME".to_string(), 0), ("A".to_string(), 1)]);
    }

    #[test]
    fn a_host_and_its_ownership_record_share_a_message() {
        let mut changes = Vec::new();
        for i in 0..50 {
            let host = name(&format!("h{i:02}.z.test"));
            changes.push(NameChange {
                name: ownership::name_of(&host).unwrap(),
                rrsets: BTreeMap::from([(RecordKind::Txt, Some(rrset(60, &["owner"])))]),
                edits: BTreeMap::new(),
                guard: vec![],
            });
            changes.push(NameChange {
                name: host,
                rrsets: BTreeMap::from([(RecordKind::A, Some(rrset(60, &["127.0.1.1"])))]),
                edits: BTreeMap::new(),
                guard: vec![],
            });
        }
        let batches = batches(changes, 1000);
        assert!(batches.len() > 1, "{} batches", batches.len());
        let mut seen = 0;
        for batch in &batches {
            let us = units(batch);
            assert_eq!(batch.len(), 2 * us.len(), "{batch:?}");
            seen += us.len();
        }
        assert_eq!(seen, 50);
    }

    fn arb_rrset(kind: RecordKind) -> impl Strategy<Value = Option<Rrset>> {
        let datum = match kind {
            RecordKind::A => (1u8..4).prop_map(|i| format!("127.0.1.{i}")).boxed(),
            RecordKind::Aaaa => (1u8..4).prop_map(|i| format!("fd00::{i}")).boxed(),
            RecordKind::Cname => (1u8..3).prop_map(|i| format!("lb{i}.example.")).boxed(),
            RecordKind::Txt => (1u8..3).prop_map(|i| format!("owner-{i}")).boxed(),
        };
        proptest::option::of((
            prop::sample::select(vec![30u32, 60]),
            prop::collection::btree_set(datum, 1..3),
        ))
        .prop_map(|o| o.map(|(ttl, data)| Rrset { ttl, data }))
    }

    fn arb_name_records() -> impl Strategy<Value = NameRecords> {
        (
            arb_rrset(RecordKind::A),
            arb_rrset(RecordKind::Aaaa),
            arb_rrset(RecordKind::Cname),
            arb_rrset(RecordKind::Txt),
            prop::collection::btree_set(prop::sample::select(vec!["MX", "SRV"]), 0..2),
        )
            .prop_map(|(a, aaaa, cname, txt, others)| NameRecords {
                rrsets: [
                    (RecordKind::A, a),
                    (RecordKind::Aaaa, aaaa),
                    (RecordKind::Cname, cname),
                    (RecordKind::Txt, txt),
                ]
                .into_iter()
                .filter_map(|(k, r)| r.map(|r| (k, r)))
                .collect(),
                others: others.into_iter().map(String::from).collect(),
            })
    }

    fn arb_zone() -> impl Strategy<Value = ZoneRecords> {
        prop::collection::btree_map(0u8..8, arb_name_records(), 0..6).prop_map(|names| {
            ZoneRecords {
                zone: name("z.test"),
                names: names
                    .into_iter()
                    .map(|(i, r)| (name(&format!("n{i}.z.test")), r))
                    .filter(|(_, r)| !r.is_empty())
                    .collect(),
            }
        })
    }

    fn arb_desired() -> impl Strategy<Value = BTreeMap<DnsName, DesiredName>> {
        let kinds = prop::collection::btree_map(
            prop::sample::select(vec![
                RecordKind::A,
                RecordKind::Aaaa,
                RecordKind::Cname,
                RecordKind::Txt,
            ]),
            Just(()),
            1..4,
        );
        prop::collection::btree_map(0u8..8, kinds, 0..6)
            .prop_flat_map(|names| {
                let entries: Vec<_> = names
                    .into_iter()
                    .map(|(i, kinds)| {
                        let rrsets: Vec<_> = kinds
                            .into_keys()
                            .map(|k| arb_rrset(k).prop_map(move |r| (k, r)))
                            .collect();
                        (Just(name(&format!("n{i}.z.test"))), rrsets)
                    })
                    .collect();
                entries
            })
            .prop_map(|entries| {
                entries
                    .into_iter()
                    .map(|(n, rrsets)| (n, rrsets.into_iter().collect()))
                    .collect()
            })
    }

    /// The zone's managed content as a desired state for the same names.
    fn as_desired(zone: &ZoneRecords) -> BTreeMap<DnsName, DesiredName> {
        zone.names
            .iter()
            .map(|(n, r)| {
                let kinds = [
                    RecordKind::A,
                    RecordKind::Aaaa,
                    RecordKind::Cname,
                    RecordKind::Txt,
                ];
                (
                    n.clone(),
                    kinds
                        .into_iter()
                        .map(|k| (k, r.rrsets.get(&k).cloned()))
                        .collect(),
                )
            })
            .collect()
    }

    proptest! {
        #[test]
        fn the_diff_of_a_state_against_itself_is_empty(zone in arb_zone()) {
            prop_assert!(diff(&as_desired(&zone), &zone).is_empty());
        }

        #[test]
        fn applying_the_diff_yields_the_desired_state(
            old in arb_zone(),
            desired in arb_desired(),
        ) {
            let changes = diff(&desired, &old);
            let mut new = old.clone();
            apply(&mut new, &changes);
            // The desired names now hold exactly what was asked ...
            prop_assert!(diff(&desired, &new).is_empty());
            for (name, kinds) in &desired {
                for (kind, want) in kinds {
                    prop_assert_eq!(new.rrset(name, *kind), want.as_ref());
                }
            }
            // ... and nothing else changed: other names, other kinds, other types.
            for (name, records) in &old.names {
                let after = new.names.get(name).cloned().unwrap_or_default();
                prop_assert_eq!(&after.others, &records.others);
                for (kind, rrset) in &records.rrsets {
                    let asked = desired.get(name).is_some_and(|k| k.contains_key(kind));
                    if !asked {
                        prop_assert_eq!(after.rrsets.get(kind), Some(rrset));
                    }
                }
            }
            for name in new.names.keys() {
                prop_assert!(old.names.contains_key(name) || desired.contains_key(name));
            }
            // Every guard holds on the state it was computed from, for the
            // units the plan may write (free, or with an ownership record).
            for change in &changes {
                let unit = ownership::unit_of(&change.name);
                let owned = ownership::name_of(&unit)
                    .is_some_and(|o| old.rrset(&o, RecordKind::Txt).is_some());
                let free = RecordKind::HOST.into_iter().all(|k| old.rrset(&unit, k).is_none());
                if owned || free {
                    prop_assert!(change.guard.iter().all(|g| g.holds(&old)), "{:?}", change);
                }
            }
            // Every name that changed is in exactly one batch.
            let batched: Vec<NameChange> =
                batches(changes.clone(), 300).into_iter().flatten().collect();
            prop_assert_eq!(batched.len(), changes.len());
        }
    }
}
