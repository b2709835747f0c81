//! One object followed by name (the Cluster, the kubeconfig Secret): a
//! [`Watch`] with a field selector, read from its store on each change.

use std::fmt::Debug;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use kube::Resource;
use serde::de::DeserializeOwned;

use tokio_util::sync::CancellationToken;

use super::readiness::Readiness;
use super::watch::{Change, Watch};

/// What is known of the followed object after a change.
#[derive(Debug)]
pub enum Tracked<K> {
    /// The object, as the store holds it now.
    Present(Arc<K>),
    /// The store holds nothing (after a (re)list or a deletion).
    Absent,
    /// The watch failed (the message says why); the runtime retries it.
    Failed(String),
}

/// What `watch` (which should select one object, e.g. with the field
/// selector `metadata.name=<name>`) shows of its object, after each change;
/// the stream ends at `shutdown`. The first item comes with the first list.
pub fn track<K>(
    watch: Watch<K>,
    readiness: &Readiness,
    shutdown: &CancellationToken,
) -> impl Stream<Item = Tracked<K>> + Send + 'static
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Clone + Eq + std::hash::Hash + Send + Sync,
{
    let (store, changes) = watch.changes(readiness, shutdown);
    changes.filter_map(move |change| {
        let seen = match change {
            Change::Applied { .. } | Change::Deleted(_) | Change::Relisted => Some(
                store
                    .state()
                    .into_iter()
                    .next()
                    .map_or(Tracked::Absent, Tracked::Present),
            ),
            Change::Failed(message) => Some(Tracked::Failed(message)),
            Change::Restored => None,
        };
        futures::future::ready(seen)
    })
}
