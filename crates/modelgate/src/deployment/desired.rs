//! The Deployment a ModelDeployment should have, as a pure function of its
//! spec and the approved ModelApproval. No client calls here.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{Container, EnvVar, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::api::{
    approval::ModelArtifact,
    deployment::{ModelDeployment, ServedModel},
};

/// Marks every object the operator manages.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY_VALUE: &str = "modelgate";
/// Names the ModelDeployment a Deployment and its pods belong to; also the
/// Deployment's selector.
pub const MODEL_DEPLOYMENT_LABEL: &str = "modelgate.io/model-deployment";

/// Pod-template annotations that say which approved artifact pods serve.
pub const APPROVAL_ANNOTATION: &str = "modelgate.io/approval";
pub const MODEL_NAME_ANNOTATION: &str = "modelgate.io/model-name";
pub const MODEL_VERSION_ANNOTATION: &str = "modelgate.io/model-version";
pub const MODEL_DIGEST_ANNOTATION: &str = "modelgate.io/model-digest";
pub const MODEL_URI_ANNOTATION: &str = "modelgate.io/model-uri";

/// On a Deployment whose replicas the ModelDeployment sets: tells the
/// admission policy to refuse replica changes by anyone but the operator.
pub const REPLICAS_MANAGED_ANNOTATION: &str = "modelgate.io/replicas-managed";

/// On a Deployment held after its approval was withdrawn (onRevoke Hold):
/// the replicas it had then, which it keeps until an approved model serves.
pub const HELD_REPLICAS_ANNOTATION: &str = "modelgate.io/held-replicas";

/// The environment variables injected into every container.
/// The most a managed pod may take to stop (seconds), and the API
/// server's default.
pub const MAX_TERMINATION_GRACE_SECONDS: i64 = 300;
const DEFAULT_TERMINATION_GRACE_SECONDS: i64 = 30;

pub const MODEL_ENV: [&str; 4] = ["MODEL_NAME", "MODEL_VERSION", "MODEL_URI", "MODEL_DIGEST"];

/// The Deployment that serves `approval`'s artifact for `md`, owned by `md`.
///
/// `replicas` is left out when the spec leaves it out, so that server-side
/// apply gives the operator no claim on it and an autoscaler can own it.
pub fn deployment(
    md: &ModelDeployment,
    approval_name: &str,
    model: &ModelArtifact,
    owner: OwnerReference,
) -> Deployment {
    let name = md.metadata.name.clone().unwrap_or_default();
    let selector = BTreeMap::from([(MODEL_DEPLOYMENT_LABEL.to_string(), name.clone())]);
    let mut labels = selector.clone();
    labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY_VALUE.into());
    Deployment {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: md.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: md.spec.replicas.map(|_| {
                BTreeMap::from([(REPLICAS_MANAGED_ANNOTATION.to_string(), "true".to_string())])
            }),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        spec: DeploymentSpec {
            replicas: md.spec.replicas,
            selector: LabelSelector {
                match_labels: Some(selector),
                ..LabelSelector::default()
            },
            template: pod_template(
                &md.spec.template,
                md.metadata.name.as_deref().unwrap_or_default(),
                approval_name,
                model,
            ),
            ..rollout_settings()
        },
        status: None,
    }
}

/// The user's pod template with the model's identity added.
/// The rollout settings, written out so that they are the operator's: a
/// paused Deployment, or one whose rollout cannot progress, would keep
/// serving a model after its approval was withdrawn. The values are the
/// API server's defaults.
fn rollout_settings() -> DeploymentSpec {
    let quarter = || Some(IntOrString::String("25%".into()));
    DeploymentSpec {
        paused: Some(false),
        min_ready_seconds: Some(0),
        progress_deadline_seconds: Some(600),
        revision_history_limit: Some(10),
        strategy: Some(DeploymentStrategy {
            type_: Some("RollingUpdate".into()),
            rolling_update: Some(RollingUpdateDeployment {
                max_surge: quarter(),
                max_unavailable: quarter(),
            }),
        }),
        ..DeploymentSpec::default()
    }
}

pub fn pod_template(
    template: &PodTemplateSpec,
    md_name: &str,
    approval_name: &str,
    model: &ModelArtifact,
) -> PodTemplateSpec {
    let mut template = template.clone();
    let meta = template.metadata.get_or_insert_with(ObjectMeta::default);
    meta.labels
        .get_or_insert_with(BTreeMap::new)
        .insert(MODEL_DEPLOYMENT_LABEL.into(), md_name.into());
    let annotations = meta.annotations.get_or_insert_with(BTreeMap::new);
    for (key, value) in [
        (APPROVAL_ANNOTATION, approval_name),
        (MODEL_NAME_ANNOTATION, model.name.as_str()),
        (MODEL_VERSION_ANNOTATION, model.version.as_str()),
        (MODEL_DIGEST_ANNOTATION, model.digest.as_str()),
        (MODEL_URI_ANNOTATION, model.uri.as_str()),
    ] {
        annotations.insert(key.into(), value.into());
    }
    if let Some(spec) = template.spec.as_mut() {
        // A revoked model's pods must stop: a grace period of a year (with a
        // preStop sleep) would keep them Terminating, and still reachable.
        spec.termination_grace_period_seconds = Some(
            spec.termination_grace_period_seconds
                .unwrap_or(DEFAULT_TERMINATION_GRACE_SECONDS)
                .clamp(0, MAX_TERMINATION_GRACE_SECONDS),
        );
        let path = crate::artifact::mount::path(model);
        for c in spec
            .containers
            .iter_mut()
            .chain(spec.init_containers.iter_mut().flatten())
        {
            inject_env(c, model, path.as_deref());
        }
        crate::artifact::mount::add(spec, model);
    }
    template
}

/// Sets the MODEL_* variables on a container, and MODEL_PATH where the model
/// is mounted; a user's variable of the same name is replaced (the approved
/// identity must win), every other is kept in its place.
fn inject_env(container: &mut Container, model: &ModelArtifact, path: Option<&str>) {
    let env = container.env.get_or_insert_with(Vec::new);
    env.retain(|e| {
        !MODEL_ENV.contains(&e.name.as_str())
            && (path.is_none() || e.name != crate::artifact::mount::MODEL_PATH)
    });
    let values = [&model.name, &model.version, &model.uri, &model.digest];
    let identity = MODEL_ENV.into_iter().zip(values.map(|v| v.as_str()));
    let mounted = path.map(|p| (crate::artifact::mount::MODEL_PATH, p));
    for (name, value) in identity.chain(mounted) {
        env.push(EnvVar {
            name: name.into(),
            value: Some(value.to_string()),
            value_from: None,
        });
    }
}

/// The model a pod template serves, read back from its annotations.
pub fn served_model(template: &PodTemplateSpec) -> Option<ServedModel> {
    let annotations = template.metadata.as_ref()?.annotations.as_ref()?;
    let get = |k: &str| annotations.get(k).cloned();
    Some(ServedModel {
        approval: get(APPROVAL_ANNOTATION)?,
        name: get(MODEL_NAME_ANNOTATION)?,
        version: get(MODEL_VERSION_ANNOTATION)?,
        digest: get(MODEL_DIGEST_ANNOTATION)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn md(yaml_template: serde_json::Value, replicas: Option<i32>) -> ModelDeployment {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "modelgate.io/v1alpha1", "kind": "ModelDeployment",
            "metadata": {"name": "fraud-detector", "namespace": "risk", "uid": "u-1"},
            "spec": {"approvalRef": {"name": "fd-2-4-0"}, "replicas": replicas, "template": yaml_template},
        }))
        .unwrap_or_else(|e| panic!("fixture: {e}"))
    }

    fn model() -> ModelArtifact {
        ModelArtifact {
            name: "fraud-detector".into(),
            version: "2.4.0".into(),
            uri: "s3://models/fd/2.4.0/".into(),
            digest: format!("sha256:{}", "a".repeat(64)),
        }
    }

    fn owner() -> OwnerReference {
        OwnerReference {
            api_version: "modelgate.io/v1alpha1".into(),
            kind: "ModelDeployment".into(),
            name: "fraud-detector".into(),
            uid: "u-1".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }

    fn env_of(c: &Container) -> Vec<(String, String)> {
        c.env
            .iter()
            .flatten()
            .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
            .collect()
    }

    #[test]
    fn a_pod_stops_within_the_bounded_grace_period() {
        let grace = |t: serde_json::Value| {
            deployment(&md(t, Some(1)), "fd-2-4-0", &model(), owner())
                .spec
                .template
                .spec
                .and_then(|s| s.termination_grace_period_seconds)
        };
        let year = serde_json::json!({"spec": {"terminationGracePeriodSeconds": 31_536_000,
            "containers": [{"name": "s", "image": "s:1"}]}});
        assert_eq!(grace(year), Some(MAX_TERMINATION_GRACE_SECONDS));
        let unset = serde_json::json!({"spec": {"containers": [{"name": "s", "image": "s:1"}]}});
        assert_eq!(grace(unset), Some(30));
        let short = serde_json::json!({"spec": {"terminationGracePeriodSeconds": 5,
            "containers": [{"name": "s", "image": "s:1"}]}});
        assert_eq!(grace(short), Some(5));
    }

    #[test]
    fn identity_is_injected_everywhere_without_clobbering_user_env() {
        let template = serde_json::json!({
            "metadata": {"labels": {"app": "fd"}, "annotations": {"team": "risk"}},
            "spec": {
                "initContainers": [{"name": "fetch", "image": "fetch:1"}],
                "containers": [
                    {"name": "server", "image": "serve:1", "env": [{"name": "LOG_LEVEL", "value": "info"}, {"name": "MODEL_VERSION", "value": "wrong"}]},
                    {"name": "sidecar", "image": "proxy:1"}
                ]
            }
        });
        let d = deployment(&md(template, Some(3)), "fd-2-4-0", &model(), owner());
        let spec = d.spec.clone();
        assert_eq!(spec.replicas, Some(3));
        let pod = spec.template.spec.clone().unwrap_or_default();
        let server = env_of(&pod.containers[0]);
        assert_eq!(server[0], ("LOG_LEVEL".into(), "info".into()));
        assert!(server.contains(&("MODEL_VERSION".into(), "2.4.0".into())));
        assert!(!server.contains(&("MODEL_VERSION".into(), "wrong".into())));
        assert_eq!(server.len(), 5);
        for c in pod
            .containers
            .iter()
            .chain(pod.init_containers.iter().flatten())
        {
            let names: Vec<String> = env_of(c).into_iter().map(|(n, _)| n).collect();
            for want in MODEL_ENV {
                assert!(names.contains(&want.to_string()), "{} lacks {want}", c.name);
            }
        }
        let meta = spec.template.metadata.clone().unwrap_or_default();
        let annotations = meta.annotations.unwrap_or_default();
        assert_eq!(annotations.get("team").map(String::as_str), Some("risk"));
        assert_eq!(
            annotations.get(MODEL_DIGEST_ANNOTATION),
            Some(&model().digest)
        );
        assert_eq!(
            annotations.get(APPROVAL_ANNOTATION).map(String::as_str),
            Some("fd-2-4-0")
        );
        let labels = meta.labels.unwrap_or_default();
        assert_eq!(labels.get("app").map(String::as_str), Some("fd"));
        assert_eq!(
            labels.get(MODEL_DEPLOYMENT_LABEL).map(String::as_str),
            Some("fraud-detector")
        );
        assert_eq!(
            spec.selector.match_labels,
            Some(BTreeMap::from([(
                MODEL_DEPLOYMENT_LABEL.to_string(),
                "fraud-detector".to_string()
            )]))
        );
        let da = d.metadata.annotations.clone().unwrap_or_default();
        assert_eq!(
            da.get(REPLICAS_MANAGED_ANNOTATION).map(String::as_str),
            Some("true")
        );
        let dl = d.metadata.labels.unwrap_or_default();
        assert_eq!(
            dl.get(MANAGED_BY_LABEL).map(String::as_str),
            Some("modelgate")
        );
        assert_eq!(
            d.metadata.owner_references.unwrap_or_default()[0].controller,
            Some(true)
        );
        assert_eq!(
            served_model(&spec.template).map(|s| s.version),
            Some("2.4.0".into())
        );
    }

    #[test]
    fn replicas_left_out_when_the_spec_leaves_them_out() {
        let template = serde_json::json!({"spec": {"containers": [{"name": "s", "image": "s:1"}]}});
        let d = deployment(&md(template, None), "fd-2-4-0", &model(), owner());
        let json = serde_json::to_value(&d).unwrap_or_default();
        assert!(json["spec"].get("replicas").is_none(), "{json}");
        assert!(json["metadata"].get("annotations").is_none(), "{json}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        /// Whatever env a user sets, every container ends with exactly one of
        /// each MODEL_* variable holding the approved value, and every other
        /// variable is kept, in order.
        #[test]
        fn env_injection_laws(user_env in proptest::collection::vec(
            (prop_oneof![Just("MODEL_NAME".to_string()), Just("MODEL_DIGEST".to_string()), "[A-Z_]{1,12}"], "[a-z0-9]{0,8}"), 0..8),
            containers in 1usize..4)
        {
            let env: Vec<serde_json::Value> = user_env.iter().map(|(n, v)| serde_json::json!({"name": n, "value": v})).collect();
            let cs: Vec<serde_json::Value> = (0..containers).map(|i| serde_json::json!({"name": format!("c{i}"), "image": "x:1", "env": env})).collect();
            let template = serde_json::json!({"spec": {"containers": cs}});
            let d = deployment(&md(template, Some(1)), "fd-2-4-0", &model(), owner());
            let pod = d.spec.template.spec.unwrap_or_default();
            let m = model();
            for c in &pod.containers {
                let got = env_of(c);
                for (name, want) in MODEL_ENV.iter().zip([&m.name, &m.version, &m.uri, &m.digest]) {
                    let hits: Vec<_> = got.iter().filter(|(n, _)| n == name).collect();
                    prop_assert_eq!(hits.len(), 1);
                    prop_assert_eq!(&hits[0].1, want);
                }
                let others: Vec<_> = got.iter().filter(|(n, _)| !MODEL_ENV.contains(&n.as_str())).cloned().collect();
                let expected: Vec<_> = user_env.iter().filter(|(n, _)| !MODEL_ENV.contains(&n.as_str())).cloned().collect();
                prop_assert_eq!(others, expected);
            }
        }
    }
}
