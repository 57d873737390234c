//! The CRDs against the real API server: installable with a plain
//! client-side `kubectl apply`, answering `kubectl get` and `kubectl
//! explain`, and refusing bad manifests with messages that name the field.

use modelgate_e2e::cluster::{cluster, kubectl, kubectl_stdin, text};
use serde_json::{Value, json};

const DIGEST: &str = "sha256:0f3c4e1d2b7a8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f";

fn approval(name: &str) -> Value {
    json!({
        "apiVersion": "modelgate.io/v1alpha1",
        "kind": "ModelApproval",
        "metadata": {"name": name},
        "spec": {
            "model": {"name": "fraud-detector", "version": "2.4.0", "uri": "s3://models/fraud-detector/2.4.0/", "digest": DIGEST},
            "validFor": "2160h",
            "evidence": [{"gate": "FairnessReview", "uri": "https://reports.example.com/fairness.html"}]
        }
    })
}

fn deployment(name: &str) -> Value {
    json!({
        "apiVersion": "modelgate.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {
            "approvalRef": {"name": "fraud-detector-2-4-0"},
            "replicas": 2,
            "template": {"spec": {"containers": [{"name": "server", "image": "registry.example.com/serve:1.0", "ports": [{"containerPort": 8080}]}]}}
        }
    })
}

/// Sets (or with `Value::Null`, removes) the value at a `/`-separated path.
fn with(mut doc: Value, path: &str, value: Value) -> Value {
    let mut parts: Vec<&str> = path.split('/').collect();
    let last = parts.pop().unwrap_or_default();
    let mut node = &mut doc;
    for p in parts {
        node = match p.parse::<usize>() {
            Ok(i) => &mut node[i],
            Err(_) => &mut node[p],
        };
    }
    match (node, value) {
        (Value::Object(map), Value::Null) => {
            map.remove(last);
        }
        (Value::Object(map), v) => {
            map.insert(last.to_string(), v);
        }
        (Value::Array(items), v) => {
            if let Ok(i) = last.parse::<usize>() {
                items[i] = v;
            }
        }
        _ => {}
    }
    doc
}

struct BadCase {
    id: &'static str,
    manifest: Value,
    /// Every one of these must appear in the API server's refusal.
    expect: &'static [&'static str],
}

fn bad_cases() -> Vec<BadCase> {
    let a = || approval("bad");
    let d = || deployment("bad");
    let long = |n: usize| "a".repeat(n);
    vec![
        BadCase {
            id: "approval-missing-spec",
            manifest: with(a(), "spec", Value::Null),
            expect: &["spec: Required value"],
        },
        BadCase {
            id: "approval-missing-model",
            manifest: with(a(), "spec/model", Value::Null),
            expect: &["spec.model: Required value"],
        },
        BadCase {
            id: "approval-missing-name",
            manifest: with(a(), "spec/model/name", Value::Null),
            expect: &["spec.model.name: Required value"],
        },
        BadCase {
            id: "approval-missing-version",
            manifest: with(a(), "spec/model/version", Value::Null),
            expect: &["spec.model.version: Required value"],
        },
        BadCase {
            id: "approval-missing-uri",
            manifest: with(a(), "spec/model/uri", Value::Null),
            expect: &["spec.model.uri: Required value"],
        },
        BadCase {
            id: "approval-missing-digest",
            manifest: with(a(), "spec/model/digest", Value::Null),
            expect: &["spec.model.digest: Required value"],
        },
        BadCase {
            id: "digest-no-algorithm",
            manifest: with(
                a(),
                "spec/model/digest",
                json!("0f3c4e1d2b7a8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f"),
            ),
            expect: &[
                "spec.model.digest",
                "digest must be <algorithm>:<lower-case hex>",
            ],
        },
        BadCase {
            id: "digest-short-sha256",
            manifest: with(
                a(),
                "spec/model/digest",
                json!("sha256:0f3c4e1d2b7a8c9d0e1f2a3b4c5d6e7f8091"),
            ),
            expect: &["spec.model.digest", "exactly 64 hex digits"],
        },
        BadCase {
            id: "digest-upper-case",
            manifest: with(a(), "spec/model/digest", json!(DIGEST.to_uppercase())),
            expect: &["spec.model.digest", "lower-case hex"],
        },
        BadCase {
            id: "digest-not-hex",
            manifest: with(a(), "spec/model/digest", json!("sha256:latest")),
            expect: &["spec.model.digest", "digest must be"],
        },
        BadCase {
            id: "digest-too-long",
            manifest: with(
                a(),
                "spec/model/digest",
                json!(format!("sha256:{}", "0".repeat(200))),
            ),
            expect: &["spec.model.digest", "Too long"],
        },
        BadCase {
            id: "name-too-long",
            manifest: with(a(), "spec/model/name", json!(long(64))),
            expect: &["spec.model.name", "Too long"],
        },
        BadCase {
            id: "name-bad-characters",
            manifest: with(a(), "spec/model/name", json!("Fraud Detector")),
            expect: &["spec.model.name", "lower-case letters"],
        },
        BadCase {
            id: "name-empty",
            manifest: with(a(), "spec/model/name", json!("")),
            expect: &["spec.model.name"],
        },
        BadCase {
            id: "version-too-long",
            manifest: with(a(), "spec/model/version", json!(long(64))),
            expect: &["spec.model.version", "Too long"],
        },
        BadCase {
            id: "version-bad-characters",
            manifest: with(a(), "spec/model/version", json!("2.4 beta")),
            expect: &["spec.model.version", "model version must be"],
        },
        BadCase {
            id: "uri-no-scheme",
            manifest: with(a(), "spec/model/uri", json!("models/fraud-detector")),
            expect: &["spec.model.uri", "URI with a scheme"],
        },
        BadCase {
            id: "validfor-days",
            manifest: with(a(), "spec/validFor", json!("90d")),
            expect: &["spec.validFor", "such as 2160h"],
        },
        BadCase {
            id: "validfor-zero",
            manifest: with(a(), "spec/validFor", json!("0s")),
            expect: &["spec.validFor", "positive duration"],
        },
        BadCase {
            id: "validfor-negative",
            manifest: with(a(), "spec/validFor", json!("-5h")),
            expect: &["spec.validFor", "positive duration"],
        },
        BadCase {
            id: "validfor-out-of-order",
            manifest: with(a(), "spec/validFor", json!("1s1m")),
            expect: &["spec.validFor", "in that order", "such as 2160h"],
        },
        BadCase {
            id: "validfor-hours-after-minutes",
            manifest: with(a(), "spec/validFor", json!("1m2159h")),
            expect: &["spec.validFor", "in that order", "such as 2160h"],
        },
        BadCase {
            id: "validfor-fraction",
            manifest: with(a(), "spec/validFor", json!("1.5h")),
            expect: &["spec.validFor", "whole hours"],
        },
        BadCase {
            id: "validfor-empty",
            manifest: with(a(), "spec/validFor", json!("")),
            expect: &["spec.validFor", "such as 2160h"],
        },
        BadCase {
            id: "validfor-number",
            manifest: with(a(), "spec/validFor", json!(3600)),
            expect: &["spec.validFor", "string"],
        },
        BadCase {
            id: "evidence-unknown-gate",
            manifest: with(a(), "spec/evidence/0/gate", json!("ComplianceReview")),
            expect: &["spec.evidence[0].gate", "Unsupported value", "LegalReview"],
        },
        BadCase {
            id: "evidence-missing-uri",
            manifest: with(a(), "spec/evidence/0/uri", Value::Null),
            expect: &["spec.evidence[0].uri: Required value"],
        },
        BadCase {
            id: "deployment-missing-approvalref",
            manifest: with(d(), "spec/approvalRef", Value::Null),
            expect: &["spec.approvalRef: Required value"],
        },
        BadCase {
            id: "approvalref-missing-name",
            manifest: with(d(), "spec/approvalRef/name", Value::Null),
            expect: &["spec.approvalRef.name: Required value"],
        },
        BadCase {
            id: "approvalref-bad-name",
            manifest: with(d(), "spec/approvalRef/name", json!("Fraud_Detector")),
            expect: &[
                "spec.approvalRef.name",
                "must be the name of a ModelApproval",
            ],
        },
        BadCase {
            id: "deployment-missing-template",
            manifest: with(d(), "spec/template", Value::Null),
            expect: &["spec.template: Required value"],
        },
        BadCase {
            id: "replicas-negative",
            manifest: with(d(), "spec/replicas", json!(-1)),
            expect: &["spec.replicas", "greater than or equal to 0"],
        },
        BadCase {
            id: "replicas-not-a-number",
            manifest: with(d(), "spec/replicas", json!("three")),
            expect: &["spec.replicas", "integer"],
        },
        BadCase {
            id: "onrevoke-unknown",
            manifest: with(d(), "spec/onRevoke", json!("Delete")),
            expect: &["spec.onRevoke", "Unsupported value", "ScaleToZero"],
        },
        BadCase {
            id: "template-no-containers",
            manifest: with(d(), "spec/template/spec", json!({})),
            expect: &["spec.template.spec.containers: Required value"],
        },
        BadCase {
            id: "container-missing-name",
            manifest: with(d(), "spec/template/spec/containers/0/name", Value::Null),
            expect: &["spec.template.spec.containers[0].name: Required value"],
        },
        BadCase {
            id: "container-port-not-a-number",
            manifest: with(
                d(),
                "spec/template/spec/containers/0/ports/0/containerPort",
                json!("http"),
            ),
            expect: &[
                "spec.template.spec.containers[0].ports[0].containerPort",
                "integer",
            ],
        },
    ]
}

fn install_client_side() {
    // Once per test binary: two concurrent client-side applies race to
    // create the same CRD.
    static ONCE: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    ONCE.get_or_init(install_client_side_once);
}

fn install_client_side_once() {
    // A plain client-side apply stores the whole CRD in the last-applied
    // annotation; this is what fails when a CRD grows past 256 KiB.
    let out = kubectl(&[
        "apply",
        "-f",
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../crds/"),
    ]);
    assert!(
        out.status.success(),
        "kubectl apply -f crds/ failed: {}",
        text(&out)
    );
    let out = kubectl(&[
        "wait",
        "--for=condition=Established",
        "crd/modelapprovals.modelgate.io",
        "crd/modeldeployments.modelgate.io",
        "--timeout=60s",
    ]);
    assert!(out.status.success(), "CRDs not established: {}", text(&out));
}

/// kubectl caches discovery; right after a CRD appears it may need a retry.
fn kubectl_retry(args: &[&str]) -> String {
    let mut last = String::new();
    for _ in 0..40 {
        let out = kubectl(args);
        last = text(&out);
        if out.status.success() {
            return last;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    panic!("kubectl {args:?} kept failing: {last}")
}

#[test]
fn crds_in_the_repository_are_current() {
    let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")).join("crds");
    for crd in modelgate::crd::all() {
        let path = dir.join(modelgate::crd::file_name(&crd));
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        let generated = modelgate::crd::to_yaml(&crd).expect("render crd");
        assert!(
            committed == generated,
            "{} is stale: run `cargo run --bin modelgate -- crd --dir crds`",
            path.display()
        );
    }
}

#[test]
fn crds_install_client_side_and_answer_get_and_explain() {
    install_client_side();
    let ns = format!("crd-get-{}", std::process::id());
    kubectl_retry(&["create", "namespace", &ns]);
    let manifest = serde_json::to_string(&with(
        approval("fraud-detector-2-4-0"),
        "metadata/namespace",
        json!(ns),
    ))
    .unwrap_or_default();
    let out = kubectl_stdin(&["apply", "-f", "-"], Some(&manifest));
    assert!(out.status.success(), "{}", text(&out));
    let manifest = serde_json::to_string(&with(
        deployment("fraud-detector"),
        "metadata/namespace",
        json!(ns),
    ))
    .unwrap_or_default();
    let out = kubectl_stdin(&["apply", "-f", "-"], Some(&manifest));
    assert!(out.status.success(), "{}", text(&out));

    let get = kubectl_retry(&["get", "modelapprovals", "-n", &ns]);
    for column in [
        "PHASE",
        "MODEL",
        "VERSION",
        "GATES",
        "AGE",
        "fraud-detector",
        "2.4.0",
    ] {
        assert!(
            get.contains(column),
            "`kubectl get modelapprovals` lacks {column}:\n{get}"
        );
    }
    let get = kubectl_retry(&["get", "modelgate", "-n", &ns]);
    assert!(
        get.contains("modelapproval.modelgate.io/fraud-detector-2-4-0"),
        "category lacks the approval:\n{get}"
    );
    assert!(
        get.contains("modeldeployment.modelgate.io/fraud-detector"),
        "category lacks the deployment:\n{get}"
    );
    for column in ["APPROVAL", "SERVING", "READY"] {
        assert!(
            get.contains(column),
            "`kubectl get modelgate` lacks {column}:\n{get}"
        );
    }
    let short = kubectl_retry(&["get", "ma,md", "-n", &ns, "-o", "name"]);
    assert!(short.lines().count() == 2, "short names ma,md:\n{short}");

    let explain = kubectl_retry(&["explain", "modelapproval"]);
    assert!(explain.contains("review gates"), "{explain}");
    let explain = kubectl_retry(&["explain", "modelapproval.spec.model.digest"]);
    assert!(explain.contains("<algorithm>:<hex>"), "{explain}");
    let explain = kubectl_retry(&["explain", "modeldeployment.spec.onRevoke"]);
    assert!(explain.contains("ScaleToZero"), "{explain}");
    let explain = kubectl_retry(&["explain", "modeldeployment.spec.template.spec.containers"]);
    assert!(
        explain.contains("image") && explain.contains("A single application container"),
        "{explain}"
    );
    let _ = kubectl(&["delete", "namespace", &ns, "--wait=false"]);
}

#[test]
fn bad_manifests_are_refused_with_the_field_named() {
    install_client_side();
    let ns = format!("crd-bad-{}", std::process::id());
    kubectl_retry(&["create", "namespace", &ns]);
    let cases = bad_cases();
    assert!(cases.len() >= 25);
    let mut failures = Vec::new();
    for case in &cases {
        let manifest = serde_json::to_string(&with(
            case.manifest.clone(),
            "metadata/namespace",
            json!(ns),
        ))
        .unwrap_or_default();
        let out = kubectl_stdin(&["create", "-f", "-"], Some(&manifest));
        let said = text(&out);
        if out.status.success() {
            failures.push(format!("{}: accepted", case.id));
            let _ = kubectl_stdin(&["delete", "-f", "-"], Some(&manifest));
        } else if let Some(missing) = case.expect.iter().find(|e| !said.contains(*e)) {
            failures.push(format!("{}: refusal lacks {missing:?}: {said}", case.id));
        }
    }

    // An approval's spec cannot be edited once created.
    let manifest = serde_json::to_string(&with(
        approval("immutable"),
        "metadata/namespace",
        json!(ns),
    ))
    .unwrap_or_default();
    let out = kubectl_stdin(&["create", "-f", "-"], Some(&manifest));
    assert!(out.status.success(), "{}", text(&out));
    for (field, patch) in [
        (
            "digest",
            json!({"spec": {"model": {"digest": "sha256:1111111111111111111111111111111111111111111111111111111111111111"}}}),
        ),
        ("validFor", json!({"spec": {"validFor": "87600h"}})),
    ] {
        let out = kubectl(&[
            "patch",
            "-n",
            &ns,
            "modelapproval",
            "immutable",
            "--type=merge",
            "-p",
            &patch.to_string(),
        ]);
        let said = text(&out);
        if out.status.success() || !said.contains("spec is immutable") {
            failures.push(format!("spec-edit-{field}: {said}"));
        }
    }
    let _ = kubectl(&["delete", "namespace", &ns, "--wait=false"]);
    assert!(
        failures.is_empty(),
        "{} of {} bad manifests misjudged:\n{}",
        failures.len(),
        cases.len() + 2,
        failures.join("\n")
    );
}

#[test]
fn every_bad_manifest_is_listed_in_the_docs() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/validation.md"
    ))
    .unwrap_or_default();
    for case in bad_cases() {
        assert!(
            doc.contains(&format!("`{}`", case.id)),
            "docs/validation.md does not list `{}`",
            case.id
        );
    }
}

#[test]
fn a_deployment_becomes_available_on_kwok_nodes() {
    let ns = format!("kwok-{}", std::process::id());
    kubectl_retry(&["create", "namespace", &ns]);
    let out = kubectl(&[
        "create",
        "deployment",
        "web",
        "-n",
        &ns,
        "--image=registry.example.com/web:1",
        "--replicas=2",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let out = kubectl(&[
        "wait",
        "-n",
        &ns,
        "--for=condition=Available",
        "deployment/web",
        "--timeout=90s",
    ]);
    assert!(
        out.status.success(),
        "deployment not available: {}",
        text(&out)
    );
    let pods = kubectl_retry(&[
        "get",
        "pods",
        "-n",
        &ns,
        "-o",
        "jsonpath={range .items[*]}{.spec.nodeName} {.status.phase} {.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}{end}",
    ]);
    let lines: Vec<&str> = pods.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 2, "{pods}");
    for line in lines {
        assert!(
            line.starts_with("kwok-node-") && line.ends_with("Running True"),
            "pod not ready on a kwok node: {line}"
        );
    }
    let _ = kubectl(&["delete", "namespace", &ns, "--wait=false"]);
}

/// Every CRD, created fresh (as on a new cluster: a server dry run under a
/// group of its own, so nothing is stored), draws no warning from the API
/// server: no format it does not know, nothing deprecated.
#[test]
fn the_crds_install_without_a_warning() {
    let _ = cluster();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../crds");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("crds/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "every CRD: {files:?}");
    for file in files {
        let crd = std::fs::read_to_string(&file).expect("read a CRD");
        let fresh = crd.replace("modelgate.io", "warncheck.example.com");
        let out = kubectl_stdin(&["create", "--dry-run=server", "-f", "-"], Some(&fresh));
        let said = text(&out);
        assert!(out.status.success(), "{}: {said}", file.display());
        assert!(
            !said.to_lowercase().contains("warning"),
            "{} draws a warning: {said}",
            file.display()
        );
    }
}

/// `validFor` has one grammar: what the API server takes, the operator
/// reads (src/api/valid_for.rs proves that half). Go's durations that the
/// operator cannot read are refused here, on approvals and policies alike,
/// with the accepted form in the message; the documented forms are taken.
#[test]
fn valid_for_is_refused_unless_the_operator_can_read_it() {
    install_client_side();
    let ns = format!("crd-validfor-{}", std::process::id());
    kubectl_retry(&["create", "namespace", &ns]);
    let policy = |name: &str| {
        json!({
            "apiVersion": "modelgate.io/v1alpha1",
            "kind": "ApprovalPolicy",
            "metadata": {"name": name},
            "spec": {"gates": []}
        })
    };
    let create = |doc: Value| {
        let doc = with(doc, "metadata/namespace", json!(ns));
        kubectl_stdin(&["create", "-f", "-"], Some(&doc.to_string()))
    };
    for (i, bad) in ["1s1m", "1m2159h", "0h", "-1h", "1.5h"].iter().enumerate() {
        for doc in [approval(&format!("bad-{i}")), policy(&format!("bad-{i}"))] {
            let out = create(with(doc, "spec/validFor", json!(bad)));
            let said = text(&out);
            assert!(!out.status.success(), "{bad} accepted");
            assert!(
                said.contains("spec.validFor") && said.contains(modelgate::api::valid_for::MESSAGE),
                "{bad}: {said}"
            );
        }
    }
    let listed = kubectl(&[
        "get",
        "modelapprovals,approvalpolicies",
        "-n",
        &ns,
        "-o",
        "name",
    ]);
    assert_eq!(text(&listed).trim(), "", "nothing was created");
    for (i, good) in ["2160h", "720h30m", "45m", "1h30m15s"].iter().enumerate() {
        for doc in [approval(&format!("good-{i}")), policy(&format!("good-{i}"))] {
            let out = create(with(doc, "spec/validFor", json!(good)));
            assert!(out.status.success(), "{good}: {}", text(&out));
        }
    }
    let _ = kubectl(&["delete", "namespace", &ns, "--wait=false"]);
}
