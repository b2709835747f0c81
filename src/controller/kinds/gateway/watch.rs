//! The watches of the [`GatewayWorld`] and the triggers across kinds
//! they drive: a Gateway change requeues the routes that name it; a route
//! change requeues the Gateways it names (before and after); a
//! GatewayClass change requeues the Gateways of that class and the class
//! itself (to accept it); a ReferenceGrant change requeues every Gateway
//! and route (grants are few and rarely change).
//!
//! API calls (list/watch, all namespaces): gateways, httproutes,
//! grpcroutes, and tlsroutes, tcproutes, udproutes where served
//! ([`ServedRoutes`]), referencegrants; gatewayclasses (cluster-scoped).

use futures::StreamExt;
use futures::channel::mpsc::UnboundedSender;
use futures::stream::BoxStream;
use kube::api::Api;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};

use super::{GatewayWorld, ServedRoutes};
use crate::gateway::route::Route;
use crate::gateway_api::gateway::Gateway;
use crate::gateway_api::gateway_class::GatewayClass;
use crate::gateway_api::grpc_route::GrpcRoute;
use crate::gateway_api::http_route::HttpRoute;
use crate::gateway_api::reference_grant::ReferenceGrant;
use crate::gateway_api::tcp_route::TcpRoute;
use crate::gateway_api::tls_route::TlsRoute;
use crate::gateway_api::udp_route::UdpRoute;
use crate::labels::gateway_api as gw;
use crate::runtime::{CancellationToken, Change, Readiness, Watch};

/// Where the triggers across kinds go.
#[derive(Clone)]
pub struct KindTriggers {
    pub gateways: UnboundedSender<ObjectRef<Gateway>>,
    pub http_routes: UnboundedSender<ObjectRef<HttpRoute>>,
    pub grpc_routes: UnboundedSender<ObjectRef<GrpcRoute>>,
    pub tls_routes: UnboundedSender<ObjectRef<TlsRoute>>,
    pub tcp_routes: UnboundedSender<ObjectRef<TcpRoute>>,
    pub udp_routes: UnboundedSender<ObjectRef<UdpRoute>>,
    /// GatewayClasses to accept.
    pub classes: UnboundedSender<String>,
}

impl KindTriggers {
    fn gateway(&self, (ns, name): &(String, String)) {
        let _ = self
            .gateways
            .unbounded_send(ObjectRef::new(name).within(ns));
    }

    /// The route of `kind` at `ns`/`name`.
    fn route(&self, kind: &str, ns: &str, name: &str) {
        match kind {
            gw::HTTP_ROUTE => send(&self.http_routes, ns, name),
            gw::GRPC_ROUTE => send(&self.grpc_routes, ns, name),
            gw::TLS_ROUTE => send(&self.tls_routes, ns, name),
            gw::TCP_ROUTE => send(&self.tcp_routes, ns, name),
            gw::UDP_ROUTE => send(&self.udp_routes, ns, name),
            _ => {}
        }
    }

    /// The routes that name the Gateway `key`.
    fn routes_of(&self, world: &GatewayWorld, key: &(String, String)) {
        for (kind, ns, name) in world.routes_of(key) {
            self.route(kind, &ns, &name);
        }
    }

    /// Every Gateway and route.
    fn everything(&self, world: &GatewayWorld) {
        for g in world.gateways.state() {
            self.gateway(&key(g.as_ref()));
        }
        send_all(&self.http_routes, &world.http_routes);
        send_all(&self.grpc_routes, &world.grpc_routes);
        send_all(&self.tls_routes, &world.tls_routes);
        send_all(&self.tcp_routes, &world.tcp_routes);
        send_all(&self.udp_routes, &world.udp_routes);
    }
}

fn key<K: Resource>(object: &K) -> (String, String) {
    (object.namespace().unwrap_or_default(), object.name_any())
}

/// Starts the watches of the world (registered with `readiness`), each
/// until `shutdown`; of the experimental route kinds, only those `served`.
pub fn start(
    client: &kube::Client,
    served: ServedRoutes,
    triggers: &KindTriggers,
    readiness: &Readiness,
    shutdown: &CancellationToken,
) -> GatewayWorld {
    let (gateways, gateway_changes) =
        Watch::new("gateways (world)", Api::<Gateway>::all(client.clone()))
            .without_managed_fields()
            .changes(readiness, shutdown);
    let (http_routes, http_changes) =
        Watch::new("httproutes (world)", Api::<HttpRoute>::all(client.clone()))
            .without_managed_fields()
            .changes(readiness, shutdown);
    let (grpc_routes, grpc_changes) =
        Watch::new("grpcroutes (world)", Api::<GrpcRoute>::all(client.clone()))
            .without_managed_fields()
            .changes(readiness, shutdown);
    let (tls_routes, tls_changes) = optional_route_watch::<TlsRoute>(
        served.tls,
        "tlsroutes (world)",
        client,
        readiness,
        shutdown,
    );
    let (tcp_routes, tcp_changes) = optional_route_watch::<TcpRoute>(
        served.tcp,
        "tcproutes (world)",
        client,
        readiness,
        shutdown,
    );
    let (udp_routes, udp_changes) = optional_route_watch::<UdpRoute>(
        served.udp,
        "udproutes (world)",
        client,
        readiness,
        shutdown,
    );
    let (grants, grant_changes) = Watch::new(
        "referencegrants",
        Api::<ReferenceGrant>::all(client.clone()),
    )
    .without_managed_fields()
    .changes(readiness, shutdown);
    let (classes, class_changes) =
        Watch::new("gatewayclasses", Api::<GatewayClass>::all(client.clone()))
            .without_managed_fields()
            .changes(readiness, shutdown);
    let world = GatewayWorld {
        gateways,
        http_routes,
        grpc_routes,
        tls_routes,
        tcp_routes,
        udp_routes,
        grants,
        classes,
    };
    {
        let (world, t) = (world.clone(), triggers.clone());
        tokio::spawn(gateway_changes.for_each(move |change| {
            match change {
                Change::Applied { new, .. } => t.routes_of(&world, &key(&new)),
                Change::Deleted(old) => t.routes_of(&world, &key(&old)),
                Change::Relisted => t.everything(&world),
                Change::Failed(_) | Change::Restored => {}
            }
            futures::future::ready(())
        }));
    }
    spawn_route_changes(http_changes, &world, triggers);
    spawn_route_changes(grpc_changes, &world, triggers);
    if let Some(changes) = tls_changes {
        spawn_route_changes(changes, &world, triggers);
    }
    if let Some(changes) = tcp_changes {
        spawn_route_changes(changes, &world, triggers);
    }
    if let Some(changes) = udp_changes {
        spawn_route_changes(changes, &world, triggers);
    }
    {
        let (world, t) = (world.clone(), triggers.clone());
        tokio::spawn(grant_changes.for_each(move |change| {
            if !matches!(change, Change::Failed(_) | Change::Restored) {
                t.everything(&world);
            }
            futures::future::ready(())
        }));
    }
    {
        let (world, t) = (world.clone(), triggers.clone());
        tokio::spawn(class_changes.for_each(move |change| {
            let class = match change {
                Change::Applied { new, .. } => Some(new.name_any()),
                Change::Deleted(old) => Some(old.name_any()),
                Change::Relisted => None,
                Change::Failed(_) | Change::Restored => return futures::future::ready(()),
            };
            for c in world.classes.state() {
                if class.as_ref().is_none_or(|n| *n == c.name_any()) {
                    let _ = t.classes.unbounded_send(c.name_any());
                }
            }
            for g in world.gateways.state() {
                if class
                    .as_ref()
                    .is_none_or(|n| *n == g.spec.gateway_class_name)
                {
                    t.gateway(&key(g.as_ref()));
                }
            }
            futures::future::ready(())
        }));
    }
    world
}

/// The watch of a route kind that may not be served: without it, an empty
/// store and no changes.
fn optional_route_watch<R>(
    served: bool,
    what: &str,
    client: &kube::Client,
    readiness: &Readiness,
    shutdown: &CancellationToken,
) -> (Store<R>, Option<BoxStream<'static, Change<R>>>)
where
    R: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    if !served {
        return (kube::runtime::reflector::store::<R>().0, None);
    }
    let (store, changes) = Watch::new(what, Api::<R>::all(client.clone()))
        .without_managed_fields()
        .changes(readiness, shutdown);
    (store, Some(changes.boxed()))
}

/// A route changed: the Gateways it names, before and after, requeue.
fn spawn_route_changes<R>(
    changes: impl futures::Stream<Item = Change<R>> + Send + 'static,
    world: &GatewayWorld,
    triggers: &KindTriggers,
) where
    R: Route + Resource + Send + Sync + 'static,
{
    let parents = |r: &R| -> Vec<(String, String)> {
        let ns = Route::meta(r).namespace.clone().unwrap_or_default();
        r.parent_refs()
            .iter()
            .filter_map(|p| p.gateway(&ns))
            .collect()
    };
    let (world, t) = (world.clone(), triggers.clone());
    tokio::spawn(changes.for_each(move |change| {
        match change {
            Change::Applied { old, new } => {
                for key in old.iter().flat_map(|o| parents(o)).chain(parents(&new)) {
                    t.gateway(&key);
                }
            }
            Change::Deleted(old) => {
                for key in parents(&old) {
                    t.gateway(&key);
                }
            }
            Change::Relisted => {
                for g in world.gateways.state() {
                    t.gateway(&key(g.as_ref()));
                }
            }
            Change::Failed(_) | Change::Restored => {}
        }
        futures::future::ready(())
    }));
}

/// The stores of a world (for tests of the pure parts that read one).
pub fn stores_from(
    gateways: Vec<Gateway>,
    http_routes: Vec<HttpRoute>,
    classes: Vec<GatewayClass>,
) -> GatewayWorld {
    fn store<K>(objects: Vec<K>) -> Store<K>
    where
        K: Resource + Clone + std::fmt::Debug + Send + Sync + 'static,
        K::DynamicType: Default + Eq + std::hash::Hash + Clone,
    {
        let (reader, mut writer) = kube::runtime::reflector::store::<K>();
        for o in objects {
            writer.apply_watcher_event(&kube::runtime::watcher::Event::Apply(o));
        }
        reader
    }
    GatewayWorld {
        gateways: store(gateways),
        http_routes: store(http_routes),
        grpc_routes: store(Vec::new()),
        tls_routes: store(Vec::new()),
        tcp_routes: store(Vec::new()),
        udp_routes: store(Vec::new()),
        grants: store(Vec::new()),
        classes: store(classes),
    }
}

/// Requeues the object `ns`/`name` of one kind (a closed channel: the
/// kind is not running, nothing to do).
fn send<K: Resource<DynamicType = ()>>(tx: &UnboundedSender<ObjectRef<K>>, ns: &str, name: &str) {
    let _ = tx.unbounded_send(ObjectRef::new(name).within(ns));
}

/// Requeues every cached object of one kind.
fn send_all<K: Resource<DynamicType = ()> + Clone>(
    tx: &UnboundedSender<ObjectRef<K>>,
    store: &Store<K>,
) {
    for object in store.state() {
        let _ = tx.unbounded_send(ObjectRef::from_obj(object.as_ref()));
    }
}
