//! Runs the operator: the metrics and health endpoints, leader election,
//! and every controller until shutdown (or until the lease is lost).

use std::net::SocketAddr;
use std::sync::Arc;

use futures::{Future, FutureExt};
use kube::Client;
use tracing::{error, info};

use crate::context::Context;
use crate::runtime::health::{self, Health};
use crate::runtime::leader::{Election, LeaderElection};
use crate::runtime::metrics::Metrics;
use crate::runtime::{Synced, watches};

/// How the operator runs.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// This replica's name in Events, logs and the lease (the pod name).
    pub instance: Option<String>,
    /// Leader election; None runs the controllers at once (one replica).
    pub leader_election: Option<LeaderElection>,
    /// Where to serve /metrics, /healthz and /readyz; None serves nothing.
    pub listen: Option<SocketAddr>,
    /// Reconciles run at once per controller; 0 means the default.
    pub concurrency: u16,
    /// Where the signing key is kept; None writes no ApprovalRecords.
    pub records: Option<crate::records::key::KeyPlace>,
    /// How model registries are reached.
    pub registry: crate::artifact::registry::RegistryOptions,
    /// How often imported approvals are read again from the registry.
    pub import_resync: std::time::Duration,
    /// The namespaces watched: all, or one.
    pub scope: crate::runtime::Scope,
}

/// Why the operator stopped other than by being asked to.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot serve metrics and health: {0}")]
    Listen(#[from] std::io::Error),
    #[error("leader election failed: {0}")]
    Election(#[from] kube_lease_manager::LeaseManagerError),
    #[error("lost the leader lease; exiting so that a fresh replica can stand by")]
    LostLease,
    #[error("cannot reach model registries: {0}")]
    Registry(String),
}

/// A handle on a running operator, for tests and the binary.
pub struct Running {
    /// Where /metrics, /healthz and /readyz are served, when they are.
    pub listening: Option<SocketAddr>,
    pub metrics: Arc<Metrics>,
    pub done: tokio::task::JoinHandle<Result<(), RunError>>,
}

/// Starts the operator and returns once its endpoints are bound.
pub async fn start(
    client: Client,
    options: Options,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Running, RunError> {
    let metrics = Arc::new(Metrics::default());
    let health = Arc::new(Health::default());
    let shutdown = shutdown.boxed().shared();
    let listening = match options.listen {
        Some(addr) => {
            let (bound, _task) =
                health::serve(addr, metrics.clone(), health.clone(), shutdown.clone()).await?;
            info!(address = %bound, "serving /metrics, /healthz and /readyz");
            Some(bound)
        }
        None => None,
    };
    let mut ctx = Context::new(
        client.clone(),
        options.instance.clone(),
        metrics.clone(),
        health.clone(),
    );
    // Context::new starts from DEFAULT_CONCURRENCY; 0 keeps it.
    ctx.registry = Some(Arc::new(
        crate::artifact::registry::Registry::new(
            &options.registry,
            (
                ctx.metrics.registry_requests.clone(),
                ctx.metrics.registry_pushes.clone(),
            ),
        )
        .map_err(RunError::Registry)?,
    ));
    ctx.import_resync = options.import_resync;
    ctx.scope = options.scope.clone();
    if options.concurrency != 0 {
        ctx.concurrency = options.concurrency;
    }
    let ctx = Arc::new(ctx);
    let records = options.records.clone();
    let done = tokio::spawn(async move {
        match options.leader_election {
            None => {
                // Without election this replica is the one that writes:
                // alerts on "nobody leads" must not fire for it.
                ctx.metrics.leader.set(1);
                drain(controllers(ctx, records, shutdown).await).await;
                Ok(())
            }
            Some(config) => lead(client, ctx, &config, records, shutdown).await,
        }
    });
    Ok(Running {
        listening,
        metrics,
        done,
    })
}

/// Runs the operator until `shutdown` (the binary's entry point).
pub async fn run(
    client: Client,
    options: Options,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let running = start(client, options, shutdown).await?;
    match running.done.await {
        Ok(result) => result,
        Err(e) => {
            error!(error = %e, "operator task failed");
            Ok(())
        }
    }
}

/// Writes the record checkpoint heads noted, before the operator lets go
/// of its lease or exits.
async fn drain(recorder: Option<Arc<crate::records::writer::Recorder>>) {
    if let Some(recorder) = recorder {
        recorder.drain_checkpoints().await;
    }
}

/// Runs every controller, and the approval watch they share, until
/// `shutdown`; the record writer, if records are on.
async fn controllers(
    ctx: Arc<Context>,
    records: Option<crate::records::key::KeyPlace>,
    shutdown: impl Future<Output = ()> + Clone + Send + Sync + 'static,
) -> Option<Arc<crate::records::writer::Recorder>> {
    let home = home(&ctx, records, shutdown.clone()).await?;
    let config = watches::config(&ctx.client).await;
    // Every cache must fill before the operator is ready: the approvals
    // (shared by both controllers) here, the ModelDeployments and the
    // Deployments in the deployment controller; each takes a marker.
    let synced = Synced::new(ctx.health.clone(), ctx.metrics.cache_synced.clone());
    let behind = Behind::default();
    let inspect = approval_inspector(&synced, behind.clone());
    let Some((approvals, watch)) = watches::approvals(
        (ctx.client.clone(), &ctx.scope),
        config.clone(),
        inspect,
        shutdown.clone(),
    ) else {
        error!("cannot subscribe to the approval cache; no controller started");
        return None;
    };
    let (policies, policy_controller) = crate::policy::controller::run(
        ctx.clone(),
        config.clone(),
        synced.clone(),
        shutdown.clone(),
    );
    let recorder = home.recorder.clone();
    let (approval_inputs, deployment_inputs) =
        inputs(approvals, behind, (home, policies), config, synced);
    futures::join!(
        watch,
        policy_controller,
        crate::approval::controller::run(ctx.clone(), approval_inputs, shutdown.clone()),
        crate::deployment::controller::run(ctx, deployment_inputs, shutdown),
    );
    recorder
}

/// What the operator knows of approvals that the approval cache has not
/// caught up with: the approval controller's last-write overlay, and the
/// approvals it handed to the deployment controller. The approval watch
/// ends their entries.
#[derive(Clone, Default)]
struct Behind {
    written: Arc<crate::approval::written::Written>,
    handed: Arc<crate::deployment::handoff::Handed>,
}

/// What the two controllers start with: the approval cache they share,
/// what it is behind on, and the deployment index with the hand-off
/// between them.
fn inputs(
    approvals: watches::Approvals,
    behind: Behind,
    (home, policies): (
        Home,
        kube::runtime::reflector::Store<crate::policy::controller::CachedPolicy>,
    ),
    config: kube::runtime::watcher::Config,
    synced: Arc<Synced>,
) -> (
    crate::approval::controller::Inputs,
    crate::deployment::controller::Inputs,
) {
    // Approval → the deployments that use it: kept by the deployment
    // controller, read by both (the approval controller for the in-use
    // finalizer, told through `usage` when an approval's use changes, and
    // for the deployments it hands a release or a withdrawal to).
    let (index, usage) = crate::deployment::index::ApprovalIndex::reporting();
    let (handoff, received) =
        crate::deployment::handoff::Handoff::channel(index.clone(), behind.handed.clone());
    let approval_inputs = crate::approval::controller::Inputs {
        store: approvals.store.clone(),
        changes: approvals.for_approvals,
        index: index.clone(),
        usage,
        handoff,
        written: behind.written,
        recorder: home.recorder,
        policies,
        home: home.namespace,
        config: config.clone(),
        synced: synced.clone(),
    };
    let deployment_inputs = crate::deployment::controller::Inputs {
        config,
        synced,
        approvals: approvals.store,
        approval_changes: approvals.for_deployments,
        index,
        handed: behind.handed,
        handoff: received,
    };
    (approval_inputs, deployment_inputs)
}

/// What sees every event of the approval watch, after the cache took it:
/// the cache-sync marker, and what the cache was behind on (told what was
/// observed).
fn approval_inspector(
    synced: &Arc<Synced>,
    behind: Behind,
) -> impl FnMut(&kube::runtime::watcher::Event<crate::runtime::packed::CachedApproval>) + Send + 'static
{
    let mut mark_synced = synced.marker("approvals");
    move |event| {
        mark_synced(event);
        behind.handed.observed(event);
        behind.written.observed_event(event);
    }
}

async fn lead(
    client: Client,
    ctx: Arc<Context>,
    config: &LeaderElection,
    records: Option<crate::records::key::KeyPlace>,
    shutdown: futures::future::Shared<futures::future::BoxFuture<'static, ()>>,
) -> Result<(), RunError> {
    let mut election = Election::start(client, config).await?;
    ctx.health.set_standby(true);
    info!(lease = %config.lease_name, identity = %config.identity, "standing by for the leader lease");
    tokio::select! {
        acquired = election.acquired() => {
            if !acquired {
                return Err(RunError::LostLease);
            }
        }
        _ = shutdown.clone() => {
            election.release().await;
            return Ok(());
        }
    }
    ctx.health.set_standby(false);
    ctx.metrics.leader.set(1);
    info!(identity = %config.identity, "acquired the leader lease; starting controllers");

    // The controllers stop on shutdown or when the lease is lost, whichever
    // comes first; in-flight reconciles finish either way.
    let (lost_tx, lost_rx) = tokio::sync::oneshot::channel::<()>();
    let stop = {
        let shutdown = shutdown.clone();
        async move {
            tokio::select! {
                _ = shutdown => {},
                _ = lost_rx => {},
            }
        }
        .boxed()
        .shared()
    };
    let mut watch = election.is_leader.clone();
    let watcher = tokio::spawn(async move {
        let _ = watch.wait_for(|leader| !*leader).await;
        let _ = lost_tx.send(());
    });
    let recorder = controllers(ctx.clone(), records, stop).await;
    let lost = !*election.is_leader.borrow();
    // After losing the lease, the heads noted are the new leader's to take
    // back from the records.
    if !lost {
        drain(recorder).await;
    }
    ctx.metrics.leader.set(0);
    watcher.abort();
    election.release().await;
    if lost {
        error!("lost the leader lease");
        return Err(RunError::LostLease);
    }
    Ok(())
}

/// The operator's own namespace and what it keeps there.
struct Home {
    /// Where the cluster-wide default policy and the signing key live.
    namespace: String,
    /// The record writer, when records are on.
    recorder: Option<Arc<crate::records::writer::Recorder>>,
}

/// The operator's home; None when shut down before the signing key could
/// be loaded.
async fn home(
    ctx: &Context,
    records: Option<crate::records::key::KeyPlace>,
    shutdown: impl Future<Output = ()>,
) -> Option<Home> {
    let namespace = records
        .as_ref()
        .map(|p| p.namespace.clone())
        .unwrap_or_else(|| crate::vocabulary::DEFAULT_NAMESPACE.to_string());
    let recorder = match records {
        Some(place) => Some(Arc::new(
            recorder(&ctx.client, &place, shutdown)
                .await?
                .counting_checkpoints(ctx.metrics.checkpoint_writes.clone()),
        )),
        None => None,
    };
    Some(Home {
        namespace,
        recorder,
    })
}

/// The record writer, once its signing key is loaded (or made). Loading is
/// retried with a growing pause, since no approval may change phase without
/// its record; None when shut down first.
async fn recorder(
    client: &Client,
    place: &crate::records::key::KeyPlace,
    shutdown: impl Future<Output = ()>,
) -> Option<crate::records::writer::Recorder> {
    let mut shutdown = std::pin::pin!(shutdown);
    let mut pause = std::time::Duration::from_secs(1);
    loop {
        match crate::records::key::load(client, place).await {
            Ok(signer) => return Some(crate::records::writer::Recorder::new(signer)),
            Err(e) => {
                error!(error = %e, secret = %place.secret, namespace = %place.namespace, "cannot load the signing key; no controller runs until it can")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = &mut shutdown => return None,
        }
        pause = (pause * 2).min(std::time::Duration::from_secs(60));
    }
}
