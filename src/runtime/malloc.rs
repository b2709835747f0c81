//! How a long-running process asks glibc's malloc to hand freed memory back
//! (issue #16, memory): the allocator stays glibc's, only its thresholds
//! and a periodic trim change.
//!
//! By default glibc raises its mmap threshold each time a large mmapped
//! block is freed (up to 32 MiB on 64-bit): after the first big list page
//! or HTTP buffer is freed, later ones of that size come from the heap
//! instead, and when they are freed their pages stay resident among the
//! small objects the caches keep (the heap is only returned from its top).
//! In a bulk, the controller's resident memory therefore grows well past
//! what it holds live. Fixed thresholds keep large blocks in mmap (given
//! back on free) and trim the heap's top eagerly; a trim every
//! [`TRIM_EVERY`] returns the free pages inside the heap too
//! (`malloc_trim` releases every whole free page of every arena).
//!
//! Elsewhere than on glibc (musl, macOS) all of this does nothing.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Blocks of at least this many bytes are mmapped (and unmapped on free).
pub const MMAP_THRESHOLD: usize = 128 * 1024;
/// The heap's free top is given back once it exceeds this many bytes.
pub const TRIM_THRESHOLD: usize = 1024 * 1024;
/// How often the free pages inside the heap are given back.
pub const TRIM_EVERY: Duration = Duration::from_secs(5);

/// Sets the thresholds (see the module docs); call once, early in `main`
/// before other threads allocate much. Returns whether glibc took both.
pub fn tune() -> bool {
    imp::tune()
}

/// Gives the free pages of every arena back to the system, every
/// [`TRIM_EVERY`], until `shutdown`.
pub async fn trim_periodically(shutdown: CancellationToken) {
    if !imp::AVAILABLE {
        return;
    }
    let mut every = tokio::time::interval(TRIM_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        // A walk of the arenas' free lists under their locks: a few
        // milliseconds for a heap of a hundred megabytes; off the runtime's
        // worker threads.
        let _ = tokio::task::spawn_blocking(imp::trim).await;
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod imp {
    use std::os::raw::c_int;

    pub const AVAILABLE: bool = true;

    // glibc's <malloc.h>.
    const M_TRIM_THRESHOLD: c_int = -1;
    const M_MMAP_THRESHOLD: c_int = -3;

    unsafe extern "C" {
        fn mallopt(param: c_int, value: c_int) -> c_int;
        fn malloc_trim(pad: usize) -> c_int;
    }

    pub fn tune() -> bool {
        let (mmap, trim) = (
            c_int::try_from(super::MMAP_THRESHOLD).unwrap_or(c_int::MAX),
            c_int::try_from(super::TRIM_THRESHOLD).unwrap_or(c_int::MAX),
        );
        // SAFETY: mallopt only sets allocator parameters; any value is
        // accepted or refused (0), and both calls are thread-safe.
        unsafe { mallopt(M_MMAP_THRESHOLD, mmap) == 1 && mallopt(M_TRIM_THRESHOLD, trim) == 1 }
    }

    pub fn trim() {
        // SAFETY: malloc_trim only returns free memory to the system; it
        // takes each arena's lock and is safe to call from any thread.
        unsafe {
            malloc_trim(0);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod imp {
    pub const AVAILABLE: bool = false;

    pub fn tune() -> bool {
        false
    }

    pub fn trim() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glibc_takes_the_thresholds_and_a_trim_keeps_memory_usable() {
        assert_eq!(tune(), imp::AVAILABLE);
        let big: Vec<Vec<u8>> = (0..64).map(|i| vec![i; 64 * 1024]).collect();
        drop(big);
        imp::trim();
        let again: Vec<u8> = vec![7; 1 << 20];
        assert!(again.iter().all(|&b| b == 7));
    }

    #[tokio::test]
    async fn the_trim_task_ends_at_shutdown() {
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), trim_periodically(shutdown))
            .await
            .expect("ends at once");
    }
}
