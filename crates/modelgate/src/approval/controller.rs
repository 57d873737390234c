//! Watches ModelApprovals, writes the operator's status fields with
//! server-side apply, and publishes every transition as an Event.

use std::sync::Arc;
use std::time::Duration;

use futures::Future;
use futures::channel::mpsc::UnboundedReceiver;
use jiff::Timestamp;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, ReflectHandle, Store};
use kube::{Resource, ResourceExt};
use tracing::{info, instrument, warn};

use super::decide::{self, Input};
use super::in_use::{InUse, Mark};
use super::written::Written;
use crate::api::approval::Seal;
use crate::api::condition::{FALSE, TRUE};
use crate::api::policy::PinnedPolicy;
use crate::api::{
    approval::{ApprovalPhase, ModelApproval},
    gates::Gate,
};
use crate::context::{Context, now_seconds};
use crate::deployment::handoff::Handoff;
use crate::deployment::index::ApprovalIndex;
use crate::error::{AtStep, Error, ReconcileError, Step};
use crate::policy::controller::CachedPolicy;
use crate::policy::pin;
use crate::records::writer::Recorder;
use crate::runtime::metrics::GateLabels;
use crate::runtime::packed::CachedApproval;

/// This controller's name in metrics.
const CONTROLLER: &str = "approval";

/// The steps its reconciles take, for the error counters.
const STEPS: [Step; 5] = [
    Step::Read,
    Step::Status,
    Step::Event,
    Step::Finalizer,
    Step::Record,
];

/// How long an artifact its registry does not serve waits before the next
/// look-up.
const ARTIFACT_RETRY: Duration = Duration::from_secs(30);

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
    pub policies: Store<CachedPolicy>,
    /// The operator's namespace: its `default` policy applies cluster-wide.
    pub home: String,
    /// Registry look-ups, beside the workers.
    pub lookups: Arc<super::artifact::Lookups>,
    /// The BreakGlass objects, by the approvals they name.
    pub break_glass: Store<super::release::CachedBreakGlass>,
    /// Registry reads of imported approvals, beside the workers.
    pub imports: Arc<crate::fleet::import::Imports>,
    /// Hands the deployment controller a release or a withdrawal as soon
    /// as its status is written.
    pub handoff: Handoff,
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
    /// The deployment controller's end is `deployment::controller::Inputs::handoff`.
    pub handoff: Handoff,
    /// The last-write overlay; the approval watch tells it what it observed.
    pub written: Arc<Written>,
    /// The record writer, when records are on.
    pub recorder: Option<Arc<Recorder>>,
    /// The ApprovalPolicy cache (kept by the policy controller).
    pub policies: Store<CachedPolicy>,
    /// The operator's own namespace.
    pub home: String,
    /// How watches make their first list, and the cache-sync markers.
    pub config: kube::runtime::watcher::Config,
    pub synced: Arc<crate::runtime::Synced>,
}

/// The ModelApproval controller, ready to be driven until `shutdown`.
pub fn run(
    ctx: Arc<Context>,
    inputs: Inputs,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> impl Future<Output = ()> {
    ctx.metrics.start_at_zero(CONTROLLER, &STEPS);
    let (lookups, answered) = super::artifact::Lookups::new(ctx.registry.clone());
    let (imports, imported) = crate::fleet::import::Imports::new(
        ctx.registry.clone(),
        ctx.client.clone(),
        ctx.import_resync,
        ctx.metrics.imports.clone(),
    );
    let (break_glass, released, break_glass_watch) = super::release::watch(
        ctx.scope.api(ctx.client.clone()),
        inputs.config,
        &inputs.synced,
    );
    let controller = Controller::for_shared_stream(inputs.changes, inputs.store.clone())
        .reconcile_on(inputs.usage)
        .reconcile_on(answered)
        .reconcile_on(imported)
        .reconcile_on(released);
    let observer = observe(&ctx, inputs.store, inputs.recorder.clone());
    let concurrency = ctx.concurrency;
    let state = Arc::new(State {
        ctx,
        in_use: InUse::new(inputs.index),
        written: inputs.written,
        recorder: inputs.recorder,
        policies: inputs.policies,
        home: inputs.home,
        lookups,
        break_glass,
        imports,
        handoff: inputs.handoff,
    });
    let policies = state.policies.clone();
    let break_glass = state.break_glass.clone();
    let controller = controller
        .with_config(crate::runtime::controller_config(concurrency))
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, state);
    // Pinning from a policy cache still filling would pin the wrong rules:
    // reconciles start once it has its first list. One waiter here, not one
    // per reconcile (the cache's readiness wakes a single waiter).
    // Likewise the BreakGlass cache: an approval decided before it is full
    // would lose its release and revoke what a break-glass serves.
    async move {
        let watch = tokio::spawn(break_glass_watch);
        match futures::try_join!(policies.wait_until_ready(), break_glass.wait_until_ready()) {
            Ok(_) => crate::runtime::drive_counting(controller, observer).await,
            Err(_) => warn!(
                "the policy or BreakGlass cache stopped before its first list; approvals are not reconciled"
            ),
        }
        watch.abort();
    }
}

/// Keeps the per-phase gauge, the next expiry, the overdue gates and the
/// recorder's memory up to date from the approval cache.
fn observe(
    ctx: &Context,
    store: Store<CachedApproval>,
    recorder: Option<Arc<Recorder>>,
) -> tokio::task::JoinHandle<()> {
    let metrics = ctx.metrics.clone();
    crate::runtime::count_phases(
        store,
        ctx.metrics.approvals.clone(),
        ApprovalPhase::ALL.map(|p| p.as_str()).to_vec(),
        |a| Some(a.status.as_ref()?.phase?.as_str()),
        move |approvals| {
            metrics.set_next_expiry(next_expiry(approvals));
            metrics.set_overdue(overdue_by_gate(approvals));
            if let Some(recorder) = &recorder {
                recorder.keep_only(approvals.iter().filter_map(|a| a.0.as_ref().ok()?.uid()));
            }
        },
    )
}

/// How many approvals each gate is overdue on.
fn overdue_by_gate(approvals: &[Arc<CachedApproval>]) -> [(Gate, i64); 5] {
    let mut counts = Gate::ALL.map(|gate| (gate, 0));
    let overdue = approvals
        .iter()
        .filter_map(|a| a.0.as_ref().ok()?.status.as_ref())
        .flat_map(|s| &s.overdue);
    for gate in overdue {
        if let Some(count) = counts.iter_mut().find(|(g, _)| g.condition_type() == gate) {
            count.1 += 1;
        }
    }
    counts
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

/// Read → decide (pure) → write status → publish → mark in use → record →
/// wait.
#[instrument(skip_all, fields(namespace = guarded.meta().namespace.as_deref().unwrap_or_default(), name = guarded.meta().name.as_deref().unwrap_or_default()))]
async fn reconcile(
    guarded: Arc<CachedApproval>,
    state: Arc<State>,
) -> Result<Action, ReconcileError> {
    let ctx = &state.ctx;
    let _timer = ctx.metrics.reconcile(CONTROLLER);
    let packed = ctx.readable(guarded.as_ref()).await.at(Step::Read)?;
    let approval = &super::identity::owned(packed.unpack().map_err(Error::from).at(Step::Read)?);
    let namespace = approval
        .namespace()
        .ok_or(Error::MissingMetadata("namespace"))
        .at(Step::Read)?;
    let pin = pin_for(&state, approval).at(Step::Read)?;
    let now = now_seconds();
    let Some((decision, judged)) = decide_for(&state, approval, pin.as_ref(), now) else {
        // The answer brings it back; the requeue only covers an answer lost
        // with a restart of the look-ups.
        return Ok(Action::requeue(ARTIFACT_RETRY));
    };
    write_status(&state, approval, &namespace, &decision).await?;
    crate::fleet::honoured::mark((ctx, &state.imports), approval, &decision.status)
        .await
        .at(Step::Status)?;
    publish(ctx, approval, &decision).await;
    // The in-use mark first: a record that cannot be written yet must not
    // keep a finalizer that is due to go.
    let usage_known = mark_in_use(&state, approval).await?;
    record(&state, approval, &decision).await?;
    attach_records(&state, approval, &decision).await?;
    // The BreakGlass statuses last: one whose status the API server will
    // not take (whoever requested it) must not hold back the approval's
    // Events, in-use mark and signed records.
    super::release::write(ctx, CONTROLLER, &judged, (&decision.status, approval), now)
        .await
        .at(Step::Status)?;
    ctx.succeeded(guarded.as_ref());
    let resync = approval
        .spec
        .import_from
        .is_some()
        .then(|| state.imports.resync());
    Ok(next(&decision, usage_known, resync))
}

/// Puts the in-use finalizer on or takes it off when due; whether the
/// approval's use is known yet.
async fn mark_in_use(state: &State, approval: &ModelApproval) -> Result<bool, ReconcileError> {
    match state.in_use.needs(approval) {
        Mark::Done => Ok(true),
        Mark::Later => Ok(false),
        Mark::Set(mark) => {
            state
                .in_use
                .set(&state.ctx.client, approval, mark)
                .await
                .at(Step::Finalizer)?;
            Ok(true)
        }
    }
}

/// Writes the signed records of the phase changes the status now holds,
/// when records are on.
async fn record(
    state: &State,
    approval: &ModelApproval,
    decision: &decide::Decision,
) -> Result<(), ReconcileError> {
    let Some(recorder) = &state.recorder else {
        return Ok(());
    };
    let created = recorder
        .write(&state.ctx.client, approval, &decision.status)
        .await
        .at(Step::Record)?;
    state.ctx.metrics.records_written.inc_by(created as u64);
    Ok(())
}

/// Attaches the new signed records of an OCI approval to its model in the
/// registry, and keeps count in its status. A push that fails is said in
/// the status and fails the reconcile, which is retried with backoff.
async fn attach_records(
    state: &State,
    approval: &ModelApproval,
    decision: &decide::Decision,
) -> Result<(), ReconcileError> {
    let (Some(recorder), Some(registry)) = (&state.recorder, &state.ctx.registry) else {
        return Ok(());
    };
    // A mirror does not publish: the publisher's record is the one that
    // travels, and this cluster's records stay in this cluster.
    if approval.spec.import_from.is_some() {
        return Ok(());
    }
    if crate::fleet::publish::due(&decision.status).is_empty() {
        return Ok(());
    }
    let (publication, failure) =
        crate::fleet::publish::publish(registry, recorder, approval, &decision.status).await;
    if let Some(publication) = publication {
        let status = crate::api::approval::ModelApprovalStatus {
            publication: Some(Box::new(publication)),
            ..decision.status.clone()
        };
        let namespace = approval.namespace().unwrap_or_default();
        apply_status(state, approval, &namespace, status)
            .await
            .at(Step::Status)?;
    }
    match failure {
        Some(why) => Err(Error::Unavailable(why)).at(Step::Record),
        None => Ok(()),
    }
}

/// The decision over the freshest status we know (the cache's, or our own
/// last write when the cache has not caught up with it), with the artifact
/// as its registry answered. None while an approval the operator never
/// wrote waits for its first look-up: its answer brings the approval back,
/// and one status write then says it all.
fn decide_for(
    state: &State,
    approval: &ModelApproval,
    pin: Option<&PinnedPolicy>,
    now: Timestamp,
) -> Option<(decide::Decision, Vec<super::release::Judged>)> {
    let uid = approval.meta().uid.as_deref().unwrap_or_default();
    let status = state.written.current(
        uid,
        approval.meta().resource_version.as_deref(),
        approval.status.as_ref(),
    );
    let object =
        ObjectRef::new(&approval.name_any()).within(&approval.namespace().unwrap_or_default());
    let artifact = super::artifact::standing(
        &state.lookups,
        (uid, object.clone()),
        &approval.spec,
        status.as_ref(),
    );
    let first = status.as_ref().is_none_or(|s| s.artifact.is_none());
    if first && artifact.message.as_deref() == Some(super::artifact::LOOKING) {
        return None;
    }
    // Break-glass is judged under the pinned rules: the status's, or those
    // about to be pinned.
    let mut pinned = status.clone().unwrap_or_default();
    if pinned.policy.is_none() {
        pinned.policy = pin.cloned().map(Arc::new);
    }
    let judged = super::release::judged(&state.break_glass, approval, Some(&pinned), now);
    let imported = imported_standing(state, (approval, uid, object), &artifact, status.as_ref());
    let mut decision = decide::decide(Input {
        spec: &approval.spec,
        generation: approval.meta().generation,
        status: status.as_ref(),
        now,
        pin,
        artifact: Some(&artifact),
        created: approval.meta().creation_timestamp.as_ref().map(|t| t.0),
        release: super::release::release(&judged, now),
        imported: imported.as_ref(),
    });
    super::identity::stamp(&mut decision, uid);
    Some((decision, judged))
}

/// What a read of the registry (beside the workers, once per resync
/// period) found for an imported approval, once its artifact resolved;
/// None while no new read answered, when the decision goes on with what
/// the status honours.
fn imported_standing(
    state: &State,
    (approval, uid, object): (&ModelApproval, &str, ObjectRef<CachedApproval>),
    artifact: &crate::api::approval::ResolvedArtifact,
    status: Option<&crate::api::approval::ModelApprovalStatus>,
) -> Option<crate::api::fleet::ImportedApproval> {
    let import = approval.spec.import_from.as_ref()?;
    let pinned = artifact
        .reference
        .as_deref()
        .filter(|_| artifact.seal == Seal::Sealed)?;
    let fetched = state.imports.poll((uid, object), import, pinned)?;
    let model = &approval.spec.model;
    let expected = crate::fleet::mirror::Expected {
        import,
        name: &model.name,
        version: &model.version,
        repository: pinned.split('@').next().unwrap_or_default(),
    };
    let previous = status.and_then(|s| s.imported.as_deref());
    Some(crate::fleet::mirror::mirror(&expected, previous, fetched))
}

/// The rules to pin into an approval that has none yet: its namespace's
/// `default` policy, else the operator namespace's, else the built-in ones.
/// An approval decided before policies existed (it has history) keeps the
/// built-in rules, so an upgrade never re-decides an approval in flight.
/// A policy that applies but cannot be read pins nothing: the approval
/// waits for it rather than fall back to weaker rules.
///
/// The controller starts only once the policy cache has its first list
/// (see `run`), so this never reads a cache still filling.
fn pin_for(state: &State, approval: &ModelApproval) -> Result<Option<PinnedPolicy>, Error> {
    let status = approval.status.as_ref();
    if status.is_some_and(|s| s.policy.is_some()) {
        return Ok(None);
    }
    let imported = approval.spec.import_from.is_some();
    if status.is_some_and(|s| !s.history.is_empty()) {
        return Ok(Some(pin::pin_for_approval(None, imported)));
    }
    let namespace = approval.namespace().unwrap_or_default();
    let policy = [namespace.as_str(), state.home.as_str()]
        .into_iter()
        .find_map(|ns| {
            state
                .policies
                .get(&ObjectRef::new(pin::DEFAULT_POLICY).within(ns))
        });
    match policy.as_ref().map(|p| &p.0) {
        None => Ok(Some(pin::pin_for_approval(None, imported))),
        Some(Ok(policy)) => Ok(Some(pin::pin_for_approval(Some(policy), imported))),
        Some(Err(invalid)) => Err(Error::Unavailable(format!(
            "the ApprovalPolicy {}/{} that applies cannot be read ({}); the approval waits for it to be fixed",
            invalid.metadata.namespace.as_deref().unwrap_or_default(),
            pin::DEFAULT_POLICY,
            invalid.error
        ))),
    }
}

/// Applies the decided status when it changed, and remembers the write.
async fn write_status(
    state: &State,
    approval: &ModelApproval,
    namespace: &str,
    decision: &decide::Decision,
) -> Result<(), ReconcileError> {
    if !decision.changed {
        return Ok(());
    }
    apply_status(state, approval, namespace, decision.status.clone())
        .await
        .at(Step::Status)?;
    info!(phase = ?decision.status.phase, transitions = decision.transitions.len(), "status applied");
    Ok(())
}

/// Applies `status`, remembers the write for reads the cache is behind
/// on, and hands the approval written to the deployment controller when
/// that releases or withdraws it (`deployment::handoff`). An approval padded (through made-up managedFields, which no
/// admission policy measures) to the size etcd takes refuses the write as
/// too large: its managedFields are then reset, which the API server
/// rebuilds from the object, and the write is tried once more.
async fn apply_status(
    state: &State,
    approval: &ModelApproval,
    namespace: &str,
    status: crate::api::approval::ModelApprovalStatus,
) -> Result<(), Error> {
    let written = apply_or_shrink(state, approval, namespace, &status).await?;
    if written.meta().uid != approval.meta().uid {
        // Where admission does not refuse it (see `identity`): the new
        // approval's reconcile decides it afresh.
        return Err(Error::Unavailable(format!(
            "the status was written onto another approval named {} (uid {}): it was re-created",
            written.name_any(),
            written.meta().uid.as_deref().unwrap_or_default()
        )));
    }
    state.written.record_status(
        approval.meta().uid.as_deref().unwrap_or_default(),
        written.meta().resource_version.as_deref(),
        status,
    );
    state.handoff.written(approval, written);
    Ok(())
}

async fn apply_or_shrink(
    state: &State,
    approval: &ModelApproval,
    namespace: &str,
    status: &crate::api::approval::ModelApprovalStatus,
) -> Result<ModelApproval, Error> {
    let name = approval.name_any();
    let ctx = &state.ctx;
    match ctx.apply_status(CONTROLLER, namespace, &name, status).await {
        Err(Error::Kube(kube::Error::Api(s))) if s.message.contains("too large") => {
            warn!(message = %s.message, "status refused as too large; resetting managedFields");
            let api: kube::Api<ModelApproval> =
                kube::Api::namespaced(ctx.client.clone(), namespace);
            let reset = serde_json::json!({"metadata": {"managedFields": [{}]}});
            api.patch(
                &name,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&reset),
            )
            .await?;
            ctx.apply_status(CONTROLLER, namespace, &name, status).await
        }
        other => other,
    }
}

/// Counts the gate decisions and announces every transition as an Event.
///
/// Events after the write: the status history is the durable record, so
/// an Event is only announced for a transition that was recorded.
async fn publish(ctx: &Context, approval: &ModelApproval, decision: &decide::Decision) {
    for t in &decision.transitions {
        if let Some(gate) = Gate::from_condition_type(&t.subject) {
            let result = match t.to.as_str() {
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
    let events =
        crate::transition::announced(&decision.transitions, crate::api::approval::PHASE_SUBJECT);
    ctx.announce(CONTROLLER, &approval.object_ref(&()), &events)
        .await;
}

/// When to look again: expiry must happen on time with nothing else
/// changing, and an in-use mark waits for the deployment index.
fn next(decision: &decide::Decision, usage_known: bool, resync: Option<Duration>) -> Action {
    // Expiry and review deadlines must happen on time with nothing else
    // changing.
    let expiry = decision
        .expires_at
        .into_iter()
        .chain(decision.next_deadline)
        .filter_map(|e| decide::until(e, Timestamp::now()))
        .min()
        .map(|wait| wait + Duration::from_millis(500));
    let retry = (!usage_known).then_some(Duration::from_secs(1));
    // An artifact the registry does not serve yet is asked for again; one
    // being looked up brings its approval back when the answer comes.
    let unresolved = decision
        .status
        .artifact
        .as_ref()
        .filter(|a| a.seal == Seal::Unresolved)
        .filter(|a| a.message.as_deref() != Some(super::artifact::LOOKING))
        .map(|_| ARTIFACT_RETRY);
    // An imported approval is read again from the registry, until it
    // lapses.
    let resync = resync.filter(|_| decision.status.phase != Some(ApprovalPhase::Expired));
    match expiry
        .into_iter()
        .chain(retry)
        .chain(unresolved)
        .chain(resync)
        .min()
    {
        Some(wait) => Action::requeue(wait),
        None => Action::await_change(),
    }
}

fn error_policy(object: Arc<CachedApproval>, error: &ReconcileError, state: Arc<State>) -> Action {
    state.ctx.after_error(CONTROLLER, object.as_ref(), error)
}

#[cfg(test)]
mod tests;
