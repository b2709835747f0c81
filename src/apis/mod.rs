//! The kcp-ingress custom resources (group `kcp-ingress.dev`, version
//! `v1alpha1`) and the generator of their CRD manifests.

pub mod cluster;
pub mod condition;
pub mod crdgen;
pub mod global_ingress;
pub mod placed_object;

pub use cluster::{Cluster, ClusterSpec, ClusterStatus, KubeconfigSecretRef, SyncedResource};
pub use global_ingress::{
    ClusterIngressStatus, DnsRecordStatus, GlobalIngress, GlobalIngressSpec, GlobalIngressStatus,
    LoadBalancerAddress, RootRef,
};
pub use placed_object::{PlacedObject, PlacedObjectSpec};
