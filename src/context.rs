//! What every reconcile is handed: the client, the event publisher, and the
//! field manager it writes under.

use std::sync::Arc;

use jiff::Timestamp;
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::{Client, Resource};
use tracing::warn;

use crate::audit::Severity;
use crate::error::{Error, Result};

use crate::audit::Publisher;
use crate::runtime::health::Health;
use crate::runtime::metrics::Metrics;

/// The field manager of every write the operator makes. Server-side apply
/// records it as the owner of the operator's fields, and the admission
/// policies recognise the operator's writes by the service account that
/// makes them, not by this name.
pub const FIELD_MANAGER: &str = "modelgate";

/// Shared by all reconciles of all controllers.
#[derive(Clone)]
pub struct Context {
    pub client: Client,
    pub events: Publisher,
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
    /// The approval controller's last writes, for reads the cache is behind on.
    pub approvals_written: Arc<crate::approval::written::Written>,
    /// Reconciles at once per controller.
    pub concurrency: u16,
    /// Retry waits of objects whose reconcile failed.
    pub backoff: Arc<crate::runtime::backoff::Backoff>,
}

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
            approvals_written: Arc::default(),
            concurrency: crate::operator::DEFAULT_CONCURRENCY,
            backoff: Arc::default(),
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
        error: &Error,
    ) -> Action {
        self.metrics.error(controller, error.metric_label());
        warn!(controller, error = %error, kind = error.metric_label(), "reconcile error");
        if error.retryable() {
            Action::requeue(self.backoff.failed(object))
        } else {
            Action::await_change()
        }
    }
}

/// Now, in whole seconds: what the API server shows, and what makes two
/// reconciles within one second decide alike.
pub fn now_seconds() -> Timestamp {
    let now = Timestamp::now();
    Timestamp::from_second(now.as_second()).unwrap_or(now)
}
