//! The hand-off from the approval controller to the deployment controller.
//!
//! When the approval controller's status write releases an approval or
//! withdraws it (as `rollout::releases` judges it), it hands the
//! ModelDeployments that name or serve the approval to the deployment
//! controller at once, rather than leave them to the write's echo through
//! the approval watch: one watch delivery fewer between the last gate and
//! the rollout, and between a revocation and the scale-down.
//!
//! What is handed over is the whole approval the API server answered the
//! write with: a state the API server held, at that write's revision. The
//! deployment controller and the stray ReplicaSet check read whichever is
//! newer, that object or the cache's (see [`Handed::read`]), never a mix
//! of the two: a written phase over older cached gates or metadata could
//! show a release that no state of the API server allowed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender};
use kube::core::DeserializeGuard;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher::Event;
use kube::{Resource, ResourceExt};

use super::index::ApprovalIndex;
use crate::api::approval::ModelApproval;
use crate::api::deployment::ModelDeployment;
use crate::runtime::packed::{CachedApproval, PackedApproval};

/// What the deployment controller receives: the ModelDeployments to
/// reconcile now.
pub type Received = UnboundedReceiver<ObjectRef<DeserializeGuard<ModelDeployment>>>;

/// Approvals as the approval controller's writes left them, by namespace
/// and name, kept until the approval watch has delivered that revision (or
/// a newer one, or the deletion, or a relist).
#[derive(Default)]
pub struct Handed {
    inner: Mutex<Entries>,
}

/// An approval's namespace and name.
type Key = (String, String);

#[derive(Default)]
struct Entries {
    handed: HashMap<Key, (u64, Arc<CachedApproval>)>,
    /// During a relist, the approvals handed over and the revision each
    /// was listed at (None while not listed): the cache shows the relist
    /// only once it is complete.
    relisted: Option<HashMap<Key, Option<u64>>>,
}

/// resourceVersions are etcd revisions: integers that only grow. Anything
/// else (another storage) disables the hand-off rather than guess.
fn revision(object: &impl Resource) -> Option<u64> {
    object.meta().resource_version.as_deref()?.parse().ok()
}

/// Whether the cache holding `cached` has caught up with revision `rv`; an
/// opaque revision ends the entry rather than keep it forever.
fn caught_up(cached: &impl Resource, rv: u64) -> bool {
    revision(cached).is_none_or(|seen| seen >= rv)
}

fn key(object: &impl Resource) -> Key {
    (object.namespace().unwrap_or_default(), object.name_any())
}

impl Handed {
    /// Keeps `written`, the approval as a status write returned it.
    pub fn keep(&self, mut written: ModelApproval) {
        let Some(rv) = revision(&written) else { return };
        crate::runtime::watches::slim(&mut written);
        let key = key(&written);
        let packed = match PackedApproval::pack(written) {
            Ok(packed) => packed,
            Err(e) => return tracing::error!(error = %e, "handed approval does not pack"),
        };
        if let Ok(mut inner) = self.inner.lock() {
            inner
                .handed
                .insert(key, (rv, Arc::new(DeserializeGuard(Ok(packed)))));
        }
    }

    /// The approval kept for `object`'s namespace and name, when it is
    /// newer than `object`.
    fn newer_than(&self, object: &ModelApproval) -> Option<ModelApproval> {
        let (rv, kept) = self.inner.lock().ok()?.handed.get(&key(object)).cloned()?;
        let newer = revision(object).is_some_and(|seen| seen < rv);
        newer
            .then(|| crate::runtime::packed::readable(&kept))
            .flatten()
    }

    fn holds(&self, object: &impl Resource) -> bool {
        self.inner
            .lock()
            .is_ok_and(|inner| inner.handed.contains_key(&key(object)))
    }

    /// The approval watch's event, seen after the cache took it: an entry
    /// the cache has caught up with, or whose approval is gone, ends. A
    /// relist shows in the cache only once complete, so its entries end
    /// then: those listed at their revision or newer, and those not listed.
    pub fn observed(&self, event: &Event<CachedApproval>) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let entries = &mut *inner;
        match event {
            Event::Apply(a) => {
                let key = key(a);
                if entries
                    .handed
                    .get(&key)
                    .is_some_and(|(rv, _)| caught_up(a, *rv))
                {
                    entries.handed.remove(&key);
                }
            }
            Event::Delete(a) => {
                entries.handed.remove(&key(a));
            }
            Event::Init => {
                let held = entries.handed.keys().map(|key| (key.clone(), None));
                entries.relisted = Some(held.collect());
            }
            Event::InitApply(a) => {
                let key = key(a);
                if let (Some(relisted), true) =
                    (&mut entries.relisted, entries.handed.contains_key(&key))
                {
                    relisted.insert(key, Some(revision(a).unwrap_or(u64::MAX)));
                }
            }
            Event::InitDone => {
                let relisted = entries.relisted.take().unwrap_or_default();
                entries
                    .handed
                    .retain(|key, (rv, _)| match relisted.get(key) {
                        // Listed older than the write: the watch brings it.
                        Some(Some(seen)) => seen < rv,
                        // Held when the relist began and not listed: deleted.
                        Some(None) => false,
                        // Handed over during the relist, after its listing (if
                        // any): kept until the watch brings it.
                        None => true,
                    });
            }
        }
    }

    /// The approval `name` in `namespace`: the one handed over when it is
    /// newer than the cache's, else the cache's. The entry is taken before
    /// the cache is read, and the watch ends an entry only after the cache
    /// took the event that ends it, so an entry that is gone by the time
    /// the cache is read left the cache at least as new. An approval the
    /// cache no longer holds was deleted: None, whatever was handed.
    pub fn read(
        &self,
        cache: &Store<CachedApproval>,
        namespace: &str,
        name: &str,
    ) -> Option<ModelApproval> {
        let key = (namespace.to_string(), name.to_string());
        let handed = self.inner.lock().ok()?.handed.get(&key).cloned();
        let cached = cache.get(&ObjectRef::new(name).within(namespace))?;
        let newest = match handed {
            Some((rv, handed)) if revision(cached.as_ref()).is_some_and(|seen| seen < rv) => handed,
            _ => cached,
        };
        crate::runtime::packed::readable(&newest)
    }

    /// How many approvals are handed over and not yet cached.
    pub fn pending(&self) -> usize {
        self.inner.lock().map(|i| i.handed.len()).unwrap_or(0)
    }
}

/// The approval controller's end.
pub struct Handoff {
    index: ApprovalIndex,
    tx: UnboundedSender<ObjectRef<DeserializeGuard<ModelDeployment>>>,
    handed: Arc<Handed>,
}

impl Handoff {
    /// Both ends; `index` tells which ModelDeployments an approval reaches.
    pub fn channel(index: ApprovalIndex, handed: Arc<Handed>) -> (Self, Received) {
        let (tx, rx) = futures::channel::mpsc::unbounded();
        (Handoff { index, tx, handed }, rx)
    }

    /// `written` is what the API server answered a status write of `read`
    /// with. When it releases what `read` did not, or withdraws what it
    /// released, the ModelDeployments that use the approval are told now.
    /// An approval already handed over is kept at its newest write, so what
    /// is read is never older than the operator's own last word on it.
    pub fn written(&self, read: &ModelApproval, written: ModelApproval) {
        let mds = self.index.lookup(&written);
        if mds.is_empty() {
            return;
        }
        let now = crate::context::now_seconds();
        let releases = |a: &ModelApproval| super::rollout::releases(a, now);
        // Against the newest the deployment controller may have read: a
        // write after a release handed over (the publication's, in the same
        // reconcile) crosses nothing again.
        let newer = self.handed.newer_than(read);
        let crossed = releases(newer.as_ref().unwrap_or(read)) != releases(&written);
        if crossed || self.handed.holds(&written) {
            self.handed.keep(written);
        }
        if crossed {
            // A deployment controller that has stopped leaves nothing to tell.
            for md in mds {
                let _ = self.tx.unbounded_send(md);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use kube::runtime::reflector;
    use serde_json::json;

    use super::*;

    fn approval(phase: &str, rv: &str) -> ModelApproval {
        serde_json::from_value(json!({
            "apiVersion": "modelgate.io/v1alpha1", "kind": "ModelApproval",
            "metadata": {"name": "v1", "namespace": "risk", "uid": "u-1", "resourceVersion": rv},
            "spec": {"model": {"name": "fraud-detector", "version": "2.4.0", "uri": "s3://m",
                               "digest": format!("sha256:{}", "0".repeat(64))}},
            "status": {"phase": phase},
        }))
        .unwrap_or_else(|e| panic!("fixture: {e}"))
    }

    fn cached(approval: ModelApproval) -> CachedApproval {
        DeserializeGuard(PackedApproval::pack(approval).map_err(|e| panic!("packs: {e}")))
    }

    fn phase_read(handed: &Handed, cache: &Store<CachedApproval>) -> Option<String> {
        let read = handed.read(cache, "risk", "v1")?;
        Some(format!("{:?}", read.status?.phase?))
    }

    /// The newer of the two is read, whole; the watch ends an entry once
    /// the cache has it, or the approval is gone, or a relist replaced the
    /// cache.
    #[test]
    fn the_newer_of_the_handed_and_the_cached_approval_is_read() {
        let (cache, mut writer) = reflector::store::<CachedApproval>();
        let handed = Handed::default();
        writer.apply_watcher_event(&Event::Apply(cached(approval("Pending", "7"))));
        handed.keep(approval("Approved", "8"));
        assert_eq!(phase_read(&handed, &cache).as_deref(), Some("Approved"));
        // An older revision leaves the entry; the write's echo ends it.
        handed.observed(&Event::Apply(cached(approval("Pending", "7"))));
        assert_eq!(handed.pending(), 1);
        let echo = cached(approval("Approved", "8"));
        writer.apply_watcher_event(&Event::Apply(echo.clone()));
        handed.observed(&Event::Apply(echo));
        assert_eq!(handed.pending(), 0);
        // The cache overtaking an entry is read even before the entry ends.
        handed.keep(approval("Approved", "9"));
        writer.apply_watcher_event(&Event::Apply(cached(approval("Rejected", "10"))));
        assert_eq!(phase_read(&handed, &cache).as_deref(), Some("Rejected"));
        // A deleted approval is not read, whatever was handed over.
        handed.keep(approval("Approved", "11"));
        let gone = cached(approval("Rejected", "12"));
        writer.apply_watcher_event(&Event::Delete(gone.clone()));
        assert_eq!(phase_read(&handed, &cache), None);
        handed.observed(&Event::Delete(gone));
        assert_eq!(handed.pending(), 0);
        // A relist ends entries once the cache shows it: those listed at
        // their revision or newer, and those not listed (deleted).
        handed.keep(approval("Approved", "13"));
        handed.observed(&Event::Init);
        handed.observed(&Event::InitApply(cached(approval("Approved", "13"))));
        assert_eq!(
            handed.pending(),
            1,
            "the cache does not show the relist yet"
        );
        handed.observed(&Event::InitDone);
        assert_eq!(handed.pending(), 0);
        handed.keep(approval("Approved", "14"));
        handed.observed(&Event::Init);
        handed.observed(&Event::InitApply(cached(approval("Pending", "13"))));
        handed.observed(&Event::InitDone);
        assert_eq!(handed.pending(), 1, "listed before the write");
        handed.observed(&Event::Init);
        handed.observed(&Event::InitDone);
        assert_eq!(handed.pending(), 0, "not listed: deleted");
        // Handed over during a relist, after its listing: kept until the
        // watch brings it, for the cache shows only the older listing.
        handed.observed(&Event::Init);
        handed.observed(&Event::InitApply(cached(approval("Approved", "15"))));
        handed.keep(approval("Rejected", "16"));
        handed.observed(&Event::InitDone);
        assert_eq!(handed.pending(), 1, "handed over after its listing");
        handed.observed(&Event::Delete(cached(approval("Rejected", "16"))));
        // Opaque resourceVersions disable the hand-off.
        handed.keep(approval("Approved", "abc"));
        assert_eq!(handed.pending(), 0);
    }

    /// A ModelDeployment named `fd` that uses approval `v1`.
    fn index_with_fd() -> ApprovalIndex {
        let (index, _told) = ApprovalIndex::reporting();
        let md = serde_json::from_value(json!({
            "apiVersion": "modelgate.io/v1alpha1", "kind": "ModelDeployment",
            "metadata": {"name": "fd", "namespace": "risk"},
            "spec": {"approvalRef": {"name": "v1"},
                     "template": {"spec": {"containers": [{"name": "s", "image": "s:1"}]}}},
        }));
        index.observe(&Event::Init);
        index.observe(&Event::InitApply(DeserializeGuard(
            md.map_err(|e| panic!("fixture: {e}")),
        )));
        index.observe(&Event::InitDone);
        index
    }

    fn told(received: &mut Received) -> Vec<String> {
        std::iter::from_fn(|| received.try_recv().ok().map(|md| md.name)).collect()
    }

    /// Only a write that releases or withdraws is handed over and told; a
    /// later write of an approval handed over replaces what is kept.
    #[test]
    fn a_release_or_a_withdrawal_is_handed_over_and_told() {
        let handed = Arc::new(Handed::default());
        let (handoff, mut received) = Handoff::channel(index_with_fd(), handed.clone());
        let mut first = approval("Pending", "1");
        first.status = None;
        handoff.written(&first, approval("Pending", "2"));
        assert_eq!((handed.pending(), told(&mut received)), (0, vec![]));
        handoff.written(&approval("Pending", "2"), approval("Approved", "3"));
        assert_eq!(
            (handed.pending(), told(&mut received)),
            (1, vec!["fd".to_string()])
        );
        // A later write from the same read (a publication after a release)
        // crosses nothing handed over: not told again, but what is kept
        // moves on to the newest write.
        handoff.written(&approval("Pending", "2"), approval("Approved", "4"));
        assert_eq!(told(&mut received), Vec::<String>::new(), "not told twice");
        handoff.written(&approval("Approved", "4"), approval("Approved", "5"));
        assert_eq!(told(&mut received), Vec::<String>::new());
        let (cache, mut writer) = reflector::store::<CachedApproval>();
        writer.apply_watcher_event(&Event::Apply(cached(approval("Approved", "4"))));
        let kept = handed.read(&cache, "risk", "v1");
        let rv = kept.and_then(|a| a.metadata.resource_version);
        assert_eq!(rv.as_deref(), Some("5"));
        // A withdrawal is told too.
        handoff.written(&approval("Approved", "5"), approval("Rejected", "6"));
        assert_eq!(told(&mut received), ["fd"]);
    }

    /// An approval no ModelDeployment uses is neither kept nor told.
    #[test]
    fn an_approval_nothing_uses_is_not_handed_over() {
        let handed = Arc::new(Handed::default());
        let (index, _told) = ApprovalIndex::reporting();
        let (handoff, mut received) = Handoff::channel(index, handed.clone());
        handoff.written(&approval("Pending", "2"), approval("Approved", "3"));
        assert_eq!((handed.pending(), told(&mut received)), (0, vec![]));
    }
}
