//! The console a reviewer runs on their own computer: the Host and Origin
//! guard, the key only they have (the printed address, then its cookie),
//! the CSRF token on every form, the assets, and what is not a route.

use std::sync::Arc;

use axum::Router;
use axum::http::{StatusCode, header};

use super::fake::*;
use crate::console::person::Person;
use crate::console::sessions::Ended;
use crate::console::views::Me;
use crate::console::{Console, People, csrf_config, guard, live, local, router};

const HOST: &str = "127.0.0.1:8437";
const ORIGIN: &str = "http://127.0.0.1:8437";

/// The console as `kubectl modelgate console --port 8437` runs it for
/// lena, with the key it printed, and the fake API server behind it.
fn console() -> (Router, String, FakeApi) {
    console_with(FakeApi::default())
}

/// The same console in front of `api`.
fn console_with(api: FakeApi) -> (Router, String, FakeApi) {
    let session = api.session("lena", &["modelgate:legal-reviewers"]);
    let me = Me {
        user: "lena".into(),
        groups: vec!["modelgate:legal-reviewers".into()],
    };
    let key = local::LocalKey::generate(8437).expect("a key");
    let printed = key.url("http://127.0.0.1:8437/");
    let token = printed
        .split_once("?token=")
        .map(|(_, t)| t.to_string())
        .expect("the printed address holds the key");
    let console = Console {
        people: People::Local(Person::new(session, me, None, Ended::never())),
        groups: Arc::new(crate::console::reviewer_groups(&[])),
        csrf: csrf_config("modelgate-console-8437", false),
        origin: Arc::new(guard::Origins::loopback(8437)),
        local_key: Some(Arc::new(key)),
        live: Arc::new(live::LivePages::new(2)),
    };
    (router(console), token, api)
}

fn key_cookie(token: &str) -> String {
    format!("modelgate-console-8437-key={token}")
}

#[tokio::test]
async fn another_host_is_refused_even_with_the_key() {
    let (router, token, _) = console();
    let cookie = key_cookie(&token);
    // A page of another site whose name was rebound to 127.0.0.1 sends
    // its own name; a request with no Host at all is no better.
    for host in [
        "evil.example:8437",
        "127.0.0.1:9999",
        "localhost.evil.example",
    ] {
        let a = send(&router, get(host, "/", Some(&cookie))).await;
        assert_eq!(a.status, StatusCode::MISDIRECTED_REQUEST, "{host}");
        assert!(!a.body.contains(APPROVAL), "{host}: {}", a.body);
    }
    let mut hostless = get(HOST, "/", Some(&cookie));
    hostless.headers_mut().remove(header::HOST);
    let a = send(&router, hostless).await;
    assert_eq!(a.status, StatusCode::MISDIRECTED_REQUEST);
    // Both of its own names are served.
    for host in [HOST, "localhost:8437"] {
        assert_eq!(
            send(&router, get(host, "/", Some(&cookie))).await.status,
            StatusCode::OK
        );
    }
}

#[tokio::test]
async fn a_form_from_another_origin_or_none_is_refused_and_writes_nothing() {
    let (router, token, api) = console();
    let cookie = key_cookie(&token);
    let path = format!("/approvals/{APPROVAL}/gates/legal");
    let form = format!(
        "authenticity_token=x&decision=approve&reason=Passed&message=&uid={UID}&digest={}",
        digest()
    );
    for origin in [
        Some("https://evil.example"),
        Some("http://127.0.0.1:9999"),
        Some("null"),
        None,
    ] {
        let a = send(&router, post(HOST, &path, origin, Some(&cookie), &form)).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{origin:?}");
        assert!(
            a.body.contains("did not come from this console"),
            "{}",
            a.body
        );
    }
    assert!(api.writes().is_empty(), "{:?}", api.writes());
    assert!(
        api.requests().is_empty(),
        "refused before any handler: {:?}",
        api.requests()
    );
}

#[tokio::test]
async fn the_approval_page_says_whether_the_model_is_sealed() {
    let (router, token, _) = console();
    let a = send(
        &router,
        get(
            HOST,
            &format!("/approvals/{APPROVAL}"),
            Some(&key_cookie(&token)),
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(
        a.body
            .contains(r#"<dt>Seal</dt><dd><span class="badge Unsealed">Unsealed</span>"#),
        "{}",
        a.body
    );
    assert!(
        a.body
            .contains("not an OCI artifact: nothing makes the pods load these bytes"),
        "{}",
        a.body
    );
}

/// The approval page's CSRF cookie and its form's token.
async fn page_token(router: &Router, cookie: &str) -> (String, String) {
    let a = send(
        router,
        get(HOST, &format!("/approvals/{APPROVAL}"), Some(cookie)),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let csrf = a
        .header(header::SET_COOKIE)
        .split(';')
        .next()
        .expect("the CSRF cookie")
        .to_string();
    let token = a
        .body
        .split("name=\"authenticity_token\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the form's token")
        .to_string();
    (csrf, token)
}

#[tokio::test]
async fn a_same_origin_form_without_its_pages_token_writes_nothing() {
    let (router, key, api) = console();
    let cookie = key_cookie(&key);
    let (csrf, token) = page_token(&router, &cookie).await;
    // As a browser sends it: form-encoded (the token is base64).
    let token: String =
        openidconnect::url::form_urlencoded::byte_serialize(token.as_bytes()).collect();
    let cookies = format!("{cookie}; {csrf}");
    let path = format!("/approvals/{APPROVAL}/gates/legal");
    let form = |t: &str| {
        format!(
            "{t}decision=approve&reason=Passed&message=&uid={UID}&digest={}",
            digest()
        )
    };
    for (what, body, cookies) in [
        ("no token", form(""), cookies.as_str()),
        (
            "another token",
            form("authenticity_token=forged&"),
            cookies.as_str(),
        ),
        (
            "the token without its cookie",
            form(&format!("authenticity_token={token}&")),
            cookie.as_str(),
        ),
    ] {
        let a = send(
            &router,
            post(HOST, &path, Some(ORIGIN), Some(cookies), &body),
        )
        .await;
        assert!(
            a.status.is_client_error(),
            "{what}: {} {}",
            a.status,
            a.body
        );
        assert!(api.writes().is_empty(), "{what}: {:?}", api.writes());
    }
    // The page's own token does reach the cluster, whose admission policy
    // then has the last word, shown beside the form.
    let a = send(
        &router,
        post(
            HOST,
            &path,
            Some(ORIGIN),
            Some(&cookies),
            &form(&format!("authenticity_token={token}&")),
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
    assert!(a.body.contains(REFUSAL), "{}", a.body);
    assert_eq!(api.writes().len(), 1, "{:?}", api.writes());
}

#[tokio::test]
async fn without_the_printed_key_nothing_is_served() {
    let (router, token, api) = console();
    let wrong = "0".repeat(64);
    for path in [
        "/",
        &format!("/approvals/{APPROVAL}"),
        "/deployments",
        "/events",
        "/assets/console.css",
    ] {
        for cookie in [
            None,
            Some(key_cookie(&wrong)),
            Some(key_cookie(&token[..32])),
        ] {
            let a = send(&router, get(HOST, path, cookie.as_deref())).await;
            assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{path} {cookie:?}");
            assert!(
                a.body.contains("Open the console's own address"),
                "{}",
                a.body
            );
            assert!(!a.body.contains("authenticity_token") && !a.body.contains(APPROVAL));
            assert!(a.header(header::SET_COOKIE).is_empty(), "{path}");
        }
    }
    let a = send(&router, get(HOST, &format!("/?token={wrong}"), None)).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(a.header(header::SET_COOKIE).is_empty());
    let a = send(
        &router,
        post(
            HOST,
            "/approvals/fd-2/gates/legal",
            Some(ORIGIN),
            None,
            "decision=approve",
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(api.requests().is_empty(), "{:?}", api.requests());
}

#[tokio::test]
async fn the_printed_address_sets_the_key_cookie_and_leaves_the_address_bar() {
    let (router, token, _) = console();
    let a = send(
        &router,
        get(
            HOST,
            &format!("/approvals/{APPROVAL}?token={token}&recorded=legal"),
            None,
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(
        a.header(header::LOCATION),
        format!("/approvals/{APPROVAL}?recorded=legal")
    );
    let set = a.header(header::SET_COOKIE);
    assert!(
        set.starts_with(&format!("{}; ", key_cookie(&token))),
        "{set}"
    );
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let a = send(&router, get(HOST, "/", Some(&key_cookie(&token)))).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.body.contains(APPROVAL), "the inbox lists it: {}", a.body);
    let csp = a.header(header::CONTENT_SECURITY_POLICY);
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(a.header(header::X_FRAME_OPTIONS), "DENY");
}

#[tokio::test]
async fn assets_are_served_and_what_is_not_a_route_is_not_found() {
    let (router, token, _) = console();
    let cookie = key_cookie(&token);
    for (file, kind) in [
        ("console.css", "text/css"),
        ("console.js", "text/javascript"),
    ] {
        let a = send(
            &router,
            get(HOST, &format!("/assets/{file}"), Some(&cookie)),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{file}");
        assert!(a.header(header::CONTENT_TYPE).starts_with(kind), "{file}");
        assert!(!a.body.is_empty());
    }
    for path in [
        "/assets/../Cargo.toml",
        "/assets/nope.js",
        "/admin",
        "/approvals",
        "/signin",
        "/callback",
    ] {
        let a = send(&router, get(HOST, path, Some(&cookie))).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{path}: {}", a.body);
    }
    // What is not a route is guarded as what is.
    let a = send(&router, get("evil.example:8437", "/admin", Some(&cookie))).await;
    assert_eq!(a.status, StatusCode::MISDIRECTED_REQUEST);
    let a = send(&router, get(HOST, "/admin", None)).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    // The kubelet's probe needs neither the key nor the console's name.
    let a = send(&router, get("10.1.2.3:8437", "/healthz", None)).await;
    assert_eq!((a.status, a.body.as_str()), (StatusCode::OK, "ok"));
}

#[tokio::test]
async fn a_person_has_only_so_many_live_pages() {
    let (router, token, api) = console();
    let cookie = key_cookie(&token);
    let mut first = open_stream(&router, get(HOST, "/events", Some(&cookie))).await;
    let second = open_stream(&router, get(HOST, "/events", Some(&cookie))).await;
    assert_eq!(
        (first.status, second.status),
        (StatusCode::OK, StatusCode::OK)
    );
    assert!(
        first
            .says("ModelApproval *", std::time::Duration::from_secs(5))
            .await
    );
    let third = send(&router, get(HOST, "/events", Some(&cookie))).await;
    assert_eq!(third.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        third
            .body
            .contains("2 pages of yours already follow the cluster"),
        "{}",
        third.body
    );
    // A closed page gives its place back, and lets go of its watches.
    drop(second);
    let again = open_stream(&router, get(HOST, "/events", Some(&cookie))).await;
    assert_eq!(again.status, StatusCode::OK);
    first
        .until(|| api.open_watches("lena") >= 1, "a watch is open")
        .await;
    drop((first, again));
    eventually(|| api.open_watches("lena") == 0, "the watches close").await;
}

/// fd-2 released by break-glass without LegalReview, and the deployment
/// that serves it.
fn under_break_glass() -> FakeApi {
    let mut approval = approval();
    approval["status"] = serde_json::json!({
        "phase": "BreakGlass", "conditions": [],
        "breakGlass": {
            "name": "bg-1", "requestedBy": "ic@example.com", "approvedBy": ["oncall@example.com"],
            "reason": "INC-4711: <b>2.4.0</b> flags every card payment",
            "skips": ["LegalReview"],
            "since": "2026-12-06T03:00:00Z", "until": "2026-12-06T11:00:00Z",
        },
    });
    let md = serde_json::json!({
        "apiVersion": "modelgate.io/v1alpha1", "kind": "ModelDeployment",
        "metadata": {"name": "fd", "namespace": NAMESPACE},
        "spec": {"approvalRef": {"name": APPROVAL}, "onRevoke": "ScaleToZero", "template": {"spec": {"containers": []}}},
        "status": {"phase": "Available", "breakGlass": "bg-1 until 2026-12-06T11:00:00Z without LegalReview"},
    });
    FakeApi::serving(approval, vec![md])
}

#[tokio::test]
async fn a_break_glass_release_is_announced_atop_its_page_and_marked_in_the_lists() {
    let (router, token, _) = console_with(under_break_glass());
    let cookie = key_cookie(&token);
    let page = send(
        &router,
        get(HOST, &format!("/approvals/{APPROVAL}"), Some(&cookie)),
    )
    .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let banner = page
        .body
        .split(r#"<div class="break-glass" role="alert" id="break-glass-banner">"#)
        .nth(1)
        .and_then(|rest| rest.split("</div>").next())
        .unwrap_or_else(|| panic!("no banner: {}", page.body));
    let words = banner.replace("<strong>", "").replace("</strong>", "");
    assert!(
        words.contains("Emergency release (break-glass): served without LegalReview until 2026-12-06 11:00 UTC. Requested by ic@example.com, approved by oncall@example.com: INC-4711: &#60;b&#62;2.4.0&#60;/b&#62; flags every card payment. Unless LegalReview passes before then, the release is withdrawn: fd is scaled to zero and stops serving (onRevoke ScaleToZero)."),
        "{banner}"
    );
    // It comes before the page's heading, and the skipped gate's card says so.
    assert!(page.body.find("break-glass-banner") < page.body.find("<h1>"));
    assert!(page.body.contains(r#"<p class="skipped" id="skipped-legal"><strong>Skipped by break-glass until 2026-12-06 11:00 UTC.</strong>"#), "{}", page.body);
    let inbox = send(&router, get(HOST, "/", Some(&cookie))).await;
    assert!(
        inbox.body.contains(r#"<tr class="break-glass">"#),
        "{}",
        inbox.body
    );
    assert!(
        inbox
            .body
            .contains("Emergency release without LegalReview until 2026-12-06 11:00 UTC"),
        "{}",
        inbox.body
    );
    let mds = send(&router, get(HOST, "/deployments", Some(&cookie))).await;
    assert!(
        mds.body.contains(r#"<tr id="md-fd" class="break-glass">"#),
        "{}",
        mds.body
    );
    assert!(
        mds.body.contains(
            "Emergency release: break-glass bg-1 until 2026-12-06T11:00:00Z without LegalReview"
        ),
        "{}",
        mds.body
    );
}
