//! Waiting on the cluster: polling until a check holds, and counting writes.

use std::time::Duration;

use kube::api::Api;

/// Polls `check` every 100 ms until it returns Some, or panics after `secs`.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {secs}s waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Counts the writes to object `name` over `window`, from a watch that
/// starts at `resource_version`.
pub async fn count_writes<K>(
    api: &Api<K>,
    name: &str,
    resource_version: &str,
    window: Duration,
) -> usize
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    use futures::StreamExt;
    let params = kube::api::WatchParams::default()
        .fields(&format!("metadata.name={name}"))
        .timeout(window.as_secs().max(1) as u32 + 5);
    let stream = api.watch(&params, resource_version).await.expect("watch");
    let mut stream = std::pin::pin!(stream);
    let mut writes = 0;
    let deadline = tokio::time::sleep(window);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => return writes,
            ev = stream.next() => match ev {
                Some(Ok(kube::api::WatchEvent::Modified(_))) | Some(Ok(kube::api::WatchEvent::Deleted(_))) => writes += 1,
                Some(_) => {}
                None => return writes,
            },
        }
    }
}

/// Waits up to `secs` until `name` no longer exists.
pub async fn gone<K>(api: &Api<K>, name: &str, secs: u64)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    eventually(secs, &format!("{name} gone"), || async {
        api.get_opt(name).await.ok()?.is_none().then_some(())
    })
    .await
}
