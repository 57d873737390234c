//! Every kind of tampering an auditor must see, on bundles made as the
//! operator makes them (no cluster).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

use super::*;
use crate::api::{
    approval::{
        HistoryEntry, ModelApproval, ModelApprovalSpec, ModelApprovalStatus, ModelArtifact,
    },
    record::Envelope,
};
use crate::records::chain::test_entry as entry;
use crate::records::checkpoint::{Checkpoint, Head, PAYLOAD_TYPE as CHECKPOINT_PAYLOAD};
use crate::records::envelope::{Signer, public_keys};
use crate::records::statement::{record, statement};

const DIGEST: &str = "sha256:0f3c000000000000000000000000000000000000000000000000000000000001";

/// An approval that passed five gates, then failed one: two phase changes.
fn approval() -> ModelApproval {
    let mut history: Vec<HistoryEntry> = crate::api::gates::Gate::ALL
        .iter()
        .enumerate()
        .map(|(i, g)| {
            entry(
                i as i64,
                g.condition_type(),
                "True",
                Some(&format!("r{i}@example.com")),
            )
        })
        .collect();
    history.push(entry(10, "Phase", "Approved", None));
    history.push(entry(20, "SecurityReview", "False", Some("r2@example.com")));
    history.push(entry(20, "Phase", "Rejected", None));
    crate::records::chain::extend(None, None, 0, &mut history).expect("chain");
    ModelApproval {
        metadata: ObjectMeta {
            name: Some("fd-v1".into()),
            namespace: Some("risk".into()),
            uid: Some("0f3c9a1e-7b2d-4c5e-9f00-123456789abc".into()),
            ..ObjectMeta::default()
        },
        spec: ModelApprovalSpec {
            model: ModelArtifact {
                name: "fraud-detector".into(),
                version: "1.0.0".into(),
                uri: "s3://models/fd/1.0.0/".into(),
                digest: DIGEST.into(),
            },
            valid_for: None,
            evidence: Vec::new(),
            import_from: None,
        },
        status: Some(ModelApprovalStatus {
            history_head: history.last().and_then(|e| e.hash.clone()),
            history,
            ..ModelApprovalStatus::default()
        }),
    }
}

/// The bundle the operator would write for `approval`: one line a record,
/// then the namespace's checkpoint naming the newest record up to `upto`.
fn bundle_upto(signer: &Signer, upto: i64) -> Vec<String> {
    let a = approval();
    let status = a.status.clone().unwrap_or_default();
    let mut checkpoint = Checkpoint::new("risk");
    checkpoint.time = entry(30, "Phase", "Rejected", None).time;
    let mut lines: Vec<String> = [6, 8]
        .into_iter()
        .map(|seq| {
            let s = statement(&a, &status, seq).expect("statement");
            if seq <= upto {
                checkpoint.advance(Head::of(&s));
            }
            let r = record(&s, signer).expect("record");
            serde_json::to_string(&r.spec.envelope).expect("json")
        })
        .collect();
    let sealed = checkpoint.seal(signer).expect("checkpoint");
    lines.push(serde_json::to_string(&sealed.spec.envelope).expect("json"));
    lines
}

fn bundle(signer: &Signer) -> Vec<String> {
    bundle_upto(signer, 8)
}

/// The bundle's checkpoint line with its checkpoint edited by `edit`;
/// re-signed with `resign` when given, else left with its old signature.
fn checkpoint_edited(
    lines: &[String],
    resign: Option<&Signer>,
    edit: impl FnOnce(&mut Checkpoint),
) -> Vec<String> {
    let mut lines = lines.to_vec();
    let at = lines.len() - 1;
    let envelope: Envelope = serde_json::from_str(&lines[at]).expect("envelope");
    let mut checkpoint = Checkpoint::read_unverified(&envelope).expect("checkpoint");
    edit(&mut checkpoint);
    let payload = serde_json::to_vec(&checkpoint).expect("json");
    let envelope = match resign {
        Some(signer) => signer.seal_as(CHECKPOINT_PAYLOAD, &payload),
        None => Envelope {
            payload: STANDARD.encode(&payload),
            ..envelope
        },
    };
    lines[at] = serde_json::to_string(&envelope).expect("json");
    lines
}

fn keys(signer: &Signer) -> Vec<VerifyingKey> {
    public_keys(&signer.public_pem().expect("pem")).expect("keys")
}

fn reasons(lines: &[String], signer: &Signer) -> Vec<String> {
    verify(&lines.join("\n"), &keys(signer))
        .failures
        .iter()
        .map(|f| f.to_string())
        .collect()
}

/// Line `at` with its statement edited by `edit`; re-signed with `resign`
/// when given (a forger holding a key), else left with its old signature.
fn edited(
    lines: &[String],
    at: usize,
    resign: Option<&Signer>,
    edit: impl FnOnce(&mut Value),
) -> Vec<String> {
    let mut lines = lines.to_vec();
    let mut envelope: Envelope = serde_json::from_str(&lines[at]).expect("envelope");
    let bytes = STANDARD.decode(&envelope.payload).expect("base64");
    let mut statement: Value = serde_json::from_slice(&bytes).expect("statement");
    edit(&mut statement);
    let payload = serde_json::to_vec(&statement).expect("json");
    envelope = match resign {
        Some(signer) => signer.seal(&payload),
        None => Envelope {
            payload: STANDARD.encode(&payload),
            ..envelope
        },
    };
    lines[at] = serde_json::to_string(&envelope).expect("json");
    lines
}

fn has(reasons: &[String], want: &str) -> bool {
    reasons.iter().any(|r| r.contains(want))
}

#[test]
fn an_untampered_bundle_verifies() {
    let signer = Signer::generate().expect("key");
    let lines = bundle(&signer);
    let report = verify(&lines.join("\n"), &keys(&signer));
    assert!(report.ok(), "{:?}", report.failures);
    assert_eq!(report.lines.len(), 2);
    assert_eq!(report.checkpoints.len(), 1);
}

#[test]
fn a_changed_reviewer_fails_the_signature_and_the_chain() {
    let signer = Signer::generate().expect("key");
    let lines = edited(&bundle(&signer), 0, None, |s| {
        s["predicate"]["history"][2]["reviewer"] = "mallory@example.com".into();
    });
    let r = reasons(&lines, &signer);
    assert!(has(&r, "line 1: the signature does not verify"), "{r:?}");
    assert!(
        has(&r, "line 1: history entry seq 3 does not match its hash"),
        "{r:?}"
    );
}

#[test]
fn a_forger_with_the_key_is_still_caught_by_the_chain() {
    let signer = Signer::generate().expect("key");
    let lines = edited(&bundle(&signer), 1, Some(&signer), |s| {
        s["predicate"]["history"][6]["reviewer"] = "mallory@example.com".into();
    });
    let r = reasons(&lines, &signer);
    assert!(!has(&r, "signature"), "{r:?}");
    assert!(
        has(&r, "line 2: history entry seq 7 does not match its hash"),
        "{r:?}"
    );
}

#[test]
fn a_removed_entry_is_named() {
    let signer = Signer::generate().expect("key");
    let lines = edited(&bundle(&signer), 1, None, |s| {
        if let Some(h) = s["predicate"]["history"].as_array_mut() {
            h.remove(3);
        }
    });
    let r = reasons(&lines, &signer);
    assert!(
        has(
            &r,
            "line 2: history entry seq 3 is followed by seq 5: an entry was removed"
        ),
        "{r:?}"
    );
}

#[test]
fn reordered_entries_are_named() {
    let signer = Signer::generate().expect("key");
    let lines = edited(&bundle(&signer), 0, None, |s| {
        if let Some(h) = s["predicate"]["history"].as_array_mut() {
            h.swap(1, 2);
        }
    });
    let r = reasons(&lines, &signer);
    assert!(
        has(
            &r,
            "line 1: history entry seq 3 is followed by seq 2: entries were reordered"
        ),
        "{r:?}"
    );
}

#[test]
fn a_swapped_signature_does_not_verify() {
    let signer = Signer::generate().expect("key");
    let mut lines = bundle(&signer);
    let first: Envelope = serde_json::from_str(&lines[0]).expect("envelope");
    let mut second: Envelope = serde_json::from_str(&lines[1]).expect("envelope");
    second.signatures = first.signatures;
    lines[1] = serde_json::to_string(&second).expect("json");
    let r = reasons(&lines, &signer);
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(has(&r, "line 2: the signature does not verify"), "{r:?}");
}

#[test]
fn the_wrong_key_is_named() {
    let signer = Signer::generate().expect("key");
    let other = Signer::generate().expect("key");
    let lines = bundle(&signer);
    let r = reasons(&lines, &other);
    assert!(
        has(
            &r,
            &format!(
                "line 1: signed with key {}, which is not among the public keys given",
                signer.id()
            )
        ),
        "{r:?}"
    );
}

#[test]
fn a_removed_or_moved_record_is_named() {
    let signer = Signer::generate().expect("key");
    let lines = bundle(&signer);
    let r = reasons(&lines[1..], &signer);
    assert!(
        has(
            &r,
            "line 1: the record of risk/fd-v1 before this one (seq 6) is missing: a record was removed"
        ),
        "{r:?}"
    );
    let swapped = vec![lines[1].clone(), lines[0].clone()];
    let r = reasons(&swapped, &signer);
    assert!(
        has(
            &r,
            "line 2: record seq 6 of risk/fd-v1 comes after seq 8 (line 1)"
        ),
        "{r:?}"
    );
}

#[test]
fn a_subject_other_than_the_approved_digest_is_named() {
    let signer = Signer::generate().expect("key");
    let lines = edited(&bundle(&signer), 0, Some(&signer), |s| {
        s["subject"][0]["digest"]["sha256"] = "00".repeat(32).into();
    });
    let r = reasons(&lines, &signer);
    assert!(
        has(
            &r,
            "line 1: the statement's subject is not the approved model fraud-detector"
        ),
        "{r:?}"
    );
}

#[test]
fn garbage_lines_are_refused_not_panicked_on() {
    let signer = Signer::generate().expect("key");
    let r = reasons(&["{not json".into(), "{}".into()], &signer);
    assert!(has(&r, "line 1: not a DSSE envelope"), "{r:?}");
    assert!(has(&r, "line 2: not a DSSE envelope"), "{r:?}");
    assert!(has(&reasons(&[], &signer), "no records"));
}

const CHECKPOINT_TIME: &str = "2026-09-21T14:13:50Z";

#[test]
fn the_newest_record_dropped_is_named_by_the_checkpoint() {
    let signer = Signer::generate().expect("key");
    let lines = bundle(&signer);
    let truncated = vec![lines[0].clone(), lines[2].clone()];
    let r = reasons(&truncated, &signer);
    assert_eq!(
        r,
        [format!(
            "line 2: approval risk/fd-v1: records after seq 6 are missing; the checkpoint of {CHECKPOINT_TIME} names seq 8"
        )]
    );
}

#[test]
fn every_record_of_an_approval_dropped_is_named() {
    let signer = Signer::generate().expect("key");
    let lines = bundle(&signer);
    let r = reasons(&lines[2..], &signer);
    assert!(
        has(
            &r,
            &format!(
                "line 1: approval risk/fd-v1: none of its records are in the bundle; the checkpoint of {CHECKPOINT_TIME} names seq 8"
            )
        ),
        "{r:?}"
    );
    // An export of another approval's records does not look for them.
    let scoped = verify_scoped(&lines[2..].join("\n"), &keys(&signer), Some("other"));
    assert!(
        !scoped.failures.iter().any(|f| f.reason.contains("fd-v1")),
        "{:?}",
        scoped.failures
    );
}

#[test]
fn records_newer_than_the_checkpoint_verify() {
    let signer = Signer::generate().expect("key");
    let lines = bundle_upto(&signer, 6);
    let report = verify(&lines.join("\n"), &keys(&signer));
    assert!(report.ok(), "{:?}", report.failures);
}

#[test]
fn a_forged_checkpoint_fails_its_signature_and_hides_nothing() {
    let signer = Signer::generate().expect("key");
    let other = Signer::generate().expect("key");
    let lines = bundle(&signer);
    // The newest record removed, and the checkpoint edited to match.
    let hide = |c: &mut Checkpoint| c.approvals[0].seq = 6;
    for (forged, says) in [
        (
            checkpoint_edited(&lines, None, hide),
            "the signature does not verify".to_string(),
        ),
        (
            checkpoint_edited(&lines, Some(&other), hide),
            format!(
                "signed with key {}, which is not among the public keys given",
                other.id()
            ),
        ),
    ] {
        let truncated = vec![forged[0].clone(), forged[2].clone()];
        let r = reasons(&truncated, &signer);
        assert!(
            has(
                &r,
                &format!("line 2: the checkpoint of namespace risk does not verify: {says}")
            ),
            "{r:?}"
        );
        assert!(
            has(
                &r,
                "the bundle has no verified checkpoint of namespace risk"
            ),
            "{r:?}"
        );
    }
}

#[test]
fn a_record_is_never_taken_for_a_checkpoint() {
    let signer = Signer::generate().expect("key");
    let lines = bundle(&signer);
    let mut envelope: Envelope = serde_json::from_str(&lines[1]).expect("envelope");
    envelope.payload_type = CHECKPOINT_PAYLOAD.into();
    let relabelled = vec![
        lines[0].clone(),
        serde_json::to_string(&envelope).expect("json"),
    ];
    let r = reasons(&relabelled, &signer);
    assert!(has(&r, "line 2: the checkpoint does not verify"), "{r:?}");
    assert!(has(&r, "no verified checkpoint of namespace risk"), "{r:?}");
}

#[test]
fn a_replaced_newest_record_is_named() {
    let signer = Signer::generate().expect("key");
    let lines = checkpoint_edited(&bundle(&signer), Some(&signer), |c| {
        c.approvals[0].head = "00".repeat(32);
    });
    let r = reasons(&lines, &signer);
    assert!(
        has(
            &r,
            "line 3: approval risk/fd-v1: its record of seq 8 is not the one the checkpoint"
        ),
        "{r:?}"
    );
}
