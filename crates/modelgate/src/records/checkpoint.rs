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

use std::collections::HashMap;

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

/// The operator's checkpoints, one per namespace, read from the cluster on
/// first use and written whenever an approval's newest record moves on.
///
/// Writes are committed in groups: the heads that arrive while a write is
/// in flight wait for it, and the next write takes them all. A burst of
/// records (a cold start approving a thousand approvals) then costs a few
/// checkpoint writes instead of one each, every one of them the whole list
/// of heads signed anew. Each caller still returns only once a checkpoint
/// the cluster holds names its head.
#[derive(Default)]
pub struct Checkpoints {
    /// What the cluster holds, per namespace; held across the write, so two
    /// reconciles never sign over each other. An entry is dropped when its
    /// write fails (what the cluster holds is then not known).
    known: tokio::sync::Mutex<HashMap<String, Checkpoint>>,
    /// Heads waiting for the next write, per namespace.
    waiting: std::sync::Mutex<HashMap<String, Vec<Head>>>,
}

impl Checkpoints {
    /// Moves the checkpoint of `namespace` on to `head` (and to the heads
    /// waiting beside it) and writes it when that changed it.
    pub async fn advance(
        &self,
        client: &Client,
        signer: &Signer,
        namespace: &str,
        head: Head,
    ) -> Result<()> {
        self.wait(namespace, head.clone());
        let mut known = self.known.lock().await;
        // A rebuilt checkpoint is written even when `head` is in it already.
        let mut changed = false;
        if !known.contains_key(namespace) {
            let (loaded, stored) = load(client, signer, namespace).await?;
            changed = !stored;
            known.insert(namespace.to_string(), loaded);
        }
        let Some(checkpoint) = known.get_mut(namespace) else {
            return Ok(());
        };
        // Our own head again: a failed write of an earlier group took it
        // from the waiting list without the cluster holding it.
        for waiting in self.take_waiting(namespace).into_iter().chain([head]) {
            changed |= checkpoint.advance(waiting);
        }
        if !changed {
            // The checkpoint the cluster holds names it already.
            return Ok(());
        }
        checkpoint.time = Time(jiff::Timestamp::now());
        let written = write(client, signer, checkpoint).await;
        if written.is_err() {
            // Read again next time; the heads of this group are each
            // advanced again by their own callers.
            known.remove(namespace);
        }
        written
    }

    fn wait(&self, namespace: &str, head: Head) {
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.entry(namespace.to_string()).or_default().push(head);
        }
    }

    fn take_waiting(&self, namespace: &str) -> Vec<Head> {
        self.waiting
            .lock()
            .ok()
            .and_then(|mut w| w.remove(namespace))
            .unwrap_or_default()
    }
}

/// The namespace's checkpoint as the cluster holds it when it verifies with
/// the operator's key (and true); else (none yet, an upgrade, a new key, or
/// a deleted checkpoint) one rebuilt from the records there that do (and
/// false).
async fn load(client: &Client, signer: &Signer, namespace: &str) -> Result<(Checkpoint, bool)> {
    let keys = [signer.verifying_key()];
    let api: Api<RecordCheckpoint> = Api::namespaced(client.clone(), namespace);
    if let Some(stored) = api.get_opt(CHECKPOINT_NAME).await? {
        match Checkpoint::open(&stored.spec.envelope, &keys) {
            Ok(c) if c.namespace == namespace => return Ok((c, true)),
            Ok(_) => {
                warn!(%namespace, "the checkpoint names another namespace; rebuilding it from the records")
            }
            Err(e) => {
                warn!(%namespace, error = %e, "the checkpoint does not verify with the signing key; rebuilding it from the records")
            }
        }
    }
    let records: Api<ApprovalRecord> = Api::namespaced(client.clone(), namespace);
    let mut checkpoint = Checkpoint::new(namespace);
    for record in records.list(&ListParams::default()).await?.items {
        let statement = open(&record.spec.envelope, &keys)
            .ok()
            .and_then(|payload| serde_json::from_slice::<Statement>(&payload).ok());
        if let Some(s) = statement.filter(|s| s.predicate.approval.namespace == namespace) {
            checkpoint.advance(Head::of(&s));
        }
    }
    info!(%namespace, approvals = checkpoint.approvals.len(), "checkpoint rebuilt from the records");
    Ok((checkpoint, false))
}

async fn write(client: &Client, signer: &Signer, checkpoint: &Checkpoint) -> Result<()> {
    let object = checkpoint.seal(signer)?;
    let mut value = serde_json::to_value(&object)?;
    value["apiVersion"] = "modelgate.io/v1alpha1".into();
    value["kind"] = "RecordCheckpoint".into();
    let api: Api<RecordCheckpoint> = Api::namespaced(client.clone(), &checkpoint.namespace);
    api.patch(
        CHECKPOINT_NAME,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&value),
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use http::{Method, StatusCode};
    use serde_json::json;

    use super::*;
    use crate::fixtures::{self, ApiServer};

    const NS: &str = "risk";
    const PATH: &str =
        "/apis/modelgate.io/v1alpha1/namespaces/risk/recordcheckpoints/approval-records";
    const RECORDS: &str = "/apis/modelgate.io/v1alpha1/namespaces/risk/approvalrecords";

    fn head(n: usize) -> Head {
        Head {
            name: format!("a{n}"),
            uid: format!("uid-{n}"),
            seq: 1,
            head: format!("sha256:{n}"),
        }
    }

    /// Three advances, the first one's write held until the other two wait.
    async fn three_advances(
        server: &mut ApiServer,
        client: Client,
    ) -> (
        Arc<Checkpoints>,
        Vec<tokio::task::JoinHandle<Result<()>>>,
        fixtures::Received,
    ) {
        let checkpoints = Arc::new(Checkpoints::default());
        let signer = Arc::new(Signer::generate().expect("key"));
        let start = |n: usize| {
            let (c, s, client) = (checkpoints.clone(), signer.clone(), client.clone());
            tokio::spawn(async move { c.advance(&client, &s, NS, head(n)).await })
        };
        let mut calls = vec![start(1)];
        server.expect(Method::GET, PATH).await.not_found();
        server.expect(Method::GET, RECORDS).await.ok(
            json!({"apiVersion": "modelgate.io/v1alpha1", "kind": "ApprovalRecordList", "metadata": {}, "items": []}),
        );
        let first = server.expect(Method::PATCH, PATH).await;
        calls.extend([start(2), start(3)]);
        while checkpoints
            .waiting
            .lock()
            .map_or(0, |w| w.get(NS).map_or(0, Vec::len))
            < 2
        {
            tokio::task::yield_now().await;
        }
        (checkpoints, calls, first)
    }

    #[tokio::test]
    async fn heads_that_arrive_during_a_write_share_the_next_one() {
        let (ctx, mut server) = fixtures::context();
        let (checkpoints, calls, first) = three_advances(&mut server, ctx.client.clone()).await;
        assert_eq!(first.body["spec"]["approvals"], 1);
        let body = first.body.clone();
        first.ok(body);
        let second = server.expect(Method::PATCH, PATH).await;
        assert_eq!(second.body["spec"]["approvals"], 3);
        let body = second.body.clone();
        second.ok(body);
        for call in calls {
            assert!(call.await.expect("joined").is_ok());
        }
        drop((ctx, checkpoints));
        // The third caller found its head written by the second: no write.
        server.nothing_more().await;
    }

    #[tokio::test]
    async fn a_failed_group_write_fails_its_own_caller_and_is_rebuilt_for_the_rest() {
        let (ctx, mut server) = fixtures::context();
        let (checkpoints, mut calls, first) = three_advances(&mut server, ctx.client.clone()).await;
        first.answer(StatusCode::INTERNAL_SERVER_ERROR, json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "code": 500, "message": "etcd away"}));
        assert!(calls.remove(0).await.expect("joined").is_err());
        // Read again: the cluster's checkpoint is not known after a failure.
        server.expect(Method::GET, PATH).await.not_found();
        server.expect(Method::GET, RECORDS).await.ok(
            json!({"apiVersion": "modelgate.io/v1alpha1", "kind": "ApprovalRecordList", "metadata": {}, "items": []}),
        );
        let second = server.expect(Method::PATCH, PATH).await;
        assert_eq!(
            second.body["spec"]["approvals"], 2,
            "the two heads that waited"
        );
        let body = second.body.clone();
        second.ok(body);
        for call in calls {
            assert!(call.await.expect("joined").is_ok());
        }
        drop((ctx, checkpoints));
        server.nothing_more().await;
    }
}
