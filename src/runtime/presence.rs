//! The glbc's presence: a Lease it holds and renews while it works, in the
//! namespace it publishes (`--namespace`), or, publishing every namespace,
//! in its Lease namespace labelled [`labels::GLBC_SCOPE_LABEL`]`=all`. The
//! controller watches these Leases by name and creates a GlobalIngress with
//! the glbc's DNS finalizer already on it when a live glbc publishes the
//! root's namespace (the glbc would add it before anything else: a write
//! saved per root, and no burst of finalizer patches when a glbc starts).
//!
//! [`covers`] and [`location`] are pure; [`Presence::spawn`] is the glbc's
//! loop: it holds the Lease until its token is cancelled, then releases it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::lease::{self, Decision, Elector};
use crate::labels;

/// How long a presence lasts without renewal (renewed every third of it).
pub const DURATION: Duration = Duration::from_secs(30);

/// Where a glbc that publishes `namespace` (`None`: every namespace) keeps
/// its presence Lease, and the labels it carries.
pub fn location(
    namespace: Option<&str>,
    lease_namespace: &str,
) -> (String, BTreeMap<String, String>) {
    match namespace {
        Some(ns) => (ns.to_string(), BTreeMap::new()),
        None => (
            lease_namespace.to_string(),
            BTreeMap::from([(
                labels::GLBC_SCOPE_LABEL.to_string(),
                labels::GLBC_SCOPE_ALL.to_string(),
            )]),
        ),
    }
}

/// Whether one of `leases` (presence Leases, by name) says a live glbc
/// publishes `namespace` at `now`: held, and renewed within its duration.
pub fn covers(leases: &[Arc<Lease>], namespace: &str, now: Timestamp) -> bool {
    leases.iter().any(|l| {
        l.name_any() == labels::GLBC_PRESENCE_LEASE
            && (l.labels().get(labels::GLBC_SCOPE_LABEL).map(String::as_str)
                == Some(labels::GLBC_SCOPE_ALL)
                || l.namespace().as_deref() == Some(namespace))
            && matches!(
                lease::decide(l.spec.as_ref(), "", now),
                Decision::Standby { .. }
            )
    })
}

/// A glbc's presence: where its Lease goes and who holds it.
#[derive(Clone)]
pub struct Presence {
    pub client: kube::Client,
    /// The namespace the glbc publishes (`None`: every namespace).
    pub namespace: Option<String>,
    /// Where the Lease of a glbc that publishes every namespace goes.
    pub lease_namespace: String,
    pub identity: String,
}

impl Presence {
    /// Holds the presence Lease until `token` is cancelled, then releases
    /// it (await the task before exiting).
    pub fn spawn(&self, token: CancellationToken) -> tokio::task::JoinHandle<()> {
        let presence = self.clone();
        tokio::spawn(async move { presence.hold(token).await })
    }

    /// A failure (the namespace does not exist, no permission) is logged
    /// once and retried: without the Lease the controller creates
    /// GlobalIngresses without the finalizer and the glbc adds it, as
    /// before.
    async fn hold(self, token: CancellationToken) {
        let (ns, lease_labels) = location(self.namespace.as_deref(), &self.lease_namespace);
        let where_ = format!("{ns}/{}", labels::GLBC_PRESENCE_LEASE);
        let elector = Elector::new(
            self.client,
            &ns,
            labels::GLBC_PRESENCE_LEASE,
            &self.identity,
            DURATION,
        )
        .with_labels(lease_labels);
        let (mut warned, mut held) = (false, false);
        loop {
            let wait = match elector.step().await {
                Ok((holds, wait)) => {
                    if holds && !held {
                        info!(lease = %where_, "presence announced: GlobalIngresses are created with the DNS finalizer");
                    }
                    (held, warned) = (holds, false);
                    wait
                }
                Err(err) => {
                    if warned {
                        debug!(%err, "cannot renew the glbc's presence Lease");
                    } else {
                        warn!(%err, "cannot hold the glbc's presence Lease: the glbc adds its DNS finalizer to each GlobalIngress itself (a write more per root)");
                        warned = true;
                    }
                    DURATION / 3
                }
            };
            tokio::select! {
                () = token.cancelled() => break,
                () = tokio::time::sleep(wait) => {}
            }
        }
        if held {
            match elector.release().await {
                Ok(()) => info!(lease = %where_, "presence Lease released"),
                Err(err) => warn!(%err, "cannot release the presence Lease"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
    use k8s_openapi::jiff::SignedDuration;
    use kube::api::ObjectMeta;

    use super::*;

    fn lease(
        ns: &str,
        name: &str,
        all: bool,
        holder: Option<&str>,
        renewed: Timestamp,
    ) -> Arc<Lease> {
        let (_, l) = location((!all).then_some(ns), ns);
        Arc::new(Lease {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(ns.into()),
                labels: Some(l),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: holder.map(Into::into),
                renew_time: Some(MicroTime(renewed)),
                lease_duration_seconds: Some(30),
                ..Default::default()
            }),
        })
    }

    #[test]
    fn a_live_glbc_covers_its_namespace_or_every_namespace() {
        let now = Timestamp::from_second(1_000_000).unwrap();
        let fresh = now - SignedDuration::from_secs(10);
        let stale = now - SignedDuration::from_secs(31);
        let p = labels::GLBC_PRESENCE_LEASE;
        let shop = [lease("shop", p, false, Some("g-1"), fresh)];
        assert!(covers(&shop, "shop", now));
        assert!(
            !covers(&shop, "other", now),
            "a namespaced glbc covers its namespace only"
        );
        let all = [lease("kcp-ingress-system", p, true, Some("g-1"), fresh)];
        assert!(covers(&all, "shop", now) && covers(&all, "other", now));
        // Expired, released (no holder), another Lease's name, none at all.
        assert!(!covers(
            &[lease("kcp-ingress-system", p, true, Some("g-1"), stale)],
            "shop",
            now
        ));
        assert!(!covers(
            &[lease("kcp-ingress-system", p, true, None, fresh)],
            "shop",
            now
        ));
        assert!(!covers(
            &[lease("shop", "kcp-ingress-glbc", false, Some("g-1"), fresh)],
            "shop",
            now
        ));
        assert!(!covers(&[], "shop", now));
    }

    #[test]
    fn the_lease_is_where_the_glbc_publishes() {
        let (ns, l) = location(Some("shop"), "kcp-ingress-system");
        assert_eq!((ns.as_str(), l.len()), ("shop", 0));
        let (ns, l) = location(None, "kcp-ingress-system");
        assert_eq!(ns, "kcp-ingress-system");
        assert_eq!(
            l.get(labels::GLBC_SCOPE_LABEL).map(String::as_str),
            Some(labels::GLBC_SCOPE_ALL)
        );
    }
}
