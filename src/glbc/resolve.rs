//! Load-balancer hostnames resolved to addresses, for hosts that have more
//! than one target. Lookups go through the system resolver in the
//! background; the apply loop reads the last answers and is woken when one
//! changes. The system resolver does not give TTLs, so an answer is
//! refreshed after a fixed interval (the published records' TTL): the
//! published addresses are never older than that plus one lookup.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tracing::{debug, warn};

use super::records::DnsName;

/// How long one lookup may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);
/// Retry interval after a failed lookup.
const RETRY: Duration = Duration::from_secs(5);

#[derive(Debug, Default)]
struct Entry {
    addresses: Vec<IpAddr>,
    /// When to look up again.
    refresh_at: Option<Instant>,
    in_flight: bool,
}

/// Shared cache of lookups.
#[derive(Clone)]
pub struct Resolver {
    entries: Arc<Mutex<HashMap<DnsName, Entry>>>,
    refresh: Duration,
    notify: Arc<Notify>,
}

impl Resolver {
    /// Answers are refreshed every `refresh`; `notify` is signalled when an
    /// answer changes.
    pub fn new(refresh: Duration, notify: Arc<Notify>) -> Self {
        Self {
            entries: Arc::default(),
            refresh,
            notify,
        }
    }

    /// The current answers for `wanted`, starting lookups for those that are
    /// missing or due, and forgetting the names no longer wanted. Also
    /// returns when the next refresh is due.
    pub fn answers(
        &self,
        wanted: &BTreeSet<DnsName>,
    ) -> (BTreeMap<DnsName, Vec<IpAddr>>, Option<Instant>) {
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|name, _| wanted.contains(name));
        let mut out = BTreeMap::new();
        let mut next: Option<Instant> = None;
        for name in wanted {
            let entry = entries.entry(name.clone()).or_default();
            let due = entry.refresh_at.is_none_or(|at| at <= now);
            if due && !entry.in_flight {
                entry.in_flight = true;
                tokio::spawn(self.clone().lookup(name.clone()));
            }
            if let Some(at) = entry.refresh_at.filter(|at| *at > now) {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
            if !entry.addresses.is_empty() {
                out.insert(name.clone(), entry.addresses.clone());
            }
        }
        (out, next)
    }

    async fn lookup(self, name: DnsName) {
        let host = name.without_dot().to_string();
        let result =
            tokio::time::timeout(LOOKUP_TIMEOUT, tokio::net::lookup_host((host.as_str(), 0))).await;
        let (addresses, retry) = match result {
            Ok(Ok(found)) => {
                let set: BTreeSet<IpAddr> = found.map(|a| a.ip()).collect();
                (Some(set.into_iter().collect::<Vec<_>>()), self.refresh)
            }
            Ok(Err(err)) => {
                warn!(hostname = %host, %err, "cannot resolve a load-balancer hostname; retrying");
                (None, RETRY.min(self.refresh))
            }
            Err(_) => {
                warn!(hostname = %host, "resolving a load-balancer hostname timed out; retrying");
                (None, RETRY.min(self.refresh))
            }
        };
        let changed = {
            let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            let Some(entry) = entries.get_mut(&name) else {
                return;
            };
            entry.in_flight = false;
            entry.refresh_at = Some(Instant::now() + retry);
            // A failed lookup keeps the last answer (fail open).
            match addresses {
                Some(addresses) if addresses != entry.addresses => {
                    debug!(hostname = %host, ?addresses, "resolved a load-balancer hostname");
                    entry.addresses = addresses;
                    true
                }
                _ => false,
            }
        };
        if changed {
            self.notify.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn localhost_resolves_in_the_background_and_wakes_the_loop() {
        let notify = Arc::new(Notify::new());
        let resolver = Resolver::new(Duration::from_secs(60), notify.clone());
        let wanted = BTreeSet::from([DnsName::new_unchecked("localhost")]);
        let (first, _) = resolver.answers(&wanted);
        assert!(first.is_empty(), "answers before any lookup: {first:?}");
        tokio::time::timeout(Duration::from_secs(10), notify.notified())
            .await
            .expect("no wake-up after the lookup");
        let (answers, next) = resolver.answers(&wanted);
        let addresses = &answers[&DnsName::new_unchecked("localhost")];
        assert!(addresses.iter().all(|a| a.is_loopback()), "{addresses:?}");
        assert!(next.is_some_and(|n| n > Instant::now()));
        // Names no longer wanted are forgotten.
        let (none, next) = resolver.answers(&BTreeSet::new());
        assert!(none.is_empty() && next.is_none());
    }
}
