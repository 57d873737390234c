//! The Helm chart and the plain manifests rendered from it: lint, render,
//! schema, install into the real control plane, and the operator running as
//! the chart's service account with leader election across two replicas.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use modelgate::api::deployment::DeploymentPhase;
use modelgate_e2e::{chart::*, cluster::*, fixtures::*, operator::*, pods::*, wait::*};
use serde_json::Value;

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

#[test]
fn generated_manifests_are_current() {
    let out = helm(&[
        "template",
        "modelgate",
        CHART,
        "--namespace",
        modelgate::vocabulary::DEFAULT_NAMESPACE,
        "--skip-tests",
    ]);
    let rendered = String::from_utf8_lossy(&out.stdout);
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/modelgate.yaml"
    ))
    .unwrap_or_default();
    let body: String = committed
        .lines()
        .filter(|l| !l.starts_with("# Rendered") && !l.starts_with("# kubectl"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(
        body == rendered,
        "deploy/modelgate.yaml is stale: run hack/render.sh"
    );
    // The local control plane's static admission manifests.
    let out = helm(&[
        "template",
        "modelgate",
        CHART,
        "--namespace",
        modelgate::vocabulary::DEFAULT_NAMESPACE,
        "--skip-tests",
        "-f",
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../hack/static-admission-values.yaml"
        ),
    ]);
    let files = modelgate::static_admission::render(&String::from_utf8_lossy(&out.stdout))
        .expect("static manifests");
    let dir =
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")).join("hack/static-admission");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    assert_eq!(
        names,
        files.iter().map(|f| f.name.clone()).collect::<Vec<_>>(),
        "hack/static-admission/ is stale: run hack/render.sh"
    );
    for file in files {
        assert!(
            std::fs::read_to_string(dir.join(&file.name)).unwrap_or_default() == file.text,
            "hack/static-admission/{} is stale: run hack/render.sh",
            file.name
        );
    }
    for crd in modelgate::crd::all() {
        let file = modelgate::crd::file_name(&crd);
        let chart =
            std::fs::read_to_string(Path::new(CHART).join("crds").join(&file)).unwrap_or_default();
        assert!(
            chart == modelgate::crd::to_yaml(&crd).unwrap_or_default(),
            "charts/modelgate/crds/{file} is stale: run hack/render.sh"
        );
    }
}

#[test]
fn helm_lint_is_clean() {
    let out = helm(&["lint", "--strict", CHART]);
    let said = text(&out);
    assert!(
        out.status.success() && said.contains("0 chart(s) failed") && !said.contains("[WARNING]"),
        "{said}"
    );
}

#[test]
fn spread_budget_pinning_and_network_policy_follow_the_values() {
    // Two replicas: spread over nodes, a budget that keeps one.
    let docs = render(&[]);
    let spec = &find(&docs, "Deployment", "modelgate")["spec"]["template"]["spec"];
    assert_eq!(
        spec["topologySpreadConstraints"][0]["topologyKey"],
        "kubernetes.io/hostname"
    );
    assert_eq!(
        find(&docs, "PodDisruptionBudget", "modelgate")["spec"]["minAvailable"],
        1
    );
    assert!(
        !docs.iter().any(|d| d["kind"] == "NetworkPolicy"),
        "off by default"
    );
    // One replica: a budget that can never block a drain, nothing to spread.
    let docs = render(&["--set", "replicaCount=1,leaderElection.enabled=false"]);
    let pdb = &find(&docs, "PodDisruptionBudget", "modelgate")["spec"];
    assert_eq!(
        (pdb["maxUnavailable"].clone(), pdb["minAvailable"].clone()),
        (Value::from(1), Value::Null)
    );
    assert!(find(&docs, "Deployment", "modelgate")["spec"]["template"]["spec"]["topologySpreadConstraints"].is_null());
    // Pinned by digest; OpenShift's SCC assigns the user.
    let digest = format!("sha256:{}", "a".repeat(64));
    let docs = render(&[
        "--set",
        &format!("image.digest={digest},networkPolicy.enabled=true"),
        "--set",
        "podSecurityContext.runAsUser=null,podSecurityContext.runAsGroup=null",
    ]);
    let spec = &find(&docs, "Deployment", "modelgate")["spec"]["template"]["spec"];
    assert_eq!(
        spec["containers"][0]["image"],
        format!("modelgate/modelgate@{digest}")
    );
    assert!(
        spec["securityContext"]["runAsUser"].is_null(),
        "{}",
        spec["securityContext"]
    );
    let policy = &find(&docs, "NetworkPolicy", "modelgate")["spec"];
    assert_eq!(policy["ingress"][0]["ports"][0]["port"], 8080);
    assert_eq!(policy["policyTypes"], serde_json::json!(["Ingress"]));
}

#[test]
fn the_rendered_chart_is_what_a_platform_team_checks() {
    let docs = render(&[]);
    let d = find(&docs, "Deployment", "modelgate");
    assert_eq!(d["spec"]["replicas"], 2);
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "modelgate");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let c = &pod["containers"][0];
    let sc = &c["securityContext"];
    assert_eq!(
        (
            sc["readOnlyRootFilesystem"].clone(),
            sc["allowPrivilegeEscalation"].clone()
        ),
        (Value::Bool(true), Value::Bool(false))
    );
    assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert!(
        c["resources"]["requests"]["memory"].is_string()
            && c["resources"]["limits"]["memory"].is_string()
    );
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert!(
        c["args"]
            .as_array()
            .is_some_and(|a| a.contains(&Value::from("--leader-elect=true")))
    );
    assert_eq!(
        find(&docs, "PodDisruptionBudget", "modelgate")["spec"]["minAvailable"],
        1
    );
    assert_eq!(
        find(&docs, "Service", "modelgate-metrics")["spec"]["ports"][0]["port"],
        8080
    );
    assert!(!docs.iter().any(|d| d["kind"] == "ServiceMonitor"));
    let params = find(&docs, "ConfigMap", "modelgate-authority");
    assert_eq!(
        params["data"]["operatorServiceAccount"],
        "system:serviceaccount:modelgate-system:modelgate"
    );
    assert_eq!(params["data"]["separationOfDuties"], "true");
    // Both credential modes of kube-controller-manager create pods.
    assert_eq!(
        params["data"]["podCreators"],
        "system:serviceaccount:kube-system:replicaset-controller,system:kube-controller-manager"
    );
    assert_eq!(params["data"]["exemptGroups"], "");
    // Approval authority, managed Deployments, governed namespaces,
    // approval records, record checkpoints, object size, model volume,
    // sealed pods, break-glass.
    for kind in [
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ] {
        assert_eq!(
            docs.iter().filter(|d| d["kind"] == kind).count(),
            9,
            "{kind}"
        );
    }
    // The sealed-pods policy reads the catalog the chart always installs,
    // listing no runtime unless told.
    let sealed = find(
        &docs,
        "ValidatingAdmissionPolicyBinding",
        "modelgate-sealed-pods",
    );
    assert_eq!(sealed["spec"]["paramRef"]["name"], "modelgate");
    assert_eq!(
        find(&docs, "RuntimeCatalog", "modelgate")["spec"]["runtimes"],
        serde_json::json!([])
    );
    assert_eq!(
        params["data"]["recordDeleters"],
        "system:serviceaccount:kube-system:namespace-controller,system:kube-controller-manager"
    );
    let governed = find(
        &docs,
        "ValidatingAdmissionPolicy",
        "modelgate-governed-workloads",
    );
    assert_eq!(
        governed["spec"]["matchConstraints"]["namespaceSelector"]["matchLabels"]["modelgate.io/governed"],
        "true"
    );
    let operator = find(&docs, "ClusterRole", "modelgate-operator");
    assert!(
        !serde_json::to_string(operator)
            .unwrap_or_default()
            .contains('*'),
        "wildcard in the operator role"
    );

    // Values reach the manifests.
    let docs = render(&[
        "--set",
        "reviewerGroups.security=oidc:appsec",
        "--set",
        "separationOfDuties=false",
        "--set",
        "metrics.serviceMonitor.enabled=true",
        "--set",
        "replicaCount=3",
    ]);
    let params = find(&docs, "ConfigMap", "modelgate-authority");
    assert_eq!(
        (
            params["data"]["securityReviewers"].clone(),
            params["data"]["separationOfDuties"].clone()
        ),
        ("oidc:appsec".into(), "false".into())
    );
    assert_eq!(
        find(&docs, "Deployment", "modelgate")["spec"]["replicas"],
        3
    );
    assert_eq!(
        find(&docs, "ServiceMonitor", "modelgate")["spec"]["endpoints"][0]["path"],
        "/metrics"
    );
    let binding = find(&docs, "ClusterRoleBinding", "modelgate-reviewers");
    assert!(
        binding["subjects"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s["name"] == "oidc:appsec"))
    );
    let runtime = serde_json::json!({"name": "vllm", "image": format!("registry.example.com/vllm@sha256:{}", "ab".repeat(32)), "args": ["--port"]});
    let docs = render(&[
        "--set-json",
        &format!("runtimes=[{runtime}]"),
        "--set-json",
        r#"egress=[{"cidr":"10.20.0.0/16","ports":[443]}]"#,
    ]);
    let catalog = &find(&docs, "RuntimeCatalog", "modelgate")["spec"];
    assert_eq!(catalog["runtimes"], serde_json::json!([runtime]));
    assert_eq!(catalog["egress"][0]["ports"], serde_json::json!([443]));
}

/// The console in the cluster: no token of its own, nothing bound to its
/// service account, its own pods (the operator's selectors never match
/// them), the chart's reviewer groups and the client secret from a Secret.
#[test]
fn the_console_runs_with_no_token_and_no_rights_of_its_own() {
    let docs = render(&[
        "--set",
        EVERYTHING_ON,
        "--set",
        "reviewerGroups.legal=corp:legal",
        "--set",
        "console.limits.sessionsPerPerson=3",
    ]);
    let d = find(&docs, "Deployment", "modelgate-console");
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "modelgate-console");
    assert_eq!(pod["automountServiceAccountToken"], false);
    let sa = find(&docs, "ServiceAccount", "modelgate-console");
    assert_eq!(sa["automountServiceAccountToken"], false);
    for binding in docs.iter().filter(|o| {
        matches!(
            o["kind"].as_str(),
            Some("RoleBinding" | "ClusterRoleBinding")
        )
    }) {
        assert!(
            !binding["subjects"]
                .to_string()
                .contains("modelgate-console"),
            "nothing is bound to the console: {binding}"
        );
    }
    let container = &pod["containers"][0];
    let args = container["args"].to_string();
    for want in [
        "--oidc-issuer=https://sso.example.com",
        "--external-url=https://modelgate.example.com",
        "--reviewer-group=legal=corp:legal",
        "--api-ca-file=/etc/modelgate/kube-ca/ca.crt",
        "--oidc-client-secret-file=/etc/modelgate/oidc-client/client-secret",
        "--max-sessions=1000",
        "--max-sessions-per-person=3",
        "--max-live-pages=8",
    ] {
        assert!(args.contains(want), "{want} in {args}");
    }
    let volumes = pod["volumes"].to_string();
    assert!(volumes.contains("modelgate-console-oidc"), "{volumes}");
    let operator = find(&docs, "Deployment", "modelgate");
    let selector = &operator["spec"]["selector"]["matchLabels"];
    let console_labels = &d["spec"]["template"]["metadata"]["labels"];
    assert_ne!(
        selector["app.kubernetes.io/name"], console_labels["app.kubernetes.io/name"],
        "the operator's selector does not take the console's pods"
    );
    let ingress = find(&docs, "Ingress", "modelgate-console");
    assert_eq!(ingress["spec"]["rules"][0]["host"], "modelgate.example.com");
    find(&docs, "NetworkPolicy", "modelgate-console");
}

#[test]
fn bad_values_are_refused_by_the_schema() {
    for (set, says) in [
        ("replicaCount=0", "replicaCount"),
        ("logFormat=xml", "logFormat"),
        ("reviewerGroups.security=", "reviewerGroups/security"),
        ("leaderElection.leaseDuration=1", "leaseDuration"),
        ("image.pullPolicy=Sometimes", "pullPolicy"),
        ("metrics.porrt=9090", "porrt"),
        ("image.digest=latest", "digest"),
        ("tolerations[0].operator=Maybe", "operator"),
        ("resources.request.cpu=1", "request"),
        (
            "metrics.prometheusRule.expiringWithinDays=0",
            "expiringWithinDays",
        ),
        ("metrics.prometheusRule.job=", "job"),
        ("metrics.grafanaDashboard.lables.a=b", "lables"),
        ("tests.image.digest=latest", "digest"),
        (
            "runtimes[0].name=vllm,runtimes[0].image=registry.example.com/vllm:0.9",
            "runtimes/0/image",
        ),
        (
            "replicaCount=2,leaderElection.enabled=false",
            "replicaCount 2 needs leaderElection.enabled=true",
        ),
        (
            "metrics.serviceMonitor.enabled=true,metrics.service.enabled=false",
            "needs metrics.service.enabled=true",
        ),
        ("console.enabled=true", "needs console.oidc.issuerURL"),
        (
            "console.enabled=true,console.oidc.issuerURL=https://sso.example.com",
            "needs console.externalURL",
        ),
        ("console.oidc.issuerURL=http://sso.example.com", "issuerURL"),
        ("console.sessionMaxAge=forever", "sessionMaxAge"),
        ("console.limits.sessionsPerPerson=0", "sessionsPerPerson"),
        ("console.limits.sesions=10", "sesions"),
        ("console.oidc.scopes={profile}", "scopes"),
    ] {
        let out = helm(&["template", "modelgate", CHART, "--set", set]);
        let said = text(&out);
        assert!(
            !out.status.success() && said.contains(says),
            "--set {set} was not refused naming {says}: {said}"
        );
    }
}

async fn holder(leases: &Api<Lease>) -> Option<String> {
    let lease = leases.get_opt("modelgate-leader").await.ok()??;
    lease.spec?.holder_identity.filter(|h| !h.is_empty())
}

#[tokio::test(flavor = "multi_thread")]
async fn helm_install_then_two_replicas_as_the_charts_service_account_fail_over() {
    let client = install_crds().await;
    // Adopts what `kubectl apply -k deploy/` may have installed: the
    // rendered manifests carry Helm's ownership annotations.
    let out = helm(&[
        "upgrade",
        "--install",
        "modelgate",
        CHART,
        "--namespace",
        modelgate::vocabulary::DEFAULT_NAMESPACE,
        "--create-namespace",
        "--set",
        "replicaCount=2",
    ]);
    assert!(out.status.success(), "helm install: {}", text(&out));
    // The pods of this release's template, not the last one's: an upgrade
    // whose new pods cannot schedule leaves the old ones Running.
    let rollout = kubectl(&[
        "rollout",
        "status",
        "deployment/modelgate",
        "-n",
        modelgate::vocabulary::DEFAULT_NAMESPACE,
        "--timeout=90s",
    ]);
    assert!(rollout.status.success(), "rollout: {}", text(&rollout));
    let pods = eventually(60, "operator pods on kwok nodes", || async {
        let out = kubectl(&[
            "get",
            "pods",
            "-n",
            modelgate::vocabulary::DEFAULT_NAMESPACE,
            "-l",
            "app.kubernetes.io/name=modelgate",
            "-o",
            "jsonpath={range .items[*]}{.spec.nodeName} {.status.phase}{\"\\n\"}{end}",
        ]);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("kwok-node-") && l.ends_with("Running"))
            .collect();
        (lines.len() == 2).then_some(text)
    })
    .await;
    println!("operator pods:\n{pods}");

    // kwok runs no containers: run the operator binary here, twice, as the
    // chart's service account, so the chart's RBAC is what it has.
    let dir = std::env::temp_dir().join(format!("modelgate-chart-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let kubeconfig = service_account_kubeconfig(&dir);
    let (port_a, port_b) = (free_port(), free_port());
    let (name_a, name_b) = (
        format!("replica-a-{}", std::process::id()),
        format!("replica-b-{}", std::process::id()),
    );
    let mut processes = Killed(vec![
        operator_process(&kubeconfig, &name_a, port_a, &[]),
        operator_process(&kubeconfig, &name_b, port_b, &[]),
    ]);

    let leases: Api<Lease> =
        Api::namespaced(client.clone(), modelgate::vocabulary::DEFAULT_NAMESPACE);
    // Names unique to this run, so a lease left by an earlier run never
    // passes for one of these replicas.
    let leader = eventually(60, "a leader", || async {
        let holder = holder(&leases).await?;
        (holder == name_a || holder == name_b).then_some(holder)
    })
    .await;
    let (leader_index, standby_port) = if leader == name_a {
        (0, port_b)
    } else {
        (1, port_a)
    };
    let metrics = eventually(30, "the standby's metrics", || async {
        try_http_get(([127, 0, 0, 1], standby_port).into(), "/metrics").map(|(_, m)| m)
    })
    .await;
    assert_eq!(
        sample(&metrics, "modelgate_leader"),
        0.0,
        "the standby claims to lead"
    );

    // The leader reconciles an approval and a deployment end to end.
    let ns = TestNamespace::new(&client, "chart").await;
    let (_approvals, mds) = create_model(&client, &ns.name, "fd", "fd", "8.0.0", None).await;
    approve_all(&ns.name, "fd").await;
    phase_within(&mds, "fd", DeploymentPhase::Available, 60).await;

    // Only the leader writes: the standby has made no status write at all.
    let leader_port = if leader_index == 0 { port_a } else { port_b };
    let writes = |port: u16| {
        let m = http_get(([127, 0, 0, 1], port).into(), "/metrics").1;
        sample(
            &m,
            r#"modelgate_status_writes_total{controller="approval"}"#,
        ) + sample(
            &m,
            r#"modelgate_status_writes_total{controller="deployment"}"#,
        )
    };
    let (leader_writes, standby_writes) = (writes(leader_port), writes(standby_port));
    println!("status writes before the kill: leader {leader_writes}, standby {standby_writes}");
    assert!(
        leader_writes > 0.0 && standby_writes == 0.0,
        "leader {leader_writes}, standby {standby_writes}"
    );

    // Kill the leader outright; the standby takes over.
    let killed_at = Instant::now();
    let _ = processes.0[leader_index].kill();
    let _ = processes.0[leader_index].wait();
    let new_leader = eventually(60, "the standby takes over", || async {
        let h = holder(&leases).await?;
        (h != leader).then_some(h)
    })
    .await;
    let takeover = killed_at.elapsed();
    println!(
        "leader {leader} killed; {new_leader} took over after {:.1}s (lease duration 10s)",
        takeover.as_secs_f64()
    );
    assert!(
        takeover < Duration::from_secs(25),
        "takeover took {takeover:?}"
    );

    // A gate changed after the kill is reconciled by the new leader.
    set_gate(
        &ns.name,
        "fd",
        "SecurityReview",
        "False",
        "sec-after-kill@example.com",
    )
    .await
    .expect("revoke");
    phase_within(&mds, "fd", DeploymentPhase::Revoked, 30).await;
    let metrics = http_get(([127, 0, 0, 1], standby_port).into(), "/metrics").1;
    assert_eq!(sample(&metrics, "modelgate_leader"), 1.0);

    // SIGTERM: the new leader releases the lease on its way out.
    let survivor = &mut processes.0[1 - leader_index];
    let _ = Command::new("kill")
        .args(["-TERM", &survivor.id().to_string()])
        .status();
    let exited = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        matches!(survivor.try_wait(), Ok(Some(_)))
    });
    assert!(exited, "no exit within 10s of SIGTERM");
    let released = holder(&leases).await;
    assert!(
        released.is_none() || released.as_deref() != Some(new_leader.as_str()),
        "lease still held by {new_leader}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// What Artifact Hub shows from Chart.yaml is what the chart ships.
#[test]
fn chart_metadata_says_what_the_chart_ships() {
    let chart_yaml =
        std::fs::read_to_string(Path::new(CHART).join("Chart.yaml")).expect("Chart.yaml");
    let chart: Value = serde_yaml_ng::from_str(&chart_yaml).expect("Chart.yaml is YAML");
    for key in ["home", "icon"] {
        assert!(
            chart[key].as_str().is_some_and(|v| !v.is_empty()),
            "no {key}"
        );
    }
    for key in ["sources", "maintainers"] {
        assert!(
            chart[key].as_array().is_some_and(|v| !v.is_empty()),
            "no {key}"
        );
    }
    let annotation = |key: &str| -> Value {
        let raw = chart["annotations"][key]
            .as_str()
            .unwrap_or_else(|| panic!("no annotation {key}"));
        serde_yaml_ng::from_str(raw).unwrap_or_else(|e| panic!("{key} is not YAML: {e}"))
    };
    assert_eq!(
        chart["annotations"]["artifacthub.io/license"],
        env!("CARGO_PKG_LICENSE")
    );
    // The image listed is the one the chart runs by default.
    let docs = render(&[]);
    let image = &find(&docs, "Deployment", "modelgate")["spec"]["template"]["spec"]["containers"]
        [0]["image"];
    let images = annotation("artifacthub.io/images");
    assert!(
        images
            .as_array()
            .is_some_and(|l| l.iter().any(|i| &i["image"] == image)),
        "artifacthub.io/images does not list {image}: {images}"
    );
    // The CRDs listed are the ones in crds/, with their served versions.
    let listed: std::collections::BTreeSet<(String, String, String)> =
        annotation("artifacthub.io/crds")
            .as_array()
            .expect("a list of CRDs")
            .iter()
            .map(|c| {
                (
                    c["name"].as_str().unwrap_or_default().into(),
                    c["kind"].as_str().unwrap_or_default().into(),
                    c["version"].as_str().unwrap_or_default().into(),
                )
            })
            .collect();
    let shipped: std::collections::BTreeSet<(String, String, String)> = modelgate::crd::all()
        .iter()
        .flat_map(|crd| {
            let name = crd.metadata.name.clone().unwrap_or_default();
            let kind = crd.spec.names.kind.clone();
            crd.spec
                .versions
                .iter()
                .filter(|v| v.served)
                .map(move |v| (name.clone(), kind.clone(), v.name.clone()))
        })
        .collect();
    assert_eq!(listed, shipped, "artifacthub.io/crds");
    let kinds = [
        "added",
        "changed",
        "deprecated",
        "removed",
        "fixed",
        "security",
    ];
    for change in annotation("artifacthub.io/changes")
        .as_array()
        .expect("changes")
    {
        assert!(
            change["kind"].as_str().is_some_and(|k| kinds.contains(&k))
                && change["description"]
                    .as_str()
                    .is_some_and(|d| !d.is_empty()),
            "{change}"
        );
    }
    // `helm test` asks /readyz through the metrics Service; plain manifests
    // leave the test pod out.
    let pod = find(&docs, "Pod", "modelgate-test-readyz");
    assert_eq!(pod["metadata"]["annotations"]["helm.sh/hook"], "test");
    let command = pod["spec"]["containers"][0]["command"].to_string();
    assert!(
        command.contains("http://modelgate-metrics.modelgate-system.svc:8080/readyz"),
        "{command}"
    );
    assert!(!render(&["--skip-tests"]).iter().any(|d| d["kind"] == "Pod"));
}

/// The examples Artifact Hub shows are accepted by the API server.
#[tokio::test(flavor = "multi_thread")]
async fn chart_crd_examples_are_accepted() {
    let client = install_crds().await;
    let ns = TestNamespace::new(&client, "chart-examples").await;
    let chart_yaml =
        std::fs::read_to_string(Path::new(CHART).join("Chart.yaml")).expect("Chart.yaml");
    let chart: Value = serde_yaml_ng::from_str(&chart_yaml).expect("Chart.yaml is YAML");
    let examples: Vec<Value> = serde_yaml_ng::from_str(
        chart["annotations"]["artifacthub.io/crdsExamples"]
            .as_str()
            .expect("crdsExamples"),
    )
    .expect("crdsExamples is YAML");
    // The kinds people write; ApprovalRecords are the operator's alone.
    let kinds: Vec<&str> = examples.iter().filter_map(|e| e["kind"].as_str()).collect();
    assert_eq!(kinds, ["ModelApproval", "ModelDeployment"], "crdsExamples");
    for example in &examples {
        let out = kubectl_stdin(
            &["apply", "--dry-run=server", "-n", &ns.name, "-f", "-"],
            Some(&serde_json::to_string(&example).unwrap_or_default()),
        );
        assert!(out.status.success(), "{}: {}", example["kind"], text(&out));
    }
}
