//! The errors a reconcile can end with: why (`Error`, with a fixed metric
//! label) and at which step (`ReconcileError`, one variant per step), so a
//! dashboard can say which step of which controller fails.

/// Why something did not work.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused or failed a request; usually transient.
    #[error("kubernetes API request failed: {0}")]
    Kube(#[from] kube::Error),
    /// The object could not be read as our type; it waits for a fix.
    #[error("object cannot be read: {0}")]
    Invalid(String),
    /// An object without the metadata every stored object has.
    #[error("object has no {0}")]
    MissingMetadata(&'static str),
    /// Something the reconcile needs cannot be read now (a policy that
    /// applies is malformed); retried until it can.
    #[error("{0}")]
    Unavailable(String),
    /// A patch could not be built from our own types.
    #[error("cannot serialise a patch: {0}")]
    Serialize(#[from] serde_json::Error),
}

impl Error {
    /// Every `metric_label`.
    pub const METRIC_LABELS: [&'static str; 5] = [
        "kube",
        "invalid",
        "missing_metadata",
        "unavailable",
        "serialize",
    ];

    /// A short, fixed name for metrics and logs (never built from data).
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Invalid(_) => "invalid",
            Error::MissingMetadata(_) => "missing_metadata",
            Error::Unavailable(_) => "unavailable",
            Error::Serialize(_) => "serialize",
        }
    }

    /// Whether trying again later can help. Invalid objects are not retried
    /// on a timer: they get a condition or event and wait for a change.
    pub fn retryable(&self) -> bool {
        match self {
            Error::Kube(_) | Error::Unavailable(_) | Error::Serialize(_) => true,
            Error::Invalid(_) | Error::MissingMetadata(_) => false,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The steps of a reconcile, as the `step` label of the error metric names
/// them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Step {
    /// Reading the object and what it refers to.
    Read,
    /// Writing the operator's status.
    Status,
    /// Applying (or scaling) the Deployment or ReplicaSet the operator runs.
    Apply,
    /// Setting or removing the in-use finalizer.
    Finalizer,
    /// Writing a signed ApprovalRecord and its checkpoint, and attaching it
    /// to an OCI model in its registry.
    Record,
    /// Publishing an Event. Best effort: counted, but it does not fail the
    /// reconcile (the status history is the durable record).
    Event,
}

impl Step {
    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Step::Read => "read",
            Step::Status => "status",
            Step::Apply => "apply",
            Step::Finalizer => "finalizer",
            Step::Record => "record",
            Step::Event => "event",
        }
    }

    /// The causes (`Error::metric_label`) this step can end with, so that
    /// each counter can start at zero without a series for what cannot
    /// happen.
    pub const fn causes(self) -> &'static [&'static str] {
        match self {
            Step::Read => &["kube", "invalid", "missing_metadata", "unavailable"],
            Step::Record => &["kube", "missing_metadata", "serialize", "unavailable"],
            Step::Status | Step::Apply | Step::Finalizer | Step::Event => &["kube"],
        }
    }
}

/// Why a reconcile did not finish: the step it ended at, and why.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("cannot read the object or what it refers to: {0}")]
    Read(#[source] Error),
    #[error("cannot write the status: {0}")]
    Status(#[source] Error),
    #[error("cannot apply: {0}")]
    Apply(#[source] Error),
    #[error("cannot set the in-use finalizer: {0}")]
    Finalizer(#[source] Error),
    #[error("cannot write the ApprovalRecord: {0}")]
    Record(#[source] Error),
    #[error("cannot publish an Event: {0}")]
    Event(#[source] Error),
}

impl ReconcileError {
    /// `cause` at `step`.
    pub fn at(step: Step, cause: impl Into<Error>) -> Self {
        let cause = cause.into();
        match step {
            Step::Read => ReconcileError::Read(cause),
            Step::Status => ReconcileError::Status(cause),
            Step::Apply => ReconcileError::Apply(cause),
            Step::Finalizer => ReconcileError::Finalizer(cause),
            Step::Record => ReconcileError::Record(cause),
            Step::Event => ReconcileError::Event(cause),
        }
    }

    /// The step it ended at.
    pub fn step(&self) -> Step {
        match self {
            ReconcileError::Read(_) => Step::Read,
            ReconcileError::Status(_) => Step::Status,
            ReconcileError::Apply(_) => Step::Apply,
            ReconcileError::Finalizer(_) => Step::Finalizer,
            ReconcileError::Record(_) => Step::Record,
            ReconcileError::Event(_) => Step::Event,
        }
    }

    /// Why.
    pub fn cause(&self) -> &Error {
        match self {
            ReconcileError::Read(e)
            | ReconcileError::Status(e)
            | ReconcileError::Apply(e)
            | ReconcileError::Finalizer(e)
            | ReconcileError::Record(e)
            | ReconcileError::Event(e) => e,
        }
    }

    /// See [`Error::retryable`].
    pub fn retryable(&self) -> bool {
        self.cause().retryable()
    }
}

/// Names the step a fallible call belongs to: `api.patch(..).await.at(Step::Apply)?`.
pub trait AtStep<T> {
    fn at(self, step: Step) -> Result<T, ReconcileError>;
}

impl<T, E: Into<Error>> AtStep<T> for std::result::Result<T, E> {
    fn at(self, step: Step) -> Result<T, ReconcileError> {
        self.map_err(|e| ReconcileError::at(step, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn causes() -> Vec<Error> {
        let json = serde_json::from_str::<u8>("x").expect_err("not a number");
        vec![
            Error::Kube(kube::Error::LinesCodecMaxLineLengthExceeded),
            Error::Invalid("bad".into()),
            Error::MissingMetadata("name"),
            Error::Unavailable("a policy".into()),
            Error::Serialize(json),
        ]
    }

    #[test]
    fn every_metric_label_is_listed() {
        for error in causes() {
            assert!(
                Error::METRIC_LABELS.contains(&error.metric_label()),
                "{} is not in Error::METRIC_LABELS",
                error.metric_label()
            );
        }
    }

    #[test]
    fn a_step_error_keeps_its_step_and_cause() {
        let steps = [
            Step::Read,
            Step::Status,
            Step::Apply,
            Step::Finalizer,
            Step::Record,
            Step::Event,
        ];
        for step in steps {
            for cause in causes() {
                let label = cause.metric_label();
                let retryable = cause.retryable();
                let e = ReconcileError::at(step, cause);
                assert_eq!(e.step(), step);
                assert_eq!(e.cause().metric_label(), label);
                assert_eq!(e.retryable(), retryable);
            }
            assert!(step.causes().contains(&"kube"), "{step:?}");
            for cause in step.causes() {
                assert!(Error::METRIC_LABELS.contains(cause), "{cause}");
            }
        }
        let kube = Err::<(), _>(kube::Error::LinesCodecMaxLineLengthExceeded).at(Step::Apply);
        assert!(matches!(kube, Err(ReconcileError::Apply(Error::Kube(_)))));
    }
}
