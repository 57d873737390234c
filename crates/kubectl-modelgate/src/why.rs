//! `why DEPLOYMENT`: why a ModelDeployment is held or revoked, in words.

use clap::Args;
use kube::ResourceExt;
use kube::api::Api;

use super::output::mark;
use super::{CliError, Result, Session, authority};
use modelgate::api::condition::{self, FALSE, TRUE, UNKNOWN};
use modelgate::api::deployment::APPROVAL_SATISFIED;
use modelgate::api::policy::RuleMode;
use modelgate::api::{approval::ModelApproval, deployment::ModelDeployment, gates::Gate};

#[derive(Args)]
#[command(after_help = "Example:\n  kubectl modelgate why fraud-detector -n risk")]
pub struct WhyArgs {
    /// The ModelDeployment.
    pub name: String,
    /// The namespace modelgate is installed in (its authority params name
    /// the reviewer groups). Found from the admission policy binding when
    /// not given.
    #[arg(long, env = "MODELGATE_NAMESPACE")]
    pub modelgate_namespace: Option<String>,
}

pub async fn run(session: &Session, args: WhyArgs) -> Result<String> {
    let ns = &session.namespace;
    let mds: Api<ModelDeployment> = Api::namespaced(session.client.clone(), ns);
    let md = mds.get(&args.name).await.map_err(|e| {
        CliError::from_api(
            e,
            &format!("ModelDeployment {} in namespace {ns}", args.name),
        )
    })?;
    let mut out = deployment_line(ns, &md);
    let approval_name = &md.spec.approval_ref.name;
    let approvals: Api<ModelApproval> = Api::namespaced(session.client.clone(), ns);
    match approvals
        .get_opt(approval_name)
        .await
        .map_err(|e| CliError::from_api(e, "ModelApproval"))?
    {
        None => out.push_str(&format!(
            "\nIt names approval {approval_name}, which does not exist in {ns}.\n"
        )),
        Some(a) => {
            let authority =
                authority::namespace(session, args.modelgate_namespace.as_deref()).await;
            out.push_str(&approval_lines(
                &a,
                &authority::groups(session, &authority).await,
            ));
        }
    }
    out.push_str(&serving_line(&md.status.unwrap_or_default()));
    Ok(out)
}

/// The ModelDeployment's phase and why.
fn deployment_line(ns: &str, md: &ModelDeployment) -> String {
    let status = md.status.clone().unwrap_or_default();
    let phase = status
        .phase
        .map(|p| p.to_string())
        .unwrap_or_else(|| "not yet observed by the operator".into());
    let mut out = format!("ModelDeployment {ns}/{} is {phase}.\n", md.name_any());
    if let Some(c) = condition::find(&status.conditions, APPROVAL_SATISFIED) {
        out.push_str(&format!(
            "{}: {}\n",
            c.reason.clone().unwrap_or_default(),
            c.message.clone().unwrap_or_default()
        ));
    }
    out
}

/// The approval's phase, its failed and pending gates with who can act on
/// each, and when it lapses.
fn approval_lines(a: &ModelApproval, groups: &[(Gate, String)]) -> String {
    let a_status = a.status.clone().unwrap_or_default();
    let a_phase = a_status
        .phase
        .map(|p| p.to_string())
        .unwrap_or_else(|| "Pending".into());
    let mut out = format!(
        "\nApproval {} ({} {}, {}) is {a_phase}.\n",
        a.name_any(),
        a.spec.model.name,
        a.spec.model.version,
        a.spec.model.digest
    );
    out.push_str(&imported_lines(a));
    let mut failed = Vec::new();
    let mut pending = Vec::new();
    for (gate, group) in groups {
        let mirrored = modelgate::policy::pin::mirrored(a_status.policy.as_deref(), *gate);
        let who = if mirrored {
            "it is mirrored from the publisher's record and decided in the publisher's cluster"
                .to_string()
        } else {
            format!("members of {group} can pass it after a fix")
        };
        match condition::find(&a_status.conditions, gate.condition_type()) {
            Some(c) if c.status == TRUE => {}
            Some(c) if c.status == FALSE => failed.push(format!(
                "  {} {gate}: failed by {} ({}: {}); {who}\n",
                mark(FALSE),
                c.reviewer.clone().unwrap_or_else(|| "?".into()),
                c.reason.clone().unwrap_or_default(),
                c.message.clone().unwrap_or_default()
            )),
            _ if mirrored => pending.push(format!(
                "  {} {gate}: waiting for the publisher's approval; decided in the publisher's cluster\n",
                mark(UNKNOWN)
            )),
            _ => pending.push(pending_line(&a_status, *gate, group)),
        }
    }
    for (title, lines) in [("Failed gates:\n", failed), ("Pending gates:\n", pending)] {
        if !lines.is_empty() {
            out.push_str(title);
            out.extend(lines);
        }
    }
    if let Some(expires) = a_status.expires_at {
        out.push_str(&format!(
            "The approval lapses at {}.\n",
            expires.0.strftime("%Y-%m-%d %H:%M:%SZ")
        ));
    }
    out
}

/// For an imported approval: whose approval it mirrors and what was last
/// honoured or refused (docs/fleet.md).
fn imported_lines(a: &ModelApproval) -> String {
    let Some(import) = &a.spec.import_from else {
        return String::new();
    };
    let mut out = format!(
        "It mirrors {}'s approval {} (TrustedPublisher {}).\n",
        import.publisher, import.approval, import.publisher
    );
    let imported = a.status.as_ref().and_then(|s| s.imported.as_ref());
    if let Some(m) = imported {
        if let (Some(phase), Some(seq)) = (&m.phase, m.seq) {
            out.push_str(&format!(
                "  Its newest honoured record says {phase} (seq {seq}).\n"
            ));
        }
        if let Some(message) = &m.message {
            out.push_str(&format!("  {message}\n"));
        }
        for r in &m.refused {
            out.push_str(&format!("  Refused record {}: {}\n", r.referrer, r.reason));
        }
    }
    out
}

/// A pending gate, with who can act on it under the pinned rules: its
/// quorum's progress, or what its rule waits for.
fn pending_line(
    status: &modelgate::api::approval::ModelApprovalStatus,
    gate: Gate,
    group: &str,
) -> String {
    let progress = status
        .progress
        .iter()
        .find(|p| p.gate == gate.condition_type() && p.mode != Some(RuleMode::Advise));
    match progress {
        Some(p) if p.progress == "rule" => format!(
            "  {} {gate}: decided by its rule: {}\n",
            mark(UNKNOWN),
            p.message
        ),
        Some(p) => format!(
            "  {} {gate} {}: {}; members of {group} review it\n",
            mark(UNKNOWN),
            p.progress,
            p.message
        ),
        None => format!(
            "  {} {gate}: pending; members of {group} can pass it\n",
            mark(UNKNOWN)
        ),
    }
}

/// What serves now.
fn serving_line(status: &modelgate::api::deployment::ModelDeploymentStatus) -> String {
    match &status.served_model {
        Some(s) => format!(
            "\nServing now: {} {} ({}), approval {}; {} pods ready.\n",
            s.name,
            s.version,
            s.digest,
            s.approval,
            status.ready.clone().unwrap_or_else(|| "0/0".into())
        ),
        None => "\nNothing is serving yet: no Deployment has been rolled out.\n".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use modelgate::api::approval::{ModelApprovalSpec, ModelApprovalStatus, ModelArtifact};
    use modelgate::api::fleet::{Import, ImportedApproval, RefusedRecord};

    #[test]
    fn an_imported_approval_says_whose_it_mirrors_and_who_decides_its_gates() {
        let mut policy = modelgate::api::policy::ApprovalPolicy::new("default", Default::default());
        policy.spec.local_gates = vec!["BusinessReview".into()];
        let mut a = ModelApproval::new(
            "fd",
            ModelApprovalSpec {
                model: ModelArtifact {
                    name: "fraud-detector".into(),
                    version: "2.4.1".into(),
                    uri: "oci://r.example.com/models/fd".into(),
                    digest: format!("sha256:{}", "a".repeat(64)),
                },
                valid_for: None,
                evidence: Vec::new(),
                import_from: Some(Import {
                    publisher: "board".into(),
                    approval: "ml-prod/fd".into(),
                }),
            },
        );
        a.status = Some(ModelApprovalStatus {
            policy: Some(std::sync::Arc::new(
                modelgate::policy::pin::pin_for_approval(Some(&policy), true),
            )),
            imported: Some(Box::new(ImportedApproval {
                publisher: "board".into(),
                approval: "ml-prod/fd".into(),
                phase: Some("Rejected".into()),
                seq: Some(8),
                refused: vec![RefusedRecord {
                    referrer: "sha256:junk".into(),
                    reason: "its layer is not a DSSE envelope".into(),
                }],
                ..ImportedApproval::default()
            })),
            ..ModelApprovalStatus::default()
        });
        let groups: Vec<(Gate, String)> = Gate::ALL
            .map(|g| (g, format!("{}-group", g.short_name())))
            .to_vec();
        let said = approval_lines(&a, &groups);
        assert!(
            said.contains("It mirrors board's approval ml-prod/fd"),
            "{said}"
        );
        assert!(said.contains("says Rejected (seq 8)"), "{said}");
        assert!(
            said.contains("Refused record sha256:junk: its layer is not a DSSE envelope"),
            "{said}"
        );
        assert!(
            said.contains("SecurityReview: waiting for the publisher's approval"),
            "{said}"
        );
        // The local gate is still the local reviewers'.
        assert!(
            said.contains("BusinessReview: pending; members of"),
            "{said}"
        );
    }
}
