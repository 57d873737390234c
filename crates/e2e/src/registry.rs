//! The local control plane's OCI registry (hack/registry) and oras, which
//! pushes models to it as OCI artifacts in the ModelPack layout: the model's
//! files are the layers, each with its media type, under a config that lists
//! them. A push gives the `oci://REPO@DIGEST` an approval names.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use sha2::{Digest, Sha256};

use crate::cluster::*;

/// The artifact type of a ModelPack model manifest.
pub const MODEL_ARTIFACT_TYPE: &str = "application/vnd.cncf.model.manifest.v1+json";
/// The media type of a ModelPack model's config.
pub const MODEL_CONFIG: &str = "application/vnd.cncf.model.config.v1+json";
/// A layer of model weights, one file, neither archived nor compressed.
pub const WEIGHT: &str = "application/vnd.cncf.model.weight.v1.raw";
/// A layer of the weights' configuration (config.json, tokenizer.json, …).
pub const WEIGHT_CONFIG: &str = "application/vnd.cncf.model.weight.config.v1.raw";
/// A layer of documentation (README, licence).
pub const DOC: &str = "application/vnd.cncf.model.doc.v1.raw";
/// The artifact type a signed approval record is attached with.
pub const DSSE_ENVELOPE: &str = "application/vnd.dsse.envelope.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// Where the registry is, the CA its certificate is signed by, and oras.
pub struct Registry {
    /// `127.0.0.1:PORT`, as repositories are named.
    pub address: String,
    /// The cluster's CA, the only one the registry's certificate verifies against.
    pub ca: PathBuf,
    pub oras: PathBuf,
}

/// The registry of the control plane every test of this binary shares.
pub fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        // Brings the control plane, and so the registry, up when no
        // KUBECONFIG names one.
        cluster();
        let registry = Registry {
            address: cluster_env("MODELGATE_REGISTRY"),
            ca: PathBuf::from(cluster_env("MODELGATE_REGISTRY_CA")),
            oras: PathBuf::from(cluster_env("MODELGATE_ORAS")),
        };
        if TcpStream::connect(&registry.address).is_err() {
            panic!(
                "no registry listens on {}: run hack/cluster.sh up (it starts one beside a running control plane)",
                registry.address
            );
        }
        registry
    })
}

impl Registry {
    /// `https://127.0.0.1:PORT/v2/<path>`.
    pub fn url(&self, path: &str) -> String {
        format!("https://{}/v2/{path}", self.address)
    }

    /// An HTTPS client that trusts the cluster's CA and nothing else.
    pub fn https(&self) -> reqwest::Client {
        let pem = std::fs::read(&self.ca).expect("read the cluster CA");
        let ca = reqwest::Certificate::from_pem(&pem).expect("the cluster CA is PEM");
        reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(ca)
            .build()
            .expect("an HTTPS client")
    }

    /// How many requests the registry has answered whose path starts with
    /// `/v2/<path>` (the local registry counts them).
    pub async fn requests(&self, path: &str) -> u64 {
        let url = format!(
            "https://{}/_modelgate/requests?prefix=/v2/{path}",
            self.address
        );
        let body = self
            .https()
            .get(url)
            .send()
            .await
            .expect("ask the registry")
            .bytes()
            .await
            .expect("a count");
        let said: serde_json::Value = serde_json::from_slice(&body).expect("a count as JSON");
        said["requests"].as_u64().expect("a count of requests")
    }

    /// The referrers of `pushed` of `artifact_type`, as the registry's
    /// referrers API lists them.
    pub async fn referrers(&self, pushed: &Pushed, artifact_type: &str) -> Vec<serde_json::Value> {
        let path = pushed
            .repository
            .trim_start_matches(&format!("{}/", self.address));
        let url = self.url(&format!(
            "{path}/referrers/{}?artifactType={}",
            pushed.digest,
            // A '+' in a query is a space.
            artifact_type.replace('+', "%2B")
        ));
        let body = self
            .https()
            .get(url)
            .send()
            .await
            .expect("referrers")
            .bytes()
            .await
            .expect("an index");
        let index: serde_json::Value = serde_json::from_slice(&body).expect("an index");
        index["manifests"].as_array().cloned().unwrap_or_default()
    }

    /// oras SUBCOMMAND… with the cluster's CA; more arguments follow.
    pub fn oras(&self, subcommand: &[&str]) -> Command {
        let mut cmd = Command::new(&self.oras);
        cmd.args(subcommand).arg("--ca-file").arg(&self.ca);
        cmd
    }
}

/// One file of a model, pushed as one layer.
pub struct ModelFile {
    pub name: String,
    pub media_type: String,
    pub content: Vec<u8>,
}

impl ModelFile {
    pub fn new(name: &str, media_type: &str, content: impl Into<Vec<u8>>) -> ModelFile {
        ModelFile {
            name: name.to_string(),
            media_type: media_type.to_string(),
            content: content.into(),
        }
    }
}

/// A small model named `name`: weights, their config and a README, each a
/// few hundred bytes and different for every name.
pub fn tiny_model(name: &str) -> Vec<ModelFile> {
    let weights: Vec<u8> = Sha256::digest(name.as_bytes())
        .iter()
        .cycle()
        .take(512)
        .copied()
        .collect();
    vec![
        ModelFile::new("model.safetensors", WEIGHT, weights),
        ModelFile::new(
            "config.json",
            WEIGHT_CONFIG,
            format!(r#"{{"model_type":"{name}","hidden_size":8}}"#),
        ),
        ModelFile::new("README.md", DOC, format!("# {name}\n\nA test model.\n")),
    ]
}

/// A model in the registry.
pub struct Pushed {
    /// `127.0.0.1:PORT/<path>`.
    pub repository: String,
    /// The manifest's digest, `sha256:…`.
    pub digest: String,
    pub tag: Option<String>,
}

impl Pushed {
    /// `oci://REPO@DIGEST`: what loads, whatever the tag names later.
    pub fn reference(&self) -> String {
        format!("oci://{}@{}", self.repository, self.digest)
    }

    /// `oci://REPO[:TAG]`, as `spec.model.uri` names it beside the digest.
    pub fn uri(&self) -> String {
        match &self.tag {
            Some(tag) => format!("oci://{}:{tag}", self.repository),
            None => format!("oci://{}", self.repository),
        }
    }

    /// `REPO@DIGEST`, as oras names it.
    pub fn pinned(&self) -> String {
        format!("{}@{}", self.repository, self.digest)
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Pushes `files` with oras to `path` in the registry (tagged `tag`, or
/// untagged), as a ModelPack model whose config lists the files' digests.
pub fn push_model(path: &str, tag: Option<&str>, files: &[ModelFile]) -> Pushed {
    let reg = registry();
    let repository = format!("{}/{path}", reg.address);
    let dir = scratch_dir("push");
    let config = serde_json::json!({
        "descriptor": {"name": path, "version": tag.unwrap_or("untagged")},
        "config": {"format": "safetensors"},
        "modelfs": {
            "type": "layers",
            "diffIds": files.iter().map(|f| sha256_digest(&f.content)).collect::<Vec<_>>(),
        },
    });
    write(&dir, "model-config.json", config.to_string().as_bytes());
    let target = match tag {
        Some(tag) => format!("{repository}:{tag}"),
        None => repository.clone(),
    };
    let mut cmd = reg.oras(&["push"]);
    cmd.current_dir(&dir)
        .args(["--format", "json", "--artifact-type", MODEL_ARTIFACT_TYPE])
        .args(["--config", &format!("model-config.json:{MODEL_CONFIG}")])
        .arg(&target);
    for f in files {
        write(&dir, &f.name, &f.content);
        cmd.arg(format!("{}:{}", f.name, f.media_type));
    }
    let digest = descriptor_digest(&run(cmd, "oras push"));
    let _ = std::fs::remove_dir_all(&dir);
    Pushed {
        repository,
        digest,
        tag: tag.map(str::to_string),
    }
}

/// Attaches `file` to `subject` as an OCI 1.1 referrer of `artifact_type`
/// with `annotations`; returns the referrer manifest's digest.
pub fn attach(
    subject: &Pushed,
    artifact_type: &str,
    file: &ModelFile,
    annotations: &[(&str, &str)],
) -> String {
    let dir = scratch_dir("attach");
    write(&dir, &file.name, &file.content);
    let mut cmd = registry().oras(&["attach"]);
    cmd.current_dir(&dir)
        .args(["--format", "json", "--artifact-type", artifact_type]);
    for (key, value) in annotations {
        cmd.args(["--annotation", &format!("{key}={value}")]);
    }
    cmd.arg(subject.pinned())
        .arg(format!("{}:{}", file.name, file.media_type));
    let digest = descriptor_digest(&run(cmd, "oras attach"));
    let _ = std::fs::remove_dir_all(&dir);
    digest
}

/// Runs `cmd`, which must succeed.
fn run(mut cmd: Command, what: &str) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {what}: {e}"));
    assert!(out.status.success(), "{what} failed: {}", text(&out));
    out
}

/// The digest of the descriptor oras prints with `--format json`.
fn descriptor_digest(out: &Output) -> String {
    let descriptor: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("oras prints the descriptor as JSON");
    descriptor["digest"]
        .as_str()
        .expect("the descriptor has a digest")
        .to_string()
}

/// A fresh directory of this process for oras to read files from.
fn scratch_dir(what: &str) -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir =
        std::env::temp_dir().join(format!("modelgate-oras-{what}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a scratch directory");
    dir
}

fn write(dir: &Path, name: &str, content: &[u8]) {
    std::fs::write(dir.join(name), content).unwrap_or_else(|e| panic!("write {name}: {e}"));
}
