//! Which rules an approval is decided by: the policy in force when the
//! operator first sees it, copied into its status (pinned) and never
//! changed after. Pure.

use kube::ResourceExt;

use crate::api::gates::Gate;
use crate::api::policy::{ApprovalPolicy, PinnedGate, PinnedPolicy, RuleMode};

/// The name a policy is pinned by when none applies.
pub const BUILT_IN: &str = "built-in";

/// The policy's name that applies to the approvals of its namespace.
pub const DEFAULT_POLICY: &str = "default";

/// The rules of `policy` for an approval, all five gates, ready to pin:
/// for an imported approval every gate the policy does not keep local is
/// mirrored from the publisher.
pub fn pin_for_approval(policy: Option<&ApprovalPolicy>, imported: bool) -> PinnedPolicy {
    let mut pinned = pin(policy);
    if imported {
        let local = policy
            .map(|p| p.spec.local_gates.as_slice())
            .unwrap_or_default();
        for g in pinned.gates.iter_mut().filter(|g| !local.contains(&g.gate)) {
            *g = PinnedGate {
                gate: std::mem::take(&mut g.gate),
                reviewers: 1,
                imported: true,
                ..PinnedGate::default()
            };
        }
    }
    pinned
}

/// The rules of `policy`, all five gates, ready to pin; the built-in rules
/// (one reviewer per gate, as without policies) when there is none.
pub fn pin(policy: Option<&ApprovalPolicy>) -> PinnedPolicy {
    let Some(policy) = policy else {
        return PinnedPolicy {
            name: BUILT_IN.into(),
            generation: None,
            valid_for: None,
            gates: Gate::ALL.map(one_reviewer).to_vec(),
            break_glass: None,
        };
    };
    let gates = Gate::ALL
        .map(|g| {
            let rule = policy
                .spec
                .gates
                .iter()
                .find(|r| r.gate == g.condition_type());
            match rule {
                Some(r) => PinnedGate {
                    gate: g.condition_type().into(),
                    reviewers: r.reviewers.unwrap_or(1).max(1),
                    automatic: r.automatic.clone(),
                    deadline: r.deadline.clone(),
                    imported: false,
                },
                None => one_reviewer(g),
            }
        })
        .to_vec();
    PinnedPolicy {
        name: format!(
            "{}/{}",
            policy.namespace().unwrap_or_default(),
            policy.name_any()
        ),
        generation: policy.metadata.generation,
        valid_for: policy.spec.valid_for.clone(),
        gates,
        break_glass: policy.spec.break_glass.clone(),
    }
}

fn one_reviewer(g: Gate) -> PinnedGate {
    PinnedGate {
        gate: g.condition_type().into(),
        reviewers: 1,
        automatic: None,
        deadline: None,
        imported: false,
    }
}

/// How a pinned gate is decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decider {
    /// One reviewer's condition, as without policies.
    Person,
    /// N distinct reviews (N > 1).
    Quorum(u32),
    /// The rule, from measurements.
    Rule,
    /// The publisher's signed record (an imported approval).
    Imported,
}

impl PinnedGate {
    pub fn decider(&self) -> Decider {
        match &self.automatic {
            _ if self.imported => Decider::Imported,
            Some(a) if a.mode == RuleMode::Decide => Decider::Rule,
            _ if self.reviewers > 1 => Decider::Quorum(self.reviewers),
            _ => Decider::Person,
        }
    }
}

/// The pinned rule of `gate` (one reviewer when the pin lacks it).
pub fn rule_of(policy: Option<&PinnedPolicy>, gate: Gate) -> PinnedGate {
    policy
        .and_then(|p| p.gates.iter().find(|g| g.gate == gate.condition_type()))
        .cloned()
        .unwrap_or_else(|| one_reviewer(gate))
}

/// Whether `gate` is mirrored from a trusted publisher's record (an
/// imported approval): decided in the publisher's cluster, not here.
pub fn mirrored(policy: Option<&PinnedPolicy>, gate: Gate) -> bool {
    rule_of(policy, gate).decider() == Decider::Imported
}

/// The gates the operator decides (a quorum, a deciding rule or a mirror
/// of the publisher's record): their
/// conditions are the operator's to write, not a reviewer's.
pub fn operator_decided(policy: Option<&PinnedPolicy>) -> Vec<&'static str> {
    Gate::ALL
        .into_iter()
        .filter(|g| rule_of(policy, *g).decider() != Decider::Person)
        .map(|g| g.condition_type())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::policy::{ApprovalPolicySpec, Automatic, GateRule};

    #[test]
    fn a_policy_pins_all_five_gates_and_none_pins_one_reviewer_each() {
        let built_in = pin(None);
        assert_eq!(built_in.name, BUILT_IN);
        assert!(
            built_in
                .gates
                .iter()
                .all(|g| g.decider() == Decider::Person)
        );
        let mut policy = ApprovalPolicy::new(
            "default",
            ApprovalPolicySpec {
                valid_for: Some("720h".into()),
                break_glass: None,
                local_gates: Vec::new(),
                gates: vec![
                    GateRule {
                        gate: "SecurityReview".into(),
                        reviewers: Some(2),
                        automatic: None,
                        deadline: None,
                    },
                    GateRule {
                        gate: "TechnicalReview".into(),
                        reviewers: None,
                        automatic: Some(Automatic {
                            rule: "m.auc > 0.9".into(),
                            measured_by: vec!["ci".into()],
                            mode: RuleMode::Decide,
                        }),
                        deadline: None,
                    },
                ],
            },
        );
        policy.metadata.namespace = Some("risk".into());
        policy.metadata.generation = Some(3);
        let pinned = pin(Some(&policy));
        assert_eq!(pinned.name, "risk/default");
        assert_eq!(pinned.generation, Some(3));
        assert_eq!(pinned.gates.len(), 5);
        assert_eq!(
            rule_of(Some(&pinned), Gate::Security).decider(),
            Decider::Quorum(2)
        );
        assert_eq!(
            rule_of(Some(&pinned), Gate::Technical).decider(),
            Decider::Rule
        );
        assert_eq!(
            operator_decided(Some(&pinned)),
            ["TechnicalReview", "SecurityReview"]
        );
    }
}
