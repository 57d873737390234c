//! `approve` and `reject`: one gate, set by the authenticated reviewer, with
//! server-side apply of that one condition so every other gate stays.

use clap::Args;
use jiff::Timestamp;
use k8s_openapi::api::authentication::v1::{SelfSubjectReview, UserInfo};
use kube::api::{Api, Patch, PatchParams, PostParams};

use super::{CliError, Result, Session};
use crate::api::condition::{FALSE, TRUE};
use crate::api::review::gate_patch;
use crate::api::{Gate, ModelApproval};

#[derive(Args)]
#[command(
    after_help = "Examples:\n  kubectl modelgate approve fraud-detector-2-4-0 --gate security -n risk\n  kubectl modelgate approve fraud-detector-2-4-0 --gate FairnessReview --reason DisparityWithinBounds \\\n      --message \"max disparity 1.04 across the protected groups\" -n risk"
)]
pub struct ApproveArgs {
    /// The ModelApproval.
    pub name: String,
    /// Your gate: technical, fairness, security, legal or business (or TechnicalReview, …; any case).
    #[arg(long, short = 'g')]
    pub gate: Gate,
    /// A CamelCase word for why it passes.
    #[arg(long, default_value = "Passed")]
    pub reason: String,
    /// What you checked and found.
    #[arg(long, short = 'm')]
    pub message: Option<String>,
}

#[derive(Args)]
#[command(
    after_help = "Example:\n  kubectl modelgate reject fraud-detector-2-4-0 --gate legal --reason LicenceUnclear \\\n      --message \"training data licence for source B not confirmed\" -n risk"
)]
pub struct RejectArgs {
    /// The ModelApproval.
    pub name: String,
    /// Your gate: technical, fairness, security, legal or business (or TechnicalReview, …; any case).
    #[arg(long, short = 'g')]
    pub gate: Gate,
    /// A CamelCase word for why it fails.
    #[arg(long)]
    pub reason: String,
    /// What you found, for the people who must fix it.
    #[arg(long, short = 'm')]
    pub message: String,
}

/// Who the cluster says we are: user name and groups.
pub async fn user_info(session: &Session) -> Result<UserInfo> {
    let api: Api<SelfSubjectReview> = Api::all(session.client.clone());
    let review = api
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .map_err(|e| CliError::from_api(e, "SelfSubjectReview"))?;
    Ok(review.status.and_then(|s| s.user_info).unwrap_or_default())
}

/// Who the cluster says we are.
pub async fn whoami(session: &Session) -> Result<String> {
    user_info(session).await?.username.ok_or_else(|| {
        CliError::Refused(
            "the cluster did not say who you are (SelfSubjectReview has no user name)".into(),
        )
    })
}

/// The field manager of one gate's writes: each gate is owned separately.
pub fn field_manager(gate: Gate) -> String {
    format!("kubectl-modelgate-{}", gate.short_name())
}

async fn set(
    session: &Session,
    name: &str,
    gate: Gate,
    status: &str,
    reason: &str,
    message: Option<&str>,
) -> Result<String> {
    let reviewer = whoami(session).await?;
    let patch = gate_patch(
        name,
        gate,
        status,
        reason,
        message,
        &reviewer,
        Timestamp::now(),
    );
    let api: Api<ModelApproval> = Api::namespaced(session.client.clone(), &session.namespace);
    // force: the gate entry is this reviewer's to set; the admission policy,
    // not field ownership, decides who that may be.
    let params = PatchParams::apply(&field_manager(gate)).force();
    let updated = api
        .patch_status(name, &params, &Patch::Apply(&patch))
        .await
        .map_err(|e| {
            CliError::from_api(
                e,
                &format!("ModelApproval {name} in namespace {}", session.namespace),
            )
        })?;
    let phase = updated
        .status
        .and_then(|s| s.phase)
        .map(|p| p.to_string())
        .unwrap_or_else(|| "Pending".into());
    let verb = if status == TRUE { "passed" } else { "failed" };
    Ok(format!(
        "{gate} of {}/{name} {verb} by {reviewer} (approval phase: {phase}; the operator updates it in a moment)\n",
        session.namespace
    ))
}

pub async fn approve(session: &Session, args: ApproveArgs) -> Result<String> {
    set(
        session,
        &args.name,
        args.gate,
        TRUE,
        &args.reason,
        args.message.as_deref(),
    )
    .await
}

pub async fn reject(session: &Session, args: RejectArgs) -> Result<String> {
    set(
        session,
        &args.name,
        args.gate,
        FALSE,
        &args.reason,
        Some(&args.message),
    )
    .await
}
