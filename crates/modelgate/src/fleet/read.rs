//! Reading the records attached to a model in its registry, and checking
//! each with a publisher's public keys: what the operator honours for an
//! imported approval and what `kubectl modelgate audit verify oci://`
//! shows, the same check in both.

use std::collections::BTreeMap;

use oci_client::Reference;
use oci_client::manifest::OciManifest;

use super::referrer::{APPROVAL, ARTIFACT_TYPE, SEQ};
use crate::api::record::Envelope;
use crate::artifact::registry::Registry;
use crate::records::envelope::{self, PublicKey};
use crate::records::statement::Statement;

/// One record attached to a model, as its referrer lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attached {
    /// The referrer's digest.
    pub digest: String,
    /// The approval its annotation names (unsigned: checked against the
    /// statement once read).
    pub approval: Option<String>,
    /// The seq its annotation claims (unsigned: only an order to read in).
    pub seq: Option<i64>,
}

/// The largest envelope read: a record is a few KiB.
pub const MAX_ENVELOPE: i64 = 1 << 20;

/// Why a record could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// The registry did not serve it now, for whatever reason its answer
    /// gives (no connection, a timeout, any HTTP error, a 404 included):
    /// try again later. Nothing about the record is learnt from it.
    #[error("{0}")]
    Unavailable(String),
    /// What it serves is not a record: content the digest pins, so it
    /// never will be. Anyone able to push can make such a referrer, so it
    /// must not count as the registry being away.
    #[error("{0}")]
    Malformed(String),
}

/// The modelgate records attached to the model `subject` (pinned by
/// digest), as the registry's referrers API lists them.
pub async fn attached(registry: &Registry, subject: &Reference) -> Result<Vec<Attached>, String> {
    let index = registry
        .client()
        .pull_referrers(subject, Some(ARTIFACT_TYPE))
        .await
        .map_err(|e| format!("cannot list the records attached to {subject}: {e}"))?;
    Ok(index
        .manifests
        .into_iter()
        .map(|m| Attached {
            approval: annotation(m.annotations.as_ref(), APPROVAL),
            seq: annotation(m.annotations.as_ref(), SEQ).and_then(|s| s.parse().ok()),
            digest: m.digest,
        })
        .collect())
}

fn annotation(annotations: Option<&BTreeMap<String, String>>, key: &str) -> Option<String> {
    annotations?.get(key).cloned()
}

/// The DSSE envelope the referrer `digest` of `subject`'s repository
/// carries as its one layer.
pub async fn envelope_at(
    registry: &Registry,
    subject: &Reference,
    digest: &str,
) -> Result<Envelope, ReadError> {
    use ReadError::Malformed;
    let at = Reference::with_digest(
        subject.registry().to_string(),
        subject.repository().to_string(),
        digest.to_string(),
    );
    let auth = registry.auth(&at);
    let (manifest, _) = registry
        .client()
        .pull_manifest(&at, &auth)
        .await
        .map_err(|e| failed("cannot read it", &e))?;
    let OciManifest::Image(image) = manifest else {
        return Err(Malformed("it is an index, not a record".into()));
    };
    let layer = image
        .layers
        .first()
        .ok_or_else(|| Malformed("it has no layer".into()))?;
    if layer.size > MAX_ENVELOPE || layer.size < 0 {
        return Err(Malformed(format!(
            "its layer is {} bytes; a record is at most {MAX_ENVELOPE}",
            layer.size
        )));
    }
    let mut bytes = Vec::new();
    registry
        .client()
        .pull_blob(&at, layer, &mut bytes)
        .await
        .map_err(|e| failed("cannot read its envelope", &e))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Malformed(format!("its layer is not a DSSE envelope: {e}")))
}

/// A failed read, as transient (the registry did not serve it) or for
/// good (what it served, which the digest pins, is not a record). Only
/// content is a verdict: an HTTP answer, whatever its code, says nothing
/// lasting about the record (a 429 passes, a deleted blob is pushed
/// again).
fn failed(what: &str, e: &oci_client::errors::OciDistributionError) -> ReadError {
    use oci_client::errors::OciDistributionError as E;
    let why = format!("{what}: {e}");
    match e {
        E::ManifestParsingError(_)
        | E::UnsupportedSchemaVersionError(_)
        | E::UnsupportedMediaTypeError(_)
        | E::VersionedParsingError(_)
        | E::ManifestEncodingError(_)
        | E::JsonError(_)
        | E::IncompatibleLayerMediaTypeError(_)
        | E::DigestError(_) => ReadError::Malformed(why),
        _ => ReadError::Unavailable(why),
    }
}

/// The statement of `envelope` if one of `keys` signed it and it is about
/// the model `digest`; otherwise why not.
pub fn judge(envelope: &Envelope, keys: &[PublicKey], digest: &str) -> Result<Statement, String> {
    let payload = envelope::open(envelope, keys)
        .map_err(|e| format!("its signature does not verify with the trusted keys: {e}"))?;
    let statement: Statement =
        serde_json::from_slice(&payload).map_err(|e| format!("not a record's statement: {e}"))?;
    let (algorithm, hex) = digest.split_once(':').unwrap_or_default();
    let about = statement
        .subject
        .iter()
        .any(|s| s.digest.get(algorithm).map(String::as_str) == Some(hex));
    if !about {
        let other: Vec<String> = statement
            .subject
            .iter()
            .flat_map(|s| s.digest.iter().map(|(a, h)| format!("{a}:{h}")))
            .collect();
        return Err(format!(
            "it is signed for another artifact ({}), not {digest}",
            other.join(", ")
        ));
    }
    Ok(statement)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::envelope::Signer;

    fn statement(digest_hex: &str) -> serde_json::Value {
        serde_json::json!({
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": "fraud-detector", "digest": {"sha256": digest_hex}}],
            "predicateType": "https://modelgate.io/ApprovalRecord/v1",
            "predicate": {
                "approval": {"namespace": "ml-prod", "name": "fd", "uid": "u1"},
                "spec": {"model": {"name": "fraud-detector", "version": "2.4.1",
                    "uri": "oci://r.example.com/m", "digest": format!("sha256:{digest_hex}")}},
                "phase": "Approved", "time": "2026-12-06T03:00:00Z", "seq": 6,
                "gates": [], "history": [], "historyHead": "h"
            }
        })
    }

    #[test]
    fn only_a_registry_that_is_away_makes_a_record_unread_rather_than_refused() {
        use oci_client::errors::OciDistributionError as E;
        let server = |code| E::ServerError {
            code,
            url: "u".into(),
            message: "m".into(),
        };
        let unavailable = |e: &E| matches!(failed("x", e), ReadError::Unavailable(_));
        assert!(unavailable(&server(503)));
        assert!(unavailable(&server(429)));
        // An HTTP answer is never a verdict on the record: a 404 (a blob
        // deleted, and pushed again later) or an OCI error envelope (a
        // rate limit) leaves it unread, to be read again.
        assert!(unavailable(&server(404)));
        assert!(unavailable(&E::ImageManifestNotFoundError("x".into())));
        let envelope: oci_client::errors::OciEnvelope = serde_json::from_str(
            r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(unavailable(&E::RegistryError {
            envelope,
            url: "u".into()
        }));
        // Content the digest pins, which anyone able to push can make:
        // refused for good, never mistaken for an outage.
        assert!(!unavailable(&E::UnsupportedSchemaVersionError(3)));
        assert!(!unavailable(&E::ManifestParsingError("x".into())));
    }

    #[test]
    fn a_record_verifies_only_with_its_key_and_for_its_own_model() {
        let key = Signer::generate().unwrap_or_else(|e| panic!("{e}"));
        let other = Signer::generate().unwrap_or_else(|e| panic!("{e}"));
        let hex = "a".repeat(64);
        let envelope = key.seal(statement(&hex).to_string().as_bytes());
        let digest = format!("sha256:{hex}");
        assert!(judge(&envelope, &[key.verifying_key()], &digest).is_ok());
        let wrong_key = judge(&envelope, &[other.verifying_key()], &digest);
        assert!(wrong_key.is_err_and(|e| e.contains("signature")));
        let elsewhere = judge(
            &envelope,
            &[key.verifying_key()],
            &format!("sha256:{}", "b".repeat(64)),
        );
        assert!(elsewhere.is_err_and(|e| e.contains("another artifact")));
    }
}
