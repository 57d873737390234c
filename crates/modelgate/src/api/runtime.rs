//! The RuntimeCatalog kind: the serving runtimes a platform team trusts to
//! load an approved model, and where their pods may connect to.
//!
//! Cluster-scoped, so only the platform team writes it. Admission reads it
//! as the params of the sealed-pods policy (one catalog, named by the chart),
//! and the operator reads it to judge a ModelDeployment sealed and to write
//! its egress NetworkPolicy.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// The runtimes and egress endpoints the platform team allows in governed
/// namespaces.
#[derive(CustomResource, KubeSchema, Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[kube(
    group = "modelgate.io",
    version = "v1alpha1",
    kind = "RuntimeCatalog",
    shortname = "rtc",
    category = "modelgate",
    doc = "The serving runtimes (images by digest, with the arguments and environment each may be given) that may load an approved model in a governed namespace, and the endpoints those pods may reach. Cluster-scoped: written by the platform team only. With no runtimes listed, any image may serve, and every ModelDeployment reports itself unsealed.",
    printcolumn(
        name = "Runtimes",
        type_ = "string",
        json_path = ".spec.runtimes[*].name"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeCatalogSpec {
    /// The runtimes a governed ModelDeployment's containers must each be.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub runtimes: Vec<ServingRuntime>,
    /// Where a sealed pod may connect besides DNS, written into each
    /// ModelDeployment's egress NetworkPolicy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub egress: Vec<EgressEndpoint>,
}

/// One trusted serving runtime.
#[derive(KubeSchema, Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ServingRuntime {
    /// A short name shown in refusals, e.g. vllm.
    #[schemars(length(min = 1, max = 63))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')").message("runtime name must be lower-case letters, digits and '-'"))]
    pub name: String,
    /// The image, by digest: REGISTRY/REPOSITORY@sha256:<64 hex>.
    #[schemars(length(min = 1, max = 512))]
    #[x_kube(validation = Rule::new("self.matches('^[^@ ]+@sha256:[a-f0-9]{64}$')").message("runtime image must be pinned by digest: REGISTRY/REPOSITORY@sha256:<64 hex digits>"))]
    pub image: String,
    /// The flags a container of this runtime may be given, e.g. --port.
    /// Each argument must be one of them, alone or as FLAG=VALUE; a flag's
    /// value in the next argument is not accepted (it could name anything).
    /// An entry that is itself FLAG=VALUE, e.g. --model=$(MODEL_PATH),
    /// allows that exact argument only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 128))]
    #[schemars(inner(
        length(min = 2, max = 128),
        regex(pattern = r"^--?[A-Za-z0-9][-A-Za-z0-9_.]*(=.*)?$")
    ))]
    pub args: Vec<String>,
    /// The environment variables a container of this runtime may set
    /// (MODEL_* are the operator's and always set).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 128))]
    #[schemars(inner(
        length(min = 1, max = 128),
        regex(pattern = r"^[A-Za-z_][A-Za-z0-9_.-]*$")
    ))]
    pub env: Vec<String>,
}

/// One endpoint sealed pods may reach.
#[derive(KubeSchema, Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct EgressEndpoint {
    /// An IP block, e.g. 10.20.0.0/16.
    #[schemars(length(min = 1, max = 64))]
    #[x_kube(validation = Rule::new("isCIDR(self) && cidr(self) == cidr(self).masked()").message("egress cidr must be a CIDR with no host bits, such as 10.20.0.0/16 (not 10.20.0.5/16), as NetworkPolicies take it"))]
    pub cidr: String,
    /// TCP ports; every port when left out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(range(min = 1, max = 65535)))]
    pub ports: Vec<i32>,
}

impl ServingRuntime {
    /// Whether this runtime may be given `arg`: one of its flags, alone or
    /// as FLAG=VALUE, or exactly one of its pinned FLAG=VALUE entries.
    pub fn allows(&self, arg: &str) -> bool {
        self.args.iter().any(|f| {
            arg == f
                || (!f.contains('=')
                    && arg
                        .strip_prefix(f.as_str())
                        .is_some_and(|v| v.starts_with('=')))
        })
    }
}

impl RuntimeCatalog {
    /// The runtime an image is, if it is one.
    pub fn runtime(&self, image: &str) -> Option<&ServingRuntime> {
        self.spec.runtimes.iter().find(|r| r.image == image)
    }

    /// The runtimes' names and images, as refusals list them.
    pub fn names(&self) -> String {
        self.spec
            .runtimes
            .iter()
            .map(|r| format!("{} ({})", r.name, r.image))
            .collect::<Vec<_>>()
            .join(", ")
    }
}
