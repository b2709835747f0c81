//! Which of the `--resources` types can be synced: API discovery on the
//! control plane (the most stable version it serves the type in: not
//! always the group's preferred version, e.g. ReferenceGrant is v1beta1 in
//! a group that prefers v1) and on the physical cluster (it must serve that
//! same version). A type carried in `PlacedObject`s need not be served by
//! the control plane (the cluster's most stable version is then synced). A type one side does not serve is reported, not fatal.

use std::collections::BTreeMap;

use kube::discovery::{self, ApiCapabilities, ApiGroup, ApiResource, Scope, verbs};

use super::naming::ResourceSpec;
use super::status;
use crate::mailbox;

/// A type both sides serve.
#[derive(Clone, Debug)]
pub struct SyncType {
    pub spec: ResourceSpec,
    /// The upstream's most stable version of the type, served downstream too.
    pub ar: ApiResource,
    /// Whether downstream status travels up (leaf status: Ingresses, and
    /// Gateways, HTTPRoutes, GRPCRoutes; see [`status::Shape`]).
    pub status_up: bool,
}

/// What discovery found for one `--resources` entry.
#[derive(Clone, Debug)]
pub enum Resolved {
    Served(SyncType),
    NotServed { spec: ResourceSpec, message: String },
}

impl Resolved {
    pub fn spec(&self) -> &ResourceSpec {
        match self {
            Resolved::Served(t) => &t.spec,
            Resolved::NotServed { spec, .. } => spec,
        }
    }
}

/// Where discovery failed for a reason other than "not served".
#[derive(Debug, thiserror::Error)]
#[error("API discovery on the {side} failed: {source}")]
pub struct DiscoveryFailed {
    pub side: &'static str,
    #[source]
    pub source: kube::Error,
}

/// Resolves every spec on the control plane only: the types whose objects
/// may carry a syncer finalizer.
pub async fn resolve_upstream(
    upstream: &kube::Client,
    specs: &[ResourceSpec],
) -> Result<Vec<(ResourceSpec, Option<ApiResource>)>, DiscoveryFailed> {
    let groups = groups(upstream, specs, "control plane").await?;
    Ok(specs
        .iter()
        .map(|spec| {
            let found = groups
                .get(&spec.group)
                .and_then(Option::as_ref)
                .and_then(|g| find(g.resources_by_stability(), spec))
                .filter(|(_, caps)| caps.scope == Scope::Namespaced)
                .map(|(ar, _)| ar);
            (spec.clone(), found)
        })
        .collect())
}

/// Resolves every spec on both sides.
pub async fn resolve(
    upstream: &kube::Client,
    downstream: &kube::Client,
    specs: &[ResourceSpec],
) -> Result<Vec<Resolved>, DiscoveryFailed> {
    let up = groups(upstream, specs, "control plane").await?;
    let down = groups(downstream, specs, "cluster").await?;
    Ok(specs
        .iter()
        .map(|spec| resolve_one(spec, up.get(&spec.group), down.get(&spec.group)))
        .collect())
}

fn resolve_one(
    spec: &ResourceSpec,
    up: Option<&Option<ApiGroup>>,
    down: Option<&Option<ApiGroup>>,
) -> Resolved {
    let not_served = |message: String| Resolved::NotServed {
        spec: spec.clone(),
        message,
    };
    // A type carried in PlacedObjects is only data in the control plane: it
    // need not be served there (then the cluster's preferred version is
    // synced), and the syncer neither lists nor patches it there.
    let wrapped = !mailbox::stored_natively(&spec.resource, &spec.group);
    let preferred = |side: Option<&Option<ApiGroup>>| {
        side.and_then(Option::as_ref)
            .and_then(|g| find(g.resources_by_stability(), spec))
    };
    let Some((ar, caps)) = preferred(up).or_else(|| wrapped.then(|| preferred(down)).flatten())
    else {
        return not_served(if wrapped {
            format!("neither the control plane nor the cluster serves {spec}")
        } else {
            format!("the control plane does not serve {spec}")
        });
    };
    if caps.scope != Scope::Namespaced {
        return not_served(format!(
            "{spec} is cluster-scoped; only namespaced types are synced"
        ));
    }
    for verb in [verbs::LIST, verbs::WATCH, verbs::PATCH] {
        if !wrapped && !caps.supports_operation(verb) {
            return not_served(format!("the control plane does not allow {verb} on {spec}"));
        }
    }
    let Some(down_group) = down.and_then(Option::as_ref) else {
        return not_served(format!(
            "the cluster does not serve the API group of {spec}"
        ));
    };
    match find(down_group.versioned_resources(&ar.version), spec) {
        Some((_, down_caps)) if down_caps.scope == Scope::Namespaced => {}
        Some(_) => {
            return not_served(format!("the cluster serves {spec} cluster-scoped"));
        }
        None => {
            let versions: Vec<&str> = down_group
                .versions()
                .filter(|v| find(down_group.versioned_resources(v), spec).is_some())
                .collect();
            return not_served(if versions.is_empty() {
                format!("the cluster does not serve {spec}")
            } else {
                format!(
                    "the cluster serves {spec} only in {} (the control plane uses {})",
                    versions.join(", "),
                    ar.version
                )
            });
        }
    }
    let status_up = !wrapped
        && status::Shape::of(&ar.group, &ar.kind).is_some()
        && caps
            .subresources
            .iter()
            .any(|(sub, _)| sub.plural == "status");
    Resolved::Served(SyncType {
        spec: spec.clone(),
        ar,
        status_up,
    })
}

fn find(
    resources: Vec<(ApiResource, ApiCapabilities)>,
    spec: &ResourceSpec,
) -> Option<(ApiResource, ApiCapabilities)> {
    resources
        .into_iter()
        .find(|(ar, _)| ar.plural == spec.resource)
}

/// Each distinct group of `specs`, discovered; `None` for a group not served.
async fn groups(
    client: &kube::Client,
    specs: &[ResourceSpec],
    side: &'static str,
) -> Result<BTreeMap<String, Option<ApiGroup>>, DiscoveryFailed> {
    let mut out = BTreeMap::new();
    for spec in specs {
        if out.contains_key(&spec.group) {
            continue;
        }
        let group = match discovery::group(client, &spec.group).await {
            Ok(group) => Some(group),
            Err(kube::Error::Discovery(_)) => None,
            Err(source) => return Err(DiscoveryFailed { side, source }),
        };
        out.insert(spec.group.clone(), group);
    }
    Ok(out)
}
