//! What `break-glass request` and `approve` make of their arguments and of
//! the objects they read, without a cluster.

use clap::Parser;
use jiff::Timestamp;
use k8s_openapi::api::authentication::v1::UserInfo;
use serde_json::json;

use super::approve::{self, ApproveArgs};
use super::request::{self, RequestArgs};
use super::*;
use crate::{Cli, Command};
use modelgate::api::breakglass::SkippedGate;
use modelgate::api::gates::Gate;

const NOW: &str = "2026-11-25T10:00:00Z";

fn now() -> Timestamp {
    NOW.parse().unwrap_or(Timestamp::UNIX_EPOCH)
}

fn parse(args: &[&str]) -> std::result::Result<Cli, clap::Error> {
    Cli::try_parse_from(["kubectl-modelgate", "break-glass"].iter().chain(args))
}

fn request_args(args: &[&str]) -> RequestArgs {
    match parse(&[&["request"], args].concat()).map(|c| c.command) {
        Ok(Command::BreakGlass(BreakGlassCommand::Request(a))) => a,
        Ok(_) => panic!("not a request"),
        Err(e) => panic!("{e}"),
    }
}

const REASON: &str = "INC-4711: 2.4.0 flags every card payment in Ireland";

/// An approval with LegalReview open, under a policy whose break-glass
/// rule names incident commanders and one on-call approver.
fn approval(phase: &str, break_glass: bool) -> ModelApproval {
    let mut policy = json!({"name": "risk/strict", "gates": []});
    if break_glass {
        policy["breakGlass"] = json!({
            "requesters": {"groups": ["incident-commanders"]},
            "approvers": {"groups": ["sre-oncall"], "users": ["olga@example.com"]},
            "maxDuration": "8h",
        });
    }
    let gates: Vec<_> = Gate::ALL
        .iter()
        .map(|g| json!({"gate": g.condition_type(), "status": if *g == Gate::Legal { "Unknown" } else { "True" }}))
        .collect();
    serde_json::from_value(json!({
        "apiVersion": "modelgate.io/v1alpha1", "kind": "ModelApproval",
        "metadata": {"name": "fd-7", "namespace": "risk"},
        "spec": {"model": {"name": "fd", "version": "7.0.0", "uri": "s3://m", "digest": "sha256:00"}},
        "status": {"phase": phase, "policy": policy, "observedGates": gates},
    }))
    .unwrap_or_else(|e| panic!("{e}"))
}

fn ic() -> Identity {
    Identity {
        user: "ines@example.com".into(),
        groups: vec!["incident-commanders".into()],
    }
}

fn breakglass(status: serde_json::Value) -> BreakGlass {
    serde_json::from_value(json!({
        "apiVersion": "modelgate.io/v1alpha1", "kind": "BreakGlass",
        "metadata": {"name": "fd-7-bg-x7k2p", "namespace": "risk", "uid": "u1"},
        "spec": {
            "approvalRef": {"name": "fd-7"}, "reason": REASON, "duration": "4h",
            "skips": ["LegalReview"], "requestedBy": {"user": "ines@example.com", "groups": ["incident-commanders"]},
        },
        "status": status,
    }))
    .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn a_request_takes_reason_window_and_each_gate_once() {
    let args = request_args(&[
        "fd-7",
        "--reason",
        REASON,
        "--for",
        "4h",
        "--skip",
        "legal",
        "--skip",
        "LegalReview",
        "--skip",
        "BUSINESS",
    ]);
    let ask = request::ask(&args).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        ask.skips,
        [SkippedGate::LegalReview, SkippedGate::BusinessReview]
    );
    assert_eq!((ask.reason.as_str(), ask.duration.as_str()), (REASON, "4h"));
}

#[test]
fn a_request_without_a_gate_or_with_an_unknown_one_is_a_usage_error() {
    let base = ["request", "fd-7", "--reason", REASON, "--for", "4h"];
    assert!(parse(&base).is_err(), "--skip is required");
    let err = parse(&[&base[..], &["--skip", "compliance"]].concat())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("technical, fairness, security, legal, business"),
        "{err}"
    );
    assert!(
        parse(&["request", "fd-7", "--for", "4h", "--skip", "legal"]).is_err(),
        "--reason is required"
    );
}

#[test]
fn a_short_reason_or_an_unreadable_window_is_refused_before_anything_is_read() {
    for (reason, window, says) in [
        ("hotfix", "4h", "10 to 2048 characters"),
        ("          hotfix   ", "4h", "it has 6"),
        (REASON, "4 hours", "such as 4h"),
        (REASON, "1d", "such as 4h"),
        (REASON, "0h", "such as 4h"),
    ] {
        let args = request_args(&[
            "fd-7", "--reason", reason, "--for", window, "--skip", "legal",
        ]);
        match request::ask(&args) {
            Err(CliError::Usage(text)) => assert!(text.contains(says), "{text}"),
            other => panic!("{reason:?} {window:?}: {other:?}"),
        }
    }
}

#[test]
fn a_request_names_you_and_your_groups_but_not_system_authenticated() {
    let info = UserInfo {
        username: Some("ines@example.com".into()),
        groups: Some(vec![
            "system:authenticated".into(),
            "incident-commanders".into(),
            "risk-team".into(),
            "risk-team".into(),
        ]),
        ..UserInfo::default()
    };
    let me = identity(info, None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(me.user, "ines@example.com");
    assert_eq!(me.groups, ["incident-commanders", "risk-team"]);
    let nobody = identity(UserInfo::default(), None);
    assert!(matches!(nobody, Err(CliError::Refused(_))), "{nobody:?}");
}

#[test]
fn with_more_groups_than_the_crd_holds_the_entitling_ones_are_kept() {
    let mut groups: Vec<String> = (0..20).map(|i| format!("team-{i:02}")).collect();
    groups.push("sre-oncall".into());
    let named = ["sre-oncall".to_string()];
    let kept = claimed_groups(groups, &named);
    assert_eq!(kept.len(), MAX_GROUPS);
    assert_eq!(kept[0], "sre-oncall");
    assert_eq!(kept[1], "team-00", "the rest keep the cluster's order");
}

#[test]
fn without_a_name_the_api_server_names_it_after_the_approval() {
    let args = request_args(&["fd-7", "--reason", REASON, "--for", "4h", "--skip", "legal"]);
    let ask = request::ask(&args).unwrap_or_else(|e| panic!("{e}"));
    let bg = request::object("fd-7", None, ask, ic());
    assert_eq!(
        (bg.metadata.name, bg.metadata.generate_name.as_deref()),
        (None, Some("fd-7-bg-"))
    );
    assert_eq!(bg.spec.requested_by, ic());
    let args = request_args(&["fd-7", "--reason", REASON, "--for", "4h", "--skip", "legal"]);
    let ask = request::ask(&args).unwrap_or_else(|e| panic!("{e}"));
    let named = request::object("fd-7", Some("inc-4711"), ask, ic());
    assert_eq!(named.metadata.name.as_deref(), Some("inc-4711"));
    assert_eq!(named.metadata.generate_name, None);
}

#[test]
fn a_request_the_operator_would_refuse_at_once_is_not_created() {
    let bg = breakglass(json!({}));
    let mut stranger = bg.clone();
    stranger.spec.requested_by = Identity {
        user: "sam@example.com".into(),
        groups: vec!["risk-team".into()],
    };
    let mut too_long = bg.clone();
    too_long.spec.duration = "24h".into();
    let mut short = bg.clone();
    short.spec.skips = vec![SkippedGate::SecurityReview];
    for (bg, approval, says) in [
        (&bg, approval("Pending", false), "allows no break-glass"),
        (
            &bg,
            approval("Approved", true),
            "fd-7 is Approved: there is nothing to release",
        ),
        (&bg, approval("Rejected", true), "cannot be skipped"),
        (
            &stranger,
            approval("Pending", true),
            "sam@example.com may not request a break-glass",
        ),
        (
            &too_long,
            approval("Pending", true),
            "longer than the policy allows (maxDuration 8h)",
        ),
        (
            &short,
            approval("Pending", true),
            "LegalReview of fd-7 is open and not skipped",
        ),
    ] {
        let why = request::refused_at_once(bg, &approval).unwrap_or_default();
        assert!(why.contains(says), "{why}");
    }
    assert_eq!(
        request::refused_at_once(&bg, &approval("Pending", true)),
        None
    );
    assert_eq!(
        request::refused_at_once(&bg, &approval("BreakGlass", true)),
        None
    );
}

#[test]
fn a_request_says_who_must_approve_and_how() {
    let approval = approval("Pending", true);
    let bg = breakglass(json!({
        "phase": "AwaitingApproval",
        "message": "waiting on 1 more approval(s) from users olga@example.com; groups sre-oncall, other than the requester",
    }));
    let text = request::requested(&bg, pinned_rule(&approval), "risk", now())
        .unwrap_or_else(|e| panic!("{e}"));
    for says in [
        "break-glass fd-7-bg-x7k2p requested by ines@example.com: fd-7 without LegalReview for 4h once approved",
        "next: it needs 1 approval(s) from users olga@example.com; groups sre-oncall, never your own",
        "  kubectl modelgate break-glass approve fd-7-bg-x7k2p -n risk",
        "status: AwaitingApproval: waiting on 1 more approval(s)",
    ] {
        assert!(text.contains(says), "{says}\n{text}");
    }
    let unjudged = request::requested(&breakglass(json!({})), None, "risk", now())
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(unjudged.contains("status: not judged yet"), "{unjudged}");
}

#[test]
fn a_request_the_operator_refuses_is_an_error_with_its_words() {
    let bg = breakglass(
        json!({"phase": "Refused", "message": "duration 12h is longer than the policy allows"}),
    );
    match request::requested(&bg, None, "risk", now()) {
        Err(CliError::Refused(text)) => assert!(
            text.contains("the operator refused it: Refused: duration 12h is longer"),
            "{text}"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_approval_is_your_own_entry_under_your_own_manager() {
    let me = Identity {
        user: "olga@example.com".into(),
        groups: vec!["sre-oncall".into()],
    };
    let at: Timestamp = "2026-11-25T10:00:00.750Z"
        .parse()
        .unwrap_or(Timestamp::UNIX_EPOCH);
    let patch = approve::approval_patch("fd-7-bg-x7k2p", &me, Some("checked INC-4711"), at);
    assert_eq!(
        patch,
        json!({
            "apiVersion": "modelgate.io/v1alpha1", "kind": "BreakGlass",
            "metadata": {"name": "fd-7-bg-x7k2p"},
            "status": {"approvals": [{
                "user": "olga@example.com", "groups": ["sre-oncall"],
                "message": "checked INC-4711", "time": "2026-11-25T10:00:00Z",
            }]},
        })
    );
    let bare = approve::approval_patch(
        "b",
        &Identity {
            user: "u".into(),
            groups: vec![],
        },
        None,
        at,
    );
    let entry = &bare["status"]["approvals"][0];
    assert!(
        entry.get("groups").is_none() && entry.get("message").is_none(),
        "{entry}"
    );
    let (olga, pat) = (
        approve::approver_manager("olga@example.com"),
        approve::approver_manager("pat@example.com"),
    );
    assert_ne!(olga, pat);
    assert_eq!(olga, approve::approver_manager("olga@example.com"));
    assert!(olga.len() <= 128, "{olga}");
}

#[test]
fn an_approval_that_cannot_count_is_refused_before_it_is_written() {
    let open = breakglass(json!({"phase": "AwaitingApproval"}));
    assert!(approve::approvable(&open, "olga@example.com").is_ok());
    match approve::approvable(&open, "ines@example.com") {
        Err(CliError::Refused(text)) => assert!(text.contains("your own request"), "{text}"),
        other => panic!("{other:?}"),
    }
    let lapsed = breakglass(json!({"phase": "Lapsed"}));
    match approve::approvable(&lapsed, "olga@example.com") {
        Err(CliError::Refused(text)) => assert!(text.contains("is Lapsed"), "{text}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_approval_message_is_trimmed_and_bounded() {
    let args = |m: Option<&str>| ApproveArgs {
        name: "b".into(),
        message: m.map(str::to_string),
    };
    assert_eq!(approve::message(&args(None)).ok(), Some(None));
    assert_eq!(approve::message(&args(Some("  "))).ok(), Some(None));
    assert_eq!(
        approve::message(&args(Some(" ok "))).ok(),
        Some(Some("ok".into()))
    );
    let long = "x".repeat(2049);
    assert!(matches!(
        approve::message(&args(Some(&long))),
        Err(CliError::Usage(_))
    ));
    match parse(&["approve", "fd-7-bg-x7k2p", "-m", "checked"]).map(|c| c.command) {
        Ok(Command::BreakGlass(BreakGlassCommand::Approve(a))) => {
            assert_eq!(
                (a.name.as_str(), a.message.as_deref()),
                ("fd-7-bg-x7k2p", Some("checked"))
            )
        }
        _ => panic!("approve NAME -m TEXT parses"),
    }
}

#[test]
fn an_active_break_glass_says_until_when() {
    let bg = breakglass(json!({
        "phase": "Active", "until": "2026-11-25T14:00:00Z",
        "message": "releases the approval without LegalReview until 2026-11-25T14:00:00Z",
    }));
    let me = Identity {
        user: "olga@example.com".into(),
        groups: vec!["sre-oncall".into()],
    };
    let text = approve::approved(&bg, &me, true, now());
    assert!(
        text.contains("your approval of break-glass fd-7-bg-x7k2p is recorded as olga@example.com (groups sre-oncall)"),
        "{text}"
    );
    assert!(
        text.contains("status: Active until 2026-11-25 14:00:00Z (in 4h): releases"),
        "{text}"
    );
    let waiting = breakglass(json!({"phase": "AwaitingApproval", "message": "waiting on 1 more"}));
    let text = approve::approved(&waiting, &me, false, now());
    assert!(
        text.contains(
            "status: AwaitingApproval: waiting on 1 more (the operator has not answered yet"
        ),
        "{text}"
    );
}
