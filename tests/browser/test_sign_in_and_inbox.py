"""Signing up, in and out in a real browser; the inbox updating live; forms and /docs safe."""

import email
import email.policy
import re
import time
from urllib.parse import urlsplit

import httpx
import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import BrowserContext, Page, expect

from deploy.launch import Platform
from shared.testing.backends import require_oidc_provider
from tests.browser.conftest import (
    PASSWORD,
    assert_accessible,
    new_person,
    screenshot,
    sign_in,
)


def test_a_newcomer_creates_an_account_signs_out_and_signs_in_again(
    page: Page, axe: Axe, request: pytest.FixtureRequest
) -> None:
    page.goto("/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Learn from the people you work with")
    assert_accessible(page, axe)
    page.get_by_role("link", name="Create an account").click()
    handle = f"newcomer_{int(time.time() * 1000) % 10**8}"
    page.get_by_label("Handle").fill(handle)
    page.get_by_label("Your name").fill("Nora Newcomer")
    page.get_by_label("E-mail").fill(f"{handle}@example.org")
    page.get_by_label("Password").fill(PASSWORD)
    assert_accessible(page, axe)
    screenshot(page, request, "register")
    page.get_by_role("button", name="Create account").click()

    expect(page.get_by_role("status").first).to_contain_text("Welcome to Knowflow")
    expect(page.get_by_role("link", name="Nora Newcomer")).to_be_visible()
    assert_accessible(page, axe)
    screenshot(page, request, "home")

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in to Knowflow")).to_be_visible()
    page.get_by_label("Handle or e-mail").fill(handle)
    page.get_by_label("Password").fill("not the password at all")
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("alert")).to_be_visible()
    assert_accessible(page, axe)
    screenshot(page, request, "wrong-password")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def test_a_page_that_needs_a_person_sends_a_visitor_to_sign_in_and_back(
    page: Page, api: httpx.Client
) -> None:
    person = new_person(api, "Returner")
    page.goto("/inbox")
    assert urlsplit(page.url).path == "/login"
    page.get_by_label("Handle or e-mail").fill(person.handle)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("heading", name="Inbox", exact=True)).to_be_visible()
    assert urlsplit(page.url).path == "/inbox"


def test_the_inbox_shows_a_mention_live_and_counts_it_unread(
    page: Page, api: httpx.Client, axe: Axe, request: pytest.FixtureRequest
) -> None:
    reader = new_person(api, "Reader")
    writer = new_person(api, "Writer")
    sign_in(page, reader)
    page.goto("/inbox")
    expect(page.get_by_text("Nothing here yet")).to_be_visible()
    badge = page.locator("#unread-badge")
    expect(badge).to_be_hidden()
    # The page is open and left alone: the mention must arrive without a reload.
    page.wait_for_timeout(500)  # the event stream connects
    response = api.post(
        "/posts",
        json={"body": f"@{reader.handle} could you look at #deployments?"},
        headers=writer.headers,
    )
    assert response.status_code == 201, response.text
    item = page.locator("[data-inbox] li.card").first
    expect(item).to_contain_text("mentioned", timeout=20_000)
    expect(badge).to_be_visible()
    expect(badge).to_contain_text("1")
    assert_accessible(page, axe)
    screenshot(page, request, "live-mention")

    page.reload()
    expect(page.locator("[data-inbox] li.card.unread")).to_have_count(1)
    page.get_by_role("button", name="Mark read").click()
    expect(page.locator("[data-inbox] li.card.unread")).to_have_count(0)
    expect(page.locator("#unread-badge")).to_be_hidden()


def test_a_form_without_the_sessions_csrf_token_is_refused(
    platform: Platform, api: httpx.Client
) -> None:
    person = new_person(api, "Target")
    with httpx.Client(base_url=platform.gateway_url) as browserless:
        browserless.get("/login")  # a session cookie, whose CSRF secret we do not send
        refused = browserless.post("/login", data={"login": person.handle, "password": PASSWORD})
        assert refused.status_code == 403
        assert "expired or did not come from Knowflow" in refused.text
        forged = browserless.post(
            "/login",
            data={"login": person.handle, "password": PASSWORD, "csrf_token": "guessed"},
        )
        assert forged.status_code == 403
        # Still nobody signed in.
        assert browserless.get("/inbox").headers["location"].startswith("/login")


def test_pages_send_a_strict_content_security_policy_and_httponly_cookies(
    platform: Platform,
) -> None:
    response = httpx.get(f"{platform.gateway_url}/login")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_the_api_docs_render_with_nothing_loaded_from_another_site(
    context: BrowserContext, platform: Platform, request: pytest.FixtureRequest
) -> None:
    elsewhere: list[str] = []

    def only_here(route, intercepted) -> None:  # type: ignore[no-untyped-def]
        if urlsplit(intercepted.url).hostname != "127.0.0.1":
            elsewhere.append(intercepted.url)
            route.abort()
        else:
            route.continue_()

    page = context.new_page()
    page.route("**/*", only_here)
    page.goto("/docs")
    expect(page.locator(".opblock").first).to_be_visible(timeout=30_000)
    expect(page.get_by_text("/api/v1/questions").first).to_be_visible()
    screenshot(page, request, "docs")
    assert elsewhere == []


def test_a_keyboard_alone_reaches_the_content_and_every_control_shows_its_focus(
    page: Page, api: httpx.Client, request: pytest.FixtureRequest
) -> None:
    person = new_person(api, "Keyboard")
    sign_in(page, person)
    page.goto("/inbox")
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    expect(skip).to_be_in_viewport()
    screenshot(page, request, "skip-link")
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()
    # From there on, every control of the page (here: the inbox's filters, its button, the
    # footer's links) is reached in order and draws an outline (:focus-visible).
    reached = []
    for _ in range(5):
        page.keyboard.press("Tab")
        reached.append(page.evaluate("() => document.activeElement.textContent.trim()"))
        outline = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
        assert outline not in ("none", ""), page.evaluate("() => document.activeElement.outerHTML")
    assert reached == ["All", "Unread", "Mark all read", "API", "Events"]


def test_a_forgotten_password_is_replaced_through_the_e_mailed_link(
    page: Page, api: httpx.Client, platform: Platform, axe: Axe, request: pytest.FixtureRequest
) -> None:
    person = new_person(api, "Forgetful")
    page.goto("/login")
    page.get_by_role("link", name="Get a link to choose a new one").click()
    page.get_by_label("E-mail address of your account").fill(f"{person.handle}@example.org")
    page.get_by_role("button", name="Send me a link").click()
    expect(page.get_by_role("status")).to_contain_text("an e-mail with a link")
    assert_accessible(page, axe)

    # No SMTP server configured: the platform writes each e-mail to a file (var/mail).
    link = None
    for _attempt in range(60):
        for mail in (platform.var_dir / "mail").glob("*.eml"):
            message = email.message_from_bytes(mail.read_bytes(), policy=email.policy.default)
            if message["To"] == f"{person.handle}@example.org":
                text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
                link = re.search(r"(/reset-password#token=\S+)", text)
        if link:
            break
        time.sleep(0.5)
    assert link, "no reset e-mail arrived"
    page.goto(link.group(1))
    expect(page.get_by_label("Code from the e-mail")).not_to_have_value("")
    page.get_by_label("New password", exact=True).fill("a brand new long passphrase")
    assert_accessible(page, axe)
    screenshot(page, request, "reset")
    page.get_by_role("button", name="Set the new password").click()
    expect(page.get_by_role("status").first).to_contain_text("Your password is changed")
    sign_in(page, person, password="a brand new long passphrase")


def test_single_sign_on_through_the_organisations_provider_lands_back_where_one_was_going(
    page: Page, axe: Axe, request: pytest.FixtureRequest
) -> None:
    require_oidc_provider()  # the platform was started with it as provider `test`
    login = f"sso_{int(time.time() * 1000) % 10**8}"
    page.goto("/inbox")  # needs a person: to sign-in, then back here
    assert urlsplit(page.url).path == "/login"
    assert_accessible(page, axe)
    screenshot(page, request, "sign-in-choices")
    page.get_by_role("link", name="Sign in with test").click()
    # The provider's own pages (oidc-provider's development login and consent forms).
    page.locator("input[name=login]").fill(login)
    page.locator("input[name=password]").fill("any")
    page.locator("button[type=submit]").click()
    page.locator("button[type=submit]").click()  # consent
    expect(page.get_by_role("heading", name="Inbox", exact=True)).to_be_visible()
    assert urlsplit(page.url).path == "/inbox"
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
