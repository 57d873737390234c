//! Leader election on a `coordination.k8s.io/v1` Lease, through
//! kube-lease-manager: one replica reconciles, the others wait and take over
//! within the lease duration when it stops renewing.

use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Where the lease lives and how long it holds.
#[derive(Clone, Debug)]
pub struct LeaderElection {
    pub namespace: String,
    pub lease_name: String,
    /// Who holds the lease: the pod name in a cluster.
    pub identity: String,
    /// Seconds a lease holds after its last renewal; a standby takes over
    /// within this time of the leader's death.
    pub duration_secs: u64,
    /// Seconds before expiry at which the holder renews.
    pub grace_secs: u64,
}

/// A running election: `is_leader` follows the lease.
pub struct Election {
    pub is_leader: watch::Receiver<bool>,
    task: JoinHandle<kube_lease_manager::Result<LeaseManager>>,
}

impl Election {
    pub async fn start(
        client: Client,
        config: &LeaderElection,
    ) -> kube_lease_manager::Result<Election> {
        let manager = LeaseManagerBuilder::new(client, &config.lease_name)
            .with_namespace(&config.namespace)
            .with_identity(&config.identity)
            .with_duration(config.duration_secs)
            .with_grace(config.grace_secs)
            .with_field_manager(format!("modelgate-lease-{}", config.identity))
            .build()
            .await?;
        let (is_leader, task) = manager.watch().await;
        Ok(Election { is_leader, task })
    }

    /// Waits until this replica holds the lease; false when the election
    /// itself ended.
    pub async fn acquired(&mut self) -> bool {
        self.is_leader.wait_for(|leader| *leader).await.is_ok()
    }

    /// Gives the lease up at once so a standby need not wait for it to
    /// expire.
    pub async fn release(self) {
        let Election { is_leader, task } = self;
        // Closing the channel makes the manager release the lease and stop.
        drop(is_leader);
        match task.await {
            Ok(Ok(_)) => tracing::info!("leader lease released"),
            Ok(Err(e)) => tracing::warn!(error = %e, "could not release the leader lease"),
            Err(e) => tracing::warn!(error = %e, "leader election task failed"),
        }
    }
}
