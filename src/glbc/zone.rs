//! The zones the glbc publishes in: each with its provider, what the server
//! is known to hold, when it was transferred, and its failures, backoff and
//! problem (shown in statuses).

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{error, info, warn};

use super::dns::{DnsError, DnsProvider};
use super::keys::Keys;
use super::records::{DnsName, RecordKind, ZoneRecords, ownership};
use super::status::ZoneProblem;
use crate::runtime;

/// Longest retry delay of a zone whose server failed.
pub const RETRY_CAP: Duration = Duration::from_secs(10);
/// Longest retry delay of a zone whose server rejected the TSIG key.
pub const TSIG_RETRY_CAP: Duration = Duration::from_secs(30);

/// One zone: its provider, transfers and failures (what it is known to
/// hold is kept by [`Zones`], for all zones in one map that passes borrow).
pub struct Zone {
    pub name: DnsName,
    pub provider: Box<dyn DnsProvider>,
    /// Read the zone again before the next update (after an error).
    needs_transfer: bool,
    transferred_at: Option<Instant>,
    failures: u32,
    retry_at: Option<Instant>,
    problem: Option<ZoneProblem>,
}

impl Zone {
    pub fn new(name: DnsName, provider: Box<dyn DnsProvider>) -> Self {
        Self {
            name,
            provider,
            needs_transfer: true,
            transferred_at: None,
            failures: 0,
            retry_at: None,
            problem: None,
        }
    }

    pub fn in_backoff(&self, now: Instant) -> bool {
        self.retry_at.is_some_and(|at| at > now)
    }

    /// An exchange with the server failed: read the zone again before the
    /// next update, after a delay from the one backoff schedule.
    pub fn failed(&mut self, err: &DnsError, now: Instant) {
        self.failures += 1;
        self.needs_transfer = true;
        let zone = self.name.without_dot();
        let (problem, cap) = match err {
            DnsError::TsigRejected { .. } => (ZoneProblem::Tsig(err.to_string()), TSIG_RETRY_CAP),
            _ => (
                ZoneProblem::Unavailable(format!("DNS server for zone {zone}: {err}")),
                RETRY_CAP,
            ),
        };
        let delay = runtime::backoff(self.failures, cap);
        self.retry_at = Some(now + delay);
        match &problem {
            ZoneProblem::Tsig(_) => error!(
                zone, %err, retry_in = ?delay,
                "the DNS server rejected the TSIG key; nothing is published until it accepts it"
            ),
            ZoneProblem::Unavailable(_) => warn!(
                zone, %err, failures = self.failures, retry_in = ?delay,
                "DNS exchange failed; the changes are kept and retried"
            ),
        }
        self.problem = Some(problem);
    }

    /// An exchange with the server worked.
    pub fn succeeded(&mut self) {
        if self.problem.is_some() {
            info!(zone = self.name.without_dot(), "the DNS server works again");
        }
        self.failures = 0;
        self.retry_at = None;
        self.problem = None;
    }

    /// Whether a transfer is due: never read (`read` false), to be read
    /// again after an error, or the periodic re-read (drift repair) is due.
    fn transfer_due(&self, read: bool, now: Instant, resync: Duration) -> bool {
        !read || self.needs_transfer || self.transferred_at.is_some_and(|at| at + resync <= now)
    }

    /// Reads the zone from the server into `known` (every zone's content);
    /// `owner` only counts our names for the log.
    async fn transfer(
        &mut self,
        known: &mut BTreeMap<DnsName, ZoneRecords>,
        now: Instant,
        owner: &str,
    ) -> bool {
        match self.provider.transfer_zone().await {
            Ok(records) => {
                let state = ZoneRecords::from_records(self.name.clone(), &records);
                if known.get(&self.name) != Some(&state) {
                    info!(
                        zone = self.name.without_dot(),
                        names = state.names.len(),
                        owned = owned_names(&state, owner),
                        "read the zone from the DNS server"
                    );
                }
                known.insert(self.name.clone(), state);
                self.needs_transfer = false;
                self.transferred_at = Some(now);
                self.succeeded();
                true
            }
            Err(err) => {
                self.failed(&err, now);
                false
            }
        }
    }

    /// When this zone wants the next pass: its retry, else its re-read.
    fn next_wake(&self, resync: Duration) -> Option<Instant> {
        self.retry_at
            .or_else(|| self.transferred_at.map(|at| at + resync))
    }
}

/// How many hosts of `state` carry an ownership record of `owner`.
fn owned_names(state: &ZoneRecords, owner: &str) -> usize {
    state
        .names
        .keys()
        .filter(|n| ownership::host_of(n).is_some())
        .filter(|n| {
            state.rrset(n, RecordKind::Txt).is_some_and(|t| {
                t.data
                    .iter()
                    .filter_map(|d| ownership::parse(d))
                    .any(|o| o.owner == owner)
            })
        })
        .count()
}

/// Every zone, what each one read so far holds, and the key their
/// providers are built with.
pub struct Zones {
    zones: Vec<Zone>,
    /// What the server of each zone read so far holds, as of its last
    /// transfer plus every update it confirmed since (one copy, lent to
    /// every pass).
    known: BTreeMap<DnsName, ZoneRecords>,
    /// Counts the reads of what the server holds (transfers, names read
    /// again): `known` changes otherwise only by the updates the glbc
    /// made, which it knows.
    reads: u64,
    keys: Keys,
}

impl Zones {
    /// The zones `names`, each with a provider built from `keys`.
    pub fn new(names: &[DnsName], keys: Keys) -> Result<Self, DnsError> {
        let mut zones = Vec::new();
        for name in names {
            zones.push(Zone::new(name.clone(), keys.provider(name)?));
        }
        Ok(Self {
            zones,
            known: BTreeMap::new(),
            reads: 0,
            keys,
        })
    }

    pub fn len(&self) -> usize {
        self.zones.len()
    }

    pub fn is_empty(&self) -> bool {
        self.zones.is_empty()
    }

    /// The zone at `index`, and what every zone is known to hold.
    pub fn zone_mut(
        &mut self,
        index: usize,
    ) -> Option<(&mut Zone, &mut BTreeMap<DnsName, ZoneRecords>)> {
        Some((self.zones.get_mut(index)?, &mut self.known))
    }

    /// Transfers the zones whose transfer is due and not in backoff; reads
    /// the key again first if the server rejected it and a retry is due.
    pub async fn read(&mut self, now: Instant, resync: Duration, owner: &str) {
        if self
            .zones
            .iter()
            .any(|z| matches!(z.problem, Some(ZoneProblem::Tsig(_))) && !z.in_backoff(now))
        {
            self.reload_key().await;
        }
        for zone in &mut self.zones {
            let read = self.known.contains_key(&zone.name);
            if zone.transfer_due(read, now, resync)
                && !zone.in_backoff(now)
                && zone.transfer(&mut self.known, now, owner).await
            {
                self.reads += 1;
            }
        }
    }

    async fn reload_key(&mut self) {
        let names: Vec<&DnsName> = self.zones.iter().map(|z| &z.name).collect();
        let Some(providers) = self.keys.reload(&names).await else {
            return;
        };
        for (zone, provider) in self.zones.iter_mut().zip(providers) {
            zone.provider = provider;
            zone.retry_at = None;
        }
    }

    /// What every zone read so far holds (borrowed: a pass copies none
    /// of it).
    pub fn known(&self) -> &BTreeMap<DnsName, ZoneRecords> {
        &self.known
    }

    /// How many times what the server holds was read (see `reads`).
    pub fn reads(&self) -> u64 {
        self.reads
    }

    /// Names were read again outside a transfer (an update's guard failed).
    pub fn names_read_again(&mut self) {
        self.reads += 1;
    }

    /// The zones with a problem, and what it is.
    pub fn problems(&self) -> BTreeMap<DnsName, ZoneProblem> {
        self.zones
            .iter()
            .filter_map(|z| Some((z.name.clone(), z.problem.clone()?)))
            .collect()
    }

    /// Every zone read and without a problem.
    pub fn in_sync(&self) -> bool {
        self.zones
            .iter()
            .all(|z| self.known.contains_key(&z.name) && z.problem.is_none())
    }

    /// When the zones want the next pass at the latest.
    pub fn next_wake(&self, resync: Duration) -> impl Iterator<Item = Instant> + '_ {
        self.zones.iter().filter_map(move |z| z.next_wake(resync))
    }
}

#[cfg(test)]
mod tests {
    use futures::future::BoxFuture;
    use hickory_proto::op::ResponseCode;
    use hickory_proto::rr::{Name, Record, RecordType};

    use super::*;
    use crate::glbc::dns::rfc2136::Update;

    /// A server that holds an empty zone, or refuses everything.
    struct Fake {
        zone: Name,
        down: bool,
    }

    fn refused() -> DnsError {
        DnsError::Refused {
            server: "127.0.0.1:53".parse().unwrap(),
            operation: "transfer",
            zone: "z.test.".into(),
            rcode: ResponseCode::Refused,
        }
    }

    impl DnsProvider for Fake {
        fn zone(&self) -> &Name {
            &self.zone
        }

        fn transfer_zone(&self) -> BoxFuture<'_, Result<Vec<Record>, DnsError>> {
            Box::pin(async move {
                if self.down {
                    Err(refused())
                } else {
                    Ok(vec![])
                }
            })
        }

        fn update<'a>(&'a self, _: &'a Update) -> BoxFuture<'a, Result<(), DnsError>> {
            Box::pin(async { Ok(()) })
        }

        fn lookup<'a>(
            &'a self,
            _: &'a Name,
            _: RecordType,
        ) -> BoxFuture<'a, Result<Vec<Record>, DnsError>> {
            Box::pin(async { Ok(vec![]) })
        }
    }

    fn zone(down: bool) -> Zone {
        Zone::new(
            DnsName::new_unchecked("z.test"),
            Box::new(Fake {
                zone: Name::from_ascii("z.test.").unwrap(),
                down,
            }),
        )
    }

    #[test]
    fn failures_back_off_on_the_one_schedule_and_success_clears_them() {
        let now = Instant::now();
        let mut z = zone(true);
        z.failed(&refused(), now);
        assert!(z.in_backoff(now) && !z.in_backoff(now + runtime::backoff::BASE));
        assert!(matches!(z.problem, Some(ZoneProblem::Unavailable(_))));
        z.failed(&refused(), now);
        assert_eq!(z.retry_at, Some(now + Duration::from_millis(500)));
        for _ in 0..20 {
            z.failed(&refused(), now);
        }
        assert_eq!(z.retry_at, Some(now + RETRY_CAP));
        let tsig = DnsError::TsigRejected {
            server: "127.0.0.1:53".parse().unwrap(),
            key: "k".into(),
            rcode: ResponseCode::NotAuth,
            tsig_error: None,
        };
        z.failed(&tsig, now);
        assert_eq!(z.retry_at, Some(now + TSIG_RETRY_CAP));
        assert!(matches!(z.problem, Some(ZoneProblem::Tsig(_))));
        z.succeeded();
        assert!(!z.in_backoff(now) && z.problem.is_none() && z.failures == 0);
        // A failure after an exchange that worked starts over.
        z.failed(&refused(), now);
        assert_eq!(z.retry_at, Some(now + runtime::backoff::BASE));
    }

    #[tokio::test]
    async fn a_zone_is_read_first_after_an_error_and_when_the_resync_is_due() {
        let (now, resync) = (Instant::now(), Duration::from_secs(600));
        let mut z = zone(false);
        let mut known = BTreeMap::new();
        assert!(z.transfer_due(false, now, resync));
        z.transfer(&mut known, now, "me").await;
        assert_eq!(known.get(&z.name).map(|k| k.names.len()), Some(0));
        assert!(!z.transfer_due(true, now, resync));
        assert!(z.transfer_due(true, now + resync, resync));
        assert_eq!(z.next_wake(resync), Some(now + resync));
        z.failed(&refused(), now);
        assert!(z.transfer_due(true, now, resync));
        assert_eq!(z.next_wake(resync), Some(now + runtime::backoff::BASE));

        let mut down = zone(true);
        let mut known = BTreeMap::new();
        down.transfer(&mut known, now, "me").await;
        assert!(known.is_empty() && down.in_backoff(now));
        assert!(matches!(down.problem, Some(ZoneProblem::Unavailable(_))));
    }
}
