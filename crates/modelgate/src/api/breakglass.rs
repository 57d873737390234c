//! The BreakGlass kind: an emergency release of an approval that is still
//! short of some gates, asked for by someone the approval's pinned policy
//! names, approved by a smaller quorum of others, for a window that ends
//! with the skipped gates ratified or the release revoked.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::condition::Condition;

/// The most approvers a break-glass rule may ask for.
pub const MAX_APPROVALS: u32 = 5;

/// The longest status.message, in characters: the operator cuts its own
/// messages to it, or a status naming many people would not be written.
pub const MESSAGE_LIMIT: usize = 2048;

/// An emergency release: which approval, why, for how long and which of
/// its gates it goes without. Immutable once created; approvers add their
/// own entry to status.approvals.
#[derive(CustomResource, KubeSchema, Clone, Debug, Serialize, Deserialize, PartialEq)]
#[kube(
    group = "modelgate.io",
    version = "v1alpha1",
    kind = "BreakGlass",
    plural = "breakglasses",
    namespaced,
    derive = "PartialEq",
    status = "BreakGlassStatus",
    shortname = "bg",
    category = "modelgate",
    doc = "An emergency release of a ModelApproval still short of some gates. Only identities its pinned ApprovalPolicy names may request it, others approve it (never the requester), and the release lasts for its duration: unless the skipped gates pass in that time, the operator revokes it and every ModelDeployment serving it applies its onRevoke. Every break-glass is in the approval's history and its own signed record.",
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.phase",
        description = "AwaitingApproval, Active, Ratified, Lapsed or Refused"
    ),
    printcolumn(
        name = "Approval",
        type_ = "string",
        json_path = ".spec.approvalRef.name"
    ),
    printcolumn(
        name = "Skips",
        type_ = "string",
        json_path = ".status.skipping",
        description = "The gates this break-glass releases the approval without"
    ),
    printcolumn(name = "Until", type_ = "date", json_path = ".status.until"),
    printcolumn(
        name = "Requested By",
        type_ = "string",
        json_path = ".spec.requestedBy.user",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("self == oldSelf").message("spec is immutable: a break-glass is a record of one request; create a new BreakGlass"))]
#[serde(rename_all = "camelCase")]
pub struct BreakGlassSpec {
    /// The ModelApproval to release, in this namespace.
    pub approval_ref: ApprovalRef,
    /// Why, for the record: the incident and what it costs to wait, e.g.
    /// "INC-4711: 2.4.0 flags every card payment in Ireland; 2.4.1 fixes it".
    #[schemars(length(min = 10, max = 2048))]
    pub reason: String,
    /// How long the release lasts once approved, e.g. 8h: whole hours,
    /// minutes and seconds, at most the policy's maxDuration.
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new(super::valid_for::RULE).message("duration must be a positive duration of whole hours, minutes and seconds, such as 8h or 90m"))]
    pub duration: String,
    /// The gates released without: each must still be undecided (a gate a
    /// reviewer failed cannot be skipped) and be passed before the window
    /// ends.
    #[schemars(length(min = 1, max = 5))]
    #[x_kube(validation = Rule::new("self.all(g, self.exists_one(h, h == g))").message("each gate may be named once"))]
    pub skips: Vec<SkippedGate>,
    /// Who asks: your own user name (the admission policy refuses any other)
    /// and the groups of yours that entitle you to ask. `kubectl modelgate
    /// break-glass request` fills it in.
    pub requested_by: Identity,
}

/// A gate a break-glass may skip.
#[derive(JsonSchema, Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum SkippedGate {
    TechnicalReview,
    FairnessReview,
    SecurityReview,
    LegalReview,
    BusinessReview,
}

impl SkippedGate {
    pub const fn as_str(self) -> &'static str {
        match self {
            SkippedGate::TechnicalReview => "TechnicalReview",
            SkippedGate::FairnessReview => "FairnessReview",
            SkippedGate::SecurityReview => "SecurityReview",
            SkippedGate::LegalReview => "LegalReview",
            SkippedGate::BusinessReview => "BusinessReview",
        }
    }
}

/// A ModelApproval in the same namespace.
#[derive(KubeSchema, Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ApprovalRef {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// A person as the API server authenticated them: a user name and the
/// groups they claim, each of which the admission policy checks is theirs.
#[derive(KubeSchema, Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    #[schemars(length(min = 1, max = 512))]
    pub user: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(min = 1, max = 256)))]
    pub groups: Vec<String>,
}

/// Where a break-glass stands.
#[derive(JsonSchema, Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum BreakGlassPhase {
    /// Waiting for its approvers.
    AwaitingApproval,
    /// Approved: the approval is released until `until`.
    Active,
    /// The skipped gates passed within the window: the approval is Approved.
    Ratified,
    /// The window ended before the skipped gates passed: the release is
    /// revoked. Final.
    Lapsed,
    /// The pinned policy does not allow it (see the message). Final.
    Refused,
}

impl BreakGlassPhase {
    pub const fn as_str(self) -> &'static str {
        match self {
            BreakGlassPhase::AwaitingApproval => "AwaitingApproval",
            BreakGlassPhase::Active => "Active",
            BreakGlassPhase::Ratified => "Ratified",
            BreakGlassPhase::Lapsed => "Lapsed",
            BreakGlassPhase::Refused => "Refused",
        }
    }

    /// Whether nothing changes it any more.
    pub const fn is_final(self) -> bool {
        matches!(
            self,
            BreakGlassPhase::Ratified | BreakGlassPhase::Lapsed | BreakGlassPhase::Refused
        )
    }
}

/// Approvers write their own entry in `approvals`; every other field is
/// the operator's.
#[derive(KubeSchema, Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BreakGlassStatus {
    /// One entry per approver, each written by that person (server-side
    /// apply of their own entry; `kubectl modelgate break-glass approve`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["user".into()]))]
    pub approvals: Vec<BreakGlassApproval>,
    /// AwaitingApproval, Active, Ratified, Lapsed or Refused. Set by the
    /// operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<BreakGlassPhase>,
    /// The skipped gates, comma-separated, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipping: Option<String>,
    /// The approvers the operator counted, in the order they approved.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub approved_by: Vec<String>,
    /// When the quorum of approvers was met: the window starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_since: Option<Time>,
    /// When the window ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<Time>,
    /// When it became Ratified, Lapsed or Refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<Time>,
    /// What is happening and what is needed next, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MESSAGE_LIMIT))]
    pub message: Option<String>,
    /// Ready: True while Active.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 4))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The uid of the approval it was first judged against: it releases
    /// that approval only, never one created again under the same name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub approval_uid: Option<String>,
}

/// One approver's approval of a break-glass.
#[derive(KubeSchema, Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BreakGlassApproval {
    /// Your own user name (the admission policy refuses any other).
    #[schemars(length(min = 1, max = 512))]
    pub user: String,
    /// The groups of yours that entitle you to approve; the admission
    /// policy checks each is yours.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(min = 1, max = 256)))]
    pub groups: Vec<String>,
    /// What you checked, for the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Time>,
}

/// Who may ask for a break-glass of the approvals a policy decides, who
/// approves it, and for how long at most.
#[derive(KubeSchema, Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BreakGlassRule {
    /// Who may request one: users and groups, e.g. the incident commanders.
    /// Owning a model entitles no one.
    pub requesters: Identities,
    /// Who approves one, e.g. the on-call group. The requester's own
    /// approval never counts.
    pub approvers: Identities,
    /// How many distinct approvers, other than the requester (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = MAX_APPROVALS), extend("format" = "int32"))]
    pub approvals: Option<u32>,
    /// The longest window a break-glass may ask for, e.g. 24h.
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new(super::valid_for::RULE).message("maxDuration must be a positive duration of whole hours, minutes and seconds, such as 24h"))]
    pub max_duration: String,
}

/// Users and groups, by name.
#[derive(KubeSchema, Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(has(self.users) && size(self.users) > 0) || (has(self.groups) && size(self.groups) > 0)").message("name at least one user or group"))]
pub struct Identities {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(min = 1, max = 512)))]
    pub users: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(min = 1, max = 256)))]
    pub groups: Vec<String>,
}

impl Identities {
    /// Whether `who` is named, by user name or by one of its groups.
    pub fn includes(&self, who: &Identity) -> bool {
        self.users.contains(&who.user) || who.groups.iter().any(|g| self.groups.contains(g))
    }

    /// "users a, b; groups c", for messages.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.users.is_empty() {
            parts.push(format!("users {}", self.users.join(", ")));
        }
        if !self.groups.is_empty() {
            parts.push(format!("groups {}", self.groups.join(", ")));
        }
        parts.join("; ")
    }
}

/// The break-glass an approval is released by, as its status shows it.
#[derive(KubeSchema, Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ReleasedBy {
    /// The BreakGlass object.
    pub name: String,
    pub requested_by: String,
    #[schemars(length(max = 16))]
    pub approved_by: Vec<String>,
    #[schemars(length(max = 2048))]
    pub reason: String,
    /// The gates released without.
    #[schemars(length(max = 5))]
    pub skips: Vec<String>,
    pub since: Time,
    /// When the release is revoked unless the skipped gates pass.
    pub until: Time,
}
