//! What to do with a ModelDeployment's Deployment, as a pure function of
//! the objects the controller read: release the approved model, hold,
//! freeze, scale to zero, or roll back. No client calls.

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::Deployment;

use super::desired::served_model;
use crate::api::breakglass::ReleasedBy;
use crate::api::condition::Condition;
use crate::api::{
    approval::{ApprovalPhase, ModelApproval},
    deployment::{ModelDeployment, OnRevoke, RollbackFallback, RunningModel, ServedModel},
};

/// The approval a ModelDeployment names, as found.
#[derive(Clone, Copy, Debug)]
pub enum Linked<'a> {
    Found(&'a ModelApproval),
    NotFound,
    /// approvalRef names another namespace; the value is that namespace.
    OtherNamespace(&'a str),
}

/// Everything the decision depends on.
#[derive(Clone, Copy, Debug)]
pub struct Input<'a> {
    pub md: &'a ModelDeployment,
    pub linked: Linked<'a>,
    /// The approval named by the live Deployment's pod template, when it
    /// serves one other than `linked` (None when not found or the same).
    pub served_approval: Option<&'a ModelApproval>,
    /// The managed Deployment as it is now.
    pub deployment: Option<&'a Deployment>,
    /// The approvals named in status.servedHistory and the one the
    /// Deployment serves, as found (for a Rollback, and the history's uids).
    pub served_before: &'a [ModelApproval],
    /// What the pods run now, from their ReplicaSets.
    pub running: &'a [RunningModel],
    pub now: Timestamp,
    /// Whether the pods are sealed (see `artifact::seal`); None reports
    /// nothing about it.
    pub seal: Option<&'a Condition>,
}

/// What to do with the Deployment.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Plan<'a> {
    /// Apply the Deployment for the linked, approved approval.
    Release(&'a ModelApproval),
    /// Leave the Deployment as it is (or absent).
    Hold,
    /// The serving approval was withdrawn and onRevoke (or the rollback's
    /// fallback) is Hold: keep the pods, at the replicas they had, and let
    /// nothing grow or roll out.
    Freeze,
    /// The serving approval was revoked and onRevoke is ScaleToZero (or
    /// Rollback found nothing and falls back to it).
    ScaleToZero,
    /// The serving approval was revoked: serve this earlier approval.
    Rollback(&'a ModelApproval),
}

/// Approved and not being deleted: deleting an approval revokes it. A
/// gate a reviewer failed vetoes it even before the phase says Rejected:
/// the operator's status write may lag, or fail (an approval padded to
/// the size etcd takes), and what is refused must stop serving anyway.
pub fn is_approved(a: &ModelApproval) -> bool {
    a.metadata.deletion_timestamp.is_none()
        && a.status.as_ref().and_then(|s| s.phase) == Some(ApprovalPhase::Approved)
        && !gate_failed(a)
        && decided_for_itself(a)
}

/// Whether `a`'s status was decided for `a` itself, not for an approval
/// deleted and re-created under its name (see `approval::identity`).
/// Statuses written before they named a uid count as its own.
fn decided_for_itself(a: &ModelApproval) -> bool {
    let decided = a.status.as_ref().and_then(|s| s.observed_uid.as_deref());
    decided.is_none_or(|uid| a.metadata.uid.as_deref() == Some(uid))
}

/// Whether a gate condition of `a` is False.
fn gate_failed(a: &ModelApproval) -> bool {
    a.conditions().iter().any(|c| {
        crate::api::gates::Gate::from_condition_type(&c.type_).is_some()
            && c.status == crate::api::condition::FALSE
    })
}

/// Whether `a` lets its model serve at `now`: Approved and not past its
/// expiry, or released by a break-glass whose window is still open (this
/// side checks the expiry and the window too, so a late approval
/// controller never stretches either); and not being deleted.
pub fn releases(a: &ModelApproval, now: Timestamp) -> bool {
    let lapsed = a
        .status
        .as_ref()
        .and_then(|s| s.expires_at.as_ref())
        .is_some_and(|t| t.0 <= now);
    (is_approved(a) && !lapsed) || break_glass(a, now).is_some()
}

/// The break-glass that releases `a` at `now`, if one does.
pub fn break_glass(a: &ModelApproval, now: Timestamp) -> Option<&ReleasedBy> {
    let status = a.status.as_ref()?;
    (a.metadata.deletion_timestamp.is_none()
        && status.phase == Some(ApprovalPhase::BreakGlass)
        && !gate_failed(a)
        && decided_for_itself(a))
    .then_some(status.break_glass.as_deref())
    .flatten()
    .filter(|r| r.until.0 > now)
}

/// When the first break-glass window ends of the approvals the
/// ModelDeployment names or still serves: its reconcile must come back
/// then, whether it rolls that approval out or only keeps serving it while
/// it names another (a late approval controller must not stretch either).
pub fn window_end(input: &Input<'_>) -> Option<Timestamp> {
    let linked = match input.linked {
        Linked::Found(a) => Some(a),
        _ => None,
    };
    linked
        .into_iter()
        .chain(input.served_approval)
        .filter_map(|a| break_glass(a, input.now))
        .map(|r| r.until.0)
        .min()
}

/// The model the live Deployment's template carries.
pub fn served(deployment: Option<&Deployment>) -> Option<ServedModel> {
    served_model(&deployment?.spec.template)
}

/// How the approval of what is serving now was withdrawn.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revoked {
    pub served: ServedModel,
    /// The approval is gone or being deleted (rather than no longer Approved).
    pub deleted: bool,
}

/// Whether the approval of what is serving now has been withdrawn.
pub fn serving_revoked(input: &Input<'_>) -> Option<Revoked> {
    let served = served(input.deployment)?;
    let approval = match input.linked {
        Linked::Found(a) if a.metadata.name.as_deref() == Some(served.approval.as_str()) => Some(a),
        _ => input.served_approval,
    };
    // An approval that no longer exists approves nothing.
    match approval {
        Some(a) if releases(a, input.now) => None,
        _ => Some(Revoked {
            served,
            deleted: approval.is_none_or(|a| a.metadata.deletion_timestamp.is_some()),
        }),
    }
}

/// Decides what to do with the Deployment.
pub fn plan<'a>(input: &Input<'a>) -> Plan<'a> {
    match input.linked {
        Linked::Found(a) if releases(a, input.now) => Plan::Release(a),
        // A missing, unapproved or cross-namespace ref releases nothing, and
        // hides no revocation: what serves still answers to its own approval
        // (re-pointing approvalRef elsewhere must not keep a rejected model
        // running, nor leave its Deployment without a hold).
        _ => match serving_revoked(input) {
            None => Plan::Hold,
            Some(r) => match input.md.spec.on_revoke {
                OnRevoke::Hold => Plan::Freeze,
                OnRevoke::ScaleToZero => Plan::ScaleToZero,
                OnRevoke::Rollback => match rollback_target(input, &r.served.approval) {
                    Some(a) => Plan::Rollback(a),
                    None => match input.md.spec.rollback_fallback.unwrap_or_default() {
                        RollbackFallback::Hold => Plan::Freeze,
                        RollbackFallback::ScaleToZero => Plan::ScaleToZero,
                    },
                },
            },
        },
    }
}

/// The approval a Rollback serves: of status.servedHistory (newest first),
/// the first entry other than the revoked approval whose approval still
/// exists with the same uid and is Approved and unexpired (never one a
/// break-glass releases: a rollback goes to a reviewed version).
pub fn rollback_target<'a>(input: &Input<'a>, revoked: &str) -> Option<&'a ModelApproval> {
    let history = input
        .md
        .status
        .as_ref()
        .map(|s| s.served_history.as_slice())
        .unwrap_or_default();
    history
        .iter()
        .filter(|e| e.approval != revoked)
        .find_map(|e| {
            input.served_before.iter().find(|a| {
                e.is(a)
                    && is_approved(a)
                    && a.status
                        .as_ref()
                        .and_then(|s| s.expires_at.as_ref())
                        .is_none_or(|t| t.0 > input.now)
            })
        })
}

/// Why the Deployment could not be applied: a reason and a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApplyFailure {
    /// InvalidTemplate or DeploymentConflict.
    pub reason: &'static str,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn approved(uid: &str, decided_for: Option<&str>) -> ModelApproval {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "modelgate.io/v1alpha1", "kind": "ModelApproval",
            "metadata": {"name": "v1", "namespace": "risk", "uid": uid},
            "spec": {"model": {"name": "m", "version": "1", "uri": "s3://m",
                               "digest": format!("sha256:{}", "0".repeat(64))}},
            "status": {"phase": "Approved", "observedUid": decided_for},
        }))
        .unwrap_or_else(|e| panic!("fixture: {e}"))
    }

    /// An operator's decision written onto an approval re-created under
    /// the same name (where admission did not refuse it) releases nothing.
    #[test]
    fn a_status_decided_for_another_approval_releases_nothing() {
        let now = Timestamp::UNIX_EPOCH;
        assert!(releases(&approved("b", Some("b")), now));
        assert!(
            releases(&approved("b", None), now),
            "written before statuses named a uid"
        );
        assert!(!releases(&approved("b", Some("a")), now));
    }
}
