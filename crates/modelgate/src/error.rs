//! The errors a reconcile can end with, each with a fixed metric label.

/// Why a reconcile did not finish.
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
    /// A patch could not be built from our own types.
    #[error("cannot serialise a patch: {0}")]
    Serialize(#[from] serde_json::Error),
}

impl Error {
    /// Every `metric_label`, so each error counter can start at zero.
    pub const METRIC_LABELS: [&'static str; 4] =
        ["kube", "invalid", "missing_metadata", "serialize"];

    /// A short, fixed name for metrics and logs (never built from data).
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Invalid(_) => "invalid",
            Error::MissingMetadata(_) => "missing_metadata",
            Error::Serialize(_) => "serialize",
        }
    }

    /// Whether trying again later can help. Invalid objects are not retried
    /// on a timer: they get a condition or event and wait for a change.
    pub fn retryable(&self) -> bool {
        match self {
            Error::Kube(_) | Error::Serialize(_) => true,
            Error::Invalid(_) | Error::MissingMetadata(_) => false,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_label_is_listed() {
        let json = serde_json::from_str::<u8>("x").expect_err("not a number");
        for error in [
            Error::Kube(kube::Error::LinesCodecMaxLineLengthExceeded),
            Error::Invalid("bad".into()),
            Error::MissingMetadata("name"),
            Error::Serialize(json),
        ] {
            assert!(
                Error::METRIC_LABELS.contains(&error.metric_label()),
                "{} is not in Error::METRIC_LABELS",
                error.metric_label()
            );
        }
    }
}
