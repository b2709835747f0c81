//! Publishing: what differs between the plan and a zone goes to its server
//! in batched, guarded UPDATEs; a host whose records the server refuses is
//! left out (and retried with backoff) without holding back the others. A
//! host whose guard failed (the zone holds something else there than the
//! glbc knew) is read again from the server, and the next pass plans from
//! what is there: never the same UPDATE blindly again.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::diff::{self, NameChange};
use super::dns::rfc2136::Update;
use super::dns::{DnsError, DnsProvider};
use super::plan::{Plan, RootKey};
use super::records::{DnsName, RecordKind, ZoneRecords, ownership};
use super::zone::{RETRY_CAP, Zones};
use crate::runtime;
use crate::runtime::metrics::{Metrics, ResultLabel};

/// Largest UPDATE message, roughly, in octets (TCP allows 65535).
const UPDATE_BUDGET: usize = 32 * 1024;
/// Longest retry delay of a host whose records the server refused.
const REFUSED_RETRY_CAP: Duration = RETRY_CAP.saturating_mul(6);

/// A host whose records the server refused (not a zone-wide failure).
struct Refusal {
    message: String,
    failures: u32,
    retry_at: Instant,
}

/// The hosts whose records the server refused, until it accepts them.
#[derive(Default)]
pub struct Refusals(BTreeMap<DnsName, Refusal>);

impl Refusals {
    /// Whether the changes of `unit` may be sent at `now`.
    fn allows(&self, unit: &DnsName, now: Instant) -> bool {
        self.0.get(unit).is_none_or(|r| r.retry_at <= now)
    }

    /// The server refused `unit` once more: retried after a backoff.
    fn refused(&mut self, zone: &DnsName, unit: DnsName, message: String, now: Instant) {
        let failures = self.0.get(&unit).map_or(1, |r| r.failures + 1);
        let delay = runtime::backoff(failures, REFUSED_RETRY_CAP);
        warn!(
            zone = zone.without_dot(), host = unit.without_dot(), err = %message,
            retry_in = ?delay, "the DNS server refused the records of a host"
        );
        self.0.insert(
            unit,
            Refusal {
                message,
                failures,
                retry_at: now + delay,
            },
        );
    }

    fn accepted(&mut self, unit: &DnsName) {
        self.0.remove(unit);
    }

    /// The server's answer for each refused host.
    pub fn messages(&self) -> BTreeMap<DnsName, String> {
        self.0
            .iter()
            .map(|(n, r)| (n.clone(), r.message.clone()))
            .collect()
    }

    /// When the refused hosts are due again.
    pub fn next_wake(&self) -> impl Iterator<Item = Instant> + '_ {
        self.0.values().map(|r| r.retry_at)
    }
}

/// What a round of publishing did.
#[derive(Debug, Default)]
pub struct Published {
    /// UPDATE messages the server accepted.
    pub messages: usize,
    /// The roots whose records the server accepted.
    pub roots: BTreeSet<RootKey>,
    /// Hosts read again after their guard failed: the next pass should
    /// plan from what they hold now, at once.
    pub reread: usize,
}

/// Publishes plans: sends the changes, keeps the refused hosts, counts
/// UPDATEs in the metrics.
pub struct Publisher {
    refusals: Refusals,
    /// Hosts whose guard failed in the last round: failing again right
    /// after a re-read backs off like a refusal.
    stale: BTreeSet<DnsName>,
    metrics: Arc<Metrics>,
    dry_run: bool,
}

impl Publisher {
    pub fn new(metrics: Arc<Metrics>, dry_run: bool) -> Self {
        Self {
            refusals: Refusals::default(),
            stale: BTreeSet::new(),
            metrics,
            dry_run,
        }
    }

    /// The hosts whose records the server refused, until it accepts them.
    pub fn refusals(&self) -> &Refusals {
        &self.refusals
    }

    /// Sends what differs between the plan and every zone not in backoff.
    pub async fn publish(&mut self, zones: &mut Zones, plan: &Plan) -> Published {
        let (refusals, metrics, dry_run) = (&mut self.refusals, &self.metrics, self.dry_run);
        let stale_before = std::mem::take(&mut self.stale);
        let now = Instant::now();
        let mut published = Published::default();
        let empty = BTreeMap::new();
        for index in 0..zones.len() {
            let Some((zone, known_zones)) = zones.zone_mut(index) else {
                continue;
            };
            if zone.in_backoff(now) {
                continue;
            }
            // Put back below, whatever happens.
            let Some(mut known) = known_zones.remove(&zone.name) else {
                continue;
            };
            let desired = plan.zones.get(&zone.name).unwrap_or(&empty);
            let publishers = plan.publishers.get(&zone.name);
            let mut changes = diff::diff(desired, &known);
            // Record-level changes of shared names (computed by the plan
            // against this same known state).
            changes.extend(plan.edits.get(&zone.name).into_iter().flatten().cloned());
            changes.retain(|c| refusals.allows(&ownership::unit_of(&c.name), now));
            if changes.is_empty() {
                known_zones.insert(zone.name.clone(), known);
                continue;
            }
            let outcome = send(
                zone.provider.as_ref(),
                diff::batches(changes, UPDATE_BUDGET),
            )
            .await;
            for batch in &outcome.applied {
                published.messages += 1;
                count_update(metrics, "sent");
                metrics
                    .dns_batch_names
                    .observe(diff::units(batch).len() as f64);
                diff::apply(&mut known, batch);
                for unit in diff::units(batch) {
                    refusals.accepted(&unit);
                    self.stale.remove(&unit);
                    if let Some(root) = publishers.and_then(|p| p.get(&unit)) {
                        published.roots.insert(root.clone());
                    }
                }
                log_batch(&zone.name, batch, dry_run);
            }
            if !outcome.applied.is_empty() {
                zone.succeeded();
            }
            for (unit, err) in outcome.refused {
                refusals.refused(&zone.name, unit, err, now);
            }
            for (unit, err) in outcome.stale {
                count_update(metrics, "prerequisite_failed");
                if stale_before.contains(&unit) {
                    // Failed again right after a re-read: back off.
                    refusals.refused(&zone.name, unit.clone(), err.clone(), now);
                }
                match reread(zone.provider.as_ref(), &mut known, &unit).await {
                    Ok(()) => {
                        info!(
                            zone = zone.name.without_dot(), host = unit.without_dot(), %err,
                            "the name is not as the glbc knew it: read it again; the next pass plans from what is there"
                        );
                        published.reread += 1;
                        self.stale.insert(unit);
                    }
                    Err(read_err) => {
                        warn!(zone = zone.name.without_dot(), host = unit.without_dot(), err = %read_err, "cannot read a name again");
                        zone.failed(&read_err, now);
                    }
                }
            }
            if let Some(err) = outcome.failed {
                count_update(metrics, "failed");
                zone.failed(&err, now);
            }
            known_zones.insert(zone.name.clone(), known);
        }
        if published.reread > 0 {
            zones.names_read_again();
        }
        published
    }
}

fn count_update(metrics: &Metrics, result: &str) {
    metrics
        .dns_updates
        .get_or_create(&ResultLabel {
            result: result.into(),
        })
        .inc();
}

/// What became of a zone's batches.
#[derive(Debug, Default)]
struct Sent {
    /// Batches the server applied, in order.
    applied: Vec<Vec<NameChange>>,
    /// Hosts whose records the server refused, with its answer.
    refused: Vec<(DnsName, String)>,
    /// Hosts whose guard failed (the server holds something else there
    /// than the glbc knew), with the server's answer.
    stale: Vec<(DnsName, String)>,
    /// A failure of the server or the key: the rest was not sent.
    failed: Option<DnsError>,
}

/// Sends the batches in order. A batch the server refuses for its content,
/// or whose guard fails, must not hold back the others: if the server takes
/// an empty update (so it is not refusing the zone or the key; a failed
/// guard shows that already), the batch is split between hosts until the
/// culprit stands alone, and only it is left out. Any other failure stops
/// the zone.
async fn send(provider: &dyn DnsProvider, batches: Vec<Vec<NameChange>>) -> Sent {
    let mut out = Sent::default();
    let mut queue: VecDeque<Vec<NameChange>> = batches.into();
    let mut server_is_fine = false;
    while let Some(batch) = queue.pop_front() {
        let result = match diff::update_of(&batch) {
            Ok(update) => provider.update(&update).await,
            Err(err) => Err(err),
        };
        let err = match result {
            Ok(()) => {
                server_is_fine = true;
                out.applied.push(batch);
                continue;
            }
            Err(err @ DnsError::PrerequisiteFailed { .. }) => {
                server_is_fine = true;
                err
            }
            Err(err) if refusal_may_be_content(&err) => err,
            Err(err) => {
                out.failed = Some(err);
                break;
            }
        };
        if !server_is_fine && !matches!(err, DnsError::InvalidName { .. }) {
            if let Err(probe) = provider.update(&Update::default()).await {
                out.failed = Some(probe);
                break;
            }
            server_is_fine = true;
        }
        let units = diff::units(&batch);
        if units.len() > 1 {
            let (left, right) = split_units(batch);
            queue.push_front(right);
            queue.push_front(left);
        } else if matches!(err, DnsError::PrerequisiteFailed { .. }) {
            out.stale
                .extend(units.into_iter().map(|u| (u, err.to_string())));
        } else {
            out.refused
                .extend(units.into_iter().map(|u| (u, err.to_string())));
        }
    }
    out
}

/// Reads one unit again from the server (A, AAAA and CNAME at the host, TXT
/// at its ownership name: four queries, only after a guard failed) and puts
/// it in `known` in place of what was known.
async fn reread(
    provider: &dyn DnsProvider,
    known: &mut ZoneRecords,
    host: &DnsName,
) -> Result<(), DnsError> {
    let mut queries: Vec<(DnsName, RecordKind)> = RecordKind::HOST
        .into_iter()
        .map(|k| (host.clone(), k))
        .collect();
    queries.extend(ownership::name_of(host).map(|o| (o, RecordKind::Txt)));
    let mut records = Vec::new();
    for (name, kind) in queries {
        records.extend(
            provider
                .lookup(&name.to_name()?, kind.record_type())
                .await?,
        );
    }
    known.replace_unit(host, &records);
    Ok(())
}

/// Whether a failed update may be the fault of its content rather than of
/// the server or the key.
fn refusal_may_be_content(err: &DnsError) -> bool {
    use hickory_proto::op::ResponseCode;
    match err {
        DnsError::Refused { rcode, .. } => {
            matches!(rcode, ResponseCode::Refused | ResponseCode::FormErr)
        }
        DnsError::InvalidName { .. } => true,
        _ => false,
    }
}

/// Splits a batch into two halves along host boundaries.
fn split_units(batch: Vec<NameChange>) -> (Vec<NameChange>, Vec<NameChange>) {
    let units = diff::units(&batch);
    let half: BTreeSet<DnsName> = units[..units.len() / 2].iter().cloned().collect();
    batch
        .into_iter()
        .partition(|c| half.contains(&ownership::unit_of(&c.name)))
}

fn log_batch(zone: &DnsName, batch: &[NameChange], dry_run: bool) {
    let names: Vec<&str> = batch.iter().map(|c| c.name.without_dot()).collect();
    info!(
        zone = zone.without_dot(),
        names = names.len(),
        dry_run,
        "DNS update applied"
    );
    for change in batch {
        for (kind, rrset) in &change.rrsets {
            match rrset {
                Some(r) => {
                    debug!(name = change.name.without_dot(), %kind, ttl = r.ttl, data = ?r.data, "replaced RRset")
                }
                None => debug!(name = change.name.without_dot(), %kind, "deleted RRset"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::glbc::dns::rfc2136::Prerequisite;

    /// A server that refuses every message holding `poison`, and, when
    /// `down`, everything.
    struct Picky {
        zone: hickory_proto::rr::Name,
        poison: String,
        down: bool,
        messages: std::sync::Mutex<Vec<usize>>,
        lookups: std::sync::Mutex<Vec<String>>,
    }

    fn picky(poison: &str, down: bool) -> Picky {
        Picky {
            zone: hickory_proto::rr::Name::from_ascii("z.test.").unwrap(),
            poison: poison.into(),
            down,
            messages: Default::default(),
            lookups: Default::default(),
        }
    }

    impl DnsProvider for Picky {
        fn zone(&self) -> &hickory_proto::rr::Name {
            &self.zone
        }

        fn transfer_zone(
            &self,
        ) -> futures::future::BoxFuture<'_, Result<Vec<hickory_proto::rr::Record>, DnsError>>
        {
            Box::pin(async { Ok(vec![]) })
        }

        fn update<'a>(
            &'a self,
            update: &'a Update,
        ) -> futures::future::BoxFuture<'a, Result<(), DnsError>> {
            Box::pin(async move {
                let changes = &update.rrsets;
                self.messages.lock().unwrap().push(changes.len());
                let poisoned = changes
                    .iter()
                    .any(|c| c.name.to_string().contains(&self.poison));
                if self.down || poisoned {
                    return Err(DnsError::Refused {
                        server: "127.0.0.1:53".parse().unwrap(),
                        operation: "update",
                        zone: "z.test.".into(),
                        rcode: hickory_proto::op::ResponseCode::Refused,
                    });
                }
                // Someone else took `taken` since the glbc read the zone.
                let claims_taken = update.prerequisites.iter().any(|p| {
                    matches!(p, Prerequisite::Absent { name, .. } if name.to_string().contains(TAKEN))
                });
                if claims_taken {
                    return Err(DnsError::PrerequisiteFailed {
                        server: "127.0.0.1:53".parse().unwrap(),
                        zone: "z.test.".into(),
                        rcode: hickory_proto::op::ResponseCode::YXRRSet,
                    });
                }
                Ok(())
            })
        }

        fn lookup<'a>(
            &'a self,
            name: &'a hickory_proto::rr::Name,
            record_type: hickory_proto::rr::RecordType,
        ) -> futures::future::BoxFuture<'a, Result<Vec<hickory_proto::rr::Record>, DnsError>>
        {
            Box::pin(async move {
                self.lookups.lock().unwrap().push(name.to_string());
                let foreign = name.to_string() == format!("{TAKEN}.z.test.")
                    && record_type == hickory_proto::rr::RecordType::A;
                Ok(foreign
                    .then(|| {
                        hickory_proto::rr::Record::from_rdata(
                            name.clone(),
                            99,
                            hickory_proto::rr::RData::A(hickory_proto::rr::rdata::A(
                                "127.0.9.9".parse().unwrap(),
                            )),
                        )
                    })
                    .into_iter()
                    .collect())
            })
        }
    }

    /// The host someone else took behind the glbc's back.
    const TAKEN: &str = "h07";

    /// Claims of `n` free hosts `h00` … (guarded as free).
    fn host_changes(n: usize) -> Vec<NameChange> {
        (0..n)
            .map(|i| NameChange {
                edits: BTreeMap::new(),
                guard: diff::guard_of(
                    &DnsName::new_unchecked(&format!("h{i:02}.z.test")),
                    &ZoneRecords::new(DnsName::new_unchecked("z.test")),
                ),
                name: DnsName::new_unchecked(&format!("h{i:02}.z.test")),
                rrsets: BTreeMap::from([(
                    crate::glbc::records::RecordKind::A,
                    Some(crate::glbc::records::Rrset::new(
                        60,
                        ["127.0.1.1".to_string()],
                    )),
                )]),
            })
            .collect()
    }

    #[tokio::test]
    async fn one_refused_host_does_not_hold_back_the_others() {
        let picky = picky("h05", false);
        let sent = send(&picky, vec![host_changes(16)]).await;
        assert!(sent.failed.is_none());
        let applied: usize = sent.applied.iter().map(Vec::len).sum();
        assert_eq!(applied, 14);
        // h07's guard failed: it is to be read again, not refused.
        assert_eq!(
            sent.stale
                .iter()
                .map(|(u, _)| u.as_str())
                .collect::<Vec<_>>(),
            ["h07.z.test."]
        );
        assert_eq!(
            sent.refused
                .iter()
                .map(|(u, _)| u.as_str())
                .collect::<Vec<_>>(),
            ["h05.z.test."]
        );
        // One message, one probe, then a bisection: far fewer than one per host.
        let messages = picky.messages.lock().unwrap().len();
        assert!(messages <= 12, "{messages} messages");
    }

    #[tokio::test]
    async fn a_server_refusing_everything_stops_the_zone_at_once() {
        let picky = picky("nothing", true);
        let sent = send(&picky, vec![host_changes(4), host_changes(4)]).await;
        assert!(matches!(sent.failed, Some(DnsError::Refused { .. })));
        assert!(sent.applied.is_empty() && sent.refused.is_empty());
        // The batch and the probe, nothing more.
        assert_eq!(*picky.messages.lock().unwrap(), [4, 0]);
    }

    #[tokio::test]
    async fn a_name_whose_guard_failed_is_read_again_and_nothing_is_resent() {
        let picky = picky("nothing", false);
        let sent = send(&picky, vec![host_changes(8)]).await;
        assert!(sent.failed.is_none() && sent.refused.is_empty());
        assert_eq!(sent.applied.iter().map(Vec::len).sum::<usize>(), 7);
        assert_eq!(sent.stale.len(), 1);
        let messages_before = picky.messages.lock().unwrap().len();
        let host = DnsName::new_unchecked("h07.z.test");
        let mut known = ZoneRecords::new(DnsName::new_unchecked("z.test"));
        reread(&picky, &mut known, &host).await.unwrap();
        // Four queries, no UPDATE.
        assert_eq!(picky.lookups.lock().unwrap().len(), 4);
        assert_eq!(picky.messages.lock().unwrap().len(), messages_before);
        assert_eq!(
            known.rrset(&host, RecordKind::A).map(|r| r.data.len()),
            Some(1)
        );
        // From what is there now, a claim is no longer planned as a claim
        // of a free name.
        assert!(matches!(
            diff::guard_of(&host, &known).as_slice(),
            [diff::Guard::Absent { .. }, ..]
        ));
    }

    #[test]
    fn a_batch_splits_between_hosts() {
        let change = |n: &str| NameChange {
            name: DnsName::new_unchecked(n),
            rrsets: BTreeMap::new(),
            edits: BTreeMap::new(),
            guard: vec![],
        };
        let batch = vec![
            change("_kcp-ingress.a.z.test"),
            change("a.z.test"),
            change("_kcp-ingress.b.z.test"),
            change("b.z.test"),
            change("c.z.test"),
        ];
        let (left, right) = split_units(batch);
        assert_eq!(diff::units(&left).len(), 1);
        assert_eq!(left.len(), 2);
        assert_eq!(diff::units(&right).len(), 2);
    }
}
