//! The shared harness of the integration tests: a real control plane (the
//! one `KUBECONFIG` names, or the local one that `hack/cluster.sh up`
//! starts), the CRDs installed, and a namespace per test.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, Config};

/// Where the cluster is and which kubectl talks to it.
pub struct Cluster {
    pub kubeconfig: PathBuf,
    pub kubectl: PathBuf,
    pub helm: PathBuf,
    /// The API server's audit log.
    pub audit_log: PathBuf,
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The cluster every test of this binary shares, brought up once.
pub fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        let script = repo().join("hack/cluster.sh");
        let kubeconfig = match std::env::var_os("KUBECONFIG") {
            Some(k) if !k.is_empty() => PathBuf::from(k),
            _ => {
                let status = Command::new(&script)
                    .arg("up")
                    .status()
                    .expect("run hack/cluster.sh up");
                assert!(status.success(), "hack/cluster.sh up failed");
                PathBuf::from(env_value(&script, "KUBECONFIG"))
            }
        };
        let kubectl = PathBuf::from(env_value(&script, "MODELGATE_KUBECTL"));
        let helm = PathBuf::from(env_value(&script, "MODELGATE_HELM"));
        let audit_log = PathBuf::from(env_value(&script, "MODELGATE_AUDIT_LOG"));
        Cluster {
            kubeconfig,
            kubectl,
            helm,
            audit_log,
        }
    })
}

/// One `export NAME=value` line of `hack/cluster.sh env`.
fn env_value(script: &Path, name: &str) -> String {
    let out = Command::new(script)
        .arg("env")
        .output()
        .expect("run hack/cluster.sh env");
    let text = String::from_utf8_lossy(&out.stdout);
    let prefix = format!("export {name}=");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix).map(str::to_string))
        .unwrap_or_else(|| panic!("hack/cluster.sh env does not say {name}"))
}

/// A client as the cluster admin.
pub async fn admin() -> Client {
    client_as(None, &[]).await
}

/// A client that impersonates `user` in `groups` (the admin may impersonate).
pub async fn client_as(user: Option<&str>, groups: &[&str]) -> Client {
    let kubeconfig = Kubeconfig::read_from(&cluster().kubeconfig).expect("read kubeconfig");
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("load kubeconfig");
    if let Some(user) = user {
        config.auth_info.impersonate = Some(user.to_string());
        config.auth_info.impersonate_groups = Some(groups.iter().map(|g| g.to_string()).collect());
    }
    Client::try_from(config).expect("build client")
}

/// Runs kubectl against the cluster.
pub fn kubectl(args: &[&str]) -> Output {
    kubectl_stdin(args, None)
}

/// Runs kubectl with `stdin` as its standard input.
pub fn kubectl_stdin(args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write;
    let c = cluster();
    let mut cmd = Command::new(&c.kubectl);
    cmd.arg("--kubeconfig").arg(&c.kubeconfig).args(args);
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("run kubectl");
    if let (Some(mut pipe), Some(input)) = (child.stdin.take(), stdin) {
        pipe.write_all(input.as_bytes())
            .expect("write kubectl stdin");
    }
    child.wait_with_output().expect("wait for kubectl")
}

/// Installs the CRDs from crds/ (once per test binary) and waits until both
/// are established.
pub async fn install_crds() -> Client {
    static INSTALLED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    let client = admin().await;
    INSTALLED
        .get_or_init(|| async {
            let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
            for crd in modelgate::crd::all() {
                let name = crd.metadata.name.clone().expect("crd name");
                crds.patch(
                    &name,
                    &PatchParams::apply("modelgate-tests").force(),
                    &Patch::Apply(&crd),
                )
                .await
                .expect("apply crd");
                tokio::time::timeout(
                    Duration::from_secs(30),
                    await_condition(crds.clone(), &name, conditions::is_crd_established()),
                )
                .await
                .expect("crd established in time")
                .expect("watch crd");
            }
        })
        .await;
    client
}

/// A namespace of one test, deleted when dropped.
pub struct TestNamespace {
    pub name: String,
}

impl TestNamespace {
    pub async fn new(client: &Client, prefix: &str) -> TestNamespace {
        let suffix = format!(
            "{:x}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
                & 0xffffff
        );
        let name = format!("{prefix}-{suffix}");
        let ns: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": name}}))
            .expect("namespace");
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .expect("create namespace");
        TestNamespace { name }
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        // Drop cannot await; kubectl deletes without waiting for finalisation.
        let _ = kubectl(&["delete", "namespace", &self.name, "--wait=false"]);
    }
}

/// Deletes `name` of kind `K` if it exists; for cleanup inside a test.
pub async fn delete_if_exists<K>(api: &Api<K>, name: &str)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let _ = api.delete(name, &DeleteParams::default()).await;
}

/// Polls `check` every 100 ms until it returns Some, or panics after `secs`.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {secs}s waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// kubectl's output as text, stdout then stderr.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The operator's identity, as its service account authenticates.
pub const OPERATOR_USER: &str = "system:serviceaccount:modelgate-system:modelgate";
pub const OPERATOR_GROUPS: [&str; 3] = [
    "system:serviceaccounts",
    "system:serviceaccounts:modelgate-system",
    "system:authenticated",
];

/// A client that acts as the operator's service account, so the admission
/// policies see exactly the identity they see in a cluster.
pub async fn operator_client() -> Client {
    client_as(Some(OPERATOR_USER), &OPERATOR_GROUPS).await
}

/// The default reviewer group of a gate (None for anything else).
pub fn group_of(gate: &str) -> Option<&'static str> {
    modelgate::api::Gate::from_condition_type(gate).map(|g| g.default_group())
}

/// A client for a person in `groups` (authenticated, like any real user).
pub async fn person(user: &str, groups: &[&str]) -> Client {
    let mut all: Vec<&str> = groups.to_vec();
    all.push("system:authenticated");
    client_as(Some(user), &all).await
}

/// Installs everything the operator needs, as `kubectl apply -f crds/ &&
/// kubectl apply -k deploy/` would: CRDs, namespace, RBAC and the admission
/// policies. Once per test binary.
pub async fn install_modelgate() -> Client {
    static INSTALLED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    let client = install_crds().await;
    INSTALLED
        .get_or_init(|| async {
            let deploy = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/");
            let out = kubectl(&["apply", "--server-side", "--force-conflicts", "-k", deploy]);
            assert!(
                out.status.success(),
                "kubectl apply -k deploy/: {}",
                text(&out)
            );
            wait_for_policies(&client).await;
        })
        .await;
    client
}

/// A new ValidatingAdmissionPolicy takes a moment to be enforced: probe with
/// a dry-run write it must refuse until it does.
async fn wait_for_policies(admin: &Client) {
    let approvals: Api<modelgate::api::ModelApproval> =
        Api::namespaced(admin.clone(), "modelgate-system");
    let probe = approval_manifest("policy-probe", "0.0.1", None);
    let _ = approvals.create(&PostParams::default(), &probe).await;
    let outsider = person(
        "policy-probe@example.com",
        &["modelgate:technical-reviewers"],
    )
    .await;
    let api: Api<modelgate::api::ModelApproval> = Api::namespaced(outsider, "modelgate-system");
    let patch = serde_json::json!({
        "apiVersion": "modelgate.io/v1alpha1", "kind": "ModelApproval", "metadata": {"name": "policy-probe"},
        "status": {"conditions": [{"type": "FairnessReview", "status": "True", "reviewer": "policy-probe@example.com"}]},
    });
    let params = PatchParams::apply("policy-probe").force().dry_run();
    eventually(120, "the admission policies to be enforced", || async {
        match api
            .patch_status("policy-probe", &params, &Patch::Apply(&patch))
            .await
        {
            Err(kube::Error::Api(s)) if s.message.contains("may only be set by members") => {
                Some(())
            }
            _ => None,
        }
    })
    .await;
}

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

/// A distinct, valid digest for each model version.
pub fn digest_of(version: &str) -> String {
    let hex: String = version.bytes().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex:0>64}")
}

/// A ModelApproval manifest for `fraud-detector` at `version`.
pub fn approval_manifest(
    name: &str,
    version: &str,
    valid_for: Option<&str>,
) -> modelgate::api::ModelApproval {
    let mut spec = serde_json::json!({
        "model": {"name": "fraud-detector", "version": version, "uri": format!("s3://models/fraud-detector/{version}/"), "digest": digest_of(version)},
    });
    if let Some(v) = valid_for {
        spec["validFor"] = v.into();
    }
    serde_json::from_value(serde_json::json!({
        "apiVersion": "modelgate.io/v1alpha1", "kind": "ModelApproval",
        "metadata": {"name": name}, "spec": spec,
    }))
    .expect("approval manifest")
}

/// Sets all five gates True, each by a reviewer of its own.
pub async fn approve_all(ns: &str, name: &str) {
    for gate in [
        "TechnicalReview",
        "FairnessReview",
        "SecurityReview",
        "LegalReview",
        "BusinessReview",
    ] {
        set_gate(
            ns,
            name,
            gate,
            "True",
            &format!("{}@example.com", gate.to_ascii_lowercase()),
        )
        .await
        .expect("set gate");
    }
}

/// A ModelDeployment manifest serving through `approval`.
pub fn deployment_manifest(
    name: &str,
    approval: &str,
    replicas: Option<i32>,
    on_revoke: &str,
) -> modelgate::api::ModelDeployment {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "modelgate.io/v1alpha1", "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {
            "approvalRef": {"name": approval}, "replicas": replicas, "onRevoke": on_revoke,
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [
                {"name": "server", "image": "registry.example.com/model-server:1.8", "env": [{"name": "LOG_LEVEL", "value": "info"}]}
            ]}},
        },
    }))
    .expect("deployment manifest")
}

/// Creates, in `ns`, the ModelApproval `approval` for `fraud-detector` at
/// `version` and the ModelDeployment `md` serving through it (one replica,
/// Hold on revoke); returns the two APIs of the namespace.
pub async fn create_model(
    client: &kube::Client,
    ns: &str,
    md: &str,
    approval: &str,
    version: &str,
    valid_for: Option<&str>,
) -> (
    kube::Api<modelgate::api::ModelApproval>,
    kube::Api<modelgate::api::ModelDeployment>,
) {
    let approvals = kube::Api::namespaced(client.clone(), ns);
    let mds = kube::Api::namespaced(client.clone(), ns);
    let create = kube::api::PostParams::default();
    approvals
        .create(&create, &approval_manifest(approval, version, valid_for))
        .await
        .expect("approval");
    mds.create(&create, &deployment_manifest(md, approval, Some(1), "Hold"))
        .await
        .expect("md");
    (approvals, mds)
}

/// Sets one gate as a reviewer would: as that reviewer, a member of the
/// gate's default group, with server-side apply of that one condition on the
/// status subresource, under a field manager of its own.
pub async fn set_gate(
    ns: &str,
    name: &str,
    gate: &str,
    status: &str,
    reviewer: &str,
) -> Result<(), kube::Error> {
    let groups: Vec<&str> = group_of(gate).into_iter().collect();
    let reviewer_client = person(
        if reviewer.is_empty() {
            "anonymous-reviewer@example.com"
        } else {
            reviewer
        },
        &groups,
    )
    .await;
    set_gate_as(&reviewer_client, ns, name, gate, status, reviewer).await
}

/// Sets one gate with `client`'s identity, whatever `reviewer` says.
pub async fn set_gate_as(
    client: &Client,
    ns: &str,
    name: &str,
    gate: &str,
    status: &str,
    reviewer: &str,
) -> Result<(), kube::Error> {
    use modelgate::api::Gate;
    let api: Api<modelgate::api::ModelApproval> = Api::namespaced(client.clone(), ns);
    let reason = if status == "True" { "Passed" } else { "Failed" };
    let message = format!("{gate} reviewed by {reviewer}");
    // Some tests write a condition type that is no gate, to see it refused
    // or reported: the same write as a gate's, with that type instead.
    let known = Gate::from_condition_type(gate);
    let mut patch = modelgate::api::review::gate_patch(
        name,
        known.unwrap_or(Gate::Technical),
        status,
        reason,
        Some(&message),
        reviewer,
        jiff::Timestamp::now(),
    );
    if known.is_none() {
        patch["status"]["conditions"][0]["type"] = gate.into();
    }
    let manager = format!("reviewer-{}", gate.to_ascii_lowercase());
    api.patch_status(
        name,
        &PatchParams::apply(&manager).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map(|_| ())
}

/// The events.k8s.io Events about object `name` in `ns`, oldest first.
pub async fn events_for(
    client: &Client,
    ns: &str,
    name: &str,
) -> Vec<k8s_openapi::api::events::v1::Event> {
    let api: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), ns);
    let mut events: Vec<_> = api
        .list(&Default::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .collect();
    events.sort_by_key(|e| e.event_time.as_ref().map(|t| t.0));
    events
}

/// Counts the writes to object `name` over `window`, from a watch that
/// starts at `resource_version`.
pub async fn count_writes<K>(
    api: &Api<K>,
    name: &str,
    resource_version: &str,
    window: Duration,
) -> usize
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    use futures::StreamExt;
    let params = kube::api::WatchParams::default()
        .fields(&format!("metadata.name={name}"))
        .timeout(window.as_secs().max(1) as u32 + 5);
    let stream = api.watch(&params, resource_version).await.expect("watch");
    let mut stream = std::pin::pin!(stream);
    let mut writes = 0;
    let deadline = tokio::time::sleep(window);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => return writes,
            ev = stream.next() => match ev {
                Some(Ok(kube::api::WatchEvent::Modified(_))) | Some(Ok(kube::api::WatchEvent::Deleted(_))) => writes += 1,
                Some(_) => {}
                None => return writes,
            },
        }
    }
}

/// A plain HTTP GET on loopback: (status code, body).
pub fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    try_http_get(addr, path).unwrap_or_else(|| panic!("nothing answers on {addr}"))
}

/// The same, None while nothing listens yet.
pub fn try_http_get(addr: std::net::SocketAddr, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").expect("send");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let code = response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((code, body))
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

// ---- the operator as a process, as the chart's service account ----

use std::process::{Child, Stdio};

/// A kubeconfig that authenticates as the chart's service account with a
/// short-lived token, as the operator pod would.
pub fn service_account_kubeconfig(dir: &Path) -> PathBuf {
    let token = kubectl(&[
        "create",
        "token",
        "modelgate",
        "-n",
        "modelgate-system",
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
    Command::new(env!("CARGO_BIN_EXE_modelgate"))
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
