//! Prometheus metrics of the gateway, served on the admin listener at `/metrics`.
//! Names are constants here; the analytics names module holds the event columns.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Metric names (one place).
pub mod name {
    /// Requests by route and status.
    pub const REQUESTS_TOTAL: &str = "palisade_requests_total";
    /// Request latency histogram by route.
    pub const REQUEST_DURATION: &str = "palisade_request_duration_seconds";
    /// Upstream target health (1 healthy, 0 not).
    pub const UPSTREAM_HEALTHY: &str = "palisade_upstream_healthy";
    /// Requests answered by a pipeline stage instead of the upstream, by stage and reason.
    pub const BLOCKED_TOTAL: &str = "palisade_blocked_total";
    /// Configuration reloads by result.
    pub const RELOADS_TOTAL: &str = "palisade_config_reloads_total";
    /// Upstream attempts that failed, by pool and kind.
    pub const UPSTREAM_FAILURES: &str = "palisade_upstream_failures_total";
    /// Bodies larger than the inspection limit passed uninspected, by route.
    pub const BODY_UNINSPECTED: &str = "palisade_body_uninspected_total";
    /// Shared state (Redis): 1 when the last operation succeeded.
    pub const STATE_UP: &str = "palisade_state_up";
    /// Shared state (Redis): failed operations.
    pub const STATE_ERRORS: &str = "palisade_state_errors_total";
    /// Shared state (Redis): requests served with the quota uncounted (`on_failure: open`).
    pub const STATE_FAIL_OPEN: &str = "palisade_state_fail_open_total";
    /// Shared state (Redis): requests refused with 503 (`on_failure: closed`).
    pub const STATE_REFUSED: &str = "palisade_state_refused_total";
}

/// The gateway's metrics.
pub struct Metrics {
    /// The registry scraped by `/metrics`.
    pub registry: Registry,
    /// Requests by route and status.
    pub requests: IntCounterVec,
    /// Latency by route.
    pub duration: HistogramVec,
    /// Upstream health by pool and target.
    pub upstream_healthy: IntGaugeVec,
    /// Gateway answers by stage and reason.
    pub blocked: IntCounterVec,
    /// Reloads by result.
    pub reloads: IntCounterVec,
    /// Upstream failures by pool and kind.
    pub upstream_failures: IntCounterVec,
    /// Uninspected bodies by route.
    pub body_uninspected: IntCounterVec,
}

impl Metrics {
    /// Create and register every metric.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(name::REQUESTS_TOTAL, "Requests by route and status"),
            &["route", "status"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                name::REQUEST_DURATION,
                "Request latency in seconds by route",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ]),
            &["route"],
        )?;
        let upstream_healthy = IntGaugeVec::new(
            Opts::new(name::UPSTREAM_HEALTHY, "Upstream target health (1 healthy)"),
            &["pool", "target"],
        )?;
        let blocked = IntCounterVec::new(
            Opts::new(name::BLOCKED_TOTAL, "Requests answered by a pipeline stage"),
            &["stage", "reason"],
        )?;
        let reloads = IntCounterVec::new(
            Opts::new(name::RELOADS_TOTAL, "Configuration reloads by result"),
            &["result"],
        )?;
        let upstream_failures = IntCounterVec::new(
            Opts::new(
                name::UPSTREAM_FAILURES,
                "Failed upstream attempts by pool and kind",
            ),
            &["pool", "kind"],
        )?;
        let body_uninspected = IntCounterVec::new(
            Opts::new(
                name::BODY_UNINSPECTED,
                "Bodies over the inspection limit passed uninspected",
            ),
            &["route"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(upstream_healthy.clone()))?;
        registry.register(Box::new(blocked.clone()))?;
        registry.register(Box::new(reloads.clone()))?;
        registry.register(Box::new(upstream_failures.clone()))?;
        registry.register(Box::new(body_uninspected.clone()))?;
        Ok(Self {
            registry,
            requests,
            duration,
            upstream_healthy,
            blocked,
            reloads,
            upstream_failures,
            body_uninspected,
        })
    }

    /// Render the text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let enc = TextEncoder::new();
        if enc.encode(&self.registry.gather(), &mut buf).is_err() {
            return String::new();
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}
