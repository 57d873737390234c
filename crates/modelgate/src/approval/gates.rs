//! How each gate stands under the approval's pinned rules: a reviewer's
//! condition, a quorum of reviews, or a rule over measurements. Pure.

use crate::api::condition::{self, Condition, FALSE, TRUE, UNKNOWN};
use crate::api::fleet::ImportedApproval;
use crate::api::gates::is_operator_condition;
use crate::api::policy::{
    Automatic, GateProgress, Measurement, PinnedGate, PinnedPolicy, Review, RuleMode,
};
use crate::api::{approval::ModelApprovalStatus, gates::Gate};
use crate::policy::pin::{Decider, rule_of};
use crate::policy::quorum::{Tally, tally};
use crate::policy::rule::{Verdict, evaluate};

/// How one gate stands, as far as the decision is concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GateView {
    pub gate: Gate,
    /// True, False or Unknown (absent and unusable conditions are Unknown).
    pub status: &'static str,
    pub reviewer: Option<String>,
    pub reason: Option<String>,
    pub message: Option<String>,
    /// Decided by the operator (a quorum or a rule), so its condition is
    /// the operator's to write.
    pub decided: bool,
}

impl GateView {
    fn pending(gate: Gate) -> Self {
        GateView {
            gate,
            status: UNKNOWN,
            reviewer: None,
            reason: None,
            message: None,
            decided: false,
        }
    }

    /// The condition the operator writes for a gate it decides.
    pub fn condition(&self) -> Condition {
        Condition {
            type_: self.gate.condition_type().into(),
            status: self.status.into(),
            reason: self.reason.clone(),
            message: self.message.clone(),
            reviewer: self.reviewer.clone(),
            ..Condition::default()
        }
    }
}

/// Every gate as it stands, and the progress of those not decided by one
/// person (quorum counts, rule results).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reading {
    /// One per gate, in the usual order.
    pub views: Vec<GateView>,
    pub progress: Vec<GateProgress>,
}

/// How the gates stand under `policy`, with the publisher's record
/// `mirror` for an imported approval; malformed input in `problems`.
pub fn read(
    status: &ModelApprovalStatus,
    policy: Option<&PinnedPolicy>,
    mirror: Option<&ImportedApproval>,
    problems: &mut Vec<String>,
) -> Reading {
    let decided: Vec<&str> = crate::policy::pin::operator_decided(policy);
    for c in &status.conditions {
        let known =
            Gate::from_condition_type(&c.type_).is_some() || is_operator_condition(&c.type_);
        if !known {
            problems.push(format!(
                "condition {:?} is not a gate (expected one of TechnicalReview, FairnessReview, SecurityReview, LegalReview, BusinessReview) and is ignored",
                c.type_
            ));
        }
    }
    let mut progress = Vec::new();
    let views = Gate::ALL
        .into_iter()
        .map(|gate| {
            let rule = rule_of(policy, gate);
            let view = match rule.decider() {
                Decider::Person => by_person(&status.conditions, gate, problems),
                Decider::Quorum(n) => by_quorum(gate, n, &status.reviews, &mut progress),
                Decider::Rule => by_rule(gate, &rule, &status.measurements, &mut progress),
                Decider::Imported => by_mirror(gate, mirror),
            };
            if rule.decider() == Decider::Person {
                advise(gate, &rule, &status.measurements, &mut progress);
            }
            GateView {
                decided: decided.contains(&gate.condition_type()),
                ..view
            }
        })
        .collect();
    Reading { views, progress }
}

/// A gate mirrored from the publisher's signed record: as that record
/// says, pending until one is honoured.
fn by_mirror(gate: Gate, mirror: Option<&ImportedApproval>) -> GateView {
    let name = gate.condition_type();
    let Some(m) = mirror.filter(|m| m.seq.is_some()) else {
        return GateView {
            reason: Some("AwaitingImport".into()),
            message: Some("waiting for the publisher's signed record in the registry".into()),
            ..GateView::pending(gate)
        };
    };
    let said = m.gates.iter().find(|g| g.gate == name);
    let status = match said.map(|g| g.status.as_str()) {
        Some(TRUE) => TRUE,
        Some(FALSE) => FALSE,
        _ => UNKNOWN,
    };
    let upstream = said.and_then(|g| g.reviewer.clone());
    GateView {
        status,
        reviewer: Some(match upstream {
            Some(r) => format!("{r} (via {})", m.publisher),
            None => m.publisher.clone(),
        }),
        reason: Some("Imported".into()),
        message: Some(format!(
            "mirrored from {}'s signed record of {} (seq {})",
            m.publisher,
            m.approval,
            m.seq.unwrap_or_default()
        )),
        ..GateView::pending(gate)
    }
}

/// A gate one reviewer decides with its condition.
fn by_person(conditions: &[Condition], gate: Gate, problems: &mut Vec<String>) -> GateView {
    let view = GateView::pending(gate);
    let Some(c) = condition::find(conditions, gate.condition_type()) else {
        return view;
    };
    let status = match c.status.as_str() {
        TRUE => TRUE,
        FALSE => FALSE,
        UNKNOWN => UNKNOWN,
        other => {
            problems.push(format!(
                "{gate} has status {other:?}; only True, False and Unknown count, so it is treated as pending"
            ));
            return view;
        }
    };
    let reviewer = c.reviewer.clone().filter(|r| !r.trim().is_empty());
    if status != UNKNOWN && reviewer.is_none() {
        // A decision without a name is not auditable, so it does not count.
        problems.push(format!(
            "{gate} is {status} but names no reviewer, so it is treated as pending"
        ));
        return view;
    }
    GateView {
        status,
        reviewer,
        reason: c.reason.clone(),
        message: c.message.clone(),
        ..view
    }
}

/// A gate N distinct reviewers pass and any one fails.
fn by_quorum(
    gate: Gate,
    needed: u32,
    reviews: &[Review],
    progress: &mut Vec<GateProgress>,
) -> GateView {
    let name = gate.condition_type();
    let outcome = Quorum::of(tally(name, needed, reviews), needed);
    progress.push(GateProgress {
        gate: name.into(),
        progress: format!("{}/{needed}", outcome.approvals),
        result: outcome.status.into(),
        message: outcome.message.clone(),
        mode: None,
    });
    GateView {
        status: outcome.status,
        reviewer: outcome.reviewer,
        reason: Some(outcome.reason),
        message: Some(outcome.message),
        ..GateView::pending(gate)
    }
}

/// How a quorum gate stands, in the words its view and progress use.
struct Quorum {
    status: &'static str,
    /// Who decided it: the approvers, or the one who vetoed.
    reviewer: Option<String>,
    reason: String,
    message: String,
    /// Approvals that count towards the quorum.
    approvals: usize,
}

impl Quorum {
    fn of(tally: Tally, needed: u32) -> Self {
        match tally {
            Tally::Passed(who) => Quorum {
                status: TRUE,
                reviewer: Some(who.join(", ")),
                reason: "QuorumReached".into(),
                message: format!(
                    "{} of {needed} reviewers approved: {}",
                    who.len(),
                    who.join(", ")
                ),
                approvals: who.len(),
            },
            Tally::Vetoed {
                by,
                reason,
                message,
            } => Quorum {
                status: FALSE,
                message: format!(
                    "rejected by {by}{}",
                    message.map(|m| format!(": {m}")).unwrap_or_default()
                ),
                reviewer: Some(by),
                reason: reason.unwrap_or_else(|| "Rejected".into()),
                approvals: 0,
            },
            Tally::Waiting(who) => Quorum {
                status: UNKNOWN,
                reviewer: None,
                reason: "AwaitingQuorum".into(),
                message: waiting_for_quorum(&who, needed),
                approvals: who.len(),
            },
        }
    }
}

/// What a quorum still waits for, having the approvals of `who`.
fn waiting_for_quorum(who: &[String], needed: u32) -> String {
    if who.is_empty() {
        return format!("needs {needed} distinct reviewers; none has approved yet");
    }
    format!(
        "{} of {needed} reviewers approved ({}); needs {} more who have not passed another gate",
        who.len(),
        who.join(", "),
        needed as usize - who.len()
    )
}

/// A gate its rule decides from the measurements.
fn by_rule(
    gate: Gate,
    rule: &PinnedGate,
    measurements: &[Measurement],
    progress: &mut Vec<GateProgress>,
) -> GateView {
    let Some(automatic) = &rule.automatic else {
        return GateView::pending(gate);
    };
    let measurements = &own_measurements(automatic, measurements);
    let (status, reason, message) = verdict(&automatic.rule, measurements);
    let measurers: Vec<&str> = {
        let mut m: Vec<&str> = measurements
            .iter()
            .map(|m| m.measured_by.as_str())
            .collect();
        m.sort();
        m.dedup();
        m
    };
    progress.push(GateProgress {
        gate: gate.condition_type().into(),
        progress: "rule".into(),
        result: status.into(),
        message: message.clone(),
        mode: Some(RuleMode::Decide),
    });
    GateView {
        status,
        // The identities whose values decided it are the ones accountable.
        reviewer: (status != UNKNOWN).then(|| measurers.join(", ")),
        reason: Some(reason.into()),
        message: Some(message),
        ..GateView::pending(gate)
    }
}

/// The rule's advice beside a person's decision (mode Advise).
fn advise(
    gate: Gate,
    rule: &PinnedGate,
    measurements: &[Measurement],
    progress: &mut Vec<GateProgress>,
) {
    let Some(automatic) = rule
        .automatic
        .as_ref()
        .filter(|a| a.mode == RuleMode::Advise)
    else {
        return;
    };
    let measurements = &own_measurements(automatic, measurements);
    let (status, _, message) = verdict(&automatic.rule, measurements);
    progress.push(GateProgress {
        gate: gate.condition_type().into(),
        progress: "advice".into(),
        result: status.into(),
        message,
        mode: Some(RuleMode::Advise),
    });
}

/// The measurements a gate's rule may see: only those its own pinned
/// `measuredBy` identities wrote, so that one gate's evaluator never decides
/// another gate. When two of its identities wrote the same name, the newest
/// counts (the rule reads one value per name).
pub fn own_measurements(automatic: &Automatic, measurements: &[Measurement]) -> Vec<Measurement> {
    let mut own: Vec<Measurement> = measurements
        .iter()
        .filter(|m| automatic.measured_by.contains(&m.measured_by))
        .cloned()
        .collect();
    own.sort_by(|a, b| {
        a.time
            .as_ref()
            .map(|t| t.0)
            .cmp(&b.time.as_ref().map(|t| t.0))
    });
    let mut newest: Vec<Measurement> = Vec::new();
    for m in own.into_iter().rev() {
        if !newest.iter().any(|n| n.name == m.name) {
            newest.push(m);
        }
    }
    newest
}

/// A rule's verdict as (status, reason, message).
fn verdict(rule: &str, measurements: &[Measurement]) -> (&'static str, &'static str, String) {
    match evaluate(rule, measurements) {
        Verdict::Decided { passed: true, seen } => {
            (TRUE, "RuleMet", format!("rule `{rule}` holds: {seen}"))
        }
        Verdict::Decided {
            passed: false,
            seen,
        } => (
            FALSE,
            "RuleNotMet",
            format!("rule `{rule}` does not hold: {seen}"),
        ),
        Verdict::Missing(name) => (
            UNKNOWN,
            "AwaitingMeasurement",
            format!("rule `{rule}` waits for measurement {name}"),
        ),
        Verdict::Broken(why) => (UNKNOWN, "RuleBroken", format!("rule `{rule}`: {why}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TECH: &str = "system:serviceaccount:ml:tech-eval";
    const FAIR: &str = "system:serviceaccount:ml:fair-eval";

    fn automatic(gate: Gate, rule: &str, by: &str, mode: RuleMode) -> PinnedGate {
        PinnedGate {
            gate: gate.condition_type().into(),
            reviewers: 1,
            automatic: Some(Automatic {
                rule: rule.into(),
                measured_by: vec![by.into()],
                mode,
            }),
            deadline: None,
            imported: false,
        }
    }

    fn policy() -> PinnedPolicy {
        PinnedPolicy {
            name: "ns/default".into(),
            gates: vec![
                automatic(Gate::Technical, "m.auc >= 0.92", TECH, RuleMode::Decide),
                automatic(Gate::Fairness, "m.auc >= 0.5", FAIR, RuleMode::Advise),
            ],
            ..PinnedPolicy::default()
        }
    }

    fn measured(name: &str, value: f64, by: &str) -> Measurement {
        Measurement {
            name: name.into(),
            value,
            measured_by: by.into(),
            ..Measurement::default()
        }
    }

    fn technical(measurements: Vec<Measurement>) -> GateView {
        let status = ModelApprovalStatus {
            measurements,
            ..ModelApprovalStatus::default()
        };
        read(&status, Some(&policy()), None, &mut Vec::new())
            .views
            .into_iter()
            .find(|v| v.gate == Gate::Technical)
            .expect("the technical gate")
    }

    /// FairnessReview's evaluator measuring `auc` does not pass
    /// TechnicalReview: its rule sees tech-eval's value only.
    #[test]
    fn a_gate_sees_only_its_own_evaluators_measurements() {
        let alone = technical(vec![measured("auc", 0.99, FAIR)]);
        assert_eq!(alone.status, UNKNOWN, "{alone:?}");
        assert_eq!(alone.reason.as_deref(), Some("AwaitingMeasurement"));

        let both = technical(vec![
            measured("auc", 0.99, FAIR),
            measured("auc", 0.5, TECH),
        ]);
        assert_eq!(both.status, FALSE, "{both:?}");
        assert_eq!(both.reviewer.as_deref(), Some(TECH));
        assert!(!both.message.unwrap_or_default().contains(FAIR));

        let own = technical(vec![
            measured("auc", 0.95, TECH),
            measured("auc", 0.1, FAIR),
        ]);
        assert_eq!(own.status, TRUE);
        assert_eq!(own.reviewer.as_deref(), Some(TECH));
    }
}
