//! The global load-balancer controller: turns GlobalIngresses and cluster
//! health into DNS records.
//!
//! - [`plan`] (pure): GlobalIngresses + cluster health + what the zones hold
//!   → the records every name should hold, ownership records included;
//! - [`diff`] (pure): desired against published → changed names, batched;
//! - [`status`] (pure): the glbc's part of each GlobalIngress status;
//! - [`reconcile`]: watches, the apply loop, status and finalizer writes;
//! - [`dns`]: the DNS providers (RFC 2136 with TSIG, dry run).

pub mod diff;
pub mod dns;
pub mod plan;
pub mod reconcile;
pub mod records;
pub mod resolve;
pub mod status;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::Api;
use tokio::sync::Notify;
use tracing::info;

use self::dns::rfc2136::Rfc2136Client;
use self::dns::{DnsError, DnsProvider, DryRun, TsigAlgorithm, TsigKey};
use self::plan::PlanConfig;
use self::reconcile::{Parts, ProviderFactory, Reconciler, Settings};
use self::records::DnsName;
use crate::apis::{Cluster, GlobalIngress};
use crate::cli::GlbcArgs;
use crate::labels;
use crate::runtime::{self, CancellationToken, ClientError};

/// Errors that stop the glbc.
#[derive(Debug, thiserror::Error)]
pub enum GlbcError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("invalid {flag}: {reason}")]
    InvalidFlag { flag: &'static str, reason: String },
    #[error(transparent)]
    Dns(Box<DnsError>),
    #[error("cannot read the TSIG secret from {path}: {source}")]
    SecretFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read the TSIG secret from Secret {namespace}/{name}: {source}")]
    SecretRead {
        namespace: String,
        name: String,
        source: kube::Error,
    },
    #[error("Secret {namespace}/{name} has no key {key:?} (or it is not UTF-8)")]
    SecretKey {
        namespace: String,
        name: String,
        key: String,
    },
    #[error(transparent)]
    NotServed(#[from] runtime::NotServed),
    #[error(transparent)]
    Component(#[from] runtime::ComponentError),
    #[error(transparent)]
    LostLeadership(#[from] runtime::LostLeadership),
}

impl From<DnsError> for GlbcError {
    fn from(err: DnsError) -> Self {
        Self::Dns(Box::new(err))
    }
}

/// Where the TSIG secret comes from; read at start and again whenever the
/// DNS server rejects the key (so a rotated secret is picked up).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    File(PathBuf),
    Secret {
        namespace: String,
        name: String,
        key: String,
    },
}

/// Key of a `--tsig-secret-ref` Secret's data when none is given.
const DEFAULT_SECRET_KEY: &str = "secret";

impl KeySource {
    fn from_args(args: &GlbcArgs) -> Result<Self, GlbcError> {
        if let Some(path) = &args.tsig_secret_file {
            return Ok(Self::File(path.clone()));
        }
        let reference = args.tsig_secret_ref.as_deref().unwrap_or_default();
        let parts: Vec<&str> = reference.split('/').collect();
        let invalid = || GlbcError::InvalidFlag {
            flag: "--tsig-secret-ref",
            reason: format!("{reference:?} is not NAMESPACE/NAME[/KEY]"),
        };
        match parts.as_slice() {
            [ns, name] if !ns.is_empty() && !name.is_empty() => Ok(Self::Secret {
                namespace: ns.to_string(),
                name: name.to_string(),
                key: DEFAULT_SECRET_KEY.into(),
            }),
            [ns, name, key] if !ns.is_empty() && !name.is_empty() && !key.is_empty() => {
                Ok(Self::Secret {
                    namespace: ns.to_string(),
                    name: name.to_string(),
                    key: key.to_string(),
                })
            }
            _ => Err(invalid()),
        }
    }

    /// The secret, base64 as in BIND's `key` clause, trimmed.
    pub async fn load(&self, client: &Client) -> Result<String, GlbcError> {
        match self {
            Self::File(path) => tokio::fs::read_to_string(path)
                .await
                .map(|s| s.trim().to_string())
                .map_err(|source| GlbcError::SecretFile {
                    path: path.clone(),
                    source,
                }),
            Self::Secret {
                namespace,
                name,
                key,
            } => {
                let secret = Api::<Secret>::namespaced(client.clone(), namespace)
                    .get(name)
                    .await
                    .map_err(|source| GlbcError::SecretRead {
                        namespace: namespace.clone(),
                        name: name.clone(),
                        source,
                    })?;
                secret
                    .data
                    .as_ref()
                    .and_then(|d| d.get(key))
                    .and_then(|v| String::from_utf8(v.0.clone()).ok())
                    .map(|s| s.trim().to_string())
                    .ok_or_else(|| GlbcError::SecretKey {
                        namespace: namespace.clone(),
                        name: name.clone(),
                        key: key.clone(),
                    })
            }
        }
    }
}

/// An owner id goes into TXT records and must not confuse their parser.
fn check_owner_id(owner: &str) -> Result<(), GlbcError> {
    let ok = !owner.is_empty()
        && owner.len() <= 63
        && owner
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(GlbcError::InvalidFlag {
            flag: "--owner-id",
            reason: format!(
                "{owner:?}: use 1 to 63 letters, digits, '-', '_' or '.' (no ',' or '=')"
            ),
        })
    }
}

fn zones(args: &GlbcArgs) -> Result<Vec<DnsName>, GlbcError> {
    let mut zones = Vec::new();
    for zone in &args.zones {
        let name = DnsName::parse_host(zone)
            .ok()
            .filter(|n| !n.as_str().starts_with('*'))
            .ok_or_else(|| GlbcError::InvalidFlag {
                flag: "--zone",
                reason: format!("{zone:?} is not a DNS zone name"),
            })?;
        if !zones.contains(&name) {
            zones.push(name);
        }
    }
    Ok(zones)
}

/// The TTL must fit DNS (31 bits) and be at least one second.
fn check_ttl(ttl: u32) -> Result<(), GlbcError> {
    if (1..=i32::MAX as u32).contains(&ttl) {
        Ok(())
    } else {
        Err(GlbcError::InvalidFlag {
            flag: "--ttl",
            reason: format!("{ttl} is not between 1 and {}", i32::MAX),
        })
    }
}

/// Runs the glbc until `shutdown` is cancelled.
pub async fn run(args: GlbcArgs, shutdown: CancellationToken) -> Result<(), GlbcError> {
    let zones = zones(&args)?;
    check_owner_id(&args.owner_id)?;
    check_ttl(args.ttl)?;
    let algorithm: TsigAlgorithm = args.tsig_algorithm.parse()?;
    let keys = KeySource::from_args(&args)?;

    let client = runtime::client(
        args.control_plane.kubeconfig.as_deref(),
        args.control_plane.context.as_deref(),
    )
    .await?;
    runtime::require_served::<GlobalIngress>(&client).await?;
    runtime::require_served::<Cluster>(&client).await?;

    let component = runtime::start_component(
        labels::GLBC_MANAGER,
        &client,
        &args.admin,
        Some(&args.election),
        &shutdown,
    )
    .await?;
    let secret = keys.load(&client).await?;
    let server = SocketAddr::new(args.dns_server, args.dns_port);
    let factory = provider_factory(
        server,
        args.tsig_key_name.clone(),
        algorithm,
        args.dns_timeout,
        args.dry_run,
    );
    let mut providers = Vec::new();
    for zone in &zones {
        providers.push((zone.clone(), factory(zone, &secret)?));
    }

    info!(
        %server,
        zones = ?zones.iter().map(DnsName::without_dot).collect::<Vec<_>>(),
        owner = %args.owner_id,
        ttl = args.ttl,
        namespace = args.namespace.as_deref().unwrap_or("(all)"),
        health_threshold = ?args.health.health_threshold,
        dry_run = args.dry_run,
        "starting the glbc"
    );
    let notify = Arc::new(Notify::new());
    let caches = reconcile::watch(&client, args.namespace.as_deref(), &notify, &shutdown);
    let (globals, clusters) = (caches.globals.clone(), caches.clusters.clone());
    let recorder = component.recorder.clone();
    let reconciler = Reconciler::new(Parts {
        client,
        settings: Settings {
            plan: PlanConfig {
                zones,
                owner: args.owner_id.clone(),
                ttl: args.ttl,
                namespace: args.namespace.clone(),
            },
            health_threshold: args.health.health_threshold,
            dry_run: args.dry_run,
            resync_interval: args.resync_interval,
            resolve_interval: Duration::from_secs(u64::from(args.ttl)),
        },
        zones: providers,
        keys,
        secret,
        factory,
        caches,
        notify,
        recorder,
        metrics: component.metrics.clone(),
    });
    // Ready once the caches are filled, leader or standby (so that a standby
    // does not hold up a rolling update). One waiter at a time: kube's
    // Store::wait_until_ready wakes only the last of concurrent waiters.
    let filled = async {
        globals.wait_until_ready().await.is_ok() && clusters.wait_until_ready().await.is_ok()
    };
    tokio::select! {
        _ = filled => {}
        _ = shutdown.cancelled() => {}
    }
    // A standby keeps its caches warm and waits for the Lease.
    let Some(work) = component
        .ready_then_lead(&runtime::Readiness::default(), &shutdown)
        .await
    else {
        component.stopped(None).await?;
        return Ok(());
    };
    reconciler.run(work.token.clone()).await;
    info!("glbc stopped");
    component.stopped(Some(work)).await?;
    Ok(())
}

fn provider_factory(
    server: SocketAddr,
    key_name: String,
    algorithm: TsigAlgorithm,
    timeout: Duration,
    dry_run: bool,
) -> ProviderFactory {
    Box::new(move |zone: &DnsName, secret: &str| {
        let key = TsigKey::from_base64(&key_name, algorithm, secret)?;
        let client = Rfc2136Client::new(server, zone.as_str(), &key, timeout)?;
        Ok(if dry_run {
            Box::new(DryRun(client)) as Box<dyn DnsProvider>
        } else {
            Box::new(client)
        })
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn args(extra: &[&str]) -> GlbcArgs {
        let base = [
            "kcp-ingress",
            "glbc",
            "--dns-server",
            "127.0.0.1",
            "--tsig-key-name",
            "k",
            "--zone",
            "Example.test.",
            "--zone",
            "example.test",
        ];
        let cli = Cli::try_parse_from(base.iter().chain(extra).copied()).unwrap();
        let Command::Glbc(args) = cli.command else {
            panic!("not glbc")
        };
        args
    }

    #[test]
    fn secret_references_parse() {
        let a = args(&["--tsig-secret-ref", "dns/tsig"]);
        assert_eq!(
            KeySource::from_args(&a).unwrap(),
            KeySource::Secret {
                namespace: "dns".into(),
                name: "tsig".into(),
                key: "secret".into()
            }
        );
        let a = args(&["--tsig-secret-ref", "dns/tsig/key"]);
        assert!(
            matches!(KeySource::from_args(&a), Ok(KeySource::Secret { key, .. }) if key == "key")
        );
        for bad in ["dns", "dns/", "/x", "a/b/c/d"] {
            let a = args(&["--tsig-secret-ref", bad]);
            assert!(KeySource::from_args(&a).is_err(), "{bad}");
        }
        let a = args(&["--tsig-secret-file", "/run/tsig"]);
        assert_eq!(
            KeySource::from_args(&a).unwrap(),
            KeySource::File("/run/tsig".into())
        );
    }

    #[test]
    fn flags_are_validated() {
        let a = args(&["--tsig-secret-file", "f"]);
        assert_eq!(zones(&a).unwrap(), [DnsName::new_unchecked("example.test")]);
        assert!(check_owner_id("team-a.prod_1").is_ok());
        for bad in ["", "a,b", "a=b", "a b", &"x".repeat(64)] {
            assert!(check_owner_id(bad).is_err(), "{bad:?}");
        }
        assert!(check_ttl(0).is_err() && check_ttl(u32::MAX).is_err() && check_ttl(60).is_ok());
        let a = args(&["--tsig-secret-file", "f", "--zone", "*.x.test"]);
        assert!(zones(&a).is_err());
    }
}
