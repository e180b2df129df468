"""docs/getting-started.md, run as written: the admin's block against the
real control plane, then the developer's block with the real Claude Code
CLI, through a data plane fed by that control plane. Only the data plane's
address and the key placeholder are replaced (the control plane is the
default address's stand-in through CCAG_ENDPOINT), so the page cannot drift
from the code."""

import os
import re
import subprocess
from pathlib import Path

from conftest import ROOT, TARGET_DIR
from fleet import ADMIN_PASSWORD, Fleet, wait_until
from test_claude_code import CLAUDE

DOC = ROOT / "docs" / "getting-started.md"


def blocks():
    text = DOC.read_text()
    found = dict(re.findall(r"<!-- getting-started: (\w+) -->\n```sh\n(.*?)```", text, flags=re.S))
    assert set(found) == {"admin", "developer"}, f"tested blocks in {DOC}: {sorted(found)}"
    return found


def bash(script, cwd, env):
    """A block as a reader runs it: bash, stopping at the first failure."""
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        stdin=subprocess.DEVNULL,
    )


def run(script, cwd, env):
    p = bash(script, cwd, env)
    assert p.returncode == 0, f"exit {p.returncode}\n--- script\n{script}\n--- stdout\n{p.stdout}\n--- stderr\n{p.stderr}"
    return p.stdout


def test_the_getting_started_page_takes_a_newcomer_to_claude_code_answering(bins, shared_double_url, tmp_path):
    docs = blocks()
    f = Fleet(shared_double_url, tmp_path)
    f.start_cp()
    f.start_dp("a")
    try:
        # The repository as the page assumes it: target/release holds the binaries.
        repo = tmp_path / "repo"
        (repo / "target").mkdir(parents=True)
        (repo / "target" / "release").symlink_to(TARGET_DIR / "debug")
        admin_home = tmp_path / "admin-home"
        admin_home.mkdir()
        admin_env = {
            "PATH": os.environ["PATH"],
            "HOME": str(admin_home),
            "ADMIN_PASSWORD": ADMIN_PASSWORD,
            "CCAG_ENDPOINT": f.cp_url,
        }
        out = run(docs["admin"], repo, admin_env)
        keys = re.findall(r"sk-ccag-[A-Za-z0-9]{40}", out)
        assert len(keys) == 1, f"the key is printed once:\n{out}"
        assert "sqlite" in out, "ccag status names the database"

        dev_home = tmp_path / "dev-home"
        dev_home.mkdir()
        dev_env = {
            "PATH": f"{CLAUDE.parent}:{os.environ['PATH']}",
            "HOME": str(dev_home),
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_TELEMETRY": "1",
            "DISABLE_AUTOUPDATER": "1",
        }
        script = docs["developer"]
        assert "http://127.0.0.1:8080" in script and "sk-ccag-…" in script
        script = script.replace("http://127.0.0.1:8080", f.url("a")).replace("sk-ccag-…", keys[0])
        # The key reaches the data plane within moments of its creation.
        assert wait_until(lambda: _answers(script, repo, dev_env), timeout=60, every=2), "Claude Code never answered"

        # What the developer spent is the team's and the user's, under the budget.
        f.login()

        def counted():
            rows = f.ccag_json("usage", "--group-by", "team")["rows"]
            return any(r["name"] == "platform" and r["requests"] >= 1 for r in rows)

        assert wait_until(counted, timeout=20)
        status = f.ccag_json("budgets", "status", "--user", "dev@example.com")
        assert any(line["period"] == "monthly" and line["spend_micro_usd"] > 0 for line in status), status
    finally:
        f.stop_all()


def _answers(script, cwd, env):
    p = bash(script, cwd, env)
    return p.returncode == 0 and "Hello from the Bedrock double." in p.stdout
