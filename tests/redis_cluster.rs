//! Several gateways as one (issue 7): two real gateway processes share one real `redis-server`
//! (started here on a free port) in front of the demo upstream.
//!
//! - a key with a quota of N gets exactly N successes across both under concurrent load;
//! - a ban made through one gateway's admin API is enforced by the other, and lifted through it;
//! - a per-route rate limit is shared (what one gateway admitted reaches the other's limiter);
//! - Redis stopped: with `on_failure: open` both keep serving (quota uncounted), with `closed`
//!   requests get 503 `state_unavailable`; both log it and count it in `/metrics`;
//! - Redis restarted: both recover (state up again, bans propagate, quotas counted).
//! - a key's plan rate (1/min, burst 10) is shared: across both gateways the admitted total
//!   stays within the documented bound and near one gateway's budget, not two;
//! - `GET /keys/{id}` on either admin API shows the quota counter held in Redis;
//! - a reload that changes `state:` is refused (file and key named), the old config serves.

mod common;

use common::{client, eventually, free_port, pool_yaml, Gateway};
use palisade::demo_upstream::spawn_on;
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A `redis-server` child process on its own port, killed on drop.
struct Redis {
    child: Option<Child>,
    port: u16,
}

impl Redis {
    fn start() -> Redis {
        let mut r = Redis {
            child: None,
            port: free_port(),
        };
        r.restart();
        r
    }

    /// Starts (again) on the same port, with empty state.
    fn restart(&mut self) {
        self.stop();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (Debian package redis-server)");
        self.child = Some(child);
        // Wait for the process to accept connections (start-up, not a time window).
        for _ in 0..500 {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("redis-server did not start on {}", self.port);
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// `redis-cli GET key` (reads do not touch any gateway's limiter).
    fn get(&self, key: &str) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "GET", key])
            .stderr(Stdio::null())
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

fn config(redis: &Redis, upstream: SocketAddr, on_failure: &str, prefix: &str) -> String {
    let rest = r#"state:
  backend: redis
  url: URL
  on_failure: POLICY
  prefix: PREFIX
  timeout_ms: 200
  sync_interval_ms: 100
guard:
  ip:
    trusted_proxies: [127.0.0.1/32]
  autoban:
    threshold: 50
    window_secs: 60
    ban_secs: 600
api_keys:
  key_file: keys.json
  plans:
    - name: small
      quota: {limit: 20, period: day}
    - name: rated
      rate: 0.0166666667
      burst: 10
      quota: {limit: 100000, period: day}
routes:
  - name: rated
    path: /echo/rated/*
    upstream: demo
    api_key: {}
  - name: private
    path: /private/*
    upstream: demo
    api_key: {}
  - name: limited
    path: /limited/*
    upstream: demo
    rate_limit: {per_minute: 10, burst: 10}
  - name: public
    path: /*
    upstream: demo
"#
    .replace("URL", &redis.url())
    .replace("POLICY", on_failure)
    .replace("PREFIX", prefix);
    format!("upstreams:\n{}{rest}", pool_yaml("demo", &[upstream], ""))
}

/// Creates a key on plan `small` through the CLI; returns (key file dir, key).
fn create_key(body: &str) -> (tempfile::TempDir, String) {
    let (dir, _, key) = create_key_on(body, "small");
    (dir, key)
}

/// Creates a key on `plan` through the CLI; returns (key file dir, key id, key).
fn create_key_on(body: &str, plan: &str) -> (tempfile::TempDir, String, String) {
    let dir = tempfile::tempdir().expect("dir");
    let pre = dir.path().join("palisade.yaml");
    std::fs::write(&pre, Gateway::config_text(1, 2, body)).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["keys", "--config"])
        .arg(&pre)
        .args(["create", "--name", "ci", "--owner", "tests", "--plan", plan])
        .output()
        .expect("palisade keys");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
            .expect("id and key are printed")
    };
    let (id, key) = (field("id:"), field("key:"));
    (dir, id, key)
}

fn start_pair(body: &str, keys: &std::path::Path) -> (Gateway, Gateway) {
    let copy = |d: &std::path::Path| {
        std::fs::copy(keys.join("keys.json"), d.join("keys.json")).expect("copy keys");
    };
    (
        Gateway::start_with(body, copy),
        Gateway::start_with(body, copy),
    )
}

/// The value of an unlabelled metric line `name value`.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let (n, v) = l.split_once(' ')?;
        (n == name).then(|| v.trim().parse().ok())?
    })
}

async fn status(c: &reqwest::Client, url: String, key: Option<&str>, xff: Option<&str>) -> u16 {
    let mut req = c.get(url);
    if let Some(k) = key {
        req = req.header("x-api-key", k);
    }
    if let Some(ip) = xff {
        req = req.header("x-forwarded-for", ip);
    }
    req.send().await.expect("send").status().as_u16()
}

async fn reason(c: &reqwest::Client, url: String, key: Option<&str>) -> (u16, String) {
    let mut req = c.get(url);
    if let Some(k) = key {
        req = req.header("x-api-key", k);
    }
    let r = req.send().await.expect("send");
    let s = r.status().as_u16();
    let v: serde_json::Value = r.json().await.unwrap_or_default();
    (s, v["reason"].as_str().unwrap_or("").to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_gateways_share_quota_bans_and_limits_and_fail_open() {
    let mut redis = Redis::start();
    let (up, rec, _h) = spawn_on(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("upstream");
    let body = config(&redis, up, "open", "cluster-open");
    let (keys_dir, key) = create_key(&body);
    let (a, b) = start_pair(&body, keys_dir.path());
    let c = client();

    // Quota of 20 across both gateways under concurrent load: exactly 20 reach the upstream.
    let mut tasks = Vec::new();
    for i in 0..60 {
        let gw = if i % 2 == 0 { &a } else { &b };
        let (c, url, key) = (c.clone(), gw.url("/private/x"), key.clone());
        tasks.push(tokio::spawn(
            async move { reason(&c, url, Some(&key)).await },
        ));
    }
    let (mut ok, mut over) = (0, 0);
    for t in tasks {
        match t.await.expect("join") {
            (404, _) => ok += 1,
            (429, r) => {
                assert_eq!(r, "quota_exceeded");
                over += 1;
            }
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert_eq!((ok, over), (20, 40), "exactly the quota, across both");
    assert_eq!(rec.total(), 20);
    for gw in [&a, &b] {
        let (s, r) = reason(&c, gw.url("/private/x"), Some(&key)).await;
        assert_eq!((s, r.as_str()), (429, "quota_exceeded"));
    }

    // A ban through A's admin API is enforced by B.
    let r = c
        .post(a.admin_url("/bans"))
        .bearer_auth(&a.token)
        .json(&serde_json::json!({"ip": "203.0.113.9", "ttl_secs": 600, "reason": "abuse"}))
        .send()
        .await
        .expect("ban");
    assert_eq!(r.status(), 201);
    assert_eq!(
        status(&c, a.url("/echo/x"), None, Some("203.0.113.9")).await,
        403
    );
    assert!(
        eventually(Duration::from_secs(10), async || {
            status(&c, b.url("/echo/x"), None, Some("203.0.113.9")).await == 403
        })
        .await,
        "B enforces A's ban"
    );
    assert_eq!(
        status(&c, b.url("/echo/x"), None, Some("203.0.113.10")).await,
        200
    );
    let listed: serde_json::Value = c
        .get(b.admin_url("/bans"))
        .send()
        .await
        .expect("bans")
        .json()
        .await
        .expect("json");
    assert_eq!(listed["bans"][0]["ip"], "203.0.113.9");
    assert_eq!(listed["bans"][0]["reason"], "abuse");
    // Lifted through B: A serves the address again.
    let r = c
        .delete(b.admin_url("/bans/203.0.113.9"))
        .bearer_auth(&b.token)
        .send()
        .await
        .expect("unban");
    assert_eq!(r.status(), 200);
    assert!(
        eventually(Duration::from_secs(10), async || {
            status(&c, a.url("/echo/x"), None, Some("203.0.113.9")).await == 200
        })
        .await,
        "A lifts the ban made through A and lifted through B"
    );

    // Shared route limit (10 per minute, burst 10: one request per 6 s). A uses the whole
    // burst and pushes it at its next sync: the shared TAT is then ~60 s ahead. B, which has
    // not admitted anything yet, admits one request from its own memory (the documented
    // bound), pushes and pulls at its next sync, and from then on refuses.
    for _ in 0..10 {
        assert_eq!(status(&c, a.url("/limited/x"), None, None).await, 404);
    }
    assert_eq!(status(&c, a.url("/limited/x"), None, None).await, 429);
    let key_rl = "cluster-open:rl:route:limited";
    let tat = || redis.get(key_rl).parse::<u64>().unwrap_or(0);
    let now_us = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0)
    };
    assert!(
        eventually(Duration::from_secs(10), async || tat()
            > now_us() + 50_000_000)
        .await,
        "A pushed its ten admissions: {}",
        redis.get(key_rl)
    );
    let after_a = tat();
    assert_eq!(status(&c, b.url("/limited/x"), None, None).await, 404);
    assert!(
        eventually(Duration::from_secs(10), async || tat()
            >= after_a + 6_000_000)
        .await,
        "B pushed its admission on top of A's"
    );
    // B applies the shared TAT its sync pulled just after Redis holds it, so a request in
    // between may still be admitted from B's memory (within the documented bound); B then
    // refuses. Were A's usage not included, B would admit the nine left of its own burst.
    let mut extra = 0;
    assert!(
        eventually(Duration::from_secs(10), async || {
            if status(&c, b.url("/limited/x"), None, None).await == 429 {
                return true;
            }
            extra += 1;
            false
        })
        .await,
        "B refuses with A's usage included"
    );
    assert!(
        extra <= 1,
        "B admitted {extra} more after its push: A's usage was not included"
    );
    assert_eq!(status(&c, a.url("/limited/x"), None, None).await, 429);

    // Redis stops: on_failure open, both keep serving (the quota is not counted), count it
    // and log it.
    redis.stop();
    assert!(
        eventually(Duration::from_secs(10), async || {
            metric(&a.metrics().await, "palisade_state_up") == Some(0.0)
        })
        .await
    );
    let (s, _) = reason(&c, a.url("/private/x"), Some(&key)).await;
    assert_eq!(s, 404, "served uncounted (fail open)");
    assert_eq!(status(&c, b.url("/echo/x"), None, None).await, 200);
    let m = a.metrics().await;
    assert!(
        metric(&m, "palisade_state_errors_total").unwrap_or(0.0) >= 1.0,
        "{m}"
    );
    assert!(
        metric(&m, "palisade_state_fail_open_total").unwrap_or(0.0) >= 1.0,
        "{m}"
    );
    assert!(a.log().contains("redis unreachable"), "{}", a.log());

    // Redis returns (empty: a fresh day's counters): both recover; bans propagate again.
    redis.restart();
    for gw in [&a, &b] {
        assert!(
            eventually(Duration::from_secs(10), async || {
                metric(&gw.metrics().await, "palisade_state_up") == Some(1.0)
            })
            .await,
            "recovered"
        );
    }
    assert!(b.log().contains("redis reachable again"), "{}", b.log());
    let (s, _) = reason(&c, b.url("/private/x"), Some(&key)).await;
    assert_eq!(s, 404);
    let r = c
        .post(b.admin_url("/bans"))
        .bearer_auth(&b.token)
        .json(&serde_json::json!({"ip": "198.51.100.77", "ttl_secs": 600}))
        .send()
        .await
        .expect("ban");
    assert_eq!(r.status(), 201);
    assert!(
        eventually(Duration::from_secs(10), async || {
            status(&c, a.url("/echo/x"), None, Some("198.51.100.77")).await == 403
        })
        .await,
        "A enforces B's ban after the outage"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fail_closed_refuses_while_redis_is_down_and_recovers() {
    let mut redis = Redis::start();
    let (up, _rec, _h) = spawn_on(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("upstream");
    let body = config(&redis, up, "closed", "cluster-closed");
    let (keys_dir, key) = create_key(&body);
    let (a, b) = start_pair(&body, keys_dir.path());
    let c = client();
    for gw in [&a, &b] {
        assert_eq!(reason(&c, gw.url("/private/x"), Some(&key)).await.0, 404);
        assert_eq!(status(&c, gw.url("/echo/x"), None, None).await, 200);
    }

    redis.stop();
    for gw in [&a, &b] {
        assert!(
            eventually(Duration::from_secs(10), async || {
                reason(&c, gw.url("/echo/x"), None).await == (503, "state_unavailable".to_string())
            })
            .await,
            "closed: refused while Redis is down"
        );
        assert_eq!(
            reason(&c, gw.url("/private/x"), Some(&key)).await,
            (503, "state_unavailable".to_string())
        );
        // The gateway itself keeps running and says why.
        let m = gw.metrics().await;
        assert_eq!(metric(&m, "palisade_state_up"), Some(0.0), "{m}");
        assert!(
            metric(&m, "palisade_state_refused_total").unwrap_or(0.0) >= 2.0,
            "{m}"
        );
        assert!(gw.log().contains("redis unreachable"), "{}", gw.log());
    }

    redis.restart();
    for gw in [&a, &b] {
        assert!(
            eventually(Duration::from_secs(10), async || {
                status(&c, gw.url("/echo/x"), None, None).await == 200
            })
            .await,
            "recovered"
        );
        assert_eq!(reason(&c, gw.url("/private/x"), Some(&key)).await.0, 404);
    }
}

/// `used` of the plan-wide quota in `GET /keys/{id}` of `gw`'s admin API.
async fn used(c: &reqwest::Client, gw: &Gateway, id: &str) -> u64 {
    let v: serde_json::Value = c
        .get(gw.admin_url(&format!("/keys/{id}")))
        .bearer_auth(&gw.token)
        .send()
        .await
        .expect("get key")
        .json()
        .await
        .expect("json");
    assert_eq!(v["usage_source"], "redis", "{v}");
    assert_eq!(v["usage"][0]["scope"], "*", "{v}");
    v["usage"][0]["used"].as_u64().expect("used")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn key_rate_and_usage_are_shared_and_state_changes_need_a_restart() {
    let redis = Redis::start();
    let (up, rec, _h) = spawn_on(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("upstream");
    let body = config(&redis, up, "open", "cluster-rate");
    let (keys_dir, id, key) = create_key_on(&body, "rated");
    let (a, b) = start_pair(&body, keys_dir.path());
    let c = client();
    let started = std::time::Instant::now();
    let now_us = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0)
    };
    let t0_us = now_us();

    // Usage: three keyed requests through A; B's admin API reads the counter in Redis.
    for _ in 0..3 {
        assert_eq!(reason(&c, a.url("/echo/rated/x"), Some(&key)).await.0, 200);
    }
    assert_eq!(used(&c, &b, &id).await, 3, "B shows what A counted");
    assert_eq!(used(&c, &a, &id).await, 3);

    // Shared plan rate (1 per minute, burst 10). Rounds of one request through each gateway;
    // each round waits until Redis holds every admission so far (pushed by a sync), so the
    // traffic spans many syncs, as a sustained client's would. Two independent gateways would
    // admit a burst each (20); shared, the total stays near one burst.
    let rl_key = || {
        let out = Command::new("redis-cli")
            .args(["-p", &redis.port.to_string(), "--scan", "--pattern"])
            .arg("cluster-rate:rl:key:*")
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let mut admitted = 3u64;
    for _ in 0..30 {
        for gw in [&a, &b] {
            match reason(&c, gw.url("/echo/rated/x"), Some(&key)).await {
                (200, _) => admitted += 1,
                (429, r) => assert_eq!(r, "rate_limited_key"),
                other => panic!("unexpected answer {other:?}"),
            }
        }
        // Each admission pushed moves the shared TAT one interval (60 s); it started after t0.
        let want = t0_us + admitted * 60_000_000;
        assert!(
            eventually(Duration::from_secs(10), async || {
                redis
                    .get(&rl_key())
                    .parse::<u64>()
                    .is_ok_and(|tat| tat + 5_000_000 >= want)
            })
            .await,
            "the admissions reach Redis"
        );
    }
    let elapsed_min = started.elapsed().as_secs() / 60 + 1;
    let limit = 10 + elapsed_min;
    // Documented bound: (N − 1) × (burst + rate × sync_interval) beyond the limit (N = 2).
    assert!(
        admitted <= limit + 10 + 1,
        "{admitted} admitted: beyond the documented bound of {}",
        limit + 11
    );
    assert!(
        admitted <= limit + 3,
        "{admitted} admitted of 63: far below two independent gateways' {}",
        2 * limit
    );
    assert!(admitted >= 10, "the burst is admitted: {admitted}");
    assert_eq!(rec.total(), admitted, "what the upstream saw");
    for gw in [&a, &b] {
        let (s, r) = reason(&c, gw.url("/echo/rated/x"), Some(&key)).await;
        assert_eq!((s, r.as_str()), (429, "rate_limited_key"));
    }
    // Rate-limited requests are not counted against the quota.
    assert_eq!(used(&c, &a, &id).await, admitted);

    // A reload that changes `state:` is refused whole, naming the file and the key; the old
    // configuration (and prefix) keeps serving.
    a.write_config(&body.replace("prefix: cluster-rate", "prefix: elsewhere"));
    let r = c
        .post(a.admin_url("/reload"))
        .bearer_auth(&a.token)
        .send()
        .await
        .expect("reload");
    assert_eq!(r.status(), 422);
    let v: serde_json::Value = r.json().await.expect("json");
    let errors = v["errors"].to_string();
    assert!(
        errors.contains("palisade.yaml: state.prefix: the shared state cannot change on reload"),
        "{errors}"
    );
    assert!(errors.contains("restart"), "{errors}");
    let cfg: serde_json::Value = c
        .get(a.admin_url("/config"))
        .bearer_auth(&a.token)
        .send()
        .await
        .expect("config")
        .json()
        .await
        .expect("json");
    assert_eq!(cfg["state"]["prefix"], "cluster-rate", "{cfg}");
    assert_eq!(used(&c, &a, &id).await, admitted, "still the old prefix");
    // The same file without the state change reloads.
    a.write_config(&body);
    let r = c
        .post(a.admin_url("/reload"))
        .bearer_auth(&a.token)
        .send()
        .await
        .expect("reload");
    assert_eq!(r.status(), 200);
}
