//! Quorum gates: N distinct approvals pass the gate, any one rejection fails
//! it, and every reviewer is named. Pure.

use std::collections::BTreeSet;

use crate::api::policy::Review;

/// What the reviews of one gate add up to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tally {
    /// Enough distinct approvals and no rejection: who approved.
    Passed(Vec<String>),
    /// Someone rejected: who, and why.
    Vetoed {
        by: String,
        reason: Option<String>,
        message: Option<String>,
    },
    /// Not yet: who approved so far.
    Waiting(Vec<String>),
}

/// Approve and Reject, as reviews spell them.
pub const APPROVE: &str = "Approve";
pub const REJECT: &str = "Reject";

/// The tally of `gate`'s reviews against a quorum of `needed`.
pub fn tally(gate: &str, needed: u32, reviews: &[Review]) -> Tally {
    let mine = || {
        reviews
            .iter()
            .filter(|r| r.gate == gate && !r.reviewer.trim().is_empty())
    };
    if let Some(r) = mine().find(|r| r.decision == REJECT) {
        return Tally::Vetoed {
            by: r.reviewer.clone(),
            reason: r.reason.clone(),
            message: r.message.clone(),
        };
    }
    // A set: one person is one approval however their entry is written.
    let approvers: BTreeSet<String> = mine()
        .filter(|r| r.decision == APPROVE)
        .map(|r| r.reviewer.clone())
        .collect();
    let approvers: Vec<String> = approvers.into_iter().collect();
    if approvers.len() >= needed as usize {
        Tally::Passed(approvers)
    } else {
        Tally::Waiting(approvers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn review(gate: &str, who: &str, decision: &str) -> Review {
        Review {
            gate: gate.into(),
            reviewer: who.into(),
            decision: decision.into(),
            ..Review::default()
        }
    }

    #[test]
    fn two_of_n_passes_at_the_second_distinct_reviewer() {
        let g = "SecurityReview";
        let one = [review(g, "a", APPROVE)];
        assert_eq!(tally(g, 2, &one), Tally::Waiting(vec!["a".into()]));
        let same_twice = [review(g, "a", APPROVE), review(g, "a", APPROVE)];
        assert_eq!(tally(g, 2, &same_twice), Tally::Waiting(vec!["a".into()]));
        let other_gate = [review(g, "a", APPROVE), review("LegalReview", "b", APPROVE)];
        assert_eq!(tally(g, 2, &other_gate), Tally::Waiting(vec!["a".into()]));
        let two = [review(g, "a", APPROVE), review(g, "b", APPROVE)];
        assert_eq!(
            tally(g, 2, &two),
            Tally::Passed(vec!["a".into(), "b".into()])
        );
        let veto = [
            review(g, "a", APPROVE),
            review(g, "b", APPROVE),
            review(g, "c", REJECT),
        ];
        assert!(matches!(tally(g, 2, &veto), Tally::Vetoed { by, .. } if by == "c"));
    }

    proptest! {
        #[test]
        fn the_tally_is_the_count(
            needed in 1u32..5,
            entries in proptest::collection::vec((0usize..6, proptest::bool::ANY, 0usize..2), 0..12),
        ) {
            let gates = ["SecurityReview", "LegalReview"];
            let reviews: Vec<Review> = entries
                .iter()
                .map(|(who, approve, gate)| review(gates[*gate], &format!("r{who}"), if *approve { APPROVE } else { REJECT }))
                .collect();
            let g = gates[0];
            let rejected = reviews.iter().any(|r| r.gate == g && r.decision == REJECT);
            let distinct: BTreeSet<&str> = reviews
                .iter()
                .filter(|r| r.gate == g && r.decision == APPROVE)
                .map(|r| r.reviewer.as_str())
                .collect();
            match tally(g, needed, &reviews) {
                Tally::Vetoed { .. } => prop_assert!(rejected),
                Tally::Passed(names) => {
                    prop_assert!(!rejected && distinct.len() >= needed as usize);
                    prop_assert_eq!(names.len(), distinct.len(), "every approver named");
                }
                Tally::Waiting(names) => {
                    prop_assert!(!rejected && distinct.len() < needed as usize);
                    prop_assert_eq!(names.len(), distinct.len());
                }
            }
        }
    }
}
