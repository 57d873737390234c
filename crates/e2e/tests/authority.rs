//! The authority model against the real API server, acting as each kind of
//! user through impersonation: who may set which gate, who may write the
//! operator's fields, who may change a managed Deployment, configurable
//! groups, separation of duties, and the operator's least privilege.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authorization::v1::{SelfSubjectRulesReview, SelfSubjectRulesReviewSpec};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use modelgate::api::{approval::ModelApproval, gates::Gate};
use modelgate_e2e::refusal::{self, refused};
use modelgate_e2e::{cluster::*, fixtures::*, users::*, wait::*};

/// Tests that change the shared params take the write side; the others read.
static PARAMS: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());
static ALLOWED: AtomicUsize = AtomicUsize::new(0);

/// A namespace with the approval `fd`, for a test that only reads the
/// shared params (it holds their read lock for its whole run).
async fn setup(
    prefix: &str,
) -> (
    tokio::sync::RwLockReadGuard<'static, ()>,
    TestNamespace,
    Api<ModelApproval>,
) {
    let params = PARAMS.read().await;
    let (ns, api) = with_approval(prefix).await;
    (params, ns, api)
}

/// A namespace with the approval `fd`.
async fn with_approval(prefix: &str) -> (TestNamespace, Api<ModelApproval>) {
    let client = install_modelgate().await;
    let ns = TestNamespace::new(&client, prefix).await;
    let api = Api::namespaced(client, &ns.name);
    model_approval("fd").version("1.0.0").create(&api).await;
    (ns, api)
}

/// Sets one gate of the approval `fd` with `client`'s identity.
async fn on_fd(
    client: &Client,
    ns: &str,
    gate: &str,
    status: &str,
    reviewer: &str,
) -> kube::Result<()> {
    set_gate_as(client, ns, "fd", gate, status, reviewer).await
}

/// Sets the image of Deployment `name`'s one container, as `kubectl set
/// image` would.
async fn set_image(api: &Api<Deployment>, name: &str, image: &str) -> kube::Result<Deployment> {
    let patch = serde_json::json!({"spec": {"template": {"spec": {"containers": [{"name": "s", "image": image}]}}}});
    api.patch(name, &PatchParams::default(), &Patch::Strategic(&patch))
        .await
}

/// Prints the running totals; the last test to finish prints the totals of
/// the whole binary.
fn report(test: &str) {
    println!(
        "{test}: cases so far: {} allowed, {} refused",
        ALLOWED.load(Ordering::Relaxed),
        refusal::count()
    );
}

fn allowed<T, E: std::fmt::Debug>(what: &str, r: Result<T, E>) {
    assert!(r.is_ok(), "{what}: refused: {:?}", r.err());
    ALLOWED.fetch_add(1, Ordering::Relaxed);
}

/// Server-side applies `status` (a partial status) as `client`.
async fn apply_status(
    client: &Client,
    ns: &str,
    status: serde_json::Value,
    manager: &str,
) -> Result<ModelApproval, kube::Error> {
    let api: Api<ModelApproval> = Api::namespaced(client.clone(), ns);
    let patch = serde_json::json!({"apiVersion": "modelgate.io/v1alpha1", "kind": "ModelApproval", "metadata": {"name": "fd"}, "status": status});
    api.patch_status(
        "fd",
        &PatchParams::apply(manager).force(),
        &Patch::Apply(&patch),
    )
    .await
}

async fn set_params(data: serde_json::Value) {
    let client = admin().await;
    let api: Api<ConfigMap> = Api::namespaced(client, modelgate::vocabulary::DEFAULT_NAMESPACE);
    // A merge patch of the keys given: an apply would drop the keys that an
    // earlier apply of this manager set and this one leaves out.
    let patch = serde_json::json!({"data": data});
    api.patch(
        "modelgate-authority",
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .expect("set params");
}

#[tokio::test(flavor = "multi_thread")]
async fn each_gate_is_set_only_by_its_own_group_and_in_ones_own_name() {
    let (_params, ns, _) = setup("gates").await;
    for (i, gate) in Gate::ALL.into_iter().enumerate() {
        let g = gate.condition_type();
        let other = Gate::ALL[(i + 1) % 5];
        let member = format!("{}-member@example.com", gate.short_name());
        let outsider = format!("{}-member@example.com", other.short_name());

        let client = person(&outsider, &[other.default_group()]).await;
        refused(
            &format!("{g} by a member of {}", other.default_group()),
            on_fd(&client, &ns.name, g, "True", &outsider).await,
            &[format!("{g} may only be set by members of {}", gate.default_group()).as_str()],
        );
        let client = person(&member, &[gate.default_group()]).await;
        refused(
            &format!("{g} in someone else's name"),
            on_fd(&client, &ns.name, g, "True", "someone-else@example.com").await,
            &[format!("set reviewer to {member}").as_str()],
        );
        let client = person("nobody@example.com", &[]).await;
        refused(
            &format!("{g} by a user in no group"),
            on_fd(&client, &ns.name, g, "True", "nobody@example.com").await,
            &["forbidden"],
        );
        // Cluster admins are bound by the policy too.
        let client = admin().await;
        refused(
            &format!("{g} by a cluster admin"),
            on_fd(&client, &ns.name, g, "True", "modelgate-admin").await,
            &[format!("may only be set by members of {}", gate.default_group()).as_str()],
        );
        let client = person(&member, &[gate.default_group()]).await;
        allowed(
            &format!("{g} by its reviewer"),
            on_fd(&client, &ns.name, g, "True", &member).await,
        );
        // …and removing a gate is a change like any other.
        let client = person(&outsider, &[other.default_group()]).await;
        refused(
            &format!("{g} removed by another group"),
            apply_status(
                &client,
                &ns.name,
                serde_json::json!({"conditions": []}),
                &format!("reviewer-{}", g.to_ascii_lowercase()),
            )
            .await,
            &["may only be set by members of"],
        );
    }
    report("each_gate_is_set_only_by_its_own_group_and_in_ones_own_name");
}

#[tokio::test(flavor = "multi_thread")]
async fn reviewer_writes_are_well_formed() {
    let (_params, ns, api) = setup("well-formed").await;
    let member = "security-member@example.com";
    let client = person(member, &[Gate::Security.default_group()]).await;
    let condition = |kind: &str, reason: &str| {
        serde_json::json!({"conditions": [{
            "type": kind, "status": "True", "reason": reason, "message": "checked", "reviewer": member,
            "lastTransitionTime": "2026-01-01T00:00:00Z",
        }]})
    };
    refused(
        "a condition type that is not a gate",
        apply_status(
            &client,
            &ns.name,
            condition("PenTestReview", "Passed"),
            "reviewer-security",
        )
        .await,
        &["condition type PenTestReview is not a gate"],
    );
    refused(
        "a reason that is not CamelCase",
        apply_status(
            &client,
            &ns.name,
            condition("SecurityReview", "looks good"),
            "reviewer-security",
        )
        .await,
        &["reason looks good is not CamelCase"],
    );
    let untouched = api
        .get_status("fd")
        .await
        .expect("read")
        .status
        .unwrap_or_default();
    assert!(
        untouched
            .conditions
            .iter()
            .all(|c| c.type_ != "PenTestReview" && c.type_ != "SecurityReview"),
        "nothing was written: {:?}",
        untouched.conditions
    );
    allowed(
        "a gate with a CamelCase reason",
        apply_status(
            &client,
            &ns.name,
            condition("SecurityReview", "NoCriticalFindings"),
            "reviewer-security",
        )
        .await,
    );
    report("reviewer_writes_are_well_formed");
}

#[tokio::test(flavor = "multi_thread")]
async fn only_the_operator_writes_the_operator_fields() {
    let (_params, ns, approvals) = setup("opfields").await;
    let reviewer = person("tess@example.com", &[Gate::Technical.default_group()]).await;
    let now = "2026-11-25T10:00:00Z";
    let attempts = [
        (
            "Approved",
            serde_json::json!({"conditions": [{"type": "Approved", "status": "True", "reason": "AllGatesPassed"}]}),
        ),
        ("phase", serde_json::json!({"phase": "Approved"})),
        ("approvedAt", serde_json::json!({"approvedAt": now})),
        ("expiresAt", serde_json::json!({"expiresAt": now})),
        (
            "history",
            serde_json::json!({"history": [{"time": now, "subject": "Phase", "from": "Pending", "to": "Approved"}]}),
        ),
        (
            "observedGeneration",
            serde_json::json!({"observedGeneration": 7}),
        ),
    ];
    for (field, status) in &attempts {
        refused(
            &format!("{field} by a reviewer"),
            apply_status(&reviewer, &ns.name, status.clone(), "reviewer-fields").await,
            &["may only be written by the modelgate operator"],
        );
    }
    let operator = operator_client().await;
    // Every status the operator writes names the approval it decided for.
    let uid = approvals.get("fd").await.expect("read fd").metadata.uid;
    refused(
        "a status by the operator that names no approval",
        apply_status(&operator, &ns.name, attempts[1].1.clone(), "modelgate").await,
        &["none named"],
    );
    for (field, status) in &attempts {
        let mut status = status.clone();
        status["observedUid"] = serde_json::json!(uid);
        allowed(
            &format!("{field} by the operator"),
            apply_status(&operator, &ns.name, status, "modelgate").await,
        );
    }
    // The operator may not pass a gate.
    refused(
        "a gate by the operator",
        on_fd(
            &operator,
            &ns.name,
            "TechnicalReview",
            "True",
            OPERATOR_USER,
        )
        .await,
        &["TechnicalReview may only be set by members of modelgate:technical-reviewers"],
    );
    report("only_the_operator_writes_the_operator_fields");
}

/// The operator's status write is an apply by name: one decided for an
/// approval that was deleted and re-created under its name is refused, so
/// the new approval (whose model nobody reviewed) is not approved by it.
#[tokio::test(flavor = "multi_thread")]
async fn the_operator_decision_for_a_re_created_approval_is_refused() {
    let (_params, ns, api) = setup("recreated").await;
    let first = api.get("fd").await.expect("read fd");
    let old_uid = first.metadata.uid.clone().unwrap_or_default();
    api.delete("fd", &Default::default())
        .await
        .expect("delete fd");
    eventually(30, "fd gone", || async {
        api.get_opt("fd")
            .await
            .ok()
            .filter(Option::is_none)
            .map(|_| ())
    })
    .await;
    model_approval("fd").version("2.0.0").create(&api).await;
    let before = api.get("fd").await.expect("read the new fd");
    assert_ne!(before.metadata.uid.as_deref(), Some(old_uid.as_str()));
    let operator = operator_client().await;
    let decided = serde_json::json!({"phase": "Approved", "observedUid": old_uid});
    refused(
        "a decision for the deleted approval",
        apply_status(&operator, &ns.name, decided, "modelgate").await,
        &["was re-created under its name"],
    );
    let after = api.get("fd").await.expect("read the new fd");
    let phase = |a: &ModelApproval| a.status.as_ref().and_then(|s| s.phase);
    assert_eq!(phase(&after), phase(&before), "nothing changed");
    assert_eq!(
        after.metadata.resource_version,
        before.metadata.resource_version
    );
    // Its own uid is taken; a reviewer may set none.
    let own = serde_json::json!({"observedUid": before.metadata.uid});
    let reviewer = person("tess@example.com", &[Gate::Technical.default_group()]).await;
    refused(
        "observedUid by a reviewer",
        apply_status(&reviewer, &ns.name, own.clone(), "reviewer-fields").await,
        &["may only be written by the modelgate operator"],
    );
    allowed(
        "its own uid by the operator",
        apply_status(&operator, &ns.name, own, "modelgate").await,
    );
    report("the_operator_decision_for_a_re_created_approval_is_refused");
}

#[tokio::test(flavor = "multi_thread")]
async fn managed_deployments_change_only_through_the_operator() {
    let _params = PARAMS.read().await;
    let admin = install_modelgate().await;
    let ns = TestNamespace::new(&admin, "managed").await;
    // A user with the built-in edit role in the namespace.
    let binding = serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "editor", "namespace": ns.name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "ed@example.com"}],
    });
    let out = kubectl_stdin(&["apply", "-f", "-"], Some(&binding.to_string()));
    assert!(out.status.success(), "{}", text(&out));

    let deployment = |name: &str, managed: bool, replicas_managed: bool| -> Deployment {
        let mut labels = serde_json::json!({"app": name});
        if managed {
            labels["app.kubernetes.io/managed-by"] = "modelgate".into();
        }
        let annotations = if replicas_managed {
            serde_json::json!({"modelgate.io/replicas-managed": "true"})
        } else {
            serde_json::json!({})
        };
        serde_json::from_value(serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "labels": labels, "annotations": annotations},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "s", "image": "serve:1"}]}}},
        }))
        .expect("deployment")
    };
    let operator = operator_client().await;
    let as_operator: Api<Deployment> = Api::namespaced(operator, &ns.name);
    for (name, managed, replicas) in [("managed", true, true), ("plain", false, false)] {
        as_operator
            .patch(
                name,
                &PatchParams::apply("modelgate").force(),
                &Patch::Apply(&deployment(name, managed, replicas)),
            )
            .await
            .expect("create deployment");
    }

    let ed = person("ed@example.com", &[]).await;
    let as_ed: Api<Deployment> = Api::namespaced(ed, &ns.name);
    refused(
        "image of a managed Deployment by an editor",
        set_image(&as_ed, "managed", "unapproved:6").await,
        &["the pod template of Deployment managed is managed by modelgate"],
    );
    refused(
        "replicas of a managed Deployment by an editor",
        as_ed
            .patch(
                "managed",
                &PatchParams::default(),
                &Patch::Merge(&serde_json::json!({"spec": {"replicas": 5}})),
            )
            .await,
        &["are set by ModelDeployment managed"],
    );
    allowed(
        "labels of a managed Deployment by an editor",
        as_ed
            .patch(
                "managed",
                &PatchParams::default(),
                &Patch::Merge(&serde_json::json!({"metadata": {"labels": {"team": "risk"}}})),
            )
            .await,
    );
    for (what, patch, says) in [
        (
            "the managed-by label removed by an editor",
            serde_json::json!({"metadata": {"labels": {"app.kubernetes.io/managed-by": null}}}),
            "only modelgate may change them",
        ),
        (
            "a modelgate annotation removed by an editor",
            serde_json::json!({"metadata": {"annotations": {"modelgate.io/replicas-managed": null}}}),
            "only modelgate may change them",
        ),
    ] {
        refused(
            what,
            as_ed
                .patch("managed", &PatchParams::default(), &Patch::Merge(&patch))
                .await,
            &[says],
        );
    }
    refused(
        "a Deployment labelled managed-by created by an editor",
        as_ed
            .create(&PostParams::default(), &deployment("claimed", true, false))
            .await,
        &["create a ModelDeployment instead"],
    );
    allowed(
        "image of an unmanaged Deployment by an editor",
        set_image(&as_ed, "plain", "other:2").await,
    );
    allowed(
        "image of a managed Deployment by the operator",
        as_operator
            .patch(
                "managed",
                &PatchParams::apply("modelgate").force(),
                &Patch::Apply(&{
                    let mut d = deployment("managed", true, true);
                    if let Some(spec) = d.spec.template.spec.as_mut() {
                        spec.containers[0].image = Some("serve:2".into());
                    }
                    d
                }),
            )
            .await,
    );
    report("managed_deployments_change_only_through_the_operator");
}

#[tokio::test(flavor = "multi_thread")]
async fn params_change_who_may_approve_and_separation_of_duties() {
    let _params = PARAMS.write().await;
    let (ns, _) = with_approval("params").await;
    let admin = admin().await;
    // RBAC for a new group (RBAC is checked before admission).
    let binding = serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "modelgate-test-ml-platform"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "modelgate-reviewer"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "oidc:ml-platform"}],
    });
    let out = kubectl_stdin(&["apply", "-f", "-"], Some(&binding.to_string()));
    assert!(out.status.success(), "{}", text(&out));
    let _ = admin;

    set_params(serde_json::json!({"technicalReviewers": "oidc:ml-platform"})).await;
    let old = person("tom@example.com", &["modelgate:technical-reviewers"]).await;
    let new = person("nia@example.com", &["oidc:ml-platform"]).await;
    // The API server's policy cache follows the params within moments.
    let r = eventually(30, "new group takes effect", || async {
        let r = on_fd(&old, &ns.name, "TechnicalReview", "True", "tom@example.com").await;
        r.is_err().then_some(r)
    })
    .await;
    refused(
        "TechnicalReview by the old group",
        r,
        &["TechnicalReview may only be set by members of oidc:ml-platform"],
    );
    allowed(
        "TechnicalReview by the new group",
        on_fd(&new, &ns.name, "TechnicalReview", "True", "nia@example.com").await,
    );
    set_params(serde_json::json!({"technicalReviewers": "modelgate:technical-reviewers"})).await;
    eventually(30, "default group restored", || async {
        on_fd(&old, &ns.name, "TechnicalReview", "True", "tom@example.com")
            .await
            .ok()
    })
    .await;
    ALLOWED.fetch_add(1, Ordering::Relaxed);

    // Separation of duties: one person in two groups passes one gate only.
    let both = person(
        "sam@example.com",
        &["modelgate:security-reviewers", "modelgate:legal-reviewers"],
    )
    .await;
    allowed(
        "SecurityReview by sam",
        on_fd(&both, &ns.name, "SecurityReview", "True", "sam@example.com").await,
    );
    refused(
        "LegalReview by sam, who passed SecurityReview",
        on_fd(&both, &ns.name, "LegalReview", "True", "sam@example.com").await,
        &[
            "separation of duties: sam@example.com already passed another gate of this approval, so LegalReview needs a different reviewer",
        ],
    );
    // Failing a second gate is not passing it: allowed.
    allowed(
        "LegalReview False by sam",
        on_fd(&both, &ns.name, "LegalReview", "False", "sam@example.com").await,
    );
    set_params(serde_json::json!({"separationOfDuties": "false"})).await;
    let r = eventually(30, "separation of duties off", || async {
        on_fd(&both, &ns.name, "LegalReview", "True", "sam@example.com")
            .await
            .ok()
    })
    .await;
    allowed(
        "LegalReview by sam with separation of duties off",
        Ok::<_, kube::Error>(r),
    );
    set_params(serde_json::json!({"separationOfDuties": "true"})).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = kubectl(&["delete", "clusterrolebinding", "modelgate-test-ml-platform"]);
    report("params_change_who_may_approve_and_separation_of_duties");
}

/// The resource rules `client` holds in namespace `ns`, as
/// `group/resource:verb[names]`, sorted.
async fn rules_of(client: Client, ns: &str) -> Vec<String> {
    let review = SelfSubjectRulesReview {
        spec: SelfSubjectRulesReviewSpec {
            namespace: Some(ns.into()),
        },
        ..Default::default()
    };
    let api: Api<SelfSubjectRulesReview> = Api::all(client);
    let result = api
        .create(&PostParams::default(), &review)
        .await
        .expect("rules review");
    let status = result.status.expect("status");
    let mut got: Vec<String> = Vec::new();
    for rule in status.resource_rules {
        for group in rule.api_groups.unwrap_or_default() {
            for resource in rule.resources.clone().unwrap_or_default() {
                for verb in &rule.verbs {
                    let names = rule.resource_names.clone().unwrap_or_default().join(",");
                    got.push(format!(
                        "{group}/{resource}:{verb}{}",
                        if names.is_empty() {
                            String::new()
                        } else {
                            format!("[{names}]")
                        }
                    ));
                }
            }
        }
    }
    got.sort();
    got.dedup();
    got
}

#[tokio::test(flavor = "multi_thread")]
async fn the_operator_holds_no_verb_it_does_not_use() {
    let _params = PARAMS.read().await;
    install_modelgate().await;
    let mut got = rules_of(operator_client().await, "default").await;
    // What every service account holds anyway (discovery, self reviews, …),
    // read from one that has no binding of its own.
    let unbound = "system:serviceaccount:modelgate-system:unbound";
    let baseline = rules_of(client_as(Some(unbound), &OPERATOR_GROUPS).await, "default").await;
    got.retain(|r| !baseline.contains(r));
    let crds = "[modelapprovals.modelgate.io,modeldeployments.modelgate.io,approvalrecords.modelgate.io,approvalpolicies.modelgate.io,recordcheckpoints.modelgate.io,runtimecatalogs.modelgate.io,breakglasses.modelgate.io,trustedpublishers.modelgate.io]";
    let mut want: Vec<String> = vec![
        "modelgate.io/modelapprovals:get",
        "modelgate.io/modelapprovals:list",
        "modelgate.io/modelapprovals:watch",
        "modelgate.io/modelapprovals:patch",
        "modelgate.io/modeldeployments:get",
        "modelgate.io/modeldeployments:list",
        "modelgate.io/modeldeployments:watch",
        "modelgate.io/modelapprovals/status:patch",
        "modelgate.io/modeldeployments/status:patch",
        "apps/deployments:get",
        "apps/deployments:list",
        "apps/deployments:watch",
        "apps/deployments:create",
        "apps/deployments:patch",
        "apps/deployments:delete",
        "apps/replicasets:get",
        "apps/replicasets:list",
        "apps/replicasets:watch",
        "apps/replicasets:patch",
        "events.k8s.io/events:create",
        "modelgate.io/approvalrecords:create",
        "modelgate.io/approvalrecords:list",
        "modelgate.io/recordcheckpoints:get",
        "modelgate.io/recordcheckpoints:create",
        "modelgate.io/recordcheckpoints:patch",
        "modelgate.io/approvalpolicies:get",
        "modelgate.io/approvalpolicies:list",
        "modelgate.io/approvalpolicies:watch",
        "modelgate.io/approvalpolicies/status:patch",
        "modelgate.io/runtimecatalogs:list",
        "modelgate.io/runtimecatalogs:watch",
        "modelgate.io/breakglasses:list",
        "modelgate.io/breakglasses:watch",
        "modelgate.io/breakglasses/status:patch",
        "modelgate.io/trustedpublishers:get",
        "modelgate.io/trustedpublishers/status:patch",
        "networking.k8s.io/networkpolicies:get",
        "networking.k8s.io/networkpolicies:list",
        "networking.k8s.io/networkpolicies:watch",
        "networking.k8s.io/networkpolicies:create",
        "networking.k8s.io/networkpolicies:patch",
        "networking.k8s.io/networkpolicies:delete",
        "/namespaces:list",
        "/namespaces:watch",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    want.push(format!(
        "apiextensions.k8s.io/customresourcedefinitions:get{crds}"
    ));
    want.sort();
    assert_eq!(
        got, want,
        "the operator's rules differ from the verbs it uses"
    );
    assert!(
        !got.iter().any(|r| r.contains('*')),
        "a wildcard in {got:?}"
    );

    // In its own namespace, beyond those: the leader Lease and the signing
    // key's Secret and ConfigMap, by name where Kubernetes allows it.
    let home = modelgate::vocabulary::DEFAULT_NAMESPACE;
    let mut extra = rules_of(operator_client().await, home).await;
    let anyone = rules_of(client_as(Some(unbound), &OPERATOR_GROUPS).await, home).await;
    extra.retain(|r| !anyone.contains(r) && !got.contains(r));
    let mut want: Vec<String> = [
        "coordination.k8s.io/leases:get",
        "coordination.k8s.io/leases:create",
        "coordination.k8s.io/leases:patch",
        "/secrets:get[modelgate-signing-key]",
        "/configmaps:patch[modelgate-public-keys]",
        "/secrets:create",
        "/configmaps:create",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    want.sort();
    assert_eq!(
        extra, want,
        "the operator's rules in {home} differ from the verbs it uses"
    );
}

/// Puts the API-installed policies back (as `kubectl apply -k deploy/`),
/// also when the test that deleted them fails.
struct RestorePolicies;

impl Drop for RestorePolicies {
    fn drop(&mut self) {
        let deploy = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/");
        let out = kubectl(&["apply", "--server-side", "--force-conflicts", "-k", deploy]);
        assert!(out.status.success(), "restore the policies: {}", text(&out));
    }
}

/// The governed-namespace and managed-Deployment rules also run as static
/// admission manifests (hack/cluster.sh loads hack/static-admission/): a
/// cluster admin can neither delete nor shadow them through the API, and
/// with the chart's copies deleted the rules still hold, for the admin too.
#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_admin_cannot_delete_the_static_rules() {
    use k8s_openapi::api::admissionregistration::v1::{
        ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
    };
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::DeleteParams;
    // Alone: the chart's copies of shared policies go for a moment.
    let _params = PARAMS.write().await;
    let admin = install_modelgate().await;
    let ns = TestNamespace::new(&admin, "static").await;
    let out = kubectl(&["label", "namespace", &ns.name, "modelgate.io/governed=true"]);
    assert!(out.status.success(), "label namespace: {}", text(&out));
    let managed: Deployment = serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "fd", "labels": {"app": "fd", "app.kubernetes.io/managed-by": "modelgate", "modelgate.io/model-deployment": "fd"}},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "fd"}},
                 "template": {"metadata": {"labels": {"app": "fd"}}, "spec": {"containers": [{"name": "s", "image": "serve:1"}]}}},
    }))
    .expect("deployment");
    let as_operator: Api<Deployment> = Api::namespaced(operator_client().await, &ns.name);
    as_operator
        .patch(
            "fd",
            &PatchParams::apply("modelgate").force(),
            &Patch::Apply(&managed),
        )
        .await
        .expect("the operator creates its Deployment");

    let policies: Api<ValidatingAdmissionPolicy> = Api::all(admin.clone());
    let bindings: Api<ValidatingAdmissionPolicyBinding> = Api::all(admin.clone());
    let _restore = RestorePolicies;
    for rule in modelgate::static_admission::POLICIES {
        let name = format!("{rule}{}", modelgate::static_admission::SUFFIX);
        refused(
            &format!("the cluster admin deletes the static policy {name}"),
            policies.delete(&name, &DeleteParams::default()).await,
            &["not found"],
        );
        refused(
            &format!("the cluster admin deletes the static binding {name}"),
            bindings.delete(&name, &DeleteParams::default()).await,
            &["not found"],
        );
        let shadow: ValidatingAdmissionPolicy = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name},
            "spec": {"matchConstraints": {"resourceRules": [{"apiGroups": ["apps"], "apiVersions": ["*"], "resources": ["deployments"], "operations": ["CREATE"]}]},
                     "validations": [{"expression": "true"}]},
        }))
        .expect("policy");
        refused(
            &format!("the cluster admin creates a policy named {name}"),
            policies.create(&PostParams::default(), &shadow).await,
            &["reserved for static manifest-based configurations"],
        );
        // The chart's copy goes: only the static one is left to refuse.
        allowed(
            &format!("the cluster admin deletes the chart's binding {rule}"),
            bindings.delete(rule, &DeleteParams::default()).await,
        );
        allowed(
            &format!("the cluster admin deletes the chart's policy {rule}"),
            policies.delete(rule, &DeleteParams::default()).await,
        );
    }

    let as_admin: Api<Deployment> = Api::namespaced(admin.clone(), &ns.name);
    let ed_binding = serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "editor", "namespace": ns.name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "ed@example.com"}],
    });
    let out = kubectl_stdin(&["apply", "-f", "-"], Some(&ed_binding.to_string()));
    assert!(out.status.success(), "{}", text(&out));
    let as_ed: Api<Deployment> = Api::namespaced(person("ed@example.com", &[]).await, &ns.name);
    // The API server drops a deleted policy within moments; until then the
    // refusal may still name the chart's copy.
    let static_refusal = eventually(30, "a refusal by the static policy", || async {
        match set_image(&as_ed, "fd", "unapproved:6").await {
            Err(e) if e.to_string().contains("modelgate-managed-deployments.static.k8s.io") => {
                Some(e)
            }
            Err(_) => None,
            Ok(_) => panic!(
                "a non-operator changed the managed Deployment's template with the chart's policy deleted: \
                 is the API server running with hack/static-admission/ (hack/cluster.sh starts it so)?"
            ),
        }
    })
    .await;
    refused(
        "an editor changes the managed Deployment's template, the chart's policy deleted",
        Err::<(), _>(static_refusal),
        &["the pod template of Deployment fd is managed by modelgate"],
    );
    refused(
        "the cluster admin changes the managed Deployment's template",
        set_image(&as_admin, "fd", "unapproved:6").await,
        &["ValidatingAdmissionPolicy 'modelgate-managed-deployments.static.k8s.io'"],
    );
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "stray"},
        "spec": {"containers": [{"name": "s", "image": "unapproved:6"}]},
    }))
    .expect("pod");
    refused(
        "the cluster admin creates a pod in a governed namespace",
        Api::<Pod>::namespaced(admin.clone(), &ns.name)
            .create(&PostParams::default(), &pod)
            .await,
        &["ValidatingAdmissionPolicy 'modelgate-governed-workloads.static.k8s.io'"],
    );
    // Nothing changed.
    let now = as_admin.get("fd").await.expect("deployment");
    let images: Vec<Option<String>> = now
        .spec
        .template
        .spec
        .map(|p| p.containers.into_iter().map(|c| c.image).collect())
        .unwrap_or_default();
    assert_eq!(images, [Some("serve:1".to_string())]);
    assert!(
        Api::<Pod>::namespaced(admin, &ns.name)
            .get_opt("stray")
            .await
            .expect("get pod")
            .is_none()
    );
    report("a_cluster_admin_cannot_delete_the_static_rules");
}
