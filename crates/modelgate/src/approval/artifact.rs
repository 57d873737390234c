//! The approval's artifact as it stands: kept from its status once the
//! registry has answered, looked up otherwise. A tag is never followed: the
//! look-up is by the approved digest, so moving a tag changes nothing.

use crate::api::approval::{
    ApprovalPhase, ModelApprovalSpec, ModelApprovalStatus, ResolvedArtifact, Seal,
};
use crate::api::oci;
use crate::artifact::registry::{Registry, unresolved};

/// Why a non-OCI artifact is unsealed, in its status.
const UNSEALED: &str = "not an OCI artifact: the pods are told its URI and digest, and nothing makes them load these bytes";

/// What `status.artifact` should say; one registry request at most, and
/// none once the registry has answered or the approval is decided against.
pub async fn standing(
    registry: Option<&Registry>,
    spec: &ModelApprovalSpec,
    status: Option<&ModelApprovalStatus>,
) -> ResolvedArtifact {
    let model = &spec.model;
    let Some(uri) = oci::parse(&model.uri) else {
        return if oci::is_oci(&model.uri) {
            unresolved(&model.uri, oci::MESSAGE.to_string())
        } else {
            ResolvedArtifact {
                seal: Seal::Unsealed,
                message: Some(UNSEALED.into()),
                ..ResolvedArtifact::default()
            }
        };
    };
    let pinned = uri.pinned(&model.digest);
    let known = status.and_then(|s| s.artifact.as_ref());
    let settled = matches!(
        status.and_then(|s| s.phase),
        Some(ApprovalPhase::Rejected | ApprovalPhase::Expired)
    );
    match known {
        Some(a)
            if a.reference.as_deref() == Some(pinned.as_str())
                && (a.seal == Seal::Sealed || settled) =>
        {
            a.clone()
        }
        _ => match registry {
            Some(registry) => registry.resolve(&uri, &model.digest).await,
            None => unresolved(
                &pinned,
                "the operator was started without a registry client".into(),
            ),
        },
    }
}
