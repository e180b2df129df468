"""Routing over several Bedrock endpoints (issue 14), end to end: the real
control plane and two data planes in front of five Bedrock doubles, each
playing one endpoint (an account in a region), with STS played by
`moto_server` (routing_env.py). The doubles refuse any request not signed
with their own role's session and region, so every answer proves its
signing; faults are injected per double with `POST /_double/fault`.

Each test makes its own endpoints and teams (removed after it), so circuits,
round-robin counters and credentials never carry over between tests; the
organisation's routing settings are changed only inside `gw.settings(…)`.
"""

import anthropic
import pytest

from fleet import client, wait_until
from routing_env import API_KEY, ROLE_A, ROLE_B, SONNET, gateway

HAIKU = "claude-haiku-4-5"
REPLY = "Hello from the Bedrock double."


@pytest.fixture(scope="module")
def fleet_env(bins, tmp_path_factory):
    with gateway(bins, tmp_path_factory.mktemp("routing")) as g:
        yield g


@pytest.fixture
def gw(fleet_env):
    for d in fleet_env.doubles.values():
        d.reset()
    yield fleet_env
    fleet_env.clean()


def ask(gw, who, dp="a", stream=False, text="Say hello.", model=HAIKU):
    """One request as `who` through data plane `dp`; returns the reply text."""
    c = client(gw.url(dp), who.key)
    messages = [{"role": "user", "content": text}]
    if stream:
        with c.messages.stream(model=model, max_tokens=50, messages=messages) as s:
            msg = s.get_final_message()
    else:
        msg = c.messages.create(model=model, max_tokens=50, messages=messages)
    return "".join(b.text for b in msg.content if b.type == "text")


def fallback_pair(gw):
    """A team routing fallback over east then west, and a member of it."""
    a, b = gw.endpoint(gw.east), gw.endpoint(gw.west)
    team = gw.team("fallback", [a, b])
    who = gw.member(team)
    gw.synced()
    return a, b, team, who


# ------------------------------------------------------------ credentials


def test_each_request_is_signed_with_its_endpoints_credentials_and_region(gw):
    """Round robin over three endpoints: two roles in two accounts (each
    double accepting only sessions of its own role, scoped to its own
    region) and one on the data planes' own IAM key."""
    east, west, eu = gw.endpoint(gw.east), gw.endpoint(gw.west), gw.endpoint(gw.eu)
    who = gw.member(gw.team("round-robin", [east, west, eu]))
    gw.synced()
    for _ in range(6):
        assert ask(gw, who) == REPLY
    for double, endpoint, role in ((gw.east, east, ROLE_A), (gw.west, west, ROLE_B)):
        calls = double.model_calls()
        assert len(calls) == 2, (double.name, calls)
        for r in calls:
            assert r["authorized"] and r["auth"] == "sigv4", r
            assert (r["role_arn"], r["region"]) == (role, double.region), r
            assert r["access_key_id"].startswith("ASIA"), "temporary credentials from STS"
            assert r["session_name"] == "ccag-" + endpoint["name"]
    eu_calls = gw.eu.model_calls()
    assert len(eu_calls) == 2
    for r in eu_calls:
        assert r["authorized"] and (r["access_key_id"], r["region"]) == (gw.dp_key["id"], "eu-west-1"), r
    assert all(d.stats()["auth_failures"] == 0 for d in (gw.east, gw.west, gw.eu))


def test_per_user_sessions_name_the_user_and_give_each_user_their_own(gw):
    e = gw.endpoint(gw.east, "--per-user-sessions")
    team = gw.team("fallback", [e])
    ann, bob = gw.member(team), gw.member(team)
    gw.synced()
    for who in (ann, bob, ann, bob):
        assert ask(gw, who) == REPLY
    calls = gw.east.model_calls()
    by_session = {}
    for r in calls:
        assert r["authorized"] and r["role_arn"] == ROLE_A, r
        by_session.setdefault(r["session_name"], set()).add(r["access_key_id"])
    assert set(by_session) == {"ccag-" + ann.email, "ccag-" + bob.email}, by_session
    # One session per user, reused: one access key each, two in all.
    assert all(len(keys) == 1 for keys in by_session.values()), by_session
    assert len(set().union(*by_session.values())) == 2


def test_an_endpoint_with_a_bedrock_api_key_is_called_with_bearer_auth(gw):
    e = gw.endpoint(gw.keyed)
    assert e["credentials"] == "api-key" and e["has_api_key"], e
    who = gw.member(gw.team("fallback", [e]))
    gw.synced()
    assert ask(gw, who) == REPLY
    assert ask(gw, who, stream=True) == REPLY
    calls = gw.keyed.model_calls()
    assert len(calls) == 2
    for r in calls:
        assert r["auth"] == "bearer" and r["authorized"], r
        assert r["headers"]["authorization"] == "Bearer " + API_KEY
    assert gw.keyed.stats()["auth_failures"] == 0


# ------------------------------------------------------------ failover


def test_fallback_sends_everything_to_the_highest_priority_endpoint(gw):
    """A team routing fallback without a list of its own uses every enabled
    endpoint, lowest priority number first, whatever order they came in."""
    second = gw.endpoint(gw.west, "--priority", "2")
    first = gw.endpoint(gw.east, "--priority", "1")
    assert (first["priority"], second["priority"]) == (1, 2)
    who = gw.member(gw.team("fallback"))
    gw.synced()
    for stream in (False, True, False, True):
        assert ask(gw, who, stream=stream) == REPLY
    assert (gw.east.calls(), gw.west.calls()) == (4, 0)


def assert_fails_over(gw, stream, kind, **fault):
    """The first endpoint fails every call with `kind`: each request is
    answered by the second, the client seeing only the answer."""
    _, _, _, who = fallback_pair(gw)
    gw.east.fault(kind, **fault)
    for _ in range(2):
        assert ask(gw, who, stream=stream) == REPLY
    assert gw.west.answered() == 2
    assert gw.east.faulted() >= 1 and gw.east.answered() == 0, "the first endpoint was tried, and left"


STREAMING = pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])


@STREAMING
def test_a_throttled_endpoint_fails_over_to_the_next(gw, stream):
    assert_fails_over(gw, stream, "throttle")


@STREAMING
def test_a_5xx_fails_over_to_the_next_endpoint(gw, stream):
    assert_fails_over(gw, stream, "error")


@STREAMING
def test_a_stalled_first_byte_fails_over_after_the_attempt_timeout(gw, stream):
    with gw.settings({"routing.attempt_timeout_ms": 1000}):
        assert_fails_over(gw, stream, "stall", stall_ms=15000)


def test_no_failover_once_the_first_byte_has_reached_the_client(gw):
    """An exception frame after content: the client sees it as the stream's
    error event, and the second endpoint is never asked."""
    _, _, _, who = fallback_pair(gw)
    c = client(gw.url("a"), who.key)
    text = "x [double:stream_error=throttlingException,after=3]"
    seen = []
    with pytest.raises(anthropic.APIStatusError) as e:
        with c.messages.stream(model=HAIKU, max_tokens=50, messages=[{"role": "user", "content": text}]) as s:
            for ev in s:
                seen.append(ev.type)
    assert "message_start" in seen and "content_block_delta" in seen, seen
    assert e.value.body["error"]["type"] == "rate_limit_error"
    assert (gw.east.calls(), gw.west.calls()) == (1, 0)


@STREAMING
def test_when_every_endpoint_throttles_the_client_gets_a_429(gw, stream):
    _, _, _, who = fallback_pair(gw)
    gw.east.fault("throttle")
    gw.west.fault("throttle")
    with pytest.raises(anthropic.RateLimitError) as e:
        ask(gw, who, stream=stream)
    assert e.value.status_code == 429
    assert e.value.body["error"]["type"] == "rate_limit_error"
    assert (gw.east.faulted(), gw.west.faulted()) == (1, 1), "each endpoint tried once"


def test_the_circuit_opens_after_repeated_failures_and_closes_once_a_probe_succeeds(gw):
    cooldown_ms = 3000
    with gw.settings({"routing.breaker_failures": 2, "routing.breaker_cooldown_ms": cooldown_ms}):
        a, _, _, who = fallback_pair(gw)
        gw.east.fault("error")
        for _ in range(6):
            assert ask(gw, who) == REPLY
        assert gw.east.calls() == 2, "two failures open the circuit: no call after them"
        assert gw.west.answered() == 6
        # Healthy again, but the circuit stays open for its cooldown...
        gw.east.fault("none")
        assert ask(gw, who) == REPLY
        assert gw.east.calls() == 2
        assert wait_until(lambda: gw.endpoint_health()[a["id"]]["circuit"] == "open", timeout=10), gw.endpoint_health()
        # ...then one probe succeeds and traffic returns.
        assert wait_until(lambda: ask(gw, who) == REPLY and gw.east.answered() == 1, timeout=cooldown_ms / 1000 + 10)
        west_before = gw.west.calls()
        for _ in range(3):
            assert ask(gw, who) == REPLY
        assert (gw.east.answered(), gw.west.calls()) == (4, west_before)
        assert wait_until(lambda: gw.endpoint_health()[a["id"]]["circuit"] == "closed", timeout=10)


# ------------------------------------------------------------ strategies


def test_round_robin_spreads_a_teams_requests_by_weight(gw):
    light, heavy = gw.endpoint(gw.east, "--weight", "1"), gw.endpoint(gw.west, "--weight", "3")
    assert (light["weight"], heavy["weight"]) == (1, 3)
    who = gw.member(gw.team("round-robin", [light, heavy]))
    gw.synced()
    for i in range(40):
        assert ask(gw, who, stream=i % 2 == 1) == REPLY
    assert (gw.east.calls(), gw.west.calls()) == (10, 30)


def served_by(gw, doubles, who, dp):
    """The name of the one double that answered `who`'s request via `dp`."""
    before = {d.name: d.calls() for d in doubles}
    assert ask(gw, who, dp=dp) == REPLY
    moved = [d.name for d in doubles if d.calls() != before[d.name]]
    assert len(moved) == 1, moved
    return moved[0]


def test_sticky_keeps_each_user_on_one_endpoint_on_every_data_plane_and_spreads_users(gw):
    doubles = (gw.east, gw.west)
    team = gw.team("sticky", [gw.endpoint(d) for d in doubles])
    users = [gw.member(team) for _ in range(40)]
    gw.synced()
    placed = {}
    for who in users:
        seen = {served_by(gw, doubles, who, dp) for dp in ("a", "b", "a")}
        assert len(seen) == 1, f"{who.email} moved between {seen}"
        placed[who.email] = seen.pop()
    counts = {d.name: list(placed.values()).count(d.name) for d in doubles}
    assert all(10 <= n <= 30 for n in counts.values()), counts


def test_adaptive_moves_traffic_off_a_throttling_endpoint(gw):
    """While the second endpoint is slower, the first takes the traffic;
    once the first throttles, requests go straight to the second, where
    fallback would try the first every time. The breaker is kept out of it,
    and both endpoints sign without STS, so that no first call is slowed by
    a credential fetch (adaptive weighs every latency it saw)."""
    first, second = gw.eu, gw.keyed
    with gw.settings({"routing.breaker_failures": 100}):
        who = gw.member(gw.team("adaptive", [gw.endpoint(first), gw.endpoint(second)]))
        gw.synced()
        second.fault("stall", stall_ms=25)
        for _ in range(10):
            assert ask(gw, who) == REPLY
        assert first.answered() >= 6, (first.stats(), second.stats())
        second.fault("none")
        first.reset()
        first.fault("throttle")
        for _ in range(20):
            assert ask(gw, who) == REPLY
        assert first.faulted() <= 6, f"the throttling endpoint was tried {first.faulted()} times of 20"


def test_a_teams_endpoints_and_strategy_override_the_organisations(gw):
    """The organisation routes round robin over every endpoint; one team
    routes fallback over its own list, in its own order."""
    with gw.settings({"routing.strategy": "round-robin"}):
        a = gw.endpoint(gw.east, "--priority", "1")
        b = gw.endpoint(gw.west, "--priority", "2")
        own = gw.member(gw.team("fallback", [b, a]))
        other = gw.member(gw.team())
        gw.synced()
        for _ in range(4):
            assert ask(gw, own) == REPLY
        assert (gw.east.calls(), gw.west.calls()) == (0, 4)
        for _ in range(4):
            assert ask(gw, other) == REPLY
        assert (gw.east.calls(), gw.west.calls()) == (2, 6), "the other team keeps the organisation's"


def test_a_model_no_endpoint_of_the_team_serves_is_refused_naming_model_and_team(gw):
    e = gw.endpoint(gw.east, "--models", SONNET)
    assert e["models"] == [SONNET]
    team = gw.team("fallback", [e])
    who = gw.member(team)
    gw.synced()
    with pytest.raises(anthropic.BadRequestError) as refused:
        ask(gw, who, model=HAIKU)
    err = refused.value.body["error"]
    assert err["type"] == "invalid_request_error"
    assert HAIKU in err["message"] and (team["id"] in err["message"] or team["name"] in err["message"]), err
    assert gw.east.calls() == 0, "refused at the gateway"
    assert ask(gw, who, model="claude-sonnet-4-5") == REPLY


def test_an_endpoints_models_are_discovered_from_its_inference_profiles(gw):
    """No --models: the data plane lists the endpoint's inference profiles,
    and a model the account has none for is refused at the gateway."""
    e = gw.endpoint(gw.sonnet)
    team = gw.team("fallback", [e])
    who = gw.member(team)
    gw.synced()

    def refused_by_the_gateway():
        try:
            ask(gw, who, model=HAIKU)
        except anthropic.BadRequestError as err:
            return team["id"] in err.body["error"]["message"] or team["name"] in err.body["error"]["message"]
        return False

    assert wait_until(refused_by_the_gateway, timeout=10, every=0.2)
    assert gw.sonnet.stats()["inference_profile_lists"] >= 1
    assert ask(gw, who, model="claude-sonnet-4-5") == REPLY


# ------------------------------------------------------------ changes and reporting


def test_an_endpoint_deleted_mid_stream_lets_the_stream_finish_and_new_requests_go_elsewhere(gw):
    a, _, _, who = fallback_pair(gw)
    c = client(gw.url("a"), who.key)
    text = "slow [double:chunks=10] [double:inter_token_ms=300]"
    deltas = []
    with c.messages.stream(model=HAIKU, max_tokens=50, messages=[{"role": "user", "content": text}]) as s:
        for ev in s:
            if ev.type == "content_block_delta":
                deltas.append(ev.delta.text)
                if len(deltas) == 1:
                    gw.ccag("endpoints", "delete", a["id"])
                    gw.synced()
                    assert gw.east.stats()["streams_completed"] == 0, "still streaming when the data planes let go"
        final = s.get_final_message()
    assert len(deltas) == 10 and "".join(deltas) == REPLY
    assert final.stop_reason == "end_turn"
    assert ask(gw, who) == REPLY
    assert (gw.east.calls(), gw.west.calls()) == (1, 1)


def test_usage_records_name_their_endpoint_and_endpoints_list_shows_health(gw):
    a, b, _, who = fallback_pair(gw)
    gw.east.fault("throttle", count=1)
    assert ask(gw, who) == REPLY  # east throttles, west answers: two attempts
    assert ask(gw, who) == REPLY  # east answers
    want = sorted([(b["id"], 2), (a["id"], 1)])
    assert wait_until(lambda: gw.usage_records(who.key_id) == want, timeout=15), gw.usage_records(who.key_id)
    rows = gw.ccag_json("usage", "--key", who.key_id, "--group-by", "endpoint")
    rows = rows.get("rows", []) if isinstance(rows, dict) else rows
    assert {r["group"]: int(r["requests"]) for r in rows} == {a["id"]: 1, b["id"]: 1}, rows

    def reported():
        h = gw.endpoint_health()
        return (
            (h[a["id"]]["requests"], h[a["id"]]["throttles"], h[a["id"]]["errors"]) == (2, 1, 0)
            and (h[b["id"]]["requests"], h[b["id"]]["throttles"], h[b["id"]]["errors"]) == (1, 0, 0)
            and h
        )

    h = wait_until(reported, timeout=15)
    assert h, gw.endpoint_health()
    assert h[a["id"]]["circuit"] == "closed" and h[b["id"]]["circuit"] == "closed", h
    assert h[a["id"]]["p50_ms"] > 0 and h[b["id"]]["p99_ms"] > 0, h


def test_the_health_of_an_endpoint_sums_both_data_planes_reports(gw):
    e = gw.endpoint(gw.eu)
    who = gw.member(gw.team("fallback", [e]))
    gw.synced()
    for dp in ("a", "b", "a"):
        assert ask(gw, who, dp=dp) == REPLY
    assert wait_until(lambda: gw.endpoint_health()[e["id"]]["requests"] == 3, timeout=15), gw.endpoint_health()
