//! What every reconcile is handed: the client, the event publisher, and the
//! field manager it writes under.

use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, Patch, PatchParams};
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::{Client, Resource};
use tracing::warn;

use crate::error::{Error, ReconcileError, Result, Step};
use crate::transition::Transition;
use crate::vocabulary::Severity;

use crate::events::Publisher;
use crate::runtime::health::Health;
use crate::runtime::metrics::{ControllerLabels, Metrics};

use crate::vocabulary::FIELD_MANAGER;

/// Reconciles at once per controller unless told otherwise: enough to keep
/// the API server busy, few enough not to flood it on a cold start with
/// thousands of objects (unbounded, 10,000 reconciles at once overran the
/// API server's in-flight limit and stalled in retries).
pub const DEFAULT_CONCURRENCY: u16 = 16;

/// Shared by all reconciles of all controllers.
#[derive(Clone)]
pub struct Context {
    pub client: Client,
    pub events: Publisher,
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
    /// Reconciles at once per controller.
    pub concurrency: u16,
    /// Retry waits of objects whose reconcile failed.
    pub backoff: Arc<crate::runtime::backoff::Backoff>,
    /// Where OCI models are looked up; None answers every look-up with
    /// "no registry client".
    pub registry: Option<Arc<crate::artifact::registry::Registry>>,
    /// How often an imported approval is read again from its registry.
    pub import_resync: std::time::Duration,
    /// The one namespace watched, when the operator is scoped to one.
    pub scope: crate::runtime::Scope,
}

/// How often an imported approval is read again, unless configured.
pub const DEFAULT_IMPORT_RESYNC: std::time::Duration = std::time::Duration::from_secs(60);

impl Context {
    /// `instance` names this replica in Events (the pod name in a cluster).
    pub fn new(
        client: Client,
        instance: Option<String>,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
    ) -> Self {
        Context {
            events: Publisher::new(client.clone(), instance),
            client,
            metrics,
            health,
            concurrency: DEFAULT_CONCURRENCY,
            backoff: Arc::default(),
            registry: None,
            import_resync: DEFAULT_IMPORT_RESYNC,
            scope: crate::runtime::Scope::default(),
        }
    }
}

impl Context {
    /// The object of a guarded read. One that cannot be read as our type
    /// gets a Warning Event saying why, and an error that parks it until it
    /// changes: one malformed object must not stall the others.
    pub async fn readable<'a, K>(&self, guarded: &'a DeserializeGuard<K>) -> Result<&'a K>
    where
        K: Resource<DynamicType = ()>,
    {
        match &guarded.0 {
            Ok(object) => Ok(object),
            Err(invalid) => {
                let note = format!(
                    "modelgate cannot read this {}: {}",
                    K::kind(&()),
                    invalid.error
                );
                if let Err(e) = self
                    .events
                    .publish(
                        &guarded.object_ref(&()),
                        Severity::Warning,
                        "InvalidObject",
                        "Read",
                        &note,
                    )
                    .await
                {
                    warn!(error = %e, "could not publish event");
                }
                Err(Error::Invalid(invalid.error.clone()))
            }
        }
    }
}

impl Context {
    /// After a reconcile of `object` succeeded: its retry wait starts over.
    pub fn succeeded<K: Resource>(&self, object: &K) {
        self.backoff.succeeded(object);
    }

    /// What to do after a reconcile of `object` by `controller` failed:
    /// count and log it, then retry after the object's backoff, or, for an
    /// error retrying cannot help, wait for the object to change.
    pub fn after_error<K: Resource>(
        &self,
        controller: &'static str,
        object: &K,
        error: &ReconcileError,
    ) -> Action {
        self.metrics.error(controller, error);
        warn!(controller, error = %error, step = error.step().as_str(), kind = error.cause().metric_label(), "reconcile error");
        if error.retryable() {
            Action::requeue(self.backoff.failed(object))
        } else {
            Action::await_change()
        }
    }
}

impl Context {
    /// Announces `transitions` of the object `regarding` as Events, each
    /// with its subject as the action. They are sent at once rather than
    /// one after another: under load each one is a slow round trip, and the
    /// next reconcile of the object waits for this one to end. A failed one
    /// is logged and counted (step `event`) but fails nothing: the status
    /// is the durable record, and it is already written.
    pub async fn announce(
        &self,
        controller: &'static str,
        regarding: &ObjectReference,
        transitions: &[Transition],
    ) {
        let published = transitions.iter().map(|t| async move {
            let result = self
                .events
                .publish(regarding, t.severity, &t.reason, &t.subject, &t.message)
                .await;
            (t, result)
        });
        for (t, result) in futures::future::join_all(published).await {
            if let Err(e) = result {
                let error = ReconcileError::at(Step::Event, e);
                self.metrics.error(controller, &error);
                warn!(controller, error = %error, reason = %t.reason, "could not publish event");
            }
        }
    }
}

impl Context {
    /// Server-side applies `status` to `name` in `namespace` as the
    /// operator, counts the write for `controller`, and returns the object
    /// as the API server answered. One helper for both controllers.
    ///
    /// `force`: the status fields the operator writes are its alone (the
    /// admission policies refuse them to anyone else), so a stray owner is
    /// overruled.
    pub async fn apply_status<K>(
        &self,
        controller: &'static str,
        namespace: &str,
        name: &str,
        status: &impl serde::Serialize,
    ) -> Result<K>
    where
        K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), namespace);
        let patch = serde_json::json!({
            "apiVersion": K::api_version(&()),
            "kind": K::kind(&()),
            "status": status,
        });
        let written = api
            .patch_status(
                name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await?;
        self.metrics
            .status_writes
            .get_or_create(&ControllerLabels { controller })
            .inc();
        Ok(written)
    }
}

/// Now, in whole seconds: what the API server shows, and what makes two
/// reconciles within one second decide alike.
pub fn now_seconds() -> Timestamp {
    crate::api::condition::whole_seconds(Timestamp::now())
}
