//! Leader election with a coordination.k8s.io Lease, so that two replicas of
//! a component can run and only one writes.
//!
//! The decision is pure ([`decide`]); [`Elector`] reads the Lease, decides,
//! and writes with the resourceVersion it read, so that of two candidates
//! racing for an expired Lease exactly one wins.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::sync::watch;
use tracing::{info, warn};

use tokio_util::sync::CancellationToken;

/// What a candidate should do about a Lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nobody holds it (or the holder let it expire): take it.
    Acquire,
    /// We hold it: renew it.
    Renew,
    /// Someone else holds it until `until`: wait.
    Standby { holder: String, until: Timestamp },
}

/// Decides from the Lease as read (`None`: it does not exist) at `now`.
pub fn decide(lease: Option<&LeaseSpec>, me: &str, now: Timestamp) -> Decision {
    let Some(spec) = lease else {
        return Decision::Acquire;
    };
    let holder = spec.holder_identity.as_deref().unwrap_or("");
    if holder.is_empty() {
        return Decision::Acquire;
    }
    if holder == me {
        return Decision::Renew;
    }
    let (Some(MicroTime(renewed)), Some(seconds)) = (&spec.renew_time, spec.lease_duration_seconds)
    else {
        return Decision::Acquire;
    };
    let until = *renewed + SignedDuration::from_secs(i64::from(seconds.max(0)));
    if until <= now {
        Decision::Acquire
    } else {
        Decision::Standby {
            holder: holder.to_string(),
            until,
        }
    }
}

/// Errors of leader election.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("cannot read or write Lease {namespace}/{name}: {source}")]
    Api {
        namespace: String,
        name: String,
        source: kube::Error,
    },
}

/// One candidate for one Lease.
pub struct Elector {
    api: Api<Lease>,
    namespace: String,
    name: String,
    identity: String,
    duration: Duration,
    /// Labels the Lease carries (set on every write).
    labels: BTreeMap<String, String>,
}

impl Elector {
    pub fn new(
        client: kube::Client,
        namespace: &str,
        name: &str,
        identity: &str,
        duration: Duration,
    ) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_string(),
            name: name.to_string(),
            identity: identity.to_string(),
            duration,
            labels: BTreeMap::new(),
        }
    }

    /// Labels the Lease carries, put on with every write.
    pub fn with_labels(mut self, labels: BTreeMap<String, String>) -> Self {
        self.labels = labels;
        self
    }

    fn error(&self, source: kube::Error) -> LeaseError {
        LeaseError::Api {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            source,
        }
    }

    /// One round: returns whether we hold the Lease afterwards, and how
    /// long to wait before the next round.
    pub async fn step(&self) -> Result<(bool, Duration), LeaseError> {
        let now = Timestamp::now();
        let current = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(|e| self.error(e))?;
        let renew_every = self.duration / 3;
        match decide(
            current.as_ref().and_then(|l| l.spec.as_ref()),
            &self.identity,
            now,
        ) {
            Decision::Standby { until, .. } => {
                let wait = until
                    .duration_since(now)
                    .unsigned_abs()
                    .min(renew_every)
                    .max(Duration::from_millis(100));
                Ok((false, wait))
            }
            decision => {
                let acquiring = decision == Decision::Acquire;
                let previous = current
                    .as_ref()
                    .and_then(|l| l.spec.clone())
                    .unwrap_or_default();
                let spec = LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(
                        i32::try_from(self.duration.as_secs().max(1)).unwrap_or(i32::MAX),
                    ),
                    renew_time: Some(MicroTime(now)),
                    acquire_time: if acquiring {
                        Some(MicroTime(now))
                    } else {
                        previous.acquire_time.clone()
                    },
                    lease_transitions: Some(
                        previous.lease_transitions.unwrap_or(0)
                            + i32::from(acquiring && current.is_some()),
                    ),
                    ..previous
                };
                let won = match current {
                    None => {
                        let lease = Lease {
                            metadata: ObjectMeta {
                                name: Some(self.name.clone()),
                                namespace: Some(self.namespace.clone()),
                                labels: (!self.labels.is_empty()).then(|| self.labels.clone()),
                                ..Default::default()
                            },
                            spec: Some(spec),
                        };
                        self.api.create(&PostParams::default(), &lease).await
                    }
                    Some(mut lease) => {
                        // Keeps the resourceVersion read above: a concurrent
                        // writer makes this fail with 409 instead of both winning.
                        lease.spec = Some(spec);
                        if !self.labels.is_empty() {
                            lease
                                .metadata
                                .labels
                                .get_or_insert_with(Default::default)
                                .extend(self.labels.clone());
                        }
                        self.api
                            .replace(&self.name, &PostParams::default(), &lease)
                            .await
                    }
                };
                match won {
                    Ok(_) => Ok((true, renew_every)),
                    Err(kube::Error::Api(e)) if e.code == 409 => {
                        Ok((false, Duration::from_millis(200)))
                    }
                    Err(e) => Err(self.error(e)),
                }
            }
        }
    }

    /// Gives the Lease up at once (on a graceful stop), if we hold it.
    pub async fn release(&self) -> Result<(), LeaseError> {
        let Some(mut lease) = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(|e| self.error(e))?
        else {
            return Ok(());
        };
        let Some(spec) = lease.spec.as_mut() else {
            return Ok(());
        };
        if spec.holder_identity.as_deref() != Some(&self.identity) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.renew_time = None;
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => Ok(()),
            Err(e) => Err(self.error(e)),
        }
    }

    /// Campaigns until `shutdown`: the returned channel says whether we lead.
    /// Leadership is dropped (false) as soon as a renewal fails past the
    /// Lease's duration. On shutdown a held Lease is released.
    /// The task ends once a held Lease is released: await it before exiting.
    pub fn run(
        self,
        shutdown: CancellationToken,
    ) -> (watch::Receiver<bool>, tokio::task::JoinHandle<()>) {
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut last_renewed = tokio::time::Instant::now();
            loop {
                let wait = match self.step().await {
                    Ok((leading, wait)) => {
                        if leading {
                            last_renewed = tokio::time::Instant::now();
                        }
                        if leading != *tx.borrow() {
                            info!(lease = %self.name, identity = %self.identity, leading, "leadership changed");
                        }
                        tx.send_replace(leading);
                        wait
                    }
                    Err(err) => {
                        warn!(%err, "leader election round failed");
                        if *tx.borrow() && last_renewed.elapsed() >= self.duration {
                            warn!(lease = %self.name, "could not renew within the lease duration; stepping down");
                            tx.send_replace(false);
                        }
                        Duration::from_secs(1)
                    }
                };
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
            if *tx.borrow() {
                tx.send_replace(false);
                match self.release().await {
                    Ok(()) => info!(lease = %self.name, "released the lease"),
                    Err(err) => warn!(%err, "cannot release the lease"),
                }
            }
        });
        (rx, task)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: Option<&str>, renewed: i64, seconds: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: holder.map(str::to_string),
            renew_time: Some(MicroTime(Timestamp::from_second(renewed).unwrap())),
            lease_duration_seconds: Some(seconds),
            ..Default::default()
        }
    }

    #[test]
    fn decisions() {
        let now = Timestamp::from_second(1_000).unwrap();
        assert_eq!(decide(None, "a", now), Decision::Acquire);
        assert_eq!(
            decide(Some(&spec(None, 990, 15)), "a", now),
            Decision::Acquire
        );
        assert_eq!(
            decide(Some(&spec(Some("a"), 990, 15)), "a", now),
            Decision::Renew
        );
        assert_eq!(
            decide(Some(&spec(Some("b"), 990, 15)), "a", now),
            Decision::Standby {
                holder: "b".into(),
                until: Timestamp::from_second(1_005).unwrap()
            }
        );
        assert_eq!(
            decide(Some(&spec(Some("b"), 980, 15)), "a", now),
            Decision::Acquire
        );
        assert_eq!(
            decide(Some(&spec(Some("b"), 985, 15)), "a", now),
            Decision::Acquire
        );
    }
}
