//! The per-request context record. Every pipeline stage writes its decision here; the logging
//! phase turns it into metrics and the analytics event.

use crate::state::{RouteRuntime, Runtime};
use bytes::BytesMut;
use http::HeaderValue;
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

/// The request id, held as a ready header value: made once per request (one allocation for a
/// generated id, none for a propagated one) and shared by the upstream request, the response and
/// the JSON error bodies. Derefs to the id's text.
#[derive(Debug, Clone)]
pub struct RequestId(HeaderValue);

impl RequestId {
    /// Longest propagated id kept (a longer one is replaced by a generated id).
    pub const MAX_LEN: usize = 128;

    /// The client's `X-Request-Id` when it is sane (1 to [`Self::MAX_LEN`] printable ASCII
    /// bytes, no space), else `None`.
    pub fn propagated(v: &HeaderValue) -> Option<Self> {
        let b = v.as_bytes();
        (!b.is_empty() && b.len() <= Self::MAX_LEN && b.iter().all(u8::is_ascii_graphic))
            .then(|| RequestId(v.clone()))
    }

    /// A random 128-bit id in lowercase hex (32 characters).
    pub fn generate() -> Self {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let v: u128 = rand::random();
        let mut buf = [0u8; 32];
        for (i, b) in buf.iter_mut().enumerate() {
            let nibble = (v >> (124 - 4 * i)) & 0xf;
            *b = HEX[nibble as usize];
        }
        // Hex digits are always a valid header value.
        RequestId(HeaderValue::from_bytes(&buf).unwrap_or(HeaderValue::from_static("0")))
    }

    /// The id as a header value (a reference count, no copy).
    pub fn header_value(&self) -> HeaderValue {
        self.0.clone()
    }

    /// The id's text.
    pub fn as_str(&self) -> &str {
        // Only printable ASCII is ever stored: `to_str` cannot fail.
        self.0.to_str().unwrap_or("")
    }
}

impl Default for RequestId {
    fn default() -> Self {
        RequestId(HeaderValue::from_static(""))
    }
}

impl std::ops::Deref for RequestId {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
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
    pub request_id: RequestId,
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
    /// On loan from the worker thread's pool (its buffers are reused from request to request).
    pub waf: Option<crate::inspect_pool::PooledInspection>,
    /// The guard's rate-limit decision for `RateLimit-*` headers on the response.
    pub rate_limit: Option<palisade_guard::Decision>,
    /// The request was allow-listed: later stages were skipped.
    pub allow_listed: bool,
    /// The admitted API key and its plan decision (boxed: 136 bytes the record, which Pingora
    /// moves with every request, need not carry when keys are off).
    pub api_key: Option<Box<palisade_keys::Admission>>,
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
            request_id: RequestId::default(),
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

#[cfg(test)]
mod tests {
    use super::RequestId;
    use http::HeaderValue;

    #[test]
    fn generated_ids_are_32_lowercase_hex_digits_and_differ() {
        let a = RequestId::generate();
        let b = RequestId::generate();
        for id in [&a, &b] {
            assert_eq!(id.len(), 32, "{id}");
            assert!(
                id.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')),
                "{id}"
            );
            assert_eq!(id.header_value().as_bytes(), id.as_bytes());
        }
        assert_ne!(a.as_str(), b.as_str());
    }

    #[test]
    fn only_short_printable_ids_are_propagated() {
        let ok = |s: &str| {
            RequestId::propagated(&HeaderValue::from_str(s).unwrap_or_else(|e| panic!("{s}: {e}")))
        };
        assert_eq!(
            ok("abc-123_X.Y").map(|id| id.to_string()).as_deref(),
            Some("abc-123_X.Y")
        );
        assert_eq!(ok(&"a".repeat(128)).map(|id| id.len()), Some(128));
        assert!(ok(&"a".repeat(129)).is_none());
        assert!(ok("").is_none());
        assert!(ok("has space").is_none());
        assert!(ok("tab\there").is_none());
        let non_ascii =
            HeaderValue::from_bytes("café".as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        assert!(RequestId::propagated(&non_ascii).is_none());
    }
}
