"""The hub on a server with --auth: a login form, the token kept in an HttpOnly,
SameSite=Strict cookie no script can read, and CSRF protection on writes made with it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.hub.conftest import Hub, _lockstep, screenshot
from tests.serverproc import served

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def auth_hub(hub_store: tuple[Path, dict[str, str]]) -> Iterator[tuple[Hub, str]]:
    root, runs = hub_store
    token = _lockstep(root, "server", "token", "create", "--user", "ann", "--role", "write").strip()
    with served(root, "--auth", "--quiet") as url:
        yield Hub(url=url, root=root, runs=runs), token


def test_login_keeps_the_token_in_an_httponly_cookie(page: Page, auth_hub: tuple[Hub, str]) -> None:
    hub, token = auth_hub
    page.goto(f"{hub.url}/p/default/runs?exp=sweep")
    expect(page).to_have_url(f"{hub.url}/login?next=%2Fp%2Fdefault%2Fruns%3Fexp%3Dsweep")
    form = page.get_by_role("form", name="Log in")
    form.get_by_label("Token").fill("lst_not-a-token")
    form.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("does not know this token")
    screenshot(page, "login-refused")
    form.get_by_label("Token").fill(token)
    form.get_by_role("button", name="Log in").click()
    # Back where the user was going, logged in.
    expect(page.get_by_role("grid", name="Runs")).to_be_visible()
    assert page.url == f"{hub.url}/p/default/runs?exp=sweep"
    expect(page.get_by_text("ann (write)")).to_be_visible()
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert cookies["lockstep_token"]["value"] == token
    assert cookies["lockstep_token"]["httpOnly"] is True
    assert cookies["lockstep_token"]["sameSite"] == "Strict"
    assert cookies["lockstep_csrf"]["sameSite"] == "Strict"
    assert token not in page.evaluate("() => document.cookie")
    screenshot(page, "runs-logged-in")
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("form", name="Log in")).to_be_visible()
    assert "lockstep_token" not in {c["name"] for c in page.context.cookies()}
    page.goto(f"{hub.url}/p/default/datasets")
    expect(page.get_by_role("form", name="Log in")).to_be_visible()


def test_writes_with_the_cookie_need_the_csrf_token(auth_hub: tuple[Hub, str]) -> None:
    hub, token = auth_hub
    run = hub.runs["shifted"]
    tags = f"{hub.url}/api/v1/projects/default/runs/{run}/tags"
    with httpx.Client() as anonymous:
        assert anonymous.get(f"{hub.url}/api/v1/projects/default/runs/{run}").status_code == 401
    with httpx.Client(base_url=hub.url) as browser_like:
        logged = browser_like.post("/api/v1/hub/login", json={"token": token})
        assert logged.json()["ok"] is True
        csrf = browser_like.cookies["lockstep_csrf"]
        assert browser_like.get(f"/api/v1/projects/default/runs/{run}").status_code == 200
        # A cross-site form or script has the cookie sent, but cannot read the CSRF one.
        forged = browser_like.post(tags, json={"tags": {"forged": "yes"}})
        assert forged.status_code == 403 and "CSRF" in forged.json()["error"]
        wrong = browser_like.post(
            tags, json={"tags": {"forged": "yes"}}, headers={"x-csrf-token": "guess"}
        )
        assert wrong.status_code == 403
        made = browser_like.post(
            tags, json={"tags": {"reviewed": "yes"}}, headers={"x-csrf-token": csrf}
        )
        assert made.status_code == 204
        shown = browser_like.get(f"/api/v1/projects/default/runs/{run}").json()["tags"]
        assert shown.get("reviewed") == "yes" and "forged" not in shown
    # A bearer token (scripts, the CLI) needs no CSRF token: no browser sends it by itself.
    plain = httpx.delete(
        tags, params={"key": "reviewed"}, headers={"authorization": f"Bearer {token}"}
    )
    assert plain.status_code == 204


def test_the_page_carries_a_strict_content_security_policy(auth_hub: tuple[Hub, str]) -> None:
    hub, _ = auth_hub
    answer = httpx.get(f"{hub.url}/login")
    policy = answer.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy and "object-src 'none'" in policy
    assert answer.headers["x-content-type-options"] == "nosniff"
    # The built page has no inline script for the policy to allow.
    assert "<script>" not in answer.text and '<script type="module" crossorigin src=' in answer.text
