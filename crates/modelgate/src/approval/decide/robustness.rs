//! Arbitrary JSON in status (what a malformed or hostile write could leave)
//! must never make deserialisation or the decision panic. The fuzz target in
//! fuzz/ explores the same surface with coverage guidance; this property
//! test runs in every test run.

use proptest::prelude::*;
use serde_json::Value;

use crate::api::{approval::ModelApproval, deployment::ModelDeployment};
use crate::approval::decide::{Input, decide};

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        prop_oneof![
            Just("True".to_string()),
            Just("False".to_string()),
            Just("TechnicalReview".to_string()),
            Just("Approved".to_string()),
            Just("2026-11-25T10:00:00Z".to_string()),
            ".{0,12}"
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("conditions".to_string()),
                    Just("type".to_string()),
                    Just("status".to_string()),
                    Just("reviewer".to_string()),
                    Just("phase".to_string()),
                    Just("history".to_string()),
                    Just("observedGates".to_string()),
                    Just("approvedAt".to_string()),
                    Just("lastTransitionTime".to_string()),
                    "[a-z]{1,6}"
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn arbitrary_status_json_never_panics(status in arb_json()) {
        let approval = serde_json::json!({
            "apiVersion": "modelgate.io/v1alpha1", "kind": "ModelApproval", "metadata": {"name": "f", "generation": 1},
            "spec": {"model": {"name": "m", "version": "1", "uri": "s3://m", "digest": "sha256:00"}, "validFor": "5s"},
            "status": status.clone(),
        });
        if let Ok(a) = serde_json::from_value::<ModelApproval>(approval) {
            let d = decide(Input { spec: &a.spec, generation: Some(1), status: a.status.as_ref(), now: jiff::Timestamp::UNIX_EPOCH, pin: None, artifact: None, created: None, release: None, imported: None });
            prop_assert!(d.status.phase.is_some());
        }
        let deployment = serde_json::json!({
            "apiVersion": "modelgate.io/v1alpha1", "kind": "ModelDeployment", "metadata": {"name": "f"},
            "spec": {"approvalRef": {"name": "f"}, "template": {"spec": {"containers": [{"name": "c"}]}}},
            "status": status,
        });
        let _ = serde_json::from_value::<ModelDeployment>(deployment);
    }
}
