//! Key management through the running gateway: the admin API (token-protected) creates keys
//! (the key shown once), lists them without secrets, rotates (same id, plan and quota usage; the
//! old key stops working) and revokes them, all in force at once without a restart; and
//! `palisade keys rotate` changes the key file, which the running gateway picks up by itself.

mod common;

use common::{client, eventually, pool_yaml, Gateway, TOKEN};
use palisade::demo_upstream::spawn_on;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

fn config(up: SocketAddr) -> String {
    format!(
        "upstreams:\n{}api_keys:\n  key_file: keys.json\n  quota_file: quota.json\n  plans:\n    - name: gold\n      quota: {{limit: 1000, period: day}}\nroutes:\n  - name: private\n    path: /echo/*\n    upstream: demo\n    api_key: {{}}\n  - name: public\n    path: /*\n    upstream: demo\n",
        pool_yaml("demo", &[up], "")
    )
}

async fn admin(
    gw: &Gateway,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut r = client()
        .request(method, gw.admin_url(path))
        .bearer_auth(TOKEN);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let resp = r.send().await.expect("admin request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Status and reason code of a request to the private route with `key`.
async fn with_key(gw: &Gateway, key: &str) -> (u16, String) {
    let r = client()
        .get(gw.url("/echo/x"))
        .header("x-api-key", key)
        .send()
        .await
        .expect("send");
    let status = r.status().as_u16();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    (status, v["reason"].as_str().unwrap_or("").to_string())
}

fn str_of(v: &Value, k: &str) -> String {
    v[k].as_str()
        .unwrap_or_else(|| panic!("no string `{k}` in {v}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_creates_lists_rotates_and_revokes_keys_without_restart() {
    let (up, _rec, _h) = spawn_on(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("upstream");
    let gw = Gateway::start(&config(up));
    let c = client();

    // Every key endpoint needs the token.
    for (m, p) in [
        (reqwest::Method::GET, "/keys"),
        (reqwest::Method::POST, "/keys"),
        (reqwest::Method::POST, "/keys/key_AAAAAAAAAAAA/rotate"),
    ] {
        let r = c
            .request(m.clone(), gw.admin_url(p))
            .bearer_auth("wrong-token")
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 401, "{m} {p} without the token");
    }

    // Create: the key is in the answer once.
    let (st, v) = admin(
        &gw,
        reqwest::Method::POST,
        "/keys",
        Some(json!({"name": "ci", "owner": "tests", "plan": "gold"})),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    let key = str_of(&v, "key");
    let id = str_of(&v["record"], "id");
    assert!(key.starts_with("pk_") && id.starts_with("key_"), "{v}");
    let (st, v) = admin(
        &gw,
        reqwest::Method::POST,
        "/keys",
        Some(json!({"name": "x", "plan": "platinum"})),
    )
    .await;
    assert_eq!(st, 400, "unknown plan: {v}");

    // In force at once.
    assert_eq!(with_key(&gw, &key).await, (200, String::new()));
    assert_eq!(with_key(&gw, &key).await.0, 200);

    // List: ids, no secrets, no hashes.
    let (st, v) = admin(&gw, reqwest::Method::GET, "/keys", None).await;
    assert_eq!(st, 200);
    let text = v.to_string();
    assert!(text.contains(&id), "{text}");
    assert!(
        !text.contains(&key) && !text.contains("sha256"),
        "no secret listed: {text}"
    );
    let (st, v) = admin(&gw, reqwest::Method::GET, &format!("/keys/{id}"), None).await;
    assert_eq!(st, 200);
    assert_eq!(v["usage"][0]["used"], 2, "{v}");

    // Rotate: a new key for the same id; the old one stops working at once.
    let (st, v) = admin(
        &gw,
        reqwest::Method::POST,
        &format!("/keys/{id}/rotate"),
        None,
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let new_key = str_of(&v, "key");
    assert_ne!(new_key, key);
    assert_eq!(str_of(&v, "id"), id);
    assert_eq!(
        with_key(&gw, &key).await,
        (401, "api_key_invalid".to_string())
    );
    assert_eq!(with_key(&gw, &new_key).await.0, 200);
    let (_, v) = admin(&gw, reqwest::Method::GET, &format!("/keys/{id}"), None).await;
    assert_eq!(v["record"]["plan"], "gold");
    assert_eq!(v["usage"][0]["used"], 3, "quota usage carried over: {v}");
    let (st, _) = admin(
        &gw,
        reqwest::Method::POST,
        "/keys/key_AAAAAAAAAAAA/rotate",
        None,
    )
    .await;
    assert_eq!(st, 404);

    // Rotation with a grace period: both keys work meanwhile.
    let (st, v) = admin(
        &gw,
        reqwest::Method::POST,
        &format!("/keys/{id}/rotate"),
        Some(json!({"grace_secs": 3600})),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let graced = str_of(&v, "key");
    assert_eq!(
        with_key(&gw, &new_key).await.0,
        200,
        "old key within its grace"
    );
    assert_eq!(with_key(&gw, &graced).await.0, 200);
    let (st, v) = admin(
        &gw,
        reqwest::Method::POST,
        &format!("/keys/{id}/rotate"),
        Some(json!({"grace_secs": 1, "oops": 1})),
    )
    .await;
    assert_eq!(st, 400, "unknown fields are refused: {v}");
    // A rotation without grace ends the earlier grace: only its key works.
    let (st, v) = admin(
        &gw,
        reqwest::Method::POST,
        &format!("/keys/{id}/rotate"),
        None,
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let latest = str_of(&v, "key");
    assert_eq!(with_key(&gw, &graced).await.0, 401);
    assert_eq!(with_key(&gw, &latest).await.0, 200);
    let new_key = latest;

    // Neither key is in the key file.
    let file = std::fs::read_to_string(gw.dir.path().join("keys.json")).expect("key file");
    assert!(file.contains(&id) && !file.contains(&key) && !file.contains(&new_key));

    // Revoke: 403 from the next request on.
    let (st, v) = admin(
        &gw,
        reqwest::Method::POST,
        &format!("/keys/{id}/revoke"),
        None,
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["record"]["revoked"], true);
    assert_eq!(
        with_key(&gw, &new_key).await,
        (403, "api_key_revoked".to_string())
    );
}

fn palisade(args: &[&str], config: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(args.get(..1).unwrap_or_default())
        .arg("--config")
        .arg(config)
        .args(args.get(1..).unwrap_or_default())
        .output()
        .expect("run palisade")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_cli_applies_to_the_running_gateway() {
    let (up, _rec, _h) = spawn_on(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("upstream");
    let gw = Gateway::start(&config(up));

    // A key made with the CLI while the gateway runs is picked up without a reload.
    let out = palisade(
        &[
            "keys", "create", "--name", "cli", "--owner", "t", "--plan", "gold",
        ],
        &gw.config_path,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let key = text
        .lines()
        .find_map(|l| l.strip_prefix("key: "))
        .expect("key printed")
        .to_string();
    let id = text
        .lines()
        .find_map(|l| l.strip_prefix("id:  "))
        .expect("id printed")
        .to_string();
    assert!(
        eventually(Duration::from_secs(10), async || with_key(&gw, &key)
            .await
            .0
            == 200)
        .await,
        "a key created by the CLI works in the running gateway"
    );

    let out = palisade(&["keys", "rotate", &id], &gw.config_path);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let new_key = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("key: "))
        .expect("new key printed")
        .to_string();
    assert_ne!(new_key, key);
    assert!(
        eventually(Duration::from_secs(10), async || {
            with_key(&gw, &new_key).await.0 == 200 && with_key(&gw, &key).await.0 == 401
        })
        .await,
        "the rotated key works and the old one is refused, without a restart"
    );

    let out = palisade(&["keys", "rotate", "key_AAAAAAAAAAAA"], &gw.config_path);
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "error: no API key with id `key_AAAAAAAAAAAA` (see `palisade keys list`)"
    );
}
