//! Resilience: the operator (the real binary, as its service account) is
//! SIGKILLed at random moments while rollouts are approved, and restarted.
//! Every rollout must complete, no pod of an unapproved model may ever be
//! created, and no reviewer's decision may be lost.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, WatchEvent, WatchParams};
use modelgate::api::{approval::ModelApproval, deployment::ModelDeployment, gates::Gate};
use modelgate_e2e::{cluster::*, fixtures::*, operator::*, pods::*, wait::*};

const ROLLOUTS: usize = 20;
const HELD: usize = 4;

/// A small deterministic generator (seeded from the clock, printed) for
/// kill timings: no randomness crate for one test.
struct Lcg(u64);
impl Lcg {
    fn next_ms(&mut self, lo: u64, hi: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        lo + (self.0 >> 33) % (hi - lo)
    }
}

/// Waits until the operator has recorded that rb serves `approval` (the
/// head of its servedHistory). The operator is being killed meanwhile; the
/// kills stop after 240 s at the latest, so a working operator gets there.
async fn rb_serves(ns: &str, approval: &str) {
    let mds: kube::Api<ModelDeployment> = kube::Api::namespaced(admin().await, ns);
    eventually(300, &format!("rb serving {approval}"), || async {
        let md = mds.get("rb").await.ok()?;
        let head = md.status?.served_history.into_iter().next()?;
        (head.approval == approval).then_some(())
    })
    .await;
}

/// The rollback deployment's script, step `i` of the reviewers' loop: once
/// rb serves v1, move it to v2 and approve that; once it serves v2, revoke
/// v2 (a rollback goes back to what served before, so each must have
/// served first).
async fn rollback_step(ns: &str, i: usize) {
    if i == 3 {
        rb_serves(ns, "rb-v1").await;
        let mds: kube::Api<ModelDeployment> = kube::Api::namespaced(admin().await, ns);
        let patch = serde_json::json!({"spec": {"approvalRef": {"name": "rb-v2"}}});
        mds.patch(
            "rb",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .expect("point rb at v2");
        approve_all(ns, "rb-v2").await;
    }
    if i == ROLLOUTS / 2 {
        rb_serves(ns, "rb-v2").await;
        set_gate(
            ns,
            "rb-v2",
            "SecurityReview",
            "False",
            "securityreview@example.com",
        )
        .await
        .expect("revoke rb-v2");
    }
}

/// Waits up to 120 s for rb to say RolledBack; on a timeout, says what rb
/// and its two approvals showed instead.
async fn rolled_back(mds: &Api<ModelDeployment>, approvals: &Api<ModelApproval>) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let md = mds.get("rb").await.ok();
        if md.as_ref().and_then(satisfied_reason).as_deref() == Some("RolledBack") {
            return;
        }
        if Instant::now() > deadline {
            let mut seen = Vec::new();
            for name in ["rb-v1", "rb-v2"] {
                let a = approvals.get(name).await.ok();
                seen.push(format!(
                    "{name}: uid {:?}, phase {:?}",
                    a.as_ref().and_then(|a| a.metadata.uid.clone()),
                    a.and_then(|a| a.status).and_then(|s| s.phase)
                ));
            }
            panic!(
                "rb not rolled back after 120s\nModelDeployment status: {:?}\n{}",
                md.and_then(|m| m.status),
                seen.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_at_random_during_rollouts_nothing_unapproved_runs_and_nothing_is_lost() {
    let client = install_modelgate().await;
    let ns = TestNamespace::new(&client, "resilience").await;
    let approvals: Api<ModelApproval> = Api::namespaced(client.clone(), &ns.name);
    let mds: Api<ModelDeployment> = Api::namespaced(client.clone(), &ns.name);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);

    // Every pod the namespace ever sees, with what it serves, from a watch
    // that starts before anything is created.
    let rv = pods
        .list(&Default::default())
        .await
        .map(|l| l.metadata.resource_version.unwrap_or_default())
        .unwrap_or_default();
    let watch = pods
        .watch(&WatchParams::default().timeout(290), &rv)
        .await
        .expect("watch pods");
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let seen_pods = tokio::spawn(async move {
        let mut seen: HashMap<String, (jiff::Timestamp, Option<String>)> = HashMap::new();
        let mut watch = std::pin::pin!(watch);
        loop {
            let event = tokio::select! {
                _ = &mut stop_rx => break,
                e = watch.next() => e,
            };
            let Some(Ok(event)) = event else { break };
            if let WatchEvent::Added(p) | WatchEvent::Modified(p) = event {
                let created = p
                    .metadata
                    .creation_timestamp
                    .as_ref()
                    .map(|t| t.0)
                    .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
                let approval = p
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get("modelgate.io/approval").cloned());
                seen.entry(p.metadata.name.clone().unwrap_or_default())
                    .or_insert((created, approval));
            }
        }
        seen
    });

    for i in 0..ROLLOUTS + HELD {
        let name = format!("m{i}");
        create_model(&client, &ns.name, &name, &name, &format!("1.{i}.0"), None).await;
    }
    // One more, onRevoke Rollback: v1, then v2, then v2 revoked, all while
    // the operator is being killed.
    model_approval("rb-v1")
        .version("9.1.0")
        .create(&approvals)
        .await;
    model_approval("rb-v2")
        .version("9.2.0")
        .create(&approvals)
        .await;
    mds.create(
        &kube::api::PostParams::default(),
        &model_deployment("rb")
            .approval("rb-v1")
            .replicas(2)
            .on_revoke("Rollback")
            .build(),
    )
    .await
    .expect("rollback md");

    let dir = std::env::temp_dir().join(format!("modelgate-resilience-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let kubeconfig = service_account_kubeconfig(&dir);
    let start = |n: usize| {
        operator_process(
            &kubeconfig,
            &format!("victim-{n}"),
            free_port(),
            &["--leader-elect=false"],
        )
    };
    let mut operator = Killed(vec![start(0)]);

    // Reviewers approve the first ROLLOUTS approvals, gate by gate, while
    // the operator is killed and restarted at random moments.
    let seed = jiff::Timestamp::now().as_nanosecond() as u64;
    println!("kill timing seed {seed}");
    let mut rng = Lcg(seed);
    let reviewers = tokio::spawn({
        let ns = ns.name.clone();
        async move {
            approve_all(&ns, "rb-v1").await;
            for i in 0..ROLLOUTS {
                rollback_step(&ns, i).await;
                for gate in Gate::ALL {
                    let reviewer = format!("{}-{i}@example.com", gate.short_name());
                    set_gate(
                        &ns,
                        &format!("m{i}"),
                        gate.condition_type(),
                        "True",
                        &reviewer,
                    )
                    .await
                    .expect("gate");
                }
                // Spread the rollouts over the kills.
                tokio::time::sleep(Duration::from_millis(400)).await;
            }
        }
    });
    let mut kills = 0;
    let started = Instant::now();
    while !reviewers.is_finished() || kills < 20 {
        tokio::time::sleep(Duration::from_millis(rng.next_ms(200, 1200))).await;
        if let Some(p) = operator.0.last_mut() {
            let _ = p.kill(); // SIGKILL
            let _ = p.wait();
        }
        kills += 1;
        tokio::time::sleep(Duration::from_millis(rng.next_ms(50, 400))).await;
        operator.0.push(start(kills));
        if started.elapsed() > Duration::from_secs(240) {
            break;
        }
    }
    reviewers.await.expect("reviewers");
    println!(
        "operator SIGKILLed and restarted {kills} times in {:.1}s",
        started.elapsed().as_secs_f64()
    );

    // Left alone, the last operator finishes every approved rollout.
    for i in 0..ROLLOUTS {
        let name = format!("m{i}");
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let md = mds.get(&name).await.ok();
            let phase = md
                .as_ref()
                .and_then(|m| m.status.as_ref())
                .and_then(|s| s.phase)
                .map(|p| p.to_string());
            if phase.as_deref() == Some("Available") {
                break;
            }
            if Instant::now() > deadline {
                let a = approvals.get(&name).await.ok().and_then(|a| a.status);
                panic!(
                    "{name} not Available after 120s\nModelDeployment status: {:?}\nModelApproval status: {a:?}",
                    md.and_then(|m| m.status)
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // The rollback held through the kills: rb serves v1 again. The last
    // operator may have started a moment ago, and the revocation is said
    // (ApprovalRevoked) before the rollback is applied: wait for the
    // rollback, as the rollouts above are waited for.
    phase(
        &mds,
        "rb",
        modelgate::api::deployment::DeploymentPhase::Revoked,
    )
    .await;
    rolled_back(&mds, &approvals).await;
    pods_serve(&client, &ns.name, "rb", &digest_of("9.1.0")).await;
    // No reviewer's decision was lost, and each is recorded exactly once.
    for i in 0..ROLLOUTS {
        let a = approvals.get(&format!("m{i}")).await.expect("approval");
        let status = a.status.clone().unwrap_or_default();
        for gate in Gate::ALL {
            let c = condition_of(&a, gate.condition_type())
                .cloned()
                .unwrap_or_default();
            assert_eq!(
                (c.status.as_str(), c.reviewer),
                (
                    "True",
                    Some(format!("{}-{i}@example.com", gate.short_name()))
                ),
                "m{i} {gate}"
            );
            let recorded = status
                .history
                .iter()
                .filter(|h| h.subject == gate.condition_type() && h.to == "True")
                .count();
            assert_eq!(recorded, 1, "m{i} {gate} recorded {recorded} times");
        }
    }
    // The held ones never got a Deployment.
    for i in ROLLOUTS..ROLLOUTS + HELD {
        let md = mds.get(&format!("m{i}")).await.expect("md");
        assert_eq!(
            md.status
                .and_then(|s| s.phase)
                .map(|p| p.to_string())
                .as_deref(),
            Some("AwaitingApproval")
        );
    }
    drop(operator);

    // Every pod ever created served an approval that was Approved before
    // the pod existed (history times are whole seconds: same second counts).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _ = stop_tx.send(());
    let seen = seen_pods.await.expect("pod watch");
    assert!(seen.len() >= ROLLOUTS, "saw {} pods", seen.len());
    for (pod, (created, approval)) in &seen {
        let approval = approval
            .clone()
            .unwrap_or_else(|| panic!("pod {pod} has no approval annotation"));
        let a = approvals.get(&approval).await.expect("approval of a pod");
        let approved_at = a.status.as_ref().and_then(|s| {
            s.history
                .iter()
                .find(|h| h.subject == "Phase" && h.to == "Approved")
                .map(|h| h.time.0)
        });
        let approved_at = approved_at
            .unwrap_or_else(|| panic!("pod {pod} serves {approval}, which was never Approved"));
        assert!(
            approved_at.as_second() <= created.as_second(),
            "pod {pod} created at {created} before {approval} was Approved at {approved_at}"
        );
        // And none was created after its approval was revoked.
        let revoked_at = a.status.as_ref().and_then(|s| {
            s.history
                .iter()
                .find(|h| h.subject == "Phase" && h.to == "Rejected")
                .map(|h| h.time.0)
        });
        if let Some(revoked_at) = revoked_at {
            assert!(
                created.as_second() <= revoked_at.as_second(),
                "pod {pod} serving {approval} created at {created}, after its revocation at {revoked_at}"
            );
        }
    }
    println!(
        "{} pods checked against their approvals; {} held deployments had none",
        seen.len(),
        HELD
    );
    let _ = std::fs::remove_dir_all(&dir);
}
