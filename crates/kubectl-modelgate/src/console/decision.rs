//! The one write the console makes: a person's decision on one gate, sent
//! through the plugin's own `approve` and `reject`, so the console and the
//! terminal write exactly the same thing under the same field manager.
//! A refusal is shown beside the form in the API server's own words.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum_csrf::CsrfToken;
use serde::Deserialize;

use super::Console;
use super::pages;
use super::person::Person;
use super::views::Typed;
use super::views::html;
use crate::bound::Expect;
use crate::review::{self, ApproveArgs, RejectArgs};
use crate::{CliError, Result};
use modelgate::api::gates::Gate;

/// A gate form as the browser sends it.
#[derive(Deserialize)]
pub struct Decision {
    authenticity_token: String,
    /// approve or reject.
    decision: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    message: String,
    /// The uid and digest of the approval the page showed: the decision
    /// is about that object and no other.
    #[serde(default)]
    uid: String,
    #[serde(default)]
    digest: String,
}

impl Decision {
    /// What the page showed; a form without it is from an older page.
    fn expect(&self) -> Result<Expect> {
        if self.uid.is_empty() || self.digest.is_empty() {
            return Err(CliError::Usage(
                "this form does not say which approval it was shown for: reload the page and decide again".into(),
            ));
        }
        Ok(Expect {
            uid: Some(self.uid.clone()),
            digest: Some(self.digest.clone()),
        })
    }
}

pub async fn decide(
    State(c): State<Console>,
    p: Person,
    Path((name, gate)): Path<(String, String)>,
    token: CsrfToken,
    Form(form): Form<Decision>,
) -> Response {
    let path = format!("/approvals/{name}");
    if token.verify(&form.authenticity_token).is_err() {
        let e = CliError::Usage(
            "this form is out of date or did not come from this console: reload the page and decide again".into(),
        );
        return pages::problem(&c, &p, path, &e);
    }
    let gate: Gate = match gate.parse() {
        Ok(g) => g,
        Err(e) => return pages::problem(&c, &p, path, &CliError::Usage(e.to_string())),
    };
    match write(&p, &name, gate, &form).await {
        Ok(()) => Redirect::to(&format!(
            "/approvals/{name}?recorded={}#gate-{}",
            gate.short_name(),
            gate.short_name()
        ))
        .into_response(),
        Err(refusal) => refused(&c, &p, &name, gate, &form, &token, &refusal).await,
    }
}

/// The write, exactly as `kubectl modelgate approve|reject` makes it.
async fn write(p: &Person, name: &str, gate: Gate, form: &Decision) -> Result<()> {
    let expect = form.expect()?;
    let reason = form.reason.trim().to_string();
    let message = form.message.trim().to_string();
    if form.decision == "reject" {
        if reason.is_empty() || message.is_empty() {
            return Err(CliError::Usage(
                "to fail a gate, give a reason and a message: the people who must fix it need them"
                    .into(),
            ));
        }
        let args = RejectArgs {
            name: name.into(),
            gate,
            reason,
            message,
            uid: expect.uid,
            digest: expect.digest,
        };
        review::reject(&p.session, args).await?;
    } else {
        let args = ApproveArgs {
            name: name.into(),
            gate,
            reason: if reason.is_empty() {
                "Passed".into()
            } else {
                reason
            },
            message: (!message.is_empty()).then_some(message),
            uid: expect.uid,
            digest: expect.digest,
        };
        review::approve(&p.session, args).await?;
    }
    Ok(())
}

/// The approval page again, with the refusal beside this gate's form and
/// what the person typed still in it.
async fn refused(
    c: &Console,
    p: &Person,
    name: &str,
    gate: Gate,
    form: &Decision,
    token: &CsrfToken,
    refusal: &CliError,
) -> Response {
    let code = match refusal {
        CliError::Refused(_) => StatusCode::FORBIDDEN,
        CliError::Changed(_) => StatusCode::CONFLICT,
        CliError::Usage(_) => StatusCode::UNPROCESSABLE_ENTITY,
        CliError::NotFound(_) => StatusCode::NOT_FOUND,
        _ => StatusCode::BAD_GATEWAY,
    };
    let mut page = match pages::approval_page(c, p, name, token).await {
        Ok(page) => page,
        Err(e) => return pages::problem(c, p, format!("/approvals/{name}"), &e),
    };
    if let Some(card) = page
        .gates
        .iter_mut()
        .find(|g| g.condition == gate.condition_type())
    {
        card.refusal = Some(refusal.to_string());
        // For another object, the form starts empty: the person reviews
        // the new one before deciding again.
        if matches!(refusal, CliError::Changed(_)) {
            return html(code, &page).into_response();
        }
        card.typed = Typed {
            approve: form.decision != "reject",
            reason: form.reason.clone(),
            message: form.message.clone(),
        };
    }
    html(code, &page).into_response()
}
