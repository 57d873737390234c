//! Unit and property tests of the approval decision.

use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;

use super::*;
use crate::api::approval::ModelArtifact;

fn spec(valid_for: Option<&str>) -> ModelApprovalSpec {
    ModelApprovalSpec {
        model: ModelArtifact {
            name: "fraud-detector".into(),
            version: "2.4.0".into(),
            uri: "s3://models/fraud-detector/2.4.0/".into(),
            digest: format!("sha256:{}", "0".repeat(64)),
        },
        valid_for: valid_for.map(str::to_string),
        evidence: vec![],
        import_from: None,
    }
}

fn t0() -> Timestamp {
    "2026-11-25T10:00:00Z"
        .parse()
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

fn gate(g: Gate, status: &str, reviewer: &str) -> Condition {
    Condition {
        type_: g.condition_type().into(),
        status: status.into(),
        reason: Some("Checked".into()),
        message: Some(format!("{g} checked")),
        reviewer: Some(reviewer.into()),
        ..Condition::default()
    }
}

/// Puts the reviewer's condition into a status, replacing one of its type.
fn set(status: &mut ModelApprovalStatus, c: Condition) {
    status.conditions.retain(|x| x.type_ != c.type_);
    status.conditions.push(c);
}

/// One reconcile: decide, then merge the operator's fields into the status
/// as server-side apply would (the reviewers' conditions stay).
fn step(spec: &ModelApprovalSpec, status: &mut ModelApprovalStatus, now: Timestamp) -> Decision {
    step_under(spec, status, now, None, None)
}

/// [`step`] under the pinned rules `pin`, for an approval created at
/// `created`.
fn step_under(
    spec: &ModelApprovalSpec,
    status: &mut ModelApprovalStatus,
    now: Timestamp,
    pin: Option<&PinnedPolicy>,
    created: Option<Timestamp>,
) -> Decision {
    let d = decide(Input {
        spec,
        generation: Some(1),
        status: Some(status),
        now,
        pin,
        artifact: None,
        created,
        release: None,
        imported: None,
    });
    applied(status, d)
}

/// `d` merged into `status` as server-side apply would: the reviewers'
/// conditions stay.
fn applied(status: &mut ModelApprovalStatus, d: Decision) -> Decision {
    let reviewers: Vec<Condition> = status
        .conditions
        .iter()
        .filter(|c| !is_operator_condition(&c.type_))
        .cloned()
        .collect();
    *status = d.status.clone();
    status.conditions.extend(reviewers);
    d
}

#[test]
fn a_new_approval_is_pending_without_history() {
    let s = spec(None);
    let d = decide(Input {
        spec: &s,
        generation: Some(1),
        status: None,
        now: t0(),
        pin: None,
        artifact: None,
        created: None,
        release: None,
        imported: None,
    });
    assert_eq!(d.status.phase, Some(ApprovalPhase::Pending));
    assert!(d.transitions.is_empty());
    assert!(d.changed);
    let approved = condition::find(&d.status.conditions, APPROVED_CONDITION)
        .cloned()
        .unwrap_or_default();
    assert_eq!(approved.status, UNKNOWN);
    assert_eq!(approved.reason.as_deref(), Some("AwaitingReview"));
    assert!(
        approved.message.unwrap_or_default().contains(
            "TechnicalReview, FairnessReview, SecurityReview, LegalReview, BusinessReview"
        )
    );
    assert_eq!(d.status.gates_passed.as_deref(), Some("0/5"));
}

#[test]
fn five_gates_one_by_one_give_six_history_entries_in_order() {
    let s = spec(Some("2160h"));
    let mut status = ModelApprovalStatus::default();
    step(&s, &mut status, t0());
    for (i, g) in Gate::ALL.into_iter().enumerate() {
        set(&mut status, gate(g, TRUE, &format!("reviewer-{i}")));
        let d = step(
            &s,
            &mut status,
            t0() + SignedDuration::from_mins(i as i64 + 1),
        );
        assert_eq!(d.transitions[0].reason, "GatePassed");
        assert!(
            d.transitions[0]
                .message
                .contains(&format!("by reviewer-{i}"))
        );
    }
    assert_eq!(status.phase, Some(ApprovalPhase::Approved));
    assert_eq!(status.gates_passed.as_deref(), Some("5/5"));
    let subjects: Vec<&str> = status.history.iter().map(|h| h.subject.as_str()).collect();
    assert_eq!(
        subjects,
        [
            "TechnicalReview",
            "FairnessReview",
            "SecurityReview",
            "LegalReview",
            "BusinessReview",
            "Phase"
        ]
    );
    assert_eq!(status.history[5].to, "Approved");
    let approved_at = status.approved_at.clone().map(|t| t.0);
    assert_eq!(approved_at, Some(t0() + SignedDuration::from_mins(5)));
    assert_eq!(
        status.expires_at.clone().map(|t| t.0),
        approved_at.map(|a| a + SignedDuration::from_hours(2160))
    );
}

#[test]
fn a_failed_gate_rejects_and_names_the_gate() {
    let s = spec(None);
    let mut status = ModelApprovalStatus::default();
    for g in Gate::ALL {
        set(&mut status, gate(g, TRUE, g.short_name()));
    }
    step(&s, &mut status, t0());
    set(&mut status, gate(Gate::Security, FALSE, "carol"));
    let d = step(&s, &mut status, t0());
    assert_eq!(status.phase, Some(ApprovalPhase::Rejected));
    let approved = condition::find(&status.conditions, APPROVED_CONDITION)
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (approved.status.as_str(), approved.reason.as_deref()),
        (FALSE, Some("SecurityReviewFailed"))
    );
    assert!(approved.message.unwrap_or_default().contains("by carol"));
    let reasons: Vec<(&str, Severity)> = d
        .transitions
        .iter()
        .map(|t| (t.reason.as_str(), t.severity))
        .collect();
    assert_eq!(
        reasons,
        [
            ("GateFailed", Severity::Warning),
            ("Rejected", Severity::Warning)
        ]
    );
    // back to True: approved again, approvedAt unchanged
    let first_approval = status.approved_at.clone();
    set(&mut status, gate(Gate::Security, TRUE, "carol"));
    step(&s, &mut status, t0() + SignedDuration::from_hours(1));
    assert_eq!(status.phase, Some(ApprovalPhase::Approved));
    assert_eq!(status.approved_at, first_approval);
}

#[test]
fn expiry_is_final() {
    let s = spec(Some("5s"));
    let mut status = ModelApprovalStatus::default();
    for g in Gate::ALL {
        set(&mut status, gate(g, TRUE, g.short_name()));
    }
    let d = step(&s, &mut status, t0());
    assert_eq!(d.expires_at, Some(t0() + SignedDuration::from_secs(5)));
    assert_eq!(
        until(t0() + SignedDuration::from_secs(5), t0()),
        Some(std::time::Duration::from_secs(5))
    );
    let d = step(&s, &mut status, t0() + SignedDuration::from_secs(4));
    assert!(!d.changed && d.transitions.is_empty());
    let d = step(&s, &mut status, t0() + SignedDuration::from_secs(5));
    assert_eq!(status.phase, Some(ApprovalPhase::Expired));
    assert_eq!(
        d.transitions
            .last()
            .map(|t| (t.reason.as_str(), t.severity)),
        Some(("Expired", Severity::Warning))
    );
    assert_eq!(d.expires_at, None);
    let approved = condition::find(&status.conditions, APPROVED_CONDITION)
        .cloned()
        .unwrap_or_default();
    assert_eq!(approved.reason.as_deref(), Some("Expired"));
}

#[test]
fn malformed_conditions_are_reported_and_ignored() {
    let s = spec(None);
    let mut status = ModelApprovalStatus::default();
    for g in Gate::ALL {
        set(&mut status, gate(g, TRUE, g.short_name()));
    }
    set(&mut status, gate(Gate::Legal, "Yes", "dave"));
    set(
        &mut status,
        Condition {
            reviewer: None,
            ..gate(Gate::Business, TRUE, "")
        },
    );
    set(&mut status, gate(Gate::Technical, TRUE, "tom"));
    status
        .conditions
        .push(Condition::new("ComplianceReview", TRUE, "Ok", "fine"));
    step(&s, &mut status, t0());
    assert_eq!(status.phase, Some(ApprovalPhase::Pending));
    assert_eq!(status.gates_passed.as_deref(), Some("3/5"));
    let valid = condition::find(&status.conditions, REVIEWS_VALID_CONDITION)
        .cloned()
        .unwrap_or_default();
    assert_eq!(valid.status, FALSE);
    let message = valid.message.unwrap_or_default();
    assert!(
        message.contains("\"ComplianceReview\" is not a gate"),
        "{message}"
    );
    assert!(
        message.contains("LegalReview has status \"Yes\""),
        "{message}"
    );
    assert!(
        message.contains("BusinessReview is True but names no reviewer"),
        "{message}"
    );
}

#[test]
fn history_is_bounded_and_counts_what_it_drops() {
    let s = spec(None);
    let mut status = ModelApprovalStatus::default();
    for i in 0..40 {
        let v = if i % 2 == 0 { TRUE } else { FALSE };
        set(&mut status, gate(Gate::Technical, v, "tom"));
        step(&s, &mut status, t0() + SignedDuration::from_secs(i));
    }
    assert_eq!(status.history.len(), HISTORY_LIMIT);
    let total = status.history.len() as i64 + status.history_dropped.unwrap_or(0);
    // 40 gate flips, 39 phase changes (the first True leaves it Pending)
    assert_eq!(total, 40 + 39);
    assert_eq!(
        status.history.last().map(|h| h.to.as_str()),
        Some(ApprovalPhase::Rejected.as_str())
    );
}

#[test]
fn long_messages_are_cut_in_history() {
    let s = spec(None);
    let mut status = ModelApprovalStatus::default();
    set(
        &mut status,
        Condition {
            message: Some("é".repeat(5000)),
            ..gate(Gate::Technical, TRUE, "tom")
        },
    );
    step(&s, &mut status, t0());
    let m = status.history[0].message.clone().unwrap_or_default();
    assert_eq!(m.chars().count(), HISTORY_TEXT_LIMIT + 1);
}

#[test]
fn valid_for_parses_the_crd_units() {
    assert_eq!(
        parse_valid_for("2160h"),
        Some(SignedDuration::from_hours(2160))
    );
    assert_eq!(
        parse_valid_for("720h30m"),
        Some(SignedDuration::from_mins(720 * 60 + 30))
    );
    assert_eq!(parse_valid_for("1500ms"), None);
    assert_eq!(parse_valid_for("0s"), None);
    assert_eq!(parse_valid_for("90d-ish"), None);
}

/// A validFor the operator cannot read (stored before the CRD refused it)
/// never means "approved forever": every gate passes, yet the approval is
/// held back with a condition that names the accepted form, and the
/// policy's cap does not paper over it.
#[test]
fn an_unreadable_valid_for_is_never_approved_forever() {
    for (own, cap) in [
        ("1s1m", None),
        ("1m2159h", Some("2160h")),
        ("5s", Some("1s1m")),
    ] {
        let s = spec(Some(own));
        let pin = PinnedPolicy {
            valid_for: cap.map(str::to_string),
            ..PinnedPolicy::default()
        };
        let mut status = ModelApprovalStatus::default();
        for g in Gate::ALL {
            set(&mut status, gate(g, TRUE, "rita"));
        }
        let d = decide(Input {
            spec: &s,
            generation: Some(1),
            status: Some(&status),
            now: t0(),
            pin: cap.map(|_| &pin),
            artifact: None,
            created: None,
            release: None,
            imported: None,
        });
        assert_eq!(
            d.status.phase,
            Some(ApprovalPhase::Pending),
            "{own} {cap:?}"
        );
        assert_eq!(d.status.approved_at, None);
        let approved = condition::find(&d.status.conditions, APPROVED_CONDITION).cloned();
        let approved = approved.unwrap_or_default();
        assert_eq!(approved.status, FALSE);
        assert_eq!(approved.reason.as_deref(), Some("InvalidValidFor"));
        let message = approved.message.unwrap_or_default();
        assert!(message.contains("such as 2160h"), "{message}");
    }
}

fn arb_status() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just(TRUE), Just(FALSE), Just(UNKNOWN), Just("absent")]
}

fn arb_gates() -> impl Strategy<Value = Vec<(&'static str, u8)>> {
    proptest::collection::vec((arb_status(), 0u8..3), 5)
}

fn apply_gates(status: &mut ModelApprovalStatus, gates: &[(&'static str, u8)]) {
    for (g, (s, who)) in Gate::ALL.into_iter().zip(gates) {
        status.conditions.retain(|c| c.type_ != g.condition_type());
        if *s != "absent" {
            status
                .conditions
                .push(gate(g, s, &format!("reviewer-{who}")));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Approved iff all five gates True and not expired; any False gives
    /// Rejected (unless expired); the same input twice changes nothing;
    /// history only grows by appending (until the bound).
    #[test]
    fn decision_laws(rounds in proptest::collection::vec((arb_gates(), 0i64..4000), 1..12), valid_secs in proptest::option::of(1i64..5000)) {
        let valid_for = valid_secs.map(|s| format!("{s}s"));
        let s = spec(valid_for.as_deref());
        let mut status = ModelApprovalStatus::default();
        let mut now = t0();
        let mut ever_expired = false;
        for (gates, advance) in rounds {
            now += SignedDuration::from_secs(advance);
            apply_gates(&mut status, &gates);
            let before = status.history.clone();
            let d = step(&s, &mut status, now);
            let phase = status.phase.unwrap_or(ApprovalPhase::Pending);

            let all_true = gates.iter().all(|(s, _)| *s == TRUE);
            let any_false = gates.iter().any(|(s, _)| *s == FALSE);
            let lapsed = status.expires_at.as_ref().is_some_and(|e| now >= e.0);
            if ever_expired || lapsed {
                prop_assert_eq!(phase, ApprovalPhase::Expired);
            } else if any_false {
                prop_assert_eq!(phase, ApprovalPhase::Rejected);
            } else {
                prop_assert_eq!(phase == ApprovalPhase::Approved, all_true);
            }
            ever_expired |= phase == ApprovalPhase::Expired;
            let approved = condition::find(&status.conditions, APPROVED_CONDITION).map(|c| c.status.clone());
            prop_assert_eq!(approved.as_deref() == Some(TRUE), phase == ApprovalPhase::Approved);

            // history grows by appending exactly the transitions
            if before.len() + d.transitions.len() <= HISTORY_LIMIT {
                prop_assert_eq!(&status.history[..before.len()], &before[..]);
                prop_assert_eq!(status.history.len(), before.len() + d.transitions.len());
            } else {
                prop_assert_eq!(status.history.len(), HISTORY_LIMIT);
            }

            // idempotent: the same input again is no change and no transition
            let again = decide(Input { spec: &s, generation: Some(1), status: Some(&status), now, pin: None, artifact: None, created: None, release: None, imported: None });
            prop_assert!(!again.changed, "second decide changed status");
            prop_assert!(again.transitions.is_empty());
        }
    }
}

/// One reconcile under a policy whose SecurityReview is due 72h after
/// creation (t0) and expires the approval after 720h.
fn step_with_deadline(status: &mut ModelApprovalStatus, now: Timestamp) -> Decision {
    let mut pin = crate::policy::pin::pin(None);
    if let Some(g) = pin.gates.iter_mut().find(|g| g.gate == "SecurityReview") {
        g.deadline = Some(crate::api::policy::Deadline {
            review_within: "72h".into(),
            escalate_to: vec!["oncall@example.com".into()],
            expire_after: Some("720h".into()),
        });
    }
    step_under(&spec(None), status, now, Some(&pin), Some(t0()))
}

#[test]
fn an_overdue_gate_is_announced_once_and_never_passed() {
    let mut status = ModelApprovalStatus::default();
    let d = step_with_deadline(&mut status, t0() + SignedDuration::from_hours(1));
    assert!(status.overdue.is_empty());
    assert_eq!(d.next_deadline, Some(t0() + SignedDuration::from_hours(72)));
    let late = t0() + SignedDuration::from_hours(80);
    let d = step_with_deadline(&mut status, late);
    let overdue: Vec<&Transition> = d.transitions.iter().filter(|t| t.to == "Overdue").collect();
    assert_eq!(overdue.len(), 1, "{:?}", d.transitions);
    assert_eq!(overdue[0].subject, "SecurityReview");
    assert_eq!(overdue[0].severity, Severity::Warning);
    assert!(
        overdue[0].message.contains("told oncall@example.com"),
        "{}",
        overdue[0].message
    );
    assert_eq!(status.overdue.len(), 1);
    assert_eq!(
        status.phase,
        Some(ApprovalPhase::Pending),
        "a deadline never passes a gate"
    );
    assert!(
        status
            .history
            .iter()
            .any(|h| h.subject == "SecurityReview" && h.to == "Overdue")
    );
    let again = step_with_deadline(&mut status, late + SignedDuration::from_hours(1));
    assert!(
        again.transitions.is_empty(),
        "announced once: {:?}",
        again.transitions
    );
    // Decided: no longer overdue.
    set(&mut status, gate(Gate::Security, TRUE, "sam"));
    step_with_deadline(&mut status, late + SignedDuration::from_hours(2));
    assert!(status.overdue.is_empty());
}

#[test]
fn an_undecided_gate_past_expire_after_expires_the_approval_for_good() {
    let mut status = ModelApprovalStatus::default();
    step_with_deadline(&mut status, t0() + SignedDuration::from_hours(100));
    let d = step_with_deadline(&mut status, t0() + SignedDuration::from_hours(721));
    assert_eq!(status.phase, Some(ApprovalPhase::Expired));
    let approved = condition::find(&status.conditions, APPROVED_CONDITION)
        .cloned()
        .unwrap_or_default();
    assert_eq!(approved.reason.as_deref(), Some(TIMED_OUT));
    assert!(
        approved
            .message
            .unwrap_or_default()
            .contains("SecurityReview was still undecided")
    );
    assert!(
        d.transitions
            .iter()
            .any(|t| t.subject == PHASE_SUBJECT && t.to == "Expired")
    );
    assert!(status.overdue.is_empty());
    // A decision afterwards does not reopen it, and the reason stays.
    for g in Gate::ALL {
        set(&mut status, gate(g, TRUE, &format!("r-{}", g.short_name())));
    }
    step_with_deadline(&mut status, t0() + SignedDuration::from_hours(722));
    assert_eq!(status.phase, Some(ApprovalPhase::Expired));
    assert_eq!(status.approved_at, None, "never approved after it expired");
    let approved = condition::find(&status.conditions, APPROVED_CONDITION)
        .cloned()
        .unwrap_or_default();
    assert_eq!(approved.reason.as_deref(), Some(TIMED_OUT));
}

/// An imported approval whose publisher's newest record says `phase`
/// with every gate at `gates`.
fn mirrored(phase: &str, seq: i64, gates: &str, expires: Option<Timestamp>) -> ImportedApproval {
    ImportedApproval {
        publisher: "cluster-a".into(),
        approval: "ml-prod/fd".into(),
        uid: Some("u-a".into()),
        phase: Some(phase.into()),
        seq: Some(seq),
        time: Some(Time(t0())),
        expires_at: expires.map(Time),
        referrer: Some("sha256:r".into()),
        gates: Gate::ALL
            .map(|g| crate::api::fleet::MirroredGate {
                gate: g.condition_type().into(),
                status: gates.into(),
                reviewer: Some("ana".into()),
            })
            .to_vec(),
        ..ImportedApproval::default()
    }
}

fn step_imported(
    status: &mut ModelApprovalStatus,
    now: Timestamp,
    pin: &PinnedPolicy,
    m: Option<&ImportedApproval>,
) -> Decision {
    let mut s = spec(None);
    s.import_from = Some(crate::api::fleet::Import {
        publisher: "cluster-a".into(),
        approval: "ml-prod/fd".into(),
    });
    let d = decide(Input {
        spec: &s,
        generation: Some(1),
        status: Some(status),
        now,
        pin: Some(pin),
        artifact: None,
        created: None,
        release: None,
        imported: m,
    });
    applied(status, d)
}

#[test]
fn an_imported_approval_passes_only_while_its_publishers_does_and_lapses_with_it() {
    let mut policy = crate::api::policy::ApprovalPolicy::new("default", Default::default());
    policy.spec.local_gates = vec!["BusinessReview".into()];
    let pin = crate::policy::pin::pin_for_approval(Some(&policy), true);
    let mut status = ModelApprovalStatus::default();
    // Nothing honoured yet: pending, and said why.
    step_imported(&mut status, t0(), &pin, None);
    assert_eq!(status.phase, Some(ApprovalPhase::Pending));
    let approved = condition::find(&status.conditions, APPROVED_CONDITION).cloned();
    assert_eq!(
        approved.and_then(|c| c.reason),
        Some("ImportNotApproved".into())
    );
    // The publisher approved: the mirrored gates pass, the local one waits.
    let expiry = t0() + SignedDuration::from_hours(48);
    let upstream = mirrored("Approved", 7, TRUE, Some(expiry));
    step_imported(&mut status, t0(), &pin, Some(&upstream));
    assert_eq!(status.phase, Some(ApprovalPhase::Pending));
    assert_eq!(status.waiting_on.as_deref(), Some("BusinessReview"));
    let legal = condition::find(&status.conditions, "LegalReview").cloned();
    assert_eq!(legal.as_ref().map(|c| c.status.as_str()), Some(TRUE));
    assert_eq!(
        legal.and_then(|c| c.reviewer),
        Some("ana (via cluster-a)".into())
    );
    set(&mut status, gate(Gate::Business, TRUE, "bo"));
    let d = step_imported(&mut status, t0(), &pin, Some(&upstream));
    assert_eq!(status.phase, Some(ApprovalPhase::Approved));
    assert_eq!(
        d.expires_at,
        Some(expiry),
        "it lapses when the publisher's does"
    );
    // The publisher's approval expired: held back, not Approved.
    let expired = mirrored("Expired", 9, TRUE, None);
    step_imported(&mut status, t0(), &pin, Some(&expired));
    assert_eq!(status.phase, Some(ApprovalPhase::Pending));
    // Revoked by a failed gate upstream: rejected here.
    let rejected = mirrored("Rejected", 11, FALSE, None);
    step_imported(&mut status, t0(), &pin, Some(&rejected));
    assert_eq!(status.phase, Some(ApprovalPhase::Rejected));
    // Approved again, and the registry then unreachable: it still lapses
    // on time.
    step_imported(&mut status, t0(), &pin, Some(&upstream));
    assert_eq!(status.phase, Some(ApprovalPhase::Approved));
    step_imported(&mut status, expiry, &pin, None);
    assert_eq!(status.phase, Some(ApprovalPhase::Expired));
}
