//! What runs: the pods of a ModelDeployment and what they serve, and the
//! ModelDeployment's phase as the operator reports it.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use modelgate::api::deployment::{DeploymentPhase, ModelDeployment};

use crate::wait::*;

/// What one pod ran: (name, images, MODEL_DIGEST values).
pub type Seen = (String, Vec<String>, Vec<String>);

pub fn seen(pod: &Pod) -> Seen {
    let spec = pod.spec.clone().unwrap_or_default();
    let containers = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    let mut images = Vec::new();
    let mut digests = Vec::new();
    for c in containers {
        images.push(c.image.clone().unwrap_or_default());
        digests.extend(
            c.env
                .iter()
                .flatten()
                .filter(|e| e.name == "MODEL_DIGEST")
                .map(|e| e.value.clone().unwrap_or_default()),
        );
    }
    for e in spec.ephemeral_containers.iter().flatten() {
        images.push(e.image.clone().unwrap_or_default());
    }
    (
        pod.metadata.name.clone().unwrap_or_default(),
        images,
        digests,
    )
}

/// Waits up to 90 s for the ModelDeployment to reach `want`.
pub async fn phase(
    mds: &Api<ModelDeployment>,
    name: &str,
    want: DeploymentPhase,
) -> ModelDeployment {
    phase_within(mds, name, want, 90).await
}

/// The same, waiting at most `secs`.
pub async fn phase_within(
    mds: &Api<ModelDeployment>,
    name: &str,
    want: DeploymentPhase,
    secs: u64,
) -> ModelDeployment {
    eventually(secs, &format!("{name} {want}"), || async {
        let md = mds.get(name).await.ok()?;
        (md.status.as_ref()?.phase == Some(want)).then_some(md)
    })
    .await
}

/// The ModelDeployment's ApprovalSatisfied condition.
pub fn satisfied(md: &ModelDeployment) -> Option<&modelgate::api::condition::Condition> {
    modelgate::api::condition::find(
        &md.status.as_ref()?.conditions,
        modelgate::api::deployment::APPROVAL_SATISFIED,
    )
}

/// The reason of the ModelDeployment's ApprovalSatisfied condition.
pub fn satisfied_reason(md: &ModelDeployment) -> Option<String> {
    satisfied(md)?.reason.clone()
}

/// Waits until every pod of the ModelDeployment runs `digest`, and there is
/// at least one.
pub async fn pods_serve(client: &kube::Client, ns: &str, md: &str, digest: &str) -> Vec<Pod> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let selector = format!("modelgate.io/model-deployment={md}");
    eventually(
        120,
        &format!("every pod of {md} to serve {digest}"),
        || async {
            let list = pods
                .list(&ListParams::default().labels(&selector))
                .await
                .ok()?;
            let live: Vec<Pod> = list
                .items
                .into_iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .collect();
            let all = !live.is_empty() && live.iter().all(|p| seen(p).2 == [digest.to_string()]);
            all.then_some(live)
        },
    )
    .await
}
