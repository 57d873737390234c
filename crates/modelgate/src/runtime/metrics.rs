//! The operator's Prometheus metrics. Every label value comes from a fixed
//! set (controller names, error kinds, phases, gates), never from object
//! names, so the number of series stays bounded whatever the cluster holds.

use std::sync::atomic::AtomicU64;
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::error::{ReconcileError, Step};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    pub controller: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub controller: &'static str,
    /// Why: a fixed `Error::metric_label`.
    pub error: &'static str,
    /// Where: a fixed `Step` name.
    pub step: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    pub phase: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GateLabels {
    pub gate: &'static str,
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GateOnlyLabels {
    pub gate: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabels {
    pub cache: &'static str,
}

/// A series without labels that can be absent: a Family keyed by this holds
/// at most one, and removing it says "nothing to report" instead of a
/// made-up value.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NoLabels {}

/// All metrics, registered once; cheap to share behind an `Arc`.
pub struct Metrics {
    pub registry: Registry,
    pub reconciles: Family<ControllerLabels, Counter>,
    pub errors: Family<ErrorLabels, Counter>,
    pub duration: Family<ControllerLabels, Histogram>,
    pub approvals: Family<PhaseLabels, Gauge>,
    pub deployments: Family<PhaseLabels, Gauge>,
    pub gate_decisions: Family<GateLabels, Counter>,
    pub leader: Gauge,
    pub status_writes: Family<ControllerLabels, Counter>,
    /// From an approval's last gate passing to the Deployment first applied
    /// for it.
    pub gate_to_rollout: Histogram,
    /// The earliest expiry among Approved approvals; absent when none expires.
    pub next_expiry: Family<NoLabels, Gauge<f64, AtomicU64>>,
    pub cache_synced: Family<CacheLabels, Gauge>,
    pub records_written: Counter,
    /// Record checkpoint writes, by outcome: written or failed.
    pub checkpoint_writes: Family<OutcomeLabels, Counter>,
    /// Approvals whose gate is past its review deadline, by gate.
    pub overdue_gates: Family<GateOnlyLabels, Gauge>,
    /// Manifest look-ups in model registries, by outcome.
    pub registry_requests: Family<OutcomeLabels, Counter>,
    /// BreakGlass objects entering each phase.
    pub break_glass: Family<PhaseLabels, Counter>,
    /// Signed records attached to models in their registries, by outcome.
    pub registry_pushes: Family<OutcomeLabels, Counter>,
    /// Imported approvals read again from the registry, and the requests.
    pub imports: ImportCounters,
}

/// The counters of imported approvals' registry reads (`fleet::import`).
#[derive(Clone, Default)]
pub struct ImportCounters {
    /// Resyncs by outcome: read, incomplete, unreachable, untrusted.
    pub resyncs: Family<OutcomeLabels, Counter>,
    /// Registry requests the resyncs made.
    pub requests: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut metrics = Metrics {
            registry: Registry::with_prefix("modelgate"),
            reconciles: Family::default(),
            errors: Family::default(),
            duration: reconcile_durations(),
            approvals: Family::default(),
            deployments: Family::default(),
            gate_decisions: Family::default(),
            leader: Gauge::default(),
            status_writes: Family::default(),
            gate_to_rollout: rollout_latencies(),
            next_expiry: Family::default(),
            cache_synced: Family::default(),
            records_written: Counter::default(),
            checkpoint_writes: Family::default(),
            registry_requests: Family::default(),
            overdue_gates: Family::default(),
            break_glass: Family::default(),
            registry_pushes: Family::default(),
            imports: Default::default(),
        };
        metrics.register_reconciles();
        metrics.register_objects();
        metrics.register_outcomes();
        // At zero from the start: an alert on failed checkpoint writes must
        // be told from a broken scrape (see `start_at_zero`).
        for outcome in ["written", "failed"] {
            let _ = metrics
                .checkpoint_writes
                .get_or_create(&OutcomeLabels { outcome });
        }
        metrics
    }
}

impl Metrics {
    /// How the controllers work: reconciles, their failures, time and writes.
    fn register_reconciles(&mut self) {
        let r = &mut self.registry;
        r.register(
            "reconciles",
            "Reconciles run, by controller",
            self.reconciles.clone(),
        );
        r.register(
            "reconcile_errors",
            "Reconcile steps that failed, by controller, error kind and step (a failed Event is counted but does not fail its reconcile)",
            self.errors.clone(),
        );
        r.register(
            "reconcile_duration_seconds",
            "How long a reconcile took",
            self.duration.clone(),
        );
        r.register(
            "status_writes",
            "Status writes made, by controller",
            self.status_writes.clone(),
        );
    }

    /// What the watch caches hold: objects by phase, expiry, cache state.
    fn register_objects(&mut self) {
        let r = &mut self.registry;
        r.register(
            "approvals",
            "ModelApprovals by phase",
            self.approvals.clone(),
        );
        r.register(
            "deployments",
            "ModelDeployments by phase (AwaitingApproval and Revoked are held)",
            self.deployments.clone(),
        );
        r.register(
            "approval_next_expiry_timestamp_seconds",
            "When the first Approved ModelApproval expires (Unix time); absent when none expires",
            self.next_expiry.clone(),
        );
        r.register(
            "overdue_gates",
            "Approvals whose gate is past its review deadline and undecided, by gate (recounted from the cache every 5 s)",
            self.overdue_gates.clone(),
        );
        r.register(
            "cache_synced",
            "1 once a watch cache of the running controllers has its first list",
            self.cache_synced.clone(),
        );
    }

    /// What the operator decided and did: gates, rollouts, records, the lease.
    fn register_outcomes(&mut self) {
        let r = &mut self.registry;
        r.register(
            "gate_decisions",
            "Gate decisions observed, by gate and result",
            self.gate_decisions.clone(),
        );
        r.register(
            "gate_to_rollout_seconds",
            "From an approval's last gate passing to its Deployment first applied",
            self.gate_to_rollout.clone(),
        );
        r.register(
            "records_written",
            "Signed ApprovalRecords created",
            self.records_written.clone(),
        );
        r.register(
            "checkpoint_writes",
            "Signed record checkpoints applied, by outcome: written or failed (a failed one is tried again with its heads)",
            self.checkpoint_writes.clone(),
        );
        r.register(
            "registry_requests",
            "Model manifests looked up in their registries, by outcome: found, missing or failed (one per OCI approval, plus retries while it does not resolve)",
            self.registry_requests.clone(),
        );
        r.register(
            "registry_pushes",
            "Signed records attached to their models in the registry as OCI referrers, by outcome: published or failed (failures are retried with backoff)",
            self.registry_pushes.clone(),
        );
        r.register(
            "import_resyncs",
            "Imported approvals read again from their model's registry, by outcome: read, incomplete (records left unread), unreachable or untrusted (the publisher is not trusted for the model)",
            self.imports.resyncs.clone(),
        );
        r.register(
            "import_registry_requests",
            "Registry requests made to read imported approvals: one list per resync, two per record not read before",
            self.imports.requests.clone(),
        );
        r.register(
            "break_glass_transitions",
            "BreakGlass objects entering a phase: AwaitingApproval, Active, Ratified, Lapsed or Refused",
            self.break_glass.clone(),
        );
        r.register(
            "leader",
            "1 while this replica holds the leader lease",
            self.leader.clone(),
        );
    }
}

/// A millisecond to about 8 s, doubling.
fn reconcile_durations() -> Family<ControllerLabels, Histogram> {
    Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.001, 2.0, 14)))
}

/// Half a second to a day and a half (0.5 × 4^n): a rollout follows the
/// last gate within a second, unless its ModelDeployment came later.
fn rollout_latencies() -> Histogram {
    Histogram::new(exponential_buckets(0.5, 4.0, 10))
}

impl Metrics {
    /// Counts a reconcile and times it until the guard is dropped.
    pub fn reconcile(&self, controller: &'static str) -> ReconcileTimer<'_> {
        self.reconciles
            .get_or_create(&ControllerLabels { controller })
            .inc();
        ReconcileTimer {
            metrics: self,
            controller,
            started: Instant::now(),
        }
    }

    /// Creates a controller's counters at zero: a rate over a counter that
    /// does not exist yet is no series at all, so a dashboard would show
    /// nothing and an alert on errors could not be told from a broken scrape.
    /// `steps` are the steps the controller's reconciles take; each starts
    /// with a counter per cause it can end with.
    pub fn start_at_zero(&self, controller: &'static str, steps: &[Step]) {
        let labels = ControllerLabels { controller };
        let _ = self.reconciles.get_or_create(&labels);
        let _ = self.status_writes.get_or_create(&labels);
        for &step in steps {
            for &error in step.causes() {
                let _ = self.errors.get_or_create(&ErrorLabels {
                    controller,
                    error,
                    step: step.as_str(),
                });
            }
        }
    }

    /// Counts a failed step of one of `controller`'s reconciles.
    pub fn error(&self, controller: &'static str, error: &ReconcileError) {
        self.errors
            .get_or_create(&ErrorLabels {
                controller,
                error: error.cause().metric_label(),
                step: error.step().as_str(),
            })
            .inc();
    }

    /// Sets the earliest expiry (Unix seconds) or, with None, removes it.
    pub fn set_next_expiry(&self, earliest: Option<f64>) {
        match earliest {
            Some(at) => {
                self.next_expiry.get_or_create(&NoLabels {}).set(at);
            }
            None => {
                self.next_expiry.remove(&NoLabels {});
            }
        }
    }

    /// Sets the overdue count of every gate (zeros included, so an alert
    /// has a series before the first deadline passes).
    pub fn set_overdue(&self, counts: [(crate::api::gates::Gate, i64); 5]) {
        for (gate, n) in counts {
            self.overdue_gates
                .get_or_create(&GateOnlyLabels {
                    gate: gate.condition_type(),
                })
                .set(n);
        }
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Sets one gauge per phase of `phases` to how many of `observed` are in it
/// (objects with no phase yet, or another one, count nowhere).
pub fn set_phase_counts<'a>(
    family: &Family<PhaseLabels, Gauge>,
    phases: &[&'static str],
    observed: impl Iterator<Item = Option<&'a str>>,
) {
    let mut counts = vec![0i64; phases.len()];
    for phase in observed.flatten() {
        if let Some(i) = phases.iter().position(|p| *p == phase) {
            counts[i] += 1;
        }
    }
    for (phase, n) in phases.iter().zip(counts) {
        family.get_or_create(&PhaseLabels { phase }).set(n);
    }
}

/// Observes the reconcile duration when dropped, whatever the outcome.
pub struct ReconcileTimer<'a> {
    metrics: &'a Metrics,
    controller: &'static str,
    started: Instant,
}

impl Drop for ReconcileTimer<'_> {
    fn drop(&mut self) {
        self.metrics
            .duration
            .get_or_create(&ControllerLabels {
                controller: self.controller,
            })
            .observe(self.started.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_encode_with_fixed_labels() {
        let m = Metrics::default();
        drop(m.reconcile("approval"));
        m.error(
            "approval",
            &ReconcileError::Status(crate::error::Error::Kube(
                kube::Error::LinesCodecMaxLineLengthExceeded,
            )),
        );
        m.gate_decisions
            .get_or_create(&GateLabels {
                gate: "SecurityReview",
                result: "passed",
            })
            .inc();
        m.approvals
            .get_or_create(&PhaseLabels { phase: "Approved" })
            .set(3);
        set_phase_counts(
            &m.deployments,
            &["Available", "Failed"],
            [Some("Available"), None, Some("Available"), Some("Other")].into_iter(),
        );
        let text = m.encode();
        assert!(
            text.contains("modelgate_reconciles_total{controller=\"approval\"} 1"),
            "{text}"
        );
        assert!(
            text.contains(
                "modelgate_reconcile_errors_total{controller=\"approval\",error=\"kube\",step=\"status\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "modelgate_gate_decisions_total{gate=\"SecurityReview\",result=\"passed\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("modelgate_approvals{phase=\"Approved\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("modelgate_reconcile_duration_seconds_count{controller=\"approval\"} 1"),
            "{text}"
        );
    }

    #[test]
    fn counters_start_at_zero_and_new_gauges_encode() {
        let m = Metrics::default();
        assert!(
            !m.encode()
                .contains("modelgate_approval_next_expiry_timestamp_seconds "),
            "no expiry reported before one is known"
        );
        m.start_at_zero("deployment", &[Step::Read, Step::Apply]);
        m.gate_to_rollout.observe(3.0);
        m.set_next_expiry(Some(1_900_000_000.0));
        m.cache_synced
            .get_or_create(&CacheLabels { cache: "approvals" })
            .set(1);
        let text = m.encode();
        for line in [
            "modelgate_gate_to_rollout_seconds_count 1",
            "modelgate_gate_to_rollout_seconds_bucket{le=\"8.0\"} 1",
            "modelgate_gate_to_rollout_seconds_bucket{le=\"2.0\"} 0",
            "modelgate_approval_next_expiry_timestamp_seconds 1900000000.0",
            "modelgate_cache_synced{cache=\"approvals\"} 1",
            "modelgate_reconcile_errors_total{controller=\"deployment\",error=\"invalid\",step=\"read\"} 0",
            "modelgate_reconcile_errors_total{controller=\"deployment\",error=\"kube\",step=\"apply\"} 0",
            "modelgate_status_writes_total{controller=\"deployment\"} 0",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
        // Once nothing expires, the series goes rather than keep a stale time.
        m.set_next_expiry(None);
        assert!(
            !m.encode()
                .contains("modelgate_approval_next_expiry_timestamp_seconds "),
            "{}",
            m.encode()
        );
    }
}
