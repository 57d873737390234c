//! The operator under test: in-process once per test binary, or as its own
//! process with the chart's service account; its HTTP endpoints.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use std::process::{Child, Stdio};

use crate::{cluster::*, paths::*, users::*};

/// Starts the operator once for this test binary, in a thread of its own so
/// that it outlives each test's runtime.
pub fn start_operator() -> std::net::SocketAddr {
    static STARTED: OnceLock<std::net::SocketAddr> = OnceLock::new();
    *STARTED.get_or_init(|| {
        // The operator's logs, shown with a failing test's output.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "warn".into()),
            )
            .with_test_writer()
            .try_init();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().expect("operator runtime");
            runtime.block_on(async move {
                install_modelgate().await;
                let client = operator_client().await;
                let options = modelgate::operator::Options {
                    instance: Some("integration-test".into()),
                    listen: Some(([127, 0, 0, 1], 0).into()),
                    leader_election: None,
                    concurrency: 0,
                    records: Some(modelgate::records::key::KeyPlace::in_namespace(
                        modelgate::vocabulary::DEFAULT_NAMESPACE,
                    )),
                    registry: registry_options(),
                    import_resync: modelgate::context::DEFAULT_IMPORT_RESYNC,
                    scope: modelgate::runtime::Scope::default(),
                };
                let running =
                    modelgate::operator::start(client, options, futures::future::pending())
                        .await
                        .expect("operator starts");
                let _ = ready_tx.send(running.listening.expect("listening"));
                let _ = running.done.await;
            });
        });
        ready_rx
            .recv_timeout(Duration::from_secs(120))
            .expect("operator started")
    })
}

/// The local registry's CA, so that the operator resolves OCI models there.
pub fn registry_options() -> modelgate::artifact::registry::RegistryOptions {
    modelgate::artifact::registry::RegistryOptions {
        ca_files: vec![crate::registry::registry().ca.clone()],
        auth_file: None,
    }
}

/// A plain HTTP GET on loopback: (status code, body).
pub fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    try_http_get(addr, path).unwrap_or_else(|| panic!("nothing answers on {addr}"))
}

/// The same, None while nothing listens yet.
pub fn try_http_get(addr: std::net::SocketAddr, path: &str) -> Option<(u16, String)> {
    let request = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n");
    let (code, response) = try_http(addr, &request)?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((code, body))
}

/// Sends `request` as it is: (status code, the whole response with its
/// headers), None while nothing listens.
pub fn try_http(addr: std::net::SocketAddr, request: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    stream.write_all(request.as_bytes()).expect("send");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let code = response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Some((code, response))
}

/// The value of one sample line in a Prometheus text exposition (0 when absent).
pub fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0.0)
}

/// A kubeconfig that authenticates as the chart's service account with a
/// short-lived token, as the operator pod would.
pub fn service_account_kubeconfig(dir: &Path) -> PathBuf {
    let token = kubectl(&[
        "create",
        "token",
        "modelgate",
        "-n",
        modelgate::vocabulary::DEFAULT_NAMESPACE,
        "--duration",
        "1h",
    ]);
    assert!(token.status.success(), "create token: {}", text(&token));
    let token = String::from_utf8_lossy(&token.stdout).trim().to_string();
    let admin = std::fs::read_to_string(&cluster().kubeconfig).expect("admin kubeconfig");
    let admin: serde_json::Value = serde_yaml_ng::from_str(&admin).expect("kubeconfig yaml");
    let config = serde_json::json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": admin["clusters"],
        "users": [{"name": "modelgate", "user": {"token": token}}],
        "contexts": [{"name": "modelgate", "context": {"cluster": admin["clusters"][0]["name"], "user": "modelgate"}}],
        "current-context": "modelgate",
    });
    let path = dir.join("modelgate-sa.kubeconfig");
    std::fs::write(&path, serde_json::to_string(&config).unwrap_or_default())
        .expect("write kubeconfig");
    path
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(18090)
}

/// Starts the operator binary as the chart's service account.
pub fn operator_process(kubeconfig: &Path, name: &str, port: u16, extra: &[&str]) -> Child {
    Command::new(binary("modelgate"))
        .args([
            "--instance",
            name,
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--lease-duration",
            "10",
        ])
        .args(extra)
        .env("KUBECONFIG", kubeconfig)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        // MODELGATE_TEST_OPERATOR_LOGS=1 shows the operators' warnings.
        .stderr(
            if std::env::var_os("MODELGATE_TEST_OPERATOR_LOGS").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            },
        )
        .spawn()
        .expect("start modelgate")
}

pub struct Killed(pub Vec<Child>);
impl Drop for Killed {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
