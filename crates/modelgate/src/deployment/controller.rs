//! Watches ModelDeployments, the approvals they depend on (through the
//! index) and the Deployments they own; applies the Deployment only while
//! the approval is Approved, and reports progress from the Deployment's own
//! status.

use std::collections::BTreeSet;
use std::hash::{Hash, Hasher};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::{Future, Stream, TryStreamExt};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::Api;
use kube::core::DeserializeGuard;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, ReflectHandle, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use tokio::task::JoinHandle;
use tracing::{error, info, instrument, warn};

use super::applied::Applied;
use super::apply::{Acted, Target, Writer, controlled_by};
use super::desired::{MANAGED_BY_LABEL, MANAGED_BY_VALUE, MODEL_DEPLOYMENT_LABEL};
use super::handoff;
use super::index::ApprovalIndex;
use super::progress::{self, Decision};
use super::rollout::{self, Input, Linked, Plan};
use super::{orphans, replicasets, sealing};
use crate::api::condition::Condition;
use crate::api::{
    approval::ModelApproval,
    deployment::{DeploymentPhase, ModelDeployment, RunningModel},
};
use crate::context::{Context, now_seconds};
use crate::error::{AtStep, ReconcileError, Result, Step};
use crate::runtime::Synced;
use crate::runtime::{packed::CachedApproval, packed_object::CachedDeployment, watches::slim};
use crate::vocabulary::RUNTIME_CATALOG;

/// This controller's name in metrics.
const CONTROLLER: &str = "deployment";

/// The steps its reconciles take, for the error counters.
const STEPS: [Step; 4] = [Step::Read, Step::Apply, Step::Status, Step::Event];

/// What the reconciles of this controller read from memory.
pub struct State {
    pub ctx: Arc<Context>,
    /// Whether every watch cache has its first list: a reconcile before
    /// that would report a present approval as missing.
    pub synced: Arc<Synced>,
    pub approvals: Store<CachedApproval>,
    /// Approvals the approval controller has just released or withdrawn,
    /// newer than the cache's.
    pub handed: Arc<handoff::Handed>,
    pub deployments: Store<CachedDeployment>,
    /// The ReplicaSets of managed Deployments: what the pods run.
    pub replicasets: Store<ReplicaSet>,
    /// What the last apply left on each Deployment.
    pub applied: Arc<Applied>,
    /// Governed namespaces, the runtime catalog and the egress policies.
    pub sealing: sealing::Stores,
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
    /// Approvals the approval controller has just released or withdrawn.
    pub handed: Arc<handoff::Handed>,
    /// The ModelDeployments whose approval was just released or withdrawn.
    pub handoff: handoff::Received,
}

/// A cache and the stream of changes that fills it.
struct Watched<K: 'static + Resource<DynamicType = ()> + Clone, S> {
    store: Store<K>,
    changes: S,
}

/// What runs beside the controller until shutdown: the phase gauges, the
/// stray ReplicaSet controller, the ReplicaSet watch and the orphan sweep.
struct Beside {
    observer: JoinHandle<()>,
    strays: Pin<Box<dyn Future<Output = ()> + Send>>,
    watch: Pin<Box<dyn Future<Output = ()> + Send>>,
    sweep: Pin<Box<dyn Future<Output = ()> + Send>>,
}

/// The ModelDeployment controller, ready to be driven until `shutdown`,
/// with the stray ReplicaSet controller and the orphan sweep beside it.
pub fn run(
    ctx: Arc<Context>,
    inputs: Inputs,
    shutdown: impl Future<Output = ()> + Send + Sync + Clone + 'static,
) -> impl Future<Output = ()> {
    ctx.metrics.start_at_zero(CONTROLLER, &STEPS);
    let config = &inputs.config;
    let (synced, index) = (inputs.synced, inputs.index);
    let client = ctx.client.clone();
    let scope = &ctx.scope;
    let mds = watch_model_deployments(scope.api(client.clone()), config, &synced, index.clone());
    let applied = Arc::new(Applied::default());
    let (orphan_tx, orphan_rx) = orphans::channel();
    let deployments = watch_deployments(
        scope.api(client.clone()),
        config,
        &synced,
        applied.clone(),
        orphan_tx.clone(),
    );
    let sealed = sealing::watch((&client, scope), config, &synced);
    let Some(rs) = replicasets::watch(scope.api(client), config, &synced) else {
        warn!("cannot subscribe to the ReplicaSet cache; no deployment controller started");
        return futures::future::Either::Left(futures::future::ready(()));
    };
    let beside = Beside {
        observer: count_deployment_phases(&ctx, mds.store.clone()),
        strays: Box::pin(replicasets::run_strays(
            ctx.clone(),
            (rs.store.clone(), rs.for_strays),
            (inputs.approvals.clone(), inputs.handed.clone()),
            deployments.store.clone(),
            synced.clone(),
            shutdown.clone(),
        )),
        watch: rs.watch,
        sweep: Box::pin(orphans::run(ctx.clone(), orphan_tx, orphan_rx)),
    };
    let state = Arc::new(State {
        ctx,
        synced,
        approvals: inputs.approvals,
        handed: inputs.handed,
        deployments: deployments.store,
        replicasets: rs.store,
        applied,
        sealing: sealed.stores,
    });
    let store = mds.store.clone();
    let controller = Controller::for_stream(mds.changes, mds.store)
        .watches_stream(deployments.changes, owning_model_deployment)
        .watches_shared_stream(rs.for_deployments, replicaset_owner)
        .watches_shared_stream(inputs.approval_changes, move |a| index.lookup(a.as_ref()))
        .reconcile_on(inputs.handoff);
    let controller = watching_sealing(controller, sealed.changes, store)
        .with_config(crate::runtime::controller_config(state.ctx.concurrency))
        .graceful_shutdown_on(shutdown.clone())
        .run(reconcile, error_policy, state);
    futures::future::Either::Right(beside.drive(controller, shutdown))
}

impl Beside {
    /// Drives `controller` and everything beside it. The watch and the
    /// sweep run until shutdown; the controllers end on it by themselves.
    async fn drive<S: Stream>(
        self,
        controller: S,
        shutdown: impl Future<Output = ()> + Clone + Send,
    ) {
        let until_shutdown = |work: Pin<Box<dyn Future<Output = ()> + Send>>| {
            let shutdown = shutdown.clone();
            async move {
                tokio::select! {
                    _ = work => {},
                    _ = shutdown => {},
                }
            }
        };
        futures::join!(
            crate::runtime::drive_counting(controller, self.observer),
            self.strays,
            until_shutdown(self.watch),
            until_shutdown(self.sweep),
        );
    }
}

/// Keeps the per-phase gauge of ModelDeployments counted from `store`.
fn count_deployment_phases(
    ctx: &Context,
    store: Store<DeserializeGuard<ModelDeployment>>,
) -> JoinHandle<()> {
    crate::runtime::count_phases(
        store,
        ctx.metrics.deployments.clone(),
        DeploymentPhase::ALL.map(|p| p.as_str()).to_vec(),
        |md| Some(md.status.as_ref()?.phase?.as_str()),
        |_| {},
    )
}

/// The ModelDeployments' cache and its change stream; every event also
/// keeps the approval index and the cache-sync marker up to date.
fn watch_model_deployments(
    api: Api<DeserializeGuard<ModelDeployment>>,
    config: &watcher::Config,
    synced: &Arc<Synced>,
    index: ApprovalIndex,
) -> Watched<
    DeserializeGuard<ModelDeployment>,
    impl Stream<Item = std::result::Result<DeserializeGuard<ModelDeployment>, watcher::Error>>
    + Send
    + 'static,
> {
    let mut synced_mds = synced.marker::<DeserializeGuard<ModelDeployment>>("modeldeployments");
    let (store, writer) = reflector::store();
    let changes = watcher(api, config.clone())
        .default_backoff()
        .modify(slim)
        .reflect(writer)
        .inspect_ok(move |event| {
            index.observe(event);
            synced_mds(event);
        })
        .applied_objects();
    Watched { store, changes }
}

/// The managed Deployments' cache and its change stream. Deletions count
/// too: a deleted (or unlabelled) Deployment must bring its ModelDeployment
/// back to re-create it.
fn watch_deployments(
    api: Api<CachedDeployment>,
    config: &watcher::Config,
    synced: &Arc<Synced>,
    applied: Arc<Applied>,
    orphans: tokio::sync::mpsc::UnboundedSender<orphans::Suspect>,
) -> Watched<
    CachedDeployment,
    impl Stream<Item = std::result::Result<CachedDeployment, watcher::Error>> + Send + 'static,
> {
    let mut synced_deployments = synced.marker::<CachedDeployment>("deployments");
    let (store, writer) = reflector::store();
    let managed = config
        .clone()
        .labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"));
    let changes = watcher(api, managed)
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
    Watched { store, changes }
}

/// The ModelDeployment a managed Deployment belongs to: its controller, or,
/// for one whose owner reference was removed, the one its label names.
fn owning_model_deployment(
    d: CachedDeployment,
) -> Option<ObjectRef<DeserializeGuard<ModelDeployment>>> {
    let namespace = d.namespace()?;
    let name = d
        .owner_references()
        .iter()
        .find(|o| o.controller == Some(true) && o.kind == ModelDeployment::kind(&()))
        .map(|o| o.name.clone())
        .or_else(|| d.labels().get(MODEL_DEPLOYMENT_LABEL).cloned())?;
    Some(ObjectRef::new(&name).within(&namespace))
}

/// A namespace that becomes governed, or a changed catalog, changes whether
/// pods are sealed; a changed egress policy is put back.
fn watching_sealing(
    controller: Controller<DeserializeGuard<ModelDeployment>>,
    changes: sealing::Changes,
    store: Store<DeserializeGuard<ModelDeployment>>,
) -> Controller<DeserializeGuard<ModelDeployment>> {
    let every = store.clone();
    controller
        .watches_stream(changes.namespaces, move |ns| {
            model_deployments(&store, Some(&ns.name_any()))
        })
        .watches_stream(changes.catalogs, move |_| model_deployments(&every, None))
        .watches_stream(changes.policies, policy_owner)
}

/// The ModelDeployments in `namespace` (all of them for None).
fn model_deployments(
    store: &Store<DeserializeGuard<ModelDeployment>>,
    namespace: Option<&str>,
) -> Vec<ObjectRef<DeserializeGuard<ModelDeployment>>> {
    store
        .state()
        .iter()
        .filter(|md| namespace.is_none_or(|ns| md.namespace().as_deref() == Some(ns)))
        .map(|md| ObjectRef::from_obj(md.as_ref()))
        .collect()
}

/// The ModelDeployment an egress policy belongs to.
fn policy_owner(
    p: k8s_openapi::api::networking::v1::NetworkPolicy,
) -> Option<ObjectRef<DeserializeGuard<ModelDeployment>>> {
    let name = p.labels().get(MODEL_DEPLOYMENT_LABEL)?;
    Some(ObjectRef::new(name).within(&p.namespace()?))
}

/// The ModelDeployment whose pods a labelled ReplicaSet runs.
fn replicaset_owner(rs: Arc<ReplicaSet>) -> Option<ObjectRef<DeserializeGuard<ModelDeployment>>> {
    let name = rs.labels().get(MODEL_DEPLOYMENT_LABEL)?;
    Some(ObjectRef::new(name).within(&rs.namespace()?))
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

/// Read → plan (pure) → apply → status (pure) → write status → publish →
/// look again later.
#[instrument(skip_all, fields(namespace = guarded.meta().namespace.as_deref().unwrap_or_default(), name = guarded.meta().name.as_deref().unwrap_or_default()))]
async fn reconcile(
    guarded: Arc<DeserializeGuard<ModelDeployment>>,
    state: Arc<State>,
) -> Result<Action, ReconcileError> {
    let ctx = &state.ctx;
    if !state.synced.is_done() {
        return Ok(Action::requeue(Duration::from_millis(500)));
    }
    let _timer = ctx.metrics.reconcile(CONTROLLER);
    let md = ctx.readable(guarded.as_ref()).await.at(Step::Read)?;
    let target = Target::of(md).at(Step::Read)?;
    let observed = Observed::read(&state, &target).await.at(Step::Read)?;
    let input = observed.input(&target, now_seconds());
    let plan = rollout::plan(&input);
    let writer = Writer {
        client: &ctx.client,
        applied: &state.applied,
        replicasets: &state.replicasets,
        target: &target,
    };
    if md.meta().deletion_timestamp.is_some() {
        withdraw(ctx, md, input.deployment).await.at(Step::Apply)?;
        return Ok(Action::await_change());
    }
    // The egress policy before the pods: a policy that cannot be written
    // holds the rollout (fail closed).
    let egress = keep_egress(&state, &target).await.at(Step::Apply)?;
    let acted = writer
        .carry_out(plan, input.deployment, observed.found.is_some())
        .await
        .at(Step::Apply)?;
    if let Plan::Release(approval) = plan
        && acted.written.is_some()
    {
        observe_rollout(&state, approval, input.deployment);
    }
    let decision = status_after(&state, &target, &input, &acted, egress.as_deref());
    report(&state, &target, &decision).await?;
    ctx.succeeded(guarded.as_ref());
    // Progress arrives through the Deployment watch; the re-check catches
    // what no watch event announces (a label removed by a cluster admin).
    // A break-glass window ends on time here too, whatever the approval
    // controller does.
    let window =
        rollout::window_end(&input).and_then(|end| crate::approval::decide::until(end, input.now));
    let wait = window.map_or(recheck_after(md), |w| {
        recheck_after(md).min(w + Duration::from_millis(500))
    });
    Ok(Action::requeue(wait))
}

/// Deletes the Deployment of a ModelDeployment that is being deleted. The
/// garbage collector would only once the ModelDeployment is gone, and a
/// finalizer of anyone's can keep it from going: deleting a
/// ModelDeployment stops its model at once, whatever holds it (an orphaning
/// delete included, which is said as such).
async fn withdraw(
    ctx: &Context,
    md: &ModelDeployment,
    live: Option<&Deployment>,
) -> Result<(), kube::Error> {
    let Some(d) = live.filter(|d| d.metadata.deletion_timestamp.is_none()) else {
        return Ok(());
    };
    let name = md.name_any();
    if md.finalizers().iter().any(|f| f == "orphan") {
        let note = format!(
            "deleted: ModelDeployment {name} is being deleted with --cascade=orphan, and a Deployment modelgate released runs only while its ModelDeployment stands"
        );
        return orphans::stop(ctx, d, "OrphanDeleted", &note).await;
    }
    let note = format!(
        "deleted: ModelDeployment {name} is being deleted (held by finalizers {:?}), and its model stops now",
        md.finalizers()
    );
    orphans::stop(ctx, d, "ModelDeploymentDeleted", &note).await
}

/// What a reconcile reads besides the ModelDeployment itself: the
/// approvals it names or serves, its Deployment and what the pods run.
struct Observed {
    /// The approval approvalRef names, looked up in this namespace.
    linked: Option<ModelApproval>,
    /// A Deployment of the ModelDeployment's name, ours or not.
    found: Option<Deployment>,
    /// That Deployment when it is ours to change: one this ModelDeployment
    /// controls, or an orphan of its own.
    live: Option<Deployment>,
    /// The approval the live Deployment serves, when not the linked one.
    served: Option<ModelApproval>,
    /// The approvals of what served before, for a Rollback (and their uids
    /// for the history).
    served_before: Vec<ModelApproval>,
    running: Vec<RunningModel>,
}

impl Observed {
    async fn read(state: &State, target: &Target<'_>) -> Result<Self> {
        let md = target.md;
        let linked = approval(state, &target.namespace, &md.spec.approval_ref.name);
        let named_in_status = md
            .status
            .as_ref()
            .is_some_and(|s| s.deployment_name.is_some());
        let approved = matches!(
            linked_as(md, &target.namespace, linked.as_ref()),
            Linked::Found(a) if rollout::releases(a, now_seconds())
        );
        let found = find_deployment(state, target, named_in_status || approved).await?;
        let live = found.clone().filter(|d| ours(d, &target.owner));
        let served = serving_approval(state, target, live.as_ref());
        // Each approval is unpacked from the cache once, however often the
        // history names it. What serves now has served before whatever this
        // reconcile does: the history names it (with its uid) even if it
        // was never written.
        let mut named: BTreeSet<&str> = md
            .status
            .iter()
            .flat_map(|s| &s.served_history)
            .map(|e| e.approval.as_str())
            .collect();
        if let Some(name) = served.as_ref().and_then(|a| a.metadata.name.as_deref()) {
            named.remove(name);
        }
        let served_before = named
            .into_iter()
            .filter_map(|name| approval(state, &target.namespace, name))
            .chain(served.clone())
            .collect();
        Ok(Observed {
            served,
            running: replicasets::running(&state.replicasets, &target.namespace, &target.name),
            linked,
            found,
            live,
            served_before,
        })
    }

    /// The decisions' input, as of `now`.
    fn input<'a>(&'a self, target: &Target<'a>, now: jiff::Timestamp) -> Input<'a> {
        Input {
            md: target.md,
            linked: linked_as(target.md, &target.namespace, self.linked.as_ref()),
            served_approval: self.served.as_ref(),
            deployment: self.live.as_ref(),
            served_before: &self.served_before,
            running: &self.running,
            now,
            seal: None,
        }
    }
}

/// The approval `name` in `namespace`, from the cache (or as the approval
/// controller just wrote it, while the cache is behind), when it can be read.
fn approval(state: &State, namespace: &str, name: &str) -> Option<ModelApproval> {
    state.handed.read(&state.approvals, namespace, name)
}

/// What `md`'s approvalRef comes to, given the approval of its name in
/// `namespace`, when there is one.
fn linked_as<'a>(
    md: &'a ModelDeployment,
    namespace: &str,
    approval: Option<&'a ModelApproval>,
) -> Linked<'a> {
    match md.spec.approval_ref.namespace.as_deref() {
        Some(other) if other != namespace => Linked::OtherNamespace(other),
        _ => match approval {
            Some(a) => Linked::Found(a),
            None => Linked::NotFound,
        },
    }
}

/// The approval the pods of Deployment `d` serve, when not the one linked.
/// A ref to another namespace links nothing here, so what serves is looked
/// up by its own name even when the ref names it too.
fn serving_approval(
    state: &State,
    target: &Target<'_>,
    d: Option<&Deployment>,
) -> Option<ModelApproval> {
    let reference = &target.md.spec.approval_ref;
    let links_here = reference
        .namespace
        .as_deref()
        .is_none_or(|ns| ns == target.namespace);
    rollout::served(d)
        .filter(|s| !links_here || s.approval != reference.name)
        .and_then(|s| approval(state, &target.namespace, &s.approval))
}

/// The status decision over the Deployment as the action left it, and what
/// that serves (a rollback changes it).
fn status_after(
    state: &State,
    target: &Target<'_>,
    input: &Input<'_>,
    acted: &Acted,
    egress: Option<&str>,
) -> Decision {
    let after = acted.written.as_ref().or(input.deployment);
    let served_after = serving_approval(state, target, after);
    let model = served_after.as_ref().or(match input.linked {
        Linked::Found(a) => Some(a),
        _ => None,
    });
    let seal = seal(state, target, model, after, egress);
    let input = Input {
        served_approval: served_after.as_ref(),
        seal: Some(&seal),
        ..*input
    };
    progress::status(&input, after, acted.failure.as_ref())
}

/// Whether the pods of `target` are sealed, serving `approval`'s model from
/// Deployment `live`.
fn seal(
    state: &State,
    target: &Target<'_>,
    approval: Option<&ModelApproval>,
    live: Option<&Deployment>,
    egress: Option<&str>,
) -> Condition {
    let catalog = state.sealing.catalog();
    let settled = live
        .and_then(|d| d.status.as_ref())
        .is_none_or(|s| s.replicas.unwrap_or(0) == s.updated_replicas.unwrap_or(0));
    crate::artifact::seal::condition(&crate::artifact::seal::Sealing {
        model: approval.map(|a| &a.spec.model),
        template: &target.md.spec.template,
        namespace: &target.namespace,
        governed: state.sealing.governed(&target.namespace),
        catalog: catalog.as_deref(),
        catalog_name: RUNTIME_CATALOG,
        live: live.map(|d| &d.spec.template),
        settled,
        egress,
    })
}

/// In a governed namespace, the ModelDeployment's egress policy is the
/// operator's: written when missing or changed, from the catalog's list;
/// elsewhere it is removed.
async fn keep_egress(state: &State, target: &Target<'_>) -> Result<Option<String>> {
    let cached = state.sealing.policy(&target.namespace, &target.name);
    if !state.sealing.governed(&target.namespace) {
        // A namespace no longer governed keeps no egress policy of ours.
        if let Some(p) = cached.filter(|p| controlled_by(p.as_ref(), &target.owner.uid)) {
            sealing::remove(&state.ctx.client, &p).await?;
        }
        return Ok(None);
    }
    let catalog = state.sealing.catalog();
    let desired = sealing::egress_policy(
        &target.namespace,
        &target.name,
        target.owner.clone(),
        catalog.as_deref(),
    );
    Ok(sealing::keep(
        &state.ctx.client,
        cached.as_deref(),
        &desired,
        &target.owner.uid,
    )
    .await?)
}

/// The Deployment named like the ModelDeployment: from the cache, or, when
/// the cache has none but one may exist (the status names one, or one is
/// about to be created) or its cached copy does not unpack, from the API
/// server. The cache only holds Deployments with the managed-by label, so
/// one whose label was removed is found by the read.
async fn find_deployment(
    state: &State,
    target: &Target<'_>,
    may_exist: bool,
) -> Result<Option<Deployment>> {
    let reference = ObjectRef::new(&target.name).within(&target.namespace);
    let cached = state.deployments.get(&reference);
    match cached.as_deref().map(CachedDeployment::unpack) {
        Some(Ok(d)) => return Ok(Some(d)),
        // Only a bug gets here: say so, and read it from the API server.
        Some(Err(e)) => error!(error = %e, "cached Deployment does not unpack; reading it"),
        None if !may_exist => return Ok(None),
        None => {}
    }
    let api: Api<Deployment> = Api::namespaced(state.ctx.client.clone(), &target.namespace);
    Ok(api.get_opt(&target.name).await?)
}

/// Gate-to-rollout latency, once per approval a Deployment is first
/// applied for: re-applies over drift and rollbacks to an old approval are
/// not the wait this measures.
fn observe_rollout(state: &State, approval: &ModelApproval, live: Option<&Deployment>) {
    let served = rollout::served(live).map(|m| m.approval);
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
async fn report(
    state: &State,
    target: &Target<'_>,
    decision: &Decision,
) -> Result<(), ReconcileError> {
    let ctx = &state.ctx;
    if decision.changed {
        let _: ModelDeployment = ctx
            .apply_status(
                CONTROLLER,
                &target.namespace,
                &target.name,
                &decision.status,
            )
            .await
            .at(Step::Status)?;
        info!(phase = ?decision.status.phase, "status applied");
    }
    let regarding = target.md.object_ref(&());
    ctx.announce(CONTROLLER, &regarding, decision.transition.as_slice())
        .await;
    Ok(())
}

fn error_policy(
    object: Arc<DeserializeGuard<ModelDeployment>>,
    error: &ReconcileError,
    state: Arc<State>,
) -> Action {
    state.ctx.after_error(CONTROLLER, object.as_ref(), error)
}

#[cfg(test)]
mod tests;
