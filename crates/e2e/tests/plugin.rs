//! The built `kubectl-modelgate` binary against the real API server, run as
//! each reviewer through impersonation: approve, reject, status, history,
//! why, completion, and a break-glass requested, approved, shown and
//! reported.

use std::process::Command;
use std::time::Instant;

use kube::api::Api;
use modelgate::api::{deployment::ModelDeployment, gates::Gate};
use modelgate_e2e::{
    breakglass::*, cluster::*, fixtures::*, operator::*, paths::*, plugin::*, wait::*,
};

fn reviewer(gate: Gate) -> (String, [&'static str; 1]) {
    (
        format!("{}-lead@example.com", gate.short_name()),
        [gate.default_group()],
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn reviewers_approve_reject_and_audit_from_the_terminal() {
    start_operator();
    let client = install_modelgate().await;
    let ns = TestNamespace::new(&client, "plugin").await;
    let (approvals, mds) =
        create_model(&client, &ns.name, "fd", "fd-7", "7.0.0", Some("2160h")).await;

    // The wrong reviewer: refused with the policy's own words, non-zero exit.
    let (legal, legal_groups) = reviewer(Gate::Legal);
    let out = run_plugin(
        &ns.name,
        Some((&legal, &legal_groups)),
        &["approve", "fd-7", "--gate", "security"],
    );
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(
        stderr(&out)
            .contains("SecurityReview may only be set by members of modelgate:security-reviewers"),
        "{}",
        stderr(&out)
    );

    // An unknown gate is a usage error that lists the five.
    let out = run_plugin(
        &ns.name,
        Some((&legal, &legal_groups)),
        &["approve", "fd-7", "--gate", "compliance"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("technical, fairness, security, legal, business"),
        "{}",
        stderr(&out)
    );

    // Four reviewers pass their gates, with the gate named in any case.
    for (gate, spelled) in [
        (Gate::Technical, "technical"),
        (Gate::Fairness, "FairnessReview"),
        (Gate::Security, "SECURITY"),
        (Gate::Legal, "legalreview"),
    ] {
        let (user, groups) = reviewer(gate);
        let out = run_plugin(
            &ns.name,
            Some((&user, &groups)),
            &[
                "approve",
                "fd-7",
                "--gate",
                spelled,
                "--reason",
                "Checked",
                "-m",
                &format!("{gate} looked at"),
            ],
        );
        assert!(out.status.success(), "{gate}: {}", stderr(&out));
        assert!(
            stdout(&out).contains(&format!("{gate} of {}/fd-7 passed by {user}", ns.name)),
            "{}",
            stdout(&out)
        );
    }
    // Each gate carries its own reviewer: approving one left the others.
    let a = approvals.get("fd-7").await.expect("get");
    for gate in [Gate::Technical, Gate::Fairness, Gate::Security, Gate::Legal] {
        let c = condition_of(&a, gate.condition_type())
            .cloned()
            .unwrap_or_default();
        assert_eq!(
            (c.status.as_str(), c.reviewer),
            ("True", Some(reviewer(gate).0)),
            "{gate}"
        );
    }

    // status: the table shows marks and reviewers; JSON parses back.
    let out = run_plugin(&ns.name, None, &["status"]);
    let table = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        table.contains("✓ security-lead@example.com")
            && table.contains("fd-7")
            && table.contains("fd"),
        "{table}"
    );
    let out = run_plugin(&ns.name, None, &["status", "-o", "json"]);
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("status -o json parses");
    let gates = &json[0]["gates"];
    assert_eq!(gates[4]["gate"], "BusinessReview");
    assert_eq!(gates[4]["status"], "Unknown");
    assert_eq!(gates[2]["reviewer"], "security-lead@example.com");
    assert_eq!(json[0]["deployments"], serde_json::json!(["fd"]));
    let out = run_plugin(&ns.name, None, &["status", "fd-7", "-o", "yaml"]);
    assert!(
        stdout(&out).contains("name: fd-7") && stdout(&out).contains("gatesPassed:"),
        "{}",
        stdout(&out)
    );

    // why: held, with the one pending gate and who can pass it.
    let why = eventually(30, "why names the pending gate", || async {
        let out = run_plugin(&ns.name, None, &["why", "fd"]);
        let text = stdout(&out);
        (text.contains("AwaitingApproval")
            && text.contains(
                "BusinessReview: pending; members of modelgate:business-reviewers can pass it",
            ))
        .then_some(text)
    })
    .await;
    assert!(why.contains("Nothing is serving yet"), "{why}");

    // The last gate: the approval turns Approved within seconds.
    let (biz, biz_groups) = reviewer(Gate::Business);
    let started = Instant::now();
    let out = run_plugin(
        &ns.name,
        Some((&biz, &biz_groups)),
        &["approve", "fd-7", "--gate", "business"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    eventually(30, "Approved in status", || async {
        let out = run_plugin(
            &ns.name,
            Some((&biz, &biz_groups)),
            &["status", "fd-7", "-o", "json"],
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        (v["phase"] == "Approved").then_some(())
    })
    .await;
    println!(
        "last approve -> Approved in status: {} ms",
        started.elapsed().as_millis()
    );

    // A rejection needs a reason and a message, and revokes.
    let (sec, sec_groups) = reviewer(Gate::Security);
    let out = run_plugin(
        &ns.name,
        Some((&sec, &sec_groups)),
        &["reject", "fd-7", "--gate", "security"],
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "reject without a reason: {}",
        stderr(&out)
    );
    f_phase(&mds, "fd", "Available").await;
    let out = run_plugin(
        &ns.name,
        Some((&sec, &sec_groups)),
        &[
            "reject",
            "fd-7",
            "--gate",
            "security",
            "--reason",
            "CveFound",
            "-m",
            "CVE-2026-1234 in the tokenizer",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    f_phase(&mds, "fd", "Revoked").await;
    let why = run_plugin(&ns.name, None, &["why", "fd"]);
    let text = stdout(&why);
    assert!(
        text.contains("Revoked")
            && text.contains(
                "SecurityReview: failed by security-lead@example.com (CveFound: CVE-2026-1234"
            ),
        "{text}"
    );
    assert!(text.contains("Serving now: fraud-detector 7.0.0"), "{text}");

    // history: every decision, oldest first, with its actor.
    let out = run_plugin(&ns.name, None, &["history", "fd-7", "-o", "json"]);
    let rows: Vec<serde_json::Value> =
        serde_json::from_slice(&out.stdout).expect("history -o json parses");
    let seen: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| {
            (
                r["subject"].as_str().unwrap_or_default().to_string(),
                r["actor"].as_str().unwrap_or_default().to_string(),
                r["transition"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let expect = [
        (
            "TechnicalReview",
            "technical-lead@example.com",
            "Unknown → True",
        ),
        (
            "FairnessReview",
            "fairness-lead@example.com",
            "Unknown → True",
        ),
        (
            "SecurityReview",
            "security-lead@example.com",
            "Unknown → True",
        ),
        ("LegalReview", "legal-lead@example.com", "Unknown → True"),
        (
            "BusinessReview",
            "business-lead@example.com",
            "Unknown → True",
        ),
        ("Phase", "modelgate", "Pending → Approved"),
        (
            "SecurityReview",
            "security-lead@example.com",
            "True → False",
        ),
        ("Phase", "modelgate", "Approved → Rejected"),
    ];
    let got: Vec<(&str, &str, &str)> = seen
        .iter()
        .map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str()))
        .collect();
    assert_eq!(got, expect);
    let times: Vec<&str> = rows.iter().filter_map(|r| r["time"].as_str()).collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "not oldest first: {times:?}"
    );
    assert!(
        rows.iter().all(|r| r["source"] == "status+event"),
        "events not merged: {rows:?}"
    );
    let out = run_plugin(&ns.name, None, &["history", "fd-7"]);
    assert!(stdout(&out).contains("CVE-2026-1234"), "{}", stdout(&out));
}

async fn f_phase(mds: &Api<ModelDeployment>, name: &str, phase: &str) {
    eventually(60, &format!("{name} {phase}"), || async {
        let md = mds.get(name).await.ok()?;
        (md.status?.phase.map(|p| p.to_string()).as_deref() == Some(phase)).then_some(())
    })
    .await;
}

#[test]
fn completion_and_help_cover_every_subcommand() {
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(binary("kubectl-modelgate"))
            .args(["completion", shell])
            .output()
            .expect("run");
        let text = stdout(&out);
        assert!(
            out.status.success() && text.contains("approve") && text.contains("history"),
            "{shell}: {text}"
        );
    }
    for sub in [
        &["status"][..],
        &["approve"],
        &["reject"],
        &["history"],
        &["why"],
        &["completion"],
        &["break-glass", "request"],
        &["break-glass", "approve"],
    ] {
        let out = Command::new(binary("kubectl-modelgate"))
            .args(sub)
            .arg("--help")
            .output()
            .expect("run");
        assert!(
            stdout(&out).contains("Example"),
            "{sub:?} --help has no example"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_decision_names_the_digest_and_uid_it_was_about() {
    start_operator();
    let client = install_modelgate().await;
    let ns = TestNamespace::new(&client, "plugin-bound").await;
    let approvals: Api<modelgate::api::approval::ModelApproval> =
        Api::namespaced(client.clone(), &ns.name);
    let first = model_approval("fd-8")
        .version("8.0.0")
        .create(&approvals)
        .await;
    let old_uid = first.metadata.uid.clone().unwrap_or_default();
    // Re-created under the same name with other bytes.
    approvals
        .delete("fd-8", &Default::default())
        .await
        .expect("delete");
    gone(&approvals, "fd-8", 30).await;
    let second = model_approval("fd-8")
        .version("8.0.1")
        .create(&approvals)
        .await;
    let (sec, sec_groups) = reviewer(Gate::Security);
    let who = Some((sec.as_str(), &sec_groups[..]));

    // The digest reviewed, or the uid read before, is no longer there.
    let wrong_digest = digest_of("8.0.0");
    for (flag, value) in [
        ("--digest", wrong_digest.as_str()),
        ("--uid", old_uid.as_str()),
    ] {
        let out = run_plugin(
            &ns.name,
            who,
            &["approve", "fd-8", "--gate", "security", flag, value],
        );
        assert_eq!(out.status.code(), Some(3), "{}", stdout(&out));
        let said = format!(
            "this approval changed since you opened it: it now names digest {}",
            digest_of("8.0.1")
        );
        assert!(stderr(&out).contains(&said), "{}", stderr(&out));
        let now = approvals.get("fd-8").await.expect("approval");
        assert!(
            condition_of(&now, "SecurityReview").is_none(),
            "{:?}",
            now.status
        );
    }

    // The one it names: passed, and the output says on what.
    let digest = digest_of("8.0.1");
    let out = run_plugin(
        &ns.name,
        who,
        &["approve", "fd-8", "--gate", "security", "--digest", &digest],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let uid = second.metadata.uid.clone().unwrap_or_default();
    assert!(
        stdout(&out).contains(&format!("on digest {digest} (approval uid {uid})")),
        "{}",
        stdout(&out)
    );
}

const IC: (&str, &[&str]) = (COMMANDER, &[COMMANDERS]);
const ONCALL: (&str, &[&str]) = (APPROVER, &[ON_CALL]);
/// Allowed to ask by RBAC, not by the policy.
const STRANGER: (&str, &[&str]) = ("sam@example.com", &["risk-team"]);
const INCIDENT: &str = "INC-4711: 9.0.0 flags every card payment in Ireland";

#[tokio::test(flavor = "multi_thread")]
async fn break_glass_is_requested_approved_shown_and_reported_from_the_terminal() {
    use modelgate::api::approval::ModelApproval;
    use modelgate::api::breakglass::BreakGlass;
    start_operator();
    let client = install_modelgate().await;
    let ns = TestNamespace::new(&client, "plugin-bg").await;
    let n = ns.name.as_str();
    break_glass_policy(&client, n, "8h").await;
    bind_break_glass(&client, n).await;
    bind_break_glass_user(&client, n, STRANGER.0).await;
    let (approvals, _) = create_model(&client, n, "fd", "fd-9", "9.0.0", None).await;
    for gate in [
        Gate::Technical,
        Gate::Fairness,
        Gate::Security,
        Gate::Business,
    ] {
        set_gate(n, "fd-9", gate.condition_type(), "True", &reviewer(gate).0)
            .await
            .expect("gate");
    }
    let pinned = |a: &ModelApproval| {
        a.status.as_ref().is_some_and(|s| {
            s.gates_passed.as_deref() == Some("4/5")
                && s.policy.as_ref().is_some_and(|p| p.break_glass.is_some())
        })
    };
    eventually(30, "four gates passed under the pinned rule", || async {
        approvals.get("fd-9").await.ok().filter(pinned)
    })
    .await;
    let bgs: Api<BreakGlass> = Api::namespaced(client.clone(), n);
    let request = [
        "break-glass",
        "request",
        "fd-9",
        "--reason",
        INCIDENT,
        "--for",
        "4h",
        "--skip",
        "legal",
        "--name",
        "inc-4711",
    ];

    // Someone the policy does not name: refused in the operator's words,
    // and nothing is written.
    let out = run_plugin(n, Some(STRANGER), &request);
    assert_eq!(out.status.code(), Some(3), "{}", stdout(&out));
    assert!(
        stderr(&out)
            .contains("no break-glass requested: sam@example.com may not request a break-glass"),
        "{}",
        stderr(&out)
    );
    let none = bgs.list(&Default::default()).await.expect("list");
    assert!(none.items.is_empty(), "{:?}", none.items);

    // The incident commander asks: told who approves and how.
    let out = run_plugin(n, Some(IC), &request);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = stdout(&out);
    println!("{said}");
    for says in [
        &format!(
            "break-glass inc-4711 requested by {COMMANDER}: fd-9 without LegalReview for 4h once approved"
        ),
        &format!("it needs 1 approval(s) from groups {ON_CALL}, never your own"),
        &format!("kubectl modelgate break-glass approve inc-4711 -n {n}"),
    ] {
        assert!(said.contains(says), "{says}\n{said}");
    }
    let asked = bgs.get("inc-4711").await.expect("the BreakGlass");
    assert_eq!(
        (
            asked.spec.requested_by.user.as_str(),
            asked.spec.requested_by.groups.clone()
        ),
        (COMMANDER, vec![COMMANDERS.to_string()])
    );

    // The requester's own approval: refused, nothing written.
    let out = run_plugin(n, Some(IC), &["break-glass", "approve", "inc-4711"]);
    assert_eq!(out.status.code(), Some(3), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("your own request"),
        "{}",
        stderr(&out)
    );
    let still = bgs.get("inc-4711").await.expect("the BreakGlass");
    assert!(still.status.is_none_or(|s| s.approvals.is_empty()));

    // Without RBAC: the API server's refusal as it is, nothing written.
    let out = run_plugin(
        n,
        Some(("nobody@example.com", &[])),
        &["break-glass", "approve", "inc-4711"],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("is forbidden: User \"nobody@example.com\""),
        "{}",
        stderr(&out)
    );
    // Someone the policy does not name: recorded, and told it does not count.
    let out = run_plugin(n, Some(STRANGER), &["break-glass", "approve", "inc-4711"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("status: AwaitingApproval: waiting on 1 more approval(s) from groups sre-oncall, other than the requester; sam@example.com's does not count (not an approver under the policy)"),
        "{}",
        stdout(&out)
    );

    // The on-call approves: Active, and until when.
    let out = run_plugin(
        n,
        Some(ONCALL),
        &[
            "break-glass",
            "approve",
            "inc-4711",
            "-m",
            "checked with the incident commander",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let said = stdout(&out);
    println!("{said}");
    assert!(
        said.contains(&format!("recorded as {APPROVER} (groups {ON_CALL})"))
            && said.contains("status: Active until"),
        "{said}"
    );
    let line = format!(
        "Break-glass:  inc-4711 by {COMMANDER}, approved by {APPROVER}, without LegalReview until"
    );
    let shown = eventually(30, "status shows the break-glass", || async {
        let text = stdout(&run_plugin(n, None, &["status", "fd-9"]));
        text.contains(&line).then_some(text)
    })
    .await;
    assert!(shown.contains(&format!("{INCIDENT}\n")), "{shown}");

    // Legal passes in time: ratified, and the auditor's page says so first.
    set_gate(n, "fd-9", "LegalReview", "True", &reviewer(Gate::Legal).0)
        .await
        .expect("legal");
    let dir = modelgate_e2e::browser::tempdir("plugin-bg");
    let bundle = dir.join("fd.jsonl");
    let page = dir.join("fd.html");
    eventually(60, "the ratification recorded", || async {
        let out = run_plugin(
            n,
            None,
            &["audit", "export", "-o", &bundle.to_string_lossy()],
        );
        stdout(&out).contains("exported 2 records").then_some(())
    })
    .await;
    let out = audit(n, "report", &bundle, ("-o", &page));
    assert!(
        stdout(&out).contains("all verified"),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let html = std::fs::read_to_string(&page).expect("the page");
    let first = html.find("Break-glass releases").unwrap_or(usize::MAX);
    let timelines = html.find("<section class=\"approval\"").unwrap_or(0);
    assert!(first < timelines, "{html}");
    assert!(
        html.contains("break-glass inc-4711 <span class=\"badge ratified\">"),
        "{html}"
    );
}
