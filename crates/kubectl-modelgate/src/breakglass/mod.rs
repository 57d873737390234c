//! `break-glass request | approve`: an emergency release of an approval
//! still short of some gates. The request names its requester and each
//! approval its approver, as the cluster authenticated them, with their
//! groups (the admission policy refuses any other name and any group not
//! theirs); the operator judges both under the approval's pinned policy
//! and writes the phase printed here.

mod approve;
mod request;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::time::Duration;

use clap::Subcommand;
use jiff::Timestamp;
use k8s_openapi::api::authentication::v1::UserInfo;
use kube::ResourceExt;
use kube::api::Api;

use super::{CliError, Result, Session, output};
use modelgate::api::approval::ModelApproval;
use modelgate::api::breakglass::{
    BreakGlass, BreakGlassPhase, BreakGlassRule, Identities, Identity,
};

#[derive(Subcommand)]
pub enum BreakGlassCommand {
    /// Ask for an emergency release of an approval still short of some gates: why, for how long, and without which gates. Your name and groups are taken from the cluster.
    #[command(
        after_help = "Example:\n  kubectl modelgate break-glass request fraud-detector-2-4-1 --for 4h --skip legal \\\n      --reason \"INC-4711: 2.4.0 flags every card payment in Ireland; 2.4.1 fixes it\" -n risk"
    )]
    Request(request::RequestArgs),
    /// Approve someone else's break-glass as yourself, then show whether it is Active and until when.
    #[command(
        after_help = "Example:\n  kubectl modelgate break-glass approve fraud-detector-2-4-1-bg-x7k2p \\\n      --message \"checked INC-4711 with the incident commander\" -n risk"
    )]
    Approve(approve::ApproveArgs),
}

pub async fn run(session: &Session, command: BreakGlassCommand) -> Result<String> {
    match command {
        BreakGlassCommand::Request(args) => request::run(session, args).await,
        BreakGlassCommand::Approve(args) => approve::run(session, args).await,
    }
}

/// The group of every authenticated identity: it entitles no one.
const AUTHENTICATED: &str = "system:authenticated";
/// How many groups an identity may name, and how long each may be (the
/// CRD's limits).
const MAX_GROUPS: usize = 16;
const MAX_GROUP_CHARS: usize = 256;
/// How often the status is read while waiting for the operator.
const POLL: Duration = Duration::from_millis(500);

/// You as the cluster authenticated you (`info`, from a SelfSubjectReview):
/// your user name and the groups to name. Whether one of them entitles you
/// is the pinned policy's to say, so all are named; when there are more
/// than the CRD holds, the ones `entitling` names come first.
pub(crate) fn identity(info: UserInfo, entitling: Option<&Identities>) -> Result<Identity> {
    let user = info.username.filter(|u| !u.is_empty()).ok_or_else(|| {
        CliError::Refused(
            "the cluster did not say who you are (SelfSubjectReview has no user name)".into(),
        )
    })?;
    let named = entitling.map(|e| e.groups.as_slice()).unwrap_or_default();
    Ok(Identity {
        user,
        groups: claimed_groups(info.groups.unwrap_or_default(), named),
    })
}

/// Every group but system:authenticated, each once, the ones `named`
/// first (otherwise in the cluster's order), as many as the CRD holds.
fn claimed_groups(mut groups: Vec<String>, named: &[String]) -> Vec<String> {
    let mut seen = BTreeSet::new();
    groups.retain(|g| {
        g != AUTHENTICATED
            && !g.is_empty()
            && g.chars().count() <= MAX_GROUP_CHARS
            && seen.insert(g.clone())
    });
    groups.sort_by_key(|g| !named.contains(g));
    groups.truncate(MAX_GROUPS);
    groups
}

/// The break-glass rule pinned into `approval`, if its policy has one.
fn pinned_rule(approval: &ModelApproval) -> Option<&BreakGlassRule> {
    approval
        .status
        .as_ref()?
        .policy
        .as_ref()?
        .break_glass
        .as_ref()
}

fn phase(bg: &BreakGlass) -> Option<BreakGlassPhase> {
    bg.status.as_ref().and_then(|s| s.phase)
}

/// Where `bg` stands, for people: its phase (with the end of its window
/// while Active) and the operator's message.
fn standing(bg: &BreakGlass, now: Timestamp) -> String {
    let Some(status) = bg.status.as_ref().filter(|s| s.phase.is_some()) else {
        return format!(
            "not judged yet: the operator has not written its status (kubectl get bg {} shows it once it has)",
            bg.name_any()
        );
    };
    let phase = status.phase.map(|p| p.as_str()).unwrap_or_default();
    let until = match (status.phase, &status.until) {
        (Some(BreakGlassPhase::Active), Some(until)) => {
            format!(" until {}", output::when(until.0, now))
        }
        _ => String::new(),
    };
    format!(
        "{phase}{until}: {}",
        status.message.as_deref().unwrap_or("-")
    )
}

/// Reads `written` again until `done` holds of it or `within` has passed;
/// the last read. A read that fails is not a failed command (what was
/// written stands), so the last good read is kept.
async fn wait_until(
    api: &Api<BreakGlass>,
    written: BreakGlass,
    within: Duration,
    done: impl Fn(&BreakGlass) -> bool,
) -> BreakGlass {
    let name = written.name_any();
    let deadline = tokio::time::Instant::now() + within;
    let mut last = written;
    while !done(&last) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(POLL).await;
        if let Ok(bg) = api.get(&name).await {
            last = bg;
        }
    }
    last
}

/// The approval a break-glass names, in the session's namespace.
async fn read_approval(session: &Session, name: &str) -> Result<ModelApproval> {
    Api::<ModelApproval>::namespaced(session.client.clone(), &session.namespace)
        .get(name)
        .await
        .map_err(|e| {
            CliError::from_api(
                e,
                &format!("ModelApproval {name} in namespace {}", session.namespace),
            )
        })
}
