"""Graceful drain of the data plane on SIGTERM (issue 16): /ready turns 503
"draining" at once, the public listener takes no new connections, requests
and streams in flight run to completion (up to
CCAG_DATAPLANE_DRAIN_TIMEOUT_MS, after which they are cut and recorded as
client_closed), their usage is kept, and the process exits 0. Slow streams
come from the double's `[double:chunks=N] [double:inter_token_ms=M]`
markers. Each test names one behaviour."""

import json
import signal
import socket
import threading

import anthropic
import pytest

from conftest import run_double
from fleet import Fleet, wait_until, works
from harness import health
from test_faults import read_head, spool_pending_bytes
from test_observability import (  # noqa: F401 (cp_bins: a fixture)
    MODEL,
    cp_bins,
    http_get,
    metric_value,
    parse_metrics,
    start_dp,
)

DRAIN_TIMEOUT_MS = 1500


def slow(chunks, inter_token_ms, reply_chars=None):
    """A user message the double answers as a stream of `chunks` text
    deltas, `inter_token_ms` apart (the reply is long enough for that many:
    the double never sends more deltas than characters)."""
    reply_chars = reply_chars or 10 * chunks
    text = (
        f"drain me [double:chunks={chunks}] [double:inter_token_ms={inter_token_ms}]"
        f" [double:reply_chars={reply_chars}]"
    )
    return [{"role": "user", "content": text}]


@pytest.fixture(scope="module")
def drain_double(bins):
    yield from run_double(bins, {"DOUBLE_TTFT_MS": "0", "DOUBLE_INTER_TOKEN_MS": "0", "DOUBLE_CHUNKS": "3"})


class StreamInThread:
    """A streamed request through the Anthropic SDK, read on a thread of its
    own; `started` is set once the first text delta arrived (so the stream
    is surely in flight)."""

    def __init__(self, url, key, messages, max_tokens=4096):
        self.client = anthropic.Anthropic(base_url=url, api_key=key, max_retries=0, timeout=120)
        self.messages = messages
        self.max_tokens = max_tokens
        self.types = []
        self.final = None
        self.error = None
        self.request_id = None
        self.started = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        try:
            with self.client.messages.stream(model=MODEL, max_tokens=self.max_tokens, messages=self.messages) as s:
                self.request_id = s.response.headers.get("request-id")
                for ev in s:
                    self.types.append(ev.type)
                    if ev.type == "content_block_delta":
                        self.started.set()
                self.final = s.get_final_message()
        except Exception as e:  # noqa: BLE001 - the test looks at what happened
            self.error = e
        finally:
            self.started.set()
            self.client.close()

    def join(self, timeout=120):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the stream never ended"
        return self


def raw_stream_request(key, messages, stream=True):
    body = json.dumps({"model": MODEL, "max_tokens": 4096, "stream": stream, "messages": messages}).encode()
    return (
        b"POST /v1/messages HTTP/1.1\r\nHost: gw\r\ncontent-type: application/json\r\n"
        + f"x-api-key: {key}\r\ncontent-length: {len(body)}\r\n\r\n".encode()
        + body
    )


def read_until_closed(sock, timeout=60.0):
    """Everything until the server closes; socket.timeout if it never does."""
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


def draining(d):
    status, body, _ = http_get(d.admin_url + "/ready")
    if status != 503:
        return False
    try:
        return json.loads(body).get("status") == "draining"
    except ValueError:
        return False


# ----------------------------------------------------------------- tests


def test_stream_in_flight_at_sigterm_completes_with_all_its_events_and_the_process_exits_0(
    drain_double, tmp_path_factory
):
    d = start_dp(tmp_path_factory, drain_double)
    try:
        s = StreamInThread(d.url, d.key, slow(chunks=20, inter_token_ms=100, reply_chars=2000))
        assert s.started.wait(30) and s.error is None, s.error
        d.terminate()
        s.join()
        assert s.error is None, repr(s.error)
        assert s.types[0] == "message_start" and s.types[-1] == "message_stop", s.types
        assert s.types.count("content_block_delta") == 20
        assert s.final.stop_reason == "end_turn"
        assert len(s.final.content[0].text) == 2000
        assert d.proc.wait(timeout=60) == 0
        rec = d.record(s.request_id)
        assert rec and (rec["status"], rec["outcome"]) == (200, "ok"), rec
    finally:
        d.stop()


@pytest.fixture
def held_drain(drain_double, tmp_path_factory):
    """A data plane draining behind one long stream (30 s, read over a raw
    socket) that the test ends by closing it; the process must then exit 0."""
    d = start_dp(tmp_path_factory, drain_double)
    sock = socket.create_connection(d.addr)
    try:
        sock.sendall(raw_stream_request(d.key, slow(chunks=300, inter_token_ms=100)))
        status, _, rest = read_head(sock)
        assert status == 200
        sock.settimeout(30)
        while b"content_block_delta" not in rest:
            rest += sock.recv(65536)
        d.terminate()
        assert wait_until(lambda: draining(d), timeout=10), http_get(d.admin_url + "/ready")
        yield d
    finally:
        sock.close()
        rc = d.stop()
    assert rc == 0


def test_during_the_drain_ready_answers_503_draining_and_the_draining_gauge_is_1(held_drain):
    status, body, _ = http_get(held_drain.admin_url + "/ready")
    assert status == 503 and json.loads(body)["status"] == "draining", (status, body)
    samples = parse_metrics(http_get(held_drain.admin_url + "/metrics")[1])
    assert metric_value(samples, "ccag_draining") == 1
    assert metric_value(samples, "ccag_streams_open") == 1


def test_during_the_drain_new_connections_to_the_public_port_are_refused(held_drain):
    """Refused outright, or answered 503 at once: never accepted and left
    hanging until the process exits."""
    try:
        s = socket.create_connection(held_drain.addr, timeout=5)
    except ConnectionRefusedError:
        return
    with s:
        s.sendall(b"GET /ready HTTP/1.1\r\nHost: gw\r\n\r\n")
        try:
            status, head, _ = read_head(s, timeout=5)
        except ConnectionResetError:
            return
        except socket.timeout:
            pytest.fail("a new connection during the drain was accepted and never answered")
        assert status in (None, 503), head


def test_keep_alive_connection_gets_connection_close_with_the_response_in_flight_at_sigterm(
    drain_double, tmp_path_factory
):
    d = start_dp(tmp_path_factory, drain_double)
    sock = socket.create_connection(d.addr)
    try:
        delayed = [{"role": "user", "content": "wait [double:delay_ms=2000]"}]
        sock.sendall(raw_stream_request(d.key, delayed, stream=False))
        # In flight: the /health request itself and this one.
        assert wait_until(lambda: health(d.url)["requests_in_flight"] >= 2, timeout=10)
        d.terminate()
        status, head, _ = read_head(sock)
        assert status == 200, head
        assert "connection: close" in head.lower(), head
        read_until_closed(sock)  # the server closes the connection after the response
        assert d.proc.wait(timeout=60) == 0
    finally:
        sock.close()
        d.stop()


def test_stream_outliving_the_drain_timeout_is_cut_recorded_client_closed_and_the_process_exits_0(
    drain_double, tmp_path_factory
):
    d = start_dp(tmp_path_factory, drain_double, {"CCAG_DATAPLANE_DRAIN_TIMEOUT_MS": str(DRAIN_TIMEOUT_MS)})
    try:
        # 60 s of stream: only a cut lets the process exit within the wait below.
        s = StreamInThread(d.url, d.key, slow(chunks=600, inter_token_ms=100))
        assert s.started.wait(30) and s.error is None, s.error
        d.terminate()
        assert d.proc.wait(timeout=DRAIN_TIMEOUT_MS / 1000 + 15) == 0
        s.join(timeout=30)
        assert "message_stop" not in s.types, s.types
        rec = d.record(s.request_id)
        assert rec, f"no usage line for {s.request_id}"
        assert (rec["status"], rec["outcome"]) == (200, "client_closed"), rec
    finally:
        d.stop()


def drain_with_streams(f, name, key, n):
    """Opens `n` slow streams through data plane `name`, sends it SIGTERM,
    and checks that every stream ends with message_stop and the process
    exits 0. Returns the stopped process."""
    streams = [StreamInThread(f.url(name), key, slow(chunks=20, inter_token_ms=100)) for _ in range(n)]
    for s in streams:
        assert s.started.wait(30) and s.error is None, s.error
    proc, _ = f.dps.pop(name)
    proc.send_signal(signal.SIGTERM)
    for s in streams:
        s.join()
        assert s.error is None and s.types[-1] == "message_stop", (s.error, s.types[-3:])
    assert proc.wait(timeout=60) == 0
    proc.stdout.close()
    return proc


def test_usage_of_streams_drained_at_sigterm_reaches_the_control_plane_after_a_restart(
    cp_bins, drain_double, tmp_path
):
    """With the control plane away, three streams in flight at SIGTERM run
    to completion; their records are on disk when the process exits 0, and
    once the control plane is back and the data plane restarted, the spend
    log holds each exactly once."""
    f = Fleet(drain_double, tmp_path, dp_env={"CCAG_DATAPLANE_ADMIN_ADDR": "off"})
    proc = None
    try:
        f.start_cp()
        f.login()
        f.start_dp("a")
        created = f.ccag_json("keys", "create", "--name", "drain")
        key, key_id = created["key"], created["id"]

        assert wait_until(lambda: works(f.url("a"), key), timeout=10)
        assert wait_until(lambda: f.usage_by_key().get(key_id) == 1, timeout=15), f.usage_by_key()
        f.stop_cp()

        proc = drain_with_streams(f, "a", key, 3)
        assert spool_pending_bytes(tmp_path / "dp-a") > 0, "the drained streams' records are not in the spool"

        f.start_cp()
        f.start_dp("a")
        assert wait_until(lambda: f.usage_by_key().get(key_id) == 4, timeout=30), f.usage_by_key()
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        f.stop_all()


def test_usage_of_streams_drained_at_sigterm_is_delivered_before_the_process_exits(cp_bins, drain_double, tmp_path):
    """With the control plane up, the records of streams drained at SIGTERM
    reach it before the data plane exits: nothing waits on a disk that a
    deleted pod takes with it."""
    f = Fleet(drain_double, tmp_path, dp_env={"CCAG_DATAPLANE_ADMIN_ADDR": "off"})
    proc = None
    try:
        f.start_cp()
        f.login()
        f.start_dp("a")
        created = f.ccag_json("keys", "create", "--name", "drain-delivered")
        key, key_id = created["key"], created["id"]
        assert wait_until(lambda: works(f.url("a"), key), timeout=10)

        proc = drain_with_streams(f, "a", key, 2)
        assert spool_pending_bytes(tmp_path / "dp-a") == 0, "records were left in the spool"
        # The probe request and the two streams, without restarting the data plane.
        assert wait_until(lambda: f.usage_by_key().get(key_id) == 3, timeout=15), f.usage_by_key()
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        f.stop_all()
