//! The four measurements, each against a baseline taken in the same run.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use modelgate::api::review::{gate_patch, review_manager, review_patch};
use modelgate::api::{
    approval::ModelApproval, deployment::ModelDeployment, gates::Gate, policy::ApprovalPolicy,
};
use modelgate::policy::quorum::{APPROVE, REJECT};
use serde_json::json;

use super::baseline;
use super::cluster::{self, BoxError};
use super::server_cpu::{self, ServerCpu};
use super::stats::{cpu_time, ms, peak_rss_mib, percentile, ratio};
use super::{Knobs, Scenario};

fn digest(seed: &str) -> String {
    let hex: String = seed.bytes().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{:0>64}", &hex[hex.len().saturating_sub(64)..])
}

pub(crate) fn approval(name: &str) -> serde_json::Value {
    let (uri, digest) = super::oci::model()
        .cloned()
        .unwrap_or_else(|| (format!("s3://bench/{name}/"), digest(name)));
    json!({
        "apiVersion": "modelgate.io/v1alpha1", "kind": "ModelApproval", "metadata": {"name": name},
        "spec": {"model": {"name": "bench-model", "version": "1.0.0", "uri": uri, "digest": digest}},
    })
}

fn model_deployment(name: &str) -> serde_json::Value {
    json!({
        "apiVersion": "modelgate.io/v1alpha1", "kind": "ModelDeployment", "metadata": {"name": name},
        "spec": {"approvalRef": {"name": name}, "replicas": 1,
                 "template": {"spec": {"containers": [{"name": "server", "image": "registry.example.com/serve:1"}]}}},
    })
}

async fn create_all(
    client: &Client,
    ns: &str,
    names: &[String],
    deployments: bool,
    concurrency: usize,
) -> Result<(), BoxError> {
    let approvals: Api<ModelApproval> = Api::namespaced(client.clone(), ns);
    let mds: Api<ModelDeployment> = Api::namespaced(client.clone(), ns);
    stream::iter(names.iter().cloned())
        .map(|name| {
            let (approvals, mds) = (approvals.clone(), mds.clone());
            async move {
                let a: ModelApproval = serde_json::from_value(approval(&name))?;
                approvals.create(&PostParams::default(), &a).await?;
                if deployments {
                    let md: ModelDeployment = serde_json::from_value(model_deployment(&name))?;
                    mds.create(&PostParams::default(), &md).await?;
                }
                Ok::<_, BoxError>(())
            }
        })
        .buffer_unordered(concurrency)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(())
}

/// One reviewer's gate, server-side applied as the plugin does.
pub(crate) async fn set_gate(
    client: &Client,
    ns: &str,
    name: &str,
    gate: Gate,
    status: &str,
    reviewer: &str,
    under_policy: bool,
) -> Result<(), BoxError> {
    let api: Api<ModelApproval> = Api::namespaced(client.clone(), ns);
    let now = jiff::Timestamp::now();
    // The bench policy's quorum gate takes each reviewer's own review.
    let (patch, manager) = if under_policy && gate == QUORUM_GATE {
        let decision = if status == "True" { APPROVE } else { REJECT };
        (
            review_patch(name, gate, decision, "Bench", None, reviewer, now),
            review_manager(gate, reviewer),
        )
    } else {
        (
            gate_patch(name, gate, status, "Bench", None, reviewer, now),
            format!("bench-{}", gate.short_name()),
        )
    };
    api.patch_status(
        name,
        &PatchParams::apply(&manager).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}

/// The gate the bench policy decides by a quorum of two.
const QUORUM_GATE: Gate = Gate::Security;

/// The ApprovalPolicy every measured namespace runs under: a quorum gate
/// and an automatic gate (Advise, so that people still decide it).
async fn bench_policy(admin: &Client, ns: &str) -> Result<(), BoxError> {
    let policy = json!({
        "apiVersion": "modelgate.io/v1alpha1", "kind": "ApprovalPolicy",
        "metadata": {"name": "default", "namespace": ns},
        "spec": {"gates": [
            {"gate": QUORUM_GATE.condition_type(), "reviewers": 2},
            {"gate": "TechnicalReview", "automatic": {"rule": "m.auc >= 0.9", "measuredBy": ["system:serviceaccount:bench:evaluator"], "mode": "Advise"}},
        ]},
    });
    let api: Api<ApprovalPolicy> = Api::namespaced(admin.clone(), ns);
    api.patch(
        "default",
        &PatchParams::apply("bench").force(),
        &Patch::Apply(&policy),
    )
    .await?;
    Ok(())
}

/// Passes all five gates of each of `names`, one reviewer per gate.
pub(crate) async fn pass_all_gates(
    ns: &str,
    names: &[String],
    concurrency: usize,
    under_policy: bool,
) -> Result<(), BoxError> {
    let mut reviewers = Vec::new();
    for (i, gate) in Gate::ALL.into_iter().enumerate() {
        reviewers.push((gate, cluster::reviewer(gate, i).await?));
    }
    // Its quorum of two: a second reviewer of that gate.
    if under_policy {
        reviewers.push((QUORUM_GATE, cluster::reviewer(QUORUM_GATE, 99).await?));
    }
    let writes = names
        .iter()
        .flat_map(|name| reviewers.iter().map(move |r| (name, r)));
    stream::iter(writes)
        .map(|(name, (gate, (client, who)))| {
            set_gate(client, ns, name, *gate, "True", who, under_policy)
        })
        .buffer_unordered(concurrency)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(())
}

/// What one reviewer's decisions are tracked by: the gate, or for the
/// quorum gate their own review.
fn decision_key(gate: Gate, who: &str, under_policy: bool) -> String {
    if under_policy && gate == QUORUM_GATE {
        format!("Review/{}/{who}", gate.condition_type())
    } else {
        gate.condition_type().to_string()
    }
}

/// The decisions the operator has recorded on `a`, by key, as True/False.
fn observed_decisions(a: &ModelApproval) -> Vec<(String, String)> {
    let Some(status) = a.status.as_ref() else {
        return Vec::new();
    };
    let gates = status
        .observed_gates
        .iter()
        .map(|g| (g.gate.clone(), g.status.clone()));
    let reviews = status
        .observed_inputs
        .iter()
        .filter(|o| o.key.starts_with("Review/"))
        .map(|o| (o.key.clone(), as_status(&o.value)));
    gates.chain(reviews).collect()
}

/// The decision as written by the reviewer under `key`, as True/False.
fn written_decision(a: &ModelApproval, key: &str) -> Option<String> {
    let status = a.status.as_ref()?;
    match key.strip_prefix("Review/") {
        Some(rest) => status
            .reviews
            .iter()
            .find(|r| format!("{}/{}", r.gate, r.reviewer) == rest)
            .map(|r| as_status(&r.decision)),
        None => status
            .conditions
            .iter()
            .find(|c| c.type_ == key)
            .map(|c| c.status.clone()),
    }
}

fn as_status(decision: &str) -> String {
    if decision == APPROVE { "True" } else { "False" }.to_string()
}

/// Marks the namespaces the bench creates, so that any run can find and
/// remove what an earlier, interrupted one left.
const BENCH_LABEL: &str = "modelgate.io/bench";

pub(crate) async fn namespace(admin: &Client, name: &str) -> Result<(), BoxError> {
    let ns: Namespace = serde_json::from_value(
        json!({"metadata": {"name": name, "labels": {BENCH_LABEL: "true"}}}),
    )?;
    Api::<Namespace>::all(admin.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    Ok(())
}

/// Deletes every bench namespace and waits until they are gone: a namespace
/// still terminating would keep the API server (and a running operator)
/// busy during the next measurement. The objects are deleted as collections
/// first, which is much quicker than leaving it to the namespace controller.
async fn remove_namespaces(admin: &Client) -> Result<(), BoxError> {
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    let bench = ListParams::default().labels(&format!("{BENCH_LABEL}=true"));
    let names: Vec<String> = namespaces
        .list_metadata(&bench)
        .await?
        .items
        .iter()
        .map(|n| n.name_any())
        .collect();
    if names.is_empty() {
        return Ok(());
    }
    println!("deleting bench namespaces {}", names.join(", "));
    let everything = ListParams::default();
    for ns in &names {
        let _ = Api::<ModelDeployment>::namespaced(admin.clone(), ns)
            .delete_collection(&DeleteParams::background(), &everything)
            .await;
        release_in_use(admin, ns).await;
        let _ = Api::<ModelApproval>::namespaced(admin.clone(), ns)
            .delete_collection(&DeleteParams::background(), &everything)
            .await;
        let _ = Api::<Deployment>::namespaced(admin.clone(), ns)
            .delete_collection(&DeleteParams::background(), &everything)
            .await;
        let _ = namespaces.delete(ns, &DeleteParams::background()).await;
    }
    let started = Instant::now();
    wait_until(Duration::from_secs(600), || async {
        let left = namespaces.list_metadata(&bench).await.ok()?.items.len();
        if left == 0 {
            return Some(());
        }
        println!(
            "  {left} namespace(s) still terminating after {:.0}s",
            started.elapsed().as_secs_f64()
        );
        tokio::time::sleep(Duration::from_secs(5)).await;
        None
    })
    .await
}

/// Takes the operator's in-use finalizer off every approval of `ns`, as the
/// operator would once their deployments are gone: the operator under test
/// may no longer be running to do it.
async fn release_in_use(admin: &Client, ns: &str) {
    let approvals: Api<ModelApproval> = Api::namespaced(admin.clone(), ns);
    let Ok(list) = approvals.list_metadata(&ListParams::default()).await else {
        return;
    };
    let params = PatchParams::apply(modelgate::vocabulary::IN_USE_FIELD_MANAGER).force();
    for approval in list.items.iter().filter(|a| !a.finalizers().is_empty()) {
        let patch = modelgate::approval::in_use::mark_patch(&approval.name_any(), false);
        let _ = approvals
            .patch(&approval.name_any(), &params, &Patch::Apply(&patch))
            .await;
    }
}

/// What the settled approvals of `ns` take in etcd, with their signed
/// records and Events, against their own size.
async fn etcd_bytes(ns: &str, approvals: usize) {
    let group = |resource| super::etcd::stored("modelgate.io", resource, ns);
    let (Some(own), Some(records), Some(checkpoints)) = (
        group("modelapprovals").await,
        group("approvalrecords").await,
        group("recordcheckpoints").await,
    ) else {
        println!("  etcd bytes per approval: not measured (no MODELGATE_ETCD)");
        return;
    };
    let events = super::etcd::stored("", "events", ns)
        .await
        .unwrap_or_default();
    let per = |b: u64| b as f64 / approvals.max(1) as f64;
    let total = own.1 + records.1 + checkpoints.1 + events.1;
    println!(
        "  etcd bytes per approval: {:.0} ({:.0} the approval itself; {:.0} its {:.2} signed records; {:.0} Events; {:.0} checkpoints): {:.2}x the approval's own size",
        per(total),
        per(own.1),
        per(records.1),
        records.0 as f64 / approvals.max(1) as f64,
        per(events.1),
        per(checkpoints.1),
        total as f64 / own.1.max(1) as f64
    );
}

pub(crate) fn section(title: &str) {
    println!("\n== {title}");
}

pub async fn run_all(knobs: Knobs) -> Result<(), BoxError> {
    let admin = cluster::client(None, &[]).await?;
    let params: Api<ConfigMap> =
        Api::namespaced(admin.clone(), modelgate::vocabulary::DEFAULT_NAMESPACE);
    if params.get_opt("modelgate-authority").await?.is_none() {
        return Err("modelgate is not installed: run hack/bench.sh (kubectl apply -f crds/ && kubectl apply -k deploy/)".into());
    }
    let run = jiff::Timestamp::now().as_second();
    let dir = std::env::temp_dir().join(format!("modelgate-bench-{run}"));
    std::fs::create_dir_all(&dir)?;
    let kubeconfig = cluster::operator_kubeconfig(&admin, &dir).await?;
    println!("modelgate-bench: {knobs:?}");
    if knobs.oci {
        super::oci::push(&dir)?;
    }

    let scenarios = scenarios(&admin, &knobs, &kubeconfig, run);
    // Interrupted or failed, the run still removes what it created (a run
    // killed by hand once left 200 pods that filled the nodes).
    let outcome = tokio::select! {
        outcome = scenarios => outcome,
        _ = tokio::signal::ctrl_c() => Err("interrupted".into()),
    };
    println!("\n==> cleaning up");
    if let Err(e) = remove_namespaces(&admin).await {
        eprintln!("modelgate-bench: could not remove the bench namespaces: {e}");
    }
    let _ = std::fs::remove_dir_all(&dir);
    let results = outcome?;
    if let Some(parent) = knobs.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&knobs.out, serde_json::to_string_pretty(&results)?)?;
    println!("results written to {}", knobs.out.display());
    let lost = results
        .get("churn")
        .and_then(|c| c["lost_decisions"].as_u64())
        .unwrap_or(0);
    if lost > 0 {
        return Err(format!("{lost} gate decisions were lost under churn").into());
    }
    Ok(())
}

/// The chosen scenarios, one after the other; their results by name.
async fn scenarios(
    admin: &Client,
    knobs: &Knobs,
    kubeconfig: &std::path::Path,
    run: i64,
) -> Result<serde_json::Map<String, serde_json::Value>, BoxError> {
    remove_namespaces(admin).await?;
    let mut results = serde_json::Map::new();
    results.insert("knobs".into(), json!({
        "latency_approvals": knobs.latency_approvals, "cold_approvals": knobs.cold_approvals,
        "cold_deployments": knobs.cold_deployments, "rest_secs": knobs.rest_secs,
        "churn_reviewers": knobs.churn_reviewers, "churn_secs": knobs.churn_secs, "concurrency": knobs.concurrency,
        "fleet_resync_secs": knobs.fleet_resync_secs,
        "scenarios": knobs.scenarios.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
    }));
    if knobs.scenarios.contains(&Scenario::Latency) {
        results.insert(
            "latency".into(),
            latency(admin, knobs, kubeconfig, run).await?,
        );
        remove_namespaces(admin).await?;
    }
    if knobs.scenarios.contains(&Scenario::Cold) {
        let (cold, rest) = cold_start_and_rest(admin, knobs, kubeconfig, run).await?;
        results.insert("cold_start".into(), cold);
        results.insert("at_rest".into(), rest);
        remove_namespaces(admin).await?;
    }
    if knobs.scenarios.contains(&Scenario::Churn) {
        results.insert("churn".into(), churn(admin, knobs, kubeconfig, run).await?);
        remove_namespaces(admin).await?;
    }
    if knobs.scenarios.contains(&Scenario::Fleet) {
        let fleet = super::fleet::fleet(admin, knobs, kubeconfig, run).await?;
        results.insert("fleet".into(), fleet);
    }
    Ok(results)
}

/// How many objects of `api` pass `has` (None if the list fails).
async fn count<K>(api: &Api<K>, has: fn(&K) -> bool) -> Option<usize>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let list = api.list(&ListParams::default()).await.ok()?;
    Some(list.items.iter().filter(|o| has(o)).count())
}

/// Watches `api` and reports when each object `mark` names was seen.
fn watch_marks<K>(
    api: Api<K>,
    mark: fn(K) -> Option<String>,
) -> (
    tokio::task::JoinHandle<()>,
    tokio::sync::mpsc::UnboundedReceiver<(String, Instant)>,
)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let watch = tokio::spawn(
        watcher(api, watcher::Config::default())
            .applied_objects()
            .for_each(move |object| {
                if let Some(m) = object.ok().and_then(mark) {
                    let _ = tx.send((m, Instant::now()));
                }
                futures::future::ready(())
            }),
    );
    (watch, rx)
}

/// When a [`watch_marks`] watch first reports `want` (at most a minute).
async fn first_seen(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<(String, Instant)>,
    want: &str,
) -> Result<Instant, BoxError> {
    let seen = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some((mark, at)) = rx.recv().await {
            if mark == want {
                return Some(at);
            }
        }
        None
    })
    .await?;
    Ok(seen.ok_or("the watch ended")?)
}

/// Gate-to-rollout latency, against one plain apply round trip (the floor)
/// and the Deployment controller reacting to a template change (the peer).
async fn latency(
    admin: &Client,
    knobs: &Knobs,
    kubeconfig: &std::path::Path,
    run: i64,
) -> Result<serde_json::Value, BoxError> {
    section(&format!(
        "gate-to-rollout latency, {} approvals",
        knobs.latency_approvals
    ));
    let ns = format!("bench-lat-{run}");
    namespace(admin, &ns).await?;
    let names: Vec<String> = (0..knobs.latency_approvals)
        .map(|i| format!("lat-{i}"))
        .collect();
    create_all(admin, &ns, &names, true, knobs.concurrency).await?;
    let port = cluster::free_port();
    let operator = cluster::start_operator(kubeconfig, port)?;
    let mut reviewers = Vec::new();
    for gate in Gate::ALL {
        reviewers.push(cluster::reviewer(gate, 0).await?);
    }
    // Four gates first, so only the last one is left for the measurement.
    stream::iter(
        names
            .iter()
            .flat_map(|n| (0..4).map(move |g| (n.clone(), g))),
    )
    .map(|(name, g)| {
        let (client, who) = &reviewers[g];
        let ns = ns.clone();
        async move { set_gate(client, &ns, &name, Gate::ALL[g], "True", who, false).await }
    })
    .buffer_unordered(knobs.concurrency)
    .try_collect::<Vec<_>>()
    .await?;
    let mds: Api<ModelDeployment> = Api::namespaced(admin.clone(), &ns);
    wait_until(Duration::from_secs(300), || async {
        let list = mds.list(&ListParams::default()).await.ok()?;
        list.items
            .iter()
            .all(|m| {
                m.status
                    .as_ref()
                    .is_some_and(|s| s.pending_gates == ["BusinessReview"])
            })
            .then_some(())
    })
    .await?;

    // When each Deployment's template first carries its approval's digest.
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), &ns);
    let (watch, mut rx) = watch_marks(deployments, |d| Some(d.name_any()));
    let (business, who) = &reviewers[4];
    let mut samples = Vec::new();
    for name in &names {
        set_gate(business, &ns, name, Gate::Business, "True", who, false).await?;
        let accepted = Instant::now();
        let seen = first_seen(&mut rx, name).await?;
        samples.push(seen.saturating_duration_since(accepted));
    }
    watch.abort();
    drop(operator);

    // Floor: one server-side apply round trip.
    let cms: Api<ConfigMap> = Api::namespaced(admin.clone(), &ns);
    let mut floor = Vec::new();
    for i in 0..knobs.latency_approvals {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "floor"}, "data": {"i": i.to_string()}});
        let t = Instant::now();
        cms.patch(
            "floor",
            &PatchParams::apply("bench-floor").force(),
            &Patch::Apply(&cm),
        )
        .await?;
        floor.push(t.elapsed());
    }

    // Peer: kube-controller-manager's Deployment controller, from a template
    // change accepted to its new ReplicaSet existing.
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), &ns);
    let plain: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "peer"},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "peer"}}, "revisionHistoryLimit": 1000,
                 "template": {"metadata": {"labels": {"app": "peer"}}, "spec": {"containers": [{"name": "s", "image": "registry.example.com/s:1"}]}}},
    }))?;
    deployments.create(&PostParams::default(), &plain).await?;
    let replicasets: Api<ReplicaSet> = Api::namespaced(admin.clone(), &ns);
    let (watch, mut rx) = watch_marks(replicasets, |rs| {
        rs.spec
            .template?
            .metadata?
            .annotations?
            .get("bench/change")
            .cloned()
    });
    let mut peer = Vec::new();
    for i in 0..knobs.latency_approvals {
        let patch = json!({"spec": {"template": {"metadata": {"annotations": {"bench/change": i.to_string()}}}}});
        deployments
            .patch("peer", &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        let accepted = Instant::now();
        let seen = first_seen(&mut rx, &i.to_string()).await?;
        peer.push(seen.saturating_duration_since(accepted));
    }
    watch.abort();

    let (p50, p99) = (percentile(&samples, 50.0), percentile(&samples, 99.0));
    let (floor50, peer50, peer99) = (
        percentile(&floor, 50.0),
        percentile(&peer, 50.0),
        percentile(&peer, 99.0),
    );
    println!(
        "modelgate gate-to-template: p50 {} ms, p99 {} ms",
        ms(p50),
        ms(p99)
    );
    println!(
        "floor (one apply round trip): p50 {} ms -> ratio {}x",
        ms(floor50),
        ratio(p50, floor50)
    );
    println!(
        "peer (Deployment controller, template -> ReplicaSet): p50 {} ms, p99 {} ms -> ratio {}x",
        ms(peer50),
        ms(peer99),
        ratio(p50, peer50)
    );
    Ok(json!({
        "samples": samples.len(), "p50_ms": ms(p50), "p99_ms": ms(p99),
        "floor_p50_ms": ms(floor50), "peer_p50_ms": ms(peer50), "peer_p99_ms": ms(peer99),
        "ratio_to_floor_p50": ratio(p50, floor50), "ratio_to_peer_p50": ratio(p50, peer50), "ratio_to_peer_p99": ratio(p99, peer99),
    }))
}

pub(crate) async fn wait_until<F, Fut>(limit: Duration, mut check: F) -> Result<(), BoxError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<()>>,
{
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check().await.is_some() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(format!("not settled within {limit:?}").into())
}

/// Cold start at scale, against a plain client writing the same statuses;
/// then the operator at rest.
async fn cold_start_and_rest(
    admin: &Client,
    knobs: &Knobs,
    kubeconfig: &std::path::Path,
    run: i64,
) -> Result<(serde_json::Value, serde_json::Value), BoxError> {
    section(&format!(
        "cold start: {} approvals, {} deployments",
        knobs.cold_approvals, knobs.cold_deployments
    ));
    let ns = format!("bench-cold-{run}");
    namespace(admin, &ns).await?;
    if knobs.policy {
        bench_policy(admin, &ns).await?;
    }
    let names: Vec<String> = (0..knobs.cold_approvals)
        .map(|i| format!("cold-{i}"))
        .collect();
    let created = Instant::now();
    create_all(
        admin,
        &ns,
        &names[..knobs.cold_deployments.min(names.len())],
        true,
        knobs.concurrency,
    )
    .await?;
    create_all(
        admin,
        &ns,
        &names[knobs.cold_deployments.min(names.len())..],
        false,
        knobs.concurrency,
    )
    .await?;
    println!(
        "created {} objects in {:.1}s",
        names.len() + knobs.cold_deployments,
        created.elapsed().as_secs_f64()
    );
    let first_free = knobs.cold_deployments.min(names.len());
    let approved = &names[first_free..(first_free + knobs.cold_approved).min(names.len())];
    pass_all_gates(&ns, approved, knobs.concurrency, knobs.policy).await?;
    println!(
        "{} of them passed all five gates before the operator starts (each an Approved phase and a signed record to write)",
        approved.len()
    );

    let requests_before = cluster::api_requests(admin).await?;
    let server_before = server_cpu::read(admin).await;
    let port = cluster::free_port();
    let started = Instant::now();
    let operator = cluster::start_operator(kubeconfig, port)?;
    let pid = operator.id();
    let (want_a, want_d) = (knobs.cold_approvals as f64, knobs.cold_deployments as f64);
    // Settled: every object has had its status written (the operator's own
    // counters say so without listing 11,000 objects every poll).
    // An operator that writes records has settled once it has written one
    // per approved approval (one without the metric writes none).
    let want_r = approved.len() as f64;
    wait_until(Duration::from_secs(1800), || async {
        let m = cluster::operator_metrics(port);
        let a = cluster::sum_series(&m, "modelgate_status_writes_total", &["approval"]);
        let d = cluster::sum_series(&m, "modelgate_status_writes_total", &["deployment"]);
        let records = !m.contains("modelgate_records_written_total")
            || cluster::sum_series(&m, "modelgate_records_written_total", &[]) >= want_r;
        (a >= want_a && d >= want_d && records).then_some(())
    })
    .await?;
    // Read before the confirming lists below, which are the bench's own work.
    let server_used = used_since(admin, server_before).await;
    let operator_cpu = cpu_time(pid).unwrap_or_default();
    // Confirm from the API server itself (the counters would also count a
    // second write of one object).
    let approvals: Api<ModelApproval> = Api::namespaced(admin.clone(), &ns);
    let mds: Api<ModelDeployment> = Api::namespaced(admin.clone(), &ns);
    wait_until(Duration::from_secs(600), || async {
        let settled = count(&approvals, |a| {
            a.status.as_ref().is_some_and(|s| s.phase.is_some())
        })
        .await?;
        let mds_settled = count(&mds, |d| {
            d.status.as_ref().is_some_and(|s| s.phase.is_some())
        })
        .await?;
        (settled >= knobs.cold_approvals && mds_settled >= knobs.cold_deployments).then_some(())
    })
    .await?;
    let settle = started.elapsed();
    let settled = knobs.cold_approvals;
    let (requests, by_kind) =
        cluster::requests_between(&requests_before, &cluster::api_requests(admin).await?);
    let objects = (knobs.cold_approvals + knobs.cold_deployments) as f64;
    let rss = peak_rss_mib(pid).unwrap_or(0.0);
    let lookups = cluster::sum_series(
        &cluster::operator_metrics(port),
        "modelgate_registry_requests_total",
        &[],
    ) / knobs.cold_approvals as f64;
    println!(
        "operator settled {settled}/{} approvals and {} deployments in {:.2}s; peak RSS {rss} MiB; {:.2} API requests per object",
        knobs.cold_approvals,
        knobs.cold_deployments,
        settle.as_secs_f64(),
        requests / objects
    );
    println!("  API requests: {by_kind}");
    println!(
        "  CPU while it settled: the operator {:.1} s; the control plane {}",
        operator_cpu.as_secs_f64(),
        server_used.map_or("not read".into(), |u| u.describe())
    );
    println!("  registry look-ups per approval: {lookups:.2}");
    if !approved.is_empty() {
        let attached = cluster::sum_series(
            &cluster::operator_metrics(port),
            "modelgate_registry_pushes_total",
            &["published"],
        );
        println!(
            "  records attached to their model per approved approval: {:.2} (OCI approvals only)",
            attached / approved.len() as f64
        );
    }

    etcd_bytes(&ns, knobs.cold_approvals).await;

    // At rest: nothing changes; the operator should write nothing.
    section(&format!("at rest, {} s", knobs.rest_secs));
    let writes = |m: &str| cluster::sum_series(m, "modelgate_status_writes_total", &[]);
    let (w0, c0) = (
        writes(&cluster::operator_metrics(port)),
        cpu_time(pid).unwrap_or_default(),
    );
    tokio::time::sleep(Duration::from_secs(knobs.rest_secs)).await;
    let (w1, c1) = (
        writes(&cluster::operator_metrics(port)),
        cpu_time(pid).unwrap_or_default(),
    );
    let rest_cpu = c1.saturating_sub(c0);
    println!(
        "writes at rest: {}; CPU time {} ms over {} s",
        w1 - w0,
        rest_cpu.as_millis(),
        knobs.rest_secs
    );
    drop(operator);

    // Baselines: plain clients writing the same approvals' statuses.
    let one = baseline::one_field(admin, &ns, &names, knobs.concurrency).await?;
    let same = baseline::same_statuses(admin, &ns, knobs.concurrency).await?;
    let (baseline, ratio) = (one.took, times(settle, one.took));
    println!(
        "baseline: a plain client patched {} statuses in {:.2}s -> operator/baseline {ratio}x",
        names.len(),
        baseline.as_secs_f64()
    );
    let same_ratio = times(settle, same.took);
    println!(
        "baseline: a plain client applied the statuses the operator wrote, again, in {:.2}s -> operator/baseline {same_ratio}x",
        same.took.as_secs_f64()
    );
    let server_ratio = server_used
        .zip(one.server)
        .map(|(op, plain)| (op.total() / plain.total() * 100.0).round() / 100.0);
    let same_server_ratio = server_used
        .zip(same.server)
        .map(|(op, plain)| (op.total() / plain.total() * 100.0).round() / 100.0);
    if let (Some(op), Some(plain), Some(again)) = (server_used, one.server, same.server) {
        println!(
            "  control plane CPU: {} for the operator's cold start; {} for one field ({}x); {} for the same statuses ({}x)",
            op.describe(),
            plain.describe(),
            server_ratio.unwrap_or_default(),
            again.describe(),
            same_server_ratio.unwrap_or_default(),
        );
    }
    Ok((
        json!({
            "approvals": knobs.cold_approvals, "deployments": knobs.cold_deployments, "settle_s": (settle.as_secs_f64() * 100.0).round() / 100.0,
            "baseline_s": (baseline.as_secs_f64() * 100.0).round() / 100.0, "ratio_to_baseline": ratio,
            "peak_rss_mib": rss, "api_requests_per_object": (requests / objects * 100.0).round() / 100.0,
            "oci": knobs.oci, "registry_lookups_per_approval": (lookups * 100.0).round() / 100.0,
            "operator_cpu_s": (operator_cpu.as_secs_f64() * 10.0).round() / 10.0,
            "server_cpu_s": server_used.map(|u| (u.total() * 10.0).round() / 10.0),
            "baseline_server_cpu_s": one.server.map(|u| (u.total() * 10.0).round() / 10.0),
            "server_cpu_ratio_to_baseline": server_ratio,
            "same_statuses_s": (same.took.as_secs_f64() * 100.0).round() / 100.0,
            "ratio_to_same_statuses": same_ratio,
            "same_statuses_server_cpu_s": same.server.map(|u| (u.total() * 10.0).round() / 10.0),
            "server_cpu_ratio_to_same_statuses": same_server_ratio,
        }),
        json!({"secs": knobs.rest_secs, "writes": w1 - w0, "cpu_ms": rest_cpu.as_millis() as u64}),
    ))
}

/// `a` against `b`, to two places.
fn times(a: Duration, b: Duration) -> f64 {
    (a.as_secs_f64() / b.as_secs_f64() * 100.0).round() / 100.0
}

/// The control plane's CPU used since `before`, if both readings were had.
async fn used_since(admin: &Client, before: Option<ServerCpu>) -> Option<ServerCpu> {
    let now = server_cpu::read(admin).await?;
    Some(now.since(&before?))
}

/// Reviewers flipping gates concurrently: no decision may be lost; how far
/// behind the operator's status runs.
async fn churn(
    admin: &Client,
    knobs: &Knobs,
    kubeconfig: &std::path::Path,
    run: i64,
) -> Result<serde_json::Value, BoxError> {
    section(&format!(
        "churn: {} reviewers for {} s",
        knobs.churn_reviewers, knobs.churn_secs
    ));
    let ns = format!("bench-churn-{run}");
    namespace(admin, &ns).await?;
    if knobs.policy {
        bench_policy(admin, &ns).await?;
    }
    let approvals_needed = knobs.churn_reviewers.div_ceil(5);
    let names: Vec<String> = (0..approvals_needed)
        .map(|i| format!("churn-{i}"))
        .collect();
    create_all(admin, &ns, &names, false, knobs.concurrency).await?;
    let port = cluster::free_port();
    let operator = cluster::start_operator(kubeconfig, port)?;

    // When the operator's status first shows each (approval, gate, value).
    let api: Api<ModelApproval> = Api::namespaced(admin.clone(), &ns);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, String, String, Instant)>();
    let watch = tokio::spawn(
        watcher(api.clone(), watcher::Config::default())
            .applied_objects()
            .for_each(move |a| {
                if let Ok(a) = a {
                    for (key, value) in observed_decisions(&a) {
                        let _ = tx.send((a.name_any(), key, value, Instant::now()));
                    }
                }
                futures::future::ready(())
            }),
    );

    let until = Instant::now() + Duration::from_secs(knobs.churn_secs);
    let mut tasks = Vec::new();
    for r in 0..knobs.churn_reviewers {
        let gate = Gate::ALL[r % 5];
        let name = names[r / 5].clone();
        let (client, who) = cluster::reviewer(gate, r).await?;
        let policy = knobs.policy;
        let key = decision_key(gate, &who, policy);
        let ns = ns.clone();
        tasks.push(tokio::spawn(async move {
            let mut writes: Vec<(String, Instant)> = Vec::new();
            let mut round_trips: Vec<Duration> = Vec::new();
            let mut i = 0u64;
            while Instant::now() < until {
                let value = if i.is_multiple_of(2) { "True" } else { "False" };
                let sent = Instant::now();
                if set_gate(&client, &ns, &name, gate, value, &who, policy)
                    .await
                    .is_ok()
                {
                    writes.push((value.to_string(), Instant::now()));
                    round_trips.push(sent.elapsed());
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(100 + (i * 37 + r as u64 * 53) % 400))
                    .await;
            }
            (name, key, writes, round_trips)
        }));
    }
    let mut all_writes = Vec::new();
    // The baseline: how long the reviewers' own writes took meanwhile (the
    // API server is as loaded for them as for the operator).
    let mut round_trips = Vec::new();
    for t in tasks {
        let (name, gate, writes, trips) = t.await?;
        all_writes.push((name, gate, writes));
        round_trips.extend(trips);
    }
    // Let the operator settle (every reviewer's last decision in its
    // observed gates, or 60 s), then read what it recorded.
    let last: Vec<(String, String, String)> = all_writes
        .iter()
        .filter_map(|(name, key, writes)| {
            writes
                .last()
                .map(|(v, _)| (name.clone(), key.clone(), v.clone()))
        })
        .collect();
    let _ = wait_until(Duration::from_secs(60), || async {
        for (name, key, value) in &last {
            let a = api.get(name).await.ok()?;
            let shown = observed_decisions(&a)
                .into_iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v);
            if shown.as_deref() != Some(value.as_str()) {
                return None;
            }
        }
        Some(())
    })
    .await;
    watch.abort();
    let mut observed: HashMap<(String, String), Vec<(String, Instant)>> = HashMap::new();
    while let Ok((name, gate, status, at)) = rx.try_recv() {
        observed.entry((name, gate)).or_default().push((status, at));
    }
    let mut lags = Vec::new();
    let mut lost = 0u64;
    let mut decisions = 0usize;
    for (name, key, writes) in &all_writes {
        decisions += writes.len();
        let seen = observed
            .get(&(name.clone(), key.clone()))
            .cloned()
            .unwrap_or_default();
        for (k, (value, at)) in writes.iter().enumerate() {
            let next = writes.get(k + 1).map(|(_, t)| *t);
            // The first time the status shows this value after the write
            // (before the reviewer's next write; otherwise it was
            // superseded before the operator looked, which is not a loss).
            if let Some((_, shown)) = seen
                .iter()
                .find(|(v, t)| v == value && *t >= *at && next.is_none_or(|n| *t < n))
            {
                lags.push(shown.saturating_duration_since(*at));
            }
        }
        // The last decision must stand, as written (the condition or the
        // review) and in what the operator recorded.
        let Some((last, _)) = writes.last() else {
            continue;
        };
        let a = api.get(name).await?;
        let written = written_decision(&a, key);
        let recorded = observed_decisions(&a)
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v);
        if written.as_deref() != Some(last) || recorded.as_deref() != Some(last) {
            lost += 1;
        }
    }
    // Failed reconciles are retried after a backoff: they explain a long tail.
    let metrics = cluster::operator_metrics(port);
    let errors = cluster::sum_series(&metrics, "modelgate_reconcile_errors_total", &[]) + 0.0;
    let writes = cluster::sum_series(&metrics, "modelgate_status_writes_total", &["approval"]);
    drop(operator);
    let (p50, p99) = (percentile(&lags, 50.0), percentile(&lags, 99.0));
    let (rt50, rt99) = (
        percentile(&round_trips, 50.0),
        percentile(&round_trips, 99.0),
    );
    println!(
        "{decisions} gate decisions by {} reviewers; lost {lost}; status lag p50 {} ms, p99 {} ms ({} lags measured); operator: {writes} status writes, {errors} failed reconciles",
        knobs.churn_reviewers,
        ms(p50),
        ms(p99),
        lags.len()
    );
    println!(
        "baseline: a reviewer's own gate write took p50 {} ms, p99 {} ms -> status lag / write round trip: {}x (p50), {}x (p99)",
        ms(rt50),
        ms(rt99),
        ratio(p50, rt50),
        ratio(p99, rt99)
    );
    Ok(json!({
        "reviewers": knobs.churn_reviewers, "secs": knobs.churn_secs, "decisions": decisions,
        "lost_decisions": lost, "lag_p50_ms": ms(p50), "lag_p99_ms": ms(p99),
        "reviewer_write_p50_ms": ms(rt50), "reviewer_write_p99_ms": ms(rt99),
        "lag_to_write_ratio_p50": ratio(p50, rt50), "lag_to_write_ratio_p99": ratio(p99, rt99),
        "status_writes": writes, "failed_reconciles": errors,
    }))
}
