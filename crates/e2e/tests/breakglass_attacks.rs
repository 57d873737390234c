//! Attacks on break-glass that once worked, on the real control plane: a
//! break-glass that ended released again, a request whose status the
//! operator could not write held up the records of the approval it named,
//! and a request with an owner could be deleted by the garbage collector.
//! And the refusals that hold: the operator's fields, the spec, deleting.

use std::time::Duration;

use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use modelgate::api::approval::{ApprovalPhase, ModelApproval};
use modelgate::api::breakglass::{BreakGlass, BreakGlassPhase};
use modelgate::api::deployment::{DeploymentPhase, ModelDeployment};
use modelgate::api::policy::ApprovalPolicy;
use modelgate::api::record::ApprovalRecord;
use modelgate_e2e::breakglass::*;
use modelgate_e2e::refusal::refused;
use modelgate_e2e::{cluster::*, fixtures::*, operator::*, pods::*, users::*, wait::*};

const V1: &str = "2.4.0";
const V2: &str = "2.4.1";
const LEGAL: &str = "lena@example.com";

async fn bg_phase(api: &Api<BreakGlass>, name: &str, want: BreakGlassPhase) -> BreakGlass {
    eventually(60, &format!("bg {name} {}", want.as_str()), || async {
        let bg = api.get(name).await.ok()?;
        (bg.status.as_ref()?.phase == Some(want)).then_some(bg)
    })
    .await
}

async fn approval_phase(
    api: &Api<ModelApproval>,
    name: &str,
    want: ApprovalPhase,
) -> ModelApproval {
    eventually(60, &format!("{name} {want}"), || async {
        let a = api.get(name).await.ok()?;
        (a.status.as_ref()?.phase == Some(want)).then_some(a)
    })
    .await
}

/// The phase `name` holds after `secs` (to see that nothing changes).
async fn phase_after(api: &Api<ModelApproval>, name: &str, secs: u64) -> Option<ApprovalPhase> {
    tokio::time::sleep(Duration::from_secs(secs)).await;
    api.get(name).await.ok()?.status?.phase
}

fn request<'a>(name: &'a str, duration: &'a str) -> Request<'a> {
    Request {
        name,
        approval: "fd-v2",
        skips: &["LegalReview"],
        duration,
    }
}

/// fd-v2 with every gate passed but `open`.
async fn approval_open(client: &kube::Client, n: &str, open: &[&str]) {
    let approvals: Api<ModelApproval> = Api::namespaced(client.clone(), n);
    model_approval("fd-v2").version(V2).create(&approvals).await;
    for gate in [
        "TechnicalReview",
        "FairnessReview",
        "SecurityReview",
        "LegalReview",
        "BusinessReview",
    ]
    .into_iter()
    .filter(|g| !open.contains(g))
    {
        let who = format!("{}@example.com", gate.to_lowercase());
        set_gate(n, "fd-v2", gate, "True", &who)
            .await
            .expect("pass gate");
    }
    eventually(30, "fd-v2 pending", || async {
        let a = approvals.get("fd-v2").await.ok()?;
        let s = a.status?;
        (s.phase == Some(ApprovalPhase::Pending) && s.policy.is_some()).then_some(())
    })
    .await;
}

/// The commander requests, the on-call approves.
async fn request_and_approve(n: &str, name: &str, duration: &str) {
    request_break_glass(n, &request(name, duration), COMMANDER, &[COMMANDERS])
        .await
        .expect("request");
    approve_break_glass(n, name, APPROVER, &[ON_CALL])
        .await
        .expect("approve");
}

/// A namespace with the break-glass policy and roles.
async fn setup(client: &kube::Client, prefix: &str) -> TestNamespace {
    let ns = TestNamespace::new(client, prefix).await;
    break_glass_policy(client, &ns.name, "8h").await;
    bind_break_glass(client, &ns.name).await;
    ns
}

/// 2.4.0 serves (onRevoke Rollback), the ModelDeployment names 2.4.1 which
/// waits on LegalReview alone.
async fn incident(client: &kube::Client, prefix: &str) -> TestNamespace {
    let ns = setup(client, prefix).await;
    let n = ns.name.as_str();
    let approvals: Api<ModelApproval> = Api::namespaced(client.clone(), n);
    let mds: Api<ModelDeployment> = Api::namespaced(client.clone(), n);
    model_approval("fd-v1").version(V1).create(&approvals).await;
    approve_all(n, "fd-v1").await;
    let md = model_deployment("fd")
        .approval("fd-v1")
        .replicas(1)
        .on_revoke("Rollback")
        .build();
    mds.create(&PostParams::default(), &md).await.expect("md");
    pods_serve(client, n, "fd", &digest_of(V1)).await;
    approval_open(client, n, &["LegalReview"]).await;
    let point = serde_json::json!({"spec": {"approvalRef": {"name": "fd-v2"}}});
    mds.patch("fd", &PatchParams::default(), &Patch::Merge(&point))
        .await
        .expect("point at 2.4.1");
    phase(&mds, "fd", DeploymentPhase::AwaitingApproval).await;
    ns
}

/// Attack: a break-glass that lapsed because a reviewer failed a gate in
/// its window is revived when that gate is reset to Unknown: a Lapsed
/// (final) break-glass must release nothing again.
#[tokio::test(flavor = "multi_thread")]
async fn a_lapsed_break_glass_stays_lapsed_when_the_failed_gate_is_reset() {
    start_operator();
    let client = install_modelgate().await;
    let ns = incident(&client, "rt-lapsed").await;
    let n = ns.name.as_str();
    let approvals: Api<ModelApproval> = Api::namespaced(client.clone(), n);
    let bgs: Api<BreakGlass> = Api::namespaced(client.clone(), n);
    request_and_approve(n, "inc-1", "1h").await;
    approval_phase(&approvals, "fd-v2", ApprovalPhase::BreakGlass).await;
    pods_serve(&client, n, "fd", &digest_of(V2)).await;
    // The legal reviewer fails the skipped gate: the release ends at once.
    set_gate(n, "fd-v2", "LegalReview", "False", LEGAL)
        .await
        .expect("fail");
    approval_phase(&approvals, "fd-v2", ApprovalPhase::Rejected).await;
    bg_phase(&bgs, "inc-1", BreakGlassPhase::Lapsed).await;
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
    let ns = setup(&client, "rt-refused").await;
    let n = ns.name.as_str();
    approval_open(&client, n, &["LegalReview", "BusinessReview"]).await;
    request_and_approve(n, "inc-2", "1h").await;
    let bgs: Api<BreakGlass> = Api::namespaced(client.clone(), n);
    let refused_bg = bg_phase(&bgs, "inc-2", BreakGlassPhase::Refused).await;
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
    let ns = setup(&client, "rt-ratified").await;
    let n = ns.name.as_str();
    approval_open(&client, n, &["LegalReview"]).await;
    request_and_approve(n, "inc-3", "1h").await;
    let approvals: Api<ModelApproval> = Api::namespaced(client.clone(), n);
    approval_phase(&approvals, "fd-v2", ApprovalPhase::BreakGlass).await;
    set_gate(n, "fd-v2", "LegalReview", "True", LEGAL)
        .await
        .expect("ratify");
    approval_phase(&approvals, "fd-v2", ApprovalPhase::Approved).await;
    let bgs: Api<BreakGlass> = Api::namespaced(client.clone(), n);
    bg_phase(&bgs, "inc-3", BreakGlassPhase::Ratified).await;
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
    let body = serde_json::json!({
        "apiVersion": "modelgate.io/v1alpha1", "kind": "ApprovalPolicy",
        "metadata": {"name": "default", "namespace": n},
        "spec": {"breakGlass": {
            "requesters": {"users": users, "groups": [COMMANDERS]},
            "approvers": {"groups": [ON_CALL]},
            "maxDuration": "8h",
        }},
    });
    let policies: Api<ApprovalPolicy> = Api::namespaced(client.clone(), n);
    policies
        .patch(
            "default",
            &PatchParams::apply("policy-admin").force(),
            &Patch::Apply(&body),
        )
        .await
        .expect("policy");
    eventually(60, "the policy observed", || async {
        let p = policies.get("default").await.ok()?;
        (p.status?.observed_generation == p.metadata.generation).then_some(())
    })
    .await;
    bind_break_glass(&client, n).await;
    bind_break_glass_user(&client, n, DEVELOPER).await;
    approval_open(&client, n, &["LegalReview"]).await;
    request_break_glass(n, &request("poison", "1h"), DEVELOPER, &[DEVELOPER_GROUP])
        .await
        .expect("created");
    tokio::time::sleep(Duration::from_secs(2)).await;
    request_and_approve(n, "inc-4", "1h").await;
    let approvals: Api<ModelApproval> = Api::namespaced(client.clone(), n);
    approval_phase(&approvals, "fd-v2", ApprovalPhase::BreakGlass).await;
    let records: Api<ApprovalRecord> = Api::namespaced(client.clone(), n);
    eventually(45, "the signed record of the break-glass", || async {
        let list = records.list(&Default::default()).await.ok()?;
        list.items
            .iter()
            .any(|r| r.spec.approval.name == "fd-v2" && r.spec.phase == "BreakGlass")
            .then_some(())
    })
    .await;
    let bgs: Api<BreakGlass> = Api::namespaced(client.clone(), n);
    let poison = bg_phase(&bgs, "poison", BreakGlassPhase::Refused).await;
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
    let ns = setup(&client, "rt-owners").await;
    let n = ns.name.as_str();
    approval_open(&client, n, &["LegalReview"]).await;
    let mut bg = break_glass(&request("owned", "1h"), COMMANDER, &[COMMANDERS]);
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
    let ns = setup(&client, "rt-refusals").await;
    let n = ns.name.as_str();
    bind_developer(&client, n).await;
    approval_open(&client, n, &["LegalReview"]).await;
    let bgs: Api<BreakGlass> = Api::namespaced(client.clone(), n);
    let approvals: Api<ModelApproval> = Api::namespaced(client.clone(), n);

    // A status sent with the create is dropped (status subresource).
    let mut forged = break_glass(&request("with-status", "1h"), COMMANDER, &[COMMANDERS]);
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
    let awaiting = bg_phase(&bgs, "with-status", BreakGlassPhase::AwaitingApproval).await;
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

/// A BreakGlass by the developer (who holds the break-glass role but is
/// named by no policy), naming `approval`, padded with a managedFields
/// entry of `keys` made-up fields: the API server keeps what a client sends
/// there, and no admission policy measures it.
async fn padded(n: &str, name: &str, approval: &str, keys: usize) -> kube::Result<BreakGlass> {
    let mut bg = break_glass(
        &Request {
            name,
            approval,
            skips: &["LegalReview"],
            duration: "1h",
        },
        DEVELOPER,
        &[DEVELOPER_GROUP],
    );
    let fields: serde_json::Map<String, serde_json::Value> = (0..keys)
        .map(|i| (format!("f:k{i:07}"), serde_json::json!({})))
        .collect();
    bg.metadata.managed_fields = Some(vec![
        serde_json::from_value(serde_json::json!({
            "manager": "padding", "operation": "Update", "apiVersion": "modelgate.io/v1alpha1",
            "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:annotations": fields}},
        }))
        .expect("managed fields"),
    ]);
    let api: Api<BreakGlass> = Api::namespaced(developer().await, n);
    api.create(&PostParams::default(), &bg).await
}

/// Attack: a BreakGlass padded to just under the size etcd accepts, so
/// that the operator's status write on it fails on every reconcile: the
/// approval it names then got no Events and no signed records.
#[tokio::test(flavor = "multi_thread")]
async fn a_padded_break_glass_does_not_stop_the_records_of_a_release() {
    start_operator();
    let client = install_modelgate().await;
    let ns = setup(&client, "rt-padded").await;
    let n = ns.name.as_str();
    bind_break_glass_user(&client, n, DEVELOPER).await;
    approval_open(&client, n, &["LegalReview"]).await;
    // Labels and annotations are bounded by the object-size policy.
    let mut labelled = break_glass(&request("labelled", "1h"), DEVELOPER, &[DEVELOPER_GROUP]);
    labelled.metadata.labels = Some(
        (0..600)
            .map(|i| (format!("{}{i:05}", "k".repeat(58)), "v".repeat(63)))
            .collect(),
    );
    refused(
        "a BreakGlass with 75 KiB of labels",
        Api::<BreakGlass>::namespaced(developer().await, n)
            .create(&PostParams::default(), &labelled)
            .await,
        &["too large"],
    );
    // The most made-up managed fields a BreakGlass can be created with
    // (naming no approval).
    let (mut fits, mut too_many) = (0usize, 200_000usize);
    let mut probe = 0;
    while too_many - fits > 1 {
        let mid = (fits + too_many) / 2;
        probe += 1;
        // Kept, or refused (too large for etcd), or dropped by the API
        // server (too large to decode).
        let kept = padded(n, &format!("probe-{probe}"), "none", mid)
            .await
            .is_ok_and(|bg| {
                bg.metadata
                    .managed_fields
                    .iter()
                    .flatten()
                    .any(|m| m.manager.as_deref() == Some("padding"))
            });
        if kept {
            fits = mid;
        } else {
            too_many = mid;
        }
    }
    assert!(fits > 10_000, "only {fits} made-up managed fields fit");
    padded(n, "poison", "fd-v2", fits)
        .await
        .expect("the padded request");
    tokio::time::sleep(Duration::from_secs(2)).await;
    request_and_approve(n, "inc-6", "1h").await;
    let approvals: Api<ModelApproval> = Api::namespaced(client.clone(), n);
    approval_phase(&approvals, "fd-v2", ApprovalPhase::BreakGlass).await;
    let records: Api<ApprovalRecord> = Api::namespaced(client.clone(), n);
    eventually(45, "the signed record of the break-glass", || async {
        let list = records.list(&Default::default()).await.ok()?;
        list.items
            .iter()
            .any(|r| r.spec.approval.name == "fd-v2" && r.spec.phase == "BreakGlass")
            .then_some(())
    })
    .await;
    let bgs: Api<BreakGlass> = Api::namespaced(client.clone(), n);
    bg_phase(&bgs, "inc-6", BreakGlassPhase::Active).await;
    // Its own status is all it holds up.
    let poison = bgs.get("poison").await.expect("poison");
    assert_eq!(poison.status.and_then(|s| s.phase), None);
}
