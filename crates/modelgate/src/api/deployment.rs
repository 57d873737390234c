//! The ModelDeployment kind: serves a model through an ordinary Deployment
//! whose rollout the operator holds until the linked ModelApproval passes.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::condition::Condition;

/// Which approval gates the rollout, how many pods, what they run, and what
/// happens when the approval is withdrawn.
#[derive(CustomResource, KubeSchema, Clone, Debug, Serialize, Deserialize, PartialEq)]
#[kube(
    group = "modelgate.io",
    version = "v1alpha1",
    kind = "ModelDeployment",
    namespaced,
    status = "ModelDeploymentStatus",
    shortname = "md",
    shortname = "mdeploy",
    category = "modelgate",
    doc = "Serves a model through an ordinary Deployment of the same name. The operator holds the rollout until the ModelApproval named in spec.approvalRef is Approved, injects the approved model's identity into every container, and applies spec.onRevoke when the approval is withdrawn or lapses.",
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.phase",
        description = "AwaitingApproval, RollingOut, Available, Revoked or Failed"
    ),
    printcolumn(
        name = "Approval",
        type_ = "string",
        json_path = ".spec.approvalRef.name"
    ),
    printcolumn(
        name = "Serving",
        type_ = "string",
        json_path = ".status.servedModel.version",
        description = "The model version the pods serve now"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.ready",
        description = "Ready pods out of desired"
    ),
    printcolumn(
        name = "Seal",
        type_ = "string",
        json_path = ".status.seal",
        description = "Sealed when the pods load only the approved OCI artifact through an approved runtime; Unsealed otherwise (the Sealed condition says why)"
    ),
    printcolumn(
        name = "Break-Glass",
        type_ = "string",
        json_path = ".status.breakGlass",
        description = "While a break-glass releases the approval: which, until when, and the gates it skips"
    ),
    printcolumn(
        name = "Pending",
        type_ = "string",
        json_path = ".status.pendingGates",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ModelDeploymentSpec {
    /// The ModelApproval that must be Approved before this model is rolled
    /// out. It must be in the same namespace.
    pub approval_ref: ApprovalRef,
    /// The number of pods. Leave it out to let a HorizontalPodAutoscaler or
    /// another tool own the Deployment's replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub replicas: Option<i32>,
    /// The pods that serve the model, as in a Deployment. The operator adds
    /// MODEL_NAME, MODEL_VERSION, MODEL_URI and MODEL_DIGEST to every
    /// container and the modelgate.io/model-* annotations to the pods; for
    /// an OCI model, also the model itself as a read-only image volume at
    /// /models/<model name>, named in MODEL_PATH. The template may not
    /// declare image volumes of its own.
    pub template: PodTemplateSpec,
    /// What happens to running pods when the approval stops being Approved:
    /// Hold keeps them and blocks rollouts; ScaleToZero takes the model out of
    /// service; Rollback serves the newest earlier version whose approval
    /// still stands.
    #[serde(default)]
    pub on_revoke: OnRevoke,
    /// With onRevoke Rollback, what to do when no earlier version qualifies:
    /// Hold (the default) or ScaleToZero.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_fallback: Option<RollbackFallback>,
}

/// A reference to a ModelApproval.
#[derive(KubeSchema, Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalRef {
    /// The ModelApproval's name.
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$')").message("approvalRef.name must be the name of a ModelApproval: lower-case letters, digits, '-' and '.'"))]
    pub name: String,
    /// The ModelApproval's namespace. Only the ModelDeployment's own namespace
    /// is allowed; any other is reported in status as CrossNamespaceRef.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub namespace: Option<String>,
}

/// What to do with running pods when their approval is withdrawn or lapses.
#[derive(JsonSchema, Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum OnRevoke {
    /// Keep the current pods serving and block every rollout.
    #[default]
    Hold,
    /// Scale the Deployment to zero: the model leaves service.
    ScaleToZero,
    /// Serve the newest earlier version (from status.servedHistory) whose
    /// approval still exists with the same uid and is Approved; spec is left
    /// as it is. When none qualifies, rollbackFallback applies.
    Rollback,
}

/// What Rollback does when no earlier version qualifies.
#[derive(JsonSchema, Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum RollbackFallback {
    /// Keep the current pods serving and block every rollout.
    #[default]
    Hold,
    /// Scale the Deployment to zero.
    ScaleToZero,
}

/// Where a model deployment stands.
#[derive(JsonSchema, Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub enum DeploymentPhase {
    /// The linked approval has not passed; nothing new is rolled out.
    AwaitingApproval,
    /// The approved model is being rolled out.
    RollingOut,
    /// The approved model is served by available pods.
    Available,
    /// The approval that was serving was withdrawn or lapsed.
    Revoked,
    /// The rollout cannot proceed (bad template, deadline exceeded, …).
    Failed,
}

impl DeploymentPhase {
    /// Every phase, for counting.
    pub const ALL: [DeploymentPhase; 5] = [
        DeploymentPhase::AwaitingApproval,
        DeploymentPhase::RollingOut,
        DeploymentPhase::Available,
        DeploymentPhase::Revoked,
        DeploymentPhase::Failed,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            DeploymentPhase::AwaitingApproval => "AwaitingApproval",
            DeploymentPhase::RollingOut => "RollingOut",
            DeploymentPhase::Available => "Available",
            DeploymentPhase::Revoked => "Revoked",
            DeploymentPhase::Failed => "Failed",
        }
    }
}

impl std::fmt::Display for DeploymentPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Written by the operator only.
#[derive(KubeSchema, Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ModelDeploymentStatus {
    /// AwaitingApproval, RollingOut, Available, Revoked or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<DeploymentPhase>,
    /// ApprovalSatisfied, Progressing, Available and Sealed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// The gates of the linked approval that have not passed yet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = crate::api::gates::Gate::ALL.len()))]
    pub pending_gates: Vec<String>,
    /// The model the pods serve now: the one every running pod runs, or,
    /// while pods of several models run (a rollout) or none do, the one
    /// the Deployment's template carries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served_model: Option<ServedModel>,
    /// Every model that pods of this ModelDeployment run now, read from
    /// their ReplicaSets, with the number of pods of each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = RUNNING_LIMIT))]
    pub running: Vec<RunningModel>,
    /// The managed Deployment's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_name: Option<String>,
    /// Ready pods out of desired, e.g. 3/3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<String>,
    /// The generation of the spec the operator last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// What the Deployment served, newest first (at most 10): where
    /// onRevoke Rollback looks for an earlier version.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = SERVED_HISTORY_LIMIT))]
    pub served_history: Vec<ServedEntry>,
    /// Sealed or Unsealed, as the Sealed condition says, at a glance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seal: Option<super::approval::Seal>,
    /// While a break-glass releases the approval: which, until when, and
    /// the gates it skips. The rollout is an emergency one until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512))]
    pub break_glass: Option<String>,
}

/// The most entries status.servedHistory keeps (also its schema's bound).
pub const SERVED_HISTORY_LIMIT: usize = 10;

/// One version the Deployment served.
#[derive(KubeSchema, Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ServedEntry {
    /// The ModelApproval that approved it.
    pub approval: String,
    /// That approval's uid: a re-created approval of the same name is
    /// another approval and never qualifies for a rollback.
    #[serde(default)]
    pub uid: String,
    /// The model's version.
    pub version: String,
    /// The exact artifact.
    pub digest: String,
    /// When it started serving.
    pub since: Time,
}

impl ServedEntry {
    /// Whether `approval` is the very approval of this entry: same name and
    /// same uid (a re-created approval of the same name is another one).
    pub fn is(&self, approval: &super::approval::ModelApproval) -> bool {
        approval.metadata.name.as_deref() == Some(self.approval.as_str())
            && approval.metadata.uid.as_deref() == Some(self.uid.as_str())
    }
}

/// The most entries status.running keeps (also its schema's bound).
pub const RUNNING_LIMIT: usize = 16;

/// A model that pods run, and how many.
#[derive(KubeSchema, Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RunningModel {
    /// The ModelApproval the pods' template names.
    pub approval: String,
    /// The model's name.
    pub name: String,
    /// The model's version.
    pub version: String,
    /// The exact artifact.
    pub digest: String,
    /// The pods that run it.
    pub pods: i32,
}

impl RunningModel {
    /// The model, without the count.
    pub fn model(&self) -> ServedModel {
        ServedModel {
            approval: self.approval.clone(),
            name: self.name.clone(),
            version: self.version.clone(),
            digest: self.digest.clone(),
        }
    }
}

/// The identity of the model a Deployment serves.
#[derive(KubeSchema, Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ServedModel {
    /// The ModelApproval that approved it.
    pub approval: String,
    /// The model's name.
    pub name: String,
    /// The model's version.
    pub version: String,
    /// The exact artifact.
    pub digest: String,
}

/// The condition types of a ModelDeployment's status.
pub const APPROVAL_SATISFIED: &str = "ApprovalSatisfied";
pub const PROGRESSING: &str = "Progressing";
pub const AVAILABLE: &str = "Available";
pub const SEALED: &str = "Sealed";
