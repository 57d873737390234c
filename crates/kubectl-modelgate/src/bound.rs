//! A write bound to the approval its writer saw. Every status write of the
//! plugin and the console (a decision, a review, a measurement) names the
//! approval's uid and model digest it is about: the object is read, its uid
//! and digest compared with the expected ones, and the apply carries the
//! resourceVersion of that read, so the API server refuses it (409) when
//! the object changed in between, a delete and re-create under the same
//! name included. A refusal for an unrelated change (the operator writing
//! status) is retried with a fresh read, which is checked again.
//!
//! Why not `metadata.uid` in the apply: on the status subresource the API
//! server copies the stored metadata over the applied one, so a uid there
//! is not compared. The resourceVersion is.

use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use serde_json::Value;

use super::{CliError, Result};
use modelgate::api::approval::ModelApproval;

/// How often an apply refused for a concurrent change is tried again.
const ATTEMPTS: usize = 5;

/// What the writer expects the approval to be: its uid and the digest of
/// the model it names. `None`: whatever the first read finds, held for
/// every later attempt and write.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Expect {
    pub uid: Option<String>,
    pub digest: Option<String>,
}

/// The approval a write landed on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    pub uid: String,
    pub digest: String,
}

impl Seen {
    pub fn of(approval: &ModelApproval) -> Seen {
        Seen {
            uid: approval.uid().unwrap_or_default(),
            digest: approval.spec.model.digest.clone(),
        }
    }
}

impl Expect {
    /// Refuses an approval that is not the expected one, naming what it
    /// is now; pins what is still open to what was read.
    pub fn check(&mut self, approval: &ModelApproval) -> Result<Seen> {
        let seen = Seen::of(approval);
        let uid_ok = self.uid.as_deref().is_none_or(|u| u == seen.uid);
        let digest_ok = self.digest.as_deref().is_none_or(|d| d == seen.digest);
        if !uid_ok || !digest_ok {
            let was = match (&self.digest, uid_ok) {
                (Some(d), true) => format!("you reviewed {d}"),
                (Some(d), false) => {
                    format!("you reviewed {d} on an approval since deleted and re-created")
                }
                (None, _) => "it was deleted and re-created".into(),
            };
            return Err(CliError::Changed(format!(
                "this approval changed since you opened it: it now names digest {} (uid {}; {was}); reload and review again",
                seen.digest, seen.uid
            )));
        }
        self.uid = Some(seen.uid.clone());
        self.digest = Some(seen.digest.clone());
        Ok(seen)
    }
}

/// Reads `name`, checks it against `expect`, builds the apply from it and
/// sends it to the status subresource with the read's resourceVersion as
/// precondition, under the manager `build` names (forced: the admission
/// policy, not field ownership, decides who may write an entry).
pub async fn apply_status<F>(
    api: &Api<ModelApproval>,
    name: &str,
    what: &str,
    expect: &mut Expect,
    mut build: F,
) -> Result<(ModelApproval, Seen)>
where
    F: FnMut(&ModelApproval) -> Result<(Value, String)>,
{
    for _ in 0..ATTEMPTS {
        let approval = api.get(name).await.map_err(|e| gone(e, what, expect))?;
        let seen = expect.check(&approval)?;
        let (mut patch, manager) = build(&approval)?;
        patch["metadata"]["resourceVersion"] =
            approval.resource_version().unwrap_or_default().into();
        let params = PatchParams::apply(&manager).force();
        match api.patch_status(name, &params, &Patch::Apply(&patch)).await {
            Ok(updated) => return Ok((updated, seen)),
            // Changed between the read and the write: read and check again.
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(e) => return Err(gone(e, what, expect)),
        }
    }
    Err(CliError::Refused(format!(
        "{what} kept changing while this was written ({ATTEMPTS} tries); try again"
    )))
}

/// A not-found for an approval the writer had seen says it was deleted.
fn gone(e: kube::Error, what: &str, expect: &Expect) -> CliError {
    match (e, &expect.uid) {
        (kube::Error::Api(s), Some(uid)) if s.code == 404 => CliError::Changed(format!(
            "this approval was deleted since you opened it ({what}, uid {uid}); nothing was written"
        )),
        (e, _) => CliError::from_api(e, what),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use modelgate::api::approval::ModelApproval;

    fn approval(uid: &str, digest: &str) -> ModelApproval {
        let mut a: ModelApproval = serde_json::from_value(serde_json::json!({
            "apiVersion": "modelgate.io/v1alpha1",
            "kind": "ModelApproval",
            "metadata": {"name": "a", "uid": uid},
            "spec": {"model": {"name": "m", "version": "1", "digest": digest, "uri": "s3://m"}},
        }))
        .expect("a valid approval");
        a.metadata.uid = Some(uid.into());
        a
    }

    #[test]
    fn an_open_expectation_is_pinned_by_the_first_read() {
        let mut e = Expect::default();
        e.check(&approval("u1", "sha256:aa")).expect("first read");
        assert_eq!(e.uid.as_deref(), Some("u1"));
        assert!(matches!(
            e.check(&approval("u2", "sha256:aa")),
            Err(CliError::Changed(_))
        ));
    }

    #[test]
    fn another_digest_is_named_in_the_refusal() {
        let mut e = Expect {
            uid: Some("u1".into()),
            digest: Some("sha256:aa".into()),
        };
        let err = e.check(&approval("u2", "sha256:bb")).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with(
                "this approval changed since you opened it: it now names digest sha256:bb"
            ),
            "{text}"
        );
        assert!(text.contains("reload and review again"), "{text}");
    }
}
