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

/// `kubectl ARGS` with `input` on stdin: its stdout. kubectl must be on
/// PATH (`make e2e` puts it there).
pub fn kubectl(args: &[&str], input: &str) -> anyhow::Result<String> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("kubectl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            anyhow::anyhow!("running kubectl (it must be on PATH: `make e2e` puts it there): {e}")
        })?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| anyhow::anyhow!("kubectl's stdin"))?;
    stdin.write_all(input.as_bytes())?;
    drop(stdin);
    let out = child.wait_with_output()?;
    anyhow::ensure!(
        out.status.success(),
        "kubectl {} failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}
