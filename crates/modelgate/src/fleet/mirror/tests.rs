use super::*;
use crate::api::condition::{FALSE, TRUE};

fn import() -> Import {
    Import {
        publisher: "cluster-a".into(),
        approval: "ml-prod/fd-2-4-1".into(),
    }
}

fn said(phase: &str, seq: i64, minute: i64, gate: &str) -> Said {
    Said {
        approval: "ml-prod/fd-2-4-1".into(),
        uid: "u-1".into(),
        phase: phase.into(),
        seq,
        time: Time(jiff::Timestamp::from_second(1_800_000_000 + minute * 60).unwrap_or_default()),
        expires_at: None,
        gates: vec![MirroredGate {
            gate: "LegalReview".into(),
            status: gate.into(),
            reviewer: Some("lee".into()),
        }],
    }
}

fn read(referrer: &str, verdict: Result<Said, String>) -> Read {
    Read {
        referrer: referrer.into(),
        verdict,
    }
}

fn records(reads: Vec<Read>) -> Fetched {
    Fetched::Records(reads)
}

#[test]
fn the_newest_record_that_verifies_is_honoured_and_the_others_refused() {
    let m = mirror(
        &import(),
        None,
        records(vec![
            read("sha256:a", Ok(said("Pending", 2, 1, "Unknown"))),
            read("sha256:b", Ok(said("Approved", 7, 5, TRUE))),
            read("sha256:c", Err("its signature does not verify".into())),
        ]),
    );
    assert_eq!(m.phase.as_deref(), Some("Approved"));
    assert_eq!(m.seq, Some(7));
    assert_eq!(m.referrer.as_deref(), Some("sha256:b"));
    assert_eq!(m.gates[0].status, TRUE);
    assert_eq!(m.refused.len(), 1);
    assert_eq!(m.refused[0].referrer, "sha256:c");
    assert!(m.message.is_none());
}

#[test]
fn a_revocation_is_honoured_and_an_older_record_after_it_is_refused_as_a_replay() {
    let approved = mirror(
        &import(),
        None,
        records(vec![read("sha256:b", Ok(said("Approved", 7, 5, TRUE)))]),
    );
    let revoked = mirror(
        &import(),
        Some(&approved),
        records(vec![
            read("sha256:b", Ok(said("Approved", 7, 5, TRUE))),
            read("sha256:d", Ok(said("Rejected", 9, 9, FALSE))),
        ]),
    );
    assert_eq!(revoked.phase.as_deref(), Some("Rejected"));
    assert_eq!(revoked.seq, Some(9));
    // The revocation is gone from the registry and the approval's older
    // record is all there is: it is refused, the revocation stands.
    let replayed = mirror(
        &import(),
        Some(&revoked),
        records(vec![read("sha256:b", Ok(said("Approved", 7, 5, TRUE)))]),
    );
    assert_eq!(replayed.phase.as_deref(), Some("Rejected"));
    assert_eq!(replayed.seq, Some(9));
    assert_eq!(replayed.refused.len(), 1);
    assert!(
        replayed.refused[0].reason.starts_with("replayed"),
        "{:?}",
        replayed.refused
    );
}

#[test]
fn an_unreachable_registry_keeps_what_was_honoured_and_distrust_drops_it() {
    let approved = mirror(
        &import(),
        None,
        records(vec![read("sha256:b", Ok(said("Approved", 7, 5, TRUE)))]),
    );
    let down = mirror(
        &import(),
        Some(&approved),
        Fetched::Unreachable("timed out".into()),
    );
    assert_eq!(down.phase.as_deref(), Some("Approved"));
    assert!(
        down.message
            .as_deref()
            .is_some_and(|m| m.contains("stands"))
    );
    let untrusted = mirror(
        &import(),
        Some(&approved),
        Fetched::Untrusted("TrustedPublisher cluster-a does not exist".into()),
    );
    assert_eq!(untrusted.seq, None);
    assert!(untrusted.gates.is_empty());
    // The key that signed the honoured record was withdrawn: every record
    // now fails its signature, and nothing is honoured.
    let withdrawn = mirror(
        &import(),
        Some(&approved),
        records(vec![read(
            "sha256:b",
            Err("its signature does not verify".into()),
        )]),
    );
    assert_eq!(withdrawn.seq, None);
    assert_eq!(withdrawn.refused.len(), 1);
}

#[test]
fn a_record_of_another_approval_under_this_ones_annotation_is_refused() {
    let mut other = said("Approved", 7, 5, TRUE);
    other.approval = "staging/fd".into();
    let m = mirror(&import(), None, records(vec![read("sha256:e", Ok(other))]));
    assert_eq!(m.seq, None);
    assert!(m.refused[0].reason.contains("staging/fd"));
    assert!(
        m.message
            .as_deref()
            .is_some_and(|m| m.contains("no record"))
    );
}
