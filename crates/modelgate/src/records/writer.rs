//! The operator's side of the records: after a status write, one signed
//! ApprovalRecord per phase change not yet recorded.
//!
//! A record is created after the status that holds its phase change, so it
//! only ever states what the status already says. Its name follows from the
//! approval and the seq, so a second try (after a crash, or on another
//! replica) is refused as already there and nothing is recorded twice. What
//! has been recorded is remembered per approval uid; after a restart the
//! newest phase change of each approval is tried once more.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};
use tracing::{info, warn};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use super::checkpoint::Head;
use super::checkpoint::flush::Checkpoints;
use super::envelope::Signer;
use super::statement::{phase_changes, record, statement};
use crate::api::{
    approval::{ModelApproval, ModelApprovalStatus},
    record::ApprovalRecord,
};
use crate::error::{Error, Result};

/// How long a stopping operator waits for its checkpoint writes.
const DRAIN_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);

/// Writes records with one key and remembers what it wrote.
pub struct Recorder {
    signer: Arc<Signer>,
    /// Approval uid → the newest seq known to be recorded.
    recorded: Mutex<HashMap<String, i64>>,
    /// The signed checkpoint of each namespace's records.
    checkpoints: Checkpoints,
}

impl Recorder {
    pub fn new(signer: Signer) -> Self {
        Recorder {
            signer: Arc::new(signer),
            recorded: Mutex::new(HashMap::new()),
            checkpoints: Checkpoints::default(),
        }
    }

    /// The same, counting its checkpoint writes by outcome in `family`.
    pub fn counting_checkpoints(
        mut self,
        family: Family<crate::runtime::metrics::OutcomeLabels, Counter>,
    ) -> Self {
        self.checkpoints = Checkpoints::counting(family);
        self
    }

    /// Writes the checkpoint heads noted and not yet written, waiting up to
    /// [`DRAIN_WITHIN`]: when the operator stops, while it still leads.
    pub async fn drain_checkpoints(&self) {
        let left = self.checkpoints.drain(DRAIN_WITHIN).await;
        if left > 0 {
            warn!(
                heads = left,
                "stopping with record checkpoint heads unwritten; the next start takes them back from the records"
            );
        }
    }

    /// Forgets the approvals not in `live` (the cache's, read now and
    /// then): a deleted approval's entry goes with it. Forgetting is safe:
    /// for an approval it does not know, the writer tries only the newest
    /// record again, which the API server answers 409 when it exists.
    pub fn keep_only(&self, live: impl IntoIterator<Item = String>) {
        let live: std::collections::HashSet<String> = live.into_iter().collect();
        if let Ok(mut recorded) = self.recorded.lock() {
            recorded.retain(|uid, _| live.contains(uid));
        }
    }

    /// How many approvals it knows the newest record of.
    #[cfg(test)]
    fn known(&self) -> usize {
        self.recorded.lock().map(|m| m.len()).unwrap_or_default()
    }

    /// The seqs of `approval`'s phase changes that still need a record: all
    /// after the newest known one, or only the newest when none is known.
    fn due(&self, approval: &ModelApproval, status: &ModelApprovalStatus) -> Vec<i64> {
        let uid = approval.uid().unwrap_or_default();
        let known = self.recorded.lock().ok().and_then(|m| m.get(&uid).copied());
        let changes: Vec<i64> = phase_changes(&status.history).collect();
        match known {
            Some(known) => changes.into_iter().filter(|s| *s > known).collect(),
            None => changes.last().copied().into_iter().collect(),
        }
    }

    /// Creates the records `approval` is due, given `status`: the
    /// operator's fields as just written. Returns how many were created.
    pub async fn write(
        &self,
        client: &Client,
        approval: &ModelApproval,
        status: &ModelApprovalStatus,
    ) -> Result<usize> {
        let due = self.due(approval, status);
        if due.is_empty() {
            return Ok(0);
        }
        let namespace = approval
            .namespace()
            .ok_or(Error::MissingMetadata("namespace"))?;
        let api: Api<ApprovalRecord> = Api::namespaced(client.clone(), &namespace);
        let mut created = 0;
        for seq in due {
            let Some(statement) = statement(approval, status, seq) else {
                continue;
            };
            let record = record(&statement, &self.signer)?;
            match api.create(&PostParams::default(), &record).await {
                Ok(_) => {
                    created += 1;
                    info!(record = %record.name_any(), phase = %statement.predicate.phase, "recorded");
                }
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                // A namespace being deleted takes its records with it; there
                // is nothing to keep, and retrying would only fail again.
                Err(kube::Error::Api(s)) if super::terminating(&s) => {
                    self.remember(approval, seq);
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
            // The checkpoint follows (`checkpoint::flush`); after a restart
            // the newest record is tried again (answered 409) and noted again.
            self.checkpoints
                .note(client, &self.signer, &namespace, Head::of(&statement));
            self.remember(approval, seq);
        }
        Ok(created)
    }

    /// `statement` signed, as the DSSE envelope's JSON: the same bytes the
    /// record holds (Ed25519 signatures are deterministic).
    pub fn envelope(&self, statement: &super::statement::Statement) -> Result<Vec<u8>> {
        let payload = serde_json::to_vec(statement)?;
        Ok(serde_json::to_vec(&self.signer.seal(&payload))?)
    }

    /// Notes `seq` as the newest recorded of `approval`.
    fn remember(&self, approval: &ModelApproval, seq: i64) {
        if let Ok(mut m) = self.recorded.lock() {
            m.insert(approval.uid().unwrap_or_default(), seq);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deleted_approval_is_forgotten_and_the_others_kept() {
        let recorder = Recorder::new(Signer::generate().expect("key"));
        if let Ok(mut m) = recorder.recorded.lock() {
            m.insert("kept".into(), 3);
            m.insert("deleted".into(), 5);
        }
        recorder.keep_only(["kept".to_string(), "never-recorded".to_string()]);
        assert_eq!(recorder.known(), 1);
        assert_eq!(
            recorder
                .recorded
                .lock()
                .ok()
                .and_then(|m| m.get("kept").copied()),
            Some(3)
        );
    }
}
