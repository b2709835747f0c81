//! Draining a Cluster, the glbc's part (pure): an unschedulable Cluster's
//! addresses are withdrawn from DNS at once; the glbc says on the
//! Cluster's status when the published TTL (plus a margin) has passed
//! (`status.drainCompleteTime`, condition `Drained`), and the controller
//! removes its leaves only from then on. An undrained Cluster loses both.

use std::collections::BTreeSet;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use crate::apis::Cluster;
use crate::apis::condition::condition;
use crate::labels::{self, conditions, reasons};

/// The glbc's part of a Cluster's status, as it applies it (empty: none).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DrainStatus {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drain_complete_time: Option<Time>,
}

/// The names of the draining (unschedulable) Clusters.
pub fn draining(clusters: &[std::sync::Arc<Cluster>]) -> BTreeSet<String> {
    clusters
        .iter()
        .filter(|c| c.spec.unschedulable && c.metadata.deletion_timestamp.is_none())
        .filter_map(|c| c.metadata.name.clone())
        .collect()
}

/// What the glbc's part of `cluster`'s status should be at `now`, with
/// `ttl` the published TTL; `last_for`: the roots that have no other
/// cluster to serve them (DNS keeps their last answers, fail open).
/// `None`: it already shows that (nothing to write).
pub fn desired(
    cluster: &Cluster,
    now: &Time,
    ttl: u32,
    last_for: &[String],
) -> Option<DrainStatus> {
    let status = cluster.status.clone().unwrap_or_default();
    let current_condition = status
        .conditions
        .iter()
        .find(|c| c.type_ == conditions::DRAINED);
    if !cluster.spec.unschedulable {
        let ours = current_condition.is_some() || status.drain_complete_time.is_some();
        return ours.then(DrainStatus::default);
    }
    // A time without our condition is left from an earlier drain (or
    // written by hand): this drain starts now.
    let kept = current_condition.and(status.drain_complete_time.clone());
    let complete = kept.unwrap_or_else(|| {
        let wait =
            SignedDuration::from_secs(i64::from(ttl) + i64::from(labels::DRAIN_MARGIN_SECONDS));
        Time(now.0 + wait)
    });
    let done = complete.0 <= now.0;
    let mut message = if done {
        format!(
            "addresses withdrawn from DNS and the TTL ({ttl}s) has passed since {}: the cluster's leaves are removed",
            complete.0
        )
    } else {
        format!(
            "addresses withdrawn from DNS; the cluster's leaves stay until {} (TTL {ttl}s + {}s)",
            complete.0,
            labels::DRAIN_MARGIN_SECONDS
        )
    };
    if !last_for.is_empty() {
        message.push_str(&format!(
            "; no other cluster serves {}: DNS keeps the last answers for them (fail open)",
            last_for.join(", ")
        ));
    }
    let c = condition(
        &status.conditions,
        conditions::DRAINED,
        done,
        if done {
            reasons::DRAINED
        } else {
            reasons::DRAINING
        },
        &message,
        now.clone(),
    );
    let want = DrainStatus {
        conditions: vec![c],
        drain_complete_time: Some(complete),
    };
    let shown = current_condition == want.conditions.first()
        && status.drain_complete_time == want.drain_complete_time;
    (!shown).then_some(want)
}

/// When a draining cluster's drain completes next (a pass is due then).
pub fn next_completion(clusters: &[std::sync::Arc<Cluster>], now: Timestamp) -> Option<Timestamp> {
    clusters
        .iter()
        .filter(|c| c.spec.unschedulable)
        .filter_map(|c| c.status.as_ref()?.drain_complete_time.as_ref().map(|t| t.0))
        .filter(|at| *at > now)
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apis::{ClusterSpec, ClusterStatus};

    fn at(s: i64) -> Time {
        Time(Timestamp::from_second(s).unwrap())
    }

    #[test]
    fn a_drain_waits_the_ttl_then_completes_and_an_undrain_clears_it() {
        let mut c = Cluster::new("east", ClusterSpec::default());
        assert_eq!(desired(&c, &at(100), 30, &[]), None, "nothing to do");
        c.spec.unschedulable = true;
        let first = desired(&c, &at(100), 30, &[]).unwrap();
        assert_eq!(first.drain_complete_time, Some(at(132)));
        assert_eq!(first.conditions[0].status, "False");
        assert_eq!(first.conditions[0].reason, reasons::DRAINING);
        c.status = Some(ClusterStatus {
            conditions: first.conditions.clone(),
            drain_complete_time: first.drain_complete_time.clone(),
            ..Default::default()
        });
        assert_eq!(
            desired(&c, &at(110), 30, &[]),
            None,
            "shown already; the time stays"
        );
        let done = desired(&c, &at(132), 30, &["ns/web".into()]).unwrap();
        assert_eq!(done.conditions[0].status, "True");
        assert_eq!(done.drain_complete_time, Some(at(132)));
        assert!(done.conditions[0].message.contains("ns/web"));
        assert_eq!(
            next_completion(&[std::sync::Arc::new(c.clone())], at(110).0),
            Some(at(132).0)
        );
        c.spec.unschedulable = false;
        assert_eq!(desired(&c, &at(140), 30, &[]), Some(DrainStatus::default()));
        // Drained again, with a time left over from before: a new drain.
        c.spec.unschedulable = true;
        c.status.as_mut().unwrap().conditions.clear();
        let again = desired(&c, &at(200), 30, &[]).unwrap();
        assert_eq!(again.drain_complete_time, Some(at(232)));
    }
}
