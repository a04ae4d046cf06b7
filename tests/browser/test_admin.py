"""The admin pages in a real browser: knowledge-health charts, a role changed and read back
in the audit log, a webhook made (its secret shown once) and managed; everyone else gets
the 403 page on every admin URL."""

import secrets
import uuid

import httpx
import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, expect

from deploy.launch import Platform
from shared.testing.fixtures import eventually
from tests.browser.conftest import (
    Person,
    assert_accessible,
    new_admin,
    new_person,
    screenshot,
    sign_in,
)
from tests.e2e.conftest import ADMIN_PASSWORD


def sign_in_admin(page: Page, admin: Person) -> None:
    sign_in(page, admin, password=ADMIN_PASSWORD)


def ask(
    api: httpx.Client, person: Person, title: str, tag: str, group_id: str | None = None
) -> str:
    response = api.post(
        "/questions",
        json={"title": title, "body": "Details follow.", "tags": [tag], "group_id": group_id},
        headers=person.headers,
    )
    assert response.status_code == 201, response.text
    question_id: str = response.json()["id"]
    return question_id


def answer(api: httpx.Client, person: Person, question_id: str) -> None:
    response = api.post(
        f"/questions/{question_id}/answers",
        json={"body": "Here is how we do it."},
        headers=person.headers,
    )
    assert response.status_code == 201, response.text


def test_an_admin_sees_knowledge_health_as_charts_with_their_figures_in_a_table(
    page: Page, platform: Platform, api: httpx.Client, axe: Axe, request: pytest.FixtureRequest
) -> None:
    admin = new_admin(platform, api)
    asker, helper = new_person(api, "Asker"), new_person(api, "Helper")
    healthy, fragile = f"healthy{secrets.token_hex(2)}", f"fragile{secrets.token_hex(2)}"
    for index in range(3):
        answer(api, helper, ask(api, asker, f"How do we deploy service {index}?", healthy))
    ask(api, asker, "Who understands the billing cron?", fragile)
    group = api.post(
        "/groups",
        json={"name": "Platform team", "slug": f"platform-{healthy}", "visibility": "open"},
        headers=admin.headers,
    )
    assert group.status_code == 201, group.text
    group_id = group.json()["id"]
    joined = api.post(
        f"/groups/{group_id}/members", json={"user_id": helper.id}, headers=helper.headers
    )
    assert joined.status_code == 201, joined.text
    in_group = ask(api, admin, "How do we rotate the TLS keys?", healthy, group_id)
    # Membership reaches posts over the bus: the helper may answer once it has.
    eventually(
        lambda: api.post(
            f"/questions/{in_group}/answers",
            json={"body": "With the rotation script."},
            headers=helper.headers,
        ).status_code
        == 201
    )

    sign_in_admin(page, admin)
    page.get_by_role("link", name="Admin", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Knowledge health")
    answered = page.get_by_role("img", name="Share of questions answered")
    expect(answered).to_be_visible()
    expect(answered).to_contain_text(f"#{healthy}")
    expect(page.get_by_role("img", name="Median time to first answer (hours)")).to_be_visible()
    expect(page.get_by_role("img", name="Bus factor: people who answered")).to_be_visible()
    # The fragile tag's bar is drawn as a warning: nobody answered it.
    assert page.locator("#tags-answered rect.bar.warn").count() >= 1
    # Bars are drawn with geometry attributes, never style (the CSP forbids inline styles).
    assert page.locator("svg [style]").count() == 0
    row = page.get_by_role("row").filter(has_text=f"#{healthy}")
    expect(row.get_by_role("cell").nth(1)).to_have_text("100%")
    expect(page.get_by_role("row").filter(has_text=f"#{fragile}")).to_contain_text("0%")
    assert_accessible(page, axe)
    screenshot(page, request, "health")

    page.get_by_role("link", name="Platform team").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Knowledge health: Platform team")
    expect(page.get_by_role("img", name="Share of questions answered")).to_contain_text(
        f"#{healthy}"
    )
    expect(page.get_by_role("img", name="Share of questions answered")).not_to_contain_text(
        f"#{fragile}"
    )
    assert_accessible(page, axe)
    screenshot(page, request, "group-health")


def test_an_admin_changes_a_role_and_reads_the_audit_entry_it_made(
    page: Page, platform: Platform, api: httpx.Client, axe: Axe, request: pytest.FixtureRequest
) -> None:
    admin = new_admin(platform, api)
    person = new_person(api, "Promoted")
    sign_in_admin(page, admin)
    page.goto("/admin")
    page.get_by_role("link", name="Users and roles").click()
    page.get_by_label("Name or handle").fill(person.handle)
    page.get_by_role("button", name="Find").click()
    row = page.get_by_role("row").filter(has_text=person.handle)
    expect(row).to_have_count(1)
    assert_accessible(page, axe)
    screenshot(page, request, "users")
    row.get_by_label(f"Role of {person.display_name}", exact=True).select_option("analyst")
    row.get_by_role("button", name=f"Change role of {person.display_name}").click()
    expect(page.get_by_role("status").first).to_contain_text("The role is changed")
    expect(page.get_by_label(f"Role of {person.display_name}", exact=True)).to_have_value("analyst")
    assert (
        api.get(f"/users?q={person.handle}", headers=admin.headers).json()["items"][0]["role"]
        == "analyst"
    )

    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name=f"Deactivate {person.display_name}").click()
    expect(page.get_by_role("status").first).to_contain_text("deactivated")
    page.get_by_label("Include deactivated people").check()
    page.get_by_role("button", name="Find").click()
    page.get_by_role("button", name=f"Reactivate {person.display_name}").click()
    expect(page.get_by_role("status").first).to_contain_text("reactivated")

    page.get_by_role("link", name="Audit log").click()
    page.get_by_label("Action").fill("user.role_changed")
    page.get_by_role("button", name="Filter").click()
    entry = page.get_by_role("row").filter(has_text=person.display_name).first
    expect(entry).to_contain_text("user.role_changed")
    expect(entry).to_contain_text(admin.display_name)
    expect(entry).to_contain_text("analyst")
    assert_accessible(page, axe)
    screenshot(page, request, "audit")

    # A filter the API refuses is said on the page, not a crash.
    page.goto("/admin/audit?actor_id=not-a-person")
    expect(page.get_by_role("alert")).to_contain_text("Check the filters")


def test_an_admin_creates_a_webhook_sees_its_secret_once_and_manages_it(
    page: Page, platform: Platform, api: httpx.Client, axe: Axe, request: pytest.FixtureRequest
) -> None:
    admin = new_admin(platform, api)
    sign_in_admin(page, admin)
    page.goto("/admin/webhooks")
    assert_accessible(page, axe)
    url = f"https://hooks.example.org/{secrets.token_hex(4)}"
    page.get_by_label("URL").fill("not a url")
    page.get_by_label("URL").evaluate("element => element.type = 'text'")
    page.get_by_role("button", name="Add endpoint").click()
    expect(page.get_by_role("alert")).to_be_visible()
    page.get_by_label("URL").fill(url)
    page.get_by_label("Description", exact=True).fill("Chat bridge")
    page.get_by_role("group", name="Public events").get_by_label(
        "knowflow.question.created.v1"
    ).check()
    page.get_by_role("button", name="Add endpoint").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Webhook created")
    secret = page.get_by_label("Signing secret").input_value()
    assert secret.startswith("whsec_")
    assert_accessible(page, axe)
    screenshot(page, request, "secret")

    page.get_by_role("link", name="Go to the endpoint and its deliveries").click()
    expect(page.get_by_text(url)).to_be_visible()
    expect(page.get_by_text("knowflow.question.created.v1")).to_be_visible()
    assert secret not in page.content()  # shown only once
    assert_accessible(page, axe)
    screenshot(page, request, "endpoint")

    page.get_by_role("button", name="Disable").click()
    expect(page.get_by_role("status").first).to_contain_text("disabled")
    page.get_by_role("button", name="Enable").click()
    expect(page.get_by_role("status").first).to_contain_text("enabled again")

    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Rotate secret").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("New webhook secret")
    rotated = page.get_by_label("Signing secret").input_value()
    assert rotated.startswith("whsec_") and rotated != secret
    page.get_by_role("link", name="Go to the endpoint and its deliveries").click()

    page.get_by_label("Deliver again every event since (UTC)").fill("2026-01-01T00:00")
    page.get_by_role("button", name="Replay").click()
    expect(page.get_by_role("status").first).to_contain_text("queued")

    page.get_by_role("link", name="Webhooks", exact=True).click()
    expect(page.get_by_role("link", name=url)).to_be_visible()
    assert_accessible(page, axe)
    screenshot(page, request, "webhooks")
    page.get_by_role("link", name=url).click()
    page.get_by_role("button", name="Delete").click()
    expect(page.get_by_role("status").first).to_contain_text("deleted")
    expect(page.get_by_role("link", name=url)).to_have_count(0)


def test_anyone_but_an_admin_gets_the_403_page_on_every_admin_url(
    page: Page, platform: Platform, api: httpx.Client, axe: Axe, request: pytest.FixtureRequest
) -> None:
    admin = new_admin(platform, api)
    member = new_person(api, "Curious")
    analyst = new_person(api, "Analyst")
    promoted = api.put(f"/users/{analyst.id}/role", json={"role": "analyst"}, headers=admin.headers)
    assert promoted.status_code == 200, promoted.text
    endpoint = api.post(
        "/webhooks/endpoints",
        json={"url": "https://hooks.example.org/secret-place"},
        headers=admin.headers,
    )
    assert endpoint.status_code == 201, endpoint.text
    endpoint_id = endpoint.json()["id"]
    urls = [
        "/admin",
        f"/admin/groups/{uuid.uuid4()}",
        "/admin/users",
        "/admin/audit",
        "/admin/webhooks",
        f"/admin/webhooks/{endpoint_id}",
    ]
    for person in (member, analyst):
        sign_in(page, person)
        expect(page.get_by_role("link", name="Admin", exact=True)).to_have_count(0)
        for url in urls:
            response = page.goto(url)
            assert response is not None and response.status == 403, url
            expect(page.get_by_role("heading", level=1)).to_have_text("Not yours to see or do")
            assert "secret-place" not in page.content()
        assert_accessible(page, axe)
        screenshot(page, request, f"forbidden-{person.handle.split('_')[0]}")
        # Forms too: a forged POST changes nothing.
        csrf = page.locator("input[name=csrf_token]").first.get_attribute("value")
        for action in (
            f"/admin/users/{member.id}/role",
            f"/admin/users/{admin.id}/deactivate",
            f"/admin/webhooks/{endpoint_id}/delete",
        ):
            refused = page.request.post(action, form={"csrf_token": csrf or "", "role": "admin"})
            assert refused.status == 403, action
        page.get_by_role("button", name="Sign out").click()
    assert api.get(f"/webhooks/endpoints/{endpoint_id}", headers=admin.headers).status_code == 200
    me = api.get(f"/users/{member.id}", headers=admin.headers).json()
    assert me["active"]

    # Nobody signed in is sent to sign in first.
    page.goto("/admin/webhooks")
    expect(page.get_by_role("heading", name="Sign in to Knowflow")).to_be_visible()
