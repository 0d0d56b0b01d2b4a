//! Helpers shared by the integration tests: a fresh database on the local ClickHouse, a TCP
//! proxy that can be cut and restored, and synthetic events.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use palisade_analytics::names::{reason, stage, verdict};
use palisade_analytics::schema;
use palisade_analytics::Event;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// HTTP address of the local ClickHouse (override with `PALISADE_CLICKHOUSE_URL`).
pub fn clickhouse_url() -> String {
    std::env::var("PALISADE_CLICKHOUSE_URL").unwrap_or_else(|_| "http://127.0.0.1:8123".into())
}

/// A client with no default database.
pub fn client() -> clickhouse::Client {
    clickhouse::Client::default()
        .with_url(clickhouse_url())
        .with_validation(false)
}

/// True when ClickHouse answers; tests that need it fail loudly otherwise (CI starts it).
pub async fn require_clickhouse() {
    let ok = schema::query_tsv(&client(), "SELECT 1").await;
    assert!(
        ok.is_ok(),
        "ClickHouse is not answering on {}: run scripts/start-clickhouse.sh ({ok:?})",
        clickhouse_url()
    );
}

static SEQ: AtomicU64 = AtomicU64::new(0);

/// A database name nobody else uses; dropped by [`FreshDb`]'s `Drop`.
pub struct FreshDb {
    pub name: String,
}

impl FreshDb {
    pub fn new(tag: &str) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        Self {
            name: format!("palisade_test_{tag}_{}_{nanos}_{n}", std::process::id()),
        }
    }
}

impl Drop for FreshDb {
    fn drop(&mut self) {
        if std::env::var_os("PALISADE_KEEP_TEST_DB").is_some() {
            return;
        }
        let url = format!(
            "{}/?query=DROP%20DATABASE%20IF%20EXISTS%20{}",
            clickhouse_url(),
            self.name
        );
        // Best effort, synchronous (Drop cannot await): a plain HTTP POST over std.
        let _ = std::thread::spawn(move || http_post(&url)).join();
    }
}

fn http_post(url: &str) -> std::io::Result<()> {
    use std::io::{Read, Write};
    let rest = url.trim_start_matches("http://");
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut s = std::net::TcpStream::connect(host)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "POST /{path} HTTP/1.0\r\nHost: {host}\r\nContent-Length: 0\r\n\r\n"
    )?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    Ok(())
}

/// Runs a query and returns TSV.
pub async fn q(sql: &str) -> String {
    match schema::query_tsv(&client(), sql).await {
        Ok(s) => s,
        Err(e) => panic!("query failed: {e}\n{sql}"),
    }
}

/// A TCP proxy to ClickHouse that the test can cut (existing connections are closed and new
/// ones refused) and restore, to simulate ClickHouse going down without disturbing others.
pub struct Proxy {
    pub port: u16,
    up: Arc<AtomicBool>,
    stalled: Arc<AtomicBool>,
    generation: Arc<AtomicU64>,
}

impl Proxy {
    pub async fn start(target: &str) -> Self {
        let listener = match TcpListener::bind("127.0.0.1:0").await {
            Ok(l) => l,
            Err(e) => panic!("bind: {e}"),
        };
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        let up = Arc::new(AtomicBool::new(true));
        let stalled = Arc::new(AtomicBool::new(false));
        let generation = Arc::new(AtomicU64::new(0));
        let target = target.trim_start_matches("http://").to_string();
        let (u, g, st) = (
            Arc::clone(&up),
            Arc::clone(&generation),
            Arc::clone(&stalled),
        );
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                if !u.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let (u2, g2, st2, target) = (
                    Arc::clone(&u),
                    Arc::clone(&g),
                    Arc::clone(&st),
                    target.clone(),
                );
                tokio::spawn(async move {
                    let gen_at_start = g2.load(Ordering::SeqCst);
                    let Ok(outbound) = TcpStream::connect(&target).await else {
                        return;
                    };
                    let (mut ri, mut wi) = inbound.into_split();
                    let (mut ro, mut wo) = outbound.into_split();
                    let up = async {
                        let _ = tokio::io::copy(&mut ri, &mut wo).await;
                        let _ = wo.shutdown().await;
                    };
                    // Server → client; while stalled, answers are held back (the server has
                    // the request and commits it; the client waits and times out).
                    let down = async {
                        let mut buf = vec![0u8; 16 * 1024];
                        loop {
                            let n = match ro.read(&mut buf).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            while st2.load(Ordering::SeqCst) {
                                tokio::time::sleep(Duration::from_millis(5)).await;
                            }
                            if wi.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    };
                    let watch = async {
                        loop {
                            if !u2.load(Ordering::SeqCst)
                                || g2.load(Ordering::SeqCst) != gen_at_start
                            {
                                return;
                            }
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                    };
                    tokio::select! {
                        _ = async { tokio::join!(up, down) } => {}
                        _ = watch => {}
                    }
                });
            }
        });
        Self {
            port,
            up,
            stalled,
            generation,
        }
    }

    /// ClickHouse answers late: requests reach the server (which commits INSERTs) but its
    /// answers are held back until [`Proxy::release`], so clients time out on work that was
    /// done: the at-least-once edge of any writer that retries.
    pub fn stall(&self) {
        self.stalled.store(true, Ordering::SeqCst);
    }

    /// Ends a [`Proxy::stall`].
    pub fn release(&self) {
        self.stalled.store(false, Ordering::SeqCst);
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

/// A varied synthetic event: allowed, WAF-blocked, throttled and keyed requests.
pub fn event(i: u64, now_ms: u64) -> Event {
    let routes = ["api", "login", "static"];
    let mut ev = Event {
        ts_ms: now_ms - (i % 600) * 1000,
        request_id: format!("req-{i:08}"),
        route: routes[(i % 3) as usize].into(),
        route_template: format!("/{}/{{id}}", routes[(i % 3) as usize]).into(),
        method: if i.is_multiple_of(5) { "POST" } else { "GET" }.into(),
        host: "example.test".into(),
        path: format!("/{}/{}", routes[(i % 3) as usize], i % 17),
        http_version: "HTTP/1.1".into(),
        status: 200,
        bytes_in: 300 + i % 50,
        bytes_out: 1000 + i % 700,
        latency_us: 200 + (i * 37) % 5000,
        upstream_latency_us: 150 + (i * 31) % 4000,
        client_ip: format!("203.0.113.{}", i % 50),
        country: "NL".into(),
        user_agent: "curl/8.0".into(),
        verdict: verdict::ALLOW.into(),
        waf_mode: "block".into(),
        upstream_addr: "127.0.0.1:18080".into(),
        upstream_attempts: 1,
        ratelimit: "allow".into(),
        ..Event::default()
    };
    match i % 7 {
        1 => {
            ev.status = 403;
            ev.verdict = verdict::BLOCK.into();
            ev.decided_by = stage::WAF.into();
            ev.reason = reason::WAF_BLOCKED.into();
            ev.anomaly_score = 5 + (i % 4) as u32 * 5;
            ev.rule_ids = vec![942_100, 942_190 + (i % 3) as u32];
            ev.attack_classes = vec!["sqli".into()];
            ev.upstream_latency_us = 0;
            ev.upstream_addr = Default::default();
        }
        2 => {
            ev.status = 429;
            ev.verdict = verdict::BLOCK.into();
            ev.decided_by = stage::THROTTLE.into();
            ev.reason = reason::RATE_LIMITED_IP.into();
            ev.ratelimit = "limited".into();
            ev.ratelimit_key = format!("ip:{}", ev.client_ip);
            ev.upstream_latency_us = 0;
        }
        3 | 4 => {
            ev.api_key_id = format!("key-{}", i % 3);
            ev.usage_plan = "gold".into();
            ev.quota = "allow".into();
            ev.quota_limit = 10_000;
            ev.quota_remaining = 10_000 - (i % 1000);
        }
        5 => {
            ev.status = 200;
            ev.verdict = verdict::DETECT.into();
            ev.waf_mode = "detect".into();
            ev.anomaly_score = 3;
            ev.rule_ids = vec![941_100];
            ev.attack_classes = vec!["xss".into()];
        }
        6 if i.is_multiple_of(2) => {
            ev.status = 429;
            ev.verdict = verdict::BLOCK.into();
            ev.decided_by = stage::API_KEY.into();
            ev.reason = reason::QUOTA_EXCEEDED.into();
            ev.api_key_id = format!("key-{}", i % 3);
            ev.usage_plan = "gold".into();
            ev.quota = "exceeded".into();
            ev.quota_limit = 10_000;
            ev.quota_remaining = 0;
            ev.upstream_latency_us = 0;
            ev.upstream_addr = Default::default();
        }
        6 => {
            ev.status = 502;
            ev.verdict = verdict::GATEWAY.into();
            ev.decided_by = stage::UPSTREAM.into();
            ev.reason = reason::UPSTREAM_UNAVAILABLE.into();
        }
        _ => {}
    }
    ev
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Polls `cond` every 20 ms until it holds or `limit` passes (waiting for a condition, not for
/// a time window). Returns whether it held.
pub async fn wait_until<F, Fut>(limit: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if cond().await {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `dashboards/` at the repository root.
pub fn dashboards_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dashboards")
}

/// `n` synthetic events covering every verdict, stage, attack class and key case.
pub fn synthetic(n: u64) -> Vec<Event> {
    let now = now_ms();
    (0..n).map(|i| event(i, now)).collect()
}
