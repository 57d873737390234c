//! Who acts: the operator's service account and people in groups, each
//! through impersonation by the cluster admin.

use kube::Client;

use crate::cluster::*;

/// The operator's identity, as its service account authenticates.
pub const OPERATOR_USER: &str = "system:serviceaccount:modelgate-system:modelgate";

pub const OPERATOR_GROUPS: [&str; 3] = [
    "system:serviceaccounts",
    "system:serviceaccounts:modelgate-system",
    "system:authenticated",
];

/// A client that acts as the operator's service account, so the admission
/// policies see exactly the identity they see in a cluster.
pub async fn operator_client() -> Client {
    client_as(Some(OPERATOR_USER), &OPERATOR_GROUPS).await
}

/// The default reviewer group of a gate (None for anything else).
pub fn group_of(gate: &str) -> Option<&'static str> {
    modelgate::api::gates::Gate::from_condition_type(gate).map(|g| g.default_group())
}

/// A client for a person in `groups` (authenticated, like any real user).
pub async fn person(user: &str, groups: &[&str]) -> Client {
    let mut all: Vec<&str> = groups.to_vec();
    all.push("system:authenticated");
    client_as(Some(user), &all).await
}

/// The developer of the sealing tests: `edit` and model-owner in the
/// namespaces the tests bind them in.
pub const DEVELOPER: &str = "dev@example.com";
pub const DEVELOPER_GROUP: &str = "ml-developers";

/// The developer's client.
pub async fn developer() -> kube::Client {
    person(DEVELOPER, &[DEVELOPER_GROUP]).await
}

/// Binds the developer to `edit` and model-owner in `ns` (as an admin).
pub async fn bind_developer(client: &kube::Client, ns: &str) {
    use k8s_openapi::api::rbac::v1::RoleBinding;
    let bindings: kube::Api<RoleBinding> = kube::Api::namespaced(client.clone(), ns);
    for role in ["edit", "modelgate-model-owner"] {
        let binding: RoleBinding = serde_json::from_value(serde_json::json!({
            "metadata": {"name": format!("dev-{role}")},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"kind": "User", "name": DEVELOPER, "apiGroup": "rbac.authorization.k8s.io"}],
        }))
        .expect("RoleBinding");
        bindings
            .create(&kube::api::PostParams::default(), &binding)
            .await
            .unwrap_or_else(|e| panic!("bind {role}: {e}"));
    }
    // Wait for both roles before the developer acts.
    for resource in [
        "networkpolicies.networking.k8s.io",
        "modelapprovals.modelgate.io",
    ] {
        authorized(ns, "create", resource, &["--as", DEVELOPER]).await;
    }
}

/// Waits until the API server's authorizer, which sees a new binding a
/// moment after it is made, lets `who` (kubectl's --as flags) `verb`
/// `resource` in `ns`.
pub async fn authorized(ns: &str, verb: &str, resource: &str, who: &[&str]) {
    crate::wait::eventually(30, &format!("{who:?} may {verb} {resource}"), || async {
        let mut args = vec!["auth", "can-i", verb, resource, "-n", ns];
        args.extend_from_slice(who);
        let out = kubectl(&args);
        (String::from_utf8_lossy(&out.stdout).trim() == "yes").then_some(())
    })
    .await;
}
