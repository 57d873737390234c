//! What reaches past a sealed pod's inputs: the host's network, processes
//! and names, privileges, host ports, and mounts over the model's
//! directory. Each is a way around the model volume or the egress policy,
//! so a pod with any of them is not sealed. Pure.

use k8s_openapi::api::core::v1::{Container, PodSpec};

use super::mount;

/// The pod-level settings and container privileges that reach the host.
pub fn host_problems(spec: &PodSpec) -> Vec<String> {
    let mut found = Vec::new();
    for (on, what) in [
        (
            spec.host_network,
            "hostNetwork (no NetworkPolicy applies to it)",
        ),
        (spec.host_pid, "hostPID"),
        (spec.host_ipc, "hostIPC"),
    ] {
        if on == Some(true) {
            found.push(format!("the pod uses {what}"));
        }
    }
    if spec.host_aliases.as_ref().is_some_and(|h| !h.is_empty()) {
        found.push(
            "the pod sets hostAliases (it could rename the hosts a runtime reaches)".to_string(),
        );
    }
    for c in containers(spec) {
        found.extend(privileges(c));
    }
    found
}

fn privileges(c: &Container) -> Vec<String> {
    let mut found = Vec::new();
    let security = c.security_context.as_ref();
    if security.and_then(|s| s.privileged) == Some(true) {
        found.push(format!("container {} is privileged", c.name));
    }
    let added = security
        .and_then(|s| s.capabilities.as_ref())
        .and_then(|c| c.add.as_ref())
        .is_some_and(|a| !a.is_empty());
    if added {
        found.push(format!("container {} adds capabilities", c.name));
    }
    let host_port = c
        .ports
        .iter()
        .flatten()
        .any(|p| p.host_port.is_some_and(|h| h != 0));
    if host_port {
        found.push(format!("container {} takes a host port", c.name));
    }
    found
}

/// Mounts of anything but the model at or under the models' root.
pub fn shadowing(spec: &PodSpec) -> Vec<String> {
    containers(spec)
        .flat_map(|c| {
            c.volume_mounts
                .iter()
                .flatten()
                .filter(|m| m.name != mount::VOLUME && mount::under_models(&m.mount_path))
                .map(move |m| {
                    format!(
                        "container {} mounts volume {} at {}, over the approved model's directory",
                        c.name, m.name, m.mount_path
                    )
                })
        })
        .collect()
}

/// A pod's containers and init containers: every one that runs.
pub fn containers(spec: &PodSpec) -> impl Iterator<Item = &Container> {
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
}
