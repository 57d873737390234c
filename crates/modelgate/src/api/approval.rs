//! The ModelApproval kind: one exact model artifact and the five review gates
//! it must pass before any ModelDeployment may serve it.

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::breakglass::ReleasedBy;
use super::condition::Condition;
use super::policy::{GateProgress, Measurement, PinnedPolicy, Review};

/// What is approved: one exact model artifact, how long the approval holds,
/// and the evidence reviewers rely on. Immutable once created.
#[derive(CustomResource, KubeSchema, Clone, Debug, Serialize, Deserialize, PartialEq)]
#[kube(
    group = "modelgate.io",
    version = "v1alpha1",
    kind = "ModelApproval",
    namespaced,
    derive = "PartialEq",
    status = "ModelApprovalStatus",
    shortname = "ma",
    shortname = "mapproval",
    category = "modelgate",
    doc = "A formal, auditable approval of one exact model artifact. Five review gates (TechnicalReview, FairnessReview, SecurityReview, LegalReview, BusinessReview) are set by reviewers as status conditions; the operator sets Approved and the phase. The spec cannot change after creation: a new model version is a new ModelApproval.",
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.phase",
        description = "Pending, Approved, Rejected, Expired or BreakGlass"
    ),
    printcolumn(name = "Model", type_ = "string", json_path = ".spec.model.name"),
    printcolumn(name = "Version", type_ = "string", json_path = ".spec.model.version"),
    printcolumn(
        name = "Gates",
        type_ = "string",
        json_path = ".status.gatesPassed",
        description = "Gates passed out of five"
    ),
    printcolumn(
        name = "Waiting On",
        type_ = "string",
        json_path = ".status.waitingOn",
        description = "Gates still open, with quorum progress, e.g. SecurityReview 1/2"
    ),
    printcolumn(
        name = "Seal",
        type_ = "string",
        json_path = ".status.artifact.seal",
        description = "Sealed: an OCI artifact resolved in its registry, mounted by digest; Unsealed: any other URI, which nothing makes the pods load; Unresolved: an OCI artifact its registry does not serve (yet)"
    ),
    printcolumn(
        name = "Imported From",
        type_ = "string",
        json_path = ".spec.importFrom.approval",
        priority = 1,
        description = "For an imported approval: the publisher's approval it mirrors (spec.importFrom)"
    ),
    printcolumn(
        name = "Expires",
        type_ = "date",
        json_path = ".status.expiresAt",
        priority = 1
    ),
    printcolumn(
        name = "Digest",
        type_ = "string",
        json_path = ".spec.model.digest",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("self == oldSelf").message("spec is immutable: an approval is a record about one exact artifact; create a new ModelApproval for a new model version"))]
#[x_kube(validation = Rule::new("!has(self.importFrom) || self.model.uri.startsWith('oci://')").message("an imported approval is read from the model's registry: spec.model.uri must be oci://REGISTRY/REPOSITORY"))]
#[serde(rename_all = "camelCase")]
pub struct ModelApprovalSpec {
    /// The exact model artifact this approval is about.
    pub model: ModelArtifact,
    /// How long the approval holds once all five gates have passed, as a
    /// duration such as 2160h (90 days). After it, the phase turns Expired and
    /// deployments serving the model are revoked until a new approval passes.
    /// Leave it out for an approval that does not lapse.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new(super::valid_for::RULE).message(super::valid_for::MESSAGE))]
    pub valid_for: Option<String>,
    /// Links to the material reviewers rely on, such as a fairness report.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    pub evidence: Vec<Evidence>,
    /// Honour another cluster's approval of the same artifact instead of
    /// reviewing it here (docs/fleet.md): its signed records are read from
    /// the model's registry and its gates mirrored into this approval's
    /// status. Only gates the local ApprovalPolicy keeps local
    /// (localGates) are reviewed here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import_from: Option<super::fleet::Import>,
}

/// Where a model artifact lives and which exact bytes are approved.
#[derive(KubeSchema, Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[x_kube(validation = Rule::new(super::oci::RULE).message(super::oci::MESSAGE))]
#[serde(rename_all = "camelCase")]
pub struct ModelArtifact {
    /// The model's name, e.g. fraud-detector: lower-case letters, digits,
    /// '-', '_' and '.', starting and ending with a letter or digit, at most
    /// 63 characters (so it can also serve as a label value).
    #[schemars(length(min = 1, max = 63))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9_.]*[a-z0-9])?$')").message("model name must be lower-case letters, digits, '-', '_' or '.', starting and ending with a letter or digit"))]
    pub name: String,
    /// The model's version, e.g. 2.4.0: letters, digits, '.', '_', '+' and
    /// '-', starting and ending with a letter or digit, at most 63 characters.
    #[schemars(length(min = 1, max = 63))]
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9]([-A-Za-z0-9_.+]*[A-Za-z0-9])?$')").message("model version must be letters, digits, '.', '_', '+' or '-', starting and ending with a letter or digit, e.g. 2.4.0"))]
    pub version: String,
    /// Where the artifact lives, as a URI with a scheme. An OCI artifact,
    /// oci://REGISTRY/REPOSITORY[:TAG], is resolved in its registry before
    /// approval and mounted into the pods by digest (sealed); any other
    /// scheme, e.g. s3://models/fraud-detector/2.4.0/, is passed to the
    /// pods as MODEL_URI and is unsealed: nothing makes the pod load it.
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = Rule::new("self.matches('^[a-zA-Z][a-zA-Z0-9+.-]*://[^ ]+$')").message("uri must be a URI with a scheme and no spaces, e.g. s3://models/fraud-detector/2.4.0/"))]
    pub uri: String,
    /// The exact artifact approved, as <algorithm>:<hex>, e.g. sha256
    /// followed by 64 hex digits; for an oci:// uri, the manifest's sha256
    /// digest. A deployment serves these bytes and no others.
    #[schemars(length(min = 1, max = 160))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]+([+._-][a-z0-9]+)*:[a-f0-9]{32,}$')").message("digest must be <algorithm>:<lower-case hex>, e.g. sha256:0f3c… with 64 hex digits"))]
    #[x_kube(validation = Rule::new("!self.startsWith('sha256:') || self.size() == 71").message("a sha256 digest has exactly 64 hex digits after 'sha256:'"))]
    #[x_kube(validation = Rule::new("!self.startsWith('sha512:') || self.size() == 135").message("a sha512 digest has exactly 128 hex digits after 'sha512:'"))]
    pub digest: String,
}

/// A link to material that one gate's reviewers rely on.
#[derive(KubeSchema, Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Evidence {
    /// The gate this evidence supports: TechnicalReview, FairnessReview,
    /// SecurityReview, LegalReview or BusinessReview.
    #[schemars(extend("enum" = ["TechnicalReview", "FairnessReview", "SecurityReview", "LegalReview", "BusinessReview"]))]
    pub gate: String,
    /// Where the evidence is, e.g. https://reports.example.com/fairness.html.
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = Rule::new("self.matches('^[a-zA-Z][a-zA-Z0-9+.-]*://[^ ]+$')").message("evidence uri must be a URI with a scheme and no spaces"))]
    pub uri: String,
    /// What the evidence shows, in a sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,
}

impl ModelApproval {
    /// The conditions of its status (reviewers' gates and the operator's),
    /// none when it has no status yet.
    pub fn conditions(&self) -> &[Condition] {
        self.status
            .as_ref()
            .map(|s| s.conditions.as_slice())
            .unwrap_or_default()
    }
}

/// Where an approval stands.
#[derive(JsonSchema, Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub enum ApprovalPhase {
    /// Waiting on one or more gates.
    Pending,
    /// All five gates passed and the approval has not lapsed.
    Approved,
    /// At least one gate failed.
    Rejected,
    /// The approval lapsed (validFor ran out). Final: re-certify with a new
    /// ModelApproval.
    Expired,
    /// Released by an approved BreakGlass while some gates are still open:
    /// it serves until the break-glass window ends, and turns Approved
    /// when the skipped gates pass in time, Pending (revoked) when not.
    BreakGlass,
}

impl ApprovalPhase {
    /// Every phase, in the order an approval passes through them.
    pub const ALL: [ApprovalPhase; 5] = [
        ApprovalPhase::Pending,
        ApprovalPhase::Approved,
        ApprovalPhase::Rejected,
        ApprovalPhase::Expired,
        ApprovalPhase::BreakGlass,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            ApprovalPhase::Pending => "Pending",
            ApprovalPhase::Approved => "Approved",
            ApprovalPhase::Rejected => "Rejected",
            ApprovalPhase::Expired => "Expired",
            ApprovalPhase::BreakGlass => "BreakGlass",
        }
    }
}

impl std::fmt::Display for ApprovalPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Reviewers write their gate conditions here; every other field is the
/// operator's.
#[derive(KubeSchema, Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ModelApprovalStatus {
    /// Pending, Approved, Rejected, Expired or BreakGlass. Set by the
    /// operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<ApprovalPhase>,
    /// The five gates (set by reviewers) and Approved and ReviewsValid (set by
    /// the operator). Keyed by type: write your gate with server-side apply or
    /// a JSON patch, never a merge patch of the whole list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// Gates passed out of five, e.g. 3/5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gates_passed: Option<String>,
    /// The gate states the operator last acted on, so that each change of a
    /// gate is recorded exactly once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = crate::api::gates::Gate::ALL.len()))]
    pub observed_gates: Vec<ObservedGate>,
    /// When all five gates first passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_at: Option<Time>,
    /// When the approval lapses: approvedAt plus spec.validFor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Time>,
    /// The generation of the spec the operator last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The uid of the approval this status was decided for. A status
    /// decided for an approval since deleted and re-created under the same
    /// name is refused by admission, and never releases a model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_uid: Option<String>,
    /// The newest observed transitions of gates and phase, oldest first. The
    /// API server's audit log is the complete record.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub history: Vec<HistoryEntry>,
    /// How many older history entries were dropped to keep the object small.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_dropped: Option<i64>,
    /// The hash of the newest history entry: the head of the chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub history_head: Option<String>,
    /// The hash the oldest kept entry links to, once older ones were dropped,
    /// so the chain stays checkable from the first kept entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub history_base: Option<String>,
    /// The rules this approval is decided by, pinned from its ApprovalPolicy
    /// on the operator's first reconcile and never changed after.
    // Shared: the cached approvals under one policy hold one copy of it
    // (see `runtime::watches::SharedPolicies`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<Arc<PinnedPolicy>>,
    /// Reviews of quorum gates, one per person and gate, each written by
    /// that person (server-side apply of their own entry).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["gate".into(), "reviewer".into()]))]
    pub reviews: Vec<Review>,
    /// Measured evidence for automatic gates, written only by the
    /// identities the pinned rule names. One entry per name and author: an
    /// entry is its author's alone (the admission policy refuses anyone
    /// else's change), and a gate's rule reads only its own evaluators'.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into(), "measuredBy".into()]))]
    pub measurements: Vec<Measurement>,
    /// Quorum progress and rule results of the gates one person does not
    /// decide alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub progress: Vec<GateProgress>,
    /// What the approval waits on, at a glance, e.g. "SecurityReview 1/2".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_on: Option<String>,
    /// The reviews and measurements the operator last recorded, so each is
    /// recorded in history exactly once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 82))]
    pub observed_inputs: Vec<ObservedInput>,
    /// The gates past their review deadline and still undecided.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 5))]
    pub overdue: Vec<OverdueGate>,
    /// The artifact as its registry serves it, looked up once before the
    /// approval can pass; for a URI that is not oci://, only that it is
    /// unsealed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<ResolvedArtifact>,
    /// The approved BreakGlass that releases the approval while its phase
    /// is BreakGlass; kept, with the outcome in history, once it ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub break_glass: Option<Box<ReleasedBy>>,
    /// For an OCI model: the signed records attached to it in its registry,
    /// so that other clusters and offline checks read them there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publication: Option<Box<Publication>>,
    /// For an imported approval: the publisher's record honoured, read
    /// from the registry and verified with its keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imported: Option<Box<super::fleet::ImportedApproval>>,
}

/// The records of an approval attached to its model in the registry.
#[derive(KubeSchema, Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Publication {
    /// The seq of the newest record attached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<i64>,
    /// REGISTRY/REPOSITORY@DIGEST of its referrer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2400))]
    pub referrer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_at: Option<Time>,
    /// Why the last attempt failed, while attempts fail; they are retried
    /// with backoff until one succeeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub message: Option<String>,
}

/// A gate whose review is overdue.
#[derive(KubeSchema, Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct OverdueGate {
    pub gate: String,
    /// When its review was due.
    pub due: Time,
    /// Who was asked: the gate's reviewer group, or the rule's evaluators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub asked: Option<String>,
    /// Who is told, from the pinned policy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub escalated_to: Vec<String>,
    /// When the approval expires as ReviewTimedOut if the gate stays
    /// undecided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<Time>,
}

/// What the registry said about the approved artifact.
#[derive(KubeSchema, Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedArtifact {
    /// Sealed (an OCI artifact its registry serves, mounted into the pods by
    /// digest), Unsealed (not an OCI artifact: nothing makes the pods load
    /// it) or Unresolved (an OCI artifact its registry does not serve, yet).
    pub seal: Seal,
    /// REGISTRY/REPOSITORY@DIGEST, what the pods mount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2400))]
    pub reference: Option<String>,
    /// The manifest's media type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub media_type: Option<String>,
    /// The manifest's artifact type (or its config's media type), e.g.
    /// application/vnd.cncf.model.manifest.v1+json for a ModelPack model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub artifact_type: Option<String>,
    /// The bytes of all its layers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
    /// How many layers (files) it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layers: Option<i64>,
    /// When the registry answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<Time>,
    /// Why it is unsealed or unresolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub message: Option<String>,
}

/// Whether the pods are made to load exactly the approved bytes.
#[derive(JsonSchema, Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum Seal {
    /// Mounted into every pod by digest.
    Sealed,
    /// Not an OCI artifact: the pods are told its URI and digest, and
    /// nothing makes them load it.
    #[default]
    Unsealed,
    /// An OCI artifact its registry does not serve (yet): the approval
    /// stays Pending.
    Unresolved,
}

impl Seal {
    pub const fn as_str(self) -> &'static str {
        match self {
            Seal::Sealed => "Sealed",
            Seal::Unsealed => "Unsealed",
            Seal::Unresolved => "Unresolved",
        }
    }
}

/// One review or measurement as the operator last recorded it.
#[derive(KubeSchema, Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ObservedInput {
    /// `Review/<gate>/<reviewer>` or `Measurement/<name>/<measuredBy>`
    /// (`Measurement/<name>` before measurements were keyed by author).
    pub key: String,
    /// The decision, or the value as text.
    pub value: String,
}

/// The state of one gate as the operator last saw it.
#[derive(KubeSchema, Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ObservedGate {
    /// The gate's condition type.
    pub gate: String,
    /// True, False or Unknown.
    pub status: String,
    /// Who set it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reviewer: Option<String>,
}

/// One observed transition, kept in status as the durable audit record.
#[derive(KubeSchema, Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    /// When the operator observed the transition.
    pub time: Time,
    /// What changed: a gate's condition type, or Phase.
    pub subject: String,
    /// The state before (a condition status or a phase); empty when new.
    #[serde(default)]
    pub from: String,
    /// The state after.
    pub to: String,
    /// The reviewer who made a gate decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reviewer: Option<String>,
    /// The reason given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The message given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// This entry's place in the hash chain: one more than the entry before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<i64>,
    /// SHA-256 (hex) over the canonical JSON of this entry without `hash`,
    /// plus `prev`, the entry before's hash (docs/records.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub hash: Option<String>,
}

/// The subject of a history entry that records a phase change.
pub const PHASE_SUBJECT: &str = "Phase";
