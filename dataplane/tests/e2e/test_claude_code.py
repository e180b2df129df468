"""The real Claude Code CLI (`claude -p`) against the data plane.

The CLI is found at $CCAG_CLAUDE_BIN, or installed by the test command
(test.sh) under $CCAG_TEST_CACHE. Without it these tests fail: Claude Code
is the client this gateway exists for."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from harness import double_get

CACHE = Path(os.environ.get("CCAG_TEST_CACHE", Path.home() / ".cache" / "ccag-test"))
CLAUDE = Path(os.environ.get("CCAG_CLAUDE_BIN", CACHE / "claude-code" / "node_modules" / ".bin" / "claude"))


def run_claude(gateway, tmp_path, *args):
    assert CLAUDE.exists(), f"Claude Code CLI not installed at {CLAUDE}; run ./test.sh"
    home = tmp_path / "home"
    home.mkdir()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": gateway.url,
        "ANTHROPIC_API_KEY": gateway.key,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
    }
    proc = subprocess.run(
        [str(CLAUDE), "-p", *args, "--output-format", "json"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, f"claude exited {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    return json.loads(proc.stdout)


def test_claude_code_default_model_gets_its_answer(gateway, tmp_path):
    out = run_claude(gateway, tmp_path, "Say hello.")
    assert out["is_error"] is False, out
    assert "Hello from the Bedrock double." in out["result"]


def test_claude_code_with_sonnet_4_5_gets_its_answer(gateway, tmp_path):
    out = run_claude(gateway, tmp_path, "Say hello.", "--model", "claude-sonnet-4-5")
    assert out["is_error"] is False, out
    assert "Hello from the Bedrock double." in out["result"]
    models = {r["model"] for r in double_get(gateway.double_url, "/_double/requests")}
    assert "us.anthropic.claude-sonnet-4-5-20250929-v1:0" in models
