//! What the embedded server holds of one zone, and how an UPDATE of the
//! glbc changes it: RFC 2136 prerequisites checked, then every change
//! applied, or none. The zone's SOA and NS records are made here. Pure.

use std::collections::BTreeMap;

use hickory_proto::rr::rdata::{NS, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::glbc::dns::rfc2136::{Prerequisite, RecordChange, Update};

/// Seconds a secondary waits between checks of the SOA serial (NOTIFY
/// tells it sooner), between retries, and before it drops the zone when
/// the primary does not answer.
const SOA_REFRESH: i32 = 60;
const SOA_RETRY: i32 = 10;
const SOA_EXPIRE: i32 = 7 * 24 * 3600;

/// Why an UPDATE was not applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A prerequisite does not hold (YXRRSET/NXRRSET).
    Prerequisite,
    /// A name outside the zone, or a type the glbc never writes there
    /// (the apex SOA and NS are the server's).
    NotZone(String),
}

/// One zone: the RRsets the glbc wrote, by name and type, and its serial.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneStore {
    origin: Name,
    nameservers: Vec<Name>,
    /// (name lower-cased, type) → (TTL, data without duplicates).
    rrsets: BTreeMap<(Name, RecordType), (u32, Vec<RData>)>,
    serial: u32,
    /// TTL of the SOA and NS records, and of negative answers.
    ttl: u32,
}

impl ZoneStore {
    /// An empty zone served by `nameservers` (at least one), starting at
    /// `serial` (the time in seconds: a restarted server still counts up).
    pub fn new(origin: Name, nameservers: Vec<Name>, serial: u32, ttl: u32) -> Self {
        Self {
            origin: origin.to_lowercase(),
            nameservers,
            rrsets: BTreeMap::new(),
            serial,
            ttl,
        }
    }

    pub fn origin(&self) -> &Name {
        &self.origin
    }

    pub fn serial(&self) -> u32 {
        self.serial
    }

    /// The zone's SOA record.
    pub fn soa(&self) -> Record {
        let mname = self
            .nameservers
            .first()
            .cloned()
            .unwrap_or_else(|| self.origin.clone());
        let rname = Name::from_ascii("hostmaster")
            .ok()
            .and_then(|h| h.append_domain(&self.origin).ok())
            .unwrap_or_else(|| self.origin.clone());
        Record::from_rdata(
            self.origin.clone(),
            self.ttl,
            RData::SOA(SOA::new(
                mname,
                rname,
                self.serial,
                SOA_REFRESH,
                SOA_RETRY,
                SOA_EXPIRE,
                self.ttl,
            )),
        )
    }

    /// Every record of the zone, SOA first, then NS, then the glbc's.
    pub fn records(&self) -> Vec<Record> {
        let mut out = vec![self.soa()];
        out.extend(self.nameservers.iter().map(|ns| {
            Record::from_rdata(self.origin.clone(), self.ttl, RData::NS(NS(ns.clone())))
        }));
        for ((name, _), (ttl, data)) in &self.rrsets {
            out.extend(
                data.iter()
                    .map(|d| Record::from_rdata(name.clone(), *ttl, d.clone())),
            );
        }
        out
    }

    /// The records of one type at one name (the SOA and NS at the apex too).
    pub fn lookup(&self, name: &Name, record_type: RecordType) -> Vec<Record> {
        let name = name.to_lowercase();
        if name == self.origin && matches!(record_type, RecordType::SOA | RecordType::NS) {
            return self
                .records()
                .into_iter()
                .filter(|r| r.record_type() == record_type && r.name == name)
                .collect();
        }
        self.rrsets
            .get(&(name.clone(), record_type))
            .map(|(ttl, data)| {
                data.iter()
                    .map(|d| Record::from_rdata(name.clone(), *ttl, d.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Applies `update` atomically; returns whether anything changed (the
    /// serial then goes up, to at least `now_serial`).
    pub fn apply(&mut self, update: &Update, now_serial: u32) -> Result<bool, Refusal> {
        for prerequisite in &update.prerequisites {
            let holds = match prerequisite {
                Prerequisite::Absent { name, record_type } => !self
                    .rrsets
                    .contains_key(&(name.to_lowercase(), *record_type)),
                Prerequisite::Exactly {
                    name,
                    record_type,
                    data,
                } => self
                    .rrsets
                    .get(&(name.to_lowercase(), *record_type))
                    .is_some_and(|(_, held)| same_set(held, data)),
            };
            if !holds {
                return Err(Refusal::Prerequisite);
            }
        }
        let mut next = self.rrsets.clone();
        for change in &update.rrsets {
            let key = self.key(&change.name, change.record_type)?;
            if change.data.is_empty() {
                next.remove(&key);
            } else {
                next.insert(key, (change.ttl, dedup(change.data.clone())));
            }
        }
        for change in &update.records {
            match change {
                RecordChange::Add { name, ttl, data } => {
                    for datum in data {
                        let key = self.key(name, datum.record_type())?;
                        let entry = next.entry(key).or_insert((*ttl, Vec::new()));
                        entry.0 = *ttl;
                        if !entry.1.contains(datum) {
                            entry.1.push(datum.clone());
                        }
                    }
                }
                RecordChange::Remove { name, data } => {
                    for datum in data {
                        let key = self.key(name, datum.record_type())?;
                        if let Some(entry) = next.get_mut(&key) {
                            entry.1.retain(|d| d != datum);
                            if entry.1.is_empty() {
                                next.remove(&key);
                            }
                        }
                    }
                }
            }
        }
        if next == self.rrsets {
            return Ok(false);
        }
        self.rrsets = next;
        self.serial = self.serial.wrapping_add(1).max(now_serial);
        Ok(true)
    }

    /// The key of an RRset the glbc may write.
    fn key(&self, name: &Name, record_type: RecordType) -> Result<(Name, RecordType), Refusal> {
        let name = name.to_lowercase();
        let apex_only =
            name == self.origin && matches!(record_type, RecordType::SOA | RecordType::NS);
        if !self.origin.zone_of(&name) || apex_only {
            return Err(Refusal::NotZone(format!("{name} {record_type}")));
        }
        Ok((name, record_type))
    }
}

fn dedup(data: Vec<RData>) -> Vec<RData> {
    let mut out: Vec<RData> = Vec::with_capacity(data.len());
    for d in data {
        if !out.contains(&d) {
            out.push(d);
        }
    }
    out
}

fn same_set(a: &[RData], b: &[RData]) -> bool {
    a.iter().all(|d| b.contains(d)) && b.iter().all(|d| a.contains(d))
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use hickory_proto::rr::rdata::A;

    use super::*;
    use crate::glbc::dns::rfc2136::RrsetChange;

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn a(ip: [u8; 4]) -> RData {
        RData::A(A(Ipv4Addr::from(ip)))
    }

    fn zone() -> ZoneStore {
        ZoneStore::new(
            name("example.test."),
            vec![name("ns.example.test.")],
            100,
            30,
        )
    }

    fn replace(host: &str, data: Vec<RData>) -> Update {
        Update::replace(vec![RrsetChange {
            name: name(host),
            record_type: RecordType::A,
            ttl: 60,
            data,
        }])
    }

    #[test]
    fn an_update_applies_whole_and_moves_the_serial() {
        let mut z = zone();
        assert_eq!(
            z.apply(&replace("www.example.test.", vec![a([127, 0, 1, 1])]), 0),
            Ok(true)
        );
        assert_eq!(z.serial(), 101);
        // The same again changes nothing, and the serial stays.
        assert_eq!(
            z.apply(&replace("WWW.example.test.", vec![a([127, 0, 1, 1])]), 0),
            Ok(false)
        );
        assert_eq!(z.serial(), 101);
        assert_eq!(z.lookup(&name("www.example.test."), RecordType::A).len(), 1);
        // The serial never goes below the time given.
        z.apply(
            &replace("www.example.test.", vec![a([127, 0, 1, 2])]),
            5_000,
        )
        .unwrap();
        assert_eq!(z.serial(), 5_000);
        // A prerequisite that does not hold: nothing changes.
        let mut guarded = replace("www.example.test.", vec![]);
        guarded.prerequisites.push(Prerequisite::Absent {
            name: name("www.example.test."),
            record_type: RecordType::A,
        });
        assert_eq!(z.apply(&guarded, 0), Err(Refusal::Prerequisite));
        assert_eq!(z.lookup(&name("www.example.test."), RecordType::A).len(), 1);
        // One that holds: the RRset goes.
        guarded.prerequisites = vec![Prerequisite::Exactly {
            name: name("www.example.test."),
            record_type: RecordType::A,
            data: vec![a([127, 0, 1, 2])],
        }];
        assert_eq!(z.apply(&guarded, 0), Ok(true));
        assert!(
            z.lookup(&name("www.example.test."), RecordType::A)
                .is_empty()
        );
    }

    #[test]
    fn records_are_added_and_removed_one_by_one() {
        let mut z = zone();
        let host = name("app.example.test.");
        let add = |ip| Update {
            records: vec![RecordChange::Add {
                name: host.clone(),
                ttl: 60,
                data: vec![a(ip)],
            }],
            ..Update::default()
        };
        z.apply(&add([127, 0, 1, 1]), 0).unwrap();
        z.apply(&add([127, 0, 1, 2]), 0).unwrap();
        assert_eq!(z.apply(&add([127, 0, 1, 2]), 0), Ok(false));
        assert_eq!(z.lookup(&host, RecordType::A).len(), 2);
        let remove = Update {
            records: vec![RecordChange::Remove {
                name: host.clone(),
                data: vec![a([127, 0, 1, 1]), a([127, 0, 1, 2])],
            }],
            ..Update::default()
        };
        assert_eq!(z.apply(&remove, 0), Ok(true));
        assert!(z.lookup(&host, RecordType::A).is_empty());
    }

    #[test]
    fn names_outside_the_zone_and_the_apex_soa_are_refused() {
        let mut z = zone();
        let before = z.clone();
        let mut outside = replace("www.other.test.", vec![a([127, 0, 1, 1])]);
        assert!(matches!(z.apply(&outside, 0), Err(Refusal::NotZone(_))));
        outside.rrsets[0].name = name("example.test.");
        outside.rrsets[0].record_type = RecordType::NS;
        assert!(matches!(z.apply(&outside, 0), Err(Refusal::NotZone(_))));
        assert_eq!(z, before);
    }

    #[test]
    fn the_zone_has_its_soa_and_ns() {
        let z = zone();
        let records = z.records();
        assert_eq!(records[0].record_type(), RecordType::SOA);
        let RData::SOA(soa) = &records[0].data else {
            panic!("no SOA")
        };
        assert_eq!(soa.serial, 100);
        assert_eq!(soa.mname, name("ns.example.test."));
        assert_eq!(soa.rname, name("hostmaster.example.test."));
        assert_eq!(z.lookup(&name("example.test."), RecordType::NS).len(), 1);
        assert_eq!(z.lookup(&name("Example.Test."), RecordType::SOA).len(), 1);
    }
}
