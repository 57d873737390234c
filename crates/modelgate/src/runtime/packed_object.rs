//! A cached object of any kind with everything but its metadata packed.
//!
//! The managed Deployments are cached whole because a reconcile compares
//! the live pod template with the one it wants and checks that the pods
//! are sealed; but across the cache only their metadata is read (owners,
//! labels, uid). As Rust values one with a single container took about
//! 10 KB, mostly empty optional fields of the pod template; packed it takes
//! about 2 KB, most of it the metadata, and a reconcile unpacks the one it
//! reads.

use std::fmt;
use std::marker::PhantomData;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

use crate::runtime::codec::{PackError, deflate, inflate};

/// A managed Deployment as cached.
pub type CachedDeployment = Packed<Deployment>;

/// An object of kind `K`: its metadata as read, the rest deflated.
pub struct Packed<K> {
    pub metadata: ObjectMeta,
    /// The object without its metadata, as JSON, deflated.
    body: Box<[u8]>,
    kind: PhantomData<fn() -> K>,
}

impl<K: Resource + Serialize + DeserializeOwned> Packed<K> {
    /// Packs `object`.
    pub fn pack(mut object: K) -> Result<Self, PackError> {
        let metadata = std::mem::take(object.meta_mut());
        Ok(Packed {
            metadata,
            body: deflate(&object)?,
            kind: PhantomData,
        })
    }

    /// The whole object again.
    pub fn unpack(&self) -> Result<K, PackError> {
        let mut object: K = inflate(&self.body)?;
        *object.meta_mut() = self.metadata.clone();
        Ok(object)
    }
}

impl<K> Clone for Packed<K> {
    fn clone(&self) -> Self {
        Packed {
            metadata: self.metadata.clone(),
            body: self.body.clone(),
            kind: PhantomData,
        }
    }
}

impl<K> fmt::Debug for Packed<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Packed")
            .field("metadata", &self.metadata)
            .field("packed_bytes", &self.body.len())
            .finish()
    }
}

impl<'de, K: Resource + Serialize + DeserializeOwned> Deserialize<'de> for Packed<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let object = K::deserialize(deserializer)?;
        Packed::pack(object).map_err(serde::de::Error::custom)
    }
}

impl<K: Resource<DynamicType = ()>> Resource for Packed<K> {
    resource_as!(K);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment() -> Deployment {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": "fraud-detector", "namespace": "risk", "uid": "u-1", "generation": 4,
                "labels": {"app.kubernetes.io/managed-by": "modelgate"},
                "annotations": {"modelgate.io/approval": "fraud-v3"},
            },
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "fraud-detector"}},
                "template": {
                    "metadata": {"labels": {"app": "fraud-detector"}},
                    "spec": {"containers": [{"name": "server", "image": "registry.example/serve:1"}]},
                },
            },
            "status": {"replicas": 2, "updatedReplicas": 2, "observedGeneration": 4},
        }))
        .unwrap_or_else(|e| panic!("a Deployment: {e}"))
    }

    #[test]
    fn a_packed_deployment_unpacks_to_what_was_read() {
        let packed = Packed::pack(deployment()).unwrap_or_else(|e| panic!("packs: {e}"));
        assert_eq!(
            packed.metadata.uid.as_deref(),
            Some("u-1"),
            "metadata stays readable"
        );
        assert_eq!(
            packed.unpack().unwrap_or_else(|e| panic!("unpacks: {e}")),
            deployment()
        );
    }

    #[test]
    fn it_is_watched_and_read_as_the_kind_it_packs() {
        assert_eq!(CachedDeployment::kind(&()), "Deployment");
        assert_eq!(CachedDeployment::api_version(&()), "apps/v1");
        let json = serde_json::to_string(&deployment()).unwrap_or_else(|e| panic!("{e}"));
        let read: CachedDeployment =
            serde_json::from_str(&json).unwrap_or_else(|e| panic!("reads: {e}"));
        assert_eq!(read.metadata.name.as_deref(), Some("fraud-detector"));
        // What the API server could send that is not a Deployment is
        // refused as it would be for a Deployment.
        assert!(serde_json::from_str::<CachedDeployment>(r#"{"spec": 3}"#).is_err());
    }
}
