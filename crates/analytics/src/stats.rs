//! Counters of the analytics pipeline, exported by the gateway on `/metrics` under the names in
//! [`crate::names::metric`].

use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

/// A snapshot of the analytics counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Events waiting in the in-memory queue.
    pub queue_depth: u64,
    /// Capacity of the queue.
    pub queue_capacity: u64,
    /// Events accepted by `record`.
    pub events_received: u64,
    /// Events written to the sink, replays included.
    pub events_written: u64,
    /// Batches written to the sink.
    pub batches_written: u64,
    /// Events written to the spool.
    pub events_spooled: u64,
    /// Bytes of spool files on disk.
    pub spool_bytes: u64,
    /// Spool segment files on disk.
    pub spool_segments: u64,
    /// Events replayed from the spool into ClickHouse.
    pub events_replayed: u64,
    /// Spooled events skipped on replay because ClickHouse already had them.
    pub events_deduplicated: u64,
    /// Events dropped because the queue was full.
    pub dropped_queue_full: u64,
    /// Events dropped because the spool was full (or could not be written).
    pub dropped_spool_full: u64,
    /// Failed writes (INSERTs, file writes, spool I/O).
    pub write_errors: u64,
    /// The last write error, if any.
    pub last_error: Option<String>,
    /// Security log records written.
    pub security_written: u64,
    /// Security log records dropped.
    pub security_dropped: u64,
}

impl Stats {
    /// Appends these figures in the Prometheus text format (names from
    /// [`crate::names::metric`]), for a gateway that renders `/metrics` as text.
    pub fn render_prometheus(&self, out: &mut String) {
        use crate::names::metric as m;
        use std::fmt::Write as _;
        let mut one = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        one(
            m::QUEUE_DEPTH,
            "gauge",
            "Events waiting in the analytics queue.",
            self.queue_depth,
        );
        one(
            m::QUEUE_CAPACITY,
            "gauge",
            "Capacity of the analytics queue.",
            self.queue_capacity,
        );
        one(
            m::EVENTS_RECEIVED,
            "counter",
            "Events accepted by the analytics queue.",
            self.events_received,
        );
        one(
            m::EVENTS_WRITTEN,
            "counter",
            "Events written to the analytics sink.",
            self.events_written,
        );
        one(
            m::BATCHES_WRITTEN,
            "counter",
            "Batches written to the analytics sink.",
            self.batches_written,
        );
        one(
            m::SPOOL_BYTES,
            "gauge",
            "Bytes in the analytics disk spool.",
            self.spool_bytes,
        );
        one(
            m::SPOOL_SEGMENTS,
            "gauge",
            "Segment files in the analytics disk spool.",
            self.spool_segments,
        );
        one(
            m::EVENTS_SPOOLED,
            "counter",
            "Events written to the disk spool.",
            self.events_spooled,
        );
        one(
            m::EVENTS_REPLAYED,
            "counter",
            "Events replayed from the spool.",
            self.events_replayed,
        );
        one(
            m::EVENTS_DEDUPED,
            "counter",
            "Spooled events ClickHouse already had.",
            self.events_deduplicated,
        );
        one(
            m::WRITE_ERRORS,
            "counter",
            "Failed analytics writes.",
            self.write_errors,
        );
        one(
            m::SECURITY_WRITTEN,
            "counter",
            "Security log records written.",
            self.security_written,
        );
        one(
            m::SECURITY_DROPPED,
            "counter",
            "Security log records dropped.",
            self.security_dropped,
        );
        let d = m::EVENTS_DROPPED;
        let _ = writeln!(
            out,
            "# HELP {d} Analytics events dropped.\n# TYPE {d} counter\n{d}{{cause=\"{}\"}} {}\n{d}{{cause=\"{}\"}} {}",
            m::CAUSE_QUEUE_FULL,
            self.dropped_queue_full,
            m::CAUSE_SPOOL_FULL,
            self.dropped_spool_full
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_names_every_metric() {
        let s = Stats {
            dropped_queue_full: 3,
            dropped_spool_full: 4,
            events_written: 9,
            ..Stats::default()
        };
        let mut out = String::new();
        s.render_prometheus(&mut out);
        assert!(
            out.contains("palisade_analytics_events_written_total 9\n"),
            "{out}"
        );
        assert!(out.contains("palisade_analytics_events_dropped_total{cause=\"queue_full\"} 3\n"));
        assert!(out.contains("palisade_analytics_events_dropped_total{cause=\"spool_full\"} 4\n"));
        assert_eq!(out.matches("# TYPE ").count(), 14);
    }
}

/// Live counters shared by the handle and the writer task.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub events_received: AtomicU64,
    pub events_written: AtomicU64,
    pub batches_written: AtomicU64,
    pub events_spooled: AtomicU64,
    pub spool_bytes: AtomicU64,
    pub spool_segments: AtomicU64,
    pub events_replayed: AtomicU64,
    pub events_deduplicated: AtomicU64,
    pub dropped_queue_full: AtomicU64,
    pub dropped_spool_full: AtomicU64,
    pub write_errors: AtomicU64,
    pub last_error: Mutex<Option<String>>,
}

impl Counters {
    pub(crate) fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn error(&self, e: &dyn std::fmt::Display) {
        self.write_errors.fetch_add(1, Ordering::Relaxed);
        *self.last_error.lock() = Some(e.to_string());
    }

    pub(crate) fn snapshot(&self) -> Stats {
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            events_received: l(&self.events_received),
            events_written: l(&self.events_written),
            batches_written: l(&self.batches_written),
            events_spooled: l(&self.events_spooled),
            spool_bytes: l(&self.spool_bytes),
            spool_segments: l(&self.spool_segments),
            events_replayed: l(&self.events_replayed),
            events_deduplicated: l(&self.events_deduplicated),
            dropped_queue_full: l(&self.dropped_queue_full),
            dropped_spool_full: l(&self.dropped_spool_full),
            write_errors: l(&self.write_errors),
            last_error: self.last_error.lock().clone(),
            ..Stats::default()
        }
    }
}
