"""The home feed: what the people and tags one follows wrote, and why it is there."""

import httpx
import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, expect

from tests.browser.conftest import assert_accessible, new_person, screenshot, sign_in


def test_someone_new_is_told_how_to_fill_the_feed(page: Page, api: httpx.Client) -> None:
    sign_in(page, new_person(api, "Empty"))
    expect(page.get_by_text("You follow nobody and nothing yet")).to_be_visible()


def test_the_feed_shows_what_followed_people_and_tags_wrote_with_the_reason(
    page: Page, api: httpx.Client, axe: Axe, request: pytest.FixtureRequest
) -> None:
    reader = new_person(api, "Follower")
    author = new_person(api, "Author")
    stranger = new_person(api, "Stranger")
    for target_type, target in (("tag", "kubernetes"), ("user", author.id)):
        response = api.post(
            "/follows", json={"target_type": target_type, "target": target}, headers=reader.headers
        )
        assert response.status_code == 201, response.text
    posts = {
        author: "Rolling restarts without downtime, step by step",
        stranger: "Pod disruption budgets saved our upgrade #kubernetes",
    }
    for person, body in posts.items():
        response = api.post("/posts", json={"body": body}, headers=person.headers)
        assert response.status_code == 201, response.text
    api.post("/posts", json={"body": "Lunch is at noon"}, headers=new_person(api, "Other").headers)

    sign_in(page, reader)
    feed = page.get_by_role("region", name="From what you follow")
    for _attempt in range(20):  # the digests service projects the posts asynchronously
        if feed.locator("li.card").count() >= 2:
            break
        page.wait_for_timeout(500)
        page.reload()
    cards = feed.locator("li.card")
    expect(cards).to_have_count(2)
    expect(feed).to_contain_text("Because you follow #kubernetes")
    expect(feed).to_contain_text(f"Because you follow {author.display_name}")
    expect(feed).not_to_contain_text("Lunch is at noon")
    expect(page.get_by_role("complementary")).to_contain_text("#kubernetes")
    assert_accessible(page, axe)
    screenshot(page, request, "feed")
