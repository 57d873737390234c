//! What every reconcile is handed: the client, the event publisher, and the
//! field manager it writes under.

use kube::Client;

use crate::audit::Publisher;

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
}

impl Context {
    /// `instance` names this replica in Events (the pod name in a cluster).
    pub fn new(client: Client, instance: Option<String>) -> Self {
        Context {
            events: Publisher::new(client.clone(), instance),
            client,
        }
    }
}
