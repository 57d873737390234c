//! modelgate: a Kubernetes operator that holds every model rollout until a
//! formal, five-gate approval of the exact artifact has passed.
//!
//! The binary is thin: `modelgate` (the controller, `modelgate crd` and
//! `modelgate static-admission`) calls into this library. The reviewers'
//! plugin and its web console are the `kubectl-modelgate` crate, so nothing
//! of the console's web stack is linked here.

#![forbid(unsafe_code)]

pub mod api;
pub mod approval;
pub mod artifact;
pub mod context;
pub mod crd;
pub mod deployment;
pub mod error;
pub mod events;
#[cfg(test)]
mod fixtures;
pub mod fleet;
pub mod operator;
pub mod policy;
pub mod records;
pub mod runtime;
pub mod static_admission;
pub mod sync;
pub mod transition;
pub mod vocabulary;
