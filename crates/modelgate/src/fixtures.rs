//! A mocked API server for reconcile tests, in kube's tower-test pattern: a
//! Context whose client talks to a scenario that takes each request in
//! order, checks it and answers it. The reconciles' writes are checked in
//! milliseconds; the integration tests against a real control plane stay
//! what proves behaviour.

use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};
use tower_test::mock::{self, SendResponse};

use crate::context::Context;

type Handle = mock::Handle<Request<Body>, Response<Body>>;

/// How long a scenario waits for a request the reconcile should make.
const PATIENCE: Duration = Duration::from_secs(5);

/// A Context on a mocked API server, and that server.
pub fn context() -> (Arc<Context>, ApiServer) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let ctx = Context::new(client, Some("test".into()), Arc::default(), Arc::default());
    (Arc::new(ctx), ApiServer(handle))
}

/// The mocked API server's side: the requests as they arrive.
pub struct ApiServer(Handle);

impl ApiServer {
    /// The next request; panics when none comes.
    pub async fn next(&mut self) -> Received {
        let next = tokio::time::timeout(PATIENCE, self.0.next_request()).await;
        let Ok(Some((request, respond))) = next else {
            panic!("the reconcile made no further request");
        };
        let (parts, body) = request.into_parts();
        let bytes = body.collect_bytes().await.unwrap_or_default();
        Received {
            method: parts.method,
            path: parts.uri.path().to_string(),
            query: parts.uri.query().unwrap_or_default().to_string(),
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            respond,
        }
    }

    /// The next request, which must be `method` on `path`.
    pub async fn expect(&mut self, method: Method, path: &str) -> Received {
        let r = self.next().await;
        assert_eq!(
            (&r.method, r.path.as_str()),
            (&method, path),
            "unexpected request: {} {}?{} {}",
            r.method,
            r.path,
            r.query,
            r.body
        );
        r
    }

    /// Asserts the reconcile made no request it was not expected to make.
    /// Call it once every client (the context and any state holding it) is
    /// dropped, so that the stream of requests ends.
    pub async fn nothing_more(mut self) {
        let more = tokio::time::timeout(PATIENCE, self.0.next_request()).await;
        if let Ok(Some((request, _))) = more {
            panic!(
                "an unexpected request: {} {}",
                request.method(),
                request.uri()
            );
        }
    }
}

/// One request as the mocked API server received it, to be answered.
pub struct Received {
    pub method: Method,
    pub path: String,
    pub query: String,
    /// The request body as JSON (Null when there is none).
    pub body: Value,
    respond: SendResponse<Response<Body>>,
}

impl Received {
    /// The value of query parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find_map(|(k, v)| (k == name).then_some(v))
    }

    /// Asserts this is a server-side apply under `manager`, with force.
    pub fn assert_applied_by(&self, manager: &str) {
        assert_eq!(self.param("fieldManager"), Some(manager), "{}", self.query);
        assert_eq!(self.param("force"), Some("true"), "{}", self.query);
    }

    /// Answers with `status` and `body`.
    pub fn answer(self, status: StatusCode, body: Value) {
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let mut response = Response::new(Body::from(bytes));
        *response.status_mut() = status;
        self.respond.send_response(response);
    }

    /// Answers 200 with `object`.
    pub fn ok(self, object: Value) {
        self.answer(StatusCode::OK, object);
    }

    /// Answers 201 with what was sent, as a create that succeeded does.
    pub fn created(self) {
        let body = self.body.clone();
        self.answer(StatusCode::CREATED, body);
    }

    /// Answers 404 Not Found.
    pub fn not_found(self) {
        self.answer(
            StatusCode::NOT_FOUND,
            json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {},
                "status": "Failure", "reason": "NotFound", "code": 404,
                "message": "not found",
            }),
        );
    }
}

/// `object` with `patch`'s fields merged in (objects key by key, anything
/// else replaced), as the API server answers a server-side apply.
pub fn merged(object: &Value, patch: &Value) -> Value {
    match (object, patch) {
        (Value::Object(o), Value::Object(p)) => {
            let mut out = o.clone();
            for (k, v) in p {
                let merged = match o.get(k) {
                    Some(before) => merged(before, v),
                    None => v.clone(),
                };
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        _ => patch.clone(),
    }
}
