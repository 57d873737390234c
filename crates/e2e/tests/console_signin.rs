//! The console as it runs in the cluster: people sign in through a real
//! OpenID provider (the local control plane's, built from Go modules in
//! hack/oidc, which the API server trusts through its authentication
//! configuration), and every call carries the person's own ID token. The
//! console here is the built `kubectl-modelgate console` with the flags the
//! chart gives it, no kubeconfig and no credential of its own; the browser
//! is headless Chromium, and every assertion reads what a person or an
//! auditor would read.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, Locator};
use modelgate::api::{approval::ModelApproval, gates::Gate};
use modelgate_e2e::{browser::*, cluster::*, fixtures::*, operator::*, paths::*, wait::*};

const APPROVAL: &str = "fraud-detector-2-4-0";
/// Every test user's password at the test provider (hack/oidc/users.json).
const PASSWORD: &str = "modelgate-test";
/// The client whose ID tokens live 15 s (hack/oidc).
const SHORT_CLIENT: &str = "modelgate-console-short";

/// A console that signs people in, stopped when dropped.
fn signed_in_console(ns: &str, client_id: &str) -> ConsoleProcess {
    signed_in_console_with(ns, client_id, &[])
}

/// The same, with more flags (e.g. lower limits). A free port can be taken
/// by another process between finding it and the console binding it; the
/// console then says nothing and exits, and is started on another port.
fn signed_in_console_with(ns: &str, client_id: &str, extra: &[&str]) -> ConsoleProcess {
    for _ in 0..3 {
        let port = free_port();
        let url = format!("http://127.0.0.1:{port}");
        let mut child = start_console(ns, client_id, extra, (port, &url));
        let first = announced(&mut child);
        if first.is_empty() {
            let _ = child.kill();
            let _ = child.wait();
            continue;
        }
        assert_eq!(
            first.trim().trim_end_matches('/'),
            url,
            "console said {first:?}"
        );
        wait_listening(port, "the console");
        return ConsoleProcess { child, url };
    }
    panic!("the console exited three times without saying where it listens (its errors are above)");
}

/// Starts the console on `port`, reached at `url`, with the chart's flags.
fn start_console(
    ns: &str,
    client_id: &str,
    extra: &[&str],
    (port, url): (u16, &str),
) -> std::process::Child {
    let oidc = oidc();
    let home = tempdir("console-signin-home");
    // As the chart gives it: a file from a Secret.
    let secret = home.join("client-secret");
    std::fs::write(&secret, format!("{}\n", oidc.client_secret)).expect("write the secret");
    Command::new(binary("kubectl-modelgate"))
        // Nothing to fall back on: no kubeconfig, no ~/.kube.
        .env_remove("KUBECONFIG")
        .env("HOME", &home)
        .args([
            "console",
            "-n",
            ns,
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .args(["--external-url", url, "--oidc-issuer", &oidc.issuer])
        .args(["--oidc-client-id", client_id])
        .arg("--oidc-client-secret-file")
        .arg(&secret)
        .arg("--oidc-ca-file")
        .arg(&oidc.ca)
        .args(["--api-server", &oidc.api_server])
        .arg("--api-ca-file")
        .arg(&oidc.ca)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the console")
}

/// A browser that accepts the provider's certificate (signed by the local
/// control plane's own CA, which Chromium does not know).
async fn browser(driver: &Driver) -> Client {
    driver.browser_with(&["--ignore-certificate-errors"]).await
}

/// Opens `path` on the console, is sent to sign in, and signs in as `user`
/// on the provider's own login page; returns once the page asked for shows
/// who is signed in.
async fn sign_in(browser: &Client, console: &ConsoleProcess, path: &str, user: &str) {
    if let Err(said) = try_sign_in(browser, console, path, user).await {
        panic!("the sign-in did not go through: {said}");
    }
}

/// As `sign_in`, but a refusal is returned: the sign-in page's words.
async fn try_sign_in(
    browser: &Client,
    console: &ConsoleProcess,
    path: &str,
    user: &str,
) -> Result<(), String> {
    browser
        .goto(&format!("{}{path}", console.url))
        .await
        .expect("open the console");
    shows(browser, "h1", "Sign in to review models", 15).await;
    let here = browser.current_url().await.expect("url");
    assert_eq!(here.path(), "/signin", "{here}");
    click(browser, "#signin-button").await;
    // The provider's page, not ours.
    shows(browser, "form", "Username", 15).await;
    let there = browser.current_url().await.expect("url");
    assert!(
        there.as_str().starts_with(&oidc().issuer),
        "the login page is the provider's: {there}"
    );
    type_into(browser, "#username", user).await;
    type_into(browser, "#password", PASSWORD).await;
    click(browser, "button[type=submit]").await;
    // Signed in, or the sign-in page says why not.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(e) = browser.find(Locator::Css("#signin-error")).await {
            return Err(e.text().await.unwrap_or_default());
        }
        if let Ok(e) = browser.find(Locator::Css("#who")).await
            && e.text().await.unwrap_or_default() == format!("oidc:{user}")
        {
            break;
        }
        let at = browser
            .current_url()
            .await
            .map(|u| u.to_string())
            .unwrap_or_default();
        assert!(
            Instant::now() < deadline,
            "not signed in as {user} after 30 s, at {at}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let back = browser.current_url().await.expect("url");
    assert_eq!(back.path(), path, "back on the page asked for: {back}");
    Ok(())
}

/// The session cookie's value, as a person could copy it.
async fn session_cookie(browser: &Client) -> String {
    browser
        .get_named_cookie("modelgate-session")
        .await
        .expect("the session cookie")
        .value()
        .to_string()
}

async fn click(browser: &Client, css: &str) {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
}

async fn one_approval(prefix: &str) -> (TestNamespace, kube::Api<ModelApproval>) {
    start_operator();
    let client = install_modelgate().await;
    let ns = TestNamespace::new(&client, prefix).await;
    let approvals = kube::Api::namespaced(client.clone(), &ns.name);
    model_approval(APPROVAL)
        .version("2.4.0")
        .create(&approvals)
        .await;
    // The operator's first write (Pending, the pinned policy) is done
    // before a test compares what was written.
    eventually(30, "the operator's first status", || async {
        let a = approvals.get(APPROVAL).await.ok()?;
        let status = a.status?;
        (status.phase.is_some() && status.policy.is_some()).then_some(())
    })
    .await;
    (ns, approvals)
}

/// The audit log's record of a write to the approval's status by `user`.
async fn audited_write(ns: &str, user: &str) -> serde_json::Value {
    let log = &cluster().audit_log;
    eventually(30, "the decision in the audit log", || async {
        let text = std::fs::read_to_string(log).ok()?;
        text.lines()
            .filter(|l| l.contains(user) && l.contains(ns) && l.contains("modelapprovals"))
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|e| {
                e["user"]["username"] == user
                    && e["objectRef"]["subresource"] == "status"
                    && e["verb"] == "patch"
                    && e["responseStatus"]["code"] == 200
            })
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reviewer_signs_in_with_the_provider_and_decides_as_themselves() {
    let (ns, approvals) = one_approval("signin").await;
    let n = ns.name.as_str();
    let console = signed_in_console(n, "modelgate-console");
    let driver = Driver::start();
    let browser = browser(&driver).await;
    let shots = tempdir("console-signin-shots");

    let page = format!("/approvals/{APPROVAL}");
    browser
        .goto(&format!("{}{page}", console.url))
        .await
        .expect("open the console");
    shows(&browser, "h1", "Sign in to review models", 15).await;
    screenshot(&browser, &shots, "console-signin.png").await;
    sign_in(&browser, &console, &page, "lena").await;
    let footer = text_of(&browser, "footer").await;
    assert!(
        footer.contains("modelgate:legal-reviewers"),
        "the group comes from the token: {footer}"
    );

    decide(
        &browser,
        Gate::Legal,
        true,
        "LicencesCleared",
        "training data licences confirmed",
    )
    .await;
    shows(&browser, "#gate-legal-state", "by oidc:lena", 15).await;

    // What an auditor reads: the approval's own history, and the API
    // server's audit log, where the write is lena's own (her token's
    // groups, no impersonation).
    let a: ModelApproval = approvals.get(APPROVAL).await.expect("approval");
    let condition = condition_of(&a, "LegalReview").expect("LegalReview is set");
    assert_eq!(condition.status, "True");
    let history = a.status.clone().unwrap_or_default().history;
    assert!(
        history
            .iter()
            .any(|h| h.subject == "LegalReview" && h.reviewer.as_deref() == Some("oidc:lena")),
        "{history:?}"
    );
    let write = audited_write(n, "oidc:lena").await;
    let groups = write["user"]["groups"].to_string();
    assert!(groups.contains("modelgate:legal-reviewers"), "{write}");
    assert!(write.get("impersonatedUser").is_none(), "{write}");

    // Signing out forgets the session: a copy of its cookie names no one.
    let cookie = session_cookie(&browser).await;
    click(&browser, "#signout-button").await;
    shows(&browser, "#signin-notice", "You have signed out.", 15).await;
    let (code, answer) = get(console.port(), "/", Some(&cookie));
    assert_eq!(code, 303, "{answer}");
    assert!(answer.contains("location: /signin"), "{answer}");
    let _ = browser.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_without_the_group_is_refused_and_an_ended_session_signs_in_again() {
    let (ns, approvals) = one_approval("signin-refused").await;
    let n = ns.name.as_str();
    let console = signed_in_console(n, SHORT_CLIENT);
    let driver = Driver::start();
    let browser = browser(&driver).await;

    let page = format!("/approvals/{APPROVAL}");
    sign_in(&browser, &console, &page, "bo").await;
    // Taken once signed in: the token was issued during the sign-in, which
    // may take seconds on a loaded machine, so it ends within 15 s of now.
    let signed_in = Instant::now();
    click(&browser, "#gate-legal details summary").await;
    decide(&browser, Gate::Legal, true, "LooksFine", "").await;
    let refusal = text_of(&browser, "#gate-legal [role=alert]").await;
    assert!(
        refusal.contains(
            "LegalReview may only be set by members of modelgate:legal-reviewers; oidc:bo is not one"
        ),
        "{refusal}"
    );
    let before = approvals.get(APPROVAL).await.expect("approval");
    assert!(
        condition_of(&before, "LegalReview").is_none(),
        "nothing was written"
    );

    // The short client's ID token lives 15 s; the session ends with it.
    let cookie = session_cookie(&browser).await;
    let ended = signed_in + Duration::from_secs(17);
    tokio::time::sleep(ended.saturating_duration_since(Instant::now())).await;
    browser.refresh().await.expect("reload");
    shows(&browser, "#signin-notice", "Your session has ended", 15).await;
    let here = browser.current_url().await.expect("url");
    assert_eq!(here.path(), "/signin", "{here}");
    // A form sent with the ended session writes nothing either.
    let (code, answer) = post_decision(console.port(), Some(&cookie));
    assert_eq!(code, 303, "{answer}");
    assert!(answer.contains("location: /signin"), "{answer}");
    let after = approvals.get(APPROVAL).await.expect("approval");
    assert_eq!(
        after.metadata.resource_version,
        before.metadata.resource_version
    );

    // Signing in again goes on where the person was.
    sign_in(&browser, &console, &page, "bo").await;
    let _ = browser.close().await;
}

/// A raw request to the console: (status code, headers and body), the
/// header names in lower case.
fn request(port: u16, text: &str) -> (u16, String) {
    let (code, answer) =
        try_http(([127, 0, 0, 1], port).into(), text).expect("the console answers");
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    (code, format!("{}\r\n\r\n{body}", head.to_ascii_lowercase()))
}

fn cookie_header(cookie: Option<&str>) -> String {
    cookie
        .map(|c| format!("Cookie: modelgate-session={c}\r\n"))
        .unwrap_or_default()
}

fn get(port: u16, path: &str, cookie: Option<&str>) -> (u16, String) {
    request(
        port,
        &format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{}Connection: close\r\n\r\n",
            cookie_header(cookie)
        ),
    )
}

/// A decision on the legal gate, sent from the console's own origin.
fn post_decision(port: u16, cookie: Option<&str>) -> (u16, String) {
    let body = "authenticity_token=forged&decision=approve&reason=Passed&message=";
    request(
        port,
        &format!(
            "POST /approvals/{APPROVAL}/gates/legal HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: http://127.0.0.1:{port}\r\n{}Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            cookie_header(cookie),
            body.len()
        ),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_without_a_session_or_with_a_forged_one_write_nothing() {
    let (ns, approvals) = one_approval("signin-forged").await;
    let console = signed_in_console(&ns.name, "modelgate-console");
    let port = console.port();
    let before = approvals.get(APPROVAL).await.expect("approval");
    let forged = "a".repeat(64);

    for cookie in [None, Some(forged.as_str()), Some("not-even-hex")] {
        let (code, answer) = post_decision(port, cookie);
        assert_eq!(code, 303, "{cookie:?}: {answer}");
        assert!(answer.contains("location: /signin"), "{cookie:?}: {answer}");
        let (code, answer) = get(port, &format!("/approvals/{APPROVAL}"), cookie);
        assert_eq!(code, 303, "{cookie:?}: {answer}");
        assert!(
            answer.contains("location: /signin?next=%2fapprovals%2ffraud-detector-2-4-0"),
            "{cookie:?}: {answer}"
        );
        // Pages that are not the sign-in's show no one's data either.
        let (code, _) = get(port, "/deployments", cookie);
        assert_eq!(code, 303);
    }
    // A callback that no sign-in of this browser started opens no session:
    // without the sign-in cookie, with one forged to match the state, or
    // with a real one and another state.
    let started = get(port, "/signin/start?next=%2F", None).1;
    let real = started
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: modelgate-signin="))
        .and_then(|v| v.split(';').next())
        .expect("the sign-in cookie")
        .to_string();
    for cookie in [
        String::new(),
        "Cookie: modelgate-signin=guessed\r\n".to_string(),
        format!("Cookie: modelgate-signin={real}\r\n"),
    ] {
        let (code, answer) = request(
            port,
            &format!(
                "GET /callback?code=stolen&state=guessed HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{cookie}Connection: close\r\n\r\n"
            ),
        );
        assert_eq!(code, 401, "{cookie}: {answer}");
        assert!(answer.contains("start it again"), "{answer}");
        assert!(
            !answer.contains("set-cookie: modelgate-session="),
            "{answer}"
        );
    }
    // A form from another site is refused before any session is looked at.
    let body = "authenticity_token=forged&decision=approve&reason=Passed&message=";
    let (code, answer) = request(
        port,
        &format!(
            "POST /approvals/{APPROVAL}/gates/legal HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: https://evil.example\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    );
    assert_eq!(code, 403, "{answer}");
    // The sign-in page itself is open to all, and only on the console's own name.
    assert_eq!(get(port, "/signin", None).0, 200);
    let (code, _) = request(
        port,
        "GET /signin HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(code, 421);

    // The console's own service account (the chart binds nothing to it
    // and mounts no token; here acted as outright) may not decide a gate.
    let console_sa = client_as(
        Some("system:serviceaccount:modelgate-system:modelgate-console"),
        &[
            "system:serviceaccounts",
            "system:serviceaccounts:modelgate-system",
            "system:authenticated",
        ],
    )
    .await;
    let as_console: kube::Api<ModelApproval> = kube::Api::namespaced(console_sa, &ns.name);
    let gate = serde_json::json!({
        "apiVersion": "modelgate.io/v1alpha1", "kind": "ModelApproval",
        "status": {"conditions": [{"type": "LegalReview", "status": "True", "reason": "Passed",
            "message": "", "lastTransitionTime": "2026-12-01T00:00:00Z"}]},
    });
    let refused = as_console
        .patch_status(
            APPROVAL,
            &kube::api::PatchParams::apply("console-attempt").force(),
            &kube::api::Patch::Apply(&gate),
        )
        .await
        .expect_err("the console's own identity may not write");
    assert!(
        matches!(&refused, kube::Error::Api(s) if s.code == 403),
        "{refused}"
    );

    let after = approvals.get(APPROVAL).await.expect("approval");
    assert_eq!(
        after.metadata.resource_version, before.metadata.resource_version,
        "nothing was written"
    );
}

/// A page's live stream held open as a browser holds it: the status line,
/// and a receiver that gets word when the console closes the stream.
fn follow(port: u16, cookie: &str) -> (String, std::sync::mpsc::Receiver<()>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut stream =
        std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to the console");
    write!(
        stream,
        "GET /events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n{}Connection: close\r\n\r\n",
        cookie_header(Some(cookie))
    )
    .expect("send");
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    reader.read_line(&mut status).expect("a status line");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // Until the console ends the answer and closes the connection.
        let _ = std::io::copy(&mut reader.by_ref(), &mut std::io::sink());
        let _ = tx.send(());
    });
    (status.trim().to_string(), rx)
}

#[tokio::test(flavor = "multi_thread")]
async fn signing_in_again_ends_only_ones_own_sessions_and_a_full_console_signs_no_one_out() {
    let (ns, _approvals) = one_approval("signin-limits").await;
    let console = signed_in_console_with(
        &ns.name,
        "modelgate-console",
        &["--max-sessions", "2", "--max-sessions-per-person", "1"],
    );
    let port = console.port();
    let driver = Driver::start();

    // lena, then bo: the console is full.
    let lenas_browser = browser(&driver).await;
    sign_in(&lenas_browser, &console, "/", "lena").await;
    let lena = session_cookie(&lenas_browser).await;
    let bos_browser = browser(&driver).await;
    sign_in(&bos_browser, &console, "/", "bo").await;
    let bo_first = session_cookie(&bos_browser).await;
    let (status, first_page_closed) = follow(port, &bo_first);
    assert!(status.ends_with("200 OK"), "{status}");

    // bo signs in again, in another browser, and again: each time his own
    // older session ends, its live page closes, and lena's goes on.
    let mut bo_latest = bo_first.clone();
    for _ in 0..2 {
        let again = browser(&driver).await;
        sign_in(&again, &console, "/", "bo").await;
        let newer = session_cookie(&again).await;
        assert_eq!(
            get(port, "/", Some(&bo_latest)).0,
            303,
            "bo's older session ended"
        );
        assert_eq!(get(port, "/", Some(&newer)).0, 200);
        assert_eq!(get(port, "/", Some(&lena)).0, 200, "lena's session lives");
        bo_latest = newer;
        let _ = again.close().await;
    }
    first_page_closed
        .recv_timeout(Duration::from_secs(10))
        .expect("the ended session's live page was closed by the console");

    // sam holds no session and the console is full: he is refused, and no
    // one is signed out for him.
    let sams_browser = browser(&driver).await;
    let said = try_sign_in(&sams_browser, &console, "/", "sam")
        .await
        .expect_err("no place for sam");
    assert!(
        said.contains(
            "the console already holds all the sessions it may (2) and none of them is yours"
        ),
        "{said}"
    );
    assert_eq!(get(port, "/", Some(&lena)).0, 200, "lena's session lives");
    assert_eq!(
        get(port, "/", Some(&bo_latest)).0,
        200,
        "bo's session lives"
    );
    lenas_browser.refresh().await.expect("reload");
    shows(&lenas_browser, "#who", "oidc:lena", 15).await;
    for b in [sams_browser, bos_browser, lenas_browser] {
        let _ = b.close().await;
    }
}
