//! The hash chain over an approval's history.
//!
//! Each entry's `hash` is the SHA-256, in lower-case hex, of the canonical
//! JSON (RFC 8785, JCS) of the entry as stored, without its `hash` field and
//! with one field added: `prev`, the hash of the entry before it (`""` for the
//! first entry of the chain). JCS was chosen because its bytes follow from
//! the JSON value alone (sorted keys, fixed number and string forms), so a
//! verifier in any language gets the same bytes from the same record; and
//! because the hash is taken over the JSON as stored, not over a Rust type,
//! a field a later version adds is covered too.
//!
//! When old entries are dropped, status keeps `historyBase`: the hash the
//! first kept entry links to, so the chain stays checkable from there.

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::api::approval::HistoryEntry;

/// Why a chain does not hold, naming the entry.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error("history entry {index} is not a JSON object")]
    NotAnObject { index: usize },
    #[error("history entry seq {seq} has no hash")]
    Unhashed { seq: i64 },
    #[error(
        "history entry seq {seq} does not match its hash: the entry was changed after it was recorded"
    )]
    Changed { seq: i64 },
    #[error("history entry seq {after} is followed by seq {next}: {what}")]
    Broken {
        after: i64,
        next: i64,
        what: &'static str,
    },
    #[error("history entry {index} has no seq")]
    NoSeq { index: usize },
    #[error("the history's head {claimed} is not its newest entry's hash {actual}")]
    Head { claimed: String, actual: String },
    #[error("cannot write canonical JSON: {0}")]
    Canonical(String),
}

/// The hash of `entry` (a history entry as JSON, its own `hash` ignored)
/// linked to `prev`.
pub fn link(prev: &str, entry: &Value) -> Result<String, ChainError> {
    let Value::Object(fields) = entry else {
        return Err(ChainError::NotAnObject { index: 0 });
    };
    let mut fields = fields.clone();
    fields.remove("hash");
    fields.insert("prev".into(), Value::String(prev.to_string()));
    let bytes = serde_jcs::to_vec(&Value::Object(fields))
        .map_err(|e| ChainError::Canonical(e.to_string()))?;
    Ok(hex::encode(Sha256::digest(&bytes)))
}

/// Gives each new entry its `seq` and `hash`, continuing from `last` (the
/// newest entry already recorded, if any, or the base when all were dropped).
///
/// Entries recorded before the chain existed carry no seq or hash; the chain
/// then starts at the next seq after the count of entries ever recorded.
pub fn extend(
    last: Option<&HistoryEntry>,
    base: Option<&str>,
    ever: i64,
    new: &mut [HistoryEntry],
) -> Result<(), ChainError> {
    let (mut seq, mut prev) = match last {
        Some(HistoryEntry {
            seq: Some(seq),
            hash: Some(hash),
            ..
        }) => (*seq, hash.clone()),
        Some(_) => (ever, String::new()),
        None => (ever, base.unwrap_or_default().to_string()),
    };
    for entry in new {
        seq += 1;
        entry.seq = Some(seq);
        entry.hash = None;
        let json =
            serde_json::to_value(&*entry).map_err(|e| ChainError::Canonical(e.to_string()))?;
        let hash = link(&prev, &json)?;
        entry.hash = Some(hash.clone());
        prev = hash;
    }
    Ok(())
}

/// Checks a stored history (as JSON, oldest first) against its base and head:
/// every hashed entry matches its hash, seqs run on by one, and the head is
/// the newest hash. Entries before the first hashed one (recorded before the
/// chain existed) are not checked.
pub fn verify(entries: &[Value], base: Option<&str>, head: Option<&str>) -> Result<(), ChainError> {
    let first = entries.iter().position(|e| e.get("hash").is_some());
    let Some(first) = first else {
        return match head {
            Some(claimed) if !claimed.is_empty() => Err(ChainError::Head {
                claimed: claimed.to_string(),
                actual: String::new(),
            }),
            _ => Ok(()),
        };
    };
    let chained = &entries[first..];
    let seqs = chained
        .iter()
        .enumerate()
        .map(|(i, e)| {
            e.get("seq")
                .and_then(Value::as_i64)
                .ok_or(ChainError::NoSeq { index: first + i })
        })
        .collect::<Result<Vec<i64>, _>>()?;
    order(&seqs)?;
    let mut prev = if first == 0 {
        base.unwrap_or_default().to_string()
    } else {
        String::new()
    };
    for (entry, seq) in chained.iter().zip(seqs) {
        let stored = entry
            .get("hash")
            .and_then(Value::as_str)
            .ok_or(ChainError::Unhashed { seq })?;
        if link(&prev, entry)? != stored {
            return Err(ChainError::Changed { seq });
        }
        prev = stored.to_string();
    }
    match head {
        Some(claimed) if claimed != prev => Err(ChainError::Head {
            claimed: claimed.to_string(),
            actual: prev,
        }),
        _ => Ok(()),
    }
}

/// Seqs that run on by one, or what is wrong with them: entries out of
/// order are named first, since a swap also looks like a gap.
fn order(seqs: &[i64]) -> Result<(), ChainError> {
    let pairs = || seqs.windows(2).map(|w| (w[0], w[1]));
    let broken = |(after, next): (i64, i64), what| ChainError::Broken { after, next, what };
    if let Some(pair) = pairs().find(|(a, n)| n < a) {
        return Err(broken(pair, "entries were reordered"));
    }
    if let Some(pair) = pairs().find(|(a, n)| n == a) {
        return Err(broken(pair, "an entry was repeated"));
    }
    match pairs().find(|(a, n)| n - a > 1) {
        Some(pair) => Err(broken(pair, "an entry was removed")),
        None => Ok(()),
    }
}

/// An unchained history entry for tests, `second` seconds after a fixed
/// moment.
#[cfg(test)]
pub(crate) fn test_entry(
    second: i64,
    subject: &str,
    to: &str,
    reviewer: Option<&str>,
) -> HistoryEntry {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    HistoryEntry {
        time: Time(jiff::Timestamp::from_second(1_790_000_000 + second).unwrap_or_default()),
        subject: subject.into(),
        from: String::new(),
        to: to.into(),
        reviewer: reviewer.map(Into::into),
        reason: Some("Checked".into()),
        message: None,
        seq: None,
        hash: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(subject: &str, to: &str, reviewer: Option<&str>) -> HistoryEntry {
        test_entry(0, subject, to, reviewer)
    }

    fn chained(n: usize) -> Vec<HistoryEntry> {
        let mut entries: Vec<_> = (0..n)
            .map(|i| entry("SecurityReview", "True", Some(&format!("r{i}@example.com"))))
            .collect();
        extend(None, None, 0, &mut entries).expect("extend");
        entries
    }

    fn json(entries: &[HistoryEntry]) -> Vec<Value> {
        entries
            .iter()
            .map(|e| serde_json::to_value(e).expect("json"))
            .collect()
    }

    fn head(entries: &[HistoryEntry]) -> Option<&str> {
        entries.last().and_then(|e| e.hash.as_deref())
    }

    #[test]
    fn a_chain_verifies_and_names_each_kind_of_tampering() {
        let entries = chained(4);
        assert_eq!(
            entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [Some(1), Some(2), Some(3), Some(4)]
        );
        let good = json(&entries);
        assert_eq!(verify(&good, None, head(&entries)), Ok(()));

        let mut changed = good.clone();
        changed[1]["reviewer"] = "mallory@example.com".into();
        assert_eq!(
            verify(&changed, None, head(&entries)),
            Err(ChainError::Changed { seq: 2 })
        );

        let mut removed = good.clone();
        removed.remove(2);
        assert_eq!(
            verify(&removed, None, head(&entries)),
            Err(ChainError::Broken {
                after: 2,
                next: 4,
                what: "an entry was removed"
            })
        );

        let mut reordered = good.clone();
        reordered.swap(1, 2);
        assert_eq!(
            verify(&reordered, None, head(&entries)),
            Err(ChainError::Broken {
                after: 3,
                next: 2,
                what: "entries were reordered"
            })
        );

        let mut last_dropped = good.clone();
        last_dropped.pop();
        assert!(matches!(
            verify(&last_dropped, None, head(&entries)),
            Err(ChainError::Head { .. })
        ));
    }

    #[test]
    fn a_capped_history_verifies_from_its_base() {
        let entries = chained(5);
        let kept = &entries[2..];
        let base = entries[1].hash.as_deref();
        assert_eq!(verify(&json(kept), base, head(&entries)), Ok(()));
        assert_eq!(
            verify(&json(kept), None, head(&entries)),
            Err(ChainError::Changed { seq: 3 })
        );
    }

    #[test]
    fn extending_continues_the_chain_and_legacy_entries_are_left_alone() {
        let mut entries = chained(2);
        let mut more = vec![entry("Phase", "Approved", None)];
        extend(entries.last(), None, 2, &mut more).expect("extend");
        entries.extend(more);
        assert_eq!(entries[2].seq, Some(3));
        assert_eq!(verify(&json(&entries), None, head(&entries)), Ok(()));

        let mut legacy = vec![entry("Phase", "Approved", None)];
        let mut new = vec![entry("Phase", "Expired", None)];
        extend(legacy.last(), None, 7, &mut new).expect("extend");
        assert_eq!(new[0].seq, Some(8));
        legacy.extend(new);
        assert_eq!(verify(&json(&legacy), None, head(&legacy)), Ok(()));
    }

    proptest! {
        #[test]
        fn any_single_field_change_is_caught(n in 1usize..8, at in 0usize..8, text in "[a-z]{1,12}") {
            let entries = chained(n);
            let at = at % n;
            let mut tampered = json(&entries);
            let was = tampered[at]["message"].clone();
            tampered[at]["message"] = Value::String(text.clone());
            prop_assume!(was != Value::String(text));
            prop_assert_eq!(
                verify(&tampered, None, head(&entries)),
                Err(ChainError::Changed { seq: at as i64 + 1 })
            );
        }
    }
}
