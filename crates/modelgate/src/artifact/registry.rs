//! Looks an OCI model up in its registry: the manifest at `REPO@DIGEST`
//! exists, its bytes hash to that digest, and it is an image manifest whose
//! layers are the model's files. One request per approval; the answer is
//! kept in the approval's status and never asked again.

use std::path::PathBuf;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig};
use oci_client::manifest::OciManifest;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use crate::api::approval::{ResolvedArtifact, Seal};
use crate::runtime::metrics::OutcomeLabels;

/// How the operator reaches registries.
#[derive(Clone, Debug, Default)]
pub struct RegistryOptions {
    /// PEM files of CAs to trust besides the system's, for a registry with
    /// a private CA.
    pub ca_files: Vec<PathBuf>,
    /// A Docker config file (a `kubernetes.io/dockerconfigjson` Secret's
    /// key) with credentials by registry host; anonymous without.
    pub auth_file: Option<PathBuf>,
}

/// A registry client shared by the reconciles.
pub struct Registry {
    client: Client,
    /// Look-ups by outcome: found, missing, failed.
    requests: Family<OutcomeLabels, Counter>,
    /// Credentials by registry host.
    credentials: super::credentials::Credentials,
    /// Records attached to models, by outcome.
    pushes: Family<OutcomeLabels, Counter>,
}

/// How long one look-up may take: a registry that hangs must not hold a
/// reconcile worker.
const TIMEOUT: Duration = Duration::from_secs(10);

impl Registry {
    pub fn new(
        options: &RegistryOptions,
        (requests, pushes): (
            Family<OutcomeLabels, Counter>,
            Family<OutcomeLabels, Counter>,
        ),
    ) -> Result<Registry, String> {
        // The HTTP client under oci-client leaves the TLS provider to the
        // program: ring, the one the Kubernetes client uses. Installed once;
        // a second install (tests start several operators) changes nothing.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut roots = Vec::new();
        for file in &options.ca_files {
            let data = std::fs::read(file)
                .map_err(|e| format!("cannot read registry CA {}: {e}", file.display()))?;
            roots.push(Certificate {
                encoding: CertificateEncoding::Pem,
                data,
            });
        }
        let config = ClientConfig {
            extra_root_certificates: roots,
            // A model is one manifest; an index is refused, never resolved
            // to a platform's entry.
            platform_resolver: None,
            connect_timeout: Some(TIMEOUT),
            read_timeout: Some(TIMEOUT),
            user_agent: concat!("modelgate/", env!("CARGO_PKG_VERSION")),
            ..ClientConfig::default()
        };
        let client = Client::try_from(config).map_err(|e| format!("registry client: {e}"))?;
        let credentials = match &options.auth_file {
            Some(file) => super::credentials::Credentials::read(file)?,
            None => super::credentials::Credentials::default(),
        };
        // Every outcome from zero: an alert on "missing" or "failed" needs
        // a series before the first one happens.
        for outcome in Outcome::ALL {
            let _ = requests.get_or_create(&OutcomeLabels {
                outcome: outcome.as_str(),
            });
        }
        for outcome in ["published", "failed"] {
            let _ = pushes.get_or_create(&OutcomeLabels { outcome });
        }
        Ok(Registry {
            client,
            requests,
            credentials,
            pushes,
        })
    }

    /// A client of its own, counting into metrics nobody reads (for the
    /// plugin, which checks records in a registry without a cluster).
    pub fn standalone(options: &RegistryOptions) -> Result<Registry, String> {
        Registry::new(options, (Family::default(), Family::default()))
    }

    /// The credentials for `reference`'s registry.
    pub fn auth(&self, reference: &Reference) -> RegistryAuth {
        self.credentials.for_host(reference.resolve_registry())
    }

    /// The count of records attached to models, by outcome.
    pub fn pushes(&self) -> &Family<OutcomeLabels, Counter> {
        &self.pushes
    }

    /// The client, for the fleet's pushes and pulls.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// What the registry serves at `pinned` (`REGISTRY/REPOSITORY@DIGEST`):
    /// a Sealed artifact, or Unresolved with the reason.
    pub async fn resolve(&self, pinned: &str) -> ResolvedArtifact {
        let outcome = match pinned.parse::<Reference>() {
            Ok(reference) => {
                let auth = self.auth(&reference);
                let pull = self.client.pull_manifest(&reference, &auth);
                match tokio::time::timeout(TIMEOUT, pull).await {
                    Ok(Ok((manifest, _))) => described(pinned, manifest),
                    Ok(Err(e)) => Err(explain(&e)),
                    Err(_) => Err(failed(format!(
                        "the registry did not answer within {TIMEOUT:?}"
                    ))),
                }
            }
            Err(e) => Err(failed(format!("not a reference a registry takes: {e}"))),
        };
        let label = match &outcome {
            Ok(_) => Outcome::Found,
            Err((outcome, _)) => *outcome,
        };
        self.requests
            .get_or_create(&OutcomeLabels {
                outcome: label.as_str(),
            })
            .inc();
        outcome.unwrap_or_else(|(_, why)| unresolved(pinned, why))
    }
}

/// How a look-up ended, as the metric labels it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Found,
    /// The registry answered that it has no such manifest.
    Missing,
    /// Anything else: unreachable, refused, not a model.
    Failed,
}

impl Outcome {
    const ALL: [Outcome; 3] = [Outcome::Found, Outcome::Missing, Outcome::Failed];

    const fn as_str(self) -> &'static str {
        match self {
            Outcome::Found => "found",
            Outcome::Missing => "missing",
            Outcome::Failed => "failed",
        }
    }
}

/// A look-up that failed, and why.
type Failure = (Outcome, String);

fn failed(why: String) -> Failure {
    (Outcome::Failed, why)
}

const MISSING: &str = "the registry has no manifest under this digest";

fn described(pinned: &str, manifest: OciManifest) -> Result<ResolvedArtifact, Failure> {
    let OciManifest::Image(image) = manifest else {
        return Err(failed(
            "it is an image index, not a model: name the digest of one model manifest".into(),
        ));
    };
    let size: i64 = image.layers.iter().map(|l| l.size.max(0)).sum();
    Ok(ResolvedArtifact {
        seal: Seal::Sealed,
        reference: Some(pinned.to_string()),
        media_type: Some(
            image
                .media_type
                .unwrap_or_else(|| oci_client::manifest::OCI_IMAGE_MEDIA_TYPE.into()),
        ),
        artifact_type: Some(image.artifact_type.unwrap_or(image.config.media_type)),
        size: Some(size),
        layers: Some(image.layers.len() as i64),
        resolved_at: Some(Time(Timestamp::now())),
        message: None,
    })
}

/// A registry error, said for a person who can fix it.
fn explain(error: &oci_client::errors::OciDistributionError) -> Failure {
    use oci_client::errors::{OciDistributionError as E, OciErrorCode};
    let missing = (Outcome::Missing, MISSING.to_string());
    match error {
        E::ImageManifestNotFoundError(_) | E::ServerError { code: 404, .. } => missing,
        E::RegistryError { envelope, .. }
            if envelope
                .errors
                .iter()
                .any(|e| e.code == OciErrorCode::ManifestUnknown) =>
        {
            missing
        }
        E::DigestError(e) => failed(format!(
            "the manifest the registry sent does not match this digest: {e}"
        )),
        E::UnauthorizedError { .. } | E::AuthenticationFailure(_) => {
            failed("the registry refused the operator's credentials".into())
        }
        other => failed(format!("the registry could not be asked: {other}")),
    }
}

/// The status of an artifact that did not resolve.
pub fn unresolved(pinned: &str, why: String) -> ResolvedArtifact {
    ResolvedArtifact {
        seal: Seal::Unresolved,
        reference: Some(pinned.to_string()),
        message: Some(why),
        ..ResolvedArtifact::default()
    }
}
