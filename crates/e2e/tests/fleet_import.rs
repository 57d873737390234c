//! A fleet honours one signed approval through the registry. Two operators
//! stand for two clusters: each watches only its own namespace and signs
//! with its own key, and they share nothing but the API server's
//! machinery and one real registry (docs/fleet.md says so). Cluster A
//! reviews and publishes; cluster B trusts A's keys and serves the same
//! digest without a review of its own, stops when A revokes, and refuses
//! what A did not sign, what A signed for another model, and A's older
//! record put back after the revocation.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, PostParams};
use modelgate::api::approval::{ApprovalPhase, ModelApproval};
use modelgate::api::deployment::{DeploymentPhase, ModelDeployment};
use modelgate::api::fleet::{Import, TrustedPublisher, TrustedPublisherSpec};
use modelgate::api::record::ApprovalRecord;
use modelgate::fleet::referrer::{
    APPROVAL, APPROVAL_UID, ARTIFACT_TYPE, ENVELOPE_MEDIA_TYPE, PHASE, SEQ,
};
use modelgate_e2e::registry::*;
use modelgate_e2e::{cluster::*, fixtures::*, operator::*, pods::*, users::*, wait::*};
use tokio::sync::oneshot;

/// How often cluster B reads its imported approvals again.
const RESYNC: Duration = Duration::from_secs(5);

/// One "cluster": its namespace and the operator watching only it.
struct Cluster {
    ns: TestNamespace,
    _stop: oneshot::Sender<()>,
}

/// Starts an operator scoped to a new namespace, signing with a key of
/// that namespace.
async fn cluster(client: &kube::Client, prefix: &str) -> Cluster {
    let ns = TestNamespace::new(client, prefix).await;
    keep_keys_in(&ns.name);
    let (stop, stopped) = oneshot::channel::<()>();
    let options = modelgate::operator::Options {
        instance: Some(prefix.into()),
        listen: None,
        leader_election: None,
        concurrency: 0,
        records: Some(modelgate::records::key::KeyPlace::in_namespace(&ns.name)),
        registry: registry_options(),
        import_resync: RESYNC,
        scope: modelgate::runtime::Scope(Some(ns.name.clone())),
    };
    let running = modelgate::operator::start(operator_client().await, options, async move {
        let _ = stopped.await;
    })
    .await
    .expect("operator starts");
    tokio::spawn(running.done);
    Cluster { ns, _stop: stop }
}

/// Lets the operator keep its signing key in `ns`, as the chart lets it in
/// its own namespace.
fn keep_keys_in(ns: &str) {
    let role = format!(
        r#"{{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"Role","metadata":{{"name":"keys","namespace":"{ns}"}},
        "rules":[{{"apiGroups":[""],"resources":["secrets","configmaps"],"verbs":["get","create","patch"]}}]}}"#
    );
    let binding = format!(
        r#"{{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"RoleBinding","metadata":{{"name":"keys","namespace":"{ns}"}},
        "roleRef":{{"apiGroup":"rbac.authorization.k8s.io","kind":"Role","name":"keys"}},
        "subjects":[{{"apiGroup":"rbac.authorization.k8s.io","kind":"User","name":"{OPERATOR_USER}"}}]}}"#
    );
    for manifest in [role, binding] {
        let out = kubectl_stdin(&["apply", "-f", "-"], Some(&manifest));
        assert!(out.status.success(), "grant keys: {}", text(&out));
    }
}

/// The PEM public keys cluster `ns` publishes.
async fn public_keys_of(client: &kube::Client, ns: &str) -> Vec<String> {
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let map = eventually(30, "the published keys", || async {
        maps.get("modelgate-public-keys").await.ok()
    })
    .await;
    vec![modelgate::records::key::public_keys_pem(&map)]
}

async fn phase_of(api: &Api<ModelApproval>, name: &str, want: ApprovalPhase, secs: u64) {
    eventually(secs, &format!("{name} {want}"), || async {
        let a = api.get(name).await.ok()?;
        (a.status?.phase? == want).then_some(())
    })
    .await;
}

/// The envelope of the signed record of `approval`'s change to `phase`.
async fn envelope_of(client: &kube::Client, ns: &str, approval: &str, phase: &str) -> String {
    let records: Api<ApprovalRecord> = Api::namespaced(client.clone(), ns);
    let record = eventually(30, "the signed record", || async {
        let list = records.list(&Default::default()).await.ok()?;
        list.items
            .into_iter()
            .find(|r| r.spec.approval.name == approval && r.spec.phase == phase)
    })
    .await;
    serde_json::to_string(&record.spec.envelope).expect("envelope")
}

/// Attaches `envelope` to `model` as a record of `approval`, as anyone with
/// push rights to the repository could.
fn attach_record(model: &Pushed, envelope: &str, approval: &str, seq: &str) -> String {
    attach(
        model,
        ARTIFACT_TYPE,
        &ModelFile::new("record.json", ENVELOPE_MEDIA_TYPE, envelope.as_bytes()),
        &[(APPROVAL, approval), (SEQ, seq), (PHASE, "Approved")],
    )
}

/// Waits for B's approval to name a refused record whose reason has
/// `reason`.
async fn refused(api: &Api<ModelApproval>, reason: &str) {
    refused_in(api, "fd", reason).await;
}

async fn refused_in(api: &Api<ModelApproval>, name: &str, reason: &str) {
    eventually(
        30,
        &format!("a record of {name} refused: {reason}"),
        || async {
            let a = api.get(name).await.ok()?;
            let imported = a.status?.imported?;
            imported
                .refused
                .iter()
                .any(|r| r.reason.contains(reason))
                .then_some(())
        },
    )
    .await;
}

/// Registry requests on `model`'s repository during `what`, which must
/// leave the repository otherwise quiet.
async fn counted<F: std::future::Future<Output = ()>>(model: &Pushed, what: F) -> u64 {
    let path = model
        .repository
        .trim_start_matches(&format!("{}/", registry().address))
        .to_string();
    let before = registry().requests(&path).await;
    what.await;
    registry().requests(&path).await - before
}

/// Two clusters, A and B, and a model in A's repository that A's approval
/// `fd` names, waiting for its reviews.
struct Fleet {
    a: Cluster,
    b: Cluster,
    model: Pushed,
    in_a: Api<ModelApproval>,
    in_b: Api<ModelApproval>,
}

/// A fleet's parts: A, B, the model, and the approvals in A and in B.
type Parts = (
    Cluster,
    Cluster,
    Pushed,
    Api<ModelApproval>,
    Api<ModelApproval>,
);

impl Fleet {
    fn parts(self) -> Parts {
        (self.a, self.b, self.model, self.in_a, self.in_b)
    }
}

async fn fleet(client: &kube::Client, prefix: &str) -> Fleet {
    let a = cluster(client, &format!("{prefix}-a")).await;
    let b = cluster(client, &format!("{prefix}-b")).await;
    let na = a.ns.name.clone();
    let model = push_model(&format!("{na}/fraud"), Some("2.4.1"), &tiny_model("f-241"));
    let in_a: Api<ModelApproval> = Api::namespaced(client.clone(), &na);
    let in_b: Api<ModelApproval> = Api::namespaced(client.clone(), &b.ns.name);
    model_approval("fd")
        .artifact(&model.uri(), &model.digest)
        .create(&in_a)
        .await;
    phase_of(&in_a, "fd", ApprovalPhase::Pending, 30).await;
    Fleet {
        a,
        b,
        model,
        in_a,
        in_b,
    }
}

/// B trusts A's keys for A's repositories (and, with `own_namespace`, only
/// A's namespace); the publisher's name.
async fn trust_a(client: &kube::Client, na: &str, own_namespace: bool) -> String {
    let publisher = format!("cluster-a-{na}");
    let trusted: Api<TrustedPublisher> = Api::all(client.clone());
    let spec = TrustedPublisherSpec {
        description: Some("cluster A: the model review board".into()),
        public_keys: public_keys_of(client, na).await,
        repositories: vec![format!("{}/{na}/", registry().address)],
        namespaces: if own_namespace {
            vec![na.to_string()]
        } else {
            Vec::new()
        },
    };
    trusted
        .create(
            &PostParams::default(),
            &TrustedPublisher::new(&publisher, spec),
        )
        .await
        .expect("trust cluster A");
    publisher
}

#[tokio::test(flavor = "multi_thread")]
async fn cluster_b_serves_what_cluster_a_approved_stops_when_a_revokes_and_refuses_forgeries() {
    let client = install_modelgate().await;
    let (a, b, model, in_a, in_b) = fleet(&client, "fleet").await.parts();
    let (na, nb) = (a.ns.name.as_str(), b.ns.name.as_str());

    // Cluster A reviews and approves; its record is attached to the model.
    let published = counted(&model, async {
        approve_all(na, "fd").await;
        eventually(60, "A's Approved record attached", || async {
            let s = in_a.get("fd").await.ok()?.status?;
            (s.phase? == ApprovalPhase::Approved && s.publication?.seq.is_some()).then_some(())
        })
        .await;
    })
    .await;

    // Cluster B trusts A's keys for A's repositories and namespace only.
    let publisher = trust_a(&client, na, true).await;
    let trusted: Api<TrustedPublisher> = Api::all(client.clone());

    // B imports A's approval: no review of its own, and it serves.
    import_fd(&in_b, "fd", &publisher, na, &model.uri(), &model.digest).await;
    phase_of(&in_b, "fd", ApprovalPhase::Approved, 60).await;
    let status = in_b.get("fd").await.expect("b").status.expect("status");
    let mirror = status.imported.clone().expect("imported");
    assert_eq!(mirror.phase.as_deref(), Some("Approved"));
    assert_eq!(mirror.publisher, publisher);
    let legal = status
        .conditions
        .iter()
        .find(|c| c.type_ == "LegalReview")
        .expect("LegalReview");
    assert_eq!(
        legal.reviewer.as_deref(),
        Some(format!("legalreview@example.com (via {publisher})").as_str())
    );
    let mds: Api<ModelDeployment> = Api::namespaced(client.clone(), nb);
    model_deployment("fd")
        .approval("fd")
        .replicas(2)
        .on_revoke("ScaleToZero")
        .create(&mds)
        .await;
    pods_serve(&client, nb, "fd", &model.digest).await;
    let shown = text(&kubectl(&["get", "ma", "fd", "-n", nb]));
    assert!(
        shown.contains("Approved") && shown.contains("5/5"),
        "{shown}"
    );

    // A reviewer in B cannot decide a mirrored gate.
    let said = set_gate(
        nb,
        "fd",
        "SecurityReview",
        "False",
        "securityreview@example.com",
    )
    .await
    .expect_err("a mirrored gate is the publisher's");
    assert!(
        said.to_string().contains("mirrored from the signed record"),
        "{said}"
    );

    // Steady state: what one resync asks of the registry.
    let steady = counted(&model, tokio::time::sleep(RESYNC * 3)).await;

    // A revokes; B stops serving within the resync period.
    fail_gate(na, "fd", "SecurityReview").await;
    phase_of(&in_a, "fd", ApprovalPhase::Rejected, 30).await;
    let revoked_at = Instant::now();
    phase_of(
        &in_b,
        "fd",
        ApprovalPhase::Rejected,
        RESYNC.as_secs() * 2 + 20,
    )
    .await;
    let honoured = revoked_at.elapsed();
    phase(&mds, "fd", DeploymentPhase::Revoked).await;
    println!(
        "fleet: {published} registry requests to publish one record; {:.1} per steady resync; revocation honoured downstream {:.1} s after upstream (resync {} s: {:.2}x)",
        steady as f64 / 3.0,
        honoured.as_secs_f64(),
        RESYNC.as_secs(),
        honoured.as_secs_f64() / RESYNC.as_secs_f64()
    );
    assert!(
        steady <= 6,
        "a steady resync lists the records once: {steady} requests in 3"
    );

    // Forgeries, each refused with its reason, and B stays revoked.
    let approved = envelope_of(&client, na, "fd", "Approved").await;
    let stranger = modelgate::records::envelope::Signer::generate().expect("key");
    let forged = stranger.seal(&open_payload(&approved));
    attach_record(
        &model,
        &serde_json::to_string(&forged).expect("json"),
        &format!("{na}/fd"),
        "99",
    );
    refused(&in_b, "signature does not verify").await;

    let other = push_model(&format!("{na}/other"), Some("1.0.0"), &tiny_model("o-1"));
    model_approval("other")
        .artifact(&other.uri(), &other.digest)
        .create(&in_a)
        .await;
    approve_all(na, "other").await;
    let elsewhere = envelope_of(&client, na, "other", "Approved").await;
    attach_record(&model, &elsewhere, &format!("{na}/fd"), "98");
    refused(&in_b, "signed for another artifact").await;

    // The revocation removed from the registry, A's older Approved record
    // is all that verifies: a replay, refused.
    delete_revocation(&in_a, &model).await;
    refused(&in_b, "replayed").await;
    let after = in_b.get("fd").await.expect("b").status.expect("status");
    assert_eq!(after.phase, Some(ApprovalPhase::Rejected));
    phase(&mds, "fd", DeploymentPhase::Revoked).await;

    // Trust withdrawn: nothing of the publisher's is honoured.
    trusted
        .delete(&publisher, &DeleteParams::default())
        .await
        .expect("withdraw trust");
    eventually(30, "trust withdrawn", || async {
        let m = in_b.get("fd").await.ok()?.status?.imported?;
        (m.seq.is_none() && m.message?.contains("does not exist")).then_some(())
    })
    .await;
}

/// B's owner deletes and re-creates B's `fd`: A's older record, all the
/// registry holds, is refused as a replay and the approval not Approved.
async fn recreated_is_refused(
    in_b: &Api<ModelApproval>,
    publisher: &str,
    na: &str,
    model: &Pushed,
) {
    in_b.delete("fd", &DeleteParams::default())
        .await
        .expect("delete fd");
    gone(in_b, "fd", 60).await;
    import_fd(in_b, "fd", publisher, na, &model.uri(), &model.digest).await;
    refused(in_b, "replayed").await;
    let again = in_b.get("fd").await.expect("fd").status.expect("status");
    assert_ne!(again.phase, Some(ApprovalPhase::Approved));
}

/// Waits until the publisher's status keeps A's revocation of `fd`.
async fn revocation_kept(trusted: &Api<TrustedPublisher>, publisher: &str, na: &str) {
    eventually(
        30,
        "the revocation kept in the publisher's status",
        || async {
            let status = trusted.get(publisher).await.ok()?.status?;
            status
                .honoured
                .iter()
                .any(|h| h.approval == format!("{na}/fd") && h.phase == "Rejected")
                .then_some(())
        },
    )
    .await;
}

/// Pushes `n` referrers of `model` annotated as records of `approval` with
/// ever higher seqs, each a manifest of schemaVersion 3, which no client
/// takes: what anyone able to push could flood a repository with.
async fn flood(model: &Pushed, approval: &str, n: usize) {
    let reg = registry();
    let path = model
        .repository
        .trim_start_matches(&format!("{}/", reg.address))
        .to_string();
    let manifest_url = |r: &str| reg.url(&format!("{path}/manifests/{r}"));
    let subject = reg
        .https()
        .get(manifest_url(&model.digest))
        .header("Accept", OCI_MANIFEST)
        .send()
        .await
        .expect("the model's manifest")
        .bytes()
        .await
        .expect("its bytes");
    let empty = serde_json::json!({"mediaType": "application/vnd.oci.empty.v1+json",
        "digest": sha256_digest(b"{}"), "size": 2});
    for i in 0..n {
        let junk = serde_json::json!({
            "schemaVersion": 3, "mediaType": OCI_MANIFEST, "artifactType": ARTIFACT_TYPE,
            "config": empty, "layers": [empty],
            "subject": {"mediaType": OCI_MANIFEST, "digest": model.digest, "size": subject.len()},
            "annotations": {APPROVAL: approval, SEQ: (1_000_000 + i).to_string()},
        });
        let bytes = serde_json::to_vec(&junk).expect("json");
        let answer = reg
            .https()
            .put(manifest_url(&sha256_digest(&bytes)))
            .header("Content-Type", OCI_MANIFEST)
            .body(bytes)
            .send()
            .await
            .expect("push a junk record");
        assert!(answer.status().is_success(), "push: {}", answer.status());
    }
}

/// The referrer of A's record of `fd` for `phase`, as the registry lists it.
async fn referrer_of(model: &Pushed, phase: &str) -> String {
    registry()
        .referrers(model, ARTIFACT_TYPE)
        .await
        .iter()
        // The operator's own records carry the approval's uid; the junk
        // attached by hand does not.
        .find(|m| m["annotations"][PHASE] == phase && m["annotations"][APPROVAL_UID].is_string())
        .and_then(|m| m["digest"].as_str())
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no {phase} record attached to {}", model.pinned()))
}

/// An approval `name` in B importing A's `fd` for the model at `uri`.
async fn import_fd(
    api: &Api<ModelApproval>,
    name: &str,
    publisher: &str,
    na: &str,
    uri: &str,
    digest: &str,
) {
    let mut imported = model_approval(name).artifact(uri, digest).build();
    imported.spec.import_from = Some(Import {
        publisher: publisher.to_string(),
        approval: format!("{na}/fd"),
    });
    api.create(&PostParams::default(), &imported)
        .await
        .expect("imported approval");
}

/// Removes A's newest record of `fd` (the revocation) from the registry:
/// its tag and its manifest.
async fn delete_revocation(in_a: &Api<ModelApproval>, model: &Pushed) {
    let a = in_a.get("fd").await.expect("a");
    let uid: String = a
        .metadata
        .uid
        .unwrap_or_default()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(8)
        .collect();
    let publication = a.status.and_then(|s| s.publication).expect("publication");
    let seq = publication.seq.expect("seq");
    let tagged = format!("{}:modelgate-record-{uid}-{seq}", model.repository);
    let digest = publication.referrer.expect("the revocation's referrer");
    let mut deleted = 0;
    for target in [tagged, digest] {
        let out = registry()
            .oras(&["manifest", "delete", "--force"])
            .arg(&target)
            .output()
            .expect("oras manifest delete");
        deleted += usize::from(out.status.success());
    }
    assert!(deleted > 0, "the revocation could not be deleted");
}

/// The statement inside a DSSE envelope's JSON, as bytes.
fn open_payload(envelope: &str) -> Vec<u8> {
    use base64::Engine;
    let e: serde_json::Value = serde_json::from_str(envelope).expect("envelope");
    base64::engine::general_purpose::STANDARD
        .decode(e["payload"].as_str().expect("payload"))
        .expect("base64")
}

/// The attacks a red team got through once, as someone who can push to the
/// registry and a developer with `edit` in B: a broken record that froze B
/// on A's approval, a copy of the model in another repository carrying
/// only A's Approved record, and B's approval deleted and re-created after
/// the revocation was removed from the registry.
#[tokio::test(flavor = "multi_thread")]
async fn what_once_kept_b_serving_after_a_revoked_is_refused() {
    let client = install_modelgate().await;
    let (a, b, model, in_a, in_b) = fleet(&client, "fleet-r").await.parts();
    // B's operator runs for as long as `b` lives.
    let (na, _b) = (a.ns.name.as_str(), &b);
    approve_all(na, "fd").await;
    phase_of(&in_a, "fd", ApprovalPhase::Approved, 60).await;
    let publisher = trust_a(&client, na, false).await;
    let trusted: Api<TrustedPublisher> = Api::all(client.clone());
    import_fd(&in_b, "fd", &publisher, na, &model.uri(), &model.digest).await;
    phase_of(&in_b, "fd", ApprovalPhase::Approved, 60).await;

    // A record that is no DSSE envelope at all, and a flood of more
    // records than a resync reads, all claiming to be newer and none a
    // manifest the client takes: refused, they neither freeze B on what it
    // honoured nor keep A's revocation unread.
    attach(
        &model,
        ARTIFACT_TYPE,
        &ModelFile::new("junk.json", ENVELOPE_MEDIA_TYPE, "not a dsse envelope"),
        &[
            (APPROVAL, &format!("{na}/fd")),
            (SEQ, "50"),
            (PHASE, "Approved"),
        ],
    );
    flood(&model, &format!("{na}/fd"), 70).await;
    fail_gate(na, "fd", "SecurityReview").await;
    phase_of(
        &in_b,
        "fd",
        ApprovalPhase::Rejected,
        RESYNC.as_secs() * 4 + 20,
    )
    .await;
    // The status names the newest ten refused: the flood's.
    refused(&in_b, "cannot read it").await;

    // A copy of the model, with A's Approved record copied beside it, in a
    // repository the publisher is trusted for: not where A approved it.
    let approved = referrer_of(&model, "Approved").await;
    let copy = format!("{}/{na}/fraud-copy", registry().address);
    for (from, to) in [
        (model.pinned(), format!("{copy}:2.4.1")),
        (
            format!("{}@{approved}", model.repository),
            format!("{copy}@{approved}"),
        ),
    ] {
        let ca = &registry().ca;
        let out = std::process::Command::new(&registry().oras)
            .arg("cp")
            .arg("--from-ca-file")
            .arg(ca)
            .arg("--to-ca-file")
            .arg(ca)
            .arg(&from)
            .arg(&to)
            .output()
            .expect("oras cp");
        assert!(out.status.success(), "oras cp: {}", text(&out));
    }
    import_fd(
        &in_b,
        "fd-copy",
        &publisher,
        na,
        &format!("oci://{copy}:2.4.1"),
        &model.digest,
    )
    .await;
    refused_in(&in_b, "fd-copy", "not in").await;
    let copied = in_b
        .get("fd-copy")
        .await
        .expect("fd-copy")
        .status
        .expect("status");
    assert_ne!(copied.phase, Some(ApprovalPhase::Approved));

    // The revocation removed from the registry, and B's approval deleted
    // and re-created by its owner: A's older record is still a replay.
    delete_revocation(&in_a, &model).await;
    recreated_is_refused(&in_b, &publisher, na, &model).await;
    revocation_kept(&trusted, &publisher, na).await;

    // The platform team deletes and re-creates the publisher (a prune, a
    // reinstall): its status starts empty, B's approval writes the
    // revocation back, and a re-created approval is still refused.
    trusted
        .delete(&publisher, &DeleteParams::default())
        .await
        .expect("delete the publisher");
    gone(&trusted, &publisher, 30).await;
    let again = trust_a(&client, na, false).await;
    assert_eq!(again, publisher);
    revocation_kept(&trusted, &publisher, na).await;
    recreated_is_refused(&in_b, &publisher, na, &model).await;
    trusted
        .delete(&publisher, &DeleteParams::default())
        .await
        .expect("clean up");
}
