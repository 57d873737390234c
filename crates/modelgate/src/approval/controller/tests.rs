//! The approval reconcile against a mocked API server: the requests it
//! makes, in order, and what they carry.

use http::{Method, StatusCode};
use kube::core::DeserializeGuard;
use kube::runtime::{reflector, watcher};
use serde_json::{Value, json};

use super::*;
use crate::api::approval::PHASE_SUBJECT;
use crate::approval::in_use::IN_USE_FINALIZER;
use crate::fixtures::{self, ApiServer, merged};
use crate::records::envelope::Signer;
use crate::vocabulary::{FIELD_MANAGER, IN_USE_FIELD_MANAGER};

const APPROVALS: &str = "/apis/modelgate.io/v1alpha1/namespaces/risk/modelapprovals";

/// Approval `v1` in `risk` with every gate passed by its reviewer.
fn all_gates_passed() -> Value {
    let conditions: Vec<Value> = Gate::ALL
        .iter()
        .map(|g| {
            json!({"type": g.condition_type(), "status": "True", "reason": "Checked",
                   "reviewer": format!("{}-lead", g.short_name())})
        })
        .collect();
    json!({
        "apiVersion": "modelgate.io/v1alpha1", "kind": "ModelApproval",
        "metadata": {"name": "v1", "namespace": "risk", "uid": "u-1", "resourceVersion": "1", "generation": 1},
        "spec": {"model": {"name": "fraud-detector", "version": "2.4.0", "uri": "s3://m",
                           "digest": format!("sha256:{}", "0".repeat(64))}},
        "status": {"conditions": conditions},
    })
}

/// A ModelDeployment that names approval `v1`, for the in-use index.
fn naming_v1() -> DeserializeGuard<crate::api::deployment::ModelDeployment> {
    DeserializeGuard(
        serde_json::from_value(json!({
            "apiVersion": "modelgate.io/v1alpha1", "kind": "ModelDeployment",
            "metadata": {"name": "fd", "namespace": "risk"},
            "spec": {"approvalRef": {"name": "v1"},
                     "template": {"spec": {"containers": [{"name": "s", "image": "s:1"}]}}},
        }))
        .map_err(|e| panic!("fixture: {e}")),
    )
}

/// The controller's state on a mocked API server, with records on and the
/// deployment index complete (one ModelDeployment uses `v1`), and what it
/// hands the deployment controller.
fn state(ctx: Arc<Context>) -> (Arc<State>, crate::deployment::handoff::Received) {
    let (index, _told) = ApprovalIndex::reporting();
    index.observe(&watcher::Event::Init);
    index.observe(&watcher::Event::InitApply(naming_v1()));
    index.observe(&watcher::Event::InitDone);
    let signer = Signer::generate().unwrap_or_else(|e| panic!("key: {e}"));
    let ctx_client = ctx.client.clone();
    let (handoff, handed) = Handoff::channel(index.clone(), Arc::default());
    let state = Arc::new(State {
        ctx,
        in_use: InUse::new(index),
        written: Arc::default(),
        recorder: Some(Arc::new(Recorder::new(signer))),
        policies: reflector::store().0,
        home: crate::vocabulary::DEFAULT_NAMESPACE.into(),
        lookups: super::super::artifact::Lookups::new(None).0,
        break_glass: reflector::store().0,
        imports: crate::fleet::import::Imports::new(
            None,
            ctx_client.clone(),
            std::time::Duration::from_secs(60),
            Default::default(),
        )
        .0,
        handoff,
    });
    (state, handed)
}

/// Answers what the reconcile of an approval whose five gates all passed
/// must ask for: the Approved status, two Events (the five gates found
/// passed in one, the phase change), the in-use finalizer and
/// the signed record of the phase change with its checkpoint.
async fn approve(mut server: ApiServer, approval: Value) {
    let status = server
        .expect(Method::PATCH, &format!("{APPROVALS}/v1/status"))
        .await;
    status.assert_applied_by(FIELD_MANAGER);
    let written = &status.body["status"];
    assert_eq!(written["phase"], "Approved");
    assert_eq!(written["gatesPassed"], "5/5");
    let approved = written["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Approved"));
    assert_eq!(
        approved.map(|c| (&c["status"], &c["reason"])),
        Some((&json!("True"), &json!("AllGatesPassed")))
    );
    let history = written["history"].as_array().cloned().unwrap_or_default();
    assert_eq!(history.len(), 6, "five gates and the phase: {history:?}");
    assert_eq!(history[5]["subject"], PHASE_SUBJECT);
    assert_eq!(history[5]["to"], "Approved");
    assert!(history.iter().all(|e| e["hash"].is_string()), "chained");
    let answer = merged(
        &approval,
        &json!({"metadata": {"resourceVersion": "2"}, "status": written}),
    );
    status.ok(answer.clone());

    let mut reasons = Vec::new();
    let mut notes = Vec::new();
    for _ in 0..2 {
        let event = server
            .expect(
                Method::POST,
                "/apis/events.k8s.io/v1/namespaces/risk/events",
            )
            .await;
        assert_eq!(event.body["regarding"]["name"], "v1");
        reasons.push(
            event.body["reason"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
        notes.push(event.body["note"].as_str().unwrap_or_default().to_string());
        event.created();
    }
    reasons.sort();
    assert_eq!(reasons, ["Approved", "ReviewsRecorded"]);
    // The one Event names every gate found passed.
    let together = notes
        .iter()
        .find(|n| n.contains("TechnicalReview"))
        .cloned()
        .unwrap_or_default();
    for gate in Gate::ALL {
        assert!(together.contains(gate.condition_type()), "{together}");
    }

    let finalizer = server
        .expect(Method::PATCH, &format!("{APPROVALS}/v1"))
        .await;
    finalizer.assert_applied_by(IN_USE_FIELD_MANAGER);
    assert_eq!(
        finalizer.body["metadata"]["finalizers"],
        json!([IN_USE_FINALIZER])
    );
    assert!(
        finalizer.body.get("status").is_none(),
        "the finalizer apply names nothing else"
    );
    finalizer.ok(merged(
        &answer,
        &json!({"metadata": {"resourceVersion": "3", "finalizers": [IN_USE_FINALIZER]}}),
    ));

    answer_record(&mut server).await;
}

/// The record of the phase change, then its namespace's checkpoint (none
/// stored yet: rebuilt from the records, then written).
async fn answer_record(server: &mut ApiServer) {
    let records = "/apis/modelgate.io/v1alpha1/namespaces/risk/approvalrecords";
    let record = server.expect(Method::POST, records).await;
    assert_eq!(record.body["kind"], "ApprovalRecord");
    assert!(
        record.body["spec"]["envelope"]["signatures"].is_array(),
        "{}",
        record.body
    );
    record.created();
    let checkpoint =
        "/apis/modelgate.io/v1alpha1/namespaces/risk/recordcheckpoints/approval-records";
    server.expect(Method::GET, checkpoint).await.not_found();
    server.expect(Method::GET, records).await.answer(
        StatusCode::OK,
        json!({"apiVersion": "modelgate.io/v1alpha1", "kind": "ApprovalRecordList", "metadata": {}, "items": []}),
    );
    let write = server.expect(Method::PATCH, checkpoint).await;
    write.assert_applied_by(FIELD_MANAGER);
    assert_eq!(write.body["spec"]["approvals"], 1);
    let body = write.body.clone();
    write.ok(body);
}

#[tokio::test]
async fn all_gates_passed_is_approved_announced_marked_and_recorded() {
    let (ctx, server) = fixtures::context();
    let (state, mut handed) = state(ctx);
    let approval = all_gates_passed();
    let guarded: CachedApproval =
        serde_json::from_value(approval.clone()).unwrap_or_else(|e| panic!("fixture: {e}"));
    let scenario = tokio::spawn(approve(server, approval));
    let action = reconcile(Arc::new(guarded), state.clone()).await;
    assert!(action.is_ok(), "{action:?}");
    let server = scenario.await;
    assert!(server.is_ok(), "the scenario failed: {server:?}");
    assert_eq!(state.ctx.metrics.records_written.get(), 1);
    // The release reaches the ModelDeployment that names `v1` at once.
    let told = handed.try_recv().ok().map(|md| md.name);
    assert_eq!(told.as_deref(), Some("fd"));
}

#[tokio::test]
async fn a_failed_status_write_names_its_step_and_writes_nothing_else() {
    let (ctx, mut server) = fixtures::context();
    let (state, mut handed) = state(ctx);
    let guarded: CachedApproval =
        serde_json::from_value(all_gates_passed()).unwrap_or_else(|e| panic!("fixture: {e}"));
    let scenario = tokio::spawn(async move {
        let status = server
            .expect(Method::PATCH, &format!("{APPROVALS}/v1/status"))
            .await;
        status.answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                   "reason": "InternalError", "code": 500, "message": "etcd is away"}),
        );
        server
    });
    let result = reconcile(Arc::new(guarded.clone()), state.clone()).await;
    let Err(error) = result else {
        panic!("the reconcile succeeded: {result:?}");
    };
    assert_eq!(error.step(), Step::Status);
    let action = error_policy(Arc::new(guarded), &error, state.clone());
    assert_ne!(action, Action::await_change(), "a failed write is retried");
    let text = state.ctx.metrics.encode();
    assert!(
        text.contains(r#"modelgate_reconcile_errors_total{controller="approval",error="kube",step="status"} 1"#),
        "{text}"
    );
    let server = scenario.await.unwrap_or_else(|e| panic!("scenario: {e}"));
    drop(state);
    server.nothing_more().await;
    // Nothing was written, so nothing is handed on.
    assert!(
        matches!(
            handed.try_recv(),
            Err(futures::channel::mpsc::TryRecvError::Closed)
        ),
        "no hand-off"
    );
}
