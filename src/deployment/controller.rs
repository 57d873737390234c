//! Watches ModelDeployments, the approvals they depend on (through the
//! index) and the Deployments they own; applies the Deployment only while
//! the approval is Approved, and reports progress from the Deployment's own
//! status.

use std::sync::Arc;

use futures::{Future, StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};
use kube::core::DeserializeGuard;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, ReflectHandle, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use tracing::{info, instrument, warn};

use super::decide::{self, ApplyFailure, Input, Linked, Plan};
use super::desired::{self, MANAGED_BY_LABEL, MANAGED_BY_VALUE};
use super::index::ApprovalIndex;
use crate::api::{DeploymentPhase, ModelDeployment};
use crate::runtime::Synced;
use crate::runtime::metrics::ControllerLabels;
use crate::runtime::watches::{CachedApproval, slim};

/// This controller's name in metrics.
const CONTROLLER: &str = "deployment";
use crate::context::{Context, FIELD_MANAGER, now_seconds};
use crate::error::{Error, Result};

/// The field manager that scales a revoked model to zero. It is separate
/// from [`FIELD_MANAGER`] so that the operator's main apply keeps owning the
/// template untouched while this one claims only `spec.replicas`.
pub const REVOKE_FIELD_MANAGER: &str = "modelgate-revoke";

/// What the reconciles of this controller read from memory.
pub struct State {
    pub ctx: Arc<Context>,
    /// Whether every watch cache has its first list: a reconcile before
    /// that would report a present approval as missing.
    pub synced: Arc<Synced>,
    pub approvals: Store<CachedApproval>,
    pub deployments: Store<Deployment>,
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
}

/// The ModelDeployment controller, ready to be driven until `shutdown`.
pub fn run(
    ctx: Arc<Context>,
    inputs: Inputs,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> impl Future<Output = ()> {
    let client = ctx.client.clone();
    let index = ApprovalIndex::default();

    let synced = inputs.synced;
    let mut synced_mds = synced.marker::<DeserializeGuard<ModelDeployment>>();
    let mut synced_deployments = synced.marker::<Deployment>();
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

    let (deployment_reader, deployment_writer) = reflector::store();
    let managed = inputs
        .config
        .labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"));
    let deployments = watcher(Api::<Deployment>::all(client), managed)
        .default_backoff()
        .modify(slim)
        .reflect(deployment_writer)
        .inspect_ok(move |event| synced_deployments(event))
        .applied_objects();

    let observer = crate::runtime::count_phases(
        md_reader.clone(),
        ctx.metrics.deployments.clone(),
        [
            DeploymentPhase::AwaitingApproval,
            DeploymentPhase::RollingOut,
            DeploymentPhase::Available,
            DeploymentPhase::Revoked,
            DeploymentPhase::Failed,
        ]
        .map(|p| p.as_str())
        .to_vec(),
        |md| Some(md.status.as_ref()?.phase?.as_str()),
    );
    let state = Arc::new(State {
        ctx,
        synced: synced.clone(),
        approvals: inputs.approvals,
        deployments: deployment_reader,
    });
    let concurrency = state.ctx.concurrency;
    let controller = Controller::for_stream(mds, md_reader)
        .owns_stream(deployments)
        .watches_shared_stream(inputs.approval_changes, move |approval| {
            index.lookup(&approval)
        })
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, state)
        // error_policy has logged every failure already.
        .for_each(|_| futures::future::ready(()));
    async move {
        controller.await;
        observer.abort();
    }
}

/// Whether `d` has the ModelDeployment of `uid` as its controller.
fn controlled_by(d: &Deployment, uid: &str) -> bool {
    d.owner_references()
        .iter()
        .any(|o| o.controller == Some(true) && o.uid == uid)
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

#[instrument(skip_all, fields(namespace = guarded.meta().namespace.as_deref().unwrap_or_default(), name = guarded.meta().name.as_deref().unwrap_or_default()))]
async fn reconcile(
    guarded: Arc<DeserializeGuard<ModelDeployment>>,
    state: Arc<State>,
) -> Result<Action> {
    let ctx = &state.ctx;
    if !state.synced.is_done() {
        return Ok(Action::requeue(std::time::Duration::from_millis(500)));
    }
    let _timer = ctx.metrics.reconcile(CONTROLLER);
    let md = ctx.readable(guarded.as_ref()).await?;
    let namespace = md.namespace().ok_or(Error::MissingMetadata("namespace"))?;
    let name = md
        .meta()
        .name
        .clone()
        .ok_or(Error::MissingMetadata("name"))?;
    let owner = md
        .controller_owner_ref(&())
        .ok_or(Error::MissingMetadata("uid"))?;

    let find_approval = |approval: &str| {
        state
            .approvals
            .get(&ObjectRef::new(approval).within(&namespace))
            .and_then(|a| a.0.as_ref().ok().cloned())
    };
    let reference = &md.spec.approval_ref;
    let linked_approval = find_approval(&reference.name);
    let linked = match reference.namespace.as_deref() {
        Some(other) if other != namespace => Linked::OtherNamespace(other),
        _ => match &linked_approval {
            Some(a) => Linked::Found(a),
            None => Linked::NotFound,
        },
    };

    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &namespace);
    // Only a Deployment this ModelDeployment controls is ours to change.
    let live = state
        .deployments
        .get(&ObjectRef::new(&name).within(&namespace))
        .filter(|d| controlled_by(d, &owner.uid))
        .map(|d| (*d).clone());
    let served_approval = decide::served(live.as_ref())
        .filter(|s| s.approval != reference.name)
        .and_then(|s| find_approval(&s.approval));
    let input = Input {
        md,
        linked,
        served_approval: served_approval.as_ref(),
        deployment: live.as_ref(),
        now: now_seconds(),
    };

    // The Deployment as the last write (or read) left it, when newer than `live`.
    let mut current: Option<Deployment> = None;
    let mut failure = None;
    match decide::plan(&input) {
        Plan::Release => {
            // A Deployment of the same name that this ModelDeployment does not
            // control is someone else's: never take it over.
            if live.is_none()
                && let Some(existing) = deployments.get_opt(&name).await?
                && !controlled_by(&existing, &owner.uid)
            {
                failure = Some(ApplyFailure {
                    reason: "DeploymentConflict",
                    message: format!(
                        "a Deployment named {name} already exists and is not managed by this ModelDeployment; rename one of them"
                    ),
                });
            }
            if let (Linked::Found(approval), None) = (input.linked, &failure) {
                let desired =
                    desired::deployment(md, &reference.name, &approval.spec.model, owner.clone());
                // force: the template is the operator's alone; an edit by
                // anyone else is drift and is put back.
                let params = PatchParams::apply(FIELD_MANAGER).force();
                match deployments
                    .patch(&name, &params, &Patch::Apply(&desired))
                    .await
                {
                    Ok(d) => current = Some(d),
                    Err(e) => match refusal(&e) {
                        Some(message) => {
                            failure = Some(ApplyFailure {
                                reason: "InvalidTemplate",
                                message: format!(
                                    "the API server refused the Deployment: {message}"
                                ),
                            })
                        }
                        None => return Err(e.into()),
                    },
                }
            }
        }
        Plan::ScaleToZero => {
            let replicas = live.as_ref().and_then(|d| d.spec.replicas);
            if replicas != Some(0) {
                let patch = serde_json::json!({
                    "apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": name, "namespace": namespace},
                    "spec": {"replicas": 0},
                });
                let params = PatchParams::apply(REVOKE_FIELD_MANAGER).force();
                current = Some(
                    deployments
                        .patch(&name, &params, &Patch::Apply(&patch))
                        .await?,
                );
                info!("scaled to zero: the serving approval was revoked");
            }
        }
        Plan::Hold => {}
    }

    let decision = decide::status(&input, current.as_ref().or(live.as_ref()), failure.as_ref());
    if decision.changed {
        let api: Api<ModelDeployment> = Api::namespaced(ctx.client.clone(), &namespace);
        let patch = serde_json::json!({
            "apiVersion": ModelDeployment::api_version(&()),
            "kind": ModelDeployment::kind(&()),
            "status": decision.status,
        });
        api.patch_status(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
        ctx.metrics
            .status_writes
            .get_or_create(&ControllerLabels {
                controller: CONTROLLER,
            })
            .inc();
        info!(phase = ?decision.status.phase, "status applied");
    }
    if let Some((severity, reason, note)) = &decision.transition
        && let Err(e) = ctx
            .events
            .publish(&md.object_ref(&()), *severity, reason, "Rollout", note)
            .await
    {
        warn!(error = %e, reason, "could not publish event");
    }
    ctx.succeeded(guarded.as_ref());
    // Progress arrives through the Deployment watch; nothing to poll.
    Ok(Action::await_change())
}

fn error_policy(
    object: Arc<DeserializeGuard<ModelDeployment>>,
    error: &Error,
    state: Arc<State>,
) -> Action {
    state.ctx.after_error(CONTROLLER, object.as_ref(), error)
}
