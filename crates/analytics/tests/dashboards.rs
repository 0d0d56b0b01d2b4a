//! Every dashboard panel's SQL: uses only declared names, and runs and returns rows on the
//! local ClickHouse (18.16) after synthetic events went through the real writer.

mod common;

use common::*;
use palisade_analytics::config::{ClickHouseConfig, SpoolConfig};
use palisade_analytics::dashboards::{self, dashboard_queries, Expansion};
use palisade_analytics::{start, AnalyticsConfig, SinkConfig};

#[test]
fn dashboards_use_only_declared_names() {
    let queries = dashboard_queries(&dashboards_dir()).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        queries.len() >= 20,
        "expected every dashboard's panels, got {}",
        queries.len()
    );
    let mut bad = Vec::new();
    for (name, sql) in &queries {
        let unknown = dashboards::unknown_identifiers(sql);
        if !unknown.is_empty() {
            bad.push(format!("{name}: {unknown:?}"));
        }
        let shadowing = dashboards::shadowing_aliases(sql);
        if !shadowing.is_empty() {
            bad.push(format!("{name}: aliases reuse column names {shadowing:?}"));
        }
        assert!(
            !sql.contains("$__") && !sql.contains("${"),
            "{name}: unexpanded macro in {sql}"
        );
    }
    assert!(
        bad.is_empty(),
        "undeclared names (add them to names.rs and the migrations):\n{}",
        bad.join("\n")
    );
}

#[test]
fn every_dashboard_has_the_route_variable_and_the_datasource_uid() {
    let panels = dashboards::panel_queries(&dashboards_dir()).unwrap_or_else(|e| panic!("{e}"));
    for d in [
        "traffic.json",
        "security.json",
        "api-keys.json",
        "latency.json",
    ] {
        assert!(
            panels
                .iter()
                .any(|p| p.dashboard == d && p.title == "variable route"),
            "{d} lacks the route variable"
        );
        let text = std::fs::read_to_string(dashboards_dir().join(d)).unwrap_or_default();
        assert!(
            text.contains("\"uid\": \"palisade-clickhouse\""),
            "{d} must use the provisioned data source"
        );
    }
    let ds =
        std::fs::read_to_string(dashboards_dir().join("provisioning/datasources/clickhouse.yaml"))
            .unwrap_or_default();
    assert!(
        ds.contains("uid: palisade-clickhouse")
            && ds.contains("type: grafana-clickhouse-datasource")
    );
}

#[tokio::test]
async fn every_panel_returns_rows_after_synthetic_traffic() {
    require_clickhouse().await;
    let db = FreshDb::new("dash");
    let spool = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let cfg = AnalyticsConfig {
        sink: SinkConfig::Clickhouse(ClickHouseConfig {
            url: clickhouse_url(),
            database: db.name.clone(),
            batch_size: 500,
            flush_interval_ms: 50,
            ..ClickHouseConfig::default()
        }),
        spool: SpoolConfig {
            dir: spool.path().to_path_buf(),
            ..SpoolConfig::default()
        },
        security_log: None,
        ..AnalyticsConfig::default()
    };
    let a = start(cfg).await.unwrap_or_else(|e| panic!("start: {e}"));
    for ev in synthetic(3_000) {
        a.record(ev);
    }
    a.shutdown().await;
    assert_eq!(a.stats().events_written, 3_000, "{:?}", a.stats());

    let client = client().with_database(db.name.clone());
    let mut failures = Vec::new();
    let mut expansions = vec![Expansion::last_day()];
    // A single route selected, and a wider interval.
    expansions.push(Expansion {
        route: "login".into(),
        interval_s: 300,
        ..Expansion::last_day()
    });
    for x in &expansions {
        let runs = dashboards::run_all(&client, &dashboards_dir(), x)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(runs.len() >= 20);
        for run in runs {
            match run.rows {
                Ok(0) => failures.push(format!("{} (route {}): no rows", run.name, x.route)),
                Ok(_) => {}
                Err(e) => failures.push(format!("{}: {e}\n{}", run.name, run.sql)),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
