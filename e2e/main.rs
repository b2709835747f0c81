//! End-to-end tests against real servers: etcd, kube-apiservers and BIND 9,
//! started once for the whole run by `hack/test-env.sh` and stopped at the
//! end, whatever the outcome. On failure the servers' logs are printed.

mod env;
mod smoke;

use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use libtest_mimic::{Arguments, Failed, Trial};

use crate::env::TestEnv;

/// Physical clusters in the environment (besides the control plane).
const CLUSTERS: usize = 3;
/// No single test may take longer than this.
const TEST_DEADLINE: Duration = Duration::from_secs(180);

/// A test: `async fn(&TestEnv) -> anyhow::Result<()>`, boxed.
type TestFn = Box<
    dyn FnOnce(Arc<TestEnv>) -> Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>> + Send,
>;

/// Names and boxes `async fn test(&TestEnv) -> anyhow::Result<()>` functions.
macro_rules! tests {
    [$($test:path),* $(,)?] => {
        vec![$((
            stringify!($test),
            Box::new(|env: Arc<TestEnv>| {
                Box::pin(async move { $test(&env).await })
                    as Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>
            }) as TestFn,
        )),*]
    };
}

fn all_tests() -> Vec<(&'static str, TestFn)> {
    tests![
        smoke::ingress_round_trip_in_every_apiserver,
        smoke::control_plane_serves_both_crds,
        smoke::tsig_signed_update_is_applied_and_answered,
        smoke::update_with_wrong_tsig_secret_is_refused,
    ]
}

fn main() -> ExitCode {
    let args = Arguments::from_args();
    let tests = all_tests();
    if args.list {
        // Listing needs no servers.
        let trials = tests
            .into_iter()
            .map(|(name, _)| Trial::test(name, || Ok(())))
            .collect();
        libtest_mimic::run(&args, trials).exit();
    }
    let env = match TestEnv::up(CLUSTERS) {
        Ok(env) => Arc::new(env),
        Err(err) => {
            eprintln!("e2e: cannot start the test environment: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    let trials = tests
        .into_iter()
        .map(|(name, test)| {
            let env = Arc::clone(&env);
            Trial::test(name, move || block_on(test(env)))
        })
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    if conclusion.has_failed() {
        env.print_logs();
    }
    env.down();
    if conclusion.has_failed() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Runs one async test on its own runtime, under [`TEST_DEADLINE`].
fn block_on(test: impl Future<Output = anyhow::Result<()>>) -> Result<(), Failed> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failed::from(format!("cannot build a tokio runtime: {e}")))?;
    runtime.block_on(async {
        match tokio::time::timeout(TEST_DEADLINE, test).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => Err(Failed::from(format!("{err:#}"))),
            Err(_) => Err(Failed::from(format!("no result within {TEST_DEADLINE:?}"))),
        }
    })
}
