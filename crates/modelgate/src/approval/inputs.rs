//! The reviews and measurements people and pipelines write, recorded in
//! history exactly once each, with who wrote them. Pure.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::history::{Recorded, Said};
use crate::api::approval::ModelApprovalStatus;
use crate::api::approval::ObservedInput;
use crate::api::policy::{Measurement, Review};
use crate::transition::Transition;
use crate::vocabulary::Severity;

/// The reviews and measurements that are new or changed since the operator
/// last recorded them, and what it has recorded once these are.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RecordedInputs {
    pub recorded: Vec<Recorded>,
    pub observed: Vec<ObservedInput>,
}

/// What `status` holds that the operator has not recorded yet.
pub fn recorded(status: &ModelApprovalStatus, now: &Time) -> RecordedInputs {
    let mut inputs = RecordedInputs::default();
    for r in &status.reviews {
        inputs.note(review(status, r, now));
    }
    for m in &status.measurements {
        inputs.note(measurement(status, m, now));
    }
    inputs
}

/// One input as observed, and its change when it is new or changed.
struct Seen {
    observed: ObservedInput,
    change: Option<Recorded>,
}

impl RecordedInputs {
    fn note(&mut self, seen: Seen) {
        self.recorded.extend(seen.change);
        self.observed.push(seen.observed);
    }
}

/// The value the operator last recorded under `key`.
fn before(status: &ModelApprovalStatus, key: &str) -> Option<String> {
    status
        .observed_inputs
        .iter()
        .find(|o| o.key == key)
        .map(|o| o.value.clone())
}

/// One review, and whether it is new or changed.
fn review(status: &ModelApprovalStatus, r: &Review, now: &Time) -> Seen {
    let key = format!("Review/{}/{}", r.gate, r.reviewer);
    let was = before(status, &key);
    let change = (was.as_deref() != Some(r.decision.as_str())).then(|| {
        Recorded::new(
            Transition::new(
                &format!("{} review", r.gate),
                was,
                &r.decision,
                "ReviewRecorded",
                Severity::Normal,
                format!("{} {} by {}", r.gate, r.decision.to_lowercase(), r.reviewer),
            ),
            now,
            Said {
                reviewer: Some(r.reviewer.clone()),
                reason: r.reason.clone(),
                message: r.message.clone(),
            },
        )
    });
    let observed = ObservedInput {
        key,
        value: r.decision.clone(),
    };
    Seen { observed, change }
}

/// One measurement, and whether it is new or changed.
fn measurement(status: &ModelApprovalStatus, m: &Measurement, now: &Time) -> Seen {
    // Keyed by author too: two gates' evaluators may both measure a name.
    // The older key (name only) is read so that an upgrade does not record
    // every measurement again.
    let key = format!("Measurement/{}/{}", m.name, m.measured_by);
    let value = format!("{}", m.value);
    let was = before(status, &key).or_else(|| before(status, &format!("Measurement/{}", m.name)));
    let change = (was.as_deref() != Some(value.as_str())).then(|| {
        Recorded::new(
            Transition::new(
                &format!("Measurement {}", m.name),
                was,
                &value,
                "MeasurementRecorded",
                Severity::Normal,
                format!("{} = {value} measured by {}", m.name, m.measured_by),
            ),
            now,
            Said {
                reviewer: Some(m.measured_by.clone()),
                reason: Some("Measured".into()),
                message: m.source.clone(),
            },
        )
    });
    Seen {
        observed: ObservedInput { key, value },
        change,
    }
}
