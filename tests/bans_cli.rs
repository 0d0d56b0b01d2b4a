//! `palisade bans list|add|remove` against the running gateway's admin API: a ban added from the
//! command line is enforced at once, survives a restart of the gateway (even a `kill -9` right
//! after it was made), and is lifted by `remove`. Real gateway processes, real demo upstream.

mod common;

use common::{pool_yaml, Gateway};
use palisade::demo_upstream::spawn_on;
use std::net::{IpAddr, SocketAddr};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn bans(config: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["bans", "--config"])
        .arg(config)
        .args(args)
        .output()
        .expect("palisade bans")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

async fn status_from(gw: &Gateway, ip: [u8; 4]) -> (u16, String) {
    let c = reqwest::Client::builder()
        .local_address(IpAddr::from(ip))
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let r = c.get(gw.url("/echo")).send().await.expect("send");
    let st = r.status().as_u16();
    let v: serde_json::Value = r.json().await.unwrap_or(serde_json::Value::Null);
    (st, v["reason"].as_str().unwrap_or("").to_string())
}

/// Kill the gateway without warning and start a new process on the same config and ports.
fn restart(gw: &mut Gateway) {
    gw.child.kill().expect("kill");
    gw.child.wait().expect("wait");
    let log = std::fs::OpenOptions::new()
        .append(true)
        .open(gw.dir.path().join("gateway.log"))
        .expect("log");
    gw.child = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["run", "--config"])
        .arg(&gw.config_path)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("respawn");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(
            Instant::now() < deadline,
            "gateway did not come back:\n{}",
            gw.log()
        );
        if let Ok(Some(st)) = gw.child.try_wait() {
            panic!("gateway exited with {st}:\n{}", gw.log());
        }
        let up = |p: u16| std::net::TcpStream::connect(("127.0.0.1", p)).is_ok();
        if up(gw.port) && up(gw.admin_port) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bans_cli_adds_lists_and_removes_and_bans_survive_a_restart() {
    let (up, _rec, _h) = spawn_on(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("upstream");
    let body = format!(
        "upstreams:\n{}guard:\n  autoban: {{threshold: 100, window_secs: 60, ban_secs: 600, state_file: bans.json}}\nroutes:\n  - name: all\n    path: /*\n    upstream: demo\n",
        pool_yaml("demo", &[up], "")
    );
    let mut gw = Gateway::start(&body);
    let cfg = gw.config_path.clone();

    let o = bans(&cfg, &["list"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "");
    assert_eq!(stderr(&o).trim(), "no bans in force");

    let o = bans(
        &cfg,
        &[
            "add",
            "127.0.0.9",
            "--ttl",
            "1h",
            "--reason",
            "abuse report",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "banned 127.0.0.9");
    assert_eq!(
        status_from(&gw, [127, 0, 0, 9]).await,
        (403, "ip_banned".to_string())
    );
    assert_eq!(status_from(&gw, [127, 0, 0, 1]).await.0, 200, "others pass");

    let o = bans(&cfg, &["list"]);
    let line = stdout(&o);
    let mut cols = line.trim().split('\t');
    assert_eq!(cols.next(), Some("127.0.0.9"), "{line}");
    let left: u64 = cols
        .next()
        .and_then(|c| c.strip_suffix("s left"))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("time left in {line}"));
    assert!((3500..=3600).contains(&left), "{line}");
    assert_eq!(cols.next(), Some("abuse report"));

    // kill -9 right after: the admin change was written at once.
    restart(&mut gw);
    assert_eq!(
        status_from(&gw, [127, 0, 0, 9]).await,
        (403, "ip_banned".to_string()),
        "the ban survived the restart"
    );
    assert!(stdout(&bans(&cfg, &["list"])).starts_with("127.0.0.9\t"));

    let o = bans(&cfg, &["remove", "127.0.0.9"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "unbanned 127.0.0.9");
    assert_eq!(status_from(&gw, [127, 0, 0, 9]).await.0, 200);
    let o = bans(&cfg, &["remove", "127.0.0.9"]);
    assert_eq!(o.status.code(), Some(3), "not banned: {}", stderr(&o));

    // The removal is persisted too.
    restart(&mut gw);
    assert_eq!(
        status_from(&gw, [127, 0, 0, 9]).await.0,
        200,
        "unban survived"
    );

    // A wrong token is refused with the admin API's message.
    let wrong = gw.dir.path().join("wrong.yaml");
    let text = std::fs::read_to_string(&cfg)
        .expect("config")
        .replace(common::TOKEN, "not-the-token");
    std::fs::write(&wrong, text).expect("write");
    let o = bans(&wrong, &["add", "127.0.0.10"]);
    assert!(!o.status.success());
    assert_eq!(
        stderr(&o).trim(),
        "error: admin API answered 401: unauthorized"
    );
    let o = bans(&cfg, &["add", "127.0.0.10", "--ttl", "1w"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("invalid duration `1w`"),
        "{}",
        stderr(&o)
    );
}
