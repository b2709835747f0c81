//! A stand-in for a physical cluster's load balancer, for the test
//! environment and local set-up, where a cluster is a bare kube-apiserver
//! with no ingress controller.
//!
//! It gives every Ingress of its cluster one address (as a cloud load
//! balancer would write `status.loadBalancer`), and answers HTTP on that
//! address with the cluster's name, so that a request which follows a DNS
//! answer shows which cluster it reached.
//!
//! It is also the cluster's Gateway API implementation, controllerName
//! `kcp-ingress.dev/standin` (the test environments create GatewayClass
//! `standin` of it): GatewayClasses Accepted, Gateways Accepted and
//! Programmed with that one address, routes' parents Accepted and
//! ResolvedRefs, as `kcp_ingress::standin` computes them.
//! `--gateways-not-programmed` makes it report its Gateways
//! `Programmed=False` (address still reported). A cluster that does not
//! serve the Gateway API only logs the failing watches. The experimental
//! route kinds (TLSRoute, TCPRoute, UDPRoute) are watched only when the
//! cluster serves them at start-up.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::pin::pin;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use futures::StreamExt;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::networking::v1::Ingress;
use kcp_ingress::runtime::{self, CancellationToken};
use kcp_ingress::{labels, standin};
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use tracing::{info, warn};

/// Stand-in load balancer of one physical cluster (test environment only).
#[derive(Debug, Parser)]
#[command(name = "standin-lb", version)]
struct Args {
    /// Kubeconfig of the physical cluster.
    #[arg(long, value_name = "FILE")]
    kubeconfig: PathBuf,
    /// Name of the cluster, answered over HTTP.
    #[arg(long, value_name = "NAME")]
    cluster: String,
    /// The address written into every Ingress's status, and served on
    /// (a loopback address such as 127.0.1.1).
    #[arg(long, value_name = "IP")]
    address: IpAddr,
    /// Port the HTTP answer is served on.
    #[arg(long, value_name = "PORT", default_value_t = 80)]
    port: u16,
    /// Report this hostname in Ingress and Gateway status instead of the
    /// address (some cloud load balancers give only a name).
    #[arg(long, value_name = "NAME")]
    hostname: Option<String>,
    /// While this file exists and holds an HTTP status code (e.g. `500`),
    /// answer every request with that code: the cluster's "application"
    /// fails while its API stays healthy (health-check tests).
    #[arg(long, value_name = "FILE")]
    status_file: Option<PathBuf>,
    /// Report every Gateway of the stand-in's classes Programmed=False (a
    /// cluster whose data plane does not take the configuration).
    #[arg(long)]
    gateways_not_programmed: bool,
}

/// Field manager of the stand-in's status writes.
const MANAGER: &str = labels::standin::MANAGER;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_ansi(false)
        .init();
    let args = Args::parse();
    let shutdown = runtime::shutdown_on_signals();
    let client = runtime::client(Some(&args.kubeconfig), None).await?;
    let listen = SocketAddr::new(args.address, args.port);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    info!(cluster = %args.cluster, %listen, "stand-in load balancer serving");
    let server = tokio::spawn(serve(
        listener,
        args.cluster.clone(),
        args.status_file.clone(),
        shutdown.clone(),
    ));
    let address = match &args.hostname {
        Some(hostname) => standin::Address::Hostname(hostname.clone()),
        None => standin::Address::Ip(args.address.to_string()),
    };
    let gateways = tokio::spawn(gateway_api::implement(
        client.clone(),
        address,
        !args.gateways_not_programmed,
        shutdown.clone(),
    ));
    fill_status(client, &args, shutdown).await;
    server.await?;
    gateways.await?;
    Ok(())
}

/// Keeps `status.loadBalancer.ingress` of every Ingress at our one entry.
async fn fill_status(client: kube::Client, args: &Args, shutdown: CancellationToken) {
    let entry = match &args.hostname {
        Some(hostname) => json!({"hostname": hostname}),
        None => json!({"ip": args.address.to_string()}),
    };
    let (store, changes) = runtime::Watch::new("ingresses", Api::<Ingress>::all(client.clone()))
        .without_managed_fields()
        .changes(&runtime::Readiness::default(), &shutdown);
    let mut changes = pin!(changes);
    while let Some(change) = changes.next().await {
        let ingresses = match change {
            runtime::Change::Applied { new, .. } => vec![Arc::new(new)],
            runtime::Change::Relisted => store.state(),
            _ => continue,
        };
        for ingress in ingresses {
            assign(&client, &ingress, &entry).await;
        }
    }
}

/// Writes `entry` as the only address of `ingress`, unless it is already.
async fn assign(client: &kube::Client, ingress: &Ingress, entry: &serde_json::Value) {
    let current = ingress
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(serde_json::to_value)
        .transpose()
        .unwrap_or_default();
    if current == Some(json!([entry.clone()])) {
        return;
    }
    let ns = ingress.namespace().unwrap_or_default();
    let api: Api<Ingress> = Api::namespaced(client.clone(), &ns);
    let body = json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "status": {"loadBalancer": {"ingress": [entry.clone()]}},
    });
    match api
        .patch_status(
            &ingress.name_any(),
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await
    {
        Ok(_) => {
            info!(namespace = %ns, ingress = %ingress.name_any(), %entry, "assigned address")
        }
        Err(err) => {
            warn!(namespace = %ns, ingress = %ingress.name_any(), %err, "cannot write status")
        }
    }
}

/// The stand-in's Gateway API implementation: watches, and a pass that
/// writes every status that differs from what [`standin`] computes.
mod gateway_api {
    use std::collections::{BTreeMap, BTreeSet, HashMap};
    use std::sync::Arc;

    use k8s_openapi::api::core::v1::Service;
    use k8s_openapi::jiff::Timestamp;
    use kcp_ingress::gateway::route::Route;
    use kcp_ingress::gateway_api::gateway::Gateway;
    use kcp_ingress::gateway_api::gateway_class::GatewayClass;
    use kcp_ingress::gateway_api::grpc_route::GrpcRoute;
    use kcp_ingress::gateway_api::http_route::HttpRoute;
    use kcp_ingress::gateway_api::tcp_route::TcpRoute;
    use kcp_ingress::gateway_api::tls_route::TlsRoute;
    use kcp_ingress::gateway_api::udp_route::UdpRoute;
    use kcp_ingress::labels::gateway_api as gw;
    use kcp_ingress::runtime::{self, CancellationToken, Readiness};
    use kcp_ingress::standin::{self, Address, RouteInput};
    use kube::api::{Api, Patch, PatchParams};
    use kube::core::ObjectMeta;
    use kube::runtime::reflector::Store;
    use kube::{Resource, ResourceExt};
    use serde::Serialize;
    use serde::de::DeserializeOwned;
    use serde_json::{Value, json};
    use tokio::sync::Notify;
    use tracing::{info, warn};

    use super::MANAGER;

    /// Watches GatewayClasses, Gateways, HTTPRoutes, GRPCRoutes, the
    /// TLSRoutes, TCPRoutes and UDPRoutes the cluster serves, and
    /// Services; after every change, one pass over all of them.
    pub async fn implement(
        client: kube::Client,
        address: Address,
        programmed: bool,
        shutdown: CancellationToken,
    ) {
        let wake = Arc::new(Notify::new());
        let readiness = Readiness::default();
        fn watch<K>(
            what: &str,
            api: Api<K>,
            wake: &Arc<Notify>,
            readiness: &Readiness,
            shutdown: &CancellationToken,
        ) -> Store<K>
        where
            K: Resource<DynamicType = ()>
                + Clone
                + DeserializeOwned
                + std::fmt::Debug
                + Send
                + Sync
                + 'static,
        {
            let wake = wake.clone();
            runtime::Watch::new(what, api)
                .without_managed_fields()
                .spawn(readiness, shutdown, move |change| {
                    if !matches!(change, runtime::Change::Failed(_)) {
                        wake.notify_one();
                    }
                })
        }
        /// The watch of a kind the cluster may not serve: an empty store
        /// when it does not.
        async fn optional<K>(
            client: &kube::Client,
            what: &str,
            wake: &Arc<Notify>,
            readiness: &Readiness,
            shutdown: &CancellationToken,
        ) -> Store<K>
        where
            K: Resource<DynamicType = ()>
                + Clone
                + DeserializeOwned
                + std::fmt::Debug
                + Send
                + Sync
                + 'static,
        {
            if runtime::require_served::<K>(client).await.is_err() {
                info!(
                    kind = what,
                    "not served by this cluster; not implemented here"
                );
                return kube::runtime::reflector::store::<K>().0;
            }
            watch(what, Api::all(client.clone()), wake, readiness, shutdown)
        }
        let stores = Stores {
            classes: watch(
                "gatewayclasses",
                Api::all(client.clone()),
                &wake,
                &readiness,
                &shutdown,
            ),
            gateways: watch(
                "gateways",
                Api::all(client.clone()),
                &wake,
                &readiness,
                &shutdown,
            ),
            http: watch(
                "httproutes",
                Api::all(client.clone()),
                &wake,
                &readiness,
                &shutdown,
            ),
            grpc: watch(
                "grpcroutes",
                Api::all(client.clone()),
                &wake,
                &readiness,
                &shutdown,
            ),
            tls: optional(&client, "tlsroutes", &wake, &readiness, &shutdown).await,
            tcp: optional(&client, "tcproutes", &wake, &readiness, &shutdown).await,
            udp: optional(&client, "udproutes", &wake, &readiness, &shutdown).await,
            services: watch(
                "services",
                Api::all(client.clone()),
                &wake,
                &readiness,
                &shutdown,
            ),
        };
        let mut written = Written::default();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = wake.notified() => {}
            }
            pass(&client, &stores, &address, programmed, &mut written).await;
        }
    }

    /// What the stand-in last wrote to each object (by uid), and the
    /// resourceVersion it saw then: while its cache still shows that
    /// version, the same status is not written again.
    #[derive(Default)]
    struct Written(HashMap<String, (String, Value)>);

    impl Written {
        /// `(uid, resourceVersion)` of an object's metadata.
        fn seen(meta: &ObjectMeta) -> (String, String) {
            (
                meta.uid.clone().unwrap_or_default(),
                meta.resource_version.clone().unwrap_or_default(),
            )
        }

        fn already(&self, seen: &(String, String), status: &Value) -> bool {
            self.0
                .get(&seen.0)
                .is_some_and(|(rv, last)| *rv == seen.1 && last == status)
        }
    }

    struct Stores {
        classes: Store<GatewayClass>,
        gateways: Store<Gateway>,
        http: Store<HttpRoute>,
        grpc: Store<GrpcRoute>,
        tls: Store<TlsRoute>,
        tcp: Store<TcpRoute>,
        udp: Store<UdpRoute>,
        services: Store<Service>,
    }

    fn now() -> String {
        Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    }

    fn route_input<'a, R: Route>(kind: &'a str, route: &R, object: &'a Value) -> RouteInput<'a> {
        RouteInput {
            kind,
            object,
            parent_refs: route.parent_refs(),
            hostnames: route.hostnames(),
        }
    }

    async fn pass(
        client: &kube::Client,
        stores: &Stores,
        address: &Address,
        programmed: bool,
        written: &mut Written,
    ) {
        let now = now();
        let mut ours = BTreeSet::new();
        for class in stores.classes.state() {
            let json = to_json(&*class);
            if !standin::is_standin_class(&json) {
                continue;
            }
            ours.insert(class.name_any());
            let wanted = standin::class_status(&json, &now);
            if standin::differs(json.get("status"), &wanted) {
                let api: Api<GatewayClass> = Api::all(client.clone());
                let seen = Written::seen(&class.metadata);
                write(
                    &api,
                    "GatewayClass",
                    &class.name_any(),
                    wanted,
                    seen,
                    written,
                )
                .await;
            }
        }
        let gateways: BTreeMap<(String, String), Arc<Gateway>> = stores
            .gateways
            .state()
            .into_iter()
            .filter(|g| ours.contains(&g.spec.gateway_class_name))
            .map(|g| ((g.namespace().unwrap_or_default(), g.name_any()), g))
            .collect();
        let http = with_json(&stores.http);
        let grpc = with_json(&stores.grpc);
        let tls = with_json(&stores.tls);
        let tcp = with_json(&stores.tcp);
        let udp = with_json(&stores.udp);
        let routes: Vec<RouteInput> = http
            .iter()
            .map(|(r, j)| route_input(gw::HTTP_ROUTE, &**r, j))
            .chain(
                grpc.iter()
                    .map(|(r, j)| route_input(gw::GRPC_ROUTE, &**r, j)),
            )
            .chain(tls.iter().map(|(r, j)| route_input(gw::TLS_ROUTE, &**r, j)))
            .chain(tcp.iter().map(|(r, j)| route_input(gw::TCP_ROUTE, &**r, j)))
            .chain(udp.iter().map(|(r, j)| route_input(gw::UDP_ROUTE, &**r, j)))
            .collect();
        let services: BTreeSet<(String, String)> = stores
            .services
            .state()
            .iter()
            .map(|s| (s.namespace().unwrap_or_default(), s.name_any()))
            .collect();

        // The routes that name each Gateway as a parent: a Gateway looks at
        // its own routes only, not at every route of the cluster.
        let mut routes_of: BTreeMap<(String, String), Vec<&RouteInput>> = BTreeMap::new();
        for route in &routes {
            for parent in route.parent_gateways() {
                routes_of.entry(parent).or_default().push(route);
            }
        }
        for (key @ (ns, name), gateway) in &gateways {
            let mut attached: BTreeMap<String, i32> = BTreeMap::new();
            for route in routes_of.get(key).into_iter().flatten() {
                for listener in standin::attached_listeners(route, gateway, ns, name) {
                    *attached.entry(listener).or_default() += 1;
                }
            }
            let previous = gateway.status.as_ref().map(to_json);
            let wanted = standin::gateway_status(
                gateway,
                previous.as_ref(),
                address,
                programmed,
                &attached,
                &now,
            );
            if standin::differs(previous.as_ref(), &wanted) {
                let api: Api<Gateway> = Api::namespaced(client.clone(), ns);
                let seen = Written::seen(&gateway.metadata);
                write(&api, "Gateway", name, wanted, seen, written).await;
            }
        }
        let find = |ns: &str, name: &str| {
            gateways
                .get(&(ns.to_string(), name.to_string()))
                .map(|g| &**g)
        };
        let exists = |ns: &str, name: &str| services.contains(&(ns.to_string(), name.to_string()));
        for route in &routes {
            let wanted = standin::route_parents(route, find, exists, &now);
            if !standin::route_status_differs(route.object.get("status"), &wanted) {
                continue;
            }
            let ns = route.namespace();
            let name = route
                .object
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let meta: ObjectMeta = route
                .object
                .get("metadata")
                .cloned()
                .and_then(|m| serde_json::from_value(m).ok())
                .unwrap_or_default();
            let seen = Written::seen(&meta);
            let c = client.clone();
            match route.kind {
                gw::HTTP_ROUTE => {
                    let api: Api<HttpRoute> = Api::namespaced(c, ns);
                    write(&api, route.kind, name, wanted, seen, written).await;
                }
                gw::GRPC_ROUTE => {
                    let api: Api<GrpcRoute> = Api::namespaced(c, ns);
                    write(&api, route.kind, name, wanted, seen, written).await;
                }
                gw::TLS_ROUTE => {
                    let api: Api<TlsRoute> = Api::namespaced(c, ns);
                    write(&api, route.kind, name, wanted, seen, written).await;
                }
                gw::TCP_ROUTE => {
                    let api: Api<TcpRoute> = Api::namespaced(c, ns);
                    write(&api, route.kind, name, wanted, seen, written).await;
                }
                _ => {
                    let api: Api<UdpRoute> = Api::namespaced(c, ns);
                    write(&api, route.kind, name, wanted, seen, written).await;
                }
            }
        }
    }

    /// Every object of `store`, with its JSON.
    fn with_json<R>(store: &Store<R>) -> Vec<(Arc<R>, Value)>
    where
        R: Resource<DynamicType = ()> + Serialize + Clone,
    {
        store
            .state()
            .into_iter()
            .map(|r| {
                let json = to_json(&*r);
                (r, json)
            })
            .collect()
    }

    fn to_json<T: Serialize>(object: &T) -> Value {
        serde_json::to_value(object).unwrap_or(Value::Null)
    }

    /// Applies `status` to `kind` `name`'s status subresource, unless it
    /// was written already to the version `seen`.
    async fn write<K>(
        api: &Api<K>,
        kind: &str,
        name: &str,
        status: Value,
        seen: (String, String),
        written: &mut Written,
    ) where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    {
        if written.already(&seen, &status) {
            return;
        }
        let body = json!({
            "apiVersion": K::api_version(&()),
            "kind": kind,
            "status": &status,
        });
        match api
            .patch_status(
                name,
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(&body),
            )
            .await
        {
            Ok(_) => {
                info!(kind, name, "wrote status");
                written.0.insert(seen.0, (seen.1, status));
            }
            Err(err) => warn!(kind, name, %err, "cannot write status"),
        }
    }
}

/// Answers every HTTP request with the cluster's name.
async fn serve(
    listener: tokio::net::TcpListener,
    cluster: String,
    status_file: Option<PathBuf>,
    shutdown: CancellationToken,
) {
    loop {
        let (stream, _) = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => { warn!(%err, "accept failed"); continue; }
            },
        };
        let cluster = cluster.clone();
        let status_file = status_file.clone();
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                    let cluster = cluster.clone();
                    let status_file = status_file.clone();
                    async move {
                        let code = match &status_file {
                            Some(file) => tokio::fs::read_to_string(file)
                                .await
                                .ok()
                                .and_then(|s| s.trim().parse::<u16>().ok())
                                .unwrap_or(200),
                            None => 200,
                        };
                        let host = request
                            .headers()
                            .get(hyper::header::HOST)
                            .and_then(|h| h.to_str().ok())
                            .unwrap_or("")
                            .to_string();
                        let response = Response::builder()
                            .status(code)
                            .header("X-Cluster", cluster.as_str())
                            .header(hyper::header::CONTENT_TYPE, "text/plain")
                            .body(Full::new(Bytes::from(format!("{cluster}\nhost {host}\n"))))
                            .unwrap_or_default();
                        Ok::<_, Infallible>(response)
                    }
                });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            if let Err(err) = connection.await {
                warn!(%err, "HTTP connection failed");
            }
        });
    }
}
