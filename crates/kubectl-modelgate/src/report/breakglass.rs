//! The break-glass releases of a bundle, which the auditor's page lists
//! first: who asked, who approved, why, without which gates, for which
//! window, and how each ended as a later record says. A record is about a
//! break-glass when its phase change goes into or out of BreakGlass (the
//! operator then signs the release into the predicate's `breakGlass`).

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde_json::Value;

use super::RecordMark;
use modelgate::api::approval::{ApprovalPhase, PHASE_SUBJECT};
use modelgate::api::breakglass::ReleasedBy;
use modelgate::records::statement::Statement;
use modelgate::records::verify::Line;

const BREAK_GLASS: &str = ApprovalPhase::BreakGlass.as_str();

/// One release, as its records tell it.
pub(super) struct Release {
    pub namespace: String,
    pub approval: String,
    pub name: String,
    pub requested_by: String,
    pub approved_by: String,
    pub reason: String,
    pub skips: String,
    pub window: String,
    /// ratified, lapsed, ended or open: the badge's word and colour.
    pub kind: &'static str,
    pub outcome: String,
    /// The records of its start and of its end, when in the bundle.
    pub records: Vec<RecordMark>,
    /// When it began, for the order on the page.
    since: String,
}

/// The phase change a record is of, as its history holds it.
struct Change<'a> {
    statement: &'a Statement,
    entry: Option<&'a Value>,
    mark: RecordMark,
}

impl Change<'_> {
    fn text(&self, key: &str) -> &str {
        self.entry
            .and_then(|e| e.get(key))
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    fn starts(&self) -> bool {
        self.statement.predicate.phase == BREAK_GLASS
    }

    fn ends(&self) -> bool {
        self.text("from") == BREAK_GLASS
    }
}

/// The releases the records in `lines` tell of, oldest first.
pub(super) fn releases(lines: &[Line]) -> Vec<Release> {
    // Per approval, its records in seq order.
    let mut by_uid: BTreeMap<(&str, i64), Change<'_>> = BTreeMap::new();
    for line in lines {
        let Some(s) = &line.statement else { continue };
        let p = &s.predicate;
        let entry = p.history.iter().rev().find(|e| {
            e.get("seq").and_then(Value::as_i64) == Some(p.seq)
                && e.get("subject").and_then(Value::as_str) == Some(PHASE_SUBJECT)
        });
        let mark = RecordMark {
            line: line.line,
            verified: line.verified,
        };
        by_uid.insert(
            (p.approval.uid.as_str(), p.seq),
            Change {
                statement: s,
                entry,
                mark,
            },
        );
    }
    let mut releases: Vec<Release> = Vec::new();
    // The release of each approval still waiting for its end.
    let mut open: BTreeMap<&str, usize> = BTreeMap::new();
    for ((uid, _), change) in by_uid {
        if change.ends() {
            match open.remove(uid) {
                Some(at) => end(&mut releases[at], &change),
                None => {
                    let mut release = begin(&change);
                    end(&mut release, &change);
                    releases.push(release);
                }
            }
        }
        if change.starts() {
            open.insert(uid, releases.len());
            releases.push(begin(&change));
        }
    }
    releases.sort_by(|a, b| {
        (&a.since, &a.namespace, &a.approval).cmp(&(&b.since, &b.namespace, &b.approval))
    });
    releases
}

/// A release as the record of its start (or, when that is not in the
/// bundle, of its end) tells it; without its signed release, from the
/// history entry.
fn begin(change: &Change<'_>) -> Release {
    let p = &change.statement.predicate;
    let signed: Option<&ReleasedBy> = p.break_glass.as_ref();
    let or_dash = |s: String| if s.is_empty() { "-".into() } else { s };
    let starts = change.starts();
    Release {
        namespace: p.approval.namespace.clone(),
        approval: p.approval.name.clone(),
        name: or_dash(signed.map(|r| r.name.clone()).unwrap_or_default()),
        requested_by: or_dash(signed.map_or_else(
            || change.text("reviewer").to_string(),
            |r| r.requested_by.clone(),
        )),
        approved_by: or_dash(signed.map(|r| r.approved_by.join(", ")).unwrap_or_default()),
        reason: or_dash(signed.map_or_else(
            || change.text("message").to_string(),
            |r| r.reason.clone(),
        )),
        skips: or_dash(signed.map(|r| r.skips.join(", ")).unwrap_or_default()),
        window: signed
            .map(|r| format!("{} until {}", time(r.since.0), time(r.until.0)))
            .unwrap_or_else(|| "-".into()),
        kind: "open",
        outcome: "no later record in this bundle: in force when it was exported, unless that record is missing".into(),
        records: if starts {
            vec![change.mark.clone()]
        } else {
            Vec::new()
        },
        since: signed
            .map(|r| r.since.0.to_string())
            .unwrap_or_else(|| p.time.0.to_string()),
    }
}

/// How `change` (a phase change out of BreakGlass) ended `release`.
fn end(release: &mut Release, change: &Change<'_>) {
    let p = &change.statement.predicate;
    let at = time(p.time.0);
    let (kind, outcome) = match (change.text("reason"), p.phase.as_str()) {
        ("BreakGlassRatified", _) | (_, "Approved") => (
            "ratified",
            format!(
                "ratified at {at}: the skipped gates passed in time and the approval is Approved"
            ),
        ),
        ("BreakGlassLapsed", _) | (_, "Pending") => (
            "lapsed",
            format!("lapsed at {at}: the skipped gates had not passed; the release was revoked"),
        ),
        (_, phase) => (
            "ended",
            format!("ended at {at}: the approval turned {phase}"),
        ),
    };
    release.kind = kind;
    release.outcome = outcome;
    release.records.push(change.mark.clone());
}

fn time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string()
}
