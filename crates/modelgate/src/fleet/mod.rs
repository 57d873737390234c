//! The approval travels with the artifact: every signed record of an OCI
//! approval is attached to the model in its registry as an OCI 1.1
//! referrer (`referrer` builds it, pure; `publish` pushes it and keeps
//! count in the approval's status), so that any cluster, or anyone with
//! the public keys, can check it from the registry alone.
//!
//! A cluster that trusts the publisher (a TrustedPublisher) honours those
//! records for an approval that imports them: `read` reads and checks
//! them, `import` does so once per resync period beside the workers, and
//! `mirror` (pure) decides what is honoured.

pub mod honoured;
pub mod import;
pub mod mirror;
pub mod publish;
pub mod read;
pub mod referrer;
