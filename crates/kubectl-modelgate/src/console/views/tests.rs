use super::*;
use modelgate::api::approval::ModelApproval;

fn approval(conditions: serde_json::Value, phase: &str) -> ModelApproval {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "modelgate.io/v1alpha1", "kind": "ModelApproval",
        "metadata": {"name": "fd-2", "namespace": "risk"},
        "spec": {
            "model": {"name": "fd", "version": "2", "uri": "s3://m/fd/2/", "digest": format!("sha256:{}", "a".repeat(64))},
            "evidence": [
                {"gate": "LegalReview", "uri": "https://reports.example.com/licences.html", "description": "Licences"},
                {"gate": "LegalReview", "uri": "javascript:alert(1)"},
            ],
        },
        "status": {"phase": phase, "conditions": conditions},
    }))
    .expect("an approval")
}

fn lee() -> (Me, Vec<(Gate, String)>) {
    let me = Me {
        user: "lee@example.com".into(),
        groups: vec![
            "modelgate:legal-reviewers".into(),
            "system:authenticated".into(),
        ],
    };
    let groups = Gate::ALL
        .into_iter()
        .map(|g| (g, g.default_group().to_string()))
        .collect();
    (me, groups)
}

#[test]
fn a_pending_gate_of_mine_waits_on_me() {
    let (me, groups) = lee();
    let (shelf, row) = shelve(&approval(serde_json::json!([]), "Pending"), &me, &groups);
    assert_eq!(shelf, Shelf::Waiting);
    assert_eq!(
        row.mine,
        vec![("Legal and compliance review", "Waiting for a decision")]
    );
}

#[test]
fn once_i_decided_it_moves_to_decided() {
    let (me, groups) = lee();
    let decided = serde_json::json!([{"type": "LegalReview", "status": "True", "reviewer": "lee@example.com"}]);
    let (shelf, _) = shelve(&approval(decided, "Pending"), &me, &groups);
    assert_eq!(shelf, Shelf::Decided);
    let other = serde_json::json!([{"type": "SecurityReview", "status": "True", "reviewer": "sam@example.com"}]);
    let (me2, _) = (
        Me {
            user: "zoe@example.com".into(),
            groups: vec![],
        },
        (),
    );
    assert_eq!(
        shelve(&approval(other, "Pending"), &me2, &groups).0,
        Shelf::Other
    );
}

#[test]
fn cards_say_whose_gate_it_is_and_advise_on_separation_of_duties() {
    let (mut me, groups) = lee();
    me.groups.push("modelgate:security-reviewers".into());
    me.user = "sam@example.com".into();
    let passed = serde_json::json!([{"type": "SecurityReview", "status": "True", "reviewer": "sam@example.com", "reason": "PenTestPassed"}]);
    let cards = gate_cards(&approval(passed, "Pending"), &me, &groups);
    let legal = &cards[3];
    assert_eq!(legal.condition, "LegalReview");
    assert!(legal.mine);
    assert_eq!(legal.other_gate_passed, Some("Security review"));
    assert_eq!(cards[2].state, "passed");
    assert_eq!(cards[2].reason, "PenTestPassed");
    assert!(!cards[0].mine);
}

#[test]
fn only_web_evidence_becomes_a_link() {
    let (me, groups) = lee();
    let cards = gate_cards(&approval(serde_json::json!([]), "Pending"), &me, &groups);
    let links: Vec<bool> = cards[3].evidence.iter().map(|e| e.web).collect();
    assert_eq!(links, vec![true, false]);
    assert!(cards[0].evidence.is_empty());
}

#[test]
fn a_sealed_artifact_says_what_every_pod_mounts() {
    let artifact = modelgate::api::approval::ResolvedArtifact {
        seal: modelgate::api::approval::Seal::Sealed,
        layers: Some(3),
        size: Some(1024),
        artifact_type: Some("application/vnd.cncf.model.manifest.v1+json".into()),
        ..Default::default()
    };
    let (seal, note) = super::seal(Some(&artifact));
    assert_eq!(seal, "Sealed");
    assert_eq!(
        note,
        "Resolved in its registry: 3 files, 1024 bytes (application/vnd.cncf.model.manifest.v1+json). Every pod mounts exactly these bytes, read-only."
    );
    assert_eq!(super::seal(None), (String::new(), String::new()));
}

/// fd-2 with every gate but LegalReview passed, released without it by
/// break-glass bg-1 until 11:00, in `phase`, with `history`.
fn released(phase: &str, history: serde_json::Value) -> ModelApproval {
    let passed: Vec<serde_json::Value> = Gate::ALL
        .into_iter()
        .filter(|g| *g != Gate::Legal)
        .map(|g| serde_json::json!({"type": g.condition_type(), "status": "True", "reviewer": "r@example.com"}))
        .collect();
    let mut a = approval(serde_json::json!(passed), phase);
    let status = serde_json::json!({
        "phase": phase, "conditions": passed, "history": history,
        "breakGlass": {
            "name": "bg-1", "requestedBy": "ic@example.com", "approvedBy": ["oncall@example.com"],
            "reason": "INC-4711: 2.4.0 flags every card payment in Ireland",
            "skips": ["LegalReview"],
            "since": "2026-12-06T03:00:00Z", "until": "2026-12-06T11:00:00Z",
        },
    });
    a.status = Some(serde_json::from_value(status).expect("a status"));
    a
}

fn deployment(name: &str, approval: &str, on_revoke: &str) -> ModelDeployment {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "modelgate.io/v1alpha1", "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": "risk"},
        "spec": {"approvalRef": {"name": approval}, "onRevoke": on_revoke, "template": {"spec": {"containers": []}}},
        "status": {"phase": "Available", "breakGlass": "bg-1 until 2026-12-06T11:00:00Z without LegalReview"},
    }))
    .expect("a deployment")
}

#[test]
fn a_break_glass_release_has_a_banner_saying_who_why_and_until_when() {
    let mds = [
        deployment("fd", "fd-2", "ScaleToZero"),
        deployment("fd-canary", "fd-2", "Hold"),
        deployment("other", "other-1", "Hold"),
    ];
    let banner = breakglass::banner(&released("BreakGlass", serde_json::json!([])), &mds);
    assert_eq!(
        banner,
        Some(breakglass::Banner {
            name: "bg-1".into(),
            skips: "LegalReview".into(),
            pass: "passes",
            until: "2026-12-06 11:00 UTC".into(),
            requested_by: "ic@example.com".into(),
            approved_by: "oncall@example.com".into(),
            reason: "INC-4711: 2.4.0 flags every card payment in Ireland.".into(),
            then: vec![
                "fd is scaled to zero and stops serving (onRevoke ScaleToZero)".into(),
                "fd-canary keeps its pods serving but rolls out nothing more (onRevoke Hold)"
                    .into(),
            ],
        })
    );
    // Kept for the record once it ended, it is no banner.
    assert_eq!(
        breakglass::banner(&released("Pending", serde_json::json!([])), &mds),
        None
    );
}

#[test]
fn a_skipped_gate_says_so_on_its_card_while_the_release_lasts() {
    let (me, groups) = lee();
    let cards = gate_cards(&released("BreakGlass", serde_json::json!([])), &me, &groups);
    assert_eq!(cards[3].skipped.as_deref(), Some("2026-12-06 11:00 UTC"));
    assert_eq!(cards[3].state, "pending");
    assert!(
        cards
            .iter()
            .filter(|c| c.condition != "LegalReview")
            .all(|c| c.skipped.is_none())
    );
    let after = gate_cards(&released("Pending", serde_json::json!([])), &me, &groups);
    assert!(after.iter().all(|c| c.skipped.is_none()));
}

#[test]
fn under_break_glass_the_skipped_gate_still_waits_on_its_reviewer() {
    let (me, groups) = lee();
    let (shelf, row) = shelve(&released("BreakGlass", serde_json::json!([])), &me, &groups);
    assert_eq!(shelf, Shelf::Waiting);
    assert_eq!(row.phase, "BreakGlass");
    assert_eq!(
        row.break_glass.as_deref(),
        Some("without LegalReview until 2026-12-06 11:00 UTC")
    );
    let (_, after) = shelve(&released("Pending", serde_json::json!([])), &me, &groups);
    assert_eq!(after.break_glass, None);
}

#[test]
fn an_ended_break_glass_leaves_one_line_saying_how_it_ended() {
    let entry = |to: &str, reason: &str| serde_json::json!([{"time": "2026-12-06T11:00:00Z", "subject": "Phase", "from": "BreakGlass", "to": to, "reason": reason}]);
    let lapsed = breakglass::afterwards(&released("Pending", entry("Pending", "BreakGlassLapsed")));
    assert_eq!(
        lapsed.as_deref(),
        Some(
            "Break-glass bg-1 released this approval without LegalReview from 2026-12-06 03:00 UTC until 2026-12-06 11:00 UTC (requested by ic@example.com, approved by oncall@example.com). LegalReview did not pass in time: the release lapsed and was withdrawn."
        )
    );
    let ratified = breakglass::afterwards(&released(
        "Approved",
        entry("Approved", "BreakGlassRatified"),
    ));
    assert!(
        ratified
            .as_deref()
            .is_some_and(|r| r.ends_with("LegalReview passed in time: the release was ratified.")),
        "{ratified:?}"
    );
    assert_eq!(
        breakglass::afterwards(&released("BreakGlass", serde_json::json!([]))),
        None
    );
}

#[test]
fn a_deployment_served_under_break_glass_says_so_in_its_row() {
    let row = deployment_row(&deployment("fd", "fd-2", "Hold"));
    assert_eq!(
        row.break_glass,
        "bg-1 until 2026-12-06T11:00:00Z without LegalReview"
    );
}

#[test]
fn a_mirrored_gate_is_nobodys_here_and_names_the_publisher() {
    let (me, groups) = lee();
    let mut a = approval(serde_json::json!([]), "Pending");
    a.spec.import_from = Some(modelgate::api::fleet::Import {
        publisher: "board".into(),
        approval: "ml-prod/fd".into(),
    });
    let mut policy = modelgate::api::policy::ApprovalPolicy::new("default", Default::default());
    policy.spec.local_gates = vec!["BusinessReview".into()];
    if let Some(s) = a.status.as_mut() {
        s.policy = Some(std::sync::Arc::new(
            modelgate::policy::pin::pin_for_approval(Some(&policy), true),
        ));
    }
    let cards = gate_cards(&a, &me, &groups);
    let legal = &cards[3];
    assert!(
        !legal.mine,
        "lee is a legal reviewer, but not of the publisher's"
    );
    assert_eq!(legal.group, "board's reviewers");
    assert_eq!(cards[4].group, Gate::Business.default_group());
    assert_eq!(shelve(&a, &me, &groups).0, Shelf::Other);
}
