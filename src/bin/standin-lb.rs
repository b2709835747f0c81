//! A stand-in for a physical cluster's load balancer, for the test
//! environment and local set-up, where a cluster is a bare kube-apiserver
//! with no ingress controller.
//!
//! It gives every Ingress of its cluster one address (as a cloud load
//! balancer would write `status.loadBalancer`), and answers HTTP on that
//! address with the cluster's name, so that a request which follows a DNS
//! answer shows which cluster it reached.

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
    /// Report this hostname in Ingress status instead of the address
    /// (some cloud load balancers give only a name).
    #[arg(long, value_name = "NAME")]
    hostname: Option<String>,
    /// While this file exists and holds an HTTP status code (e.g. `500`),
    /// answer every request with that code: the cluster's "application"
    /// fails while its API stays healthy (health-check tests).
    #[arg(long, value_name = "FILE")]
    status_file: Option<PathBuf>,
}

/// Field manager of the stand-in's status writes.
const MANAGER: &str = "standin-lb";

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
    fill_status(client, &args, shutdown).await;
    server.await?;
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
