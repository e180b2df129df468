"""Processes under test: the real ccag-dataplane binary in front of the
Bedrock double, with a snapshot file holding a freshly generated key."""

import hashlib
import json
import os
import secrets
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from fleet import wait_until

ROOT = Path(__file__).resolve().parents[3]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
DOUBLE_KEY_ID = "AKIDCCAGDOUBLE"
DOUBLE_SECRET = "ccag-double-secret"


def binary(name):
    return TARGET / "debug" / name


def read_listening_line(proc, what, timeout=60):
    """Both binaries print `… listening on http://IP:PORT` once bound."""
    deadline = time.time() + timeout
    result = {}

    def reader():
        for line in proc.stdout:
            if "listening on " in line:
                result["url"] = line.strip().split("listening on ", 1)[1]
                return

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    t.join(max(0, deadline - time.time()))
    if "url" not in result:
        proc.kill()
        raise RuntimeError(f"{what} did not report its address")
    return result["url"]


def make_key():
    key = "sk-ccag-test-" + secrets.token_urlsafe(24)
    return key, hashlib.sha256(key.encode()).hexdigest()


def snapshot(version, keys, **extra):
    snap = {
        "version": str(version),
        "keys": [
            {"id": kid, "sha256": h, "name": kid, "userId": "user-" + kid, "status": status}
            for kid, h, status in keys
        ],
        "limits": {"pingIntervalMs": 200, "maxBodyBytes": "2000000"},
    }
    snap.update(extra)
    return snap


class Gateway:
    def __init__(self, url, key, log_path, config_path, double_url):
        self.url = url
        self.key = key
        self.log_path = log_path
        self.config_path = config_path
        self.double_url = double_url

    def usage_records(self):
        out = []
        for line in Path(self.log_path).read_text().splitlines():
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if ev.get("target") == "ccag::usage":
                out.append(json.loads(ev["usage"]))
        return out

    def write_config(self, snap):
        tmp = Path(str(self.config_path) + ".tmp")
        tmp.write_text(json.dumps(snap))
        tmp.replace(self.config_path)


def double_get(double_url, path):
    with urllib.request.urlopen(double_url + path, timeout=10) as r:
        return json.loads(r.read())


def double_post(double_url, path):
    req = urllib.request.Request(double_url + path, method="POST", data=b"")
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.read()


def start_gateway(tmp_path_factory, double_url, snap, key, extra_env=None):
    """Starts ccag-dataplane on a snapshot file; `extra_env` adds variables
    such as CCAG_DATAPLANE_HEADER_TIMEOUT_MS."""
    d = tmp_path_factory.mktemp("gateway")
    config = d / "snapshot.json"
    config.write_text(json.dumps(snap))
    log = d / "dataplane.log"
    env = dict(os.environ)
    env.update(
        {
            "CCAG_DATAPLANE_ADDR": "127.0.0.1:0",
            "CCAG_DATAPLANE_CONFIG": str(config),
            "CCAG_LOG_FORMAT": "json",
            "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": double_url,
            "AWS_ACCESS_KEY_ID": DOUBLE_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": DOUBLE_SECRET,
            "AWS_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": str(d / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(d / "no-aws-credentials"),
        }
    )
    env.pop("AWS_PROFILE", None)
    env.pop("AWS_SESSION_TOKEN", None)
    env.update(extra_env or {})
    logf = open(log, "w")
    proc = subprocess.Popen(
        [str(binary("ccag-dataplane"))], env=env, stdout=subprocess.PIPE, stderr=logf, text=True
    )
    url = read_listening_line(proc, "ccag-dataplane")
    return proc, Gateway(url, key, log, config, double_url)


@pytest.fixture(scope="session")
def gateway(bins, shared_double_url, tmp_path_factory):
    key, h = make_key()
    proc, gw = start_gateway(
        tmp_path_factory, shared_double_url, snapshot(1, [("k1", h, "KEY_STATUS_ACTIVE")]), key
    )
    yield gw
    proc.terminate()
    proc.wait(timeout=30)


def wait_for(cond, timeout=5.0, every=0.05):
    return wait_until(cond, timeout, every)


def proc_stats(pid):
    """Resident memory (KiB), open file descriptors and threads of a process,
    from /proc (Linux)."""
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return {
        "rss_kib": int(fields["VmRSS"].split()[0]),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
        "threads": int(fields["Threads"]),
    }


def health(url):
    """The data plane's `GET /health`: its open connections, requests in
    flight and alive tasks."""
    with urllib.request.urlopen(url + "/health", timeout=10) as r:
        return json.loads(r.read())
