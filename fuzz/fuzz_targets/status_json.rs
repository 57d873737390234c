//! Arbitrary bytes as the status of a ModelApproval and a ModelDeployment:
//! deserialising them, and deciding from whatever deserialises, must never
//! panic. Run with `cargo +nightly fuzz run status_json` from the repository
//! root (see docs/performance.md).
#![no_main]

use libfuzzer_sys::fuzz_target;
use modelgate::api::{approval::ModelApproval, deployment::ModelDeployment};
use modelgate::approval::decide::{Input, decide};

fuzz_target!(|data: &[u8]| {
    let Ok(status) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let approval = serde_json::json!({
        "apiVersion": "modelgate.io/v1alpha1", "kind": "ModelApproval", "metadata": {"name": "f", "generation": 1},
        "spec": {"model": {"name": "m", "version": "1", "uri": "s3://m", "digest": "sha256:00"}, "validFor": "5s"},
        "status": status.clone(),
    });
    if let Ok(a) = serde_json::from_value::<ModelApproval>(approval) {
        let now = jiff::Timestamp::UNIX_EPOCH;
        let d = decide(Input { spec: &a.spec, generation: Some(1), status: a.status.as_ref(), now, pin: None });
        let _ = serde_json::to_string(&d.status);
    }
    let deployment = serde_json::json!({
        "apiVersion": "modelgate.io/v1alpha1", "kind": "ModelDeployment", "metadata": {"name": "f"},
        "spec": {"approvalRef": {"name": "f"}, "template": {"spec": {"containers": [{"name": "c"}]}}},
        "status": status,
    });
    let _ = serde_json::from_value::<ModelDeployment>(deployment);
});
