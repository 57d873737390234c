//! Sealed pods at admission (docs/artifacts.md), against the real API
//! server: a developer with the built-in `edit` role and the model-owner
//! role tries to make a ModelDeployment load something other than a listed
//! runtime and the approved model, or to write a governed namespace's
//! NetworkPolicies. Each attempt is refused with a message that says what
//! is allowed, and nothing is created or changed.
//!
//! RuntimeCatalog `modelgate` is cluster-scoped and shared: the tests that
//! depend on what it lists hold `CATALOG` for their whole run, and a guard
//! puts its runtimes back to none when they end, panicking or not, so that
//! no other test (nor another test binary) sees a catalog listing runtimes.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use modelgate::api::approval::ModelApproval;
use modelgate::api::deployment::ModelDeployment;
use modelgate_e2e::catalog::{
    CATALOG_NAME, UNLISTED_IMAGE, allow_all_egress, catalog, runtime_pod, with_pod,
};
use modelgate_e2e::refusal::{self, refused};
use modelgate_e2e::registry::{push_model, tiny_model};
use modelgate_e2e::{cluster::*, fixtures::*, users::*, wait::*};
use serde_json::{Value, json};

const SERVER_IMAGE: &str = UNLISTED_IMAGE;

fn vllm() -> String {
    format!("registry.example.com/vllm@sha256:{}", "ab".repeat(32))
}

fn triton() -> String {
    format!(
        "registry.example.com/tritonserver@sha256:{}",
        "cd".repeat(32)
    )
}

/// The catalog these tests list: vLLM with three flags and one variable,
/// Triton with one flag.
fn runtimes() -> Value {
    json!([
        {"name": "vllm", "image": vllm(), "args": ["--port", "--max-model-len", "--served-model-name"], "env": ["VLLM_LOGGING_LEVEL"]},
        {"name": "triton", "image": triton(), "args": ["--http-port"]},
    ])
}

/// A ModelDeployment `name` through approval `fd-v1` whose pod spec is
/// `pod` (the rest as the fixture makes it).
fn deployment(name: &str, pod: Value) -> ModelDeployment {
    with_pod(name, "fd-v1", pod)
}

/// A namespace where the developer holds `edit` and model-owner; governed
/// when told. For a governed one, waits until the sealing rules apply there.
async fn namespace(client: &Client, prefix: &str, governed: bool) -> TestNamespace {
    let ns = TestNamespace::new(client, prefix).await;
    if governed {
        let out = kubectl(&["label", "namespace", &ns.name, "modelgate.io/governed=true"]);
        assert!(out.status.success(), "label namespace: {}", text(&out));
    }
    bind_developer(client, &ns.name).await;
    if governed {
        sealing_applies(client, &ns.name).await;
    }
    ns
}

/// Waits until the new policies (and the namespace's label) are in force
/// in `ns`: a hostPath volume and a NetworkPolicy are refused (dry runs).
async fn sealing_applies(client: &Client, ns: &str) {
    let mds: Api<ModelDeployment> = Api::namespaced(client.clone(), ns);
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), ns);
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    // A listed runtime's image passes the runtime checks whatever the
    // catalog lists, so the volume rule is what refuses it.
    let mut pod = runtime_pod(&vllm(), json!({}));
    pod["volumes"] = json!([{"name": "data", "hostPath": {"path": "/data"}}]);
    let host_path = deployment("probe", pod);
    let open = allow_all_egress("probe");
    eventually(
        60,
        "the sealing rules in a new governed namespace",
        || async {
            let volume = matches!(mds.create(&dry, &host_path).await,
            Err(kube::Error::Api(s)) if s.message.contains("is of kind hostPath"));
            let policy = matches!(policies.create(&dry, &open).await,
            Err(kube::Error::Api(s)) if s.message.contains("NetworkPolicies here"));
            (volume && policy).then_some(())
        },
    )
    .await;
}

/// Asserts that the developer's attempt to create `md` in `api` was refused
/// with every phrase of `says`, and that no ModelDeployment of that name
/// exists afterwards.
async fn refused_create(
    api: &Api<ModelDeployment>,
    what: &str,
    md: &ModelDeployment,
    says: &[&str],
) {
    refused(what, api.create(&PostParams::default(), md).await, says).with_code(&[403]);
    let name = md.metadata.name.clone().unwrap_or_default();
    assert!(
        api.get_opt(&name).await.expect("read back").is_none(),
        "{what}: ModelDeployment {name} exists after the refusal"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_governed_deployment_runs_only_listed_runtimes_with_their_flags_and_env() {
    let client = install_modelgate().await;
    let ns = namespace(&client, "sealed-runtimes", true).await;
    let _catalog = catalog(&ns.name, runtimes()).await;
    let api: Api<ModelDeployment> = Api::namespaced(developer().await, &ns.name);
    let listed = format!("vllm ({}), triton ({})", vllm(), triton());
    let not_runtime = "which is not an approved serving runtime";

    let other_digest = format!("registry.example.com/vllm@sha256:{}", "ef".repeat(32));
    let cases: Vec<(&str, Value, Vec<String>)> = vec![
        ("another image", runtime_pod(SERVER_IMAGE, json!({})), vec![format!("container server of ModelDeployment md runs {SERVER_IMAGE}"), listed.clone()]),
        ("the runtime's repository by tag, not digest", runtime_pod("registry.example.com/vllm:0.9.1", json!({})), vec![format!("runs registry.example.com/vllm:0.9.1, {not_runtime}")]),
        ("the runtime's repository at another digest (baked weights)", runtime_pod(&other_digest, json!({})), vec![format!("runs {other_digest}, {not_runtime}"), listed.clone()]),
        ("an init container that is no runtime", {
            let mut pod = runtime_pod(&vllm(), json!({}));
            pod["initContainers"] = json!([{"name": "fetch-weights", "image": "busybox:1.37", "args": ["wget", "https://elsewhere.example/weights"]}]);
            pod
        }, vec![format!("container fetch-weights of ModelDeployment md runs busybox:1.37, {not_runtime}"), listed.clone()]),
        ("a command", runtime_pod(&vllm(), json!({"command": ["sh", "-c", "curl https://elsewhere.example/w | tar x; vllm serve /w"]})), vec!["container server of ModelDeployment md sets command".into(), "leave command out".into()]),
        ("an exec probe", runtime_pod(&vllm(), json!({"startupProbe": {"exec": {"command": ["sh", "-c", "curl https://elsewhere.example/w"]}}})), vec!["has an exec probe or lifecycle hook".into()]),
        ("--model=https://elsewhere", runtime_pod(&vllm(), json!({"args": ["--port=8000", "--model=https://elsewhere.example/weights"]})), vec!["argument --model=https://elsewhere.example/weights of container server is not a flag runtime vllm takes (it takes --port, --max-model-len, --served-model-name".into()]),
        ("--model and the URL in the next argument", runtime_pod(&vllm(), json!({"args": ["--model", "https://elsewhere.example/weights"]})), vec!["argument --model of container server is not a flag runtime vllm takes".into()]),
        ("a listed flag's value in the next argument", runtime_pod(&vllm(), json!({"args": ["--served-model-name", "https://elsewhere.example/weights"]})), vec!["argument https://elsewhere.example/weights of container server is not a flag runtime vllm takes".into(), "a value in the next argument is not accepted".into()]),
        ("another runtime's flag", runtime_pod(&triton(), json!({"args": ["--port=8000"]})), vec!["argument --port=8000 of container server is not a flag runtime triton takes (it takes --http-port".into()]),
        ("an environment variable not listed", runtime_pod(&vllm(), json!({"env": [{"name": "VLLM_LOGGING_LEVEL", "value": "INFO"}, {"name": "HF_ENDPOINT", "value": "https://elsewhere.example"}]})), vec!["environment variable HF_ENDPOINT of container server is not one runtime vllm takes (it takes VLLM_LOGGING_LEVEL, MODEL_NAME, MODEL_VERSION, MODEL_URI, MODEL_DIGEST, MODEL_PATH)".into()]),
        ("envFrom", runtime_pod(&vllm(), json!({"envFrom": [{"configMapRef": {"name": "anything"}}]})), vec!["container server of ModelDeployment md uses envFrom".into()]),
    ];
    for (what, pod, says) in cases {
        let says: Vec<&str> = says.iter().map(String::as_str).collect();
        refused_create(&api, what, &deployment("md", pod), &says).await;
    }

    // What the catalog allows is admitted, as the developer: a listed
    // runtime, its flags alone or FLAG=VALUE, its variable and modelgate's,
    // a configuration volume.
    let good = runtime_pod(
        &vllm(),
        json!({"args": ["--port=8000", "--max-model-len=4096", "--served-model-name=fraud-detector"],
               "env": [{"name": "VLLM_LOGGING_LEVEL", "value": "INFO"}, {"name": "MODEL_PATH", "value": "/models/fraud-detector"}],
               "volumeMounts": [{"name": "config", "mountPath": "/etc/vllm"}]}),
    );
    let mut good = good;
    good["volumes"] = json!([{"name": "config", "configMap": {"name": "vllm-config"}}]);
    good["initContainers"] =
        json!([{"name": "warm-up", "image": triton(), "args": ["--http-port=8001"]}]);
    api.create(&PostParams::default(), &deployment("md", good))
        .await
        .expect("a ModelDeployment of listed runtimes is admitted");

    // A change is checked as a creation is, and leaves the object as it was.
    let before = api.get("md").await.expect("read md");
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "server", "image": SERVER_IMAGE}]}}}});
    refused(
        "changing the image of an admitted ModelDeployment",
        api.patch("md", &PatchParams::default(), &Patch::Merge(&patch))
            .await,
        &[
            format!("runs {SERVER_IMAGE}, {not_runtime}").as_str(),
            listed.as_str(),
        ],
    );
    let after = api.get("md").await.expect("read md");
    // The operator may write its status meanwhile; the spec is what the
    // refused change would have written.
    assert_eq!(
        (before.metadata.generation, &before.spec),
        (after.metadata.generation, &after.spec),
        "the refused change wrote the ModelDeployment"
    );
    println!("runtimes: {} refusals so far", refusal::count());
}

#[tokio::test(flavor = "multi_thread")]
async fn with_no_runtime_listed_any_image_serves_and_volumes_stay_bounded() {
    let client = install_modelgate().await;
    let ns = namespace(&client, "sealed-unlisted", true).await;
    let _catalog = catalog(&ns.name, json!([])).await;
    let api: Api<ModelDeployment> = Api::namespaced(developer().await, &ns.name);
    // The runtime checks are off (the operator reports it unsealed) …
    api.create(
        &PostParams::default(),
        &deployment(
            "md",
            runtime_pod(
                SERVER_IMAGE,
                json!({"args": ["--model", "s3://anything"], "command": ["serve"]}),
            ),
        ),
    )
    .await
    .expect("with no runtime listed, any image is admitted");
    // … the volume rules are not.
    let volumes = |volume: Value| json!({"containers": [{"name": "server", "image": SERVER_IMAGE}], "volumes": [volume]});
    let allowed =
        "only configuration volumes (configMap, secret, projected, downwardAPI, emptyDir)";
    refused_create(
        &api,
        "a hostPath volume",
        &deployment(
            "hostpath",
            volumes(json!({"name": "data", "hostPath": {"path": "/var/lib/models"}})),
        ),
        &[
            "volume data of ModelDeployment hostpath is of kind hostPath",
            allowed,
        ],
    )
    .await;
    println!("unlisted: {} refusals so far", refusal::count());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_governed_deployment_takes_only_configuration_volumes() {
    let client = install_modelgate().await;
    let ns = namespace(&client, "sealed-volumes", true).await;
    let api: Api<ModelDeployment> = Api::namespaced(developer().await, &ns.name);
    // A listed runtime's image with no args or env passes the runtime checks
    // whatever the catalog lists, so this test needs no hold on it.
    let volumes = |volume: Value| {
        let mut pod = runtime_pod(&vllm(), json!({}));
        pod["volumes"] = json!([volume]);
        pod
    };
    let allowed =
        "only configuration volumes (configMap, secret, projected, downwardAPI, emptyDir)";
    let cases = [
        (
            "a hostPath volume",
            json!({"name": "data", "hostPath": {"path": "/var/lib/models"}}),
            "volume data of ModelDeployment md is of kind hostPath",
        ),
        (
            "a PVC volume",
            json!({"name": "weights", "persistentVolumeClaim": {"claimName": "other-weights"}}),
            "volume weights of ModelDeployment md is of kind persistentVolumeClaim",
        ),
        (
            "a CSI volume",
            json!({"name": "bucket", "csi": {"driver": "s3.csi.example.com"}}),
            "volume bucket of ModelDeployment md is of kind csi",
        ),
        (
            "a generic ephemeral volume",
            json!({"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}}}),
            "volume scratch of ModelDeployment md is of kind ephemeral",
        ),
        (
            "an NFS volume",
            json!({"name": "share", "nfs": {"server": "nfs.example.com", "path": "/models"}}),
            "volume share of ModelDeployment md is of kind nfs",
        ),
    ];
    for (what, volume, says) in cases {
        refused_create(
            &api,
            what,
            &deployment("md", volumes(volume)),
            &[says, allowed],
        )
        .await;
    }
    refused_create(
        &api,
        "an extra image volume in a governed namespace",
        &deployment("md", volumes(json!({"name": "weights", "image": {"reference": format!("registry.example.com/other-weights@sha256:{}", "12".repeat(32))}}))),
        // Both the sealed-pods and the model-volume policy refuse it; the
        // API server answers with either.
        &["volume weights of ModelDeployment md is", "spec.model.uri oci://"],
    )
    .await;
    refused_create(
        &api,
        "a volume named modelgate-model",
        &deployment(
            "md",
            volumes(json!({"name": "modelgate-model", "configMap": {"name": "weights"}})),
        ),
        &["the volume name modelgate-model is modelgate's own"],
    )
    .await;
    // Configuration volumes of every allowed kind are admitted.
    let mut pod = runtime_pod(&vllm(), json!({}));
    pod["volumes"] = json!([
        {"name": "config", "configMap": {"name": "vllm-config"}},
        {"name": "token", "secret": {"secretName": "hf-token"}},
        {"name": "projected", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}},
        {"name": "labels", "downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
        {"name": "scratch", "emptyDir": {}},
    ]);
    api.create(&PostParams::default(), &deployment("md", pod))
        .await
        .expect("configuration volumes are admitted");
    println!("volumes: {} refusals so far", refusal::count());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_model_volume_is_modelgates_in_every_namespace() {
    let client = install_modelgate().await;
    let ns = namespace(&client, "sealed-ungoverned", false).await;
    let api: Api<ModelDeployment> = Api::namespaced(developer().await, &ns.name);
    let with = |volume: Value| json!({"containers": [{"name": "server", "image": SERVER_IMAGE}], "volumes": [volume]});
    refused_create(
        &api,
        "an image volume in an ungoverned namespace",
        &deployment("md", with(json!({"name": "weights", "image": {"reference": "registry.example.com/other-weights:latest"}}))),
        &["volume weights of ModelDeployment md is an image volume", "the model volume is modelgate's", "spec.model.uri oci://"],
    )
    .await;
    refused_create(
        &api,
        "a volume named modelgate-model in an ungoverned namespace",
        &deployment(
            "md",
            with(json!({"name": "modelgate-model", "emptyDir": {}})),
        ),
        &["the volume name modelgate-model is modelgate's own"],
    )
    .await;
    // Outside governed namespaces the other volume rules do not apply.
    api.create(
        &PostParams::default(),
        &deployment(
            "md",
            with(json!({"name": "data", "hostPath": {"path": "/var/lib/models"}})),
        ),
    )
    .await
    .expect("a hostPath volume outside governed namespaces is admitted");
    println!("model volume: {} refusals so far", refusal::count());
}

#[tokio::test(flavor = "multi_thread")]
async fn network_policies_in_a_governed_namespace_are_the_operators() {
    let client = install_modelgate().await;
    let governed = namespace(&client, "sealed-netpol", true).await;
    let operator: Api<NetworkPolicy> = Api::namespaced(operator_client().await, &governed.name);
    let egress: NetworkPolicy = serde_json::from_value(json!({
        "metadata": {"name": "md-egress"},
        "spec": {"podSelector": {"matchLabels": {"modelgate.io/model-deployment": "md"}}, "policyTypes": ["Egress"],
                 "egress": [{"ports": [{"protocol": "UDP", "port": 53}]}]},
    }))
    .expect("NetworkPolicy");
    operator
        .create(&PostParams::default(), &egress)
        .await
        .expect("the operator writes a ModelDeployment's egress policy");
    let before = operator.list(&Default::default()).await.expect("list");

    let dev: Api<NetworkPolicy> = Api::namespaced(developer().await, &governed.name);
    let says = [
        "NetworkPolicies here are written only by modelgate",
        "which owns each ModelDeployment's egress policy",
        "RuntimeCatalog modelgate, spec.egress",
    ];
    refused(
        "creating a NetworkPolicy that allows all egress",
        dev.create(&PostParams::default(), &allow_all_egress("allow-all"))
            .await,
        &says,
    )
    .with_code(&[403]);
    let widen = json!({"spec": {"egress": [{}]}});
    refused(
        "patching the operator's egress policy open",
        dev.patch("md-egress", &PatchParams::default(), &Patch::Merge(&widen))
            .await,
        &says,
    )
    .with_code(&[403]);
    refused(
        "deleting the operator's egress policy",
        dev.delete("md-egress", &DeleteParams::default()).await,
        &says,
    )
    .with_code(&[403]);
    let after = operator.list(&Default::default()).await.expect("list");
    let names = |l: &kube::core::ObjectList<NetworkPolicy>| {
        l.items
            .iter()
            .map(|p| (p.metadata.name.clone(), p.metadata.resource_version.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(&before),
        names(&after),
        "the refused writes changed the namespace's NetworkPolicies"
    );

    // Outside governed namespaces NetworkPolicies are the developer's as usual.
    let free = namespace(&client, "sealed-netpol-free", false).await;
    let dev: Api<NetworkPolicy> = Api::namespaced(developer().await, &free.name);
    dev.create(&PostParams::default(), &allow_all_egress("allow-all"))
        .await
        .expect("create a NetworkPolicy in an ungoverned namespace");
    dev.patch("allow-all", &PatchParams::default(), &Patch::Merge(&widen))
        .await
        .expect("patch it");
    dev.delete("allow-all", &DeleteParams::default())
        .await
        .expect("delete it");
    println!("network policies: {} refusals so far", refusal::count());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_catalog_is_emptied_even_when_a_test_panics() {
    let client = install_modelgate().await;
    let ns = namespace(&client, "sealed-guard", true).await;
    let name = ns.name.clone();
    let failed = tokio::spawn(async move {
        let _catalog = catalog(&name, runtimes()).await;
        panic!("a test fails while runtimes are listed (on purpose)");
    })
    .await;
    assert!(
        failed.is_err_and(|e| e.is_panic()),
        "the task did not panic"
    );
    // Read under the lock: no other test is between setting and emptying it.
    let _held = modelgate_e2e::catalog::held().await;
    let api: Api<modelgate::api::runtime::RuntimeCatalog> = Api::all(client);
    let listed = api.get(CATALOG_NAME).await.expect("read the catalog");
    assert!(
        listed.spec.runtimes.is_empty(),
        "the catalog still lists {}",
        listed.names()
    );
}

/// Every version of every pod of `ns` from now on, as a watch sees them.
fn watch_pods(client: &Client, ns: &str) -> std::sync::Arc<std::sync::Mutex<Vec<Pod>>> {
    use futures::StreamExt;
    use kube::runtime::{WatchStreamExt, watcher};
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    tokio::spawn(async move {
        let mut stream = watcher(pods, watcher::Config::default())
            .applied_objects()
            .boxed();
        while let Some(Ok(pod)) = stream.next().await {
            record.lock().unwrap_or_else(|e| e.into_inner()).push(pod);
        }
    });
    seen
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sealed_deployment_runs_only_the_approved_model_in_a_listed_runtime() {
    modelgate_e2e::operator::start_operator();
    let client = install_modelgate().await;
    let ns = namespace(&client, "sealed-run", true).await;
    let _catalog = catalog(&ns.name, runtimes()).await;
    let seen = watch_pods(&client, &ns.name);
    let pushed = push_model(
        &format!("models/{}/fraud", ns.name),
        Some("1"),
        &tiny_model("sealed"),
    );
    let approvals: Api<ModelApproval> = Api::namespaced(client.clone(), &ns.name);
    model_approval("fd-v1")
        .artifact(&pushed.uri(), &pushed.digest)
        .create(&approvals)
        .await;
    approve_all(&ns.name, "fd-v1").await;
    let mds: Api<ModelDeployment> = Api::namespaced(developer().await, &ns.name);
    let md = deployment("fd", runtime_pod(&vllm(), json!({"args": ["--port=8000"]})));
    mds.create(&PostParams::default(), &md)
        .await
        .expect("the developer deploys a listed runtime");
    let sealed = eventually(90, "the ModelDeployment to be sealed", || async {
        let md = mds.get("fd").await.ok()?;
        let c = md
            .status
            .as_ref()?
            .conditions
            .iter()
            .find(|c| c.type_ == "Sealed")?
            .clone();
        (c.status == "True").then_some(c)
    })
    .await;
    let message = sealed.message.unwrap_or_default();
    assert!(message.contains(&pushed.pinned()), "{message}");
    let shown = kubectl(&["get", "md", "fd", "-n", &ns.name]);
    assert!(
        text(&shown).contains("Sealed"),
        "kubectl get md: {}",
        text(&shown)
    );
    modelgate_e2e::pods::pods_serve(&client, &ns.name, "fd", &pushed.digest).await;

    // Every pod the watch saw: listed runtime images, and no image volume
    // but the approved digest.
    let listed = [vllm(), triton()];
    let pods = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert!(!pods.is_empty(), "the watch saw the pods");
    for pod in &pods {
        let spec = pod.spec.as_ref().expect("pod spec");
        for c in spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
        {
            let image = c.image.clone().unwrap_or_default();
            assert!(
                listed.contains(&image),
                "pod {:?} ran {image}",
                pod.metadata.name
            );
        }
        let volumes: Vec<String> = spec
            .volumes
            .iter()
            .flatten()
            .filter_map(|v| v.image.as_ref()?.reference.clone())
            .collect();
        assert_eq!(volumes, [pushed.pinned()], "pod {:?}", pod.metadata.name);
    }
}
