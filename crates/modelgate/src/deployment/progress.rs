//! What a ModelDeployment's status says, as a pure function of the objects
//! the controller read and what its action left: released and rolling out
//! (progress read from the Deployment and the pods' ReplicaSets), or held,
//! and why. No client calls.

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::rollout::{
    ApplyFailure, Input, Linked, Revoked, break_glass, releases, served, serving_revoked,
};
use crate::api::approval::Seal;
use crate::api::condition::{self, Condition, FALSE, TRUE};
use crate::api::deployment::{
    APPROVAL_SATISFIED, AVAILABLE, PROGRESSING, RUNNING_LIMIT, SERVED_HISTORY_LIMIT,
};
use crate::api::{
    approval::{ApprovalPhase, ModelApproval},
    deployment::{
        DeploymentPhase, ModelDeployment, ModelDeploymentStatus, OnRevoke, RollbackFallback,
        RunningModel, ServedEntry, ServedModel,
    },
    gates::Gate,
};
use crate::transition::Transition;
use crate::vocabulary::Severity;

/// What a ModelDeployment's transitions are about, and their Events'
/// action: its rollout changed phase.
pub const ROLLOUT_SUBJECT: &str = "Rollout";

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

/// servedHistory with what serves now at its head when it changed. The
/// status is built over both Deployments, as read and as the action left
/// it, so what served before an action is recorded even when the status
/// write after the action that first served it was lost (the operator
/// stopped between the two writes): a Rollback goes back to it.
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
    /// A phase change to announce.
    pub transition: Option<Transition>,
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

/// Where a released rollout stands: its phase and the conditions saying so.
#[derive(Clone, Debug, PartialEq)]
struct Progress {
    phase: DeploymentPhase,
    progressing: Condition,
    available: Condition,
}

impl Progress {
    fn new(phase: DeploymentPhase, progressing: Condition, available: Condition) -> Self {
        Progress {
            phase,
            progressing,
            available,
        }
    }
}

/// Reads the progress of the Deployment `d` as the apply left it.
fn progress(
    d: Option<&Deployment>,
    failure: Option<&ApplyFailure>,
    running: &[RunningModel],
) -> Progress {
    if let Some(f) = failure {
        return not_applied(f);
    }
    let Some(d) = d else {
        return Progress::new(
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
    if let Some(exceeded) = deadline_exceeded(find("Progressing")) {
        return exceeded;
    }
    let progress = rollout(d, &status, find("Available"));
    match stale_pods(d, running) {
        Some(others) if progress.phase == DeploymentPhase::Available => others_running(&others),
        _ => progress,
    }
}

/// The API server refused the Deployment (`failure` says why).
fn not_applied(failure: &ApplyFailure) -> Progress {
    Progress::new(
        DeploymentPhase::Failed,
        Condition::new(PROGRESSING, FALSE, failure.reason, failure.message.clone()),
        Condition::new(
            AVAILABLE,
            FALSE,
            failure.reason,
            "the Deployment could not be applied",
        ),
    )
}

/// Failed, when the Deployment's own Progressing condition says its
/// progress deadline passed.
fn deadline_exceeded(progressing: Option<&DeploymentCondition>) -> Option<Progress> {
    let c = progressing.filter(|c| c.reason.as_deref() == Some("ProgressDeadlineExceeded"))?;
    Some(Progress::new(
        DeploymentPhase::Failed,
        Condition::new(
            PROGRESSING,
            FALSE,
            "ProgressDeadlineExceeded",
            c.message.clone().unwrap_or_default(),
        ),
        Condition::new(
            AVAILABLE,
            FALSE,
            "ProgressDeadlineExceeded",
            "the rollout did not finish in time",
        ),
    ))
}

/// Still rolling out while pods of `others` (described) run beside the
/// Deployment's own.
fn others_running(others: &str) -> Progress {
    let message = format!("pods still run {others}");
    Progress::new(
        DeploymentPhase::RollingOut,
        Condition::new(PROGRESSING, TRUE, "OtherModelsRunning", message.clone()),
        Condition::new(AVAILABLE, FALSE, "OtherModelsRunning", message),
    )
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
    status: &DeploymentStatus,
    deployment_available: Option<&DeploymentCondition>,
) -> Progress {
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
        let complete = Condition::new(
            PROGRESSING,
            TRUE,
            "NewReplicaSetAvailable",
            "the rollout is complete",
        );
        return Progress::new(DeploymentPhase::Available, complete, available_condition);
    }
    let rolling = Condition::new(
        PROGRESSING,
        TRUE,
        "RollingOut",
        format!("{updated}/{desired} pods updated, {available} available"),
    );
    Progress::new(DeploymentPhase::RollingOut, rolling, available_condition)
}

/// The phase a status reports and the conditions that say why.
#[derive(Clone, Debug, PartialEq)]
struct Report {
    phase: DeploymentPhase,
    satisfied: Condition,
    progressing: Condition,
    /// None while held: Available then describes the Deployment as it
    /// stands, untouched.
    available: Option<Condition>,
    /// The gates of the linked approval still pending.
    pending: Vec<String>,
}

/// The status, from what was read and (after a Release) what was applied.
/// `deployment` is the Deployment after any apply; `failure` says why the
/// apply could not happen, if it could not.
pub fn status(
    input: &Input<'_>,
    deployment: Option<&Deployment>,
    failure: Option<&ApplyFailure>,
) -> Decision {
    let report = match input.linked {
        Linked::OtherNamespace(ns)
            if serving_revoked(&Input {
                deployment,
                ..*input
            })
            .is_none() =>
        {
            held(
                DeploymentPhase::Failed,
                "CrossNamespaceRef",
                format!(
                    "approvalRef names namespace {ns:?}; a ModelDeployment may only use an approval in its own namespace"
                ),
            )
        }
        Linked::Found(a) if releases(a, input.now) => released(input, a, deployment, failure),
        linked => not_released(input, linked, deployment),
    };
    let previous = input.md.status.clone().unwrap_or_default();
    let phase = report.phase;
    let status = report_status(input, &previous, report, deployment);
    let transition = (previous.phase != Some(phase)).then(|| announce(&previous, &status, phase));
    let changed = status != previous;
    Decision {
        status,
        transition,
        changed,
    }
}

/// The report of a released rollout: the approval is satisfied, the
/// Deployment's progress says the rest.
fn released(
    input: &Input<'_>,
    approval: &ModelApproval,
    deployment: Option<&Deployment>,
    failure: Option<&ApplyFailure>,
) -> Report {
    let progress = progress(deployment, failure, input.running);
    let model = &approval.spec.model;
    let satisfied = match break_glass(approval, input.now) {
        Some(r) => Condition::new(
            APPROVAL_SATISFIED,
            TRUE,
            "BreakGlass",
            format!(
                "approval {} ({} {}) is released by break-glass {} without {} until {} ({}); unless {} pass before then, onRevoke {:?} applies",
                input.md.spec.approval_ref.name,
                model.name,
                model.version,
                r.name,
                r.skips.join(", "),
                r.until.0,
                r.reason,
                r.skips.join(" and "),
                input.md.spec.on_revoke
            ),
        ),
        None => Condition::new(
            APPROVAL_SATISFIED,
            TRUE,
            "ApprovalApproved",
            format!(
                "approval {} ({} {}) passed all five gates",
                input.md.spec.approval_ref.name, model.name, model.version
            ),
        ),
    };
    Report {
        phase: progress.phase,
        satisfied,
        progressing: progress.progressing,
        available: Some(progress.available),
        pending: Vec::new(),
    }
}

/// The status `report` makes, its conditions stamped against `previous`.
fn report_status(
    input: &Input<'_>,
    previous: &ModelDeploymentStatus,
    report: Report,
    deployment: Option<&Deployment>,
) -> ModelDeploymentStatus {
    let generation = input.md.metadata.generation;
    let now = Time(input.now);
    let available = report
        .available
        .unwrap_or_else(|| standing(deployment, input.running));
    let stamp = |c: Condition| {
        let before = condition::find(&previous.conditions, &c.type_);
        c.stamped(before, &now, generation)
    };
    let break_glass = match input.linked {
        Linked::Found(a) if report.satisfied.status == TRUE => break_glass(a, input.now).map(|r| {
            format!(
                "{} until {} without {}",
                r.name,
                r.until.0,
                r.skips.join(",")
            )
        }),
        _ => None,
    };
    ModelDeploymentStatus {
        phase: Some(report.phase),
        conditions: [report.satisfied, report.progressing, available]
            .into_iter()
            .chain(input.seal.cloned())
            .map(stamp)
            .collect(),
        seal: input.seal.map(|c| {
            if c.status == TRUE {
                Seal::Sealed
            } else {
                Seal::Unsealed
            }
        }),
        pending_gates: report.pending,
        served_model: serving_now(deployment, input.running),
        running: input.running.iter().take(RUNNING_LIMIT).cloned().collect(),
        deployment_name: deployment.and_then(|d| d.metadata.name.clone()),
        ready: deployment.map(ready),
        observed_generation: generation,
        break_glass,
        served_history: served_history(
            input,
            &served_history(
                input,
                &previous.served_history,
                served(input.deployment).as_ref(),
                &now,
            ),
            served(deployment).as_ref(),
            &now,
        ),
    }
}

/// The held report while the linked approval does not release, with the
/// gates still pending: Revoked (rolled back, or what serves lost its
/// approval) or AwaitingApproval.
fn not_released(input: &Input<'_>, linked: Linked<'_>, deployment: Option<&Deployment>) -> Report {
    let md = input.md;
    let waiting = not_approved(linked, &md.spec.approval_ref.name);
    let revoked = serving_revoked(&Input {
        deployment,
        ..*input
    });
    let report = match rolled_back(input, deployment) {
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
    Report {
        pending: waiting.pending,
        ..report
    }
}

/// A held report: ApprovalSatisfied False for `reason`, Progressing False.
fn held(phase: DeploymentPhase, reason: &str, message: String) -> Report {
    Report {
        phase,
        progressing: Condition::new(PROGRESSING, FALSE, "RolloutHeld", message.clone()),
        satisfied: Condition::new(APPROVAL_SATISFIED, FALSE, reason, message),
        available: None,
        pending: Vec::new(),
    }
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
) -> Report {
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

/// The change of phase from `previous` to `status` (in `phase`), as its
/// Event says it.
fn announce(
    previous: &ModelDeploymentStatus,
    status: &ModelDeploymentStatus,
    phase: DeploymentPhase,
) -> Transition {
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
    let explained_by = if phase == DeploymentPhase::Failed {
        PROGRESSING
    } else {
        APPROVAL_SATISFIED
    };
    let note = condition::find(&status.conditions, explained_by)
        .and_then(|c| c.message.clone())
        .unwrap_or_default();
    Transition::new(
        ROLLOUT_SUBJECT,
        previous.phase,
        phase,
        reason,
        severity,
        format!("phase {phase}: {note}"),
    )
}

#[cfg(test)]
mod tests;
