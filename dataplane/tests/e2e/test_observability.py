"""Observability of the data plane (issue 16): Prometheus metrics on the
admin listener, OTLP export of spans and metrics over gRPC and HTTP/protobuf,
and JSON logs with one usage line per request. Each test names one
behaviour. The helpers here (a data plane on a snapshot with its admin
listener, a Prometheus text parser, promtool) are shared with test_drain.py."""

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import anthropic
import pytest

from conftest import ROOT, TARGET_DIR, run_double
from fleet import Fleet, free_port, wait_until, works
from harness import DOUBLE_KEY_ID, DOUBLE_SECRET, make_key
from otlp_receiver import OtlpReceiver

MODEL = "claude-haiku-4-5"
HELLO = [{"role": "user", "content": "Say hello."}]
THROTTLED = [{"role": "user", "content": "busy [double:error=ThrottlingException]"}]
# The data plane's cap on distinct `gen_ai_request_model` values
# (observe/metrics.rs MAX_MODELS); later names are `other`.
MAX_MODELS = 64


# ------------------------------------------------------------ data plane


class DataPlane:
    """A ccag-dataplane on a snapshot file, with its admin listener on a
    port of its own; stderr goes to a file (`log_path`)."""

    def __init__(self, proc, url, admin_url, key, ids, log_path, stdout_lines):
        self.proc = proc
        self.url = url
        self.admin_url = admin_url
        self.key = key
        self.ids = ids  # key_id, user_id, team_id
        self.log_path = log_path
        self.stdout_lines = stdout_lines
        u = urllib.parse.urlparse(url)
        self.addr = (u.hostname, u.port)

    def client(self, key=None, **kw):
        kw.setdefault("timeout", 30)
        return anthropic.Anthropic(base_url=self.url, api_key=key or self.key, max_retries=0, **kw)

    def metrics_text(self):
        status, body, headers = http_get(self.admin_url + "/metrics")
        assert status == 200, (status, body[:300])
        return body

    def samples(self):
        return parse_metrics(self.metrics_text())

    def value(self, name, **labels):
        """The sum of the samples of `name` whose labels include `labels`."""
        return metric_value(self.samples(), name, **labels)

    def log_lines(self):
        return Path(self.log_path).read_text(errors="replace").splitlines()

    def usage_records(self):
        return usage_records(self.log_lines())

    def record(self, rid, timeout=10.0):
        return wait_until(lambda: next((r for r in self.usage_records() if r.get("request_id") == rid), None), timeout)

    def terminate(self):
        self.proc.send_signal(signal.SIGTERM)

    def stop(self, timeout=60):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.proc.returncode


def dp_snapshot(key_hash, ids):
    kid, uid, tid = ids
    return {
        "version": "1",
        "keys": [{"id": kid, "sha256": key_hash, "name": kid, "userId": uid, "teamId": tid, "status": "KEY_STATUS_ACTIVE"}],
        "limits": {"pingIntervalMs": 200, "maxBodyBytes": "2000000"},
    }


def dp_env(double_url, d):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.pop("AWS_PROFILE", None)
    env.pop("AWS_SESSION_TOKEN", None)
    env.update(
        {
            "CCAG_DATAPLANE_ADDR": "127.0.0.1:0",
            "CCAG_LOG_FORMAT": "json",
            "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": double_url,
            "AWS_ACCESS_KEY_ID": DOUBLE_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": DOUBLE_SECRET,
            "AWS_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": str(d / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(d / "no-aws-credentials"),
        }
    )
    return env


def start_dp(tmp_path_factory, double_url, extra_env=None, timeout=60):
    """Starts a data plane with a fresh key (ids unlike anything else, so
    that a leak into /metrics shows), its admin listener on a free port."""
    d = tmp_path_factory.mktemp("obs-dp")
    key, key_hash = make_key()
    tag = secrets.token_hex(4)
    ids = (f"key-obs-{tag}", f"user-obs-{tag}", f"team-obs-{tag}")
    config = d / "snapshot.json"
    config.write_text(json.dumps(dp_snapshot(key_hash, ids)))
    admin_port = free_port()
    env = dp_env(double_url, d)
    env.update({"CCAG_DATAPLANE_CONFIG": str(config), "CCAG_DATAPLANE_ADMIN_ADDR": f"127.0.0.1:{admin_port}"})
    env.update(extra_env or {})
    log_path = d / "dataplane.log"
    logf = open(log_path, "w")
    proc = subprocess.Popen(
        [str(TARGET_DIR / "debug" / "ccag-dataplane")], env=env, stdout=subprocess.PIPE, stderr=logf, text=True
    )
    logf.close()
    lines = []
    public = threading.Event()
    found = {}

    def reader():
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if "listening on " in line and "admin" not in line and "url" not in found:
                found["url"] = line.strip().split("listening on ", 1)[1]
                public.set()

    threading.Thread(target=reader, daemon=True).start()
    if not public.wait(timeout):
        proc.kill()
        raise RuntimeError(f"ccag-dataplane did not report its address; stdout {lines}; log {log_path.read_text()[-2000:]}")
    admin_url = f"http://127.0.0.1:{admin_port}"
    if env["CCAG_DATAPLANE_ADMIN_ADDR"] != "off":
        if not wait_until(lambda: http_get(admin_url + "/health")[0] == 200, timeout=10):
            proc.kill()
            raise RuntimeError(f"no admin listener at {admin_url}; stdout {lines}; log {log_path.read_text()[-2000:]}")
    return DataPlane(proc, found["url"], admin_url, key, ids, log_path, lines)


def http_get(url, timeout=10):
    """(status, body text, headers); status None when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode(errors="replace"), r.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace"), e.headers
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return None, "", {}


def usage_records(lines):
    """The usage records in JSON log lines (target ccag::usage): the record
    may be the line's own fields, or a JSON string in its `usage` field."""
    out = []
    for line in lines:
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if not isinstance(ev, dict) or ev.get("target") != "ccag::usage":
            continue
        rec = dict(ev.get("fields", {})) if isinstance(ev.get("fields"), dict) else {}
        rec.update({k: v for k, v in ev.items() if k not in ("fields", "usage")})
        nested = ev.get("usage", rec.get("usage"))
        if isinstance(nested, str):
            try:
                nested = json.loads(nested)
            except ValueError:
                nested = None
        if isinstance(nested, dict):
            rec.update(nested)
        out.append(rec)
    return out


# ---------------------------------------------------- Prometheus text

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def _unescape(v):
    return re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), v)


def parse_metrics(text):
    """Samples of a Prometheus text exposition: [(name, {label: value}, float)]."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        assert m, f"unparsable sample line: {line!r}"
        labels = {k: _unescape(v) for k, v in _LABEL.findall(m.group(2) or "")}
        out.append((m.group(1), labels, float(m.group(3))))
    return out


def metric_value(samples, name, **labels):
    return sum(v for n, ls, v in samples if n == name and all(ls.get(k) == want for k, want in labels.items()))


def label_values(samples, label):
    return {ls[label] for _, ls, _ in samples if label in ls}


def settles_at(get, expected, timeout=10.0):
    """`get()` once it equals `expected` (records are observed just after
    their request ends), or its last value."""
    wait_until(lambda: get() == expected, timeout)
    return get()


# ------------------------------------------------------------- promtool


def promtool():
    """/usr/bin/promtool (Debian `prometheus`). Missing: a failure under CI
    (CI set), a skip elsewhere."""
    path = shutil.which("promtool")
    if path:
        return path
    if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
        pytest.fail("promtool is missing (apt-get install prometheus); .ci/run installs it")
    pytest.skip("promtool not installed (Debian package prometheus)")


def promtool_check(text):
    p = subprocess.run([promtool(), "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout + p.stderr


@pytest.fixture(scope="session")
def cp_bins(bins):
    """The control plane and the `ccag` CLI (package ccag-controlplane),
    which the `bins` fixture does not build."""
    subprocess.run(["cargo", "build", "-p", "ccag-controlplane"], cwd=ROOT, check=True)
    for name in ("ccag-controlplane", "ccag"):
        assert (TARGET_DIR / "debug" / name).exists(), name
    return bins


# -------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def obs_double(bins):
    """A double of this module's own (its prompt cache and counters move
    only with these tests)."""
    yield from run_double(bins, {"DOUBLE_TTFT_MS": "0", "DOUBLE_INTER_TOKEN_MS": "0", "DOUBLE_CHUNKS": "3"})


@pytest.fixture(scope="module")
def dp(obs_double, tmp_path_factory):
    d = start_dp(tmp_path_factory, obs_double)
    yield d
    d.stop()


def cached_system():
    """A system prompt of 8,000 characters (2,000 tokens, above the double's
    1,024-token minimum) marked for prompt caching, unique to this run."""
    text = f"obs cache {secrets.token_hex(8)} " + "s" * 8000
    return [{"type": "text", "text": text[:8000], "cache_control": {"type": "ephemeral"}}]


@pytest.fixture(scope="module")
def traffic(dp):
    """One of each on the module's data plane: a plain request, a streamed
    one, one with a bad key (401), one Bedrock throttles (429), and a
    prompt-cache write then read. Returns what the responses said."""
    c = dp.client()
    t = SimpleNamespace(ok_rids=[], all_rids=[], usages=[])

    r = c.messages.with_raw_response.create(model=MODEL, max_tokens=20, messages=HELLO)
    t.plain = r.parse()
    t.ok_rids.append(r.headers["request-id"])
    t.usages.append(t.plain.usage)

    with c.messages.stream(model=MODEL, max_tokens=20, messages=HELLO) as s:
        t.streamed = s.get_final_message()
        t.ok_rids.append(s.response.headers["request-id"])
    t.usages.append(t.streamed.usage)

    t.bad_key = "sk-ccag-test-bad-" + secrets.token_urlsafe(24)
    bad = dp.client(key=t.bad_key)
    try:
        bad.messages.create(model=MODEL, max_tokens=20, messages=HELLO)
        raise AssertionError("a bad key was accepted")
    except anthropic.AuthenticationError as e:
        t.unauthorized_rid = e.response.headers.get("request-id")
    finally:
        bad.close()

    try:
        c.messages.create(model=MODEL, max_tokens=20, messages=THROTTLED)
        raise AssertionError("the throttled request succeeded")
    except anthropic.RateLimitError as e:
        t.throttled_rid = e.response.headers["request-id"]

    system = cached_system()
    for attr in ("cache_write", "cache_read"):
        r = c.messages.with_raw_response.create(model=MODEL, max_tokens=20, system=system, messages=HELLO)
        setattr(t, attr, r.parse())
        t.ok_rids.append(r.headers["request-id"])
        t.usages.append(getattr(t, attr).usage)
    c.close()
    assert t.cache_write.usage.cache_creation_input_tokens > 0, t.cache_write.usage
    assert t.cache_read.usage.cache_read_input_tokens > 0, t.cache_read.usage
    t.all_rids = t.ok_rids + [t.throttled_rid] + ([t.unauthorized_rid] if t.unauthorized_rid else [])
    # Every authenticated request's record has been observed (4 ok, 1 throttled).
    settles_at(lambda: dp.value("ccag_inference_requests_total"), 5)
    return t


# ------------------------------------------------------- admin listener


def test_admin_listener_serves_prometheus_text_and_the_public_listener_answers_404_on_metrics(dp):
    status, body, headers = http_get(dp.admin_url + "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain") and "version=0.0.4" in headers["Content-Type"], headers
    build = [ls for n, ls, v in parse_metrics(body) if n == "ccag_build_info" and v == 1]
    assert build and build[0]["plane"] == "dataplane" and build[0]["version"], build
    assert "process_resident_memory_bytes" in body
    assert http_get(dp.admin_url + "/health")[0] == 200
    assert http_get(dp.admin_url + "/ready")[0] == 200
    status, body, _ = http_get(dp.url + "/metrics")
    assert status == 404, (status, body[:200])
    assert "gen_ai_" not in body and "ccag_build_info" not in body


# -------------------------------------------------------- metric values


def test_health_check_subcommand_passes_on_a_ready_data_plane_and_fails_on_a_closed_port(dp):
    """`ccag-dataplane health-check URL`, the container probe of an image
    without a shell: exit 0 on a 200 from /ready, 1 otherwise."""
    exe = str(TARGET_DIR / "debug" / "ccag-dataplane")
    ok = subprocess.run([exe, "health-check", dp.url + "/ready"], capture_output=True, text=True, timeout=30)
    assert ok.returncode == 0, ok.stderr
    closed = subprocess.run(
        [exe, "health-check", f"http://127.0.0.1:{free_port()}/ready"], capture_output=True, text=True, timeout=30
    )
    assert closed.returncode == 1 and "health-check" in closed.stderr, (closed.returncode, closed.stderr)


def test_request_duration_is_counted_per_model_with_the_error_type_of_failures(dp, traffic):
    base = {
        "gen_ai_operation_name": "chat",
        "gen_ai_provider_name": "aws.bedrock",
        "gen_ai_request_model": MODEL,
        "endpoint": "default",
    }
    name = "gen_ai_server_request_duration_seconds_count"
    assert settles_at(lambda: dp.value(name, **base, error_type=""), 4) == 4
    assert dp.value(name, **base, error_type="rate_limit_error") == 1


def test_time_to_first_token_is_recorded_for_the_streamed_request_only(dp, traffic):
    name = "gen_ai_server_time_to_first_token_seconds_count"
    labels = {"gen_ai_operation_name": "chat", "gen_ai_provider_name": "aws.bedrock", "gen_ai_request_model": MODEL}
    assert settles_at(lambda: dp.value(name, **labels), 1) == 1
    assert dp.value(name) == 1


def test_token_usage_is_recorded_by_type_input_output_cache_read_and_cache_creation(dp, traffic):
    labels = {"gen_ai_operation_name": "chat", "gen_ai_provider_name": "aws.bedrock", "gen_ai_request_model": MODEL}
    expected = {
        "input": (4, sum(u.input_tokens for u in traffic.usages)),
        "output": (4, sum(u.output_tokens for u in traffic.usages)),
        "cache_read": (1, traffic.cache_read.usage.cache_read_input_tokens),
        "cache_creation": (1, traffic.cache_write.usage.cache_creation_input_tokens),
    }

    def seen():
        s = dp.samples()
        return {
            kind: (
                metric_value(s, "gen_ai_client_token_usage_count", **labels, gen_ai_token_type=kind),
                metric_value(s, "gen_ai_client_token_usage_sum", **labels, gen_ai_token_type=kind),
            )
            for kind in expected
        }

    assert settles_at(seen, expected) == expected


def test_http_requests_are_counted_by_their_real_status_class_and_error_type(dp, traffic):
    name = "ccag_http_requests_total"
    assert settles_at(lambda: dp.value(name, route="messages", status_class="2xx", error_type=""), 4) == 4
    assert dp.value(name, route="messages", status_class="4xx", error_type="authentication_error") == 1
    assert dp.value(name, route="messages", status_class="4xx", error_type="rate_limit_error") == 1
    assert dp.value(name, route="messages", status_class="5xx") == 0


def test_bedrock_throttle_is_counted_as_a_throttled_attempt_of_the_endpoint(dp, traffic):
    name = "ccag_bedrock_attempts_total"
    assert settles_at(lambda: dp.value(name, endpoint="default", result="throttled"), 1) == 1
    assert dp.value(name, endpoint="default", result="ok") == 4
    assert dp.value(name, result="failed") == 0


def test_in_flight_gauges_are_back_at_zero_once_requests_are_done(dp, traffic):
    idle = {"ccag_requests_in_flight": 0, "ccag_streams_open": 0, "ccag_connections_open": 0}

    def gauges():
        s = dp.samples()
        assert all(any(n == g for n, _, _ in s) for g in idle), "a gauge is missing"
        return {g: metric_value(s, g) for g in idle}

    assert settles_at(gauges, idle) == idle


def test_no_key_user_team_secret_or_request_id_appears_in_the_metrics(dp, traffic):
    body = dp.metrics_text()
    secrets_ = {"key id": dp.ids[0], "user id": dp.ids[1], "team id": dp.ids[2], "key": dp.key, "bad key": traffic.bad_key}
    for what, value in secrets_.items():
        assert value not in body, f"the {what} {value!r} appears in /metrics"
    # The secret's distinctive middle too, should it be shortened or prefixed.
    assert dp.key[len("sk-ccag-test-"):][:16] not in body
    for rid in traffic.all_rids:
        assert rid not in body, f"request id {rid} appears in /metrics"


def test_promtool_accepts_the_dataplane_metrics(dp, traffic):
    rc, out = promtool_check(dp.metrics_text())
    assert rc == 0, out


def test_promtool_accepts_the_controlplane_metrics(cp_bins, obs_double, tmp_path):
    http_port = free_port()
    f = Fleet(
        obs_double,
        tmp_path,
        cp_env={"CCAG_HTTP_ADDR": f"127.0.0.1:{http_port}"},
        dp_env={"CCAG_DATAPLANE_ADMIN_ADDR": "off"},
    )
    try:
        f.start_cp()
        f.login()
        f.start_dp("a")
        created = f.ccag_json("keys", "create", "--name", "promtool")
        assert wait_until(lambda: works(f.url("a"), created["key"]), timeout=10)
        # Usage ingested, so the ingest families have samples too.
        assert wait_until(lambda: f.usage_by_key().get(created["id"], 0) >= 1, timeout=15)
        status, body, headers = http_get(f"http://127.0.0.1:{http_port}/metrics")
        assert status == 200, (status, body[:300])
        build = [ls for n, ls, v in parse_metrics(body) if n == "ccag_build_info"]
        assert build and build[0].get("plane") == "controlplane", build
        rc, out = promtool_check(body)
        assert rc == 0, out
    finally:
        f.stop_all()


# Families that only appear once their event happened (a refusal, a
# notification delivery); the rest of the dashboard must be served live.
EVENT_ONLY = {"ccag_budget_refusals_total", "ccag_rate_limit_refusals_total", "ccag_notification_deliveries_total"}


def dashboard_names():
    """Every ccag_/gen_ai_/process_ name in the dashboard's queries."""
    exprs = []

    def walk(o):
        if isinstance(o, dict):
            for k, v in o.items():
                if k in ("expr", "query") and isinstance(v, str):
                    exprs.append(v)
                else:
                    walk(v)
        elif isinstance(o, list):
            for x in o:
                walk(x)

    walk(json.loads((ROOT / "docs" / "grafana-dashboard.json").read_text()))
    assert exprs, "the dashboard has no queries"
    return {n for e in exprs for n in re.findall(r"\b((?:ccag|gen_ai|process)_[a-z_]+)\b", e)}


def served_names(text):
    """Family names (with histogram series suffixes) and label names."""
    names, labels = set(), set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            names.add(name)
            if kind == "histogram":
                names |= {name + "_bucket", name + "_sum", name + "_count"}
        elif line and not line.startswith("#"):
            labels |= set(re.findall(r'([a-z_]+)="', line.split("{", 1)[1])) if "{" in line else set()
    return names, labels


def test_every_metric_the_grafana_dashboard_queries_is_served(cp_bins, obs_double, tmp_path):
    http_port, admin_port = free_port(), free_port()
    f = Fleet(
        obs_double,
        tmp_path,
        cp_env={"CCAG_HTTP_ADDR": f"127.0.0.1:{http_port}"},
        dp_env={"CCAG_DATAPLANE_ADMIN_ADDR": f"127.0.0.1:{admin_port}"},
    )
    try:
        f.start_cp()
        f.login()
        f.start_dp("a")
        created = f.ccag_json("keys", "create", "--name", "dashboard")
        assert wait_until(lambda: works(f.url("a"), created["key"]), timeout=10)
        c = anthropic.Anthropic(base_url=f.url("a"), api_key=created["key"], max_retries=0)
        with c.messages.stream(model=MODEL, max_tokens=20, messages=HELLO) as s:
            s.get_final_message()
        c.close()
        assert wait_until(lambda: f.usage_by_key().get(created["id"], 0) >= 2, timeout=15)
        names, labels = set(), set()
        for url in (f"http://127.0.0.1:{http_port}/metrics", f"http://127.0.0.1:{admin_port}/metrics"):
            status, body, _ = http_get(url)
            assert status == 200, (url, status)
            n, ls = served_names(body)
            names |= n
            labels |= ls
        wanted = dashboard_names() - labels
        missing = sorted(wanted - names - EVENT_ONLY)
        assert not missing, f"the dashboard queries metrics no plane serves: {missing}"
        sources = "".join(p.read_text() for d in ("dataplane/src", "controlplane/src") for p in (ROOT / d).rglob("*.rs"))
        for name in EVENT_ONLY & wanted:
            assert f'"{name}"' in sources, f"{name} is queried by the dashboard but defined nowhere"
    finally:
        f.stop_all()


def test_model_label_is_capped_at_64_distinct_values_then_other(obs_double, tmp_path_factory):
    d = start_dp(tmp_path_factory, obs_double)
    try:
        c = d.client()
        tag = secrets.token_hex(3)
        names = [f"obs-unknown-model-{i:02d}-{tag}" for i in range(MAX_MODELS + 6)]
        for name in names:
            with pytest.raises(anthropic.APIStatusError):
                c.messages.create(model=name, max_tokens=10, messages=HELLO)
        c.close()
        assert settles_at(lambda: d.value("ccag_inference_requests_total"), len(names)) == len(names)
        models = label_values(d.samples(), "gen_ai_request_model")
        assert "other" in models, sorted(models)
        kept = models - {"other"}
        assert len(kept) <= MAX_MODELS, f"{len(kept)} distinct model labels"
        # Records are observed in order: the first 64 names keep their label.
        assert kept == set(names[:MAX_MODELS]), sorted(kept ^ set(names[:MAX_MODELS]))
        # The requests over the cap are counted under `other`.
        assert d.value("ccag_inference_requests_total", gen_ai_request_model="other") == len(names) - MAX_MODELS
    finally:
        d.stop()


# ------------------------------------------------------------------ OTLP


def traceparent():
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, span_id, f"00-{trace_id}-{span_id}-01"


@pytest.fixture(scope="module", params=["grpc", "http/protobuf"], ids=["grpc", "http"])
def otlp(request, obs_double, tmp_path_factory):
    """A data plane exporting to an OTLP receiver of the given protocol,
    with short batch and export intervals."""
    d = tmp_path_factory.mktemp("otlp")
    rx = OtlpReceiver(request.param, d / "received.jsonl").start()
    dp = start_dp(
        tmp_path_factory,
        obs_double,
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": rx.endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": request.param,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "OTEL_METRIC_EXPORT_INTERVAL": "500",
        },
    )
    yield SimpleNamespace(dp=dp, rx=rx)
    dp.stop()
    rx.stop()


def by_request_id(rx, rid):
    return lambda: rx.span_where(lambda s: s["attributes"].get("ccag.request_id") == rid)


def test_otlp_span_continues_the_client_traceparent_with_the_genai_attributes(otlp):
    trace_id, parent_id, tp = traceparent()
    c = otlp.dp.client()
    started_ns = time.time_ns()
    r = c.messages.with_raw_response.create(
        model=MODEL, max_tokens=20, messages=HELLO, extra_headers={"traceparent": tp}
    )
    ended_ns = time.time_ns()
    msg, rid = r.parse(), r.headers["request-id"]
    c.close()
    span = wait_until(by_request_id(otlp.rx, rid), timeout=15)
    assert span, f"no span for {rid}; spans seen: {[s['name'] for s in otlp.rx.spans]}"
    assert span["name"] == f"chat {MODEL}"
    assert span["kind"] == "SPAN_KIND_SERVER"
    assert (span["trace_id"], span["parent_span_id"]) == (trace_id, parent_id)
    assert span["span_id"] not in ("", parent_id, "0" * 16)
    a = span["attributes"]
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "aws.bedrock"
    assert a["gen_ai.request.model"] == MODEL
    assert a["gen_ai.usage.input_tokens"] == msg.usage.input_tokens
    assert a["gen_ai.usage.output_tokens"] == msg.usage.output_tokens
    assert a["http.response.status_code"] == 200
    assert a["ccag.request_id"] == rid
    assert a["ccag.stream"] is False
    assert "error.type" not in a
    assert span["resource"].get("service.name") == "ccag-dataplane"
    # The span covers the request (the data plane keeps milliseconds).
    ms = 1_000_000
    assert started_ns - ms <= span["start_ns"] <= span["end_ns"] <= ended_ns + ms, (started_ns, span, ended_ns)


def test_otlp_span_of_a_failed_request_has_its_error_type_and_status_code(otlp):
    c = otlp.dp.client()
    with pytest.raises(anthropic.RateLimitError) as e:
        c.messages.create(model=MODEL, max_tokens=20, messages=THROTTLED)
    c.close()
    rid = e.value.response.headers["request-id"]
    span = wait_until(by_request_id(otlp.rx, rid), timeout=15)
    assert span, f"no span for {rid}"
    assert span["name"] == f"chat {MODEL}"
    a = span["attributes"]
    assert a["http.response.status_code"] == 429
    assert a["error.type"] == e.value.body["error"]["type"] == "rate_limit_error"
    # A 4xx is the client's affair: the server span's status stays unset.
    assert span.get("status", {}).get("code") in (None, "STATUS_CODE_UNSET"), span.get("status")


def test_otlp_metrics_arrive_with_the_genai_names_units_and_attributes(otlp):
    c = otlp.dp.client()
    with c.messages.stream(model=MODEL, max_tokens=20, messages=HELLO) as s:
        s.get_final_message()
    c.close()
    rx = otlp.rx

    def point(name, **attrs):
        return next(
            (p for p in rx.metric_points(name) if all(p["attributes"].get(k) == v for k, v in attrs.items())), None
        )

    genai = {"gen_ai.request.model": MODEL, "gen_ai.provider.name": "aws.bedrock", "gen_ai.operation.name": "chat"}
    duration = wait_until(lambda: point("gen_ai.server.request.duration", **genai), timeout=15)
    assert duration, f"metrics seen: {sorted(rx.metric_names())}"
    assert (duration["type"], duration["unit"]) == ("histogram", "s")
    assert duration["count"] >= 1
    ttft = wait_until(lambda: point("gen_ai.server.time_to_first_token", **genai), timeout=5)
    assert ttft and (ttft["type"], ttft["unit"]) == ("histogram", "s"), sorted(rx.metric_names())
    for kind in ("input", "output"):
        tokens = wait_until(lambda: point("gen_ai.client.token.usage", **genai, **{"gen_ai.token.type": kind}), timeout=5)
        assert tokens, f"no gen_ai.client.token.usage point of type {kind}: {rx.metric_points('gen_ai.client.token.usage')}"
        assert (tokens["type"], tokens["unit"]) == ("histogram", "{token}")
        assert tokens["count"] >= 1 and tokens["sum"] >= 1
    http_ok = wait_until(
        lambda: point("ccag.http.requests", **{"http.route": "messages", "ccag.status_class": "2xx"}), timeout=5
    )
    assert http_ok, rx.metric_points("ccag.http.requests")
    assert http_ok["type"] == "sum" and http_ok["monotonic"] and http_ok["value"] >= 1
    assert duration["resource"].get("service.name") == "ccag-dataplane"


# ------------------------------------------------------------------ logs


def test_json_logs_are_one_object_per_line_with_one_usage_line_per_request_and_no_secret(obs_double, tmp_path_factory):
    d = start_dp(tmp_path_factory, obs_double, {"CCAG_LOG_FORMAT": "json"})
    rids = []
    bad_key = "sk-ccag-test-bad-" + secrets.token_urlsafe(24)
    try:
        c = d.client()
        r = c.messages.with_raw_response.create(model=MODEL, max_tokens=20, messages=HELLO)
        rids.append(r.headers["request-id"])
        with c.messages.stream(model=MODEL, max_tokens=20, messages=HELLO) as s:
            s.get_final_message()
            rids.append(s.response.headers["request-id"])
        with pytest.raises(anthropic.RateLimitError) as e:
            c.messages.create(model=MODEL, max_tokens=20, messages=THROTTLED)
        rids.append(e.value.response.headers["request-id"])
        with pytest.raises(anthropic.AuthenticationError) as e:
            d.client(key=bad_key).messages.create(model=MODEL, max_tokens=20, messages=HELLO)
        unauthorized = e.value.response.headers.get("request-id")
        c.close()
        assert wait_until(lambda: {r.get("request_id") for r in d.usage_records()} >= set(rids), timeout=10)
    finally:
        assert d.stop() == 0
    lines = [line for line in d.log_lines() if line.strip()]
    assert lines, "the data plane logged nothing"
    for line in lines:
        try:
            obj = json.loads(line)
        except ValueError:
            pytest.fail(f"a stderr line is not JSON: {line!r}")
        assert isinstance(obj, dict), line
        assert d.key not in line and bad_key not in line, f"a key secret was logged: {line!r}"
    records = d.usage_records()
    by_rid = {}
    for rec in records:
        by_rid.setdefault(rec.get("request_id"), []).append(rec)
    for rid, (status, stream) in zip(rids, [(200, False), (200, True), (429, False)]):
        assert len(by_rid.get(rid, [])) == 1, (rid, by_rid.get(rid))
        rec = by_rid[rid][0]
        assert (rec.get("status"), rec.get("model"), rec.get("stream")) == (status, MODEL, stream), rec
        for field in ("key_id", "bedrock_model", "outcome", "duration_ms"):
            assert field in rec, (field, rec)
    assert set(by_rid) - set(rids) <= {unauthorized}, "usage lines for requests that were never sent"
