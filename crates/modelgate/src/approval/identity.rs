//! Which approval a status was decided for.
//!
//! The operator's status write is a server-side apply by name: the API
//! server takes no uid precondition on it. A reconcile that read an
//! approval from the cache just before it was deleted and re-created under
//! the same name would write its decision (Approved, say) onto the new
//! one, whose model nobody reviewed. So every status the operator writes
//! names the uid it was decided for (`status.observedUid`): admission
//! refuses the operator's write when that is not the object's own uid, the
//! deployment controller never releases a status decided for another
//! approval, and a status found decided for another approval (written
//! where admission is not installed) is decided afresh from what people
//! wrote on this one.

use crate::api::approval::{ModelApproval, ModelApprovalStatus};
use crate::api::gates::is_operator_condition;

use super::decide::Decision;

/// `approval` with its status as the operator may decide from: as it is
/// when it was decided for this approval (or before statuses named one);
/// else only what people wrote on this one. Without its pinned rules it is
/// pinned afresh from its namespace's policy.
pub fn owned(mut approval: ModelApproval) -> ModelApproval {
    let uid = approval.metadata.uid.clone().unwrap_or_default();
    approval.status = own(approval.status.take(), &uid);
    approval
}

/// `status` when it was decided for the approval `uid` (or before statuses
/// named one); else only what people wrote on it: their conditions,
/// reviews and measurements. The gate conditions the other approval's
/// rules gave the operator (a quorum, a rule, a mirrored record) were the
/// operator's write for that approval, not anyone's decision on this one.
pub fn own(status: Option<ModelApprovalStatus>, uid: &str) -> Option<ModelApprovalStatus> {
    let status = status?;
    if status
        .observed_uid
        .as_deref()
        .is_none_or(|decided| decided == uid)
    {
        return Some(status);
    }
    tracing::warn!(
        decided_for = status.observed_uid.as_deref(),
        uid,
        "status decided for another approval of this name; deciding afresh"
    );
    let decided = crate::policy::pin::operator_decided(status.policy.as_deref());
    Some(ModelApprovalStatus {
        conditions: status
            .conditions
            .into_iter()
            .filter(|c| !is_operator_condition(&c.type_) && !decided.contains(&c.type_.as_str()))
            .collect(),
        reviews: status.reviews,
        measurements: status.measurements,
        ..ModelApprovalStatus::default()
    })
}

/// Names `uid` in the decision's status, so that every write of it names
/// the approval it was decided for, which is what admission checks. A
/// status written before statuses named a uid is not written again for
/// that alone (an upgrade would write every approval once): its next
/// change names it.
pub fn stamp(decision: &mut Decision, uid: &str) {
    decision.status.observed_uid = Some(uid.to_string());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(json: serde_json::Value) -> ModelApprovalStatus {
        serde_json::from_value(json).unwrap_or_else(|e| panic!("fixture: {e}"))
    }

    /// What the operator wrote for approval `old` (its phase, history,
    /// pinned rules and the quorum gate those rules gave it) is dropped;
    /// a person's gate and reviews on this one stay.
    #[test]
    fn a_status_decided_for_another_approval_keeps_only_what_people_wrote() {
        let foreign = status(serde_json::json!({
            "phase": "Approved", "observedUid": "old", "approvedAt": "2026-01-01T00:00:00Z",
            "history": [{"subject": "Approved", "from": "Pending", "to": "Approved",
                         "time": "2026-01-01T00:00:00Z"}],
            "policy": {"name": "default", "gates": [
                {"gate": "TechnicalReview", "reviewers": 2},
            ]},
            "conditions": [
                {"type": "Approved", "status": "True"},
                {"type": "TechnicalReview", "status": "True", "reviewer": "modelgate"},
                {"type": "SecurityReview", "status": "False", "reviewer": "sam"},
            ],
            "reviews": [{"gate": "TechnicalReview", "reviewer": "ana", "decision": "Approve"}],
        }));
        let own = own(Some(foreign), "new").unwrap_or_default();
        assert_eq!(own.phase, None);
        assert_eq!(own.approved_at, None);
        assert!(own.history.is_empty());
        assert_eq!(own.observed_uid, None);
        assert!(own.policy.is_none(), "pinned afresh");
        let kept: Vec<&str> = own.conditions.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(kept, ["SecurityReview"]);
        assert_eq!(own.reviews.len(), 1);
    }

    #[test]
    fn a_status_of_this_approval_or_of_none_named_is_kept() {
        let mine = status(serde_json::json!({"phase": "Approved", "observedUid": "u"}));
        assert_eq!(own(Some(mine.clone()), "u"), Some(mine));
        let unnamed = status(serde_json::json!({"phase": "Approved"}));
        assert_eq!(own(Some(unnamed.clone()), "u"), Some(unnamed));
    }
}
