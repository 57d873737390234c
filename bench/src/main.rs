//! `modelgate-bench`: measures the operator against the cluster in
//! KUBECONFIG (hack/bench.sh brings up the local one) and prints ratios
//! against baselines measured in the same run. Timings are reported, never
//! asserted; only correctness (a lost gate decision) fails the run.

mod baseline;
mod cluster;
mod etcd;
mod fleet;
mod oci;
mod scenarios;
mod server_cpu;
mod stats;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// One part of the bench.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    Latency,
    Cold,
    Churn,
    Fleet,
}

impl std::fmt::Display for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use clap::ValueEnum;
        match self.to_possible_value() {
            Some(v) => f.write_str(v.get_name()),
            None => Ok(()),
        }
    }
}

/// The scale knobs; the defaults are the full run of docs/performance.md.
#[derive(Parser, Clone, Debug)]
#[command(
    name = "modelgate-bench",
    about = "Benchmarks modelgate against a real API server"
)]
pub struct Knobs {
    /// Approvals in the gate-to-rollout latency run.
    #[arg(long, default_value_t = 200)]
    pub latency_approvals: usize,
    /// ModelApprovals created before the cold start.
    #[arg(long, default_value_t = 10_000)]
    pub cold_approvals: usize,
    /// ModelDeployments created before the cold start.
    #[arg(long, default_value_t = 1_000)]
    pub cold_deployments: usize,
    /// Of the approvals without a deployment, how many have passed all five
    /// gates before the cold start: the operator writes their Approved phase
    /// and a signed ApprovalRecord each.
    #[arg(long, default_value_t = 1_000)]
    pub cold_approved: usize,
    /// Run the cold start and churn under an ApprovalPolicy with a quorum
    /// gate and an automatic gate (false: no policy, as an operator without
    /// policies is measured).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub policy: bool,
    /// Seconds of the at-rest measurement.
    #[arg(long, default_value_t = 300)]
    pub rest_secs: u64,
    /// Concurrent reviewers in the churn run.
    #[arg(long, default_value_t = 50)]
    pub churn_reviewers: usize,
    /// Seconds of churn.
    #[arg(long, default_value_t = 60)]
    pub churn_secs: u64,
    /// Concurrency of the bench's own bulk requests (and of the baseline).
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Which scenarios to run (all by default): latency, cold (the cold
    /// start, followed by the at-rest measurement), churn.
    #[arg(long, value_delimiter = ',', default_values_t = [Scenario::Latency, Scenario::Cold, Scenario::Churn, Scenario::Fleet])]
    pub scenarios: Vec<Scenario>,
    /// The approvals name an OCI model pushed to the local registry, so that
    /// the cold start includes one registry look-up per approval.
    #[arg(long)]
    pub oci: bool,
    /// How often the fleet scenario's imported approval is read again, in
    /// seconds: the baseline of its revocation time.
    #[arg(long, default_value_t = 10)]
    pub fleet_resync_secs: u64,
    /// A small, quick run (CI's smoke test): overrides the knobs above.
    #[arg(long)]
    pub smoke: bool,
    /// Where to write the results as JSON.
    #[arg(long, default_value = "target/bench/results.json")]
    pub out: PathBuf,
}

impl Knobs {
    fn effective(mut self) -> Knobs {
        if self.smoke {
            self.latency_approvals = 10;
            self.cold_approvals = 200;
            self.cold_deployments = 20;
            self.cold_approved = 20;
            self.rest_secs = 5;
            self.churn_reviewers = 5;
            self.churn_secs = 5;
            self.fleet_resync_secs = 3;
        }
        self
    }
}

fn main() -> ExitCode {
    let knobs = Knobs::parse().effective();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("modelgate-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(scenarios::run_all(knobs)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("modelgate-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
