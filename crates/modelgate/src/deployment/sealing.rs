//! What the ModelDeployment controller reads to judge its pods sealed, and
//! the egress NetworkPolicy it owns for each ModelDeployment in a governed
//! namespace: the governed namespaces, the platform's RuntimeCatalog and
//! the policies it wrote, each a watch cache.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::{Stream, TryStreamExt};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};

use super::desired::{MANAGED_BY_LABEL, MANAGED_BY_VALUE, MODEL_DEPLOYMENT_LABEL};
use crate::api::runtime::RuntimeCatalog;
use crate::runtime::Synced;
use crate::runtime::watches::slim;
use crate::vocabulary::{FIELD_MANAGER, GOVERNED_LABEL, RUNTIME_CATALOG};

/// The three caches.
#[derive(Clone)]
pub struct Stores {
    pub governed: Store<PartialObjectMeta<Namespace>>,
    pub catalogs: Store<RuntimeCatalog>,
    pub policies: Store<NetworkPolicy>,
}

impl Stores {
    pub fn governed(&self, namespace: &str) -> bool {
        self.governed.get(&ObjectRef::new(namespace)).is_some()
    }

    pub fn catalog(&self) -> Option<Arc<RuntimeCatalog>> {
        self.catalogs.get(&ObjectRef::new(RUNTIME_CATALOG))
    }

    /// The egress policy the operator wrote for `md` in `namespace`.
    pub fn policy(&self, namespace: &str, name: &str) -> Option<Arc<NetworkPolicy>> {
        self.policies.get(&ObjectRef::new(name).within(namespace))
    }
}

type Feed<K> = std::pin::Pin<Box<dyn Stream<Item = Result<K, watcher::Error>> + Send>>;

/// The caches' change streams, which the controller drives.
pub struct Changes {
    pub namespaces: Feed<PartialObjectMeta<Namespace>>,
    pub catalogs: Feed<RuntimeCatalog>,
    pub policies: Feed<NetworkPolicy>,
}

/// The caches and their change streams.
pub struct Watched {
    pub stores: Stores,
    pub changes: Changes,
}

/// Watches the governed namespaces (metadata only), the RuntimeCatalog and
/// the NetworkPolicies modelgate manages.
pub fn watch(
    (client, scope): (&Client, &crate::runtime::Scope),
    config: &watcher::Config,
    synced: &Arc<Synced>,
) -> Watched {
    let mut synced_ns = synced.marker("governed-namespaces");
    let (governed, writer) = reflector::store();
    let namespaces = watcher(
        Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
        config.clone().labels(&format!("{GOVERNED_LABEL}=true")),
    )
    .default_backoff()
    .reflect(writer)
    .inspect_ok(move |e| synced_ns(e))
    .touched_objects();
    let mut synced_catalogs = synced.marker("runtimecatalogs");
    let (catalogs, writer) = reflector::store();
    let catalog_changes = watcher(Api::<RuntimeCatalog>::all(client.clone()), config.clone())
        .default_backoff()
        .modify(slim)
        .reflect(writer)
        .inspect_ok(move |e| synced_catalogs(e))
        .touched_objects();
    let mut synced_policies = synced.marker("networkpolicies");
    let (policies, writer) = reflector::store();
    let managed = config
        .clone()
        .labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"));
    let policy_changes = watcher(scope.api::<NetworkPolicy>(client.clone()), managed)
        .default_backoff()
        .modify(slim)
        .reflect(writer)
        .inspect_ok(move |e| synced_policies(e))
        .touched_objects();
    Watched {
        stores: Stores {
            governed,
            catalogs,
            policies,
        },
        changes: Changes {
            namespaces: Box::pin(namespaces),
            catalogs: Box::pin(catalog_changes),
            policies: Box::pin(policy_changes),
        },
    }
}

/// The egress policy of a ModelDeployment's pods: DNS to kube-system and
/// the endpoints the catalog lists, nothing else.
pub fn egress_policy(
    namespace: &str,
    name: &str,
    owner: OwnerReference,
    catalog: Option<&RuntimeCatalog>,
) -> NetworkPolicy {
    let labels = BTreeMap::from([
        (MANAGED_BY_LABEL.to_string(), MANAGED_BY_VALUE.to_string()),
        (MODEL_DEPLOYMENT_LABEL.to_string(), name.to_string()),
    ]);
    let mut egress = vec![dns()];
    egress.extend(
        catalog
            .iter()
            .flat_map(|c| &c.spec.egress)
            .map(|e| NetworkPolicyEgressRule {
                to: Some(vec![NetworkPolicyPeer {
                    ip_block: Some(IPBlock {
                        cidr: e.cidr.clone(),
                        except: None,
                    }),
                    ..NetworkPolicyPeer::default()
                }]),
                ports: (!e.ports.is_empty())
                    .then(|| e.ports.iter().map(|p| port("TCP", *p)).collect()),
            }),
    );
    NetworkPolicy {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            labels: Some(labels),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    MODEL_DEPLOYMENT_LABEL.to_string(),
                    name.to_string(),
                )])),
                ..LabelSelector::default()
            }),
            policy_types: Some(vec!["Egress".into()]),
            egress: Some(egress),
            ingress: None,
        }),
    }
}

fn dns() -> NetworkPolicyEgressRule {
    NetworkPolicyEgressRule {
        to: Some(vec![NetworkPolicyPeer {
            namespace_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    "kubernetes.io/metadata.name".to_string(),
                    "kube-system".to_string(),
                )])),
                ..LabelSelector::default()
            }),
            ..NetworkPolicyPeer::default()
        }]),
        ports: Some(vec![port("UDP", 53), port("TCP", 53)]),
    }
}

fn port(protocol: &str, number: i32) -> NetworkPolicyPort {
    NetworkPolicyPort {
        protocol: Some(protocol.into()),
        port: Some(IntOrString::Int(number)),
        end_port: None,
    }
}

/// Keeps `desired` in place: created when no policy has its name, changed
/// only when this ModelDeployment (`owner`, a uid) controls the one there,
/// and otherwise left alone. A policy of that name that someone else wrote
/// is never taken over: the answer says why the pods' egress is not the
/// operator's.
pub async fn keep(
    client: &Client,
    cached: Option<&NetworkPolicy>,
    desired: &NetworkPolicy,
    owner: &str,
) -> Result<Option<String>, kube::Error> {
    let namespace = desired.namespace().unwrap_or_default();
    let name = desired.name_any();
    let api: Api<NetworkPolicy> = Api::namespaced(client.clone(), &namespace);
    let current = match cached {
        Some(c) => Some(c.clone()),
        None => api.get_opt(&name).await?,
    };
    let Some(current) = current else {
        let create = PostParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PostParams::default()
        };
        return match api.create(&create, desired).await {
            Ok(_) => Ok(None),
            // Created meanwhile: looked at again on the next reconcile.
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(None),
            Err(e) => Err(e),
        };
    };
    if !super::apply::controlled_by(&current, owner) {
        return Ok(Some(format!(
            "NetworkPolicy {name} is not this ModelDeployment's: modelgate leaves a policy it did not write alone, so the pods' egress is not the operator's (rename the ModelDeployment or the policy)"
        )));
    }
    let same = current.spec == desired.spec && current.labels() == desired.labels();
    if !same {
        api.patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(desired),
        )
        .await?;
    }
    Ok(None)
}

/// Deletes an egress policy the operator wrote, once its namespace is no
/// longer governed.
pub async fn remove(client: &Client, policy: &NetworkPolicy) -> Result<(), kube::Error> {
    let api: Api<NetworkPolicy> =
        Api::namespaced(client.clone(), &policy.namespace().unwrap_or_default());
    match api.delete(&policy.name_any(), &Default::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}
