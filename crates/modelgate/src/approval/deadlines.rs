//! Review deadlines, as a pure function: which undecided gates are past
//! their pinned deadline, whether one has waited so long that the approval
//! expires as ReviewTimedOut, and when to look next. Counted from the
//! approval's creation. A deadline never passes a gate; once an approval
//! has been approved its deadlines are spent.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::gates::GateView;
use super::history::{Recorded, Said};
use crate::api::approval::{ModelApprovalStatus, OverdueGate};
use crate::api::condition::UNKNOWN;
use crate::api::policy::{GateProgress, PinnedGate, PinnedPolicy};
use crate::api::valid_for;
use crate::transition::Transition;
use crate::vocabulary::Severity;

/// How the deadlines stand now.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Standing {
    pub overdue: Vec<OverdueGate>,
    /// The gate whose wait expired the approval, and when.
    pub timed_out: Option<(String, Timestamp)>,
    /// The next deadline or expiry still ahead.
    pub next: Option<Timestamp>,
}

/// What the deadlines read.
#[derive(Clone, Copy, Debug)]
pub struct Clock<'a> {
    pub policy: Option<&'a PinnedPolicy>,
    pub gates: &'a [GateView],
    pub progress: &'a [GateProgress],
    /// The approval's creation; without it nothing is due.
    pub created: Option<Timestamp>,
    pub now: Timestamp,
    /// Whether the approval was ever approved (its deadlines are spent).
    pub approved: bool,
}

/// The deadlines of the gates still undecided.
pub fn read(clock: &Clock<'_>) -> Standing {
    let mut standing = Standing::default();
    let (Some(policy), Some(created)) = (clock.policy, clock.created) else {
        return standing;
    };
    if clock.approved {
        return standing;
    }
    for pinned in &policy.gates {
        let Some(deadline) = &pinned.deadline else {
            continue;
        };
        let undecided = clock
            .gates
            .iter()
            .any(|g| g.gate.condition_type() == pinned.gate && g.status == UNKNOWN);
        if !undecided {
            continue;
        }
        let due = after(created, Some(&deadline.review_within));
        let expires = after(created, deadline.expire_after.as_deref());
        if let Some(at) = expires.filter(|at| clock.now >= *at) {
            standing.timed_out.get_or_insert((pinned.gate.clone(), at));
        }
        match due {
            Some(due) if clock.now >= due => standing.overdue.push(OverdueGate {
                gate: pinned.gate.clone(),
                due: Time(due),
                asked: Some(asked(pinned, clock.progress)),
                escalated_to: deadline.escalate_to.clone(),
                expires: expires.map(Time),
            }),
            Some(due) => standing.next = earliest(standing.next, due),
            None => {}
        }
        if let Some(at) = expires.filter(|at| clock.now < *at) {
            standing.next = earliest(standing.next, at);
        }
    }
    standing
}

fn after(created: Timestamp, duration: Option<&str>) -> Option<Timestamp> {
    created.checked_add(valid_for::parse(duration?)?).ok()
}

fn earliest(a: Option<Timestamp>, b: Timestamp) -> Option<Timestamp> {
    Some(a.map_or(b, |a| a.min(b)))
}

/// Who the gate waits on, in words: its evaluators, or its reviewers and
/// how far their quorum has come.
fn asked(pinned: &PinnedGate, progress: &[GateProgress]) -> String {
    if let Some(rule) = &pinned.automatic {
        return format!("measurements by {}", rule.measured_by.join(", "));
    }
    let so_far = progress
        .iter()
        .find(|p| p.gate == pinned.gate)
        .map(|p| format!(", {} so far", p.progress))
        .unwrap_or_default();
    match pinned.reviewers {
        1 => format!("the {} reviewers", pinned.gate),
        n => format!("the {} reviewers ({n} needed{so_far})", pinned.gate),
    }
}

/// A Warning transition for each gate that became overdue since the
/// operator last looked.
pub fn transitions(
    previous: &ModelApprovalStatus,
    standing: &Standing,
    now: &Time,
) -> Vec<Recorded> {
    standing
        .overdue
        .iter()
        .filter(|o| !previous.overdue.iter().any(|p| p.gate == o.gate))
        .map(|o| {
            let message = overdue_message(o);
            let transition = Transition::new(
                &o.gate,
                Some(UNKNOWN),
                "Overdue",
                "ReviewOverdue",
                Severity::Warning,
                message.clone(),
            );
            let said = Said {
                reviewer: None,
                reason: Some("ReviewOverdue".into()),
                message: Some(message),
            };
            Recorded::new(transition, now, said)
        })
        .collect()
}

/// What the Event and the history say of an overdue gate.
pub fn overdue_message(o: &OverdueGate) -> String {
    let told = if o.escalated_to.is_empty() {
        String::new()
    } else {
        format!("; told {}", o.escalated_to.join(", "))
    };
    let expires = o
        .expires
        .as_ref()
        .map(|e| {
            format!(
                "; the approval expires as ReviewTimedOut at {} unless it is decided",
                e.0
            )
        })
        .unwrap_or_default();
    format!(
        "{} was due by {} and is still undecided; asked {}{told}{expires}. A deadline never passes a gate",
        o.gate,
        o.due.0,
        o.asked.as_deref().unwrap_or("its reviewers"),
    )
}

#[cfg(test)]
mod tests;
