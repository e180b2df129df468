"""Notifications end to end: the real control plane delivering to a
loopback webhook receiver that verifies every signature with the
`standardwebhooks` package, and to SNS and EventBridge played by
`moto_server` with its SigV4 checking on, an SNS topic subscribed to an SQS
queue and an EventBridge rule targeting another, so the tests read what was
really delivered."""

import base64
import datetime
import json
import os
import pathlib
import secrets
import ssl
import sys
import subprocess
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import anthropic
import boto3
import pytest
from botocore.exceptions import ClientError
from standardwebhooks.webhooks import Webhook

from conftest import stop_process
from fleet import client, free_port, make_certs, wait_until
from test_budgets import start
from test_ha import Replicas, psql

HAIKU = "claude-haiku-4-5"


# ---------------------------------------------------------------- components


@pytest.fixture(scope="session")
def aws():
    """moto_server (see moto_server.py) as SNS, EventBridge, SQS and STS, requiring SigV4 from an IAM key."""
    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="moto-", suffix=".log", delete=False)
    # Auth mode: the first three calls go through unsigned (they make the
    # IAM key); every later call must be signed with it.
    env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT="3")
    wrapper = str(pathlib.Path(__file__).with_name("moto_server.py"))
    proc = subprocess.Popen(
        [sys.executable, wrapper, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log, env=env
    )
    url = f"http://127.0.0.1:{port}"

    def up():
        try:
            return urllib.request.urlopen(url + "/moto-api/", timeout=1).status == 200
        except OSError:
            return False

    assert wait_until(up, timeout=30), "moto_server did not start"
    iam = boto3.client(
        "iam", endpoint_url=url, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    iam.create_user(UserName="ccag")
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    iam.put_user_policy(UserName="ccag", PolicyName="all", PolicyDocument=json.dumps(policy))
    k = iam.create_access_key(UserName="ccag")["AccessKey"]
    creds = {"aws_access_key_id": k["AccessKeyId"], "aws_secret_access_key": k["SecretAccessKey"]}
    bad = boto3.client(
        "sns",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id=k["AccessKeyId"],
        aws_secret_access_key="not-the-secret",
    )
    with pytest.raises(ClientError) as refused:
        bad.list_topics()
    assert refused.value.response["Error"]["Code"] == "SignatureDoesNotMatch"

    def make(service):
        return boto3.client(service, endpoint_url=url, region_name="us-east-1", **creds)

    yield SimpleNamespace(url=url, creds=creds, client=make)
    proc.terminate()
    proc.wait(timeout=10)


def cp_env(aws, **extra):
    env = {
        "CCAG_OUTBOUND_ALLOW_CIDRS": "127.0.0.1/32",
        "CCAG_NOTIFY_BACKOFF_BASE_MS": "200",
        "AWS_ENDPOINT_URL_SNS": aws.url,
        "AWS_ENDPOINT_URL_EVENTBRIDGE": aws.url,
        "AWS_ENDPOINT_URL_STS": aws.url,
        "AWS_ACCESS_KEY_ID": aws.creds["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": aws.creds["aws_secret_access_key"],
        "AWS_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": "/nonexistent",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
    }
    env.update({k: str(v) for k, v in extra.items()})
    return env


class Receiver:
    """A webhook receiver on loopback that checks each request's Standard
    Webhooks signature against every secret in `secrets` and keeps what
    came; `fail_with` makes it answer that status instead."""

    def __init__(self, tls=None):
        """`tls`: (certificate, key) PEM paths to serve HTTPS."""
        self.secrets = []
        self.got = []
        self.fail_with = None
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                if outer.fail_with:
                    self.send_response(outer.fail_with)
                    self.end_headers()
                    self.wfile.write(b"not now")
                    return
                verified = {}
                for s in outer.secrets:
                    try:
                        Webhook(s).verify(body, headers)
                        verified[s] = True
                    except Exception:
                        verified[s] = False
                with outer.lock:
                    outer.got.append(SimpleNamespace(headers=headers, event=json.loads(body), verified=verified))
                ok = outer.secrets and all(verified.values())
                self.send_response(200 if ok else 400)
                self.end_headers()
                self.wfile.write(b"thanks" if ok else b"bad signature")

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        scheme = "http"
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
            scheme = "https"
        self.port = self.server.server_address[1]
        self.url = f"{scheme}://127.0.0.1:{self.port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self, type_=None):
        with self.lock:
            return [g.event for g in self.got if type_ is None or g.event["type"] == type_]

    def close(self):
        self.server.shutdown()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def sns_sink(aws):
    """An SNS topic delivering (raw) into an SQS queue: (topic ARN, queue URL)."""
    sqs, sns = aws.client("sqs"), aws.client("sns")
    name = "ccag-" + secrets.token_hex(4)
    q = sqs.create_queue(QueueName=name)["QueueUrl"]
    qarn = sqs.get_queue_attributes(QueueUrl=q, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    topic = sns.create_topic(Name=name)["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=qarn, Attributes={"RawMessageDelivery": "true"})
    return topic, q


def eventbridge_sink(aws):
    """An event bus whose rule (source "ccag") targets an SQS queue: (bus ARN, queue URL)."""
    sqs, ev = aws.client("sqs"), aws.client("events")
    name = "ccag-" + secrets.token_hex(4)
    q = sqs.create_queue(QueueName=name)["QueueUrl"]
    qarn = sqs.get_queue_attributes(QueueUrl=q, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    bus = ev.create_event_bus(Name=name)["EventBusArn"]
    ev.put_rule(Name=name, EventBusName=name, EventPattern=json.dumps({"source": ["ccag"]}))
    ev.put_targets(Rule=name, EventBusName=name, Targets=[{"Id": "q", "Arn": qarn}])
    return bus, q


def drain_queue(aws, q, want, timeout=20.0):
    """Messages from `q` until `want` came and a further second brought no more."""
    sqs = aws.client("sqs")
    out = []
    deadline = time.monotonic() + timeout
    quiet_since = None
    while time.monotonic() < deadline:
        r = sqs.receive_message(QueueUrl=q, MaxNumberOfMessages=10, WaitTimeSeconds=1, MessageAttributeNames=["All"])
        msgs = r.get("Messages", [])
        for m in msgs:
            out.append(m)
            sqs.delete_message(QueueUrl=q, ReceiptHandle=m["ReceiptHandle"])
        if len(out) >= want:
            if msgs:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since > 1.0:
                break
    return out


@pytest.fixture
def gw(bins, shared_double_url, tmp_path, aws):
    f = start(shared_double_url, tmp_path, dps=(), cp_env=cp_env(aws))
    yield f
    f.stop_all()


def webhook(f, r, *args):
    """A webhook destination for receiver `r`; its secret goes to `r`."""
    d = f.ccag_json("notifications", "create", "--webhook", r.url, *args)
    assert d["secret"].startswith("whsec_")
    r.secrets.append(d["secret"])
    return d


def once_each(events):
    ids = [e["id"] for e in events]
    assert len(ids) == len(set(ids)), f"duplicates among {ids}"


# ---------------------------------------------------------------- tests


def test_a_budget_crossing_reaches_a_webhook_an_sns_topic_and_an_eventbridge_bus_once_each(
    bins, shared_double_url, tmp_path, aws, receiver
):
    f = start(shared_double_url, tmp_path, cp_env=cp_env(aws))
    try:
        topic, sns_q = sns_sink(aws)
        bus, eb_q = eventbridge_sink(aws)
        webhook(f, receiver, "--events", "budget")
        f.ccag_json("notifications", "create", "--sns-topic", topic, "--events", "budget")
        f.ccag_json("notifications", "create", "--eventbridge-bus", bus, "--events", "budget")
        email = f"ada-{secrets.token_hex(3)}@example.com"
        user = f.ccag_json("users", "create", "--email", email)
        key = f.ccag_json("keys", "create", "--name", "ada", "--user", email)
        f.ccag("budgets", "set", "--user", email, "--period", "daily", "--limit-usd", "0.01")
        c = client(f.url("a"), key["key"])
        assert wait_until(lambda: _works(c), timeout=10)
        # About $0.0085 each: the first passes 80% (warning), the second 100% (blocked).
        for _ in range(2):
            c.messages.create(
                model=HAIKU, max_tokens=4096, messages=[{"role": "user", "content": "[double:reply_chars=6800] go"}]
            )
        assert wait_until(lambda: len(receiver.events()) >= 2, timeout=20), receiver.events()
        time.sleep(1.5)
        got = receiver.events()
        assert sorted(e["type"] for e in got) == ["budget.blocked", "budget.warning"]
        once_each(got)
        warning = next(e for e in got if e["type"] == "budget.warning")
        assert set(warning) == {"id", "type", "version", "occurred_at", "severity", "subject", "detail"}
        assert warning["id"].startswith("evt_") and warning["version"] == "1"
        assert warning["severity"] == "warning"
        assert warning["subject"] == {"kind": "user", "id": user["id"], "email": email}
        d = warning["detail"]
        assert (d["period"], d["threshold_percent"], d["action"], d["limit_micro_usd"]) == ("daily", 80, "notify", 10_000)
        assert 80 <= d["percent"] < 100 and d["spend_micro_usd"] == round(d["spend_usd"] * 1e6)
        blocked = next(e for e in got if e["type"] == "budget.blocked")
        assert blocked["severity"] == "critical" and blocked["detail"]["threshold_percent"] == 100
        hdr = next(g.headers for g in receiver.got if g.event["id"] == warning["id"])
        assert hdr["webhook-id"] == warning["id"]

        sns_msgs = drain_queue(aws, sns_q, 2)
        by_type = {m["MessageAttributes"]["type"]["StringValue"]: json.loads(m["Body"]) for m in sns_msgs}
        assert len(sns_msgs) == 2 and set(by_type) == {"budget.warning", "budget.blocked"}
        assert by_type["budget.warning"] == warning, "SNS carries the same event, id and all"
        assert sns_msgs[0]["MessageAttributes"]["severity"]["StringValue"] in ("warning", "critical")

        eb_msgs = drain_queue(aws, eb_q, 2)
        envelopes = [json.loads(m["Body"]) for m in eb_msgs]
        assert len(envelopes) == 2
        assert {e["detail-type"] for e in envelopes} == {"budget.warning", "budget.blocked"}
        assert all(e["source"] == "ccag" for e in envelopes)
        assert next(e for e in envelopes if e["detail-type"] == "budget.warning")["detail"] == warning
    finally:
        f.stop_all()


def _works(c):
    try:
        c.models.list()
        return True
    except anthropic.APIError:
        return False


def test_a_destination_down_for_a_while_gets_each_event_once_when_it_is_back_and_others_are_not_held_up(
    gw, receiver
):
    healthy = Receiver()
    try:
        webhook(gw, receiver, "--name", "flaky", "--events", "key.created")
        webhook(gw, healthy, "--name", "steady", "--events", "key.created")
        receiver.fail_with = 503
        me = gw.ccag_json("whoami")["user_id"]
        made = [gw.ccag_json("keys", "create", "--name", f"k{i}", "--user", me)["id"] for i in range(3)]
        assert wait_until(lambda: len(healthy.events()) == 3, timeout=10), "the healthy destination was held up"
        failed = lambda: gw.ccag_json("notifications", "deliveries", "--destination", "flaky", "--failed")  # noqa: E731
        assert wait_until(lambda: any(d["attempts"] >= 2 for d in failed()), timeout=15)
        assert receiver.events() == []
        receiver.fail_with = None
        assert wait_until(lambda: len(receiver.events()) == 3, timeout=20), receiver.events()
        time.sleep(2)
        got = receiver.events()
        once_each(got)
        assert sorted(e["subject"]["id"] for e in got) == sorted(made)
        log = gw.ccag_json("notifications", "deliveries", "--destination", "flaky")
        assert len(log) == 3 and all(d["state"] == "delivered" for d in log)
        assert max(d["attempts"] for d in log) >= 2
        assert gw.ccag_json("notifications", "deliveries", "--failed") == []
    finally:
        healthy.close()


def test_a_destination_failing_past_the_retry_window_is_marked_dead_and_reported_to_the_others(
    bins, shared_double_url, tmp_path, aws, receiver
):
    env = cp_env(aws, CCAG_NOTIFY_RETRY_WINDOW_SECS=3, CCAG_NOTIFY_FAILING_AFTER_SECS=2)
    f = start(shared_double_url, tmp_path, dps=(), cp_env=env)
    watcher = Receiver()
    try:
        dead = webhook(f, receiver, "--name", "dead", "--events", "key")
        webhook(f, watcher, "--name", "watcher", "--events", "notification")
        receiver.fail_with = 500
        me = f.ccag_json("whoami")["user_id"]
        f.ccag_json("keys", "create", "--name", "doomed", "--user", me)

        def dead_ones():
            return [d for d in f.ccag_json("notifications", "deliveries", "--failed") if d["state"] == "dead"]

        assert wait_until(lambda: dead_ones(), timeout=20)
        d = dead_ones()[0]
        assert d["destination"] == "dead" and d["last_status"] == 500 and "500" in d["last_error"]
        assert d["event_type"] == "key.created" and d["attempts"] >= 2
        assert wait_until(lambda: watcher.events("notification.destination_failing"), timeout=20)
        report = watcher.events("notification.destination_failing")[0]
        assert report["subject"]["id"] == dead["id"] and report["severity"] == "high"
        assert "500" in report["detail"]["last_error"]
        status = f.ccag_json("status")
        assert [x["id"] for x in status["failing_destinations"]] == [dead["id"]]
        assert status["dead_deliveries"] >= 1
        text = f.ccag("status").stdout
        assert "failing_destinations" in text and "dead" in text

        receiver.fail_with = None
        f.ccag_json("keys", "create", "--name", "fine", "--user", me)
        assert wait_until(lambda: receiver.events("key.created"), timeout=20)
        assert wait_until(lambda: watcher.events("notification.destination_recovered"), timeout=10)
        assert f.ccag_json("status")["failing_destinations"] == []
        assert len(receiver.events("key.created")) == 1, "the dead delivery is not sent after all"
    finally:
        watcher.close()
        f.stop_all()


@pytest.mark.parametrize(
    "url,why",
    [
        ("https://169.254.169.254/latest/meta-data/", "cloud metadata"),
        ("https://10.0.0.7/hook", "private"),
        ("https://192.168.1.20/hook", "private"),
        ("https://[fd00:ec2::254]/", "cloud metadata"),
        ("http://hooks.example.com/", "plain http:// is allowed only to a loopback host"),
        ("https://user:pw@hooks.example.com/", "credentials in the URL"),
    ],
)
def test_a_webhook_aimed_at_a_private_or_metadata_address_is_refused_at_creation(gw, url, why):
    p = gw.ccag("notifications", "create", "--webhook", url, check=False)
    assert p.returncode != 0
    assert why in p.stderr, p.stderr
    assert gw.ccag_json("notifications", "list") == []


def test_an_https_webhook_is_checked_against_the_trust_store_by_its_host_name(
    bins, shared_double_url, tmp_path, aws, receiver
):
    certs = tmp_path / "certs"
    certs.mkdir()
    make_certs(certs)
    secure = Receiver(tls=(str(certs / "server.pem"), str(certs / "server.key")))
    env = cp_env(aws, SSL_CERT_FILE=certs / "ca.pem", CCAG_OUTBOUND_ALLOW_CIDRS="127.0.0.1/32,::1/128")
    f = start(shared_double_url, tmp_path, dps=(), cp_env=env)
    try:
        # By name: resolved, checked, pinned, and the certificate matched to "localhost".
        d = f.ccag_json("notifications", "create", "--webhook", f"https://localhost:{secure.port}/hook", "--name", "tls")
        secure.secrets.append(d["secret"])
        r = f.ccag_json("notifications", "test", "tls")
        assert r["ok"] and r["status"] == 200, r
        assert all(secure.got[0].verified.values())
        # TLS to a server that speaks plain HTTP fails the handshake, clearly.
        f.ccag_json("notifications", "create", "--webhook", f"https://127.0.0.1:{receiver.port}/hook", "--name", "plain")
        p = f.ccag("notifications", "test", "plain", check=False)
        assert p.returncode != 0 and "TLS" in p.stderr, p.stderr
    finally:
        secure.close()
        f.stop_all()


def test_loopback_is_refused_unless_the_outbound_allow_list_names_it(bins, shared_double_url, tmp_path, aws, receiver):
    env = cp_env(aws)
    env.pop("CCAG_OUTBOUND_ALLOW_CIDRS")
    f = start(shared_double_url, tmp_path, dps=(), cp_env=env)
    try:
        p = f.ccag("notifications", "create", "--webhook", receiver.url, check=False)
        assert p.returncode != 0 and "loopback" in p.stderr and "CCAG_OUTBOUND_ALLOW_CIDRS" in p.stderr, p.stderr
    finally:
        f.stop_all()


def test_the_test_command_sends_a_signed_synthetic_event_and_shows_the_answer(gw, aws, receiver):
    d = webhook(gw, receiver, "--name", "hook")
    r = gw.ccag_json("notifications", "test", "hook")
    assert r["ok"] is True and r["status"] == 200 and "thanks" in r["answer"]
    got = receiver.events("notification.test")
    assert len(got) == 1 and got[0]["id"] == r["event_id"] and got[0]["subject"]["id"] == d["id"]
    assert all(receiver.got[0].verified.values())

    topic, q = sns_sink(aws)
    s = gw.ccag_json("notifications", "create", "--sns-topic", topic, "--name", "topic")
    r = gw.ccag_json("notifications", "test", "topic")
    assert r["ok"] is True and r["answer"].startswith("MessageId "), r
    msgs = drain_queue(aws, q, 1)
    assert json.loads(msgs[0]["Body"])["id"] == r["event_id"]
    assert "secret" not in s, "only webhooks have a signing secret"

    gw.ccag_json("notifications", "create", "--sns-topic", "arn:aws:sns:us-east-1:123456789012:missing", "--name", "gone")
    p = gw.ccag("notifications", "test", "gone", check=False)
    assert p.returncode != 0 and "NotFound" in p.stderr, p.stderr

    receiver.fail_with = 418
    p = gw.ccag("notifications", "test", "hook", check=False)
    assert p.returncode != 0 and "answered 418" in p.stderr and "not now" in p.stderr, p.stderr
    audit = gw.ccag_json("audit", "list")
    assert any(a.get("action") == "notification.test" for a in (audit if isinstance(audit, list) else audit["entries"]))


def test_an_aws_call_with_the_wrong_credentials_fails_with_the_services_reason(
    bins, shared_double_url, tmp_path, aws
):
    env = cp_env(aws, AWS_SECRET_ACCESS_KEY="not-the-secret")
    f = start(shared_double_url, tmp_path, dps=(), cp_env=env)
    try:
        topic, _ = sns_sink(aws)
        bus, _ = eventbridge_sink(aws)
        f.ccag_json("notifications", "create", "--sns-topic", topic, "--name", "t")
        f.ccag_json("notifications", "create", "--eventbridge-bus", bus, "--name", "b")
        for name in ("t", "b"):
            p = f.ccag("notifications", "test", name, check=False)
            assert p.returncode != 0 and "SignatureDoesNotMatch" in p.stderr, p.stderr
    finally:
        f.stop_all()


def test_sns_and_eventbridge_targets_are_checked_at_creation(gw):
    for args, why in [
        (("--sns-topic", "arn:aws:sqs:us-east-1:123456789012:q"), "not an SNS topic ARN"),
        (("--eventbridge-bus", "arn:aws:events:us-east-1:123456789012:rule/r"), "not an EventBridge bus"),
        (("--sns-topic", "arn:aws:sns:us-east-1:123456789012:t", "--events", "budgets"), 'unknown event "budgets"'),
        (("--webhook", "https://93.184.216.34/", "--role-arn", "arn:aws:iam::123456789012:role/r"), "only SNS"),
    ]:
        p = gw.ccag("notifications", "create", *args, check=False)
        assert p.returncode != 0 and why in p.stderr, (args, p.stderr)


def test_a_rotated_secret_signs_beside_the_old_one_during_the_overlap(gw, receiver):
    d = webhook(gw, receiver, "--name", "hook")
    old = d["secret"]
    r = gw.ccag_json("notifications", "rotate-secret", "hook", "--overlap-hours", "2")
    new = r["secret"]
    assert new.startswith("whsec_") and new != old and r["previous_secret_until"]
    receiver.secrets = [old, new]
    gw.ccag_json("notifications", "test", "hook")
    g = receiver.got[-1]
    assert g.verified == {old: True, new: True}, "both secrets verify during the overlap"
    assert len(g.headers["webhook-signature"].split(" ")) == 2
    assert "secret" not in gw.ccag_json("notifications", "list")[0]


def test_key_and_user_changes_are_notified_with_who_did_them(gw, receiver):
    webhook(gw, receiver, "--events", "key,user")
    email = f"bo-{secrets.token_hex(3)}@example.com"
    u = gw.ccag_json("users", "create", "--email", email)
    k = gw.ccag_json("keys", "create", "--name", "bo", "--user", email)
    gw.ccag("keys", "revoke", k["id"])
    gw.ccag("users", "update", u["id"], "--status", "disabled")
    want = ["user.created", "key.created", "key.revoked", "user.deactivated"]
    assert wait_until(lambda: len(receiver.events()) >= 4, timeout=15), receiver.events()
    got = {e["type"]: e for e in receiver.events()}
    assert sorted(got) == sorted(want)
    assert got["user.created"]["subject"]["email"] == email
    assert got["key.created"]["subject"]["prefix"] == k["prefix"] and got["key.created"]["detail"]["user_email"] == email
    assert got["key.revoked"]["detail"]["by"] == "admin" or got["key.revoked"]["detail"]["by"]
    assert got["user.deactivated"]["subject"]["id"] == u["id"]


def test_a_key_expiring_within_a_week_is_notified_once(gw, receiver):
    webhook(gw, receiver, "--events", "key.expiring,key.expired")
    me = gw.ccag_json("whoami")["user_id"]
    k = gw.ccag_json("keys", "create", "--name", "short", "--user", me, "--ttl-days", "3")
    assert wait_until(lambda: receiver.events("key.expiring"), timeout=20)
    time.sleep(6)  # another check round: nothing new
    got = receiver.events()
    assert len(got) == 1 and got[0]["subject"]["id"] == k["id"] and got[0]["severity"] == "warning"
    assert 2 * 86400 < got[0]["detail"]["expires_in_secs"] <= 3 * 86400


def test_rate_limit_refusals_are_notified_at_most_once_per_minute_per_key(
    bins, shared_double_url, tmp_path, aws, receiver
):
    f = start(shared_double_url, tmp_path, cp_env=cp_env(aws))
    try:
        webhook(f, receiver, "--events", "rate_limit")
        me = f.ccag_json("whoami")["user_id"]
        k = f.ccag_json("keys", "create", "--name", "slow", "--user", me, "--rpm", "1")
        c = client(f.url("a"), k["key"]).with_options(max_retries=0)
        assert wait_until(lambda: _works(c), timeout=10)
        refused = 0
        for _ in range(4):
            try:
                c.messages.create(model=HAIKU, max_tokens=16, messages=[{"role": "user", "content": "hi"}])
            except anthropic.RateLimitError:
                refused += 1
        assert refused >= 2
        assert wait_until(lambda: receiver.events("rate_limit.refused"), timeout=20)
        time.sleep(3)
        got = receiver.events("rate_limit.refused")
        minutes = [e["detail"]["minute"] for e in got]
        assert len(minutes) == len(set(minutes)) and len(got) <= 2, got
        assert got[0]["subject"]["id"] == k["id"] and got[0]["detail"]["refused_in_minute"] >= 1
    finally:
        f.stop_all()


@pytest.fixture
def pg_db():
    db = f"ccag_notify_{secrets.token_hex(6)}"
    psql(f"CREATE DATABASE {db}")
    yield f"postgres://postgres@127.0.0.1:5432/{db}"
    psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


def test_two_replicas_deliver_each_event_once_and_the_survivor_takes_over(
    bins, shared_double_url, tmp_path, aws, receiver, pg_db
):
    r = Replicas(shared_double_url, tmp_path, pg_db)
    r.cp_env.update(cp_env(aws, CCAG_ENCRYPTION_KEY=base64.b64encode(os.urandom(32)).decode()))
    r.start_replica("A")
    r.start_replica("B")
    try:
        webhook(r.via("A"), receiver, "--events", "user.created")
        made = []
        for i in range(20):
            made.append(r.via("AB"[i % 2]).ccag_json("users", "create", "--email", f"u{i}@example.com")["id"])
        assert wait_until(lambda: len(receiver.events()) >= 20, timeout=30), len(receiver.events())
        holder = next(x["holder"] for x in r.status("A")["leases"] if x["name"] == "notifications")
        gone, survivor = ("A", "B") if holder == "cp-A" else ("B", "A")
        r.stop_replica(gone)
        for i in range(20, 30):
            made.append(r.via(survivor).ccag_json("users", "create", "--email", f"u{i}@example.com")["id"])
        assert wait_until(lambda: len(receiver.events()) >= 30, timeout=40), len(receiver.events())
        time.sleep(2)
        got = receiver.events()
        once_each(got)
        assert sorted(e["subject"]["id"] for e in got) == sorted(made)
    finally:
        r.stop_all()


def test_a_replica_with_another_encryption_key_refuses_to_open_secrets_and_leaves_delivery_to_the_others(
    bins, shared_double_url, tmp_path, aws, receiver, pg_db
):
    r = Replicas(shared_double_url, tmp_path, pg_db)
    r.cp_env.update(cp_env(aws, CCAG_ENCRYPTION_KEY=base64.b64encode(os.urandom(32)).decode()))
    r.start_replica("A")
    try:
        r.cp_env["CCAG_ENCRYPTION_KEY"] = base64.b64encode(os.urandom(32)).decode()
        r.start_replica("B")
        p = r.via("B").ccag("notifications", "create", "--webhook", receiver.url, check=False)
        assert p.returncode != 0 and "CCAG_ENCRYPTION_KEY" in p.stderr, p.stderr
        webhook(r.via("A"), receiver, "--events", "user")
        r.via("B").ccag_json("users", "create", "--email", "x@example.com")
        assert wait_until(lambda: receiver.events("user.created"), timeout=20)
        leases = {x["name"]: x["holder"] for x in r.status("B")["leases"]}
        assert leases.get("notifications") == "cp-A"
    finally:
        r.stop_all()
