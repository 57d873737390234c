//! What each page shows, built from the cluster's objects with no client
//! calls: who I am, the gates I may decide, an approval's gate cards and
//! timeline, the rows of the inbox and of the deployments page.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use jiff::Timestamp;
use k8s_openapi::api::authentication::v1::UserInfo;
use kube::ResourceExt;

use super::super::status::{self, GateView};
use modelgate::api::condition::{FALSE, TRUE, UNKNOWN};
use modelgate::api::{
    approval::{HistoryEntry, ModelApproval},
    deployment::ModelDeployment,
    gates::Gate,
};

pub mod breakglass;

/// The person the console acts as, as the cluster authenticated them.
pub struct Me {
    pub user: String,
    pub groups: Vec<String>,
}

pub fn me(info: &UserInfo) -> Me {
    Me {
        user: info.username.clone().unwrap_or_default(),
        groups: info.groups.clone().unwrap_or_default(),
    }
}

impl Me {
    /// The gates whose reviewer group I am in.
    pub fn gates(&self, groups: &[(Gate, String)]) -> Vec<Gate> {
        groups
            .iter()
            .filter(|(_, group)| self.groups.contains(group))
            .map(|(gate, _)| *gate)
            .collect()
    }
}

/// A gate as people name it.
pub fn title(gate: Gate) -> &'static str {
    match gate {
        Gate::Technical => "Technical review",
        Gate::Fairness => "Fairness review",
        Gate::Security => "Security review",
        Gate::Legal => "Legal and compliance review",
        Gate::Business => "Business review",
    }
}

/// How a gate stands, in words and as a class for its colour.
fn state(status: &str) -> (&'static str, &'static str) {
    match status {
        TRUE => ("passed", "Passed"),
        FALSE => ("failed", "Failed"),
        _ => ("pending", "Waiting for a decision"),
    }
}

/// A time as a person reads it.
pub fn when(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M UTC").to_string()
}

/// What a person typed into a gate's form, kept when the write is refused.
#[derive(Clone, Default)]
pub struct Typed {
    pub approve: bool,
    pub reason: String,
    pub message: String,
}

/// One gate of an approval, with its decision form.
pub struct GateCard {
    pub condition: &'static str,
    pub short: &'static str,
    pub title: &'static str,
    /// passed, failed or pending.
    pub state: &'static str,
    pub state_label: &'static str,
    pub reviewer: Option<String>,
    pub reason: String,
    pub message: String,
    pub since: String,
    pub group: String,
    /// Whether I am in the gate's group.
    pub mine: bool,
    /// Set when I passed another gate of this approval: advice only, the
    /// admission policy decides.
    pub other_gate_passed: Option<&'static str>,
    pub evidence: Vec<EvidenceLink>,
    /// The API server's refusal of my last write, verbatim.
    pub refusal: Option<String>,
    pub typed: Typed,
    /// Set while the gate is past its review deadline: when it was due and
    /// who is told.
    pub overdue: Option<String>,
    /// Set while an active break-glass skips the gate: until when.
    pub skipped: Option<String>,
}

pub struct EvidenceLink {
    pub uri: String,
    pub description: String,
    /// Offered as a link only when it is a web page (see [`is_web_link`]).
    pub web: bool,
}

/// What a gate card says of an overdue gate: when it was due, who is told,
/// and when the approval expires unless it is decided.
fn overdue(a: &ModelApproval, gate: Gate) -> Option<String> {
    let o = a
        .status
        .as_ref()?
        .overdue
        .iter()
        .find(|o| o.gate == gate.condition_type())?;
    let told = if o.escalated_to.is_empty() {
        String::new()
    } else {
        format!("; {} told", o.escalated_to.join(", "))
    };
    let expires = o
        .expires
        .as_ref()
        .map(|e| {
            format!(
                "; the approval expires {} unless this gate is decided",
                when(e.0)
            )
        })
        .unwrap_or_default();
    Some(format!(
        "the review was due {}{told}{expires}",
        when(o.due.0)
    ))
}

/// The five gate cards of `a`.
pub fn gate_cards(a: &ModelApproval, me: &Me, groups: &[(Gate, String)]) -> Vec<GateCard> {
    let view = status::view(a, &[]);
    let passed_by_me: Vec<Gate> = Gate::ALL
        .into_iter()
        .zip(&view.gates)
        .filter(|(_, g)| g.status == TRUE && g.reviewer.as_deref() == Some(me.user.as_str()))
        .map(|(gate, _)| gate)
        .collect();
    Gate::ALL
        .into_iter()
        .zip(&view.gates)
        .map(|(gate, g)| card(a, gate, g, me, groups, &passed_by_me))
        .collect()
}

fn card(
    a: &ModelApproval,
    gate: Gate,
    g: &GateView,
    me: &Me,
    groups: &[(Gate, String)],
    passed_by_me: &[Gate],
) -> GateCard {
    let group = groups
        .iter()
        .find(|(x, _)| *x == gate)
        .map(|(_, group)| group.clone())
        .unwrap_or_else(|| gate.default_group().to_string());
    let (state, state_label) = state(&g.status);
    // A mirrored gate is decided in the publisher's cluster: nobody here
    // has it to decide.
    let pinned = a.status.as_ref().and_then(|s| s.policy.as_deref());
    let publisher = a.spec.import_from.as_ref().map(|i| i.publisher.as_str());
    let (group, mirrored) = match publisher {
        Some(p) if modelgate::policy::pin::mirrored(pinned, gate) => {
            (format!("{p}'s reviewers"), true)
        }
        _ => (group, false),
    };
    GateCard {
        condition: gate.condition_type(),
        short: gate.short_name(),
        title: title(gate),
        state,
        state_label,
        reviewer: g.reviewer.clone(),
        reason: g.reason.clone().unwrap_or_default(),
        message: g.message.clone().unwrap_or_default(),
        since: g.since.map(when).unwrap_or_default(),
        mine: !mirrored && me.groups.contains(&group),
        group,
        other_gate_passed: passed_by_me.iter().find(|p| **p != gate).map(|p| title(*p)),
        evidence: a
            .spec
            .evidence
            .iter()
            .filter(|e| Gate::from_condition_type(&e.gate) == Some(gate))
            .map(|e| EvidenceLink {
                web: is_web_link(&e.uri),
                uri: e.uri.clone(),
                description: e.description.clone().unwrap_or_else(|| e.uri.clone()),
            })
            .collect(),
        refusal: None,
        overdue: overdue(a, gate),
        skipped: breakglass::skipped(a, gate.condition_type()),
        typed: Typed {
            approve: true,
            ..Typed::default()
        },
    }
}

/// Whether a link may be offered as a link: only web pages, so that a
/// `javascript:` URI in an approval never runs in a reviewer's browser.
pub fn is_web_link(uri: &str) -> bool {
    let lower = uri.to_ascii_lowercase();
    lower.starts_with("https://") || lower.starts_with("http://")
}

/// One point of the history timeline.
pub struct Moment {
    pub time: String,
    pub subject: String,
    pub change: String,
    pub actor: String,
    pub why: String,
    /// pass, fail, pending or phase: the marker's shape and colour.
    pub kind: &'static str,
}

pub fn timeline(history: &[HistoryEntry]) -> Vec<Moment> {
    history.iter().map(moment).collect()
}

fn moment(e: &HistoryEntry) -> Moment {
    let gate = Gate::from_condition_type(&e.subject);
    let kind = match (gate, e.to.as_str()) {
        (None, _) => "phase",
        (_, TRUE) => "pass",
        (_, FALSE) => "fail",
        _ => "pending",
    };
    let to = match gate {
        Some(_) => state(&e.to).1.to_string(),
        None => e.to.clone(),
    };
    let why = [e.reason.clone(), e.message.clone()]
        .into_iter()
        .flatten()
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join(": ");
    Moment {
        time: when(e.time.0),
        subject: gate.map(title).unwrap_or("Approval phase").to_string(),
        change: to,
        actor: e.reviewer.clone().unwrap_or_else(|| "modelgate".into()),
        why,
        kind,
    }
}

/// One ModelDeployment as the pages list it.
pub struct DeploymentRow {
    pub name: String,
    pub phase: String,
    pub approval: String,
    /// Version and digest served now, if anything is.
    pub serving: Option<(String, String)>,
    pub ready: String,
    pub why: String,
    /// Sealed or Unsealed, and why not, once the operator judged it.
    pub seal: String,
    pub seal_why: String,
    /// While it serves under a break-glass: which, until when, without
    /// which gates (the operator's words); empty otherwise.
    pub break_glass: String,
}

pub fn deployment_row(md: &ModelDeployment) -> DeploymentRow {
    let status = md.status.clone().unwrap_or_default();
    let why = modelgate::api::condition::find(
        &status.conditions,
        modelgate::api::deployment::APPROVAL_SATISFIED,
    )
    .and_then(|c| c.message.clone())
    .unwrap_or_default();
    let sealed =
        modelgate::api::condition::find(&status.conditions, modelgate::api::deployment::SEALED);
    DeploymentRow {
        seal: status
            .seal
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        seal_why: sealed
            .filter(|c| c.status != modelgate::api::condition::TRUE)
            .and_then(|c| c.message.clone())
            .unwrap_or_default(),
        name: md.name_any(),
        phase: status
            .phase
            .map(|p| p.to_string())
            .unwrap_or_else(|| "Unknown".into()),
        approval: md.spec.approval_ref.name.clone(),
        serving: status.served_model.map(|s| (s.version, s.digest)),
        ready: status.ready.unwrap_or_else(|| "0/0".into()),
        break_glass: status.break_glass.unwrap_or_default(),
        why,
    }
}

/// An approval's seal and what it rests on, as the approval page says it:
/// (Sealed, Unsealed, Unresolved or empty while unchecked; the detail).
pub fn seal(artifact: Option<&modelgate::api::approval::ResolvedArtifact>) -> (String, String) {
    let Some(a) = artifact else {
        return (String::new(), String::new());
    };
    let detail = match (a.seal, &a.message) {
        (modelgate::api::approval::Seal::Sealed, _) => format!(
            "Resolved in its registry: {} files, {} bytes ({}). Every pod mounts exactly these bytes, read-only.",
            a.layers.unwrap_or_default(),
            a.size.unwrap_or_default(),
            a.artifact_type.as_deref().unwrap_or("no artifact type"),
        ),
        (_, Some(message)) => message.clone(),
        (_, None) => String::new(),
    };
    (a.seal.as_str().to_string(), detail)
}

/// One approval in the inbox.
pub struct InboxRow {
    pub name: String,
    pub model: String,
    pub version: String,
    pub phase: String,
    pub gates_passed: usize,
    /// My gates of this approval: title and how each stands.
    pub mine: Vec<(&'static str, &'static str)>,
    /// While a break-glass releases it: the gates it is served without
    /// and until when, e.g. "without LegalReview until 2026-12-06 11:00 UTC".
    pub break_glass: Option<String>,
}

/// Where an approval sits in my inbox.
#[derive(Debug, PartialEq, Eq)]
pub enum Shelf {
    /// A gate of mine is undecided and I have passed none of its others.
    Waiting,
    /// I decided a gate of it.
    Decided,
    /// Nothing of mine: for reading only.
    Other,
}

pub fn shelve(a: &ModelApproval, me: &Me, groups: &[(Gate, String)]) -> (Shelf, InboxRow) {
    let view = status::view(a, &[]);
    // A mirrored gate is decided in the publisher's cluster: never mine.
    let pinned = a.status.as_ref().and_then(|s| s.policy.as_deref());
    let mut my_gates = me.gates(groups);
    my_gates.retain(|g| !modelgate::policy::pin::mirrored(pinned, *g));
    let cards: Vec<(Gate, &GateView)> = Gate::ALL.into_iter().zip(&view.gates).collect();
    let by_me = |g: &GateView| g.reviewer.as_deref() == Some(me.user.as_str());
    let decided_by_me = cards.iter().any(|(_, g)| by_me(g));
    let passed_by_me = cards.iter().any(|(_, g)| by_me(g) && g.status == TRUE);
    let undecided_mine = cards
        .iter()
        .any(|(gate, g)| my_gates.contains(gate) && g.status == UNKNOWN);
    // Under break-glass the skipped gates still wait on their reviewers,
    // and sooner than ever.
    let open = matches!(view.phase.as_str(), "Pending" | "Unknown" | "BreakGlass");
    let shelf = if undecided_mine && open && !passed_by_me {
        Shelf::Waiting
    } else if decided_by_me {
        Shelf::Decided
    } else {
        Shelf::Other
    };
    let mine = cards
        .iter()
        .filter(|(gate, _)| my_gates.contains(gate))
        .map(|(gate, g)| (title(*gate), state(&g.status).1))
        .collect();
    let row = InboxRow {
        name: view.name.clone(),
        model: view.model.clone(),
        version: view.version.clone(),
        phase: view.phase.clone(),
        gates_passed: view.gates_passed,
        mine,
        break_glass: breakglass::summary(a),
    };
    (shelf, row)
}

/// What every page's frame shows: who I am, where, and which page this is.
pub struct Chrome {
    pub user: String,
    pub groups: Vec<String>,
    pub namespace: String,
    /// The page's own address, which the live script fetches again.
    pub path: String,
    /// inbox, approval or deployments: the current navigation entry.
    pub current: &'static str,
    /// In the cluster, people sign in (and out); locally they are who ran it.
    pub signed_in: bool,
}

impl Chrome {
    /// The frame of the sign-in page: no one yet.
    pub fn signed_out(namespace: &str) -> Chrome {
        Chrome {
            user: String::new(),
            groups: Vec::new(),
            namespace: namespace.into(),
            path: "/signin".into(),
            current: "signin",
            signed_in: false,
        }
    }
}

/// A rendered page, or a plain error if a template fails.
pub fn html<T: Template>(code: StatusCode, page: &T) -> Response {
    match page.render() {
        Ok(body) => (code, Html(body)).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

#[cfg(test)]
mod tests;
