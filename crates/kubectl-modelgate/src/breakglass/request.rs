//! `break-glass request APPROVAL`: creates the BreakGlass in your name,
//! says who must approve it, and shows the operator's first judgement.
//!
//! A BreakGlass is a record its requester cannot delete, so a request the
//! operator would refuse at once (by the approval's pinned policy, or an
//! approval there is nothing to release of) is refused here, with the
//! operator's own words, before anything is written.

use std::time::Duration;

use clap::Args;
use jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, PostParams};

use super::super::review::user_info;
use super::super::{CliError, Result, Session};
use modelgate::api::approval::{ApprovalPhase, ModelApproval};
use modelgate::api::breakglass::{
    ApprovalRef, BreakGlass, BreakGlassPhase, BreakGlassRule, BreakGlassSpec, Identity, SkippedGate,
};
use modelgate::api::condition::TRUE;
use modelgate::api::gates::Gate;
use modelgate::api::valid_for;
use modelgate::approval::breakglass::{Authority, authority};

/// The field manager of a request.
const MANAGER: &str = "kubectl-modelgate-break-glass";
/// How long to wait for the operator's first judgement.
const FIRST_LOOK: Duration = Duration::from_secs(5);
/// How long a reason may be, in characters (the CRD's limits).
const REASON_CHARS: std::ops::RangeInclusive<usize> = 10..=2048;

#[derive(Args)]
pub struct RequestArgs {
    /// The ModelApproval to release.
    pub approval: String,
    /// Why, for the record: the incident and what waiting costs (10 to 2048 characters).
    #[arg(long)]
    pub reason: String,
    /// How long the release lasts once approved: whole hours, minutes and seconds, such as 4h or 90m (at most the policy's maxDuration).
    #[arg(long = "for", value_name = "DURATION")]
    pub duration: String,
    /// A gate to release the approval without (repeatable; every open gate): technical, fairness, security, legal or business (or LegalReview, …; any case).
    #[arg(long = "skip", value_name = "GATE", required = true)]
    pub skips: Vec<Gate>,
    /// The BreakGlass's name (default: the approval's name, -bg- and a random suffix).
    #[arg(long)]
    pub name: Option<String>,
}

/// What is asked, checked before anything is read or written.
#[derive(Debug, PartialEq)]
pub(super) struct Ask {
    pub reason: String,
    pub duration: String,
    /// Each gate once, in the order given.
    pub skips: Vec<SkippedGate>,
}

pub(super) fn ask(args: &RequestArgs) -> Result<Ask> {
    let reason = args.reason.trim();
    let chars = reason.chars().count();
    if !REASON_CHARS.contains(&chars) {
        return Err(CliError::Usage(format!(
            "--reason must say why in 10 to 2048 characters (the incident and what waiting costs); it has {chars}"
        )));
    }
    if valid_for::parse(&args.duration).is_none() {
        return Err(CliError::Usage(format!(
            "--for {:?} is not a duration of whole hours, minutes and seconds, such as 4h, 90m or 1h30m",
            args.duration
        )));
    }
    let mut skips = Vec::new();
    for gate in args.skips.iter().copied().map(skipped) {
        if !skips.contains(&gate) {
            skips.push(gate);
        }
    }
    Ok(Ask {
        reason: reason.to_string(),
        duration: args.duration.clone(),
        skips,
    })
}

fn skipped(gate: Gate) -> SkippedGate {
    match gate {
        Gate::Technical => SkippedGate::TechnicalReview,
        Gate::Fairness => SkippedGate::FairnessReview,
        Gate::Security => SkippedGate::SecurityReview,
        Gate::Legal => SkippedGate::LegalReview,
        Gate::Business => SkippedGate::BusinessReview,
    }
}

/// The BreakGlass to create: named as given, else by the API server from
/// the approval's name.
pub(super) fn object(approval: &str, name: Option<&str>, ask: Ask, me: Identity) -> BreakGlass {
    let mut bg = BreakGlass::new(
        name.unwrap_or_default(),
        BreakGlassSpec {
            approval_ref: ApprovalRef {
                name: approval.to_string(),
            },
            reason: ask.reason,
            duration: ask.duration,
            skips: ask.skips,
            requested_by: me,
        },
    );
    if name.is_none() {
        bg.metadata.name = None;
        bg.metadata.generate_name = Some(format!("{approval}-bg-"));
    }
    bg
}

/// Why the operator would refuse `bg` at once, if it would.
pub(super) fn refused_at_once(bg: &BreakGlass, approval: &ModelApproval) -> Option<String> {
    let name = approval.name_any();
    let status = approval.status.as_ref();
    if status.and_then(|s| s.policy.as_ref()).is_none() {
        return Some(format!(
            "{name} has no pinned policy yet (the operator pins it when it first sees the approval); try again in a moment"
        ));
    }
    if let Some(why) = status.and_then(|s| s.phase).and_then(nothing_to_release) {
        return Some(format!("{name} is {why}"));
    }
    if let Authority::Refused(why) = authority(bg, status, Timestamp::now()) {
        return Some(why);
    }
    not_skipped(bg, approval)
}

/// Why no break-glass releases an approval in `phase`, if none does.
fn nothing_to_release(phase: ApprovalPhase) -> Option<&'static str> {
    match phase {
        ApprovalPhase::Approved => Some("Approved: there is nothing to release"),
        ApprovalPhase::Rejected => Some("Rejected: a gate a reviewer failed cannot be skipped"),
        ApprovalPhase::Expired => Some("Expired: create a new ModelApproval"),
        ApprovalPhase::Pending | ApprovalPhase::BreakGlass => None,
    }
}

/// The open gates `bg` does not skip: the operator releases an approval
/// only while every open gate is skipped.
fn not_skipped(bg: &BreakGlass, approval: &ModelApproval) -> Option<String> {
    let gates = approval
        .status
        .as_ref()
        .map(|s| s.observed_gates.as_slice())?;
    let open: Vec<&str> = gates
        .iter()
        .filter(|g| g.status != TRUE)
        .map(|g| g.gate.as_str())
        .collect();
    let missing: Vec<&str> = open
        .iter()
        .copied()
        .filter(|g| !bg.spec.skips.iter().any(|s| s.as_str() == *g))
        .collect();
    (!missing.is_empty()).then(|| {
        format!(
            "{} of {} {} open and not skipped: a break-glass releases an approval only without every open gate (--skip each of {})",
            missing.join(", "),
            approval.name_any(),
            if missing.len() == 1 { "is" } else { "are" },
            open.join(", ")
        )
    })
}

pub async fn run(session: &Session, args: RequestArgs) -> Result<String> {
    let ask = ask(&args)?;
    let approval = super::read_approval(session, &args.approval).await?;
    let rule = super::pinned_rule(&approval);
    let me = super::identity(user_info(session).await?, rule.map(|r| &r.requesters))?;
    let bg = object(&args.approval, args.name.as_deref(), ask, me);
    if let Some(why) = refused_at_once(&bg, &approval) {
        return Err(CliError::Refused(format!(
            "no break-glass requested: {why}"
        )));
    }
    let api: Api<BreakGlass> = Api::namespaced(session.client.clone(), &session.namespace);
    let params = PostParams {
        field_manager: Some(MANAGER.into()),
        ..PostParams::default()
    };
    let created = api.create(&params, &bg).await.map_err(|e| {
        CliError::from_api(
            e,
            &format!("namespace {} or the BreakGlass kind", session.namespace),
        )
    })?;
    let judged = super::wait_until(&api, created, FIRST_LOOK, |b| super::phase(b).is_some()).await;
    requested(&judged, rule, &session.namespace, Timestamp::now())
}

/// What a request came to: what was asked, who must approve it and how,
/// and the operator's first judgement (a refusal is an error).
pub(super) fn requested(
    bg: &BreakGlass,
    rule: Option<&BreakGlassRule>,
    namespace: &str,
    now: Timestamp,
) -> Result<String> {
    let name = bg.name_any();
    if super::phase(bg) == Some(BreakGlassPhase::Refused) {
        return Err(CliError::Refused(format!(
            "break-glass {name} was created and the operator refused it: {}",
            super::standing(bg, now)
        )));
    }
    let spec = &bg.spec;
    let skips: Vec<&str> = spec.skips.iter().map(|s| s.as_str()).collect();
    let from = rule
        .map(|r| {
            format!(
                "{} approval(s) from {}, never your own",
                r.approvals.unwrap_or(1).max(1),
                r.approvers.describe()
            )
        })
        .unwrap_or_else(|| "the approvers the approval's policy names".into());
    Ok(format!(
        "break-glass {name} requested by {}: {} without {} for {} once approved\nreason: {}\nnext: it needs {from}; each approver runs\n  kubectl modelgate break-glass approve {name} -n {namespace}\nstatus: {}\n",
        spec.requested_by.user,
        spec.approval_ref.name,
        skips.join(", "),
        spec.duration,
        spec.reason,
        super::standing(bg, now)
    ))
}
