//! The HTTP endpoints a platform team scrapes and probes: `/metrics`
//! (Prometheus text), `/healthz` (the process answers) and `/readyz`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use futures::Future;
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

#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    health: Arc<Health>,
}

async fn metrics_text(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    if state.health.ready() {
        (StatusCode::OK, "ok\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "caches not synced yet\n")
    }
}

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
    let app = Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(AppState { metrics, health });
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, "metrics and health server failed");
        }
    });
    Ok((bound, task))
}
