//! Offline verification of an exported bundle: JSON Lines, one DSSE
//! envelope a line, checked against the public keys alone (no cluster).
//!
//! Each line: the signature (with the key its id names), the payload is a
//! modelgate Statement, its subject is the approved model's digest, and the
//! history it carries holds its hash chain up to the phase change. Across
//! lines, per approval: records come oldest first, none is missing between
//! two (each names the seq of the one before), and where two records carry
//! the same history entry it is the same entry.
//!
//! A line may also be a namespace's signed checkpoint (its own payload
//! type): the newest seq and head of every approval there. Against it, an
//! approval whose newest records are missing from the bundle is named; a
//! namespace whose records come without a checkpoint is a failure, since
//! nothing then shows whether its newest records were removed.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::VerifyingKey;
use serde_json::Value;

use super::chain;
use super::checkpoint::{self, Checkpoint};
use super::envelope::{PAYLOAD_TYPE, open};
use super::statement::{PREDICATE_TYPE, STATEMENT_TYPE, Statement};
use crate::api::record::Envelope;

/// One line that does not verify, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// 1-based, as editors count.
    pub line: usize,
    pub reason: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            // Of the bundle as a whole.
            0 => write!(f, "{}", self.reason),
            line => write!(f, "line {line}: {}", self.reason),
        }
    }
}

/// A checkpoint line as read: the checkpoint when its payload could be
/// read, and whether its signature verified.
#[derive(Clone, Debug)]
pub struct CheckpointLine {
    pub line: usize,
    pub checkpoint: Option<Checkpoint>,
    pub verified: bool,
}

/// One line as read: its statement when the payload could be read at all,
/// and whether it verified.
#[derive(Clone, Debug)]
pub struct Line {
    pub line: usize,
    pub statement: Option<Statement>,
    pub verified: bool,
}

/// The outcome for a whole bundle.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub lines: Vec<Line>,
    pub checkpoints: Vec<CheckpointLine>,
    pub failures: Vec<Failure>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.failures.is_empty() && !self.lines.is_empty()
    }
}

/// What the bundle has shown so far of one approval.
#[derive(Default)]
struct Seen {
    last_seq: Option<i64>,
    last_line: usize,
    /// History seq → (hash, the line it was first seen on).
    entries: HashMap<i64, (String, usize)>,
}

/// Verifies every line of `bundle` with `keys`.
pub fn verify(bundle: &str, keys: &[VerifyingKey]) -> Report {
    verify_scoped(bundle, keys, None)
}

/// Verifies `bundle`; with `approval`, the bundle is an export of that
/// approval's records only, and the checkpoint's other approvals are not
/// looked for.
pub fn verify_scoped(bundle: &str, keys: &[VerifyingKey], approval: Option<&str>) -> Report {
    let mut report = Report::default();
    let mut approvals: HashMap<String, Seen> = HashMap::new();
    for (index, text) in bundle.lines().enumerate() {
        if text.trim().is_empty() {
            continue;
        }
        let line = index + 1;
        if let Some(read) = checkpoint_line(text, line, keys, &mut report.failures) {
            report.checkpoints.push(read);
            continue;
        }
        let mut reasons = Vec::new();
        let statement = check_line(text, keys, &mut reasons);
        if let Some(s) = &statement {
            let seen = approvals
                .entry(s.predicate.approval.uid.clone())
                .or_default();
            follow(seen, s, line, &mut reasons);
        }
        report.lines.push(Line {
            line,
            statement,
            verified: reasons.is_empty(),
        });
        report
            .failures
            .extend(reasons.into_iter().map(|reason| Failure { line, reason }));
    }
    if report.lines.is_empty() {
        report.failures.push(Failure {
            line: 0,
            reason: "the bundle holds no records".into(),
        });
    }
    let missing = heads(&report, approval);
    report.failures.extend(missing);
    report
}

/// The line as a checkpoint, when it is one (by its payload type); a
/// failure for each thing wrong with it.
fn checkpoint_line(
    text: &str,
    line: usize,
    keys: &[VerifyingKey],
    failures: &mut Vec<Failure>,
) -> Option<CheckpointLine> {
    let envelope: Envelope = serde_json::from_str(text).ok()?;
    if envelope.payload_type != checkpoint::PAYLOAD_TYPE {
        return None;
    }
    let (checkpoint, verified) = match Checkpoint::open(&envelope, keys) {
        Ok(c) => (Some(c), true),
        Err(e) => {
            let claimed = Checkpoint::read_unverified(&envelope);
            let of = claimed
                .as_ref()
                .map(|c| format!(" of namespace {}", c.namespace))
                .unwrap_or_default();
            failures.push(Failure {
                line,
                reason: format!("the checkpoint{of} does not verify: {e}"),
            });
            (claimed, false)
        }
    };
    Some(CheckpointLine {
        line,
        checkpoint,
        verified,
    })
}

/// Each approval whose newest records the bundle lacks, by the newest
/// verified checkpoint of its namespace; each namespace with records and no
/// such checkpoint.
fn heads(report: &Report, approval: Option<&str>) -> Vec<Failure> {
    let mut newest: HashMap<&str, &Statement> = HashMap::new();
    for s in report.lines.iter().filter_map(|l| l.statement.as_ref()) {
        let uid = s.predicate.approval.uid.as_str();
        if newest
            .get(uid)
            .is_none_or(|n| n.predicate.seq < s.predicate.seq)
        {
            newest.insert(uid, s);
        }
    }
    let mut latest: HashMap<&str, (&Checkpoint, usize)> = HashMap::new();
    for c in report.checkpoints.iter().filter(|c| c.verified) {
        let Some(cp) = &c.checkpoint else { continue };
        if latest
            .get(cp.namespace.as_str())
            .is_none_or(|(l, _)| l.time.0 < cp.time.0)
        {
            latest.insert(&cp.namespace, (cp, c.line));
        }
    }
    let mut failures = Vec::new();
    let mut namespaces: Vec<&str> = newest
        .values()
        .map(|s| s.predicate.approval.namespace.as_str())
        .filter(|ns| !latest.contains_key(ns))
        .collect();
    namespaces.sort();
    namespaces.dedup();
    failures.extend(namespaces.into_iter().map(|ns| Failure {
        line: 0,
        reason: format!(
            "the bundle has no verified checkpoint of namespace {ns}: whether the newest records of its approvals were removed cannot be told"
        ),
    }));
    let mut checked: Vec<_> = latest.into_values().collect();
    checked.sort_by_key(|(_, line)| *line);
    for (cp, line) in checked {
        let named = cp
            .approvals
            .iter()
            .filter(|h| approval.is_none_or(|a| a == h.name));
        for head in named {
            if let Some(reason) = behind(cp, head, newest.get(head.uid.as_str()).copied()) {
                failures.push(Failure { line, reason });
            }
        }
    }
    failures
}

/// What is missing of `head`'s approval, given its newest record in the
/// bundle.
fn behind(cp: &Checkpoint, head: &checkpoint::Head, newest: Option<&Statement>) -> Option<String> {
    let who = format!("approval {}/{}", cp.namespace, head.name);
    let names = format!("the checkpoint of {} names seq {}", cp.time.0, head.seq);
    match newest.map(|s| &s.predicate) {
        None => Some(format!(
            "{who}: none of its records are in the bundle; {names}"
        )),
        Some(p) if p.seq < head.seq => Some(format!(
            "{who}: records after seq {} are missing; {names}",
            p.seq
        )),
        Some(p) if p.seq == head.seq && p.history_head != head.head => Some(format!(
            "{who}: its record of seq {} is not the one {names}: the record was replaced",
            p.seq
        )),
        Some(_) => None,
    }
}

/// The checks of one line on its own; the statement when it can be read.
fn check_line(text: &str, keys: &[VerifyingKey], reasons: &mut Vec<String>) -> Option<Statement> {
    let envelope: Envelope = match serde_json::from_str(text) {
        Ok(e) => e,
        Err(e) => {
            reasons.push(format!("not a DSSE envelope: {e}"));
            return None;
        }
    };
    if envelope.payload_type != PAYLOAD_TYPE {
        reasons.push(format!(
            "payload type {:?} is not {PAYLOAD_TYPE}",
            envelope.payload_type
        ));
    }
    if let Err(e) = open(&envelope, keys) {
        reasons.push(e.to_string());
    }
    // Read on even when the signature fails, to say what else is wrong.
    let payload = STANDARD.decode(&envelope.payload).ok()?;
    let statement: Statement = match serde_json::from_slice(&payload) {
        Ok(s) => s,
        Err(e) => {
            reasons.push(format!(
                "the payload is not a modelgate in-toto Statement: {e}"
            ));
            return None;
        }
    };
    check_statement(&statement, reasons);
    Some(statement)
}

/// Type, subject digest and hash chain of one statement.
fn check_statement(s: &Statement, reasons: &mut Vec<String>) {
    if s.type_ != STATEMENT_TYPE || s.predicate_type != PREDICATE_TYPE {
        reasons.push(format!(
            "statement type {} / predicate type {} is not {STATEMENT_TYPE} / {PREDICATE_TYPE}",
            s.type_, s.predicate_type
        ));
    }
    let model = &s.predicate.spec.model;
    let approved = model.digest.split_once(':');
    let named = s.subject.iter().any(|subject| {
        subject.name == model.name
            && approved
                .is_some_and(|(alg, hex)| subject.digest.get(alg).map(String::as_str) == Some(hex))
    });
    if !named {
        reasons.push(format!(
            "the statement's subject is not the approved model {} with digest {}",
            model.name, model.digest
        ));
    }
    let p = &s.predicate;
    if let Err(e) = chain::verify(&p.history, p.history_base.as_deref(), Some(&p.history_head)) {
        reasons.push(e.to_string());
    }
    let newest = p
        .history
        .last()
        .and_then(|e| e.get("seq"))
        .and_then(Value::as_i64);
    if newest != Some(p.seq) {
        reasons.push(format!(
            "the record is for seq {} but its history ends at {}",
            p.seq,
            newest
                .map(|s| s.to_string())
                .unwrap_or_else(|| "no seq".into())
        ));
    }
}

/// The checks across the records of one approval.
fn follow(seen: &mut Seen, s: &Statement, line: usize, reasons: &mut Vec<String>) {
    let p = &s.predicate;
    let who = format!("{}/{}", p.approval.namespace, p.approval.name);
    match (seen.last_seq, p.previous_record) {
        (Some(last), _) if p.seq <= last => reasons.push(format!(
            "record seq {} of {who} comes after seq {last} (line {}): records were reordered or repeated",
            p.seq, seen.last_line
        )),
        (Some(last), Some(prev)) if prev > last => reasons.push(format!(
            "the record of {who} before this one (seq {prev}) is missing: a record was removed"
        )),
        (None, Some(prev)) => reasons.push(format!(
            "the record of {who} before this one (seq {prev}) is missing: a record was removed"
        )),
        _ => {}
    }
    for entry in &p.history {
        let (Some(seq), Some(hash)) = (
            entry.get("seq").and_then(Value::as_i64),
            entry.get("hash").and_then(Value::as_str),
        ) else {
            continue;
        };
        match seen.entries.get(&seq) {
            Some((known, first)) if known != hash => reasons.push(format!(
                "history entry seq {seq} of {who} differs from the one on line {first}"
            )),
            Some(_) => {}
            None => {
                seen.entries.insert(seq, (hash.to_string(), line));
            }
        }
    }
    if seen.last_seq.is_none_or(|last| p.seq > last) {
        seen.last_seq = Some(p.seq);
        seen.last_line = line;
    }
}

#[cfg(test)]
mod tests;
