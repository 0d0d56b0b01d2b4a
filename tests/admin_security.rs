//! Security of the gateway's own admin surface: the admin listener is loopback unless configured
//! otherwise, mutations need the exact bearer token (and are refused when none is configured),
//! and the token shows up neither in `/config` nor in the gateway's log.

mod common;

use common::{client, free_port, pool_yaml, Gateway};
use palisade::demo_upstream::spawn_on;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn any() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

#[test]
fn admin_listener_defaults_to_loopback() {
    let text = "listeners:\n  - address: 127.0.0.1:8080\nupstreams:\n  demo:\n    targets: [{address: 127.0.0.1:9}]\nroutes:\n  - name: a\n    path: /*\n    upstream: demo\n";
    let cfg = palisade::config::parse(std::path::Path::new("palisade.yaml"), text)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        cfg.admin.address.ip().is_loopback(),
        "{}",
        cfg.admin.address
    );
    assert_eq!(cfg.admin.token, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutations_need_the_exact_token_which_is_never_shown() {
    let (up, _rec, _h) = spawn_on(any()).await.expect("upstream");
    let body = format!(
        "upstreams:\n{}routes:\n  - name: all\n    path: /*\n    upstream: demo\n",
        pool_yaml("demo", &[up], "")
    );
    let gw = Gateway::start(&body);
    let c = client();
    let reload = |auth: Option<String>| {
        let mut r = c.post(gw.admin_url("/reload"));
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        async move { r.send().await.expect("send").status().as_u16() }
    };
    assert_eq!(reload(None).await, 401);
    for wrong in [
        format!("Bearer {}x", gw.token),
        format!("Bearer {}", &gw.token[..gw.token.len() - 1]),
        format!("Basic {}", gw.token),
        format!("bearer{}", gw.token),
        "Bearer ".to_string(),
    ] {
        assert_eq!(reload(Some(wrong.clone())).await, 401, "{wrong}");
    }
    assert_eq!(reload(Some(format!("Bearer {}", gw.token))).await, 200);

    let cfg = c
        .get(gw.admin_url("/config"))
        .send()
        .await
        .expect("config")
        .text()
        .await
        .expect("text");
    assert!(
        cfg.contains("<redacted>") && !cfg.contains(&gw.token),
        "{cfg}"
    );
    assert!(
        !gw.log().contains(&gw.token),
        "the token never reaches the log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_configured_token_mutations_are_refused() {
    let (up, _rec, _h) = spawn_on(any()).await.expect("upstream");
    let dir = tempfile::tempdir().expect("dir");
    let (port, admin) = (free_port(), free_port());
    let path = dir.path().join("palisade.yaml");
    std::fs::write(
        &path,
        format!(
            "listeners:\n  - address: 127.0.0.1:{port}\nadmin:\n  address: 127.0.0.1:{admin}\nupstreams:\n{}routes:\n  - name: all\n    path: /*\n    upstream: demo\n",
            pool_yaml("demo", &[up], "")
        ),
    )
    .expect("write");
    let mut child = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["run", "--config"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let url = format!("http://127.0.0.1:{admin}");
    let c = client();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut up_yet = false;
    while Instant::now() < deadline {
        if c.get(format!("{url}/healthz")).send().await.is_ok() {
            up_yet = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let statuses = if up_yet {
        let mut v = Vec::new();
        for auth in ["", "Bearer ", "Bearer anything"] {
            let mut r = c.post(format!("{url}/reload"));
            if !auth.is_empty() {
                r = r.header("authorization", auth);
            }
            v.push(r.send().await.expect("send").status().as_u16());
        }
        v
    } else {
        Vec::new()
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(up_yet, "gateway did not come up");
    assert_eq!(statuses, vec![401, 401, 401]);
}
