//! Process wiring: the Pingora server with the proxy service and its listeners, and a side
//! thread with its own tokio runtime for the admin listener, active health checks and SIGHUP
//! reloads (off the request path).

use crate::admin;
use crate::proxy::Gateway;
use crate::state::{BuildError, Shared};
use crate::upstream::check_target;
use pingora::apps::HttpServerOptions;
use pingora::listeners::tls::TlsSettings;
use pingora::server::configuration::ServerConf;
use pingora::server::Server;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Config or rules invalid.
    #[error("{0}")]
    Build(#[from] BuildError),
    /// A socket could not be bound or a runtime created.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// TLS settings could not be loaded.
    #[error("tls: {0}")]
    Tls(String),
}

/// Start the gateway and serve until terminated (SIGTERM: graceful, SIGINT: fast).
pub fn run(config_path: &Path) -> Result<(), StartError> {
    let shared = Shared::load(config_path)?;
    let rt = shared.runtime();
    let cfg = &rt.config;

    // Admin listener, health checks and SIGHUP on a side runtime.
    let admin_listener =
        std::net::TcpListener::bind(cfg.admin.address).map_err(|source| StartError::Io {
            what: format!("cannot bind the admin listener on {}", cfg.admin.address),
            source,
        })?;
    admin_listener
        .set_nonblocking(true)
        .map_err(|source| StartError::Io {
            what: "admin listener".into(),
            source,
        })?;
    let side = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .thread_name("palisade-admin")
        .on_thread_start(lower_thread_priority)
        .build()
        .map_err(|source| StartError::Io {
            what: "cannot create the admin runtime".into(),
            source,
        })?;
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let side_shared = shared.clone();
    std::thread::Builder::new()
        .name("palisade-admin".into())
        .spawn(move || {
            lower_thread_priority();
            side.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(admin_listener) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!(error = %e, "admin listener");
                        return;
                    }
                };
                tokio::spawn(admin::serve(listener, side_shared.clone()));
                let analytics_cfg = side_shared.runtime().config.analytics.clone();
                if let Some(cfg) = analytics_cfg {
                    match palisade_analytics::start(cfg).await {
                        Ok(a) => {
                            let _ = side_shared.analytics.set(a);
                        }
                        Err(e) => tracing::error!(error = %e, "analytics did not start; requests are served without events"),
                    }
                }
                tokio::spawn(guard_maintenance(side_shared.clone()));
                tokio::spawn(quota_flush(side_shared.clone()));
                if let Some(st) = side_shared.state.clone() {
                    tokio::spawn(st.run_sync());
                }
                tokio::spawn(health_loop(side_shared.clone()));
                let mut hup =
                    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
                        Ok(s) => s,
                        Err(e) => {
                            tracing::error!(error = %e, "cannot install the SIGHUP handler");
                            let _ = ready_tx.send(());
                            std::future::pending::<()>().await;
                            return;
                        }
                    };
                let _ = ready_tx.send(());
                while hup.recv().await.is_some() {
                    let s = side_shared.clone();
                    let _ = tokio::task::spawn_blocking(move || s.reload()).await;
                }
            })
        })
        .map_err(|source| StartError::Io {
            what: "cannot start the admin thread".into(),
            source,
        })?;
    let _ = ready_rx.recv_timeout(Duration::from_secs(5));

    let conf = ServerConf {
        threads: cfg.server.threads,
        grace_period_seconds: Some(cfg.server.grace_period_secs),
        graceful_shutdown_timeout_seconds: Some(cfg.server.shutdown_timeout_secs),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = pingora::proxy::http_proxy(&server.configuration, Gateway::new(shared.clone()));
    let mut h2c = false;
    let mut listeners = Vec::with_capacity(cfg.listeners.len());
    for l in &cfg.listeners {
        let addr = l.address.to_string();
        match &l.tls {
            Some(t) => {
                let mut tls =
                    TlsSettings::intermediate(&t.cert.to_string_lossy(), &t.key.to_string_lossy())
                        .map_err(|e| StartError::Tls(e.to_string()))?;
                tls.enable_h2();
                listeners.push((addr, Some(tls)));
            }
            None => {
                h2c |= l.h2c;
                listeners.push((addr, None));
            }
        }
    }
    if h2c {
        let mut opts = HttpServerOptions::default();
        opts.h2c = true;
        proxy.server_options = Some(opts);
    }
    // Connection guards (per-IP cap, header deadline) wrap the proxy application.
    let app = crate::conn_guard::GuardedApp::new(proxy, shared.clone());
    let mut svc = pingora::services::listening::Service::new("palisade".to_string(), app);
    for (addr, tls) in listeners {
        match tls {
            Some(tls) => svc.add_tls_with_settings(&addr, None, tls),
            None => svc.add_tcp(&addr),
        }
    }
    server.add_service(svc);
    tracing::info!(listeners = ?cfg.listeners.iter().map(|l| l.address).collect::<Vec<_>>(), admin = %cfg.admin.address, "palisade serving");
    server.run_forever();
}

/// Run the active health checks of every pool of the current runtime, each at its interval.
async fn health_loop(shared: Arc<Shared>) {
    let mut last: HashMap<(String, Arc<str>), Instant> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        tick.tick().await;
        let rt = shared.runtime();
        for pool in rt.pools.values() {
            let Some(hc) = pool.config.health_check.clone() else {
                continue;
            };
            for b in &pool.backends {
                let key = (pool.config.name.clone(), b.address.clone());
                let due = last.get(&key).is_none_or(|t| t.elapsed() >= hc.interval);
                if !due {
                    continue;
                }
                last.insert(key, Instant::now());
                let health = b.health.clone();
                let addr = b.socket;
                let host = b.address.clone();
                let tls = pool.config.tls;
                let hc = hc.clone();
                tokio::spawn(async move {
                    let ok = check_target(addr, &host, tls, &hc).await;
                    health.record_check(ok, &hc);
                });
            }
        }
    }
}

/// Periodic guard work off the request path: sweep limiter state, persist bans, reload feeds.
async fn guard_maintenance(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    let mut last_feeds = Instant::now();
    loop {
        tick.tick().await;
        let Some(guard) = shared.guard.load_full() else {
            continue;
        };
        let interval = shared
            .runtime()
            .config
            .guard
            .as_ref()
            .map(|g| g.ip.reload_interval_secs)
            .unwrap_or(0);
        let g = guard.clone();
        let reload = interval > 0 && last_feeds.elapsed() >= Duration::from_secs(interval);
        if reload {
            last_feeds = Instant::now();
        }
        let _ = tokio::task::spawn_blocking(move || {
            g.sweep();
            if let Err(e) = g.persist_bans() {
                tracing::error!(error = %e, "cannot persist bans");
            }
            if reload {
                let report = g.reload_feeds();
                tracing::info!(?report, "ip feeds reloaded");
            }
        })
        .await;
    }
}

/// Persist quota counters every second, off the request path; and re-read the key file when
/// another process (`palisade keys …`) changed it, so key changes apply without a restart.
async fn quota_flush(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let stamp = |auth: &palisade_keys::KeyAuth| {
        auth.store()
            .path()
            .and_then(|p| std::fs::metadata(p).ok())
            .and_then(|m| Some((m.modified().ok()?, m.len())))
    };
    let mut key_file_seen = shared.keys.load_full().and_then(|a| stamp(&a));
    loop {
        tick.tick().await;
        if let Some(auth) = shared.keys.load_full() {
            let now = stamp(&auth);
            if now != key_file_seen {
                key_file_seen = now;
                if now.is_some() {
                    match tokio::task::spawn_blocking(move || auth.reload_keys()).await {
                        Ok(Ok(true)) => tracing::info!("key file changed: keys reloaded"),
                        Ok(Ok(false)) => {}
                        Ok(Err(e)) => {
                            tracing::error!(error = %e, "key file rejected; the keys in force stay")
                        }
                        Err(e) => tracing::error!(error = %e, "key reload task failed"),
                    }
                }
            }
        }
        let Some(q) = shared.quotas.load_full() else {
            continue;
        };
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || q.flush()).await {
            tracing::error!(error = %e, "cannot persist quota counters");
        }
    }
}

/// The nice value of the side runtime's threads (the admin listener, the analytics writer and
/// its spool, health checks, limiter maintenance, quota and Redis sync). They do background
/// work: when a proxy worker and one of them both want the CPU, the worker goes first (a nice-10
/// thread weighs about a tenth of a nice-0 one), so a ClickHouse insert or a spool write never
/// delays a request. They still get their share when the workers are busy, and all of the CPU
/// when they are idle.
pub const BACKGROUND_NICE: i32 = 10;

/// Lower the calling thread's priority to [`BACKGROUND_NICE`]. Linux sets nice per thread
/// (`setpriority` on a thread id); a failure is only logged, the thread keeps running.
fn lower_thread_priority() {
    // SAFETY: `gettid` and `setpriority` take plain integers and touch no memory of ours.
    let rc = unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, BACKGROUND_NICE)
    };
    if rc != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "cannot lower a background thread's priority");
    }
}
