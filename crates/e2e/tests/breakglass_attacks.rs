//! Attacks on break-glass that once worked, on the real control plane: a
//! break-glass that ended released again, a refusal the operator could not
//! write held up the records of the approval it named, and a request with
//! an owner could be deleted by the garbage collector. And the refusals
//! that hold: the operator's fields, the spec, deleting. (A request padded
//! to etcd's limit is in breakglass_padding.rs, on its own: its large
//! objects slow every reconcile beside it.)

use std::time::Duration;

use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use modelgate::api::approval::{ApprovalPhase, ModelApproval};
use modelgate::api::breakglass::{BreakGlass, BreakGlassPhase};
use modelgate::api::deployment::ModelDeployment;
use modelgate_e2e::breakglass::*;
use modelgate_e2e::refusal::refused;
use modelgate_e2e::{cluster::*, fixtures::*, operator::*, pods::*, users::*};

const V1: &str = "2.4.0";
const V2: &str = "2.4.1";
const LEGAL: &str = "lena@example.com";

/// The phase `name` holds after `secs` (to see that nothing changes).
async fn phase_after(api: &Api<ModelApproval>, name: &str, secs: u64) -> Option<ApprovalPhase> {
    tokio::time::sleep(Duration::from_secs(secs)).await;
    api.get(name).await.ok()?.status?.phase
}

/// Attack: a break-glass that lapsed because a reviewer failed a gate in
/// its window is revived when that gate is reset to Unknown: a Lapsed
/// (final) break-glass must release nothing again.
#[tokio::test(flavor = "multi_thread")]
async fn a_lapsed_break_glass_stays_lapsed_when_the_failed_gate_is_reset() {
    start_operator();
    let client = install_modelgate().await;
    let ns = incident(&client, "rt-lapsed", 1).await;
    let n = ns.name.as_str();
    let approvals: Api<ModelApproval> = Api::namespaced(client.clone(), n);
    let bgs: Api<BreakGlass> = Api::namespaced(client.clone(), n);
    request_and_approve(n, &skipping_legal("inc-1", "1h")).await;
    approval_phase(&approvals, "fd-v2", ApprovalPhase::BreakGlass).await;
    pods_serve(&client, n, "fd", &digest_of(V2)).await;
    // The legal reviewer fails the skipped gate: the release ends at once.
    set_gate(n, "fd-v2", "LegalReview", "False", LEGAL)
        .await
        .expect("fail");
    approval_phase(&approvals, "fd-v2", ApprovalPhase::Rejected).await;
    break_glass_phase(&bgs, "inc-1", BreakGlassPhase::Lapsed).await;
    pods_serve(&client, n, "fd", &digest_of(V1)).await;
    // ...and resets it, still inside the window.
    set_gate(n, "fd-v2", "LegalReview", "Unknown", LEGAL)
        .await
        .expect("reset");
    assert_eq!(
        phase_after(&approvals, "fd-v2", 5).await,
        Some(ApprovalPhase::Pending),
        "a Lapsed break-glass released the approval again"
    );
    let mds: Api<ModelDeployment> = Api::namespaced(client.clone(), n);
    let md = mds.get("fd").await.expect("md");
    assert_ne!(satisfied_reason(&md).as_deref(), Some("BreakGlass"));
    pods_serve(&client, n, "fd", &digest_of(V1)).await;
}

/// Attack: a break-glass Refused because an open gate was not skipped
/// releases the approval later, once that other gate passes.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_break_glass_never_releases_later() {
    start_operator();
    let client = install_modelgate().await;
    let ns = break_glass_namespace(&client, "rt-refused").await;
    let n = ns.name.as_str();
    approval_waiting_on(
        &client,
        n,
        ("fd-v2", V2),
        &["LegalReview", "BusinessReview"],
    )
    .await;
    request_and_approve(n, &skipping_legal("inc-2", "1h")).await;
    let bgs: Api<BreakGlass> = Api::namespaced(client.clone(), n);
    let refused_bg = break_glass_phase(&bgs, "inc-2", BreakGlassPhase::Refused).await;
    let message = refused_bg
        .status
        .and_then(|s| s.message)
        .unwrap_or_default();
    assert!(message.contains("BusinessReview is open"), "{message}");
    set_gate(
        n,
        "fd-v2",
        "BusinessReview",
        "True",
        "businessreview@example.com",
    )
    .await
    .expect("pass business");
    let approvals: Api<ModelApproval> = Api::namespaced(client.clone(), n);
    assert_eq!(
        phase_after(&approvals, "fd-v2", 5).await,
        Some(ApprovalPhase::Pending),
        "a Refused break-glass released the approval"
    );
}

/// Attack: after ratification, resetting the skipped gate inside the
/// window brings the release back under the Ratified break-glass.
#[tokio::test(flavor = "multi_thread")]
async fn a_ratified_break_glass_does_not_release_again() {
    start_operator();
    let client = install_modelgate().await;
    let ns = break_glass_namespace(&client, "rt-ratified").await;
    let n = ns.name.as_str();
    approval_waiting_on(&client, n, ("fd-v2", V2), &["LegalReview"]).await;
    request_and_approve(n, &skipping_legal("inc-3", "1h")).await;
    let approvals: Api<ModelApproval> = Api::namespaced(client.clone(), n);
    approval_phase(&approvals, "fd-v2", ApprovalPhase::BreakGlass).await;
    set_gate(n, "fd-v2", "LegalReview", "True", LEGAL)
        .await
        .expect("ratify");
    approval_phase(&approvals, "fd-v2", ApprovalPhase::Approved).await;
    let bgs: Api<BreakGlass> = Api::namespaced(client.clone(), n);
    break_glass_phase(&bgs, "inc-3", BreakGlassPhase::Ratified).await;
    set_gate(n, "fd-v2", "LegalReview", "Unknown", LEGAL)
        .await
        .expect("reset");
    assert_eq!(
        phase_after(&approvals, "fd-v2", 5).await,
        Some(ApprovalPhase::Pending),
        "a Ratified break-glass released the approval again"
    );
}

/// Attack: someone with the break-glass role whom the policy does not
/// name files a request the operator cannot write the refusal of (its
/// message is longer than the schema allows, because the policy names many
/// requesters). Every reconcile of the approval then fails before its
/// Events and signed records: a real break-glass leaves no ApprovalRecord.
#[tokio::test(flavor = "multi_thread")]
async fn an_unwritable_refusal_does_not_stop_the_records_of_a_release() {
    start_operator();
    let client = install_modelgate().await;
    let ns = TestNamespace::new(&client, "rt-poison").await;
    let n = ns.name.as_str();
    let users: Vec<String> = (0..32)
        .map(|i| format!("incident-commander-{i:02}@payments-platform.eu-west.example.com"))
        .collect();
    let rule = serde_json::json!({"breakGlass": {
        "requesters": {"users": users, "groups": [COMMANDERS]},
        "approvers": {"groups": [ON_CALL]},
        "maxDuration": "8h",
    }});
    apply_policy(&client, n, rule).await;
    bind_break_glass(&client, n).await;
    bind_break_glass_user(&client, n, DEVELOPER).await;
    approval_waiting_on(&client, n, ("fd-v2", V2), &["LegalReview"]).await;
    request_break_glass(
        n,
        &skipping_legal("poison", "1h"),
        DEVELOPER,
        &[DEVELOPER_GROUP],
    )
    .await
    .expect("created");
    tokio::time::sleep(Duration::from_secs(2)).await;
    request_and_approve(n, &skipping_legal("inc-4", "1h")).await;
    let approvals: Api<ModelApproval> = Api::namespaced(client.clone(), n);
    approval_phase(&approvals, "fd-v2", ApprovalPhase::BreakGlass).await;
    record_of(&client, n, "fd-v2", "BreakGlass").await;
    let bgs: Api<BreakGlass> = Api::namespaced(client.clone(), n);
    let poison = break_glass_phase(&bgs, "poison", BreakGlassPhase::Refused).await;
    let message = poison.status.and_then(|s| s.message).unwrap_or_default();
    assert!(message.contains("may not request"), "{message}");
}

/// Attack: a requester sets ownerReferences on their BreakGlass, so that
/// the garbage collector deletes it once the owner is gone (where the
/// garbage collector acts as system:kube-controller-manager, a record
/// deleter by default). A BreakGlass is a record: it takes no owners.
#[tokio::test(flavor = "multi_thread")]
async fn a_break_glass_takes_no_owner_references() {
    start_operator();
    let client = install_modelgate().await;
    let ns = break_glass_namespace(&client, "rt-owners").await;
    let n = ns.name.as_str();
    approval_waiting_on(&client, n, ("fd-v2", V2), &["LegalReview"]).await;
    let mut bg = break_glass(&skipping_legal("owned", "1h"), COMMANDER, &[COMMANDERS]);
    bg.metadata.owner_references = Some(vec![
        serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap", "name": "gone",
            "uid": "00000000-0000-0000-0000-000000000001",
        }))
        .expect("owner"),
    ]);
    let api: Api<BreakGlass> = Api::namespaced(person(COMMANDER, &[COMMANDERS]).await, n);
    refused(
        "a BreakGlass with an owner",
        api.create(&PostParams::default(), &bg).await,
        &["ownerReferences"],
    );
    let bgs: Api<BreakGlass> = Api::namespaced(client.clone(), n);
    assert!(bgs.get_opt("owned").await.expect("read").is_none());
}

/// Probes that must be refused: each is asserted refused and that nothing
/// changed.
#[tokio::test(flavor = "multi_thread")]
async fn the_operators_fields_the_spec_and_the_record_stay_out_of_reach() {
    start_operator();
    let client = install_modelgate().await;
    let ns = break_glass_namespace(&client, "rt-refusals").await;
    let n = ns.name.as_str();
    bind_developer(&client, n).await;
    approval_waiting_on(&client, n, ("fd-v2", V2), &["LegalReview"]).await;
    let bgs: Api<BreakGlass> = Api::namespaced(client.clone(), n);
    let approvals: Api<ModelApproval> = Api::namespaced(client.clone(), n);

    // A status sent with the create is dropped (status subresource).
    let mut forged = break_glass(
        &skipping_legal("with-status", "1h"),
        COMMANDER,
        &[COMMANDERS],
    );
    forged.status = serde_json::from_value(serde_json::json!({
        "approvals": [{"user": APPROVER, "groups": [ON_CALL]}],
        "phase": "Active", "activeSince": "2020-01-01T00:00:00Z", "until": "2099-01-01T00:00:00Z",
    }))
    .expect("status");
    let as_commander: Api<BreakGlass> =
        Api::namespaced(person(COMMANDER, &[COMMANDERS, ON_CALL]).await, n);
    as_commander
        .create(&PostParams::default(), &forged)
        .await
        .expect("created");
    let awaiting = break_glass_phase(&bgs, "with-status", BreakGlassPhase::AwaitingApproval).await;
    assert!(
        awaiting
            .status
            .clone()
            .unwrap_or_default()
            .approvals
            .is_empty()
    );
    assert_eq!(
        phase_after(&approvals, "fd-v2", 2).await,
        Some(ApprovalPhase::Pending)
    );

    // The requester changes the spec (longer, more gates), deletes it.
    refused(
        "the requester updates the spec",
        as_commander
            .patch(
                "with-status",
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"spec": {"duration": "8h"}})),
            )
            .await,
        &[],
    )
    .with_code(&[403]);
    refused(
        "an admin changes the spec",
        bgs.patch(
            "with-status",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"duration": "8h"}})),
        )
        .await,
        &["immutable"],
    );
    refused(
        "the requester deletes it",
        as_commander
            .delete("with-status", &DeleteParams::default())
            .await,
        &[],
    )
    .with_code(&[403]);
    let root: Api<BreakGlass> =
        Api::namespaced(person("root@example.com", &["system:masters"]).await, n);
    refused(
        "a cluster admin deletes it",
        root.delete("with-status", &DeleteParams::default()).await,
        &["is a record"],
    );

    // The approver: removes another's entry, writes the window.
    approve_break_glass(n, "with-status", "dana@example.com", &[COMMANDERS])
        .await
        .expect("dana, who is no approver");
    let as_bob: Api<BreakGlass> = Api::namespaced(person(APPROVER, &[ON_CALL]).await, n);
    let before = bgs.get("with-status").await.expect("read");
    let merge =
        serde_json::json!({"status": {"approvals": [{"user": APPROVER, "groups": [ON_CALL]}]}});
    refused(
        "the approver replaces the approvals list",
        as_bob
            .patch_status(
                "with-status",
                &PatchParams::default(),
                &Patch::Merge(&merge),
            )
            .await,
        &["dana@example.com"],
    );
    let stretch = serde_json::json!({"status": {"activeSince": "2099-01-01T00:00:00Z"}});
    refused(
        "the approver sets activeSince",
        as_bob
            .patch_status(
                "with-status",
                &PatchParams::default(),
                &Patch::Merge(&stretch),
            )
            .await,
        &["only the modelgate operator"],
    );
    let after = bgs.get("with-status").await.expect("read");
    assert_eq!(
        after.status.map(|s| s.approvals),
        before.status.map(|s| s.approvals)
    );

    // The developer: the approval's phase and break-glass, a BreakGlass.
    let as_dev: Api<ModelApproval> = Api::namespaced(developer().await, n);
    let phase = serde_json::json!({"status": {"phase": "BreakGlass"}});
    refused(
        "the developer writes the approval's phase",
        as_dev
            .patch_status("fd-v2", &PatchParams::default(), &Patch::Merge(&phase))
            .await,
        &[],
    );
    refused(
        "the developer writes the approval's metadata",
        as_dev
            .patch(
                "fd-v2",
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"metadata": {"labels": {"x": "y"}}})),
            )
            .await,
        &[],
    )
    .with_code(&[403]);
    assert_eq!(
        approvals
            .get("fd-v2")
            .await
            .ok()
            .and_then(|a| a.status?.phase),
        Some(ApprovalPhase::Pending)
    );
}
