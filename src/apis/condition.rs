//! Conditions on kcp-ingress objects, kept the Kubernetes way: one entry per
//! type, `lastTransitionTime` moves only when the status changes.
//!
//! Two components may write the same condition type (the controller and the
//! glbc both write `Degraded` on a GlobalIngress). With server-side apply they
//! then share ownership of the entry as long as they write identical content,
//! which is why the content comes from one function here and the transition
//! time is carried over.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::labels::conditions::DEGRADED;
use crate::labels::reasons;

/// A condition of `type_` with status "True" or "False", `lastTransitionTime`
/// taken from `previous` when its status is the same, else `now`.
pub fn condition(
    previous: &[Condition],
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    now: Time,
) -> Condition {
    let status = if status { "True" } else { "False" };
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map_or(now, |c| c.last_transition_time.clone());
    Condition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: reason.to_string(),
        message: message.to_string(),
        last_transition_time,
        observed_generation: None,
    }
}

/// Whether `new`, a verdict about to be written, is a first verdict on the
/// happy path, which gets no Event: the object shows no verdict of its
/// type yet (`shown` is `None`) and `new` is True with one of the `happy`
/// reasons. The condition itself, with its `lastTransitionTime`, shows it
/// (and the component logs it at info): one Event less per new root and
/// component (issue #16). Every later change (`shown` is `Some`) and a first
/// verdict that is not the happy one keep their Events. Read from the
/// object, not from memory: a restarted component decides the same.
pub fn quiet_first_verdict(shown: Option<&Condition>, new: &Condition, happy: &[&str]) -> bool {
    shown.is_none() && new.status == "True" && happy.contains(&new.reason.as_str())
}

/// The `Degraded` condition of a GlobalIngress: true when the root is placed
/// on no cluster, or on clusters none of which is healthy.
pub fn degraded(previous: &[Condition], placed: usize, healthy: usize, now: Time) -> Condition {
    if placed == 0 {
        condition(
            previous,
            DEGRADED,
            true,
            reasons::NO_CLUSTER_PLACED,
            "this Ingress is placed on no cluster: its placement selector matched no \
             schedulable Cluster (or the Ingress is invalid; see Ready); nothing serves it",
            now,
        )
    } else if healthy == 0 {
        condition(
            previous,
            DEGRADED,
            true,
            reasons::NO_HEALTHY_CLUSTER,
            "no cluster of this Ingress is healthy; the last published addresses are kept",
            now,
        )
    } else {
        condition(
            previous,
            DEGRADED,
            false,
            reasons::HEALTHY_CLUSTER_AVAILABLE,
            "",
            now,
        )
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::jiff::Timestamp;

    use super::*;

    fn at(second: i64) -> Time {
        Time(Timestamp::from_second(second).unwrap())
    }

    #[test]
    fn transition_time_moves_only_with_the_status() {
        let first = degraded(&[], 2, 0, at(100));
        assert_eq!(
            (first.status.as_str(), first.last_transition_time.clone()),
            ("True", at(100))
        );
        let same = degraded(std::slice::from_ref(&first), 2, 0, at(200));
        assert_eq!(same, first);
        let flipped = degraded(&[first], 2, 1, at(300));
        assert_eq!(
            (flipped.status.as_str(), flipped.last_transition_time),
            ("False", at(300))
        );
    }

    #[test]
    fn only_a_happy_first_verdict_is_quiet() {
        let ready = |status: bool, reason: &str| {
            condition(
                &[],
                "Ready",
                status,
                reason,
                "placed on 3 cluster(s)",
                at(1),
            )
        };
        let happy = [reasons::PLACED];
        let placed = ready(true, reasons::PLACED);
        // The first verdict, the happy one: no Event.
        assert!(quiet_first_verdict(None, &placed, &happy));
        // A first verdict that is not the happy one: announced.
        let invalid = ready(false, reasons::INVALID_PLACEMENT);
        assert!(!quiet_first_verdict(None, &invalid, &happy));
        let other = ready(true, reasons::NO_CLUSTER_PLACED);
        assert!(!quiet_first_verdict(None, &other, &happy));
        // Any later verdict: announced (whether it changed is the caller's).
        assert!(!quiet_first_verdict(Some(&invalid), &placed, &happy));
        let mut fewer = placed.clone();
        fewer.message = "placed on 1 cluster(s)".into();
        assert!(!quiet_first_verdict(Some(&placed), &fewer, &happy));
    }

    #[test]
    fn a_root_placed_on_no_cluster_is_degraded() {
        let c = degraded(&[], 0, 0, at(1));
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("True", reasons::NO_CLUSTER_PLACED)
        );
        assert!(
            c.message.contains("no schedulable Cluster"),
            "{}",
            c.message
        );
        let healthy = degraded(&[], 1, 1, at(1));
        assert_eq!(
            (healthy.status.as_str(), healthy.reason.as_str()),
            ("False", reasons::HEALTHY_CLUSTER_AVAILABLE)
        );
    }
}
