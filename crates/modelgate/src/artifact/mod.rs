//! Models as OCI artifacts: looking them up in their registry, mounting
//! them into the pods by digest, and judging whether a pod is sealed.

pub mod credentials;
pub mod mount;
pub mod reach;
pub mod registry;
pub mod seal;
