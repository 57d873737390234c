//! The local control plane's OCI registry, checked as a person pushing a
//! model would check it: oras pushes the model, its manifest resolves by
//! digest over TLS verified against the cluster's CA (the bytes served hash
//! to the digest, the files are the layers), a tag moves while a digest
//! does not, a referrer attached with oras is listed by the OCI 1.1
//! referrers API, a manifest under a digest not its own is refused, and
//! nothing is served without TLS from that CA. Needs the local control
//! plane's registry (hack/cluster.sh up).

use std::process::Command;

use modelgate_e2e::registry::*;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use serde_json::Value;

/// GET `path` of the registry's API, trusting only the cluster's CA.
async fn get(path: &str, accept: &str) -> reqwest::Response {
    let reg = registry();
    reg.https()
        .get(reg.url(path))
        .header(ACCEPT, accept)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e:?}"))
}

fn header(resp: &reqwest::Response, name: &str) -> String {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// The manifest `reference` of `repo` (a tag or digest): its digest header
/// and its bytes.
async fn manifest(repo: &str, reference: &str) -> (StatusCode, String, Vec<u8>) {
    let resp = get(&format!("{repo}/manifests/{reference}"), OCI_MANIFEST).await;
    let status = resp.status();
    let digest = header(&resp, "docker-content-digest");
    let body = resp.bytes().await.expect("the manifest's bytes").to_vec();
    (status, digest, body)
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("JSON")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pushed_model_resolves_by_its_digest_with_its_files_as_layers() {
    let reg = registry();
    let files = tiny_model("resolve");
    let pushed = push_model("models/resolve", Some("v1"), &files);
    let prefix = format!("oci://{}/models/resolve@sha256:", reg.address);
    assert!(
        pushed.reference().starts_with(&prefix),
        "{}",
        pushed.reference()
    );
    assert_eq!(
        pushed.uri(),
        format!("oci://{}/models/resolve:v1", reg.address)
    );

    let resp = get(
        &format!("models/resolve/manifests/{}", pushed.digest),
        OCI_MANIFEST,
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, CONTENT_TYPE.as_str()), OCI_MANIFEST);
    assert_eq!(header(&resp, "docker-content-digest"), pushed.digest);
    let body = resp.bytes().await.expect("the manifest's bytes");
    assert_eq!(
        sha256_digest(&body),
        pushed.digest,
        "the bytes served are the bytes the digest names"
    );

    let m = json(&body);
    assert_eq!(m["artifactType"], MODEL_ARTIFACT_TYPE);
    assert_eq!(m["config"]["mediaType"], MODEL_CONFIG);
    let layers = m["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), files.len(), "one layer per file: {m}");
    for (layer, file) in layers.iter().zip(&files) {
        assert_eq!(layer["mediaType"], file.media_type.as_str());
        assert_eq!(layer["digest"], sha256_digest(&file.content).as_str());
        assert_eq!(layer["size"], file.content.len());
        assert_eq!(
            layer["annotations"]["org.opencontainers.image.title"],
            file.name.as_str()
        );
    }

    // A layer fetched by its digest is the file.
    let weights = get(
        &format!(
            "models/resolve/blobs/{}",
            layers[0]["digest"].as_str().unwrap_or_default()
        ),
        "*/*",
    )
    .await;
    assert_eq!(weights.status(), StatusCode::OK);
    assert_eq!(
        weights.bytes().await.expect("the weights").as_ref(),
        files[0].content.as_slice()
    );

    // What a person checks by hand: oras resolves the tag to the same digest.
    let out = reg
        .oras(&["manifest", "fetch", "--descriptor"])
        .arg(format!("{}:v1", pushed.repository))
        .output()
        .expect("run oras manifest fetch");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(json(&out.stdout)["digest"], pushed.digest.as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tag_moves_to_the_next_push_while_a_digest_keeps_its_bytes() {
    let first = push_model("models/moving", Some("stable"), &tiny_model("moving-1"));
    let second = push_model("models/moving", Some("stable"), &tiny_model("moving-2"));
    assert_ne!(first.digest, second.digest);

    let (status, digest, _) = manifest("models/moving", "stable").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(digest, second.digest, "the tag names the latest push");

    let (status, digest, body) = manifest("models/moving", &first.digest).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(digest, first.digest);
    assert_eq!(
        sha256_digest(&body),
        first.digest,
        "the first push is still served by its digest"
    );

    let untagged = push_model("models/moving", None, &tiny_model("moving-3"));
    let tags = get("models/moving/tags/list", "application/json").await;
    let tags = json(&tags.bytes().await.expect("tags"));
    assert_eq!(
        tags["tags"],
        serde_json::json!(["stable"]),
        "an untagged push adds no tag"
    );
    let (status, _, _) = manifest("models/moving", &untagged.digest).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_attached_referrer_is_listed_by_the_referrers_api() {
    let model = push_model("models/referred", Some("v1"), &tiny_model("referred"));
    let envelope = ModelFile::new(
        "record.dsse.json",
        DSSE_ENVELOPE,
        r#"{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[]}"#,
    );
    let annotations = [
        ("io.modelgate.approval", "referred"),
        ("io.modelgate.seq", "1"),
    ];
    let referrer = attach(&model, DSSE_ENVELOPE, &envelope, &annotations);

    let path = format!("models/referred/referrers/{}", model.digest);
    let resp = get(&path, OCI_INDEX).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, CONTENT_TYPE.as_str()), OCI_INDEX);
    let index = json(&resp.bytes().await.expect("the referrers"));
    let listed = index["manifests"].as_array().expect("manifests");
    assert_eq!(listed.len(), 1, "{index}");
    assert_eq!(listed[0]["digest"], referrer.as_str());
    assert_eq!(listed[0]["artifactType"], DSSE_ENVELOPE);
    assert_eq!(
        listed[0]["annotations"]["io.modelgate.approval"],
        "referred"
    );
    assert_eq!(listed[0]["annotations"]["io.modelgate.seq"], "1");

    // Filtered by artifact type, and saying so (`+` is a space in a query).
    let filter = DSSE_ENVELOPE.replace('+', "%2B");
    let resp = get(&format!("{path}?artifactType={filter}"), OCI_INDEX).await;
    assert_eq!(header(&resp, "oci-filters-applied"), "artifactType");
    assert_eq!(
        json(&resp.bytes().await.expect("filtered"))["manifests"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    let resp = get(
        &format!("{path}?artifactType=application/vnd.example"),
        OCI_INDEX,
    )
    .await;
    assert_eq!(
        json(&resp.bytes().await.expect("filtered"))["manifests"],
        serde_json::json!([])
    );

    // oras used the referrers API, not the fallback tag `sha256-<digest>`.
    let tags = get("models/referred/tags/list", "application/json").await;
    assert_eq!(
        json(&tags.bytes().await.expect("tags"))["tags"],
        serde_json::json!(["v1"])
    );

    // A digest nobody refers to has an empty list, not an error.
    let unknown = sha256_digest(b"never pushed");
    let resp = get(&format!("models/referred/referrers/{unknown}"), OCI_INDEX).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        json(&resp.bytes().await.expect("referrers"))["manifests"],
        serde_json::json!([])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_manifest_is_refused_under_a_digest_or_blob_that_is_not_its_own() {
    let reg = registry();
    let kept = push_model("models/integrity", Some("v1"), &tiny_model("integrity-1"));
    let other = push_model("models/integrity", None, &tiny_model("integrity-2"));
    let (_, _, other_bytes) = manifest("models/integrity", &other.digest).await;

    // Another manifest's bytes under the kept digest.
    let put = |reference: String, body: Vec<u8>| {
        reg.https()
            .put(reg.url(&format!("models/integrity/manifests/{reference}")))
            .header(CONTENT_TYPE, OCI_MANIFEST)
            .body(body)
            .send()
    };
    let resp = put(kept.digest.clone(), other_bytes.clone())
        .await
        .expect("PUT");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(
        resp.text()
            .await
            .unwrap_or_default()
            .contains("DIGEST_INVALID")
    );
    let (status, digest, body) = manifest("models/integrity", &kept.digest).await;
    assert_eq!((status, digest), (StatusCode::OK, kept.digest.clone()));
    assert_eq!(
        sha256_digest(&body),
        kept.digest,
        "the digest still serves its own bytes"
    );

    // A manifest naming a layer the registry does not hold.
    let mut m = json(&other_bytes);
    m["layers"][0]["digest"] = Value::from(sha256_digest(b"no such layer"));
    let resp = put("missing-layer".into(), m.to_string().into_bytes())
        .await
        .expect("PUT");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(
        resp.text()
            .await
            .unwrap_or_default()
            .contains("MANIFEST_BLOB_UNKNOWN")
    );
    let (status, _, _) = manifest("models/integrity", "missing-layer").await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "nothing was stored under the tag"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_registry_serves_only_tls_verified_against_the_cluster_ca() {
    let reg = registry();
    let pushed = push_model("models/tls", Some("v1"), &tiny_model("tls"));

    // With the cluster's CA: the registry API.
    let resp = get("", "application/json").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        header(&resp, "docker-distribution-api-version"),
        "registry/2.0"
    );

    // Plain HTTP gets no registry answer.
    let plain = reqwest::Client::new()
        .get(format!("http://{}/v2/models/tls/manifests/v1", reg.address))
        .send()
        .await
        .expect("an HTTP answer");
    assert_eq!(plain.status(), StatusCode::BAD_REQUEST);
    assert!(plain.headers().get("docker-content-digest").is_none());
    assert!(
        plain
            .text()
            .await
            .unwrap_or_default()
            .contains("HTTP request to an HTTPS server")
    );

    // A client with the usual public roots and not the cluster's CA refuses
    // the certificate.
    let public = reqwest::Client::builder()
        .use_rustls_tls()
        .build()
        .expect("a client");
    let err = public
        .get(reg.url(""))
        .send()
        .await
        .expect_err("the registry's certificate is not publicly trusted");
    assert!(format!("{err:?}").contains("UnknownIssuer"), "{err:?}");

    // So does oras without the CA.
    let out = Command::new(&reg.oras)
        .args(["manifest", "fetch"])
        .arg(pushed.pinned())
        .output()
        .expect("run oras");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("certificate signed by unknown authority"),
        "{stderr}"
    );
}
