//! One signed record as an OCI 1.1 referrer of the model it is about: an
//! artifact manifest whose `subject` is the model's manifest, whose one
//! layer is the DSSE envelope, and whose annotations say what it is. Pure:
//! the same record always makes the same bytes.

use std::collections::BTreeMap;

use oci_client::manifest::{OciDescriptor, OciImageManifest, OciManifest};
use sha2::{Digest, Sha256};

use crate::records::statement::Statement;

/// What the referrer is: a modelgate approval record.
pub const ARTIFACT_TYPE: &str = "application/vnd.modelgate.approval-record.v1+json";
/// Its layer: a DSSE envelope, as in-toto attestations are stored in OCI.
pub const ENVELOPE_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";
/// The OCI 1.1 empty config of an artifact.
pub const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
const EMPTY: &[u8] = b"{}";

/// The annotations every record's referrer carries.
pub const PHASE: &str = "io.modelgate.phase";
pub const SEQ: &str = "io.modelgate.seq";
pub const APPROVAL: &str = "io.modelgate.approval";
pub const APPROVAL_UID: &str = "io.modelgate.approval-uid";
pub const CREATED: &str = "org.opencontainers.image.created";

/// A referrer ready to push: its blobs, and its manifest with the digest
/// that names it.
#[derive(Clone, Debug, PartialEq)]
pub struct Referrer {
    /// (digest, bytes) of the config and the envelope.
    pub blobs: Vec<(String, Vec<u8>)>,
    pub manifest: Vec<u8>,
    pub digest: String,
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn descriptor(media_type: &str, bytes: &[u8]) -> OciDescriptor {
    OciDescriptor {
        media_type: media_type.into(),
        digest: sha256(bytes),
        size: bytes.len() as i64,
        ..OciDescriptor::default()
    }
}

/// The referrer of `envelope` (the record's JSON) for the model manifest
/// `subject`, annotated from `statement`.
pub fn referrer(
    subject: OciDescriptor,
    envelope: &[u8],
    statement: &Statement,
) -> Result<Referrer, serde_json::Error> {
    let p = &statement.predicate;
    let annotations: BTreeMap<String, String> = [
        (PHASE, p.phase.clone()),
        (SEQ, p.seq.to_string()),
        (
            APPROVAL,
            format!("{}/{}", p.approval.namespace, p.approval.name),
        ),
        (APPROVAL_UID, p.approval.uid.clone()),
        (CREATED, p.time.0.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let manifest = OciManifest::Image(OciImageManifest {
        schema_version: 2,
        media_type: Some(oci_client::manifest::OCI_IMAGE_MEDIA_TYPE.into()),
        config: descriptor(EMPTY_MEDIA_TYPE, EMPTY),
        layers: vec![descriptor(ENVELOPE_MEDIA_TYPE, envelope)],
        subject: Some(subject),
        artifact_type: Some(ARTIFACT_TYPE.into()),
        annotations: Some(annotations),
    });
    let bytes = serde_json::to_vec(&manifest)?;
    Ok(Referrer {
        blobs: vec![
            (sha256(EMPTY), EMPTY.to_vec()),
            (sha256(envelope), envelope.to_vec()),
        ],
        digest: sha256(&bytes),
        manifest: bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject() -> OciDescriptor {
        OciDescriptor {
            media_type: oci_client::manifest::OCI_IMAGE_MEDIA_TYPE.into(),
            digest: format!("sha256:{}", "a".repeat(64)),
            size: 512,
            ..OciDescriptor::default()
        }
    }

    fn statement() -> Statement {
        let json = serde_json::json!({
            "_type": crate::records::statement::STATEMENT_TYPE,
            "subject": [{"name": "fraud-detector", "digest": {"sha256": "a".repeat(64)}}],
            "predicateType": crate::records::statement::PREDICATE_TYPE,
            "predicate": {
                "approval": {"namespace": "ml-prod", "name": "fd-2-4-1", "uid": "u-1"},
                "spec": {"model": {"name": "fraud-detector", "version": "2.4.1",
                    "uri": "oci://registry.example.com/models/fraud-detector",
                    "digest": format!("sha256:{}", "a".repeat(64))}},
                "phase": "Approved", "time": "2026-12-06T03:00:00Z", "seq": 6,
                "gates": [], "history": [], "historyHead": "h"
            }
        });
        serde_json::from_value(json).unwrap_or_else(|e| panic!("statement: {e}"))
    }

    #[test]
    fn the_referrer_names_its_model_and_says_what_it_is() {
        let r = referrer(subject(), b"{\"payload\":\"x\"}", &statement())
            .unwrap_or_else(|e| panic!("referrer: {e}"));
        let m: serde_json::Value =
            serde_json::from_slice(&r.manifest).unwrap_or_else(|e| panic!("json: {e}"));
        assert_eq!(m["subject"]["digest"], format!("sha256:{}", "a".repeat(64)));
        assert_eq!(m["artifactType"], ARTIFACT_TYPE);
        assert_eq!(m["layers"][0]["mediaType"], ENVELOPE_MEDIA_TYPE);
        assert_eq!(m["config"]["mediaType"], EMPTY_MEDIA_TYPE);
        assert_eq!(m["annotations"][PHASE], "Approved");
        assert_eq!(m["annotations"][SEQ], "6");
        assert_eq!(m["annotations"][APPROVAL], "ml-prod/fd-2-4-1");
        assert_eq!(r.digest, sha256(&r.manifest));
        // The same record makes the same bytes: a second push is the same
        // referrer, not another.
        let again = referrer(subject(), b"{\"payload\":\"x\"}", &statement())
            .unwrap_or_else(|e| panic!("referrer: {e}"));
        assert_eq!(again, r);
    }
}
