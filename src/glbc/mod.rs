//! The global load-balancer controller: turns GlobalIngresses and cluster
//! health into DNS records. So far: the DNS provider.

pub mod dns;
