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
