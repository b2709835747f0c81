//! The global load-balancer controller: turns GlobalIngresses and cluster
//! health into DNS records.
//!
//! - [`plan`] (pure): GlobalIngresses + cluster health + what the zones hold
//!   → the records every name should hold, ownership records included;
//! - [`diff`] (pure): desired against published → changed names, batched;
//! - [`status`] (pure): the glbc's part of each GlobalIngress status;
//! - [`records`] (pure): DNS names, record sets, ownership records;
//! - [`inputs`] (pure): GlobalIngresses and Clusters as the plan reads them;
//! - [`watches`]: the caches, through `runtime::Watch`;
//! - [`zone`]: each zone's provider, known content, transfers, failures,
//!   backoff and problem; [`keys`]: the TSIG secret and reloading it;
//! - [`publish`]: UPDATEs in batches, refused hosts left out and retried;
//! - [`writes`]: finalizers, statuses and Events; [`ledger`]: what the
//!   glbc remembers of its own writes;
//! - [`pass`]: one pass, plan → diff → updates → statuses;
//!   [`reconcile`]: the loop that runs passes;
//! - [`resolve`]: load-balancer hostnames looked up in the background;
//! - [`traffic`] (pure): weights and priority groups of the clusters;
//! - [`probe`] (pure): a root's health check and the thresholds;
//!   [`prober`]: probing cluster addresses in the background;
//! - [`drain`] (pure): an unschedulable Cluster's drain phase;
//! - [`dns`]: the DNS providers (RFC 2136 with TSIG, dry run);
//!   [`embedded`]: the authoritative server inside every replica.

pub mod batch;
pub mod diff;
pub mod dns;
pub mod drain;
pub mod embedded;
pub mod inputs;
pub mod keys;
pub mod ledger;
pub mod pass;
pub mod plan;
pub mod probe;
pub mod prober;
pub mod publish;
pub mod reconcile;
pub mod records;
pub mod resolve;
pub mod status;
pub mod traffic;
pub mod watches;
pub mod writes;
pub mod zone;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tracing::info;

use self::dns::rfc2136::Rfc2136Client;
use self::dns::{DnsError, DnsProvider, DryRun, TsigAlgorithm, TsigKey};
use self::embedded::Embedded;
use self::keys::{KeyError, KeySource, Keys, ProviderFactory};
use self::pass::{Inputs, Reconciler, Serving, Settings};
use self::plan::PlanConfig;
use self::prober::Prober;
use self::records::DnsName;
use self::resolve::Resolver;
use self::writes::RootWriter;
use self::zone::Zones;
use crate::apis::{Cluster, GlobalIngress};
use crate::cli::{DnsProviderKind, GlbcArgs};
use crate::labels;
use crate::runtime::presence::Presence;
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
    #[error(transparent)]
    Key(#[from] KeyError),
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

/// Where the TSIG secret comes from, after the flags.
fn key_source(args: &GlbcArgs) -> Result<KeySource, KeyError> {
    KeySource::from_flags(
        args.tsig_secret_file.as_ref(),
        args.tsig_secret_ref.as_deref(),
    )
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
    let key_source = key_source(&args)?;
    let rfc2136_server = rfc2136_server(&args)?;
    let nameservers = nameservers(&args)?;

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
    let secret = key_source.load(&client).await?;
    let (factory, embedded, server) = match rfc2136_server {
        Some(server) => {
            let factory = provider_factory(
                server,
                args.tsig_key_name.clone(),
                algorithm,
                args.dns_timeout,
                args.dry_run,
            );
            (factory, None, server)
        }
        None => {
            let key = TsigKey::from_base64(&args.tsig_key_name, algorithm, &secret)?;
            let embedded = Arc::new(Embedded::new(
                &zones,
                &nameservers,
                &key,
                args.dns_listen,
                args.ttl,
            )?);
            embedded
                .serve(&args.dns_notify, &shutdown)
                .await
                .map_err(|e| GlbcError::InvalidFlag {
                    flag: "--dns-listen",
                    reason: format!("cannot listen on {}: {e}", args.dns_listen),
                })?;
            let factory = embedded_factory(embedded.clone(), args.dry_run);
            (factory, Some(embedded), args.dns_listen)
        }
    };
    let dns_zones = Zones::new(
        &zones,
        Keys::new(key_source, client.clone(), secret, factory),
    )?;

    info!(
        provider = ?args.dns_provider,
        %server,
        zones = ?zones.iter().map(DnsName::without_dot).collect::<Vec<_>>(),
        owner = %args.owner_id,
        ttl = args.ttl,
        namespace = args.namespace.as_deref().unwrap_or("(all)"),
        health_threshold = ?args.health.health_threshold,
        dry_run = args.dry_run,
        "starting the glbc"
    );
    // Not in a dry run: it writes nothing, so it removes no finalizer.
    let presence = (!args.dry_run).then(|| Presence {
        client: client.clone(),
        namespace: args.namespace.clone(),
        lease_namespace: args.election.lease_namespace.clone(),
        identity: args
            .election
            .identity
            .clone()
            .unwrap_or_else(runtime::component::default_identity),
    });
    let notify = Arc::new(Notify::new());
    let readiness = runtime::Readiness::default();
    let gateways_served = watches::gateways_served(&client, &shutdown).await;
    let caches = watches::watch(
        &client,
        args.namespace.as_deref(),
        gateways_served,
        &notify,
        &readiness,
        &shutdown,
    );
    let resolver = Resolver::new(Duration::from_secs(u64::from(args.ttl)), notify.clone());
    let leading = Arc::new(AtomicBool::new(false));
    let serving = match &embedded {
        Some(embedded) => Serving::embedded(embedded.clone(), leading.clone()),
        None => Serving::default(),
    };
    let reconciler = Reconciler::new(
        Settings {
            plan: PlanConfig {
                zones,
                owner: args.owner_id.clone(),
                shared: args.shared_names,
                ttl: args.ttl,
                namespace: args.namespace.clone(),
            },
            health_threshold: args.health.health_threshold,
            dry_run: args.dry_run,
            resync_interval: args.resync_interval,
        },
        Inputs {
            caches,
            resolver,
            prober: Prober::new(notify.clone()),
        },
        dns_zones,
        RootWriter::new(client, component.recorder.clone(), args.namespace.clone()),
        component.metrics.clone(),
        serving,
    );
    if embedded.is_some() {
        let glbc = Glbc {
            component,
            reconciler,
            notify,
            readiness,
            leading,
            presence,
        };
        return serve_everywhere(glbc, shutdown).await;
    }
    // Caches filled → ready (leader or standby alike) → the Lease; a
    // standby keeps its caches warm meanwhile.
    let Some(work) = component.ready_then_lead(&readiness, &shutdown).await else {
        component.stopped(None).await?;
        return Ok(());
    };
    // While it works, the controller creates GlobalIngresses with its
    // finalizer (released at once when the work stops).
    let present = presence.map(|p| p.spawn(work.token.clone()));
    reconcile::run(reconciler, notify, work.token.clone()).await;
    if let Some(present) = present {
        let _ = present.await;
    }
    info!("glbc stopped");
    component.stopped(Some(work)).await?;
    Ok(())
}

/// A glbc with the embedded server, ready to run.
struct Glbc {
    component: runtime::Component,
    reconciler: Reconciler,
    notify: Arc<Notify>,
    readiness: runtime::Readiness,
    leading: Arc<AtomicBool>,
    presence: Option<Presence>,
}

/// With the embedded server every replica runs passes (it answers from
/// them) once its caches are filled; the Lease only decides who writes
/// finalizers, statuses and Events (and holds the presence Lease).
async fn serve_everywhere(glbc: Glbc, shutdown: CancellationToken) -> Result<(), GlbcError> {
    let Glbc {
        component,
        reconciler,
        notify,
        readiness,
        leading,
        presence,
    } = glbc;
    // One task (the pass future is not Send): passes until shutdown, or
    // until the Lease is lost (the glbc then exits, as without embedded).
    let passes_token = shutdown.child_token();
    let passes = async {
        if readiness.wait(&passes_token).await {
            reconcile::run(reconciler, notify.clone(), passes_token.clone()).await;
        }
    };
    let lead = async {
        let work = component.ready_then_lead(&readiness, &shutdown).await;
        if let Some(work) = &work {
            info!("leading: this replica writes statuses too");
            leading.store(true, Ordering::SeqCst);
            notify.notify_one();
            let present = presence.as_ref().map(|p| p.spawn(work.token.clone()));
            work.token.cancelled().await;
            leading.store(false, Ordering::SeqCst);
            if let Some(present) = present {
                let _ = present.await;
            }
        }
        passes_token.cancel();
        work
    };
    let ((), work) = tokio::join!(passes, lead);
    info!("glbc stopped");
    component.stopped(work).await?;
    Ok(())
}

/// The RFC 2136 server, with that provider (which needs --dns-server).
fn rfc2136_server(args: &GlbcArgs) -> Result<Option<SocketAddr>, GlbcError> {
    match args.dns_provider {
        DnsProviderKind::Embedded => Ok(None),
        DnsProviderKind::Rfc2136 => {
            let ip = args.dns_server.ok_or_else(|| GlbcError::InvalidFlag {
                flag: "--dns-server",
                reason: "required with --dns-provider rfc2136 (the default)".into(),
            })?;
            Ok(Some(SocketAddr::new(ip, args.dns_port)))
        }
    }
}

/// The embedded server's NS names, after the flags.
fn nameservers(args: &GlbcArgs) -> Result<Vec<DnsName>, GlbcError> {
    args.dns_nameservers
        .iter()
        .map(|n| {
            DnsName::parse_host(n)
                .ok()
                .filter(|n| !n.as_str().starts_with('*'))
                .ok_or_else(|| GlbcError::InvalidFlag {
                    flag: "--dns-nameserver",
                    reason: format!("{n:?} is not a host name"),
                })
        })
        .collect()
}

fn embedded_factory(embedded: Arc<Embedded>, dry_run: bool) -> ProviderFactory {
    Box::new(move |zone: &DnsName, _secret: &str| {
        let provider = embedded
            .provider(zone)
            .ok_or_else(|| DnsError::InvalidName {
                name: zone.to_string(),
                reason: "not a zone of the embedded server".into(),
            })?;
        Ok(if dry_run {
            Box::new(DryRun(provider)) as Box<dyn DnsProvider>
        } else {
            Box::new(provider)
        })
    })
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
        *args
    }

    #[test]
    fn secret_references_parse() {
        let a = args(&["--tsig-secret-ref", "dns/tsig"]);
        assert_eq!(
            key_source(&a).unwrap(),
            KeySource::Secret {
                namespace: "dns".into(),
                name: "tsig".into(),
                key: "secret".into()
            }
        );
        let a = args(&["--tsig-secret-ref", "dns/tsig/key"]);
        assert!(matches!(key_source(&a), Ok(KeySource::Secret { key, .. }) if key == "key"));
        for bad in ["dns", "dns/", "/x", "a/b/c/d"] {
            let a = args(&["--tsig-secret-ref", bad]);
            assert!(key_source(&a).is_err(), "{bad}");
        }
        let a = args(&["--tsig-secret-file", "/run/tsig"]);
        assert_eq!(key_source(&a).unwrap(), KeySource::File("/run/tsig".into()));
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

    #[test]
    fn the_provider_flags_go_together() {
        let a = args(&["--tsig-secret-file", "f", "--dns-port", "5353"]);
        assert_eq!(
            rfc2136_server(&a).unwrap(),
            Some("127.0.0.1:5353".parse().unwrap())
        );
        let mut a = args(&["--tsig-secret-file", "f"]);
        a.dns_server = None;
        assert!(rfc2136_server(&a).is_err(), "rfc2136 needs --dns-server");
        let a = args(&[
            "--tsig-secret-file",
            "f",
            "--dns-provider",
            "embedded",
            "--dns-listen",
            "127.0.0.1:5300",
            "--dns-nameserver",
            "NS1.example.test",
            "--dns-notify",
            "127.0.0.1:5301",
        ]);
        assert_eq!(rfc2136_server(&a).unwrap(), None);
        assert_eq!(
            nameservers(&a).unwrap(),
            [DnsName::new_unchecked("ns1.example.test")]
        );
        assert_eq!(a.dns_notify, ["127.0.0.1:5301".parse().unwrap()]);
        let mut a = a;
        a.dns_nameservers = vec!["not a name".into()];
        assert!(nameservers(&a).is_err());
    }
}
