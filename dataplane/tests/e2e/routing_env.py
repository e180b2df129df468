"""What test_routing.py runs against: STS played by `moto_server` with its
SigV4 checking on, several Bedrock doubles (each one endpoint: an account
in a region), and a control plane with two data planes whose own AWS
credentials are an access key of an IAM user of moto's, allowed to assume
roles and nothing else.

A double given a role (DOUBLE_ROLE_ARN) accepts only credentials moto's STS
issued for that role, and one given a region (DOUBLE_REGION) only
signatures scoped to it, so every answer a test gets proves that its
request was signed as its endpoint says."""

import contextlib
import json
import os
import pathlib
import secrets
import subprocess
import sys
import tempfile
import urllib.request
from types import SimpleNamespace

import boto3
from botocore.exceptions import ClientError

from conftest import start_process, stop_process
from fleet import Fleet, free_port, wait_until

# Two accounts: moto's STS assumes a role of any account.
ROLE_A = "arn:aws:iam::111111111111:role/ccag-bedrock"
ROLE_B = "arn:aws:iam::222222222222:role/ccag-bedrock"
API_KEY = "bedrock-api-key-" + secrets.token_hex(12)
SONNET = "claude-sonnet-4-5-20250929"

# name: (region, credentials, extra DOUBLE_* settings); credentials: a role
# to accept only its sessions, "api-key" for bearer auth only, or None for
# the data planes' own IAM user key.
DOUBLES = {
    "east": ("us-east-1", ROLE_A, {}),
    "west": ("us-west-2", ROLE_B, {}),
    "eu": ("eu-west-1", None, {}),
    "keyed": ("us-east-1", "api-key", {}),
    "sonnet": ("us-east-1", ROLE_A, {"DOUBLE_MODELS": SONNET}),
}


@contextlib.contextmanager
def moto_sts():
    """moto_server as IAM and STS, requiring SigV4 from an IAM user allowed
    sts:AssumeRole: yields (URL, that user's access key)."""
    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="moto-", suffix=".log", delete=False)
    # The first three calls go through unsigned (they make the IAM key);
    # every later one must be signed with it.
    env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT="3")
    wrapper = str(pathlib.Path(__file__).with_name("moto_server.py"))
    proc = subprocess.Popen(
        [sys.executable, wrapper, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log, env=env
    )
    url = f"http://127.0.0.1:{port}"
    try:
        assert wait_until(lambda: _up(url + "/moto-api/"), timeout=30), "moto_server did not start"
        iam = boto3.client(
            "iam", endpoint_url=url, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
        )
        iam.create_user(UserName="ccag-dataplane")
        policy = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": ["sts:AssumeRole", "sts:SetSourceIdentity"], "Resource": "*"}],
        }
        iam.put_user_policy(UserName="ccag-dataplane", PolicyName="assume", PolicyDocument=json.dumps(policy))
        k = iam.create_access_key(UserName="ccag-dataplane")["AccessKey"]
        key = {"id": k["AccessKeyId"], "secret": k["SecretAccessKey"]}
        # SigV4 checking is on: a wrong secret is refused.
        bad = boto3.client(
            "sts", endpoint_url=url, region_name="us-east-1", aws_access_key_id=key["id"], aws_secret_access_key="no"
        )
        try:
            bad.assume_role(RoleArn=ROLE_A, RoleSessionName="probe")
            raise AssertionError("moto accepted a wrong signature")
        except ClientError as e:
            assert e.response["Error"]["Code"] == "SignatureDoesNotMatch", e.response
        yield url, key
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _up(url):
    try:
        return urllib.request.urlopen(url, timeout=1).status == 200
    except OSError:
        return False


class Double:
    """One Bedrock double, seen from the test: its counters, its log of
    model calls, and the faults it is told to inject."""

    def __init__(self, name, region, credentials, proc, url):
        self.name, self.region, self.proc, self.url = name, region, proc, url
        self.role_arn = credentials if credentials not in (None, "api-key") else None
        self.api_key = API_KEY if credentials == "api-key" else None

    def _call(self, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method="GET" if body is None else "POST")
        req.add_header("content-type", "application/json")
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def stats(self):
        return self._call("/_double/stats")

    def calls(self):
        """Model calls that passed auth (answered or refused by a fault)."""
        return self.stats()["invocations"]

    def faulted(self):
        """Model calls answered by a fault (a stall counts when it starts)."""
        return self.stats()["faults_served"]

    def answered(self):
        """Model calls answered normally (for throttle and error faults)."""
        s = self.stats()
        return s["invocations"] - s["faults_served"]

    def model_calls(self):
        """The recorded InvokeModel and InvokeModelWithResponseStream requests."""
        ops = ("InvokeModel", "InvokeModelWithResponseStream")
        return [r for r in self._call("/_double/requests") if r["operation"] in ops]

    def fault(self, kind, count=0, stall_ms=None):
        """The next `count` model calls (0: all, until cleared) fail with `kind`."""
        body = {"kind": kind, "count": count}
        if stall_ms is not None:
            body["stall_ms"] = stall_ms
        return self._call("/_double/fault", body)

    def reset(self):
        self._call("/_double/reset", {})


def start_doubles(bins, sts_url, dp_key):
    doubles = {}
    try:
        for name, (region, creds, extra) in DOUBLES.items():
            env = {
                "DOUBLE_ADDR": "127.0.0.1:0",
                "DOUBLE_TTFT_MS": "0",
                "DOUBLE_INTER_TOKEN_MS": "0",
                "DOUBLE_CHUNKS": "3",
                "DOUBLE_REGION": region,
                # Without a role: the data planes' own key is the one accepted.
                "DOUBLE_ACCESS_KEY_ID": dp_key["id"],
                "DOUBLE_SECRET_ACCESS_KEY": dp_key["secret"],
                **extra,
            }
            if creds == "api-key":
                env["DOUBLE_API_KEY"] = API_KEY
            elif creds:
                env.update({"DOUBLE_ROLE_ARN": creds, "DOUBLE_STS_STATE_URL": sts_url + "/moto-api/data.json"})
            proc, url = start_process(bins["double"], env)
            doubles[name] = Double(name, region, creds, proc, url)
    except Exception:
        for d in doubles.values():
            stop_process(d.proc)
        raise
    return doubles


class Gateway(Fleet):
    """The fleet, with the routing resources each test makes and removes."""

    def __init__(self, doubles, tmp, sts_url, dp_key):
        super().__init__(
            doubles["east"].url,
            tmp,
            cp_env={"CCAG_OUTBOUND_ALLOW_CIDRS": "127.0.0.1/32"},
            dp_env={
                "AWS_ENDPOINT_URL_STS": sts_url,
                "AWS_ACCESS_KEY_ID": dp_key["id"],
                "AWS_SECRET_ACCESS_KEY": dp_key["secret"],
                "CCAG_OUTBOUND_ALLOW_CIDRS": "127.0.0.1/32",
            },
        )
        self.doubles = doubles
        self.dp_key = dp_key
        self.made = {"teams": [], "endpoints": []}

    def __getattr__(self, name):
        # gw.east, gw.west, …: the doubles.
        doubles = self.__dict__.get("doubles", {})
        if name in doubles:
            return doubles[name]
        raise AttributeError(name)

    def synced(self, timeout=15):
        """Waits until every data plane has acknowledged the latest revision."""

        def current():
            s = self.ccag_json("status")
            acked = {d["id"]: int(d["acked_version"]) for d in s["dataplanes"]}
            return len(acked) == len(self.dps) and set(acked.values()) == {int(s["config_version"])}

        assert wait_until(current, timeout=timeout, every=0.1), self.ccag_json("status")

    def endpoint(self, double, *options):
        """An endpoint calling `double` in its region with the credentials
        it accepts (its role, its API key, else the data planes' own);
        `options`: further CLI flags such as "--priority", "1"."""
        name = f"{double.name}-{secrets.token_hex(3)}"
        args = ["endpoints", "create", "--name", name, "--region", double.region, "--endpoint-url", double.url]
        if double.role_arn:
            args += ["--role-arn", double.role_arn]
        stdin = None
        if double.api_key:
            args.append("--api-key-stdin")
            stdin = double.api_key + "\n"
        e = json.loads(self.ccag("--json", *args, *options, stdin=stdin).stdout)
        self.made["endpoints"].append(e["id"])
        return e

    def team(self, routing=None, endpoints=None):
        """A team, with its own routing strategy and endpoint list when given."""
        t = self.ccag_json("teams", "create", "--name", "t-" + secrets.token_hex(4))
        self.made["teams"].append(t["id"])
        args = []
        if routing:
            args += ["--routing", routing]
        if endpoints is not None:
            args += ["--endpoints", ",".join(e["name"] for e in endpoints)]
        if args:
            self.ccag("teams", "update", t["id"], *args)
        return t

    def member(self, team=None):
        """A user (of `team`) and a key of theirs."""
        email = f"u{secrets.token_hex(4)}@example.com"
        user = self.ccag_json("users", "create", "--email", email)
        scope = []
        if team:
            self.ccag("teams", "add-member", team["id"], email)
            scope = ["--team", team["id"]]
        key = self.ccag_json("keys", "create", "--name", "routing", "--user", email, *scope)
        return SimpleNamespace(email=email, id=user["id"], key=key["key"], key_id=key["id"])

    @contextlib.contextmanager
    def settings(self, values):
        """Organisation settings for the block, back to their defaults after."""
        for k, v in values.items():
            self.ccag("settings", "set", k, str(v))
        self.synced()
        try:
            yield
        finally:
            for k in values:
                self.ccag("settings", "delete", k, check=False)
            self.synced()

    def endpoint_health(self):
        """`ccag endpoints list --json` by endpoint id."""
        return {e["id"]: e for e in self.ccag_json("endpoints", "list")}

    def usage_records(self, key_id):
        """(endpoint id, attempts) of each of a key's records in the spend log."""
        import sqlite3

        with sqlite3.connect(self.tmp / "cp" / "ccag.db") as c:
            return c.execute(
                "SELECT endpoint_id, attempts FROM usage_records WHERE key_id = ? ORDER BY endpoint_id", (key_id,)
            ).fetchall()

    def clean(self):
        """Removes what a test made (its teams first: an endpoint that is a
        team's only one cannot go) and clears the doubles."""
        for d in self.doubles.values():
            d.reset()
        for t in self.made["teams"]:
            self.ccag("teams", "delete", t, check=False)
        for e in self.made["endpoints"]:
            self.ccag("endpoints", "delete", e, check=False)
        self.made = {"teams": [], "endpoints": []}
        self.synced()


@contextlib.contextmanager
def gateway(bins, tmp):
    with moto_sts() as (sts_url, dp_key):
        doubles = start_doubles(bins, sts_url, dp_key)
        g = Gateway(doubles, tmp, sts_url, dp_key)
        try:
            g.start_cp()
            g.login()
            g.start_dp("a")
            g.start_dp("b")
            g.synced()
            yield g
        finally:
            g.stop_all()
            for d in doubles.values():
                stop_process(d.proc)
