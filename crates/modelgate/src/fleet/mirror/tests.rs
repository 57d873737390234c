use super::*;
use crate::api::condition::{FALSE, TRUE};

fn import() -> Import {
    Import {
        publisher: "cluster-a".into(),
        approval: "ml-prod/fd-2-4-1".into(),
    }
}

const REPOSITORY: &str = "registry.example.com/models/fd";

fn expected(import: &Import) -> Expected<'_> {
    Expected {
        import,
        name: "fraud-detector",
        version: "2.4.1",
        repository: REPOSITORY,
    }
}

fn mirror(
    import: &Import,
    previous: Option<&ImportedApproval>,
    fetched: Fetched,
) -> ImportedApproval {
    super::mirror(&expected(import), previous, fetched)
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
        model: ("fraud-detector".into(), "2.4.1".into(), REPOSITORY.into()),
    }
}

fn read(referrer: &str, verdict: Result<Said, String>) -> Read {
    Read {
        referrer: referrer.into(),
        verdict,
    }
}

fn records(reads: Vec<Read>) -> Fetched {
    Fetched::Records(Records {
        reads,
        ..Records::default()
    })
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

#[test]
fn a_record_of_another_model_version_or_repository_is_refused() {
    let mut version = said("Approved", 7, 5, TRUE);
    version.model.1 = "9.9.9".into();
    let mut copy = said("Approved", 8, 6, TRUE);
    copy.model.2 = "registry.example.com/models/fd-copy".into();
    let m = mirror(
        &import(),
        None,
        records(vec![
            read("sha256:v", Ok(version)),
            read("sha256:c", Ok(copy)),
        ]),
    );
    assert_eq!(m.seq, None);
    assert!(
        m.refused[0]
            .reason
            .contains("approves fraud-detector 9.9.9")
    );
    assert!(m.refused[1].reason.contains("fd-copy"), "{:?}", m.refused);
}

#[test]
fn a_new_approval_honours_nothing_older_than_what_was_honoured_here_before() {
    // The revocation (seq 9) was honoured by an approval since deleted; the
    // publisher's status keeps it. A new approval sees only the older one.
    let mark = Mark {
        time: said("Rejected", 9, 9, FALSE).time,
        seq: 9,
        phase: "Rejected".into(),
    };
    let fetched = Fetched::Records(Records {
        reads: vec![read("sha256:b", Ok(said("Approved", 7, 5, TRUE)))],
        mark: Some(mark.clone()),
        unread: 2,
        unread_resyncs: 1,
        publisher_uid: None,
    });
    let m = mirror(&import(), None, fetched);
    assert!(
        m.refused[0].reason.starts_with("replayed"),
        "{:?}",
        m.refused
    );
    assert_eq!((m.phase.as_deref(), m.seq), (Some("Rejected"), Some(9)));
    assert!(
        m.gates.is_empty(),
        "the newer record's gates are not known here"
    );
    assert!(
        m.message
            .as_deref()
            .is_some_and(|m| m.contains("2 records not read yet"))
    );
    // An approval still honouring the older record is overtaken as well.
    let approved = mirror(
        &import(),
        None,
        records(vec![read("sha256:b", Ok(said("Approved", 7, 5, TRUE)))]),
    );
    let overtaken = mirror(
        &import(),
        Some(&approved),
        Fetched::Records(Records {
            reads: vec![read("sha256:b", Ok(said("Approved", 7, 5, TRUE)))],
            mark: Some(mark),
            ..Records::default()
        }),
    );
    assert_eq!(
        (overtaken.phase.as_deref(), overtaken.seq),
        (Some("Rejected"), Some(9))
    );
}

#[test]
fn records_left_unread_resync_after_resync_hold_everything() {
    let approved = mirror(
        &import(),
        None,
        records(vec![read("sha256:b", Ok(said("Approved", 7, 5, TRUE)))]),
    );
    let flooded = |resyncs| {
        mirror(
            &import(),
            Some(&approved),
            Fetched::Records(Records {
                reads: vec![read("sha256:b", Ok(said("Approved", 7, 5, TRUE)))],
                unread: 64,
                unread_resyncs: resyncs,
                ..Records::default()
            }),
        )
    };
    assert_eq!(flooded(UNREAD_RESYNCS - 1).seq, Some(7));
    let held = flooded(UNREAD_RESYNCS);
    assert_eq!(held.seq, None);
    assert!(
        held.message
            .as_deref()
            .is_some_and(|m| m.contains("stayed unread"))
    );
}
