"""The Helm chart (helm/ccag): lint, schema, rendering, and what the rendered
manifests promise. No cluster runs here: `helm template` output is checked
with kubernetes-validate (the API schemas of the Kubernetes versions below,
--strict: unknown fields fail) and by the assertions of each test."""

import base64
import subprocess
import sys

import pytest
import yaml

from chartlib import CHART, NAMESPACE, RELEASE, TESTS, helm, render

CI = sorted((CHART / "ci").glob("*-values.yaml"))
INVALID = sorted((TESTS / "invalid").glob("*.yaml"))
PG = CHART / "ci" / "postgres-values.yaml"
EXISTING = CHART / "ci" / "existing-secrets-values.yaml"
PRODUCTION = CHART / "ci" / "production-values.yaml"
MINIMAL = CHART / "ci" / "minimal-values.yaml"
STATEFUL = CHART / "ci" / "statefulset-values.yaml"
# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion: the
# preStop sleep action) and a current one.
KUBE_VERSIONS = ["1.30", "1.33"]
# Custom resources kubernetes-validate has no schema for; their tests below
# check them instead.
CRD_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}

FULL = f"{RELEASE}-ccag"
CP = f"{FULL}-controlplane"
DP = f"{FULL}-dataplane"


def ids(paths):
    return [p.name for p in paths]


def of_kind(docs, kind, name=None):
    return [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]


def one(docs, kind, name):
    found = of_kind(docs, kind, name)
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def workloads(docs):
    return [d for d in docs if d["kind"] in ("Deployment", "StatefulSet")]


def dataplane(docs):
    (w,) = [d for d in workloads(docs) if d["metadata"]["name"] == DP]
    return w


def controlplane(docs):
    return one(docs, "Deployment", CP)


def container(workload):
    (c,) = workload["spec"]["template"]["spec"]["containers"]
    return c


def env(workload):
    return {e["name"]: e for e in container(workload)["env"]}


def env_value(workload, name):
    return env(workload)[name]["value"]


def matches(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


# --- lint and schema ---------------------------------------------------------


def test_lint_strict_passes_on_the_defaults():
    # A database is required to render, but lint reports a template's
    # `fail` as information, so the bare defaults lint clean.
    helm("lint", "--strict", str(CHART))


@pytest.mark.parametrize("values", CI, ids=ids(CI))
def test_lint_strict_passes_on_every_ci_values_file(values):
    helm("lint", "--strict", str(CHART), "-f", str(values))


@pytest.mark.parametrize("values", INVALID, ids=ids(INVALID))
def test_values_the_schema_refuses_fail_lint_and_template(values):
    lint = helm("lint", "--strict", str(CHART), "-f", str(values), check=False)
    assert lint.returncode != 0, lint.stdout
    tpl = helm("template", RELEASE, str(CHART), "-f", str(values), check=False)
    assert tpl.returncode != 0
    assert "values don't meet the specifications of the schema" in tpl.stderr, tpl.stderr


def test_a_misspelt_key_is_named_in_the_error():
    tpl = helm("template", RELEASE, str(CHART), "-f", str(TESTS / "invalid" / "typo-key.yaml"), check=False)
    assert "replicsa" in tpl.stderr


def test_the_chart_refuses_to_render_without_a_database():
    tpl = helm("template", RELEASE, str(CHART), check=False)
    assert tpl.returncode != 0
    assert "a PostgreSQL database is required" in tpl.stderr


def test_a_drain_that_outlasts_the_grace_period_is_refused():
    tpl = helm("template", RELEASE, str(CHART), "-f", str(TESTS / "render-fail" / "drain-longer-than-grace.yaml"),
               check=False)
    assert tpl.returncode != 0
    assert "must end before terminationGracePeriodSeconds" in tpl.stderr


def test_an_oidc_issuer_without_a_client_id_is_refused():
    tpl = helm("template", RELEASE, str(CHART), "-f", str(TESTS / "render-fail" / "oidc-without-client-id.yaml"),
               check=False)
    assert tpl.returncode != 0
    assert "oidc.clientId is required" in tpl.stderr


# --- kubernetes-validate -----------------------------------------------------


def kubernetes_validate(docs, version):
    text = yaml.safe_dump_all(docs)
    return subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "--strict", "--quiet", "-k", version, "-"],
        input=text, capture_output=True, text=True, timeout=120,
    )


@pytest.mark.parametrize("version", KUBE_VERSIONS)
@pytest.mark.parametrize("values", CI, ids=ids(CI))
def test_rendered_manifests_pass_kubernetes_validate_strict(values, version):
    docs = render([values])
    api = [d for d in docs if (d["apiVersion"], d["kind"]) not in CRD_KINDS]
    p = kubernetes_validate(api, version)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "Couldn't find schema" not in p.stdout + p.stderr


@pytest.mark.parametrize("version", KUBE_VERSIONS[:1])
def test_kubernetes_validate_refuses_an_unknown_field(version):
    # The check above can fail: a field the API does not have is an error.
    docs = render([PG])
    container(dataplane(docs))["preStopSleep"] = 5
    p = kubernetes_validate(docs, version)
    assert p.returncode != 0
    assert "preStopSleep" in p.stdout + p.stderr


# --- security ----------------------------------------------------------------


@pytest.mark.parametrize("values", CI, ids=ids(CI))
def test_every_container_runs_as_non_root_with_a_read_only_root_and_no_capabilities(values):
    for w in workloads(render([values])):
        pod = w["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        for c in pod["containers"] + pod.get("initContainers", []):
            sc = c["securityContext"]
            assert sc["runAsNonRoot"] is True, c["name"]
            assert sc["readOnlyRootFilesystem"] is True, c["name"]
            assert sc["allowPrivilegeEscalation"] is False, c["name"]
            assert sc["capabilities"]["drop"] == ["ALL"], c["name"]
            assert "add" not in sc["capabilities"], c["name"]


@pytest.mark.parametrize("values", CI, ids=ids(CI))
def test_every_writable_path_is_a_volume(values):
    # With a read-only root, the state directories and /tmp must be mounts.
    for w in workloads(render([values])):
        mounts = {m["mountPath"] for m in container(w)["volumeMounts"]}
        assert "/tmp" in mounts
        e = env(w)
        for var in ("CCAG_DATA_DIR", "CCAG_DATAPLANE_STATE_DIR"):
            if var in e:
                assert e[var]["value"] in mounts, (var, mounts)


@pytest.mark.parametrize("values", CI, ids=ids(CI))
def test_no_pod_mounts_a_kubernetes_api_token(values):
    for w in workloads(render([values])):
        assert w["spec"]["template"]["spec"]["automountServiceAccountToken"] is False


def secret_strings(docs):
    out = set()
    for s in of_kind(docs, "Secret"):
        for v in (s.get("data") or {}).values():
            out.add(base64.b64decode(v).decode())
        out.update((s.get("stringData") or {}).values())
    return {s for s in out if len(s) >= 8}


def all_strings(node):
    if isinstance(node, dict):
        for k, v in node.items():
            yield str(k)
            yield from all_strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from all_strings(v)
    elif isinstance(node, str):
        yield node


@pytest.mark.parametrize("values", [PG, PRODUCTION], ids=ids([PG, PRODUCTION]))
def test_no_secret_value_appears_outside_a_secret(values):
    docs = render([values])
    secrets = secret_strings(docs)
    assert len(secrets) >= 3  # database URL, admin password, data-plane token, encryption key
    for d in docs:
        if d["kind"] == "Secret":
            continue
        for s in all_strings(d):
            for secret in secrets:
                assert secret not in s, f"a secret value is in {d['kind']}/{d['metadata']['name']}"
    assert not of_kind(docs, "ConfigMap") or all(
        secret not in s for cm in of_kind(docs, "ConfigMap") for s in all_strings(cm) for secret in secrets
    )


@pytest.mark.parametrize("values", [PG, PRODUCTION], ids=ids([PG, PRODUCTION]))
def test_secrets_reach_the_pods_only_through_secret_key_refs(values):
    docs = render([values])
    for w in workloads(docs):
        e = env(w)
        for name in ("DATABASE_URL", "ADMIN_PASSWORD", "CCAG_DATAPLANE_TOKEN", "CCAG_ENCRYPTION_KEY",
                     "OIDC_CLIENT_SECRET"):
            if name in e:
                assert "value" not in e[name], name
                assert "secretKeyRef" in e[name]["valueFrom"], name


def test_existing_secrets_make_the_chart_create_no_secret():
    docs = render([EXISTING])
    assert of_kind(docs, "Secret") == []
    refs = {}
    for w in workloads(docs):
        for name, e in env(w).items():
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                refs[name] = (ref["name"], ref["key"])
    assert refs["DATABASE_URL"] == ("ccag-db-app", "uri")
    assert refs["CCAG_DATAPLANE_TOKEN"] == ("ccag-secrets", "dataplane-token")
    assert refs["CCAG_ENCRYPTION_KEY"] == ("ccag-secrets", "encryption-key")
    assert refs["OIDC_CLIENT_SECRET"] == ("ccag-secrets", "oidc-client-secret")


@pytest.mark.parametrize("values", CI, ids=ids(CI))
def test_every_secret_reference_names_a_rendered_key_or_the_operators_secret(values):
    docs = render([values])
    own = {s["metadata"]["name"]: set(s["data"]) for s in of_kind(docs, "Secret")}
    given = yaml.safe_load(values.read_text())
    operators = {given.get("secrets", {}).get("existingSecret"), given.get("database", {}).get("existingSecret")}
    for w in workloads(docs):
        for e in container(w)["env"]:
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if not ref:
                continue
            if ref["name"] in own:
                assert ref["key"] in own[ref["name"]] or ref.get("optional"), (e["name"], ref)
            else:
                assert ref["name"] in operators, (e["name"], ref)


def test_generated_secrets_are_usable():
    (secret,) = of_kind(render([PG]), "Secret")
    data = {k: base64.b64decode(v) for k, v in secret["data"].items()}
    assert len(base64.b64decode(data["encryption-key"])) == 32  # CCAG_ENCRYPTION_KEY: base64 of 32 bytes
    assert len(data["admin-password"]) >= 24
    assert data["dataplane-token"].startswith(b"ccag_dp_")
    assert data["database-url"].decode().startswith("postgres://")
    # Uninstalling must not take the encryption key with it.
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def test_both_planes_read_the_same_data_plane_token():
    docs = render([PG])
    a = env(controlplane(docs))["CCAG_DATAPLANE_TOKEN"]["valueFrom"]["secretKeyRef"]
    b = env(dataplane(docs))["CCAG_DATAPLANE_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert (a["name"], a["key"]) == (b["name"], b["key"])


# --- image -------------------------------------------------------------------


def test_the_image_tag_defaults_to_the_chart_app_version():
    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    for w in workloads(render([PG])):
        assert container(w)["image"] == f"ccag:{app_version}"


def test_the_image_tag_can_be_set():
    for w in workloads(render([PG], ["image.tag=1.2.3", "image.repository=registry.example.com/ccag"])):
        assert container(w)["image"] == "registry.example.com/ccag:1.2.3"


def test_each_workload_runs_its_own_binary():
    docs = render([PG])
    assert container(controlplane(docs))["command"] == ["/usr/local/bin/ccag-controlplane"]
    assert container(dataplane(docs))["command"] == ["/usr/local/bin/ccag-dataplane"]


# --- control plane -----------------------------------------------------------


def test_the_control_plane_runs_two_replicas_by_default():
    assert controlplane(render([PG]))["spec"]["replicas"] == 2


def test_control_plane_replicas_have_distinct_ids_and_share_one_database():
    e = env(controlplane(render([PG])))
    assert e["CCAG_REPLICA_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert e["DATABASE_URL"]["valueFrom"]["secretKeyRef"]["key"] == "database-url"


def test_the_control_plane_binds_every_interface_and_probes_its_http_routes():
    cp = controlplane(render([PG]))
    e = env(cp)
    assert e["CCAG_GRPC_ADDR"]["value"] == "0.0.0.0:8091"
    assert e["CCAG_HTTP_ADDR"]["value"] == "0.0.0.0:8081"
    c = container(cp)
    assert c["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    # Migrations run before the HTTP listener opens: liveness waits for startup.
    assert c["startupProbe"]["httpGet"]["path"] == "/health"
    assert c["startupProbe"]["periodSeconds"] * c["startupProbe"]["failureThreshold"] >= 120


def test_a_rolling_update_of_the_control_plane_keeps_every_replica_until_its_successor_is_ready():
    s = controlplane(render([PG]))["spec"]["strategy"]
    assert s["rollingUpdate"]["maxUnavailable"] == 0


def test_the_control_plane_service_exposes_grpc_and_http_and_a_headless_service_every_replica():
    docs = render([PG])
    svc = one(docs, "Service", CP)
    assert {p["name"]: p["port"] for p in svc["spec"]["ports"]} == {"grpc": 8091, "http": 8081}
    headless = one(docs, "Service", f"{CP}-grpc")
    assert headless["spec"]["clusterIP"] == "None"
    assert [p["port"] for p in headless["spec"]["ports"]] == [8091]


def test_oidc_settings_reach_the_control_plane():
    e = env(controlplane(render([EXISTING])))
    assert e["OIDC_ISSUER"]["value"] == "https://login.example.com"
    assert e["OIDC_CLIENT_ID"]["value"] == "gateway"
    assert e["OIDC_ADMIN_GROUPS"]["value"] == "gw-admins"
    assert e["ADMIN_USERS"]["value"] == "ops@example.com"
    assert "OIDC_GROUPS_CLAIM" not in e  # unset values stay unset


def test_grpc_tls_reaches_both_planes():
    docs = render([EXISTING])
    cp, dp = controlplane(docs), dataplane(docs)
    assert env_value(cp, "CCAG_TLS_CERT") == "/etc/ccag/tls/tls.crt"
    assert env_value(dp, "CCAG_CONTROLPLANE_URL").startswith("https://")
    assert env_value(dp, "CCAG_CONTROLPLANE_CA") == "/etc/ccag/tls/ca.crt"
    (tls,) = [v for v in dp["spec"]["template"]["spec"]["volumes"] if v["name"] == "tls"]
    assert tls["secret"]["items"] == [{"key": "ca.crt", "path": "ca.crt"}]  # not the key


# --- data plane --------------------------------------------------------------


def drain_ms(w):
    return int(env_value(w, "CCAG_DATAPLANE_DRAIN_TIMEOUT_MS"))


@pytest.mark.parametrize("values", CI, ids=ids(CI))
def test_the_data_plane_sleeps_before_sigterm_and_its_grace_period_outlasts_the_drain(values):
    dp = dataplane(render([values]))
    pod = dp["spec"]["template"]["spec"]
    sleep = container(dp)["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert sleep >= 1
    grace_ms = pod["terminationGracePeriodSeconds"] * 1000
    assert grace_ms > sleep * 1000 + drain_ms(dp)


def test_the_drain_timeout_follows_the_grace_period():
    assert drain_ms(dataplane(render([PG]))) == (60 - 5 - 15) * 1000
    assert drain_ms(dataplane(render([PRODUCTION]))) == (600 - 10 - 15) * 1000
    assert drain_ms(dataplane(render([PG], ["dataplane.drainTimeoutMs=20000"]))) == 20000


def test_the_data_plane_is_ready_from_ready_and_alive_from_health_on_the_public_port():
    c = container(dataplane(render([PG])))
    assert c["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"http": 8080, "metrics": 9464}


def test_the_data_plane_listens_on_every_interface_with_metrics_on_the_admin_port():
    dp = dataplane(render([PG]))
    assert env_value(dp, "CCAG_DATAPLANE_ADDR") == "0.0.0.0:8080"
    assert env_value(dp, "CCAG_DATAPLANE_ADMIN_ADDR") == "0.0.0.0:9464"


def test_data_planes_dial_every_control_plane_replica_through_the_headless_service():
    docs = render([PG])
    dp = dataplane(docs)
    assert env_value(dp, "CCAG_CONTROLPLANE_URL") == f"http://{CP}-grpc.{NAMESPACE}.svc:8091"
    assert env_value(dp, "CCAG_CONTROLPLANE_HTTP_URL") == f"http://{CP}.{NAMESPACE}.svc:8081"
    headless = one(docs, "Service", f"{CP}-grpc")
    assert matches(headless["spec"]["selector"], controlplane(docs)["spec"]["template"]["metadata"]["labels"])


def test_the_metrics_port_is_not_on_the_public_service():
    docs = render([PRODUCTION])
    public = one(docs, "Service", DP)
    assert [p["targetPort"] for p in public["spec"]["ports"]] == ["http"]
    assert 9464 not in [p["port"] for p in public["spec"]["ports"]]
    metrics = one(docs, "Service", f"{DP}-metrics")
    assert [(p["name"], p["port"]) for p in metrics["spec"]["ports"]] == [("metrics", 9464)]
    for ing in of_kind(docs, "Ingress"):
        for rule in ing["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                assert path["backend"]["service"]["port"]["name"] == "http"
                assert path["backend"]["service"]["name"] != f"{DP}-metrics"


def test_the_state_directory_is_an_empty_dir_by_default():
    dp = dataplane(render([PG]))
    assert dp["kind"] == "Deployment"
    (state,) = [v for v in dp["spec"]["template"]["spec"]["volumes"] if v["name"] == "state"]
    assert state["emptyDir"]["sizeLimit"] == "1Gi"
    assert env_value(dp, "CCAG_DATAPLANE_STATE_DIR") == "/var/lib/ccag/dataplane"


def test_persistence_gives_each_data_plane_its_own_volume():
    docs = render([STATEFUL])
    dp = dataplane(docs)
    assert dp["kind"] == "StatefulSet"
    (claim,) = dp["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "state"
    assert claim["spec"]["resources"]["requests"]["storage"] == "2Gi"
    assert claim["spec"]["storageClassName"] == "gp3"
    assert "state" not in [v["name"] for v in dp["spec"]["template"]["spec"]["volumes"]]
    hpa = one(docs, "HorizontalPodAutoscaler", DP)
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": DP}


def test_autoscaling_replaces_the_fixed_replica_count():
    docs = render([PRODUCTION])
    dp = dataplane(docs)
    assert "replicas" not in dp["spec"]
    hpa = one(docs, "HorizontalPodAutoscaler", DP)
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": DP}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 20)
    targets = {m["resource"]["name"]: m["resource"]["target"]["averageUtilization"] for m in hpa["spec"]["metrics"]}
    assert targets == {"cpu": 60, "memory": 75}
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 600
    # HPA utilisation needs requests.
    assert container(dp)["resources"]["requests"]["cpu"]
    assert not of_kind(render([PG]), "HorizontalPodAutoscaler")


def test_data_plane_rollouts_never_lower_capacity():
    assert dataplane(render([PG]))["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_irsa_annotations_land_on_each_planes_service_account():
    docs = render([PRODUCTION])
    sa = {s["metadata"]["name"]: s for s in of_kind(docs, "ServiceAccount")}
    assert sa[DP]["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].endswith(":role/ccag-bedrock")
    assert sa[CP]["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].endswith(":role/ccag-controlplane")
    assert dataplane(docs)["spec"]["template"]["spec"]["serviceAccountName"] == DP
    assert controlplane(docs)["spec"]["template"]["spec"]["serviceAccountName"] == CP
    assert env_value(dataplane(docs), "AWS_REGION") == "eu-west-1"


def test_extra_environment_reaches_the_data_plane():
    e = env(dataplane(render([PRODUCTION])))
    assert e["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"] == "http://otel-collector.observability.svc:4318"


# --- services, disruption budgets, selectors ---------------------------------


@pytest.mark.parametrize("values", CI, ids=ids(CI))
def test_every_service_and_budget_selects_pods_of_one_workload(values):
    docs = render([values])
    pods = [w["spec"]["template"]["metadata"]["labels"] for w in workloads(docs)]
    for s in of_kind(docs, "Service"):
        assert sum(matches(s["spec"]["selector"], p) for p in pods) == 1, s["metadata"]["name"]
    for b in of_kind(docs, "PodDisruptionBudget"):
        assert sum(matches(b["spec"]["selector"]["matchLabels"], p) for p in pods) == 1
    for w in workloads(docs):
        assert matches(w["spec"]["selector"]["matchLabels"], w["spec"]["template"]["metadata"]["labels"])


@pytest.mark.parametrize("values", CI, ids=ids(CI))
def test_service_target_ports_are_container_ports(values):
    docs = render([values])
    for s in of_kind(docs, "Service"):
        (w,) = [w for w in workloads(docs)
                if matches(s["spec"]["selector"], w["spec"]["template"]["metadata"]["labels"])]
        names = {p["name"] for p in container(w)["ports"]}
        for p in s["spec"]["ports"]:
            assert p["targetPort"] in names, (s["metadata"]["name"], p)


def test_both_planes_have_disruption_budgets_by_default():
    docs = render([PG])
    assert {b["metadata"]["name"] for b in of_kind(docs, "PodDisruptionBudget")} == {CP, DP}
    for b in of_kind(docs, "PodDisruptionBudget"):
        assert b["spec"]["maxUnavailable"] == 1


def test_the_minimal_values_render_no_network_policy_budget_or_service_account():
    docs = render([MINIMAL])
    for kind in ("NetworkPolicy", "PodDisruptionBudget", "ServiceAccount", "HorizontalPodAutoscaler",
                 "Ingress", "ServiceMonitor"):
        assert not of_kind(docs, kind), kind
    for w in workloads(docs):
        assert w["spec"]["template"]["spec"]["serviceAccountName"] == "default"
        assert w["spec"]["replicas"] == 1


def test_pods_spread_over_nodes_by_default():
    for w in workloads(render([PG])):
        (c,) = w["spec"]["template"]["spec"]["topologySpreadConstraints"]
        assert c["topologyKey"] == "kubernetes.io/hostname"
        assert matches(c["labelSelector"]["matchLabels"], w["spec"]["template"]["metadata"]["labels"])


def test_changed_secret_values_restart_the_pods():
    a = controlplane(render([PG]))["spec"]["template"]["metadata"]["annotations"]["checksum/secret-values"]
    b = controlplane(render([PG], ["secrets.adminPassword=another-password"]))
    assert b["spec"]["template"]["metadata"]["annotations"]["checksum/secret-values"] != a


# --- ingress and public URL --------------------------------------------------


def test_the_ingress_sends_everything_to_the_data_planes_except_the_control_plane_paths():
    docs = render([PRODUCTION])
    (ing,) = of_kind(docs, "Ingress")
    (rule,) = ing["spec"]["rules"]
    assert rule["host"] == "gateway.example.com"
    paths = {p["path"]: p["backend"]["service"]["name"] for p in rule["http"]["paths"]}
    assert paths == {"/": DP, "/scim/v2": CP}
    assert ing["spec"]["ingressClassName"] == "nginx"
    assert ing["spec"]["tls"][0]["secretName"] == "gateway-tls"


def test_the_public_url_follows_the_ingress():
    assert env_value(controlplane(render([PRODUCTION])), "CCAG_PUBLIC_URL") == "https://gateway.example.com"
    assert env_value(controlplane(render([EXISTING])), "CCAG_PUBLIC_URL") == "https://gateway.example.com"
    # No ingress, no publicUrl: the port-forward NOTES.txt shows.
    assert env_value(controlplane(render([PG])), "CCAG_PUBLIC_URL") == "http://127.0.0.1:8080"


def test_notes_tell_the_operator_what_to_do_next():
    p = helm("install", RELEASE, str(CHART), "-n", NAMESPACE, "-f", str(PG), "--dry-run=client")
    notes = p.stdout[p.stdout.index("NOTES:"):]
    assert f"kubectl -n {NAMESPACE} get secret {FULL} -o jsonpath='{{.data.admin-password}}'" in notes
    assert f"port-forward svc/{CP} 8091:8091" in notes
    assert "ccag keys create" in notes
    assert "ANTHROPIC_BASE_URL=http://127.0.0.1:8080" in notes
    assert "ANTHROPIC_API_KEY" in notes


# --- monitoring --------------------------------------------------------------


def test_service_monitors_scrape_both_planes_metrics_ports():
    # ServiceMonitor is a CRD kubernetes-validate has no schema for: checked here.
    docs = render([PRODUCTION])
    sms = {s["metadata"]["name"]: s for s in of_kind(docs, "ServiceMonitor")}
    assert set(sms) == {CP, DP}
    for name, sm in sms.items():
        assert sm["apiVersion"] == "monitoring.coreos.com/v1"
        assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        assert set(sm["spec"]) == {"selector", "endpoints"}
        (ep,) = sm["spec"]["endpoints"]
        assert set(ep) <= {"port", "path", "interval", "scrapeTimeout"}
        assert ep["path"] == "/metrics"
        (svc,) = [s for s in of_kind(docs, "Service")
                  if matches(sm["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])]
        assert ep["port"] in [p["name"] for p in svc["spec"]["ports"]]
        if name == DP:
            assert svc["metadata"]["name"] == f"{DP}-metrics"
        else:
            assert (svc["metadata"]["name"], ep["port"]) == (CP, "http")
    assert not of_kind(render([PG]), "ServiceMonitor")


# --- network policy ----------------------------------------------------------


def policy(docs, name):
    return one(docs, "NetworkPolicy", name)


def rule_for(rules, port):
    found = [r for r in rules if any(p["port"] == port for p in r.get("ports", []))]
    assert len(found) == 1, (port, rules)
    return found[0]


def test_network_policies_are_on_by_default_and_deny_what_they_do_not_allow():
    docs = render([PG])
    for name in (CP, DP):
        assert policy(docs, name)["spec"]["policyTypes"] == ["Ingress", "Egress"]


def test_the_data_planes_public_port_is_open_and_metrics_only_to_the_monitoring_namespace():
    np = policy(render([PG]), DP)
    public = rule_for(np["spec"]["ingress"], 8080)
    assert "from" not in public  # anyone
    metrics = rule_for(np["spec"]["ingress"], 9464)
    assert metrics["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]


def test_the_control_plane_grpc_port_admits_only_data_planes_and_the_allowlist():
    docs = render([PRODUCTION])
    dp_labels = dataplane(docs)["spec"]["template"]["metadata"]["labels"]
    grpc = rule_for(policy(docs, CP)["spec"]["ingress"], 8091)
    assert matches(grpc["from"][0]["podSelector"]["matchLabels"], dp_labels)
    assert grpc["from"][1:] == [{"ipBlock": {"cidr": "10.20.0.0/16"}}]
    # Without an allowlist: the data planes alone.
    grpc = rule_for(policy(render([PG]), CP)["spec"]["ingress"], 8091)
    assert len(grpc["from"]) == 1 and "podSelector" in grpc["from"][0]


def test_egress_allows_dns_https_the_database_and_the_control_plane():
    docs = render([PRODUCTION])
    cp_egress = policy(docs, CP)["spec"]["egress"]
    assert rule_for(cp_egress, 5432)["to"] == [{"ipBlock": {"cidr": "10.0.0.0/16"}}]
    for name in (CP, DP):
        egress = policy(docs, name)["spec"]["egress"]
        dns = rule_for(egress, 53)
        assert {p["protocol"] for p in dns["ports"]} == {"UDP", "TCP"}
        https = rule_for(egress, 443)
        assert {"ipBlock": {"cidr": "0.0.0.0/0"}} in https["to"]
        agents = rule_for(egress, 80)
        assert {"ipBlock": {"cidr": "169.254.170.23/32"}} in agents["to"]  # EKS Pod Identity agent
    to_cp = rule_for(policy(docs, DP)["spec"]["egress"], 8091)
    assert {p["port"] for p in to_cp["ports"]} == {8091, 8081}
    assert matches(to_cp["to"][0]["podSelector"]["matchLabels"],
                   controlplane(docs)["spec"]["template"]["metadata"]["labels"])


def test_network_policies_select_the_pods_they_protect():
    docs = render([PG])
    for name, w in ((CP, controlplane(docs)), (DP, dataplane(docs))):
        sel = policy(docs, name)["spec"]["podSelector"]["matchLabels"]
        assert matches(sel, w["spec"]["template"]["metadata"]["labels"])
        other = dataplane(docs) if w is controlplane(docs) else controlplane(docs)
        assert not matches(sel, other["spec"]["template"]["metadata"]["labels"])


def test_with_every_secret_given_two_renders_are_identical():
    # What GitOps tools that run `helm template` need: no drift between syncs
    # (generated secrets cannot be looked up there, so they must be given).
    args = ["template", RELEASE, str(CHART), "-n", NAMESPACE, "-f", str(PRODUCTION)]
    assert helm(*args).stdout == helm(*args).stdout
