//! The HTTP endpoints a platform team scrapes and probes: `/metrics`
//! (Prometheus text), `/healthz` (the process answers) and `/readyz`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::Future;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use super::metrics::Metrics;

/// What `/readyz` answers from.
#[derive(Default)]
pub struct Health {
    /// Whether every watch cache has its first list.
    synced: AtomicBool,
    /// A replica waiting for the leader lease: ready to take over, with
    /// nothing to sync yet.
    standby: AtomicBool,
}

impl Health {
    pub fn caches_synced(&self) {
        self.synced.store(true, Ordering::Release);
    }

    pub fn set_standby(&self, standby: bool) {
        self.standby.store(standby, Ordering::Release);
    }

    /// Ready when every watch cache has synced, or while standing by.
    pub fn ready(&self) -> bool {
        self.standby.load(Ordering::Acquire) || self.synced.load(Ordering::Acquire)
    }
}

struct AppState {
    metrics: Arc<Metrics>,
    health: Arc<Health>,
}

/// How long open scrapes may take to finish once the operator stops.
const DRAIN: Duration = Duration::from_secs(5);

/// Binds `addr` and serves until `shutdown`; returns the bound address (the
/// port is chosen by the system when `addr` asks for port 0).
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let state = Arc::new(AppState { metrics, health });
    Ok((bound, tokio::spawn(accept(listener, state, shutdown))))
}

/// Accepts connections until `shutdown`, then lets open ones finish.
async fn accept(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let state = state.clone();
                    let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                        let response = answer(&state, request.method(), request.uri().path());
                        async move { Ok::<_, Infallible>(response) }
                    });
                    let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
                    let connection = graceful.watch(connection);
                    tokio::spawn(async move {
                        if let Err(e) = connection.await {
                            tracing::debug!(error = %e, "a metrics or probe connection ended with an error");
                        }
                    });
                }
                Err(e) => {
                    // Out of file descriptors, for one: wait rather than spin.
                    tracing::warn!(error = %e, "accepting a metrics or probe connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            () = &mut shutdown => break,
        }
    }
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::debug!("metrics and probe connections still open at shutdown were dropped");
    }
}

/// The answer to one request: three read-only paths.
fn answer(state: &AppState, method: &Method, path: &str) -> Response<Full<Bytes>> {
    if method != Method::GET && method != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
    }
    match path {
        "/metrics" => {
            let mut response = Response::new(Full::new(Bytes::from(state.metrics.encode())));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            response
        }
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" if state.health.ready() => text(StatusCode::OK, "ok\n"),
        "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "caches not synced yet\n"),
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: /metrics, /healthz, /readyz\n",
        ),
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response
}
