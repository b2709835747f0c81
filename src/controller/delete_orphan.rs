//! Deleting orphan GlobalIngresses (I/O): one that no live root controls
//! ([`orphan_reason`]) is deleted, with its uid and resourceVersion as
//! preconditions, so that a GlobalIngress recreated or adopted meanwhile is
//! not. The glbc's finalizer `kcp-ingress.dev/dns` then holds it until its
//! DNS records are gone. The root is gone, so there is nothing to put an
//! Event on: a log line says what was deleted and why.

use std::sync::Arc;

use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Preconditions};
use kube::runtime::controller::Action;
use tracing::{debug, info};

use super::context::{Context, ReconcileError, retry};
use super::kind::RootKind;
use super::orphan::orphan_reason;
use crate::apis::GlobalIngress;
use crate::runtime::compact::Compact;

/// Deletes `global` when it is an orphan.
pub async fn reconcile_global<K: RootKind>(
    global: Arc<Compact<GlobalIngress>>,
    ctx: Arc<Context<K>>,
) -> Result<Action, ReconcileError> {
    let global = global.typed()?;
    let ns = global.namespace().unwrap_or_default();
    let name = global.name_any();
    let root = |n: &str| ctx.caches.root(&ns, n);
    let Some(why) = orphan_reason::<K>(&global, &root) else {
        return Ok(Action::await_change());
    };
    let api: Api<GlobalIngress> = Api::namespaced(ctx.client.clone(), &ns);
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: global.uid(),
            resource_version: global.resource_version(),
        }),
        ..Default::default()
    };
    match api.delete(&name, &params).await {
        Ok(_) => {
            info!(namespace = %ns, global_ingress = %name, "deleted an orphan GlobalIngress: {why}");
            Ok(Action::await_change())
        }
        // Gone already, or changed since it was judged: its next change
        // is judged again.
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {
            debug!(namespace = %ns, global_ingress = %name, code = e.code, "orphan not deleted");
            Ok(Action::await_change())
        }
        Err(e) => Err(e.into()),
    }
}

/// Retries a GlobalIngress with the one backoff schedule.
pub fn retry_global<K: RootKind>(
    global: &Compact<GlobalIngress>,
    err: &ReconcileError,
    ctx: &Context<K>,
) -> Action {
    let key = (
        global.namespace().unwrap_or_default().to_string(),
        global.name().unwrap_or_default().to_string(),
    );
    let failures = ctx.memory.global_failed(&key);
    retry(&format!("GlobalIngress {}/{}", key.0, key.1), failures, err)
}
