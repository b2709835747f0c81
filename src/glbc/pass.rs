//! One pass of the glbc: the plan from the caches, cluster health, resolved
//! hostnames and what the zones hold → the changed names sent to the DNS
//! server → finalizers and statuses written. Returns when the next pass is
//! due at the latest (a heartbeat expiring, a retry, a re-read, a lookup).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use tokio::time::Instant;
use tracing::{debug, info};

use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;

use super::inputs::{RootKind, controlled_by_live_root, health, root_input};
use super::ledger::Ledger;
use super::plan::{self, PlanConfig, PlanInput, RootInput};
use super::publish::Publisher;
use super::resolve::Resolver;
use super::watches::Caches;
use super::writes::{RootWriter, ZoneView};
use super::zone::Zones;
use crate::runtime::metrics::Metrics;

/// What a pass needs to know besides its inputs.
pub struct Settings {
    pub plan: PlanConfig,
    pub health_threshold: Duration,
    pub dry_run: bool,
    pub resync_interval: Duration,
}

/// What passes read: the caches and the resolved load-balancer hostnames.
pub struct Inputs {
    pub caches: Caches,
    pub resolver: Resolver,
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
}

impl Reconciler {
    pub fn new(
        settings: Settings,
        inputs: Inputs,
        zones: Zones,
        writer: RootWriter,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            publisher: Publisher::new(metrics, settings.dry_run),
            settings,
            inputs,
            zones,
            writer,
            ledger: Ledger::default(),
            in_sync_logged: false,
        }
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
        let roots: Vec<RootInput> = globals
            .iter()
            .filter_map(|g| {
                let namespace = g.namespace()?;
                let live = controlled_by_live_root(g, |kind, name| match kind {
                    RootKind::Ingress => ingresses
                        .get(&ObjectRef::new(name).within(&namespace))
                        .and_then(|i| i.metadata.uid.clone()),
                    RootKind::Gateway => gateways?
                        .get(&ObjectRef::new(name).within(&namespace))
                        .and_then(|i| i.metadata.uid.clone()),
                });
                root_input(g, live)
            })
            .collect();
        let (healthy, expiry) = health(
            &self.inputs.caches.clusters.state(),
            now_ts,
            settings.health_threshold,
        );
        if let Some(ms) = expiry {
            let wait = u64::try_from(ms.saturating_sub(now_ts.as_millisecond())).unwrap_or(0);
            wake.at(now + Duration::from_millis(wait + 1));
        }

        self.zones
            .read(now, settings.resync_interval, &settings.plan.owner)
            .await;

        let wanted = plan::hostnames_to_resolve(&roots, &healthy, &settings.plan);
        let (resolved, refresh) = self.inputs.resolver.answers(&wanted);
        if let Some(at) = refresh {
            wake.at(at);
        }
        let plan = plan::plan(
            &settings.plan,
            PlanInput {
                roots: &roots,
                healthy: &healthy,
                resolved: &resolved,
                known: &self.zones.known(),
            },
        );

        let mut writes_ok = true;
        if !settings.dry_run {
            writes_ok &= self.writer.add_finalizers(&globals).await;
        }
        let published = self.publisher.publish(&mut self.zones, &plan).await;
        for root in published.roots {
            self.ledger.sent(root, &now_time);
        }
        if !settings.dry_run {
            let (known, problems, refused) = (
                self.zones.known(),
                self.zones.problems(),
                self.publisher.refusals().messages(),
            );
            let view = ZoneView {
                zones: &settings.plan.zones,
                known: &known,
                problems: &problems,
                refused: &refused,
            };
            writes_ok &= self
                .writer
                .write_statuses(&globals, &plan, &view, &mut self.ledger, &now_time)
                .await;
            writes_ok &= self
                .writer
                .release(&globals, &view, &settings.plan.owner)
                .await;
        }

        // Forget roots that are gone.
        self.ledger.retain(|k| plan.roots.contains_key(k));

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
        }
        if self.zones.in_sync() && !self.in_sync_logged {
            self.in_sync_logged = true;
            info!(
                zones = self.zones.len(),
                roots = plan.roots.len(),
                updates = published.messages,
                "initial reconciliation done: every zone read, DNS matches the GlobalIngresses"
            );
        }
        debug!(roots = plan.roots.len(), updates = published.messages, next = ?wake.0.map(|w| w - now), "pass done");
        wake.0
    }
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
}
