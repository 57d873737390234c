use super::*;
use crate::api::gates::Gate;
use crate::api::policy::Deadline;

fn policy(deadline: Deadline) -> PinnedPolicy {
    let mut p = crate::policy::pin::pin(None);
    if let Some(g) = p.gates.iter_mut().find(|g| g.gate == "SecurityReview") {
        g.deadline = Some(deadline);
    }
    p
}

fn gates(security: &'static str) -> Vec<GateView> {
    Gate::ALL
        .iter()
        .map(|g| GateView {
            gate: *g,
            status: if *g == Gate::Security {
                security
            } else {
                UNKNOWN
            },
            reviewer: None,
            reason: None,
            message: None,
            decided: false,
        })
        .collect()
}

fn at(s: &str) -> Timestamp {
    s.parse().unwrap_or(Timestamp::UNIX_EPOCH)
}

fn deadline(within: &str, expire: Option<&str>) -> Deadline {
    Deadline {
        review_within: within.into(),
        escalate_to: vec!["oncall@example.com".into()],
        expire_after: expire.map(str::to_string),
    }
}

fn read_at(now: &str, security: &'static str, d: Deadline, approved: bool) -> Standing {
    let p = policy(d);
    let g = gates(security);
    read(&Clock {
        policy: Some(&p),
        gates: &g,
        progress: &[],
        created: Some(at("2026-12-01T00:00:00Z")),
        now: at(now),
        approved,
    })
}

#[test]
fn before_the_deadline_nothing_is_overdue_and_the_deadline_is_next() {
    let s = read_at(
        "2026-12-02T00:00:00Z",
        UNKNOWN,
        deadline("72h", Some("720h")),
        false,
    );
    assert!(s.overdue.is_empty());
    assert_eq!(s.timed_out, None);
    assert_eq!(s.next, Some(at("2026-12-04T00:00:00Z")));
}

#[test]
fn past_the_deadline_an_undecided_gate_is_overdue_and_says_who_was_asked() {
    let s = read_at(
        "2026-12-05T00:00:00Z",
        UNKNOWN,
        deadline("72h", Some("720h")),
        false,
    );
    assert_eq!(s.overdue.len(), 1);
    let o = &s.overdue[0];
    assert_eq!(o.gate, "SecurityReview");
    assert_eq!(o.due.0, at("2026-12-04T00:00:00Z"));
    assert_eq!(o.asked.as_deref(), Some("the SecurityReview reviewers"));
    assert_eq!(o.escalated_to, ["oncall@example.com"]);
    assert_eq!(
        s.timed_out, None,
        "a deadline never passes nor fails a gate by itself"
    );
    assert_eq!(
        s.next,
        Some(at("2026-12-31T00:00:00Z")),
        "the expiry is next"
    );
    let said = overdue_message(o);
    assert!(said.contains("told oncall@example.com"), "{said}");
    assert!(
        said.contains("expires as ReviewTimedOut at 2026-12-31T00:00:00Z"),
        "{said}"
    );
}

#[test]
fn a_decided_gate_is_never_overdue() {
    for status in [crate::api::condition::TRUE, crate::api::condition::FALSE] {
        let s = read_at(
            "2027-02-01T00:00:00Z",
            status,
            deadline("72h", Some("720h")),
            false,
        );
        assert_eq!(s, Standing::default(), "{status}");
    }
}

#[test]
fn the_second_deadline_times_the_approval_out_only_when_the_policy_says_so() {
    let s = read_at(
        "2027-01-01T00:00:00Z",
        UNKNOWN,
        deadline("72h", Some("720h")),
        false,
    );
    assert_eq!(
        s.timed_out,
        Some(("SecurityReview".into(), at("2026-12-31T00:00:00Z")))
    );
    let s = read_at(
        "2027-06-01T00:00:00Z",
        UNKNOWN,
        deadline("72h", None),
        false,
    );
    assert_eq!(
        s.timed_out, None,
        "without expireAfter an overdue gate waits"
    );
    assert_eq!(s.overdue.len(), 1);
}

#[test]
fn an_approved_approval_has_spent_its_deadlines() {
    let s = read_at(
        "2027-01-01T00:00:00Z",
        UNKNOWN,
        deadline("72h", Some("720h")),
        true,
    );
    assert_eq!(s, Standing::default());
}
