//! What the controller drops from the objects it caches before they are
//! stored (pure): the parts only other components read.

use crate::apis::GlobalIngress;
use crate::labels::conditions;

/// A GlobalIngress as the controller caches it: without what only the glbc
/// writes and reads — the published DNS records, when they were last
/// published and the `DNSPublished` condition. The controller compares
/// its own status (per-cluster addresses and health, observed generation,
/// its conditions) and reads the glbc's probe verdicts; it applies its
/// status with its own field manager, so what it does not cache it never
/// writes.
pub fn global_ingress(global: &mut GlobalIngress) {
    if let Some(status) = global.status.as_mut() {
        status.dns_records = Vec::new();
        status.last_published_time = None;
        status
            .conditions
            .retain(|c| c.type_ != conditions::DNS_PUBLISHED);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_global_ingress_keeps_what_the_controller_reads() {
        let mut global: GlobalIngress = serde_json::from_value(json!({
            "apiVersion": "kcp-ingress.dev/v1alpha1",
            "kind": "GlobalIngress",
            "metadata": {"name": "web", "namespace": "shop", "finalizers": ["x"]},
            "spec": {"hosts": ["web.example.com"]},
            "status": {
                "observedGeneration": 2,
                "clusters": [{"cluster": "east", "healthy": true,
                              "addresses": [{"ip": "10.0.0.1"}]}],
                "dnsRecords": [{"name": "web.example.com.", "recordType": "A", "ttl": 60,
                                "targets": ["10.0.0.1"], "state": "Published"}],
                "lastPublishedTime": "2026-01-01T00:00:00Z",
                "probes": [{"cluster": "east", "address": "10.0.0.1", "passing": false}],
                "conditions": [
                    {"type": "Ready", "status": "True", "reason": "Placed", "message": "",
                     "lastTransitionTime": "2026-01-01T00:00:00Z"},
                    {"type": "DNSPublished", "status": "True", "reason": "Published",
                     "message": "long", "lastTransitionTime": "2026-01-01T00:00:00Z"},
                    {"type": "Degraded", "status": "False", "reason": "Fine", "message": "",
                     "lastTransitionTime": "2026-01-01T00:00:00Z"}
                ]
            }
        }))
        .unwrap();
        let before = global.clone();
        global_ingress(&mut global);
        let (status, was) = (global.status.unwrap(), before.status.unwrap());
        assert!(status.dns_records.is_empty());
        assert_eq!(status.last_published_time, None);
        let types: Vec<&str> = status.conditions.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, ["Ready", "Degraded"]);
        assert_eq!(status.clusters, was.clusters);
        assert_eq!(status.probes, was.probes);
        assert_eq!(status.observed_generation, Some(2));
        assert!(status.probes_fail("east"));
        assert_eq!(global.spec, before.spec);
        assert_eq!(global.metadata, before.metadata);
        let mut bare = GlobalIngress::new("web", before.spec.clone());
        global_ingress(&mut bare);
        assert_eq!(bare.status, None);
    }
}
