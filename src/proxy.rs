//! The Pingora `ProxyHttp` implementation: the request pipeline of DESIGN.md §1 mapped onto
//! Pingora's phases. See `docs/ARCHITECTURE.md` for the phase map.
//!
//! | phase                    | what Palisade does there                                           |
//! |--------------------------|--------------------------------------------------------------------|
//! | `request_filter`         | request id, route match, CORS preflight, size cap, stages 1-5, body |
//! |                          | read and inspected **before** any upstream is contacted            |
//! | `upstream_peer`          | weighted round robin over healthy targets, retries skip tried ones |
//! | `upstream_request_filter`| path rewrite, `X-Request-Id`, `X-Forwarded-*`, header rules        |
//! | `request_body_filter`    | nothing to hold back: the verdict is already given                 |
//! | `upstream_response_filter`| passive health accounting, upstream latency                       |
//! | `response_filter`        | `X-Request-Id`, CORS headers, response header rules                |
//! | `fail_to_connect` / `error_while_proxy` | passive ejection, retry decision                    |
//! | `fail_to_proxy`          | 502/504 as JSON with request id and reason                         |
//! | `logging`                | metrics and the analytics event                                    |

use crate::conn_guard::{connection_config, BodyTimer};
use crate::context::{BodyState, RequestCtx, RequestId};
use crate::cors::Cors;
use crate::forward;
use crate::respond;
use crate::router::{normalize_path, RouteMatch};
use crate::state::Shared;
use async_trait::async_trait;
use http::HeaderValue;
use palisade_analytics::names::{reason, stage, verdict};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorType};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

/// A boxed future borrowing the request.
type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Pingora keeps at most this much of a request body for replay (its retry buffer).
pub const RETRY_BUFFER_LIMIT: usize = 64 * 1024;

/// The gateway's proxy logic.
pub struct Gateway {
    /// Shared state (runtime snapshot, metrics, health).
    pub shared: Arc<Shared>,
    pub(crate) connector: pingora::connectors::http::Connector,
}

/// Most bytes of a request body reserved up front from its declared length: a client that
/// declares a large body and sends nothing holds no more than this of the gateway's memory
/// until its bytes arrive (the buffer then grows as they do).
const BODY_RESERVE_MAX: usize = 256 * 1024;

impl Gateway {
    /// Create the proxy logic over shared state.
    pub fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            connector: pingora::connectors::http::Connector::new(None),
        }
    }

    /// Answer the request with a gateway error (JSON body) and record who decided.
    ///
    /// Boxed, like every await off the common path of `request_filter`: async-trait copies
    /// `request_filter`'s whole state into a heap box on every request, so the state must not
    /// carry the large futures of paths that rarely run (see docs/BENCHMARKS.md, issue 2).
    fn answer<'a>(
        &'a self,
        session: &'a mut Session,
        ctx: &'a mut RequestCtx,
        status: u16,
        reason: &'static str,
        stage: &'static str,
        block: bool,
    ) -> BoxFuture<'a, Result<bool>> {
        Box::pin(self.answer_now(session, ctx, status, reason, stage, block))
    }

    async fn answer_now(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        status: u16,
        reason: &'static str,
        stage: &'static str,
        block: bool,
    ) -> Result<bool> {
        if block {
            ctx.block(stage, reason, status);
        } else {
            ctx.gateway_answer(stage, reason, status);
        }
        self.shared
            .metrics
            .blocked
            .with_label_values(&[stage, reason])
            .inc();
        let extra = self.cors_headers(session, ctx);
        respond::send_error(session, status, reason, &ctx.request_id, &extra).await?;
        Ok(true)
    }

    /// Answer a protocol violation (400, 414 or 431) and record which one it was.
    async fn protocol_violation(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        v: &palisade_waf::protocol::Violation,
    ) -> Result<bool> {
        ctx.decide(stage::PROTOCOL, verdict::BLOCK, v.code().to_string());
        self.answer(
            session,
            ctx,
            v.status(),
            reason::PROTOCOL_VIOLATION,
            stage::PROTOCOL,
            true,
        )
        .await
    }

    fn cors_headers(
        &self,
        session: &Session,
        ctx: &RequestCtx,
    ) -> Vec<(http::HeaderName, HeaderValue)> {
        match ctx.route() {
            Some((_, r)) => match &r.cors {
                Some(c) => {
                    c.response_headers(session.req_header().headers.get(http::header::ORIGIN))
                }
                None => Vec::new(),
            },
            None => Vec::new(),
        }
    }

    /// Is there a body for the gateway to read before the verdict? Upgrades and gRPC streams
    /// are not held (recorded as streamed); an empty body has nothing to read.
    fn body_to_read(session: &mut Session, ctx: &mut RequestCtx, is_grpc: bool) -> bool {
        if session.is_upgrade_req() {
            ctx.body_state = BodyState::Streamed;
            return false;
        }
        if is_grpc {
            // gRPC streams (client and bidirectional streaming) cannot be held back whole; the
            // protobuf payload is not inspected. Recorded as streamed.
            ctx.body_state = BodyState::Streamed;
            return false;
        }
        !session.as_mut().is_body_empty()
    }

    /// Read the request body (up to the inspection limit) before anything reaches the upstream.
    /// Returns `Some(answered)` when the gateway answered the request itself. `declared` is the
    /// request's Content-Length (already checked against `max_body`): the buffer is sized for
    /// it once, up to [`BODY_RESERVE_MAX`], instead of growing (and copying) chunk by chunk.
    async fn read_body(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        max_body: u64,
        inspect_limit: usize,
        declared: Option<u64>,
    ) -> Result<Option<bool>> {
        if let Some(n) = declared {
            let want = usize::try_from(n)
                .unwrap_or(usize::MAX)
                .min(inspect_limit.saturating_add(1))
                .min(BODY_RESERVE_MAX);
            ctx.body.reserve(want);
        }
        let expect_continue = session
            .req_header()
            .headers
            .get(http::header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        if expect_continue && !session.as_ref().is_http2() {
            session.as_mut().write_continue_response().await?;
        }
        session.as_mut().enable_retry_buffering();
        let mut timer = ctx
            .body_timer
            .take()
            .unwrap_or_else(|| BodyTimer::new(&connection_config(&self.shared)));
        loop {
            let chunk = match timer.read(session).await {
                Ok(Ok(c)) => c,
                Ok(Err(why)) => {
                    // Slow body (slow POST / R.U.D.Y.): 408 and close.
                    session.set_keepalive(None);
                    return self
                        .answer(session, ctx, 408, why.reason(), stage::CONNECTION, true)
                        .await
                        .map(Some);
                }
                Err(e) => {
                    // client went away or sent a malformed body: answer 400 if we still can
                    ctx.block(stage::PROTOCOL, reason::BAD_REQUEST, 400);
                    return Err(e);
                }
            };
            let Some(chunk) = chunk else { break };
            ctx.bytes_in += chunk.len() as u64;
            if ctx.bytes_in > max_body {
                return self
                    .answer(
                        session,
                        ctx,
                        413,
                        reason::BODY_TOO_LARGE,
                        stage::GATEWAY,
                        true,
                    )
                    .await
                    .map(Some);
            }
            ctx.body.extend_from_slice(&chunk);
            if ctx.body.len() > inspect_limit {
                ctx.body_timer = Some(timer);
                ctx.body_state = BodyState::OverLimit;
                return Ok(None);
            }
        }
        ctx.body_timer = Some(timer);
        ctx.body_state = if session.as_ref().retry_buffer_truncated() {
            BodyState::BufferedLarge
        } else {
            BodyState::Buffered
        };
        Ok(None)
    }

    /// Stages 2-3: IP reputation (allow/deny lists, bans) and throttling.
    async fn guard_stage(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        guard: &palisade_guard::Guard,
        route: &str,
    ) -> Result<Option<bool>> {
        let peer = ctx
            .client_ip
            .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
        let ip = guard.client_ip(peer, &session.req_header().headers);
        ctx.client_ip = Some(ip);
        if let Some(st) = &self.shared.state {
            if st.refuse_now() {
                return self.state_unavailable(session, ctx, stage::THROTTLE).await;
            }
        }
        let d = guard.check(ip, route, guard.now());
        ctx.rate_limit = d.rate_limit;
        if d.short_circuits() {
            ctx.allow_listed = true;
            ctx.decide(stage::IP_REPUTATION, verdict::ALLOW, d.to_string());
            return Ok(None);
        }
        if !d.is_blocked() {
            return Ok(None);
        }
        let st = d.stage().unwrap_or(stage::IP_REPUTATION);
        let why = d.reason().unwrap_or(reason::IP_DENIED);
        let status = d.status().unwrap_or(403);
        ctx.decide(st, verdict::BLOCK, d.to_string());
        ctx.block(st, why, status);
        self.shared
            .metrics
            .blocked
            .with_label_values(&[st, why])
            .inc();
        let mut extra = self.cors_headers(session, ctx);
        if let Some(rl) = &d.rate_limit {
            if let Some(secs) = rl.retry_after_secs() {
                extra.push((http::header::RETRY_AFTER, HeaderValue::from(secs)));
            }
            for (k, v) in rl.rate_limit_headers() {
                extra.push((k, HeaderValue::from(v)));
            }
        }
        Box::pin(respond::send_error(
            session,
            status,
            why,
            &ctx.request_id,
            &extra,
        ))
        .await?;
        Ok(Some(true))
    }

    /// Stage 4: the API key (header, else query parameter) and its plan's rate and quota.
    async fn key_stage(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        auth: &palisade_keys::KeyAuth,
        rk: &crate::config::RouteKey,
        route: &str,
    ) -> Result<Option<bool>> {
        let req = session.req_header();
        let from_header = req.headers.get(&rk.header).and_then(|v| v.to_str().ok());
        let presented = from_header.or_else(|| {
            let name = rk.query.as_deref()?;
            req.uri.query()?.split('&').find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                (k == name).then_some(v)
            })
        });
        let now = std::time::SystemTime::now();
        let checked = match &self.shared.state {
            // Shared quotas: one atomic round trip to Redis, after the local checks.
            Some(st) => match auth.check_deferred(presented, route, now) {
                Ok((adm, Some(pending))) => match Box::pin(st.acquire_quota(&pending)).await {
                    Some(d) => pending.resolve(adm, d),
                    None if st.on_quota_failure() => Ok(adm),
                    None => {
                        return self.state_unavailable(session, ctx, stage::API_KEY).await;
                    }
                },
                Ok((adm, None)) => Ok(adm),
                Err(rej) => Err(rej),
            },
            None => auth.check(presented, route, now),
        };
        match checked {
            Ok(adm) => {
                // The admission itself is this stage's record (key id, plan, quota left): the
                // event reads it from there, so no text decision is formatted per request.
                ctx.api_key = Some(Box::new(adm));
                Ok(None)
            }
            Err(rej) => {
                let status = rej.status();
                let why = rej.reason();
                ctx.rejected_key_id = rej.key_id().map(str::to_string);
                ctx.decide(stage::API_KEY, verdict::BLOCK, format!("{rej:?}"));
                ctx.block(stage::API_KEY, why, status);
                self.shared
                    .metrics
                    .blocked
                    .with_label_values(&[stage::API_KEY, why])
                    .inc();
                let mut extra = self.cors_headers(session, ctx);
                if let Some(secs) = rej.retry_after_secs(now) {
                    extra.push((http::header::RETRY_AFTER, HeaderValue::from(secs)));
                }
                Box::pin(respond::send_error(
                    session,
                    status,
                    why,
                    &ctx.request_id,
                    &extra,
                ))
                .await?;
                Ok(Some(true))
            }
        }
    }

    /// 503 `state_unavailable`: Redis is unreachable and `state.on_failure` is `closed`.
    async fn state_unavailable(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        st: &'static str,
    ) -> Result<Option<bool>> {
        ctx.decide(st, verdict::BLOCK, "state_unavailable".to_string());
        self.answer(session, ctx, 503, reason::STATE_UNAVAILABLE, st, true)
            .await
            .map(Some)
    }

    /// Act on the WAF's verdict so far: block (403), or record a detection and go on.
    async fn waf_verdict(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        policy: &palisade_waf::Policy,
        guard: Option<&palisade_guard::Guard>,
    ) -> Result<Option<bool>> {
        let Some(insp) = ctx.waf.as_ref() else {
            return Ok(None);
        };
        match insp.verdict(policy) {
            palisade_waf::Verdict::Block => {
                let detail = waf_detail(insp);
                ctx.decide(stage::WAF, verdict::BLOCK, detail);
                if let (Some(g), Some(ip)) = (guard, ctx.client_ip) {
                    g.record_violation(ip, g.now());
                }
                self.answer(session, ctx, 403, reason::WAF_BLOCKED, stage::WAF, true)
                    .await
                    .map(Some)
            }
            palisade_waf::Verdict::Detect => {
                if ctx.verdict != verdict::DETECT {
                    let detail = waf_detail(insp);
                    ctx.decide(stage::WAF, verdict::DETECT, detail);
                    ctx.verdict = verdict::DETECT;
                    ctx.decided_by = stage::WAF;
                    ctx.reason = reason::WAF_BLOCKED;
                }
                Ok(None)
            }
            _ => Ok(None),
        }
    }

    /// The logging phase: metrics and the analytics event.
    fn log_request(&self, session: &Session, ctx: &RequestCtx) {
        crate::conn_guard::request_done(session);
        let status = session
            .response_written()
            .map(|r| r.status.as_u16())
            .unwrap_or(ctx.status);
        let m = &self.shared.metrics;
        let secs = ctx.started.elapsed().as_secs_f64();
        match ctx.route() {
            Some((rt, _)) => {
                rt.metrics.count(m, &rt.name, status);
                rt.metrics.observe(m, &rt.name, secs);
            }
            None => {
                let route = ctx.route_name();
                m.requests
                    .with_label_values(&[
                        route.as_ref(),
                        crate::metrics::status_label(status).as_ref(),
                    ])
                    .inc();
                m.duration
                    .with_label_values(&[route.as_ref()])
                    .observe(secs);
            }
        }
        if let Some(a) = self.shared.analytics.get() {
            crate::event::with_event(session, ctx, status, |ev| {
                if let Some(sec) = crate::event::security(ctx, ev) {
                    a.security(sec);
                }
                a.record_ref(ev);
            });
        }
    }

    /// The upstream request's path (normalised, prefix stripped), if it differs from the raw one.
    fn rewrite_path(raw_path: &str, normalized: &str, strip: Option<&str>) -> Option<String> {
        let mut p = normalized;
        let mut changed = normalized != raw_path;
        if let Some(prefix) = strip {
            let prefix = prefix.trim_end_matches('/');
            if let Some(rest) = p.strip_prefix(prefix) {
                if rest.is_empty() || rest.starts_with('/') {
                    p = rest;
                    changed = true;
                }
            }
        }
        if !changed {
            return None;
        }
        Some(if p.is_empty() {
            "/".to_string()
        } else {
            p.to_string()
        })
    }
}

/// `rules=942100,941100 score=10` for the stage record.
fn waf_detail(insp: &palisade_waf::Inspection) -> String {
    let ids: Vec<String> = insp.rule_ids().iter().map(u32::to_string).collect();
    format!("rules={} score={}", ids.join(","), insp.score())
}

/// Host of the request without port, lowercase not required (matching is case-insensitive).
fn request_host<'a>(req: &'a RequestHeader, host: Option<&'a http::HeaderValue>) -> &'a str {
    let h = host
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri.host())
        .unwrap_or("");
    if h.starts_with('[') {
        // [v6]:port
        return match h.find(']') {
            Some(i) => &h[..=i],
            None => h,
        };
    }
    match h.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => h,
    }
}

/// A propagated request id is kept when it is short and printable; otherwise a new one is made.
fn request_id(req: &RequestHeader) -> RequestId {
    req.headers
        .get(&crate::forward::X_REQUEST_ID)
        .and_then(RequestId::propagated)
        .unwrap_or_else(RequestId::generate)
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::new()
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let rt = self.shared.runtime();
        ctx.runtime = Some(rt.clone());
        ctx.request_id = request_id(session.req_header());
        ctx.client_ip = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());

        // Stage 1: the header deadline is met.
        crate::conn_guard::headers_done(session);
        // One pass over the header section gives what every check below reads.
        let req = session.req_header();
        let scan = palisade_waf::protocol::HeadScan::new(&req.headers);
        // gRPC streams are not held back (see `body_to_read`).
        let is_grpc = scan
            .content_type
            .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
        // Size caps and Host first: nothing below should work on an oversized head.
        let needs_host = req.version == http::Version::HTTP_11;
        if let Err(v) = scan.shape(req.method.as_str(), req.raw_path(), needs_host) {
            return self.protocol_violation(session, ctx, &v).await;
        }
        // Header count and size caps.
        if crate::conn_guard::check_headers(&self.shared, &scan).is_err() {
            return self
                .answer(
                    session,
                    ctx,
                    431,
                    reason::HEADERS_TOO_LARGE,
                    stage::CONNECTION,
                    true,
                )
                .await;
        }

        // Route.
        let req = session.req_header();
        let raw_path = req.uri.path();
        let Some(normalized) = normalize_path(raw_path) else {
            return self
                .answer(session, ctx, 400, reason::BAD_REQUEST, stage::ROUTER, true)
                .await;
        };
        let host = request_host(req, scan.host);
        let index = match rt.router.find(host, &normalized, &req.method) {
            RouteMatch::Route(i) => i,
            RouteMatch::MethodNotAllowed(i) => {
                ctx.route = Some(i);
                return self
                    .answer(
                        session,
                        ctx,
                        405,
                        reason::METHOD_NOT_ALLOWED,
                        stage::ROUTER,
                        false,
                    )
                    .await;
            }
            RouteMatch::NoRoute => {
                return self
                    .answer(session, ctx, 404, reason::NO_ROUTE, stage::ROUTER, false)
                    .await;
            }
        };
        ctx.route = Some(index);
        let Some(route) = rt.config.routes.get(index) else {
            return self
                .answer(session, ctx, 404, reason::NO_ROUTE, stage::ROUTER, false)
                .await;
        };
        ctx.upstream_path =
            Self::rewrite_path(raw_path, &normalized, route.strip_prefix.as_deref());

        // CORS preflight: answered here, never forwarded.
        if let Some(cors) = &route.cors {
            if Cors::is_preflight(&req.method, &req.headers) {
                return match cors.preflight_headers(&req.headers) {
                    Some(headers) => {
                        ctx.gateway_answer(stage::GATEWAY, "cors_preflight", 204);
                        let h = respond::header(204, &ctx.request_id, 0, &headers)?;
                        Box::pin(session.write_response_header(Box::new(h), true)).await?;
                        Ok(true)
                    }
                    None => {
                        self.answer(
                            session,
                            ctx,
                            403,
                            "cors_origin_denied",
                            stage::GATEWAY,
                            true,
                        )
                        .await
                    }
                };
            }
        }

        // Size cap from the declared length.
        let max_body = route.max_body_bytes;
        let mut declared = None;
        if let Some(cl) = scan.content_length {
            match cl.to_str().ok().and_then(|s| s.trim().parse::<u64>().ok()) {
                Some(n) if n > max_body => {
                    return self
                        .answer(
                            session,
                            ctx,
                            413,
                            reason::BODY_TOO_LARGE,
                            stage::GATEWAY,
                            true,
                        )
                        .await;
                }
                Some(n) => declared = Some(n),
                None => {
                    return self
                        .answer(
                            session,
                            ctx,
                            400,
                            reason::BAD_REQUEST,
                            stage::PROTOCOL,
                            true,
                        )
                        .await;
                }
            }
        }

        // Protocol enforcement: smuggling shapes, invalid header bytes, disallowed methods.
        // Pingora drops Content-Length when Transfer-Encoding is present: the raw HTTP/1 head
        // still shows the pair.
        let checked = match session.as_ref().as_http1() {
            Some(h1) if scan.has_transfer_encoding => {
                palisade_waf::protocol::check_raw_head(&h1.get_headers_raw_bytes())
            }
            _ => Ok(()),
        }
        .and_then(|()| scan.protocol(req.method.as_str()));
        if let Err(v) = checked {
            return self.protocol_violation(session, ctx, &v).await;
        }

        // Stages 2-3: IP reputation and throttling.
        let guard = self.shared.guard.load_full();
        if let Some(guard) = guard.as_deref() {
            if let Some(answered) = self.guard_stage(session, ctx, guard, &route.name).await? {
                return Ok(answered);
            }
        }

        // Stage 4: API key and usage plan.
        if let (Some(rk), false) = (&route.api_key, ctx.allow_listed) {
            let auth = self.shared.keys.load_full();
            if let Some(auth) = auth.as_deref() {
                if let Some(answered) = self.key_stage(session, ctx, auth, rk, &route.name).await? {
                    return Ok(answered);
                }
            }
        }

        // Stage 5, first pass: the WAF on the request line and headers.
        let policy = rt.routes.get(index).and_then(|r| r.waf.as_ref());
        let rules = rt.rules.as_deref();
        let waf_on = !ctx.allow_listed
            && matches!((rules, policy), (Some(_), Some(p)) if p.mode != palisade_waf::Mode::Off);
        if waf_on {
            if let (Some(rules), Some(policy)) = (rules, policy) {
                let mut insp = crate::inspect_pool::PooledInspection::take();
                let req = session.req_header();
                let head = palisade_waf::RequestHead {
                    method: req.method.as_str(),
                    path: req.uri.path().as_bytes(),
                    query: req.uri.query().map(str::as_bytes),
                    headers: &req.headers,
                    authority: req.uri.authority().map(|a| a.as_str().as_bytes()),
                };
                rules.inspect_head(policy, &head, &mut insp);
                ctx.waf = Some(insp);
                if let Some(answered) = self
                    .waf_verdict(session, ctx, policy, guard.as_deref())
                    .await?
                {
                    return Ok(answered);
                }
            }
        }

        // Body: read before any upstream is contacted.
        let inspect_limit = match (waf_on, policy) {
            (true, Some(p)) => p.inspection_limit,
            _ => usize::try_from(max_body)
                .unwrap_or(usize::MAX)
                .min(128 * 1024),
        };
        if Self::body_to_read(session, ctx, is_grpc) {
            if let Some(answered) =
                Box::pin(self.read_body(session, ctx, max_body, inspect_limit, declared)).await?
            {
                return Ok(answered);
            }
        }

        // Stage 5, second pass: the WAF on the buffered body.
        if waf_on && !ctx.body.is_empty() {
            if let (Some(rules), Some(policy)) = (rules, policy) {
                if ctx.body_state == BodyState::OverLimit
                    && policy.over_limit == palisade_waf::OverLimit::Reject
                {
                    return self
                        .answer(
                            session,
                            ctx,
                            413,
                            reason::BODY_UNINSPECTED,
                            stage::WAF,
                            true,
                        )
                        .await;
                }
                let ctype = session
                    .req_header()
                    .headers
                    .get(http::header::CONTENT_TYPE)
                    .map(|v| v.as_bytes());
                if let Some(insp) = ctx.waf.as_mut() {
                    rules.inspect_body(policy, ctype, &ctx.body, insp);
                    if let Some(e) = insp.body_error() {
                        let detail = e.to_string();
                        ctx.decide(stage::WAF, verdict::BLOCK, detail);
                        return self
                            .answer(session, ctx, 400, reason::BAD_REQUEST, stage::WAF, true)
                            .await;
                    }
                }
                if let Some(answered) = self
                    .waf_verdict(session, ctx, policy, guard.as_deref())
                    .await?
                {
                    return Ok(answered);
                }
            }
        }

        match ctx.body_state {
            BodyState::BufferedLarge | BodyState::OverLimit => {
                Box::pin(forward::forward(self, session, ctx)).await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let pool = match ctx.route() {
            Some((r, _)) => r.pool.clone(),
            None => return Err(Error::explain(ErrorType::HTTPStatus(404), "no route")),
        };
        match pool.select(ctx.tried) {
            Some(i) => {
                ctx.tried |= 1u64.checked_shl(i as u32).unwrap_or(0);
                ctx.backend = Some(i);
                ctx.attempts += 1;
                ctx.upstream_started = Some(Instant::now());
                pool.peer(i)
                    .ok_or_else(|| Error::explain(ErrorType::HTTPStatus(502), "no such target"))
            }
            None => {
                ctx.reason = reason::UPSTREAM_UNAVAILABLE;
                Err(Error::explain(
                    ErrorType::HTTPStatus(502),
                    "no healthy upstream target",
                ))
            }
        }
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        crate::forward::prepare_upstream_request(session, upstream, ctx)
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Some(started) = ctx.upstream_started {
            ctx.upstream_latency = Some(started.elapsed());
        }
        if let (Some((r, _)), Some(i)) = (ctx.route(), ctx.backend) {
            if let Some(b) = r.pool.backends.get(i) {
                let s = resp.status.as_u16();
                if matches!(s, 502..=504) {
                    b.health
                        .record_failure(r.pool.config.max_failures, r.pool.config.ejection);
                } else {
                    b.health.record_success();
                }
            }
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        crate::forward::prepare_response(session.req_header(), resp, ctx)
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        if let (Some((r, _)), Some(i)) = (ctx.route(), ctx.backend) {
            let pool = &r.pool;
            if let Some(b) = pool.backends.get(i) {
                b.health
                    .record_failure(pool.config.max_failures, pool.config.ejection);
            }
            self.shared
                .metrics
                .upstream_failures
                .with_label_values(&[pool.config.name.as_str(), "connect"])
                .inc();
            // Nothing was sent: safe to retry for every method.
            if ctx.attempts <= pool.config.retries {
                e.set_retry(true);
            }
        }
        e
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut RequestCtx,
        _client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("peer: {peer}"));
        let mut retry = false;
        // A client that hangs up (or sends garbage) mid-request is not the upstream's fault:
        // it must neither count toward passive ejection nor be retried.
        let upstream_fault = e.esource() == &pingora::ErrorSource::Upstream;
        if let (true, Some((r, _)), Some(i)) = (upstream_fault, ctx.route(), ctx.backend) {
            let pool = &r.pool;
            if let Some(b) = pool.backends.get(i) {
                b.health
                    .record_failure(pool.config.max_failures, pool.config.ejection);
            }
            self.shared
                .metrics
                .upstream_failures
                .with_label_values(&[pool.config.name.as_str(), "proxy"])
                .inc();
            // The request was (partly) sent: retry only idempotent methods with a replayable body.
            retry = session.req_header().method.is_idempotent()
                && !session.as_ref().retry_buffer_truncated()
                && ctx.attempts <= pool.config.retries;
        }
        e.set_retry(retry);
        e
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let (code, why): (u16, &'static str) = match e.etype() {
            ErrorType::HTTPStatus(c) => (
                *c,
                if ctx.reason.is_empty() {
                    reason::UPSTREAM_ERROR
                } else {
                    ctx.reason
                },
            ),
            ErrorType::ConnectTimedout | ErrorType::TLSHandshakeTimedout => {
                (504, reason::UPSTREAM_TIMEOUT)
            }
            ErrorType::ReadTimedout | ErrorType::WriteTimedout => {
                if e.esource() == &pingora::ErrorSource::Upstream {
                    (504, reason::UPSTREAM_TIMEOUT)
                } else {
                    (408, reason::BAD_REQUEST)
                }
            }
            _ => match e.esource() {
                pingora::ErrorSource::Upstream => (502, reason::UPSTREAM_UNAVAILABLE),
                pingora::ErrorSource::Downstream => match e.etype() {
                    ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => {
                        (0, reason::BAD_REQUEST)
                    }
                    _ => (400, reason::BAD_REQUEST),
                },
                _ => (500, "internal_error"),
            },
        };
        let mut code = code;
        if code > 0 && session.response_written().is_none() {
            let st = if code >= 500 {
                stage::UPSTREAM
            } else {
                stage::PROTOCOL
            };
            if code >= 500 {
                ctx.gateway_answer(st, why, code);
            } else {
                ctx.block(st, why, code);
            }
            let extra = self.cors_headers(session, ctx);
            // The connection is not reused after a failure (Pingora never reuses it after a failed
            // upstream attempt): say so with `Connection: close`, or a client that reuses it races
            // the close and sees a reset.
            session.set_keepalive(None);
            if respond::send_error(session, code, why, &ctx.request_id, &extra)
                .await
                .is_err()
            {
                code = 0;
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut RequestCtx) {
        // Synchronous: the future async-trait boxes stays as small as its arguments.
        self.log_request(session, ctx);
    }

    fn suppress_error_log(&self, _session: &Session, ctx: &RequestCtx, _e: &Error) -> bool {
        // Blocks and client mistakes are logged as events, not as errors.
        ctx.status > 0 && ctx.status < 500
    }
}
