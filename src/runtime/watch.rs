//! The one place that watches: a reflector feeding a store, with the
//! default backoff, tied to a readiness handle and to the process's shutdown
//! signal, handing each change to its consumer after the store has taken it
//! in. No component writes a watch loop of its own.
//!
//! ```ignore
//! let ingresses = Watch::new("ingresses", Api::<Ingress>::all(client))
//!     .without_managed_fields()
//!     .spawn(&readiness, &shutdown, move |change| route(change));
//! ```

use std::fmt::Debug;
use std::hash::Hash;
use std::pin::pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{ObjectRef, Store, store::Writer};
use kube::runtime::watcher::{self, Event, watcher};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tracing::{debug, info, warn};

use super::readiness::Readiness;
use super::stored::Stored;
use crate::labels;
use tokio_util::sync::CancellationToken;

/// A change seen by a watch, handed over after the store has taken it in;
/// `S` is what the store keeps of an object (the object itself, or its
/// [`super::compact::Compact`] form).
#[derive(Debug, Clone)]
pub enum Change<K, S = K> {
    /// An object was added or modified; `old` is what the store held before.
    Applied { old: Option<Arc<S>>, new: K },
    /// An object was deleted.
    Deleted(K),
    /// A full (re)list replaced the store: objects that went away while the
    /// watch was down left it without a `Deleted`.
    Relisted,
    /// The watch failed (the message says why); it is retried with the
    /// default backoff, and the store keeps what it had.
    Failed(String),
    /// The watch works again after one or more `Failed`.
    Restored,
}

/// A watch to start: what to watch, how, and under which name it is logged.
pub struct Watch<K: Resource> {
    what: String,
    api: Api<K>,
    config: watcher::Config,
    dyntype: K::DynamicType,
    keep_managed_fields: bool,
    /// What else to drop (or fold) before an object is stored.
    slim: Option<fn(&mut K)>,
}

impl<K> Watch<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    /// Watches every object `api` lists; `what` names it in logs.
    pub fn new(what: impl Into<String>, api: Api<K>) -> Self {
        Self::with_dyntype(what, api, ())
    }
}

impl<K> Watch<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Clone + Eq + Hash + Send + Sync,
{
    /// Like [`Watch::new`], for a type known at run time (`DynamicObject`).
    pub fn with_dyntype(what: impl Into<String>, api: Api<K>, dyntype: K::DynamicType) -> Self {
        Self {
            what: what.into(),
            api,
            config: watcher::Config::default(),
            dyntype,
            keep_managed_fields: true,
            slim: None,
        }
    }

    /// Label and field selectors, page size and the like.
    pub fn config(mut self, config: watcher::Config) -> Self {
        self.config = config;
        self
    }

    /// Drops managedFields, and kubectl's last-applied record (a second copy
    /// of the object, never copied anywhere), before an object is stored or
    /// handed over: about half a typical object's size, for a consumer that
    /// never reads them.
    pub fn without_managed_fields(mut self) -> Self {
        self.keep_managed_fields = false;
        self
    }

    /// Applies `slim` to every object after the watch has read it (its
    /// resourceVersion included) and before it is stored or handed over.
    pub fn slim(mut self, slim: fn(&mut K)) -> Self {
        self.slim = Some(slim);
        self
    }

    /// Starts the watch on its own task until `shutdown`; `on_change` sees
    /// every change after the store has taken it in. The store counts as
    /// ready for `readiness` once it holds its first full list.
    pub fn spawn(
        self,
        readiness: &Readiness,
        shutdown: &CancellationToken,
        on_change: impl FnMut(Change<K>) + Send + 'static,
    ) -> Store<K> {
        let (store, task) = self.task(readiness, shutdown, on_change);
        tokio::spawn(task);
        store
    }

    /// Like [`Watch::spawn`], but hands back the task to run (in a
    /// `JoinSet`, say) instead of spawning it.
    pub fn task(
        self,
        readiness: &Readiness,
        shutdown: &CancellationToken,
        mut on_change: impl FnMut(Change<K>) + Send + 'static,
    ) -> (Store<K>, impl Future<Output = ()> + Send + 'static) {
        let (store, changes) = self.changes(readiness, shutdown);
        let task = async move {
            let mut changes = pin!(changes);
            while let Some(change) = changes.next().await {
                on_change(change);
            }
        };
        (store, task)
    }

    /// The store and the stream of its changes, for a consumer that awaits
    /// between changes. The stream ends at `shutdown`; the watch makes
    /// progress only while the stream is polled.
    pub fn changes(
        self,
        readiness: &Readiness,
        shutdown: &CancellationToken,
    ) -> (Store<K>, impl Stream<Item = Change<K>> + Send + 'static) {
        self.changes_as(readiness, shutdown, |writer, event| {
            writer.apply_watcher_event(event)
        })
    }

    /// Like [`Watch::changes`], with a store of `S` that `feed` feeds
    /// with each event (the object itself, or a form of it); the changes
    /// still carry the objects as read.
    fn changes_as<S>(
        self,
        readiness: &Readiness,
        shutdown: &CancellationToken,
        feed: fn(&mut Writer<S>, &Event<K>),
    ) -> (Store<S>, impl Stream<Item = Change<K, S>> + Send + 'static)
    where
        S: Resource<DynamicType = K::DynamicType> + Clone + Send + Sync + 'static,
    {
        let Watch {
            what,
            api,
            config,
            dyntype,
            keep_managed_fields,
            slim,
        } = self;
        let mut writer = Writer::new(dyntype.clone());
        let reader = writer.as_reader();
        let store = writer.as_reader();
        let mut ready = Some(readiness.register(&what));
        let events = watcher(api, config)
            .modify(move |o: &mut K| {
                if !keep_managed_fields {
                    let meta = o.meta_mut();
                    meta.managed_fields = None;
                    if let Some(annotations) = meta.annotations.as_mut() {
                        annotations.remove(labels::KUBECTL_LAST_APPLIED_ANNOTATION);
                    }
                }
                if let Some(slim) = slim {
                    slim(o);
                }
            })
            .default_backoff()
            .take_until(shutdown.clone().cancelled_owned());
        let mut failing = false;
        let changes = events
            .map(move |event| {
                let mut changes = Vec::with_capacity(2);
                let event = match event {
                    Ok(event) => event,
                    Err(err) => {
                        if failing {
                            debug!(what, %err, "watch still failing");
                        } else {
                            warn!(what, %err, "watch failed; retrying with backoff");
                            failing = true;
                        }
                        changes.push(Change::Failed(err.to_string()));
                        return changes;
                    }
                };
                if std::mem::take(&mut failing) {
                    info!(what, "watch restored");
                    changes.push(Change::Restored);
                }
                let old = match &event {
                    Event::Apply(obj) => {
                        let key = ObjectRef::<S>::new_with(&obj.name_any(), dyntype.clone());
                        reader.get(&match obj.meta().namespace.as_deref() {
                            Some(ns) => key.within(ns),
                            None => key,
                        })
                    }
                    _ => None,
                };
                feed(&mut writer, &event);
                match event {
                    Event::Apply(new) => changes.push(Change::Applied { old, new }),
                    Event::Delete(obj) => changes.push(Change::Deleted(obj)),
                    Event::InitDone => {
                        debug!(what, objects = reader.len(), "listed");
                        if let Some(ready) = ready.take() {
                            ready.mark();
                        }
                        changes.push(Change::Relisted);
                    }
                    Event::Init | Event::InitApply(_) => {}
                }
                changes
            })
            .flat_map(futures::stream::iter);
        (store, changes)
    }
}

impl<K> Watch<K>
where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::Serialize
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static,
{
    /// Like [`Watch::changes`], with a store that keeps each object in the
    /// form `S` (made after `slim`); the changes still carry the objects
    /// as read.
    pub fn stored_changes<S: Stored<K>>(
        self,
        readiness: &Readiness,
        shutdown: &CancellationToken,
    ) -> (Store<S>, impl Stream<Item = Change<K, S>> + Send + 'static) {
        self.changes_as(readiness, shutdown, |writer, event| {
            writer.apply_watcher_event(&stored_event(event))
        })
    }
}

/// `event` with its objects in the form `S`.
fn stored_event<K, S: Stored<K>>(event: &Event<K>) -> Event<S> {
    match event {
        Event::Apply(o) => Event::Apply(S::store(o)),
        Event::Delete(o) => Event::Delete(S::store(o)),
        Event::Init => Event::Init,
        Event::InitApply(o) => Event::InitApply(S::store(o)),
        Event::InitDone => Event::InitDone,
    }
}
