//! The per-request context record. Every pipeline stage writes its decision here; the logging
//! phase turns it into metrics and the analytics event.

use crate::state::{RouteRuntime, Runtime};
use bytes::BytesMut;
use palisade_analytics::names::{stage, verdict};
use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One stage's decision.
#[derive(Debug, Clone)]
pub struct StageDecision {
    /// Stage name (`palisade_analytics::names::stage`).
    pub stage: &'static str,
    /// `allow`, `block` or `detect`.
    pub outcome: &'static str,
    /// Which list, limiter, key or rules decided, with the key (e.g. `deny:spamhaus 1.2.3.0/24`).
    pub detail: String,
}

/// What happened to the request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BodyState {
    /// No body.
    #[default]
    None,
    /// Read completely before the verdict; Pingora replays it from its retry buffer.
    Buffered,
    /// Read completely, but larger than Pingora's retry buffer: the gateway forwards it itself.
    BufferedLarge,
    /// Larger than the inspection limit: the inspected prefix is held, the rest streams after it.
    OverLimit,
    /// Not read by the gateway (upgrade, gRPC streaming): streamed to the upstream as it comes.
    Streamed,
}

/// The per-request record.
pub struct RequestCtx {
    /// When the request's headers were read.
    pub started: Instant,
    /// The config snapshot this request runs on.
    pub runtime: Option<Arc<Runtime>>,
    /// Index of the matched route.
    pub route: Option<usize>,
    /// Request id (propagated or generated).
    pub request_id: String,
    /// Normalised path when it differs from the raw one, and the prefix-stripped form.
    pub upstream_path: Option<String>,
    /// Client address.
    pub client_ip: Option<std::net::IpAddr>,
    /// Final verdict (`palisade_analytics::names::verdict`).
    pub verdict: &'static str,
    /// Stage that decided.
    pub decided_by: &'static str,
    /// Reason code.
    pub reason: &'static str,
    /// Per-stage decisions.
    pub decisions: Vec<StageDecision>,
    /// Targets tried (bit set of backend indexes).
    pub tried: u64,
    /// Upstream attempts made.
    pub attempts: u32,
    /// Backend of the last attempt.
    pub backend: Option<usize>,
    /// When the last upstream attempt started.
    pub upstream_started: Option<Instant>,
    /// Time to the upstream's response header.
    pub upstream_latency: Option<Duration>,
    /// The buffered body (inspection).
    pub body: BytesMut,
    /// What happened to the body.
    pub body_state: BodyState,
    /// Status sent to the client (when the gateway answered itself).
    pub status: u16,
    /// Bytes of request body received.
    pub bytes_in: u64,
    /// The WAF's per-request accumulator (present when the route has a WAF policy).
    pub waf: Option<Box<palisade_waf::Inspection>>,
    /// The guard's rate-limit decision for `RateLimit-*` headers on the response.
    pub rate_limit: Option<palisade_guard::Decision>,
    /// The request was allow-listed: later stages were skipped.
    pub allow_listed: bool,
    /// The admitted API key and its plan decision.
    pub api_key: Option<palisade_keys::Admission>,
    /// The key id of a refused key, when known.
    pub rejected_key_id: Option<String>,
    /// The request body's read timers (body timeout, minimum rate), from the first body read.
    pub body_timer: Option<crate::conn_guard::BodyTimer>,
}

impl Default for RequestCtx {
    fn default() -> Self {
        Self::new()
    }
}

impl RequestCtx {
    /// A fresh record.
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            runtime: None,
            route: None,
            request_id: String::new(),
            upstream_path: None,
            client_ip: None,
            verdict: verdict::ALLOW,
            decided_by: stage::UPSTREAM,
            reason: "",
            decisions: Vec::new(),
            tried: 0,
            attempts: 0,
            backend: None,
            upstream_started: None,
            upstream_latency: None,
            body: BytesMut::new(),
            body_state: BodyState::None,
            status: 0,
            bytes_in: 0,
            waf: None,
            rate_limit: None,
            allow_listed: false,
            api_key: None,
            rejected_key_id: None,
            body_timer: None,
        }
    }

    /// The matched route's runtime and config.
    pub fn route(&self) -> Option<(&RouteRuntime, &crate::config::RouteConfig)> {
        let rt = self.runtime.as_ref()?;
        let i = self.route?;
        Some((rt.routes.get(i)?, rt.config.routes.get(i)?))
    }

    /// Route name for metrics (`-` when none matched).
    pub fn route_name(&self) -> Cow<'_, str> {
        match self.route() {
            Some((_, r)) => Cow::Borrowed(r.name.as_str()),
            None => Cow::Borrowed("-"),
        }
    }

    /// Record that a stage answered the request itself.
    pub fn block(&mut self, stage: &'static str, reason: &'static str, status: u16) {
        self.verdict = verdict::BLOCK;
        self.decided_by = stage;
        self.reason = reason;
        self.status = status;
    }

    /// Record one stage's decision.
    pub fn decide(&mut self, stage: &'static str, outcome: &'static str, detail: String) {
        self.decisions.push(StageDecision {
            stage,
            outcome,
            detail,
        });
    }

    /// Record a gateway answer that is not a block (preflight, not found, upstream failure).
    pub fn gateway_answer(&mut self, stage: &'static str, reason: &'static str, status: u16) {
        self.verdict = verdict::GATEWAY;
        self.decided_by = stage;
        self.reason = reason;
        self.status = status;
    }
}
