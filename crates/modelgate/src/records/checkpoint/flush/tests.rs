use std::sync::Arc;

use http::{Method, StatusCode};
use serde_json::json;

use super::*;
use crate::fixtures::{self, ApiServer, Received};

const NS: &str = "risk";
const PATH: &str = "/apis/modelgate.io/v1alpha1/namespaces/risk/recordcheckpoints/approval-records";
const RECORDS: &str = "/apis/modelgate.io/v1alpha1/namespaces/risk/approvalrecords";

fn head(n: usize) -> Head {
    Head {
        name: format!("a{n}"),
        uid: format!("uid-{n}"),
        seq: 1,
        head: format!("sha256:{n}"),
    }
}

/// None stored yet and no records listed: the first write rebuilds it.
async fn first_write(server: &mut ApiServer) -> Received {
    server.expect(Method::GET, PATH).await.not_found();
    server.expect(Method::GET, RECORDS).await.ok(
        json!({"apiVersion": "modelgate.io/v1alpha1", "kind": "ApprovalRecordList", "metadata": {}, "items": []}),
    );
    let write = server.expect(Method::PATCH, PATH).await;
    write.assert_applied_by(crate::vocabulary::FIELD_MANAGER);
    write
}

/// Answers a write as stored at resourceVersion `version`.
fn accept(write: Received, version: &str) {
    let mut body = write.body.clone();
    body["metadata"]["resourceVersion"] = version.into();
    write.ok(body);
}

fn counted(outcomes: &Family<OutcomeLabels, Counter>, outcome: &'static str) -> u64 {
    outcomes.get_or_create(&OutcomeLabels { outcome }).get()
}

fn signer() -> Arc<Signer> {
    Arc::new(Signer::generate().unwrap_or_else(|e| panic!("key: {e}")))
}

/// A writer on a mocked API server counting into the family returned,
/// with head 1 noted.
fn noting_head_1() -> (
    Arc<crate::context::Context>,
    ApiServer,
    Checkpoints,
    Arc<Signer>,
    Family<OutcomeLabels, Counter>,
) {
    let (ctx, server) = fixtures::context();
    let outcomes = Family::default();
    let (checkpoints, signer) = (Checkpoints::counting(outcomes.clone()), signer());
    checkpoints.note(&ctx.client, &signer, NS, head(1));
    (ctx, server, checkpoints, signer, outcomes)
}

#[tokio::test]
async fn heads_noted_during_a_write_share_the_next_one() {
    let (ctx, mut server, checkpoints, signer, outcomes) = noting_head_1();
    // The first head is written at once.
    let first = first_write(&mut server).await;
    assert_eq!(first.body["spec"]["approvals"], 1);
    for n in 2..=4 {
        checkpoints.note(&ctx.client, &signer, NS, head(n));
    }
    accept(first, "7");
    // The three noted meanwhile, in one write a LINGER later, on the
    // condition that the stored one is still the first.
    let second = server.expect(Method::PATCH, PATH).await;
    assert_eq!(second.body["spec"]["approvals"], 4);
    assert_eq!(second.body["metadata"]["resourceVersion"], "7");
    accept(second, "8");
    tokio::time::sleep(LINGER * 3).await;
    assert_eq!(checkpoints.waiting(), 0);
    // A head the checkpoint names already writes nothing.
    checkpoints.note(&ctx.client, &signer, NS, head(2));
    tokio::time::sleep(LINGER).await;
    assert_eq!(counted(&outcomes, "written"), 2);
    drop((ctx, checkpoints));
    server.nothing_more().await;
}

#[tokio::test]
async fn the_heads_of_a_failed_write_are_written_with_the_next() {
    let (ctx, mut server, checkpoints, signer, outcomes) = noting_head_1();
    let first = first_write(&mut server).await;
    first.answer(
        StatusCode::INTERNAL_SERVER_ERROR,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "code": 500, "message": "etcd away"}),
    );
    checkpoints.note(&ctx.client, &signer, NS, head(2));
    // Read again (what the cluster holds is not known after a failure),
    // and both heads written.
    let again = first_write(&mut server).await;
    assert_eq!(again.body["spec"]["approvals"], 2);
    accept(again, "7");
    tokio::time::sleep(LINGER * 3).await;
    assert_eq!(checkpoints.waiting(), 0);
    assert_eq!(
        (counted(&outcomes, "failed"), counted(&outcomes, "written")),
        (1, 1)
    );
}

#[tokio::test]
async fn a_namespace_being_deleted_drops_its_heads() {
    let (ctx, mut server) = fixtures::context();
    let (checkpoints, signer) = (Checkpoints::default(), signer());
    checkpoints.note(&ctx.client, &signer, NS, head(1));
    server.expect(Method::GET, PATH).await.answer(
        StatusCode::NOT_FOUND,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "reason": "NotFound",
               "code": 404, "message": "namespaces \"risk\" not found", "details": {"name": "risk", "kind": "namespaces"}}),
    );
    // A 404 on the checkpoint alone is a checkpoint not there yet: the
    // records are listed; the namespace is gone by then.
    server.expect(Method::GET, RECORDS).await.answer(
        StatusCode::NOT_FOUND,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "reason": "NotFound",
               "code": 404, "message": "namespaces \"risk\" not found", "details": {"name": "risk", "kind": "namespaces"}}),
    );
    tokio::time::sleep(LINGER * 3).await;
    assert_eq!(checkpoints.waiting(), 0, "dropped, not tried again");
    drop((ctx, checkpoints));
    server.nothing_more().await;
}

#[test]
fn each_namespace_keeps_its_own_pace() {
    let now = tokio::time::Instant::now();
    let mut pace = Pace::default();
    pace.written("a".into(), now);
    for _ in 0..10 {
        pace.failed("b".into(), now);
    }
    assert!(!pace.due("a", now) && pace.due("a", now + LINGER));
    assert!(
        pace.due("c", now),
        "a namespace never written is due at once"
    );
    assert!(!pace.due("b", now + LONGEST_PAUSE - LINGER));
    assert!(
        pace.due("b", now + LONGEST_PAUSE),
        "the pause stops doubling"
    );
    let waiting = ["a".to_string(), "c".to_string()];
    assert_eq!(pace.wake_at(&waiting, now), Some(now), "c is due now");
    assert_eq!(pace.wake_at(&waiting[..1], now), Some(now + LINGER));
    // Past and waiting for nothing: forgotten.
    pace.wake_at(&[], now + LONGEST_PAUSE);
    assert!(pace.next.is_empty());
}

#[tokio::test]
async fn a_stopping_operator_writes_what_is_noted_at_once() {
    let (ctx, mut server) = fixtures::context();
    let (checkpoints, signer) = (Checkpoints::default(), signer());
    checkpoints.note(&ctx.client, &signer, NS, head(1));
    accept(first_write(&mut server).await, "7");
    tokio::time::sleep(LINGER / 10).await;
    // Noted within LINGER of the last write: it would wait for its end.
    checkpoints.note(&ctx.client, &signer, NS, head(2));
    let scenario = tokio::spawn(async move {
        let write = server.expect(Method::PATCH, PATH).await;
        assert_eq!(write.body["spec"]["approvals"], 2);
        accept(write, "8");
    });
    // Drained only once the write's answer is handled: taken is not written.
    assert_eq!(
        checkpoints.drain(LINGER / 2).await,
        0,
        "written before LINGER"
    );
    assert!(
        scenario.is_finished(),
        "drained before the write was answered"
    );
    scenario.await.unwrap_or_else(|e| panic!("scenario: {e}"));
}

#[test]
fn only_the_newest_head_of_an_approval_waits() {
    let mut heads = Heads::new();
    let newer = Head { seq: 3, ..head(1) };
    add(&mut heads, head(1));
    add(&mut heads, newer.clone());
    add(&mut heads, head(1));
    add(&mut heads, head(2));
    assert_eq!(heads.len(), 2);
    assert_eq!(
        heads.get("uid-1"),
        Some(&newer),
        "the newer replaced the older, and stays"
    );
}
