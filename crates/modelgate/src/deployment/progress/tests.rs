//! Unit and property tests of the deployment decisions: the plan and the
//! status.

use k8s_openapi::api::apps::v1::Deployment;
use proptest::prelude::*;

use super::*;
use crate::deployment::desired;
use crate::deployment::rollout::{Plan, plan, window_end};

fn md(approval: &str, on_revoke: &str, namespace: Option<&str>) -> ModelDeployment {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "modelgate.io/v1alpha1", "kind": "ModelDeployment",
        "metadata": {"name": "fd", "namespace": "risk", "uid": "u-1", "generation": 1},
        "spec": {"approvalRef": {"name": approval, "namespace": namespace}, "replicas": 2, "onRevoke": on_revoke,
                 "template": {"spec": {"containers": [{"name": "s", "image": "s:1"}]}}},
    }))
    .unwrap_or_else(|e| panic!("fixture: {e}"))
}

fn approval(name: &str, version: &str, phase: Option<&str>, gates_true: usize) -> ModelApproval {
    let conditions: Vec<serde_json::Value> = Gate::ALL
        .iter()
        .take(gates_true)
        .map(|g| serde_json::json!({"type": g.condition_type(), "status": "True", "reviewer": "r"}))
        .collect();
    serde_json::from_value(serde_json::json!({
        "apiVersion": "modelgate.io/v1alpha1", "kind": "ModelApproval",
        "metadata": {"name": name, "namespace": "risk"},
        "spec": {"model": {"name": "fd", "version": version, "uri": "s3://m", "digest": format!("sha256:{}", "b".repeat(64))}},
        "status": {"phase": phase, "conditions": conditions},
    }))
    .unwrap_or_else(|e| panic!("fixture: {e}"))
}

/// A live Deployment serving `a`, with `ready` of 2 pods ready.
fn serving(m: &ModelDeployment, a: &ModelApproval, ready: i32) -> Deployment {
    let owner = k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
        uid: "u-1".into(),
        controller: Some(true),
        ..Default::default()
    };
    let mut d = desired::deployment(
        m,
        a.metadata.name.as_deref().unwrap_or_default(),
        &a.spec.model,
        owner,
    );
    d.metadata.generation = Some(1);
    d.status = serde_json::from_value(serde_json::json!({
        "observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "readyReplicas": ready, "availableReplicas": ready,
        "conditions": [{"type": "Available", "status": if ready == 2 { "True" } else { "False" }},
                       {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}],
    }))
    .ok();
    d
}

fn input<'a>(
    m: &'a ModelDeployment,
    linked: Linked<'a>,
    served: Option<&'a ModelApproval>,
    d: Option<&'a Deployment>,
) -> Input<'a> {
    Input {
        md: m,
        linked,
        served_approval: served,
        deployment: d,
        served_before: &[],
        running: &[],
        seal: None,
        now: "2026-11-25T10:00:00Z"
            .parse()
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH),
    }
}

fn cond<'a>(s: &'a ModelDeploymentStatus, t: &str) -> &'a Condition {
    condition::find(&s.conditions, t).unwrap_or_else(|| panic!("no {t}"))
}

#[test]
fn pending_approval_holds_and_lists_pending_gates() {
    let m = md("v2", "Hold", None);
    let a = approval("v2", "2.0", Some("Pending"), 2);
    let i = input(&m, Linked::Found(&a), None, None);
    assert_eq!(plan(&i), Plan::Hold);
    let d = status(&i, None, None);
    assert_eq!(d.status.phase, Some(DeploymentPhase::AwaitingApproval));
    assert_eq!(
        d.status.pending_gates,
        ["SecurityReview", "LegalReview", "BusinessReview"]
    );
    let c = cond(&d.status, APPROVAL_SATISFIED);
    assert_eq!(
        (c.status.as_str(), c.reason.as_deref()),
        (FALSE, Some("AwaitingReview"))
    );
    assert!(
        c.message
            .clone()
            .unwrap_or_default()
            .contains("waiting on SecurityReview, LegalReview, BusinessReview")
    );
    assert_eq!(
        d.transition.as_ref().map(|t| t.reason.as_str()),
        Some("AwaitingApproval")
    );
}

#[test]
fn approved_releases_and_reports_progress() {
    let m = md("v1", "Hold", None);
    let a = approval("v1", "1.0", Some("Approved"), 5);
    assert_eq!(
        plan(&input(&m, Linked::Found(&a), None, None)),
        Plan::Release(&a)
    );
    let rolling = serving(&m, &a, 1);
    let d = status(
        &input(&m, Linked::Found(&a), None, Some(&rolling)),
        Some(&rolling),
        None,
    );
    assert_eq!(d.status.phase, Some(DeploymentPhase::RollingOut));
    assert_eq!(d.status.ready.as_deref(), Some("1/2"));
    let done = serving(&m, &a, 2);
    let d = status(
        &input(&m, Linked::Found(&a), None, Some(&done)),
        Some(&done),
        None,
    );
    assert_eq!(d.status.phase, Some(DeploymentPhase::Available));
    assert_eq!(cond(&d.status, AVAILABLE).status, TRUE);
    assert_eq!(d.status.served_model.map(|s| s.version), Some("1.0".into()));
}

#[test]
fn a_new_pending_version_keeps_the_old_one_serving() {
    let m = md("v2", "Hold", None);
    let old = approval("v1", "1.0", Some("Approved"), 5);
    let new = approval("v2", "2.0", Some("Pending"), 0);
    let live = serving(&m, &old, 2);
    let i = input(&m, Linked::Found(&new), Some(&old), Some(&live));
    assert_eq!(plan(&i), Plan::Hold);
    let d = status(&i, Some(&live), None);
    assert_eq!(d.status.phase, Some(DeploymentPhase::AwaitingApproval));
    assert_eq!(
        d.status.served_model.as_ref().map(|s| s.approval.as_str()),
        Some("v1")
    );
    assert!(
        cond(&d.status, APPROVAL_SATISFIED)
            .message
            .clone()
            .unwrap_or_default()
            .contains("serving fd 1.0 (approval v1)")
    );
}

#[test]
fn revocation_holds_or_scales_to_zero() {
    for (on_revoke, want) in [("Hold", Plan::Freeze), ("ScaleToZero", Plan::ScaleToZero)] {
        let m = md("v1", on_revoke, None);
        let a = approval("v1", "1.0", Some("Rejected"), 4);
        let live = serving(&m, &a, 2);
        let i = input(&m, Linked::Found(&a), None, Some(&live));
        assert_eq!(plan(&i), want);
        let d = status(&i, Some(&live), None);
        assert_eq!(d.status.phase, Some(DeploymentPhase::Revoked));
        let c = cond(&d.status, APPROVAL_SATISFIED);
        assert_eq!(c.reason.as_deref(), Some("ApprovalRevoked"));
        assert_eq!(
            d.transition
                .as_ref()
                .map(|t| (t.severity, t.reason.as_str())),
            Some((Severity::Warning, "ApprovalRevoked"))
        );
    }
}

#[test]
fn deleting_the_serving_approval_revokes_with_its_own_reason() {
    for (on_revoke, want) in [("Hold", Plan::Freeze), ("ScaleToZero", Plan::ScaleToZero)] {
        let m = md("v1", on_revoke, None);
        let mut a = approval("v1", "1.0", Some("Approved"), 5);
        let live = serving(&m, &a, 2);
        a.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::UNIX_EPOCH));
        let i = input(&m, Linked::Found(&a), None, Some(&live));
        assert_eq!(plan(&i), want, "a deleted approval approves nothing");
        let d = status(&i, Some(&live), None);
        assert_eq!(d.status.phase, Some(DeploymentPhase::Revoked));
        let c = cond(&d.status, APPROVAL_SATISFIED);
        assert_eq!(c.reason.as_deref(), Some("ApprovalDeleted"));
        assert!(
            c.message
                .clone()
                .unwrap_or_default()
                .contains("was deleted")
        );
        assert_eq!(
            d.transition
                .as_ref()
                .map(|t| (t.severity, t.reason.as_str())),
            Some((Severity::Warning, "ApprovalDeleted"))
        );
    }
    // The served approval gone while a newer one waits: deleted as well.
    let m = md("v2", "Hold", None);
    let v1 = approval("v1", "1.0", Some("Approved"), 5);
    let v2 = approval("v2", "2.0", Some("Pending"), 1);
    let live = serving(&m, &v1, 2);
    let d = status(
        &input(&m, Linked::Found(&v2), None, Some(&live)),
        Some(&live),
        None,
    );
    assert_eq!(
        cond(&d.status, APPROVAL_SATISFIED).reason.as_deref(),
        Some("ApprovalDeleted")
    );
}

#[test]
fn missing_and_cross_namespace_approvals_are_conditions() {
    let m = md("nope", "Hold", None);
    let d = status(&input(&m, Linked::NotFound, None, None), None, None);
    assert_eq!(d.status.phase, Some(DeploymentPhase::AwaitingApproval));
    assert_eq!(
        cond(&d.status, APPROVAL_SATISFIED).reason.as_deref(),
        Some("ApprovalNotFound")
    );

    let m = md("v1", "Hold", Some("elsewhere"));
    let i = input(&m, Linked::OtherNamespace("elsewhere"), None, None);
    assert_eq!(plan(&i), Plan::Hold);
    let d = status(&i, None, None);
    assert_eq!(d.status.phase, Some(DeploymentPhase::Failed));
    assert_eq!(
        cond(&d.status, APPROVAL_SATISFIED).reason.as_deref(),
        Some("CrossNamespaceRef")
    );
}

#[test]
fn a_cross_namespace_ref_does_not_hide_a_revocation() {
    for (on_revoke, want) in [("Hold", Plan::Freeze), ("ScaleToZero", Plan::ScaleToZero)] {
        // Served v1, then pointed at "elsewhere"; v1 is rejected since.
        let m = md("v1", on_revoke, Some("elsewhere"));
        let v1 = approval("v1", "1.0", Some("Rejected"), 4);
        let live = serving(&m, &v1, 2);
        let i = input(
            &m,
            Linked::OtherNamespace("elsewhere"),
            Some(&v1),
            Some(&live),
        );
        assert_eq!(plan(&i), want);
        let d = status(&i, Some(&live), None);
        assert_eq!(d.status.phase, Some(DeploymentPhase::Revoked));
        let c = cond(&d.status, APPROVAL_SATISFIED);
        assert_eq!(c.reason.as_deref(), Some("ApprovalRevoked"));
        let message = c.message.clone().unwrap_or_default();
        assert!(message.contains("approvalRef names namespace"), "{message}");
        // While v1 stands, the ref is only a mistake: hold, and say so.
        let v1 = approval("v1", "1.0", Some("Approved"), 5);
        let i = input(
            &m,
            Linked::OtherNamespace("elsewhere"),
            Some(&v1),
            Some(&live),
        );
        assert_eq!(plan(&i), Plan::Hold);
        let d = status(&i, Some(&live), None);
        assert_eq!(d.status.phase, Some(DeploymentPhase::Failed));
        assert_eq!(
            cond(&d.status, APPROVAL_SATISFIED).reason.as_deref(),
            Some("CrossNamespaceRef")
        );
    }
}

#[test]
fn an_invalid_template_is_a_failed_phase_with_the_refusal() {
    let m = md("v1", "Hold", None);
    let a = approval("v1", "1.0", Some("Approved"), 5);
    let failure = ApplyFailure {
        reason: "InvalidTemplate",
        message: "spec.template.spec.containers[0].image: Required value".into(),
    };
    let d = status(
        &input(&m, Linked::Found(&a), None, None),
        None,
        Some(&failure),
    );
    assert_eq!(d.status.phase, Some(DeploymentPhase::Failed));
    let c = cond(&d.status, PROGRESSING);
    assert_eq!(c.reason.as_deref(), Some("InvalidTemplate"));
    assert!(
        c.message
            .clone()
            .unwrap_or_default()
            .contains("containers[0].image")
    );
}

#[test]
fn the_same_input_twice_is_no_change() {
    let mut m = md("v1", "Hold", None);
    let a = approval("v1", "1.0", Some("Approved"), 5);
    let live = serving(&m, &a, 2);
    let first = status(
        &input(&m, Linked::Found(&a), None, Some(&live)),
        Some(&live),
        None,
    );
    m.status = Some(first.status);
    let second = status(
        &input(&m, Linked::Found(&a), None, Some(&live)),
        Some(&live),
        None,
    );
    assert!(!second.changed && second.transition.is_none());
}

fn arb_phase() -> impl Strategy<Value = Option<&'static str>> {
    prop_oneof![
        Just(None),
        Just(Some("Pending")),
        Just(Some("Approved")),
        Just(Some("Rejected")),
        Just(Some("Expired"))
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// The safety property: nothing is released unless the linked approval
    /// is Approved; a revoked serving approval is never shown as Available.
    #[test]
    fn release_only_when_approved(linked_phase in arb_phase(), served_phase in arb_phase(), serving_linked in any::<bool>(),
                                  has_deployment in any::<bool>(), link in 0u8..3, scale in any::<bool>()) {
        let m = md("v2", if scale { "ScaleToZero" } else { "Hold" }, None);
        let linked = approval("v2", "2.0", linked_phase, 0);
        let served = approval("v1", "1.0", served_phase, 0);
        let live = serving(&m, if serving_linked { &linked } else { &served }, 2);
        let found = link == 0;
        let linked_as = match link {
            0 => Linked::Found(&linked),
            1 => Linked::NotFound,
            _ => Linked::OtherNamespace("elsewhere"),
        };
        let i = input(&m, linked_as,
                      if serving_linked { None } else { Some(&served) }, has_deployment.then_some(&live));
        let p = plan(&i);
        let approved = found && linked_phase == Some("Approved");
        prop_assert_eq!(p == Plan::Release(&linked), approved);
        // Unless an approved model replaces them, pods of a model whose
        // approval does not stand get onRevoke, whatever the ref says.
        let serving_stands = if serving_linked { approved } else { served_phase == Some("Approved") };
        if has_deployment && !serving_stands && !approved {
            prop_assert!(matches!(p, Plan::Freeze | Plan::ScaleToZero), "{:?}", p);
        }
        let d = status(&i, i.deployment, None);
        let phase = d.status.phase;
        if !approved {
            prop_assert_ne!(phase, Some(DeploymentPhase::Available));
            prop_assert_ne!(phase, Some(DeploymentPhase::RollingOut));
            prop_assert_eq!(cond(&d.status, APPROVAL_SATISFIED).status.as_str(), FALSE);
        }
        if p == Plan::ScaleToZero {
            prop_assert_eq!(phase, Some(DeploymentPhase::Revoked));
        }
    }
}

/// v2 served after v1; both approvals as given, with uids.
fn rollback_case(
    v1: &ModelApproval,
    v2: &ModelApproval,
    fallback: Option<&str>,
) -> ModelDeployment {
    let mut m = md("v2", "Rollback", None);
    m.spec.rollback_fallback = fallback.map(|f| match f {
        "ScaleToZero" => RollbackFallback::ScaleToZero,
        _ => RollbackFallback::Hold,
    });
    let entry = |a: &ModelApproval| ServedEntry {
        approval: a.metadata.name.clone().unwrap_or_default(),
        uid: "uid-".to_string() + a.metadata.name.as_deref().unwrap_or_default(),
        version: a.spec.model.version.clone(),
        digest: a.spec.model.digest.clone(),
        since: Time(jiff::Timestamp::UNIX_EPOCH),
    };
    m.status = Some(ModelDeploymentStatus {
        served_history: vec![entry(v2), entry(v1)],
        ..ModelDeploymentStatus::default()
    });
    m
}

fn with_uid(mut a: ModelApproval, uid: &str) -> ModelApproval {
    a.metadata.uid = Some(uid.into());
    a
}

#[test]
fn rollback_serves_the_newest_earlier_approval_that_still_stands() {
    let v1 = with_uid(approval("v1", "1.0", Some("Approved"), 5), "uid-v1");
    let v2 = with_uid(approval("v2", "2.0", Some("Rejected"), 4), "uid-v2");
    let m = rollback_case(&v1, &v2, None);
    let live = serving(&m, &v2, 2);
    let before = [v1.clone()];
    let i = Input {
        served_before: &before,
        ..input(&m, Linked::Found(&v2), None, Some(&live))
    };
    assert_eq!(plan(&i), Plan::Rollback(&v1));

    // Once v1 serves again: Revoked, reason RolledBack, saying what serves.
    let rolled = serving(&m, &v1, 2);
    let i = Input {
        served_before: &before,
        ..input(&m, Linked::Found(&v2), Some(&v1), Some(&rolled))
    };
    assert_eq!(plan(&i), Plan::Hold, "stay on v1");
    let d = status(&i, Some(&rolled), None);
    assert_eq!(d.status.phase, Some(DeploymentPhase::Revoked));
    let c = cond(&d.status, APPROVAL_SATISFIED);
    assert_eq!(c.reason.as_deref(), Some("RolledBack"));
    assert!(
        c.message
            .clone()
            .unwrap_or_default()
            .contains("serving the newest earlier approved version fd 1.0 (approval v1)")
    );
    assert_eq!(
        d.transition
            .as_ref()
            .map(|t| (t.severity, t.reason.as_str())),
        Some((Severity::Warning, "RolledBack"))
    );
    assert_eq!(
        d.status.served_history[0].approval, "v1",
        "the history's head is what serves"
    );
    assert_eq!(d.status.served_history[0].uid, "uid-v1");

    // v2 approved again: the normal rollout.
    let v2_again = with_uid(approval("v2", "2.0", Some("Approved"), 5), "uid-v2");
    assert_eq!(
        plan(&Input {
            served_before: &before,
            ..input(&m, Linked::Found(&v2_again), Some(&v1), Some(&rolled))
        }),
        Plan::Release(&v2_again)
    );
}

#[test]
fn rollback_never_picks_a_recreated_or_lapsed_approval_and_falls_back() {
    let v2 = with_uid(approval("v2", "2.0", Some("Rejected"), 4), "uid-v2");
    let recreated = with_uid(approval("v1", "1.0", Some("Approved"), 5), "another-uid");
    let expired = with_uid(approval("v1", "1.0", Some("Expired"), 5), "uid-v1");
    for (v1, fallback, want) in [
        (&recreated, None, Plan::Freeze),
        (&recreated, Some("ScaleToZero"), Plan::ScaleToZero),
        (&expired, Some("Hold"), Plan::Freeze),
    ] {
        let m = rollback_case(v1, &v2, fallback);
        let live = serving(&m, &v2, 2);
        let before = [v1.clone()];
        let i = Input {
            served_before: &before,
            ..input(&m, Linked::Found(&v2), None, Some(&live))
        };
        assert_eq!(plan(&i), want, "{fallback:?}");
        let c = status(&i, Some(&live), None);
        assert!(
            cond(&c.status, APPROVAL_SATISFIED)
                .message
                .clone()
                .unwrap_or_default()
                .contains("no earlier approved version qualifies"),
            "{:?}",
            c.status
        );
    }
}

fn running_model(a: &ModelApproval, pods: i32) -> RunningModel {
    RunningModel {
        approval: a.metadata.name.clone().unwrap_or_default(),
        name: a.spec.model.name.clone(),
        version: a.spec.model.version.clone(),
        digest: a.spec.model.digest.clone(),
        pods,
    }
}

#[test]
fn the_status_says_what_the_pods_run_not_only_the_template() {
    let m = md("v1", "Rollback", None);
    let v1 = approval("v1", "1.0", Some("Approved"), 5);
    let mut v2 = approval("v2", "2.0", Some("Rejected"), 4);
    v2.spec.model.digest = format!("sha256:{}", "c".repeat(64));
    // The template went back to v1, but the pods still run v2 (a paused
    // rollout): not Available, and SERVING names v2.
    let live = serving(&m, &v1, 2);
    let stale = [running_model(&v2, 2)];
    let i = Input {
        running: &stale,
        ..input(&m, Linked::Found(&v1), None, Some(&live))
    };
    let d = status(&i, Some(&live), None);
    assert_eq!(d.status.phase, Some(DeploymentPhase::RollingOut));
    let available = cond(&d.status, AVAILABLE);
    assert_eq!(available.reason.as_deref(), Some("OtherModelsRunning"));
    assert!(
        available
            .message
            .as_deref()
            .is_some_and(|m| m.contains("version 2.0 (approval v2, 2 pods)"))
    );
    assert_eq!(
        d.status.served_model.map(|s| s.version),
        Some("2.0".to_string())
    );
    assert_eq!(d.status.running, stale);

    // Once every pod runs the template's model: Available, serving v1.
    let settled = [running_model(&v1, 2)];
    let i = Input {
        running: &settled,
        ..input(&m, Linked::Found(&v1), None, Some(&live))
    };
    let d = status(&i, Some(&live), None);
    assert_eq!(d.status.phase, Some(DeploymentPhase::Available));
    assert_eq!(
        d.status.served_model.map(|s| s.version),
        Some("1.0".to_string())
    );
}

#[test]
fn the_break_glass_window_brings_it_back_whether_released_or_only_served() {
    let m = md("v1", "Hold", None);
    let now = input(&m, Linked::NotFound, None, None).now;
    let until = now + jiff::SignedDuration::from_mins(20);
    let mut glass = approval("v1", "1.0", Some("BreakGlass"), 4);
    if let Some(s) = glass.status.as_mut() {
        s.break_glass = Some(Box::new(crate::api::breakglass::ReleasedBy {
            name: "inc-1".into(),
            requested_by: "erin".into(),
            approved_by: vec!["bob".into()],
            reason: "INC-1: the serving version is broken".into(),
            skips: vec!["BusinessReview".into()],
            since: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now),
            until: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(until),
        }));
    }
    let released = input(&m, Linked::Found(&glass), None, None);
    assert_eq!(plan(&released), Plan::Release(&glass));
    assert_eq!(window_end(&released), Some(until));
    // Named no more, but its pods still serve it: the same window.
    let m2 = md("v2", "Hold", None);
    let next = approval("v2", "2.0", Some("Pending"), 0);
    let live = serving(&m2, &glass, 2);
    let held = input(&m2, Linked::Found(&next), Some(&glass), Some(&live));
    assert_eq!(plan(&held), Plan::Hold);
    assert_eq!(window_end(&held), Some(until));
    // Once the window is over, nothing to wait for.
    let after = Input { now: until, ..held };
    assert_eq!(window_end(&after), None);
}

#[test]
fn a_failed_gate_or_a_passed_expiry_revokes_before_the_phase_says_so() {
    // The operator's status write may lag or fail (an approval padded to
    // the size etcd takes): a reviewer's False, or expiresAt passed, stops
    // what serves even while the phase still reads Approved.
    let m = md("v1", "ScaleToZero", None);
    let mut failed = approval("v1", "1.0", Some("Approved"), 5);
    if let Some(s) = failed.status.as_mut() {
        s.conditions[2].status = "False".into();
    }
    let live = serving(&m, &failed, 2);
    let i = input(&m, Linked::Found(&failed), None, Some(&live));
    assert_eq!(plan(&i), Plan::ScaleToZero);
    let mut lapsed = approval("v1", "1.0", Some("Approved"), 5);
    if let Some(s) = lapsed.status.as_mut() {
        s.expires_at = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            jiff::Timestamp::UNIX_EPOCH,
        ));
    }
    let i = input(&m, Linked::Found(&lapsed), None, Some(&live));
    assert_eq!(plan(&i), Plan::ScaleToZero);
    let fine = approval("v1", "1.0", Some("Approved"), 5);
    let i = input(&m, Linked::Found(&fine), None, Some(&live));
    assert!(matches!(plan(&i), Plan::Release(_)));
}

#[test]
fn what_served_before_an_unrecorded_switch_is_recorded_so_a_rollback_can_return_to_it() {
    // The operator applied v1 and stopped before its status write; the
    // ModelDeployment now names v2, which the next reconcile rolls out.
    let v1 = with_uid(approval("v1", "1.0", Some("Approved"), 5), "uid-v1");
    let v2 = with_uid(approval("v2", "2.0", Some("Approved"), 5), "uid-v2");
    let m = md("v2", "Rollback", None);
    let before_action = serving(&m, &v1, 2);
    let after_action = serving(&m, &v2, 0);
    let before = [v1.clone()];
    let i = Input {
        served_before: &before,
        ..input(&m, Linked::Found(&v2), Some(&v1), Some(&before_action))
    };
    assert_eq!(plan(&i), Plan::Release(&v2));
    let d = status(&i, Some(&after_action), None);
    let history: Vec<(&str, &str)> = d
        .status
        .served_history
        .iter()
        .map(|e| (e.approval.as_str(), e.uid.as_str()))
        .collect();
    assert_eq!(history, [("v2", "uid-v2"), ("v1", "uid-v1")]);

    // v2 revoked later: the rollback finds v1 in that history.
    let mut m = m;
    m.status = Some(d.status);
    let v2_revoked = with_uid(approval("v2", "2.0", Some("Rejected"), 4), "uid-v2");
    let live = serving(&m, &v2, 2);
    let i = Input {
        served_before: &before,
        ..input(&m, Linked::Found(&v2_revoked), None, Some(&live))
    };
    assert_eq!(plan(&i), Plan::Rollback(&v1));
}
