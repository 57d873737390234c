//! The operator's own last write of each approval, kept until the watch
//! cache has caught up with it: the status, and (with its own overlay) the
//! in-use finalizer.
//!
//! A reconcile reads the approval from the cache. When a reviewer's change
//! arrives while the operator's previous write is still on its way back
//! through the watch, the next reconcile would see the reviewer's change on
//! top of the operator's *old* fields and record the same transitions again
//! (a second Event for one decision). Overlaying the last write on such a
//! stale read keeps every transition recorded exactly once.
//!
//! An entry lives only until the watch delivers the write (see
//! [`Written::observed`]), so the map holds the writes in flight, not one
//! status per approval: on a cold start with thousands of approvals the
//! reconciles of the echoes queue behind the first reconciles of all the
//! others, and keeping entries until then held a copy of every status.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::api::approval::ModelApprovalStatus;
use crate::api::gates::is_operator_condition;
use crate::runtime::packed::{CachedApproval, PackedStatus};
use kube::runtime::watcher::Event;

/// Last writes by object uid: (resourceVersion produced, what was written).
/// The value is boxed so that the map's table stays small whatever its peak
/// size was. Statuses are kept packed like the cache's: on a cold start
/// thousands of writes are in flight at once.
pub struct Written<T = PackedStatus> {
    inner: Mutex<HashMap<String, (u64, Box<T>)>>,
    /// During a relist, the revisions listed of the approvals with a write
    /// in flight: the cache shows the relist only once it is complete, so
    /// they end only then.
    relisted: Mutex<Option<Vec<(String, u64)>>>,
}

impl<T> Default for Written<T> {
    fn default() -> Self {
        Written {
            inner: Mutex::default(),
            relisted: Mutex::default(),
        }
    }
}

/// resourceVersions are etcd revisions: integers that only grow. Anything
/// else (another storage) disables the overlay rather than guess.
fn revision(rv: Option<&str>) -> Option<u64> {
    rv?.parse().ok()
}

impl<T: Clone> Written<T> {
    /// Remembers what a write produced.
    pub fn record(&self, uid: &str, resource_version: Option<&str>, value: T) {
        if let (Some(rv), Ok(mut inner)) = (revision(resource_version), self.inner.lock()) {
            inner.insert(uid.to_string(), (rv, Box::new(value)));
        }
    }

    /// The watch has delivered revision `resource_version` of `uid`: a
    /// write it includes is no longer needed.
    pub fn observed(&self, uid: &str, resource_version: Option<&str>) {
        let (Some(seen), Ok(mut inner)) = (revision(resource_version), self.inner.lock()) else {
            return;
        };
        if inner.get(uid).is_some_and(|(written, _)| seen >= *written) {
            inner.remove(uid);
            // Give back the table a burst of writes grew.
            if inner.capacity() > 64 && inner.len() < inner.capacity() / 4 {
                inner.shrink_to_fit();
            }
        }
    }

    /// Our last write when a read at `resource_version` is older than it;
    /// None when the read is at least as new (the entry is then dropped) or
    /// there is none.
    pub fn ahead_of(&self, uid: &str, resource_version: Option<&str>) -> Option<T> {
        let mut inner = self.inner.lock().ok()?;
        let seen = revision(resource_version)?;
        let (written_rv, written) = inner.get(uid)?;
        if seen >= *written_rv {
            inner.remove(uid);
            return None;
        }
        Some(written.as_ref().clone())
    }

    /// The approval watch's event, seen after the cache took it: an Apply
    /// or a Delete ends the write it includes (a deleted approval's last
    /// revision is at least that of any write it took); a relist's
    /// listings end theirs once the relist is complete.
    pub fn observed_event(&self, event: &Event<CachedApproval>) {
        let uid_rv = |a: &CachedApproval| {
            let meta = kube::Resource::meta(a);
            (
                meta.uid.clone().unwrap_or_default(),
                meta.resource_version.clone(),
            )
        };
        let Ok(mut relisted) = self.relisted.lock() else {
            return;
        };
        match event {
            Event::Apply(a) | Event::Delete(a) => {
                let (uid, rv) = uid_rv(a);
                self.observed(&uid, rv.as_deref());
            }
            Event::Init => *relisted = Some(Vec::new()),
            Event::InitApply(a) => {
                let (uid, rv) = uid_rv(a);
                let held = self.inner.lock().is_ok_and(|i| i.contains_key(&uid));
                if let (Some(listed), true, Some(rv)) =
                    (relisted.as_mut(), held, revision(rv.as_deref()))
                {
                    listed.push((uid, rv));
                }
            }
            Event::InitDone => {
                for (uid, rv) in relisted.take().unwrap_or_default() {
                    self.observed(&uid, Some(&rv.to_string()));
                }
            }
        }
    }

    /// How many writes are still ahead of the cache.
    pub fn pending(&self) -> usize {
        self.inner.lock().map(|i| i.len()).unwrap_or(0)
    }
}

impl Written<PackedStatus> {
    /// Remembers the status a write produced. A status that does not pack
    /// (a bug) is not remembered: a stale read then decides from the cache.
    pub fn record_status(
        &self,
        uid: &str,
        resource_version: Option<&str>,
        status: ModelApprovalStatus,
    ) {
        match PackedStatus::pack(status) {
            Ok(packed) => self.record(uid, resource_version, packed),
            Err(e) => tracing::error!(error = %e, "written status does not pack"),
        }
    }

    /// The status to decide from: the cached one when it is at least as new
    /// as the last write (the entry is then dropped), else the last written
    /// operator fields with what people write from the cache: their
    /// conditions, reviews and measurements. A write never carries reviews
    /// or measurements, so without the cache's a quorum or rule gate would
    /// be decided from none.
    pub fn current(
        &self,
        uid: &str,
        resource_version: Option<&str>,
        cached: Option<&ModelApprovalStatus>,
    ) -> Option<ModelApprovalStatus> {
        let unpacked = self
            .ahead_of(uid, resource_version)
            .map(|written| written.unpack());
        let mut merged = match unpacked {
            Some(Ok(written)) => written,
            None => return cached.cloned(),
            Some(Err(e)) => {
                tracing::error!(error = %e, "written status does not unpack; deciding from the cache");
                return cached.cloned();
            }
        };
        merged
            .conditions
            .retain(|c| is_operator_condition(&c.type_));
        if let Some(cached) = cached {
            let reviewers = cached
                .conditions
                .iter()
                .filter(|c| !is_operator_condition(&c.type_));
            merged.conditions.extend(reviewers.cloned());
            merged.reviews = cached.reviews.clone();
            merged.measurements = cached.measurements.clone();
        }
        Some(merged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{approval::ApprovalPhase, condition::Condition};

    fn status(phase: ApprovalPhase, conditions: &[(&str, &str)]) -> ModelApprovalStatus {
        ModelApprovalStatus {
            phase: Some(phase),
            conditions: conditions
                .iter()
                .map(|(t, s)| Condition::new(t, s, "R", "m"))
                .collect(),
            ..ModelApprovalStatus::default()
        }
    }

    #[test]
    fn a_stale_read_gets_the_last_write_with_the_newest_reviews() {
        let w = Written::default();
        w.record_status(
            "u",
            Some("10"),
            status(ApprovalPhase::Approved, &[("Approved", "True")]),
        );
        // The cache still holds revision 9, plus a reviewer's newer gate.
        let cached = status(
            ApprovalPhase::Pending,
            &[("Approved", "Unknown"), ("SecurityReview", "False")],
        );
        let current = w.current("u", Some("9"), Some(&cached)).unwrap_or_default();
        assert_eq!(current.phase, Some(ApprovalPhase::Approved));
        let types: Vec<(&str, &str)> = current
            .conditions
            .iter()
            .map(|c| (c.type_.as_str(), c.status.as_str()))
            .collect();
        assert_eq!(types, [("Approved", "True"), ("SecurityReview", "False")]);
        assert_eq!(w.pending(), 1);
        // Once the cache has caught up, the cache is the truth again.
        let fresh = status(ApprovalPhase::Rejected, &[]);
        assert_eq!(w.current("u", Some("12"), Some(&fresh)), Some(fresh));
        assert_eq!(w.pending(), 0);
        // The watch delivering the write (or anything newer) ends the
        // overlay without a reconcile; an older revision does not.
        w.record_status("u", Some("20"), status(ApprovalPhase::Approved, &[]));
        w.observed("u", Some("19"));
        assert_eq!(w.pending(), 1);
        w.observed("u", Some("20"));
        assert_eq!(w.pending(), 0);
        // Opaque resourceVersions disable the overlay.
        w.record_status("v", Some("abc"), status(ApprovalPhase::Approved, &[]));
        assert_eq!(w.pending(), 0);
    }

    /// A relist shows in the cache only once complete: its listing of a
    /// write ends the write's entry then, not before.
    #[test]
    fn a_relisted_write_ends_when_the_relist_is_complete() {
        let w = Written::default();
        w.record_status("u", Some("10"), status(ApprovalPhase::Approved, &[]));
        let listed: CachedApproval = serde_json::from_value(serde_json::json!({
            "apiVersion": "modelgate.io/v1alpha1", "kind": "ModelApproval",
            "metadata": {"name": "v1", "namespace": "risk", "uid": "u", "resourceVersion": "10"},
            "spec": {"model": {"name": "m", "version": "1", "uri": "s3://m",
                               "digest": format!("sha256:{}", "0".repeat(64))}},
        }))
        .unwrap_or_else(|e| panic!("fixture: {e}"));
        w.observed_event(&Event::Init);
        w.observed_event(&Event::InitApply(listed));
        assert_eq!(w.pending(), 1, "the cache does not show the relist yet");
        w.observed_event(&Event::InitDone);
        assert_eq!(w.pending(), 0);
    }

    /// A stale read decided over the last write keeps the reviews and
    /// measurements people wrote: the write carries none, and a quorum or a
    /// rule gate counted from none would fall back to pending.
    #[test]
    fn a_stale_read_keeps_the_cached_reviews_and_measurements() {
        let w = Written::default();
        w.record_status("u", Some("10"), status(ApprovalPhase::Approved, &[]));
        let cached: ModelApprovalStatus = serde_json::from_value(serde_json::json!({
            "phase": "Pending",
            "reviews": [
                {"gate": "SecurityReview", "reviewer": "ana", "decision": "Approve"},
                {"gate": "SecurityReview", "reviewer": "ben", "decision": "Approve"},
            ],
            "measurements": [{"name": "auc", "value": 0.95, "measuredBy": "eval"}],
        }))
        .unwrap_or_else(|e| panic!("fixture: {e}"));
        let current = w.current("u", Some("9"), Some(&cached)).unwrap_or_default();
        assert_eq!(
            current.phase,
            Some(ApprovalPhase::Approved),
            "the overlay applied"
        );
        let reviewers: Vec<&str> = current
            .reviews
            .iter()
            .map(|r| r.reviewer.as_str())
            .collect();
        assert_eq!(reviewers, ["ana", "ben"]);
        let measured: Vec<&str> = current
            .measurements
            .iter()
            .map(|m| m.name.as_str())
            .collect();
        assert_eq!(measured, ["auc"]);
    }
}
