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
//! Everything but the parsing of `ROOT` is generic over the root kind
//! ([`Explained`]: a [`RootKind`](crate::controller::kind::RootKind) with
//! what `explain` judges differently per kind), its world
//! ([`gather::GatherWorld`]) listed once: Ingress, Gateway, HTTPRoute and
//! GRPCRoute roots, judged with the controller's own functions.

pub mod dns;
pub mod facts;
pub mod gather;
pub mod judge;
pub mod render;
pub mod report;

use k8s_openapi::api::networking::v1::Ingress;

use self::gather::GatherWorld;
use self::judge::kinds::Explained;
use self::report::{Report, RootRef};
use crate::cli::ExplainArgs;
use crate::gateway_api::gateway::Gateway;
use crate::gateway_api::grpc_route::GrpcRoute;
use crate::gateway_api::http_route::HttpRoute;
use crate::runtime::{self, ClientError};

/// Why `explain` could not say anything.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Gather(#[from] gather::GatherError),
    #[error(
        "{0:?} is not a root kcp-ingress explains: give NAME (an Ingress) or KIND/NAME with KIND \
         ingress, gateway, httproute or grpcroute"
    )]
    UnknownKind(String),
}

/// The kinds of root `explain` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootKindName {
    Ingress,
    Gateway,
    HttpRoute,
    GrpcRoute,
}

/// `ROOT` as given: `NAME` (an Ingress), or `KIND/NAME` with KIND
/// (case-insensitive) one of ingress, ingresses, ing (optionally
/// `.networking.k8s.io`); gateway, gateways, gtw; httproute, httproutes;
/// grpcroute, grpcroutes (each optionally `.gateway.networking.k8s.io`).
pub fn parse_root(text: &str) -> Result<(RootKindName, String), ExplainError> {
    let Some((kind, name)) = text.split_once('/') else {
        return Ok((RootKindName::Ingress, text.to_string()));
    };
    let unknown = || ExplainError::UnknownKind(text.to_string());
    if name.is_empty() || name.contains('/') {
        return Err(unknown());
    }
    let kind = kind.to_ascii_lowercase();
    let (kind, group) = match kind.split_once('.') {
        Some((kind, group)) => (kind, Some(group)),
        None => (kind.as_str(), None),
    };
    let found = match (kind, group) {
        ("ingress" | "ingresses" | "ing", None | Some("networking.k8s.io")) => {
            RootKindName::Ingress
        }
        ("gateway" | "gateways" | "gtw", None | Some(GATEWAY_GROUP)) => RootKindName::Gateway,
        ("httproute" | "httproutes", None | Some(GATEWAY_GROUP)) => RootKindName::HttpRoute,
        ("grpcroute" | "grpcroutes", None | Some(GATEWAY_GROUP)) => RootKindName::GrpcRoute,
        _ => return Err(unknown()),
    };
    Ok((found, name.to_string()))
}

/// The API group of the Gateway API kinds.
const GATEWAY_GROUP: &str = crate::labels::gateway_api::GROUP;

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
        RootKindName::Gateway => explain_kind::<Gateway>(&client, args, &namespace, &name).await,
        RootKindName::HttpRoute => {
            explain_kind::<HttpRoute>(&client, args, &namespace, &name).await
        }
        RootKindName::GrpcRoute => {
            explain_kind::<GrpcRoute>(&client, args, &namespace, &name).await
        }
    }
}

async fn explain_kind<K>(
    client: &kube::Client,
    args: &ExplainArgs,
    namespace: &str,
    name: &str,
) -> Result<Report, ExplainError>
where
    K: Explained,
    K::World: GatherWorld,
{
    let world = K::World::gather(client).await?;
    let mut facts = gather::facts::<K>(
        client,
        world,
        namespace,
        name,
        args.health.health_threshold,
        args.cluster_timeout,
    )
    .await?;
    if let Some(root) = &facts.root {
        let mut hosts: Vec<String> = K::published(root, &facts)
            .into_iter()
            .map(|p| p.host)
            .collect();
        hosts.dedup();
        facts.dns = dns::facts(client, args, &hosts).await;
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
        for (text, kind) in [
            ("gateway/web", RootKindName::Gateway),
            ("Gateways/web", RootKindName::Gateway),
            ("gtw/web", RootKindName::Gateway),
            (
                "gateway.gateway.networking.k8s.io/web",
                RootKindName::Gateway,
            ),
            ("httproute/web", RootKindName::HttpRoute),
            (
                "HTTPRoutes.gateway.networking.k8s.io/web",
                RootKindName::HttpRoute,
            ),
            ("grpcroute/web", RootKindName::GrpcRoute),
            (
                "grpcroutes.gateway.networking.k8s.io/web",
                RootKindName::GrpcRoute,
            ),
        ] {
            assert_eq!(
                parse_root(text).unwrap(),
                (kind, "web".to_string()),
                "{text}"
            );
        }
        assert!(parse_root("ingress/").is_err());
        assert!(parse_root("gateway.networking.k8s.io/web").is_err());
        assert!(parse_root("ingress.gateway.networking.k8s.io/web").is_err());
        assert!(parse_root("service/web").is_err());
        assert!(parse_root("gateway/a/b").is_err());
    }
}
