//! The plan's inputs read from the caches: each GlobalIngress as a root,
//! the clusters that are healthy now (and until when), and what of the
//! Clusters changes DNS ([`ClusterView`]).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::drain;
use super::plan::{RootInput, RootKey};
use super::traffic::{self, Traffic};
use crate::apis::{Cluster, GlobalIngress};
use crate::labels;

/// The kinds of root a GlobalIngress may be controlled by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RootKind {
    /// `networking.k8s.io` Ingress.
    Ingress,
    /// `gateway.networking.k8s.io` Gateway.
    Gateway,
}

impl RootKind {
    /// The root kind an owner reference of `api_version`/`kind` names.
    fn of(api_version: &str, kind: &str) -> Option<Self> {
        let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
        match (group, kind) {
            ("networking.k8s.io", "Ingress") => Some(RootKind::Ingress),
            (labels::gateway_api::GROUP, labels::gateway_api::GATEWAY) => Some(RootKind::Gateway),
            _ => None,
        }
    }
}

/// Whether `g` is controlled by a root that exists: its controller owner
/// reference names an Ingress or a Gateway, and `is_root(kind, name, uid)`
/// says that the root of that kind and name in `g`'s namespace exists
/// with that uid.
pub fn controlled_by_live_root(
    g: &GlobalIngress,
    is_root: impl FnOnce(RootKind, &str, &str) -> bool,
) -> bool {
    g.owner_references()
        .iter()
        .find(|o| o.controller == Some(true))
        .is_some_and(|o| {
            RootKind::of(&o.api_version, &o.kind).is_some_and(|kind| is_root(kind, &o.name, &o.uid))
        })
}

/// A GlobalIngress as the plan sees it; `None` without a namespace.
/// `live`: whether a live root controls it.
pub fn root_input(g: &GlobalIngress, live: bool) -> Option<RootInput<'_>> {
    Some(RootInput {
        key: RootKey::new(
            g.metadata.namespace.as_deref()?,
            g.metadata.name.as_deref().unwrap_or_default(),
        ),
        created: g.metadata.creation_timestamp.as_ref().map(|t| t.0),
        deleting: g.metadata.deletion_timestamp.is_some(),
        orphan: !live,
        hosts: Cow::Borrowed(&g.spec.hosts),
        clusters: Cow::Borrowed(g.status.as_ref().map_or(&[][..], |s| &s.clusters)),
        withdrawn: Default::default(),
        failing: Default::default(),
        withdrawn_addresses: Default::default(),
        probe_problem: None,
        probes: Vec::new(),
    })
}

/// The healthy clusters at `now`, and when the first of them stops being
/// healthy unless it heartbeats again (in milliseconds since the epoch).
pub fn health(
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

/// What the plan reads of the Clusters at a time: which are healthy,
/// which are draining, and their weights and priorities. Two views that
/// are equal give the same DNS records (a heartbeat alone changes none of
/// it until it is missed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterView {
    pub healthy: BTreeSet<String>,
    pub draining: BTreeSet<String>,
    pub traffic: BTreeMap<String, Traffic>,
}

impl ClusterView {
    /// The view at `now`, and when the first healthy cluster's heartbeat
    /// expires (milliseconds since the epoch; see [`health`]).
    pub fn of(
        clusters: &[Arc<Cluster>],
        now: Timestamp,
        threshold: Duration,
    ) -> (Self, Option<i64>) {
        let (view, expiry, _) = Self::with_problems(clusters, now, threshold);
        (view, expiry)
    }

    /// [`Self::of`], and the clusters whose priority label does not parse
    /// (`(cluster, message)`, as [`traffic::traffic_of`] gives them): the
    /// traffic settings are read once for both.
    pub fn with_problems(
        clusters: &[Arc<Cluster>],
        now: Timestamp,
        threshold: Duration,
    ) -> (Self, Option<i64>, Vec<(String, String)>) {
        let (healthy, expiry) = health(clusters, now, threshold);
        let (traffic, problems) = traffic::traffic_of(clusters);
        let view = Self {
            healthy,
            draining: drain::draining(clusters),
            traffic,
        };
        (view, expiry, problems)
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

    use super::*;
    use crate::apis::{ClusterSpec, ClusterStatus};
    use crate::labels;

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
            drain_complete_time: None,
        });
        Arc::new(c)
    }

    #[test]
    fn only_a_global_ingress_controlled_by_an_existing_root_is_live() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
        let owned_by = |api_version: &str, kind: &str, controller: bool| {
            let mut g = GlobalIngress::new("web", Default::default());
            g.metadata.owner_references = Some(vec![OwnerReference {
                api_version: api_version.into(),
                kind: kind.into(),
                name: "web".into(),
                uid: "uid-1".into(),
                controller: Some(controller),
                block_owner_deletion: None,
            }]);
            g
        };
        let owned =
            |kind: &str, controller: bool| owned_by("networking.k8s.io/v1", kind, controller);
        let root = |uid: &'static str| {
            move |kind: RootKind, name: &str, owner_uid: &str| {
                kind == RootKind::Ingress && name == "web" && owner_uid == uid
            }
        };
        assert!(controlled_by_live_root(
            &owned("Ingress", true),
            root("uid-1")
        ));
        // The root was deleted and created again: another uid.
        assert!(!controlled_by_live_root(
            &owned("Ingress", true),
            root("uid-2")
        ));
        // No such root.
        assert!(!controlled_by_live_root(
            &owned("Ingress", true),
            |_: RootKind, _: &str, _: &str| false
        ));
        // Not a controller reference, or not a root kind.
        assert!(!controlled_by_live_root(
            &owned("Ingress", false),
            root("uid-1")
        ));
        assert!(!controlled_by_live_root(
            &owned("Gateway", true),
            root("uid-1")
        ));
        assert!(!controlled_by_live_root(
            &owned("Service", true),
            |_: RootKind, _: &str, uid: &str| uid == "uid-1"
        ));
        // A Gateway root: looked up as a Gateway, not as an Ingress.
        let gateway = owned_by("gateway.networking.k8s.io/v1", "Gateway", true);
        assert!(!controlled_by_live_root(&gateway, root("uid-1")));
        let live_gateway = |kind: RootKind, name: &str, uid: &str| {
            kind == RootKind::Gateway && name == "web" && uid == "uid-1"
        };
        assert!(controlled_by_live_root(&gateway, live_gateway));
        assert!(!controlled_by_live_root(
            &owned_by("example.com/v1", "Gateway", true),
            live_gateway
        ));
        // Made by hand, no owner.
        let bare = GlobalIngress::new("web", Default::default());
        assert!(!controlled_by_live_root(&bare, root("uid-1")));
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

    #[test]
    fn the_cluster_view_changes_with_health_drains_and_weights_not_with_heartbeats() {
        let threshold = Duration::from_secs(3);
        let now = Timestamp::from_millisecond(10_000).unwrap();
        let view =
            |clusters: &[Arc<Cluster>], at: Timestamp| ClusterView::of(clusters, at, threshold).0;
        let before = view(&[cluster("a", true, 9_000), cluster("b", true, 9_500)], now);
        // A heartbeat: the same view.
        assert_eq!(
            view(&[cluster("a", true, 9_800), cluster("b", true, 9_500)], now),
            before
        );
        // Ready=False: another view.
        assert_ne!(
            view(
                &[cluster("a", false, 9_800), cluster("b", true, 9_500)],
                now
            ),
            before
        );
        // A heartbeat missed: another view at the same objects, later.
        let later = Timestamp::from_millisecond(12_100).unwrap();
        assert_ne!(
            view(
                &[cluster("a", true, 9_000), cluster("b", true, 9_500)],
                later
            ),
            before
        );
        // Unschedulable (draining), or another weight: another view.
        let mut drained = (*cluster("a", true, 9_000)).clone();
        drained.spec.unschedulable = true;
        assert_ne!(
            view(&[Arc::new(drained), cluster("b", true, 9_500)], now),
            before
        );
        let mut weighted = (*cluster("a", true, 9_000)).clone();
        weighted.spec.weight = Some(5);
        assert_ne!(
            view(&[Arc::new(weighted), cluster("b", true, 9_500)], now),
            before
        );
    }
}
