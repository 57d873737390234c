//! The ModelDeployment controller: `desired` builds the Deployment (pure),
//! `rollout` plans what to do with it (release, hold, freeze, scale to zero
//! or roll back; pure), `progress` decides the status (pure), `applied`
//! remembers the last apply so that re-checks write nothing, `apply` makes
//! the writes a plan calls for, `index` maps
//! approvals to the deployments that depend on them, `sealing` keeps what
//! the Sealed condition reads and the egress policy it owns, and
//! `controller` watches, applies and announces.

pub mod applied;
pub mod apply;
pub mod controller;
pub mod desired;
pub mod handoff;
pub mod index;
pub mod orphans;
pub mod progress;
pub mod replicasets;
pub mod rollout;
pub mod sealing;
