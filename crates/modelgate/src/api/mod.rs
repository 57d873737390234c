//! The API types of `modelgate.io/v1alpha1`: one module per kind, the gates,
//! the condition shape they share, and a reviewer's gate write.

// kube-derive takes several `printcolumn(type_ = …)` entries in one
// attribute; clippy mistakes them for duplicates.
#![allow(clippy::duplicated_attributes)]

pub mod approval;
pub mod breakglass;
pub mod condition;
pub mod deployment;
pub mod fleet;
pub mod gates;
pub mod oci;
pub mod policy;
pub mod record;
pub mod review;
pub mod runtime;
pub mod valid_for;

/// The API group of both kinds.
pub const GROUP: &str = "modelgate.io";
