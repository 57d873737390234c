//! Locks whose holders write each entry whole.

use std::sync::{Mutex, MutexGuard};

/// The guard of `m`, poisoned or not: a holder that panicked left every
/// entry it wrote whole, so the maps it guards stay good.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
