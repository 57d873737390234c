//! `measure NAME --metric name=value …`: a pipeline's measurements for the
//! automatic gates, written as the pipeline's own identity (the admission
//! policy lets only the identities the pinned rule names write them).

use clap::Args;
use jiff::Timestamp;
use kube::api::Api;

use super::bound::{self, Expect};
use super::review::whoami;
use super::{Result, Session};
use modelgate::api::approval::ModelApproval;
use modelgate::api::review::{MeasurementInput, measurement_manager, measurement_patch};

#[derive(Args)]
#[command(
    after_help = "Example (from the evaluation job, as its service account):\n  kubectl modelgate measure fraud-detector-2-4-0 --metric auc=0.94 --metric latency_p99_ms=41 \\\n      --source s3://evals/fraud-detector/2.4.0/report.json -n risk"
)]
pub struct MeasureArgs {
    /// The ModelApproval.
    pub name: String,
    /// A measurement as name=value (repeatable), e.g. auc=0.94; the rule reads it as m.auc.
    #[arg(long = "metric", required = true, value_parser = parse_metric)]
    pub metrics: Vec<(String, f64)>,
    /// Where the values come from, e.g. the evaluation report's URI.
    #[arg(long)]
    pub source: Option<String>,
    /// The digest of that report, e.g. sha256:….
    #[arg(long)]
    pub source_digest: Option<String>,
    /// The model digest that was evaluated: refused when the approval
    /// names another (the values are about those bytes).
    #[arg(long)]
    pub digest: Option<String>,
    /// The approval's uid that was evaluated: refused when it was deleted
    /// and re-created since.
    #[arg(long)]
    pub uid: Option<String>,
}

/// `name=value` with a finite number.
fn parse_metric(text: &str) -> std::result::Result<(String, f64), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not name=value, e.g. auc=0.94"))?;
    let value: f64 = value
        .trim()
        .parse()
        .map_err(|_| format!("{value:?} is not a number"))?;
    if !value.is_finite() {
        return Err(format!("{value} is not a finite number"));
    }
    Ok((name.trim().to_string(), value))
}

pub async fn run(session: &Session, args: MeasureArgs) -> Result<String> {
    let me = whoami(session).await?;
    let api: Api<ModelApproval> = Api::namespaced(session.client.clone(), &session.namespace);
    let what = format!(
        "ModelApproval {} in namespace {}",
        args.name, session.namespace
    );
    let mut out = String::new();
    // Every value is bound to the approval (uid and digest) given or first
    // read: the API server refuses it for an object that changed since.
    let mut expect = Expect {
        uid: args.uid.clone(),
        digest: args.digest.clone(),
    };
    // One apply per measurement, each under a manager of its own, so that a
    // later run with other metrics never removes these.
    for (name, value) in &args.metrics {
        let input = MeasurementInput {
            name,
            value: *value,
            source: args.source.as_deref(),
            source_digest: args.source_digest.as_deref(),
        };
        let (_, seen) = bound::apply_status(&api, &args.name, &what, &mut expect, |_| {
            let patch = measurement_patch(&args.name, &input, &me, Timestamp::now());
            Ok((patch, measurement_manager(name, &me)))
        })
        .await?;
        out.push_str(&format!(
            "{name} = {value} recorded on {}/{} (digest {}, uid {}) as {me}\n",
            session.namespace, args.name, seen.digest, seen.uid
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_name_equals_a_finite_number() {
        assert_eq!(parse_metric("auc=0.94"), Ok(("auc".into(), 0.94)));
        assert!(parse_metric("auc").is_err());
        assert!(parse_metric("auc=high").is_err());
        assert!(parse_metric("auc=NaN").is_err());
    }
}
