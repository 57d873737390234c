//! The words the operator writes under: the field managers of its
//! server-side applies and the severity of its Events. A leaf module: it
//! imports nothing of this crate, so anything may depend on it.

/// Where the plain manifests and the chart's defaults install modelgate.
pub const DEFAULT_NAMESPACE: &str = "modelgate-system";

/// The field manager of every write the operator makes. Server-side apply
/// records it as the owner of the operator's fields, and the admission
/// policies recognise the operator's writes by the service account that
/// makes them, not by this name.
pub const FIELD_MANAGER: &str = "modelgate";

/// The field manager that scales a revoked model to zero. It is separate
/// from [`FIELD_MANAGER`] so that the operator's main apply keeps owning the
/// template untouched while this one claims only `spec.replicas`.
pub const REVOKE_FIELD_MANAGER: &str = "modelgate-revoke";

/// The field manager of the `modelgate.io/in-use` finalizer on approvals,
/// apart from the status writes.
pub const IN_USE_FIELD_MANAGER: &str = "modelgate-in-use";

/// The label that makes a namespace governed: admission holds its pods,
/// and its ModelDeployments can be sealed.
pub const GOVERNED_LABEL: &str = "modelgate.io/governed";

/// The RuntimeCatalog the operator and admission read (the chart renders it
/// from its `runtimes` and `egress` values).
pub const RUNTIME_CATALOG: &str = "modelgate";

/// Whether an Event is good news or something a person should look at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Normal,
    Warning,
}

impl Severity {
    /// The Event `type` the API expects.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Normal => "Normal",
            Severity::Warning => "Warning",
        }
    }
}
