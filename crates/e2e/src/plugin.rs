//! The built `kubectl-modelgate` binary, run as a person.

use std::process::{Command, Output};

use crate::{cluster::*, paths::*};

/// Runs the plugin as `user` in `groups` (None: as the admin) in `ns`.
pub fn run_plugin(ns: &str, who: Option<(&str, &[&str])>, args: &[&str]) -> Output {
    plugin_command(ns, who, args)
        .output()
        .expect("run kubectl-modelgate")
}

/// The plugin's command line as `user` in `groups` (None: as the admin)
/// in `ns`, for a test that runs it itself (such as a console it keeps).
pub fn plugin_command(ns: &str, who: Option<(&str, &[&str])>, args: &[&str]) -> Command {
    let mut cmd = Command::new(binary("kubectl-modelgate"));
    cmd.arg("--kubeconfig")
        .arg(&cluster().kubeconfig)
        .args(["-n", ns]);
    if let Some((user, groups)) = who {
        cmd.args(["--as", user]);
        for g in groups.iter().chain(&["system:authenticated"]) {
            cmd.args(["--as-group", g]);
        }
    }
    cmd.args(args);
    cmd
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `kubectl modelgate audit SUBCOMMAND FILE FLAG OTHER` as the admin in
/// `ns`: `verify bundle --keys keys`, `report bundle -o page`.
pub fn audit(
    ns: &str,
    subcommand: &str,
    file: &std::path::Path,
    (flag, other): (&str, &std::path::Path),
) -> Output {
    run_plugin(
        ns,
        None,
        &[
            "audit",
            subcommand,
            &file.to_string_lossy(),
            flag,
            &other.to_string_lossy(),
        ],
    )
}
