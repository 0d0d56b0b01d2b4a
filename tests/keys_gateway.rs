//! API keys and usage plans through the running gateway: keys made with `palisade keys create`,
//! 401 without or with a wrong key, the plan's daily quota exact across concurrent requests,
//! 429 with a distinct reason when it is used up, 403 for a revoked key.

mod common;

use common::{client, pool_yaml, Gateway};
use palisade::demo_upstream::spawn_on;
use std::net::SocketAddr;
use std::process::Command;

fn keys_cmd(config: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .arg("keys")
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .expect("palisade keys");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_plans_and_quotas_are_enforced_exactly() {
    let (up, rec, _h) = spawn_on(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("upstream");
    let body = format!(
        "upstreams:\n{}api_keys:\n  key_file: keys.json\n  plans:\n    - name: small\n      quota: {{limit: 10, period: day}}\nroutes:\n  - name: private\n    path: /private/*\n    upstream: demo\n    api_key: {{query: api_key}}\n  - name: public\n    path: /*\n    upstream: demo\n",
        pool_yaml("demo", &[up], "")
    );
    // The key file must exist with a key before the gateway starts: create it through the CLI
    // against the same config (written first without starting the gateway).
    let dir = tempfile::tempdir().expect("dir");
    let pre = dir.path().join("palisade.yaml");
    std::fs::write(&pre, Gateway::config_text(1, 2, &body)).expect("write");
    let out = keys_cmd(
        &pre,
        &[
            "create", "--name", "ci", "--owner", "tests", "--plan", "small",
        ],
    );
    let key = out
        .lines()
        .find_map(|l| l.strip_prefix("key: "))
        .expect("the key is printed once")
        .to_string();
    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("id:  "))
        .expect("id")
        .to_string();
    let listed = keys_cmd(&pre, &["list"]);
    assert!(
        listed.contains(&id) && !listed.contains(&key),
        "list shows ids, never keys"
    );
    let key_file = std::fs::read_to_string(dir.path().join("keys.json")).expect("key file");
    assert!(!key_file.contains(&key), "only the hash is stored");

    let gw = Gateway::start_with(&body, |d| {
        std::fs::copy(dir.path().join("keys.json"), d.join("keys.json")).expect("copy keys");
    });
    let c = client();

    let r = c.get(gw.url("/private/x")).send().await.expect("send");
    assert_eq!(r.status(), 401);
    let v: serde_json::Value = r.json().await.expect("json");
    assert_eq!(v["reason"], "api_key_missing");
    let r = c
        .get(gw.url("/private/x"))
        .header("x-api-key", "pk_nope_nope")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);
    assert_eq!(rec.total(), 0);

    // Ten concurrent requests fit the quota of 10 exactly; the next ones do not.
    let mut tasks = Vec::new();
    for i in 0..14 {
        let (c, url, key) = (c.clone(), gw.url("/private/x"), key.clone());
        tasks.push(tokio::spawn(async move {
            let req = if i % 2 == 0 {
                c.get(url).header("x-api-key", key)
            } else {
                c.get(format!("{url}?api_key={key}"))
            };
            let r = req.send().await.expect("send");
            let status = r.status().as_u16();
            // An admitted (proxied) response carries the key's quota headers.
            let quota = ["x-quota-limit", "x-quota-remaining", "x-quota-reset"].map(|h| {
                r.headers()
                    .get(h)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            });
            let reason = if status == 429 {
                r.json::<serde_json::Value>().await.expect("json")["reason"].to_string()
            } else {
                String::new()
            };
            (status, reason, quota)
        }));
    }
    let mut ok = 0;
    let mut over = 0;
    for t in tasks {
        let (status, reason, quota) = t.await.expect("join");
        match status {
            404 => {
                ok += 1;
                let [limit, left, reset] = quota;
                assert_eq!(limit.as_deref(), Some("10"), "x-quota-limit");
                let left: u64 = left.expect("x-quota-remaining").parse().expect("number");
                assert!(left < 10, "x-quota-remaining {left}");
                let reset: u64 = reset.expect("x-quota-reset").parse().expect("number");
                assert!(
                    reset > 1_700_000_000,
                    "x-quota-reset is a Unix time: {reset}"
                );
            }
            429 => {
                assert_eq!(reason, "\"quota_exceeded\"");
                over += 1;
            }
            s => panic!("unexpected status {s}"),
        }
    }
    assert_eq!((ok, over), (10, 4), "exactly the quota is admitted");
    assert_eq!(rec.total(), 10);

    // Public routes need no key.
    assert_eq!(
        c.get(gw.url("/echo/x"))
            .send()
            .await
            .expect("send")
            .status(),
        200
    );

    // Revocation (CLI on the gateway's key file, then reload): 403.
    keys_cmd(&gw.config_path, &["revoke", &id]);
    let r = c
        .post(gw.admin_url("/reload"))
        .bearer_auth(&gw.token)
        .send()
        .await
        .expect("reload");
    assert_eq!(r.status(), 200);
    let r = c
        .get(gw.url("/private/x"))
        .header("x-api-key", &key)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 403);
    let v: serde_json::Value = r.json().await.expect("json");
    assert_eq!(v["reason"], "api_key_revoked");
}
