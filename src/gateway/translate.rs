//! Root → leaf for one cluster (pure), for Gateways and routes. Leaves are
//! translated, not copied:
//!
//! - a leaf is named `<root>--<cluster>` (`naming::leaf_name`), lives in
//!   the root's namespace downstream, carries the root's labels and
//!   annotations less kcp-ingress's own, plus the root label and root
//!   namespace label; no owner reference, no status (where the leaf is
//!   kept in the control plane is the wiring's business: a cluster
//!   namespace, see `mailbox`);
//! - a leaf Gateway's `gatewayClassName` is the class the cluster offers for
//!   the root's class (a function of the caller); its `spec.addresses` are
//!   dropped, an address being one cluster's, never every cluster's;
//! - a route is placed where the Gateways of its parentRefs are placed; its
//!   leaf for a cluster keeps the parentRefs to Gateways placed there,
//!   renamed to their leaves; parentRefs that name no placed Gateway are
//!   reported, so that the root's status can say so.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use kube::core::ObjectMeta;

use crate::controller::naming::{leaf_labels_and_annotations, leaf_name, root_label_value};
use crate::gateway::route::{ParentRef, Route};
use crate::gateway_api::gateway::Gateway;
use crate::labels;

/// Annotations of a root that its leaves do not get.
/// Where each root Gateway is placed: `(namespace, name)` → its clusters.
pub type GatewayPlacement = BTreeMap<(String, String), BTreeSet<String>>;

/// No GatewayClass for a root Gateway's class in a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoGatewayClass {
    pub cluster: String,
    pub class: String,
}

impl fmt::Display for NoGatewayClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cluster {} offers no GatewayClass for {:?}",
            self.cluster, self.class
        )
    }
}

impl std::error::Error for NoGatewayClass {}

/// The metadata of the leaf of the root with `meta` for `cluster`.
pub fn leaf_meta(meta: &ObjectMeta, cluster: &str) -> ObjectMeta {
    let root_name = meta.name.clone().unwrap_or_default();
    let (mut leaf_labels, annotations) = leaf_labels_and_annotations(meta);
    leaf_labels.insert(labels::ROOT_LABEL.into(), root_label_value(&root_name));
    if let Some(ns) = &meta.namespace {
        leaf_labels.insert(labels::ROOT_NAMESPACE_LABEL.into(), ns.clone());
    }
    ObjectMeta {
        name: Some(leaf_name(&root_name, cluster)),
        namespace: meta.namespace.clone(),
        labels: Some(leaf_labels),
        annotations,
        ..Default::default()
    }
}

/// The leaf of the root Gateway `root` for `cluster`; `class_in(cluster,
/// class)` names the GatewayClass the cluster offers for the root's
/// `gatewayClassName` (`None`: none).
pub fn leaf_gateway(
    root: &Gateway,
    cluster: &str,
    class_in: impl Fn(&str, &str) -> Option<String>,
) -> Result<Gateway, NoGatewayClass> {
    let class = class_in(cluster, &root.spec.gateway_class_name).ok_or_else(|| NoGatewayClass {
        cluster: cluster.to_string(),
        class: root.spec.gateway_class_name.clone(),
    })?;
    let mut spec = root.spec.clone();
    spec.gateway_class_name = class;
    spec.addresses = None;
    Ok(Gateway {
        metadata: leaf_meta(&root.metadata, cluster),
        spec,
        status: None,
    })
}

/// The parentRef a leaf route in `cluster` has for the root's `parent` (a
/// Gateway's): the same, naming the leaf Gateway.
pub fn leaf_parent_ref(parent: &ParentRef, cluster: &str) -> ParentRef {
    ParentRef {
        name: leaf_name(&parent.name, cluster),
        ..parent.clone()
    }
}

/// Why a parentRef of a root route has no leaf anywhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unplaced {
    /// It refers to something other than a Gateway.
    NotAGateway(ParentRef),
    /// It names a Gateway that is not a placed root (absent, or placed on
    /// no cluster).
    GatewayNotPlaced(ParentRef),
}

/// Where a root route goes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoutePlacement {
    /// The clusters of the Gateways its parentRefs name.
    pub clusters: BTreeSet<String>,
    /// Its parentRefs that name no placed Gateway, in order.
    pub unplaced: Vec<Unplaced>,
}

/// Where the root `route` is placed, given where the Gateways are.
pub fn route_placement<R: Route>(route: &R, gateways: &GatewayPlacement) -> RoutePlacement {
    let namespace = route.meta().namespace.clone().unwrap_or_default();
    let mut placement = RoutePlacement::default();
    for parent in route.parent_refs() {
        match parent.gateway(&namespace) {
            None => placement.unplaced.push(Unplaced::NotAGateway(parent)),
            Some(key) => match gateways.get(&key).filter(|c| !c.is_empty()) {
                Some(clusters) => placement.clusters.extend(clusters.iter().cloned()),
                None => placement.unplaced.push(Unplaced::GatewayNotPlaced(parent)),
            },
        }
    }
    placement
}

/// The leaf of the root `route` for `cluster`: its parentRefs to Gateways
/// placed on `cluster`, renamed to their leaves; `None` when it has none.
pub fn leaf_route<R: Route>(route: &R, cluster: &str, gateways: &GatewayPlacement) -> Option<R> {
    let namespace = route.meta().namespace.clone().unwrap_or_default();
    let parents: Vec<ParentRef> = route
        .parent_refs()
        .iter()
        .filter(|p| {
            p.gateway(&namespace)
                .and_then(|key| gateways.get(&key))
                .is_some_and(|clusters| clusters.contains(cluster))
        })
        .map(|p| leaf_parent_ref(p, cluster))
        .collect();
    if parents.is_empty() {
        return None;
    }
    let mut leaf = route.clone();
    *leaf.meta_mut() = leaf_meta(route.meta(), cluster);
    leaf.set_parent_refs(parents);
    leaf.clear_status();
    Some(leaf)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::gateway_api::http_route::HttpRoute;

    fn root_gateway() -> Gateway {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {
                "name": "gw", "namespace": "shop", "uid": "u1", "resourceVersion": "7",
                "labels": {"app": "shop", "state.kcp-ingress.dev/east": "Sync"},
                "annotations": {"kcp-ingress.dev/placement": "region=eu", "team": "a"}
            },
            "spec": {
                "gatewayClassName": "global",
                "addresses": [{"value": "10.0.0.1"}],
                "listeners": [{"name": "web", "port": 80, "protocol": "HTTP", "hostname": "*.example.com"}]
            },
            "status": {"addresses": [{"value": "1.2.3.4"}]}
        }))
        .unwrap()
    }

    fn route(parents: serde_json::Value) -> HttpRoute {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "r", "namespace": "shop"},
            "spec": {"parentRefs": parents, "hostnames": ["a.example.com"]},
            "status": {"parents": []}
        }))
        .unwrap()
    }

    fn placement(entries: &[(&str, &str, &[&str])]) -> GatewayPlacement {
        entries
            .iter()
            .map(|(ns, name, clusters)| {
                (
                    (ns.to_string(), name.to_string()),
                    clusters.iter().map(|c| c.to_string()).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn a_leaf_gateway_is_translated() {
        let class_in =
            |cluster: &str, class: &str| (class == "global").then(|| format!("{cluster}-class"));
        let leaf = leaf_gateway(&root_gateway(), "east", class_in).unwrap();
        assert_eq!(leaf.metadata.name.as_deref(), Some("gw--east"));
        assert_eq!(leaf.metadata.namespace.as_deref(), Some("shop"));
        let l = leaf.metadata.labels.clone().unwrap();
        assert_eq!(l.get(labels::ROOT_LABEL).map(String::as_str), Some("gw"));
        assert_eq!(
            l.get(labels::ROOT_NAMESPACE_LABEL).map(String::as_str),
            Some("shop")
        );
        assert_eq!(l.get("app").map(String::as_str), Some("shop"));
        assert!(!l.keys().any(|k| k.starts_with(labels::STATE_LABEL_PREFIX)));
        let a = leaf.metadata.annotations.clone().unwrap();
        assert_eq!(a.len(), 1, "{a:?}");
        assert!(leaf.metadata.uid.is_none() && leaf.metadata.resource_version.is_none());
        assert_eq!(leaf.spec.gateway_class_name, "east-class");
        assert_eq!(leaf.spec.addresses, None);
        assert_eq!(leaf.spec.listeners, root_gateway().spec.listeners);
        assert_eq!(leaf.status, None);

        assert_eq!(
            leaf_gateway(&root_gateway(), "west", |_, _| None),
            Err(NoGatewayClass {
                cluster: "west".into(),
                class: "global".into()
            })
        );
    }

    #[test]
    fn a_route_goes_where_its_gateways_are_with_parent_refs_renamed() {
        let gateways = placement(&[
            ("shop", "gw", &["east", "west"]),
            ("infra", "shared", &["west", "north"]),
            ("shop", "idle", &[]),
        ]);
        let root = route(serde_json::json!([
            {"name": "gw", "sectionName": "web"},
            {"name": "shared", "namespace": "infra"},
            {"name": "missing"},
            {"name": "idle"},
            {"name": "svc", "group": "", "kind": "Service"}
        ]));
        let placed = route_placement(&root, &gateways);
        assert_eq!(
            placed.clusters,
            ["east", "north", "west"]
                .iter()
                .map(|s| s.to_string())
                .collect()
        );
        let names: Vec<_> = placed
            .unplaced
            .iter()
            .map(|u| match u {
                Unplaced::NotAGateway(p) => format!("not a gateway: {}", p.name),
                Unplaced::GatewayNotPlaced(p) => format!("not placed: {}", p.name),
            })
            .collect();
        assert_eq!(
            names,
            [
                "not placed: missing",
                "not placed: idle",
                "not a gateway: svc"
            ]
        );

        let west = leaf_route(&root, "west", &gateways).unwrap();
        assert_eq!(west.metadata.name.as_deref(), Some("r--west"));
        let refs = west.parent_refs();
        assert_eq!(refs.len(), 2);
        assert_eq!(refs[0].name, "gw--west");
        assert_eq!(refs[0].section_name.as_deref(), Some("web"));
        assert_eq!(refs[1].name, "shared--west");
        assert_eq!(refs[1].namespace.as_deref(), Some("infra"));
        assert_eq!(west.status, None);
        assert_eq!(west.spec.hostnames, root.spec.hostnames);

        let east = leaf_route(&root, "east", &gateways).unwrap();
        assert_eq!(east.parent_refs().len(), 1);
        assert!(leaf_route(&root, "south", &gateways).is_none());
    }

    proptest! {
        /// A leaf exists exactly on the clusters of the route's placement,
        /// and every parentRef it has names a leaf Gateway of that cluster.
        #[test]
        fn leaves_exist_exactly_where_the_route_is_placed(
            placed in prop::collection::vec(prop::collection::btree_set("[a-d]", 0..4), 1..4),
            refs in prop::collection::vec(0usize..5, 0..5),
        ) {
            let gateways: GatewayPlacement = placed
                .iter()
                .enumerate()
                .map(|(i, c)| (("shop".to_string(), format!("gw{i}")), c.clone()))
                .collect();
            let parents: Vec<_> = refs.iter().map(|i| serde_json::json!({"name": format!("gw{i}")})).collect();
            let root = route(serde_json::Value::Array(parents));
            let placement = route_placement(&root, &gateways);
            for cluster in ["a", "b", "c", "d"] {
                let leaf = leaf_route(&root, cluster, &gateways);
                prop_assert_eq!(leaf.is_some(), placement.clusters.contains(cluster));
                for p in leaf.iter().flat_map(|l| l.parent_refs()) {
                    let root_name = p.name.strip_suffix(&format!("--{cluster}")).unwrap();
                    prop_assert!(gateways[&("shop".to_string(), root_name.to_string())].contains(cluster));
                }
            }
        }
    }
}
