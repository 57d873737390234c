//! The governed-namespace and managed-Deployment rules as static admission
//! manifests (Kubernetes manifest-based admission control, KEP-5793): files
//! the API server loads from a directory named in its AdmissionConfiguration,
//! which nobody can delete or change through the API.
//!
//! They are rendered from the chart's own output, not written by hand, so
//! the static rules are always the chart's rules. Static policies may not
//! use a paramKind (nor their bindings a paramRef), so the params the chart
//! keeps in the `modelgate-authority` ConfigMap are rendered into the CEL:
//! each policy gains a first variable, `authority`, a CEL map literal of the
//! ConfigMap's data, and every `params.data` becomes `variables.authority`.
//! A change to those params therefore needs the files rendered again.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};

/// The reserved suffix of static admission objects' names.
pub const SUFFIX: &str = ".static.k8s.io";
/// The policies rendered as static manifests (with their bindings).
pub const POLICIES: [&str; 2] = [
    "modelgate-governed-workloads",
    "modelgate-managed-deployments",
];
/// The ConfigMap whose data the API-installed policies take as params.
pub const PARAMS: &str = "modelgate-authority";
/// The variable that holds the params in a static policy.
const VARIABLE: &str = "authority";

/// Why the static manifests could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum StaticError {
    #[error("the manifests are not YAML: {0}")]
    Yaml(String),
    #[error("the manifests hold no ValidatingAdmissionPolicy {0}")]
    NoPolicy(String),
    #[error("the manifests hold no binding of ValidatingAdmissionPolicy {0}")]
    NoBinding(String),
    #[error("the manifests hold no ConfigMap {PARAMS}, whose data the policies read")]
    NoParams,
    #[error(
        "policy {policy} already has a variable named {VARIABLE}: the params cannot be rendered into it"
    )]
    Taken { policy: String },
    #[error(
        "policy {policy} still reads params after rendering ({expression:?}): static policies have none; read them through params.data"
    )]
    Params { policy: String, expression: String },
    #[error("cannot write YAML: {0}")]
    Write(String),
}

/// One rendered file: its name in the directory, and its text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaticFile {
    pub name: String,
    pub text: String,
}

/// The static manifests for `manifests` (the chart rendered by `helm
/// template`, or deploy/modelgate.yaml): one file per policy, holding the
/// policy and its bindings. A policy the manifests lack (governed namespaces
/// turned off) is left out; none at all is an error.
pub fn render(manifests: &str) -> Result<Vec<StaticFile>, StaticError> {
    let docs = documents(manifests)?;
    let params = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap" && d["metadata"]["name"] == PARAMS)
        .map(|d| d["data"].clone())
        .ok_or(StaticError::NoParams)?;
    let literal = cel_map(&params);
    let mut files = Vec::new();
    for name in POLICIES {
        let Some(policy) = docs
            .iter()
            .find(|d| d["kind"] == "ValidatingAdmissionPolicy" && d["metadata"]["name"] == name)
        else {
            continue;
        };
        let bindings: Vec<&Value> = docs
            .iter()
            .filter(|d| {
                d["kind"] == "ValidatingAdmissionPolicyBinding" && d["spec"]["policyName"] == name
            })
            .collect();
        if bindings.is_empty() {
            return Err(StaticError::NoBinding(name.into()));
        }
        let mut out = vec![static_policy(policy, &literal)?];
        out.extend(bindings.into_iter().map(static_binding));
        files.push(file(name, &out)?);
    }
    if files.is_empty() {
        return Err(StaticError::NoPolicy(POLICIES.join(" or ")));
    }
    Ok(files)
}

fn documents(manifests: &str) -> Result<Vec<Value>, StaticError> {
    serde_yaml_ng::Deserializer::from_str(manifests)
        .map(|doc| Value::deserialize(doc).map_err(|e| StaticError::Yaml(e.to_string())))
        .filter(|doc| !matches!(doc, Ok(Value::Null)))
        .collect()
}

/// The policy with its static name, no paramKind, and the params in CEL.
fn static_policy(policy: &Value, params: &str) -> Result<Value, StaticError> {
    let mut policy = policy.clone();
    let name = rename(&mut policy["metadata"]);
    let Some(spec) = policy["spec"].as_object_mut() else {
        return Err(StaticError::NoPolicy(name));
    };
    spec.remove("paramKind");
    let taken = spec
        .get("variables")
        .and_then(Value::as_array)
        .is_some_and(|vs| vs.iter().any(|v| v["name"] == VARIABLE));
    if taken {
        return Err(StaticError::Taken { policy: name });
    }
    for field in [
        "variables",
        "validations",
        "matchConditions",
        "auditAnnotations",
    ] {
        if let Some(value) = spec.get_mut(field) {
            replace_params(value);
        }
    }
    let mut variables = spec
        .get("variables")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    // First, so that every later variable and validation may read it.
    variables.insert(
        0,
        serde_json::json!({"name": VARIABLE, "expression": params}),
    );
    spec.insert("variables".into(), Value::Array(variables));
    if let Some(expression) = reads_params(&policy["spec"]) {
        return Err(StaticError::Params {
            policy: name,
            expression,
        });
    }
    Ok(policy)
}

/// The binding with static names and no paramRef.
fn static_binding(binding: &Value) -> Value {
    let mut binding = binding.clone();
    rename(&mut binding["metadata"]);
    if let Some(spec) = binding["spec"].as_object_mut() {
        spec.remove("paramRef");
        if let Some(Value::String(policy)) = spec.get_mut("policyName") {
            policy.push_str(SUFFIX);
        }
    }
    binding
}

/// Gives an object its static name; returns the new name. Helm's
/// bookkeeping annotations and labels mean nothing to a file on disk.
fn rename(metadata: &mut Value) -> String {
    let name = format!("{}{SUFFIX}", metadata["name"].as_str().unwrap_or_default());
    metadata["name"] = Value::String(name.clone());
    if let Some(m) = metadata.as_object_mut() {
        m.remove("annotations");
        m.remove("namespace");
    }
    // Not Helm's: the file is installed by hand or by the control plane's
    // own provisioning.
    if let Some(labels) = metadata["labels"].as_object_mut() {
        labels.remove("app.kubernetes.io/managed-by");
        labels.remove("helm.sh/chart");
    }
    name
}

/// Every string below `value` with `params.data` read from the variable.
fn replace_params(value: &mut Value) {
    match value {
        Value::String(s) => *s = s.replace("params.data", &format!("variables.{VARIABLE}")),
        Value::Array(items) => items.iter_mut().for_each(replace_params),
        Value::Object(fields) => fields.values_mut().for_each(replace_params),
        _ => {}
    }
}

/// The first expression below `value` that still reads `params` (as a
/// name, not inside a longer word or after a dot), if any.
fn reads_params(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => reads_params_text(s).then(|| s.clone()),
        Value::Array(items) => items.iter().find_map(reads_params),
        Value::Object(fields) => fields.values().find_map(reads_params),
        _ => None,
    }
}

fn reads_params_text(text: &str) -> bool {
    text.match_indices("params").any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + "params".len()..].chars().next();
        !before.is_some_and(|c| c.is_alphanumeric() || c == '.' || c == '_' || c == '-')
            && matches!(after, Some('.' | '[' | '?'))
    })
}

/// The ConfigMap's data as a CEL map literal of strings, keys sorted.
fn cel_map(data: &Value) -> String {
    let entries: BTreeMap<&str, String> = data
        .as_object()
        .map(Map::iter)
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            (
                k.as_str(),
                v.as_str().map(str::to_string).unwrap_or_default(),
            )
        })
        .collect();
    let body: Vec<String> = entries
        .iter()
        .map(|(k, v)| format!("{}: {}", cel_string(k), cel_string(v)))
        .collect();
    format!("{{{}}}", body.join(", "))
}

/// A CEL string literal (single-quoted, escaped).
fn cel_string(text: &str) -> String {
    let mut out = String::from("'");
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

fn file(policy: &str, docs: &[Value]) -> Result<StaticFile, StaticError> {
    let mut text = format!(
        "# Rendered from charts/modelgate by `modelgate static-admission`; do not edit.\n\
         # A static admission manifest ({policy}): load it with the API server's\n\
         # AdmissionConfiguration (docs/authority.md, \"Static admission manifests\").\n"
    );
    // No `---` before the first document: the API server's loader reads a
    // comment-only document as an object without a kind and refuses the file.
    for (i, doc) in docs.iter().enumerate() {
        if i > 0 {
            text.push_str("---\n");
        }
        text.push_str(
            &serde_yaml_ng::to_string(doc).map_err(|e| StaticError::Write(e.to_string()))?,
        );
    }
    Ok(StaticFile {
        name: format!("{policy}{SUFFIX}.yaml"),
        text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEPLOY: &str = include_str!("../../../deploy/modelgate.yaml");

    fn rendered() -> Vec<(String, Vec<Value>)> {
        render(DEPLOY)
            .expect("render")
            .into_iter()
            .map(|f| (f.name, documents(&f.text).expect("yaml")))
            .collect()
    }

    #[test]
    fn each_rule_becomes_a_static_policy_and_binding_without_params() {
        let files = rendered();
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "modelgate-governed-workloads.static.k8s.io.yaml",
                "modelgate-managed-deployments.static.k8s.io.yaml"
            ]
        );
        for (_, docs) in &files {
            let [policy, binding] = &docs[..] else {
                panic!("a policy and its binding: {docs:?}")
            };
            let name = policy["metadata"]["name"].as_str().expect("name");
            assert!(name.ends_with(SUFFIX), "{name}");
            assert!(policy["spec"].get("paramKind").is_none());
            assert!(binding["spec"].get("paramRef").is_none());
            assert_eq!(binding["spec"]["policyName"], name);
            assert!(
                binding["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.ends_with(SUFFIX))
            );
            assert_eq!(reads_params(&policy["spec"]), None);
            let text = serde_json::to_string(policy).expect("json");
            assert!(!text.contains("params.data"), "{text}");
            let params = policy["spec"]["variables"][0]["expression"]
                .as_str()
                .expect("the params variable first");
            assert!(
                params.contains(
                    "'operatorServiceAccount': 'system:serviceaccount:modelgate-system:modelgate'"
                ),
                "{params}"
            );
        }
    }

    #[test]
    fn params_are_found_as_names_only_and_literals_escaped() {
        assert!(reads_params_text("params.data.x == 1"));
        assert!(reads_params_text("a || params[?'x']"));
        assert!(!reads_params_text("variables.params.x"));
        assert!(!reads_params_text("'the modelgate-authority params (' + x"));
        assert_eq!(cel_string("a'b\\c"), "'a\\'b\\\\c'");
        assert_eq!(
            cel_map(&serde_json::json!({"b": "2", "a": "o'k"})),
            "{'a': 'o\\'k', 'b': '2'}"
        );
    }

    #[test]
    fn missing_pieces_are_named() {
        assert!(matches!(render(""), Err(StaticError::NoParams)));
        let only_params = "kind: ConfigMap\nmetadata: {name: modelgate-authority}\ndata: {a: b}\n";
        assert!(matches!(render(only_params), Err(StaticError::NoPolicy(_))));
    }
}
