//! Managed Deployments whose ModelDeployment is gone.
//!
//! Deleting a ModelDeployment with `--cascade=orphan` (or an orphan
//! finalizer) has the garbage collector remove the Deployment's owner
//! reference and leave it running, with nothing left to apply onRevoke.
//! Deleting a ModelDeployment means "stop serving this model", whatever the
//! cascade: a managed Deployment with no owner whose ModelDeployment does
//! not exist, or is being deleted, is deleted. One whose ModelDeployment
//! still stands is re-adopted by that ModelDeployment's reconcile.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, DeleteParams, Preconditions, PropagationPolicy};
use kube::{Resource, ResourceExt};
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::desired::{MANAGED_BY_LABEL, MANAGED_BY_VALUE, MODEL_DEPLOYMENT_LABEL};
use crate::api::deployment::ModelDeployment;
use crate::context::Context;
use crate::vocabulary::Severity;

/// How long a failed look or delete waits before it is tried again.
const RETRY: Duration = Duration::from_secs(5);

/// A Deployment to look at: namespace and name.
pub type Suspect = (String, String);

/// Whether `d` is a managed Deployment that no controller owns.
pub fn unowned(d: &impl kube::Resource) -> bool {
    d.labels().get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGED_BY_VALUE)
        && d.owner_references()
            .iter()
            .all(|o| o.controller != Some(true))
}

/// The channel the Deployment watch reports unowned Deployments on.
pub fn channel() -> (
    mpsc::UnboundedSender<Suspect>,
    mpsc::UnboundedReceiver<Suspect>,
) {
    mpsc::unbounded_channel()
}

/// Looks at each reported Deployment until the channel closes.
pub async fn run(
    ctx: Arc<Context>,
    tx: mpsc::UnboundedSender<Suspect>,
    mut rx: mpsc::UnboundedReceiver<Suspect>,
) {
    while let Some(suspect) = rx.recv().await {
        if let Err(e) = look(&ctx, &suspect).await {
            warn!(error = %e, namespace = %suspect.0, deployment = %suspect.1, "could not settle an unowned Deployment; trying again");
            let again = tx.clone();
            tokio::spawn(async move {
                tokio::time::sleep(RETRY).await;
                let _ = again.send(suspect);
            });
        }
    }
}

/// Deletes the Deployment when it is still unowned and its ModelDeployment
/// is gone or going.
async fn look(ctx: &Context, (namespace, name): &Suspect) -> Result<(), kube::Error> {
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), namespace);
    let Some(d) = deployments.get_opt(name).await? else {
        return Ok(());
    };
    if !unowned(&d) {
        return Ok(());
    }
    let owner = d
        .labels()
        .get(MODEL_DEPLOYMENT_LABEL)
        .cloned()
        .unwrap_or_else(|| name.clone());
    let mds: Api<ModelDeployment> = Api::namespaced(ctx.client.clone(), namespace);
    if let Some(md) = mds.get_opt(&owner).await?
        && md.meta().deletion_timestamp.is_none()
    {
        return Ok(());
    }
    let note = format!(
        "deleted: ModelDeployment {owner} no longer exists (or is being deleted), and a Deployment modelgate released runs only while its ModelDeployment stands"
    );
    stop(ctx, &d, "OrphanDeleted", &note).await
}

/// Deletes the managed Deployment `d` (background propagation, bound to its
/// uid) and says why in a Warning Event `reason` on it. Gone already, or
/// replaced since it was read, is nothing of ours to delete.
pub async fn stop(
    ctx: &Context,
    d: &Deployment,
    reason: &str,
    note: &str,
) -> Result<(), kube::Error> {
    let (namespace, name) = (d.namespace().unwrap_or_default(), d.name_any());
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &namespace);
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        preconditions: Some(Preconditions {
            uid: d.uid(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match deployments.delete(&name, &params).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => return Ok(()),
        Err(e) => return Err(e),
    }
    info!(%namespace, deployment = %name, reason, "deleted a managed Deployment whose ModelDeployment is gone or going");
    if let Err(e) = ctx
        .events
        .publish(
            &d.object_ref(&()),
            Severity::Warning,
            reason,
            "Delete",
            note,
        )
        .await
    {
        warn!(error = %e, "could not publish event");
    }
    Ok(())
}
