//! onRevoke: Rollback against the real control plane: when the serving
//! version's approval is revoked, the pods serve the newest earlier version
//! whose approval still stands; when none does, rollbackFallback applies; a
//! re-approval resumes the normal rollout; a re-created approval of the same
//! name is never chosen.

use std::time::Instant;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams, PostParams};
use modelgate::api::{
    approval::ModelApproval,
    deployment::{DeploymentPhase, ModelDeployment},
};
use modelgate_e2e::{argocd::*, cluster::*, fixtures::*, operator::*, pods::*, wait::*};

/// A ModelDeployment of two replicas with onRevoke Rollback.
fn rollback_md(name: &str, approval: &str, fallback: &str) -> ModelDeployment {
    let mut md = model_deployment(name)
        .approval(approval)
        .replicas(2)
        .on_revoke("Rollback")
        .build();
    md.spec.rollback_fallback = serde_json::from_value(fallback.into()).ok();
    md
}

/// Points the ModelDeployment at another approval, as a GitOps change would.
async fn point_at(mds: &Api<ModelDeployment>, name: &str, approval: &str) {
    let patch = serde_json::json!({"spec": {"approvalRef": {"name": approval}}});
    mds.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("point at approval");
}

/// Seconds until every pod of a plain Deployment runs `digest` after its
/// template changes: the Deployment controller's own reaction, the peer.
async fn deployment_controller_reaction(client: &kube::Client, ns: &str) -> f64 {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let plain = |digest: &str| -> Deployment {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "peer", "labels": {"modelgate.io/model-deployment": "peer"}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"modelgate.io/model-deployment": "peer"}},
                     "template": {"metadata": {"labels": {"modelgate.io/model-deployment": "peer"}},
                                  "spec": {"containers": [{"name": "s", "image": "registry.example.com/model-server:1.8",
                                                           "env": [{"name": "MODEL_DIGEST", "value": digest}]}]}}},
        }))
        .expect("peer deployment")
    };
    let apply = PatchParams::apply("rollback-test").force();
    deployments
        .patch("peer", &apply, &Patch::Apply(&plain("sha256:peer-1")))
        .await
        .expect("peer v1");
    pods_serve(client, ns, "peer", "sha256:peer-1").await;
    let started = Instant::now();
    deployments
        .patch("peer", &apply, &Patch::Apply(&plain("sha256:peer-2")))
        .await
        .expect("peer v2");
    pods_serve(client, ns, "peer", "sha256:peer-2").await;
    started.elapsed().as_secs_f64()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_version_rolls_back_to_the_last_one_still_approved() {
    start_operator();
    let client = install_modelgate().await;
    let ns = TestNamespace::new(&client, "rollback").await;
    let n = ns.name.as_str();
    let approvals: Api<ModelApproval> = Api::namespaced(client.clone(), n);
    let mds: Api<ModelDeployment> = Api::namespaced(client.clone(), n);
    let (d1, d2) = (digest_of("1.0.0"), digest_of("2.0.0"));

    // v1 (valid for 40 s, so that it lapses later in the test) then v2.
    model_approval("fd-v1")
        .version("1.0.0")
        .valid_for("40s")
        .create(&approvals)
        .await;
    approve_all(n, "fd-v1").await;
    mds.create(
        &PostParams::default(),
        &rollback_md("fd", "fd-v1", "ScaleToZero"),
    )
    .await
    .expect("md");
    phase(&mds, "fd", DeploymentPhase::Available).await;
    pods_serve(&client, n, "fd", &d1).await;
    model_approval("fd-v2")
        .version("2.0.0")
        .create(&approvals)
        .await;
    approve_all(n, "fd-v2").await;
    point_at(&mds, "fd", "fd-v2").await;
    eventually(60, "v2 available", || async {
        let md = mds.get("fd").await.ok()?;
        let s = md.status?;
        (s.phase == Some(DeploymentPhase::Available) && s.served_model?.digest == d2).then_some(())
    })
    .await;
    pods_serve(&client, n, "fd", &d2).await;

    // v2 revoked: every pod serves v1 again; spec untouched.
    let revoked_at = Instant::now();
    set_gate(
        n,
        "fd-v2",
        "SecurityReview",
        "False",
        "securityreview@example.com",
    )
    .await
    .expect("revoke v2");
    pods_serve(&client, n, "fd", &d1).await;
    let rolled_back = revoked_at.elapsed().as_secs_f64();
    let md = phase(&mds, "fd", DeploymentPhase::Revoked).await;
    assert_eq!(satisfied_reason(&md).as_deref(), Some("RolledBack"));
    assert_eq!(md.spec.approval_ref.name, "fd-v2", "spec is untouched");
    let status = md.status.clone().unwrap_or_default();
    assert_eq!(status.served_model.map(|s| s.digest), Some(d1.clone()));
    let history: Vec<&str> = status
        .served_history
        .iter()
        .map(|e| e.approval.as_str())
        .collect();
    assert_eq!(
        history,
        ["fd-v1", "fd-v2", "fd-v1"],
        "servedHistory, newest first"
    );
    // A Warning Event says what is served and why.
    event_about(&client, n, "fd", 30, |e| {
        e.type_.as_deref() == Some("Warning")
            && e.reason.as_deref() == Some("RolledBack")
            && e.note.as_deref().is_some_and(|t| t.contains("fd-v1"))
    })
    .await;
    // Argo CD shows it Degraded, saying what serves and why.
    let (health_status, message) = health(
        "ModelDeployment",
        &serde_json::to_value(&md).expect("md json"),
    );
    assert_eq!(health_status, "Degraded");
    assert!(
        message.contains(
            "serving the newest earlier approved version fraud-detector 1.0.0 (approval fd-v1)"
        ),
        "{message}"
    );
    let peer = deployment_controller_reaction(&client, n).await;
    println!(
        "revoking gate write → last rolled-back pod: {rolled_back:.2} s; the Deployment controller's own template-to-pods reaction: {peer:.2} s; ratio {:.2}",
        rolled_back / peer
    );

    // v1 lapses too: nothing earlier qualifies, rollbackFallback ScaleToZero.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), n);
    eventually(90, "v1 expired and the fallback applied", || async {
        let md = mds.get("fd").await.ok()?;
        let c = satisfied(&md)?.clone();
        let scaled = deployments.get("fd").await.ok()?.spec.replicas == Some(0);
        (scaled
            && c.message
                .unwrap_or_default()
                .contains("no earlier approved version qualifies"))
        .then_some(())
    })
    .await;

    // v2 passes again: the normal rollout resumes.
    set_gate(
        n,
        "fd-v2",
        "SecurityReview",
        "True",
        "securityreview@example.com",
    )
    .await
    .expect("re-approve v2");
    phase(&mds, "fd", DeploymentPhase::Available).await;
    let pods = pods_serve(&client, n, "fd", &d2).await;
    assert_eq!(pods.len(), 2, "back at two replicas");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recreated_approval_of_the_same_name_is_never_rolled_back_to() {
    start_operator();
    let client = install_modelgate().await;
    let ns = TestNamespace::new(&client, "rollback-uid").await;
    let n = ns.name.as_str();
    let approvals: Api<ModelApproval> = Api::namespaced(client.clone(), n);
    let mds: Api<ModelDeployment> = Api::namespaced(client.clone(), n);
    model_approval("fd-v1")
        .version("1.0.0")
        .create(&approvals)
        .await;
    approve_all(n, "fd-v1").await;
    mds.create(&PostParams::default(), &rollback_md("fd", "fd-v1", "Hold"))
        .await
        .expect("md");
    phase(&mds, "fd", DeploymentPhase::Available).await;
    model_approval("fd-v2")
        .version("2.0.0")
        .create(&approvals)
        .await;
    approve_all(n, "fd-v2").await;
    point_at(&mds, "fd", "fd-v2").await;
    pods_serve(&client, n, "fd", &digest_of("2.0.0")).await;
    phase(&mds, "fd", DeploymentPhase::Available).await;

    // v1 is neither named nor served any more: it goes at once, and a new
    // approval of the same name (another uid) passes all five gates.
    approvals
        .delete("fd-v1", &Default::default())
        .await
        .expect("delete v1");
    gone(&approvals, "fd-v1", 30).await;
    model_approval("fd-v1")
        .version("1.0.0")
        .create(&approvals)
        .await;
    approve_all(n, "fd-v1").await;

    set_gate(
        n,
        "fd-v2",
        "LegalReview",
        "False",
        "legalreview@example.com",
    )
    .await
    .expect("revoke v2");
    let md = phase(&mds, "fd", DeploymentPhase::Revoked).await;
    assert_eq!(satisfied_reason(&md).as_deref(), Some("ApprovalRevoked"));
    let message = satisfied(&md)
        .and_then(|c| c.message.clone())
        .unwrap_or_default();
    assert!(
        message.contains("no earlier approved version qualifies"),
        "{message}"
    );
    // Held on v2 (rollbackFallback Hold): the re-created v1 never ran.
    pods_serve(&client, n, "fd", &digest_of("2.0.0")).await;
}
