//! Pages that follow the cluster: a watch on the namespace's approvals and
//! deployments (as the person: they may list and watch both, and each open
//! page watches with its own person's rights), turned into server-sent
//! events. The page's script fetches its own address again and
//! swaps the parts marked live; without the script the page still works,
//! it just waits for a reload.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;

use super::Console;
use super::person::Person;
use modelgate::api::{approval::ModelApproval, deployment::ModelDeployment};

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

/// The most live pages one person has open at once by default, across
/// all their sessions: each is a watch of its own on the API server, and a
/// person's tabs should not be able to wear the console (or the API
/// server) down.
pub const MAX_LIVE_PAGES: usize = 8;

/// How many live pages each person has open, by the name the API server
/// gave them.
pub struct LivePages {
    max: usize,
    open: Mutex<HashMap<String, usize>>,
}

impl LivePages {
    pub fn new(max: usize) -> LivePages {
        LivePages {
            max,
            open: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        // Every change is one counter's step: a poisoned map is still whole.
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A place for one more live page of `who`, if they have one left.
    fn open(self: &Arc<Self>, who: &str) -> Option<LivePage> {
        let mut open = self.lock();
        let n = open.entry(who.to_string()).or_default();
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(LivePage {
            pages: self.clone(),
            who: who.to_string(),
        })
    }
}

/// One of a person's live pages, counted while its stream lasts.
struct LivePage {
    pages: Arc<LivePages>,
    who: String,
}

impl Drop for LivePage {
    fn drop(&mut self) {
        let mut open = self.pages.lock();
        if let Some(n) = open.get_mut(&self.who) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.who);
            }
        }
    }
}

/// Resolves when the person's session ends: its end (the ID token's, or
/// the session's longest) passes, or it leaves the store (signed out,
/// replaced by a newer sign-in of theirs).
async fn session_over(p: &Person) {
    let ends = p.ends;
    let timer = async move {
        match ends {
            // Past its end already: zero, at once.
            Some(end) => {
                let left = end.duration_since(jiff::Timestamp::now());
                tokio::time::sleep(Duration::try_from(left).unwrap_or_default()).await;
            }
            // The local console's caller: for as long as the page is open.
            None => futures::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = timer => {}
        () = p.ended.clone().wait() => {}
    }
}

/// The event stream a page subscribes to: the person's own watch of the
/// namespace's approvals and deployments, ended when the page goes or the
/// person's session does (the stream closes; its token would no longer
/// list them anyway). Past the live pages a person may have, a page is
/// told 429 and works on without following the cluster.
pub async fn events(State(c): State<Console>, p: Person) -> Response {
    let Some(page) = c.live.open(&p.me.user) else {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "{} pages of yours already follow the cluster, the most one person may have: this page works on and shows changes when reloaded; close other pages of this console for it to follow the cluster again",
                c.live.max
            ),
        )
            .into_response();
    };
    let approvals: Api<ModelApproval> =
        Api::namespaced(p.session.client.clone(), &p.session.namespace);
    let mds: Api<ModelDeployment> = Api::namespaced(p.session.client.clone(), &p.session.namespace);
    let over = async move { session_over(&p).await };
    let changes =
        Box::pin(futures::stream::select(changes(approvals), changes(mds)).take_until(over));
    // Once the changes end (the session did), the watches and the page's
    // place are let go at once, not when the connection is.
    let stream = futures::stream::unfold((changes, page), |(mut changes, page)| async move {
        let change = changes.next().await?;
        let event = Event::default().event("change").data(change);
        Some((Ok::<_, Infallible>(event), (changes, page)))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}
