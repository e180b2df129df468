"""Claude Code's gateway sign-in ("Cloud gateway" in /login), through the
data plane's one URL: RFC 8414 discovery, the device authorization grant
(RFC 8628) approved in a browser signed in through a real OpenID provider,
rotating refresh tokens, revocation (RFC 7009), gateway access tokens the
data plane verifies on its own, managed settings, the OTLP sinks, and
`ccag login --sso`. The device client here is scripted from the RFCs; the
browser is a requests session that plays the provider's screens.
"""

import base64
import json
import os
import pathlib
import re
import subprocess
import time
import urllib.parse

import anthropic
import pytest
import requests

from fleet import TARGET_DIR, wait_until
from test_sso import CACHE, Gateway, _form_action, node_dir  # noqa: F401  (node_dir is a fixture)

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


@pytest.fixture(scope="module")
def gw(bins, node_dir, shared_double_url, tmp_path_factory):  # noqa: F811
    g = Gateway(tmp_path_factory.mktemp("signin"), node_dir, double_url=shared_double_url)
    yield g
    g.stop()


def browse(gw, b, url, login):
    """Opens `url` in browser `b`, signing in at the provider as `login` when
    sent there; returns the first answer from the gateway that is a page."""
    ours = gw.url + "/"
    for _ in range(30):
        r = b.get(url, allow_redirects=False, timeout=15)
        if r.status_code in (302, 303):
            url = urllib.parse.urljoin(r.url, r.headers["location"])
            continue
        if url.startswith(ours):
            return r
        action = urllib.parse.urljoin(r.url, _form_action(r.text))
        data = {"prompt": "login", "login": login, "password": "x"} if 'name="login"' in r.text else {"prompt": "consent"}
        r = b.post(action, data=data, allow_redirects=False, timeout=15)
        assert r.status_code in (302, 303), r.text[:300]
        url = urllib.parse.urljoin(r.url, r.headers["location"])
    raise AssertionError("no page came back")


def start(gw):
    r = requests.post(gw.url + "/oauth/device_authorization", data={"client_id": "claude-code"}, timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    return r.json()


def poll(gw, device_code):
    return requests.post(gw.url + "/oauth/token", data={"grant_type": DEVICE_GRANT, "device_code": device_code},
                         timeout=10)


def decide(gw, b, page, code, decision="approve"):
    csrf = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page.text).group(1)
    return b.post(gw.url + "/device", data={"csrf_token": csrf, "user_code": code, "decision": decision},
                  headers={"origin": gw.url}, timeout=10)


def signed_in(gw, login="dave"):
    """A whole device sign-in; returns the token answer."""
    d = start(gw)
    b = requests.Session()
    page = browse(gw, b, d["verification_uri_complete"], login)
    assert page.status_code == 200 and "Approve a sign-in" in page.text, page.text
    assert decide(gw, b, page, d["user_code"]).status_code == 200
    r = poll(gw, d["device_code"])
    assert r.status_code == 200, r.text
    return r.json()


def messages(gw, token):
    c = anthropic.Anthropic(base_url=gw.url, auth_token=token, api_key=None, max_retries=0)
    return c.messages.create(model="claude-sonnet-4-5", max_tokens=16, messages=[{"role": "user", "content": "hi"}])


def refresh(gw, rt):
    return requests.post(gw.url + "/oauth/token", data={"grant_type": "refresh_token", "refresh_token": rt}, timeout=10)


def claims(jwt):
    part = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def test_discovery_names_the_gateways_own_endpoints(gw):
    m = requests.get(gw.url + "/.well-known/oauth-authorization-server", timeout=10).json()
    assert m["issuer"] == gw.url
    assert m["device_authorization_endpoint"] == gw.url + "/oauth/device_authorization"
    assert m["token_endpoint"] == gw.url + "/oauth/token"
    assert m["revocation_endpoint"] == gw.url + "/oauth/revoke"
    assert set(m["grant_types_supported"]) == {DEVICE_GRANT, "refresh_token"}


def test_a_device_signs_in_through_the_browser_and_its_token_calls_the_messages_api(gw):
    d = start(gw)
    assert re.fullmatch(r"[B-Z]{4}-[B-Z]{4}", d["user_code"]) and d["interval"] == 5 and d["expires_in"] == 600
    assert d["verification_uri"] == gw.url + "/device"
    pending = poll(gw, d["device_code"])
    assert pending.status_code == 400 and pending.json()["error"] == "authorization_pending"
    b = requests.Session()
    page = browse(gw, b, d["verification_uri_complete"], "dave")
    assert "Signed in as dave@example.test" in page.text and d["user_code"] in page.text
    done = decide(gw, b, page, d["user_code"])
    assert done.status_code == 200 and "Approved" in done.text
    time.sleep(5)  # the RFC's polling interval: polling sooner is answered slow_down
    r = poll(gw, d["device_code"])
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    t = r.json()
    assert t["token_type"] == "Bearer" and 0 < t["expires_in"] <= 900 and t["refresh_token"].startswith("ccag_rt_")
    c = claims(t["access_token"])
    assert c["iss"] == "ccag" and c["aud"] == "ccag-gateway" and c["sub"] == t["user_id"]
    out = messages(gw, t["access_token"])
    assert out.content[0].text
    keys = gw.fleet.ccag_json("keys", "list")
    mine = [k for k in keys if k["id"] == c["key"]]
    assert mine and mine[0]["name"] == "claude-code-sign-in", keys
    again = poll(gw, d["device_code"])
    assert again.status_code == 400 and again.json()["error"] == "expired_token", "a device code is used once"


def test_polling_faster_than_the_interval_is_told_to_slow_down(gw):
    d = start(gw)
    assert poll(gw, d["device_code"]).json()["error"] == "authorization_pending"
    assert poll(gw, d["device_code"]).json()["error"] == "slow_down"


def test_a_denied_sign_in_is_access_denied(gw):
    d = start(gw)
    b = requests.Session()
    page = browse(gw, b, d["verification_uri_complete"], "dave")
    assert "Denied" in decide(gw, b, page, d["user_code"], "deny").text
    assert poll(gw, d["device_code"]).json()["error"] == "access_denied"


def test_an_unknown_code_is_refused_in_the_browser(gw):
    d = start(gw)
    b = requests.Session()
    page = browse(gw, b, d["verification_uri_complete"], "dave")
    r = decide(gw, b, page, "BBBB-BBBB")
    assert r.status_code == 400 and "unknown, expired or already used" in r.text


def test_the_approval_form_needs_its_csrf_token(gw):
    d = start(gw)
    b = requests.Session()
    browse(gw, b, d["verification_uri_complete"], "dave")
    r = b.post(gw.url + "/device", data={"csrf_token": "0" * 64, "user_code": d["user_code"], "decision": "approve"},
               timeout=10)
    assert r.status_code == 403
    cross = b.post(gw.url + "/device", data={"user_code": d["user_code"], "decision": "approve"},
                   headers={"origin": "https://evil.example"}, timeout=10)
    assert cross.status_code == 403
    assert poll(gw, d["device_code"]).json()["error"] == "authorization_pending"


def test_a_refresh_token_is_rotated_and_used_once(gw):
    t = signed_in(gw)
    r1 = refresh(gw, t["refresh_token"])
    assert r1.status_code == 200, r1.text
    t1 = r1.json()
    assert t1["refresh_token"] != t["refresh_token"]
    assert claims(t1["access_token"])["key"] == claims(t["access_token"])["key"]
    reused = refresh(gw, t["refresh_token"])
    assert reused.status_code == 400 and reused.json() == {
        "error": "invalid_grant", "error_description": "the refresh token was already used"}
    assert messages(gw, t1["access_token"]).content


def test_revoking_the_refresh_token_ends_the_sign_in(gw):
    t = signed_in(gw)
    r = requests.post(gw.url + "/oauth/revoke", data={"token": t["refresh_token"], "token_type_hint": "refresh_token"},
                      timeout=10)
    assert r.status_code == 200 and r.json() == {}
    assert refresh(gw, t["refresh_token"]).json()["error"] == "invalid_grant"
    assert requests.post(gw.url + "/oauth/revoke", data={"token": "nonsense"}, timeout=10).status_code == 200


def test_disabling_the_user_stops_their_access_token_at_once_and_their_refresh(gw):
    t = signed_in(gw, "erin")
    assert messages(gw, t["access_token"]).content
    gw.fleet.ccag("users", "update", "erin@example.test", "--status", "disabled")
    try:
        def refused():
            try:
                messages(gw, t["access_token"])
                return False
            except anthropic.AuthenticationError:
                return True
        assert wait_until(refused, timeout=5), "the access token still works"
        assert refresh(gw, t["refresh_token"]).json()["error"] == "invalid_grant"
    finally:
        gw.fleet.ccag("users", "update", "erin@example.test", "--status", "active")


def test_tokens_the_gateway_did_not_sign_are_refused(gw):
    t = signed_in(gw)
    head, body, sig = t["access_token"].split(".")
    c = claims(t["access_token"])
    c["sub"] = "usr_someone_else"
    forged_body = base64.urlsafe_b64encode(json.dumps(c).encode()).rstrip(b"=").decode()
    for bad in (f"{head}.{forged_body}.{sig}", "eyJhbGciOiJub25lIn0.e30.", t["access_token"][:-4] + "AAAA"):
        with pytest.raises(anthropic.AuthenticationError):
            messages(gw, bad)


def test_managed_settings_need_a_gateway_token_and_say_when_there_are_none(gw):
    t = signed_in(gw)
    assert requests.get(gw.url + "/managed/settings", timeout=10).status_code == 401
    r = requests.get(gw.url + "/managed/settings", headers={"authorization": f"Bearer {t['access_token']}"}, timeout=10)
    assert r.status_code == 404


def test_managed_settings_are_the_organisations_with_the_users_teams_laid_over(gw, tmp_path):
    org = tmp_path / "org.json"
    org.write_text(json.dumps({"permissions": {"deny": ["WebSearch"]}, "env": {"A": "1"}}))
    gw.fleet.ccag("managed-settings", "set", str(org))
    gw.fleet.ccag("managed-settings", "set", "-", "--team", "eng",
                  stdin=json.dumps({"permissions": {"deny": ["Bash(rm:*)"]}, "env": {"B": "2"}}))
    bad = gw.fleet.ccag("managed-settings", "set", "-", stdin="[1, 2]", check=False)
    assert bad.returncode == 8 and "JSON object" in bad.stderr
    try:
        dave = signed_in(gw, "dave")  # in the eng team through the provider's groups
        h = {"authorization": f"Bearer {dave['access_token']}"}
        r = requests.get(gw.url + "/managed/settings", headers=h, timeout=10)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["settings"] == {"permissions": {"deny": ["WebSearch", "Bash(rm:*)"]}, "env": {"A": "1", "B": "2"}}
        assert body["checksum"].startswith("sha256:") and r.headers["etag"] == f'"{body["checksum"]}"'
        same = requests.get(gw.url + "/managed/settings", headers={**h, "if-none-match": r.headers["etag"]}, timeout=10)
        assert same.status_code == 304 and same.content == b""
        assert gw.fleet.ccag_json("managed-settings", "show", "--user", "dave@example.test") == body["settings"]
        erin = signed_in(gw, "erin")
        only_org = requests.get(gw.url + "/managed/settings", headers={"authorization": f"Bearer {erin['access_token']}"},
                                timeout=10).json()["settings"]
        assert only_org == {"permissions": {"deny": ["WebSearch"]}, "env": {"A": "1"}}
    finally:
        gw.fleet.ccag("managed-settings", "delete", "--team", "eng")
        gw.fleet.ccag("managed-settings", "delete")


def test_otlp_exports_are_accepted_and_counted(gw):
    t = signed_in(gw)
    dp = gw.fleet.url("a")
    before = requests.get(dp + "/health", timeout=5).json()["telemetry_exports"]
    h = {"authorization": f"Bearer {t['access_token']}", "content-type": "application/x-protobuf"}
    for path in ("/v1/metrics", "/v1/logs", "/v1/traces"):
        r = requests.post(dp + path, data=b"\x0a\x00", headers=h, timeout=5)
        assert r.status_code == 200 and r.content == b"", path
    assert requests.get(dp + "/health", timeout=5).json()["telemetry_exports"] == before + 3
    assert requests.post(dp + "/v1/metrics", data=b"", timeout=5).status_code == 401


def test_ccag_login_sso_signs_the_cli_in_through_the_browser(gw, tmp_path):
    env = {"CCAG_ENDPOINT": gw.fleet.cp_url, "CCAG_CONFIG_DIR": str(tmp_path / "cli")}
    full = dict(os.environ)
    full.update(env)
    full.pop("CCAG_TOKEN", None)
    p = subprocess.Popen([str(TARGET_DIR / "debug" / "ccag"), "login", "--sso"], env=full, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        first = p.stderr.readline()
        url = re.search(r"open (\S+)", first).group(1)
        code = re.search(r"code (\S+) before", p.stderr.readline()).group(1)
        assert url.startswith(gw.url + "/device?user_code=")
        b = requests.Session()
        page = browse(gw, b, url, "alice")
        assert decide(gw, b, page, code).status_code == 200
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, err
    assert "alice@example.test" in out
    who = subprocess.run([str(TARGET_DIR / "debug" / "ccag"), "--json", "whoami"], env=full, capture_output=True,
                         text=True, timeout=30)
    assert json.loads(who.stdout)["email"] == "alice@example.test"


# ------------------------------------------------------------------ onboarding

CLAUDE = pathlib.Path(os.environ.get("CCAG_CLAUDE_BIN", CACHE / "claude-code" / "node_modules" / ".bin" / "claude"))
ORIGINAL_SETTINGS = {
    "theme": "dark",
    "permissions": {"allow": ["Bash(ls:*)"]},
    "env": {"CLAUDE_CODE_USE_BEDROCK": "1", "ANTHROPIC_API_KEY": "sk-old", "MY_SETTING": "kept"},
}


def fresh_home(tmp_path):
    home = tmp_path / "home"
    (home / ".claude").mkdir(parents=True)
    (home / ".claude" / "settings.json").write_text(json.dumps(ORIGINAL_SETTINGS))
    return home


def machine_env(home):
    """A developer's machine: Claude Code on the PATH, nothing of the gateway
    in the environment."""
    return {
        "HOME": str(home),
        "PATH": f"{CLAUDE.parent}:{os.environ['PATH']}",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
    }


def claude_answers(home, tmp_path):
    assert CLAUDE.exists(), f"Claude Code CLI not installed at {CLAUDE}; run ./test.sh"
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    p = subprocess.run([str(CLAUDE), "-p", "Say hello.", "--output-format", "json"], env=machine_env(home), cwd=work,
                       capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, f"claude exited {p.returncode}\nstdout: {p.stdout}\nstderr: {p.stderr}"
    out = json.loads(p.stdout)
    assert out["is_error"] is False, out
    return out


def assert_merged(home, gw):
    s = json.loads((home / ".claude" / "settings.json").read_text())
    assert s["theme"] == "dark" and s["permissions"] == ORIGINAL_SETTINGS["permissions"]
    assert s["env"]["MY_SETTING"] == "kept"
    assert "CLAUDE_CODE_USE_BEDROCK" not in s["env"] and "ANTHROPIC_API_KEY" not in s["env"]
    assert s["env"]["ANTHROPIC_BASE_URL"] == gw.url
    assert s["apiKeyHelper"].startswith("sh '") and "credential-helper.sh" in s["apiKeyHelper"]
    return s


def test_the_setup_script_signs_in_through_the_browser_and_claude_code_answers(gw, tmp_path):
    home = fresh_home(tmp_path)
    p = subprocess.Popen(["sh", "-c", f"curl -fsSL '{gw.url}/setup' | sh"], env=machine_env(home),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        lines = [p.stderr.readline(), p.stderr.readline()]
        url = re.search(r"open (\S+)", lines[0]).group(1)
        code = re.search(r"the code (\S+) before", lines[1]).group(1)
        b = requests.Session()
        page = browse(gw, b, url, "dave")
        assert decide(gw, b, page, code).status_code == 200
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, err
    assert "done: Claude Code now goes through" in err
    assert_merged(home, gw)
    cred = home / ".claude" / "ccag"
    assert oct(cred.stat().st_mode & 0o777) == "0o700"
    helper = next(cred.glob("*/credential-helper.sh"))
    token = subprocess.run(["sh", str(helper)], env=machine_env(home), capture_output=True, text=True, timeout=30)
    assert token.returncode == 0 and token.stdout.count("\n") == 1 and token.stdout.startswith("eyJ"), token
    out = claude_answers(home, tmp_path)
    assert "Hello from the Bedrock double." in out["result"]


def test_the_credential_helper_renews_an_expired_token_with_its_refresh_token(gw, tmp_path):
    home = fresh_home(tmp_path)
    t = signed_in(gw)
    # What the setup script leaves behind, with an access token past its time.
    slug = gw.url.split("://", 1)[1].replace(":", "_")
    d = home / ".claude" / "ccag" / slug
    d.mkdir(parents=True)
    (d / "refresh").write_text(t["refresh_token"] + "\n")
    (d / "access").write_text(f"{int(time.time()) - 10}\nexpired\n")
    script = requests.get(gw.url + "/setup", timeout=10).text
    helper_body = script.split("cat > \"$HELPER\" <<'HELPER_EOF'\n", 1)[1].split("HELPER_EOF\n", 1)[0]
    tail = script.split("cat >> \"$HELPER\" <<'HELPER_EOF'\n", 1)[1].split("HELPER_EOF\n", 1)[0]
    helper = d / "credential-helper.sh"
    helper.write_text(helper_body + f"URL='{gw.url}'\nDIR='{d}'\n" + tail)
    first = subprocess.run(["sh", str(helper)], capture_output=True, text=True, timeout=30)
    assert first.returncode == 0, first.stderr
    renewed = first.stdout.strip()
    assert renewed.startswith("eyJ") and renewed != t["access_token"]
    assert (d / "refresh").read_text().strip() != t["refresh_token"], "the refresh token rotated"
    again = subprocess.run(["sh", str(helper)], capture_output=True, text=True, timeout=30)
    assert again.stdout.strip() == renewed, "a fresh token is reused, not renewed"
    assert messages(gw, renewed).content


def test_a_setup_token_connects_claude_code_with_a_new_key_once(gw, tmp_path):
    home = fresh_home(tmp_path)
    made = gw.fleet.ccag_json("keys", "setup-token", "--user", "dave@example.test", "--name", "dave-laptop")
    assert made["command"] == f"curl -fsSL '{gw.url}/setup?token={made['token']}' | sh"
    p = subprocess.run(["sh", "-c", made["command"]], env=machine_env(home), capture_output=True, text=True,
                       timeout=120, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    assert_merged(home, gw)
    keys = [k for k in gw.fleet.ccag_json("keys", "list") if k["name"] == "dave-laptop"]
    assert len(keys) == 1
    out = claude_answers(home, tmp_path)
    assert "Hello from the Bedrock double." in out["result"]
    again = subprocess.run(["sh", "-c", made["command"]], env=machine_env(fresh_home(tmp_path / "b")),
                           capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert again.returncode != 0 and "works once" in again.stderr


def test_the_setup_script_refuses_what_it_cannot_do(gw):
    assert "PowerShell" in requests.get(gw.url + "/setup?platform=windows", timeout=10).text
    assert requests.get(gw.url + "/setup?scope=everywhere", timeout=10).status_code == 400
    assert requests.get(gw.url + "/setup?token=x'; rm -rf /", timeout=10).status_code == 400
    # The URL in the script is the configured one, not the request's Host.
    s = requests.get(gw.url + "/setup", headers={"host": "evil.example"}, timeout=10).text
    assert f"CCAG_URL='{gw.url}'" in s and "evil.example" not in s


# ------------------------------------------------------------------ the real Claude Code

MANAGED = pathlib.Path("/etc/claude-code/managed-settings.json")


def screen(session):
    return subprocess.run(["tmux", "capture-pane", "-t", session, "-p"], capture_output=True, text=True).stdout


def keys(session, *k):
    subprocess.run(["tmux", "send-keys", "-t", session, *k], check=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="writes the machine's managed settings (/etc/claude-code); CI runs as root")
def test_claude_code_signs_in_with_the_gateway_login_and_answers(gw, tmp_path):
    """Claude Code's own "Cloud gateway" sign-in, driven through its screens
    in tmux: managed settings name the gateway, Claude Code runs discovery
    and the device grant, the person approves in the browser, and the
    signed-in session's prompt is answered through the data plane."""
    assert CLAUDE.exists(), f"Claude Code CLI not installed at {CLAUDE}; run ./test.sh"
    before = MANAGED.read_bytes() if MANAGED.exists() else None
    MANAGED.parent.mkdir(parents=True, exist_ok=True)
    MANAGED.write_text(json.dumps({"forceLoginMethod": "gateway", "forceLoginGatewayUrl": gw.url}))
    home = tmp_path / "home"
    work = tmp_path / "work"
    home.mkdir()
    work.mkdir()
    session = "ccag-login-" + os.urandom(3).hex()
    env = " ".join(f"{k}='{v}'" for k, v in {
        "HOME": str(home), "PATH": os.environ["PATH"], "TERM": "xterm-256color",
        "DISABLE_AUTOUPDATER": "1", "DISABLE_TELEMETRY": "1"}.items())
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "160", "-y", "50",
                    f"cd '{work}' && env -i {env} '{CLAUDE}'; sleep 60"], check=True)
    done = set()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            s = screen(session)
            if "Hello from the Bedrock double." in s:
                break
            if "Choose the text style" in s and "theme" not in done:
                done.add("theme")
                keys(session, "Enter")
            elif "Enter to connect" in s and "connect" not in done:
                done.add("connect")
                keys(session, "Enter")
            elif "Trust gateway" in s and "trust" not in done:
                done.add("trust")
                keys(session, "Up")
                keys(session, "Enter")
            elif "Code:" in s and "approve" not in done:
                code = re.search(r"Code:\s+([B-Z]{4}-[B-Z]{4})", s)
                if code:
                    done.add("approve")
                    b = requests.Session()
                    page = browse(gw, b, f"{gw.url}/device?user_code={code.group(1)}", "dave")
                    assert decide(gw, b, page, code.group(1)).status_code == 200
            elif "Connected to Cloud gateway" in s and "connected" not in done:
                done.add("connected")
                keys(session, "Enter")
            elif "Security notes" in s and "notes" not in done:
                done.add("notes")
                keys(session, "Enter")
            elif "trust this folder" in s and "folder" not in done:
                done.add("folder")
                keys(session, "Down")
                keys(session, "Enter")
            elif "Cloud gateway" in s and "auto mode" in s and "prompt" not in done:
                done.add("prompt")
                keys(session, "Say hello.")
                time.sleep(0.5)
                keys(session, "Enter")
            time.sleep(0.5)
        final = screen(session)
        assert "Hello from the Bedrock double." in final, f"steps done: {sorted(done)}\n{final}"
        assert {"connect", "trust", "approve", "connected"} <= done, sorted(done)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
        if before is None:
            MANAGED.unlink(missing_ok=True)
        else:
            MANAGED.write_bytes(before)
    dave = next(u for u in gw.fleet.ccag_json("users", "list") if u.get("email") == "dave@example.test")
    [key] = [k for k in gw.fleet.ccag_json("keys", "list")
             if k["name"] == "claude-code-sign-in" and k["user_id"] == dave["id"]]
    assert wait_until(lambda: gw.fleet.usage_by_key().get(key["id"], 0) >= 1, timeout=15), \
        "the session's requests are on the user's sign-in key"
