//! One assertion of a refusal, whether the attempt went through kubectl or
//! through the API client: the attempt failed, and what it said tells the
//! person why and what to do instead.

use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Refusals asserted so far by this test binary.
static REFUSED: AtomicUsize = AtomicUsize::new(0);

/// An attempt that may have been refused: kubectl's `Output`, or the
/// result of an API call.
pub trait Attempt {
    /// The refusal, or, if the attempt went through, what it said then.
    fn refusal(self) -> Result<Said, String>;
}

/// What a refusal said.
#[derive(Debug, Clone)]
pub struct Said {
    /// kubectl's output, or the API server's message.
    pub message: String,
    /// The API server's HTTP status; none through kubectl.
    pub code: Option<u16>,
}

impl Attempt for Output {
    fn refusal(self) -> Result<Said, String> {
        let message = crate::cluster::text(&self);
        if self.status.success() {
            Err(message)
        } else {
            Ok(Said {
                message,
                code: None,
            })
        }
    }
}

impl<T> Attempt for kube::Result<T> {
    fn refusal(self) -> Result<Said, String> {
        match self {
            Ok(_) => Err("the API server accepted it".into()),
            // The message alone: a phrase must be in what the person reads,
            // not in the Status's details.
            Err(kube::Error::Api(s)) => Ok(Said {
                message: s.message.clone(),
                code: Some(s.code),
            }),
            Err(other) => Ok(Said {
                message: other.to_string(),
                code: None,
            }),
        }
    }
}

/// A refusal asserted, for further checks.
#[derive(Debug)]
pub struct Refusal {
    what: String,
    /// What it said.
    pub said: Said,
}

/// Asserts that `attempt` (described by `what`) was refused with every
/// phrase of `says` in its message.
#[track_caller]
pub fn refused(what: &str, attempt: impl Attempt, says: &[&str]) -> Refusal {
    let said = attempt
        .refusal()
        .unwrap_or_else(|allowed| panic!("{what}: was allowed: {allowed}"));
    for phrase in says {
        assert!(
            said.message.contains(phrase),
            "{what}: the refusal does not say {phrase:?}: {}",
            said.message
        );
    }
    REFUSED.fetch_add(1, Ordering::Relaxed);
    eprintln!("refused as expected: {what}");
    Refusal {
        what: what.to_string(),
        said,
    }
}

impl Refusal {
    /// Asserts that the API server answered with one of `codes`.
    #[track_caller]
    pub fn with_code(self, codes: &[u16]) -> Self {
        assert!(
            self.said.code.is_some_and(|c| codes.contains(&c)),
            "{}: refused with {:?}, not one of {codes:?}: {}",
            self.what,
            self.said.code,
            self.said.message
        );
        self
    }

    /// Asserts that the message has at least one of `phrases`.
    #[track_caller]
    pub fn says_one_of(self, phrases: &[&str]) -> Self {
        assert!(
            phrases.iter().any(|p| self.said.message.contains(p)),
            "{}: the refusal says none of {phrases:?}: {}",
            self.what,
            self.said.message
        );
        self
    }
}

/// How many refusals this test binary has asserted so far.
pub fn count() -> usize {
    REFUSED.load(Ordering::Relaxed)
}
