//! Palisade: a security gateway on Pingora. See `docs/ARCHITECTURE.md` for the module map and
//! the request pipeline.
//!
//! - [`config`]: parse → validate → compile the YAML config, errors as `file:line:col`.
//! - [`router`]: host/path/method route matching with `{param}` templates.
//! - [`upstream`]: pools, weighted round robin, active and passive health.
//! - [`proxy`]: the Pingora `ProxyHttp` phases, where the pipeline stages run.
//! - [`forward`]: request/response rewriting and the forwarder for large held bodies.
//! - [`context`]: the per-request record every stage writes its decision into.
//!   [`inspect_pool`]: per-thread pool of WAF accumulators, reused from request to request.
//! - [`state`]: the runtime snapshot and atomic reload. [`shared_state`]: limits, quotas and
//!   bans shared by several gateways through Redis.
//! - [`admin`]: the admin listener. [`metrics`]: Prometheus metrics.
//! - [`server`]: process wiring. [`demo_upstream`]: the demo API used by the quickstart and tests.

pub mod admin;
pub mod config;
pub mod conn_guard;
pub mod context;
pub mod cors;
pub mod demo_upstream;
pub mod event;
pub mod forward;
pub mod headers;
pub mod inspect_pool;
pub mod metrics;
pub mod proxy;
pub mod respond;
pub mod router;
pub mod server;
pub mod shared_state;
pub mod state;
pub mod upstream;
