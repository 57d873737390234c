//! `approve` and `reject`: one gate, decided by the authenticated reviewer,
//! with server-side apply of that one condition (or, for a quorum gate, of
//! their own review) so everything else stays.

use clap::Args;
use jiff::Timestamp;
use k8s_openapi::api::authentication::v1::{SelfSubjectReview, UserInfo};
use kube::api::{Api, PostParams};

use super::bound::{self, Expect};
use super::{CliError, Result, Session};
use kube::ResourceExt;
use modelgate::api::condition::{FALSE, TRUE};
use modelgate::api::review::{gate_patch, review_manager, review_patch};
use modelgate::api::{approval::ModelApproval, gates::Gate};
use modelgate::policy::pin::{Decider, rule_of};
use modelgate::policy::quorum::{APPROVE, REJECT};

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
    /// The model digest you reviewed: refused when the approval names another.
    #[arg(long)]
    pub digest: Option<String>,
    /// The approval's uid you reviewed (as `status -o yaml` shows it):
    /// refused when it was deleted and re-created since.
    #[arg(long)]
    pub uid: Option<String>,
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
    /// The model digest you reviewed: refused when the approval names another.
    #[arg(long)]
    pub digest: Option<String>,
    /// The approval's uid you reviewed (as `status -o yaml` shows it):
    /// refused when it was deleted and re-created since.
    #[arg(long)]
    pub uid: Option<String>,
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

/// The write a decision on `gate` takes under the approval's pinned rules:
/// the gate's condition, or this person's review of a quorum gate. A gate a
/// rule decides takes no person's decision.
fn decision_write(
    approval: &ModelApproval,
    gate: Gate,
    pass: bool,
    reason: &str,
    message: Option<&str>,
    reviewer: &str,
) -> Result<(serde_json::Value, String)> {
    let name = approval.name_any();
    let pinned = approval.status.as_ref().and_then(|s| s.policy.as_deref());
    let now = Timestamp::now();
    match rule_of(pinned, gate).decider() {
        Decider::Person => Ok((
            gate_patch(
                &name,
                gate,
                if pass { TRUE } else { FALSE },
                reason,
                message,
                reviewer,
                now,
            ),
            field_manager(gate),
        )),
        Decider::Quorum(_) => Ok((
            review_patch(
                &name,
                gate,
                if pass { APPROVE } else { REJECT },
                reason,
                message,
                reviewer,
                now,
            ),
            review_manager(gate, reviewer),
        )),
        Decider::Rule => Err(CliError::Refused(format!(
            "{gate} of {name} is decided by its rule from measurements, not by a person (see kubectl modelgate why)"
        ))),
        Decider::Imported => Err(CliError::Refused(format!(
            "{gate} of {name} is mirrored from its publisher's signed record (spec.importFrom): it is decided in the publisher's cluster, not here"
        ))),
    }
}

/// One decision: what it is about, and what it says.
struct Decision<'a> {
    name: &'a str,
    gate: Gate,
    pass: bool,
    reason: &'a str,
    message: Option<&'a str>,
    expect: Expect,
}

async fn set(session: &Session, d: Decision<'_>) -> Result<String> {
    let Decision {
        name, gate, pass, ..
    } = d;
    let reviewer = whoami(session).await?;
    let api: Api<ModelApproval> = Api::namespaced(session.client.clone(), &session.namespace);
    let what = format!("ModelApproval {name} in namespace {}", session.namespace);
    let mut expect = d.expect.clone();
    let mut quorum = false;
    // Bound to the uid and digest read (or given): the API server refuses
    // the apply when the approval changed since.
    let (updated, seen) = bound::apply_status(&api, name, &what, &mut expect, |approval| {
        let write = decision_write(approval, gate, pass, d.reason, d.message, &reviewer)?;
        quorum = write.0["status"].get("reviews").is_some();
        Ok(write)
    })
    .await?;
    let phase = updated
        .status
        .as_ref()
        .and_then(|s| s.phase)
        .map(|p| p.to_string())
        .unwrap_or_else(|| "Pending".into());
    let verb = if pass { "passed" } else { "failed" };
    let on = format!("on digest {} (approval uid {})", seen.digest, seen.uid);
    Ok(if quorum {
        format!(
            "your review of {gate} on {}/{name}: {} {on} (the gate needs a quorum; kubectl modelgate status {name} shows its progress)\n",
            session.namespace,
            if pass { APPROVE } else { REJECT }
        )
    } else {
        format!(
            "{gate} of {}/{name} {verb} by {reviewer} {on} (approval phase: {phase}; the operator updates it in a moment)\n",
            session.namespace
        )
    })
}

pub async fn approve(session: &Session, args: ApproveArgs) -> Result<String> {
    let d = Decision {
        name: &args.name,
        gate: args.gate,
        pass: true,
        reason: &args.reason,
        message: args.message.as_deref(),
        expect: Expect {
            uid: args.uid.clone(),
            digest: args.digest.clone(),
        },
    };
    set(session, d).await
}

pub async fn reject(session: &Session, args: RejectArgs) -> Result<String> {
    let d = Decision {
        name: &args.name,
        gate: args.gate,
        pass: false,
        reason: &args.reason,
        message: Some(&args.message),
        expect: Expect {
            uid: args.uid.clone(),
            digest: args.digest.clone(),
        },
    };
    set(session, d).await
}
