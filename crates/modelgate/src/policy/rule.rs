//! Automatic gates: a CEL rule over the measurements, compiled and run with
//! the `cel` crate. Pure: the rule and the values in, a verdict out.

use std::collections::HashMap;

use cel::{Context, ExecutionError, Program, Value};

use crate::api::policy::Measurement;

/// What a rule made of the measurements.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// The rule held (true) or did not (false); the values it had.
    Decided { passed: bool, seen: String },
    /// A measurement the rule reads is not there yet.
    Missing(String),
    /// The rule does not compile, or does not give a boolean.
    Broken(String),
}

/// Compiles `rule`, or says why it does not.
pub fn compile(rule: &str) -> Result<Program, String> {
    // The parser of cel 0.13 can panic on some malformed input; a broken
    // rule must be a message, never a crash of the operator.
    match std::panic::catch_unwind(|| Program::compile(rule)) {
        Ok(Ok(program)) => Ok(program),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("the rule cannot be parsed".into()),
    }
}

/// Runs `rule` over `measurements` (as `m.<name>`).
pub fn evaluate(rule: &str, measurements: &[Measurement]) -> Verdict {
    let program = match compile(rule) {
        Ok(p) => p,
        Err(e) => return Verdict::Broken(format!("the rule does not compile: {e}")),
    };
    let values: HashMap<String, f64> = measurements
        .iter()
        .map(|m| (m.name.clone(), m.value))
        .collect();
    let mut context = Context::default();
    context.add_variable_from_value("m", values);
    match program.execute(&context) {
        Ok(Value::Bool(passed)) => Verdict::Decided {
            passed,
            seen: seen(measurements),
        },
        Ok(other) => Verdict::Broken(format!("the rule gave {other:?}, not true or false")),
        Err(ExecutionError::NoSuchKey(name)) => Verdict::Missing(name.to_string()),
        Err(e) => Verdict::Broken(format!("the rule failed: {e}")),
    }
}

/// The values and who measured them, for the gate's message.
fn seen(measurements: &[Measurement]) -> String {
    let mut parts: Vec<String> = measurements
        .iter()
        .map(|m| format!("{}={} (by {})", m.name, m.value, m.measured_by))
        .collect();
    parts.sort();
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn m(name: &str, value: f64) -> Measurement {
        Measurement {
            name: name.into(),
            value,
            measured_by: "system:serviceaccount:ml:evaluator".into(),
            ..Measurement::default()
        }
    }

    const RULE: &str = "m.auc >= 0.92 && m.latency_p99_ms <= 50";

    #[test]
    fn a_rule_passes_fails_waits_and_breaks() {
        assert!(matches!(
            evaluate(RULE, &[m("auc", 0.94), m("latency_p99_ms", 41.0)]),
            Verdict::Decided { passed: true, .. }
        ));
        assert!(matches!(
            evaluate(RULE, &[m("auc", 0.90), m("latency_p99_ms", 41.0)]),
            Verdict::Decided { passed: false, .. }
        ));
        assert_eq!(
            evaluate(RULE, &[m("auc", 0.94)]),
            Verdict::Missing("latency_p99_ms".into())
        );
        assert!(matches!(evaluate("m.auc >= ", &[]), Verdict::Broken(_)));
        assert!(matches!(
            evaluate("m.auc", &[m("auc", 1.0)]),
            Verdict::Broken(_)
        ));
    }

    proptest! {
        #[test]
        fn a_threshold_rule_agrees_with_arithmetic(auc in 0.0f64..1.0, lat in 0.0f64..100.0) {
            let verdict = evaluate(RULE, &[m("auc", auc), m("latency_p99_ms", lat)]);
            let want = auc >= 0.92 && lat <= 50.0;
            let agrees = matches!(verdict, Verdict::Decided { passed, .. } if passed == want);
            prop_assert!(agrees, "{:?} for auc {} latency {}", verdict, auc, lat);
        }

        #[test]
        fn any_text_is_a_verdict_never_a_panic(rule in ".{0,40}") {
            let _ = evaluate(&rule, &[m("auc", 0.5)]);
        }
    }
}
