//! End-to-end tests against real servers: etcd, kube-apiservers and BIND 9.
//!
//! Tests come in groups; each group gets its own environment from
//! `hack/test-env.sh` (so groups cannot see each other's Clusters or DNS
//! records), started before its first test and stopped after its last,
//! whatever the outcome. The tests of a group run in parallel and must keep
//! to their own namespaces, names and placement labels. On failure the
//! group's server and process logs are printed.

mod controller;
mod embedded;
mod env;
mod explain;
mod gateway;
mod gateway_flow;
mod glbc;
mod rbac;
mod smoke;
#[allow(dead_code, reason = "used by the component test groups")]
mod support;
mod syncer;
mod traffic;

use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use libtest_mimic::{Arguments, Failed, Trial};

use crate::env::TestEnv;

/// No single test may take longer than this.
const TEST_DEADLINE: Duration = Duration::from_secs(240);

/// A test: `async fn(&TestEnv) -> anyhow::Result<()>`, boxed.
type TestFn = Box<
    dyn FnOnce(Arc<TestEnv>) -> Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>> + Send,
>;

/// Tests that share one environment.
struct Group {
    name: &'static str,
    /// Physical clusters in the group's environment.
    clusters: usize,
    /// Run the group's tests one at a time (e.g. each starts its own
    /// controller, and two controllers would fight over the same objects).
    serial: bool,
    tests: Vec<(&'static str, TestFn)>,
}

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

fn groups() -> Vec<Group> {
    vec![
        Group {
            name: "smoke",
            clusters: 3,
            serial: false,
            tests: tests![
                smoke::ingress_round_trip_in_every_apiserver,
                smoke::control_plane_serves_both_crds,
                smoke::gateway_and_httproute_round_trip,
                smoke::tsig_signed_update_is_applied_and_answered,
                smoke::update_with_wrong_tsig_secret_is_refused,
                smoke::prerequisites_guard_updates_and_records_change_one_by_one,
            ],
        },
        Group {
            name: "controller",
            clusters: 3,
            serial: true,
            tests: tests![
                controller::root_lands_as_leaves_with_its_dependencies_copied,
                controller::edits_and_placement_changes_follow,
                controller::leaf_status_merges_into_root_and_global_ingress,
                controller::deleting_the_root_cleans_everything_up,
                controller::steady_state_writes_nothing,
                controller::killed_mid_convergence_converges_without_duplicates,
                controller::bad_input_is_reported_not_fatal,
                controller::long_root_names_get_their_events,
                controller::leader_election_fails_over,
                controller::orphan_global_ingresses_are_removed,
                controller::a_root_placed_nowhere_is_degraded,
                controller::a_dependency_conflict_shows_on_the_root,
                controller::copies_follow_roots_content_and_hand_labels,
                controller::orphans_go_and_bad_references_are_refused,
                controller::a_gone_cluster_s_finalizers_do_not_hold_forever,
            ],
        },
        Group {
            name: "gateway",
            clusters: 3,
            // Each test runs its own controller.
            serial: true,
            tests: tests![
                gateway::gateway_and_routes_split_merge_and_clean_up,
                gateway::bad_gateway_api_input_is_reported,
                gateway::tls_and_tcp_routes_split_and_merge,
            ],
        },
        Group {
            name: "glbc",
            clusters: 3,
            // Some tests stop BIND or count every update it applied.
            serial: true,
            tests: tests![
                glbc::publishes_the_healthy_clusters_of_every_host,
                glbc::heartbeat_loss_and_return_move_the_answers,
                glbc::a_health_change_overtakes_pending_status_writes,
                glbc::all_clusters_unhealthy_keeps_the_answers,
                glbc::deleting_the_root_removes_its_records,
                glbc::foreign_records_are_never_touched,
                glbc::names_taken_behind_the_glbcs_back_are_never_overwritten,
                glbc::orphans_are_not_published,
                glbc::sharing_glbcs_publish_the_union,
                glbc::restart_sends_nothing_for_unchanged_names,
                glbc::dns_outage_during_a_change_converges,
                glbc::a_wrong_tsig_secret_is_reported,
                glbc::many_hosts_go_in_one_update,
                glbc::a_large_zone_transfers_whole,
                glbc::dry_run_changes_nothing,
                glbc::gateway_roots_are_published,
            ],
        },
        Group {
            name: "embedded",
            clusters: 1,
            // The glbcs listen on the environment's fixed embedded ports.
            serial: true,
            tests: tests![
                embedded::weights_share_the_first_answer,
                embedded::a_priority_group_fails_over_and_back,
                embedded::two_replicas_both_answer,
                embedded::a_bind_secondary_serves_the_zone,
                embedded::the_embedded_component_serves_as_rendered,
            ],
        },
        Group {
            name: "syncer",
            clusters: 2,
            // One test stops a physical cluster's apiserver.
            serial: true,
            tests: tests![
                syncer::placed_objects_appear_downstream_stripped_and_follow_edits,
                syncer::downstream_edits_and_deletes_are_undone,
                syncer::downstream_status_reaches_the_leaf,
                syncer::unplacing_or_deleting_upstream_deletes_downstream,
                syncer::foreign_downstream_object_is_left_alone_and_reported,
                syncer::apiserver_outage_is_seen_within_a_heartbeat_and_recovers,
                syncer::restarted_syncer_converges_without_duplicates,
                syncer::push_mode_syncs_a_cluster_created_with_a_kubeconfig_secret,
                syncer::bad_input_is_reported_and_the_syncer_keeps_running,
                syncer::namespaces_the_syncer_created_go_with_their_last_copy,
                syncer::unmappable_objects_are_reported_and_skipped,
                syncer::hand_placed_deployment_is_created_downstream,
                syncer::deleting_a_cluster_removes_its_copies_unless_its_apiserver_is_down,
                syncer::gateway_api_leaves_go_down_and_their_status_comes_up,
            ],
        },
        Group {
            name: "gatewayflow",
            clusters: 3,
            // Each test runs its own controller (push syncers) and glbc, and
            // one stand-in per physical cluster.
            serial: true,
            tests: tests![
                gateway_flow::gateway_and_routes_flow_to_dns,
                gateway_flow::clusters_without_a_class_get_no_leaves,
                gateway_flow::a_tls_route_hostname_answers_in_dns,
            ],
        },
        Group {
            name: "rbac",
            clusters: 3,
            // Each test runs its own controller, syncer and glbc against the
            // same Clusters, and some revoke permissions.
            serial: true,
            tests: tests![
                rbac::config_renders_least_privilege_rbac,
                rbac::the_whole_flow_works_with_service_account_tokens,
                rbac::a_pull_syncer_reaches_only_its_own_cluster,
                rbac::denied_syncer_requests_are_reported,
                rbac::denied_controller_and_glbc_requests_are_reported,
                rbac::readyz_waits_for_the_caches,
            ],
        },
        Group {
            name: "explain",
            clusters: 3,
            // Each test runs its own controller, stand-ins and glbc against
            // the same Clusters, and the last one stops a cluster's apiserver.
            serial: true,
            tests: tests![
                explain::a_converged_root_holds_at_every_hop,
                explain::an_invalid_placement_selector_stops_at_placement,
                explain::a_missing_backend_service_stops_at_dependencies,
                explain::a_name_owned_by_someone_else_stops_at_dns_records,
                explain::a_converged_gateway_and_route_hold_at_every_hop,
                explain::a_gateway_not_programmed_in_one_cluster_stops_at_clusters,
                explain::an_httproute_to_no_gateway_stops_at_placement,
                explain::a_stopped_cluster_stops_at_downstream,
            ],
        },
        Group {
            name: "traffic",
            clusters: 2,
            // Each test runs its own controller, stand-ins and glbc against
            // the same Clusters, and drains one.
            serial: true,
            tests: tests![
                traffic::a_drain_withdraws_dns_first_and_removes_leaves_after_the_ttl,
                traffic::a_failing_application_leaves_dns_and_comes_back,
            ],
        },
    ]
}

/// Whether libtest's filter arguments select the test `name`.
fn selected(args: &Arguments, name: &str) -> bool {
    let matches = |pattern: &str| {
        if args.exact {
            name == pattern
        } else {
            name.contains(pattern)
        }
    };
    args.filter.as_deref().is_none_or(matches) && !args.skip.iter().any(|s| matches(s))
}

fn main() -> ExitCode {
    let args = Arguments::from_args();
    let groups = groups();
    if args.list {
        // Listing needs no servers.
        let trials = groups
            .into_iter()
            .flat_map(|g| g.tests)
            .map(|(name, _)| Trial::test(name, || Ok(())))
            .collect();
        libtest_mimic::run(&args, trials).exit();
    }
    let mut failed = false;
    for group in groups {
        if !group.tests.iter().any(|(name, _)| selected(&args, name)) {
            continue;
        }
        let env = match TestEnv::up(group.name, group.clusters) {
            Ok(env) => Arc::new(env),
            Err(err) => {
                eprintln!(
                    "e2e: cannot start the environment of group {}: {err:#}",
                    group.name
                );
                failed = true;
                continue;
            }
        };
        let trials = group
            .tests
            .into_iter()
            .map(|(name, test)| {
                let env = Arc::clone(&env);
                Trial::test(name, move || block_on(test(env)))
            })
            .collect();
        let mut group_args = args.clone();
        if group.serial {
            group_args.test_threads = Some(1);
        }
        let conclusion = libtest_mimic::run(&group_args, trials);
        if conclusion.has_failed() {
            env.print_logs();
            failed = true;
            env.down();
            eprintln!(
                "e2e: group {} failed; its environment is kept in {}",
                group.name,
                env.dir().display()
            );
        } else {
            env.down_and_remove();
        }
    }
    if failed {
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
