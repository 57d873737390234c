//! What the objects of a namespace take in etcd, read from etcd itself
//! (its v3 JSON gateway on the local control plane, MODELGATE_ETCD), so
//! that the bytes per approval include what the API server stores: the
//! object as written, managedFields and all.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::cluster::BoxError;

/// Keys read per request.
const PAGE: i64 = 2_000;

/// (objects, bytes of their values) under `/registry/[<group>/]<resource>/<namespace>/`,
/// or None when no etcd is reachable (a cluster of someone else's).
pub async fn stored(group: &str, resource: &str, namespace: &str) -> Option<(u64, u64)> {
    let endpoint = std::env::var("MODELGATE_ETCD").ok()?;
    // Built-in kinds of the core group are stored without a group.
    let prefix = match group {
        "" => format!("/registry/{resource}/{namespace}/"),
        group => format!("/registry/{group}/{resource}/{namespace}/"),
    };
    match scan(&endpoint, &prefix).await {
        Ok(found) => Some(found),
        Err(e) => {
            eprintln!("modelgate-bench: cannot read etcd at {endpoint}: {e}");
            None
        }
    }
}

async fn scan(endpoint: &str, prefix: &str) -> Result<(u64, u64), BoxError> {
    let http = reqwest::Client::new();
    // The end of the range: the prefix with its last byte raised by one.
    let mut end = prefix.as_bytes().to_vec();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    let (mut objects, mut bytes) = (0u64, 0u64);
    let mut from = prefix.as_bytes().to_vec();
    loop {
        let body = serde_json::json!({
            "key": STANDARD.encode(&from), "range_end": STANDARD.encode(&end), "limit": PAGE,
        });
        let answer = http
            .post(format!("{endpoint}/v3/kv/range"))
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&body)?)
            .send()
            .await?
            .bytes()
            .await?;
        let page: serde_json::Value = serde_json::from_slice(&answer)?;
        let kvs = page["kvs"].as_array().cloned().unwrap_or_default();
        for kv in &kvs {
            let value = STANDARD.decode(kv["value"].as_str().unwrap_or_default())?;
            objects += 1;
            bytes += value.len() as u64;
        }
        let more = page["more"].as_bool().unwrap_or(false);
        let last = kvs.last().and_then(|kv| kv["key"].as_str());
        match (more, last) {
            (true, Some(key)) => {
                from = STANDARD.decode(key)?;
                from.push(0);
            }
            _ => return Ok((objects, bytes)),
        }
    }
}
