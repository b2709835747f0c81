//! The ingress-controller: roots → per-cluster leaves in the cluster
//! namespaces of the control plane; leaf status → root status and
//! GlobalIngress; copies of the Services, Secrets and ConfigMaps the roots
//! need (or that are placed by hand) in those namespaces. The user's
//! objects are never modified (but for a root's finalizer and status).
//!
//! The pipeline is generic over the kind of root ([`kind::RootKind`]):
//! Ingress ([`kinds::ingress`]) and, where their CRDs are served, the
//! Gateway API roots ([`kinds::gateway`]: Gateway, HTTPRoute, GRPCRoute, and
//! TLSRoute, TCPRoute, UDPRoute where those experimental CRDs are served;
//! discovery decides at start-up, CRDs installed later need a restart),
//! each with its own root watch, controller and memory; one set of workers
//! places every kind's dependencies. One watch
//! per type ([`routes`]; every kind shares all but its own) feeds a cache
//! and each kind's [`index`], and routes changes
//! to the roots, dependencies and cluster namespaces they affect. Roots are
//! reconciled by a kube-runtime controller ([`reconcile`]), as are orphan
//! GlobalIngresses ([`delete_orphan`]); dependencies ([`place_dependency`],
//! [`copies`]) and cluster namespaces ([`cluster_namespaces`]) by work
//! queues, which also serve keys whose object is gone. A root's reconcile
//! reads the caches, decides purely ([`decide`]) and writes only what
//! differs; what it must remember between reconciles is in [`memory`].
//!
//! Every API call the controller makes is listed in the module docs of
//! [`routes`] (watches), [`reconcile`], [`place_dependency`],
//! [`cluster_namespaces`] and [`delete_orphan`], besides the Lease and
//! Events of `runtime` and, in push mode, the syncers'.

pub mod cluster_namespaces;
pub mod context;
pub mod copies;
pub mod decide;
pub mod delete_orphan;
pub mod dependencies;
pub mod finalizing;
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
pub mod resync;
mod routes;
pub mod slim;

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use futures::StreamExt;
use futures::channel::mpsc;
use k8s_openapi::api::networking::v1::Ingress;
use kube::runtime::controller::{self, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use tracing::{error, info};

use self::context::{Context, Dependents, Peers, Triggers};
use self::index::Index;
use self::kind::RootKind;
use self::kinds::gateway;
use self::memory::Memory;
use self::routes::Routing;
use crate::apis::{Cluster, GlobalIngress, PlacedObject};
use crate::cli::ControllerArgs;
use crate::gateway_api::gateway::Gateway;
use crate::gateway_api::gateway_class::GatewayClass;
use crate::gateway_api::grpc_route::GrpcRoute;
use crate::gateway_api::http_route::HttpRoute;
use crate::gateway_api::reference_grant::ReferenceGrant;
use crate::gateway_api::tcp_route::TcpRoute;
use crate::gateway_api::tls_route::TlsRoute;
use crate::gateway_api::udp_route::UdpRoute;
use crate::labels;
use crate::runtime::compact::Compact;
use crate::runtime::stored::Stored;
use crate::runtime::{self, CancellationToken, ClientError, Readiness};
use crate::syncer::copied::Copies;
use crate::syncer::naming::ResourceSpec;
use crate::syncer::queue::WorkQueue;
use crate::syncer::shared::{Feed, SharedCaches};

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

    let readiness = Readiness::default();
    let dependencies = Arc::new(WorkQueue::default());
    let peers: Peers = Arc::new(OnceLock::new());
    // The Gateway API roots, where their CRDs are served.
    let served = gateway_api_served(&client).await;
    let start = Start {
        client: &client,
        dependencies: &dependencies,
        readiness: &readiness,
        shutdown: &shutdown,
        gateway_api: served.is_ok(),
    };
    // With push-mode syncers, they read the leaf Ingresses from this
    // watch's cache instead of watching them again, once per cluster.
    let ingress_feed = args
        .push_syncers
        .then(|| Arc::new(Feed::<Ingress, Compact<Ingress>>::default()));
    let ingress = Kind::<Ingress>::start(&start, Arc::new(()), ingress_feed.clone());
    let gateway_api = match served {
        Ok(()) => {
            let routes = served_routes(&client).await;
            info!(
                route_kinds = %routes.kinds().join(", "),
                "Gateway API roots are on: Gateway and these route kinds (the experimental \
                 TLSRoute, TCPRoute, UDPRoute where their CRDs are served now; CRDs installed \
                 later need a restart)"
            );
            Some(GatewayKinds::start(&start, routes))
        }
        Err(err) => {
            info!(%err, "Gateway API roots are off: their CRDs are not served");
            None
        }
    };
    // One set of the watches every kind reads besides its own objects.
    let mut kinds: Vec<Arc<dyn routes::KindRoutes>> = vec![ingress.router()];
    if let Some(g) = &gateway_api {
        kinds.extend(g.routers());
    }
    let caches = routes::start_shared(
        &client,
        start.gateway_api,
        &kinds.into(),
        &readiness,
        &shutdown,
    );
    // A standby keeps its caches warm and waits for the Lease.
    let Some(work) = component.ready_then_lead(&readiness, &shutdown).await else {
        component.stopped(None).await?;
        return Ok(());
    };
    let token = work.token.clone();
    info!("caches synced and leading; reconciling");
    let copies = args.push_syncers.then(|| Arc::new(Copies::default()));
    let push = copies.clone().map(|copies| {
        let mut shared = SharedCaches::default().with_copies(copies);
        if let Some(feed) = ingress_feed {
            shared = shared.with(
                ResourceSpec {
                    resource: "ingresses".into(),
                    group: "networking.k8s.io".into(),
                },
                feed,
            );
        }
        tokio::spawn(crate::syncer::push::run(
            client.clone(),
            args.resources.clone(),
            args.heartbeat_interval,
            args.namespace_grace,
            Some(component.metrics.clone()),
            shared,
            token.clone(),
        ))
    });

    let shared = Shared {
        client: client.clone(),
        recorder: component.recorder.clone(),
        metrics: component.metrics.clone(),
        health_threshold: args.health.health_threshold,
        peers: peers.clone(),
        token: token.clone(),
        copies,
    };
    let (ingress_ctx, ingress_run) = ingress.run(&shared, &caches, true);
    let mut all_peers: Vec<Arc<dyn Dependents>> = vec![ingress_ctx];
    let gateway_runs = gateway_api.map(|g| g.run(&shared, &caches, &mut all_peers));
    let _ = peers.set(all_peers);
    tokio::join!(ingress_run, async move {
        if let Some(run) = gateway_runs {
            run.await;
        }
    });
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

/// Which experimental route kinds the control plane serves now.
async fn served_routes(client: &kube::Client) -> gateway::ServedRoutes {
    gateway::ServedRoutes {
        tls: runtime::require_served::<TlsRoute>(client).await.is_ok(),
        tcp: runtime::require_served::<TcpRoute>(client).await.is_ok(),
        udp: runtime::require_served::<UdpRoute>(client).await.is_ok(),
    }
}

/// The Gateway API kinds, started before leadership: Gateway, HTTPRoute,
/// GRPCRoute, and the experimental route kinds that are served.
struct GatewayKinds {
    gateways: Kind<Gateway>,
    http: Kind<HttpRoute>,
    grpc: Kind<GrpcRoute>,
    tls: Option<Kind<TlsRoute>>,
    tcp: Option<Kind<TcpRoute>>,
    udp: Option<Kind<UdpRoute>>,
    world: Arc<gateway::GatewayWorld>,
    class_rx: mpsc::UnboundedReceiver<String>,
}

impl GatewayKinds {
    fn start(start: &Start<'_>, routes: gateway::ServedRoutes) -> Self {
        let (gw_tx, gw_rx) = mpsc::unbounded();
        let (http_tx, http_rx) = mpsc::unbounded();
        let (grpc_tx, grpc_rx) = mpsc::unbounded();
        let (tls_tx, tls_rx) = mpsc::unbounded();
        let (tcp_tx, tcp_rx) = mpsc::unbounded();
        let (udp_tx, udp_rx) = mpsc::unbounded();
        let (class_tx, class_rx) = mpsc::unbounded();
        let triggers = gateway::watch::KindTriggers {
            gateways: gw_tx.clone(),
            http_routes: http_tx.clone(),
            grpc_routes: grpc_tx.clone(),
            tls_routes: tls_tx.clone(),
            tcp_routes: tcp_tx.clone(),
            udp_routes: udp_tx.clone(),
            classes: class_tx,
        };
        let world = Arc::new(gateway::watch::start(
            start.client,
            routes,
            &triggers,
            start.readiness,
            start.shutdown,
        ));
        Self {
            gateways: Kind::start_with(start, world.clone(), (gw_tx, gw_rx), None),
            http: Kind::start_with(start, world.clone(), (http_tx, http_rx), None),
            grpc: Kind::start_with(start, world.clone(), (grpc_tx, grpc_rx), None),
            tls: routes
                .tls
                .then(|| Kind::start_with(start, world.clone(), (tls_tx, tls_rx), None)),
            tcp: routes
                .tcp
                .then(|| Kind::start_with(start, world.clone(), (tcp_tx, tcp_rx), None)),
            udp: routes
                .udp
                .then(|| Kind::start_with(start, world.clone(), (udp_tx, udp_rx), None)),
            world,
            class_rx,
        }
    }

    fn routers(&self) -> Vec<Arc<dyn routes::KindRoutes>> {
        let mut out = vec![
            self.gateways.router(),
            self.http.router(),
            self.grpc.router(),
        ];
        out.extend(self.tls.as_ref().map(Kind::router));
        out.extend(self.tcp.as_ref().map(Kind::router));
        out.extend(self.udp.as_ref().map(Kind::router));
        out
    }

    /// Their work once leading (their contexts join `peers`).
    fn run<'a>(
        self,
        shared: &'a Shared,
        caches: &'a context::Shared,
        peers: &mut Vec<Arc<dyn Dependents>>,
    ) -> impl std::future::Future<Output = ()> + use<'a> {
        let (gw_ctx, gw_run) = self.gateways.run(shared, caches, false);
        let (http_ctx, http_run) = self.http.run(shared, caches, false);
        let (grpc_ctx, grpc_run) = self.grpc.run(shared, caches, false);
        peers.extend([gw_ctx as Arc<dyn Dependents>, http_ctx, grpc_ctx]);
        let mut optional: Vec<futures::future::BoxFuture<'a, ()>> = Vec::new();
        run_if_served(self.tls, shared, caches, peers, &mut optional);
        run_if_served(self.tcp, shared, caches, peers, &mut optional);
        run_if_served(self.udp, shared, caches, peers, &mut optional);
        let classes = gateway::class::accept_classes(
            shared.client.clone(),
            self.world.classes.clone(),
            self.class_rx,
            shared.token.clone(),
        );
        async move {
            tokio::join!(
                gw_run,
                http_run,
                grpc_run,
                classes,
                futures::future::join_all(optional)
            );
        }
    }
}

/// The work of an experimental route kind once leading, when it is served:
/// its context joins `peers`, its run joins `runs`.
fn run_if_served<'a, K: RootKind>(
    kind: Option<Kind<K>>,
    shared: &'a Shared,
    caches: &'a context::Shared,
    peers: &mut Vec<Arc<dyn Dependents>>,
    runs: &mut Vec<futures::future::BoxFuture<'a, ()>>,
) {
    if let Some(kind) = kind {
        let (ctx, run) = kind.run(shared, caches, false);
        peers.push(ctx);
        runs.push(Box::pin(run));
    }
}

/// What every kind's pipeline shares once the controller leads.
struct Shared {
    client: kube::Client,
    recorder: runtime::events::Recorder,
    metrics: Arc<runtime::metrics::Metrics>,
    health_threshold: std::time::Duration,
    peers: Peers,
    token: CancellationToken,
    copies: Option<Arc<Copies>>,
}

/// A kind of root's watches and triggers, started before leadership.
struct Kind<K: RootKind> {
    routing: Routing<K>,
    roots: Store<K::Stored>,
    world: Arc<K::World>,
    roots_rx: mpsc::UnboundedReceiver<ObjectRef<K::Stored>>,
    globals_rx: mpsc::UnboundedReceiver<ObjectRef<Compact<GlobalIngress>>>,
}

/// The channel of a kind's roots' triggers.
type RootsChannel<K> = (
    mpsc::UnboundedSender<ObjectRef<<K as RootKind>::Stored>>,
    mpsc::UnboundedReceiver<ObjectRef<<K as RootKind>::Stored>>,
);

/// What every kind's watches start with.
struct Start<'a> {
    client: &'a kube::Client,
    /// The dependency queue every kind shares.
    dependencies: &'a Arc<WorkQueue<dependencies::DepKey>>,
    readiness: &'a Readiness,
    shutdown: &'a CancellationToken,
    /// Whether the Gateway API is served (ReferenceGrants are watched).
    gateway_api: bool,
}

impl<K: RootKind> Kind<K> {
    /// Starts with a channel of its own; its watch's changes also go to
    /// `feed` when given.
    fn start(
        start: &Start<'_>,
        world: Arc<K::World>,
        feed: Option<Arc<Feed<K, K::Stored>>>,
    ) -> Self {
        Self::start_with(start, world, mpsc::unbounded(), feed)
    }

    /// Starts with the channel of its roots' triggers (other kinds' watches
    /// send into it too).
    fn start_with(
        start: &Start<'_>,
        world: Arc<K::World>,
        (roots_tx, roots_rx): RootsChannel<K>,
        feed: Option<Arc<Feed<K, K::Stored>>>,
    ) -> Self {
        let (globals_tx, globals_rx) = mpsc::unbounded();
        let routing = Routing::<K> {
            world: world.clone(),
            index: Arc::new(Index::default()),
            memory: Arc::new(Memory::default()),
            triggers: Triggers::new(roots_tx, globals_tx, start.dependencies.clone()),
        };
        let roots = routes::start_roots(
            start.client,
            &routing,
            feed,
            start.readiness,
            start.shutdown,
        );
        Self {
            routing,
            roots,
            world,
            roots_rx,
            globals_rx,
        }
    }

    /// Its routing of the shared watches' changes.
    fn router(&self) -> Arc<dyn routes::KindRoutes> {
        Arc::new(routes::KindRouter {
            routing: self.routing.clone(),
            roots: self.roots.clone(),
        })
    }

    /// Its context, and its work until the shared token ends: the roots'
    /// controller, cluster namespaces, orphan GlobalIngresses (for a kind
    /// that has them), cluster health, and (`dependencies`) the workers
    /// that place every kind's dependencies.
    fn run(
        self,
        shared: &Shared,
        caches: &context::Shared,
        dependencies: bool,
    ) -> (Arc<Context<K>>, impl std::future::Future<Output = ()>) {
        let ctx = Arc::new(Context {
            client: shared.client.clone(),
            caches: caches.with_roots(self.roots),
            world: self.world,
            peers: shared.peers.clone(),
            index: self.routing.index,
            memory: self.routing.memory,
            triggers: self.routing.triggers,
            recorder: shared.recorder.clone(),
            metrics: shared.metrics.clone(),
            health_threshold: shared.health_threshold,
            copies: shared.copies.clone(),
            finalizers_sent: finalizing::FinalizersSent::default(),
        });
        let token = shared.token.clone();
        let health = routes::follow_cluster_health(
            ctx.caches.clusters.clone(),
            ctx.caches.roots.clone(),
            ctx.triggers.clone(),
            shared.health_threshold,
            shared.metrics.clone(),
            token.clone(),
        );
        let has_globals = K::global_name("x").is_some();
        let (roots_rx, globals_rx) = (self.roots_rx, self.globals_rx);
        let work_ctx = ctx.clone();
        let work = async move {
            let ctx = work_ctx;
            let config = controller::Config::default().concurrency(CONCURRENCY);
            let roots = root_controller(roots_rx, &config, &token, ctx.clone());
            let namespaces = cluster_namespace_workers(&token, ctx.clone());
            let dependency_work = async {
                if dependencies {
                    dependency_workers(&token, ctx.clone()).await;
                }
            };
            let orphan_work = async {
                if has_globals {
                    orphan_controller(globals_rx, &config, &token, ctx.clone()).await;
                }
            };
            let resync = resync::sweep::<K, _>(
                ctx.caches.roots.clone(),
                ctx.triggers.roots.clone(),
                token.clone(),
            );
            tokio::join!(
                roots,
                dependency_work,
                namespaces,
                orphan_work,
                health,
                resync
            );
        };
        (ctx, work)
    }
}

/// Whether the Gateway API kinds the controller handles are served.
async fn gateway_api_served(client: &kube::Client) -> Result<(), runtime::NotServed> {
    runtime::require_served::<Gateway>(client).await?;
    runtime::require_served::<HttpRoute>(client).await?;
    runtime::require_served::<GrpcRoute>(client).await?;
    runtime::require_served::<ReferenceGrant>(client).await?;
    runtime::require_served::<GatewayClass>(client).await
}

/// The controller of the roots of kind `K`: a thin reconcile wrapped in the
/// cleanup finalizer, retried with the one backoff schedule.
fn root_controller<K: RootKind>(
    trigger: mpsc::UnboundedReceiver<ObjectRef<K::Stored>>,
    config: &controller::Config,
    work: &CancellationToken,
    ctx: Arc<Context<K>>,
) -> impl std::future::Future<Output = ()> {
    Controller::for_stream(futures::stream::pending(), ctx.caches.roots.clone())
        .with_config(config.clone())
        .reconcile_on(trigger)
        .graceful_shutdown_on(work.clone().cancelled_owned())
        .run(
            |stored, ctx| async move {
                // Parsed once per reconcile (a compact store); a text that
                // does not parse was logged, and reads as absent.
                let Some(root) = K::Stored::typed(&stored) else {
                    return Ok(controller::Action::await_change());
                };
                let started = Instant::now();
                let result = reconcile::reconcile_root(root.clone(), ctx.clone()).await;
                let failed = matches!(&result, Err(e) if !reconcile::leaves_remain(e));
                ctx.root_finished(&root, started, result.is_ok(), failed);
                result
            },
            |stored, err, ctx| match K::Stored::typed(&stored) {
                Some(root) => reconcile::retry_root(root.as_ref(), err, &ctx),
                None => controller::Action::await_change(),
            },
            ctx,
        )
        .for_each(|_| async {})
}

/// The controller that deletes orphan GlobalIngresses (no live root
/// controls them): a bare kube-apiserver has no garbage collector.
fn orphan_controller<K: RootKind>(
    trigger: mpsc::UnboundedReceiver<ObjectRef<Compact<GlobalIngress>>>,
    config: &controller::Config,
    work: &CancellationToken,
    ctx: Arc<Context<K>>,
) -> impl std::future::Future<Output = ()> {
    let key = |g: &Compact<GlobalIngress>| {
        let (ns, name) = (g.namespace(), g.name());
        (
            ns.unwrap_or_default().to_string(),
            name.unwrap_or_default().to_string(),
        )
    };
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

/// The workers that reconcile the copies of users' Services, Secrets and
/// ConfigMaps, until `work` ends.
async fn dependency_workers<K: RootKind>(work: &CancellationToken, ctx: Arc<Context<K>>) {
    let queue = ctx.triggers.dependencies.clone();
    let workers = (0..CONCURRENCY).map(|_| {
        let (queue, ctx, work) = (queue.clone(), ctx.clone(), work.clone());
        async move {
            while let Some(dep) = work.run_until_cancelled(queue.next()).await {
                let started = Instant::now();
                let result = place_dependency::reconcile_dependency(&dep, &ctx).await;
                ctx.dependency_finished(&dep, started, result.is_ok());
                let failures = queue.done(&dep, result.is_ok());
                if let Err(err) = result {
                    let key = format!("{:?} {}/{}", dep.0, dep.1, dep.2);
                    let delay = context::retry_delay(&key, failures, &err);
                    queue.add_after(dep, delay, &work);
                }
            }
        }
    });
    futures::future::join_all(workers).await;
}

/// The workers that ensure or empty cluster namespaces, until `work` ends.
async fn cluster_namespace_workers<K: RootKind>(work: &CancellationToken, ctx: Arc<Context<K>>) {
    let queue = ctx.triggers.cluster_namespaces.clone();
    let workers = (0..4).map(|_| {
        let (queue, ctx, work) = (queue.clone(), ctx.clone(), work.clone());
        async move {
            while let Some(ns) = work.run_until_cancelled(queue.next()).await {
                let result = cluster_namespaces::reconcile_cluster_namespace(&ns, &ctx).await;
                let failures = queue.done(&ns, result.is_ok());
                match result {
                    Ok(None) => {}
                    Ok(Some(delay)) => queue.add_after(ns, delay, &work),
                    Err(err) => {
                        let delay =
                            context::retry_delay(&format!("namespace {ns}"), failures, &err);
                        queue.add_after(ns, delay, &work);
                    }
                }
            }
        }
    });
    futures::future::join_all(workers).await;
}

/// Fails early, with a clear message, when the control plane lacks the CRDs
/// or the credentials cannot read what the controller watches.
async fn preflight(client: &kube::Client) -> Result<(), runtime::NotServed> {
    runtime::require_served::<Cluster>(client).await?;
    runtime::require_served::<GlobalIngress>(client).await?;
    runtime::require_served::<PlacedObject>(client).await?;
    runtime::require_served::<Ingress>(client).await
}
