//! Break-glass as people do it: a policy that names incident commanders and
//! the on-call, the role that lets them write requests and approvals, a
//! request by its requester and an approval by its approver, each through
//! their own impersonated identity.

use kube::api::{Api, Patch, PatchParams, PostParams};
use modelgate::api::breakglass::BreakGlass;

use crate::users::person;

/// The group the test policy lets request a break-glass.
pub const COMMANDERS: &str = "incident-commanders";
/// The group the test policy lets approve one.
pub const ON_CALL: &str = "sre-oncall";
/// An incident commander and an on-call approver.
pub const COMMANDER: &str = "erin@example.com";
pub const APPROVER: &str = "bob@example.com";

/// The `default` policy of `ns`: one reviewer per gate, and a break-glass
/// rule (commanders request, one on-call approves, at most `max`). Waits
/// until the operator has read it, so approvals made after pin it.
pub async fn break_glass_policy(client: &kube::Client, ns: &str, max: &str) {
    let rule = serde_json::json!({"breakGlass": {
        "requesters": {"groups": [COMMANDERS]},
        "approvers": {"groups": [ON_CALL]},
        "approvals": 1,
        "maxDuration": max,
    }});
    crate::fixtures::apply_policy(client, ns, rule).await;
}

/// Binds `modelgate-break-glass` in `ns` to the commanders and the on-call
/// groups (as an admin).
pub async fn bind_break_glass(client: &kube::Client, ns: &str) {
    use k8s_openapi::api::rbac::v1::RoleBinding;
    let subjects: Vec<serde_json::Value> = [COMMANDERS, ON_CALL]
        .iter()
        .map(|g| serde_json::json!({"kind": "Group", "name": g, "apiGroup": "rbac.authorization.k8s.io"}))
        .collect();
    let binding: RoleBinding = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "break-glass"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "modelgate-break-glass"},
        "subjects": subjects,
    }))
    .expect("RoleBinding");
    Api::<RoleBinding>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &binding)
        .await
        .expect("bind modelgate-break-glass");
}

/// What a request says.
pub struct Request<'a> {
    pub name: &'a str,
    pub approval: &'a str,
    pub skips: &'a [&'a str],
    pub duration: &'a str,
}

/// The BreakGlass `request` makes, by `user` claiming `groups`.
pub fn break_glass(request: &Request<'_>, user: &str, groups: &[&str]) -> BreakGlass {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "modelgate.io/v1alpha1", "kind": "BreakGlass",
        "metadata": {"name": request.name},
        "spec": {
            "approvalRef": {"name": request.approval},
            "reason": "INC-4711: the serving version blocks every card payment in Ireland",
            "duration": request.duration,
            "skips": request.skips,
            "requestedBy": {"user": user, "groups": groups},
        },
    }))
    .expect("BreakGlass")
}

/// Creates `request` as `user` in `groups`, claiming those groups.
pub async fn request_break_glass(
    ns: &str,
    request: &Request<'_>,
    user: &str,
    groups: &[&str],
) -> kube::Result<BreakGlass> {
    let api: Api<BreakGlass> = Api::namespaced(person(user, groups).await, ns);
    api.create(&PostParams::default(), &break_glass(request, user, groups))
        .await
}

/// Adds `user`'s own approval entry (claiming `groups`) to break-glass
/// `name`, with server-side apply on the status subresource.
pub async fn approve_break_glass(
    ns: &str,
    name: &str,
    user: &str,
    groups: &[&str],
) -> kube::Result<BreakGlass> {
    let api: Api<BreakGlass> = Api::namespaced(person(user, groups).await, ns);
    let patch = serde_json::json!({
        "apiVersion": "modelgate.io/v1alpha1", "kind": "BreakGlass",
        "status": {"approvals": [{
            "user": user,
            "groups": groups,
            "message": "checked the incident and the fixed version's tests",
            "time": jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        }]},
    });
    api.patch_status(
        name,
        &PatchParams::apply(&format!("break-glass-{user}")),
        &Patch::Apply(&patch),
    )
    .await
}

/// Binds `modelgate-break-glass` in `ns` to one more user (as an admin).
pub async fn bind_break_glass_user(client: &kube::Client, ns: &str, user: &str) {
    use k8s_openapi::api::rbac::v1::RoleBinding;
    let name: String = user
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let binding: RoleBinding = serde_json::from_value(serde_json::json!({
        "metadata": {"name": format!("break-glass-{name}")},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "modelgate-break-glass"},
        "subjects": [{"kind": "User", "name": user, "apiGroup": "rbac.authorization.k8s.io"}],
    }))
    .expect("RoleBinding");
    Api::<RoleBinding>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &binding)
        .await
        .expect("bind modelgate-break-glass");
}
