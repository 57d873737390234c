//! The shipped Argo CD health checks, run with a Lua 5.1 interpreter (as
//! Argo CD's) against objects the operator really produced, for every phase.

use kube::api::{Api, PostParams};
use modelgate::api::{approval::ModelApproval, deployment::ModelDeployment};
use modelgate_e2e::{argocd::*, cluster::*, fixtures::*, operator::*, wait::*};
use serde_json::Value;

async fn json_of<
    K: kube::Resource + serde::Serialize + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
>(
    api: &Api<K>,
    name: &str,
    phase: &str,
) -> Value {
    eventually(90, &format!("{name} {phase}"), || async {
        let v = serde_json::to_value(api.get(name).await.ok()?).ok()?;
        (v["status"]["phase"] == phase).then_some(v)
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn health_checks_match_every_phase_the_operator_produces() {
    start_operator();
    let client = install_modelgate().await;
    let ns = TestNamespace::new(&client, "argocd").await;
    let approvals: Api<ModelApproval> = Api::namespaced(client.clone(), &ns.name);
    let mds: Api<ModelDeployment> = Api::namespaced(client.clone(), &ns.name);
    let create_approval = |name: &'static str, valid_for: Option<&'static str>| {
        let approvals = approvals.clone();
        async move {
            approvals
                .create(
                    &PostParams::default(),
                    &model_approval(name)
                        .version("9.0.0")
                        .valid_for(valid_for)
                        .build(),
                )
                .await
                .expect("approval")
        }
    };
    create_approval("pending", None).await;
    for (name, valid_for) in [
        ("approved", None),
        ("rejected", None),
        ("expired", Some("2s")),
        ("revoked", None),
    ] {
        create_approval(name, valid_for).await;
        approve_all(&ns.name, name).await;
    }
    set_gate(
        &ns.name,
        "rejected",
        "LegalReview",
        "False",
        "lee@example.com",
    )
    .await
    .expect("reject");

    let create_md =
        |name: &'static str, approval: &'static str, tweak: fn(&mut ModelDeployment)| {
            let mds = mds.clone();
            async move {
                let mut md = model_deployment(name)
                    .approval(approval)
                    .replicas(1)
                    .build();
                tweak(&mut md);
                mds.create(&PostParams::default(), &md).await.expect("md")
            }
        };
    create_md("awaiting", "pending", |_| {}).await;
    create_md("available", "approved", |_| {}).await;
    create_md("revoked", "revoked", |_| {}).await;
    // Pods that no node can take keep the rollout going.
    create_md("rolling", "approved", |md| {
        if let Some(spec) = md.spec.template.spec.as_mut() {
            spec.node_selector =
                Some([("modelgate.io/no-such-node".to_string(), "true".to_string())].into());
        }
    })
    .await;
    create_md("failed", "approved", |md| {
        if let Some(spec) = md.spec.template.spec.as_mut() {
            spec.containers[0].name = "Not_A_Dns_Label".into();
        }
    })
    .await;
    json_of(&mds, "revoked", "Available").await;
    set_gate(
        &ns.name,
        "revoked",
        "SecurityReview",
        "False",
        "sec@example.com",
    )
    .await
    .expect("revoke");

    let mut checked = Vec::new();
    for (name, phase, want) in [
        ("pending", "Pending", "Suspended"),
        ("approved", "Approved", "Healthy"),
        ("rejected", "Rejected", "Degraded"),
        ("expired", "Expired", "Degraded"),
    ] {
        let obj = json_of(&approvals, name, phase).await;
        let (status, message) = health("ModelApproval", &obj);
        assert_eq!(status, want, "ModelApproval {phase}: {message}");
        assert!(message.starts_with(phase), "{message}");
        checked.push(format!("ModelApproval {phase} -> {status}: {message}"));
    }
    for (name, phase, want) in [
        ("awaiting", "AwaitingApproval", "Suspended"),
        ("rolling", "RollingOut", "Progressing"),
        ("available", "Available", "Healthy"),
        ("revoked", "Revoked", "Degraded"),
        ("failed", "Failed", "Degraded"),
    ] {
        let obj = json_of(&mds, name, phase).await;
        let (status, message) = health("ModelDeployment", &obj);
        assert_eq!(status, want, "ModelDeployment {phase}: {message}");
        checked.push(format!("ModelDeployment {phase} -> {status}: {message}"));

        // Not yet observed: no status, or a generation the operator has not seen.
        let mut unobserved = obj.clone();
        unobserved["metadata"]["generation"] =
            (obj["metadata"]["generation"].as_i64().unwrap_or(1) + 1).into();
        assert_eq!(
            health("ModelDeployment", &unobserved).0,
            "Progressing",
            "{phase} with a newer generation"
        );
        let mut fresh = obj.clone();
        if let Some(o) = fresh.as_object_mut() {
            o.remove("status");
        }
        assert_eq!(health("ModelDeployment", &fresh).0, "Progressing");
    }
    let obj = json_of(&approvals, "approved", "Approved").await;
    let mut fresh = obj.clone();
    if let Some(o) = fresh.as_object_mut() {
        o.remove("status");
    }
    assert_eq!(health("ModelApproval", &fresh).0, "Progressing");
    let mut unobserved = obj;
    unobserved["metadata"]["generation"] = 2.into();
    assert_eq!(health("ModelApproval", &unobserved).0, "Progressing");
    println!("{}", checked.join("\n"));
}
