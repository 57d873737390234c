//! `console`: the reviewers' web console, local mode. It serves pages on
//! 127.0.0.1 and makes every call with the caller's own kubeconfig identity
//! (the same [`Session`] as every other subcommand), so the API server's
//! RBAC and admission policies judge each decision exactly as they judge
//! `approve` and `reject`. The console holds no identity of its own.
//!
//! Rooms: `views` (pure: objects in, what a page shows out), `pages` (the
//! askama templates and their handlers), `decide` (the one POST, through
//! the plugin's own approve/reject), `guard` (Host, Origin and security
//! headers), `live` (a watch turned into server-sent events), `assets` (the
//! stylesheet and script, compiled into the binary).

mod assets;
mod decide;
mod guard;
mod live;
mod pages;
mod views;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::extract::FromRef;
use axum::routing::{get, post};
use axum_csrf::{CsrfConfig, SameSite};
use clap::Args;
use tokio::sync::broadcast;

use super::{CliError, Result, Session};
use crate::api::Gate;
use views::Me;

#[derive(Args)]
#[command(
    after_help = "Examples:\n  kubectl modelgate console -n risk --open\n  kubectl modelgate console -n risk --port 9000"
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
}

/// What every handler is handed: the person's session and who they are.
#[derive(Clone)]
struct Console {
    session: Arc<Session>,
    me: Arc<Me>,
    /// The reviewer group of each gate, from the authority params.
    groups: Arc<Vec<(Gate, String)>>,
    csrf: CsrfConfig,
    changes: broadcast::Sender<live::Change>,
    /// The only origin forms may come from, e.g. http://127.0.0.1:8437.
    origin: Arc<guard::Origins>,
}

impl FromRef<Console> for CsrfConfig {
    fn from_ref(console: &Console) -> CsrfConfig {
        console.csrf.clone()
    }
}

pub async fn run(session: Session, args: ConsoleArgs) -> Result<String> {
    let me = views::me(&super::review::user_info(&session).await?);
    let authority =
        super::why::authority_namespace(&session, args.modelgate_namespace.as_deref()).await;
    let groups = super::why::groups(&session, &authority).await;
    let listener =
        tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, args.port)))
            .await
            .map_err(|e| {
                CliError::Usage(format!("cannot listen on 127.0.0.1:{}: {e}", args.port))
            })?;
    let port = listener
        .local_addr()
        .map_err(|e| CliError::Usage(e.to_string()))?
        .port();
    let session = Arc::new(session);
    let (changes, _) = broadcast::channel(64);
    live::spawn_watches(&session, changes.clone());
    let console = Console {
        csrf: csrf_config(port),
        me: Arc::new(me),
        groups: Arc::new(groups),
        changes,
        origin: Arc::new(guard::Origins::loopback(port)),
        session,
    };
    announce(&console, port, args.open);
    axum::serve(listener, router(console))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| CliError::Connect(e.to_string()))?;
    Ok("console stopped\n".into())
}

/// One CSRF cookie per console: several consoles (one per person, as the
/// tests run them) on one machine share the host 127.0.0.1, and cookies do
/// not tell ports apart.
fn csrf_config(port: u16) -> CsrfConfig {
    CsrfConfig::default()
        .with_cookie_name(&format!("modelgate-console-{port}"))
        .with_cookie_same_site(SameSite::Strict)
        .with_http_only(true)
}

/// Says where the console is (on stdout, first line: scripts read it).
fn announce(console: &Console, port: u16, open: bool) {
    use std::io::Write;
    let url = format!("http://127.0.0.1:{port}/");
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{url}\nmodelgate console for {} in namespace {}: open {url} in your browser; Ctrl-C stops it.",
        console.me.user, console.session.namespace
    );
    let _ = out.flush();
    if open && let Err(e) = webbrowser::open(&url) {
        eprintln!("could not open a browser ({e}): open {url} yourself");
    }
}

fn router(console: Console) -> Router {
    Router::new()
        .route("/", get(pages::inbox))
        .route("/approvals/{name}", get(pages::approval))
        .route("/approvals/{name}/gates/{gate}", post(decide::decide))
        .route("/deployments", get(pages::deployments))
        .route("/events", get(live::events))
        .route("/assets/{file}", get(assets::serve))
        .layer(axum::middleware::from_fn_with_state(
            console.clone(),
            guard::check,
        ))
        .with_state(console)
}
