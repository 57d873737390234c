//! Break-glass as people do it: a policy that names incident commanders and
//! the on-call, the role that lets them write requests and approvals, a
//! request by its requester and an approval by its approver, each through
//! their own impersonated identity.

use kube::api::{Api, Patch, PatchParams, PostParams};
use modelgate::api::approval::{ApprovalPhase, ModelApproval};
use modelgate::api::breakglass::{BreakGlass, BreakGlassPhase};
use modelgate::api::deployment::{DeploymentPhase, ModelDeployment};
use modelgate::api::gates::Gate;

use crate::cluster::TestNamespace;
use crate::fixtures::{approve_all, digest_of, model_approval, model_deployment, set_gate};
use crate::pods::{phase, pods_serve};
use crate::users::person;
use crate::wait::eventually;

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
    bound(
        ns,
        &["--as", "someone@example.com", "--as-group", COMMANDERS],
    )
    .await;
}

/// Waits until `who` (kubectl's --as flags) may request a break-glass in
/// `ns`.
async fn bound(ns: &str, who: &[&str]) {
    crate::users::authorized(ns, "create", "breakglasses.modelgate.io", who).await;
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
    bound(ns, &["--as", user]).await;
}

/// Waits up to 60 s until BreakGlass `name` is `want`.
pub async fn break_glass_phase(
    api: &Api<BreakGlass>,
    name: &str,
    want: BreakGlassPhase,
) -> BreakGlass {
    eventually(
        60,
        &format!("break-glass {name} {}", want.as_str()),
        || async {
            let bg = api.get(name).await.ok()?;
            (bg.status.as_ref()?.phase == Some(want)).then_some(bg)
        },
    )
    .await
}

/// Waits up to 60 s until approval `name` is `want`.
pub async fn approval_phase(
    api: &Api<ModelApproval>,
    name: &str,
    want: ApprovalPhase,
) -> ModelApproval {
    eventually(60, &format!("{name} {want}"), || async {
        let a = api.get(name).await.ok()?;
        (a.status.as_ref()?.phase == Some(want)).then_some(a)
    })
    .await
}

/// Creates approval `name` of `version` in `ns` with every gate passed but
/// those in `open`, and waits until it is Pending under its pinned policy.
pub async fn approval_waiting_on(
    client: &kube::Client,
    ns: &str,
    (name, version): (&str, &str),
    open: &[&str],
) {
    let approvals: Api<ModelApproval> = Api::namespaced(client.clone(), ns);
    model_approval(name)
        .version(version)
        .create(&approvals)
        .await;
    for gate in Gate::ALL
        .map(|g| g.condition_type())
        .into_iter()
        .filter(|g| !open.contains(g))
    {
        let who = format!("{}@example.com", gate.to_lowercase());
        set_gate(ns, name, gate, "True", &who)
            .await
            .expect("pass gate");
    }
    eventually(30, &format!("{name} pending"), || async {
        let s = approvals.get(name).await.ok()?.status?;
        (s.phase == Some(ApprovalPhase::Pending) && s.policy.is_some()).then_some(())
    })
    .await;
}

/// `request` by the incident commander, approved by the on-call.
pub async fn request_and_approve(ns: &str, request: &Request<'_>) {
    request_break_glass(ns, request, COMMANDER, &[COMMANDERS])
        .await
        .expect("request");
    approve_break_glass(ns, request.name, APPROVER, &[ON_CALL])
        .await
        .expect("approve");
}

/// A namespace whose policy allows break-glass (at most 8h), with the
/// break-glass role bound to the commanders and the on-call.
pub async fn break_glass_namespace(client: &kube::Client, prefix: &str) -> TestNamespace {
    let ns = TestNamespace::new(client, prefix).await;
    break_glass_policy(client, &ns.name, "8h").await;
    bind_break_glass(client, &ns.name).await;
    ns
}

/// The 3 a.m. incident: 2.4.0 (`fd-v1`) serves with `replicas` pods and
/// onRevoke Rollback, and the ModelDeployment `fd` now names 2.4.1
/// (`fd-v2`), which waits on LegalReview alone.
pub async fn incident(client: &kube::Client, prefix: &str, replicas: i32) -> TestNamespace {
    let ns = break_glass_namespace(client, prefix).await;
    let n = ns.name.as_str();
    let approvals: Api<ModelApproval> = Api::namespaced(client.clone(), n);
    let mds: Api<ModelDeployment> = Api::namespaced(client.clone(), n);
    model_approval("fd-v1")
        .version("2.4.0")
        .create(&approvals)
        .await;
    approve_all(n, "fd-v1").await;
    let md = model_deployment("fd")
        .approval("fd-v1")
        .replicas(replicas)
        .on_revoke("Rollback")
        .build();
    mds.create(&PostParams::default(), &md).await.expect("md");
    pods_serve(client, n, "fd", &digest_of("2.4.0")).await;
    approval_waiting_on(client, n, ("fd-v2", "2.4.1"), &["LegalReview"]).await;
    let point = serde_json::json!({"spec": {"approvalRef": {"name": "fd-v2"}}});
    mds.patch("fd", &PatchParams::default(), &Patch::Merge(&point))
        .await
        .expect("point at 2.4.1");
    phase(&mds, "fd", DeploymentPhase::AwaitingApproval).await;
    ns
}

/// `name` approved for `duration`, skipping LegalReview of approval
/// `fd-v2` (the incident's).
pub fn skipping_legal<'a>(name: &'a str, duration: &'a str) -> Request<'a> {
    Request {
        name,
        approval: "fd-v2",
        skips: &["LegalReview"],
        duration,
    }
}

/// Waits up to 45 s for the signed record of `approval`'s change to `phase`.
pub async fn record_of(client: &kube::Client, ns: &str, approval: &str, phase: &str) {
    let records: Api<modelgate::api::record::ApprovalRecord> = Api::namespaced(client.clone(), ns);
    eventually(
        45,
        &format!("the signed record of {approval} {phase}"),
        || async {
            let list = records.list(&Default::default()).await.ok()?;
            list.items
                .iter()
                .any(|r| r.spec.approval.name == approval && r.spec.phase == phase)
                .then_some(())
        },
    )
    .await;
}
