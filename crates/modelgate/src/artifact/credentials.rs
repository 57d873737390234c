//! Registry credentials, read from a Docker config file (the key of a
//! `kubernetes.io/dockerconfigjson` Secret): a user name and password (or
//! its base64 `auth`) per registry host.

use std::collections::HashMap;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use oci_client::secrets::RegistryAuth;
use serde::Deserialize;

/// Credentials by registry host; anonymous for a host not listed.
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    by_host: HashMap<String, (String, String)>,
}

#[derive(Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: HashMap<String, Entry>,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    auth: Option<String>,
}

impl Credentials {
    /// Reads `file`; a file that cannot be read or parsed is an error that
    /// names it (never anonymous by accident).
    pub fn read(file: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read registry credentials {}: {e}", file.display()))?;
        Self::parse(&text).map_err(|e| format!("registry credentials {}: {e}", file.display()))
    }

    /// Parses a Docker config's JSON.
    pub fn parse(text: &str) -> Result<Self, String> {
        let config: DockerConfig =
            serde_json::from_str(text).map_err(|e| format!("not a Docker config: {e}"))?;
        let mut by_host = HashMap::new();
        for (host, entry) in config.auths {
            let pair = entry.pair().ok_or_else(|| {
                format!("the entry for {host} has neither username and password nor auth")
            })?;
            by_host.insert(host_of(&host).to_string(), pair);
        }
        Ok(Credentials { by_host })
    }

    /// The credentials for `host`.
    pub fn for_host(&self, host: &str) -> RegistryAuth {
        match self.by_host.get(host) {
            Some((user, password)) => RegistryAuth::Basic(user.clone(), password.clone()),
            None => RegistryAuth::Anonymous,
        }
    }
}

impl Entry {
    fn pair(self) -> Option<(String, String)> {
        if let (Some(u), Some(p)) = (self.username, self.password) {
            return Some((u, p));
        }
        let decoded = STANDARD.decode(self.auth?).ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (u, p) = text.split_once(':')?;
        Some((u.to_string(), p.to_string()))
    }
}

/// `https://registry.example.com/v1/` → `registry.example.com`, as Docker
/// configs may name a host as a URL.
fn host_of(key: &str) -> &str {
    let rest = key.split_once("://").map_or(key, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_docker_config_gives_each_host_its_credentials() {
        let auth = STANDARD.encode("robot:s3cret");
        let text = format!(
            r#"{{"auths": {{"https://registry.example.com/v1/": {{"auth": "{auth}"}},
                "127.0.0.1:5000": {{"username": "u", "password": "p"}}}}}}"#
        );
        let c = Credentials::parse(&text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            c.for_host("registry.example.com"),
            RegistryAuth::Basic("robot".into(), "s3cret".into())
        );
        assert_eq!(
            c.for_host("127.0.0.1:5000"),
            RegistryAuth::Basic("u".into(), "p".into())
        );
        assert_eq!(c.for_host("other.example.com"), RegistryAuth::Anonymous);
    }

    #[test]
    fn an_entry_without_credentials_is_refused_by_name() {
        let e = Credentials::parse(r#"{"auths": {"r.example.com": {}}}"#)
            .err()
            .unwrap_or_default();
        assert!(e.contains("r.example.com"), "{e}");
        assert!(Credentials::parse("not json").is_err());
    }
}
