//! The approval travels with the artifact: every signed record of an OCI
//! approval is attached to the model in its registry as an OCI 1.1
//! referrer (`referrer` builds it, pure; `publish` pushes it and keeps
//! count in the approval's status), so that any cluster, or anyone with
//! the public keys, can check it from the registry alone.

pub mod publish;
pub mod referrer;
