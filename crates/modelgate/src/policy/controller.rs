//! Watches ApprovalPolicies and says in each one's status whether its rules
//! compile (Ready), with the compiler's message for each that does not,
//! and announces each change of Ready as an Event. The same cache serves
//! the approval controller, which pins from it.
//!
//! A policy that cannot be read as our type is kept in the cache as its
//! error, so the watch goes on for all the others; its status says why it
//! cannot be read, and approvals that would pin it wait.

use std::sync::Arc;

use futures::{Future, TryStreamExt};
use kube::api::{Api, ApiResource, DynamicObject};
use kube::core::DeserializeGuard;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use tracing::{info, instrument};

use super::pin::{Decider, pin};
use super::rule::compile;
use crate::api::condition::{self, Condition, FALSE, TRUE};
use crate::api::policy::{ApprovalPolicy, ApprovalPolicySpec, ApprovalPolicyStatus, RuleStatus};
use crate::context::{Context, now_seconds};
use crate::error::{AtStep, Error, ReconcileError, Result, Step};
use crate::runtime::Synced;
use crate::transition::Transition;
use crate::vocabulary::Severity;

/// This controller's name in metrics.
const CONTROLLER: &str = "policy";

/// The steps its reconciles take, for the error counters.
const STEPS: [Step; 3] = [Step::Read, Step::Status, Step::Event];

/// The condition that says whether a policy can be pinned.
pub const READY: &str = "Ready";

/// A policy as cached: a malformed one is kept (as its error) so that its
/// reconcile can say what is wrong instead of the watch failing.
pub type CachedPolicy = DeserializeGuard<ApprovalPolicy>;

/// The policy cache (for pinning) and the controller that keeps policies'
/// status, ready to be driven until `shutdown`.
pub fn run(
    ctx: Arc<Context>,
    config: watcher::Config,
    synced: Arc<Synced>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> (Store<CachedPolicy>, impl Future<Output = ()>) {
    ctx.metrics.start_at_zero(CONTROLLER, &STEPS);
    let mut marker = synced.marker::<CachedPolicy>("approvalpolicies");
    let (store, writer) = reflector::store();
    let changes = watcher(ctx.scope.api::<CachedPolicy>(ctx.client.clone()), config)
        .default_backoff()
        .reflect(writer)
        .inspect_ok(move |event| marker(event))
        .applied_objects();
    let concurrency = ctx.concurrency;
    let controller = Controller::for_stream(changes, store.clone())
        .with_config(crate::runtime::controller_config(concurrency))
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx);
    (store, crate::runtime::drive(controller))
}

/// Read → decide (pure) → write status → publish.
#[instrument(skip_all, fields(namespace = guarded.meta().namespace.as_deref().unwrap_or_default(), name = guarded.meta().name.as_deref().unwrap_or_default()))]
async fn reconcile(
    guarded: Arc<CachedPolicy>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let _timer = ctx.metrics.reconcile(CONTROLLER);
    let namespace = guarded
        .namespace()
        .ok_or(Error::MissingMetadata("namespace"))
        .at(Step::Read)?;
    let name = guarded.name_any();
    let previous = previous_status(&ctx, &guarded, &namespace, &name)
        .await
        .at(Step::Read)?;
    let decision = decide(&guarded, &namespace, previous.as_ref(), now_seconds());
    if decision.changed {
        let _: CachedPolicy = ctx
            .apply_status(CONTROLLER, &namespace, &name, &decision.status)
            .await
            .at(Step::Status)?;
        info!(ready = ready_of(&decision.status), "status applied");
    }
    let regarding = guarded.object_ref(&());
    ctx.announce(CONTROLLER, &regarding, decision.transition.as_slice())
        .await;
    match &guarded.0 {
        Ok(_) => {
            ctx.succeeded(guarded.as_ref());
            Ok(Action::await_change())
        }
        // Said in its status; it waits for a change.
        Err(invalid) => Err(ReconcileError::Read(Error::Invalid(invalid.error.clone()))),
    }
}

/// The status the policy holds now. One that cannot be read as our type is
/// read again as plain JSON for its status alone (the operator's own
/// fields), so that its conditions keep their times and an unchanged one
/// is not written again.
async fn previous_status(
    ctx: &Context,
    guarded: &CachedPolicy,
    namespace: &str,
    name: &str,
) -> Result<Option<ApprovalPolicyStatus>> {
    if let Ok(policy) = &guarded.0 {
        return Ok(policy.status.clone());
    }
    let resource = ApiResource::erase::<ApprovalPolicy>(&());
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), namespace, &resource);
    let raw = api.get_opt(name).await?;
    Ok(raw
        .and_then(|o| o.data.get("status").cloned())
        .and_then(|s| serde_json::from_value(s).ok()))
}

/// What the controller should write and announce.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub status: ApprovalPolicyStatus,
    /// A change of Ready to announce.
    pub transition: Option<Transition>,
    /// Whether `status` differs from what the policy holds.
    pub changed: bool,
}

/// The decision for a policy as cached (pure): the status its spec earns,
/// or, when it cannot be read, a status that says why.
pub fn decide(
    guarded: &CachedPolicy,
    namespace: &str,
    previous: Option<&ApprovalPolicyStatus>,
    now: jiff::Timestamp,
) -> Decision {
    let generation = guarded.meta().generation;
    let status = match &guarded.0 {
        Ok(policy) => status_of(&policy.spec, namespace, generation, previous, now),
        Err(invalid) => unreadable(&invalid.error, generation, previous, now),
    };
    Decision {
        transition: ready_transition(previous, &status),
        changed: previous != Some(&status),
        status,
    }
}

/// The status of a policy that cannot be read: not Ready, and why.
/// Nothing else about it can be judged.
pub fn unreadable(
    error: &str,
    generation: Option<i64>,
    previous: Option<&ApprovalPolicyStatus>,
    now: jiff::Timestamp,
) -> ApprovalPolicyStatus {
    let ready = Condition::new(
        READY,
        FALSE,
        "InvalidObject",
        format!(
            "modelgate cannot read this ApprovalPolicy: {error}; approvals it applies to are not decided until it is fixed"
        ),
    );
    let before = previous.and_then(|p| condition::find(&p.conditions, READY));
    let at = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now);
    ApprovalPolicyStatus {
        conditions: vec![ready.stamped(before, &at, generation)],
        rules: Vec::new(),
        summary: None,
        observed_generation: generation,
    }
}

/// The change of Ready from `previous` to `status`, as its Event says it.
/// The first sight of a Ready policy has nothing to announce.
fn ready_transition(
    previous: Option<&ApprovalPolicyStatus>,
    status: &ApprovalPolicyStatus,
) -> Option<Transition> {
    let ready = condition::find(&status.conditions, READY)?;
    let before = previous.and_then(|p| condition::find(&p.conditions, READY));
    let from = before.map(|c| c.status.as_str());
    if from == Some(ready.status.as_str()) || (from.is_none() && ready.status == TRUE) {
        return None;
    }
    let severity = if ready.status == TRUE {
        Severity::Normal
    } else {
        Severity::Warning
    };
    Some(Transition::new(
        READY,
        from,
        &ready.status,
        ready.reason.clone().unwrap_or_default(),
        severity,
        ready.message.clone().unwrap_or_default(),
    ))
}

/// Ready's status, for the log.
fn ready_of(status: &ApprovalPolicyStatus) -> &str {
    condition::find(&status.conditions, READY).map_or("", |c| c.status.as_str())
}

/// The status a policy's spec earns: each rule compiled, Ready when all do,
/// and the rules at a glance.
pub fn status_of(
    spec: &ApprovalPolicySpec,
    namespace: &str,
    generation: Option<i64>,
    previous: Option<&ApprovalPolicyStatus>,
    now: jiff::Timestamp,
) -> ApprovalPolicyStatus {
    let rules: Vec<RuleStatus> = spec
        .gates
        .iter()
        .filter_map(|g| {
            let automatic = g.automatic.as_ref()?;
            let compiled = compile(&automatic.rule);
            Some(RuleStatus {
                gate: g.gate.clone(),
                compiles: compiled.is_ok(),
                message: compiled.err(),
            })
        })
        .collect();
    let broken: Vec<String> = rules
        .iter()
        .filter(|r| !r.compiles)
        .map(|r| {
            format!(
                "the rule of {} does not compile: {}",
                r.gate,
                r.message.clone().unwrap_or_default()
            )
        })
        .collect();
    let ready = if broken.is_empty() {
        Condition::new(
            READY,
            TRUE,
            "RulesCompile",
            "every rule compiles; approvals pin these rules on first sight",
        )
    } else {
        Condition::new(READY, FALSE, "RuleDoesNotCompile", broken.join("; "))
    };
    let at = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now);
    let stamp = |c: Condition| {
        let before = previous.and_then(|p| condition::find(&p.conditions, &c.type_));
        c.stamped(before, &at, generation)
    };
    ApprovalPolicyStatus {
        conditions: vec![
            stamp(ready),
            stamp(super::evaluators::condition(spec, namespace)),
        ],
        rules,
        summary: Some(summary(spec)),
        observed_generation: generation,
    }
}

/// e.g. "SecurityReview 2 reviewers; TechnicalReview rule (Decide)".
fn summary(spec: &ApprovalPolicySpec) -> String {
    let pinned = pin(Some(&ApprovalPolicy::new("summary", spec.clone())));
    let parts: Vec<String> = pinned
        .gates
        .iter()
        .filter_map(|g| {
            let rule = match (g.decider(), &g.automatic) {
                (Decider::Rule, _) => Some(format!("{} rule (Decide)", g.gate)),
                (Decider::Quorum(n), a) => Some(format!(
                    "{} {n} reviewers{}",
                    g.gate,
                    if a.is_some() { " + rule (Advise)" } else { "" }
                )),
                (Decider::Person, Some(_)) => Some(format!("{} rule (Advise)", g.gate)),
                (Decider::Person | Decider::Imported, None) => None,
                (Decider::Imported, Some(_)) => None,
            };
            let due = g.deadline.as_ref().map(|d| match &d.expire_after {
                Some(e) => format!("due {}, expires {e}", d.review_within),
                None => format!("due {}", d.review_within),
            });
            match (rule, due) {
                (Some(r), Some(d)) => Some(format!("{r}, {d}")),
                (None, Some(d)) => Some(format!("{} {d}", g.gate)),
                (r, None) => r,
            }
        })
        .collect();
    if parts.is_empty() {
        "one reviewer per gate".into()
    } else {
        parts.join("; ")
    }
}

fn error_policy(policy: Arc<CachedPolicy>, error: &ReconcileError, ctx: Arc<Context>) -> Action {
    ctx.after_error(CONTROLLER, policy.as_ref(), error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::policy::{Automatic, GateRule, RuleMode};

    #[test]
    fn a_rule_that_does_not_compile_makes_the_policy_not_ready() {
        let spec = |rule: &str| ApprovalPolicySpec {
            valid_for: None,
            break_glass: None,
            local_gates: Vec::new(),
            gates: vec![
                GateRule {
                    gate: "TechnicalReview".into(),
                    reviewers: None,
                    automatic: Some(Automatic {
                        rule: rule.into(),
                        measured_by: vec!["ci".into()],
                        mode: RuleMode::Decide,
                    }),
                    deadline: None,
                },
                GateRule {
                    gate: "SecurityReview".into(),
                    reviewers: Some(2),
                    automatic: None,
                    deadline: None,
                },
            ],
        };
        let t0 = jiff::Timestamp::from_second(1_800_000_000).expect("time");
        let good = status_of(&spec("m.auc >= 0.9"), "risk", Some(1), None, t0);
        assert_eq!(good.conditions[0].status, TRUE);
        assert_eq!(
            good.summary.as_deref(),
            Some("TechnicalReview rule (Decide); SecurityReview 2 reviewers")
        );
        // Later, with nothing changed, the status is the same: no write.
        let later = t0 + jiff::SignedDuration::from_hours(1);
        let again = status_of(&spec("m.auc >= 0.9"), "risk", Some(1), Some(&good), later);
        assert_eq!(again, good);
        let bad = status_of(&spec("m.auc >= "), "risk", Some(2), Some(&good), later);
        assert_eq!(
            bad.conditions[0].last_transition_time.as_ref().map(|t| t.0),
            Some(later),
            "a change of Ready is stamped with its own time"
        );
        assert_eq!(bad.conditions[0].status, FALSE);
        assert!(
            bad.conditions[0]
                .message
                .as_deref()
                .unwrap_or_default()
                .contains("TechnicalReview does not compile")
        );
        assert!(!bad.rules[0].compiles);
    }

    const POLICIES: &str = "/apis/modelgate.io/v1alpha1/namespaces/risk/approvalpolicies";

    fn policy(spec: serde_json::Value) -> serde_json::Value {
        serde_json::json!({
            "apiVersion": "modelgate.io/v1alpha1", "kind": "ApprovalPolicy",
            "metadata": {"name": "default", "namespace": "risk", "uid": "p-1", "generation": 3},
            "spec": spec,
        })
    }

    /// Runs one reconcile of `object` against `scenario`, which must see
    /// every request; the reconcile's result and the metrics it left.
    async fn reconcile_with<F>(
        object: &serde_json::Value,
        scenario: impl FnOnce(crate::fixtures::ApiServer) -> F,
    ) -> (Result<Action, ReconcileError>, String)
    where
        F: Future<Output = crate::fixtures::ApiServer> + Send + 'static,
    {
        let (ctx, server) = crate::fixtures::context();
        let guarded: CachedPolicy =
            serde_json::from_value(object.clone()).unwrap_or_else(|e| panic!("fixture: {e}"));
        let guarded = Arc::new(guarded);
        let scenario = tokio::spawn(scenario(server));
        let result = reconcile(guarded.clone(), ctx.clone()).await;
        if let Err(e) = &result {
            error_policy(guarded, e, ctx.clone());
        }
        let metrics = ctx.metrics.encode();
        let server = scenario.await.unwrap_or_else(|e| panic!("scenario: {e}"));
        drop(ctx);
        server.nothing_more().await;
        (result, metrics)
    }

    #[tokio::test]
    async fn a_valid_policy_is_ready_without_an_event() {
        let object = policy(serde_json::json!({"gates": [
            {"gate": "SecurityReview", "reviewers": 2},
        ]}));
        let answer = object.clone();
        let (result, _) = reconcile_with(&object, |mut server| async move {
            let write = server
                .expect(http::Method::PATCH, &format!("{POLICIES}/default/status"))
                .await;
            write.assert_applied_by(crate::vocabulary::FIELD_MANAGER);
            let status = write.body["status"].clone();
            assert_eq!(status["conditions"][0]["type"], READY);
            assert_eq!(status["conditions"][0]["status"], TRUE);
            assert_eq!(status["conditions"][0]["reason"], "RulesCompile");
            assert_eq!(status["observedGeneration"], 3);
            assert_eq!(status["summary"], "SecurityReview 2 reviewers");
            write.ok(crate::fixtures::merged(
                &answer,
                &serde_json::json!({"status": status}),
            ));
            // Ready on first sight is no news: no Event.
            server
        })
        .await;
        assert_eq!(result.ok(), Some(Action::await_change()));
    }

    #[tokio::test]
    async fn a_policy_that_cannot_be_read_says_so_and_waits() {
        let object = policy(serde_json::json!({"gates": "all of them"}));
        let raw = object.clone();
        let (result, metrics) = reconcile_with(&object, |mut server| async move {
            // Its status is read on its own, so that an unchanged one is
            // not written again.
            server
                .expect(http::Method::GET, &format!("{POLICIES}/default"))
                .await
                .ok(raw.clone());
            let write = server
                .expect(http::Method::PATCH, &format!("{POLICIES}/default/status"))
                .await;
            write.assert_applied_by(crate::vocabulary::FIELD_MANAGER);
            let ready = write.body["status"]["conditions"][0].clone();
            assert_eq!(
                (&ready["type"], &ready["status"]),
                (&serde_json::json!(READY), &serde_json::json!(FALSE))
            );
            assert_eq!(ready["reason"], "InvalidObject");
            let message = ready["message"].as_str().unwrap_or_default();
            assert!(
                message.contains("cannot read this ApprovalPolicy"),
                "{message}"
            );
            let answer = crate::fixtures::merged(
                &raw,
                &serde_json::json!({"status": write.body["status"].clone()}),
            );
            write.ok(answer);
            let event = server
                .expect(
                    http::Method::POST,
                    "/apis/events.k8s.io/v1/namespaces/risk/events",
                )
                .await;
            assert_eq!(event.body["type"], "Warning");
            assert_eq!(event.body["reason"], "InvalidObject");
            assert_eq!(event.body["action"], READY);
            assert_eq!(event.body["regarding"]["name"], "default");
            event.created();
            server
        })
        .await;
        let Err(error) = result else {
            panic!("an unreadable policy is not a success: {result:?}");
        };
        assert_eq!(error.step(), Step::Read);
        assert!(!error.retryable(), "it waits for a change");
        assert!(
            metrics.contains(r#"modelgate_reconcile_errors_total{controller="policy",error="invalid",step="read"} 1"#),
            "{metrics}"
        );
    }

    #[test]
    fn an_unreadable_policy_unchanged_is_not_written_again() {
        let guarded: CachedPolicy = serde_json::from_value(policy(serde_json::json!({"gates": 7})))
            .unwrap_or_else(|e| panic!("fixture: {e}"));
        let t0 = jiff::Timestamp::from_second(1_800_000_000).expect("time");
        let first = decide(&guarded, "risk", None, t0);
        assert!(first.changed);
        assert_eq!(
            first.transition.as_ref().map(|t| t.reason.as_str()),
            Some("InvalidObject")
        );
        let later = t0 + jiff::SignedDuration::from_hours(1);
        let again = decide(&guarded, "risk", Some(&first.status), later);
        assert!(!again.changed && again.transition.is_none(), "{again:?}");
    }
}
