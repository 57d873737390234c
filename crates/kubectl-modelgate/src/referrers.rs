//! `audit verify oci://REPO@DIGEST`: the signed records attached to a model
//! in its registry (see the operator's `fleet` module), read and checked
//! with the public keys alone: no cluster, no export.

use std::collections::BTreeMap;
use std::path::PathBuf;

use modelgate::artifact::registry::{Registry, RegistryOptions};
use modelgate::fleet::read;
use modelgate::records::envelope;
use modelgate::records::statement::Statement;
use oci_client::Reference;

use crate::{CliError, Result};

/// Where the records are: `oci://REPO@sha256:…`, and how to reach it.
pub struct Source {
    pub pinned: String,
    pub ca: Vec<PathBuf>,
    pub auth: Option<PathBuf>,
}

/// One attached record, checked.
pub struct Checked {
    pub referrer: String,
    pub statement: Option<Statement>,
    /// Why it does not verify, if it does not.
    pub problem: Option<String>,
}

/// `REPO@DIGEST` of an `oci://` source, if it is one.
pub fn pinned(source: &str) -> Option<&str> {
    source.strip_prefix("oci://")
}

/// Reads every record attached to `source` and checks each with the
/// public keys in `pem`.
pub async fn check(source: &Source, pem: &str) -> Result<Vec<Checked>> {
    let keys = envelope::public_keys(pem).map_err(|e| CliError::Usage(format!("the keys: {e}")))?;
    let options = RegistryOptions {
        ca_files: source.ca.clone(),
        auth_file: source.auth.clone(),
    };
    let registry = Registry::standalone(&options).map_err(CliError::Usage)?;
    let subject: Reference = source
        .pinned
        .parse()
        .map_err(|e| CliError::Usage(format!("oci://{}: {e}", source.pinned)))?;
    let digest = subject
        .digest()
        .ok_or_else(|| CliError::Usage("name the model by digest: oci://REPO@sha256:…".into()))?
        .to_string();
    let attached = read::attached(&registry, &subject)
        .await
        .map_err(CliError::Usage)?;
    let mut checked = Vec::new();
    for entry in attached {
        let problem_or = match read::envelope_at(&registry, &subject, &entry.digest).await {
            Ok(envelope) => read::judge(&envelope, &keys, &digest),
            Err(why) => Err(why.to_string()),
        };
        checked.push(match problem_or {
            Ok(statement) => Checked {
                referrer: entry.digest,
                statement: Some(statement),
                problem: None,
            },
            Err(why) => Checked {
                referrer: entry.digest,
                statement: None,
                problem: Some(why),
            },
        });
    }
    Ok(checked)
}

/// What was found: per approval, its newest record (the one that stands);
/// an error naming every record that does not verify.
pub fn summary(source: &Source, checked: &[Checked]) -> Result<String> {
    let bad: Vec<String> = checked
        .iter()
        .filter_map(|c| Some(format!("{}: {}", c.referrer, c.problem.as_ref()?)))
        .collect();
    if !bad.is_empty() {
        return Err(CliError::Unverified(format!(
            "{} of {} records attached to {} do not verify:\n{}",
            bad.len(),
            checked.len(),
            source.pinned,
            bad.join("\n")
        )));
    }
    let mut newest: BTreeMap<(String, String), &Statement> = BTreeMap::new();
    for s in checked.iter().filter_map(|c| c.statement.as_ref()) {
        let a = &s.predicate.approval;
        let key = (format!("{}/{}", a.namespace, a.name), a.uid.clone());
        let entry = newest.entry(key).or_insert(s);
        if s.predicate.seq > entry.predicate.seq {
            *entry = s;
        }
    }
    let mut out = format!(
        "verified {} records attached to {} ({} approvals); the newest of each stands:\n",
        checked.len(),
        source.pinned,
        newest.len()
    );
    for ((name, _), s) in &newest {
        let p = &s.predicate;
        out.push_str(&format!(
            "  {name}: {} at {} (seq {})\n",
            p.phase, p.time.0, p.seq
        ));
    }
    Ok(out)
}
