"""compose.yaml and the Dockerfile, checked without a Docker daemon: the
compose file against the Compose Specification's JSON schema (after the
interpolation `docker compose` does), and both for what they promise."""

import re
import subprocess

import jsonschema
import pytest
import yaml

from chartlib import CHART, ROOT, compose_schema, render

COMPOSE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
CCAG_SERVICES = ("controlplane", "dataplane-1", "dataplane-2")

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def interpolate(node, env):
    """Compose's interpolation of ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err}."""
    if isinstance(node, dict):
        return {k: interpolate(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate(v, env) for v in node]
    if not isinstance(node, str):
        return node

    def one(m):
        name, op, arg = m.group(1), m.group(2), m.group(3)
        value = env.get(name)
        if op == ":-":
            return value if value else arg
        if op == "-":
            return arg if value is None else value
        if op in (":?", "?"):
            if not value:
                raise ValueError(f"{name}: {arg}")
            return value
        return value or ""

    return _VAR.sub(one, node.replace("$$", "\0")).replace("\0", "$")


def compose(env=None):
    return interpolate(yaml.safe_load(COMPOSE.read_text()), env or {})


def environment(service, env=None):
    return compose(env)["services"][service]["environment"]


# --- compose -----------------------------------------------------------------


@pytest.mark.parametrize("env", [{}, {"CCAG_BIND": "0.0.0.0", "AWS_REGION": "eu-west-1", "ADMIN_PASSWORD": "pw"}],
                         ids=["no-env", "with-env"])
def test_compose_file_is_valid_against_the_compose_specification(env):
    doc = compose(env)
    errors = sorted(jsonschema.Draft201909Validator(compose_schema()).iter_errors(doc), key=str)
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]


def test_the_schema_check_can_fail():
    doc = compose()
    doc["services"]["dataplane-1"]["restart_policy"] = "always"  # not a service key
    assert list(jsonschema.Draft201909Validator(compose_schema()).iter_errors(doc))


def test_compose_runs_postgres_one_control_plane_and_two_data_planes():
    services = compose()["services"]
    assert set(services) == {"postgres", *CCAG_SERVICES}
    assert services["postgres"]["image"].startswith("postgres:16")
    assert services["controlplane"]["command"] == ["/usr/local/bin/ccag-controlplane"]
    for dp in ("dataplane-1", "dataplane-2"):
        assert services[dp]["command"] == ["/usr/local/bin/ccag-dataplane"]


def test_postgres_has_a_health_check_and_the_control_plane_waits_for_it():
    services = compose()["services"]
    test = services["postgres"]["healthcheck"]["test"]
    assert test[:2] == ["CMD", "pg_isready"]
    assert services["controlplane"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    url = environment("controlplane")["DATABASE_URL"]
    assert url == "postgres://ccag:ccag@postgres:5432/ccag"
    assert environment("controlplane", {"POSTGRES_PASSWORD": "s3cret"})["DATABASE_URL"].startswith(
        "postgres://ccag:s3cret@")


def test_each_data_plane_has_its_own_state_volume_and_postgres_keeps_its_data():
    doc = compose()
    services = doc["services"]
    state = {}
    for dp in ("dataplane-1", "dataplane-2"):
        (mount,) = [v for v in services[dp]["volumes"] if v.split(":")[1] == "/var/lib/ccag"]
        state[dp] = mount.split(":")[0]
        assert environment(dp)["CCAG_DATAPLANE_STATE_DIR"].startswith("/var/lib/ccag/")
    assert len(set(state.values())) == 2
    assert any(v.endswith(":/var/lib/postgresql/data") for v in services["postgres"]["volumes"])
    named = set(doc["volumes"])
    for s in services.values():
        for v in s.get("volumes", []):
            assert v.split(":")[0] in named, v


def test_the_data_planes_read_the_control_planes_token_read_only():
    services = compose()["services"]
    for dp in ("dataplane-1", "dataplane-2"):
        e = environment(dp)
        assert e["CCAG_CONTROLPLANE_URL"] == "http://controlplane:8091"
        assert e["CCAG_CONTROLPLANE_HTTP_URL"] == "http://controlplane:8081"
        token_dir = e["CCAG_DATAPLANE_TOKEN_FILE"].rsplit("/", 1)[0]
        assert f"controlplane-data:{token_dir}:ro" in services[dp]["volumes"]
    # A token given in the environment reaches both sides.
    env = {"CCAG_DATAPLANE_TOKEN": "ccag_dp_given"}
    assert environment("controlplane", env)["CCAG_DATAPLANE_TOKEN"] == "ccag_dp_given"
    assert environment("dataplane-1", env)["CCAG_DATAPLANE_TOKEN"] == "ccag_dp_given"


def test_ports_are_published_on_loopback_by_default():
    services = compose()["services"]
    published = [p for s in services.values() for p in s.get("ports", [])]
    assert published and all(p.startswith("127.0.0.1:") for p in published)
    assert {p.split(":")[1] for p in published} == {"8080", "8082", "9464", "9465", "8091", "8081"}
    opened = compose({"CCAG_BIND": "0.0.0.0"})["services"]["dataplane-1"]["ports"]
    assert opened[0].startswith("0.0.0.0:")


def test_aws_credentials_come_from_the_host():
    env = {"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_SESSION_TOKEN": "tok",
           "AWS_REGION": "eu-central-1"}
    for s in CCAG_SERVICES:
        e = environment(s, env)
        assert {k: e[k] for k in env} == env
        unset = environment(s)
        assert unset["AWS_REGION"] == "us-east-1"
        # Unset keys become empty, which the AWS SDK treats as absent.
        assert unset["AWS_ACCESS_KEY_ID"] == ""


def test_ccag_containers_run_read_only_without_capabilities():
    services = compose()["services"]
    for s in CCAG_SERVICES:
        svc = services[s]
        assert svc["read_only"] is True
        assert svc["cap_drop"] == ["ALL"]
        assert "no-new-privileges:true" in svc["security_opt"]
        assert svc["build"] == "."  # built here, never pulled by name
        assert "user" not in svc  # the image's nonroot user


def test_the_data_planes_drain_within_compose_stop_grace_period():
    services = compose()["services"]
    for dp in ("dataplane-1", "dataplane-2"):
        grace = int(services[dp]["stop_grace_period"].rstrip("s"))
        assert int(environment(dp)["CCAG_DATAPLANE_DRAIN_TIMEOUT_MS"]) < grace * 1000


def test_every_ccag_service_has_a_health_check_of_its_own_binary():
    services = compose()["services"]
    for s in CCAG_SERVICES:
        hc = services[s].get("healthcheck")
        assert hc, f"{s} has no health check"
        assert hc["test"][2] == "health-check", hc
    for dp in ("dataplane-1", "dataplane-2"):
        assert services[dp]["depends_on"]["controlplane"]["condition"] == "service_healthy"


def test_health_checks_need_no_shell():
    # The image has neither a shell nor curl: a health check of a CCAG
    # service may only exec a binary of the image.
    for s in CCAG_SERVICES:
        hc = compose()["services"][s].get("healthcheck")
        if hc:
            assert hc["test"][0] == "CMD" and hc["test"][1].startswith("/usr/local/bin/ccag"), hc


# --- the image ---------------------------------------------------------------


def dockerfile():
    # Continuation lines joined.
    return re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())


def instructions():
    return [ln.strip() for ln in dockerfile().splitlines() if ln.strip() and not ln.strip().startswith("#")]


def test_the_image_builds_in_rust_bookworm_and_runs_on_distroless_as_nonroot():
    text = dockerfile()
    assert "ARG RUST_IMAGE=rust:1-bookworm" in text
    assert "ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot" in text
    froms = [i for i in instructions() if i.startswith("FROM ")]
    assert froms == ["FROM ${NODE_IMAGE} AS portal", "FROM ${RUST_IMAGE} AS build", "FROM ${RUNTIME_IMAGE}"]
    runtime = instructions()[instructions().index("FROM ${RUNTIME_IMAGE}"):]
    assert "USER nonroot" in runtime
    assert not [i for i in runtime if i.startswith("RUN ")], "the runtime stage has no shell to RUN with"


def test_the_build_is_locked_cached_and_copies_the_three_binaries():
    (run,) = [i for i in instructions() if "cargo build" in i]
    assert "cargo build --release --locked -p ccag-controlplane -p ccag-dataplane" in run
    for target in ("/usr/local/cargo/registry", "/usr/local/cargo/git", "/src/target"):
        assert f"--mount=type=cache,target={target}" in run
    for binary in ("ccag-controlplane", "ccag-dataplane", "ccag"):
        assert f"target/release/{binary} " in run + " "
    assert "COPY --from=build /out/bin/ /usr/local/bin/" in instructions()


def test_the_portal_is_built_from_its_lockfile_and_embedded_in_the_control_plane():
    assert "ARG NODE_IMAGE=node:22-bookworm-slim" in dockerfile()
    portal = instructions()[instructions().index("FROM ${NODE_IMAGE} AS portal"):instructions().index(
        "FROM ${RUST_IMAGE} AS build")]
    assert "COPY portal/package.json portal/package-lock.json portal/" in portal
    assert "RUN npm ci --prefix portal --no-fund --no-audit" in portal
    assert "RUN npm run --prefix portal build" in portal
    build = instructions()[instructions().index("FROM ${RUST_IMAGE} AS build"):]
    copied = build.index("COPY --from=portal /src/portal/dist portal/dist")
    assert copied < next(i for i, x in enumerate(build) if "cargo build" in x), "embedded at compile time"
    # The host's own build output never rides along in the context.
    assert "/portal/dist" in DOCKERIGNORE.read_text().split()


def test_the_image_listens_on_every_interface_and_exposes_the_chart_ports():
    (env,) = [i for i in instructions() if i.startswith("ENV ")]
    pairs = dict(p.split("=", 1) for p in env[4:].split())
    assert pairs["CCAG_DATAPLANE_ADDR"] == "0.0.0.0:8080"
    assert pairs["CCAG_DATAPLANE_ADMIN_ADDR"] == "0.0.0.0:9464"
    assert pairs["CCAG_GRPC_ADDR"] == "0.0.0.0:8091"
    assert pairs["CCAG_HTTP_ADDR"] == "0.0.0.0:8081"
    (expose,) = [i for i in instructions() if i.startswith("EXPOSE ")]
    assert set(expose.split()[1:]) == {"8080", "9464", "8091", "8081"}
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert {values["dataplane"]["port"], values["dataplane"]["metricsPort"], values["controlPlane"]["grpcPort"],
            values["controlPlane"]["httpPort"]} == {int(p) for p in expose.split()[1:]}


def test_the_state_directory_belongs_to_nonroot():
    assert "COPY --from=build --chown=65532:65532 /out/var/lib/ccag /var/lib/ccag" in instructions()
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["podSecurityContext"]["runAsUser"] == 65532


def test_the_build_context_leaves_out_targets_git_and_local_state():
    ignored = {ln.strip() for ln in DOCKERIGNORE.read_text().splitlines() if ln.strip() and not ln.startswith("#")}
    assert {".git", "**/target", "/data", "**/node_modules"} <= ignored
    # Everything the workspace builds from stays in (a member's sources or
    # a file one of them embeds).
    for kept in ("Cargo.toml", "Cargo.lock", "proto", "migrations", "controlplane", "dataplane", "outbound",
                 "websearch", "portal"):
        assert not any(p.strip("/") == kept for p in ignored), kept
    for embedded in re.findall(r'include_(?:str|bytes)!\("([^"]+)"\)', _rust_sources()):
        assert not any(embedded.endswith(p.strip("/*")) for p in ignored if p.strip("/*")), embedded


# --- every environment variable the packaging sets is read by the code -------


def _rust_sources():
    out = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-co", "--exclude-standard", "*.rs"],
                         capture_output=True, text=True, check=True).stdout.split()
    return "\n".join((ROOT / f).read_text() for f in out if (ROOT / f).exists() and "/target/" not in f)


# Read by the AWS SDK, OpenTelemetry or the postgres image, not by CCAG's own code.
FOREIGN = re.compile(r"^(AWS_|OTEL_|POSTGRES_)")


def packaging_env_names():
    names = set()
    (env,) = [i for i in instructions() if i.startswith("ENV ")]
    names |= {p.split("=", 1)[0] for p in env[4:].split()}
    for name, svc in compose()["services"].items():
        if name != "postgres":
            names |= set(svc["environment"])
    for values in sorted((CHART / "ci").glob("*-values.yaml")):
        for d in render([values]):
            if d["kind"] in ("Deployment", "StatefulSet"):
                for c in d["spec"]["template"]["spec"]["containers"]:
                    names |= {e["name"] for e in c["env"]}
    return {n for n in names if not FOREIGN.match(n)}


def test_every_environment_variable_the_packaging_sets_is_read_by_the_code():
    code = _rust_sources()
    names = packaging_env_names()
    assert {"DATABASE_URL", "CCAG_DATAPLANE_DRAIN_TIMEOUT_MS", "CCAG_DATAPLANE_ADMIN_ADDR"} <= names
    unread = sorted(n for n in names if f'"{n}"' not in code)
    assert not unread, f"set by the packaging but read nowhere in the Rust sources: {unread}"


def test_every_variable_the_operations_guide_names_is_read_by_the_code():
    code = _rust_sources()
    doc = (ROOT / "docs" / "operations.md").read_text()
    names = set(re.findall(r"\b((?:CCAG|OIDC|ADMIN)_[A-Z0-9_]+|DATABASE_URL)\b", doc))
    assert "CCAG_DATAPLANE_DRAIN_TIMEOUT_MS" in names
    unread = sorted(n for n in names if f'"{n}"' not in code and n not in {"CCAG_BIND", "CCAG_IMAGE"})
    assert not unread, f"docs/operations.md names variables no code reads: {unread}"
