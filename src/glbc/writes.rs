//! The glbc's writes to GlobalIngresses: its DNS finalizer (put on before
//! records are published, removed once they are gone) and its part of the
//! status, with an Event when the `DNSPublished` verdict changes.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use crate::runtime::events::{Event as KubeEvent, EventType, Recorder};
use crate::runtime::finalizers;
use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use tracing::{debug, info, warn};

use super::batch::Batch;
use super::ledger::Ledger;
use super::plan::{self, Plan, RootKey};
use super::records::{DnsName, ZoneRecords};
use super::status::{self, GlbcStatus, StatusInput, ZoneProblem, reason};
use super::traffic::INVALID_PRIORITY;
use crate::apis::condition::quiet_first_verdict;
use crate::apis::{Cluster, GlobalIngress, GlobalIngressStatus};
use crate::labels;

/// Status and finalizer writes in flight at once.
const WRITE_CONCURRENCY: usize = 16;

/// Status writes in one pass at most: a pass with more to write ends after
/// these and the next one starts at once, so that roots created meanwhile
/// are published between batches (a cold start with thousands of roots to
/// report on does not hold a new root back until all are written).
pub const STATUS_WRITES_PER_PASS: usize = 100;

/// What a pass's status writes did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusWrites {
    /// Every write went through.
    pub ok: bool,
    /// More statuses are due than this pass wrote (more than one pass
    /// writes, or the batch was stopped).
    pub more: bool,
}

/// What the zones show, for statuses and releases.
pub struct ZoneView<'a> {
    /// The zones the glbc publishes in.
    pub zones: &'a [DnsName],
    /// What every zone read so far holds.
    pub known: &'a BTreeMap<DnsName, ZoneRecords>,
    pub problems: &'a BTreeMap<DnsName, ZoneProblem>,
    /// Hosts whose records the server refused, with its answer.
    pub refused: &'a BTreeMap<DnsName, String>,
    /// How many times what the server holds was read ([`super::zone::Zones::reads`]).
    pub reads: u64,
    /// Names are shared with other owners (`--shared-names`): their
    /// records change with other roots' edits too.
    pub shared: bool,
}

impl ZoneView<'_> {
    /// What every root's status reads of the zones besides the records of
    /// its own names, as one number: the zones' problems, the refusals and
    /// the reads of the server.
    fn fingerprint(&self) -> u64 {
        crate::hash::of(&(self.problems, self.refused, self.reads))
    }
}

/// Writes to the GlobalIngresses in scope (of one namespace, or all).
pub struct RootWriter {
    client: Client,
    recorder: Recorder,
    namespace: Option<String>,
    /// Status writes a stopped pass left running.
    statuses: Batch<StatusWrite>,
}

impl RootWriter {
    /// A Warning Event on each Cluster of `problems` (`(cluster, message)`).
    pub async fn warn_clusters(&self, clusters: &[Arc<Cluster>], problems: &[(String, String)]) {
        for (name, message) in problems {
            let Some(cluster) = clusters.iter().find(|c| &c.name_any() == name) else {
                continue;
            };
            let event = KubeEvent {
                type_: EventType::Warning,
                reason: INVALID_PRIORITY.into(),
                note: Some(message.chars().take(1024).collect()),
                action: "PlanDNS".into(),
                secondary: None,
            };
            if let Err(err) = self
                .recorder
                .publish(&event, &cluster.object_ref(&()))
                .await
            {
                warn!(cluster = name, %err, "cannot publish an Event");
            }
        }
    }

    /// Applies the glbc's part of each Cluster's status (drains); returns
    /// whether every write succeeded.
    pub async fn write_drains(&self, drains: &[(String, super::drain::DrainStatus)]) -> bool {
        let api: Api<Cluster> = Api::all(self.client.clone());
        let mut ok = true;
        for (name, status) in drains {
            let body = json!({
                "apiVersion": format!("{}/{}", labels::GROUP, labels::VERSION),
                "kind": "Cluster",
                "metadata": {"name": name},
                "status": status,
            });
            match api
                .patch_status(
                    name,
                    &PatchParams::apply(labels::GLBC_MANAGER).force(),
                    &Patch::Apply(body),
                )
                .await
            {
                Ok(_) => {
                    info!(cluster = %name, complete = ?status.drain_complete_time, "drain status written")
                }
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(err) => {
                    warn!(cluster = %name, %err, "cannot write the drain status");
                    ok = false;
                }
            }
        }
        ok
    }

    pub fn new(client: Client, recorder: Recorder, namespace: Option<String>) -> Self {
        Self {
            client,
            recorder,
            namespace,
            statuses: Batch::default(),
        }
    }

    fn in_scope(&self, g: &GlobalIngress) -> bool {
        self.namespace
            .as_deref()
            .is_none_or(|ns| g.namespace().as_deref() == Some(ns))
    }

    /// Puts the DNS finalizer on every live GlobalIngress that lacks it,
    /// before its records are published; whether every write went through.
    pub async fn add_finalizers(&self, globals: &[Arc<GlobalIngress>]) -> bool {
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
                add_finalizer(&api, g).await
            })
            .buffer_unordered(WRITE_CONCURRENCY)
            .collect()
            .await;
        results.iter().all(|ok| *ok)
    }

    /// Removes the DNS finalizer from deleted GlobalIngresses once the DNS
    /// server confirmed that none of their records is left; whether every
    /// write went through.
    pub async fn release(
        &self,
        globals: &[Arc<GlobalIngress>],
        zones: &ZoneView<'_>,
        owner: &str,
    ) -> bool {
        let todo: Vec<(&Arc<GlobalIngress>, usize)> = globals
            .iter()
            .filter(|g| g.metadata.deletion_timestamp.is_some() && self.in_scope(g))
            .filter_map(|g| Some((g, releasable(g, zones, owner)?)))
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
        results.iter().all(|ok| *ok)
    }

    /// Applies the glbc's part of the status of live roots where it differs
    /// from what the object shows (at most [`STATUS_WRITES_PER_PASS`]),
    /// with an Event when the `DNSPublished` verdict changes; whether every
    /// write went through and whether more are due. Once `stop` resolves
    /// (something changed DNS meanwhile) no further write starts and it
    /// returns at once: those in flight run on ([`Batch`]) and are
    /// recorded by the next call, before it looks for what is due.
    pub async fn write_statuses(
        &mut self,
        globals: &[Arc<GlobalIngress>],
        plan: &Plan,
        zones: &ZoneView<'_>,
        ledger: &mut Ledger,
        now: &Time,
        stop: impl Future<Output = ()>,
    ) -> StatusWrites {
        let mut ok = record(ledger, self.statuses.collect().await);
        let (todo, more) = due_statuses(globals, plan, zones, ledger, now, STATUS_WRITES_PER_PASS);
        let due = todo.len();
        let (client, recorder) = (self.client.clone(), self.recorder.clone());
        let ran = self
            .statuses
            .run(
                todo,
                WRITE_CONCURRENCY,
                stop,
                |(g, key, rv, desired, before)| {
                    let (g, client, recorder) = (g.clone(), client.clone(), recorder.clone());
                    async move {
                        let written = write_status(&client, &g, &desired).await;
                        if written.is_some() {
                            announce(&recorder, &g, before.as_ref(), &desired).await;
                        }
                        (key, rv, written)
                    }
                },
            )
            .await;
        let stopped = ran.unfinished > 0;
        if stopped {
            debug!(
                written = due - ran.unfinished,
                in_flight = self.statuses.running(),
                left = ran.unfinished,
                "DNS changed: status writes stopped, the next pass publishes first"
            );
        }
        ok &= record(ledger, ran.done);
        StatusWrites {
            ok,
            more: more || stopped,
        }
    }
}

/// Records finished status writes in the ledger; whether all went through.
fn record(ledger: &mut Ledger, results: Vec<StatusWrite>) -> bool {
    let mut ok = true;
    for (key, rv, written) in results {
        match written {
            // Skip this root until the cache shows the write.
            Some(new_rv) => ledger.wrote(key, rv, &new_rv),
            None => ok = false,
        }
    }
    ok
}

/// A finished status write: the root, the resourceVersion it was written
/// over and, if it went through, the one it made.
type StatusWrite = (RootKey, String, Option<String>);

/// A status write a pass makes: the GlobalIngress, its key, the
/// resourceVersion it is written over, the glbc's status and the
/// `DNSPublished` condition the object showed.
type DueStatus<'g> = (
    &'g Arc<GlobalIngress>,
    RootKey,
    String,
    GlbcStatus,
    Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>,
);

/// The live roots whose status differs from the glbc's part, at most
/// `limit` of them, in the order of `globals`; and whether more are due.
/// Roots whose last write the cache does not show yet are left out.
fn due_statuses<'g>(
    globals: &'g [Arc<GlobalIngress>],
    plan: &Plan,
    zones: &ZoneView<'_>,
    ledger: &mut Ledger,
    now: &Time,
    limit: usize,
) -> (Vec<DueStatus<'g>>, bool) {
    let mut todo = Vec::new();
    let empty = GlobalIngressStatus::default();
    let zones_fingerprint = zones.fingerprint();
    for g in globals {
        let Some(namespace) = g.metadata.namespace.as_deref() else {
            continue;
        };
        let key = RootKey::new(namespace, g.metadata.name.as_deref().unwrap_or_default());
        if g.metadata.deletion_timestamp.is_some() {
            ledger.forget(&key);
            continue;
        }
        let Some(root_plan) = plan.roots.get(&key) else {
            continue;
        };
        let rv = g.metadata.resource_version.as_deref().unwrap_or_default();
        if ledger.awaits_cache(&key, rv) {
            // Our last write has not reached the cache yet.
            continue;
        }
        // The status is a function of the object (its resourceVersion),
        // the root's plan (its digest), the zones and the records of the
        // root's names; those change only when its records are sent (which
        // forgets this), or with the zones' fingerprint. A sharing glbc's
        // names change with other roots' edits as well: always computed.
        // (An orphan's plan, not planned from inputs, has no digest: it
        // is small.)
        let digest = plan
            .planned
            .get(&key)
            .map_or_else(|| crate::hash::of(root_plan), |p| p.digest);
        let fingerprint = crate::hash::of(&(zones_fingerprint, &rv, digest));
        if !zones.shared && ledger.still_shown(&key, fingerprint) {
            continue;
        }
        let previous = g.status.as_ref().unwrap_or(&empty);
        let desired = status::root_status(
            root_plan,
            StatusInput {
                known: zones.known,
                zone_problems: zones.problems,
                refused: zones.refused,
                previous,
                last_sent: ledger.last_sent(&key),
                now,
            },
        );
        if desired.is_shown_in(previous) {
            ledger.found_shown(&key, fingerprint);
            continue;
        }
        if waits_for_controller(previous, &desired) {
            continue;
        }
        if todo.len() == limit {
            return (todo, true);
        }
        let before = previous
            .conditions
            .iter()
            .find(|c| c.type_ == labels::conditions::DNS_PUBLISHED)
            .cloned();
        todo.push((g, key, rv.to_string(), desired, before));
    }
    (todo, false)
}

/// Whether the glbc's status of a GlobalIngress waits for the controller's
/// and its clusters: all the glbc would say is that no cluster reports an
/// address (`NoAddresses`), the root shows no `DNSPublished` verdict and was
/// never published, and either the controller has not reported on it yet
/// (no `Ready` condition), or it has and none of the clusters it lists
/// reports an address while one of them is healthy — they have not
/// reported yet, which is so by definition for a new root. Its first status
/// comes with something to say: one write less per new root, and one more
/// saved when the controller's report window ended before any cluster
/// reported (a bulk of new roots: the clusters report seconds later, and
/// the glbc then writes `Published` once, not `NoAddresses` first). A root
/// placed on no cluster, or on no healthy one, gets its verdict at once.
fn waits_for_controller(previous: &GlobalIngressStatus, desired: &GlbcStatus) -> bool {
    let no_addresses = desired
        .dns_published()
        .is_some_and(|c| c.reason == reason::NO_ADDRESSES);
    if !no_addresses {
        return false;
    }
    let reported_on = previous
        .conditions
        .iter()
        .any(|c| c.type_ == labels::conditions::READY);
    if !reported_on {
        return true;
    }
    let verdict_shown = previous.last_published_time.is_some()
        || previous
            .conditions
            .iter()
            .any(|c| c.type_ == labels::conditions::DNS_PUBLISHED);
    !verdict_shown && previous.awaits_first_address()
}

/// The index of the DNS finalizer of a deleted GlobalIngress, if it may be
/// released: every zone its hosts are in has been read, and no zone still
/// holds an ownership record naming it.
fn releasable(g: &GlobalIngress, zones: &ZoneView<'_>, owner: &str) -> Option<usize> {
    let index = g
        .finalizers()
        .iter()
        .position(|f| f == labels::DNS_FINALIZER)?;
    let key = RootKey::new(&g.namespace()?, &g.name_any());
    let read = g.spec.hosts.iter().all(|h| {
        let zone = DnsName::parse_host(h)
            .ok()
            .and_then(|n| n.zone_in(zones.zones).cloned());
        zone.is_none_or(|z| zones.known.contains_key(&z))
    });
    let gone = zones
        .known
        .values()
        .all(|z| !plan::still_owns(z, owner, &key));
    (read && gone).then_some(index)
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

/// Adds the DNS finalizer to a GlobalIngress whose finalizers are still
/// what the cache shows (a JSON patch that tests them, not the
/// resourceVersion: the controller's status writes meanwhile do not make
/// it fail); whether it went through (a vanished object counts as done).
async fn add_finalizer(api: &Api<GlobalIngress>, g: &GlobalIngress) -> bool {
    let name = g.name_any();
    let patch = finalizers::add_patch(
        g.metadata.uid.as_deref(),
        g.finalizers(),
        labels::DNS_FINALIZER,
    );
    match api
        .patch(&name, &PatchParams::default(), &Patch::Json::<()>(patch))
        .await
    {
        Ok(_) => true,
        Err(kube::Error::Api(status)) if status.code == 404 => true,
        // A failed test (the finalizers or the object changed), or the
        // object is being deleted: the next pass looks again.
        Err(kube::Error::Api(status)) if matches!(status.code, 409 | 422) => {
            debug!(%name, "the GlobalIngress changed meanwhile; will add the DNS finalizer with fresh data");
            false
        }
        Err(err) => {
            warn!(%name, %err, "cannot add the DNS finalizer; retrying");
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
            debug!(
                %namespace,
                %name,
                reason = desired.dns_published().map_or("", |c| c.reason.as_str()),
                records = desired.dns_records.len(),
                targets = desired
                    .dns_records
                    .iter()
                    .filter(|r| r.record_type != "TXT")
                    .map(|r| r.targets.len())
                    .sum::<usize>(),
                "wrote GlobalIngress status"
            );
            Some(updated.resource_version().unwrap_or_default())
        }
        Err(kube::Error::Api(status)) if status.code == 404 => None,
        Err(err) => {
            warn!(%namespace, %name, %err, "cannot write the GlobalIngress status; retrying");
            None
        }
    }
}

/// An Event when the `DNSPublished` verdict changes ([`announcement`]).
async fn announce(
    recorder: &Recorder,
    g: &GlobalIngress,
    before: Option<&Condition>,
    desired: &GlbcStatus,
) {
    let Some(after) = desired.dns_published() else {
        return;
    };
    let type_ = match announcement(before, g.status.as_ref(), after) {
        Announcement::Nothing => return,
        Announcement::Log => {
            info!(
                namespace = g.namespace().unwrap_or_default(),
                name = g.name_any(),
                reason = %after.reason,
                "{} (the first verdict: no Event, the DNSPublished condition shows it)",
                after.message
            );
            return;
        }
        Announcement::Event(type_) => type_,
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

/// What a `DNSPublished` verdict gets when it is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Announcement {
    /// No Event: it did not change, or it passes by itself.
    Nothing,
    /// The root's first verdict, the happy one: a log line at info, no
    /// Event (the condition shows it).
    Log,
    /// An Event of this type.
    Event(EventType),
}

/// What the verdict `after` gets, over the condition the object showed
/// (`before`) and its status: a warning for a problem (not for "pending"
/// or "no addresses yet", which pass by themselves), a normal Event when
/// the records get published (not again for a change among published
/// verdicts) — but only a log line for the root's first verdict when it is
/// the happy one ([`quiet_first_verdict`] over [`first_verdict_shown`]).
fn announcement(
    before: Option<&Condition>,
    status: Option<&GlobalIngressStatus>,
    after: &Condition,
) -> Announcement {
    let changed = before.is_none_or(|b| {
        b.status != after.status || b.reason != after.reason || b.message != after.message
    });
    // Pending and NoAddresses are the normal life of a new root: no Event.
    if !changed || after.reason == reason::PENDING || after.reason == reason::NO_ADDRESSES {
        return Announcement::Nothing;
    }
    let shown = first_verdict_shown(before, status);
    if quiet_first_verdict(shown, after, &[reason::PUBLISHED, reason::NO_HOSTS]) {
        return Announcement::Log;
    }
    if after.status != "True" {
        Announcement::Event(EventType::Warning)
    } else if before.is_some_and(|b| b.status == "True") {
        Announcement::Nothing
    } else {
        Announcement::Event(EventType::Normal)
    }
}

/// The verdict a GlobalIngress shows before a status write, for
/// [`quiet_first_verdict`]: its `DNSPublished` condition (`before`), except
/// "pending" and "no addresses yet" on a root never published (no
/// `lastPublishedTime`), which are no verdict: they never get an Event, and
/// a new root passes through them (e.g. while the glbc reads its zones).
fn first_verdict_shown<'c>(
    before: Option<&'c Condition>,
    status: Option<&GlobalIngressStatus>,
) -> Option<&'c Condition> {
    let published_before = status.is_some_and(|s| s.last_published_time.is_some());
    before.filter(|b| {
        published_before || (b.reason != reason::PENDING && b.reason != reason::NO_ADDRESSES)
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;

    use super::*;
    use crate::apis::GlobalIngressSpec;
    use crate::glbc::records::{NameRecords, RecordKind, Rrset, ownership};

    fn name(s: &str) -> DnsName {
        DnsName::new_unchecked(s)
    }

    fn deleted(hosts: &[&str], finalizers: &[&str]) -> GlobalIngress {
        let mut g = GlobalIngress::new(
            "web",
            GlobalIngressSpec {
                hosts: hosts.iter().map(|h| h.to_string()).collect(),
                root: None,
            },
        );
        g.metadata.namespace = Some("ns".into());
        g.metadata.deletion_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
        g.metadata.finalizers = Some(finalizers.iter().map(|f| f.to_string()).collect());
        g
    }

    /// `z.test` holding an ownership record of `owner` for `root` at `host`.
    fn owned(host: &str, owner: &str, root: &str) -> ZoneRecords {
        let mut zone = ZoneRecords::new(name("z.test"));
        zone.names.insert(
            ownership::name_of(&name(host)).unwrap(),
            NameRecords {
                rrsets: BTreeMap::from([(
                    RecordKind::Txt,
                    Rrset::new(60, [ownership::content(owner, root)]),
                )]),
                others: BTreeSet::new(),
            },
        );
        zone
    }

    #[test]
    fn a_new_root_s_first_dns_verdict_waits_until_a_cluster_reports() {
        use crate::apis::{ClusterIngressStatus, LoadBalancerAddress};
        let at = Time(Timestamp::UNIX_EPOCH);
        let verdict = |why: &str| {
            crate::apis::condition::condition(
                &[],
                labels::conditions::DNS_PUBLISHED,
                why == reason::PUBLISHED,
                why,
                "h",
                at.clone(),
            )
        };
        let glbc = |why: &str| GlbcStatus {
            conditions: vec![verdict(why)],
            ..GlbcStatus::default()
        };
        let cluster = |name: &str, healthy: bool, address: Option<&str>| ClusterIngressStatus {
            cluster: name.into(),
            addresses: address
                .map(|ip| LoadBalancerAddress {
                    ip: Some(ip.into()),
                    ..LoadBalancerAddress::default()
                })
                .into_iter()
                .collect(),
            healthy,
            last_change_time: None,
        };
        let ready = crate::apis::condition::condition(
            &[],
            labels::conditions::READY,
            true,
            labels::reasons::PLACED,
            "placed on 2 cluster(s)",
            at.clone(),
        );
        let reported_on = |clusters: Vec<ClusterIngressStatus>| GlobalIngressStatus {
            clusters,
            conditions: vec![ready.clone()],
            ..GlobalIngressStatus::default()
        };
        let no_addresses = glbc(reason::NO_ADDRESSES);
        // The controller has not reported on it: nothing to say yet.
        assert!(waits_for_controller(
            &GlobalIngressStatus::default(),
            &no_addresses
        ));
        // It has (its report window ended) and no cluster reported yet:
        // the glbc's first verdict waits for an address.
        let awaited = reported_on(vec![cluster("a", true, None), cluster("b", true, None)]);
        assert!(waits_for_controller(&awaited, &no_addresses));
        // Anything else is written at once.
        assert!(!waits_for_controller(&awaited, &glbc(reason::PUBLISHED)));
        assert!(!waits_for_controller(&awaited, &glbc(reason::PENDING)));
        // No healthy cluster, or none placed: a problem to show.
        let unhealthy = reported_on(vec![cluster("a", false, None)]);
        assert!(!waits_for_controller(&unhealthy, &no_addresses));
        assert!(!waits_for_controller(&reported_on(vec![]), &no_addresses));
        // A cluster reports an address the glbc cannot use: shown.
        let reported = reported_on(vec![cluster("a", true, Some("127.0.1.1"))]);
        assert!(!waits_for_controller(&reported, &no_addresses));
        // A root published before, or showing a verdict: its change is shown.
        let published_once = GlobalIngressStatus {
            last_published_time: Some(at.clone()),
            ..awaited.clone()
        };
        assert!(!waits_for_controller(&published_once, &no_addresses));
        let mut shown = awaited.clone();
        shown.conditions.push(verdict(reason::PENDING));
        assert!(!waits_for_controller(&shown, &no_addresses));
    }

    #[test]
    fn a_first_happy_dns_verdict_is_logged_later_changes_get_events() {
        let verdict = |status: bool, why: &str, message: &str| {
            crate::apis::condition::condition(
                &[],
                labels::conditions::DNS_PUBLISHED,
                status,
                why,
                message,
                Time(Timestamp::UNIX_EPOCH),
            )
        };
        let published = verdict(true, reason::PUBLISHED, "3 host(s) published");
        let pending = verdict(false, reason::PENDING, "reading zone z.test");
        let no_addresses = verdict(false, reason::NO_ADDRESSES, "h not published");
        let conflict = verdict(false, reason::CONFLICT, "h: someone else's; not published");
        let never = GlobalIngressStatus::default();
        let once = GlobalIngressStatus {
            last_published_time: Some(Time(Timestamp::UNIX_EPOCH)),
            ..GlobalIngressStatus::default()
        };
        let warning = Announcement::Event(EventType::Warning);
        let normal = Announcement::Event(EventType::Normal);
        // The first verdict, the happy one: a log line, no Event; also
        // after "pending" or "no addresses" on a root never published.
        for status in [None, Some(&never)] {
            assert_eq!(announcement(None, status, &published), Announcement::Log);
            assert_eq!(
                announcement(Some(&pending), status, &published),
                Announcement::Log
            );
            assert_eq!(
                announcement(Some(&no_addresses), status, &published),
                Announcement::Log
            );
        }
        let no_hosts = verdict(true, reason::NO_HOSTS, "the root has no hosts to publish");
        assert_eq!(announcement(None, None, &no_hosts), Announcement::Log);
        // A first verdict that is a problem: a warning.
        assert_eq!(announcement(None, None, &conflict), warning);
        assert_eq!(announcement(Some(&pending), None, &conflict), warning);
        // Later changes keep their Events: published again after a
        // problem, or after "no addresses" on a root published before.
        assert_eq!(announcement(Some(&conflict), None, &published), normal);
        assert_eq!(
            announcement(Some(&no_addresses), Some(&once), &published),
            normal
        );
        assert_eq!(announcement(Some(&published), None, &conflict), warning);
        // Unchanged, passing states, and changes among published verdicts:
        // nothing, as before.
        assert_eq!(
            announcement(Some(&published), None, &published),
            Announcement::Nothing
        );
        assert_eq!(
            announcement(Some(&published), Some(&once), &pending),
            Announcement::Nothing
        );
        let more = verdict(true, reason::PUBLISHED, "4 host(s) published");
        assert_eq!(
            announcement(Some(&published), Some(&once), &more),
            Announcement::Nothing
        );
    }

    #[test]
    fn a_deleted_root_is_released_once_its_zones_are_read_and_hold_nothing_of_it() {
        let zones = [name("z.test")];
        let (problems, refused) = (BTreeMap::new(), BTreeMap::new());
        let check = |g: &GlobalIngress, known: &BTreeMap<DnsName, ZoneRecords>| {
            let view = ZoneView {
                zones: &zones,
                known,
                problems: &problems,
                refused: &refused,
                reads: 0,
                shared: false,
            };
            releasable(g, &view, "me")
        };
        let g = deleted(
            &["a.z.test", "elsewhere.test"],
            &["x", labels::DNS_FINALIZER],
        );

        // The zone was not read yet.
        assert_eq!(check(&g, &BTreeMap::new()), None);
        // It still holds our ownership record naming the root.
        let still = BTreeMap::from([(name("z.test"), owned("a.z.test", "me", "ns/web"))]);
        assert_eq!(check(&g, &still), None);
        // Someone else's record, or another root's, does not hold it back.
        for (owner, root) in [("other", "ns/web"), ("me", "ns/other")] {
            let known = BTreeMap::from([(name("z.test"), owned("a.z.test", owner, root))]);
            assert_eq!(check(&g, &known), Some(1));
        }
        // Without our finalizer there is nothing to release.
        let empty = BTreeMap::from([(name("z.test"), ZoneRecords::new(name("z.test")))]);
        assert_eq!(check(&deleted(&["a.z.test"], &["x"]), &empty), None);
        assert_eq!(check(&g, &empty), Some(1));
    }

    #[test]
    fn a_pass_writes_a_bounded_batch_of_statuses_and_says_more_are_due() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
        let at = Time(Timestamp::UNIX_EPOCH);
        // Five live roots the controller reported on, none with the glbc's
        // part of the status yet.
        let globals: Vec<Arc<GlobalIngress>> = (0..5)
            .map(|i| {
                let mut g = GlobalIngress::new(&format!("r{i}"), GlobalIngressSpec::default());
                g.metadata.namespace = Some("ns".into());
                g.metadata.resource_version = Some("1".into());
                g.status = Some(GlobalIngressStatus {
                    conditions: vec![Condition {
                        type_: labels::conditions::READY.into(),
                        status: "True".into(),
                        reason: "Test".into(),
                        message: String::new(),
                        last_transition_time: at.clone(),
                        observed_generation: None,
                    }],
                    ..GlobalIngressStatus::default()
                });
                Arc::new(g)
            })
            .collect();
        let mut plan = Plan::default();
        for i in 0..5 {
            plan.roots
                .insert(RootKey::new("ns", &format!("r{i}")), Default::default());
        }
        let (zones, known, problems, refused) = (
            [name("z.test")],
            BTreeMap::new(),
            BTreeMap::new(),
            BTreeMap::new(),
        );
        let view = ZoneView {
            zones: &zones,
            known: &known,
            problems: &problems,
            refused: &refused,
            reads: 0,
            shared: false,
        };
        let mut ledger = Ledger::default();
        let names = |todo: &[DueStatus<'_>]| -> Vec<String> {
            todo.iter().map(|t| t.1.name.to_string()).collect()
        };

        let (todo, more) = due_statuses(&globals, &plan, &view, &mut ledger, &at, 2);
        assert_eq!((names(&todo), more), (vec!["r0".into(), "r1".into()], true));
        for (_, key, rv, _, _) in todo {
            ledger.wrote(key, rv, "2");
        }
        // The next pass takes the next batch: the written ones wait for
        // the cache.
        let (todo, more) = due_statuses(&globals, &plan, &view, &mut ledger, &at, 2);
        assert_eq!((names(&todo), more), (vec!["r2".into(), "r3".into()], true));
        let (todo, more) = due_statuses(&globals, &plan, &view, &mut ledger, &at, 2);
        assert_eq!((names(&todo), more), (vec!["r2".into(), "r3".into()], true));
        let (todo, more) = due_statuses(&globals, &plan, &view, &mut ledger, &at, 3);
        assert_eq!(
            (names(&todo), more),
            (vec!["r2".into(), "r3".into(), "r4".into()], false)
        );
    }

    #[test]
    fn a_status_found_shown_is_not_computed_again_until_its_inputs_change() {
        use crate::glbc::plan::{HostOutcome, HostPlan, RootPlan};
        let at = Time(Timestamp::UNIX_EPOCH);
        let key = RootKey::new("ns", "web");
        let (zone, host) = (name("z.test"), name("a.z.test"));
        let owner_name = ownership::name_of(&host).unwrap();
        let (a, txt) = (
            Rrset::new(60, ["127.0.1.1".to_string()]),
            Rrset::new(60, [ownership::content("me", "ns/web")]),
        );
        let mut plan = Plan::default();
        plan.roots.insert(
            key.clone(),
            RootPlan {
                placed: 1,
                healthy: 1,
                hosts: vec![HostPlan {
                    host: "a.z.test".into(),
                    outcome: HostOutcome::Publish {
                        zone: zone.clone(),
                        name: host.clone(),
                        rrsets: BTreeMap::from([(RecordKind::A, a.clone())]),
                        ownership: owner_name.clone(),
                        txt: txt.clone(),
                        retained: false,
                    },
                }],
                ..RootPlan::default()
            },
        );
        // The zone holds the records, the object shows the glbc's status.
        let mut records = owned("a.z.test", "me", "ns/web");
        records.names.insert(
            host.clone(),
            NameRecords {
                rrsets: BTreeMap::from([(RecordKind::A, a)]),
                others: BTreeSet::new(),
            },
        );
        let published = BTreeMap::from([(zone.clone(), records)]);
        let emptied = BTreeMap::from([(zone.clone(), ZoneRecords::new(zone.clone()))]);
        let (zones, problems, refused) = ([zone.clone()], BTreeMap::new(), BTreeMap::new());
        let view = |known, reads| ZoneView {
            zones: &zones,
            known,
            problems: &problems,
            refused: &refused,
            reads,
            shared: false,
        };
        let shown = status::root_status(
            &plan.roots[&key],
            StatusInput {
                known: &published,
                zone_problems: &problems,
                refused: &refused,
                previous: &GlobalIngressStatus::default(),
                last_sent: None,
                now: &at,
            },
        );
        let mut g = GlobalIngress::new("web", GlobalIngressSpec::default());
        g.metadata.namespace = Some("ns".into());
        g.metadata.resource_version = Some("7".into());
        g.status = Some(GlobalIngressStatus {
            dns_records: shown.dns_records.clone(),
            last_published_time: shown.last_published_time.clone(),
            conditions: shown.conditions.clone(),
            ..GlobalIngressStatus::default()
        });
        let globals = vec![Arc::new(g)];
        let mut ledger = Ledger::default();
        let due = |ledger: &mut Ledger, view: &ZoneView<'_>| {
            due_statuses(&globals, &plan, view, ledger, &at, 10).0.len()
        };

        assert_eq!(due(&mut ledger, &view(&published, 0)), 0, "shown");
        // The records of a root's names change only when the glbc sends
        // them, or when it reads the zone: a pass in between does not
        // compute the status again (were it computed, it would be due:
        // the records are gone).
        assert_eq!(due(&mut ledger, &view(&emptied, 0)), 0);
        assert_eq!(due(&mut ledger, &view(&emptied, 1)), 1, "the zone was read");
        ledger.found_shown(&key, 0);
        assert_eq!(
            due(&mut ledger, &view(&emptied, 0)),
            1,
            "another fingerprint"
        );
        // Found shown again, then its records are sent.
        assert_eq!(due(&mut ledger, &view(&published, 0)), 0);
        assert_eq!(due(&mut ledger, &view(&emptied, 0)), 0);
        ledger.sent(key.clone(), &at);
        assert_eq!(due(&mut ledger, &view(&emptied, 0)), 1, "records sent");
        // A sharing glbc computes it every time.
        assert_eq!(due(&mut ledger, &view(&published, 0)), 0);
        let shared = ZoneView {
            shared: true,
            ..view(&emptied, 0)
        };
        assert_eq!(due(&mut ledger, &shared), 1);
    }
}
