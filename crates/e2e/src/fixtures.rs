//! The objects tests make: approvals, deployments, gate decisions, and the
//! Events they leave.

use kube::Client;
use kube::api::{Api, Patch, PatchParams};

use crate::{users::*, wait::*};

/// A distinct, valid digest for each model version.
pub fn digest_of(version: &str) -> String {
    let hex: String = version.bytes().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex:0>64}")
}

/// A ModelApproval `name` for `fraud-detector` to make, by name:
/// `model_approval("fd-v1").version("1.0.0").create(&api).await`.
pub fn model_approval(name: &str) -> ApprovalFixture {
    ApprovalFixture {
        name: name.to_string(),
        version: "1.0.0".to_string(),
        valid_for: None,
        artifact: None,
    }
}

/// A ModelApproval to make: see [`model_approval`].
#[derive(Debug, Clone)]
pub struct ApprovalFixture {
    name: String,
    version: String,
    valid_for: Option<String>,
    /// (uri, digest) in place of the version's own.
    artifact: Option<(String, String)>,
}

impl ApprovalFixture {
    /// The model version it approves (1.0.0 unless told); the URI and a
    /// digest of its own follow from it.
    pub fn version(self, version: &str) -> Self {
        ApprovalFixture {
            version: version.to_string(),
            ..self
        }
    }

    /// How long the approval stands (spec.validFor), if at all.
    pub fn valid_for<'a>(self, valid_for: impl Into<Option<&'a str>>) -> Self {
        ApprovalFixture {
            valid_for: valid_for.into().map(str::to_string),
            ..self
        }
    }

    /// The artifact it approves, by URI and digest (an s3:// URI and a
    /// made-up digest of the version unless told).
    pub fn artifact(self, uri: &str, digest: &str) -> Self {
        ApprovalFixture {
            artifact: Some((uri.to_string(), digest.to_string())),
            ..self
        }
    }

    /// The manifest.
    pub fn build(&self) -> modelgate::api::approval::ModelApproval {
        let version = &self.version;
        let (uri, digest) = self.artifact.clone().unwrap_or_else(|| {
            (
                format!("s3://models/fraud-detector/{version}/"),
                digest_of(version),
            )
        });
        let mut spec = serde_json::json!({
            "model": {"name": "fraud-detector", "version": version, "uri": uri, "digest": digest},
        });
        if let Some(v) = &self.valid_for {
            spec["validFor"] = v.as_str().into();
        }
        serde_json::from_value(serde_json::json!({
            "apiVersion": "modelgate.io/v1alpha1", "kind": "ModelApproval",
            "metadata": {"name": self.name}, "spec": spec,
        }))
        .expect("approval manifest")
    }

    /// Creates it through `api`.
    pub async fn create(
        &self,
        api: &Api<modelgate::api::approval::ModelApproval>,
    ) -> modelgate::api::approval::ModelApproval {
        api.create(&kube::api::PostParams::default(), &self.build())
            .await
            .unwrap_or_else(|e| panic!("create approval {}: {e}", self.name))
    }
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

/// Fails one gate, as that gate's reviewer in `approve_all`: any one
/// failed gate rejects the approval.
pub async fn fail_gate(ns: &str, name: &str, gate: &str) {
    let reviewer = format!("{}@example.com", gate.to_ascii_lowercase());
    set_gate(ns, name, gate, "False", &reviewer)
        .await
        .unwrap_or_else(|e| panic!("fail {gate} of {name}: {e}"));
}

/// A ModelDeployment `name` to make, by name:
/// `model_deployment("fd").approval("fd-v1").replicas(2).on_revoke("ScaleToZero").build()`.
/// Unless told, it leaves spec.replicas unset and holds on revoke.
pub fn model_deployment(name: &str) -> DeploymentFixture {
    DeploymentFixture {
        name: name.to_string(),
        approval: String::new(),
        replicas: None,
        on_revoke: "Hold".to_string(),
    }
}

/// A ModelDeployment to make: see [`model_deployment`].
#[derive(Debug, Clone)]
pub struct DeploymentFixture {
    name: String,
    approval: String,
    replicas: Option<i32>,
    on_revoke: String,
}

impl DeploymentFixture {
    /// The ModelApproval it serves through (spec.approvalRef).
    pub fn approval(self, approval: &str) -> Self {
        DeploymentFixture {
            approval: approval.to_string(),
            ..self
        }
    }

    /// spec.replicas, if set.
    pub fn replicas(self, replicas: impl Into<Option<i32>>) -> Self {
        DeploymentFixture {
            replicas: replicas.into(),
            ..self
        }
    }

    /// spec.onRevoke: Hold, ScaleToZero or Rollback.
    pub fn on_revoke(self, on_revoke: &str) -> Self {
        DeploymentFixture {
            on_revoke: on_revoke.to_string(),
            ..self
        }
    }

    /// The manifest.
    pub fn build(&self) -> modelgate::api::deployment::ModelDeployment {
        let name = &self.name;
        assert!(
            !self.approval.is_empty(),
            "ModelDeployment {name}: no approval"
        );
        serde_json::from_value(serde_json::json!({
            "apiVersion": "modelgate.io/v1alpha1", "kind": "ModelDeployment",
            "metadata": {"name": name},
            "spec": {
                "approvalRef": {"name": self.approval}, "replicas": self.replicas, "onRevoke": self.on_revoke,
                "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [
                    {"name": "server", "image": "registry.example.com/model-server:1.8", "env": [{"name": "LOG_LEVEL", "value": "info"}]}
                ]}},
            },
        }))
        .expect("deployment manifest")
    }

    /// Creates it through `api`.
    pub async fn create(
        &self,
        api: &Api<modelgate::api::deployment::ModelDeployment>,
    ) -> modelgate::api::deployment::ModelDeployment {
        api.create(&kube::api::PostParams::default(), &self.build())
            .await
            .unwrap_or_else(|e| panic!("create ModelDeployment {}: {e}", self.name))
    }
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
    kube::Api<modelgate::api::approval::ModelApproval>,
    kube::Api<modelgate::api::deployment::ModelDeployment>,
) {
    let approvals = kube::Api::namespaced(client.clone(), ns);
    let mds = kube::Api::namespaced(client.clone(), ns);
    let create = kube::api::PostParams::default();
    let approval_manifest = model_approval(approval)
        .version(version)
        .valid_for(valid_for)
        .build();
    approvals
        .create(&create, &approval_manifest)
        .await
        .expect("approval");
    let md_manifest = model_deployment(md).approval(approval).replicas(1).build();
    mds.create(&create, &md_manifest).await.expect("md");
    (approvals, mds)
}

/// The condition of `type_` on an approval's status, if set.
pub fn condition_of<'a>(
    a: &'a modelgate::api::approval::ModelApproval,
    type_: &str,
) -> Option<&'a modelgate::api::condition::Condition> {
    modelgate::api::condition::find(&a.status.as_ref()?.conditions, type_)
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
) -> kube::Result<()> {
    use modelgate::api::gates::Gate;
    let api: Api<modelgate::api::approval::ModelApproval> = Api::namespaced(client.clone(), ns);
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

/// Waits up to `secs` for an Event about `name` that `wanted` accepts, and
/// returns every Event about it then. The operator publishes an Event after
/// the status write it describes, so a test that has just seen the status
/// waits for the Event rather than reading once.
pub async fn event_about(
    client: &Client,
    ns: &str,
    name: &str,
    secs: u64,
    wanted: impl Fn(&k8s_openapi::api::events::v1::Event) -> bool,
) -> Vec<k8s_openapi::api::events::v1::Event> {
    let what = format!("an Event about {name}");
    eventually(secs, &what, || async {
        let events = events_for(client, ns, name).await;
        events.iter().any(&wanted).then_some(events)
    })
    .await
}

/// Applies the `default` ApprovalPolicy of `ns` with `spec`, as its
/// platform team, and waits until the operator has read it, so that the
/// approvals made after pin it.
pub async fn apply_policy(client: &Client, ns: &str, spec: serde_json::Value) {
    use modelgate::api::policy::ApprovalPolicy;
    let body = serde_json::json!({
        "apiVersion": "modelgate.io/v1alpha1", "kind": "ApprovalPolicy",
        "metadata": {"name": "default", "namespace": ns},
        "spec": spec,
    });
    let api: Api<ApprovalPolicy> = Api::namespaced(client.clone(), ns);
    api.patch(
        "default",
        &PatchParams::apply("policy-admin").force(),
        &Patch::Apply(&body),
    )
    .await
    .expect("apply policy");
    eventually(60, "the policy observed", || async {
        let p = api.get("default").await.ok()?;
        (p.status?.observed_generation == p.metadata.generation).then_some(())
    })
    .await;
}
