//! The reviews and measurements people and pipelines write, recorded in
//! history exactly once each, with who wrote them. Pure.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::decide::Transition;
use crate::api::approval::ObservedInput;
use crate::api::{HistoryEntry, ModelApprovalStatus};
use crate::vocabulary::Severity;

/// The transitions for reviews and measurements that are new or changed
/// since the operator last recorded them, and what it has now recorded.
pub fn recorded(status: &ModelApprovalStatus, now: &Time) -> (Vec<Transition>, Vec<ObservedInput>) {
    let mut seen = Vec::new();
    let mut out = Vec::new();
    let before = |key: &str| {
        status
            .observed_inputs
            .iter()
            .find(|o| o.key == key)
            .map(|o| o.value.clone())
    };
    for r in &status.reviews {
        let key = format!("Review/{}/{}", r.gate, r.reviewer);
        let was = before(&key);
        if was.as_deref() != Some(r.decision.as_str()) {
            out.push(Transition {
                entry: entry(
                    now,
                    format!("{} review", r.gate),
                    was.unwrap_or_default(),
                    r.decision.clone(),
                    Some(r.reviewer.clone()),
                    r.reason.clone(),
                    r.message.clone(),
                ),
                reason: "ReviewRecorded",
                severity: Severity::Normal,
                note: format!("{} {} by {}", r.gate, r.decision.to_lowercase(), r.reviewer),
            });
        }
        seen.push(ObservedInput {
            key,
            value: r.decision.clone(),
        });
    }
    for m in &status.measurements {
        // Keyed by author too: two gates' evaluators may both measure a
        // name. The older key (name only) is read so that an upgrade does
        // not record every measurement again.
        let key = format!("Measurement/{}/{}", m.name, m.measured_by);
        let value = format!("{}", m.value);
        let was = before(&key).or_else(|| before(&format!("Measurement/{}", m.name)));
        if was.as_deref() != Some(value.as_str()) {
            out.push(Transition {
                entry: entry(
                    now,
                    format!("Measurement {}", m.name),
                    was.unwrap_or_default(),
                    value.clone(),
                    Some(m.measured_by.clone()),
                    Some("Measured".into()),
                    m.source.clone(),
                ),
                reason: "MeasurementRecorded",
                severity: Severity::Normal,
                note: format!("{} = {value} measured by {}", m.name, m.measured_by),
            });
        }
        seen.push(ObservedInput { key, value });
    }
    (out, seen)
}

fn entry(
    now: &Time,
    subject: String,
    from: String,
    to: String,
    reviewer: Option<String>,
    reason: Option<String>,
    message: Option<String>,
) -> HistoryEntry {
    let cut = |t: Option<String>| super::decide::truncate(t.as_deref());
    HistoryEntry {
        time: now.clone(),
        subject,
        from,
        to,
        reviewer,
        reason: cut(reason),
        message: cut(message),
        seq: None,
        hash: None,
    }
}
