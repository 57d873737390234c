//! The platform's RuntimeCatalog in tests. It is cluster-scoped and shared:
//! a test that depends on what it lists holds the catalog for its whole run,
//! and a guard puts its runtimes back to none when the test ends, panicking
//! or not, so that no other test (nor another test binary) sees runtimes
//! listed.

use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, Patch, PatchParams, PostParams};
use modelgate::api::deployment::ModelDeployment;
use serde_json::{Value, json};

use crate::{cluster::*, fixtures::*, wait::*};

/// The catalog the operator and admission read.
pub const CATALOG_NAME: &str = modelgate::vocabulary::RUNTIME_CATALOG;

/// An image no catalog of the tests lists.
pub const UNLISTED_IMAGE: &str = "registry.example.com/model-server:1.8";

/// Held by every test of a binary whose outcome depends on the catalog.
static CATALOG: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The catalog lock; on drop the catalog's runtimes are put back to none.
pub struct Catalog {
    _lock: tokio::sync::MutexGuard<'static, ()>,
}

impl Drop for Catalog {
    fn drop(&mut self) {
        // Drop cannot await: kubectl, as TestNamespace's drop does.
        let out = kubectl(&[
            "patch",
            "runtimecatalog",
            CATALOG_NAME,
            "--type=merge",
            "-p",
            r#"{"spec":{"runtimes":[]}}"#,
        ]);
        if !out.status.success() {
            eprintln!("could not empty the runtime catalog: {}", text(&out));
        }
    }
}

/// Takes the catalog, as it is.
pub async fn held() -> Catalog {
    Catalog {
        _lock: CATALOG.lock().await,
    }
}

/// Takes the catalog and lists `runtimes` in it (as the platform team),
/// then waits until admission in `ns` (governed) reads the new list.
pub async fn catalog(ns: &str, runtimes: Value) -> Catalog {
    let guard = held().await;
    guard.list(ns, runtimes).await;
    guard
}

impl Catalog {
    /// Lists `runtimes` (as the platform team) and waits until admission in
    /// `ns` (governed) reads them.
    pub async fn list(&self, ns: &str, runtimes: Value) {
        let listing = runtimes.as_array().is_some_and(|r| !r.is_empty());
        let api: Api<modelgate::api::runtime::RuntimeCatalog> = Api::all(admin().await);
        api.patch(
            CATALOG_NAME,
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"runtimes": runtimes}})),
        )
        .await
        .expect("set the runtime catalog");
        admission_reads(ns, listing).await;
    }
}

/// Waits until a dry run of an unlisted image is refused in `ns` exactly
/// when `listing`.
async fn admission_reads(ns: &str, listing: bool) {
    let probe = with_pod(
        "catalog-probe",
        "fd-v1",
        json!({"containers": [{"name": "server", "image": UNLISTED_IMAGE}]}),
    );
    let mds: Api<ModelDeployment> = Api::namespaced(admin().await, ns);
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    eventually(30, "admission to read the runtime catalog", || async {
        let refused = match mds.create(&dry, &probe).await {
            Err(kube::Error::Api(s)) => s.message.contains("not an approved serving runtime"),
            _ => false,
        };
        (refused == listing).then_some(())
    })
    .await;
}

/// A ModelDeployment `name` through `approval` whose pod spec is `pod`.
pub fn with_pod(name: &str, approval: &str, pod: Value) -> ModelDeployment {
    let mut md = serde_json::to_value(model_deployment(name).approval(approval).build())
        .expect("ModelDeployment as JSON");
    md["spec"]["template"]["spec"] = pod;
    serde_json::from_value(md).expect("ModelDeployment manifest")
}

/// One container `server` of runtime `image`, with `extra` fields.
pub fn runtime_pod(image: &str, extra: Value) -> Value {
    let mut container = json!({"name": "server", "image": image});
    if let (Some(c), Some(e)) = (container.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    json!({"containers": [container]})
}

/// A NetworkPolicy that lets every pod of its namespace reach anywhere:
/// what the operator's egress policies must never be widened by.
pub fn allow_all_egress(name: &str) -> NetworkPolicy {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{}]},
    }))
    .expect("NetworkPolicy")
}
