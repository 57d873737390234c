//! The CRDs' CEL rules, evaluated without a cluster.
//!
//! The API server enforces the `x-kubernetes-validations` rules of
//! `crds/*.yaml`, and tests/crds.rs proves that against a real one, which
//! takes a cluster and minutes. This tier evaluates every rule of the CRDs
//! in-process with kube's own CEL support (the `cel` feature), so a rule that
//! stops parsing, refuses a good manifest, lets a bad one through, changes the
//! message docs/validation.md promises, or is added without a case here fails
//! `cargo test` in well under a second once built.
//!
//! Schema-only refusals (required, enum, type, minLength, maxLength) are not
//! CEL and stay with tests/crds.rs: no JSON Schema validator is among the
//! project's dependencies.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use kube::core::cel::{ErrorKind, ValidationError, Validator};
use serde_json::{Value, json};

const DIGEST: &str = "sha256:0f3c4e1d2b7a8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f";

/// Rules that this tier cannot evaluate faithfully (for instance a
/// Kubernetes CEL function that kube's CEL library lacks), as (kind, schema
/// path, rule, why). They are checked only against the API server
/// (tests/crds.rs); listing them keeps the coverage check honest. None today:
/// every rule of the CRDs uses `matches`, `startsWith`, `size`, `duration`
/// or `==`, which the library provides.
const API_SERVER_ONLY: &[(Kind, &str, &str, &str)] = &[];

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    ModelApproval,
    ModelDeployment,
    ApprovalRecord,
    ApprovalPolicy,
    BreakGlass,
    TrustedPublisher,
}

impl Kind {
    const ALL: [Kind; 6] = [
        Kind::ModelApproval,
        Kind::ModelDeployment,
        Kind::ApprovalRecord,
        Kind::ApprovalPolicy,
        Kind::BreakGlass,
        Kind::TrustedPublisher,
    ];

    fn file(self) -> &'static str {
        match self {
            Kind::ModelApproval => "modelapprovals.modelgate.io.yaml",
            Kind::ModelDeployment => "modeldeployments.modelgate.io.yaml",
            Kind::ApprovalRecord => "approvalrecords.modelgate.io.yaml",
            Kind::ApprovalPolicy => "approvalpolicies.modelgate.io.yaml",
            Kind::BreakGlass => "breakglasses.modelgate.io.yaml",
            Kind::TrustedPublisher => "trustedpublishers.modelgate.io.yaml",
        }
    }
}

/// The openAPIV3Schema of the committed CRD, exactly what the API server is
/// given (tests/crds.rs checks the file is current with the Rust types).
fn schema(kind: Kind) -> Value {
    let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .join("crds")
        .join(kind.file());
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let crd: Value = serde_yaml_ng::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()));
    let versions = crd["spec"]["versions"]
        .as_array()
        .unwrap_or_else(|| panic!("{} has no spec.versions", path.display()));
    // A second version would have rules of its own that need cases of their own.
    assert_eq!(
        versions.len(),
        1,
        "{}: teach tests/crd_rules.rs about the new version",
        path.display()
    );
    let schema = versions[0]["schema"]["openAPIV3Schema"].clone();
    assert!(
        schema.is_object(),
        "{} has no openAPIV3Schema",
        path.display()
    );
    schema
}

/// One `x-kubernetes-validations` entry and where in the schema it sits.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct RuleAt {
    kind: Kind,
    /// The schema path, with `[*]` for list items and `*` for map values.
    path: String,
    /// Where the API server reports a refusal: `path`, moved by `fieldPath`.
    reported: String,
    rule: String,
    message: Option<String>,
    message_expression: Option<String>,
}

impl std::fmt::Display for RuleAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = if self.path.is_empty() {
            "the root"
        } else {
            &self.path
        };
        write!(f, "{:?} {at}: `{}`", self.kind, self.rule)
    }
}

/// `base.segment`; a `fieldPath` starts with its own dot.
fn join(base: &str, segment: &str) -> String {
    let segment = segment.strip_prefix('.').unwrap_or(segment);
    if base.is_empty() {
        segment.to_string()
    } else {
        format!("{base}.{segment}")
    }
}

/// Every rule under `node`, walking the same keywords the API server does.
fn collect(kind: Kind, node: &Value, path: &str, out: &mut Vec<RuleAt>) {
    if let Some(rules) = node.get("x-kubernetes-validations") {
        let rules = rules
            .as_array()
            .unwrap_or_else(|| panic!("{kind:?} {path}: x-kubernetes-validations is not a list"));
        for entry in rules {
            let text = |key: &str| entry.get(key).and_then(Value::as_str).map(str::to_string);
            let rule = text("rule")
                .unwrap_or_else(|| panic!("{kind:?} {path}: a validation without a rule: {entry}"));
            let reported = match text("fieldPath") {
                Some(field) => join(path, &field),
                None => path.to_string(),
            };
            out.push(RuleAt {
                kind,
                path: path.to_string(),
                reported,
                rule,
                message: text("message"),
                message_expression: text("messageExpression"),
            });
        }
    }
    if let Some(properties) = node.get("properties").and_then(Value::as_object) {
        for (name, child) in properties {
            collect(kind, child, &join(path, name), out);
        }
    }
    if let Some(items) = node.get("items") {
        collect(kind, items, &format!("{path}[*]"), out);
    }
    if let Some(values) = node.get("additionalProperties").filter(|v| v.is_object()) {
        collect(kind, values, &join(path, "*"), out);
    }
    for keyword in ["allOf", "anyOf", "oneOf"] {
        for branch in node
            .get(keyword)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            collect(kind, branch, path, out);
        }
    }
}

fn all_rules() -> Vec<RuleAt> {
    let mut rules = Vec::new();
    for kind in Kind::ALL {
        collect(kind, &schema(kind), "", &mut rules);
    }
    rules
}

/// `spec.evidence[0].uri` as `["spec", "evidence", "[0]", "uri"]`.
fn segments(path: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (key, mut rest) = part.split_at(part.find('[').unwrap_or(part.len()));
        if !key.is_empty() {
            out.push(key);
        }
        while let Some(end) = rest.find(']') {
            out.push(&rest[..=end]);
            rest = &rest[end + 1..];
        }
    }
    out
}

/// Whether a reported path such as `spec.evidence[0].uri` lies at the schema
/// path `spec.evidence[*].uri`.
fn path_matches(pattern: &str, actual: &str) -> bool {
    let (pattern, actual) = (segments(pattern), segments(actual));
    pattern.len() == actual.len()
        && pattern.iter().zip(&actual).all(|(p, a)| {
            p == a || (*p == "[*]" && a.starts_with('[')) || (*p == "*" && !a.starts_with('['))
        })
}

/// The values of `doc` at a schema path (every item for `[*]`).
fn values_at<'a>(doc: &'a Value, path: &str) -> Vec<&'a Value> {
    let mut found = vec![doc];
    for segment in segments(path) {
        found = found
            .into_iter()
            .flat_map(|v| -> Vec<&Value> {
                match (segment, v) {
                    ("[*]", Value::Array(items)) => items.iter().collect(),
                    ("*", Value::Object(map)) => map.values().collect(),
                    (key, Value::Object(map)) => map.get(key).into_iter().collect(),
                    _ => Vec::new(),
                }
            })
            .collect();
    }
    found
}

fn is_api_server_only(rule: &RuleAt) -> bool {
    API_SERVER_ONLY
        .iter()
        .any(|(kind, path, text, _)| *kind == rule.kind && *path == rule.path && *text == rule.rule)
}

/// The rule of `kind` that raised `error`.
fn rule_of<'a>(rules: &'a [RuleAt], kind: Kind, error: &ValidationError) -> Option<&'a RuleAt> {
    rules.iter().find(|r| {
        r.kind == kind && r.rule == error.rule && path_matches(&r.reported, &error.field_path)
    })
}

/// Everything the rules of `kind` say about `object`, created (`old` is
/// None) or updated from `old`; rules checked only against the API server
/// are left out.
/// [`evaluate`] for one case: its manifest, on create or on update.
fn evaluate_case(
    validator: &Validator,
    schemas: &BTreeMap<Kind, Value>,
    rules: &[RuleAt],
    case: &Case,
) -> Vec<ValidationError> {
    evaluate(
        validator,
        schemas,
        rules,
        case.kind,
        &case.object,
        case.old.as_ref(),
    )
}

fn evaluate(
    validator: &Validator,
    schemas: &BTreeMap<Kind, Value>,
    rules: &[RuleAt],
    kind: Kind,
    object: &Value,
    old: Option<&Value>,
) -> Vec<ValidationError> {
    match validator.validate(&schemas[&kind], object, old) {
        Ok(()) => Vec::new(),
        Err(errors) => errors
            .into_vec()
            .into_iter()
            .filter(|e| rule_of(rules, kind, e).is_none_or(|r| !is_api_server_only(r)))
            .collect(),
    }
}

fn schemas() -> BTreeMap<Kind, Value> {
    Kind::ALL.into_iter().map(|k| (k, schema(k))).collect()
}

fn approval() -> Value {
    json!({
        "apiVersion": "modelgate.io/v1alpha1", "kind": "ModelApproval", "metadata": {"name": "fraud-detector-2-4-0"},
        "spec": {
            "model": {"name": "fraud-detector", "version": "2.4.0", "uri": "s3://models/fraud-detector/2.4.0/", "digest": DIGEST},
            "validFor": "2160h",
            "evidence": [{"gate": "FairnessReview", "uri": "https://reports.example.com/fairness.html"}]
        },
        "status": {
            "measurements": [{"name": "auc", "value": 0.94, "measuredBy": "system:serviceaccount:ml:evaluator"}],
            "policy": {"name": "risk/default", "gates": [
                {"gate": "SecurityReview", "reviewers": 2, "deadline": {"reviewWithin": "72h", "expireAfter": "720h"}}
            ], "breakGlass": {"requesters": {"groups": ["incident-commanders"]}, "approvers": {"users": ["bob@example.com"]}, "maxDuration": "8h"}}
        }
    })
}

fn deployment() -> Value {
    json!({
        "apiVersion": "modelgate.io/v1alpha1", "kind": "ModelDeployment", "metadata": {"name": "fraud-detector"},
        "spec": {
            "approvalRef": {"name": "fraud-detector-2-4-0"},
            "replicas": 1,
            "onRevoke": "Hold",
            "template": {"metadata": {"labels": {"app": "fraud-detector"}}, "spec": {"containers": [
                {"name": "server", "image": "registry.example.com/model-server:1.8", "env": [{"name": "LOG_LEVEL", "value": "info"}], "ports": [{"containerPort": 8080}]}
            ]}}
        }
    })
}

fn record() -> Value {
    json!({
        "apiVersion": "modelgate.io/v1alpha1", "kind": "ApprovalRecord", "metadata": {"name": "fraud-detector-2-4-0-0f3c9a1e-6"},
        "spec": {
            "approval": {"name": "fraud-detector-2-4-0", "uid": "0f3c9a1e-7b2d-4c5e-9f00-123456789abc"},
            "model": {"name": "fraud-detector", "version": "2.4.0", "digest": DIGEST},
            "phase": "Approved", "seq": 6, "time": "2026-12-01T12:00:00Z", "keyId": "ab".repeat(32),
            "envelope": {"payloadType": "application/vnd.in-toto+json", "payload": "e30=", "signatures": [{"keyid": "ab".repeat(32), "sig": "c2ln"}]}
        }
    })
}

fn policy() -> Value {
    json!({
        "apiVersion": "modelgate.io/v1alpha1", "kind": "ApprovalPolicy", "metadata": {"name": "default"},
        "spec": {
            "validFor": "2160h",
            "gates": [
                {"gate": "SecurityReview", "reviewers": 2, "deadline": {"reviewWithin": "72h", "escalateTo": ["oncall@example.com"], "expireAfter": "720h"}},
                {"gate": "TechnicalReview", "automatic": {"rule": "m.auc >= 0.92", "measuredBy": ["system:serviceaccount:ml:evaluator"], "mode": "Decide"}}
            ],
            "breakGlass": {"requesters": {"groups": ["incident-commanders"]}, "approvers": {"groups": ["sre-oncall"]}, "approvals": 1, "maxDuration": "8h"},
            "localGates": ["BusinessReview"]
        }
    })
}

fn imported() -> Value {
    let mut a = with(
        approval(),
        "/spec/model/uri",
        json!("oci://registry.example.com/models/fraud-detector"),
    );
    a["spec"]["importFrom"] =
        json!({"publisher": "review-board", "approval": "ml-prod/fraud-detector-2-4-0"});
    a
}

fn publisher() -> Value {
    json!({
        "apiVersion": "modelgate.io/v1alpha1", "kind": "TrustedPublisher", "metadata": {"name": "review-board"},
        "spec": {
            "description": "cluster A: the model review board",
            "publicKeys": ["-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n"],
            "repositories": ["registry.example.com/models/"]
        }
    })
}

fn break_glass() -> Value {
    json!({
        "apiVersion": "modelgate.io/v1alpha1", "kind": "BreakGlass", "metadata": {"name": "inc-4711"},
        "spec": {
            "approvalRef": {"name": "fraud-detector-2-4-1"},
            "reason": "INC-4711: 2.4.0 blocks every card payment in Ireland",
            "duration": "4h",
            "skips": ["LegalReview"],
            "requestedBy": {"user": "erin@example.com", "groups": ["incident-commanders"]}
        }
    })
}

/// `doc` with the value at the JSON pointer `pointer` replaced.
fn with(mut doc: Value, pointer: &str, value: Value) -> Value {
    *doc.pointer_mut(pointer)
        .unwrap_or_else(|| panic!("the sample has no {pointer}")) = value;
    doc
}

/// Manifests every rule must let through, as (what, kind, object).
fn valid_objects() -> Vec<(&'static str, Kind, Value)> {
    vec![
        ("the sample approval", Kind::ModelApproval, approval()),
        (
            "an approval with a sha512 digest, build metadata and a mixed duration",
            Kind::ModelApproval,
            with(
                with(
                    with(
                        approval(),
                        "/spec/model/digest",
                        json!(format!("sha512:{}", "ab".repeat(64))),
                    ),
                    "/spec/model/version",
                    json!("2.4.0+build.7"),
                ),
                "/spec/validFor",
                json!("720h30m"),
            ),
        ),
        (
            "an approval of an OCI artifact with a tag",
            Kind::ModelApproval,
            with(
                approval(),
                "/spec/model/uri",
                json!("oci://registry.example.com:5000/models/fraud-detector:2.4.0"),
            ),
        ),
        ("the sample deployment", Kind::ModelDeployment, deployment()),
        ("the sample record", Kind::ApprovalRecord, record()),
        ("the sample policy", Kind::ApprovalPolicy, policy()),
        ("the sample break-glass", Kind::BreakGlass, break_glass()),
        ("an imported approval", Kind::ModelApproval, imported()),
        ("the sample publisher", Kind::TrustedPublisher, publisher()),
    ]
}

/// How a case stands to docs/validation.md.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Docs {
    /// A row of the table: the refusal is reported at the row's field, and
    /// the row's words (split at `…`) are in the message.
    Row,
    /// A row whose words come from the schema (minLength), not from CEL; the
    /// CEL rule refuses the same value too, so only the field is checked.
    RowFieldFromSchema,
    /// No row: tests/crds.rs sends no such manifest, so this tier is where
    /// the rule is tested.
    NoRow,
}

struct Case {
    id: &'static str,
    kind: Kind,
    object: Value,
    /// The stored object for an update; transition rules (`oldSelf`) run
    /// only on updates.
    old: Option<Value>,
    /// The rules the manifest must fail, each as its schema path and the
    /// start of its message. Any other failure fails the test.
    fails: &'static [(&'static str, &'static str)],
    docs: Docs,
}

const DIGEST_FORMAT: (&str, &str) = ("spec.model.digest", "digest must be <algorithm>");
const SHA256_LENGTH: (&str, &str) = ("spec.model.digest", "a sha256 digest");
const VALID_FOR: (&str, &str) = ("spec.validFor", "validFor must be a positive duration");
const IMMUTABLE: (&str, &str) = ("spec", "spec is immutable");
const OCI_URI: (&str, &str) = (
    "spec.model",
    "an oci:// uri must be oci://REGISTRY/REPOSITORY[:TAG]",
);

/// A ModelApproval, the sample with `value` at `pointer`, sent on create.
fn ap(
    id: &'static str,
    pointer: &str,
    value: Value,
    fails: &'static [(&'static str, &'static str)],
    docs: Docs,
) -> Case {
    case(
        id,
        Kind::ModelApproval,
        with(approval(), pointer, value),
        fails,
        docs,
    )
}

/// A manifest sent on create.
fn case(
    id: &'static str,
    kind: Kind,
    object: Value,
    fails: &'static [(&'static str, &'static str)],
    docs: Docs,
) -> Case {
    Case {
        id,
        kind,
        object,
        old: None,
        fails,
        docs,
    }
}

fn cases() -> Vec<Case> {
    let a = approval;
    use Docs::*;
    use Kind::*;
    vec![
        ap(
            "digest-no-algorithm",
            "/spec/model/digest",
            json!(&DIGEST["sha256:".len()..]),
            &[DIGEST_FORMAT],
            Row,
        ),
        case(
            "digest-short-sha256",
            ModelApproval,
            // 36 hex digits: enough for the format rule, short for sha256.
            with(a(), "/spec/model/digest", json!(&DIGEST[..43])),
            &[SHA256_LENGTH],
            Row,
        ),
        ap(
            "digest-upper-case",
            "/spec/model/digest",
            json!(DIGEST.to_uppercase()),
            &[DIGEST_FORMAT],
            Row,
        ),
        // Not hex and too short for sha256: the API server gives both messages.
        ap(
            "digest-not-hex",
            "/spec/model/digest",
            json!("sha256:latest"),
            &[DIGEST_FORMAT, SHA256_LENGTH],
            Row,
        ),
        case(
            "digest-short-sha512",
            ModelApproval,
            // A sha512 digest of 64 hex digits: half its length.
            with(
                a(),
                "/spec/model/digest",
                json!(format!("sha512:{}", "ab".repeat(32))),
            ),
            &[("spec.model.digest", "a sha512 digest")],
            NoRow,
        ),
        ap(
            "name-bad-characters",
            "/spec/model/name",
            json!("Fraud Detector"),
            &[("spec.model.name", "model name must be")],
            Row,
        ),
        ap(
            "name-empty",
            "/spec/model/name",
            json!(""),
            &[("spec.model.name", "model name must be")],
            RowFieldFromSchema,
        ),
        ap(
            "version-bad-characters",
            "/spec/model/version",
            json!("2.4 beta"),
            &[("spec.model.version", "model version must be")],
            Row,
        ),
        ap(
            "uri-no-scheme",
            "/spec/model/uri",
            json!("models/fraud-detector"),
            &[("spec.model.uri", "uri must be a URI")],
            Row,
        ),
        case(
            "evidence-uri-no-scheme",
            ModelApproval,
            with(a(), "/spec/evidence/0/uri", json!("reports/fairness.html")),
            &[("spec.evidence[*].uri", "evidence uri must be")],
            NoRow,
        ),
        ap(
            "validfor-days",
            "/spec/validFor",
            json!("90d"),
            &[VALID_FOR],
            Row,
        ),
        ap(
            "validfor-zero",
            "/spec/validFor",
            json!("0s"),
            &[VALID_FOR],
            Row,
        ),
        ap(
            "validfor-negative",
            "/spec/validFor",
            json!("-5h"),
            &[VALID_FOR],
            Row,
        ),
        ap(
            "validfor-out-of-order",
            "/spec/validFor",
            json!("1s1m"),
            &[VALID_FOR],
            Row,
        ),
        ap(
            "validfor-hours-after-minutes",
            "/spec/validFor",
            json!("1m2159h"),
            &[VALID_FOR],
            Row,
        ),
        ap(
            "validfor-fraction",
            "/spec/validFor",
            json!("1.5h"),
            &[VALID_FOR],
            Row,
        ),
        ap(
            "validfor-empty",
            "/spec/validFor",
            json!(""),
            &[VALID_FOR],
            Row,
        ),
        ap(
            "uri-oci-registry-not-named",
            "/spec/model/uri",
            json!("oci://models/fraud-detector"),
            &[OCI_URI],
            NoRow,
        ),
        ap(
            "uri-oci-digest-in-uri",
            "/spec/model/uri",
            json!(format!("oci://registry.example.com/models/fraud@{DIGEST}")),
            &[OCI_URI],
            NoRow,
        ),
        case(
            "uri-oci-sha512",
            ModelApproval,
            with(
                with(
                    a(),
                    "/spec/model/uri",
                    json!("oci://registry.example.com/models/fraud"),
                ),
                "/spec/model/digest",
                json!(format!("sha512:{}", "ab".repeat(64))),
            ),
            &[OCI_URI],
            NoRow,
        ),
        ap(
            "pinned-deadline-days",
            "/status/policy/gates/0/deadline/reviewWithin",
            json!("3d"),
            &[(
                "status.policy.gates[*].deadline.reviewWithin",
                "reviewWithin must be a positive duration",
            )],
            NoRow,
        ),
        ap(
            "pinned-expiry-days",
            "/status/policy/gates/0/deadline/expireAfter",
            json!("30d"),
            &[(
                "status.policy.gates[*].deadline.expireAfter",
                "expireAfter must be a positive duration",
            )],
            NoRow,
        ),
        case(
            "policy-deadline-days",
            ApprovalPolicy,
            with(policy(), "/spec/gates/0/deadline/reviewWithin", json!("3d")),
            &[(
                "spec.gates[*].deadline.reviewWithin",
                "reviewWithin must be a positive duration",
            )],
            NoRow,
        ),
        case(
            "policy-expiry-fraction",
            ApprovalPolicy,
            with(
                policy(),
                "/spec/gates/0/deadline/expireAfter",
                json!("1.5h"),
            ),
            &[(
                "spec.gates[*].deadline.expireAfter",
                "expireAfter must be a positive duration",
            )],
            NoRow,
        ),
        case(
            "policy-break-glass-no-requester",
            ApprovalPolicy,
            with(
                policy(),
                "/spec/breakGlass/requesters",
                json!({"users": []}),
            ),
            &[(
                "spec.breakGlass.requesters",
                "name at least one user or group",
            )],
            NoRow,
        ),
        case(
            "policy-break-glass-no-approver",
            ApprovalPolicy,
            with(policy(), "/spec/breakGlass/approvers", json!({})),
            &[(
                "spec.breakGlass.approvers",
                "name at least one user or group",
            )],
            NoRow,
        ),
        case(
            "policy-break-glass-days",
            ApprovalPolicy,
            with(policy(), "/spec/breakGlass/maxDuration", json!("1d")),
            &[(
                "spec.breakGlass.maxDuration",
                "maxDuration must be a positive duration",
            )],
            NoRow,
        ),
        ap(
            "pinned-break-glass-no-requester",
            "/status/policy/breakGlass/requesters",
            json!({"groups": []}),
            &[(
                "status.policy.breakGlass.requesters",
                "name at least one user or group",
            )],
            NoRow,
        ),
        ap(
            "pinned-break-glass-no-approver",
            "/status/policy/breakGlass/approvers",
            json!({}),
            &[(
                "status.policy.breakGlass.approvers",
                "name at least one user or group",
            )],
            NoRow,
        ),
        ap(
            "pinned-break-glass-days",
            "/status/policy/breakGlass/maxDuration",
            json!("1d"),
            &[(
                "status.policy.breakGlass.maxDuration",
                "maxDuration must be a positive duration",
            )],
            NoRow,
        ),
        case(
            "import-not-oci",
            ModelApproval,
            with(
                imported(),
                "/spec/model/uri",
                json!("s3://models/fraud-detector/2.4.0/"),
            ),
            &[(
                "spec",
                "an imported approval is read from the model's registry",
            )],
            NoRow,
        ),
        case(
            "policy-local-gate-twice",
            ApprovalPolicy,
            with(
                policy(),
                "/spec/localGates",
                json!(["BusinessReview", "BusinessReview"]),
            ),
            &[("spec.localGates", "each gate may be named once")],
            NoRow,
        ),
        case(
            "publisher-key-not-pem",
            TrustedPublisher,
            with(publisher(), "/spec/publicKeys", json!(["ssh-ed25519 AAAA"])),
            &[("spec.publicKeys", "each public key must be a PEM block")],
            NoRow,
        ),
        case(
            "publisher-repository-with-scheme",
            TrustedPublisher,
            with(
                publisher(),
                "/spec/repositories",
                json!(["oci://registry.example.com/models/"]),
            ),
            &[("spec.repositories", "a repository is REGISTRY/REPOSITORY")],
            NoRow,
        ),
        case(
            "break-glass-duration-days",
            BreakGlass,
            with(break_glass(), "/spec/duration", json!("1d")),
            &[("spec.duration", "duration must be a positive duration")],
            NoRow,
        ),
        case(
            "break-glass-gate-twice",
            BreakGlass,
            with(
                break_glass(),
                "/spec/skips",
                json!(["LegalReview", "LegalReview"]),
            ),
            &[("spec.skips", "each gate may be named once")],
            NoRow,
        ),
        Case {
            old: Some(break_glass()),
            ..case(
                "break-glass-spec-edit",
                BreakGlass,
                with(break_glass(), "/spec/duration", json!("8h")),
                &[(
                    "spec",
                    "spec is immutable: a break-glass is a record of one request",
                )],
                NoRow,
            )
        },
        case(
            "policy-validfor-out-of-order",
            ApprovalPolicy,
            with(policy(), "/spec/validFor", json!("1m2159h")),
            &[("spec.validFor", "validFor must be a positive duration")],
            NoRow,
        ),
        Case {
            old: Some(a()),
            ..case(
                "spec-edit-digest",
                ModelApproval,
                with(
                    a(),
                    "/spec/model/digest",
                    json!(format!("sha256:{}", "1".repeat(64))),
                ),
                &[IMMUTABLE],
                Row,
            )
        },
        Case {
            old: Some(a()),
            ..ap(
                "spec-edit-validFor",
                "/spec/validFor",
                json!("87600h"),
                &[IMMUTABLE],
                Row,
            )
        },
        Case {
            old: Some(record()),
            ..case(
                "record-changed",
                ApprovalRecord,
                with(record(), "/spec/phase", json!("Rejected")),
                &[("spec", "an ApprovalRecord never changes")],
                NoRow,
            )
        },
        case(
            "policy-validfor-days",
            ApprovalPolicy,
            with(policy(), "/spec/validFor", json!("90d")),
            &[("spec.validFor", "validFor must be a positive duration")],
            NoRow,
        ),
        case(
            "policy-rule-decides-a-quorum",
            ApprovalPolicy,
            with(
                policy(),
                "/spec/gates/1",
                json!({"gate": "TechnicalReview", "reviewers": 2, "automatic": {"rule": "m.auc >= 0.92", "measuredBy": ["ci"], "mode": "Decide"}}),
            ),
            &[("spec.gates[*]", "a gate the rule decides")],
            NoRow,
        ),
        case(
            "measurement-bad-name",
            ModelApproval,
            with(a(), "/status/measurements/0/name", json!("AUC score")),
            &[("status.measurements[*].name", "a measurement name is")],
            NoRow,
        ),
        case(
            "approvalref-bad-name",
            ModelDeployment,
            with(
                deployment(),
                "/spec/approvalRef/name",
                json!("Fraud_Detector"),
            ),
            &[("spec.approvalRef.name", "approvalRef.name must be")],
            Row,
        ),
    ]
}

/// The rows of the table in docs/validation.md, by case id, as (field, words).
fn docs_rows() -> BTreeMap<String, (String, String)> {
    let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")).join("docs/validation.md");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let plain = |cell: &str| cell.trim().replace('`', "");
    text.lines()
        .filter(|line| line.starts_with("| `"))
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').collect();
            // | id | manifest | field | words |: the field and words are last.
            let n = cells.len();
            (n >= 6).then(|| (plain(cells[1]), (plain(cells[n - 3]), plain(cells[n - 2]))))
        })
        .collect()
}

#[test]
fn every_rule_compiles_and_the_valid_manifests_pass_it() {
    let validator = Validator::new();
    let schemas = schemas();
    let rules = all_rules();
    for (what, kind, object) in valid_objects() {
        // A rule only runs where its field is set: make sure each one ran,
        // so a rule the library cannot parse or evaluate shows up here too.
        for rule in rules
            .iter()
            .filter(|r| r.kind == kind && !is_api_server_only(r))
        {
            assert!(
                !values_at(&object, &rule.path).is_empty(),
                "{what} does not set {}, so the rule {rule} never runs on it",
                rule.path
            );
        }
        let refused = evaluate(&validator, &schemas, &rules, kind, &object, None);
        assert!(refused.is_empty(), "{what} refused on create: {refused:#?}");

        // Transition rules (`oldSelf`) run only on updates; labels may change.
        let mut relabelled = object.clone();
        relabelled["metadata"]["labels"] = json!({"team": "risk"});
        let refused = evaluate(
            &validator,
            &schemas,
            &rules,
            kind,
            &relabelled,
            Some(&object),
        );
        assert!(refused.is_empty(), "{what} refused on update: {refused:#?}");
    }
}

#[test]
fn each_bad_manifest_fails_exactly_its_rule_with_the_documented_message() {
    let validator = Validator::new();
    let schemas = schemas();
    let rules = all_rules();
    let rows = docs_rows();
    let mut problems = Vec::new();
    for case in cases() {
        let id = case.id;
        let expected: BTreeSet<&RuleAt> = case
            .fails
            .iter()
            .map(|(path, start)| {
                let named: Vec<&RuleAt> = rules
                    .iter()
                    .filter(|r| {
                        r.kind == case.kind
                            && r.path == *path
                            && r.message.as_deref().is_some_and(|m| m.starts_with(start))
                    })
                    .collect();
                assert!(
                    named.len() == 1,
                    "{id}: ({path}, {start:?}) names {} rules, not one",
                    named.len()
                );
                named[0]
            })
            .collect();
        let refused = evaluate_case(&validator, &schemas, &rules, &case);
        let mut failed = BTreeSet::new();
        for error in &refused {
            // An error other than a plain `false` (an unknown function, a
            // type error) means the rule was not really evaluated.
            if error.kind != ErrorKind::ValidationFailure {
                problems.push(format!(
                    "{id}: {:?} `{}` could not be evaluated here ({:?}: {}); if the library lacks \
                     what it uses, list it in API_SERVER_ONLY with the reason",
                    case.kind, error.rule, error.kind, error.message
                ));
                continue;
            }
            let Some(rule) = rule_of(&rules, case.kind, error) else {
                problems.push(format!(
                    "{id}: a refusal from no rule found in the CRD: {error}"
                ));
                continue;
            };
            // With a static message that is what the user reads; a
            // messageExpression result is checked against the docs below.
            if rule.message_expression.is_none() {
                let static_message = rule
                    .message
                    .clone()
                    .unwrap_or_else(|| format!("failed rule: {}", rule.rule));
                if error.message != static_message {
                    problems.push(format!(
                        "{id}: {rule} said {:?}, not its message {static_message:?}",
                        error.message
                    ));
                }
            }
            failed.insert(rule);
        }
        if failed != expected {
            let names = |set: &BTreeSet<&RuleAt>| {
                set.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            problems.push(format!(
                "{id}: failed [{}], expected [{}]",
                names(&failed),
                names(&expected)
            ));
        }

        let row = rows.get(id);
        match (case.docs, row) {
            (Docs::NoRow, Some(_)) => problems.push(format!(
                "{id}: docs/validation.md has a row for it now; mark the case Docs::Row"
            )),
            (Docs::NoRow, None) => {}
            (_, None) => problems.push(format!("{id}: no row in docs/validation.md")),
            (docs, Some((field, words))) => {
                for error in &refused {
                    if error.field_path != *field {
                        problems.push(format!(
                            "{id}: refused at {}, docs/validation.md says {field}",
                            error.field_path
                        ));
                    }
                }
                if docs == Docs::Row {
                    for part in words.split('…').map(str::trim).filter(|p| !p.is_empty()) {
                        if !refused.iter().any(|e| e.message.contains(part)) {
                            problems.push(format!(
                                "{id}: docs/validation.md promises {part:?}, the refusal says {:?}",
                                refused.iter().map(|e| &e.message).collect::<Vec<_>>()
                            ));
                        }
                    }
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_rule_in_the_crds_has_a_case() {
    let validator = Validator::new();
    let schemas = schemas();
    let rules = all_rules();
    for (kind, path, text, why) in API_SERVER_ONLY {
        assert!(
            rules
                .iter()
                .any(|r| r.kind == *kind && r.path == *path && r.rule == *text),
            "API_SERVER_ONLY names {kind:?} {path} `{text}` ({why}), which the CRDs no longer have"
        );
    }
    let cases = cases();
    let mut covered = BTreeSet::new();
    for case in &cases {
        for error in evaluate_case(&validator, &schemas, &rules, case) {
            if error.kind == ErrorKind::ValidationFailure
                && let Some(rule) = rule_of(&rules, case.kind, &error)
            {
                covered.insert(rule);
            }
        }
    }
    let lacking: Vec<String> = rules
        .iter()
        .filter(|r| !covered.contains(r) && !is_api_server_only(r))
        .map(|r| {
            format!(
                "{r} has no case in tests/crd_rules.rs: add a manifest that fails it to cases() \
                 (or, if it cannot be evaluated without a cluster, list it in API_SERVER_ONLY \
                 with the reason)"
            )
        })
        .collect();
    assert!(lacking.is_empty(), "{}", lacking.join("\n"));
    // The same in numbers, as the closing line prints them.
    assert_eq!(
        covered.len() + API_SERVER_ONLY.len(),
        rules.len(),
        "every rule is either failed by a case or checked only against the API server"
    );
    println!(
        "{} CEL rules in the CRDs: {} failed by {} cases here, {} checked only against the API server",
        rules.len(),
        covered.len(),
        cases.len(),
        API_SERVER_ONLY.len()
    );
}

/// The status fields of `kind` in its committed CRD.
fn status_fields(kind: Kind) -> Vec<String> {
    let schema = schema(kind);
    schema["properties"]["status"]["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("{kind:?} has no status properties"))
        .keys()
        .cloned()
        .collect()
}

/// Every field of a status that people do not write is the operator's, and
/// the chart's admission policies say so field by field: a field added to
/// the Rust types without its line there would be anyone's to write.
#[test]
fn the_admission_policies_keep_every_operator_status_field_the_operators() {
    let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .join("charts/modelgate/templates/admission.yaml");
    let admission = std::fs::read_to_string(&path).expect("admission.yaml");
    let people = ["conditions", "reviews", "measurements"];
    for field in status_fields(Kind::ModelApproval) {
        let guard = format!("object.?status.?{field} != oldObject.?status.?{field}");
        assert!(
            people.contains(&field.as_str()) || admission.contains(&guard),
            "modelgate-approval-authority does not keep status.{field} the operator's: add `{guard}` to operatorFieldsChanged"
        );
    }
    for field in status_fields(Kind::BreakGlass) {
        assert!(
            field == "approvals" || admission.contains(&format!("'{field}'")),
            "modelgate-break-glass does not keep status.{field} the operator's: add it to operatorFields"
        );
    }
}
