"""Finding things and people in a real browser: search with filters and highlighted
results, who knows about a topic with their evidence, a person's page, following them."""

import secrets
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Locator, Page, expect

from tests.browser.conftest import Person, assert_accessible, new_person, screenshot, sign_in
from tests.e2e.conftest import every_item

# Events reach search asynchronously: how long a test waits for an item to be findable.
INDEXED_WITHIN_SECONDS = 20.0
PAGE_SIZE = 20  # results per search page


def word() -> str:
    """A word no other test wrote, so results are this test's only."""
    return f"zq{secrets.token_hex(4)}"


def ask(api: httpx.Client, person: Person, title: str, body: str, **extra: Any) -> dict[str, Any]:
    response = api.post(
        "/questions", json={"title": title, "body": body, **extra}, headers=person.headers
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def answer(api: httpx.Client, person: Person, question_id: str, body: str) -> dict[str, Any]:
    response = api.post(
        f"/questions/{question_id}/answers", json={"body": body}, headers=person.headers
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def post(api: httpx.Client, person: Person, body: str, **extra: Any) -> dict[str, Any]:
    response = api.post("/posts", json={"body": body, **extra}, headers=person.headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


def until_found(api: httpx.Client, person: Person, path: str, found: Callable[[Any], bool]) -> Any:
    """Polls the API as `person` until what it answers satisfies `found` (indexing is async)."""
    deadline = time.monotonic() + INDEXED_WITHIN_SECONDS
    while True:
        response = api.get(path, headers=person.headers)
        assert response.status_code == 200, response.text
        if found(response.json()):
            return response.json()
        assert time.monotonic() < deadline, f"{path} never showed it: {response.text[:500]}"
        time.sleep(0.3)


def open_until(page: Page, url: str, shown: Callable[[], Locator]) -> None:
    """Opens `url` again until `shown()` is visible (what it shows arrives asynchronously)."""
    deadline = time.monotonic() + INDEXED_WITHIN_SECONDS
    while True:
        page.goto(url)
        if shown().count() > 0:
            return
        assert time.monotonic() < deadline, f"{url} never showed it: {page.inner_text('main')}"
        page.wait_for_timeout(400)


def test_search_with_a_filter_shows_highlighted_results_and_pages_on(
    page: Page, api: httpx.Client, axe: Axe, request: pytest.FixtureRequest
) -> None:
    author = new_person(api, "Author")
    reader = new_person(api, "Seeker")
    topic = word()
    question = ask(
        api,
        author,
        f"How do we roll back a {topic} release?",
        f"The {topic} deploy failed & left <b>half</b> the fleet on the old build.",
        tags=["deployments"],
    )
    post(api, author, f"Rolled back {topic} twice today #deployments")
    until_found(api, reader, f"/search?q={topic}", lambda body: len(body["items"]) == 2)

    sign_in(page, reader)
    page.goto("/search")
    expect(page.get_by_text("Type what you are looking for")).to_be_visible()
    assert_accessible(page, axe)
    page.get_by_label("Words to find").fill(topic)
    page.get_by_label("Kind").select_option(label="Questions")
    page.get_by_role("button", name="Search", exact=True).last.click()

    results = page.locator("ol.results > li")
    expect(results).to_have_count(1)
    link = results.get_by_role("link", name=question["title"])
    expect(link).to_have_attribute("href", f"/questions/{question['id']}")
    expect(results.locator("mark").first).to_have_text(topic)
    # The body's markup is shown as text, never as HTML.
    expect(results.locator(".snippet")).to_contain_text("<b>half</b>")
    expect(results.locator(".snippet b")).to_have_count(0)
    expect(page.get_by_label("Kind")).to_have_value("question")
    assert_accessible(page, axe)
    screenshot(page, request, "filtered")

    # Without the kind both are found; the tag filter is kept in the form.
    page.goto(f"/search?q={topic}&tag=deployments")
    expect(page.locator("ol.results > li")).to_have_count(2)
    expect(page.get_by_label("Tag", exact=True)).to_have_value("deployments")

    # More than a page: the next one keeps the filters.
    many = word()
    for number in range(PAGE_SIZE + 1):
        post(api, author, f"{many} note {number} #paging")
    until_found(
        api, reader, f"/search?q={many}&limit=100", lambda body: len(body["items"]) > PAGE_SIZE
    )
    page.goto(f"/search?q={many}&tag=paging")
    expect(page.locator("ol.results > li")).to_have_count(PAGE_SIZE)
    page.get_by_role("link", name="More results").click()
    expect(page.locator("ol.results > li")).to_have_count(1)
    expect(page.get_by_label("Tag", exact=True)).to_have_value("paging")

    page.get_by_label("Words to find").fill(f"{topic}nothing")
    page.get_by_role("button", name="Search", exact=True).last.click()
    expect(page.get_by_text("Nothing matches")).to_be_visible()
    assert_accessible(page, axe)
    screenshot(page, request, "empty")

    # A date the browser would not send is a message next to the field, not an error page.
    page.goto(f"/search?q={topic}&since=yesterday")
    expect(page.get_by_role("alert")).to_be_visible()
    expect(page.get_by_text("A date, such as")).to_be_visible()
    # What the API refuses (nothing searchable, a forged cursor) is shown, never a 500.
    for path in ("/search?q=%21%21%21", f"/search?q={topic}&cursor=forged", "/experts?topic=%21"):
        shown = page.goto(path)
        assert shown is not None and shown.status == 200, path
        expect(page.get_by_role("alert")).to_be_visible()


def test_who_knows_shows_each_person_with_why_and_their_evidence_linked(
    page: Page, api: httpx.Client, axe: Axe, request: pytest.FixtureRequest
) -> None:
    asker = new_person(api, "Asker")
    expert = new_person(api, "Expert")
    reader = new_person(api, "Curious")
    topic = word()
    question = ask(api, asker, f"Where is {topic} configured?", f"Looking for the {topic} knobs.")
    given = answer(api, expert, question["id"], f"All {topic} settings live in one file.")
    until_found(
        api,
        reader,
        f"/experts?topic={topic}",
        lambda body: any(item["user_id"] == expert.id for item in body["experts"]),
    )

    sign_in(page, reader)
    page.get_by_role("link", name="Who knows").click()
    assert_accessible(page, axe)
    page.get_by_label("A topic").fill(topic)
    page.get_by_role("button", name="Find who knows").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(topic)
    card = page.locator("ol.experts > li").filter(has_text=expert.display_name)
    expect(card.get_by_role("link", name=expert.display_name)).to_have_attribute(
        "href", f"/people/@{expert.handle}"
    )
    expect(card.locator(".reason")).to_contain_text("Why:")
    evidence = card.locator(".evidence li").filter(has_text="answer")
    expect(evidence.locator("mark").first).to_have_text(topic)
    assert_accessible(page, axe)
    screenshot(page, request, "who-knows")
    # The answer is shown on its question's page, at the answer.
    evidence.get_by_role("link").first.click()
    page.wait_for_url(f"**/questions/{question['id']}#answer-{given['id']}")

    page.goto(f"/experts?topic={word()}")
    expect(page.get_by_text("Nobody has written anything")).to_be_visible()


def test_a_persons_page_shows_what_they_know_and_can_be_followed(
    page: Page, api: httpx.Client, axe: Axe, request: pytest.FixtureRequest
) -> None:
    asker = new_person(api, "Asker")
    expert = new_person(api, "Known")
    reader = new_person(api, "Follower")
    topic = word()
    question = ask(
        api, asker, f"Who tunes {topic} caches?", f"Our {topic} cache is cold.", tags=[topic]
    )
    answer(api, expert, question["id"], f"Warm the {topic} cache at start #{topic}")
    article = api.post(
        "/articles",
        json={"title": f"Caching {topic}", "body": f"How we run {topic}. #{topic}"},
        headers=expert.headers,
    )
    assert article.status_code == 201, article.text
    until_found(api, reader, f"/experts/{expert.id}", lambda body: len(body["topics"]) > 0)

    sign_in(page, reader)
    open_until(
        page, f"/people/@{expert.handle}", lambda: page.locator(".topics .tag", has_text=topic)
    )
    expect(page.get_by_role("heading", level=1)).to_have_text(expert.display_name)
    topics = page.locator(".topics > li").filter(has_text=f"#{topic}")
    article_url = f"/articles/{article.json()['id']}"
    expect(topics.locator(f".evidence a[href='{article_url}']")).to_have_count(1)
    expect(page.get_by_role("link", name=f"Caching {topic}").last).to_be_visible()
    assert_accessible(page, axe)
    screenshot(page, request, "person")

    page.get_by_role("button", name="Follow", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("You follow them now")
    expect(page.get_by_role("button", name="Unfollow")).to_be_visible()
    follows = every_item(api, "/follows", reader.headers)
    assert {"target_type": "user", "target": expert.id} in [
        {"target_type": item["target_type"], "target": item["target"]} for item in follows
    ]
    assert_accessible(page, axe)
    screenshot(page, request, "followed")
    page.get_by_role("button", name="Unfollow").click()
    expect(page.get_by_role("button", name="Follow", exact=True)).to_be_visible()
    assert every_item(api, "/follows", reader.headers) == []

    # A mention of them elsewhere leads to this page; an unknown handle is a 404 page.
    missing = page.goto("/people/@nobody_by_this_name")
    assert missing is not None and missing.status == 404
    expect(page.get_by_role("heading", level=1)).to_have_text("Nothing here")
