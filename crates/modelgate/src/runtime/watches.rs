//! The watches the controllers read from. ModelApprovals are watched once
//! and cached once for both controllers: with tens of thousands of
//! approvals the cache is most of the operator's memory, and a second watch
//! would double it and the API server's work.

use futures::{Future, StreamExt};
use kube::api::Api;
use kube::core::DeserializeGuard;
use kube::runtime::reflector::{self, ReflectHandle, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource};

use crate::api::approval::ModelApproval;

/// An approval as cached: a malformed one is kept (as its error) so that
/// its reconcile can say what is wrong instead of the watch failing.
pub type CachedApproval = DeserializeGuard<ModelApproval>;

/// How many changed approvals may wait for the slower controller before
/// the watch pauses for it.
const SUBSCRIBER_BUFFER: usize = 1024;

/// The Kubernetes version from which a cluster streams the initial list of
/// a watch (WatchList, on by default again from 1.34; 1.33 turned it off).
const STREAMING_LISTS_FROM: (u32, u32) = (1, 34);

/// The one approval cache and a change feed for each controller.
pub struct Approvals {
    pub store: Store<CachedApproval>,
    /// Triggers for the approval controller.
    pub for_approvals: ReflectHandle<CachedApproval>,
    /// Triggers for the deployment controller (through its index).
    pub for_deployments: ReflectHandle<CachedApproval>,
}

/// How every watch of the operator makes its first list. Streaming the list
/// as watch events keeps the operator from holding the whole list response
/// and the objects built from it at once; older servers (or one with the
/// WatchList feature off) get a list served from the API server's cache.
pub async fn config(client: &Client) -> watcher::Config {
    let streaming = match client.apiserver_version().await {
        Ok(info) => streams_first_lists(&info.major, &info.minor),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the API server's version; watches will list");
            false
        }
    };
    tracing::info!(streaming, "initial lists of watches");
    if streaming {
        watcher::Config::default().streaming_lists()
    } else {
        watcher::Config::default().any_semantic()
    }
}

/// Whether a server of this version streams first lists by default. Minor
/// versions may carry a suffix ("34+" on some distributions); anything
/// unreadable counts as too old, which only costs a plain list.
fn streams_first_lists(major: &str, minor: &str) -> bool {
    let number = |s: &str| {
        s.trim_end_matches(|c: char| !c.is_ascii_digit())
            .parse::<u32>()
            .unwrap_or(0)
    };
    (number(major), number(minor)) >= STREAMING_LISTS_FROM
}

/// Drops what the operator never reads from a cached object: managed fields
/// and kubectl's last-applied copy, which together are often larger than
/// the object itself.
pub fn slim<K: Resource>(object: &mut K) {
    let meta = object.meta_mut();
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
        if annotations.is_empty() {
            meta.annotations = None;
        }
    }
}

/// Starts the one approval watch. The returned future drives it until
/// `shutdown`; `inspect` sees every event (for cache-sync tracking). None
/// only if the store could not hand out subscriptions, which a shared store
/// always does.
pub fn approvals(
    (client, scope): (Client, &super::Scope),
    config: watcher::Config,
    mut inspect: impl FnMut(&watcher::Event<CachedApproval>) + Send + 'static,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Option<(Approvals, impl Future<Output = ()> + Send + 'static)> {
    let (store, writer) = reflector::store_shared(SUBSCRIBER_BUFFER);
    let for_approvals = writer.subscribe()?;
    let for_deployments = writer.subscribe()?;
    let api: Api<CachedApproval> = scope.api(client);
    let watch = watcher(api, config)
        .default_backoff()
        .modify(slim)
        .reflect_shared(writer)
        .for_each(move |event| {
            match &event {
                Ok(event) => inspect(event),
                // The watch retries by itself (with backoff); say why.
                Err(e) => tracing::warn!(error = %e, "approval watch failed; retrying"),
            }
            futures::future::ready(())
        });
    let driven = async move {
        tokio::select! {
            _ = watch => {},
            _ = shutdown => {},
        }
    };
    Some((
        Approvals {
            store,
            for_approvals,
            for_deployments,
        },
        driven,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_lists_stream_from_1_34_only() {
        assert!(streams_first_lists("1", "34"));
        assert!(streams_first_lists("1", "37+"));
        assert!(streams_first_lists("2", "0"));
        // 1.33 shipped with WatchList off; older ones lack it.
        assert!(!streams_first_lists("1", "33"));
        assert!(!streams_first_lists("1", "30+"));
        assert!(!streams_first_lists("", ""));
        assert!(!streams_first_lists("one", "x"));
    }

    #[test]
    fn slim_drops_what_is_never_read() {
        use k8s_openapi::api::core::v1::ConfigMap;
        let mut cm: ConfigMap = serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": "a",
                "managedFields": [{"manager": "kubectl", "operation": "Apply"}],
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"},
                "labels": {"keep": "me"},
            },
        }))
        .unwrap_or_default();
        slim(&mut cm);
        assert_eq!(cm.metadata.managed_fields, None);
        assert_eq!(cm.metadata.annotations, None);
        assert_eq!(
            cm.metadata
                .labels
                .unwrap_or_default()
                .get("keep")
                .map(String::as_str),
            Some("me")
        );
        assert_eq!(cm.metadata.name.as_deref(), Some("a"));
    }
}
