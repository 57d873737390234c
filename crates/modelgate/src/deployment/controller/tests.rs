//! The deployment reconcile against a mocked API server: what it applies
//! for each plan, and the status and Event that say so.

use http::Method;
use kube::runtime::watcher;
use serde_json::{Value, json};

use super::*;
use crate::deployment::desired::{self, HELD_REPLICAS_ANNOTATION};
use crate::fixtures::{self, ApiServer, merged};
use crate::runtime::health::Health;
use crate::runtime::packed::PackedApproval;
use crate::runtime::packed_object::CachedDeployment;
use crate::vocabulary::{FIELD_MANAGER, REVOKE_FIELD_MANAGER};

const MDS: &str = "/apis/modelgate.io/v1alpha1/namespaces/risk/modeldeployments";
const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/risk/deployments";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/risk/events";

/// ModelDeployment `fd` in `risk`, naming approval `v1`.
fn md(on_revoke: &str) -> Value {
    json!({
        "apiVersion": "modelgate.io/v1alpha1", "kind": "ModelDeployment",
        "metadata": {"name": "fd", "namespace": "risk", "uid": "md-1", "resourceVersion": "1", "generation": 1},
        "spec": {"approvalRef": {"name": "v1"}, "replicas": 2, "onRevoke": on_revoke,
                 "template": {"spec": {"containers": [{"name": "serve", "image": "serve:1"}]}}},
    })
}

/// Approval `v1` in `phase`, the gates it has passed with it.
fn approval(phase: &str, gates_passed: usize) -> ModelApproval {
    let conditions: Vec<Value> = crate::api::gates::Gate::ALL
        .iter()
        .take(gates_passed)
        .map(|g| json!({"type": g.condition_type(), "status": "True", "reviewer": "r"}))
        .collect();
    serde_json::from_value(json!({
        "apiVersion": "modelgate.io/v1alpha1", "kind": "ModelApproval",
        "metadata": {"name": "v1", "namespace": "risk", "uid": "a-1"},
        "spec": {"model": {"name": "fraud-detector", "version": "2.4.0", "uri": "s3://m",
                           "digest": format!("sha256:{}", "0".repeat(64))}},
        "status": {"phase": phase, "conditions": conditions},
    }))
    .unwrap_or_else(|e| panic!("fixture: {e}"))
}

fn read<T: serde::de::DeserializeOwned>(value: &Value) -> T {
    serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("fixture: {e}"))
}

/// The controller's state on a mocked API server with every cache synced:
/// `approval` as the cache holds it.
fn packed(approval: &ModelApproval) -> PackedApproval {
    PackedApproval::pack(approval.clone()).unwrap_or_else(|e| panic!("packs: {e}"))
}

/// the approvals in `approvals`, the managed Deployments in `deployments`.
fn state(ctx: Arc<Context>, approvals: &[ModelApproval], deployments: &[Deployment]) -> Arc<State> {
    let synced = Synced::new(Arc::new(Health::default()), Default::default());
    let mut marker = synced.marker::<Deployment>("deployments");
    marker(&watcher::Event::InitDone);
    let (approval_store, mut approval_writer) = reflector::store::<CachedApproval>();
    for a in approvals {
        approval_writer
            .apply_watcher_event(&watcher::Event::Apply(DeserializeGuard(Ok(packed(a)))));
    }
    let (deployment_store, mut deployment_writer) = reflector::store::<CachedDeployment>();
    for d in deployments {
        let cached = CachedDeployment::pack(d.clone()).unwrap_or_else(|e| panic!("packs: {e}"));
        deployment_writer.apply_watcher_event(&watcher::Event::Apply(cached));
    }
    Arc::new(State {
        ctx,
        synced,
        approvals: approval_store,
        handed: Arc::default(),
        deployments: deployment_store,
        replicasets: reflector::store().0,
        applied: Arc::default(),
        sealing: super::sealing::Stores {
            governed: reflector::store().0,
            catalogs: reflector::store().0,
            policies: reflector::store().0,
        },
    })
}

/// Runs one reconcile of `md` against `scenario`, which must see every
/// request; returns the reconcile's result.
async fn reconcile_with<F>(
    state: Arc<State>,
    md: &Value,
    scenario: impl FnOnce(ApiServer) -> F,
    server: ApiServer,
) -> Result<Action, ReconcileError>
where
    F: Future<Output = ApiServer> + Send + 'static,
{
    let scenario = tokio::spawn(scenario(server));
    let result = reconcile(Arc::new(read(md)), state.clone()).await;
    let server = scenario.await.unwrap_or_else(|e| panic!("scenario: {e}"));
    drop(state);
    server.nothing_more().await;
    result
}

/// The status write: applied by the operator, in `phase`, with
/// ApprovalSatisfied's reason; answered with the object it makes.
async fn expect_status(server: &mut ApiServer, md: &Value, phase: &str, satisfied: &str) {
    let status = server
        .expect(Method::PATCH, &format!("{MDS}/fd/status"))
        .await;
    status.assert_applied_by(FIELD_MANAGER);
    let written = status.body["status"].clone();
    assert_eq!(written["phase"], phase, "{written}");
    let condition = written["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "ApprovalSatisfied"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(condition["reason"], satisfied, "{condition}");
    status.ok(merged(md, &json!({"status": written})));
}

/// The Event of a phase change: its type and reason.
async fn expect_event(server: &mut ApiServer, type_: &str, reason: &str) {
    let event = server.expect(Method::POST, EVENTS).await;
    assert_eq!(event.body["regarding"]["name"], "fd");
    assert_eq!(event.body["regarding"]["kind"], "ModelDeployment");
    assert_eq!(
        (&event.body["type"], &event.body["reason"]),
        (&json!(type_), &json!(reason))
    );
    assert_eq!(event.body["action"], "Rollout");
    event.created();
}

#[tokio::test]
async fn a_pending_approval_holds_the_rollout_and_applies_nothing() {
    let (ctx, server) = fixtures::context();
    let state = state(ctx, &[approval("Pending", 3)], &[]);
    let md = md("Hold");
    let expected = md.clone();
    let result = reconcile_with(
        state,
        &md,
        |mut server| async move {
            // No Deployment read or write: none may exist, none is due.
            expect_status(&mut server, &expected, "AwaitingApproval", "AwaitingReview").await;
            expect_event(&mut server, "Normal", "AwaitingApproval").await;
            server
        },
        server,
    )
    .await;
    assert!(result.is_ok(), "{result:?}");
}

/// What releasing `fd` for `v1` asks of the API server, from no Deployment.
async fn expect_release(mut server: ApiServer, expected: Value) -> ApiServer {
    // Not in the cache (whose label selector a renamed one escapes):
    // read before it is created.
    server
        .expect(Method::GET, &format!("{DEPLOYMENTS}/fd"))
        .await
        .not_found();
    let apply = server
        .expect(Method::PATCH, &format!("{DEPLOYMENTS}/fd"))
        .await;
    apply.assert_applied_by(FIELD_MANAGER);
    let d = &apply.body;
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(d["metadata"]["ownerReferences"][0]["uid"], "md-1");
    assert_eq!(d["metadata"]["ownerReferences"][0]["controller"], true);
    let annotations = &d["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(annotations[desired::APPROVAL_ANNOTATION], "v1");
    assert_eq!(annotations[desired::MODEL_VERSION_ANNOTATION], "2.4.0");
    let answer = merged(d, &json!({"metadata": {"uid": "d-1", "generation": 1}}));
    apply.ok(answer);
    expect_status(&mut server, &expected, "RollingOut", "ApprovalApproved").await;
    expect_event(&mut server, "Normal", "RollingOut").await;
    server
}

#[tokio::test]
async fn an_approved_model_is_applied_by_the_operator() {
    let (ctx, server) = fixtures::context();
    let state = state(ctx, &[approval("Approved", 5)], &[]);
    let md = md("Hold");
    let expected = md.clone();
    let result = reconcile_with(state, &md, |s| expect_release(s, expected), server).await;
    assert!(result.is_ok(), "{result:?}");
}

/// `approval` at revision `rv`.
fn at(mut approval: ModelApproval, rv: &str) -> ModelApproval {
    approval.metadata.resource_version = Some(rv.into());
    approval
}

/// The cache holds a Pending `v1` at revision `cached`; the approval
/// controller handed over an Approved one written at revision 8.
fn handed_over_at_8(ctx: Arc<Context>, cached: &str) -> Arc<State> {
    let state = state(ctx, &[at(approval("Pending", 3), cached)], &[]);
    state.handed.keep(at(approval("Approved", 5), "8"));
    state
}

/// The approval controller hands a release over as soon as it has written
/// it: the cache still holds the Pending approval, and the approval as the
/// API server answered the write is read instead.
#[tokio::test]
async fn a_release_written_but_not_yet_cached_is_applied() {
    let (ctx, server) = fixtures::context();
    let state = handed_over_at_8(ctx, "7");
    let (md, expected) = (md("Hold"), md("Hold"));
    let result = reconcile_with(state.clone(), &md, |s| expect_release(s, expected), server).await;
    assert!(result.is_ok(), "{result:?}");
    // Reading it leaves it for the watch to end.
    assert_eq!(state.handed.pending(), 1);
}

/// A handed-over approval the cache has overtaken (a reviewer's False gate
/// after the operator's write) is not read: the cache's newer state holds.
#[tokio::test]
async fn a_handed_approval_older_than_the_cache_is_not_read() {
    let (ctx, server) = fixtures::context();
    let state = handed_over_at_8(ctx, "9");
    let (md, expected) = (md("Hold"), md("Hold"));
    let result = reconcile_with(
        state,
        &md,
        |mut server| async move {
            expect_status(&mut server, &expected, "AwaitingApproval", "AwaitingReview").await;
            expect_event(&mut server, "Normal", "AwaitingApproval").await;
            server
        },
        server,
    )
    .await;
    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn a_withdrawn_approval_holds_the_deployment_at_its_replicas() {
    let (ctx, server) = fixtures::context();
    let md = md("Hold");
    let model: ModelDeployment = read(&md);
    let owner = model
        .controller_owner_ref(&())
        .unwrap_or_else(|| panic!("owner"));
    let v1 = approval("Rejected", 4);
    let mut live = desired::deployment(&model, "v1", &v1.spec.model, owner);
    live.metadata.uid = Some("d-1".into());
    live.metadata.generation = Some(1);
    let state = state(ctx, &[v1], &[live.clone()]);
    let expected = md.clone();
    let live = serde_json::to_value(&live).unwrap_or_default();
    let result = reconcile_with(
        state,
        &md,
        |mut server| async move {
            let hold = server
                .expect(Method::PATCH, &format!("{DEPLOYMENTS}/fd"))
                .await;
            hold.assert_applied_by(REVOKE_FIELD_MANAGER);
            assert_eq!(
                hold.body["spec"],
                json!({"replicas": 2, "paused": true}),
                "only the replicas, and a pause: a rollout under way goes no further"
            );
            assert_eq!(
                hold.body["metadata"]["annotations"][HELD_REPLICAS_ANNOTATION],
                "2"
            );
            let answer = merged(&live, &hold.body);
            hold.ok(answer);
            expect_status(&mut server, &expected, "Revoked", "ApprovalRevoked").await;
            expect_event(&mut server, "Warning", "ApprovalRevoked").await;
            server
        },
        server,
    )
    .await;
    assert!(result.is_ok(), "{result:?}");
}
