//! The bench's view of the cluster: clients for the admin and for reviewers,
//! the operator as a child process under its service account, and the API
//! server's own request counters.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use modelgate::api::gates::Gate;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The kubeconfig the bench runs with (KUBECONFIG, as kubectl reads it).
pub fn kubeconfig_path() -> Result<PathBuf, BoxError> {
    std::env::var_os("KUBECONFIG")
        .map(PathBuf::from)
        .ok_or_else(|| {
            "KUBECONFIG is not set: run hack/bench.sh, which brings up the local control plane"
                .into()
        })
}

/// A client as the admin, or impersonating `user` in `groups`.
pub async fn client(user: Option<&str>, groups: &[&str]) -> Result<Client, BoxError> {
    let kubeconfig = Kubeconfig::read_from(kubeconfig_path()?)?;
    let mut config =
        Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    // Bulk work: do not let client-side rate limits hide server costs.
    config.read_timeout = Some(std::time::Duration::from_secs(60));
    if let Some(user) = user {
        config.auth_info.impersonate = Some(user.to_string());
        let mut all: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        all.push("system:authenticated".into());
        config.auth_info.impersonate_groups = Some(all);
    }
    Ok(Client::try_from(config)?)
}

/// A reviewer of `gate`, named after it and `n`.
pub async fn reviewer(gate: Gate, n: usize) -> Result<(Client, String), BoxError> {
    let name = format!("{}-{n}@bench.example.com", gate.short_name());
    Ok((client(Some(&name), &[gate.default_group()]).await?, name))
}

/// Writes a kubeconfig that authenticates as the operator's service account.
pub async fn operator_kubeconfig(admin: &Client, dir: &Path) -> Result<PathBuf, BoxError> {
    let sas: Api<ServiceAccount> =
        Api::namespaced(admin.clone(), modelgate::vocabulary::DEFAULT_NAMESPACE);
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(7200),
            ..Default::default()
        }),
        ..Default::default()
    };
    let token = sas
        .create_token_request("modelgate", &PostParams::default(), &request)
        .await?;
    let token = token
        .status
        .map(|s| s.token)
        .ok_or("no token issued for the operator's service account")?;
    let admin_config: serde_json::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(kubeconfig_path()?)?)?;
    let config = serde_json::json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": admin_config["clusters"],
        "users": [{"name": "modelgate", "user": {"token": token}}],
        "contexts": [{"name": "modelgate", "context": {"cluster": admin_config["clusters"][0]["name"], "user": "modelgate"}}],
        "current-context": "modelgate",
    });
    let path = dir.join("operator.kubeconfig");
    std::fs::write(&path, serde_json::to_string(&config)?)?;
    Ok(path)
}

/// The operator as a child process; killed when dropped, so that a failed
/// or interrupted scenario does not leave it running.
pub struct Operator(Child);

impl Operator {
    pub fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The operator binary beside this one (or the one MODELGATE_BENCH_OPERATOR
/// names, to compare two builds in one run of the bench), started as its
/// service account. Its warnings go to the file MODELGATE_BENCH_OPERATOR_LOG
/// names, if any.
pub fn start_operator(kubeconfig: &Path, port: u16) -> Result<Operator, BoxError> {
    start_operator_with(kubeconfig, port, &[])
}

/// The same, with more of the operator's environment (its flags' variables).
pub fn start_operator_with(
    kubeconfig: &Path,
    port: u16,
    env: &[(&str, &str)],
) -> Result<Operator, BoxError> {
    let bin = match std::env::var_os("MODELGATE_BENCH_OPERATOR") {
        Some(path) => std::path::PathBuf::from(path),
        None => std::env::current_exe()?.with_file_name("modelgate"),
    };
    let (log, level) = match std::env::var_os("MODELGATE_BENCH_OPERATOR_LOG") {
        Some(path) => (
            Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            ),
            "warn",
        ),
        None => (Stdio::null(), "error"),
    };
    let child = Command::new(bin)
        .args([
            "--instance",
            "bench",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--leader-elect=false",
        ])
        .env("KUBECONFIG", kubeconfig)
        .env("RUST_LOG", level)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()?;
    Ok(Operator(child))
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(18099)
}

/// The operator's own metrics text.
pub fn operator_metrics(port: u16) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = write!(s, "GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// The value of one series in a Prometheus exposition (summed over lines
/// that start with `prefix`).
pub fn sum_series(metrics: &str, prefix: &str, containing: &[&str]) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(prefix) && containing.iter().all(|c| l.contains(c)))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum()
}

/// The API server's requests so far that a controller pays for (not the
/// bench's list polling): GET, POST, PATCH, PUT on the resources modelgate
/// touches.
pub async fn api_requests(admin: &Client) -> Result<Requests, BoxError> {
    let req = http::Request::get("/metrics").body(Vec::new())?;
    let text = admin.request_text(req).await?;
    let mut counts = Requests::new();
    for resource in [
        "modelapprovals",
        "modeldeployments",
        "deployments",
        "events",
        "approvalrecords",
        "recordcheckpoints",
        "approvalpolicies",
    ] {
        for verb in ["GET", "POST", "PATCH", "APPLY", "PUT"] {
            let n = sum_series(
                &text,
                "apiserver_request_total{",
                &[
                    &format!("resource=\"{resource}\""),
                    &format!("verb=\"{verb}\""),
                ],
            );
            counts.insert(format!("{verb} {resource}"), n);
        }
    }
    Ok(counts)
}

/// API requests by "VERB resource", from the API server's own counters.
pub type Requests = std::collections::BTreeMap<String, f64>;

/// What happened between two readings: the total and the non-zero parts.
pub fn requests_between(before: &Requests, after: &Requests) -> (f64, String) {
    let parts: Vec<(String, f64)> = after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, n)| *n > 0.0)
        .collect();
    let total = parts.iter().map(|(_, n)| n).sum();
    let text = parts
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    (total, text)
}
