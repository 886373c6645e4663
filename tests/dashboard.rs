//! Every query of `dashboards/genro-asgi.json` uses metric names the code really exports: the
//! names are checked against a real scrape of a stack with every genro crate registered.

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use axum::{body::Body, routing::get, Router};
use genro_asgi::{
    EnvelopeLayer, EnvelopeRegistry, MetricsCollector, MetricsLayer, RegistryLayer,
    RequestEnvelope, Watchdog, WatchdogConfig, WebhookNotifier,
};
use http::Request;
use http_body_util::BodyExt;
use tower::{ServiceBuilder, ServiceExt};

/// Words of PromQL that are not metric names.
const PROMQL: &[&str] = &[
    "sum",
    "by",
    "rate",
    "irate",
    "increase",
    "histogram_quantile",
    "le",
    "route",
    "status",
    "job",
    "instance",
    "severity",
    "outcome",
    "type",
    "kind",
    "method",
    "max",
    "min",
    "avg",
    "without",
    "__rate_interval",
    "e6",
    "label_values",
    "clamp_min",
    "on",
    "bool",
    "changes",
    "max_over_time",
];

fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut in_braces = 0;
    let mut in_string = false;
    let mut word = String::new();
    for c in expr.chars().chain(std::iter::once(' ')) {
        if !in_string && (c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            word.push(c);
            continue;
        }
        // A word ends here: a metric name if outside label matchers and not PromQL.
        let is_number = word.chars().next().is_some_and(|c| c.is_ascii_digit());
        if !word.is_empty() && in_braces == 0 && !is_number && !PROMQL.contains(&word.as_str()) {
            names.insert(word.clone());
        }
        word.clear();
        match c {
            '"' => in_string = !in_string,
            '{' if !in_string => in_braces += 1,
            '}' if !in_string => in_braces -= 1,
            _ => {}
        }
    }
    names
}

fn exprs(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                if k == "expr" {
                    out.push(v.as_str().unwrap().to_owned());
                } else {
                    exprs(v, out);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

/// The metric names a real deployment exports: a stack with every crate's metrics and some
/// traffic (so that every family has series), and a real `AsgiServer`'s own scrape.
async fn exported_names() -> BTreeSet<String> {
    let mut exported = server_names().await;
    // A stack with every crate's metrics, and some traffic so that every family has series.
    let collector = MetricsCollector::new();
    let registry = EnvelopeRegistry::new();
    let envelope_layer = EnvelopeLayer::new();
    registry.register_metrics(&mut collector.registry());
    envelope_layer.register_metrics(&mut collector.registry());
    let mut watchdog = Watchdog::new(registry.clone(), WatchdogConfig::default());
    watchdog.register_metrics(&mut collector.registry());
    let errors = genro_asgi::ErrorLayer::new();
    errors.register_metrics(&mut collector.registry());
    let webhook = WebhookNotifier::builder("http://127.0.0.1:9/hook")
        .unwrap()
        .build()
        .unwrap();
    webhook.register_metrics(&mut collector.registry());
    collector.register_process_metrics();
    let app = Router::new()
        .route("/x/{id}", get(|| async { "x" }))
        .route(
            "/fail",
            get(|| async { Err::<String, genro_asgi::Error>(genro_asgi::Error::msg("no")) }),
        )
        .layer(
            ServiceBuilder::new()
                .layer(envelope_layer)
                .layer(RegistryLayer::new(registry.clone()))
                .layer(MetricsLayer::new(&collector))
                .layer(errors),
        );
    let req = Request::get("/x/1")
        .header("x-request-id", "bad id")
        .body(Body::empty())
        .unwrap();
    for req in [req, Request::get("/fail").body(Body::empty()).unwrap()] {
        let res = app.clone().oneshot(req).await.unwrap();
        res.into_body().collect().await.unwrap();
    }
    let _stuck = registry.track(Arc::new(RequestEnvelope::new(
        http::Method::GET,
        http::Uri::from_static("/s"),
    )));
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(90)).await;
    watchdog.scan();
    use genro_asgi::Notifier;
    // The second one is de-duplicated: both outcomes get series.
    for _ in 0..2 {
        let n = genro_asgi::Notification::new("t", genro_asgi::Severity::Critical, "m");
        webhook.notify(n).await;
    }

    exported.extend(names_in(&collector.render()));
    exported
}

fn names_in(scrape: &str) -> BTreeSet<String> {
    scrape
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

/// What a real `AsgiServer` exports at `/metrics` (its own `server_*` gauges among them).
async fn server_names() -> BTreeSet<String> {
    let config = genro_asgi::server::Config::from_ini_str(
        "[server]\nport = 0\n[limits]\nconcurrency_limit = 64\n",
        "dashboard.ini",
        Vec::new(),
    )
    .unwrap();
    let server = genro_asgi::AsgiServer::from_config(config).without_logging();
    let handle = server.handle();
    let serving = tokio::spawn(server.serve(Router::new().route("/", get(|| async { "hi" }))));
    let addr = handle.bound().await.expect("bound").main.unwrap();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let res = client
        .get(format!("http://{addr}/metrics").parse().unwrap())
        .await
        .unwrap();
    let scrape = res.into_body().collect().await.unwrap().to_bytes();
    handle.shutdown();
    serving.await.unwrap().unwrap();
    names_in(&String::from_utf8_lossy(&scrape))
}

#[tokio::test]
async fn every_dashboard_query_uses_exported_metric_names() {
    let dashboard: serde_json::Value =
        serde_json::from_str(include_str!("../dashboards/genro-asgi.json")).expect("valid JSON");
    let mut queries = Vec::new();
    exprs(&dashboard, &mut queries);
    assert!(queries.len() >= 8, "the dashboard has its panels");
    assert_exported("dashboard query", &queries, &exported_names().await);
}

/// Every query names at least one metric, and only metrics in `exported`.
fn assert_exported(what: &str, queries: &[String], exported: &BTreeSet<String>) {
    for query in queries {
        let names = metric_names(query);
        assert!(!names.is_empty(), "no metric in {query}");
        for name in names {
            assert!(
                exported.contains(&name),
                "{what} uses `{name}`, which no genro crate exports:\n{query}\nexported: {exported:?}"
            );
        }
    }
}

#[test]
fn the_name_extractor_finds_names_and_skips_labels() {
    let names = metric_names(
        r#"histogram_quantile(0.9, sum by (le, route) (rate(http_x_bucket{job=~"a",status=~"5.."}[5m]))) / foo_total"#,
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        ["foo_total", "http_x_bucket"]
    );
}

/// The `expr` of every rule in `dashboards/alerts.yml` (single-line, or folded with `>-`).
fn alert_exprs(yaml: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut lines = yaml.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(rest) = line.trim_start().strip_prefix("expr:") else {
            continue;
        };
        let rest = rest.trim();
        if rest != ">-" {
            out.push(rest.to_owned());
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let mut expr = String::new();
        while let Some(next) = lines.peek() {
            if next.len() - next.trim_start().len() <= indent {
                break;
            }
            expr.push_str(next.trim());
            expr.push(' ');
            lines.next();
        }
        out.push(expr);
    }
    out
}

fn promtool(args: &[&str]) {
    let out = std::process::Command::new("promtool")
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/dashboards"))
        .output()
        .expect("promtool is needed (Debian: prometheus; scripts/test installs it)");
    assert!(
        out.status.success(),
        "promtool {args:?}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The shipped alert rules load, each fires (and stays quiet) as its unit test says, and each
/// uses only metric names a real deployment exports.
#[tokio::test]
async fn the_alert_rules_pass_promtool_and_use_exported_metric_names() {
    promtool(&["check", "rules", "alerts.yml"]);
    promtool(&["test", "rules", "alerts.test.yml"]);
    let yaml = include_str!("../dashboards/alerts.yml");
    let exprs = alert_exprs(yaml);
    assert_eq!(exprs.len(), yaml.matches("- alert: ").count(), "{exprs:?}");
    assert_exported("alert", &exprs, &exported_names().await);
}
