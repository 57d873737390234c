//! An in-memory index from each ModelApproval to the ModelDeployments that
//! name it (in `spec.approvalRef`) or serve it (in `status.servedModel`), so
//! that a gate change reaches exactly those deployments without a relist or
//! a scan of every deployment.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender};

use kube::ResourceExt;
use kube::core::DeserializeGuard;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;

use crate::api::deployment::ModelDeployment;
use crate::runtime::packed::CachedApproval;

type Key = (String, String);

#[derive(Default)]
struct Inner {
    by_approval: HashMap<Key, HashSet<ObjectRef<DeserializeGuard<ModelDeployment>>>>,
    keys_of: HashMap<ObjectRef<DeserializeGuard<ModelDeployment>>, Vec<Key>>,
    /// Between a (re)list's start and its end the index is incomplete: an
    /// approval may look unused while its deployments are still arriving.
    complete: bool,
    /// The approvals that had dependents when a relist began; each is told
    /// again when it ends, in case it has none any more.
    before_relist: HashSet<Key>,
}

/// Cheap to clone; all clones share one index.
#[derive(Clone, Default)]
pub struct ApprovalIndex {
    inner: Arc<RwLock<Inner>>,
    /// Told of every approval that gains or loses a dependent, so that the
    /// approval controller can add or remove the in-use finalizer.
    changed: Option<UnboundedSender<ObjectRef<CachedApproval>>>,
}

/// The approval a key names.
fn approval_ref(key: &Key) -> ObjectRef<CachedApproval> {
    ObjectRef::new(&key.1).within(&key.0)
}

/// The approvals a deployment depends on: the one it names and the one its
/// pods serve (they differ while a new version waits for approval).
fn keys(md: &ModelDeployment) -> Vec<Key> {
    let ns = md.namespace().unwrap_or_default();
    let mut keys = vec![(ns.clone(), md.spec.approval_ref.name.clone())];
    if let Some(served) = md.status.as_ref().and_then(|s| s.served_model.as_ref())
        && served.approval != md.spec.approval_ref.name
    {
        keys.push((ns, served.approval.clone()));
    }
    keys
}

impl ApprovalIndex {
    /// An index that reports approvals whose dependents changed.
    pub fn reporting() -> (Self, UnboundedReceiver<ObjectRef<CachedApproval>>) {
        let (tx, rx) = futures::channel::mpsc::unbounded();
        let index = ApprovalIndex {
            changed: Some(tx),
            ..ApprovalIndex::default()
        };
        (index, rx)
    }

    /// Tells the approval controller of `keys`. While a list is under way
    /// nothing is told: the end of the list tells every approval in use.
    fn tell<'k>(&self, complete: bool, keys: impl IntoIterator<Item = &'k Key>) {
        if !complete {
            return;
        }
        if let Some(tx) = &self.changed {
            for key in keys {
                // Only fails when the approval controller has stopped.
                let _ = tx.unbounded_send(approval_ref(key));
            }
        }
    }

    /// Whether the index holds every deployment (its watch has listed).
    pub fn is_complete(&self) -> bool {
        self.inner.read().map(|i| i.complete).unwrap_or(false)
    }

    /// Whether any deployment names or serves `approval`.
    pub fn in_use(&self, namespace: &str, name: &str) -> bool {
        let key = (namespace.to_string(), name.to_string());
        self.inner
            .read()
            .map(|i| i.by_approval.contains_key(&key))
            .unwrap_or(false)
    }

    /// Records (or re-records) one deployment.
    pub fn upsert(&self, md: &DeserializeGuard<ModelDeployment>) {
        let Ok(inner_md) = &md.0 else {
            return self.remove(md);
        };
        let reference = ObjectRef::from_obj(md);
        let new_keys = keys(inner_md);
        let Ok(mut inner) = self.inner.write() else {
            return;
        };
        let old_keys = Self::unlink(&mut inner, &reference);
        for key in &new_keys {
            inner
                .by_approval
                .entry(key.clone())
                .or_default()
                .insert(reference.clone());
        }
        let moved: Vec<Key> = old_keys
            .iter()
            .filter(|k| !new_keys.contains(k))
            .chain(new_keys.iter().filter(|k| !old_keys.contains(k)))
            .cloned()
            .collect();
        inner.keys_of.insert(reference, new_keys);
        let complete = inner.complete;
        drop(inner);
        self.tell(complete, &moved);
    }

    /// Forgets one deployment.
    pub fn remove(&self, md: &DeserializeGuard<ModelDeployment>) {
        let reference = ObjectRef::from_obj(md);
        let (old_keys, complete) = match self.inner.write() {
            Ok(mut inner) => (Self::unlink(&mut inner, &reference), inner.complete),
            Err(_) => return,
        };
        self.tell(complete, &old_keys);
    }

    /// Removes one deployment's links and returns the keys it had.
    fn unlink(
        inner: &mut Inner,
        reference: &ObjectRef<DeserializeGuard<ModelDeployment>>,
    ) -> Vec<Key> {
        let keys = inner.keys_of.remove(reference).unwrap_or_default();
        for key in &keys {
            if let Some(set) = inner.by_approval.get_mut(key) {
                set.remove(reference);
                if set.is_empty() {
                    inner.by_approval.remove(key);
                }
            }
        }
        keys
    }

    /// The deployments that depend on `approval`.
    pub fn lookup(
        &self,
        approval: &impl kube::Resource,
    ) -> Vec<ObjectRef<DeserializeGuard<ModelDeployment>>> {
        let key = (
            approval.namespace().unwrap_or_default(),
            approval.name_any(),
        );
        self.inner
            .read()
            .map(|inner| {
                inner
                    .by_approval
                    .get(&key)
                    .map(|s| s.iter().cloned().collect())
                    .unwrap_or_default()
            })
            .unwrap_or_default()
    }

    /// Keeps the index in step with the deployment watch. A relist rebuilds
    /// it; every deployment is reconciled after a relist anyway.
    pub fn observe(&self, event: &watcher::Event<DeserializeGuard<ModelDeployment>>) {
        match event {
            watcher::Event::Apply(md) | watcher::Event::InitApply(md) => self.upsert(md),
            watcher::Event::Delete(md) => self.remove(md),
            watcher::Event::Init => {
                if let Ok(mut inner) = self.inner.write() {
                    let before_relist = inner.by_approval.keys().cloned().collect();
                    *inner = Inner {
                        before_relist,
                        ..Inner::default()
                    };
                }
            }
            // Every approval used before or after the relist is told once
            // the index is whole again: what it was told while incomplete
            // could not be acted on.
            watcher::Event::InitDone => {
                let affected: HashSet<Key> = match self.inner.write() {
                    Ok(mut inner) => {
                        inner.complete = true;
                        let mut keys = std::mem::take(&mut inner.before_relist);
                        keys.extend(inner.by_approval.keys().cloned());
                        keys
                    }
                    Err(_) => return,
                };
                self.tell(true, &affected);
            }
        }
    }

    /// How many approvals have dependents (for tests and metrics).
    pub fn len(&self) -> usize {
        self.inner.read().map(|i| i.by_approval.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md(name: &str, approval: &str, served: Option<&str>) -> DeserializeGuard<ModelDeployment> {
        let mut v = serde_json::json!({
            "apiVersion": "modelgate.io/v1alpha1", "kind": "ModelDeployment",
            "metadata": {"name": name, "namespace": "risk"},
            "spec": {"approvalRef": {"name": approval}, "template": {"spec": {"containers": [{"name": "s", "image": "s:1"}]}}},
        });
        if let Some(s) = served {
            v["status"] = serde_json::json!({"servedModel": {"approval": s, "name": "m", "version": "1", "digest": "sha256:00"}});
        }
        DeserializeGuard(serde_json::from_value(v).map_err(|e| {
            kube::core::error_boundary::InvalidObject {
                error: e.to_string(),
                metadata: Default::default(),
            }
        }))
    }

    fn approval(name: &str, ns: &str) -> CachedApproval {
        let v = serde_json::json!({
            "apiVersion": "modelgate.io/v1alpha1", "kind": "ModelApproval",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"model": {"name": "m", "version": "1", "uri": "s3://m", "digest": "sha256:00"}},
        });
        DeserializeGuard(serde_json::from_value(v).map_err(|e| {
            kube::core::error_boundary::InvalidObject {
                error: e.to_string(),
                metadata: Default::default(),
            }
        }))
    }

    /// The approvals told since the last call, sorted.
    fn told(rx: &mut UnboundedReceiver<ObjectRef<CachedApproval>>) -> Vec<String> {
        let mut names = Vec::new();
        while let Ok(r) = rx.try_recv() {
            names.push(r.name);
        }
        names.sort();
        names
    }

    #[test]
    fn approvals_are_told_when_their_use_changes_and_only_when_complete() {
        let (index, mut rx) = ApprovalIndex::reporting();
        index.observe(&watcher::Event::Init);
        index.observe(&watcher::Event::InitApply(md("a", "v1", None)));
        assert!(!index.is_complete(), "still listing");
        assert!(told(&mut rx).is_empty(), "nothing is told while listing");
        index.observe(&watcher::Event::InitDone);
        assert!(index.is_complete());
        assert_eq!(told(&mut rx), ["v1"], "told once whole");
        assert!(index.in_use("risk", "v1"));

        index.observe(&watcher::Event::Apply(md("a", "v2", Some("v1"))));
        assert_eq!(
            told(&mut rx),
            ["v2"],
            "v2 gained a user; v1 is still served"
        );
        index.observe(&watcher::Event::Apply(md("a", "v2", Some("v2"))));
        assert_eq!(told(&mut rx), ["v1"], "v1 lost its last user");
        assert!(!index.in_use("risk", "v1"));

        // A relist that drops a deployment tells its approval at the end.
        index.observe(&watcher::Event::Init);
        index.observe(&watcher::Event::InitDone);
        assert_eq!(told(&mut rx), ["v2"]);
        assert!(!index.in_use("risk", "v2"));
    }

    fn names(v: Vec<ObjectRef<DeserializeGuard<ModelDeployment>>>) -> Vec<String> {
        let mut n: Vec<String> = v.into_iter().map(|r| r.name).collect();
        n.sort();
        n
    }

    #[test]
    fn lookups_follow_refs_served_models_and_deletes() {
        let index = ApprovalIndex::default();
        index.observe(&watcher::Event::Apply(md("a", "v1", None)));
        index.observe(&watcher::Event::Apply(md("b", "v1", None)));
        assert_eq!(names(index.lookup(&approval("v1", "risk"))), ["a", "b"]);
        assert!(index.lookup(&approval("v1", "other")).is_empty());

        // b moves to v2 while still serving v1: it depends on both
        index.observe(&watcher::Event::Apply(md("b", "v2", Some("v1"))));
        assert_eq!(names(index.lookup(&approval("v1", "risk"))), ["a", "b"]);
        assert_eq!(names(index.lookup(&approval("v2", "risk"))), ["b"]);
        // once it serves v2, v1 no longer concerns it
        index.observe(&watcher::Event::Apply(md("b", "v2", Some("v2"))));
        assert_eq!(names(index.lookup(&approval("v1", "risk"))), ["a"]);

        index.observe(&watcher::Event::Delete(md("a", "v1", None)));
        assert!(index.lookup(&approval("v1", "risk")).is_empty());
        assert_eq!(index.len(), 1);

        index.observe(&watcher::Event::Init);
        assert!(index.is_empty());
    }
}
