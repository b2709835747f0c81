//! `PlacedObject`: an object placed on one cluster, carried in that
//! cluster's namespace of the control plane without being created there.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An object placed on the cluster whose namespace holds this
/// PlacedObject. Its syncer creates `spec.object` in the physical cluster;
/// in the control plane it is only data (a Service copied natively would
/// get a ClusterIP and node ports there, a Deployment would run).
#[derive(CustomResource, Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[kube(
    group = "kcp-ingress.dev",
    version = "v1alpha1",
    kind = "PlacedObject",
    doc = "An object placed on the cluster of this namespace, created there by its syncer.",
    namespaced,
    printcolumn = r#"{"name":"Kind","type":"string","jsonPath":".spec.object.kind"}"#,
    printcolumn = r#"{"name":"Namespace","type":"string","jsonPath":".spec.object.metadata.namespace"}"#,
    printcolumn = r#"{"name":"Name","type":"string","jsonPath":".spec.object.metadata.name"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct PlacedObjectSpec {
    /// The object to create in the physical cluster, whole (apiVersion,
    /// kind, metadata with its downstream namespace and name, spec).
    #[schemars(schema_with = "embedded_object")]
    pub object: serde_json::Value,
}

/// An embedded Kubernetes object of any kind, kept as it is.
fn embedded_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-embedded-resource": true,
        "x-kubernetes-preserve-unknown-fields": true
    })
}
