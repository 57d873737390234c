//! Pages that follow the cluster: a watch on the namespace's approvals and
//! deployments (as the person: they may list and watch both, and each open
//! page watches with its own person's rights), turned into server-sent
//! events. The page's script fetches its own address again and
//! swaps the parts marked live; without the script the page still works,
//! it just waits for a reload.

use std::convert::Infallible;
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;

use super::person::Person;
use crate::api::{ModelApproval, ModelDeployment};

/// What changed, e.g. `ModelApproval fraud-detector-2-4-0`, for as long as
/// the page listens. The backoff retries a broken watch; a lasting refusal
/// (no watch right) leaves pages working, only not live.
fn changes<K>(api: Api<K>) -> impl Stream<Item = String> + Send
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let kind = K::kind(&());
    watcher(api, watcher::Config::default())
        .default_backoff()
        .filter_map(move |event| {
            let change = match event {
                Ok(watcher::Event::Apply(o) | watcher::Event::Delete(o)) => {
                    Some(format!("{kind} {}", o.name_any()))
                }
                // The watch starts after the page was drawn: once it has
                // listed, the page looks again, so that a change in between
                // is not missed.
                Ok(watcher::Event::InitDone) => Some(format!("{kind} *")),
                Ok(_) => None,
                Err(e) => {
                    tracing::debug!(error = %e, "watch of {kind} failed; retrying");
                    None
                }
            };
            futures::future::ready(change)
        })
}

/// The event stream a page subscribes to: the person's own watch of the
/// namespace's approvals and deployments, ended when the page goes.
pub async fn events(p: Person) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let approvals: Api<ModelApproval> =
        Api::namespaced(p.session.client.clone(), &p.session.namespace);
    let mds: Api<ModelDeployment> = Api::namespaced(p.session.client.clone(), &p.session.namespace);
    let stream = futures::stream::select(changes(approvals), changes(mds))
        .map(|change| Ok(Event::default().event("change").data(change)));
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
