//! The OpenID provider people sign in with, through the `openidconnect`
//! crate: its discovery document (read on first need, and read again after
//! a failure, so a provider that starts after the console is no reason to
//! crash), the authorization request with PKCE, and the code exchange whose
//! ID token is verified (signature, issuer, audience, expiry, nonce) before
//! anyone is let in.

use std::path::PathBuf;

use jiff::Timestamp;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet,
    EndpointSet, IssuerUrl, Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
    TokenResponse, reqwest,
};
use tokio::sync::OnceCell;

/// Why a sign-in did not go through; each is shown on the sign-in page.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    #[error("the sign-in provider {issuer} cannot be used: {detail}")]
    Provider { issuer: String, detail: String },
    #[error("the sign-in provider said no: {0}")]
    Denied(String),
    #[error("this sign-in has run out or was started in another browser window: start it again")]
    Stale,
    #[error("the sign-in provider's answer could not be verified: {0}")]
    Unverified(String),
    #[error(
        "the cluster did not accept your sign-in ({0}); its API server must trust this provider for this console's client id"
    )]
    NotTrusted(String),
    #[error("the console cannot start a sign-in: {0}")]
    Internal(String),
    /// Every place for a session is taken by other people's sessions;
    /// none of theirs is ended for a newcomer.
    #[error(
        "the console already holds all the sessions it may ({max}) and none of them is yours, so none was opened: try again in about {} (when the soonest ends), or ask the console's administrator to raise --max-sessions",
        minutes(*retry_after)
    )]
    Full {
        max: usize,
        retry_after: jiff::SignedDuration,
    },
}

impl SignInError {
    /// Seconds to wait before trying again, for a `Retry-After` header.
    pub fn retry_after(&self) -> Option<i64> {
        match self {
            SignInError::Full { retry_after, .. } => Some(retry_after.as_secs().max(1)),
            _ => None,
        }
    }
}

/// A wait as people say it: whole minutes, at least one.
fn minutes(wait: jiff::SignedDuration) -> String {
    match (wait.as_secs() + 59) / 60 {
        ..=1 => "a minute".into(),
        n => format!("{n} minutes"),
    }
}

/// The provider's settings, from the console's flags.
pub struct ProviderSettings {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Option<String>,
    /// Extra CA certificates (PEM) to trust for the provider.
    pub ca_file: Option<PathBuf>,
    pub scopes: Vec<String>,
    /// e.g. https://modelgate.example.com/callback
    pub redirect: String,
}

type Discovered = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

pub struct Provider {
    settings: ProviderSettings,
    http: reqwest::Client,
    discovered: OnceCell<Discovered>,
}

/// A sign-in under way: what the callback needs to finish it. It travels
/// in the browser's sign-in cookie, encrypted and authenticated with the
/// console's key, so the console holds nothing for a sign-in that anyone
/// may start.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct Started {
    /// The state sent to the provider, which must come back with the code.
    pub state: String,
    /// When it runs out (Unix seconds).
    pub until: i64,
    pub verifier: String,
    pub nonce: String,
    /// Where to go once signed in (a path of this console).
    pub next: String,
}

/// A verified ID token.
pub struct Verified {
    pub raw: String,
    pub expires: Timestamp,
}

impl Provider {
    pub fn new(settings: ProviderSettings) -> Result<Provider, SignInError> {
        // No redirects: the provider's endpoints answer directly, and
        // following one would let a provider's answer send the console
        // elsewhere (openidconnect's own advice).
        let mut http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
        if let Some(path) = &settings.ca_file {
            let pem = std::fs::read(path).map_err(|e| {
                SignInError::Internal(format!("cannot read {}: {e}", path.display()))
            })?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| SignInError::Internal(format!("{}: {e}", path.display())))?
            {
                http = http.add_root_certificate(cert);
            }
        }
        let http = http
            .build()
            .map_err(|e| SignInError::Internal(e.to_string()))?;
        Ok(Provider {
            settings,
            http,
            discovered: OnceCell::new(),
        })
    }

    pub fn issuer(&self) -> &str {
        &self.settings.issuer
    }

    fn failed(&self, detail: impl std::fmt::Display) -> SignInError {
        SignInError::Provider {
            issuer: self.settings.issuer.clone(),
            detail: detail.to_string(),
        }
    }

    async fn client(&self) -> Result<&Discovered, SignInError> {
        self.discovered
            .get_or_try_init(|| async {
                let issuer =
                    IssuerUrl::new(self.settings.issuer.clone()).map_err(|e| self.failed(e))?;
                let metadata = CoreProviderMetadata::discover_async(issuer, &self.http)
                    .await
                    .map_err(|e| self.failed(error_chain(&e)))?;
                let redirect =
                    RedirectUrl::new(self.settings.redirect.clone()).map_err(|e| self.failed(e))?;
                Ok(CoreClient::from_provider_metadata(
                    metadata,
                    ClientId::new(self.settings.client_id.clone()),
                    self.settings.client_secret.clone().map(ClientSecret::new),
                )
                .set_redirect_uri(redirect))
            })
            .await
    }

    /// The provider's address to send the browser to, and what the
    /// callback needs; the state goes in the browser's cookie.
    pub async fn start(&self, next: String, until: i64) -> Result<(String, Started), SignInError> {
        let client = self.client().await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for scope in self.settings.scopes.iter().filter(|s| *s != "openid") {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        let started = Started {
            state: state.secret().clone(),
            until,
            verifier: verifier.secret().clone(),
            nonce: nonce.secret().clone(),
            next,
        };
        Ok((url.to_string(), started))
    }

    /// Exchanges the code and verifies the ID token it brings.
    pub async fn finish(&self, code: String, started: &Started) -> Result<Verified, SignInError> {
        let client = self.client().await?;
        let response = client
            .exchange_code(AuthorizationCode::new(code))
            .map_err(|e| self.failed(e))?
            .set_pkce_verifier(PkceCodeVerifier::new(started.verifier.clone()))
            .request_async(&self.http)
            .await
            .map_err(|e| SignInError::Unverified(error_chain(&e)))?;
        let token = response.id_token().ok_or_else(|| {
            SignInError::Unverified("the provider sent no ID token (is `openid` a scope?)".into())
        })?;
        let nonce = Nonce::new(started.nonce.clone());
        let claims = token
            .claims(&client.id_token_verifier(), &nonce)
            .map_err(|e| SignInError::Unverified(e.to_string()))?;
        let expires = Timestamp::from_second(claims.expiration().timestamp())
            .map_err(|e| SignInError::Unverified(format!("its expiry: {e}")))?;
        Ok(Verified {
            raw: token.to_string(),
            expires,
        })
    }
}

/// An error with its causes, which is where reqwest and oauth2 keep the
/// part a person can act on (a refused certificate, a closed port).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
