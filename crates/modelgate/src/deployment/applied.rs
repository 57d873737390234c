//! What the operator last applied to each managed Deployment, so that a
//! periodic re-check makes no write when nothing drifted.
//!
//! A Deployment's `metadata.generation` moves on every change of its spec
//! (template, replicas, selector) by anyone; our labels, annotations and
//! owner reference do not move it, so those are compared directly. When the
//! generation is the one our last apply produced and the desired object is
//! the one we applied then, the spec is as we left it.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;

use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;

/// One apply: the generation it left and a fingerprint of what it sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Mark {
    generation: i64,
    fingerprint: u64,
}

/// Keyed by the Deployment's uid; shared by all reconciles.
#[derive(Default)]
pub struct Applied {
    marks: Mutex<HashMap<String, Mark>>,
}

/// A fingerprint of the object we would send. Not a security measure: it
/// only tells "the same desired object as last time" from "a different one"
/// within one process.
pub fn fingerprint(desired: &Deployment) -> u64 {
    let mut hasher = DefaultHasher::new();
    serde_json::to_string(desired)
        .unwrap_or_default()
        .hash(&mut hasher);
    hasher.finish()
}

/// Whether every label and annotation of `desired` is on `live` unchanged.
fn marks_kept(desired: &Deployment, live: &Deployment) -> bool {
    let subset = |want: &std::collections::BTreeMap<String, String>,
                  have: &std::collections::BTreeMap<String, String>| {
        want.iter().all(|(k, v)| have.get(k) == Some(v))
    };
    subset(desired.labels(), live.labels()) && subset(desired.annotations(), live.annotations())
}

impl Applied {
    /// Records an apply that `written` (the API server's answer) reflects.
    pub fn record(&self, written: &Deployment, fingerprint: u64) {
        let (Some(uid), Some(generation)) = (written.uid(), written.metadata.generation) else {
            return;
        };
        if let Ok(mut marks) = self.marks.lock() {
            marks.insert(
                uid,
                Mark {
                    generation,
                    fingerprint,
                },
            );
        }
    }

    /// Whether `live` is still exactly what applying `desired` left.
    pub fn in_sync(&self, live: &Deployment, desired: &Deployment, fingerprint: u64) -> bool {
        let (Some(uid), Some(generation)) = (live.uid(), live.metadata.generation) else {
            return false;
        };
        let recorded = self
            .marks
            .lock()
            .ok()
            .and_then(|marks| marks.get(&uid).copied());
        recorded
            == Some(Mark {
                generation,
                fingerprint,
            })
            && marks_kept(desired, live)
    }

    /// Forgets a Deployment that is gone (cached or as read: only its uid
    /// counts).
    pub fn forget(&self, deployment: &impl kube::Resource) {
        if let (Some(uid), Ok(mut marks)) = (deployment.uid(), self.marks.lock()) {
            marks.remove(&uid);
        }
    }

    /// How many Deployments are remembered.
    pub fn len(&self) -> usize {
        self.marks.lock().map(|m| m.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(uid: &str, generation: i64, labels: &[(&str, &str)]) -> Deployment {
        let labels: serde_json::Map<String, serde_json::Value> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
            .collect();
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "fd", "namespace": "risk", "uid": uid, "generation": generation, "labels": labels},
            "spec": {"selector": {}, "template": {}},
        }))
        .unwrap_or_else(|e| panic!("fixture: {e}"))
    }

    #[test]
    fn in_sync_only_while_generation_fingerprint_and_labels_hold() {
        let applied = Applied::default();
        let desired = deployment("", 0, &[("app.kubernetes.io/managed-by", "modelgate")]);
        let print = fingerprint(&desired);
        let live = deployment("u1", 3, &[("app.kubernetes.io/managed-by", "modelgate")]);
        assert!(!applied.in_sync(&live, &desired, print), "nothing recorded");

        applied.record(&live, print);
        assert!(applied.in_sync(&live, &desired, print));
        assert!(
            !applied.in_sync(
                &deployment("u1", 4, &[("app.kubernetes.io/managed-by", "modelgate")]),
                &desired,
                print
            ),
            "someone changed the spec"
        );
        assert!(
            !applied.in_sync(&deployment("u1", 3, &[]), &desired, print),
            "someone removed a label"
        );
        assert!(
            !applied.in_sync(&live, &desired, print ^ 1),
            "the desired object changed"
        );
        assert!(
            !applied.in_sync(
                &deployment("u2", 3, &[("app.kubernetes.io/managed-by", "modelgate")]),
                &desired,
                print
            ),
            "a re-created Deployment"
        );

        applied.forget(&live);
        assert!(applied.is_empty());
    }
}
