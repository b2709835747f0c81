//! `kcp-ingress explain`: one root's whole chain, hop by hop, and the first
//! hop that does not hold.
//!
//! - [`report`] (pure): hops, verdicts, the first failing hop, the exit code
//!   and the stable schema of `-o json` / `-o yaml`;
//! - [`render`] (pure): the report as a tree (colour on a terminal), JSON or YAML;
//! - [`facts`] (pure values) and [`judge`] (pure): what was read → hops,
//!   with the controller's, syncers' and glbc's own functions;
//! - [`gather`] (I/O): the control plane and the placed clusters' API servers;
//! - [`dns`] (I/O): the DNS server the glbc publishes to.
//!
//! Everything but the kind-specific parsing of `ROOT` is generic over
//! [`RootKind`](crate::controller::kind::RootKind): a Gateway root is one
//! more arm in [`explain`].

pub mod dns;
pub mod facts;
pub mod gather;
pub mod judge;
pub mod render;
pub mod report;

use k8s_openapi::api::networking::v1::Ingress;

use self::report::{Report, RootRef};
use crate::cli::ExplainArgs;
use crate::controller::kind::RootKind;
use crate::runtime::{self, ClientError};

/// Why `explain` could not say anything.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Gather(#[from] gather::GatherError),
    #[error(
        "{0:?} is not a root kcp-ingress explains: give NAME or ingress/NAME (Gateway API roots \
         are not explained yet)"
    )]
    UnknownKind(String),
}

/// The kinds of root `explain` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootKindName {
    Ingress,
}

/// `ROOT` as given: `NAME`, or `KIND/NAME` with KIND one of ingress,
/// ingresses, ing (case-insensitive, optionally `.networking.k8s.io`).
pub fn parse_root(text: &str) -> Result<(RootKindName, String), ExplainError> {
    let Some((kind, name)) = text.split_once('/') else {
        return Ok((RootKindName::Ingress, text.to_string()));
    };
    let kind = kind.to_ascii_lowercase();
    let kind = kind.strip_suffix(".networking.k8s.io").unwrap_or(&kind);
    match kind {
        "ingress" | "ingresses" | "ing" if !name.is_empty() => {
            Ok((RootKindName::Ingress, name.to_string()))
        }
        _ => Err(ExplainError::UnknownKind(text.to_string())),
    }
}

/// Reads everything about the root of `args` and judges it.
pub async fn explain(args: &ExplainArgs) -> Result<Report, ExplainError> {
    let (kind, name) = parse_root(&args.root)?;
    let client = runtime::client(
        args.control_plane.kubeconfig.as_deref(),
        args.control_plane.context.as_deref(),
    )
    .await?;
    let namespace = args
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_string());
    match kind {
        RootKindName::Ingress => explain_kind::<Ingress>(&client, args, &namespace, &name).await,
    }
}

async fn explain_kind<K: RootKind<World = ()>>(
    client: &kube::Client,
    args: &ExplainArgs,
    namespace: &str,
    name: &str,
) -> Result<Report, ExplainError> {
    let mut facts = gather::facts::<K>(
        client,
        namespace,
        name,
        args.health.health_threshold,
        args.cluster_timeout,
    )
    .await?;
    if let Some(root) = &facts.root {
        facts.dns = dns::facts(client, args, &K::hosts(root, &())).await;
    }
    let root = RootRef {
        kind: K::kind(&()).to_string(),
        namespace: namespace.to_string(),
        name: name.to_string(),
    };
    Ok(Report::new(root, judge::hops(&facts)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_are_named_with_or_without_their_kind() {
        assert_eq!(
            parse_root("web").unwrap(),
            (RootKindName::Ingress, "web".to_string())
        );
        assert_eq!(
            parse_root("Ingress/web").unwrap(),
            (RootKindName::Ingress, "web".to_string())
        );
        assert_eq!(
            parse_root("ingresses.networking.k8s.io/web").unwrap(),
            (RootKindName::Ingress, "web".to_string())
        );
        assert!(parse_root("gateway/web").is_err());
        assert!(parse_root("ingress/").is_err());
    }
}
