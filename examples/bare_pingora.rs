//! The smallest Pingora 0.9 reverse proxy: one `ProxyHttp` whose `upstream_peer` returns one
//! fixed plaintext `HttpPeer`. It is the ceiling Palisade builds on: `scripts/load.sh` drives it
//! with the same load as the gateway and reports the gateway's requests/s as a ratio of this.
//!
//! ```text
//! cargo run --release --example bare_pingora -- \
//!     [--listen 127.0.0.1:18282] [--upstream 127.0.0.1:18080] [--threads 1] [--h2c] [--timeouts]
//! ```
//!
//! `--timeouts` gives the upstream peer Palisade's default pool timeouts (connect 2 s, total
//! connect 5 s, read and write 30 s, idle 60 s), which Pingora enforces with a timer on each
//! upstream read and write: the same proxy with the timeouts a production gateway has to set
//! (`scripts/profile.sh --systems bare-timeouts`). Without it the peer has none.
//!
//! Each flag can also come from the environment: `BARE_LISTEN`, `BARE_UPSTREAM`,
//! `BARE_THREADS`, `BARE_H2C=1` (a flag on the command line wins). SIGTERM or SIGINT stops it.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::HttpServerOptions;
use pingora::prelude::{HttpPeer, Opt, Server};
use pingora::proxy::{ProxyHttp, ProxyServiceBuilder, Session};
use pingora::server::configuration::ServerConf;

/// The allocator the `palisade` binary uses (src/main.rs), so that the comparison measures the
/// gateway's work, not a difference of allocators.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Proxies every request to one upstream, changing nothing.
struct Bare {
    upstream: SocketAddr,
    timeouts: bool,
}

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();

    fn new_ctx(&self) -> Self::CTX {}

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut Self::CTX,
    ) -> pingora::Result<Box<HttpPeer>> {
        let mut peer = HttpPeer::new(self.upstream, false, String::new());
        if self.timeouts {
            // Palisade's default pool timeouts (the numbers only: none of the gateway's code
            // runs here), which Pingora enforces with a timer per upstream read and write.
            let t = palisade::config::raw::RawTimeouts::default();
            let o = &mut peer.options;
            o.connection_timeout = Some(Duration::from_millis(t.connect_ms));
            o.total_connection_timeout = Some(Duration::from_millis(t.total_connect_ms));
            o.read_timeout = Some(Duration::from_millis(t.read_ms));
            o.write_timeout = Some(Duration::from_millis(t.write_ms));
            o.idle_timeout = Some(Duration::from_millis(t.idle_ms));
        }
        Ok(Box::new(peer))
    }
}

/// The command line, after defaults and environment.
#[derive(Debug)]
struct Args {
    listen: SocketAddr,
    upstream: SocketAddr,
    threads: usize,
    h2c: bool,
    timeouts: bool,
}

const USAGE: &str =
    "usage: bare_pingora [--listen ADDR] [--upstream ADDR] [--threads N] [--h2c] [--timeouts]";

fn parse_args() -> Result<Args, String> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let mut listen = env("BARE_LISTEN").unwrap_or_else(|| "127.0.0.1:18282".into());
    let mut upstream = env("BARE_UPSTREAM").unwrap_or_else(|| "127.0.0.1:18080".into());
    let mut threads = env("BARE_THREADS").unwrap_or_else(|| "1".into());
    let mut h2c = env("BARE_H2C").is_some_and(|v| v != "0");
    let mut timeouts = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--listen" => listen = value("--listen")?,
            "--upstream" => upstream = value("--upstream")?,
            "--threads" => threads = value("--threads")?,
            "--h2c" => h2c = true,
            "--timeouts" => timeouts = true,
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    let addr = |name: &str, v: &str| {
        v.parse::<SocketAddr>()
            .map_err(|e| format!("{name} `{v}`: {e} (expected IP:PORT)"))
    };
    let threads = threads
        .parse::<usize>()
        .ok()
        .filter(|t| *t >= 1)
        .ok_or_else(|| format!("--threads `{threads}`: expected a whole number >= 1"))?;
    Ok(Args {
        listen: addr("--listen", &listen)?,
        upstream: addr("--upstream", &upstream)?,
        threads,
        h2c,
        timeouts,
    })
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("bare_pingora: {e}");
            return ExitCode::from(2);
        }
    };

    let conf = ServerConf {
        threads: args.threads,
        // Stop promptly on SIGTERM: this is a benchmark baseline, not a service.
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        pid_file: format!("/tmp/bare_pingora.{}.pid", std::process::id()),
        upgrade_sock: format!("/tmp/bare_pingora.{}.sock", std::process::id()),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None::<Opt>, conf);
    server.bootstrap();

    let mut options = HttpServerOptions::default();
    options.h2c = args.h2c;
    let mut proxy = ProxyServiceBuilder::new(
        &server.configuration,
        Bare {
            upstream: args.upstream,
            timeouts: args.timeouts,
        },
    )
    .name("bare pingora")
    .server_options(options)
    .build();
    proxy.add_tcp(&args.listen.to_string());
    server.add_service(proxy);

    println!(
        "bare_pingora listening on http://{} -> http://{} ({} thread(s), h2c {})",
        args.listen,
        args.upstream,
        args.threads,
        if args.h2c { "on" } else { "off" }
    );
    server.run_forever()
}
