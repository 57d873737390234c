//! The chart's monitoring as a platform team runs it: the PrometheusRule
//! passes `promtool check rules`, and a real Prometheus scraping the running
//! operator answers every query of the Grafana dashboard and every alert
//! expression with series.
//!
//! Alerts fire only in bad states, so each alert is checked twice: its
//! expression without the final threshold comparison (the signal, e.g. the
//! number of leading replicas in `… < 1`) must return series, and the whole
//! expression must evaluate. Where the test can bring the bad state about
//! (an approval that expires within the warning window, a revoked
//! deployment) the whole expression must return series, and Prometheus's
//! own rule evaluation must show the alert; where it cannot (operator down,
//! no leader, caches not synced) the whole expression must return nothing
//! while the operator is healthy.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use modelgate::api::deployment::DeploymentPhase;
use modelgate_e2e::{chart::*, cluster::*, fixtures::*, operator::*, pods::*, wait::*};
use serde_json::Value;

/// The job label the tests scrape under, and the rules select.
const JOB: &str = "modelgate-metrics";
/// What Grafana would put for `$__rate_interval` at a 1 s scrape interval.
const RATE_INTERVAL: &str = "1m";

fn dashboard() -> Value {
    let path = Path::new(CHART).join("dashboards/modelgate.json");
    let text = std::fs::read_to_string(&path).expect("read the dashboard");
    serde_json::from_str(&text).expect("the dashboard is JSON")
}

/// Every (panel title, query) of the dashboard, with the dashboard's
/// variables filled in as Grafana would.
fn dashboard_queries() -> Vec<(String, String)> {
    let d = dashboard();
    let mut queries = vec![];
    for panel in d["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("a PromQL target");
            let expr = expr
                .replace("$__rate_interval", RATE_INTERVAL)
                .replace("$job", JOB);
            assert!(
                !expr.contains('$'),
                "a variable the test does not know: {expr}"
            );
            queries.push((
                panel["title"].as_str().unwrap_or_default().to_string(),
                expr,
            ));
        }
    }
    queries
}

/// The chart's alerting rule group, as a rules file for Prometheus.
fn rule_group() -> Value {
    let docs = render(&[
        "--set",
        &format!("metrics.prometheusRule.enabled=true,metrics.prometheusRule.job={JOB}"),
    ]);
    let rule = docs
        .iter()
        .find(|d| d["kind"] == "PrometheusRule")
        .expect("a PrometheusRule when metrics.prometheusRule.enabled");
    serde_json::json!({"groups": rule["spec"]["groups"]})
}

fn alerts(group: &Value) -> Vec<(String, String)> {
    group["groups"][0]["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .map(|r| {
            (
                r["alert"].as_str().expect("an alerting rule").to_string(),
                r["expr"].as_str().expect("expr").trim().to_string(),
            )
        })
        .collect()
}

/// The expression left of its last top-level comparison (`x < 1` → `x`),
/// None when it has none. Comparisons inside (), [], {} or strings are
/// not top-level: `{job="a"}` is a selector, not a test.
fn without_threshold(expr: &str) -> Option<&str> {
    let bytes = expr.as_bytes();
    let (mut depth, mut quoted, mut last) = (0i32, false, None);
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if quoted {
            if c == b'\\' {
                i += 1;
            } else if c == b'"' {
                quoted = false;
            }
        } else {
            match c {
                b'"' => quoted = true,
                b'(' | b'[' | b'{' => depth += 1,
                b')' | b']' | b'}' => depth -= 1,
                b'<' | b'>' if depth == 0 => last = Some(i),
                b'=' | b'!' if depth == 0 && bytes.get(i + 1) == Some(&b'=') => {
                    last = Some(i);
                    i += 1;
                }
                _ => {}
            }
        }
        i += 1;
    }
    last.map(|at| expr[..at].trim())
}

#[test]
fn the_threshold_split_finds_the_signal() {
    assert_eq!(
        without_threshold(r#"(sum(up{job="a"}) or vector(0)) < 1"#),
        Some(r#"(sum(up{job="a"}) or vector(0))"#)
    );
    assert_eq!(
        without_threshold(r#"max(m{phase="Revoked",x=~"a|b"}) > 0"#),
        Some(r#"max(m{phase="Revoked",x=~"a|b"})"#)
    );
    assert_eq!(
        without_threshold("min(a) - time() <= 86400"),
        Some("min(a) - time()")
    );
    assert_eq!(without_threshold(r#"m{a!="b"} == 1"#), Some(r#"m{a!="b"}"#));
    assert_eq!(without_threshold("rate(a[5m])"), None);
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A Prometheus of this test's own on a loopback port.
struct Prometheus {
    addr: std::net::SocketAddr,
    _process: Killed,
}

impl Prometheus {
    fn start(dir: &Path, target: std::net::SocketAddr, rules: &Value) -> Prometheus {
        let rules_file = dir.join("rules.yaml");
        std::fs::write(
            &rules_file,
            serde_yaml_ng::to_string(rules).expect("rules yaml"),
        )
        .expect("write rules");
        let config = serde_json::json!({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [rules_file],
            "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": [target.to_string()]}]}],
        });
        let config_file = dir.join("prometheus.yaml");
        std::fs::write(
            &config_file,
            serde_yaml_ng::to_string(&config).expect("config yaml"),
        )
        .expect("write config");
        let addr: std::net::SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let log = std::fs::File::create(dir.join("prometheus.log")).expect("log file");
        let child = Command::new(tool("MODELGATE_PROMETHEUS"))
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--storage.tsdb.retention.time=1h")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        Prometheus {
            addr,
            _process: Killed(vec![child]),
        }
    }

    fn get(&self, path: &str) -> Option<Value> {
        let (_, body) = try_http_get(self.addr, path)?;
        serde_json::from_str(&body).ok()
    }

    /// The result of an instant query, or Prometheus's error.
    fn query(&self, expr: &str) -> Result<Vec<Value>, String> {
        let answer = self
            .get(&format!("/api/v1/query?query={}", percent_encode(expr)))
            .ok_or_else(|| "no answer".to_string())?;
        if answer["status"] != "success" {
            return Err(format!("{}: {}", answer["errorType"], answer["error"]));
        }
        Ok(answer["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    fn series(&self, expr: &str) -> Vec<Value> {
        self.query(expr)
            .unwrap_or_else(|e| panic!("Prometheus refused {expr}: {e}"))
    }

    /// The series of `expr` once it has some, or none after 15 s: a rate or
    /// increase needs two scrapes of a series that has only just appeared.
    fn series_soon(&self, expr: &str) -> Vec<Value> {
        let deadline = Instant::now() + std::time::Duration::from_secs(15);
        loop {
            let series = self.series(expr);
            if !series.is_empty() || Instant::now() > deadline {
                return series;
            }
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
    }
}

/// A sample's value (NaN when it is not a number).
fn value(sample: &Value) -> f64 {
    sample["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

fn alert_expr<'a>(alerts: &'a [(String, String)], name: &str) -> &'a str {
    &alerts
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no alert {name}"))
        .1
}

#[test]
fn promtool_accepts_the_alert_rules() {
    let dir = scratch("promtool");
    let group = rule_group();
    let file = dir.join("rules.yaml");
    std::fs::write(&file, serde_yaml_ng::to_string(&group).expect("yaml")).expect("write");
    let out = Command::new(tool("MODELGATE_PROMTOOL"))
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .expect("run promtool");
    let said = text(&out);
    let n = alerts(&group).len();
    assert!(
        out.status.success() && said.contains(&format!("SUCCESS: {n} rules found")),
        "{said}"
    );
    // The warning window is a value.
    let docs = render(&[
        "--set",
        "metrics.prometheusRule.enabled=true,metrics.prometheusRule.expiringWithinDays=3",
    ]);
    let rule = docs
        .iter()
        .find(|d| d["kind"] == "PrometheusRule")
        .expect("rule");
    let expiring = alerts(&serde_json::json!({"groups": rule["spec"]["groups"]}));
    assert!(
        alert_expr(&expiring, "ModelgateApprovalExpiringSoon")
            .ends_with(&format!("< {}", 3 * 86400)),
        "{expiring:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_dashboard_ships_for_grafanas_sidecar() {
    assert!(
        !render(&[])
            .iter()
            .any(|d| d["metadata"]["name"] == "modelgate-dashboard"),
        "off by default"
    );
    let docs = render(&["--set", "metrics.grafanaDashboard.enabled=true"]);
    let cm = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap" && d["metadata"]["name"] == "modelgate-dashboard")
        .expect("the dashboard ConfigMap");
    assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1");
    let shipped: Value = serde_json::from_str(cm["data"]["modelgate.json"].as_str().expect("data"))
        .expect("the ConfigMap holds JSON");
    assert_eq!(
        shipped,
        dashboard(),
        "the ConfigMap holds dashboards/modelgate.json"
    );
    let titles: Vec<&str> = shipped["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .filter_map(|p| p["title"].as_str())
        .collect();
    for wanted in [
        "Approvals by phase",
        "Held deployments",
        "Revoked deployments",
        "Gate-to-rollout latency",
        "Reconcile errors",
        "Leader",
        "Writes",
    ] {
        assert!(titles.contains(&wanted), "no panel {wanted}: {titles:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_dashboard_query_and_alert_returns_series_from_a_real_prometheus() {
    let started = Instant::now();
    let operator = start_operator();
    let client = install_modelgate().await;
    let group = rule_group();
    let dir = scratch("prometheus");
    let prometheus = Prometheus::start(&dir, operator, &group);
    eventually(60, "Prometheus ready", || async {
        try_http_get(prometheus.addr, "/-/ready").and_then(|(code, _)| (code == 200).then_some(()))
    })
    .await;

    // Prometheus has scraped the operator before the rollout, so that the
    // rollout is an increase it sees (a rate needs two samples).
    eventually(60, "a first scrape", || async {
        let before = prometheus
            .query("modelgate_gate_to_rollout_seconds_count")
            .ok()?;
        (!before.is_empty()).then_some(())
    })
    .await;

    // An approval valid for a day (inside the 14-day warning), approved,
    // and the model it releases.
    let ns = TestNamespace::new(&client, "monitoring").await;
    let (_approvals, mds) =
        create_model(&client, &ns.name, "fd", "fd-1", "1.0.0", Some("24h")).await;
    approve_all(&ns.name, "fd-1").await;
    phase_within(&mds, "fd", DeploymentPhase::Available, 60).await;
    let rolled_out = Instant::now();
    eventually(
        60,
        "Prometheus to see the rollout and the expiry",
        || async {
            let rollouts = prometheus
                .query("modelgate_gate_to_rollout_seconds_count")
                .ok()?;
            // This test's approval lapses within a day; another test's
            // (or the demo's) may lapse later and be seen first.
            let expiry = prometheus
                .query("min(modelgate_approval_next_expiry_timestamp_seconds) - time() < 172800")
                .ok()?;
            (rollouts.iter().any(|s| value(s) >= 1.0) && !expiry.is_empty()).then_some(())
        },
    )
    .await;

    // Every panel shows something.
    for (title, expr) in dashboard_queries() {
        let series = prometheus.series_soon(&expr);
        println!(
            "panel {title:?}: {expr} -> {} series, e.g. {}",
            series.len(),
            series.first().map(value).unwrap_or(f64::NAN)
        );
        assert!(!series.is_empty(), "panel {title:?} shows nothing: {expr}");
        if title == "Gate-to-rollout latency" {
            let waited = value(&series[0]);
            assert!(
                waited.is_finite()
                    && waited >= 0.0
                    && waited <= started.elapsed().as_secs_f64() + 1.0,
                "a latency no rollout of this test had: {waited} ({expr})"
            );
        }
    }

    // Every alert evaluates, and its signal has series.
    let alerts = alerts(&group);
    for (name, expr) in &alerts {
        prometheus
            .query(expr)
            .unwrap_or_else(|e| panic!("alert {name} does not evaluate: {e}"));
        let signal = without_threshold(expr).unwrap_or(expr);
        let series = prometheus.series(signal);
        println!(
            "alert {name}: {signal} -> {:?}",
            series.iter().map(value).collect::<Vec<_>>()
        );
        assert!(!series.is_empty(), "alert {name} watches nothing: {signal}");
    }
    // Healthy: nobody is down, someone leads, the caches are synced.
    for name in [
        "ModelgateDown",
        "ModelgateNotLeading",
        "ModelgateCacheNotSynced",
    ] {
        let fired = prometheus.series(alert_expr(&alerts, name));
        assert!(
            fired.is_empty(),
            "{name} fires on a healthy operator: {fired:?}"
        );
    }
    // The approval expires within a day: inside the warning window.
    assert!(
        !prometheus
            .series(alert_expr(&alerts, "ModelgateApprovalExpiringSoon"))
            .is_empty(),
        "an approval expiring in 24h does not warn"
    );

    // A gate turns false: the deployment is revoked and the alert fires.
    set_gate(
        &ns.name,
        "fd-1",
        "SecurityReview",
        "False",
        "security@example.com",
    )
    .await
    .expect("revoke");
    phase_within(&mds, "fd", DeploymentPhase::Revoked, 60).await;
    let revoked = alert_expr(&alerts, "ModelgateDeploymentRevoked");
    eventually(60, "the revoked alert", || async {
        (!prometheus.query(revoked).ok()?.is_empty()).then_some(())
    })
    .await;
    // Prometheus evaluates the rules itself: all healthy, the alert firing.
    let firing = eventually(
        30,
        "ModelgateDeploymentRevoked firing in Prometheus",
        || async {
            let answer = prometheus.get("/api/v1/alerts")?;
            let list = answer["data"]["alerts"].as_array()?.clone();
            list.iter()
                .any(|a| {
                    a["labels"]["alertname"] == "ModelgateDeploymentRevoked"
                        && a["state"] == "firing"
                })
                .then_some(list)
        },
    )
    .await;
    println!(
        "alerts in Prometheus: {:?}",
        firing
            .iter()
            .map(|a| (a["labels"]["alertname"].clone(), a["state"].clone()))
            .collect::<Vec<_>>()
    );
    let rules = prometheus.get("/api/v1/rules").expect("rules");
    for rule in rules["data"]["groups"][0]["rules"]
        .as_array()
        .expect("loaded rules")
    {
        assert_eq!(
            rule["health"], "ok",
            "{}: {}",
            rule["name"], rule["lastError"]
        );
    }
    println!(
        "rollout seen {:.1}s after start; test took {:.1}s",
        rolled_out.duration_since(started).as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
