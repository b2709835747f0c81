//! Publishing: what differs between the plan and a zone goes to its server
//! in batched UPDATEs; a host whose records the server refuses is left out
//! (and retried with backoff) without holding back the others.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::diff::{self, NameChange};
use super::dns::{DnsError, DnsProvider};
use super::plan::{Plan, RootKey};
use super::records::{DnsName, ownership};
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
}

/// Publishes plans: sends the changes, keeps the refused hosts, counts
/// UPDATEs in the metrics.
pub struct Publisher {
    refusals: Refusals,
    metrics: Arc<Metrics>,
    dry_run: bool,
}

impl Publisher {
    pub fn new(metrics: Arc<Metrics>, dry_run: bool) -> Self {
        Self {
            refusals: Refusals::default(),
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
        let now = Instant::now();
        let mut published = Published::default();
        let empty = BTreeMap::new();
        for zone in zones.iter_mut() {
            if zone.in_backoff(now) {
                continue;
            }
            // Put back below, whatever happens.
            let Some(mut known) = zone.known.take() else {
                continue;
            };
            let desired = plan.zones.get(&zone.name).unwrap_or(&empty);
            let publishers = plan.publishers.get(&zone.name);
            let mut changes = diff::diff(desired, &known);
            changes.retain(|c| refusals.allows(&ownership::unit_of(&c.name), now));
            if changes.is_empty() {
                zone.known = Some(known);
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
            if let Some(err) = outcome.failed {
                count_update(metrics, "failed");
                zone.failed(&err, now);
            }
            zone.known = Some(known);
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
    /// A failure of the server or the key: the rest was not sent.
    failed: Option<DnsError>,
}

/// Sends the batches in order. A batch the server refuses for its content
/// must not hold back the others: if the server takes an empty update (so
/// it is not refusing the zone or the key), the batch is split between hosts
/// until the culprit stands alone, and only it is left out. Any other
/// failure stops the zone.
async fn send(provider: &dyn DnsProvider, batches: Vec<Vec<NameChange>>) -> Sent {
    let mut out = Sent::default();
    let mut queue: VecDeque<Vec<NameChange>> = batches.into();
    let mut server_is_fine = false;
    while let Some(batch) = queue.pop_front() {
        let result = match diff::rrset_changes(&batch) {
            Ok(rrsets) => provider.replace_rrsets(&rrsets).await,
            Err(err) => Err(err),
        };
        let err = match result {
            Ok(()) => {
                server_is_fine = true;
                out.applied.push(batch);
                continue;
            }
            Err(err) if refusal_may_be_content(&err) => err,
            Err(err) => {
                out.failed = Some(err);
                break;
            }
        };
        if !server_is_fine && !matches!(err, DnsError::InvalidName { .. }) {
            if let Err(probe) = provider.replace_rrsets(&[]).await {
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
        } else {
            out.refused
                .extend(units.into_iter().map(|u| (u, err.to_string())));
        }
    }
    out
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

    /// A server that refuses every message holding `poison`, and, when
    /// `down`, everything.
    struct Picky {
        zone: hickory_proto::rr::Name,
        poison: String,
        down: bool,
        messages: std::sync::Mutex<Vec<usize>>,
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

        fn replace_rrsets<'a>(
            &'a self,
            changes: &'a [crate::glbc::dns::rfc2136::RrsetChange],
        ) -> futures::future::BoxFuture<'a, Result<(), DnsError>> {
            Box::pin(async move {
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
                Ok(())
            })
        }
    }

    fn host_changes(n: usize) -> Vec<NameChange> {
        (0..n)
            .map(|i| NameChange {
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
        let picky = Picky {
            zone: hickory_proto::rr::Name::from_ascii("z.test.").unwrap(),
            poison: "h05".into(),
            down: false,
            messages: Default::default(),
        };
        let sent = send(&picky, vec![host_changes(16)]).await;
        assert!(sent.failed.is_none());
        let applied: usize = sent.applied.iter().map(Vec::len).sum();
        assert_eq!(applied, 15);
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
        let picky = Picky {
            zone: hickory_proto::rr::Name::from_ascii("z.test.").unwrap(),
            poison: "nothing".into(),
            down: true,
            messages: Default::default(),
        };
        let sent = send(&picky, vec![host_changes(4), host_changes(4)]).await;
        assert!(matches!(sent.failed, Some(DnsError::Refused { .. })));
        assert!(sent.applied.is_empty() && sent.refused.is_empty());
        // The batch and the probe, nothing more.
        assert_eq!(*picky.messages.lock().unwrap(), [4, 0]);
    }

    #[test]
    fn a_batch_splits_between_hosts() {
        let change = |n: &str| NameChange {
            name: DnsName::new_unchecked(n),
            rrsets: BTreeMap::new(),
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
