//! The BreakGlass objects the approval controller reads and writes: their
//! cache (every change brings back the approval it names), the ones of one
//! approval judged under its pinned policy, and their status once the
//! approval's decision is made.

use std::sync::Arc;

use futures::channel::mpsc::UnboundedReceiver;
use futures::{Future, StreamExt, TryStreamExt};
use jiff::Timestamp;
use kube::api::Api;
use kube::core::DeserializeGuard;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};

use super::breakglass::{self, Authority};
use crate::api::approval::{ModelApproval, ModelApprovalStatus};
use crate::api::breakglass::{BreakGlass, BreakGlassPhase, BreakGlassStatus, ReleasedBy};
use crate::context::Context;
use crate::error::Result;
use crate::runtime::Synced;
use crate::runtime::packed::CachedApproval;
use crate::transition::Transition;
use crate::vocabulary::Severity;

/// A BreakGlass as cached: one that cannot be read is skipped, never fatal
/// to the watch.
pub type CachedBreakGlass = DeserializeGuard<BreakGlass>;

/// The cache of BreakGlass objects, the approvals their changes concern,
/// and the watch that fills both: driven on its own, because the approval
/// controller starts only once this cache has its first list.
pub fn watch(
    api: Api<CachedBreakGlass>,
    config: watcher::Config,
    synced: &Arc<Synced>,
) -> (
    Store<CachedBreakGlass>,
    UnboundedReceiver<ObjectRef<CachedApproval>>,
    impl Future<Output = ()> + Send + 'static + use<>,
) {
    let mut marker = synced.marker::<CachedBreakGlass>("breakglasses");
    let (store, writer) = reflector::store();
    let changes = watcher(api, config)
        .default_backoff()
        .modify(crate::runtime::watches::slim)
        .reflect(writer)
        .inspect_ok(move |event| marker(event))
        .applied_objects()
        .filter_map(|bg| async move {
            let bg = bg.ok()?.0.ok()?;
            let namespace = bg.namespace()?;
            Some(ObjectRef::new(&bg.spec.approval_ref.name).within(&namespace))
        });
    let (tx, rx) = futures::channel::mpsc::unbounded();
    let driven = changes.for_each(move |approval| {
        // The controller gone (shutdown): nothing left to tell.
        let _ = tx.unbounded_send(approval);
        futures::future::ready(())
    });
    (store, rx, driven)
}

/// One BreakGlass of an approval and what its policy says of it.
pub struct Judged {
    pub bg: Arc<CachedBreakGlass>,
    pub authority: Authority,
}

impl Judged {
    fn object(&self) -> Option<&BreakGlass> {
        self.bg.0.as_ref().ok()
    }
}

/// The BreakGlass objects naming `approval`, each judged under its pinned
/// rules (`status`: the freshest the controller knows).
pub fn judged(
    store: &Store<CachedBreakGlass>,
    approval: &ModelApproval,
    status: Option<&ModelApprovalStatus>,
    now: Timestamp,
) -> Vec<Judged> {
    let namespace = approval.namespace();
    let name = approval.name_any();
    store
        .state()
        .into_iter()
        .filter(|bg| {
            bg.0.as_ref()
                .is_ok_and(|bg| bg.namespace() == namespace && bg.spec.approval_ref.name == name)
        })
        .filter_map(|cached| {
            let bg = cached.0.as_ref().ok()?;
            let uid = approval.metadata.uid.as_deref().unwrap_or_default();
            let authority = match breakglass::bound_elsewhere(bg, uid) {
                Some(why) => Authority::Refused(why),
                None => breakglass::authority(bg, status, now),
            };
            Some(Judged {
                bg: cached.clone(),
                authority,
            })
        })
        .collect()
}

/// The release the decision may use, of those `judged`.
pub fn release(judged: &[Judged], now: Timestamp) -> Option<&ReleasedBy> {
    breakglass::release(judged.iter().map(|j| &j.authority), now)
}

/// Writes the status of every BreakGlass of the approval whose outcome
/// changed under the `decided` status, and announces its phase change.
/// One that cannot be written does not keep the others from being written;
/// the first failure is returned once all were tried.
pub async fn write(
    ctx: &Context,
    controller: &'static str,
    judged: &[Judged],
    (decided, approval): (&ModelApprovalStatus, &ModelApproval),
    now: Timestamp,
) -> Result<()> {
    let uid = approval.metadata.uid.as_deref().unwrap_or_default();
    let mut first_failure = None;
    for j in judged {
        let Some(bg) = j.object() else { continue };
        let status = breakglass::outcome(bg, &j.authority, (decided, uid), now);
        if let Err(e) = write_one(ctx, controller, bg, status).await {
            first_failure.get_or_insert(e);
        }
    }
    first_failure.map_or(Ok(()), Err)
}

/// Writes `status` to `bg` when it changed, and announces its phase change.
async fn write_one(
    ctx: &Context,
    controller: &'static str,
    bg: &BreakGlass,
    status: BreakGlassStatus,
) -> Result<()> {
    let before = bg.status.clone().unwrap_or_default();
    let mut unchanged = before.clone();
    unchanged.approvals.clear();
    if unchanged == status {
        return Ok(());
    }
    let namespace = bg.namespace().unwrap_or_default();
    let _: BreakGlass = ctx
        .apply_status(controller, &namespace, &bg.name_any(), &status)
        .await?;
    if let Some(t) = phase_change(before.phase, &status) {
        ctx.metrics
            .break_glass
            .get_or_create(&crate::runtime::metrics::PhaseLabels {
                phase: status.phase.map(|p| p.as_str()).unwrap_or_default(),
            })
            .inc();
        ctx.announce(controller, &bg.object_ref(&()), &[t]).await;
    }
    Ok(())
}

/// The phase change of a BreakGlass, as its Event says it.
fn phase_change(before: Option<BreakGlassPhase>, status: &BreakGlassStatus) -> Option<Transition> {
    let phase = status.phase?;
    if before == Some(phase) {
        return None;
    }
    let severity = match phase {
        BreakGlassPhase::AwaitingApproval | BreakGlassPhase::Ratified => Severity::Normal,
        _ => Severity::Warning,
    };
    Some(Transition::new(
        "Phase",
        before.map(|p| p.as_str()),
        phase.as_str(),
        format!("BreakGlass{}", phase.as_str()),
        severity,
        status.message.clone().unwrap_or_default(),
    ))
}
