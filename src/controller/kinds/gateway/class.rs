//! kcp-ingress's GatewayClasses are accepted, as a Gateway API
//! implementation accepts its own: `Accepted=True` for the current
//! generation of every GatewayClass whose `controllerName` is
//! `kcp-ingress.dev/gateway-controller`. Others are never touched.
//!
//! API calls: `patch` of `gatewayclasses/status` (server-side apply).

use futures::StreamExt;
use futures::channel::mpsc::UnboundedReceiver;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch};
use kube::runtime::reflector::{ObjectRef, Store};
use serde_json::json;
use tracing::{info, warn};

use crate::controller::context::apply_params;
use crate::gateway_api::gateway_class::GatewayClass;
use crate::labels::gateway_api as gw;
use crate::runtime::CancellationToken;

/// Whether `class` is ours and not yet accepted for its generation.
pub fn needs_accepting(class: &GatewayClass) -> bool {
    class.spec.controller_name == gw::CONTROLLER_NAME
        && !class
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .any(|c| {
                c.type_ == gw::ACCEPTED
                    && c.status == "True"
                    && c.observed_generation == class.metadata.generation
            })
}

/// Accepts the classes named on `queue` that need it, until `work` ends.
pub async fn accept_classes(
    client: kube::Client,
    classes: Store<GatewayClass>,
    mut queue: UnboundedReceiver<String>,
    work: CancellationToken,
) {
    let api: Api<GatewayClass> = Api::all(client);
    for class in classes.state() {
        accept(&api, &class).await;
    }
    while let Some(Some(name)) = work.run_until_cancelled(queue.next()).await {
        if let Some(class) = classes.get(&ObjectRef::new(&name)) {
            accept(&api, &class).await;
        }
    }
}

async fn accept(api: &Api<GatewayClass>, class: &GatewayClass) {
    if !needs_accepting(class) {
        return;
    }
    let name = class.metadata.name.clone().unwrap_or_default();
    let body = json!({
        "apiVersion": format!("{}/v1", gw::GROUP),
        "kind": gw::GATEWAY_CLASS,
        "status": {"conditions": [{
            "type": gw::ACCEPTED, "status": "True", "reason": gw::ACCEPTED,
            "message": "handled by kcp-ingress: Gateways of this class are split into the clusters' classes",
            "observedGeneration": class.metadata.generation,
            "lastTransitionTime": Time(Timestamp::now()),
        }]},
    });
    match api
        .patch_status(&name, &apply_params(), &Patch::Apply(&body))
        .await
    {
        Ok(_) => info!(class = %name, "accepted GatewayClass"),
        Err(err) => warn!(class = %name, %err, "cannot accept GatewayClass"),
    }
}
