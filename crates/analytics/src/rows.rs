//! The ClickHouse sink's front half: events are encoded to RowBinary by the thread that records
//! them, straight into the batch being filled, and full batches wait for the writer task in a
//! short bounded list.
//!
//! Before, each request built an owned [`crate::Event`] (five `String`s), pushed its 592 bytes
//! through a queue, and the writer encoded and dropped it; now the request's thread writes the
//! row from borrowed values ([`crate::event::EventRef`]) under an uncontended lock, and the writer
//! only moves sealed batches. Memory stays bounded: one batch being filled (at most
//! `batch_size` rows) and at most `sealed_max` sealed ones; past that, events are dropped and
//! counted, never rows already accepted.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::event::EventRef;

/// A sealed batch of RowBinary rows, every row carrying `batch_id` as its last column.
#[derive(Debug, Clone)]
pub(crate) struct Batch {
    pub batch_id: u64,
    pub rows: u32,
    pub min_ts: u32,
    pub max_ts: u32,
    pub data: Bytes,
}

/// Largest buffer a new batch starts with (see [`Builder::take`]).
const MAX_PRESIZE: usize = 16 << 20;

/// Accumulates encoded rows (RowBinary or JSON lines) of one batch.
#[derive(Debug)]
pub(crate) struct Builder {
    pub data: Vec<u8>,
    pub rows: u32,
    min_ts: u32,
    max_ts: u32,
    pub started: Instant,
    pub next_id: u64,
}

impl Builder {
    pub fn new() -> Self {
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        Self {
            data: Vec::new(),
            rows: 0,
            min_ts: u32::MAX,
            max_ts: 0,
            started: Instant::now(),
            next_id: seed,
        }
    }

    /// Counts one row that arrived at `ts_ms`.
    pub fn note(&mut self, ts_ms: u64) {
        if self.rows == 0 {
            self.started = Instant::now();
        }
        let ts = u32::try_from(ts_ms / 1000).unwrap_or(u32::MAX);
        self.min_ts = self.min_ts.min(ts);
        self.max_ts = self.max_ts.max(ts);
        self.rows += 1;
    }

    pub fn push_row_binary(&mut self, ev: &EventRef<'_>) {
        self.note(ev.ts_ms);
        ev.encode_row_binary(self.next_id, &mut self.data);
    }

    /// Seals the batch and starts the next one.
    pub fn take(&mut self) -> Batch {
        // The next batch is likely the size of this one: one allocation of that size instead of
        // a doubling `Vec` that copies the batch again at every growth (about once more in all,
        // 3 MB a second at 10,000 events a second).
        let next = Vec::with_capacity(self.data.len().min(MAX_PRESIZE));
        let b = Batch {
            batch_id: self.next_id,
            rows: self.rows,
            min_ts: self.min_ts,
            max_ts: self.max_ts,
            data: Bytes::from(std::mem::replace(&mut self.data, next)),
        };
        self.next_id = self.next_id.wrapping_add(1);
        self.rows = 0;
        self.min_ts = u32::MAX;
        self.max_ts = 0;
        b
    }
}

#[derive(Debug)]
struct Inner {
    cur: Builder,
    sealed: VecDeque<Batch>,
    sealed_rows: usize,
    /// Set by [`RowSink::close`]: no row is added after it.
    closed: bool,
}

/// Where recording threads write rows and the writer task takes batches.
#[derive(Debug)]
pub(crate) struct RowSink {
    inner: Mutex<Inner>,
    batch_rows: u32,
    sealed_max: usize,
    notify: Notify,
}

impl RowSink {
    /// Batches of `batch_size` rows, at most `sealed_max` of them waiting for the writer.
    pub fn new(batch_size: usize, sealed_max: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                cur: Builder::new(),
                sealed: VecDeque::new(),
                sealed_rows: 0,
                closed: false,
            }),
            batch_rows: u32::try_from(batch_size.max(1)).unwrap_or(u32::MAX),
            sealed_max: sealed_max.max(1),
            notify: Notify::new(),
        }
    }

    /// Encodes one event into the current batch; false when it was refused (closed, or the
    /// batch is full and `sealed_max` batches already wait: the caller counts the drop).
    #[inline]
    pub fn push(&self, ev: &EventRef<'_>) -> bool {
        let mut g = self.inner.lock();
        if g.closed {
            return false;
        }
        let mut sealed = false;
        if g.cur.rows >= self.batch_rows {
            // Full, and no room to seal it last time: try again.
            if !self.seal_locked(&mut g) {
                return false;
            }
            sealed = true;
        }
        g.cur.push_row_binary(ev);
        if g.cur.rows >= self.batch_rows {
            sealed |= self.seal_locked(&mut g);
        }
        drop(g);
        if sealed {
            self.notify.notify_one();
        }
        true
    }

    fn seal_locked(&self, g: &mut Inner) -> bool {
        if g.sealed.len() >= self.sealed_max {
            return false;
        }
        let b = g.cur.take();
        g.sealed_rows += b.rows as usize;
        g.sealed.push_back(b);
        true
    }

    /// The oldest sealed batch, if any.
    pub fn pop_sealed(&self) -> Option<Batch> {
        let mut g = self.inner.lock();
        let b = g.sealed.pop_front()?;
        g.sealed_rows -= b.rows as usize;
        Some(b)
    }

    /// Seals the current batch if it has rows and was started at least `older_than` ago (all of
    /// it when `older_than` is zero), unless `sealed_max` batches already wait.
    pub fn seal_if_older(&self, older_than: Duration) {
        let mut g = self.inner.lock();
        if g.cur.rows > 0 && g.cur.started.elapsed() >= older_than {
            self.seal_locked(&mut g);
        }
    }

    /// Rows accepted and not yet taken by the writer.
    pub fn len(&self) -> usize {
        let g = self.inner.lock();
        g.cur.rows as usize + g.sealed_rows
    }

    /// The most rows it holds.
    pub fn capacity(&self) -> usize {
        self.batch_rows as usize * (self.sealed_max + 1)
    }

    /// Refuses further events (shutdown).
    pub fn close(&self) {
        self.inner.lock().closed = true;
    }

    /// Waits until a batch is sealed by a recording thread (a wake-up sent while nobody waited
    /// is kept).
    pub async fn woken(&self) {
        self.notify.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;
    use crate::rowbinary::Reader;
    use std::sync::atomic::Ordering;

    fn ev(i: u64) -> Event {
        Event {
            ts_ms: 1_795_992_000_000 + i * 1000,
            request_id: format!("r-{i}"),
            ..Event::default()
        }
    }

    fn ids(b: &Batch) -> Vec<(String, u64)> {
        let mut r = Reader::new(&b.data);
        let mut out = Vec::new();
        while !r.is_empty() {
            match Event::decode_row_binary(&mut r) {
                Ok((e, id)) => out.push((e.request_id, id)),
                Err(e) => panic!("undecodable row: {e}"),
            }
        }
        out
    }

    #[test]
    fn rows_are_sealed_in_order_with_their_batch_id() {
        let s = RowSink::new(3, 4);
        for i in 0..7 {
            assert!(s.push(&ev(i).as_event_ref()));
        }
        assert_eq!(s.len(), 7);
        let a = s.pop_sealed().expect("first batch");
        let b = s.pop_sealed().expect("second batch");
        assert!(s.pop_sealed().is_none(), "the third batch is not full");
        assert_eq!((a.rows, b.rows), (3, 3));
        assert_eq!(b.batch_id, a.batch_id.wrapping_add(1));
        let got: Vec<_> = ids(&a).into_iter().chain(ids(&b)).collect();
        let want: Vec<_> = (0..6)
            .map(|i| (format!("r-{i}"), a.batch_id.wrapping_add(i / 3)))
            .collect();
        assert_eq!(got, want);
        assert_eq!((a.min_ts, a.max_ts), (1_795_992_000, 1_795_992_002));
        s.seal_if_older(Duration::ZERO);
        let c = s.pop_sealed().expect("the partial batch, sealed");
        assert_eq!(
            ids(&c),
            vec![("r-6".to_string(), b.batch_id.wrapping_add(1))]
        );
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn a_full_sink_refuses_new_events_and_keeps_the_accepted_ones() {
        let s = RowSink::new(2, 1);
        assert_eq!(s.capacity(), 4);
        for i in 0..4 {
            assert!(s.push(&ev(i).as_event_ref()), "event {i}");
        }
        assert!(!s.push(&ev(4).as_event_ref()), "past capacity");
        assert_eq!(s.len(), 4);
        let a = s.pop_sealed().expect("sealed");
        assert_eq!(ids(&a).len(), 2);
        // Room again: the waiting full batch is sealed and the new event starts the next one.
        assert!(s.push(&ev(5).as_event_ref()));
        let b = s.pop_sealed().expect("sealed on the next push");
        assert_eq!(
            ids(&b).into_iter().map(|(r, _)| r).collect::<Vec<_>>(),
            vec!["r-2", "r-3"]
        );
        s.close();
        assert!(!s.push(&ev(6).as_event_ref()));
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn concurrent_recorders_lose_and_duplicate_nothing() {
        use std::collections::HashSet;
        use std::sync::Arc;
        const THREADS: u64 = 4;
        const PER_THREAD: u64 = 5_000;
        let s = Arc::new(RowSink::new(97, 1_000));
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        // The writer's side, taking sealed batches while the recorders write.
        let taker = {
            let (s, done) = (Arc::clone(&s), Arc::clone(&done));
            std::thread::spawn(move || {
                let mut got = Vec::new();
                loop {
                    let finished = done.load(Ordering::SeqCst);
                    while let Some(b) = s.pop_sealed() {
                        got.push(b);
                    }
                    if finished {
                        return got;
                    }
                    std::thread::yield_now();
                }
            })
        };
        let recorders: Vec<_> = (0..THREADS)
            .map(|t| {
                let s = Arc::clone(&s);
                std::thread::spawn(move || {
                    for i in 0..PER_THREAD {
                        assert!(s.push(&ev(t * PER_THREAD + i).as_event_ref()));
                    }
                })
            })
            .collect();
        for r in recorders {
            r.join().expect("recorder");
        }
        s.seal_if_older(Duration::ZERO);
        done.store(true, Ordering::SeqCst);
        let mut batches = taker.join().expect("taker");
        while let Some(b) = s.pop_sealed() {
            batches.push(b);
        }
        let mut seen = HashSet::new();
        let mut batch_ids = HashSet::new();
        for b in &batches {
            assert!(
                batch_ids.insert(b.batch_id),
                "batch id {} twice",
                b.batch_id
            );
            let rows = ids(b);
            assert_eq!(rows.len(), b.rows as usize);
            for (req, id) in rows {
                assert_eq!(id, b.batch_id, "a row carries its batch's id");
                assert!(seen.insert(req.clone()), "{req} twice");
            }
        }
        assert_eq!(seen.len() as u64, THREADS * PER_THREAD, "every event once");
        assert_eq!(s.len(), 0);
    }

    #[tokio::test]
    async fn a_sealed_batch_wakes_the_writer() {
        let s = RowSink::new(1, 2);
        assert!(s.push(&ev(0).as_event_ref()));
        tokio::time::timeout(Duration::from_secs(5), s.woken())
            .await
            .expect("woken by the seal");
        assert!(s.pop_sealed().is_some());
    }
}
