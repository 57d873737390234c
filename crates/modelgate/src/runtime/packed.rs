//! An approval as the operator's cache holds it: metadata and spec as read,
//! the status compressed.
//!
//! The cache holds every approval the operator watches, and most of an
//! approval is its status (history, reviews, progress, observed gates): as
//! Rust values an approved one took about 7 KB, as compact JSON about 5 KB,
//! deflated about 1.5 KB. A reconcile reads one approval at a time, so the
//! status is unpacked when one is read. What is read across the whole cache
//! (the phase, the expiry and the overdue gates, for gauges) stays unpacked,
//! and so does the pinned policy, which equal approvals share (see
//! [`super::watches::SharedPolicies`]).

use std::borrow::Cow;
use std::io::Read;
use std::sync::Arc;

use flate2::Compression;
use flate2::read::DeflateDecoder;
use flate2::write::DeflateEncoder;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::Resource;
use serde::{Deserialize, Deserializer};

use crate::api::approval::{ApprovalPhase, ModelApproval, ModelApprovalSpec, ModelApprovalStatus};
use crate::api::policy::PinnedPolicy;

/// Why a packed status could not be made or read back. Both mean a bug or
/// memory corruption, never bad input: the status was read from JSON first.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error("cannot serialise the status: {0}")]
    Json(#[from] serde_json::Error),
    #[error("cannot (de)compress the status: {0}")]
    Deflate(#[from] std::io::Error),
}

impl From<PackError> for crate::error::Error {
    fn from(e: PackError) -> Self {
        crate::error::Error::Unavailable(format!("the cached approval cannot be unpacked: {e}"))
    }
}

/// An approval as cached, its status packed: a malformed one is kept (as
/// its error) so that its reconcile can say what is wrong instead of the
/// watch failing.
pub type CachedApproval = kube::core::DeserializeGuard<PackedApproval>;

/// A ModelApproval with its status packed. Its kind, group and version are
/// the ModelApproval's, so it is watched and cached like one.
#[derive(Clone, Debug, PartialEq)]
pub struct PackedApproval {
    pub metadata: ObjectMeta,
    pub spec: ModelApprovalSpec,
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
        // Fast compression: statuses are packed on every watch event, and
        // the best level saves only a tenth more.
        let mut encoder = DeflateEncoder::new(Vec::new(), Compression::fast());
        serde_json::to_writer(&mut encoder, &status)?;
        let deflated = encoder.finish()?.into_boxed_slice();
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
        let mut json = Vec::with_capacity(self.deflated.len() * 4);
        DeflateDecoder::new(&self.deflated[..]).read_to_end(&mut json)?;
        let mut status: ModelApprovalStatus = serde_json::from_slice(&json)?;
        status.policy = self.policy.clone();
        Ok(status)
    }

    /// How many bytes the deflated part takes.
    pub fn deflated_len(&self) -> usize {
        self.deflated.len()
    }
}

impl PackedApproval {
    /// Packs `approval`'s status.
    pub fn pack(approval: ModelApproval) -> Result<Self, PackError> {
        Ok(PackedApproval {
            metadata: approval.metadata,
            spec: approval.spec,
            status: approval.status.map(PackedStatus::pack).transpose()?,
        })
    }

    /// The whole approval again.
    pub fn unpack(&self) -> Result<ModelApproval, PackError> {
        Ok(ModelApproval {
            metadata: self.metadata.clone(),
            spec: self.spec.clone(),
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
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;

    fn kind(dt: &()) -> Cow<'_, str> {
        ModelApproval::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        ModelApproval::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        ModelApproval::version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        ModelApproval::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
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
