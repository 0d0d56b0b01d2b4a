//! The admin listener (default `127.0.0.1:9901`): `/healthz`, `/readyz`, `/metrics`, `/config`
//! (secrets redacted), `GET /bans`, `POST /bans`, `DELETE /bans/{ip}`, the key management API
//! under `/keys` and `POST /reload`. Mutations and every `/keys` call need
//! `Authorization: Bearer <token>`; with no token configured, they are refused. [`call`] is the
//! small blocking client the command line (`palisade bans`) uses.

use crate::state::Shared;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::sync::Arc;
use tokio::net::TcpListener;

type Resp = Response<Full<Bytes>>;

fn json(status: StatusCode, v: serde_json::Value) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(v.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

fn text(status: StatusCode, body: String, ctype: &'static str) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(ctype),
    );
    r
}

/// Constant-time comparison of the presented bearer token.
fn authorized(shared: &Shared, req: &Request<Incoming>) -> bool {
    let Some(expected) = shared.admin_token.as_deref() else {
        return false;
    };
    let Some(got) = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    let (a, b) = (expected.as_bytes(), got.trim().as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn unauthorized() -> Resp {
    json(
        StatusCode::UNAUTHORIZED,
        serde_json::json!({"error": "unauthorized", "reason": "admin_token_required"}),
    )
}

fn bad_request(msg: impl Into<String>) -> Resp {
    json(
        StatusCode::BAD_REQUEST,
        serde_json::json!({"error": msg.into(), "reason": "bad_request"}),
    )
}

/// Admin request bodies are small JSON documents.
const MAX_ADMIN_BODY: usize = 64 * 1024;

/// Reads a small JSON body (`{}` when empty).
async fn json_body<T: serde::de::DeserializeOwned>(req: Request<Incoming>) -> Result<T, Resp> {
    let body = http_body_util::Limited::new(req.into_body(), MAX_ADMIN_BODY)
        .collect()
        .await
        .map_err(|e| bad_request(format!("cannot read the body: {e}")))?
        .to_bytes();
    let text: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        &body
    };
    serde_json::from_slice(text).map_err(|e| bad_request(format!("invalid JSON body: {e}")))
}

/// Write the ban state file now (an admin change must survive a crash right after it).
async fn persist_bans(shared: &Arc<Shared>) {
    if let Some(g) = shared.guard.load_full() {
        match tokio::task::spawn_blocking(move || g.persist_bans()).await {
            Ok(Err(e)) => tracing::error!(error = %e, "cannot persist bans"),
            Err(e) => tracing::error!(error = %e, "cannot persist bans"),
            Ok(Ok(_)) => {}
        }
    }
}

/// `POST /bans` body.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BanRequest {
    ip: std::net::IpAddr,
    /// Seconds; default: the auto-ban duration (`guard.autoban.ban_secs`).
    ttl_secs: Option<u64>,
    reason: Option<String>,
}

/// `POST /bans {"ip": "198.51.100.7", "ttl_secs": 3600, "reason": "abuse report"}`.
async fn add_ban(shared: &Arc<Shared>, req: Request<Incoming>) -> Resp {
    let b: BanRequest = match json_body(req).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(g) = shared.guard.load_full() else {
        return json(
            StatusCode::CONFLICT,
            serde_json::json!({"error": "no `guard:` section in the config", "reason": "guard_off"}),
        );
    };
    let Some(bans) = g.bans() else {
        return json(
            StatusCode::CONFLICT,
            serde_json::json!({"error": "bans need `guard.autoban` in the config", "reason": "autoban_off"}),
        );
    };
    let secs = b
        .ttl_secs
        .or_else(|| g.config().autoban.as_ref().map(|a| a.ban_secs))
        .unwrap_or(900);
    if secs == 0 || secs > 10 * 365 * 86_400 {
        return bad_request("ttl_secs must be between 1 and 315360000");
    }
    let reason = b.reason.unwrap_or_else(|| "manual".to_string());
    if reason.len() > 256 {
        return bad_request("reason is longer than 256 bytes");
    }
    let ban = bans.ban(b.ip, std::time::Duration::from_secs(secs), &reason, g.now());
    persist_bans(shared).await;
    // Shared state: publish at once rather than at the next sync.
    if let Some(st) = &shared.state {
        st.redis.sync().await;
    }
    json(StatusCode::CREATED, serde_json::json!({"ban": ban}))
}

/// `POST /keys` body.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateKey {
    name: String,
    #[serde(default)]
    owner: String,
    plan: String,
    /// RFC 3339 expiry.
    #[serde(default, with = "time::serde::rfc3339::option")]
    expires: Option<time::OffsetDateTime>,
}

/// `POST /keys/{id}/rotate` body (optional).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateKey {
    /// Seconds the old key keeps working (default 0: it stops at once).
    #[serde(default)]
    grace_secs: u64,
}

fn key_error(e: palisade_keys::StoreError) -> Resp {
    use palisade_keys::StoreError as E;
    let (status, reason) = match &e {
        E::NotFound(_) => (StatusCode::NOT_FOUND, "key_not_found"),
        E::UnknownPlan { .. } | E::Empty(_) | E::ExpiryInPast(_) => {
            (StatusCode::BAD_REQUEST, "bad_request")
        }
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "key_store_error"),
    };
    json(
        status,
        serde_json::json!({"error": e.to_string(), "reason": reason}),
    )
}

/// The key management API (token-protected): keys change in the running gateway at once, and
/// in the key file (so they survive a restart and `palisade keys list` sees them).
async fn keys_api(shared: &Arc<Shared>, req: Request<Incoming>) -> Resp {
    let Some(auth) = shared.keys.load_full() else {
        return json(
            StatusCode::CONFLICT,
            serde_json::json!({"error": "no `api_keys:` section in the config", "reason": "api_keys_off"}),
        );
    };
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let rest = path.strip_prefix("/keys").unwrap_or_default();
    let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
    // Store changes write the key file (fsync): off the async workers.
    let blocking = |f: Box<dyn FnOnce(&palisade_keys::KeyAuth) -> Resp + Send>| {
        let auth = auth.clone();
        async move {
            tokio::task::spawn_blocking(move || f(&auth))
                .await
                .unwrap_or_else(|e| {
                    json(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        serde_json::json!({"error": e.to_string()}),
                    )
                })
        }
    };
    match (method, parts.as_slice()) {
        (Method::GET, []) => json(
            StatusCode::OK,
            serde_json::json!({"keys": auth.store().list()}),
        ),
        (Method::POST, []) => {
            let c: CreateKey = match json_body(req).await {
                Ok(c) => c,
                Err(r) => return r,
            };
            blocking(Box::new(move |a| {
                match a.create(&c.name, &c.owner, &c.plan, c.expires) {
                    Ok((record, key)) => json(
                        StatusCode::CREATED,
                        serde_json::json!({"key": key, "record": record, "note": "the key is shown once; only its hash is stored"}),
                    ),
                    Err(e) => key_error(e),
                }
            }))
            .await
        }
        (Method::GET, [id]) => match auth.store().get(id) {
            Some(record) => {
                let now = std::time::SystemTime::now();
                match &shared.state {
                    // Counters held in Redis (shared by every gateway): one MGET.
                    Some(st) => match st.read_usage(&auth, id, now).await {
                        Ok(usage) => json(
                            StatusCode::OK,
                            serde_json::json!({"record": record, "usage": usage, "usage_source": "redis"}),
                        ),
                        Err(e) => json(
                            StatusCode::OK,
                            serde_json::json!({"record": record, "usage": null, "usage_error": e, "usage_source": "redis"}),
                        ),
                    },
                    None => json(
                        StatusCode::OK,
                        serde_json::json!({"record": record, "usage": auth.usage(id, now)}),
                    ),
                }
            }
            None => key_error(palisade_keys::StoreError::NotFound((*id).to_string())),
        },
        (Method::POST, [id, "rotate"]) => {
            let id = (*id).to_string();
            let r: RotateKey = match json_body(req).await {
                Ok(r) => r,
                Err(r) => return r,
            };
            if r.grace_secs > 30 * 86_400 {
                return bad_request("grace_secs must be at most 2592000 (30 days)");
            }
            let grace = std::time::Duration::from_secs(r.grace_secs);
            blocking(Box::new(move |a| match a.rotate_with_grace(&id, grace) {
                Ok(key) => json(
                    StatusCode::OK,
                    serde_json::json!({"id": id, "key": key, "grace_secs": grace.as_secs(), "note": "the new key is shown once; the old one works until the grace period ends"}),
                ),
                Err(e) => key_error(e),
            }))
            .await
        }
        (Method::POST, [id, "revoke"]) | (Method::DELETE, [id]) => {
            let id = (*id).to_string();
            blocking(Box::new(move |a| match a.revoke(&id) {
                Ok(record) => json(StatusCode::OK, serde_json::json!({"record": record})),
                Err(e) => key_error(e),
            }))
            .await
        }
        _ => json(
            StatusCode::NOT_FOUND,
            serde_json::json!({"error": "not found", "endpoints": ["GET /keys", "POST /keys", "GET /keys/{id}", "POST /keys/{id}/rotate", "POST /keys/{id}/revoke"]}),
        ),
    }
}

/// Refresh the upstream health gauges from the current runtime.
fn refresh_gauges(shared: &Shared) {
    let rt = shared.runtime();
    shared.metrics.upstream_healthy.reset();
    for pool in rt.pools.values() {
        for s in pool.status() {
            shared
                .metrics
                .upstream_healthy
                .with_label_values(&[s.pool.as_str(), s.address.as_str()])
                .set(i64::from(s.healthy));
        }
    }
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Resp, Infallible> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let resp = match (method, path.as_str()) {
        (Method::GET, "/healthz") => json(StatusCode::OK, serde_json::json!({"status": "ok"})),
        (Method::GET, "/readyz") => {
            let rt = shared.runtime();
            let pools: Vec<_> = rt
                .pools
                .values()
                .map(|p| {
                    let healthy = p.status().filter(|s| s.healthy).count();
                    serde_json::json!({"pool": p.config.name, "healthy": healthy, "targets": p.backends.len()})
                })
                .collect();
            let ready = rt.pools.values().all(|p| p.status().any(|s| s.healthy));
            json(
                if ready {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                },
                serde_json::json!({"ready": ready, "generation": rt.generation, "pools": pools}),
            )
        }
        (Method::GET, "/metrics") => {
            refresh_gauges(&shared);
            let mut body = shared.metrics.render();
            if let Some(a) = shared.analytics.get() {
                a.stats().render_prometheus(&mut body);
            }
            if let Some(st) = &shared.state {
                st.render_prometheus(&mut body);
            }
            text(StatusCode::OK, body, "text/plain; version=0.0.4")
        }
        (Method::GET, "/config") => {
            let rt = shared.runtime();
            match serde_json::to_value(&rt.config) {
                Ok(v) => json(StatusCode::OK, v),
                Err(e) => json(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    serde_json::json!({"error": e.to_string()}),
                ),
            }
        }
        (Method::GET, "/bans") => match shared.guard.load_full() {
            Some(g) => match g.bans() {
                Some(b) => json(StatusCode::OK, serde_json::json!({"bans": b.list(g.now())})),
                None => json(
                    StatusCode::OK,
                    serde_json::json!({"bans": [], "autoban": "off"}),
                ),
            },
            None => json(
                StatusCode::OK,
                serde_json::json!({"bans": [], "guard": "off"}),
            ),
        },
        (Method::POST, "/bans") => {
            if !authorized(&shared, &req) {
                unauthorized()
            } else {
                add_ban(&shared, req).await
            }
        }
        (Method::DELETE, p) if p.starts_with("/bans/") => {
            if !authorized(&shared, &req) {
                unauthorized()
            } else {
                match p
                    .strip_prefix("/bans/")
                    .unwrap_or_default()
                    .parse::<std::net::IpAddr>()
                {
                    Ok(ip) => {
                        let removed = shared
                            .guard
                            .load_full()
                            .and_then(|g| g.bans().map(|b| b.unban(ip)))
                            .unwrap_or(false);
                        if removed {
                            persist_bans(&shared).await;
                        }
                        // Shared state: publish at once rather than at the next sync.
                        if let Some(st) = &shared.state {
                            st.redis.sync().await;
                        }
                        json(
                            if removed {
                                StatusCode::OK
                            } else {
                                StatusCode::NOT_FOUND
                            },
                            serde_json::json!({"ip": ip.to_string(), "removed": removed}),
                        )
                    }
                    Err(_) => json(
                        StatusCode::BAD_REQUEST,
                        serde_json::json!({"error": "not an IP address", "reason": "bad_request"}),
                    ),
                }
            }
        }
        (_, p) if p == "/keys" || p.starts_with("/keys/") => {
            if !authorized(&shared, &req) {
                unauthorized()
            } else {
                keys_api(&shared, req).await
            }
        }
        (Method::POST, "/reload") => {
            if !authorized(&shared, &req) {
                unauthorized()
            } else {
                // Drain the body (ignored).
                let _ = req.into_body().collect().await;
                let s = shared.clone();
                match tokio::task::spawn_blocking(move || s.reload()).await {
                    Ok(Ok(generation)) => json(
                        StatusCode::OK,
                        serde_json::json!({"status": "reloaded", "generation": generation}),
                    ),
                    Ok(Err(e)) => json(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        serde_json::json!({"status": "rejected", "errors": e.to_string().lines().collect::<Vec<_>>()}),
                    ),
                    Err(e) => json(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        serde_json::json!({"error": e.to_string()}),
                    ),
                }
            }
        }
        _ => json(
            StatusCode::NOT_FOUND,
            serde_json::json!({"error": "not found", "endpoints": ["/healthz", "/readyz", "/metrics", "/config", "/bans", "POST /bans", "DELETE /bans/{ip}", "GET|POST /keys", "GET /keys/{id}", "POST /keys/{id}/rotate", "POST /keys/{id}/revoke", "POST /reload"]}),
        ),
    };
    Ok(resp)
}

/// Serve the admin API on an already bound listener until the process ends.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| handle(shared.clone(), req));
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// Why an admin API call from the command line failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The admin listener could not be reached.
    #[error("cannot reach the admin API at {addr}: {source} (is the gateway running?)")]
    Connect {
        /// The address tried.
        addr: std::net::SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// The exchange failed half way.
    #[error("admin API at {addr}: {source}")]
    Io {
        /// The address.
        addr: std::net::SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// The answer was not HTTP.
    #[error("admin API at {addr}: malformed response")]
    Malformed {
        /// The address.
        addr: std::net::SocketAddr,
    },
}

/// One blocking request to the admin API (for the command line): returns the status and the
/// body. An unspecified listen address (`0.0.0.0`, `::`) is reached through loopback.
pub fn call(
    addr: std::net::SocketAddr,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> Result<(u16, String), ClientError> {
    use std::io::{Read, Write};
    let mut addr = addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    let timeout = std::time::Duration::from_secs(10);
    let mut s = std::net::TcpStream::connect_timeout(&addr, timeout)
        .map_err(|source| ClientError::Connect { addr, source })?;
    let io = |source| ClientError::Io { addr, source };
    s.set_read_timeout(Some(timeout)).map_err(io)?;
    s.set_write_timeout(Some(timeout)).map_err(io)?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(&body);
    s.write_all(req.as_bytes()).map_err(io)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(io)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or(ClientError::Malformed { addr })?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or(ClientError::Malformed { addr })?;
    Ok((status, body.to_string()))
}
