//! Review deadlines on the real control plane: a gate past its policy's
//! deadline is overdue in status, in a Warning Event and in the metric the
//! shipped alert watches, and names who was asked and who is told; the
//! approval expires as ReviewTimedOut only when the policy says so; a
//! deadline never passes a gate.

use kube::api::Api;
use modelgate::api::approval::{ApprovalPhase, ModelApproval};
use modelgate_e2e::{cluster::*, fixtures::*, operator::*, wait::*};

/// A `default` policy of `ns` whose SecurityReview is due `within` after
/// an approval's creation, told to the on-call, and expires it after
/// `expire` when given.
async fn deadline_policy(client: &kube::Client, ns: &str, within: &str, expire: Option<&str>) {
    let mut deadline =
        serde_json::json!({"reviewWithin": within, "escalateTo": ["oncall@example.com"]});
    if let Some(e) = expire {
        deadline["expireAfter"] = e.into();
    }
    apply_policy(
        client,
        ns,
        serde_json::json!({"gates": [{"gate": "SecurityReview", "deadline": deadline}]}),
    )
    .await;
}

/// Every gate but SecurityReview passed, each by its own reviewer.
async fn all_but_security(ns: &str, name: &str) {
    for gate in [
        "TechnicalReview",
        "FairnessReview",
        "LegalReview",
        "BusinessReview",
    ] {
        let reviewer = format!("{}@example.com", gate.to_lowercase());
        set_gate(ns, name, gate, "True", &reviewer)
            .await
            .unwrap_or_else(|e| panic!("pass {gate}: {e}"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_overdue_gate_shows_alerts_and_expires_only_when_the_policy_says_so() {
    let addr = start_operator();
    let client = install_modelgate().await;
    let ns = TestNamespace::new(&client, "deadline").await;
    deadline_policy(&client, &ns.name, "3s", Some("12s")).await;
    let approvals: Api<ModelApproval> = Api::namespaced(client.clone(), &ns.name);
    model_approval("fd-late").create(&approvals).await;
    all_but_security(&ns.name, "fd-late").await;

    let late = eventually(30, "SecurityReview to be overdue", || async {
        let a = approvals.get("fd-late").await.ok()?;
        (!a.status.as_ref()?.overdue.is_empty()).then_some(a)
    })
    .await;
    let status = late.status.as_ref().expect("status");
    let overdue = &status.overdue[0];
    assert_eq!(overdue.gate, "SecurityReview");
    assert_eq!(overdue.escalated_to, ["oncall@example.com"]);
    assert_eq!(
        overdue.asked.as_deref(),
        Some("the SecurityReview reviewers")
    );
    assert_eq!(
        status.phase,
        Some(ApprovalPhase::Pending),
        "a deadline never passes a gate"
    );
    assert_eq!(
        status.waiting_on.as_deref(),
        Some("SecurityReview (overdue)")
    );
    let events = event_about(&client, &ns.name, "fd-late", 30, |e| {
        e.reason.as_deref() == Some("ReviewOverdue")
    })
    .await;
    let event = events
        .iter()
        .find(|e| e.reason.as_deref() == Some("ReviewOverdue"))
        .expect("the Event");
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    let note = event.note.clone().unwrap_or_default();
    assert!(note.contains("told oncall@example.com"), "{note}");
    let metric = eventually(20, "the overdue metric", || async {
        let (_, m) = http_get(addr, "/metrics");
        let n = sample(&m, "modelgate_overdue_gates{gate=\"SecurityReview\"}");
        (n >= 1.0).then_some(n)
    })
    .await;
    assert!(metric >= 1.0);

    // The second deadline: expired as ReviewTimedOut, for good.
    let expired = eventually(30, "the approval to time out", || async {
        let a = approvals.get("fd-late").await.ok()?;
        (a.status.as_ref()?.phase == Some(ApprovalPhase::Expired)).then_some(a)
    })
    .await;
    let approved = condition_of(&expired, "Approved")
        .cloned()
        .expect("Approved");
    assert_eq!(approved.reason.as_deref(), Some("ReviewTimedOut"));
    set_gate(
        &ns.name,
        "fd-late",
        "SecurityReview",
        "True",
        "sam@example.com",
    )
    .await
    .expect("a late decision is still written");
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let after = approvals.get("fd-late").await.expect("approval");
    assert_eq!(
        after.status.as_ref().and_then(|s| s.phase),
        Some(ApprovalPhase::Expired)
    );
    assert_eq!(
        after.status.as_ref().and_then(|s| s.approved_at.clone()),
        None
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_expire_after_an_overdue_gate_waits_and_a_late_decision_counts() {
    start_operator();
    let client = install_modelgate().await;
    let ns = TestNamespace::new(&client, "deadline-wait").await;
    deadline_policy(&client, &ns.name, "2s", None).await;
    let approvals: Api<ModelApproval> = Api::namespaced(client.clone(), &ns.name);
    model_approval("fd-wait").create(&approvals).await;
    all_but_security(&ns.name, "fd-wait").await;
    eventually(30, "SecurityReview to be overdue", || async {
        let a = approvals.get("fd-wait").await.ok()?;
        (!a.status.as_ref()?.overdue.is_empty()).then_some(())
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    let waiting = approvals.get("fd-wait").await.expect("approval");
    assert_eq!(
        waiting.status.as_ref().and_then(|s| s.phase),
        Some(ApprovalPhase::Pending)
    );
    set_gate(
        &ns.name,
        "fd-wait",
        "SecurityReview",
        "True",
        "sam@example.com",
    )
    .await
    .expect("pass SecurityReview");
    let approved = eventually(30, "the late decision to approve", || async {
        let a = approvals.get("fd-wait").await.ok()?;
        (a.status.as_ref()?.phase == Some(ApprovalPhase::Approved)).then_some(a)
    })
    .await;
    assert!(
        approved
            .status
            .as_ref()
            .is_some_and(|s| s.overdue.is_empty())
    );
}
