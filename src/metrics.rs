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

/// The statuses most answers carry, with their label text: [`status_label`] borrows these, and
/// each route keeps the request counter of each at hand ([`RouteMetrics`]).
const COMMON_STATUSES: [(u16, &str); 14] = [
    (200, "200"),
    (204, "204"),
    (301, "301"),
    (302, "302"),
    (304, "304"),
    (400, "400"),
    (401, "401"),
    (403, "403"),
    (404, "404"),
    (429, "429"),
    (500, "500"),
    (502, "502"),
    (503, "503"),
    (504, "504"),
];

fn common_index(status: u16) -> Option<usize> {
    COMMON_STATUSES.iter().position(|&(s, _)| s == status)
}

/// The `status` label: `status.to_string()`, borrowed for the common statuses (no per-request
/// formatting).
pub fn status_label(status: u16) -> std::borrow::Cow<'static, str> {
    match common_index(status).and_then(|i| COMMON_STATUSES.get(i)) {
        Some(&(_, text)) => text.into(),
        None => status.to_string().into(),
    }
}

/// A route's metric handles, taken from the registry's vectors on first use: a
/// `with_label_values` call hashes its labels (SipHash) and takes the vector's lock, twice per
/// request otherwise. The handles are the same metrics the vectors hold (a reload builds new
/// routes, whose handles point at the same series).
#[derive(Default)]
pub struct RouteMetrics {
    duration: std::sync::OnceLock<prometheus::Histogram>,
    requests: [std::sync::OnceLock<prometheus::IntCounter>; COMMON_STATUSES.len()],
}

impl RouteMetrics {
    /// Counts one request of this route (named `route`) answered with `status`.
    pub fn count(&self, m: &Metrics, route: &str, status: u16) {
        match common_index(status)
            .and_then(|i| Some((self.requests.get(i)?, COMMON_STATUSES.get(i)?)))
        {
            Some((cell, &(_, label))) => cell
                .get_or_init(|| m.requests.with_label_values(&[route, label]))
                .inc(),
            None => m
                .requests
                .with_label_values(&[route, status_label(status).as_ref()])
                .inc(),
        }
    }

    /// Records one request's time in the gateway.
    pub fn observe(&self, m: &Metrics, route: &str, secs: f64) {
        self.duration
            .get_or_init(|| m.duration.with_label_values(&[route]))
            .observe(secs);
    }
}

#[cfg(test)]
mod tests {
    use super::{status_label, Metrics, RouteMetrics};

    #[test]
    fn status_label_is_the_status_as_text() {
        for status in [
            0u16, 1, 99, 100, 200, 204, 301, 404, 429, 499, 502, 504, 599, 999, 1000,
        ] {
            assert_eq!(status_label(status), status.to_string(), "status {status}");
        }
    }

    #[test]
    fn kept_handles_count_the_same_series_as_the_vectors() {
        let m = Metrics::new().expect("metrics");
        let first = RouteMetrics::default();
        for status in [200u16, 200, 404, 418] {
            first.count(&m, "api", status);
        }
        first.observe(&m, "api", 0.25);
        // A reload builds new routes: their handles point at the same series.
        let second = RouteMetrics::default();
        second.count(&m, "api", 200);
        second.count(&m, "api", 418);
        second.observe(&m, "api", 0.5);
        let get = |status: &str| m.requests.with_label_values(&["api", status]).get();
        assert_eq!(get("200"), 3);
        assert_eq!(get("404"), 1);
        assert_eq!(
            get("418"),
            2,
            "a status outside the kept ones is counted too"
        );
        let h = m.duration.with_label_values(&["api"]);
        assert_eq!(h.get_sample_count(), 2);
        assert!((h.get_sample_sum() - 0.75).abs() < 1e-9);
    }
}
