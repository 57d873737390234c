//! Bundles signed as the operator signs them, for the report's and the
//! audit commands' tests: approvals with their history chained, one record
//! per phase change (a break-glass one carrying the signed release), and
//! the namespace's checkpoint.

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use modelgate::api::approval::{
    HistoryEntry, ModelApproval, ModelApprovalSpec, ModelApprovalStatus, ModelArtifact,
};
use modelgate::api::breakglass::ReleasedBy;
use modelgate::records::chain;
use modelgate::records::checkpoint::{Checkpoint, Head};
use modelgate::records::envelope::Signer;
use modelgate::records::statement::{Statement, phase_changes, record, statement};

/// When the histories start.
pub const START: &str = "2026-11-25T09:00:00Z";

fn at(minutes: i64) -> Time {
    let start: Timestamp = START.parse().unwrap_or(Timestamp::UNIX_EPOCH);
    Time(
        start
            .checked_add(SignedDuration::from_mins(minutes))
            .unwrap_or(start),
    )
}

/// One history entry, `minutes` after [`START`]: a gate decided by
/// `by`, or (subject Phase) a phase change with its reason.
pub fn entry(
    minutes: i64,
    subject: &str,
    change: (&str, &str),
    by: Option<&str>,
    reason: Option<&str>,
) -> HistoryEntry {
    HistoryEntry {
        time: at(minutes),
        subject: subject.into(),
        from: change.0.into(),
        to: change.1.into(),
        reviewer: by.map(str::to_string),
        reason: reason.map(str::to_string),
        message: None,
        seq: None,
        hash: None,
    }
}

/// The four gates other than LegalReview, passed in the first minutes.
pub fn four_gates() -> Vec<HistoryEntry> {
    [
        "TechnicalReview",
        "FairnessReview",
        "SecurityReview",
        "BusinessReview",
    ]
    .into_iter()
    .enumerate()
    .map(|(i, g)| {
        entry(
            i as i64,
            g,
            ("", "True"),
            Some("rev@example.com"),
            Some("Checked"),
        )
    })
    .collect()
}

/// A release by break-glass `name` from minute `since`, for 4h.
pub fn release(name: &str, since: i64) -> ReleasedBy {
    ReleasedBy {
        name: name.into(),
        requested_by: "ines@example.com".into(),
        approved_by: vec!["olga@example.com".into()],
        reason: "INC-4711: 2.4.0 flags every card payment in Ireland".into(),
        skips: vec!["LegalReview".into()],
        since: at(since),
        until: at(since + 240),
    }
}

/// An approval in namespace risk whose history is `history` (chained
/// here), with `released` as its status.breakGlass.
pub fn approval(
    name: &str,
    uid: &str,
    mut history: Vec<HistoryEntry>,
    released: Option<ReleasedBy>,
) -> ModelApproval {
    chain::extend(None, None, 0, &mut history).unwrap_or_else(|e| panic!("{e}"));
    ModelApproval {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("risk".into()),
            uid: Some(uid.into()),
            ..ObjectMeta::default()
        },
        spec: ModelApprovalSpec {
            model: ModelArtifact {
                name: "fraud-detector".into(),
                version: "2.4.1".into(),
                uri: "s3://models/fd/2.4.1/".into(),
                digest: format!("sha256:{}", "0f3c".repeat(16)),
            },
            valid_for: None,
            evidence: Vec::new(),
            import_from: None,
        },
        status: Some(ModelApprovalStatus {
            history_head: history.last().and_then(|e| e.hash.clone()),
            history,
            break_glass: released.map(Box::new),
            ..ModelApprovalStatus::default()
        }),
    }
}

/// The statement of each phase change of `approval`, oldest first.
pub fn statements(approval: &ModelApproval) -> Vec<Statement> {
    let status = approval.status.clone().unwrap_or_default();
    phase_changes(&status.history)
        .filter_map(|seq| statement(approval, &status, seq))
        .collect()
}

/// The bundle (JSON Lines) of `approvals`' records, then the checkpoint
/// naming the newest record of each, all signed by `signer`.
pub fn bundle(signer: &Signer, approvals: &[ModelApproval]) -> String {
    let mut checkpoint = Checkpoint::new("risk");
    checkpoint.time = at(300);
    let mut lines = String::new();
    for s in approvals.iter().flat_map(statements) {
        checkpoint.advance(Head::of(&s));
        let r = record(&s, signer).unwrap_or_else(|e| panic!("{e}"));
        lines.push_str(&serde_json::to_string(&r.spec.envelope).unwrap_or_default());
        lines.push('\n');
    }
    let sealed = checkpoint.seal(signer).unwrap_or_else(|e| panic!("{e}"));
    lines.push_str(&serde_json::to_string(&sealed.spec.envelope).unwrap_or_default());
    lines.push('\n');
    lines
}

/// Three approvals: one approved the usual way, one released by
/// break-glass and ratified, one released and lapsed.
pub fn three_approvals() -> Vec<ModelApproval> {
    let mut approved = four_gates();
    approved.push(entry(
        5,
        "LegalReview",
        ("", "True"),
        Some("lee@example.com"),
        Some("Checked"),
    ));
    approved.push(entry(
        6,
        "Phase",
        ("Pending", "Approved"),
        None,
        Some("Approved"),
    ));
    let mut ratified = four_gates();
    ratified.push(entry(
        10,
        "Phase",
        ("Pending", "BreakGlass"),
        Some("ines@example.com"),
        Some("BreakGlass"),
    ));
    ratified.push(entry(
        60,
        "LegalReview",
        ("", "True"),
        Some("lee@example.com"),
        Some("Checked"),
    ));
    ratified.push(entry(
        60,
        "Phase",
        ("BreakGlass", "Approved"),
        None,
        Some("BreakGlassRatified"),
    ));
    let mut lapsed = four_gates();
    lapsed.push(entry(
        20,
        "Phase",
        ("Pending", "BreakGlass"),
        Some("ines@example.com"),
        Some("BreakGlass"),
    ));
    lapsed.push(entry(
        260,
        "Phase",
        ("BreakGlass", "Pending"),
        None,
        Some("BreakGlassLapsed"),
    ));
    vec![
        approval("aa-approved", "11111111-a", approved, None),
        approval(
            "fd-ratified",
            "22222222-b",
            ratified,
            Some(release("fd-ratified-bg-1", 10)),
        ),
        approval(
            "fd-lapsed",
            "33333333-c",
            lapsed,
            Some(release("fd-lapsed-bg-1", 20)),
        ),
    ]
}
