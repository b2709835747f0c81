//! One pass of the glbc: the plan from the caches, cluster health, resolved
//! hostnames and what the zones hold → the changed names sent to the DNS
//! server → finalizers and statuses written. Returns when the next pass is
//! due at the latest (a heartbeat expiring, a retry, a re-read, a lookup).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};
use tokio::sync::Notify;

use super::drain;
use super::embedded::Embedded;
use super::inputs::{ClusterView, RootKind, controlled_by_live_root, root_input};
use super::ledger::Ledger;
use super::plan::{self, PlanConfig, PlanInput, RootInput};
use super::probe::{self, ProbeSpec};
use super::prober::{ProbeKey, ProbeTarget, Prober};
use super::publish::Publisher;
use super::resolve::Resolver;
use super::traffic;
use super::watches::Caches;
use super::writes::{RootWriter, ZoneView};
use super::zone::Zones;
use crate::apis::{Cluster, ProbeStatus};
use crate::labels;
use crate::runtime::metrics::Metrics;

/// What a pass needs to know besides its inputs.
pub struct Settings {
    pub plan: PlanConfig,
    pub health_threshold: Duration,
    pub dry_run: bool,
    pub resync_interval: Duration,
}

/// What passes read: the caches, the resolved load-balancer hostnames and
/// the application health checks.
pub struct Inputs {
    pub caches: Caches,
    pub resolver: Resolver,
    pub prober: Prober,
}

/// Runs passes, keeping between them what the zones hold, the hosts the
/// server refused and the bookkeeping of its own writes.
pub struct Reconciler {
    settings: Settings,
    inputs: Inputs,
    zones: Zones,
    publisher: Publisher,
    writer: RootWriter,
    ledger: Ledger,
    in_sync_logged: bool,
    serving: Serving,
    /// How long the last pass took to plan (before its writes).
    planning: Duration,
    /// The last pass's plans, for the next to reuse.
    reuse: plan::Reuse,
}

/// With the embedded DNS server: where the weights go, and whether this
/// replica holds the Lease (every replica answers queries; only the
/// leader writes finalizers, statuses and Events).
#[derive(Default)]
pub struct Serving {
    pub embedded: Option<Arc<Embedded>>,
    /// `None`: passes run only while leading.
    pub leading: Option<Arc<AtomicBool>>,
    /// The priority-label problems last logged, and last sent as Events.
    logged: Vec<(String, String)>,
    evented: Vec<(String, String)>,
}

impl Serving {
    pub fn embedded(embedded: Arc<Embedded>, leading: Arc<AtomicBool>) -> Self {
        Self {
            embedded: Some(embedded),
            leading: Some(leading),
            logged: Vec::new(),
            evented: Vec::new(),
        }
    }

    fn leads(&self) -> bool {
        self.leading
            .as_ref()
            .is_none_or(|l| l.load(Ordering::SeqCst))
    }
}

impl Reconciler {
    pub fn new(
        settings: Settings,
        inputs: Inputs,
        zones: Zones,
        writer: RootWriter,
        metrics: Arc<Metrics>,
        serving: Serving,
    ) -> Self {
        Self {
            publisher: Publisher::new(metrics, settings.dry_run),
            settings,
            inputs,
            zones,
            writer,
            ledger: Ledger::default(),
            in_sync_logged: false,
            serving,
            planning: Duration::ZERO,
            reuse: plan::Reuse::default(),
        }
    }

    /// How long the last pass took to plan, before its writes.
    pub fn planning(&self) -> Duration {
        self.planning
    }

    pub fn caches(&self) -> &Caches {
        &self.inputs.caches
    }

    /// One pass; returns when the next one is due at the latest.
    pub async fn pass(&mut self) -> Option<Instant> {
        let now = Instant::now();
        let now_ts = Timestamp::now();
        // Whole seconds, as the API server stores a Time: a value written
        // now compares equal when read back.
        let now_time = Time(Timestamp::from_second(now_ts.as_second()).unwrap_or(now_ts));
        let mut wake = Wake::default();
        let settings = &self.settings;

        let globals = self.inputs.caches.globals.state();
        let ingresses = &self.inputs.caches.roots;
        let gateways = self.inputs.caches.gateways.as_ref();
        let mut checks: Vec<Option<Result<ProbeSpec, String>>> = Vec::new();
        let mut roots: Vec<RootInput> = Vec::with_capacity(globals.len());
        for g in &globals {
            let (Some(namespace), Some(name)) =
                (g.metadata.namespace.as_deref(), g.metadata.name.as_deref())
            else {
                continue;
            };
            // The root Ingress of the GlobalIngress's name carries the
            // health check: looked up once when it is the controlling root.
            let mut named = None;
            let live = controlled_by_live_root(g, |kind, root, uid| {
                let has_uid = |meta: &ObjectMeta| meta.uid.as_deref() == Some(uid);
                match kind {
                    RootKind::Ingress => {
                        let found = ingresses.get(&ObjectRef::new(root).within(namespace));
                        let live = found.as_ref().is_some_and(|i| has_uid(&i.metadata));
                        if root == name {
                            named = found;
                        }
                        live
                    }
                    RootKind::Gateway => gateways
                        .and_then(|gw| gw.get(&ObjectRef::new(root).within(namespace)))
                        .is_some_and(|r| has_uid(&r.metadata)),
                }
            });
            let Some(input) = root_input(g, live) else {
                continue;
            };
            let named = live
                .then(|| named.or_else(|| ingresses.get(&ObjectRef::new(name).within(namespace))))
                .flatten();
            checks.push(named.and_then(|i| {
                i.annotations()
                    .get(labels::HEALTH_CHECK_ANNOTATION)
                    .map(|a| ProbeSpec::parse(a))
            }));
            roots.push(input);
        }
        let clusters = self.inputs.caches.clusters.state();
        let (view, expiry, problems) =
            ClusterView::with_problems(&clusters, now_ts, settings.health_threshold);
        let ClusterView {
            healthy,
            draining,
            traffic,
        } = &view;
        withdraw(&mut self.inputs.prober, &mut roots, checks, draining);
        if problems != self.serving.logged {
            for (cluster, problem) in &problems {
                warn!(cluster, %problem, "cluster priority label");
            }
            self.serving.logged = problems.clone();
        }
        let writes = !settings.dry_run && self.serving.leads();
        if writes && problems != self.serving.evented {
            let new: Vec<_> = problems
                .iter()
                .filter(|p| !self.serving.evented.contains(p))
                .cloned()
                .collect();
            self.writer.warn_clusters(&clusters, &new).await;
            self.serving.evented = problems;
        }
        if let Some(embedded) = &self.serving.embedded {
            embedded.set_weights(traffic::address_weights(
                roots.iter().map(|r| &*r.clusters),
                traffic,
            ));
        }
        if let Some(ms) = expiry {
            wake.at(just_after(ms, now, now_ts));
        }

        // Planning time is this pass's own work: a zone transfer is not.
        let before_read = now.elapsed();
        self.zones
            .read(now, settings.resync_interval, &settings.plan.owner)
            .await;
        let after_read = Instant::now();

        let wanted = plan::hostnames_to_resolve(&roots, healthy, traffic, &settings.plan);
        let (resolved, refresh) = self.inputs.resolver.answers(&wanted);
        if let Some(at) = refresh {
            wake.at(at);
        }
        let mut plan = plan::plan_reusing(
            &settings.plan,
            PlanInput {
                roots: &roots,
                healthy,
                traffic,
                resolved: &resolved,
                known: self.zones.known(),
            },
            &mut self.reuse,
            self.zones.reads(),
        );
        self.planning = before_read + after_read.elapsed();

        let mut writes_ok = true;
        let mut more_statuses = false;
        if writes {
            writes_ok &= self.writer.add_finalizers(&globals).await;
            let drains: Vec<_> = clusters
                .iter()
                .filter_map(|c| {
                    let name = c.name_any();
                    // Only a draining cluster's status names them.
                    let last_for = if c.spec.unschedulable {
                        last_serving(&roots, healthy, &name)
                    } else {
                        Vec::new()
                    };
                    drain::desired(c, &now_time, settings.plan.ttl, &last_for).map(|d| (name, d))
                })
                .collect();
            writes_ok &= self.writer.write_drains(&drains).await;
        }
        // The plan's inputs are not needed any more: freed before the
        // UPDATEs and the status writes (part of a pass's peak).
        drop(roots);
        drop(resolved);
        if let Some(at) = drain::next_completion(&clusters, now_ts) {
            wake.at(just_after(at.as_millisecond(), now, now_ts));
        }
        let published = self.publisher.publish(&mut self.zones, &plan).await;
        // Statuses and the ledger read only the roots' part of the plan.
        plan.zones = Default::default();
        plan.publishers = Default::default();
        plan.edits = Default::default();
        for root in published.roots {
            self.ledger.sent(root, &now_time);
        }
        if writes {
            let (known, problems, refused) = (
                self.zones.known(),
                self.zones.problems(),
                self.publisher.refusals().messages(),
            );
            let zone_view = ZoneView {
                zones: &settings.plan.zones,
                known,
                problems: &problems,
                refused: &refused,
                reads: self.zones.reads(),
                shared: settings.plan.shared,
            };
            // A Cluster change that changes DNS (one turning unhealthy or
            // back, a heartbeat missed, a drain, a weight) stops the batch:
            // the next pass publishes it first.
            let stop = clusters_change(
                &self.inputs.caches.clusters,
                &self.inputs.caches.cluster_changes,
                &view,
                settings.health_threshold,
                expiry,
            );
            let statuses = self
                .writer
                .write_statuses(
                    &globals,
                    &plan,
                    &zone_view,
                    &mut self.ledger,
                    &now_time,
                    stop,
                )
                .await;
            writes_ok &= statuses.ok;
            // More statuses than this pass wrote: the next pass starts at
            // once (publishing what changed meanwhile, new roots first
            // among them, before the next batch).
            more_statuses = statuses.more;
            writes_ok &= self
                .writer
                .release(&globals, &zone_view, &settings.plan.owner)
                .await;
        }

        // Forget roots that are gone.
        self.ledger
            .retain(plan.roots.len(), |k| plan.roots.contains_key(k));
        let roots_planned = plan.roots.len();
        self.reuse.keep(
            plan.epoch,
            std::mem::take(&mut plan.roots),
            &plan.planned,
            std::mem::take(&mut plan.released),
        );

        for at in self.zones.next_wake(settings.resync_interval) {
            wake.at(at);
        }
        // A refusal whose retry is past and was not sent again (the plan no
        // longer wants that host changed) wakes nothing.
        for at in self.publisher.refusals().next_wake().filter(|at| *at > now) {
            wake.at(at);
        }
        if published.reread > 0 {
            // Plan at once from the names read again.
            wake.at(Instant::now());
        }
        if let Some(retry) = self.ledger.writes_done(writes_ok) {
            wake.at(now + retry);
        } else if more_statuses {
            wake.at(Instant::now());
        }
        if self.zones.in_sync() && !self.in_sync_logged {
            self.in_sync_logged = true;
            info!(
                zones = self.zones.len(),
                roots = roots_planned,
                updates = published.messages,
                "initial reconciliation done: every zone read, DNS matches the GlobalIngresses"
            );
        }
        debug!(roots = roots_planned, updates = published.messages, next = ?wake.0.map(|w| w - now), "pass done");
        wake.0
    }
}

/// Resolves once the Clusters show another [`ClusterView`] than `start`:
/// looked at on each Cluster change (`signal`) and when the first
/// heartbeat of a healthy cluster expires (`expiry`, milliseconds since
/// the epoch). A heartbeat alone does not resolve it.
async fn clusters_change(
    store: &Store<Cluster>,
    signal: &Notify,
    start: &ClusterView,
    threshold: Duration,
    mut expiry: Option<i64>,
) {
    loop {
        let expires = async {
            match expiry {
                Some(ms) => {
                    tokio::time::sleep_until(just_after(ms, Instant::now(), Timestamp::now()))
                        .await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = signal.notified() => {}
            () = expires => {}
        }
        let (now, next) = ClusterView::of(&store.state(), Timestamp::now(), threshold);
        if now != *start {
            debug!("a Cluster change changes DNS");
            return;
        }
        expiry = next;
    }
}

/// Fills each root's withdrawals: the draining clusters, and what its
/// health check (`checks`, in the order of `roots`) fails; starts and
/// stops the probes accordingly.
fn withdraw(
    prober: &mut Prober,
    roots: &mut [RootInput<'_>],
    checks: Vec<Option<Result<ProbeSpec, String>>>,
    draining: &BTreeSet<String>,
) {
    let mut wanted = BTreeMap::new();
    for (root, check) in roots.iter_mut().zip(&checks) {
        root.withdrawn.extend(draining.iter().cloned());
        let spec = match check {
            None => continue,
            Some(Err(problem)) => {
                root.probe_problem = Some(problem.clone());
                continue;
            }
            Some(Ok(spec)) => spec,
        };
        let host = match probe::probe_host(spec, &root.hosts) {
            Ok(host) => host,
            Err(problem) => {
                root.probe_problem = Some(problem);
                continue;
            }
        };
        for cluster in root.clusters.iter() {
            for ip in cluster.addresses.iter().filter_map(|a| a.ip.as_deref()) {
                let Ok(ip) = ip.trim().parse::<IpAddr>() else {
                    continue;
                };
                wanted.insert(
                    ProbeKey {
                        root: root.key.clone(),
                        cluster: cluster.cluster.clone(),
                        ip,
                    },
                    ProbeTarget {
                        spec: spec.clone(),
                        host: host.clone(),
                    },
                );
            }
        }
    }
    let states = prober.sync(&wanted);
    for root in roots.iter_mut() {
        root.probes = states
            .iter()
            .filter(|(k, _)| k.root == root.key)
            .map(|(k, s)| ProbeStatus {
                cluster: k.cluster.clone(),
                address: k.ip.to_string(),
                passing: s.passing,
                message: s.failed_with.clone(),
            })
            .collect();
        let (failing, addresses) = probe::withdrawals(&root.probes);
        root.withdrawn.extend(failing.iter().cloned());
        root.failing = failing;
        root.withdrawn_addresses = addresses;
    }
}

/// The live roots that `cluster` is the last to serve: no other healthy
/// cluster of theirs is not withdrawn.
fn last_serving(roots: &[RootInput<'_>], healthy: &BTreeSet<String>, cluster: &str) -> Vec<String> {
    roots
        .iter()
        .filter(|r| !r.orphan && !r.deleting && r.clusters.iter().any(|c| c.cluster == cluster))
        .filter(|r| {
            !r.clusters.iter().any(|c| {
                c.cluster != cluster
                    && healthy.contains(&c.cluster)
                    && !r.withdrawn.contains(&c.cluster)
            })
        })
        .map(|r| r.key.to_string())
        .collect()
}

/// The instant just after the wall-clock time `ms` (milliseconds since the
/// epoch), given that `now` is `now_ts` on the wall clock: a deadline that
/// is already past is `now` plus one millisecond.
fn just_after(ms: i64, now: Instant, now_ts: Timestamp) -> Instant {
    let wait = u64::try_from(ms.saturating_sub(now_ts.as_millisecond())).unwrap_or(0);
    now + Duration::from_millis(wait + 1)
}

/// The earliest of several wake-up times.
#[derive(Default)]
struct Wake(Option<Instant>);

impl Wake {
    fn at(&mut self, at: Instant) {
        self.0 = Some(self.0.map_or(at, |w| w.min(at)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_earliest_wake_up_wins() {
        let now = Instant::now();
        let mut wake = Wake::default();
        assert!(wake.0.is_none());
        wake.at(now + Duration::from_secs(5));
        wake.at(now + Duration::from_secs(1));
        wake.at(now + Duration::from_secs(3));
        assert_eq!(wake.0, Some(now + Duration::from_secs(1)));
    }

    #[test]
    fn a_wall_clock_deadline_becomes_the_instant_just_after_it() {
        let now = Instant::now();
        let now_ts = Timestamp::from_millisecond(10_000).unwrap();
        assert_eq!(
            just_after(12_500, now, now_ts),
            now + Duration::from_millis(2_501)
        );
        // Past: at once (one millisecond on).
        assert_eq!(
            just_after(9_000, now, now_ts),
            now + Duration::from_millis(1)
        );
    }
}
