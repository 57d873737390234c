//! `break-glass approve NAME`: your own entry in the BreakGlass's
//! status.approvals, by server-side apply under a field manager of yours
//! alone (with a shared one, the next approver's apply would remove the
//! entries it does not repeat), then the operator's answer.

use std::time::Duration;

use clap::Args;
use jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};
use sha2::Digest;

use super::super::review::user_info;
use super::super::{CliError, Result, Session};
use modelgate::api::breakglass::{BreakGlass, BreakGlassPhase, Identity};
use modelgate::api::condition::whole_seconds;

/// How long to wait for the operator to answer an approval.
const SETTLE: Duration = Duration::from_secs(10);
/// How often an apply refused for a concurrent change is tried again.
const ATTEMPTS: usize = 5;
/// How long an approval's message may be, in characters (the CRD's limit).
const MESSAGE_CHARS: usize = 2048;

#[derive(Args)]
pub struct ApproveArgs {
    /// The BreakGlass (as `break-glass request` printed it, or `kubectl get bg` lists it).
    pub name: String,
    /// What you checked, for the record.
    #[arg(long, short = 'm')]
    pub message: Option<String>,
}

/// The message to record: trimmed, none when empty, refused when too long.
pub(super) fn message(args: &ApproveArgs) -> Result<Option<String>> {
    let Some(text) = args.message.as_deref().map(str::trim) else {
        return Ok(None);
    };
    let chars = text.chars().count();
    if chars > MESSAGE_CHARS {
        return Err(CliError::Usage(format!(
            "--message may be at most {MESSAGE_CHARS} characters; it has {chars}"
        )));
    }
    Ok((!text.is_empty()).then(|| text.to_string()))
}

/// The status apply of `me`'s approval of the BreakGlass `name`.
pub(crate) fn approval_patch(
    name: &str,
    me: &Identity,
    message: Option<&str>,
    at: Timestamp,
) -> Value {
    let mut entry = json!({
        "user": me.user,
        "time": whole_seconds(at).to_string(),
    });
    if !me.groups.is_empty() {
        entry["groups"] = me.groups.clone().into();
    }
    if let Some(message) = message {
        entry["message"] = message.into();
    }
    json!({
        "apiVersion": BreakGlass::api_version(&()),
        "kind": BreakGlass::kind(&()),
        "metadata": {"name": name},
        "status": {"approvals": [entry]},
    })
}

/// The field manager of `user`'s approvals: one per person.
pub(crate) fn approver_manager(user: &str) -> String {
    let who = hex::encode(sha2::Sha256::digest(user.as_bytes()));
    format!("break-glass-approval-{}", &who[..16])
}

/// Refuses an approval that cannot count, before anything is written.
pub(super) fn approvable(bg: &BreakGlass, user: &str) -> Result<()> {
    let name = bg.name_any();
    if let Some(phase) = super::phase(bg).filter(|p| p.is_final()) {
        return Err(CliError::Refused(format!(
            "break-glass {name} is {} and nothing changes it any more; nothing was written",
            phase.as_str()
        )));
    }
    if bg.spec.requested_by.user == user {
        return Err(CliError::Refused(format!(
            "break-glass {name} is your own request and the requester's approval never counts; ask one of its approvers (nothing was written)"
        )));
    }
    Ok(())
}

pub async fn run(session: &Session, args: ApproveArgs) -> Result<String> {
    let message = message(&args)?;
    let api: Api<BreakGlass> = Api::namespaced(session.client.clone(), &session.namespace);
    let what = format!(
        "BreakGlass {} in namespace {}",
        args.name, session.namespace
    );
    let bg = api
        .get(&args.name)
        .await
        .map_err(|e| CliError::from_api(e, &what))?;
    // Only to put the entitling groups first when there are too many.
    let approval = super::read_approval(session, &bg.spec.approval_ref.name)
        .await
        .ok();
    let rule = approval.as_ref().and_then(super::pinned_rule);
    let me = super::identity(user_info(session).await?, rule.map(|r| &r.approvers))?;
    approvable(&bg, &me.user)?;
    let applied = apply(&api, &bg, &me, message.as_deref(), &what).await?;
    let before = applied.status.as_ref().and_then(|s| s.message.clone());
    let seen = super::wait_until(&api, applied, SETTLE, |b| answered(b, before.as_deref())).await;
    Ok(approved(
        &seen,
        &me,
        answered(&seen, before.as_deref()),
        Timestamp::now(),
    ))
}

/// Applies `me`'s entry with the resourceVersion of a read of the same
/// object (same uid) as precondition, so an approval never lands on a
/// BreakGlass deleted and re-created since it was read; a refusal for an
/// unrelated change (the operator writing status) is tried again.
async fn apply(
    api: &Api<BreakGlass>,
    read: &BreakGlass,
    me: &Identity,
    message: Option<&str>,
    what: &str,
) -> Result<BreakGlass> {
    let name = read.name_any();
    let params = PatchParams::apply(&approver_manager(&me.user)).force();
    let mut current = read.clone();
    for _ in 0..ATTEMPTS {
        let mut patch = approval_patch(&name, me, message, Timestamp::now());
        patch["metadata"]["resourceVersion"] =
            current.resource_version().unwrap_or_default().into();
        match api
            .patch_status(&name, &params, &Patch::Apply(&patch))
            .await
        {
            Ok(updated) => return Ok(updated),
            Err(kube::Error::Api(s)) if s.code == 409 => {
                current = api
                    .get(&name)
                    .await
                    .map_err(|e| CliError::from_api(e, what))?;
                if current.uid() != read.uid() {
                    return Err(CliError::Changed(format!(
                        "{what} was deleted and re-created since it was read; nothing was written: read it again"
                    )));
                }
            }
            Err(e) => return Err(CliError::from_api(e, what)),
        }
    }
    Err(CliError::Refused(format!(
        "{what} kept changing while this was written ({ATTEMPTS} tries); try again"
    )))
}

/// Whether the operator has answered since the approval was written: the
/// phase moved on, or the message changed.
fn answered(bg: &BreakGlass, before: Option<&str>) -> bool {
    let status = bg.status.as_ref();
    match status.and_then(|s| s.phase) {
        None => false,
        Some(BreakGlassPhase::AwaitingApproval) => {
            status.and_then(|s| s.message.as_deref()) != before
        }
        Some(_) => true,
    }
}

/// What an approval came to: whose, of what, and where the break-glass
/// stands now.
pub(super) fn approved(bg: &BreakGlass, me: &Identity, answered: bool, now: Timestamp) -> String {
    let spec = &bg.spec;
    let skips: Vec<&str> = spec.skips.iter().map(|s| s.as_str()).collect();
    let groups = if me.groups.is_empty() {
        "no groups".to_string()
    } else {
        format!("groups {}", me.groups.join(", "))
    };
    let late = if answered {
        ""
    } else {
        " (the operator has not answered yet; kubectl get bg shows it when it does)"
    };
    format!(
        "your approval of break-glass {} is recorded as {} ({groups})\nrequest: {} without {} for {}, by {}: {}\nstatus: {}{late}\n",
        bg.name_any(),
        me.user,
        spec.approval_ref.name,
        skips.join(", "),
        spec.duration,
        spec.requested_by.user,
        spec.reason,
        super::standing(bg, now)
    )
}
