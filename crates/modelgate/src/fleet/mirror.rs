//! What an imported approval honours, from what was read in the registry:
//! the newest record of the publisher's approval that its keys sign for
//! this artifact. Pure: the reads are done by `fleet::import`.
//!
//! A record older than one already honoured is refused as a replay: once
//! a revocation was honoured, putting the approval's older record back in
//! the registry (or removing the revocation) changes nothing. A record
//! that vanished is not a revocation either: the last one honoured stands
//! until it lapses. Only trust withdrawn here (the TrustedPublisher or
//! its key removed) drops it at once.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::fleet::{Import, ImportedApproval, MirroredGate, RefusedRecord};
use crate::records::statement::Statement;

/// What one record says, once its signature and subject are checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Said {
    /// The publisher's approval, NAMESPACE/NAME.
    pub approval: String,
    pub uid: String,
    pub phase: String,
    pub seq: i64,
    pub time: Time,
    pub expires_at: Option<Time>,
    pub gates: Vec<MirroredGate>,
}

impl Said {
    /// The parts of a verified statement an imported approval mirrors.
    pub fn of(statement: &Statement) -> Said {
        let p = &statement.predicate;
        Said {
            approval: format!("{}/{}", p.approval.namespace, p.approval.name),
            uid: p.approval.uid.clone(),
            phase: p.phase.clone(),
            seq: p.seq,
            time: p.time.clone(),
            expires_at: p.expires_at.clone(),
            gates: p
                .gates
                .iter()
                .map(|g| MirroredGate {
                    gate: g.type_.clone(),
                    status: g.status.clone(),
                    reviewer: g.reviewer.clone(),
                })
                .collect(),
        }
    }

    /// Newer means a later phase change; within one approval, a higher seq.
    fn order(&self) -> (jiff::Timestamp, i64) {
        (self.time.0, self.seq)
    }
}

/// One record read from the registry: its referrer's digest and what it
/// says, or why it is not honoured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Read {
    pub referrer: String,
    pub verdict: Result<Said, String>,
}

/// What a resync found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fetched {
    /// The records attached to the model for the publisher's approval.
    Records(Vec<Read>),
    /// The registry could not be read: nothing changes.
    Unreachable(String),
    /// The publisher is not trusted for this model (here, now): nothing
    /// of it is honoured.
    Untrusted(String),
}

/// How many refused records the status names.
const REFUSED_SHOWN: usize = 10;

/// The imported standing after `fetched`, from the one before.
pub fn mirror(
    import: &Import,
    previous: Option<&ImportedApproval>,
    fetched: Fetched,
) -> ImportedApproval {
    let empty = ImportedApproval {
        publisher: import.publisher.clone(),
        approval: import.approval.clone(),
        ..ImportedApproval::default()
    };
    // A status from another import (there is none: the spec is immutable)
    // is never carried over.
    let before = previous
        .filter(|p| p.publisher == import.publisher && p.approval == import.approval)
        .cloned()
        .unwrap_or_else(|| empty.clone());
    match fetched {
        Fetched::Untrusted(why) => ImportedApproval {
            message: Some(why),
            ..empty
        },
        Fetched::Unreachable(why) => ImportedApproval {
            message: Some(unreachable(&before, &why)),
            ..before
        },
        Fetched::Records(reads) => from_records(import, before, empty, reads),
    }
}

fn unreachable(before: &ImportedApproval, why: &str) -> String {
    match before.seq {
        Some(seq) => format!(
            "the registry cannot be read ({why}); the record honoured before (seq {seq}) stands until it lapses"
        ),
        None => format!("the registry cannot be read ({why}); nothing is honoured yet"),
    }
}

fn from_records(
    import: &Import,
    before: ImportedApproval,
    empty: ImportedApproval,
    reads: Vec<Read>,
) -> ImportedApproval {
    let mut refused = Vec::new();
    let mut newest: Option<(String, Said)> = None;
    for read in reads {
        match read.verdict {
            Ok(said) if said.approval != import.approval => refused.push(RefusedRecord {
                referrer: read.referrer,
                reason: format!(
                    "it is the record of {}, not of {}: its annotation does not say what it signs",
                    said.approval, import.approval
                ),
            }),
            Ok(said) => {
                if newest
                    .as_ref()
                    .is_none_or(|(_, n)| said.order() > n.order())
                {
                    newest = Some((read.referrer, said));
                }
            }
            Err(reason) => refused.push(RefusedRecord {
                referrer: read.referrer,
                reason,
            }),
        }
    }
    // The record honoured before no longer verifies (a key withdrawn): it
    // is not honoured any more.
    let withdrawn = refused
        .iter()
        .any(|r| before.referrer.as_deref() == Some(r.referrer.as_str()));
    let before = if withdrawn { empty } else { before };
    let honoured = before
        .seq
        .map(|seq| (before.time.clone().map(|t| t.0).unwrap_or_default(), seq));
    let mut next = match newest {
        Some((referrer, said)) if honoured.is_some_and(|h| said.order() < h) => {
            refused.insert(0, replay(&said, &before, referrer));
            before
        }
        Some((referrer, said)) => honour(before, referrer, said),
        None if before.seq.is_some() => ImportedApproval {
            message: Some(format!(
                "no record of {} verifies in the registry now; the one honoured before (seq {}) stands until it lapses",
                import.approval,
                before.seq.unwrap_or_default()
            )),
            ..before
        },
        None => ImportedApproval {
            message: Some(format!(
                "no record of {} signed by {}'s keys is attached to the model",
                import.approval, import.publisher
            )),
            ..before
        },
    };
    refused.truncate(REFUSED_SHOWN);
    next.refused = refused;
    next
}

fn replay(said: &Said, before: &ImportedApproval, referrer: String) -> RefusedRecord {
    RefusedRecord {
        referrer,
        reason: format!(
            "replayed: its record seq {} ({} at {}) is older than seq {} ({}) already honoured",
            said.seq,
            said.phase,
            said.time.0,
            before.seq.unwrap_or_default(),
            before.phase.as_deref().unwrap_or_default()
        ),
    }
}

fn honour(before: ImportedApproval, referrer: String, said: Said) -> ImportedApproval {
    ImportedApproval {
        uid: Some(said.uid),
        phase: Some(said.phase),
        seq: Some(said.seq),
        time: Some(said.time),
        expires_at: said.expires_at,
        referrer: Some(referrer),
        gates: said.gates,
        message: None,
        ..before
    }
}

#[cfg(test)]
mod tests;
