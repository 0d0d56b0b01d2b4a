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
    /// WAF rule tools: run every rule's embedded tests, or explain a request.
    Rules {
        #[command(subcommand)]
        cmd: RulesCmd,
    },
    /// API keys: create (prints the key once), list, revoke. Reads the key file from the config.
    Keys {
        /// The config file (its `api_keys.key_file` is used).
        #[arg(long, short)]
        config: PathBuf,
        #[command(subcommand)]
        cmd: KeysCmd,
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

#[derive(Subcommand)]
enum KeysCmd {
    /// Create a key; the key is printed once and only its hash is stored.
    Create {
        /// Display name.
        #[arg(long)]
        name: String,
        /// Owner (team, customer).
        #[arg(long)]
        owner: String,
        /// Usage plan name.
        #[arg(long)]
        plan: String,
    },
    /// List keys (ids, names, plans; never the keys).
    List,
    /// Revoke a key by id.
    Revoke {
        /// Key id (`key_…`).
        id: String,
    },
}

#[derive(Subcommand)]
enum RulesCmd {
    /// Run every rule's embedded must-match / must-not-match tests.
    Test {
        /// Rule directory.
        #[arg(long, default_value = "rules")]
        rules: PathBuf,
    },
    /// Print every rule a raw HTTP request matches: target, transforms, matched text, score,
    /// verdict. Reads the request from FILE or stdin.
    Explain {
        /// Rule directory.
        #[arg(long, default_value = "rules")]
        rules: PathBuf,
        /// Paranoia level (1-4).
        #[arg(long, default_value_t = 1)]
        paranoia: u8,
        /// Anomaly threshold.
        #[arg(long, default_value_t = 5)]
        threshold: u32,
        /// Raw HTTP request file (default: stdin).
        file: Option<PathBuf>,
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
                // Build everything a start would: rule files, WAF policies, guard feeds.
                if let Err(e) = palisade::state::Shared::load(&config) {
                    eprintln!("{e}");
                    return Ok(ExitCode::from(2));
                }
                println!(
                    "{}: ok ({} listeners, {} upstream pools, {} routes{})",
                    config.display(),
                    c.listeners.len(),
                    c.pools.len(),
                    c.routes.len(),
                    if c.rules_dir.is_some() {
                        ", rules compiled"
                    } else {
                        ""
                    }
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprintln!("{e}");
                Ok(ExitCode::from(2))
            }
        },
        Cmd::Rules { cmd } => rules(cmd),
        Cmd::Keys { config, cmd } => keys(&config, cmd),
        Cmd::DemoUpstream { listen, name } => {
            let rt = tokio::runtime::Runtime::new().context("tokio runtime")?;
            rt.block_on(palisade::demo_upstream::run(listen, name))
                .context("demo upstream")?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn load_rules(dir: &std::path::Path) -> anyhow::Result<palisade_waf::RuleSet> {
    palisade_waf::RuleSet::load_dir(dir).map_err(|e| anyhow::anyhow!("{e}"))
}

fn rules(cmd: RulesCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        RulesCmd::Test { rules } => {
            let started = std::time::Instant::now();
            let set = load_rules(&rules)?;
            let report = set.run_embedded_tests();
            println!("{report}");
            println!(
                "{} rules loaded and compiled in {:.1} ms",
                set.len(),
                started.elapsed().as_secs_f64() * 1000.0
            );
            Ok(if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        RulesCmd::Explain {
            rules,
            paranoia,
            threshold,
            file,
        } => {
            let set = load_rules(&rules)?;
            let cfg = palisade_waf::PolicyConfig {
                paranoia,
                threshold,
                ..Default::default()
            };
            let policy =
                palisade_waf::Policy::compile(&cfg, &set).map_err(|e| anyhow::anyhow!("{e}"))?;
            let raw = match file {
                Some(f) => {
                    std::fs::read(&f).with_context(|| format!("cannot read {}", f.display()))?
                }
                None => {
                    let mut v = Vec::new();
                    std::io::Read::read_to_end(&mut std::io::stdin(), &mut v).context("stdin")?;
                    v
                }
            };
            let ex =
                palisade_waf::explain(&set, &policy, &raw).map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{ex}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn keys(config: &std::path::Path, cmd: KeysCmd) -> anyhow::Result<ExitCode> {
    let cfg = palisade::config::load(config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let k = cfg
        .api_keys
        .ok_or_else(|| anyhow::anyhow!("{}: no `api_keys:` section", config.display()))?;
    let store = palisade_keys::KeyStore::open(&k.key_file).map_err(|e| anyhow::anyhow!("{e}"))?;
    match cmd {
        KeysCmd::Create { name, owner, plan } => {
            let plans =
                palisade_keys::PlanSet::compile(&k.plans).map_err(|e| anyhow::anyhow!("{e}"))?;
            if plans.get(&plan).is_none() {
                anyhow::bail!(
                    "unknown plan `{plan}` (plans: {})",
                    k.plans
                        .iter()
                        .map(|p| p.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            let (rec, key) = store
                .create(&name, &owner, &plan, None)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("id:  {}", rec.id);
            println!("key: {key}");
            eprintln!("the key is shown once; only its hash is stored. The running gateway picks it up on reload.");
        }
        KeysCmd::List => {
            for r in store.list() {
                println!("{}", serde_json::to_string(&r).context("json")?);
            }
        }
        KeysCmd::Revoke { id } => {
            let rec = store.revoke(&id).map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("revoked {}", rec.id);
        }
    }
    Ok(ExitCode::SUCCESS)
}
