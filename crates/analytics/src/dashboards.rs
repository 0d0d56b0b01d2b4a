//! The Grafana dashboards in `dashboards/*.json`: loading every panel's SQL, expanding the
//! ClickHouse data source's macros and the dashboards' template variables, and checking that
//! the SQL uses only names declared in [`crate::names`].
//!
//! Macros expanded exactly as `grafana-clickhouse-datasource` does (`pkg/macros`):
//! `$__timeFilter(col)` → `col >= toDateTime(FROM) AND col <= toDateTime(TO)`,
//! `$__fromTime` → `toDateTime(FROM)`, `$__toTime` → `toDateTime(TO)`, `$__interval_s` → the
//! interval in whole seconds (at least 1). Variables: `${route}` / `$route`, whose "All" value
//! is `__all` (the dashboards test `'${route}' = '__all' OR route = '${route}'`).

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::names::{column, table};
use crate::AnalyticsError;

/// "All" value of the `route` variable.
pub const ALL_ROUTES: &str = "__all";

/// One query of a dashboard: a panel target or a template variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PanelQuery {
    /// File name of the dashboard, e.g. `security.json`.
    pub dashboard: String,
    /// Panel title, or `variable <name>`.
    pub title: String,
    /// The SQL as stored (macros not expanded).
    pub sql: String,
}

impl PanelQuery {
    /// `dashboard: title`.
    pub fn name(&self) -> String {
        format!("{}: {}", self.dashboard, self.title)
    }
}

/// Values substituted for the macros and variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expansion {
    /// Start of the time range, Unix seconds.
    pub from_secs: u64,
    /// End of the time range, Unix seconds.
    pub to_secs: u64,
    /// `$__interval_s`.
    pub interval_s: u64,
    /// Value of `${route}` ([`ALL_ROUTES`] for All).
    pub route: String,
}

impl Expansion {
    /// The last 24 hours up to one hour from now, one-minute interval, all routes.
    pub fn last_day() -> Self {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Self {
            from_secs: now.saturating_sub(86_400),
            to_secs: now + 3_600,
            interval_s: 60,
            route: ALL_ROUTES.into(),
        }
    }
}

/// Every panel and variable query of every `*.json` dashboard in `dir`, in file order.
/// Malformed JSON is reported as `file:line:col: message`.
pub fn panel_queries(dir: &Path) -> Result<Vec<PanelQuery>, AnalyticsError> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| AnalyticsError::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).map_err(|e| AnalyticsError::io(&path, e))?;
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| AnalyticsError::Dashboard {
                path: format!("{}:{}:{}", path.display(), e.line(), e.column()),
                what: e.to_string(),
            })?;
        let dashboard = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Some(vars) = json.pointer("/templating/list").and_then(|v| v.as_array()) {
            for v in vars {
                if v.get("type").and_then(|t| t.as_str()) != Some("query") {
                    continue;
                }
                let sql = v.get("query").and_then(|q| {
                    q.as_str()
                        .or_else(|| q.get("rawSql").and_then(|s| s.as_str()))
                });
                if let Some(sql) = sql {
                    let name = v.get("name").and_then(|n| n.as_str()).unwrap_or("?");
                    out.push(PanelQuery {
                        dashboard: dashboard.clone(),
                        title: format!("variable {name}"),
                        sql: sql.to_string(),
                    });
                }
            }
        }
        collect_panels(&dashboard, json.get("panels"), &mut out);
    }
    Ok(out)
}

fn collect_panels(dashboard: &str, panels: Option<&serde_json::Value>, out: &mut Vec<PanelQuery>) {
    let Some(panels) = panels.and_then(|p| p.as_array()) else {
        return;
    };
    for p in panels {
        let title = p
            .get("title")
            .and_then(|t| t.as_str())
            .unwrap_or("(untitled)");
        if let Some(targets) = p.get("targets").and_then(|t| t.as_array()) {
            for (i, t) in targets.iter().enumerate() {
                if let Some(sql) = t.get("rawSql").and_then(|s| s.as_str()) {
                    let title = if targets.len() > 1 {
                        format!("{title} [{i}]")
                    } else {
                        title.to_string()
                    };
                    out.push(PanelQuery {
                        dashboard: dashboard.to_string(),
                        title,
                        sql: sql.to_string(),
                    });
                }
            }
        }
        collect_panels(dashboard, p.get("panels"), out);
    }
}

/// Expands the data source macros and the template variables in `sql`.
pub fn expand(sql: &str, x: &Expansion) -> String {
    let from = format!("toDateTime({})", x.from_secs);
    let to = format!("toDateTime({})", x.to_secs);
    let mut out = String::with_capacity(sql.len() + 64);
    let mut rest = sql;
    while let Some(at) = rest.find("$__timeFilter(") {
        out.push_str(&rest[..at]);
        let after = &rest[at + "$__timeFilter(".len()..];
        match after.find(')') {
            Some(close) => {
                let col = after[..close]
                    .trim()
                    .trim_matches(|c| c == '"' || c == '\'');
                out.push_str(&format!("{col} >= {from} AND {col} <= {to}"));
                rest = &after[close + 1..];
            }
            None => {
                out.push_str(&rest[at..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    let route = x.route.replace('\\', "\\\\").replace('\'', "\\'");
    out.replace("$__fromTime", &from)
        .replace("$__toTime", &to)
        .replace("$__interval_s", &x.interval_s.max(1).to_string())
        .replace("${route}", &route)
        .replace("$route", &route)
}

/// Every panel's SQL with macros and variables expanded for the last day and all routes:
/// `(dashboard: panel title, sql)`. The caller runs them against ClickHouse (whose default
/// database must be the analytics database: the SQL names tables without a database).
pub fn dashboard_queries(dir: &Path) -> Result<Vec<(String, String)>, AnalyticsError> {
    dashboard_queries_with(dir, &Expansion::last_day())
}

/// Like [`dashboard_queries`], with explicit values for the macros and variables.
pub fn dashboard_queries_with(
    dir: &Path,
    x: &Expansion,
) -> Result<Vec<(String, String)>, AnalyticsError> {
    Ok(panel_queries(dir)?
        .into_iter()
        .map(|p| (p.name(), expand(&p.sql, x)))
        .collect())
}

/// The outcome of one panel query run by [`run_all`].
#[derive(Debug)]
pub struct PanelRun {
    /// `dashboard: panel title`.
    pub name: String,
    /// The expanded SQL.
    pub sql: String,
    /// Rows returned, or the error.
    pub rows: Result<usize, AnalyticsError>,
}

/// Runs every panel query of `dir` (expanded with `x`) on `client`, whose default database
/// must be the analytics database (`client.with_database(db)`). For the end-to-end test:
/// assert that every `rows` is `Ok(n)` with `n > 0`.
pub async fn run_all(
    client: &clickhouse::Client,
    dir: &Path,
    x: &Expansion,
) -> Result<Vec<PanelRun>, AnalyticsError> {
    let mut out = Vec::new();
    for (name, sql) in dashboard_queries_with(dir, x)? {
        let rows = crate::schema::query_tsv(client, &sql)
            .await
            .map(|tsv| tsv.lines().filter(|l| !l.is_empty()).count());
        out.push(PanelRun { name, sql, rows });
    }
    Ok(out)
}

const KEYWORDS: &[&str] = &[
    "select", "from", "where", "and", "or", "not", "in", "group", "by", "order", "desc", "asc",
    "limit", "as", "is", "null", "interval", "second", "minute", "hour", "day", "having", "array",
    "join", "left", "inner", "on", "with", "distinct", "case", "when", "then", "else", "end",
    "between", "like", "union", "all",
];

/// Identifiers in `sql` (expanded) that are neither declared columns or tables of
/// [`crate::names`], nor SQL keywords, functions, aliases (`AS x`) or lambda parameters.
pub fn unknown_identifiers(sql: &str) -> Vec<String> {
    let tokens = tokenize(sql);
    let mut aliases: Vec<&str> = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        if let Tok::Ident(name) = t {
            if i > 0 && matches!(&tokens[i - 1], Tok::Ident(k) if k.eq_ignore_ascii_case("as")) {
                aliases.push(name);
            }
            if matches!(tokens.get(i + 1), Some(Tok::Arrow)) {
                aliases.push(name);
            }
        }
    }
    let known = |name: &str| {
        column::EVENTS.iter().any(|(c, _)| *c == name)
            || column::OTHER.contains(&name)
            || table::ALL.contains(&name)
            || aliases.contains(&name)
            || KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(name))
    };
    let mut unknown = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        let Tok::Ident(name) = t else { continue };
        let is_function = matches!(tokens.get(i + 1), Some(Tok::Open));
        if !is_function && !known(name) && !unknown.iter().any(|u: &String| u == name) {
            unknown.push((*name).to_string());
        }
    }
    unknown
}

/// Aliases (`expr AS name`) in `sql` that reuse a declared column name. ClickHouse's newer
/// analyzer resolves such a name to the alias everywhere in the query (so `countMerge(hits) AS
/// hits, countMergeIf(hits, …)` breaks on 26.x while working on 18.16): the dashboards avoid it.
pub fn shadowing_aliases(sql: &str) -> Vec<String> {
    let tokens = tokenize(sql);
    let mut out = Vec::new();
    for w in tokens.windows(2) {
        if let [Tok::Ident(k), Tok::Ident(name)] = w {
            let is_column =
                column::EVENTS.iter().any(|(c, _)| c == name) || column::OTHER.contains(name);
            if k.eq_ignore_ascii_case("as") && is_column {
                out.push((*name).to_string());
            }
        }
    }
    out
}

#[derive(Debug, PartialEq)]
enum Tok<'a> {
    Ident(&'a str),
    Open,
    Arrow,
    Other,
}

fn tokenize(sql: &str) -> Vec<Tok<'_>> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'\'' {
            i += 1;
            while i < b.len() && b[i] != b'\'' {
                if b[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push(Tok::Other);
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push(Tok::Ident(&sql[start..i]));
        } else if c.is_ascii_digit() {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                i += 1;
            }
            out.push(Tok::Other);
        } else if c == b'(' {
            i += 1;
            out.push(Tok::Open);
        } else if c == b'-' && b.get(i + 1) == Some(&b'>') {
            i += 2;
            out.push(Tok::Arrow);
        } else if c.is_ascii_whitespace() {
            i += 1;
        } else {
            i += 1;
            out.push(Tok::Other);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn x() -> Expansion {
        Expansion {
            from_secs: 100,
            to_secs: 200,
            interval_s: 0,
            route: "a'b".into(),
        }
    }

    #[test]
    fn macros_expand_like_the_plugin() {
        let sql =
            "SELECT 1 FROM events WHERE $__timeFilter(ts) AND ts > $__fromTime AND ts < $__toTime \
                   AND n = $__interval_s AND route = '${route}' AND r2 = '$route'";
        assert_eq!(
            expand(sql, &x()),
            "SELECT 1 FROM events WHERE ts >= toDateTime(100) AND ts <= toDateTime(200) AND \
             ts > toDateTime(100) AND ts < toDateTime(200) AND n = 1 AND route = 'a\\'b' AND r2 = 'a\\'b'"
        );
    }

    #[test]
    fn unknown_columns_are_reported() {
        let sql =
            "SELECT rout, count() AS n, arrayMap(x -> toString(x), rule_ids) AS ids FROM events \
                   WHERE verdict = 'blok' GROUP BY rout ORDER BY n";
        assert_eq!(unknown_identifiers(sql), vec!["rout".to_string()]);
        assert!(unknown_identifiers("SELECT route FROM evnts").contains(&"evnts".to_string()));
        assert!(
            unknown_identifiers("SELECT quantilesMerge(0.5)(latency_q) AS q FROM events_1m")
                .is_empty()
        );
    }

    #[test]
    fn aliases_shadowing_columns_are_reported() {
        assert_eq!(
            shadowing_aliases("SELECT countMerge(hits) AS hits FROM rules_1m"),
            vec!["hits".to_string()]
        );
        assert!(
            shadowing_aliases("SELECT countMerge(hits) AS total_hits FROM rules_1m").is_empty()
        );
    }

    #[test]
    fn malformed_dashboard_names_file_line_col() {
        let dir = tempfile::tempdir().map_err(|e| e.to_string());
        let Ok(dir) = dir else { return };
        let _ = std::fs::write(dir.path().join("bad.json"), "{\n  \"panels\": [,]\n}\n");
        let err = panel_queries(dir.path())
            .map(|_| ())
            .map_err(|e| e.to_string());
        assert!(
            err.as_ref().is_err_and(|e| e.contains("bad.json:2:")),
            "{err:?}"
        );
    }
}
