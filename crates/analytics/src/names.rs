//! Every name shared between the gateway, the analytics schema, the metrics endpoint and the
//! dashboards lives here: reason codes, stage names, verdicts, metric names, column names.
//! A test checks that the dashboards use only names defined here.

/// Stages of the request pipeline (DESIGN.md §1), as recorded in the event's `decided_by` column.
pub mod stage {
    /// Route matching (no route, method not allowed).
    pub const ROUTER: &str = "router";
    /// Protocol enforcement (smuggling shapes, invalid headers).
    pub const PROTOCOL: &str = "protocol";
    /// Connection guards (per-IP cap, timeouts, size limits).
    pub const CONNECTION: &str = "connection";
    /// IP allow/deny lists, feeds and bans.
    pub const IP_REPUTATION: &str = "ip_reputation";
    /// DoS throttling (GCRA per IP, route, global).
    pub const THROTTLE: &str = "throttle";
    /// API key and usage plan.
    pub const API_KEY: &str = "api_key";
    /// The WAF.
    pub const WAF: &str = "waf";
    /// The upstream pool (502/504).
    pub const UPSTREAM: &str = "upstream";
    /// The gateway itself.
    pub const GATEWAY: &str = "gateway";
}

/// Verdicts recorded in the event's `verdict` column.
pub mod verdict {
    /// Passed every stage.
    pub const ALLOW: &str = "allow";
    /// Refused by a stage.
    pub const BLOCK: &str = "block";
    /// The WAF (or a limiter in detect mode) would have blocked, but the route is in detect mode.
    pub const DETECT: &str = "detect";
    /// The gateway answered itself without an upstream (CORS preflight, errors).
    pub const GATEWAY: &str = "gateway";
}

/// Reason codes in JSON error bodies and in the event's `reason` column. Clients can act on them.
pub mod reason {
    /// Reason code `no_route`.
    pub const NO_ROUTE: &str = "no_route";
    /// Reason code `method_not_allowed`.
    pub const METHOD_NOT_ALLOWED: &str = "method_not_allowed";
    /// Reason code `body_too_large`.
    pub const BODY_TOO_LARGE: &str = "body_too_large";
    /// Reason code `bad_request`.
    pub const BAD_REQUEST: &str = "bad_request";
    /// Reason code `protocol_violation`.
    pub const PROTOCOL_VIOLATION: &str = "protocol_violation";
    /// Reason code `upstream_unavailable`.
    pub const UPSTREAM_UNAVAILABLE: &str = "upstream_unavailable";
    /// Reason code `upstream_timeout`.
    pub const UPSTREAM_TIMEOUT: &str = "upstream_timeout";
    /// Reason code `upstream_error`.
    pub const UPSTREAM_ERROR: &str = "upstream_error";
    /// Reason code `ip_denied`.
    pub const IP_DENIED: &str = "ip_denied";
    /// Reason code `ip_banned`.
    pub const IP_BANNED: &str = "ip_banned";
    /// Reason code `rate_limited_ip`.
    pub const RATE_LIMITED_IP: &str = "rate_limited_ip";
    /// Reason code `rate_limited_route`.
    pub const RATE_LIMITED_ROUTE: &str = "rate_limited_route";
    /// Reason code `rate_limited_global`.
    pub const RATE_LIMITED_GLOBAL: &str = "rate_limited_global";
    /// Reason code `too_many_connections`.
    pub const TOO_MANY_CONNECTIONS: &str = "too_many_connections";
    /// Reason code `header_timeout`: the request header was not received in time (slowloris).
    pub const HEADER_TIMEOUT: &str = "header_timeout";
    /// Reason code `body_timeout`: no request body byte arrived within the body timeout.
    pub const BODY_TIMEOUT: &str = "body_timeout";
    /// Reason code `body_too_slow`: the request body arrived under the minimum rate.
    pub const BODY_TOO_SLOW: &str = "body_too_slow";
    /// Reason code `headers_too_large`: too many request header fields, or too many bytes.
    pub const HEADERS_TOO_LARGE: &str = "headers_too_large";
    /// Reason code `api_key_missing`.
    pub const API_KEY_MISSING: &str = "api_key_missing";
    /// Reason code `api_key_invalid`.
    pub const API_KEY_INVALID: &str = "api_key_invalid";
    /// Reason code `api_key_revoked`.
    pub const API_KEY_REVOKED: &str = "api_key_revoked";
    /// Reason code `api_key_expired`.
    pub const API_KEY_EXPIRED: &str = "api_key_expired";
    /// Reason code `rate_limited_key`.
    pub const RATE_LIMITED_KEY: &str = "rate_limited_key";
    /// Reason code `quota_exceeded`.
    pub const QUOTA_EXCEEDED: &str = "quota_exceeded";
    /// Reason code `waf_blocked`.
    pub const WAF_BLOCKED: &str = "waf_blocked";
    /// Reason code `body_uninspected`.
    pub const BODY_UNINSPECTED: &str = "body_uninspected";
    /// Reason code `state_unavailable`: the shared state (Redis) is unreachable and
    /// `state.on_failure` is `closed` (503).
    pub const STATE_UNAVAILABLE: &str = "state_unavailable";
}

/// Columns of the raw `events` table, in the order the writer encodes them (RowBinary) and the
/// migrations declare them. Dashboards may use only these names (a test checks it).
pub mod column {
    /// Event time, whole seconds (UTC). `DateTime`: valid on ClickHouse 18.16 and 26.x.
    pub const TS: &str = "ts";
    /// Event time in milliseconds since the Unix epoch (`UInt64`), for sub-second order.
    pub const TS_MS: &str = "ts_ms";
    /// The request id (`X-Request-Id`), generated or propagated by the gateway.
    pub const REQUEST_ID: &str = "request_id";
    /// Name of the route that matched (empty when none did).
    pub const ROUTE: &str = "route";
    /// The route's path template, e.g. `/users/{id}`.
    pub const ROUTE_TEMPLATE: &str = "route_template";
    /// HTTP method.
    pub const METHOD: &str = "method";
    /// Host header (or :authority).
    pub const HOST: &str = "host";
    /// Request path without the query string.
    pub const PATH: &str = "path";
    /// HTTP version, e.g. `HTTP/1.1`, `HTTP/2`.
    pub const HTTP_VERSION: &str = "http_version";
    /// Response status sent to the client.
    pub const STATUS: &str = "status";
    /// Request bytes received (headers and body).
    pub const BYTES_IN: &str = "bytes_in";
    /// Response bytes sent.
    pub const BYTES_OUT: &str = "bytes_out";
    /// Total time in the gateway, microseconds.
    pub const LATENCY_US: &str = "latency_us";
    /// Time spent waiting on the upstream, microseconds (0 when none was contacted).
    pub const UPSTREAM_LATENCY_US: &str = "upstream_latency_us";
    /// Client IP address as text (IPv4 or IPv6).
    pub const CLIENT_IP: &str = "client_ip";
    /// ISO country code when a geo database is configured, else empty.
    pub const COUNTRY: &str = "country";
    /// User-Agent header.
    pub const USER_AGENT: &str = "user_agent";
    /// API key id (never the key itself), empty when none.
    pub const API_KEY_ID: &str = "api_key_id";
    /// Usage plan of the key, empty when none.
    pub const USAGE_PLAN: &str = "usage_plan";
    /// One of [`super::verdict`].
    pub const VERDICT: &str = "verdict";
    /// The stage that decided ([`super::stage`]), empty when all passed.
    pub const DECIDED_BY: &str = "decided_by";
    /// One of [`super::reason`], empty when allowed.
    pub const REASON: &str = "reason";
    /// WAF mode of the route: `block`, `detect` or `off`.
    pub const WAF_MODE: &str = "waf_mode";
    /// WAF anomaly score (sum of matched rule severities).
    pub const ANOMALY_SCORE: &str = "anomaly_score";
    /// Ids of the WAF rules that matched.
    pub const RULE_IDS: &str = "rule_ids";
    /// Attack classes of the matched rules (`sqli`, `xss`, …).
    pub const ATTACK_CLASSES: &str = "attack_classes";
    /// Name of the IP list that matched (allow or deny), empty when none.
    pub const IP_LIST: &str = "ip_list";
    /// Rate-limit decision, e.g. `allow`, `limited`; empty when no limiter applied.
    pub const RATELIMIT: &str = "ratelimit";
    /// Which limiter decided and with which key, e.g. `ip:203.0.113.9`.
    pub const RATELIMIT_KEY: &str = "ratelimit_key";
    /// Quota decision, e.g. `allow`, `exceeded`; empty when no quota applied.
    pub const QUOTA: &str = "quota";
    /// Quota size for the current period (0 when none).
    pub const QUOTA_LIMIT: &str = "quota_limit";
    /// Quota left after this request.
    pub const QUOTA_REMAINING: &str = "quota_remaining";
    /// Upstream address that answered, empty when none.
    pub const UPSTREAM_ADDR: &str = "upstream_addr";
    /// Number of upstream attempts (retries included).
    pub const UPSTREAM_ATTEMPTS: &str = "upstream_attempts";
    /// 1 when the body passed past the inspection limit uninspected.
    pub const BODY_UNINSPECTED: &str = "body_uninspected";
    /// Id of the writer batch the row came in (used to replay the spool exactly once).
    pub const BATCH_ID: &str = "batch_id";

    /// Every column of the `events` table with its ClickHouse type, in encoding order. The
    /// types are valid on ClickHouse 18.16 and on current releases.
    pub const EVENTS: &[(&str, &str)] = &[
        (TS, "DateTime"),
        (TS_MS, "UInt64"),
        (REQUEST_ID, "String"),
        (ROUTE, "String"),
        (ROUTE_TEMPLATE, "String"),
        (METHOD, "String"),
        (HOST, "String"),
        (PATH, "String"),
        (HTTP_VERSION, "String"),
        (STATUS, "UInt16"),
        (BYTES_IN, "UInt64"),
        (BYTES_OUT, "UInt64"),
        (LATENCY_US, "UInt64"),
        (UPSTREAM_LATENCY_US, "UInt64"),
        (CLIENT_IP, "String"),
        (COUNTRY, "String"),
        (USER_AGENT, "String"),
        (API_KEY_ID, "String"),
        (USAGE_PLAN, "String"),
        (VERDICT, "String"),
        (DECIDED_BY, "String"),
        (REASON, "String"),
        (WAF_MODE, "String"),
        (ANOMALY_SCORE, "UInt32"),
        (RULE_IDS, "Array(UInt32)"),
        (ATTACK_CLASSES, "Array(String)"),
        (IP_LIST, "String"),
        (RATELIMIT, "String"),
        (RATELIMIT_KEY, "String"),
        (QUOTA, "String"),
        (QUOTA_LIMIT, "UInt64"),
        (QUOTA_REMAINING, "UInt64"),
        (UPSTREAM_ADDR, "String"),
        (UPSTREAM_ATTEMPTS, "UInt8"),
        (BODY_UNINSPECTED, "UInt8"),
        (BATCH_ID, "UInt64"),
    ];

    /// Columns of the rollup tables (besides those of [`EVENTS`] they repeat).
    pub const MINUTE: &str = "minute";
    /// `status / 100` (2 for 2xx, …), in the rollups.
    pub const STATUS_CLASS: &str = "status_class";
    /// One attack class (the rollups ARRAY JOIN `attack_classes`).
    pub const ATTACK_CLASS: &str = "attack_class";
    /// One rule id (the rollups ARRAY JOIN `rule_ids`).
    pub const RULE_ID: &str = "rule_id";
    /// Aggregate state: number of requests.
    pub const REQUESTS: &str = "requests";
    /// Aggregate state: number of rule hits.
    pub const HITS: &str = "hits";
    /// Aggregate state: sum of `bytes_in`.
    pub const BYTES_IN_SUM: &str = "bytes_in_sum";
    /// Aggregate state: sum of `bytes_out`.
    pub const BYTES_OUT_SUM: &str = "bytes_out_sum";
    /// Aggregate state: quantiles (0.5, 0.9, 0.95, 0.99) of `latency_us`.
    pub const LATENCY_Q: &str = "latency_q";
    /// Aggregate state: quantiles (0.5, 0.9, 0.95, 0.99) of `upstream_latency_us`.
    pub const UPSTREAM_LATENCY_Q: &str = "upstream_latency_q";
    /// Aggregate state: largest anomaly score.
    pub const MAX_SCORE: &str = "max_score";
    /// Aggregate state: smallest `quota_remaining` seen.
    pub const MIN_QUOTA_REMAINING: &str = "min_quota_remaining";
    /// Aggregate state: largest `quota_limit` seen.
    pub const MAX_QUOTA_LIMIT: &str = "max_quota_limit";
    /// Columns of `schema_migrations`.
    pub const VERSION: &str = "version";
    /// Columns of `schema_migrations`.
    pub const NAME: &str = "name";
    /// Columns of `schema_migrations`.
    pub const APPLIED_AT: &str = "applied_at";

    /// Rollup and bookkeeping column names (not in `events`).
    pub const OTHER: &[&str] = &[
        MINUTE,
        STATUS_CLASS,
        ATTACK_CLASS,
        RULE_ID,
        REQUESTS,
        HITS,
        BYTES_IN_SUM,
        BYTES_OUT_SUM,
        LATENCY_Q,
        UPSTREAM_LATENCY_Q,
        MAX_SCORE,
        MIN_QUOTA_REMAINING,
        MAX_QUOTA_LIMIT,
        VERSION,
        NAME,
        APPLIED_AT,
    ];
}

/// Tables and materialized views created by the migrations.
pub mod table {
    /// Raw events, one row per request, partitioned by day.
    pub const EVENTS: &str = "events";
    /// Per-minute rollup: requests, blocks by stage, status classes, latency quantiles.
    pub const EVENTS_1M: &str = "events_1m";
    /// Per-minute rollup per attack class.
    pub const ATTACKS_1M: &str = "attacks_1m";
    /// Per-minute rollup per WAF rule id.
    pub const RULES_1M: &str = "rules_1m";
    /// Per-minute rollup per API key.
    pub const API_KEYS_1M: &str = "api_keys_1m";
    /// Applied migration versions.
    pub const SCHEMA_MIGRATIONS: &str = "schema_migrations";
    /// Materialized view feeding [`EVENTS_1M`].
    pub const EVENTS_1M_MV: &str = "events_1m_mv";
    /// Materialized view feeding [`ATTACKS_1M`].
    pub const ATTACKS_1M_MV: &str = "attacks_1m_mv";
    /// Materialized view feeding [`RULES_1M`].
    pub const RULES_1M_MV: &str = "rules_1m_mv";
    /// Materialized view feeding [`API_KEYS_1M`].
    pub const API_KEYS_1M_MV: &str = "api_keys_1m_mv";
    /// Every table and view name.
    pub const ALL: &[&str] = &[
        EVENTS,
        EVENTS_1M,
        ATTACKS_1M,
        RULES_1M,
        API_KEYS_1M,
        SCHEMA_MIGRATIONS,
        EVENTS_1M_MV,
        ATTACKS_1M_MV,
        RULES_1M_MV,
        API_KEYS_1M_MV,
    ];
}

/// Prometheus metric names for [`crate::Stats`], exported by the gateway's `/metrics`.
pub mod metric {
    /// Gauge: events waiting in the in-memory queue.
    pub const QUEUE_DEPTH: &str = "palisade_analytics_queue_depth";
    /// Gauge: capacity of the in-memory queue.
    pub const QUEUE_CAPACITY: &str = "palisade_analytics_queue_capacity";
    /// Counter: events accepted by `record`.
    pub const EVENTS_RECEIVED: &str = "palisade_analytics_events_received_total";
    /// Counter: events written to the sink (ClickHouse or NDJSON), replays included.
    pub const EVENTS_WRITTEN: &str = "palisade_analytics_events_written_total";
    /// Counter: batches written to the sink.
    pub const BATCHES_WRITTEN: &str = "palisade_analytics_batches_written_total";
    /// Gauge: bytes held in the disk spool.
    pub const SPOOL_BYTES: &str = "palisade_analytics_spool_bytes";
    /// Gauge: segment files in the disk spool.
    pub const SPOOL_SEGMENTS: &str = "palisade_analytics_spool_segments";
    /// Counter: events written to the spool.
    pub const EVENTS_SPOOLED: &str = "palisade_analytics_events_spooled_total";
    /// Counter: events replayed from the spool into ClickHouse.
    pub const EVENTS_REPLAYED: &str = "palisade_analytics_events_replayed_total";
    /// Counter: spooled events skipped on replay because ClickHouse already had them.
    pub const EVENTS_DEDUPED: &str = "palisade_analytics_events_deduplicated_total";
    /// Counter: events dropped, labelled `cause="queue_full"|"spool_full"`.
    pub const EVENTS_DROPPED: &str = "palisade_analytics_events_dropped_total";
    /// Counter: failed writes to the sink.
    pub const WRITE_ERRORS: &str = "palisade_analytics_write_errors_total";
    /// Counter: security log records written.
    pub const SECURITY_WRITTEN: &str = "palisade_security_log_records_total";
    /// Counter: security log records dropped (queue full or write error).
    pub const SECURITY_DROPPED: &str = "palisade_security_log_dropped_total";
    /// Label value of [`EVENTS_DROPPED`] for a full in-memory queue.
    pub const CAUSE_QUEUE_FULL: &str = "queue_full";
    /// Label value of [`EVENTS_DROPPED`] for a full spool.
    pub const CAUSE_SPOOL_FULL: &str = "spool_full";
}
