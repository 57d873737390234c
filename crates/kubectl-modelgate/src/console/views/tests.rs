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
