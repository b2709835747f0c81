//! What makes an object cluster-independent (pure): the fields a cluster
//! assigns by itself removed, so that the object can be created in any
//! cluster. Today only Services have such fields: clusterIP(s) unless
//! headless, healthCheckNodePort, and node ports no user set (read from
//! the object's managedFields). The controller strips a user's Service
//! this way before it embeds it in a `PlacedObject`; the syncer does the
//! same to what it applies downstream.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// Whether `api_version`/`kind` name a Service.
pub fn is_service(api_version: &str, kind: &str) -> bool {
    api_version == "v1" && kind == "Service"
}

/// Removes the fields a cluster assigns to a Service by itself.
pub fn strip_service_spec(spec: &mut Map<String, Value>, managed_fields: Option<&Value>) {
    let headless = spec.get("clusterIP").and_then(Value::as_str) == Some("None");
    if headless {
        spec.insert("clusterIPs".into(), Value::Array(vec!["None".into()]));
    } else {
        spec.remove("clusterIP");
        spec.remove("clusterIPs");
    }
    spec.remove("healthCheckNodePort");
    let user_ports = user_set_node_ports(managed_fields);
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for port in ports.iter_mut().filter_map(Value::as_object_mut) {
            let key = (
                port.get("port").and_then(Value::as_i64).unwrap_or_default(),
                port.get("protocol")
                    .and_then(Value::as_str)
                    .unwrap_or("TCP")
                    .to_string(),
            );
            let keep = match &user_ports {
                // No field ownership recorded (not a kube-apiserver): nothing
                // allocated these, so they are the user's.
                None => true,
                Some(set) => set.contains(&key),
            };
            if !keep {
                port.remove("nodePort");
            }
        }
    }
}

/// The (port, protocol) pairs of the Service ports whose `nodePort` some
/// field manager set (allocated node ports belong to no manager). `None`
/// when the object records no field ownership at all.
pub fn user_set_node_ports(managed_fields: Option<&Value>) -> Option<BTreeSet<(i64, String)>> {
    let entries = managed_fields?.as_array().filter(|a| !a.is_empty())?;
    let mut set = BTreeSet::new();
    for entry in entries {
        let Some(ports) = entry
            .pointer("/fieldsV1/f:spec/f:ports")
            .and_then(Value::as_object)
        else {
            continue;
        };
        for (key, fields) in ports {
            let Some(json) = key.strip_prefix("k:") else {
                continue;
            };
            if fields.get("f:nodePort").is_none() {
                continue;
            }
            let Ok(Value::Object(k)) = serde_json::from_str::<Value>(json) else {
                continue;
            };
            if let Some(port) = k.get("port").and_then(Value::as_i64) {
                let protocol = k.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
                set.insert((port, protocol.to_string()));
            }
        }
    }
    Some(set)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn stripped(spec: Value, managed: Option<Value>) -> Value {
        let mut spec = spec.as_object().unwrap().clone();
        strip_service_spec(&mut spec, managed.as_ref());
        Value::Object(spec)
    }

    #[test]
    fn assigned_fields_go_and_user_node_ports_stay() {
        let spec = json!({
            "type": "NodePort", "clusterIP": "10.0.0.7", "clusterIPs": ["10.0.0.7"],
            "healthCheckNodePort": 31000,
            "ports": [
                {"port": 80, "protocol": "TCP", "nodePort": 30080},
                {"port": 443, "protocol": "TCP", "nodePort": 30443}
            ]
        });
        // The user set the node port of 443 only.
        let managed = json!([{"manager": "kubectl", "operation": "Apply", "fieldsV1": {"f:spec": {"f:ports": {
            "k:{\"port\":443,\"protocol\":\"TCP\"}": {"f:nodePort": {}, "f:port": {}}
        }}}}]);
        assert_eq!(
            stripped(spec.clone(), Some(managed)),
            json!({"type": "NodePort", "ports": [
                {"port": 80, "protocol": "TCP"},
                {"port": 443, "protocol": "TCP", "nodePort": 30443}
            ]})
        );
        // No field ownership recorded: every node port is the user's.
        let kept = stripped(spec, None);
        assert_eq!(kept["ports"][0]["nodePort"], 30080);
        assert!(kept.get("clusterIP").is_none());
    }

    #[test]
    fn a_headless_service_stays_headless() {
        let spec = json!({"clusterIP": "None", "clusterIPs": ["None"], "ports": [{"port": 80}]});
        assert_eq!(
            stripped(spec, Some(json!([]))),
            json!({"clusterIP": "None", "clusterIPs": ["None"], "ports": [{"port": 80}]})
        );
        assert!(is_service("v1", "Service") && !is_service("apps/v1", "Deployment"));
    }
}
