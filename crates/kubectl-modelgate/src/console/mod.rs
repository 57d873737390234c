//! `console`: the reviewers' web console. Run by a reviewer, it serves
//! pages on 127.0.0.1 and makes every call with the caller's own kubeconfig
//! identity (the same [`Session`] as every other subcommand). Run in the
//! cluster with `--oidc-issuer`, it signs people in with OpenID Connect and
//! makes every call with the person's own ID token. Either way the API
//! server's RBAC and admission policies judge each decision exactly as they
//! judge `approve` and `reject`: the console holds no identity of its own.
//!
//! Rooms: `views` (pure: objects in, what a page shows out), `pages` (the
//! askama templates and their handlers), `decision` (the one POST, through
//! the plugin's own approve/reject), `guard` (Host, Origin and security
//! headers), `live` (a watch turned into server-sent events), `assets` (the
//! stylesheet and script, compiled into the binary), `person` (who a
//! request acts as), and for the cluster: `signin` (its pages and
//! callback), `oidc` (the provider), `sessions` (who is signed in),
//! `apiserver` (where people's calls go).

mod apiserver;
mod assets;
mod decision;
mod guard;
mod live;
mod local;
mod oidc;
mod pages;
mod person;
mod return_to;
mod sessions;
mod signin;
#[cfg(test)]
mod tests;
mod views;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::FromRef;
use axum::routing::{get, post};
use axum_csrf::{CsrfConfig, SameSite};
use clap::Args;
use jiff::SignedDuration;
use openidconnect::url::Url;

use super::{CliError, Global, Result};
use modelgate::api::gates::Gate;
use person::Person;

#[derive(Args)]
#[command(
    after_help = "Examples:\n  kubectl modelgate console -n risk --open\n  kubectl modelgate console -n risk --port 9000\n  # in the cluster (the Helm chart's console.enabled runs this):\n  kubectl-modelgate console -n risk --oidc-issuer https://sso.example.com --oidc-client-id modelgate-console --external-url https://modelgate.example.com"
)]
pub struct ConsoleArgs {
    /// The port to listen on, on 127.0.0.1 only (0: any free port).
    #[arg(long, default_value_t = 8437)]
    pub port: u16,
    /// Open the console in your web browser.
    #[arg(long)]
    pub open: bool,
    /// The namespace modelgate is installed in (its authority params name
    /// the reviewer groups). Found from the admission policy binding when
    /// not given.
    #[arg(long, env = "MODELGATE_NAMESPACE")]
    pub modelgate_namespace: Option<String>,
    /// The most pages one person may have following the cluster at once
    /// (each is a watch of their own; across all their sessions). Past it,
    /// a page is told 429 and shows changes when reloaded.
    #[arg(long, default_value_t = live::MAX_LIVE_PAGES, value_parser = parse_limit)]
    pub max_live_pages: usize,
    #[command(flatten)]
    pub sign_in: SignInArgs,
}

/// How the console runs in the cluster: people sign in, and it acts as
/// each of them with their own ID token.
#[derive(Args, Clone)]
#[command(next_help_heading = "Signing people in (the console in the cluster)")]
pub struct SignInArgs {
    /// The OpenID provider people sign in with (its issuer URL). With it,
    /// no kubeconfig identity is used: every call carries the signed-in
    /// person's ID token, which the API server must trust.
    #[arg(long)]
    pub oidc_issuer: Option<String>,
    /// The console's client id at the provider (the token's audience).
    #[arg(long, default_value = "modelgate-console")]
    pub oidc_client_id: String,
    /// The console's client secret (none: a public client, PKCE alone).
    #[arg(long, env = "MODELGATE_CONSOLE_CLIENT_SECRET", hide_env_values = true)]
    pub oidc_client_secret: Option<String>,
    /// A file holding the client secret (the chart mounts its Secret there).
    #[arg(
        long,
        env = "MODELGATE_CONSOLE_CLIENT_SECRET_FILE",
        conflicts_with = "oidc_client_secret"
    )]
    pub oidc_client_secret_file: Option<PathBuf>,
    /// CA certificates (PEM) to trust for the provider, besides the usual roots.
    #[arg(long)]
    pub oidc_ca_file: Option<PathBuf>,
    /// The scopes to ask for; the groups must reach the ID token.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "openid,profile,email,groups"
    )]
    pub oidc_scopes: Vec<String>,
    /// The address people open, e.g. https://modelgate.example.com: the
    /// provider sends them back to its /callback, and only forms from it
    /// are taken.
    #[arg(long, env = "MODELGATE_CONSOLE_URL")]
    pub external_url: Option<Url>,
    /// Where to listen when signing people in.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// The API server to call with people's tokens (default: the in-cluster
    /// service, else the kubeconfig's cluster; never its credentials).
    #[arg(long)]
    pub api_server: Option<String>,
    /// The CA (PEM) of the API server's certificate.
    #[arg(long)]
    pub api_ca_file: Option<PathBuf>,
    /// The longest a session lasts; it ends sooner when the ID token does.
    #[arg(long, default_value = "8h", value_parser = parse_duration)]
    pub session_max: SignedDuration,
    /// The most sessions held at once (each about 47 KiB). When all are
    /// taken, a person who holds none is refused (503) until one ends; no
    /// one's session is ended for another.
    #[arg(long, default_value_t = sessions::MAX_SESSIONS, value_parser = parse_limit)]
    pub max_sessions: usize,
    /// The most sessions one person holds at once: signing in again beyond
    /// it ends that person's own oldest session.
    #[arg(long, default_value_t = sessions::MAX_SESSIONS_PER_PERSON, value_parser = parse_limit)]
    pub max_sessions_per_person: usize,
    /// A gate's reviewer group, as GATE=GROUP (repeatable; the chart passes
    /// its reviewerGroups). Gates not named keep the default group.
    #[arg(long = "reviewer-group", value_parser = parse_gate_group)]
    pub reviewer_groups: Vec<(Gate, String)>,
}

fn parse_duration(text: &str) -> Result<SignedDuration, String> {
    match text.parse::<SignedDuration>() {
        Ok(d) if d.is_positive() && d <= SignedDuration::from_hours(24 * 7) => Ok(d),
        Ok(_) => Err("give a length of time above zero and at most a week, e.g. 8h".into()),
        Err(e) => Err(format!("{e} (e.g. 8h or 30m)")),
    }
}

fn parse_limit(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("{text:?}: give a whole number, at least 1")),
    }
}

fn parse_gate_group(text: &str) -> Result<(Gate, String), String> {
    let (gate, group) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: give GATE=GROUP, e.g. legal=corp:legal-reviewers"))?;
    let gate: Gate = gate.parse().map_err(|e| format!("{e}"))?;
    if group.is_empty() {
        return Err(format!("{text:?}: the group is empty"));
    }
    Ok((gate, group.to_string()))
}

/// Who the console's requests act as.
#[derive(Clone)]
enum People {
    /// The one person who ran it.
    Local(Person),
    /// Whoever signed in.
    SignedIn(Arc<signin::SignIn>),
}

/// What every handler is handed.
#[derive(Clone)]
struct Console {
    people: People,
    /// The reviewer group of each gate.
    groups: Arc<Vec<(Gate, String)>>,
    csrf: CsrfConfig,
    /// The only host and origin requests and forms may come from.
    origin: Arc<guard::Origins>,
    /// Run locally: the key only the person who started it has.
    local_key: Option<Arc<local::LocalKey>>,
    /// Each person's pages that follow the cluster.
    live: Arc<live::LivePages>,
}

impl Console {
    fn sign_in(&self) -> Option<&signin::SignIn> {
        match &self.people {
            People::SignedIn(s) => Some(s),
            People::Local(_) => None,
        }
    }
}

impl FromRef<Console> for CsrfConfig {
    fn from_ref(console: &Console) -> CsrfConfig {
        console.csrf.clone()
    }
}

pub async fn run(global: &Global, args: ConsoleArgs) -> Result<String> {
    if args.sign_in.oidc_issuer.is_some() {
        return run_signing_in(global, args.sign_in, args.max_live_pages).await;
    }
    let session = global.session().await?;
    let me = views::me(&super::review::user_info(&session).await?);
    let authority =
        super::authority::namespace(&session, args.modelgate_namespace.as_deref()).await;
    let groups = super::authority::groups(&session, &authority).await;
    let listener = listen(SocketAddr::from((Ipv4Addr::LOCALHOST, args.port))).await?;
    let port = local_port(&listener)?;
    let person = Person::new(session, me, None, sessions::Ended::never());
    let key = local::LocalKey::generate(port)?;
    let url = key.url(&format!("http://127.0.0.1:{port}/"));
    let said = format!(
        "modelgate console for {} in namespace {}: open the address above in your browser (it holds the console's key: keep it to yourself); Ctrl-C stops it.",
        person.me.user, person.session.namespace
    );
    let console = Console {
        people: People::Local(person),
        groups: Arc::new(groups),
        // One CSRF cookie per console: several consoles (one per person,
        // as the tests run them) on one machine share the host 127.0.0.1,
        // and cookies do not tell ports apart.
        csrf: csrf_config(&format!("modelgate-console-{port}"), false),
        origin: Arc::new(guard::Origins::loopback(port)),
        local_key: Some(Arc::new(key)),
        live: Arc::new(live::LivePages::new(args.max_live_pages)),
    };
    announce(&url, &said, args.open);
    serve(listener, console).await
}

/// The console in the cluster: people sign in with the provider.
async fn run_signing_in(global: &Global, args: SignInArgs, live_pages: usize) -> Result<String> {
    let issuer = args.oidc_issuer.clone().unwrap_or_default();
    let listener = listen(args.listen).await?;
    let external = match &args.external_url {
        Some(url) => url.clone(),
        None => Url::parse(&format!("http://127.0.0.1:{}/", local_port(&listener)?))
            .map_err(|e| CliError::Usage(e.to_string()))?,
    };
    refuse_plain_http(&external)?;
    let origin = guard::Origins::of_url(&external)
        .ok_or_else(|| CliError::Usage(format!("--external-url {external}: it needs a host")))?;
    let redirect = external
        .join("callback")
        .map_err(|e| CliError::Usage(format!("--external-url {external}: {e}")))?;
    let provider = oidc::Provider::new(oidc::ProviderSettings {
        issuer: issuer.clone(),
        client_id: args.oidc_client_id.clone(),
        client_secret: client_secret(&args)?,
        ca_file: args.oidc_ca_file.clone(),
        scopes: args.oidc_scopes.clone(),
        redirect: redirect.to_string(),
    })
    .map_err(|e| CliError::Usage(e.to_string()))?;
    let api = apiserver::ApiServer::find(args.api_server.clone(), args.api_ca_file.clone())?;
    let namespace = global.namespace.clone().unwrap_or_else(|| "default".into());
    let secure = external.scheme() == "https";
    let said = format!(
        "modelgate console for namespace {namespace}: people sign in with {issuer} and act as themselves on {}; Ctrl-C stops it.",
        api.server()
    );
    let sign_in = signin::SignIn {
        provider,
        api,
        namespace,
        session_max: args.session_max,
        secure,
        key: cookie::Key::generate(),
        sessions: sessions::Sessions::new(sessions::Limits {
            sessions: args.max_sessions,
            per_person: args.max_sessions_per_person,
        }),
    };
    let console = Console {
        people: People::SignedIn(Arc::new(sign_in)),
        groups: Arc::new(reviewer_groups(&args.reviewer_groups)),
        csrf: csrf_config("modelgate-console-csrf", secure),
        origin: Arc::new(origin),
        local_key: None,
        live: Arc::new(live::LivePages::new(live_pages)),
    };
    announce(external.as_str(), &said, false);
    serve(listener, console).await
}

/// The client secret, given or read from its file (without the newline an
/// editor leaves at the end).
fn client_secret(args: &SignInArgs) -> Result<Option<String>> {
    let Some(path) = &args.oidc_client_secret_file else {
        return Ok(args.oidc_client_secret.clone());
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        CliError::Usage(format!(
            "cannot read the client secret from {}: {e}",
            path.display()
        ))
    })?;
    Ok(Some(text.trim_end_matches(['\r', '\n']).to_string()))
}

/// Over plain http, the session cookie and every page cross the network in
/// the clear: only a loopback address (a port-forward) may use it.
fn refuse_plain_http(external: &Url) -> Result<()> {
    let loopback = matches!(
        external.host_str(),
        Some("127.0.0.1" | "localhost" | "[::1]")
    );
    if external.scheme() == "https" || (external.scheme() == "http" && loopback) {
        return Ok(());
    }
    Err(CliError::Usage(format!(
        "--external-url {external}: people's sessions would cross the network in the clear; give an https address (plain http only on 127.0.0.1 or localhost, as with a port-forward)"
    )))
}

/// Every gate's group: the one given last, else the default.
fn reviewer_groups(given: &[(Gate, String)]) -> Vec<(Gate, String)> {
    super::authority::groups_or_defaults(|gate| {
        given
            .iter()
            .rev()
            .find(|(g, _)| *g == gate)
            .map(|(_, group)| group.clone())
    })
}

async fn listen(address: SocketAddr) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(address)
        .await
        .map_err(|e| CliError::Usage(format!("cannot listen on {address}: {e}")))
}

fn local_port(listener: &tokio::net::TcpListener) -> Result<u16> {
    Ok(listener
        .local_addr()
        .map_err(|e| CliError::Usage(e.to_string()))?
        .port())
}

async fn serve(listener: tokio::net::TcpListener, console: Console) -> Result<String> {
    axum::serve(listener, router(console))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| CliError::Connect(e.to_string()))?;
    Ok("console stopped\n".into())
}

fn csrf_config(cookie: &str, secure: bool) -> CsrfConfig {
    CsrfConfig::default()
        .with_cookie_name(cookie)
        .with_cookie_same_site(SameSite::Strict)
        .with_http_only(true)
        .with_secure(secure)
}

/// Says where the console is (on stdout, first line: scripts read it).
fn announce(url: &str, said: &str, open: bool) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{url}\n{said}");
    let _ = out.flush();
    if open && let Err(e) = webbrowser::open(url) {
        eprintln!("could not open a browser ({e}): open {url} yourself");
    }
}

fn router(console: Console) -> Router {
    let mut routes = Router::new();
    if console.sign_in().is_some() {
        routes = routes
            .route("/signin", get(signin::sign_in_page))
            .route("/signin/start", get(signin::start))
            .route("/callback", get(signin::callback))
            .route("/signout", post(signin::sign_out));
    }
    routes
        .route("/", get(pages::inbox))
        .route("/approvals/{name}", get(pages::approval))
        .route("/approvals/{name}/gates/{gate}", post(decision::decide))
        .route("/deployments", get(pages::deployments))
        .route("/events", get(live::events))
        .route("/assets/{file}", get(assets::serve))
        .route("/healthz", get(|| async { "ok" }))
        // Inside the guard, so that a refusal carries its headers too.
        .layer(axum::middleware::from_fn_with_state(
            console.clone(),
            local::check,
        ))
        .layer(axum::middleware::from_fn_with_state(
            console.clone(),
            guard::check,
        ))
        .with_state(console)
}
