//! Flags a `measuredBy` identity the model's owners can act as: a service
//! account in the namespace where the policy's approvals live. There,
//! `edit` (which the model owners have) may create `serviceaccounts/token`
//! for it, so a developer could mint its token and measure their own model.
//! Pure: the spec and its namespace in, a condition out.

use crate::api::condition::{Condition, FALSE, TRUE};
use crate::api::policy::ApprovalPolicySpec;

/// The condition type in the policy's status.
pub const CONDITION: &str = "EvaluatorsIndependent";

/// The namespace of a service-account username, if it is one.
fn service_account_namespace(identity: &str) -> Option<&str> {
    let rest = identity.strip_prefix("system:serviceaccount:")?;
    let (namespace, name) = rest.split_once(':')?;
    (!namespace.is_empty() && !name.is_empty() && !name.contains(':')).then_some(namespace)
}

/// Each `measuredBy` of `spec` that is a service account in `namespace`,
/// as (gate, identity).
pub fn in_approvals_namespace(spec: &ApprovalPolicySpec, namespace: &str) -> Vec<(String, String)> {
    spec.gates
        .iter()
        .flat_map(|g| {
            let by = g.automatic.iter().flat_map(|a| &a.measured_by);
            by.filter(|who| service_account_namespace(who) == Some(namespace))
                .map(|who| (g.gate.clone(), who.clone()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// `EvaluatorsIndependent`: False naming each identity the approvals'
/// namespace can act as, and why; True otherwise.
pub fn condition(spec: &ApprovalPolicySpec, namespace: &str) -> Condition {
    let flagged = in_approvals_namespace(spec, namespace);
    if flagged.is_empty() {
        return Condition::new(
            CONDITION,
            TRUE,
            "NoEvaluatorInApprovalsNamespace",
            "no measuredBy identity is a service account in this policy's namespace",
        );
    }
    let named: Vec<String> = flagged
        .iter()
        .map(|(gate, who)| format!("{who} (measuredBy of {gate})"))
        .collect();
    Condition::new(
        CONDITION,
        FALSE,
        "EvaluatorInApprovalsNamespace",
        format!(
            "{} is a service account in {namespace}, where this policy's approvals live: anyone there \
             who may create serviceaccounts/token (the edit role, so the model's owners) can act as it \
             and write its measurements; run the evaluator in a namespace of its own",
            named.join(", ")
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::policy::{Automatic, GateRule, RuleMode};

    fn spec(by: &[&str]) -> ApprovalPolicySpec {
        ApprovalPolicySpec {
            valid_for: None,
            break_glass: None,
            local_gates: Vec::new(),
            gates: vec![GateRule {
                gate: "TechnicalReview".into(),
                reviewers: None,
                automatic: Some(Automatic {
                    rule: "m.auc >= 0.9".into(),
                    measured_by: by.iter().map(|s| s.to_string()).collect(),
                    mode: RuleMode::Decide,
                }),
                deadline: None,
            }],
        }
    }

    #[test]
    fn an_evaluator_in_the_approvals_namespace_is_flagged_with_the_reason() {
        let risky = "system:serviceaccount:risk:evaluator";
        let c = condition(
            &spec(&[risky, "system:serviceaccount:ml:evaluator"]),
            "risk",
        );
        assert_eq!(c.status, FALSE);
        let message = c.message.unwrap_or_default();
        assert!(
            message.contains(risky) && message.contains("serviceaccounts/token"),
            "{message}"
        );
        assert!(!message.contains("system:serviceaccount:ml:"), "{message}");
        for by in [
            "system:serviceaccount:ml:evaluator",
            "ci@example.com",
            "system:serviceaccount:risky:evaluator",
        ] {
            assert_eq!(condition(&spec(&[by]), "risk").status, TRUE, "{by}");
        }
    }
}
