//! The registry reads of imported approvals, beside the reconcile workers
//! as artifact look-ups are: a registry that hangs holds no worker. Each
//! imported approval is read again once per resync period; a read lists
//! the records attached to the model (one request) and fetches only those
//! not seen before (two requests each: manifest and envelope), since a
//! referrer's digest names its content and so its verdict, under the same
//! keys, for good.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use kube::Api;
use kube::runtime::reflector::ObjectRef;
use oci_client::Reference;

use super::mirror::{Fetched, Mark, Read, Records, Said};
use super::read::{self, ReadError};
use crate::api::fleet::{Import, TrustedPublisher};
use crate::artifact::registry::Registry;
use crate::records::envelope;
use crate::runtime::metrics::{ImportCounters as Counters, OutcomeLabels};
use crate::runtime::packed::CachedApproval;
use crate::sync::lock;

/// How long one resync may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// How long a resync reads records; the rest are left unread (and count
/// toward holding the approval), so that records that answer slowly make
/// the read incomplete rather than the registry unreachable.
const READ_BUDGET: Duration = Duration::from_secs(20);

/// How long one record may take to read.
const RECORD_TIMEOUT: Duration = Duration::from_secs(5);

/// Verdicts kept at most; past it they are read again.
const VERDICTS: usize = 20_000;

/// The reads under way, their answers, and what was read before.
pub struct Imports {
    registry: Option<Arc<Registry>>,
    client: kube::Client,
    resync: Duration,
    counters: Counters,
    pending: Mutex<HashSet<String>>,
    answers: Mutex<HashMap<String, Fetched>>,
    last: Mutex<HashMap<String, Instant>>,
    /// (referrer digest, keys) → what it says.
    verdicts: Mutex<HashMap<(String, String), Result<Said, String>>>,
    /// Referrers the registry did not serve when last asked: read after
    /// the ones never tried, so that they cannot take every turn.
    unavailable: Mutex<HashSet<String>>,
    /// Approval uid → resyncs in a row that left records unread.
    unread: Mutex<HashMap<String, u32>>,
    /// (publisher, approval, digest) → the newest record kept in the
    /// publisher's status by this operator: (time, seq).
    marked: Mutex<HashMap<MarkKey, (jiff::Timestamp, i64)>>,
    done: UnboundedSender<ObjectRef<CachedApproval>>,
}

/// Where one resync reads its records, and with which keys.
struct Reading<'a> {
    registry: &'a Registry,
    subject: &'a Reference,
    trusted: &'a Trusted,
    /// The model's digest.
    digest: &'a str,
}

/// (the TrustedPublisher object's uid, its approval NAMESPACE/NAME, the
/// model's digest): a publisher deleted and re-created starts with an
/// empty status, which its approvals write again.
pub type MarkKey = (String, String, String);

/// What one resync reads for.
struct Job {
    import: Import,
    /// REGISTRY/REPOSITORY@DIGEST of the model.
    pinned: String,
    digest: String,
}

/// A publisher trusted for a job: its keys, their fingerprint with the
/// model's digest (a verdict holds for both), and the newest record of
/// the job's approval and model honoured here before.
struct Trusted {
    /// The TrustedPublisher object's uid: its status is that object's.
    uid: Option<String>,
    keys: Vec<envelope::PublicKey>,
    fingerprint: String,
    mark: Option<Mark>,
}

/// New records read at most per resync; the rest wait for the next one.
const NEW_PER_RESYNC: usize = 64;

/// Why `publisher` is not trusted for `job`'s model or approval, if not.
/// A repository prefix matches whole path segments only.
fn out_of_scope(publisher: &TrustedPublisher, job: &Job) -> Option<String> {
    let name = publisher.metadata.name.as_deref().unwrap_or_default();
    let repository = job.pinned.split('@').next().unwrap_or_default();
    let within = |prefix: &str| {
        let prefix = prefix.trim_end_matches('/');
        repository == prefix || repository.starts_with(&format!("{prefix}/"))
    };
    let spec = &publisher.spec;
    if !spec.repositories.is_empty() && !spec.repositories.iter().any(|r| within(r)) {
        return Some(format!(
            "TrustedPublisher {name} is trusted for {} only, not for {repository}",
            spec.repositories.join(", ")
        ));
    }
    let namespace = job.import.approval.split('/').next().unwrap_or_default();
    if !spec.namespaces.is_empty() && !spec.namespaces.iter().any(|n| n == namespace) {
        return Some(format!(
            "TrustedPublisher {name} is trusted for the approvals of {} only, not of {namespace}",
            spec.namespaces.join(", ")
        ));
    }
    None
}

impl Imports {
    pub fn new(
        registry: Option<Arc<Registry>>,
        client: kube::Client,
        resync: Duration,
        counters: Counters,
    ) -> (Arc<Imports>, UnboundedReceiver<ObjectRef<CachedApproval>>) {
        let (done, answered) = unbounded();
        for outcome in ["read", "incomplete", "unreachable", "untrusted"] {
            let _ = counters.resyncs.get_or_create(&OutcomeLabels { outcome });
        }
        let imports = Imports {
            registry,
            client,
            resync,
            counters,
            pending: Mutex::default(),
            answers: Mutex::default(),
            last: Mutex::default(),
            verdicts: Mutex::default(),
            unavailable: Mutex::default(),
            unread: Mutex::default(),
            marked: Mutex::default(),
            done,
        };
        (Arc::new(imports), answered)
    }

    /// Whether this operator already kept `at` (or a newer record) for
    /// `key` in the publisher's status.
    pub fn marked(&self, key: &MarkKey, at: (jiff::Timestamp, i64)) -> bool {
        lock(&self.marked).get(key).is_some_and(|m| *m >= at)
    }

    /// Remembers that `at` is kept for `key`.
    pub fn remember_mark(&self, key: MarkKey, at: (jiff::Timestamp, i64)) {
        let mut marked = lock(&self.marked);
        let entry = marked.entry(key).or_insert(at);
        *entry = (*entry).max(at);
    }

    /// How often an imported approval is read again.
    pub fn resync(&self) -> Duration {
        self.resync
    }

    /// The answer of a read for approval `uid`, if one came; otherwise a
    /// read is started when one is due, and None says to go on with what
    /// the status holds.
    pub fn poll(
        self: &Arc<Self>,
        (uid, object): (&str, ObjectRef<CachedApproval>),
        import: &Import,
        pinned: &str,
    ) -> Option<Fetched> {
        if let Some(answer) = lock(&self.answers).remove(uid) {
            return Some(answer);
        }
        let due = lock(&self.last)
            .get(uid)
            .is_none_or(|at| at.elapsed() >= self.resync);
        if !due || !lock(&self.pending).insert(uid.to_string()) {
            return None;
        }
        lock(&self.last).insert(uid.to_string(), Instant::now());
        let job = Job {
            import: import.clone(),
            pinned: pinned.to_string(),
            digest: pinned.rsplit('@').next().unwrap_or_default().to_string(),
        };
        let (this, uid) = (self.clone(), uid.to_string());
        tokio::spawn(async move {
            let answer = match tokio::time::timeout(TIMEOUT, this.read(&job)).await {
                Ok(answer) => this.count_unread(&uid, answer),
                Err(_) => Fetched::Unreachable(format!("no answer within {TIMEOUT:?}")),
            };
            let outcome = match &answer {
                Fetched::Records(r) if r.unread > 0 => "incomplete",
                Fetched::Records(_) => "read",
                Fetched::Unreachable(_) => "unreachable",
                Fetched::Untrusted(_) => "untrusted",
            };
            this.counters
                .resyncs
                .get_or_create(&OutcomeLabels { outcome })
                .inc();
            lock(&this.answers).insert(uid.clone(), answer);
            lock(&this.pending).remove(&uid);
            let _ = this.done.unbounded_send(object);
        });
        None
    }

    /// Counts the resyncs in a row that left records of approval `uid`
    /// unread into `answer`.
    fn count_unread(&self, uid: &str, answer: Fetched) -> Fetched {
        let Fetched::Records(mut records) = answer else {
            return answer;
        };
        let mut unread = lock(&self.unread);
        if records.unread == 0 {
            unread.remove(uid);
        } else {
            let n = unread.entry(uid.to_string()).or_default();
            *n += 1;
            records.unread_resyncs = *n;
        }
        Fetched::Records(records)
    }

    async fn read(&self, job: &Job) -> Fetched {
        let trusted = match self.trusted(job).await {
            Ok(trusted) => trusted,
            Err(fetched) => return fetched,
        };
        let Some(registry) = &self.registry else {
            return Fetched::Unreachable(
                "the operator was started without a registry client".into(),
            );
        };
        let subject: Reference = match job.pinned.parse() {
            Ok(s) => s,
            Err(e) => return Fetched::Untrusted(format!("{} is not a reference: {e}", job.pinned)),
        };
        self.counters.requests.inc();
        let attached = match read::attached(registry, &subject).await {
            Ok(a) => self.in_order(a, &job.import.approval),
            Err(why) => return Fetched::Unreachable(why),
        };
        let mut records = Records {
            mark: trusted.mark.clone(),
            publisher_uid: trusted.uid.clone(),
            ..Records::default()
        };
        let (mut fetched, started) = (0, Instant::now());
        let on = Reading {
            registry,
            subject: &subject,
            trusted: &trusted,
            digest: &job.digest,
        };
        for entry in attached {
            let key = (entry.digest.clone(), trusted.fingerprint.clone());
            let verdict = match self.verdict(&key) {
                Some(v) => Some(v),
                None if fetched >= NEW_PER_RESYNC || started.elapsed() >= READ_BUDGET => None,
                None => {
                    fetched += 1;
                    self.fetch(&on, &entry.digest, key).await
                }
            };
            match verdict {
                Some(verdict) => records.reads.push(Read {
                    referrer: entry.digest,
                    verdict,
                }),
                None => records.unread += 1,
            }
        }
        Fetched::Records(records)
    }

    /// The records of `approval` among `attached`: never tried before the
    /// ones the registry did not serve, then the newest claimed first, so
    /// that a flood of new records delays the newest genuine one as little
    /// as it can.
    fn in_order(&self, mut attached: Vec<read::Attached>, approval: &str) -> Vec<read::Attached> {
        attached.retain(|a| a.approval.as_deref() == Some(approval));
        let unavailable = lock(&self.unavailable);
        attached.sort_by_key(|a| (unavailable.contains(&a.digest), std::cmp::Reverse(a.seq)));
        attached
    }

    /// Reads and judges one record; None when the registry did not serve
    /// it (read again next time). A verdict is remembered: the digest pins
    /// the content it judges.
    async fn fetch(
        &self,
        on: &Reading<'_>,
        referrer: &str,
        key: (String, String),
    ) -> Option<Result<Said, String>> {
        self.counters.requests.inc_by(2);
        let read = read::envelope_at(on.registry, on.subject, referrer);
        let read = tokio::time::timeout(RECORD_TIMEOUT, read)
            .await
            .unwrap_or_else(|_| {
                Err(ReadError::Unavailable(format!(
                    "no answer within {RECORD_TIMEOUT:?}"
                )))
            });
        let verdict = match read {
            Ok(env) => read::judge(&env, &on.trusted.keys, on.digest).map(|s| Said::of(&s)),
            Err(ReadError::Malformed(why)) => Err(why),
            Err(ReadError::Unavailable(_)) => {
                let mut unavailable = lock(&self.unavailable);
                if unavailable.len() >= VERDICTS {
                    unavailable.clear();
                }
                unavailable.insert(referrer.to_string());
                return None;
            }
        };
        self.remember(key, &verdict);
        lock(&self.unavailable).remove(referrer);
        Some(verdict)
    }

    /// The publisher's keys (and their fingerprint with the model's digest,
    /// for the verdicts) and what it had honoured here, if it is trusted
    /// for this model and approval.
    async fn trusted(&self, job: &Job) -> Result<Trusted, Fetched> {
        let name = &job.import.publisher;
        let api: Api<TrustedPublisher> = Api::all(self.client.clone());
        let publisher = match api.get_opt(name).await {
            Ok(Some(p)) => p,
            Ok(None) => {
                return Err(Fetched::Untrusted(format!(
                    "TrustedPublisher {name} does not exist: this cluster trusts no such publisher"
                )));
            }
            Err(e) => {
                return Err(Fetched::Unreachable(format!(
                    "cannot read TrustedPublisher {name}: {e}"
                )));
            }
        };
        if let Some(why) = out_of_scope(&publisher, job) {
            return Err(Fetched::Untrusted(why));
        }
        let pem = publisher.spec.public_keys.join("\n");
        let keys = envelope::public_keys(&pem).map_err(|e| {
            Fetched::Untrusted(format!(
                "TrustedPublisher {name}'s public keys cannot be read: {e}"
            ))
        })?;
        let mark = publisher
            .status
            .iter()
            .flat_map(|s| &s.honoured)
            .find(|h| h.approval == job.import.approval && h.digest == job.digest)
            .map(|h| Mark {
                time: h.time.clone(),
                seq: h.seq,
                phase: h.phase.clone(),
            });
        let fingerprint = crate::fleet::referrer::sha256(format!("{pem}{}", job.digest).as_bytes());
        Ok(Trusted {
            uid: publisher.metadata.uid.clone(),
            keys,
            fingerprint,
            mark,
        })
    }

    fn verdict(&self, key: &(String, String)) -> Option<Result<Said, String>> {
        lock(&self.verdicts).get(key).cloned()
    }

    fn remember(&self, key: (String, String), verdict: &Result<Said, String>) {
        let mut verdicts = lock(&self.verdicts);
        if verdicts.len() >= VERDICTS {
            verdicts.clear();
        }
        verdicts.insert(key, verdict.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::fleet::TrustedPublisherSpec;

    fn job(pinned: &str, approval: &str) -> Job {
        Job {
            import: Import {
                publisher: "board".into(),
                approval: approval.into(),
            },
            pinned: pinned.into(),
            digest: pinned.rsplit('@').next().unwrap_or_default().into(),
        }
    }

    #[test]
    fn a_publisher_is_trusted_for_whole_repository_segments_and_its_namespaces_only() {
        let publisher = TrustedPublisher::new(
            "board",
            TrustedPublisherSpec {
                repositories: vec!["r.example.com/models".into()],
                namespaces: vec!["ml-prod".into()],
                ..TrustedPublisherSpec::default()
            },
        );
        let ok = job("r.example.com/models/fd@sha256:aa", "ml-prod/fd");
        assert_eq!(out_of_scope(&publisher, &ok), None);
        let sibling = job("r.example.com/models-evil/fd@sha256:aa", "ml-prod/fd");
        assert!(out_of_scope(&publisher, &sibling).is_some_and(|w| w.contains("trusted for")));
        let host = job("r.example.com.evil.io/models/fd@sha256:aa", "ml-prod/fd");
        assert!(out_of_scope(&publisher, &host).is_some());
        let staging = job("r.example.com/models/fd@sha256:aa", "staging/fd");
        assert!(out_of_scope(&publisher, &staging).is_some_and(|w| w.contains("staging")));
    }
}
