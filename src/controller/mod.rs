//! The ingress-controller: root Ingresses → per-cluster leaves; leaf status
//! → root status and GlobalIngress; placement labels on the Services and
//! Secrets the roots need.
//!
//! One watch per type feeds a cache (reflector) and the indexes; changes are
//! routed to the roots and dependencies they affect, which two kube-runtime
//! controllers reconcile (one for roots, one each for Services and Secrets).

pub mod dependencies;
pub mod index;
pub mod merge;
pub mod placement;
pub mod reconcile;
pub mod split;
mod watch;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::StreamExt;
use futures::channel::mpsc;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::PartialObjectMeta;
use kube::runtime::controller::{self, Controller};
use kube::runtime::finalizer;
use kube::runtime::reflector::{self, ObjectRef};
use tracing::{error, info};

use self::index::{DepKind, Index};
use self::reconcile::{Context, ReconcileError, Triggers};
use crate::apis::{Cluster, GlobalIngress};
use crate::cli::ControllerArgs;
use crate::labels;
use crate::runtime::{self, CancellationToken, ClientError};

/// Errors that stop the controller.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    NotServed(#[from] runtime::NotServed),
    #[error("push-mode syncers stopped: {0}")]
    PushSyncers(#[from] crate::syncer::SyncerError),
    #[error(transparent)]
    Component(#[from] runtime::ComponentError),
    #[error(transparent)]
    LostLeadership(#[from] runtime::LostLeadership),
}

/// Concurrent reconciles per controller.
const CONCURRENCY: u16 = 32;

/// Runs the controller until `shutdown` is cancelled.
pub async fn run(args: ControllerArgs, shutdown: CancellationToken) -> Result<(), ControllerError> {
    let client = runtime::client(
        args.control_plane.kubeconfig.as_deref(),
        args.control_plane.context.as_deref(),
    )
    .await?;
    preflight(&client).await?;
    let component = runtime::start_component(
        labels::CONTROLLER_MANAGER,
        &client,
        &args.admin,
        Some(&args.election),
        &shutdown,
    )
    .await?;

    let (roots_tx, roots_rx) = mpsc::unbounded();
    let (services_tx, services_rx) = mpsc::unbounded();
    let (secrets_tx, secrets_rx) = mpsc::unbounded();
    let triggers = Triggers {
        roots: roots_tx,
        services: services_tx,
        secrets: secrets_tx,
    };
    let index = Arc::new(Index::default());
    let caches = watch::start(&client, &index, &triggers, &shutdown);
    caches.wait_until_ready(&shutdown).await;
    if shutdown.is_cancelled() {
        return Ok(());
    }
    // A standby keeps its caches warm and waits for the Lease.
    let Some(leading) = component
        .ready_then_lead(&runtime::Readiness::default(), &shutdown)
        .await
    else {
        component.stopped(None).await?;
        return Ok(());
    };
    let work = leading.token.clone();
    info!("caches synced and leading; reconciling");
    let push = args.push_syncers.then(|| {
        tokio::spawn(crate::syncer::push::run(
            client.clone(),
            args.resources.clone(),
            args.heartbeat_interval,
            Some(component.metrics.clone()),
            work.clone(),
        ))
    });

    let ctx = Arc::new(Context {
        client: client.clone(),
        ingresses: caches.ingresses.clone(),
        clusters: caches.clusters.clone(),
        services: caches.services.clone(),
        secrets: caches.secrets.clone(),
        globals: caches.globals.clone(),
        index,
        triggers,
        recorder: component.recorder.clone(),
        health_threshold: args.health.health_threshold,
        failures: Mutex::new(Default::default()),
        metrics: component.metrics.clone(),
        converged: Mutex::new(Default::default()),
        announced: Mutex::new(Default::default()),
        placed: Mutex::new(Default::default()),
    });
    tokio::spawn(watch::follow_cluster_health(
        caches.clusters.clone(),
        caches.ingresses.clone(),
        ctx.triggers.clone(),
        args.health.health_threshold,
        component.metrics.clone(),
        work.clone(),
    ));

    let config = controller::Config::default().concurrency(CONCURRENCY);
    let roots = Controller::for_stream(futures::stream::pending(), caches.ingresses.clone())
        .with_config(config.clone())
        .reconcile_on(roots_rx)
        .graceful_shutdown_on(work.clone().cancelled_owned())
        .run(
            |root, ctx| async move {
                let key = reconcile::object_key("Ingress", &root.metadata);
                let started = Instant::now();
                let result = reconcile::reconcile_root(root, ctx.clone()).await;
                let failed = matches!(&result, Err(e) if !leaves_remain(e));
                ctx.finished("roots", &key, started, result.is_ok(), failed);
                result
            },
            |root, err, ctx| {
                let key = reconcile::object_key("Ingress", &root.metadata);
                reconcile::backoff(&ctx, key, err, leaves_remain(err))
            },
            ctx.clone(),
        )
        .for_each(|_| async {});
    let services = dependency_controller::<Service>(
        caches.services.clone(),
        services_rx,
        DepKind::Service,
        &config,
        &work,
        ctx.clone(),
    );
    let secrets = dependency_controller::<Secret>(
        caches.secrets.clone(),
        secrets_rx,
        DepKind::Secret,
        &config,
        &work,
        ctx.clone(),
    );
    tokio::join!(roots, services, secrets);
    info!("controller stopped");
    if let Some(push) = push {
        match push.await {
            Ok(result) => result?,
            Err(err) => error!(%err, "push-mode syncers panicked"),
        }
    }
    component.stopped(Some(leading)).await?;
    Ok(())
}

fn leaves_remain(err: &finalizer::Error<ReconcileError>) -> bool {
    matches!(
        err,
        finalizer::Error::CleanupFailed(ReconcileError::LeavesRemain(_))
    )
}

fn dependency_controller<K>(
    store: reflector::Store<PartialObjectMeta<K>>,
    trigger: mpsc::UnboundedReceiver<ObjectRef<PartialObjectMeta<K>>>,
    kind: DepKind,
    config: &controller::Config,
    shutdown: &CancellationToken,
    ctx: Arc<Context>,
) -> impl std::future::Future<Output = ()>
where
    K: kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    Controller::for_stream(futures::stream::pending(), store)
        .with_config(config.clone())
        .reconcile_on(trigger)
        .graceful_shutdown_on(shutdown.clone().cancelled_owned())
        .run(
            move |object, ctx| async move {
                let key = reconcile::object_key(&format!("{kind:?}"), &object.metadata);
                let started = Instant::now();
                let result = reconcile::reconcile_dependency::<K>(object, ctx.clone(), kind).await;
                ctx.finished(
                    kind.metric_name(),
                    &key,
                    started,
                    result.is_ok(),
                    result.is_err(),
                );
                result
            },
            move |object, err: &ReconcileError, ctx| {
                let key = reconcile::object_key(&format!("{kind:?}"), &object.metadata);
                reconcile::backoff(&ctx, key, err, false)
            },
            ctx,
        )
        .for_each(|_| async {})
}

/// Fails early, with a clear message, when the control plane lacks the CRDs
/// or the credentials cannot read what the controller watches.
async fn preflight(client: &kube::Client) -> Result<(), runtime::NotServed> {
    runtime::require_served::<Cluster>(client).await?;
    runtime::require_served::<GlobalIngress>(client).await?;
    runtime::require_served::<Ingress>(client).await
}
