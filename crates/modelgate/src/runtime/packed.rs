//! An approval as the operator's cache holds it: metadata as read, the spec
//! and the status compressed.
//!
//! The cache holds every approval the operator watches, and most of an
//! approval is its status (history, reviews, progress, observed gates): as
//! Rust values an approved one took about 7 KB, as compact JSON about 5 KB,
//! deflated about 1.5 KB, and deflated against a dictionary of typical
//! objects (`super::codec`) a few hundred bytes. A reconcile reads one approval at a time,
//! so the spec and status are unpacked when one is read. What is read
//! across the whole cache (the phase, the expiry and the overdue gates, for
//! gauges) stays unpacked, and so does the pinned policy, which equal
//! approvals share (see [`super::watches::SharedPolicies`]).

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::Resource;
use serde::{Deserialize, Deserializer};

use crate::api::approval::{ApprovalPhase, ModelApproval, ModelApprovalStatus};
use crate::api::policy::PinnedPolicy;
use crate::runtime::codec::{PackError, deflate, inflate};

/// An approval as cached, its spec and status packed: a malformed one is kept (as
/// its error) so that its reconcile can say what is wrong instead of the
/// watch failing.
pub type CachedApproval = kube::core::DeserializeGuard<PackedApproval>;

/// A ModelApproval with its spec and status packed. Its kind, group and
/// version are the ModelApproval's, so it is watched and cached like one.
#[derive(Clone, Debug, PartialEq)]
pub struct PackedApproval {
    pub metadata: ObjectMeta,
    /// The spec as JSON, deflated: nothing reads it across the cache.
    spec: Box<[u8]>,
    pub status: Option<PackedStatus>,
}

/// A status: what is read across the cache, and the rest deflated.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PackedStatus {
    pub phase: Option<ApprovalPhase>,
    pub expires_at: Option<Time>,
    /// The gates the approval is overdue on (their condition types).
    pub overdue: Box<[String]>,
    /// Kept out of the deflated part so that equal pins share one copy.
    pub policy: Option<Arc<PinnedPolicy>>,
    /// The status without its policy, as JSON, deflated.
    deflated: Box<[u8]>,
}

impl PackedStatus {
    /// Packs `status`.
    pub fn pack(mut status: ModelApprovalStatus) -> Result<Self, PackError> {
        let policy = status.policy.take();
        let deflated = deflate(&status)?;
        Ok(PackedStatus {
            phase: status.phase,
            expires_at: status.expires_at,
            overdue: status.overdue.into_iter().map(|o| o.gate).collect(),
            policy,
            deflated,
        })
    }

    /// The whole status again.
    pub fn unpack(&self) -> Result<ModelApprovalStatus, PackError> {
        let mut status: ModelApprovalStatus = inflate(&self.deflated)?;
        status.policy = self.policy.clone();
        Ok(status)
    }

    /// How many bytes the deflated part takes.
    pub fn deflated_len(&self) -> usize {
        self.deflated.len()
    }
}

impl PackedApproval {
    /// Packs `approval`'s spec and status.
    pub fn pack(approval: ModelApproval) -> Result<Self, PackError> {
        Ok(PackedApproval {
            metadata: approval.metadata,
            spec: deflate(&approval.spec)?,
            status: approval.status.map(PackedStatus::pack).transpose()?,
        })
    }

    /// The whole approval again.
    pub fn unpack(&self) -> Result<ModelApproval, PackError> {
        Ok(ModelApproval {
            metadata: self.metadata.clone(),
            spec: inflate(&self.spec)?,
            status: self.status.as_ref().map(PackedStatus::unpack).transpose()?,
        })
    }

    /// The phase, without unpacking.
    pub fn phase(&self) -> Option<ApprovalPhase> {
        self.status.as_ref()?.phase
    }
}

/// The whole approval of a cache entry, when it can be read: a malformed
/// approval cannot (its reconcile says why), and an entry that does not
/// unpack is a bug, logged, and counts as unreadable too.
pub fn readable(cached: &CachedApproval) -> Option<ModelApproval> {
    let packed = cached.0.as_ref().ok()?;
    match packed.unpack() {
        Ok(approval) => Some(approval),
        Err(e) => {
            tracing::error!(name = packed.metadata.name.as_deref(), error = %e, "cached approval does not unpack");
            None
        }
    }
}

impl<'de> Deserialize<'de> for PackedApproval {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let approval = ModelApproval::deserialize(deserializer)?;
        PackedApproval::pack(approval).map_err(serde::de::Error::custom)
    }
}

impl Resource for PackedApproval {
    resource_as!(ModelApproval);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn approved() -> ModelApproval {
        serde_json::from_str(include_str!("../../testdata/approved-approval.json"))
            .unwrap_or_else(|e| panic!("the fixture is a ModelApproval: {e}"))
    }

    #[test]
    fn a_packed_approval_unpacks_to_what_was_read() {
        let approval = approved();
        let packed =
            PackedApproval::pack(approval.clone()).unwrap_or_else(|e| panic!("packs: {e}"));
        assert_eq!(
            packed.unpack().unwrap_or_else(|e| panic!("unpacks: {e}")),
            approval
        );
        let status = packed
            .status
            .as_ref()
            .unwrap_or_else(|| panic!("no status"));
        assert_eq!(status.phase, Some(ApprovalPhase::Approved));
        assert!(
            status.policy.is_some(),
            "the policy stays out of the deflated part"
        );
        let json = serde_json::to_vec(&approval.status)
            .unwrap_or_else(|e| panic!("serialises: {e}"))
            .len();
        assert!(
            status.deflated_len() * 2 < json,
            "{} deflated bytes for {json} bytes of JSON",
            status.deflated_len()
        );
    }

    #[test]
    fn a_pending_status_packs_to_a_few_dozen_bytes_with_the_dictionary() {
        // Another approval than the typical ones: other names and times.
        let status: ModelApprovalStatus = serde_json::from_value(serde_json::json!({
            "artifact": {"message": "not an OCI artifact: the pods are told its URI and digest, and nothing makes them load these bytes", "seal": "Unsealed"},
            "conditions": [
                {"lastTransitionTime": "2027-01-02T10:11:12Z", "message": "waiting on TechnicalReview, FairnessReview, SecurityReview, LegalReview, BusinessReview", "observedGeneration": 3, "reason": "AwaitingReview", "status": "Unknown", "type": "Approved"},
                {"lastTransitionTime": "2027-01-02T10:11:12Z", "message": "every reviewer condition is well formed", "observedGeneration": 3, "reason": "WellFormed", "status": "True", "type": "ReviewsValid"},
            ],
            "gatesPassed": "0/5",
            "observedGates": [
                {"gate": "TechnicalReview", "status": "Unknown"}, {"gate": "FairnessReview", "status": "Unknown"},
                {"gate": "SecurityReview", "status": "Unknown"}, {"gate": "LegalReview", "status": "Unknown"},
                {"gate": "BusinessReview", "status": "Unknown"},
            ],
            "observedGeneration": 3,
            "phase": "Pending",
            "waitingOn": "TechnicalReview, FairnessReview, SecurityReview, LegalReview, BusinessReview",
        }))
        .unwrap_or_else(|e| panic!("a status: {e}"));
        let json = serde_json::to_vec(&status).unwrap_or_else(|e| panic!("serialises: {e}"));
        let packed = PackedStatus::pack(status.clone()).unwrap_or_else(|e| panic!("packs: {e}"));
        assert!(
            packed.deflated_len() < 100,
            "{} bytes for {} of JSON",
            packed.deflated_len(),
            json.len()
        );
        assert_eq!(
            packed.unpack().unwrap_or_else(|e| panic!("unpacks: {e}")),
            status
        );
    }

    #[test]
    fn statuses_of_every_size_pack_and_unpack_on_one_thread() {
        // The thread's codec is reused: each pack must start afresh, and
        // a status larger than the kept buffer must still round-trip.
        // Messages of scattered letters compress badly, so that the
        // compressor's output outgrows its first buffer too.
        let scattered = |n: usize, seed: usize| -> String {
            (0..n)
                .map(|k| char::from(b'a' + ((k * 2_654_435_761 + seed * 40_503) >> 7) as u8 % 26))
                .collect()
        };
        let base = approved();
        for letters in [0, 1, 40, 40_000] {
            let mut approval = base.clone();
            if let Some(status) = approval.status.as_mut() {
                for (i, condition) in status.conditions.iter_mut().enumerate() {
                    condition.message = Some(scattered(letters, i));
                }
            }
            let packed =
                PackedApproval::pack(approval.clone()).unwrap_or_else(|e| panic!("packs: {e}"));
            let again =
                PackedApproval::pack(approval.clone()).unwrap_or_else(|e| panic!("packs: {e}"));
            assert_eq!(packed, again, "the same status packs the same way");
            assert_eq!(
                packed.unpack().unwrap_or_else(|e| panic!("unpacks: {e}")),
                approval
            );
        }
    }

    #[test]
    fn a_truncated_status_is_an_error_not_a_hang() {
        let packed = PackedApproval::pack(approved()).unwrap_or_else(|e| panic!("packs: {e}"));
        let mut status = packed.status.unwrap_or_else(|| panic!("no status"));
        let half = status.deflated.len() / 2;
        status.deflated = status.deflated[..half].into();
        assert!(matches!(status.unpack(), Err(PackError::Truncated)));
        status.deflated = Box::new([]);
        assert!(status.unpack().is_err());
    }

    #[test]
    fn a_packed_approval_is_read_from_the_api_servers_json() {
        let json = include_str!("../../testdata/approved-approval.json");
        let packed: PackedApproval =
            serde_json::from_str(json).unwrap_or_else(|e| panic!("reads: {e}"));
        assert_eq!(
            packed.metadata.name.as_deref(),
            approved().metadata.name.as_deref()
        );
        assert_eq!(packed.phase(), Some(ApprovalPhase::Approved));
        // A malformed one is refused like a ModelApproval (and kept by the
        // cache's guard as its error).
        let bad = r#"{"apiVersion":"modelgate.io/v1alpha1","kind":"ModelApproval","metadata":{"name":"x"},"spec":{}}"#;
        assert!(serde_json::from_str::<PackedApproval>(bad).is_err());
    }

    #[test]
    fn it_is_watched_as_a_model_approval() {
        assert_eq!(PackedApproval::kind(&()), "ModelApproval");
        assert_eq!(
            PackedApproval::api_version(&()),
            ModelApproval::api_version(&())
        );
        assert_eq!(PackedApproval::plural(&()), "modelapprovals");
    }
}
