//! What to do with a ModelDeployment's Deployment, and what its status says,
//! as pure functions of the objects the controller read. No client calls.

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::desired::served_model;
use crate::api::condition::{self, Condition, FALSE, TRUE};
use crate::api::deployment::RUNNING_LIMIT;
use crate::api::deployment::SERVED_HISTORY_LIMIT;
use crate::api::{
    ApprovalPhase, DeploymentPhase, Gate, ModelApproval, ModelDeployment, ModelDeploymentStatus,
    OnRevoke, RollbackFallback, RunningModel, ServedEntry, ServedModel,
};
use crate::vocabulary::Severity;

pub use crate::api::deployment::{APPROVAL_SATISFIED, AVAILABLE, PROGRESSING};

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
    /// The approvals named in status.servedHistory, as found (for Rollback).
    pub served_before: &'a [ModelApproval],
    /// What the pods run now, from their ReplicaSets.
    pub running: &'a [RunningModel],
    pub now: Timestamp,
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

/// Approved and not being deleted: deleting an approval revokes it.
pub fn is_approved(a: &ModelApproval) -> bool {
    a.metadata.deletion_timestamp.is_none()
        && a.status.as_ref().and_then(|s| s.phase) == Some(ApprovalPhase::Approved)
}

/// The model the live Deployment's template carries.
pub fn served(deployment: Option<&Deployment>) -> Option<ServedModel> {
    served_model(&deployment?.spec.template)
}

/// How the approval of what is serving now was withdrawn.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Revoked {
    served: ServedModel,
    /// The approval is gone or being deleted (rather than no longer Approved).
    deleted: bool,
}

/// Whether the approval of what is serving now has been withdrawn.
fn serving_revoked(input: &Input<'_>) -> Option<Revoked> {
    let served = served(input.deployment)?;
    let approval = match input.linked {
        Linked::Found(a) if a.metadata.name.as_deref() == Some(served.approval.as_str()) => Some(a),
        _ => input.served_approval,
    };
    // An approval that no longer exists approves nothing.
    match approval {
        Some(a) if is_approved(a) => None,
        _ => Some(Revoked {
            served,
            deleted: approval.is_none_or(|a| a.metadata.deletion_timestamp.is_some()),
        }),
    }
}

/// Decides what to do with the Deployment.
pub fn plan<'a>(input: &Input<'a>) -> Plan<'a> {
    match input.linked {
        Linked::Found(a) if is_approved(a) => Plan::Release(a),
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
/// exists with the same uid and is Approved and unexpired.
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

/// Whether the Deployment serves an earlier version because the linked
/// approval, which served before, was revoked (onRevoke Rollback).
fn rolled_back(input: &Input<'_>, deployment: Option<&Deployment>) -> Option<ServedModel> {
    let Linked::Found(linked) = input.linked else {
        return None;
    };
    let served = served(deployment)?;
    let history = &input.md.status.as_ref()?.served_history;
    let served_before = history.iter().any(|e| e.is(linked));
    (input.md.spec.on_revoke == OnRevoke::Rollback
        && served_before
        && Some(served.approval.as_str()) != linked.metadata.name.as_deref())
    .then_some(served)
}

/// servedHistory with what serves now at its head when it changed.
fn served_history(
    input: &Input<'_>,
    previous: &[ServedEntry],
    served: Option<&ServedModel>,
    now: &Time,
) -> Vec<ServedEntry> {
    let Some(s) = served else {
        return previous.to_vec();
    };
    if previous
        .first()
        .is_some_and(|e| e.approval == s.approval && e.digest == s.digest)
    {
        return previous.to_vec();
    }
    let linked = match input.linked {
        Linked::Found(a) => Some(a),
        _ => None,
    };
    let uid = linked
        .into_iter()
        .chain(input.served_approval)
        .chain(input.served_before)
        .find(|a| {
            a.metadata.name.as_deref() == Some(s.approval.as_str())
                && a.spec.model.digest == s.digest
        })
        .and_then(|a| a.metadata.uid.clone())
        .unwrap_or_default();
    let mut history = vec![ServedEntry {
        approval: s.approval.clone(),
        uid,
        version: s.version.clone(),
        digest: s.digest.clone(),
        since: now.clone(),
    }];
    history.extend(previous.iter().cloned());
    history.truncate(SERVED_HISTORY_LIMIT);
    history
}

/// The outcome of the status decision.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub status: ModelDeploymentStatus,
    /// A phase change to announce: (severity, reason, note).
    pub transition: Option<(Severity, String, String)>,
    pub changed: bool,
}

/// The gates of `a` that have not passed, in the usual order.
fn pending_gates(a: &ModelApproval) -> Vec<String> {
    let conditions = a.conditions();
    Gate::ALL
        .into_iter()
        .filter(|g| {
            condition::find(conditions, g.condition_type()).map(|c| c.status.as_str()) != Some(TRUE)
        })
        .map(|g| g.condition_type().to_string())
        .collect()
}

fn describe(m: &ServedModel) -> String {
    format!("{} {} (approval {})", m.name, m.version, m.approval)
}

/// Why the Deployment could not be applied: a reason and a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApplyFailure {
    /// InvalidTemplate or DeploymentConflict.
    pub reason: &'static str,
    pub message: String,
}

/// Reads the Deployment's progress: (phase, Progressing, Available).
fn progress(
    d: Option<&Deployment>,
    failure: Option<&ApplyFailure>,
    running: &[RunningModel],
) -> (DeploymentPhase, Condition, Condition) {
    if let Some(f) = failure {
        return (
            DeploymentPhase::Failed,
            Condition::new(PROGRESSING, FALSE, f.reason, f.message.clone()),
            Condition::new(
                AVAILABLE,
                FALSE,
                f.reason,
                "the Deployment could not be applied",
            ),
        );
    }
    let Some(d) = d else {
        return (
            DeploymentPhase::RollingOut,
            Condition::new(
                PROGRESSING,
                TRUE,
                "DeploymentApplied",
                "the Deployment is being created",
            ),
            Condition::new(AVAILABLE, FALSE, "RollingOut", "no pods are available yet"),
        );
    };
    let status = d.status.clone().unwrap_or_default();
    let conditions = status.conditions.as_deref().unwrap_or_default();
    let find = |t: &str| conditions.iter().find(|c| c.type_.as_deref() == Some(t));
    let deployment_progressing = find("Progressing");
    if deployment_progressing.and_then(|c| c.reason.as_deref()) == Some("ProgressDeadlineExceeded")
    {
        let message = deployment_progressing
            .and_then(|c| c.message.clone())
            .unwrap_or_default();
        return (
            DeploymentPhase::Failed,
            Condition::new(PROGRESSING, FALSE, "ProgressDeadlineExceeded", message),
            Condition::new(
                AVAILABLE,
                FALSE,
                "ProgressDeadlineExceeded",
                "the rollout did not finish in time",
            ),
        );
    }
    let (phase, progressing, available) = rollout(d, &status, find("Available"));
    match stale_pods(d, running) {
        Some(others) if phase == DeploymentPhase::Available => (
            DeploymentPhase::RollingOut,
            Condition::new(
                PROGRESSING,
                TRUE,
                "OtherModelsRunning",
                format!("pods still run {others}"),
            ),
            Condition::new(
                AVAILABLE,
                FALSE,
                "OtherModelsRunning",
                format!("pods still run {others}"),
            ),
        ),
        _ => (phase, progressing, available),
    }
}

/// The models pods run other than the one the template carries, described,
/// when there are any: the Deployment's own status counts only the pods of
/// the ReplicaSets it owns.
fn stale_pods(d: &Deployment, running: &[RunningModel]) -> Option<String> {
    let template = served(Some(d));
    let others: Vec<String> = running
        .iter()
        .filter(|r| {
            template
                .as_ref()
                .is_none_or(|t| t.approval != r.approval || t.digest != r.digest)
        })
        .map(describe_running)
        .collect();
    (!others.is_empty()).then(|| others.join(", "))
}

fn describe_running(r: &RunningModel) -> String {
    format!(
        "version {} (approval {}, {} pods)",
        r.version, r.approval, r.pods
    )
}

/// The model the pods serve: the one all running pods run; the template's
/// while several run or none does.
fn serving_now(deployment: Option<&Deployment>, running: &[RunningModel]) -> Option<ServedModel> {
    let template = served(deployment);
    match running {
        [only] => Some(only.model()),
        _ => template,
    }
}

/// Progress of a rollout that has not failed: Available once every
/// desired pod is updated and available and the old ones are gone.
fn rollout(
    d: &Deployment,
    status: &k8s_openapi::api::apps::v1::DeploymentStatus,
    deployment_available: Option<&k8s_openapi::api::apps::v1::DeploymentCondition>,
) -> (DeploymentPhase, Condition, Condition) {
    let desired = d.spec.replicas.unwrap_or(1);
    let observed = status.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0);
    let updated = status.updated_replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    let total = status.replicas.unwrap_or(0);
    let done = observed && updated >= desired && available >= desired && total <= desired;
    let available_condition = match deployment_available {
        Some(c) if c.status.as_deref() == Some(TRUE) && done => Condition::new(
            AVAILABLE,
            TRUE,
            "MinimumReplicasAvailable",
            format!("{available}/{desired} pods available"),
        ),
        _ => Condition::new(
            AVAILABLE,
            FALSE,
            "RollingOut",
            format!("{available}/{desired} pods available, {updated} updated"),
        ),
    };
    if done && available_condition.status == TRUE {
        (
            DeploymentPhase::Available,
            Condition::new(
                PROGRESSING,
                TRUE,
                "NewReplicaSetAvailable",
                "the rollout is complete",
            ),
            available_condition,
        )
    } else {
        (
            DeploymentPhase::RollingOut,
            Condition::new(
                PROGRESSING,
                TRUE,
                "RollingOut",
                format!("{updated}/{desired} pods updated, {available} available"),
            ),
            available_condition,
        )
    }
}

/// The status, from what was read and (after a Release) what was applied.
/// `deployment` is the Deployment after any apply; `failure` says why the
/// apply could not happen, if it could not.
pub fn status(
    input: &Input<'_>,
    deployment: Option<&Deployment>,
    failure: Option<&ApplyFailure>,
) -> Decision {
    let md = input.md;
    let previous = md.status.clone().unwrap_or_default();
    let generation = md.metadata.generation;
    let now = Time(input.now);
    let mut pending = Vec::new();
    let (phase, satisfied, progressing, available) = match input.linked {
        Linked::OtherNamespace(ns)
            if serving_revoked(&Input {
                deployment,
                ..*input
            })
            .is_none() =>
        {
            let (p, s, g) = held(
                DeploymentPhase::Failed,
                "CrossNamespaceRef",
                format!(
                    "approvalRef names namespace {ns:?}; a ModelDeployment may only use an approval in its own namespace"
                ),
            );
            (p, s, g, None)
        }
        Linked::Found(a) if is_approved(a) => {
            let (phase, progressing, available) = progress(deployment, failure, input.running);
            let satisfied = Condition::new(
                APPROVAL_SATISFIED,
                TRUE,
                "ApprovalApproved",
                format!(
                    "approval {} ({} {}) passed all five gates",
                    md.spec.approval_ref.name, a.spec.model.name, a.spec.model.version
                ),
            );
            (phase, satisfied, progressing, Some(available))
        }
        linked => {
            let (p, s, g, waiting) = not_released(input, linked, deployment);
            pending = waiting;
            (p, s, g, None)
        }
    };
    // Held phases describe the Deployment as it stands, untouched.
    let available = available.unwrap_or_else(|| standing(deployment, input.running));
    let find = |t: &str| condition::find(&previous.conditions, t);
    let status = ModelDeploymentStatus {
        phase: Some(phase),
        conditions: vec![
            satisfied.stamped(find(APPROVAL_SATISFIED), &now, generation),
            progressing.stamped(find(PROGRESSING), &now, generation),
            available.stamped(find(AVAILABLE), &now, generation),
        ],
        pending_gates: pending,
        served_model: serving_now(deployment, input.running),
        running: input.running.iter().take(RUNNING_LIMIT).cloned().collect(),
        deployment_name: deployment.and_then(|d| d.metadata.name.clone()),
        ready: deployment.map(ready),
        observed_generation: generation,
        served_history: served_history(
            input,
            &previous.served_history,
            served(deployment).as_ref(),
            &now,
        ),
    };
    let transition = (previous.phase != Some(phase)).then(|| announce(&status, phase));
    let changed = status != previous;
    Decision {
        status,
        transition,
        changed,
    }
}

/// The held phase and its conditions while the linked approval does not
/// release, with the gates still pending: Revoked (rolled back, or what
/// serves lost its approval) or AwaitingApproval.
fn not_released(
    input: &Input<'_>,
    linked: Linked<'_>,
    deployment: Option<&Deployment>,
) -> (DeploymentPhase, Condition, Condition, Vec<String>) {
    let md = input.md;
    let waiting = not_approved(linked, &md.spec.approval_ref.name);
    let revoked = serving_revoked(&Input {
        deployment,
        ..*input
    });
    let (p, s, g) = match rolled_back(input, deployment) {
        Some(now_serving) if revoked.is_none() => held(
            DeploymentPhase::Revoked,
            "RolledBack",
            format!(
                "{}: {}; serving the newest earlier approved version {} instead (onRevoke: Rollback); spec is unchanged and the rollout resumes when approval {} is Approved again",
                waiting.what,
                waiting.why,
                describe(&now_serving),
                md.spec.approval_ref.name
            ),
        ),
        _ => holding(md, &waiting, revoked.as_ref(), deployment),
    };
    (p, s, g, waiting.pending)
}

/// A held phase: ApprovalSatisfied False for `reason`, Progressing False.
fn held(
    phase: DeploymentPhase,
    reason: &str,
    message: String,
) -> (DeploymentPhase, Condition, Condition) {
    let progressing = Condition::new(PROGRESSING, FALSE, "RolloutHeld", message.clone());
    (
        phase,
        Condition::new(APPROVAL_SATISFIED, FALSE, reason, message),
        progressing,
    )
}

/// Why the linked approval does not release: what it is, the reason, why,
/// and the gates still pending.
struct Waiting {
    what: String,
    reason: &'static str,
    why: String,
    pending: Vec<String>,
}

fn not_approved(linked: Linked<'_>, ref_name: &str) -> Waiting {
    if let Linked::OtherNamespace(ns) = linked {
        return Waiting {
            what: format!("approval {ref_name}"),
            reason: "CrossNamespaceRef",
            why: format!(
                "approvalRef names namespace {ns:?}; a ModelDeployment may only use an approval in its own namespace"
            ),
            pending: Vec::new(),
        };
    }
    let Linked::Found(a) = linked else {
        return Waiting {
            what: format!("approval {ref_name}"),
            reason: "ApprovalNotFound",
            why: format!("ModelApproval {ref_name} does not exist in this namespace"),
            pending: Vec::new(),
        };
    };
    let pending = pending_gates(a);
    let what = format!(
        "{} {} (approval {ref_name})",
        a.spec.model.name, a.spec.model.version
    );
    let (reason, why) = match a.status.as_ref().and_then(|s| s.phase) {
        _ if a.metadata.deletion_timestamp.is_some() => (
            "ApprovalDeleted",
            "the approval is being deleted, which revokes it".to_string(),
        ),
        Some(ApprovalPhase::Rejected) => {
            ("ApprovalRejected", "the approval was rejected".to_string())
        }
        Some(ApprovalPhase::Expired) => ("ApprovalExpired", "the approval has expired".to_string()),
        _ if pending.is_empty() => (
            "AwaitingReview",
            "every gate has passed; waiting for the approval's phase to be recorded".to_string(),
        ),
        _ => (
            "AwaitingReview",
            format!("waiting on {}", pending.join(", ")),
        ),
    };
    Waiting {
        what,
        reason,
        why,
        pending,
    }
}

/// The held phase: Revoked when what serves lost its approval, otherwise
/// AwaitingApproval.
fn holding(
    md: &ModelDeployment,
    waiting: &Waiting,
    revoked: Option<&Revoked>,
    deployment: Option<&Deployment>,
) -> (DeploymentPhase, Condition, Condition) {
    let Waiting {
        what, reason, why, ..
    } = waiting;
    let Some(r) = revoked else {
        let serving = served(deployment)
            .map(|s| format!("; serving {}", describe(&s)))
            .unwrap_or_else(|| "; nothing is serving yet".into());
        return held(
            DeploymentPhase::AwaitingApproval,
            reason,
            format!("holding the rollout of {what}: {why}{serving}"),
        );
    };
    let action = match (
        md.spec.on_revoke,
        md.spec.rollback_fallback.unwrap_or_default(),
    ) {
        (OnRevoke::Hold, _) => "pods are kept and rollouts blocked (onRevoke: Hold)",
        (OnRevoke::ScaleToZero, _) => "scaled to zero (onRevoke: ScaleToZero)",
        (OnRevoke::Rollback, RollbackFallback::Hold) => {
            "no earlier approved version qualifies, so pods are kept and rollouts blocked (onRevoke: Rollback, rollbackFallback: Hold)"
        }
        (OnRevoke::Rollback, RollbackFallback::ScaleToZero) => {
            "no earlier approved version qualifies, so scaled to zero (onRevoke: Rollback, rollbackFallback: ScaleToZero)"
        }
    };
    let (reason, withdrawn) = if r.deleted {
        ("ApprovalDeleted", "was deleted")
    } else {
        ("ApprovalRevoked", "is no longer Approved")
    };
    held(
        DeploymentPhase::Revoked,
        reason,
        format!(
            "the approval of the serving model {} {withdrawn}; {action}; {what}: {why}",
            describe(&r.served)
        ),
    )
}

/// Available, for a Deployment the operator is not rolling out: what the
/// pods run, read from their ReplicaSets when any run.
fn standing(deployment: Option<&Deployment>, running: &[RunningModel]) -> Condition {
    let available = deployment
        .and_then(|d| d.status.as_ref())
        .and_then(|s| s.available_replicas);
    if !running.is_empty() && available.is_some_and(|n| n > 0) {
        let what: Vec<String> = running.iter().map(describe_running).collect();
        return Condition::new(
            AVAILABLE,
            TRUE,
            "PreviousVersionServing",
            format!("pods run {}", what.join(", ")),
        );
    }
    match available {
        Some(n) if n > 0 => Condition::new(
            AVAILABLE,
            TRUE,
            "PreviousVersionServing",
            format!("{n} pods of the previous version available"),
        ),
        _ => Condition::new(AVAILABLE, FALSE, "NothingServing", "no pods are available"),
    }
}

/// "ready/desired" pods, for the printer column.
fn ready(d: &Deployment) -> String {
    let desired = d.spec.replicas.unwrap_or(1);
    let ready = d
        .status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0);
    format!("{ready}/{desired}")
}

/// The Event for entering `phase`: (severity, reason, note).
fn announce(status: &ModelDeploymentStatus, phase: DeploymentPhase) -> (Severity, String, String) {
    let severity = match phase {
        DeploymentPhase::Revoked | DeploymentPhase::Failed => Severity::Warning,
        _ => Severity::Normal,
    };
    let reason = match phase {
        DeploymentPhase::Revoked => condition::find(&status.conditions, APPROVAL_SATISFIED)
            .and_then(|c| c.reason.clone())
            .unwrap_or_else(|| "ApprovalRevoked".to_string()),
        p => p.to_string(),
    };
    let note = condition::find(
        &status.conditions,
        if phase == DeploymentPhase::Failed {
            PROGRESSING
        } else {
            APPROVAL_SATISFIED
        },
    )
    .and_then(|c| c.message.clone())
    .unwrap_or_default();
    (severity, reason, format!("phase {phase}: {note}"))
}

#[cfg(test)]
mod tests;
