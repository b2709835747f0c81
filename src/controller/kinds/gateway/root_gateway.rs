//! A root Gateway as a root kind: placed by its annotation on the clusters
//! that offer a GatewayClass; its leaf is `gateway::translate::leaf_gateway`
//! with the cluster's class; its dependencies are its listeners'
//! certificate Secrets; its hosts are its accepted routes' DNS names; its
//! status is `gateway::merge::gateway_status` with its bad input reported
//! ([`super::checks`]); its GlobalIngress is `<gateway>.gateway`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};

use super::GatewayWorld;
use super::checks::{self, GatewayFindings};
use crate::apis::{Cluster, LoadBalancerAddress};
use crate::controller::dependencies::{DepKey, DepKind};
use crate::controller::kind::{self, LeafView, Lookups, Problem, RootKind};
use crate::controller::naming;
use crate::controller::placement::Placement;
use crate::gateway::attach::{RouteView, dns_names};
use crate::gateway::merge::{LeafGateway, gateway_status};
use crate::gateway::route::Route;
use crate::gateway::translate::leaf_gateway;
use crate::gateway_api::gateway::{Gateway, GatewayStatusAddresses};
use crate::labels::{self, gateway_api as gw};

/// The class the leaf Gateways in `cluster` get (its label), if it offers one.
pub fn class_of(cluster: &Cluster) -> Option<String> {
    cluster
        .labels()
        .get(gw::CLASS_LABEL)
        .filter(|c| !c.is_empty())
        .cloned()
}

/// Whether `root` is a root Gateway of ours (its class is kcp-ingress's).
fn findings(root: &Gateway, seen: &Lookups<'_, Gateway>) -> GatewayFindings {
    let ns = root.namespace().unwrap_or_default();
    let granted = |to_ns: &str, to_name: &str| {
        seen.world
            .granted(gw::GATEWAY, &ns, "Secret", to_ns, to_name)
    };
    checks::gateway_findings(root, &ns, seen.placement, seen.exists, &granted)
}

/// Whether `status` says the condition `type_` is true.
fn is_true(
    conditions: Option<&Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>>,
    type_: &str,
) -> bool {
    conditions
        .into_iter()
        .flatten()
        .any(|c| c.type_ == type_ && c.status == "True")
}

/// The DNS names of the root route `ns`/`name` in `store` on the Gateway
/// `gateway` (see [`route_names`]).
fn names_in<R>(
    store: &Store<R>,
    ns: &str,
    name: &str,
    gateway: &Gateway,
    key: &(String, String),
) -> BTreeSet<String>
where
    R: Route + RootKind + kube::Resource<DynamicType = ()>,
{
    store
        .get(&ObjectRef::new(name).within(ns))
        .filter(|r| <R as RootKind>::is_root(r))
        .map(|r| route_names(r.as_ref(), gateway, key))
        .unwrap_or_default()
}

/// The DNS names of the root route `route` on the Gateway `gateway`, when
/// our entry of its status says a parentRef to it is accepted.
pub fn route_names<R: Route>(
    route: &R,
    gateway: &Gateway,
    key: &(String, String),
) -> BTreeSet<String> {
    let ns = route.meta().namespace.clone().unwrap_or_default();
    let accepted = route.parents().iter().any(|p| {
        p.controller_name == gw::CONTROLLER_NAME
            && p.parent_ref.gateway(&ns).as_ref() == Some(key)
            && p.conditions
                .iter()
                .any(|c| c.type_ == gw::ACCEPTED && c.status == "True")
    });
    if !accepted {
        return BTreeSet::new();
    }
    let labels = BTreeMap::new();
    let hostnames = route.hostnames();
    let view = RouteView {
        kind: R::KIND,
        namespace: &ns,
        namespace_labels: &labels,
        hostnames: &hostnames,
    };
    dns_names(gateway, &key.0, &key.1, &route.parent_refs(), &view)
}

impl RootKind for Gateway {
    type Address = GatewayStatusAddresses;
    type World = GatewayWorld;
    type Stored = Self;

    fn is_root(object: &Self) -> bool {
        let ns = object.metadata.namespace.as_deref().unwrap_or_default();
        naming::is_placeable_namespace(ns)
            && !object
                .metadata
                .labels
                .as_ref()
                .is_some_and(|l| l.contains_key(labels::ROOT_LABEL))
    }

    fn is_ours(root: &Self, world: &GatewayWorld) -> bool {
        world.class_is_ours(&root.spec.gateway_class_name)
    }

    fn validate(root: &Self) -> Vec<Problem> {
        let placement_labels = naming::placed_clusters(&root.metadata);
        if placement_labels.is_empty() {
            return Vec::new();
        }
        vec![Problem {
            reason: labels::reasons::ROOT_HAS_PLACEMENT_LABEL,
            message: format!(
                "a root carries no {} labels (found for {}); placement is chosen with the {} annotation",
                labels::STATE_LABEL_PREFIX,
                placement_labels.join(", "),
                labels::PLACEMENT_ANNOTATION
            ),
        }]
    }

    /// The annotation's clusters that offer a GatewayClass.
    fn targets(
        root: &Self,
        clusters: &[Arc<Cluster>],
        _world: &GatewayWorld,
    ) -> Result<Placement, Problem> {
        let mut placement = kind::placed_by_annotation(root, clusters)?;
        let offers = |name: &str| {
            clusters
                .iter()
                .find(|c| c.metadata.name.as_deref() == Some(name))
                .and_then(|c| class_of(c))
                .is_some()
        };
        let (with, without): (Vec<String>, Vec<String>) =
            placement.targets.into_iter().partition(|c| offers(c));
        placement.targets = with;
        placement.unusable.extend(without.into_iter().map(|c| {
            let why = format!(
                "cluster {c} {} (no {} label)",
                checks::NO_CLASS,
                gw::CLASS_LABEL
            );
            (c, why)
        }));
        placement.unusable.sort();
        Ok(placement)
    }

    fn leaf(root: &Self, cluster: &Arc<Cluster>, _world: &GatewayWorld) -> Option<Self> {
        let class = class_of(cluster)?;
        leaf_gateway(root, &cluster.name_any(), |_, _| Some(class.clone())).ok()
    }

    fn leaf_is_current(current: &Self, desired: &Self) -> bool {
        current.spec == desired.spec
            && contains(&current.metadata.labels, &desired.metadata.labels)
            && contains(&current.metadata.annotations, &desired.metadata.annotations)
    }

    /// Its listeners' certificate Secrets, then the ReferenceGrants that
    /// allow those of other namespaces; each sorted, unique.
    fn dependencies(root: &Self, world: &GatewayWorld) -> Vec<DepKey> {
        let from = root.namespace().unwrap_or_default();
        let secrets: BTreeSet<DepKey> = checks::certificate_refs(root, &from)
            .into_iter()
            .map(|(_, (ns, name))| (DepKind::Secret, ns, name))
            .collect();
        let grants: BTreeSet<DepKey> = secrets
            .iter()
            .flat_map(|(_, ns, name)| {
                world
                    .grants_for(gw::GATEWAY, &from, "Secret", ns, name)
                    .into_iter()
                    .map(|g| (DepKind::ReferenceGrant, ns.clone(), g))
            })
            .collect();
        secrets.into_iter().chain(grants).collect()
    }

    fn permits(root: &Self, (kind, ns, name): &DepKey, world: &GatewayWorld) -> bool {
        let from = root.namespace().unwrap_or_default();
        *kind == DepKind::ReferenceGrant || world.granted(gw::GATEWAY, &from, "Secret", ns, name)
    }

    fn global_name(root: &str) -> Option<String> {
        Some(format!("{root}{}", gw::GLOBAL_SUFFIX))
    }

    /// The DNS names of its attached, accepted routes.
    fn hosts(root: &Self, world: &GatewayWorld) -> Vec<String> {
        let key = (root.namespace().unwrap_or_default(), root.name_any());
        let mut hosts = BTreeSet::new();
        for (kind, ns, name) in world.routes_of(&key) {
            let names = match kind {
                gw::HTTP_ROUTE => names_in(&world.http_routes, &ns, &name, root, &key),
                gw::GRPC_ROUTE => names_in(&world.grpc_routes, &ns, &name, root, &key),
                gw::TLS_ROUTE => names_in(&world.tls_routes, &ns, &name, root, &key),
                // TCPRoute and UDPRoute have no hostnames.
                _ => BTreeSet::new(),
            };
            hosts.extend(names);
        }
        hosts.into_iter().collect()
    }

    /// Its `status.addresses`, while it is programmed.
    fn addresses(object: &Self) -> Vec<GatewayStatusAddresses> {
        let Some(status) = object.status.as_ref() else {
            return Vec::new();
        };
        if !is_true(status.conditions.as_ref(), gw::PROGRAMMED) {
            return Vec::new();
        }
        status.addresses.clone().unwrap_or_default()
    }

    /// `IPAddress` (the default) as an ip, `Hostname` as a hostname.
    fn global_address(address: &GatewayStatusAddresses) -> Option<LoadBalancerAddress> {
        let value = Some(address.value.clone()).filter(|v| !v.is_empty())?;
        match address.r#type.as_deref() {
            None | Some("IPAddress") => Some(LoadBalancerAddress {
                ip: Some(value),
                hostname: None,
            }),
            Some("Hostname") => Some(LoadBalancerAddress {
                ip: None,
                hostname: Some(value),
            }),
            Some(_) => None,
        }
    }

    fn root_status(
        root: &Self,
        leaves: &[LeafView<Self>],
        seen: &Lookups<'_, Self>,
    ) -> Option<serde_json::Value> {
        let leaf_gateways: Vec<LeafGateway> = leaves
            .iter()
            .map(|l| LeafGateway {
                cluster: &l.view.cluster,
                healthy: l.view.healthy,
                status: l.leaf.as_ref().and_then(|g| g.status.as_ref()),
            })
            .collect();
        let mut status = gateway_status(root, &leaf_gateways, seen.now);
        let generation = root.metadata.generation;
        checks::overlay_gateway(
            &mut status,
            &findings(root, seen),
            root.status.as_ref(),
            generation,
            seen.now,
        );
        if let Some(why) = seen.global_taken {
            let previous = root
                .status
                .as_ref()
                .and_then(|s| s.conditions.clone())
                .unwrap_or_default();
            checks::set_condition(
                status.conditions.get_or_insert_with(Vec::new),
                &previous,
                gw::GLOBAL_INGRESS,
                false,
                labels::reasons::GLOBAL_INGRESS_NAME_TAKEN,
                why.to_string(),
                generation,
                seen.now,
            );
        }
        (root.status.as_ref() != Some(&status)).then(|| serde_json::to_value(&status).ok())?
    }

    fn problems(root: &Self, seen: &Lookups<'_, Self>) -> Vec<Problem> {
        checks::gateway_problems(&findings(root, seen))
    }
}

/// Whether every entry of `want` is in `have`.
pub fn contains(
    have: &Option<BTreeMap<String, String>>,
    want: &Option<BTreeMap<String, String>>,
) -> bool {
    want.iter()
        .flatten()
        .all(|(k, v)| have.as_ref().and_then(|h| h.get(k)) == Some(v))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;
    use serde_json::json;

    use super::*;
    use crate::apis::ClusterSpec;
    use crate::controller::kinds::gateway::watch::stores_from;
    use crate::controller::merge::ClusterView;

    fn root() -> Gateway {
        serde_json::from_value(json!({
            "metadata": {"name": "gw", "namespace": "shop", "generation": 2},
            "spec": {"gatewayClassName": "global", "listeners": [
                {"name": "http", "port": 80, "protocol": "HTTP", "hostname": "*.example.test"}
            ]}
        }))
        .unwrap()
    }

    fn leaf(ip: &str, programmed: bool) -> Arc<Gateway> {
        let mut g = root();
        g.status = serde_json::from_value(json!({
            "addresses": [{"type": "IPAddress", "value": ip}],
            "conditions": [
                {"type": "Accepted", "status": "True", "reason": "Accepted", "message": "", "lastTransitionTime": "1970-01-01T00:00:01Z"},
                {"type": "Programmed", "status": if programmed {"True"} else {"False"}, "reason": "Programmed", "message": "", "lastTransitionTime": "1970-01-01T00:00:01Z"}
            ]
        }))
        .unwrap();
        Arc::new(g)
    }

    #[test]
    fn the_merged_status_is_written_once_and_addresses_need_programmed() {
        let world = stores_from(Vec::new(), Vec::new(), Vec::new());
        let clusters = [
            Arc::new(Cluster::new("east", ClusterSpec::default())),
            Arc::new(Cluster::new("west", ClusterSpec::default())),
        ];
        let placement = Placement {
            targets: vec!["east".into(), "west".into()],
            ..Placement::default()
        };
        let now = Time(Timestamp::from_second(100).unwrap());
        let exists = |_: &DepKey| true;
        let seen = Lookups {
            world: &world,
            clusters: &clusters,
            exists: &exists,
            placement: Some(&placement),
            global_taken: None,
            now: &now,
        };
        let views: Vec<LeafView<Gateway>> = [
            ("east", leaf("127.0.1.1", true)),
            ("west", leaf("127.0.1.2", false)),
        ]
        .into_iter()
        .map(|(c, l)| LeafView {
            view: ClusterView {
                cluster: c.into(),
                healthy: true,
                entries: Gateway::addresses(&l),
            },
            leaf: Some(l),
        })
        .collect();
        assert!(views[1].view.entries.is_empty());
        let mut r = root();
        let status = Gateway::root_status(&r, &views, &seen).unwrap();
        assert_eq!(
            status["addresses"],
            json!([{"type": "IPAddress", "value": "127.0.1.1"}])
        );
        r.status = serde_json::from_value(status).unwrap();
        assert_eq!(Gateway::root_status(&r, &views, &seen), None);
        let hostname = GatewayStatusAddresses {
            r#type: Some("Hostname".into()),
            value: "lb.example.test".into(),
        };
        assert_eq!(
            Gateway::global_address(&hostname).and_then(|a| a.hostname),
            Some("lb.example.test".into())
        );
        let named = GatewayStatusAddresses {
            r#type: Some("NamedAddress".into()),
            value: "x".into(),
        };
        assert_eq!(Gateway::global_address(&named), None);
        assert_eq!(Gateway::global_name("gw").as_deref(), Some("gw.gateway"));
    }
}
