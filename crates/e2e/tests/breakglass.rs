//! Break-glass on the real control plane, as in the 3 a.m. incident:
//! fraud-detector 2.4.0 serves with a critical bug, 2.4.1 is one gate
//! (LegalReview) short. An incident commander requests a break-glass, the
//! on-call approves it, and 2.4.1 rolls out at once, marked; ratified in
//! the window, the mark clears; not ratified, every pod is back on 2.4.0
//! (onRevoke Rollback) when the window ends. The model's owner alone can
//! release nothing, and nobody can write in another's name.

use kube::api::{Api, Patch, PatchParams, PostParams};
use modelgate::api::approval::{ApprovalPhase, ModelApproval};
use modelgate::api::breakglass::{BreakGlass, BreakGlassPhase};
use modelgate::api::deployment::{DeploymentPhase, ModelDeployment};
use modelgate::api::record::ApprovalRecord;
use modelgate_e2e::argocd::health;
use modelgate_e2e::breakglass::*;
use modelgate_e2e::refusal::refused;
use modelgate_e2e::{cluster::*, fixtures::*, operator::*, plugin::*, pods::*, users::*, wait::*};

const V1: &str = "2.4.0";
const V2: &str = "2.4.1";

/// The commander is in both groups, so that their own approval is
/// admitted and must not count.
const COMMANDER_GROUPS: [&str; 2] = [COMMANDERS, ON_CALL];

/// Requested by the commander, approved by the commander (does not count)
/// and then by the on-call: the approval is released.
async fn release(client: &kube::Client, n: &str, name: &str, duration: &str) -> ModelApproval {
    request_break_glass(
        n,
        &skipping_legal(name, duration),
        COMMANDER,
        &COMMANDER_GROUPS,
    )
    .await
    .expect("request");
    let bgs: Api<BreakGlass> = Api::namespaced(client.clone(), n);
    approve_break_glass(n, name, COMMANDER, &[ON_CALL])
        .await
        .expect("the requester's own approval is admitted");
    let own = "erin@example.com's does not count (the requester's own)";
    eventually(30, "the requester's own approval not counted", || async {
        let s = bgs.get(name).await.ok()?.status?;
        (s.phase == Some(BreakGlassPhase::AwaitingApproval)
            && s.message.as_deref().is_some_and(|m| m.contains(own)))
        .then_some(())
    })
    .await;
    approve_break_glass(n, name, APPROVER, &[ON_CALL])
        .await
        .expect("the on-call approves");
    let approvals: Api<ModelApproval> = Api::namespaced(client.clone(), n);
    approval_phase(&approvals, "fd-v2", ApprovalPhase::BreakGlass).await
}

#[tokio::test(flavor = "multi_thread")]
async fn an_on_call_approval_rolls_out_at_once_marked_and_ratification_clears_the_mark() {
    let addr = start_operator();
    let client = install_modelgate().await;
    let ns = incident(&client, "bg-ratify", 2).await;
    let n = ns.name.as_str();
    let released = release(&client, n, "inc-4711", "1h").await;
    let status = released.status.clone().expect("status");
    let by = status.break_glass.clone().expect("status.breakGlass");
    assert_eq!(
        (by.requested_by.as_str(), by.approved_by.as_slice()),
        (COMMANDER, &[APPROVER.to_string()][..])
    );
    assert_eq!(by.skips, ["LegalReview"]);
    let entry = status.history.last().expect("history");
    assert_eq!(
        (entry.to.as_str(), entry.reviewer.as_deref()),
        ("BreakGlass", Some(COMMANDER))
    );

    // Rolled out at once, marked everywhere a person looks.
    pods_serve(&client, n, "fd", &digest_of(V2)).await;
    let mds: Api<ModelDeployment> = Api::namespaced(client.clone(), n);
    let md = mds.get("fd").await.expect("md");
    assert_eq!(satisfied_reason(&md).as_deref(), Some("BreakGlass"));
    let mark = md
        .status
        .as_ref()
        .and_then(|s| s.break_glass.clone())
        .unwrap_or_default();
    assert!(
        mark.starts_with("inc-4711 until ") && mark.ends_with("without LegalReview"),
        "{mark}"
    );
    let table = text(&kubectl(&["get", "md", "fd", "-n", n]));
    assert!(
        table.contains("BREAK-GLASS") && table.contains("inc-4711 until"),
        "{table}"
    );
    let approvals_table = text(&kubectl(&["get", "ma", "fd-v2", "-n", n]));
    assert!(approvals_table.contains("BreakGlass"), "{approvals_table}");
    // Argo CD: both Degraded, with the break-glass in the message.
    let (state, said) = health("ModelDeployment", &serde_json::to_value(&md).expect("json"));
    assert_eq!(state, "Degraded", "{said}");
    assert!(said.contains("by break-glass inc-4711 until"), "{said}");
    let (state, said) = health(
        "ModelApproval",
        &serde_json::to_value(&released).expect("json"),
    );
    assert_eq!(state, "Degraded", "{said}");
    assert!(said.contains("released by break-glass inc-4711"), "{said}");
    let ready = kubectl(&[
        "wait",
        "--for=condition=Ready",
        "breakglass/inc-4711",
        "-n",
        n,
        "--timeout=30s",
    ]);
    assert!(ready.status.success(), "{}", text(&ready));
    event_about(&client, n, "fd-v2", 30, |e| {
        e.reason.as_deref() == Some("BreakGlass")
    })
    .await;
    let metrics = eventually(20, "the BreakGlass phase counted", || async {
        let (_, m) = http_get(addr, "/metrics");
        (sample(&m, "modelgate_approvals{phase=\"BreakGlass\"}") >= 1.0).then_some(m)
    })
    .await;
    assert!(
        sample(
            &metrics,
            "modelgate_break_glass_transitions_total{phase=\"Active\"}"
        ) >= 1.0
    );

    // The skipped gate passes in the window: Approved, the mark clears.
    set_gate(n, "fd-v2", "LegalReview", "True", "lena@example.com")
        .await
        .expect("ratify");
    let approvals: Api<ModelApproval> = Api::namespaced(client.clone(), n);
    let ratified = approval_phase(&approvals, "fd-v2", ApprovalPhase::Approved).await;
    let last = ratified
        .status
        .as_ref()
        .and_then(|s| s.history.last().cloned())
        .expect("history");
    assert_eq!(last.reason.as_deref(), Some("BreakGlassRatified"));
    let bgs: Api<BreakGlass> = Api::namespaced(client.clone(), n);
    break_glass_phase(&bgs, "inc-4711", BreakGlassPhase::Ratified).await;
    eventually(30, "the mark to clear", || async {
        let md = mds.get("fd").await.ok()?;
        let s = md.status.as_ref()?;
        (s.break_glass.is_none() && satisfied_reason(&md).as_deref() == Some("ApprovalApproved"))
            .then_some(())
    })
    .await;
    pods_serve(&client, n, "fd", &digest_of(V2)).await;
    let md = mds.get("fd").await.expect("md");
    let (state, said) = health("ModelDeployment", &serde_json::to_value(&md).expect("json"));
    assert_eq!(state, "Healthy", "{said}");
    break_glass_records_verify_offline(&client, n).await;
}

/// The records of the break-glass and of its ratification are exported
/// and verified offline; the first names who asked and who approved.
async fn break_glass_records_verify_offline(client: &kube::Client, n: &str) {
    let records: Api<ApprovalRecord> = Api::namespaced(client.clone(), n);
    eventually(60, "the records of fd-v2", || async {
        let list = records.list(&Default::default()).await.ok()?;
        let phases: Vec<String> = list
            .items
            .iter()
            .filter(|r| r.spec.approval.name == "fd-v2")
            .map(|r| r.spec.phase.clone())
            .collect();
        (phases.contains(&"BreakGlass".to_string()) && phases.contains(&"Approved".to_string()))
            .then_some(())
    })
    .await;
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("bg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let bundle = dir.join("audit.jsonl");
    let out = run_plugin(
        n,
        None,
        &["audit", "export", "-o", &bundle.to_string_lossy()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let keys = dir.join("audit.pub.pem");
    let out = audit(n, "verify", &bundle, ("--keys", &keys));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let exported = std::fs::read_to_string(&bundle).expect("bundle");
    let statements: Vec<serde_json::Value> = exported
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|e| {
            use base64::Engine;
            let payload = base64::engine::general_purpose::STANDARD
                .decode(e["payload"].as_str()?)
                .ok()?;
            serde_json::from_slice(&payload).ok()
        })
        .collect();
    let glass = statements
        .iter()
        .find(|s| s["predicate"]["phase"] == "BreakGlass")
        .expect("a signed record of the break-glass");
    assert_eq!(glass["predicate"]["breakGlass"]["requestedBy"], COMMANDER);
    assert_eq!(glass["predicate"]["breakGlass"]["approvedBy"][0], APPROVER);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_ratification_the_window_ends_and_every_pod_serves_the_reviewed_version_again() {
    start_operator();
    let client = install_modelgate().await;
    let ns = incident(&client, "bg-lapse", 2).await;
    let n = ns.name.as_str();
    release(&client, n, "inc-4712", "25s").await;
    pods_serve(&client, n, "fd", &digest_of(V2)).await;

    let approvals: Api<ModelApproval> = Api::namespaced(client.clone(), n);
    let lapsed = approval_phase(&approvals, "fd-v2", ApprovalPhase::Pending).await;
    let last = lapsed
        .status
        .as_ref()
        .and_then(|s| s.history.last().cloned())
        .expect("history");
    assert_eq!(last.reason.as_deref(), Some("BreakGlassLapsed"));
    let bgs: Api<BreakGlass> = Api::namespaced(client.clone(), n);
    let bg = break_glass_phase(&bgs, "inc-4712", BreakGlassPhase::Lapsed).await;
    let message = bg.status.and_then(|s| s.message).unwrap_or_default();
    assert!(message.contains("window ended"), "{message}");
    let mds: Api<ModelDeployment> = Api::namespaced(client.clone(), n);
    let revoked = phase(&mds, "fd", DeploymentPhase::Revoked).await;
    assert_eq!(satisfied_reason(&revoked).as_deref(), Some("RolledBack"));
    // Every pod: back on the reviewed 2.4.0, none left on 2.4.1.
    pods_serve(&client, n, "fd", &digest_of(V1)).await;
    // A later approval of the same break-glass changes nothing: lapsed is final.
    approve_break_glass(n, "inc-4712", "dana@example.com", &[ON_CALL])
        .await
        .expect("admitted");
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let still = approvals.get("fd-v2").await.expect("approval");
    assert_eq!(
        still.status.and_then(|s| s.phase),
        Some(ApprovalPhase::Pending)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_models_owner_alone_releases_nothing_and_nobody_writes_in_anothers_name() {
    start_operator();
    let client = install_modelgate().await;
    let ns = incident(&client, "bg-refuse", 2).await;
    let n = ns.name.as_str();
    bind_developer(&client, n).await;
    let bgs: Api<BreakGlass> = Api::namespaced(client.clone(), n);

    // The model's owner, with edit: no break-glass at all.
    refused(
        "the model owner's break-glass",
        request_break_glass(
            n,
            &skipping_legal("owner", "1h"),
            DEVELOPER,
            &[DEVELOPER_GROUP],
        )
        .await,
        &["breakglasses"],
    )
    .with_code(&[403]);
    // Given the break-glass role but named by no policy: refused by the
    // operator, and their own approval counts for nothing.
    bind_break_glass_user(&client, n, DEVELOPER).await;
    request_break_glass(
        n,
        &skipping_legal("owner", "1h"),
        DEVELOPER,
        &[DEVELOPER_GROUP],
    )
    .await
    .expect("created");
    let refused_bg = break_glass_phase(&bgs, "owner", BreakGlassPhase::Refused).await;
    let message = refused_bg
        .status
        .and_then(|s| s.message)
        .unwrap_or_default();
    assert!(
        message.contains("dev@example.com may not request"),
        "{message}"
    );

    // In another's name, or claiming another's group: refused at admission.
    refused(
        "a request in another's name",
        {
            let api: Api<BreakGlass> = Api::namespaced(person(COMMANDER, &[COMMANDERS]).await, n);
            api.create(
                &PostParams::default(),
                &break_glass(
                    &skipping_legal("forged", "1h"),
                    "ceo@example.com",
                    &[COMMANDERS],
                ),
            )
            .await
        },
        &["names its own requester", "not ceo@example.com"],
    );
    refused(
        "a request claiming a group not held",
        {
            let api: Api<BreakGlass> =
                Api::namespaced(person(DEVELOPER, &[DEVELOPER_GROUP]).await, n);
            api.create(
                &PostParams::default(),
                &break_glass(&skipping_legal("claimed", "1h"), DEVELOPER, &[COMMANDERS]),
            )
            .await
        },
        &["incident-commanders is not one of them"],
    );
    // Longer than the policy allows: refused by the operator.
    request_break_glass(
        n,
        &skipping_legal("too-long", "9h"),
        COMMANDER,
        &COMMANDER_GROUPS,
    )
    .await
    .expect("created");
    let long = break_glass_phase(&bgs, "too-long", BreakGlassPhase::Refused).await;
    assert!(
        long.status
            .and_then(|s| s.message)
            .unwrap_or_default()
            .contains("maxDuration 8h")
    );

    // An approval in another's name, or the operator's fields: refused.
    request_break_glass(
        n,
        &skipping_legal("inc-4713", "1h"),
        COMMANDER,
        &COMMANDER_GROUPS,
    )
    .await
    .expect("created");
    break_glass_phase(&bgs, "inc-4713", BreakGlassPhase::AwaitingApproval).await;
    let before = bgs.get("inc-4713").await.expect("read");
    let forged = serde_json::json!({"apiVersion": "modelgate.io/v1alpha1", "kind": "BreakGlass",
        "status": {"approvals": [{"user": APPROVER, "groups": [ON_CALL]}]}});
    let as_owner: Api<BreakGlass> = Api::namespaced(person(DEVELOPER, &[DEVELOPER_GROUP]).await, n);
    refused(
        "an approval in the on-call's name",
        as_owner
            .patch_status(
                "inc-4713",
                &PatchParams::apply("forger"),
                &Patch::Apply(&forged),
            )
            .await,
        &["names its own approver", "not bob@example.com"],
    );
    let active = serde_json::json!({"apiVersion": "modelgate.io/v1alpha1", "kind": "BreakGlass",
        "status": {"phase": "Active"}});
    let as_commander: Api<BreakGlass> =
        Api::namespaced(person(COMMANDER, &COMMANDER_GROUPS).await, n);
    refused(
        "the phase set by the requester",
        as_commander
            .patch_status(
                "inc-4713",
                &PatchParams::apply("forger").force(),
                &Patch::Apply(&active),
            )
            .await,
        &["only the modelgate operator sets a break-glass phase"],
    );
    let after = bgs.get("inc-4713").await.expect("read");
    assert_eq!(after.status, before.status, "nothing changed");
    // A reviewer, who may write the approval's status, may not write its
    // break-glass there.
    let legal = person(
        "lena@example.com",
        &[group_of("LegalReview").expect("group")],
    )
    .await;
    let forged = serde_json::json!({"apiVersion": "modelgate.io/v1alpha1", "kind": "ModelApproval",
        "status": {"breakGlass": {"name": "inc-4713", "requestedBy": COMMANDER, "approvedBy": [APPROVER],
            "reason": "forged", "skips": ["LegalReview"], "since": "2026-01-01T00:00:00Z", "until": "2099-01-01T00:00:00Z"}}});
    refused(
        "a break-glass written into the approval by a reviewer",
        Api::<ModelApproval>::namespaced(legal, n)
            .patch_status(
                "fd-v2",
                &PatchParams::apply("forger"),
                &Patch::Apply(&forged),
            )
            .await,
        &["operator"],
    );
    let approvals: Api<ModelApproval> = Api::namespaced(client.clone(), n);
    let a = approvals.get("fd-v2").await.expect("approval");
    assert_eq!(a.status.and_then(|s| s.phase), Some(ApprovalPhase::Pending));
    pods_serve(&client, n, "fd", &digest_of(V1)).await;
}
