//! Models as OCI artifacts, against the real registry and API server: an
//! approval is resolved in the registry before it can pass, its pods mount
//! exactly the approved digest, a moved tag changes nothing, and every
//! ModelDeployment says whether its pods are sealed.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, PodSpec};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::Api;
use kube::api::{Patch, PatchParams};
use modelgate::api::approval::{ApprovalPhase, ModelApproval, Seal};
use modelgate::api::deployment::ModelDeployment;
use modelgate_e2e::registry::{MODEL_ARTIFACT_TYPE, Pushed, push_model, sha256_digest, tiny_model};
use modelgate_e2e::{cluster::*, fixtures::*, operator::*, pods::*, wait::*};

/// The first model file's bytes, summed over the tiny model's three files.
fn size_of(name: &str) -> i64 {
    tiny_model(name)
        .iter()
        .map(|f| f.content.len() as i64)
        .sum()
}

/// A unique repository path for this test.
fn repo(ns: &str, what: &str) -> String {
    format!("models/{ns}/{what}")
}

async fn approval_of(api: &Api<ModelApproval>, name: &str, want: Seal) -> ModelApproval {
    eventually(
        60,
        &format!("approval {name}'s artifact to be {want:?}"),
        || async {
            let a = api.get(name).await.ok()?;
            let seal = a.status.as_ref()?.artifact.as_ref()?.seal;
            (seal == want).then_some(a)
        },
    )
    .await
}

/// The model volume and MODEL_PATH of a pod spec: (reference, mount path,
/// read-only, MODEL_PATH).
fn mounted(spec: &PodSpec) -> (Vec<String>, Vec<(String, bool)>, Vec<String>) {
    let images = spec
        .volumes
        .iter()
        .flatten()
        .filter_map(|v| v.image.as_ref()?.reference.clone())
        .collect();
    let c = &spec.containers[0];
    let mounts = c
        .volume_mounts
        .iter()
        .flatten()
        .filter(|m| m.name == "modelgate-model")
        .map(|m| (m.mount_path.clone(), m.read_only == Some(true)))
        .collect();
    let path = c
        .env
        .iter()
        .flatten()
        .filter(|e| e.name == "MODEL_PATH")
        .filter_map(|e| e.value.clone())
        .collect();
    (images, mounts, path)
}

#[tokio::test]
async fn an_oci_approval_is_resolved_then_mounted_by_exactly_its_digest() {
    start_operator();
    let client = install_modelgate().await;
    let ns = TestNamespace::new(&client, "oci").await;
    let pushed = push_model(
        &repo(&ns.name, "fraud"),
        Some("1.0.0"),
        &tiny_model("fraud-1"),
    );
    let approvals: Api<ModelApproval> = Api::namespaced(client.clone(), &ns.name);
    model_approval("fd-oci")
        .artifact(&pushed.uri(), &pushed.digest)
        .create(&approvals)
        .await;

    // Checked before anyone reviews: what the registry serves under the digest.
    let a = approval_of(&approvals, "fd-oci", Seal::Sealed).await;
    let artifact = a
        .status
        .as_ref()
        .and_then(|s| s.artifact.clone())
        .expect("artifact");
    assert_eq!(
        artifact.reference.as_deref(),
        Some(pushed.pinned().as_str())
    );
    assert_eq!(artifact.layers, Some(3));
    assert_eq!(artifact.size, Some(size_of("fraud-1")));
    assert_eq!(artifact.artifact_type.as_deref(), Some(MODEL_ARTIFACT_TYPE));
    let shown = kubectl(&["get", "ma", "fd-oci", "-n", &ns.name]);
    assert!(
        text(&shown).contains("Sealed"),
        "kubectl get ma: {}",
        text(&shown)
    );

    approve_all(&ns.name, "fd-oci").await;
    let mds: Api<ModelDeployment> = Api::namespaced(client.clone(), &ns.name);
    model_deployment("fd")
        .approval("fd-oci")
        .replicas(2)
        .create(&mds)
        .await;
    let pods = pods_serve(&client, &ns.name, "fd", &pushed.digest).await;
    for pod in &pods {
        let spec = pod.spec.as_ref().expect("pod spec");
        let (images, mounts, path) = mounted(spec);
        assert_eq!(
            images,
            [pushed.pinned()],
            "pod {:?} mounts only the approved digest",
            pod.metadata.name
        );
        assert_eq!(mounts, [("/models/fraud-detector".to_string(), true)]);
        assert_eq!(path, ["/models/fraud-detector"]);
    }

    // The tag moves to another model: nothing is looked up again, nothing rolls.
    let moved = push_model(
        &repo(&ns.name, "fraud"),
        Some("1.0.0"),
        &tiny_model("fraud-2"),
    );
    assert_ne!(moved.digest, pushed.digest);
    let poke = serde_json::json!({"metadata": {"labels": {"poked": "yes"}}});
    approvals
        .patch("fd-oci", &PatchParams::default(), &Patch::Merge(&poke))
        .await
        .expect("poke the approval");
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let after = approvals.get("fd-oci").await.expect("approval");
    let status = after.status.as_ref().expect("status");
    assert_eq!(status.phase, Some(ApprovalPhase::Approved));
    assert_eq!(
        status.artifact.as_ref().and_then(|a| a.resolved_at.clone()),
        artifact.resolved_at,
        "looked up once, never again"
    );
    let d: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let deployment = d.get("fd").await.expect("deployment");
    let template = deployment.spec.template;
    let (images, _, _) = mounted(template.spec.as_ref().expect("template spec"));
    assert_eq!(images, [pushed.pinned()]);
}

#[tokio::test]
async fn an_artifact_its_registry_does_not_serve_holds_the_approval() {
    start_operator();
    let client = install_modelgate().await;
    let ns = TestNamespace::new(&client, "oci-missing").await;
    // The repository exists; the digest names nothing in it.
    let pushed = push_model(&repo(&ns.name, "fraud"), None, &tiny_model("fraud-real"));
    let missing = Pushed {
        digest: sha256_digest(b"never pushed"),
        ..pushed
    };
    let approvals: Api<ModelApproval> = Api::namespaced(client.clone(), &ns.name);
    model_approval("fd-missing")
        .artifact(&missing.uri(), &missing.digest)
        .create(&approvals)
        .await;
    let a = approval_of(&approvals, "fd-missing", Seal::Unresolved).await;
    let message = a
        .status
        .as_ref()
        .and_then(|s| s.artifact.as_ref()?.message.clone())
        .unwrap_or_default();
    assert!(
        message.contains("no manifest under this digest"),
        "{message}"
    );

    approve_all(&ns.name, "fd-missing").await;
    let approved = eventually(30, "the approval to say why it waits", || async {
        let a = approvals.get("fd-missing").await.ok()?;
        let c = condition_of(&a, "Approved")?.clone();
        (c.reason.as_deref() == Some("ArtifactUnresolved")).then_some((a, c))
    })
    .await;
    assert_eq!(
        approved.0.status.as_ref().and_then(|s| s.phase),
        Some(ApprovalPhase::Pending)
    );
    assert_eq!(
        approved
            .0
            .status
            .as_ref()
            .and_then(|s| s.approved_at.clone()),
        None
    );
    assert!(
        approved
            .1
            .message
            .unwrap_or_default()
            .contains("stays Pending until the registry serves this digest")
    );
    let mds: Api<ModelDeployment> = Api::namespaced(client.clone(), &ns.name);
    model_deployment("fd")
        .approval("fd-missing")
        .replicas(1)
        .create(&mds)
        .await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let d: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    assert!(
        d.get_opt("fd").await.expect("get").is_none(),
        "nothing rolls out"
    );
}

#[tokio::test]
async fn a_model_that_is_not_an_oci_artifact_is_unsealed_everywhere() {
    start_operator();
    let client = install_modelgate().await;
    let ns = TestNamespace::new(&client, "unsealed").await;
    let (approvals, mds) = create_model(&client, &ns.name, "fd", "fd-s3", "1.0.0", None).await;
    let a = approval_of(&approvals, "fd-s3", Seal::Unsealed).await;
    let said = a
        .status
        .as_ref()
        .and_then(|s| s.artifact.as_ref()?.message.clone())
        .unwrap_or_default();
    assert!(said.contains("not an OCI artifact"), "{said}");
    approve_all(&ns.name, "fd-s3").await;
    let md = eventually(60, "the ModelDeployment to say it is unsealed", || async {
        let md = mds.get("fd").await.ok()?;
        (md.status.as_ref()?.seal == Some(Seal::Unsealed)).then_some(md)
    })
    .await;
    let sealed = md
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Sealed"))
        .expect("Sealed condition");
    let message = sealed.message.clone().unwrap_or_default();
    assert_eq!(sealed.status, "False");
    assert!(
        message.contains("s3://models/fraud-detector/1.0.0/ is not an OCI artifact"),
        "{message}"
    );
    assert!(
        message.contains(&format!("namespace {} is not governed", ns.name)),
        "{message}"
    );
    let shown = kubectl(&["get", "md", "fd", "-n", &ns.name]);
    assert!(
        text(&shown).contains("Unsealed"),
        "kubectl get md: {}",
        text(&shown)
    );
    let shown = kubectl(&["get", "ma", "fd-s3", "-n", &ns.name]);
    assert!(
        text(&shown).contains("Unsealed"),
        "kubectl get ma: {}",
        text(&shown)
    );
}

#[tokio::test]
async fn a_governed_model_deployment_gets_the_operators_egress_policy() {
    start_operator();
    let client = install_modelgate().await;
    let ns = TestNamespace::new(&client, "egress").await;
    let out = kubectl(&["label", "namespace", &ns.name, "modelgate.io/governed=true"]);
    assert!(out.status.success(), "label: {}", text(&out));
    let pushed = push_model(
        &repo(&ns.name, "fraud"),
        Some("1"),
        &tiny_model("fraud-egress"),
    );
    let approvals: Api<ModelApproval> = Api::namespaced(client.clone(), &ns.name);
    model_approval("fd-oci")
        .artifact(&pushed.uri(), &pushed.digest)
        .create(&approvals)
        .await;
    approval_of(&approvals, "fd-oci", Seal::Sealed).await;
    approve_all(&ns.name, "fd-oci").await;
    let mds: Api<ModelDeployment> = Api::namespaced(client.clone(), &ns.name);
    let md = model_deployment("fd")
        .approval("fd-oci")
        .replicas(1)
        .create(&mds)
        .await;
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), &ns.name);
    let policy = eventually(60, "the egress policy", || async {
        policies.get_opt("fd").await.ok()?
    })
    .await;
    let spec = policy.spec.clone().expect("spec");
    assert_eq!(spec.policy_types, Some(vec!["Egress".to_string()]));
    let selector = spec
        .pod_selector
        .and_then(|s| s.match_labels)
        .unwrap_or_default();
    assert_eq!(
        selector
            .get("modelgate.io/model-deployment")
            .map(String::as_str),
        Some("fd")
    );
    let egress = spec.egress.unwrap_or_default();
    assert_eq!(
        egress.len(),
        1,
        "DNS only while the catalog lists no endpoint: {egress:?}"
    );
    let owner = policy.metadata.owner_references.unwrap_or_default();
    assert_eq!(
        owner.first().map(|o| o.uid.as_str()),
        md.metadata.uid.as_deref()
    );
    let _: Vec<Pod> = pods_serve(&client, &ns.name, "fd", &pushed.digest).await;
    // With no runtime listed, the pods are not sealed, and the status says why.
    let md = eventually(30, "the Sealed condition", || async {
        let md = mds.get("fd").await.ok()?;
        md.status
            .as_ref()?
            .conditions
            .iter()
            .find(|c| c.type_ == "Sealed")
            .cloned()
    })
    .await;
    assert_eq!(md.status, "False");
    assert_eq!(
        md.message.as_deref(),
        Some("no serving runtimes are listed in RuntimeCatalog modelgate")
    );
}
