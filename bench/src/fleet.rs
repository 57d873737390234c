//! `fleet`: what honouring an approval through the registry costs. One OCI
//! approval is approved and its record attached to the model (counted at
//! the registry), imported by a second approval through a TrustedPublisher
//! of the operator's own keys, left to resync, then revoked; the time from
//! the upstream revocation to the imported approval's is set against the
//! resync period, its baseline.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use kube::api::{Api, DeleteParams, PostParams};
use modelgate::api::approval::{ApprovalPhase, ModelApproval};
use modelgate::api::fleet::{TrustedPublisher, TrustedPublisherSpec};
use modelgate::api::gates::Gate;
use serde_json::json;

use super::Knobs;
use super::cluster::{self, BoxError};
use super::scenarios::{approval, namespace, pass_all_gates, section, set_gate, wait_until};

/// The fleet's model, apart from the other scenarios' one.
const REPOSITORY: &str = "bench/fleet";

/// The registry's count of requests on the fleet model's repository.
async fn registry_requests() -> Result<f64, BoxError> {
    let repository = REPOSITORY;
    let address = std::env::var("MODELGATE_REGISTRY")?;
    let ca = std::fs::read(std::env::var("MODELGATE_REGISTRY_CA")?)?;
    let https = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca)?)
        .build()?;
    let body = https
        .get(format!(
            "https://{address}/_modelgate/requests?prefix=/v2/{repository}/"
        ))
        .send()
        .await?
        .bytes()
        .await?;
    let said: serde_json::Value = serde_json::from_slice(&body)?;
    Ok(said["requests"].as_f64().unwrap_or_default())
}

async fn phase_is(api: &Api<ModelApproval>, name: &str, want: ApprovalPhase) -> Option<()> {
    let a = api.get(name).await.ok()?;
    (a.status?.phase? == want).then_some(())
}

/// A TrustedPublisher of the operator's own published keys.
async fn trust_self(admin: &Client, name: &str) -> Result<(), BoxError> {
    let maps: Api<ConfigMap> =
        Api::namespaced(admin.clone(), modelgate::vocabulary::DEFAULT_NAMESPACE);
    let keys = vec![modelgate::records::key::public_keys_pem(
        &maps.get("modelgate-public-keys").await?,
    )];
    let api: Api<TrustedPublisher> = Api::all(admin.clone());
    let _ = api.delete(name, &DeleteParams::default()).await;
    let spec = TrustedPublisherSpec {
        description: Some("the bench's own operator".into()),
        public_keys: keys,
        repositories: Vec::new(),
        namespaces: Vec::new(),
    };
    api.create(&PostParams::default(), &TrustedPublisher::new(name, spec))
        .await?;
    Ok(())
}

pub async fn fleet(
    admin: &Client,
    knobs: &Knobs,
    kubeconfig: &std::path::Path,
    run: i64,
) -> Result<serde_json::Value, BoxError> {
    let resync = Duration::from_secs(knobs.fleet_resync_secs);
    section(&format!(
        "fleet: publish, import (resync {} s), revoke",
        resync.as_secs()
    ));
    let (publisher, importer) = (format!("bench-pub-{run}"), format!("bench-imp-{run}"));
    namespace(admin, &publisher).await?;
    namespace(admin, &importer).await?;
    let port = cluster::free_port();
    let resync_env = resync.as_secs().to_string();
    let _operator = cluster::start_operator_with(
        kubeconfig,
        port,
        &[("MODELGATE_IMPORT_RESYNC_SECS", resync_env.as_str())],
    )?;
    let upstream: Api<ModelApproval> = Api::namespaced(admin.clone(), &publisher);
    let downstream: Api<ModelApproval> = Api::namespaced(admin.clone(), &importer);
    let dir = std::env::temp_dir().join(format!("modelgate-bench-fleet-{run}"));
    std::fs::create_dir_all(&dir)?;
    let (uri, digest) = super::oci::push_to(&dir, REPOSITORY)?;
    let _ = std::fs::remove_dir_all(&dir);
    let approval = |name: &str| {
        let mut a = approval(name);
        a["spec"]["model"]["uri"] = json!(uri);
        a["spec"]["model"]["digest"] = json!(digest);
        a
    };
    let a: ModelApproval = serde_json::from_value(approval("fleet"))?;
    upstream.create(&PostParams::default(), &a).await?;
    let limit = Duration::from_secs(120);
    wait_until(limit, || {
        phase_is(&upstream, "fleet", ApprovalPhase::Pending)
    })
    .await?;

    let before = registry_requests().await?;
    pass_all_gates(&publisher, &["fleet".to_string()], 1, false).await?;
    wait_until(limit, || async {
        let s = upstream.get("fleet").await.ok()?.status?;
        (s.phase? == ApprovalPhase::Approved && s.publication?.seq.is_some()).then_some(())
    })
    .await?;
    let published = registry_requests().await? - before;
    println!("  registry requests to attach the Approved record: {published}");

    trust_self(admin, "bench-self").await?;
    let mut imported = approval("fleet");
    imported["spec"]["importFrom"] =
        json!({"publisher": "bench-self", "approval": format!("{publisher}/fleet")});
    let imported: ModelApproval = serde_json::from_value(imported)?;
    downstream.create(&PostParams::default(), &imported).await?;
    wait_until(limit, || {
        phase_is(&downstream, "fleet", ApprovalPhase::Approved)
    })
    .await?;

    // Counted at the registry, on this model's repository alone: other
    // imported approvals of the cluster do not count.
    let periods = 3;
    let before = registry_requests().await?;
    tokio::time::sleep(resync * periods).await;
    let requests = registry_requests().await? - before;
    let per_resync = requests / f64::from(periods);
    println!(
        "  registry requests per steady resync of an imported approval: {per_resync:.2} ({requests} in {periods} resync periods)"
    );

    let (reviewer, who) = cluster::reviewer(Gate::Security, 0).await?;
    set_gate(
        &reviewer,
        &publisher,
        "fleet",
        Gate::Security,
        "False",
        &who,
        false,
    )
    .await?;
    wait_until(limit, || {
        phase_is(&upstream, "fleet", ApprovalPhase::Rejected)
    })
    .await?;
    let revoked = Instant::now();
    wait_until(limit, || {
        phase_is(&downstream, "fleet", ApprovalPhase::Rejected)
    })
    .await?;
    let honoured = revoked.elapsed();
    println!(
        "  upstream revocation → downstream Rejected: {:.2} s, {:.2}x the resync period",
        honoured.as_secs_f64(),
        honoured.as_secs_f64() / resync.as_secs_f64()
    );
    let _ = Api::<TrustedPublisher>::all(admin.clone())
        .delete("bench-self", &DeleteParams::default())
        .await;
    Ok(json!({
        "registry_requests_per_publish": published,
        "registry_requests_per_resync": per_resync,
        "revocation_seconds": honoured.as_secs_f64(),
        "resync_seconds": resync.as_secs(),
        "revocation_vs_resync": honoured.as_secs_f64() / resync.as_secs_f64(),
    }))
}
