//! Who is signed in to the console in the cluster: a session per browser,
//! kept in memory under a random identifier (the cookie holds nothing but
//! that identifier, so a forged or replayed cookie names no one), and
//! owned by the person the API server said the token names.
//!
//! The store is bounded twice, so that no one can push anyone else out: a
//! person holds at most `per_person` sessions (a new sign-in beyond that
//! ends their own oldest), and when all `sessions` are taken a sign-in of
//! someone who holds none is refused; no sign-in ever ends another
//! person's session. Each session carries an [`Ending`]: when the session
//! leaves the store (signed out, ended, replaced) it is dropped, and
//! whatever follows the session (its live pages) sees [`Ended`] resolve.
//! The sign-ins under way are kept by the browsers themselves (`signin`),
//! so nothing here grows with requests nobody signed in for.
//!
//! Pure bookkeeping with the clock passed in; the handlers in `signin` do
//! the talking.

use std::collections::HashMap;
use std::sync::Mutex;

use jiff::{SignedDuration, Timestamp};
use tokio::sync::watch;

/// The most sessions at once by default. Each holds a client of its own
/// (docs/console.md gives its memory).
pub const MAX_SESSIONS: usize = 1000;
/// The most sessions one person holds at once by default: a few browsers
/// and devices.
pub const MAX_SESSIONS_PER_PERSON: usize = 5;

/// A fresh random identifier: 32 bytes from the operating system, as hex.
pub fn random_id() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(hex::encode(bytes))
}

/// Kept with a session in the store; dropping it ends what follows the
/// session.
pub struct Ending {
    _sender: watch::Sender<()>,
}

/// Held by what follows a session: resolves once the session has left the
/// store. Cloning it is cheap.
#[derive(Clone)]
pub struct Ended(Option<watch::Receiver<()>>);

/// A session's end signal: the store keeps the first, followers the second.
pub fn end_signal() -> (Ending, Ended) {
    let (tx, rx) = watch::channel(());
    (Ending { _sender: tx }, Ended(Some(rx)))
}

impl Ended {
    /// For the local console's caller, whose session is the process.
    pub fn never() -> Ended {
        Ended(None)
    }

    /// Waits until the session has left the store (at once if it has).
    pub async fn wait(self) {
        match self.0 {
            // Nothing is ever sent: `changed` errs once the sender is gone.
            Some(mut rx) => while rx.changed().await.is_ok() {},
            None => futures::future::pending().await,
        }
    }
}

/// How many sessions the store keeps.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// In all.
    pub sessions: usize,
    /// Of one person.
    pub per_person: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            sessions: MAX_SESSIONS,
            per_person: MAX_SESSIONS_PER_PERSON,
        }
    }
}

struct Entry<T> {
    /// Who the API server said the session's token names.
    owner: String,
    /// When it was opened, in order: a person's smallest is their oldest.
    opened: u64,
    ends: Timestamp,
    /// Dropped when the session is seen ended: what is remembered then is
    /// a notice, not the person's client.
    value: Option<T>,
    /// Dropped when the session ends, which ends what follows it.
    ending: Option<Ending>,
}

impl<T> Entry<T> {
    fn end(&mut self) {
        self.value = None;
        self.ending = None;
    }
}

struct Entries<T> {
    map: HashMap<String, Entry<T>>,
    opened: u64,
}

/// How long an ended session is remembered, to tell its person it ended.
const REMEMBER_ENDED: SignedDuration = SignedDuration::from_hours(1);

impl<T> Entries<T> {
    fn live(&self, now: Timestamp) -> impl Iterator<Item = &Entry<T>> {
        self.map.values().filter(move |e| e.ends > now)
    }

    /// Drops ended sessions remembered long enough, and all of them once
    /// they are as many as the live ones may be: what an ended session
    /// keeps is a notice, never a place.
    fn forget_ended(&mut self, now: Timestamp, max: usize) {
        self.map
            .retain(|_, e| e.ends > now || now.duration_since(e.ends) < REMEMBER_ENDED);
        self.map
            .values_mut()
            .filter(|e| e.ends <= now)
            .for_each(Entry::end);
        if self.map.len() >= max.saturating_mul(2) {
            self.map.retain(|_, e| e.ends > now);
        }
    }
}

/// Sessions of signed-in people, by identifier, each with its owner and
/// the moment it ends.
pub struct Sessions<T> {
    entries: Mutex<Entries<T>>,
    limits: Limits,
}

/// A new session was not kept: every place is taken by people who are not
/// the one signing in.
#[derive(Debug, PartialEq, Eq)]
pub struct Full {
    pub max: usize,
    /// How long until the soonest session ends and frees a place.
    pub retry_after: SignedDuration,
}

impl<T: Clone> Sessions<T> {
    pub fn new(limits: Limits) -> Self {
        Sessions {
            entries: Mutex::new(Entries {
                map: HashMap::new(),
                opened: 0,
            }),
            limits,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries<T>> {
        // A panic elsewhere while holding the lock leaves a map that is
        // still whole: every change to it is a single insert or remove.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps `value` under `id` for `owner` until `ends`, after dropping
    /// what has ended. Makes room only from `owner`'s own sessions, oldest
    /// first: beyond their own limit, or when the store is full and they
    /// hold one. Returns how many of theirs it ended; when the store is
    /// full of other people's sessions, keeps nothing and says so.
    pub fn insert(
        &self,
        id: String,
        owner: &str,
        value: T,
        ending: Ending,
        ends: Timestamp,
        now: Timestamp,
    ) -> Result<usize, Full> {
        let mut entries = self.lock();
        entries.forget_ended(now, self.limits.sessions);
        let mut replaced = 0;
        loop {
            let own = entries.live(now).filter(|e| e.owner == owner).count();
            let full = entries.live(now).count() >= self.limits.sessions;
            if own == 0 || (own < self.limits.per_person && !full) {
                break;
            }
            let oldest = entries
                .map
                .iter()
                .filter(|(_, e)| e.owner == owner && e.ends > now)
                .min_by_key(|(_, e)| e.opened)
                .map(|(id, _)| id.clone());
            if let Some(oldest) = oldest {
                entries.map.remove(&oldest);
                replaced += 1;
            }
        }
        if entries.live(now).count() >= self.limits.sessions {
            let soonest = entries.live(now).map(|e| e.ends).min().unwrap_or(now);
            return Err(Full {
                max: self.limits.sessions,
                retry_after: soonest.duration_since(now).max(SignedDuration::ZERO),
            });
        }
        entries.opened += 1;
        let opened = entries.opened;
        entries.map.insert(
            id,
            Entry {
                owner: owner.to_string(),
                opened,
                ends,
                value: Some(value),
                ending: Some(ending),
            },
        );
        Ok(replaced)
    }

    /// The value under `id` if it has not ended. An ended one says so to
    /// every request until it is forgotten (the live page that noticed the
    /// end first must not take the notice from the page the person sees).
    pub fn get(&self, id: &str, now: Timestamp) -> Lookup<T> {
        match self.lock().map.get_mut(id) {
            None => Lookup::Unknown,
            Some(e) if e.ends <= now => {
                e.end();
                Lookup::Ended
            }
            Some(e) => e.value.clone().map_or(Lookup::Ended, Lookup::Live),
        }
    }

    /// Ends the session `id` (signing out): what follows it ends too.
    pub fn remove(&self, id: &str) {
        self.lock().map.remove(id);
    }

    /// How many sessions are live at `now`.
    pub fn len(&self, now: Timestamp) -> usize {
        self.lock().live(now).count()
    }

    /// How many sessions `owner` holds.
    #[cfg(test)]
    pub fn held_by(&self, owner: &str) -> usize {
        self.lock()
            .map
            .values()
            .filter(|e| e.owner == owner)
            .count()
    }
}

/// What a lookup found.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup<T> {
    Live(T),
    /// It was there and has ended: the person is told to sign in again.
    Ended,
    /// Never issued, forged, signed out or replaced.
    Unknown,
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).expect("a time")
    }

    fn limits(sessions: usize, per_person: usize) -> Limits {
        Limits {
            sessions,
            per_person,
        }
    }

    fn put(s: &Sessions<i32>, id: &str, owner: &str, ends: i64) -> Result<usize, Full> {
        let (ending, _) = end_signal();
        s.insert(id.into(), owner, 0, ending, t(ends), t(0))
    }

    /// Whether `ended` resolves within a moment.
    async fn ends_now(ended: Ended) -> bool {
        tokio::time::timeout(Duration::from_millis(200), ended.wait())
            .await
            .is_ok()
    }

    #[test]
    fn a_session_lives_until_its_end_and_not_a_moment_longer() {
        let s = Sessions::new(Limits::default());
        let (ending, _) = end_signal();
        s.insert("a".into(), "lena", 1, ending, t(60), t(0))
            .expect("kept");
        assert_eq!(s.get("a", t(59)), Lookup::Live(1));
        assert_eq!(s.get("a", t(60)), Lookup::Ended);
        assert_eq!(s.get("a", t(61)), Lookup::Ended, "and says so again");
        assert_eq!(s.get("forged", t(0)), Lookup::Unknown);
    }

    #[test]
    fn a_person_past_their_limit_ends_only_their_own_oldest_session() {
        let s = Sessions::new(limits(100, 2));
        put(&s, "lena-1", "oidc:lena", 100).expect("kept");
        put(&s, "bo-1", "oidc:bo", 100).expect("kept");
        put(&s, "bo-2", "oidc:bo", 100).expect("kept");
        // Nine more sign-ins by bo: each ends bo's own oldest.
        for n in 3..12 {
            assert_eq!(put(&s, &format!("bo-{n}"), "oidc:bo", 100), Ok(1));
        }
        assert_eq!(s.held_by("oidc:bo"), 2);
        assert_eq!(s.get("bo-1", t(1)), Lookup::Unknown);
        assert_eq!(s.get("bo-10", t(1)), Lookup::Live(0));
        assert_eq!(s.get("bo-11", t(1)), Lookup::Live(0));
        assert_eq!(s.get("lena-1", t(1)), Lookup::Live(0), "lena's survives");
    }

    #[test]
    fn a_full_store_refuses_a_newcomer_and_ends_no_one_else() {
        let s = Sessions::new(limits(2, 5));
        put(&s, "lena-1", "oidc:lena", 100).expect("kept");
        put(&s, "bo-1", "oidc:bo", 30).expect("kept");
        let refused = put(&s, "sam-1", "oidc:sam", 100).expect_err("refused");
        assert_eq!(refused.max, 2);
        assert_eq!(refused.retry_after, SignedDuration::from_secs(30));
        assert_eq!(s.get("sam-1", t(1)), Lookup::Unknown);
        assert_eq!(s.get("lena-1", t(1)), Lookup::Live(0));
        assert_eq!(s.get("bo-1", t(1)), Lookup::Live(0));
    }

    #[test]
    fn in_a_full_store_a_person_who_holds_one_replaces_their_own() {
        let s = Sessions::new(limits(2, 5));
        put(&s, "lena-1", "oidc:lena", 100).expect("kept");
        put(&s, "bo-1", "oidc:bo", 100).expect("kept");
        assert_eq!(put(&s, "bo-2", "oidc:bo", 100), Ok(1));
        assert_eq!(s.get("bo-1", t(1)), Lookup::Unknown);
        assert_eq!(s.get("bo-2", t(1)), Lookup::Live(0));
        assert_eq!(s.get("lena-1", t(1)), Lookup::Live(0));
    }

    #[test]
    fn ended_sessions_are_dropped_on_the_next_insert_and_make_room() {
        let s = Sessions::new(limits(1, 5));
        put(&s, "old", "oidc:lena", 10).expect("kept");
        let (ending, _) = end_signal();
        s.insert("new".into(), "oidc:bo", 2, ending, t(100), t(20))
            .expect("the ended one made room");
        assert_eq!(s.len(t(20)), 1);
        assert_eq!(s.get("old", t(20)), Lookup::Ended, "still told it ended");
    }

    #[tokio::test]
    async fn signing_out_replacing_and_ending_a_session_end_what_follows_it() {
        let s = Sessions::new(limits(10, 1));
        let (ending, signed_out) = end_signal();
        s.insert("a".into(), "oidc:lena", 1, ending, t(100), t(0))
            .expect("kept");
        let still = signed_out.clone();
        assert!(!ends_now(still).await, "a live session goes on");
        s.remove("a");
        assert!(ends_now(signed_out).await, "sign-out ends it");

        let (ending, replaced) = end_signal();
        s.insert("b".into(), "oidc:lena", 2, ending, t(100), t(0))
            .expect("kept");
        put(&s, "c", "oidc:lena", 100).expect("kept");
        assert!(ends_now(replaced).await, "a replaced session ends");

        let (ending, expired) = end_signal();
        s.insert("d".into(), "oidc:sam", 4, ending, t(10), t(0))
            .expect("kept");
        assert_eq!(s.get("d", t(10)), Lookup::Ended);
        assert!(ends_now(expired).await, "an ended session's followers end");
    }

    #[tokio::test]
    async fn a_follower_that_starts_after_the_end_ends_at_once() {
        let (ending, ended) = end_signal();
        drop(ending);
        assert!(ends_now(ended).await);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), Ended::never().wait())
                .await
                .is_err()
        );
    }

    #[test]
    fn identifiers_are_long_and_differ() {
        let a = random_id().expect("random");
        let b = random_id().expect("random");
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }
}
