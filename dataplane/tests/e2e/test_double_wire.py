"""The Bedrock double against a real AWS client (boto3/botocore).

These prove the double speaks Bedrock's wire protocol: SigV4 as boto3 signs
it, restJson1 errors as botocore parses them, and event-stream frames as
botocore.eventstream decodes them (CRCs, header types, lengths).
"""

import json
import time
import urllib.request

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.eventstream import EventStreamBuffer
from botocore.exceptions import ClientError, EventStreamError

from conftest import DOUBLE_ACCESS_KEY_ID, DOUBLE_SECRET_ACCESS_KEY, FIXTURES

PROFILE = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
FOUNDATION = "anthropic.claude-sonnet-4-5-20250929-v1:0"
REPLY = "Hello from the Bedrock double."


def client(url, secret=DOUBLE_SECRET_ACCESS_KEY, key=DOUBLE_ACCESS_KEY_ID):
    return boto3.client(
        "bedrock-runtime",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
    )


def body(text="hi", **extra):
    b = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 256,
        "messages": [{"role": "user", "content": text}],
    }
    b.update(extra)
    return b


def get_json(url, path, method="GET"):
    req = urllib.request.Request(url + path, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def stream_events(url, model=PROFILE, **kw):
    resp = client(url).invoke_model_with_response_stream(
        modelId=model, body=json.dumps(body(**kw))
    )
    return [json.loads(ev["chunk"]["bytes"]) for ev in resp["body"]]


def test_invoke_model_returns_message(double_url):
    resp = client(double_url).invoke_model(modelId=PROFILE, body=json.dumps(body("hello")))
    msg = json.loads(resp["body"].read())
    assert msg["type"] == "message"
    assert msg["id"].startswith("msg_bdrk_")
    assert msg["model"] == "claude-sonnet-4-5-20250929"
    assert msg["content"] == [{"type": "text", "text": REPLY}]
    assert msg["stop_reason"] == "end_turn"
    assert msg["usage"]["input_tokens"] == 2  # ceil(len("hello") / 4)
    # boto3 sent the label percent-encoded (v1%3A0); the double decoded it.
    log = get_json(double_url, "/_double/requests")
    assert log[-1]["operation"] == "InvokeModel"
    assert log[-1]["model"] == PROFILE
    assert log[-1]["body"]["max_tokens"] == 256
    assert "authorization" in log[-1]["headers"]


def test_stream_yields_documented_sequence_with_metrics(double_url):
    events = stream_events(double_url, text="hello there")
    assert [e["type"] for e in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert "".join(e["delta"]["text"] for e in events if e["type"] == "content_block_delta") == REPLY
    assert events[0]["message"]["id"].startswith("msg_bdrk_")
    assert events[6]["delta"]["stop_reason"] == "end_turn"
    metrics = events[-1]["amazon-bedrock-invocationMetrics"]
    assert metrics["inputTokenCount"] == 3
    assert metrics["outputTokenCount"] == events[6]["usage"]["output_tokens"]
    assert {"invocationLatency", "firstByteLatency"} <= metrics.keys()
    stats = get_json(double_url, "/_double/stats")
    assert stats["streams_started"] == 1


def test_stream_with_adaptive_thinking_and_tool_directive(double_url):
    events = stream_events(
        double_url,
        model="us.anthropic.claude-opus-4-6-v1",
        text="[double:tool=Bash]",
        thinking={"type": "adaptive"},
    )
    kinds = [(e["type"], e.get("delta", {}).get("type") or e.get("content_block", {}).get("type")) for e in events]
    assert kinds[1:5] == [
        ("content_block_start", "thinking"),
        ("content_block_delta", "thinking_delta"),
        ("content_block_delta", "signature_delta"),
        ("content_block_stop", None),
    ]
    assert kinds[5] == ("content_block_start", "tool_use")
    assert events[5]["content_block"]["name"] == "Bash"
    partial = "".join(e["delta"]["partial_json"] for e in events if e.get("delta", {}).get("type") == "input_json_delta")
    assert json.loads(partial) == {"command": "echo hi"}
    assert events[-2]["delta"]["stop_reason"] == "tool_use"


def test_stream_error_directive_raises_event_stream_error(double_url):
    resp = client(double_url).invoke_model_with_response_stream(
        modelId=PROFILE,
        body=json.dumps(body("[double:stream_error=throttlingException,after=2]")),
    )
    seen = []
    with pytest.raises(EventStreamError) as exc:
        for ev in resp["body"]:
            seen.append(json.loads(ev["chunk"]["bytes"])["type"])
    assert seen == ["message_start", "content_block_start"]
    assert exc.value.response["Error"]["Code"] == "throttlingException"


def test_error_directive_raises_client_error(double_url):
    with pytest.raises(ClientError) as exc:
        client(double_url).invoke_model(
            modelId=PROFILE, body=json.dumps(body("[double:error=ThrottlingException]"))
        )
    err = exc.value.response
    assert err["Error"]["Code"] == "ThrottlingException"
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert err["Error"]["Message"] == "Too many requests, please wait before trying again."


def test_wrong_secret_is_an_auth_error(double_url):
    with pytest.raises(ClientError) as exc:
        client(double_url, secret="not-the-secret").invoke_model(
            modelId=PROFILE, body=json.dumps(body())
        )
    assert exc.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    with pytest.raises(ClientError) as exc:
        client(double_url, key="AKIDSOMEONEELSE").invoke_model(modelId=PROFILE, body=json.dumps(body()))
    assert exc.value.response["Error"]["Code"] == "UnrecognizedClientException"
    assert get_json(double_url, "/_double/stats")["auth_failures"] == 2


def test_raw_colon_path_signed_like_claude_code(double_url):
    # Claude Code sends the label with a raw ':'; its canonical URI encodes it once.
    url = f"{double_url}/model/{PROFILE}/invoke"
    data = json.dumps(body()).encode()
    req = AWSRequest(method="POST", url=url, data=data, headers={"content-type": "application/json"})
    SigV4Auth(Credentials(DOUBLE_ACCESS_KEY_ID, DOUBLE_SECRET_ACCESS_KEY), "bedrock", "us-east-1").add_auth(req)
    http_req = urllib.request.Request(url, data=data, method="POST", headers=dict(req.headers.items()))
    with urllib.request.urlopen(http_req, timeout=10) as r:
        assert json.loads(r.read())["content"][0]["text"] == REPLY
    assert get_json(double_url, "/_double/requests")[-1]["model"] == PROFILE


def test_validation_and_model_errors(double_url):
    c = client(double_url)
    with pytest.raises(ClientError) as exc:
        c.invoke_model(modelId=PROFILE, body=json.dumps(body(metadata={"user_id": "u"})))
    assert exc.value.response["Error"]["Code"] == "ValidationException"
    assert exc.value.response["Error"]["Message"] == "metadata: Extra inputs are not permitted"
    with pytest.raises(ClientError) as exc:
        c.invoke_model(modelId=FOUNDATION, body=json.dumps(body()))
    assert "on-demand throughput isn't supported" in exc.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as exc:
        c.invoke_model(
            modelId="us.anthropic.claude-haiku-4-5-20251001-v1:0",
            body=json.dumps(body(anthropic_beta=["context-1m-2025-08-07"])),
        )
    assert exc.value.response["Error"]["Message"] == "invalid beta flag: context-1m-2025-08-07"


def test_count_tokens_with_foundation_id(double_url):
    c = client(double_url)
    resp = c.count_tokens(
        modelId=FOUNDATION, input={"invokeModel": {"body": json.dumps(body("abcdefghij"))}}
    )
    assert resp["inputTokens"] == 3
    with pytest.raises(ClientError) as exc:
        c.count_tokens(modelId=PROFILE, input={"invokeModel": {"body": json.dumps(body())}})
    assert exc.value.response["Error"]["Message"] == "The provided model identifier is invalid."
    assert get_json(double_url, "/_double/stats")["count_tokens"] == 2


def test_closing_a_stream_is_counted_as_cancelled(double_url):
    resp = client(double_url).invoke_model_with_response_stream(
        modelId=PROFILE, body=json.dumps(body("[double:chunks=30] [double:inter_token_ms=50]"))
    )
    stream = resp["body"]
    first = next(iter(stream))
    assert json.loads(first["chunk"]["bytes"])["type"] == "message_start"
    stream.close()
    deadline = time.monotonic() + 5
    stats = get_json(double_url, "/_double/stats")
    while stats["streams_cancelled"] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
        stats = get_json(double_url, "/_double/stats")
    assert stats["streams_cancelled"] == 1
    assert stats["streams_completed"] == 0


def test_reset_clears_stats_and_log(double_url):
    client(double_url).invoke_model(modelId=PROFILE, body=json.dumps(body()))
    assert get_json(double_url, "/_double/stats")["invocations"] == 1
    get_json(double_url, "/_double/reset", method="POST")
    assert get_json(double_url, "/_double/stats")["requests"] == 0
    assert get_json(double_url, "/_double/requests") == []


@pytest.mark.parametrize(
    "name,length,prelude,crc",
    [
        ("ai21_bedrock_frame_384.bin", 384, "000001800000004bfe962446", 0x35CAA798),
        ("ai21_bedrock_frame_267.bin", 267, "0000010b0000004b38a0a5c5", 0x1106313F),
    ],
)
def test_golden_frames_decode_with_botocore(name, length, prelude, crc):
    data = (FIXTURES / name).read_bytes()
    assert len(data) == length
    assert data[:12].hex() == prelude
    buf = EventStreamBuffer()
    buf.add_data(data + data)
    messages = list(buf)
    assert len(messages) == 2
    msg = messages[0]
    assert msg.crc == crc
    assert msg.headers == {
        ":event-type": "chunk",
        ":content-type": "application/json",
        ":message-type": "event",
    }
    payload = json.loads(msg.payload)
    assert set(payload) == {"bytes", "p"}
    assert payload["p"].isalpha()
