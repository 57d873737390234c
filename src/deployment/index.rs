//! An in-memory index from each ModelApproval to the ModelDeployments that
//! name it (in `spec.approvalRef`) or serve it (in `status.servedModel`), so
//! that a gate change reaches exactly those deployments without a relist or
//! a scan of every deployment.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use kube::ResourceExt;
use kube::core::DeserializeGuard;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;

use crate::api::{ModelApproval, ModelDeployment};

type Key = (String, String);

#[derive(Default)]
struct Inner {
    by_approval: HashMap<Key, HashSet<ObjectRef<DeserializeGuard<ModelDeployment>>>>,
    keys_of: HashMap<ObjectRef<DeserializeGuard<ModelDeployment>>, Vec<Key>>,
}

/// Cheap to clone; all clones share one index.
#[derive(Clone, Default)]
pub struct ApprovalIndex {
    inner: Arc<RwLock<Inner>>,
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
        Self::unlink(&mut inner, &reference);
        for key in &new_keys {
            inner
                .by_approval
                .entry(key.clone())
                .or_default()
                .insert(reference.clone());
        }
        inner.keys_of.insert(reference, new_keys);
    }

    /// Forgets one deployment.
    pub fn remove(&self, md: &DeserializeGuard<ModelDeployment>) {
        let reference = ObjectRef::from_obj(md);
        if let Ok(mut inner) = self.inner.write() {
            Self::unlink(&mut inner, &reference);
        }
    }

    fn unlink(inner: &mut Inner, reference: &ObjectRef<DeserializeGuard<ModelDeployment>>) {
        for key in inner.keys_of.remove(reference).unwrap_or_default() {
            if let Some(set) = inner.by_approval.get_mut(&key) {
                set.remove(reference);
                if set.is_empty() {
                    inner.by_approval.remove(&key);
                }
            }
        }
    }

    /// The deployments that depend on `approval`.
    pub fn lookup(
        &self,
        approval: &DeserializeGuard<ModelApproval>,
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
                    *inner = Inner::default();
                }
            }
            watcher::Event::InitDone => {}
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

    fn approval(name: &str, ns: &str) -> DeserializeGuard<ModelApproval> {
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
