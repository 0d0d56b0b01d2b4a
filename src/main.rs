//! The `palisade` command line.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "palisade",
    version,
    about = "A security gateway: reverse proxy, IP reputation, throttling, API keys, WAF, analytics"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the gateway.
    Run {
        /// The config file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a config file (and its rule files); print errors as file:line:col: message.
    Check {
        /// The config file.
        config: PathBuf,
    },
    /// Run the demo upstream API (echo, REST items, WebSocket echo, gRPC echo, request record).
    DemoUpstream {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8081")]
        listen: SocketAddr,
        /// Name sent in `x-upstream-name`.
        #[arg(long, default_value = "demo")]
        name: String,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.cmd {
        Cmd::Run { config } => {
            palisade::server::run(&config).map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Check { config } => match palisade::config::load(&config) {
            Ok(c) => {
                println!(
                    "{}: ok ({} listeners, {} upstream pools, {} routes)",
                    config.display(),
                    c.listeners.len(),
                    c.pools.len(),
                    c.routes.len()
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprintln!("{e}");
                Ok(ExitCode::from(2))
            }
        },
        Cmd::DemoUpstream { listen, name } => {
            let rt = tokio::runtime::Runtime::new().context("tokio runtime")?;
            rt.block_on(palisade::demo_upstream::run(listen, name))
                .context("demo upstream")?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
