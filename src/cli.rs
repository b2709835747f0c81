//! Command-line interface: one binary, one subcommand per component. The
//! argument structs are shared with the components, which take them as their
//! configuration.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Global ingress for a fleet of Kubernetes clusters, driven from one control plane.
///
/// The log level is set by RUST_LOG (default: info), e.g. RUST_LOG=kcp_ingress=debug.
#[derive(Debug, Parser)]
#[command(name = "kcp-ingress", version, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub log: LogArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// How logs are written.
#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Log line format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "KCP_INGRESS_LOG_FORMAT")]
    pub log_format: LogFormat,
}

/// Log line formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Split root Ingresses into per-cluster leaves and merge their status back.
    ///
    /// Gateway API roots (Gateway, HTTPRoute, GRPCRoute) are handled when
    /// their CRDs are served at start-up; TLSRoute, TCPRoute and UDPRoute
    /// (experimental channel, v1alpha2) when theirs are too. Discovery
    /// decides once, at start-up (the log names the route kinds handled):
    /// CRDs installed later are handled after a restart.
    Controller(ControllerArgs),
    /// Copy the objects placed on one physical cluster down, and their status up.
    Syncer(SyncerArgs),
    /// Publish every GlobalIngress as DNS records (RFC 2136 with TSIG, or
    /// an embedded authoritative server).
    ///
    /// Draining a cluster: `kubectl patch cluster NAME --type merge -p
    /// '{"spec":{"unschedulable":true}}'`. The glbc withdraws the cluster's
    /// addresses from DNS at once and writes on the Cluster when the TTL
    /// (--ttl, plus 2 s) has passed (status.drainCompleteTime, condition
    /// Drained=False/Draining, then True/Drained); the controller removes
    /// the cluster's leaves only then. Setting it back to false brings the
    /// leaves back, then the addresses. Draining the last cluster of a root
    /// keeps its last answers (fail open; the Drained message names it).
    ///
    /// Health checks: annotate a root with kcp-ingress.dev/health-check, a
    /// JSON object: {"path":"/healthz","port":80,"scheme":"http","host":
    /// "web.example.com","intervalSeconds":10,"timeoutSeconds":5,
    /// "failureThreshold":3,"successThreshold":1,"expectedCodes":[200]}
    /// (all optional; these are the defaults, host: the root's first host,
    /// expected codes: 200-399). The glbc GETs every cluster address of the
    /// root; an address failing failureThreshold times in a row is withdrawn
    /// from DNS until it passes successThreshold times. When every cluster
    /// fails, the last answers are kept and Degraded=True.
    /// status.probes of the GlobalIngress shows each address's verdict.
    Glbc(Box<GlbcArgs>),
    /// Write the CustomResourceDefinitions of the kcp-ingress API (or check them).
    Crdgen(CrdgenArgs),
    /// Show one root's whole chain, hop by hop, and the first hop that does not hold.
    ///
    /// Reads the control plane (the root, its placement over the Clusters, its
    /// leaves, the Services and Secrets it references and their copies in the
    /// cluster namespaces, its GlobalIngress), each placed cluster's API server
    /// when the Cluster has a kubeconfig Secret (push mode) and answers, and,
    /// with --dns-server, the DNS server the glbc publishes to (the ownership
    /// records and what a query answers now). Nothing is written anywhere.
    ///
    /// The hops, in order: root, placement, leaves, dependencies, downstream,
    /// clusters (health and load-balancer address), root-status,
    /// global-ingress, dns-records, dns-answers. The first hop that does not
    /// hold is named, with why and a command to look further.
    ///
    /// Roots: an Ingress (NAME or ingress/NAME), a Gateway (gateway/NAME:
    /// placed on the selected Clusters that have the gateway.kcp-ingress.dev/class
    /// label; clusters: each leaf Gateway Programmed, with an address;
    /// global-ingress: NAME.gateway), an HTTPRoute or GRPCRoute
    /// (httproute/NAME, grpcroute/NAME: placed where its parent Gateways are;
    /// clusters and root-status: status.parents Accepted and ResolvedRefs;
    /// its names are checked in its parent Gateways' GlobalIngresses and DNS).
    ///
    /// Exit status: 0 when every hop holds, 1 when one does not, 2 when explain
    /// itself cannot run (bad flags, the control plane does not answer).
    /// Secrets are never printed: kubeconfig Secrets are used, not shown; TLS
    /// Secrets are read for their metadata only; the TSIG secret is only used to
    /// sign a zone transfer.
    ///
    /// As a kubectl plugin: link the binary as `kubectl-kcp_ingress` on the
    /// PATH (`make install-plugin`), then `kubectl kcp-ingress explain -n shop web`.
    Explain(ExplainArgs),
}

/// Which control plane to talk to.
#[derive(Debug, Clone, Args)]
pub struct ControlPlaneArgs {
    /// Kubeconfig of the control plane (default: $KUBECONFIG, ~/.kube/config, then in-cluster).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Context of that kubeconfig to use (default: its current context).
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
}

/// How cluster health is judged (by the controller's merge and by the glbc).
#[derive(Debug, Clone, Args)]
pub struct HealthArgs {
    /// A cluster is healthy while it is Ready and its syncer's last heartbeat
    /// is younger than this.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub health_threshold: Duration,
}

/// The admin server.
#[derive(Debug, Clone, Args)]
pub struct AdminArgs {
    /// Serve /livez, /readyz and /metrics on this address (e.g. 0.0.0.0:8080); off when absent.
    #[arg(long, value_name = "ADDRESS:PORT")]
    pub admin_address: Option<std::net::SocketAddr>,
}

/// Leader election, so that several replicas can run and one writes.
#[derive(Debug, Clone, Args)]
pub struct ElectionArgs {
    /// Take part in leader election through a Lease; only the leader reconciles.
    #[arg(long)]
    pub leader_elect: bool,
    /// Namespace of the Lease (it must exist).
    #[arg(long, value_name = "NAMESPACE", default_value = "kcp-ingress-system")]
    pub lease_namespace: String,
    /// Name of the Lease (default: the component's field manager, e.g. kcp-ingress-controller).
    #[arg(long, value_name = "NAME")]
    pub lease_name: Option<String>,
    /// How long a leader's Lease lasts without renewal; a standby takes over after it.
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = parse_duration)]
    pub lease_duration: Duration,
    /// This replica's identity in the Lease (default: hostname and process id).
    #[arg(long, value_name = "ID")]
    pub identity: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct ControllerArgs {
    #[command(flatten)]
    pub control_plane: ControlPlaneArgs,
    #[command(flatten)]
    pub health: HealthArgs,
    #[command(flatten)]
    pub admin: AdminArgs,
    #[command(flatten)]
    pub election: ElectionArgs,
    /// Also run a syncer for every Cluster that has spec.kubeconfigSecretRef (push mode).
    #[arg(long)]
    pub push_syncers: bool,
    /// With --push-syncers: the resource types those syncers copy (see `syncer --resources`).
    #[arg(long, value_delimiter = ',', default_value = DEFAULT_RESOURCES)]
    pub resources: Vec<String>,
    /// With --push-syncers: how often those syncers heartbeat their Cluster.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub heartbeat_interval: Duration,
    /// With --push-syncers: see `syncer --namespace-grace`.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub namespace_grace: Duration,
}

/// The resource types a syncer copies by default.
/// The Gateway API leaves (gateways, httproutes, grpcroutes, and the
/// experimental channel's tlsroutes, tcproutes, udproutes) and the
/// ReferenceGrants that follow them are among them: a syncer whose control
/// plane or cluster does not serve them reports so in its Cluster's
/// `status.syncedResources` and syncs the rest.
pub const DEFAULT_RESOURCES: &str = "ingresses.networking.k8s.io,services,secrets,configmaps,\
     deployments.apps,gateways.gateway.networking.k8s.io,httproutes.gateway.networking.k8s.io,\
     grpcroutes.gateway.networking.k8s.io,tlsroutes.gateway.networking.k8s.io,\
     tcproutes.gateway.networking.k8s.io,udproutes.gateway.networking.k8s.io,\
     referencegrants.gateway.networking.k8s.io";

#[derive(Debug, Clone, Args)]
pub struct SyncerArgs {
    /// Name of the Cluster object this syncer serves.
    #[arg(long, value_name = "NAME")]
    pub cluster: String,
    /// Kubeconfig of the control plane (default: $KUBECONFIG, ~/.kube/config, then in-cluster).
    #[arg(long, value_name = "FILE")]
    pub upstream_kubeconfig: Option<PathBuf>,
    /// Context of the upstream kubeconfig (default: its current context).
    #[arg(long, value_name = "NAME")]
    pub upstream_context: Option<String>,
    /// Kubeconfig of the physical cluster (default: the in-cluster service account).
    #[arg(long, value_name = "FILE")]
    pub downstream_kubeconfig: Option<PathBuf>,
    /// Context of the downstream kubeconfig (default: its current context).
    #[arg(long, value_name = "NAME")]
    pub downstream_context: Option<String>,
    /// Resource types to copy, as `resource.group` (core types: just `resource`), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = DEFAULT_RESOURCES)]
    pub resources: Vec<String>,
    #[command(flatten)]
    pub admin: AdminArgs,
    /// How often the syncer writes its Cluster's heartbeat (status.lastHeartbeatTime and
    /// conditions). The cluster's API is probed more often (a fifth of this, between 500ms
    /// and 2s); a failed probe, request or watch turns DownstreamReachable and Ready False
    /// at once, without waiting for the next heartbeat.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub heartbeat_interval: Duration,
    /// How long a namespace the syncer created in the physical cluster stays after the last
    /// copy in it went, before the syncer deletes it (a root deleted and created again
    /// within this time keeps its namespace; deleting a namespace takes everything in it).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub namespace_grace: Duration,
}

#[derive(Debug, Clone, Args)]
pub struct GlbcArgs {
    #[command(flatten)]
    pub control_plane: ControlPlaneArgs,
    #[command(flatten)]
    pub health: HealthArgs,
    #[command(flatten)]
    pub admin: AdminArgs,
    #[command(flatten)]
    pub election: ElectionArgs,
    /// Where the records go. `rfc2136`: an authoritative server you run
    /// (BIND, Knot, PowerDNS) takes signed dynamic updates from the Lease
    /// holder; every cluster of weight > 0 counts the same there (an RRset
    /// has no weights). `embedded`: every glbc replica answers DNS itself
    /// (UDP and TCP on --dns-listen) for zones delegated to it, drawing the
    /// first answer by Cluster.spec.weight; standard secondaries can
    /// transfer the zones (AXFR signed with the TSIG key; NOTIFY to
    /// --dns-notify). With both, weight 0 means no traffic and the label
    /// kcp-ingress.dev/priority makes priority groups.
    #[arg(long, value_enum, default_value_t = DnsProviderKind::Rfc2136)]
    pub dns_provider: DnsProviderKind,
    /// rfc2136: address of the DNS server that accepts RFC 2136 updates
    /// (the zone's primary). Required with that provider.
    #[arg(long, value_name = "IP")]
    pub dns_server: Option<IpAddr>,
    /// embedded: the address and port to answer DNS queries on (UDP and TCP).
    /// Port 53 needs root or CAP_NET_BIND_SERVICE; behind a Service or a
    /// port mapping any port does (config/glbc/embedded: 0.0.0.0:5353).
    #[arg(long, value_name = "IP:PORT", default_value = "0.0.0.0:53")]
    pub dns_listen: SocketAddr,
    /// embedded: the name servers of every zone (its NS records: the names
    /// the parent zone delegates to; repeat for several). Default: ns.<zone>.
    #[arg(long = "dns-nameserver", value_name = "NAME")]
    pub dns_nameservers: Vec<String>,
    /// embedded: a secondary to send NOTIFY to when a zone changes (repeat
    /// for several). It transfers the zone with AXFR signed with the TSIG key.
    #[arg(long = "dns-notify", value_name = "IP:PORT")]
    pub dns_notify: Vec<SocketAddr>,
    /// rfc2136: port of the DNS server.
    #[arg(long, value_name = "PORT", default_value_t = 53)]
    pub dns_port: u16,
    /// A zone the glbc publishes in; repeat for several. rfc2136: a zone of
    /// --dns-server that takes the glbc's updates; embedded: a zone the glbc
    /// serves itself (it answers REFUSED outside every zone). Hosts outside
    /// every zone are skipped.
    #[arg(long = "zone", value_name = "ZONE", required = true)]
    pub zones: Vec<String>,
    /// Name of the TSIG key, as the DNS server knows it (embedded: the key
    /// secondaries sign their zone transfers with).
    #[arg(long, value_name = "NAME")]
    pub tsig_key_name: String,
    /// TSIG algorithm: hmac-sha256, hmac-sha384 or hmac-sha512.
    #[arg(long, value_name = "ALGORITHM", default_value = "hmac-sha256")]
    pub tsig_algorithm: String,
    /// File holding the base64 TSIG secret. Read at start, and again whenever
    /// the DNS server rejects the key, so a rotated secret is picked up
    /// without a restart.
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "tsig_secret_ref",
        conflicts_with = "tsig_secret_ref"
    )]
    pub tsig_secret_file: Option<PathBuf>,
    /// Secret in the control plane holding the base64 TSIG secret, as NAMESPACE/NAME[/KEY] (default key: secret).
    /// Read like --tsig-secret-file (needs `get` on that Secret).
    #[arg(long, value_name = "NAMESPACE/NAME[/KEY]")]
    pub tsig_secret_ref: Option<String>,
    /// Who owns the records this glbc writes; written into the ownership TXT records.
    /// Two glbc instances writing to one zone need different owner ids.
    #[arg(long, value_name = "ID", default_value = "kcp-ingress")]
    pub owner_id: String,
    /// Share host names with other kcp-ingress installations that share
    /// too: a name then holds the union of every sharing owner's addresses,
    /// and one ownership TXT record per owner (`shared=true`, with that
    /// owner's addresses). Each owner adds and removes only its own
    /// addresses, guarded so that concurrent changes never get lost. Without
    /// this flag a shared name is a conflict; with it, a name held by an
    /// exclusive owner (or by records without ownership) still is. A
    /// hostname load-balancer target is resolved to addresses (a CNAME
    /// cannot be shared).
    #[arg(long)]
    pub shared_names: bool,
    /// TTL of the records the glbc publishes (ownership TXT records too), in
    /// seconds. Load-balancer hostnames that have to be resolved to
    /// addresses (a host with several targets) are looked up again this often.
    /// A drained cluster's leaves go this long (plus 2 s) after its
    /// addresses left DNS.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub ttl: u32,
    /// Log the DNS changes that would be made; send none. The zones are
    /// still read (zone transfer), but nothing is written anywhere: no DNS
    /// update, no GlobalIngress status, no finalizer, no Event.
    #[arg(long)]
    pub dry_run: bool,
    /// Only publish the GlobalIngresses of this namespace (default: all).
    /// Records this owner id published for other namespaces are left alone.
    #[arg(long, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// rfc2136: how long one exchange with the DNS server (an UPDATE, a
    /// zone transfer) may take before it counts as failed and is retried.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub dns_timeout: Duration,
    /// Read every zone again this often (zone transfer) and repair records
    /// of ours that were changed behind the glbc's back.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    pub resync_interval: Duration,
}

/// The flags of `explain` (its help is on [`Command::Explain`]).
#[derive(Debug, Clone, Args)]
#[command(after_help = "Examples:
  kcp-ingress explain -n shop web
  kcp-ingress explain -n shop ingress/web -o json
  kcp-ingress explain -n shop gateway/web
  kcp-ingress explain -n shop httproute/shop -o yaml
  kcp-ingress explain -n shop web --dns-server 127.0.0.1 --dns-port 5353 \\
      --zone example.test --owner-id kcp-ingress")]
pub struct ExplainArgs {
    /// The root: NAME or ingress/NAME (an Ingress), gateway/NAME,
    /// httproute/NAME or grpcroute/NAME (also plural, gtw, or KIND.GROUP).
    #[arg(value_name = "ROOT")]
    pub root: String,
    /// Namespace of the root (default: the kubeconfig context's, else default).
    #[arg(short = 'n', long, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    #[command(flatten)]
    pub control_plane: ControlPlaneArgs,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = crate::explain::render::Format::Tree)]
    pub output: crate::explain::render::Format,
    /// Colour the tree: auto (only on a terminal), always or never.
    #[arg(long, value_enum, default_value_t = Color::Auto)]
    pub color: Color,
    #[command(flatten)]
    pub health: HealthArgs,
    /// How long a placed cluster's API server may take to answer one request.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub cluster_timeout: Duration,
    /// Address of the DNS server the glbc publishes to (as the glbc's
    /// --dns-server); without it the DNS hops are not checked.
    #[arg(long, value_name = "IP")]
    pub dns_server: Option<IpAddr>,
    /// Port of the DNS server.
    #[arg(long, value_name = "PORT", default_value_t = 53)]
    pub dns_port: u16,
    /// A zone the glbc writes to (as the glbc's --zone); repeat for several.
    /// Hosts outside every zone given are reported.
    #[arg(long = "zone", value_name = "ZONE")]
    pub zones: Vec<String>,
    /// The glbc's --owner-id: whose ownership records count as ours.
    #[arg(long, value_name = "ID", default_value = "kcp-ingress")]
    pub owner_id: String,
    /// How long one DNS exchange may take.
    #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = parse_duration)]
    pub dns_timeout: Duration,
    /// The glbc's TSIG key name: with it, check that the DNS server accepts
    /// the key (a signed zone transfer of the first --zone).
    #[arg(long, value_name = "NAME", requires = "zones")]
    pub tsig_key_name: Option<String>,
    /// TSIG algorithm: hmac-sha256, hmac-sha384 or hmac-sha512.
    #[arg(long, value_name = "ALGORITHM", default_value = "hmac-sha256")]
    pub tsig_algorithm: String,
    /// File holding the base64 TSIG secret (as the glbc's).
    #[arg(
        long,
        value_name = "FILE",
        requires = "tsig_key_name",
        conflicts_with = "tsig_secret_ref"
    )]
    pub tsig_secret_file: Option<PathBuf>,
    /// Secret in the control plane holding the base64 TSIG secret, as
    /// NAMESPACE/NAME[/KEY] (default key: secret), as the glbc's.
    #[arg(long, value_name = "NAMESPACE/NAME[/KEY]", requires = "tsig_key_name")]
    pub tsig_secret_ref: Option<String>,
}

/// When the tree is coloured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Color {
    /// Only when standard output is a terminal.
    Auto,
    Always,
    Never,
}

/// The glbc's DNS providers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DnsProviderKind {
    /// Signed dynamic updates (RFC 2136) to an authoritative server you run.
    Rfc2136,
    /// An authoritative server inside every glbc replica.
    Embedded,
}

#[derive(Debug, Clone, Args)]
pub struct CrdgenArgs {
    /// Directory the manifests are written to (one file per CRD).
    #[arg(long, default_value = "config/crd")]
    pub dir: PathBuf,
    /// Write nothing; exit with status 1 if the directory differs from what would be written.
    #[arg(long, conflicts_with = "stdout")]
    pub check: bool,
    /// Print the manifests as one multi-document YAML stream instead of writing files.
    #[arg(long)]
    pub stdout: bool,
}

/// Parses a duration such as `500ms`, `10s` or `1m30s`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 500ms, 10s, 1m30s)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn crdgen_defaults_to_config_crd() {
        let cli = Cli::try_parse_from(["kcp-ingress", "crdgen"]).unwrap();
        let Command::Crdgen(args) = cli.command else {
            panic!("not crdgen")
        };
        assert_eq!(args.dir, PathBuf::from("config/crd"));
        assert!(!args.check && !args.stdout);
    }

    #[test]
    fn check_and_stdout_exclude_each_other() {
        assert!(Cli::try_parse_from(["kcp-ingress", "crdgen", "--check", "--stdout"]).is_err());
    }

    #[test]
    fn syncer_defaults() {
        let cli = Cli::try_parse_from(["kcp-ingress", "syncer", "--cluster", "east"]).unwrap();
        let Command::Syncer(args) = cli.command else {
            panic!("not syncer")
        };
        assert_eq!(args.resources.len(), 12);
        for kind in ["httproutes", "tlsroutes", "tcproutes", "udproutes"] {
            assert!(
                args.resources
                    .contains(&format!("{kind}.gateway.networking.k8s.io")),
                "{kind}"
            );
        }
        assert_eq!(args.heartbeat_interval, Duration::from_secs(10));
        assert!(Cli::try_parse_from(["kcp-ingress", "syncer"]).is_err());
    }

    #[test]
    fn glbc_needs_a_zone_and_one_secret_source() {
        let base = [
            "kcp-ingress",
            "glbc",
            "--dns-server",
            "127.0.0.1",
            "--tsig-key-name",
            "k",
        ];
        let with = |extra: &[&str]| {
            Cli::try_parse_from(base.iter().chain(extra.iter()).copied()).map(|_| ())
        };
        assert!(with(&["--zone", "example.test", "--tsig-secret-file", "f"]).is_ok());
        assert!(with(&["--tsig-secret-file", "f"]).is_err());
        assert!(with(&["--zone", "example.test"]).is_err());
        assert!(
            with(&[
                "--zone",
                "z",
                "--tsig-secret-file",
                "f",
                "--tsig-secret-ref",
                "a/b"
            ])
            .is_err()
        );
    }

    #[test]
    fn explain_takes_a_root_and_the_glbc_s_dns_flags() {
        let cli = Cli::try_parse_from([
            "kcp-ingress",
            "explain",
            "-n",
            "shop",
            "web",
            "-o",
            "json",
            "--dns-server",
            "127.0.0.1",
            "--zone",
            "example.test",
            "--tsig-key-name",
            "k",
            "--tsig-secret-file",
            "f",
        ])
        .unwrap();
        let Command::Explain(args) = cli.command else {
            panic!("not explain")
        };
        assert_eq!(
            (args.root.as_str(), args.namespace.as_deref()),
            ("web", Some("shop"))
        );
        assert_eq!(args.output, crate::explain::render::Format::Json);
        assert_eq!(args.owner_id, "kcp-ingress");
        assert!(Cli::try_parse_from(["kcp-ingress", "explain"]).is_err());
        // A key needs its zone; a secret needs its key.
        assert!(
            Cli::try_parse_from(["kcp-ingress", "explain", "web", "--tsig-key-name", "k"]).is_err()
        );
        assert!(
            Cli::try_parse_from(["kcp-ingress", "explain", "web", "--tsig-secret-file", "f"])
                .is_err()
        );
    }

    #[test]
    fn durations_parse_in_human_units() {
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert!(parse_duration("ten").is_err());
    }
}
