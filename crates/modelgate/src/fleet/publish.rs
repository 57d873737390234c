//! Attaches the signed records of an OCI approval to its model in the
//! registry, one referrer per phase change, after the record itself is
//! written. What is attached is counted in the approval's
//! `status.publication`; a push that fails is said there and tried again
//! with backoff, so no record is left behind.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use oci_client::manifest::{OCI_IMAGE_MEDIA_TYPE, OciDescriptor};
use oci_client::{Reference, RegistryOperation};

use super::referrer::referrer;
use crate::api::approval::{ModelApproval, ModelApprovalStatus, Publication, Seal};
use crate::artifact::registry::Registry;
use crate::records::statement::{Statement, phase_changes, statement};
use crate::records::writer::Recorder;
use crate::runtime::metrics::OutcomeLabels;

/// How long one attachment may take.
const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// The seqs of the phase changes of `status` not yet attached to a sealed
/// model, oldest first; none for a model that is not sealed.
pub fn due(status: &ModelApprovalStatus) -> Vec<i64> {
    let sealed = status
        .artifact
        .as_ref()
        .is_some_and(|a| a.seal == Seal::Sealed && a.reference.is_some());
    if !sealed {
        return Vec::new();
    }
    let done = status.publication.as_ref().and_then(|p| p.seq);
    phase_changes(&status.history)
        .filter(|seq| done.is_none_or(|d| *seq > d))
        .collect()
}

/// Attaches the records `status` is due, oldest first, and says how far it
/// got: the publication to write when it changed, and why it stopped.
pub async fn publish(
    registry: &Registry,
    recorder: &Recorder,
    approval: &ModelApproval,
    status: &ModelApprovalStatus,
) -> (Option<Publication>, Option<String>) {
    let before = status.publication.as_deref().cloned().unwrap_or_default();
    let mut now = before.clone();
    let pinned = status
        .artifact
        .as_ref()
        .and_then(|a| a.reference.clone())
        .unwrap_or_default();
    for seq in due(status) {
        let Some(statement) = statement(approval, status, seq) else {
            continue;
        };
        let attempt =
            tokio::time::timeout(TIMEOUT, attach(registry, recorder, &pinned, &statement));
        let outcome = match attempt.await {
            Ok(result) => result,
            Err(_) => Err(format!("the registry did not answer within {TIMEOUT:?}")),
        };
        count(registry, outcome.is_ok());
        match outcome {
            Ok(referrer) => {
                now = Publication {
                    seq: Some(seq),
                    referrer: Some(referrer),
                    published_at: Some(Time(crate::context::now_seconds())),
                    message: None,
                };
            }
            Err(why) => {
                let why = format!("record seq {seq} could not be attached to {pinned}: {why}");
                now.message = Some(why.clone());
                return ((now != before).then_some(now), Some(why));
            }
        }
    }
    ((now != before).then_some(now), None)
}

fn count(registry: &Registry, published: bool) {
    let outcome = if published { "published" } else { "failed" };
    registry
        .pushes()
        .get_or_create(&OutcomeLabels { outcome })
        .inc();
}

/// Pushes one blob unless the registry has it already.
async fn push_blob(
    client: &oci_client::Client,
    repo: &Reference,
    data: Vec<u8>,
    digest: &str,
) -> Result<(), String> {
    let exists = || client.blob_exists(repo, digest);
    if exists().await.unwrap_or(false) {
        return Ok(());
    }
    match client.push_blob(repo, data, digest).await {
        Ok(_) => Ok(()),
        // Some registries (go-containerregistry's) end an upload with 201
        // and no Location, which the client takes for a failure: the blob
        // is there all the same.
        Err(oci_client::errors::OciDistributionError::RegistryNoLocationError)
            if exists().await.unwrap_or(false) =>
        {
            Ok(())
        }
        Err(e) => Err(format!("cannot push a blob: {e}")),
    }
}

/// Pushes `statement`'s signed record as a referrer of the model at
/// `pinned`; the referrer's REPO@DIGEST.
async fn attach(
    registry: &Registry,
    recorder: &Recorder,
    pinned: &str,
    statement: &Statement,
) -> Result<String, String> {
    let subject_ref: Reference = pinned
        .parse()
        .map_err(|e| format!("not a reference: {e}"))?;
    let client = registry.client();
    let auth = registry.auth(&subject_ref);
    client
        .auth(&subject_ref, &auth, RegistryOperation::Push)
        .await
        .map_err(|e| format!("the registry refused the operator's credentials: {e}"))?;
    let (bytes, digest) = client
        .pull_manifest_raw(&subject_ref, &auth, &[OCI_IMAGE_MEDIA_TYPE])
        .await
        .map_err(|e| format!("cannot read the model's manifest: {e}"))?;
    let subject = OciDescriptor {
        media_type: OCI_IMAGE_MEDIA_TYPE.into(),
        digest,
        size: bytes.len() as i64,
        ..OciDescriptor::default()
    };
    let envelope = recorder.envelope(statement).map_err(|e| e.to_string())?;
    let r = referrer(subject, &envelope, statement).map_err(|e| e.to_string())?;
    for (digest, data) in r.blobs {
        push_blob(client, &subject_ref, data, &digest).await?;
    }
    // Pushed under a tag of its own, not by digest: the client cannot take
    // a push by digest to a registry that answers without a Location (it
    // panics), and a tag keeps the record from a registry's clean-up of
    // untagged manifests. Its name says what it is and is the same on
    // every try.
    let p = &statement.predicate;
    let tag = format!("modelgate-record-{}-{}", short_uid(&p.approval.uid), p.seq);
    let target = Reference::with_tag(
        subject_ref.registry().to_string(),
        subject_ref.repository().to_string(),
        tag,
    );
    let content_type = OCI_IMAGE_MEDIA_TYPE
        .parse()
        .map_err(|e| format!("media type: {e}"))?;
    client
        .push_manifest_raw(&target, r.manifest, content_type)
        .await
        .map_err(|e| format!("cannot push the referrer: {e}"))?;
    Ok(format!(
        "{}/{}@{}",
        subject_ref.registry(),
        subject_ref.repository(),
        r.digest
    ))
}

/// The first 8 letters and digits of a uid.
fn short_uid(uid: &str) -> String {
    uid.chars()
        .filter(char::is_ascii_alphanumeric)
        .take(8)
        .collect()
}
