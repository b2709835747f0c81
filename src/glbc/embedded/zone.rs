//! One zone of the embedded server: the store the glbc writes through
//! [`crate::glbc::dns::DnsProvider`], the snapshot hickory-server answers
//! from, weighted first answers per query, and AXFR only with the TSIG key.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{
    LowerName, Name, RData, Record, RecordSet, RecordType, RrKey, TSigResponseContext, TSigner,
};
use hickory_server::dnssec::NxProofKind;
use hickory_server::server::{Request, RequestInfo};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{
    AuthLookup, AxfrPolicy, LookupControlFlow, LookupError, LookupOptions, LookupRecords,
    Nsec3QueryInfo, UpdateRequest, ZoneHandler, ZoneTransfer, ZoneType,
};
use tokio::sync::{Mutex, Notify};
use tracing::warn;

use super::store::{Refusal, ZoneStore};
use crate::glbc::dns::rfc2136::Update;
use crate::glbc::dns::{DnsError, DnsProvider};
use crate::glbc::traffic;

/// The weight of each address, as of the glbc's last pass; shared by the
/// zones of one server.
#[derive(Default)]
pub struct Weights(RwLock<Arc<BTreeMap<IpAddr, u32>>>);

impl Weights {
    pub fn set(&self, weights: BTreeMap<IpAddr, u32>) {
        if let Ok(mut w) = self.0.write()
            && **w != weights
        {
            *w = Arc::new(weights);
        }
    }

    fn get(&self) -> Arc<BTreeMap<IpAddr, u32>> {
        self.0.read().map(|w| w.clone()).unwrap_or_default()
    }
}

/// One zone served by the embedded server.
pub struct EmbeddedZone {
    origin: LowerName,
    name: Name,
    store: Mutex<ZoneStore>,
    served: InMemoryZoneHandler,
    weights: Arc<Weights>,
    signer: TSigner,
    draws: AtomicU64,
    /// Signalled on every change of the zone (NOTIFY to the secondaries).
    pub changed: Notify,
    /// Where this server listens, for the errors of the provider.
    listen: std::net::SocketAddr,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl EmbeddedZone {
    pub fn new(
        store: ZoneStore,
        weights: Arc<Weights>,
        signer: TSigner,
        listen: std::net::SocketAddr,
    ) -> Arc<Self> {
        let name = store.origin().clone();
        let mut served =
            InMemoryZoneHandler::empty(name.clone(), ZoneType::Primary, AxfrPolicy::AllowAll, None);
        *served.records_get_mut() = snapshot(&store);
        let seed = std::collections::hash_map::RandomState::new();
        let seed = std::hash::BuildHasher::hash_one(&seed, unix_now());
        Arc::new(Self {
            origin: LowerName::new(&name),
            name,
            store: Mutex::new(store),
            served,
            weights,
            signer,
            draws: AtomicU64::new(seed),
            changed: Notify::new(),
            listen,
        })
    }

    pub fn name(&self) -> &Name {
        &self.name
    }

    /// The SOA record now.
    pub async fn soa(&self) -> Record {
        self.store.lock().await.soa()
    }

    /// Applies one UPDATE of the glbc; a change is served at once and
    /// NOTIFY goes to the secondaries.
    async fn apply(&self, update: &Update) -> Result<(), DnsError> {
        let mut store = self.store.lock().await;
        let now = u32::try_from(unix_now() & 0xFFFF_FFFF).unwrap_or(0);
        match store.apply(update, now) {
            Ok(false) => Ok(()),
            Ok(true) => {
                *self.served.records_mut().await = snapshot(&store);
                drop(store);
                self.changed.notify_one();
                Ok(())
            }
            Err(Refusal::Prerequisite) => Err(DnsError::PrerequisiteFailed {
                server: self.listen,
                zone: self.name.to_string(),
                rcode: ResponseCode::NXRRSet,
            }),
            Err(Refusal::NotZone(what)) => Err(DnsError::Refused {
                server: self.listen,
                operation: "update",
                zone: format!("{} ({what})", self.name),
                rcode: ResponseCode::NotZone,
            }),
        }
    }

    /// A and AAAA of a name with several addresses: the first drawn by
    /// weight. `None`: not such a name (the snapshot answers as it is).
    async fn weighted(
        &self,
        name: &LowerName,
        rtype: RecordType,
        options: LookupOptions,
    ) -> Option<AuthLookup> {
        let rrset = self
            .served
            .records()
            .await
            .get(&RrKey::new(name.clone(), rtype))?
            .clone();
        let records: Vec<&Record> = rrset.records_without_rrsigs().collect();
        if records.len() < 2 {
            return None;
        }
        let weights = self.weights.get();
        let items: Vec<(&Record, u32)> = records
            .iter()
            .map(|r| {
                let weight = match &r.data {
                    RData::A(a) => weights.get(&IpAddr::V4(a.0)),
                    RData::AAAA(a) => weights.get(&IpAddr::V6(a.0)),
                    _ => None,
                };
                (*r, weight.copied().unwrap_or(traffic::DEFAULT_WEIGHT))
            })
            .collect();
        let draw = traffic::splitmix64(self.draws.fetch_add(1, Ordering::Relaxed));
        let mut ordered = RecordSet::with_ttl(rrset.name().clone(), rtype, rrset.ttl());
        for record in traffic::weighted_order(&items, draw) {
            ordered.insert(record.clone(), 0);
        }
        Some(AuthLookup::answers(
            LookupRecords::new(options, Arc::new(ordered)),
            None,
        ))
    }

    /// Whether a request is signed with our key: the response's signer, or
    /// the answer to send (unsigned: REFUSED).
    fn authorize(
        &self,
        request: &Request,
        now: u64,
    ) -> Result<TSigResponseContext, (ResponseCode, Option<TSigResponseContext>)> {
        let id = request.id();
        let Some(tsig) = request.signature() else {
            return Err((ResponseCode::Refused, None));
        };
        if &tsig.name != self.signer.signer_name() {
            warn!(zone = %self.name, from = %request.src(), key = %tsig.name, "signed request refused: unknown TSIG key");
            return Err((
                ResponseCode::NotAuth,
                Some(TSigResponseContext::unknown_key(id, now, tsig.name.clone())),
            ));
        }
        let Ok((_, _, range)) = self
            .signer
            .verify_message_byte(request.as_slice(), None, true)
        else {
            warn!(zone = %self.name, from = %request.src(), "signed request refused: bad TSIG signature");
            return Err((
                ResponseCode::NotAuth,
                Some(TSigResponseContext::bad_signature(
                    id,
                    now,
                    self.signer.clone(),
                )),
            ));
        };
        if !range.contains(&now) {
            warn!(zone = %self.name, from = %request.src(), "signed request refused: TSIG time out of range");
            return Err((
                ResponseCode::NotAuth,
                Some(TSigResponseContext::new(
                    id,
                    now,
                    self.signer.clone(),
                    tsig.data.mac.clone(),
                    Some(hickory_proto::rr::rdata::tsig::TsigError::BadTime),
                )),
            ));
        }
        Ok(TSigResponseContext::new(
            id,
            now,
            self.signer.clone(),
            tsig.data.mac.clone(),
            None,
        ))
    }
}

/// The records hickory-server answers from.
fn snapshot(store: &ZoneStore) -> BTreeMap<RrKey, Arc<RecordSet>> {
    let mut sets: BTreeMap<RrKey, RecordSet> = BTreeMap::new();
    for record in store.records() {
        let key = RrKey::new(LowerName::new(&record.name), record.record_type());
        sets.entry(key)
            .or_insert_with(|| {
                RecordSet::with_ttl(record.name.clone(), record.record_type(), record.ttl)
            })
            .insert(record, store.serial());
    }
    sets.into_iter().map(|(k, v)| (k, Arc::new(v))).collect()
}

#[async_trait::async_trait]
impl ZoneHandler for EmbeddedZone {
    fn zone_type(&self) -> ZoneType {
        ZoneType::Primary
    }

    fn axfr_policy(&self) -> AxfrPolicy {
        AxfrPolicy::AllowSigned
    }

    fn origin(&self) -> &LowerName {
        &self.origin
    }

    async fn lookup(
        &self,
        name: &LowerName,
        rtype: RecordType,
        request_info: Option<&RequestInfo<'_>>,
        lookup_options: LookupOptions,
    ) -> LookupControlFlow<AuthLookup> {
        if matches!(rtype, RecordType::A | RecordType::AAAA)
            && let Some(answer) = self.weighted(name, rtype, lookup_options).await
        {
            return LookupControlFlow::Continue(Ok(answer));
        }
        self.served
            .lookup(name, rtype, request_info, lookup_options)
            .await
    }

    async fn search(
        &self,
        request: &Request,
        lookup_options: LookupOptions,
    ) -> (LookupControlFlow<AuthLookup>, Option<TSigResponseContext>) {
        let info = match request.request_info() {
            Ok(info) => info,
            Err(e) => return (LookupControlFlow::Break(Err(e)), None),
        };
        // A signed query (a secondary's SOA check) gets a signed answer;
        // one signed with another key gets NOTAUTH.
        let signer = match request.signature() {
            None => None,
            Some(_) => match self.authorize(request, unix_now()) {
                Ok(signer) => Some(signer),
                Err((rcode, signer)) => {
                    return (
                        LookupControlFlow::Break(Err(LookupError::from(rcode))),
                        signer,
                    );
                }
            },
        };
        if info.query.query_type() == RecordType::AXFR {
            return (
                LookupControlFlow::Break(Err(LookupError::from(ResponseCode::Refused))),
                None,
            );
        }
        let flow = self
            .lookup(
                info.query.name(),
                info.query.query_type(),
                Some(&info),
                lookup_options,
            )
            .await;
        (flow, signer)
    }

    async fn zone_transfer(
        &self,
        request: &Request,
        lookup_options: LookupOptions,
        now: u64,
    ) -> Option<(
        Result<ZoneTransfer, LookupError>,
        Option<TSigResponseContext>,
    )> {
        if request.signature().is_none() {
            warn!(zone = %self.name, from = %request.src(), "AXFR refused: not signed");
            return Some((Err(LookupError::from(ResponseCode::Refused)), None));
        }
        match self.authorize(request, now) {
            Err((rcode, signer)) => Some((Err(LookupError::from(rcode)), signer)),
            Ok(signer) => {
                let (transfer, _) = self
                    .served
                    .zone_transfer(request, lookup_options, now)
                    .await?;
                Some((transfer, Some(signer)))
            }
        }
    }

    async fn nsec_records(
        &self,
        name: &LowerName,
        lookup_options: LookupOptions,
    ) -> LookupControlFlow<AuthLookup> {
        self.served.nsec_records(name, lookup_options).await
    }

    async fn nsec3_records(
        &self,
        info: Nsec3QueryInfo<'_>,
        lookup_options: LookupOptions,
    ) -> LookupControlFlow<AuthLookup> {
        self.served.nsec3_records(info, lookup_options).await
    }

    fn nx_proof_kind(&self) -> Option<&NxProofKind> {
        None
    }
}

/// The glbc's provider for a zone of the embedded server: reads and
/// writes the store in memory.
pub struct EmbeddedProvider(pub Arc<EmbeddedZone>);

impl DnsProvider for EmbeddedProvider {
    fn zone(&self) -> &Name {
        &self.0.name
    }

    fn transfer_zone(&self) -> BoxFuture<'_, Result<Vec<Record>, DnsError>> {
        Box::pin(async move { Ok(self.0.store.lock().await.records()) })
    }

    fn update<'a>(&'a self, update: &'a Update) -> BoxFuture<'a, Result<(), DnsError>> {
        Box::pin(self.0.apply(update))
    }

    fn lookup<'a>(
        &'a self,
        name: &'a Name,
        record_type: RecordType,
    ) -> BoxFuture<'a, Result<Vec<Record>, DnsError>> {
        Box::pin(async move { Ok(self.0.store.lock().await.lookup(name, record_type)) })
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use hickory_proto::rr::rdata::A;

    use super::*;
    use crate::glbc::dns::rfc2136::RrsetChange;
    use crate::glbc::dns::{TsigAlgorithm, TsigKey};

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn zone(weights: Arc<Weights>) -> Arc<EmbeddedZone> {
        let key = TsigKey::from_base64("k", TsigAlgorithm::HmacSha256, "c2VjcmV0").unwrap();
        EmbeddedZone::new(
            ZoneStore::new(name("z.test."), vec![name("ns.z.test.")], 7, 30),
            weights,
            crate::glbc::dns::rfc2136::tsig_signer(&key).unwrap(),
            "127.0.0.1:53".parse().unwrap(),
        )
    }

    fn first(answer: &AuthLookup) -> String {
        answer
            .iter()
            .next()
            .map(|r| r.data.to_string())
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn updates_are_served_and_the_first_answer_follows_the_weights() {
        let weights = Arc::new(Weights::default());
        let zone = zone(weights.clone());
        let provider = EmbeddedProvider(zone.clone());
        let www = name("www.z.test.");
        let data = [1u8, 2].map(|i| RData::A(A(Ipv4Addr::new(127, 0, 1, i))));
        provider
            .update(&Update::replace(vec![RrsetChange {
                name: www.clone(),
                record_type: RecordType::A,
                ttl: 60,
                data: data.to_vec(),
            }]))
            .await
            .unwrap();
        assert_eq!(
            provider.transfer_zone().await.unwrap().len(),
            4,
            "SOA, NS, 2 A"
        );
        weights.set(BTreeMap::from([
            ("127.0.1.1".parse().unwrap(), 3),
            ("127.0.1.2".parse().unwrap(), 1),
        ]));
        let lower = LowerName::new(&www);
        let mut heavy = 0;
        let n = 4_000;
        for _ in 0..n {
            let LookupControlFlow::Continue(Ok(answer)) = zone
                .lookup(&lower, RecordType::A, None, LookupOptions::default())
                .await
            else {
                panic!("no answer")
            };
            assert_eq!(answer.iter().count(), 2);
            if first(&answer) == "127.0.1.1" {
                heavy += 1;
            }
        }
        let share = f64::from(heavy) / f64::from(n);
        assert!((share - 0.75).abs() < 0.03, "{share}");
        // The SOA moved on, and is answered.
        let LookupControlFlow::Continue(Ok(soa)) = zone
            .lookup(
                &LowerName::new(&name("z.test.")),
                RecordType::SOA,
                None,
                LookupOptions::default(),
            )
            .await
        else {
            panic!("no SOA")
        };
        let RData::SOA(soa) = &soa.iter().next().unwrap().data else {
            panic!("not a SOA")
        };
        assert!(soa.serial > 7);
        // A failed prerequisite is reported as such, and changes nothing.
        let mut guarded = Update::replace(vec![]);
        guarded
            .prerequisites
            .push(crate::glbc::dns::rfc2136::Prerequisite::Absent {
                name: www.clone(),
                record_type: RecordType::A,
            });
        assert!(matches!(
            provider.update(&guarded).await,
            Err(DnsError::PrerequisiteFailed { .. })
        ));
        assert_eq!(provider.lookup(&www, RecordType::A).await.unwrap().len(), 2);
    }
}
