"""The data plane, driven by the real Anthropic Python SDK, in front of the
Bedrock double. Each test names one behaviour."""

import concurrent.futures
import http.client
import json
import urllib.parse

import anthropic
import pytest

from harness import double_get, double_post, make_key, snapshot, wait_for

USER = [{"role": "user", "content": "Say hello."}]
TOOLS = [
    {
        "name": "Bash",
        "description": "Run a shell command",
        "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}},
    }
]


@pytest.fixture
def client(gateway):
    return anthropic.Anthropic(base_url=gateway.url, api_key=gateway.key, max_retries=0)


def raw(gateway, method, path, body=None, headers=None):
    u = urllib.parse.urlparse(gateway.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    h = {"x-api-key": gateway.key, "content-type": "application/json"}
    h.update(headers or {})
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    conn.request(method, path, body=data, headers=h)
    r = conn.getresponse()
    payload = r.read()
    conn.close()
    return r, payload


def last_double_request(gateway):
    return double_get(gateway.double_url, "/_double/requests")[-1]


def test_plain_message_returns_the_answer_under_the_requested_model_name(client):
    msg = client.messages.create(model="claude-sonnet-4-5", max_tokens=100, messages=USER)
    assert msg.content[0].text == "Hello from the Bedrock double."
    assert msg.model == "claude-sonnet-4-5"
    assert msg.usage.input_tokens > 0 and msg.usage.output_tokens > 0


def test_streamed_message_arrives_as_anthropic_events(client):
    types = []
    with client.messages.stream(model="claude-sonnet-4-5", max_tokens=100, messages=USER) as s:
        for ev in s:
            types.append(ev.type)
        final = s.get_final_message()
    assert final.content[0].text == "Hello from the Bedrock double."
    assert final.model == "claude-sonnet-4-5"
    assert types[0] == "message_start" and types[-1] == "message_stop"
    assert "content_block_delta" in types


def test_tool_use_and_tool_result_round_trip(client):
    first = client.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=200,
        tools=TOOLS,
        messages=[{"role": "user", "content": "List files [double:tool=Bash]"}],
    )
    assert first.stop_reason == "tool_use"
    call = next(b for b in first.content if b.type == "tool_use")
    assert call.name == "Bash" and call.input == {"command": "echo hi"}
    second = client.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=200,
        tools=TOOLS,
        messages=[
            {"role": "user", "content": "List files [double:tool=Bash]"},
            {"role": "assistant", "content": [b.model_dump() for b in first.content]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "a.txt"}]},
        ],
    )
    assert second.stop_reason == "end_turn"
    assert second.content[0].text == "Tool said: a.txt"


def test_streamed_tool_use_assembles_its_input(client):
    with client.messages.stream(
        model="claude-opus-4-6",
        max_tokens=200,
        tools=TOOLS,
        messages=[{"role": "user", "content": "go [double:tool=Bash]"}],
    ) as s:
        final = s.get_final_message()
    call = next(b for b in final.content if b.type == "tool_use")
    assert call.input == {"command": "echo hi"}


def test_thinking_streams_with_its_signature(client):
    with client.messages.stream(
        model="claude-sonnet-4-5",
        max_tokens=4000,
        thinking={"type": "enabled", "budget_tokens": 2000},
        messages=USER,
    ) as s:
        final = s.get_final_message()
    thinking = final.content[0]
    assert thinking.type == "thinking"
    assert thinking.thinking and thinking.signature


def test_adaptive_thinking_is_converted_for_an_older_model(client, gateway):
    msg = client.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=32000,
        thinking={"type": "adaptive", "display": "omitted"},
        messages=USER,
        timeout=60,
    )
    assert msg.content[0].type == "thinking"
    sent = last_double_request(gateway)["body"]
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 31999}


def test_budgeted_thinking_is_converted_for_an_adaptive_only_model(client, gateway):
    msg = client.messages.create(
        model="claude-opus-5-5",
        max_tokens=8000,
        thinking={"type": "enabled", "budget_tokens": 4000},
        messages=USER,
    )
    assert msg.content[0].type == "thinking"
    assert last_double_request(gateway)["body"]["thinking"] == {"type": "adaptive"}


def test_body_reaches_bedrock_in_its_own_dialect(gateway):
    r, _ = raw(
        gateway,
        "POST",
        "/v1/messages?beta=true",
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 50,
            "messages": USER,
            "metadata": {"user_id": "{\"session_id\":\"x\"}"},
            "service_tier": "auto",
            "some_future_field": {"a": 1},
            "system": [{"type": "text", "text": "s", "cache_control": {"type": "ephemeral", "scope": "global"}}],
        },
        {"anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14", "anthropic-version": "2023-06-01"},
    )
    assert r.status == 200
    sent = last_double_request(gateway)
    body = sent["body"]
    assert sent["model"] == "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
    assert body["anthropic_version"] == "bedrock-2023-05-31"
    assert body["anthropic_beta"] == ["interleaved-thinking-2025-05-14"]
    for k in ("metadata", "service_tier", "some_future_field", "model", "stream"):
        assert k not in body
    assert body["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert "anthropic-beta" not in sent["headers"]


@pytest.mark.parametrize(
    "bedrock_error,status,error_type,exc",
    [
        ("ThrottlingException", 429, "rate_limit_error", anthropic.RateLimitError),
        ("ServiceQuotaExceededException", 429, "rate_limit_error", anthropic.RateLimitError),
        ("ValidationException", 400, "invalid_request_error", anthropic.BadRequestError),
        ("AccessDeniedException", 403, "permission_error", anthropic.PermissionDeniedError),
        ("ResourceNotFoundException", 404, "not_found_error", anthropic.NotFoundError),
        ("ModelNotReadyException", 529, "overloaded_error", anthropic.OverloadedError),
        ("ServiceUnavailableException", 529, "overloaded_error", anthropic.OverloadedError),
        ("ModelTimeoutException", 504, "timeout_error", anthropic.GatewayTimeoutError),
        ("ModelErrorException", 500, "api_error", anthropic.InternalServerError),
        ("InternalServerException", 500, "api_error", anthropic.InternalServerError),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_bedrock_errors_become_anthropic_errors(client, bedrock_error, status, error_type, exc, stream):
    with pytest.raises(exc) as e:
        content = f"fail [double:error={bedrock_error}]"
        if stream:
            with client.messages.stream(model="claude-sonnet-4-5", max_tokens=50, messages=[{"role": "user", "content": content}]) as s:
                s.get_final_message()
        else:
            client.messages.create(model="claude-sonnet-4-5", max_tokens=50, messages=[{"role": "user", "content": content}])
    assert e.value.status_code == status
    assert e.value.body["type"] == "error"
    assert e.value.body["error"]["type"] == error_type
    assert e.value.response.headers["request-id"].startswith("req_")
    if status == 429:
        assert int(e.value.response.headers["retry-after"]) >= 1


def test_exception_before_any_content_becomes_a_real_status(client):
    with pytest.raises(anthropic.RateLimitError):
        with client.messages.stream(
            model="claude-sonnet-4-5",
            max_tokens=50,
            messages=[{"role": "user", "content": "x [double:stream_error=throttlingException,after=0]"}],
        ) as s:
            s.get_final_message()


@pytest.mark.parametrize(
    "exception,error_type",
    [
        ("modelStreamErrorException", "overloaded_error"),
        ("throttlingException", "rate_limit_error"),
        ("internalServerException", "overloaded_error"),
        ("validationException", "invalid_request_error"),
        ("modelTimeoutException", "timeout_error"),
    ],
)
def test_exception_mid_stream_becomes_an_sse_error_event(client, exception, error_type):
    seen = []
    with pytest.raises(anthropic.APIStatusError) as e:
        with client.messages.stream(
            model="claude-sonnet-4-5",
            max_tokens=50,
            messages=[{"role": "user", "content": f"x [double:stream_error={exception},after=3]"}],
        ) as s:
            for ev in s:
                seen.append(ev.type)
    assert "message_start" in seen
    assert e.value.status_code == 200
    assert e.value.body["error"]["type"] == error_type


def test_context_overflow_wording_is_relayed_verbatim(client):
    with pytest.raises(anthropic.BadRequestError) as e:
        client.messages.create(model="claude-sonnet-4-5", max_tokens=50, messages=[{"role": "user", "content": "[double:too_long]"}])
    assert e.value.body["error"]["message"] == "Input is too long for requested model."


def test_unknown_key_is_refused_without_retry(gateway):
    c = anthropic.Anthropic(base_url=gateway.url, api_key="sk-wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as e:
        c.messages.create(model="claude-sonnet-4-5", max_tokens=10, messages=USER)
    assert e.value.response.headers["x-should-retry"] == "false"
    assert e.value.body["error"]["type"] == "authentication_error"


def test_missing_key_is_refused(gateway):
    r, body = raw(gateway, "POST", "/v1/messages", {"model": "m"}, {"x-api-key": ""})
    assert r.status == 401
    assert json.loads(body)["error"]["type"] == "authentication_error"


def test_both_key_headers_together_are_accepted(gateway):
    r, _ = raw(
        gateway,
        "POST",
        "/v1/messages",
        {"model": "claude-haiku-4-5", "max_tokens": 10, "messages": USER},
        {"authorization": f"Bearer {gateway.key}"},
    )
    assert r.status == 200


@pytest.mark.parametrize(
    "body,fragment",
    [
        (b"{not json", "not valid JSON"),
        (b"[1,2]", "JSON object"),
        (json.dumps({"max_tokens": 5, "messages": []}).encode(), "model"),
        (json.dumps({"model": "claude-sonnet-4-5", "messages": []}).encode(), "max_tokens"),
        (json.dumps({"model": "claude-sonnet-4-5", "max_tokens": 5}).encode(), "messages"),
        (json.dumps({"model": "claude-sonnet-4-5", "max_tokens": -1, "messages": []}).encode(), "max_tokens"),
        (json.dumps({"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": [], "stream": "yes"}).encode(), "stream"),
    ],
)
def test_malformed_requests_get_a_clear_invalid_request_error(gateway, body, fragment):
    r, payload = raw(gateway, "POST", "/v1/messages", body)
    err = json.loads(payload)
    assert r.status == 400
    assert err["error"]["type"] == "invalid_request_error"
    assert fragment in err["error"]["message"]
    assert err["request_id"] == r.getheader("request-id")


def test_oversized_body_is_refused_with_413(gateway):
    big = {"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": [{"role": "user", "content": "x" * 2_100_000}]}
    r, payload = raw(gateway, "POST", "/v1/messages", big)
    assert r.status == 413
    assert json.loads(payload)["error"]["type"] == "request_too_large"


def test_unknown_model_is_not_found(client):
    with pytest.raises(anthropic.NotFoundError) as e:
        client.messages.create(model="gpt-4o", max_tokens=10, messages=USER)
    assert "gpt-4o" in e.value.body["error"]["message"]


def test_one_million_context_beta_rejected_by_a_model_is_learnt_and_retried(client, gateway):
    double_post(gateway.double_url, "/_double/reset")
    msg = client.messages.create(model="claude-haiku-4-5[1m]", max_tokens=20, messages=USER)
    assert msg.model == "claude-haiku-4-5[1m]"
    reqs = double_get(gateway.double_url, "/_double/requests")
    assert reqs[0]["body"]["anthropic_beta"] == ["context-1m-2025-08-07"]
    assert "anthropic_beta" not in reqs[1]["body"]
    # Learnt: the next request does not repeat the refused beta.
    client.messages.create(model="claude-haiku-4-5[1m]", max_tokens=20, messages=USER)
    assert "anthropic_beta" not in double_get(gateway.double_url, "/_double/requests")[-1]["body"]
    assert len(double_get(gateway.double_url, "/_double/requests")) == 3


def test_count_tokens_goes_through_bedrock_count_tokens(client, gateway):
    n = client.messages.count_tokens(model="claude-sonnet-4-5", messages=USER)
    assert n.input_tokens > 0
    sent = last_double_request(gateway)
    assert sent["operation"] == "CountTokens"
    assert sent["model"] == "anthropic.claude-sonnet-4-5-20250929-v1:0"


def test_count_tokens_is_admitted_and_leaves_a_usage_record_without_tokens(client, gateway):
    resp = client.messages.with_raw_response.count_tokens(model="claude-sonnet-4-5", messages=USER)
    rid = resp.headers["request-id"]
    rec = wait_for(lambda: next((r for r in gateway.usage_records() if r["request_id"] == rid), None))
    assert rec["operation"] == "count_tokens" and rec["key_id"] == "k1"
    assert rec["status"] == 200 and rec["outcome"] == "ok"
    assert rec["model"] == "claude-sonnet-4-5"
    assert (rec["input_tokens"], rec["output_tokens"]) == (0, 0), "counting consumes no tokens"


def test_count_tokens_refused_by_bedrock_is_not_supported(gateway):
    # Bedrock does not know this (future) model, so CountTokens fails.
    r, payload = raw(gateway, "POST", "/v1/messages/count_tokens?beta=true", {"model": "claude-sonnet-9-9", "messages": USER})
    assert r.status == 501
    assert r.getheader("x-should-retry") == "false"
    assert json.loads(payload)["error"]["type"] == "not_supported"


def test_count_tokens_for_an_application_profile_is_not_supported(gateway):
    arn = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc"
    r, payload = raw(gateway, "POST", "/v1/messages/count_tokens", {"model": arn, "messages": USER})
    assert r.status == 501
    assert json.loads(payload)["error"]["type"] == "not_supported"


def test_models_are_listed_and_retrieved(client):
    ids = [m.id for m in client.models.list(limit=1000)]
    assert "claude-sonnet-4-5-20250929" in ids and "claude-opus-5-5" in ids
    assert client.models.retrieve("claude-sonnet-4-5").id == "claude-sonnet-4-5-20250929"
    with pytest.raises(anthropic.NotFoundError):
        client.models.retrieve("no-such-model")


def test_models_page_with_after_id(client):
    page = client.models.list(limit=2)
    assert len(page.data) == 2 and page.has_more
    nxt = client.models.list(limit=2, after_id=page.data[-1].id)
    assert nxt.data[0].id not in [m.id for m in page.data]


def test_probes_need_no_key(gateway):
    for method, path, status in [
        ("HEAD", "/api/hello", 200),
        ("GET", "/api/hello", 200),
        ("GET", "/health", 200),
        ("GET", "/ready", 200),
    ]:
        r, _ = raw(gateway, method, path, headers={"x-api-key": ""})
        assert r.status == status, path
        assert r.getheader("request-id", "").startswith("req_")


def test_unknown_path_and_wrong_method_answer_in_the_error_format(gateway):
    r, payload = raw(gateway, "GET", "/v2/whatever")
    assert r.status == 404 and json.loads(payload)["error"]["type"] == "not_found_error"
    r, payload = raw(gateway, "GET", "/v1/messages")
    assert r.status == 405 and json.loads(payload)["error"]["type"] == "invalid_request_error"


def test_64_concurrent_streams_all_complete(client):
    def one(i):
        with client.messages.stream(
            model="claude-sonnet-4-5",
            max_tokens=50,
            messages=[{"role": "user", "content": f"n{i} [double:inter_token_ms=20] [double:chunks=10]"}],
        ) as s:
            return "".join(s.text_stream)

    with concurrent.futures.ThreadPoolExecutor(64) as pool:
        texts = list(pool.map(one, range(64)))
    assert all(t == texts[0] and t for t in texts)


def test_silent_gaps_are_filled_with_pings(gateway):
    u = urllib.parse.urlparse(gateway.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 50,
        "stream": True,
        "messages": [{"role": "user", "content": "slow [double:inter_token_ms=700] [double:chunks=2]"}],
    }
    conn.request("POST", "/v1/messages", body=json.dumps(body), headers={"x-api-key": gateway.key, "content-type": "application/json"})
    r = conn.getresponse()
    assert r.status == 200
    assert r.getheader("content-type").startswith("text/event-stream")
    text = r.read().decode()
    assert "event: ping" in text
    assert "amazon-bedrock-invocationMetrics" not in text
    assert text.rstrip().endswith('data: {"type":"message_stop"}')


def test_client_disconnect_cancels_the_bedrock_call(gateway):
    before = double_get(gateway.double_url, "/_double/stats")["streams_cancelled"]
    u = urllib.parse.urlparse(gateway.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 50,
        "stream": True,
        "messages": [{"role": "user", "content": "long [double:inter_token_ms=100] [double:chunks=200]"}],
    }
    conn.request("POST", "/v1/messages", body=json.dumps(body), headers={"x-api-key": gateway.key, "content-type": "application/json"})
    r = conn.getresponse()
    assert r.status == 200
    r.read1(200)
    conn.sock.close()
    conn.close()
    assert wait_for(lambda: double_get(gateway.double_url, "/_double/stats")["streams_cancelled"] > before, timeout=10)


def test_every_request_leaves_a_usage_record(client, gateway):
    resp = client.messages.with_raw_response.create(model="claude-sonnet-4-5", max_tokens=50, messages=USER)
    rid = resp.headers["request-id"]
    msg = resp.parse()
    rec = wait_for(lambda: next((r for r in gateway.usage_records() if r["request_id"] == rid), None))
    assert rec["key_id"] == "k1" and rec["user_id"] == "user-k1"
    assert rec["model"] == "claude-sonnet-4-5"
    assert rec["bedrock_model"] == "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
    assert rec["input_tokens"] == msg.usage.input_tokens
    assert rec["output_tokens"] == msg.usage.output_tokens
    assert rec["status"] == 200 and rec["outcome"] == "ok"


def test_streamed_usage_comes_from_bedrock_metrics(client, gateway):
    with client.messages.with_streaming_response.create(
        model="claude-sonnet-4-5", max_tokens=50, messages=USER, stream=True
    ) as resp:
        rid = resp.headers["request-id"]
        for _ in resp.iter_lines():
            pass
    rec = wait_for(lambda: next((r for r in gateway.usage_records() if r["request_id"] == rid), None))
    assert rec["stream"] is True and rec["outcome"] == "ok"
    assert rec["output_tokens"] > 0 and rec["input_tokens"] > 0
    assert rec["ttft_ms"] is not None


def test_failed_request_leaves_a_usage_record_with_its_status(client, gateway):
    with pytest.raises(anthropic.RateLimitError) as e:
        client.messages.create(model="claude-sonnet-4-5", max_tokens=5, messages=[{"role": "user", "content": "[double:error=ThrottlingException]"}])
    rid = e.value.response.headers["request-id"]
    rec = wait_for(lambda: next((r for r in gateway.usage_records() if r["request_id"] == rid), None))
    assert rec["status"] == 429 and rec["outcome"] == "error"


def test_snapshot_file_changes_are_picked_up_and_bad_ones_ignored(gateway):
    new_key, new_hash = make_key()
    old_hash = __import__("hashlib").sha256(gateway.key.encode()).hexdigest()
    gateway.write_config(snapshot(2, [("k1", old_hash, "KEY_STATUS_ACTIVE"), ("k2", new_hash, "KEY_STATUS_ACTIVE")]))
    c = anthropic.Anthropic(base_url=gateway.url, api_key=new_key, max_retries=0)

    def works():
        try:
            c.models.list()
            return True
        except anthropic.AuthenticationError:
            return False

    assert wait_for(works, timeout=5)
    gateway.write_config({"version": "3", "keys": [{"id": "bad", "sha256": "nothex"}]})
    import time

    time.sleep(1.5)
    assert works(), "a rejected snapshot must not replace the good one"
    # Revocation through the file.
    gateway.write_config(snapshot(4, [("k1", old_hash, "KEY_STATUS_ACTIVE"), ("k2", new_hash, "KEY_STATUS_REVOKED")]))
    assert wait_for(lambda: not works(), timeout=5)
