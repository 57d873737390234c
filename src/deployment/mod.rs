//! The ModelDeployment controller: `desired` builds the Deployment (pure),
//! `decide` chooses hold, release or scale-to-zero and the status (pure),
//! `index` maps approvals to the deployments that depend on them, and
//! `controller` watches, applies and announces.

pub mod controller;
pub mod decide;
pub mod desired;
pub mod index;
