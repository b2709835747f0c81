//! The Prometheus metrics of kcp-ingress, one registry per process.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Which reconciler a sample belongs to (`roots`, `services`, `secrets`, ...).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabel {
    pub controller: String,
}

/// Outcome of a DNS update.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: String,
}

/// Per physical cluster.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClusterLabel {
    pub cluster: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 1 ms .. ~33 s
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// Every metric; components use the ones that concern them.
pub struct Metrics {
    pub reconciles: Family<ControllerLabel, Counter>,
    pub reconcile_errors: Family<ControllerLabel, Counter>,
    pub reconcile_duration: HistogramFamily<ControllerLabel>,
    pub root_convergence: Histogram,
    pub dns_updates: Family<ResultLabel, Counter>,
    pub dns_batch_names: Histogram,
    pub healthy_clusters: Gauge,
    pub synced_objects: Family<ClusterLabel, Gauge>,
    pub leader: Gauge,
}

impl Metrics {
    /// Creates the metrics and registers them (prefix `kcp_ingress`).
    pub fn new(registry: &mut Registry) -> Self {
        let metrics = Self {
            reconciles: Family::default(),
            reconcile_errors: Family::default(),
            reconcile_duration: Family::new_with_constructor(latency_histogram),
            root_convergence: latency_histogram(),
            dns_updates: Family::default(),
            dns_batch_names: Histogram::new(exponential_buckets(1.0, 2.0, 12)),
            healthy_clusters: Gauge::default(),
            synced_objects: Family::default(),
            leader: Gauge::default(),
        };
        let r = registry.sub_registry_with_prefix("kcp_ingress");
        r.register(
            "reconciles",
            "Reconciles run, per controller",
            metrics.reconciles.clone(),
        );
        r.register(
            "reconcile_errors",
            "Reconciles that failed, per controller",
            metrics.reconcile_errors.clone(),
        );
        r.register(
            "reconcile_duration_seconds",
            "How long a reconcile took, per controller",
            metrics.reconcile_duration.clone(),
        );
        r.register(
            "root_convergence_seconds",
            "From a root Ingress's creation until its status holds an address from every cluster it is placed on",
            metrics.root_convergence.clone(),
        );
        r.register(
            "dns_updates",
            "DNS UPDATE messages, by result (sent, failed)",
            metrics.dns_updates.clone(),
        );
        r.register(
            "dns_update_names",
            "Names carried by one DNS UPDATE message",
            metrics.dns_batch_names.clone(),
        );
        r.register(
            "healthy_clusters",
            "Clusters that count as healthy",
            metrics.healthy_clusters.clone(),
        );
        r.register(
            "synced_objects",
            "Objects synced to a physical cluster",
            metrics.synced_objects.clone(),
        );
        r.register(
            "leader",
            "1 while this process holds its leader Lease (or runs without election)",
            metrics.leader.clone(),
        );
        metrics
    }

    /// Records one reconcile of `controller` that took `seconds`.
    pub fn reconciled(&self, controller: &str, seconds: f64, failed: bool) {
        let label = ControllerLabel {
            controller: controller.to_string(),
        };
        self.reconciles.get_or_create(&label).inc();
        self.reconcile_duration
            .get_or_create(&label)
            .observe(seconds);
        if failed {
            self.reconcile_errors.get_or_create(&label).inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconciles_are_counted_per_controller() {
        let mut registry = Registry::default();
        let metrics = Metrics::new(&mut registry);
        metrics.reconciled("roots", 0.002, false);
        metrics.reconciled("roots", 0.004, true);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains(r#"kcp_ingress_reconciles_total{controller="roots"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"kcp_ingress_reconcile_errors_total{controller="roots"} 1"#),
            "{text}"
        );
    }
}
