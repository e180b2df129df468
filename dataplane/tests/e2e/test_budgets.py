"""Budgets end to end: the real control plane (SQLite and PostgreSQL), data
planes fed by it, the Bedrock double, the `ccag` CLI, the Anthropic SDK and
Claude Code as clients.

Requests here are priced from the shipped table: Claude Haiku 4.5 is $1 /
$5 per million input / output tokens, and the double answers
`[double:reply_chars=N]` with about N/4 output tokens, so a request's cost
is chosen by its reply length."""

import datetime
import os
import secrets
import shutil
import sqlite3
import subprocess
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import anthropic
import pytest

from fleet import ADMIN_PASSWORD, Fleet, client, wait_until
from harness import double_get

HAIKU = "claude-haiku-4-5"
LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1")


def psql(sql, db="postgres"):
    subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", db, "-v", "ON_ERROR_STOP=1", "-qc", sql],
        check=True,
        capture_output=True,
        timeout=60,
    )


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request):
    """Extra control-plane environment for each database."""
    if request.param == "sqlite":
        yield {}
        return
    db = f"ccag_budget_{secrets.token_hex(6)}"
    psql(f"CREATE DATABASE {db}")
    yield {"DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{db}"}
    psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


def start(double_url, tmp_path, dps=("a",), cp_env=None, dp_env=None):
    f = Fleet(double_url, tmp_path, cp_env=cp_env, dp_env=dp_env)
    f.start_cp()
    f.login()
    for name in dps:
        f.start_dp(name)
    return f


@pytest.fixture
def one(bins, shared_double_url, tmp_path, backend):
    """A control plane on each database, with one data plane."""
    f = start(shared_double_url, tmp_path, cp_env=backend)
    yield f
    f.stop_all()


@pytest.fixture
def lite(bins, shared_double_url, tmp_path):
    """A control plane on SQLite with one data plane."""
    f = start(shared_double_url, tmp_path)
    yield f
    f.stop_all()


def member(f, name):
    """A member user and a key of theirs; returns (user, key)."""
    email = f"{name}-{secrets.token_hex(3)}@example.com"
    user = f.ccag_json("users", "create", "--email", email)
    key = f.ccag_json("keys", "create", "--name", name, "--user", email)
    return SimpleNamespace(email=email, id=user["id"]), key


def known(f, key, dp="a"):
    assert wait_until(lambda: _ok(f.url(dp), key["key"]), timeout=10), "the key never reached the data plane"


def _ok(url, key):
    try:
        client(url, key).models.list()
        return True
    except anthropic.APIError:
        return False


def ask(url, key, chars=40, model=HAIKU):
    """One request whose reply is about `chars` characters; returns the raw response."""
    return client(url, key).messages.with_raw_response.create(
        model=model, max_tokens=4096, messages=[{"role": "user", "content": f"[double:reply_chars={chars}] go"}]
    )


def spend(f, user_email):
    rows = f.ccag_json("budgets", "status", "--user", user_email)
    return {r["period"] + ":" + r["scope"]: r for r in rows}


def spend_of(f, key_id):
    rows = f.ccag_json("usage", "--group-by", "key")["rows"]
    return sum(int(r["cost_micro_usd"]) for r in rows if r["group"] == key_id)


def blocked(url, key):
    """The refusal of a spent budget, or None if the request went through."""
    try:
        ask(url, key)
        return None
    except anthropic.APIStatusError as e:
        if e.status_code == 429 and e.body and e.body.get("error", {}).get("type") == "billing_error":
            return e
        raise


def test_a_users_daily_budget_warns_past_80_percent_then_blocks_with_its_reset(one):
    u, key = member(one, "ada")
    one.ccag("budgets", "set", "--user", u.email, "--period", "daily", "--limit-usd", "0.01")
    known(one, key)
    url = one.url("a")
    first = ask(url, key["key"], chars=6800)  # about 1,700 output tokens: $0.0085
    assert first.headers["x-ccag-budget-status"] == "ok"
    assert first.headers["x-ccag-budget-remaining-usd"] == "0.01"
    tomorrow = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)).date()
    assert first.headers["x-ccag-budget-resets"] == f"{tomorrow.isoformat()}T00:00:00Z"
    second = ask(url, key["key"], chars=6800)
    assert second.headers["x-ccag-budget-status"] == "warning"
    assert 80.0 <= float(second.headers["x-ccag-budget-percent"]) < 100.0
    e = blocked(url, key["key"])
    assert e is not None, "a spent budget must refuse"
    assert e.response.headers["x-should-retry"] == "false"
    retry_after = int(e.response.headers["retry-after"])
    now = datetime.datetime.now(datetime.timezone.utc)
    midnight = datetime.datetime.combine(tomorrow, datetime.time(), datetime.timezone.utc)
    assert abs(retry_after - (midnight - now).total_seconds()) < 30
    assert e.response.headers["x-ccag-budget-status"] == "blocked"
    msg = e.body["error"]["message"]
    assert "daily budget" in msg and u.email in msg and "of $0.01" in msg and f"{tomorrow.isoformat()}T00:00:00Z" in msg
    # The status the admin (and the member) sees agrees.
    assert wait_until(lambda: spend(one, u.email)["daily:user"]["status"] == "blocked", timeout=10)
    line = spend(one, u.email)["daily:user"]
    assert line["source"] == "user" and line["limit_micro_usd"] == 10_000
    assert line["resets_at"].startswith(tomorrow.isoformat())


def test_raising_the_budget_lifts_the_block(one):
    u, key = member(one, "bob")
    one.ccag("budgets", "set", "--user", u.email, "--period", "daily", "--limit-usd", "0.005")
    known(one, key)
    url = one.url("a")
    ask(url, key["key"], chars=8000)
    assert wait_until(lambda: blocked(url, key["key"]) is not None, timeout=10)
    one.ccag("budgets", "set", "--user", u.email, "--period", "daily", "--limit-usd", "5")
    assert wait_until(lambda: blocked(url, key["key"]) is None, timeout=10)


def test_a_team_pool_blocks_every_member_and_counts_by_the_team_a_key_was_made_under(one):
    team = one.ccag_json("teams", "create", "--name", "platform-" + secrets.token_hex(3))
    u1, _ = member(one, "cy")
    u2, _ = member(one, "di")
    for u in (u1, u2):
        one.ccag("teams", "add-member", team["id"], u.email)
    k1 = one.ccag_json("keys", "create", "--name", "cy", "--user", u1.email, "--team", team["id"])
    k2 = one.ccag_json("keys", "create", "--name", "di", "--user", u2.email, "--team", team["id"])
    outside = one.ccag_json("keys", "create", "--name", "cy-own", "--user", u1.email)
    one.ccag("budgets", "set", "--team", team["name"], "--period", "monthly", "--limit-usd", "0.005")
    known(one, k1)
    known(one, k2)
    url = one.url("a")
    ask(url, k1["key"], chars=8000)
    assert wait_until(lambda: blocked(url, k2["key"]) is not None, timeout=10)
    assert blocked(url, k1["key"]) is not None
    # A key made outside the team is not in its pool.
    assert blocked(url, outside["key"]) is None
    status = one.ccag_json("budgets", "status", "--team", team["name"])
    assert status[0]["scope"] == "team" and status[0]["status"] == "blocked"


def test_the_organisation_default_and_a_team_member_default_apply_per_user(lite):
    team = lite.ccag_json("teams", "create", "--name", "t-" + secrets.token_hex(3))
    in_team, _ = member(lite, "ed")
    alone, _ = member(lite, "fay")
    lite.ccag("teams", "add-member", team["id"], in_team.email)
    lite.ccag("budgets", "set", "--org", "--period", "weekly", "--limit-usd", "100")
    lite.ccag("budgets", "set", "--team", team["id"], "--member-default", "--period", "weekly", "--limit-usd", "7")
    assert spend(lite, alone.email)["weekly:user"]["source"] == "org_default"
    line = spend(lite, in_team.email)["weekly:user"]
    assert (line["source"], line["limit_usd"]) == ("team_member_default", 7.0)
    listed = lite.ccag_json("budgets", "list")
    assert {(b["scope"], b["period"]) for b in listed} == {("org", "weekly"), ("team member default", "weekly")}


def test_count_tokens_is_never_blocked(lite):
    u, key = member(lite, "gus")
    lite.ccag("budgets", "set", "--user", u.email, "--period", "daily", "--limit-usd", "0")
    known(lite, key)
    url = lite.url("a")
    # The verdict is sent apart from the key (docs/budgets.md): it may land
    # a moment after the key does.
    assert wait_until(lambda: blocked(url, key["key"]) is not None, timeout=10), "the spent budget never blocked"
    n = client(url, key["key"]).messages.count_tokens(model=HAIKU, messages=[{"role": "user", "content": "hi"}])
    assert n.input_tokens > 0


def test_each_threshold_crossing_is_one_event_in_the_outbox(lite):
    u, key = member(lite, "hal")
    lite.ccag("budgets", "set", "--user", u.email, "--period", "daily", "--limit-usd", "0.01", "--policy", "soft")
    known(lite, key)
    url = lite.url("a")
    for chars in (6800, 2000, 40, 40, 8000):  # 85%, 110%, ..., past 150%
        try:
            ask(url, key["key"], chars=chars)
        except anthropic.APIStatusError:
            pass
    db = lite.tmp / "cp" / "ccag.db"

    def events():
        with sqlite3.connect(db) as c:
            return c.execute(
                "SELECT threshold_percent, action FROM budget_events WHERE subject_id = ? ORDER BY threshold_percent",
                (u.id,),
            ).fetchall()

    assert wait_until(lambda: len(events()) == 3, timeout=10), events()
    assert events() == [(80, "notify"), (100, "notify"), (150, "block")]


def test_member_reads_their_own_budget_status_only(lite):
    u, key = member(lite, "ivy")
    other, _ = member(lite, "jo")
    lite.ccag("users", "update", u.id, "--password-stdin", stdin="member-pass-123\n")
    lite.ccag("budgets", "set", "--user", u.email, "--period", "monthly", "--limit-usd", "3")
    lite.ccag("logout")
    lite.ccag("login", "--username", u.email, "--password-stdin", stdin="member-pass-123\n")
    own = lite.ccag_json("budgets", "status")
    assert own[0]["subject"] == u.email and own[0]["limit_usd"] == 3.0
    refused = lite.ccag("budgets", "status", "--user", other.email, check=False)
    assert refused.returncode != 0 and "own budget" in refused.stderr
    refused = lite.ccag("budgets", "set", "--user", u.email, "--period", "daily", "--limit-usd", "9", check=False)
    assert refused.returncode != 0


def test_bad_budgets_get_a_clear_error(lite):
    u, _ = member(lite, "kit")
    bad = lite.ccag("budgets", "set", "--user", u.email, "--period", "daily", "--limit-usd", "1",
                    "--policy", "100:block,120:notify", check=False)
    assert bad.returncode != 0 and "block must be the last rule" in bad.stderr
    bad = lite.ccag("budgets", "set", "--user", "nobody@example.com", "--period", "daily", "--limit-usd", "1", check=False)
    assert bad.returncode != 0 and "not found" in bad.stderr
    bad = lite.ccag("budgets", "set", "--user", u.email, "--period", "daily", "--limit-usd", "-1", check=False)
    assert bad.returncode != 0


def test_every_budget_change_is_audited(lite):
    u, _ = member(lite, "lee")
    lite.ccag("budgets", "set", "--user", u.email, "--period", "daily", "--limit-usd", "2")
    lite.ccag("budgets", "delete", "--user", u.email, "--period", "daily")
    actions = [e["action"] for e in lite.ccag_json("audit", "list")]
    assert "budget.set" in actions and "budget.delete" in actions


def test_spend_of_a_stream_cut_by_the_client_is_recorded(lite):
    import http.client
    import json
    from urllib.parse import urlparse

    u, key = member(lite, "max")
    lite.ccag("budgets", "set", "--user", u.email, "--period", "daily", "--limit-usd", "10")
    known(lite, key)
    body = {
        "model": HAIKU,
        "max_tokens": 4096,
        "stream": True,
        "messages": [{"role": "user", "content": "[double:reply_chars=40000][double:chunks=200][double:inter_token_ms=20] go"}],
    }
    headers = {"x-api-key": key["key"], "anthropic-version": "2023-06-01", "content-type": "application/json"}
    target = urlparse(lite.url("a"))
    conn = http.client.HTTPConnection(target.hostname, target.port, timeout=20)
    conn.request("POST", "/v1/messages", body=json.dumps(body), headers=headers)
    r = conn.getresponse()
    assert r.status == 200
    got = 0
    while got < 20_000:
        got += len(r.read1(4096))
    conn.close()
    # Bedrock's final counts never came: the client is charged for what was relayed.
    assert wait_until(lambda: spend_of(lite, key["id"]) > 0, timeout=10)
    rows = lite.ccag_json("usage", "--group-by", "key")["rows"]
    row = next(r for r in rows if r["group"] == key["id"])
    assert int(row["output_tokens"]) >= 2_000


@pytest.mark.skipif(not LIBFAKETIME.exists(), reason="libfaketime (Debian package faketime) is needed")
def test_the_next_period_lifts_the_block(bins, shared_double_url, tmp_path):
    """Both services run 40 s before midnight UTC (libfaketime): spent
    today, free again after midnight, with nothing reset by a job."""
    now = datetime.datetime.now(datetime.timezone.utc)
    midnight = datetime.datetime.combine(now.date() + datetime.timedelta(days=1), datetime.time(), datetime.timezone.utc)
    offset = int((midnight - now).total_seconds()) - 40
    fake = {
        "LD_PRELOAD": str(LIBFAKETIME),
        "FAKETIME": f"+{offset}s",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        "FAKETIME_NO_CACHE": "1",
    }
    f = start(shared_double_url, tmp_path, cp_env=fake, dp_env=fake)
    try:
        u, key = member(f, "nia")
        f.ccag("budgets", "set", "--user", u.email, "--period", "daily", "--limit-usd", "0.005")
        known(f, key)
        url = f.url("a")
        ask(url, key["key"], chars=8000)
        assert wait_until(lambda: blocked(url, key["key"]) is not None, timeout=10)
        assert wait_until(lambda: blocked(url, key["key"]) is None, timeout=70, every=1), "still blocked after midnight"
    finally:
        f.stop_all()


def claude(url, key, cwd):
    """`claude -p` in `cwd` with a fresh HOME; returns (exit code, output, seconds)."""
    from test_claude_code import CLAUDE

    home = cwd / "home"
    home.mkdir(parents=True)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": url,
        "ANTHROPIC_API_KEY": key,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
    }
    started = time.monotonic()
    p = subprocess.run([str(CLAUDE), "-p", "Say hello.", "--output-format", "json"], env=env, cwd=cwd,
                       capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout + p.stderr, time.monotonic() - started


def test_claude_code_works_is_warned_then_blocked_once_without_retrying(lite, tmp_path):
    """Claude Code as the client of a user with a daily budget: it works,
    the budget shows the warning past 80%, and once it is spent Claude Code
    gets the billing error, makes exactly one attempt, and none reaches Bedrock."""
    u, key = member(lite, "olga")
    lite.ccag("budgets", "set", "--user", u.email, "--period", "daily", "--limit-usd", "10")
    known(lite, key)
    url = lite.url("a")
    code, out, _ = claude(url, key["key"], tmp_path / "one")
    assert code == 0 and "Hello from the Bedrock double." in out, out
    assert wait_until(lambda: spend(lite, u.email)["daily:user"]["spend_micro_usd"] > 0, timeout=10)
    first = spend(lite, u.email)["daily:user"]["spend_micro_usd"]
    # The cap set so that the first run is 85% of it.
    lite.ccag("budgets", "set", "--user", u.email, "--period", "daily", "--limit-usd", f"{first / 0.85 / 1e6:.6f}")
    line = spend(lite, u.email)["daily:user"]
    assert line["status"] == "warning" and 84 <= line["percent"] <= 86, line
    # A fresh working directory: a new system prompt, as costly as the first.
    code, out, _ = claude(url, key["key"], tmp_path / "two")
    assert code == 0 and "Hello from the Bedrock double." in out, out
    assert wait_until(lambda: spend(lite, u.email)["daily:user"]["status"] == "blocked", timeout=10)
    before = double_get(lite.double_url, "/_double/stats")["invocations"]
    blocked_before = len([r for r in lite_usage_records(lite, key["id"]) if r[1] == "budget_blocked"])
    code, out, took = claude(url, key["key"], tmp_path / "three")
    assert "Spend limit reached" in out and "daily budget" in out, out
    time.sleep(1.5)
    blocked_now = [r for r in lite_usage_records(lite, key["id"]) if r[1] == "budget_blocked"]
    assert len(blocked_now) - blocked_before == 1, blocked_now
    assert double_get(lite.double_url, "/_double/stats")["invocations"] == before
    assert took < 60, f"Claude Code took {took:.0f} s: it retried"


def lite_usage_records(f, key_id):
    with sqlite3.connect(f.tmp / "cp" / "ccag.db") as c:
        return c.execute("SELECT operation, outcome FROM usage_records WHERE key_id = ?", (key_id,)).fetchall()


def test_claude_code_prices_our_usage_exactly_as_we_do(lite, tmp_path):
    """Claude Code computes `total_cost_usd` from Anthropic's list prices;
    on the global inference profile Bedrock charges the same, so the spend
    log and Claude Code agree, cache writes and reads included."""
    from test_claude_code import run_claude

    lite.ccag("settings", "set", "routing.geo", "global")
    u, key = member(lite, "pat")
    known(lite, key)
    gw = SimpleNamespace(url=lite.url("a"), key=key["key"])
    total = 0.0
    work = tmp_path / "work"
    work.mkdir()
    # The same working directory twice: the same system prompt, which the
    # second run reads from the cache the first one wrote.
    for prompt in ("Say hello.", "Say hello again."):
        out = run_claude(gw, work, prompt)
        shutil.rmtree(work / "home")
        assert out["is_error"] is False, out
        total += out["total_cost_usd"]
    models = {r["model"] for r in double_get(lite.double_url, "/_double/requests")}
    assert any(m.startswith("global.") for m in models), models
    assert wait_until(lambda: spend_of(lite, key["id"]) > 0, timeout=10)
    time.sleep(1.5)
    rows = lite.ccag_json("usage", "--group-by", "key")["rows"]
    row = next(r for r in rows if r["group"] == key["id"])
    assert int(row["cache_creation_input_tokens"]) > 0 and int(row["cache_read_input_tokens"]) > 0, row
    ours = int(row["cost_micro_usd"])
    # Claude Code sums floats per request; we round each request to the micro-dollar.
    print(f"spend log {ours} micro-USD, Claude Code {total * 1e6:.1f}; {row}")
    assert abs(ours - round(total * 1_000_000)) <= int(row["requests"]), (ours, total, row)


def test_two_data_planes_under_concurrent_load_overshoot_no_more_than_the_bound(bins, shared_double_url, tmp_path):
    """docs/budgets.md: past a cap the fleet admits at most what its data
    planes have in flight, plus one request each per verdict; with 2 data
    planes of 4 workers, requests of ~$0.0085, that is 16 requests."""
    f = start(shared_double_url, tmp_path, dps=("a", "b"))
    try:
        u, key = member(f, "quinn")
        limit = 0.2
        f.ccag("budgets", "set", "--user", u.email, "--period", "daily", "--limit-usd", str(limit))
        known(f, key, "a")
        known(f, key, "b")
        cost_one = []
        stop = threading.Event()

        def worker(url):
            c = client(url, key["key"])
            while not stop.is_set():
                try:
                    c.messages.create(model=HAIKU, max_tokens=4096,
                                      messages=[{"role": "user", "content": "[double:reply_chars=6800] go"}])
                except anthropic.APIStatusError as e:
                    if e.body and e.body.get("error", {}).get("type") == "billing_error":
                        return
                    time.sleep(float(e.response.headers.get("retry-after", "1")))

        threads = [threading.Thread(target=worker, args=(f.url(dp),)) for dp in ("a", "b") for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        stop.set()
        assert not any(t.is_alive() for t in threads), "the budget never blocked"
        time.sleep(2)
        rows = f.ccag_json("usage", "--group-by", "key")["rows"]
        row = next(r for r in rows if r["group"] == key["id"])
        total = int(row["cost_micro_usd"])
        one = 8_500 + 20  # 1,700 output tokens and a few input tokens at Haiku 4.5 prices
        bound = 2 * 4 * one + 2 * one
        print(f"cap {limit * 1e6:.0f}, spent {total}, overshoot {total - limit * 1e6:.0f}, bound {bound} micro-USD")
        assert total >= limit * 1_000_000, total
        assert total - limit * 1_000_000 <= bound, f"overshoot {total - limit * 1e6:.0f} micro-USD > bound {bound}"
    finally:
        f.stop_all()


def test_a_model_without_a_price_is_charged_the_dearest_rates_and_flagged(lite):
    lite.ccag("prices", "delete", "claude-haiku-4-5")
    u, key = member(lite, "rae")
    known(lite, key)
    ask(lite.url("a"), key["key"], chars=4000)  # about 1,000 output tokens
    assert wait_until(lambda: spend_of(lite, key["id"]) > 0, timeout=10)
    row = next(r for r in lite.ccag_json("usage", "--group-by", "key")["rows"] if r["group"] == key["id"])
    assert row["unpriced_requests"] == 1, row
    # Never free: the dearest output rate of the table ($75 per million, Opus 4).
    assert int(row["cost_micro_usd"]) >= 1_000 * 75, row
    status = lite.ccag_json("status")
    assert status["unpriced_requests"] >= 1 and HAIKU in status["unpriced_models"], status
    # The shipped row is not put back while the control plane runs; a set row is the admin's.
    lite.ccag("prices", "set", "claude-haiku-4-5", "--input", "1", "--output", "5")
    row = next(p for p in lite.ccag_json("prices", "list") if p["model"] == "claude-haiku-4-5")
    assert row["source"] == "admin" and row["cache_write_1h"] == 2.0, row


def test_past_a_shape_threshold_requests_are_slowed_not_blocked(lite):
    u, key = member(lite, "sam")
    lite.ccag("budgets", "set", "--user", u.email, "--period", "daily", "--limit-usd", "0.005",
              "--policy", "100:shape:2,500:block")
    known(lite, key)
    url = lite.url("a")
    ask(url, key["key"], chars=8000)  # past 100%
    shaped = []
    for _ in range(4):
        try:
            r = ask(url, key["key"])
            shaped.append(r.headers["x-ccag-budget-status"])
        except anthropic.RateLimitError as e:
            assert e.response.headers["x-ccag-budget-status"] == "shaped"
            assert int(e.response.headers["retry-after"]) >= 1
            assert "limited to 2 requests per minute" in e.body["error"]["message"]
            break
    else:
        raise AssertionError(f"never slowed: {shaped}")
    assert shaped and all(s == "shaped" for s in shaped), shaped


def test_a_data_plane_without_its_control_plane_keeps_enforcing_and_counts_its_own_spend(lite):
    u, key = member(lite, "tia")
    lite.ccag("budgets", "set", "--user", u.email, "--period", "daily", "--limit-usd", "0.01")
    known(lite, key)
    url = lite.url("a")
    lite.kill_cp()
    ask(url, key["key"], chars=6800)  # about 85%
    ask(url, key["key"], chars=6800)  # admitted at 85%, spends past 100%
    e = blocked(url, key["key"])
    assert e is not None, "the data plane's own spend must block while the control plane is away"
