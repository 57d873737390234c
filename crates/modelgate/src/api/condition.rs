//! The status condition shape both kinds share: the metav1 Condition fields,
//! plus `reviewer` for the gates people set.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

// `status` stays a plain string in Rust even though the schema allows only
// True, False and Unknown: an object written before the schema was tightened
// must still deserialize, so the controller can report it instead of failing
// to read it.
/// One entry of `status.conditions`, keyed by `type`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// The condition type. On a ModelApproval the reviewers own
    /// TechnicalReview, FairnessReview, SecurityReview, LegalReview and
    /// BusinessReview; the operator owns Approved and ReviewsValid.
    #[serde(rename = "type")]
    #[schemars(length(min = 1, max = 316))]
    pub type_: String,
    /// True (passed), False (failed) or Unknown (pending).
    #[schemars(extend("enum" = ["True", "False", "Unknown"]))]
    pub status: String,
    /// A CamelCase word that says why, e.g. BenchmarksMet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub reason: Option<String>,
    /// A sentence for people: what was checked and what was found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32768))]
    pub message: Option<String>,
    /// The authenticated user who made this decision. Required on gates; the
    /// shipped admission policy refuses a name other than the requester's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512))]
    pub reviewer: Option<String>,
    /// When `status` last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    /// The object's generation this condition was set for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// The three values a condition status may hold.
pub const TRUE: &str = "True";
pub const FALSE: &str = "False";
pub const UNKNOWN: &str = "Unknown";

impl Condition {
    /// A condition with `status`, `reason` and `message`; no time yet.
    pub fn new(type_: &str, status: &str, reason: &str, message: impl Into<String>) -> Self {
        Condition {
            type_: type_.to_string(),
            status: status.to_string(),
            reason: Some(reason.to_string()),
            message: Some(message.into()),
            ..Condition::default()
        }
    }

    /// Stamps `lastTransitionTime`: kept from `previous` when the status did
    /// not change, so the time says when the state began, not when it was
    /// last written.
    pub fn stamped(
        mut self,
        previous: Option<&Condition>,
        now: &Time,
        generation: Option<i64>,
    ) -> Self {
        self.last_transition_time = match previous {
            Some(p) if p.status == self.status && p.last_transition_time.is_some() => {
                p.last_transition_time.clone()
            }
            _ => Some(now.clone()),
        };
        self.observed_generation = generation;
        self
    }
}

/// The condition of `type_` in `conditions`, if present.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// `t` cut to whole seconds: the precision of a Kubernetes time
/// (metav1.Time), so what is written is what is read back.
pub fn whole_seconds(t: jiff::Timestamp) -> jiff::Timestamp {
    jiff::Timestamp::from_second(t.as_second()).unwrap_or(t)
}
