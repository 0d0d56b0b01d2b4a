//! Upstream pools: weighted round robin over healthy targets, active HTTP health checks, passive
//! ejection after consecutive failures, and the Pingora peer (timeouts, TLS, HTTP/2) for a target.
//!
//! Health state lives in a [`HealthRegistry`] keyed by (pool, address) so that a config reload
//! keeps what is known about targets that stay.

use crate::config::{HealthCheckConfig, PoolConfig};
use parking_lot::Mutex;
use pingora::upstreams::peer::HttpPeer;
use serde::Serialize;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// What is known about one target's health. Shared across reloads.
#[derive(Debug)]
pub struct Health {
    /// Result of the active check (true until a check says otherwise).
    active_ok: AtomicBool,
    ok_streak: AtomicU32,
    fail_streak: AtomicU32,
    /// Consecutive request failures (passive).
    passive_failures: AtomicU32,
    /// Ejected until this instant (ms since process start); 0 when not ejected.
    ejected_until: AtomicU64,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            active_ok: AtomicBool::new(true),
            ok_streak: AtomicU32::new(0),
            fail_streak: AtomicU32::new(0),
            passive_failures: AtomicU32::new(0),
            ejected_until: AtomicU64::new(0),
        }
    }
}

impl Health {
    /// May traffic go to this target now?
    pub fn is_available(&self) -> bool {
        self.active_ok.load(Ordering::Relaxed)
            && self.ejected_until.load(Ordering::Relaxed) <= now_ms()
    }

    /// Record an active check result with the pool's thresholds. Returns the new state.
    pub fn record_check(&self, ok: bool, hc: &HealthCheckConfig) -> bool {
        if ok {
            self.fail_streak.store(0, Ordering::Relaxed);
            let n = self.ok_streak.fetch_add(1, Ordering::Relaxed) + 1;
            if n >= hc.healthy_threshold {
                self.active_ok.store(true, Ordering::Relaxed);
                // a target that answers its health check again is given traffic again
                self.ejected_until.store(0, Ordering::Relaxed);
                self.passive_failures.store(0, Ordering::Relaxed);
            }
        } else {
            self.ok_streak.store(0, Ordering::Relaxed);
            let n = self.fail_streak.fetch_add(1, Ordering::Relaxed) + 1;
            if n >= hc.unhealthy_threshold {
                self.active_ok.store(false, Ordering::Relaxed);
            }
        }
        self.active_ok.load(Ordering::Relaxed)
    }

    /// A request to this target succeeded.
    pub fn record_success(&self) {
        if self.passive_failures.load(Ordering::Relaxed) != 0 {
            self.passive_failures.store(0, Ordering::Relaxed);
        }
    }

    /// A request to this target failed; ejects it after `max` consecutive failures.
    pub fn record_failure(&self, max: u32, ejection: Duration) -> bool {
        if max == 0 {
            return false;
        }
        let n = self.passive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= max {
            self.ejected_until
                .store(now_ms() + ejection.as_millis() as u64, Ordering::Relaxed);
            self.passive_failures.store(0, Ordering::Relaxed);
            return true;
        }
        false
    }
}

/// Health entries by (pool, target address), kept across reloads.
#[derive(Default)]
pub struct HealthRegistry {
    entries: Mutex<HashMap<(String, String), Arc<Health>>>,
}

impl HealthRegistry {
    fn get(&self, pool: &str, addr: &str) -> Arc<Health> {
        self.entries
            .lock()
            .entry((pool.to_string(), addr.to_string()))
            .or_default()
            .clone()
    }
}

/// One target of a pool.
pub struct Backend {
    /// Address as configured (shared with the analytics events that name it).
    pub address: std::sync::Arc<str>,
    /// Resolved socket address.
    pub socket: SocketAddr,
    /// Weight.
    pub weight: u32,
    /// Shared health.
    pub health: Arc<Health>,
    peer: HttpPeer,
}

/// A pool of targets.
pub struct Pool {
    /// The pool's configuration.
    pub config: PoolConfig,
    /// Its targets.
    pub backends: Vec<Backend>,
    wheel: Vec<usize>,
    next: AtomicUsize,
}

/// Health of one target for `/metrics` and `/readyz`.
#[derive(Debug, Serialize)]
pub struct TargetStatus {
    /// Pool name.
    pub pool: String,
    /// Target address.
    pub address: String,
    /// Available for traffic.
    pub healthy: bool,
}

impl Pool {
    /// Build a pool, reusing health entries from the registry.
    pub fn new(config: PoolConfig, registry: &HealthRegistry) -> Self {
        let backends: Vec<Backend> = config
            .targets
            .iter()
            .map(|t| {
                let sni = config.sni.clone().unwrap_or_else(|| {
                    t.address
                        .rsplit_once(':')
                        .map(|(h, _)| h.to_string())
                        .unwrap_or_default()
                });
                let mut peer = HttpPeer::new(t.socket, config.tls, sni);
                peer.options.connection_timeout = Some(config.connect_timeout);
                peer.options.total_connection_timeout = Some(config.total_connect_timeout);
                peer.options.read_timeout = Some(config.read_timeout);
                peer.options.write_timeout = Some(config.write_timeout);
                peer.options.idle_timeout = Some(config.idle_timeout);
                if config.http2 {
                    peer.options.set_http_version(2, 2);
                } else {
                    peer.options.set_http_version(1, 1);
                }
                Backend {
                    address: t.address.as_str().into(),
                    socket: t.socket,
                    weight: t.weight,
                    health: registry.get(&config.name, &t.address),
                    peer,
                }
            })
            .collect();
        // Interleaved weighted wheel: round r takes every backend whose weight exceeds r.
        let max_w = backends
            .iter()
            .map(|b| b.weight.min(100))
            .max()
            .unwrap_or(1);
        let mut wheel = Vec::new();
        for round in 0..max_w {
            for (i, b) in backends.iter().enumerate() {
                if b.weight.min(100) > round {
                    wheel.push(i);
                }
            }
        }
        Self {
            config,
            backends,
            wheel,
            next: AtomicUsize::new(0),
        }
    }

    /// Pick the next available target not in `tried` (a bit set of indexes). `None` when every
    /// target is down or already tried.
    pub fn select(&self, tried: u64) -> Option<usize> {
        if self.wheel.is_empty() {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for k in 0..self.wheel.len() {
            let i = self.wheel[(start + k) % self.wheel.len()];
            if i < 64 && tried & (1 << i) != 0 {
                continue;
            }
            if self.backends[i].health.is_available() {
                return Some(i);
            }
        }
        None
    }

    /// The peer for target `i`, with the pool's timeouts.
    pub fn peer(&self, i: usize) -> Option<Box<HttpPeer>> {
        self.backends.get(i).map(|b| Box::new(b.peer.clone()))
    }

    /// Health of every target.
    pub fn status(&self) -> impl Iterator<Item = TargetStatus> + '_ {
        self.backends.iter().map(|b| TargetStatus {
            pool: self.config.name.clone(),
            address: b.address.to_string(),
            healthy: b.health.is_available(),
        })
    }
}

/// One active HTTP/1.1 check: `GET path` must answer an expected status within the timeout.
/// TLS pools are checked with a TCP connect only.
pub async fn check_target(addr: SocketAddr, host: &str, tls: bool, hc: &HealthCheckConfig) -> bool {
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        if tls {
            return Some(true);
        }
        let req = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: palisade-health-check\r\nConnection: close\r\n\r\n",
            hc.path, host
        );
        s.write_all(req.as_bytes()).await.ok()?;
        let mut buf = [0u8; 64];
        let mut n = 0;
        while n < 12 {
            let m = s.read(&mut buf[n..]).await.ok()?;
            if m == 0 {
                break;
            }
            n += m;
        }
        let line = std::str::from_utf8(buf.get(..n)?).ok()?;
        let code: u16 = line.split(' ').nth(1)?.trim().parse().ok()?;
        Some(if hc.expected_status.is_empty() {
            (200..300).contains(&code)
        } else {
            hc.expected_status.contains(&code)
        })
    };
    matches!(tokio::time::timeout(hc.timeout, fut).await, Ok(Some(true)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TargetConfig;

    fn pool(weights: &[u32]) -> Pool {
        let targets = weights
            .iter()
            .enumerate()
            .map(|(i, w)| TargetConfig {
                address: format!("127.0.0.1:{}", 10000 + i),
                socket: SocketAddr::from(([127, 0, 0, 1], 10000 + i as u16)),
                weight: *w,
            })
            .collect();
        let cfg = PoolConfig {
            name: "p".into(),
            targets,
            tls: false,
            sni: None,
            http2: false,
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(1),
            write_timeout: Duration::from_secs(1),
            total_connect_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(1),
            retries: 1,
            health_check: None,
            max_failures: 2,
            ejection: Duration::from_secs(60),
        };
        Pool::new(cfg, &HealthRegistry::default())
    }

    #[test]
    fn weighted_round_robin_follows_weights() {
        let p = pool(&[3, 1]);
        let mut counts = [0; 2];
        for _ in 0..400 {
            counts[p.select(0).expect("some")] += 1;
        }
        assert_eq!(counts, [300, 100]);
    }

    #[test]
    fn ejected_and_tried_targets_are_skipped() {
        let p = pool(&[1, 1]);
        assert!(!p.backends[0]
            .health
            .record_failure(2, Duration::from_secs(60)));
        assert!(p.backends[0]
            .health
            .record_failure(2, Duration::from_secs(60)));
        for _ in 0..10 {
            assert_eq!(p.select(0), Some(1));
        }
        assert_eq!(p.select(1 << 1), None);
    }

    #[test]
    fn active_check_thresholds_mark_down_and_up() {
        let p = pool(&[1]);
        let hc = HealthCheckConfig {
            path: "/health".into(),
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            healthy_threshold: 2,
            unhealthy_threshold: 2,
            expected_status: vec![],
        };
        let h = &p.backends[0].health;
        assert!(h.record_check(false, &hc));
        assert!(!h.record_check(false, &hc));
        assert_eq!(p.select(0), None);
        assert!(!h.record_check(true, &hc));
        assert!(h.record_check(true, &hc));
        assert_eq!(p.select(0), Some(0));
    }
}
