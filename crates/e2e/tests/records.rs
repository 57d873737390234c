//! Signed ApprovalRecords on the real control plane: one per phase change,
//! exported and verified offline by the built plugin (tampering named by
//! line), rendered for an auditor and opened in headless Chromium, kept
//! after the approval is deleted, and written by nobody but the operator.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use modelgate::api::{
    approval::{ApprovalPhase, ModelApproval},
    record::{ApprovalRecord, Envelope, RecordCheckpoint},
};
use modelgate::records::checkpoint::Checkpoint;
use modelgate::records::envelope::Signer;
use modelgate_e2e::refusal::refused;
use modelgate_e2e::{cluster::*, fixtures::*, operator::*, plugin::*, users::*, wait::*};

/// A refusal to touch the records says what is protected, as the API
/// server's Forbidden or Invalid.
const RECORDS: &[&str] = &["ApprovalRecord", "approvalrecords"];
const FORBIDDEN_OR_INVALID: &[u16] = &[403, 422];

/// The records of approval `name` in `ns`, oldest first, once there are `n`.
async fn records_of(client: &kube::Client, ns: &str, name: &str, n: usize) -> Vec<ApprovalRecord> {
    let api: Api<ApprovalRecord> = Api::namespaced(client.clone(), ns);
    eventually(60, &format!("{n} records of {name}"), || async {
        let mut records: Vec<ApprovalRecord> = api
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .into_iter()
            .filter(|r| r.spec.approval.name == name)
            .collect();
        records.sort_by_key(|r| r.spec.seq);
        (records.len() >= n).then_some(records)
    })
    .await
}

async fn wait_phase(api: &Api<ModelApproval>, name: &str, want: ApprovalPhase) {
    eventually(60, &format!("{name} to be {want}"), || async {
        let a = api.get(name).await.ok()?;
        (a.status?.phase? == want).then_some(())
    })
    .await;
}

fn scratch(label: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("records-{label}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// `audit verify` of `bundle` with `keys`: (exit code, stdout + stderr).
fn verify(ns: &str, bundle: &Path, keys: &Path) -> (Option<i32>, String) {
    let out = audit(ns, "verify", bundle, ("--keys", keys));
    (
        out.status.code(),
        format!("{}{}", stdout(&out), stderr(&out)),
    )
}

/// A copy of `bundle` with line `at`'s statement edited, its old signature
/// kept unless `resign` gives a key.
fn tampered(
    bundle: &Path,
    name: &str,
    at: usize,
    resign: Option<&Signer>,
    edit: impl FnOnce(&mut serde_json::Value),
) -> PathBuf {
    let mut lines: Vec<String> = std::fs::read_to_string(bundle)
        .expect("bundle")
        .lines()
        .map(String::from)
        .collect();
    let mut envelope: Envelope = serde_json::from_str(&lines[at]).expect("envelope");
    let mut statement: serde_json::Value =
        serde_json::from_slice(&STANDARD.decode(&envelope.payload).expect("base64"))
            .expect("statement");
    edit(&mut statement);
    let payload = serde_json::to_vec(&statement).expect("json");
    envelope = match resign {
        Some(key) => key.seal(&payload),
        None => Envelope {
            payload: STANDARD.encode(&payload),
            ..envelope
        },
    };
    lines[at] = serde_json::to_string(&envelope).expect("json");
    write_lines(bundle, name, &lines)
}

fn write_lines(bundle: &Path, name: &str, lines: &[String]) -> PathBuf {
    let path = bundle.with_file_name(name);
    std::fs::write(&path, lines.join("\n") + "\n").expect("write");
    path
}

/// The operator's own key, read from its Secret as the cluster admin can:
/// a forger with the key must still be caught by the hash chain.
async fn operator_key(client: &kube::Client) -> Signer {
    let secrets: Api<Secret> =
        Api::namespaced(client.clone(), modelgate::vocabulary::DEFAULT_NAMESPACE);
    let secret = secrets
        .get("modelgate-signing-key")
        .await
        .expect("signing key");
    let pem = secret
        .data
        .and_then(|d| d.get("signing-key.pem").cloned())
        .expect("signing-key.pem");
    Signer::from_pem(&String::from_utf8_lossy(&pem.0)).expect("pem")
}

#[tokio::test(flavor = "multi_thread")]
async fn phase_changes_are_signed_exported_and_tampering_is_named() {
    start_operator();
    let client = install_modelgate().await;
    let ns = TestNamespace::new(&client, "records").await;
    let n = ns.name.as_str();
    let approvals: Api<ModelApproval> = Api::namespaced(client.clone(), n);
    model_approval("fd-v1")
        .version("1.0.0")
        .valid_for("2160h")
        .create(&approvals)
        .await;
    approve_all(n, "fd-v1").await;
    wait_phase(&approvals, "fd-v1", ApprovalPhase::Approved).await;
    set_gate(
        n,
        "fd-v1",
        "SecurityReview",
        "False",
        "securityreview@example.com",
    )
    .await
    .expect("fail security");
    wait_phase(&approvals, "fd-v1", ApprovalPhase::Rejected).await;
    let records = records_of(&client, n, "fd-v1", 2).await;
    assert_eq!(
        records
            .iter()
            .map(|r| r.spec.phase.as_str())
            .collect::<Vec<_>>(),
        ["Approved", "Rejected"],
        "one record per phase change, none for the first Pending"
    );

    // kubectl answers at a glance.
    let out = kubectl(&["get", "approvalrecords", "-n", n]);
    let table = text(&out);
    assert!(out.status.success(), "{table}");
    for want in [
        "APPROVAL",
        "PHASE",
        "MODEL",
        "VERSION",
        "SEQ",
        "fd-v1",
        "Approved",
        "Rejected",
        "fraud-detector",
    ] {
        assert!(table.contains(want), "no {want} in:\n{table}");
    }

    // An auditor exports; verification needs no cluster.
    let dir = scratch("export");
    let bundle = dir.join("audit.jsonl");
    let auditor = ("auditor@example.com", &[][..]);
    let bound = kubectl(&[
        "create",
        "rolebinding",
        "auditor-view",
        "--clusterrole=view",
        "--user=auditor@example.com",
        "-n",
        n,
    ]);
    assert!(bound.status.success(), "{}", text(&bound));
    let out = run_plugin(
        n,
        Some(auditor),
        &["audit", "export", "-o", &bundle.to_string_lossy()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("exported 2 records of 1 approvals"),
        "{}",
        stdout(&out)
    );
    let keys = dir.join("audit.pub.pem");
    let (code, said) = verify(n, &bundle, &keys);
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("verified 2 records of 1 approvals"), "{said}");

    // Each kind of tampering fails, naming the line and the reason.
    let forger = operator_key(&client).await;
    let other = dir.join("other.pub.pem");
    std::fs::write(
        &other,
        Signer::generate().expect("key").public_pem().expect("pem"),
    )
    .expect("key");
    let lines: Vec<String> = std::fs::read_to_string(&bundle)
        .expect("bundle")
        .lines()
        .map(String::from)
        .collect();
    let mut swapped_signature: Vec<Envelope> = lines
        .iter()
        .map(|l| serde_json::from_str(l).expect("envelope"))
        .collect();
    swapped_signature[1].signatures = swapped_signature[0].signatures.clone();
    let cases: Vec<(&str, PathBuf, &Path, Vec<&str>)> = vec![
        (
            "a changed reviewer",
            tampered(&bundle, "reviewer.jsonl", 0, None, |s| {
                s["predicate"]["history"][0]["reviewer"] = "mallory@example.com".into();
            }),
            &keys,
            vec![
                "line 1: the signature does not verify",
                "line 1: history entry seq 1 does not match its hash",
            ],
        ),
        (
            "a changed reviewer, re-signed with the operator's key",
            tampered(&bundle, "forged.jsonl", 1, Some(&forger), |s| {
                s["predicate"]["history"][2]["reviewer"] = "mallory@example.com".into();
            }),
            &keys,
            vec!["line 2: history entry seq 3 does not match its hash"],
        ),
        (
            "a removed entry",
            tampered(&bundle, "removed.jsonl", 1, None, |s| {
                if let Some(h) = s["predicate"]["history"].as_array_mut() {
                    h.remove(1);
                }
            }),
            &keys,
            vec!["line 2: history entry seq 1 is followed by seq 3: an entry was removed"],
        ),
        (
            "reordered entries",
            tampered(&bundle, "reordered.jsonl", 0, None, |s| {
                if let Some(h) = s["predicate"]["history"].as_array_mut() {
                    h.swap(0, 1);
                }
            }),
            &keys,
            vec!["line 1: history entry seq 2 is followed by seq 1: entries were reordered"],
        ),
        (
            "a swapped signature",
            write_lines(
                &bundle,
                "swapped.jsonl",
                &swapped_signature
                    .iter()
                    .map(|e| serde_json::to_string(e).expect("json"))
                    .collect::<Vec<_>>(),
            ),
            &keys,
            vec!["line 2: the signature does not verify"],
        ),
        (
            "the wrong key",
            bundle.clone(),
            &other,
            vec![
                "line 1: signed with key",
                "which is not among the public keys given",
            ],
        ),
        (
            "a removed record",
            write_lines(&bundle, "dropped.jsonl", &lines[1..]),
            &keys,
            vec!["line 1: the record of", "is missing: a record was removed"],
        ),
    ];
    for (what, path, key, wants) in &cases {
        let (code, said) = verify(n, path, key);
        assert_eq!(code, Some(5), "{what}: {said}");
        for want in wants {
            assert!(said.contains(want), "{what}: no {want:?} in:\n{said}");
        }
        eprintln!("refused as expected: {what}");
    }

    // The auditor's page, opened in a real browser.
    let page = dir.join("audit.html");
    let out = audit(n, "report", &bundle, ("-o", &page));
    assert!(out.status.success(), "{}", stderr(&out));
    let dom = chromium(&["--dump-dom"], &page);
    for want in [
        "Every record verified",
        &format!("{n}/fd-v1"),
        "fraud-detector 1.0.0",
        "technicalreview@example.com",
        "SecurityReview: True → False",
        "signed record, line 2",
    ] {
        assert!(dom.contains(want), "the page shows no {want:?}");
    }
    let shot = dir.join("audit-report.png");
    chromium(
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1100,1500",
        ],
        &page,
    );
    let png = std::fs::read(&shot).expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    keep_screenshot(&shot, "audit-report.png");
}

/// Headless Chromium on `page` with `args`; its stdout.
fn chromium(args: &[&str], page: &Path) -> String {
    let out = Command::new(chromium_binary())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
        ])
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn chromium_binary() -> String {
    ["chromium", "chromium-browser"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .unwrap_or_else(|| {
            panic!("no chromium on PATH: hack/test.sh installs it (hack/browser.sh)")
        })
        .to_string()
}

/// With MODELGATE_SCREENSHOTS=1 a test's screenshot replaces the one in docs/.
fn keep_screenshot(shot: &Path, name: &str) {
    if std::env::var_os("MODELGATE_SCREENSHOTS").is_some() {
        let docs = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
            .join("docs/images")
            .join(name);
        std::fs::copy(shot, docs).expect("copy the screenshot into docs/images");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn records_outlive_their_approval_and_only_the_operator_writes_them() {
    start_operator();
    let client = install_modelgate().await;
    let ns = TestNamespace::new(&client, "records-kept").await;
    let n = ns.name.as_str();
    let approvals: Api<ModelApproval> = Api::namespaced(client.clone(), n);
    model_approval("fd-v2")
        .version("2.0.0")
        .create(&approvals)
        .await;
    approve_all(n, "fd-v2").await;
    let record = records_of(&client, n, "fd-v2", 1).await.remove(0);
    let name = record.metadata.name.clone().expect("name");

    // Deleting the approval keeps its record.
    approvals
        .delete("fd-v2", &DeleteParams::default())
        .await
        .expect("delete approval");
    gone(&approvals, "fd-v2", 60).await;
    let records: Api<ApprovalRecord> = Api::namespaced(client.clone(), n);
    let kept = records
        .get(&name)
        .await
        .expect("the record outlives the approval");
    assert_eq!(kept.spec, record.spec);

    // Nobody else writes a record: a developer with `edit`, a reviewer, and
    // the cluster admin each try to create, change and delete one.
    let bound = kubectl(&[
        "create",
        "rolebinding",
        "dev-edit",
        "--clusterrole=edit",
        "--user=dev@example.com",
        "-n",
        n,
    ]);
    assert!(bound.status.success(), "{}", text(&bound));
    let people = [
        (
            "a developer with edit",
            person("dev@example.com", &[]).await,
        ),
        (
            "a security reviewer",
            person("sec@example.com", &["modelgate:security-reviewers"]).await,
        ),
        (
            "the cluster admin",
            client_as(Some("root@example.com"), &["system:masters"]).await,
        ),
    ];
    for (who, as_them) in &people {
        let api: Api<ApprovalRecord> = Api::namespaced(as_them.clone(), n);
        let mut forged = record.clone();
        forged.metadata = kube::api::ObjectMeta {
            name: Some(format!("{name}-forged")),
            ..Default::default()
        };
        forged.spec.phase = "Approved".into();
        let created = api.create(&PostParams::default(), &forged).await;
        refused(&format!("{who} may not create a record"), created, &[])
            .with_code(FORBIDDEN_OR_INVALID)
            .says_one_of(RECORDS);
        let patch = serde_json::json!({"spec": {"phase": "Approved"}, "metadata": {"labels": {"tampered": "yes"}}});
        let changed = api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await;
        refused(&format!("{who} may not change a record"), changed, &[])
            .with_code(FORBIDDEN_OR_INVALID)
            .says_one_of(RECORDS);
        let deleted = api.delete(&name, &DeleteParams::default()).await;
        refused(&format!("{who} may not delete a record"), deleted, &[])
            .with_code(FORBIDDEN_OR_INVALID)
            .says_one_of(RECORDS);
    }
    let after = records.get(&name).await.expect("the record is still there");
    assert_eq!(
        after.metadata.resource_version, kept.metadata.resource_version,
        "nothing changed"
    );
    assert!(
        records
            .get_opt(&format!("{name}-forged"))
            .await
            .expect("get")
            .is_none()
    );
}

/// The seq of approval `uid`'s newest record that the namespace's
/// checkpoint names, once it names one.
async fn checkpointed(client: &kube::Client, ns: &str, uid: &str, seq: i64) -> RecordCheckpoint {
    let api: Api<RecordCheckpoint> = Api::namespaced(client.clone(), ns);
    eventually(60, &format!("the checkpoint to name seq {seq}"), || async {
        let cp = api.get_opt("approval-records").await.ok()??;
        let named = Checkpoint::read_unverified(&cp.spec.envelope)?;
        (named.head(uid)?.seq >= seq).then_some(cp)
    })
    .await
}

/// A cluster admin removes an approval's newest record, through the one
/// identity the records policy lets delete (the namespace controller, by
/// impersonation); the signed checkpoint, which the admin can neither
/// rewrite nor delete as themselves, makes `audit verify` of the export
/// name what is missing.
#[tokio::test(flavor = "multi_thread")]
async fn a_removed_newest_record_is_named_by_the_checkpoint() {
    start_operator();
    let client = install_modelgate().await;
    let ns = TestNamespace::new(&client, "records-cut").await;
    let n = ns.name.as_str();
    let approvals: Api<ModelApproval> = Api::namespaced(client.clone(), n);
    model_approval("fd-v3")
        .version("3.0.0")
        .create(&approvals)
        .await;
    approve_all(n, "fd-v3").await;
    wait_phase(&approvals, "fd-v3", ApprovalPhase::Approved).await;
    set_gate(
        n,
        "fd-v3",
        "SecurityReview",
        "False",
        "securityreview@example.com",
    )
    .await
    .expect("fail security");
    wait_phase(&approvals, "fd-v3", ApprovalPhase::Rejected).await;
    let records = records_of(&client, n, "fd-v3", 2).await;
    let (kept, newest) = (records[0].spec.seq, records[1].spec.seq);
    let uid = records[1].spec.approval.uid.clone();
    let checkpoint = checkpointed(&client, n, &uid, newest).await;
    let out = kubectl(&["get", "recordcheckpoints", "-n", n]);
    assert!(
        text(&out).contains("approval-records"),
        "kubectl lists it: {}",
        text(&out)
    );

    // The admin may neither rewrite nor delete the checkpoint as themselves.
    let admin = client_as(Some("root@example.com"), &["system:masters"]).await;
    let as_admin: Api<RecordCheckpoint> = Api::namespaced(admin, n);
    let patch = serde_json::json!({"spec": {"approvals": 0}});
    let rewritten = as_admin
        .patch(
            "approval-records",
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await;
    refused(
        "the cluster admin may not rewrite the checkpoint",
        rewritten,
        &[],
    )
    .with_code(FORBIDDEN_OR_INVALID)
    .says_one_of(RECORDS);
    let deleted = as_admin
        .delete("approval-records", &DeleteParams::default())
        .await;
    refused(
        "the cluster admin may not delete the checkpoint",
        deleted,
        &[],
    )
    .with_code(FORBIDDEN_OR_INVALID)
    .says_one_of(RECORDS);
    let after: Api<RecordCheckpoint> = Api::namespaced(client.clone(), n);
    assert_eq!(
        after
            .get("approval-records")
            .await
            .expect("checkpoint")
            .spec,
        checkpoint.spec,
        "the checkpoint is unchanged"
    );

    // As the namespace controller, the newest record goes.
    let controller = client_as(
        Some("system:serviceaccount:kube-system:namespace-controller"),
        &[
            "system:serviceaccounts",
            "system:serviceaccounts:kube-system",
            "system:authenticated",
        ],
    )
    .await;
    let newest_name = records[1].metadata.name.clone().expect("name");
    Api::<ApprovalRecord>::namespaced(controller, n)
        .delete(&newest_name, &DeleteParams::default())
        .await
        .expect("the namespace controller deletes the newest record");

    let dir = scratch("cut");
    let bundle = dir.join("cut.jsonl");
    let out = run_plugin(
        n,
        None,
        &["audit", "export", "-o", &bundle.to_string_lossy()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("exported 1 records of 1 approvals and 1 signed checkpoints"),
        "{}",
        stdout(&out)
    );
    let (code, said) = verify(n, &bundle, &dir.join("cut.pub.pem"));
    assert_eq!(code, Some(5), "{said}");
    let want =
        format!("approval {n}/fd-v3: records after seq {kept} are missing; the checkpoint of ");
    assert!(said.contains(&want), "no {want:?} in:\n{said}");
    assert!(said.contains(&format!("names seq {newest}")), "{said}");
    eprintln!("verify names what is missing:\n{said}");
}
