//! The ModelApproval decision, as a pure function: from the spec, the
//! conditions reviewers wrote, the operator's previous status and the time,
//! to the operator's next status and the transitions to record.
//!
//! No client calls here; the controller fetches, calls [`decide`], applies.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::gates::GateView;
use crate::api::approval::ObservedGate;
use crate::api::condition::{self, Condition, FALSE, TRUE, UNKNOWN};
use crate::api::gates::{APPROVED_CONDITION, REVIEWS_VALID_CONDITION, is_operator_condition};
use crate::api::policy::{GateProgress, PinnedPolicy};
use crate::api::{ApprovalPhase, Gate, HistoryEntry, ModelApprovalSpec, ModelApprovalStatus};
pub use crate::vocabulary::Severity;

/// How many history entries status keeps; older ones are counted in
/// `historyDropped`. Fifty covers several full review rounds while keeping
/// the object far below etcd's 1.5 MiB limit even with long messages.
pub const HISTORY_LIMIT: usize = 50;

/// Reasons and messages are cut to this many characters in history, so that
/// fifty entries stay small whatever reviewers write.
pub const HISTORY_TEXT_LIMIT: usize = 256;

pub use crate::api::approval::PHASE_SUBJECT;

/// Everything the decision depends on.
#[derive(Clone, Copy, Debug)]
pub struct Input<'a> {
    pub spec: &'a ModelApprovalSpec,
    pub generation: Option<i64>,
    /// The whole current status: reviewers' gates and the operator's fields.
    pub status: Option<&'a ModelApprovalStatus>,
    pub now: Timestamp,
    /// The rules to pin when the status has none yet (the policy in force).
    pub pin: Option<&'a PinnedPolicy>,
}

/// What the operator should write and announce.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// The operator's fields of status only (its conditions, phase, times,
    /// history); the reviewers' conditions are never in here.
    pub status: ModelApprovalStatus,
    /// The transitions observed in this step, oldest first: each is a history
    /// entry and an Event.
    pub transitions: Vec<Transition>,
    /// Whether `status` differs from what the object already holds.
    pub changed: bool,
    /// When the approval lapses, if it has not yet.
    pub expires_at: Option<Timestamp>,
}

/// One observed change, the material of a history entry and of an Event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    pub entry: HistoryEntry,
    /// The Event reason, e.g. GatePassed, Approved.
    pub reason: &'static str,
    pub severity: Severity,
    /// The Event note, for people.
    pub note: String,
}

/// Parses `validFor` with the CRD's own grammar (see [`crate::api::valid_for`]).
pub fn parse_valid_for(valid_for: &str) -> Option<SignedDuration> {
    crate::api::valid_for::parse(valid_for)
}

pub(super) fn truncate(text: Option<&str>) -> Option<String> {
    text.map(|t| match t.char_indices().nth(HISTORY_TEXT_LIMIT) {
        Some((cut, _)) => format!("{}…", &t[..cut]),
        None => t.to_string(),
    })
}

/// The decision itself.
pub fn decide(input: Input<'_>) -> Decision {
    let empty = ModelApprovalStatus::default();
    let previous = input.status.unwrap_or(&empty);
    let now = Time(input.now);
    let mut problems = Vec::new();
    let policy = previous.policy.clone().or_else(|| input.pin.cloned());
    let (gates, progress) = super::gates::read(previous, policy.as_ref(), &mut problems);
    let valid_for = effective_valid_for(input.spec.valid_for.as_deref(), policy.as_ref());
    let life = lifetime(&input, previous, &gates, valid_for.as_deref());
    let phase = phase_of(previous, &gates, &life);
    let stamp = |c: Condition| {
        let previous = condition::find(&previous.conditions, &c.type_);
        c.stamped(previous, &now, input.generation)
    };
    let mut conditions = vec![
        stamp(approved_condition(
            phase,
            &gates,
            &life,
            valid_for.as_deref(),
        )),
        stamp(valid_condition(&problems)),
    ];
    // The gates the pinned rules give to the operator: a quorum, a rule.
    conditions.extend(
        gates
            .iter()
            .filter(|g| g.decided)
            .map(|g| stamp(g.condition())),
    );
    let mut transitions = transitions(
        previous,
        &gates,
        phase,
        &approved_conditions_message(&conditions),
        &now,
    );
    let (inputs, observed_inputs) = super::inputs::recorded(previous, &now);
    transitions.splice(0..0, inputs);
    chain(previous, &mut transitions);
    let (history, dropped, base) = capped_history(previous, &transitions);
    let status = ModelApprovalStatus {
        phase: Some(phase),
        conditions,
        gates_passed: Some(format!(
            "{}/{}",
            gates.iter().filter(|g| g.status == TRUE).count(),
            Gate::ALL.len()
        )),
        observed_gates: observed(&gates),
        approved_at: life.approved_at,
        expires_at: life.expires_at.map(Time),
        observed_generation: input.generation,
        history_head: history
            .last()
            .and_then(|e| e.hash.clone())
            .or_else(|| previous.history_head.clone()),
        history,
        history_dropped: (dropped > 0).then_some(dropped),
        history_base: base,
        waiting_on: waiting_on(&gates, &progress),
        progress,
        policy,
        observed_inputs,
        reviews: Vec::new(),
        measurements: Vec::new(),
    };
    let changed = status != operator_view(previous);
    Decision {
        status,
        transitions,
        changed,
        expires_at: life.expires_at.filter(|_| !life.lapsed),
    }
}

/// The phase the gates and the approval's life add up to. Expired is final.
fn phase_of(previous: &ModelApprovalStatus, gates: &[GateView], life: &Lifetime) -> ApprovalPhase {
    if previous.phase == Some(ApprovalPhase::Expired) || life.lapsed {
        ApprovalPhase::Expired
    } else if gates.iter().any(|g| g.status == FALSE) {
        ApprovalPhase::Rejected
    } else if gates.iter().all(|g| g.status == TRUE) && !life.unreadable {
        ApprovalPhase::Approved
    } else {
        ApprovalPhase::Pending
    }
}

/// The gate states this decision acts on, for the next one to compare.
fn observed(gates: &[GateView]) -> Vec<ObservedGate> {
    gates
        .iter()
        .map(|g| ObservedGate {
            gate: g.gate.condition_type().to_string(),
            status: g.status.to_string(),
            reviewer: g.reviewer.clone(),
        })
        .collect()
}

/// When an approval was approved, when it lapses, and whether it has.
struct Lifetime {
    approved_at: Option<Time>,
    expires_at: Option<Timestamp>,
    lapsed: bool,
    /// A validFor is given but cannot be read (or its expiry cannot be
    /// written): never "forever", so the approval is held back instead.
    unreadable: bool,
}

/// approvedAt is the first time all gates passed and never moves, so
/// flipping a gate cannot extend an approval's life.
fn lifetime(
    input: &Input<'_>,
    previous: &ModelApprovalStatus,
    gates: &[GateView],
    valid_for: Option<&str>,
) -> Lifetime {
    let duration = valid_for.map(parse_valid_for);
    // Only validFor itself can be checked before approval; the expiry's
    // overflow only once there is an approvedAt.
    let mut unreadable = matches!(duration, Some(None));
    let all_passed = gates.iter().all(|g| g.status == TRUE);
    let approved_at = previous
        .approved_at
        .clone()
        .or_else(|| (all_passed && !unreadable).then_some(Time(input.now)));
    let expires_at = match (&approved_at, duration.flatten()) {
        (Some(at), Some(d)) => {
            let expiry = at.0.checked_add(d).ok();
            unreadable |= expiry.is_none();
            expiry
        }
        _ => None,
    };
    Lifetime {
        lapsed: expires_at.is_some_and(|e| input.now >= e),
        approved_at,
        expires_at,
        unreadable,
    }
}

/// The `Approved` condition for `phase`: why it is or is not approved.
fn approved_condition(
    phase: ApprovalPhase,
    gates: &[GateView],
    life: &Lifetime,
    valid_for: Option<&str>,
) -> Condition {
    let any_failed = gates.iter().find(|g| g.status == FALSE);
    match (phase, any_failed) {
        (ApprovalPhase::Approved, _) => Condition::new(
            APPROVED_CONDITION,
            TRUE,
            "AllGatesPassed",
            "all five gates passed",
        ),
        (ApprovalPhase::Expired, _) => Condition::new(
            APPROVED_CONDITION,
            FALSE,
            "Expired",
            format!(
                "the approval lapsed at {} (validFor {}); create a new ModelApproval to re-certify",
                life.expires_at.map(|e| e.to_string()).unwrap_or_default(),
                valid_for.unwrap_or_default()
            ),
        ),
        (ApprovalPhase::Pending, None) if life.unreadable => Condition::new(
            APPROVED_CONDITION,
            FALSE,
            "InvalidValidFor",
            format!(
                "validFor {:?} cannot be read, so the approval is not granted: {}; create a new ModelApproval with a validFor in that form",
                valid_for.unwrap_or_default(),
                crate::api::valid_for::MESSAGE
            ),
        ),
        (_, Some(failed)) => Condition::new(
            APPROVED_CONDITION,
            FALSE,
            &format!("{}Failed", failed.gate),
            format!(
                "{} failed{}{}",
                failed.gate,
                failed
                    .reviewer
                    .as_deref()
                    .map(|r| format!(" (by {r})"))
                    .unwrap_or_default(),
                failed
                    .message
                    .as_deref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            ),
        ),
        _ => {
            let pending: Vec<&str> = gates
                .iter()
                .filter(|g| g.status == UNKNOWN)
                .map(|g| g.gate.condition_type())
                .collect();
            Condition::new(
                APPROVED_CONDITION,
                UNKNOWN,
                "AwaitingReview",
                format!("waiting on {}", pending.join(", ")),
            )
        }
    }
}

/// The `ReviewsValid` condition: every malformed reviewer condition named.
fn valid_condition(problems: &[String]) -> Condition {
    if problems.is_empty() {
        Condition::new(
            REVIEWS_VALID_CONDITION,
            TRUE,
            "WellFormed",
            "every reviewer condition is well formed",
        )
    } else {
        Condition::new(
            REVIEWS_VALID_CONDITION,
            FALSE,
            "MalformedReview",
            problems.join("; "),
        )
    }
}

/// Links this decision's entries into the history's hash chain.
fn chain(previous: &ModelApprovalStatus, transitions: &mut [Transition]) {
    let mut entries: Vec<HistoryEntry> = transitions.iter().map(|t| t.entry.clone()).collect();
    let ever = previous.history.len() as i64 + previous.history_dropped.unwrap_or(0);
    let linked = crate::records::chain::extend(
        previous.history.last(),
        previous.history_base.as_deref(),
        ever,
        &mut entries,
    );
    // Hashing our own entries cannot fail (canonical JSON of plain strings
    // and numbers); were it to, the entries stay unhashed and any verifier
    // names them, rather than the decision being lost.
    if linked.is_ok() {
        for (t, e) in transitions.iter_mut().zip(entries) {
            t.entry = e;
        }
    }
}

/// The history with this decision's transitions appended, capped at
/// [`HISTORY_LIMIT`] entries; also the count dropped so far and the hash
/// the oldest kept entry links to.
fn capped_history(
    previous: &ModelApprovalStatus,
    transitions: &[Transition],
) -> (Vec<HistoryEntry>, i64, Option<String>) {
    let mut history = previous.history.clone();
    history.extend(transitions.iter().map(|t| t.entry.clone()));
    let mut dropped = previous.history_dropped.unwrap_or(0);
    let mut base = previous.history_base.clone();
    if history.len() > HISTORY_LIMIT {
        let excess = history.len() - HISTORY_LIMIT;
        base = history.drain(..excess).next_back().and_then(|e| e.hash);
        dropped += excess as i64;
    }
    (history, dropped, base)
}

fn approved_conditions_message(conditions: &[Condition]) -> String {
    condition::find(conditions, APPROVED_CONDITION)
        .and_then(|c| c.message.clone())
        .unwrap_or_default()
}

/// The gate and phase changes between what the operator last recorded and
/// what it sees now.
fn transitions(
    previous: &ModelApprovalStatus,
    gates: &[GateView],
    phase: ApprovalPhase,
    phase_message: &str,
    now: &Time,
) -> Vec<Transition> {
    let mut out = Vec::new();
    for g in gates {
        let before = previous
            .observed_gates
            .iter()
            .find(|o| o.gate == g.gate.condition_type());
        let (from, from_reviewer) = before
            .map(|o| (o.status.as_str(), o.reviewer.as_deref()))
            .unwrap_or((UNKNOWN, None));
        // A new reviewer confirming the same outcome is a new decision too.
        if from == g.status && (g.status == UNKNOWN || from_reviewer == g.reviewer.as_deref()) {
            continue;
        }
        let (reason, severity, verb) = match g.status {
            TRUE => ("GatePassed", Severity::Normal, "passed"),
            FALSE => ("GateFailed", Severity::Warning, "failed"),
            _ => ("GateReset", Severity::Normal, "is pending again"),
        };
        let by = g
            .reviewer
            .as_deref()
            .map(|r| format!(" by {r}"))
            .unwrap_or_default();
        let why = match (&g.reason, &g.message) {
            (Some(r), Some(m)) => format!(": {r}: {m}"),
            (Some(r), None) => format!(": {r}"),
            (None, Some(m)) => format!(": {m}"),
            (None, None) => String::new(),
        };
        out.push(Transition {
            entry: HistoryEntry {
                time: now.clone(),
                subject: g.gate.condition_type().to_string(),
                // An unrecorded gate was pending: say so, not "nothing".
                from: from.to_string(),
                to: g.status.to_string(),
                reviewer: g.reviewer.clone(),
                reason: truncate(g.reason.as_deref()),
                message: truncate(g.message.as_deref()),
                seq: None,
                hash: None,
            },
            reason,
            severity,
            note: format!("{} {verb}{by}{why}", g.gate),
        });
    }
    out.extend(phase_transition(previous, phase, phase_message, now));
    out
}

/// The change of phase, if any. The first observation of a new approval (no
/// phase yet, Pending) is not a transition; every later change of phase is.
fn phase_transition(
    previous: &ModelApprovalStatus,
    phase: ApprovalPhase,
    phase_message: &str,
    now: &Time,
) -> Option<Transition> {
    let first_pending = previous.phase.is_none() && phase == ApprovalPhase::Pending;
    if previous.phase == Some(phase) || first_pending {
        return None;
    }
    let (reason, severity) = match phase {
        ApprovalPhase::Approved => ("Approved", Severity::Normal),
        ApprovalPhase::Rejected => ("Rejected", Severity::Warning),
        ApprovalPhase::Expired => ("Expired", Severity::Warning),
        ApprovalPhase::Pending => ("Pending", Severity::Normal),
    };
    Some(Transition {
        entry: HistoryEntry {
            time: now.clone(),
            subject: PHASE_SUBJECT.to_string(),
            from: previous.phase.map(|p| p.to_string()).unwrap_or_default(),
            to: phase.to_string(),
            reviewer: None,
            reason: Some(reason.to_string()),
            message: truncate(Some(phase_message)),
            seq: None,
            hash: None,
        },
        reason,
        severity,
        note: format!("phase {phase}: {phase_message}"),
    })
}

/// The part of a status the operator owns: everything but the reviewers'
/// conditions.
pub fn operator_view(status: &ModelApprovalStatus) -> ModelApprovalStatus {
    let decided = crate::policy::pin::operator_decided(status.policy.as_ref());
    let mut view = status.clone();
    view.conditions
        .retain(|c| is_operator_condition(&c.type_) || decided.contains(&c.type_.as_str()));
    view.reviews.clear();
    view.measurements.clear();
    view
}

/// The approval's validFor under its policy: the policy's when the spec
/// gives none, and never longer than the policy's.
fn effective_valid_for(spec: Option<&str>, policy: Option<&PinnedPolicy>) -> Option<String> {
    let cap = policy.and_then(|p| p.valid_for.clone());
    match (spec, cap) {
        // An unreadable one wins, so that it holds the approval back
        // rather than lifting the policy's cap.
        (Some(own), Some(cap)) => match (parse_valid_for(own), parse_valid_for(&cap)) {
            (Some(a), Some(b)) if b < a => Some(cap),
            (Some(_), None) => Some(cap),
            _ => Some(own.to_string()),
        },
        (Some(own), None) => Some(own.to_string()),
        (None, cap) => cap,
    }
}

/// What the approval waits on, at a glance: each open gate, with quorum
/// progress where there is one.
fn waiting_on(gates: &[GateView], progress: &[GateProgress]) -> Option<String> {
    let open: Vec<String> = gates
        .iter()
        .filter(|g| g.status == UNKNOWN)
        .map(|g| {
            let name = g.gate.condition_type();
            match progress.iter().find(|p| p.gate == name && p.mode.is_none()) {
                Some(p) => format!("{name} {}", p.progress),
                None => name.to_string(),
            }
        })
        .collect();
    (!open.is_empty()).then(|| open.join(", "))
}

/// How long until `expires_at`, measured from `now`, if it is ahead.
pub fn until(expires_at: Timestamp, now: Timestamp) -> Option<Duration> {
    let d = expires_at.duration_since(now);
    d.is_positive()
        .then(|| Duration::try_from(d).ok())
        .flatten()
}

#[cfg(test)]
mod robustness;
#[cfg(test)]
mod tests;
