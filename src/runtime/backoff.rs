//! The one retry schedule of the process: 250 ms doubling per consecutive
//! failure, up to a cap that each caller chooses for what it retries.

use std::time::Duration;

/// The first retry's delay.
pub const BASE: Duration = Duration::from_millis(250);

/// The delay before retry number `failures` (1 for the first), at most `cap`.
pub fn backoff(failures: u32, cap: Duration) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    BASE.saturating_mul(1 << doublings).min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_the_base_up_to_the_cap() {
        let cap = Duration::from_secs(10);
        assert_eq!(backoff(0, cap), BASE);
        assert_eq!(backoff(1, cap), Duration::from_millis(250));
        assert_eq!(backoff(2, cap), Duration::from_millis(500));
        assert_eq!(backoff(5, cap), Duration::from_secs(4));
        assert_eq!(backoff(6, cap), Duration::from_secs(8));
        assert_eq!(backoff(7, cap), cap);
        assert_eq!(backoff(u32::MAX, cap), cap);
        assert_eq!(
            backoff(u32::MAX, Duration::from_secs(300)),
            Duration::from_secs(300)
        );
    }
}
