"""The browser suite: Playwright drives Debian's Chromium against the real platform.

One platform (NATS, the services, the web app, the gateway, and the test OpenID Provider
when one runs) serves the whole suite; each test makes its own people with fresh handles,
so tests do not see each other's data except where they share it on purpose. Each test
saves screenshots under `var/screenshots/` and checks every page it visits with axe-core.
"""

import json
import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from deploy.launch import Platform
from shared.testing.backends import require_chromium
from shared.testing.oidc import provider_config
from tests.e2e.conftest import create_admin, started_platform

SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
PASSWORD = "a long browser-test passphrase"
# axe-core impacts that fail a page (minor and moderate ones are reported, not failed).
BLOCKING_IMPACTS = {"serious", "critical"}


@pytest.fixture(scope="package")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    # The suite is dozens of people signing up and in from one address: the per-address
    # sign-up and sign-in quotas (proven by the gateway's own tests) would refuse the
    # later tests' people.
    generous = '{"limit": 100000, "window": 60}'
    extra: dict[str, str] = {
        f"KNOWFLOW_RATE_LIMIT_{name}": generous for name in ("REGISTER_IP", "LOGIN_IP", "AUTH")
    }
    issuer = os.environ.get("KNOWFLOW_TEST_OIDC_URL")
    if issuer:
        extra["KNOWFLOW_OIDC_PROVIDERS"] = json.dumps([provider_config(issuer.rstrip("/"))])
    with started_platform(tmp_path_factory, extra_env=extra) as running:
        yield running


@pytest.fixture(scope="package")
def api(platform: Platform) -> Iterator[httpx.Client]:
    """The public API, for setting up what a test needs faster than through pages."""
    with httpx.Client(base_url=f"{platform.gateway_url}/api/v1", timeout=30.0) as client:
        yield client


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    executable = require_chromium()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True)
        yield launched
        launched.close()


@pytest.fixture(scope="package")
def axe() -> Axe:
    return Axe()


@dataclass(frozen=True)
class Person:
    handle: str
    display_name: str
    id: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def new_person(api: httpx.Client, name: str) -> Person:
    """Someone with an account, registered through the API (a fresh handle per call)."""
    handle = f"{name.lower()}_{secrets.token_hex(3)}"
    response = api.post(
        "/auth/register",
        json={
            "handle": handle,
            "email": f"{handle}@example.org",
            "password": PASSWORD,
            "display_name": f"{name} {handle[-6:].upper()}",
        },
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return Person(handle, body["user"]["display_name"], body["user"]["id"], body["access_token"])


def new_admin(platform: Platform, api: httpx.Client) -> Person:
    handle = f"admin_{secrets.token_hex(3)}"
    account: dict[str, Any] = create_admin(platform, api, handle)
    return Person(
        handle, account["user"]["display_name"], account["user"]["id"], account["access_token"]
    )


@pytest.fixture
def context(browser: Browser, platform: Platform) -> Iterator[BrowserContext]:
    context = browser.new_context(
        base_url=platform.gateway_url, viewport={"width": 1280, "height": 900}
    )
    context.set_default_timeout(15_000)
    yield context
    context.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


def sign_in(page: Page, person: Person, password: str = PASSWORD) -> None:
    """Through the sign-in form, as a person would."""
    page.goto("/login")
    page.get_by_label("Handle or e-mail").fill(person.handle)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_load_state()
    assert page.get_by_role("button", name="Sign out").is_visible(), page.content()[:2000]


def screenshot(page: Page, request: pytest.FixtureRequest, name: str) -> Path:
    """A full-page screenshot under var/screenshots/, named for the test and the step."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    test = re.sub(r"[^A-Za-z0-9_-]+", "-", request.node.name)[:80]
    path = SCREENSHOTS / f"{test}--{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def assert_accessible(page: Page, axe: Axe) -> None:
    """axe-core finds no serious or critical violation on the page as it is now."""
    results = axe.run(page)
    violations = [
        violation
        for violation in results.response["violations"]
        if violation.get("impact") in BLOCKING_IMPACTS
    ]
    described = [
        f"{violation['id']} ({violation['impact']}): {violation['help']} at "
        + ", ".join(str(node["target"]) for node in violation["nodes"][:5])
        for violation in violations
    ]
    assert not violations, f"{page.url}:\n" + "\n".join(described)
