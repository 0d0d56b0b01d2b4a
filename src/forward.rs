//! Request and response rewriting shared by both forwarding paths, and the gateway's own
//! forwarder for bodies that Pingora cannot replay.
//!
//! Pingora replays a request body read in `request_filter` from its retry buffer, which holds
//! 64 KiB. A body read whole before the verdict but larger than that (or larger than the
//! inspection limit, with `pass_uninspected`) would reach the upstream without its body, so the
//! gateway forwards such requests itself: after the verdict it connects to a target, sends the
//! header and the buffered bytes, streams whatever of the body is still unread, and relays the
//! response. Nothing reaches the upstream before the verdict on either path.

use crate::context::{BodyState, RequestCtx};
use crate::proxy::Gateway;
use crate::respond;
use bytes::Bytes;
use http::HeaderValue;
use palisade_analytics::names::{reason, stage};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::Session;
use pingora::Result;
use std::time::Instant;

/// Rewrite the request sent upstream: path, `X-Request-Id`, `X-Forwarded-*`, header rules.
///
/// As for the response (`prepare_response`), the headers are written into the request's
/// `http::HeaderMap` directly, with names made at compile time, after one `reserve`, instead of
/// through Pingora's `insert_header` (which parses and copies each name again and grows a second
/// map of the client's name case: about 2,300 instructions per header here). The request then
/// goes upstream without that case map: standard names in title case (`Content-Type`), others in
/// lower case (`x-api-key`), as HTTP/2 sends every name (RFC 9110 §5.1: names are
/// case-insensitive). A request-target that the URI does not reproduce byte for byte
/// (absolute-form, non-UTF-8) keeps Pingora's own path, case map and all.
pub fn prepare_upstream_request(
    session: &Session,
    up: &mut RequestHeader,
    ctx: &RequestCtx,
) -> Result<()> {
    if let Some(path) = &ctx.upstream_path {
        let pq = match up.uri.query() {
            Some(q) => format!("{path}?{q}"),
            None => path.clone(),
        };
        if let Ok(uri) = http::Uri::builder().path_and_query(pq).build() {
            up.set_uri(uri);
        }
    }
    let tls = session
        .digest()
        .and_then(|d| d.ssl_digest.as_ref())
        .is_some();
    let route = ctx.route().map(|(_, r)| r);
    if !target_round_trips(up) {
        return rewrite_request_headers(up, ctx, tls, route);
    }
    let send_end_stream = up.send_end_stream();
    let placeholder = RequestHeader::from(http::Request::new(()).into_parts().0);
    let mut parts: http::request::Parts = std::mem::replace(up, placeholder).into();
    parts
        .headers
        .reserve(3 + route.map_or(0, |r| r.request_headers.additions().len()));
    rewrite_request_headers(&mut parts.headers, ctx, tls, route)?;
    *up = RequestHeader::from(parts);
    if let Some(end) = send_end_stream {
        up.set_send_end_stream(end);
    }
    Ok(())
}

/// Does the URI give back the request-target byte for byte (origin-form, UTF-8)? Only then can
/// the request be rebuilt from its parts without changing what the upstream receives.
fn target_round_trips(up: &RequestHeader) -> bool {
    up.raw_path_is_utf8()
        && up.uri.authority().is_none()
        && up.uri.path_and_query().map(|p| p.as_str().as_bytes()) == Some(up.raw_path())
}

/// Where the upstream request's headers are edited: the bare `HeaderMap` (the usual case) or
/// Pingora's `RequestHeader`, which keeps its case map in step (a target that must stay as
/// Pingora stored it).
trait HeaderEdit {
    fn value(&self, name: &http::HeaderName) -> Option<&HeaderValue>;
    fn set(&mut self, name: http::HeaderName, value: HeaderValue) -> Result<()>;
    fn unset(&mut self, name: &http::HeaderName);
}

impl HeaderEdit for http::HeaderMap {
    fn value(&self, name: &http::HeaderName) -> Option<&HeaderValue> {
        self.get(name)
    }
    fn set(&mut self, name: http::HeaderName, value: HeaderValue) -> Result<()> {
        self.insert(name, value);
        Ok(())
    }
    fn unset(&mut self, name: &http::HeaderName) {
        self.remove(name);
    }
}

impl HeaderEdit for RequestHeader {
    fn value(&self, name: &http::HeaderName) -> Option<&HeaderValue> {
        self.headers.get(name)
    }
    fn set(&mut self, name: http::HeaderName, value: HeaderValue) -> Result<()> {
        self.insert_header(name, value)
    }
    fn unset(&mut self, name: &http::HeaderName) {
        self.remove_header(name);
    }
}

/// `X-Request-Id`, `X-Forwarded-For`, `X-Forwarded-Proto`, no `Expect` once the gateway holds the
/// body, then the route's header rules.
fn rewrite_request_headers(
    h: &mut impl HeaderEdit,
    ctx: &RequestCtx,
    tls: bool,
    route: Option<&crate::config::RouteConfig>,
) -> Result<()> {
    h.set(X_REQUEST_ID, ctx.request_id.header_value())?;
    if let Some(xff) = forwarded_for(h.value(&X_FORWARDED_FOR), ctx) {
        h.set(X_FORWARDED_FOR, xff)?;
    }
    h.set(
        X_FORWARDED_PROTO,
        HeaderValue::from_static(if tls { "https" } else { "http" }),
    )?;
    if matches!(
        ctx.body_state,
        BodyState::Buffered | BodyState::BufferedLarge | BodyState::OverLimit
    ) {
        // The gateway already answered `100 Continue` and holds the body.
        h.unset(&http::header::EXPECT);
    }
    if let Some(route) = route {
        for name in route.request_headers.removals() {
            h.unset(name);
        }
        for (k, v) in route.request_headers.additions() {
            h.set(k.clone(), v.clone())?;
        }
    }
    Ok(())
}

/// The `X-Forwarded-For` value sent upstream: the client's, then the peer address.
fn forwarded_for(prev: Option<&HeaderValue>, ctx: &RequestCtx) -> Option<HeaderValue> {
    let ip = ctx.client_ip?;
    let mut buf = IpText::new();
    let ip = buf.format(ip);
    let xff = match prev.map(HeaderValue::as_bytes) {
        Some(prev) if !prev.is_empty() => {
            let mut v = Vec::with_capacity(prev.len() + 2 + ip.len());
            v.extend_from_slice(prev);
            v.extend_from_slice(b", ");
            v.extend_from_slice(ip);
            HeaderValue::from_maybe_shared(bytes::Bytes::from(v))
        }
        _ => HeaderValue::from_bytes(ip),
    };
    // The previous value came from a parsed header and an IP's text is ASCII: always valid.
    xff.ok()
}

/// An IP address's text in a stack buffer (no allocation): IPv4 by hand, IPv6 through `Display`.
pub(crate) struct IpText {
    buf: [u8; 48],
}

impl IpText {
    /// An empty buffer.
    pub(crate) fn new() -> Self {
        IpText { buf: [0; 48] }
    }

    /// The text of `ip`, as `Display` writes it.
    pub(crate) fn format_str(&mut self, ip: std::net::IpAddr) -> &str {
        // Digits, dots, hex and colons: always UTF-8.
        std::str::from_utf8(self.format(ip)).unwrap_or("")
    }

    /// The text of `ip`, as `Display` writes it, as bytes.
    pub(crate) fn format(&mut self, ip: std::net::IpAddr) -> &[u8] {
        match ip {
            std::net::IpAddr::V4(v4) => {
                let mut n = 0;
                let mut put = |b: u8| {
                    if let Some(slot) = self.buf.get_mut(n) {
                        *slot = b;
                        n += 1;
                    }
                };
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        put(b'.');
                    }
                    if octet >= 100 {
                        put(b'0' + octet / 100);
                    }
                    if octet >= 10 {
                        put(b'0' + octet / 10 % 10);
                    }
                    put(b'0' + octet % 10);
                }
                self.buf.get(..n).unwrap_or_default()
            }
            std::net::IpAddr::V6(v6) => {
                use std::io::Write;
                let mut cur = std::io::Cursor::new(&mut self.buf[..]);
                // 45 characters at most (`ffff:…:255.255.255.255`): the buffer holds it.
                let _ = write!(cur, "{v6}");
                let n = usize::try_from(cur.position()).unwrap_or(0);
                self.buf.get(..n).unwrap_or_default()
            }
        }
    }
}

/// Rewrite the response sent to the client: `X-Request-Id`, `RateLimit-*` and `X-Quota-*`,
/// CORS, header rules.
///
/// The headers are written into the response's `http::HeaderMap` directly, with names made at
/// compile time, after one `reserve`: Pingora's `insert_header` parses and copies every name
/// again and keeps a second map of the original name case, growing both maps as headers are
/// added (about 2,500 instructions per header, see docs/BENCHMARKS.md). The response then goes
/// to the client without that case map: names are written in their canonical title case
/// (`Content-Type`), which HTTP/1.1 clients must treat alike (RFC 9110 §5.1) and HTTP/2 lowercases
/// anyway; a non-standard reason phrase from the upstream is replaced by the standard one.
pub fn prepare_response(
    req: &RequestHeader,
    resp: &mut ResponseHeader,
    ctx: &RequestCtx,
) -> Result<()> {
    let route = ctx.route().map(|(_, r)| r);
    let cors = route
        .and_then(|r| r.cors.as_ref())
        .map(|c| c.response_headers(req.headers.get(http::header::ORIGIN)))
        .unwrap_or_default();
    let mut extra = 1 + cors.len();
    if ctx.rate_limit.is_some() {
        extra += 3;
    }
    if ctx.api_key.is_some() {
        extra += 4;
    }
    if let Some(r) = route {
        extra += r.response_headers.additions().len();
    }
    let placeholder = ResponseHeader::from(http::Response::new(()).into_parts().0);
    let mut parts: http::response::Parts = std::mem::replace(resp, placeholder).into();
    let h = &mut parts.headers;
    h.reserve(extra);
    h.insert(X_REQUEST_ID, ctx.request_id.header_value());
    let mut numbers = NumberHeaders::new();
    if let Some(rl) = &ctx.rate_limit {
        for (k, v) in rl.rate_limit_headers() {
            numbers.push(k, v);
        }
    }
    if let Some(adm) = &ctx.api_key {
        if let (Some(limit), Some(left)) = (adm.quota_limit, adm.quota_remaining) {
            numbers.push(X_QUOTA_LIMIT, limit);
            numbers.push(X_QUOTA_REMAINING, left);
        }
        if let Some(reset) = adm.quota_reset_at {
            let secs = reset
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            numbers.push(X_QUOTA_RESET, secs);
        }
        if let Some(left) = adm.rate_remaining {
            numbers.push(X_RATELIMIT_REMAINING, u64::from(left));
        }
    }
    numbers.write_into(h);
    for (k, v) in cors {
        h.insert(k, v);
    }
    if let Some(route) = route {
        for name in route.response_headers.removals() {
            h.remove(name);
        }
        for (k, v) in route.response_headers.additions() {
            h.insert(k.clone(), v.clone());
        }
    }
    *resp = ResponseHeader::from(parts);
    Ok(())
}

/// The numeric response headers of one request (`RateLimit-*`, `X-Quota-*`: at most 7), written
/// as one text whose slices are the header values: one allocation for all of them, where
/// `HeaderValue::from(u64)` makes a buffer of its own for each (about 700 instructions apiece
/// with the free, in the full-protection profile).
struct NumberHeaders {
    names: [Option<http::HeaderName>; NumberHeaders::MAX],
    values: [u64; NumberHeaders::MAX],
    len: usize,
}

impl NumberHeaders {
    const MAX: usize = 8;

    fn new() -> Self {
        const NONE: Option<http::HeaderName> = None;
        NumberHeaders {
            names: [NONE; Self::MAX],
            values: [0; Self::MAX],
            len: 0,
        }
    }

    /// Adds a header (ignored past [`Self::MAX`], which the callers cannot reach).
    fn push(&mut self, name: http::HeaderName, value: u64) {
        if let (Some(n), Some(v)) = (self.names.get_mut(self.len), self.values.get_mut(self.len)) {
            *n = Some(name);
            *v = value;
            self.len += 1;
        }
    }

    /// Inserts every header into `h` (replacing a value of the same name).
    fn write_into(&mut self, h: &mut http::HeaderMap) {
        if self.len == 0 {
            return;
        }
        let mut text = Vec::with_capacity(self.len * 20);
        let mut ends = [0usize; Self::MAX];
        let mut digits = itoa::Buffer::new();
        for (v, end) in self.values[..self.len].iter().zip(ends.iter_mut()) {
            text.extend_from_slice(digits.format(*v).as_bytes());
            *end = text.len();
        }
        let text = Bytes::from(text);
        let mut start = 0;
        for (name, &end) in self.names[..self.len].iter_mut().zip(ends.iter()) {
            // Digits only: always a valid value.
            if let (Some(name), Ok(v)) = (
                name.take(),
                HeaderValue::from_maybe_shared(text.slice(start..end)),
            ) {
                h.insert(name, v);
            }
            start = end;
        }
    }
}

pub(crate) const X_REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");
const X_FORWARDED_FOR: http::HeaderName = http::HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: http::HeaderName = http::HeaderName::from_static("x-forwarded-proto");
const X_QUOTA_LIMIT: http::HeaderName = http::HeaderName::from_static("x-quota-limit");
const X_QUOTA_REMAINING: http::HeaderName = http::HeaderName::from_static("x-quota-remaining");
const X_QUOTA_RESET: http::HeaderName = http::HeaderName::from_static("x-quota-reset");
const X_RATELIMIT_REMAINING: http::HeaderName =
    http::HeaderName::from_static("x-ratelimit-remaining");

/// Forward a request whose body the gateway holds (and possibly a rest still to read) and relay
/// the response. Connection failures are retried on other targets (nothing was sent).
pub async fn forward(gw: &Gateway, session: &mut Session, ctx: &mut RequestCtx) -> Result<()> {
    let Some((route_rt, route)) = ctx.route() else {
        return respond::send_error(session, 404, reason::NO_ROUTE, &ctx.request_id, &[]).await;
    };
    let pool = route_rt.pool.clone();
    let max_body = route.max_body_bytes;
    let route_name = route.name.clone();
    let mut up_req = session.req_header().clone();
    if !pool.config.http2 && up_req.version != http::Version::HTTP_11 {
        // An HTTP/2 client's request to an HTTP/1.1 target: `:authority` becomes `Host`.
        up_req.set_version(http::Version::HTTP_11);
        if !up_req.headers.contains_key(http::header::HOST) {
            if let Some(auth) = up_req.uri.authority().map(|a| a.as_str().to_string()) {
                up_req.insert_header(http::header::HOST, auth)?;
            }
        }
        let pq = up_req
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".to_string());
        if let Ok(uri) = http::Uri::builder().path_and_query(pq).build() {
            up_req.set_uri(uri);
        }
    }
    prepare_upstream_request(session, &mut up_req, ctx)?;

    // Connect, trying other targets on connection failure.
    let mut attempt = None;
    while ctx.attempts <= pool.config.retries {
        let Some(i) = pool.select(ctx.tried) else {
            break;
        };
        ctx.tried |= 1u64.checked_shl(i as u32).unwrap_or(0);
        ctx.backend = Some(i);
        ctx.attempts += 1;
        let Some(peer) = pool.peer(i) else { break };
        ctx.upstream_started = Some(Instant::now());
        match gw.connector.get_http_session(&*peer).await {
            Ok((s, _reused)) => {
                attempt = Some((s, peer));
                break;
            }
            Err(_) => {
                if let Some(b) = pool.backends.get(i) {
                    b.health
                        .record_failure(pool.config.max_failures, pool.config.ejection);
                }
                gw.shared
                    .metrics
                    .upstream_failures
                    .with_label_values(&[pool.config.name.as_str(), "connect"])
                    .inc();
            }
        }
    }
    let Some((mut up, peer)) = attempt else {
        ctx.gateway_answer(stage::UPSTREAM, reason::UPSTREAM_UNAVAILABLE, 502);
        return respond::send_error(
            session,
            502,
            reason::UPSTREAM_UNAVAILABLE,
            &ctx.request_id,
            &[],
        )
        .await;
    };

    let mut body_timeout = None;
    let result: Result<()> = async {
        up.write_request_header(Box::new(up_req)).await?;
        let body: Bytes = std::mem::take(&mut ctx.body).freeze();
        let more = ctx.body_state == BodyState::OverLimit;
        up.write_request_body(body, !more).await?;
        if more {
            gw.shared
                .metrics
                .body_uninspected
                .with_label_values(&[route_name.as_str()])
                .inc();
            let mut timer = ctx.body_timer.take().unwrap_or_else(|| {
                crate::conn_guard::BodyTimer::new(&crate::conn_guard::connection_config(&gw.shared))
            });
            while let Some(chunk) = match timer.read(session).await? {
                Ok(c) => c,
                Err(why) => {
                    body_timeout = Some(why);
                    return Err(pingora::Error::explain(
                        pingora::ErrorType::HTTPStatus(408),
                        why.reason(),
                    ));
                }
            } {
                ctx.bytes_in += chunk.len() as u64;
                if ctx.bytes_in > max_body {
                    return Err(pingora::Error::explain(
                        pingora::ErrorType::HTTPStatus(413),
                        "body larger than the route's cap",
                    ));
                }
                up.write_request_body(chunk, false).await?;
            }
        }
        up.finish_request_body().await?;
        up.read_response_header().await?;
        Ok(())
    }
    .await;

    if let Err(e) = result {
        // A client's fault (slow or oversized body) is not the upstream's.
        let client_fault = matches!(
            e.etype(),
            pingora::ErrorType::HTTPStatus(408) | pingora::ErrorType::HTTPStatus(413)
        );
        if let (false, Some(b)) = (
            client_fault,
            pool.backends.get(ctx.backend.unwrap_or(usize::MAX)),
        ) {
            b.health
                .record_failure(pool.config.max_failures, pool.config.ejection);
        }
        let (code, why) = match e.etype() {
            pingora::ErrorType::HTTPStatus(413) => (413, reason::BODY_TOO_LARGE),
            pingora::ErrorType::HTTPStatus(408) => (
                408,
                body_timeout.map_or(reason::BODY_TIMEOUT, |w| w.reason()),
            ),
            pingora::ErrorType::ReadTimedout => (504, reason::UPSTREAM_TIMEOUT),
            _ => (502, reason::UPSTREAM_ERROR),
        };
        if code == 408 {
            session.set_keepalive(None);
            ctx.block(stage::CONNECTION, why, code);
        } else if code == 413 {
            ctx.block(stage::GATEWAY, why, code);
        } else {
            ctx.gateway_answer(stage::UPSTREAM, why, code);
        }
        return respond::send_error(session, code, why, &ctx.request_id, &[]).await;
    }

    if let Some(started) = ctx.upstream_started {
        ctx.upstream_latency = Some(started.elapsed());
    }
    let mut resp = match up.response_header() {
        Some(h) => h.clone(),
        None => {
            ctx.gateway_answer(stage::UPSTREAM, reason::UPSTREAM_ERROR, 502);
            return respond::send_error(session, 502, reason::UPSTREAM_ERROR, &ctx.request_id, &[])
                .await;
        }
    };
    if let Some(b) = pool.backends.get(ctx.backend.unwrap_or(usize::MAX)) {
        b.health.record_success();
    }
    prepare_response(session.req_header(), &mut resp, ctx)?;
    ctx.status = resp.status.as_u16();
    let done = up.response_done();
    session.write_response_header(Box::new(resp), done).await?;
    if !done {
        while let Some(chunk) = up.read_response_body().await? {
            session.write_response_body(Some(chunk), false).await?;
        }
        session.write_response_body(None, true).await?;
    }
    if up.response_done() {
        gw.connector
            .release_http_session(up, &*peer, Some(pool.config.idle_timeout))
            .await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{target_round_trips, IpText, NumberHeaders};
    use pingora::http::RequestHeader;
    use std::net::IpAddr;

    #[test]
    fn number_headers_share_one_text_and_keep_each_value() {
        let names = ["a", "b", "c", "d", "e", "f", "g", "h"].map(http::HeaderName::from_static);
        let values = [0, 7, 10, 999, 1_000, 12_345_678_901, u64::MAX, 42];
        let mut h = http::HeaderMap::new();
        h.insert("c", http::HeaderValue::from_static("old"));
        let mut n = NumberHeaders::new();
        for (k, v) in names.iter().zip(values) {
            n.push(k.clone(), v);
        }
        n.push(http::HeaderName::from_static("ninth"), 9); // past the capacity: ignored
        n.write_into(&mut h);
        for (k, v) in names.iter().zip(values) {
            assert_eq!(h.get_all(k).iter().count(), 1, "{k}");
            assert_eq!(
                h.get(k).map(|x| x.as_bytes()),
                Some(v.to_string().as_bytes()),
                "{k}"
            );
        }
        assert!(h.get("ninth").is_none());
        assert_eq!(h.len(), 8);
    }

    #[test]
    fn only_targets_the_uri_gives_back_are_rebuilt_from_parts() {
        let target = |t: &[u8]| {
            let h = RequestHeader::build("GET", t, None).expect("request header");
            target_round_trips(&h)
        };
        for t in [
            &b"/"[..],
            b"/a/b?c=1&d=%20",
            b"/x?",
            b"/caf%C3%A9",
            b"/caf\xc3\xa9",
        ] {
            assert!(target(t), "{}", String::from_utf8_lossy(t));
        }
        // Absolute-form keeps its verbatim target; a non-UTF-8 one its raw bytes.
        for t in [&b"http://x/a?b=1"[..], b"/a\xff", b"/a?q=\xfe"] {
            assert!(!target(t), "{}", String::from_utf8_lossy(t));
        }
    }

    #[test]
    fn ip_text_is_what_display_writes() {
        for ip in [
            "0.0.0.0",
            "1.2.3.4",
            "9.10.99.100",
            "10.0.0.1",
            "127.0.0.1",
            "192.168.100.255",
            "255.255.255.255",
            "::",
            "::1",
            "2001:db8::8a2e:370:7334",
            "::ffff:1.2.3.4",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "0:0:0:0:0:ffff:255.255.255.255",
        ] {
            let ip: IpAddr = ip.parse().unwrap_or_else(|e| panic!("{ip}: {e}"));
            assert_eq!(IpText::new().format_str(ip), ip.to_string());
        }
    }
}
