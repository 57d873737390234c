//! The closed loop against the real control plane: in a governed namespace a
//! developer with the built-in `edit` role and the model-owner role tries
//! every way we know to get a model running that did not pass all five
//! gates. A pod watch opened before the first attempt sees every pod the
//! namespace ever had; none may run an image or a model digest that was not
//! approved. Also: the operator heals drift admission cannot stop, and an
//! approval in use survives its deletion until nothing uses it.

use std::collections::BTreeSet;
use std::process::Output;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use modelgate::api::{
    approval::ModelApproval,
    deployment::{DeploymentPhase, ModelDeployment},
};
use modelgate_e2e::refusal::refused;
use modelgate_e2e::{cluster::*, fixtures::*, operator::*, pods::*, users::*, wait::*};

const DEV: &str = "dev@example.com";
const DEV_GROUP: &str = "ml-developers";
const SERVER_IMAGE: &str = "registry.example.com/model-server:1.8";
const EVIL_IMAGE: &str = "evil.example/backdoor:1";
const GOVERNED: &str =
    "this namespace is governed by modelgate: serve models through a ModelDeployment";

/// A governed namespace with a developer bound to `edit` and model-owner.
async fn governed_namespace(client: &kube::Client, prefix: &str) -> TestNamespace {
    let ns = TestNamespace::new(client, prefix).await;
    let out = kubectl(&["label", "namespace", &ns.name, "modelgate.io/governed=true"]);
    assert!(out.status.success(), "label namespace: {}", text(&out));
    for role in ["edit", "modelgate-model-owner"] {
        let binding = format!(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: dev-{role}, namespace: {ns}}}\n\
             roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {role}}}\n\
             subjects: [{{kind: User, name: {DEV}, apiGroup: rbac.authorization.k8s.io}}]\n",
            ns = ns.name
        );
        let out = kubectl_stdin(&["apply", "-f", "-"], Some(&binding));
        assert!(out.status.success(), "bind {role}: {}", text(&out));
    }
    ns
}

/// kubectl as the developer, in `ns`.
fn as_dev(ns: &str, args: &[&str], stdin: Option<&str>) -> Output {
    as_person(ns, (DEV, DEV_GROUP), args, stdin)
}

/// kubectl as `who` (user, group), in `ns`.
fn as_person(ns: &str, who: (&str, &str), args: &[&str], stdin: Option<&str>) -> Output {
    let mut all = vec!["-n", ns, "--as", who.0, "--as-group", who.1];
    all.extend_from_slice(args);
    kubectl_stdin(&all, stdin)
}

/// A person kubectl acts as: user and group.
type Person = (&'static str, &'static str);
const DEVELOPER: Person = (DEV, DEV_GROUP);
const ADMIN: Person = ("platform-admin@example.com", "system:masters");

/// One attack of a table: what it tries, as whom, the kubectl arguments
/// and standard input, and what the refusal must say (the message must
/// tell the person what to do).
#[derive(Clone)]
struct Attack {
    what: &'static str,
    by: Person,
    args: Vec<String>,
    stdin: Option<String>,
    says: Vec<&'static str>,
}

impl Attack {
    /// `kubectl args` as the developer.
    fn kubectl(what: &'static str, args: &[&str]) -> Self {
        Attack {
            what,
            by: DEVELOPER,
            args: args.iter().map(|a| a.to_string()).collect(),
            stdin: None,
            says: Vec::new(),
        }
    }

    /// With `manifest` as kubectl's standard input.
    fn stdin(self, manifest: String) -> Self {
        Attack {
            stdin: Some(manifest),
            ..self
        }
    }

    /// As `who` instead.
    fn by(self, who: Person) -> Self {
        Attack { by: who, ..self }
    }

    /// The refusal must say every one of `phrases`.
    fn says(self, phrases: &[&'static str]) -> Self {
        Attack {
            says: phrases.to_vec(),
            ..self
        }
    }
}

/// Runs every attack of `table` in `ns` and asserts each refusal.
fn all_refused(ns: &str, table: &[Attack]) {
    for attack in table {
        let args: Vec<&str> = attack.args.iter().map(String::as_str).collect();
        let out = as_person(ns, attack.by, &args, attack.stdin.as_deref());
        refused(attack.what, out, &attack.says);
    }
}

/// The attacks of `table`, as a cluster admin.
fn by_admin(table: &[Attack]) -> Vec<Attack> {
    table.iter().map(|a| a.clone().by(ADMIN)).collect()
}

/// Runs one attack the API allows (the operator is what stops it).
fn allowed(ns: &str, attack: &str, args: &[&str]) {
    let out = as_dev(ns, args, None);
    assert!(out.status.success(), "{attack}: {}", text(&out));
    eprintln!("allowed, for the operator to answer: {attack}");
}

/// The pods the watch saw start after `t` with `digest`, by name, once each.
fn started_after(record: &Mutex<Vec<Pod>>, digest: &str, t: jiff::Timestamp) -> Vec<String> {
    let mut names: Vec<String> = record
        .lock()
        .map(|all| {
            all.iter()
                .filter(|p| seen(p).2.iter().any(|d| d == digest))
                .filter(|p| {
                    p.metadata
                        .creation_timestamp
                        .as_ref()
                        .is_some_and(|born| born.0 > t)
                })
                .map(|p| seen(p).0)
                .collect()
        })
        .unwrap_or_default();
    names.dedup();
    names
}

/// The operator running, modelgate installed, and a governed namespace whose
/// pods are all recorded from before the first attempt.
async fn watched_governed_namespace(
    prefix: &str,
) -> (kube::Client, TestNamespace, Arc<Mutex<Vec<Pod>>>) {
    start_operator();
    let client = install_modelgate().await;
    let ns = governed_namespace(&client, prefix).await;
    let record = watch_pods(&client, &ns.name).await;
    (client, ns, record)
}

/// Watches every pod of `ns` from now on and records each version of each.
async fn watch_pods(client: &kube::Client, ns: &str) -> Arc<Mutex<Vec<Pod>>> {
    let record = Arc::new(Mutex::new(Vec::new()));
    let (listed_tx, listed_rx) = tokio::sync::oneshot::channel();
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let sink = record.clone();
    tokio::spawn(async move {
        let mut listed = Some(listed_tx);
        let mut events = std::pin::pin!(watcher(pods, watcher::Config::default()));
        while let Some(event) = events.next().await {
            match event {
                Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => {
                    if let Ok(mut all) = sink.lock() {
                        all.push(p);
                    }
                }
                Ok(watcher::Event::InitDone) => {
                    if let Some(tx) = listed.take() {
                        let _ = tx.send(());
                    }
                }
                _ => {}
            }
        }
    });
    listed_rx.await.expect("the pod watch lists");
    record
}

#[tokio::test]
async fn a_developer_cannot_run_an_unapproved_model_in_a_governed_namespace() {
    let (client, ns, record) = watched_governed_namespace("closed-loop").await;
    let n = ns.name.as_str();

    // The legitimate path: v1 passes all five gates and serves; v2 waits.
    let (approvals, mds) = create_model(&client, n, "fd", "fd-v1", "1.0.0", None).await;
    approve_all(n, "fd-v1").await;
    model_approval("fd-v2")
        .version("2.0.0")
        .create(&approvals)
        .await;
    phase(&mds, "fd", DeploymentPhase::Available).await;
    let approved = digest_of("1.0.0");
    let pods = pods_serve(&client, n, "fd", &approved).await;
    let pod = pods[0].metadata.name.clone().unwrap_or_default();
    let replicasets: Api<ReplicaSet> = Api::namespaced(client.clone(), n);
    let rs = replicasets
        .list(&ListParams::default().labels("modelgate.io/model-deployment=fd"))
        .await
        .expect("replicasets")
        .items
        .into_iter()
        .find_map(|r| r.metadata.name)
        .expect("a ReplicaSet");

    // Attacks on the managed Deployment.
    let evil = format!("server={EVIL_IMAGE}");
    let image = format!("--image={EVIL_IMAGE}");
    let instead = "change ModelDeployment fd instead";
    let on_the_deployment = [
        Attack::kubectl(
            "remove the managed-by label",
            &["label", "deployment", "fd", "app.kubernetes.io/managed-by-"],
        )
        .says(&["ModelDeployment fd"]),
        Attack::kubectl(
            "re-point the model-deployment label",
            &[
                "label",
                "deployment",
                "fd",
                "modelgate.io/model-deployment=other",
                "--overwrite",
            ],
        )
        .says(&["ModelDeployment fd"]),
        Attack::kubectl("set the image", &["set", "image", "deployment/fd", &evil])
            .says(&[instead]),
        Attack::kubectl(
            "set MODEL_DIGEST on the Deployment",
            &["set", "env", "deployment/fd", "MODEL_DIGEST=sha256:evil"],
        )
        .says(&[instead]),
        Attack::kubectl(
            "remove the ownerReferences",
            &[
                "patch",
                "deployment",
                "fd",
                "--type=json",
                "-p",
                r#"[{"op":"remove","path":"/metadata/ownerReferences"}]"#,
            ],
        )
        .says(&["delete ModelDeployment fd"]),
        Attack::kubectl(
            "edit a modelgate annotation",
            &[
                "annotate",
                "deployment",
                "fd",
                "modelgate.io/replicas-managed-",
            ],
        )
        .says(&[instead]),
        Attack::kubectl(
            "add a modelgate annotation",
            &[
                "annotate",
                "deployment",
                "fd",
                "modelgate.io/approval=fd-v2",
            ],
        )
        .says(&[instead]),
        Attack::kubectl(
            "scale past the ModelDeployment",
            &[
                "patch",
                "deployment",
                "fd",
                "-p",
                r#"{"spec":{"replicas":3}}"#,
            ],
        )
        .says(&["change spec.replicas there"]),
    ];

    // New workloads of every pod-creating kind.
    let claimed = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: shadow, labels: {{app.kubernetes.io/managed-by: modelgate, modelgate.io/model-deployment: shadow}}}}\n\
         spec: {{selector: {{matchLabels: {{app: shadow}}}}, template: {{metadata: {{labels: {{app: shadow, modelgate.io/model-deployment: fd}}}}, spec: {{containers: [{{name: s, image: {EVIL_IMAGE}}}]}}}}}}\n"
    );
    let template = format!(
        "{{metadata: {{labels: {{app: shadow, modelgate.io/model-deployment: fd}}}}, spec: {{containers: [{{name: s, image: {EVIL_IMAGE}}}]}}}}"
    );
    let create = |what, manifest: String| {
        Attack::kubectl(what, &["create", "-f", "-"])
            .stdin(manifest)
            .says(&[GOVERNED])
    };
    let new_workloads = [
        Attack::kubectl(
            "a Deployment claiming the managed-by label",
            &["create", "-f", "-"],
        )
        .stdin(claimed)
        .says(&["create a ModelDeployment"]),
        create(
            "a plain Deployment",
            format!(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: plain}}\nspec: {{selector: {{matchLabels: {{app: shadow}}}}, template: {template}}}\n"
            ),
        ),
        create(
            "a ReplicaSet",
            format!(
                "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {{name: shadow}}\nspec: {{selector: {{matchLabels: {{app: shadow}}}}, template: {template}}}\n"
            ),
        ),
        create(
            "a StatefulSet",
            format!(
                "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {{name: shadow}}\nspec: {{serviceName: shadow, selector: {{matchLabels: {{app: shadow}}}}, template: {template}}}\n"
            ),
        ),
        create(
            "a DaemonSet",
            format!(
                "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {{name: shadow}}\nspec: {{selector: {{matchLabels: {{app: shadow}}}}, template: {template}}}\n"
            ),
        ),
        create(
            "a Job",
            format!(
                "apiVersion: batch/v1\nkind: Job\nmetadata: {{name: shadow}}\nspec: {{template: {{metadata: {{labels: {{modelgate.io/model-deployment: fd}}}}, spec: {{restartPolicy: Never, containers: [{{name: s, image: {EVIL_IMAGE}}}]}}}}}}\n"
            ),
        ),
        create(
            "a CronJob",
            format!(
                "apiVersion: batch/v1\nkind: CronJob\nmetadata: {{name: shadow}}\nspec: {{schedule: '* * * * *', jobTemplate: {{spec: {{template: {{spec: {{restartPolicy: Never, containers: [{{name: s, image: {EVIL_IMAGE}}}]}}}}}}}}}}\n"
            ),
        ),
        create(
            "a ReplicationController",
            format!(
                "apiVersion: v1\nkind: ReplicationController\nmetadata: {{name: shadow}}\nspec: {{selector: {{app: shadow}}, template: {template}}}\n"
            ),
        ),
        create(
            "a bare Pod",
            format!(
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: shadow}}\nspec: {{containers: [{{name: s, image: {EVIL_IMAGE}}}]}}\n"
            ),
        ),
        create(
            "a Pod copying the modelgate label",
            format!(
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: shadow-labelled, labels: {{modelgate.io/model-deployment: fd}}}}\nspec: {{containers: [{{name: s, image: {EVIL_IMAGE}}}]}}\n"
            ),
        ),
        Attack::kubectl("kubectl run", &["run", "shadow-run", &image])
            .says(&[GOVERNED, "may not create pods"]),
    ];

    // Attacks on what already runs. `edit` holds no right to ephemeral
    // containers; a cluster admin does, and admission refuses even that.
    let debug = ["debug", &pod, &image, "--target=server", "--attach=false"];
    let on_what_runs = [
        Attack::kubectl(
            "change a running pod's image",
            &["set", "image", &format!("pod/{pod}"), &evil],
        )
        .says(&[GOVERNED, "images of a running pod never change"]),
        Attack::kubectl("add an ephemeral container", &debug)
            .says(&["cannot patch resource \"pods/ephemeralcontainers\""]),
        Attack::kubectl("add an ephemeral container as a cluster admin", &debug)
            .by(ADMIN)
            .says(&[GOVERNED, "no ephemeral containers"]),
        Attack::kubectl(
            "exec into a serving pod",
            &["exec", &pod, "--", "sh", "-c", "true"],
        )
        .says(&[GOVERNED, "no exec or attach"]),
        Attack::kubectl(
            "change the ReplicaSet's template",
            &["set", "image", &format!("rs/{rs}"), &evil],
        )
        .says(&[GOVERNED, "ReplicaSets here"]),
    ];

    // Attacks on the approval.
    let on_the_approval = [
        Attack::kubectl(
            "pass a gate as the developer",
            &[
                "patch",
                "modelapproval",
                "fd-v2",
                "--subresource=status",
                "--type=merge",
                "-p",
                r#"{"status":{"phase":"Approved"}}"#,
            ],
        )
        .says(&["forbidden"]),
        Attack::kubectl(
            "remove the in-use finalizer",
            &[
                "patch",
                "modelapproval",
                "fd-v1",
                "--type=json",
                "-p",
                r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
            ],
        )
        .says(&["forbidden"]),
    ];
    for table in [
        &on_the_deployment[..],
        &new_workloads,
        &on_what_runs,
        &on_the_approval,
    ] {
        all_refused(n, table);
    }

    // What the API allows and the operator answers.
    allowed(
        n,
        "override MODEL_DIGEST in the ModelDeployment's template",
        &[
            "patch",
            "modeldeployment",
            "fd",
            "--type=json",
            "-p",
            r#"[{"op":"add","path":"/spec/template/spec/containers/0/env/-","value":{"name":"MODEL_DIGEST","value":"sha256:evil"}}]"#,
        ],
    );
    phase(&mds, "fd", DeploymentPhase::Available).await;
    pods_serve(&client, n, "fd", &approved).await;

    allowed(
        n,
        "delete the managed Deployment",
        &["delete", "deployment", "fd", "--wait=false"],
    );
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), n);
    eventually(60, "the operator to re-create the Deployment", || async {
        let d = deployments.get_opt("fd").await.ok()??;
        d.metadata.deletion_timestamp.is_none().then_some(())
    })
    .await;
    pods_serve(&client, n, "fd", &approved).await;
    phase(&mds, "fd", DeploymentPhase::Available).await;

    allowed(
        n,
        "re-point approvalRef at a Pending approval",
        &[
            "patch",
            "modeldeployment",
            "fd",
            "--type=merge",
            "-p",
            r#"{"spec":{"approvalRef":{"name":"fd-v2"}}}"#,
        ],
    );
    let held = phase(&mds, "fd", DeploymentPhase::AwaitingApproval).await;
    assert_eq!(satisfied_reason(&held).as_deref(), Some("AwaitingReview"));

    allowed(
        n,
        "delete the serving approval",
        &["delete", "modelapproval", "fd-v1", "--wait=false"],
    );
    let revoked = phase(&mds, "fd", DeploymentPhase::Revoked).await;
    assert_eq!(
        satisfied_reason(&revoked).as_deref(),
        Some("ApprovalDeleted")
    );
    let kept = approvals
        .get("fd-v1")
        .await
        .expect("the served approval stays while in use");
    assert!(kept.metadata.deletion_timestamp.is_some());
    assert!(
        kept.status.is_some_and(|s| !s.history.is_empty()),
        "its history stays readable"
    );
    // A Warning Event says the approval was deleted.
    event_about(&client, n, "fd", 30, |e| {
        e.type_.as_deref() == Some("Warning") && e.reason.as_deref() == Some("ApprovalDeleted")
    })
    .await;

    // Every pod the namespace ever had ran the approved server and model.
    let all: Vec<Seen> = record
        .lock()
        .map(|r| r.iter().map(seen).collect())
        .unwrap_or_default();
    assert!(!all.is_empty(), "the watch saw the serving pods");
    let bad: Vec<&Seen> = all
        .iter()
        .filter(|(_, images, digests)| {
            images.iter().any(|i| i != SERVER_IMAGE)
                || digests.iter().any(|d| *d != approved)
                || digests.is_empty()
        })
        .collect();
    assert!(bad.is_empty(), "pods ran what was not approved: {bad:?}");

    // And the status is true to the cluster.
    let md = mds.get("fd").await.expect("md");
    let status = md.status.expect("status");
    let deployment = deployments.get("fd").await.expect("the Deployment exists");
    assert_eq!(status.deployment_name.as_deref(), Some("fd"));
    let served = status.served_model.expect("served model");
    assert_eq!(served.digest, approved);
    let template_digest = deployment
        .spec
        .template
        .metadata
        .and_then(|m| m.annotations)
        .and_then(|a| a.get("modelgate.io/model-digest").cloned());
    assert_eq!(template_digest.as_deref(), Some(approved.as_str()));
    let names: BTreeSet<String> = all.iter().map(|(n, _, _)| n.clone()).collect();
    eprintln!(
        "{} pod versions of {} pods seen, all approved",
        all.len(),
        names.len()
    );
}

#[tokio::test]
async fn the_controllers_own_identities_may_create_what_governed_namespaces_run() {
    let client = install_modelgate().await;
    let ns = governed_namespace(&client, "governed-ids").await;
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "from-rs", "labels": {"modelgate.io/model-deployment": "fd"}},
        "spec": {"containers": [{"name": "s", "image": SERVER_IMAGE}]},
    }))
    .expect("pod");
    let dry = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    // Per-controller credentials and the single controller-manager identity.
    for creator in [
        "system:serviceaccount:kube-system:replicaset-controller",
        "system:kube-controller-manager",
    ] {
        let as_controller = client_as(Some(creator), &["system:masters"]).await;
        Api::<Pod>::namespaced(as_controller, &ns.name)
            .create(&dry, &pod)
            .await
            .unwrap_or_else(|e| panic!("{creator} may create a labelled pod: {e}"));
    }
    // The same identity without the label, and anyone else with it: refused.
    let mut unlabelled = pod.clone();
    unlabelled.metadata.labels = None;
    let as_rs = client_as(Some("system:kube-controller-manager"), &["system:masters"]).await;
    refused(
        "a pod without the modelgate label",
        Api::<Pod>::namespaced(as_rs, &ns.name)
            .create(&dry, &unlabelled)
            .await,
        &[GOVERNED],
    );
    let other = client_as(Some("someone@example.com"), &["system:masters"]).await;
    refused(
        "a pod from a person, even a cluster admin",
        Api::<Pod>::namespaced(other, &ns.name)
            .create(&dry, &pod)
            .await,
        &[GOVERNED],
    );
}

#[tokio::test]
async fn an_exempt_group_is_let_through_and_marked_in_the_audit_log() {
    let client = install_modelgate().await;
    let ns = governed_namespace(&client, "governed-exempt").await;
    let params: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(client.clone(), modelgate::vocabulary::DEFAULT_NAMESPACE);
    let set = |groups: &str| serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "modelgate-authority"}, "data": {"exemptGroups": groups}});
    let manager = PatchParams::apply("closed-loop-test").force();
    params
        .patch(
            "modelgate-authority",
            &manager,
            &Patch::Apply(&set("platform:break-glass")),
        )
        .await
        .expect("grant the exception");
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "break-glass"},
        "spec": {"containers": [{"name": "s", "image": SERVER_IMAGE}]},
    }))
    .expect("pod");
    let responder = client_as(
        Some("oncall@example.com"),
        &["platform:break-glass", "system:masters"],
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(responder, &ns.name);
    eventually(60, "the exception to take effect", || async {
        pods.create(&PostParams::default(), &pod).await.ok()
    })
    .await;
    // Give the exception back before anything else can fail.
    params
        .patch("modelgate-authority", &manager, &Patch::Apply(&set("")))
        .await
        .expect("withdraw the exception");
    let log = &cluster().audit_log;
    eventually(30, "the exception in the audit log", || async {
        let text = std::fs::read_to_string(log).ok()?;
        text.lines()
            .find(|l| {
                l.contains("modelgate-governed-workloads/exception")
                    && l.contains("oncall@example.com")
                    && l.contains(&ns.name)
            })
            .map(|_| ())
    })
    .await;
    let _ = Api::<Pod>::namespaced(client, &ns.name)
        .delete("break-glass", &DeleteParams::default())
        .await;
}

#[tokio::test]
async fn the_operator_heals_a_deployment_unlabelled_orphaned_or_deleted() {
    start_operator();
    let client = install_modelgate().await;
    let ns = TestNamespace::new(&client, "heal").await;
    let n = ns.name.as_str();
    let (_, mds) = create_model(&client, n, "fd", "fd-v1", "1.0.0", None).await;
    approve_all(n, "fd-v1").await;
    phase(&mds, "fd", DeploymentPhase::Available).await;
    let uid = mds.get("fd").await.expect("md").metadata.uid.expect("uid");
    // Admission stops everyone else; acting as the operator's identity
    // stands for what admission cannot stop (a policy not yet installed).
    let drift: Api<Deployment> = Api::namespaced(operator_client().await, n);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), n);
    let image_of = |d: &Deployment| {
        d.spec
            .template
            .spec
            .as_ref()
            .map(|s| s.containers[0].image.clone().unwrap_or_default())
    };

    // Remove the label and change the image in one write: the label-selected
    // watch loses sight of it, and the operator still puts it back.
    let patch = serde_json::json!({
        "metadata": {"labels": {"app.kubernetes.io/managed-by": null}},
        "spec": {"template": {"spec": {"containers": [{"name": "server", "image": EVIL_IMAGE}]}}},
    });
    drift
        .patch("fd", &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .expect("drift");
    eventually(60, "the label and the image put back", || async {
        let d = deployments.get("fd").await.ok()?;
        let labelled = d
            .metadata
            .labels
            .as_ref()?
            .get("app.kubernetes.io/managed-by")?
            == "modelgate";
        (labelled && image_of(&d).as_deref() == Some(SERVER_IMAGE)).then_some(())
    })
    .await;

    // Orphan it: the operator adopts it back.
    drift
        .patch(
            "fd",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"metadata": {"ownerReferences": null}})),
        )
        .await
        .expect("orphan");
    eventually(60, "the orphan re-adopted", || async {
        let d = deployments.get("fd").await.ok()?;
        d.metadata
            .owner_references?
            .iter()
            .any(|o| o.uid == uid && o.controller == Some(true))
            .then_some(())
    })
    .await;

    // Delete it: re-created, and the status never says Available without it.
    deployments
        .delete("fd", &DeleteParams::default())
        .await
        .expect("delete");
    eventually(60, "the Deployment re-created", || async {
        let d = deployments.get_opt("fd").await.ok()??;
        d.metadata.deletion_timestamp.is_none().then_some(())
    })
    .await;
    phase(&mds, "fd", DeploymentPhase::Available).await;
    pods_serve(&client, n, "fd", &digest_of("1.0.0")).await;
}

#[tokio::test]
async fn a_deleted_approval_in_use_revokes_and_stays_until_unused() {
    start_operator();
    let client = install_modelgate().await;
    let ns = TestNamespace::new(&client, "in-use").await;
    let n = ns.name.as_str();
    let approvals: Api<ModelApproval> = Api::namespaced(client.clone(), n);
    let mds: Api<ModelDeployment> = Api::namespaced(client.clone(), n);
    model_approval("fd-v1")
        .version("1.0.0")
        .create(&approvals)
        .await;
    model_approval("unused")
        .version("9.0.0")
        .create(&approvals)
        .await;
    approve_all(n, "fd-v1").await;
    mds.create(
        &PostParams::default(),
        &model_deployment("fd")
            .approval("fd-v1")
            .replicas(2)
            .on_revoke("ScaleToZero")
            .build(),
    )
    .await
    .expect("md");
    phase(&mds, "fd", DeploymentPhase::Available).await;
    let marked = eventually(30, "the in-use finalizer", || async {
        let a = approvals.get("fd-v1").await.ok()?;
        a.metadata
            .finalizers?
            .contains(&"modelgate.io/in-use".to_string())
            .then_some(())
    });
    marked.await;
    let unused = approvals.get("unused").await.expect("unused");
    assert!(
        unused.metadata.finalizers.unwrap_or_default().is_empty(),
        "an approval no one uses is not marked"
    );

    approvals
        .delete("fd-v1", &DeleteParams::default())
        .await
        .expect("delete");
    let revoked = phase(&mds, "fd", DeploymentPhase::Revoked).await;
    assert_eq!(
        satisfied_reason(&revoked).as_deref(),
        Some("ApprovalDeleted")
    );
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), n);
    eventually(30, "onRevoke ScaleToZero applied", || async {
        let d = deployments.get("fd").await.ok()?;
        (d.spec.replicas == Some(0)).then_some(())
    })
    .await;
    assert!(
        approvals.get_opt("fd-v1").await.expect("read").is_some(),
        "kept while served"
    );

    mds.delete("fd", &DeleteParams::default())
        .await
        .expect("delete md");
    // The approval goes once nothing uses it.
    gone(&approvals, "fd-v1", 60).await;
}

/// The name of the ReplicaSet of `md` whose pods run `digest`.
async fn replicaset_of(client: &kube::Client, ns: &str, md: &str, digest: &str) -> String {
    let api: Api<ReplicaSet> = Api::namespaced(client.clone(), ns);
    let selector = format!("modelgate.io/model-deployment={md}");
    eventually(
        60,
        &format!("the ReplicaSet of {md} for {digest}"),
        || async {
            api.list(&ListParams::default().labels(&selector))
                .await
                .ok()?
                .items
                .into_iter()
                .find(|r| {
                    r.spec
                        .template
                        .as_ref()
                        .and_then(|t| t.metadata.as_ref())
                        .and_then(|m| m.annotations.as_ref())
                        .and_then(|a| a.get("modelgate.io/model-digest"))
                        == Some(&digest.to_string())
                })
                .and_then(|r| r.metadata.name)
        },
    )
    .await
}

/// ModelDeployment fd served 1.0.0 (approval fd-v1), then was re-pointed
/// at 2.0.0 (fd-v2), which now serves; both approvals stand.
async fn v2_replaced_v1(client: &kube::Client, n: &str) -> Api<ModelDeployment> {
    let (approvals, mds) = create_model(client, n, "fd", "fd-v1", "1.0.0", None).await;
    approve_all(n, "fd-v1").await;
    phase(&mds, "fd", DeploymentPhase::Available).await;
    model_approval("fd-v2")
        .version("2.0.0")
        .create(&approvals)
        .await;
    approve_all(n, "fd-v2").await;
    let patch = serde_json::json!({"spec": {"approvalRef": {"name": "fd-v2"}}});
    mds.patch("fd", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("re-point");
    phase(&mds, "fd", DeploymentPhase::Available).await;
    mds
}

/// A version rejected after a newer one replaced it never runs again, and a
/// revoked one never grows: every way to bring back or keep the pods of a
/// model that is no longer approved, at each level between the
/// ModelDeployment and the pod, is refused, and the status says what runs.
#[tokio::test]
async fn a_rejected_version_never_runs_again() {
    let (client, ns, record) = watched_governed_namespace("no-way-back").await;
    let n = ns.name.as_str();
    let mds = v2_replaced_v1(&client, n).await;
    let (v1, v2) = (digest_of("1.0.0"), digest_of("2.0.0"));
    let pods = pods_serve(&client, n, "fd", &v2).await;
    let pod = pods[0].metadata.name.clone().unwrap_or_default();
    let old_rs = replicaset_of(&client, n, "fd", &v1).await;
    let new_rs = replicaset_of(&client, n, "fd", &v2).await;
    fail_gate(n, "fd-v1", "SecurityReview").await;
    let rejected_v1 = jiff::Timestamp::now();

    let rs_table: Vec<Attack> = [&old_rs, &new_rs]
        .into_iter()
        .flat_map(|rs| {
            let target = format!("rs/{rs}");
            vec![
                Attack::kubectl(
                    "relabel a ReplicaSet out of its Deployment",
                    &[
                        "label",
                        &target,
                        "modelgate.io/model-deployment=detached",
                        "--overwrite",
                    ],
                )
                .says(&[GOVERNED, "never change here"]),
                Attack::kubectl(
                    "remove a ReplicaSet's pod-template-hash",
                    &["label", &target, "pod-template-hash-"],
                )
                .says(&[GOVERNED, "never change here"]),
                Attack::kubectl(
                    "add a modelgate label to a ReplicaSet",
                    &["label", &target, "modelgate.io/extra=1"],
                )
                .says(&[GOVERNED, "never change here"]),
                Attack::kubectl(
                    "scale a ReplicaSet (scale subresource)",
                    &["scale", &target, "--replicas=3"],
                )
                .says(&[GOVERNED, "never scaled directly"]),
                Attack::kubectl(
                    "patch a ReplicaSet's replicas",
                    &["patch", &target, "-p", r#"{"spec":{"replicas":3}}"#],
                )
                .says(&[GOVERNED, "set only by the Deployment controller"]),
                Attack::kubectl(
                    "stall a ReplicaSet with minReadySeconds",
                    &[
                        "patch",
                        &target,
                        "-p",
                        r#"{"spec":{"minReadySeconds":300}}"#,
                    ],
                )
                .says(&[GOVERNED, "set only by the Deployment controller"]),
                Attack::kubectl(
                    "delete a ReplicaSet, orphaning its pods",
                    &["delete", &target, "--cascade=orphan", "--wait=false"],
                )
                .says(&[GOVERNED, "deleted only by"]),
                Attack::kubectl(
                    "hold a ReplicaSet with a finalizer",
                    &[
                        "patch",
                        &target,
                        "--type=merge",
                        "-p",
                        r#"{"metadata":{"finalizers":["example.com/hold"]}}"#,
                    ],
                )
                .says(&[GOVERNED, "finalizers"]),
                Attack::kubectl(
                    "remove a ReplicaSet's ownerReferences",
                    &[
                        "patch",
                        &target,
                        "--type=json",
                        "-p",
                        r#"[{"op":"remove","path":"/metadata/ownerReferences"}]"#,
                    ],
                )
                .says(&[GOVERNED, "ownerReferences"]),
            ]
        })
        .collect();
    let pod_target = format!("pod/{pod}");
    let rest: Vec<Attack> = vec![
        Attack::kubectl(
            "take a pod out of its ReplicaSet by its label",
            &["label", &pod_target, "modelgate.io/model-deployment-"],
        )
        .says(&[GOVERNED, "never change here"]),
        Attack::kubectl(
            "change a pod's pod-template-hash",
            &[
                "label",
                &pod_target,
                "pod-template-hash=other",
                "--overwrite",
            ],
        )
        .says(&[GOVERNED, "never change here"]),
        Attack::kubectl(
            "remove a pod's ownerReferences",
            &[
                "patch",
                &pod_target,
                "--type=json",
                "-p",
                r#"[{"op":"remove","path":"/metadata/ownerReferences"}]"#,
            ],
        )
        .says(&[GOVERNED, "ownerReferences"]),
        Attack::kubectl(
            "hold a pod with a finalizer",
            &[
                "patch",
                &pod_target,
                "--type=merge",
                "-p",
                r#"{"metadata":{"finalizers":["example.com/hold"]}}"#,
            ],
        )
        .says(&[GOVERNED, "finalizers"]),
        Attack::kubectl(
            "hold the Deployment with a finalizer",
            &[
                "patch",
                "deployment/fd",
                "--type=merge",
                "-p",
                r#"{"metadata":{"finalizers":["example.com/hold"]}}"#,
            ],
        )
        .says(&[GOVERNED, "finalizers"]),
        Attack::kubectl(
            "kubectl scale the Deployment",
            &["scale", "deployment/fd", "--replicas=8"],
        )
        .says(&[GOVERNED, "set spec.replicas on the ModelDeployment"]),
        Attack::kubectl(
            "kubectl rollout pause",
            &["rollout", "pause", "deployment/fd"],
        )
        .says(&["rollout settings", "change ModelDeployment fd instead"]),
        Attack::kubectl(
            "stall the rollout with minReadySeconds",
            &[
                "patch",
                "deployment/fd",
                "-p",
                r#"{"spec":{"minReadySeconds":300}}"#,
            ],
        )
        .says(&["rollout settings"]),
        Attack::kubectl(
            "change the rollout strategy",
            &[
                "patch",
                "deployment/fd",
                "-p",
                r#"{"spec":{"strategy":{"rollingUpdate":{"maxUnavailable":0,"maxSurge":1}}}}"#,
            ],
        )
        .says(&["rollout settings"]),
        Attack::kubectl(
            "kubectl rollout undo to the rejected version",
            &["rollout", "undo", "deployment/fd"],
        )
        .says(&["change ModelDeployment fd instead"]),
    ];
    all_refused(n, &rs_table);
    all_refused(n, &rest);
    // A cluster admin is held to the same rules.
    all_refused(n, &by_admin(&rs_table[..4]));
    all_refused(n, &by_admin(&rest[..7]));

    // v2 is revoked under onRevoke Hold: its pods stay, and never grow.
    fail_gate(n, "fd-v2", "LegalReview").await;
    let revoked = phase(&mds, "fd", DeploymentPhase::Revoked).await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), n);
    eventually(60, "the held-replicas mark", || async {
        let d = deployments.get("fd").await.ok()?;
        d.metadata
            .annotations?
            .get("modelgate.io/held-replicas")
            .cloned()
    })
    .await;
    let grow = [
        Attack::kubectl(
            "scale a held Deployment",
            &["scale", "deployment/fd", "--replicas=8"],
        )
        .says(&[GOVERNED]),
        Attack::kubectl(
            "patch a held Deployment's replicas",
            &["patch", "deployment/fd", "-p", r#"{"spec":{"replicas":8}}"#],
        )
        .says(&["held at 1 replicas", "onRevoke: Hold"]),
    ];
    all_refused(n, &grow);
    all_refused(n, &by_admin(&grow[1..]));
    let status = revoked.status.clone().unwrap_or_default();
    assert_eq!(status.served_model.map(|m| m.digest), Some(v2.clone()));

    // An orphaning delete stops the model all the same.
    let out = as_dev(
        n,
        &["delete", "md", "fd", "--cascade=orphan", "--wait=false"],
        None,
    );
    assert!(out.status.success(), "delete md: {}", text(&out));
    gone(&deployments, "fd", 60).await;
    event_about(&client, n, "fd", 30, |e| {
        e.reason.as_deref() == Some("OrphanDeleted")
    })
    .await;

    // No pod ran a model that was not Approved when the pod was created.
    let all = record.lock().map(|r| r.clone()).unwrap_or_default();
    let late: Vec<String> = all
        .iter()
        .filter(|p| {
            let born = p.metadata.creation_timestamp.as_ref().map(|t| t.0);
            seen(p).2.contains(&v1) && born.is_some_and(|t| t > rejected_v1)
        })
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    assert!(
        late.is_empty(),
        "pods of the rejected v1 created after its rejection: {late:?}"
    );
    assert!(
        all.iter()
            .all(|p| seen(p).2.iter().all(|d| *d == v1 || *d == v2))
    );
}

/// What admission cannot stop (no policy installed, an ungoverned
/// namespace, the operator's own identity) the operator puts back: a
/// ReplicaSet of a rejected version scaled up goes back to zero, a paused
/// Deployment is resumed, and the status names what the pods run.
#[tokio::test]
async fn the_operator_puts_back_stray_replicasets_and_pauses() {
    start_operator();
    let client = install_modelgate().await;
    let ns = TestNamespace::new(&client, "strays").await;
    let n = ns.name.as_str();
    let mds = v2_replaced_v1(&client, n).await;
    let (v1, v2) = (digest_of("1.0.0"), digest_of("2.0.0"));
    pods_serve(&client, n, "fd", &v2).await;
    let old_rs = replicaset_of(&client, n, "fd", &v1).await;
    fail_gate(n, "fd-v1", "SecurityReview").await;

    // Outside a governed namespace, a developer may take a ReplicaSet out
    // of its Deployment and scale it.
    let rs: Api<ReplicaSet> = Api::namespaced(client.clone(), n);
    let detach = serde_json::json!({
        "metadata": {"labels": {"modelgate.io/model-deployment": "detached"}},
        "spec": {"replicas": 3},
    });
    rs.patch(&old_rs, &PatchParams::default(), &Patch::Merge(&detach))
        .await
        .expect("scale the old ReplicaSet");
    eventually(
        60,
        "the rejected version's ReplicaSet back at zero",
        || async {
            let r = rs.get(&old_rs).await.ok()?;
            (r.spec.replicas == Some(0)).then_some(())
        },
    )
    .await;
    event_about(&client, n, &old_rs, 30, |e| {
        e.reason.as_deref() == Some("UnapprovedReplicaSetScaledDown")
    })
    .await;

    // A pause that got past admission is lifted by the next apply.
    let drift: Api<Deployment> = Api::namespaced(operator_client().await, n);
    let pause = serde_json::json!({"spec": {"paused": true}});
    drift
        .patch("fd", &PatchParams::default(), &Patch::Merge(&pause))
        .await
        .expect("pause as the operator's identity");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), n);
    eventually(60, "the Deployment resumed", || async {
        let d = deployments.get("fd").await.ok()?;
        (d.spec.paused != Some(true)).then_some(())
    })
    .await;

    // The status says what the pods run.
    let md = phase(&mds, "fd", DeploymentPhase::Available).await;
    let status = md.status.unwrap_or_default();
    let running: Vec<(String, i32)> = status
        .running
        .iter()
        .map(|r| (r.digest.clone(), r.pods))
        .collect();
    assert_eq!(running, [(v2.clone(), 1)]);
    assert_eq!(status.served_model.map(|m| m.digest), Some(v2));
}

/// Re-pointing `approvalRef` at another namespace before a rejection hides
/// nothing: the operator still applies onRevoke to what serves, holds the
/// Deployment, and no pod of the rejected model starts afterwards.
#[tokio::test]
async fn a_ref_to_another_namespace_hides_no_revocation() {
    let (client, ns, record) = watched_governed_namespace("elsewhere-ref").await;
    let n = ns.name.as_str();
    let approvals: Api<ModelApproval> = Api::namespaced(client.clone(), n);
    let mds: Api<ModelDeployment> = Api::namespaced(client.clone(), n);
    model_approval("fd-v1")
        .version("1.0.0")
        .create(&approvals)
        .await;
    // No spec.replicas: the Deployment's replicas are editable until held.
    let md = model_deployment("fd")
        .approval("fd-v1")
        .on_revoke("ScaleToZero")
        .build();
    mds.create(&PostParams::default(), &md).await.expect("md");
    approve_all(n, "fd-v1").await;
    phase(&mds, "fd", DeploymentPhase::Available).await;
    let v1 = digest_of("1.0.0");
    pods_serve(&client, n, "fd", &v1).await;

    // The developer's own object, so this is allowed; it must change nothing.
    let elsewhere = r#"{"spec":{"approvalRef":{"namespace":"elsewhere"}}}"#;
    let out = as_dev(
        n,
        &["patch", "md", "fd", "--type", "merge", "-p", elsewhere],
        None,
    );
    assert!(out.status.success(), "re-point: {}", text(&out));
    phase(&mds, "fd", DeploymentPhase::Failed).await;
    fail_gate(n, "fd-v1", "SecurityReview").await;
    let rejected = jiff::Timestamp::now();

    let md = phase(&mds, "fd", DeploymentPhase::Revoked).await;
    assert_eq!(satisfied_reason(&md).as_deref(), Some("ApprovalRevoked"));
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), n);
    eventually(60, "the rejected model scaled to zero", || async {
        let d = deployments.get("fd").await.ok()?;
        let held = d
            .metadata
            .annotations
            .as_ref()?
            .get("modelgate.io/held-replicas");
        (d.spec.replicas == Some(0) && held.map(String::as_str) == Some("0")).then_some(())
    })
    .await;
    refused(
        "grow the rejected model's Deployment",
        as_dev(
            n,
            &[
                "patch",
                "deployment",
                "fd",
                "--type",
                "merge",
                "-p",
                r#"{"spec":{"replicas":4}}"#,
            ],
            None,
        ),
        &["held at 0 replicas"],
    );
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), n);
    let live: Vec<Pod> = pods.list(&ListParams::default()).await.expect("pods").items;
    assert!(
        live.iter().all(|p| p.metadata.deletion_timestamp.is_some()),
        "pods of the rejected model still run: {:?}",
        live.iter().map(seen).collect::<Vec<_>>()
    );
    let started_after = started_after(&record, &v1, rejected);
    assert!(
        started_after.is_empty(),
        "pods of the rejected model started after the rejection: {started_after:?}"
    );
}

/// Annotations (or labels) that fill a managed Deployment to the API
/// server's limit would leave no room for the operator's hold, and the
/// Deployment controller, copying them onto the ReplicaSet, could no longer
/// scale it: a rejected model would keep running. Others may write at most
/// 64 KiB of each, and the rejection takes the pods away.
#[tokio::test]
async fn metadata_that_fills_a_managed_deployment_is_refused() {
    start_operator();
    let client = install_modelgate().await;
    let ns = governed_namespace(&client, "filler").await;
    let n = ns.name.as_str();
    let (_approvals, mds) = create_model(&client, n, "fd", "fd-v1", "1.0.0", None).await;
    approve_all(n, "fd-v1").await;
    phase(&mds, "fd", DeploymentPhase::Available).await;
    let v1 = digest_of("1.0.0");
    pods_serve(&client, n, "fd", &v1).await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), n);
    let before = deployments.get("fd").await.expect("deployment");

    // Too long for a command line: the developer's own client.
    let developer: Api<Deployment> = Api::namespaced(person(DEV, &[DEV_GROUP]).await, n);
    let filler = "x".repeat(262_000);
    let many: serde_json::Map<String, serde_json::Value> = (0..600)
        .map(|i| {
            (
                format!("example.com/l{i:03}-{}", "k".repeat(50)),
                "v".repeat(63).into(),
            )
        })
        .collect();
    for (attack, patch) in [
        (
            "fill the annotations",
            serde_json::json!({"metadata": {"annotations": {"example.com/filler": filler}}}),
        ),
        (
            "fill the labels",
            serde_json::json!({"metadata": {"labels": many}}),
        ),
    ] {
        refused(
            attack,
            developer
                .patch("fd", &PatchParams::default(), &Patch::Merge(&patch))
                .await,
            &[
                "may write at most 65536 bytes",
                "change ModelDeployment fd instead",
            ],
        );
    }
    let after = deployments.get("fd").await.expect("deployment");
    assert_eq!(after.metadata.annotations, before.metadata.annotations);
    assert_eq!(after.metadata.labels, before.metadata.labels);
    // A note of ordinary size is still the developer's to write.
    let note = serde_json::json!({"metadata": {"annotations": {"example.com/owner": "risk-team"}}});
    developer
        .patch("fd", &PatchParams::default(), &Patch::Merge(&note))
        .await
        .expect("an ordinary annotation");

    // Make it ScaleToZero, then reject: no pod of the model is left.
    let scale = serde_json::json!({"spec": {"onRevoke": "ScaleToZero"}});
    mds.patch("fd", &PatchParams::default(), &Patch::Merge(&scale))
        .await
        .expect("onRevoke");
    fail_gate(n, "fd-v1", "SecurityReview").await;
    phase(&mds, "fd", DeploymentPhase::Revoked).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), n);
    eventually(60, "no pod of the rejected model left", || async {
        let list = pods.list(&ListParams::default()).await.ok()?;
        list.items.is_empty().then_some(())
    })
    .await;
}

/// A rollout under way when its approval is withdrawn stops there (onRevoke
/// Hold): the Deployment is held and paused, so releasing the pods it had
/// already started (here by removing their scheduling gates) does not let
/// it go on and start more pods of the withdrawn model. Serving an approved
/// model again lifts the pause.
#[tokio::test]
async fn a_withdrawn_rollout_under_way_goes_no_further() {
    let (client, ns, record) = watched_governed_namespace("half-rolled").await;
    let n = ns.name.as_str();
    let approvals: Api<ModelApproval> = Api::namespaced(client.clone(), n);
    let mds: Api<ModelDeployment> = Api::namespaced(client.clone(), n);
    model_approval("fd-v1")
        .version("1.0.0")
        .create(&approvals)
        .await;
    let md = model_deployment("fd").approval("fd-v1").replicas(4).build();
    mds.create(&PostParams::default(), &md).await.expect("md");
    approve_all(n, "fd-v1").await;
    phase(&mds, "fd", DeploymentPhase::Available).await;
    model_approval("fd-v2")
        .version("2.0.0")
        .create(&approvals)
        .await;
    approve_all(n, "fd-v2").await;
    // v2's pods wait on a scheduling gate: the rollout stops half way.
    let gated = r#"{"spec":{"approvalRef":{"name":"fd-v2"},"template":{"spec":{"schedulingGates":[{"name":"example.com/later"}]}}}}"#;
    let out = as_dev(
        n,
        &["patch", "md", "fd", "--type", "merge", "-p", gated],
        None,
    );
    assert!(out.status.success(), "roll out v2: {}", text(&out));
    let (v1, v2) = (digest_of("1.0.0"), digest_of("2.0.0"));
    let v2_rs = replicaset_of(&client, n, "fd", &v2).await;
    let replicasets: Api<ReplicaSet> = Api::namespaced(client.clone(), n);
    // Four replicas, a surge of one and one unavailable: v2 stops at two.
    let half_way = eventually(60, "v2's rollout stalled at two pods", || async {
        let r = replicasets.get(&v2_rs).await.ok()?;
        let pods = r.status.as_ref().map(|s| s.replicas);
        (r.spec.replicas == Some(2) && pods == Some(2)).then_some(2)
    })
    .await;
    fail_gate(n, "fd-v2", "SecurityReview").await;
    let withdrawn = jiff::Timestamp::now();
    phase(&mds, "fd", DeploymentPhase::Revoked).await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), n);
    eventually(60, "the Deployment held and paused", || async {
        let d = deployments.get("fd").await.ok()?;
        let held = d
            .metadata
            .annotations
            .as_ref()?
            .get("modelgate.io/held-replicas");
        (held.map(String::as_str) == Some("4") && d.spec.paused == Some(true)).then_some(())
    })
    .await;

    // The developer lets the gated pods run, again and again.
    let pods: Api<Pod> = Api::namespaced(client.clone(), n);
    for _ in 0..6 {
        for p in pods.list(&ListParams::default()).await.expect("pods").items {
            let gates = p.spec.as_ref().and_then(|s| s.scheduling_gates.as_ref());
            if gates.is_some_and(|g| !g.is_empty()) {
                let name = p.metadata.name.clone().unwrap_or_default();
                let ungate = r#"[{"op":"remove","path":"/spec/schedulingGates"}]"#;
                let _ = as_dev(
                    n,
                    &["patch", "pod", &name, "--type", "json", "-p", ungate],
                    None,
                );
            }
        }
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    }
    let r = replicasets.get(&v2_rs).await.expect("v2's ReplicaSet");
    assert_eq!(
        r.spec.replicas,
        Some(half_way),
        "the withdrawn rollout went on"
    );
    let started_after = started_after(&record, &v2, withdrawn);
    assert!(
        started_after.is_empty(),
        "pods of the withdrawn model started: {started_after:?}"
    );

    // Back to the approved v1, without the gate: the pause is lifted.
    let back =
        r#"{"spec":{"approvalRef":{"name":"fd-v1"},"template":{"spec":{"schedulingGates":null}}}}"#;
    let out = as_dev(
        n,
        &["patch", "md", "fd", "--type", "merge", "-p", back],
        None,
    );
    assert!(out.status.success(), "back to v1: {}", text(&out));
    phase(&mds, "fd", DeploymentPhase::Available).await;
    pods_serve(&client, n, "fd", &v1).await;
    let d = deployments.get("fd").await.expect("deployment");
    assert_ne!(d.spec.paused, Some(true));
}

/// An autoscaler grows Deployments through the scale subresource, whose
/// Scale object shows no hold: the HorizontalPodAutoscaler a developer
/// points at a held Deployment gets its replicas past admission. The
/// ReplicaSet carries the hold too (the Deployment controller copies it),
/// so it never grows, and no pod of the withdrawn model starts.
#[tokio::test]
async fn an_autoscaler_never_grows_a_held_model() {
    let (client, ns, record) = watched_governed_namespace("autoscaled").await;
    let n = ns.name.as_str();
    let approvals: Api<ModelApproval> = Api::namespaced(client.clone(), n);
    let mds: Api<ModelDeployment> = Api::namespaced(client.clone(), n);
    model_approval("fd-v1")
        .version("1.0.0")
        .create(&approvals)
        .await;
    let md = model_deployment("fd").approval("fd-v1").build();
    mds.create(&PostParams::default(), &md).await.expect("md");
    approve_all(n, "fd-v1").await;
    phase(&mds, "fd", DeploymentPhase::Available).await;
    let v1 = digest_of("1.0.0");
    pods_serve(&client, n, "fd", &v1).await;
    let rs = replicaset_of(&client, n, "fd", &v1).await;
    fail_gate(n, "fd-v1", "SecurityReview").await;
    let withdrawn = jiff::Timestamp::now();
    phase(&mds, "fd", DeploymentPhase::Revoked).await;
    let replicasets: Api<ReplicaSet> = Api::namespaced(client.clone(), n);
    eventually(60, "the hold copied onto the ReplicaSet", || async {
        let r = replicasets.get(&rs).await.ok()?;
        let held = r
            .metadata
            .annotations
            .as_ref()?
            .get("modelgate.io/held-replicas");
        (held.map(String::as_str) == Some("1")).then_some(())
    })
    .await;
    refused(
        "take the hold off the ReplicaSet",
        as_dev(
            n,
            &["annotate", "rs", &rs, "modelgate.io/held-replicas-"],
            None,
        ),
        &[
            GOVERNED,
            "changed only by the Deployment controller and modelgate",
        ],
    );

    let hpa = "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: grow}\n\
               spec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: fd}\n  minReplicas: 4\n  maxReplicas: 5\n";
    let out = as_dev(n, &["apply", "-f", "-"], Some(hpa));
    assert!(
        out.status.success(),
        "an HPA is the developer's to create: {}",
        text(&out)
    );
    for _ in 0..30 {
        let r = replicasets.get(&rs).await.expect("ReplicaSet");
        assert_eq!(r.spec.replicas, Some(1), "the held ReplicaSet grew");
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    let started_after = started_after(&record, &v1, withdrawn);
    assert!(
        started_after.is_empty(),
        "pods of the withdrawn model started: {started_after:?}"
    );

    // An approved model again: the hold is lifted, the mark with it.
    as_dev(n, &["delete", "hpa", "grow"], None);
    model_approval("fd-v2")
        .version("2.0.0")
        .create(&approvals)
        .await;
    approve_all(n, "fd-v2").await;
    let v2 = r#"{"spec":{"approvalRef":{"name":"fd-v2"}}}"#;
    let out = as_dev(n, &["patch", "md", "fd", "--type", "merge", "-p", v2], None);
    assert!(out.status.success(), "serve v2: {}", text(&out));
    phase(&mds, "fd", DeploymentPhase::Available).await;
    eventually(60, "no ReplicaSet marked held", || async {
        let list = replicasets.list(&ListParams::default()).await.ok()?;
        let marked = list.items.iter().any(|r| {
            r.metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key("modelgate.io/held-replicas"))
        });
        (!marked).then_some(())
    })
    .await;
}

/// An approval padded close to the size etcd accepts takes the reviewers'
/// decisions but not the operator's status write that follows, so a
/// rejection would never be recorded and the model would keep serving. Its
/// metadata is capped when it is created.
#[tokio::test]
async fn a_padded_approval_is_refused() {
    start_operator();
    let client = install_modelgate().await;
    let ns = governed_namespace(&client, "padded").await;
    let n = ns.name.as_str();
    let developer: Api<ModelApproval> = Api::namespaced(person(DEV, &[DEV_GROUP]).await, n);
    let mut padded = model_approval("fd-v1").version("1.0.0").build();
    padded.metadata.labels = Some(
        (0..4000)
            .map(|i| {
                (
                    format!("{}.example.com/l{i:05}", "p".repeat(240)),
                    "v".repeat(63),
                )
            })
            .collect(),
    );
    refused(
        "a padded approval",
        developer.create(&PostParams::default(), &padded).await,
        &["is too large", "at most 65536"],
    );
    let mut finalized = model_approval("fd-v1").version("1.0.0").build();
    finalized.metadata.finalizers = Some((0..17).map(|i| format!("example.com/f{i}")).collect());
    refused(
        "an approval with 17 finalizers",
        developer.create(&PostParams::default(), &finalized).await,
        &["17 finalizers"],
    );
    let approvals: Api<ModelApproval> = Api::namespaced(client.clone(), n);
    assert!(approvals.get_opt("fd-v1").await.expect("read").is_none());
    // An ordinary approval is still the developer's to create.
    developer
        .create(
            &PostParams::default(),
            &model_approval("fd-v1").version("1.0.0").build(),
        )
        .await
        .expect("an ordinary approval");
}
