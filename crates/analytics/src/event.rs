//! The analytics event (DESIGN.md §6): one per request, built by the gateway from the request's
//! context, encoded as RowBinary for ClickHouse or as one JSON line for the NDJSON sink.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::rowbinary;

/// A column whose value is usually one of a few fixed words (a method, a verdict, a stage, a
/// reason code, …): borrowed from a `'static` string when it is one, so that building and
/// dropping an event does not allocate and free each of them (owned when decoded or unusual).
pub type Text = Cow<'static, str>;

/// A column whose value comes from the config (a route's name and path template, an upstream
/// target's address): the gateway keeps it as one `Arc<str>` per config, so an event takes a
/// reference instead of a copy of it.
pub type Shared = std::sync::Arc<str>;

/// One request as seen by the gateway. Field names are the column names of [`crate::names::column`].
///
/// Strings are owned (or `'static`, see [`Text`]): the gateway builds the event in its logging
/// phase, after the response, and hands it to [`crate::Analytics::record`], which never blocks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Event {
    /// Milliseconds since the Unix epoch when the request arrived.
    pub ts_ms: u64,
    /// Request id (`X-Request-Id`).
    pub request_id: String,
    /// Name of the matched route.
    pub route: Shared,
    /// Path template of the matched route.
    pub route_template: Shared,
    /// HTTP method.
    pub method: Text,
    /// Host.
    pub host: String,
    /// Path without the query string.
    pub path: String,
    /// HTTP version, e.g. `HTTP/1.1`.
    pub http_version: Text,
    /// Status sent to the client.
    pub status: u16,
    /// Bytes received from the client.
    pub bytes_in: u64,
    /// Bytes sent to the client.
    pub bytes_out: u64,
    /// Total time in the gateway, µs.
    pub latency_us: u64,
    /// Time waiting on the upstream, µs.
    pub upstream_latency_us: u64,
    /// Client IP as text.
    pub client_ip: String,
    /// ISO country code, or empty.
    pub country: String,
    /// User-Agent.
    pub user_agent: String,
    /// API key id (never the key), or empty.
    pub api_key_id: String,
    /// Usage plan name, or empty.
    pub usage_plan: String,
    /// Verdict, one of [`crate::names::verdict`].
    pub verdict: Text,
    /// Deciding stage, one of [`crate::names::stage`], or empty.
    pub decided_by: Text,
    /// Reason code, one of [`crate::names::reason`], or empty.
    pub reason: Text,
    /// WAF mode of the route (`block`, `detect`, `off`).
    pub waf_mode: Text,
    /// WAF anomaly score.
    pub anomaly_score: u32,
    /// Matched WAF rule ids.
    pub rule_ids: Vec<u32>,
    /// Attack classes of the matched rules.
    pub attack_classes: Vec<String>,
    /// Name of the IP list that matched, or empty.
    pub ip_list: String,
    /// Rate-limit decision, or empty.
    pub ratelimit: Text,
    /// Which limiter and key decided, or empty.
    pub ratelimit_key: String,
    /// Quota decision, or empty.
    pub quota: Text,
    /// Quota size of the period (0 when none).
    pub quota_limit: u64,
    /// Quota left after this request.
    pub quota_remaining: u64,
    /// Upstream address, or empty.
    pub upstream_addr: Shared,
    /// Upstream attempts.
    pub upstream_attempts: u8,
    /// True when the body went past the inspection limit uninspected (0/1 in JSON, as the
    /// `UInt8` column: ClickHouse 18.16 does not read `true` into a `UInt8`).
    #[serde(with = "bool_as_u8")]
    pub body_uninspected: bool,
}

mod bool_as_u8 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &bool, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(u8::from(*v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum B {
            Bool(bool),
            Int(u64),
        }
        Ok(match B::deserialize(d)? {
            B::Bool(b) => b,
            B::Int(n) => n != 0,
        })
    }
}

/// The bytes of an event row other than its longer strings: integers, one- or two-byte
/// lengths, the short fixed-word columns.
const FIXED_ROW_BYTES: usize = 192;

/// A list of strings as either owner has it: an [`Event`]'s `Vec<String>` or a gateway's
/// borrowed `&str`s.
#[derive(Debug, Clone, Copy)]
pub enum StrList<'a> {
    /// Owned strings (an [`Event`]).
    Strings(&'a [String]),
    /// Borrowed strings.
    Strs(&'a [&'a str]),
}

impl Default for StrList<'_> {
    fn default() -> Self {
        StrList::Strs(&[])
    }
}

impl<'a> StrList<'a> {
    /// How many strings.
    pub fn len(&self) -> usize {
        match self {
            StrList::Strings(v) => v.len(),
            StrList::Strs(v) => v.len(),
        }
    }

    /// True when there is none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The strings, in order.
    pub fn iter(&self) -> impl Iterator<Item = &'a str> + 'a {
        let (owned, borrowed): (&'a [String], &'a [&'a str]) = match *self {
            StrList::Strings(v) => (v, &[]),
            StrList::Strs(v) => (&[], v),
        };
        owned
            .iter()
            .map(String::as_str)
            .chain(borrowed.iter().copied())
    }
}

/// One request's event, borrowed from wherever its values live: the gateway builds one from the
/// request's context without copying a string, and the ClickHouse sink encodes it straight into
/// the batch being filled ([`crate::Analytics::record_ref`]). Same fields as [`Event`].
#[derive(Debug, Clone, Copy)]
#[allow(missing_docs)]
pub struct EventRef<'a> {
    pub ts_ms: u64,
    pub request_id: &'a str,
    pub route: Option<&'a Shared>,
    pub route_template: Option<&'a Shared>,
    pub method: &'a Text,
    pub host: &'a str,
    pub path: &'a str,
    pub http_version: &'a Text,
    pub status: u16,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub latency_us: u64,
    pub upstream_latency_us: u64,
    pub client_ip: &'a str,
    pub country: &'a str,
    pub user_agent: &'a str,
    pub api_key_id: &'a str,
    pub usage_plan: &'a str,
    pub verdict: &'a Text,
    pub decided_by: &'a Text,
    pub reason: &'a Text,
    pub waf_mode: &'a Text,
    pub anomaly_score: u32,
    pub rule_ids: &'a [u32],
    pub attack_classes: StrList<'a>,
    pub ip_list: &'a str,
    pub ratelimit: &'a Text,
    pub ratelimit_key: &'a str,
    pub quota: &'a Text,
    pub quota_limit: u64,
    pub quota_remaining: u64,
    pub upstream_addr: Option<&'a Shared>,
    pub upstream_attempts: u8,
    pub body_uninspected: bool,
}

impl EventRef<'_> {
    /// Appends this event as one RowBinary row in the column order of
    /// [`crate::names::column::EVENTS`], with `batch_id` as the last column.
    pub fn encode_row_binary(&self, batch_id: u64, out: &mut Vec<u8>) {
        // One reservation for the row's variable part (lengths of at most two bytes each, the
        // common case) and its fixed part, so the writes below do not grow the buffer.
        out.reserve(
            FIXED_ROW_BYTES
                + self.request_id.len()
                + self.host.len()
                + self.path.len()
                + self.user_agent.len()
                + self.client_ip.len()
                + 4 * self.rule_ids.len(),
        );
        let secs = u32::try_from(self.ts_ms / 1000).unwrap_or(u32::MAX);
        rowbinary::put_u32(out, secs);
        rowbinary::put_u64(out, self.ts_ms);
        rowbinary::put_str(out, self.request_id);
        rowbinary::put_str(out, self.route.map_or("", |s| s));
        rowbinary::put_str(out, self.route_template.map_or("", |s| s));
        rowbinary::put_str(out, self.method);
        rowbinary::put_str(out, self.host);
        rowbinary::put_str(out, self.path);
        rowbinary::put_str(out, self.http_version);
        rowbinary::put_u16(out, self.status);
        rowbinary::put_u64(out, self.bytes_in);
        rowbinary::put_u64(out, self.bytes_out);
        rowbinary::put_u64(out, self.latency_us);
        rowbinary::put_u64(out, self.upstream_latency_us);
        rowbinary::put_str(out, self.client_ip);
        rowbinary::put_str(out, self.country);
        rowbinary::put_str(out, self.user_agent);
        rowbinary::put_str(out, self.api_key_id);
        rowbinary::put_str(out, self.usage_plan);
        rowbinary::put_str(out, self.verdict);
        rowbinary::put_str(out, self.decided_by);
        rowbinary::put_str(out, self.reason);
        rowbinary::put_str(out, self.waf_mode);
        rowbinary::put_u32(out, self.anomaly_score);
        rowbinary::put_varint(out, self.rule_ids.len() as u64);
        for id in self.rule_ids {
            rowbinary::put_u32(out, *id);
        }
        rowbinary::put_varint(out, self.attack_classes.len() as u64);
        for class in self.attack_classes.iter() {
            rowbinary::put_str(out, class);
        }
        rowbinary::put_str(out, self.ip_list);
        rowbinary::put_str(out, self.ratelimit);
        rowbinary::put_str(out, self.ratelimit_key);
        rowbinary::put_str(out, self.quota);
        rowbinary::put_u64(out, self.quota_limit);
        rowbinary::put_u64(out, self.quota_remaining);
        rowbinary::put_str(out, self.upstream_addr.map_or("", |s| s));
        out.push(self.upstream_attempts);
        out.push(u8::from(self.body_uninspected));
        rowbinary::put_u64(out, batch_id);
    }

    /// An owned copy (for the sinks that queue events: NDJSON, none).
    pub fn to_event(&self) -> Event {
        Event {
            ts_ms: self.ts_ms,
            request_id: self.request_id.to_owned(),
            route: self.route.cloned().unwrap_or_default(),
            route_template: self.route_template.cloned().unwrap_or_default(),
            method: self.method.clone(),
            host: self.host.to_owned(),
            path: self.path.to_owned(),
            http_version: self.http_version.clone(),
            status: self.status,
            bytes_in: self.bytes_in,
            bytes_out: self.bytes_out,
            latency_us: self.latency_us,
            upstream_latency_us: self.upstream_latency_us,
            client_ip: self.client_ip.to_owned(),
            country: self.country.to_owned(),
            user_agent: self.user_agent.to_owned(),
            api_key_id: self.api_key_id.to_owned(),
            usage_plan: self.usage_plan.to_owned(),
            verdict: self.verdict.clone(),
            decided_by: self.decided_by.clone(),
            reason: self.reason.clone(),
            waf_mode: self.waf_mode.clone(),
            anomaly_score: self.anomaly_score,
            rule_ids: self.rule_ids.to_vec(),
            attack_classes: self.attack_classes.iter().map(str::to_owned).collect(),
            ip_list: self.ip_list.to_owned(),
            ratelimit: self.ratelimit.clone(),
            ratelimit_key: self.ratelimit_key.to_owned(),
            quota: self.quota.clone(),
            quota_limit: self.quota_limit,
            quota_remaining: self.quota_remaining,
            upstream_addr: self.upstream_addr.cloned().unwrap_or_default(),
            upstream_attempts: self.upstream_attempts,
            body_uninspected: self.body_uninspected,
        }
    }
}

impl Event {
    /// This event, borrowed.
    pub fn as_event_ref(&self) -> EventRef<'_> {
        EventRef {
            ts_ms: self.ts_ms,
            request_id: &self.request_id,
            route: Some(&self.route),
            route_template: Some(&self.route_template),
            method: &self.method,
            host: &self.host,
            path: &self.path,
            http_version: &self.http_version,
            status: self.status,
            bytes_in: self.bytes_in,
            bytes_out: self.bytes_out,
            latency_us: self.latency_us,
            upstream_latency_us: self.upstream_latency_us,
            client_ip: &self.client_ip,
            country: &self.country,
            user_agent: &self.user_agent,
            api_key_id: &self.api_key_id,
            usage_plan: &self.usage_plan,
            verdict: &self.verdict,
            decided_by: &self.decided_by,
            reason: &self.reason,
            waf_mode: &self.waf_mode,
            anomaly_score: self.anomaly_score,
            rule_ids: &self.rule_ids,
            attack_classes: StrList::Strings(&self.attack_classes),
            ip_list: &self.ip_list,
            ratelimit: &self.ratelimit,
            ratelimit_key: &self.ratelimit_key,
            quota: &self.quota,
            quota_limit: self.quota_limit,
            quota_remaining: self.quota_remaining,
            upstream_addr: Some(&self.upstream_addr),
            upstream_attempts: self.upstream_attempts,
            body_uninspected: self.body_uninspected,
        }
    }

    /// Appends this event as one RowBinary row (see [`EventRef::encode_row_binary`]).
    pub fn encode_row_binary(&self, batch_id: u64, out: &mut Vec<u8>) {
        self.as_event_ref().encode_row_binary(batch_id, out);
    }

    /// Decodes one row written by [`Event::encode_row_binary`], returning the event and its
    /// batch id. Used by the spool to filter rows on a partial replay, and by tests.
    pub fn decode_row_binary(
        r: &mut rowbinary::Reader<'_>,
    ) -> Result<(Event, u64), rowbinary::DecodeError> {
        let _secs = r.u32()?;
        let mut ev = Event {
            ts_ms: r.u64()?,
            request_id: r.string()?,
            route: r.string()?.into(),
            route_template: r.string()?.into(),
            method: r.string()?.into(),
            host: r.string()?,
            path: r.string()?,
            http_version: r.string()?.into(),
            status: r.u16()?,
            bytes_in: r.u64()?,
            bytes_out: r.u64()?,
            latency_us: r.u64()?,
            upstream_latency_us: r.u64()?,
            client_ip: r.string()?,
            country: r.string()?,
            user_agent: r.string()?,
            api_key_id: r.string()?,
            usage_plan: r.string()?,
            verdict: r.string()?.into(),
            decided_by: r.string()?.into(),
            reason: r.string()?.into(),
            waf_mode: r.string()?.into(),
            anomaly_score: r.u32()?,
            ..Event::default()
        };
        let n = r.len()?;
        for _ in 0..n {
            ev.rule_ids.push(r.u32()?);
        }
        let n = r.len()?;
        for _ in 0..n {
            ev.attack_classes.push(r.string()?);
        }
        ev.ip_list = r.string()?;
        ev.ratelimit = r.string()?.into();
        ev.ratelimit_key = r.string()?;
        ev.quota = r.string()?.into();
        ev.quota_limit = r.u64()?;
        ev.quota_remaining = r.u64()?;
        ev.upstream_addr = r.string()?.into();
        ev.upstream_attempts = r.u8()?;
        ev.body_uninspected = r.u8()? != 0;
        let batch_id = r.u64()?;
        Ok((ev, batch_id))
    }

    /// Appends this event as one JSON line (ClickHouse `JSONEachRow`, with `ts` as
    /// `YYYY-MM-DD hh:mm:ss` UTC and every other column named as in the schema).
    pub fn write_json_line(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        #[derive(Serialize)]
        struct Line<'a> {
            ts: &'a str,
            #[serde(flatten)]
            ev: &'a Event,
        }
        let mut ts = [0u8; 19];
        let ts = format_datetime(self.ts_ms / 1000, &mut ts);
        serde_json::to_writer(&mut *out, &Line { ts, ev: self })?;
        out.push(b'\n');
        Ok(())
    }
}

/// Formats Unix seconds as `YYYY-MM-DD hh:mm:ss` (UTC) into `buf`, without allocating.
pub fn format_datetime(secs: u64, buf: &mut [u8; 19]) -> &str {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    let y = y.clamp(0, 9999) as u64;
    let digits = |v: u64, out: &mut [u8]| {
        let mut v = v;
        for slot in out.iter_mut().rev() {
            *slot = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    digits(y, &mut buf[0..4]);
    buf[4] = b'-';
    digits(m, &mut buf[5..7]);
    buf[7] = b'-';
    digits(d, &mut buf[8..10]);
    buf[10] = b' ';
    digits(hh, &mut buf[11..13]);
    buf[13] = b':';
    digits(mm, &mut buf[14..16]);
    buf[16] = b':';
    digits(ss, &mut buf[17..19]);
    // Only ASCII digits and separators were written.
    std::str::from_utf8(buf).unwrap_or("1970-01-01 00:00:00")
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
pub fn civil_from_days(z: i64) -> (i64, u64, u64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u64;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u64;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetime_formatting_matches_known_instants() {
        let mut b = [0u8; 19];
        assert_eq!(format_datetime(0, &mut b), "1970-01-01 00:00:00");
        assert_eq!(format_datetime(951_782_400, &mut b), "2000-02-29 00:00:00");
        assert_eq!(
            format_datetime(1_795_992_001, &mut b),
            "2026-11-29 22:40:01"
        );
    }

    #[test]
    fn row_binary_round_trips() {
        let ev = Event {
            ts_ms: 1_795_992_001_123,
            request_id: "r-1".into(),
            route: "api".into(),
            status: 403,
            rule_ids: vec![942100, 941100],
            attack_classes: vec!["sqli".into(), "xss".into()],
            anomaly_score: 10,
            upstream_attempts: 2,
            body_uninspected: true,
            quota_remaining: 7,
            ..Event::default()
        };
        let mut buf = Vec::new();
        ev.encode_row_binary(42, &mut buf);
        ev.encode_row_binary(43, &mut buf);
        let mut r = rowbinary::Reader::new(&buf);
        assert_eq!(
            Event::decode_row_binary(&mut r).ok(),
            Some((ev.clone(), 42))
        );
        assert_eq!(Event::decode_row_binary(&mut r).ok(), Some((ev, 43)));
        assert!(r.is_empty());
    }

    #[test]
    fn truncated_row_is_an_error_not_a_panic() {
        let ev = Event {
            request_id: "abc".into(),
            ..Event::default()
        };
        let mut buf = Vec::new();
        ev.encode_row_binary(1, &mut buf);
        for cut in 0..buf.len() {
            let mut r = rowbinary::Reader::new(&buf[..cut]);
            assert!(Event::decode_row_binary(&mut r).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn json_line_has_every_column() {
        let ev = Event {
            ts_ms: 1_000,
            request_id: "x".into(),
            ..Event::default()
        };
        let mut out = Vec::new();
        ev.write_json_line(&mut out).ok();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap_or_default();
        for (col, _) in crate::names::column::EVENTS {
            if *col == crate::names::column::BATCH_ID {
                continue;
            }
            assert!(v.get(col).is_some(), "missing {col} in {v}");
        }
        assert_eq!(v["ts"], "1970-01-01 00:00:01");
        assert_eq!(v["body_uninspected"], 0);
        let back: Result<Event, _> = serde_json::from_slice(&out);
        assert_eq!(back.ok(), Some(ev));
    }
}
