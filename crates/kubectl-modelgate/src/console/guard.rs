//! What keeps other web pages and other hosts out, before any handler
//! runs: the Host must be this console's own loopback address (a page of
//! another site that rebinds its DNS name to 127.0.0.1 still sends its own
//! name), a form must come from this console's own origin (with the
//! per-session CSRF token checked by the handler on top), and every answer
//! carries headers that forbid framing, foreign scripts and sniffing.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use openidconnect::url::Url;

use super::Console;

/// The names this console answers to: run locally, 127.0.0.1 and
/// localhost on its port; in the cluster, its external address.
pub struct Origins {
    hosts: Vec<String>,
    origins: Vec<String>,
    /// Served as https (behind an ingress): browsers are told to keep it so.
    https: bool,
}

impl Origins {
    pub fn loopback(port: u16) -> Origins {
        let hosts = vec![format!("127.0.0.1:{port}"), format!("localhost:{port}")];
        let origins = hosts.iter().map(|h| format!("http://{h}")).collect();
        Origins {
            hosts,
            origins,
            https: false,
        }
    }

    /// The host and origin of `url` (the port only when the URL gives one,
    /// as browsers send them).
    pub fn of_url(url: &Url) -> Option<Origins> {
        let host = url.host_str()?;
        let host = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        };
        Some(Origins {
            origins: vec![url.origin().ascii_serialization()],
            hosts: vec![host],
            https: url.scheme() == "https",
        })
    }

    fn host_ok(&self, headers: &HeaderMap) -> bool {
        header_str(headers, header::HOST).is_some_and(|h| self.hosts.iter().any(|x| x == h))
    }

    /// A browser sends Origin with every form POST; none, or another one,
    /// is refused.
    fn origin_ok(&self, headers: &HeaderMap) -> bool {
        header_str(headers, header::ORIGIN).is_some_and(|o| self.origins.iter().any(|x| x == o))
    }
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Page policy: our own stylesheet and script only, no frames, no
/// form posts elsewhere.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub async fn check(State(c): State<Console>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    // The kubelet's probes name the pod's address, not the console's.
    let probe = request.uri().path() == "/healthz";
    if !probe && !c.origin.host_ok(headers) {
        return (
            StatusCode::MISDIRECTED_REQUEST,
            "this console answers only to its own address (locally: 127.0.0.1 and localhost on its own port)",
        )
            .into_response();
    }
    let reads = matches!(*request.method(), Method::GET | Method::HEAD);
    if !reads && !c.origin.origin_ok(headers) {
        return (
            StatusCode::FORBIDDEN,
            "refused: this form did not come from this console's own page",
        )
            .into_response();
    }
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        // same-origin, not no-referrer: with no-referrer a browser sends
        // `Origin: null` on form posts, which the check above refuses.
        (header::REFERRER_POLICY, "same-origin"),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    if c.origin.https {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}
