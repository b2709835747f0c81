//! The `kcp-ingress` binary: parse the command line, set up logging, run the
//! chosen subcommand until it ends or a signal stops it.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use kcp_ingress::apis::crdgen;
use kcp_ingress::cli::{Cli, Color, Command, CrdgenArgs, ExplainArgs, LogFormat};
use kcp_ingress::explain::{self, render, report};
use kcp_ingress::{controller, glbc, runtime, syncer};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log.log_format);
    let result =
        match cli.command {
            Command::Crdgen(args) => run_crdgen(&args),
            Command::Explain(args) => run_explain(&args),
            Command::Controller(args) => serve(|shutdown| async move {
                controller::run(args, shutdown).await.context("controller")
            }),
            Command::Syncer(args) => {
                serve(|shutdown| async move { syncer::run(args, shutdown).await.context("syncer") })
            }
            Command::Glbc(args) => {
                serve(|shutdown| async move { glbc::run(*args, shutdown).await.context("glbc") })
            }
        };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("kcp-ingress: {}", describe(&err));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line. Many of the crate's errors already
/// name their cause in their message; a cause is added only when the line
/// does not say it yet.
fn describe(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

fn init_tracing(format: LogFormat) {
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // hickory-server logs every DNS query at info, and its catalog warns
    // of an "unexpected lookup skip" on every answer of a zone without
    // DNSSEC: only its warnings (the catalog's errors), unless RUST_LOG
    // names it.
    if !std::env::var("RUST_LOG").is_ok_and(|v| v.contains("hickory_server")) {
        for quiet in [
            "hickory_server=warn",
            "hickory_server::zone_handler::catalog=error",
        ] {
            if let Ok(quiet) = quiet.parse() {
                filter = filter.add_directive(quiet);
            }
        }
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Runs a long-lived component on a tokio runtime, with one shutdown signal
/// (SIGINT or SIGTERM) for all of its tasks.
fn serve<F, Fut>(component: F) -> anyhow::Result<ExitCode>
where
    F: FnOnce(runtime::CancellationToken) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    // Freed memory back to the system (a long-running process's resident
    // memory, not its speed: `runtime::malloc`).
    runtime::malloc::tune();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    rt.block_on(async {
        let shutdown = runtime::shutdown_on_signals();
        tokio::spawn(runtime::malloc::trim_periodically(shutdown.clone()));
        component(shutdown).await
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Explains one root: the report on standard output, the exit code from
/// its verdict (2 when explain itself fails).
fn run_explain(args: &ExplainArgs) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    match rt.block_on(explain::explain(args)) {
        Ok(report) => {
            let color = match args.color {
                Color::Always => true,
                Color::Never => false,
                Color::Auto => std::io::stdout().is_terminal(),
            };
            print!("{}", render::render(&report, args.output, color));
            Ok(ExitCode::from(report.exit_code()))
        }
        Err(err) => {
            eprintln!(
                "kcp-ingress explain: {}",
                describe(&anyhow::Error::from(err))
            );
            Ok(ExitCode::from(report::EXIT_ERROR))
        }
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
