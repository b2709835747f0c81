//! Desired records against published records: the changes to send, grouped
//! into UPDATE messages. Pure.

use std::collections::BTreeMap;

use super::dns::DnsError;
use super::dns::rfc2136::RrsetChange;
use super::records::{DnsName, RecordKind, Rrset, ZoneRecords, ownership, rdata};

/// What one name should hold, for the kinds the glbc manages there: `None`
/// means "no RRset of this kind". Kinds not listed are left alone.
pub type DesiredName = BTreeMap<RecordKind, Option<Rrset>>;

/// The RRsets of one name to replace (`None`: delete).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameChange {
    pub name: DnsName,
    pub rrsets: BTreeMap<RecordKind, Option<Rrset>>,
}

impl NameChange {
    fn wire_len(&self) -> usize {
        self.rrsets
            .values()
            .map(|r| self.name.wire_len() + 10 + r.as_ref().map_or(0, |r| r.wire_len(&self.name)))
            .sum()
    }
}

/// The changes that turn `known` into `desired`: one entry per name that
/// differs, holding only the kinds that differ (content or TTL).
pub fn diff(desired: &BTreeMap<DnsName, DesiredName>, known: &ZoneRecords) -> Vec<NameChange> {
    desired
        .iter()
        .filter_map(|(name, kinds)| {
            let rrsets: BTreeMap<RecordKind, Option<Rrset>> = kinds
                .iter()
                .filter(|(kind, want)| {
                    let want = want.as_ref().filter(|r| !r.data.is_empty());
                    want != known.rrset(name, **kind)
                })
                .map(|(kind, want)| (*kind, want.clone().filter(|r| !r.data.is_empty())))
                .collect();
            (!rrsets.is_empty()).then(|| NameChange {
                name: name.clone(),
                rrsets,
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
        let unit_size: usize = unit.iter().map(NameChange::wire_len).sum();
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

/// The RRset replacements of a batch, deletions first: a name going from
/// CNAME to A (or back) must lose the old RRset before it can take the new
/// one, since a CNAME cannot share its name with other data.
pub fn rrset_changes(batch: &[NameChange]) -> Result<Vec<RrsetChange>, DnsError> {
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

    #[test]
    fn deletions_come_first_in_a_message() {
        let www = name("www.z.test");
        let batch = vec![NameChange {
            name: www,
            rrsets: BTreeMap::from([
                (RecordKind::A, Some(rrset(60, &["127.0.1.1"]))),
                (RecordKind::Cname, None),
            ]),
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
            });
            changes.push(NameChange {
                name: host,
                rrsets: BTreeMap::from([(RecordKind::A, Some(rrset(60, &["127.0.1.1"])))]),
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
            // Every name that changed is in exactly one batch.
            let batched: Vec<NameChange> =
                batches(changes.clone(), 300).into_iter().flatten().collect();
            prop_assert_eq!(batched.len(), changes.len());
        }
    }
}
