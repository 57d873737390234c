//! `status [NAME]`: approvals, their gates and the deployments that use them.

use clap::Args;
use jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use serde::Serialize;

use super::output::{self, mark};
use super::{CliError, Format, Result, Session};
use modelgate::api::approval::{ApprovalPhase, ModelApprovalStatus};
use modelgate::api::breakglass::ReleasedBy;
use modelgate::api::condition::{self, UNKNOWN};
use modelgate::api::policy::RuleMode;
use modelgate::api::{approval::ModelApproval, deployment::ModelDeployment, gates::Gate};

#[derive(Args)]
#[command(
    after_help = "Examples:\n  kubectl modelgate status -n risk\n  kubectl modelgate status fraud-detector-2-4-0 -n risk\n  kubectl modelgate status -A -o json"
)]
pub struct StatusArgs {
    /// One approval to show in detail; all in the namespace when left out.
    pub name: Option<String>,
    /// Across all namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Format::Table)]
    pub output: Format,
}

/// One approval as `status` reports it (also its JSON and YAML shape).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalView {
    pub namespace: String,
    pub name: String,
    pub model: String,
    pub version: String,
    pub digest: String,
    /// Sealed, Unsealed or Unresolved (docs/artifacts.md); absent until the
    /// operator looked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seal: Option<String>,
    pub phase: String,
    pub gates_passed: usize,
    pub gates: Vec<GateView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approved_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
    /// ModelDeployments that name this approval or serve it.
    pub deployments: Vec<String>,
    /// The pinned policy the gates are decided by.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// The break-glass that releases the approval, while its phase is
    /// BreakGlass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub break_glass: Option<ReleasedBy>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GateView {
    pub gate: String,
    /// True (passed), False (failed) or Unknown (pending).
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reviewer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<Timestamp>,
    /// Quorum progress ("1/2") or the rule's result, under the pinned rules.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    /// What the quorum or the rule saw and what is missing (or the rule's
    /// advice beside a person's decision).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advice: Option<String>,
}

/// Each gate as the approval's conditions and progress show it.
fn gate_views(status: &ModelApprovalStatus) -> Vec<GateView> {
    Gate::ALL
        .iter()
        .map(|g| {
            let c = condition::find(&status.conditions, g.condition_type());
            let progress = status
                .progress
                .iter()
                .find(|p| p.gate == g.condition_type());
            GateView {
                progress: progress.map(|p| match p.mode {
                    Some(RuleMode::Advise) => format!("rule advises {}", p.result),
                    _ => p.progress.clone(),
                }),
                advice: progress.map(|p| p.message.clone()),
                gate: g.condition_type().to_string(),
                status: c
                    .map(|c| c.status.clone())
                    .unwrap_or_else(|| UNKNOWN.to_string()),
                reviewer: c.and_then(|c| c.reviewer.clone()),
                reason: c.and_then(|c| c.reason.clone()),
                message: c.and_then(|c| c.message.clone()),
                since: c.and_then(|c| c.last_transition_time.clone()).map(|t| t.0),
            }
        })
        .collect()
}

/// The view of one approval, with the deployments that depend on it.
pub fn view(a: &ModelApproval, deployments: &[ModelDeployment]) -> ApprovalView {
    let status = a.status.clone().unwrap_or_default();
    let name = a.name_any();
    let namespace = a.namespace().unwrap_or_default();
    let gates = gate_views(&status);
    let users = deployments
        .iter()
        .filter(|d| d.namespace().as_deref() == Some(namespace.as_str()))
        .filter(|d| {
            d.spec.approval_ref.name == name
                || d.status
                    .as_ref()
                    .and_then(|s| s.served_model.as_ref())
                    .is_some_and(|s| s.approval == name)
        })
        .map(|d| d.name_any())
        .collect();
    let break_glass = status
        .break_glass
        .as_deref()
        .cloned()
        .filter(|_| status.phase == Some(ApprovalPhase::BreakGlass));
    ApprovalView {
        break_glass,
        namespace,
        model: a.spec.model.name.clone(),
        version: a.spec.model.version.clone(),
        digest: a.spec.model.digest.clone(),
        seal: seal(status.artifact.as_ref()),
        phase: status
            .phase
            .map(|p| p.to_string())
            .unwrap_or_else(|| "Unknown".into()),
        gates_passed: gates.iter().filter(|g| g.status == "True").count(),
        gates,
        approved_at: status.approved_at.map(|t| t.0),
        expires_at: status.expires_at.map(|t| t.0),
        deployments: users,
        policy: status.policy.map(|p| p.name.clone()),
        name,
    }
}

pub async fn run(session: &Session, args: StatusArgs) -> Result<String> {
    let (approvals, deployments): (Api<ModelApproval>, Api<ModelDeployment>) =
        if args.all_namespaces {
            (
                Api::all(session.client.clone()),
                Api::all(session.client.clone()),
            )
        } else {
            (
                Api::namespaced(session.client.clone(), &session.namespace),
                Api::namespaced(session.client.clone(), &session.namespace),
            )
        };
    let items = match &args.name {
        Some(name) => vec![
            approvals
                .get(name)
                .await
                .map_err(|e| CliError::from_api(e, &format!("ModelApproval {name}")))?,
        ],
        None => {
            approvals
                .list(&ListParams::default())
                .await
                .map_err(|e| CliError::from_api(e, "ModelApprovals"))?
                .items
        }
    };
    let users = deployments
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    let views: Vec<ApprovalView> = items.iter().map(|a| view(a, &users)).collect();
    let now = Timestamp::now();
    match (args.output, &args.name) {
        (Format::Table, Some(_)) => Ok(views.first().map(|v| detail(v, now)).unwrap_or_default()),
        (Format::Table, None) if views.is_empty() => Ok(format!(
            "No ModelApprovals found in {}.\n",
            if args.all_namespaces {
                "any namespace"
            } else {
                &session.namespace
            }
        )),
        (Format::Table, None) => Ok(list(&views, args.all_namespaces, now)),
        (format, Some(_)) => output::structured(&views.first(), format),
        (format, None) => output::structured(&views, format),
    }
}

fn gate_cell(g: &GateView) -> String {
    match (&g.reviewer, &g.progress) {
        (Some(r), _) if g.status != UNKNOWN => format!("{} {r}", mark(&g.status)),
        (_, Some(p)) => format!("{} {p}", mark(&g.status)),
        _ => mark(&g.status).to_string(),
    }
}

fn list(views: &[ApprovalView], namespaces: bool, now: Timestamp) -> String {
    let mut header = vec![
        "NAME",
        "MODEL",
        "VERSION",
        "PHASE",
        "TECHNICAL",
        "FAIRNESS",
        "SECURITY",
        "LEGAL",
        "BUSINESS",
        "EXPIRES",
        "DEPLOYMENTS",
    ];
    if namespaces {
        header.insert(0, "NAMESPACE");
    }
    let mut t = output::table(&header);
    for v in views {
        let mut row = vec![
            v.name.clone(),
            v.model.clone(),
            v.version.clone(),
            v.phase.clone(),
        ];
        row.extend(v.gates.iter().map(gate_cell));
        row.push(
            v.expires_at
                .map(|e| output::relative(e, now))
                .unwrap_or_else(|| "-".into()),
        );
        row.push(if v.deployments.is_empty() {
            "-".into()
        } else {
            v.deployments.join(",")
        });
        if namespaces {
            row.insert(0, v.namespace.clone());
        }
        t.add_row(row);
    }
    output::render(&t) + &released(views, namespaces, now)
}

/// Below the table, one line per approval a break-glass releases.
fn released(views: &[ApprovalView], namespaces: bool, now: Timestamp) -> String {
    let mut out = String::new();
    for v in views {
        let Some(r) = &v.break_glass else { continue };
        let name = if namespaces {
            format!("{}/{}", v.namespace, v.name)
        } else {
            v.name.clone()
        };
        out.push_str(&format!(
            "\n{name} is released by break-glass {}\n",
            break_glass_line(r, now)
        ));
    }
    out
}

/// Who released the approval without which gates, until when and why:
/// "NAME by X, approved by Y, without GATES until TIME: REASON".
fn break_glass_line(r: &ReleasedBy, now: Timestamp) -> String {
    format!(
        "{} by {}, approved by {}, without {} until {}: {}",
        r.name,
        r.requested_by,
        r.approved_by.join(", "),
        r.skips.join(", "),
        output::when(r.until.0, now),
        r.reason
    )
}

/// The artifact's seal and why, e.g. "Unsealed: not an OCI artifact: …".
fn seal(artifact: Option<&modelgate::api::approval::ResolvedArtifact>) -> Option<String> {
    let a = artifact?;
    Some(match &a.message {
        Some(why) => format!("{}: {why}", a.seal.as_str()),
        None => a.seal.as_str().to_string(),
    })
}

fn detail(v: &ApprovalView, now: Timestamp) -> String {
    let time = |t: Option<Timestamp>| {
        t.map(|t| output::when(t, now))
            .unwrap_or_else(|| "-".into())
    };
    let break_glass = v
        .break_glass
        .as_ref()
        .map(|r| format!("Break-glass:  {}\n", break_glass_line(r, now)))
        .unwrap_or_default();
    let mut out = format!(
        "Name:         {}\nNamespace:    {}\nModel:        {} {}\nDigest:       {}\nSeal:         {}\nPhase:        {} ({}/5 gates passed)\n{break_glass}Approved at:  {}\nExpires at:   {}\nDeployments:  {}\nPolicy:       {}\n\n",
        v.name,
        v.namespace,
        v.model,
        v.version,
        v.digest,
        v.seal.as_deref().unwrap_or("-"),
        v.phase,
        v.gates_passed,
        time(v.approved_at),
        time(v.expires_at),
        if v.deployments.is_empty() {
            "-".to_string()
        } else {
            v.deployments.join(", ")
        },
        v.policy.as_deref().unwrap_or("not pinned yet"),
    );
    let mut t = output::table(&[
        "", "GATE", "PROGRESS", "REVIEWER", "REASON", "SINCE", "MESSAGE",
    ]);
    for g in &v.gates {
        t.add_row(vec![
            mark(&g.status).to_string(),
            g.gate.clone(),
            g.progress.clone().unwrap_or_else(|| "-".into()),
            g.reviewer.clone().unwrap_or_else(|| "-".into()),
            g.reason.clone().unwrap_or_else(|| "-".into()),
            g.since
                .map(|s| output::relative(s, now))
                .unwrap_or_else(|| "-".into()),
            g.message.clone().unwrap_or_default(),
        ]);
    }
    out.push_str(&output::render(&t));
    for g in v.gates.iter().filter(|g| g.advice.is_some()) {
        out.push_str(&format!(
            "\n{}: {}",
            g.gate,
            g.advice.clone().unwrap_or_default()
        ));
    }
    if v.gates.iter().any(|g| g.advice.is_some()) {
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn approval(phase: &str) -> ModelApproval {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "modelgate.io/v1alpha1", "kind": "ModelApproval",
            "metadata": {"name": "fd-7", "namespace": "risk"},
            "spec": {"model": {"name": "fd", "version": "7.0.0", "uri": "s3://m", "digest": "sha256:00"}},
            "status": {"phase": phase, "breakGlass": {
                "name": "fd-7-bg-x7k2p", "requestedBy": "ines@example.com",
                "approvedBy": ["olga@example.com", "pat@example.com"],
                "reason": "INC-4711: 2.4.0 flags every card payment in Ireland",
                "skips": ["LegalReview"],
                "since": "2026-11-25T09:00:00Z", "until": "2026-11-25T14:00:00Z",
            }},
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    const LINE: &str = "fd-7-bg-x7k2p by ines@example.com, approved by olga@example.com, pat@example.com, without LegalReview until 2026-11-25 14:00:00Z (in 4h): INC-4711: 2.4.0 flags every card payment in Ireland";

    #[test]
    fn a_released_approval_says_by_whom_without_what_until_when_and_why() {
        let now: Timestamp = "2026-11-25T10:00:00Z"
            .parse()
            .unwrap_or(Timestamp::UNIX_EPOCH);
        let v = view(&approval("BreakGlass"), &[]);
        let text = detail(&v, now);
        assert!(
            text.contains(&format!(
                "Phase:        BreakGlass (0/5 gates passed)\nBreak-glass:  {LINE}\n"
            )),
            "{text}"
        );
        let table = list(std::slice::from_ref(&v), false, now);
        assert!(
            table.contains(&format!("\nfd-7 is released by break-glass {LINE}\n")),
            "{table}"
        );
        let json = serde_json::to_value(&v).unwrap_or_default();
        assert_eq!(json["breakGlass"]["requestedBy"], "ines@example.com");
    }

    #[test]
    fn once_ratified_the_break_glass_line_is_gone() {
        let now: Timestamp = "2026-11-25T10:00:00Z"
            .parse()
            .unwrap_or(Timestamp::UNIX_EPOCH);
        let v = view(&approval("Approved"), &[]);
        assert!(v.break_glass.is_none());
        assert!(!detail(&v, now).contains("Break-glass"));
        assert!(!list(&[v], true, now).contains("break-glass"));
    }
}
