//! What an imported approval honours, from what was read in the registry:
//! the newest record of the publisher's approval that its keys sign for
//! this artifact. Pure: the reads are done by `fleet::import`.
//!
//! A record older than one already honoured is refused as a replay: once
//! a revocation was honoured, putting the approval's older record back in
//! the registry (or removing the revocation) changes nothing, for this
//! approval or any other here (the publisher's status keeps the newest
//! honoured per approval and model). A record must also be about what the
//! local approval names: the same model, version and repository, so that a
//! copy of the model elsewhere, which the publisher's later records never
//! reach, is not honoured. A record
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
    /// The model it approves: name, version and REGISTRY/REPOSITORY.
    pub model: (String, String, String),
}

/// What the local approval names, which a record must be about.
#[derive(Clone, Copy, Debug)]
pub struct Expected<'a> {
    pub import: &'a Import,
    pub name: &'a str,
    pub version: &'a str,
    /// REGISTRY/REPOSITORY.
    pub repository: &'a str,
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
            model: (
                p.spec.model.name.clone(),
                p.spec.model.version.clone(),
                crate::api::oci::parse(&p.spec.model.uri)
                    .map(|u| format!("{}/{}", u.registry, u.repository))
                    .unwrap_or_else(|| p.spec.model.uri.clone()),
            ),
        }
    }

    /// Why it is not about what `expected` names, if it is not.
    fn mismatch(&self, expected: &Expected<'_>) -> Option<String> {
        let (name, version, repository) = &self.model;
        if self.approval != expected.import.approval {
            Some(format!(
                "it is the record of {}, not of {}: its annotation does not say what it signs",
                self.approval, expected.import.approval
            ))
        } else if (name.as_str(), version.as_str()) != (expected.name, expected.version) {
            Some(format!(
                "it approves {name} {version}, not {} {}",
                expected.name, expected.version
            ))
        } else if repository != expected.repository {
            Some(format!(
                "it approves the model in {repository}, not in {}: import it from the repository where it was approved, where its later records are attached",
                expected.repository
            ))
        } else {
            None
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

/// The records attached to the model for the publisher's approval.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Records {
    pub reads: Vec<Read>,
    /// The newest record of this approval and model honoured here before,
    /// by any approval.
    pub mark: Option<Mark>,
    /// Records not read this time (too many new ones at once, or one the
    /// registry did not serve), read at the next resync.
    pub unread: usize,
    /// How many resyncs in a row left records unread, this one included.
    pub unread_resyncs: u32,
    /// The uid of the TrustedPublisher whose keys and status were read.
    pub publisher_uid: Option<String>,
}

/// The newest record of an approval and model honoured here (the
/// TrustedPublisher's status).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mark {
    pub time: Time,
    pub seq: i64,
    pub phase: String,
}

/// Resyncs in a row that may leave records unread before nothing is
/// honoured: a flood of records the registry will not serve must not keep
/// a revocation among them unread while the approval goes on.
pub const UNREAD_RESYNCS: u32 = 3;

/// What a resync found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fetched {
    Records(Records),
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
    expected: &Expected<'_>,
    previous: Option<&ImportedApproval>,
    fetched: Fetched,
) -> ImportedApproval {
    let import = expected.import;
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
        Fetched::Records(records) => {
            let publisher_uid = records.publisher_uid.clone();
            ImportedApproval {
                publisher_uid,
                ..from_records(expected, before, empty, records)
            }
        }
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

/// The newest record about what `expected` names, and the refused ones.
fn sort(expected: &Expected<'_>, reads: Vec<Read>) -> (Option<(String, Said)>, Vec<RefusedRecord>) {
    let mut refused = Vec::new();
    let mut newest: Option<(String, Said)> = None;
    for read in reads {
        let verdict = read.verdict.and_then(|said| match said.mismatch(expected) {
            Some(why) => Err(why),
            None => Ok(said),
        });
        match verdict {
            Ok(said)
                if newest
                    .as_ref()
                    .is_none_or(|(_, n)| said.order() > n.order()) =>
            {
                newest = Some((read.referrer, said));
            }
            Ok(_) => {}
            Err(reason) => refused.push(RefusedRecord {
                referrer: read.referrer,
                reason,
            }),
        }
    }
    (newest, refused)
}

fn from_records(
    expected: &Expected<'_>,
    before: ImportedApproval,
    empty: ImportedApproval,
    records: Records,
) -> ImportedApproval {
    let (newest, mut refused) = sort(expected, records.reads);
    // The record honoured before no longer verifies (a key withdrawn): it
    // is not honoured any more.
    let withdrawn = refused
        .iter()
        .any(|r| before.referrer.as_deref() == Some(r.referrer.as_str()));
    let before = if withdrawn { empty } else { before };
    let own = before
        .seq
        .map(|seq| (before.time.clone().map(|t| t.0).unwrap_or_default(), seq));
    let mark = records.mark.as_ref().map(|m| (m.time.0, m.seq));
    let floor = own.into_iter().chain(mark).max();
    let next = match newest {
        Some((referrer, said)) if floor.is_some_and(|f| said.order() < f) => {
            let honoured = floor.map(|f| f.1).unwrap_or_default();
            refused.insert(0, replay(&said, honoured, referrer));
            before
        }
        Some((referrer, said)) => honour(before, referrer, said),
        None => nothing_new(expected.import, before),
    };
    let mut next = overtaken(next, records.mark.as_ref());
    if records.unread_resyncs >= UNREAD_RESYNCS {
        next = unread_too_long(expected.import, next, records.unread_resyncs);
    }
    refused.truncate(REFUSED_SHOWN);
    next.refused = refused;
    if records.unread > 0 {
        let note = format!(
            "{} records not read yet; they are read at the next resync",
            records.unread
        );
        next.message = Some(match next.message.take() {
            Some(m) => format!("{m}; {note}"),
            None => note,
        });
    }
    next
}

/// What a newer record honoured here (by another approval, or this one
/// before it was re-created) says, when it is newer than what `next`
/// honours: its gates are not known here, so none is passed.
fn overtaken(next: ImportedApproval, mark: Option<&Mark>) -> ImportedApproval {
    let Some(mark) = mark else {
        return next;
    };
    let honours = next
        .seq
        .map(|seq| (next.time.clone().map(|t| t.0).unwrap_or_default(), seq));
    if honours.is_some_and(|h| h >= (mark.time.0, mark.seq)) {
        return next;
    }
    ImportedApproval {
        uid: None,
        phase: Some(mark.phase.clone()),
        seq: Some(mark.seq),
        time: Some(mark.time.clone()),
        expires_at: None,
        referrer: None,
        gates: Vec::new(),
        message: Some(format!(
            "a newer record of {} (seq {}, {}) was honoured here, and it cannot be read now: its gates wait until it can",
            next.approval, mark.seq, mark.phase
        )),
        ..next
    }
}

/// Records left unread for `resyncs` resyncs in a row: nothing is honoured
/// until they are read, since the newest of them may be a revocation.
fn unread_too_long(import: &Import, next: ImportedApproval, resyncs: u32) -> ImportedApproval {
    ImportedApproval {
        uid: None,
        phase: None,
        seq: None,
        time: None,
        expires_at: None,
        referrer: None,
        gates: Vec::new(),
        message: Some(format!(
            "records of {} attached to the model have stayed unread for {resyncs} resyncs (a registry that does not serve them, or a flood of records): nothing is honoured until they are read",
            import.approval
        )),
        ..next
    }
}

/// No record to honour now: the one honoured before stands, if any.
fn nothing_new(import: &Import, before: ImportedApproval) -> ImportedApproval {
    let message = match before.seq {
        Some(seq) => format!(
            "no record of {} verifies in the registry now; the one honoured before (seq {seq}) stands until it lapses",
            import.approval
        ),
        None => format!(
            "no record of {} signed by {}'s keys is attached to the model",
            import.approval, import.publisher
        ),
    };
    ImportedApproval {
        message: Some(message),
        ..before
    }
}

fn replay(said: &Said, honoured: i64, referrer: String) -> RefusedRecord {
    RefusedRecord {
        referrer,
        reason: format!(
            "replayed: its record seq {} ({} at {}) is older than seq {honoured} already honoured here",
            said.seq, said.phase, said.time.0,
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
