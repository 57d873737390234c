//! The console in the cluster: who a request acts as comes from its
//! session, a person's sessions are bounded without touching anyone
//! else's, and a page that follows the cluster closes when its session
//! ends, however it ends.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, header};
use jiff::{SignedDuration, Timestamp};

use super::fake::*;
use crate::console::oidc::{Provider, ProviderSettings, SignInError};
use crate::console::sessions::{Limits, Sessions};
use crate::console::signin::{self, SignIn};
use crate::console::views::Me;
use crate::console::{Console, People, apiserver, csrf_config, guard, live, router};

const HOST: &str = "127.0.0.1:8437";
const ORIGIN: &str = "http://127.0.0.1:8437";
/// Long enough for a stream that should end to end; short enough to be
/// sure one that should not has not.
const MOMENT: Duration = Duration::from_secs(2);

/// The console as the chart runs it, with sessions opened for people as a
/// callback opens them (after the API server said who they are).
struct SignedIn {
    router: Router,
    sign_in: Arc<SignIn>,
    api: FakeApi,
}

fn console(limits: Limits, live_pages: usize) -> SignedIn {
    let provider = Provider::new(ProviderSettings {
        issuer: "https://sso.example.com".into(),
        client_id: "modelgate-console".into(),
        client_secret: None,
        ca_file: None,
        scopes: vec!["openid".into()],
        redirect: format!("{ORIGIN}/callback"),
    })
    .expect("a provider (nothing is fetched yet)");
    let sign_in = Arc::new(SignIn {
        provider,
        api: apiserver::ApiServer::find(Some("https://127.0.0.1:6443".into()), None)
            .expect("an API server"),
        namespace: NAMESPACE.into(),
        session_max: SignedDuration::from_hours(8),
        secure: false,
        key: cookie::Key::generate(),
        sessions: Sessions::new(limits),
    });
    let url = openidconnect::url::Url::parse(ORIGIN).expect("a URL");
    let console = Console {
        people: People::SignedIn(sign_in.clone()),
        groups: Arc::new(crate::console::reviewer_groups(&[])),
        csrf: csrf_config("modelgate-console-csrf", false),
        origin: Arc::new(guard::Origins::of_url(&url).expect("origins")),
        local_key: None,
        live: Arc::new(live::LivePages::new(live_pages)),
    };
    SignedIn {
        router: router(console),
        sign_in,
        api: FakeApi::default(),
    }
}

fn limits(sessions: usize, per_person: usize) -> Limits {
    Limits {
        sessions,
        per_person,
    }
}

impl SignedIn {
    /// Signs `user` in for `for_` from now: the session cookie, or why not.
    fn try_sign_in(&self, user: &str, for_: SignedDuration) -> Result<String, SignInError> {
        let now = Timestamp::now();
        let me = Me {
            user: user.into(),
            groups: vec![],
        };
        let session = self.api.session(user, &[]);
        let ends = now.checked_add(for_).expect("a time");
        let id = self.sign_in.admit(session, me, ends, now)?;
        Ok(format!("modelgate-session={id}"))
    }

    fn sign_in(&self, user: &str) -> String {
        self.try_sign_in(user, SignedDuration::from_hours(1))
            .expect("signed in")
    }

    /// The status of the inbox with `cookie`.
    async fn inbox(&self, cookie: &str) -> StatusCode {
        send(&self.router, get(HOST, "/", Some(cookie)))
            .await
            .status
    }

    async fn events(&self, cookie: &str) -> LiveStream {
        open_stream(&self.router, get(HOST, "/events", Some(cookie))).await
    }

    async fn sign_out(&self, cookie: &str, origin: &str) -> Answer {
        send(
            &self.router,
            post(HOST, "/signout", Some(origin), Some(cookie), ""),
        )
        .await
    }
}

/// Whether the answer sends the browser to sign in.
fn to_sign_in(a: &Answer) -> bool {
    a.status == StatusCode::SEE_OTHER && a.header(header::LOCATION).starts_with("/signin?")
}

#[tokio::test]
async fn without_a_live_session_nothing_is_read_or_written() {
    let c = console(Limits::default(), 8);
    let forged = format!("modelgate-session={}", "a".repeat(64));
    for cookie in [
        None,
        Some(forged.as_str()),
        Some("modelgate-session=not-hex"),
    ] {
        for path in [
            "/",
            "/deployments",
            "/events",
            &format!("/approvals/{APPROVAL}"),
        ] {
            let a = send(&c.router, get(HOST, path, cookie)).await;
            assert!(to_sign_in(&a), "{path} {cookie:?}: {} {}", a.status, a.body);
        }
        let form = format!(
            "decision=approve&reason=Passed&uid={UID}&digest={}",
            digest()
        );
        let a = send(
            &c.router,
            post(
                HOST,
                "/approvals/fd-2/gates/legal",
                Some(ORIGIN),
                cookie,
                &form,
            ),
        )
        .await;
        assert!(to_sign_in(&a), "{cookie:?}: {}", a.status);
    }
    assert_eq!(
        send(&c.router, get(HOST, "/approvals/fd-2?x=1", None))
            .await
            .header(header::LOCATION),
        "/signin?next=%2Fapprovals%2Ffd-2%3Fx%3D1"
    );
    assert!(c.api.requests().is_empty(), "{:?}", c.api.requests());
}

#[tokio::test]
async fn sign_ins_under_way_cost_the_console_nothing() {
    let c = console(Limits::default(), 8);
    // A callback no sign-in of this browser started: refused before the
    // provider is asked, and nothing is kept for it.
    for n in 0..50 {
        let path = format!("/callback?code=stolen-{n}&state=guessed-{n}");
        let cookie = format!("modelgate-signin=forged-{n}");
        let a = send(&c.router, get(HOST, &path, Some(&cookie))).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.body);
        assert!(a.body.contains("start it again"), "{}", a.body);
        assert!(!a.header(header::SET_COOKIE).contains("modelgate-session="));
    }
    assert_eq!(c.sign_in.sessions.len(jiff::Timestamp::now()), 0);
    // The sign-in page is open to anyone, on the console's own name only.
    assert_eq!(
        send(&c.router, get(HOST, "/signin", None)).await.status,
        StatusCode::OK
    );
    let a = send(&c.router, get("evil.example", "/signin", None)).await;
    assert_eq!(a.status, StatusCode::MISDIRECTED_REQUEST);
}

#[tokio::test]
async fn signing_in_again_and_again_ends_only_ones_own_oldest_sessions() {
    let c = console(limits(100, 2), 8);
    let lena = c.sign_in("oidc:lena");
    let bo: Vec<String> = (0..10).map(|_| c.sign_in("oidc:bo")).collect();
    assert_eq!(c.inbox(&lena).await, StatusCode::OK, "lena's session lives");
    for (n, cookie) in bo.iter().enumerate() {
        let want = if n >= 8 {
            StatusCode::OK
        } else {
            StatusCode::SEE_OTHER
        };
        assert_eq!(c.inbox(cookie).await, want, "bo's sign-in {n}");
    }
    assert_eq!(c.sign_in.sessions.held_by("oidc:bo"), 2);
    assert_eq!(c.sign_in.sessions.len(jiff::Timestamp::now()), 3);
}

#[tokio::test]
async fn when_every_session_is_taken_a_newcomer_is_refused_and_no_one_is_signed_out() {
    let c = console(limits(2, 5), 8);
    let lena = c.sign_in("oidc:lena");
    let bo = c.sign_in("oidc:bo");
    let refused = c
        .try_sign_in("oidc:sam", SignedDuration::from_hours(1))
        .expect_err("no place for sam");
    let a = signin::refused(&c.sign_in, &refused);
    assert_eq!(a.status(), StatusCode::SERVICE_UNAVAILABLE);
    let wait: i64 = a.headers()[header::RETRY_AFTER]
        .to_str()
        .ok()
        .and_then(|s| s.parse().ok())
        .expect("Retry-After in seconds");
    assert!(
        (3590..=3600).contains(&wait),
        "until the soonest ends: {wait}"
    );
    let body = axum::body::to_bytes(a.into_body(), 1 << 20)
        .await
        .expect("a page");
    let body = String::from_utf8_lossy(&body);
    assert!(
        body.contains(
            "the console already holds all the sessions it may (2) and none of them is yours"
        ),
        "{body}"
    );
    assert_eq!(c.inbox(&lena).await, StatusCode::OK);
    assert_eq!(c.inbox(&bo).await, StatusCode::OK);
    // Someone who holds one may sign in again: their own makes room.
    let bo_again = c.sign_in("oidc:bo");
    assert_eq!(c.inbox(&bo_again).await, StatusCode::OK);
    assert_eq!(c.inbox(&bo).await, StatusCode::SEE_OTHER);
    assert_eq!(c.inbox(&lena).await, StatusCode::OK);
}

#[tokio::test]
async fn signing_out_closes_that_sessions_live_pages_at_once() {
    let c = console(Limits::default(), 8);
    let lena = c.sign_in("oidc:lena");
    let bo = c.sign_in("oidc:bo");
    let mut lenas = c.events(&lena).await;
    let mut bos = c.events(&bo).await;
    assert_eq!((lenas.status, bos.status), (StatusCode::OK, StatusCode::OK));
    assert!(
        lenas.says("ModelApproval *", MOMENT).await,
        "lena's page follows the cluster"
    );
    assert!(bos.says("ModelApproval *", MOMENT).await);
    lenas
        .until(
            || c.api.open_watches("oidc:lena") >= 1,
            "lena's page watches",
        )
        .await;
    bos.until(|| c.api.open_watches("oidc:bo") >= 1, "bo's page watches")
        .await;

    let a = c.sign_out(&lena, ORIGIN).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(
        a.header(header::LOCATION),
        "/signin?next=%2F&why=signed-out"
    );
    assert!(
        a.header(header::SET_COOKIE).contains("modelgate-session=;"),
        "{}",
        a.header(header::SET_COOKIE)
    );
    assert!(
        lenas.ends_within(MOMENT).await,
        "lena's page stops following at once"
    );
    eventually(
        || c.api.open_watches("oidc:lena") == 0,
        "lena's watches close",
    )
    .await;
    assert!(c.api.open_watches("oidc:bo") >= 1, "bo's stay open");
    assert!(
        !bos.ends_within(Duration::from_millis(300)).await,
        "bo's page goes on"
    );
    assert_eq!(
        c.inbox(&lena).await,
        StatusCode::SEE_OTHER,
        "a kept cookie names no one"
    );
    assert_eq!(c.inbox(&bo).await, StatusCode::OK);
}

#[tokio::test]
async fn a_sign_out_from_another_site_is_refused_and_ends_nothing() {
    let c = console(Limits::default(), 8);
    let lena = c.sign_in("oidc:lena");
    let mut page = c.events(&lena).await;
    let a = c.sign_out(&lena, "https://evil.example").await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert!(!page.ends_within(Duration::from_millis(300)).await);
    assert_eq!(c.inbox(&lena).await, StatusCode::OK);
}

#[tokio::test]
async fn a_session_replaced_by_a_newer_sign_in_closes_its_live_pages() {
    let c = console(limits(100, 1), 8);
    let first = c.sign_in("oidc:lena");
    let mut page = c.events(&first).await;
    assert!(page.says("ModelApproval *", MOMENT).await);
    let second = c.sign_in("oidc:lena");
    assert!(
        page.ends_within(MOMENT).await,
        "the replaced session's page closes"
    );
    assert_eq!(c.inbox(&first).await, StatusCode::SEE_OTHER);
    let mut newer = c.events(&second).await;
    assert!(newer.says("ModelApproval *", MOMENT).await);
}

#[tokio::test]
async fn a_session_that_runs_out_closes_its_live_pages_on_time() {
    let c = console(Limits::default(), 8);
    let short = c
        .try_sign_in("oidc:bo", SignedDuration::from_secs(1))
        .expect("signed in");
    let mut page = c.events(&short).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.ends_within(Duration::from_secs(3)).await,
        "closed when the session ends"
    );
    let a = send(&c.router, get(HOST, "/", Some(&short))).await;
    assert_eq!(a.header(header::LOCATION), "/signin?next=%2F&why=ended");
    eventually(|| c.api.open_watches("oidc:bo") == 0, "its watches close").await;
}

#[tokio::test]
async fn live_pages_are_counted_per_person_across_their_sessions() {
    let c = console(Limits::default(), 2);
    let (one, two) = (c.sign_in("oidc:lena"), c.sign_in("oidc:lena"));
    let first = c.events(&one).await;
    let second = c.events(&two).await;
    assert_eq!(
        (first.status, second.status),
        (StatusCode::OK, StatusCode::OK)
    );
    for cookie in [&one, &two] {
        let a = send(&c.router, get(HOST, "/events", Some(cookie))).await;
        assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS, "{}", a.body);
        assert!(
            a.body
                .contains("2 pages of yours already follow the cluster"),
            "{}",
            a.body
        );
    }
    // Others are not held back by lena's pages.
    let bo = c.sign_in("oidc:bo");
    assert_eq!(c.events(&bo).await.status, StatusCode::OK);
    // A signed-out session's pages give their places back.
    c.sign_out(&one, ORIGIN).await;
    let mut first = first;
    assert!(first.ends_within(MOMENT).await);
    drop(first);
    assert_eq!(c.events(&two).await.status, StatusCode::OK);
}
