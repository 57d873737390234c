//! The writer of the operator's checkpoints, one per namespace, moved on
//! whenever an approval's newest record is created (or found there).
//!
//! A record's reconcile does not wait for the checkpoint: it notes the
//! record's head, and a task of its own writes the namespace's checkpoint
//! at once when that checkpoint was not written in the last [`LINGER`],
//! else at its end with every head noted meanwhile. A burst of records (a cold start with a
//! thousand approved approvals, a fleet's resync) then costs two checkpoint
//! writes a second instead of one a record, each the whole list of heads
//! signed anew, and no reconcile holds its slot for it.
//!
//! Nothing is lost to a failed write or a restart: the heads of a write
//! that failed wait for the next one (after a pause, for that namespace
//! alone, that doubles up to a minute), and after a restart every approval's newest record is tried
//! again (the API server answers 409 when it exists) and noted again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Client;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tokio::sync::Notify;
use tracing::warn;

use super::{Checkpoint, Head, load, write};
use crate::error::{Error, Result};
use crate::records::envelope::Signer;
use crate::runtime::metrics::OutcomeLabels;

/// The shortest time between two writes of one namespace's checkpoint.
pub const LINGER: Duration = Duration::from_millis(500);
/// The longest pause after failed writes of one namespace's checkpoint.
const LONGEST_PAUSE: Duration = Duration::from_secs(60);

/// The heads noted for the checkpoints, and the task that writes them.
#[derive(Default)]
pub struct Checkpoints {
    inner: Arc<Noted>,
}

#[derive(Default)]
struct Noted {
    /// Heads not yet in a checkpoint the cluster holds, per namespace, the
    /// newest per approval uid.
    waiting: Mutex<HashMap<String, Heads>>,
    wake: Notify,
    started: AtomicBool,
    /// Set when the operator stops: every namespace is written at once.
    hurry: AtomicBool,
    /// Heads taken for a write whose outcome is not handled yet.
    in_flight: AtomicUsize,
    /// Writes by outcome (the operator's `modelgate_checkpoint_writes_total`).
    outcomes: Family<OutcomeLabels, Counter>,
}

impl Checkpoints {
    /// Counting its writes by outcome in `outcomes`.
    pub fn counting(outcomes: Family<OutcomeLabels, Counter>) -> Self {
        Checkpoints {
            inner: Arc::new(Noted {
                outcomes,
                ..Noted::default()
            }),
        }
    }

    /// Notes `head` for `namespace`'s checkpoint. The writing task starts
    /// with the first note, on its client and key.
    pub fn note(&self, client: &Client, signer: &Arc<Signer>, namespace: &str, head: Head) {
        if let Ok(mut waiting) = self.inner.waiting.lock() {
            add(waiting.entry(namespace.to_string()).or_default(), head);
        }
        if !self.inner.started.swap(true, Ordering::AcqRel) {
            tokio::spawn(run(self.inner.clone(), client.clone(), signer.clone()));
        }
        self.inner.wake.notify_one();
    }

    /// How many heads no checkpoint write has taken care of yet (written,
    /// or dropped with their namespace): waiting, or in a write in flight.
    pub fn waiting(&self) -> usize {
        let waiting: usize = self
            .inner
            .waiting
            .lock()
            .map(|w| w.values().map(HashMap::len).sum())
            .unwrap_or_default();
        waiting + self.inner.in_flight.load(Ordering::Acquire)
    }

    /// Writes every head noted, at once, and waits for that up to
    /// `within`: when the operator stops, so that a head noted is not left
    /// to the next start (which takes back only the records still there).
    /// How many are left unwritten.
    pub async fn drain(&self, within: Duration) -> usize {
        self.inner.hurry.store(true, Ordering::Release);
        self.inner.wake.notify_one();
        let deadline = tokio::time::Instant::now() + within;
        while self.waiting() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.waiting()
    }
}

/// Heads by approval uid.
type Heads = HashMap<String, Head>;

/// Adds `head` to `heads` unless a newer one of its approval is there.
fn add(heads: &mut Heads, head: Head) {
    match heads.get(&head.uid) {
        Some(known) if known.seq >= head.seq => {}
        _ => {
            heads.insert(head.uid.clone(), head);
        }
    }
}

/// A namespace's checkpoint as the cluster holds it, as far as known.
struct Known {
    checkpoint: Checkpoint,
    /// Its resourceVersion, the condition of the next write.
    version: Option<String>,
}

/// When each namespace's checkpoint may be written next: [`LINGER`] after
/// its last write, or after a pause that doubles from [`LINGER`] while its
/// writes fail. Each namespace has its own, so one namespace that fails or
/// writes often never holds back another's first write.
#[derive(Default)]
struct Pace {
    next: HashMap<String, (tokio::time::Instant, Duration)>,
}

impl Pace {
    fn due(&self, namespace: &str, now: tokio::time::Instant) -> bool {
        self.next.get(namespace).is_none_or(|(at, _)| *at <= now)
    }

    /// Due, or last written without a failure (when hurrying).
    fn due_or_sound(&self, namespace: &str, now: tokio::time::Instant) -> bool {
        self.due(namespace, now)
            || self
                .next
                .get(namespace)
                .is_some_and(|(_, pause)| *pause == LINGER)
    }

    fn written(&mut self, namespace: String, now: tokio::time::Instant) {
        self.next.insert(namespace, (now + LINGER, LINGER));
    }

    fn failed(&mut self, namespace: String, now: tokio::time::Instant) {
        let pause = self
            .next
            .get(&namespace)
            .map_or(LINGER * 2, |(_, pause)| (*pause * 2).min(LONGEST_PAUSE));
        self.next.insert(namespace, (now + pause, pause));
    }

    /// The earliest time one of `waiting` may be written; the entries of
    /// the others, when past, are forgotten.
    fn wake_at(
        &mut self,
        waiting: &[String],
        now: tokio::time::Instant,
    ) -> Option<tokio::time::Instant> {
        self.next
            .retain(|ns, (at, _)| *at > now || waiting.contains(ns));
        waiting
            .iter()
            .map(|ns| self.next.get(ns).map_or(now, |(at, _)| *at))
            .min()
    }
}

/// Writes each namespace's noted heads when its pace allows, and sleeps
/// until the next is due or a head is noted.
async fn run(noted: Arc<Noted>, client: Client, signer: Arc<Signer>) {
    // What the cluster holds, per namespace; an entry is dropped when its
    // write fails (what the cluster holds is then not known).
    let mut known: HashMap<String, Known> = HashMap::new();
    let mut pace = Pace::default();
    loop {
        let now = tokio::time::Instant::now();
        let hurry = noted.hurry.load(Ordering::Acquire);
        let due = |ns: &str| match hurry {
            true => pace.due_or_sound(ns, now),
            false => pace.due(ns, now),
        };
        for (namespace, heads) in noted.take(due) {
            let written = write_one(&mut known, &client, &signer, &namespace, &heads).await;
            let taken = heads.len();
            match written {
                Ok(false) => {}
                Ok(true) => {
                    noted.count("written");
                    pace.written(namespace, tokio::time::Instant::now());
                }
                Err(e) if namespace_gone(&e) => {
                    warn!(%namespace, "the namespace is being deleted; its checkpoint is not written");
                }
                Err(e) => {
                    noted.count("failed");
                    noted.put_back(namespace.clone(), heads, &e);
                    pace.failed(namespace, tokio::time::Instant::now());
                }
            }
            noted.in_flight.fetch_sub(taken, Ordering::AcqRel);
        }
        let now = tokio::time::Instant::now();
        let waiting = noted.namespaces();
        if noted.hurry.load(Ordering::Acquire)
            && waiting.iter().any(|ns| pace.due_or_sound(ns, now))
        {
            continue;
        }
        match pace.wake_at(&waiting, now) {
            Some(at) if at <= now => {}
            Some(at) => {
                tokio::select! {
                    _ = noted.wake.notified() => {}
                    _ = tokio::time::sleep_until(at) => {}
                }
            }
            None => noted.wake.notified().await,
        }
    }
}

impl Noted {
    fn count(&self, outcome: &'static str) {
        self.outcomes
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// The heads waiting in the namespaces `due` allows, taken.
    fn take(&self, due: impl Fn(&str) -> bool) -> Vec<(String, Heads)> {
        let Ok(mut waiting) = self.waiting.lock() else {
            return Vec::new();
        };
        let names: Vec<String> = waiting.keys().filter(|ns| due(ns)).cloned().collect();
        let taken: Vec<(String, Heads)> = names
            .into_iter()
            .filter_map(|ns| waiting.remove_entry(&ns))
            .collect();
        let heads = taken.iter().map(|(_, heads)| heads.len()).sum();
        // Counted before the lock is let go, so that a head is always
        // either waiting or in flight.
        self.in_flight.fetch_add(heads, Ordering::AcqRel);
        taken
    }

    /// The namespaces with heads waiting.
    fn namespaces(&self) -> Vec<String> {
        self.waiting
            .lock()
            .map(|w| w.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Puts the heads of a failed write back for the next round.
    fn put_back(&self, namespace: String, heads: Heads, error: &Error) {
        warn!(%namespace, error = %error, heads = heads.len(), "checkpoint not written; tried again");
        if let Ok(mut waiting) = self.waiting.lock() {
            let waiting = waiting.entry(namespace).or_default();
            for head in heads.into_values() {
                add(waiting, head);
            }
        }
    }
}

/// Moves `namespace`'s checkpoint on to `heads` and writes it when that
/// changed it (or when it was rebuilt from the records); whether it wrote.
async fn write_one(
    known: &mut HashMap<String, Known>,
    client: &Client,
    signer: &Signer,
    namespace: &str,
    heads: &Heads,
) -> Result<bool> {
    let mut changed = false;
    if !known.contains_key(namespace) {
        let loaded = load(client, signer, namespace).await?;
        changed = loaded.moved;
        let (checkpoint, version) = (loaded.checkpoint, loaded.version);
        known.insert(
            namespace.to_string(),
            Known {
                checkpoint,
                version,
            },
        );
    }
    let Some(entry) = known.get_mut(namespace) else {
        return Ok(false);
    };
    for head in heads.values() {
        changed |= entry.checkpoint.advance(head.clone());
    }
    if !changed {
        return Ok(false);
    }
    entry.checkpoint.time = Time(jiff::Timestamp::now());
    match write(client, signer, &entry.checkpoint, entry.version.as_deref()).await {
        Ok(version) => {
            entry.version = version;
            Ok(true)
        }
        Err(e) => {
            // Read again next time (a conflict: another writer moved it).
            known.remove(namespace);
            Err(e)
        }
    }
}

/// Whether `error` says the namespace is being deleted or gone (its
/// records go with it).
fn namespace_gone(error: &Error) -> bool {
    match error {
        Error::Kube(kube::Error::Api(status)) => {
            crate::records::terminating(status)
                || (status.code == 404
                    && status
                        .details
                        .as_ref()
                        .is_some_and(|d| d.kind == "namespaces"))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests;
