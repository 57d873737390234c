//! Watches ModelApprovals, writes the operator's status fields with
//! server-side apply, and publishes every transition as an Event.

use std::sync::Arc;
use std::time::Duration;

use futures::Future;
use futures::channel::mpsc::UnboundedReceiver;
use jiff::Timestamp;
use kube::core::DeserializeGuard;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, ReflectHandle, Store};
use kube::{Resource, ResourceExt};
use tracing::{info, instrument, warn};

use super::decide::{self, Input};
use super::in_use::{InUse, Mark};
use super::written::Written;
use crate::api::condition::{FALSE, TRUE};
use crate::api::policy::{ApprovalPolicy, PinnedPolicy};
use crate::api::{ApprovalPhase, Gate, ModelApproval};
use crate::deployment::index::ApprovalIndex;
use crate::policy::pin;
use crate::records::Recorder;
use crate::runtime::metrics::GateLabels;
use crate::runtime::watches::CachedApproval;

/// This controller's name in metrics.
const CONTROLLER: &str = "approval";
use crate::context::{Context, now_seconds};
use crate::error::{Error, Result};

/// What the reconciles of this controller read besides the context.
pub struct State {
    pub ctx: Arc<Context>,
    /// The in-use finalizer: which approvals ModelDeployments name or serve.
    pub in_use: InUse,
    /// This controller's last status writes, for reads the cache is behind on.
    pub written: Arc<Written>,
    /// Writes a signed ApprovalRecord per phase change, when configured.
    pub recorder: Option<Arc<Recorder>>,
    /// The ApprovalPolicies, for pinning an approval's rules.
    pub policies: Store<ApprovalPolicy>,
    /// The operator's namespace: its `default` policy applies cluster-wide.
    pub home: String,
}

/// What this controller is started with besides the context.
pub struct Inputs {
    /// The approval cache shared with the deployment controller.
    pub store: Store<CachedApproval>,
    /// This controller's feed of changed approvals from that cache.
    pub changes: ReflectHandle<CachedApproval>,
    /// Approval → the deployments that use it (kept by the deployment
    /// controller), and the approvals whose use changed.
    pub index: ApprovalIndex,
    pub usage: UnboundedReceiver<ObjectRef<CachedApproval>>,
    /// The last-write overlay; the approval watch tells it what it observed.
    pub written: Arc<Written>,
    /// The record writer, when records are on.
    pub recorder: Option<Arc<Recorder>>,
    /// The ApprovalPolicy cache (kept by the policy controller).
    pub policies: Store<ApprovalPolicy>,
    /// The operator's own namespace.
    pub home: String,
}

/// The ModelApproval controller, ready to be driven until `shutdown`.
pub fn run(
    ctx: Arc<Context>,
    inputs: Inputs,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> impl Future<Output = ()> {
    ctx.metrics.start_at_zero(CONTROLLER, &Error::METRIC_LABELS);
    let controller = Controller::for_shared_stream(inputs.changes, inputs.store.clone())
        .reconcile_on(inputs.usage);
    let observer = crate::runtime::count_phases(
        inputs.store,
        ctx.metrics.approvals.clone(),
        ApprovalPhase::ALL.map(|p| p.as_str()).to_vec(),
        |a| Some(a.status.as_ref()?.phase?.as_str()),
        {
            let metrics = ctx.metrics.clone();
            let recorder = inputs.recorder.clone();
            move |approvals| {
                metrics.set_next_expiry(next_expiry(approvals));
                if let Some(recorder) = &recorder {
                    recorder.keep_only(approvals.iter().filter_map(|a| a.0.as_ref().ok()?.uid()));
                }
            }
        },
    );
    let concurrency = ctx.concurrency;
    let state = Arc::new(State {
        ctx,
        in_use: InUse::new(inputs.index),
        written: inputs.written,
        recorder: inputs.recorder,
        policies: inputs.policies,
        home: inputs.home,
    });
    let policies = state.policies.clone();
    let controller = controller
        .with_config(crate::runtime::controller_config(concurrency))
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, state);
    // Pinning from a policy cache still filling would pin the wrong rules:
    // reconciles start once it has its first list. One waiter here, not one
    // per reconcile (the cache's readiness wakes a single waiter).
    async move {
        match policies.wait_until_ready().await {
            Ok(()) => crate::runtime::drive(controller, observer).await,
            Err(_) => warn!(
                "the policy cache stopped before its first list; approvals are not reconciled"
            ),
        }
    }
}

/// The earliest expiry (Unix seconds) among the Approved approvals: the
/// one a platform team must hear about before it lapses. Expired ones are
/// left out, or one lapse would stand for the soonest forever.
fn next_expiry(approvals: &[Arc<CachedApproval>]) -> Option<f64> {
    approvals
        .iter()
        .filter_map(|a| {
            let status = a.0.as_ref().ok()?.status.as_ref()?;
            (status.phase? == ApprovalPhase::Approved)
                .then_some(status.expires_at.as_ref()?.0.as_second())
        })
        .min()
        .map(|s| s as f64)
}

/// Fetch → decide (pure) → write status → publish → mark in use → record →
/// wait.
#[instrument(skip_all, fields(namespace = guarded.meta().namespace.as_deref().unwrap_or_default(), name = guarded.meta().name.as_deref().unwrap_or_default()))]
async fn reconcile(
    guarded: Arc<DeserializeGuard<ModelApproval>>,
    state: Arc<State>,
) -> Result<Action> {
    let ctx = &state.ctx;
    let _timer = ctx.metrics.reconcile(CONTROLLER);
    let approval = ctx.readable(guarded.as_ref()).await?;
    let namespace = approval
        .namespace()
        .ok_or(Error::MissingMetadata("namespace"))?;
    let pin = pin_for(&state, approval);
    let decision = decide_for(&state, approval, pin.as_ref());
    write_status(&state, approval, &namespace, &decision).await?;
    publish(ctx, approval, &decision).await;
    // The in-use mark first: a record that cannot be written yet must not
    // keep a finalizer that is due to go.
    let usage_known = match state.in_use.needs(approval) {
        Mark::Done => true,
        Mark::Later => false,
        Mark::Set(mark) => {
            state.in_use.set(&ctx.client, approval, mark).await?;
            true
        }
    };
    if let Some(recorder) = &state.recorder {
        let created = recorder
            .write(&ctx.client, approval, &decision.status)
            .await?;
        ctx.metrics.records_written.inc_by(created as u64);
    }
    ctx.succeeded(guarded.as_ref());
    Ok(next(&decision, usage_known))
}

/// The decision over the freshest status we know: the cache's, or our own
/// last write when the cache has not caught up with it.
fn decide_for(
    state: &State,
    approval: &ModelApproval,
    pin: Option<&PinnedPolicy>,
) -> decide::Decision {
    let status = state.written.current(
        approval.meta().uid.as_deref().unwrap_or_default(),
        approval.meta().resource_version.as_deref(),
        approval.status.as_ref(),
    );
    decide::decide(Input {
        spec: &approval.spec,
        generation: approval.meta().generation,
        status: status.as_ref(),
        now: now_seconds(),
        pin,
    })
}

/// The rules to pin into an approval that has none yet: its namespace's
/// `default` policy, else the operator namespace's, else the built-in ones.
/// An approval decided before policies existed (it has history) keeps the
/// built-in rules, so an upgrade never re-decides an approval in flight.
///
/// The controller starts only once the policy cache has its first list
/// (see `run`), so this never reads a cache still filling.
fn pin_for(state: &State, approval: &ModelApproval) -> Option<PinnedPolicy> {
    let status = approval.status.as_ref();
    if status.is_some_and(|s| s.policy.is_some()) {
        return None;
    }
    if status.is_some_and(|s| !s.history.is_empty()) {
        return Some(pin::pin(None));
    }
    let namespace = approval.namespace().unwrap_or_default();
    let policy = [namespace.as_str(), state.home.as_str()]
        .into_iter()
        .find_map(|ns| {
            state
                .policies
                .get(&ObjectRef::new(pin::DEFAULT_POLICY).within(ns))
        });
    Some(pin::pin(policy.as_deref()))
}

/// Applies the decided status when it changed, and remembers the write.
async fn write_status(
    state: &State,
    approval: &ModelApproval,
    namespace: &str,
    decision: &decide::Decision,
) -> Result<()> {
    if !decision.changed {
        return Ok(());
    }
    let written: ModelApproval = state
        .ctx
        .apply_status(
            CONTROLLER,
            namespace,
            &approval.name_any(),
            &decision.status,
        )
        .await?;
    state.written.record(
        approval.meta().uid.as_deref().unwrap_or_default(),
        written.meta().resource_version.as_deref(),
        decision.status.clone(),
    );
    info!(phase = ?decision.status.phase, transitions = decision.transitions.len(), "status applied");
    Ok(())
}

/// Counts the gate decisions and announces every transition as an Event.
///
/// Events after the write: the status history is the durable record, so
/// an Event is only announced for a transition that was recorded. They are
/// sent at once rather than one after another: under load each one is a
/// slow round trip, and the next reconcile of this approval waits for this
/// one to end.
async fn publish(ctx: &Context, approval: &ModelApproval, decision: &decide::Decision) {
    for t in &decision.transitions {
        if let Some(gate) = Gate::from_condition_type(&t.entry.subject) {
            let result = match t.entry.to.as_str() {
                TRUE => "passed",
                FALSE => "failed",
                _ => "reset",
            };
            ctx.metrics
                .gate_decisions
                .get_or_create(&GateLabels {
                    gate: gate.condition_type(),
                    result,
                })
                .inc();
        }
    }
    let reference = approval.object_ref(&());
    let published = decision.transitions.iter().map(|t| async {
        let result = ctx
            .events
            .publish(&reference, t.severity, t.reason, &t.entry.subject, &t.note)
            .await;
        (t.reason, result)
    });
    for (reason, result) in futures::future::join_all(published).await {
        if let Err(e) = result {
            warn!(error = %e, reason, "could not publish event");
        }
    }
}

/// When to look again: expiry must happen on time with nothing else
/// changing, and an in-use mark waits for the deployment index.
fn next(decision: &decide::Decision, usage_known: bool) -> Action {
    let expiry = decision
        .expires_at
        .and_then(|e| decide::until(e, Timestamp::now()))
        .map(|wait| wait + Duration::from_millis(500));
    let retry = (!usage_known).then_some(Duration::from_secs(1));
    match expiry.into_iter().chain(retry).min() {
        Some(wait) => Action::requeue(wait),
        None => Action::await_change(),
    }
}

fn error_policy(
    object: Arc<DeserializeGuard<ModelApproval>>,
    error: &Error,
    state: Arc<State>,
) -> Action {
    state.ctx.after_error(CONTROLLER, object.as_ref(), error)
}
