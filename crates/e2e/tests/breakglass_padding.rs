//! A break-glass request padded to the size etcd accepts, through made-up
//! managed fields (the API server keeps what a client sends there, and no
//! admission policy measures it): the operator cannot write its status, and
//! once could not write the Events and signed records of the approval it
//! names either. On its own: its large objects slow every reconcile beside
//! it.

use std::time::Duration;

use kube::api::{Api, PostParams};
use modelgate::api::approval::{ApprovalPhase, ModelApproval};
use modelgate::api::breakglass::{BreakGlass, BreakGlassPhase};
use modelgate_e2e::breakglass::*;
use modelgate_e2e::refusal::refused;
use modelgate_e2e::{cluster::*, operator::*, users::*};

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
    let ns = break_glass_namespace(&client, "rt-padded").await;
    let n = ns.name.as_str();
    bind_break_glass_user(&client, n, DEVELOPER).await;
    approval_waiting_on(&client, n, ("fd-v2", "2.4.1"), &["LegalReview"]).await;
    // Labels and annotations are bounded by the object-size policy.
    let mut labelled = break_glass(
        &skipping_legal("labelled", "1h"),
        DEVELOPER,
        &[DEVELOPER_GROUP],
    );
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
    request_and_approve(n, &skipping_legal("inc-6", "1h")).await;
    let approvals: Api<ModelApproval> = Api::namespaced(client.clone(), n);
    approval_phase(&approvals, "fd-v2", ApprovalPhase::BreakGlass).await;
    record_of(&client, n, "fd-v2", "BreakGlass").await;
    let bgs: Api<BreakGlass> = Api::namespaced(client.clone(), n);
    break_glass_phase(&bgs, "inc-6", BreakGlassPhase::Active).await;
    // Its own status is all it holds up.
    let poison = bgs.get("poison").await.expect("poison");
    assert_eq!(poison.status.and_then(|s| s.phase), None);
}
