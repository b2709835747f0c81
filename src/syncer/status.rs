//! Status up (pure): what of a leaf's downstream status its upstream leaf
//! should show, and whether a write is needed (only when they differ).
//!
//! An Ingress leaf shows its copy's `status.loadBalancer`; a Gateway or
//! route (HTTPRoute, GRPCRoute, TLSRoute, TCPRoute, UDPRoute) leaf its
//! copy's whole `status`, unchanged (the
//! conditions keep the downstream object's `observedGeneration`: the
//! controller's merge ignores it).

use serde_json::{Value, json};

use crate::labels;

/// Which part of a leaf's status travels up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// `status.loadBalancer.ingress` (Ingress).
    LoadBalancer,
    /// All of `status`, as the cluster's implementation wrote it (the
    /// Gateway API leaves).
    Whole,
}

impl Shape {
    /// The shape of `group`/`kind` leaves; `None` for a kind whose status
    /// does not travel.
    pub fn of(group: &str, kind: &str) -> Option<Self> {
        use labels::gateway_api as gw;
        match (group, kind) {
            ("networking.k8s.io", "Ingress") => Some(Shape::LoadBalancer),
            (
                gw::GROUP,
                gw::GATEWAY
                | gw::HTTP_ROUTE
                | gw::GRPC_ROUTE
                | gw::TLS_ROUTE
                | gw::TCP_ROUTE
                | gw::UDP_ROUTE,
            ) => Some(Shape::Whole),
            _ => None,
        }
    }
}

/// The load-balancer entries of an Ingress (`status.loadBalancer.ingress`),
/// empty when there are none.
pub fn load_balancer_entries(object: &Value) -> Vec<Value> {
    object
        .pointer("/status/loadBalancer/ingress")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// The status to apply to the upstream leaf so that it shows what the
/// downstream copy shows, or `None` when it already does. Without a copy,
/// an Ingress leaf loses its addresses; a Gateway API leaf keeps what it
/// shows (its status has no "empty" form: the copy comes back, or the leaf
/// goes).
pub fn status_update(
    upstream: &Value,
    downstream: Option<&Value>,
    api_version: &str,
    kind: &str,
) -> Option<Value> {
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    let status = match Shape::of(group, kind).unwrap_or(Shape::LoadBalancer) {
        Shape::LoadBalancer => {
            let wanted = downstream.map(load_balancer_entries).unwrap_or_default();
            if load_balancer_entries(upstream) == wanted {
                return None;
            }
            json!({"loadBalancer": {"ingress": wanted}})
        }
        Shape::Whole => {
            let wanted = downstream?.get("status").filter(|s| !s.is_null())?;
            if upstream.get("status") == Some(wanted) {
                return None;
            }
            wanted.clone()
        }
    };
    let meta = upstream.get("metadata")?;
    Some(json!({
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {
            "name": meta.get("name")?,
            "namespace": meta.get("namespace")?,
        },
        "status": status,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ingress(lb: Value) -> Value {
        json!({"metadata": {"name": "web--east", "namespace": "shop"}, "status": lb})
    }

    #[test]
    fn copies_the_downstream_addresses_when_they_differ() {
        let up = ingress(json!({}));
        let down = ingress(json!({"loadBalancer": {"ingress": [{"ip": "127.0.1.1"}]}}));
        let patch = status_update(&up, Some(&down), "networking.k8s.io/v1", "Ingress").unwrap();
        assert_eq!(
            patch,
            json!({
                "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                "metadata": {"name": "web--east", "namespace": "shop"},
                "status": {"loadBalancer": {"ingress": [{"ip": "127.0.1.1"}]}}
            })
        );
    }

    #[test]
    fn writes_nothing_when_equal() {
        let lb = json!({"loadBalancer": {"ingress": [{"hostname": "lb.example.test"}]}});
        assert_eq!(
            status_update(&ingress(lb.clone()), Some(&ingress(lb)), "v", "k"),
            None
        );
        // Absent, empty object and empty list all mean "no addresses".
        assert_eq!(
            status_update(
                &ingress(json!({"loadBalancer": {}})),
                Some(&ingress(json!({"loadBalancer": {"ingress": []}}))),
                "v",
                "k"
            ),
            None
        );
        assert_eq!(status_update(&ingress(json!(null)), None, "v", "k"), None);
    }

    #[test]
    fn clears_addresses_the_copy_no_longer_has() {
        let up = ingress(json!({"loadBalancer": {"ingress": [{"ip": "127.0.1.1"}]}}));
        let patch = status_update(&up, None, "v", "k").unwrap();
        assert_eq!(patch["status"], json!({"loadBalancer": {"ingress": []}}));
        let changed = ingress(json!({"loadBalancer": {"ingress": [{"ip": "127.0.1.2"}]}}));
        let patch = status_update(&up, Some(&changed), "v", "k").unwrap();
        assert_eq!(
            patch["status"]["loadBalancer"]["ingress"][0]["ip"],
            "127.0.1.2"
        );
    }

    fn gateway(status: Value) -> Value {
        json!({"metadata": {"name": "shop.web--east", "namespace": "kcp-ingress-cluster-east"},
               "status": status})
    }

    #[test]
    fn shapes_by_kind() {
        let gw = "gateway.networking.k8s.io";
        assert_eq!(
            Shape::of("networking.k8s.io", "Ingress"),
            Some(Shape::LoadBalancer)
        );
        for kind in ["Gateway", "HTTPRoute", "GRPCRoute"] {
            assert_eq!(Shape::of(gw, kind), Some(Shape::Whole), "{kind}");
        }
        assert_eq!(Shape::of(gw, "ReferenceGrant"), None);
        assert_eq!(Shape::of("", "Service"), None);
    }

    #[test]
    fn gateway_api_leaves_copy_the_whole_status_unchanged() {
        let api = "gateway.networking.k8s.io/v1";
        let programmed = json!({
            "addresses": [{"type": "IPAddress", "value": "127.0.1.1"}],
            "conditions": [{"type": "Programmed", "status": "True", "reason": "Programmed",
                            "observedGeneration": 7, "message": "",
                            "lastTransitionTime": "2026-01-01T00:00:00Z"}],
            "listeners": [{"name": "http", "attachedRoutes": 1, "conditions": [],
                           "supportedKinds": [{"kind": "HTTPRoute"}]}]
        });
        let pending = json!({"conditions": [{"type": "Programmed", "status": "Unknown",
            "reason": "Pending", "message": "Waiting for controller",
            "lastTransitionTime": "1970-01-01T00:00:00Z"}]});
        let up = gateway(pending);
        let down = gateway(programmed.clone());
        let patch = status_update(&up, Some(&down), api, "Gateway").unwrap();
        // The downstream generation is kept: the merge ignores it.
        assert_eq!(patch["status"], programmed);
        assert_eq!(patch["kind"], "Gateway");
        assert_eq!(patch["metadata"]["name"], "shop.web--east");
        // Equal: no write.
        assert_eq!(status_update(&down, Some(&down), api, "Gateway"), None);
        // No copy, or a copy with no status yet: the leaf keeps what it shows.
        assert_eq!(status_update(&up, None, api, "Gateway"), None);
        assert_eq!(
            status_update(&up, Some(&gateway(Value::Null)), api, "HTTPRoute"),
            None
        );
        // Routes likewise.
        let parents = json!({"parents": [{"controllerName": "kcp-ingress.dev/standin",
            "parentRef": {"name": "web--east"}, "conditions": []}]});
        let patch = status_update(
            &gateway(json!({})),
            Some(&gateway(parents.clone())),
            api,
            "GRPCRoute",
        )
        .unwrap();
        assert_eq!(patch["status"], parents);
    }
}
