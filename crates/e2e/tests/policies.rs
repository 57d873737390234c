//! Approval policies on the real control plane: a 2-of-N quorum gate, a
//! veto, separation of duties across reviews, forged reviews refused, an
//! automatic gate decided from measurements only its evaluator may write,
//! rules pinned per approval, and a broken rule reported in the policy.

use kube::api::{Api, Patch, PatchParams};
use modelgate::api::policy::ApprovalPolicy;
use modelgate::api::review::{MeasurementInput, measurement_patch, review_patch};
use modelgate::api::{
    approval::{ApprovalPhase, ModelApproval},
    deployment::{DeploymentPhase, ModelDeployment},
    gates::Gate,
};
use modelgate_e2e::{cluster::*, fixtures::*, operator::*, plugin::*, pods::*, users::*, wait::*};

const EVALUATOR: &str = "system:serviceaccount:ml-pipelines:evaluator";
const EVALUATOR_GROUPS: [&str; 2] = [
    "system:serviceaccounts",
    "system:serviceaccounts:ml-pipelines",
];
const SECURITY: &str = "modelgate:security-reviewers";

fn policy(ns: &str, name: &str, security_reviewers: u32, rule: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "modelgate.io/v1alpha1", "kind": "ApprovalPolicy",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"gates": [
            {"gate": "SecurityReview", "reviewers": security_reviewers},
            {"gate": "TechnicalReview", "automatic": {"rule": rule, "measuredBy": [EVALUATOR], "mode": "Decide"}},
            {"gate": "FairnessReview", "automatic": {"rule": "m.disparity <= 1.1", "measuredBy": [EVALUATOR], "mode": "Advise"}},
        ]},
    })
}

async fn apply_policy(client: &kube::Client, ns: &str, body: &serde_json::Value) {
    let api: Api<ApprovalPolicy> = Api::namespaced(client.clone(), ns);
    let name = body["metadata"]["name"].as_str().unwrap_or_default();
    api.patch(
        name,
        &PatchParams::apply("policy-admin").force(),
        &Patch::Apply(body),
    )
    .await
    .expect("apply policy");
}

/// The policy once its status describes its newest generation.
async fn policy_status(client: &kube::Client, ns: &str, name: &str) -> ApprovalPolicy {
    let api: Api<ApprovalPolicy> = Api::namespaced(client.clone(), ns);
    eventually(60, &format!("policy {name} observed"), || async {
        let p = api.get(name).await.ok()?;
        let status = p.status.as_ref()?;
        (status.observed_generation == p.metadata.generation).then_some(p.clone())
    })
    .await
}

/// The approval once `check` holds of it.
async fn approval_when(
    api: &Api<ModelApproval>,
    name: &str,
    what: &str,
    check: impl Fn(&ModelApproval) -> bool,
) -> ModelApproval {
    eventually(60, what, || async {
        let a = api.get(name).await.ok()?;
        check(&a).then_some(a)
    })
    .await
}

fn progress_of(a: &ModelApproval, gate: &str) -> Option<String> {
    a.status
        .as_ref()?
        .progress
        .iter()
        .find(|p| p.gate == gate && p.mode != Some(modelgate::api::policy::RuleMode::Advise))
        .map(|p| p.progress.clone())
}

fn gate_status(a: &ModelApproval, gate: &str) -> String {
    condition_of(a, gate)
        .map(|c| c.status.clone())
        .unwrap_or_else(|| "Unknown".into())
}

/// The API's refusal message, or a panic when it was allowed.
fn refusal<T: std::fmt::Debug>(what: &str, result: kube::Result<T>) -> String {
    match result {
        Err(kube::Error::Api(s)) if s.code == 403 || s.code == 422 => {
            eprintln!("refused as expected: {what}: {}", s.message);
            s.message
        }
        other => panic!("{what} was not refused: {other:?}"),
    }
}

fn plugin_as(ns: &str, user: &str, groups: &[&str], args: &[&str]) -> std::process::Output {
    run_plugin(ns, Some((user, groups)), args)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_quorum_gate_and_an_automatic_gate_decide_an_approval() {
    start_operator();
    let client = install_modelgate().await;
    let ns = TestNamespace::new(&client, "policy").await;
    let n = ns.name.as_str();
    let bound = kubectl(&[
        "create",
        "rolebinding",
        "evaluator",
        "--clusterrole=modelgate-evaluator",
        &format!("--user={EVALUATOR}"),
        "-n",
        n,
    ]);
    assert!(bound.status.success(), "{}", text(&bound));
    apply_policy(
        &client,
        n,
        &policy(n, "default", 2, "m.auc >= 0.92 && m.latency_p99_ms <= 50"),
    )
    .await;
    let p = policy_status(&client, n, "default").await;
    assert_eq!(condition_of_policy(&p), "True");

    let (approvals, mds) = create_model(&client, n, "fd", "fd-v1", "1.0.0", None).await;
    let pinned = approval_when(&approvals, "fd-v1", "rules pinned", |a| {
        a.status.as_ref().is_some_and(|s| s.policy.is_some())
    })
    .await;
    let rules = pinned.status.and_then(|s| s.policy).expect("pinned");
    assert_eq!(rules.name, format!("{n}/default"));

    // The three gates people decide alone, as before.
    for gate in ["LegalReview", "FairnessReview"] {
        set_gate(
            n,
            "fd-v1",
            gate,
            "True",
            &format!("{}@example.com", gate.to_ascii_lowercase()),
        )
        .await
        .expect("pass gate");
    }
    // A person in two groups passes one gate, and then cannot count for another.
    let both = (
        "both@example.com",
        [SECURITY, "modelgate:business-reviewers"],
    );
    let out = plugin_as(
        n,
        both.0,
        &both.1,
        &["approve", "fd-v1", "--gate", "business"],
    );
    assert!(out.status.success(), "{}", stderr(&out));

    // SecurityReview takes two reviews; its condition is the operator's.
    let sec1 = person("sec1@example.com", &[SECURITY]).await;
    let direct = set_gate_as(
        &sec1,
        n,
        "fd-v1",
        "SecurityReview",
        "True",
        "sec1@example.com",
    )
    .await;
    assert!(
        refusal("a direct condition on a quorum gate", direct)
            .contains("each reviewer adds their own review")
    );
    let out = plugin_as(
        n,
        "sec1@example.com",
        &[SECURITY],
        &[
            "approve",
            "fd-v1",
            "--gate",
            "security",
            "--reason",
            "PenTestPassed",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let a = approval_when(&approvals, "fd-v1", "SecurityReview 1/2", |a| {
        progress_of(a, "SecurityReview").as_deref() == Some("1/2")
    })
    .await;
    assert_eq!(
        gate_status(&a, "SecurityReview"),
        "Unknown",
        "one review is not a quorum"
    );
    assert!(
        a.status
            .as_ref()
            .and_then(|s| s.waiting_on.clone())
            .unwrap_or_default()
            .contains("SecurityReview 1/2")
    );
    // The same person again fills no second slot.
    let out = plugin_as(
        n,
        "sec1@example.com",
        &[SECURITY],
        &["approve", "fd-v1", "--gate", "security"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let shown = plugin_as(n, "sec1@example.com", &[SECURITY], &["status", "fd-v1"]);
    assert!(stdout(&shown).contains("1/2"), "{}", stdout(&shown));
    // A review in someone else's name is refused.
    let api: Api<ModelApproval> = Api::namespaced(sec1.clone(), n);
    let forged = review_patch(
        "fd-v1",
        Gate::Security,
        "Approve",
        "Passed",
        None,
        "sec2@example.com",
        jiff::Timestamp::now(),
    );
    let forged = api
        .patch_status(
            "fd-v1",
            &PatchParams::apply("forger").force(),
            &Patch::Apply(&forged),
        )
        .await;
    assert!(
        refusal("a review in another's name", forged).contains("a review names its own author")
    );
    // The person who passed BusinessReview cannot review SecurityReview.
    let out = plugin_as(
        n,
        both.0,
        &both.1,
        &["approve", "fd-v1", "--gate", "security"],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("separation of duties"),
        "{}",
        stderr(&out)
    );
    // The second distinct reviewer passes it, and both are named.
    let out = plugin_as(
        n,
        "sec2@example.com",
        &[SECURITY],
        &["approve", "fd-v1", "--gate", "security"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let a = approval_when(&approvals, "fd-v1", "SecurityReview passed", |a| {
        gate_status(a, "SecurityReview") == "True"
    })
    .await;
    let reviewer = condition_of(&a, "SecurityReview")
        .and_then(|c| c.reviewer.clone())
        .unwrap_or_default();
    assert!(
        reviewer.contains("sec1@example.com") && reviewer.contains("sec2@example.com"),
        "{reviewer}"
    );

    // TechnicalReview: its rule decides, from the evaluator's measurements only.
    let technical = person("tess@example.com", &["modelgate:technical-reviewers"]).await;
    let direct = set_gate_as(
        &technical,
        n,
        "fd-v1",
        "TechnicalReview",
        "True",
        "tess@example.com",
    )
    .await;
    assert!(refusal("a direct condition on a rule's gate", direct).contains("its rule decides it"));
    let input = MeasurementInput {
        name: "auc",
        value: 0.99,
        source: None,
        source_digest: None,
    };
    let by_reviewer =
        measurement_patch("fd-v1", &input, "tess@example.com", jiff::Timestamp::now());
    let by_reviewer = Api::<ModelApproval>::namespaced(technical.clone(), n)
        .patch_status(
            "fd-v1",
            &PatchParams::apply("measure-auc").force(),
            &Patch::Apply(&by_reviewer),
        )
        .await;
    assert!(
        refusal("a measurement by a reviewer", by_reviewer)
            .contains(&format!("written only by {EVALUATOR}"))
    );
    let out = plugin_as(
        n,
        EVALUATOR,
        &EVALUATOR_GROUPS,
        &[
            "measure",
            "fd-v1",
            "--metric",
            "auc=0.95",
            "--source",
            "s3://evals/fd/1.0.0/report.json",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let a = approval_when(&approvals, "fd-v1", "the rule waits for latency", |a| {
        a.status.as_ref().is_some_and(|s| {
            s.progress
                .iter()
                .any(|p| p.message.contains("waits for measurement latency_p99_ms"))
        })
    })
    .await;
    assert_eq!(gate_status(&a, "TechnicalReview"), "Unknown");
    let out = plugin_as(
        n,
        EVALUATOR,
        &EVALUATOR_GROUPS,
        &["measure", "fd-v1", "--metric", "latency_p99_ms=80"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let a = approval_when(&approvals, "fd-v1", "the rule fails the gate", |a| {
        gate_status(a, "TechnicalReview") == "False"
    })
    .await;
    assert_eq!(
        a.status.as_ref().and_then(|s| s.phase),
        Some(ApprovalPhase::Rejected)
    );
    let out = plugin_as(
        n,
        EVALUATOR,
        &EVALUATOR_GROUPS,
        &["measure", "fd-v1", "--metric", "latency_p99_ms=40"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let a = approval_when(&approvals, "fd-v1", "Approved", |a| {
        a.status.as_ref().and_then(|s| s.phase) == Some(ApprovalPhase::Approved)
    })
    .await;
    let technical_condition = condition_of(&a, "TechnicalReview")
        .cloned()
        .unwrap_or_default();
    assert_eq!(technical_condition.reason.as_deref(), Some("RuleMet"));
    let said = technical_condition.message.unwrap_or_default();
    assert!(
        said.contains("auc=0.95") && said.contains("latency_p99_ms=40") && said.contains(EVALUATOR),
        "{said}"
    );
    phase(&mds, "fd", DeploymentPhase::Available).await;
    // The Advise rule is shown beside the human decision of FairnessReview.
    let advice = a
        .status
        .as_ref()
        .and_then(|s| {
            s.progress
                .iter()
                .find(|p| p.gate == "FairnessReview")
                .cloned()
        })
        .expect("advice");
    assert!(
        advice.message.contains("waits for measurement disparity"),
        "{}",
        advice.message
    );
    // History names each review and measurement with its actor.
    let history = a.status.clone().unwrap_or_default().history;
    for (subject, actor) in [
        ("SecurityReview review", "sec1@example.com"),
        ("SecurityReview review", "sec2@example.com"),
        ("Measurement auc", EVALUATOR),
    ] {
        assert!(
            history
                .iter()
                .any(|e| e.subject == subject && e.reviewer.as_deref() == Some(actor)),
            "no {subject} by {actor} in history"
        );
    }

    // One rejection is a veto.
    let out = plugin_as(
        n,
        "sec3@example.com",
        &[SECURITY],
        &[
            "reject",
            "fd-v1",
            "--gate",
            "security",
            "--reason",
            "CveFound",
            "-m",
            "CVE in the base image",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let a = approval_when(&approvals, "fd-v1", "vetoed", |a| {
        gate_status(a, "SecurityReview") == "False"
    })
    .await;
    assert_eq!(
        condition_of(&a, "SecurityReview")
            .and_then(|c| c.reviewer.clone())
            .as_deref(),
        Some("sec3@example.com")
    );
    let mds: Api<ModelDeployment> = mds;
    phase(&mds, "fd", DeploymentPhase::Revoked).await;
}

fn condition_of_policy(p: &ApprovalPolicy) -> String {
    p.status
        .as_ref()
        .and_then(|s| modelgate::api::condition::find(&s.conditions, "Ready"))
        .map(|c| c.status.clone())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pinned_approval_keeps_its_rules_and_a_broken_rule_is_reported() {
    start_operator();
    let client = install_modelgate().await;
    let ns = TestNamespace::new(&client, "pinned").await;
    let n = ns.name.as_str();
    apply_policy(&client, n, &policy(n, "default", 2, "m.auc >= 0.9")).await;
    policy_status(&client, n, "default").await;
    let approvals: Api<ModelApproval> = Api::namespaced(client.clone(), n);
    model_approval("a1")
        .version("1.0.0")
        .create(&approvals)
        .await;
    let before = approval_when(&approvals, "a1", "a1 pinned", |a| {
        a.status.as_ref().is_some_and(|s| s.policy.is_some())
    })
    .await;
    let pinned = before.status.and_then(|s| s.policy).expect("pinned");

    // The policy is edited: a1 keeps what it pinned, a new approval pins the edit.
    apply_policy(&client, n, &policy(n, "default", 3, "m.auc >= 0.9")).await;
    let edited = policy_status(&client, n, "default").await;
    assert_eq!(edited.metadata.generation, Some(2));
    model_approval("a2")
        .version("2.0.0")
        .create(&approvals)
        .await;
    let a2 = approval_when(&approvals, "a2", "a2 pinned", |a| {
        a.status.as_ref().is_some_and(|s| s.policy.is_some())
    })
    .await;
    let security = |p: &modelgate::api::policy::PinnedPolicy| {
        p.gates
            .iter()
            .find(|g| g.gate == "SecurityReview")
            .map(|g| g.reviewers)
    };
    assert_eq!(
        security(&a2.status.and_then(|s| s.policy).expect("a2 pinned")),
        Some(3)
    );
    for who in ["s1@example.com", "s2@example.com"] {
        let out = plugin_as(
            n,
            who,
            &[SECURITY],
            &["approve", "a1", "--gate", "security"],
        );
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let a1 = approval_when(
        &approvals,
        "a1",
        "a1 SecurityReview at 2 of its pinned 2",
        |a| gate_status(a, "SecurityReview") == "True",
    )
    .await;
    assert_eq!(
        a1.status.and_then(|s| s.policy),
        Some(pinned),
        "the pin never changes"
    );

    // A rule that does not compile shows in the policy's status and columns.
    apply_policy(&client, n, &policy(n, "broken", 2, "m.auc >= ")).await;
    let broken = policy_status(&client, n, "broken").await;
    assert_eq!(condition_of_policy(&broken), "False");
    let status = broken.status.clone().unwrap_or_default();
    let ready = modelgate::api::condition::find(&status.conditions, "Ready")
        .cloned()
        .unwrap_or_default();
    assert!(
        ready
            .message
            .unwrap_or_default()
            .contains("the rule of TechnicalReview does not compile")
    );
    let table = text(&kubectl(&["get", "approvalpolicies", "-n", n]));
    assert!(
        table.contains("broken")
            && table.contains("False")
            && table.contains("SecurityReview 2 reviewers"),
        "{table}"
    );
}

const TECH_EVAL: &str = "system:serviceaccount:ml-pipelines:tech-eval";
const FAIR_EVAL: &str = "system:serviceaccount:ml-pipelines:fair-eval";

/// `who` writes `name=value` as the CLI does: under its own name and a
/// field manager of its own.
async fn measure_as(who: &str, ns: &str, name: &str, value: f64) -> kube::Result<ModelApproval> {
    let client = client_as(Some(who), &EVALUATOR_GROUPS).await;
    let input = MeasurementInput {
        name,
        value,
        source: None,
        source_digest: None,
    };
    let patch = measurement_patch("fd-v1", &input, who, jiff::Timestamp::now());
    let manager = modelgate::api::review::measurement_manager(name, who);
    Api::<ModelApproval>::namespaced(client, ns)
        .patch_status(
            "fd-v1",
            &PatchParams::apply(&manager).force(),
            &Patch::Apply(&patch),
        )
        .await
}

/// The measurements as (name, value, author), sorted.
fn measurements_of(a: &ModelApproval) -> Vec<(String, String, String)> {
    let mut m: Vec<_> = a
        .status
        .iter()
        .flat_map(|s| &s.measurements)
        .map(|m| (m.name.clone(), m.value.to_string(), m.measured_by.clone()))
        .collect();
    m.sort();
    m
}

/// With TechnicalReview decided by tech-eval's measurements and
/// FairnessReview advised by fair-eval's, fair-eval can neither overwrite
/// nor remove tech-eval's `auc` (refused, named, nothing changed), and its
/// own `auc=0.99` does not pass TechnicalReview.
#[tokio::test(flavor = "multi_thread")]
async fn one_gates_evaluator_neither_overwrites_nor_decides_another_gate() {
    start_operator();
    let client = install_modelgate().await;
    let ns = TestNamespace::new(&client, "measured-by").await;
    let n = ns.name.as_str();
    for who in [TECH_EVAL, FAIR_EVAL] {
        let name = who.rsplit(':').next().unwrap_or("evaluator");
        let bound = kubectl(&[
            "create",
            "rolebinding",
            name,
            "--clusterrole=modelgate-evaluator",
            &format!("--user={who}"),
            "-n",
            n,
        ]);
        assert!(bound.status.success(), "{}", text(&bound));
    }
    let body = serde_json::json!({
        "apiVersion": "modelgate.io/v1alpha1", "kind": "ApprovalPolicy",
        "metadata": {"name": "default", "namespace": n},
        "spec": {"gates": [
            {"gate": "TechnicalReview", "automatic": {"rule": "m.auc >= 0.92", "measuredBy": [TECH_EVAL], "mode": "Decide"}},
            {"gate": "FairnessReview", "automatic": {"rule": "m.auc >= 0.5", "measuredBy": [FAIR_EVAL], "mode": "Advise"}},
        ]},
    });
    apply_policy(&client, n, &body).await;
    let (approvals, _) = create_model(&client, n, "fd", "fd-v1", "1.0.0", None).await;
    approval_when(&approvals, "fd-v1", "rules pinned", |a| {
        a.status.as_ref().is_some_and(|s| s.policy.is_some())
    })
    .await;

    // tech-eval measures a failing value: TechnicalReview False, by tech-eval.
    measure_as(TECH_EVAL, n, "auc", 0.5)
        .await
        .expect("tech-eval measures");
    let before = approval_when(&approvals, "fd-v1", "TechnicalReview False", |a| {
        gate_status(a, "TechnicalReview") == "False"
    })
    .await;
    let tech_only = vec![("auc".to_string(), "0.5".to_string(), TECH_EVAL.to_string())];
    assert_eq!(measurements_of(&before), tech_only);

    // fair-eval replaces tech-eval's entry with its own value: refused.
    let fair =
        Api::<ModelApproval>::namespaced(client_as(Some(FAIR_EVAL), &EVALUATOR_GROUPS).await, n);
    for (what, entry) in [
        (
            "tech-eval's entry changed",
            serde_json::json!({"name": "auc", "value": 0.99, "measuredBy": TECH_EVAL}),
        ),
        (
            "tech-eval's entry replaced by fair-eval's",
            serde_json::json!({"name": "auc", "value": 0.99, "measuredBy": FAIR_EVAL}),
        ),
    ] {
        let patch = serde_json::json!({"status": {"measurements": [entry]}});
        let result = fair
            .patch_status("fd-v1", &PatchParams::default(), &Patch::Merge(&patch))
            .await;
        let said = refusal(what, result);
        assert!(
            said.contains(&format!("measurement auc was written by {TECH_EVAL}"))
                && said.contains("only its author may change or remove it"),
            "{said}"
        );
    }
    let after = approvals.get("fd-v1").await.expect("get the approval");
    assert_eq!(measurements_of(&after), tech_only, "nothing changed");
    assert_eq!(gate_status(&after, "TechnicalReview"), "False");

    // fair-eval's own auc=0.99 sits beside tech-eval's and advises
    // FairnessReview; TechnicalReview still reads tech-eval's 0.5 only.
    measure_as(FAIR_EVAL, n, "auc", 0.99)
        .await
        .expect("fair-eval measures its own");
    let a = approval_when(&approvals, "fd-v1", "fair-eval's advice shown", |a| {
        a.status.as_ref().is_some_and(|s| {
            s.progress
                .iter()
                .any(|p| p.gate == "FairnessReview" && p.result == "True")
        })
    })
    .await;
    assert_eq!(measurements_of(&a).len(), 2, "{:?}", measurements_of(&a));
    let technical = condition_of(&a, "TechnicalReview")
        .cloned()
        .expect("TechnicalReview");
    assert_eq!(technical.status, "False");
    assert_eq!(technical.reviewer.as_deref(), Some(TECH_EVAL));
    let message = technical.message.unwrap_or_default();
    assert!(
        message.contains("auc=0.5") && !message.contains(FAIR_EVAL),
        "{message}"
    );

    // The evaluators live in ml-pipelines: independent of this namespace.
    let independent = |p: &ApprovalPolicy| {
        p.status
            .as_ref()
            .and_then(|s| modelgate::api::condition::find(&s.conditions, "EvaluatorsIndependent"))
            .cloned()
            .unwrap_or_default()
    };
    let p = policy_status(&client, n, "default").await;
    assert_eq!(independent(&p).status, "True");
    // An evaluator in the approvals' own namespace is flagged, by name.
    let local = format!("system:serviceaccount:{n}:evaluator");
    let mut body = body.clone();
    body["metadata"]["name"] = "local-evaluator".into();
    body["spec"]["gates"][0]["automatic"]["measuredBy"] = serde_json::json!([local]);
    apply_policy(&client, n, &body).await;
    let flagged = independent(&policy_status(&client, n, "local-evaluator").await);
    assert_eq!(flagged.status, "False");
    assert_eq!(
        flagged.reason.as_deref(),
        Some("EvaluatorInApprovalsNamespace")
    );
    let said = flagged.message.unwrap_or_default();
    assert!(
        said.contains(&local) && said.contains("serviceaccounts/token"),
        "{said}"
    );
}
