//! Signing in, in the cluster: the sign-in page, the trip to the OpenID
//! provider (authorization code with PKCE, the state bound to this browser
//! by a cookie), the callback that verifies the ID token, asks the API
//! server who it names (a SelfSubjectReview with that token: the cluster's
//! word, not the console's reading of claims) and opens a session, and
//! signing out. A session ends when the ID token does, or sooner.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{AppendHeaders, IntoResponse, Redirect, Response};
use cookie::{Cookie, SameSite};
use jiff::{SignedDuration, Timestamp};
use openidconnect::url::form_urlencoded;
use serde::Deserialize;

use super::apiserver::ApiServer;
use super::oidc::{Provider, SignInError, Started};
use super::pages::{Chrome, html};
use super::person::Person;
use super::sessions::{self, Expiring, Lookup};
use super::{Console, views};

const SESSION_COOKIE: &str = "modelgate-session";
const SIGNIN_COOKIE: &str = "modelgate-signin";

pub struct SignIn {
    pub provider: Provider,
    pub api: ApiServer,
    pub namespace: String,
    /// The longest a session lasts, however long its token would.
    pub session_max: SignedDuration,
    /// Cookies marked Secure: the console's address is https.
    pub secure: bool,
    pub sessions: Expiring<Person>,
    pub pending: Expiring<Started>,
}

/// The value of the cookie `name` in a request.
fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_string())
}

impl SignIn {
    /// The person this request's session names, or why there is none.
    pub fn person(&self, headers: &HeaderMap) -> Result<Person, Lookup<()>> {
        let Some(id) = cookie_value(headers, SESSION_COOKIE) else {
            return Err(Lookup::Unknown);
        };
        match self.sessions.get(&id, Timestamp::now()) {
            Lookup::Live(person) => Ok(person),
            Lookup::Ended => Err(Lookup::Ended),
            Lookup::Unknown => Err(Lookup::Unknown),
        }
    }

    fn cookie(&self, name: &'static str, value: String, max_age: Option<SignedDuration>) -> String {
        let mut c = Cookie::build((name, value))
            .path("/")
            .http_only(true)
            // Lax, not Strict: the provider sends the browser back from
            // its own site, and a Strict cookie would not come along.
            .same_site(SameSite::Lax)
            .secure(self.secure);
        if let Some(age) = max_age {
            c = c.max_age(cookie::time::Duration::seconds(age.as_secs()));
        }
        c.build().to_string()
    }

    fn cleared(&self, name: &'static str) -> String {
        self.cookie(name, String::new(), Some(SignedDuration::ZERO))
    }

    /// Finishes a sign-in: the session cookie, and where to go.
    async fn finish(
        &self,
        headers: &HeaderMap,
        q: Callback,
    ) -> Result<(String, String), SignInError> {
        if let Some(error) = q.error {
            return Err(SignInError::Denied(q.error_description.unwrap_or(error)));
        }
        let now = Timestamp::now();
        let state = q.state.ok_or(SignInError::Stale)?;
        if cookie_value(headers, SIGNIN_COOKIE).as_deref() != Some(state.as_str()) {
            return Err(SignInError::Stale);
        }
        let Lookup::Live(started) = self.pending.take(&state, now) else {
            return Err(SignInError::Stale);
        };
        let code = q
            .code
            .ok_or_else(|| SignInError::Denied("no authorization code came back".into()))?;
        let token = self.provider.finish(code, &started).await?;
        let session = self
            .api
            .session_for(&token.raw, &self.namespace)
            .await
            .map_err(|e| SignInError::NotTrusted(e.to_string()))?;
        let info = crate::cli::review::user_info(&session)
            .await
            .map_err(|e| SignInError::NotTrusted(e.to_string()))?;
        let me = views::me(&info);
        let ends = token.expires.min(now + self.session_max);
        tracing::info!(user = %me.user, until = %ends, sessions = self.sessions.len() + 1, "signed in");
        let person = Person {
            session: session.into(),
            me: me.into(),
        };
        let id = sessions::random_id().map_err(|e| SignInError::Internal(e.to_string()))?;
        self.sessions.insert(id.clone(), person, ends, now);
        Ok((self.cookie(SESSION_COOKIE, id, None), started.next))
    }
}

/// A path of this console to return to; anything else (another site,
/// `//host`) becomes the inbox.
fn local_path(next: Option<&str>) -> String {
    match next {
        Some(p) if p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') => p.into(),
        _ => "/".into(),
    }
}

fn sign_in_url(next: &str, why: Option<&str>) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("next", next);
    if let Some(why) = why {
        q.append_pair("why", why);
    }
    format!("/signin?{}", q.finish())
}

/// Where a request without a live session goes: the sign-in page, which
/// brings the person back to the page they asked for.
pub fn sign_in_again(parts: &Parts, why: Lookup<()>) -> Response {
    let next = if parts.method == Method::GET {
        local_path(parts.uri.path_and_query().map(|p| p.as_str()))
    } else {
        "/".into()
    };
    let why = matches!(why, Lookup::Ended).then_some("ended");
    Redirect::to(&sign_in_url(&next, why)).into_response()
}

#[derive(Template)]
#[template(path = "console/signin.html")]
struct SignInPage {
    chrome: Chrome,
    issuer: String,
    /// The address that starts the sign-in, back to the page asked for.
    start: String,
    notice: Option<&'static str>,
    error: Option<String>,
}

fn page(
    s: &SignIn,
    code: StatusCode,
    next: String,
    notice: Option<&'static str>,
    error: Option<String>,
) -> Response {
    let page = SignInPage {
        chrome: Chrome::signed_out(&s.namespace),
        issuer: s.provider.issuer().to_string(),
        start: format!(
            "/signin/start?{}",
            form_urlencoded::Serializer::new(String::new())
                .append_pair("next", &next)
                .finish()
        ),
        notice,
        error,
    };
    html(code, &page)
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found").into_response()
}

#[derive(Deserialize)]
pub struct SignInQuery {
    next: Option<String>,
    why: Option<String>,
}

/// `GET /signin`: the page with the one button.
pub async fn sign_in_page(State(c): State<Console>, Query(q): Query<SignInQuery>) -> Response {
    let Some(s) = c.sign_in() else {
        return not_found();
    };
    let notice = match q.why.as_deref() {
        Some("ended") => Some("Your session has ended. Sign in again to go on."),
        Some("signed-out") => Some("You have signed out."),
        _ => None,
    };
    page(
        s,
        StatusCode::OK,
        local_path(q.next.as_deref()),
        notice,
        None,
    )
}

/// `GET /signin/start`: off to the provider, the state in a cookie.
pub async fn start(State(c): State<Console>, Query(q): Query<SignInQuery>) -> Response {
    let Some(s) = c.sign_in() else {
        return not_found();
    };
    let next = local_path(q.next.as_deref());
    match s.provider.start(next.clone()).await {
        Ok((url, state, started)) => {
            let now = Timestamp::now();
            let state = state.secret().clone();
            s.pending
                .insert(state.clone(), started, now + sessions::PENDING_FOR, now);
            let cookie = s.cookie(SIGNIN_COOKIE, state, Some(sessions::PENDING_FOR));
            (
                AppendHeaders([(header::SET_COOKIE, cookie)]),
                Redirect::to(&url),
            )
                .into_response()
        }
        Err(e) => page(s, StatusCode::BAD_GATEWAY, next, None, Some(e.to_string())),
    }
}

#[derive(Deserialize)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /callback`: the provider sends the browser back here.
pub async fn callback(
    State(c): State<Console>,
    headers: HeaderMap,
    Query(q): Query<Callback>,
) -> Response {
    let Some(s) = c.sign_in() else {
        return not_found();
    };
    match s.finish(&headers, q).await {
        Ok((cookie, next)) => (
            AppendHeaders([
                (header::SET_COOKIE, cookie),
                (header::SET_COOKIE, s.cleared(SIGNIN_COOKIE)),
            ]),
            Redirect::to(&next),
        )
            .into_response(),
        Err(e) => {
            tracing::info!(error = %e, "a sign-in did not go through");
            let code = match e {
                SignInError::Provider { .. } => StatusCode::BAD_GATEWAY,
                SignInError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::UNAUTHORIZED,
            };
            page(s, code, "/".into(), None, Some(e.to_string()))
        }
    }
}

/// `POST /signout`: the session is forgotten here, so its cookie names no
/// one from now on, even if someone kept a copy.
pub async fn sign_out(State(c): State<Console>, headers: HeaderMap) -> Response {
    let Some(s) = c.sign_in() else {
        return not_found();
    };
    if let Some(id) = cookie_value(&headers, SESSION_COOKIE) {
        s.sessions.remove(&id);
    }
    (
        AppendHeaders([(header::SET_COOKIE, s.cleared(SESSION_COOKIE))]),
        Redirect::to(&sign_in_url("/", Some("signed-out"))),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_of_this_console_are_returned_to() {
        assert_eq!(
            local_path(Some("/approvals/a?recorded=legal")),
            "/approvals/a?recorded=legal"
        );
        for elsewhere in [
            "https://evil.example/",
            "//evil.example/x",
            "/\\evil.example",
            "x",
        ] {
            assert_eq!(local_path(Some(elsewhere)), "/", "{elsewhere}");
        }
        assert_eq!(local_path(None), "/");
    }

    #[test]
    fn the_sign_in_address_carries_the_page_and_the_reason() {
        assert_eq!(
            sign_in_url("/approvals/a?x=1", Some("ended")),
            "/signin?next=%2Fapprovals%2Fa%3Fx%3D1&why=ended"
        );
    }

    #[test]
    fn cookies_are_read_from_every_cookie_header() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            "a=1; modelgate-signin=s".parse().expect("header"),
        );
        h.append(
            header::COOKIE,
            "modelgate-session=abc".parse().expect("header"),
        );
        assert_eq!(cookie_value(&h, SESSION_COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie_value(&h, SIGNIN_COOKIE).as_deref(), Some("s"));
        assert_eq!(cookie_value(&h, "none"), None);
    }
}
