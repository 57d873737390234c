//! Break-glass judged against pinned rules, and through the approval's
//! decision: released, ratified, lapsed, refused.

use jiff::{SignedDuration, Timestamp};
use kube::api::ObjectMeta;

use super::*;
use crate::api::approval::{ModelApprovalSpec, ModelArtifact};
use crate::api::breakglass::MESSAGE_LIMIT;
use crate::api::breakglass::{
    ApprovalRef, BreakGlassApproval, BreakGlassSpec, Identities, Identity, SkippedGate,
};
use crate::api::condition::UNKNOWN;
use crate::api::gates::Gate;
use crate::api::policy::PinnedPolicy;
use crate::approval::decide::{self, Input};
use crate::policy::pin;

fn t0() -> Timestamp {
    "2026-12-06T03:00:00Z"
        .parse()
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

fn rule() -> BreakGlassRule {
    BreakGlassRule {
        requesters: Identities {
            users: vec![],
            groups: vec!["incident-commanders".into()],
        },
        approvers: Identities {
            users: vec!["dana".into()],
            groups: vec!["sre-oncall".into()],
        },
        approvals: Some(1),
        max_duration: "8h".into(),
    }
}

fn pinned(rule: Option<BreakGlassRule>) -> PinnedPolicy {
    PinnedPolicy {
        name: "ml-prod/default".into(),
        break_glass: rule,
        ..pin::pin(None)
    }
}

fn spec() -> ModelApprovalSpec {
    ModelApprovalSpec {
        model: ModelArtifact {
            name: "fraud-detector".into(),
            version: "2.4.1".into(),
            uri: "s3://models/fraud-detector/2.4.1/".into(),
            digest: format!("sha256:{}", "1".repeat(64)),
        },
        valid_for: None,
        evidence: vec![],
        import_from: None,
    }
}

/// An approval status with every gate but `open` passed, under `policy`.
fn status_with_open(policy: PinnedPolicy, open: &[Gate], now: Timestamp) -> ModelApprovalStatus {
    let mut status = ModelApprovalStatus {
        policy: Some(std::sync::Arc::new(policy)),
        ..ModelApprovalStatus::default()
    };
    for g in Gate::ALL.into_iter().filter(|g| !open.contains(g)) {
        status.conditions.push(Condition {
            type_: g.condition_type().into(),
            status: TRUE.into(),
            reason: Some("Checked".into()),
            reviewer: Some(format!("{}-reviewer", g.condition_type())),
            ..Condition::default()
        });
    }
    step(&mut status, now, None);
    status
}

/// One reconcile of the approval, with `release`; the reviewers'
/// conditions stay.
fn step(status: &mut ModelApprovalStatus, now: Timestamp, release: Option<&ReleasedBy>) {
    let s = spec();
    let d = decide::decide(Input {
        spec: &s,
        generation: Some(1),
        status: Some(status),
        now,
        pin: None,
        artifact: None,
        created: None,
        release,
        imported: None,
    });
    let reviewers: Vec<Condition> = status
        .conditions
        .iter()
        .filter(|c| Gate::from_condition_type(&c.type_).is_some())
        .cloned()
        .collect();
    *status = d.status;
    status.conditions.extend(reviewers);
}

fn request(user: &str, groups: &[&str], skips: Vec<SkippedGate>, duration: &str) -> BreakGlass {
    BreakGlass {
        metadata: ObjectMeta {
            name: Some("inc-4711".into()),
            namespace: Some("ml-prod".into()),
            generation: Some(1),
            ..ObjectMeta::default()
        },
        spec: BreakGlassSpec {
            approval_ref: ApprovalRef {
                name: "fraud-detector-2.4.1".into(),
            },
            reason: "INC-4711: 2.4.0 blocks every card payment in Ireland".into(),
            duration: duration.into(),
            skips,
            requested_by: Identity {
                user: user.into(),
                groups: groups.iter().map(|g| g.to_string()).collect(),
            },
        },
        status: None,
    }
}

/// Erin's request (an incident commander) to skip LegalReview for
/// `duration`.
fn erins(duration: &str) -> BreakGlass {
    request(
        "erin",
        &["incident-commanders"],
        vec![SkippedGate::LegalReview],
        duration,
    )
}

fn approve(bg: &mut BreakGlass, user: &str, groups: &[&str], at: Timestamp) {
    let status = bg.status.get_or_insert_with(Default::default);
    status.approvals.push(BreakGlassApproval {
        user: user.into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        message: None,
        time: Some(Time(at)),
    });
}

/// Writes `outcome` into the BreakGlass as the controller would.
fn settle(
    bg: &mut BreakGlass,
    authority: &Authority,
    decided: &ModelApprovalStatus,
    now: Timestamp,
) {
    let approvals = bg
        .status
        .as_ref()
        .map(|s| s.approvals.clone())
        .unwrap_or_default();
    let mut status = outcome(bg, authority, (decided, "uid-1"), now);
    status.approvals = approvals;
    bg.status = Some(status);
}

/// The reason of the newest history entry.
fn last_reason(status: &ModelApprovalStatus) -> Option<String> {
    status.history.last()?.reason.clone()
}

fn refused(a: &Authority) -> String {
    match a {
        Authority::Refused(why) => why.clone(),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// LegalReview open, Erin's 4 h break-glass skipping it approved by Bob
/// at t0, and the approval released by it.
struct Released {
    status: ModelApprovalStatus,
    bg: BreakGlass,
    judged: Authority,
    release: ReleasedBy,
}

fn released() -> Released {
    let mut status = status_with_open(pinned(Some(rule())), &[Gate::Legal], t0());
    let mut bg = erins("4h");
    approve(&mut bg, "bob", &["sre-oncall"], t0());
    let judged = authority(&bg, Some(&status), t0());
    let Authority::Approved(release) = judged.clone() else {
        panic!("expected approval, got {judged:?}")
    };
    step(&mut status, t0(), Some(&release));
    settle(&mut bg, &judged, &status, t0());
    Released {
        status,
        bg,
        judged,
        release,
    }
}

#[test]
fn a_policy_without_a_break_glass_rule_refuses_every_request() {
    let status = status_with_open(pinned(None), &[Gate::Legal], t0());
    let bg = erins("4h");
    let why = refused(&authority(&bg, Some(&status), t0()));
    assert!(why.contains("allows no break-glass"), "{why}");
}

#[test]
fn the_models_owner_alone_is_refused_and_approves_nothing() {
    let status = status_with_open(pinned(Some(rule())), &[Gate::Legal], t0());
    // The model's owner is no requester under the policy…
    let mut bg = request(
        "olivia",
        &["model-owners"],
        vec![SkippedGate::LegalReview],
        "4h",
    );
    approve(&mut bg, "olivia", &["model-owners"], t0());
    let why = refused(&authority(&bg, Some(&status), t0()));
    assert!(why.contains("olivia may not request"), "{why}");
    assert!(why.contains("incident-commanders"), "{why}");
    // …and a requester's own approval never counts.
    let mut own = request(
        "erin",
        &["incident-commanders", "sre-oncall"],
        vec![SkippedGate::LegalReview],
        "4h",
    );
    approve(&mut own, "erin", &["sre-oncall"], t0());
    match authority(&own, Some(&status), t0()) {
        Authority::Awaiting(why) => assert!(
            why.contains("erin's does not count (the requester's own)"),
            "{why}"
        ),
        other => panic!("expected to wait, got {other:?}"),
    }
}

#[test]
fn a_window_longer_than_the_policy_allows_is_refused() {
    let status = status_with_open(pinned(Some(rule())), &[Gate::Legal], t0());
    let bg = erins("9h");
    assert!(refused(&authority(&bg, Some(&status), t0())).contains("maxDuration 8h"));
}

#[test]
fn one_on_call_approval_releases_the_approval_until_the_window_ends() {
    let mut status = status_with_open(pinned(Some(rule())), &[Gate::Legal], t0());
    assert_eq!(status.phase, Some(ApprovalPhase::Pending));
    let mut bg = erins("4h");
    approve(&mut bg, "bob", &["sre-oncall"], t0());
    let now = t0() + SignedDuration::from_mins(1);
    let judged = authority(&bg, Some(&status), now);
    let Authority::Approved(r) = &judged else {
        panic!("expected approval, got {judged:?}")
    };
    assert_eq!(r.approved_by, vec!["bob".to_string()]);
    assert_eq!(r.until.0, now + SignedDuration::from_hours(4));
    step(&mut status, now, Some(r));
    assert_eq!(status.phase, Some(ApprovalPhase::BreakGlass));
    let entry = status
        .history
        .last()
        .cloned()
        .unwrap_or_else(|| panic!("no history"));
    assert_eq!(
        (entry.from.as_str(), entry.to.as_str()),
        ("Pending", "BreakGlass")
    );
    assert_eq!(entry.reviewer.as_deref(), Some("erin"));
    assert_eq!(
        status.break_glass.as_ref().map(|b| b.name.as_str()),
        Some("inc-4711")
    );
    settle(&mut bg, &judged, &status, now);
    let bg_status = bg.status.clone().unwrap_or_default();
    assert_eq!(bg_status.phase, Some(BreakGlassPhase::Active));
    assert_eq!(bg_status.active_since, Some(Time(now)));
    // The window stays where it began on later reconciles.
    let later = now + SignedDuration::from_hours(1);
    match authority(&bg, Some(&status), later) {
        Authority::Approved(again) => assert_eq!(again.until, r.until),
        other => panic!("expected approval, got {other:?}"),
    }
}

#[test]
fn a_gate_it_does_not_skip_keeps_the_approval_pending() {
    let mut status = status_with_open(pinned(Some(rule())), &[Gate::Legal, Gate::Security], t0());
    let mut bg = erins("4h");
    approve(&mut bg, "dana", &[], t0());
    let judged = authority(&bg, Some(&status), t0());
    let Authority::Approved(r) = &judged else {
        panic!("expected approval, got {judged:?}")
    };
    step(&mut status, t0(), Some(r));
    assert_eq!(status.phase, Some(ApprovalPhase::Pending));
    settle(&mut bg, &judged, &status, t0());
    let bg_status = bg.status.unwrap_or_default();
    assert_eq!(bg_status.phase, Some(BreakGlassPhase::Refused));
    assert!(
        bg_status
            .message
            .unwrap_or_default()
            .contains("SecurityReview is open")
    );
}

#[test]
fn ratification_in_the_window_approves_and_clears_the_mark() {
    let Released {
        mut status,
        mut bg,
        judged,
        release: r,
    } = released();
    status.conditions.push(Condition {
        type_: Gate::Legal.condition_type().into(),
        status: TRUE.into(),
        reviewer: Some("lena".into()),
        ..Condition::default()
    });
    let now = t0() + SignedDuration::from_hours(2);
    step(&mut status, now, Some(&r));
    assert_eq!(status.phase, Some(ApprovalPhase::Approved));
    assert_eq!(last_reason(&status).as_deref(), Some("BreakGlassRatified"));
    settle(&mut bg, &judged, &status, now);
    assert_eq!(
        bg.status.and_then(|s| s.phase),
        Some(BreakGlassPhase::Ratified)
    );
}

#[test]
fn no_ratification_lapses_at_the_window_and_never_releases_again() {
    let Released {
        mut status, mut bg, ..
    } = released();
    let end = t0() + SignedDuration::from_hours(4);
    let judged = authority(&bg, Some(&status), end);
    // The window is over: nothing is released.
    assert!(release([&judged], end).is_none());
    step(&mut status, end, None);
    assert_eq!(status.phase, Some(ApprovalPhase::Pending));
    assert_eq!(last_reason(&status).as_deref(), Some("BreakGlassLapsed"));
    settle(&mut bg, &judged, &status, end);
    let bg_status = bg.status.clone().unwrap_or_default();
    assert_eq!(bg_status.phase, Some(BreakGlassPhase::Lapsed));
    assert!(
        bg_status
            .message
            .unwrap_or_default()
            .contains("window ended")
    );
    // Lapsed is final, even if more approvals arrive.
    approve(&mut bg, "dana", &[], end);
    let again = authority(&bg, Some(&status), end);
    settle(&mut bg, &again, &status, end + SignedDuration::from_mins(1));
    assert_eq!(
        bg.status.and_then(|s| s.phase),
        Some(BreakGlassPhase::Lapsed)
    );
}

#[test]
fn a_failed_gate_is_never_skipped() {
    let mut status = status_with_open(pinned(Some(rule())), &[Gate::Legal], t0());
    status.conditions.push(Condition {
        type_: Gate::Legal.condition_type().into(),
        status: FALSE.into(),
        reviewer: Some("lena".into()),
        ..Condition::default()
    });
    step(&mut status, t0(), None);
    let mut bg = erins("4h");
    approve(&mut bg, "bob", &["sre-oncall"], t0());
    let judged = authority(&bg, Some(&status), t0());
    let Authority::Approved(r) = judged.clone() else {
        panic!("expected approval")
    };
    step(&mut status, t0(), Some(&r));
    assert_eq!(status.phase, Some(ApprovalPhase::Rejected));
    settle(&mut bg, &judged, &status, t0());
    let bg_status = bg.status.unwrap_or_default();
    assert_eq!(bg_status.phase, Some(BreakGlassPhase::Refused));
    assert!(bg_status.message.unwrap_or_default().contains("Rejected"));
}

#[test]
fn a_break_glass_releases_only_the_approval_it_was_requested_for() {
    let status = status_with_open(pinned(Some(rule())), &[Gate::Legal], t0());
    let mut bg = erins("4h");
    approve(&mut bg, "bob", &["sre-oncall"], t0());
    let judged = authority(&bg, Some(&status), t0());
    settle(&mut bg, &judged, &status, t0());
    assert_eq!(
        bg.status.as_ref().and_then(|s| s.approval_uid.as_deref()),
        Some("uid-1")
    );
    assert_eq!(bound_elsewhere(&bg, "uid-1"), None);
    let why = bound_elsewhere(&bg, "uid-2").unwrap_or_default();
    assert!(why.contains("deleted and created again"), "{why}");
}

/// The skipped gate's condition, as its reviewer sets it.
fn legal(status: &mut ModelApprovalStatus, outcome: &str) {
    status
        .conditions
        .retain(|c| c.type_ != Gate::Legal.condition_type());
    status.conditions.push(Condition {
        type_: Gate::Legal.condition_type().into(),
        status: outcome.into(),
        reviewer: Some("lena".into()),
        ..Condition::default()
    });
}

/// One reconcile of the approval and its break-glass at `now`: the release
/// as the controller picks it, the decision, the BreakGlass's status.
fn reconcile(status: &mut ModelApprovalStatus, bg: &mut BreakGlass, now: Timestamp) {
    let judged = authority(bg, Some(status), now);
    let released = release([&judged], now).cloned();
    step(status, now, released.as_ref());
    settle(bg, &judged, status, now);
}

#[test]
fn a_break_glass_that_ended_never_releases_again_inside_its_window() {
    let an_hour = SignedDuration::from_hours(1);
    // Lapsed: a reviewer failed the skipped gate in the window, then reset
    // it to Unknown; Ratified: the skipped gate passed, then was reset.
    for (ended_by, want) in [
        (FALSE, BreakGlassPhase::Lapsed),
        (TRUE, BreakGlassPhase::Ratified),
    ] {
        let mut status = status_with_open(pinned(Some(rule())), &[Gate::Legal], t0());
        let mut bg = request(
            "erin",
            &["incident-commanders"],
            vec![SkippedGate::LegalReview],
            "4h",
        );
        approve(&mut bg, "bob", &["sre-oncall"], t0());
        reconcile(&mut status, &mut bg, t0());
        assert_eq!(status.phase, Some(ApprovalPhase::BreakGlass));
        legal(&mut status, ended_by);
        reconcile(&mut status, &mut bg, t0() + an_hour);
        assert_eq!(bg.status.as_ref().and_then(|s| s.phase), Some(want));
        legal(&mut status, UNKNOWN);
        reconcile(&mut status, &mut bg, t0() + an_hour * 2);
        assert_eq!(
            status.phase,
            Some(ApprovalPhase::Pending),
            "a {want:?} break-glass released the approval again"
        );
        assert_eq!(bg.status.as_ref().and_then(|s| s.phase), Some(want));
    }
}

#[test]
fn a_refused_break_glass_never_releases_once_the_other_gates_pass() {
    let mut status = status_with_open(pinned(Some(rule())), &[Gate::Legal, Gate::Security], t0());
    let mut bg = request(
        "erin",
        &["incident-commanders"],
        vec![SkippedGate::LegalReview],
        "4h",
    );
    approve(&mut bg, "bob", &["sre-oncall"], t0());
    reconcile(&mut status, &mut bg, t0());
    assert_eq!(
        bg.status.as_ref().and_then(|s| s.phase),
        Some(BreakGlassPhase::Refused)
    );
    status.conditions.push(Condition {
        type_: Gate::Security.condition_type().into(),
        status: TRUE.into(),
        reviewer: Some("sam".into()),
        ..Condition::default()
    });
    reconcile(&mut status, &mut bg, t0() + SignedDuration::from_mins(10));
    assert_eq!(status.phase, Some(ApprovalPhase::Pending));
    assert_eq!(
        bg.status.as_ref().and_then(|s| s.phase),
        Some(BreakGlassPhase::Refused)
    );
}

#[test]
fn a_status_message_fits_its_schema_whatever_the_policy_and_approvers_name() {
    let mut large = rule();
    large.requesters.users = (0..32)
        .map(|i| format!("incident-commander-{i:02}@payments-platform.eu-west.example.com"))
        .collect();
    let status = status_with_open(pinned(Some(large)), &[Gate::Legal], t0());
    // Refused: the message names every requester the policy names.
    let mut refused_bg = request("olivia", &[], vec![SkippedGate::LegalReview], "4h");
    let judged = authority(&refused_bg, Some(&status), t0());
    assert!(refused(&judged).chars().count() > MESSAGE_LIMIT);
    settle(&mut refused_bg, &judged, &status, t0());
    // Awaiting: the message names every approval that does not count.
    let mut awaiting = request(
        "erin",
        &["incident-commanders"],
        vec![SkippedGate::LegalReview],
        "4h",
    );
    for i in 0..16 {
        approve(
            &mut awaiting,
            &format!("{}-{i}", "x".repeat(200)),
            &[],
            t0(),
        );
    }
    let judged = authority(&awaiting, Some(&status), t0());
    settle(&mut awaiting, &judged, &status, t0());
    for (bg, phase) in [
        (refused_bg, BreakGlassPhase::Refused),
        (awaiting, BreakGlassPhase::AwaitingApproval),
    ] {
        let s = bg.status.unwrap_or_default();
        let message = s.message.unwrap_or_default();
        assert_eq!(s.phase, Some(phase));
        assert_eq!(message.chars().count(), MESSAGE_LIMIT, "{message}");
        assert!(message.ends_with('…'), "{message}");
    }
}
