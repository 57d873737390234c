//! A reviewer's decision on one gate (its condition, or their review of a
//! quorum gate) and a pipeline's measurement, as the server-side-apply
//! bodies of a ModelApproval's status. Every writer of a gate (the plugin, the tests'
//! harness, the bench) sends this same shape, so that what the admission
//! policy and the controller see from each is alike.

use jiff::Timestamp;
use kube::Resource;
use serde_json::{Value, json};

use super::approval::ModelApproval;
use super::condition::whole_seconds;
use super::gates::Gate;

/// The status patch that sets `gate` of the approval named `approval` to
/// `status` (`True` or `False`), by `reviewer`, at `at`.
///
/// It holds that one condition only: applied under a field manager of the
/// gate's own, it leaves every other gate as it is. `message` is left out
/// when `None`, so that a decision without one drops an earlier message of
/// the same manager instead of keeping it.
pub fn gate_patch(
    approval: &str,
    gate: Gate,
    status: &str,
    reason: &str,
    message: Option<&str>,
    reviewer: &str,
    at: Timestamp,
) -> Value {
    // A reviewer's time keeps to a condition time's precision, as the
    // operator's own do.
    let at = whole_seconds(at);
    let mut condition = json!({
        "type": gate.condition_type(),
        "status": status,
        "reason": reason,
        "reviewer": reviewer,
        "lastTransitionTime": at.to_string(),
    });
    if let Some(message) = message {
        condition["message"] = message.into();
    }
    status_patch(approval, json!({"conditions": [condition]}))
}

/// The status patch of one person's review of a quorum gate: their own
/// entry of `status.reviews` (`Approve` or `Reject`). Applied under
/// [`review_manager`], it leaves every other person's review as it is.
pub fn review_patch(
    approval: &str,
    gate: Gate,
    decision: &str,
    reason: &str,
    message: Option<&str>,
    reviewer: &str,
    at: Timestamp,
) -> Value {
    let mut review = json!({
        "gate": gate.condition_type(),
        "reviewer": reviewer,
        "decision": decision,
        "reason": reason,
        "time": whole_seconds(at).to_string(),
    });
    if let Some(message) = message {
        review["message"] = message.into();
    }
    status_patch(approval, json!({"reviews": [review]}))
}

/// The field manager of one person's review of one gate. Each person's
/// entry needs a manager of its own: with a shared one, the next person's
/// apply would remove the entries it does not repeat.
pub fn review_manager(gate: Gate, reviewer: &str) -> String {
    use sha2::Digest;
    let who = hex::encode(sha2::Sha256::digest(reviewer.as_bytes()));
    format!("review-{}-{}", gate.short_name(), &who[..16])
}

/// One measurement for the automatic gates, by `measured_by`.
pub struct MeasurementInput<'a> {
    pub name: &'a str,
    pub value: f64,
    pub source: Option<&'a str>,
    pub source_digest: Option<&'a str>,
}

/// The status patch of one measurement; applied under
/// [`measurement_manager`], it leaves the other measurements as they are.
pub fn measurement_patch(
    approval: &str,
    m: &MeasurementInput<'_>,
    measured_by: &str,
    at: Timestamp,
) -> Value {
    let mut entry = json!({
        "name": m.name,
        "value": m.value,
        "measuredBy": measured_by,
        "time": whole_seconds(at).to_string(),
    });
    if let Some(source) = m.source {
        entry["source"] = source.into();
    }
    if let Some(digest) = m.source_digest {
        entry["sourceDigest"] = digest.into();
    }
    status_patch(approval, json!({"measurements": [entry]}))
}

/// The field manager of one identity's writes of one measurement. Each
/// author needs a manager of its own: with a shared one, one evaluator's
/// apply would remove (and so try to change) another's entry of the name.
pub fn measurement_manager(name: &str, measured_by: &str) -> String {
    use sha2::Digest;
    let who = hex::encode(sha2::Sha256::digest(measured_by.as_bytes()));
    format!("measure-{name}-{}", &who[..16])
}

fn status_patch(approval: &str, status: Value) -> Value {
    json!({
        "apiVersion": ModelApproval::api_version(&()),
        "kind": ModelApproval::kind(&()),
        "metadata": {"name": approval},
        "status": status,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::condition::Condition;

    #[test]
    fn one_condition_to_the_second() {
        let at: Timestamp = "2026-03-01T12:34:56.789Z".parse().expect("a timestamp");
        let patch = gate_patch(
            "fraud-detector-2-4-0",
            Gate::Security,
            "True",
            "PenTestPassed",
            Some("no findings"),
            "sam@example.com",
            at,
        );
        assert_eq!(
            patch,
            json!({
                "apiVersion": "modelgate.io/v1alpha1",
                "kind": "ModelApproval",
                "metadata": {"name": "fraud-detector-2-4-0"},
                "status": {"conditions": [{
                    "type": "SecurityReview",
                    "status": "True",
                    "reason": "PenTestPassed",
                    "message": "no findings",
                    "reviewer": "sam@example.com",
                    "lastTransitionTime": "2026-03-01T12:34:56Z",
                }]},
            })
        );
    }

    #[test]
    fn no_message_no_field() {
        let patch = gate_patch(
            "a",
            Gate::Legal,
            "False",
            "Failed",
            None,
            "lee@example.com",
            Timestamp::UNIX_EPOCH,
        );
        let condition = &patch["status"]["conditions"][0];
        assert!(condition.get("message").is_none(), "{condition}");
        assert_eq!(condition["lastTransitionTime"], "1970-01-01T00:00:00Z");
    }

    #[test]
    fn the_condition_reads_as_a_gate_condition() {
        let patch = gate_patch(
            "a",
            Gate::Business,
            "True",
            "Passed",
            None,
            "bo@example.com",
            Timestamp::now(),
        );
        let condition: Condition =
            serde_json::from_value(patch["status"]["conditions"][0].clone()).expect("a condition");
        assert_eq!(
            Gate::from_condition_type(&condition.type_),
            Some(Gate::Business)
        );
        assert_eq!(condition.reviewer.as_deref(), Some("bo@example.com"));
        assert!(condition.last_transition_time.is_some());
    }
}
