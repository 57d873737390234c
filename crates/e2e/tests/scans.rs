//! The chart and the image as a platform team checks them before it
//! installs: checkov (its `kubernetes` and `dockerfile` frameworks) and
//! kube-score over the rendered chart with every optional object on, and the
//! Dockerfile. Every finding is either fixed or listed, with why, in a skip
//! list under charts/modelgate/ci/; a finding missing from the list fails,
//! and so does an entry that no longer matches a finding.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use modelgate_e2e::{chart::*, cluster::*};
use serde_json::Value;

const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// One check that failed on one object: the key of a skip-list entry.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Finding {
    check: String,
    resource: String,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Skip {
    check: String,
    resource: String,
    reason: String,
}

/// The skip list at `path` (relative to the repository).
fn skips(path: &str) -> BTreeSet<Finding> {
    let text = std::fs::read_to_string(Path::new(REPO).join(path))
        .unwrap_or_else(|e| panic!("read {path}: {e}"));
    let list: Vec<Skip> =
        serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{path} is not a skip list: {e}"));
    let mut keys = BTreeSet::new();
    for s in list {
        assert!(
            s.reason.trim().len() >= 20,
            "{path}: {} on {} needs a reason a reviewer can check",
            s.check,
            s.resource
        );
        let key = Finding {
            check: s.check,
            resource: s.resource,
        };
        assert!(keys.insert(key.clone()), "{path}: {key:?} listed twice");
    }
    keys
}

/// Fails, naming both, unless `found` and the skip list at `path` match.
fn enforce(tool: &str, path: &str, found: &BTreeSet<Finding>) {
    let listed = skips(path);
    let unexplained: Vec<_> = found.difference(&listed).collect();
    let stale: Vec<_> = listed.difference(found).collect();
    println!(
        "{tool}: {} findings, {} of them listed with a reason in {path}",
        found.len(),
        found.len() - unexplained.len()
    );
    assert!(
        unexplained.is_empty() && stale.is_empty(),
        "{tool}: fix these or list them with a reason in {path}: {unexplained:#?}\n\
         listed in {path} but no longer found (remove them): {stale:#?}"
    );
}

/// The chart rendered with every optional object, written where the tools read it.
fn rendered(dir: &Path) -> std::path::PathBuf {
    let file = dir.join("modelgate.yaml");
    std::fs::write(&file, render_text(&["--set", EVERYTHING_ON])).expect("write rendered chart");
    file
}

#[test]
fn checkov_findings_are_fixed_or_listed() {
    let dir = scratch("checkov");
    let manifests = rendered(&dir);
    let started = std::time::Instant::now();
    let out = Command::new(tool("MODELGATE_CHECKOV"))
        .args(["--framework", "kubernetes", "dockerfile"])
        .arg("-f")
        .arg(&manifests)
        // Relative, so that the Dockerfile's resource name is the same on
        // every machine.
        .args(["-f", "Dockerfile"])
        .current_dir(REPO)
        // Offline: no guideline or policy download from the vendor's API.
        .args(["--skip-download", "--quiet", "--compact", "-o", "json"])
        .env("ANONYMOUS_TELEMETRY", "False")
        .output()
        .expect("run checkov");
    println!("checkov ran in {:.1}s", started.elapsed().as_secs_f64());
    // Exit code 1 means "findings": the skip list decides.
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("checkov said no JSON ({e}): {}", text(&out)));
    // One report per framework (a single one is not wrapped in a list).
    let reports = match report {
        Value::Array(r) => r,
        one => vec![one],
    };
    let frameworks: BTreeSet<&str> = reports
        .iter()
        .filter_map(|r| r["check_type"].as_str())
        .collect();
    assert_eq!(
        frameworks,
        BTreeSet::from(["dockerfile", "kubernetes"]),
        "both frameworks must have run: {}",
        text(&out)
    );
    let mut found = BTreeSet::new();
    for r in &reports {
        let summary = &r["summary"];
        println!(
            "checkov {}: {} passed, {} failed, {} parsing errors",
            r["check_type"], summary["passed"], summary["failed"], summary["parsing_errors"]
        );
        assert_eq!(summary["parsing_errors"], 0, "{}", r["check_type"]);
        assert!(
            summary["passed"].as_u64().unwrap_or(0) > 10,
            "checkov {} checked almost nothing: {summary}",
            r["check_type"]
        );
        for c in r["results"]["failed_checks"]
            .as_array()
            .into_iter()
            .flatten()
        {
            found.insert(Finding {
                check: c["check_id"].as_str().unwrap_or_default().into(),
                resource: c["resource"].as_str().unwrap_or_default().into(),
            });
        }
    }
    enforce("checkov", "charts/modelgate/ci/checkov-skips.yaml", &found);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn kube_score_findings_are_fixed_or_listed() {
    let dir = scratch("kube-score");
    let manifests = rendered(&dir);
    let out = Command::new(tool("MODELGATE_KUBE_SCORE"))
        .arg("score")
        .arg(&manifests)
        .args(["--output-format", "json"])
        .output()
        .expect("run kube-score");
    let objects: Vec<Value> = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("kube-score said no JSON ({e}): {}", text(&out)));
    let kinds: BTreeSet<&str> = objects
        .iter()
        .filter_map(|o| o["type_meta"]["kind"].as_str())
        .collect();
    for kind in [
        "Deployment",
        "Service",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "Pod",
    ] {
        assert!(
            kinds.contains(kind),
            "kube-score scored no {kind}: {kinds:?}"
        );
    }
    let mut found = BTreeSet::new();
    let mut scored = 0;
    for o in &objects {
        let resource = format!(
            "{}/{}",
            o["type_meta"]["kind"].as_str().unwrap_or_default(),
            o["object_meta"]["name"].as_str().unwrap_or_default()
        );
        for c in o["checks"].as_array().into_iter().flatten() {
            if c["skipped"] == true {
                continue;
            }
            scored += 1;
            // Grades: 10 all good, 7 almost, 5 warning, 1 critical.
            if c["grade"].as_u64().unwrap_or(0) < 10 {
                found.insert(Finding {
                    check: c["check"]["id"].as_str().unwrap_or_default().into(),
                    resource: resource.clone(),
                });
            }
        }
    }
    println!(
        "kube-score: {scored} checks scored over {} objects",
        objects.len()
    );
    enforce(
        "kube-score",
        "charts/modelgate/ci/kube-score-skips.yaml",
        &found,
    );
    let _ = std::fs::remove_dir_all(&dir);
}
