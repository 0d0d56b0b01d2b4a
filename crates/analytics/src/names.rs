//! Every name shared between the gateway, the analytics schema, the metrics endpoint and the
//! dashboards lives here: reason codes, stage names, verdicts, metric names, column names.
//! A test checks that the dashboards use only names defined here.

/// Stages of the request pipeline (DESIGN.md §1), as recorded in the event's `decided_by` column.
pub mod stage {
    pub const ROUTER: &str = "router";
    pub const PROTOCOL: &str = "protocol";
    pub const CONNECTION: &str = "connection";
    pub const IP_REPUTATION: &str = "ip_reputation";
    pub const THROTTLE: &str = "throttle";
    pub const API_KEY: &str = "api_key";
    pub const WAF: &str = "waf";
    pub const UPSTREAM: &str = "upstream";
    pub const GATEWAY: &str = "gateway";
}

/// Verdicts recorded in the event's `verdict` column.
pub mod verdict {
    pub const ALLOW: &str = "allow";
    pub const BLOCK: &str = "block";
    /// The WAF (or a limiter in detect mode) would have blocked, but the route is in detect mode.
    pub const DETECT: &str = "detect";
    /// The gateway answered itself without an upstream (CORS preflight, errors).
    pub const GATEWAY: &str = "gateway";
}

/// Reason codes in JSON error bodies and in the event's `reason` column. Clients can act on them.
pub mod reason {
    pub const NO_ROUTE: &str = "no_route";
    pub const METHOD_NOT_ALLOWED: &str = "method_not_allowed";
    pub const BODY_TOO_LARGE: &str = "body_too_large";
    pub const BAD_REQUEST: &str = "bad_request";
    pub const PROTOCOL_VIOLATION: &str = "protocol_violation";
    pub const UPSTREAM_UNAVAILABLE: &str = "upstream_unavailable";
    pub const UPSTREAM_TIMEOUT: &str = "upstream_timeout";
    pub const UPSTREAM_ERROR: &str = "upstream_error";
    pub const IP_DENIED: &str = "ip_denied";
    pub const IP_BANNED: &str = "ip_banned";
    pub const RATE_LIMITED_IP: &str = "rate_limited_ip";
    pub const RATE_LIMITED_ROUTE: &str = "rate_limited_route";
    pub const RATE_LIMITED_GLOBAL: &str = "rate_limited_global";
    pub const TOO_MANY_CONNECTIONS: &str = "too_many_connections";
    pub const API_KEY_MISSING: &str = "api_key_missing";
    pub const API_KEY_INVALID: &str = "api_key_invalid";
    pub const API_KEY_REVOKED: &str = "api_key_revoked";
    pub const API_KEY_EXPIRED: &str = "api_key_expired";
    pub const RATE_LIMITED_KEY: &str = "rate_limited_key";
    pub const QUOTA_EXCEEDED: &str = "quota_exceeded";
    pub const WAF_BLOCKED: &str = "waf_blocked";
    pub const BODY_UNINSPECTED: &str = "body_uninspected";
}
