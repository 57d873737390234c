//! A fleet honours one signed approval (docs/fleet.md): the TrustedPublisher
//! kind names whose signed records a cluster accepts, an approval's
//! `spec.importFrom` names the approval it mirrors, and its `status.imported`
//! says what was read from the registry and honoured.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// Another cluster (or any signer of modelgate records) whose approvals
/// this cluster honours: its public keys, and the models it may approve.
#[derive(CustomResource, KubeSchema, Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[kube(
    group = "modelgate.io",
    version = "v1alpha1",
    kind = "TrustedPublisher",
    status = "TrustedPublisherStatus",
    derive = "PartialEq",
    shortname = "tp",
    category = "modelgate",
    doc = "A publisher of signed approval records (another cluster's modelgate) whose approvals this cluster honours: a ModelApproval with spec.importFrom names it, and the operator accepts only records its public keys sign, for models in its repositories. Cluster-scoped: written by the platform team only (role modelgate-trust-admin).",
    printcolumn(
        name = "Repositories",
        type_ = "string",
        json_path = ".spec.repositories"
    ),
    printcolumn(
        name = "Description",
        type_ = "string",
        json_path = ".spec.description"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct TrustedPublisherSpec {
    /// Who the publisher is, e.g. "cluster-a: the model review board's
    /// cluster in eu-west".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,
    /// The publisher's public keys, each a PEM "PUBLIC KEY" block as its
    /// modelgate publishes them (the modelgate-public-keys ConfigMap). A
    /// record signed by any of them is accepted; remove a key to stop
    /// honouring what it signed.
    #[schemars(length(min = 1, max = 16))]
    #[schemars(extend("items" = {"type": "string", "maxLength": 4096}))]
    #[x_kube(validation = Rule::new("self.all(k, k.contains('-----BEGIN PUBLIC KEY-----'))").message("each public key must be a PEM block '-----BEGIN PUBLIC KEY-----' of at most 4096 characters, as in the publisher's modelgate-public-keys ConfigMap"))]
    pub public_keys: Vec<String>,
    /// The model repositories whose artifacts the publisher may approve
    /// here, as prefixes of REGISTRY/REPOSITORY, e.g.
    /// registry.example.com/models/. Left out: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[schemars(extend("items" = {"type": "string", "minLength": 1, "maxLength": 512}))]
    #[x_kube(validation = Rule::new("self.all(r, !r.contains('://'))").message("a repository is REGISTRY/REPOSITORY or a prefix of it, without a scheme, e.g. registry.example.com/models/"))]
    pub repositories: Vec<String>,
    /// The publisher's namespaces whose approvals are honoured here, e.g.
    /// ml-prod. Left out: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    #[schemars(extend("items" = {"type": "string", "minLength": 1, "maxLength": 63}))]
    pub namespaces: Vec<String>,
}

/// What the operator has honoured of the publisher's records, so that an
/// older record is never honoured again for the same approval and model,
/// by any approval here (one deleted and re-created included). Written by
/// the operator only.
#[derive(KubeSchema, Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TrustedPublisherStatus {
    /// The newest record honoured per publisher's approval and model.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 4096))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["approval".into(), "digest".into()]))]
    pub honoured: Vec<Honoured>,
}

/// The newest record of one of the publisher's approvals honoured here.
#[derive(KubeSchema, Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Honoured {
    /// The publisher's approval, NAMESPACE/NAME.
    #[schemars(length(max = 317))]
    pub approval: String,
    /// The model's digest.
    #[schemars(length(max = 160))]
    pub digest: String,
    pub seq: i64,
    /// When the publisher's approval changed phase in that record.
    pub time: Time,
    /// Its phase then.
    #[schemars(length(max = 32))]
    pub phase: String,
}

/// Which approval an imported ModelApproval mirrors.
#[derive(KubeSchema, Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Import {
    /// The TrustedPublisher whose keys sign the records honoured.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub publisher: String,
    /// The publisher's approval of the same artifact, as NAMESPACE/NAME in
    /// the publisher's cluster, e.g. ml-prod/fraud-detector-2-4-1.
    #[schemars(
        length(min = 3, max = 317),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub approval: String,
}

/// What the operator read from the registry and honours for an imported
/// approval. Written by the operator only.
#[derive(KubeSchema, Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ImportedApproval {
    /// The TrustedPublisher.
    pub publisher: String,
    /// The publisher's approval, NAMESPACE/NAME.
    pub approval: String,
    /// The uid of the TrustedPublisher object whose keys verified it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub publisher_uid: Option<String>,
    /// Its uid in the publisher's cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub uid: Option<String>,
    /// Its phase in the newest record honoured: the local approval is
    /// Approved only while this is Approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    pub phase: Option<String>,
    /// The seq of that record in the publisher's history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<i64>,
    /// When the publisher's approval changed to that phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Time>,
    /// When the publisher's approval lapses: the local one lapses then too,
    /// whether or not the registry can be reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Time>,
    /// The digest of the referrer that carries the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 160))]
    pub referrer: Option<String>,
    /// The publisher's gates in that record, mirrored into this approval's
    /// gate conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 5))]
    pub gates: Vec<MirroredGate>,
    /// Records attached to the model for this approval that were not
    /// honoured, and why (a signature no trusted key makes, another
    /// artifact, a replay of an older record).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub refused: Vec<RefusedRecord>,
    /// Why nothing (new) is honoured, while that lasts: the publisher is
    /// not trusted, the registry cannot be read, no record is attached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub message: Option<String>,
}

/// One of the publisher's gates as its record says.
#[derive(KubeSchema, Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MirroredGate {
    #[schemars(length(max = 32))]
    pub gate: String,
    /// True, False or Unknown.
    #[schemars(length(max = 16))]
    pub status: String,
    /// Who decided it in the publisher's cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512))]
    pub reviewer: Option<String>,
}

/// A record that was read and not honoured.
#[derive(KubeSchema, Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RefusedRecord {
    /// The referrer's digest.
    #[schemars(length(max = 160))]
    pub referrer: String,
    #[schemars(length(max = 1024))]
    pub reason: String,
}
