//! The ModelApproval controller: `decide` (pure) turns the reviewers' gates
//! into the operator's status; `controller` watches, applies and announces.

pub mod controller;
pub mod decide;
pub mod gates;
pub mod in_use;
pub mod inputs;
pub mod written;
