"""The fault suite: each listed fault is one test, named for the behaviour it
proves, with the expected outcome in its docstring. Three things are checked
throughout: the client gets the right status, nothing is lost (every
request has its usage record, exactly once in the spend log), and service
resumes by itself.

| Fault | Test |
|---|---|
| control plane killed and restarted | `test_control_plane_killed_under_load_...` here; a graceful stop with a data-plane restart in between is `test_gateway_split.py::test_outage_keeps_serving_buffers_usage_and_resyncs` |
| database unavailable and back | `test_database_outage_...` |
| Bedrock throttling, 5xx | `test_bedrock_throttling_and_5xx_...`; every error class, streamed or not, is `test_dataplane_sdk.py::test_bedrock_errors_become_anthropic_errors` |
| slow first byte | `test_slow_first_byte_...`, `test_client_leaving_before_the_first_byte_...` |
| stream cut mid-way | `test_stream_cut_mid_way_...` (connection dropped); exception frames mid-stream are `test_dataplane_sdk.py::test_exception_mid_stream_becomes_an_sse_error_event` |
| slow or stalled clients | `test_stalled_client_...`, `test_client_that_never_reads_again_...`; a client that disconnects mid-stream is `test_dataplane_sdk.py::test_client_disconnect_cancels_the_bedrock_call` |
| thousands of idle connections | `test_thousands_of_idle_connections_...` |
| malformed HTTP | `test_malformed_http_...` |
"""

import json
import re
import resource
import secrets
import socket
import subprocess
import threading
import time
import urllib.parse

import anthropic
import pytest

from conftest import run_double
from fleet import Fleet, wait_until
from harness import double_get, health, make_key, proc_stats, snapshot, start_gateway

HELLO = [{"role": "user", "content": "Say hello."}]
MODEL = "claude-haiku-4-5"

# The module's data plane: short first-byte and request timeouts, and short
# header and body timeouts (CCAG_DATAPLANE_*_TIMEOUT_MS), so that each fault
# shows within seconds.
FIRST_BYTE_TIMEOUT_MS = 1000
REQUEST_TIMEOUT_MS = 1500
HEADER_TIMEOUT_MS = 2000
BODY_TIMEOUT_MS = 2000
LIMITS = {
    "pingIntervalMs": 200,
    "maxBodyBytes": "2000000",
    "firstByteTimeoutMs": FIRST_BYTE_TIMEOUT_MS,
    "requestTimeoutMs": REQUEST_TIMEOUT_MS,
}
TIMEOUT_ENV = {
    "CCAG_DATAPLANE_HEADER_TIMEOUT_MS": str(HEADER_TIMEOUT_MS),
    "CCAG_DATAPLANE_BODY_TIMEOUT_MS": str(BODY_TIMEOUT_MS),
}


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def fault_double(bins):
    """A Bedrock double of this module's own, so that its stream counters
    move only with these tests."""
    yield from run_double(bins)


class DataPlane:
    """A data plane on a snapshot file, with its process for /proc readings."""

    def __init__(self, proc, gw):
        self.proc = proc
        self.gw = gw
        self.url = gw.url
        self.key = gw.key
        u = urllib.parse.urlparse(gw.url)
        self.addr = (u.hostname, u.port)

    @property
    def pid(self):
        return self.proc.pid

    def client(self, **kw):
        kw.setdefault("timeout", 20)
        return anthropic.Anthropic(base_url=self.url, api_key=self.key, max_retries=0, **kw)

    def record(self, rid, timeout=5.0):
        """The usage record of one request, from the data plane's log."""
        return wait_until(lambda: next((r for r in self.gw.usage_records() if r["request_id"] == rid), None), timeout)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


def start_dataplane(tmp_path_factory, double_url, **env):
    key, h = make_key()
    snap = snapshot(1, [("k1", h, "KEY_STATUS_ACTIVE")], limits=LIMITS)
    proc, gw = start_gateway(tmp_path_factory, double_url, snap, key, extra_env={**TIMEOUT_ENV, **env})
    return DataPlane(proc, gw)


@pytest.fixture(scope="module")
def dp(fault_double, tmp_path_factory):
    d = start_dataplane(tmp_path_factory, fault_double)
    yield d
    d.stop()


def stats(double_url):
    return double_get(double_url, "/_double/stats")


def hello_works(d):
    msg = d.client().messages.create(model=MODEL, max_tokens=10, messages=HELLO)
    return msg.content[0].text == "Hello from the Bedrock double."


# ------------------------------------------------------ raw HTTP helpers


def messages_request(key, content, stream=True):
    body = json.dumps(
        {"model": MODEL, "max_tokens": 50, "stream": stream, "messages": [{"role": "user", "content": content}]}
    ).encode()
    return (
        b"POST /v1/messages HTTP/1.1\r\nHost: gw\r\ncontent-type: application/json\r\n"
        + f"x-api-key: {key}\r\ncontent-length: {len(body)}\r\n\r\n".encode()
        + body
    )


def read_head(sock, timeout=10.0):
    """Reads up to the end of a response head; returns (status, head text,
    bytes after the head). Status None: the connection closed first."""
    sock.settimeout(timeout)
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            return None, buf.decode(errors="replace"), b""
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    text = head.decode(errors="replace")
    return int(text.split(" ", 2)[1]), text, rest


def read_until_closed(sock, timeout):
    """Everything the server sends until it closes; raises on a hang."""
    sock.settimeout(timeout)
    out = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return out
        if not chunk:
            return out
        out += chunk


# ---------------------------------------------- control plane and database


class Sent:
    """Counts requests the spend log must hold: those answered at all
    (a 401 leaves no record), and keeps the failures."""

    def __init__(self):
        self.lock = threading.Lock()
        self.recorded = 0
        self.failed = []

    def count(self, outcome):
        with self.lock:
            if outcome is True:
                self.recorded += 1
            elif outcome is not None:
                self.failed.append(outcome)
        return outcome is True

    def until_served(self, url, key, timeout=5.0):
        """Sends until the key is accepted (a new key takes a moment to arrive)."""
        return wait_until(lambda: self.count(one_request(url, key, 0)), timeout=timeout)


def one_request(url, key, i):
    """One request of the traffic mix. True: answered 200 (so recorded);
    None: refused 401 (no record); otherwise a description of the failure."""
    c = anthropic.Anthropic(base_url=url, api_key=key, max_retries=0, timeout=20)
    try:
        if i % 2:
            with c.messages.stream(model=MODEL, max_tokens=10, messages=HELLO) as s:
                s.get_final_message()
        else:
            c.messages.create(model=MODEL, max_tokens=10, messages=HELLO)
        return True
    except anthropic.AuthenticationError:
        return None
    except Exception as e:  # noqa: BLE001 - every other failure is reported
        return f"{type(e).__name__}: {e}"


def usage_settles_at(fleet, key_id, expected, timeout):
    """The key's spend-log count reaches `expected` and stays there."""
    got = wait_until(lambda: fleet.usage_by_key().get(key_id, 0) == expected, timeout=timeout)
    if not got:
        return fleet.usage_by_key().get(key_id, 0)
    time.sleep(1.5)  # anything resent late would show up now
    return fleet.usage_by_key().get(key_id, 0)


def both_acked_current(fleet):
    try:
        s = fleet.ccag_json("status")
    except AssertionError:
        return False
    dps = {d["id"]: d for d in s["dataplanes"]}
    return set(dps) == {"dp-a", "dp-b"} and all(
        int(d["acked_version"]) == int(s["config_version"]) for d in dps.values()
    )


def new_key_works_on_both(fleet):
    key = fleet.ccag_json("keys", "create", "--name", "after")["key"]
    return wait_until(
        lambda: one_request(fleet.url("a"), key, 0) is True and one_request(fleet.url("b"), key, 0) is True,
        timeout=10,
    )


class Traffic:
    """Threads sending the traffic mix to both data planes until stopped."""

    def __init__(self, fleet, key, sent, threads_per_dp=2):
        self.sent = sent
        self.stop_flag = threading.Event()
        self.threads = [
            threading.Thread(target=self.run, args=(fleet.url(name), key), daemon=True)
            for name in ("a", "b")
            for _ in range(threads_per_dp)
        ]

    def run(self, url, key):
        i = 0
        while not self.stop_flag.is_set():
            self.sent.count(one_request(url, key, i))
            i += 1

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop_flag.set()
        for t in self.threads:
            t.join(timeout=30)


def test_control_plane_killed_under_load_keeps_traffic_flowing_and_usage_arrives_exactly_once(fleet):
    """Expected: while the control plane is SIGKILLed and restarted under
    steady traffic, every request on both data planes is answered 200 from
    their snapshot; afterwards both resync on their own (acknowledged
    version current, a new key works on both), and the spend log holds
    exactly one record per request sent."""
    fleet = fleet
    created = fleet.ccag_json("keys", "create", "--name", "load")
    key, key_id = created["key"], created["id"]
    sent = Sent()
    assert sent.until_served(fleet.url("a"), key) and sent.until_served(fleet.url("b"), key)
    with Traffic(fleet, key, sent):
        time.sleep(2)
        fleet.kill_cp()
        killed_at = sent.recorded
        time.sleep(4)
        during_outage = sent.recorded - killed_at
        fleet.start_cp()
        time.sleep(3)
    assert sent.failed == [], sent.failed[:5]
    assert during_outage > 10, "traffic must keep flowing while the control plane is down"
    assert usage_settles_at(fleet, key_id, sent.recorded, timeout=30) == sent.recorded
    assert wait_until(lambda: both_acked_current(fleet), timeout=10)
    assert new_key_works_on_both(fleet)


class CuttableProxy:
    """A TCP proxy to PostgreSQL that can be cut (every connection closed,
    new ones refused: the listening socket is gone) and restored on the
    same port."""

    def __init__(self, upstream=("127.0.0.1", 5432)):
        self.upstream = upstream
        self.lock = threading.Lock()
        self.conns = set()
        self.listener = None
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self.restore()

    def restore(self):
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", self.port))
        ls.listen(128)
        self.listener = ls
        threading.Thread(target=self._accept, args=(ls,), daemon=True).start()

    def _accept(self, ls):
        while True:
            try:
                client, _ = ls.accept()
            except OSError:
                return  # cut
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.conns.update((client, server))
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        self.listener.close()
        with self.lock:
            conns, self.conns = self.conns, set()
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self):
        self.cut()


def psql(sql):
    subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-qc", sql],
        check=True,
        capture_output=True,
        timeout=60,
    )


@pytest.fixture
def postgres_fleet(bins, shared_double_url, tmp_path):
    """A control plane on a throw-away PostgreSQL database, reached through
    a proxy the test can cut; two data planes."""
    db = f"ccag_fault_{secrets.token_hex(6)}"
    psql(f"CREATE DATABASE {db}")
    proxy = CuttableProxy()
    f = Fleet(shared_double_url, tmp_path, cp_env={"DATABASE_URL": f"postgres://postgres@127.0.0.1:{proxy.port}/{db}"})
    try:
        f.start_cp()
        f.login()
        f.start_dp("a")
        f.start_dp("b")
        f.proxy = proxy
        yield f
    finally:
        f.stop_all()
        proxy.close()
        psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


def spool_pending_bytes(state_dir):
    """Bytes of usage records the control plane has not acknowledged yet."""
    spool = state_dir / "usage.spool"
    acked = state_dir / "usage.acked"
    size = spool.stat().st_size if spool.exists() else 0
    text = acked.read_text().strip() if acked.exists() else "0"
    return size - int(text.split()[-1] or 0)


def test_database_outage_keeps_serving_fails_admin_calls_clearly_and_loses_no_usage(postgres_fleet):
    """Expected, while the control plane's PostgreSQL is unreachable (every
    connection cut, new ones refused): both data planes keep answering 200
    from their snapshot; the control plane does not acknowledge usage it
    could not store, so the records stay in the data planes' spools; an
    admin call fails within seconds with exit 3 and a message naming the
    database. Once the database is back, everything resumes by itself:
    admin calls work, a new key reaches both data planes, and the spend log
    holds every request exactly once."""
    fleet = postgres_fleet
    created = fleet.ccag_json("keys", "create", "--name", "db-outage")
    key, key_id = created["key"], created["id"]
    sent = Sent()
    assert sent.until_served(fleet.url("a"), key) and sent.until_served(fleet.url("b"), key)
    assert usage_settles_at(fleet, key_id, sent.recorded, timeout=15) == sent.recorded

    fleet.proxy.cut()
    for i in range(6):
        for name in ("a", "b"):
            assert sent.count(one_request(fleet.url(name), key, i)), sent.failed
    for name in ("a", "b"):
        state = fleet.tmp / f"dp-{name}"
        # Reports are tried (and refused) meanwhile; nothing is let go.
        time.sleep(1.0)
        assert spool_pending_bytes(state) > 0, f"dp-{name} let usage go that was never stored"

    started = time.monotonic()
    p = fleet.ccag("keys", "list", check=False)
    took = time.monotonic() - started
    assert p.returncode == 3, p
    assert "unavailable" in p.stderr and "database" in p.stderr, p.stderr
    assert "cannot reach" not in p.stderr, "the control plane was reached; its database was not"
    assert took < 15, f"an admin call took {took:.1f}s during the outage"

    fleet.proxy.restore()
    assert wait_until(lambda: fleet.ccag("keys", "list", check=False).returncode == 0, timeout=15)
    assert usage_settles_at(fleet, key_id, sent.recorded, timeout=30) == sent.recorded
    for name in ("a", "b"):
        assert wait_until(lambda: spool_pending_bytes(fleet.tmp / f"dp-{name}") == 0, timeout=10)
    assert new_key_works_on_both(fleet)


# ------------------------------------------------------------------ Bedrock


@pytest.mark.parametrize(
    "bedrock_error,status,error_type",
    [
        ("ThrottlingException", 429, "rate_limit_error"),
        ("InternalServerException", 500, "api_error"),
        ("ServiceUnavailableException", 529, "overloaded_error"),
    ],
)
@pytest.mark.parametrize("stream", [False, True], ids=["invoke", "stream"])
def test_bedrock_throttling_and_5xx_map_to_retryable_errors_are_recorded_and_the_next_request_succeeds(
    dp, bedrock_error, status, error_type, stream
):
    """Expected: Bedrock's throttling gives 429 `rate_limit_error` with a
    `retry-after`, its 5xx give 500 `api_error` / 529 `overloaded_error`
    (the statuses Claude Code retries), each leaves a usage record with that
    status and outcome `error`, and the next request on the same client
    succeeds: a failure leaves nothing behind."""
    c = dp.client()
    content = f"fail [double:error={bedrock_error}]"
    with pytest.raises(anthropic.APIStatusError) as e:
        if stream:
            with c.messages.stream(model=MODEL, max_tokens=20, messages=[{"role": "user", "content": content}]) as s:
                s.get_final_message()
        else:
            c.messages.create(model=MODEL, max_tokens=20, messages=[{"role": "user", "content": content}])
    assert e.value.status_code == status
    assert e.value.body["error"]["type"] == error_type
    if status == 429:
        assert int(e.value.response.headers["retry-after"]) >= 1
    rec = dp.record(e.value.response.headers["request-id"])
    assert rec and (rec["status"], rec["outcome"], rec["stream"]) == (status, "error", stream), rec
    ok = c.messages.with_raw_response.create(model=MODEL, max_tokens=20, messages=HELLO)
    assert ok.parse().content[0].text == "Hello from the Bedrock double."
    assert dp.record(ok.headers["request-id"])["outcome"] == "ok"


@pytest.mark.parametrize("stream", [False, True], ids=["invoke", "stream"])
def test_slow_first_byte_beyond_the_limit_is_a_504_timeout_error_and_below_it_succeeds(dp, fault_double, stream):
    """Expected, with the snapshot's firstByteTimeoutMs = 1 s (streams) and
    requestTimeoutMs = 1.5 s (invoke): Bedrock answering after 3 s gives
    504 `timeout_error` in the Anthropic format, in about the limit's time,
    with a usage record of status 504; the abandoned Bedrock stream is
    cancelled. Bedrock answering after 0.3 s succeeds."""
    c = dp.client()
    before = stats(fault_double)["streams_cancelled"]
    started = time.monotonic()
    slow = [{"role": "user", "content": "slow [double:delay_ms=3000]"}]
    with pytest.raises(anthropic.APIStatusError) as e:
        if stream:
            with c.messages.stream(model=MODEL, max_tokens=20, messages=slow) as s:
                s.get_final_message()
        else:
            c.messages.create(model=MODEL, max_tokens=20, messages=slow)
    took = time.monotonic() - started
    limit = (FIRST_BYTE_TIMEOUT_MS if stream else REQUEST_TIMEOUT_MS) / 1000
    assert e.value.status_code == 504
    assert e.value.body["type"] == "error" and e.value.body["error"]["type"] == "timeout_error"
    assert limit <= took < limit + 1.0, took
    rec = dp.record(e.value.response.headers["request-id"])
    assert rec and (rec["status"], rec["outcome"]) == (504, "error"), rec
    if stream:
        assert wait_until(lambda: stats(fault_double)["streams_cancelled"] > before, timeout=6)
    quick = [{"role": "user", "content": "quick [double:delay_ms=300]"}]
    if stream:
        with c.messages.stream(model=MODEL, max_tokens=20, messages=quick) as s:
            assert s.get_final_message().stop_reason == "end_turn"
    else:
        assert c.messages.create(model=MODEL, max_tokens=20, messages=quick).stop_reason == "end_turn"


@pytest.mark.parametrize("stream", [False, True], ids=["invoke", "stream"])
def test_client_leaving_before_the_first_byte_is_still_in_the_usage_log(dp, fault_double, stream):
    """Expected: a client that gives up while Bedrock is still silent (no
    response head sent yet) leaves a usage record all the same, with status
    499 and outcome `client_closed`, and the Bedrock call is abandoned.
    (Regression: hyper drops the request's future then, and the record was
    lost with it.)"""

    def left_early():
        return [r for r in dp.gw.usage_records() if r["status"] == 499 and r["stream"] == stream]

    before, cancelled = len(left_early()), stats(fault_double)["streams_cancelled"]
    with socket.create_connection(dp.addr) as s:
        s.sendall(messages_request(dp.key, "slow [double:delay_ms=800]", stream=stream))
        time.sleep(0.3)
    assert wait_until(lambda: len(left_early()) == before + 1, timeout=5), "no record for a client that left early"
    rec = left_early()[-1]
    assert (rec["outcome"], rec["key_id"], rec["model"]) == ("client_closed", "k1", MODEL), rec
    if stream:
        assert wait_until(lambda: stats(fault_double)["streams_cancelled"] > cancelled, timeout=5)


def test_stream_cut_mid_way_ends_with_an_overloaded_error_event_and_a_stream_error_record(dp, fault_double):
    """Expected, when Bedrock's connection drops mid-stream (no exception
    frame, no end of stream): the client, already sent 200 and some events,
    receives an SSE `error` event of type `overloaded_error` (which Claude
    Code retries) and the stream ends; the usage record says
    `stream_error`; the next request succeeds."""
    before = stats(fault_double)["streams_cut"]
    c = dp.client()
    seen_types = []
    with pytest.raises(anthropic.APIStatusError) as e:
        with c.messages.with_streaming_response.create(
            model=MODEL,
            max_tokens=50,
            stream=True,
            messages=[{"role": "user", "content": "cut [double:chunks=10] [double:cut_after=4]"}],
        ) as resp:
            rid = resp.headers["request-id"]
            for ev in resp.parse():
                seen_types.append(ev.type)
    assert "message_start" in seen_types and "message_stop" not in seen_types, seen_types
    assert e.value.status_code == 200
    assert e.value.body["error"]["type"] == "overloaded_error", e.value.body
    assert stats(fault_double)["streams_cut"] == before + 1
    rec = dp.record(rid)
    assert rec and (rec["status"], rec["outcome"]) == (200, "stream_error"), rec
    assert hello_works(dp)


# ------------------------------------------------------------------ clients


def stalled_stream(d, reply_chars, chunks):
    """A client that sends a streaming request, reads the response head and
    then nothing more. Its receive buffer is kept small, so that the kernel
    cannot hide the stall by buffering."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
    s.connect(d.addr)
    s.sendall(messages_request(d.key, f"big [double:reply_chars={reply_chars}] [double:chunks={chunks}]"))
    status, _, _ = read_head(s)
    assert status == 200
    return s


def open_streams(double_url):
    st = stats(double_url)
    ended = st["streams_completed"] + st["streams_cancelled"] + st["streams_errored"] + st["streams_cut"]
    return st["streams_started"] - ended


def settled(pid, url, base_fds, timeout=10):
    """The data plane is back to its idle state: no more fds than before,
    and /health shows only the asking connection and request."""

    def idle():
        h = health(url)
        return proc_stats(pid)["fds"] <= base_fds and h["connections"] == 1 and h["requests_in_flight"] == 1

    return wait_until(idle, timeout=timeout)


STALLED_TEXT = 64_000_000  # characters: far beyond every socket buffer on the way


def test_stalled_client_is_held_by_backpressure_in_bounded_memory_and_its_close_cancels_bedrock(dp, fault_double):
    """Expected, for a client that stops reading a 64 MB stream: the data
    plane stops reading Bedrock too (backpressure: the stream stays open,
    neither finished nor buffered), its memory grows by far less than the
    stream, and it keeps serving other clients promptly. When the stalled
    client finally closes, the Bedrock stream is cancelled and the data
    plane's fds, connections and requests return to their baseline."""
    assert hello_works(dp)
    base = proc_stats(dp.pid)
    open_before = open_streams(fault_double)
    s = stalled_stream(dp, STALLED_TEXT, 6400)  # 10 kB text deltas
    try:
        peak = 0
        for _ in range(8):
            time.sleep(0.5)
            peak = max(peak, proc_stats(dp.pid)["rss_kib"])
            started = time.monotonic()
            assert hello_works(dp)
            assert time.monotonic() - started < 1.0, "other clients must not wait behind a stalled one"
        assert open_streams(fault_double) == open_before + 1, "the stalled stream must stay open upstream"
        growth_mib = (peak - base["rss_kib"]) / 1024
        # Buffered, the stream would add at least its 64 MB of text; held by
        # backpressure, only hyper's and the decoder's buffers remain (about
        # 2 MiB measured), so a quarter of the stream is a wide margin.
        assert growth_mib < 16, f"memory grew by {growth_mib:.0f} MiB behind a stalled client"
    finally:
        s.close()
    assert wait_until(lambda: open_streams(fault_double) == open_before, timeout=10), "Bedrock stream not cancelled"
    assert settled(dp.pid, dp.url, base["fds"])


def test_client_that_never_reads_again_is_disconnected_at_the_write_timeout(fault_double, tmp_path_factory):
    """Expected, with CCAG_DATAPLANE_WRITE_TIMEOUT_MS = 1.5 s: a client that
    stops reading mid-stream and never closes is disconnected once no byte
    could be written to it for that long, which cancels its Bedrock stream
    and frees its connection; no timer of the stream can do this, as the
    stream is not polled while the client refuses bytes. (Regression: such
    a client held its Bedrock stream open for ever.)"""
    d = start_dataplane(tmp_path_factory, fault_double, CCAG_DATAPLANE_WRITE_TIMEOUT_MS="1500")
    try:
        assert hello_works(d)
        base = proc_stats(d.pid)
        open_before = open_streams(fault_double)
        s = stalled_stream(d, STALLED_TEXT, 6400)
        try:
            assert open_streams(fault_double) == open_before + 1
            assert wait_until(lambda: open_streams(fault_double) == open_before, timeout=10), "never disconnected"
            assert settled(d.pid, d.url, base["fds"])
        finally:
            s.close()
    finally:
        d.stop()


IDLE_CONNECTIONS = 3000
IDLE_HEADER_TIMEOUT_MS = 5000


@pytest.fixture
def many_fds():
    """Raises the open-file limit for the idle connections on both ends (the
    data plane inherits it); yields how many connections fit, 3000 unless
    the hard limit is lower."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    room = IDLE_CONNECTIONS if hard == resource.RLIM_INFINITY else min(IDLE_CONNECTIONS, hard - 512)
    if room < 500:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} leaves room for {room} connections")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, room + 512), hard))
    yield room
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_thousands_of_idle_connections_are_closed_at_the_header_timeout_while_real_requests_are_served(
    many_fds, fault_double, tmp_path_factory
):
    """Expected, with 3000 connections that send nothing (half) or half a
    request head (half), and CCAG_DATAPLANE_HEADER_TIMEOUT_MS = 5 s: real
    requests are still answered promptly; the data plane's memory grows by
    less than 32 KiB per idle connection; it closes every idle connection
    itself at the header timeout, and its fds and connection count return
    to their baseline. (Regression: a connection that sent nothing at all
    was held for ever.)"""
    count = many_fds
    d = start_dataplane(tmp_path_factory, fault_double, CCAG_DATAPLANE_HEADER_TIMEOUT_MS=str(IDLE_HEADER_TIMEOUT_MS))
    idle = []
    try:
        assert hello_works(d)
        base = proc_stats(d.pid)
        opened_at = time.monotonic()
        for i in range(count):
            s = socket.create_connection(d.addr)
            if i % 2:
                s.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: gw\r\nx-api-key: ")
            idle.append(s)
        open_took = time.monotonic() - opened_at
        assert open_took < IDLE_HEADER_TIMEOUT_MS / 1000 - 1, f"opening took {open_took:.1f}s; raise the timeout"
        assert wait_until(lambda: health(d.url)["connections"] >= count, timeout=3), health(d.url)
        slowest = 0.0
        for _ in range(10):
            started = time.monotonic()
            assert hello_works(d)
            slowest = max(slowest, time.monotonic() - started)
        assert slowest < 1.0, f"a real request took {slowest:.2f}s among idle connections"
        growth_kib = proc_stats(d.pid)["rss_kib"] - base["rss_kib"]
        assert growth_kib < 32 * count, f"{growth_kib / count:.1f} KiB per idle connection"

        # The data plane, not the client, ends each one: EOF (or a reset)
        # arrives on every socket by the timeout plus a margin.
        deadline = opened_at + IDLE_HEADER_TIMEOUT_MS / 1000 + 5
        pending = list(idle)
        while pending and time.monotonic() < deadline:
            still = []
            for s in pending:
                s.setblocking(False)
                try:
                    if s.recv(1024) == b"":
                        continue
                except BlockingIOError:
                    still.append(s)
                    continue
                except ConnectionResetError:
                    continue
            pending = still
            time.sleep(0.2)
        assert not pending, f"{len(pending)} idle connections still open after the header timeout"
        assert settled(d.pid, d.url, base["fds"])
    finally:
        for s in idle:
            s.close()
        d.stop()


# ------------------------------------------------------------ malformed HTTP


def _post(head, body=b""):
    """A POST with the key as `{key}`, filled in by the test."""
    return b"POST /v1/messages HTTP/1.1\r\nHost: gw\r\nx-api-key: {key}\r\n" + head + b"\r\n" + body


BODY = json.dumps({"model": MODEL, "max_tokens": 5, "messages": HELLO}).encode()
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# (id, request bytes with {key} for the key, statuses allowed (empty: a
# close with no HTTP/1 response), half-close after sending)
MALFORMED = [
    ("garbage", b"\x00\x01\x02\xffgarbage\r\n\r\n", {400}, False),
    ("request-line-without-version", b"GET /v1/models\r\n\r\n", {400}, False),
    ("unknown-http-version", b"GET /health HTTP/9.9\r\nHost: gw\r\n\r\n", {400, 505}, False),
    ("head-over-64KiB", b"GET /health HTTP/1.1\r\nHost: gw\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n", {431}, False),
    ("uri-over-64KiB", b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: gw\r\n\r\n", {414, 431}, False),
    (
        "over-128-headers",
        b"GET /health HTTP/1.1\r\nHost: gw\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(130)) + b"\r\n",
        {431},
        False,
    ),
    ("invalid-header-name", b"GET /health HTTP/1.1\r\nHost: gw\r\nBad Header: v\r\n\r\n", {400}, False),
    ("obsolete-line-folding", b"GET /health HTTP/1.1\r\nHost: gw\r\nX-A: a\r\n b\r\n\r\n", {400}, False),
    ("nul-in-header-value", b"GET /health HTTP/1.1\r\nHost: gw\r\nX-A: a\x00b\r\n\r\n", {400}, False),
    ("content-length-not-a-number", _post(b"Content-Length: abc\r\n", BODY), {400}, False),
    ("content-length-negative", _post(b"Content-Length: -1\r\n", BODY), {400}, False),
    (
        "content-lengths-that-disagree",
        _post(b"Content-Length: %d\r\nContent-Length: %d\r\n" % (len(BODY), len(BODY) + 1), BODY),
        {400},
        False,
    ),
    ("content-length-beyond-the-body-limit", _post(b"Content-Length: 99999999999\r\n"), {413}, False),
    (
        # Refused from its Content-Length while still arriving: a lingering
        # close lets the client finish sending and read its 413, where a
        # plain close would reset the connection under it.
        "body-beyond-the-body-limit-sent-in-full",
        _post(b"Content-Length: 3000000\r\n", b"x" * 3_000_000),
        {413},
        False,
    ),
    (
        # RFC 9112 6.3: Transfer-Encoding wins, and the connection must be
        # closed after the response; the request smuggled behind is not served.
        "content-length-with-transfer-encoding",
        _post(b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n", b"%x\r\n" % len(BODY) + BODY + b"\r\n0\r\n\r\n")
        + b"GET /health HTTP/1.1\r\nHost: gw\r\n\r\n",
        {200, 400},
        False,
    ),
    ("transfer-encoding-not-chunked", _post(b"Transfer-Encoding: gzip\r\n", BODY), {400}, False),
    ("bad-chunk-size", _post(b"Transfer-Encoding: chunked\r\n", b"zz\r\nabc\r\n0\r\n\r\n"), {400}, False),
    ("truncated-body-then-silence", _post(b"Content-Length: %d\r\n" % len(BODY), BODY[:10]), {400}, False),
    ("truncated-body-then-half-close", _post(b"Content-Length: %d\r\n" % len(BODY), BODY[:10]), {400}, True),
    ("partial-request-line-then-silence", b"GET /health HT", set(), False),
    ("http2-preface-then-garbage", H2_PREFACE + b"garbage, not a SETTINGS frame", set(), False),
    ("http2-preface-then-silence", H2_PREFACE, set(), False),
    ("unknown-method", b"BREW /v1/messages HTTP/1.1\r\nHost: gw\r\n\r\n", {405}, False),
    ("connect-method", b"CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n", {404, 405}, False),
]


@pytest.mark.parametrize("name,data,statuses,half_close", MALFORMED, ids=[c[0] for c in MALFORMED])
def test_malformed_http_gets_a_4xx_or_a_clean_close_and_the_next_request_is_served(
    dp, name, data, statuses, half_close
):
    """Expected: each malformed request gets the listed 4xx status (those
    the gateway itself writes in the Anthropic error format), or a close
    where HTTP has no answer to give, within the header, body or HTTP/2
    ping timeout: never a hang. The data plane then serves the next request
    as if nothing had happened."""
    s = socket.create_connection(dp.addr)
    started = time.monotonic()
    try:
        s.sendall(data.replace(b"{key}", dp.key.encode()))
        if half_close:
            s.shutdown(socket.SHUT_WR)
        # Every case ends in a close by the server: at once, after the body
        # timeout, or after the header timeout on a kept-alive connection;
        # a silent HTTP/2 client after one unanswered ping (twice the header
        # timeout).
        out = read_until_closed(s, timeout=2 * HEADER_TIMEOUT_MS / 1000 + 3)
    except socket.timeout:
        pytest.fail(f"{name}: no answer and no close after {time.monotonic() - started:.1f}s")
    finally:
        s.close()
    got = [int(x) for x in re.findall(rb"^HTTP/1\.[01] (\d{3}) ", out, re.M)]
    if statuses:
        assert len(got) == 1 and got[0] in statuses, (got, out[:300])
        head, _, rest = out.partition(b"\r\n\r\n")
        if got[0] >= 400 and b"application/json" in head.lower():
            length = int(re.search(rb"content-length: (\d+)", head, re.I).group(1))
            assert json.loads(rest[:length])["type"] == "error", rest[:length]
    else:
        assert got == [], out[:300]
    assert hello_works(dp)
