//! The `kcp-ingress` binary: parse the command line, set up logging, run the
//! chosen subcommand.

mod cli;

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use kcp_ingress::apis::crdgen;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command, CrdgenArgs, LogFormat};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log.log_format);
    let result = match cli.command {
        Command::Crdgen(args) => run_crdgen(&args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("kcp-ingress: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn run_crdgen(args: &CrdgenArgs) -> anyhow::Result<ExitCode> {
    if args.stdout {
        for m in crdgen::manifests()? {
            print!("---\n{}", m.text);
        }
        return Ok(ExitCode::SUCCESS);
    }
    if args.check {
        let drift =
            crdgen::check(&args.dir).with_context(|| format!("checking {}", args.dir.display()))?;
        if drift.is_empty() {
            println!("{} is up to date", args.dir.display());
            return Ok(ExitCode::SUCCESS);
        }
        for d in &drift {
            eprintln!("crdgen: {d}");
        }
        eprintln!("crdgen: run `kcp-ingress crdgen` (or `make crds`) and commit the result");
        return Ok(ExitCode::FAILURE);
    }
    for path in crdgen::write(&args.dir)? {
        println!("wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}
