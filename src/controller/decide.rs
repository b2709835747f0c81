//! The decision half of a root's reconcile (pure): from what the caches
//! show, the root's conditions, placement, the leaves to write and delete,
//! its merged status and its GlobalIngress — each write only when it
//! differs from what is there.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::dependencies::DepKey;
use super::kind::{LeafView, Lookups, Problem, RootKind};
use super::merge::{self, ClusterView};
use super::naming;
use super::placement::Placement;
use crate::apis::condition::{condition, degraded, quiet_first_verdict};
use crate::apis::{Cluster, GlobalIngress, GlobalIngressStatus, RootRef};
use crate::labels::{self, conditions, reasons};
use crate::syncer::copied::CopyEvidence;

/// What a root's reconcile reads (dereferenced from the caches).
pub struct Observed<'a, K: RootKind> {
    pub root: &'a K,
    pub clusters: &'a [Arc<Cluster>],
    /// The other cached objects the kind reads.
    pub world: &'a K::World,
    /// The object of a kind `K` at `(namespace, name)` (the root's leaves,
    /// looked up where [`leaf_for`] puts them).
    pub object: &'a dyn Fn(&str, &str) -> Option<Arc<K>>,
    /// `(namespace, name)` of the leaves labelled as the root's.
    pub leaves: &'a BTreeSet<(String, String)>,
    /// Whether a dependency exists.
    pub exists: &'a dyn Fn(&DepKey) -> bool,
    /// The clusters where a syncer reports a conflict on a dependency.
    pub conflicts: &'a dyn Fn(&DepKey) -> Vec<String>,
    /// The root's GlobalIngress (the object of its name, whoever controls it).
    pub global: Option<&'a GlobalIngress>,
    pub now: Timestamp,
    pub health_threshold: Duration,
    /// When some of the root's clusters were first seen reported and
    /// others not (the controller's memory; `None`: not yet).
    pub partial_since: Option<Timestamp>,
    /// Whether a live glbc publishes the root's namespace (its presence
    /// Lease: `runtime::presence`).
    pub glbc_live: bool,
    /// How long the statuses wait for clusters to report ([`report_windows`]).
    pub windows: ReportWindows,
    /// What the syncers in this process did with a cluster's leaf (`None`:
    /// a leaf about to be created) ([`CopyEvidence::Unknown`] without
    /// push-mode syncers).
    pub copies: &'a dyn Fn(&str, Option<&K>) -> CopyEvidence,
}

/// A leaf to apply.
#[derive(Debug, Clone, PartialEq)]
pub struct LeafWrite<K> {
    pub cluster: String,
    pub leaf: K,
    /// Whether it is new (no object of its name yet).
    pub create: bool,
}

/// The GlobalIngress spec and owner to apply.
#[derive(Debug, Clone, PartialEq)]
pub struct GlobalSpec {
    pub hosts: Vec<String>,
    pub root: RootRef,
    pub owner: Option<OwnerReference>,
    /// The finalizers the apply carries ([`global_finalizers`]).
    pub finalizers: Option<Vec<String>>,
}

/// What a root's reconcile decided; the shell performs it in this order.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan<K: RootKind> {
    /// The `Ready` condition, and whether it differs from what the
    /// GlobalIngress shows (an Event is then due, once).
    pub ready: Condition,
    pub ready_changed: bool,
    /// Whether `ready` is the root's first verdict on the happy path
    /// (`Placed`, and the root's own GlobalIngress shows no `Ready` yet:
    /// [`quiet_first_verdict`]): no Event then, an info log. A root
    /// without a GlobalIngress of its own (a route; a name taken) has
    /// nowhere to show it, and keeps the Event.
    pub ready_quiet: bool,
    /// Where the root goes; none when it is invalid (its leaves then stay).
    pub placement: Option<Placement>,
    /// Leaves to apply (those that are not current), then the root's
    /// leaves to delete (those no target wants).
    pub leaf_writes: Vec<LeafWrite<K>>,
    pub stale_leaves: Vec<(String, String)>,
    /// The root's merged `status` to apply, when it differs from its status.
    pub root_status: Option<serde_json::Value>,
    /// Until when the root's status and the GlobalIngress status are held
    /// back (both `None` then) while new leaves of healthy clusters have
    /// not reported yet ([`REPORT_WINDOW`]); the reconcile looks again then.
    pub held: Option<Timestamp>,
    /// Some clusters reported and others are awaited (the controller
    /// remembers since when: `Observed::partial_since`).
    pub partial: bool,
    /// Every target cluster reports an address.
    pub converged: bool,
    /// The `DependenciesReady` condition, and whether it differs from what
    /// the GlobalIngress shows.
    pub dependencies: Condition,
    pub dependencies_changed: bool,
    /// Bad input that does not stop placement (each gets an Event once).
    pub problems: Vec<Problem>,
    /// The GlobalIngress spec and the controller's part of its status, each
    /// when it differs (never when another root controls the GlobalIngress
    /// of the root's name: that is one of the problems).
    pub global_spec: Option<GlobalSpec>,
    pub global_status: Option<GlobalIngressStatus>,
}

/// How long after a leaf's creation the merged statuses wait for its
/// cluster to report (an address; a route: its parents), while the cluster
/// is healthy: the clusters of a new root report within moments of each
/// other, and their reports then go into the root's status and the
/// GlobalIngress's in one write each instead of one per cluster. The
/// figures that wait for every cluster (the root merged, DNS with all
/// addresses) are not delayed; a cluster that does not report delays the
/// others' by at most [`REPORT_SPREAD`] once one reported.
pub const REPORT_WINDOW: Duration = Duration::from_secs(10);

/// How long, once some of a root's clusters reported, the statuses wait
/// for the others (within [`REPORT_WINDOW`]).
pub const REPORT_SPREAD: Duration = Duration::from_secs(2);

/// The longest [`ReportWindows::window`], however slow recent roots were.
pub const MAX_REPORT_WINDOW: Duration = Duration::from_secs(60);

/// The longest [`ReportWindows::spread`].
pub const MAX_REPORT_SPREAD: Duration = Duration::from_secs(30);

/// The longest the merged statuses wait for a healthy cluster's in-process
/// syncer to sync a new leaf ([`CopyEvidence::Pending`]), from the leaf's
/// creation: a syncer working through the backlog of a bulk has not given
/// its cluster a chance to report, however long ago the leaf was created,
/// but one that never gets to it (a queue that keeps growing) must not
/// hold the statuses for ever. A syncer that finishes no sync at all
/// (stalled) gives no such evidence (`copied::STALLED_AFTER`), and an
/// unhealthy cluster is not waited for at all. Once synced, the leaf's
/// window counts from its copy: at most this and [`MAX_REPORT_WINDOW`]
/// after its creation.
pub const MAX_COPY_WAIT: Duration = Duration::from_secs(120);

/// How long the merged statuses wait for a root's clusters to report: from
/// a leaf's creation (`window`), and once one cluster reported (`spread`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportWindows {
    pub window: Duration,
    pub spread: Duration,
}

impl Default for ReportWindows {
    fn default() -> Self {
        Self {
            window: REPORT_WINDOW,
            spread: REPORT_SPREAD,
        }
    }
}

/// The windows after how long recent new roots took until every cluster
/// reported (`recent`; `None`: none lately): at least [`REPORT_WINDOW`] and
/// [`REPORT_SPREAD`] (a quiet system: one root's clusters report within
/// moments), longer when the system is busy (a bulk of new roots: the
/// clusters' pipelines lag behind each other by seconds, and a window that
/// ends before the clusters report costs a status write per cluster
/// instead of one) — one and a half times that and half of it, at most
/// [`MAX_REPORT_WINDOW`] and [`MAX_REPORT_SPREAD`]. Only a healthy cluster
/// that does not report makes anything wait that long.
pub fn report_windows(recent: Option<Duration>) -> ReportWindows {
    let recent = recent.unwrap_or_default();
    ReportWindows {
        window: (recent * 3 / 2).clamp(REPORT_WINDOW, MAX_REPORT_WINDOW),
        spread: (recent / 2).clamp(REPORT_SPREAD, MAX_REPORT_SPREAD),
    }
}

/// Until when the statuses are held, and whether some clusters reported
/// while others are awaited: the earliest end of the report window of a
/// healthy target's leaf that has not reported ([`RootKind::has_reported`];
/// a leaf about to be created: from `now`), and once another leaf
/// reported, at most the spread after `partial_since` (`now` when not
/// known). `None`: nothing to wait for.
///
/// Where the cluster's syncer runs in this process, its evidence
/// (`copies`) moves a leaf's window: from its copy (and the spread from
/// the copy, if later), not from its creation; a leaf not synced yet by a
/// syncer that works through its queue is waited for up to
/// [`MAX_COPY_WAIT`] from its creation (the reconcile is woken when it is
/// synced).
fn held_until<K: RootKind>(
    leaves: &[LeafView<K>],
    now: Timestamp,
    partial_since: Option<Timestamp>,
    windows: ReportWindows,
    copies: &dyn Fn(&str, Option<&K>) -> CopyEvidence,
) -> (Option<Timestamp>, bool) {
    let after = |t: Timestamp, d: Duration| {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Timestamp::from_millisecond(t.as_millisecond().saturating_add(ms)).ok()
    };
    // Per awaited leaf: the end of its window, and from when its spread
    // counts (`None`: no spread, it waits for its copy).
    let awaited: Vec<(Timestamp, Option<Timestamp>)> = leaves
        .iter()
        .filter(|l| l.view.healthy)
        .filter_map(|l| {
            let leaf = l.leaf.as_deref();
            let created = match leaf {
                None => now,
                Some(leaf) if K::has_reported(leaf) => return None,
                Some(leaf) => leaf.meta().creation_timestamp.as_ref().map(|t| t.0)?,
            };
            match copies(&l.view.cluster, leaf) {
                CopyEvidence::Unknown => {
                    Some((after(created, windows.window)?, Some(Timestamp::MIN)))
                }
                CopyEvidence::Pending => Some((after(created, MAX_COPY_WAIT)?, None)),
                CopyEvidence::CopiedAt(at) => {
                    let start = at.max(created);
                    Some((after(start, windows.window)?, Some(start)))
                }
            }
        })
        .filter(|(end, _)| *end > now)
        .collect();
    let reported = leaves
        .iter()
        .any(|l| l.leaf.as_deref().is_some_and(K::has_reported));
    let partial = !awaited.is_empty() && reported;
    let since = partial_since.unwrap_or(now);
    let end = awaited
        .into_iter()
        .filter_map(|(end, spread_from)| match spread_from {
            Some(from) if partial => after(from.max(since), windows.spread).map(|s| s.min(end)),
            _ => Some(end),
        })
        .min()
        .filter(|end| *end > now);
    (end, partial)
}

/// The clusters a valid root goes to now (a draining cluster until its
/// drain completes; none for an invalid root, whose
/// problem its own reconcile reports).
pub fn targets_of<K: RootKind>(
    root: &K,
    clusters: &[Arc<Cluster>],
    world: &K::World,
) -> Option<Placement> {
    if !K::validate(root).is_empty() {
        return None;
    }
    let mut placement = K::targets(root, clusters, world).ok()?;
    placement.keep_draining(Timestamp::now());
    Some(placement)
}

/// `leaf`, the leaf of `root` for `cluster` as the kind made it, as the
/// controller applies it: in the cluster's namespace under its computed
/// name ([`naming::leaf_key`]), with the labels naming its root and no owner
/// reference (it cannot cross namespaces).
pub fn name_leaf<K: RootKind>(root: &K, mut leaf: K, cluster: &str) -> K {
    let ns = root.namespace().unwrap_or_default();
    let name = root.name_any();
    let (leaf_ns, leaf_name) = naming::leaf_key(&ns, &name, cluster);
    let meta = leaf.meta_mut();
    meta.namespace = Some(leaf_ns);
    meta.name = Some(leaf_name);
    meta.owner_references = None;
    meta.labels
        .get_or_insert_with(Default::default)
        .extend(naming::leaf_labels(&ns, &name));
    leaf
}

/// The leaf of `root` for `cluster`, named and labelled ([`name_leaf`]).
pub fn leaf_for<K: RootKind>(root: &K, cluster: &Arc<Cluster>, world: &K::World) -> Option<K> {
    let leaf = K::leaf(root, cluster, world)?;
    Some(name_leaf(root, leaf, &cluster.name_any()))
}

/// The finalizers the controller's apply of a leaf for `cluster` carries:
/// the cluster's syncer finalizer on a new leaf when that syncer is live
/// and syncs the kind (`syncs`: it would add it before anything else, a
/// write and a read saved), and on an existing leaf as long as the leaf has
/// it (the controller co-owns it once it applied it; an apply without it
/// would remove it). Never any other finalizer.
pub fn leaf_finalizers(
    current: Option<&kube::api::ObjectMeta>,
    cluster: &str,
    syncs: bool,
) -> Option<Vec<String>> {
    let ours = labels::syncer_finalizer(cluster);
    let keep = match current {
        None => syncs,
        Some(meta) => meta.finalizers.iter().flatten().any(|f| *f == ours),
    };
    keep.then(|| vec![ours])
}

/// The finalizers the controller's apply of a GlobalIngress carries: the
/// glbc's DNS finalizer on a new one when a live glbc publishes its
/// namespace (`glbc_live`: the glbc would add it before publishing, a
/// write saved), and on an existing one as long as it has it (the
/// controller co-owns it once it applied it; an apply without it would
/// remove it). Never added to an existing GlobalIngress (the glbc does
/// that), never any other finalizer. Without a live glbc nothing would
/// remove it, and a deleted root's GlobalIngress must go.
pub fn global_finalizers(
    current: Option<&kube::api::ObjectMeta>,
    glbc_live: bool,
) -> Option<Vec<String>> {
    let keep = match current {
        None => glbc_live,
        Some(meta) => meta
            .finalizers
            .iter()
            .flatten()
            .any(|f| f == labels::DNS_FINALIZER),
    };
    keep.then(|| vec![labels::DNS_FINALIZER.to_string()])
}

/// Whether `cluster`'s syncer reports that it copies objects of the kind
/// `K` there (`status.syncedResources`: the type, served on both sides).
fn syncs_kind<K: RootKind>(cluster: &Cluster) -> bool {
    let (plural, group) = (K::plural(&()), K::group(&()));
    let resource = if group.is_empty() {
        plural.into_owned()
    } else {
        format!("{plural}.{group}")
    };
    cluster.status.as_ref().is_some_and(|s| {
        s.synced_resources
            .iter()
            .any(|r| r.served && r.resource == resource)
    })
}

/// The root that controls `global`, as `(apiVersion, kind, uid)`.
fn controller_of(global: &GlobalIngress) -> Option<(String, String, String)> {
    global
        .owner_references()
        .iter()
        .find(|o| o.controller == Some(true))
        .map(|o| (o.api_version.clone(), o.kind.clone(), o.uid.clone()))
}

/// Decides a root's reconcile.
pub fn decide<K: RootKind>(seen: &Observed<'_, K>) -> Plan<K> {
    let root = seen.root;
    let now = Time(seen.now);
    let name = root.name_any();
    let global_name = K::global_name(&name);
    // Another root's GlobalIngress of the name this root's would have.
    let taken = seen.global.filter(|g| {
        controller_of(g).is_some_and(|(_, _, uid)| root.uid().as_deref() != Some(uid.as_str()))
    });
    let global = seen
        .global
        .filter(|_| taken.is_none() && global_name.is_some());
    let previous: Vec<Condition> = global
        .and_then(|g| g.status.as_ref())
        .map(|s| s.conditions.clone())
        .unwrap_or_default();

    let (placement, ready) = place(root, seen.clusters, seen.world, &previous, &now);
    let ready_changed = changed(&previous, &ready);
    let ready_quiet = global_name.is_some()
        && taken.is_none()
        && quiet_first_verdict(
            previous.iter().find(|c| c.type_ == conditions::READY),
            &ready,
            &[reasons::PLACED],
        );

    let mut plan_leaves = Vec::new();
    let mut stale_leaves = Vec::new();
    let mut leaves: Vec<LeafView<K>> = Vec::new();
    if let Some(placement) = &placement {
        let healthy: HashMap<&str, bool> = seen
            .clusters
            .iter()
            .filter_map(|c| {
                let name = c.metadata.name.as_deref()?;
                Some((name, c.is_healthy(seen.now, seen.health_threshold)))
            })
            .collect();
        let mut wanted = BTreeSet::new();
        for cluster in &placement.targets {
            let Some(target) = seen
                .clusters
                .iter()
                .find(|c| c.metadata.name.as_deref() == Some(cluster.as_str()))
            else {
                continue;
            };
            let Some(mut desired) = leaf_for(root, target, seen.world) else {
                continue;
            };
            let key = (desired.namespace().unwrap_or_default(), desired.name_any());
            let current = (seen.object)(&key.0, &key.1);
            let syncs =
                healthy.get(cluster.as_str()).copied().unwrap_or(false) && syncs_kind::<K>(target);
            desired.meta_mut().finalizers =
                leaf_finalizers(current.as_deref().map(|c| c.meta()), cluster, syncs);
            wanted.insert(key);
            leaves.push(LeafView {
                view: ClusterView {
                    cluster: cluster.clone(),
                    healthy: healthy.get(cluster.as_str()).copied().unwrap_or(false),
                    entries: current.as_deref().map(K::addresses).unwrap_or_default(),
                },
                leaf: current.clone(),
            });
            if current
                .as_deref()
                .is_some_and(|c| K::leaf_is_current(c, &desired))
            {
                continue;
            }
            plan_leaves.push(LeafWrite {
                cluster: cluster.clone(),
                leaf: desired,
                create: current.is_none(),
            });
        }
        stale_leaves = seen.leaves.difference(&wanted).cloned().collect();
    }
    let taken_message = match (taken, &global_name) {
        (Some(g), Some(global_name)) => {
            let owner = controller_of(g)
                .map(|(_, kind, _)| kind)
                .unwrap_or_default();
            Some(format!(
                "the GlobalIngress {global_name} is controlled by another root (a {owner}): \
                 this root's hosts are not published"
            ))
        }
        _ => None,
    };
    let lookups = Lookups {
        world: seen.world,
        clusters: seen.clusters,
        exists: seen.exists,
        placement: placement.as_ref(),
        global_taken: taken_message.as_deref(),
        now: &now,
    };
    let root_status = placement
        .as_ref()
        .and_then(|_| K::root_status(root, &leaves, &lookups));
    let mut problems = K::problems(root, &lookups);
    if let Some(message) = taken_message {
        problems.push(Problem {
            reason: reasons::GLOBAL_INGRESS_NAME_TAKEN,
            message,
        });
    }
    let (held, partial) = held_until(
        &leaves,
        seen.now,
        seen.partial_since,
        seen.windows,
        seen.copies,
    );
    let views: Vec<ClusterView<K::Address>> = leaves.into_iter().map(|l| l.view).collect();
    let converged = !views.is_empty() && views.iter().all(|v| !v.entries.is_empty());

    let dependencies = dependencies_condition(
        root,
        seen.world,
        placement.as_ref(),
        seen.exists,
        seen.conflicts,
        &previous,
        &now,
    );
    let dependencies_changed = changed(&previous, &dependencies);

    let (mut global_spec, mut global_status) = (None, None);
    if let (Some(_), None) = (&global_name, taken) {
        let hosts = K::hosts(root, seen.world);
        let owner = root.controller_owner_ref(&());
        let root_ref = RootRef {
            group: K::group(&()).into_owned(),
            kind: K::kind(&()).into_owned(),
            name: name.clone(),
        };
        let spec_current = global.is_some_and(|g| {
            g.spec.hosts == hosts
                && g.spec.root.as_ref() == Some(&root_ref)
                && owner
                    .iter()
                    .all(|o| g.owner_references().iter().any(|c| c.uid == o.uid))
        });
        global_spec = (!spec_current).then(|| GlobalSpec {
            hosts,
            root: root_ref,
            owner,
            finalizers: global_finalizers(global.map(|g| &g.metadata), seen.glbc_live),
        });

        let status = global.and_then(|g| g.status.clone()).unwrap_or_default();
        let clusters = merge::cluster_statuses(&views, &status.clusters, &now, K::global_address);
        let mine = vec![
            ready.clone(),
            degraded(
                &status.conditions,
                views.len(),
                // A cluster failing the root's health check (the glbc's
                // verdicts) counts as not healthy, as the glbc counts it.
                views
                    .iter()
                    .filter(|v| v.healthy && !status.probes_fail(&v.cluster))
                    .count(),
                now.clone(),
            ),
            dependencies.clone(),
        ];
        // The GlobalIngress's own generation (its spec: the hosts) the
        // status was computed from, not the root's: an edit of the root
        // that changes neither the hosts nor what the clusters report
        // (a path, a backend) writes no GlobalIngress status. A spec about
        // to change takes the status with it; its generation comes from
        // the spec write's answer (`reconcile::write_global`).
        let generation = global.and_then(|g| g.metadata.generation);
        let status_current = global_spec.is_none()
            && status.clusters == clusters
            && status.observed_generation == generation
            && mine.iter().all(|c| status.conditions.contains(c));
        global_status = (!status_current).then(|| GlobalIngressStatus {
            observed_generation: generation,
            clusters,
            conditions: mine,
            ..Default::default()
        });
    }

    // Held: one status write per root once its clusters reported, not one
    // per cluster as each reports.
    let (root_status, global_status) = match held {
        Some(_) => (None, None),
        None => (root_status, global_status),
    };
    Plan {
        ready,
        ready_changed,
        ready_quiet,
        placement,
        leaf_writes: plan_leaves,
        stale_leaves,
        root_status,
        held,
        partial,
        converged,
        dependencies,
        dependencies_changed,
        problems,
        global_spec,
        global_status,
    }
}

/// Validation and placement: where the root goes, and its `Ready` condition.
fn place<K: RootKind>(
    root: &K,
    clusters: &[Arc<Cluster>],
    world: &K::World,
    previous: &[Condition],
    now: &Time,
) -> (Option<Placement>, Condition) {
    let not_ready = |reason: &str, message: &str| {
        condition(
            previous,
            conditions::READY,
            false,
            reason,
            message,
            now.clone(),
        )
    };
    let problems = K::validate(root);
    if let Some(problem) = problems.first() {
        let message = problems
            .iter()
            .map(|p| p.message.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        return (None, not_ready(problem.reason, &message));
    }
    let mut placement = match K::targets(root, clusters, world) {
        Ok(placement) => placement,
        Err(problem) => return (None, not_ready(problem.reason, &problem.message)),
    };
    placement.keep_draining(now.0);
    let mut message = format!("placed on {} cluster(s)", placement.targets.len());
    if !placement.unusable.is_empty() {
        let skipped: Vec<&str> = placement
            .unusable
            .iter()
            .map(|(_, why)| why.as_str())
            .collect();
        message = format!("{message}; skipped: {}", skipped.join("; "));
    }
    let reason = if placement.targets.is_empty() {
        reasons::NO_MATCHING_CLUSTER
    } else {
        reasons::PLACED
    };
    let ready = condition(
        previous,
        conditions::READY,
        !placement.targets.is_empty(),
        reason,
        &message,
        now.clone(),
    );
    (Some(placement), ready)
}

/// `DependenciesReady`: false when a dependency is missing
/// (`DependencyMissing`), else when a syncer of one of the root's clusters
/// could not place one because an object it does not manage is in the way
/// there (`DependencyConflict`; every cluster counts while the root is not
/// placed).
fn dependencies_condition<K: RootKind>(
    root: &K,
    world: &K::World,
    placement: Option<&Placement>,
    exists: &dyn Fn(&DepKey) -> bool,
    conflicts: &dyn Fn(&DepKey) -> Vec<String>,
    previous: &[Condition],
    now: &Time,
) -> Condition {
    let ns = root.namespace().unwrap_or_default();
    let deps = K::dependencies(root, world);
    let missing: Vec<String> = deps
        .iter()
        .filter(|dep| !exists(dep))
        .map(|(kind, dep_ns, name)| {
            if *dep_ns == ns {
                format!("{kind:?} {name}")
            } else {
                format!("{kind:?} {dep_ns}/{name}")
            }
        })
        .collect();
    let not_ready = |reason: &str, message: &str| {
        condition(
            previous,
            conditions::DEPENDENCIES_READY,
            false,
            reason,
            message,
            now.clone(),
        )
    };
    if !missing.is_empty() {
        let message = format!("not found in namespace {ns}: {}", missing.join(", "));
        return not_ready(reasons::DEPENDENCY_MISSING, &message);
    }
    let relevant = |cluster: &String| placement.is_none_or(|p| p.targets.contains(cluster));
    let conflicted: Vec<String> = deps
        .iter()
        .filter_map(|dep| {
            let clusters: Vec<String> = conflicts(dep).into_iter().filter(relevant).collect();
            let (kind, _, name) = dep;
            (!clusters.is_empty())
                .then(|| format!("{kind:?} {ns}/{name} in cluster(s) {}", clusters.join(", ")))
        })
        .collect();
    if !conflicted.is_empty() {
        let message = format!(
            "not placed because an object of the same name that kcp-ingress does not manage \
             is in the way (see the {}<cluster> annotation): {}",
            labels::CONFLICT_ANNOTATION_PREFIX,
            conflicted.join("; ")
        );
        return not_ready(reasons::DEPENDENCY_CONFLICT, &message);
    }
    condition(
        previous,
        conditions::DEPENDENCIES_READY,
        true,
        reasons::ALL_FOUND,
        "",
        now.clone(),
    )
}

/// Whether `new` differs from the condition of its type in `previous`
/// (its transition time aside).
fn changed(previous: &[Condition], new: &Condition) -> bool {
    !previous.iter().any(|c| {
        c.type_ == new.type_
            && c.status == new.status
            && c.reason == new.reason
            && c.message == new.message
    })
}

/// The leaf of an Ingress `root` for `cluster`, named and labelled.
#[cfg(test)]
pub fn test_leaf(
    root: &k8s_openapi::api::networking::v1::Ingress,
    cluster: &str,
) -> k8s_openapi::api::networking::v1::Ingress {
    let leaf = super::kinds::ingress::split::leaf(root, cluster);
    name_leaf(root, leaf, cluster)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use k8s_openapi::api::networking::v1::{Ingress, IngressLoadBalancerIngress};
    use serde_json::json;

    use super::*;
    use crate::apis::{ClusterSpec, LoadBalancerAddress};
    use crate::controller::dependencies::DepKind;

    const THRESHOLD: Duration = Duration::from_secs(10);

    fn now() -> Timestamp {
        Timestamp::from_second(1_000_000).unwrap()
    }

    fn root(placement: &str) -> Ingress {
        serde_json::from_value(json!({
            "metadata": {
                "name": "shop", "namespace": "apps", "uid": "u-1", "generation": 2,
                "annotations": {"kcp-ingress.dev/placement": placement}
            },
            "spec": {
                "tls": [{"hosts": ["shop.example.test"], "secretName": "tls"}],
                "rules": [{"host": "shop.example.test", "http": {"paths": [
                    {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}
                ]}}]
            }
        }))
        .unwrap()
    }

    fn cluster(name: &str, region: &str, healthy: bool) -> Arc<Cluster> {
        let mut c = Cluster::new(name, ClusterSpec::default());
        c.metadata.labels = Some([("region".to_string(), region.to_string())].into());
        c.status = serde_json::from_value(json!({
            "conditions": [{
                "type": "Ready", "status": if healthy { "True" } else { "False" },
                "reason": "Heartbeat", "message": "",
                "lastTransitionTime": "1970-01-12T13:46:40Z"
            }],
            "lastHeartbeatTime": "1970-01-12T13:46:39Z"
        }))
        .unwrap();
        Arc::new(c)
    }

    fn address(ip: &str) -> IngressLoadBalancerIngress {
        IngressLoadBalancerIngress {
            ip: Some(ip.into()),
            ..Default::default()
        }
    }

    /// The leaf of `root` on `cluster` as its syncer reported `ips`.
    fn reported(root: &Ingress, cluster: &str, ips: &[&str]) -> Arc<Ingress> {
        let mut leaf = test_leaf(root, cluster);
        leaf.status = serde_json::from_value(json!({
            "loadBalancer": {"ingress": ips.iter().map(|ip| json!({"ip": ip})).collect::<Vec<_>>()}
        }))
        .unwrap();
        Arc::new(leaf)
    }

    struct World {
        clusters: Vec<Arc<Cluster>>,
        objects: HashMap<(String, String), Arc<Ingress>>,
        leaves: BTreeSet<(String, String)>,
        existing: Vec<DepKey>,
        conflicts: HashMap<DepKey, Vec<String>>,
        global: Option<GlobalIngress>,
        partial_since: Option<Timestamp>,
        glbc_live: bool,
    }

    impl World {
        fn new(clusters: Vec<Arc<Cluster>>) -> Self {
            Self {
                clusters,
                objects: HashMap::new(),
                leaves: BTreeSet::new(),
                existing: Vec::new(),
                conflicts: HashMap::new(),
                global: None,
                partial_since: None,
                glbc_live: false,
            }
        }

        fn with_leaf(mut self, leaf: Arc<Ingress>) -> Self {
            let key = (leaf.namespace().unwrap(), leaf.name_any());
            self.leaves.insert(key.clone());
            self.objects.insert(key, leaf);
            self
        }

        fn decide(&self, root: &Ingress) -> Plan<Ingress> {
            let object =
                |ns: &str, n: &str| self.objects.get(&(ns.to_string(), n.to_string())).cloned();
            let exists = |d: &DepKey| self.existing.contains(d);
            let conflicts = |d: &DepKey| self.conflicts.get(d).cloned().unwrap_or_default();
            decide(&Observed {
                root,
                clusters: &self.clusters,
                world: &(),
                object: &object,
                leaves: &self.leaves,
                exists: &exists,
                conflicts: &conflicts,
                global: self.global.as_ref(),
                now: now(),
                health_threshold: THRESHOLD,
                partial_since: self.partial_since,
                glbc_live: self.glbc_live,
                windows: ReportWindows::default(),
                copies: &|_, _| CopyEvidence::Unknown,
            })
        }
    }

    /// The GlobalIngress as it is after `plan` was applied.
    fn applied(plan: &Plan<Ingress>, previous: Option<GlobalIngress>) -> GlobalIngress {
        let mut global = previous.unwrap_or_else(|| GlobalIngress::new("shop", Default::default()));
        if let Some(spec) = &plan.global_spec {
            global.spec.hosts = spec.hosts.clone();
            global.spec.root = Some(spec.root.clone());
            global.metadata.owner_references = spec.owner.clone().map(|o| vec![o]);
        }
        if let Some(status) = &plan.global_status {
            global.status = Some(status.clone());
        }
        global
    }

    #[test]
    fn a_new_root_gets_a_leaf_per_matching_cluster_and_its_global_ingress() {
        let world = World::new(vec![
            cluster("east", "us", true),
            cluster("west", "us", false),
            cluster("paris", "eu", true),
        ]);
        let plan = world.decide(&root("region=us"));
        assert_eq!(
            (plan.ready.status.as_str(), plan.ready.reason.as_str()),
            ("True", "Placed")
        );
        assert!(plan.ready_changed);
        let writes: Vec<(&str, bool)> = plan
            .leaf_writes
            .iter()
            .map(|w| (w.cluster.as_str(), w.create))
            .collect();
        assert_eq!(writes, [("east", true), ("west", true)]);
        let leaf = &plan.leaf_writes[0].leaf;
        assert_eq!(
            (leaf.namespace().unwrap(), leaf.name_any()),
            (
                "kcp-ingress-cluster-east".to_string(),
                "apps.shop--east".to_string()
            )
        );
        let labels = leaf.metadata.labels.clone().unwrap();
        assert_eq!(
            (
                labels[labels::ROOT_LABEL].as_str(),
                labels[labels::ROOT_NAMESPACE_LABEL].as_str()
            ),
            ("shop", "apps")
        );
        assert!(
            !labels
                .keys()
                .any(|k| k.starts_with(labels::STATE_LABEL_PREFIX))
        );
        assert_eq!(leaf.metadata.owner_references, None);
        assert!(plan.stale_leaves.is_empty());
        // No leaf reports an address yet: nothing to merge, not converged.
        assert_eq!(plan.root_status, None);
        assert!(!plan.converged);
        assert_eq!(
            (
                plan.dependencies.status.as_str(),
                plan.dependencies.message.as_str()
            ),
            (
                "False",
                "not found in namespace apps: Service web, Secret tls"
            )
        );
        let spec = plan.global_spec.clone().unwrap();
        assert_eq!(spec.hosts, ["shop.example.test"]);
        assert_eq!(spec.owner.unwrap().uid, "u-1");
        // The statuses wait for the new leaves to report (east is healthy).
        assert_eq!(plan.global_status, None);
        let window = i64::try_from(REPORT_WINDOW.as_millis()).unwrap();
        assert_eq!(
            plan.held.map(|t| t.as_millisecond()),
            Some(now().as_millisecond() + window)
        );
        // A leaf that did not report within its window holds nothing.
        let mut silent = test_leaf(&root("region=us"), "east");
        silent.metadata.creation_timestamp = Some(Time(
            Timestamp::from_millisecond(now().as_millisecond() - window).unwrap(),
        ));
        let plan = World::new(vec![
            cluster("east", "us", true),
            cluster("west", "us", false),
            cluster("paris", "eu", true),
        ])
        .with_leaf(Arc::new(silent))
        .decide(&root("region=us"));
        assert_eq!(plan.held, None);
        let status = plan.global_status.clone().unwrap();
        // The GlobalIngress is created in the same reconcile: its
        // generation comes from that write's answer, not from the root.
        assert_eq!(status.observed_generation, None);
        let clusters: Vec<(&str, bool)> = status
            .clusters
            .iter()
            .map(|c| (c.cluster.as_str(), c.healthy))
            .collect();
        assert_eq!(clusters, [("east", true), ("west", false)]);
    }

    #[test]
    fn a_converged_root_merges_healthy_addresses_then_writes_nothing() {
        let r = root("");
        let mut world = World::new(vec![
            cluster("east", "us", true),
            cluster("west", "us", false),
        ])
        .with_leaf(reported(&r, "east", &["127.0.1.1"]))
        .with_leaf(reported(&r, "west", &["127.0.1.2"]));
        world.existing = Ingress::dependencies(&r, &());
        let plan = world.decide(&r);
        assert!(plan.leaf_writes.is_empty());
        assert_eq!(
            plan.root_status,
            Some(json!({"loadBalancer": {"ingress": [address("127.0.1.1")]}}))
        );
        assert!(plan.converged);
        assert_eq!(plan.dependencies.reason, "AllFound");
        let status = plan.global_status.clone().unwrap();
        assert_eq!(
            status.clusters[1].addresses,
            [LoadBalancerAddress {
                ip: Some("127.0.1.2".into()),
                hostname: None
            }]
        );

        // Once everything is written and seen, a reconcile writes nothing.
        let mut converged = r.clone();
        converged.status =
            serde_json::from_value(json!({"loadBalancer": {"ingress": [{"ip": "127.0.1.1"}]}}))
                .unwrap();
        world.global = Some(applied(&plan, None));
        let again = world.decide(&converged);
        assert!(!again.ready_changed && !again.dependencies_changed);
        assert_eq!(
            (
                again.leaf_writes.len(),
                again.stale_leaves.len(),
                again.root_status.is_some(),
                again.global_spec.is_some(),
                again.global_status.is_some()
            ),
            (0, 0, false, false, false)
        );
        // The transition time is kept.
        assert_eq!(again.ready, plan.ready);
        // A new generation of the root whose hosts and reports are the
        // same (a path edited) writes no GlobalIngress, spec or status.
        let mut edited = converged.clone();
        edited.metadata.generation = Some(3);
        let after_edit = world.decide(&edited);
        assert_eq!(
            (
                after_edit.global_spec.is_some(),
                after_edit.global_status.is_some()
            ),
            (false, false)
        );
    }

    #[test]
    fn only_the_first_happy_ready_verdict_of_a_root_goes_unannounced() {
        let r = root("region=us");
        let world = World::new(vec![cluster("east", "us", true)]);
        // The first verdict, Placed, while its GlobalIngress shows no Ready
        // (not created yet, or its status held): no Event.
        let first = world.decide(&r);
        assert!(first.ready_changed && first.ready_quiet);
        let mut world = world.with_leaf(reported(&r, "east", &["127.0.1.1"]));
        world.global = Some(GlobalIngress::new("shop", Default::default()));
        let first = world.decide(&r);
        assert!(first.ready_changed && first.ready_quiet);
        // Once the GlobalIngress shows it, a change is announced.
        world.global = Some(applied(&first, None));
        world.clusters.push(cluster("west", "us", true));
        let later = world.decide(&r);
        assert_eq!(later.ready.message, "placed on 2 cluster(s)");
        assert!(later.ready_changed && !later.ready_quiet);
        // A first verdict that is not the happy one is announced.
        let nowhere = World::new(vec![cluster("east", "us", true)]).decide(&root("region=eu"));
        assert_eq!(nowhere.ready.reason, reasons::NO_MATCHING_CLUSTER);
        assert!(nowhere.ready_changed && !nowhere.ready_quiet);
        // Another root's GlobalIngress of the name: this root's Ready is
        // shown nowhere, so it keeps its Event.
        let mut taken = World::new(vec![cluster("east", "us", true)]);
        let mut other = GlobalIngress::new("shop", Default::default());
        other.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "networking.k8s.io/v1".into(),
            kind: "Ingress".into(),
            name: "shop".into(),
            uid: "u-other".into(),
            controller: Some(true),
            block_owner_deletion: None,
        }]);
        taken.global = Some(other);
        let plan = taken.decide(&r);
        assert!(plan.ready_changed && !plan.ready_quiet);
    }

    #[test]
    fn statuses_are_held_until_the_clusters_report_or_their_window_ends() {
        let r = root("");
        let window = i64::try_from(REPORT_WINDOW.as_millis()).unwrap();
        let created = |ms_ago: i64| {
            Some(Time(
                Timestamp::from_millisecond(now().as_millisecond() - ms_ago).unwrap(),
            ))
        };
        let mut young = test_leaf(&r, "west");
        young.metadata.creation_timestamp = created(1_000);
        let world = World::new(vec![
            cluster("east", "us", true),
            cluster("west", "us", true),
        ])
        .with_leaf(reported(&r, "east", &["127.0.1.1"]))
        .with_leaf(Arc::new(young.clone()));
        let plan = world.decide(&r);
        // East reported, west is awaited: for the spread, from now on.
        let spread = i64::try_from(REPORT_SPREAD.as_millis()).unwrap();
        assert!(plan.partial);
        assert_eq!(
            plan.held.map(|t| t.as_millisecond()),
            Some(now().as_millisecond() + spread)
        );
        assert_eq!((plan.root_status, plan.global_status), (None, None));
        // The spread passed since east reported: east's address is written.
        let mut world = world;
        world.partial_since =
            Some(Timestamp::from_millisecond(now().as_millisecond() - spread).unwrap());
        let plan = world.decide(&r);
        assert_eq!(plan.held, None);
        assert!(plan.root_status.is_some());
        // Nobody reported yet: the leaf's window.
        let world = World::new(vec![
            cluster("east", "us", true),
            cluster("west", "us", true),
        ])
        .with_leaf(Arc::new(young.clone()));
        let plan = world.decide(&r);
        assert!(!plan.partial);
        assert_eq!(
            plan.held.map(|t| t.as_millisecond()),
            Some(now().as_millisecond() - 1_000 + window)
        );
        // West reports: both statuses are written at once, with both addresses.
        let world = World::new(vec![
            cluster("east", "us", true),
            cluster("west", "us", true),
        ])
        .with_leaf(reported(&r, "east", &["127.0.1.1"]))
        .with_leaf(reported(&r, "west", &["127.0.1.2"]));
        let plan = world.decide(&r);
        assert_eq!(plan.held, None);
        assert_eq!(
            plan.root_status,
            Some(
                json!({"loadBalancer": {"ingress": [address("127.0.1.1"), address("127.0.1.2")]}})
            )
        );
        assert_eq!(plan.global_status.unwrap().clusters.len(), 2);
        // West's window passed without a report: east's address is written.
        young.metadata.creation_timestamp = created(window);
        let world = World::new(vec![
            cluster("east", "us", true),
            cluster("west", "us", true),
        ])
        .with_leaf(reported(&r, "east", &["127.0.1.1"]))
        .with_leaf(Arc::new(young));
        let plan = world.decide(&r);
        assert_eq!(plan.held, None);
        assert_eq!(
            plan.root_status,
            Some(json!({"loadBalancer": {"ingress": [address("127.0.1.1")]}}))
        );
        // An unhealthy cluster's silence holds nothing.
        let world = World::new(vec![
            cluster("east", "us", true),
            cluster("west", "us", false),
        ])
        .with_leaf(reported(&r, "east", &["127.0.1.1"]));
        assert_eq!(world.decide(&r).held, None);
    }

    #[test]
    fn a_new_leaf_carries_the_syncer_finalizer_when_its_syncer_syncs_the_kind() {
        let syncing = |name: &str, served: bool| {
            let mut c = (*cluster(name, "us", true)).clone();
            c.status.as_mut().unwrap().synced_resources = vec![crate::apis::SyncedResource {
                resource: "ingresses.networking.k8s.io".into(),
                served,
                ..Default::default()
            }];
            Arc::new(c)
        };
        let r = root("");
        let world = World::new(vec![
            syncing("east", true),
            syncing("west", false),
            cluster("paris", "us", true),
        ]);
        let finalizers: Vec<(String, Option<Vec<String>>)> = world
            .decide(&r)
            .leaf_writes
            .into_iter()
            .map(|w| (w.cluster, w.leaf.metadata.finalizers))
            .collect();
        assert_eq!(
            finalizers,
            [
                ("east".into(), Some(vec![labels::syncer_finalizer("east")])),
                ("paris".into(), None),
                ("west".into(), None),
            ]
        );
        // An existing leaf keeps it while it has it, and never gets it from the controller.
        let mut has = test_leaf(&r, "east");
        has.metadata.finalizers = Some(vec![labels::syncer_finalizer("east"), "other".into()]);
        assert_eq!(
            leaf_finalizers(Some(&has.metadata), "east", false),
            Some(vec![labels::syncer_finalizer("east")])
        );
        let lacks = test_leaf(&r, "east");
        assert_eq!(leaf_finalizers(Some(&lacks.metadata), "east", true), None);
    }

    #[test]
    fn the_syncers_evidence_moves_the_report_windows() {
        use CopyEvidence::{CopiedAt, Pending, Unknown};
        let r = root("");
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap();
        let (window, spread, cap) = (ms(REPORT_WINDOW), ms(REPORT_SPREAD), ms(MAX_COPY_WAIT));
        // `ago(-x)`: x ms from now.
        let ago = |ms: i64| Timestamp::from_millisecond(now().as_millisecond() - ms).unwrap();
        let leaf = |cluster: &str, created_ago: i64| {
            let mut l = test_leaf(&r, cluster);
            l.metadata.creation_timestamp = Some(Time(ago(created_ago)));
            Arc::new(l)
        };
        let view = |cluster: &str, healthy: bool, leaf: Arc<Ingress>| LeafView {
            view: ClusterView {
                cluster: cluster.into(),
                healthy,
                entries: Vec::new(),
            },
            leaf: Some(leaf),
        };
        let held = |leaves: &[LeafView<Ingress>], since: Option<Timestamp>, e: CopyEvidence| {
            held_until(leaves, now(), since, ReportWindows::default(), &|_, _| e)
        };
        // West's leaf was created longer ago than its window.
        let old = leaf("west", window + 5_000);
        let alone = [view("west", true, old.clone())];
        // Without evidence (pull mode; a stalled syncer): its window ended.
        assert_eq!(held(&alone, None, Unknown), (None, false));
        // Copied a second ago: its window counts from the copy.
        assert_eq!(
            held(&alone, None, CopiedAt(ago(1_000))),
            (Some(ago(1_000 - window)), false)
        );
        // A copy older than the leaf (another leaf of its uid cannot be):
        // from the creation.
        assert_eq!(held(&alone, None, CopiedAt(ago(window * 9))), (None, false));
        // Not synced yet by a syncer that works through its queue: held
        // up to the cap from the leaf's creation ...
        assert_eq!(
            held(&alone, None, Pending),
            (Some(ago(window + 5_000 - cap)), false)
        );
        // ... and no longer.
        let ancient = [view("west", true, leaf("west", cap + 1))];
        assert_eq!(held(&ancient, None, Pending), (None, false));
        // An unhealthy cluster is not waited for, whatever its syncer does.
        let sick = [view("west", false, old.clone())];
        assert_eq!(held(&sick, None, Pending), (None, false));
        // East reported 10 s ago, longer than the spread: a pending leaf
        // still holds (up to the cap), a copied one for the spread from
        // its copy, one without evidence not at all.
        let both = [
            view("east", true, reported(&r, "east", &["127.0.1.1"])),
            view("west", true, old.clone()),
        ];
        let since = Some(ago(10_000));
        assert_eq!(held(&both, since, Unknown), (None, false));
        assert_eq!(
            held(&both, since, Pending),
            (Some(ago(window + 5_000 - cap)), true)
        );
        assert_eq!(
            held(&both, since, CopiedAt(ago(1_000))),
            (Some(ago(1_000 - spread)), true)
        );
        // A young leaf copied before east reported: the spread from then.
        let young = [
            view("east", true, reported(&r, "east", &["127.0.1.1"])),
            view("west", true, leaf("west", 1_500)),
        ];
        let since = Some(ago(1_000));
        assert_eq!(
            held(&young, since, CopiedAt(ago(1_400))),
            (Some(ago(1_000 - spread)), true)
        );
        assert_eq!(
            held(&young, since, Unknown),
            (Some(ago(1_000 - spread)), true)
        );
        // The syncers remember a first sync longer than it can matter.
        assert!(crate::syncer::copied::RETAIN >= MAX_COPY_WAIT + MAX_REPORT_WINDOW);
    }

    #[test]
    fn the_report_windows_grow_with_how_long_recent_roots_took() {
        let secs = Duration::from_secs;
        assert_eq!(report_windows(None), ReportWindows::default());
        assert_eq!(report_windows(Some(secs(1))), ReportWindows::default());
        assert_eq!(
            report_windows(Some(secs(20))),
            ReportWindows {
                window: secs(30),
                spread: secs(10)
            }
        );
        assert_eq!(
            report_windows(Some(secs(3600))),
            ReportWindows {
                window: MAX_REPORT_WINDOW,
                spread: MAX_REPORT_SPREAD
            }
        );
    }

    #[test]
    fn a_new_global_ingress_carries_the_dns_finalizer_when_a_glbc_is_live() {
        let r = root("");
        let mut world = World::new(vec![cluster("east", "us", true)]);
        let finalizers = |world: &World| world.decide(&r).global_spec.unwrap().finalizers;
        assert_eq!(finalizers(&world), None, "no glbc: nothing would remove it");
        world.glbc_live = true;
        let dns = Some(vec![labels::DNS_FINALIZER.to_string()]);
        assert_eq!(finalizers(&world), dns);
        // An existing one keeps it while it has it, and never gets it from
        // the controller (the glbc adds it); other finalizers are not ours.
        let plan = world.decide(&r);
        let mut created = applied(&plan, None);
        created.metadata.finalizers = Some(vec![labels::DNS_FINALIZER.into(), "other".into()]);
        assert_eq!(global_finalizers(Some(&created.metadata), false), dns);
        created.metadata.finalizers = Some(vec!["other".into()]);
        assert_eq!(global_finalizers(Some(&created.metadata), true), None);
        // A spec that is current is not applied again for the finalizer.
        world.global = Some(applied(&plan, None));
        assert_eq!(world.decide(&r).global_spec, None);
    }

    #[test]
    fn a_cluster_leaving_the_placement_makes_its_leaf_stale() {
        let r = root("region=us");
        let world = World::new(vec![
            cluster("east", "us", true),
            cluster("paris", "eu", true),
        ])
        .with_leaf(reported(&r, "east", &[]))
        .with_leaf(reported(&r, "paris", &[]));
        let plan = world.decide(&r);
        assert!(plan.leaf_writes.is_empty());
        assert_eq!(
            plan.stale_leaves,
            [(
                "kcp-ingress-cluster-paris".to_string(),
                "apps.shop--paris".to_string()
            )]
        );
    }

    #[test]
    fn an_invalid_root_is_not_placed_and_keeps_its_leaves() {
        let r = root("region in (us");
        let world =
            World::new(vec![cluster("east", "us", true)]).with_leaf(reported(&r, "east", &[]));
        let plan = world.decide(&r);
        assert_eq!(plan.ready.reason, "InvalidPlacement");
        assert_eq!(plan.placement, None);
        assert!(plan.leaf_writes.is_empty() && plan.stale_leaves.is_empty());
        assert_eq!(targets_of(&r, &world.clusters, &()), None);

        let mut bad = root("");
        bad.spec.as_mut().unwrap().rules.as_mut().unwrap()[0].host = Some("Shop".into());
        let plan = world.decide(&bad);
        assert_eq!(
            (plan.ready.status.as_str(), plan.ready.reason.as_str()),
            ("False", "InvalidHost")
        );
    }

    #[test]
    fn a_conflict_in_a_target_cluster_makes_dependencies_not_ready() {
        let r = root("region=us");
        let mut world = World::new(vec![
            cluster("east", "us", true),
            cluster("west", "us", true),
            cluster("paris", "eu", true),
        ]);
        world.existing = Ingress::dependencies(&r, &());
        let web = (DepKind::Service, "apps".to_string(), "web".to_string());
        // A conflict in a cluster the root is not placed on does not count.
        world.conflicts.insert(web.clone(), vec!["paris".into()]);
        assert_eq!(world.decide(&r).dependencies.reason, "AllFound");

        world
            .conflicts
            .insert(web, vec!["east".into(), "paris".into(), "west".into()]);
        let plan = world.decide(&r);
        assert!(plan.dependencies_changed);
        assert_eq!(
            (
                plan.dependencies.status.as_str(),
                plan.dependencies.reason.as_str()
            ),
            ("False", "DependencyConflict")
        );
        assert!(
            plan.dependencies
                .message
                .ends_with("Service apps/web in cluster(s) east, west"),
            "{}",
            plan.dependencies.message
        );
        // What is missing is said first.
        world.existing.clear();
        assert_eq!(world.decide(&r).dependencies.reason, "DependencyMissing");
    }

    #[test]
    fn no_matching_cluster_is_not_ready_and_degraded() {
        let world = World::new(vec![cluster("east", "us", true)]);
        let plan = world.decide(&root("region=eu"));
        assert_eq!(
            (plan.ready.status.as_str(), plan.ready.reason.as_str()),
            ("False", "NoMatchingCluster")
        );
        let status = plan.global_status.clone().unwrap();
        let degraded = status
            .conditions
            .iter()
            .find(|c| c.type_ == conditions::DEGRADED)
            .unwrap();
        assert_eq!(
            (degraded.status.as_str(), degraded.reason.as_str()),
            ("True", "NoClusterPlaced")
        );
        assert_eq!(plan.placement.map(|p| p.targets), Some(vec![]));
        assert!(plan.leaf_writes.is_empty());
        assert_eq!(
            Ingress::dependencies(&root(""), &())[0],
            (DepKind::Service, "apps".into(), "web".into())
        );
    }
}
