//! How a syncer runs, the same for every cluster of a process, and the
//! checks of the flags that set it (pure).

use std::sync::Arc;
use std::time::Duration;

use super::error::SyncerError;
use super::naming::ResourceSpec;
use super::shared::SharedCaches;
use crate::runtime::metrics::Metrics;

/// How a syncer runs, the same for every cluster of a process.
#[derive(Clone)]
pub struct Settings {
    pub specs: Vec<ResourceSpec>,
    pub heartbeat_interval: Duration,
    /// How long an unused namespace the syncer created stays downstream.
    pub namespace_grace: Duration,
    /// Where the count of synced objects goes, when the process serves metrics.
    pub metrics: Option<Arc<Metrics>>,
    /// The controller's caches a push-mode syncer reads instead of
    /// watching (none in pull mode).
    pub shared: SharedCaches,
}

/// A Cluster name must fit in a label value and a label key's name part.
pub fn check_cluster_name(name: &str) -> Result<(), SyncerError> {
    let err = |why| Err(SyncerError::ClusterName(name.to_string(), why));
    if name.is_empty() || name.len() > 63 {
        return err("must be 1 to 63 characters (it becomes part of label keys)");
    }
    let ok = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
    let ends = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if !ok || !ends(name.chars().next()) || !ends(name.chars().last()) {
        return err("must be letters, digits, '-', '.' or '_', starting and ending alphanumeric");
    }
    Ok(())
}

/// The heartbeat interval must leave room for probes between beats.
pub fn check_interval(interval: Duration) -> Result<(), SyncerError> {
    if interval < Duration::from_millis(100) {
        return Err(SyncerError::HeartbeatInterval);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_names_fit_in_labels() {
        assert!(check_cluster_name("cluster-1").is_ok());
        assert!(check_cluster_name("eu.west_1").is_ok());
        for bad in ["", "-a", "a-", "a/b", "A B", &"x".repeat(64)] {
            assert!(check_cluster_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn heartbeat_interval_must_be_usable() {
        assert!(check_interval(Duration::ZERO).is_err());
        assert!(check_interval(Duration::from_secs(10)).is_ok());
    }
}
