//! Runs every controller of the operator until shutdown.

use std::sync::Arc;

use futures::{Future, FutureExt};
use kube::Client;

use crate::context::Context;

/// Drives all controllers until `shutdown` resolves; in-flight reconciles
/// finish before this returns.
pub async fn run(
    client: Client,
    instance: Option<String>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let ctx = Arc::new(Context::new(client, instance));
    let shutdown = shutdown.boxed().shared();
    futures::join!(
        crate::approval::controller::run(ctx.clone(), shutdown.clone()),
        crate::deployment::controller::run(ctx, shutdown),
    );
}
