//! The modelgate controller binary.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{Api, Client};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "modelgate",
    version,
    about = "The modelgate operator: holds every model rollout until its approval has passed"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Print the CustomResourceDefinitions as YAML, ready for `kubectl apply -f -`.
    Crd {
        /// Write one file per CRD into this directory instead (how crds/ is made).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Render the governed-namespace and managed-Deployment rules as static
    /// admission manifests (`*.static.k8s.io`) for the API server's
    /// staticManifestsDir, from the chart's rendered manifests.
    #[command(
        after_help = "Examples:\n  helm template modelgate charts/modelgate -n modelgate-system -f my-values.yaml \\\n    | modelgate static-admission --dir /etc/kubernetes/admission/validating-policies\n  modelgate static-admission --from deploy/modelgate.yaml --dir /etc/kubernetes/admission/validating-policies"
    )]
    StaticAdmission {
        /// The rendered manifests (`helm template` output, or deploy/modelgate.yaml); default: standard input.
        #[arg(long)]
        from: Option<PathBuf>,
        /// The directory to write `<policy>.static.k8s.io.yaml` into (created when missing).
        #[arg(long)]
        dir: PathBuf,
    },
}

/// Without a subcommand, modelgate runs the controllers.
#[derive(clap::Args)]
struct RunArgs {
    /// The name of this replica in Events and logs; in a cluster, the pod name.
    #[arg(long, env = "POD_NAME")]
    instance: Option<String>,
    /// Log format.
    #[arg(long, env = "MODELGATE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Where to serve /metrics, /healthz and /readyz.
    #[arg(long, env = "MODELGATE_LISTEN", default_value = "0.0.0.0:8080")]
    listen: std::net::SocketAddr,
    /// Elect one leader among the replicas (turn off only for a single replica).
    #[arg(long, env = "MODELGATE_LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set)]
    leader_elect: bool,
    /// The operator's own namespace: of the leader Lease and the signing key
    /// (in a cluster, the pod's namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = modelgate::vocabulary::DEFAULT_NAMESPACE)]
    lease_namespace: String,
    /// The name of the leader Lease.
    #[arg(long, default_value = "modelgate-leader")]
    lease_name: String,
    /// Seconds the lease holds after its last renewal: how soon a standby takes over.
    #[arg(long, default_value_t = 15)]
    lease_duration: u64,
    /// Reconciles run at once per controller.
    #[arg(long, env = "MODELGATE_CONCURRENCY", default_value_t = modelgate::context::DEFAULT_CONCURRENCY)]
    concurrency: u16,
    /// The Secret holding the records' Ed25519 signing key (in the lease's
    /// namespace); created with a new key when it does not exist.
    #[arg(
        long,
        env = "MODELGATE_SIGNING_KEY_SECRET",
        default_value = "modelgate-signing-key"
    )]
    signing_key_secret: String,
    /// The ConfigMap where every public key signing records is published.
    #[arg(
        long,
        env = "MODELGATE_PUBLIC_KEYS",
        default_value = "modelgate-public-keys"
    )]
    public_keys: String,
    /// A PEM file of CAs that model registries' certificates may be signed
    /// by, besides the system's (repeat, or separate with commas).
    #[arg(long, env = "MODELGATE_REGISTRY_CA", value_delimiter = ',')]
    registry_ca: Vec<PathBuf>,
    /// A Docker config file with registry credentials by host (the key of a
    /// kubernetes.io/dockerconfigjson Secret), for looking models up and
    /// attaching their signed records; anonymous without.
    #[arg(long, env = "MODELGATE_REGISTRY_AUTH")]
    registry_auth: Option<PathBuf>,
    /// How often, in seconds, an imported approval's records are read
    /// again from the registry: an upstream revocation is honoured within
    /// it (docs/fleet.md).
    #[arg(long, env = "MODELGATE_IMPORT_RESYNC_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86400))]
    import_resync_secs: u64,
    /// Watch only this namespace's approvals, deployments and policies;
    /// every namespace without it.
    #[arg(long, env = "MODELGATE_WATCH_NAMESPACE")]
    watch_namespace: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Crd { dir }) => print_crds(dir),
        Some(Command::StaticAdmission { from, dir }) => static_admission(from, &dir),
        None => run(cli.run),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("modelgate: {e}");
            ExitCode::FAILURE
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Caps glibc's malloc arenas at two. By default glibc grows one arena per
/// thread that allocates (up to eight per core), and each keeps the memory
/// it once held: a cold start over 10,000 approvals peaked about 6 MiB
/// higher with the default than with two. A MALLOC_ARENA_MAX in the
/// environment, which glibc has read already, wins.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)] // the workspace's one unsafe call, explained below
fn limit_malloc_arenas() {
    const MALLOC_ARENAS: libc::c_int = 2;
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only tunes the allocator and is called before the
        // runtime starts any other thread.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}

fn run(args: RunArgs) -> Result<(), BoxError> {
    limit_malloc_arenas();
    let filter =
        EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new("info,kube=warn"));
    match args.log_format {
        LogFormat::Text => tracing_subscriber::fmt().with_env_filter(filter).init(),
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_current_span(true)
            .with_env_filter(filter)
            .init(),
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let client = Client::try_default()
            .await
            .map_err(|e| format!("cannot reach the cluster: {e}"))?;
        check_crds(&client).await?;
        tracing::info!(version = env!("CARGO_PKG_VERSION"), "modelgate starting");
        let identity = args.instance.clone().unwrap_or_else(default_identity);
        let options = modelgate::operator::Options {
            instance: Some(identity.clone()),
            listen: Some(args.listen),
            concurrency: args.concurrency,
            records: Some(modelgate::records::key::KeyPlace {
                namespace: args.lease_namespace.clone(),
                secret: args.signing_key_secret.clone(),
                public: args.public_keys.clone(),
            }),
            registry: modelgate::artifact::registry::RegistryOptions {
                ca_files: args.registry_ca.clone(),
                auth_file: args.registry_auth.clone(),
            },
            import_resync: std::time::Duration::from_secs(args.import_resync_secs),
            scope: modelgate::runtime::Scope(args.watch_namespace.clone()),
            leader_election: args.leader_elect.then(|| {
                modelgate::runtime::leader::LeaderElection {
                    namespace: args.lease_namespace.clone(),
                    lease_name: args.lease_name.clone(),
                    identity,
                    duration_secs: args.lease_duration,
                    grace_secs: (args.lease_duration / 3).max(1),
                }
            }),
        };
        modelgate::operator::run(client, options, shutdown_signal()).await?;
        tracing::info!("modelgate stopped");
        Ok(())
    })
}

/// The host name, or a name unique to this process when there is none.
fn default_identity() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| format!("modelgate-{}", std::process::id()))
}

/// Fails early, with the fix, when the CRDs are not installed.
async fn check_crds(client: &Client) -> Result<(), BoxError> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in modelgate::crd::all() {
        let name = crd.metadata.name.unwrap_or_default();
        if crds.get_opt(&name).await?.is_none() {
            return Err(format!("CRD {name} is not installed: run `modelgate crd | kubectl apply -f -` (or install the Helm chart)").into());
        }
    }
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    tracing::info!("shutdown requested; finishing in-flight reconciles");
}

/// Writes the static admission manifests rendered from `from` (or stdin).
fn static_admission(from: Option<PathBuf>, dir: &std::path::Path) -> Result<(), BoxError> {
    let manifests = match from {
        Some(path) => std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
        None => std::io::read_to_string(std::io::stdin())?,
    };
    std::fs::create_dir_all(dir)?;
    for file in modelgate::static_admission::render(&manifests)? {
        std::fs::write(dir.join(&file.name), file.text)?;
        eprintln!("wrote {}", dir.join(&file.name).display());
    }
    Ok(())
}

fn print_crds(dir: Option<PathBuf>) -> Result<(), BoxError> {
    match dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir)?;
            for crd in modelgate::crd::all() {
                std::fs::write(
                    dir.join(modelgate::crd::file_name(&crd)),
                    modelgate::crd::to_yaml(&crd)?,
                )?;
            }
        }
        None => {
            // A closed pipe (`| head`) is a normal end, not a failure worth a panic.
            let yaml = modelgate::crd::all_to_yaml()?;
            let _ = std::io::stdout().lock().write_all(yaml.as_bytes());
        }
    }
    Ok(())
}
