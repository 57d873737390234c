//! The built `kubectl-modelgate` binary against the real API server, run as
//! each reviewer through impersonation: approve, reject, status, history,
//! why, completion.

use std::process::Command;
use std::time::Instant;

use kube::api::Api;
use modelgate::api::{deployment::ModelDeployment, gates::Gate};
use modelgate_e2e::{cluster::*, fixtures::*, operator::*, paths::*, plugin::*, wait::*};

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
    eventually(10, "Approved in status", || async {
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
        "status",
        "approve",
        "reject",
        "history",
        "why",
        "completion",
    ] {
        let out = Command::new(binary("kubectl-modelgate"))
            .args([sub, "--help"])
            .output()
            .expect("run");
        assert!(
            stdout(&out).contains("Example"),
            "{sub} --help has no example"
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
