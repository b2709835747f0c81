//! The ingress-controller: roots → per-cluster leaves; leaf status → root
//! status and GlobalIngress; placement labels on the Services and Secrets
//! the roots need.
//!
//! The pipeline is generic over the kind of root ([`kind::RootKind`]);
//! Ingress ([`kinds::ingress`]) is its one implementation today. One watch
//! per type ([`routes`]) feeds a cache and the [`index`], and routes changes
//! to the roots and dependencies they affect, which kube-runtime
//! controllers reconcile ([`reconcile`]: one for roots, one each for
//! Services and Secrets, one deleting orphan GlobalIngresses
//! ([`delete_orphan`])). A root's reconcile reads the caches, decides
//! purely ([`decide`]) and writes only what differs; what it must remember
//! between reconciles is in [`memory`].

pub mod context;
pub mod decide;
pub mod delete_orphan;
pub mod dependencies;
pub mod index;
pub mod kind;
pub mod kinds;
pub mod memory;
pub mod merge;
pub mod naming;
pub mod orphan;
pub mod place_dependency;
pub mod placement;
pub mod reconcile;
mod routes;

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use futures::channel::mpsc;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::networking::v1::Ingress;
use kube::ResourceExt;
use kube::api::PartialObjectMeta;
use kube::runtime::controller::{self, Controller};
use kube::runtime::reflector::{self, ObjectRef};
use tracing::{error, info};

use self::context::{Context, ReconcileError, Triggers};
use self::dependencies::DepKind;
use self::index::Index;
use self::kind::RootKind;
use self::memory::Memory;
use self::routes::Routing;
use crate::apis::{Cluster, GlobalIngress};
use crate::cli::ControllerArgs;
use crate::labels;
use crate::runtime::{self, CancellationToken, ClientError, Readiness};

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
    let (globals_tx, globals_rx) = mpsc::unbounded();
    let routing = Routing::<Ingress> {
        index: Arc::new(Index::default()),
        memory: Arc::new(Memory::default()),
        triggers: Triggers {
            roots: roots_tx,
            services: services_tx,
            secrets: secrets_tx,
            globals: globals_tx,
        },
    };
    let readiness = Readiness::default();
    let caches = routes::start(&client, &routing, &readiness, &shutdown);
    // A standby keeps its caches warm and waits for the Lease.
    let Some(work) = component.ready_then_lead(&readiness, &shutdown).await else {
        component.stopped(None).await?;
        return Ok(());
    };
    let token = work.token.clone();
    info!("caches synced and leading; reconciling");
    let push = args.push_syncers.then(|| {
        tokio::spawn(crate::syncer::push::run(
            client.clone(),
            args.resources.clone(),
            args.heartbeat_interval,
            Some(component.metrics.clone()),
            token.clone(),
        ))
    });

    let ctx = Arc::new(Context {
        client: client.clone(),
        caches: caches.clone(),
        index: routing.index,
        memory: routing.memory,
        triggers: routing.triggers,
        recorder: component.recorder.clone(),
        metrics: component.metrics.clone(),
        health_threshold: args.health.health_threshold,
    });
    tokio::spawn(routes::follow_cluster_health(
        caches.clusters.clone(),
        caches.roots.clone(),
        ctx.triggers.clone(),
        args.health.health_threshold,
        component.metrics.clone(),
        token.clone(),
    ));

    let config = controller::Config::default().concurrency(CONCURRENCY);
    let roots = root_controller(roots_rx, &config, &token, ctx.clone());
    let services = dependency_controller::<Service, Ingress>(
        caches.services.clone(),
        services_rx,
        DepKind::Service,
        &config,
        &token,
        ctx.clone(),
    );
    let secrets = dependency_controller::<Secret, Ingress>(
        caches.secrets.clone(),
        secrets_rx,
        DepKind::Secret,
        &config,
        &token,
        ctx.clone(),
    );
    let orphans = orphan_controller(globals_rx, &config, &token, ctx.clone());
    tokio::join!(roots, services, secrets, orphans);
    info!("controller stopped");
    if let Some(push) = push {
        match push.await {
            Ok(result) => result?,
            Err(err) => error!(%err, "push-mode syncers panicked"),
        }
    }
    component.stopped(Some(work)).await?;
    Ok(())
}

/// The controller of the roots of kind `K`: a thin reconcile wrapped in the
/// cleanup finalizer, retried with the one backoff schedule.
fn root_controller<K: RootKind>(
    trigger: mpsc::UnboundedReceiver<ObjectRef<K>>,
    config: &controller::Config,
    work: &CancellationToken,
    ctx: Arc<Context<K>>,
) -> impl std::future::Future<Output = ()> {
    Controller::for_stream(futures::stream::pending(), ctx.caches.roots.clone())
        .with_config(config.clone())
        .reconcile_on(trigger)
        .graceful_shutdown_on(work.clone().cancelled_owned())
        .run(
            |root, ctx| async move {
                let started = Instant::now();
                let result = reconcile::reconcile_root(root.clone(), ctx.clone()).await;
                let failed = matches!(&result, Err(e) if !reconcile::leaves_remain(e));
                ctx.root_finished(&root, started, result.is_ok(), failed);
                result
            },
            |root, err, ctx| reconcile::retry_root(root.as_ref(), err, &ctx),
            ctx,
        )
        .for_each(|_| async {})
}

/// The controller that deletes orphan GlobalIngresses (no live root
/// controls them): a bare kube-apiserver has no garbage collector.
fn orphan_controller<K: RootKind>(
    trigger: mpsc::UnboundedReceiver<ObjectRef<GlobalIngress>>,
    config: &controller::Config,
    work: &CancellationToken,
    ctx: Arc<Context<K>>,
) -> impl std::future::Future<Output = ()> {
    let key = |g: &GlobalIngress| (g.namespace().unwrap_or_default(), g.name_any());
    Controller::for_stream(futures::stream::pending(), ctx.caches.globals.clone())
        .with_config(config.clone())
        .reconcile_on(trigger)
        .graceful_shutdown_on(work.clone().cancelled_owned())
        .run(
            move |global, ctx| async move {
                let result = delete_orphan::reconcile_global(global.clone(), ctx.clone()).await;
                if result.is_ok() {
                    ctx.memory.global_succeeded(&key(&global));
                }
                result
            },
            |global, err, ctx| delete_orphan::retry_global(global.as_ref(), err, &ctx),
            ctx,
        )
        .for_each(|_| async {})
}

/// The controller of the placement labels of one dependency kind.
fn dependency_controller<D, K>(
    store: reflector::Store<PartialObjectMeta<D>>,
    trigger: mpsc::UnboundedReceiver<ObjectRef<PartialObjectMeta<D>>>,
    kind: DepKind,
    config: &controller::Config,
    work: &CancellationToken,
    ctx: Arc<Context<K>>,
) -> impl std::future::Future<Output = ()>
where
    D: kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
    K: RootKind,
{
    let key = move |object: &PartialObjectMeta<D>| {
        (
            kind,
            object.namespace().unwrap_or_default(),
            object.name_any(),
        )
    };
    Controller::for_stream(futures::stream::pending(), store)
        .with_config(config.clone())
        .reconcile_on(trigger)
        .graceful_shutdown_on(work.clone().cancelled_owned())
        .run(
            move |object, ctx| async move {
                let started = Instant::now();
                let dep = key(&object);
                let result =
                    place_dependency::reconcile_dependency(object, ctx.clone(), kind).await;
                ctx.dependency_finished(&dep, started, result.is_ok());
                result
            },
            move |object, err: &ReconcileError, ctx| {
                place_dependency::retry_dependency(&key(&object), err, &ctx)
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
