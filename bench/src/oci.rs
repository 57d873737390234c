//! `--oci`: the bench's approvals name one small model pushed to the local
//! registry with oras, so that the cold start includes the operator's one
//! registry look-up per approval.

use std::process::Command;
use std::sync::OnceLock;

use super::cluster::BoxError;

/// `(uri, digest)` of the pushed model, once pushed.
static MODEL: OnceLock<(String, String)> = OnceLock::new();

/// The model the approvals name: the pushed OCI one, if any.
pub fn model() -> Option<&'static (String, String)> {
    MODEL.get()
}

fn env(name: &str) -> Result<String, BoxError> {
    std::env::var(name).map_err(|_| {
        format!("--oci needs {name}: run hack/bench.sh, which brings up the local registry").into()
    })
}

/// Pushes a small model in the ModelPack layout and remembers its digest.
pub fn push(dir: &std::path::Path) -> Result<(), BoxError> {
    let pushed = push_to(dir, "bench/model")?;
    let _ = MODEL.set(pushed);
    Ok(())
}

/// Pushes a small model in the ModelPack layout to `repository` (in the
/// local registry); its `(oci:// uri, digest)`.
pub fn push_to(dir: &std::path::Path, repository: &str) -> Result<(String, String), BoxError> {
    let (registry, oras, ca) = (
        env("MODELGATE_REGISTRY")?,
        env("MODELGATE_ORAS")?,
        env("MODELGATE_REGISTRY_CA")?,
    );
    let model = dir.join("model");
    std::fs::create_dir_all(&model)?;
    std::fs::write(model.join("model.safetensors"), vec![7u8; 4096])?;
    std::fs::write(model.join("config.json"), br#"{"model_type":"bench"}"#)?;
    std::fs::write(
        model.join("model-config.json"),
        br#"{"descriptor":{"name":"bench-model"}}"#,
    )?;
    let target = format!("{registry}/{repository}:1.0.0");
    let out = Command::new(&oras)
        .current_dir(&model)
        .args([
            "push",
            "--ca-file",
            &ca,
            "--format",
            "go-template={{.digest}}",
        ])
        .args([
            "--artifact-type",
            "application/vnd.cncf.model.manifest.v1+json",
        ])
        .args([
            "--config",
            "model-config.json:application/vnd.cncf.model.config.v1+json",
        ])
        .arg(&target)
        .args([
            "model.safetensors:application/vnd.cncf.model.weight.v1.raw",
            "config.json:application/vnd.cncf.model.weight.config.v1.raw",
        ])
        .output()?;
    if !out.status.success() {
        return Err(format!("oras push: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    let digest = String::from_utf8(out.stdout)?.trim().to_string();
    println!("pushed the bench model: oci://{target} {digest}");
    Ok((format!("oci://{target}"), digest))
}
