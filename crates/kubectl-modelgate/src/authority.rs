//! Who reviews each gate: the admission policies' authority params, found
//! where the chart installed them. `why`, `audit export` and the console
//! read them.

use k8s_openapi::api::admissionregistration::v1::ValidatingAdmissionPolicyBinding;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;

use super::Session;
use modelgate::api::gates::Gate;

/// The binding whose paramRef names the authority params.
const AUTHORITY_BINDING: &str = "modelgate-approval-authority";
/// The params ConfigMap.
const AUTHORITY_PARAMS: &str = "modelgate-authority";

/// The params key that names a gate's reviewer group.
fn params_key(gate: Gate) -> String {
    format!("{}Reviewers", gate.short_name())
}

/// The namespace of the authority params: as given, else as the policy
/// binding says (the chart installs into any namespace), else the default.
pub async fn namespace(session: &Session, given: Option<&str>) -> String {
    if let Some(ns) = given {
        return ns.to_string();
    }
    let bindings: Api<ValidatingAdmissionPolicyBinding> = Api::all(session.client.clone());
    bindings
        .get_opt(AUTHORITY_BINDING)
        .await
        .ok()
        .flatten()
        .and_then(|b| b.spec.param_ref?.namespace)
        .unwrap_or_else(|| modelgate::vocabulary::DEFAULT_NAMESPACE.to_string())
}

/// The reviewer group of each gate, from the authority params when they can
/// be read, else the defaults.
pub async fn groups(session: &Session, namespace: &str) -> Vec<(Gate, String)> {
    let api: Api<ConfigMap> = Api::namespaced(session.client.clone(), namespace);
    let data = api
        .get(AUTHORITY_PARAMS)
        .await
        .ok()
        .and_then(|c| c.data)
        .unwrap_or_default();
    groups_or_defaults(|g| data.get(&params_key(g)).cloned())
}

/// Every gate with its reviewer group: the one `found`, else the default.
pub fn groups_or_defaults(found: impl Fn(Gate) -> Option<String>) -> Vec<(Gate, String)> {
    Gate::ALL
        .into_iter()
        .map(|g| (g, found(g).unwrap_or_else(|| g.default_group().to_string())))
        .collect()
}
