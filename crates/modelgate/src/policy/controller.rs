//! Watches ApprovalPolicies and says in each one's status whether its rules
//! compile (Ready), with the compiler's message for each that does not.
//! The same cache serves the approval controller, which pins from it.

use std::sync::Arc;

use futures::{Future, StreamExt, TryStreamExt};
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use tracing::instrument;

use super::pin::{Decider, pin};
use super::rule::compile;
use crate::api::condition::{Condition, FALSE, TRUE};
use crate::api::policy::{ApprovalPolicy, ApprovalPolicySpec, ApprovalPolicyStatus, RuleStatus};
use crate::context::{Context, now_seconds};
use crate::error::{Error, Result};
use crate::runtime::Synced;

/// This controller's name in metrics.
const CONTROLLER: &str = "policy";

/// The policy cache (for pinning) and the controller that keeps policies'
/// status, ready to be driven until `shutdown`.
pub fn run(
    ctx: Arc<Context>,
    config: watcher::Config,
    synced: Arc<Synced>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> (Store<ApprovalPolicy>, impl Future<Output = ()>) {
    ctx.metrics.start_at_zero(CONTROLLER, &Error::METRIC_LABELS);
    let mut marker = synced.marker::<ApprovalPolicy>("approvalpolicies");
    let (store, writer) = reflector::store();
    let stream = watcher(Api::<ApprovalPolicy>::all(ctx.client.clone()), config)
        .default_backoff()
        .reflect(writer)
        .inspect_ok(move |event| marker(event))
        .applied_objects();
    let concurrency = ctx.concurrency;
    let controller = Controller::for_stream(stream, store.clone())
        .with_config(crate::runtime::controller_config(concurrency))
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|_| futures::future::ready(()));
    (store, controller)
}

/// Decide (pure) → write status when it changed.
#[instrument(skip_all, fields(namespace = policy.namespace().unwrap_or_default(), name = %policy.name_any()))]
async fn reconcile(policy: Arc<ApprovalPolicy>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ctx.metrics.reconcile(CONTROLLER);
    let namespace = policy
        .namespace()
        .ok_or(Error::MissingMetadata("namespace"))?;
    let status = status_of(
        &policy.spec,
        &namespace,
        policy.meta().generation,
        policy.status.as_ref(),
        now_seconds(),
    );
    if policy.status.as_ref() != Some(&status) {
        let _: ApprovalPolicy = ctx
            .apply_status(CONTROLLER, &namespace, &policy.name_any(), &status)
            .await?;
    }
    Ok(Action::await_change())
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
            "Ready",
            TRUE,
            "RulesCompile",
            "every rule compiles; approvals pin these rules on first sight",
        )
    } else {
        Condition::new("Ready", FALSE, "RuleDoesNotCompile", broken.join("; "))
    };
    let at = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now);
    let stamp = |c: Condition| {
        let before = previous.and_then(|p| crate::api::condition::find(&p.conditions, &c.type_));
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
        .filter_map(|g| match (g.decider(), &g.automatic) {
            (Decider::Rule, _) => Some(format!("{} rule (Decide)", g.gate)),
            (Decider::Quorum(n), a) => Some(format!(
                "{} {n} reviewers{}",
                g.gate,
                if a.is_some() { " + rule (Advise)" } else { "" }
            )),
            (Decider::Person, Some(_)) => Some(format!("{} rule (Advise)", g.gate)),
            (Decider::Person, None) => None,
        })
        .collect();
    if parts.is_empty() {
        "one reviewer per gate".into()
    } else {
        parts.join("; ")
    }
}

fn error_policy(policy: Arc<ApprovalPolicy>, error: &Error, ctx: Arc<Context>) -> Action {
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
            gates: vec![
                GateRule {
                    gate: "TechnicalReview".into(),
                    reviewers: None,
                    automatic: Some(Automatic {
                        rule: rule.into(),
                        measured_by: vec!["ci".into()],
                        mode: RuleMode::Decide,
                    }),
                },
                GateRule {
                    gate: "SecurityReview".into(),
                    reviewers: Some(2),
                    automatic: None,
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
}
