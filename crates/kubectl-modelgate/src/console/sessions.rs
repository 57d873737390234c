//! Who is signed in to the console in the cluster: a session per browser,
//! kept in memory under a random identifier (the cookie holds nothing but
//! that identifier, so a forged or replayed cookie names no one). The map
//! is bounded; the sign-ins under way are kept by the browsers themselves
//! (`signin`), so nothing here grows with requests nobody signed in for.
//!
//! Pure bookkeeping with the clock passed in; the handlers in `signin` do
//! the talking.

use std::collections::HashMap;
use std::sync::Mutex;

use jiff::Timestamp;

/// The most sessions at once; the one nearest its end goes first. Each
/// holds a client of its own (docs/console.md gives its memory).
const MAX_SESSIONS: usize = 1000;

/// A fresh random identifier: 32 bytes from the operating system, as hex.
pub fn random_id() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(hex::encode(bytes))
}

/// A store of `T` by identifier, each with the moment it ends.
pub struct Expiring<T> {
    entries: Mutex<HashMap<String, (Timestamp, T)>>,
    max: usize,
}

impl<T: Clone> Expiring<T> {
    fn with_max(max: usize) -> Self {
        Expiring {
            entries: Mutex::new(HashMap::new()),
            max,
        }
    }

    /// Sessions of signed-in people.
    pub fn sessions() -> Self {
        Self::with_max(MAX_SESSIONS)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Timestamp, T)>> {
        // A panic elsewhere while holding the lock leaves a map that is
        // still whole: every change to it is a single insert or remove.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps `value` under `id` until `ends`, first dropping what has
    /// ended and, when full, what ends soonest.
    pub fn insert(&self, id: String, value: T, ends: Timestamp, now: Timestamp) {
        let mut map = self.lock();
        map.retain(|_, (end, _)| *end > now);
        while map.len() >= self.max {
            let Some(first) = map.iter().min_by_key(|(_, (end, _))| *end) else {
                break;
            };
            let first = first.0.clone();
            map.remove(&first);
        }
        map.insert(id, (ends, value));
    }

    /// The value under `id` if it has not ended; an ended one is dropped.
    pub fn get(&self, id: &str, now: Timestamp) -> Lookup<T> {
        let mut map = self.lock();
        match map.get(id) {
            None => Lookup::Unknown,
            Some((end, _)) if *end <= now => {
                map.remove(id);
                Lookup::Ended
            }
            Some((_, value)) => Lookup::Live(value.clone()),
        }
    }

    pub fn remove(&self, id: &str) {
        self.lock().remove(id);
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }
}

/// What a lookup found.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup<T> {
    Live(T),
    /// It was there and has ended: the person is told to sign in again.
    Ended,
    /// Never issued, forged, or signed out.
    Unknown,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).expect("a time")
    }

    #[test]
    fn a_session_lives_until_its_end_and_not_a_moment_longer() {
        let s = Expiring::sessions();
        s.insert("a".into(), 1, t(60), t(0));
        assert_eq!(s.get("a", t(59)), Lookup::Live(1));
        assert_eq!(s.get("a", t(60)), Lookup::Ended);
        assert_eq!(s.get("a", t(61)), Lookup::Unknown, "an ended one is gone");
        assert_eq!(s.get("forged", t(0)), Lookup::Unknown);
    }

    #[test]
    fn a_full_store_drops_what_ends_soonest() {
        let s = Expiring::with_max(2);
        s.insert("soon".into(), 1, t(10), t(0));
        s.insert("later".into(), 2, t(100), t(0));
        s.insert("new".into(), 3, t(50), t(0));
        assert_eq!(s.len(), 2);
        assert_eq!(s.get("soon", t(1)), Lookup::Unknown);
        assert_eq!(s.get("later", t(1)), Lookup::Live(2));
    }

    #[test]
    fn ended_entries_are_dropped_on_the_next_insert() {
        let s = Expiring::sessions();
        s.insert("old".into(), 1, t(10), t(0));
        s.insert("new".into(), 2, t(100), t(20));
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn identifiers_are_long_and_differ() {
        let a = random_id().expect("random");
        let b = random_id().expect("random");
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }
}
