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
    // A record taken from the mark (`mirror::overtaken`) is written too: a
    // publisher deleted and re-created has lost its marks.
    let (Some(seq), Some(time), Some(phase)) = (now.seq, &now.time, &now.phase) else {
        return Ok(());
    };
    let digest = &approval.spec.model.digest;
    let at = (time.0, seq);
    let known = now
        .publisher_uid
        .as_ref()
        .map(|uid| (uid.clone(), import.approval.clone(), digest.clone()));
    if known.as_ref().is_some_and(|k| imports.marked(k, at)) {
        return Ok(());
    }
    let api: Api<TrustedPublisher> = Api::all(ctx.client.clone());
    let Some(publisher) = api.get_opt(&import.publisher).await? else {
        // A publisher deleted meanwhile honours nothing any more.
        return Ok(());
    };
    let key = (
        publisher.metadata.uid.clone().unwrap_or_default(),
        import.approval.clone(),
        digest.clone(),
    );
    let kept = publisher
        .status
        .iter()
        .flat_map(|s| &s.honoured)
        .find(|h| h.approval == import.approval && &h.digest == digest)
        .map(|h| (h.time.0, h.seq));
    if let Some(kept) = kept.filter(|k| *k >= at) {
        imports.remember_mark(key, kept);
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
