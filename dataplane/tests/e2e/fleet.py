"""A whole gateway under test: the real control plane (SQLite), data planes
connected to it, the Bedrock double, and the `ccag` CLI."""

import json
import os
import secrets
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from conftest import DOUBLE_ACCESS_KEY_ID, DOUBLE_SECRET_ACCESS_KEY, TARGET_DIR, stop_process

ADMIN_PASSWORD = "admin-" + secrets.token_hex(8)
HELLO = [{"role": "user", "content": "Say hello."}]


def client(url, key):
    """An Anthropic SDK client for a data plane, with no retries of its own."""
    import anthropic

    return anthropic.Anthropic(base_url=url, api_key=key, max_retries=0, timeout=20)


def works(url, key):
    """Whether one small request with `key` succeeds on the data plane at `url`."""
    import anthropic

    try:
        client(url, key).messages.create(model="claude-haiku-4-5", max_tokens=10, messages=HELLO)
        return True
    except (anthropic.AuthenticationError, anthropic.APIStatusError, anthropic.APIConnectionError):
        return False


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(cond, timeout=10.0, every=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(every)
    return cond()


def make_certs(d: Path):
    """A throw-away CA and a server certificate for 127.0.0.1 signed by it."""
    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", str(d / "ca.key"), "-out", str(d / "ca.pem"), "-days", "2", "-subj", "/CN=ccag test CA")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", str(d / "server.key"), "-out", str(d / "server.csr"), "-subj", "/CN=127.0.0.1")
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n")
    run("x509", "-req", "-in", str(d / "server.csr"), "-CA", str(d / "ca.pem"), "-CAkey", str(d / "ca.key"),
        "-CAcreateserial", "-out", str(d / "server.pem"), "-days", "2", "-extfile", str(d / "ext.cnf"))


class Fleet:
    def __init__(self, double_url, tmp: Path, tls=False, cp_env=None, dp_env=None):
        """`cp_env` / `dp_env`: extra environment for the control plane (e.g.
        DATABASE_URL) and the data planes."""
        self.double_url = double_url
        self.cp_env = dict(cp_env or {})
        self.dp_env = dict(dp_env or {})
        self.tmp = tmp
        self.token = "ccag_dp_test_" + secrets.token_hex(16)
        self.grpc_port = free_port()
        self.tls = tls
        if tls:
            make_certs(tmp)
        self.cp_url = f"{'https' if tls else 'http'}://127.0.0.1:{self.grpc_port}"
        self.cp = None
        self.dps = {}
        self.dp_ports = {}
        self.config_dir = tmp / "cli"
        self.config_dir.mkdir()

    # -- control plane
    def start_cp(self):
        env = {
            "CCAG_DATA_DIR": str(self.tmp / "cp"),
            "CCAG_GRPC_ADDR": f"127.0.0.1:{self.grpc_port}",
            "CCAG_HTTP_ADDR": "127.0.0.1:0",
            "ADMIN_PASSWORD": ADMIN_PASSWORD,
            "CCAG_DATAPLANE_TOKEN": self.token,
        }
        if self.tls:
            env.update({"CCAG_TLS_CERT": str(self.tmp / "server.pem"), "CCAG_TLS_KEY": str(self.tmp / "server.key")})
        env.update(self.cp_env)
        self.cp, _ = start_process_env(TARGET_DIR / "debug" / "ccag-controlplane", env, "grpc listening on ")
        return self

    def stop_cp(self):
        if self.cp:
            stop_process(self.cp)
            self.cp = None

    def kill_cp(self):
        """SIGKILL: no graceful shutdown, streams and calls cut mid-way."""
        if self.cp:
            self.cp.kill()
            self.cp.wait(timeout=10)
            if self.cp.stdout:
                self.cp.stdout.close()
            self.cp = None

    # -- data planes
    def start_dp(self, name):
        port = self.dp_ports.setdefault(name, free_port())
        state = self.tmp / f"dp-{name}"
        env = {
            "CCAG_DATAPLANE_ADDR": f"127.0.0.1:{port}",
            "CCAG_CONTROLPLANE_URL": self.cp_url,
            "CCAG_DATAPLANE_TOKEN": self.token,
            "CCAG_DATAPLANE_ID": f"dp-{name}",
            "CCAG_DATAPLANE_STATE_DIR": str(state),
            "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": self.double_url,
            "AWS_ACCESS_KEY_ID": DOUBLE_ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": DOUBLE_SECRET_ACCESS_KEY,
            "AWS_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": str(self.tmp / "none"),
            "AWS_SHARED_CREDENTIALS_FILE": str(self.tmp / "none"),
        }
        if self.tls:
            env["CCAG_CONTROLPLANE_CA"] = str(self.tmp / "ca.pem")
        env.update(self.dp_env)
        proc, url = start_process_env(TARGET_DIR / "debug" / "ccag-dataplane", env, "listening on ")
        self.dps[name] = (proc, url)
        return url

    def stop_dp(self, name):
        proc, _ = self.dps.pop(name)
        stop_process(proc)

    def url(self, name):
        return self.dps[name][1]

    def pid(self, name):
        return self.dps[name][0].pid

    def stop_all(self):
        for name in list(self.dps):
            self.stop_dp(name)
        self.stop_cp()

    # -- CLI
    def ccag(self, *args, stdin=None, check=True):
        env = dict(os.environ)
        env.update({"CCAG_ENDPOINT": self.cp_url, "CCAG_CONFIG_DIR": str(self.config_dir)})
        if self.tls:
            env["CCAG_CA_CERT"] = str(self.tmp / "ca.pem")
        env.pop("CCAG_TOKEN", None)
        p = subprocess.run(
            [str(TARGET_DIR / "debug" / "ccag"), *args],
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check and p.returncode != 0:
            raise AssertionError(f"ccag {' '.join(args)} exited {p.returncode}: {p.stderr}")
        return p

    def login(self):
        self.ccag("login", "--username", "admin", "--password-stdin", stdin=ADMIN_PASSWORD + "\n")

    def ccag_json(self, *args):
        return json.loads(self.ccag("--json", *args).stdout)

    def usage_by_key(self):
        """The spend log's request count per key id."""
        rows = self.ccag_json("usage", "--group-by", "key")
        if isinstance(rows, dict):
            rows = rows.get("rows", [])
        return {r["group"]: int(r["requests"]) for r in rows}


def start_process_env(path, env, marker, timeout=30.0):
    """Like conftest.start_process, for binaries whose ready line contains `marker`."""
    import select

    full_env = dict(os.environ)
    full_env.pop("DATABASE_URL", None)
    full_env.update(env)
    log = tempfile.NamedTemporaryFile(prefix=path.name + "-", suffix=".log", delete=False)
    proc = subprocess.Popen([str(path)], stdout=subprocess.PIPE, stderr=log, env=full_env)
    proc.log_path = log.name
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{path.name} exited early with {proc.returncode}; log: {Path(log.name).read_text()[-2000:]}")
        ready, _, _ = select.select([proc.stdout], [], [], 0.1)
        if ready:
            line = proc.stdout.readline().decode()
            if marker in line:
                return proc, line.strip().split(marker, 1)[1]
    stop_process(proc)
    raise TimeoutError(f"{path.name} did not report '{marker}'")
