//! The one grammar of `validFor`, read alike by the API server and the
//! operator.
//!
//! The API server checks the CRD's rule `self.matches(PATTERN)`; the operator
//! reads a value with [`parse`], which accepts exactly the strings the
//! pattern matches (property-tested below). Before, the API server's
//! `duration()` took forms such as "1s1m" that the operator could not read,
//! and an unreadable validFor meant an approval that never lapsed.
//!
//! The grammar: hours, then minutes, then seconds, each at most once and in
//! that order, each a whole number from 1 to 999999 without leading zeros,
//! at least one part: `2160h`, `720h30m`, `45m`, `1h30m15s`. Days are left
//! out (a day is not always 24 hours, and the API server's `duration()` has
//! no such unit); the six-digit cap keeps every expiry well inside the
//! timestamps the operator can write (999999h is about 114 years).

use jiff::SignedDuration;

/// The pattern's body, as a macro so that it can be spliced into the CEL
/// rule at compile time (`concat!` takes only literals).
macro_rules! body {
    () => {
        "([1-9][0-9]{0,5}h([1-9][0-9]{0,5}m)?([1-9][0-9]{0,5}s)?|[1-9][0-9]{0,5}m([1-9][0-9]{0,5}s)?|[1-9][0-9]{0,5}s)"
    };
}

/// The accepted strings, anchored: RE2 syntax (the API server's CEL
/// `matches`) that the `regex` crate reads the same way.
pub const PATTERN: &str = concat!("^", body!(), "$");

/// The chart's `defaultPolicy.validFor`, where empty means "none".
pub const CHART_PATTERN: &str = concat!("^(", body!(), ")?$");

/// The CRD rule for `validFor`.
pub const RULE: &str = concat!("self.matches('^", body!(), "$')");

/// The refusal, showing the accepted form.
pub const MESSAGE: &str = "validFor must be a positive duration of whole hours, minutes and seconds, in that order and each at most once, such as 2160h, 720h30m or 45m";

/// The largest number a part may carry.
const PART_MAX: i64 = 999_999;

/// The duration `value` names, or None when it is not in the grammar.
/// Every string [`PATTERN`] matches gives a positive duration; no other
/// string gives one.
pub fn parse(value: &str) -> Option<SignedDuration> {
    let mut total = SignedDuration::ZERO;
    let mut rest = value;
    // Each unit may follow only a larger one: h, then m, then s.
    for (unit, seconds) in [("h", 3600), ("m", 60), ("s", 1)] {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || !rest[digits..].starts_with(unit) {
            continue;
        }
        let n = part(&rest[..digits])?;
        total = total.checked_add(SignedDuration::from_secs(n * seconds))?;
        rest = &rest[digits + unit.len()..];
    }
    (rest.is_empty() && total.is_positive()).then_some(total)
}

/// One part's number: 1 to [`PART_MAX`], no leading zero.
fn part(digits: &str) -> Option<i64> {
    if digits.starts_with('0') || digits.len() > 6 {
        return None;
    }
    digits
        .parse::<i64>()
        .ok()
        .filter(|n| (1..=PART_MAX).contains(n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pattern() -> regex::Regex {
        regex::Regex::new(PATTERN).expect("the pattern compiles")
    }

    #[test]
    fn the_documented_forms_parse() {
        for (s, secs) in [
            ("2160h", 2160 * 3600),
            ("720h30m", 720 * 3600 + 30 * 60),
            ("45m", 45 * 60),
            ("1h30m15s", 3600 + 30 * 60 + 15),
            ("1h15s", 3600 + 15),
            ("5s", 5),
            ("999999h", 999_999 * 3600),
        ] {
            assert_eq!(parse(s), Some(SignedDuration::from_secs(secs)), "{s}");
            assert!(pattern().is_match(s), "{s}");
        }
    }

    #[test]
    fn strings_outside_the_grammar_are_refused_by_both() {
        for s in [
            "1s1m", "1m2159h", "", "0h", "-1h", "1.5h", "90d", "1500ms", "1h1h", "01h", "h",
            "1h0m", "1000000h", " 1h", "1h ", "1H", "+1h", "2160", "1m1h", "1s1h",
        ] {
            assert_eq!(parse(s), None, "{s:?} parsed");
            assert!(!pattern().is_match(s), "{s:?} matched");
        }
    }

    #[test]
    fn the_rule_and_the_chart_carry_the_pattern() {
        assert_eq!(RULE, format!("self.matches('{PATTERN}')"));
        let schema: serde_json::Value = serde_json::from_str(include_str!(
            "../../../../charts/modelgate/values.schema.json"
        ))
        .expect("the chart's schema is JSON");
        let chart = &schema["properties"]["defaultPolicy"]["properties"]["validFor"]["pattern"];
        assert_eq!(chart, CHART_PATTERN);
    }

    proptest! {
        /// Every string the pattern matches parses to a positive duration.
        #[test]
        fn every_match_parses(s in PATTERN.trim_start_matches('^').trim_end_matches('$')) {
            prop_assert!(pattern().is_match(&s));
            prop_assert!(parse(&s).is_some_and(|d| d.is_positive()), "{s:?}");
        }

        /// And nothing else does: strings of digits and unit letters, in
        /// any order, parse exactly when the pattern matches.
        #[test]
        fn parse_accepts_exactly_the_pattern(s in "[0-9hms.d -]{0,12}") {
            prop_assert_eq!(parse(&s).is_some(), pattern().is_match(&s), "{:?}", s);
        }
    }
}
