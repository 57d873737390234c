//! What the console says of a break-glass, in plain words for the lawyers
//! and business owners who read it: the banner of an approval one releases
//! now, the note on each gate it skips, and one line of what it left
//! behind once it ended.

use kube::ResourceExt;
use modelgate::api::approval::{ApprovalPhase, ModelApproval, ModelApprovalStatus, PHASE_SUBJECT};
use modelgate::api::breakglass::ReleasedBy;
use modelgate::api::deployment::{ModelDeployment, OnRevoke, RollbackFallback};

use super::when;

/// The banner of an approval a break-glass releases now.
#[derive(Debug, PartialEq, Eq)]
pub struct Banner {
    /// The BreakGlass object.
    pub name: String,
    /// The skipped gates: "LegalReview", "LegalReview and SecurityReview".
    pub skips: String,
    /// "passes" for one skipped gate, "pass" for several.
    pub pass: &'static str,
    pub until: String,
    pub requested_by: String,
    pub approved_by: String,
    /// The requester's reason, ending as a sentence does.
    pub reason: String,
    /// What withdrawing the release does to each deployment of the
    /// approval (their onRevoke), e.g. "fraud-detector is scaled to zero
    /// and stops serving".
    pub then: Vec<String>,
}

/// The break-glass that releases `a` now: its phase is BreakGlass.
fn active(a: &ModelApproval) -> Option<&ReleasedBy> {
    let status = a.status.as_ref()?;
    (status.phase == Some(ApprovalPhase::BreakGlass))
        .then_some(status.break_glass.as_deref())
        .flatten()
}

/// The banner of `a` while a break-glass releases it, with what its
/// withdrawal would do to the deployments in `mds` that follow it.
pub fn banner(a: &ModelApproval, mds: &[ModelDeployment]) -> Option<Banner> {
    let r = active(a)?;
    let name = a.name_any();
    Some(Banner {
        name: r.name.clone(),
        skips: r.skips.join(" and "),
        pass: if r.skips.len() == 1 { "passes" } else { "pass" },
        until: when(r.until.0),
        requested_by: r.requested_by.clone(),
        approved_by: r.approved_by.join(", "),
        reason: sentence(&r.reason),
        then: mds
            .iter()
            .filter(|md| md.spec.approval_ref.name == name)
            .map(withdrawn)
            .collect(),
    })
}

/// An inbox row's word on the break-glass that releases `a` now, e.g.
/// "without LegalReview until 2026-12-06 11:00 UTC".
pub fn summary(a: &ModelApproval) -> Option<String> {
    let r = active(a)?;
    Some(format!(
        "without {} until {}",
        r.skips.join(" and "),
        when(r.until.0)
    ))
}

/// `text` ending as a sentence does, so that it can stand before the next.
fn sentence(text: &str) -> String {
    let text = text.trim();
    if text.ends_with(['.', '!', '?']) {
        text.to_string()
    } else {
        format!("{text}.")
    }
}

/// What `md` does once the release it serves is withdrawn, as its
/// onRevoke says.
fn withdrawn(md: &ModelDeployment) -> String {
    let name = md.name_any();
    let hold = "keeps its pods serving but rolls out nothing more";
    let zero = "is scaled to zero and stops serving";
    match md.spec.on_revoke {
        OnRevoke::Hold => format!("{name} {hold} (onRevoke Hold)"),
        OnRevoke::ScaleToZero => format!("{name} {zero} (onRevoke ScaleToZero)"),
        OnRevoke::Rollback => {
            let otherwise = match md.spec.rollback_fallback.unwrap_or_default() {
                RollbackFallback::Hold => hold,
                RollbackFallback::ScaleToZero => zero,
            };
            format!(
                "{name} goes back to its newest earlier approved version, or without one {otherwise} (onRevoke Rollback)"
            )
        }
    }
}

/// What the card of `gate` says while the active break-glass skips it:
/// until when.
pub fn skipped(a: &ModelApproval, gate: &str) -> Option<String> {
    let r = active(a)?;
    r.skips.iter().any(|s| s == gate).then(|| when(r.until.0))
}

/// One line of a break-glass that released `a` and no longer does, kept
/// for the record: who, why, which gates, and how it ended.
pub fn afterwards(a: &ModelApproval) -> Option<String> {
    let status = a.status.as_ref()?;
    if status.phase == Some(ApprovalPhase::BreakGlass) {
        return None;
    }
    let r = status.break_glass.as_ref()?;
    let skips = r.skips.join(" and ");
    let outcome = match ended(status) {
        Some("BreakGlassRatified") => format!("{skips} passed in time: the release was ratified."),
        Some("BreakGlassLapsed") => {
            format!("{skips} did not pass in time: the release lapsed and was withdrawn.")
        }
        _ => "It no longer releases this approval.".to_string(),
    };
    Some(format!(
        "Break-glass {} released this approval without {skips} from {} until {} (requested by {}, approved by {}). {outcome}",
        r.name,
        when(r.since.0),
        when(r.until.0),
        r.requested_by,
        r.approved_by.join(", "),
    ))
}

/// The reason of the newest phase change out of BreakGlass, if history
/// still holds it.
fn ended(status: &ModelApprovalStatus) -> Option<&str> {
    status
        .history
        .iter()
        .rev()
        .find(|e| e.subject == PHASE_SUBJECT && e.from == ApprovalPhase::BreakGlass.as_str())
        .and_then(|e| e.reason.as_deref())
}
