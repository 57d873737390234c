//! The API server a signed-in person's calls go to: its address and the CA
//! that signs its certificate, and never any credential of the console's
//! own. Each person's client carries their ID token as its bearer and
//! nothing else, so the API server authenticates the person, RBAC and the
//! admission policies judge the person, and a console with no token of its
//! own has nothing to lose.

use std::path::PathBuf;

use kube::config::{
    AuthInfo, Cluster, Context, KubeConfigOptions, Kubeconfig, NamedAuthInfo, NamedCluster,
    NamedContext,
};
use kube::{Client, Config};

use crate::{CliError, Result, Session};

#[derive(Clone)]
pub struct ApiServer {
    cluster: Cluster,
}

impl ApiServer {
    /// `server` and `ca_file` when given; else the in-cluster service
    /// (its address from the environment a pod has); else the current
    /// kubeconfig context's cluster (its user is not read).
    pub fn find(server: Option<String>, ca_file: Option<PathBuf>) -> Result<ApiServer> {
        let in_cluster = || {
            let host = std::env::var("KUBERNETES_SERVICE_HOST").ok()?;
            let port = std::env::var("KUBERNETES_SERVICE_PORT").unwrap_or_else(|_| "443".into());
            // An IPv6 service address needs brackets in a URL.
            let host = if host.contains(':') {
                format!("[{host}]")
            } else {
                host
            };
            Some(format!("https://{host}:{port}"))
        };
        let mut cluster = match server.or_else(in_cluster) {
            Some(server) => Cluster {
                server: Some(server),
                ..Cluster::default()
            },
            None => kubeconfig_cluster()?,
        };
        if let Some(ca) = ca_file {
            cluster.certificate_authority = Some(ca.display().to_string());
            cluster.certificate_authority_data = None;
        }
        Ok(ApiServer { cluster })
    }

    pub fn server(&self) -> &str {
        self.cluster.server.as_deref().unwrap_or_default()
    }

    /// A session that calls the API server with `token` as its bearer.
    pub async fn session_for(&self, token: &str, namespace: &str) -> Result<Session> {
        let kubeconfig = Kubeconfig {
            clusters: vec![NamedCluster {
                name: "console".into(),
                cluster: Some(self.cluster.clone()),
                other: Default::default(),
            }],
            auth_infos: vec![NamedAuthInfo {
                name: "person".into(),
                auth_info: Some(AuthInfo {
                    token: Some(token.to_string().into()),
                    ..AuthInfo::default()
                }),
                other: Default::default(),
            }],
            contexts: vec![NamedContext {
                name: "person".into(),
                context: Some(Context {
                    cluster: "console".into(),
                    user: Some("person".into()),
                    namespace: Some(namespace.into()),
                    ..Context::default()
                }),
                other: Default::default(),
            }],
            current_context: Some("person".into()),
            ..Kubeconfig::default()
        };
        let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .map_err(|e| CliError::Connect(e.to_string()))?;
        let client = Client::try_from(config).map_err(|e| CliError::Connect(e.to_string()))?;
        Ok(Session {
            client,
            namespace: namespace.into(),
        })
    }
}

/// The current context's cluster in the kubeconfig.
fn kubeconfig_cluster() -> Result<Cluster> {
    let kubeconfig = Kubeconfig::read().map_err(|e| {
        CliError::Usage(format!(
            "no API server to call: give --api-server, run in a cluster, or have a kubeconfig ({e})"
        ))
    })?;
    let context = kubeconfig
        .current_context
        .as_deref()
        .and_then(|name| kubeconfig.contexts.iter().find(|c| c.name == name))
        .and_then(|c| c.context.as_ref())
        .ok_or_else(|| CliError::Usage("the kubeconfig has no current context".into()))?;
    kubeconfig
        .clusters
        .iter()
        .find(|c| c.name == context.cluster)
        .and_then(|c| c.cluster.clone())
        .ok_or_else(|| {
            CliError::Usage(format!(
                "the kubeconfig has no cluster named {}",
                context.cluster
            ))
        })
}
