//! The auditor's page: one self-contained HTML file (styles inline, no
//! scripts, nothing fetched) with the verification result, the break-glass
//! releases first, and a timeline per approval, rendered with askama from
//! `templates/audit-report.html`.

mod breakglass;
#[cfg(test)]
pub(crate) mod fixtures;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use askama::Template;
use serde_json::Value;

use super::{CliError, Result};
use modelgate::records::statement::Statement;
use modelgate::records::verify::Report;

#[derive(Template)]
#[template(path = "audit-report.html")]
struct Page<'a> {
    bundle: &'a str,
    generated: String,
    ok: bool,
    records: usize,
    failures: Vec<String>,
    keys: &'a [String],
    releases: Vec<breakglass::Release>,
    approvals: Vec<ApprovalView>,
}

/// One approval: what it is about and what happened to it.
struct ApprovalView {
    namespace: String,
    name: String,
    uid: String,
    model: String,
    version: String,
    digest: String,
    phase: String,
    verified: bool,
    moments: Vec<Moment>,
}

/// One point on the timeline.
struct Moment {
    time: String,
    subject: String,
    change: String,
    actor: String,
    why: String,
    seq: String,
    hash: String,
    /// pass, fail, pending, phase or breakglass: the dot's colour.
    kind: &'static str,
    /// For a phase change: the bundle line of its signed record.
    record: Option<RecordMark>,
}

#[derive(Clone)]
struct RecordMark {
    line: usize,
    verified: bool,
}

/// One approval's newest statement, and the bundle line of each record by
/// its seq.
type Records<'a> = (&'a Statement, Vec<(i64, RecordMark)>);

/// The page for `report` of the bundle called `bundle`.
pub fn render(bundle: &str, report: &Report, keys: &[String]) -> Result<String> {
    // Per approval (by uid): its newest statement, and each record's line.
    let mut by_uid: BTreeMap<String, Records<'_>> = BTreeMap::new();
    for line in &report.lines {
        let Some(s) = &line.statement else { continue };
        let entry = by_uid
            .entry(s.predicate.approval.uid.clone())
            .or_insert((s, Vec::new()));
        if s.predicate.seq >= entry.0.predicate.seq {
            entry.0 = s;
        }
        entry.1.push((
            s.predicate.seq,
            RecordMark {
                line: line.line,
                verified: line.verified,
            },
        ));
    }
    let mut approvals: Vec<ApprovalView> = by_uid
        .into_values()
        .map(|(s, marks)| view(s, marks))
        .collect();
    approvals.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    let page = Page {
        bundle,
        generated: jiff::Timestamp::now()
            .strftime("%Y-%m-%d %H:%M:%S UTC")
            .to_string(),
        ok: report.ok(),
        records: report.lines.len(),
        failures: report.failures.iter().map(|f| f.to_string()).collect(),
        keys,
        releases: breakglass::releases(&report.lines),
        approvals,
    };
    page.render().map_err(|e| CliError::Render(e.to_string()))
}

fn view(s: &Statement, marks: Vec<(i64, RecordMark)>) -> ApprovalView {
    let p = &s.predicate;
    let mut marks: BTreeMap<i64, RecordMark> = marks.into_iter().collect();
    let verified = marks.values().all(|m| m.verified);
    let moments = p
        .history
        .iter()
        .map(|e| {
            let seq = e.get("seq").and_then(Value::as_i64);
            moment(e, seq.and_then(|s| marks.remove(&s)))
        })
        .collect();
    ApprovalView {
        namespace: p.approval.namespace.clone(),
        name: p.approval.name.clone(),
        uid: p.approval.uid.clone(),
        model: p.spec.model.name.clone(),
        version: p.spec.model.version.clone(),
        digest: p.spec.model.digest.clone(),
        phase: p.phase.clone(),
        verified,
        moments,
    }
}

fn text(e: &Value, key: &str) -> String {
    e.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn moment(e: &Value, record: Option<RecordMark>) -> Moment {
    let subject = text(e, "subject");
    let to = text(e, "to");
    let from = text(e, "from");
    let kind = match (subject.as_str(), to.as_str()) {
        ("Phase", "BreakGlass") => "breakglass",
        ("Phase", _) if from == "BreakGlass" => "breakglass",
        ("Phase", _) => "phase",
        (_, "True") => "pass",
        (_, "False") => "fail",
        _ => "pending",
    };
    let why = [text(e, "reason"), text(e, "message")]
        .into_iter()
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join(": ");
    Moment {
        time: text(e, "time").replace('T', " ").replace('Z', " UTC"),
        change: if from.is_empty() {
            to
        } else {
            format!("{from} → {to}")
        },
        subject,
        actor: e
            .get("reviewer")
            .and_then(Value::as_str)
            .unwrap_or("modelgate")
            .to_string(),
        why,
        seq: e
            .get("seq")
            .and_then(Value::as_i64)
            .map(|s| s.to_string())
            .unwrap_or_default(),
        hash: text(e, "hash").chars().take(12).collect(),
        kind,
        record,
    }
}
