//! Where the signing key lives: a Secret the operator creates on its first
//! start when none is given, and a ConfigMap with every public key it has
//! signed with, which every authenticated user may read.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use tracing::info;

use super::envelope::{KeyError, Signer};

/// The key in the Secret's data that holds the PKCS#8 PEM private key.
pub const PRIVATE_KEY: &str = "signing-key.pem";
/// The key in the ConfigMap's data that names the key signing now.
pub const CURRENT: &str = "current";

/// Where the key and the public keys are kept.
#[derive(Clone, Debug)]
pub struct KeyPlace {
    pub namespace: String,
    /// The Secret with the private key.
    pub secret: String,
    /// The ConfigMap with the public keys, `<key id>.pem` each.
    pub public: String,
}

impl KeyPlace {
    /// The names the chart uses, in `namespace`.
    pub fn in_namespace(namespace: &str) -> Self {
        KeyPlace {
            namespace: namespace.to_string(),
            secret: "modelgate-signing-key".into(),
            public: "modelgate-public-keys".into(),
        }
    }
}

/// Why the key could not be loaded or published.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("signing key: {0}")]
    Key(#[from] KeyError),
    #[error("signing key Secret {0} has no {PRIVATE_KEY}")]
    Missing(String),
    #[error("signing key: kubernetes API request failed: {0}")]
    Kube(#[from] kube::Error),
}

/// The signing key from its Secret, creating both when there is none; then
/// its public key published beside the earlier ones.
pub async fn load(client: &Client, place: &KeyPlace) -> Result<Signer, StoreError> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &place.namespace);
    let signer = match secrets.get_opt(&place.secret).await? {
        Some(secret) => from_secret(&secret, &place.secret)?,
        None => create(&secrets, place).await?,
    };
    publish(client, place, &signer).await?;
    info!(key = signer.id(), "signing records with this key");
    Ok(signer)
}

fn from_secret(secret: &Secret, name: &str) -> Result<Signer, StoreError> {
    let pem = secret
        .data
        .as_ref()
        .and_then(|d| d.get(PRIVATE_KEY))
        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        .ok_or_else(|| StoreError::Missing(name.to_string()))?;
    Ok(Signer::from_pem(&pem)?)
}

/// A new key in a new Secret; when another replica made one first, theirs.
async fn create(secrets: &Api<Secret>, place: &KeyPlace) -> Result<Signer, StoreError> {
    let signer = Signer::generate()?;
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(place.secret.clone()),
            namespace: Some(place.namespace.clone()),
            labels: Some(
                [(
                    "app.kubernetes.io/managed-by".to_string(),
                    "modelgate".to_string(),
                )]
                .into(),
            ),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".into()),
        data: Some(
            [(
                PRIVATE_KEY.to_string(),
                ByteString(signer.private_pem()?.into_bytes()),
            )]
            .into(),
        ),
        ..Secret::default()
    };
    match secrets.create(&PostParams::default(), &secret).await {
        Ok(_) => {
            info!(secret = %place.secret, key = signer.id(), "created a new signing key");
            Ok(signer)
        }
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let theirs = secrets.get(&place.secret).await?;
            from_secret(&theirs, &place.secret)
        }
        Err(e) => Err(e.into()),
    }
}

/// Adds this key's public key to the ConfigMap and names it current. Each
/// key is applied under a field manager of its own, so the public keys of
/// earlier keys stay (records they signed stay verifiable).
async fn publish(client: &Client, place: &KeyPlace, signer: &Signer) -> Result<(), StoreError> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &place.namespace);
    let data: BTreeMap<String, String> = [
        (format!("{}.pem", signer.id()), signer.public_pem()?),
        (CURRENT.to_string(), signer.id().to_string()),
    ]
    .into();
    let map = ConfigMap {
        metadata: ObjectMeta {
            name: Some(place.public.clone()),
            namespace: Some(place.namespace.clone()),
            ..ObjectMeta::default()
        },
        data: Some(data),
        ..ConfigMap::default()
    };
    let manager: String = format!(
        "modelgate-key-{}",
        &signer.id()[..16.min(signer.id().len())]
    );
    let mut value = serde_json::to_value(&map).map_err(|e| KeyError::Public(e.to_string()))?;
    value["apiVersion"] = "v1".into();
    value["kind"] = "ConfigMap".into();
    api.patch(
        &place.public,
        &PatchParams::apply(&manager).force(),
        &Patch::Apply(&value),
    )
    .await?;
    Ok(())
}

/// Every public key in the ConfigMap, as one PEM text.
pub fn public_keys_pem(map: &ConfigMap) -> String {
    map.data
        .iter()
        .flatten()
        .filter(|(k, _)| k.ends_with(".pem"))
        .map(|(_, v)| v.as_str())
        .collect()
}
