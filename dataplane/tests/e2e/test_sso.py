"""Single sign-on through a real OpenID provider (panva's oidc-provider on
Node), browser legs in real Chromium (playwright-core) and, for the refusal
cases, a scripted browser (requests with a cookie jar) that follows the
provider's login and consent screens.

The gateway under test is a control plane whose identity provider "corp"
maps the group gw-admins to admins and eng to the team "eng".
"""

import json
import os
import pathlib
import re
import secrets
import shutil
import subprocess
import tempfile
import time
import urllib.parse

import pytest
import requests

from conftest import stop_process
from fleet import Fleet, free_port, wait_until

HERE = pathlib.Path(__file__).resolve().parent
CACHE = pathlib.Path(os.environ.get("CCAG_TEST_CACHE", pathlib.Path.home() / ".cache" / "ccag-test"))
NODE_DIR = CACHE / "oidc"
# Pinned: the tests drive the provider's development screens.
NODE_PACKAGES = ["oidc-provider@9.13.3", "playwright-core@1.65.1"]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="session")
def node_dir():
    """oidc-provider and playwright-core installed once; the test scripts
    are copied next to their node_modules (ES modules resolve from there)."""
    if not (NODE_DIR / "node_modules" / "oidc-provider").exists() or not (
        NODE_DIR / "node_modules" / "playwright-core"
    ).exists():
        NODE_DIR.mkdir(parents=True, exist_ok=True)
        (NODE_DIR / "package.json").write_text('{"name":"ccag-oidc-test","private":true}\n')
        subprocess.run(
            ["npm", "install", "--silent", "--no-fund", "--no-audit", "--prefix", str(NODE_DIR), *NODE_PACKAGES],
            check=True,
        )
    for script in ("provider.mjs", "browser.mjs"):
        shutil.copy(HERE / "oidc" / script, NODE_DIR / script)
    return NODE_DIR


class Idp:
    """One oidc-provider process; `restart(kid)` rotates its signing key."""

    def __init__(self, node_dir, tmp, redirect_uri):
        self.node_dir = node_dir
        self.tmp = tmp
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.redirect_uri = redirect_uri
        self.proc = None

    def start(self, kid="k1"):
        env = dict(os.environ)
        env.update(
            {
                "PORT": str(self.port),
                "REDIRECT_URIS": self.redirect_uri,
                "KID": kid,
                "KEY_FILE": str(self.tmp / f"idp-key-{kid}.json"),
            }
        )
        log = tempfile.NamedTemporaryFile(prefix="oidc-provider-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(
            ["node", str(self.node_dir / "provider.mjs")], cwd=self.node_dir, env=env, stdout=log, stderr=log
        )
        assert wait_until(self._up, timeout=20), f"oidc-provider did not start; see {log.name}"
        return self

    def _up(self):
        try:
            return requests.get(self.issuer + "/.well-known/openid-configuration", timeout=1).ok
        except requests.RequestException:
            return False

    def stop(self):
        if self.proc:
            stop_process(self.proc)
            self.proc = None

    def restart(self, kid):
        self.stop()
        self.start(kid)

    def mode(self, m):
        requests.post(f"{self.issuer}/test/mode?m={m}", timeout=5).raise_for_status()


class Gateway:
    """A control plane on a known HTTP port, with the identity provider
    "corp" and a team "eng". With `double_url`, a data plane too, which is
    then the public URL (it passes sign-in through to the control plane)."""

    def __init__(self, tmp, node_dir, cp_env=None, create_idp=True, double_url=None):
        self.http_port = free_port()
        self.cp_http = f"http://127.0.0.1:{self.http_port}"
        self.dp_port = free_port() if double_url else None
        self.url = f"http://127.0.0.1:{self.dp_port}" if double_url else self.cp_http
        self.idp = Idp(node_dir, tmp, self.url + "/auth/oidc/callback").start()
        env = {
            "CCAG_HTTP_ADDR": f"127.0.0.1:{self.http_port}",
            "CCAG_PUBLIC_URL": self.url,
            # The provider runs on loopback, which outbound calls may not reach otherwise.
            "CCAG_OUTBOUND_ALLOW_CIDRS": "127.0.0.1/32",
        }
        env.update({k: v.replace("{issuer}", self.idp.issuer) for k, v in (cp_env or {}).items()})
        self.fleet = Fleet(double_url or "", tmp, cp_env=env, dp_env={"CCAG_CONTROLPLANE_HTTP_URL": self.cp_http})
        self.fleet.start_cp()
        self.fleet.login()
        if double_url:
            self.fleet.dp_ports["a"] = self.dp_port
            self.fleet.start_dp("a")
        self.team = self.fleet.ccag_json("teams", "create", "--name", "eng")
        if create_idp:
            self.fleet.ccag(
                "idps", "create", "--name", "corp", "--issuer", self.idp.issuer, "--client-id", "gw-web",
                "--client-secret-stdin", "--scopes", "openid,email,profile,groups",
                "--allowed-domains", "example.test", "--admin-groups", "gw-admins", "--team-map", "eng=eng",
                stdin="gw-secret\n",
            )

    def stop(self):
        self.fleet.stop_all()
        self.idp.stop()

    def login_url(self, idp="corp", return_to=None):
        q = {"idp": idp}
        if return_to is not None:
            q["return_to"] = return_to
        return f"{self.url}/auth/oidc/login?{urllib.parse.urlencode(q)}"


@pytest.fixture(scope="module")
def gw(bins, node_dir, tmp_path_factory):
    g = Gateway(tmp_path_factory.mktemp("sso"), node_dir)
    yield g
    g.stop()


def _form_action(html):
    m = re.search(r'<form[^>]*action="([^"]+)"', html)
    assert m, f"no form on the provider's page: {html[:500]}"
    return m.group(1).replace("&amp;", "&")


def to_callback(gw, login, browser=None, return_to=None):
    """Starts a sign-in and plays the person at the provider's screens; returns
    (browser, callback URL) without opening the callback."""
    b = browser or requests.Session()
    r = b.get(gw.login_url(return_to=return_to), allow_redirects=False, timeout=10)
    assert r.status_code == 302, r.text
    assert "ccag_oidc" in r.cookies
    url = r.headers["location"]
    assert url.startswith(gw.idp.issuer + "/"), url
    q = urllib.parse.parse_qs(urllib.parse.urlparse(url).query)
    assert q["code_challenge_method"] == ["S256"] and q["state"] and q["nonce"], q
    assert q["redirect_uri"] == [gw.url + "/auth/oidc/callback"]
    ours = gw.url + "/"
    for _ in range(10):
        r = b.get(url, allow_redirects=False, timeout=10)
        while r.status_code in (302, 303):
            url = urllib.parse.urljoin(r.url, r.headers["location"])
            if url.startswith(ours):
                return b, url
            r = b.get(url, allow_redirects=False, timeout=10)
        action = urllib.parse.urljoin(r.url, _form_action(r.text))
        if 'name="login"' in r.text:
            data = {"prompt": "login", "login": login, "password": "x"}
        else:
            data = {"prompt": "consent"}
        r = b.post(action, data=data, allow_redirects=False, timeout=10)
        assert r.status_code in (302, 303), r.text[:500]
        url = urllib.parse.urljoin(r.url, r.headers["location"])
        if url.startswith(ours):
            return b, url
    raise AssertionError("the provider never sent the browser back")


def sign_in(gw, login, browser=None, return_to=None):
    """A whole sign-in; returns (browser, the callback's answer)."""
    b, callback = to_callback(gw, login, browser, return_to)
    return b, b.get(callback, allow_redirects=False, timeout=20)


def session_of(b, gw):
    return b.get(gw.url + "/auth/session", timeout=10)


def user(gw, email):
    return next(u for u in gw.fleet.ccag_json("users", "list") if u.get("email") == email)


# ------------------------------------------------------------------ signing in


def test_a_browser_signs_in_in_chromium_and_holds_only_an_http_only_session_cookie(gw, node_dir):
    env = dict(os.environ)
    env.update(
        {"START_URL": gw.login_url(return_to="/auth/signed-in"), "LOGIN": "alice", "ISSUER": gw.idp.issuer,
         "CHROMIUM": CHROMIUM}
    )
    p = subprocess.run(["node", str(node_dir / "browser.mjs")], cwd=node_dir, env=env, capture_output=True,
                       text=True, timeout=90)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["url"] == gw.url + "/auth/signed-in", out["text"]
    assert "Signed in as alice@example.test (admin)" in out["text"]
    ours = {c["name"]: c for c in out["cookies"] if c["name"].startswith("ccag_")}
    assert set(ours) == {"ccag_session"}, "the sign-in cookie is cleared once used"
    session = ours["ccag_session"]
    assert session["httpOnly"] and session["sameSite"] == "Lax"
    assert session["value"].startswith("ccag_ses_"), "an opaque gateway session, not a provider token"
    assert "ccag_session" not in out["documentCookie"], "scripts cannot read the session"


def test_first_sign_in_creates_the_user_with_the_role_and_team_its_groups_map_to(gw):
    b, r = sign_in(gw, "dave")
    assert r.status_code == 302 and r.headers["location"] == "/auth/signed-in"
    s = session_of(b, gw).json()
    assert s["email"] == "dave@example.test" and s["role"] == "member" and s["via"] == "oidc"
    dave = user(gw, "dave@example.test")
    assert dave["role"] == "member"
    assert gw.team["id"] in dave.get("team_ids", []), dave
    sessions = gw.fleet.ccag_json("sessions", "list", "--user", "dave@example.test")
    assert sessions and sessions[0]["via"] == "oidc" and sessions[0]["idp"] == "corp"
    audit = gw.fleet.ccag_json("audit", "list")
    assert any(a["action"] == "user.create" and a["actor"] == "idp:corp" for a in audit), audit[:5]


def test_a_member_of_the_admin_group_is_an_admin(gw):
    b, _ = sign_in(gw, "alice")
    assert session_of(b, gw).json()["role"] == "admin"


def test_a_session_cookie_planted_before_sign_in_is_replaced_and_ended(gw):
    attacker, _ = sign_in(gw, "erin")
    planted = attacker.cookies["ccag_session"]
    victim = requests.Session()
    victim.cookies.set("ccag_session", planted, domain="127.0.0.1", path="/")
    victim, r = sign_in(gw, "dave", browser=victim)
    assert r.cookies["ccag_session"] != planted
    assert session_of(victim, gw).json()["email"] == "dave@example.test"
    assert session_of(attacker, gw).status_code == 401, "the planted session ended"


# ------------------------------------------------------------------ refusals


def test_a_callback_with_a_state_the_gateway_never_issued_is_refused(gw):
    b, callback = to_callback(gw, "dave")
    forged = re.sub(r"state=[^&]+", "state=" + secrets.token_urlsafe(32), callback)
    r = b.get(forged, allow_redirects=False)
    assert r.status_code == 400 and "expired or was already used" in r.text
    assert "ccag_session" not in r.cookies


def test_a_replayed_callback_is_refused(gw):
    b, callback = to_callback(gw, "dave")
    assert b.get(callback, allow_redirects=False).status_code == 302
    again = b.get(callback, allow_redirects=False)
    assert again.status_code == 400 and "already used" in again.text


def test_a_callback_opened_in_another_browser_is_refused(gw):
    _, callback = to_callback(gw, "dave")
    r = requests.get(callback, allow_redirects=False)
    assert r.status_code == 400 and "another browser" in r.text
    assert "ccag_session" not in r.cookies


def test_a_user_outside_the_allowed_domains_is_refused(gw):
    _, r = sign_in(gw, "bob")
    assert r.status_code == 403
    assert "bob@elsewhere.test is not in a domain allowed to sign in here (example.test)" in r.text
    assert not any(u.get("email") == "bob@elsewhere.test" for u in gw.fleet.ccag_json("users", "list"))


def test_an_unverified_email_is_refused(gw):
    _, r = sign_in(gw, "carol")
    assert r.status_code == 403 and "not verified" in r.text


def test_an_id_token_for_another_audience_is_refused(gw):
    gw.idp.mode("aud")
    try:
        _, r = sign_in(gw, "dave")
    finally:
        gw.idp.mode("plain")
    assert r.status_code == 403 and "issued for another client" in r.text


def test_an_expired_id_token_is_refused(gw):
    gw.idp.mode("expired")
    try:
        _, r = sign_in(gw, "dave")
    finally:
        gw.idp.mode("plain")
    assert r.status_code == 403 and "expired" in r.text


def test_a_return_address_off_the_gateway_is_refused(gw):
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        r = requests.get(gw.login_url(return_to=target), allow_redirects=False)
        assert r.status_code == 400 and "a path on this gateway" in r.text, target


def test_an_unknown_provider_is_named_with_the_enabled_ones(gw):
    r = requests.get(gw.login_url(idp="nope"), allow_redirects=False)
    assert r.status_code == 404 and "corp" in r.text


# ------------------------------------------------------------------ sessions


def test_disabling_a_user_ends_their_session_at_once_and_refuses_their_next_sign_in(gw):
    b, _ = sign_in(gw, "erin")
    assert session_of(b, gw).status_code == 200
    gw.fleet.ccag("users", "update", "erin@example.test", "--status", "disabled")
    try:
        assert session_of(b, gw).status_code == 401
        _, r = sign_in(gw, "erin")
        assert r.status_code == 403 and "deactivated" in r.text
    finally:
        gw.fleet.ccag("users", "update", "erin@example.test", "--status", "active")


def test_an_admin_ends_a_session_and_its_cookie_stops_working(gw):
    b, _ = sign_in(gw, "dave")
    mine = [s for s in gw.fleet.ccag_json("sessions", "list", "--user", "dave@example.test")]
    assert mine
    for s in mine:
        gw.fleet.ccag("sessions", "revoke", s["id"])
    assert session_of(b, gw).status_code == 401


def test_signing_out_needs_the_csrf_token_from_the_same_origin(gw):
    b, _ = sign_in(gw, "dave")
    csrf = session_of(b, gw).json()["csrf_token"]
    assert b.post(gw.url + "/auth/logout").status_code == 403
    assert b.post(gw.url + "/auth/logout", headers={"x-csrf-token": "0" * 64}).status_code == 403
    cross = b.post(gw.url + "/auth/logout", headers={"x-csrf-token": csrf, "origin": "https://evil.example"})
    assert cross.status_code == 403
    assert session_of(b, gw).status_code == 200
    r = b.post(gw.url + "/auth/logout", headers={"x-csrf-token": csrf, "origin": gw.url})
    assert r.status_code == 200
    assert session_of(b, gw).status_code == 401


def test_an_unknown_user_is_refused_when_auto_provisioning_is_off(bins, node_dir, tmp_path):
    g = Gateway(tmp_path, node_dir)
    try:
        g.fleet.ccag("idps", "update", "corp", "--no-auto-provision")
        _, r = sign_in(g, "dave")
        assert r.status_code == 403 and "dave@example.test has no account on this gateway" in r.text
        g.fleet.ccag("users", "create", "--email", "dave@example.test")
        b, r = sign_in(g, "dave")
        assert r.status_code == 302, "a user an admin created signs in"
        assert session_of(b, g).json()["email"] == "dave@example.test"
    finally:
        g.stop()


def test_a_rotated_signing_key_is_fetched_and_accepted(bins, node_dir, tmp_path):
    g = Gateway(tmp_path, node_dir)
    try:
        assert sign_in(g, "dave")[1].status_code == 302
        g.idp.restart("k2")
        b, r = sign_in(g, "dave")
        assert r.status_code == 302, r.text
        assert session_of(b, g).status_code == 200
    finally:
        g.stop()


# ------------------------------------------------------------------ administration


def test_a_provider_is_checked_when_it_is_saved(gw):
    bad = gw.fleet.ccag("idps", "create", "--name", "slash", "--issuer", gw.idp.issuer + "/", "--client-id", "x",
                        check=False)
    assert bad.returncode != 0 and "names the issuer" in bad.stderr, bad.stderr
    meta = gw.fleet.ccag("idps", "create", "--name", "meta", "--issuer", "https://169.254.169.254", "--client-id",
                         "x", check=False)
    assert meta.returncode != 0 and "cloud metadata" in meta.stderr, meta.stderr
    plain = gw.fleet.ccag("idps", "create", "--name", "plain", "--issuer", "http://idp.example.com", "--client-id",
                          "x", check=False)
    assert plain.returncode != 0 and "https://" in plain.stderr, plain.stderr
    [corp] = [p for p in gw.fleet.ccag_json("idps", "list") if p["name"] == "corp"]
    assert corp["redirect_uri"] == gw.url + "/auth/oidc/callback"
    assert corp["has_client_secret"] is True
    assert "gw-secret" not in json.dumps(corp)
    assert corp["team_mappings"] == {"eng": gw.team["id"]}


def test_the_provider_list_for_a_sign_in_page_is_public(gw):
    r = requests.get(gw.url + "/auth/providers")
    assert r.ok
    assert {"name": "corp", "login_url": gw.login_url()} in r.json()["providers"]


def test_the_environment_sets_up_a_provider_and_admin_users_become_admins(bins, node_dir, tmp_path):
    env = {
        "OIDC_NAME": "corp",
        "OIDC_ISSUER": "{issuer}",
        "OIDC_CLIENT_ID": "gw-web",
        "OIDC_CLIENT_SECRET": "gw-secret",
        "OIDC_SCOPES": "openid email profile",
        "ADMIN_USERS": "erin@example.test",
    }
    g = Gateway(tmp_path, node_dir, cp_env=env, create_idp=False)
    try:
        [p] = g.fleet.ccag_json("idps", "list")
        assert p["source"] == "env" and p["issuer"] == g.idp.issuer
        b, r = sign_in(g, "erin")
        assert r.status_code == 302, r.text
        assert session_of(b, g).json()["role"] == "admin"

        def updates():
            return [a for a in g.fleet.ccag_json("audit", "list") if a["action"] == "idp.update"]

        g.fleet.stop_cp()
        g.fleet.start_cp()
        g.fleet.login()
        assert updates() == [], "a restart with the same environment changes nothing"
        g.fleet.stop_cp()
        g.fleet.cp_env["OIDC_SCOPES"] = "openid email"
        g.fleet.start_cp()
        g.fleet.login()
        assert len(updates()) == 1
        assert g.fleet.ccag_json("idps", "show", "corp")["scopes"] == "openid email"
        assert sign_in(g, "erin")[1].status_code == 302, "the client secret still opens"
    finally:
        g.stop()


def test_sign_ins_from_one_address_are_limited_per_minute(bins, node_dir, tmp_path):
    g = Gateway(tmp_path, node_dir)
    try:
        codes = [requests.get(g.login_url(), allow_redirects=False).status_code for _ in range(61)]
        assert codes[:60] == [302] * 60
        assert codes[60] == 429
    finally:
        g.stop()


def test_no_token_or_secret_reaches_the_log(gw):
    b, _ = sign_in(gw, "dave")
    token = b.cookies["ccag_session"]
    log = pathlib.Path(gw.fleet.cp.log_path).read_text()
    assert "signed in" in log
    for secret in (token, "gw-secret", "eyJ"):
        assert secret not in log, secret


def test_with_scim_on_an_unknown_user_is_told_they_are_not_provisioned(bins, node_dir, tmp_path):
    g = Gateway(tmp_path, node_dir)
    try:
        # Auto-provisioning stays on: the SCIM token alone turns it off.
        token = g.fleet.ccag_json("scim", "tokens", "create", "--idp", "corp", "--name", "entra")
        _, r = sign_in(g, "dave")
        assert r.status_code == 403 and "dave@example.test is not provisioned on this gateway" in r.text, r.text
        g.fleet.ccag("scim", "tokens", "revoke", token["id"])
        b, r = sign_in(g, "dave")
        assert r.status_code == 302, "without a SCIM token the provider provisions again"
        assert session_of(b, g).json()["email"] == "dave@example.test"
    finally:
        g.stop()
