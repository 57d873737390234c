//! The ReplicaSets behind managed Deployments: what their pods run (for the
//! ModelDeployment's status), and the stray ones put back to zero.
//!
//! A ReplicaSet whose template carries modelgate's annotations was made from
//! a managed Deployment. While it is that Deployment's current ReplicaSet,
//! the ModelDeployment controller decides its fate through the Deployment
//! (onRevoke). Any other one with pods (an old revision, or one taken out of
//! its Deployment) may only run a model whose approval stands now: the
//! operator scales the rest to zero, whatever scaled them up.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::{Future, StreamExt};
use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, ReflectHandle, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use tracing::{info, warn};

use super::desired::{MODEL_DEPLOYMENT_LABEL, served_model};
use crate::api::deployment::{RunningModel, ServedModel};
use crate::context::Context;
use crate::error::{AtStep, Error, ReconcileError, Result, Step};
use crate::runtime::Synced;
use crate::runtime::{packed::CachedApproval, packed_object::CachedDeployment, watches::slim};
use crate::vocabulary::{REVOKE_FIELD_MANAGER, Severity};

/// This controller's name in metrics.
const CONTROLLER: &str = "replicaset";

/// The steps its reconciles take, for the error counters.
const STEPS: [Step; 2] = [Step::Read, Step::Apply];

/// How many changes a slow subscriber may fall behind.
const BUFFER: usize = 1024;

/// How often a ReplicaSet with pods is looked at again with nothing else
/// changing: its approval may have been withdrawn since.
const RECHECK: Duration = Duration::from_secs(300);

/// The ReplicaSet cache, its two change feeds and the watch that fills it.
pub struct Watched {
    pub store: Store<ReplicaSet>,
    /// For the ModelDeployment controller (status from what pods run).
    pub for_deployments: ReflectHandle<ReplicaSet>,
    /// For the stray ReplicaSet controller.
    pub for_strays: ReflectHandle<ReplicaSet>,
    pub watch: std::pin::Pin<Box<dyn Future<Output = ()> + Send>>,
}

/// Watches every ReplicaSet carrying the modelgate label, slimmed to what
/// is read: labels, owners, replicas and the template's annotations.
pub fn watch(
    api: Api<ReplicaSet>,
    config: &watcher::Config,
    synced: &Arc<Synced>,
) -> Option<Watched> {
    let mut synced_replicasets = synced.marker::<ReplicaSet>("replicasets");
    let (store, writer) = reflector::store_shared(BUFFER);
    let for_deployments = writer.subscribe()?;
    let for_strays = writer.subscribe()?;
    let labelled = config.clone().labels(MODEL_DEPLOYMENT_LABEL);
    let watch = watcher(api, labelled)
        .default_backoff()
        .modify(slim_replicaset)
        .reflect_shared(writer)
        .for_each(move |event| {
            match &event {
                Ok(event) => synced_replicasets(event),
                Err(e) => warn!(error = %e, "replicaset watch failed; retrying"),
            }
            futures::future::ready(())
        });
    Some(Watched {
        store,
        for_deployments,
        for_strays,
        watch: Box::pin(watch),
    })
}

/// Drops what is never read: managed fields and the pods' spec (the
/// template's annotations say which model it runs).
pub fn slim_replicaset(rs: &mut ReplicaSet) {
    slim(rs);
    if let Some(template) = rs.spec.template.as_mut() {
        template.spec = None;
    }
}

/// The model a ReplicaSet's pods run, when it was made from a managed
/// Deployment.
pub fn model_of(rs: &ReplicaSet) -> Option<ServedModel> {
    served_model(rs.spec.template.as_ref()?)
}

/// The models the pods of ModelDeployment `name` in `namespace` run now,
/// with their pod counts, in a stable order.
pub fn running(store: &Store<ReplicaSet>, namespace: &str, name: &str) -> Vec<RunningModel> {
    let mut counted: BTreeMap<(String, String), RunningModel> = BTreeMap::new();
    for rs in store.state() {
        let pods = rs.status.as_ref().map_or(0, |s| s.replicas);
        if pods <= 0
            || rs.namespace().as_deref() != Some(namespace)
            || rs.labels().get(MODEL_DEPLOYMENT_LABEL).map(String::as_str) != Some(name)
        {
            continue;
        }
        let Some(m) = model_of(&rs) else { continue };
        counted
            .entry((m.approval.clone(), m.digest.clone()))
            .and_modify(|r| r.pods += pods)
            .or_insert(RunningModel {
                approval: m.approval,
                name: m.name,
                version: m.version,
                digest: m.digest,
                pods,
            });
    }
    counted.into_values().collect()
}

/// What the stray ReplicaSet controller reads.
struct State {
    ctx: Arc<Context>,
    synced: Arc<Synced>,
    approvals: Store<CachedApproval>,
    /// Approvals the approval controller has just released or withdrawn: a
    /// release handed straight to the deployment controller is read here
    /// too before the approval watch brings it.
    handed: Arc<super::handoff::Handed>,
    deployments: Store<CachedDeployment>,
}

/// The stray ReplicaSet controller, ready to be driven until `shutdown`.
pub fn run_strays(
    ctx: Arc<Context>,
    watched: (Store<ReplicaSet>, ReflectHandle<ReplicaSet>),
    (approvals, handed): (Store<CachedApproval>, Arc<super::handoff::Handed>),
    deployments: Store<CachedDeployment>,
    synced: Arc<Synced>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> impl Future<Output = ()> {
    ctx.metrics.start_at_zero(CONTROLLER, &STEPS);
    let concurrency = ctx.concurrency;
    let state = Arc::new(State {
        ctx,
        synced,
        approvals,
        handed,
        deployments,
    });
    let (store, changes) = watched;
    let controller = Controller::for_shared_stream(changes, store)
        .with_config(crate::runtime::controller_config(concurrency))
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, state);
    crate::runtime::drive(controller)
}

/// Whether `model`'s approval stands now: Approved (or released by an open
/// break-glass), not being deleted, and for the same artifact.
fn approved(state: &State, namespace: &str, model: &ServedModel) -> bool {
    state
        .handed
        .read(&state.approvals, namespace, &model.approval)
        .is_some_and(|a| {
            super::rollout::releases(&a, crate::context::now_seconds())
                && a.spec.model.digest == model.digest
        })
}

/// Whether `rs` is the current ReplicaSet of the managed Deployment that
/// controls it: the ModelDeployment controller decides what it runs. A
/// cached Deployment that does not unpack (only a bug) is logged and runs
/// nothing unapproved: its ReplicaSets count as strays.
fn current(state: &State, namespace: &str, rs: &ReplicaSet, model: &ServedModel) -> bool {
    let Some(owner) = rs
        .owner_references()
        .iter()
        .find(|o| o.controller == Some(true) && o.kind == "Deployment")
    else {
        return false;
    };
    let Some(cached) = state
        .deployments
        .get(&ObjectRef::new(&owner.name).within(namespace))
        .filter(|d| d.uid().as_deref() == Some(owner.uid.as_str()))
    else {
        return false;
    };
    match cached.unpack() {
        Ok(d) => served_model(&d.spec.template)
            .is_some_and(|m| m.approval == model.approval && m.digest == model.digest),
        Err(e) => {
            tracing::error!(%namespace, deployment = %owner.name, error = %e, "cached Deployment does not unpack");
            false
        }
    }
}

async fn reconcile(rs: Arc<ReplicaSet>, state: Arc<State>) -> Result<Action, ReconcileError> {
    if !state.synced.is_done() {
        return Ok(Action::requeue(Duration::from_millis(500)));
    }
    let replicas = rs.spec.replicas.unwrap_or(1);
    let Some(model) = model_of(&rs) else {
        return Ok(Action::await_change());
    };
    if replicas == 0 {
        return Ok(Action::await_change());
    }
    let namespace = rs
        .namespace()
        .ok_or(Error::MissingMetadata("namespace"))
        .at(Step::Read)?;
    if approved(&state, &namespace, &model) || current(&state, &namespace, &rs, &model) {
        return Ok(Action::requeue(RECHECK));
    }
    let _timer = state.ctx.metrics.reconcile(CONTROLLER);
    scale_to_zero(&state, &namespace, &rs, &model)
        .await
        .at(Step::Apply)?;
    state.ctx.succeeded(rs.as_ref());
    Ok(Action::await_change())
}

/// Scales a stray ReplicaSet to zero and says so in an Event.
async fn scale_to_zero(
    state: &State,
    namespace: &str,
    rs: &ReplicaSet,
    model: &ServedModel,
) -> Result<()> {
    let name = rs.name_any();
    let patch = serde_json::json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"replicas": 0},
    });
    let api: Api<ReplicaSet> = Api::namespaced(state.ctx.client.clone(), namespace);
    let params = PatchParams::apply(REVOKE_FIELD_MANAGER).force();
    api.patch(&name, &params, &Patch::Apply(&patch)).await?;
    info!(%namespace, replicaset = %name, approval = %model.approval, "scaled a stray ReplicaSet to zero");
    let note = format!(
        "scaled to zero: its pods run {} {} (approval {}), which is not approved now, and it is not the current rollout of a ModelDeployment",
        model.name, model.version, model.approval
    );
    if let Err(e) = state
        .ctx
        .events
        .publish(
            &rs.object_ref(&()),
            Severity::Warning,
            "UnapprovedReplicaSetScaledDown",
            "ScaleDown",
            &note,
        )
        .await
    {
        warn!(error = %e, "could not publish event");
    }
    Ok(())
}

fn error_policy(rs: Arc<ReplicaSet>, error: &ReconcileError, state: Arc<State>) -> Action {
    state.ctx.after_error(CONTROLLER, rs.as_ref(), error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rs(name: &str, md: &str, approval: &str, pods: i32) -> ReplicaSet {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "risk", "labels": {MODEL_DEPLOYMENT_LABEL: md}},
            "spec": {
                "replicas": pods,
                "selector": {"matchLabels": {MODEL_DEPLOYMENT_LABEL: md}},
                "template": {"metadata": {"annotations": {
                    "modelgate.io/approval": approval, "modelgate.io/model-name": "fd",
                    "modelgate.io/model-version": approval, "modelgate.io/model-digest": format!("sha256:{approval}"),
                }}, "spec": {"containers": [{"name": "s", "image": "serve:1"}]}},
            },
            "status": {"replicas": pods},
        }))
        .unwrap_or_else(|e| panic!("fixture: {e}"))
    }

    #[test]
    fn running_counts_pods_per_model_of_one_model_deployment() {
        let (reader, mut writer) = reflector::store::<ReplicaSet>();
        for r in [
            rs("fd-a", "fd", "v1", 2),
            rs("fd-b", "fd", "v2", 1),
            rs("fd-c", "fd", "v1", 1),
            rs("fd-d", "fd", "v3", 0),
            rs("other-a", "other", "v9", 3),
        ] {
            writer.apply_watcher_event(&watcher::Event::Apply(r));
        }
        let running = running(&reader, "risk", "fd");
        let summary: Vec<(&str, i32)> = running
            .iter()
            .map(|r| (r.approval.as_str(), r.pods))
            .collect();
        assert_eq!(summary, [("v1", 3), ("v2", 1)]);
    }

    #[test]
    fn slimming_keeps_the_model_and_drops_the_pods_spec() {
        let mut r = rs("fd-a", "fd", "v1", 2);
        slim_replicaset(&mut r);
        let template = r.spec.template.as_ref();
        assert!(template.is_some_and(|t| t.spec.is_none()));
        assert_eq!(model_of(&r).map(|m| m.approval), Some("v1".into()));
    }
}
