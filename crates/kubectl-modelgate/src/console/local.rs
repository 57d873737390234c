//! The local console's key: a secret only the person who started it has.
//! Host and Origin are headers any local process may set, so they keep
//! other web pages out but not other programs. As notebook servers do, the
//! console makes a random key at start and prints (and opens) its address
//! with `?token=KEY`; a request carrying the key gets it back as an
//! HttpOnly, SameSite=Strict cookie and is sent on to the address without
//! it, and every request with neither gets 401 and a page that holds no
//! CSRF token and no approval. Keys are compared in constant time.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use subtle::ConstantTimeEq;

use super::{Console, sessions};
use crate::{CliError, Result};

/// The key of one local console and the cookie that carries it.
pub struct LocalKey {
    key: String,
    cookie: String,
}

impl LocalKey {
    /// A fresh key for the console on `port`. The cookie's name holds the
    /// port: cookies do not tell ports apart, and several people's consoles
    /// may run on one machine.
    pub fn generate(port: u16) -> Result<LocalKey> {
        let key = sessions::random_id()
            .map_err(|e| CliError::Usage(format!("no randomness for the console's key: {e}")))?;
        Ok(LocalKey {
            key,
            cookie: format!("modelgate-console-{port}-key"),
        })
    }

    /// The address to print and open.
    pub fn url(&self, base: &str) -> String {
        format!("{base}?token={}", self.key)
    }

    fn matches(&self, given: &str) -> bool {
        given.as_bytes().ct_eq(self.key.as_bytes()).into()
    }
}

/// The value of `name` in a query string (keys are hex: no decoding).
fn query_value<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
}

/// The query without its token, for the address the browser goes on to.
fn without_token(path: &str, query: &str) -> String {
    let rest: Vec<&str> = query
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("token="))
        .collect();
    if rest.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", rest.join("&"))
    }
}

fn cookie_value<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    request
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(name)?.strip_prefix('='))
}

pub async fn check(State(c): State<Console>, request: Request, next: Next) -> Response {
    let Some(key) = c.local_key.as_deref() else {
        return next.run(request).await;
    };
    let query = request.uri().query().unwrap_or_default();
    if let Some(given) = query_value(query, "token") {
        if !key.matches(given) {
            return refused();
        }
        let to = without_token(request.uri().path(), query);
        let mut response = Redirect::to(&to).into_response();
        let cookie = format!(
            "{}={}; Path=/; HttpOnly; SameSite=Strict",
            key.cookie, key.key
        );
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().insert(header::SET_COOKIE, value);
        }
        return response;
    }
    let probe = request.uri().path() == "/healthz";
    if probe || cookie_value(&request, &key.cookie).is_some_and(|v| key.matches(v)) {
        return next.run(request).await;
    }
    refused()
}

/// 401 with a page that says where the key is, and nothing else.
fn refused() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Html(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Open the console's own address</title></head><body><h1>Open the console's own address</h1><p>This console answers only to the browser of the person who started it. Open the address it printed in the terminal where you ran <code>kubectl modelgate console</code> (it ends in <code>?token=…</code>).</p></body></html>",
        ),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_read_and_dropped_from_the_address() {
        assert_eq!(query_value("a=1&token=ab12", "token"), Some("ab12"));
        assert_eq!(query_value("xtoken=ab12", "token"), None);
        assert_eq!(
            without_token("/approvals/x", "token=ab&recorded=legal"),
            "/approvals/x?recorded=legal"
        );
        assert_eq!(without_token("/", "token=ab"), "/");
    }

    #[test]
    fn only_the_key_itself_matches() {
        let key = LocalKey::generate(1).expect("a key");
        assert!(key.matches(&key.key.clone()));
        assert!(!key.matches(""));
        assert!(!key.matches(&key.key[..10]));
        assert_ne!(LocalKey::generate(1).expect("another").key, key.key);
    }
}
