//! The pages: askama templates under `templates/console/`, filled from the
//! cluster as the person sees it (their own reads, so RBAC shows them what
//! it shows them in kubectl).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum_csrf::CsrfToken;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use serde::Deserialize;

use super::Console;
use super::person::Person;
use super::views::breakglass::{self, Banner};
use super::views::{self, Chrome, DeploymentRow, GateCard, InboxRow, Moment, Shelf, html};
use crate::{CliError, Result};
use modelgate::api::{approval::ModelApproval, deployment::ModelDeployment, gates::Gate};

fn chrome(c: &Console, p: &Person, path: String, current: &'static str) -> Chrome {
    Chrome {
        user: p.me.user.clone(),
        groups: p
            .me
            .groups
            .iter()
            .filter(|g| !g.starts_with("system:"))
            .cloned()
            .collect(),
        namespace: p.session.namespace.clone(),
        path,
        current,
        signed_in: c.sign_in().is_some(),
    }
}

#[derive(Template)]
#[template(path = "console/inbox.html")]
struct Inbox {
    chrome: Chrome,
    my_gates: Vec<(&'static str, String)>,
    waiting: Vec<InboxRow>,
    decided: Vec<InboxRow>,
    other: Vec<InboxRow>,
}

#[derive(Template)]
#[template(path = "console/approval.html")]
pub struct ApprovalPage {
    chrome: Chrome,
    name: String,
    model: String,
    version: String,
    uri: String,
    digest: String,
    /// Sealed, Unsealed or Unresolved (empty until the operator looked),
    /// and what it rests on.
    seal: String,
    seal_note: String,
    /// The approval's uid: with the digest, the forms carry what was shown,
    /// and a decision for an object that changed since is refused.
    uid: String,
    phase: String,
    gates_passed: usize,
    valid_for: String,
    approved_at: String,
    expires_at: String,
    /// The pinned policy's name; empty until the operator pinned one.
    policy: String,
    /// Quorum progress and rule results, as (gate, progress, what it saw).
    progress: Vec<(String, String, String)>,
    pub gates: Vec<GateCard>,
    /// While a break-glass releases the approval: the banner atop the page.
    break_glass: Option<Banner>,
    /// Once one no longer does: a line of what it was, beside the history.
    break_glass_past: Option<String>,
    moments: Vec<Moment>,
    deployments: Vec<DeploymentRow>,
    token: String,
    /// The gate whose decision was just recorded (after a redirect).
    recorded: Option<&'static str>,
}

#[derive(Template)]
#[template(path = "console/deployments.html")]
struct Deployments {
    chrome: Chrome,
    rows: Vec<DeploymentRow>,
}

#[derive(Template)]
#[template(path = "console/problem.html")]
struct Problem {
    chrome: Chrome,
    title: String,
    detail: String,
}

/// A page saying what went wrong, with the API server's words.
pub fn problem(c: &Console, p: &Person, path: String, e: &CliError) -> Response {
    let code = match e {
        CliError::NotFound(_) => StatusCode::NOT_FOUND,
        CliError::Refused(_) => StatusCode::FORBIDDEN,
        CliError::Changed(_) => StatusCode::CONFLICT,
        CliError::Usage(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::BAD_GATEWAY,
    };
    let title = match e {
        CliError::NotFound(_) => "Not found",
        CliError::Refused(_) => "The cluster refused this",
        CliError::Changed(_) => "This approval changed since you opened it",
        CliError::Usage(_) => "That request cannot be served",
        _ => "The cluster could not be reached",
    };
    let page = Problem {
        chrome: chrome(c, p, path, ""),
        title: title.into(),
        detail: e.to_string(),
    };
    html(code, &page)
}

/// Every object of kind `K` in the console's namespace, by name.
async fn list<K>(p: &Person, what: &str) -> Result<Vec<K>>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(p.session.client.clone(), &p.session.namespace);
    let mut items = api
        .list(&ListParams::default())
        .await
        .map_err(|e| CliError::from_api(e, what))?
        .items;
    items.sort_by_key(|o| o.name_any());
    Ok(items)
}

async fn approvals(p: &Person) -> Result<Vec<ModelApproval>> {
    list(p, "ModelApprovals").await
}

async fn model_deployments(p: &Person) -> Result<Vec<ModelDeployment>> {
    list(p, "ModelDeployments").await
}

pub async fn inbox(State(c): State<Console>, p: Person) -> Response {
    match approvals(&p).await {
        Ok(items) => html(StatusCode::OK, &inbox_page(&c, &p, &items)),
        Err(e) => problem(&c, &p, "/".into(), &e),
    }
}

fn inbox_page(c: &Console, p: &Person, items: &[ModelApproval]) -> Inbox {
    let mut page = Inbox {
        chrome: chrome(c, p, "/".into(), "inbox"),
        my_gates: p
            .me
            .gates(&c.groups)
            .into_iter()
            .map(|g| (views::title(g), group_of(c, g)))
            .collect(),
        waiting: Vec::new(),
        decided: Vec::new(),
        other: Vec::new(),
    };
    for a in items {
        let (shelf, row) = views::shelve(a, &p.me, &c.groups);
        match shelf {
            Shelf::Waiting => page.waiting.push(row),
            Shelf::Decided => page.decided.push(row),
            Shelf::Other => page.other.push(row),
        }
    }
    page
}

fn group_of(c: &Console, gate: Gate) -> String {
    c.groups
        .iter()
        .find(|(g, _)| *g == gate)
        .map(|(_, group)| group.clone())
        .unwrap_or_else(|| gate.default_group().to_string())
}

#[derive(Deserialize)]
pub struct Recorded {
    recorded: Option<String>,
}

pub async fn approval(
    State(c): State<Console>,
    p: Person,
    Path(name): Path<String>,
    Query(q): Query<Recorded>,
    token: CsrfToken,
) -> Response {
    let recorded = q
        .recorded
        .and_then(|g| g.parse::<Gate>().ok())
        .map(views::title);
    match approval_page(&c, &p, &name, &token).await {
        Ok(mut page) => {
            page.recorded = recorded;
            (token, html(StatusCode::OK, &page)).into_response()
        }
        Err(e) => problem(&c, &p, format!("/approvals/{name}"), &e),
    }
}

/// The approval `name`, as the person may read it.
async fn read_approval(p: &Person, name: &str) -> Result<ModelApproval> {
    let api: Api<ModelApproval> = Api::namespaced(p.session.client.clone(), &p.session.namespace);
    api.get(name).await.map_err(|e| {
        CliError::from_api(
            e,
            &format!("ModelApproval {name} in namespace {}", p.session.namespace),
        )
    })
}

/// The approval page as it stands in the cluster now, its forms empty.
pub async fn approval_page(
    c: &Console,
    p: &Person,
    name: &str,
    token: &CsrfToken,
) -> Result<ApprovalPage> {
    let a = read_approval(p, name).await?;
    let mds = model_deployments(p).await?;
    let status = a.status.clone().unwrap_or_default();
    let at = |t: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>| {
        t.map(|t| views::when(t.0)).unwrap_or_default()
    };
    let gates = views::gate_cards(&a, &p.me, &c.groups);
    // The deployments that name or serve it, and the pinned rules' progress,
    // as `status` reports them.
    let view = super::super::status::view(&a, &mds);
    let progress = view
        .gates
        .iter()
        .filter_map(|g| Some((g.gate.clone(), g.progress.clone()?, g.advice.clone()?)))
        .collect();
    let gated: Vec<ModelDeployment> = mds
        .into_iter()
        .filter(|d| view.deployments.contains(&d.name_any()))
        .collect();
    let (seal, seal_note) = views::seal(status.artifact.as_ref());
    Ok(ApprovalPage {
        break_glass: breakglass::banner(&a, &gated),
        break_glass_past: breakglass::afterwards(&a),
        seal,
        seal_note,
        chrome: chrome(c, p, format!("/approvals/{name}"), "approval"),
        name: name.to_string(),
        model: a.spec.model.name.clone(),
        version: a.spec.model.version.clone(),
        uri: a.spec.model.uri.clone(),
        digest: a.spec.model.digest.clone(),
        uid: a.metadata.uid.clone().unwrap_or_default(),
        phase: status
            .phase
            .map(|p| p.to_string())
            .unwrap_or_else(|| "Pending".into()),
        gates_passed: gates.iter().filter(|g| g.state == "passed").count(),
        valid_for: a.spec.valid_for.clone().unwrap_or_default(),
        approved_at: at(status.approved_at.clone()),
        expires_at: at(status.expires_at.clone()),
        policy: view.policy.unwrap_or_default(),
        progress,
        gates,
        moments: views::timeline(&status.history),
        deployments: gated.iter().map(views::deployment_row).collect(),
        token: token
            .authenticity_token()
            .map_err(|e| CliError::Render(e.to_string()))?,
        recorded: None,
    })
}

pub async fn deployments(State(c): State<Console>, p: Person) -> Response {
    match model_deployments(&p).await {
        Ok(mds) => html(
            StatusCode::OK,
            &Deployments {
                chrome: chrome(&c, &p, "/deployments".into(), "deployments"),
                rows: mds.iter().map(views::deployment_row).collect(),
            },
        ),
        Err(e) => problem(&c, &p, "/deployments".into(), &e),
    }
}

impl ApprovalPage {
    /// Whether a gate's write was just refused (the title says so first,
    /// for screen readers).
    fn refused(&self) -> bool {
        self.gates.iter().any(|g| g.refusal.is_some())
    }
}
