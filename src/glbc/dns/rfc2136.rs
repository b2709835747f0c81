//! RFC 2136 dynamic updates and zone transfers, signed with TSIG (RFC 8945).
//!
//! Every exchange opens its own TCP connection: BIND closes idle TCP
//! connections after `tcp-idle-timeout` (30 s by default), and hickory's
//! client does not reconnect, so a long-lived connection would go stale.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hickory_net::client::{Client, ClientHandle};
use hickory_net::runtime::TokioRuntimeProvider;
use hickory_net::tcp::TcpClientStream;
use hickory_net::udp::UdpClientStream;
use hickory_net::xfer::FirstAnswer;
use hickory_net::{DnsHandle, DnsMultiplexer, NetError};
use hickory_proto::op::{DnsRequest, DnsResponse, Message, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::tsig::TsigAlgorithm as HickoryAlgorithm;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType, TSigner};

use super::error::DnsError;
use super::tsig::{TsigAlgorithm, TsigKey};

/// Clock skew allowed between us and the server, in seconds (BIND's default).
const TSIG_FUDGE: u16 = 300;

type DnsClient = Client<TokioRuntimeProvider>;

/// The desired content of one RRset; no data means the RRset is deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RrsetChange {
    pub name: Name,
    pub record_type: RecordType,
    pub ttl: u32,
    pub data: Vec<RData>,
}

/// Parses a DNS name and makes it fully qualified.
pub fn fqdn(name: &str) -> Result<Name, DnsError> {
    let mut parsed = Name::from_ascii(name).map_err(|e| DnsError::InvalidName {
        name: name.to_string(),
        reason: e.to_string(),
    })?;
    parsed.set_fqdn(true);
    Ok(parsed)
}

/// An RFC 2136 §2.4 prerequisite: the server applies an UPDATE only when
/// every prerequisite holds, and otherwise changes nothing and answers
/// YXRRSET, NXRRSET, YXDOMAIN or NXDOMAIN. This is what keeps a stale view
/// of the zone from overwriting records someone else wrote meanwhile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prerequisite {
    /// §2.4.3 "RRset does not exist": no RRset of this type at the name.
    Absent { name: Name, record_type: RecordType },
    /// §2.4.2 "RRset exists (value dependent)": the RRset of this type at
    /// the name holds exactly these records (all of them, and no others).
    Exactly {
        name: Name,
        record_type: RecordType,
        data: Vec<RData>,
    },
}

impl Prerequisite {
    fn name(&self) -> &Name {
        match self {
            Self::Absent { name, .. } | Self::Exactly { name, .. } => name,
        }
    }

    /// Its records, as they travel in the prerequisite section.
    fn records(&self) -> Vec<Record> {
        match self {
            Self::Absent { name, record_type } => {
                let mut record = Record::update0(name.clone(), 0, *record_type);
                record.dns_class = DNSClass::NONE;
                vec![record]
            }
            Self::Exactly { name, data, .. } => data
                .iter()
                .map(|d| Record::from_rdata(name.clone(), 0, d.clone()))
                .collect(),
        }
    }
}

/// Records added to, or removed from, an RRset without touching the
/// others in it (§2.5.1, §2.5.4): how owners that share a name change only
/// their own addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordChange {
    Add {
        name: Name,
        ttl: u32,
        data: Vec<RData>,
    },
    Remove {
        name: Name,
        data: Vec<RData>,
    },
}

impl RecordChange {
    fn name(&self) -> &Name {
        match self {
            Self::Add { name, .. } | Self::Remove { name, .. } => name,
        }
    }

    fn records(&self) -> Vec<Record> {
        match self {
            Self::Add { name, ttl, data } => data
                .iter()
                .map(|d| Record::from_rdata(name.clone(), *ttl, d.clone()))
                .collect(),
            Self::Remove { name, data } => data
                .iter()
                .map(|d| {
                    let mut record = Record::from_rdata(name.clone(), 0, d.clone());
                    record.dns_class = DNSClass::NONE;
                    record
                })
                .collect(),
        }
    }
}

/// One UPDATE: the prerequisites that must hold, the RRsets to replace
/// (first), then the records to add or remove.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Update {
    pub prerequisites: Vec<Prerequisite>,
    pub rrsets: Vec<RrsetChange>,
    pub records: Vec<RecordChange>,
}

impl Update {
    /// An UPDATE that replaces `rrsets` with no prerequisite.
    pub fn replace(rrsets: Vec<RrsetChange>) -> Self {
        Self {
            rrsets,
            ..Self::default()
        }
    }
}

/// Builds one UPDATE message for `zone`. Prerequisites travel in the answer
/// section (§2.4). Each replaced RRset is "delete the RRset" (§2.5.2)
/// followed by "add" for every record (§2.5.1); then the single-record adds
/// and deletes. The server applies the whole message atomically, or none of
/// it.
pub fn update_message(zone: &Name, update: &Update) -> Result<Message, DnsError> {
    let mut message = Message::query();
    message.metadata.op_code = OpCode::Update;
    message.metadata.recursion_desired = false;
    let mut zone_section = Query::new();
    zone_section
        .set_name(zone.clone())
        .set_query_class(DNSClass::IN)
        .set_query_type(RecordType::SOA);
    message.add_query(zone_section);
    let inside = |name: &Name| {
        if zone.zone_of(name) {
            Ok(())
        } else {
            Err(DnsError::OutsideZone {
                name: name.to_string(),
                zone: zone.to_string(),
            })
        }
    };
    for prerequisite in &update.prerequisites {
        inside(prerequisite.name())?;
        message.add_answers(prerequisite.records());
    }
    for change in &update.rrsets {
        inside(&change.name)?;
        let mut delete = Record::update0(change.name.clone(), 0, change.record_type);
        delete.dns_class = DNSClass::ANY;
        // The update section travels in the authority section.
        message.add_authority(delete);
        for data in &change.data {
            message.add_authority(Record::from_rdata(
                change.name.clone(),
                change.ttl,
                data.clone(),
            ));
        }
    }
    for change in &update.records {
        inside(change.name())?;
        message.add_authorities(change.records());
    }
    Ok(message)
}

/// A client for one zone on one server, signing with one TSIG key.
#[derive(Clone)]
pub struct Rfc2136Client {
    server: SocketAddr,
    zone: Name,
    key_name: String,
    signer: TSigner,
    timeout: Duration,
}

impl std::fmt::Debug for Rfc2136Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rfc2136Client")
            .field("server", &self.server)
            .field("zone", &self.zone.to_string())
            .field("key_name", &self.key_name)
            .finish_non_exhaustive()
    }
}

/// The hickory signer (and verifier) of `key`.
pub fn tsig_signer(key: &TsigKey) -> Result<TSigner, DnsError> {
    let algorithm = match key.algorithm {
        TsigAlgorithm::HmacSha256 => HickoryAlgorithm::HmacSha256,
        TsigAlgorithm::HmacSha384 => HickoryAlgorithm::HmacSha384,
        TsigAlgorithm::HmacSha512 => HickoryAlgorithm::HmacSha512,
    };
    TSigner::new(key.secret.clone(), algorithm, fqdn(&key.name)?, TSIG_FUDGE)
        .map_err(|e| DnsError::InvalidSecret(e.to_string()))
}

impl Rfc2136Client {
    pub fn new(
        server: SocketAddr,
        zone: &str,
        key: &TsigKey,
        timeout: Duration,
    ) -> Result<Self, DnsError> {
        let signer = tsig_signer(key)?;
        Ok(Self {
            server,
            zone: fqdn(zone)?,
            key_name: key.name.clone(),
            signer,
            timeout,
        })
    }

    /// The zone this client updates.
    pub fn zone(&self) -> &Name {
        &self.zone
    }

    async fn connect(&self, signed: bool) -> Result<DnsClient, DnsError> {
        let (connect, handle) = TcpClientStream::new(
            self.server,
            None,
            Some(self.timeout),
            TokioRuntimeProvider::new(),
        );
        let stream = connect.await.map_err(|source| DnsError::Unreachable {
            server: self.server,
            source: Box::new(source),
        })?;
        let mut multiplexer = DnsMultiplexer::new(stream, handle).with_timeout(self.timeout);
        if signed {
            multiplexer = multiplexer.with_signer(self.signer.clone());
        }
        let (client, background) = DnsClient::from_sender(multiplexer);
        // The background task owns the connection; it ends with the client.
        tokio::spawn(background);
        Ok(client)
    }

    /// Replaces the given RRsets in one atomic, signed UPDATE, with no
    /// prerequisite.
    pub async fn replace_rrsets(&self, changes: &[RrsetChange]) -> Result<(), DnsError> {
        self.update(&Update::replace(changes.to_vec())).await
    }

    /// Sends one atomic, signed UPDATE.
    pub async fn update(&self, update: &Update) -> Result<(), DnsError> {
        let message = update_message(&self.zone, update)?;
        let client = self.connect(true).await?;
        let response = match client.send(DnsRequest::from(message)).first_answer().await {
            Ok(response) => response,
            Err(NetError::Proto(_)) => return Err(self.diagnose_signature().await),
            Err(source) => {
                return Err(DnsError::Exchange {
                    server: self.server,
                    source: Box::new(source),
                });
            }
        };
        self.expect_no_error(&response, "update")
    }

    /// The records of `record_type` at `name` as the server holds them now,
    /// by an ordinary query (a CNAME the server follows, or records of other
    /// names in the answer, are left out). An unknown name, or one without
    /// records of that type, has none.
    pub async fn lookup(
        &self,
        name: &Name,
        record_type: RecordType,
    ) -> Result<Vec<Record>, DnsError> {
        // Over TCP: an RRset of many records (one ownership TXT per sharing
        // owner) may not fit in a UDP answer, and a truncated one would be
        // taken for the whole.
        let mut client = self.connect(false).await?;
        let response = client
            .query(name.clone(), DNSClass::IN, record_type)
            .await
            .map_err(|source| DnsError::Exchange {
                server: self.server,
                source: Box::new(source),
            })?;
        let (rcode, answers) = (response.metadata.response_code, response.answers.clone());
        match rcode {
            ResponseCode::NoError | ResponseCode::NXDomain => Ok(answers
                .into_iter()
                .filter(|r| r.record_type() == record_type && &r.name == name)
                .collect()),
            rcode => Err(DnsError::Refused {
                server: self.server,
                operation: "query",
                zone: self.zone.to_string(),
                rcode,
            }),
        }
    }

    /// The whole zone, by a signed AXFR (RFC 5936) on its own TCP
    /// connection, without the closing SOA; within the client's timeout.
    ///
    /// Read here rather than through hickory's multiplexer, which hands
    /// each answer of a request to its consumer through a channel of eight
    /// and drops what does not fit (hickory-net 0.26): a zone of more than
    /// about 3,000 records comes in more messages than that, often at once
    /// on loopback, and a dropped message — the last one holds the closing
    /// SOA — left the transfer waiting for the whole timeout and then
    /// ending without error, with the zone incomplete. Here every message
    /// is read in turn, its TSIG verified, and the transfer ends at the
    /// closing SOA ([`transfer_complete`]); a connection closed before it
    /// is an error, never a shorter zone.
    pub async fn transfer_zone(&self) -> Result<Vec<Record>, DnsError> {
        let mut records = tokio::time::timeout(self.timeout, self.transfer())
            .await
            .map_err(|_| DnsError::Exchange {
                server: self.server,
                source: Box::new(NetError::Timeout),
            })??;
        records.pop();
        Ok(records)
    }

    /// [`Rfc2136Client::transfer_zone`] without its timeout, with the
    /// closing SOA.
    async fn transfer(&self) -> Result<Vec<Record>, DnsError> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let exchange = |e: std::io::Error| DnsError::Exchange {
            server: self.server,
            source: Box::new(NetError::from(e)),
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let mut request = hickory_proto::op::update_message::zone_transfer(self.zone.clone(), None);
        // One request per connection: any id will do; vary it anyway.
        request.metadata.id = (now.subsec_nanos() & 0xffff) as u16;
        let mut verifier = request
            .finalize(&self.signer, now.as_secs())
            .map_err(|e| DnsError::InvalidSecret(e.to_string()))?
            .ok_or_else(|| DnsError::InvalidSecret("the signer gave no verifier".into()))?;
        let bytes = request
            .to_vec()
            .map_err(|e| DnsError::InvalidSecret(e.to_string()))?;
        let mut socket = tokio::net::TcpStream::connect(self.server)
            .await
            .map_err(|e| DnsError::Unreachable {
                server: self.server,
                source: Box::new(NetError::from(e)),
            })?;
        // A DNS message over TCP: its length in two bytes, then the message.
        let length = u16::try_from(bytes.len())
            .map_err(|_| exchange(std::io::Error::other("the AXFR request is over 64 KiB")))?;
        let mut framed = length.to_be_bytes().to_vec();
        framed.extend_from_slice(&bytes);
        socket.write_all(&framed).await.map_err(exchange)?;
        let mut records: Vec<Record> = Vec::new();
        while !transfer_complete(&records) {
            let mut length = [0u8; 2];
            socket.read_exact(&mut length).await.map_err(|e| {
                exchange(std::io::Error::new(
                    e.kind(),
                    format!(
                        "the zone transfer ended after {} records, before its closing SOA: {e}",
                        records.len()
                    ),
                ))
            })?;
            let mut message = vec![0u8; usize::from(u16::from_be_bytes(length))];
            socket.read_exact(&mut message).await.map_err(exchange)?;
            let response = match verifier.verify(&message) {
                Ok(response) => response,
                Err(_) => return Err(self.diagnose_signature().await),
            };
            self.expect_no_error(&response, "zone transfer")?;
            if records.is_empty()
                && response
                    .answers
                    .first()
                    .is_some_and(|r| r.record_type() != RecordType::SOA)
            {
                return Err(exchange(std::io::Error::other(
                    "the zone transfer did not start with the zone's SOA",
                )));
            }
            records.extend(response.answers.iter().cloned());
        }
        Ok(records)
    }

    fn expect_no_error(
        &self,
        response: &DnsResponse,
        operation: &'static str,
    ) -> Result<(), DnsError> {
        match response.metadata.response_code {
            ResponseCode::NoError => Ok(()),
            rcode @ (ResponseCode::YXDomain
            | ResponseCode::YXRRSet
            | ResponseCode::NXRRSet
            | ResponseCode::NXDomain) => Err(DnsError::PrerequisiteFailed {
                server: self.server,
                zone: self.zone.to_string(),
                rcode,
            }),
            rcode @ ResponseCode::NotAuth => Err(DnsError::TsigRejected {
                server: self.server,
                key: self.key_name.clone(),
                rcode,
                tsig_error: response.signature().and_then(|s| s.data.error),
            }),
            rcode => Err(DnsError::Refused {
                server: self.server,
                operation,
                zone: self.zone.to_string(),
                rcode,
            }),
        }
    }

    /// A server that does not accept our signature answers unsigned, which
    /// the signed exchange can only report as an unverifiable reply. To say
    /// why, send an empty UPDATE signed by hand on an unverified connection
    /// and read the server's rcode and TSIG error (an empty UPDATE changes
    /// nothing, whatever the key).
    async fn diagnose_signature(&self) -> DnsError {
        let rejected = |rcode, tsig_error| DnsError::TsigRejected {
            server: self.server,
            key: self.key_name.clone(),
            rcode,
            tsig_error,
        };
        let probe = async {
            let mut message = update_message(&self.zone, &Update::default())?;
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            message
                .finalize(&self.signer, now)
                .map_err(|e| DnsError::InvalidSecret(e.to_string()))?;
            let client = self.connect(false).await?;
            client
                .send(DnsRequest::from(message))
                .first_answer()
                .await
                .map_err(|source| DnsError::Exchange {
                    server: self.server,
                    source: Box::new(source),
                })
        };
        match probe.await {
            Ok(response) => rejected(
                response.metadata.response_code,
                response.signature().and_then(|s| s.data.error),
            ),
            // Could not tell more: still a signature problem as far as we know.
            Err(_) => rejected(ResponseCode::NotAuth, None),
        }
    }
}

/// Whether the records of an AXFR so far are the whole transfer: the
/// zone's SOA first and again last (RFC 5936 §2.2; a zone holds one SOA,
/// so a second one closes the transfer).
pub fn transfer_complete(records: &[Record]) -> bool {
    records.len() >= 2
        && records.first().map(Record::record_type) == Some(RecordType::SOA)
        && records.last().map(Record::record_type) == Some(RecordType::SOA)
}

/// An unsigned query over UDP, as any resolver would send it: the answer's
/// response code and records.
pub async fn query(
    server: SocketAddr,
    name: &Name,
    record_type: RecordType,
    timeout: Duration,
) -> Result<(ResponseCode, Vec<Record>), DnsError> {
    let stream = UdpClientStream::builder(server, TokioRuntimeProvider::new())
        .with_timeout(Some(timeout))
        .build();
    let (mut client, background) = DnsClient::from_sender(stream);
    tokio::spawn(background);
    let response = client
        .query(name.clone(), DNSClass::IN, record_type)
        .await
        .map_err(|source| DnsError::Exchange {
            server,
            source: Box::new(source),
        })?;
    Ok((response.metadata.response_code, response.answers.clone()))
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use hickory_proto::rr::rdata::A;

    use super::*;

    #[test]
    fn a_transfer_is_complete_at_its_second_soa() {
        let zone = fqdn("example.test").unwrap();
        let soa = Record::from_rdata(
            zone.clone(),
            60,
            RData::SOA(hickory_proto::rr::rdata::SOA::new(
                zone.clone(),
                zone.clone(),
                7,
                60,
                60,
                60,
                60,
            )),
        );
        let host = Record::from_rdata(fqdn("www.example.test").unwrap(), 60, a([10, 0, 0, 1]));
        assert!(!transfer_complete(&[]));
        assert!(!transfer_complete(std::slice::from_ref(&soa)));
        assert!(!transfer_complete(&[soa.clone(), host.clone()]));
        assert!(transfer_complete(&[soa.clone(), host.clone(), soa.clone()]));
        // An empty zone: its SOA twice.
        assert!(transfer_complete(&[soa.clone(), soa.clone()]));
        // Not an AXFR answer.
        assert!(!transfer_complete(&[host, soa]));
    }

    fn a(ip: [u8; 4]) -> RData {
        RData::A(A(Ipv4Addr::from(ip)))
    }

    #[test]
    fn names_become_fully_qualified() {
        assert_eq!(
            fqdn("www.example.test").unwrap().to_string(),
            "www.example.test."
        );
        assert_eq!(
            fqdn("www.example.test.").unwrap().to_string(),
            "www.example.test."
        );
        assert!(fqdn("a..b").is_err());
    }

    #[test]
    fn update_deletes_then_adds_each_rrset() {
        let zone = fqdn("example.test").unwrap();
        let www = fqdn("www.example.test").unwrap();
        let old = fqdn("old.example.test").unwrap();
        let message = update_message(
            &zone,
            &Update::replace(vec![
                RrsetChange {
                    name: www.clone(),
                    record_type: RecordType::A,
                    ttl: 60,
                    data: vec![a([127, 0, 1, 1]), a([127, 0, 1, 2])],
                },
                RrsetChange {
                    name: old.clone(),
                    record_type: RecordType::A,
                    ttl: 60,
                    data: vec![],
                },
            ]),
        )
        .unwrap();
        assert_eq!(message.metadata.op_code, OpCode::Update);
        assert_eq!(message.queries.len(), 1);
        assert_eq!(message.queries[0].name(), &zone);
        assert_eq!(message.queries[0].query_type(), RecordType::SOA);
        let section: Vec<(String, DNSClass, u32, bool)> = message
            .authorities
            .iter()
            .map(|r| {
                (
                    r.name.to_string(),
                    r.dns_class,
                    r.ttl,
                    matches!(r.data, RData::Update0(_)),
                )
            })
            .collect();
        assert_eq!(
            section,
            vec![
                ("www.example.test.".into(), DNSClass::ANY, 0, true),
                ("www.example.test.".into(), DNSClass::IN, 60, false),
                ("www.example.test.".into(), DNSClass::IN, 60, false),
                ("old.example.test.".into(), DNSClass::ANY, 0, true),
            ]
        );
    }

    #[test]
    fn names_outside_the_zone_are_refused_before_sending() {
        let zone = fqdn("example.test").unwrap();
        let err = update_message(
            &zone,
            &Update::replace(vec![RrsetChange {
                name: fqdn("www.other.test").unwrap(),
                record_type: RecordType::A,
                ttl: 60,
                data: vec![a([127, 0, 1, 1])],
            }]),
        )
        .unwrap_err();
        assert!(matches!(err, DnsError::OutsideZone { .. }), "{err}");
        let outside = fqdn("_kcp-ingress.www.other.test").unwrap();
        let err = update_message(
            &zone,
            &Update {
                prerequisites: vec![Prerequisite::Absent {
                    name: outside,
                    record_type: RecordType::TXT,
                }],
                ..Update::default()
            },
        )
        .unwrap_err();
        assert!(matches!(err, DnsError::OutsideZone { .. }), "{err}");
    }

    /// (name, class, ttl, type, rdata empty) of each record of a section.
    fn section(records: &[Record]) -> Vec<(String, DNSClass, u32, RecordType, bool)> {
        records
            .iter()
            .map(|r| {
                (
                    r.name.to_string(),
                    r.dns_class,
                    r.ttl,
                    r.record_type(),
                    matches!(r.data, RData::Update0(_)),
                )
            })
            .collect()
    }

    #[test]
    fn prerequisites_travel_in_the_answer_section_as_rfc_2136_says() {
        let zone = fqdn("example.test").unwrap();
        let www = fqdn("www.example.test").unwrap();
        let owner = fqdn("_kcp-ingress.www.example.test").unwrap();
        let txt = RData::TXT(hickory_proto::rr::rdata::TXT::new(vec![
            "heritage=kcp-ingress".into(),
        ]));
        let message = update_message(
            &zone,
            &Update {
                prerequisites: vec![
                    Prerequisite::Absent {
                        name: www.clone(),
                        record_type: RecordType::CNAME,
                    },
                    Prerequisite::Exactly {
                        name: owner.clone(),
                        record_type: RecordType::TXT,
                        data: vec![txt],
                    },
                ],
                rrsets: vec![],
                records: vec![
                    RecordChange::Add {
                        name: www.clone(),
                        ttl: 60,
                        data: vec![a([127, 0, 1, 1])],
                    },
                    RecordChange::Remove {
                        name: www.clone(),
                        data: vec![a([127, 0, 1, 2])],
                    },
                ],
            },
        )
        .unwrap();
        // §2.4.3: class NONE, type CNAME, TTL 0, no data. §2.4.2: class
        // IN (the zone's), TTL 0, the exact records.
        assert_eq!(
            section(&message.answers),
            vec![
                (
                    "www.example.test.".into(),
                    DNSClass::NONE,
                    0,
                    RecordType::CNAME,
                    true
                ),
                (
                    "_kcp-ingress.www.example.test.".into(),
                    DNSClass::IN,
                    0,
                    RecordType::TXT,
                    false
                ),
            ]
        );
        // §2.5.1 add: class IN with the TTL; §2.5.4 delete an RR: class NONE, TTL 0.
        assert_eq!(
            section(&message.authorities),
            vec![
                (
                    "www.example.test.".into(),
                    DNSClass::IN,
                    60,
                    RecordType::A,
                    false
                ),
                (
                    "www.example.test.".into(),
                    DNSClass::NONE,
                    0,
                    RecordType::A,
                    false
                ),
            ]
        );
    }
}
