//! The admin listener (default `127.0.0.1:9901`): `/healthz`, `/readyz`, `/metrics`, `/config`
//! (secrets redacted) and `POST /reload`. Mutations need `Authorization: Bearer <token>`; with no
//! token configured, mutations are refused.

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

/// `POST /bans` body.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BanRequest {
    ip: std::net::IpAddr,
    duration_secs: u64,
    #[serde(default = "manual_reason")]
    reason: String,
}

fn manual_reason() -> String {
    "manual".to_string()
}

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
                json(
                    StatusCode::UNAUTHORIZED,
                    serde_json::json!({"error": "unauthorized", "reason": "admin_token_required"}),
                )
            } else {
                let body = req.into_body().collect().await.map(|b| b.to_bytes());
                let parsed = body
                    .ok()
                    .and_then(|b| serde_json::from_slice::<BanRequest>(&b).ok());
                match (parsed, shared.guard.load_full()) {
                    (None, _) => json(
                        StatusCode::BAD_REQUEST,
                        serde_json::json!({"error": "expected {\"ip\": \"…\", \"duration_secs\": N, \"reason\": \"…\"}", "reason": "bad_request"}),
                    ),
                    (Some(b), Some(g)) if g.bans().is_some() => {
                        let ban = g.bans().map(|s| {
                            s.ban(
                                b.ip,
                                std::time::Duration::from_secs(b.duration_secs),
                                &b.reason,
                                g.now(),
                            )
                        });
                        // Shared state: publish at once rather than at the next sync.
                        if let Some(st) = &shared.state {
                            st.redis.sync().await;
                        }
                        json(StatusCode::OK, serde_json::json!({"ban": ban}))
                    }
                    (Some(_), _) => json(
                        StatusCode::CONFLICT,
                        serde_json::json!({"error": "auto-ban is off (no guard.autoban section)", "reason": "autoban_off"}),
                    ),
                }
            }
        }
        (Method::DELETE, p) if p.starts_with("/bans/") => {
            if !authorized(&shared, &req) {
                json(
                    StatusCode::UNAUTHORIZED,
                    serde_json::json!({"error": "unauthorized", "reason": "admin_token_required"}),
                )
            } else {
                match p["/bans/".len()..].parse::<std::net::IpAddr>() {
                    Ok(ip) => {
                        let removed = shared
                            .guard
                            .load_full()
                            .and_then(|g| g.bans().map(|b| b.unban(ip)))
                            .unwrap_or(false);
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
        (Method::POST, "/reload") => {
            if !authorized(&shared, &req) {
                json(
                    StatusCode::UNAUTHORIZED,
                    serde_json::json!({"error": "unauthorized", "reason": "admin_token_required"}),
                )
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
            serde_json::json!({"error": "not found", "endpoints": ["/healthz", "/readyz", "/metrics", "/config", "/bans", "POST /bans", "DELETE /bans/{ip}", "POST /reload"]}),
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
