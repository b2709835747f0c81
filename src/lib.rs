//! kcp-ingress: global ingress for a fleet of Kubernetes clusters, driven
//! from one control plane. See DESIGN.md for the resource model.

pub mod apis;
pub mod cli;
pub mod cluster_independent;
pub mod controller;
pub mod explain;
pub mod gateway;
pub mod gateway_api;
pub mod glbc;
pub mod hash;
pub mod labels;
pub mod mailbox;
pub mod runtime;
pub mod standin;
pub mod syncer;
