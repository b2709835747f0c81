//! The roots' periodic resync, without a timer per root. Every root is
//! reconciled once per [`RESYNC`] even when nothing changed (level-based:
//! a change no watch delivered is still found), by one sweep that every
//! [`RESYNC`]` / `[`SLICES`] triggers the roots of one slice (a hash of
//! namespace and name): spread evenly over the period, and nothing kept
//! per root. A settled reconcile then schedules nothing; kube-runtime's
//! scheduler used to hold one entry per root for a 10-minute requeue
//! (its key twice, with the root's resourceVersion and uid: about 560
//! bytes per root, the largest per-root cost outside the stores).

use std::time::Duration;

use futures::channel::mpsc::UnboundedSender;
use kube::runtime::reflector::{ObjectRef, Store};
use tokio::time::MissedTickBehavior;

use crate::runtime::CancellationToken;
use crate::runtime::stored::Stored;

/// How often each root is reconciled without any change.
pub const RESYNC: Duration = Duration::from_secs(600);

/// Into how many slices the roots are divided: one slice is triggered
/// every `RESYNC / SLICES` (10 s).
pub const SLICES: u32 = 60;

/// The slice of the root `namespace/name` (pure: stable within a process).
pub fn slice_of(namespace: &str, name: &str) -> u32 {
    // The remainder is below SLICES, a u32.
    u32::try_from(crate::hash::of(&(namespace, name)) % u64::from(SLICES)).unwrap_or(0)
}

/// Triggers one slice of the roots in `store` every `RESYNC / SLICES`
/// until `token` is cancelled.
pub async fn sweep<K, S: Stored<K>>(
    store: Store<S>,
    trigger: UnboundedSender<ObjectRef<S>>,
    token: CancellationToken,
) {
    let mut tick = tokio::time::interval(RESYNC / SLICES);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // The first tick is at once: every root was just reconciled (the
    // initial list), so the first slice waits a whole period.
    tick.tick().await;
    let mut slice = 0;
    loop {
        tokio::select! {
            () = token.cancelled() => return,
            _ = tick.tick() => {}
        }
        slice = (slice + 1) % SLICES;
        for root in store.state() {
            let ns = root.stored_namespace().unwrap_or_default();
            if slice_of(ns, root.stored_name()) == slice {
                let key = ObjectRef::new(root.stored_name()).within(ns);
                if trigger.unbounded_send(key).is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_root_falls_in_one_slice_and_the_slices_share_them() {
        let mut counts = vec![0u32; SLICES as usize];
        for i in 0..6_000 {
            let slice = slice_of("ns", &format!("root-{i}"));
            assert!(slice < SLICES);
            assert_eq!(slice, slice_of("ns", &format!("root-{i}")));
            counts[slice as usize] += 1;
        }
        // 100 per slice on average: none empty, none more than twice that.
        assert!(counts.iter().all(|c| (1..200).contains(c)), "{counts:?}");
    }
}
