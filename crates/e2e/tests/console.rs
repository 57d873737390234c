//! The reviewers' console in a real browser: headless Chromium driven
//! through its WebDriver (Debian's chromium and chromium-driver) against the
//! local control plane. Each person runs their own console, the built
//! `kubectl-modelgate console` with `--as` and `--as-group`, as a reviewer
//! would with their own kubeconfig; every assertion reads what the page
//! shows.

use std::process::Stdio;
use std::time::Instant;

use fantoccini::Locator;
use modelgate::api::approval::{ApprovalPhase, ModelApproval};
use modelgate::api::breakglass::ReleasedBy;
use modelgate::api::{deployment::DeploymentPhase, gates::Gate};
use modelgate_e2e::{
    breakglass::*, browser::*, cluster::*, fixtures::*, operator::*, plugin::*, pods::*, wait::*,
};

const APPROVAL: &str = "fraud-detector-2-4-0";

/// One person's console: `kubectl modelgate console --port 0` as them.
struct Console {
    process: ConsoleProcess,
    /// e.g. http://127.0.0.1:41234 (no key: a browser must open `printed` first).
    url: String,
    /// The address it printed: http://127.0.0.1:41234/?token=KEY.
    printed: String,
    user: String,
}

impl Console {
    fn start(ns: &str, user: &str, groups: &[&str]) -> Console {
        let mut child = plugin_command(ns, Some((user, groups)), &["console", "--port", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the console");
        let first = announced(&mut child);
        let printed = first.trim().to_string();
        let (base, key) = printed
            .split_once("/?token=")
            .unwrap_or_else(|| panic!("console said {first:?}: no key in its address"));
        assert!(
            base.starts_with("http://127.0.0.1:") && key.len() == 64,
            "console said {first:?}"
        );
        let url = base.to_string();
        Console {
            process: ConsoleProcess {
                child,
                url: url.clone(),
            },
            url,
            printed,
            user: user.into(),
        }
    }

    fn port(&self) -> u16 {
        self.process.port()
    }

    /// What the person does first: open the printed address (the console
    /// sets its key's cookie and drops the key from the address), then go
    /// to `path`.
    async fn open(&self, browser: &fantoccini::Client, path: &str) {
        browser
            .goto(&self.printed)
            .await
            .expect("the printed address");
        let at = browser.current_url().await.expect("where it went");
        assert!(!at.as_str().contains("token="), "the key stays in {at}");
        browser
            .goto(&format!("{}{path}", self.url))
            .await
            .expect("a page of the console");
    }

    /// The key's cookie, as a browser that opened the printed address
    /// holds it (`name=value`).
    fn cookies(&self) -> String {
        let path = self.printed.trim_start_matches(&self.url);
        let (code, answer, cookie) = get_page(self.port(), path, "");
        assert_eq!(code, 303, "{answer}");
        assert!(
            answer.contains("HttpOnly") && answer.contains("SameSite=Strict"),
            "{answer}"
        );
        cookie
    }
}

/// The five reviewers of the demo: gate, user, reason, message.
const REVIEWERS: [(Gate, &str, &str, &str); 5] = [
    (
        Gate::Technical,
        "tess@example.com",
        "HoldoutMetricsMet",
        "AUC 0.94 on the 2026-Q3 holdout set",
    ),
    (
        Gate::Fairness,
        "fay@example.com",
        "DisparityWithinBounds",
        "max disparity 1.04 across the protected groups",
    ),
    (
        Gate::Security,
        "sam@example.com",
        "PenTestPassed",
        "no findings above low in the 2026-11 pen test",
    ),
    (
        Gate::Legal,
        "lee@example.com",
        "LicencesCleared",
        "training data licences confirmed for every source",
    ),
    (
        Gate::Business,
        "bea@example.com",
        "BusinessCaseApproved",
        "expected fraud loss reduction 12%",
    ),
];

const FAIRNESS_REPORT: &str = "https://reports.example.com/fraud-detector/2.4.0/fairness.html";

/// The approval of the demo with its evidence, and a ModelDeployment
/// serving through it.
async fn with_evidence(
    client: &kube::Client,
    ns: &str,
) -> (
    kube::Api<modelgate::api::approval::ModelApproval>,
    kube::Api<modelgate::api::deployment::ModelDeployment>,
) {
    let mut approval = model_approval(APPROVAL)
        .version("2.4.0")
        .valid_for("2160h")
        .build();
    approval.spec.evidence = serde_json::from_value(serde_json::json!([
        {"gate": "FairnessReview", "uri": FAIRNESS_REPORT, "description": "Disparity report, 2026-Q3 holdout set"},
        {"gate": "SecurityReview", "uri": "https://security.example.com/pentests/2026-11", "description": "Pen test report, November 2026"},
        {"gate": "LegalReview", "uri": "https://legal.example.com/licences/fraud-detector", "description": "Training data licence register"},
    ]))
    .expect("evidence");
    let approvals = kube::Api::namespaced(client.clone(), ns);
    let mds = kube::Api::namespaced(client.clone(), ns);
    let create = kube::api::PostParams::default();
    approvals
        .create(&create, &approval)
        .await
        .expect("approval");
    mds.create(
        &create,
        &model_deployment("fraud-detector")
            .approval(APPROVAL)
            .replicas(1)
            .build(),
    )
    .await
    .expect("md");
    (approvals, mds)
}

fn reviewer_console(ns: &str, gate: Gate, user: &str) -> Console {
    Console::start(ns, user, &[gate.default_group()])
}

#[tokio::test(flavor = "multi_thread")]
async fn five_reviewers_approve_through_their_consoles_and_the_model_rolls_out() {
    start_operator();
    let client = install_modelgate().await;
    let ns = TestNamespace::new(&client, "console").await;
    let n = ns.name.as_str();
    let (_, mds) = with_evidence(&client, n).await;
    phase(&mds, "fraud-detector", DeploymentPhase::AwaitingApproval).await;
    let shots = tempdir("console-shots");
    let driver = Driver::start();
    let started = Instant::now();

    // The business reviewer keeps the approval page open throughout: it
    // must follow the others' decisions without a reload.
    let (b_gate, b_user, b_reason, b_message) = REVIEWERS[4];
    let business = reviewer_console(n, b_gate, b_user);
    let watching = driver.browser().await;
    business
        .open(&watching, &format!("/approvals/{APPROVAL}"))
        .await;
    shows(&watching, "#summary", "0 of 5 gates passed", 10).await;
    let link = watching
        .find(Locator::Css("#gate-fairness .evidence a"))
        .await
        .expect("the fairness evidence, as a link");
    assert_eq!(
        link.attr("href").await.expect("href").as_deref(),
        Some(FAIRNESS_REPORT)
    );
    assert_eq!(
        link.text().await.expect("text"),
        "Disparity report, 2026-Q3 holdout set"
    );
    shows(&watching, "#live-indicator", "Live", 10).await;
    watching
        .execute("window.notReloaded = true", vec![])
        .await
        .expect("mark the page");

    let acting = driver.browser().await;
    for (i, (gate, user, reason, message)) in REVIEWERS[..4].iter().enumerate() {
        let console = reviewer_console(n, *gate, user);
        console.open(&acting, "/").await;
        let waiting = text_of(&acting, "section[aria-labelledby=waiting-h]").await;
        assert!(waiting.contains(APPROVAL), "{user}'s inbox: {waiting}");
        assert!(
            waiting.contains(&format!("{}: Waiting for a decision", title(*gate))),
            "{user}'s inbox names their gate: {waiting}"
        );
        assert_eq!(text_of(&acting, ".who strong").await, console.user);
        if *gate == Gate::Legal {
            screenshot(&acting, &shots, "console-inbox.png").await;
        }
        acting
            .find(Locator::Css(&format!(
                "#inbox-lists a[href='/approvals/{APPROVAL}']"
            )))
            .await
            .expect("the approval's link")
            .click()
            .await
            .expect("open it");
        decide(&acting, *gate, true, reason, message).await;
        let recorded = text_of(&acting, ".notice.ok[role=status]").await;
        assert!(recorded.contains(title(*gate)), "{recorded}");
        let card = shows(
            &acting,
            &format!("#gate-{}-state", gate.short_name()),
            "Passed",
            10,
        )
        .await;
        assert!(card.contains(&format!("by {user}")), "{card}");
        assert!(card.contains(reason) && card.contains(message), "{card}");
        // The open page of another person follows, with no reload.
        shows(
            &watching,
            "#summary",
            &format!("{} of 5 gates passed", i + 1),
            20,
        )
        .await;
    }
    let still = watching
        .execute("return window.notReloaded === true", vec![])
        .await
        .expect("read the mark");
    assert_eq!(
        still,
        serde_json::Value::Bool(true),
        "the page updated in place"
    );
    let history = shows(&watching, "#history", "Security review: Passed", 10).await;
    assert!(history.contains("by sam@example.com"), "{history}");
    fit_page(&watching).await;
    screenshot(&watching, &shots, "console-approval.png").await;
    let size = watching.source().await.expect("source").len();
    eprintln!("approval page: {size} bytes of HTML");

    // The last gate, from the page that has been open all along.
    watching.set_window_size(1366, 1000).await.expect("resize");
    decide(&watching, b_gate, true, b_reason, b_message).await;
    shows(
        &watching,
        "#gate-business-state",
        &format!("by {b_user}"),
        10,
    )
    .await;
    shows(&watching, "#summary", "Approved", 30).await;
    phase(&mds, "fraud-detector", DeploymentPhase::Available).await;

    business.open(&watching, "/deployments").await;
    let row = shows(&watching, "#md-fraud-detector", "Available", 30).await;
    assert!(row.contains(APPROVAL) && row.contains("2.4.0"), "{row}");
    assert!(
        row.contains(&digest_of("2.4.0")),
        "the digest served: {row}"
    );
    screenshot(&watching, &shots, "console-deployments.png").await;
    eprintln!(
        "five reviewers through the console in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let _ = (acting.close().await, watching.close().await);
}

/// What the page calls each gate.
fn title(gate: Gate) -> &'static str {
    const TITLES: [&str; 5] = [
        "Technical review",
        "Fairness review",
        "Security review",
        "Legal and compliance review",
        "Business review",
    ];
    TITLES[Gate::ALL.iter().position(|g| *g == gate).unwrap_or(0)]
}

/// The operator running, and a namespace of the test's own holding the
/// demo's approval.
async fn one_approval(
    prefix: &str,
) -> (
    TestNamespace,
    kube::Api<modelgate::api::approval::ModelApproval>,
) {
    start_operator();
    let client = install_modelgate().await;
    let ns = TestNamespace::new(&client, prefix).await;
    let approvals = kube::Api::namespaced(client.clone(), &ns.name);
    model_approval(APPROVAL)
        .version("2.4.0")
        .create(&approvals)
        .await;
    (ns, approvals)
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_appear_beside_the_form_in_the_api_servers_words() {
    let (ns, approvals) = one_approval("console-refused").await;
    let n = ns.name.as_str();
    let driver = Driver::start();
    let browser = driver.browser().await;

    // A business reviewer tries the security gate.
    let bea = Console::start(n, "bea@example.com", &["modelgate:business-reviewers"]);
    bea.open(&browser, &format!("/approvals/{APPROVAL}")).await;
    browser
        .find(Locator::Css("#gate-security details summary"))
        .await
        .expect("the security gate's form, behind a summary")
        .click()
        .await
        .expect("open it");
    decide(&browser, Gate::Security, true, "LooksFine", "").await;
    let refusal = text_of(&browser, "#gate-security [role=alert]").await;
    assert!(
        refusal.contains(
            "SecurityReview may only be set by members of modelgate:security-reviewers; bea@example.com is not one"
        ),
        "{refusal}"
    );
    assert!(
        browser
            .title()
            .await
            .expect("title")
            .starts_with("Refused:")
    );
    let card = text_of(&browser, "#gate-security-state").await;
    assert!(card.contains("Waiting for a decision"), "{card}");
    let reason = browser
        .find(Locator::Css("#reason-security"))
        .await
        .expect("reason")
        .prop("value")
        .await
        .expect("value");
    assert_eq!(
        reason.as_deref(),
        Some("LooksFine"),
        "what was typed is kept"
    );
    let a: modelgate::api::approval::ModelApproval =
        approvals.get(APPROVAL).await.expect("approval");
    assert!(
        condition_of(&a, "SecurityReview").is_none(),
        "nothing was written"
    );

    // A person in two groups passes one gate, then may not pass the other.
    let sam = Console::start(
        n,
        "sam@example.com",
        &["modelgate:security-reviewers", "modelgate:legal-reviewers"],
    );
    sam.open(&browser, &format!("/approvals/{APPROVAL}")).await;
    decide(
        &browser,
        Gate::Security,
        true,
        "PenTestPassed",
        "no findings",
    )
    .await;
    shows(&browser, "#gate-security-state", "by sam@example.com", 10).await;
    let advice = shows(&browser, "#gate-legal-state", "separation of duties", 10).await;
    assert!(advice.contains("You passed Security review"), "{advice}");
    decide(&browser, Gate::Legal, true, "LicencesCleared", "").await;
    let refusal = text_of(&browser, "#refusal-legal").await;
    assert!(
        refusal.contains("separation of duties: sam@example.com already passed another gate of this approval, so LegalReview needs a different reviewer"),
        "{refusal}"
    );

    // Failing a gate needs a reason and a message: said beside the form,
    // before anything is sent.
    decide(&browser, Gate::Legal, false, "LicenceUnclear", "").await;
    let refusal = text_of(&browser, "#refusal-legal").await;
    assert!(refusal.contains("give a reason and a message"), "{refusal}");
    let a: modelgate::api::approval::ModelApproval =
        approvals.get(APPROVAL).await.expect("approval");
    assert!(condition_of(&a, "LegalReview").is_none(), "{:?}", a.status);
    let _ = browser.close().await;
}

/// A raw HTTP request to a console: (status code, headers and body).
fn http(port: u16, request: &str) -> (u16, String) {
    try_http(([127, 0, 0, 1], port).into(), request).expect("the console answers")
}

fn post(port: u16, host: &str, origin: Option<&str>, cookie: &str, body: &str) -> (u16, String) {
    let origin = origin
        .map(|o| format!("Origin: {o}\r\n"))
        .unwrap_or_default();
    let origin = format!("{origin}Cookie: {cookie}\r\n");
    http(
        port,
        &format!(
            "POST /approvals/{APPROVAL}/gates/technical HTTP/1.1\r\nHost: {host}\r\n{origin}Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn forms_from_elsewhere_and_other_hosts_are_refused() {
    let (ns, approvals) = one_approval("console-csrf").await;
    let n = ns.name.as_str();
    let tess = Console::start(n, "tess@example.com", &["modelgate:technical-reviewers"]);
    let port = tess.port();
    let host = format!("127.0.0.1:{port}");
    let own = format!("http://{host}");
    let body = "authenticity_token=forged&decision=approve&reason=Passed&message=";
    let key = tess.cookies();

    // A page read: served, with the headers that keep other pages out.
    let (code, page) = http(
        port,
        &format!("GET / HTTP/1.1\r\nHost: {host}\r\nCookie: {key}\r\nConnection: close\r\n\r\n"),
    );
    assert_eq!(code, 200, "{page}");
    let lower = page.to_ascii_lowercase();
    assert!(
        lower.contains("content-security-policy: default-src 'none'"),
        "{page}"
    );
    assert!(lower.contains("x-frame-options: deny"), "{page}");
    // Another host name (DNS rebinding) is refused, reads included.
    let (code, _) = http(
        port,
        "GET / HTTP/1.1\r\nHost: evil.example:80\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(code, 421);
    // A form posted from another site, or with no Origin, is refused.
    assert_eq!(
        post(port, &host, Some("http://evil.example"), &key, body).0,
        403
    );
    assert_eq!(post(port, &host, None, &key, body).0, 403);
    // From the console's own origin but without the session's token.
    let (code, page) = post(port, &host, Some(&own), &key, body);
    assert_eq!(code, 400, "{page}");
    assert!(
        page.contains("this form is out of date or did not come from this console"),
        "{page}"
    );
    let a: modelgate::api::approval::ModelApproval =
        approvals.get(APPROVAL).await.expect("approval");
    assert!(
        condition_of(&a, "TechnicalReview").is_none(),
        "{:?}",
        a.status
    );
}

/// A page read as a browser of this console would make it: (status code,
/// headers and body, the CSRF cookie it set as `name=value`).
fn get_page(port: u16, path: &str, cookies: &str) -> (u16, String, String) {
    let host = format!("127.0.0.1:{port}");
    let cookie = if cookies.is_empty() {
        String::new()
    } else {
        format!("Cookie: {cookies}\r\n")
    };
    let (code, page) = http(
        port,
        &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{cookie}Connection: close\r\n\r\n"),
    );
    let set = page
        .lines()
        .filter_map(|l| {
            l.strip_prefix("set-cookie: ")
                .or_else(|| l.strip_prefix("Set-Cookie: "))
        })
        .filter_map(|c| c.split(';').next())
        .collect::<Vec<_>>()
        .join("; ");
    (code, page, set)
}

/// The value of the hidden input `name` on a page.
fn hidden(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page.find(&marker).map(|i| i + marker.len());
    start
        .and_then(|s| page[s..].split('"').next())
        .unwrap_or_default()
        .replace("&#x2F;", "/")
        .replace("&#47;", "/")
        .replace("&#x2B;", "+")
        .replace("&#43;", "+")
        .replace("&#x3D;", "=")
        .replace("&#61;", "=")
        .replace("&amp;", "&")
}

fn form_escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_decision_for_an_approval_re_created_since_its_page_is_refused() {
    let (ns, approvals) = one_approval("console-bound").await;
    let n = ns.name.as_str();
    let sam = Console::start(n, "sam@example.com", &["modelgate:security-reviewers"]);
    let port = sam.port();
    let host = format!("127.0.0.1:{port}");
    let cookies = sam.cookies();

    // Sam opens the approval page: digest A, with its uid, in the form.
    let (code, page, csrf) = get_page(port, &format!("/approvals/{APPROVAL}"), &cookies);
    assert_eq!(code, 200, "{page}");
    let first = approvals.get(APPROVAL).await.expect("approval");
    let uid = hidden(&page, "uid");
    assert_eq!(Some(uid.as_str()), first.metadata.uid.as_deref(), "{page}");
    assert_eq!(hidden(&page, "digest"), digest_of("2.4.0"));
    let token = hidden(&page, "authenticity_token");

    // Meanwhile the approval is deleted and re-created with digest B.
    approvals
        .delete(APPROVAL, &Default::default())
        .await
        .expect("delete");
    gone(&approvals, APPROVAL, 30).await;
    model_approval(APPROVAL)
        .version("6.6.6")
        .create(&approvals)
        .await;

    // Sam's form, sent as the page rendered it, is refused and says why.
    let body = format!(
        "authenticity_token={}&uid={}&digest={}&decision=approve&reason=PenTestPassed&message=",
        form_escape(&token),
        form_escape(&uid),
        form_escape(&digest_of("2.4.0")),
    );
    let all = [cookies.as_str(), csrf.as_str()]
        .iter()
        .filter(|c| !c.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("; ");
    let (code, answer) = http(
        port,
        &format!(
            "POST /approvals/{APPROVAL}/gates/security HTTP/1.1\r\nHost: {host}\r\nOrigin: http://{host}\r\nCookie: {all}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    );
    assert_eq!(code, 409, "{answer}");
    let said = format!(
        "this approval changed since you opened it: it now names digest {}",
        digest_of("6.6.6")
    );
    assert!(answer.contains(&said), "{answer}");
    assert!(answer.contains("reload and review again"), "{answer}");
    let now = approvals.get(APPROVAL).await.expect("approval");
    assert!(
        condition_of(&now, "SecurityReview").is_none(),
        "the new approval's gate is untouched: {:?}",
        now.status
    );
    // The re-rendered form is bound to the new object and starts empty.
    assert_eq!(
        Some(hidden(&answer, "uid").as_str()),
        now.metadata.uid.as_deref()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn another_local_process_without_the_printed_key_is_refused() {
    let (ns, approvals) = one_approval("console-key").await;
    let n = ns.name.as_str();
    let sam = Console::start(n, "sam@example.com", &["modelgate:security-reviewers"]);
    let port = sam.port();
    let host = format!("127.0.0.1:{port}");
    let own = format!("http://{host}");

    // Another process sets Host and Origin as it likes, but has no key:
    // no page, no CSRF token, no approval, no live stream.
    let forged_cookie = format!("modelgate-console-{port}-key={}", "0".repeat(64));
    for (path, cookie) in [
        ("/".to_string(), String::new()),
        (format!("/approvals/{APPROVAL}"), String::new()),
        (
            format!("/approvals/{APPROVAL}?token=guessed"),
            String::new(),
        ),
        ("/events".to_string(), String::new()),
        (format!("/approvals/{APPROVAL}"), forged_cookie.clone()),
    ] {
        let (code, answer, set) = get_page(port, &path, &cookie);
        assert_eq!(code, 401, "{path}: {answer}");
        assert!(
            answer.contains("Open the address it printed in the terminal"),
            "{answer}"
        );
        for leak in ["authenticity_token", APPROVAL, "sha256:", "set-cookie"] {
            assert!(
                !answer
                    .to_ascii_lowercase()
                    .contains(&leak.to_ascii_lowercase()),
                "{path} shows {leak}: {answer}"
            );
        }
        assert!(set.is_empty(), "{set}");
    }
    let body = "authenticity_token=x&uid=x&digest=x&decision=approve&reason=Passed&message=";
    let (code, answer) = http(
        port,
        &format!(
            "POST /approvals/{APPROVAL}/gates/security HTTP/1.1\r\nHost: {host}\r\nOrigin: {own}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    );
    assert_eq!(code, 401, "{answer}");
    let a: modelgate::api::approval::ModelApproval =
        approvals.get(APPROVAL).await.expect("approval");
    assert!(
        condition_of(&a, "SecurityReview").is_none(),
        "{:?}",
        a.status
    );

    // The person who started it: the printed address sets the cookie and
    // goes on without the key; with the cookie the page is served.
    let key = sam.cookies();
    let (code, page, _) = get_page(port, &format!("/approvals/{APPROVAL}"), &key);
    assert_eq!(code, 200, "{page}");
    assert!(page.contains("authenticity_token"), "{page}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_overdue_gate_is_marked_on_its_card_as_it_happens() {
    start_operator();
    let client = install_modelgate().await;
    let ns = TestNamespace::new(&client, "console-overdue").await;
    let n = ns.name.as_str();
    // SecurityReview is due 3 s after the approval's creation.
    let policy = serde_json::json!({
        "apiVersion": "modelgate.io/v1alpha1", "kind": "ApprovalPolicy",
        "metadata": {"name": "default", "namespace": n},
        "spec": {"gates": [{"gate": "SecurityReview", "deadline": {"reviewWithin": "3s", "escalateTo": ["oncall@example.com"]}}]},
    });
    let policies: kube::Api<modelgate::api::policy::ApprovalPolicy> =
        kube::Api::namespaced(client.clone(), n);
    policies
        .patch(
            "default",
            &kube::api::PatchParams::apply("policy-admin").force(),
            &kube::api::Patch::Apply(&policy),
        )
        .await
        .expect("apply the policy");
    eventually(60, "the policy observed", || async {
        let p = policies.get("default").await.ok()?;
        (p.status?.observed_generation == p.metadata.generation).then_some(())
    })
    .await;
    let approvals = kube::Api::namespaced(client.clone(), n);
    model_approval(APPROVAL)
        .version("2.4.0")
        .create(&approvals)
        .await;

    let driver = Driver::start();
    let browser = driver.browser().await;
    let sam = reviewer_console(n, Gate::Security, "sam@example.com");
    sam.open(&browser, &format!("/approvals/{APPROVAL}")).await;
    // The deadline passes about when the page opens: the card says so
    // either at once or, live, without a reload.
    let card = shows(&browser, "#gate-security-state", "Overdue:", 30).await;
    assert!(card.contains("oncall@example.com told"), "{card}");
    assert!(card.contains("A deadline never passes a gate"), "{card}");
    let other = text_of(&browser, "#gate-legal-state").await;
    assert!(
        !other.contains("Overdue"),
        "only the gate with a deadline: {other}"
    );
}

/// The approval of the demo with four gates passed, LegalReview open, a
/// ModelDeployment following it (onRevoke ScaleToZero), and a break-glass
/// without LegalReview requested by the incident commander and approved by
/// the on-call, each as themselves: the release it is under.
async fn released_without_legal_review(client: &kube::Client, n: &str) -> ReleasedBy {
    break_glass_policy(client, n, "8h").await;
    bind_break_glass(client, n).await;
    let approvals: kube::Api<ModelApproval> = kube::Api::namespaced(client.clone(), n);
    model_approval(APPROVAL)
        .version("2.4.0")
        .create(&approvals)
        .await;
    for (gate, user, _, _) in REVIEWERS.iter().filter(|r| r.0 != Gate::Legal) {
        set_gate(n, APPROVAL, gate.condition_type(), "True", user)
            .await
            .unwrap_or_else(|e| panic!("pass {gate}: {e}"));
    }
    model_deployment("fraud-detector")
        .approval(APPROVAL)
        .replicas(1)
        .on_revoke("ScaleToZero")
        .create(&kube::Api::namespaced(client.clone(), n))
        .await;
    let request = Request {
        name: "inc-4711",
        approval: APPROVAL,
        skips: &["LegalReview"],
        duration: "8h",
    };
    request_break_glass(n, &request, COMMANDER, &[COMMANDERS])
        .await
        .expect("the commander requests");
    approve_break_glass(n, "inc-4711", APPROVER, &[ON_CALL])
        .await
        .expect("the on-call approves");
    eventually(60, "the approval released by break-glass", || async {
        let status = approvals.get(APPROVAL).await.ok()?.status?;
        (status.phase == Some(ApprovalPhase::BreakGlass)).then_some(*status.break_glass?)
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_break_glass_release_is_announced_atop_its_page_in_plain_words() {
    start_operator();
    let client = install_modelgate().await;
    let ns = TestNamespace::new(&client, "console-break-glass").await;
    let n = ns.name.as_str();
    let released = released_without_legal_review(&client, n).await;
    let until = released.until.0.strftime("%Y-%m-%d %H:%M UTC").to_string();

    let driver = Driver::start();
    let browser = driver.browser().await;
    let lee = reviewer_console(n, Gate::Legal, "lee@example.com");
    lee.open(&browser, &format!("/approvals/{APPROVAL}")).await;
    let banner = shows(&browser, "#break-glass-banner", "Emergency release", 30).await;
    let said = format!(
        "Emergency release (break-glass): served without LegalReview until {until}. \
         Requested by {COMMANDER}, approved by {APPROVER}: {}. \
         Unless LegalReview passes before then, the release is withdrawn: \
         fraud-detector is scaled to zero and stops serving (onRevoke ScaleToZero).",
        released.reason
    );
    assert!(banner.starts_with(&said), "{banner}\nnot\n{said}");
    let element = browser
        .find(Locator::Css("#break-glass-banner"))
        .await
        .expect("the banner");
    assert_eq!(
        element.attr("role").await.expect("role").as_deref(),
        Some("alert")
    );
    assert_eq!(
        element.attr("class").await.expect("class").as_deref(),
        Some("break-glass")
    );
    let above = "return document.getElementById('break-glass-banner').getBoundingClientRect().bottom \
                 <= document.querySelector('h1').getBoundingClientRect().top";
    assert_eq!(
        browser.execute(above, vec![]).await.expect("where it is"),
        serde_json::Value::Bool(true),
        "the banner stands above the page's heading"
    );
    let legal = text_of(&browser, "#gate-legal-state").await;
    assert!(
        legal.contains(&format!("Skipped by break-glass until {until}.")),
        "{legal}"
    );
    let business = text_of(&browser, "#gate-business-state").await;
    assert!(!business.contains("Skipped"), "{business}");
    screenshot(
        &browser,
        &tempdir("console-shots"),
        "console-break-glass.png",
    )
    .await;

    // The lists mark it: in Lee's inbox it waits on Lee, sooner than ever;
    // the deployment serves it under the break-glass.
    browser
        .goto(&format!("{}/", lee.url))
        .await
        .expect("the inbox");
    let waiting = text_of(
        &browser,
        "section[aria-labelledby=waiting-h] tr.break-glass",
    )
    .await;
    assert!(
        waiting.contains(APPROVAL)
            && waiting.contains("BreakGlass")
            && waiting.contains(&format!(
                "Emergency release without LegalReview until {until}"
            )),
        "{waiting}"
    );
    browser
        .goto(&format!("{}/deployments", lee.url))
        .await
        .expect("the deployments");
    let row = shows(
        &browser,
        "#md-fraud-detector",
        "Emergency release: break-glass inc-4711 until",
        60,
    )
    .await;
    assert!(row.contains("without LegalReview"), "{row}");
    let class = browser
        .find(Locator::Css("#md-fraud-detector"))
        .await
        .expect("the row")
        .attr("class")
        .await
        .expect("class");
    assert_eq!(class.as_deref(), Some("break-glass"));
}
