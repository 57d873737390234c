//! The ApprovalPolicy kind: how each gate of the approvals in a namespace is
//! decided (a quorum of reviewers, or a rule over measured evidence), and
//! the rules as pinned into an approval's status on its first reconcile.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::breakglass::BreakGlassRule;
use super::condition::Condition;

/// The most reviewers a quorum may ask for.
pub const MAX_REVIEWERS: u32 = 10;

/// How the gates of the approvals in this namespace are decided. The policy
/// named `default` applies to every approval of its namespace; without one,
/// the `default` policy in modelgate's own namespace applies; without that,
/// one reviewer per gate. Each approval pins the rules in force when the
/// operator first sees it, so editing a policy changes new approvals only.
#[derive(CustomResource, KubeSchema, Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[kube(
    group = "modelgate.io",
    version = "v1alpha1",
    kind = "ApprovalPolicy",
    namespaced,
    derive = "PartialEq",
    derive = "Default",
    status = "ApprovalPolicyStatus",
    shortname = "apol",
    category = "modelgate",
    doc = "How each gate of the approvals in a namespace is decided: a quorum of distinct reviewers, or a CEL rule over measurements written by named identities. The policy named `default` applies to its namespace. Approvals pin the rules on first sight; later edits change new approvals only.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Rules",
        type_ = "string",
        json_path = ".status.summary",
        description = "How each gate that is not one-reviewer is decided"
    ),
    printcolumn(name = "Valid For", type_ = "string", json_path = ".spec.validFor"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalPolicySpec {
    /// The default validity of an approval once approved, e.g. 2160h, and
    /// its maximum: an approval's own validFor may only be shorter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new(super::valid_for::RULE).message(super::valid_for::MESSAGE))]
    pub valid_for: Option<String>,
    /// One entry per gate that is not decided by one reviewer; a gate left
    /// out needs one reviewer of its group.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 5))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["gate".into()]))]
    pub gates: Vec<GateRule>,
    /// Who may release an approval short of some gates in an emergency,
    /// who approves that, and for how long at most (docs/breakglass.md).
    /// Left out, no one may.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub break_glass: Option<BreakGlassRule>,
    /// For approvals imported from a TrustedPublisher (spec.importFrom): the
    /// gates reviewed here as well, under the rules above, e.g.
    /// BusinessReview. Every other gate is mirrored from the publisher's
    /// signed record and decided there. Left out: all five are mirrored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 5))]
    #[schemars(extend("items" = {"type": "string", "enum": ["TechnicalReview", "FairnessReview", "SecurityReview", "LegalReview", "BusinessReview"]}))]
    #[x_kube(validation = Rule::new("self.all(g, self.exists_one(h, h == g))").message("each gate may be named once"))]
    pub local_gates: Vec<String>,
}

/// How one gate is decided.
#[derive(KubeSchema, Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.automatic) || self.automatic.mode == 'Advise' || !has(self.reviewers) || self.reviewers == 1").message("a gate the rule decides (mode Decide) has no human quorum: leave reviewers out, or use mode Advise"))]
pub struct GateRule {
    /// The gate: TechnicalReview, FairnessReview, SecurityReview,
    /// LegalReview or BusinessReview.
    #[schemars(extend("enum" = ["TechnicalReview", "FairnessReview", "SecurityReview", "LegalReview", "BusinessReview"]))]
    pub gate: String,
    /// How many distinct members of the gate's group must approve (default
    /// 1). Any one rejection fails the gate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    // int32: the formats the API server knows (uint32 draws a warning).
    #[schemars(range(min = 1, max = MAX_REVIEWERS), extend("format" = "int32"))]
    pub reviewers: Option<u32>,
    /// A rule over measured evidence that decides the gate or advises the
    /// reviewers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automatic: Option<Automatic>,
    /// When the gate's review is due, who is told when it is overdue, and
    /// whether the approval expires if it stays undecided. A deadline never
    /// passes a gate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<Deadline>,
}

/// A gate's review deadline and escalation, counted from the approval's
/// creation.
#[derive(KubeSchema, Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Deadline {
    /// How long the gate may wait for its decision, e.g. 72h. After it the
    /// gate is overdue: its approval's status, the console and a Warning
    /// Event say so and name who was asked and who is told.
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new(super::valid_for::RULE).message("reviewWithin must be a positive duration of whole hours, minutes and seconds, such as 72h or 36h30m"))]
    pub review_within: String,
    /// Who is told when the gate is overdue (people, groups, on-call
    /// rotations), as the Event and the console name them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(min = 1, max = 256)))]
    pub escalate_to: Vec<String>,
    /// When set, an approval whose gate is still undecided this long after
    /// its creation expires as ReviewTimedOut (final: create a new
    /// ModelApproval). Left out, an overdue gate waits for ever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new(super::valid_for::RULE).message("expireAfter must be a positive duration of whole hours, minutes and seconds, such as 720h"))]
    pub expire_after: Option<String>,
}

/// A gate decided (or advised) by a CEL rule over measurements.
#[derive(KubeSchema, Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Automatic {
    /// A CEL expression over `m`, the measurements by name, that is true
    /// when the gate passes, e.g. `m.auc >= 0.92 && m.latency_p99_ms <= 50`.
    #[schemars(length(min = 1, max = 4096))]
    pub rule: String,
    /// The identities that may write measurements, e.g.
    /// system:serviceaccount:ml-pipelines:evaluator.
    #[schemars(length(min = 1, max = 16))]
    pub measured_by: Vec<String>,
    /// Decide: the rule passes or fails the gate. Advise: the result is
    /// shown beside the reviewers' decision.
    #[serde(default)]
    pub mode: RuleMode,
}

/// Whether a rule decides its gate or only advises.
#[derive(JsonSchema, Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum RuleMode {
    #[default]
    Decide,
    Advise,
}

/// What the operator found in the policy.
#[derive(KubeSchema, Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalPolicyStatus {
    /// Ready: every rule compiles and every quorum can be met.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// Each rule of the policy and whether it compiles.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 5))]
    pub rules: Vec<RuleStatus>,
    /// The rules at a glance, e.g. "SecurityReview 2 reviewers; TechnicalReview rule (Decide)".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// One rule's compile result.
#[derive(KubeSchema, Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RuleStatus {
    pub gate: String,
    pub compiles: bool,
    /// The compiler's message when it does not compile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The rules an approval is decided by, copied from its policy on the
/// operator's first reconcile and never changed after.
#[derive(KubeSchema, Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PinnedPolicy {
    /// The policy's namespace/name, or `built-in` (one reviewer per gate).
    pub name: String,
    /// The policy's generation when pinned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// The policy's validFor: the approval's default and maximum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_for: Option<String>,
    /// One entry per gate, all five, in the usual order.
    #[schemars(length(max = 5))]
    pub gates: Vec<PinnedGate>,
    /// The policy's break-glass rule, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub break_glass: Option<BreakGlassRule>,
}

/// One gate's pinned rule.
#[derive(KubeSchema, Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PinnedGate {
    pub gate: String,
    /// Distinct approvals needed (1: the gate's condition, as without policies).
    #[schemars(extend("format" = "int32"))]
    pub reviewers: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automatic: Option<Automatic>,
    /// The gate's review deadline, when the policy gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<Deadline>,
    /// Mirrored from a TrustedPublisher's signed record (an imported
    /// approval), so its condition is the operator's to write.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub imported: bool,
}

/// One person's review of a quorum gate, written by that person.
#[derive(KubeSchema, Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Review {
    /// The gate reviewed.
    #[schemars(extend("enum" = ["TechnicalReview", "FairnessReview", "SecurityReview", "LegalReview", "BusinessReview"]))]
    pub gate: String,
    /// The authenticated user writing the review (the admission policy
    /// refuses any other name).
    #[schemars(length(min = 1, max = 512))]
    pub reviewer: String,
    /// Approve or Reject.
    #[schemars(extend("enum" = ["Approve", "Reject"]))]
    pub decision: String,
    /// A CamelCase word that says why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Time>,
}

/// One measured value, written by an identity the pinned rule names.
#[derive(KubeSchema, Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Measurement {
    /// The name the rule uses, e.g. auc (as `m.auc`).
    #[schemars(length(min = 1, max = 63))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z][a-z0-9_]*$')").message("a measurement name is lower-case letters, digits and '_', starting with a letter, e.g. latency_p99_ms"))]
    pub name: String,
    pub value: f64,
    /// Where the value comes from, e.g. the evaluation report's URI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub source: Option<String>,
    /// The digest of that source, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 160))]
    pub source_digest: Option<String>,
    /// Who measured (the admission policy refuses any other name).
    #[schemars(length(min = 1, max = 512))]
    pub measured_by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Time>,
}

/// The operator's reading of one gate under the pinned rules: quorum
/// progress or the rule's result, with what is missing.
#[derive(KubeSchema, Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct GateProgress {
    pub gate: String,
    /// e.g. "1/2" for a quorum, "rule" for an automatic gate.
    pub progress: String,
    /// True, False or Unknown.
    pub result: String,
    /// What was seen and what is missing, for people.
    pub message: String,
    /// Decide or Advise, for a rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<RuleMode>,
}
