//! The ModelApproval controller: `decide` (pure) turns the reviewers' gates
//! into the operator's status, from how each gate stands (`gates`) and the
//! reviews and measurements not yet recorded (`inputs`), both kept in the
//! status `history`; `controller` watches, applies and announces.

pub mod artifact;
pub mod breakglass;
pub mod controller;
pub mod deadlines;
pub mod decide;
pub mod gates;
pub mod history;
pub mod identity;
pub mod in_use;
pub mod inputs;
pub mod release;
pub mod written;
