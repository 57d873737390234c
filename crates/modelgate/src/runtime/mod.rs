//! What runs around the controllers: metrics, health endpoints and leader
//! election.

/// The items of `Resource` for a cached form of kind `$kind` that keeps
/// its metadata in a `metadata` field: watched and stored as that kind.
/// Defined before the modules that use it, so that they see it.
macro_rules! resource_as {
    ($kind:ty) => {
        type DynamicType = ();
        type Scope = <$kind as kube::Resource>::Scope;

        fn kind(dt: &()) -> std::borrow::Cow<'_, str> {
            <$kind as kube::Resource>::kind(dt)
        }
        fn group(dt: &()) -> std::borrow::Cow<'_, str> {
            <$kind as kube::Resource>::group(dt)
        }
        fn version(dt: &()) -> std::borrow::Cow<'_, str> {
            <$kind as kube::Resource>::version(dt)
        }
        fn plural(dt: &()) -> std::borrow::Cow<'_, str> {
            <$kind as kube::Resource>::plural(dt)
        }
        fn meta(&self) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            &self.metadata
        }
        fn meta_mut(&mut self) -> &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            &mut self.metadata
        }
    };
}

pub mod backoff;
pub mod codec;
pub mod health;
pub mod leader;
pub mod metrics;
pub mod packed;
pub mod packed_object;
pub mod watches;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use kube::Resource;
use kube::core::DeserializeGuard;
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use tokio::task::JoinHandle;

use health::Health;
use metrics::{CacheLabels, PhaseLabels};

/// Which namespaces the operator watches: every one, or only one (an
/// operator scoped to a namespace, e.g. where one team runs its own, or
/// two standing for two clusters in the fleet's tests).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scope(pub Option<String>);

impl Scope {
    /// The API of a namespaced kind over the scope.
    pub fn api<K>(&self, client: kube::Client) -> kube::Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        match &self.0 {
            Some(namespace) => kube::Api::namespaced(client, namespace),
            None => kube::Api::all(client),
        }
    }
}

/// Drives a controller's result stream to its end. Results are dropped:
/// the error policy has logged and counted every failure already.
pub async fn drive<S: futures::Stream>(controller: S) {
    use futures::StreamExt;
    controller.for_each(|_| futures::future::ready(())).await;
}

/// Drives a controller's result stream to its end, then stops the phase
/// counter that went with it.
pub async fn drive_counting<S: futures::Stream>(controller: S, observer: JoinHandle<()>) {
    drive(controller).await;
    observer.abort();
}

/// A controller's settings: `concurrency` reconciles at once.
pub fn controller_config(concurrency: u16) -> kube::runtime::controller::Config {
    kube::runtime::controller::Config::default().concurrency(concurrency)
}

/// How often the per-phase gauges are recounted from the watch caches.
const GAUGE_REFRESH: Duration = Duration::from_secs(5);

/// Keeps the per-phase gauges of `family` counted from the objects in
/// `store` (by `phase_of`, over `phases`) until aborted. Malformed objects
/// count nowhere. `also` is handed the same snapshot each round, for gauges
/// of one kind's own (the approvals' next expiry).
pub fn count_phases<K>(
    store: Store<DeserializeGuard<K>>,
    family: Family<PhaseLabels, Gauge>,
    phases: Vec<&'static str>,
    phase_of: fn(&K) -> Option<&'static str>,
    also: impl Fn(&[Arc<DeserializeGuard<K>>]) + Send + 'static,
) -> JoinHandle<()>
where
    K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    tokio::spawn(async move {
        loop {
            let snapshot = store.state();
            let observed = snapshot
                .iter()
                .map(|o| o.0.as_ref().ok().and_then(phase_of));
            metrics::set_phase_counts(&family, &phases, observed);
            also(&snapshot);
            tokio::time::sleep(GAUGE_REFRESH).await;
        }
    })
}

/// Tells the health endpoint when all of the operator's watch streams have
/// finished their first list. (Waiting on `Store::wait_until_ready` from a
/// second task would steal the controller's own wake-up, so readiness is
/// read from the streams' `InitDone` events instead.)
///
/// It counts the streams it hands a marker to, so a new watch cannot be
/// forgotten in a literal count.
pub struct Synced {
    health: Arc<Health>,
    /// One 0/1 gauge per cache, so an alert can name the one that is stuck.
    gauges: Family<CacheLabels, Gauge>,
    /// Markers handed out.
    streams: AtomicUsize,
    /// Markers whose stream has not finished its first list yet.
    pending: AtomicUsize,
}

impl Synced {
    /// A tracker with no streams yet; each `marker` adds one.
    pub fn new(health: Arc<Health>, gauges: Family<CacheLabels, Gauge>) -> Arc<Synced> {
        Arc::new(Synced {
            health,
            gauges,
            streams: AtomicUsize::new(0),
            pending: AtomicUsize::new(0),
        })
    }

    /// Whether every stream handed a marker has finished its first list.
    pub fn is_done(&self) -> bool {
        self.streams.load(Ordering::Acquire) > 0 && self.pending.load(Ordering::Acquire) == 0
    }

    /// An inspector for one stream's events (`cache` names it in metrics);
    /// counts its first `InitDone`. Hand out every marker before driving any
    /// stream.
    pub fn marker<K>(
        self: &Arc<Self>,
        cache: &'static str,
    ) -> impl FnMut(&watcher::Event<K>) + Send + 'static + use<K> {
        self.streams.fetch_add(1, Ordering::AcqRel);
        self.pending.fetch_add(1, Ordering::AcqRel);
        let gauge = self.gauges.get_or_create(&CacheLabels { cache }).clone();
        gauge.set(0);
        let synced = self.clone();
        let mut seen = false;
        move |event| {
            if !seen && matches!(event, watcher::Event::InitDone) {
                seen = true;
                gauge.set(1);
                if synced.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
                    synced.health.caches_synced();
                    tracing::info!("watch caches synced");
                }
            }
        }
    }
}
