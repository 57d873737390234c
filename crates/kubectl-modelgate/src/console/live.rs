//! Pages that follow the cluster: a watch on the namespace's approvals and
//! deployments (as the person: they may list and watch both, and each open
//! page watches with its own person's rights), turned into server-sent
//! events. The page's script fetches its own address again and
//! swaps the parts marked live; without the script the page still works,
//! it just waits for a reload.

use std::convert::Infallible;
use std::time::Duration;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;

use super::person::Person;
use modelgate::api::{ModelApproval, ModelDeployment};

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

/// The most live pages one person has open at once: each is a watch of
/// its own on the API server, and a person's tabs should not be able to
/// wear the console (or the API server) down.
const MAX_LIVE_PAGES: usize = 8;

/// One of a person's live pages, counted while its stream lasts.
struct LivePage(Arc<AtomicUsize>);

impl LivePage {
    fn open(count: &Arc<AtomicUsize>) -> Option<LivePage> {
        count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_LIVE_PAGES).then_some(n + 1)
            })
            .ok()
            .map(|_| LivePage(count.clone()))
    }
}

impl Drop for LivePage {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The event stream a page subscribes to: the person's own watch of the
/// namespace's approvals and deployments, ended when the page goes or the
/// person's session does (its token would no longer list them anyway).
/// Past the live pages a person may have, a page is told 429 and works on
/// without following the cluster.
pub async fn events(p: Person) -> Response {
    let Some(page) = LivePage::open(&p.live_pages) else {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            "too many pages of this console follow the cluster at once: close some",
        )
            .into_response();
    };
    let approvals: Api<ModelApproval> =
        Api::namespaced(p.session.client.clone(), &p.session.namespace);
    let mds: Api<ModelDeployment> = Api::namespaced(p.session.client.clone(), &p.session.namespace);
    let ends = p.ends;
    let ended = async move {
        match ends {
            // Past its end already: zero, the stream ends at once.
            Some(end) => {
                let left = end.duration_since(jiff::Timestamp::now());
                tokio::time::sleep(Duration::try_from(left).unwrap_or_default()).await;
            }
            // The local console's caller: for as long as the page is open.
            None => futures::future::pending::<()>().await,
        }
    };
    let stream = futures::stream::select(changes(approvals), changes(mds))
        .take_until(ended)
        .map(move |change| {
            // The count drops when the stream does.
            let _open = &page;
            Ok::<_, Infallible>(Event::default().event("change").data(change))
        });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}
