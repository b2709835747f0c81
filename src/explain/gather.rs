//! Reading the facts of one root (I/O): the control plane (root, Clusters,
//! leaves, dependencies and their copies, GlobalIngress), and each placed
//! cluster's API server through its kubeconfig Secret (push mode). Secrets
//! are read for their metadata only, except the kubeconfig Secrets, whose
//! content is used and never shown.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams};
use kube::core::ObjectMeta;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::Value;

use super::facts::{
    CopyState, Dependency, Downstream, DownstreamCopy, Facts, ParentGlobal, PlacedCopy,
};
use super::judge::kinds::Explained;
use crate::apis::{Cluster, GlobalIngress, PlacedObject};
use crate::controller::copies;
use crate::controller::decide;
use crate::controller::dependencies::{DepKey, DepKind};
use crate::controller::kind::RootKind;
use crate::controller::kinds::gateway::GatewayWorld;
use crate::controller::naming;
use crate::gateway_api::gateway::Gateway;
use crate::gateway_api::gateway_class::GatewayClass;
use crate::gateway_api::grpc_route::GrpcRoute;
use crate::gateway_api::http_route::HttpRoute;
use crate::gateway_api::reference_grant::ReferenceGrant;
use crate::gateway_api::tcp_route::TcpRoute;
use crate::gateway_api::tls_route::TlsRoute;
use crate::gateway_api::udp_route::UdpRoute;
use crate::labels;
use crate::mailbox;
use crate::runtime;
use crate::syncer::layout::{self, Target};
use crate::syncer::naming::is_ours;
use crate::syncer::source::DEFAULT_SECRET_KEY;
use crate::syncer::spec;

/// The control plane could not be read: `explain` cannot say anything.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {what} from the control plane: {source}")]
pub struct GatherError {
    what: String,
    source: kube::Error,
}

fn failed(what: impl Into<String>) -> impl FnOnce(kube::Error) -> GatherError {
    let what = what.into();
    move |source| GatherError { what, source }
}

/// The other objects a root kind reads ([`RootKind::World`]), listed once
/// from the control plane as the controller's caches hold them.
pub trait GatherWorld: Sized + Send + Sync {
    fn gather(client: &Client) -> impl Future<Output = Result<Self, GatherError>> + Send;
}

/// An Ingress reads nothing else.
impl GatherWorld for () {
    async fn gather(_client: &Client) -> Result<Self, GatherError> {
        Ok(())
    }
}

/// The Gateway API roots read the Gateways, every route kind (the
/// experimental ones where served), ReferenceGrants (all namespaces) and
/// GatewayClasses.
impl GatherWorld for GatewayWorld {
    async fn gather(client: &Client) -> Result<Self, GatherError> {
        Ok(GatewayWorld {
            gateways: store::<Gateway>(client, "Gateways", Served::Always).await?,
            http_routes: store::<HttpRoute>(client, "HTTPRoutes", Served::Always).await?,
            grpc_routes: store::<GrpcRoute>(client, "GRPCRoutes", Served::Always).await?,
            tls_routes: store::<TlsRoute>(client, "TLSRoutes", Served::IfInstalled).await?,
            tcp_routes: store::<TcpRoute>(client, "TCPRoutes", Served::IfInstalled).await?,
            udp_routes: store::<UdpRoute>(client, "UDPRoutes", Served::IfInstalled).await?,
            grants: store::<ReferenceGrant>(client, "ReferenceGrants", Served::Always).await?,
            classes: store::<GatewayClass>(client, "GatewayClasses", Served::Always).await?,
        })
    }
}

/// Whether a kind must be served by the control plane.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Served {
    Always,
    /// A kind of the experimental channel: where the control plane does
    /// not serve it, an empty store (the controller does not handle it there).
    IfInstalled,
}

/// A reflector store filled from one list of every object of kind `K`.
async fn store<K: Listed>(
    client: &Client,
    what: &str,
    served: Served,
) -> Result<Store<K>, GatherError> {
    match Api::<K>::all(client.clone())
        .list(&ListParams::default())
        .await
    {
        Ok(objects) => Ok(filled(objects.items)),
        Err(kube::Error::Api(status)) if served == Served::IfInstalled && status.code == 404 => {
            Ok(filled(Vec::new()))
        }
        Err(source) => Err(failed(what)(source)),
    }
}

/// What [`store`] lists.
trait Listed:
    kube::Resource<DynamicType = ()>
    + Clone
    + std::fmt::Debug
    + serde::de::DeserializeOwned
    + Send
    + Sync
    + 'static
{
}

impl<K> Listed for K where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static
{
}

fn filled<K: Listed>(objects: Vec<K>) -> Store<K> {
    let (reader, mut writer) = reflector::store::<K>();
    writer.apply_watcher_event(&watcher::Event::Init);
    for object in objects {
        writer.apply_watcher_event(&watcher::Event::InitApply(object));
    }
    writer.apply_watcher_event(&watcher::Event::InitDone);
    reader
}

/// Everything the control plane and the placed clusters show of the root
/// `namespace/name` of kind `K` (DNS facts are added by the caller), with
/// `world` the kind's other objects ([`GatherWorld`]).
pub async fn facts<K: Explained>(
    client: &Client,
    world: K::World,
    namespace: &str,
    name: &str,
    health_threshold: Duration,
    cluster_timeout: Duration,
) -> Result<Facts<K>, GatherError> {
    let kind = K::kind(&()).to_string();
    let root = Api::<K>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await
        .map_err(failed(format!("{kind} {namespace}/{name}")))?;
    let clusters: Vec<Arc<Cluster>> = Api::<Cluster>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(failed("Clusters"))?
        .items
        .into_iter()
        .map(Arc::new)
        .collect();
    let mut facts = Facts {
        namespace: namespace.to_string(),
        name: name.to_string(),
        root: None,
        clusters,
        objects: BTreeMap::new(),
        labelled_leaves: BTreeSet::new(),
        dependencies: Vec::new(),
        global: None,
        downstream: BTreeMap::new(),
        dns: None,
        now: Timestamp::now(),
        health_threshold,
        world,
        parents: Vec::new(),
    };
    let Some(root) = root else {
        return Ok(facts);
    };

    let selector = format!(
        "{}={},{}={namespace}",
        labels::ROOT_LABEL,
        naming::root_label_value(name),
        labels::ROOT_NAMESPACE_LABEL
    );
    let labelled = Api::<K>::all(client.clone())
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(failed(format!("the leaves of {kind} {namespace}/{name}")))?;
    for leaf in labelled.items {
        let key = (leaf.namespace().unwrap_or_default(), leaf.name_any());
        facts.labelled_leaves.insert(key.clone());
        facts.objects.insert(key, Arc::new(leaf));
    }
    let targets: Vec<String> = decide::targets_of(&root, &facts.clusters, &facts.world)
        .map(|p| p.targets)
        .unwrap_or_default();
    for cluster in &targets {
        let key = naming::leaf_key(namespace, name, cluster);
        if facts.objects.contains_key(&key) {
            continue;
        }
        let found = Api::<K>::namespaced(client.clone(), &key.0)
            .get_opt(&key.1)
            .await
            .map_err(failed(format!("leaf {}/{}", key.0, key.1)))?;
        if let Some(leaf) = found {
            facts.objects.insert(key, Arc::new(leaf));
        }
    }

    for dep in K::dependencies(&root, &facts.world) {
        facts
            .dependencies
            .push(dependency(client, dep, &targets).await?);
    }
    if let Some(global) = K::global_name(name) {
        facts.global = Api::<GlobalIngress>::namespaced(client.clone(), namespace)
            .get_opt(&global)
            .await
            .map_err(failed(format!("GlobalIngress {namespace}/{global}")))?;
    }
    for gateway in K::parent_gateways(&root, &facts.world) {
        let Some(global_name) = <Gateway as RootKind>::global_name(&gateway.1) else {
            continue;
        };
        let global = Api::<GlobalIngress>::namespaced(client.clone(), &gateway.0)
            .get_opt(&global_name)
            .await
            .map_err(failed(format!("GlobalIngress {}/{global_name}", gateway.0)))?;
        facts.parents.push(ParentGlobal {
            gateway,
            global_name,
            global,
        });
    }

    let looks = targets.iter().map(|cluster| {
        let facts = &facts;
        let root = &root;
        async move {
            let seen = downstream(client, facts, root, cluster, cluster_timeout).await;
            (cluster.clone(), seen)
        }
    });
    let seen: Vec<(String, Downstream)> = futures::future::join_all(looks).await;
    facts.downstream = seen.into_iter().collect();
    facts.root = Some(root);
    Ok(facts)
}

/// The metadata of a dependency (`copy`: of its copy, in `namespace`).
async fn metadata(
    client: &Client,
    kind: DepKind,
    namespace: &str,
    name: &str,
    copy: bool,
) -> Result<Option<ObjectMeta>, kube::Error> {
    Ok(match (kind, copy) {
        (DepKind::Service, false) => Api::<Service>::namespaced(client.clone(), namespace)
            .get_metadata_opt(name)
            .await?
            .map(|m| m.metadata),
        (DepKind::Service, true) => Api::<PlacedObject>::namespaced(client.clone(), namespace)
            .get_metadata_opt(name)
            .await?
            .map(|m| m.metadata),
        (DepKind::Secret, _) => Api::<Secret>::namespaced(client.clone(), namespace)
            .get_metadata_opt(name)
            .await?
            .map(|m| m.metadata),
        (DepKind::ConfigMap, _) => Api::<ConfigMap>::namespaced(client.clone(), namespace)
            .get_metadata_opt(name)
            .await?
            .map(|m| m.metadata),
        (DepKind::ReferenceGrant, false) => {
            Api::<ReferenceGrant>::namespaced(client.clone(), namespace)
                .get_metadata_opt(name)
                .await?
                .map(|m| m.metadata)
        }
        (DepKind::ReferenceGrant, true) => {
            Api::<PlacedObject>::namespaced(client.clone(), namespace)
                .get_metadata_opt(name)
                .await?
                .map(|m| m.metadata)
        }
    })
}

async fn dependency(
    client: &Client,
    key: DepKey,
    targets: &[String],
) -> Result<Dependency, GatherError> {
    let (kind, ns, name) = &key;
    let exists = metadata(client, *kind, ns, name, false)
        .await
        .map_err(failed(format!("{kind:?} {ns}/{name}")))?
        .is_some();
    let mut copies = BTreeMap::new();
    if let (true, Ok(copy)) = (exists, copies::copy_name(&key)) {
        for cluster in targets {
            let at_ns = mailbox::cluster_namespace(cluster);
            let meta = metadata(client, *kind, &at_ns, &copy, true)
                .await
                .map_err(failed(format!("the copy {at_ns}/{copy}")))?;
            let annotation = |key: String| {
                meta.as_ref()
                    .and_then(|m| m.annotations.as_ref())
                    .and_then(|a| a.get(&key))
                    .cloned()
            };
            copies.insert(
                cluster.clone(),
                PlacedCopy {
                    at: format!("{at_ns}/{copy}"),
                    present: meta.is_some(),
                    conflict: annotation(labels::conflict_annotation(cluster)),
                    sync_error: annotation(labels::sync_error_annotation(cluster)),
                },
            );
        }
    }
    Ok(Dependency {
        key,
        exists,
        copies,
    })
}

/// A client for `cluster`'s API server from its kubeconfig Secret, as its
/// push-mode syncer makes it; `Err` says why there is none.
async fn cluster_client(client: &Client, cluster: &Cluster) -> Result<Option<Client>, String> {
    let Some(secret_ref) = &cluster.spec.kubeconfig_secret_ref else {
        return Ok(None);
    };
    if let Some(refused) = mailbox::refused_kubeconfig_ref(&secret_ref.namespace, &secret_ref.name)
    {
        return Err(refused);
    }
    let key = secret_ref.key.as_deref().unwrap_or(DEFAULT_SECRET_KEY);
    let what = format!(
        "Secret {}/{} (key {key})",
        secret_ref.namespace, secret_ref.name
    );
    let secret = Api::<Secret>::namespaced(client.clone(), &secret_ref.namespace)
        .get_opt(&secret_ref.name)
        .await
        .map_err(|e| format!("cannot read the kubeconfig {what}: {e}"))?
        .ok_or_else(|| format!("the kubeconfig {what} does not exist"))?;
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .ok_or_else(|| format!("the kubeconfig {what} has no key {key}"))?;
    let yaml = std::str::from_utf8(&bytes.0)
        .map_err(|_| format!("the kubeconfig in {what} is not UTF-8 text"))?;
    runtime::client_from_yaml(yaml, None, &PathBuf::from(&what))
        .await
        .map(Some)
        .map_err(|e| e.to_string())
}

async fn downstream<K: RootKind>(
    client: &Client,
    facts: &Facts<K>,
    root: &K,
    cluster: &str,
    timeout: Duration,
) -> Downstream {
    let Some(object) = facts.clusters.iter().find(|c| c.name_any() == cluster) else {
        return Downstream::NoClient(format!("Cluster {cluster} does not exist"));
    };
    let down = match cluster_client(client, object).await {
        Ok(Some(down)) => down,
        Ok(None) => return Downstream::PullMode,
        Err(why) => return Downstream::NoClient(why),
    };
    match tokio::time::timeout(timeout, down.apiserver_version()).await {
        Err(_) => return Downstream::Unreachable(format!("no answer within {timeout:?}")),
        Ok(Err(e)) => return Downstream::Unreachable(e.to_string()),
        Ok(Ok(_)) => {}
    }
    let mut copies = Vec::new();
    let (ns, name) = (&facts.namespace, &facts.name);
    let key = naming::leaf_key(ns, name, cluster);
    if let Some(leaf) = facts.objects.get(&key)
        && let Some((down_ns, down_name)) = mailbox::downstream_of_copy(&key.1)
    {
        let target = Target {
            namespace: down_ns.to_string(),
            name: down_name.to_string(),
        };
        let upstream = serde_json::to_value(leaf.as_ref()).unwrap_or_default();
        let desired = spec::downstream_object(
            &layout::native(&upstream, &target),
            &K::api_version(&()),
            &K::kind(&()),
            cluster,
        )
        .ok();
        let actual = within(
            timeout,
            Api::<K>::namespaced(down.clone(), down_ns).get_opt(down_name),
        )
        .await;
        copies.push(DownstreamCopy {
            subject: format!("{} {target}", K::kind(&())),
            state: state_of(actual, desired.as_ref(), cluster),
        });
    }
    for dep in K::dependencies(root, &facts.world) {
        copies.push(dependency_downstream(client, &down, &dep, cluster, timeout).await);
    }
    Downstream::Reached(copies)
}

/// `get` under a deadline, the result as JSON.
async fn within<T: serde::Serialize>(
    timeout: Duration,
    get: impl Future<Output = Result<Option<T>, kube::Error>>,
) -> Result<Option<Value>, String> {
    match tokio::time::timeout(timeout, get).await {
        Err(_) => Err(format!("no answer within {timeout:?}")),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok(found)) => Ok(found.map(|o| serde_json::to_value(o).unwrap_or_default())),
    }
}

/// How a downstream copy stands against what the syncer would apply
/// (`desired`; `None`: its content is not compared).
fn state_of(
    actual: Result<Option<Value>, String>,
    desired: Option<&Value>,
    cluster: &str,
) -> CopyState {
    let actual = match actual {
        Err(e) => return CopyState::Error(e),
        Ok(None) => return CopyState::Missing,
        Ok(Some(actual)) => actual,
    };
    let object_labels: BTreeMap<String, String> = actual
        .pointer("/metadata/labels")
        .cloned()
        .and_then(|l| serde_json::from_value(l).ok())
        .unwrap_or_default();
    if !is_ours(&object_labels, cluster) {
        return CopyState::NotOurs;
    }
    match desired {
        Some(desired) if !spec::is_up_to_date(desired, &actual) => CopyState::Stale,
        _ => CopyState::Current,
    }
}

async fn dependency_downstream(
    client: &Client,
    down: &Client,
    dep: &DepKey,
    cluster: &str,
    timeout: Duration,
) -> DownstreamCopy {
    let (kind, ns, name) = dep;
    let target = Target {
        namespace: ns.clone(),
        name: name.clone(),
    };
    let subject = format!("{kind:?} {target}");
    let state = match kind {
        DepKind::Service => {
            // What the syncer applies: the Service its PlacedObject embeds.
            let desired = match copies::copy_name(dep) {
                Ok(copy) => Api::<PlacedObject>::namespaced(
                    client.clone(),
                    &mailbox::cluster_namespace(cluster),
                )
                .get_opt(&copy)
                .await
                .ok()
                .flatten()
                .and_then(|p| serde_json::to_value(p).ok())
                .and_then(|p| layout::embedded(&p, "v1", "Service", &target).ok())
                .and_then(|o| spec::downstream_object(&o, "v1", "Service", cluster).ok()),
                Err(_) => None,
            };
            let actual = within(
                timeout,
                Api::<Service>::namespaced(down.clone(), ns).get_opt(name),
            )
            .await;
            state_of(actual, desired.as_ref(), cluster)
        }
        // Never their content: metadata only, ours or not.
        DepKind::Secret | DepKind::ConfigMap => {
            let meta = if *kind == DepKind::Secret {
                within(
                    timeout,
                    Api::<Secret>::namespaced(down.clone(), ns).get_metadata_opt(name),
                )
                .await
            } else {
                within(
                    timeout,
                    Api::<ConfigMap>::namespaced(down.clone(), ns).get_metadata_opt(name),
                )
                .await
            };
            state_of(meta, None, cluster)
        }
        DepKind::ReferenceGrant => {
            let meta = within(
                timeout,
                Api::<ReferenceGrant>::namespaced(down.clone(), ns).get_metadata_opt(name),
            )
            .await;
            state_of(meta, None, cluster)
        }
    };
    DownstreamCopy { subject, state }
}
