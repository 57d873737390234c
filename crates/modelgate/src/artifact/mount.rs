//! The approved OCI model in the pod: an image volume by digest, mounted
//! read-only at `/models/<model name>` in every container, and MODEL_PATH
//! naming it. A pure function of the approved artifact.

use k8s_openapi::api::core::v1::{ImageVolumeSource, PodSpec, Volume, VolumeMount};

use crate::api::approval::ModelArtifact;
use crate::api::oci;

/// The volume's name; the template may not use it (nor any image volume).
pub const VOLUME: &str = "modelgate-model";

/// Where models are mounted.
pub const ROOT: &str = "/models";

/// The variable that names the model's directory.
pub const MODEL_PATH: &str = "MODEL_PATH";

/// Where `model` is mounted, when it is an OCI artifact.
pub fn path(model: &ModelArtifact) -> Option<String> {
    oci::parse(&model.uri).map(|_| format!("{ROOT}/{}", model.name))
}

/// Whether `path` is at or under the models' root once spelled plainly
/// (`//models`, `/./models/x` and `/models/` all are). A path with `..`
/// counts too: it could lead anywhere.
pub fn under_models(path: &str) -> bool {
    let segments: Vec<&str> = path
        .split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .collect();
    let root = ROOT.trim_start_matches('/');
    segments.first() == Some(&root) || segments.contains(&"..")
}

/// Adds the model's volume to `spec` and mounts it in every container, in
/// place of any volume or mount of the same name; nothing for a model that
/// is not an OCI artifact.
pub fn add(spec: &mut PodSpec, model: &ModelArtifact) {
    let (Some(uri), Some(path)) = (oci::parse(&model.uri), path(model)) else {
        return;
    };
    let volumes = spec.volumes.get_or_insert_with(Vec::new);
    volumes.retain(|v| v.name != VOLUME);
    volumes.push(Volume {
        name: VOLUME.into(),
        image: Some(ImageVolumeSource {
            reference: Some(uri.pinned(&model.digest)),
            // By digest, the bytes cannot differ: the node's copy will do.
            pull_policy: Some("IfNotPresent".into()),
        }),
        ..Volume::default()
    });
    for c in spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten())
    {
        // Nothing else at or under /models: no other bytes over the model.
        let mounts = c.volume_mounts.get_or_insert_with(Vec::new);
        mounts.retain(|m| m.name != VOLUME && !under_models(&m.mount_path));
        mounts.push(VolumeMount {
            name: VOLUME.into(),
            mount_path: path.clone(),
            read_only: Some(true),
            ..VolumeMount::default()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_the_models_root_is_under_it() {
        for path in [
            "/models",
            "/models/",
            "//models/x",
            "/./models/fraud/model.safetensors",
            "/srv/../models",
            "models",
        ] {
            assert!(under_models(path), "{path}");
        }
        for path in ["/etc/vllm", "/modelsx", "/data/models", "/"] {
            assert!(!under_models(path), "{path}");
        }
    }
}
