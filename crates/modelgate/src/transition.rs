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

/// The reason of an Event that names several changes of one reconcile.
pub const RECORDED_TOGETHER: &str = "ReviewsRecorded";

/// The Events to publish for an approval's `transitions`: each phase
/// change and each warning on its own, and the other changes of one
/// reconcile, when there are several (an operator starting finds the
/// reviewers' gates and reviews already written), in one Event that names
/// them all, ahead of the phase change they led to. The history and the
/// signed records keep each transition on its own.
pub fn announced(transitions: &[Transition], phase: &str) -> Vec<Transition> {
    let alone = |t: &Transition| t.subject == phase || t.severity != Severity::Normal;
    let together: Vec<&Transition> = transitions.iter().filter(|t| !alone(t)).collect();
    if together.len() < 2 {
        return transitions.to_vec();
    }
    let message = together
        .iter()
        .map(|t| format!("{}: {}", t.subject, t.message))
        .collect::<Vec<_>>()
        .join("; ");
    let merged = Transition::new(
        "Reviews",
        None::<&str>,
        format!("{} recorded", together.len()),
        RECORDED_TOGETHER,
        Severity::Normal,
        message,
    );
    std::iter::once(merged)
        .chain(transitions.iter().filter(|t| alone(t)).cloned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(subject: &str, severity: Severity, message: &str) -> Transition {
        Transition::new(
            subject,
            None::<&str>,
            "True",
            "GatePassed",
            severity,
            message,
        )
    }

    #[test]
    fn one_reconciles_reviews_are_one_event_and_phase_changes_and_warnings_their_own() {
        let gates = [
            t("TechnicalReview", Severity::Normal, "passed by ana"),
            t(
                "Review/SecurityReview/sam",
                Severity::Normal,
                "sam approves",
            ),
            t("LegalReview", Severity::Warning, "failed by lee"),
            t("Phase", Severity::Normal, "Approved"),
        ];
        let events = announced(&gates, "Phase");
        let reasons: Vec<&str> = events.iter().map(|e| e.reason.as_str()).collect();
        assert_eq!(reasons, [RECORDED_TOGETHER, "GatePassed", "GatePassed"]);
        assert_eq!(
            events[0].message,
            "TechnicalReview: passed by ana; Review/SecurityReview/sam: sam approves"
        );
        assert_eq!(events[1].subject, "LegalReview");
        assert_eq!(events[2].subject, "Phase");
        // One change alone keeps its own Event.
        assert_eq!(announced(&gates[..1], "Phase"), gates[..1].to_vec());
    }
}
