//! Per-object retry backoff for failed reconciles: the first retry comes
//! quickly (a passing 429 or timeout), each further failure of the same
//! object doubles the wait up to a minute, and a success forgets it. A
//! persistent failure (say, missing RBAC) thus costs one request per object
//! per minute, not a hot loop.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

const FIRST: Duration = Duration::from_millis(250);
const MAX: Duration = Duration::from_secs(60);

/// The key of an object: its Rust type (the kind; the controllers share one
/// Backoff, and an approval and a ModelDeployment may share a name), then
/// namespace/name.
fn key<K: kube::Resource>(object: &K) -> String {
    let meta = object.meta();
    format!(
        "{}:{}/{}",
        std::any::type_name::<K>(),
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    )
}

#[derive(Default)]
pub struct Backoff {
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    /// Records a failure of `object` and returns how long to wait.
    pub fn failed<K: kube::Resource>(&self, object: &K) -> Duration {
        let Ok(mut failures) = self.failures.lock() else {
            return MAX;
        };
        let n = failures.entry(key(object)).or_insert(0);
        *n = n.saturating_add(1);
        FIRST.saturating_mul(1u32 << (*n - 1).min(12)).min(MAX)
    }

    /// Forgets the failures of `object` after a success. Called after every
    /// reconcile, so the key is only built when something has failed.
    pub fn succeeded<K: kube::Resource>(&self, object: &K) {
        if let Ok(mut failures) = self.failures.lock()
            && !failures.is_empty()
        {
            failures.remove(&key(object));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use k8s_openapi::api::core::v1::ConfigMap;

    fn object(ns: &str, name: &str) -> ConfigMap {
        let mut cm = ConfigMap::default();
        cm.metadata.namespace = Some(ns.into());
        cm.metadata.name = Some(name.into());
        cm
    }

    #[test]
    fn doubles_to_a_minute_and_resets_on_success() {
        let b = Backoff::default();
        let (a, other) = (object("ns", "a"), object("ns", "b"));
        let waits: Vec<u64> = (0..10).map(|_| b.failed(&a).as_millis() as u64).collect();
        assert_eq!(&waits[..4], &[250, 500, 1000, 2000]);
        assert_eq!(waits[9], 60_000);
        assert_eq!(b.failed(&other).as_millis(), 250);
        b.succeeded(&a);
        assert_eq!(b.failed(&a).as_millis(), 250);
    }

    #[test]
    fn objects_of_two_kinds_with_one_name_keep_their_own_count() {
        use k8s_openapi::api::core::v1::Secret;
        let b = Backoff::default();
        let cm = object("risk", "fd");
        let mut secret = Secret::default();
        secret.metadata.namespace = Some("risk".into());
        secret.metadata.name = Some("fd".into());
        for _ in 0..3 {
            b.failed(&cm);
        }
        assert_eq!(
            b.failed(&secret).as_millis(),
            250,
            "a first failure of its own"
        );
        b.succeeded(&secret);
        assert_eq!(
            b.failed(&cm).as_millis(),
            2000,
            "untouched by the other's success"
        );
    }
}
