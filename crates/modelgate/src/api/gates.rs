//! The five review gates: their condition types, their short names and the
//! reviewer groups that own them by default. Everything that speaks of a gate
//! by name goes through [`Gate`], so a typo cannot invent a sixth one.

use std::fmt;
use std::str::FromStr;

/// One of the five review gates of a ModelApproval.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Gate {
    Technical,
    Fairness,
    Security,
    Legal,
    Business,
}

/// The condition type the operator owns on a ModelApproval.
pub const APPROVED_CONDITION: &str = "Approved";
/// The condition type that reports malformed reviewer conditions.
pub const REVIEWS_VALID_CONDITION: &str = "ReviewsValid";
/// The condition types only the operator writes on a ModelApproval.
pub const OPERATOR_CONDITIONS: [&str; 2] = [APPROVED_CONDITION, REVIEWS_VALID_CONDITION];

/// Whether a ModelApproval condition of `type_` is the operator's to write.
pub fn is_operator_condition(type_: &str) -> bool {
    OPERATOR_CONDITIONS.contains(&type_)
}

impl Gate {
    /// Every gate, in the order reviews usually happen and reports list them.
    pub const ALL: [Gate; 5] = [
        Gate::Technical,
        Gate::Fairness,
        Gate::Security,
        Gate::Legal,
        Gate::Business,
    ];

    /// The condition type a reviewer writes, e.g. `SecurityReview`.
    pub const fn condition_type(self) -> &'static str {
        match self {
            Gate::Technical => "TechnicalReview",
            Gate::Fairness => "FairnessReview",
            Gate::Security => "SecurityReview",
            Gate::Legal => "LegalReview",
            Gate::Business => "BusinessReview",
        }
    }

    /// The short name people type: `technical`, `fairness`, …
    pub const fn short_name(self) -> &'static str {
        match self {
            Gate::Technical => "technical",
            Gate::Fairness => "fairness",
            Gate::Security => "security",
            Gate::Legal => "legal",
            Gate::Business => "business",
        }
    }

    /// The reviewer group that may set this gate unless configured otherwise.
    pub const fn default_group(self) -> &'static str {
        match self {
            Gate::Technical => "modelgate:technical-reviewers",
            Gate::Fairness => "modelgate:fairness-reviewers",
            Gate::Security => "modelgate:security-reviewers",
            Gate::Legal => "modelgate:legal-reviewers",
            Gate::Business => "modelgate:business-reviewers",
        }
    }

    /// The gate whose condition type is exactly `type_`, if any.
    pub fn from_condition_type(type_: &str) -> Option<Gate> {
        Gate::ALL.into_iter().find(|g| g.condition_type() == type_)
    }
}

impl fmt::Display for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.condition_type())
    }
}

/// The error for a gate name that is none of the five.
#[derive(Debug, thiserror::Error)]
#[error(
    "unknown gate {0:?}: expected one of technical, fairness, security, legal, business (or TechnicalReview, …)"
)]
pub struct UnknownGate(pub String);

impl FromStr for Gate {
    type Err = UnknownGate;

    /// Accepts the condition type or the short name, in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        Gate::ALL
            .into_iter()
            .find(|g| lower == g.short_name() || lower == g.condition_type().to_ascii_lowercase())
            .ok_or_else(|| UnknownGate(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    /// The rendered manifests and the chart's values must name exactly the
    /// gates of [`Gate::ALL`]: the admission policy's gate map (built from
    /// values.reviewerGroups) and the values' keys and default groups.
    #[test]
    fn the_chart_and_the_admission_policy_name_the_same_gates() {
        use super::Gate;
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
        let read = |path: &str| {
            std::fs::read_to_string(format!("{root}/{path}"))
                .unwrap_or_else(|e| panic!("read {path}: {e}"))
        };
        let rendered = read("deploy/modelgate.yaml");
        let group_of = rendered
            .lines()
            .skip_while(|l| !l.contains("- name: groupOf"))
            .nth(2)
            .unwrap_or_else(|| panic!("no groupOf variable in deploy/modelgate.yaml"));
        let mut in_policy: Vec<&str> = group_of.split('\'').skip(1).step_by(2).collect();
        in_policy.sort();
        let mut in_rust: Vec<&str> = Gate::ALL.iter().map(|g| g.condition_type()).collect();
        in_rust.sort();
        assert_eq!(
            in_policy, in_rust,
            "the admission policy's gates: {group_of}"
        );

        let values: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(&read("charts/modelgate/values.yaml"))
                .unwrap_or_else(|e| panic!("values.yaml: {e}"));
        let groups = values["reviewerGroups"]
            .as_mapping()
            .unwrap_or_else(|| panic!("values.yaml has no reviewerGroups map"));
        assert_eq!(groups.len(), Gate::ALL.len(), "one reviewer group per gate");
        for gate in Gate::ALL {
            assert_eq!(
                groups.get(gate.short_name()).and_then(|v| v.as_str()),
                Some(gate.default_group()),
                "values.yaml reviewerGroups.{}",
                gate.short_name()
            );
        }
    }

    use super::*;

    #[test]
    fn names_round_trip() {
        for g in Gate::ALL {
            assert_eq!(Gate::from_condition_type(g.condition_type()), Some(g));
            assert_eq!(g.short_name().parse::<Gate>().ok(), Some(g));
            assert_eq!(
                g.condition_type().to_uppercase().parse::<Gate>().ok(),
                Some(g)
            );
        }
        assert!("compliance".parse::<Gate>().is_err());
        assert_eq!(Gate::from_condition_type("Approved"), None);
    }
}
