//! The glbc's I/O: watches of GlobalIngresses and Clusters feed caches; one
//! loop reads them, plans, sends the changed names to the DNS server in
//! batched UPDATEs, writes the statuses that changed and releases deleted
//! roots. It runs on every watch event (after a short debounce that lets a
//! burst of events become one pass), when a cluster's heartbeat ages past
//! the threshold, when a retry is due and when a resolved hostname changes.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use crate::runtime::events::{Event as KubeEvent, EventType, Recorder};
use futures::{FutureExt, StreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::Store;
use kube::runtime::reflector::store::Writer;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;
use tokio::sync::Notify;
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use super::KeySource;
use super::diff::{self, NameChange};
use super::dns::{DnsError, DnsProvider};
use super::plan::{self, Plan, PlanConfig, PlanInput, RootInput, RootKey};
use super::records::{DnsName, ZoneRecords, ownership};
use super::resolve::Resolver;
use super::status::{self, GlbcStatus, StatusInput, ZoneProblem, reason};
use crate::apis::{Cluster, GlobalIngress};
use crate::labels;
use crate::runtime::CancellationToken;
use crate::runtime::metrics::{Metrics, ResultLabel};

/// Wait this long after a change before a pass, so that a burst of events
/// (a status and a heartbeat, a list of many objects) becomes one pass.
const DEBOUNCE: Duration = Duration::from_millis(20);
/// Largest UPDATE message, roughly, in octets (TCP allows 65535).
const UPDATE_BUDGET: usize = 32 * 1024;
/// Status and finalizer writes in flight at once.
const WRITE_CONCURRENCY: usize = 16;
/// First retry delay after a failure; doubles up to the caps below.
const RETRY_BASE: Duration = Duration::from_millis(200);
const RETRY_CAP: Duration = Duration::from_secs(10);
const TSIG_RETRY_CAP: Duration = Duration::from_secs(30);
/// Retry of failed status or finalizer writes.
const WRITE_RETRY: Duration = Duration::from_secs(1);

fn backoff(failures: u32, cap: Duration) -> Duration {
    RETRY_BASE
        .saturating_mul(2u32.saturating_pow(failures.saturating_sub(1).min(16)))
        .min(cap)
}

/// Builds the provider of a zone from a TSIG secret (base64).
pub type ProviderFactory =
    Box<dyn Fn(&DnsName, &str) -> Result<Box<dyn DnsProvider>, DnsError> + Send + Sync>;

/// What the loop needs to know besides the caches.
pub struct Settings {
    pub plan: PlanConfig,
    pub health_threshold: Duration,
    pub dry_run: bool,
    pub resync_interval: Duration,
    pub resolve_interval: Duration,
}

/// One zone: its provider and what it is known to hold.
struct Zone {
    name: DnsName,
    provider: Box<dyn DnsProvider>,
    /// What the server holds, as of the last transfer plus every update it
    /// confirmed since; `None` until the first transfer.
    known: Option<ZoneRecords>,
    /// Read the zone again before the next update (after an error).
    needs_transfer: bool,
    transferred_at: Option<Instant>,
    failures: u32,
    retry_at: Option<Instant>,
    problem: Option<ZoneProblem>,
}

impl Zone {
    fn in_backoff(&self, now: Instant) -> bool {
        self.retry_at.is_some_and(|at| at > now)
    }

    fn failed(&mut self, err: &DnsError, now: Instant) {
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
        let delay = backoff(self.failures, cap);
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

    fn succeeded(&mut self) {
        if self.problem.is_some() {
            info!(zone = self.name.without_dot(), "the DNS server works again");
        }
        self.failures = 0;
        self.retry_at = None;
        self.problem = None;
    }
}

/// A host whose records the server refused (not a zone-wide failure).
struct Refusal {
    message: String,
    failures: u32,
    retry_at: Instant,
}

/// The loop's state.
pub struct Reconciler {
    client: Client,
    settings: Settings,
    zones: Vec<Zone>,
    keys: KeySource,
    secret: String,
    factory: ProviderFactory,
    globals: Store<GlobalIngress>,
    clusters: Store<Cluster>,
    notify: Arc<Notify>,
    resolver: Resolver,
    recorder: Recorder,
    metrics: Arc<Metrics>,
    refused: BTreeMap<DnsName, Refusal>,
    /// When this process last had each root's records accepted.
    last_sent: HashMap<RootKey, Time>,
    /// resourceVersion of a GlobalIngress before our last status write, while
    /// the cache has not caught up with that write.
    written: HashMap<RootKey, String>,
    writes_failed: bool,
    in_sync_logged: bool,
}

/// The caches the loop reads, started by [`watch`].
pub struct Caches {
    pub globals: Store<GlobalIngress>,
    pub clusters: Store<Cluster>,
}

/// Starts the watches of GlobalIngresses (of `namespace`, or all) and
/// Clusters; every event signals `notify`.
pub fn watch(
    client: &Client,
    namespace: Option<&str>,
    notify: &Arc<Notify>,
    shutdown: &CancellationToken,
) -> Caches {
    let globals_api: Api<GlobalIngress> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let (globals, writer) = kube::runtime::reflector::store();
    tokio::spawn(follow(
        "globalingresses",
        globals_api,
        writer,
        notify.clone(),
        shutdown.clone(),
    ));
    let (clusters, writer) = kube::runtime::reflector::store();
    tokio::spawn(follow(
        "clusters",
        Api::<Cluster>::all(client.clone()),
        writer,
        notify.clone(),
        shutdown.clone(),
    ));
    Caches { globals, clusters }
}

async fn follow<K>(
    what: &'static str,
    api: Api<K>,
    writer: Writer<K>,
    notify: Arc<Notify>,
    shutdown: CancellationToken,
) where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let mut stream = pin!(
        watcher(api, watcher::Config::default())
            // Nothing here reads managedFields: without them the cache
            // takes about half the memory.
            .modify(|o: &mut K| o.meta_mut().managed_fields = None)
            .default_backoff()
            .reflect(writer)
    );
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => return,
            event = stream.next() => event,
        };
        match event {
            Some(Ok(watcher::Event::Init | watcher::Event::InitApply(_))) => {}
            Some(Ok(_)) => notify.notify_one(),
            Some(Err(err)) => warn!(what, %err, "watch failed; retrying with backoff"),
            None => return,
        }
    }
}

/// The pieces a [`Reconciler`] is made of.
pub struct Parts {
    pub client: Client,
    pub settings: Settings,
    pub zones: Vec<(DnsName, Box<dyn DnsProvider>)>,
    pub keys: KeySource,
    pub secret: String,
    pub factory: ProviderFactory,
    pub caches: Caches,
    pub notify: Arc<Notify>,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
}

impl Reconciler {
    pub fn new(parts: Parts) -> Self {
        let resolver = Resolver::new(parts.settings.resolve_interval, parts.notify.clone());
        Self {
            client: parts.client,
            zones: parts
                .zones
                .into_iter()
                .map(|(name, provider)| Zone {
                    name,
                    provider,
                    known: None,
                    needs_transfer: true,
                    transferred_at: None,
                    failures: 0,
                    retry_at: None,
                    problem: None,
                })
                .collect(),
            settings: parts.settings,
            keys: parts.keys,
            secret: parts.secret,
            factory: parts.factory,
            globals: parts.caches.globals,
            clusters: parts.caches.clusters,
            notify: parts.notify,
            resolver,
            recorder: parts.recorder,
            metrics: parts.metrics,
            refused: BTreeMap::new(),
            last_sent: HashMap::new(),
            written: HashMap::new(),
            writes_failed: false,
            in_sync_logged: false,
        }
    }

    /// Runs passes until `shutdown`: first once both caches are filled.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let ready = async {
            let globals = self.globals.wait_until_ready().await;
            let clusters = self.clusters.wait_until_ready().await;
            globals.is_ok() && clusters.is_ok()
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            ok = ready => if !ok {
                error!("the watches stopped before listing their objects");
                return;
            },
        }
        info!(
            globalingresses = self.globals.len(),
            clusters = self.clusters.len(),
            "caches filled; reconciling"
        );
        loop {
            let wake = tokio::select! {
                _ = shutdown.cancelled() => return,
                wake = self.pass() => wake,
            };
            let sleep = async {
                match wake {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.notify.notified() => {
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(DEBOUNCE) => {}
                    }
                    // Events that came during the debounce are in this pass.
                    let _ = self.notify.notified().now_or_never();
                }
                _ = sleep => {}
            }
        }
    }

    /// One pass; returns when the next one is due at the latest.
    async fn pass(&mut self) -> Option<Instant> {
        let now = Instant::now();
        let now_ts = Timestamp::now();
        // Whole seconds, as the API server stores a Time: a value written
        // now compares equal when read back.
        let now_time = Time(Timestamp::from_second(now_ts.as_second()).unwrap_or(now_ts));
        let mut wake = Wake::default();
        self.writes_failed = false;

        let globals = self.globals.state();
        let roots: Vec<RootInput> = globals.iter().filter_map(|g| root_input(g)).collect();
        let (healthy, expiry) = health(
            &self.clusters.state(),
            now_ts,
            self.settings.health_threshold,
        );
        if let Some(ms) = expiry {
            let wait = u64::try_from(ms.saturating_sub(now_ts.as_millisecond())).unwrap_or(0);
            wake.at(now + Duration::from_millis(wait + 1));
        }

        self.read_zones(now).await;

        let wanted = plan::hostnames_to_resolve(&roots, &healthy, &self.settings.plan);
        let (resolved, refresh) = self.resolver.answers(&wanted);
        if let Some(at) = refresh {
            wake.at(at);
        }
        let plan = plan::plan(
            &self.settings.plan,
            PlanInput {
                roots: &roots,
                healthy: &healthy,
                resolved: &resolved,
                known: &self.known(),
            },
        );

        if !self.settings.dry_run {
            self.add_finalizers(&globals).await;
        }
        let sent = self.publish(&plan, &now_time).await;
        if !self.settings.dry_run {
            self.write_statuses(&globals, &plan, &now_time).await;
            self.release(&globals).await;
        }

        // Forget roots that are gone.
        self.last_sent.retain(|k, _| plan.roots.contains_key(k));
        self.written.retain(|k, _| plan.roots.contains_key(k));

        for zone in &self.zones {
            if let Some(at) = zone.retry_at {
                wake.at(at);
            } else if let Some(at) = zone.transferred_at {
                wake.at(at + self.settings.resync_interval);
            }
        }
        for refusal in self.refused.values() {
            wake.at(refusal.retry_at);
        }
        if self.writes_failed {
            wake.at(now + WRITE_RETRY);
        }
        let in_sync = self
            .zones
            .iter()
            .all(|z| z.known.is_some() && z.problem.is_none());
        if in_sync && !self.in_sync_logged {
            self.in_sync_logged = true;
            info!(
                zones = self.zones.len(),
                roots = plan.roots.len(),
                updates = sent,
                "initial reconciliation done: every zone read, DNS matches the GlobalIngresses"
            );
        }
        debug!(roots = plan.roots.len(), updates = sent, next = ?wake.0.map(|w| w - now), "pass done");
        wake.0
    }

    fn known(&self) -> BTreeMap<DnsName, ZoneRecords> {
        self.zones
            .iter()
            .filter_map(|z| Some((z.name.clone(), z.known.clone()?)))
            .collect()
    }

    /// Transfers the zones that were never read, that need a fresh read
    /// after an error, or whose periodic re-read (drift repair) is due.
    async fn read_zones(&mut self, now: Instant) {
        if self
            .zones
            .iter()
            .any(|z| matches!(z.problem, Some(ZoneProblem::Tsig(_))) && !z.in_backoff(now))
        {
            self.reload_key().await;
        }
        let resync = self.settings.resync_interval;
        let owner = self.settings.plan.owner.clone();
        for zone in &mut self.zones {
            let due = zone.known.is_none()
                || zone.needs_transfer
                || zone.transferred_at.is_some_and(|at| at + resync <= now);
            if !due || zone.in_backoff(now) {
                continue;
            }
            match zone.provider.transfer_zone().await {
                Ok(records) => {
                    let state = ZoneRecords::from_records(zone.name.clone(), &records);
                    let ours = state
                        .names
                        .keys()
                        .filter(|n| ownership::host_of(n).is_some())
                        .filter(|n| {
                            state
                                .rrset(n, super::records::RecordKind::Txt)
                                .is_some_and(|t| {
                                    t.data
                                        .iter()
                                        .filter_map(|d| ownership::parse(d))
                                        .any(|o| o.owner == owner)
                                })
                        })
                        .count();
                    if zone.known.as_ref() != Some(&state) {
                        info!(
                            zone = zone.name.without_dot(),
                            names = state.names.len(),
                            owned = ours,
                            "read the zone from the DNS server"
                        );
                    }
                    zone.known = Some(state);
                    zone.needs_transfer = false;
                    zone.transferred_at = Some(now);
                    zone.succeeded();
                }
                Err(err) => zone.failed(&err, now),
            }
        }
    }

    /// After the server rejected our key: read the key again (a rotated
    /// Secret or file) and use it if it changed.
    async fn reload_key(&mut self) {
        let secret = match self.keys.load(&self.client).await {
            Ok(secret) => secret,
            Err(err) => {
                warn!(%err, "cannot read the TSIG secret again");
                return;
            }
        };
        if secret == self.secret {
            return;
        }
        let mut rebuilt = Vec::new();
        for zone in &self.zones {
            match (self.factory)(&zone.name, &secret) {
                Ok(provider) => rebuilt.push(provider),
                Err(err) => {
                    warn!(%err, "the new TSIG secret is not usable; keeping the old one");
                    return;
                }
            }
        }
        info!("the TSIG secret changed; using the new one");
        for (zone, provider) in self.zones.iter_mut().zip(rebuilt) {
            zone.provider = provider;
            zone.retry_at = None;
        }
        self.secret = secret;
    }

    /// Sends what differs between the plan and the zones; returns the
    /// number of UPDATE messages the server accepted.
    async fn publish(&mut self, plan: &Plan, now_time: &Time) -> usize {
        let now = Instant::now();
        let mut sent = 0;
        let empty = BTreeMap::new();
        for zone in &mut self.zones {
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
            changes.retain(|c| {
                self.refused
                    .get(&ownership::unit_of(&c.name))
                    .is_none_or(|r| r.retry_at <= now)
            });
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
                sent += 1;
                self.metrics
                    .dns_updates
                    .get_or_create(&ResultLabel {
                        result: "sent".into(),
                    })
                    .inc();
                self.metrics
                    .dns_batch_names
                    .observe(diff::units(batch).len() as f64);
                diff::apply(&mut known, batch);
                for unit in diff::units(batch) {
                    self.refused.remove(&unit);
                    if let Some(root) = publishers.and_then(|p| p.get(&unit)) {
                        self.last_sent.insert(root.clone(), now_time.clone());
                    }
                }
                log_batch(&zone.name, batch, self.settings.dry_run);
            }
            if !outcome.applied.is_empty() {
                zone.succeeded();
            }
            for (unit, err) in outcome.refused {
                let failures = self.refused.get(&unit).map_or(1, |r| r.failures + 1);
                let delay = backoff(failures, RETRY_CAP.saturating_mul(6));
                warn!(
                    zone = zone.name.without_dot(), host = unit.without_dot(), %err,
                    retry_in = ?delay, "the DNS server refused the records of a host"
                );
                self.refused.insert(
                    unit,
                    Refusal {
                        message: err,
                        failures,
                        retry_at: now + delay,
                    },
                );
            }
            if let Some(err) = outcome.failed {
                self.metrics
                    .dns_updates
                    .get_or_create(&ResultLabel {
                        result: "failed".into(),
                    })
                    .inc();
                zone.failed(&err, now);
            }
            zone.known = Some(known);
        }
        sent
    }

    /// Puts the DNS finalizer on every live GlobalIngress that lacks it,
    /// before its records are published.
    async fn add_finalizers(&mut self, globals: &[Arc<GlobalIngress>]) {
        let todo: Vec<&Arc<GlobalIngress>> = globals
            .iter()
            .filter(|g| g.metadata.deletion_timestamp.is_none())
            .filter(|g| self.in_scope(g))
            .filter(|g| !g.finalizers().iter().any(|f| f == labels::DNS_FINALIZER))
            .collect();
        let client = &self.client;
        let results: Vec<bool> = futures::stream::iter(todo)
            .map(|g| async move {
                let api: Api<GlobalIngress> =
                    Api::namespaced(client.clone(), &g.namespace().unwrap_or_default());
                let mut finalizers = g.finalizers().to_vec();
                finalizers.push(labels::DNS_FINALIZER.to_string());
                set_finalizers(&api, g, finalizers, "add the DNS finalizer").await
            })
            .buffer_unordered(WRITE_CONCURRENCY)
            .collect()
            .await;
        self.writes_failed |= results.iter().any(|ok| !ok);
    }

    /// Removes the DNS finalizer from deleted GlobalIngresses once the DNS
    /// server confirmed that none of their records is left.
    async fn release(&mut self, globals: &[Arc<GlobalIngress>]) {
        let owner = &self.settings.plan.owner;
        let zones = self.settings.plan.zones.clone();
        let todo: Vec<(&Arc<GlobalIngress>, usize)> = globals
            .iter()
            .filter(|g| g.metadata.deletion_timestamp.is_some() && self.in_scope(g))
            .filter_map(|g| {
                let index = g
                    .finalizers()
                    .iter()
                    .position(|f| f == labels::DNS_FINALIZER)?;
                let key = RootKey::new(&g.namespace()?, &g.name_any());
                // Every zone its hosts are in has been read ...
                let read = g.spec.hosts.iter().all(|h| {
                    let zone = DnsName::parse_host(h)
                        .ok()
                        .and_then(|n| n.zone_in(&zones).cloned());
                    zone.is_none_or(|z| self.zones.iter().any(|s| s.name == z && s.known.is_some()))
                });
                // ... and no zone still holds an ownership record naming it.
                let gone = self
                    .zones
                    .iter()
                    .filter_map(|z| z.known.as_ref())
                    .all(|z| !plan::still_owns(z, owner, &key));
                (read && gone).then_some((g, index))
            })
            .collect();
        let client = &self.client;
        let results: Vec<bool> = futures::stream::iter(todo)
            .map(|(g, index)| async move {
                let api: Api<GlobalIngress> =
                    Api::namespaced(client.clone(), &g.namespace().unwrap_or_default());
                let mut finalizers = g.finalizers().to_vec();
                finalizers.remove(index);
                let ok = set_finalizers(&api, g, finalizers, "remove the DNS finalizer").await;
                if ok {
                    info!(
                        namespace = g.namespace().unwrap_or_default(),
                        name = g.name_any(),
                        "records removed from DNS; released the GlobalIngress"
                    );
                }
                ok
            })
            .buffer_unordered(WRITE_CONCURRENCY)
            .collect()
            .await;
        self.writes_failed |= results.iter().any(|ok| !ok);
    }

    /// Applies the glbc's part of the status of every live root where it
    /// differs from what the object shows, with an Event when the
    /// `DNSPublished` verdict changes.
    async fn write_statuses(
        &mut self,
        globals: &[Arc<GlobalIngress>],
        plan: &Plan,
        now_time: &Time,
    ) {
        let known = self.known();
        let zone_problems: BTreeMap<DnsName, ZoneProblem> = self
            .zones
            .iter()
            .filter_map(|z| Some((z.name.clone(), z.problem.clone()?)))
            .collect();
        let refused: BTreeMap<DnsName, String> = self
            .refused
            .iter()
            .map(|(n, r)| (n.clone(), r.message.clone()))
            .collect();
        let mut todo = Vec::new();
        for g in globals {
            if g.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let Some(namespace) = g.namespace() else {
                continue;
            };
            let key = RootKey::new(&namespace, &g.name_any());
            let Some(root_plan) = plan.roots.get(&key) else {
                continue;
            };
            let rv = g.resource_version().unwrap_or_default();
            if self.written.get(&key) == Some(&rv) {
                // Our last write has not reached the cache yet.
                continue;
            }
            self.written.remove(&key);
            let previous = g.status.clone().unwrap_or_default();
            let desired = status::root_status(
                root_plan,
                StatusInput {
                    known: &known,
                    zone_problems: &zone_problems,
                    refused: &refused,
                    previous: &previous,
                    last_sent: self.last_sent.get(&key),
                    now: now_time,
                },
            );
            if desired.is_shown_in(&previous) {
                continue;
            }
            let before = previous
                .conditions
                .iter()
                .find(|c| c.type_ == labels::conditions::DNS_PUBLISHED)
                .cloned();
            todo.push((g, key, rv, desired, before));
        }
        let client = &self.client;
        let recorder = &self.recorder;
        let results: Vec<(RootKey, String, Option<String>)> = futures::stream::iter(todo)
            .map(|(g, key, rv, desired, before)| async move {
                let written = write_status(client, g, &desired).await;
                if written.is_some() {
                    announce(recorder, g, before.as_ref(), &desired).await;
                }
                (key, rv, written)
            })
            .buffer_unordered(WRITE_CONCURRENCY)
            .collect()
            .await;
        for (key, rv, written) in results {
            match written {
                // Skip this root until the cache shows the write.
                Some(new_rv) if new_rv != rv => {
                    self.written.insert(key, rv);
                }
                Some(_) => {}
                None => self.writes_failed = true,
            }
        }
    }

    fn in_scope(&self, g: &GlobalIngress) -> bool {
        self.settings
            .plan
            .namespace
            .as_deref()
            .is_none_or(|ns| g.namespace().as_deref() == Some(ns))
    }
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

/// The earliest of several wake-up times.
#[derive(Default)]
struct Wake(Option<Instant>);

impl Wake {
    fn at(&mut self, at: Instant) {
        self.0 = Some(self.0.map_or(at, |w| w.min(at)));
    }
}

fn root_input(g: &GlobalIngress) -> Option<RootInput> {
    Some(RootInput {
        key: RootKey::new(&g.namespace()?, &g.name_any()),
        created: g.metadata.creation_timestamp.as_ref().map(|t| t.0),
        deleting: g.metadata.deletion_timestamp.is_some(),
        hosts: g.spec.hosts.clone(),
        clusters: g
            .status
            .as_ref()
            .map(|s| s.clusters.clone())
            .unwrap_or_default(),
    })
}

/// The healthy clusters at `now`, and when the first of them stops being
/// healthy unless it heartbeats again (in milliseconds since the epoch).
fn health(
    clusters: &[Arc<Cluster>],
    now: Timestamp,
    threshold: Duration,
) -> (BTreeSet<String>, Option<i64>) {
    let threshold_ms = i64::try_from(threshold.as_millis()).unwrap_or(i64::MAX);
    let mut healthy = BTreeSet::new();
    let mut expiry: Option<i64> = None;
    for cluster in clusters {
        if !cluster.is_healthy(now, threshold) {
            continue;
        }
        healthy.insert(cluster.name_any());
        if let Some(beat) = cluster
            .status
            .as_ref()
            .and_then(|s| s.last_heartbeat_time.as_ref())
        {
            let at = beat.0.as_millisecond().saturating_add(threshold_ms);
            expiry = Some(expiry.map_or(at, |e| e.min(at)));
        }
    }
    (healthy, expiry)
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

/// Sets the finalizers of a GlobalIngress, provided it did not change since
/// the cache saw it (the resourceVersion is checked); whether it went
/// through (a vanished object counts as done).
async fn set_finalizers(
    api: &Api<GlobalIngress>,
    g: &GlobalIngress,
    finalizers: Vec<String>,
    what: &str,
) -> bool {
    let name = g.name_any();
    let patch = json!({
        "metadata": {
            "resourceVersion": g.resource_version(),
            "finalizers": finalizers,
        }
    });
    match api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => true,
        Err(kube::Error::Api(status)) if status.code == 404 => true,
        Err(kube::Error::Api(status)) if status.code == 409 => {
            debug!(%name, "the GlobalIngress changed meanwhile; will {what} with fresh data");
            false
        }
        Err(err) => {
            warn!(%name, %err, "cannot {what}; retrying");
            false
        }
    }
}

/// Applies the glbc's status fields; the new resourceVersion if it worked.
async fn write_status(client: &Client, g: &GlobalIngress, desired: &GlbcStatus) -> Option<String> {
    let namespace = g.namespace().unwrap_or_default();
    let name = g.name_any();
    let api: Api<GlobalIngress> = Api::namespaced(client.clone(), &namespace);
    let body = json!({
        "apiVersion": format!("{}/{}", labels::GROUP, labels::VERSION),
        "kind": "GlobalIngress",
        "metadata": {"name": name, "namespace": namespace},
        "status": desired,
    });
    match api
        .patch_status(
            &name,
            &PatchParams::apply(labels::GLBC_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await
    {
        Ok(updated) => {
            debug!(%namespace, %name, "wrote GlobalIngress status");
            Some(updated.resource_version().unwrap_or_default())
        }
        Err(kube::Error::Api(status)) if status.code == 404 => None,
        Err(err) => {
            warn!(%namespace, %name, %err, "cannot write the GlobalIngress status; retrying");
            None
        }
    }
}

/// An Event when the `DNSPublished` verdict changes: a warning for a
/// problem (not for "pending" or "no addresses yet", which pass by themselves),
/// a normal one when the records get published.
async fn announce(
    recorder: &Recorder,
    g: &GlobalIngress,
    before: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>,
    desired: &GlbcStatus,
) {
    let Some(after) = desired.dns_published() else {
        return;
    };
    let changed = before.is_none_or(|b| {
        b.status != after.status || b.reason != after.reason || b.message != after.message
    });
    // Pending and NoAddresses are the normal life of a new root: no Event.
    if !changed || after.reason == reason::PENDING || after.reason == reason::NO_ADDRESSES {
        return;
    }
    let type_ = if after.status == "True" {
        if before.is_some_and(|b| b.status == "True") {
            return;
        }
        EventType::Normal
    } else {
        EventType::Warning
    };
    let event = KubeEvent {
        type_,
        reason: after.reason.clone(),
        note: Some(after.message.chars().take(1024).collect()),
        action: "PublishDNS".into(),
        secondary: None,
    };
    if let Err(err) = recorder.publish(&event, &g.object_ref(&())).await {
        warn!(name = g.name_any(), %err, "cannot publish an Event");
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

    use super::*;
    use crate::apis::{ClusterSpec, ClusterStatus};

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        assert_eq!(backoff(1, RETRY_CAP), Duration::from_millis(200));
        assert_eq!(backoff(2, RETRY_CAP), Duration::from_millis(400));
        assert_eq!(backoff(5, RETRY_CAP), Duration::from_millis(3200));
        assert_eq!(backoff(50, RETRY_CAP), RETRY_CAP);
    }

    fn cluster(name: &str, ready: bool, beat_ms: i64) -> Arc<Cluster> {
        let mut c = Cluster::new(name, ClusterSpec::default());
        c.status = Some(ClusterStatus {
            conditions: vec![Condition {
                type_: labels::conditions::READY.into(),
                status: if ready { "True" } else { "False" }.into(),
                reason: "Test".into(),
                message: String::new(),
                last_transition_time: Time(Timestamp::from_millisecond(0).unwrap()),
                observed_generation: None,
            }],
            last_heartbeat_time: Some(Time(Timestamp::from_millisecond(beat_ms).unwrap())),
            synced_resources: vec![],
        });
        Arc::new(c)
    }

    #[test]
    fn the_next_wake_up_is_the_first_heartbeat_to_expire() {
        let now = Timestamp::from_millisecond(10_000).unwrap();
        let clusters = [
            cluster("a", true, 9_000),
            cluster("b", true, 8_000),
            cluster("c", false, 9_900),
            cluster("d", true, 1_000),
        ];
        let (healthy, expiry) = health(&clusters, now, Duration::from_secs(3));
        assert_eq!(healthy, BTreeSet::from(["a".to_string(), "b".to_string()]));
        assert_eq!(expiry, Some(11_000));
    }

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
