//! The ModelApproval controller against the real API server: gate
//! aggregation, phase, history, events, expiry on time, no writes at rest,
//! and reviewers' conditions that survive every operator write.

use std::time::{Duration, Instant};

use kube::api::Api;
use modelgate::api::approval::{ApprovalPhase, ModelApproval};
use modelgate_e2e::{cluster::*, fixtures::*, operator::*, users::*, wait::*};

const GATES: [&str; 5] = [
    "TechnicalReview",
    "FairnessReview",
    "SecurityReview",
    "LegalReview",
    "BusinessReview",
];

async fn setup(prefix: &str) -> (kube::Client, TestNamespace, Api<ModelApproval>) {
    start_operator();
    let client = install_modelgate().await;
    let ns = TestNamespace::new(&client, prefix).await;
    let api = Api::namespaced(client.clone(), &ns.name);
    (client, ns, api)
}

async fn phase_is(
    api: &Api<ModelApproval>,
    name: &str,
    phase: ApprovalPhase,
) -> Option<ModelApproval> {
    let a = api.get(name).await.ok()?;
    (a.status.as_ref()?.phase == Some(phase)).then_some(a)
}

#[tokio::test(flavor = "multi_thread")]
async fn five_gates_one_by_one_approve_with_history_and_events() {
    let (client, ns, api) = setup("approve").await;
    model_approval("fd")
        .version("2.4.0")
        .valid_for("2160h")
        .create(&api)
        .await;
    eventually(30, "phase Pending", || {
        phase_is(&api, "fd", ApprovalPhase::Pending)
    })
    .await;

    for (i, gate) in GATES.iter().enumerate() {
        set_gate(
            &ns.name,
            "fd",
            gate,
            "True",
            &format!("reviewer-{i}@example.com"),
        )
        .await
        .expect("set gate");
        let want = format!("{}/5", i + 1);
        eventually(30, &format!("{want} gates"), || async {
            let a = api.get("fd").await.ok()?;
            (a.status?.gates_passed.as_deref() == Some(want.as_str())).then_some(())
        })
        .await;
    }
    let a = eventually(30, "phase Approved", || {
        phase_is(&api, "fd", ApprovalPhase::Approved)
    })
    .await;
    let status = a.status.clone().unwrap_or_default();
    let approved = condition_of(&a, "Approved").cloned().unwrap_or_default();
    assert_eq!(
        (approved.status.as_str(), approved.reason.as_deref()),
        ("True", Some("AllGatesPassed"))
    );
    assert!(status.approved_at.is_some() && status.expires_at.is_some());
    assert_eq!(
        status.observed_uid, a.metadata.uid,
        "the status names the approval it was decided for"
    );
    let subjects: Vec<String> = status
        .history
        .iter()
        .map(|h| format!("{}:{}", h.subject, h.to))
        .collect();
    assert_eq!(
        subjects,
        [
            "TechnicalReview:True",
            "FairnessReview:True",
            "SecurityReview:True",
            "LegalReview:True",
            "BusinessReview:True",
            "Phase:Approved"
        ]
    );
    assert_eq!(
        status.history[2].reviewer.as_deref(),
        Some("reviewer-2@example.com")
    );
    // Every reviewer's condition is intact after all the operator's writes.
    for (i, gate) in GATES.iter().enumerate() {
        let c = condition_of(&a, gate).cloned().unwrap_or_default();
        assert_eq!(
            (c.status.as_str(), c.reviewer),
            ("True", Some(format!("reviewer-{i}@example.com")))
        );
    }

    let events = eventually(30, "six events", || async {
        let e = events_for(&client, &ns.name, "fd").await;
        (e.len() >= 6).then_some(e)
    })
    .await;
    let passed: Vec<_> = events
        .iter()
        .filter(|e| e.reason.as_deref() == Some("GatePassed"))
        .collect();
    assert_eq!(passed.len(), 5);
    assert!(passed.iter().all(|e| e.type_.as_deref() == Some("Normal")));
    assert!(passed.iter().any(|e| {
        e.note
            .as_deref()
            .unwrap_or_default()
            .contains("reviewer-3@example.com")
    }));
    let approved: Vec<_> = events
        .iter()
        .filter(|e| e.reason.as_deref() == Some("Approved"))
        .collect();
    assert_eq!(approved.len(), 1);
    assert_eq!(approved[0].type_.as_deref(), Some("Normal"));

    // The scripted equivalent a pipeline would use.
    let out = kubectl(&[
        "wait",
        "-n",
        &ns.name,
        "--for=condition=Approved",
        "modelapproval/fd",
        "--timeout=30s",
    ]);
    assert!(out.status.success(), "kubectl wait: {}", text(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_gate_rejects_until_it_passes_again() {
    let (client, ns, api) = setup("reject").await;
    model_approval("fd").version("2.4.1").create(&api).await;
    for gate in GATES {
        set_gate(&ns.name, "fd", gate, "True", &format!("{gate}@example.com"))
            .await
            .expect("set gate");
    }
    eventually(30, "Approved", || {
        phase_is(&api, "fd", ApprovalPhase::Approved)
    })
    .await;

    set_gate(
        &ns.name,
        "fd",
        "SecurityReview",
        "False",
        "carol@example.com",
    )
    .await
    .expect("fail gate");
    let a = eventually(30, "Rejected", || {
        phase_is(&api, "fd", ApprovalPhase::Rejected)
    })
    .await;
    let c = condition_of(&a, "Approved").cloned().unwrap_or_default();
    assert_eq!(
        (c.status.as_str(), c.reason.as_deref()),
        ("False", Some("SecurityReviewFailed"))
    );
    assert!(c.message.unwrap_or_default().contains("carol@example.com"));
    let warnings = eventually(30, "Warning events", || async {
        let e = events_for(&client, &ns.name, "fd").await;
        let w: Vec<String> = e
            .iter()
            .filter(|e| e.type_.as_deref() == Some("Warning"))
            .filter_map(|e| e.reason.clone())
            .collect();
        (w.len() >= 2).then_some(w)
    })
    .await;
    assert!(
        warnings.contains(&"GateFailed".to_string()) && warnings.contains(&"Rejected".to_string()),
        "{warnings:?}"
    );

    set_gate(
        &ns.name,
        "fd",
        "SecurityReview",
        "True",
        "carol@example.com",
    )
    .await
    .expect("pass gate");
    eventually(30, "Approved again", || {
        phase_is(&api, "fd", ApprovalPhase::Approved)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_approval_expires_on_time_with_no_other_write() {
    let (client, ns, api) = setup("expire").await;
    model_approval("fd")
        .version("2.4.2")
        .valid_for("5s")
        .create(&api)
        .await;
    for gate in GATES {
        set_gate(&ns.name, "fd", gate, "True", &format!("{gate}@example.com"))
            .await
            .expect("set gate");
    }
    let a = eventually(30, "Approved", || {
        phase_is(&api, "fd", ApprovalPhase::Approved)
    })
    .await;
    let status = a.status.clone().unwrap_or_default();
    let expires_at = status.expires_at.clone().map(|t| t.0).expect("expiresAt");
    let rv = a.metadata.resource_version.clone().unwrap_or_default();

    // Watch from the Approved version until shortly after expiry: exactly one
    // write (the operator's Expired), none before it.
    let until_expiry = expires_at.duration_since(jiff::Timestamp::now());
    let window = Duration::try_from(until_expiry).unwrap_or_default() + Duration::from_secs(4);
    let writes = count_writes(&api, "fd", &rv, window).await;
    let a = phase_is(&api, "fd", ApprovalPhase::Expired)
        .await
        .expect("Expired after validFor");
    assert_eq!(writes, 1, "writes between Approved and Expired");
    let c = condition_of(&a, "Approved").cloned().unwrap_or_default();
    assert_eq!(
        (c.status.as_str(), c.reason.as_deref()),
        ("False", Some("Expired"))
    );
    let flipped_at = c
        .last_transition_time
        .map(|t| t.0)
        .expect("transition time");
    let late = flipped_at.duration_since(expires_at);
    println!("expired {:.1}s after expiresAt", late.as_secs_f64());
    assert!(
        late.as_secs() <= 3,
        "expired {:.1}s after expiresAt",
        late.as_secs_f64()
    );
    let events = eventually(30, "Expired event", || async {
        let e = events_for(&client, &ns.name, "fd").await;
        e.into_iter()
            .find(|e| e.reason.as_deref() == Some("Expired"))
    })
    .await;
    assert_eq!(events.type_.as_deref(), Some("Warning"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_settled_approval_makes_no_writes() {
    let (_, ns, api) = setup("quiet").await;
    model_approval("fd").version("2.4.3").create(&api).await;
    for gate in &GATES[..3] {
        set_gate(&ns.name, "fd", gate, "True", &format!("{gate}@example.com"))
            .await
            .expect("set gate");
    }
    let a = eventually(30, "3/5", || async {
        let a = api.get("fd").await.ok()?;
        (a.status.as_ref()?.gates_passed.as_deref() == Some("3/5")).then_some(a)
    })
    .await;
    // Give the last reconcile a moment, then watch a quiet interval.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rv = api
        .get("fd")
        .await
        .ok()
        .and_then(|a| a.metadata.resource_version)
        .unwrap_or_default();
    let started = Instant::now();
    let writes = count_writes(&api, "fd", &rv, Duration::from_secs(30)).await;
    println!("writes at rest over {:?}: {writes}", started.elapsed());
    assert_eq!(writes, 0);
    assert_eq!(a.status.and_then(|s| s.phase), Some(ApprovalPhase::Pending));
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_reviewers_and_operator_lose_nothing() {
    let (_, ns, api) = setup("concurrent").await;
    model_approval("fd").version("2.4.4").create(&api).await;
    // Two reviewers flip their gates back and forth as fast as they can while
    // the operator writes status after every flip.
    let flips = 26;
    let reviewer = |gate: &'static str, who: &'static str| {
        let ns = ns.name.clone();
        tokio::spawn(async move {
            for i in 0..flips {
                let status = if i % 2 == 0 { "False" } else { "True" };
                set_gate(&ns, "fd", gate, status, who)
                    .await
                    .expect("set gate");
            }
        })
    };
    let a = reviewer("TechnicalReview", "tom@example.com");
    let b = reviewer("FairnessReview", "fay@example.com");
    a.await.expect("reviewer a");
    b.await.expect("reviewer b");
    // Both ended on True (an even count of flips ends on the odd, True one).
    let a = eventually(30, "operator caught up", || async {
        let a = api.get("fd").await.ok()?;
        (a.status.as_ref()?.gates_passed.as_deref() == Some("2/5")).then_some(a)
    })
    .await;
    for (gate, who) in [
        ("TechnicalReview", "tom@example.com"),
        ("FairnessReview", "fay@example.com"),
    ] {
        let c = condition_of(&a, gate).cloned().unwrap_or_default();
        assert_eq!(
            (c.status.as_str(), c.reviewer.as_deref()),
            ("True", Some(who)),
            "{gate} lost"
        );
    }
    assert_eq!(
        a.status.as_ref().and_then(|s| s.phase),
        Some(ApprovalPhase::Pending)
    );
    assert!(condition_of(&a, "Approved").is_some());
    // Every recorded transition is a real change: per subject, no two
    // consecutive entries say the same thing (a stale read would repeat one).
    let history = a
        .status
        .as_ref()
        .map(|s| s.history.clone())
        .unwrap_or_default();
    for subject in ["TechnicalReview", "FairnessReview", "Phase"] {
        let tos: Vec<&str> = history
            .iter()
            .filter(|h| h.subject == subject)
            .map(|h| h.to.as_str())
            .collect();
        assert!(
            tos.windows(2).all(|w| w[0] != w[1]),
            "{subject} recorded a transition twice: {tos:?}"
        );
    }
    // Field ownership: the operator owns none of the reviewers' entries.
    let managers: Vec<String> = a
        .metadata
        .managed_fields
        .unwrap_or_default()
        .iter()
        .filter_map(|m| m.manager.clone())
        .collect();
    assert!(
        managers.contains(&"modelgate".to_string())
            && managers.contains(&"reviewer-technicalreview".to_string()),
        "{managers:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_reviewer_condition_is_reported_not_fatal() {
    let (_, ns, api) = setup("malformed").await;
    model_approval("fd").version("2.4.5").create(&api).await;
    // A reviewer (of legal, here) writes a condition type that is no gate:
    // the admission policy refuses it, saying what is allowed.
    let eve = person("eve@example.com", &["modelgate:legal-reviewers"]).await;
    let refused = set_gate_as(
        &eve,
        &ns.name,
        "fd",
        "ComplianceReview",
        "True",
        "eve@example.com",
    )
    .await;
    let said = format!("{refused:?}");
    assert!(
        refused.is_err() && said.contains("is not a gate: a reviewer may set only"),
        "{said}"
    );
    // Written where admission did not look (here: by the operator's own
    // identity, which the policy trusts), the operator reports it. That
    // identity's writes must name the approval decided for, which the
    // status does once the operator has decided it.
    eventually(30, "fd decided by the operator", || async {
        api.get("fd").await.ok()?.status?.observed_uid.map(|_| ())
    })
    .await;
    set_gate_as(
        &operator_client().await,
        &ns.name,
        "fd",
        "ComplianceReview",
        "True",
        "eve@example.com",
    )
    .await
    .expect("unknown gate type stored past admission");
    // A gate decided without a name is refused by the admission policy
    // (the controller would also ignore it: see the unit tests).
    let refused = set_gate(&ns.name, "fd", "TechnicalReview", "True", "").await;
    let said = format!("{refused:?}");
    assert!(
        refused.is_err() && said.contains("must be the person making the change"),
        "{said}"
    );
    let a = eventually(30, "ReviewsValid False", || async {
        let a = api.get("fd").await.ok()?;
        let c = condition_of(&a, "ReviewsValid")?;
        (c.status == "False").then_some(a)
    })
    .await;
    let message = condition_of(&a, "ReviewsValid")
        .and_then(|c| c.message.clone())
        .unwrap_or_default();
    assert!(
        message.contains("\"ComplianceReview\" is not a gate"),
        "{message}"
    );
    assert_eq!(
        a.status.as_ref().and_then(|s| s.gates_passed.as_deref()),
        Some("0/5")
    );

    // A status outside True/False/Unknown is refused by the API server itself.
    let refused = set_gate(&ns.name, "fd", "LegalReview", "Maybe", "lee@example.com").await;
    let said = format!("{refused:?}");
    assert!(
        refused.is_err() && said.contains("Unsupported value") && said.contains("Maybe"),
        "{said}"
    );

    // The controller carries on with the valid gates.
    set_gate(&ns.name, "fd", "FairnessReview", "True", "fay@example.com")
        .await
        .expect("set gate");
    eventually(30, "1/5", || async {
        let a = api.get("fd").await.ok()?;
        (a.status?.gates_passed.as_deref() == Some("1/5")).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_and_health_endpoints_follow_the_work() {
    let addr = start_operator();
    let (_, ns, api) = setup("metrics").await;
    let (code, _) = http_get(addr, "/healthz");
    assert_eq!(code, 200);
    let (code, body) = eventually(30, "ready", || async {
        let r = http_get(addr, "/readyz");
        (r.0 == 200).then_some(r)
    })
    .await;
    assert_eq!((code, body.trim()), (200, "ok"));

    let before = http_get(addr, "/metrics").1;
    model_approval("fd").version("3.1.0").create(&api).await;
    set_gate(&ns.name, "fd", "TechnicalReview", "True", "tom@example.com")
        .await
        .expect("gate");
    set_gate(&ns.name, "fd", "LegalReview", "False", "lee@example.com")
        .await
        .expect("gate");
    eventually(30, "Rejected", || async {
        let a = api.get("fd").await.ok()?;
        (a.status?.phase == Some(ApprovalPhase::Rejected)).then_some(())
    })
    .await;
    let after = eventually(30, "counters move", || async {
        let m = http_get(addr, "/metrics").1;
        let passed = r#"modelgate_gate_decisions_total{gate="TechnicalReview",result="passed"}"#;
        (sample(&m, passed) > sample(&before, passed)).then_some(m)
    })
    .await;
    for series in [
        r#"modelgate_gate_decisions_total{gate="LegalReview",result="failed"}"#,
        r#"modelgate_reconciles_total{controller="approval"}"#,
        r#"modelgate_status_writes_total{controller="approval"}"#,
        r#"modelgate_reconcile_duration_seconds_count{controller="approval"}"#,
    ] {
        assert!(
            sample(&after, series) > sample(&before, series),
            "{series} did not move:\n{after}"
        );
    }
    // The phase gauges are recounted from the cache every few seconds.
    eventually(15, "a Rejected approval counted", || async {
        let m = http_get(addr, "/metrics").1;
        (sample(&m, r#"modelgate_approvals{phase="Rejected"}"#) >= 1.0).then_some(())
    })
    .await;
    assert!(
        after.contains("# TYPE modelgate_reconcile_duration_seconds histogram"),
        "{after}"
    );
}
