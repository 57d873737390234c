//! `why DEPLOYMENT`: why a ModelDeployment is held or revoked, in words.

use clap::Args;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;

use super::output::mark;
use super::{CliError, Result, Session};
use crate::api::condition::{self, TRUE};
use crate::api::{Gate, ModelApproval, ModelDeployment};
use crate::deployment::decide::APPROVAL_SATISFIED;

#[derive(Args)]
pub struct WhyArgs {
    /// The ModelDeployment.
    pub name: String,
}

/// The params key that names a gate's reviewer group.
fn params_key(gate: Gate) -> String {
    format!("{}Reviewers", gate.short_name())
}

/// The reviewer group of each gate, from the authority params when they can
/// be read, else the defaults.
async fn groups(session: &Session) -> Vec<(Gate, String)> {
    let api: Api<ConfigMap> = Api::namespaced(session.client.clone(), "modelgate-system");
    let data = api
        .get("modelgate-authority")
        .await
        .ok()
        .and_then(|c| c.data)
        .unwrap_or_default();
    Gate::ALL
        .into_iter()
        .map(|g| {
            (
                g,
                data.get(&params_key(g))
                    .cloned()
                    .unwrap_or_else(|| g.default_group().to_string()),
            )
        })
        .collect()
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
    let status = md.status.clone().unwrap_or_default();
    let phase = status
        .phase
        .map(|p| p.to_string())
        .unwrap_or_else(|| "not yet observed by the operator".into());
    let mut out = format!("ModelDeployment {ns}/{} is {phase}.\n", args.name);
    if let Some(c) = condition::find(&status.conditions, APPROVAL_SATISFIED) {
        out.push_str(&format!(
            "{}: {}\n",
            c.reason.clone().unwrap_or_default(),
            c.message.clone().unwrap_or_default()
        ));
    }

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
            let a_status = a.status.clone().unwrap_or_default();
            let a_phase = a_status
                .phase
                .map(|p| p.to_string())
                .unwrap_or_else(|| "Pending".into());
            out.push_str(&format!(
                "\nApproval {approval_name} ({} {}, {}) is {a_phase}.\n",
                a.spec.model.name, a.spec.model.version, a.spec.model.digest
            ));
            let groups = groups(session).await;
            let mut failed = Vec::new();
            let mut pending = Vec::new();
            for (gate, group) in &groups {
                match condition::find(&a_status.conditions, gate.condition_type()) {
                    Some(c) if c.status == TRUE => {}
                    Some(c) if c.status == "False" => failed.push(format!(
                        "  {} {gate}: failed by {} ({}: {}); members of {group} can pass it after a fix\n",
                        mark("False"),
                        c.reviewer.clone().unwrap_or_else(|| "?".into()),
                        c.reason.clone().unwrap_or_default(),
                        c.message.clone().unwrap_or_default()
                    )),
                    _ => pending.push(format!("  {} {gate}: pending; members of {group} can pass it\n", mark("Unknown"))),
                }
            }
            if !failed.is_empty() {
                out.push_str("Failed gates:\n");
                out.extend(failed);
            }
            if !pending.is_empty() {
                out.push_str("Pending gates:\n");
                out.extend(pending);
            }
            if let Some(expires) = a_status.expires_at {
                out.push_str(&format!(
                    "The approval lapses at {}.\n",
                    expires.0.strftime("%Y-%m-%d %H:%M:%SZ")
                ));
            }
        }
    }
    match &status.served_model {
        Some(s) => out.push_str(&format!(
            "\nServing now: {} {} ({}), approval {}; {} pods ready.\n",
            s.name,
            s.version,
            s.digest,
            s.approval,
            status.ready.clone().unwrap_or_else(|| "0/0".into())
        )),
        None => out.push_str("\nNothing is serving yet: no Deployment has been rolled out.\n"),
    }
    Ok(out)
}
