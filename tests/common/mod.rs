//! Test harness: real gateway processes on OS-assigned ports in front of real demo upstreams.
#![allow(dead_code)]

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free loopback port (bound then released; the gateway binds it right after).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// A running gateway process, killed on drop.
pub struct Gateway {
    pub child: Child,
    pub port: u16,
    pub admin_port: u16,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    pub token: String,
}

pub const TOKEN: &str = "test-admin-token";

impl Gateway {
    /// Write `body` (YAML after the listeners/admin header) as the config and start the gateway.
    pub fn start(body: &str) -> Gateway {
        Self::start_with(body, |_| {})
    }

    /// Like `start`, with a hook to add files (certificates, rules) to the config directory.
    pub fn start_with(body: &str, prepare: impl FnOnce(&Path)) -> Gateway {
        let dir = tempfile::tempdir().expect("tempdir");
        prepare(dir.path());
        let port = free_port();
        let admin_port = free_port();
        let config_path = dir.path().join("palisade.yaml");
        let text = Self::config_text(port, admin_port, body);
        std::fs::write(&config_path, text).expect("write config");
        let log = std::fs::File::create(dir.path().join("gateway.log")).expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_palisade"))
            .args(["run", "--config"])
            .arg(&config_path)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn gateway");
        let mut gw = Gateway {
            child,
            port,
            admin_port,
            dir,
            config_path,
            token: TOKEN.to_string(),
        };
        gw.wait_ready();
        gw
    }

    pub fn config_text(port: u16, admin_port: u16, body: &str) -> String {
        format!(
            "listeners:\n  - address: 127.0.0.1:{port}\nadmin:\n  address: 127.0.0.1:{admin_port}\n  token: {TOKEN}\n{body}"
        )
    }

    /// Replace the config file's body (listeners/admin kept).
    pub fn write_config(&self, body: &str) {
        let text = Self::config_text(self.port, self.admin_port, body);
        let tmp = self.config_path.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp).expect("create");
        f.write_all(text.as_bytes()).expect("write");
        f.sync_all().expect("sync");
        std::fs::rename(&tmp, &self.config_path).expect("rename");
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("gateway exited with {status}; log:\n{}", self.log());
            }
            let admin_ok = std::net::TcpStream::connect(("127.0.0.1", self.admin_port)).is_ok();
            let proxy_ok = std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok();
            if admin_ok && proxy_ok {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("gateway did not come up; log:\n{}", self.log());
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.admin_port, path)
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The Prometheus text of the admin listener's `/metrics`.
    pub async fn metrics(&self) -> String {
        client()
            .get(self.admin_url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("gateway.log")).unwrap_or_default()
    }

    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([format!("-{sig}"), self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP/1.1 client.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// Poll `f` until it returns true or the timeout passes.
pub async fn eventually(timeout: Duration, mut f: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Upstream pool YAML for the given demo upstream addresses.
pub fn pool_yaml(name: &str, addrs: &[SocketAddr], extra: &str) -> String {
    let mut s = format!("  {name}:\n    targets:\n");
    for a in addrs {
        s.push_str(&format!("      - address: {a}\n"));
    }
    for line in extra.lines() {
        s.push_str("    ");
        s.push_str(line);
        s.push('\n');
    }
    s
}
