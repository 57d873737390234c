//! An approval's status history: one entry per recorded change, its texts
//! cut to size, linked into the hash chain and capped. Pure.
//!
//! Both the decision (gates and phase) and the reviewers' inputs (reviews
//! and measurements) record here; neither needs the other to.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::approval::{HistoryEntry, ModelApprovalStatus};
use crate::transition::Transition;

/// How many history entries status keeps; older ones are counted in
/// `historyDropped`. Fifty covers several full review rounds while keeping
/// the object far below etcd's 1.5 MiB limit even with long messages.
pub const HISTORY_LIMIT: usize = 50;

/// Reasons and messages are cut to this many characters in history, so that
/// fifty entries stay small whatever reviewers write.
pub const HISTORY_TEXT_LIMIT: usize = 256;

/// One change as an approval records it: the transition (announced as an
/// Event) and its history entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    pub transition: Transition,
    pub entry: HistoryEntry,
}

/// Who made a change and what they gave as reason and message: what the
/// history entry keeps beside the transition.
#[derive(Clone, Debug, Default)]
pub struct Said {
    pub reviewer: Option<String>,
    pub reason: Option<String>,
    pub message: Option<String>,
}

impl Recorded {
    /// `transition`, observed at `now`, with what its author `said`.
    pub fn new(transition: Transition, now: &Time, said: Said) -> Self {
        let entry = HistoryEntry {
            time: now.clone(),
            subject: transition.subject.clone(),
            from: transition.from.clone(),
            to: transition.to.clone(),
            reviewer: said.reviewer,
            reason: truncate(said.reason.as_deref()),
            message: truncate(said.message.as_deref()),
            seq: None,
            hash: None,
        };
        Recorded { transition, entry }
    }
}

/// `text` cut to [`HISTORY_TEXT_LIMIT`] characters, marked when cut.
pub fn truncate(text: Option<&str>) -> Option<String> {
    text.map(|t| match t.char_indices().nth(HISTORY_TEXT_LIMIT) {
        Some((cut, _)) => format!("{}…", &t[..cut]),
        None => t.to_string(),
    })
}

/// Links this decision's entries into the history's hash chain.
pub fn chain(previous: &ModelApprovalStatus, recorded: &mut [Recorded]) {
    let mut entries: Vec<HistoryEntry> = recorded.iter().map(|r| r.entry.clone()).collect();
    let ever = previous.history.len() as i64 + previous.history_dropped.unwrap_or(0);
    let linked = crate::records::chain::extend(
        previous.history.last(),
        previous.history_base.as_deref(),
        ever,
        &mut entries,
    );
    // Hashing our own entries cannot fail (canonical JSON of plain strings
    // and numbers); were it to, the entries stay unhashed and any verifier
    // names them, rather than the decision being lost.
    if linked.is_ok() {
        for (r, e) in recorded.iter_mut().zip(entries) {
            r.entry = e;
        }
    }
}

/// The history after a decision, capped at [`HISTORY_LIMIT`] entries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capped {
    pub entries: Vec<HistoryEntry>,
    /// How many entries were ever dropped.
    pub dropped: i64,
    /// The hash the oldest kept entry links to.
    pub base: Option<String>,
}

/// The history with this decision's entries appended, capped.
pub fn capped(previous: &ModelApprovalStatus, recorded: &[Recorded]) -> Capped {
    let mut entries = previous.history.clone();
    entries.extend(recorded.iter().map(|r| r.entry.clone()));
    let mut dropped = previous.history_dropped.unwrap_or(0);
    let mut base = previous.history_base.clone();
    if entries.len() > HISTORY_LIMIT {
        let excess = entries.len() - HISTORY_LIMIT;
        base = entries.drain(..excess).next_back().and_then(|e| e.hash);
        dropped += excess as i64;
    }
    Capped {
        entries,
        dropped,
        base,
    }
}
