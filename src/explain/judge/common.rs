//! What the hops share (pure): the placed clusters of a plan, and how
//! conditions, addresses and lists read.

use std::collections::BTreeSet;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use crate::apis::LoadBalancerAddress;
use crate::controller::decide::Plan;
use crate::controller::kind::RootKind;

pub(super) fn targets<K: RootKind>(plan: &Plan<K>) -> &[String] {
    plan.placement
        .as_ref()
        .map_or(&[], |p| p.targets.as_slice())
}

/// The condition `type_` among `conditions`.
pub(super) fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

pub(super) fn condition_text(c: &Condition) -> String {
    if c.message.is_empty() {
        format!("{}={} ({})", c.type_, c.status, c.reason)
    } else {
        format!("{}={} ({}: {})", c.type_, c.status, c.reason, c.message)
    }
}

pub(super) fn address_text(a: &LoadBalancerAddress) -> String {
    a.ip.clone()
        .or_else(|| a.hostname.clone())
        .unwrap_or_default()
}

pub(super) fn addresses_of<K: RootKind>(addresses: &[K::Address]) -> Vec<String> {
    addresses
        .iter()
        .filter_map(K::global_address)
        .map(|a| address_text(&a))
        .collect()
}

/// A host as the DNS holds it: lower-case, no trailing dot.
pub(super) fn dns_host(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

pub(super) fn join(items: &BTreeSet<String>) -> String {
    items.iter().cloned().collect::<Vec<_>>().join(", ")
}

pub(super) fn list(items: &[String]) -> String {
    if items.is_empty() {
        "(none)".to_string()
    } else {
        items.join(", ")
    }
}
