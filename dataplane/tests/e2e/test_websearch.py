"""Web search emulation end to end (docs/websearch.md): the real control
plane and a data plane in front of the Bedrock double, with the search
providers played by `search_providers.ProviderDouble` on loopback, driven
by the `ccag` CLI, raw HTTP, the Anthropic SDK and Claude Code.

The double searches when the request's tools hold its plain `web_search`
tool (what the gateway makes of the server tool) and a user message says
`[double:search]`, `[double:search=QUERY]` or `[double:searches=N]` (or
`tool_choice` forces the tool); the query is the first user message
without its markers, search k >= 2 gets " (k)" appended, and after the
last result it answers "Tool said: " and the text of that result, so
what the provider returned shows in the answer. Both services run with
CCAG_OUTBOUND_ALLOW_CIDRS=127.0.0.1/32 so that they may call the
provider double."""

import json
import re
import secrets
import sqlite3
from types import SimpleNamespace

import pytest
import requests

from fleet import client, free_port, wait_until
from harness import double_get
from search_providers import AD_TITLE, AD_URL, ProviderDouble
from test_budgets import known, member, start

HAIKU = "claude-haiku-4-5"
ALLOW_LOOPBACK = {"CCAG_OUTBOUND_ALLOW_CIDRS": "127.0.0.1/32"}
TOOL_VERSIONS = ["web_search_20250305", "web_search_20260209", "web_search_20260318"]
Q = "rust release notes"
SEARCH = f"{Q} [double:search]"
SRVTOOLU = re.compile(r"^srvtoolu_[0-9A-Za-z]+$")


# ---------------------------------------------------------------- components


@pytest.fixture
def providers():
    """The search provider double, on its own loopback port."""
    d = ProviderDouble()
    yield d
    d.close()


@pytest.fixture
def gw(bins, double_url, tmp_path):
    """A control plane on SQLite with one data plane "a", logged in as admin,
    both allowed to call loopback; a Bedrock double of this test's own, so
    its request log holds this test's model calls only."""
    f = start(double_url, tmp_path, cp_env=ALLOW_LOOPBACK, dp_env=ALLOW_LOOPBACK)
    yield f
    f.stop_all()


def developer(f, name="dev"):
    """A member and a key of theirs that the data plane already accepts."""
    u, key = member(f, name)
    known(f, key)
    return SimpleNamespace(email=u.email, id=u.id, key=key["key"], key_id=key["id"])


@pytest.fixture
def dev(gw):
    return developer(gw)


def settled(f):
    """Waits until every data plane has acknowledged the current configuration."""

    def current():
        s = f.ccag_json("status")
        dps = s.get("dataplanes") or []
        return bool(dps) and all(int(d["acked_version"]) == int(s["config_version"]) for d in dps)

    assert wait_until(current, timeout=10), f.ccag_json("status")


def use(f, providers, kind, *scope, key=None, max_results=None):
    """`ccag search set` (the organisation's unless `scope` says
    `--user EMAIL`) for `kind` at the provider double, with the key the
    double expects unless `key` is given ("" for none); waits until the
    data planes hold it. Returns the CLI's completed process."""
    key = providers.key_for(kind) if key is None else key
    args = ["search", "set", *(scope or ("--org",)), "--provider", kind, "--url", providers.url_for(kind)]
    if max_results is not None:
        args += ["--max-results", str(max_results)]
    if key:
        args.append("--api-key-stdin")
    p = f.ccag(*args, stdin=key + "\n" if key else None)
    settled(f)
    return p


def search_tool(version="web_search_20250305", **extra):
    return {"type": version, "name": "web_search", **extra}


def post(f, key, messages, tools=None, stream=False, **extra):
    """POST /v1/messages on data plane "a"; `messages` may be one user text."""
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    body = {
        "model": HAIKU,
        "max_tokens": 1024,
        "messages": messages,
        "tools": [search_tool()] if tools is None else tools,
    }
    if stream:
        body["stream"] = True
    body.update(extra)
    headers = {"x-api-key": key, "anthropic-version": "2023-06-01", "content-type": "application/json"}
    return requests.post(f.url("a") + "/v1/messages", data=json.dumps(body), headers=headers, timeout=90)


def ask(f, key, messages, **kw):
    """A non-streamed request that must succeed; its JSON body."""
    r = post(f, key, messages, **kw)
    assert r.status_code == 200, r.text
    return r.json()


def of_type(msg, kind):
    return [b for b in msg["content"] if b["type"] == kind]


def answer_text(msg):
    return "".join(b["text"] for b in of_type(msg, "text"))


def results_text(q, hits):
    """The tool_result text the gateway gives the model for a search."""
    quoted = json.dumps(q, ensure_ascii=False)
    if not hits:
        return f"No results for {quoted}."
    parts = [f"Web search results for {quoted}:"]
    for i, h in enumerate(hits, start=1):
        item = f"[{i}] {h['title']}\nURL: {h['url']}"
        if h["page_age"]:
            item += f"\nAge: {h['page_age']}"
        if h["snippet"]:
            item += "\n" + h["snippet"]
        parts.append(item)
    return "\n\n".join(parts)


def shown(block):
    """(url, title, page_age) of each result of a web_search_tool_result."""
    return [(r["url"], r["title"], r["page_age"]) for r in block["content"]]


def wanted(hits):
    return [(h["url"], h["title"], h["page_age"]) for h in hits]


def error_block(code):
    return {"type": "web_search_tool_result_error", "error_code": code}


def bedrock_calls(f):
    """The model calls the Bedrock double received (this test's own double)."""
    return [r for r in double_get(f.double_url, "/_double/requests") if r["operation"].startswith("InvokeModel")]


def double_input_tokens(body):
    """The Bedrock double's documented input estimate (behaviour.rs,
    `estimate_input_tokens`): ceil(characters of the system prompt and of
    every message's text, tool_result text and thinking / 4), at least 1."""

    def block(b):
        kind = b.get("type")
        if kind == "text":
            return b.get("text") or ""
        if kind == "tool_result":
            c = b.get("content")
            if isinstance(c, str):
                return c
            if isinstance(c, list):
                return "\n".join(x["text"] for x in c if isinstance(x, dict) and isinstance(x.get("text"), str))
            return ""
        if kind == "thinking":
            return b.get("thinking") or ""
        return ""

    def content(c):
        if isinstance(c, str):
            return c
        if isinstance(c, list):
            return "".join(block(b) for b in c if isinstance(b, dict))
        return ""

    text = content(body.get("system")) + "".join(content(m.get("content")) for m in body.get("messages", []))
    return tokens_for_chars(len(text))


def tokens_for_chars(n):
    return max(1, -(-n // 4))


def sse_events(text):
    """(event name, data) of each event of an SSE body, in order."""
    out = []
    for chunk in text.split("\n\n"):
        name, data = None, []
        for line in chunk.split("\n"):
            if line.startswith("event:"):
                name = line[len("event:"):].strip()
            elif line.startswith("data:"):
                data.append(line[len("data:"):].strip())
        if name or data:
            out.append((name, json.loads("\n".join(data))))
    return out


def spend_record(f, request_id):
    """The spend log's row for one request (the control plane's SQLite)."""
    with sqlite3.connect(f.tmp / "cp" / "ccag.db") as c:
        c.row_factory = sqlite3.Row
        row = c.execute(
            "SELECT web_search_requests, cost_micro_usd, input_tokens, output_tokens FROM usage_records "
            "WHERE request_id = ?",
            (request_id,),
        ).fetchone()
    return dict(row) if row else None


# ---------------------------------------------------------------- the answer


def test_a_search_answers_with_server_tool_use_its_results_then_the_models_text(gw, providers, dev):
    use(gw, providers, "custom")
    msg = ask(gw, dev.key, SEARCH)
    hits = providers.expected(Q, "custom")
    assert msg["stop_reason"] == "end_turn" and msg["model"] == HAIKU
    assert [b["type"] for b in msg["content"]] == ["server_tool_use", "web_search_tool_result", "text"]
    call, result, text = msg["content"]
    assert call == {"type": "server_tool_use", "id": call["id"], "name": "web_search", "input": {"query": Q}}
    assert SRVTOOLU.match(call["id"]), call["id"]
    assert result["tool_use_id"] == call["id"]
    assert set(result) == {"type", "tool_use_id", "content"}
    for r in result["content"]:
        assert set(r) == {"type", "url", "title", "encrypted_content", "page_age"}, r
        assert r["type"] == "web_search_result"
        assert isinstance(r["encrypted_content"], str) and r["encrypted_content"]
        assert "Snippet" not in r["encrypted_content"], "the excerpt is sealed, not shown"
    assert shown(result) == wanted(hits)
    assert result["content"][0]["page_age"] == "2 days ago" and result["content"][1]["page_age"] is None
    assert text["text"] == "Tool said: " + results_text(Q, hits)
    assert msg["usage"]["server_tool_use"]["web_search_requests"] == 1
    assert providers.queries("custom") == [Q]


def test_usage_is_the_sum_of_every_model_call(gw, providers, dev):
    use(gw, providers, "custom")
    msg = ask(gw, dev.key, SEARCH)
    calls = bedrock_calls(gw)
    assert len(calls) == 2, [c["body"].get("messages") for c in calls]
    assert msg["usage"]["input_tokens"] == sum(double_input_tokens(c["body"]) for c in calls)
    # The first call said the tool input, the second the answer.
    said = json.dumps({"query": Q}, separators=(",", ":"), ensure_ascii=False)
    assert msg["usage"]["output_tokens"] == tokens_for_chars(len(said)) + tokens_for_chars(len(answer_text(msg)))


@pytest.mark.parametrize("version", TOOL_VERSIONS)
def test_every_web_search_tool_version_is_emulated(gw, providers, dev, version):
    use(gw, providers, "custom")
    msg = ask(gw, dev.key, SEARCH, tools=[search_tool(version)])
    assert [b["type"] for b in msg["content"]] == ["server_tool_use", "web_search_tool_result", "text"]
    assert msg["usage"]["server_tool_use"]["web_search_requests"] == 1
    sent = bedrock_calls(gw)[0]["body"]["tools"]
    assert [t["name"] for t in sent] == ["web_search"], sent
    assert sent[0].get("type") in (None, "custom") and "query" in sent[0]["input_schema"]["properties"], sent


def test_server_tool_use_ids_are_fresh_srvtoolu_ids_that_their_results_name(gw, providers, dev):
    use(gw, providers, "custom")
    msg = ask(gw, dev.key, f"{Q} [double:searches=2]")
    assert [b["type"] for b in msg["content"]] == [
        "server_tool_use", "web_search_tool_result", "server_tool_use", "web_search_tool_result", "text",
    ]
    calls, results = of_type(msg, "server_tool_use"), of_type(msg, "web_search_tool_result")
    ids = [c["id"] for c in calls]
    assert all(SRVTOOLU.match(i) for i in ids) and len(set(ids)) == 2, ids
    assert [r["tool_use_id"] for r in results] == ids
    assert [c["input"] for c in calls] == [{"query": Q}, {"query": f"{Q} (2)"}]
    assert msg["usage"]["server_tool_use"]["web_search_requests"] == 2
    # Bedrock's own tool_use ids never reach the client.
    bedrock_ids = {
        b["id"]
        for c in bedrock_calls(gw)
        for m in c["body"]["messages"]
        if m["role"] == "assistant" and isinstance(m["content"], list)
        for b in m["content"]
        if b.get("type") == "tool_use"
    }
    assert bedrock_ids and not bedrock_ids & set(ids)
    assert not any(i in json.dumps(msg) for i in bedrock_ids)
    again = ask(gw, dev.key, SEARCH)
    assert not {c["id"] for c in of_type(again, "server_tool_use")} & set(ids), "each search gets a new id"


# ---------------------------------------------------------------- streaming


def test_a_streamed_search_sends_the_events_in_the_apis_order(gw, providers, dev):
    use(gw, providers, "custom")
    r = post(gw, dev.key, SEARCH, stream=True)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/event-stream")
    events = sse_events(r.text)
    assert all(name == data["type"] for name, data in events), [name for name, _ in events]
    events = [d for _, d in events if d["type"] != "ping"]
    shape = []
    for d in events:
        step = (d["type"], d.get("index"))
        if d["type"] == "content_block_delta":
            step += (d["delta"]["type"],)
            if shape and shape[-1] == step:
                continue  # consecutive deltas of one block count once
        shape.append(step)
    assert shape == [
        ("message_start", None),
        ("content_block_start", 0), ("content_block_delta", 0, "input_json_delta"), ("content_block_stop", 0),
        ("content_block_start", 1), ("content_block_stop", 1),
        ("content_block_start", 2), ("content_block_delta", 2, "text_delta"), ("content_block_stop", 2),
        ("message_delta", None),
        ("message_stop", None),
    ], shape
    start_msg = events[0]["message"]
    assert start_msg["model"] == HAIKU and start_msg["content"] == []
    by_index = {}
    for d in events:
        if d["type"].startswith("content_block"):
            by_index.setdefault(d["index"], []).append(d)
    call = by_index[0][0]["content_block"]
    assert call == {"type": "server_tool_use", "id": call["id"], "name": "web_search", "input": {}}
    assert SRVTOOLU.match(call["id"])
    partial = "".join(d["delta"]["partial_json"] for d in by_index[0] if d["type"] == "content_block_delta")
    assert json.loads(partial) == {"query": Q}
    result = by_index[1][0]["content_block"]
    assert result["type"] == "web_search_tool_result" and result["tool_use_id"] == call["id"]
    hits = providers.expected(Q, "custom")
    assert shown(result) == wanted(hits)
    assert all(x["type"] == "web_search_result" and x["encrypted_content"] for x in result["content"])
    text_start = by_index[2][0]["content_block"]
    assert text_start["type"] == "text" and text_start["text"] == ""
    text = "".join(d["delta"]["text"] for d in by_index[2] if d["type"] == "content_block_delta")
    assert text == "Tool said: " + results_text(Q, hits)
    delta = events[-2]
    assert delta["delta"]["stop_reason"] == "end_turn"
    assert delta["usage"]["server_tool_use"]["web_search_requests"] == 1
    assert delta["usage"]["output_tokens"] > 0


def normalised(message):
    """What an SDK message's blocks say, without what differs per request
    (ids, the sealed content) or per SDK class: a search call's id becomes
    its position, and its result names that position."""
    out, ids = [], {}
    for b in message.content:
        if b.type == "server_tool_use":
            ids[b.id] = len(ids)
            out.append((b.type, ids[b.id], b.name, b.input))
        elif b.type == "web_search_tool_result":
            content = b.content
            if isinstance(content, list):
                content = [(r.type, r.url, r.title, r.page_age, bool(r.encrypted_content)) for r in content]
            else:
                content = (content.type, content.error_code)
            out.append((b.type, ids.get(b.tool_use_id), content))
        elif b.type == "text":
            out.append((b.type, b.text))
        else:
            out.append((b.type,))
    return out


def test_the_sdk_assembles_the_same_blocks_from_the_stream_as_the_unstreamed_answer(gw, providers, dev):
    use(gw, providers, "custom")
    c = client(gw.url("a"), dev.key).with_options(timeout=90)
    kw = dict(model=HAIKU, max_tokens=1024, tools=[search_tool()], messages=[{"role": "user", "content": SEARCH}])
    plain = c.messages.create(**kw)
    with c.messages.stream(**kw) as s:
        types = [ev.type for ev in s]
        streamed = s.get_final_message()
    assert types[0] == "message_start" and types[-1] == "message_stop"
    assert [b.type for b in streamed.content] == ["server_tool_use", "web_search_tool_result", "text"]
    assert streamed.content[0].input == {"query": Q}
    assert streamed.content[1].tool_use_id == streamed.content[0].id
    assert [r.url for r in streamed.content[1].content] == [h["url"] for h in providers.expected(Q, "custom")]
    assert normalised(streamed) == normalised(plain)
    assert streamed.stop_reason == plain.stop_reason == "end_turn"
    assert streamed.usage.server_tool_use.web_search_requests == 1
    assert plain.usage.server_tool_use.web_search_requests == 1


# ---------------------------------------------------------------- providers


def test_tavily_is_called_with_its_bearer_key_and_gives_the_answer(gw, providers, dev):
    use(gw, providers, "tavily")
    msg = ask(gw, dev.key, SEARCH)
    hits = providers.expected(Q, "tavily")
    assert shown(of_type(msg, "web_search_tool_result")[0]) == wanted(hits)
    assert all(h["title"] in answer_text(msg) and h["url"] in answer_text(msg) for h in hits)
    [sent] = providers.requests("tavily")
    assert sent.method == "POST" and sent.headers["content-type"].startswith("application/json")
    assert sent.headers["authorization"] == f"Bearer {providers.key_for('tavily')}"
    assert sent.body["query"] == Q and sent.body["max_results"] == 5
    assert "include_domains" not in sent.body and "exclude_domains" not in sent.body


def test_serper_is_called_with_its_api_key_header_and_gives_the_answer(gw, providers, dev):
    use(gw, providers, "serper")
    msg = ask(gw, dev.key, SEARCH)
    hits = providers.expected(Q, "serper")
    assert shown(of_type(msg, "web_search_tool_result")[0]) == wanted(hits)
    assert all(h["title"] in answer_text(msg) for h in hits)
    [sent] = providers.requests("serper")
    assert sent.method == "POST" and sent.headers["x-api-key"] == providers.key_for("serper")
    assert "authorization" not in sent.headers
    assert sent.body == {"q": Q, "num": 5}


def test_brave_is_called_with_a_get_and_its_subscription_token_and_gives_the_answer(gw, providers, dev):
    use(gw, providers, "brave")
    msg = ask(gw, dev.key, SEARCH)
    hits = providers.expected(Q, "brave")
    assert shown(of_type(msg, "web_search_tool_result")[0]) == wanted(hits)
    # Brave marks words with <strong>; the model reads the plain excerpt.
    assert answer_text(msg) == "Tool said: " + results_text(Q, hits)
    [sent] = providers.requests("brave")
    assert sent.method == "GET" and sent.headers["x-subscription-token"] == providers.key_for("brave")
    assert sent.params["q"] == Q and sent.params["count"] == "5"


def test_searxng_is_asked_for_json_and_gives_the_answer(gw, providers, dev):
    use(gw, providers, "searxng")
    msg = ask(gw, dev.key, SEARCH)
    hits = providers.expected(Q, "searxng")
    assert shown(of_type(msg, "web_search_tool_result")[0]) == wanted(hits)
    assert all(h["title"] in answer_text(msg) for h in hits)
    [sent] = providers.requests("searxng")
    assert sent.method == "GET" and sent.params["q"] == Q and sent.params["format"] == "json"
    assert "authorization" not in sent.headers, "no key was set"


def test_a_custom_provider_gets_the_contracts_body_with_the_location_and_its_bearer_key(gw, providers, dev):
    key = "custom-" + secrets.token_hex(8)
    providers.expect_key("custom", key)
    use(gw, providers, "custom", key=key)
    location = {"type": "approximate", "city": "London", "country": "GB", "timezone": "Europe/London"}
    msg = ask(gw, dev.key, SEARCH, tools=[search_tool(user_location=location)])
    hits = providers.expected(Q, "custom")
    assert shown(of_type(msg, "web_search_tool_result")[0]) == wanted(hits)
    assert all(h["title"] in answer_text(msg) for h in hits)
    [sent] = providers.requests("custom")
    assert sent.method == "POST" and sent.headers["authorization"] == f"Bearer {key}"
    assert sent.body == {
        "query": Q,
        "count": 5,
        "allowed_domains": [],
        "blocked_domains": [],
        "user_location": {"city": "London", "region": None, "country": "GB", "timezone": "Europe/London"},
    }


def test_duckduckgo_is_read_from_its_html_page_without_the_ad(gw, providers, dev):
    use(gw, providers, "duckduckgo")
    msg = ask(gw, dev.key, SEARCH)
    hits = providers.expected(Q, "duckduckgo")
    result = of_type(msg, "web_search_tool_result")[0]
    assert shown(result) == wanted(hits), "titles lose their <b> marks, links their redirect"
    assert all(r["page_age"] is None for r in result["content"])
    assert AD_URL not in json.dumps(msg) and AD_TITLE not in json.dumps(msg) and "duckduckgo.com" not in json.dumps(msg)
    assert all(h["title"] in answer_text(msg) for h in hits)
    [sent] = providers.requests("duckduckgo")
    assert sent.method == "POST" and sent.headers["content-type"].startswith("application/x-www-form-urlencoded")
    assert sent.headers["user-agent"].startswith("Mozilla/5.0")
    assert sent.body["q"] == Q


def test_max_results_is_sent_to_the_provider_and_caps_the_results(gw, providers, dev):
    use(gw, providers, "tavily", max_results=3)
    msg = ask(gw, dev.key, SEARCH)
    assert shown(of_type(msg, "web_search_tool_result")[0]) == wanted(providers.expected(Q, "tavily", count=3))
    assert providers.requests("tavily")[0].body["max_results"] == 3


def test_a_refused_api_key_gives_unavailable(gw, providers, dev):
    use(gw, providers, "tavily", key="tvly-not-the-key")
    msg = ask(gw, dev.key, SEARCH)
    assert of_type(msg, "web_search_tool_result")[0]["content"] == error_block("unavailable")
    assert len(providers.requests("tavily")) == 1


# ---------------------------------------------------------------- the tool's options


def test_allowed_domains_keep_only_those_hosts_and_their_subdomains_and_reach_tavily(gw, providers, dev):
    use(gw, providers, "tavily")
    msg = ask(gw, dev.key, SEARCH, tools=[search_tool(allowed_domains=["example.com"])])
    hits = providers.expected(Q, "tavily")
    keep = [h for h in hits if h["url"].startswith(("https://docs.example.com/", "https://example.com/"))]
    assert len(keep) == 2
    assert shown(of_type(msg, "web_search_tool_result")[0]) == wanted(keep), "notexample.com is not example.com"
    assert answer_text(msg) == "Tool said: " + results_text(Q, keep)
    assert providers.requests("tavily")[0].body["include_domains"] == ["example.com"]


def test_blocked_domains_drop_those_hosts_and_reach_serper_as_site_operators(gw, providers, dev):
    use(gw, providers, "serper")
    msg = ask(gw, dev.key, SEARCH, tools=[search_tool(blocked_domains=["example.com"])])
    hits = providers.expected(Q, "serper")
    keep = [h for h in hits if not h["url"].startswith(("https://docs.example.com/", "https://example.com/"))]
    assert [h["url"].split("/")[2] for h in keep] == ["blog.example.org", "www.other.net", "notexample.com"]
    assert shown(of_type(msg, "web_search_tool_result")[0]) == wanted(keep)
    assert providers.requests("serper")[0].body["q"] == f"{Q} -site:example.com"


def test_allowed_and_blocked_domains_together_are_refused(gw, providers, dev):
    use(gw, providers, "custom")
    tool = search_tool(allowed_domains=["example.com"], blocked_domains=["other.net"])
    r = post(gw, dev.key, SEARCH, tools=[tool])
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error"
    assert "allowed_domains" in err["message"] and "blocked_domains" in err["message"]
    assert providers.requests() == [] and bedrock_calls(gw) == []


def test_searches_past_max_uses_get_an_error_block_and_are_not_counted(gw, providers, dev):
    use(gw, providers, "custom")
    msg = ask(gw, dev.key, f"{Q} [double:searches=2]", tools=[search_tool(max_uses=1)])
    assert [b["type"] for b in msg["content"]] == [
        "server_tool_use", "web_search_tool_result", "server_tool_use", "web_search_tool_result", "text",
    ]
    first, second = of_type(msg, "web_search_tool_result")
    assert shown(first) == wanted(providers.expected(Q, "custom"))
    assert second["content"] == error_block("max_uses_exceeded")
    assert second["tool_use_id"] == of_type(msg, "server_tool_use")[1]["id"]
    assert answer_text(msg) == "Tool said: Web search failed: max_uses_exceeded"
    assert msg["stop_reason"] == "end_turn"
    assert msg["usage"]["server_tool_use"]["web_search_requests"] == 1
    assert providers.queries("custom") == [Q]


@pytest.mark.parametrize(
    "kind,status,code",
    [
        ("custom", 500, "unavailable"),
        ("tavily", 429, "too_many_requests"),
        ("duckduckgo", 202, "too_many_requests"),
    ],
    ids=["500-is-unavailable", "429-is-too-many-requests", "duckduckgos-202-is-too-many-requests"],
)
def test_a_failing_provider_gives_an_error_block_in_a_200_answer(gw, providers, dev, kind, status, code):
    use(gw, providers, kind)
    providers.fail_with(status, kind)
    r = post(gw, dev.key, SEARCH)
    assert r.status_code == 200, r.text
    msg = r.json()
    assert [b["type"] for b in msg["content"]] == ["server_tool_use", "web_search_tool_result", "text"]
    assert of_type(msg, "web_search_tool_result")[0]["content"] == error_block(code)
    assert answer_text(msg) == f"Tool said: Web search failed: {code}"
    assert msg["stop_reason"] == "end_turn"
    assert providers.requests(kind), "the provider was asked"


def test_a_forced_tool_choice_forces_the_first_model_call_only(gw, providers, dev):
    use(gw, providers, "custom")
    # As Claude Code's WebSearch tool asks: no marker, the tool forced.
    msg = ask(
        gw,
        dev.key,
        f"Perform a web search for the query: {Q}",
        tool_choice={"type": "tool", "name": "web_search"},
    )
    assert [b["type"] for b in msg["content"]] == ["server_tool_use", "web_search_tool_result", "text"]
    assert msg["usage"]["server_tool_use"]["web_search_requests"] == 1
    assert providers.queries("custom") == [Q]
    first, second = [c["body"] for c in bedrock_calls(gw)]
    assert first["tool_choice"] == {"type": "tool", "name": "web_search"}
    assert (second.get("tool_choice") or {}).get("type") != "tool", second.get("tool_choice")


# ---------------------------------------------------------------- conversations


def test_a_second_turn_with_the_search_blocks_in_its_history_is_answered(gw, providers, dev):
    use(gw, providers, "custom")
    first_turn = [{"role": "user", "content": SEARCH}]
    first = ask(gw, dev.key, first_turn)
    history = first_turn + [
        {"role": "assistant", "content": first["content"]},
        {"role": "user", "content": "[double:searches=2] and what changed since?"},
    ]
    before = len(bedrock_calls(gw))
    second = ask(gw, dev.key, history)
    # The model saw the first search (one result in the history), so it searches once more.
    assert of_type(second, "server_tool_use")[0]["input"] == {"query": f"{Q} (2)"}
    assert answer_text(second) == "Tool said: " + results_text(f"{Q} (2)", providers.expected(f"{Q} (2)", "custom"))
    assert second["usage"]["server_tool_use"]["web_search_requests"] == 1
    # Bedrock got the first search as a tool_use and its tool_result, whose
    # text is what the model read the first time (from the sealed content).
    sent = bedrock_calls(gw)[before]["body"]["messages"]
    uses = [b for m in sent if m["role"] == "assistant" and isinstance(m["content"], list)
            for b in m["content"] if b.get("type") == "tool_use"]
    assert [u["name"] for u in uses] == ["web_search"] and uses[0]["input"] == {"query": Q}
    read = [b for m in sent if m["role"] == "user" and isinstance(m["content"], list)
            for b in m["content"] if b.get("type") == "tool_result"]
    assert len(read) == 1 and read[0]["tool_use_id"] == uses[0]["id"]
    text = read[0]["content"] if isinstance(read[0]["content"], str) else "".join(x["text"] for x in read[0]["content"])
    assert text == results_text(Q, providers.expected(Q, "custom"))
    assert not any(b.get("type") in ("server_tool_use", "web_search_tool_result")
                   for m in sent if isinstance(m["content"], list) for b in m["content"])


# ---------------------------------------------------------------- who searches with what


def test_with_search_disabled_the_tool_is_removed_and_the_model_answers_plainly(gw, providers, dev):
    use(gw, providers, "custom")
    gw.ccag("search", "mode", "disabled")
    settled(gw)
    assert gw.ccag_json("search", "show")["mode"] == "disabled"
    msg = ask(gw, dev.key, SEARCH)
    assert [b["type"] for b in msg["content"]] == ["text"]
    assert msg["content"][0]["text"] == "Hello from the Bedrock double."
    assert (msg["usage"].get("server_tool_use") or {}).get("web_search_requests", 0) == 0
    sent = bedrock_calls(gw)[-1]["body"]
    assert not any(t.get("name") == "web_search" for t in sent.get("tools", []))
    assert providers.requests() == []


def test_with_search_disabled_the_setup_script_tells_claude_code_to_deny_websearch(bins, double_url, tmp_path):
    port = free_port()
    f = start(double_url, tmp_path, dps=(), cp_env={"CCAG_HTTP_ADDR": f"127.0.0.1:{port}"})
    try:
        script = lambda: requests.get(f"http://127.0.0.1:{port}/setup", timeout=10).text
        assert "DENY_WEBSEARCH=''" in script()
        f.ccag("search", "mode", "disabled")
        assert "DENY_WEBSEARCH='1'" in script()
        f.ccag("search", "mode", "enabled")
        assert "DENY_WEBSEARCH=''" in script()
    finally:
        f.stop_all()


def test_a_users_own_provider_is_used_instead_of_the_organisations(gw, providers):
    use(gw, providers, "tavily")
    ada, bo = developer(gw, "ada"), developer(gw, "bo")
    use(gw, providers, "serper", "--user", ada.email)
    ask(gw, ada.key, "question from ada [double:search]")
    ask(gw, bo.key, "question from bo [double:search]")
    assert providers.queries("serper") == ["question from ada"]
    assert providers.queries("tavily") == ["question from bo"]


def test_unsetting_a_users_provider_falls_back_to_the_organisations(gw, providers, dev):
    use(gw, providers, "tavily")
    use(gw, providers, "serper", "--user", dev.email)
    gw.ccag("search", "unset", "--user", dev.email)
    settled(gw)
    ask(gw, dev.key, SEARCH)
    assert providers.queries("tavily") == [Q] and providers.requests("serper") == []


def test_global_mode_uses_the_organisations_provider_even_for_a_user_with_their_own(gw, providers, dev):
    use(gw, providers, "tavily")
    use(gw, providers, "serper", "--user", dev.email)
    gw.ccag("search", "mode", "global")
    settled(gw)
    assert gw.ccag_json("search", "show")["mode"] == "global"
    ask(gw, dev.key, SEARCH)
    assert providers.queries("tavily") == [Q]
    assert providers.requests("serper") == []


def test_each_search_is_priced_at_a_cent_on_top_of_the_tokens(gw, providers, dev):
    use(gw, providers, "custom")
    r = post(gw, dev.key, f"{Q} [double:searches=2]")
    assert r.status_code == 200, r.text
    usage = r.json()["usage"]
    assert wait_until(lambda: spend_record(gw, r.headers["request-id"]), timeout=15)
    rec = spend_record(gw, r.headers["request-id"])
    assert rec["web_search_requests"] == 2
    assert (rec["input_tokens"], rec["output_tokens"]) == (usage["input_tokens"], usage["output_tokens"])
    # Claude Haiku 4.5: $1 / $5 per million tokens, up to 10% more on a regional profile.
    tokens = usage["input_tokens"] + 5 * usage["output_tokens"]
    assert tokens <= rec["cost_micro_usd"] - 2 * 10_000 <= tokens * 11 // 10 + 1, (rec, usage)


# ---------------------------------------------------------------- the CLI


@pytest.mark.parametrize(
    "url,why",
    [
        ("https://169.254.169.254/search", "cloud metadata"),
        ("https://10.0.0.5/search", "private"),
        ("http://search.example.com/search", "plain http://"),
    ],
    ids=["metadata", "private", "plain-http"],
)
def test_a_provider_url_the_gateway_may_not_call_is_refused(gw, url, why):
    p = gw.ccag("search", "set", "--org", "--provider", "custom", "--url", url, check=False)
    assert p.returncode != 0
    assert why in p.stderr, p.stderr
    assert gw.ccag_json("search", "show")["org_provider"] is None


def test_search_show_says_a_key_is_set_but_never_shows_it(gw, providers, dev):
    org_key, user_key = providers.key_for("tavily"), providers.key_for("serper")
    outputs = [
        use(gw, providers, "tavily").stdout,
        use(gw, providers, "serper", "--user", dev.email).stdout,
        gw.ccag("--json", "search", "set", "--org", "--provider", "tavily", "--url", providers.url_for("tavily"),
                "--api-key-stdin", stdin=org_key + "\n").stdout,
    ]
    shown_json = gw.ccag("--json", "search", "show").stdout
    s = json.loads(shown_json)
    assert s["mode"] == "enabled"
    org = s["org_provider"]
    assert (org["kind"], org["url"], org["has_api_key"]) == ("tavily", providers.url_for("tavily"), True)
    users = {u["email"]: u for u in s["users"]}
    assert (users[dev.email]["kind"], users[dev.email]["has_api_key"]) == ("serper", True)
    outputs += [shown_json, gw.ccag("search", "show").stdout, gw.ccag("--json", "audit", "list").stdout]
    for out in outputs:
        assert org_key not in out and user_key not in out


def test_search_test_runs_one_search_with_the_organisations_provider(gw, providers):
    use(gw, providers, "tavily")
    r = gw.ccag_json("search", "test", "--query", Q)
    assert r["provider"] == "tavily"
    hits = providers.expected(Q, "tavily")
    assert [(x["url"], x["title"], x["snippet"]) for x in r["results"]] == [
        (h["url"], h["title"], h["snippet"]) for h in hits
    ]
    assert r["results"][0]["page_age"] == "2 days ago"
    assert providers.queries("tavily") == [Q], "the control plane itself searched"


def test_search_test_for_a_user_uses_the_provider_that_user_gets(gw, providers, dev):
    use(gw, providers, "tavily")
    use(gw, providers, "serper", "--user", dev.email)
    r = gw.ccag_json("search", "test", "--user", dev.email, "--query", Q)
    assert r["provider"] == "serper"
    assert [x["url"] for x in r["results"]] == [h["url"] for h in providers.expected(Q, "serper")]
    assert providers.queries("serper") == [Q] and providers.requests("tavily") == []


def test_search_test_fails_with_the_reason_when_the_provider_fails(gw, providers):
    use(gw, providers, "tavily")
    providers.fail_with(500, "tavily")
    p = gw.ccag("search", "test", "--query", Q, check=False)
    assert p.returncode == 1, "a failed search is not the control plane being unavailable"
    assert "500" in p.stderr and "tavily" in p.stderr, p.stderr


# ---------------------------------------------------------------- Claude Code


def test_claude_codes_websearch_gets_the_providers_results_through_the_gateway(gw, providers, dev, tmp_path):
    from test_claude_code import run_claude

    use(gw, providers, "custom")
    work = tmp_path / "work"
    work.mkdir()
    out = run_claude(
        SimpleNamespace(url=gw.url("a"), key=dev.key),
        work,
        "[double:websearch] search the web for rust release notes",
        "--allowedTools",
        "WebSearch",
    )
    assert out["is_error"] is False, out
    # Claude Code's WebSearch tool sent its own request with the server tool
    # (2.1.332 leaves tool_choice auto); the gateway ran it against the
    # provider double.
    got = providers.requests("custom")
    assert got, f"the provider was never asked; Claude Code said: {out.get('result')}"
    assert "rust release notes" in got[0].query
    title = providers.expected(got[0].query, "custom")[0]["title"]
    assert title in out["result"], out["result"]
    # Claude Code reports searches in `usage.server_tool_use` and, per model,
    # in `modelUsage.*.webSearchRequests`; the sub-request of its WebSearch
    # tool may be counted in the latter only. Where neither is reported, the
    # provider's request above is the proof that a search ran.
    reported = []
    stu = (out.get("usage") or {}).get("server_tool_use") or {}
    if "web_search_requests" in stu:
        reported.append(int(stu["web_search_requests"]))
    for m in (out.get("modelUsage") or {}).values():
        if isinstance(m, dict) and "webSearchRequests" in m:
            reported.append(int(m["webSearchRequests"]))
    if reported:
        assert max(reported) >= 1, out
