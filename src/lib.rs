//! modelgate: a Kubernetes operator that holds every model rollout until a
//! formal, five-gate approval of the exact artifact has passed.
//!
//! The binaries are thin: `modelgate` (the controller, and `modelgate crd`)
//! and `kubectl-modelgate` (the reviewers' plugin) call into this library.

#![forbid(unsafe_code)]

pub mod api;
pub mod approval;
pub mod audit;
pub mod cli;
pub mod context;
pub mod crd;
pub mod deployment;
pub mod error;
pub mod operator;
pub mod policy;
pub mod records;
pub mod runtime;
pub mod static_admission;
pub mod vocabulary;
