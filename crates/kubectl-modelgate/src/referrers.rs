//! `audit verify oci://REPO@DIGEST`: the signed records attached to a model
//! in its registry (see the operator's `fleet` module), read and checked
//! with the public keys alone: no cluster, no export.

use std::collections::BTreeMap;
use std::path::PathBuf;

use modelgate::api::record::Envelope;
use modelgate::artifact::registry::{Registry, RegistryOptions};
use modelgate::fleet::referrer::ARTIFACT_TYPE;
use modelgate::records::envelope;
use modelgate::records::statement::Statement;
use oci_client::Reference;
use oci_client::manifest::OciManifest;

use crate::{CliError, Result};

/// Where the records are: `oci://REPO@sha256:…`, and how to reach it.
pub struct Source {
    pub pinned: String,
    pub ca: Vec<PathBuf>,
    pub auth: Option<PathBuf>,
}

/// One attached record, checked.
pub struct Checked {
    pub referrer: String,
    pub statement: Option<Statement>,
    /// Why it does not verify, if it does not.
    pub problem: Option<String>,
}

/// `REPO@DIGEST` of an `oci://` source, if it is one.
pub fn pinned(source: &str) -> Option<&str> {
    source.strip_prefix("oci://")
}

/// Reads every record attached to `source` and checks each with the
/// public keys in `pem`.
pub async fn check(source: &Source, pem: &str) -> Result<Vec<Checked>> {
    let keys = envelope::public_keys(pem).map_err(|e| CliError::Usage(format!("the keys: {e}")))?;
    let options = RegistryOptions {
        ca_files: source.ca.clone(),
        auth_file: source.auth.clone(),
    };
    let registry = Registry::standalone(&options).map_err(CliError::Usage)?;
    let subject: Reference = source
        .pinned
        .parse()
        .map_err(|e| CliError::Usage(format!("oci://{}: {e}", source.pinned)))?;
    let digest = subject
        .digest()
        .ok_or_else(|| CliError::Usage("name the model by digest: oci://REPO@sha256:…".into()))?
        .to_string();
    let index = registry
        .client()
        .pull_referrers(&subject, Some(ARTIFACT_TYPE))
        .await
        .map_err(|e| {
            CliError::Usage(format!("cannot list the records of {}: {e}", source.pinned))
        })?;
    let mut checked = Vec::new();
    for entry in index.manifests {
        let at = Reference::with_digest(
            subject.registry().to_string(),
            subject.repository().to_string(),
            entry.digest.clone(),
        );
        let problem_or = match envelope_at(&registry, &at).await {
            Ok(envelope) => judge(&envelope, &keys, &digest),
            Err(why) => Err(why),
        };
        checked.push(match problem_or {
            Ok(statement) => Checked {
                referrer: entry.digest,
                statement: Some(statement),
                problem: None,
            },
            Err(why) => Checked {
                referrer: entry.digest,
                statement: None,
                problem: Some(why),
            },
        });
    }
    Ok(checked)
}

/// The DSSE envelope a referrer carries as its one layer.
async fn envelope_at(registry: &Registry, at: &Reference) -> std::result::Result<Envelope, String> {
    let auth = registry.auth(at);
    let (manifest, _) = registry
        .client()
        .pull_manifest(at, &auth)
        .await
        .map_err(|e| format!("cannot read it: {e}"))?;
    let OciManifest::Image(image) = manifest else {
        return Err("it is an index, not a record".into());
    };
    let layer = image.layers.first().ok_or("it has no layer")?;
    let mut bytes = Vec::new();
    registry
        .client()
        .pull_blob(at, layer, &mut bytes)
        .await
        .map_err(|e| format!("cannot read its envelope: {e}"))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("its layer is not a DSSE envelope: {e}"))
}

/// The statement of `envelope` if a key signed it and it is about the
/// model `digest`.
fn judge(
    envelope: &Envelope,
    keys: &[envelope::PublicKey],
    digest: &str,
) -> std::result::Result<Statement, String> {
    let payload = envelope::open(envelope, keys).map_err(|e| format!("its signature: {e}"))?;
    let statement: Statement =
        serde_json::from_slice(&payload).map_err(|e| format!("not a record's statement: {e}"))?;
    let (algorithm, hex) = digest.split_once(':').unwrap_or_default();
    let about = statement
        .subject
        .iter()
        .any(|s| s.digest.get(algorithm).map(String::as_str) == Some(hex));
    if !about {
        return Err(format!("it is about another artifact, not {digest}"));
    }
    Ok(statement)
}

/// What was found: per approval, its newest record (the one that stands);
/// an error naming every record that does not verify.
pub fn summary(source: &Source, checked: &[Checked]) -> Result<String> {
    let bad: Vec<String> = checked
        .iter()
        .filter_map(|c| Some(format!("{}: {}", c.referrer, c.problem.as_ref()?)))
        .collect();
    if !bad.is_empty() {
        return Err(CliError::Unverified(format!(
            "{} of {} records attached to {} do not verify:\n{}",
            bad.len(),
            checked.len(),
            source.pinned,
            bad.join("\n")
        )));
    }
    let mut newest: BTreeMap<(String, String), &Statement> = BTreeMap::new();
    for s in checked.iter().filter_map(|c| c.statement.as_ref()) {
        let a = &s.predicate.approval;
        let key = (format!("{}/{}", a.namespace, a.name), a.uid.clone());
        let entry = newest.entry(key).or_insert(s);
        if s.predicate.seq > entry.predicate.seq {
            *entry = s;
        }
    }
    let mut out = format!(
        "verified {} records attached to {} ({} approvals); the newest of each stands:\n",
        checked.len(),
        source.pinned,
        newest.len()
    );
    for ((name, _), s) in &newest {
        let p = &s.predicate;
        out.push_str(&format!(
            "  {name}: {} at {} (seq {})\n",
            p.phase, p.time.0, p.seq
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use modelgate::records::envelope::Signer;

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
