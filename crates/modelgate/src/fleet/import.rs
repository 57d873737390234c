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
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use super::mirror::{Fetched, Read, Said};
use super::read;
use crate::api::fleet::{Import, TrustedPublisher};
use crate::approval::artifact::lock;
use crate::artifact::registry::Registry;
use crate::records::envelope;
use crate::runtime::metrics::OutcomeLabels;
use crate::runtime::watches::CachedApproval;

/// How long one resync may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Verdicts kept at most; past it they are read again.
const VERDICTS: usize = 20_000;

/// The imports' counters.
#[derive(Clone, Default)]
pub struct Counters {
    /// Resyncs by outcome: read, unreachable, untrusted.
    pub resyncs: Family<OutcomeLabels, Counter>,
    /// Registry requests the resyncs made.
    pub requests: Counter,
}

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
    done: UnboundedSender<ObjectRef<CachedApproval>>,
}

/// What one resync reads for.
struct Job {
    import: Import,
    /// REGISTRY/REPOSITORY@DIGEST of the model.
    pinned: String,
}

impl Imports {
    pub fn new(
        registry: Option<Arc<Registry>>,
        client: kube::Client,
        resync: Duration,
        counters: Counters,
    ) -> (Arc<Imports>, UnboundedReceiver<ObjectRef<CachedApproval>>) {
        let (done, answered) = unbounded();
        for outcome in ["read", "unreachable", "untrusted"] {
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
            done,
        };
        (Arc::new(imports), answered)
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
        };
        let (this, uid) = (self.clone(), uid.to_string());
        tokio::spawn(async move {
            let answer = match tokio::time::timeout(TIMEOUT, this.read(&job)).await {
                Ok(answer) => answer,
                Err(_) => Fetched::Unreachable(format!("no answer within {TIMEOUT:?}")),
            };
            let outcome = match &answer {
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

    async fn read(&self, job: &Job) -> Fetched {
        let keys = match self.trusted(job).await {
            Ok(keys) => keys,
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
        let digest = subject.digest().unwrap_or_default().to_string();
        self.counters.requests.inc();
        let attached = match read::attached(registry, &subject).await {
            Ok(a) => a,
            Err(why) => return Fetched::Unreachable(why),
        };
        let mut reads = Vec::new();
        for entry in attached
            .into_iter()
            .filter(|a| a.approval.as_deref() == Some(job.import.approval.as_str()))
        {
            let verdict = match self.verdict(&entry.digest, &keys.1) {
                Some(v) => v,
                None => {
                    self.counters.requests.inc_by(2);
                    let verdict = match read::envelope_at(registry, &subject, &entry.digest).await {
                        Ok(env) => read::judge(&env, &keys.0, &digest).map(|s| Said::of(&s)),
                        // Not a verdict on the record: read again next time.
                        Err(why) => return Fetched::Unreachable(why),
                    };
                    self.remember(&entry.digest, &keys.1, &verdict);
                    verdict
                }
            };
            reads.push(Read {
                referrer: entry.digest,
                verdict,
            });
        }
        Fetched::Records(reads)
    }

    /// The publisher's keys (and their fingerprint, for the verdicts), if
    /// it is trusted for this model.
    async fn trusted(&self, job: &Job) -> Result<(Vec<envelope::PublicKey>, String), Fetched> {
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
        let repository = job.pinned.split('@').next().unwrap_or_default();
        let repositories = &publisher.spec.repositories;
        if !repositories.is_empty()
            && !repositories
                .iter()
                .any(|r| repository.starts_with(r.as_str()))
        {
            return Err(Fetched::Untrusted(format!(
                "TrustedPublisher {name} is trusted for {} only, not for {repository}",
                repositories.join(", ")
            )));
        }
        let pem = publisher.spec.public_keys.join("\n");
        let keys = envelope::public_keys(&pem).map_err(|e| {
            Fetched::Untrusted(format!(
                "TrustedPublisher {name}'s public keys cannot be read: {e}"
            ))
        })?;
        Ok((keys, crate::fleet::referrer::sha256(pem.as_bytes())))
    }

    fn verdict(&self, referrer: &str, keys: &str) -> Option<Result<Said, String>> {
        lock(&self.verdicts)
            .get(&(referrer.to_string(), keys.to_string()))
            .cloned()
    }

    fn remember(&self, referrer: &str, keys: &str, verdict: &Result<Said, String>) {
        let mut verdicts = lock(&self.verdicts);
        if verdicts.len() >= VERDICTS {
            verdicts.clear();
        }
        verdicts.insert((referrer.to_string(), keys.to_string()), verdict.clone());
    }
}
