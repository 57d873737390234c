//! Pages that follow the cluster: a watch on the namespace's approvals and
//! deployments (as the person: they may list and watch both), turned into
//! server-sent events. The page's script fetches its own address again and
//! swaps the parts marked live; without the script the page still works,
//! it just waits for a reload.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::broadcast;

use super::Console;
use crate::api::{ModelApproval, ModelDeployment};
use crate::cli::Session;

/// What changed: e.g. `ModelApproval fraud-detector-2-4-0`.
pub type Change = String;

/// Watches both kinds for as long as the console runs.
pub fn spawn_watches(session: &Session, changes: broadcast::Sender<Change>) {
    let approvals: Api<ModelApproval> = Api::namespaced(session.client.clone(), &session.namespace);
    let mds: Api<ModelDeployment> = Api::namespaced(session.client.clone(), &session.namespace);
    tokio::spawn(watch(approvals, changes.clone()));
    tokio::spawn(watch(mds, changes));
}

async fn watch<K>(api: Api<K>, changes: broadcast::Sender<Change>)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let kind = K::kind(&());
    // The backoff retries a broken watch; a lasting refusal (no watch
    // right) leaves pages working, only not live.
    let mut stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    while let Some(event) = stream.next().await {
        let object = match event {
            Ok(watcher::Event::Apply(o) | watcher::Event::Delete(o)) => o,
            Ok(_) => continue,
            Err(e) => {
                tracing::debug!(error = %e, "watch of {kind} failed; retrying");
                continue;
            }
        };
        // No receivers (no page open) is normal.
        let _ = changes.send(format!("{kind} {}", object.name_any()));
    }
}

/// The event stream a page subscribes to.
pub async fn events(
    State(c): State<Console>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let receiver = c.changes.subscribe();
    let stream = futures::stream::unfold(receiver, |mut r| async move {
        let data = match r.recv().await {
            Ok(change) => change,
            // Missed some: the page fetches all its live parts anyway.
            Err(broadcast::error::RecvError::Lagged(_)) => "*".to_string(),
            Err(broadcast::error::RecvError::Closed) => return None,
        };
        Some((Ok(Event::default().event("change").data(data)), r))
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
