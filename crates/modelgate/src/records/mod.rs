//! Records that cannot be quietly changed: the hash chain over an
//! approval's history, the signing key, the signed ApprovalRecords the
//! operator writes on every phase change, and their offline verification.
//! docs/records.md describes the formats.

pub mod chain;
pub mod checkpoint;
pub mod envelope;
pub mod key;
pub mod statement;
pub mod verify;
pub mod writer;

/// Whether the API server refused because the namespace is being deleted.
pub fn terminating(status: &kube::core::Status) -> bool {
    status
        .details
        .as_ref()
        .is_some_and(|d| d.causes.iter().any(|c| c.reason == "NamespaceTerminating"))
}
