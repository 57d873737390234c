//! The signed checkpoint of a namespace's records: for every approval that
//! has records there (deleted approvals included), the seq and history head
//! of its newest record. Each record names the one before it, so a removed
//! record in the middle shows; the checkpoint is what shows that the newest
//! ones were removed.
//!
//! It is kept as the RecordCheckpoint `approval-records` of the namespace,
//! written only by the operator (an admission policy refuses everyone else a
//! create or change, and deletes to all but the record deleters), and signed
//! with the records' key under a payload type of its own, so a checkpoint is
//! never taken for a record or the other way round.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::VerifyingKey;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::Client;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::envelope::{Signer, open};
use super::statement::Statement;
use crate::api::record::{ApprovalRecord, Envelope, RecordCheckpoint};
use crate::api::record::{CHECKPOINT_NAME, RecordCheckpointSpec};
use crate::error::Result;
use crate::vocabulary::FIELD_MANAGER;

pub mod flush;

/// The DSSE payload type of a checkpoint.
pub const PAYLOAD_TYPE: &str = "application/vnd.modelgate.checkpoint+json";
/// What the payload is.
pub const CHECKPOINT_TYPE: &str = "https://modelgate.io/RecordCheckpoint/v1";

/// The checkpoint of one namespace.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Checkpoint {
    #[serde(rename = "_type")]
    pub type_: String,
    pub namespace: String,
    /// When it was signed.
    pub time: Time,
    /// One head per approval, by name then uid.
    pub approvals: Vec<Head>,
}

/// The newest record of one approval.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Head {
    pub name: String,
    pub uid: String,
    /// The seq of its newest record.
    pub seq: i64,
    /// That record's history head (the hash of its phase change).
    pub head: String,
}

impl Head {
    /// The head a record's statement sets.
    pub fn of(statement: &Statement) -> Self {
        let p = &statement.predicate;
        Head {
            name: p.approval.name.clone(),
            uid: p.approval.uid.clone(),
            seq: p.seq,
            head: p.history_head.clone(),
        }
    }
}

/// Why a checkpoint could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("{0}")]
    Signature(#[from] super::envelope::SignatureError),
    #[error("payload type {0:?} is not {PAYLOAD_TYPE}")]
    PayloadType(String),
    #[error("the payload is not a modelgate checkpoint: {0}")]
    Payload(String),
}

impl Checkpoint {
    pub fn new(namespace: &str) -> Self {
        Checkpoint {
            type_: CHECKPOINT_TYPE.into(),
            namespace: namespace.into(),
            time: Time(jiff::Timestamp::UNIX_EPOCH),
            approvals: Vec::new(),
        }
    }

    /// The head it names for the approval `uid`.
    pub fn head(&self, uid: &str) -> Option<&Head> {
        self.approvals.iter().find(|h| h.uid == uid)
    }

    /// Takes `head` when it is newer than the one named; whether it was.
    pub fn advance(&mut self, head: Head) -> bool {
        match self.approvals.iter_mut().find(|h| h.uid == head.uid) {
            Some(known) if known.seq >= head.seq => false,
            Some(known) => {
                *known = head;
                true
            }
            None => {
                self.approvals.push(head);
                self.approvals
                    .sort_by(|a, b| (&a.name, &a.uid).cmp(&(&b.name, &b.uid)));
                true
            }
        }
    }

    /// The RecordCheckpoint object holding this checkpoint signed by `signer`.
    pub fn seal(
        &self,
        signer: &Signer,
    ) -> std::result::Result<RecordCheckpoint, serde_json::Error> {
        let payload = serde_json::to_vec(self)?;
        Ok(RecordCheckpoint {
            metadata: ObjectMeta {
                name: Some(CHECKPOINT_NAME.into()),
                namespace: Some(self.namespace.clone()),
                labels: Some(
                    [(
                        "app.kubernetes.io/managed-by".to_string(),
                        "modelgate".to_string(),
                    )]
                    .into(),
                ),
                ..ObjectMeta::default()
            },
            spec: RecordCheckpointSpec {
                time: self.time.clone(),
                approvals: self.approvals.len() as i64,
                key_id: signer.id().to_string(),
                envelope: signer.seal_as(PAYLOAD_TYPE, &payload),
            },
        })
    }

    /// The checkpoint in `envelope` once its signature verifies with one of
    /// `keys`.
    pub fn open(
        envelope: &Envelope,
        keys: &[VerifyingKey],
    ) -> std::result::Result<Self, CheckpointError> {
        if envelope.payload_type != PAYLOAD_TYPE {
            return Err(CheckpointError::PayloadType(envelope.payload_type.clone()));
        }
        let payload = open(envelope, keys)?;
        Self::read(&payload)
    }

    /// The checkpoint in `envelope` without checking its signature (to say
    /// what a checkpoint that fails it claims).
    pub fn read_unverified(envelope: &Envelope) -> Option<Self> {
        let payload = STANDARD.decode(&envelope.payload).ok()?;
        Self::read(&payload).ok()
    }

    fn read(payload: &[u8]) -> std::result::Result<Self, CheckpointError> {
        let checkpoint: Checkpoint =
            serde_json::from_slice(payload).map_err(|e| CheckpointError::Payload(e.to_string()))?;
        if checkpoint.type_ != CHECKPOINT_TYPE {
            return Err(CheckpointError::Payload(format!(
                "type {} is not {CHECKPOINT_TYPE}",
                checkpoint.type_
            )));
        }
        Ok(checkpoint)
    }
}

/// A namespace's checkpoint as read at a writer's first use of it.
pub struct Loaded {
    pub checkpoint: Checkpoint,
    /// The resourceVersion it was read at (None when there is none stored).
    pub version: Option<String>,
    /// Whether it differs from what is stored (and must be written).
    pub moved: bool,
}

/// The namespace's checkpoint as the cluster holds it when it verifies with
/// the operator's key (else, for none yet, an upgrade, a new key or a
/// deleted checkpoint, a new one), moved on to every record there that
/// verifies and is newer than it names: a head noted and not written before
/// a restart, or one a replica that has since lost its lease wrote over,
/// is taken back from the records.
async fn load(client: &Client, signer: &Signer, namespace: &str) -> Result<Loaded> {
    let keys = [signer.verifying_key()];
    let api: Api<RecordCheckpoint> = Api::namespaced(client.clone(), namespace);
    let stored = api.get_opt(CHECKPOINT_NAME).await?;
    let version = stored
        .as_ref()
        .and_then(|s| s.metadata.resource_version.clone());
    let verified = stored.and_then(|stored| {
        match Checkpoint::open(&stored.spec.envelope, &keys) {
            Ok(c) if c.namespace == namespace => Some(c),
            Ok(_) => {
                warn!(%namespace, "the checkpoint names another namespace; rebuilding it from the records");
                None
            }
            Err(e) => {
                warn!(%namespace, error = %e, "the checkpoint does not verify with the signing key; rebuilding it from the records");
                None
            }
        }
    });
    let mut moved = verified.is_none();
    let mut checkpoint = verified.unwrap_or_else(|| Checkpoint::new(namespace));
    let records: Api<ApprovalRecord> = Api::namespaced(client.clone(), namespace);
    for record in records.list(&ListParams::default()).await?.items {
        let statement = open(&record.spec.envelope, &keys)
            .ok()
            .and_then(|payload| serde_json::from_slice::<Statement>(&payload).ok());
        if let Some(s) = statement.filter(|s| s.predicate.approval.namespace == namespace) {
            moved |= checkpoint.advance(Head::of(&s));
        }
    }
    if moved {
        info!(%namespace, approvals = checkpoint.approvals.len(), "checkpoint moved on to the records there");
    }
    Ok(Loaded {
        checkpoint,
        version,
        moved,
    })
}

/// Applies `checkpoint`, on the condition that the stored one is still at
/// `version` (None: whatever is stored); the new resourceVersion.
async fn write(
    client: &Client,
    signer: &Signer,
    checkpoint: &Checkpoint,
    version: Option<&str>,
) -> Result<Option<String>> {
    let object = checkpoint.seal(signer)?;
    let mut value = serde_json::to_value(&object)?;
    value["apiVersion"] = "modelgate.io/v1alpha1".into();
    value["kind"] = "RecordCheckpoint".into();
    if let Some(version) = version {
        // A writer that read an older checkpoint (a replica that lost its
        // lease) is refused rather than write it over.
        value["metadata"]["resourceVersion"] = version.into();
    }
    let api: Api<RecordCheckpoint> = Api::namespaced(client.clone(), &checkpoint.namespace);
    let written = api
        .patch(
            CHECKPOINT_NAME,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&value),
        )
        .await?;
    Ok(written.metadata.resource_version)
}
