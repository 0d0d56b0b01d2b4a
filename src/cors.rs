//! CORS: preflight requests are answered by the gateway (they never reach the upstream), and
//! simple/actual requests from an allowed origin get the `Access-Control-Allow-*` headers added to
//! the response. A disallowed origin gets no CORS headers (the browser then blocks it); the
//! request itself is not refused, as in Amazon API Gateway and Kong.

use crate::config::raw::RawCors;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use serde::Serialize;

/// A compiled CORS policy.
#[derive(Debug, Clone, Serialize)]
pub struct Cors {
    any_origin: bool,
    origins: Vec<String>,
    #[serde(skip)]
    allow_methods: HeaderValue,
    #[serde(skip)]
    allow_headers: Option<HeaderValue>,
    #[serde(skip)]
    expose_headers: Option<HeaderValue>,
    allow_credentials: bool,
    #[serde(skip)]
    max_age: HeaderValue,
}

const DEFAULT_METHODS: &str = "GET, POST, PUT, PATCH, DELETE, OPTIONS, HEAD";

fn join_header(v: &[String]) -> Result<Option<HeaderValue>, String> {
    if v.is_empty() {
        return Ok(None);
    }
    HeaderValue::from_str(&v.join(", "))
        .map(Some)
        .map_err(|_| format!("invalid header list `{}`", v.join(", ")))
}

impl Cors {
    /// Validate and compile a raw policy.
    pub fn compile(raw: &RawCors) -> Result<Self, String> {
        if raw.allow_origins.is_empty() {
            return Err("allow_origins is empty (use `[\"*\"]` or list the origins)".into());
        }
        let any_origin = raw.allow_origins.iter().any(|o| o == "*");
        if any_origin && raw.allow_credentials {
            return Err(
                "allow_credentials cannot be combined with origin `*` (browsers reject it; list the origins)"
                    .into(),
            );
        }
        for m in &raw.allow_methods {
            Method::from_bytes(m.as_bytes()).map_err(|_| format!("invalid method `{m}`"))?;
        }
        let allow_methods = match join_header(&raw.allow_methods)? {
            Some(v) => v,
            None => HeaderValue::from_static(DEFAULT_METHODS),
        };
        Ok(Self {
            any_origin,
            origins: raw
                .allow_origins
                .iter()
                .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
                .collect(),
            allow_methods,
            allow_headers: join_header(&raw.allow_headers)?,
            expose_headers: join_header(&raw.expose_headers)?,
            allow_credentials: raw.allow_credentials,
            max_age: HeaderValue::from(raw.max_age_secs),
        })
    }

    fn origin_allowed(&self, origin: &[u8]) -> bool {
        self.any_origin
            || self
                .origins
                .iter()
                .any(|o| o.as_bytes().eq_ignore_ascii_case(origin))
    }

    /// Is this request a CORS preflight (`OPTIONS` with `Origin` and
    /// `Access-Control-Request-Method`)?
    pub fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
        method == Method::OPTIONS
            && headers.contains_key(http::header::ORIGIN)
            && headers.contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD)
    }

    /// Headers of the gateway's answer to a preflight; `None` when the origin is not allowed
    /// (answered 403 without CORS headers).
    pub fn preflight_headers(&self, req: &HeaderMap) -> Option<Vec<(HeaderName, HeaderValue)>> {
        let origin = req.get(http::header::ORIGIN)?;
        if !self.origin_allowed(origin.as_bytes()) {
            return None;
        }
        let mut out = self.origin_headers(origin);
        out.push((
            http::header::ACCESS_CONTROL_ALLOW_METHODS,
            self.allow_methods.clone(),
        ));
        let allow_headers = match (
            &self.allow_headers,
            req.get(http::header::ACCESS_CONTROL_REQUEST_HEADERS),
        ) {
            (Some(h), _) => Some(h.clone()),
            (None, Some(asked)) => Some(asked.clone()),
            (None, None) => None,
        };
        if let Some(h) = allow_headers {
            out.push((http::header::ACCESS_CONTROL_ALLOW_HEADERS, h));
        }
        out.push((http::header::ACCESS_CONTROL_MAX_AGE, self.max_age.clone()));
        Some(out)
    }

    fn origin_headers(&self, origin: &HeaderValue) -> Vec<(HeaderName, HeaderValue)> {
        let mut out = Vec::with_capacity(5);
        if self.any_origin {
            out.push((
                http::header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            ));
        } else {
            out.push((http::header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone()));
            out.push((http::header::VARY, HeaderValue::from_static("Origin")));
        }
        if self.allow_credentials {
            out.push((
                http::header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            ));
        }
        out
    }

    /// Headers added to an actual (non-preflight) response for the request's origin.
    pub fn response_headers(
        &self,
        req_origin: Option<&HeaderValue>,
    ) -> Vec<(HeaderName, HeaderValue)> {
        let Some(origin) = req_origin else {
            return Vec::new();
        };
        if !self.origin_allowed(origin.as_bytes()) {
            return Vec::new();
        }
        let mut out = self.origin_headers(origin);
        if let Some(e) = &self.expose_headers {
            out.push((http::header::ACCESS_CONTROL_EXPOSE_HEADERS, e.clone()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cors(origins: &[&str], creds: bool) -> Result<Cors, String> {
        Cors::compile(&RawCors {
            allow_origins: origins.iter().map(|s| s.to_string()).collect(),
            allow_methods: vec![],
            allow_headers: vec![],
            expose_headers: vec!["X-Request-Id".into()],
            allow_credentials: creds,
            max_age_secs: 60,
        })
    }

    #[test]
    fn preflight_from_allowed_origin_echoes_origin_and_requested_headers() {
        let c = cors(&["https://app.example.com"], true).expect("compile");
        let mut h = HeaderMap::new();
        h.insert(
            "origin",
            HeaderValue::from_static("https://app.example.com"),
        );
        h.insert(
            "access-control-request-method",
            HeaderValue::from_static("PUT"),
        );
        h.insert(
            "access-control-request-headers",
            HeaderValue::from_static("x-api-key"),
        );
        assert!(Cors::is_preflight(&Method::OPTIONS, &h));
        let out = c.preflight_headers(&h).expect("allowed");
        let get = |n: &str| {
            out.iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.to_str().unwrap_or(""))
        };
        assert_eq!(
            get("access-control-allow-origin"),
            Some("https://app.example.com")
        );
        assert_eq!(get("access-control-allow-headers"), Some("x-api-key"));
        assert_eq!(get("access-control-allow-credentials"), Some("true"));
        assert_eq!(get("access-control-max-age"), Some("60"));
        assert_eq!(get("vary"), Some("Origin"));
    }

    #[test]
    fn other_origins_get_nothing() {
        let c = cors(&["https://app.example.com"], false).expect("compile");
        let mut h = HeaderMap::new();
        h.insert("origin", HeaderValue::from_static("https://evil.example"));
        h.insert(
            "access-control-request-method",
            HeaderValue::from_static("GET"),
        );
        assert!(c.preflight_headers(&h).is_none());
        assert!(c.response_headers(h.get("origin")).is_empty());
    }

    #[test]
    fn wildcard_with_credentials_is_a_config_error() {
        assert!(cors(&["*"], true)
            .unwrap_err()
            .contains("allow_credentials"));
    }
}
