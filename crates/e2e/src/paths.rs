//! Where the repository and the built binaries are. The binaries belong to
//! other crates of the workspace, so cargo does not hand their paths to these
//! tests: they are found beside the test executable, and a binary older than
//! its crate's sources is refused rather than tested.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The repository's root.
pub const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// The built binary `name` (`modelgate` or `kubectl-modelgate`), checked to
/// be newer than every source file of the crates it is built from.
pub fn binary(name: &str) -> PathBuf {
    // A test executable is target/<profile>/deps/<test>-<hash>.
    let exe = std::env::current_exe().expect("the test executable's path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test executable sits in target/<profile>/deps");
    let path = dir.join(name);
    let built = modified(&path).unwrap_or_else(|| {
        panic!(
            "{} is not built: run `cargo build --bins` first (hack/test.sh does)",
            path.display()
        )
    });
    let crates: &[&str] = match name {
        "kubectl-modelgate" => &["modelgate", "kubectl-modelgate"],
        _ => &["modelgate"],
    };
    for krate in crates {
        let src = Path::new(REPO).join("crates").join(krate).join("src");
        if newest(&src).is_some_and(|newest| newest > built) {
            panic!(
                "{} is older than crates/{krate}/src: run `cargo build --bins` first (hack/test.sh does)",
                path.display()
            );
        }
    }
    path
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The newest modification time of any file under `dir`.
fn newest(dir: &Path) -> Option<SystemTime> {
    let entries = std::fs::read_dir(dir).ok()?;
    entries
        .flatten()
        .filter_map(|entry| {
            let path = entry.path();
            if path.is_dir() {
                newest(&path)
            } else {
                modified(&path)
            }
        })
        .max()
}
