"""Shared fixtures for the end-to-end tests of the data plane and its Bedrock double.

`bins` builds the Rust binaries once per session; `double_url` starts a fresh
`ccag-bedrock-double` process for each test and yields its base URL.
Extra DOUBLE_* variables for one test:  @pytest.mark.double_env(DOUBLE_CHUNKS="5").
"""

import os
import pathlib
import select
import subprocess
import time

import pytest

pytest_plugins = ["harness"]

# Tests run many data planes at once: each takes an OS-chosen port for its
# metrics listener (printed as `ccag-dataplane metrics at http://…/metrics`)
# unless a test names one.
os.environ.setdefault("CCAG_DATAPLANE_ADMIN_ADDR", "127.0.0.1:0")

ROOT = pathlib.Path(__file__).resolve().parents[3]
TARGET_DIR = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
if not TARGET_DIR.is_absolute():
    TARGET_DIR = ROOT / TARGET_DIR
FIXTURES = ROOT / "dataplane" / "bedrock-double" / "tests" / "fixtures"

DOUBLE_ACCESS_KEY_ID = "AKIDCCAGDOUBLE"
DOUBLE_SECRET_ACCESS_KEY = "ccag-double-secret"

# Packages built by `bins`, each with `cargo build -p`.
CARGO_PACKAGES = [
    "ccag-bedrock-double",
    "ccag-dataplane",
]


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "double_env(**env): extra DOUBLE_* environment for the double_url fixture"
    )


@pytest.fixture(scope="session")
def bins():
    """Builds the binaries (debug profile) and returns {name: path}."""
    cmd = ["cargo", "build"]
    for pkg in CARGO_PACKAGES:
        cmd += ["-p", pkg]
    subprocess.run(cmd, cwd=ROOT, check=True)
    paths = {
        "double": TARGET_DIR / "debug" / "ccag-bedrock-double",
        "dataplane": TARGET_DIR / "debug" / "ccag-dataplane",
    }
    for name, path in paths.items():
        assert path.exists(), f"{name} binary missing at {path}"
    return paths


def _read_listening_line(proc, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited early with {proc.returncode}")
        ready, _, _ = select.select([proc.stdout], [], [], 0.1)
        if ready:
            line = proc.stdout.readline().decode().strip()
            if line.startswith("listening on "):
                return line[len("listening on "):]
    raise TimeoutError("no 'listening on' line within %.0fs" % timeout)


def start_process(path, env, timeout=20.0):
    """Starts a binary that prints `listening on URL`; returns (proc, url)."""
    full_env = dict(os.environ)
    full_env.update(env)
    proc = subprocess.Popen(
        [str(path)], stdout=subprocess.PIPE, stderr=None, env=full_env, cwd=ROOT
    )
    try:
        url = _read_listening_line(proc, timeout)
    except Exception:
        stop_process(proc)
        raise
    return proc, url


def stop_process(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    if proc.stdout:
        proc.stdout.close()


def run_double(bins, extra_env=None):
    """A Bedrock double of the caller's own on an ephemeral port, for a
    fixture to yield from: yields http://IP:PORT, stops it afterwards."""
    env = {
        "DOUBLE_ADDR": "127.0.0.1:0",
        "DOUBLE_ACCESS_KEY_ID": DOUBLE_ACCESS_KEY_ID,
        "DOUBLE_SECRET_ACCESS_KEY": DOUBLE_SECRET_ACCESS_KEY,
    }
    env.update(extra_env or {})
    proc, url = start_process(bins["double"], env)
    try:
        yield url
    finally:
        stop_process(proc)


@pytest.fixture
def double_url(bins, request):
    """A fresh Bedrock double on an ephemeral port; yields http://IP:PORT."""
    env = {"DOUBLE_TTFT_MS": "0", "DOUBLE_INTER_TOKEN_MS": "0", "DOUBLE_CHUNKS": "3"}
    marker = request.node.get_closest_marker("double_env")
    if marker is not None:
        env.update({k: str(v) for k, v in marker.kwargs.items()})
    yield from run_double(bins, env)


@pytest.fixture(scope="session")
def shared_double_url(bins):
    """One Bedrock double for the whole session, behind the shared gateway."""
    yield from run_double(bins)


@pytest.fixture
def fleet(bins, shared_double_url, tmp_path):
    """A control plane on SQLite with two data planes, "a" and "b", logged in."""
    from fleet import Fleet

    f = Fleet(shared_double_url, tmp_path)
    f.start_cp()
    f.login()
    f.start_dp("a")
    f.start_dp("b")
    yield f
    f.stop_all()
