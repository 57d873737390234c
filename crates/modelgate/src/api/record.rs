//! The ApprovalRecord kind: a signed, immutable statement of one phase change
//! of a ModelApproval, written by the operator and kept after the approval is
//! gone.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// One signed record. Everything an auditor relies on is inside `envelope`
/// (a DSSE envelope around an in-toto Statement); the other fields repeat
/// part of it so that `kubectl get approvalrecords` answers at a glance.
#[derive(CustomResource, KubeSchema, Clone, Debug, Serialize, Deserialize, PartialEq)]
#[kube(
    group = "modelgate.io",
    version = "v1alpha1",
    kind = "ApprovalRecord",
    namespaced,
    derive = "PartialEq",
    shortname = "mar",
    shortname = "arecord",
    category = "modelgate",
    doc = "A signed, immutable record of one phase change of a ModelApproval: an in-toto Statement about the model artifact in a DSSE envelope, signed with the operator's Ed25519 key. Written only by the operator, never changed, and kept after the approval is deleted. Verify offline with `kubectl modelgate audit export` and `audit verify`.",
    printcolumn(name = "Approval", type_ = "string", json_path = ".spec.approval.name"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".spec.phase"),
    printcolumn(name = "Model", type_ = "string", json_path = ".spec.model.name"),
    printcolumn(name = "Version", type_ = "string", json_path = ".spec.model.version"),
    printcolumn(
        name = "Seq",
        type_ = "integer",
        json_path = ".spec.seq",
        description = "The history entry of the phase change"
    ),
    printcolumn(name = "Recorded", type_ = "date", json_path = ".spec.time"),
    printcolumn(
        name = "Digest",
        type_ = "string",
        json_path = ".spec.model.digest",
        priority = 1
    ),
    printcolumn(
        name = "Key",
        type_ = "string",
        json_path = ".spec.keyId",
        priority = 1
    )
)]
#[x_kube(validation = Rule::new("self == oldSelf").message("an ApprovalRecord never changes: it is a signed record of what happened"))]
#[serde(rename_all = "camelCase")]
pub struct ApprovalRecordSpec {
    /// The approval the record is about (it may since have been deleted).
    pub approval: RecordedApproval,
    /// The model artifact, as the signed statement's subject names it.
    pub model: RecordedModel,
    /// The phase the approval entered: Approved, Rejected, Expired or Pending.
    #[schemars(length(max = 16))]
    pub phase: String,
    /// The `seq` of the phase change in the approval's history.
    pub seq: i64,
    /// When the phase changed.
    pub time: Time,
    /// The signing key's id: SHA-256 (hex) of its public key (DER).
    #[schemars(length(max = 64))]
    pub key_id: String,
    /// The signed statement.
    pub envelope: Envelope,
}

/// Which approval, by name and uid (a re-created approval has a new uid).
#[derive(KubeSchema, Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RecordedApproval {
    #[schemars(length(max = 253))]
    pub name: String,
    #[schemars(length(max = 64))]
    pub uid: String,
}

/// The model artifact the approval is about.
#[derive(KubeSchema, Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RecordedModel {
    #[schemars(length(max = 63))]
    pub name: String,
    #[schemars(length(max = 63))]
    pub version: String,
    #[schemars(length(max = 160))]
    pub digest: String,
}

/// A DSSE envelope (github.com/secure-systems-lab/dsse): the payload, its
/// type, and signatures over the pre-authentication encoding of both.
#[derive(KubeSchema, Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    /// application/vnd.in-toto+json.
    #[schemars(length(max = 128))]
    pub payload_type: String,
    /// The in-toto Statement, base64 (standard alphabet, padded).
    #[schemars(length(max = 1048576))]
    pub payload: String,
    #[schemars(length(min = 1, max = 8))]
    pub signatures: Vec<Signature>,
}

/// One signature of a DSSE envelope.
#[derive(KubeSchema, Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Signature {
    /// The signing key's id.
    #[serde(default)]
    #[schemars(length(max = 64))]
    pub keyid: String,
    /// The Ed25519 signature, base64.
    #[schemars(length(max = 128))]
    pub sig: String,
}

/// The signed checkpoint of a namespace's records: the newest recorded seq
/// and history head of every approval there (deleted ones included), so
/// that an export missing an approval's newest records shows it. One per
/// namespace, named [`CHECKPOINT_NAME`], written only by the operator.
#[derive(CustomResource, KubeSchema, Clone, Debug, Serialize, Deserialize, PartialEq)]
#[kube(
    group = "modelgate.io",
    version = "v1alpha1",
    kind = "RecordCheckpoint",
    namespaced,
    derive = "PartialEq",
    shortname = "mrc",
    category = "modelgate",
    doc = "The signed checkpoint of the ApprovalRecords of a namespace: the newest recorded seq and history head of every approval, in a DSSE envelope signed with the operator's Ed25519 key. Written only by the operator; `kubectl modelgate audit export` includes it and `audit verify` names each approval whose newest records are missing.",
    printcolumn(name = "Approvals", type_ = "integer", json_path = ".spec.approvals"),
    printcolumn(name = "Signed", type_ = "date", json_path = ".spec.time"),
    printcolumn(
        name = "Key",
        type_ = "string",
        json_path = ".spec.keyId",
        priority = 1
    )
)]
#[serde(rename_all = "camelCase")]
pub struct RecordCheckpointSpec {
    /// When the operator signed it.
    pub time: Time,
    /// How many approvals it names.
    pub approvals: i64,
    /// The signing key's id.
    #[schemars(length(max = 64))]
    pub key_id: String,
    /// The signed checkpoint (payload type
    /// application/vnd.modelgate.checkpoint+json).
    pub envelope: Envelope,
}

/// The name of the one checkpoint of a namespace.
pub const CHECKPOINT_NAME: &str = "approval-records";
