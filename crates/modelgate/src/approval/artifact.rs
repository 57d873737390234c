//! The approval's artifact as it stands: kept from its status once the
//! registry has answered, looked up otherwise. A tag is never followed: the
//! look-up is by the approved digest, so moving a tag changes nothing.
//!
//! Look-ups run beside the reconcile workers, never in them: anyone may
//! write an approval naming a registry that hangs, and a worker waiting on
//! it would be a worker taken from every other approval. Each registry host
//! gets eight look-ups at once; an answer is kept until the approval's next
//! reconcile, which it triggers.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use kube::runtime::reflector::ObjectRef;
use tokio::sync::Semaphore;

use crate::api::approval::{
    ApprovalPhase, ModelApprovalSpec, ModelApprovalStatus, ResolvedArtifact, Seal,
};
use crate::api::oci::{self, OciUri};
use crate::artifact::registry::{Registry, unresolved};
use crate::runtime::packed::CachedApproval;
use crate::sync::lock;

/// Why a non-OCI artifact is unsealed, in its status.
const UNSEALED: &str = "not an OCI artifact: the pods are told its URI and digest, and nothing makes them load these bytes";

/// The message while a look-up is under way.
pub const LOOKING: &str = "being looked up in its registry";

/// Look-ups at once per registry host: enough for a cold start over
/// thousands of approvals, few enough not to hammer one registry.
const PER_HOST: usize = 8;

/// The look-ups under way and their answers, by approval uid.
pub struct Lookups {
    registry: Option<Arc<Registry>>,
    hosts: Mutex<HashMap<String, Arc<Semaphore>>>,
    pending: Mutex<HashSet<String>>,
    answers: Mutex<HashMap<String, ResolvedArtifact>>,
    done: UnboundedSender<ObjectRef<CachedApproval>>,
}

impl Lookups {
    /// The look-ups, and the feed of approvals whose look-up answered.
    pub fn new(
        registry: Option<Arc<Registry>>,
    ) -> (Arc<Lookups>, UnboundedReceiver<ObjectRef<CachedApproval>>) {
        let (done, answered) = unbounded();
        let lookups = Lookups {
            registry,
            hosts: Mutex::default(),
            pending: Mutex::default(),
            answers: Mutex::default(),
            done,
        };
        (Arc::new(lookups), answered)
    }

    /// The answer for approval `uid`, if one came; otherwise a look-up is
    /// started (unless one is under way) and None says to wait for it.
    fn poll(
        self: &Arc<Self>,
        uid: &str,
        object: ObjectRef<CachedApproval>,
        uri: &OciUri<'_>,
        digest: &str,
    ) -> Option<ResolvedArtifact> {
        if let Some(answer) = lock(&self.answers).remove(uid) {
            return Some(answer);
        }
        if !lock(&self.pending).insert(uid.to_string()) {
            return None;
        }
        let Some(registry) = self.registry.clone() else {
            lock(&self.pending).remove(uid);
            let why = "the operator was started without a registry client".to_string();
            return Some(unresolved(&uri.pinned(digest), why));
        };
        let host = self.host(uri.registry);
        let (this, uid, pinned) = (self.clone(), uid.to_string(), uri.pinned(digest));
        tokio::spawn(async move {
            let _turn = host.acquire().await;
            let started = std::time::Instant::now();
            let answer = registry.resolve(&pinned).await;
            tracing::debug!(uid, elapsed = ?started.elapsed(), seal = ?answer.seal, "registry look-up answered");
            lock(&this.answers).insert(uid.clone(), answer);
            lock(&this.pending).remove(&uid);
            let _ = this.done.unbounded_send(object);
        });
        None
    }

    fn host(&self, registry: &str) -> Arc<Semaphore> {
        lock(&self.hosts)
            .entry(registry.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(PER_HOST)))
            .clone()
    }
}

/// What `status.artifact` should say; one registry request at most, and
/// none once the registry has answered or the approval is decided against.
pub fn standing(
    lookups: &Arc<Lookups>,
    object: (&str, ObjectRef<CachedApproval>),
    spec: &ModelApprovalSpec,
    status: Option<&ModelApprovalStatus>,
) -> ResolvedArtifact {
    let model = &spec.model;
    let Some(uri) = oci::parse(&model.uri) else {
        return if oci::is_oci(&model.uri) {
            unresolved(&model.uri, oci::MESSAGE.to_string())
        } else {
            ResolvedArtifact {
                seal: Seal::Unsealed,
                message: Some(UNSEALED.into()),
                ..ResolvedArtifact::default()
            }
        };
    };
    let pinned = uri.pinned(&model.digest);
    let known = status.and_then(|s| s.artifact.as_ref());
    let settled = matches!(
        status.and_then(|s| s.phase),
        Some(ApprovalPhase::Rejected | ApprovalPhase::Expired)
    );
    match known {
        Some(a)
            if a.reference.as_deref() == Some(pinned.as_str())
                && (a.seal == Seal::Sealed || settled) =>
        {
            a.clone()
        }
        _ => {
            let (uid, object) = object;
            lookups
                .poll(uid, object, &uri, &model.digest)
                .unwrap_or_else(|| match known {
                    // The last answer stands while the next is awaited.
                    Some(a) if a.reference.as_deref() == Some(pinned.as_str()) => a.clone(),
                    _ => unresolved(&pinned, LOOKING.to_string()),
                })
        }
    }
}
