//! The `palisade` command line.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// mimalloc instead of glibc's malloc: a proxy allocates and frees a few dozen small objects per
/// request (header names and values, Pingora's buffers and futures, the analytics event), and
/// the thread-local free lists make each about half as costly (docs/BENCHMARKS.md). The bare
/// Pingora example uses the same allocator, so that the ratio between the two stays fair.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// API keys: create (prints the key once), list, rotate, revoke. Changes the key file named
    /// by the config; a running gateway applies the change within a second.
    Keys {
        /// The config file (its `api_keys.key_file` is used).
        #[arg(long, short)]
        config: PathBuf,
        #[command(subcommand)]
        cmd: KeysCmd,
    },
    /// IP bans of the running gateway, through its admin API (address and token from the config).
    Bans {
        /// The config file (its `admin:` section is used).
        #[arg(long, short)]
        config: PathBuf,
        #[command(subcommand)]
        cmd: BansCmd,
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
    /// Replace a key's secret (same id, plan and quota usage); prints the new key once. The old
    /// key stops working.
    Rotate {
        /// Key id (`key_…`).
        id: String,
        /// Let the old key keep working this long (seconds, or 90s, 15m, 2h, 1d).
        #[arg(long, value_parser = parse_ttl)]
        grace: Option<u64>,
    },
    /// Revoke a key by id.
    Revoke {
        /// Key id (`key_…`).
        id: String,
    },
}

#[derive(Subcommand)]
enum BansCmd {
    /// List the bans in force.
    List,
    /// Ban an address.
    Add {
        /// The address (IPv4 or IPv6).
        ip: std::net::IpAddr,
        /// Duration: seconds, or a number with s, m, h or d (default: `guard.autoban.ban_secs`).
        #[arg(long, value_parser = parse_ttl)]
        ttl: Option<u64>,
        /// Why (shown in the list).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Lift the ban of an address.
    Remove {
        /// The address.
        ip: std::net::IpAddr,
    },
}

/// `90`, `90s`, `15m`, `2h`, `1d` → seconds.
fn parse_ttl(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, 's')) => (s.get(..i).unwrap_or_default(), 1),
        Some((i, 'm')) => (s.get(..i).unwrap_or_default(), 60),
        Some((i, 'h')) => (s.get(..i).unwrap_or_default(), 3600),
        Some((i, 'd')) => (s.get(..i).unwrap_or_default(), 86_400),
        _ => (s, 1),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("invalid duration `{s}` (expected e.g. 3600, 90s, 15m, 2h, 1d)"))
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
    /// Replay a labelled corpus (DIR/attacks/<class>.txt, DIR/benign/<name>.txt, one raw value
    /// per line; DIR/requests/{attack,benign}/*.http, whole raw requests) through the rules: the percentage of attack lines blocked and of benign lines
    /// blocked, per file, as a query argument, a JSON value and a form field (every 10th line,
    /// or --every N).
    Replay {
        /// Corpus directory.
        corpus: PathBuf,
        /// Rule directory.
        #[arg(long, default_value = "rules")]
        rules: PathBuf,
        /// Paranoia levels to replay at (repeat the flag, or 1,2).
        #[arg(long, value_delimiter = ',', default_values_t = [1u8, 2])]
        paranoia: Vec<u8>,
        /// Anomaly threshold.
        #[arg(long, default_value_t = 5)]
        threshold: u32,
        /// Also send every Nth line (from the first) as a JSON value and a form field; 1: every
        /// line.
        #[arg(long, default_value_t = palisade_waf::replay::SAMPLE)]
        every: usize,
        /// Print the lines of this file (its name without .txt) whose verdict is wrong: attacks
        /// let through, benign lines blocked, with the rules that matched, at the first level
        /// (`requests`: the whole requests).
        #[arg(long)]
        show: Option<String>,
        /// Exit 1 when an attack file's query-argument detection is below this percentage at
        /// any level replayed.
        #[arg(long)]
        min_detection: Option<f64>,
        /// Exit 1 when a benign file's query-argument false positives are above this
        /// percentage at any level replayed.
        #[arg(long)]
        max_false_positives: Option<f64>,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colours only on a terminal: journald, docker logs and files get plain text.
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none(),
        )
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
        Cmd::Bans { config, cmd } => bans(&config, cmd),
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
        RulesCmd::Replay {
            corpus,
            rules,
            paranoia,
            threshold,
            every,
            show,
            min_detection,
            max_false_positives,
        } => replay(
            &corpus,
            &rules,
            &paranoia,
            (threshold, every),
            show.as_deref(),
            min_detection,
            max_false_positives,
        ),
    }
}

/// `palisade rules replay`: the corpus table, and the exit code of the thresholds given.
fn replay(
    corpus: &std::path::Path,
    rules: &std::path::Path,
    levels: &[u8],
    (threshold, every): (u32, usize),
    show: Option<&str>,
    min_detection: Option<f64>,
    max_false_positives: Option<f64>,
) -> anyhow::Result<ExitCode> {
    use palisade_waf::replay::{self, Replayer};
    let set = load_rules(rules)?;
    let files = replay::corpus_files(corpus).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut policies = Vec::with_capacity(levels.len());
    for &paranoia in levels {
        let cfg = palisade_waf::PolicyConfig {
            paranoia,
            threshold,
            ..Default::default()
        };
        let p = palisade_waf::Policy::compile(&cfg, &set).map_err(|e| anyhow::anyhow!("{e}"))?;
        policies.push((paranoia, p));
    }
    let mut header = format!("{:<28} {:>6}", "file (blocked %)", "lines");
    for (pl, _) in &policies {
        header.push_str(&format!(
            " | {:>7} {:>7} {:>7}",
            format!("PL{pl} q"),
            format!("PL{pl} json"),
            format!("PL{pl} form")
        ));
    }
    println!("{header}");
    let mut failures = Vec::new();
    for f in &files {
        let lines = replay::read_lines(&f.path).map_err(|e| anyhow::anyhow!("{e}"))?;
        let arg = replay::arg_for(&f.name, f.attack);
        let kind = if f.attack { "attacks" } else { "benign" };
        let mut row = format!("{:<28} {:>6}", format!("{kind}/{}", f.name), lines.len());
        let mut wrong = Vec::new();
        for (i, (pl, policy)) in policies.iter().enumerate() {
            let mut r = Replayer::new(&set, policy.clone());
            let mut differs = Vec::new();
            let rate = replay::replay_lines(&mut r, &lines, arg, f.attack, every, &mut differs);
            row.push_str(&format!(
                " | {:>6.2}% {:>6.2}% {:>6.2}%",
                rate.pct(),
                rate.json_pct(),
                rate.form_pct()
            ));
            if i == 0 {
                wrong = differs;
            }
            failures.extend(over_threshold(
                &format!("{kind}/{}", f.name),
                f.attack,
                *pl,
                rate.pct(),
                (min_detection, max_false_positives),
            ));
        }
        println!("{row}");
        if show == Some(f.name.as_str()) {
            let label = if f.attack { "MISS" } else { "FP" };
            for (line, ids) in &wrong {
                println!(
                    "  {label} {}  (rules {ids:?})",
                    String::from_utf8_lossy(line)
                );
            }
        }
    }
    // Whole requests (requests/attack/*.http, requests/benign/*.http), judged as they are.
    let requests = replay::request_files(corpus).map_err(|e| anyhow::anyhow!("{e}"))?;
    for attack in [true, false] {
        let paths: Vec<&std::path::PathBuf> = requests
            .iter()
            .filter(|(a, _)| *a == attack)
            .map(|(_, p)| p)
            .collect();
        if paths.is_empty() {
            continue;
        }
        let dir = if attack {
            "requests/attack"
        } else {
            "requests/benign"
        };
        let mut row = format!("{:<28} {:>6}", dir, paths.len());
        let mut wrong = Vec::new();
        for (i, (pl, policy)) in policies.iter().enumerate() {
            let mut blocked = 0usize;
            for path in &paths {
                let raw = std::fs::read(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                let ex = palisade_waf::explain(&set, policy, &replay::to_wire(&raw))
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                let hit = ex.verdict == palisade_waf::Verdict::Block;
                blocked += usize::from(hit);
                if i == 0 && hit != attack {
                    let ids: Vec<u32> = ex.matches.iter().map(|m| m.rule_id).collect();
                    wrong.push(format!(
                        "{} (score {}, rules {ids:?})",
                        path.display(),
                        ex.score
                    ));
                }
            }
            let pct = 100.0 * blocked as f64 / paths.len() as f64;
            row.push_str(&format!(" | {pct:>6.2}% {:>7} {:>7}", "", ""));
            failures.extend(over_threshold(
                dir,
                attack,
                *pl,
                pct,
                (min_detection, max_false_positives),
            ));
        }
        println!("{row}");
        if show == Some("requests") {
            let label = if attack { "MISS" } else { "FP" };
            for w in &wrong {
                println!("  {label} {w}");
            }
        }
    }
    if let Some(name) = show {
        if name != "requests" && !files.iter().any(|f| f.name == name) {
            eprintln!("--show {name}: no such file in {}", corpus.display());
        }
    }
    for f in &failures {
        eprintln!("{f}");
    }
    Ok(if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The failure `palisade rules replay` reports for `label` at paranoia `pl` when `pct` % blocked
/// is under `--min-detection` (attacks) or over `--max-false-positives` (benign).
fn over_threshold(
    label: &str,
    attack: bool,
    pl: u8,
    pct: f64,
    (min_detection, max_false_positives): (Option<f64>, Option<f64>),
) -> Option<String> {
    match (attack, min_detection, max_false_positives) {
        (true, Some(min), _) if pct + 1e-9 < min => Some(format!(
            "{label} at PL{pl}: {pct:.2} % blocked, under --min-detection {min}"
        )),
        (false, _, Some(max)) if pct > max + 1e-9 => Some(format!(
            "{label} at PL{pl}: {pct:.2} % blocked, over --max-false-positives {max}"
        )),
        _ => None,
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
        KeysCmd::Rotate { id, grace } => {
            let grace = std::time::Duration::from_secs(grace.unwrap_or(0));
            let key = store
                .rotate_with_grace(&id, grace)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("id:  {id}");
            println!("key: {key}");
            if grace.is_zero() {
                eprintln!("the new key is shown once; the old key stops working (a running gateway applies it within a second).");
            } else {
                eprintln!(
                    "the new key is shown once; the old key keeps working for {} s.",
                    grace.as_secs()
                );
            }
        }
        KeysCmd::Revoke { id } => {
            let rec = store.revoke(&id).map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("revoked {}", rec.id);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn bans(config: &std::path::Path, cmd: BansCmd) -> anyhow::Result<ExitCode> {
    let cfg = palisade::config::load(config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let token = cfg.admin.token.as_deref();
    let call = |method: &str, path: &str, body: Option<serde_json::Value>| {
        let (status, text) =
            palisade::admin::call(cfg.admin.address, token, method, path, body.as_ref())?;
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
        anyhow::Ok((status, v, text))
    };
    let fail = |status: u16, v: &serde_json::Value, text: &str| {
        let msg = v
            .get("error")
            .and_then(|e| e.as_str())
            .unwrap_or(text)
            .to_string();
        anyhow::anyhow!("admin API answered {status}: {msg}")
    };
    match cmd {
        BansCmd::List => {
            let (status, v, text) = call("GET", "/bans", None)?;
            if status != 200 {
                return Err(fail(status, &v, &text));
            }
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            let bans = v
                .get("bans")
                .and_then(|b| b.as_array())
                .cloned()
                .unwrap_or_default();
            if bans.is_empty() {
                eprintln!("no bans in force");
            }
            for b in bans {
                let until = b.get("until").and_then(|u| u.as_u64()).unwrap_or(0);
                let left = (u128::from(until).saturating_sub(now) / 1_000_000_000) as u64;
                println!(
                    "{}\t{}s left\t{}",
                    b.get("ip").and_then(|i| i.as_str()).unwrap_or("?"),
                    left,
                    b.get("reason").and_then(|r| r.as_str()).unwrap_or("")
                );
            }
        }
        BansCmd::Add { ip, ttl, reason } => {
            let mut body = serde_json::json!({"ip": ip.to_string()});
            if let Some(t) = ttl {
                body["ttl_secs"] = t.into();
            }
            if let Some(r) = reason {
                body["reason"] = r.into();
            }
            let (status, v, text) = call("POST", "/bans", Some(body))?;
            if status != 201 {
                return Err(fail(status, &v, &text));
            }
            println!("banned {ip}");
        }
        BansCmd::Remove { ip } => {
            let (status, v, text) = call("DELETE", &format!("/bans/{ip}"), None)?;
            match status {
                200 => println!("unbanned {ip}"),
                404 => {
                    eprintln!("{ip} was not banned");
                    return Ok(ExitCode::from(3));
                }
                _ => return Err(fail(status, &v, &text)),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::parse_ttl;

    #[test]
    fn ttl_units() {
        assert_eq!(parse_ttl("90"), Ok(90));
        assert_eq!(parse_ttl("90s"), Ok(90));
        assert_eq!(parse_ttl("15m"), Ok(900));
        assert_eq!(parse_ttl("2h"), Ok(7200));
        assert_eq!(parse_ttl("1d"), Ok(86_400));
        assert_eq!(
            parse_ttl("0"),
            Err("invalid duration `0` (expected e.g. 3600, 90s, 15m, 2h, 1d)".to_string())
        );
        assert!(parse_ttl("1w").is_err());
        assert!(parse_ttl("").is_err());
        assert!(parse_ttl("99999999999999999999d").is_err());
    }
}
