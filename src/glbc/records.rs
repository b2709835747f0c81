//! DNS names, record sets and the ownership registry, as plain values: what
//! the plan produces, what a zone transfer shows, what the diff compares.
//!
//! Everything here is canonical so that two descriptions of the same DNS
//! content compare equal: names are lower-case and fully qualified (with the
//! trailing dot), addresses are in their standard text form, a TXT record is
//! the concatenation of its character-strings.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use hickory_proto::rr::rdata::{A, AAAA, CNAME, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::dns::DnsError;

/// A fully qualified, lower-case DNS name in text form (`www.example.test.`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DnsName(String);

impl fmt::Display for DnsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Longest DNS name in text form, trailing dot included (RFC 1035: 255
/// octets on the wire).
const MAX_NAME_TEXT: usize = 254;

impl DnsName {
    /// A host name as Kubernetes and DNS hosts allow it: labels of letters,
    /// digits and inner hyphens (RFC 1123), at most 63 characters each; `*`
    /// only as the whole first label (a wildcard). A trailing dot is allowed.
    pub fn parse_host(host: &str) -> Result<Self, String> {
        let trimmed = host.strip_suffix('.').unwrap_or(host);
        if trimmed.is_empty() {
            return Err("the name is empty".into());
        }
        let lower = trimmed.to_ascii_lowercase();
        for (i, label) in lower.split('.').enumerate() {
            if label == "*" && i == 0 {
                continue;
            }
            check_label(label)?;
        }
        let text = format!("{lower}.");
        if text.len() > MAX_NAME_TEXT {
            return Err(format!("longer than {} characters", MAX_NAME_TEXT - 1));
        }
        Ok(Self(text))
    }

    /// A name as it came from the DNS (a zone transfer), lower-cased.
    pub fn from_name(name: &Name) -> Self {
        let mut text = name.to_lowercase().to_ascii();
        if !text.ends_with('.') {
            text.push('.');
        }
        Self(text)
    }

    /// A name built from trusted parts (tests, constants); no validation
    /// beyond lower-casing and the trailing dot.
    pub fn new_unchecked(text: &str) -> Self {
        let mut text = text.to_ascii_lowercase();
        if !text.ends_with('.') {
            text.push('.');
        }
        Self(text)
    }

    /// The text form, with the trailing dot.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The text form without the trailing dot, as people and resolvers write it.
    pub fn without_dot(&self) -> &str {
        self.0.strip_suffix('.').unwrap_or(&self.0)
    }

    /// The hickory form.
    pub fn to_name(&self) -> Result<Name, DnsError> {
        Name::from_ascii(&self.0).map_err(|e| DnsError::InvalidName {
            name: self.0.clone(),
            reason: e.to_string(),
        })
    }

    /// Whether this name is `zone` or below it.
    pub fn is_within(&self, zone: &DnsName) -> bool {
        self.0 == zone.0
            || (self.0.len() > zone.0.len()
                && self.0.ends_with(&zone.0)
                && self.0.as_bytes()[self.0.len() - zone.0.len() - 1] == b'.')
    }

    /// The deepest of `zones` that holds this name.
    pub fn zone_in<'z>(&self, zones: &'z [DnsName]) -> Option<&'z DnsName> {
        zones
            .iter()
            .filter(|z| self.is_within(z))
            .max_by_key(|z| z.0.len())
    }

    /// Approximate size on the wire (label lengths and the root label).
    pub fn wire_len(&self) -> usize {
        self.0.len() + 1
    }
}

fn check_label(label: &str) -> Result<(), String> {
    if label.is_empty() {
        return Err("it has an empty label".into());
    }
    if label.len() > 63 {
        return Err(format!("label {label:?} is longer than 63 characters"));
    }
    let bytes = label.as_bytes();
    let ldh = bytes
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
    if !ldh || bytes[0] == b'-' || bytes[bytes.len() - 1] == b'-' {
        return Err(format!(
            "label {label:?} is not made of letters, digits and inner hyphens"
        ));
    }
    Ok(())
}

/// The record types the glbc writes. A host name carries A, AAAA or CNAME;
/// its ownership name carries TXT.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RecordKind {
    A,
    Aaaa,
    Cname,
    Txt,
}

impl RecordKind {
    /// The kinds managed at a host name.
    pub const HOST: [RecordKind; 3] = [Self::A, Self::Aaaa, Self::Cname];

    /// The DNS type name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::A => "A",
            Self::Aaaa => "AAAA",
            Self::Cname => "CNAME",
            Self::Txt => "TXT",
        }
    }

    pub fn record_type(self) -> RecordType {
        match self {
            Self::A => RecordType::A,
            Self::Aaaa => RecordType::AAAA,
            Self::Cname => RecordType::CNAME,
            Self::Txt => RecordType::TXT,
        }
    }

    fn of(record_type: RecordType) -> Option<Self> {
        match record_type {
            RecordType::A => Some(Self::A),
            RecordType::AAAA => Some(Self::Aaaa),
            RecordType::CNAME => Some(Self::Cname),
            RecordType::TXT => Some(Self::Txt),
            _ => None,
        }
    }
}

impl fmt::Display for RecordKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The content of one RRset: a TTL and at least one datum, each in
/// canonical text form (an address, a fully qualified name, a TXT string).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Rrset {
    pub ttl: u32,
    pub data: BTreeSet<String>,
}

impl Rrset {
    pub fn new(ttl: u32, data: impl IntoIterator<Item = String>) -> Self {
        Self {
            ttl,
            data: data.into_iter().collect(),
        }
    }

    /// Approximate wire size of the RRset's records at `name`.
    pub fn wire_len(&self, name: &DnsName) -> usize {
        self.data
            .iter()
            .map(|d| name.wire_len() + 10 + d.len() + 1 + d.len() / 255)
            .sum()
    }
}

/// What one name of a zone holds, as far as the glbc cares: the RRsets of
/// the kinds it manages, and the other types present (never touched, but
/// they make a name "in use").
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NameRecords {
    pub rrsets: BTreeMap<RecordKind, Rrset>,
    pub others: BTreeSet<String>,
}

impl NameRecords {
    pub fn is_empty(&self) -> bool {
        self.rrsets.is_empty() && self.others.is_empty()
    }
}

/// What a zone holds, name by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneRecords {
    pub zone: DnsName,
    pub names: BTreeMap<DnsName, NameRecords>,
}

impl ZoneRecords {
    pub fn new(zone: DnsName) -> Self {
        Self {
            zone,
            names: BTreeMap::new(),
        }
    }

    /// The zone as a transfer shows it.
    pub fn from_records(zone: DnsName, records: &[Record]) -> Self {
        let mut state = Self::new(zone);
        for record in records {
            let name = DnsName::from_name(&record.name);
            let entry = state.names.entry(name).or_default();
            let record_type = record.record_type();
            match (RecordKind::of(record_type), rdata_text(&record.data)) {
                (Some(kind), Some(text)) => {
                    let rrset = entry.rrsets.entry(kind).or_insert_with(|| Rrset {
                        ttl: record.ttl,
                        data: BTreeSet::new(),
                    });
                    rrset.data.insert(text);
                }
                _ => {
                    entry.others.insert(record_type.to_string());
                }
            }
        }
        state
    }

    /// Replaces what is known of one unit (a host and its ownership name)
    /// with `records`, the answers of fresh queries for A, AAAA and CNAME
    /// at the host and TXT at the ownership name. Other types stay as known.
    pub fn replace_unit(&mut self, host: &DnsName, records: &[Record]) {
        let mut queried: Vec<(DnsName, RecordKind)> = RecordKind::HOST
            .into_iter()
            .map(|k| (host.clone(), k))
            .collect();
        queried.extend(ownership::name_of(host).map(|o| (o, RecordKind::Txt)));
        let fresh = Self::from_records(self.zone.clone(), records);
        for (name, kind) in queried {
            match fresh.rrset(&name, kind) {
                Some(rrset) => {
                    self.names
                        .entry(name)
                        .or_default()
                        .rrsets
                        .insert(kind, rrset.clone());
                }
                None => {
                    if let Some(entry) = self.names.get_mut(&name) {
                        entry.rrsets.remove(&kind);
                        if entry.is_empty() {
                            self.names.remove(&name);
                        }
                    }
                }
            }
        }
    }

    /// The RRset of `kind` at `name`, if any.
    pub fn rrset(&self, name: &DnsName, kind: RecordKind) -> Option<&Rrset> {
        self.names.get(name)?.rrsets.get(&kind)
    }
}

/// The canonical text of the record data the glbc manages; `None` for any
/// other type.
pub fn rdata_text(data: &RData) -> Option<String> {
    match data {
        RData::A(A(ip)) => Some(ip.to_string()),
        RData::AAAA(AAAA(ip)) => Some(ip.to_string()),
        RData::CNAME(CNAME(target)) => Some(DnsName::from_name(target).0),
        RData::TXT(txt) => {
            let bytes: Vec<u8> = txt
                .txt_data
                .iter()
                .flat_map(|s| s.iter().copied())
                .collect();
            Some(String::from_utf8_lossy(&bytes).into_owned())
        }
        _ => None,
    }
}

/// The hickory record data of one datum of an RRset of `kind`.
pub fn rdata(kind: RecordKind, text: &str) -> Result<RData, DnsError> {
    let invalid = |reason: String| DnsError::InvalidName {
        name: text.to_string(),
        reason,
    };
    match kind {
        RecordKind::A => text
            .parse()
            .map(|ip| RData::A(A(ip)))
            .map_err(|e| invalid(format!("not an IPv4 address: {e}"))),
        RecordKind::Aaaa => text
            .parse()
            .map(|ip| RData::AAAA(AAAA(ip)))
            .map_err(|e| invalid(format!("not an IPv6 address: {e}"))),
        RecordKind::Cname => Ok(RData::CNAME(CNAME(DnsName::new_unchecked(text).to_name()?))),
        // A character-string holds at most 255 octets: longer text is split.
        RecordKind::Txt => Ok(RData::TXT(TXT::from_bytes(
            text.as_bytes().chunks(255).collect(),
        ))),
    }
}

/// The kind of record an address is published as.
pub fn address_kind(ip: &IpAddr) -> RecordKind {
    match ip {
        IpAddr::V4(_) => RecordKind::A,
        IpAddr::V6(_) => RecordKind::Aaaa,
    }
}

/// The ownership registry: next to every host the glbc publishes, a TXT
/// record at a derived name says who published it.
///
/// - host `www.example.test` → `_kcp-ingress.www.example.test`
/// - wildcard `*.apps.example.test` → `_kcp-ingress-wildcard.apps.example.test`
///
/// The ownership name is never the host itself, so it can sit beside a
/// CNAME; it starts with an underscore label, which no Ingress host can, so
/// it never collides with a host. Its content is one string
/// `heritage=kcp-ingress,owner=<owner id>,root=<namespace>/<name>`.
pub mod ownership {
    use std::collections::BTreeSet;
    use std::net::IpAddr;

    use super::DnsName;
    use crate::labels;

    /// The TXT content naming `owner` and the root `namespace/name`.
    pub fn content(owner: &str, root: &str) -> String {
        format!(
            "heritage={},owner={owner},root={root}",
            labels::OWNERSHIP_HERITAGE
        )
    }

    /// The TXT content of a sharing owner: `owner`, the root, `shared=true`
    /// and the owner's own addresses (sorted, `;`-separated).
    pub fn content_shared(owner: &str, root: &str, targets: &BTreeSet<IpAddr>) -> String {
        let targets: Vec<String> = targets.iter().map(ToString::to_string).collect();
        format!(
            "{},shared=true,targets={}",
            content(owner, root),
            targets.join(";")
        )
    }

    /// What an ownership TXT says.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Owner {
        pub owner: String,
        pub root: String,
        /// One of several owners sharing the name (`shared=true`).
        pub shared: bool,
        /// A sharing owner's own addresses.
        pub targets: BTreeSet<IpAddr>,
    }

    /// Reads an ownership TXT; `None` if it is not one of ours (any owner).
    pub fn parse(text: &str) -> Option<Owner> {
        let mut heritage = None;
        let mut owner = None;
        let mut root = None;
        let mut shared = false;
        let mut targets = BTreeSet::new();
        for field in text.split(',') {
            let (key, value) = field.split_once('=')?;
            match key.trim() {
                "heritage" => heritage = Some(value.trim()),
                "owner" => owner = Some(value.trim()),
                "root" => root = Some(value.trim()),
                "shared" => shared = value.trim() == "true",
                "targets" => {
                    for target in value.split(';').filter(|t| !t.trim().is_empty()) {
                        targets.insert(target.trim().parse().ok()?);
                    }
                }
                _ => {}
            }
        }
        (heritage? == labels::OWNERSHIP_HERITAGE).then_some(())?;
        Some(Owner {
            owner: owner?.to_string(),
            root: root?.to_string(),
            shared,
            targets,
        })
    }

    /// The ownership name of `host`, or `None` if it would be too long.
    pub fn name_of(host: &DnsName) -> Option<DnsName> {
        let text = match host.as_str().strip_prefix("*.") {
            Some(parent) => format!("{}.{parent}", labels::OWNERSHIP_WILDCARD_LABEL),
            None => format!("{}.{}", labels::OWNERSHIP_LABEL, host.as_str()),
        };
        (text.len() <= super::MAX_NAME_TEXT).then_some(DnsName(text))
    }

    /// The host whose ownership name is `name`, if `name` is one.
    pub fn host_of(name: &DnsName) -> Option<DnsName> {
        let (first, parent) = name.as_str().split_once('.')?;
        if parent.is_empty() {
            return None;
        }
        if first == labels::OWNERSHIP_LABEL {
            Some(DnsName(parent.to_string()))
        } else if first == labels::OWNERSHIP_WILDCARD_LABEL {
            Some(DnsName(format!("*.{parent}")))
        } else {
            None
        }
    }

    /// The host a name belongs to for batching: an ownership name belongs to
    /// its host, any other name to itself.
    pub fn unit_of(name: &DnsName) -> DnsName {
        host_of(name).unwrap_or_else(|| name.clone())
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    #[test]
    fn hosts_are_validated_and_canonical() {
        assert_eq!(
            DnsName::parse_host("WWW.Example.test").unwrap().as_str(),
            "www.example.test."
        );
        assert_eq!(
            DnsName::parse_host("*.apps.example.test.")
                .unwrap()
                .as_str(),
            "*.apps.example.test."
        );
        for bad in [
            "",
            ".",
            "a..b",
            "a.*.b",
            "-a.b",
            "a-.b",
            "a_b.c",
            "a b.c",
            "**.b",
            &"x".repeat(64),
        ] {
            assert!(DnsName::parse_host(bad).is_err(), "{bad:?} was accepted");
        }
        let long = vec!["abcdefghi"; 26].join(".");
        assert!(DnsName::parse_host(&long).is_err());
    }

    #[test]
    fn zones_contain_names_by_labels() {
        let zone = DnsName::new_unchecked("example.test");
        let sub = DnsName::new_unchecked("sub.example.test");
        let zones = [zone.clone(), sub.clone()];
        assert!(DnsName::new_unchecked("example.test").is_within(&zone));
        assert!(DnsName::new_unchecked("a.example.test").is_within(&zone));
        assert!(!DnsName::new_unchecked("aexample.test").is_within(&zone));
        assert!(!DnsName::new_unchecked("example.test.org").is_within(&zone));
        assert_eq!(
            DnsName::new_unchecked("a.sub.example.test").zone_in(&zones),
            Some(&sub)
        );
        assert_eq!(
            DnsName::new_unchecked("a.example.test").zone_in(&zones),
            Some(&zone)
        );
        assert_eq!(DnsName::new_unchecked("a.other.test").zone_in(&zones), None);
    }

    #[test]
    fn ownership_names_round_trip_and_never_collide_with_hosts() {
        for host in ["www.example.test", "*.apps.example.test", "example.test"] {
            let host = DnsName::parse_host(host).unwrap();
            let name = ownership::name_of(&host).unwrap();
            assert!(name.as_str().starts_with('_'), "{name}");
            assert!(DnsName::parse_host(name.as_str()).is_err());
            assert_eq!(ownership::host_of(&name), Some(host.clone()));
            assert_eq!(ownership::unit_of(&name), host);
            assert_eq!(ownership::unit_of(&host), host);
            assert_eq!(ownership::host_of(&host), None);
        }
        let plain = ownership::name_of(&DnsName::new_unchecked("apps.example.test")).unwrap();
        let wild = ownership::name_of(&DnsName::new_unchecked("*.apps.example.test")).unwrap();
        assert_ne!(plain, wild);
        assert_eq!(plain.as_str(), "_kcp-ingress.apps.example.test.");
        assert_eq!(wild.as_str(), "_kcp-ingress-wildcard.apps.example.test.");
        let longest = DnsName::parse_host(&vec!["a".repeat(61); 4].join(".")).unwrap();
        assert_eq!(ownership::name_of(&longest), None);
    }

    #[test]
    fn ownership_content_round_trips() {
        let text = ownership::content("team-a", "shop/web");
        assert_eq!(text, "heritage=kcp-ingress,owner=team-a,root=shop/web");
        assert_eq!(
            ownership::parse(&text),
            Some(ownership::Owner {
                owner: "team-a".into(),
                root: "shop/web".into(),
                shared: false,
                targets: BTreeSet::new(),
            })
        );
        let targets: BTreeSet<IpAddr> =
            ["127.0.1.2".parse().unwrap(), "::1".parse().unwrap()].into();
        let text = ownership::content_shared("team-b", "shop/web", &targets);
        assert_eq!(
            text,
            "heritage=kcp-ingress,owner=team-b,root=shop/web,shared=true,targets=127.0.1.2;::1"
        );
        let parsed = ownership::parse(&text).unwrap();
        assert!(parsed.shared && parsed.targets == targets);
        assert_eq!(ownership::parse("v=spf1 -all"), None);
        assert_eq!(
            ownership::parse("heritage=external-dns,owner=x,root=a/b"),
            None
        );
        assert_eq!(ownership::parse("heritage=kcp-ingress,owner=x"), None);
    }

    #[test]
    fn transfers_become_canonical_state() {
        let name = Name::from_ascii("WWW.example.test.").unwrap();
        let long_txt = "x".repeat(300);
        let records = vec![
            Record::from_rdata(name.clone(), 60, RData::A(A(Ipv4Addr::new(127, 0, 1, 2)))),
            Record::from_rdata(name.clone(), 60, RData::A(A(Ipv4Addr::new(127, 0, 1, 1)))),
            Record::from_rdata(
                name.clone(),
                60,
                RData::AAAA(AAAA("0:0:0:0:0:0:0:1".parse().unwrap())),
            ),
            Record::from_rdata(name.clone(), 30, rdata(RecordKind::Txt, &long_txt).unwrap()),
            Record::from_rdata(
                name.clone(),
                60,
                RData::NULL(hickory_proto::rr::rdata::NULL::with(vec![1])),
            ),
        ];
        let zone = ZoneRecords::from_records(DnsName::new_unchecked("example.test"), &records);
        let www = DnsName::new_unchecked("www.example.test");
        let at = &zone.names[&www];
        assert_eq!(
            at.rrsets[&RecordKind::A],
            Rrset::new(60, ["127.0.1.1".to_string(), "127.0.1.2".to_string()])
        );
        assert_eq!(
            at.rrsets[&RecordKind::Aaaa],
            Rrset::new(60, ["::1".to_string()])
        );
        assert_eq!(at.rrsets[&RecordKind::Txt], Rrset::new(30, [long_txt]));
        assert_eq!(at.others, BTreeSet::from(["NULL".to_string()]));
    }

    #[test]
    fn a_unit_read_again_replaces_only_what_was_queried() {
        let zone_name = DnsName::new_unchecked("example.test");
        let www = DnsName::new_unchecked("www.example.test");
        let owner = ownership::name_of(&www).unwrap();
        let name = www.to_name().unwrap();
        let mut zone = ZoneRecords::from_records(
            zone_name.clone(),
            &[
                Record::from_rdata(name.clone(), 60, RData::A(A(Ipv4Addr::new(127, 0, 1, 1)))),
                Record::from_rdata(
                    name.clone(),
                    60,
                    rdata(RecordKind::Txt, "at the host").unwrap(),
                ),
                Record::from_rdata(
                    owner.to_name().unwrap(),
                    60,
                    rdata(RecordKind::Txt, "ours").unwrap(),
                ),
            ],
        );
        // Someone replaced the A RRset and the ownership record went.
        zone.replace_unit(
            &www,
            &[Record::from_rdata(
                name,
                99,
                RData::A(A(Ipv4Addr::new(127, 0, 9, 9))),
            )],
        );
        assert_eq!(
            zone.rrset(&www, RecordKind::A),
            Some(&Rrset::new(99, ["127.0.9.9".to_string()]))
        );
        assert!(zone.rrset(&www, RecordKind::Txt).is_some());
        assert!(!zone.names.contains_key(&owner));
    }

    #[test]
    fn long_txt_is_split_into_character_strings() {
        let RData::TXT(txt) = rdata(RecordKind::Txt, &"y".repeat(600)).unwrap() else {
            panic!("not TXT")
        };
        let sizes: Vec<usize> = txt.txt_data.iter().map(|s| s.len()).collect();
        assert_eq!(sizes, [255, 255, 90]);
        assert!(rdata(RecordKind::A, "::1").is_err());
        assert!(rdata(RecordKind::Aaaa, "127.0.0.1").is_err());
    }
}
