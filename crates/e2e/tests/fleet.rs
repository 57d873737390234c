//! The approval travels with the artifact: each signed record of an OCI
//! approval is attached to the model in the real registry as an OCI 1.1
//! referrer, which anyone holding the public keys checks from the registry
//! alone, and which `oras discover` (a tool nobody here wrote) lists.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use modelgate::api::approval::{ApprovalPhase, ModelApproval};
use modelgate::api::record::Envelope;
use modelgate::fleet::referrer::{ARTIFACT_TYPE, ENVELOPE_MEDIA_TYPE, PHASE, SEQ};
use modelgate::records::envelope::{open, public_keys};
use modelgate_e2e::registry::*;
use modelgate_e2e::{cluster::*, fixtures::*, operator::*, wait::*};

/// The DSSE envelope a referrer carries, fetched from the registry.
async fn envelope_of(pushed: &Pushed, referrer: &str) -> Envelope {
    let reg = registry();
    let path = pushed
        .repository
        .trim_start_matches(&format!("{}/", reg.address));
    let manifest: serde_json::Value = reg
        .https()
        .get(reg.url(&format!("{path}/manifests/{referrer}")))
        .header("Accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .expect("manifest")
        .bytes()
        .await
        .map(|b| serde_json::from_slice(&b).expect("a manifest"))
        .expect("a manifest");
    assert_eq!(manifest["subject"]["digest"], pushed.digest.as_str());
    assert_eq!(manifest["layers"][0]["mediaType"], ENVELOPE_MEDIA_TYPE);
    let layer = manifest["layers"][0]["digest"].as_str().expect("layer");
    reg.https()
        .get(reg.url(&format!("{path}/blobs/{layer}")))
        .send()
        .await
        .expect("blob")
        .bytes()
        .await
        .map(|b| serde_json::from_slice(&b).expect("an envelope"))
        .expect("an envelope")
}

#[tokio::test(flavor = "multi_thread")]
async fn every_record_of_an_oci_approval_is_attached_to_its_model_and_verifies_from_the_registry() {
    start_operator();
    let client = install_modelgate().await;
    let ns = TestNamespace::new(&client, "fleet-publish").await;
    let n = ns.name.as_str();
    let pushed = push_model(
        &format!("{n}/fraud"),
        Some("2.4.1"),
        &tiny_model("fraud-241"),
    );
    let approvals: Api<ModelApproval> = Api::namespaced(client.clone(), n);
    model_approval("fd-oci")
        .artifact(&pushed.uri(), &pushed.digest)
        .create(&approvals)
        .await;
    approve_all(n, "fd-oci").await;
    let published = eventually(60, "the Approved record attached", || async {
        let a = approvals.get("fd-oci").await.ok()?;
        let s = a.status.as_ref()?;
        (s.phase == Some(ApprovalPhase::Approved) && s.publication.as_ref()?.seq.is_some())
            .then_some(a)
    })
    .await;
    let publication = published
        .status
        .as_ref()
        .and_then(|s| s.publication.clone())
        .expect("publication");
    assert_eq!(publication.message, None);

    // A revocation is a referrer too: the newest statement wins.
    fail_gate(n, "fd-oci", "SecurityReview").await;
    let listed = eventually(60, "the Rejected record attached", || async {
        let list = registry().referrers(&pushed, ARTIFACT_TYPE).await;
        (list.len() >= 2).then_some(list)
    })
    .await;
    let newest = listed
        .iter()
        .max_by_key(|m| {
            m["annotations"][SEQ]
                .as_str()
                .and_then(|s| s.parse::<i64>().ok())
        })
        .expect("a newest referrer");
    assert_eq!(newest["annotations"][PHASE], "Rejected");
    assert_eq!(newest["artifactType"], ARTIFACT_TYPE);

    // Verified from the registry alone with the published public keys.
    let keys_map: Api<ConfigMap> =
        Api::namespaced(client.clone(), modelgate::vocabulary::DEFAULT_NAMESPACE);
    let pem = modelgate::records::key::public_keys_pem(
        &keys_map
            .get("modelgate-public-keys")
            .await
            .expect("public keys"),
    );
    let keys = public_keys(&pem).expect("keys");
    for m in &listed {
        let envelope = envelope_of(&pushed, m["digest"].as_str().expect("digest")).await;
        let payload = open(&envelope, &keys).expect("the signature verifies");
        let statement: serde_json::Value = serde_json::from_slice(&payload).expect("statement");
        let hex = pushed.digest.trim_start_matches("sha256:");
        assert_eq!(statement["subject"][0]["digest"]["sha256"], hex);
        assert_eq!(statement["predicate"]["phase"], m["annotations"][PHASE]);
    }

    // The plugin checks them from the registry with no cluster at all.
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("fleet-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let keys_file = dir.join("modelgate.pub.pem");
    std::fs::write(&keys_file, &pem).expect("keys");
    let verify = |keys: &std::path::Path| {
        std::process::Command::new(modelgate_e2e::paths::binary("kubectl-modelgate"))
            .env("KUBECONFIG", dir.join("no-cluster"))
            .args(["audit", "verify", &format!("oci://{}", pushed.pinned())])
            .arg("--keys")
            .arg(keys)
            .arg("--registry-ca")
            .arg(&registry().ca)
            .output()
            .expect("kubectl-modelgate")
    };
    let out = verify(&keys_file);
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("verified 2 records attached to"), "{said}");
    assert!(
        said.contains(&format!("{n}/fd-oci: Rejected at ")),
        "{said}"
    );
    let stranger = dir.join("stranger.pub.pem");
    let key = modelgate::records::envelope::Signer::generate().expect("key");
    std::fs::write(&stranger, key.public_pem().expect("pem")).expect("key");
    let out = verify(&stranger);
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success());
    assert!(
        said.contains("2 of 2 records attached to") && said.contains("its signature"),
        "{said}"
    );

    // Tools nobody here wrote check them too: oras, jq and openssl.
    let keys_dir = dir.join("keys");
    std::fs::create_dir_all(&keys_dir).expect("keys dir");
    for (name, pem) in keys_map
        .get("modelgate-public-keys")
        .await
        .expect("public keys")
        .data
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| k.ends_with(".pem"))
    {
        std::fs::write(keys_dir.join(name), pem).expect("key");
    }
    let cross_check = |keys: &std::path::Path| {
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../hack/verify-oci-records.sh"
        );
        std::process::Command::new(script)
            .arg(pushed.pinned())
            .arg(keys)
            .arg("--ca-file")
            .arg(&registry().ca)
            .env("MODELGATE_ORAS", &registry().oras)
            .output()
            .expect("hack/verify-oci-records.sh")
    };
    let out = cross_check(&keys_dir);
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.lines().all(|l| l.starts_with("ok   "))
            && said.contains(&format!("{n}/fd-oci Rejected")),
        "{said}"
    );
    // The stranger's key under the operator's key id: every record fails.
    let forged = dir.join("forged");
    std::fs::create_dir_all(&forged).expect("dir");
    for entry in std::fs::read_dir(&keys_dir).expect("keys").flatten() {
        std::fs::copy(&stranger, forged.join(entry.file_name())).expect("copy");
    }
    let out = cross_check(&forged);
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        !out.status.success() && said.contains("the signature does not verify"),
        "{said}"
    );

    // oras, which nobody here wrote, lists them too.
    let out = registry()
        .oras(&[
            "discover",
            "--format",
            "json",
            "--artifact-type",
            ARTIFACT_TYPE,
        ])
        .arg(pushed.pinned())
        .output()
        .expect("oras discover");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lists = |d: &serde_json::Value| said.contains(d.as_str().unwrap_or("?"));
    assert!(listed.iter().all(|m| lists(&m["digest"])), "{said}");
}
