//! `history NAME`: the audit trail of an approval — the history the
//! operator records in status, merged with the Events the API server still
//! holds (Events expire after an hour by default; history does not).

use clap::Args;
use jiff::Timestamp;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};
use serde::Serialize;

use super::output;
use super::{CliError, Format, Result, Session};
use modelgate::api::approval::ModelApproval;
use modelgate::api::approval::{HistoryEntry, PHASE_SUBJECT};

#[derive(Args)]
#[command(
    after_help = "Examples:\n  kubectl modelgate history fraud-detector-2-4-0 -n risk\n  kubectl modelgate history fraud-detector-2-4-0 -n risk -o json"
)]
pub struct HistoryArgs {
    /// The ModelApproval.
    pub name: String,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Format::Table)]
    pub output: Format,
}

/// One line of the audit trail.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    pub time: Timestamp,
    /// The reviewer for a gate decision; the operator for a phase change or
    /// an Event of its own.
    pub actor: String,
    /// A gate, Phase, or what an unmatched Event was about.
    pub subject: String,
    /// `from → to`, or an Event's reason.
    pub transition: String,
    pub detail: String,
    /// status, event, or status+event when both recorded it.
    pub source: String,
}

/// How far apart a history entry and its Event may be stamped.
const SAME_TRANSITION_SECS: i64 = 5;

/// Merges status history with Events, oldest first.
pub fn merge(approval: &ModelApproval, events: &[Event]) -> Vec<Row> {
    let mut rows: Vec<Row> = approval
        .status
        .iter()
        .flat_map(|s| s.history.iter())
        .map(history_row)
        .collect();
    // An Event of one transition twins its history entry first; an Event
    // for reviews found together then marks the entries it names that are
    // left. In the other order a gate's own Event (GateFailed) found its
    // entry already marked, and showed as a second row, depending only on
    // which Event the API server listed first.
    let together =
        |e: &&Event| e.reason.as_deref() == Some(modelgate::transition::RECORDED_TOGETHER);
    for e in events.iter().filter(|e| !together(e)) {
        let Some(time) = event_time(e) else {
            continue;
        };
        let subject = e.action.clone().unwrap_or_default();
        // The operator names each transition's Event after its subject, so
        // an Event and a history entry of the same subject and moment are
        // one transition, recorded twice.
        let twin = rows.iter_mut().find(|r| {
            r.source == "status"
                && r.subject == subject
                && (r.time.as_second() - time.as_second()).abs() <= SAME_TRANSITION_SECS
        });
        match twin {
            Some(row) => row.source = "status+event".into(),
            None => rows.push(event_row(e, time, subject)),
        }
    }
    // One Event for the reviews a reconcile found together: it names each
    // ("Subject: message; …"), and each is in the history.
    for e in events.iter().filter(together) {
        let Some(time) = event_time(e) else {
            continue;
        };
        let note = e.note.as_deref().unwrap_or_default();
        for row in rows.iter_mut().filter(|r| {
            r.source == "status"
                && (r.time.as_second() - time.as_second()).abs() <= SAME_TRANSITION_SECS
                && note.contains(&format!("{}: ", r.subject))
        }) {
            row.source = "status+event".into();
        }
    }
    rows.sort_by_key(|r| r.time);
    rows
}

/// When an Event happened: its event time, or when it was created.
fn event_time(e: &Event) -> Option<Timestamp> {
    e.event_time
        .as_ref()
        .map(|t| t.0)
        .or(e.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// A transition as the approval's status history holds it.
fn history_row(h: &HistoryEntry) -> Row {
    Row {
        time: h.time.0,
        actor: match (&h.reviewer, h.subject.as_str()) {
            (Some(r), _) => r.clone(),
            (None, PHASE_SUBJECT) => "modelgate".into(),
            (None, _) => "-".into(),
        },
        subject: h.subject.clone(),
        transition: format!(
            "{} → {}",
            if h.from.is_empty() { "∅" } else { &h.from },
            h.to
        ),
        detail: [h.reason.as_deref(), h.message.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(": "),
        source: "status".into(),
    }
}

/// An Event with no twin in the history.
fn event_row(e: &Event, time: Timestamp, subject: String) -> Row {
    Row {
        time,
        actor: e
            .reporting_instance
            .clone()
            .or(e.reporting_controller.clone())
            .unwrap_or_else(|| "-".into()),
        subject: if subject.is_empty() {
            "-".into()
        } else {
            subject
        },
        transition: format!(
            "{} ({})",
            e.reason.clone().unwrap_or_default(),
            e.type_.clone().unwrap_or_default()
        ),
        detail: e.note.clone().unwrap_or_default(),
        source: "event".into(),
    }
}

pub async fn run(session: &Session, args: HistoryArgs) -> Result<String> {
    let api: Api<ModelApproval> = Api::namespaced(session.client.clone(), &session.namespace);
    let approval = api
        .get(&args.name)
        .await
        .map_err(|e| CliError::from_api(e, &format!("ModelApproval {}", args.name)))?;
    let events: Api<Event> = Api::namespaced(session.client.clone(), &session.namespace);
    // Events may not be readable by everyone: the status history still is.
    let events: Vec<Event> = events
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .filter(|e| {
            e.regarding.as_ref().is_some_and(|r| {
                r.kind.as_deref() == Some("ModelApproval")
                    && r.name.as_deref() == Some(args.name.as_str())
            })
        })
        .collect();
    let rows = merge(&approval, &events);
    if args.output != Format::Table {
        return output::structured(&rows, args.output);
    }
    let mut t = output::table(&["TIME", "ACTOR", "SUBJECT", "TRANSITION", "DETAIL"]);
    for r in &rows {
        t.add_row(vec![
            r.time.strftime("%Y-%m-%d %H:%M:%SZ").to_string(),
            r.actor.clone(),
            r.subject.clone(),
            r.transition.clone(),
            r.detail.clone(),
        ]);
    }
    let dropped = approval.status.and_then(|s| s.history_dropped).unwrap_or(0);
    let mut out = output::render(&t);
    if dropped > 0 {
        out.push_str(&format!("({dropped} older entries were dropped from status; the API server's audit log has them)\n"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_history(history: serde_json::Value) -> ModelApproval {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "modelgate.io/v1alpha1", "kind": "ModelApproval", "metadata": {"name": "fd"},
            "spec": {"model": {"name": "m", "version": "1", "uri": "s3://m", "digest": "sha256:00"}},
            "status": {"history": history}
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn events_that_repeat_history_are_merged_and_others_kept() {
        let approval = with_history(serde_json::json!([
            {"time": "2026-11-25T10:00:00Z", "subject": "TechnicalReview", "from": "", "to": "True", "reviewer": "bob", "reason": "Ok"},
            {"time": "2026-11-25T10:03:00Z", "subject": "FairnessReview", "from": "", "to": "True", "reviewer": "fay", "reason": "Ok"},
            {"time": "2026-11-25T10:03:00Z", "subject": "LegalReview", "from": "", "to": "True", "reviewer": "lee", "reason": "Ok"},
            {"time": "2026-11-25T10:05:00Z", "subject": "Phase", "from": "Pending", "to": "Approved"}
        ]));
        let event = |time: &str, action: &str, reason: &str| -> Event {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "e"}, "eventTime": time, "action": action, "reason": reason, "type": "Normal",
                "reportingController": "modelgate.io/modelgate", "reportingInstance": "modelgate-0",
                "note": "FairnessReview: passed by fay; LegalReview: passed by lee"
            }))
            .unwrap_or_else(|e| panic!("{e}"))
        };
        let rows = merge(
            &approval,
            &[
                event(
                    "2026-11-25T10:00:01.000000Z",
                    "TechnicalReview",
                    "GatePassed",
                ),
                event("2026-11-25T10:02:00.000000Z", "Read", "InvalidObject"),
                // Reviews found together: each is in the history already.
                event(
                    "2026-11-25T10:03:01.000000Z",
                    "Reviews",
                    modelgate::transition::RECORDED_TOGETHER,
                ),
            ],
        );
        let got: Vec<(&str, &str, &str)> = rows
            .iter()
            .map(|r| (r.subject.as_str(), r.actor.as_str(), r.source.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("TechnicalReview", "bob", "status+event"),
                ("Read", "modelgate-0", "event"),
                ("FairnessReview", "fay", "status+event"),
                ("LegalReview", "lee", "status+event"),
                ("Phase", "modelgate", "status")
            ]
        );
        assert_eq!(rows[0].transition, "∅ → True");
    }

    #[test]
    fn a_gate_event_listed_after_the_reviews_event_is_still_one_transition() {
        let approval = with_history(serde_json::json!([
            {"time": "2026-11-25T10:00:00Z", "subject": "SecurityReview", "from": "True", "to": "False", "reviewer": "sam", "reason": "Vulnerable"}
        ]));
        let event = |action: &str, reason: &str| -> Event {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "e"}, "eventTime": "2026-11-25T10:00:01.000000Z", "action": action,
                "reason": reason, "type": "Warning", "reportingController": "modelgate.io/modelgate",
                "reportingInstance": "modelgate-0", "note": "SecurityReview: failed by sam"
            }))
            .unwrap_or_else(|e| panic!("{e}"))
        };
        let reviews = event("Reviews", modelgate::transition::RECORDED_TOGETHER);
        let failed = event("SecurityReview", "GateFailed");
        for order in [[&reviews, &failed], [&failed, &reviews]] {
            let events: Vec<Event> = order.into_iter().cloned().collect();
            let rows = merge(&approval, &events);
            let got: Vec<(&str, &str)> = rows
                .iter()
                .map(|r| (r.subject.as_str(), r.source.as_str()))
                .collect();
            assert_eq!(got, [("SecurityReview", "status+event")]);
        }
        // A second Event of the same transition is still shown.
        let rows = merge(&approval, &[failed.clone(), failed]);
        assert_eq!(rows.len(), 2);
    }
}
