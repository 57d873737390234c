//! What a reconcile changed, in one shape for every controller: what
//! changed, from what to what, why, and whether a person should look. Each
//! transition becomes an Event; the approval controller also keeps it in
//! its status history (and so in its signed records), the others in the
//! conditions of their status.

use crate::vocabulary::Severity;

/// One observed change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    /// What changed: `Phase`, a gate, a review, a measurement, `Ready`. It
    /// is also the Event's action.
    pub subject: String,
    /// Before, e.g. a phase or a condition status; empty when there was
    /// none.
    pub from: String,
    /// After.
    pub to: String,
    /// Why, in one CamelCase word: the Event reason (GatePassed, Approved,
    /// ApprovalRevoked, RuleDoesNotCompile).
    pub reason: String,
    pub severity: Severity,
    /// For people: the Event note.
    pub message: String,
}

impl Transition {
    /// A change of `subject` from `from` (None: it had no value yet) to `to`.
    pub fn new(
        subject: &str,
        from: Option<impl ToString>,
        to: impl ToString,
        reason: impl Into<String>,
        severity: Severity,
        message: impl Into<String>,
    ) -> Self {
        Transition {
            subject: subject.to_string(),
            from: from.map(|f| f.to_string()).unwrap_or_default(),
            to: to.to_string(),
            reason: reason.into(),
            severity,
            message: message.into(),
        }
    }
}
