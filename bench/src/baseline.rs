//! The cold start's baselines: plain clients, as the operator's service
//! account (so that the same admission policies run), writing to the same
//! approvals with the bench's concurrency and nothing else: no watch, no
//! cache, no Event, record or in-use mark.

use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt, stream};
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams};
use modelgate::api::approval::ModelApproval;
use modelgate::vocabulary::FIELD_MANAGER;
use serde_json::{Map, Value, json};

use super::cluster::{self, BoxError};
use super::server_cpu::{self, ServerCpu};

/// How long a baseline took, and the control plane's CPU meanwhile.
pub struct Baseline {
    pub took: Duration,
    pub server: Option<ServerCpu>,
}

/// The operator's service account, as a plain client of `ns`'s approvals.
async fn as_operator(ns: &str) -> Result<Api<DynamicObject>, BoxError> {
    let sa = cluster::client(
        Some("system:serviceaccount:modelgate-system:modelgate"),
        &[
            "system:serviceaccounts",
            "system:serviceaccounts:modelgate-system",
        ],
    )
    .await?;
    Ok(Api::namespaced_with(
        sa,
        ns,
        &ApiResource::erase::<ModelApproval>(&()),
    ))
}

/// One status field on each approval (the bench's baseline from the start).
pub async fn one_field(
    admin: &Client,
    ns: &str,
    names: &[String],
    concurrency: usize,
) -> Result<Baseline, BoxError> {
    let statuses = names
        .iter()
        .map(|name| (name.clone(), json!({"historyDropped": 0})))
        .collect();
    apply_all(admin, ns, statuses, "bench-baseline", concurrency).await
}

/// The very statuses the operator wrote (its parts alone, as its field
/// manager owns them), each applied again under another field manager. The
/// values are unchanged, but the new owner changes the stored object, so
/// the server validates, admits and stores each as it did the operator's.
pub async fn same_statuses(
    admin: &Client,
    ns: &str,
    concurrency: usize,
) -> Result<Baseline, BoxError> {
    let listed = as_operator(ns).await?.list(&ListParams::default()).await?;
    let statuses = listed
        .items
        .iter()
        .filter_map(|o| Some((o.metadata.name.clone()?, operator_part(o)?)))
        .collect();
    apply_all(admin, ns, statuses, "bench-same-statuses", concurrency).await
}

async fn apply_all(
    admin: &Client,
    ns: &str,
    statuses: Vec<(String, Value)>,
    manager: &str,
    concurrency: usize,
) -> Result<Baseline, BoxError> {
    let api = as_operator(ns).await?;
    let params = PatchParams::apply(manager).force();
    let before = server_cpu::read(admin).await;
    let started = Instant::now();
    stream::iter(statuses)
        .map(|(name, status)| {
            let (api, params) = (api.clone(), params.clone());
            async move {
                let patch = json!({"apiVersion": "modelgate.io/v1alpha1", "kind": "ModelApproval", "metadata": {"name": name}, "status": status});
                api.patch_status(&name, &params, &Patch::Apply(&patch)).await
            }
        })
        .buffer_unordered(concurrency)
        .try_collect::<Vec<_>>()
        .await?;
    let took = started.elapsed();
    let after = server_cpu::read(admin).await;
    let server = after.zip(before).map(|(a, b)| a.since(&b));
    Ok(Baseline { took, server })
}

/// The part of `object`'s status that the operator's field manager owns.
fn operator_part(object: &DynamicObject) -> Option<Value> {
    let owned = object.metadata.managed_fields.as_ref()?.iter().find(|m| {
        m.manager.as_deref() == Some(FIELD_MANAGER) && m.subresource.as_deref() == Some("status")
    })?;
    let fields = owned.fields_v1.as_ref()?.0.get("f:status")?;
    Some(project(object.data.get("status")?, fields))
}

/// `value` cut to the fields a managedFields `fields` set names. An
/// associative list keeps the items its keys name, whole; anything else
/// named with no finer set is kept whole.
fn project(value: &Value, fields: &Value) -> Value {
    let Some(names) = fields.as_object().filter(|f| f.keys().any(|k| k != ".")) else {
        return value.clone();
    };
    match value {
        Value::Object(map) => {
            let kept: Map<String, Value> = names
                .iter()
                .filter_map(|(k, child)| {
                    let name = k.strip_prefix("f:")?;
                    Some((name.to_string(), project(map.get(name)?, child)))
                })
                .collect();
            Value::Object(kept)
        }
        Value::Array(items) => {
            let keys: Vec<Map<String, Value>> = names
                .keys()
                .filter_map(|k| serde_json::from_str(k.strip_prefix("k:")?).ok())
                .collect();
            let named = |item: &Value| {
                keys.iter()
                    .any(|key| key.iter().all(|(f, v)| item.get(f) == Some(v)))
            };
            Value::Array(items.iter().filter(|i| named(i)).cloned().collect())
        }
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_projection_keeps_the_owned_fields_and_list_items() {
        let status = json!({
            "phase": "Pending", "historyDropped": 0,
            "conditions": [{"type": "Technical", "status": "True"}, {"type": "Business", "status": "False"}],
            "history": [{"gate": "a"}, {"gate": "b"}],
        });
        let fields = json!({
            "f:phase": {},
            "f:conditions": {"k:{\"type\":\"Business\"}": {".": {}, "f:status": {}}},
            "f:history": {},
        });
        assert_eq!(
            project(&status, &fields),
            json!({
                "phase": "Pending",
                "conditions": [{"type": "Business", "status": "False"}],
                "history": [{"gate": "a"}, {"gate": "b"}],
            })
        );
    }
}
