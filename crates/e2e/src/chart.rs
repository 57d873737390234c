//! The Helm chart as the tests render it, and the tools that check what it
//! renders (installed by hack/tools.sh, which hack/test.sh runs first).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::cluster::*;

pub const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../charts/modelgate");

/// Every optional object of the chart switched on, so that checks of the
/// rendered chart see every template.
pub const EVERYTHING_ON: &str = "networkPolicy.enabled=true,metrics.serviceMonitor.enabled=true,metrics.prometheusRule.enabled=true,metrics.grafanaDashboard.enabled=true,console.enabled=true,console.ingress.enabled=true,console.ingress.host=modelgate.example.com,console.externalURL=https://modelgate.example.com,console.oidc.issuerURL=https://sso.example.com,console.oidc.clientSecret.name=modelgate-console-oidc";

/// Runs helm against the cluster.
pub fn helm(args: &[&str]) -> Output {
    let c = cluster();
    Command::new(&c.helm)
        .arg("--kubeconfig")
        .arg(&c.kubeconfig)
        .args(args)
        .output()
        .expect("run helm")
}

/// `helm template` of the chart into modelgate-system, as YAML text.
pub fn render_text(extra: &[&str]) -> String {
    let mut args = vec![
        "template",
        "modelgate",
        CHART,
        "--namespace",
        modelgate::vocabulary::DEFAULT_NAMESPACE,
    ];
    args.extend(extra);
    let out = helm(&args);
    assert!(out.status.success(), "helm template: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The rendered chart's documents.
pub fn render(extra: &[&str]) -> Vec<serde_json::Value> {
    serde_yaml_ng::Deserializer::from_str(&render_text(extra))
        .filter_map(|d| serde::Deserialize::deserialize(d).ok())
        .filter(|v: &serde_json::Value| !v.is_null())
        .collect()
}

/// The path of one tool that `hack/tools.sh env` names (MODELGATE_CHECKOV,
/// MODELGATE_KUBE_SCORE, MODELGATE_PROMETHEUS, MODELGATE_PROMTOOL); the
/// environment wins, as hack/test.sh exports them.
pub fn tool(name: &str) -> PathBuf {
    let path = match std::env::var_os(name) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => {
            let script =
                Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")).join("hack/tools.sh");
            let out = Command::new(&script)
                .arg("env")
                .output()
                .expect("run hack/tools.sh env");
            let prefix = format!("export {name}=");
            let said = String::from_utf8_lossy(&out.stdout).into_owned();
            PathBuf::from(
                said.lines()
                    .find_map(|l| l.strip_prefix(&prefix))
                    .unwrap_or_else(|| panic!("hack/tools.sh env does not say {name}")),
            )
        }
    };
    assert!(
        path.exists(),
        "{} is missing: run hack/tools.sh (hack/test.sh does)",
        path.display()
    );
    path
}

/// A directory of this test's own under the system's temp dir, emptied first.
pub fn scratch(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("modelgate-{what}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}
