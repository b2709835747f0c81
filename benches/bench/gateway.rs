//! Scenario 1b: single Gateway API roots. A Gateway and its HTTPRoute are
//! applied together, one pair at a time, and each is timed until the root
//! Gateway's merged status holds every cluster's address and until DNS
//! answers the route's hostname with all of them.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use kcp_ingress::gateway_api::gateway::Gateway;
use kcp_ingress::gateway_api::gateway_class::GatewayClass;
use kcp_ingress::gateway_api::http_route::HttpRoute;
use kcp_ingress::labels;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::env::{BACKEND, Env, NS, lb_address};
use crate::observe::Dns;

/// The control plane's GatewayClass whose Gateways are roots.
const ROOT_CLASS: &str = "kcp-ingress";

/// One pair's convergence: (root Gateway status merged, DNS), seconds.
pub type GatewaySingle = (f64, f64);

/// Applies `n` Gateway + HTTPRoute pairs one at a time (Gateway `g<i>` with
/// a wildcard listener `*.g<i>.gw.<zone>`, route hostname
/// `www.g<i>.gw.<zone>`); for each, the time from the first create to the
/// two milestones. A pair that misses its deadline is an error.
pub async fn single(env: &Env, n: usize, deadline: Duration) -> anyhow::Result<Vec<GatewaySingle>> {
    let dns = Dns::of(env)?;
    Api::<GatewayClass>::all(env.cp.clone())
        .patch(
            ROOT_CLASS,
            &PatchParams::apply("kcp-ingress-bench").force(),
            &Patch::Apply(json!({
                "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
                "metadata": {"name": ROOT_CLASS},
                "spec": {"controllerName": labels::gateway_api::CONTROLLER_NAME},
            })),
        )
        .await
        .context("creating the root GatewayClass")?;
    let gateways: Api<Gateway> = Api::namespaced(env.cp.clone(), NS);
    let routes: Api<HttpRoute> = Api::namespaced(env.cp.clone(), NS);
    let want: Vec<std::net::IpAddr> = (1..=env.n_clusters)
        .map(|k| std::net::IpAddr::V4(lb_address(k)))
        .collect();
    let want_text: BTreeSet<String> = want.iter().map(ToString::to_string).collect();
    let port = env.http_port();
    let mut out = Vec::new();
    for i in 0..n {
        let name = format!("g{i}");
        let host = format!("www.g{i}.gw.{}", dns.zone);
        let gateway: Gateway = serde_json::from_value(json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"gatewayClassName": ROOT_CLASS, "listeners": [{
                "name": "http", "protocol": "HTTP", "port": port,
                "hostname": format!("*.g{i}.gw.{}", dns.zone),
            }]},
        }))?;
        let route: HttpRoute = serde_json::from_value(json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": name, "namespace": NS},
            "spec": {
                "parentRefs": [{"name": name}],
                "hostnames": [host],
                "rules": [{"backendRefs": [{"name": BACKEND, "port": 80}]}],
            },
        }))?;
        let t0 = Instant::now();
        let wall0 = k8s_openapi::jiff::Timestamp::now();
        gateways
            .create(&PostParams::default(), &gateway)
            .await
            .with_context(|| format!("creating Gateway {name}"))?;
        routes
            .create(&PostParams::default(), &route)
            .await
            .with_context(|| format!("creating HTTPRoute {name}"))?;
        let (mut merged, mut dns_at) = (None, None);
        let mut polls = 0u32;
        while merged.is_none() || dns_at.is_none() {
            if t0.elapsed() > deadline {
                bail!(
                    "Gateway {name} not converged within {deadline:?} (merged {merged:?}, DNS {dns_at:?})"
                );
            }
            // The status is read every 20 ms, DNS every 5 ms.
            if merged.is_none() && polls.is_multiple_of(4) {
                let addresses: BTreeSet<String> = gateways
                    .get_status(&name)
                    .await?
                    .status
                    .and_then(|s| s.addresses)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|a| a.value)
                    .collect();
                if addresses == want_text {
                    merged = Some(Instant::now());
                }
            }
            if dns_at.is_none() && dns.addresses(&host).await.is_ok_and(|a| a == want) {
                dns_at = Some(Instant::now());
            }
            polls += 1;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let since = |at: Option<Instant>| at.unwrap_or(t0).saturating_duration_since(t0);
        out.push((since(merged).as_secs_f64(), since(dns_at).as_secs_f64()));
        eprintln!(
            "bench-gw {name} at {wall0}: merged {:.3} dns {:.3}",
            since(merged).as_secs_f64(),
            since(dns_at).as_secs_f64()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(out)
}
