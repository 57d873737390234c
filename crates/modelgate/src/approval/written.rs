//! The operator's own last write of each approval, kept until the watch
//! cache has caught up with it: the status's revision, and (with its own
//! overlay) the in-use finalizer.
//!
//! A reconcile reads the approval from the cache. When a reviewer's change
//! arrives while the operator's previous write is still on its way back
//! through the watch, a reconcile of that read would see the reviewer's
//! change on top of the operator's *old* fields and record the same
//! transitions again (a second Event for one decision). Such a stale read is
//! not decided: the write's own echo, a moment later, brings the approval
//! back with both.
//!
//! Only the revision is kept, not the status written. An entry lives until
//! the watch delivers the write (see [`Written::observed`]), and on a cold
//! start with thousands of approvals the watch runs behind the writes: a
//! copy of each status written held about a third of the operator's peak
//! memory.

use std::collections::HashMap;
use std::sync::Mutex;

/// Last writes by object uid: (resourceVersion produced, what was written).
/// The value is boxed so that the map's table stays small whatever its peak
/// size was.
pub struct Written<T = ()> {
    inner: Mutex<HashMap<String, (u64, Box<T>)>>,
}

impl<T> Default for Written<T> {
    fn default() -> Self {
        Written {
            inner: Mutex::default(),
        }
    }
}

/// resourceVersions are etcd revisions: integers that only grow. Anything
/// else (another storage) disables the overlay rather than guess.
fn revision(rv: Option<&str>) -> Option<u64> {
    rv?.parse().ok()
}

impl<T: Clone> Written<T> {
    /// Remembers what a write produced.
    pub fn record(&self, uid: &str, resource_version: Option<&str>, value: T) {
        if let (Some(rv), Ok(mut inner)) = (revision(resource_version), self.inner.lock()) {
            inner.insert(uid.to_string(), (rv, Box::new(value)));
        }
    }

    /// The watch has delivered revision `resource_version` of `uid`: a
    /// write it includes is no longer needed.
    pub fn observed(&self, uid: &str, resource_version: Option<&str>) {
        let (Some(seen), Ok(mut inner)) = (revision(resource_version), self.inner.lock()) else {
            return;
        };
        if inner.get(uid).is_some_and(|(written, _)| seen >= *written) {
            inner.remove(uid);
            // Give back the table a burst of writes grew.
            if inner.capacity() > 64 && inner.len() < inner.capacity() / 4 {
                inner.shrink_to_fit();
            }
        }
    }

    /// Drops the entry of a deleted object.
    pub fn forget(&self, uid: &str) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.remove(uid);
        }
    }

    /// Our last write when a read at `resource_version` is older than it;
    /// None when the read is at least as new (the entry is then dropped) or
    /// there is none.
    pub fn ahead_of(&self, uid: &str, resource_version: Option<&str>) -> Option<T> {
        let mut inner = self.inner.lock().ok()?;
        let seen = revision(resource_version)?;
        let (written_rv, written) = inner.get(uid)?;
        if seen >= *written_rv {
            inner.remove(uid);
            return None;
        }
        Some(written.as_ref().clone())
    }

    /// How many writes are still ahead of the cache.
    pub fn pending(&self) -> usize {
        self.inner.lock().map(|i| i.len()).unwrap_or(0)
    }
}

impl Written<()> {
    /// Remembers that a write produced `resource_version`.
    pub fn wrote(&self, uid: &str, resource_version: Option<&str>) {
        self.record(uid, resource_version, ());
    }

    /// Whether a read at `resource_version` is older than our last write
    /// (whose echo is still on its way); a read at least as new ends the
    /// entry.
    pub fn behind(&self, uid: &str, resource_version: Option<&str>) -> bool {
        self.ahead_of(uid, resource_version).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_older_than_the_last_write_is_behind_until_the_write_is_seen() {
        let w = Written::default();
        w.wrote("u", Some("10"));
        // The cache still holds revision 9 (a reviewer's change, say).
        assert!(w.behind("u", Some("9")));
        assert_eq!(w.pending(), 1);
        // Once the cache has caught up, the cache is the truth again.
        assert!(!w.behind("u", Some("12")));
        assert_eq!(w.pending(), 0);
        assert!(!w.behind("u", Some("9")), "no entry, nothing to wait for");
        // The watch delivering the write (or anything newer) ends the
        // entry without a reconcile; an older revision does not.
        w.wrote("u", Some("20"));
        w.observed("u", Some("19"));
        assert_eq!(w.pending(), 1);
        w.observed("u", Some("20"));
        assert_eq!(w.pending(), 0);
        // A deleted approval's entry goes with it.
        w.wrote("u", Some("30"));
        w.forget("u");
        assert_eq!(w.pending(), 0);
        // Opaque resourceVersions disable the wait rather than guess.
        w.wrote("v", Some("abc"));
        assert_eq!(w.pending(), 0);
        assert!(!w.behind("v", Some("1")));
    }
}
