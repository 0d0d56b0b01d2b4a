//! Structured JSON security log: one line per blocked (or detected) request, with the matched
//! rules, their targets, the matched text (truncated) and the score, for log shippers.
//!
//! [`SecurityLog::record`] never blocks: a bounded queue feeds a background task that writes
//! to a size-rotated file; when the queue is full the record is dropped and counted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::config::SecurityLogConfig;
use crate::rotating::RotatingFile;
use crate::AnalyticsError;

/// One rule match inside a [`SecurityRecord`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SecurityMatch {
    /// Rule id.
    pub rule_id: u32,
    /// Rule name.
    pub rule_name: String,
    /// Attack class (`sqli`, `xss`, …).
    pub attack_class: String,
    /// Target where it matched, e.g. `args:q`, `header:user-agent`, `body.json:user.name`.
    pub target: String,
    /// Transforms applied before the match, in order.
    pub transforms: Vec<String>,
    /// The matched text (cut to `max_matched_bytes` by the writer, never on the request path).
    pub matched: String,
    /// Score this rule added.
    pub score: u32,
}

/// A blocked or detected request, as written to the security log.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SecurityRecord {
    /// Milliseconds since the Unix epoch.
    pub ts_ms: u64,
    /// Request id.
    pub request_id: String,
    /// Client IP.
    pub client_ip: String,
    /// Method.
    pub method: String,
    /// Host.
    pub host: String,
    /// Path.
    pub path: String,
    /// Route name.
    pub route: String,
    /// Status sent.
    pub status: u16,
    /// Verdict (`block` or `detect`).
    pub verdict: String,
    /// Deciding stage.
    pub decided_by: String,
    /// Reason code.
    pub reason: String,
    /// WAF mode of the route.
    pub waf_mode: String,
    /// Total anomaly score.
    pub anomaly_score: u32,
    /// Threshold of the route.
    pub threshold: u32,
    /// API key id, if any.
    pub api_key_id: String,
    /// User-Agent.
    pub user_agent: String,
    /// The rules that matched.
    pub matches: Vec<SecurityMatch>,
}

#[derive(Debug, Default)]
struct Counters {
    written: AtomicU64,
    dropped: AtomicU64,
}

/// Handle to the security log; cheap to clone.
#[derive(Debug, Clone)]
pub struct SecurityLog {
    tx: mpsc::Sender<SecurityRecord>,
    counters: Arc<Counters>,
}

/// Cuts `s` to at most `max` bytes at a character boundary, marking the cut with `…`.
pub fn truncate_at_char(s: &mut String, max: usize) {
    if s.len() <= max {
        return;
    }
    let mut cut = max;
    while cut > 0 && !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s.truncate(cut);
    s.push('…');
}

impl SecurityLog {
    /// Opens the log file and spawns the writer task on the current tokio runtime.
    /// The task drains the queue and exits when `shutdown` turns true.
    pub fn start(
        cfg: &SecurityLogConfig,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Result<(Self, tokio::task::JoinHandle<()>), AnalyticsError> {
        let dir = cfg
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        let name = cfg
            .path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| {
                AnalyticsError::Config(format!(
                    "security_log.path `{}` has no file name",
                    cfg.path.display()
                ))
            })?
            .to_string();
        let mut file = RotatingFile::open(
            dir,
            &name,
            &format!("{name}."),
            "",
            cfg.max_file_bytes,
            cfg.max_files,
        )?;
        let (tx, mut rx) = mpsc::channel::<SecurityRecord>(cfg.queue_capacity.max(1));
        let counters = Arc::new(Counters::default());
        let c = Arc::clone(&counters);
        let max_matched = cfg.max_matched_bytes;
        let handle = tokio::spawn(async move {
            let mut buf = Vec::with_capacity(4096);
            let mut closing = false;
            loop {
                let first = if closing {
                    rx.recv().await
                } else {
                    tokio::select! {
                        r = rx.recv() => r,
                        r = shutdown.changed() => {
                            if r.is_err() || *shutdown.borrow() {
                                closing = true;
                                rx.close();
                            }
                            continue;
                        }
                    }
                };
                let Some(first) = first else { break };
                buf.clear();
                let mut n = 0u64;
                let mut next = Some(first);
                while let Some(mut rec) = next.take() {
                    for m in &mut rec.matches {
                        truncate_at_char(&mut m.matched, max_matched);
                    }
                    if serde_json::to_writer(&mut buf, &rec).is_ok() {
                        buf.push(b'\n');
                        n += 1;
                    } else {
                        c.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                    if n < 1024 {
                        next = rx.try_recv().ok();
                    }
                }
                match file.write(&buf).and_then(|()| file.flush()) {
                    Ok(()) => {
                        c.written.fetch_add(n, Ordering::Relaxed);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "security log: write failed");
                        c.dropped.fetch_add(n, Ordering::Relaxed);
                    }
                }
            }
        });
        Ok((Self { tx, counters }, handle))
    }

    /// Queues a record; never blocks. Returns false (and counts a drop) when the queue is full.
    pub fn record(&self, rec: SecurityRecord) -> bool {
        if self.tx.try_send(rec).is_ok() {
            true
        } else {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            false
        }
    }

    /// Records written so far.
    pub fn written(&self) -> u64 {
        self.counters.written.load(Ordering::Relaxed)
    }

    /// Records dropped so far.
    pub fn dropped(&self) -> u64 {
        self.counters.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_respects_char_boundaries() {
        let mut s = "ééé".to_string();
        truncate_at_char(&mut s, 3);
        assert_eq!(s, "é…");
        let mut s = "short".to_string();
        truncate_at_char(&mut s, 10);
        assert_eq!(s, "short");
    }
}
