//! The watches the controllers read from. ModelApprovals are watched once
//! and cached once for both controllers: with tens of thousands of
//! approvals the cache is most of the operator's memory, and a second watch
//! would double it and the API server's work.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use futures::{Future, StreamExt};
use kube::api::Api;
use kube::runtime::reflector::{self, ReflectHandle, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource};

use super::packed::CachedApproval;
use crate::api::policy::PinnedPolicy;

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

/// One copy in memory of each pinned policy among the cached approvals.
/// Every approval pins its rules into its status, and the approvals of a
/// namespace almost always pin the same ones: without sharing, each cached
/// approval held its own copy (about a fifth of a pending approval's
/// memory).
#[derive(Default)]
pub struct SharedPolicies {
    /// Copies by the policy's name and generation (equal ones share one).
    /// Weak: a policy no cached approval pins any more is freed.
    copies: HashMap<(String, Option<i64>), Vec<Weak<PinnedPolicy>>>,
    /// Shares since the last sweep of freed entries.
    since_sweep: usize,
}

/// How many shares between two sweeps of the entries of freed policies.
const SWEEP_EVERY: usize = 4096;

impl SharedPolicies {
    /// Points `approval`'s pinned policy at the shared copy of an equal
    /// one, or makes it the shared copy.
    pub fn share(&mut self, approval: &mut CachedApproval) {
        let Ok(approval) = approval.0.as_mut() else {
            return;
        };
        let Some(policy) = approval.status.as_mut().and_then(|s| s.policy.as_mut()) else {
            return;
        };
        let key = (policy.name.clone(), policy.generation);
        let copies = self.copies.entry(key).or_default();
        match copies
            .iter()
            .filter_map(Weak::upgrade)
            .find(|c| c == policy)
        {
            Some(shared) => *policy = shared,
            None => {
                copies.retain(|c| c.strong_count() > 0);
                copies.push(Arc::downgrade(policy));
            }
        }
        self.since_sweep += 1;
        if self.since_sweep >= SWEEP_EVERY {
            self.since_sweep = 0;
            self.copies.retain(|_, copies| {
                copies.retain(|c| c.strong_count() > 0);
                !copies.is_empty()
            });
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
    let mut policies = SharedPolicies::default();
    let watch = watcher(api, config)
        .default_backoff()
        .modify(move |approval| {
            slim(approval);
            policies.share(approval);
        })
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

    fn pinned(name: &str, reviewers: u32) -> CachedApproval {
        let mut policy = crate::policy::pin::pin_for_approval(None, false);
        policy.name = name.into();
        policy.gates[0].reviewers = reviewers;
        let status = crate::api::approval::ModelApprovalStatus {
            policy: Some(Arc::new(policy)),
            ..Default::default()
        };
        let mut approval = crate::api::approval::ModelApproval::new("a", serde_json::from_value(serde_json::json!({
            "model": {"name": "m", "version": "1", "uri": "s3://m/", "digest": format!("sha256:{}", "0".repeat(64))},
        })).unwrap_or_else(|e| panic!("spec: {e}")));
        approval.status = Some(status);
        kube::core::DeserializeGuard(Ok(crate::runtime::packed::PackedApproval::pack(approval)
            .unwrap_or_else(|e| panic!("packs: {e}"))))
    }

    fn policy_of(a: &CachedApproval) -> Option<&Arc<PinnedPolicy>> {
        a.0.as_ref().ok()?.status.as_ref()?.policy.as_ref()
    }

    #[test]
    fn equal_pinned_policies_share_one_copy_and_different_ones_do_not() {
        let mut shared = SharedPolicies::default();
        let mut cached: Vec<CachedApproval> = [
            ("ns/default", 1),
            ("ns/default", 1),
            ("ns/default", 2),
            ("other/default", 1),
        ]
        .into_iter()
        .map(|(name, reviewers)| pinned(name, reviewers))
        .collect();
        for a in &mut cached {
            shared.share(a);
        }
        let policies: Vec<&Arc<PinnedPolicy>> = cached.iter().filter_map(policy_of).collect();
        assert_eq!(policies.len(), 4);
        assert!(Arc::ptr_eq(policies[0], policies[1]), "equal pins share");
        assert!(
            !Arc::ptr_eq(policies[0], policies[2]),
            "another rule under the same name"
        );
        assert!(!Arc::ptr_eq(policies[0], policies[3]), "another policy");
        assert_eq!(policies[2].gates[0].reviewers, 2, "nothing is changed");
        // Once no approval holds it, the copy is freed, not kept alive.
        let weak = Arc::downgrade(policies[3]);
        cached.pop();
        assert_eq!(weak.strong_count(), 0);
    }

    #[test]
    fn sharing_frees_the_entries_of_policies_no_longer_pinned() {
        let mut shared = SharedPolicies::default();
        for i in 0..SWEEP_EVERY {
            let mut a = pinned(&format!("ns-{i}/default"), 1);
            shared.share(&mut a);
        }
        assert!(
            shared.copies.len() <= 1,
            "{} entries kept",
            shared.copies.len()
        );
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
