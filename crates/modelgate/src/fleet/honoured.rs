//! The newest record of each publisher's approval and model honoured
//! here, kept in the TrustedPublisher's status: an approval deleted and
//! re-created, or another importing the same, never honours an older
//! record again (see `mirror`). One list entry per approval and model,
//! each applied under a field manager of its own, so that the entries of
//! approvals reconciled at once never take each other's place. An entry
//! only moves forward: it is read first, and written only when older,
//! with the read's resourceVersion, so a write that lost a race is refused
//! and tried again.

use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use super::import::Imports;
use crate::api::approval::{ModelApproval, ModelApprovalStatus};
use crate::api::fleet::TrustedPublisher;
use crate::context::Context;
use crate::error::Error;

/// Keeps the record `status` honours in its publisher's status, unless a
/// record as new or newer is kept there already.
pub async fn mark(
    (ctx, imports): (&Context, &Imports),
    approval: &ModelApproval,
    status: &ModelApprovalStatus,
) -> Result<(), Error> {
    let (Some(import), Some(now)) = (&approval.spec.import_from, &status.imported) else {
        return Ok(());
    };
    // Only a record read from the registry: one taken from the mark
    // (`mirror::overtaken`) has no referrer and is kept already.
    let (Some(seq), Some(time), Some(phase), Some(_)) =
        (now.seq, &now.time, &now.phase, &now.referrer)
    else {
        return Ok(());
    };
    let digest = &approval.spec.model.digest;
    let key = (
        import.publisher.clone(),
        import.approval.clone(),
        digest.clone(),
    );
    let at = (time.0, seq);
    if imports.marked(&key, at) {
        return Ok(());
    }
    let api: Api<TrustedPublisher> = Api::all(ctx.client.clone());
    let Some(publisher) = api.get_opt(&import.publisher).await? else {
        // A publisher deleted meanwhile honours nothing any more.
        return Ok(());
    };
    let kept = publisher
        .status
        .iter()
        .flat_map(|s| &s.honoured)
        .find(|h| h.approval == import.approval && &h.digest == digest)
        .map(|h| (h.time.0, h.seq));
    if kept.is_some_and(|k| k >= at) {
        imports.remember_mark(key, kept.unwrap_or(at));
        return Ok(());
    }
    let entry = json!({
        "apiVersion": "modelgate.io/v1alpha1", "kind": "TrustedPublisher",
        "metadata": {"name": import.publisher, "resourceVersion": publisher.metadata.resource_version},
        "status": {"honoured": [{
            "approval": import.approval, "digest": digest, "seq": seq, "time": time, "phase": phase,
        }]},
    });
    let id = crate::fleet::referrer::sha256(format!("{}@{digest}", import.approval).as_bytes());
    let manager = format!("modelgate-honoured-{}", &id["sha256:".len()..][..16]);
    let params = PatchParams::apply(&manager).force();
    api.patch_status(&import.publisher, &params, &Patch::Apply(&entry))
        .await?;
    imports.remember_mark(key, at);
    Ok(())
}
