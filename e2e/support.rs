//! Small helpers shared by the test groups.

use std::future::Future;
use std::time::{Duration, Instant};

/// Polls `check` every 100 ms until it returns `Ok(Some(value))`, and returns
/// that value; fails with the last reason `check` gave (`Ok(None)` counts as
/// "not yet", an `Err` as "not yet, because ...") once `deadline` has passed.
/// This is how tests wait: never a fixed sleep.
pub async fn eventually<T, F, Fut>(
    what: &str,
    deadline: Duration,
    mut check: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let start = Instant::now();
    loop {
        let last = match check().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => "condition not met yet".to_string(),
            Err(err) => format!("{err:#}"),
        };
        if start.elapsed() >= deadline {
            anyhow::bail!("{what}: not reached within {deadline:?}; last: {last}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
