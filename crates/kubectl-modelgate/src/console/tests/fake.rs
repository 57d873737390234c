//! A stand-in for the API server behind a person's client: one approval
//! (`fd-2`), no deployments (or those a test gives it), watches held open and quiet, the person's
//! SelfSubjectReview, and every status write refused as an admission
//! policy would refuse it. It records each request, so a test can say
//! what reached the cluster, and counts the watches still open, so a test
//! can say a closed page let go of its watch.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, Method, Request, Response, StatusCode, header};
use futures::StreamExt;
use tower::ServiceExt;

use crate::Session;

pub const NAMESPACE: &str = "risk";
pub const APPROVAL: &str = "fd-2";
pub const UID: &str = "6f1c0a4e-0000-4000-8000-00000000fd02";
/// The words the fake admission policy refuses a write with.
pub const REFUSAL: &str = "LegalReview may only be set by members of modelgate:legal-reviewers";

/// What the fake API server saw.
#[derive(Clone, Default)]
pub struct FakeApi {
    requests: Arc<Mutex<Vec<String>>>,
    /// Watches held open, by whose client opened them.
    watches: Arc<Mutex<HashMap<String, usize>>>,
    /// The approval and deployments served instead of `fd-2` alone.
    objects: Option<Arc<(serde_json::Value, Vec<serde_json::Value>)>>,
}

/// Counted while a watch's answer is held open.
struct OpenWatch(Arc<Mutex<HashMap<String, usize>>>, String);

impl Drop for OpenWatch {
    fn drop(&mut self) {
        let mut open = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.1) {
            *n -= 1;
        }
    }
}

pub fn digest() -> String {
    format!("sha256:{}", "a".repeat(64))
}

/// `fd-2`: Pending, no gate decided, unsealed.
pub fn approval() -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "modelgate.io/v1alpha1", "kind": "ModelApproval",
        "metadata": {"name": APPROVAL, "namespace": NAMESPACE, "uid": UID, "resourceVersion": "5"},
        "spec": {"model": {"name": "fd", "version": "2", "uri": "s3://m/fd/2/", "digest": digest()}},
        "status": {"phase": "Pending", "conditions": [],
                   "artifact": {"seal": "Unsealed", "message": "not an OCI artifact: nothing makes the pods load these bytes"}},
    })
}

fn json(code: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut r = Response::new(Body::from(value.to_string()));
    *r.status_mut() = code;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn status(code: StatusCode, reason: &str, message: &str) -> Response<Body> {
    json(
        code,
        &serde_json::json!({"apiVersion": "v1", "kind": "Status", "status": "Failure",
            "reason": reason, "message": message, "code": code.as_u16()}),
    )
}

impl FakeApi {
    /// A fake serving `approval` (named `fd-2`) and `deployments`.
    pub fn serving(approval: serde_json::Value, deployments: Vec<serde_json::Value>) -> FakeApi {
        FakeApi {
            objects: Some(Arc::new((approval, deployments))),
            ..FakeApi::default()
        }
    }

    fn approval(&self) -> serde_json::Value {
        self.objects
            .as_ref()
            .map(|o| o.0.clone())
            .unwrap_or_else(approval)
    }

    fn deployments(&self) -> Vec<serde_json::Value> {
        self.objects
            .as_ref()
            .map(|o| o.1.clone())
            .unwrap_or_default()
    }

    /// A client of `user` (in `groups`) that talks to this fake.
    pub fn session(&self, user: &str, groups: &[&str]) -> Session {
        let api = self.clone();
        let who = serde_json::json!({"username": user, "groups": groups});
        let service = tower::service_fn(move |request: Request<kube::client::Body>| {
            let answer = api.answer(&request, &who);
            async move { Ok::<_, Infallible>(answer) }
        });
        Session {
            client: kube::Client::new(service, NAMESPACE),
            namespace: NAMESPACE.into(),
        }
    }

    fn answer(
        &self,
        request: &Request<kube::client::Body>,
        who: &serde_json::Value,
    ) -> Response<Body> {
        let (method, uri) = (request.method().clone(), request.uri().clone());
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(format!("{method} {uri}"));
        let path = uri.path();
        let watch = uri.query().unwrap_or_default().contains("watch=true");
        match (method, path.rsplit('/').next().unwrap_or_default()) {
            (Method::GET, _) if watch => self.watch(who["username"].as_str().unwrap_or_default()),
            (Method::POST, "selfsubjectreviews") => json(
                StatusCode::CREATED,
                &serde_json::json!({"apiVersion": "authentication.k8s.io/v1",
                    "kind": "SelfSubjectReview", "status": {"userInfo": who}}),
            ),
            (Method::GET, "modelapprovals") => list(vec![self.approval()]),
            (Method::GET, "modeldeployments") => list(self.deployments()),
            (Method::GET, APPROVAL) => json(StatusCode::OK, &self.approval()),
            (Method::PATCH, "status") => status(StatusCode::FORBIDDEN, "Forbidden", REFUSAL),
            _ => status(StatusCode::NOT_FOUND, "NotFound", "not found"),
        }
    }

    /// A watch that stays open and says nothing until it is let go.
    fn watch(&self, user: &str) -> Response<Body> {
        *self
            .watches
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(user.to_string())
            .or_default() += 1;
        let open = OpenWatch(self.watches.clone(), user.to_string());
        let quiet = futures::stream::pending::<Result<Bytes, Infallible>>().map(move |item| {
            let _held = &open;
            item
        });
        let mut r = Response::new(Body::from_stream(quiet));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        r
    }

    /// The requests that reached the API server, as `METHOD uri`.
    pub fn requests(&self) -> Vec<String> {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether any write (anything but a read or the who-am-I) reached it.
    pub fn writes(&self) -> Vec<String> {
        self.requests()
            .into_iter()
            .filter(|r| !r.starts_with("GET ") && !r.contains("selfsubjectreviews"))
            .collect()
    }

    /// The watches `user`'s client holds open now.
    pub fn open_watches(&self, user: &str) -> usize {
        self.watches
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(user)
            .copied()
            .unwrap_or_default()
    }
}

fn list(items: Vec<serde_json::Value>) -> Response<Body> {
    json(
        StatusCode::OK,
        &serde_json::json!({"apiVersion": "v1", "kind": "List",
            "metadata": {"resourceVersion": "5"}, "items": items}),
    )
}

/// A request to the console as a browser on `host` sends it.
pub fn get(host: &str, path: &str, cookie: Option<&str>) -> Request<Body> {
    let mut r = Request::builder()
        .method(Method::GET)
        .uri(path)
        .header(header::HOST, host);
    if let Some(c) = cookie {
        r = r.header(header::COOKIE, c);
    }
    r.body(Body::empty()).expect("a request")
}

/// A form post from `origin` (None: a client that sends none).
pub fn post(
    host: &str,
    path: &str,
    origin: Option<&str>,
    cookie: Option<&str>,
    form: &str,
) -> Request<Body> {
    let mut r = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(header::HOST, host)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(o) = origin {
        r = r.header(header::ORIGIN, o);
    }
    if let Some(c) = cookie {
        r = r.header(header::COOKIE, c);
    }
    r.body(Body::from(form.to_string())).expect("a request")
}

/// What came back: status, headers, and the body (read whole).
pub struct Answer {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: header::HeaderName) -> String {
        self.headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Sends `request` through the router, reading the whole answer.
pub async fn send(router: &Router, request: Request<Body>) -> Answer {
    let response = router.clone().oneshot(request).await.expect("an answer");
    let (parts, body) = response.into_parts();
    let bytes = tokio::time::timeout(Duration::from_secs(5), axum::body::to_bytes(body, 1 << 22))
        .await
        .expect("the answer ends")
        .expect("a body");
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// A live page's event stream, as a browser holds it open.
pub struct LiveStream {
    pub status: StatusCode,
    body: axum::body::BodyDataStream,
}

/// Opens `/events` and keeps its body unread.
pub async fn open_stream(router: &Router, request: Request<Body>) -> LiveStream {
    let response = router.clone().oneshot(request).await.expect("an answer");
    LiveStream {
        status: response.status(),
        body: response.into_body().into_data_stream(),
    }
}

impl LiveStream {
    /// The next piece of the stream within `wait`: Some(text) for data,
    /// Some("") when it has ended, None when nothing came.
    pub async fn next(&mut self, wait: Duration) -> Option<String> {
        match tokio::time::timeout(wait, self.body.next()).await {
            Ok(Some(Ok(bytes))) => Some(String::from_utf8_lossy(&bytes).into_owned()),
            Ok(Some(Err(e))) => panic!("the stream failed: {e}"),
            Ok(None) => Some(String::new()),
            Err(_) => None,
        }
    }

    /// Whether the stream ends within `wait` (data before the end is read
    /// and dropped).
    pub async fn ends_within(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Some(text) if text.is_empty() => return true,
                Some(_) => continue,
                None => return false,
            }
        }
    }

    /// Reads the stream (as a browser does) until `check` holds, within 5 s.
    pub async fn until(&mut self, check: impl Fn() -> bool, what: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !check() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what}: not within 5 s"
            );
            let _ = self.next(Duration::from_millis(20)).await;
        }
    }

    /// Reads until the stream has said `want`, within `wait`.
    pub async fn says(&mut self, want: &str, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        let mut seen = String::new();
        while !seen.contains(want) {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Some(text) if !text.is_empty() => seen.push_str(&text),
                _ => return false,
            }
        }
        true
    }
}

/// Waits up to 5 s for `check` to hold.
pub async fn eventually(check: impl Fn() -> bool, what: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
