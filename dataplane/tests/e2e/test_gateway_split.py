"""One control plane and two data planes in front of the Bedrock double:
configuration flows down the watch stream, usage flows back, and both
survive the other's absence."""

import time

import anthropic
import pytest

from fleet import HELLO, Fleet, client, wait_until, works


def create_key(fleet, *extra):
    out = fleet.ccag_json("keys", "create", "--name", "e2e", *extra)
    assert out["key"].startswith("sk-ccag-")
    return out


def test_key_created_with_the_cli_works_on_both_data_planes(fleet):
    key = create_key(fleet)["key"]
    assert wait_until(lambda: works(fleet.url("a"), key), timeout=5)
    assert wait_until(lambda: works(fleet.url("b"), key), timeout=5)


def test_revoked_key_is_refused_by_both_within_one_second(fleet):
    created = create_key(fleet)
    key = created["key"]
    assert wait_until(lambda: works(fleet.url("a"), key) and works(fleet.url("b"), key), timeout=5)
    fleet.ccag("keys", "revoke", created["id"])
    revoked_at = time.monotonic()
    refused = {"a": None, "b": None}
    while time.monotonic() - revoked_at < 3 and None in refused.values():
        for name in refused:
            if refused[name] is None:
                try:
                    client(fleet.url(name), key).models.list()
                except anthropic.AuthenticationError:
                    refused[name] = time.monotonic() - revoked_at
        time.sleep(0.02)
    assert refused["a"] is not None and refused["a"] < 1.0, refused
    assert refused["b"] is not None and refused["b"] < 1.0, refused


def test_status_lists_both_data_planes_with_the_version_they_acknowledged(fleet):
    create_key(fleet)

    def both_current():
        s = fleet.ccag_json("status")
        dps = {d["id"]: d for d in s["dataplanes"]}
        current = s["config_version"]
        return set(dps) == {"dp-a", "dp-b"} and all(int(d["acked_version"]) == int(current) for d in dps.values())

    assert wait_until(both_current, timeout=5)


def test_requests_per_minute_are_split_between_data_planes_and_enforced(fleet):
    key = create_key(fleet, "--rpm", "4")["key"]
    c = client(fleet.url("a"), key)
    assert wait_until(lambda: works(fleet.url("a"), key), timeout=5)
    # 4 per minute across two data planes: 2 each; one was used above.
    r = c.messages.with_raw_response.create(model="claude-haiku-4-5", max_tokens=10, messages=HELLO)
    assert r.headers["anthropic-ratelimit-requests-limit"] == "2"
    assert r.headers["anthropic-ratelimit-requests-remaining"] == "0"
    with pytest.raises(anthropic.RateLimitError) as e:
        c.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=HELLO)
    assert 1 <= int(e.value.response.headers["retry-after"]) <= 60
    assert e.value.body["error"]["type"] == "rate_limit_error"
    # The other data plane has its own share.
    assert works(fleet.url("b"), key)


def test_raising_a_limit_lifts_the_refusal_at_once(fleet):
    created = create_key(fleet, "--rpm", "2")
    key = created["key"]
    assert wait_until(lambda: works(fleet.url("a"), key), timeout=5)
    with pytest.raises(anthropic.RateLimitError):
        client(fleet.url("a"), key).messages.create(model="claude-haiku-4-5", max_tokens=10, messages=HELLO)
    fleet.ccag("keys", "update", created["id"], "--rpm", "1000")
    assert wait_until(lambda: works(fleet.url("a"), key), timeout=3)


def test_tokens_per_minute_refuse_once_usage_is_charged(fleet):
    key = create_key(fleet, "--tpm", "20")["key"]
    assert wait_until(lambda: works(fleet.url("a"), key), timeout=5)
    # The first answer's tokens exhaust this data plane's share of 20.
    with pytest.raises(anthropic.RateLimitError) as e:
        for _ in range(5):
            client(fleet.url("a"), key).messages.create(model="claude-haiku-4-5", max_tokens=10, messages=HELLO)
    assert "tokens" in e.value.body["error"]["message"]


def usage_total(fleet, key_id):
    rows = fleet.ccag_json("usage", "--group-by", "key")
    if isinstance(rows, dict):
        rows = rows.get("rows", [])
    return sum(int(r["requests"]) for r in rows if r["group"] == key_id)


def settled_usage(fleet, key_id):
    """The key's request count once reports have stopped arriving."""
    last = -1
    while True:
        time.sleep(1.0)
        now = usage_total(fleet, key_id)
        if now == last:
            return now
        last = now


def test_usage_reaches_the_spend_log_once_per_request(fleet):
    created = create_key(fleet)
    key = created["key"]
    assert wait_until(lambda: works(fleet.url("a"), key) and works(fleet.url("b"), key), timeout=5)
    base = settled_usage(fleet, created["id"])
    assert base >= 2
    for name in ("a", "b"):
        for _ in range(3):
            client(fleet.url(name), key).messages.create(model="claude-haiku-4-5", max_tokens=10, messages=HELLO)
    assert wait_until(lambda: usage_total(fleet, created["id"]) == base + 6, timeout=10), usage_total(fleet, created["id"])


def test_outage_keeps_serving_buffers_usage_and_resyncs(fleet):
    created = create_key(fleet)
    key = created["key"]
    assert wait_until(lambda: works(fleet.url("a"), key) and works(fleet.url("b"), key), timeout=5)
    sent = settled_usage(fleet, created["id"])
    fleet.stop_cp()
    # Both data planes keep serving from their snapshot.
    for name in ("a", "b"):
        for _ in range(3):
            client(fleet.url(name), key).messages.create(model="claude-haiku-4-5", max_tokens=10, messages=HELLO)
            sent += 1
    # A data plane restarted during the outage serves from its persisted snapshot.
    fleet.stop_dp("b")
    fleet.start_dp("b")
    for _ in range(2):
        client(fleet.url("b"), key).messages.create(model="claude-haiku-4-5", max_tokens=10, messages=HELLO)
        sent += 1
    # Control plane back: both resync and every record arrives exactly once.
    fleet.start_cp()
    assert wait_until(lambda: usage_total(fleet, created["id"]) == sent, timeout=20), (usage_total(fleet, created["id"]), sent)
    time.sleep(1.5)
    assert usage_total(fleet, created["id"]) == sent
    second = create_key(fleet)["key"]
    assert wait_until(lambda: works(fleet.url("a"), second) and works(fleet.url("b"), second), timeout=5)


def test_data_planes_and_cli_reach_a_tls_control_plane(bins, shared_double_url, tmp_path):
    f = Fleet(shared_double_url, tmp_path, tls=True)
    try:
        f.start_cp()
        assert f.cp_url.startswith("https://")
        f.login()
        f.start_dp("a")
        key = create_key(f)["key"]
        assert wait_until(lambda: works(f.url("a"), key), timeout=5)
    finally:
        f.stop_all()


def test_claude_code_works_through_a_data_plane_fed_by_the_control_plane(fleet, tmp_path):
    from types import SimpleNamespace

    from test_claude_code import run_claude

    created = create_key(fleet)
    assert wait_until(lambda: works(fleet.url("a"), created["key"]), timeout=5)
    out = run_claude(SimpleNamespace(url=fleet.url("a"), key=created["key"]), tmp_path, "Say hello.")
    assert out["is_error"] is False, out
    assert "Hello from the Bedrock double." in out["result"]
    # Claude Code's requests reach the spend log under the key.
    assert wait_until(lambda: usage_total(fleet, created["id"]) >= 2, timeout=10)


def test_a_key_created_just_before_a_data_plane_starts_works_on_its_first_request_after_ready(fleet):
    """The join race: a joining data plane is answered only with what is
    committed, so /ready never precedes a key that already exists."""
    import urllib.request

    key = create_key(fleet)["key"]
    url = fleet.start_dp("late")

    def ready():
        try:
            with urllib.request.urlopen(url + "/ready", timeout=2) as r:
                return r.status == 200
        except Exception:
            return False

    assert wait_until(ready, timeout=10, every=0.005)
    assert works(url, key), "the first request after /ready must see the key"


def test_count_tokens_is_admitted_under_the_rate_limits_like_messages(fleet):
    key = create_key(fleet, "--rpm", "2")["key"]
    c = client(fleet.url("a"), key)

    def known():
        try:
            c.models.list()
            return True
        except anthropic.APIStatusError:
            return False

    assert wait_until(known, timeout=5)
    # 2 per minute across two data planes: 1 here.
    assert c.messages.count_tokens(model="claude-haiku-4-5", messages=HELLO).input_tokens > 0
    with pytest.raises(anthropic.RateLimitError):
        c.messages.count_tokens(model="claude-haiku-4-5", messages=HELLO)
