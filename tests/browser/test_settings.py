"""One's settings and digest in a real browser: profile, password, notification
preferences kept across a reload, the data export, and the digest preview (which never
shows a private group's content to an outsider)."""

import json
import secrets

import httpx
import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, expect

from shared.testing.fixtures import eventually
from tests.browser.conftest import (
    PASSWORD,
    Person,
    assert_accessible,
    new_person,
    screenshot,
    sign_in,
)


def test_notification_preferences_are_kept_after_a_reload(
    page: Page, api: httpx.Client, axe: Axe, request: pytest.FixtureRequest
) -> None:
    person = new_person(api, "Prefs")
    sign_in(page, person)
    page.get_by_role("link", name="Settings").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Settings")
    assert_accessible(page, axe)
    screenshot(page, request, "settings")

    page.get_by_role("group", name="Someone mentions me").get_by_label("Inbox and e-mail").check()
    page.get_by_role("group", name="My digest is ready").get_by_label("Off").check()
    page.get_by_role("group", name="How often").get_by_label("Weekly").check()
    page.get_by_label("At", exact=True).select_option("07:00")
    page.get_by_label("Time zone").select_option("Europe/Berlin")
    page.get_by_label("Keep quiet hours").check()
    page.get_by_label("From", exact=True).fill("21:30")
    page.get_by_label("Until", exact=True).fill("06:45")
    page.get_by_role("button", name="Save notification preferences").click()
    expect(page.get_by_role("status").first).to_contain_text("notification preferences are saved")

    page.reload()
    mention = page.get_by_role("group", name="Someone mentions me")
    expect(mention.get_by_label("Inbox and e-mail")).to_be_checked()
    expect(page.get_by_role("group", name="My digest is ready").get_by_label("Off")).to_be_checked()
    expect(page.get_by_role("group", name="How often").get_by_label("Weekly")).to_be_checked()
    expect(page.get_by_label("At", exact=True)).to_have_value("7")
    expect(page.get_by_label("Time zone")).to_have_value("Europe/Berlin")
    expect(page.get_by_label("Keep quiet hours")).to_be_checked()
    expect(page.get_by_label("From", exact=True)).to_have_value("21:30")
    assert_accessible(page, axe)
    screenshot(page, request, "preferences-kept")

    kept = api.get("/notifications/preferences", headers=person.headers).json()
    assert kept["channels"]["mention"] == "email" and kept["channels"]["digest"] == "off"
    assert kept["digest"] == {"frequency": "weekly", "hour": 7, "timezone": "Europe/Berlin"}
    assert kept["quiet_hours"] == {"start": "21:30", "end": "06:45"}

    # Turning quiet hours off is kept too.
    page.get_by_label("Keep quiet hours").uncheck()
    page.get_by_role("button", name="Save notification preferences").click()
    expect(page.get_by_role("status").first).to_contain_text("saved")
    assert (
        api.get("/notifications/preferences", headers=person.headers).json()["quiet_hours"] is None
    )


def test_a_profile_edit_is_saved_and_one_made_elsewhere_meanwhile_is_not_overwritten(
    page: Page, api: httpx.Client, axe: Axe, request: pytest.FixtureRequest
) -> None:
    person = new_person(api, "Profile")
    sign_in(page, person)
    page.goto("/settings")
    page.get_by_label("Your name").fill("Petra Profile")
    page.get_by_label("About you").fill("I look after the *billing* pipeline.")
    page.get_by_label("Skills").fill("postgres, billing, Postgres, ")
    page.get_by_role("button", name="Save profile").click()
    expect(page.get_by_role("status").first).to_contain_text("Your profile is saved")
    expect(page.get_by_label("Your name")).to_have_value("Petra Profile")
    expect(page.get_by_label("Skills")).to_have_value("postgres, billing")
    me = api.get("/users/me", headers=person.headers).json()
    assert me["display_name"] == "Petra Profile" and me["skills"] == ["postgres", "billing"]

    # Someone (the same person, in another tab) changes the profile after this page was read.
    changed = api.patch("/users/me", json={"bio": "Changed elsewhere"}, headers=person.headers)
    assert changed.status_code == 200, changed.text
    page.get_by_label("Your name").fill("Overwriting Name")
    page.get_by_role("button", name="Save profile").click()
    expect(page.get_by_role("alert")).to_contain_text("changed elsewhere")
    expect(page.get_by_label("About you")).to_have_value("Changed elsewhere")
    assert_accessible(page, axe)
    screenshot(page, request, "profile-changed-elsewhere")
    assert api.get("/users/me", headers=person.headers).json()["display_name"] == "Petra Profile"

    # A name the API refuses is shown next to the field, the typed values kept.
    page.get_by_label("Your name").fill("")
    page.get_by_label("Your name").evaluate("element => element.removeAttribute('required')")
    page.get_by_role("button", name="Save profile").click()
    expect(page.get_by_role("alert")).to_be_visible()
    expect(page.get_by_label("About you")).to_have_value("Changed elsewhere")
    assert_accessible(page, axe)


def test_a_password_change_needs_the_current_password(
    page: Page, api: httpx.Client, axe: Axe, request: pytest.FixtureRequest
) -> None:
    person = new_person(api, "Secret")
    sign_in(page, person)
    page.goto("/settings#password")
    new_password = "an entirely new passphrase 42"
    page.get_by_label("Current password").fill("not my password at all")
    page.get_by_label("New password", exact=True).fill(new_password)
    page.get_by_label("New password again").fill(new_password)
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_role("alert")).to_be_visible()
    expect(page.get_by_label("Current password")).to_have_attribute("aria-invalid", "true")
    assert_accessible(page, axe)
    screenshot(page, request, "wrong-current-password")

    page.get_by_label("Current password").fill(PASSWORD)
    page.get_by_label("New password", exact=True).fill(new_password)
    page.get_by_label("New password again").fill(new_password)
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_role("status").first).to_contain_text("Your password is changed")
    assert (
        api.post("/auth/login", json={"login": person.handle, "password": new_password}).status_code
        == 200
    )


def test_ones_data_downloads_part_by_part(page: Page, api: httpx.Client) -> None:
    person = new_person(api, "Exporter")
    sign_in(page, person)
    page.goto("/settings#your-data")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Your profile, follows and group memberships").click()
    download = download_info.value
    assert download.suggested_filename.startswith("knowflow-profile-")
    with open(download.path(), encoding="utf-8") as file:
        exported = json.load(file)
    assert person.handle in json.dumps(exported)
    for part in ("posts", "notifications"):
        response = page.request.get(f"/users/me/export/{part}")
        assert response.status == 200, response.text()
        assert "attachment" in response.headers["content-disposition"]
    assert page.request.get("/users/me/export/passwords").status == 404


def follow_tag(api: httpx.Client, person: Person, tag: str) -> None:
    response = api.post(
        "/follows", json={"target_type": "tag", "target": tag}, headers=person.headers
    )
    assert response.status_code == 201, response.text


def test_the_digest_preview_links_items_and_leaves_out_a_private_groups_content(
    page: Page, api: httpx.Client, axe: Axe, request: pytest.FixtureRequest
) -> None:
    reader = new_person(api, "Digester")
    writer = new_person(api, "Author")
    tag = f"digest{secrets.token_hex(3)}"
    follow_tag(api, reader, tag)
    group = api.post(
        "/groups",
        json={"name": "Inner circle", "slug": f"inner-{tag}", "visibility": "private"},
        headers=writer.headers,
    )
    assert group.status_code == 201, group.text
    secret_post = api.post(
        "/posts",
        json={"body": f"The confidential merger plan #{tag}", "group_id": group.json()["id"]},
        headers=writer.headers,
    )
    assert secret_post.status_code == 201, secret_post.text
    public_post = api.post(
        "/posts", json={"body": f"How we cut build times in half #{tag}"}, headers=writer.headers
    )
    assert public_post.status_code == 201, public_post.text
    article = api.post(
        "/articles",
        json={
            "title": "Which runner is fastest for CI?",
            "body": "We measured three of them.",
            "tags": [tag],
        },
        headers=writer.headers,
    )
    assert article.status_code == 201, article.text
    question = api.post(
        "/questions",
        json={"title": "Is the flaky test quarantined?", "body": "It failed twice.", "tags": [tag]},
        headers=writer.headers,
    )
    assert question.status_code == 201, question.text

    def digest_has_both() -> bool:
        digest = api.get("/digests/me", headers=reader.headers).json()
        ids = {item["content_id"] for section in digest["sections"] for item in section["items"]}
        return {public_post.json()["id"], article.json()["id"], question.json()["id"]} <= ids

    eventually(digest_has_both)
    sign_in(page, reader)
    page.goto("/digests/me?period=weekly")
    expect(page.get_by_role("heading", level=1)).to_have_text("Your digest")
    expect(page.get_by_role("link", name="Last 7 days")).to_have_attribute("aria-current", "page")
    expect(page.get_by_text("How we cut build times in half")).to_be_visible()
    expect(page.get_by_text("confidential merger plan")).to_have_count(0)
    expect(page.get_by_role("link", name="Is the flaky test quarantined?")).to_have_attribute(
        "href", f"/questions/{question.json()['id']}"
    )
    expect(page.get_by_role("link", name="How we cut build times in half")).to_have_attribute(
        "href", f"/posts/{public_post.json()['id']}"
    )
    assert_accessible(page, axe)
    screenshot(page, request, "digest")

    page.get_by_role("link", name="Which runner is fastest for CI?").click()
    page.wait_for_url(f"**/articles/{article.json()['id']}")

    # Notifications link here with a past window (`until`): the page reads it.
    page.goto("/digests/me?period=daily&until=2020-01-01T00:00:00Z")
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    assert page.get_by_text("How we cut build times in half").count() == 0
