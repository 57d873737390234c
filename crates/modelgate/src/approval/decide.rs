//! The ModelApproval decision, as a pure function: from the spec, the
//! conditions reviewers wrote, the operator's previous status and the time,
//! to the operator's next status and the transitions to record.
//!
//! No client calls here; the controller fetches, calls [`decide`], applies.

use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::deadlines;
use super::gates::{self, GateView};
use super::history::{self, Recorded, Said};
use super::inputs::{self, RecordedInputs};
use crate::api::approval::{ObservedGate, ObservedInput, PHASE_SUBJECT, ResolvedArtifact, Seal};
use crate::api::breakglass::ReleasedBy;
use crate::api::condition::{self, Condition, FALSE, TRUE, UNKNOWN};
use crate::api::fleet::ImportedApproval;
use crate::api::gates::{APPROVED_CONDITION, REVIEWS_VALID_CONDITION, is_operator_condition};
use crate::api::policy::{GateProgress, PinnedPolicy};
use crate::api::{
    approval::{ApprovalPhase, ModelApprovalSpec, ModelApprovalStatus},
    gates::Gate,
};
use crate::transition::Transition;
use crate::vocabulary::Severity;
#[cfg(test)]
use history::{HISTORY_LIMIT, HISTORY_TEXT_LIMIT};

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
    /// The artifact as its registry answered (see `approval::artifact`);
    /// None leaves it unjudged.
    pub artifact: Option<&'a ResolvedArtifact>,
    /// When the approval was created: review deadlines count from it.
    pub created: Option<Timestamp>,
    /// An approved break-glass whose window is open (see
    /// `approval::breakglass`): it releases the approval while every gate
    /// still open is one it skips.
    pub release: Option<&'a ReleasedBy>,
    /// For an imported approval, the publisher's record honoured (see
    /// `fleet::import`): its gates are mirrored, and the approval passes
    /// only while the publisher's does.
    pub imported: Option<&'a ImportedApproval>,
}

/// What the operator should write and announce.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// The operator's fields of status only (its conditions, phase, times,
    /// history); the reviewers' conditions are never in here.
    pub status: ModelApprovalStatus,
    /// The changes observed in this step, oldest first: each is a history
    /// entry in `status` and an Event.
    pub transitions: Vec<Transition>,
    /// Whether `status` differs from what the object already holds.
    pub changed: bool,
    /// When the approval lapses, if it has not yet.
    pub expires_at: Option<Timestamp>,
    /// The next review deadline (or ReviewTimedOut expiry) still ahead.
    pub next_deadline: Option<Timestamp>,
}

/// Parses `validFor` with the CRD's own grammar (see [`crate::api::valid_for`]).
pub fn parse_valid_for(valid_for: &str) -> Option<SignedDuration> {
    crate::api::valid_for::parse(valid_for)
}

/// The decision itself: how the approval stands, the conditions that say
/// so, the changes since the operator last looked, and the status that
/// records them.
pub fn decide(input: Input<'_>) -> Decision {
    // With no new read of the registry, what was honoured before stands.
    let input = Input {
        imported: input
            .imported
            .or_else(|| input.status.and_then(|s| s.imported.as_deref())),
        ..input
    };
    let empty = ModelApprovalStatus::default();
    let previous = input.status.unwrap_or(&empty);
    let now = Time(input.now);
    let standing = Standing::of(&input, previous);
    let conditions = standing.conditions(previous, &now, input.generation);
    let RecordedInputs {
        recorded: mut changes,
        observed,
    } = inputs::recorded(previous, &now);
    changes.extend(deadlines::transitions(previous, &standing.deadlines, &now));
    changes.extend(standing.transitions(previous, &approved_message(&conditions), &now));
    history::chain(previous, &mut changes);
    let status = standing.status(&input, previous, conditions, &changes, observed);
    let changed = status != operator_view(previous);
    Decision {
        status,
        transitions: changes.into_iter().map(|r| r.transition).collect(),
        changed,
        expires_at: standing.life.expires_at.filter(|_| !standing.life.lapsed),
        next_deadline: standing
            .deadlines
            .next
            .into_iter()
            .chain(standing.release.as_ref().map(|r| r.until.0))
            .min(),
    }
}

/// How the approval stands now: the rules it is decided by, its gates,
/// its validity and the phase they add up to.
struct Standing {
    policy: Option<Arc<PinnedPolicy>>,
    gates: Vec<GateView>,
    progress: Vec<GateProgress>,
    /// Malformed reviewer input, named in ReviewsValid.
    problems: Vec<String>,
    valid_for: Option<String>,
    life: Lifetime,
    phase: ApprovalPhase,
    /// Why the artifact holds the approval back: its registry does not
    /// serve it.
    unresolved: Option<String>,
    /// Why an imported approval is held back: the publisher's approval is
    /// not (or no longer) Approved, or none of its records is honoured.
    import_hold: Option<String>,
    /// Overdue gates and a ReviewTimedOut expiry.
    deadlines: deadlines::Standing,
    /// The break-glass that releases the approval, while it does.
    release: Option<ReleasedBy>,
}

impl Standing {
    fn of(input: &Input<'_>, previous: &ModelApprovalStatus) -> Self {
        let mut problems = Vec::new();
        let policy = previous
            .policy
            .clone()
            .or_else(|| input.pin.cloned().map(Arc::new));
        let gates::Reading { views, progress } =
            gates::read(previous, policy.as_deref(), input.imported, &mut problems);
        let valid_for = effective_valid_for(input.spec.valid_for.as_deref(), policy.as_deref());
        let unresolved = input
            .artifact
            .filter(|a| a.seal == Seal::Unresolved)
            .map(|a| a.message.clone().unwrap_or_default());
        let import_hold = import_hold(input);
        let life = lifetime(
            input,
            previous,
            &views,
            valid_for.as_deref(),
            // An expired approval is never approved afterwards.
            unresolved.is_some()
                || import_hold.is_some()
                || previous.phase == Some(ApprovalPhase::Expired),
        );
        let deadlines = deadlines::read(&deadlines::Clock {
            policy: policy.as_deref(),
            gates: &views,
            progress: &progress,
            created: input.created,
            now: input.now,
            approved: life.approved_at.is_some(),
        });
        let phase = phase_of(previous, &views, &life, deadlines.timed_out.is_some());
        let release = input
            .release
            .filter(|r| phase == ApprovalPhase::Pending && releases(r, &views, &life, input.now))
            .cloned();
        let phase = if release.is_some() {
            ApprovalPhase::BreakGlass
        } else {
            phase
        };
        Standing {
            policy,
            gates: views,
            progress,
            problems,
            valid_for,
            life,
            phase,
            unresolved,
            import_hold,
            deadlines,
            release,
        }
    }

    /// The operator's conditions: Approved, ReviewsValid, and the gates the
    /// pinned rules give to the operator (a quorum, a rule).
    fn conditions(
        &self,
        previous: &ModelApprovalStatus,
        now: &Time,
        generation: Option<i64>,
    ) -> Vec<Condition> {
        let stamp = |c: Condition| {
            let before = condition::find(&previous.conditions, &c.type_);
            c.stamped(before, now, generation)
        };
        let held = (self.unresolved.as_deref().map(artifact_unresolved))
            .or_else(|| self.import_hold.as_deref().map(import_held));
        let approved = match (held, self.phase) {
            (Some(held), ApprovalPhase::Pending) => held,
            (_, ApprovalPhase::BreakGlass) => match &self.release {
                Some(r) => released_by_break_glass(r),
                None => awaiting_review(&self.gates),
            },
            _ => self.timed_out(previous).unwrap_or_else(|| {
                approved_condition(
                    self.phase,
                    &self.gates,
                    &self.life,
                    self.valid_for.as_deref(),
                )
            }),
        };
        let mut conditions = vec![stamp(approved), stamp(valid_condition(&self.problems))];
        conditions.extend(
            self.gates
                .iter()
                .filter(|g| g.decided)
                .map(|g| stamp(g.condition())),
        );
        conditions
    }

    /// The Approved condition of an approval a review deadline expired:
    /// said once, and kept as it was said (a gate decided afterwards does
    /// not reopen it).
    fn timed_out(&self, previous: &ModelApprovalStatus) -> Option<Condition> {
        if self.phase != ApprovalPhase::Expired || self.life.expires_at.is_some() {
            return None;
        }
        let said = condition::find(&previous.conditions, APPROVED_CONDITION)
            .filter(|c| c.reason.as_deref() == Some(TIMED_OUT));
        match (said, &self.deadlines.timed_out) {
            (Some(c), _) => Some(c.clone()),
            (None, Some((gate, at))) => Some(review_timed_out(gate, *at)),
            (None, None) => None,
        }
    }

    /// The gate and phase changes between what the operator last recorded
    /// and what it sees now.
    fn transitions(
        &self,
        previous: &ModelApprovalStatus,
        phase_message: &str,
        now: &Time,
    ) -> Vec<Recorded> {
        self.gates
            .iter()
            .filter_map(|g| gate_transition(previous, g, now))
            .chain(phase_transition(
                previous,
                (self.phase, self.release.as_ref()),
                phase_message,
                now,
            ))
            .collect()
    }

    /// The operator's fields of status, with `recorded` in its history.
    fn status(
        &self,
        input: &Input<'_>,
        previous: &ModelApprovalStatus,
        conditions: Vec<Condition>,
        recorded: &[Recorded],
        observed_inputs: Vec<ObservedInput>,
    ) -> ModelApprovalStatus {
        let history = history::capped(previous, recorded);
        let passed = self.gates.iter().filter(|g| g.status == TRUE).count();
        ModelApprovalStatus {
            phase: Some(self.phase),
            conditions,
            gates_passed: Some(format!("{passed}/{}", Gate::ALL.len())),
            observed_gates: observed(&self.gates),
            approved_at: self.life.approved_at.clone(),
            expires_at: self.life.expires_at.map(Time),
            observed_generation: input.generation,
            // Stamped by the controller, which knows the uid (`identity`).
            observed_uid: previous.observed_uid.clone(),
            history_head: history
                .entries
                .last()
                .and_then(|e| e.hash.clone())
                .or_else(|| previous.history_head.clone()),
            history: history.entries,
            history_dropped: (history.dropped > 0).then_some(history.dropped),
            history_base: history.base,
            waiting_on: waiting_on(&self.gates, &self.progress, &self.deadlines.overdue),
            progress: self.progress.clone(),
            policy: self.policy.clone(),
            observed_inputs,
            reviews: Vec::new(),
            measurements: Vec::new(),
            artifact: input
                .artifact
                .cloned()
                .or_else(|| previous.artifact.clone()),
            break_glass: self
                .release
                .clone()
                .map(Box::new)
                .or_else(|| previous.break_glass.clone()),
            // Kept as the publisher left it (see `fleet::publish`).
            publication: previous.publication.clone(),
            imported: input
                .imported
                .cloned()
                .map(Box::new)
                .or_else(|| previous.imported.clone()),
            overdue: if self.phase == ApprovalPhase::Expired {
                Vec::new()
            } else {
                self.deadlines.overdue.clone()
            },
        }
    }
}

/// Whether `release` releases an approval whose gates are `gates`: its
/// window is open, no gate failed, every open gate is one it skips, and
/// nothing else holds the approval back (an artifact its registry does not
/// serve, an unreadable validFor).
fn releases(release: &ReleasedBy, gates: &[GateView], life: &Lifetime, now: Timestamp) -> bool {
    release.until.0 > now
        && !life.held
        && !life.unreadable
        && gates.iter().all(|g| {
            g.status == TRUE
                || (g.status == UNKNOWN
                    && release.skips.iter().any(|s| s == g.gate.condition_type()))
        })
}

/// The `Approved` condition of an approval a break-glass releases.
fn released_by_break_glass(r: &ReleasedBy) -> Condition {
    Condition::new(
        APPROVED_CONDITION,
        FALSE,
        "BreakGlass",
        format!(
            "released by break-glass {} without {} until {} (requested by {}, approved by {}: {}); unless {} pass before then, the release is revoked",
            r.name,
            r.skips.join(", "),
            r.until.0,
            r.requested_by,
            r.approved_by.join(", "),
            r.reason,
            r.skips.join(" and ")
        ),
    )
}

/// The phase the gates and the approval's life add up to. Expired is final.
fn phase_of(
    previous: &ModelApprovalStatus,
    gates: &[GateView],
    life: &Lifetime,
    timed_out: bool,
) -> ApprovalPhase {
    if previous.phase == Some(ApprovalPhase::Expired) || life.lapsed || timed_out {
        ApprovalPhase::Expired
    } else if gates.iter().any(|g| g.status == FALSE) {
        ApprovalPhase::Rejected
    } else if gates.iter().all(|g| g.status == TRUE) && !life.unreadable && !life.held {
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
    /// The artifact does not resolve: the approval waits for it.
    held: bool,
}

/// approvedAt is the first time all gates passed and never moves, so
/// flipping a gate cannot extend an approval's life.
fn lifetime(
    input: &Input<'_>,
    previous: &ModelApprovalStatus,
    gates: &[GateView],
    valid_for: Option<&str>,
    held: bool,
) -> Lifetime {
    let duration = valid_for.map(parse_valid_for);
    // Only validFor itself can be checked before approval; the expiry's
    // overflow only once there is an approvedAt.
    let mut unreadable = matches!(duration, Some(None));
    let all_passed = gates.iter().all(|g| g.status == TRUE);
    let approved_at = previous
        .approved_at
        .clone()
        .or_else(|| (all_passed && !unreadable && !held).then_some(Time(input.now)));
    let expires_at = match (&approved_at, duration.flatten()) {
        (Some(at), Some(d)) => {
            let expiry = at.0.checked_add(d).ok();
            unreadable |= expiry.is_none();
            expiry
        }
        _ => None,
    };
    // An imported approval lapses when the publisher's does, whether or
    // not the registry can be read then.
    let upstream = input
        .spec
        .import_from
        .as_ref()
        .and(input.imported)
        .and_then(|m| m.expires_at.as_ref())
        .filter(|_| approved_at.is_some())
        .map(|t| t.0);
    let expires_at = expires_at.into_iter().chain(upstream).min();
    Lifetime {
        lapsed: expires_at.is_some_and(|e| input.now >= e),
        approved_at,
        expires_at,
        unreadable,
        held,
    }
}

/// The reason of an approval a review deadline expired.
pub const TIMED_OUT: &str = "ReviewTimedOut";

fn review_timed_out(gate: &str, at: Timestamp) -> Condition {
    Condition::new(
        APPROVED_CONDITION,
        FALSE,
        TIMED_OUT,
        format!(
            "{gate} was still undecided at {at}, when its policy's expireAfter ran out; create a new ModelApproval to review the model again"
        ),
    )
}

fn artifact_unresolved(why: &str) -> Condition {
    Condition::new(
        APPROVED_CONDITION,
        FALSE,
        "ArtifactUnresolved",
        format!(
            "the model artifact does not resolve in its registry ({why}); reviews may go on, but the approval stays Pending until the registry serves this digest"
        ),
    )
}

/// Why an imported approval cannot pass now, if it cannot: none of the
/// publisher's records is honoured yet, or the newest says its approval
/// is not Approved.
fn import_hold(input: &Input<'_>) -> Option<String> {
    let import = input.spec.import_from.as_ref()?;
    let honoured = input.imported.filter(|m| m.seq.is_some());
    let Some(m) = honoured else {
        let why = input.imported.and_then(|m| m.message.clone());
        return Some(format!(
            "no signed record of {} by {} is honoured yet{}",
            import.approval,
            import.publisher,
            why.map(|w| format!(": {w}")).unwrap_or_default()
        ));
    };
    let phase = m.phase.as_deref().unwrap_or_default();
    (phase != ApprovalPhase::Approved.as_str()).then(|| {
        format!(
            "{}'s approval {} is {phase} in its newest signed record (seq {})",
            m.publisher,
            m.approval,
            m.seq.unwrap_or_default()
        )
    })
}

fn import_held(why: &str) -> Condition {
    Condition::new(
        APPROVED_CONDITION,
        FALSE,
        "ImportNotApproved",
        format!("{why}; this approval passes only while the publisher's does"),
    )
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
        (ApprovalPhase::Expired, _) => expired(life, valid_for),
        (ApprovalPhase::Pending, None) if life.unreadable => unreadable_valid_for(valid_for),
        (_, Some(failed)) => gate_failed(failed),
        _ => awaiting_review(gates),
    }
}

fn expired(life: &Lifetime, valid_for: Option<&str>) -> Condition {
    Condition::new(
        APPROVED_CONDITION,
        FALSE,
        "Expired",
        format!(
            "the approval lapsed at {} (validFor {}); create a new ModelApproval to re-certify",
            life.expires_at.map(|e| e.to_string()).unwrap_or_default(),
            valid_for.unwrap_or_default()
        ),
    )
}

fn unreadable_valid_for(valid_for: Option<&str>) -> Condition {
    Condition::new(
        APPROVED_CONDITION,
        FALSE,
        "InvalidValidFor",
        format!(
            "validFor {:?} cannot be read, so the approval is not granted: {}; create a new ModelApproval with a validFor in that form",
            valid_for.unwrap_or_default(),
            crate::api::valid_for::MESSAGE
        ),
    )
}

fn gate_failed(failed: &GateView) -> Condition {
    let by = failed
        .reviewer
        .as_deref()
        .map(|r| format!(" (by {r})"))
        .unwrap_or_default();
    let why = failed
        .message
        .as_deref()
        .map(|m| format!(": {m}"))
        .unwrap_or_default();
    Condition::new(
        APPROVED_CONDITION,
        FALSE,
        &format!("{}Failed", failed.gate),
        format!("{} failed{by}{why}", failed.gate),
    )
}

fn awaiting_review(gates: &[GateView]) -> Condition {
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

fn approved_message(conditions: &[Condition]) -> String {
    condition::find(conditions, APPROVED_CONDITION)
        .and_then(|c| c.message.clone())
        .unwrap_or_default()
}

/// A gate's change since the operator last recorded it, if any.
fn gate_transition(previous: &ModelApprovalStatus, g: &GateView, now: &Time) -> Option<Recorded> {
    let before = previous
        .observed_gates
        .iter()
        .find(|o| o.gate == g.gate.condition_type());
    // An unrecorded gate was pending: say so, not "nothing".
    let (from, from_reviewer) = before
        .map(|o| (o.status.as_str(), o.reviewer.as_deref()))
        .unwrap_or((UNKNOWN, None));
    // A new reviewer confirming the same outcome is a new decision too.
    if from == g.status && (g.status == UNKNOWN || from_reviewer == g.reviewer.as_deref()) {
        return None;
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
    let note = format!("{} {verb}{by}{why}", g.gate);
    let subject = g.gate.condition_type();
    let said = Said {
        reviewer: g.reviewer.clone(),
        reason: g.reason.clone(),
        message: g.message.clone(),
    };
    let transition = Transition::new(subject, Some(from), g.status, reason, severity, note);
    Some(Recorded::new(transition, now, said))
}

/// The change of phase, if any. The first observation of a new approval (no
/// phase yet, Pending) is not a transition; every later change of phase is.
fn phase_transition(
    previous: &ModelApprovalStatus,
    (phase, release): (ApprovalPhase, Option<&ReleasedBy>),
    phase_message: &str,
    now: &Time,
) -> Option<Recorded> {
    let first_pending = previous.phase.is_none() && phase == ApprovalPhase::Pending;
    if previous.phase == Some(phase) || first_pending {
        return None;
    }
    let after_break_glass = previous.phase == Some(ApprovalPhase::BreakGlass);
    let (reason, severity) = match phase {
        ApprovalPhase::Approved if after_break_glass => ("BreakGlassRatified", Severity::Normal),
        ApprovalPhase::Approved => ("Approved", Severity::Normal),
        ApprovalPhase::Rejected => ("Rejected", Severity::Warning),
        ApprovalPhase::Expired => ("Expired", Severity::Warning),
        ApprovalPhase::Pending if after_break_glass => ("BreakGlassLapsed", Severity::Warning),
        ApprovalPhase::Pending => ("Pending", Severity::Normal),
        ApprovalPhase::BreakGlass => ("BreakGlass", Severity::Warning),
    };
    let phase_message = match (after_break_glass, &previous.break_glass) {
        (true, Some(r)) if phase != ApprovalPhase::Approved => {
            format!(
                "break-glass {} no longer releases it: {phase_message}",
                r.name
            )
        }
        (true, Some(r)) => format!("break-glass {} ratified: {phase_message}", r.name),
        _ => phase_message.to_string(),
    };
    let phase_message = phase_message.as_str();
    let transition = Transition::new(
        PHASE_SUBJECT,
        previous.phase,
        phase,
        reason,
        severity,
        format!("phase {phase}: {phase_message}"),
    );
    let said = Said {
        // A break-glass is its requester's act.
        reviewer: release
            .filter(|_| phase == ApprovalPhase::BreakGlass)
            .map(|r| r.requested_by.clone()),
        reason: Some(reason.to_string()),
        message: Some(phase_message.to_string()),
    };
    Some(Recorded::new(transition, now, said))
}

/// The part of a status the operator owns: everything but the reviewers'
/// conditions.
pub fn operator_view(status: &ModelApprovalStatus) -> ModelApprovalStatus {
    let decided = crate::policy::pin::operator_decided(status.policy.as_deref());
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
fn waiting_on(
    gates: &[GateView],
    progress: &[GateProgress],
    overdue: &[crate::api::approval::OverdueGate],
) -> Option<String> {
    let open: Vec<String> = gates
        .iter()
        .filter(|g| g.status == UNKNOWN)
        .map(|g| {
            let name = g.gate.condition_type();
            let late = if overdue.iter().any(|o| o.gate == name) {
                " (overdue)"
            } else {
                ""
            };
            match progress.iter().find(|p| p.gate == name && p.mode.is_none()) {
                Some(p) => format!("{name} {}{late}", p.progress),
                None => format!("{name}{late}"),
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
