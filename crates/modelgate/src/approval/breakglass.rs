//! Break-glass, as pure functions: whether a BreakGlass may release its
//! approval under the approval's pinned policy (`authority`), and where it
//! stands once the approval's decision is made (`outcome`). The approval
//! controller reads the first into the decision and writes the second to
//! the BreakGlass's status.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::approval::{ApprovalPhase, ModelApprovalStatus};
use crate::api::breakglass::{
    BreakGlass, BreakGlassPhase, BreakGlassRule, BreakGlassStatus, MESSAGE_LIMIT, ReleasedBy,
};
use crate::api::condition::{Condition, FALSE, TRUE};
use crate::api::valid_for;

/// What the policy says of one BreakGlass, before the approval's decision.
#[derive(Clone, Debug, PartialEq)]
pub enum Authority {
    /// The policy does not allow it (the message says why). Final.
    Refused(String),
    /// Allowed, waiting for approvers (the message says whom).
    Awaiting(String),
    /// Approved: the release, with its window.
    Approved(ReleasedBy),
}

/// What the policy says of `bg` against the approval's `status` (its
/// pinned rules; and, for a window already begun, when it began).
pub fn authority(
    bg: &BreakGlass,
    status: Option<&ModelApprovalStatus>,
    now: Timestamp,
) -> Authority {
    if let Some(why) = ended(bg) {
        return Authority::Refused(why);
    }
    let Some(rule) = status
        .and_then(|s| s.policy.as_ref())
        .and_then(|p| p.break_glass.as_ref())
    else {
        let name = status
            .and_then(|s| s.policy.as_ref())
            .map(|p| p.name.as_str())
            .unwrap_or("its policy");
        return Authority::Refused(format!(
            "the approval's pinned policy {name} allows no break-glass (it has no breakGlass rule)"
        ));
    };
    if let Some(why) = refusal(bg, rule) {
        return Authority::Refused(why);
    }
    let approvers = counted(bg, rule);
    let needed = rule.approvals.unwrap_or(1).max(1) as usize;
    if approvers.len() < needed {
        return Authority::Awaiting(awaiting(bg, rule, &approvers, needed));
    }
    let since = started(bg, status).unwrap_or(now);
    // `refusal` has read the duration.
    let duration = valid_for::parse(&bg.spec.duration).unwrap_or_default();
    let until = since.checked_add(duration).unwrap_or(since);
    Authority::Approved(ReleasedBy {
        name: bg.metadata.name.clone().unwrap_or_default(),
        requested_by: bg.spec.requested_by.user.clone(),
        approved_by: approvers,
        reason: bg.spec.reason.clone(),
        skips: bg
            .spec
            .skips
            .iter()
            .map(|g| g.as_str().to_string())
            .collect(),
        since: Time(since),
        until: Time(until),
    })
}

/// Why `bg` releases nothing any more, when it is Ratified, Lapsed or
/// Refused: those are final, so a gate reset or passed afterwards inside
/// its window must not bring a release back under it.
fn ended(bg: &BreakGlass) -> Option<String> {
    let phase = bg.status.as_ref()?.phase.filter(|p| p.is_final())?;
    Some(format!(
        "break-glass {} is {}, which is final: it releases nothing again; request a new one",
        bg.metadata.name.as_deref().unwrap_or_default(),
        phase.as_str()
    ))
}

/// Why the policy refuses the request itself, if it does.
fn refusal(bg: &BreakGlass, rule: &BreakGlassRule) -> Option<String> {
    let who = &bg.spec.requested_by;
    if !rule.requesters.includes(who) {
        return Some(format!(
            "{} may not request a break-glass of this approval: its policy names {} as requesters",
            who.user,
            rule.requesters.describe()
        ));
    }
    let Some(asked) = valid_for::parse(&bg.spec.duration) else {
        return Some(format!("duration {:?} cannot be read", bg.spec.duration));
    };
    match valid_for::parse(&rule.max_duration) {
        Some(max) if asked <= max => None,
        Some(_) => Some(format!(
            "duration {} is longer than the policy allows (maxDuration {})",
            bg.spec.duration, rule.max_duration
        )),
        None => Some(format!(
            "the policy's maxDuration {:?} cannot be read",
            rule.max_duration
        )),
    }
}

/// The approvers who count, in the order they approved: named by the
/// policy, not the requester, each once.
fn counted(bg: &BreakGlass, rule: &BreakGlassRule) -> Vec<String> {
    let mut entries: Vec<_> = bg
        .status
        .as_ref()
        .map(|s| s.approvals.iter().collect())
        .unwrap_or_default();
    entries.sort_by_key(|a| a.time.as_ref().map(|t| t.0));
    let mut counted: Vec<String> = Vec::new();
    for a in entries {
        let who = crate::api::breakglass::Identity {
            user: a.user.clone(),
            groups: a.groups.clone(),
        };
        if a.user != bg.spec.requested_by.user
            && rule.approvers.includes(&who)
            && !counted.contains(&a.user)
        {
            counted.push(a.user.clone());
        }
    }
    counted
}

/// "waiting on 1 more approval from groups sre-oncall; alice's does not
/// count (the requester)".
fn awaiting(bg: &BreakGlass, rule: &BreakGlassRule, counted: &[String], needed: usize) -> String {
    let ignored: Vec<String> = bg
        .status
        .as_ref()
        .map(|s| s.approvals.as_slice())
        .unwrap_or_default()
        .iter()
        .filter(|a| !counted.contains(&a.user))
        .map(|a| {
            let why = if a.user == bg.spec.requested_by.user {
                "the requester's own"
            } else {
                "not an approver under the policy"
            };
            format!("{}'s does not count ({why})", a.user)
        })
        .collect();
    let mut message = format!(
        "waiting on {} more approval(s) from {}, other than the requester",
        needed - counted.len(),
        rule.approvers.describe()
    );
    if !ignored.is_empty() {
        message.push_str("; ");
        message.push_str(&ignored.join("; "));
    }
    message
}

/// When the window began, if it has: the BreakGlass's own status, else the
/// approval's record of it (a write of the first may have been lost).
fn started(bg: &BreakGlass, status: Option<&ModelApprovalStatus>) -> Option<Timestamp> {
    let own = bg.status.as_ref().and_then(|s| s.active_since.as_ref());
    let recorded = status
        .and_then(|s| s.break_glass.as_ref())
        .filter(|r| Some(&r.name) == bg.metadata.name.as_ref())
        .map(|r| &r.since);
    own.or(recorded).map(|t| t.0)
}

/// Why `bg` may not release the approval of `uid`, when it was first
/// judged against another approval of the same name (deleted and created
/// again since): the people who approved it approved that one.
pub fn bound_elsewhere(bg: &BreakGlass, uid: &str) -> Option<String> {
    let first = bg.status.as_ref()?.approval_uid.as_deref()?;
    (first != uid).then(|| {
        format!(
            "approval {} was deleted and created again since this break-glass was requested (uid {first}, now {uid}); it releases only the approval it was requested for: request again",
            bg.spec.approval_ref.name
        )
    })
}

/// The release `decide` may use: of the approved, unexpired ones, the one
/// whose window ends last.
pub fn release<'a>(
    judged: impl IntoIterator<Item = &'a Authority>,
    now: Timestamp,
) -> Option<&'a ReleasedBy> {
    judged
        .into_iter()
        .filter_map(|a| match a {
            Authority::Approved(r) if r.until.0 > now => Some(r),
            _ => None,
        })
        .max_by_key(|r| r.until.0)
}

/// The BreakGlass's status once the approval's decision (`decided`) is
/// made: its phase, window and message.
pub fn outcome(
    bg: &BreakGlass,
    authority: &Authority,
    (decided, uid): (&ModelApprovalStatus, &str),
    now: Timestamp,
) -> BreakGlassStatus {
    let previous = bg.status.clone().unwrap_or_default();
    let mut status = BreakGlassStatus {
        approval_uid: previous
            .approval_uid
            .clone()
            .or_else(|| Some(uid.to_string())),
        skipping: Some(
            bg.spec
                .skips
                .iter()
                .map(|g| g.as_str())
                .collect::<Vec<_>>()
                .join(","),
        ),
        observed_generation: bg.metadata.generation,
        ..BreakGlassStatus::default()
    };
    if let Some(phase) = previous.phase.filter(|p| p.is_final()) {
        // Ratified, Lapsed and Refused are final: keep what was said.
        return BreakGlassStatus {
            phase: Some(phase),
            approvals: Vec::new(),
            ..previous
        };
    }
    let (phase, message) = match authority {
        Authority::Refused(why) => (BreakGlassPhase::Refused, why.clone()),
        Authority::Awaiting(why) => match stands_in_the_way(decided) {
            Some(why) => (BreakGlassPhase::Refused, why),
            None => (BreakGlassPhase::AwaitingApproval, why.clone()),
        },
        Authority::Approved(release) => {
            status.approved_by = release.approved_by.clone();
            status.active_since = Some(release.since.clone());
            status.until = Some(release.until.clone());
            approved(bg, release, decided, previous.phase, now)
        }
    };
    status.ended_at = if phase.is_final() {
        Some(Time(now))
    } else {
        None
    };
    status.conditions = vec![ready(phase, &message).stamped(
        crate::api::condition::find(&previous.conditions, READY),
        &Time(now),
        bg.metadata.generation,
    )];
    status.phase = Some(phase);
    status.message = Some(cut(message));
    status
}

/// `message` within [`MESSAGE_LIMIT`] characters, marked when cut: the
/// names of a large policy or of many approvers must not make the status
/// unwritable (the API server would refuse it on every reconcile).
fn cut(message: String) -> String {
    if message.chars().nth(MESSAGE_LIMIT).is_none() {
        return message;
    }
    let at = message
        .char_indices()
        .nth(MESSAGE_LIMIT - 1)
        .map_or(message.len(), |(at, _)| at);
    format!("{}…", &message[..at])
}

/// The condition `kubectl wait --for=condition=Ready` reads: True while the
/// release is in force.
pub const READY: &str = "Ready";

fn ready(phase: BreakGlassPhase, message: &str) -> Condition {
    let status = if phase == BreakGlassPhase::Active {
        TRUE
    } else {
        FALSE
    };
    Condition::new(READY, status, phase.as_str(), message)
}

/// Why an approval cannot be released by any break-glass now.
fn stands_in_the_way(decided: &ModelApprovalStatus) -> Option<String> {
    match decided.phase {
        Some(ApprovalPhase::Approved) => {
            Some("the approval is already Approved: there is nothing to release".into())
        }
        Some(ApprovalPhase::Rejected) => {
            Some("the approval is Rejected: a gate a reviewer failed cannot be skipped".into())
        }
        Some(ApprovalPhase::Expired) => {
            Some("the approval is Expired: create a new ModelApproval".into())
        }
        _ => None,
    }
}

/// Where an approved BreakGlass stands against the decided approval.
fn approved(
    bg: &BreakGlass,
    release: &ReleasedBy,
    decided: &ModelApprovalStatus,
    before: Option<BreakGlassPhase>,
    now: Timestamp,
) -> (BreakGlassPhase, String) {
    let name = bg.metadata.name.as_deref().unwrap_or_default();
    let releasing = decided.phase == Some(ApprovalPhase::BreakGlass)
        && decided.break_glass.as_ref().is_some_and(|r| r.name == name);
    let was_active = before == Some(BreakGlassPhase::Active);
    if releasing {
        return (
            BreakGlassPhase::Active,
            format!(
                "releases the approval without {} until {}, approved by {}; pass {} before then or every ModelDeployment serving it applies its onRevoke",
                release.skips.join(", "),
                release.until.0,
                release.approved_by.join(", "),
                release.skips.join(" and ")
            ),
        );
    }
    if was_active && decided.phase == Some(ApprovalPhase::Approved) {
        return (
            BreakGlassPhase::Ratified,
            format!(
                "ratified: {} passed at {now}, before the window ended at {}; the approval is Approved",
                release.skips.join(", "),
                release.until.0
            ),
        );
    }
    if let Some(other) = decided
        .break_glass
        .as_ref()
        .filter(|r| decided.phase == Some(ApprovalPhase::BreakGlass) && r.name != name)
    {
        let phase = if was_active {
            BreakGlassPhase::Lapsed
        } else {
            BreakGlassPhase::Refused
        };
        return (
            phase,
            format!(
                "break-glass {} releases this approval until {}",
                other.name, other.until.0
            ),
        );
    }
    if was_active || release.until.0 <= now {
        return (BreakGlassPhase::Lapsed, lapsed(release, decided, now));
    }
    let why = stands_in_the_way(decided).unwrap_or_else(|| not_covered(release, decided));
    (BreakGlassPhase::Refused, why)
}

/// Why an active release ended without ratification.
fn lapsed(release: &ReleasedBy, decided: &ModelApprovalStatus, now: Timestamp) -> String {
    let why = if release.until.0 <= now {
        format!(
            "the window ended at {} before {} passed",
            release.until.0,
            release.skips.join(", ")
        )
    } else {
        stands_in_the_way(decided).unwrap_or_else(|| not_covered(release, decided))
    };
    format!(
        "{why}; the release is revoked and every ModelDeployment serving it applies its onRevoke"
    )
}

/// Which open gates the release does not skip.
fn not_covered(release: &ReleasedBy, decided: &ModelApprovalStatus) -> String {
    let open: Vec<&str> = decided
        .observed_gates
        .iter()
        .filter(|g| g.status != TRUE && !release.skips.contains(&g.gate))
        .map(|g| g.gate.as_str())
        .collect();
    if open.iter().any(|g| {
        decided
            .observed_gates
            .iter()
            .any(|o| o.gate == *g && o.status == FALSE)
    }) {
        return "a gate it does not skip failed".into();
    }
    format!(
        "{} {} open and this break-glass does not skip {}; request one that names every open gate",
        open.join(", "),
        if open.len() == 1 { "is" } else { "are" },
        if open.len() == 1 { "it" } else { "them" }
    )
}

#[cfg(test)]
mod tests;
