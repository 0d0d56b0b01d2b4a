//! Turns the per-request record into the analytics event (DESIGN.md §6), borrowed from the
//! session and the context (`EventRef`). Runs in the logging phase, after the response;
//! `Analytics::record_ref` never blocks.

use crate::context::RequestCtx;
use palisade_analytics::event::{EventRef, StrList, Text};
use pingora::proxy::Session;
use std::time::{SystemTime, UNIX_EPOCH};

/// The first `Host` and `User-Agent` values (their first 512 characters), found in one walk
/// over the header entries: the two hashed look-ups it replaces cost more than walking the few
/// headers a request has.
fn host_and_user_agent(session: &Session) -> (&str, &str) {
    let (mut host, mut ua) = (None, None);
    for (name, value) in session.req_header().headers.iter() {
        if *name == http::header::HOST {
            host.get_or_insert(value);
        } else if *name == http::header::USER_AGENT {
            ua.get_or_insert(value);
        } else {
            continue;
        }
        if host.is_some() && ua.is_some() {
            break;
        }
    }
    (header_text(host), header_text(ua))
}

fn header_text(v: Option<&http::HeaderValue>) -> &str {
    v.and_then(|v| v.to_str().ok())
        .map(|s| first_chars(s, 512))
        .unwrap_or_default()
}

/// The first `n` characters of `s` (the whole when it is no longer: the common case, without
/// walking the characters).
fn first_chars(s: &str, n: usize) -> &str {
    if s.len() <= n {
        return s;
    }
    match s.char_indices().nth(n) {
        Some((end, _)) => &s[..end],
        None => s,
    }
}

/// `format!("{:?}", version)` without formatting.
fn version_text(v: http::Version) -> Text {
    let s = match v {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_11 => "HTTP/1.1",
        http::Version::HTTP_2 => "HTTP/2.0",
        http::Version::HTTP_3 => "HTTP/3.0",
        other => return format!("{other:?}").into(),
    };
    Text::Borrowed(s)
}

/// The method's name, borrowed for the standard methods (no allocation).
fn method_text(m: &http::Method) -> Text {
    const STANDARD: [&str; 9] = [
        "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT", "TRACE",
    ];
    let name = m.as_str();
    match STANDARD.iter().find(|s| **s == name) {
        Some(s) => Text::Borrowed(s),
        None => Text::Owned(name.to_owned()),
    }
}

/// Builds the event of one finished request, borrowed from the session and the context (no
/// string is copied), and hands it to `f` (which records it).
pub fn with_event<R>(
    session: &Session,
    ctx: &RequestCtx,
    status: u16,
    f: impl FnOnce(&EventRef<'_>) -> R,
) -> R {
    let req = session.req_header();
    let ts_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let (route, template, upstream_addr) = match ctx.route() {
        Some((rt, _)) => (
            Some(&rt.name),
            Some(&rt.template),
            ctx.backend
                .and_then(|i| rt.pool.backends.get(i))
                .map(|b| &b.address),
        ),
        None => (None, None, None),
    };
    let (waf_mode, score, rule_ids, classes) = match (&ctx.waf, ctx.route()) {
        (Some(insp), Some((rt, _))) => (
            rt.waf
                .as_ref()
                .map(|p| Text::Borrowed(waf_mode_text(p.mode)))
                .unwrap_or_default(),
            insp.score(),
            insp.rule_ids(),
            insp.classes(),
        ),
        _ => (Text::Borrowed(""), 0, Vec::new(), Vec::new()),
    };
    let detail_of = |st: &str| {
        ctx.decisions
            .iter()
            .find(|d| d.stage == st)
            .map(|d| d.detail.as_str())
            .unwrap_or_default()
    };
    let ratelimit = match &ctx.rate_limit {
        Some(d) if d.allowed => Text::Borrowed("allowed"),
        Some(_) => Text::Borrowed("limited"),
        None => Text::Borrowed(""),
    };
    let quota = match (&ctx.api_key, ctx.reason) {
        (Some(_), _) => Text::Borrowed("allowed"),
        (None, palisade_analytics::names::reason::QUOTA_EXCEEDED) => Text::Borrowed("exceeded"),
        _ => Text::Borrowed(""),
    };
    let method = method_text(&req.method);
    let http_version = version_text(req.version);
    let (verdict, decided_by, reason) = (
        Text::Borrowed(ctx.verdict),
        Text::Borrowed(ctx.decided_by),
        Text::Borrowed(ctx.reason),
    );
    let mut ip_text = crate::forward::IpText::new();
    let client_ip = match ctx.client_ip {
        Some(ip) => ip_text.format_str(ip),
        None => "",
    };
    let (host, user_agent) = host_and_user_agent(session);
    let ev = EventRef {
        ts_ms,
        request_id: ctx.request_id.as_str(),
        route,
        route_template: template,
        method: &method,
        host,
        path: first_chars(req.uri.path(), 1024),
        http_version: &http_version,
        status,
        bytes_in: ctx.bytes_in,
        bytes_out: session.as_ref().body_bytes_sent() as u64,
        latency_us: ctx.started.elapsed().as_micros() as u64,
        upstream_latency_us: ctx
            .upstream_latency
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0),
        client_ip,
        country: "",
        user_agent,
        api_key_id: match (&ctx.api_key, &ctx.rejected_key_id) {
            (Some(a), _) => a.key_id.as_str(),
            (None, Some(id)) => id.as_str(),
            (None, None) => "",
        },
        usage_plan: ctx.api_key.as_ref().map_or("", |a| a.plan.as_str()),
        verdict: &verdict,
        decided_by: &decided_by,
        reason: &reason,
        waf_mode: &waf_mode,
        anomaly_score: score,
        rule_ids: &rule_ids,
        attack_classes: StrList::Strs(&classes),
        ip_list: detail_of(palisade_analytics::names::stage::IP_REPUTATION),
        ratelimit: &ratelimit,
        ratelimit_key: detail_of(palisade_analytics::names::stage::THROTTLE),
        quota: &quota,
        quota_limit: ctx
            .api_key
            .as_ref()
            .and_then(|a| a.quota_limit)
            .unwrap_or(0),
        quota_remaining: ctx
            .api_key
            .as_ref()
            .and_then(|a| a.quota_remaining)
            .unwrap_or(0),
        upstream_addr,
        upstream_attempts: ctx.attempts.min(255) as u8,
        body_uninspected: ctx.body_state == crate::context::BodyState::OverLimit,
    };
    f(&ev)
}

/// The security-log record of a blocked (or detect-mode) request, from its event; `None` for
/// requests that were let through without a finding.
pub fn security(ctx: &RequestCtx, ev: &EventRef<'_>) -> Option<palisade_analytics::SecurityRecord> {
    use palisade_analytics::names::verdict;
    if ev.verdict != verdict::BLOCK && ev.verdict != verdict::DETECT {
        return None;
    }
    let rules = ctx.runtime.as_ref().and_then(|rt| rt.rules.clone());
    let threshold = ctx
        .route()
        .and_then(|(rt, _)| rt.waf.as_ref().map(|p| p.threshold))
        .unwrap_or(0);
    let matches = ctx
        .waf
        .as_ref()
        .map(|insp| {
            insp.matches()
                .iter()
                .map(|m| palisade_analytics::SecurityMatch {
                    rule_id: m.rule_id,
                    rule_name: rules
                        .as_ref()
                        .and_then(|r| r.rule(m.rule_id).map(|r| r.name.clone()))
                        .unwrap_or_default(),
                    attack_class: m.class.clone(),
                    target: m.target.clone(),
                    transforms: m.transforms.iter().map(|t| t.to_string()).collect(),
                    matched: m.matched.clone(),
                    score: m.score,
                })
                .collect()
        })
        .unwrap_or_default();
    Some(palisade_analytics::SecurityRecord {
        ts_ms: ev.ts_ms,
        request_id: ev.request_id.to_owned(),
        client_ip: ev.client_ip.to_owned(),
        method: ev.method.to_string(),
        host: ev.host.to_owned(),
        path: ev.path.to_owned(),
        route: ev.route.map_or_else(String::new, |r| r.to_string()),
        status: ev.status,
        verdict: ev.verdict.to_string(),
        decided_by: ev.decided_by.to_string(),
        reason: ev.reason.to_string(),
        waf_mode: ev.waf_mode.to_string(),
        anomaly_score: ev.anomaly_score,
        threshold,
        api_key_id: ev.api_key_id.to_owned(),
        user_agent: ev.user_agent.to_owned(),
        matches,
    })
}

/// The `waf_mode` column: the mode's lowercase name (its `Debug` form, lowercased).
fn waf_mode_text(m: palisade_waf::Mode) -> &'static str {
    match m {
        palisade_waf::Mode::Block => "block",
        palisade_waf::Mode::Detect => "detect",
        palisade_waf::Mode::Off => "off",
    }
}

#[cfg(test)]
mod tests {
    use super::{first_chars, method_text, version_text, waf_mode_text};

    #[test]
    fn method_text_is_the_method_name() {
        for m in [
            "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT", "TRACE",
            "PROPFIND",
        ] {
            let method = http::Method::from_bytes(m.as_bytes()).expect("method");
            let t = method_text(&method);
            assert_eq!(t, m);
            assert_eq!(matches!(t, std::borrow::Cow::Borrowed(_)), m != "PROPFIND");
        }
    }

    #[test]
    fn waf_mode_text_is_the_lowercase_debug_form() {
        for m in [
            palisade_waf::Mode::Block,
            palisade_waf::Mode::Detect,
            palisade_waf::Mode::Off,
        ] {
            assert_eq!(waf_mode_text(m), format!("{m:?}").to_lowercase());
        }
    }

    #[test]
    fn first_chars_counts_characters_not_bytes() {
        assert_eq!(first_chars("abc", 512), "abc");
        assert_eq!(first_chars("abcdef", 3), "abc");
        let long = "é".repeat(600); // 1,200 bytes, 600 characters
        assert_eq!(first_chars(&long, 512), "é".repeat(512));
        let exact = "é".repeat(256); // 512 bytes
        assert_eq!(first_chars(&exact, 512), exact);
    }

    #[test]
    fn version_text_is_the_debug_form() {
        for v in [
            http::Version::HTTP_09,
            http::Version::HTTP_10,
            http::Version::HTTP_11,
            http::Version::HTTP_2,
            http::Version::HTTP_3,
        ] {
            assert_eq!(version_text(v), format!("{v:?}"));
        }
    }
}
