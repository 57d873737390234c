//! Watches ModelApprovals, writes the operator's status fields with
//! server-side apply, and publishes every transition as an Event.

use std::sync::Arc;
use std::time::Duration;

use futures::channel::mpsc::UnboundedReceiver;
use futures::{Future, StreamExt};
use jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::core::DeserializeGuard;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, ReflectHandle, Store};
use kube::{Resource, ResourceExt};
use tracing::{info, instrument, warn};

use super::decide::{self, Input};
use super::in_use::{InUse, Mark};
use crate::api::condition::{FALSE, TRUE};
use crate::api::{ApprovalPhase, Gate, ModelApproval};
use crate::deployment::index::ApprovalIndex;
use crate::runtime::metrics::{ControllerLabels, GateLabels};
use crate::runtime::watches::CachedApproval;

/// This controller's name in metrics.
const CONTROLLER: &str = "approval";
use crate::context::{Context, FIELD_MANAGER, now_seconds};
use crate::error::{Error, Result};

/// What the reconciles of this controller read besides the context.
pub struct State {
    pub ctx: Arc<Context>,
    /// The in-use finalizer: which approvals ModelDeployments name or serve.
    pub in_use: InUse,
}

/// The ModelApproval controller, ready to be driven until `shutdown`.
/// `store` is the approval cache shared with the deployment controller,
/// `changes` this controller's feed of changed approvals from it, and
/// `usage` the approvals whose dependents changed (from `index`).
pub fn run(
    ctx: Arc<Context>,
    store: Store<CachedApproval>,
    changes: ReflectHandle<CachedApproval>,
    (index, usage): (ApprovalIndex, UnboundedReceiver<ObjectRef<CachedApproval>>),
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> impl Future<Output = ()> {
    let controller = Controller::for_shared_stream(changes, store.clone()).reconcile_on(usage);
    let observer = crate::runtime::count_phases(
        store,
        ctx.metrics.approvals.clone(),
        [
            ApprovalPhase::Pending,
            ApprovalPhase::Approved,
            ApprovalPhase::Rejected,
            ApprovalPhase::Expired,
        ]
        .map(|p| p.as_str())
        .to_vec(),
        |a| Some(a.status.as_ref()?.phase?.as_str()),
    );
    let concurrency = ctx.concurrency;
    let controller = controller
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
        .graceful_shutdown_on(shutdown)
        .run(
            reconcile,
            error_policy,
            Arc::new(State {
                ctx,
                in_use: InUse::new(index),
            }),
        )
        // error_policy has logged every failure already.
        .for_each(|_| futures::future::ready(()));
    async move {
        controller.await;
        observer.abort();
    }
}

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
    let name = approval
        .meta()
        .name
        .clone()
        .ok_or(Error::MissingMetadata("name"))?;

    let uid = approval.meta().uid.clone().unwrap_or_default();
    let status = ctx.approvals_written.current(
        &uid,
        approval.meta().resource_version.as_deref(),
        approval.status.as_ref(),
    );
    let decision = decide::decide(Input {
        spec: &approval.spec,
        generation: approval.meta().generation,
        status: status.as_ref(),
        now: now_seconds(),
    });

    let api: Api<ModelApproval> = Api::namespaced(ctx.client.clone(), &namespace);
    if decision.changed {
        let patch = serde_json::json!({
            "apiVersion": ModelApproval::api_version(&()),
            "kind": ModelApproval::kind(&()),
            "status": decision.status,
        });
        // force: these fields are the operator's alone (the admission policy
        // refuses them to anyone else), so a stray owner is overruled.
        let written = api
            .patch_status(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await?;
        ctx.approvals_written.record(
            &uid,
            written.meta().resource_version.as_deref(),
            decision.status.clone(),
        );
        ctx.metrics
            .status_writes
            .get_or_create(&ControllerLabels {
                controller: CONTROLLER,
            })
            .inc();
        info!(phase = ?decision.status.phase, transitions = decision.transitions.len(), "status applied");
    }

    // Events after the write: the status history is the durable record, so
    // an Event is only announced for a transition that was recorded. They
    // are sent at once rather than one after another: under load each one
    // is a slow round trip, and the next reconcile of this approval waits
    // for this one to end.
    let reference = approval.object_ref(&());
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

    let usage_known = match state.in_use.needs(approval) {
        Mark::Done => true,
        Mark::Later => false,
        Mark::Set(mark) => {
            state.in_use.set(&api, approval, mark).await?;
            true
        }
    };

    ctx.succeeded(guarded.as_ref());
    // Expiry must happen on time with nothing else changing; the in-use
    // mark waits for the deployment index to be complete.
    let expiry = decision
        .expires_at
        .and_then(|e| decide::until(e, Timestamp::now()))
        .map(|wait| wait + Duration::from_millis(500));
    let retry = (!usage_known).then_some(Duration::from_secs(1));
    Ok(match expiry.into_iter().chain(retry).min() {
        Some(wait) => Action::requeue(wait),
        None => Action::await_change(),
    })
}

/// Puts the in-use finalizer on an approval a ModelDeployment names or
/// serves and takes it off one that none does. Returns false while the
/// deployment index is still being built, when usage is not known yet.
fn error_policy(
    object: Arc<DeserializeGuard<ModelApproval>>,
    error: &Error,
    state: Arc<State>,
) -> Action {
    state.ctx.after_error(CONTROLLER, object.as_ref(), error)
}
