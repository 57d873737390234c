//! The control plane every test binary shares: the cluster itself, kubectl,
//! the cluster admin's client, the CRDs and modelgate's manifests installed,
//! and a namespace per test.

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

use crate::{fixtures::*, users::*, wait::*};

/// Where the cluster is and which kubectl talks to it.
pub struct Cluster {
    pub kubeconfig: PathBuf,
    pub kubectl: PathBuf,
    pub helm: PathBuf,
    /// The API server's audit log.
    pub audit_log: PathBuf,
}

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
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

/// The value `hack/cluster.sh env` exports as `name`.
pub fn cluster_env(name: &str) -> String {
    env_value(&repo().join("hack/cluster.sh"), name)
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

/// kubectl's output as text, stdout then stderr.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
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

/// Installs everything the operator needs, as `kubectl apply -f crds/ &&
/// kubectl apply -k deploy/` would: CRDs, namespace, RBAC and the admission
/// policies. Once per test binary.
pub async fn install_modelgate() -> Client {
    static INSTALLED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    let client = install_crds().await;
    INSTALLED
        .get_or_init(|| async {
            let deploy = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/");
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
    let approvals: Api<modelgate::api::approval::ModelApproval> =
        Api::namespaced(admin.clone(), modelgate::vocabulary::DEFAULT_NAMESPACE);
    let probe = model_approval("policy-probe").version("0.0.1").build();
    let _ = approvals.create(&PostParams::default(), &probe).await;
    let outsider = person(
        "policy-probe@example.com",
        &["modelgate:technical-reviewers"],
    )
    .await;
    let api: Api<modelgate::api::approval::ModelApproval> =
        Api::namespaced(outsider, modelgate::vocabulary::DEFAULT_NAMESPACE);
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

/// The local control plane's OpenID provider (hack/oidc), which its API
/// server trusts: the console's sign-in tests use it.
pub struct Oidc {
    pub issuer: String,
    /// The CA of the provider's and the API server's certificates.
    pub ca: PathBuf,
    pub client_secret: String,
    /// The API server's address.
    pub api_server: String,
}

pub fn oidc() -> Oidc {
    let script = repo().join("hack/cluster.sh");
    let kubeconfig = Kubeconfig::read_from(&cluster().kubeconfig).expect("read kubeconfig");
    let api_server = kubeconfig
        .clusters
        .first()
        .and_then(|c| c.cluster.as_ref())
        .and_then(|c| c.server.clone())
        .expect("the kubeconfig names an API server");
    Oidc {
        issuer: env_value(&script, "MODELGATE_OIDC_ISSUER"),
        ca: PathBuf::from(env_value(&script, "MODELGATE_OIDC_CA")),
        client_secret: env_value(&script, "MODELGATE_OIDC_CLIENT_SECRET"),
        api_server,
    }
}
