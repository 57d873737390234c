//! Red-team regressions for sealed pods (docs/artifacts.md): a developer
//! with the built-in `edit` role and the model-owner role in a governed
//! namespace reaches an outcome the design rules out. Each test fails
//! today and is ignored with the finding it shows; each passes once the
//! finding is fixed.
//!
//! RuntimeCatalog `modelgate` is cluster-scoped and shared: a test that
//! lists runtimes holds `CATALOG` and a guard empties the list when it ends.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use modelgate::api::approval::ModelApproval;
use modelgate::api::deployment::ModelDeployment;
use modelgate_e2e::catalog::{
    CATALOG_NAME, UNLISTED_IMAGE, allow_all_egress, catalog, runtime_pod, with_pod,
};
use modelgate_e2e::registry::{Pushed, push_model, tiny_model};
use modelgate_e2e::{cluster::*, fixtures::*, users::*, wait::*};
use serde_json::{Value, json};

/// Where the fixture's model (fraud-detector) is mounted.
const MODEL_DIR: &str = "/models/fraud-detector";

fn vllm() -> String {
    format!("registry.example.com/vllm@sha256:{}", "ab".repeat(32))
}

fn runtimes() -> Value {
    json!([{"name": "vllm", "image": vllm(), "args": ["--port"]}])
}

/// A ModelDeployment `name` through `approval` whose pod spec is `pod`.
fn deployment(name: &str, approval: &str, pod: Value) -> ModelDeployment {
    with_pod(name, approval, pod)
}

/// A governed namespace where the developer holds `edit` and model-owner.
async fn governed_namespace(client: &Client, prefix: &str) -> TestNamespace {
    let ns = developer_namespace(client, prefix).await;
    govern(&ns.name).await;
    ns
}

/// A namespace (not yet governed) where the developer holds `edit` and
/// model-owner.
async fn developer_namespace(client: &Client, prefix: &str) -> TestNamespace {
    let ns = TestNamespace::new(client, prefix).await;
    bind_developer(client, &ns.name).await;
    ns
}

/// Labels `ns` governed (as the platform team) and waits until the
/// governed-workloads policy is in force there: a NetworkPolicy is refused.
async fn govern(ns: &str) {
    let out = kubectl(&["label", "namespace", ns, "modelgate.io/governed=true"]);
    assert!(out.status.success(), "label namespace: {}", text(&out));
    let policies: Api<NetworkPolicy> = Api::namespaced(developer().await, ns);
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let open = allow_all_egress("probe");
    eventually(60, "the governed rules in a new namespace", || async {
        matches!(policies.create(&dry, &open).await,
            Err(kube::Error::Api(s)) if s.message.contains("NetworkPolicies here"))
        .then_some(())
    })
    .await;
}

/// Pushes a tiny model and approves it as `fd-v1` (as the reviewers).
async fn approved_model(client: &Client, ns: &str) -> Pushed {
    let pushed = push_model(
        &format!("models/{ns}/fraud"),
        Some("1"),
        &tiny_model("redteam"),
    );
    let approvals: Api<ModelApproval> = Api::namespaced(client.clone(), ns);
    model_approval("fd-v1")
        .artifact(&pushed.uri(), &pushed.digest)
        .create(&approvals)
        .await;
    approve_all(ns, "fd-v1").await;
    pushed
}

/// The Sealed condition's (status, message) of `name`.
async fn sealed(mds: &Api<ModelDeployment>, name: &str) -> Option<(String, String)> {
    let md = mds.get(name).await.ok()?;
    let c = md
        .status?
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Sealed")?;
    Some((c.status, c.message.unwrap_or_default()))
}

/// The live pods of ModelDeployment `md`.
async fn pods_of(client: &Client, ns: &str, md: &str) -> Vec<Pod> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let selector = format!("modelgate.io/model-deployment={md}");
    pods.list(&ListParams::default().labels(&selector))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect()
}

/// Watches `name` for `secs`: whenever it reports Sealed=True, `unsealed`
/// over its live pods must find nothing. Panics with what it found.
async fn never_sealed_while<F>(client: &Client, ns: &str, name: &str, secs: u64, unsealed: F)
where
    F: Fn(&Pod) -> Option<String>,
{
    let mds: Api<ModelDeployment> = Api::namespaced(client.clone(), ns);
    let until = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < until {
        if let Some((status, message)) = sealed(&mds, name).await
            && status == "True"
        {
            let found: Vec<String> = pods_of(client, ns, name)
                .await
                .iter()
                .filter_map(&unsealed)
                .collect();
            assert!(
                found.is_empty(),
                "ModelDeployment {name} reports Sealed=True ({message}) while {}",
                found.join("; ")
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Finding 1: the operator writes its egress policy under the
/// ModelDeployment's name with a forced apply, over whatever NetworkPolicy
/// of that name the platform team wrote: a developer who names a
/// ModelDeployment after the platform's default-deny policy narrows it to
/// that ModelDeployment's pods, drops its Ingress type and makes the
/// ModelDeployment its owner, so that deleting the ModelDeployment has the
/// garbage collector delete the platform's policy.
#[tokio::test(flavor = "multi_thread")]
async fn a_developer_cannot_take_over_or_delete_a_platform_network_policy_by_name() {
    modelgate_e2e::operator::start_operator();
    let client = install_modelgate().await;
    let ns = developer_namespace(&client, "redteam-netpol").await;
    // The platform team's default deny, written when it set the namespace
    // up, before governing it (in a governed namespace only modelgate and
    // exempt users write NetworkPolicies).
    let platform: NetworkPolicy = serde_json::from_value(json!({
        "metadata": {"name": "default-deny"},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
    }))
    .expect("NetworkPolicy");
    let admin_policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), &ns.name);
    admin_policies
        .create(&PostParams::default(), &platform)
        .await
        .expect("the platform team writes a default-deny policy");
    let before = admin_policies.get("default-deny").await.expect("read it");
    govern(&ns.name).await;
    let _ = approved_model(&client, &ns.name).await;

    let mds: Api<ModelDeployment> = Api::namespaced(developer().await, &ns.name);
    mds.create(
        &PostParams::default(),
        &deployment("default-deny", "fd-v1", runtime_pod(&vllm(), json!({}))),
    )
    .await
    .expect("the developer creates a ModelDeployment");
    // Wait for the operator to have acted on it.
    eventually(90, "the ModelDeployment's status", || async {
        sealed(&mds, "default-deny").await.map(|_| ())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = admin_policies.get("default-deny").await.expect("read it");
    let spec = |p: &NetworkPolicy| serde_json::to_value(&p.spec).unwrap_or_default();
    let owners = after.metadata.owner_references.clone().unwrap_or_default();
    let taken = spec(&before) != spec(&after) || !owners.is_empty();

    mds.delete("default-deny", &DeleteParams::default())
        .await
        .expect("the developer deletes the ModelDeployment");
    tokio::time::sleep(Duration::from_secs(10)).await;
    let left = admin_policies
        .get_opt("default-deny")
        .await
        .expect("read it");
    assert!(
        !taken && left.is_some(),
        "the platform's default-deny policy was {} by the developer's ModelDeployment of its name \
         (spec before {}, after {}; owners {:?})",
        if left.is_none() {
            "deleted"
        } else {
            "rewritten"
        },
        spec(&before),
        spec(&after),
        owners.iter().map(|o| &o.name).collect::<Vec<_>>()
    );
}

/// Finding 2: Sealed judges the ModelDeployment's spec template, not the
/// template of the pods that run. While a rollout is held (the new
/// approval is not approved), the pods keep the old template: after the
/// platform lists runtimes, pods of an unlisted image keep running and the
/// ModelDeployment reports Sealed=True once its spec names a runtime.
#[tokio::test(flavor = "multi_thread")]
async fn sealed_is_never_true_while_held_pods_run_an_unlisted_image() {
    modelgate_e2e::operator::start_operator();
    let client = install_modelgate().await;
    let ns = governed_namespace(&client, "redteam-held").await;
    let guard = catalog(&ns.name, json!([])).await;
    let pushed = approved_model(&client, &ns.name).await;
    let mds: Api<ModelDeployment> = Api::namespaced(developer().await, &ns.name);
    // With no runtime listed, any image is admitted (and reported unsealed).
    mds.create(
        &PostParams::default(),
        &deployment("fd", "fd-v1", runtime_pod(UNLISTED_IMAGE, json!({}))),
    )
    .await
    .expect("an unlisted image while no runtime is listed");
    modelgate_e2e::pods::pods_serve(&client, &ns.name, "fd", &pushed.digest).await;
    // The platform team lists its runtime.
    guard.list(&ns.name, runtimes()).await;
    // The developer points the ModelDeployment at a runtime and at an
    // approval nobody approved: the rollout is held, the old pods stay.
    let approvals: Api<ModelApproval> = Api::namespaced(developer().await, &ns.name);
    model_approval("fd-v2")
        .version("2")
        .artifact(&pushed.uri(), &pushed.digest)
        .create(&approvals)
        .await;
    let patch = json!({"spec": {"approvalRef": {"name": "fd-v2"},
        "template": {"spec": {"containers": [{"name": "server", "image": vllm()}]}}}});
    mds.patch("fd", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("the developer's change is admitted");
    let listed = vllm();
    never_sealed_while(&client, &ns.name, "fd", 30, |pod| {
        let spec = pod.spec.as_ref()?;
        let strangers: Vec<String> = spec
            .containers
            .iter()
            .filter_map(|c| c.image.clone())
            .filter(|i| *i != listed)
            .collect();
        (!strangers.is_empty()).then(|| {
            format!(
                "pod {} runs {}",
                pod.metadata.name.clone().unwrap_or_default(),
                strangers.join(", ")
            )
        })
    })
    .await;
    drop(guard);
}

/// Starts a governed namespace with a listed runtime and an approved model,
/// creates ModelDeployment `name` of the developer's `pod`, and checks it
/// is never Sealed=True while `unsealed` finds something in its pods.
async fn sealed_run<F>(prefix: &str, name: &str, pod: Value, unsealed: F)
where
    F: Fn(&Pod) -> Option<String>,
{
    modelgate_e2e::operator::start_operator();
    let client = install_modelgate().await;
    let ns = governed_namespace(&client, prefix).await;
    let _guard = catalog(&ns.name, runtimes()).await;
    let pushed = approved_model(&client, &ns.name).await;
    let mds: Api<ModelDeployment> = Api::namespaced(developer().await, &ns.name);
    // Refused at admission is the best outcome: nothing runs. Admitted, the
    // operator must never call it sealed.
    match mds
        .create(&PostParams::default(), &deployment(name, "fd-v1", pod))
        .await
    {
        Err(kube::Error::Api(s)) if s.code == 403 => {
            assert!(
                s.message.contains("which seals what its model pods load"),
                "{}",
                s.message
            );
            assert!(
                mds.get_opt(name).await.expect("read back").is_none(),
                "refused, yet created"
            );
            println!("refused at admission: {}", s.message);
            return;
        }
        other => {
            other.expect("admitted, or refused by the sealing rules");
        }
    }
    modelgate_e2e::pods::pods_serve(&client, &ns.name, name, &pushed.digest).await;
    never_sealed_while(&client, &ns.name, name, 15, unsealed).await;
}

/// Finding 3: a configuration volume mounted inside the model's directory
/// (or at it, spelled with a trailing slash) replaces the approved files
/// the runtime loads from MODEL_PATH; admission lets it in and the
/// operator keeps the mount and reports Sealed=True.
#[tokio::test(flavor = "multi_thread")]
async fn no_volume_shadows_the_approved_model_in_a_sealed_pod() {
    let mut pod = runtime_pod(
        &vllm(),
        json!({"volumeMounts": [
            {"name": "weights", "mountPath": format!("{MODEL_DIR}/model.safetensors"), "subPath": "model.safetensors"},
            {"name": "other", "mountPath": format!("{MODEL_DIR}/")},
        ]}),
    );
    pod["volumes"] = json!([
        {"name": "weights", "configMap": {"name": "my-weights"}},
        {"name": "other", "secret": {"secretName": "my-model"}},
    ]);
    sealed_run("redteam-shadow", "fd", pod, |p| {
        let spec = p.spec.as_ref()?;
        let shadows: Vec<String> = spec
            .containers
            .iter()
            .flat_map(|c| c.volume_mounts.iter().flatten())
            .filter(|m| m.name != "modelgate-model")
            .filter(|m| {
                let path = m.mount_path.trim_end_matches('/');
                path == MODEL_DIR || path.starts_with(&format!("{MODEL_DIR}/"))
            })
            .map(|m| format!("volume {} is mounted at {}", m.name, m.mount_path))
            .collect();
        (!shadows.is_empty()).then(|| shadows.join(", "))
    })
    .await;
}

/// Finding 4: a host-network pod is not subject to NetworkPolicies, so the
/// operator's egress policy does not bound it; admission lets
/// `hostNetwork: true` in and the operator reports Sealed=True ("bounded
/// configuration and egress").
#[tokio::test(flavor = "multi_thread")]
async fn a_host_network_pod_is_never_sealed() {
    let mut pod = runtime_pod(&vllm(), json!({}));
    pod["hostNetwork"] = json!(true);
    sealed_run("redteam-hostnet", "fd", pod, |p| {
        let spec = p.spec.as_ref()?;
        spec.host_network.unwrap_or(false).then(|| {
            format!(
                "pod {} uses the host's network, which no NetworkPolicy bounds",
                p.metadata.name.clone().unwrap_or_default()
            )
        })
    })
    .await;
}

/// Finding 5: the pod-level settings that reach past the container are
/// neither refused nor judged: a privileged runtime container sharing the
/// host's PID namespace, and host aliases that point the runtime's names
/// elsewhere.
#[tokio::test(flavor = "multi_thread")]
async fn a_privileged_or_host_pid_pod_is_never_sealed() {
    let mut pod = runtime_pod(&vllm(), json!({"securityContext": {"privileged": true}}));
    pod["hostPID"] = json!(true);
    pod["hostAliases"] = json!([{"ip": "10.9.9.9", "hostnames": ["huggingface.co"]}]);
    sealed_run("redteam-privileged", "fd", pod, |p| {
        let spec = p.spec.as_ref()?;
        let privileged = spec.containers.iter().any(|c| {
            c.security_context
                .as_ref()
                .and_then(|s| s.privileged)
                .unwrap_or(false)
        });
        let mut found = BTreeMap::new();
        if privileged {
            found.insert("privileged", true);
        }
        if spec.host_pid.unwrap_or(false) {
            found.insert("hostPID", true);
        }
        if spec.host_aliases.as_ref().is_some_and(|a| !a.is_empty()) {
            found.insert("hostAliases", true);
        }
        (!found.is_empty()).then(|| {
            format!(
                "pod {} is {}",
                p.metadata.name.clone().unwrap_or_default(),
                found.keys().copied().collect::<Vec<_>>().join(", ")
            )
        })
    })
    .await;
}

/// A TCP port that accepts connections and never answers (a registry that
/// hangs, or a black-holed address), kept open for the test's life.
fn black_hole() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a black hole");
    let port = listener.local_addr().expect("its address").port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    port
}

/// Finding 6: an unresolved artifact is asked for again every 30 s, each
/// time holding one of the approval controller's workers for up to 10 s.
/// A developer who creates a few hundred approvals naming a registry that
/// hangs keeps every worker busy, and the approvals of every other team
/// wait: here an approval in another namespace, approved by all five
/// reviewers, is not reported Approved within a minute.
#[tokio::test(flavor = "multi_thread")]
async fn approvals_naming_a_hanging_registry_do_not_hold_other_teams_approvals() {
    modelgate_e2e::operator::start_operator();
    let client = install_modelgate().await;
    let ns = governed_namespace(&client, "redteam-flood").await;
    let other = governed_namespace(&client, "redteam-victim").await;
    let port = black_hole();
    let approvals: Api<ModelApproval> = Api::namespaced(developer().await, &ns.name);
    let digest = format!("sha256:{}", "0".repeat(64));
    for i in 0..200 {
        let mut a = serde_json::to_value(
            model_approval(&format!("hang-{i}"))
                .artifact(&format!("oci://127.0.0.1:{port}/models/m{i}:1"), &digest)
                .build(),
        )
        .expect("approval as JSON");
        a["metadata"]["namespace"] = json!(ns.name);
        let a: ModelApproval = serde_json::from_value(a).expect("approval");
        approvals
            .create(&PostParams::default(), &a)
            .await
            .unwrap_or_else(|e| panic!("the developer creates approval hang-{i}: {e}"));
    }
    // Let the retries pile up.
    tokio::time::sleep(Duration::from_secs(40)).await;
    // Another team's model, pushed and approved by all five reviewers.
    let pushed = push_model(
        &format!("models/{}/fraud", other.name),
        Some("1"),
        &tiny_model("victim"),
    );
    let theirs: Api<ModelApproval> = Api::namespaced(client.clone(), &other.name);
    model_approval("fd-v1")
        .artifact(&pushed.uri(), &pushed.digest)
        .create(&theirs)
        .await;
    let started = Instant::now();
    approve_all(&other.name, "fd-v1").await;
    let approved = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let phase = theirs.get("fd-v1").await.ok().and_then(|a| a.status?.phase);
            if phase == Some(modelgate::api::approval::ApprovalPhase::Approved) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
    .await;
    assert!(
        approved.is_ok(),
        "another team's fully reviewed approval was not Approved within 60 s ({:?} waited) \
         while 200 approvals named a registry that hangs",
        started.elapsed()
    );
}

/// Finding 7: what admission admits, the operator judges otherwise.
/// `command: []` starts the runtime's own entrypoint (an empty command is
/// no command) and a volume that names no source is an emptyDir (the API
/// server's default): admission admits both, the operator reads the first
/// as replacing the entrypoint and the second as unbounded, and reports
/// the pods unsealed.
#[tokio::test(flavor = "multi_thread")]
async fn what_admission_admits_the_operator_judges_alike() {
    modelgate_e2e::operator::start_operator();
    let client = install_modelgate().await;
    let ns = governed_namespace(&client, "redteam-disagree").await;
    let _guard = catalog(&ns.name, runtimes()).await;
    let _ = approved_model(&client, &ns.name).await;
    let mds: Api<ModelDeployment> = Api::namespaced(developer().await, &ns.name);
    let mut sourceless = runtime_pod(
        &vllm(),
        json!({"volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}]}),
    );
    sourceless["volumes"] = json!([{"name": "scratch"}]);
    let cases = [
        (
            "empty-command",
            runtime_pod(&vllm(), json!({"command": []})),
        ),
        ("sourceless-volume", sourceless),
    ];
    for (name, pod) in &cases {
        mds.create(
            &PostParams::default(),
            &deployment(name, "fd-v1", pod.clone()),
        )
        .await
        .unwrap_or_else(|e| panic!("admission admits {name}: {e}"));
    }
    let mut judged = Vec::new();
    for (name, _) in &cases {
        let (status, message) = eventually(90, "the Sealed condition", || async {
            sealed(&mds, name)
                .await
                .filter(|(s, m)| s == "True" || !m.contains("no approved model"))
        })
        .await;
        if status != "True" {
            judged.push(format!("{name}: {message}"));
        }
    }
    assert!(
        judged.is_empty(),
        "admission admitted these templates, the operator reports them unsealed: {}",
        judged.join("; ")
    );
}

/// Finding 8: the egress policy is written after the Deployment, and a
/// failure to write it leaves the pods running with no egress policy at
/// all. The catalog's rule `isCIDR` admits `10.20.0.5/16`, which
/// NetworkPolicy validation refuses (bits beyond the prefix; port 0 is
/// another such value), so one typo
/// by the platform team leaves every new governed ModelDeployment's pods
/// unbounded, and no status is written for any governed ModelDeployment.
#[tokio::test(flavor = "multi_thread")]
async fn pods_never_run_without_their_egress_policy() {
    modelgate_e2e::operator::start_operator();
    let client = install_modelgate().await;
    let ns = governed_namespace(&client, "redteam-cidr").await;
    let guard = catalog(&ns.name, runtimes()).await;
    let catalogs: Api<modelgate::api::runtime::RuntimeCatalog> = Api::all(client.clone());
    let typo = catalogs
        .patch(
            CATALOG_NAME,
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"egress": [{"cidr": "10.20.0.5/16", "ports": [443]}]}})),
        )
        .await;
    let pushed = approved_model(&client, &ns.name).await;
    let mds: Api<ModelDeployment> = Api::namespaced(developer().await, &ns.name);
    let result = async {
        typo.map_err(|e| format!("the catalog refused the CIDR: {e}"))?;
        mds.create(
            &PostParams::default(),
            &deployment("fd", "fd-v1", runtime_pod(&vllm(), json!({}))),
        )
        .await
        .map_err(|e| format!("create: {e}"))?;
        modelgate_e2e::pods::pods_serve(&client, &ns.name, "fd", &pushed.digest).await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), &ns.name);
        let policy = policies.get_opt("fd").await.map_err(|e| e.to_string())?;
        Ok::<_, String>(policy.is_some())
    }
    .await;
    let _ = catalogs
        .patch(
            CATALOG_NAME,
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"egress": []}})),
        )
        .await;
    drop(guard);
    match result {
        // Refusing the CIDR in the catalog is one fix.
        Err(why) if why.starts_with("the catalog refused") => {}
        Err(why) => panic!("{why}"),
        Ok(has_policy) => assert!(
            has_policy,
            "the pods of fd run and their namespace has no egress policy for them"
        ),
    }
}
