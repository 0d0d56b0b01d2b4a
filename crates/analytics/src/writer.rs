//! The writer: a non-blocking handle for the request path and the background task that batches
//! events into the sink (ClickHouse with its disk spool, rotating NDJSON files, or nothing).
//!
//! Request path: [`Analytics::record`] / [`Analytics::record_ref`] never await and never do
//! I/O. With ClickHouse the event is encoded to RowBinary at once by the recording thread into
//! the batch being filled (`rows.rs`: one short lock, no owned copy of the event); with NDJSON
//! (or no sink) an owned event goes on a lock-free bounded queue that the writer task drains.
//! When full, the event is dropped and counted.
//!
//! ClickHouse path, one task:
//! - a batch is sealed by the recording thread at `batch_size` events, or by the writer after
//!   `flush_interval_ms`;
//! - at most one INSERT is in flight (its own tokio task); while it runs, sealed batches wait in
//!   memory (up to [`MAX_PENDING`]) and past that go to the spool;
//! - a failed or timed-out INSERT sends its batch, and every batch waiting in memory, to the
//!   spool; from then on new batches are appended to the spool too, and the spool is replayed
//!   oldest first, one record per INSERT, with exponential backoff between failures;
//! - before replaying a record the writer asks ClickHouse how many rows of that `batch_id` it
//!   already has: all → skip, none → insert, some → insert only the missing request ids. So an
//!   INSERT that timed out on our side but landed on the server is not duplicated.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::{AnalyticsConfig, ClickHouseConfig, NdjsonConfig, SinkConfig};
use crate::event::{Event, EventRef};
use crate::names::{column as c, table as t};
use crate::queue::{EventQueue, DRAIN_PERIOD};
use crate::rotating::RotatingFile;
use crate::rowbinary::Reader;
use crate::rows::{Batch, Builder, RowSink};
use crate::schema::{self, MigrationReport, Retention};
use crate::security::{SecurityLog, SecurityRecord};
use crate::spool::{Spool, SpoolRecord};
use crate::stats::{Counters, Stats};
use crate::AnalyticsError;

/// Sealed batches held in memory while an INSERT is in flight, before the spool takes them.
pub const MAX_PENDING: usize = 4;
const MAX_BACKOFF: Duration = Duration::from_secs(30);
const JANITOR_PERIOD: Duration = Duration::from_secs(3600);

/// Handle to the analytics pipeline: cheap to clone, `Send + Sync`.
#[derive(Debug, Clone)]
pub struct Analytics {
    inner: Arc<Inner>,
}

/// Where the request path puts events: encoded at once into the batch being filled
/// (ClickHouse), or queued as owned events for the writer task (NDJSON, none).
#[derive(Debug)]
enum Front {
    Rows(Arc<RowSink>),
    Queue(Arc<EventQueue>),
}

#[derive(Debug)]
struct Inner {
    front: Front,
    counters: Arc<Counters>,
    security: Option<SecurityLog>,
    shutdown: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

/// Starts the analytics pipeline on the current tokio runtime.
///
/// With a ClickHouse sink, the migrations are attempted here (bounded by the insert timeout);
/// if ClickHouse is unreachable the gateway still starts, events go to the spool, and the
/// migrations are retried before the first INSERT.
pub async fn start(cfg: AnalyticsConfig) -> Result<Analytics, AnalyticsError> {
    cfg.validate()?;
    // The queue of owned events, for the sinks that take them (NDJSON, none); the ClickHouse
    // sink has its row batches instead.
    let queue = |wake_at: usize| {
        Arc::new(EventQueue::new(
            cfg.queue_capacity,
            wake_at.min(cfg.queue_capacity / 2),
        ))
    };
    let (shutdown, shutdown_rx) = watch::channel(false);
    let counters = Arc::new(Counters::default());
    let mut tasks = Vec::new();
    let security = match &cfg.security_log {
        Some(sl) => {
            let (log, handle) = SecurityLog::start(sl, shutdown_rx.clone())?;
            tasks.push(handle);
            Some(log)
        }
        None => None,
    };
    let (front, handle) = match &cfg.sink {
        SinkConfig::Clickhouse(ch) => {
            let mut w = ChWriter::new(ch, &cfg, Arc::clone(&counters))?;
            let migrate = tokio::time::timeout(
                Duration::from_millis(ch.insert_timeout_ms),
                schema::migrate(&w.client, &ch.database, w.retention),
            )
            .await;
            match migrate {
                Ok(Ok(report)) => w.migrated(report),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "analytics: migrations failed at start; retrying before the first insert");
                    counters.error(&e);
                }
                Err(_) => {
                    tracing::warn!(
                        "analytics: clickhouse did not answer at start; spooling until it does"
                    );
                    counters.error(&"migrations timed out at start");
                }
            }
            // Room for `queue_capacity` events in sealed batches (at least two), besides the
            // batch being filled.
            let sealed_max = (cfg.queue_capacity / ch.batch_size.max(1)).max(2);
            let rows = Arc::new(RowSink::new(ch.batch_size, sealed_max));
            let handle = tokio::spawn(w.run(Arc::clone(&rows), shutdown_rx));
            (Front::Rows(rows), handle)
        }
        SinkConfig::Ndjson(n) => {
            let file = RotatingFile::open(
                &n.dir,
                "events.ndjson",
                "events-",
                ".ndjson",
                n.max_file_bytes,
                n.max_files,
            )?;
            let q = queue(n.batch_size);
            let handle = tokio::spawn(run_ndjson(
                file,
                n.clone(),
                Arc::clone(&q),
                shutdown_rx,
                Arc::clone(&counters),
            ));
            (Front::Queue(q), handle)
        }
        SinkConfig::Off => {
            let q = queue(cfg.queue_capacity / 2);
            (
                Front::Queue(Arc::clone(&q)),
                tokio::spawn(run_off(q, shutdown_rx)),
            )
        }
    };
    tasks.push(handle);
    Ok(Analytics {
        inner: Arc::new(Inner {
            front,
            counters,
            security,
            shutdown,
            tasks: Mutex::new(tasks),
        }),
    })
}

impl Analytics {
    /// Queues one event. Never blocks nor awaits: when the queue is full (or the pipeline is
    /// shut down) the event is dropped and counted in `dropped_queue_full`.
    #[inline]
    pub fn record(&self, ev: Event) {
        Counters::add(&self.inner.counters.events_received, 1);
        let ok = match &self.inner.front {
            Front::Rows(rows) => rows.push(&ev.as_event_ref()),
            Front::Queue(q) => q.push(ev),
        };
        if !ok {
            Counters::add(&self.inner.counters.dropped_queue_full, 1);
        }
    }

    /// Records one event given by reference: with ClickHouse it is encoded at once into the
    /// batch being filled (no owned copy); the other sinks queue an owned copy. Never blocks
    /// nor awaits (the batch's lock is held only to append one row); dropped and counted like
    /// [`Analytics::record`] when full.
    #[inline]
    pub fn record_ref(&self, ev: &EventRef<'_>) {
        Counters::add(&self.inner.counters.events_received, 1);
        let ok = match &self.inner.front {
            Front::Rows(rows) => rows.push(ev),
            Front::Queue(q) => q.push(ev.to_event()),
        };
        if !ok {
            Counters::add(&self.inner.counters.dropped_queue_full, 1);
        }
    }

    /// Queues a security log record (blocked or detected request). Never blocks; returns false
    /// when it was dropped (no security log configured, or its queue is full).
    pub fn security(&self, rec: SecurityRecord) -> bool {
        self.inner.security.as_ref().is_some_and(|s| s.record(rec))
    }

    /// Events waiting in the queue (cheaper than [`Analytics::stats`]).
    pub fn queue_depth(&self) -> usize {
        match &self.inner.front {
            Front::Rows(rows) => rows.len(),
            Front::Queue(q) => q.len(),
        }
    }

    /// A snapshot of the counters, for `/metrics`.
    pub fn stats(&self) -> Stats {
        let mut s = self.inner.counters.snapshot();
        s.queue_capacity = match &self.inner.front {
            Front::Rows(rows) => rows.capacity() as u64,
            Front::Queue(q) => q.capacity() as u64,
        };
        s.queue_depth = self.queue_depth() as u64;
        if let Some(sec) = &self.inner.security {
            s.security_written = sec.written();
            s.security_dropped = sec.dropped();
        }
        s
    }

    /// Stops accepting events, writes what is queued (to ClickHouse, or to the spool when it
    /// does not answer), and waits for the background tasks. Idempotent.
    pub async fn shutdown(&self) {
        let _ = self.inner.shutdown.send(true);
        let tasks: Vec<_> = std::mem::take(&mut *self.inner.tasks.lock());
        for t in tasks {
            if let Err(e) = t.await {
                tracing::error!(error = %e, "analytics: a writer task failed");
            }
        }
    }
}

/// Appends one event to an NDJSON batch.
fn push_json(cur: &mut Builder, ev: &Event) -> Result<(), serde_json::Error> {
    let before = cur.data.len();
    if let Err(e) = ev.write_json_line(&mut cur.data) {
        cur.data.truncate(before);
        return Err(e);
    }
    cur.note(ev.ts_ms);
    Ok(())
}

/// What one INSERT task achieved.
#[derive(Debug, Default)]
struct InsertOk {
    inserted: u64,
    deduplicated: u64,
    migration: Option<MigrationReport>,
}

enum Source {
    Memory(Batch),
    Spool { rows: u32 },
}

struct ChWriter {
    client: clickhouse::Client,
    db: String,
    insert_sql: Arc<str>,
    insert_timeout: Duration,
    retry_min: Duration,
    flush_interval: Duration,
    retention: Option<Retention>,
    spool: Spool,
    pending: VecDeque<Batch>,
    inflight: Option<(JoinHandle<Result<InsertOk, AnalyticsError>>, Source)>,
    backoff: Duration,
    next_try: Instant,
    migrated: bool,
    ttl: Option<bool>,
    next_janitor: Instant,
    counters: Arc<Counters>,
}

/// `INSERT INTO db.events (all columns) FORMAT RowBinary`.
pub fn insert_statement(db: &str) -> String {
    let cols: Vec<&str> = c::EVENTS.iter().map(|(n, _)| *n).collect();
    format!(
        "INSERT INTO {db}.{} ({}) FORMAT RowBinary",
        t::EVENTS,
        cols.join(", ")
    )
}

/// Builds the HTTP client for a ClickHouse config (validation off: 18.16 does not speak
/// `RowBinaryWithNamesAndTypes`).
pub fn client_for(ch: &ClickHouseConfig) -> clickhouse::Client {
    clickhouse::Client::default()
        .with_url(ch.url.clone())
        .with_user(ch.user.clone())
        .with_password(ch.password.0.clone())
        .with_compression(if ch.compression {
            clickhouse::Compression::Lz4
        } else {
            clickhouse::Compression::None
        })
        .with_validation(false)
}

async fn join_inflight(
    inflight: &mut Option<(JoinHandle<Result<InsertOk, AnalyticsError>>, Source)>,
) -> Result<Result<InsertOk, AnalyticsError>, tokio::task::JoinError> {
    match inflight {
        Some((h, _)) => h.await,
        None => std::future::pending().await,
    }
}

impl ChWriter {
    fn new(
        ch: &ClickHouseConfig,
        cfg: &AnalyticsConfig,
        counters: Arc<Counters>,
    ) -> Result<Self, AnalyticsError> {
        let spool = Spool::open(&cfg.spool)?;
        let me = Self {
            client: client_for(ch),
            db: ch.database.clone(),
            insert_sql: insert_statement(&ch.database).into(),
            insert_timeout: Duration::from_millis(ch.insert_timeout_ms.max(1)),
            retry_min: Duration::from_millis(ch.retry_min_ms.max(1)),
            flush_interval: Duration::from_millis(ch.flush_interval_ms.max(1)),
            retention: Some(Retention {
                raw_days: ch.retention_days,
                rollup_days: ch.rollup_retention_days,
            }),
            spool,
            pending: VecDeque::new(),
            inflight: None,
            backoff: Duration::from_millis(ch.retry_min_ms.max(1)),
            next_try: Instant::now(),
            migrated: !ch.migrate,
            ttl: None,
            next_janitor: Instant::now(),
            counters,
        };
        me.gauges();
        Ok(me)
    }

    fn migrated(&mut self, report: MigrationReport) {
        tracing::info!(server = %report.server_version, applied = ?report.applied, ttl = report.ttl, "analytics: schema ready");
        self.migrated = true;
        self.ttl = Some(report.ttl);
    }

    fn gauges(&self) {
        self.counters
            .spool_bytes
            .store(self.spool.bytes(), Ordering::Relaxed);
        self.counters
            .spool_segments
            .store(self.spool.segments() as u64, Ordering::Relaxed);
    }

    async fn run(mut self, rx: Arc<RowSink>, mut shutdown: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(DRAIN_PERIOD);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut closing = false;
        loop {
            tokio::select! {
                res = join_inflight(&mut self.inflight) => self.on_done(res),
                _ = rx.woken() => {}
                _ = tick.tick() => {
                    rx.seal_if_older(self.flush_interval);
                    self.janitor();
                }
                r = shutdown.changed(), if !closing => closing = r.is_err() || *shutdown.borrow(),
            }
            if closing {
                rx.close();
                rx.seal_if_older(Duration::ZERO);
            }
            while let Some(b) = rx.pop_sealed() {
                self.seal(b);
                if closing {
                    // The batch being filled when the sealed ones left room.
                    rx.seal_if_older(Duration::ZERO);
                }
            }
            if closing {
                self.finish().await;
                return;
            }
            self.maybe_start();
        }
    }

    fn seal(&mut self, b: Batch) {
        if self.spool.is_empty() && self.pending.len() < MAX_PENDING {
            self.pending.push_back(b);
        } else {
            self.spool_batch(&b);
        }
    }

    fn spool_batch(&mut self, b: &Batch) {
        let rec = SpoolRecord {
            batch_id: b.batch_id,
            rows: b.rows,
            min_ts: b.min_ts,
            max_ts: b.max_ts,
            data: b.data.to_vec(),
        };
        match blocking(|| self.spool.append(&rec)) {
            Ok(true) => Counters::add(&self.counters.events_spooled, u64::from(b.rows)),
            Ok(false) => Counters::add(&self.counters.dropped_spool_full, u64::from(b.rows)),
            Err(e) => {
                self.counters.error(&e);
                Counters::add(&self.counters.dropped_spool_full, u64::from(b.rows));
            }
        }
        self.gauges();
    }

    fn spawn_insert(
        &self,
        data: Bytes,
        batch_id: u64,
        rows: u32,
        dedupe: Option<(u64, u32, u32, u32)>,
    ) -> JoinHandle<Result<InsertOk, AnalyticsError>> {
        let client = self.client.clone();
        let sql = Arc::clone(&self.insert_sql);
        let db = self.db.clone();
        let timeout = self.insert_timeout;
        let migrate = (!self.migrated).then_some(self.retention);
        tokio::spawn(async move {
            let work = insert(&client, &db, &sql, data, batch_id, rows, dedupe, migrate);
            match tokio::time::timeout(timeout, work).await {
                Ok(r) => r,
                Err(_) => Err(AnalyticsError::Unexpected {
                    context: "insert".into(),
                    answer: format!("no answer within {} ms", timeout.as_millis()),
                }),
            }
        })
    }

    fn maybe_start(&mut self) {
        if self.inflight.is_some() || Instant::now() < self.next_try {
            return;
        }
        if let Some(b) = self.pending.pop_front() {
            let h = self.spawn_insert(b.data.clone(), b.batch_id, b.rows, None);
            self.inflight = Some((h, Source::Memory(b)));
            return;
        }
        if self.spool.is_empty() {
            return;
        }
        match blocking(|| self.spool.peek()) {
            Ok(Some(rec)) => {
                let dedupe = Some((rec.batch_id, rec.rows, rec.min_ts, rec.max_ts));
                let h = self.spawn_insert(Bytes::from(rec.data), rec.batch_id, rec.rows, dedupe);
                self.inflight = Some((h, Source::Spool { rows: rec.rows }));
            }
            Ok(None) => {}
            Err(e) => self.counters.error(&e),
        }
        self.gauges();
    }

    fn on_done(&mut self, res: Result<Result<InsertOk, AnalyticsError>, tokio::task::JoinError>) {
        let Some((_, source)) = self.inflight.take() else {
            return;
        };
        let res = match res {
            Ok(r) => r,
            Err(e) => Err(AnalyticsError::Unexpected {
                context: "insert task".into(),
                answer: e.to_string(),
            }),
        };
        match res {
            Ok(ok) => {
                if let Some(report) = ok.migration {
                    self.migrated(report);
                }
                self.backoff = self.retry_min;
                Counters::add(&self.counters.events_written, ok.inserted);
                Counters::add(&self.counters.batches_written, 1);
                if let Source::Spool { .. } = source {
                    Counters::add(&self.counters.events_replayed, ok.inserted);
                    Counters::add(&self.counters.events_deduplicated, ok.deduplicated);
                    blocking(|| self.spool.advance());
                    self.gauges();
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "analytics: insert failed; spooling");
                if e.is_missing_schema() {
                    // Someone dropped the table or database: recreate it before the next try.
                    self.migrated = false;
                }
                self.counters.error(&e);
                self.next_try = Instant::now() + self.backoff;
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                match source {
                    Source::Memory(b) => {
                        self.spool_batch(&b);
                        while let Some(p) = self.pending.pop_front() {
                            self.spool_batch(&p);
                        }
                    }
                    Source::Spool { rows } => {
                        tracing::debug!(rows, "analytics: replay failed; will retry");
                    }
                }
            }
        }
    }

    fn janitor(&mut self) {
        let (Some(false), Some(retention)) = (self.ttl, self.retention) else {
            return;
        };
        if Instant::now() < self.next_janitor {
            return;
        }
        self.next_janitor = Instant::now() + JANITOR_PERIOD;
        let client = self.client.clone();
        let db = self.db.clone();
        tokio::spawn(async move {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            match schema::drop_expired_partitions(&client, &db, retention, now).await {
                Ok(dropped) if !dropped.is_empty() => {
                    tracing::info!(?dropped, "analytics: retention dropped partitions")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "analytics: retention janitor failed"),
            }
        });
    }

    /// At shutdown: waits for the INSERT in flight, then keeps writing what is in memory and in
    /// the spool while ClickHouse answers (bounded by twice the insert timeout); whatever is
    /// left in memory goes to the spool for the next start.
    async fn finish(&mut self) {
        let deadline = Instant::now() + self.insert_timeout * 2;
        let errors_before = self.counters.write_errors.load(Ordering::Relaxed);
        loop {
            if self.inflight.is_some() {
                let res = join_inflight(&mut self.inflight).await;
                self.on_done(res);
            }
            let healthy = self.counters.write_errors.load(Ordering::Relaxed) == errors_before;
            let work_left = !self.pending.is_empty() || !self.spool.is_empty();
            if !healthy || !work_left || Instant::now() >= deadline {
                break;
            }
            self.next_try = Instant::now();
            self.maybe_start();
            if self.inflight.is_none() {
                break;
            }
        }
        while let Some(b) = self.pending.pop_front() {
            self.spool_batch(&b);
        }
    }
}

/// Every INSERT's `query_id` is `palisade-b<batch_id>-<attempt>`, so a replay can see in
/// `system.processes` whether an earlier attempt of the same batch is still running.
pub const QUERY_ID_PREFIX: &str = "palisade-b";
static ATTEMPTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Runs blocking file I/O (the spool) from the writer task: on a multi-threaded runtime the
/// worker hands its other tasks to another thread first; on a current-thread runtime it runs
/// inline (spool appends are one `write` and, with `fsync: batch`, one `fdatasync`).
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

#[allow(clippy::too_many_arguments)]
async fn insert(
    client: &clickhouse::Client,
    db: &str,
    sql: &str,
    mut data: Bytes,
    batch_id_of_insert: u64,
    rows_in_batch: u32,
    dedupe: Option<(u64, u32, u32, u32)>,
    migrate: Option<Option<Retention>>,
) -> Result<InsertOk, AnalyticsError> {
    let mut ok = InsertOk::default();
    if let Some(retention) = migrate {
        ok.migration = Some(schema::migrate(client, db, retention).await?);
    }
    let mut rows = None;
    if let Some((batch_id, n, min_ts, max_ts)) = dedupe {
        // An earlier attempt of this batch that we gave up on may still be running on the
        // server: checking now could miss rows it is about to commit. Retry later instead.
        let running = schema::query_tsv(
            client,
            &format!(
                "SELECT count() FROM system.processes WHERE query_id LIKE '{QUERY_ID_PREFIX}{batch_id}-%'"
            ),
        )
        .await?;
        if running.trim() != "0" {
            return Err(AnalyticsError::Unexpected {
                context: format!("replay of batch {batch_id}"),
                answer: "an earlier INSERT of this batch is still running on the server".into(),
            });
        }
        let filter = format!(
            "FROM {db}.{} WHERE {ts} >= toDateTime({min_ts}) AND {ts} <= toDateTime({max_ts}) AND {b} = {batch_id}",
            t::EVENTS,
            ts = c::TS,
            b = c::BATCH_ID
        );
        let have: u64 = schema::query_tsv(client, &format!("SELECT count() {filter}"))
            .await?
            .trim()
            .parse()
            .unwrap_or(0);
        if have >= u64::from(n) {
            ok.deduplicated = u64::from(n);
            return Ok(ok);
        }
        if have > 0 {
            let present =
                schema::query_tsv(client, &format!("SELECT {} {filter}", c::REQUEST_ID)).await?;
            let present: std::collections::HashSet<&str> = present.lines().collect();
            let mut kept = Vec::with_capacity(data.len());
            let mut r = Reader::new(&data);
            let mut kept_rows = 0u64;
            while !r.is_empty() {
                let start = r.position();
                let (ev, _) =
                    Event::decode_row_binary(&mut r).map_err(|e| AnalyticsError::Unexpected {
                        context: "spooled batch".into(),
                        answer: e.to_string(),
                    })?;
                // TSV escapes backslashes and tabs; request ids are plain tokens in practice.
                if !present.contains(ev.request_id.as_str()) {
                    kept.extend_from_slice(data.get(start..r.position()).unwrap_or_default());
                    kept_rows += 1;
                }
            }
            ok.deduplicated = u64::from(n).saturating_sub(kept_rows);
            rows = Some(kept_rows);
            data = Bytes::from(kept);
        }
    }
    let n_rows = rows.unwrap_or(u64::from(rows_in_batch));
    if n_rows > 0 {
        let attempt = ATTEMPTS.fetch_add(1, Ordering::Relaxed);
        let mut ins = client.insert_formatted_with(sql.to_string()).with_setting(
            "query_id",
            format!("{QUERY_ID_PREFIX}{batch_id_of_insert}-{attempt}"),
        );
        ins.send(data)
            .await
            .map_err(|e| AnalyticsError::clickhouse("insert events", e))?;
        ins.end()
            .await
            .map_err(|e| AnalyticsError::clickhouse("insert events", e))?;
    }
    ok.inserted = n_rows;
    Ok(ok)
}

async fn run_ndjson(
    mut file: RotatingFile,
    cfg: NdjsonConfig,
    rx: Arc<EventQueue>,
    mut shutdown: watch::Receiver<bool>,
    counters: Arc<Counters>,
) {
    let flush = Duration::from_millis(cfg.flush_interval_ms.max(1));
    let mut tick = tokio::time::interval(DRAIN_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut cur = Builder::new();
    let mut buf = Vec::with_capacity(4096);
    let write = |file: &mut RotatingFile, b: Batch| match blocking(|| {
        file.write(&b.data).and_then(|()| file.flush())
    }) {
        Ok(()) => {
            Counters::add(&counters.events_written, u64::from(b.rows));
            Counters::add(&counters.batches_written, 1);
        }
        Err(e) => {
            counters.error(&e);
            Counters::add(&counters.dropped_spool_full, u64::from(b.rows));
        }
    };
    let mut closing = false;
    loop {
        tokio::select! {
            _ = rx.woken() => {}
            _ = tick.tick() => {
                if cur.rows > 0 && cur.started.elapsed() >= flush {
                    write(&mut file, cur.take());
                }
            }
            r = shutdown.changed(), if !closing => closing = r.is_err() || *shutdown.borrow(),
        }
        if closing {
            rx.close();
        }
        while rx.drain_into(&mut buf, 4096) > 0 {
            for ev in buf.drain(..) {
                if let Err(e) = push_json(&mut cur, &ev) {
                    counters.error(&e);
                }
                if cur.rows as usize >= cfg.batch_size {
                    write(&mut file, cur.take());
                }
            }
            if !closing {
                break;
            }
        }
        if closing {
            if cur.rows > 0 {
                write(&mut file, cur.take());
            }
            return;
        }
    }
}

async fn run_off(rx: Arc<EventQueue>, mut shutdown: watch::Receiver<bool>) {
    let mut buf = Vec::with_capacity(4096);
    let mut tick = tokio::time::interval(DRAIN_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let mut closing = false;
        tokio::select! {
            _ = rx.woken() => {}
            _ = tick.tick() => {}
            r = shutdown.changed() => closing = r.is_err() || *shutdown.borrow(),
        }
        if closing {
            rx.close();
        }
        while rx.drain_into(&mut buf, 4096) > 0 {
            buf.clear();
        }
        if closing {
            return;
        }
    }
}
