//! The newest record of each publisher's approval and model honoured
//! here, kept in the TrustedPublisher's status: an approval deleted and
//! re-created, or another importing the same, never honours an older
//! record again (see `mirror`). One list entry per approval and model,
//! each applied under a field manager of its own, so that the entries of
//! approvals reconciled at once never take each other's place.

use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::api::approval::{ModelApproval, ModelApprovalStatus};
use crate::api::fleet::TrustedPublisher;
use crate::context::Context;
use crate::error::Error;

/// Keeps the record `status` honours as the publisher's newest honoured
/// for its approval and model, when it is newer than what the approval
/// honoured before.
pub async fn mark(
    ctx: &Context,
    approval: &ModelApproval,
    status: &ModelApprovalStatus,
) -> Result<(), Error> {
    let (Some(import), Some(now)) = (&approval.spec.import_from, &status.imported) else {
        return Ok(());
    };
    let before = approval.status.as_ref().and_then(|s| s.imported.as_ref());
    let (Some(seq), Some(time), Some(phase)) = (now.seq, &now.time, &now.phase) else {
        return Ok(());
    };
    if before.is_some_and(|b| b.seq == Some(seq) && b.time.as_ref() == Some(time)) {
        return Ok(());
    }
    let digest = &approval.spec.model.digest;
    let entry = json!({
        "apiVersion": "modelgate.io/v1alpha1", "kind": "TrustedPublisher",
        "metadata": {"name": import.publisher},
        "status": {"honoured": [{
            "approval": import.approval, "digest": digest, "seq": seq, "time": time, "phase": phase,
        }]},
    });
    let key = crate::fleet::referrer::sha256(format!("{}@{digest}", import.approval).as_bytes());
    let manager = format!("modelgate-honoured-{}", &key["sha256:".len()..][..16]);
    let api: Api<TrustedPublisher> = Api::all(ctx.client.clone());
    match api
        .patch_status(
            &import.publisher,
            &PatchParams::apply(&manager).force(),
            &Patch::Apply(&entry),
        )
        .await
    {
        // A publisher deleted meanwhile honours nothing any more.
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
        Ok(p) => {
            tracing::debug!(publisher = p.name_any(), seq, "honoured record kept");
            Ok(())
        }
    }
}
