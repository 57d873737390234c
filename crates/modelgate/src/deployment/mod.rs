//! The ModelDeployment controller: `desired` builds the Deployment (pure),
//! `decide` chooses hold, release or scale-to-zero and the status (pure),
//! `applied` remembers the last apply so that re-checks write nothing, `index` maps approvals to the deployments that depend on them, and
//! `controller` watches, applies and announces.

pub mod applied;
pub mod controller;
pub mod decide;
pub mod desired;
pub mod index;
pub mod orphans;
pub mod replicasets;
