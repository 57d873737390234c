//! `kubectl modelgate`: the reviewers' and auditors' terminal. One module
//! per subcommand; this one holds the flags kubectl users expect and the
//! client they configure.

mod audit;
mod authority;
pub(crate) mod bound;
mod breakglass;
mod console;
mod history;
mod measure;
mod output;
mod referrers;
mod report;
mod review;
mod status;
mod why;

use clap::{Args, Parser, Subcommand, ValueEnum};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// Why a command failed; each maps to a message and a non-zero exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The API server refused the request; its message is the whole story
    /// (for a refused gate, the admission policy's words).
    #[error("{0}")]
    Refused(String),
    #[error("cannot reach the cluster: {0}")]
    Connect(String),
    #[error("{0}")]
    NotFound(String),
    /// The approval is not the one the writer saw (another uid or digest,
    /// or deleted): nothing was written.
    #[error("{0}")]
    Changed(String),
    #[error("{0}")]
    Usage(String),
    #[error("kubernetes API request failed: {0}")]
    Kube(#[from] kube::Error),
    #[error("cannot render output: {0}")]
    Render(String),
    /// An audit bundle that does not verify: every failing line named.
    #[error("{0}")]
    Unverified(String),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Refused(_) | CliError::Changed(_) => 3,
            CliError::NotFound(_) => 4,
            CliError::Usage(_) => 2,
            CliError::Unverified(_) => 5,
            _ => 1,
        }
    }

    /// Turns an API error into a refusal (its message) or a not-found.
    pub fn from_api(e: kube::Error, what: &str) -> CliError {
        match e {
            kube::Error::Api(s) if s.code == 404 => CliError::NotFound(format!("{what} not found")),
            kube::Error::Api(s) if s.code == 403 || s.code == 422 || s.code == 409 => {
                CliError::Refused(s.message)
            }
            other => CliError::Kube(other),
        }
    }
}

pub type Result<T, E = CliError> = std::result::Result<T, E>;

#[derive(Parser)]
#[command(
    name = "kubectl-modelgate",
    bin_name = "kubectl modelgate",
    version,
    about = "Review, approve and audit AI models held by modelgate",
    long_about = "Review, approve and audit AI models held by modelgate.\n\nA ModelApproval carries five gates (technical, fairness, security, legal, business); a ModelDeployment rolls out only when all five are passed. Reviewers pass or fail their own gate here; the name on every decision is the one the cluster authenticated.",
    after_help = "Examples:\n  kubectl modelgate status -n risk\n  kubectl modelgate approve fraud-detector-2-4-0 --gate security --reason PenTestPassed -n risk\n  kubectl modelgate why fraud-detector -n risk\n  kubectl modelgate history fraud-detector-2-4-0 -n risk\n  kubectl modelgate break-glass request fraud-detector-2-4-1 --for 4h --skip legal --reason \"INC-4711: …\" -n risk\n  kubectl modelgate audit export -n risk -o risk.jsonl && kubectl modelgate audit verify risk.jsonl"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// The flags kubectl has, with kubectl's meaning.
#[derive(Args, Clone, Default)]
pub struct Global {
    /// The namespace (default: the context's namespace).
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    /// The kubeconfig context to use.
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// Path to the kubeconfig file (default: $KUBECONFIG or ~/.kube/config).
    #[arg(long, global = true, env = "KUBECONFIG", hide_env_values = true)]
    pub kubeconfig: Option<String>,
    /// Act as this user (impersonation, as `kubectl --as`).
    #[arg(long = "as", global = true)]
    pub as_user: Option<String>,
    /// Act as a member of this group (repeatable, as `kubectl --as-group`).
    #[arg(long = "as-group", global = true)]
    pub as_groups: Vec<String>,
}

/// How results are printed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A table for people.
    #[default]
    Table,
    Json,
    Yaml,
}

#[derive(Subcommand)]
pub enum Command {
    /// Show approvals: phase, each gate (✓ passed, ✗ failed, · pending) with its reviewer, expiry, and the deployments that use them.
    Status(status::StatusArgs),
    /// Pass your gate on an approval. Your name is taken from the cluster, never typed.
    Approve(review::ApproveArgs),
    /// Fail your gate on an approval, saying why. Deployments serving it are revoked.
    Reject(review::RejectArgs),
    /// The audit trail of an approval: its recorded history merged with the Events still held, oldest first.
    History(history::HistoryArgs),
    /// Why a ModelDeployment is held or revoked: its approval, the gates pending or failed, who can pass them, what serves now.
    Why(why::WhyArgs),
    /// Record measurements for the automatic gates (for evaluation pipelines, as their own identity).
    Measure(measure::MeasureArgs),
    /// An emergency release of an approval still short of some gates: request one, or approve someone else's.
    #[command(subcommand)]
    BreakGlass(breakglass::BreakGlassCommand),
    /// The signed, offline-verifiable records: export them, verify a bundle, render it for auditors.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// The reviewers' web console on 127.0.0.1: your inbox, approvals with their decision forms, deployments. It acts as you.
    Console(Box<console::ConsoleArgs>),
    /// Print a shell completion script.
    #[command(
        after_help = "Examples:\n  source <(kubectl-modelgate completion bash)\n  kubectl-modelgate completion zsh > \"${fpath[1]}/_kubectl-modelgate\"\n  kubectl-modelgate completion fish > ~/.config/fish/completions/kubectl-modelgate.fish"
    )]
    Completion {
        /// bash, zsh or fish (also elvish and powershell).
        shell: clap_complete::Shell,
    },
}

/// A client and the namespace to work in, from the kubectl-style flags.
pub struct Session {
    pub client: Client,
    pub namespace: String,
}

impl Global {
    pub async fn session(&self) -> Result<Session> {
        let options = KubeConfigOptions {
            context: self.context.clone(),
            cluster: None,
            user: None,
        };
        let mut config = match &self.kubeconfig {
            // KUBECONFIG may list several files; kube reads the list itself.
            Some(path) if !path.contains(':') => {
                let kubeconfig =
                    Kubeconfig::read_from(path).map_err(|e| CliError::Connect(e.to_string()))?;
                Config::from_custom_kubeconfig(kubeconfig, &options).await
            }
            _ => Config::from_kubeconfig(&options).await,
        }
        .map_err(|e| CliError::Connect(e.to_string()))?;
        if let Some(user) = &self.as_user {
            config.auth_info.impersonate = Some(user.clone());
            config.auth_info.impersonate_groups =
                (!self.as_groups.is_empty()).then(|| self.as_groups.clone());
        }
        let namespace = self
            .namespace
            .clone()
            .unwrap_or_else(|| config.default_namespace.clone());
        let client = Client::try_from(config).map_err(|e| CliError::Connect(e.to_string()))?;
        Ok(Session { client, namespace })
    }
}

/// Runs one command; returns what to print on success.
pub async fn run(cli: Cli) -> Result<String> {
    match cli.command {
        Command::Completion { shell } => {
            use clap::CommandFactory;
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "kubectl-modelgate", &mut out);
            Ok(String::from_utf8_lossy(&out).into_owned())
        }
        Command::Status(args) => status::run(&cli.global.session().await?, args).await,
        Command::Approve(args) => review::approve(&cli.global.session().await?, args).await,
        Command::Reject(args) => review::reject(&cli.global.session().await?, args).await,
        Command::History(args) => history::run(&cli.global.session().await?, args).await,
        Command::Why(args) => why::run(&cli.global.session().await?, args).await,
        Command::BreakGlass(command) => {
            breakglass::run(&cli.global.session().await?, command).await
        }
        Command::Audit(command) => audit::run(&cli.global, command).await,
        Command::Measure(args) => measure::run(&cli.global.session().await?, args).await,
        Command::Console(args) => console::run(&cli.global, *args).await,
    }
}
