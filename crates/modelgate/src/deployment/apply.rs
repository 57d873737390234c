//! Carrying out a ModelDeployment's plan against the API server: apply the
//! Deployment of an approved model, scale it to zero, or hold it at its
//! replicas. Each write is a server-side apply under its own field manager.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::Store;
use kube::{Client, Resource, ResourceExt};
use tracing::info;

use super::applied::{self, Applied};
use super::desired::{self, HELD_REPLICAS_ANNOTATION, MODEL_DEPLOYMENT_LABEL};
use super::rollout::{ApplyFailure, Plan};
use crate::api::{approval::ModelApproval, deployment::ModelDeployment};
use crate::error::{Error, Result};
use crate::vocabulary::{FIELD_MANAGER, REVOKE_FIELD_MANAGER};

/// The ModelDeployment a reconcile works on, with what every write needs.
pub struct Target<'a> {
    pub md: &'a ModelDeployment,
    pub namespace: String,
    pub name: String,
    /// The owner reference the Deployment carries.
    pub owner: OwnerReference,
}

impl<'a> Target<'a> {
    pub fn of(md: &'a ModelDeployment) -> Result<Self> {
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

/// How the writes of one reconcile are made.
pub struct Writer<'a> {
    pub client: &'a Client,
    /// What the last apply left on each Deployment.
    pub applied: &'a Applied,
    /// The ReplicaSets, to take a lifted hold's mark off them.
    pub replicasets: &'a Store<ReplicaSet>,
    pub target: &'a Target<'a>,
}

/// What carrying out a plan left.
#[derive(Debug, Default)]
pub struct Acted {
    /// The Deployment as the write left it, when there was a write.
    pub written: Option<Deployment>,
    /// Why the Deployment could not be applied, when it could not.
    pub failure: Option<ApplyFailure>,
}

impl Acted {
    fn wrote(written: Option<Deployment>) -> Self {
        Acted {
            written,
            failure: None,
        }
    }

    fn refused(failure: ApplyFailure) -> Self {
        Acted {
            written: None,
            failure: Some(failure),
        }
    }
}

/// Whether `d` has the ModelDeployment of `uid` as its controller.
pub fn controlled_by(object: &impl kube::ResourceExt, uid: &str) -> bool {
    object
        .owner_references()
        .iter()
        .any(|o| o.controller == Some(true) && o.uid == uid)
}

impl Writer<'_> {
    /// Carries out `plan` on `live`, the Deployment this ModelDeployment
    /// manages. `found` says whether a Deployment of the name exists at
    /// all, ours or not.
    pub async fn carry_out(
        &self,
        plan: Plan<'_>,
        live: Option<&Deployment>,
        found: bool,
    ) -> Result<Acted> {
        match (plan, live) {
            // A Deployment of the same name that this ModelDeployment does
            // not control is someone else's: never take it over.
            (Plan::Release(_), None) if found => Ok(Acted::refused(ApplyFailure {
                reason: "DeploymentConflict",
                message: format!(
                    "a Deployment named {} already exists and is not managed by this ModelDeployment; rename one of them",
                    self.target.name
                ),
            })),
            (Plan::Release(approval), _) => self.release(approval, live).await,
            (Plan::Rollback(approval), _) => {
                info!(approval = %approval.name_any(), "rolling back to the newest earlier approved version");
                self.release(approval, live).await
            }
            (Plan::ScaleToZero, Some(d)) => Ok(Acted::wrote(self.scale_to_zero(d).await?)),
            (Plan::Freeze, Some(d)) => Ok(Acted::wrote(self.freeze(d).await?)),
            (Plan::ScaleToZero | Plan::Freeze, None) | (Plan::Hold, _) => Ok(Acted::default()),
        }
    }

    fn api(&self) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), &self.target.namespace)
    }

    /// Applies the Deployment for `approval`, unless `live` is exactly what
    /// the last apply left.
    async fn release(&self, approval: &ModelApproval, live: Option<&Deployment>) -> Result<Acted> {
        let target = self.target;
        let desired = desired::deployment(
            target.md,
            &approval.name_any(),
            &approval.spec.model,
            target.owner.clone(),
        );
        let print = applied::fingerprint(&desired);
        let held = live.is_some_and(|d| d.annotations().contains_key(HELD_REPLICAS_ANNOTATION));
        if let Some(d) = live.filter(|_| held) {
            self.release_hold(d).await?;
        }
        self.unmark_replicasets().await?;
        // An orphan is re-adopted by applying: its owner reference is missing.
        if !held
            && live.is_some_and(|d| {
                controlled_by(d, &target.owner.uid) && self.applied.in_sync(d, &desired, print)
            })
        {
            return Ok(Acted::default());
        }
        // force: the template is the operator's alone; an edit by anyone
        // else is drift and is put back.
        let params = PatchParams::apply(FIELD_MANAGER).force();
        match self
            .api()
            .patch(&target.name, &params, &Patch::Apply(&desired))
            .await
        {
            Ok(written) => {
                self.applied.record(&written, print);
                if live.is_some() {
                    info!("applied the Deployment over drift or a new desired state");
                }
                Ok(Acted::wrote(Some(written)))
            }
            Err(e) => match refusal(&e) {
                Some(message) => Ok(Acted::refused(ApplyFailure {
                    reason: "InvalidTemplate",
                    message: format!("the API server refused the Deployment: {message}"),
                })),
                None => Err(e.into()),
            },
        }
    }

    /// Applies `replicas` (and, when given, the held-replicas annotation
    /// and a pause) under the revoke field manager, which claims only those.
    async fn apply_replicas(
        &self,
        replicas: i32,
        held: Option<String>,
        paused: bool,
    ) -> Result<Deployment, kube::Error> {
        let target = self.target;
        let mut patch = serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": target.name, "namespace": target.namespace},
            "spec": {"replicas": replicas},
        });
        if let Some(held) = held {
            patch["metadata"]["annotations"] =
                serde_json::json!({ HELD_REPLICAS_ANNOTATION: held });
        }
        if paused {
            patch["spec"]["paused"] = serde_json::Value::Bool(true);
        }
        let params = PatchParams::apply(REVOKE_FIELD_MANAGER).force();
        self.api()
            .patch(&target.name, &params, &Patch::Apply(&patch))
            .await
    }

    /// Scales the Deployment to zero under a field manager of its own,
    /// unless it is there already.
    async fn scale_to_zero(&self, live: &Deployment) -> Result<Option<Deployment>> {
        let held = live
            .annotations()
            .get(HELD_REPLICAS_ANNOTATION)
            .map(String::as_str);
        if live.spec.replicas == Some(0) && held == Some("0") {
            return Ok(None);
        }
        // Marked held at zero: admission then refuses any growth by anyone
        // else.
        let written = self.apply_replicas(0, Some("0".into()), false).await?;
        info!("scaled to zero: the serving approval was revoked");
        Ok(Some(written))
    }

    /// Holds the Deployment of a withdrawn approval (onRevoke Hold) at the
    /// replicas it had then, under the revoke field manager: its annotation
    /// tells admission to refuse any change of replicas by anyone else, and
    /// a change that got past admission is put back here. It is paused too:
    /// a rollout under way when the approval was withdrawn would otherwise
    /// go on and start new pods of the withdrawn model.
    async fn freeze(&self, live: &Deployment) -> Result<Option<Deployment>> {
        let replicas = held_replicas(live);
        let marked =
            live.annotations().get(HELD_REPLICAS_ANNOTATION) == Some(&replicas.to_string());
        if marked && live.spec.replicas == Some(replicas) && live.spec.paused == Some(true) {
            return Ok(None);
        }
        let written = self
            .apply_replicas(replicas, Some(replicas.to_string()), true)
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
    async fn release_hold(&self, live: &Deployment) -> Result<()> {
        self.apply_replicas(live.spec.replicas.unwrap_or(1), None, false)
            .await?;
        Ok(())
    }

    /// Takes the hold's mark off this ModelDeployment's ReplicaSets once no
    /// hold stands. The Deployment controller copies the Deployment's
    /// annotations onto its current ReplicaSet but never removes one, and
    /// admission lets no ReplicaSet that carries the mark grow (an
    /// autoscaler would otherwise grow a held model through the scale
    /// subresource, where the hold is not seen). A merge patch: the mark was
    /// written by the Deployment controller, so an apply of ours could not
    /// remove it.
    async fn unmark_replicasets(&self) -> Result<()> {
        let target = self.target;
        let api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), &target.namespace);
        let unmark =
            serde_json::json!({"metadata": {"annotations": {HELD_REPLICAS_ANNOTATION: null}}});
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PatchParams::default()
        };
        for rs in self.replicasets.state() {
            let ours = rs.namespace().as_deref() == Some(target.namespace.as_str())
                && rs.labels().get(MODEL_DEPLOYMENT_LABEL) == Some(&target.name);
            if ours && rs.annotations().contains_key(HELD_REPLICAS_ANNOTATION) {
                api.patch(&rs.name_any(), &params, &Patch::Merge(&unmark))
                    .await?;
            }
        }
        Ok(())
    }
}

/// The replicas a held Deployment keeps: those it had when it was first
/// held, or, on first sight, those it has now.
fn held_replicas(live: &Deployment) -> i32 {
    live.annotations()
        .get(HELD_REPLICAS_ANNOTATION)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| live.spec.replicas.unwrap_or(1))
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
