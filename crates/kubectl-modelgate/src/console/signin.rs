//! Signing in, in the cluster: the sign-in page, the trip to the OpenID
//! provider (authorization code with PKCE, the state bound to this browser
//! by a cookie), the callback that verifies the ID token, asks the API
//! server who it names (a SelfSubjectReview with that token: the cluster's
//! word, not the console's reading of claims) and opens a session, and
//! signing out. A session ends when the ID token does, or sooner.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{AppendHeaders, IntoResponse, Redirect, Response};
use cookie::{Cookie, CookieJar, SameSite};
use jiff::{SignedDuration, Timestamp};
use openidconnect::url::form_urlencoded;
use serde::Deserialize;

use super::Console;
use super::apiserver::ApiServer;
use super::oidc::{Provider, SignInError, Started, Verified};
use super::person::Person;
use super::return_to::{local_path, sign_in_url};
use super::sessions::{self, Lookup, Sessions};
use super::views::{self, Me};
use super::views::{Chrome, html};
use crate::Session;

/// How long a browser may take on the provider's login page.
const PENDING_FOR: SignedDuration = SignedDuration::from_mins(10);

/// The cookies' names: with https, the `__Host-` prefix, so that no other
/// host of the same site can set them (a browser takes such a cookie only
/// from this host, Secure, for the path `/`).
struct CookieNames {
    session: &'static str,
    signin: &'static str,
}

impl CookieNames {
    fn new(secure: bool) -> CookieNames {
        if secure {
            CookieNames {
                session: "__Host-modelgate-session",
                signin: "__Host-modelgate-signin",
            }
        } else {
            CookieNames {
                session: "modelgate-session",
                signin: "modelgate-signin",
            }
        }
    }
}

pub struct SignIn {
    pub provider: Provider,
    pub api: ApiServer,
    pub namespace: String,
    /// The longest a session lasts, however long its token would.
    pub session_max: SignedDuration,
    /// Cookies marked Secure (and named `__Host-…`): the console's address
    /// is https.
    pub secure: bool,
    /// Encrypts the sign-in cookie; made at start (a restart ends only
    /// the sign-ins under way).
    pub key: cookie::Key,
    pub sessions: Sessions<Person>,
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
    fn names(&self) -> CookieNames {
        CookieNames::new(self.secure)
    }

    /// The person this request's session names, or why there is none.
    pub fn person(&self, headers: &HeaderMap) -> Lookup<Person> {
        match cookie_value(headers, self.names().session) {
            Some(id) => self.sessions.get(&id, Timestamp::now()),
            None => Lookup::Unknown,
        }
    }

    fn cookie(
        &self,
        name: &'static str,
        value: String,
        max_age: Option<SignedDuration>,
    ) -> Cookie<'static> {
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
        c.build()
    }

    fn cleared(&self, name: &'static str) -> String {
        self.cookie(name, String::new(), Some(SignedDuration::ZERO))
            .to_string()
    }

    /// The sign-in cookie holding `started`, sealed with the console's key.
    fn sealed(&self, started: &Started) -> Result<String, SignInError> {
        let value =
            serde_json::to_string(started).map_err(|e| SignInError::Internal(e.to_string()))?;
        let mut jar = CookieJar::new();
        jar.private_mut(&self.key)
            .add(self.cookie(self.names().signin, value, Some(PENDING_FOR)));
        jar.delta()
            .next()
            .map(|c| c.to_string())
            .ok_or_else(|| SignInError::Internal("no sign-in cookie was made".into()))
    }

    /// The sign-in this browser started, if its cookie is ours, whole and
    /// not run out, and `state` is the one it sent.
    fn unsealed(&self, headers: &HeaderMap, state: &str) -> Option<Started> {
        let raw = cookie_value(headers, self.names().signin)?;
        let mut jar = CookieJar::new();
        jar.add_original(Cookie::new(self.names().signin, raw));
        let opened = jar.private(&self.key).get(self.names().signin)?;
        let started: Started = serde_json::from_str(opened.value()).ok()?;
        let fresh = started.until > Timestamp::now().as_second();
        (fresh && started.state == state).then_some(started)
    }

    /// Finishes a sign-in: the session cookie, and where to go.
    async fn finish(
        &self,
        headers: &HeaderMap,
        q: Callback,
    ) -> Result<(String, String), SignInError> {
        // The state first: an answer this browser did not ask for is not
        // shown, not even its error text.
        let state = q.state.as_deref().ok_or(SignInError::Stale)?;
        let started = self.unsealed(headers, state).ok_or(SignInError::Stale)?;
        if let Some(error) = q.error {
            return Err(SignInError::Denied(q.error_description.unwrap_or(error)));
        }
        let code = q
            .code
            .ok_or_else(|| SignInError::Denied("no authorization code came back".into()))?;
        let token = self.provider.finish(code, &started).await?;
        let id = self.open_session(&token).await?;
        let cookie = self.cookie(self.names().session, id, None).to_string();
        Ok((cookie, started.next))
    }

    /// A session for the person `token` names, as the API server says.
    async fn open_session(&self, token: &Verified) -> Result<String, SignInError> {
        let session = self
            .api
            .session_for(&token.raw, &self.namespace)
            .await
            .map_err(|e| SignInError::NotTrusted(e.to_string()))?;
        let info = crate::review::user_info(&session)
            .await
            .map_err(|e| SignInError::NotTrusted(e.to_string()))?;
        let now = Timestamp::now();
        let latest = now.checked_add(self.session_max).unwrap_or(token.expires);
        self.admit(session, views::me(&info), token.expires.min(latest), now)
    }

    /// Keeps a session for `me` (whom the API server says the token
    /// names) until `ends`, within the limits: beyond theirs, their own
    /// oldest session ends; no one else's ever does.
    pub fn admit(
        &self,
        session: Session,
        me: Me,
        ends: Timestamp,
        now: Timestamp,
    ) -> Result<String, SignInError> {
        let id = sessions::random_id().map_err(|e| SignInError::Internal(e.to_string()))?;
        let user = me.user.clone();
        let (ending, ended) = sessions::end_signal();
        let person = Person::new(session, me, Some(ends), ended);
        match self
            .sessions
            .insert(id.clone(), &user, person, ending, ends, now)
        {
            Ok(replaced) => {
                tracing::info!(%user, until = %ends, replaced, sessions = self.sessions.len(now), "signed in");
                Ok(id)
            }
            Err(full) => {
                tracing::warn!(%user, max = full.max, "a sign-in was refused: every session is taken");
                Err(SignInError::Full {
                    max: full.max,
                    retry_after: full.retry_after,
                })
            }
        }
    }
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
    let until = (Timestamp::now() + PENDING_FOR).as_second();
    let started = match s.provider.start(next.clone(), until).await {
        Ok(started) => started,
        Err(e) => return page(s, StatusCode::BAD_GATEWAY, next, None, Some(e.to_string())),
    };
    let (url, started) = started;
    match s.sealed(&started) {
        Ok(cookie) => (
            AppendHeaders([(header::SET_COOKIE, cookie)]),
            Redirect::to(&url),
        )
            .into_response(),
        Err(e) => page(
            s,
            StatusCode::INTERNAL_SERVER_ERROR,
            next,
            None,
            Some(e.to_string()),
        ),
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
                (header::SET_COOKIE, s.cleared(s.names().signin)),
            ]),
            Redirect::to(&next),
        )
            .into_response(),
        Err(e) => {
            tracing::info!(error = %e, "a sign-in did not go through");
            refused(s, &e)
        }
    }
}

/// The sign-in page saying why a sign-in did not go through.
pub fn refused(s: &SignIn, e: &SignInError) -> Response {
    let code = match e {
        SignInError::Provider { .. } => StatusCode::BAD_GATEWAY,
        SignInError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        SignInError::Full { .. } => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::UNAUTHORIZED,
    };
    let mut response = page(s, code, "/".into(), None, Some(e.to_string()));
    if let Some(secs) = e.retry_after() {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, secs.into());
    }
    response
}

/// `POST /signout`: the session is forgotten here, so its cookie names no
/// one from now on, even if someone kept a copy, and its live pages close.
pub async fn sign_out(State(c): State<Console>, headers: HeaderMap) -> Response {
    let Some(s) = c.sign_in() else {
        return not_found();
    };
    if let Some(id) = cookie_value(&headers, s.names().session) {
        s.sessions.remove(&id);
    }
    (
        AppendHeaders([(header::SET_COOKIE, s.cleared(s.names().session))]),
        Redirect::to(&sign_in_url("/", Some("signed-out"))),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let names = CookieNames::new(false);
        assert_eq!(cookie_value(&h, names.session).as_deref(), Some("abc"));
        assert_eq!(cookie_value(&h, names.signin).as_deref(), Some("s"));
        assert_eq!(cookie_value(&h, "none"), None);
    }
}
