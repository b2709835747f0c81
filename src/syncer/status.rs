//! Status up (pure): a leaf Ingress's downstream `status.loadBalancer` is what
//! its upstream status should show; a write is needed only when they differ.

use serde_json::{Value, json};

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
/// downstream copy shows (nothing when there is no copy), or `None` when it
/// already does.
pub fn status_update(
    upstream: &Value,
    downstream: Option<&Value>,
    api_version: &str,
    kind: &str,
) -> Option<Value> {
    let wanted = downstream.map(load_balancer_entries).unwrap_or_default();
    if load_balancer_entries(upstream) == wanted {
        return None;
    }
    let meta = upstream.get("metadata")?;
    Some(json!({
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {
            "name": meta.get("name")?,
            "namespace": meta.get("namespace")?,
        },
        "status": {"loadBalancer": {"ingress": wanted}},
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
}
