//! What a record says: the in-toto Statement about the model artifact for
//! one phase change of an approval, built from the approval's status alone
//! (pure), so the same phase change always yields the same statement.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::envelope::Signer;
use crate::api::approval::PHASE_SUBJECT;
use crate::api::condition::{Condition, UNKNOWN};
use crate::api::record::{ApprovalRecordSpec, RecordedApproval, RecordedModel};
use crate::api::{
    approval::{HistoryEntry, ModelApproval, ModelApprovalSpec, ModelApprovalStatus},
    gates::Gate,
    record::ApprovalRecord,
};

/// The in-toto Statement type this project writes.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// What the predicate is: one phase change of a ModelApproval.
pub const PREDICATE_TYPE: &str = "https://modelgate.io/ApprovalRecord/v1";

/// An in-toto Statement (v1).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Statement {
    #[serde(rename = "_type")]
    pub type_: String,
    pub subject: Vec<Subject>,
    pub predicate_type: String,
    pub predicate: Predicate,
}

/// The artifact: the model's name and its digest by algorithm.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Subject {
    pub name: String,
    pub digest: std::collections::BTreeMap<String, String>,
}

/// The approval at the moment of its phase change.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Predicate {
    pub approval: ApprovalIdentity,
    pub spec: ModelApprovalSpec,
    /// The rules the approval was decided by; none until policies exist.
    #[serde(default)]
    pub policy: Option<Value>,
    pub phase: String,
    pub time: Time,
    /// The seq of the phase change in the history.
    pub seq: i64,
    /// The seq of the approval's previous record, if it had one.
    #[serde(default)]
    pub previous_record: Option<i64>,
    /// Each gate as it stood then, in the shape of the approval's own gate
    /// conditions (type, status, reviewer, reason, message, time).
    pub gates: Vec<Condition>,
    /// The history up to and including the phase change, as stored (each
    /// entry with its seq and hash).
    pub history: Vec<Value>,
    #[serde(default)]
    pub history_base: Option<String>,
    pub history_head: String,
    /// For a phase change into or out of BreakGlass: the break-glass, who
    /// asked, who approved, why, the gates skipped and its window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub break_glass: Option<crate::api::breakglass::ReleasedBy>,
    /// For a phase change into Approved: when the approval lapses
    /// (approvedAt plus validFor), so a cluster that imports it lapses then
    /// too; none for one that does not lapse.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Time>,
}

/// Which approval.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ApprovalIdentity {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

const BREAK_GLASS: &str = crate::api::approval::ApprovalPhase::BreakGlass.as_str();
const APPROVED: &str = crate::api::approval::ApprovalPhase::Approved.as_str();

/// The seqs of the phase changes in `history`, oldest first.
pub fn phase_changes(history: &[HistoryEntry]) -> impl Iterator<Item = i64> + '_ {
    history
        .iter()
        .filter(|e| e.subject == PHASE_SUBJECT)
        .filter_map(|e| e.seq)
}

/// The record's object name: the approval's name, the start of its uid and
/// the seq, so a re-created approval of the same name never collides and a
/// second try of the same record is refused as already there.
pub fn record_name(approval: &str, uid: &str, seq: i64) -> String {
    let uid: String = uid
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(8)
        .collect();
    let cut: String = approval.chars().take(253 - 30).collect();
    let cut = cut.trim_end_matches(['-', '.']);
    format!("{cut}-{uid}-{seq}")
}

/// The statement for the phase change at `seq` in `status` (the operator's
/// fields as just written), or None when the history has no such phase
/// change (or the approval lacks its identity).
pub fn statement(
    approval: &ModelApproval,
    status: &ModelApprovalStatus,
    seq: i64,
) -> Option<Statement> {
    let at = status.history.iter().position(|e| e.seq == Some(seq))?;
    let change = &status.history[at];
    if change.subject != PHASE_SUBJECT {
        return None;
    }
    let kept = &status.history[..=at];
    let history = kept
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<Vec<_>, _>>()
        .ok()?;
    let model = &approval.spec.model;
    let (algorithm, hex) = model.digest.split_once(':')?;
    Some(Statement {
        type_: STATEMENT_TYPE.into(),
        subject: vec![Subject {
            name: model.name.clone(),
            digest: [(algorithm.to_string(), hex.to_string())].into(),
        }],
        predicate_type: PREDICATE_TYPE.into(),
        predicate: Predicate {
            approval: ApprovalIdentity {
                namespace: approval.metadata.namespace.clone()?,
                name: approval.metadata.name.clone()?,
                uid: approval.metadata.uid.clone()?,
            },
            spec: approval.spec.clone(),
            policy: None,
            phase: change.to.clone(),
            time: change.time.clone(),
            seq,
            previous_record: phase_changes(&kept[..at]).last(),
            gates: gates_at(approval, kept),
            history,
            history_base: status.history_base.clone(),
            history_head: change.hash.clone()?,
            break_glass: status
                .break_glass
                .as_deref()
                .cloned()
                .filter(|_| change.to == BREAK_GLASS || change.from == BREAK_GLASS),
            expires_at: status.expires_at.clone().filter(|_| change.to == APPROVED),
        },
    })
}

/// Each gate as the history up to the phase change last recorded it; a gate
/// whose entries were all dropped is taken from the reviewers' current
/// conditions.
fn gates_at(approval: &ModelApproval, kept: &[HistoryEntry]) -> Vec<Condition> {
    Gate::ALL
        .into_iter()
        .map(|gate| {
            let name = gate.condition_type();
            match kept.iter().rev().find(|e| e.subject == name) {
                Some(e) => Condition {
                    type_: name.into(),
                    status: e.to.clone(),
                    reviewer: e.reviewer.clone(),
                    reason: e.reason.clone(),
                    message: e.message.clone(),
                    last_transition_time: Some(e.time.clone()),
                    observed_generation: None,
                },
                None => crate::api::condition::find(approval.conditions(), name)
                    .cloned()
                    .unwrap_or_else(|| Condition {
                        type_: name.into(),
                        status: UNKNOWN.into(),
                        ..Condition::default()
                    }),
            }
        })
        .collect()
}

/// The signed ApprovalRecord for `statement`.
pub fn record(statement: &Statement, signer: &Signer) -> Result<ApprovalRecord, serde_json::Error> {
    let payload = serde_json::to_vec(statement)?;
    let p = &statement.predicate;
    Ok(ApprovalRecord {
        metadata: ObjectMeta {
            name: Some(record_name(&p.approval.name, &p.approval.uid, p.seq)),
            namespace: Some(p.approval.namespace.clone()),
            labels: Some(
                [
                    (
                        "app.kubernetes.io/managed-by".to_string(),
                        "modelgate".to_string(),
                    ),
                    (
                        "modelgate.io/approval".to_string(),
                        label_value(&p.approval.name),
                    ),
                ]
                .into(),
            ),
            ..ObjectMeta::default()
        },
        spec: ApprovalRecordSpec {
            approval: RecordedApproval {
                name: p.approval.name.clone(),
                uid: p.approval.uid.clone(),
            },
            model: RecordedModel {
                name: p.spec.model.name.clone(),
                version: p.spec.model.version.clone(),
                digest: p.spec.model.digest.clone(),
            },
            phase: p.phase.clone(),
            seq: p.seq,
            time: p.time.clone(),
            key_id: signer.id().to_string(),
            envelope: signer.seal(&payload),
        },
    })
}

/// A label value (at most 63 characters) naming an approval; longer names
/// are found through spec.approval.name instead.
fn label_value(name: &str) -> String {
    let cut: String = name.chars().take(63).collect();
    cut.trim_end_matches(['-', '.']).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_names_stay_valid_and_distinct() {
        let long = "a".repeat(253);
        let name = record_name(&long, "0f3c9a1e-7b2d-4c5e-9f00-123456789abc", 12);
        assert!(name.len() <= 253, "{}", name.len());
        assert!(name.ends_with("-0f3c9a1e-12"));
        assert_ne!(
            record_name("fd", "aaaaaaaa-1", 3),
            record_name("fd", "bbbbbbbb-1", 3),
            "a re-created approval's records have names of their own"
        );
        assert_eq!(record_name("fd.", "ab", 1), "fd-ab-1");
    }
}
