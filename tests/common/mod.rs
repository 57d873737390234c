//! The shared harness of the integration tests: a real control plane (the
//! one `KUBECONFIG` names, or the local one that `hack/cluster.sh up`
//! starts), the CRDs installed, and a namespace per test. One module per
//! concern; every test file reaches all of it through `use common::*`.
#![allow(dead_code)]

pub mod argocd;
pub mod browser;
pub mod chart;
pub mod cluster;
pub mod fixtures;
pub mod operator;
pub mod plugin;
pub mod pods;
pub mod users;
pub mod wait;

// Each test binary uses part of the harness; the rest is not dead.
#[allow(unused_imports)]
pub use argocd::*;
#[allow(unused_imports)]
pub use browser::*;
#[allow(unused_imports)]
pub use chart::*;
#[allow(unused_imports)]
pub use cluster::*;
#[allow(unused_imports)]
pub use fixtures::*;
#[allow(unused_imports)]
pub use operator::*;
#[allow(unused_imports)]
pub use plugin::*;
#[allow(unused_imports)]
pub use pods::*;
#[allow(unused_imports)]
pub use users::*;
#[allow(unused_imports)]
pub use wait::*;
