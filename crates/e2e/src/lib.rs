//! The shared harness of the integration tests: a real control plane (the
//! one `KUBECONFIG` names, or the local one that `hack/cluster.sh up`
//! starts), the CRDs installed, and a namespace per test. One module per
//! concern; each test file names the modules it uses.

pub mod argocd;
pub mod breakglass;
pub mod browser;
pub mod catalog;
pub mod chart;
pub mod cluster;
pub mod fixtures;
pub mod operator;
pub mod paths;
pub mod plugin;
pub mod pods;
pub mod refusal;
pub mod registry;
pub mod users;
pub mod wait;
