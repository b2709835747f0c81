//! Command-line interface: one binary, one subcommand per component.

use std::path::PathBuf;

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
#[derive(Debug, Args)]
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
    /// Write the CustomResourceDefinitions of the kcp-ingress API (or check them).
    Crdgen(CrdgenArgs),
}

#[derive(Debug, Args)]
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
        let Command::Crdgen(args) = cli.command;
        assert_eq!(args.dir, PathBuf::from("config/crd"));
        assert!(!args.check && !args.stdout);
    }

    #[test]
    fn check_and_stdout_exclude_each_other() {
        assert!(Cli::try_parse_from(["kcp-ingress", "crdgen", "--check", "--stdout"]).is_err());
    }
}
