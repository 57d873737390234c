//! Whether a ModelDeployment's pods are sealed: they load the approved OCI
//! model through an approved runtime, and nothing else reaches in. A pure
//! judgement over the template, the model and the platform's catalog; the
//! `Sealed` condition says it, naming every input that is not sealed.
//!
//! Admission refuses most of what this finds in governed namespaces; the
//! judgement still reads everything, because the catalog can change after a
//! ModelDeployment was admitted and admission can be switched off.

use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec, Volume};

use super::{mount, reach};
use crate::api::approval::ModelArtifact;
use crate::api::condition::{Condition, FALSE, TRUE};
use crate::api::deployment::SEALED;
use crate::api::oci;
use crate::api::runtime::{RuntimeCatalog, ServingRuntime};
use crate::deployment::desired::MODEL_ENV;

/// What the judgement reads.
#[derive(Clone, Copy, Debug)]
pub struct Sealing<'a> {
    /// The model the pods serve (or will).
    pub model: Option<&'a ModelArtifact>,
    pub template: &'a PodTemplateSpec,
    pub namespace: &'a str,
    /// Whether the namespace is governed (admission holds its pods).
    pub governed: bool,
    /// The platform's runtime catalog, when there is one.
    pub catalog: Option<&'a RuntimeCatalog>,
    /// The catalog's name, for messages.
    pub catalog_name: &'a str,
    /// The template the pods run now (the live Deployment's), when there
    /// is one: held or rolling pods run it, not the spec's.
    pub live: Option<&'a PodTemplateSpec>,
    /// Whether every pod runs the live template (no rollout under way).
    pub settled: bool,
    /// Why the egress policy is not the operator's, when it is not.
    pub egress: Option<&'a str>,
}

/// The Sealed condition.
pub fn condition(sealing: &Sealing<'_>) -> Condition {
    let problems = problems(sealing);
    match (problems.is_empty(), sealing.model) {
        (true, Some(model)) => Condition::new(
            SEALED,
            TRUE,
            "Sealed",
            format!(
                "the pods load only {} through approved runtimes, with bounded configuration and egress",
                oci::parse(&model.uri)
                    .map(|u| u.pinned(&model.digest))
                    .unwrap_or_default()
            ),
        ),
        _ => Condition::new(SEALED, FALSE, "Unsealed", problems.join("; ")),
    }
}

/// Everything that keeps the pods from being sealed, each said once.
pub fn problems(sealing: &Sealing<'_>) -> Vec<String> {
    let mut found = Vec::new();
    match sealing.model {
        None => found.push("no approved model serves yet".to_string()),
        Some(m) if oci::parse(&m.uri).is_none() => found.push(format!(
            "the model {} is not an OCI artifact: nothing makes the pods load the approved bytes",
            m.uri
        )),
        Some(_) => {}
    }
    if !sealing.governed {
        found.push(format!(
            "namespace {} is not governed (label modelgate.io/governed=true), so nothing holds its pods, volumes or network policies",
            sealing.namespace
        ));
    }
    let runtimes = sealing
        .catalog
        .map(|c| c.spec.runtimes.as_slice())
        .unwrap_or_default();
    if runtimes.is_empty() {
        found.push(format!(
            "no serving runtimes are listed in RuntimeCatalog {}",
            sealing.catalog_name
        ));
    }
    let catalog = sealing.catalog.filter(|_| !runtimes.is_empty());
    let templates = std::iter::once(sealing.template).chain(sealing.live);
    for spec in templates.filter_map(|t| t.spec.as_ref()) {
        found.extend(container_problems(spec, catalog));
        found.extend(spec.volumes.iter().flatten().filter_map(volume_problem));
        found.extend(reach::host_problems(spec));
        found.extend(reach::shadowing(spec));
    }
    if !sealing.settled {
        found.push("a rollout is under way: pods of an earlier template still run".to_string());
    }
    found.extend(sealing.egress.map(str::to_string));
    // The spec's template and the live one share most findings.
    let mut seen = std::collections::HashSet::new();
    found.retain(|p| seen.insert(p.clone()));
    found
}

fn container_problems(spec: &PodSpec, catalog: Option<&RuntimeCatalog>) -> Vec<String> {
    let Some(catalog) = catalog else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for c in reach::containers(spec) {
        match catalog.runtime(c.image.as_deref().unwrap_or_default()) {
            None => found.push(format!(
                "container {} runs {}, which is not an approved runtime (approved: {})",
                c.name,
                c.image.as_deref().unwrap_or("no image"),
                catalog.names()
            )),
            Some(runtime) => found.extend(runtime_problems(c, runtime)),
        }
    }
    found
}

/// What a runtime's container is given beyond what the catalog allows.
fn runtime_problems(c: &Container, runtime: &ServingRuntime) -> Vec<String> {
    let mut found = Vec::new();
    if c.command.as_ref().is_some_and(|c| !c.is_empty()) {
        found.push(format!(
            "container {} replaces the entrypoint of runtime {}",
            c.name, runtime.name
        ));
    }
    if let Some(how) = exec_hook(c) {
        found.push(format!(
            "container {} runs a command of its own through its {how}",
            c.name
        ));
    }
    for arg in c.args.iter().flatten() {
        if !runtime.allows(arg) {
            found.push(format!(
                "container {} is given argument {arg:?}, which runtime {} does not allow",
                c.name, runtime.name
            ));
        }
    }
    for e in c.env.iter().flatten() {
        let ours = MODEL_ENV.contains(&e.name.as_str()) || e.name == mount::MODEL_PATH;
        if !ours && !runtime.env.contains(&e.name) {
            found.push(format!(
                "container {} sets {}, which runtime {} does not allow",
                c.name, e.name, runtime.name
            ));
        }
    }
    if c.env_from.as_ref().is_some_and(|e| !e.is_empty()) {
        found.push(format!(
            "container {} takes its environment from envFrom, which names no variable",
            c.name
        ));
    }
    found
}

/// The probe or lifecycle hook of `c` that runs a command in the runtime's
/// container, if one does: as much a command of the developer's as
/// `command` itself.
fn exec_hook(c: &Container) -> Option<&'static str> {
    let probes = [
        ("liveness probe", &c.liveness_probe),
        ("readiness probe", &c.readiness_probe),
        ("startup probe", &c.startup_probe),
    ];
    let probe = probes
        .into_iter()
        .find(|(_, p)| p.as_ref().is_some_and(|p| p.exec.is_some()))
        .map(|(how, _)| how);
    let hooks = c.lifecycle.as_ref().map(|l| {
        [
            ("postStart hook", &l.post_start),
            ("preStop hook", &l.pre_stop),
        ]
    });
    let hook = hooks
        .into_iter()
        .flatten()
        .find(|(_, h)| h.as_ref().is_some_and(|h| h.exec.is_some()))
        .map(|(how, _)| how);
    probe.or(hook)
}

/// A volume that is not bounded configuration or the operator's model. By
/// key, as admission reads it: a volume with no source at all is the API
/// server's default, an emptyDir.
fn volume_problem(v: &Volume) -> Option<String> {
    const BOUNDED: [&str; 5] = [
        "configMap",
        "secret",
        "projected",
        "downwardAPI",
        "emptyDir",
    ];
    if v.name == mount::VOLUME {
        return None;
    }
    let value = serde_json::to_value(v).ok()?;
    let sources: Vec<&String> = value
        .as_object()?
        .keys()
        .filter(|k| k.as_str() != "name")
        .collect();
    if sources.iter().all(|k| BOUNDED.contains(&k.as_str())) {
        return None;
    }
    let what = if v.image.is_some() {
        "an image volume other than the approved model"
    } else {
        "not bounded configuration (configMap, secret, projected, downwardAPI or emptyDir)"
    };
    Some(format!("volume {} is {what}", v.name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::runtime::RuntimeCatalogSpec;

    const RUNTIME: &str = "registry.example.com/vllm@sha256:0000000000000000000000000000000000000000000000000000000000000000";

    fn catalog() -> RuntimeCatalog {
        RuntimeCatalog::new(
            "modelgate",
            RuntimeCatalogSpec {
                runtimes: vec![ServingRuntime {
                    name: "vllm".into(),
                    image: RUNTIME.into(),
                    args: vec!["--port".into(), "--model=$(MODEL_PATH)".into()],
                    env: vec!["HF_HUB_OFFLINE".into()],
                }],
                egress: Vec::new(),
            },
        )
    }

    fn model(uri: &str) -> ModelArtifact {
        ModelArtifact {
            name: "fraud".into(),
            version: "1".into(),
            uri: uri.into(),
            digest: format!("sha256:{}", "a".repeat(64)),
        }
    }

    fn template(pod: serde_json::Value) -> PodTemplateSpec {
        serde_json::from_value(serde_json::json!({ "spec": pod }))
            .unwrap_or_else(|e| panic!("template: {e}"))
    }

    /// (status, reason, message).
    fn said(c: &Condition) -> (&str, &str, &str) {
        (
            c.status.as_str(),
            c.reason.as_deref().unwrap_or_default(),
            c.message.as_deref().unwrap_or_default(),
        )
    }

    fn judged(model: &ModelArtifact, template: &PodTemplateSpec, governed: bool) -> Condition {
        let catalog = catalog();
        condition(&Sealing {
            model: Some(model),
            template,
            namespace: "risk",
            governed,
            catalog: Some(&catalog),
            catalog_name: "modelgate",
            live: None,
            settled: true,
            egress: None,
        })
    }

    #[test]
    fn an_oci_model_in_an_approved_runtime_is_sealed() {
        let oci = model("oci://registry.example.com/models/fraud:1");
        let t = template(
            serde_json::json!({"containers": [{"name": "server", "image": RUNTIME,
            "args": ["--port=8000", "--model=$(MODEL_PATH)"], "env": [{"name": "HF_HUB_OFFLINE", "value": "1"}]}],
            "volumes": [{"name": "cfg", "configMap": {"name": "cfg"}}]}),
        );
        let c = judged(&oci, &t, true);
        let (status, reason, message) = said(&c);
        assert_eq!((status, reason), (TRUE, "Sealed"), "{message}");
        assert!(
            message.contains("registry.example.com/models/fraud@sha256:aaaa"),
            "{message}"
        );
    }

    #[test]
    fn every_unsealed_input_is_named() {
        let s3 = model("s3://models/fraud/1");
        let t = template(serde_json::json!({
            "containers": [
                {"name": "server", "image": RUNTIME, "command": ["sh"], "args": ["--model", "https://elsewhere/w", "--model=https://elsewhere/w"],
                 "readinessProbe": {"exec": {"command": ["sh", "-c", "curl elsewhere"]}},
                 "env": [{"name": "TOKEN", "value": "x"}], "envFrom": [{"configMapRef": {"name": "all"}}]},
                {"name": "baked", "image": "registry.example.com/baked:1"}],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "w"}},
                        {"name": "other", "image": {"reference": "registry.example.com/m@sha256:00"}}]}));
        let c = judged(&s3, &t, false);
        let (status, reason, message) = said(&c);
        assert_eq!((status, reason), (FALSE, "Unsealed"));
        for expected in [
            "s3://models/fraud/1 is not an OCI artifact",
            "namespace risk is not governed",
            "container server replaces the entrypoint of runtime vllm",
            "container server runs a command of its own through its readiness probe",
            "argument \"--model\"",
            "argument \"https://elsewhere/w\"",
            "argument \"--model=https://elsewhere/w\"",
            "container server sets TOKEN",
            "envFrom",
            "container baked runs registry.example.com/baked:1, which is not an approved runtime (approved: vllm (",
            "volume data is not bounded configuration",
            "volume other is an image volume other than the approved model",
        ] {
            assert!(
                message.contains(expected),
                "{expected:?} missing from {message}"
            );
        }
    }

    #[test]
    fn without_runtimes_nothing_is_sealed() {
        let oci = model("oci://registry.example.com/models/fraud:1");
        let t = template(
            serde_json::json!({"containers": [{"name": "server", "image": "anything:1"}]}),
        );
        let c = condition(&Sealing {
            model: Some(&oci),
            template: &t,
            namespace: "risk",
            governed: true,
            catalog: None,
            catalog_name: "modelgate",
            live: None,
            settled: true,
            egress: None,
        });
        assert_eq!(
            said(&c),
            (
                FALSE,
                "Unsealed",
                "no serving runtimes are listed in RuntimeCatalog modelgate"
            )
        );
    }
}
