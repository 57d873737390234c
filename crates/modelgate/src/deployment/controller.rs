//! Watches ModelDeployments, the approvals they depend on (through the
//! index) and the Deployments they own; applies the Deployment only while
//! the approval is Approved, and reports progress from the Deployment's own
//! status.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use futures::{Future, Stream, TryStreamExt};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::api::{Api, Patch, PatchParams};
use kube::core::DeserializeGuard;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, ReflectHandle, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use tracing::{info, instrument, warn};

use super::applied::{self, Applied};
use super::decide::{self, ApplyFailure, Input, Linked, Plan};
use super::desired::{
    self, HELD_REPLICAS_ANNOTATION, MANAGED_BY_LABEL, MANAGED_BY_VALUE, MODEL_DEPLOYMENT_LABEL,
};
use super::index::ApprovalIndex;
use super::{orphans, replicasets};
use crate::api::{DeploymentPhase, ModelApproval, ModelDeployment};
use crate::runtime::Synced;
use crate::runtime::watches::{CachedApproval, slim};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

/// This controller's name in metrics.
const CONTROLLER: &str = "deployment";
use crate::context::{Context, now_seconds};
use crate::error::{Error, Result};
use crate::vocabulary::FIELD_MANAGER;

pub use crate::vocabulary::REVOKE_FIELD_MANAGER;

/// What the reconciles of this controller read from memory.
pub struct State {
    pub ctx: Arc<Context>,
    /// Whether every watch cache has its first list: a reconcile before
    /// that would report a present approval as missing.
    pub synced: Arc<Synced>,
    pub approvals: Store<CachedApproval>,
    pub deployments: Store<Deployment>,
    /// The ReplicaSets of managed Deployments: what the pods run.
    pub replicasets: Store<ReplicaSet>,
    /// What the last apply left on each Deployment.
    pub applied: Arc<Applied>,
}

/// What this controller is started with besides the context.
pub struct Inputs {
    /// How watches make their first list.
    pub config: watcher::Config,
    /// Tracks the first list of every cache; this controller marks its own
    /// two (ModelDeployments and Deployments).
    pub synced: Arc<Synced>,
    /// The approval cache shared with the approval controller.
    pub approvals: Store<CachedApproval>,
    /// This controller's feed of changed approvals.
    pub approval_changes: ReflectHandle<CachedApproval>,
    /// Approval → deployments; this controller keeps it up to date.
    pub index: ApprovalIndex,
}

/// The ModelDeployment controller, ready to be driven until `shutdown`,
/// with the stray ReplicaSet controller and the orphan sweep beside it.
pub fn run(
    ctx: Arc<Context>,
    inputs: Inputs,
    shutdown: impl Future<Output = ()> + Send + Sync + Clone + 'static,
) -> impl Future<Output = ()> {
    ctx.metrics.start_at_zero(CONTROLLER, &Error::METRIC_LABELS);
    let client = ctx.client.clone();
    let index = inputs.index;

    let synced = inputs.synced;
    let mut synced_mds = synced.marker::<DeserializeGuard<ModelDeployment>>("modeldeployments");
    let (md_reader, md_writer) = reflector::store();
    let observed = index.clone();
    let mds = watcher(
        Api::<DeserializeGuard<ModelDeployment>>::all(client.clone()),
        inputs.config.clone(),
    )
    .default_backoff()
    .modify(slim)
    .reflect(md_writer)
    .inspect_ok(move |event| {
        observed.observe(event);
        synced_mds(event);
    })
    .applied_objects();

    let applied = Arc::new(Applied::default());
    let (orphan_tx, orphan_rx) = orphans::channel();
    let (deployment_reader, deployments) = watch_deployments(
        client.clone(),
        &inputs.config,
        &synced,
        applied.clone(),
        orphan_tx.clone(),
    );
    let Some(rs) = replicasets::watch(client, &inputs.config, &synced) else {
        warn!("cannot subscribe to the ReplicaSet cache; no deployment controller started");
        return futures::future::Either::Left(futures::future::ready(()));
    };
    let observer = crate::runtime::count_phases(
        md_reader.clone(),
        ctx.metrics.deployments.clone(),
        DeploymentPhase::ALL.map(|p| p.as_str()).to_vec(),
        |md| Some(md.status.as_ref()?.phase?.as_str()),
        |_| {},
    );
    let strays = replicasets::run_strays(
        ctx.clone(),
        (rs.store.clone(), rs.for_strays),
        inputs.approvals.clone(),
        deployment_reader.clone(),
        synced.clone(),
        shutdown.clone(),
    );
    let sweep = orphans::run(ctx.clone(), orphan_tx, orphan_rx);
    let state = Arc::new(State {
        ctx,
        synced: synced.clone(),
        approvals: inputs.approvals,
        deployments: deployment_reader,
        replicasets: rs.store,
        applied,
    });
    let concurrency = state.ctx.concurrency;
    let controller = Controller::for_stream(mds, md_reader)
        .watches_stream(deployments, owning_model_deployment)
        .watches_shared_stream(rs.for_deployments, |r| {
            let name = r.labels().get(MODEL_DEPLOYMENT_LABEL)?;
            Some(ObjectRef::new(name).within(&r.namespace()?))
        })
        .watches_shared_stream(inputs.approval_changes, move |approval| {
            index.lookup(&approval)
        })
        .with_config(crate::runtime::controller_config(concurrency))
        .graceful_shutdown_on(shutdown.clone())
        .run(reconcile, error_policy, state);
    let watch = rs.watch;
    futures::future::Either::Right(async move {
        // The watch and the sweep run until shutdown; the controllers end
        // on it by themselves.
        let until_shutdown = |work: std::pin::Pin<Box<dyn Future<Output = ()> + Send>>| {
            let shutdown = shutdown.clone();
            async move {
                tokio::select! {
                    _ = work => {},
                    _ = shutdown => {},
                }
            }
        };
        futures::join!(
            crate::runtime::drive(controller, observer),
            strays,
            until_shutdown(watch),
            until_shutdown(Box::pin(sweep)),
        );
    })
}

/// The managed Deployments' cache and its change stream. Deletions count
/// too: a deleted (or unlabelled) Deployment must bring its ModelDeployment
/// back to re-create it.
fn watch_deployments(
    client: Client,
    config: &watcher::Config,
    synced: &Arc<Synced>,
    applied: Arc<Applied>,
    orphans: tokio::sync::mpsc::UnboundedSender<orphans::Suspect>,
) -> (
    Store<Deployment>,
    impl Stream<Item = std::result::Result<Deployment, watcher::Error>> + Send + 'static,
) {
    let mut synced_deployments = synced.marker::<Deployment>("deployments");
    let (reader, writer) = reflector::store();
    let managed = config
        .clone()
        .labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"));
    let stream = watcher(Api::<Deployment>::all(client), managed)
        .default_backoff()
        .modify(slim)
        .reflect(writer)
        .inspect_ok(move |event| {
            match event {
                watcher::Event::Delete(d) => applied.forget(d),
                watcher::Event::Apply(d) | watcher::Event::InitApply(d) if orphans::unowned(d) => {
                    if let (Some(ns), Some(name)) = (d.namespace(), d.metadata.name.clone()) {
                        let _ = orphans.send((ns, name));
                    }
                }
                _ => {}
            }
            synced_deployments(event)
        })
        .touched_objects();
    (reader, stream)
}

/// The ModelDeployment a managed Deployment belongs to: its controller, or,
/// for one whose owner reference was removed, the one its label names.
fn owning_model_deployment(d: Deployment) -> Option<ObjectRef<DeserializeGuard<ModelDeployment>>> {
    let namespace = d.namespace()?;
    let name = d
        .owner_references()
        .iter()
        .find(|o| o.controller == Some(true) && o.kind == ModelDeployment::kind(&()))
        .map(|o| o.name.clone())
        .or_else(|| d.labels().get(MODEL_DEPLOYMENT_LABEL).cloned())?;
    Some(ObjectRef::new(&name).within(&namespace))
}

/// Whether `d` has the ModelDeployment of `uid` as its controller.
fn controlled_by(d: &Deployment, uid: &str) -> bool {
    d.owner_references()
        .iter()
        .any(|o| o.controller == Some(true) && o.uid == uid)
}

/// Whether `d` is this ModelDeployment's to manage: controlled by it, or
/// orphaned (no controller at all) while still carrying both of its labels,
/// which happens when someone removed the owner reference. An orphan is
/// re-adopted by the next apply.
fn ours(d: &Deployment, owner: &OwnerReference) -> bool {
    let labels = d.labels();
    controlled_by(d, &owner.uid)
        || (d
            .owner_references()
            .iter()
            .all(|o| o.controller != Some(true))
            && labels.get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGED_BY_VALUE)
            && labels.get(MODEL_DEPLOYMENT_LABEL) == Some(&owner.name))
}

/// The refusal text of an API error that means "this object is invalid", as
/// opposed to a transient failure.
fn refusal(error: &kube::Error) -> Option<String> {
    match error {
        kube::Error::Api(status) if status.code == 422 || status.code == 400 => {
            Some(status.message.clone())
        }
        _ => None,
    }
}

/// Every ModelDeployment is looked at again this often with nothing else
/// changing, to heal drift admission could not prevent. Spread over a
/// minute by uid so that the re-checks of many objects do not coincide.
fn recheck_after(md: &ModelDeployment) -> Duration {
    let mut hasher = std::hash::DefaultHasher::new();
    md.uid().hash(&mut hasher);
    RECHECK_PERIOD + Duration::from_secs(hasher.finish() % 60)
}

/// How often every ModelDeployment is re-checked from the cache.
pub const RECHECK_PERIOD: Duration = Duration::from_secs(270);

/// The ModelDeployment a reconcile works on, with what every step needs.
struct Target<'a> {
    md: &'a ModelDeployment,
    namespace: String,
    name: String,
    owner: OwnerReference,
}

impl<'a> Target<'a> {
    fn of(md: &'a ModelDeployment) -> Result<Self> {
        Ok(Target {
            md,
            namespace: md.namespace().ok_or(Error::MissingMetadata("namespace"))?,
            name: md
                .meta()
                .name
                .clone()
                .ok_or(Error::MissingMetadata("name"))?,
            owner: md
                .controller_owner_ref(&())
                .ok_or(Error::MissingMetadata("uid"))?,
        })
    }
}

/// The Deployment named like the ModelDeployment: from the cache, or, when
/// the cache has none but one may exist (the status names one, or one is
/// about to be created), from the API server. The cache only holds
/// Deployments with the managed-by label, so one whose label was removed
/// is found by the read.
async fn find_deployment(
    state: &State,
    target: &Target<'_>,
    may_exist: bool,
) -> Result<Option<Deployment>> {
    let reference = ObjectRef::new(&target.name).within(&target.namespace);
    if let Some(cached) = state.deployments.get(&reference) {
        return Ok(Some((*cached).clone()));
    }
    if !may_exist {
        return Ok(None);
    }
    let api: Api<Deployment> = Api::namespaced(state.ctx.client.clone(), &target.namespace);
    Ok(api.get_opt(&target.name).await?)
}

/// Applies the Deployment for `approval`, unless `live` is exactly what the
/// last apply left. Returns the Deployment as the API server answered, or
/// why it refused.
async fn release(
    state: &State,
    target: &Target<'_>,
    approval: &ModelApproval,
    live: Option<&Deployment>,
) -> Result<std::result::Result<Option<Deployment>, ApplyFailure>> {
    let md = target.md;
    let desired = desired::deployment(
        md,
        &approval.name_any(),
        &approval.spec.model,
        target.owner.clone(),
    );
    let print = applied::fingerprint(&desired);
    let held = live.is_some_and(|d| d.annotations().contains_key(HELD_REPLICAS_ANNOTATION));
    if let Some(d) = live.filter(|_| held) {
        release_hold(state, target, d).await?;
    }
    unmark_replicasets(state, target).await?;
    // An orphan is re-adopted by applying: its owner reference is missing.
    if !held
        && live.is_some_and(|d| {
            controlled_by(d, &target.owner.uid) && state.applied.in_sync(d, &desired, print)
        })
    {
        return Ok(Ok(None));
    }
    let api: Api<Deployment> = Api::namespaced(state.ctx.client.clone(), &target.namespace);
    // force: the template is the operator's alone; an edit by anyone else
    // is drift and is put back.
    let params = PatchParams::apply(FIELD_MANAGER).force();
    match api
        .patch(&target.name, &params, &Patch::Apply(&desired))
        .await
    {
        Ok(written) => {
            state.applied.record(&written, print);
            if live.is_some() {
                info!("applied the Deployment over drift or a new desired state");
            }
            Ok(Ok(Some(written)))
        }
        Err(e) => match refusal(&e) {
            Some(message) => Ok(Err(ApplyFailure {
                reason: "InvalidTemplate",
                message: format!("the API server refused the Deployment: {message}"),
            })),
            None => Err(e.into()),
        },
    }
}

/// Scales the Deployment to zero under a field manager of its own, unless
/// it is there already.
async fn scale_to_zero(
    state: &State,
    target: &Target<'_>,
    live: &Deployment,
) -> Result<Option<Deployment>> {
    if live.spec.replicas == Some(0)
        && live
            .annotations()
            .get(HELD_REPLICAS_ANNOTATION)
            .map(String::as_str)
            == Some("0")
    {
        return Ok(None);
    }
    // Marked held at zero: admission then refuses any growth by anyone else.
    let patch = serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {
            "name": target.name, "namespace": target.namespace,
            "annotations": {HELD_REPLICAS_ANNOTATION: "0"},
        },
        "spec": {"replicas": 0},
    });
    let api: Api<Deployment> = Api::namespaced(state.ctx.client.clone(), &target.namespace);
    let params = PatchParams::apply(REVOKE_FIELD_MANAGER).force();
    let written = api
        .patch(&target.name, &params, &Patch::Apply(&patch))
        .await?;
    info!("scaled to zero: the serving approval was revoked");
    Ok(Some(written))
}

/// The replicas a held Deployment keeps: those it had when it was first
/// held, or, on first sight, those it has now.
fn held_replicas(live: &Deployment) -> i32 {
    live.annotations()
        .get(HELD_REPLICAS_ANNOTATION)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| live.spec.replicas.unwrap_or(1))
}

/// Holds the Deployment of a withdrawn approval (onRevoke Hold) at the
/// replicas it had then, under the revoke field manager: its annotation
/// tells admission to refuse any change of replicas by anyone else, and a
/// change that got past admission is put back here. It is paused too: a
/// rollout under way when the approval was withdrawn would otherwise go on
/// and start new pods of the withdrawn model.
async fn freeze(
    state: &State,
    target: &Target<'_>,
    live: &Deployment,
) -> Result<Option<Deployment>> {
    let replicas = held_replicas(live);
    let marked = live.annotations().get(HELD_REPLICAS_ANNOTATION) == Some(&replicas.to_string());
    if marked && live.spec.replicas == Some(replicas) && live.spec.paused == Some(true) {
        return Ok(None);
    }
    let patch = serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {
            "name": target.name, "namespace": target.namespace,
            "annotations": {HELD_REPLICAS_ANNOTATION: replicas.to_string()},
        },
        "spec": {"replicas": replicas, "paused": true},
    });
    let api: Api<Deployment> = Api::namespaced(state.ctx.client.clone(), &target.namespace);
    let params = PatchParams::apply(REVOKE_FIELD_MANAGER).force();
    let written = api
        .patch(&target.name, &params, &Patch::Apply(&patch))
        .await?;
    info!(
        replicas,
        "held at its replicas: the serving approval was withdrawn (onRevoke: Hold)"
    );
    Ok(Some(written))
}

/// Lifts a hold before an approved model is applied: the revoke field
/// manager gives up the annotation and the pause (the apply that follows
/// writes `paused: false`) and keeps only the replicas as they are.
async fn release_hold(state: &State, target: &Target<'_>, live: &Deployment) -> Result<()> {
    let patch = serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": target.name, "namespace": target.namespace},
        "spec": {"replicas": live.spec.replicas.unwrap_or(1)},
    });
    let api: Api<Deployment> = Api::namespaced(state.ctx.client.clone(), &target.namespace);
    let params = PatchParams::apply(REVOKE_FIELD_MANAGER).force();
    api.patch(&target.name, &params, &Patch::Apply(&patch))
        .await?;
    Ok(())
}

/// Takes the hold's mark off this ModelDeployment's ReplicaSets once no hold
/// stands. The Deployment controller copies the Deployment's annotations
/// onto its current ReplicaSet but never removes one, and admission lets no
/// ReplicaSet that carries the mark grow (an autoscaler would otherwise grow
/// a held model through the scale subresource, where the hold is not seen).
/// A merge patch: the mark was written by the Deployment controller, so an
/// apply of ours could not remove it.
async fn unmark_replicasets(state: &State, target: &Target<'_>) -> Result<()> {
    let api: Api<ReplicaSet> = Api::namespaced(state.ctx.client.clone(), &target.namespace);
    let unmark = serde_json::json!({"metadata": {"annotations": {HELD_REPLICAS_ANNOTATION: null}}});
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    for rs in state.replicasets.state() {
        let ours = rs.namespace().as_deref() == Some(target.namespace.as_str())
            && rs.labels().get(MODEL_DEPLOYMENT_LABEL) == Some(&target.name);
        if ours && rs.annotations().contains_key(HELD_REPLICAS_ANNOTATION) {
            api.patch(&rs.name_any(), &params, &Patch::Merge(&unmark))
                .await?;
        }
    }
    Ok(())
}

/// Carries out the plan: returns the Deployment as the write left it (when
/// there was one) or why it could not be applied. `found` says whether a
/// Deployment of the name exists at all, ours or not.
async fn act(
    state: &State,
    target: &Target<'_>,
    input: &Input<'_>,
    found: bool,
) -> Result<(Option<Deployment>, Option<ApplyFailure>)> {
    let live = input.deployment;
    Ok(match decide::plan(input) {
        // A Deployment of the same name that this ModelDeployment does not
        // control is someone else's: never take it over.
        Plan::Release(_) if found && live.is_none() => (
            None,
            Some(ApplyFailure {
                reason: "DeploymentConflict",
                message: format!(
                    "a Deployment named {} already exists and is not managed by this ModelDeployment; rename one of them",
                    target.name
                ),
            }),
        ),
        plan @ (Plan::Release(approval) | Plan::Rollback(approval)) => {
            if let Plan::Rollback(_) = plan {
                info!(approval = %approval.name_any(), "rolling back to the newest earlier approved version");
            }
            match release(state, target, approval, live).await? {
                Ok(written) => {
                    if matches!(plan, Plan::Release(_)) && written.is_some() {
                        observe_rollout(state, approval, live);
                    }
                    (written, None)
                }
                Err(refused) => (None, Some(refused)),
            }
        }
        Plan::ScaleToZero => match live {
            Some(d) => (scale_to_zero(state, target, d).await?, None),
            None => (None, None),
        },
        Plan::Freeze => match live {
            Some(d) => (freeze(state, target, d).await?, None),
            None => (None, None),
        },
        Plan::Hold => (None, None),
    })
}

/// Gate-to-rollout latency, once per approval a Deployment is first
/// applied for: re-applies over drift and rollbacks to an old approval are
/// not the wait this measures.
fn observe_rollout(state: &State, approval: &ModelApproval, live: Option<&Deployment>) {
    let served = decide::served(live).map(|m| m.approval);
    if served.as_deref() == Some(approval.name_any().as_str()) {
        return;
    }
    let Some(approved) = approval
        .status
        .as_ref()
        .and_then(|s| s.approved_at.as_ref())
    else {
        return;
    };
    let waited = now_seconds().duration_since(approved.0).as_secs_f64();
    state.ctx.metrics.gate_to_rollout.observe(waited.max(0.0));
}

/// Writes the status when it changed and announces a phase change.
async fn report(state: &State, target: &Target<'_>, decision: &decide::Decision) -> Result<()> {
    let ctx = &state.ctx;
    if decision.changed {
        let _: ModelDeployment = ctx
            .apply_status(
                CONTROLLER,
                &target.namespace,
                &target.name,
                &decision.status,
            )
            .await?;
        info!(phase = ?decision.status.phase, "status applied");
    }
    if let Some((severity, reason, note)) = &decision.transition
        && let Err(e) = ctx
            .events
            .publish(
                &target.md.object_ref(&()),
                *severity,
                reason,
                "Rollout",
                note,
            )
            .await
    {
        warn!(error = %e, reason, "could not publish event");
    }
    Ok(())
}

#[instrument(skip_all, fields(namespace = guarded.meta().namespace.as_deref().unwrap_or_default(), name = guarded.meta().name.as_deref().unwrap_or_default()))]
async fn reconcile(
    guarded: Arc<DeserializeGuard<ModelDeployment>>,
    state: Arc<State>,
) -> Result<Action> {
    let ctx = &state.ctx;
    if !state.synced.is_done() {
        return Ok(Action::requeue(Duration::from_millis(500)));
    }
    let _timer = ctx.metrics.reconcile(CONTROLLER);
    let md = ctx.readable(guarded.as_ref()).await?;
    let target = Target::of(md)?;

    let find_approval = |approval: &str| {
        state
            .approvals
            .get(&ObjectRef::new(approval).within(&target.namespace))
            .and_then(|a| a.0.as_ref().ok().cloned())
    };
    let reference = &md.spec.approval_ref;
    let linked_approval = find_approval(&reference.name);
    let linked = match reference.namespace.as_deref() {
        Some(other) if other != target.namespace => Linked::OtherNamespace(other),
        _ => match &linked_approval {
            Some(a) => Linked::Found(a),
            None => Linked::NotFound,
        },
    };
    let named_in_status = md
        .status
        .as_ref()
        .is_some_and(|s| s.deployment_name.is_some());
    let may_exist = named_in_status || matches!(linked, Linked::Found(a) if decide::is_approved(a));
    let found = find_deployment(&state, &target, may_exist).await?;
    // Only a Deployment this ModelDeployment controls (or an orphan of its
    // own) is ours to change.
    let live = found.clone().filter(|d| ours(d, &target.owner));
    // The approval a Deployment's pods serve, when not the one linked. A
    // ref to another namespace links nothing here, so what serves is looked
    // up by its own name even when the ref names it too.
    let links_here = !matches!(linked, Linked::OtherNamespace(_));
    let serving = |d: Option<&Deployment>| {
        decide::served(d)
            .filter(|s| !links_here || s.approval != reference.name)
            .and_then(|s| find_approval(&s.approval))
    };
    let served_approval = serving(live.as_ref());
    // The approvals of what served before, for a Rollback (and their uids
    // for the history).
    let served_before: Vec<ModelApproval> = md
        .status
        .iter()
        .flat_map(|s| &s.served_history)
        .filter_map(|e| find_approval(&e.approval))
        .collect();
    let input = Input {
        md,
        linked,
        served_approval: served_approval.as_ref(),
        deployment: live.as_ref(),
        served_before: &served_before,
        running: &replicasets::running(&state.replicasets, &target.namespace, &target.name),
        now: now_seconds(),
    };

    let (current, failure) = act(&state, &target, &input, found.is_some()).await?;
    // The status describes the Deployment as the action left it, and what
    // that serves (a rollback changes it).
    let after = current.as_ref().or(live.as_ref());
    let served_after = serving(after);
    let decision = decide::status(
        &Input {
            served_approval: served_after.as_ref(),
            ..input
        },
        after,
        failure.as_ref(),
    );
    report(&state, &target, &decision).await?;
    ctx.succeeded(guarded.as_ref());
    // Progress arrives through the Deployment watch; the re-check catches
    // what no watch event announces (a label removed by a cluster admin).
    Ok(Action::requeue(recheck_after(md)))
}

fn error_policy(
    object: Arc<DeserializeGuard<ModelDeployment>>,
    error: &Error,
    state: Arc<State>,
) -> Action {
    state.ctx.after_error(CONTROLLER, object.as_ref(), error)
}
