"""The portal in real Chromium (Debian's, through npm playwright-core from
portal/'s lockfile), against the real control plane and data plane and the
Bedrock double: one browser session walks what an admin and a member do
(portal/tests/portal.mjs), and each test below judges one behaviour of
what it saw. The run's screenshots are docs/portal.md's pictures.
"""

import json
import os
import pathlib
import shutil
import subprocess

import pytest

from fleet import ADMIN_PASSWORD, Fleet, free_port

ROOT = pathlib.Path(__file__).resolve().parents[3]
PORTAL = ROOT / "portal"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = pathlib.Path(os.environ.get("CCAG_PORTAL_SCREENSHOTS", ROOT / "docs" / "portal"))
MEMBER_EMAIL = "dev@example.com"
MEMBER_PASSWORD = "member-password-1"


@pytest.fixture(scope="module")
def walk(bins, shared_double_url, tmp_path_factory):
    assert (PORTAL / "node_modules" / "playwright-core").exists(), "run `npm ci --prefix portal` (./test.sh does)"
    assert (PORTAL / "dist" / "index.html").exists(), "build the portal first (./test.sh does)"
    tmp = tmp_path_factory.mktemp("portal")
    http_port, dp_port = free_port(), free_port()
    public = f"http://127.0.0.1:{dp_port}"
    fleet = Fleet(
        shared_double_url,
        tmp,
        cp_env={"CCAG_HTTP_ADDR": f"127.0.0.1:{http_port}", "CCAG_PUBLIC_URL": public},
        dp_env={"CCAG_CONTROLPLANE_HTTP_URL": f"http://127.0.0.1:{http_port}"},
    )
    fleet.start_cp()
    fleet.login()
    fleet.dp_ports["a"] = dp_port
    fleet.start_dp("a")
    fleet.ccag("users", "create", "--email", MEMBER_EMAIL, "--role", "member", "--password-stdin",
               stdin=MEMBER_PASSWORD + "\n")
    env = dict(os.environ)
    env.update({
        "GATEWAY": public,
        "ADMIN_PASSWORD": ADMIN_PASSWORD,
        "MEMBER_EMAIL": MEMBER_EMAIL,
        "MEMBER_PASSWORD": MEMBER_PASSWORD,
        "CHROMIUM": CHROMIUM,
        "SCREENSHOTS": str(SCREENSHOTS),
    })
    p = subprocess.run(["node", str(PORTAL / "tests" / "portal.mjs")], cwd=PORTAL, env=env, capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    seen = json.loads(p.stdout.strip().splitlines()[-1])
    seen["audit"] = fleet.ccag_json("audit", "list")
    yield seen
    fleet.stop_all()


def step(walk, name):
    assert "error" not in walk, walk["error"]
    return walk["steps"][name]


def test_the_walk_ran_without_a_script_error_or_a_csp_violation(walk):
    assert "error" not in walk, walk["error"]
    assert walk["problems"] == [], walk["problems"]


def test_an_admin_signs_in_with_a_password_and_lands_on_the_analytics(walk):
    assert step(walk, "admin_landing") == "/portal/"
    assert step(walk, "pages")["dataplanes"]["title"] == "Data planes"


def test_the_session_is_an_http_only_cookie_and_nothing_is_kept_in_storage(walk):
    assert "ccag_session" not in step(walk, "document_cookie")
    assert step(walk, "local_storage") == 0


def test_a_new_key_is_shown_once(walk):
    assert step(walk, "key_prefix").startswith("sk-ccag-")
    assert step(walk, "secret_after_reload") == 0
    assert step(walk, "secret_in_page_after_reload") is False


def test_a_request_with_the_key_shows_in_my_usage_and_in_the_analytics_with_its_cost(walk):
    assert step(walk, "first_request") == 200
    assert step(walk, "my_requests") == "1"
    assert step(walk, "total_requests") == "1"
    cost = step(walk, "my_cost")
    assert cost.startswith("$") and float(cost[1:]) > 0, cost
    assert step(walk, "total_cost") == cost


def test_a_team_budget_set_in_the_portal_is_shown(walk):
    assert step(walk, "team_budget") == "$50.00"


def test_a_key_revoked_in_the_portal_is_refused_by_the_data_plane(walk):
    assert step(walk, "after_revoke") == 401


def test_every_main_page_opens_without_an_error(walk):
    pages = step(walk, "pages")
    assert {name: p["errors"] for name, p in pages.items()} == {name: 0 for name in pages}


def test_the_audit_log_page_shows_each_change(walk):
    text = step(walk, "audit_text")
    for action in ("key.create", "key.revoke", "team.create", "budget.set"):
        assert action in text, action
    actions = {e.get("action") for e in walk["audit"]}
    assert {"key.create", "key.revoke", "team.create", "budget.set"} <= actions, actions


def test_a_member_signs_in_with_the_keyboard_alone_on_a_phone_and_sees_no_admin_pages(walk):
    assert step(walk, "member_landing") == "/portal/"
    nav = step(walk, "member_nav")
    assert "My usage" in nav and "Analytics" not in nav and "Users" not in nav, nav
    assert step(walk, "member_admin_page") == "Admins only"


def test_a_member_is_refused_admin_calls_at_the_api(walk):
    permission_denied = 7
    assert step(walk, "member_list_audit") == permission_denied
    assert step(walk, "member_get_status") == permission_denied
    # Listing users is allowed and shows a member only themselves.
    assert step(walk, "member_list_users_status") == 0


def test_each_main_page_has_its_screenshot(walk):
    assert "error" not in walk, walk["error"]
    for name in ("signin", "usage", "usage-phone", "keys", "analytics", "team", "audit", "connect", "dataplanes"):
        assert (SCREENSHOTS / f"{name}.png").stat().st_size > 5000, name
