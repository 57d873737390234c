//! The ModelDeployment controller against the real control plane
//! (kube-controller-manager, scheduler and kwok nodes): hold, release,
//! revoke, drift, replicas owned by others, and bad references.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use modelgate::api::{
    approval::ModelApproval,
    deployment::{DeploymentPhase, ModelDeployment},
};
use modelgate_e2e::{cluster::*, fixtures::*, operator::*, pods::*, users::*, wait::*};

struct Fixture {
    client: kube::Client,
    ns: TestNamespace,
    approvals: Api<ModelApproval>,
    mds: Api<ModelDeployment>,
    deployments: Api<Deployment>,
}

async fn setup(prefix: &str) -> Fixture {
    start_operator();
    let client = install_modelgate().await;
    let ns = TestNamespace::new(&client, prefix).await;
    Fixture {
        approvals: Api::namespaced(client.clone(), &ns.name),
        mds: Api::namespaced(client.clone(), &ns.name),
        deployments: Api::namespaced(client.clone(), &ns.name),
        client,
        ns,
    }
}

impl Fixture {
    async fn approval(&self, name: &str, version: &str) {
        model_approval(name)
            .version(version)
            .create(&self.approvals)
            .await;
    }

    async fn md(&self, name: &str, approval: &str, replicas: Option<i32>, on_revoke: &str) {
        self.mds
            .create(
                &PostParams::default(),
                &model_deployment(name)
                    .approval(approval)
                    .replicas(replicas)
                    .on_revoke(on_revoke)
                    .build(),
            )
            .await
            .expect("create md");
    }

    async fn phase(&self, name: &str, phase: DeploymentPhase) -> ModelDeployment {
        eventually(60, &format!("{name} {phase}"), || async {
            let md = self.mds.get(name).await.ok()?;
            (md.status.as_ref()?.phase == Some(phase)).then_some(md)
        })
        .await
    }

    /// The digest the Deployment's pod template carries now.
    async fn template_digest(&self, name: &str) -> Option<String> {
        let d = self.deployments.get_opt(name).await.ok()??;
        d.spec
            .template
            .metadata?
            .annotations?
            .get("modelgate.io/model-digest")
            .cloned()
    }

    /// Waits until Events of every (type, reason) in `wanted` are there
    /// (the operator publishes them after the status they describe).
    async fn events(&self, name: &str, wanted: &[(&str, &str)]) {
        let pair = |e: &k8s_openapi::api::events::v1::Event| {
            (
                e.type_.clone().unwrap_or_default(),
                e.reason.clone().unwrap_or_default(),
            )
        };
        let what = format!("Events {wanted:?} about {name}");
        eventually(30, &what, || async {
            let seen: Vec<_> = events_for(&self.client, &self.ns.name, name)
                .await
                .iter()
                .map(pair)
                .collect();
            wanted
                .iter()
                .all(|(t, r)| seen.iter().any(|(st, sr)| st == t && sr == r))
                .then_some(())
        })
        .await;
    }
}

fn condition(md: &ModelDeployment, t: &str) -> modelgate::api::condition::Condition {
    md.status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == t).cloned())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn held_until_approved_then_rolled_out_and_switched_to_a_new_version() {
    let f = setup("release").await;
    f.approval("fd-1", "1.0.0").await;
    f.md("fd", "fd-1", Some(2), "Hold").await;

    let md = f.phase("fd", DeploymentPhase::AwaitingApproval).await;
    let status = md.status.clone().unwrap_or_default();
    assert_eq!(
        status.pending_gates,
        [
            "TechnicalReview",
            "FairnessReview",
            "SecurityReview",
            "LegalReview",
            "BusinessReview"
        ]
    );
    assert!(
        condition(&md, "ApprovalSatisfied")
            .message
            .unwrap_or_default()
            .contains("waiting on TechnicalReview")
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        f.deployments.get_opt("fd").await.expect("get").is_none(),
        "a Deployment exists before approval"
    );

    // Approve gate by gate; the last one releases the rollout.
    let gates = [
        "TechnicalReview",
        "FairnessReview",
        "SecurityReview",
        "LegalReview",
        "BusinessReview",
    ];
    for gate in &gates[..4] {
        set_gate(
            &f.ns.name,
            "fd-1",
            gate,
            "True",
            &format!("{gate}@example.com"),
        )
        .await
        .expect("gate");
    }
    eventually(30, "one pending gate", || async {
        let md = f.mds.get("fd").await.ok()?;
        (md.status?.pending_gates == ["BusinessReview"]).then_some(())
    })
    .await;
    assert!(
        f.deployments.get_opt("fd").await.expect("get").is_none(),
        "a Deployment exists with a gate pending"
    );
    let last_gate = Instant::now();
    set_gate(
        &f.ns.name,
        "fd-1",
        "BusinessReview",
        "True",
        "bea@example.com",
    )
    .await
    .expect("gate");
    let want = digest_of("1.0.0");
    eventually(30, "template applied", || async {
        (f.template_digest("fd").await.as_deref() == Some(want.as_str())).then_some(())
    })
    .await;
    println!(
        "last gate True -> Deployment template applied: {} ms",
        last_gate.elapsed().as_millis()
    );

    let md = f.phase("fd", DeploymentPhase::Available).await;
    let status = md.status.clone().unwrap_or_default();
    assert_eq!(status.ready.as_deref(), Some("2/2"));
    assert_eq!(
        status
            .served_model
            .as_ref()
            .map(|s| (s.approval.as_str(), s.version.as_str())),
        Some(("fd-1", "1.0.0"))
    );
    assert_eq!(status.deployment_name.as_deref(), Some("fd"));
    let out = kubectl(&[
        "wait",
        "-n",
        &f.ns.name,
        "--for=condition=Available",
        "modeldeployment/fd",
        "--timeout=30s",
    ]);
    assert!(out.status.success(), "kubectl wait: {}", text(&out));

    // The pods run on kwok nodes and carry the approved identity.
    let pods: Api<Pod> = Api::namespaced(f.client.clone(), &f.ns.name);
    let list = pods
        .list(&ListParams::default().labels("modelgate.io/model-deployment=fd"))
        .await
        .expect("pods");
    let ready: Vec<&Pod> = list
        .items
        .iter()
        .filter(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .collect();
    assert_eq!(ready.len(), 2);
    for pod in ready {
        assert!(
            pod.spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .is_some_and(|n| n.starts_with("kwok-node-"))
        );
        let annotations = pod.metadata.annotations.clone().unwrap_or_default();
        assert_eq!(annotations.get("modelgate.io/model-digest"), Some(&want));
        assert_eq!(
            annotations.get("modelgate.io/approval").map(String::as_str),
            Some("fd-1")
        );
        let env: Vec<(String, String)> = pod
            .spec
            .as_ref()
            .map(|s| s.containers[0].env.clone().unwrap_or_default())
            .unwrap_or_default()
            .into_iter()
            .map(|e| (e.name, e.value.unwrap_or_default()))
            .collect();
        for (k, v) in [
            ("MODEL_NAME", "fraud-detector"),
            ("MODEL_VERSION", "1.0.0"),
            ("MODEL_DIGEST", want.as_str()),
            ("LOG_LEVEL", "info"),
        ] {
            assert!(
                env.contains(&(k.to_string(), v.to_string())),
                "pod env lacks {k}={v}: {env:?}"
            );
        }
    }

    // A new version, still pending: the old pods keep serving.
    f.approval("fd-2", "2.0.0").await;
    let patch = serde_json::json!({"spec": {"approvalRef": {"name": "fd-2"}}});
    f.mds
        .patch("fd", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("switch approval");
    let md = f.phase("fd", DeploymentPhase::AwaitingApproval).await;
    let status = md.status.clone().unwrap_or_default();
    assert_eq!(
        status.served_model.as_ref().map(|s| s.version.as_str()),
        Some("1.0.0")
    );
    assert_eq!(status.pending_gates.len(), 5);
    assert!(
        condition(&md, "ApprovalSatisfied")
            .message
            .unwrap_or_default()
            .contains("serving fraud-detector 1.0.0")
    );
    assert_eq!(
        f.template_digest("fd").await,
        Some(want.clone()),
        "template changed while held"
    );

    approve_all(&f.ns.name, "fd-2").await;
    let want2 = digest_of("2.0.0");
    eventually(30, "new template", || async {
        (f.template_digest("fd").await.as_deref() == Some(want2.as_str())).then_some(())
    })
    .await;
    let md = f.phase("fd", DeploymentPhase::Available).await;
    assert_eq!(
        md.status.and_then(|s| s.served_model).map(|s| s.version),
        Some("2.0.0".into())
    );

    f.events(
        "fd",
        &[
            ("Normal", "AwaitingApproval"),
            ("Normal", "RollingOut"),
            ("Normal", "Available"),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn revocation_with_hold_keeps_pods_and_scale_to_zero_removes_them() {
    let f = setup("revoke").await;
    for (name, on_revoke) in [("held", "Hold"), ("scaled", "ScaleToZero")] {
        f.approval(name, "3.0.0").await;
        approve_all(&f.ns.name, name).await;
        f.md(name, name, Some(2), on_revoke).await;
    }
    for name in ["held", "scaled"] {
        f.phase(name, DeploymentPhase::Available).await;
        set_gate(
            &f.ns.name,
            name,
            "SecurityReview",
            "False",
            "sec@example.com",
        )
        .await
        .expect("revoke");
    }
    let held = f.phase("held", DeploymentPhase::Revoked).await;
    assert_eq!(satisfied_reason(&held).as_deref(), Some("ApprovalRevoked"));
    f.phase("scaled", DeploymentPhase::Revoked).await;

    let replicas = |name: &'static str| {
        let deployments = f.deployments.clone();
        async move {
            deployments
                .get(name)
                .await
                .ok()
                .and_then(|d| d.spec.replicas)
        }
    };
    eventually(30, "scaled to zero", || async {
        (replicas("scaled").await == Some(0)).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(replicas("held").await, Some(2));
    let d = f.deployments.get("held").await.expect("held deployment");
    assert_eq!(
        d.status.and_then(|s| s.available_replicas),
        Some(2),
        "held pods stopped serving"
    );

    for name in ["held", "scaled"] {
        f.events(name, &[("Warning", "ApprovalRevoked")]).await;
    }

    // Passing the gate again releases the same version once more.
    set_gate(
        &f.ns.name,
        "scaled",
        "SecurityReview",
        "True",
        "sec@example.com",
    )
    .await
    .expect("restore");
    f.phase("scaled", DeploymentPhase::Available).await;
    assert_eq!(replicas("scaled").await, Some(2));
}

#[tokio::test(flavor = "multi_thread")]
async fn drift_is_put_back_and_unowned_replicas_are_left_alone() {
    let f = setup("drift").await;
    f.approval("fd", "4.0.0").await;
    approve_all(&f.ns.name, "fd").await;
    f.md("fd", "fd", None, "Hold").await;
    f.phase("fd", DeploymentPhase::Available).await;

    // Anyone but the operator is refused by the admission policy, admin too.
    let set_image = [
        "set",
        "image",
        "-n",
        &f.ns.name,
        "deployment/fd",
        "server=registry.example.com/unapproved:6.6.6",
    ];
    let out = kubectl(&set_image);
    assert!(
        !out.status.success() && text(&out).contains("is managed by modelgate"),
        "{}",
        text(&out)
    );
    // Drift can still arise (an edit from before the policy was installed, or
    // under the operator's own identity by mistake): the operator puts it back.
    let as_operator = [
        "--as",
        OPERATOR_USER,
        "--as-group",
        OPERATOR_GROUPS[0],
        "--as-group",
        OPERATOR_GROUPS[1],
    ];
    let mut args = set_image.to_vec();
    args.extend(as_operator);
    let out = kubectl(&args);
    assert!(out.status.success(), "{}", text(&out));
    eventually(30, "image put back", || async {
        let d = f.deployments.get("fd").await.ok()?;
        let image = d.spec.template.spec?.containers.first()?.image.clone()?;
        (image == "registry.example.com/model-server:1.8").then_some(())
    })
    .await;

    // replicas is not in the ModelDeployment: another manager may scale it.
    let scale = serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "fd"}, "spec": {"replicas": 3}});
    f.deployments
        .patch(
            "fd",
            &PatchParams::apply("autoscaler").force(),
            &Patch::Apply(&scale),
        )
        .await
        .expect("scale");
    // Touch the ModelDeployment so the operator reconciles and applies again.
    let touch = serde_json::json!({"metadata": {"annotations": {"example.com/touched": "yes"}}});
    f.mds
        .patch("fd", &PatchParams::default(), &Patch::Merge(&touch))
        .await
        .expect("touch");
    eventually(60, "3 ready", || async {
        let md = f.mds.get("fd").await.ok()?;
        (md.status?.ready.as_deref() == Some("3/3")).then_some(())
    })
    .await;
    let d = f.deployments.get("fd").await.expect("deployment");
    assert_eq!(d.spec.replicas, Some(3));
    let owners: Vec<String> = d
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert!(
        owners.contains(&"modelgate".to_string()) && owners.contains(&"autoscaler".to_string()),
        "{owners:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_references_and_templates_are_conditions_not_crashes() {
    let f = setup("badref").await;
    // Missing approval.
    f.md("missing", "does-not-exist", Some(1), "Hold").await;
    let md = f.phase("missing", DeploymentPhase::AwaitingApproval).await;
    let c = condition(&md, "ApprovalSatisfied");
    assert_eq!(c.reason.as_deref(), Some("ApprovalNotFound"));
    assert!(c.message.unwrap_or_default().contains("does-not-exist"));

    // Another namespace.
    let mut cross = model_deployment("cross").approval("fd").replicas(1).build();
    cross.spec.approval_ref.namespace = Some("kube-system".into());
    f.mds
        .create(&PostParams::default(), &cross)
        .await
        .expect("create");
    let md = f.phase("cross", DeploymentPhase::Failed).await;
    assert_eq!(satisfied_reason(&md).as_deref(), Some("CrossNamespaceRef"));

    // A template the CRD accepts but the Deployment API refuses (a container
    // name must be a DNS label).
    f.approval("fd", "5.0.0").await;
    approve_all(&f.ns.name, "fd").await;
    let mut bad = model_deployment("badtemplate")
        .approval("fd")
        .replicas(1)
        .build();
    if let Some(spec) = bad.spec.template.spec.as_mut() {
        spec.containers[0].name = "Model_Server".into();
    }
    f.mds
        .create(&PostParams::default(), &bad)
        .await
        .expect("create");
    let md = f.phase("badtemplate", DeploymentPhase::Failed).await;
    let c = condition(&md, "Progressing");
    assert_eq!(c.reason.as_deref(), Some("InvalidTemplate"));
    assert!(c.message.unwrap_or_default().contains("Model_Server"));
    f.events("badtemplate", &[("Warning", "Failed")]).await;
    // No hot loop: a settled failure makes no further writes.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rv = f
        .mds
        .get("badtemplate")
        .await
        .ok()
        .and_then(|m| m.metadata.resource_version)
        .unwrap_or_default();
    assert_eq!(
        count_writes(&f.mds, "badtemplate", &rv, Duration::from_secs(10)).await,
        0
    );

    // Fixing the approval reference recovers.
    let fix = serde_json::json!({"spec": {"approvalRef": {"name": "fd"}}});
    f.mds
        .patch("missing", &PatchParams::default(), &Patch::Merge(&fix))
        .await
        .expect("fix ref");
    f.phase("missing", DeploymentPhase::Available).await;
}

/// A finalizer anyone put on the ModelDeployment keeps it from going, and
/// with it the garbage collector's delete of its Deployment: the operator
/// deletes the Deployment itself, so deleting a ModelDeployment stops its
/// model at once whatever holds the object.
#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_model_deployment_stops_its_model_whatever_holds_it() {
    let f = setup("held-delete").await;
    f.approval("fd", "1.0.0").await;
    approve_all(&f.ns.name, "fd").await;
    f.md("fd", "fd", Some(2), "Hold").await;
    f.phase("fd", DeploymentPhase::Available).await;
    let hold = serde_json::json!({"metadata": {"finalizers": ["example.com/keep"]}});
    f.mds
        .patch("fd", &PatchParams::default(), &Patch::Merge(&hold))
        .await
        .expect("add a finalizer");
    f.mds
        .delete("fd", &Default::default())
        .await
        .expect("delete the ModelDeployment");

    eventually(30, "the Deployment deleted", || async {
        f.deployments
            .get_opt("fd")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    f.events("fd", &[("Warning", "ModelDeploymentDeleted")])
        .await;
    let pods: Api<Pod> = Api::namespaced(f.client.clone(), &f.ns.name);
    let selector = ListParams::default().labels("modelgate.io/model-deployment=fd");
    eventually(60, "its pods gone", || async {
        pods.list(&selector)
            .await
            .ok()?
            .items
            .is_empty()
            .then_some(())
    })
    .await;
    let md = f.mds.get("fd").await.expect("still held by the finalizer");
    assert!(md.metadata.deletion_timestamp.is_some());

    let release = serde_json::json!({"metadata": {"finalizers": null}});
    f.mds
        .patch("fd", &PatchParams::default(), &Patch::Merge(&release))
        .await
        .expect("remove the finalizer");
}
