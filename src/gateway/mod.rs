//! Gateway API roots (pure core; wired in `controller::kinds::gateway`): a root Gateway and its
//! routes split into per-cluster leaves, leaf status merged back, route
//! hostnames for DNS. The types are the generated ones in
//! [`crate::gateway_api`].
//!
//! - [`hostnames`]: route ∩ listener hostname, wildcards included;
//! - [`attach`]: the listeners a route attaches to, and its DNS names;
//! - [`route`]: HTTPRoute and GRPCRoute behind one trait;
//! - [`translate`]: root → leaf for a cluster (names, class, parentRefs);
//! - [`merge`]: leaf statuses → the root Gateway's and route's status.

pub mod attach;
pub mod hostnames;
pub mod merge;
pub mod route;
pub mod translate;
