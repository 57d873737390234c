//! A real browser for the console tests: headless Chromium driven through
//! its WebDriver (Debian's chromium and chromium-driver, installed by
//! hack/browser.sh), and what a person does with a page: wait for it to
//! show something, type, decide a gate, take a screenshot.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use modelgate::api::gates::Gate;

use crate::operator::*;

/// One chromedriver on loopback for a test, stopped when dropped.
pub struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    pub fn start() -> Driver {
        let port = free_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("start chromedriver ({e}): hack/test.sh installs it (hack/browser.sh)")
            });
        wait_listening(port, "chromedriver");
        Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// A new headless browser window.
    pub async fn browser(&self) -> Client {
        self.browser_with(&[]).await
    }

    /// A new headless browser window with more command-line switches.
    pub async fn browser_with(&self, extra: &[&str]) -> Client {
        let mut args = vec![
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--window-size=1366,1000",
            "--force-device-scale-factor=1",
        ];
        args.extend_from_slice(extra);
        let caps = serde_json::json!({
            "browserName": "chrome",
            "goog:chromeOptions": {"args": args},
        });
        let serde_json::Value::Object(caps) = caps else {
            unreachable!()
        };
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("a chromium session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn wait_listening(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A console process, stopped when dropped.
pub struct ConsoleProcess {
    pub child: Child,
    /// e.g. http://127.0.0.1:41234
    pub url: String,
}

impl ConsoleProcess {
    pub fn port(&self) -> u16 {
        self.url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("a port")
    }
}

impl Drop for ConsoleProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The first line a console prints (where it listens); the rest of its
/// output is read and dropped so that it never blocks on a full pipe.
pub fn announced(child: &mut Child) -> String {
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut first = String::new();
        let mut lines = BufReader::new(stdout);
        let _ = lines.read_line(&mut first);
        let _ = tx.send(first);
        let _ = std::io::copy(&mut lines, &mut std::io::sink());
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("the console says where it listens")
}

/// The text of the element `css`, once it contains `want` (up to `secs`).
pub async fn shows(browser: &Client, css: &str, want: &str, secs: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut last = String::new();
    loop {
        if let Ok(e) = browser.find(Locator::Css(css)).await {
            last = e.text().await.unwrap_or_default();
            if last.contains(want) {
                return last;
            }
        }
        if Instant::now() > deadline {
            panic!("after {secs}s, {css} shows {last:?}, not {want:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn text_of(browser: &Client, css: &str) -> String {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .expect("text")
}

pub async fn type_into(browser: &Client, css: &str, text: &str) {
    let field = browser.find(Locator::Css(css)).await.expect(css);
    field.clear().await.expect("clear");
    field.send_keys(text).await.expect("type");
}

/// Fills one gate's form on the approval page and submits it.
pub async fn decide(browser: &Client, gate: Gate, pass: bool, reason: &str, message: &str) {
    let short = gate.short_name();
    let choice = if pass { "approve" } else { "reject" };
    let form = format!("#gate-{short} form.decide");
    browser
        .find(Locator::Css(&format!("{form} input[value={choice}]")))
        .await
        .expect("decision radio")
        .click()
        .await
        .expect("choose");
    type_into(browser, &format!("#reason-{short}"), reason).await;
    type_into(browser, &format!("#message-{short}"), message).await;
    // A mark on the page that is left: the next page has none.
    browser
        .execute("window.leaving = true", vec![])
        .await
        .expect("mark the page");
    browser
        .find(Locator::Css(&format!("{form} button[type=submit]")))
        .await
        .expect("submit button")
        .click()
        .await
        .expect("submit");
    let deadline = Instant::now() + Duration::from_secs(20);
    let answered = "return window.leaving !== true && document.readyState === 'complete'";
    while browser.execute(answered, vec![]).await.ok() != Some(serde_json::Value::Bool(true)) {
        assert!(
            Instant::now() < deadline,
            "no answer to the form on {}",
            gate
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A screenshot of what the browser shows, into the test's temp dir; with
/// MODELGATE_SCREENSHOTS=1 also into docs/images/.
pub async fn screenshot(browser: &Client, dir: &Path, name: &str) -> PathBuf {
    let png = browser.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let shot = dir.join(name);
    std::fs::write(&shot, &png).expect("write screenshot");
    if std::env::var_os("MODELGATE_SCREENSHOTS").is_some() {
        let docs = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
            .join("docs/images")
            .join(name);
        std::fs::copy(&shot, docs).expect("copy the screenshot into docs/images");
    }
    shot
}

/// Resizes the window to the page's full height, for a screenshot of all of it.
pub async fn fit_page(browser: &Client) {
    let height = browser
        .execute("return document.documentElement.scrollHeight", vec![])
        .await
        .ok()
        .and_then(|h| h.as_u64())
        .unwrap_or(1000);
    browser
        .set_window_size(1366, height.clamp(800, 4000) as u32)
        .await
        .expect("resize");
}

pub fn tempdir(prefix: &str) -> PathBuf {
    // One per call: tests of one binary run at once in one process, and a
    // file one of them rewrites (a console's client secret) must not be
    // read half-written by another.
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("{prefix}-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}
