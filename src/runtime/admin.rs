//! The admin server: `/livez`, `/readyz` (ready once the caches have
//! synced) and `/metrics` (Prometheus text format).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::registry::Registry;
use tracing::{info, warn};

use tokio_util::sync::CancellationToken;

/// What the admin server reports.
pub struct AdminState {
    ready: AtomicBool,
    registry: Registry,
}

impl AdminState {
    pub fn new(registry: Registry) -> Arc<Self> {
        Arc::new(Self {
            ready: AtomicBool::new(false),
            registry,
        })
    }

    /// Marks the process ready (its caches have synced).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    fn respond(&self, path: &str) -> (StatusCode, &'static str, String) {
        match path {
            "/livez" | "/healthz" => (StatusCode::OK, "text/plain", "ok\n".into()),
            "/readyz" if self.ready.load(Ordering::SeqCst) => {
                (StatusCode::OK, "text/plain", "ok\n".into())
            }
            "/readyz" => (
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                "caches not synced yet\n".into(),
            ),
            "/metrics" => {
                let mut text = String::new();
                match prometheus_client::encoding::text::encode(&mut text, &self.registry) {
                    Ok(()) => (
                        StatusCode::OK,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        text,
                    ),
                    Err(err) => (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "text/plain",
                        format!("{err}\n"),
                    ),
                }
            }
            _ => (
                StatusCode::NOT_FOUND,
                "text/plain",
                "not found: try /livez, /readyz, /metrics\n".into(),
            ),
        }
    }
}

/// Errors of the admin server.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {address} for the admin server: {source}")]
pub struct AdminError {
    address: SocketAddr,
    source: std::io::Error,
}

/// Binds `address` and serves until `shutdown`; returns the bound address
/// (useful with port 0).
pub async fn serve(
    address: SocketAddr,
    state: Arc<AdminState>,
    shutdown: CancellationToken,
) -> Result<SocketAddr, AdminError> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|source| AdminError { address, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| AdminError { address, source })?;
    info!(address = %bound, "admin server listening (/livez, /readyz, /metrics)");
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                _ = shutdown.cancelled() => return,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(err) => { warn!(%err, "admin server: accept failed"); continue; }
                },
            };
            let state = state.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                        let (status, content_type, body) = state.respond(request.uri().path());
                        let response = Response::builder()
                            .status(status)
                            .header(hyper::header::CONTENT_TYPE, content_type)
                            .body(Full::new(Bytes::from(body)))
                            .unwrap_or_default();
                        async move { Ok::<_, Infallible>(response) }
                    });
                let connection = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service);
                if let Err(err) = connection.await {
                    warn!(%err, "admin server: connection failed");
                }
            });
        }
    });
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use prometheus_client::metrics::counter::Counter;

    use super::*;

    #[test]
    fn endpoints() {
        let mut registry = Registry::default();
        let counter: Counter = Counter::default();
        registry.register("kcp_ingress_test", "a test counter", counter.clone());
        counter.inc();
        let state = AdminState::new(registry);
        assert_eq!(state.respond("/livez").0, StatusCode::OK);
        assert_eq!(state.respond("/readyz").0, StatusCode::SERVICE_UNAVAILABLE);
        state.set_ready(true);
        assert_eq!(state.respond("/readyz").0, StatusCode::OK);
        let (status, _, text) = state.respond("/metrics");
        assert_eq!(status, StatusCode::OK);
        assert!(text.contains("kcp_ingress_test_total 1"), "{text}");
        assert_eq!(state.respond("/nope").0, StatusCode::NOT_FOUND);
    }
}
