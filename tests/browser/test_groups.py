"""Groups in a real browser: create, join, leave, roles; a private group that an outsider
never sees on any page; asking to join a private group and the owner approving."""

import httpx
import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page, expect

from deploy.launch import Platform
from services.web.api import ALL_PAGE_SIZE
from services.web.pages.groups import MEMBERS_SHOWN
from tests.browser.conftest import (
    assert_accessible,
    new_person,
    screenshot,
    sign_in,
)
from tests.browser.test_find import ask, until_found, word
from tests.e2e.conftest import every_item


def create_group(page: Page, name: str, *, private: bool = False) -> str:
    """Through the form on /groups; returns the new group's id."""
    page.goto("/groups")
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Short name for links").fill(name.lower().replace(" ", "-"))
    page.get_by_label("What it is for").fill(f"Where {name} talk.")
    if private:
        page.get_by_label("Private: only members see it").check()
    page.get_by_role("button", name="Create group").click()
    expect(page.get_by_role("status")).to_contain_text("Your group is ready")
    return page.url.split("/groups/")[1].split("?")[0]


def test_people_create_join_change_roles_and_leave_groups(
    page: Page,
    browser: Browser,
    platform: Platform,
    api: httpx.Client,
    axe: Axe,
    request: pytest.FixtureRequest,
) -> None:
    owner = new_person(api, "Owner")
    joiner = new_person(api, "Joiner")
    name = f"Platform {word()}"

    sign_in(page, owner)
    page.goto("/groups")
    assert_accessible(page, axe)
    screenshot(page, request, "groups")
    group_id = create_group(page, name)
    expect(page.get_by_role("heading", level=1)).to_have_text(name)
    expect(page.get_by_text("You are the owner here")).to_be_visible()

    other = browser.new_context(base_url=platform.gateway_url)
    other.set_default_timeout(15_000)
    try:
        visitor = other.new_page()
        sign_in(visitor, joiner)
        visitor.goto("/groups")
        card = visitor.locator("li.card").filter(has_text=name)
        card.get_by_role("button", name="Join").click()
        expect(visitor.get_by_role("status")).to_contain_text("You joined the group")
        visitor.goto("/groups")
        mine = visitor.locator("section").filter(
            has=visitor.get_by_role("heading", name="Your groups")
        )
        expect(mine.get_by_role("link", name=name)).to_be_visible()

        # The owner makes them a moderator.
        page.reload()
        row = page.get_by_role("row").filter(has_text=joiner.display_name)
        expect(row).to_contain_text("member")
        row.get_by_label(f"Role of {joiner.display_name}", exact=True).select_option("moderator")
        row.get_by_role("button", name=f"Change the role of {joiner.display_name}").click()
        expect(page.get_by_role("status")).to_contain_text("Their role is changed")
        row = page.get_by_role("row").filter(has_text=joiner.display_name)
        expect(row.locator(".role")).to_have_text("moderator")
        assert_accessible(page, axe)
        screenshot(page, request, "group-owner")

        # The owner cannot leave (there is no button); the moderator can.
        expect(page.get_by_role("button", name="Leave this group")).to_have_count(0)
        visitor.goto(f"/groups/{group_id}")
        expect(visitor.get_by_text("You are a moderator here")).to_be_visible()
        assert_accessible(visitor, axe)
        visitor.get_by_role("button", name="Follow this group").click()
        expect(visitor.get_by_role("status")).to_contain_text("You follow this group")
        visitor.once("dialog", lambda dialog: dialog.accept())  # "Leave …?"
        visitor.get_by_role("button", name="Leave this group").click()
        expect(visitor.get_by_role("status")).to_contain_text("You left the group")
        expect(
            visitor.locator("li.card").filter(has_text=name).get_by_role("button", name="Join")
        ).to_be_visible()
    finally:
        other.close()
    page.reload()
    expect(page.get_by_role("row").filter(has_text=joiner.display_name)).to_have_count(0)

    # The owner removes someone who joined.
    extra = new_person(api, "Extra")
    joined = api.post(
        f"/groups/{group_id}/members", json={"user_id": extra.id}, headers=extra.headers
    )
    assert joined.status_code == 201, joined.text
    page.reload()
    page.once("dialog", lambda dialog: dialog.accept())  # "Remove …?"
    page.get_by_role("button", name=f"Remove {extra.display_name}").click()
    expect(page.get_by_role("status")).to_contain_text("They are no longer a member")
    expect(page.get_by_role("row").filter(has_text=extra.display_name)).to_have_count(0)


def test_a_private_group_is_invisible_to_an_outsider_on_every_page(
    page: Page, api: httpx.Client, axe: Axe, request: pytest.FixtureRequest
) -> None:
    owner = new_person(api, "Keeper")
    outsider = new_person(api, "Outsider")
    secret = word()
    name = f"Secret {secret}"

    sign_in(page, owner)
    group_id = create_group(page, name, private=True)
    question = ask(
        api,
        owner,
        f"Is {secret} ready?",
        f"The {secret} plan, for members only. #{secret}",
        group_id=group_id,
    )
    # The member finds it everywhere: the outsider's emptiness below is not a slow index.
    until_found(api, owner, f"/search?q={secret}", lambda body: len(body["items"]) == 1)
    until_found(api, owner, f"/experts?topic={secret}", lambda body: len(body["experts"]) == 1)
    page.goto(f"/groups/{group_id}")
    expect(page.get_by_role("link", name=question["title"])).to_be_visible()
    page.goto(f"/search?q={secret}")
    expect(page.locator("ol.results > li")).to_have_count(1)
    screenshot(page, request, "member-search")

    page.get_by_role("button", name="Sign out").click()
    sign_in(page, outsider)
    page.goto("/groups")
    expect(page.get_by_role("heading", name="Your groups")).to_be_visible()
    expect(page.get_by_text(name)).to_have_count(0)
    expect(page.locator(f"a[href='/groups/{group_id}']")).to_have_count(0)
    assert_accessible(page, axe)

    answer = page.goto(f"/groups/{group_id}")
    assert answer is not None and answer.status == 404
    expect(page.get_by_role("heading", level=1)).to_have_text("Nothing here")
    assert name not in page.content() and secret not in page.content()
    assert_accessible(page, axe)
    screenshot(page, request, "outsider-group-404")

    for path in (
        f"/search?q={secret}",
        f"/search?q={secret}&group_id={group_id}",
        f"/experts?topic={secret}",
        f"/people/@{owner.handle}",
    ):
        page.goto(path)
        body = page.locator("main").inner_text()
        assert secret not in body.replace(f"“{secret}”", ""), path
        assert question["id"] not in page.content(), path
    # The question's own page is a 404 that names nothing of it but the id that was typed.
    shown = page.goto(f"/questions/{question['id']}")
    assert shown is not None and shown.status == 404
    assert secret not in page.content()
    page.goto(f"/search?q={secret}")
    expect(page.get_by_text("Nothing matches")).to_be_visible()
    page.goto(f"/experts?topic={secret}")
    expect(page.get_by_text("Nobody has written anything")).to_be_visible()
    assert_accessible(page, axe)
    screenshot(page, request, "outsider-experts")


def test_asking_to_join_a_private_group_and_the_owner_approving(
    page: Page,
    browser: Browser,
    platform: Platform,
    api: httpx.Client,
    axe: Axe,
    request: pytest.FixtureRequest,
) -> None:
    owner = new_person(api, "Host")
    asker = new_person(api, "Newcomer")
    stranger = new_person(api, "Stranger")
    name = f"Inner {word()}"
    created = api.post(
        "/groups",
        json={"name": name, "slug": name.lower().replace(" ", "-"), "visibility": "private"},
        headers=owner.headers,
    )
    assert created.status_code == 201, created.text
    group_id = created.json()["id"]
    asked = api.post(f"/groups/{group_id}/join-requests", json={}, headers=stranger.headers)
    assert asked.status_code == 201, asked.text

    # The asker was given the link: a 404 page that offers to ask, naming nothing.
    sign_in(page, asker)
    shown = page.goto(f"/groups/{group_id}")
    assert shown is not None and shown.status == 404
    assert name not in page.content()
    page.get_by_label("A note for whoever decides").fill("I run the on-call rota.")
    page.get_by_role("button", name="Ask to join").click()
    expect(page.get_by_role("status")).to_contain_text("Your request to join was sent")
    expect(page.get_by_text("You asked to join 1 private group")).to_be_visible()
    assert name not in page.content()
    assert_accessible(page, axe)
    screenshot(page, request, "asked")

    decider = browser.new_context(base_url=platform.gateway_url)
    decider.set_default_timeout(15_000)
    try:
        host = decider.new_page()
        sign_in(host, owner)
        host.goto(f"/groups/{group_id}")
        asking = host.locator("li.card").filter(has_text=asker.display_name)
        expect(asking).to_contain_text("I run the on-call rota.")
        assert_accessible(host, axe)
        screenshot(host, request, "requests")
        declined = host.locator("li.card").filter(has_text=stranger.display_name)
        declined.get_by_role("button", name=f"Decline {stranger.display_name}").click()
        expect(host.get_by_role("status")).to_contain_text("Request declined")
        expect(host.locator("li.card").filter(has_text=stranger.display_name)).to_have_count(0)
        asking = host.locator("li.card").filter(has_text=asker.display_name)
        asking.get_by_role("button", name=f"Approve {asker.display_name}").click()
        expect(host.get_by_role("status")).to_contain_text("Request approved")
        expect(host.get_by_role("row").filter(has_text=asker.display_name)).to_contain_text(
            "member"
        )
        expect(host.get_by_text("Nobody is asking to join")).to_be_visible()
    finally:
        decider.close()

    page.goto("/groups")
    expect(page.get_by_role("link", name=name)).to_be_visible()
    page.get_by_role("link", name=name).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(name)
    expect(page.get_by_text("You are a member here")).to_be_visible()


def test_a_big_groups_members_are_paged_and_the_last_of_many_follows_is_still_known(
    page: Page, api: httpx.Client, axe: Axe, request: pytest.FixtureRequest
) -> None:
    owner = new_person(api, "Owner")
    created = api.post(
        "/groups",
        headers=owner.headers,
        json={"name": f"Crowd {word()}", "slug": f"crowd-{word()}", "visibility": "open"},
    )
    assert created.status_code == 201, created.text
    group_id = created.json()["id"]
    joiners = [new_person(api, f"Crowd{n}") for n in range(MEMBERS_SHOWN)]
    for joiner in joiners:
        joined = api.post(
            f"/groups/{group_id}/members", json={"user_id": joiner.id}, headers=joiner.headers
        )
        assert joined.status_code == 201, joined.text
    # The group is the owner's follow after a full page of others: the API's second page.
    for n in range(ALL_PAGE_SIZE):
        followed = api.post(
            "/follows", headers=owner.headers, json={"target_type": "tag", "target": f"t{n}"}
        )
        assert followed.status_code == 201, followed.text
    followed = api.post(
        "/follows", headers=owner.headers, json={"target_type": "group", "target": group_id}
    )
    assert followed.status_code == 201, followed.text

    sign_in(page, owner)
    page.goto(f"/groups/{group_id}")
    expect(page.get_by_text(f"More than {MEMBERS_SHOWN} members")).to_be_visible()
    members = page.locator("table tbody tr")
    expect(members).to_have_count(MEMBERS_SHOWN)
    expect(members.filter(has_text=joiners[-1].display_name)).to_have_count(0)
    expect(page.get_by_role("button", name="Unfollow")).to_be_visible()
    assert_accessible(page, axe)
    page.get_by_role("link", name="More members").click()
    # The one who joined last, alone on the next page; no further page.
    expect(members).to_have_count(1)
    expect(members).to_contain_text(joiners[-1].display_name)
    expect(page.get_by_role("link", name="More members")).to_have_count(0)
    screenshot(page, request, "more-members")

    page.get_by_role("button", name="Unfollow").click()
    expect(page.get_by_role("status")).to_contain_text("You no longer follow this group")
    follows = every_item(api, "/follows", owner.headers)
    assert len(follows) == ALL_PAGE_SIZE
    assert all(item["target_type"] == "tag" for item in follows)
