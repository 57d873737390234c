//! The `modelgate.io/in-use` finalizer: on every approval a ModelDeployment
//! names or serves, off every other. Deleting a marked approval is a
//! revocation that the deployment controller acts on; the approval stays
//! readable until nothing depends on it.

use kube::api::{Api, Patch, PatchParams};
use kube::{Client, Resource, ResourceExt};
use tracing::info;

use super::written::Written;
use crate::api::approval::ModelApproval;
use crate::deployment::index::ApprovalIndex;
use crate::error::Result;

pub const IN_USE_FINALIZER: &str = "modelgate.io/in-use";

use crate::vocabulary::IN_USE_FIELD_MANAGER;

/// Which approvals are in use, and our own finalizer writes that the cache
/// may not show yet (so that a stale read does not write the same again).
pub struct InUse {
    index: ApprovalIndex,
    /// Our finalizer writes (marked or not) the cache may not show yet.
    written: Written<bool>,
}

/// The server-side-apply body, under [`IN_USE_FIELD_MANAGER`], that puts the
/// finalizer on approval `name` (`mark`) or takes it off: our one list item
/// only, so the finalizers of anyone else are kept, and leaving ours out of
/// the apply removes it.
pub fn mark_patch(name: &str, mark: bool) -> serde_json::Value {
    let finalizers: &[&str] = if mark { &[IN_USE_FINALIZER] } else { &[] };
    serde_json::json!({
        "apiVersion": ModelApproval::api_version(&()),
        "kind": ModelApproval::kind(&()),
        "metadata": {"name": name, "finalizers": finalizers},
    })
}

/// What to do about one approval's finalizer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    /// It is as it should be.
    Done,
    /// Add (true) or remove (false) it.
    Set(bool),
    /// Not known yet: the deployment index is still being built and the
    /// approval is marked (it may have lost its last user meanwhile).
    Later,
}

impl InUse {
    pub fn new(index: ApprovalIndex) -> Self {
        InUse {
            index,
            written: Written::default(),
        }
    }

    /// What `approval`'s finalizer needs, from the index and what the cache
    /// (or our last write, when newer) shows.
    pub fn needs(&self, approval: &ModelApproval) -> Mark {
        let marked = self
            .written
            .ahead_of(
                &approval.uid().unwrap_or_default(),
                approval.meta().resource_version.as_deref(),
            )
            .unwrap_or_else(|| approval.finalizers().iter().any(|f| f == IN_USE_FINALIZER));
        if !self.index.is_complete() {
            // An unmarked approval is told again when the index is whole.
            return if marked { Mark::Later } else { Mark::Done };
        }
        let in_use = self.index.in_use(
            &approval.namespace().unwrap_or_default(),
            &approval.name_any(),
        );
        if in_use == marked {
            Mark::Done
        } else {
            Mark::Set(in_use)
        }
    }

    /// Adds or removes the finalizer with server-side apply of our one list
    /// item: the finalizers of anyone else are kept, and leaving ours out of
    /// the apply removes it.
    pub async fn set(&self, client: &Client, approval: &ModelApproval, mark: bool) -> Result<()> {
        let api: Api<ModelApproval> =
            Api::namespaced(client.clone(), &approval.namespace().unwrap_or_default());
        let name = approval.name_any();
        let patch = mark_patch(&name, mark);
        let params = PatchParams::apply(IN_USE_FIELD_MANAGER).force();
        let written = match api.patch(&name, &params, &Patch::Apply(&patch)).await {
            Ok(written) => written,
            // Already gone: nothing left to protect.
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        self.written.record(
            &approval.uid().unwrap_or_default(),
            written.meta().resource_version.as_deref(),
            mark,
        );
        info!(
            in_use = mark,
            "in-use finalizer {}",
            if mark { "added" } else { "removed" }
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::DeserializeGuard;
    use kube::runtime::watcher;

    fn approval(rv: &str, finalizers: &[&str]) -> ModelApproval {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "modelgate.io/v1alpha1", "kind": "ModelApproval",
            "metadata": {"name": "v1", "namespace": "risk", "uid": "u1", "resourceVersion": rv, "finalizers": finalizers},
            "spec": {"model": {"name": "m", "version": "1", "uri": "s3://m", "digest": "sha256:00"}},
        }))
        .unwrap_or_else(|e| panic!("fixture: {e}"))
    }

    fn md_naming_v1() -> DeserializeGuard<crate::api::deployment::ModelDeployment> {
        DeserializeGuard(Ok(serde_json::from_value(serde_json::json!({
            "apiVersion": "modelgate.io/v1alpha1", "kind": "ModelDeployment",
            "metadata": {"name": "fd", "namespace": "risk"},
            "spec": {"approvalRef": {"name": "v1"}, "template": {"spec": {"containers": [{"name": "s", "image": "s:1"}]}}},
        }))
        .unwrap_or_else(|e| panic!("fixture: {e}"))))
    }

    #[test]
    fn marks_follow_use_and_wait_for_a_whole_index() {
        let (index, _told) = ApprovalIndex::reporting();
        let in_use = InUse::new(index.clone());
        index.observe(&watcher::Event::Init);
        assert_eq!(in_use.needs(&approval("5", &[])), Mark::Done, "told later");
        assert_eq!(
            in_use.needs(&approval("5", &[IN_USE_FINALIZER])),
            Mark::Later
        );
        index.observe(&watcher::Event::InitApply(md_naming_v1()));
        index.observe(&watcher::Event::InitDone);
        assert_eq!(in_use.needs(&approval("5", &[])), Mark::Set(true));
        assert_eq!(
            in_use.needs(&approval("5", &[IN_USE_FINALIZER, "other"])),
            Mark::Done
        );
        index.observe(&watcher::Event::Delete(md_naming_v1()));
        assert_eq!(
            in_use.needs(&approval("6", &[IN_USE_FINALIZER])),
            Mark::Set(false)
        );
    }

    #[test]
    fn a_stale_read_after_our_own_write_writes_nothing() {
        let (index, _told) = ApprovalIndex::reporting();
        let in_use = InUse::new(index.clone());
        index.observe(&watcher::Event::Init);
        index.observe(&watcher::Event::InitApply(md_naming_v1()));
        index.observe(&watcher::Event::InitDone);
        in_use.written.record("u1", Some("7"), true);
        assert_eq!(
            in_use.needs(&approval("6", &[])),
            Mark::Done,
            "the cache is behind our write"
        );
        assert_eq!(
            in_use.needs(&approval("8", &[])),
            Mark::Set(true),
            "someone removed it since"
        );
    }
}
