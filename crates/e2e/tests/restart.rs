//! The API server is restarted under a running operator: it reconnects,
//! catches up with what changed, and does not crash. Needs the local control
//! plane (hack/cluster.sh), which is what restarts the API server.

use std::process::Command;
use std::time::Instant;

use modelgate_e2e::{cluster::*, fixtures::*, operator::*, wait::*};

#[tokio::test(flavor = "multi_thread")]
async fn the_operator_rides_out_an_api_server_restart() {
    let client = install_modelgate().await;
    let ns = TestNamespace::new(&client, "restart").await;
    let (_approvals, mds) = create_model(&client, &ns.name, "fd", "fd", "5.5.0", None).await;

    let dir = std::env::temp_dir().join(format!("modelgate-restart-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let kubeconfig = service_account_kubeconfig(&dir);
    let port = free_port();
    let mut operator = Killed(vec![operator_process(
        &kubeconfig,
        "survivor",
        port,
        &["--leader-elect=false"],
    )]);
    eventually(60, "AwaitingApproval", || async {
        let md = mds.get("fd").await.ok()?;
        (md.status?.phase.map(|p| p.to_string()).as_deref() == Some("AwaitingApproval"))
            .then_some(())
    })
    .await;

    let restarted = Instant::now();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../hack/cluster.sh");
    let out = Command::new(script)
        .arg("restart-apiserver")
        .output()
        .expect("restart the API server");
    assert!(out.status.success(), "restart-apiserver: {}", text(&out));
    println!(
        "API server back after {:.1}s",
        restarted.elapsed().as_secs_f64()
    );

    // What changes after the restart reaches the operator through its new watches.
    approve_all(&ns.name, "fd").await;
    eventually(90, "Available after the restart", || async {
        let md = mds.get("fd").await.ok()?;
        (md.status?.phase.map(|p| p.to_string()).as_deref() == Some("Available")).then_some(())
    })
    .await;
    println!(
        "caught up {:.1}s after the restart began",
        restarted.elapsed().as_secs_f64()
    );
    let process = &mut operator.0[0];
    assert!(
        matches!(process.try_wait(), Ok(None)),
        "the operator exited during the API server restart"
    );
    let (code, _) = http_get(([127, 0, 0, 1], port).into(), "/healthz");
    assert_eq!(code, 200);
    let metrics = http_get(([127, 0, 0, 1], port).into(), "/metrics").1;
    let errors: f64 = metrics
        .lines()
        .filter(|l| {
            l.starts_with(r#"modelgate_reconcile_errors_total{controller="approval",error="kube","#)
        })
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum();
    println!("reconcile errors during the restart: {errors}");
    let _ = std::fs::remove_dir_all(&dir);
}
