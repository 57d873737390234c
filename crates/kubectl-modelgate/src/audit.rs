//! `audit export | verify | report`: the signed ApprovalRecords taken out of
//! the cluster as JSON Lines with the public keys, checked offline, and
//! rendered as one HTML page for an auditor.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams};

use super::{CliError, Result, Session};
use modelgate::api::record::{ApprovalRecord, Envelope, RecordCheckpoint};
use modelgate::records::envelope::{self, key_id};
use modelgate::records::key::{KeyPlace, public_keys_pem};
use modelgate::records::verify;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Write the signed records and each namespace's signed checkpoint as JSON Lines (one DSSE envelope a line) and the public keys beside them.
    #[command(
        after_help = "Examples:\n  kubectl modelgate audit export -n risk -o risk-audit.jsonl\n  kubectl modelgate audit export -A --approval fraud-detector-2-4-0"
    )]
    Export(ExportArgs),
    /// Check an exported bundle without a cluster: signatures, hash chains, digests, nothing missing or reordered, and against the signed checkpoint, no newest record removed.
    #[command(
        after_help = "Examples:\n  kubectl modelgate audit verify risk-audit.jsonl\n  kubectl modelgate audit verify fd.jsonl --approval fraud-detector-2-4-0\n  kubectl modelgate audit verify oci://registry.example.com/models/fraud-detector@sha256:0f3c… --keys modelgate.pub.pem"
    )]
    Verify(BundleArgs),
    /// Render an exported bundle as one self-contained HTML page with a timeline per approval.
    #[command(
        after_help = "Example:\n  kubectl modelgate audit report risk-audit.jsonl -o risk-audit.html"
    )]
    Report(ReportArgs),
}

#[derive(Args)]
pub struct ExportArgs {
    /// Records of every namespace.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Only the records of this approval.
    #[arg(long)]
    pub approval: Option<String>,
    /// The bundle to write; the public keys go beside it as <name>.pub.pem.
    #[arg(short = 'o', long, default_value = "modelgate-audit.jsonl")]
    pub out: PathBuf,
    /// The namespace modelgate is installed in (its ConfigMap holds the
    /// public keys). Found from the admission policy binding when not given.
    #[arg(long, env = "MODELGATE_NAMESPACE")]
    pub modelgate_namespace: Option<String>,
}

#[derive(Args)]
pub struct BundleArgs {
    /// The exported bundle (JSON Lines); for verify, also
    /// oci://REPO@sha256:… to check the records attached to a model in its
    /// registry (needs --keys).
    pub bundle: PathBuf,
    /// For oci://: a PEM file of CAs the registry's certificate may be
    /// signed by, besides the system's.
    #[arg(long)]
    pub registry_ca: Vec<PathBuf>,
    /// For oci://: a Docker config file with the registry's credentials
    /// (anonymous without).
    #[arg(long)]
    pub registry_auth: Option<PathBuf>,
    /// The public keys (PEM); default: the bundle's <name>.pub.pem. Compare
    /// their ids with the ones your platform team published.
    #[arg(long)]
    pub keys: Option<PathBuf>,
    /// The bundle was exported with --approval NAME: look for that
    /// approval's records only, not for every approval the checkpoint names.
    #[arg(long)]
    pub approval: Option<String>,
}

#[derive(Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub bundle: BundleArgs,
    /// The HTML page to write.
    #[arg(short = 'o', long, default_value = "modelgate-audit.html")]
    pub out: PathBuf,
}

/// Runs one audit subcommand. Verify and report need no cluster.
pub async fn run(global: &super::Global, command: AuditCommand) -> Result<String> {
    match command {
        AuditCommand::Export(args) => export(&global.session().await?, args).await,
        AuditCommand::Verify(args) => match oci_source(&args) {
            Some(source) => verify_attached(&args, &source).await,
            None => verify_bundle(&args),
        },
        AuditCommand::Report(args) => report(&args),
    }
}

/// Where the public keys of `bundle` are kept by default.
pub fn keys_beside(bundle: &Path) -> PathBuf {
    bundle.with_extension("pub.pem")
}

async fn export(session: &Session, args: ExportArgs) -> Result<String> {
    let records = records_to_export(session, &args).await?;
    let pem = public_keys(session, args.modelgate_namespace.as_deref()).await?;
    let checkpoints = checkpoints(session, args.all_namespaces).await?;
    let envelopes = records
        .iter()
        .map(|r| &r.spec.envelope)
        .chain(checkpoints.iter().map(|c| &c.spec.envelope));
    let lines = jsonl(envelopes)?;
    let key_path = keys_beside(&args.out);
    write(&args.out, &lines)?;
    write(&key_path, &pem)?;
    let approvals: BTreeSet<&str> = records
        .iter()
        .map(|r| r.spec.approval.uid.as_str())
        .collect();
    let scope = args
        .approval
        .as_ref()
        .map(|a| format!(" --approval {a}"))
        .unwrap_or_default();
    Ok(format!(
        "exported {} records of {} approvals and {} signed checkpoints to {}\npublic keys ({}) in {}\ncheck with: kubectl modelgate audit verify {}{scope}\n",
        records.len(),
        approvals.len(),
        checkpoints.len(),
        args.out.display(),
        pem.matches("BEGIN PUBLIC KEY").count(),
        key_path.display(),
        args.out.display(),
    ))
}

/// The records in scope, oldest first within each approval, as
/// verification expects.
async fn records_to_export(session: &Session, args: &ExportArgs) -> Result<Vec<ApprovalRecord>> {
    let api: Api<ApprovalRecord> = if args.all_namespaces {
        Api::all(session.client.clone())
    } else {
        Api::namespaced(session.client.clone(), &session.namespace)
    };
    let mut records: Vec<ApprovalRecord> = api
        .list(&ListParams::default())
        .await
        .map_err(|e| CliError::from_api(e, "approvalrecords"))?
        .items
        .into_iter()
        .filter(|r| {
            args.approval
                .as_ref()
                .is_none_or(|a| *a == r.spec.approval.name)
        })
        .collect();
    records.sort_by_cached_key(|r| {
        (
            r.metadata.namespace.clone(),
            r.spec.approval.name.clone(),
            r.spec.approval.uid.clone(),
            r.spec.seq,
        )
    });
    Ok(records)
}

/// The operator's public keys (PEM), published beside its signing key.
async fn public_keys(session: &Session, modelgate_namespace: Option<&str>) -> Result<String> {
    let namespace = super::authority::namespace(session, modelgate_namespace).await;
    let place = KeyPlace::in_namespace(&namespace);
    let keys = Api::<ConfigMap>::namespaced(session.client.clone(), &namespace)
        .get(&place.public)
        .await
        .map_err(|e| CliError::from_api(e, &format!("ConfigMap {namespace}/{}", place.public)))?;
    Ok(public_keys_pem(&keys))
}

/// One JSON envelope per line.
fn jsonl<'a>(envelopes: impl Iterator<Item = &'a Envelope>) -> Result<String> {
    let mut lines = String::new();
    for envelope in envelopes {
        lines.push_str(
            &serde_json::to_string(envelope).map_err(|e| CliError::Render(e.to_string()))?,
        );
        lines.push('\n');
    }
    Ok(lines)
}

/// The signed checkpoints of the namespace (or all): the newest record of
/// every approval, against which verify finds removed newest records.
async fn checkpoints(session: &Session, all: bool) -> Result<Vec<RecordCheckpoint>> {
    let api: Api<RecordCheckpoint> = if all {
        Api::all(session.client.clone())
    } else {
        Api::namespaced(session.client.clone(), &session.namespace)
    };
    let mut items = api
        .list(&ListParams::default())
        .await
        .map_err(|e| CliError::from_api(e, "recordcheckpoints"))?
        .items;
    items.sort_by(|a, b| a.metadata.namespace.cmp(&b.metadata.namespace));
    Ok(items)
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text)
        .map_err(|e| CliError::Usage(format!("cannot write {}: {e}", path.display())))
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path)
        .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", path.display())))
}

/// The bundle's text, its verification, and the ids of the keys used.
fn check(args: &BundleArgs) -> Result<(verify::Report, Vec<String>)> {
    let bundle = read(&args.bundle)?;
    let key_path = args
        .keys
        .clone()
        .unwrap_or_else(|| keys_beside(&args.bundle));
    let keys = envelope::public_keys(&read(&key_path)?)
        .map_err(|e| CliError::Usage(format!("{}: {e}", key_path.display())))?;
    let ids = keys.iter().map(key_id).collect();
    Ok((
        verify::verify_scoped(&bundle, &keys, args.approval.as_deref()),
        ids,
    ))
}

/// The model whose attached records `args` names, if it names one.
fn oci_source(args: &BundleArgs) -> Option<crate::referrers::Source> {
    let text = args.bundle.to_str()?;
    Some(crate::referrers::Source {
        pinned: crate::referrers::pinned(text)?.to_string(),
        ca: args.registry_ca.clone(),
        auth: args.registry_auth.clone(),
    })
}

/// Checks the records attached to a model in its registry.
async fn verify_attached(args: &BundleArgs, source: &crate::referrers::Source) -> Result<String> {
    let key_path = args.keys.as_ref().ok_or_else(|| {
        CliError::Usage(
            "checking oci://… needs --keys: the public keys your platform team published".into(),
        )
    })?;
    let checked = crate::referrers::check(source, &read(key_path)?).await?;
    if checked.is_empty() {
        return Err(CliError::Unverified(format!(
            "no records are attached to {}",
            source.pinned
        )));
    }
    crate::referrers::summary(source, &checked)
}

fn verify_bundle(args: &BundleArgs) -> Result<String> {
    let (report, ids) = check(args)?;
    let approvals: BTreeSet<&str> = report
        .lines
        .iter()
        .filter_map(|l| l.statement.as_ref())
        .map(|s| s.predicate.approval.uid.as_str())
        .collect();
    if report.ok() {
        let against: Vec<String> = report
            .checkpoints
            .iter()
            .filter_map(|c| c.checkpoint.as_ref())
            .map(|c| format!("{} of {}", c.namespace, c.time.0))
            .collect();
        return Ok(format!(
            "verified {} records of {} approvals in {}: signatures, hash chains and digests hold, none missing or out of order\nnone of the newest records missing, by the signed checkpoints: {}\nkeys: {}\n",
            report.lines.len(),
            approvals.len(),
            args.bundle.display(),
            against.join(", "),
            ids.join(", ")
        ));
    }
    let failures: Vec<String> = report.failures.iter().map(|f| f.to_string()).collect();
    Err(CliError::Unverified(format!(
        "{} does not verify ({} of {} records and {} of {} checkpoints fail their own checks):\n{}",
        args.bundle.display(),
        report.lines.iter().filter(|l| !l.verified).count(),
        report.lines.len(),
        report.checkpoints.iter().filter(|c| !c.verified).count(),
        report.checkpoints.len(),
        failures.join("\n")
    )))
}

fn report(args: &ReportArgs) -> Result<String> {
    let (report, ids) = check(&args.bundle)?;
    let name = args
        .bundle
        .bundle
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let page = super::report::render(&name, &report, &ids)?;
    write(&args.out, &page)?;
    Ok(format!(
        "wrote {} ({} records, {})\n",
        args.out.display(),
        report.lines.len(),
        if report.ok() {
            "all verified"
        } else {
            "verification FAILED: see the page"
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixtures;
    use modelgate::records::envelope::Signer;
    use modelgate::records::statement::record;

    /// A directory of this test's own under the system's temporary one.
    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("kubectl-modelgate-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        dir
    }

    fn args(bundle: &Path) -> BundleArgs {
        BundleArgs {
            bundle: bundle.to_path_buf(),
            keys: None,
            approval: None,
            registry_ca: Vec::new(),
            registry_auth: None,
        }
    }

    #[test]
    fn records_of_a_break_glass_verify_offline_and_a_changed_release_does_not() {
        let signer = Signer::generate().unwrap_or_else(|e| panic!("{e}"));
        let approvals = fixtures::three_approvals();
        let statements: Vec<_> = approvals.iter().flat_map(fixtures::statements).collect();
        // Into and out of BreakGlass, twice: four records carry the release.
        let carrying: Vec<_> = statements
            .iter()
            .filter(|s| s.predicate.break_glass.is_some())
            .collect();
        assert_eq!(carrying.len(), 4);
        let json = serde_json::to_value(carrying[0]).unwrap_or_default();
        assert_eq!(
            json["predicate"]["breakGlass"]["requestedBy"],
            "ines@example.com"
        );
        let dir = scratch("break-glass-verify");
        let bundle = dir.join("risk.jsonl");
        let text = fixtures::bundle(&signer, &approvals);
        write(&bundle, &text).unwrap_or_else(|e| panic!("{e}"));
        write(
            &keys_beside(&bundle),
            &signer.public_pem().unwrap_or_default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let out = verify_bundle(&args(&bundle)).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            out.starts_with("verified 5 records of 3 approvals"),
            "{out}"
        );

        // Line 2 (the ratified release begins) with another requester,
        // under the signature of what the operator signed.
        let mut forged = carrying[0].clone();
        if let Some(r) = forged.predicate.break_glass.as_mut() {
            r.requested_by = "mallory@example.com".into();
        }
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        let signed: Envelope = serde_json::from_str(&lines[1]).unwrap_or_else(|e| panic!("{e}"));
        let other = Signer::generate().unwrap_or_else(|e| panic!("{e}"));
        let payload = record(&forged, &other).unwrap_or_else(|e| panic!("{e}"));
        let changed = Envelope {
            payload: payload.spec.envelope.payload,
            ..signed
        };
        lines[1] = serde_json::to_string(&changed).unwrap_or_default();
        write(&bundle, &(lines.join("\n") + "\n")).unwrap_or_else(|e| panic!("{e}"));
        match verify_bundle(&args(&bundle)) {
            Err(CliError::Unverified(why)) => assert!(why.contains("line 2:"), "{why}"),
            other => panic!("a changed release verified: {other:?}"),
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
