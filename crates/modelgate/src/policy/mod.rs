//! Approval policies: which rules pin into an approval (`pin`), how a
//! quorum of reviews adds up (`quorum`), how a rule over measurements is
//! judged (`rule`), and the controller that reports whether a policy's
//! rules compile and whether its evaluators are out of the model owners'
//! reach (`controller`, `evaluators`).

pub mod controller;
pub mod evaluators;
pub mod pin;
pub mod quorum;
pub mod rule;
